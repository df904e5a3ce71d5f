"""Univariate statistics of detectors.two_sample, detectors.distance and detectors.categorical.

Each statistic scipy also computes is checked against the direct scipy call;
golden values are hand-computed (see the issue's list); degenerate inputs
assert the documented value or error.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import chebyshev, cityblock, euclidean, jensenshannon

from detectors._checks import StatisticUndefined, TestResult, _chi2_log_sf_cf, _t_log_sf_cf, chi2_log_sf, t_log_sf
from detectors.categorical import (
    CategoryDistances,
    categorical_test,
    category_distances,
    chi2_homogeneity,
    contingency_table,
    fisher_exact_test,
    g_test,
    merge_rare_categories,
    two_proportion_z_test,
)
from detectors.distance import (
    energy_distance,
    hellinger_distance,
    js_distance,
    kl_divergence,
    linf_distance,
    psi,
    total_variation_distance,
    wasserstein,
    wasserstein_histogram,
    wasserstein_normalised,
)
from detectors.two_sample import (
    anderson_darling_test,
    cramer_von_mises_test,
    epps_singleton_test,
    ks_test,
    mann_whitney_u_test,
    welch_t_test,
)
from detectors import two_sample

REL = 1e-4  # tolerance on the printed golden digits
LN10 = math.log(10.0)


def _normal(seed: int, size: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, size=size)


def _quietly(func, *args, **kwargs):
    """A direct scipy call whose own warnings are not under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


A = _normal(10, 80)
B = _normal(20, 60, loc=0.35)

# ----------------------------------------------------------------------------- scipy equality, numeric


def test_ks_equals_scipy() -> None:
    res, ref = ks_test(A, B), stats.ks_2samp(A, B)
    assert (res.statistic, res.p_value, res.method) == (ref.statistic, ref.pvalue, "ks")
    assert res.neg_log10_p == pytest.approx(-math.log10(ref.pvalue), rel=1e-12)


def test_anderson_darling_equals_scipy_table_p_value() -> None:
    res, ref = anderson_darling_test(A, B), stats.anderson_ksamp([A, B], variant="midrank")
    assert (res.statistic, res.p_value, res.method) == (ref.statistic, ref.pvalue, "anderson_darling")
    assert 0.001 < res.p_value < 0.25
    assert res.neg_log10_p == pytest.approx(-math.log10(ref.pvalue))


def test_anderson_darling_reports_scipy_bounds_without_neg_log10_p() -> None:
    floored = anderson_darling_test(_normal(1, 300), _normal(2, 300, loc=1.0))
    assert floored.p_value == two_sample.AD_P_FLOOR == 0.001
    assert floored.neg_log10_p is None
    capped = anderson_darling_test(_normal(0, 300), _normal(100, 300))
    assert capped.p_value == two_sample.AD_P_CAP == 0.25
    assert capped.neg_log10_p is None


def test_anderson_darling_permutation_equals_scipy_with_same_seed() -> None:
    a, b = _normal(1, 300), _normal(2, 300, loc=1.0)
    res = anderson_darling_test(a, b, n_resamples=199, seed=7)
    method = stats.PermutationMethod(n_resamples=199, rng=np.random.default_rng(7))
    ref = stats.anderson_ksamp([a, b], variant="midrank", method=method)
    assert (res.statistic, res.p_value) == (ref.statistic, ref.pvalue)
    # every permuted statistic is below the observed one: p = (0 + 1) / (199 + 1)
    assert res.p_value == pytest.approx(1 / 200)
    assert res.neg_log10_p == pytest.approx(math.log10(200))
    with pytest.raises(ValueError, match="n_resamples"):
        anderson_darling_test(a, b, n_resamples=0)


def test_cramer_von_mises_equals_scipy() -> None:
    res, ref = cramer_von_mises_test(A, B), stats.cramervonmises_2samp(A, B)
    assert (res.statistic, res.p_value, res.method) == (ref.statistic, ref.pvalue, "cramer_von_mises")


def test_mann_whitney_equals_scipy() -> None:
    res, ref = mann_whitney_u_test(A, B), stats.mannwhitneyu(A, B, alternative="two-sided")
    assert (res.statistic, res.p_value, res.method) == (ref.statistic, ref.pvalue, "mann_whitney_u")


