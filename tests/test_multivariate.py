"""Tests for detectors.multivariate: MMD, domain classifier, PCA reconstruction error, embeddings."""

from __future__ import annotations

import functools
import itertools
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp, mannwhitneyu
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from detectors.multivariate import (
    INSUFFICIENT_DATA,
    MultivariateResult,
    _mmd2_unbiased,
    auc_mann_whitney,
    domain_classifier_test,
    embedding_columns,
    embedding_groups,
    embedding_matrix,
    median_heuristic_bandwidth,
    mmd_test,
    multivariate_drift,
    pca_reconstruction_test,
    profile_matrix,
)
from detectors.profile import build_profile
from detectors.sketch import row_keys


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    # Gradient boosting on a few hundred rows is slower, and erratic on a busy machine, with OpenMP threads.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _normal(seed: int, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def _correlated(seed: int, n: int, rho: float, d: int = 4) -> np.ndarray:
    """d columns, each N(0, 1), pairwise correlation rho² through one shared factor."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(size=(n, 1))
    return rho * factor + math.sqrt(1 - rho**2) * rng.normal(size=(n, d))


def _embedding(seed: int, n: int, shift: float) -> np.ndarray:
    """64-dim standard Gaussian, mean-shifted by `shift` sd along 8 directions of a fixed random basis."""
    basis, _ = np.linalg.qr(np.random.default_rng(99).normal(size=(64, 64)))
    z = np.random.default_rng(seed).normal(size=(n, 64))
    z[:, :8] += shift
    return z @ basis.T


# ----------------------------------------------------------------------------- MMD

X_TINY = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.5, 1.0]]
Y_TINY = [[1.0, 1.0], [2.0, 1.0], [3.0, 0.5]]


def _naive_mmd2(x: list[list[float]], y: list[list[float]]) -> tuple[float, float]:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) by double loops; bandwidth = median pairwise distance."""
    pooled = x + y
    sigma = statistics.median(math.dist(a, b) for a, b in itertools.combinations(pooled, 2))

    def k(a: list[float], b: list[float]) -> float:
        return math.exp(-math.dist(a, b) ** 2 / (2 * sigma**2))

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(a, b) for a in x for b in y) / (n * m)
    return xx + yy - 2 * xy, sigma


def test_mmd_equals_naive_double_loop_on_tiny_example() -> None:
    expected, sigma = _naive_mmd2(X_TINY, Y_TINY)
    res = mmd_test(X_TINY, Y_TINY, standardize=False, min_rows=2, n_permutations=50)
    assert res.details["bandwidth"] == pytest.approx(sigma, rel=1e-14)
    assert sigma == pytest.approx(math.sqrt(2.5), rel=1e-14)  # 21 pair distances; the 11th smallest is √2.5
    assert res.statistic == pytest.approx(expected, rel=1e-12)
    assert res.statistic == pytest.approx(0.124038971015, abs=1e-12)
    assert 1 / 51 <= res.p_value <= 1 and res.status == "ok"


def test_mmd_standardises_by_the_pooled_standard_deviation() -> None:
    x, y = np.array(X_TINY), np.array(Y_TINY)
    pooled = np.vstack([x, y])
    scaled = [(x - pooled.mean(axis=0)) / pooled.std(axis=0), (y - pooled.mean(axis=0)) / pooled.std(axis=0)]
    expected, _ = _naive_mmd2(*(s.tolist() for s in scaled))
    res = mmd_test(x * [1.0, 1000.0], y * [1.0, 1000.0], min_rows=2, n_permutations=10)
    assert res.statistic == pytest.approx(expected, rel=1e-12)
    # Pooled sums of squares about the mean: 17.25 - 8.5²/7 = 48.5/7 and 7.25 - 5.5²/7 = 20.5/7 (× 1000² for
    # column 1); golden value from the double loop in pure Python (statistics.pstdev) on those scaled rows.
    assert res.statistic == pytest.approx(0.0949703557371, abs=1e-12)


def test_mmd_scaling_does_not_depend_on_which_window_is_the_reference() -> None:
    # Scaling by the pooled sample is the same for every split of the pooled rows, so the permutation test is
    # exact and swapping the windows gives the same statistic; scaling by the reference side would not.
    x, y = _normal(1, 40, 3), _normal(2, 60, 3) * [1.0, 3.0, 0.2]
    forward, backward = mmd_test(x, y, n_permutations=20), mmd_test(y, x, n_permutations=20)
    assert backward.statistic == pytest.approx(forward.statistic, rel=1e-12)
    assert backward.details["bandwidth"] == pytest.approx(forward.details["bandwidth"], rel=1e-12)


