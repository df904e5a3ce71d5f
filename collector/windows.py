"""Tumbling event-time windows per model version, with a watermark, allowed lateness and a
maximum-records cut.

A record with event time ``t`` belongs to the window starting at
``origin + floor((t - origin) / length) * length`` (``origin`` defaults to the Unix epoch, UTC). Each window is split into *segments* of at most
``max_records`` rows: a full segment closes at once, so memory per window stays bounded.

Event time advances per source partition. The watermark of a model version is, over the
assigned partitions still behind their end (a backlog to read), the lowest highest-event-time of
that model version seen there — unknown, so no window closes, while such a partition has not
delivered one yet; once every partition has caught up, the highest of them. Minus the allowed
lateness. A partition read behind the others therefore never makes its records late, and an
empty or quiet partition does not hold the others back. A
window closes when the watermark passes its end, or when its model version has received nothing
for ``idle_close_ms`` of wall-clock time. A record whose window has already closed is *late*: it
is counted and kept out of the closed window.

This class only keeps the bookkeeping (row counts per open segment, watermarks); the rows
themselves are stored by the caller, in the same transaction as the consumer offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True, order=True)
class WindowKey:
    """Identifies one segment of one window of one model version."""

    model: str
    model_version: str
    start_ms: int
    segment: int


@dataclass
class Assignment:
    """Result of :meth:`TumblingWindows.assign`.

    Attributes:
        parts: (window key, rows) for each open segment that received rows, in key order.
        late: rows whose window had already closed.
        on_time: every other row, in input order.
    """

    parts: list[tuple[WindowKey, pd.DataFrame]]
    late: pd.DataFrame
    on_time: pd.DataFrame


class TumblingWindows:
    """Bookkeeping of open windows.

    Args:
        length_ms: window length in milliseconds (> 0).
        max_records: rows per segment before it is cut (> 0).
        allowed_lateness_ms: how far behind the highest event time a record may be (>= 0).
        origin_ms: a window boundary (epoch ms); every other boundary is a multiple of the
            length away from it.

    Raises:
        ValueError: a non-positive length or max_records, or a negative lateness.
    """

    def __init__(self, length_ms: int, max_records: int, allowed_lateness_ms: int = 0, origin_ms: int = 0) -> None:
        if length_ms <= 0 or max_records <= 0 or allowed_lateness_ms < 0:
            raise ValueError("window length and max_records must be > 0 and allowed lateness >= 0")
        self.length_ms = int(length_ms)
        self.max_records = int(max_records)
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.origin_ms = int(origin_ms)
        self.open: dict[WindowKey, int] = {}
        # highest event time per (model, version, topic, partition)
        self.max_event_time: dict[tuple[str, str, str, int], int] = {}
        # assigned partitions -> caught up with their end? None: every partition seen is behind
        self._sources: dict[tuple[str, int], bool] | None = None
        self._closed_starts: set[tuple[str, str, int]] = set()
        self._next_segment: dict[tuple[str, str, int], int] = {}
        self._last_arrival_ms: dict[tuple[str, str], int] = {}

    # --- restore ---------------------------------------------------------------------
    def restore(self, open_counts: dict[tuple[str, str, int, int], int],
                max_event_time: dict[tuple[str, str, str, int], int],
                closed: list[tuple[str, str, int, int, str]], now_ms: int) -> None:
        """Rebuild the state from the store.

        Args:
            open_counts: rows per open (model, version, start, segment).
            max_event_time: highest event time per (model, version, topic, partition).
            closed: (model, version, start, segment, close_reason) of closed windows.
            now_ms: wall-clock now; idle timers restart from here.
        """
        self.open = {WindowKey(*k): n for k, n in open_counts.items()}
        self.max_event_time = dict(max_event_time)
        for m, v, start, seg, reason in closed:
            key = (m, v, start)
            self._next_segment[key] = max(self._next_segment.get(key, 0), seg + 1)
            if reason != "max_records":
                self._closed_starts.add(key)
        for k in self.open:
            key = (k.model, k.model_version, k.start_ms)
            self._next_segment[key] = max(self._next_segment.get(key, 0), k.segment)
        self._last_arrival_ms = {(m, v): now_ms for m, v, _t, _p in self.max_event_time}

    # --- ingest ----------------------------------------------------------------------
    def set_sources(self, sources: dict[tuple[str, int], bool]) -> None:
        """The partitions assigned now, each mapped to whether it has caught up with its end."""
        self._sources = dict(sources)

    def watermark(self, model: str, model_version: str) -> int | None:
        """The event time up to which windows of this model version may close (see module
        docstring), minus the allowed lateness; None while unknown."""
        seen = {(t, p): ms for (m, v, t, p), ms in self.max_event_time.items() if (m, v) == (model, model_version)}
        if self._sources is None:
            mark = min(seen.values()) if seen else None
        elif not self._sources:  # nothing assigned (starting, rebalancing): unknown
            mark = None
        else:
            behind = [tp for tp, caught_up in self._sources.items() if not caught_up]
            if behind:
                marks = [seen.get(tp) for tp in behind]
                mark = None if None in marks else min(marks)
            else:
                mark = max(seen.values()) if seen else None
        return None if mark is None else mark - self.allowed_lateness_ms

    def assign(self, frame: pd.DataFrame, now_ms: int, source: tuple[str, int] = ("", 0)) -> Assignment:
        """:meth:`assign_batch` for rows of one partition."""
        return self.assign_batch([(source, frame)], now_ms)

    def assign_batch(self, batch: Sequence[tuple[tuple[str, int], pd.DataFrame]], now_ms: int) -> Assignment:
        """Place one polled batch into window segments, then advance the watermarks.

        Every row is judged late or on time against the watermarks from before the batch, so
        rows of a partition read behind the others are not made late by rows of the same poll.

        Args:
            batch: (topic, partition) and the decoded rows from it (``model``, ``model_version``,
                ``event_time_ms`` needed).
            now_ms: wall-clock now, for idle detection.

        Returns:
            The rows per segment (to be stored by the caller) and the late rows.
        """
        parts: list[tuple[WindowKey, pd.DataFrame]] = []
        late: list[pd.DataFrame] = []
        on_time: list[tuple[tuple[str, int], pd.DataFrame]] = []
        for source, frame in batch:
            if frame.empty:
                continue
            late_mask = self._place(frame, parts)
            late.append(frame[late_mask])
            on_time.append((source, frame[~late_mask]))
        for source, rows in on_time:
            if rows.empty:
                continue
            for (model, version), t in rows.groupby(["model", "model_version"])["event_time_ms"].max().items():
                key = (model, version, *source)
                self.max_event_time[key] = max(int(t), self.max_event_time.get(key, int(t)))
                self._last_arrival_ms[(model, version)] = now_ms
        parts.sort(key=lambda p: p[0])
        return Assignment(parts, pd.concat(late, ignore_index=True) if late else pd.DataFrame(),
                          pd.concat([r for _, r in on_time], ignore_index=True) if on_time else pd.DataFrame())

    def _place(self, frame: pd.DataFrame, parts: list[tuple[WindowKey, pd.DataFrame]]) -> np.ndarray:
        """Append ``frame``'s on-time rows to ``parts`` by segment; returns the late-row mask."""
        t = frame["event_time_ms"].to_numpy(np.int64) - self.origin_ms
        starts = (t // self.length_ms) * self.length_ms + self.origin_ms
        late_mask = np.zeros(len(frame), dtype=bool)
        grouped = frame.assign(_start=starts).groupby(["model", "model_version", "_start"], sort=True)
        for (model, version, start), idx in grouped.indices.items():
            start = int(start)
            mv_key = (model, version, start)
            wm = self.watermark(model, version)
            if mv_key in self._closed_starts or (wm is not None and start + self.length_ms <= wm):
                late_mask[idx] = True
                continue
            seg = self._next_segment.get(mv_key, 0)
            count = self.open.get(WindowKey(model, version, start, seg), 0)
            rows = frame.iloc[idx]
            pos = 0
            while pos < len(rows):
                take = min(self.max_records - count, len(rows) - pos)
                key = WindowKey(model, version, start, seg)
                parts.append((key, rows.iloc[pos:pos + take]))
                self.open[key] = count + take
                pos += take
                count += take
                if count >= self.max_records:
                    seg, count = seg + 1, 0
            self._next_segment[mv_key] = seg
        return late_mask

    # --- closing ---------------------------------------------------------------------
    def due(self, now_ms: int, idle_close_ms: int | None) -> list[tuple[WindowKey, str]]:
        """Open segments that should close now, with the reason.

        Reasons: ``max_records`` (segment full), ``watermark`` (watermark passed the window
        end), ``idle`` (no record for the model version for ``idle_close_ms`` of wall clock, and
        the wall clock is past the window's end plus the allowed lateness — a live model that
        pauses mid-window keeps its window open — and every assigned partition has caught up).
        """
        out: list[tuple[WindowKey, str]] = []
        # no idle closing while partitions have a backlog or none are assigned (a restart waiting
        # for its partitions, a rebalance): the records may be on their way
        if self._sources is not None and not (self._sources and all(self._sources.values())):
            idle_close_ms = None
        for key, count in sorted(self.open.items()):
            if count >= self.max_records:
                out.append((key, "max_records"))
                continue
            wm = self.watermark(key.model, key.model_version)
            if wm is not None and key.start_ms + self.length_ms <= wm:
                out.append((key, "watermark"))
                continue
            last = self._last_arrival_ms.get((key.model, key.model_version))
            ended = now_ms >= key.start_ms + self.length_ms + self.allowed_lateness_ms
            if idle_close_ms is not None and last is not None and now_ms - last >= idle_close_ms and ended:
                out.append((key, "idle"))
        return out

    def mark_closed(self, key: WindowKey, reason: str) -> None:
        """Forget a segment the caller has closed and stored."""
        self.open.pop(key, None)
        if reason != "max_records":
            self._closed_starts.add((key.model, key.model_version, key.start_ms))
