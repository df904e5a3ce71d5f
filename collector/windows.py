"""Event-time windows per model version — tumbling or sliding — with a watermark, allowed
lateness and a maximum-records cut, shared by every member of a consumer group.

A window is ``[start, start + length)``. Starts lie on ``origin + k * slide`` (``origin``
defaults to the Unix epoch, UTC); ``slide == length`` gives tumbling windows (each record in
exactly one window), ``slide < length`` sliding windows (each record in ``length / slide``
windows). Each window is split into *segments* of at most ``max_records`` rows: a full segment
closes at once, so memory per window stays bounded.

Event time advances per source partition. The watermark of a model version is, over the
partitions of the subscribed topics that hold it — those still behind their end (a backlog to
read), and those that have caught up but delivered a record less than ``idle_partition_ms`` ago
(in a live stream more is coming, possibly to a member that has just died) — the lowest
highest-event-time of that model version seen there; unknown, so no window closes, while a
partition with a backlog has not delivered one yet; once every partition has caught up and
gone quiet, the highest of them.
Minus the allowed lateness. A partition read behind the others therefore never makes its
records late, and an empty or quiet partition does not hold the others back. With several
collector processes in one consumer group, every partition's highest event time and caught-up
state come from the shared database (:meth:`EventTimeWindows.sync`), so a window closes only
when the watermark of *every* partition — whoever reads it — has passed its end. A window also
closes when its model version has received nothing for ``idle_close_ms`` of wall-clock time.
A record whose windows have all closed is *late*: it is counted and kept out of them; a record
within the allowed lateness lands in its own window.

This class only keeps the bookkeeping (row counts per open segment, watermarks); the rows
themselves are stored by the caller, in the same transaction as the consumer offsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


# a partition read up to its end that has delivered nothing for this long (wall clock) stops
# holding the watermark back; until then its highest event time still counts
IDLE_PARTITION_MS = 30_000


@dataclass(frozen=True, order=True)
class WindowKey:
    """Identifies one segment of one window of one model version."""

    model: str
    model_version: str
    start_ms: int
    segment: int


@dataclass
class Assignment:
    """Result of :meth:`EventTimeWindows.assign_batch`.

    Attributes:
        parts: (window key, rows) for each open segment that received rows, in key order, rows
            in batch order. One part per segment when the batch's frames have the same columns
            and dtypes; otherwise one per frame and segment (a frame's rows keep its columns).
            With sliding windows a row appears once per window it belongs to.
        late: rows that landed in no window (every window of theirs had closed).
        on_time: every other row, once each, in input order.
    """

    parts: list[tuple[WindowKey, pd.DataFrame]]
    late: pd.DataFrame
    on_time: pd.DataFrame


class EventTimeWindows:
    """Bookkeeping of open windows.

    Args:
        length_ms: window length in milliseconds (> 0).
        max_records: rows per segment before it is cut (> 0).
        allowed_lateness_ms: how far behind the watermark a record may be (>= 0).
        origin_ms: a window boundary (epoch ms); every other start is a multiple of the slide
            away from it.
        slide_ms: distance between consecutive window starts; None or ``length_ms`` for
            tumbling windows. Must divide ``length_ms``.

    Raises:
        ValueError: a non-positive length, slide or max_records, a negative lateness, or a
            slide that does not divide the length.
    """

    def __init__(self, length_ms: int, max_records: int, allowed_lateness_ms: int = 0, origin_ms: int = 0,
                 slide_ms: int | None = None, idle_partition_ms: int = IDLE_PARTITION_MS) -> None:
        slide_ms = length_ms if slide_ms is None else slide_ms
        if length_ms <= 0 or max_records <= 0 or allowed_lateness_ms < 0 or slide_ms <= 0:
            raise ValueError("window length, slide and max_records must be > 0 and allowed lateness >= 0")
        if length_ms % slide_ms:
            raise ValueError(f"the slide ({slide_ms} ms) must divide the window length ({length_ms} ms)")
        self.length_ms = int(length_ms)
        self.slide_ms = int(slide_ms)
        self.idle_partition_ms = int(idle_partition_ms)
        self.max_records = int(max_records)
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.origin_ms = int(origin_ms)
        self.open: dict[WindowKey, int] = {}
        # highest event time per (model, version, topic, partition)
        self.max_event_time: dict[tuple[str, str, str, int], int] = {}
        # partitions -> caught up with their end? None: every partition seen is behind
        self._sources: dict[tuple[str, int], bool] | None = None
        self._closed_starts: set[tuple[str, str, int]] = set()
        self._next_segment: dict[tuple[str, str, int], int] = {}
        self._last_arrival_ms: dict[tuple[str, str], int] = {}
        # (topic, partition) -> event time its watermark may not pass (records still to come
        # from a join buffer); see :meth:`hold`
        self.holds: dict[tuple[str, int], int] = {}
        # (topic, partition) -> wall-clock time a record of it was last read, and now
        self.partition_arrival_ms: dict[tuple[str, int], int] = {}
        self.now_ms: int | None = None

    # --- restore ---------------------------------------------------------------------
    def restore(self, open_counts: dict[tuple[str, str, int, int], int],
                max_event_time: dict[tuple[str, str, str, int], int],
                closed: Iterable[tuple[str, str, int, int, str]], now_ms: int) -> None:
        """Rebuild the state from the store (one process, at start).

        Args:
            open_counts: rows per open (model, version, start, segment).
            max_event_time: highest event time per (model, version, topic, partition).
            closed: (model, version, start, segment, close_reason) of closed windows.
            now_ms: wall-clock now; idle timers restart from here.
        """
        self.sync(open_counts, max_event_time, {(m, v): now_ms for m, v, _t, _p in max_event_time}, closed)

    def sync(self, open_counts: dict[tuple[str, str, int, int], int],
             max_event_time: dict[tuple[str, str, str, int], int],
             last_arrival_ms: dict[tuple[str, str], int],
             closed: Iterable[tuple[str, str, int, int, str]] = (),
             sources: dict[tuple[str, int], bool] | None = None,
             partition_arrival_ms: dict[tuple[str, int], int] | None = None, now_ms: int | None = None) -> None:
        """Take the consumer group's shared state as stored (called at the start of each
        batch transaction, under the store's window lock).

        Args:
            open_counts: rows per open (model, version, start, segment), all members.
            max_event_time: highest event time per (model, version, topic, partition).
            last_arrival_ms: wall-clock time of the last record per (model, version).
            closed: closed windows (model, version, start, segment, close_reason) that rows
                about to be assigned may fall into; added to those already known.
            sources: every partition of the subscribed topics mapped to whether it has caught
                up with its end; None keeps the current ones.
            partition_arrival_ms: wall-clock time a record of each partition was last read.
            now_ms: wall-clock now.
        """
        if partition_arrival_ms is not None:
            self.partition_arrival_ms.update(partition_arrival_ms)
        if now_ms is not None:
            self.now_ms = now_ms
        self.open = {WindowKey(*k): n for k, n in open_counts.items()}
        self.max_event_time = dict(max_event_time)
        self._last_arrival_ms = dict(last_arrival_ms)
        for m, v, start, seg, reason in closed:
            key = (m, v, start)
            self._next_segment[key] = max(self._next_segment.get(key, 0), seg + 1)
            if reason != "max_records":
                self._closed_starts.add(key)
        for k in self.open:
            key = (k.model, k.model_version, k.start_ms)
            self._next_segment[key] = max(self._next_segment.get(key, 0), k.segment)
        if sources is not None:
            self._sources = dict(sources)

    def start_range(self, event_time_ms: np.ndarray) -> tuple[int, int]:
        """(first, last) window start any of these event times belongs to (non-empty input)."""
        t = np.asarray(event_time_ms, dtype=np.int64)
        last = self._last_start(t)
        return int(last.min()) - self.length_ms + self.slide_ms, int(last.max())

    def _last_start(self, t: np.ndarray) -> np.ndarray:
        return ((t - self.origin_ms) // self.slide_ms) * self.slide_ms + self.origin_ms

    # --- ingest ----------------------------------------------------------------------
    def set_sources(self, sources: dict[tuple[str, int], bool]) -> None:
        """The partitions assigned now, each mapped to whether it has caught up with its end."""
        self._sources = dict(sources)

    def hold(self, source: tuple[str, int], event_time_ms: int | None) -> None:
        """Keep the watermark of ``source``'s records at or below ``event_time_ms`` (None:
        release): a join that still waits for the partner of a half with that event time will
        emit its record later, and that record must not be late."""
        if event_time_ms is None:
            self.holds.pop(source, None)
        else:
            self.holds[source] = int(event_time_ms)

    def held_event_time(self) -> dict[tuple[str, str, str, int], int]:
        """:attr:`max_event_time` with the holds applied: what the store should share."""
        return {k: min(ms, self.holds.get((k[2], k[3]), ms)) for k, ms in self.max_event_time.items()}

    def watermark(self, model: str, model_version: str) -> int | None:
        """The event time up to which windows of this model version may close (see module
        docstring), minus the allowed lateness; None while unknown."""
        seen = {(t, p): min(ms, self.holds.get((t, p), ms))
                for (m, v, t, p), ms in self.max_event_time.items() if (m, v) == (model, model_version)}
        if self._sources is None:
            mark = min(seen.values()) if seen else None
        elif not self._sources:  # nothing assigned (starting, rebalancing): unknown
            mark = None
        else:
            # a partition holds the watermark while it has a backlog, or while it still delivers
            # this model version's records (caught up for a moment in a live stream, or read by
            # a member that has just died); one that has caught up and gone quiet does not
            holding = [tp for tp, caught_up in self._sources.items()
                       if not caught_up or (tp in seen and not self._quiet(tp))]
            if holding:
                marks = [seen.get(tp) for tp in holding]
                mark = None if None in marks else min(marks)
            else:
                mark = max(seen.values()) if seen else None
        return None if mark is None else mark - self.allowed_lateness_ms

    def _quiet(self, source: tuple[str, int]) -> bool:
        last = self.partition_arrival_ms.get(source)
        return last is None or self.now_ms is None or self.now_ms - last >= self.idle_partition_ms

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
        self.now_ms = now_ms
        frames = [(source, frame) for source, frame in batch if not frame.empty]
        if not frames:
            return Assignment([], pd.DataFrame(), pd.DataFrame())
        # partitions of one shape are placed as one frame, so a window gets one part per batch
        # (one stored partial, not one per partition); otherwise each keeps its own columns
        first = frames[0][1]
        uniform = all(f.columns.equals(first.columns) and f.dtypes.equals(first.dtypes) for _s, f in frames[1:])
        combined = _concat([f for _s, f in frames]) if uniform else None
        pieces: list[tuple[WindowKey, int, np.ndarray]] = []  # key, frame number (-1: combined), row positions
        late_masks: list[np.ndarray] = []
        arrived = []
        offset = 0
        for i, (source, frame) in enumerate(frames):
            groups = model_version_groups(frame)
            times = frame["event_time_ms"].to_numpy(np.int64)
            late_mask = self._place(len(frame), groups, times, offset if uniform else 0, -1 if uniform else i,
                                    pieces)
            late_masks.append(late_mask)
            arrived.append((source, groups, times, late_mask))
            offset += len(frame)
        for source, groups, times, late_mask in arrived:
            if late_mask.all():
                continue
            self.partition_arrival_ms[source] = now_ms
            for (model, version), idx in groups:
                t = times if idx is None else times[idx]
                on = ~late_mask if idx is None else ~late_mask[idx]
                if not on.any():
                    continue
                top = int(t[on].max())
                key = (model, version, *source)
                self.max_event_time[key] = max(top, self.max_event_time.get(key, top))
                self._last_arrival_ms[(model, version)] = now_ms
        pieces.sort(key=lambda p: p[0])  # stable: partitions in batch order within a key
        merged: list[tuple[WindowKey, int, list[np.ndarray]]] = []
        for key, number, positions in pieces:
            if uniform and merged and merged[-1][0] == key:
                merged[-1][2].append(positions)
            else:
                merged.append((key, number, [positions]))
        parts = [(key, _rows(combined if number < 0 else frames[number][1],
                             chunks[0] if len(chunks) == 1 else np.concatenate(chunks)))
                 for key, number, chunks in merged]
        if uniform:
            late_all = np.concatenate(late_masks) if len(late_masks) > 1 else late_masks[0]
            if late_all.any():
                late = combined[late_all].reset_index(drop=True)
                on_time = combined[~late_all].reset_index(drop=True)
            else:  # the usual case: no copy of the rows
                late, on_time = combined.iloc[:0], combined
        else:
            late = _concat([f[m] for (_s, f), m in zip(frames, late_masks)])
            on_time = _concat([f[~m] for (_s, f), m in zip(frames, late_masks)])
        return Assignment(parts, late, on_time)

    def _place(self, n_rows: int, groups: list[tuple[tuple[str, str], np.ndarray | None]], times: np.ndarray,
               offset: int, frame_number: int, pieces: list[tuple[WindowKey, int, np.ndarray]]) -> np.ndarray:
        """Append to ``pieces`` (key, ``frame_number``, row positions + ``offset``) the rows of
        one frame of ``n_rows`` rows by segment of every open window they belong to; returns the
        mask of rows that landed in none (late). ``groups``: the frame's
        :func:`model_version_groups`; ``times``: its event times."""
        last = self._last_start(times)
        n_windows = self.length_ms // self.slide_ms  # windows covering each record
        placed = np.zeros(n_rows, dtype=bool)
        for (model, version), idx in groups:
            rows_last = last if idx is None else last[idx]
            positions = np.arange(n_rows) if idx is None else idx
            if n_windows == 1 and rows_last[0] == rows_last[-1] and rows_last.min() == rows_last.max():
                # every row of the pair in one window (the usual case for a polled batch)
                by_start = [(int(rows_last[0]), positions)]
            else:
                row = np.tile(positions, n_windows)
                starts = (rows_last[None, :] - self.slide_ms * np.arange(n_windows)[:, None]).ravel()
                order = np.argsort(starts, kind="stable")
                uniq, first = np.unique(starts[order], return_index=True)
                bounds = [*first.tolist(), len(order)]
                # a row lies once in each of its windows: sorting its positions restores input order
                by_start = [(int(s), np.sort(row[order[a:b]])) for s, a, b in zip(uniq.tolist(), bounds, bounds[1:])]
            for start, members in by_start:
                mv_key = (model, version, start)
                wm = self.watermark(model, version)
                if mv_key in self._closed_starts or (wm is not None and start + self.length_ms <= wm):
                    continue
                placed[members] = True
                seg = self._next_segment.get(mv_key, 0)
                count = self.open.get(WindowKey(model, version, start, seg), 0)
                pos = 0
                while pos < len(members):
                    take = min(self.max_records - count, len(members) - pos)
                    key = WindowKey(model, version, start, seg)
                    pieces.append((key, frame_number, members[pos:pos + take] + offset))
                    self.open[key] = count + take
                    pos += take
                    count += take
                    if count >= self.max_records:
                        seg, count = seg + 1, 0
                self._next_segment[mv_key] = seg
        return ~placed

    # --- closing ---------------------------------------------------------------------
    def due(self, now_ms: int, idle_close_ms: int | None) -> list[tuple[WindowKey, str]]:
        """Open segments that should close now, with the reason.

        Reasons: ``max_records`` (segment full), ``watermark`` (watermark passed the window
        end), ``idle`` (no record for the model version for ``idle_close_ms`` of wall clock, and
        the wall clock is past the window's end plus the allowed lateness — a live model that
        pauses mid-window keeps its window open — and every assigned partition has caught up).
        """
        out: list[tuple[WindowKey, str]] = []
        self.now_ms = now_ms
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


def model_version_groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str], np.ndarray | None]]:
    """The rows of each (model, model_version) pair of a frame, as the pandas group-by on those
    two columns would give them: pairs in sorted order, row positions (int64) in input order,
    rows with a missing model or version left out. The positions are None when one pair holds
    every row (no index array to build or apply)."""
    if frame.empty:
        return []
    m_codes, m_uniq = pd.factorize(frame["model"])
    v_codes, v_uniq = pd.factorize(frame["model_version"])
    if len(m_uniq) == 1 and len(v_uniq) == 1 and m_codes[0] >= 0 and v_codes[0] >= 0 \
            and m_codes.min() >= 0 and v_codes.min() >= 0:
        return [((m_uniq[0], v_uniq[0]), None)]
    codes = m_codes.astype(np.int64) * len(v_uniq) + v_codes
    codes[(m_codes < 0) | (v_codes < 0)] = -1
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    uniq, first = np.unique(sorted_codes, return_index=True)
    bounds = [*first.tolist(), len(order)]
    out = [((m_uniq[c // len(v_uniq)], v_uniq[c % len(v_uniq)]), order[a:b])
           for c, a, b in zip(uniq.tolist(), bounds, bounds[1:]) if c >= 0]
    out.sort(key=lambda g: g[0])
    return out


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True)


def _rows(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The rows at ``positions`` (ascending); a slice, not a copy, when they are contiguous."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return frame.iloc[int(positions[0]):int(positions[-1]) + 1]
    return frame.iloc[positions]