def test_welch_equals_scipy() -> None:
    res, ref = welch_t_test(A, B), stats.ttest_ind(A, B, equal_var=False)
    assert (res.statistic, res.p_value, res.dof) == (ref.statistic, ref.pvalue, ref.df)
    assert res.statistic < 0  # reference mean is smaller


def test_epps_singleton_equals_scipy() -> None:
    res, ref = epps_singleton_test(A, B), stats.epps_singleton_2samp(A, B)
    assert (res.statistic, res.p_value, res.dof, res.low_confidence) == (ref.statistic, ref.pvalue, 4.0, False)


def test_energy_and_wasserstein_equal_scipy() -> None:
    assert energy_distance(A, B) == stats.energy_distance(A, B)
    assert wasserstein(A, B) == stats.wasserstein_distance(A, B)


# ----------------------------------------------------------------------------- -log10 p under underflow


def test_testresult_three_argument_construction_still_works() -> None:
    r = TestResult(0.5, 0.1, "ks")
    assert (r.neg_log10_p, r.low_confidence, r.dof) == (None, False, None)


def test_ks_huge_shift_keeps_statistic_and_finite_neg_log10_p() -> None:
    a, b = _normal(1, 20_000), _normal(2, 20_000, loc=50.0)
    res = ks_test(a, b)
    assert res.p_value == 0.0 and res.statistic == 1.0
    # asymptotic Kolmogorov tail 2 exp(-2 n_e D²), n_e = 10,000
    assert res.neg_log10_p == pytest.approx((2 * 10_000 - math.log(2)) / LN10, rel=1e-12)


def test_mann_whitney_huge_shift_neg_log10_p_from_normal_tail() -> None:
    n = 20_000
    a, b = _normal(1, n), _normal(2, n, loc=50.0)
    res = mann_whitney_u_test(a, b)
    assert res.p_value == 0.0 and res.statistic == 0.0
    z = (n * n / 2 - 0.5) / math.sqrt(n * n * (2 * n + 1) / 12)  # no ties
    assert res.neg_log10_p == pytest.approx(-(math.log(2) + stats.norm.logsf(z)) / LN10, rel=1e-9)
    assert 300 < res.neg_log10_p < math.inf


def test_welch_huge_shift_neg_log10_p_finite() -> None:
    a, b = _normal(1, 3000), _normal(2, 3000, loc=3.0)
    res = welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert res.p_value == 0.0 and res.statistic == ref.statistic
    assert res.neg_log10_p == pytest.approx(-(math.log(2) + _t_log_sf_cf(-res.statistic, res.dof)) / LN10)
    assert 1000 < res.neg_log10_p < math.inf


def test_epps_singleton_huge_shift_neg_log10_p_finite() -> None:
    res = epps_singleton_test(_normal(1, 3000), _normal(2, 3000, loc=3.0))
    assert res.p_value == 0.0
    assert res.neg_log10_p == pytest.approx(-_chi2_log_sf_cf(res.statistic, 4) / LN10)
    assert 300 < res.neg_log10_p < math.inf


def test_chi2_huge_table_neg_log10_p_matches_one_dof_normal_tail() -> None:
    res = chi2_homogeneity({"a": 100_000, "b": 100_000}, {"a": 190_000, "b": 10_000})
    assert res.p_value == 0.0 and res.dof == 1 and res.statistic > 0
    # chi²(1) tail: P(X > x) = 2 Φ(-√x), an independent route
    expected = -(math.log(2) + stats.norm.logsf(math.sqrt(res.statistic))) / LN10
    assert res.neg_log10_p == pytest.approx(expected, rel=1e-10)
    z = two_proportion_z_test(100_000, 200_000, 190_000, 200_000)
    assert z.p_value == 0.0 and z.statistic**2 == pytest.approx(res.statistic)
    assert z.neg_log10_p == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("x", "dof"), [(600.0, 3), (300.0, 1), (1000.0, 50), (1300.0, 1000), (50.0, 4)])
def test_chi2_log_sf_continued_fraction_matches_scipy_where_scipy_is_finite(x: float, dof: int) -> None:
    assert _chi2_log_sf_cf(x, dof) == pytest.approx(stats.chi2.logsf(x, dof), rel=1e-12)


@pytest.mark.parametrize(("x", "df"), [(30.0, 200), (12.0, 5), (40.0, 3), (37.0, 1e6), (3.0, 10)])
def test_t_log_sf_continued_fraction_matches_scipy_where_scipy_is_finite(x: float, df: float) -> None:
    assert _t_log_sf_cf(x, df) == pytest.approx(stats.t.logsf(x, df), rel=1e-10)


