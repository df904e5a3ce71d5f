"""Two-sample hypothesis tests: is the current window drawn from the reference distribution?

Null hypothesis for both tests: the reference and the current window come from
the same distribution. A small p-value is evidence of drift. With very large
windows even negligible shifts become significant, so read the p-value
together with an effect size from :mod:`detectors.distance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import chi2_contingency, ks_2samp

from ._checks import finite_sample


@dataclass(frozen=True)
class TestResult:
    """Outcome of a two-sample test.

    Attributes:
        statistic: the test statistic (KS ``D`` in ``[0, 1]``; Pearson ``X²`` >= 0).
        p_value: probability, under the null hypothesis, of a statistic at
            least this extreme; in ``[0, 1]``.
        method: ``"ks"`` or ``"chi2"``.
    """

    __test__ = False  # not a pytest test class despite the name

    statistic: float
    p_value: float
    method: str


def ks_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Two-sided two-sample Kolmogorov–Smirnov test (Kolmogorov 1933; Smirnov 1948).

    ``D = sup_x |F_ref(x) - F_cur(x)|`` over the empirical CDFs; the p-value
    comes from ``scipy.stats.ks_2samp(ref, cur, alternative="two-sided")``
    (exact for small samples, asymptotic for large ones). Meant for
    continuous data: with many ties the p-value is conservative.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.

    Returns:
        ``TestResult(statistic=D, p_value=p, method="ks")``, ``D`` in ``[0, 1]``.

    Raises:
        ValueError: a sample is empty, not 1-D, or holds NaN/±inf.
    """
    u = finite_sample(ref_sample, "ref_sample")
    v = finite_sample(cur_sample, "cur_sample")
    res = ks_2samp(u, v, alternative="two-sided")
    return TestResult(statistic=float(res.statistic), p_value=float(res.pvalue), method="ks")


def contingency_table(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> tuple[list[str], np.ndarray]:
    """Build the 2×k table (row 0 reference, row 1 current) over the union of categories.

    Categories are the reference's, in its order, followed by those only the
    current window has, in its order. A category absent from one side counts 0
    there; a category that is 0 on both sides is dropped.

    Returns:
        ``(categories, table)`` with ``table`` int64 of shape ``(2, k)``.

    Raises:
        ValueError: a count is negative or not an integer.
    """
    categories = list(ref_counts) + [c for c in cur_counts if c not in ref_counts]
    table = np.array(
        [[ref_counts.get(c, 0) for c in categories], [cur_counts.get(c, 0) for c in categories]],
        dtype=np.float64,
    ).reshape(2, len(categories))
    if np.any(table < 0) or np.any(table != np.round(table)):
        raise ValueError("category counts must be non-negative integers")
    keep = table.sum(axis=0) > 0
    return [c for c, k in zip(categories, keep) if k], table[:, keep].astype(np.int64)


def chi2_homogeneity(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> TestResult:
    """Pearson's chi-square test of homogeneity between two windows (Pearson 1900).

    Both windows are samples, so this is the 2×k contingency-table test, not
    a goodness-of-fit test that would treat the reference proportions as
    exact: expected counts come from the pooled proportions,
    ``E_ij = row_i * col_j / N``, and ``X² = sum (O_ij - E_ij)² / E_ij`` with
    ``k - 1`` degrees of freedom (see :func:`contingency_table` for how the
    table is built). Computed by ``scipy.stats.chi2_contingency`` with
    ``correction=False`` for every k, 2×2 included: Yates' continuity
    correction is only defined for one degree of freedom and would make the
    statistic jump in meaning when a window happens to have two categories.
    The chi-square approximation wants expected counts of about 5 or more.

    Args:
        ref_counts: category -> count in the reference window (>= 0 integers).
        cur_counts: category -> count in the current window (>= 0 integers).

    Returns:
        ``TestResult(statistic=X², p_value=p, method="chi2")``. When fewer than
        two categories remain (one category on both sides, or none) there is
        nothing to compare: statistic 0, p-value 1.

    Raises:
        ValueError: negative or non-integer counts, or (with two or more
            categories) a window whose counts are all zero.
    """
    _, table = contingency_table(ref_counts, cur_counts)
    if table.shape[1] < 2:
        return TestResult(statistic=0.0, p_value=1.0, method="chi2")
    if np.any(table.sum(axis=1) == 0):
        raise ValueError("both windows need at least one counted value")
    res = chi2_contingency(table, correction=False)
    return TestResult(statistic=float(res.statistic), p_value=float(res.pvalue), method="chi2")