def test_mmd_vectorised_statistic_equals_naive_for_any_split() -> None:
    pooled = X_TINY + Y_TINY
    _, sigma = _naive_mmd2(X_TINY, Y_TINY)
    z = np.array(pooled)
    sq = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=2)
    kernel = np.exp(-sq / (2 * sigma**2))
    for chosen in [(0, 2, 4, 6), (1, 3, 5, 6), (4, 5, 6, 0)]:
        groups = np.zeros((1, 7))
        groups[0, list(chosen)] = 1
        x = [pooled[i] for i in chosen]
        y = [pooled[i] for i in range(7) if i not in chosen]
        # same pooled sample, so the same bandwidth
        n, m = len(x), len(y)
        k = lambda a, b: math.exp(-math.dist(a, b) ** 2 / (2 * sigma**2))  # noqa: E731
        naive = (
            sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
            + sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
            - 2 * sum(k(a, b) for a in x for b in y) / (n * m)
        )
        assert _mmd2_unbiased(kernel, groups, n, m)[0] == pytest.approx(naive, rel=1e-12)


def test_median_heuristic_guards() -> None:
    assert median_heuristic_bandwidth([[0.0], [3.0], [4.0]]) == 3.0  # distances 3, 4, 1
    # 15 of 28 pair distances are 0, so the median is 0; the 13 positive ones (six 1s, six 3s, one 2) average 2
    assert median_heuristic_bandwidth([[0.0]] * 6 + [[1.0], [3.0]]) == 2.0
    assert median_heuristic_bandwidth([[2.0, 2.0]] * 5) == 1.0
    with pytest.raises(ValueError, match="two rows"):
        median_heuristic_bandwidth([[1.0, 2.0]])


def test_mmd_identical_constant_rows_give_zero_and_p_one() -> None:
    same = np.full((20, 3), 7.0)
    res = mmd_test(same, same, n_permutations=30)
    assert res.statistic == 0.0 and res.p_value == 1.0 and res.drifted is False
    assert res.details["bandwidth"] == 1.0


def test_mmd_same_distribution_p_not_small_and_false_positive_rate_plausible() -> None:
    res = mmd_test(_normal(1, 200, 4), _normal(2, 200, 4), n_permutations=100, seed=3)
    assert res.p_value > 0.2 and res.drifted is False
    p_values = np.array(
        [mmd_test(_normal(100 + s, 60, 3), _normal(200 + s, 60, 3), n_permutations=99, seed=s).p_value for s in range(40)]
    )
    # Under the null p is uniform on {1/100, ..., 1}: about 2 of 40 below 0.05; 7 or more has probability < 0.5%.
    assert np.count_nonzero(p_values < 0.05) <= 6
    assert 0.35 < p_values.mean() < 0.65
    assert p_values.min() >= 1 / 100


def test_mmd_mean_shift_half_sd_in_five_dims_gets_smallest_p() -> None:
    res = mmd_test(_normal(1, 300, 5), _normal(2, 300, 5, shift=0.5), n_permutations=200, seed=0)
    assert res.p_value == 1 / 201
    assert res.drifted is True and res.statistic > 0.03


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 12),
    m=st.integers(2, 12),
    shift=st.floats(0, 100),
    b=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_mmd_p_value_is_never_zero(n: int, m: int, shift: float, b: int, seed: int) -> None:
    res = mmd_test(_normal(seed, n, 2), _normal(seed + 1, m, 2, shift), n_permutations=b, min_rows=2, seed=seed)
    assert 1 / (b + 1) <= res.p_value <= 1
    assert round(res.p_value * (b + 1), 9) == round(res.p_value * (b + 1))  # a count over B + 1
    assert math.isfinite(res.statistic)


def test_mmd_deterministic_and_subsamples_to_max_rows() -> None:
    ref, cur = _normal(1, 400, 3), _normal(2, 300, 3)
    a = mmd_test(ref, cur, max_rows=50, n_permutations=40, seed=5)
    assert a == mmd_test(ref, cur, max_rows=50, n_permutations=40, seed=5)
    assert a.details["n_reference_used"] == 50 and a.details["n_current_used"] == 50
    assert (a.n_reference, a.n_current) == (400, 300)
    assert a.statistic != mmd_test(ref, cur, max_rows=50, n_permutations=40, seed=6).statistic


@pytest.mark.parametrize(
    "test", [mmd_test, domain_classifier_test, pca_reconstruction_test], ids=["mmd", "classifier", "pca"]
)
def test_insufficient_data_is_a_status_not_a_crash(test) -> None:
    for ref, cur in [(np.zeros((0, 3)), _normal(1, 50, 3)), (_normal(1, 500, 3), np.zeros((0, 3))), (_normal(1, 500, 3), _normal(2, 1, 3))]:
        res = test(ref, cur)
        assert isinstance(res, MultivariateResult)
        assert res.status == INSUFFICIENT_DATA
        assert (res.statistic, res.p_value, res.threshold, res.drifted) == (None, None, None, None)
        assert (res.n_reference, res.n_current) == (ref.shape[0], cur.shape[0])
        assert "reason" in res.details