def test_log_sf_far_tail_finite_and_near_leading_asymptotic_term() -> None:
    # Γ(a, z) ~ z^(a-1) e^-z for z >> a
    x, dof = 1e5, 3
    assert chi2_log_sf(x, dof) == pytest.approx(0.5 * math.log(x / 2) - x / 2 - math.lgamma(1.5), rel=1e-6)
    # t tail ~ Γ((ν+1)/2) / (Γ(ν/2) sqrt(νπ)) ν^((ν-1)/2) x^-ν for x >> ν
    x, df = 1e80, 4
    lead = math.lgamma(2.5) - math.lgamma(2) - 0.5 * math.log(4 * math.pi) + 1.5 * math.log(4) - 4 * math.log(x)
    assert t_log_sf(x, df) == pytest.approx(lead, rel=1e-9)


# ----------------------------------------------------------------------------- golden cases


def test_golden_unseen_category_chi2_and_js() -> None:
    ref, cur = {"A": 30, "B": 30, "C": 40}, {"A": 20, "B": 20, "C": 40, "D": 20}
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(24.0, rel=REL)
    assert res.dof == 3
    assert res.p_value == pytest.approx(2.498e-5, rel=REL)
    assert categorical_test(ref, cur) == res  # all expected counts >= 5
    assert category_distances(ref, cur).js_distance == pytest.approx(0.33841, rel=REL)


def test_golden_same_proportions_chi2_zero() -> None:
    res = chi2_homogeneity({"good": 100, "bad": 500}, {"good": 50, "bad": 250})
    assert res.statistic == pytest.approx(0.0, abs=1e-12)
    assert res.p_value == pytest.approx(1.0, rel=1e-12)


def test_golden_2x2_chi2_and_fisher() -> None:
    ref, cur = {"x": 8, "y": 12}, {"x": 60, "y": 40}
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(2.7149, rel=REL)
    assert res.p_value == pytest.approx(0.09941, rel=REL)
    assert fisher_exact_test(ref, cur).p_value == pytest.approx(0.13781, rel=REL)


def test_golden_fisher_rare_2x2_chosen_automatically() -> None:
    res = categorical_test({"x": 2, "y": 18}, {"x": 0, "y": 20})
    assert res.method == "fisher_exact" and not res.low_confidence
    assert res.p_value == pytest.approx(0.48718, rel=REL)
    assert res.statistic == math.inf  # odds ratio with b·c = 0


