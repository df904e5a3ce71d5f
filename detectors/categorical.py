"""Tests and distances for categorical (and boolean) columns: reference counts against current counts.

Each window is a mapping category -> count. Both windows are samples, so the
tests work on the 2×k contingency table (row 0 reference, row 1 current)
over the union of categories: a category unseen in the reference gets its
own column, a category that vanished counts 0 in the current row. Booleans
are two categories (``True`` / ``False`` keys; ``numpy.bool_`` keys hash
equal to them). Capping the number of categories with a counted "other"
happens upstream, in :mod:`detectors.profile`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, fisher_exact, norm

from ._checks import StatisticUndefined, TestResult, chi2_log_sf, neg_log10_p
from .distance import PSI_EPS, hellinger_distance, js_distance, psi, total_variation_distance

Counts = Mapping[Hashable, int]

#: Expected count below which the chi-square approximation is not trusted
#: (Cochran, *Some methods for strengthening the common χ² tests*, 1954).
MIN_EXPECTED = 5.0


def contingency_table(ref_counts: Counts, cur_counts: Counts) -> tuple[list[Hashable], np.ndarray]:
    """Build the 2×k table (row 0 reference, row 1 current) over the union of categories.

    Categories are the reference's, in its order, followed by those only the
    current window has, in its order. A category absent from one side counts 0
    there; a category that is 0 on both sides is dropped.

    Returns:
        ``(categories, table)`` with ``table`` int64 of shape ``(2, k)``.

    Raises:
        TypeError: a window's counts are not a mapping (category -> count).
        ValueError: a count is negative or not an integer.
    """
    for name, counts in (("ref_counts", ref_counts), ("cur_counts", cur_counts)):
        if not isinstance(counts, Mapping):
            raise TypeError(f"{name} must map category -> count, got {type(counts).__name__}")
    categories = list(ref_counts) + [c for c in cur_counts if c not in ref_counts]
    table = np.array(
        [[ref_counts.get(c, 0) for c in categories], [cur_counts.get(c, 0) for c in categories]],
        dtype=np.float64,
    ).reshape(2, len(categories))
    if np.any(table < 0) or np.any(table != np.round(table)):
        raise ValueError("category counts must be non-negative integers")
    keep = table.sum(axis=0) > 0
    return [c for c, k in zip(categories, keep) if k], table[:, keep].astype(np.int64)


def _table(ref_counts: Counts, cur_counts: Counts) -> np.ndarray:
    """The contingency table, checked to have a counted value in each window (when k >= 2)."""
    _, table = contingency_table(ref_counts, cur_counts)
    if table.shape[1] >= 2 and np.any(table.sum(axis=1) == 0):
        raise ValueError("both windows need at least one counted value")
    return table


def _chi2_family(table: np.ndarray, lambda_: str, method: str, low_confidence: bool = False) -> TestResult:
    """Pearson (``lambda_="pearson"``) or G (``"log-likelihood"``) test on a 2×k table, no correction."""
    if table.shape[1] < 2:
        return TestResult(0.0, 1.0, method, neg_log10_p=0.0, low_confidence=low_confidence)
    res = chi2_contingency(table, correction=False, lambda_=lambda_)
    stat, p, dof = float(res.statistic), float(res.pvalue), int(res.dof)
    log_p = chi2_log_sf(stat, dof) if p < 1e-300 else None
    return TestResult(stat, p, method, neg_log10_p=neg_log10_p(p, log_p), low_confidence=low_confidence, dof=dof)


def chi2_homogeneity(ref_counts: Counts, cur_counts: Counts) -> TestResult:
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
    The chi-square approximation wants expected counts of about 5 or more
    (:func:`categorical_test` applies that rule). ``neg_log10_p`` uses the
    chi-square log tail, finite when ``p`` underflows.

    Args:
        ref_counts: category -> count in the reference window (>= 0 integers).
        cur_counts: category -> count in the current window (>= 0 integers).

    Returns:
        ``TestResult(statistic=X², p_value=p, method="chi2", dof=k-1)``. When
        fewer than two categories remain (one category on both sides, or
        none) there is nothing to compare: statistic 0, p-value 1, ``dof=None``.

    Raises:
        ValueError: negative or non-integer counts, or (with two or more
            categories) a window whose counts are all zero.
    """
    return _chi2_family(_table(ref_counts, cur_counts), "pearson", "chi2")