def test_minimum_rows_boundaries() -> None:
    assert mmd_test(_normal(1, 10, 2), _normal(2, 9, 2)).status == INSUFFICIENT_DATA
    assert mmd_test(_normal(1, 10, 2), _normal(2, 10, 2), n_permutations=5).status == "ok"
    assert domain_classifier_test(_normal(1, 19, 2), _normal(2, 50, 2)).status == INSUFFICIENT_DATA
    with pytest.raises(ValueError, match="min_rows"):
        mmd_test(_normal(1, 10, 2), _normal(2, 10, 2), min_rows=1)
    # 8 rows a side with 10% held out: under 2 held-out rows per side
    tiny = domain_classifier_test(_normal(1, 8, 2), _normal(2, 8, 2), min_rows=4, test_size=0.1)
    assert tiny.status == INSUFFICIENT_DATA and "test_size" in tiny.details["reason"]
    assert domain_classifier_test(_normal(1, 8, 2), _normal(2, 8, 2), min_rows=4).status == "ok"


@pytest.mark.parametrize(
    "test", [mmd_test, domain_classifier_test, pca_reconstruction_test], ids=["mmd", "classifier", "pca"]
)
def test_bad_input_raises_naming_the_problem(test) -> None:
    good = _normal(1, 50, 3)
    with_nan = good.copy()
    with_nan[4, 1] = np.nan
    with_inf = good.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="reference must contain only finite"):
        test(with_nan, good)
    with pytest.raises(ValueError, match="current must contain only finite"):
        test(good, with_inf)
    with pytest.raises(ValueError, match="2-D"):
        test(good[:, 0], good)
    with pytest.raises(ValueError, match="3 columns but current has 2"):
        test(good, good[:, :2])
    with pytest.raises(ValueError, match="at least one column"):
        test(np.zeros((5, 0)), np.zeros((5, 0)))


# ----------------------------------------------------------------------------- domain classifier


@settings(max_examples=40, deadline=None)
@given(
    s0=st.lists(st.integers(0, 6), min_size=1, max_size=30),
    s1=st.lists(st.integers(0, 6), min_size=1, max_size=30),
)
def test_auc_is_mann_whitney_u_over_n0_n1(s0: list[int], s1: list[int]) -> None:
    # small integer scores: many ties, which both count as 1/2
    auc, u, p = auc_mann_whitney(np.array(s0) / 7, np.array(s1) / 7)
    ref = mannwhitneyu(np.array(s1) / 7, np.array(s0) / 7, alternative="greater")
    assert u == ref.statistic and p == ref.pvalue
    assert auc == u / (len(s0) * len(s1))
    labels = [0] * len(s0) + [1] * len(s1)
    assert auc == pytest.approx(roc_auc_score(labels, s0 + s1), abs=1e-12)


