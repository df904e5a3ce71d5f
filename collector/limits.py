"""Caps that keep a collector's memory bounded whatever the fleet sends: how many models it
tracks and how many distinct categories it keeps per feature.

Messages larger than ``kafka.max_message_bytes`` and records with more than
``kafka.max_features`` columns are rejected by the decoders; the two caps here act on decoded
rows, per batch, columnar:

- :class:`ModelLimit`: the first ``max_models`` (model, model version) pairs seen are tracked;
  rows of any further pair are rejected (reason ``too_many_models``) — a misconfigured client
  inventing a version per request cannot grow the windows, the watermarks and the metric
  series without end.
- :class:`CategoryLimit`: per model and categorical column, the first ``max_categories``
  distinct values are kept; later new values are replaced by :data:`OVERFLOW_CATEGORY` and
  counted (reason ``too_many_categories``) — a free-text or id column in the features cannot
  grow the stored rows' vocabularies and the category tables without end.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX
from collector.windows import model_version_groups

# the value that stands for every category beyond the cap (the profiles' overflow bucket)
OVERFLOW_CATEGORY = "__other__"


class ModelLimit:
    """Tracks at most ``max_models`` (model, model version) pairs.

    Args:
        max_models: pairs accepted (> 0).
        known: pairs already tracked (e.g. from the store at start); they count towards the cap.

    Raises:
        ValueError: ``max_models`` < 1.
    """

    def __init__(self, max_models: int, known: Iterable[tuple[str, str]] = ()) -> None:
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = int(max_models)
        self.known: set[tuple[str, str]] = set(known)

    def admit(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean mask (length ``len(frame)``) of rows whose model version is tracked; new
        pairs are admitted in order of first appearance while there is room."""
        if frame.empty:
            return np.ones(0, dtype=bool)
        groups = model_version_groups(frame)
        if len(groups) == 1 and groups[0][1] is None and groups[0][0] in self.known:
            return np.ones(len(frame), dtype=bool)  # the usual case: one tracked pair per batch
        pairs = frame[["model", "model_version"]].drop_duplicates()
        allowed: set[tuple[str, str]] = set()
        for pair in zip(pairs["model"], pairs["model_version"]):
            if pair in self.known:
                allowed.add(pair)
            elif len(self.known) < self.max_models:
                self.known.add(pair)
                allowed.add(pair)
        if len(allowed) == len(pairs):
            return np.ones(len(frame), dtype=bool)
        keys = pd.MultiIndex.from_frame(frame[["model", "model_version"]])
        return keys.isin(list(allowed))


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