def g_test(ref_counts: Counts, cur_counts: Counts) -> TestResult:
    """G-test (log-likelihood ratio test) of homogeneity on the 2×k table (Sokal & Rohlf, *Biometry*, 1995).

    ``G = 2 sum O_ij ln(O_ij / E_ij)`` (cells with ``O = 0`` contribute 0),
    asymptotically chi-square with ``k - 1`` degrees of freedom; expected
    counts as in :func:`chi2_homogeneity`. Computed by
    ``scipy.stats.chi2_contingency(table, correction=False,
    lambda_="log-likelihood")`` (no Williams correction).

    Args:
        ref_counts: category -> count in the reference window (>= 0 integers).
        cur_counts: category -> count in the current window (>= 0 integers).

    Returns:
        ``TestResult(statistic=G, p_value=p, method="g_test", dof=k-1)``;
        fewer than two categories: statistic 0, p-value 1.

    Raises:
        ValueError: as :func:`chi2_homogeneity`.
    """
    return _chi2_family(_table(ref_counts, cur_counts), "log-likelihood", "g_test")


def two_proportion_z_test(ref_successes: int, ref_total: int, cur_successes: int, cur_total: int) -> TestResult:
    """Two-sided two-proportion z-test with pooled variance (e.g. Agresti, *Categorical Data Analysis*, 2013, §3.1).

    ``z = (p_ref - p_cur) / sqrt(p̂ (1 - p̂) (1/n_ref + 1/n_cur))`` with
    ``p̂ = (x_ref + x_cur) / (n_ref + n_cur)``; p-value ``2 Φ(-|z|)``.
    ``z²`` equals the chi-square statistic of the 2×2 table without
    continuity correction, so the p-values agree. Positive ``z``: the
    reference proportion is larger. When ``p̂`` is 0 or 1 (both windows all
    failures or all successes) the proportions are equal: ``z = 0``, p 1.

    Args:
        ref_successes: count of the category of interest in the reference, ``0 <= x <= n``.
        ref_total: reference window size, >= 1.
        cur_successes: count in the current window, ``0 <= x <= n``.
        cur_total: current window size, >= 1.

    Returns:
        ``TestResult(statistic=z, p_value=p, method="two_proportion_z")``.

    Raises:
        ValueError: a count negative or above its total.
        StatisticUndefined: a total is 0.
    """
    if ref_total < 1 or cur_total < 1:
        raise StatisticUndefined("two-proportion z-test needs at least one value in each window")
    if not (0 <= ref_successes <= ref_total and 0 <= cur_successes <= cur_total):
        raise ValueError("successes must lie between 0 and their window's total")
    pooled = (ref_successes + cur_successes) / (ref_total + cur_total)
    if pooled in (0.0, 1.0):
        return TestResult(0.0, 1.0, "two_proportion_z", neg_log10_p=0.0)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / ref_total + 1.0 / cur_total))
    z = (ref_successes / ref_total - cur_successes / cur_total) / se
    p = min(2.0 * float(norm.sf(abs(z))), 1.0)
    log_p = math.log(2.0) + float(norm.logsf(abs(z)))
    return TestResult(z, p, "two_proportion_z", neg_log10_p=neg_log10_p(p, log_p))


def fisher_exact_test(ref_counts: Counts, cur_counts: Counts) -> TestResult:
    """Fisher's exact test on the 2×2 table of two windows over two categories (Fisher 1922).

    Conditional on the margins, the count in the first cell is
    hypergeometric; the two-sided p-value sums the probabilities of all
    tables no more likely than the observed one. Computed by
    ``scipy.stats.fisher_exact(table, alternative="two-sided")``; its
    statistic is the sample odds ratio ``(a d) / (b c)``, which is +inf when
    ``b c = 0`` and 0 when ``a d = 0`` (never NaN: all-zero rows and columns
    are excluded). Use it when an expected count is below 5.

    Args:
        ref_counts: category -> count in the reference window, at most two
            categories over both windows.
        cur_counts: category -> count in the current window.

    Returns:
        ``TestResult(statistic=odds_ratio, p_value=p, method="fisher_exact")``.
        One category over both windows: odds ratio 1, p-value 1.

    Raises:
        ValueError: more than two categories, negative/non-integer counts,
            or an empty window.
    """
    return _fisher(_table(ref_counts, cur_counts))


def _fisher(table: np.ndarray, low_confidence: bool = False) -> TestResult:
    if table.shape[1] < 2:
        return TestResult(1.0, 1.0, "fisher_exact", neg_log10_p=0.0, low_confidence=low_confidence)
    if table.shape[1] != 2:
        raise ValueError(f"Fisher's exact test needs a 2×2 table, got 2×{table.shape[1]}")
    res = fisher_exact(table, alternative="two-sided")
    p = float(res.pvalue)
    return TestResult(float(res.statistic), p, "fisher_exact", neg_log10_p=neg_log10_p(p), low_confidence=low_confidence)


def _min_expected(table: np.ndarray) -> float:
    return float(np.min(np.outer(table.sum(axis=1), table.sum(axis=0)))) / float(table.sum())