def test_golden_js_distance() -> None:
    assert js_distance([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.085435, rel=REL)
    assert js_distance([1, 0], [0, 1]) == 1.0


def test_golden_hellinger() -> None:
    assert hellinger_distance([0.9, 0.1], [0.1, 0.9]) == pytest.approx(0.63246, rel=REL)
    # exact value sqrt(1 - sqrt(.45) - sqrt(.05)) = 0.324920 (the issue prints 0.32490)
    assert hellinger_distance([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.32490, rel=REL)
    assert hellinger_distance([0.5, 0.5], [0.9, 0.1]) == pytest.approx(
        math.sqrt(1 - math.sqrt(0.45) - math.sqrt(0.05)), rel=1e-12
    )
    assert hellinger_distance([1, 0], [0, 1]) == 1.0


def test_golden_booleans() -> None:
    ref, cur = {True: 70, False: 30}, {True: 50, False: 50}
    assert category_distances(ref, cur).psi == pytest.approx(0.16946, rel=REL)
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(8.3333, rel=REL)
    assert res.p_value == pytest.approx(0.0038924, rel=REL)
    z = two_proportion_z_test(70, 100, 50, 100)
    assert z.statistic == pytest.approx(0.2 / math.sqrt(0.6 * 0.4 * 0.02), rel=1e-12)
    assert z.statistic**2 == pytest.approx(8.3333, rel=REL)
    assert z.p_value == pytest.approx(0.0038924, rel=REL)


def test_golden_constant_columns() -> None:
    ones, twos = np.ones(20), np.full(20, 2.0)
    d = ks_test(ones, twos)
    assert d.statistic == 1.0
    assert d.p_value == pytest.approx(1.4509e-11, rel=REL)
    assert wasserstein(ones, twos) == 1.0
    same = ks_test(ones, np.ones(20))
    assert (same.statistic, same.p_value, same.neg_log10_p) == (0.0, 1.0, 0.0)
    assert psi([0, 20, 0], [0, 20, 0]) == 0.0


def test_golden_histogram_wasserstein() -> None:
    assert wasserstein_histogram([0, 1, 2, 3], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]) == pytest.approx(2.0, rel=1e-12)


# ----------------------------------------------------------------------------- categorical


def test_g_test_equals_scipy_and_formula() -> None:
    ref, cur = {"x": 8, "y": 12, "z": 5}, {"x": 60, "y": 40, "z": 30}
    _, table = contingency_table(ref, cur)
    res = g_test(ref, cur)
    sp = stats.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert (res.statistic, res.p_value, res.dof, res.method) == (sp.statistic, sp.pvalue, 2, "g_test")
    expected = np.outer(table.sum(1), table.sum(0)) / table.sum()
    assert res.statistic == pytest.approx(2 * np.sum(table * np.log(table / expected)), rel=1e-12)


def test_g_test_single_category_and_empty_window() -> None:
    assert g_test({"a": 3}, {"a": 9}) == TestResult(0.0, 1.0, "g_test", neg_log10_p=0.0)
    with pytest.raises(ValueError, match="at least one"):
        g_test({"a": 3, "b": 1}, {"a": 0})


def test_two_proportion_z_equals_chi2_and_degenerate_values() -> None:
    z = two_proportion_z_test(13, 40, 30, 55)
    sp = stats.chi2_contingency([[13, 27], [30, 25]], correction=False)
    assert z.statistic**2 == pytest.approx(sp.statistic, rel=1e-12)
    assert z.p_value == pytest.approx(sp.pvalue, rel=1e-12)
    assert z.statistic < 0  # reference share 0.325 < current 0.545
    assert two_proportion_z_test(0, 10, 0, 20) == TestResult(0.0, 1.0, "two_proportion_z", neg_log10_p=0.0)
    assert two_proportion_z_test(10, 10, 20, 20).p_value == 1.0
    with pytest.raises(StatisticUndefined):
        two_proportion_z_test(0, 0, 3, 5)
    with pytest.raises(ValueError, match="between 0"):
        two_proportion_z_test(11, 10, 3, 5)


def test_fisher_equals_scipy_and_rejects_more_than_two_categories() -> None:
    res = fisher_exact_test({"a": 3, "b": 9}, {"a": 11, "b": 4})
    sp = stats.fisher_exact([[3, 9], [11, 4]])
    assert (res.statistic, res.p_value, res.method) == (sp.statistic, sp.pvalue, "fisher_exact")
    assert fisher_exact_test({"a": 3}, {"a": 5}).p_value == 1.0
    with pytest.raises(ValueError, match="2×2"):
        fisher_exact_test({"a": 3, "b": 1, "c": 1}, {"a": 5})


def test_rare_categories_merged_into_chi2_low_confidence() -> None:
    # rows 105 / 107, N 212: a column is rare below 5 * 212 / 105 = 10.1; c (6) and d (6) merge to 12
    ref, cur = {"a": 50, "b": 50, "c": 2, "d": 3}, {"a": 40, "b": 60, "c": 4, "d": 3}
    res = categorical_test(ref, cur)
    sp = stats.chi2_contingency([[50, 50, 5], [40, 60, 7]], correction=False)
    assert (res.method, res.low_confidence, res.dof) == ("chi2", True, 2)
    assert (res.statistic, res.p_value) == (sp.statistic, sp.pvalue)


def test_merge_extends_past_rare_columns_until_merged_bucket_suffices() -> None:
    table = np.array([[50, 50, 2, 1], [40, 60, 0, 3]])
    merged, mask = merge_rare_categories(table)
    # need 5 * 206 / 103 = 10: c (2) + d (4) = 6 is still rare, so the next smallest (a, 90) joins
    assert mask.tolist() == [True, False, True, True]
    assert merged.tolist() == [[50, 53], [60, 43]]
    same, none = merge_rare_categories(np.array([[10, 10], [10, 10]]))
    assert same.tolist() == [[10, 10], [10, 10]] and not none.any()


def test_rare_categories_merged_to_rare_2x2_use_fisher_low_confidence() -> None:
    res = categorical_test({"a": 1, "b": 1, "c": 18}, {"c": 20})
    sp = stats.fisher_exact([[18, 2], [20, 0]])
    assert (res.method, res.low_confidence) == ("fisher_exact", True)
    assert res.p_value == sp.pvalue


def test_categorical_test_validates_threshold() -> None:
    with pytest.raises(ValueError, match="min_expected"):
        categorical_test({"a": 1}, {"a": 1}, min_expected=0)


def test_category_distances_over_union_with_unseen_and_vanished() -> None:
    res = category_distances({"a": 50, "b": 50}, {"a": 50, "c": 50})
    # p = [.5, .5, 0], q = [.5, 0, .5]
    assert res.total_variation == pytest.approx(0.5)
    assert res.hellinger == pytest.approx(math.sqrt(0.5))
    assert res.js_distance == pytest.approx(jensenshannon([0.5, 0.5, 0], [0.5, 0, 0.5], base=2))
    assert res.psi == pytest.approx(psi([50, 50, 0], [50, 0, 50]))
    assert isinstance(res, CategoryDistances)


def test_nullable_boolean_counts_are_two_categories() -> None:
    ref = pd.Series([True] * 70 + [False] * 30 + [None] * 5, dtype="boolean").value_counts().to_dict()
    cur = {True: 50, False: 50}
    cats, table = contingency_table(ref, cur)
    assert sorted(cats) == [False, True] and table.shape == (2, 2)
    assert chi2_homogeneity(ref, cur).statistic == pytest.approx(8.3333, rel=REL)


# ----------------------------------------------------------------------------- distances


def test_kl_divergence_hand_value_scipy_equality_and_smoothing() -> None:
    assert kl_divergence([0.5, 0.5], [0.6, 0.4]) == pytest.approx(
        0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4), rel=1e-12
    )
    p, q = [3, 5, 9, 1], [4, 4, 4, 4]
    assert kl_divergence(p, q) == pytest.approx(stats.entropy(p, q), rel=1e-12)
    assert kl_divergence(p, q) + kl_divergence(q, p) == pytest.approx(psi(p, q), rel=1e-12)
    # empty current bin: q clipped at eps = 1e-4 (the default), not renormalised
    assert kl_divergence([1, 0], [0, 1]) == pytest.approx(math.log(1e4) + 1e-4 * math.log(1e-4), rel=1e-12)
    assert kl_divergence([1, 0], [0, 1], eps=1e-3) == pytest.approx(math.log(1e3) + 1e-3 * math.log(1e-3))
    with pytest.raises(ValueError, match="eps"):
        kl_divergence(p, q, eps=0)


