"""Evidently 0.7.23's default rule with the reference side computed once, for many windows.

:func:`detectors.evidently_rule.evidently_dataset_drift` re-derives everything about the
reference on every call (cleaning, sorting it for the Wasserstein distance, counting its
values), which is most of its cost when one reference meets thousands of 5,000-row windows.
:class:`EvidentlyReference` keeps the cleaned, sorted reference values, their standard
deviation and value counts, and evaluates each window with the same formulas:

- Wasserstein-1 of the empirical distributions, ``sum |F_ref - F_cur| * diff(x)`` over the
  merged sorted values, as ``scipy.stats.wasserstein_distance`` computes it, divided by
  ``max(np.std(reference), 0.001)``;
- Jensen–Shannon distance (natural log) of the value proportions, from the same aligned
  counts and the same scipy call.

Only the reference sizes above 1,000 rows take this path (the benchmark's references);
anything else falls back to :func:`detectors.evidently_rule.evidently_column_drift`.
``tests/test_bench.py`` asserts that every column's test, statistic (to 1e-9) and decision,
and the dataset verdict, equal :func:`evidently_dataset_drift`'s on drifted and stable windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from detectors.evidently_rule import (
    DISTANCE_THRESHOLD,
    DRIFT_SHARE,
    FEW_VALUES_MAX,
    SMALL_REFERENCE_MAX,
    WASSERSTEIN_STD_FLOOR,
    EvidentlyColumnResult,
    _clean,
    evidently_column_drift,
    evidently_column_type,
)


class _Column:
    def __init__(self, values: pd.Series) -> None:
        self.raw = values
        self.clean = _clean(values)
        self.n = len(self.clean)
        self.counts = self.clean.value_counts()
        self.sorted: np.ndarray | None = None
        self.std = 0.0
        if pd.api.types.is_numeric_dtype(self.clean.dtype) and not pd.api.types.is_bool_dtype(self.clean.dtype):
            self.sorted = np.sort(self.clean.to_numpy(np.float64))
            self.std = float(np.std(self.clean))


def wasserstein_sorted(ref_sorted: np.ndarray, cur: np.ndarray) -> float:
    """Wasserstein-1 distance between the empirical distributions of ``ref_sorted`` (sorted) and ``cur``.

    The formula of ``scipy.stats.wasserstein_distance`` (unweighted): the merged sorted values
    ``x``, and ``sum(|F_ref(x_i) - F_cur(x_i)| * (x_{i+1} - x_i))``. The merge places the
    current values by binary search instead of sorting both samples again; within a run of tied
    values the running counts differ from scipy's right-continuous CDFs, but every such term
    is multiplied by a zero gap.
    """
    cur_sorted = np.sort(cur)
    n_r, n_c = ref_sorted.size, cur_sorted.size
    pos = np.searchsorted(ref_sorted, cur_sorted, side="right") + np.arange(n_c)
    merged = np.empty(n_r + n_c)
    from_ref = np.ones(n_r + n_c, dtype=bool)
    from_ref[pos] = False
    merged[pos] = cur_sorted
    merged[from_ref] = ref_sorted
    f_ref = np.cumsum(from_ref)[:-1] / n_r
    f_cur = np.cumsum(~from_ref)[:-1] / n_c
    return float(np.dot(np.abs(f_ref - f_cur), np.diff(merged)))


class EvidentlyReference:
    """One reference frame, ready to be held against many current windows (see the module docstring)."""

    def __init__(self, reference_frame: pd.DataFrame) -> None:
        self.frame = reference_frame
        self.columns = {c: _Column(reference_frame[c]) for c in reference_frame.columns}

    def column(self, name: str, current: pd.Series) -> EvidentlyColumnResult:
        ref = self.columns[name]
        column_type = evidently_column_type(current)
        if ref.n <= SMALL_REFERENCE_MAX or column_type not in ("num", "cat"):
            return evidently_column_drift(ref.raw, current)
        cur = _clean(current)
        if cur.empty or (column_type == "num" and ref.sorted is None):
            return evidently_column_drift(ref.raw, current)  # raises as Evidently would
        if column_type == "num" and ref.counts.size > FEW_VALUES_MAX:
            n_distinct = FEW_VALUES_MAX + 1  # the reference alone settles the test
        else:
            cur_counts = cur.value_counts()
            n_distinct = int(ref.counts.index.union(cur_counts.index).size)
        if column_type == "num" and n_distinct > FEW_VALUES_MAX:
            assert ref.sorted is not None
            statistic = wasserstein_sorted(ref.sorted, cur.to_numpy(np.float64)) / max(ref.std, WASSERSTEIN_STD_FLOOR)
            stattest = "wasserstein"
        else:
            table = pd.concat([ref.counts, cur_counts], axis=1).fillna(0)
            p = table.iloc[:, 0].to_numpy(np.float64) / ref.n
            q = table.iloc[:, 1].to_numpy(np.float64) / len(cur)
            statistic = float(jensenshannon(p, q))
            statistic = 0.0 if np.isnan(statistic) else statistic
            stattest = "jensenshannon"
        return EvidentlyColumnResult(column=str(name), column_type=column_type, stattest=stattest,
                                     statistic=float(statistic), threshold=DISTANCE_THRESHOLD,
                                     drifted=bool(statistic >= DISTANCE_THRESHOLD))

    def dataset(self, current_frame: pd.DataFrame,
                drift_share: float = DRIFT_SHARE) -> tuple[list[EvidentlyColumnResult], float, bool]:
        """``(results, share, drifted)`` as :func:`detectors.evidently_rule.evidently_dataset_drift`."""
        results = [self.column(c, current_frame[c]) for c in current_frame.columns
                   if evidently_column_type(current_frame[c]) is not None]
        share = sum(r.drifted for r in results) / len(results)
        return results, share, bool(share >= drift_share)
