"""Two-sample hypothesis tests on numeric values: is the current window drawn from the reference distribution?

Every test here takes two finite 1-D samples (reference first, current second)
and returns a :class:`TestResult`. Null hypothesis: both windows come from the
same distribution (for Welch's t-test: have the same mean). A small p-value is
evidence of drift. With very large windows even negligible shifts become
significant, so read the p-value together with an effect size from
:mod:`detectors.distance`; ``neg_log10_p`` keeps ranking windows whose
p-values underflow to 0.0.

Input is widened to float64, so float32 columns give the float64 result.
Samples too small for a test raise :class:`StatisticUndefined` (a
ValueError) for the caller to report as "insufficient data"; NaN is never
returned.

The categorical tests (chi-square, G-test, Fisher) live in
:mod:`detectors.categorical`; ``chi2_homogeneity`` and ``contingency_table``
are re-exported here for existing callers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import (
    PermutationMethod,
    anderson_ksamp,
    cramervonmises_2samp,
    epps_singleton_2samp,
    ks_2samp,
    kstwo,
    mannwhitneyu,
    norm,
    ttest_ind,
)

from ._checks import (
    StatisticUndefined,
    TestResult,
    chi2_log_sf,
    finite_sample,
    is_constant,
    merged_ecdf_counts,
    neg_log10_p,
    quiet,
    t_log_sf,
)
from .categorical import chi2_homogeneity, contingency_table

__all__ = [
    "AD_MIN_POOLED",
    "AD_P_CAP",
    "ES_MIN_SIZE",
    "AD_P_FLOOR",
    "StatisticUndefined",
    "TestResult",
    "anderson_darling_test",
    "chi2_homogeneity",
    "contingency_table",
    "cramer_von_mises_test",
    "epps_singleton_test",
    "ks_and_wasserstein_sorted",
    "ks_test",
    "mann_whitney_u_test",
    "welch_t_test",
]

#: Bounds of scipy's tabulated Anderson–Darling p-value (no permutations).
AD_P_FLOOR, AD_P_CAP = 0.001, 0.25
#: Fewest pooled values for which the Anderson–Darling variance is defined
#: (its formula divides by ``(N-1)(N-2)(N-3)``).
AD_MIN_POOLED = 4


def _samples(ref_sample: ArrayLike, cur_sample: ArrayLike, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    return finite_sample(ref_sample, "ref_sample", min_size), finite_sample(cur_sample, "cur_sample", min_size)


def _same_constant(u: np.ndarray, v: np.ndarray) -> bool:
    """Both windows hold one and the same value: identical distributions."""
    return is_constant(u) and is_constant(v) and u[0] == v[0]


def _no_difference(method: str) -> TestResult:
    return TestResult(statistic=0.0, p_value=1.0, method=method, neg_log10_p=0.0)


def ks_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Two-sided two-sample Kolmogorov–Smirnov test (Kolmogorov 1933; Smirnov 1948).

    ``D = sup_x |F_ref(x) - F_cur(x)|`` over the empirical CDFs; the p-value
    comes from ``scipy.stats.ks_2samp(ref, cur, alternative="two-sided")``
    (exact for small samples, asymptotic for large ones). Meant for
    continuous data: with many ties the p-value is conservative.

    When the p-value underflows to 0.0, ``neg_log10_p`` comes from the
    asymptotic Kolmogorov tail ``p ≈ 2 exp(-2 n_e D²)``, ``n_e = n m / (n + m)``
    (its leading term; the others are smaller by ``exp(-6 n_e D²)``).

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.

    Returns:
        ``TestResult(statistic=D, p_value=p, method="ks")``, ``D`` in ``[0, 1]``.

    Raises:
        ValueError: a sample is not 1-D or holds NaN/±inf.
        StatisticUndefined: a sample is empty.
    """
    u, v = _samples(ref_sample, cur_sample)
    res = ks_2samp(u, v, alternative="two-sided")
    d, p = float(res.statistic), float(res.pvalue)
    return _ks_result(d, p, u.size, v.size)