def test_hellinger_tv_linf_equal_scipy_distances() -> None:
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25, 0.25, 0.25, 0.25])
    assert hellinger_distance(p, q) == pytest.approx(euclidean(np.sqrt(p), np.sqrt(q)) / math.sqrt(2), rel=1e-12)
    assert total_variation_distance(p, q) == pytest.approx(cityblock(p, q) / 2) == pytest.approx(0.2)
    assert linf_distance(p, q) == pytest.approx(chebyshev(p, q)) == pytest.approx(0.15)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=8))
def test_histogram_distance_properties(pairs: list[tuple[int, int]]) -> None:
    p = [a for a, _ in pairs] + [1]
    q = [b for _, b in pairs] + [1]
    h, tv, li = hellinger_distance(p, q), total_variation_distance(p, q), linf_distance(p, q)
    for d, f in ((h, hellinger_distance), (tv, total_variation_distance), (li, linf_distance)):
        assert 0.0 <= d <= 1.0 and d == pytest.approx(f(q, p)) and f(p, p) == 0.0
    assert li <= tv + 1e-12
    assert h * h <= tv + 1e-12 and tv <= math.sqrt(2) * h + 1e-12  # Le Cam's inequalities
    assert kl_divergence(p, p) == 0.0


def test_wasserstein_histogram_equals_scipy_and_validates_positions() -> None:
    x, p, q = [0.5, 1.5, 2.5], [3, 1, 0], [1, 1, 2]
    expected = stats.wasserstein_distance(x, x, u_weights=[0.75, 0.25, 0], v_weights=[0.25, 0.25, 0.5])
    assert wasserstein_histogram(x, p, q) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="positions"):
        wasserstein_histogram([0, 1], p, q)
    with pytest.raises(ValueError, match="finite"):
        wasserstein_histogram([0, 1, np.inf], p, q)


# ----------------------------------------------------------------------------- degenerate inputs

ONES, TWOS = np.ones(20), np.full(20, 2.0)