def test_auc_mann_whitney_golden_and_errors() -> None:
    # pairs (current > reference): 3 > 1, 3 > 2, 2 = 2 (1/2), 2 > 1 -> U = 3.5 of 4
    assert auc_mann_whitney([1.0, 2.0], [3.0, 2.0])[:2] == (0.875, 3.5)
    with pytest.raises(ValueError, match="non-empty"):
        auc_mann_whitney([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auc_mann_whitney([np.nan], [1.0])


def test_domain_classifier_matches_sklearn_and_scipy_on_held_out_scores() -> None:
    ref, cur = _normal(1, 300, 5), _normal(2, 300, 5, shift=0.5)
    res = domain_classifier_test(ref, cur, seed=7)

    features = np.vstack([ref, cur])
    labels = np.r_[np.zeros(300, dtype=int), np.ones(300, dtype=int)]
    x_tr, x_te, y_tr, y_te = train_test_split(features, labels, test_size=0.5, stratify=labels, random_state=7)
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=7).fit(x_tr, y_tr)
    scores = model.predict_proba(x_te)[:, 1]
    mw = mannwhitneyu(scores[y_te == 1], scores[y_te == 0], alternative="greater")

    assert res.details["n_test_reference"] == res.details["n_test_current"] == 150
    assert res.details["u_statistic"] == mw.statistic
    assert res.statistic == mw.statistic / (150 * 150)
    assert res.statistic == pytest.approx(roc_auc_score(y_te, scores), abs=1e-12)
    assert res.p_value == mw.pvalue
    assert res.statistic > 0.6 and res.p_value < 1e-4 and res.drifted is True
    assert res == domain_classifier_test(ref, cur, seed=7)


def test_domain_classifier_same_distribution_not_drifted() -> None:
    res = domain_classifier_test(_normal(1, 300, 5), _normal(2, 300, 5), seed=0)
    assert res.status == "ok" and res.drifted is False
    assert 0.4 < res.statistic < 0.6 and res.p_value > 0.05


def test_domain_classifier_decision_rules_on_a_large_negligible_shift() -> None:
    # 0.1 sd in one column, 5,000 rows per side: significant, but an AUC near 0.53 is not material
    ref, cur = _normal(1, 5000, 3), _normal(2, 5000, 3)
    cur[:, 0] += 0.1
    kw = {"model": "logistic", "seed": 0}
    both = domain_classifier_test(ref, cur, **kw)
    assert both.p_value < 0.01 and 0.5 < both.statistic < 0.55
    assert both.drifted is False and both.threshold == 0.55
    assert domain_classifier_test(ref, cur, decision="p_value", **kw).drifted is True
    assert domain_classifier_test(ref, cur, decision="auc", auc_threshold=0.51, **kw).drifted is True


def test_gradient_boosting_sees_a_correlation_change_logistic_regression_does_not() -> None:
    ref, cur = _correlated(1, 1000, 0.9, d=2), _correlated(2, 1000, 0.9, d=2)
    cur[:, 1] *= -1  # correlation +0.81 -> -0.81, marginals unchanged
    boosted = domain_classifier_test(ref, cur, seed=0)
    linear = domain_classifier_test(ref, cur, model="logistic", seed=0)
    assert boosted.statistic > 0.8 and boosted.drifted is True
    assert linear.statistic < 0.6


def test_domain_classifier_rejects_bad_parameters() -> None:
    x = _normal(1, 40, 2)
    with pytest.raises(ValueError, match="model"):
        domain_classifier_test(x, x, model="forest")
    with pytest.raises(ValueError, match="decision"):
        domain_classifier_test(x, x, decision="either")
    with pytest.raises(ValueError, match="auc_threshold"):
        domain_classifier_test(x, x, auc_threshold=0.4)


# ----------------------------------------------------------------------------- PCA reconstruction error


def test_pca_flags_correlation_change_that_per_column_ks_misses() -> None:
    ref = _correlated(0, 5000, 0.9)
    cur = _correlated(10, 500, 0.0)  # same N(0, 1) marginals, no correlation
    assert all(ks_2samp(ref[:, j], cur[:, j]).pvalue > 0.1 for j in range(4))
    res = pca_reconstruction_test(ref, cur)
    assert res.drifted is True and res.p_value is None
    assert res.details["n_components"] == 1 and res.details["n_chunks"] == 10
    assert res.statistic > 2 * res.threshold


def test_pca_stationary_not_flagged() -> None:
    ref = _correlated(0, 5000, 0.9)
    for seed in range(20, 25):
        res = pca_reconstruction_test(ref, _correlated(seed, 500, 0.9))
        assert res.drifted is False
        assert res.details["lower_threshold"] < res.statistic < res.details["upper_threshold"]
        assert res.threshold == res.details["upper_threshold"]


def test_pca_values_equal_an_independent_svd_computation() -> None:
    ref = _correlated(3, 600, 0.8, d=3) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    cur = _correlated(4, 100, 0.5, d=3) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    res = pca_reconstruction_test(ref, cur, variance_share=0.65)

    mean, sd = ref.mean(axis=0), ref.std(axis=0)
    z = (ref - mean) / sd
    _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.65, side="right") + 1)  # first share > 0.65
    axes = vt[:k]

    def err(rows: np.ndarray) -> np.ndarray:
        c = (rows - mean) / sd - z.mean(axis=0)
        return np.linalg.norm(c - c @ axes.T @ axes, axis=1)

    chunk_means = err(ref).reshape(6, 100).mean(axis=1)
    assert res.details["n_components"] == k
    assert res.statistic == pytest.approx(err(cur).mean(), rel=1e-10)
    assert res.details["upper_threshold"] == pytest.approx(chunk_means.mean() + 3 * chunk_means.std(ddof=1), rel=1e-10)
    assert res.details["lower_threshold"] == pytest.approx(chunk_means.mean() - 3 * chunk_means.std(ddof=1), rel=1e-10)

    q = pca_reconstruction_test(ref, cur, quantile=0.9, chunk_size=50)
    means50 = err(ref).reshape(12, 50).mean(axis=1)
    assert q.details["n_chunks"] == 12
    assert q.threshold == pytest.approx(np.quantile(means50, 0.9), rel=1e-10)
    assert q.details["lower_threshold"] == pytest.approx(np.quantile(means50, 0.1), rel=1e-10)


def test_pca_flags_rows_collapsing_onto_the_principal_axis() -> None:
    ref = _correlated(0, 5000, 0.9)
    on_axis = np.repeat(np.random.default_rng(1).normal(size=(500, 1)), 4, axis=1)  # perfectly correlated
    res = pca_reconstruction_test(ref, on_axis)
    # close to, not exactly on, the fitted axis: sample correlations are not exactly equal
    assert res.statistic < 0.05 < res.details["lower_threshold"] and res.drifted is True


def test_pca_rounding_noise_is_not_drift_when_all_variance_is_kept() -> None:
    # two independent columns, 99.9% of variance: both axes kept, every error is ~1e-16 of SVD rounding
    for seed in range(5):
        ref, cur = _normal(seed, 1000, 2), _normal(seed + 50, 100, 2) * 3
        res = pca_reconstruction_test(ref, cur, variance_share=0.999)
        assert res.details["n_components"] == 2 and res.statistic < 1e-14 and res.drifted is False
    one_column = pca_reconstruction_test(_normal(0, 1000, 1), _normal(1, 100, 1, shift=5.0))
    assert one_column.statistic == 0.0 and one_column.drifted is False