def _ks_result(d: float, p: float, n1: int, n2: int) -> TestResult:
    """KS result whose ``-log10 p`` falls back to the asymptotic tail ``2 exp(-2 n_e D²)`` when p underflows."""
    n_e = n1 * n2 / (n1 + n2)
    return TestResult(d, p, "ks", neg_log10_p=neg_log10_p(p, math.log(2.0) - 2.0 * n_e * d * d))


#: From this normalised Cramér–von Mises statistic on, the tail's leading term gives the p-value.
CVM_TAIL_FROM = 3.0
#: Above this sample size scipy's ks_2samp uses the asymptotic p-value (its ``MAX_AUTO_N``).
KS_EXACT_MAX_N = 10_000
# Values beyond this magnitude go through the rescaling path of distance.wasserstein.
_LARGE = 2.0**500


def ks_and_wasserstein_sorted(ref_sorted: np.ndarray, cur_sorted: np.ndarray) -> tuple[TestResult, float]:
    """Kolmogorov–Smirnov test and Wasserstein-1 distance of two ascending samples in one pass.

    Both statistics are functionals of the same two empirical CDFs: over the merged values
    ``z``, ``D = max |F_ref(z) - F_cur(z)|`` and ``W1 = sum |F_ref(z_i) - F_cur(z_i)| (z_(i+1) - z_i)``.
    Sorting dominates their cost, so this merges the two sorted samples once (linear time for
    two sorted runs) and reads both CDFs off a running count there
    (:func:`detectors._checks.merged_ecdf_counts`); a reference sample sorted once serves every
    window. The arithmetic mirrors ``scipy.stats.ks_2samp`` (asymptotic p-value
    ``kstwo.sf(D, round(n m / (n + m)))`` for samples above ``KS_EXACT_MAX_N``) and
    ``scipy.stats.wasserstein_distance`` step for step, so the numbers are identical (tests
    assert equality); smaller samples, where scipy computes the exact p-value, and values
    beyond ``2**500`` in magnitude go through :func:`ks_test` and
    :func:`detectors.distance.wasserstein` directly.

    Args:
        ref_sorted: reference values, shape ``(n,)``, n >= 1, finite, ascending.
        cur_sorted: current values, shape ``(m,)``, m >= 1, finite, ascending.

    Returns:
        ``(ks_test(ref, cur), wasserstein(ref, cur))``.

    Raises:
        ValueError: not 1-D or non-finite values (ordering is the caller's promise and is
            not checked).
        StatisticUndefined: an empty sample.
    """
    from .distance import wasserstein

    u, v = _samples(ref_sorted, cur_sorted)
    n1, n2 = u.size, v.size
    if max(n1, n2) <= KS_EXACT_MAX_N or max(abs(u[0]), abs(u[-1]), abs(v[0]), abs(v[-1])) > _LARGE:
        return ks_test(u, v), wasserstein(u, v)
    merged, count_u, count_v = merged_ecdf_counts(u, v)
    cdf_u = count_u / n1
    cdf_v = count_v / n2
    diffs = cdf_u - cdf_v
    # as ks_2samp: the larger of the two one-sided deviations, minus side clipped at 0
    min_s = float(np.clip(-diffs[np.argmin(diffs)], 0, 1))
    max_s = float(diffs[np.argmax(diffs)])
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    p = float(np.clip(kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
    test = _ks_result(d, p, n1, n2)
    # as wasserstein_distance: |F_u - F_v| at every merged value but the last, times the gaps
    w1 = float(np.vecdot(np.abs(diffs[:-1]), np.diff(merged)))
    return test, w1


def anderson_darling_test(
    ref_sample: ArrayLike, cur_sample: ArrayLike, n_resamples: int | None = None, seed: int = 0
) -> TestResult:
    """Two-sample Anderson–Darling test, midrank variant (Scholz & Stephens, *K-sample Anderson–Darling tests*, JASA 1987).

    The statistic is Scholz & Stephens' standardised ``T = (A²_akN - (k-1)) / σ_N``
    with ``k = 2`` (mean 0 under the null hypothesis), from
    ``scipy.stats.anderson_ksamp([ref, cur], variant="midrank")``; the midrank
    version is valid for continuous and discrete (tied) data.

    p-value: with ``n_resamples=None`` it is scipy's interpolation in
    Scholz & Stephens' table, which is clipped to ``[0.001, 0.25]``
    (:data:`AD_P_FLOOR`, :data:`AD_P_CAP`): 0.001 means "at most 0.001"
    and 0.25 "at least 0.25". Those bounds are reported as is, with
    ``neg_log10_p=None`` because the true value is unknown there. Pass
    ``n_resamples`` for a permutation p-value instead
    (``scipy.stats.PermutationMethod`` with ``numpy.random.default_rng(seed)``;
    ``p = (b + 1) / (n_resamples + 1)``, never 0; cost grows with
    ``n_resamples × (n + m) log(n + m)``).

    Both windows constant at the same value (scipy refuses: no two distinct
    observations) give statistic 0 (the null mean) and p-value 1. Fewer
    than 4 values in both windows together (:data:`AD_MIN_POOLED`) leave
    the statistic's variance undefined.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.
        n_resamples: permutations for the p-value, >= 1, or None for the table.
        seed: seed of the permutation generator.

    Returns:
        ``TestResult(statistic=T, p_value=p, method="anderson_darling")``.

    Raises:
        ValueError: bad sample (see :func:`ks_test`) or ``n_resamples < 1``.
        StatisticUndefined: a sample is empty, or ``n + m < 4`` (unless
            both are one shared constant).
    """
    u, v = _samples(ref_sample, cur_sample)
    if n_resamples is not None and n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if _same_constant(u, v):
        return _no_difference("anderson_darling")
    if u.size + v.size < AD_MIN_POOLED:
        raise StatisticUndefined(f"Anderson–Darling test needs at least {AD_MIN_POOLED} values in both windows together")
    if n_resamples is None:
        with quiet("p-value floored", "p-value capped"):
            res = anderson_ksamp([u, v], variant="midrank")
        p = float(res.pvalue)
        bounded = p <= AD_P_FLOOR or p >= AD_P_CAP
        return TestResult(float(res.statistic), p, "anderson_darling", neg_log10_p=None if bounded else neg_log10_p(p))
    method = PermutationMethod(n_resamples=n_resamples, rng=np.random.default_rng(seed))
    res = anderson_ksamp([u, v], variant="midrank", method=method)
    p = float(res.pvalue)
    return TestResult(float(res.statistic), p, "anderson_darling", neg_log10_p=neg_log10_p(p))


def cramer_von_mises_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Two-sample Cramér–von Mises test (Anderson, *On the distribution of the two-sample Cramér–von Mises criterion*, 1962).

    ``T = n m / (n + m) ∫ (F_ref - F_cur)² dH`` with ``H`` the pooled
    empirical CDF, from ``scipy.stats.cramervonmises_2samp(ref, cur)``
    (exact p-value while both samples hold at most 20 values, asymptotic
    otherwise). The asymptotic p-value is ``1 - F(t_n)``, ``F`` the limiting
    distribution of the one-sample statistic and ``t_n`` the normalised
    ``T`` (Anderson 1962, eq. 15). scipy evaluates ``1 - F`` directly, which
    loses its digits beyond ``t_n = 3`` (p about 8e-8) and even grows again
    (a 5-sigma shift between windows of 5,000 reads ``p = 2e-7``). There the
    leading term of the tail is used instead: ``omega^2 = sum Z_k^2 / (k pi)^2``
    (Karhunen–Loève), so ``P(omega^2 > x) ~ 2 sqrt(2) Phi_bar(pi sqrt(x))``,
    within 1.3% of the full series at ``x = 3`` and closer beyond; it gives
    ``p`` and ``neg_log10_p`` (finite however small ``p`` is).

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 2, finite.
        cur_sample: current values, shape ``(m,)``, m >= 2, finite.

    Returns:
        ``TestResult(statistic=T, p_value=p, method="cramer_von_mises")``, ``T >= 0``.

    Raises:
        ValueError: a sample is not 1-D or holds NaN/±inf.
        StatisticUndefined: a sample has fewer than 2 values.
    """
    u, v = _samples(ref_sample, cur_sample, min_size=2)
    res = cramervonmises_2samp(u, v)
    t, p = float(res.statistic), float(res.pvalue)
    nx, ny = u.size, v.size
    if max(nx, ny) > 20:  # scipy's asymptotic branch: normalise T as it does
        k, n = nx * ny, nx + ny
        et = (1 + 1 / n) / 6
        vt = (n + 1) * (4 * k * n - 3 * (nx**2 + ny**2) - 2 * k) / (45 * n**2 * 4 * k)
        tn = 1 / 6 + (t - et) / math.sqrt(45 * vt)
        if tn >= CVM_TAIL_FROM:
            log_p = math.log(2 * math.sqrt(2)) + float(norm.logsf(math.pi * math.sqrt(tn)))
            p = math.exp(log_p)
            return TestResult(t, p, "cramer_von_mises", neg_log10_p=neg_log10_p(p, log_p))
    return TestResult(t, p, "cramer_von_mises", neg_log10_p=neg_log10_p(p))


def mann_whitney_u_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Two-sided Mann–Whitney U test (Mann & Whitney 1947).

    ``U`` is the reference's statistic: the number of (reference, current)
    pairs with the reference value larger, ties counting 1/2; range
    ``[0, n m]``, ``n m / 2`` under no difference. From
    ``scipy.stats.mannwhitneyu(ref, cur, alternative="two-sided")``: exact
    p-value for small samples without ties, otherwise the normal
    approximation with tie and continuity correction. When that p-value
    underflows, ``neg_log10_p`` comes from ``ln 2 + norm.logsf(z)`` with the
    same ``z``. Both windows constant at the same value: ``U = n m / 2``,
    p-value 1.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.

    Returns:
        ``TestResult(statistic=U, p_value=p, method="mann_whitney_u")``.

    Raises:
        ValueError: a sample is not 1-D or holds NaN/±inf.
        StatisticUndefined: a sample is empty.
    """
    u, v = _samples(ref_sample, cur_sample)
    res = mannwhitneyu(u, v, alternative="two-sided")
    stat, p = float(res.statistic), float(res.pvalue)
    log_p = None
    if p < 1e-300:  # only then is z needed (the exact method never gets here)
        n1, n2 = u.size, v.size
        _, ties = np.unique(np.concatenate([u, v]), return_counts=True)
        tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties))
        n = n1 + n2
        s = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
        z = (max(stat, n1 * n2 - stat) - n1 * n2 / 2.0 - 0.5) / s
        log_p = math.log(2.0) + float(norm.logsf(z))
    return TestResult(stat, p, "mann_whitney_u", neg_log10_p=neg_log10_p(p, log_p))