def test_both_constant_and_equal_every_test_says_no_difference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (ks_test, anderson_darling_test, cramer_von_mises_test, welch_t_test, epps_singleton_test):
            r = f(ONES, ONES)
            assert (r.statistic, r.p_value, r.neg_log10_p) == (0.0, 1.0, 0.0), f.__name__
        mw = mann_whitney_u_test(ONES, ONES)
        assert (mw.statistic, mw.p_value) == (200.0, 1.0)  # U = n m / 2
    assert wasserstein(ONES, ONES) == 0.0 and energy_distance(ONES, ONES) == 0.0
    assert wasserstein_normalised(ONES, ONES, 0.0) == 0.0


def test_both_constant_and_different() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = welch_t_test(ONES, TWOS)
        assert (w.statistic, w.p_value, w.neg_log10_p, w.dof) == (-math.inf, 0.0, math.inf, None)
        es = epps_singleton_test(TWOS, ONES)
        assert (es.statistic, es.p_value, es.neg_log10_p) == (math.inf, 0.0, math.inf)
        ad = anderson_darling_test(ONES, TWOS)
        ad_sp = _quietly(stats.anderson_ksamp, [ONES, TWOS], variant="midrank")
        assert (ad.statistic, ad.p_value, ad.neg_log10_p) == (ad_sp.statistic, 0.001, None)
        mw = mann_whitney_u_test(ONES, TWOS)
        assert (mw.statistic, mw.p_value) == (0.0, _quietly(stats.mannwhitneyu, ONES, TWOS).pvalue)
        cvm = cramer_von_mises_test(ONES, TWOS)
        # scipy's asymptotic p for n = 20 underflows to 0; then no -log10 p is claimed
        assert (cvm.statistic, cvm.p_value, cvm.neg_log10_p) == (5.0, 0.0, None)
    assert energy_distance(ONES, TWOS) == pytest.approx(math.sqrt(2.0))


def test_one_constant_window_gives_scipy_values_without_warnings() -> None:
    x = _normal(0, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = welch_t_test(ONES, x)
    sp = _quietly(stats.ttest_ind, ONES, x, equal_var=False)
    assert (w.statistic, w.p_value, w.dof) == (sp.statistic, sp.pvalue, sp.df)
    es = epps_singleton_test(ONES, x)
    assert es.statistic == stats.epps_singleton_2samp(ONES, x).statistic and math.isfinite(es.statistic)


@pytest.mark.parametrize(
    ("func", "min_size"),
    [
        (ks_test, 1),
        (anderson_darling_test, 1),
        (mann_whitney_u_test, 1),
        (cramer_von_mises_test, 2),
        (welch_t_test, 2),
        (epps_singleton_test, 5),
    ],
)
def test_too_small_windows_raise_statistic_undefined(func, min_size: int) -> None:
    x = _normal(3, 30)
    with pytest.raises(StatisticUndefined):
        func([], x)
    with pytest.raises(StatisticUndefined):
        func(x, x[: min_size - 1])
    r = func(x[:min_size] + 0.5, x)  # the minimum itself works and is not NaN
    assert not math.isnan(r.statistic) and not math.isnan(r.p_value)
    with pytest.raises(ValueError, match="finite") as err:
        func(x, np.append(x, np.nan))
    assert not isinstance(err.value, StatisticUndefined)


def test_epps_singleton_zero_pooled_iqr_is_undefined() -> None:
    sparse_ref = np.r_[np.zeros(18), 1.0, 2.0]
    sparse_cur = np.r_[np.zeros(19), 5.0]
    with pytest.raises(StatisticUndefined, match="interquartile"):
        epps_singleton_test(sparse_ref, sparse_cur)


def test_statistic_undefined_is_a_value_error() -> None:
    assert issubclass(StatisticUndefined, ValueError)


@pytest.mark.parametrize(
    "func",
    [
        ks_test,
        anderson_darling_test,
        cramer_von_mises_test,
        mann_whitney_u_test,
        welch_t_test,
        epps_singleton_test,
        energy_distance,
        wasserstein,
    ],
)
def test_float32_input_gives_the_float64_result(func) -> None:
    a32, b32 = A.astype(np.float32), B.astype(np.float32)
    assert func(a32, b32) == func(a32.astype(np.float64), b32.astype(np.float64))


def test_float32_histograms_give_the_float64_result() -> None:
    p, q = np.array([3, 5, 9, 1], dtype=np.float32), np.array([4, 4, 4, 4], dtype=np.float32)
    for f in (psi, kl_divergence, js_distance, hellinger_distance, total_variation_distance, linf_distance):
        assert f(p, q) == f(p.astype(np.float64), q.astype(np.float64))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-2, 2), min_size=0, max_size=12),
    st.lists(st.integers(-2, 2), min_size=0, max_size=12),
)
def test_small_tied_windows_never_give_nan(ref: list[int], cur: list[int]) -> None:
    funcs = (ks_test, anderson_darling_test, cramer_von_mises_test, mann_whitney_u_test, welch_t_test, epps_singleton_test)
    for func in funcs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy's own advisories are not under test here
                r = func(np.array(ref, dtype=float), np.array(cur, dtype=float))
        except StatisticUndefined:
            continue
        assert not math.isnan(r.statistic) and 0.0 <= r.p_value <= 1.0, func.__name__
        assert r.neg_log10_p is None or r.neg_log10_p >= 0.0