def merge_rare_categories(table: np.ndarray, min_expected: float = MIN_EXPECTED) -> tuple[np.ndarray, np.ndarray]:
    """Merge the rarest columns of a 2×k table until every expected count reaches ``min_expected``.

    A column's smallest expected count is ``min(row) * col / N``, so a column
    is rare when its pooled count is below ``min_expected * N / min(row)``.
    The rare columns, and if their sum is still rare the next-smallest
    columns (by pooled count, ties in table order), are summed into one
    column appended last; the other columns keep their order. At least two
    columns always remain, so a table can end up 2×2 and still be rare.

    Args:
        table: 2×k counts, k >= 2, both rows with a positive total.
        min_expected: threshold for expected counts, > 0.

    Returns:
        ``(merged_table, merged_mask)``: the new 2×j table (j <= k) and a
        boolean mask over the k input columns marking those merged. No rare
        column: the input table unchanged and an all-False mask.
    """
    col = table.sum(axis=0)
    need = min_expected * table.sum() / table.sum(axis=1).min()
    order = np.argsort(col, kind="stable")
    n_rare = int(np.sum(col < need))
    merged = np.zeros(col.size, dtype=bool)
    if n_rare == 0:
        return table, merged
    enough = int(np.searchsorted(np.cumsum(col[order]), need, side="left")) + 1
    m = min(max(n_rare, enough, 2), col.size - 1)
    merged[order[:m]] = True
    out = np.column_stack([table[:, ~merged], table[:, merged].sum(axis=1)])
    return out, merged


def categorical_test(ref_counts: Counts, cur_counts: Counts, min_expected: float = MIN_EXPECTED) -> TestResult:
    """Test of homogeneity that chooses the method the counts support.

    - every expected count >= ``min_expected`` (default 5): Pearson's
      chi-square, :func:`chi2_homogeneity`;
    - a 2×2 table with an expected count below it: Fisher's exact test,
      :func:`fisher_exact_test` (exact, so not low-confidence);
    - a 2×k table (k > 2) with an expected count below it: rare categories
      are merged by :func:`merge_rare_categories`, then chi-square on the
      merged table, or Fisher if it became a 2×2 table that is still rare;
      either way ``low_confidence=True``, because merging changes the
      hypothesis tested (a shift among the merged categories is invisible).

    Args:
        ref_counts: category -> count in the reference window (>= 0 integers).
        cur_counts: category -> count in the current window (>= 0 integers).
        min_expected: expected-count threshold, > 0.

    Returns:
        A :class:`TestResult` whose ``method`` says which test ran.

    Raises:
        ValueError: bad counts, an empty window, or ``min_expected <= 0``.
    """
    if not min_expected > 0:
        raise ValueError(f"min_expected must be > 0, got {min_expected}")
    table = _table(ref_counts, cur_counts)
    if table.shape[1] < 2 or _min_expected(table) >= min_expected:
        return _chi2_family(table, "pearson", "chi2")
    if table.shape[1] == 2:
        return _fisher(table)
    merged, _ = merge_rare_categories(table, min_expected)
    if merged.shape[1] == 2 and _min_expected(merged) < min_expected:
        return _fisher(merged, low_confidence=True)
    return _chi2_family(merged, "pearson", "chi2", low_confidence=True)


@dataclass(frozen=True)
class CategoryDistances:
    """Distances between the category proportions of two windows, over the union of categories.

    Attributes:
        psi: Population Stability Index >= 0, nats (see :func:`detectors.distance.psi`).
        js_distance: Jensen–Shannon distance, base 2, in ``[0, 1]``.
        hellinger: Hellinger distance in ``[0, 1]``.
        total_variation: total variation distance in ``[0, 1]``.
    """

    psi: float
    js_distance: float
    hellinger: float
    total_variation: float


def category_distances(ref_counts: Counts, cur_counts: Counts, eps: float = PSI_EPS) -> CategoryDistances:
    """PSI, Jensen–Shannon, Hellinger and total variation distances over the union of categories.

    The categories are aligned by :func:`contingency_table`: an unseen
    category in the current window is its own bucket (reference proportion
    0, smoothed by ``eps`` for PSI only), a vanished category counts 0.

    Args:
        ref_counts: category -> count in the reference window (>= 0 integers).
        cur_counts: category -> count in the current window (>= 0 integers).
        eps: PSI's empty-bucket proportion floor, ``0 < eps < 1`` (default 1e-4).

    Returns:
        :class:`CategoryDistances`.

    Raises:
        ValueError: bad counts or a window with no counted value.
    """
    _, table = contingency_table(ref_counts, cur_counts)
    ref, cur = table[0], table[1]
    return CategoryDistances(
        psi=psi(ref, cur, eps=eps),
        js_distance=js_distance(ref, cur),
        hellinger=hellinger_distance(ref, cur),
        total_variation=total_variation_distance(ref, cur),
    )