def test_pca_partial_trailing_chunk_dropped_and_too_few_chunks_insufficient() -> None:
    ref = _correlated(0, 1049, 0.9)
    full = pca_reconstruction_test(ref, _correlated(1, 100, 0.9))
    assert full.details["n_chunks"] == 10 and full.details["chunk_size_reduced"] is False
    short = pca_reconstruction_test(ref, _correlated(1, 300, 0.9), chunk_size=300)  # 3 chunks of 300
    assert short.status == INSUFFICIENT_DATA and short.details["chunk_size"] == 300
    assert pca_reconstruction_test(ref, _correlated(1, 300, 0.9), chunk_size=300, min_chunks=3).status == "ok"
    # default chunk size when the current window is too large for 5 chunks: 1049 // 5 = 209 rows
    reduced = pca_reconstruction_test(ref, _correlated(1, 300, 0.9))
    assert (reduced.details["chunk_size"], reduced.details["n_chunks"]) == (209, 5)
    # fewer than 2 rows per chunk: no band can be computed
    tiny = pca_reconstruction_test(_correlated(0, 9, 0.9), _correlated(1, 100, 0.9))
    assert tiny.status == INSUFFICIENT_DATA and "9 reference rows // 5) = 1 rows" in tiny.details["reason"]


def test_pca_large_current_window_uses_smaller_reference_chunks() -> None:
    ref = _correlated(0, 3000, 0.9)
    stable = pca_reconstruction_test(ref, _correlated(1, 1000, 0.9))
    # 3000 // 1000 = 3 chunks of the current window's size, fewer than 5: chunks of 3000 // 5 = 600 rows instead
    assert stable.status == "ok" and stable.drifted is False
    assert (stable.details["chunk_size"], stable.details["n_chunks"]) == (600, 5)
    assert stable.details["chunk_size_reduced"] is True
    assert stable == pca_reconstruction_test(ref, _correlated(1, 1000, 0.9), chunk_size=600)
    drifted = pca_reconstruction_test(ref, _correlated(2, 1000, 0.0))  # correlation gone, marginals unchanged
    assert drifted.drifted is True and drifted.statistic > drifted.threshold


def test_pca_constant_reference_columns() -> None:
    ref = _correlated(0, 1000, 0.9)
    ref[:, 2] = 4.0
    res = pca_reconstruction_test(ref, _correlated(1, 100, 0.9) * [1, 1, 0, 1] + [0, 0, 4.0, 0])
    assert res.status == "ok" and res.drifted is False and math.isfinite(res.statistic)
    # every column constant: no axis is kept and the error is the distance from the reference mean
    flat = np.full((1000, 2), 1.0)
    same = pca_reconstruction_test(flat, np.full((100, 2), 1.0))
    assert same.statistic == 0.0 and same.drifted is False and same.details["n_components"] == 0
    moved = pca_reconstruction_test(flat, np.full((100, 2), [4.0, 5.0]))
    assert moved.statistic == 5.0 and moved.drifted is True


# ----------------------------------------------------------------------------- embeddings


def test_embedding_matrix_from_series_of_lists_and_arrays() -> None:
    lists = pd.Series([[1, 2, 3], [4.5, 5, 6]])
    arrays = pd.Series([np.array([1.0, 2, 3]), np.array([4.5, 5, 6])])
    expected = np.array([[1.0, 2, 3], [4.5, 5, 6]])
    for values in (lists, arrays, [(1, 2, 3), (4.5, 5, 6)]):
        out = embedding_matrix(values)
        assert out.dtype == np.float64 and np.array_equal(out, expected)
    assert embedding_matrix(pd.Series([], dtype=object)).shape == (0, 0)


def test_embedding_matrix_rejects_ragged_missing_and_non_numeric() -> None:
    with pytest.raises(ValueError, match=r"vec: vectors have different lengths \(3 in row 0, 2 in row 2\)"):
        embedding_matrix(pd.Series([[1, 2, 3], [1, 2, 3], [1, 2]]), name="vec")
    with pytest.raises(ValueError, match="row 1 is not a 1-D vector"):
        embedding_matrix([[1.0, 2.0], None])
    with pytest.raises(ValueError, match="row 0 is not a 1-D vector"):
        embedding_matrix([[[1.0], [2.0]]])
    with pytest.raises(ValueError, match="numbers"):
        embedding_matrix([["a", "b"]])
    with pytest.raises(ValueError, match="empty"):
        embedding_matrix([[], []])