def test_anderson_darling_needs_four_pooled_values() -> None:
    with pytest.raises(StatisticUndefined, match="at least 4"):
        anderson_darling_test([0.0], [1.0, 2.0])
    assert anderson_darling_test([0.0], [1.0, 2.0, 3.0]).statistic == pytest.approx(
        _quietly(stats.anderson_ksamp, [[0.0], [1.0, 2.0, 3.0]], variant="midrank").statistic
    )
    assert anderson_darling_test([7.0], [7.0]).p_value == 1.0  # one shared constant: defined


@pytest.mark.parametrize("n1,n2,decimals", [(50_000, 50_000, None), (20_000, 15_000, 1), (12_000, 500, 0),
                                            (300, 100, None), (11_000, 11_000, 2)])
def test_one_pass_ks_and_wasserstein_equal_scipy_exactly(n1, n2, decimals):
    from scipy.stats import ks_2samp, wasserstein_distance

    from detectors.two_sample import ks_and_wasserstein_sorted

    rng = np.random.default_rng(n1 + n2)
    u, v = rng.normal(size=n1), rng.normal(0.03, 1.1, size=n2)
    if decimals is not None:  # ties within and across the samples
        u, v = np.round(u, decimals), np.round(v, decimals)
    test, w1 = ks_and_wasserstein_sorted(np.sort(u), np.sort(v))
    ref = ks_2samp(u, v)
    assert (test.statistic, test.p_value, test.method) == (ref.statistic, ref.pvalue, "ks")
    assert w1 == wasserstein_distance(u, v)


def test_cramer_von_mises_tail_beyond_scipys_precision():
    from scipy.stats import cramervonmises_2samp

    from detectors.two_sample import cramer_von_mises_test

    rng = np.random.default_rng(8)
    ref = rng.normal(size=5000)
    results = [cramer_von_mises_test(ref, rng.normal(s, 1, 5000)) for s in (0.3, 1.0, 5.0)]
    # scipy's 1 - cdf grows again with the shift (4.6e-9, 8.9e-8, 2.1e-7); the tail keeps falling
    assert [r.statistic for r in results] == sorted(r.statistic for r in results)
    assert results[0].neg_log10_p < results[1].neg_log10_p < results[2].neg_log10_p
    assert results[2].p_value == 0.0 and 300 < results[2].neg_log10_p < math.inf
    # below the switch the p-value is scipy's
    near_u, near_v = rng.normal(size=500), rng.normal(0.2, 1, 500)
    near = cramer_von_mises_test(near_u, near_v)
    assert near.p_value == cramervonmises_2samp(near_u, near_v).pvalue
    assert near.neg_log10_p == pytest.approx(-math.log10(near.p_value))


def test_cramer_von_mises_tail_joins_the_series():
    from scipy.stats import norm
    from scipy.stats._hypotests import _cdf_cvm_inf

    # the leading term against scipy's series where that is still accurate
    for x, rel in ((3.0, 0.013), (3.5, 0.014)):
        series = 1 - _cdf_cvm_inf(np.array([x]))[0]
        assert 2 * math.sqrt(2) * norm.sf(math.pi * math.sqrt(x)) == pytest.approx(series, rel=rel)


def test_category_counts_must_be_mappings():
    from detectors.categorical import chi2_homogeneity

    with pytest.raises(TypeError, match="ref_counts must map category -> count"):
        chi2_homogeneity([30, 30, 40], {"A": 20})