def welch_t_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Welch's unequal-variances t-test of equal means (Welch, *Biometrika* 1947).

    ``t = (mean_ref - mean_cur) / sqrt(s²_ref / n + s²_cur / m)`` with the
    Welch–Satterthwaite degrees of freedom, from
    ``scipy.stats.ttest_ind(ref, cur, equal_var=False)``; positive ``t``
    means the reference mean is larger. It tests the mean only: a change
    of spread or shape with the same mean is not drift for this test.
    ``neg_log10_p`` uses ``ln 2 + ln P(T > |t|)``, exact in the far tail
    (see :func:`detectors._checks.t_log_sf`).

    Defined values where scipy gives NaN: both windows constant at the same
    value give ``t = 0``, p-value 1, ``dof=None``; both constant at
    different values have zero standard error, so the difference is
    certain: ``t = ±inf`` (sign as above), p-value 0.0,
    ``neg_log10_p = inf``, ``dof=None``.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 2, finite.
        cur_sample: current values, shape ``(m,)``, m >= 2, finite.

    Returns:
        ``TestResult(statistic=t, p_value=p, method="welch_t", dof=df)``.

    Raises:
        ValueError: a sample is not 1-D or holds NaN/±inf.
        StatisticUndefined: a sample has fewer than 2 values (no variance).
    """
    u, v = _samples(ref_sample, cur_sample, min_size=2)
    if is_constant(u) and is_constant(v):
        if u[0] == v[0]:
            return _no_difference("welch_t")
        return TestResult(math.copysign(math.inf, u[0] - v[0]), 0.0, "welch_t", neg_log10_p=math.inf)
    # scipy warns about "nearly identical" data when one window is constant; handled above/valid here.
    with quiet("Precision loss occurred"):
        res = ttest_ind(u, v, equal_var=False)
    stat, p, df = float(res.statistic), float(res.pvalue), float(res.df)
    log_p = math.log(2.0) + t_log_sf(abs(stat), df) if p < 1e-300 else None
    return TestResult(stat, p, "welch_t", neg_log10_p=neg_log10_p(p, log_p), dof=df)


#: Smallest window scipy's Epps–Singleton test accepts.
ES_MIN_SIZE = 5


def epps_singleton_test(ref_sample: ArrayLike, cur_sample: ArrayLike) -> TestResult:
    """Epps–Singleton two-sample test on the empirical characteristic function (Epps & Singleton 1986).

    Compares the two empirical characteristic functions at ``t = (0.4, 0.8)``
    scaled by half the pooled interquartile range; ``W`` is asymptotically
    chi-square with 4 degrees of freedom (rank of the covariance estimate),
    with the small-sample correction when both windows are below 25. From
    ``scipy.stats.epps_singleton_2samp(ref, cur)``. Unlike KS it is valid
    for discrete data. ``neg_log10_p`` uses the chi-square log tail.

    Defined values: both windows constant at the same value give ``W = 0``,
    p-value 1. Both constant at different values: ``W = +inf``, p-value
    0.0, ``neg_log10_p = inf`` (zero covariance, certain difference). A
    rank-deficient covariance estimate otherwise (scipy warns "does not have
    full rank") sets ``low_confidence=True`` and ``dof=None``.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 5, finite.
        cur_sample: current values, shape ``(m,)``, m >= 5, finite.

    Returns:
        ``TestResult(statistic=W, p_value=p, method="epps_singleton", dof=4)``.

    Raises:
        ValueError: a sample is not 1-D or holds NaN/±inf.
        StatisticUndefined: a sample has fewer than 5 values, or the pooled
            interquartile range is 0 (three quarters of the values tie) and
            the windows are not one shared constant: the frequencies ``t``
            cannot be scaled.
    """
    u, v = _samples(ref_sample, cur_sample, min_size=ES_MIN_SIZE)
    if is_constant(u) and is_constant(v):
        if u[0] == v[0]:
            return _no_difference("epps_singleton")
        return TestResult(math.inf, 0.0, "epps_singleton", neg_log10_p=math.inf)
    q1, q3 = np.percentile(np.concatenate([u, v]), [25, 75])
    if q3 == q1:
        raise StatisticUndefined("Epps–Singleton test needs a positive interquartile range of the pooled windows")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = epps_singleton_2samp(u, v)
    rank_deficient = any("full rank" in str(w.message) for w in caught)
    stat, p = float(res.statistic), float(res.pvalue)
    if rank_deficient:  # scipy then uses the (unknown here) lower rank as dof
        return TestResult(stat, p, "epps_singleton", neg_log10_p=neg_log10_p(p), low_confidence=True)
    log_p = chi2_log_sf(stat, 4) if p < 1e-300 else None
    return TestResult(stat, p, "epps_singleton", neg_log10_p=neg_log10_p(p, log_p), dof=4.0)