def test_embedding_columns_orders_by_index_and_names_gaps() -> None:
    frame = pd.DataFrame({"e[1]": [2.0, 20.0], "other": ["x", "y"], "e[0]": [1.0, 10.0], "e[2]": [3, 30]})
    assert np.array_equal(embedding_columns(frame, "e"), [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    with pytest.raises(ValueError, match=r"lacks column\(s\) e\[1\]"):
        embedding_columns(frame.drop(columns="e[1]"), "e")
    with pytest.raises(ValueError, match=r"no columns named f\[0\]"):
        embedding_columns(frame, "f")


def test_embedding_subspace_shift_caught_by_mmd_and_domain_classifier() -> None:
    as_series = lambda rows: pd.Series(list(rows))  # noqa: E731 — embeddings arrive one vector per row
    ref = embedding_matrix(as_series(_embedding(1, 300, 0.0)))
    shifted = embedding_matrix(as_series(_embedding(2, 300, 0.5)))
    stable = embedding_matrix(as_series(_embedding(3, 300, 0.0)))
    assert ref.shape == (300, 64)

    assert mmd_test(ref, shifted, n_permutations=100).p_value == 1 / 101
    assert mmd_test(ref, stable, n_permutations=100).drifted is False
    caught = domain_classifier_test(ref, shifted, seed=0)
    assert caught.drifted is True and caught.statistic > 0.7
    assert domain_classifier_test(ref, stable, seed=0).drifted is False

    frame = pd.DataFrame(shifted, columns=[f"emb[{i}]" for i in range(64)])
    assert np.array_equal(embedding_columns(frame, "emb"), shifted)


def test_embedding_columns_reads_only_canonical_indices() -> None:
    frame = pd.DataFrame({"e[0]": [1.0], "e[01]": [9.0], "e[1]": [2.0]})
    assert np.array_equal(embedding_columns(frame, "e"), [[1.0, 2.0]])


# ----------------------------------------------------------------------------- profiles


def _row_ids(seed: int, n: int) -> np.ndarray:
    """Distinct row ids that are not positions, so a join cannot lean on row order."""
    return np.random.default_rng(seed).choice(2**40, size=n, replace=False).astype(np.int64)


def _expected_join(frame: pd.DataFrame, ids: np.ndarray, columns: list[str], sample_size: int) -> np.ndarray:
    """Rows kept by every column's bottom-k sample of its finite rows, in key order, built from the frame."""
    keys = row_keys(ids, 0)
    kept = set(range(len(frame)))
    for c in columns:
        finite = np.flatnonzero(np.isfinite(frame[c].to_numpy(dtype=np.float64)))
        kept &= set(finite[np.argsort(keys[finite])][:sample_size].tolist())
    rows = sorted(kept, key=lambda i: keys[i])
    return frame.iloc[rows][columns].to_numpy(dtype=np.float64)


def _gappy_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    frame.loc[rng.random(n) < 0.1, "b"] = np.nan
    frame.loc[rng.random(n) < 0.05, "c"] = np.inf
    frame["segment"] = rng.choice(["x", "y"], size=n)
    return frame


def test_profile_matrix_is_the_inner_join_of_the_samples_on_their_keys() -> None:
    frame, ids = _gappy_frame(0, 3000), _row_ids(0, 3000)
    profile = build_profile(frame, row_ids=ids, sample_size=500)
    cols = ["c", "a", "b"]  # not frame order: the matrix follows the order asked for
    matrix = profile_matrix(profile, cols)

    parts = [pd.DataFrame({"key": profile.columns[c].sample_keys, c: profile.columns[c].sample}) for c in cols]
    merged = functools.reduce(lambda left, right: left.merge(right, on="key", how="inner"), parts)
    merged = merged.sort_values("key")
    assert np.array_equal(matrix, merged[cols].to_numpy())
    # The same rows, read from the frame itself through the row keys.
    by_key = frame.set_index(pd.Index(row_keys(ids, 0), name="key"))
    assert np.array_equal(matrix, by_key.loc[merged["key"].to_numpy(), cols].to_numpy())
    assert np.array_equal(matrix, _expected_join(frame, ids, cols, 500))
    # b and c each drop rows of their own, so the join is smaller than the 500-row samples.
    assert 0 < matrix.shape[0] < 500 and np.all(np.isfinite(matrix))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(0, 120),
    sample_size=st.integers(1, 80),
    missing_share=st.sampled_from([0.0, 0.2, 0.7, 1.0]),
)
def test_profile_matrix_matches_the_join_built_from_the_frame(
    seed: int, n: int, sample_size: int, missing_share: float
) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.integers(-3, 4, size=(n, 3)).astype(float), columns=["a", "b", "c"])
    frame.loc[rng.random(n) < missing_share, "a"] = np.nan
    frame.loc[rng.random(n) < missing_share / 2, "c"] = -np.inf
    ids = _row_ids(seed, n)
    matrix = profile_matrix(build_profile(frame, row_ids=ids, sample_size=sample_size), ["a", "b", "c"])
    assert matrix.shape[1] == 3
    assert np.array_equal(matrix, _expected_join(frame, ids, ["a", "b", "c"], sample_size))


def test_profile_matrix_keeps_the_whole_sample_when_no_value_is_missing() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=800), "b": rng.integers(0, 9, size=800)})
    profile = build_profile(frame, row_ids=_row_ids(5, 800), sample_size=300)
    matrix = profile_matrix(profile, ["a", "b"])
    assert matrix.shape == (300, 2)
    assert np.array_equal(matrix[:, 0], profile.columns["a"].sample)
    assert np.array_equal(matrix[:, 1], profile.columns["b"].sample)
    assert profile_matrix(build_profile(frame), ["b", "a"]).shape == (800, 2)


