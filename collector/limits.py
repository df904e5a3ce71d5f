"""Caps that keep a collector's memory bounded whatever the fleet sends: how many models it
tracks and how many distinct categories it keeps per feature.

Messages larger than ``kafka.max_message_bytes`` and records with more than
``kafka.max_features`` columns are rejected by the decoders; the two caps here act on decoded
rows, per batch, columnar:

- :class:`ModelLimit`: the first ``max_models`` (model, model version) pairs seen are tracked;
  rows of any further pair are rejected (reason ``too_many_models``) — a misconfigured client
  inventing a version per request cannot grow the windows, the watermarks and the metric
  series without end. A tracked pair that has sent nothing for ``idle_release_ms`` and has no
  open window gives its slot up (a version rolled out and retired), so the cap bounds the
  versions live at a time rather than all versions ever seen.
- :class:`CategoryLimit`: per model and categorical column, the first ``max_categories``
  distinct values are kept; later new values are replaced by :data:`OVERFLOW_CATEGORY` and
  counted (reason ``too_many_categories``) — a free-text or id column in the features cannot
  grow the stored rows' vocabularies and the category tables without end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX
from collector.windows import model_version_groups

# the value that stands for every category beyond the cap (the profiles' overflow bucket)
OVERFLOW_CATEGORY = "__other__"

log = logging.getLogger(__name__)

Pair = tuple[str, str]


class ModelLimit:
    """Tracks at most ``max_models`` (model, model version) pairs.

    Args:
        max_models: pairs accepted (> 0).
        known: pairs already tracked (e.g. from the store at start); they count towards the cap.
            Beyond the cap, idle ones without an open window are released at once (longest
            idle first) down to the cap.
        idle_release_ms: a tracked pair whose last record was seen this long ago (wall clock,
            milliseconds, > 0) and that has no open window is released when a new pair needs
            its slot (the longest idle first); None: never.
        last_seen: wall-clock epoch milliseconds of the last record per known pair (e.g. the
            store's last arrivals); a known pair missing here counts as seen at ``now_ms``.
        open_pairs: returns the pairs with a window still open; these are never released, so
            no slot is given up under a window still being filled. None: no pair has one.
        now_ms: wall-clock epoch milliseconds at construction; None: the current time.

    Raises:
        ValueError: ``max_models`` < 1 or ``idle_release_ms`` < 1.
    """

    def __init__(self, max_models: int, known: Iterable[Pair] = (), idle_release_ms: int | None = None,
                 last_seen: dict[Pair, int] | None = None,
                 open_pairs: Callable[[], Iterable[Pair]] | None = None, now_ms: int | None = None) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        if idle_release_ms is not None and idle_release_ms < 1:
            raise ValueError("idle_release_ms must be at least 1 (or None)")
        self.max_models = int(max_models)
        self.idle_release_ms = idle_release_ms
        self._open_pairs = open_pairs
        self.known: set[Pair] = set(known)
        start = _now_ms() if now_ms is None else int(now_ms)
        stored = last_seen or {}
        #: wall-clock epoch ms of the last record admitted per tracked pair
        self.last_seen: dict[Pair, int] = {p: int(stored.get(p, start)) for p in self.known}
        #: pairs released so far (a count, for observation)
        self.released = 0
        if len(self.known) > self.max_models:  # e.g. a store holding retired versions
            idle = self._idle(start, set())
            while idle and len(self.known) > self.max_models:
                self._release(idle.pop(), start)

    def admit(self, frame: pd.DataFrame, now_ms: int | None = None) -> np.ndarray:
        """Boolean mask (length ``len(frame)``) of rows whose model version is tracked; new
        pairs are admitted in order of first appearance while there is room, the longest idle
        pair released for each when there is none.

        Args:
            frame: decoded rows with ``model`` and ``model_version``.
            now_ms: wall-clock epoch milliseconds of this batch; None: the current time.
        """
        if frame.empty:
            return np.ones(0, dtype=bool)
        now = _now_ms() if now_ms is None else int(now_ms)
        groups = model_version_groups(frame)
        if len(groups) == 1 and groups[0][1] is None and groups[0][0] in self.known:
            self.last_seen[groups[0][0]] = now
            return np.ones(len(frame), dtype=bool)  # the usual case: one tracked pair per batch
        pairs = frame[["model", "model_version"]].drop_duplicates()
        batch = set(zip(pairs["model"], pairs["model_version"]))
        allowed: set[Pair] = set()
        idle: list[Pair] | None = None  # releasable pairs, longest idle last; found once per batch
        for pair in zip(pairs["model"], pairs["model_version"]):
            if pair not in self.known and len(self.known) >= self.max_models and self.idle_release_ms is not None:
                if idle is None:
                    idle = self._idle(now, batch)
                if idle:
                    self._release(idle.pop(), now)
            if pair in self.known or len(self.known) < self.max_models:
                self.known.add(pair)
                self.last_seen[pair] = now
                allowed.add(pair)
        if len(allowed) == len(pairs):
            return np.ones(len(frame), dtype=bool)
        keys = pd.MultiIndex.from_frame(frame[["model", "model_version"]])
        return keys.isin(list(allowed))

    def _idle(self, now: int, batch: set[Pair]) -> list[Pair]:
        """Tracked pairs idle for ``idle_release_ms`` with no open window and no row in this
        batch, most recently seen first."""
        if self.idle_release_ms is None:
            return []
        cutoff = now - self.idle_release_ms
        idle = [p for p in self.known if self.last_seen.get(p, now) <= cutoff and p not in batch]
        if idle:
            busy = set(self._open_pairs()) if self._open_pairs is not None else set()
            idle = [p for p in idle if p not in busy]
        return sorted(idle, key=lambda p: (self.last_seen.get(p, now), p), reverse=True)

    def _release(self, pair: Pair, now: int) -> None:
        self.known.discard(pair)
        seen = self.last_seen.pop(pair, now)
        self.released += 1
        log.info("model %r version %r: its kafka.max_models slot released, no records for %d s",
                 pair[0], pair[1], (now - seen) // 1000)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CategoryLimit:
    """Keeps at most ``max_categories`` distinct values per (model, column) of text columns.

    Args:
        max_categories: distinct values kept per model and column (> 0).

    Raises:
        ValueError: ``max_categories`` < 1.
    """

    def __init__(self, max_categories: int) -> None:
        if max_categories < 1:
            raise ValueError("max_categories must be at least 1")
        self.max_categories = int(max_categories)
        self._seen: dict[tuple[str, str], set[str]] = {}

    def apply(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
        """Replace values beyond the cap by :data:`OVERFLOW_CATEGORY`.

        Args:
            frame: decoded rows (canonical columns); only object (text) feature and prediction
                columns are looked at.

        Returns:
            The frame (a copy if anything changed) and the number of values replaced per model.
        """
        replaced: dict[str, int] = {}
        if frame.empty:
            return frame, replaced
        columns = [c for c, dtype in frame.dtypes.items()
                   if c.startswith((FEATURE_PREFIX, PREDICTION_PREFIX)) and not is_numeric_dtype(dtype)]
        if not columns:
            return frame, replaced
        codes, models = pd.factorize(frame["model"])
        if len(models) == 1 and codes.min() >= 0:
            by_model = [(models[0], None)]  # one model: no index array to build or apply
        else:
            by_model = list(frame.groupby("model", sort=False).indices.items())
        out = None
        for model, idx in by_model:
            for col in columns:
                column = frame[col] if idx is None else frame[col].iloc[idx]
                uniques = pd.unique(column)
                present = [v for v, missing in zip(uniques, pd.isna(uniques)) if not missing]
                seen = self._seen.setdefault((model, col), set())
                if len(seen) + len(present) <= self.max_categories or all(v in seen for v in present):
                    seen.update(present)
                    continue
                for v in present:  # admit new values in order of first appearance while there is room
                    if len(seen) >= self.max_categories:
                        break
                    seen.add(v)
                values = column.to_numpy(dtype=object)
                over = pd.notna(values) & ~pd.Series(values).isin(seen).to_numpy()
                if not over.any():
                    continue
                if out is None:
                    out = frame.copy()
                rows = np.flatnonzero(over) if idx is None else idx[over]
                col_values = out[col].to_numpy(dtype=object, copy=True)
                col_values[rows] = OVERFLOW_CATEGORY
                out[col] = pd.Series(col_values, index=out.index, dtype=out[col].dtype)
                replaced[model] = replaced.get(model, 0) + int(over.sum())
        return (frame if out is None else out), replaced