def test_missing_values_in_one_column_drop_exactly_those_rows() -> None:
    a = np.arange(200, dtype=np.float64)
    b = 2.0 * a
    b[[3, 7, 11]] = np.nan
    b[50] = np.inf
    frame = pd.DataFrame({"a": a, "b": b})
    profile = build_profile(frame, row_ids=_row_ids(1, 200))
    matrix = profile_matrix(profile, ["a", "b"])
    assert matrix.shape == (196, 2)
    assert set(matrix[:, 0].tolist()) == set(range(200)) - {3, 7, 11, 50}
    assert np.array_equal(matrix[:, 1], 2.0 * matrix[:, 0])  # values stay row-aligned


def test_profile_matrix_rejects_columns_it_cannot_join() -> None:
    profile = build_profile(_gappy_frame(2, 50))
    with pytest.raises(ValueError, match="'segment' is categorical"):
        profile_matrix(profile, ["a", "segment"])
    with pytest.raises(ValueError, match="'zzz' is not in the profile"):
        profile_matrix(profile, ["zzz"])
    with pytest.raises(ValueError, match="at least one column"):
        profile_matrix(profile, [])
    with pytest.raises(ValueError, match="not one string"):
        profile_matrix(profile, "a")
    with pytest.raises(ValueError, match="repeat a name"):
        profile_matrix(profile, ["a", "a"])
    repeated = build_profile(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), row_ids=np.array([5, 5, 6]))
    with pytest.raises(ValueError, match="repeated row ids"):
        profile_matrix(repeated, ["a"])


def test_embedding_groups_returns_vectors_with_contiguous_indices() -> None:
    names = ["a[1]", "age", "a[0]", "b[1]", "b[2]", "c[0]", "c[2]", "d[01]", "d[0]", "a[2]", "e[0]", 7]
    assert embedding_groups(names) == {"a": ["a[0]", "a[1]", "a[2]"], "d": ["d[0]"], "e": ["e[0]"]}
    assert embedding_groups(["x", "y"]) == {}
    assert embedding_groups(["m[0][1]", "m[0][0]"]) == {"m[0]": ["m[0][0]", "m[0][1]"]}


def _correlated_window(seed: int, n: int, rho: float) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(_correlated(seed, n, rho), columns=[f"x{i}" for i in range(4)])
    frame["segment"] = np.random.default_rng(seed).choice(["p", "q"], size=n)
    return frame, _row_ids(seed, n)


def test_correlation_change_with_unchanged_marginals_is_flagged_from_profiles() -> None:
    ref_frame, ref_ids = _correlated_window(10, 20_000, 0.0)
    cur_frame, cur_ids = _correlated_window(11, 5_000, 0.9)
    stable_frame, stable_ids = _correlated_window(12, 5_000, 0.0)
    reference = build_profile(ref_frame, row_ids=ref_ids)
    current = build_profile(cur_frame, row_ids=cur_ids, reference=reference)
    stable = build_profile(stable_frame, row_ids=stable_ids, reference=reference)
    cols = ["x0", "x1", "x2", "x3"]
    for c in cols:  # every marginal is N(0, 1) on both sides: univariate tests see nothing
        assert ks_2samp(ref_frame[c], cur_frame[c]).pvalue > 0.01

    drifted = multivariate_drift(reference, current)
    assert [r.method for r in drifted] == ["mmd", "domain_classifier", "pca_reconstruction"]
    assert [r.drifted for r in drifted] == [True, True, True]
    mmd, classifier, pca = drifted
    assert mmd.p_value == 1 / 201 and classifier.statistic > 0.6
    assert all(r.details["columns"] == cols for r in drifted)  # the categorical column is left out
    assert (mmd.n_reference, mmd.n_current) == (20_000, 5_000)
    assert pca.details["chunk_size"] == 4_000 and pca.details["n_chunks"] == 5  # min(5000, 20000 // 5)
    # The bridge only joins: the same test on the joined matrices gives the same result.
    direct = mmd_test(profile_matrix(reference, cols), profile_matrix(current, cols), seed=0)
    assert (mmd.statistic, mmd.p_value) == (direct.statistic, direct.p_value)

    quiet = multivariate_drift(
        reference, stable, methods=("mmd", "pca_reconstruction"), options={"mmd": {"n_permutations": 99}}
    )
    assert [r.drifted for r in quiet] == [False, False]
    assert quiet[0].details["n_permutations"] == 99


def _embedding_frame(seed: int, n: int, shift: float) -> tuple[pd.DataFrame, np.ndarray]:
    """16-dim standard Gaussian embedding, mean-shifted by `shift` sd along 4 directions of a fixed rotation."""
    basis, _ = np.linalg.qr(np.random.default_rng(98).normal(size=(16, 16)))
    z = np.random.default_rng(seed).normal(size=(n, 16))
    z[:, :4] += shift
    order = np.random.default_rng(0).permutation(16)  # columns arrive in no particular order
    frame = pd.DataFrame((z @ basis.T)[:, order], columns=[f"emb[{i}]" for i in order])
    frame["age"] = np.random.default_rng(seed + 1).normal(40, 5, size=n)
    frame["score[1]"] = 0.5  # a lone position 1 is no embedding
    return frame, z @ basis.T


def test_embedding_shift_found_by_group_and_detected_from_profiles() -> None:
    ref_frame, ref_z = _embedding_frame(20, 2_000, 0.0)
    ref_ids = _row_ids(20, 2_000)
    reference = build_profile(ref_frame, row_ids=ref_ids)
    groups = embedding_groups(reference.columns)
    assert groups == {"emb": [f"emb[{i}]" for i in range(16)]}
    # No missing values and fewer rows than the sample size: the whole window, in key order.
    assert np.array_equal(profile_matrix(reference, groups["emb"]), ref_z[np.argsort(row_keys(ref_ids, 0))])

    shifted = build_profile(_embedding_frame(21, 1_000, 0.5)[0], row_ids=_row_ids(21, 1_000), reference=reference)
    stable = build_profile(_embedding_frame(22, 1_000, 0.0)[0], row_ids=_row_ids(22, 1_000), reference=reference)
    caught = multivariate_drift(reference, shifted, groups["emb"], methods=("mmd",))[0]
    assert caught.drifted is True and caught.p_value == 1 / 201
    assert multivariate_drift(reference, stable, groups["emb"], methods=("mmd",))[0].drifted is False


def test_multivariate_drift_reports_insufficient_data_when_the_join_is_too_small() -> None:
    reference = build_profile(_gappy_frame(3, 1_000), row_ids=_row_ids(3, 1_000))
    tiny = build_profile(_gappy_frame(4, 5), row_ids=_row_ids(4, 5), reference=reference)
    gappy_frame = _gappy_frame(5, 500)
    gappy_frame.loc[8:, "a"] = np.nan  # 8 rows left with a value for a
    gappy_frame[["b", "c"]] = 1.0
    gappy = build_profile(gappy_frame, row_ids=_row_ids(5, 500), reference=reference)

    for current, n_current in [(tiny, None), (gappy, 8)]:
        results = multivariate_drift(reference, current)
        assert [r.status for r in results] == [INSUFFICIENT_DATA] * 3
        assert all(r.statistic is None and r.drifted is None for r in results)
        if n_current is not None:
            assert {r.n_current for r in results} == {n_current}
    assert profile_matrix(tiny, ["a", "b", "c"]).shape[0] == multivariate_drift(reference, tiny)[0].n_current <= 5


def test_multivariate_drift_rejects_bad_requests() -> None:
    profile = build_profile(_gappy_frame(6, 100))
    with pytest.raises(ValueError, match="unknown method"):
        multivariate_drift(profile, profile, methods=("mmd", "energy"))
    with pytest.raises(ValueError, match="at least one test"):
        multivariate_drift(profile, profile, methods=())
    with pytest.raises(ValueError, match="not run"):
        multivariate_drift(profile, profile, methods=("mmd",), options={"pca_reconstruction": {}})
    with pytest.raises(ValueError, match="must not set seed"):
        multivariate_drift(profile, profile, methods=("mmd",), options={"mmd": {"seed": 3}})
    with pytest.raises(ValueError, match="is categorical"):
        multivariate_drift(profile, profile, ["a", "segment"])
    categorical = build_profile(pd.DataFrame({"segment": ["x", "y"]}))
    with pytest.raises(ValueError, match="share no numeric column"):
        multivariate_drift(categorical, categorical)


def test_domain_classifier_flags_a_ten_sigma_shift_with_thirty_rows_a_side() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=(30, 3)), rng.normal(10, 1, size=(30, 3))
    res = domain_classifier_test(ref, cur)
    # 30 training rows: sklearn's default leaves of 20 rows cannot split them, every score would tie (AUC 0.5, p = 1)
    assert res.status == "ok" and res.drifted is True
    assert res.details["n_train"] == 30 and res.details["min_samples_leaf"] == 3
    # every held-out current row scored above every held-out reference row: U = 15 · 15
    assert res.statistic == 1.0 and res.details["u_statistic"] == 225.0
    assert res.p_value == mannwhitneyu(np.ones(15), np.zeros(15), alternative="greater").pvalue < 1e-5
    at_minimum = domain_classifier_test(_normal(1, 20, 3), _normal(2, 20, 3, shift=10.0))
    assert at_minimum.drifted is True and at_minimum.details["min_samples_leaf"] == 2


def test_domain_classifier_leaf_size_follows_the_training_rows() -> None:
    for per_side, leaf in [(8, 1), (50, 5), (99, 9), (100, 10), (200, 20), (300, 20)]:
        res = domain_classifier_test(_normal(1, per_side, 2), _normal(2, per_side, 2), min_rows=4)
        assert res.details["n_train"] == per_side and res.details["min_samples_leaf"] == leaf
    logistic = domain_classifier_test(_normal(1, 30, 2), _normal(2, 30, 2), model="logistic")
    assert "min_samples_leaf" not in logistic.details


def test_domain_classifier_small_samples_same_distribution_false_positive_rate_plausible() -> None:
    # small leaves must not turn noise into drift: held-out scores stay exchangeable under the null
    p_values = np.array(
        [domain_classifier_test(_normal(300 + s, 30, 3), _normal(400 + s, 30, 3), seed=s).p_value for s in range(40)]
    )
    assert np.count_nonzero(p_values < 0.05) <= 6
