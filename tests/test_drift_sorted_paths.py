"""The sorted-sample paths of the drift comparison give exactly the numbers of the plain calls.

:func:`detectors.drift.compare` reads the two empirical CDFs off one linear merge of the sorted
samples (:func:`detectors._checks.merged_ecdf_counts`) instead of a binary search per merged
value, and takes the distinct-value count of a reference column from its cached sorted
sample. Each test here recomputes the same quantity the straightforward way (scipy on the
unsorted samples, ``np.searchsorted``, ``np.unique``) and asserts equality, not closeness.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

# bench/ lives at the repository root and is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synthetic  # noqa: E402
from detectors._checks import merged_ecdf_counts  # noqa: E402
from detectors.distance import wasserstein_pair, wasserstein_pair_sorted  # noqa: E402
from detectors.drift import DriftConfig, _column, _decide, compare  # noqa: E402
from detectors.profile import NumericProfile, build_profile  # noqa: E402
from detectors.two_sample import KS_EXACT_MAX_N, ks_and_wasserstein_sorted, ks_test  # noqa: E402


def _searchsorted_counts(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    merged = np.concatenate((u, v))
    merged.sort(kind="mergesort")
    return merged, u.searchsorted(merged, "right"), v.searchsorted(merged, "right")


def _sample_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    pairs = [
        (rng.normal(size=5_000), rng.normal(0.1, 1.2, size=7_000)),  # no ties
        (np.round(rng.normal(size=5_000), 1), np.round(rng.normal(size=3_000), 1)),  # ties everywhere
        (rng.poisson(3, 4_000).astype(float), rng.poisson(3.2, 6_000).astype(float)),  # few values
        (np.array([2.0]), np.array([1.0, 2.0, 2.0, 3.0])),  # one value, tie across samples
        (np.full(50, 7.0), np.full(30, 7.0)),  # one shared constant
        (np.full(50, 7.0), np.full(30, -7.0)),  # two constants
        (np.array([-0.0, 0.0, -0.0, 1.0]), np.array([0.0, -0.0, 2.0])),  # signed zeros tie
        (np.where(rng.random(6_000) < 0.7, 0.0, rng.lognormal(size=6_000)), rng.lognormal(size=2_000)),  # an atom
    ]
    return [(np.sort(u), np.sort(v)) for u, v in pairs]


@pytest.mark.parametrize("pair", range(len(_sample_pairs())))
def test_merged_counts_equal_searchsorted(pair):
    u, v = _sample_pairs()[pair]
    for a, b in ((u, v), (v, u)):
        merged, cu, cv = merged_ecdf_counts(a, b)
        want_merged, want_u, want_v = _searchsorted_counts(a, b)
        assert merged.tobytes() == want_merged.tobytes()  # same values, signed zeros in the same places
        assert np.array_equal(cu, want_u) and np.array_equal(cv, want_v)
        assert cu.dtype == np.int64 and cv.dtype == np.int64


@pytest.mark.parametrize("pair", range(len(_sample_pairs())))
def test_wasserstein_pair_sorted_equals_wasserstein_pair(pair):
    u, v = _sample_pairs()[pair]
    rng = np.random.default_rng(pair)
    # the plain call on the samples in any order
    got = wasserstein_pair_sorted(u, v, 1.7, 1e-12)
    assert got == wasserstein_pair(rng.permutation(u), rng.permutation(v), 1.7, 1e-12)
    assert got[0] == wasserstein_distance(u, v)
    assert wasserstein_pair_sorted(u, v, 0.0) == wasserstein_pair(u, v, 0.0)  # the floor as divisor


def test_wasserstein_pair_sorted_huge_values_take_the_rescaled_path():
    u = np.sort(np.array([1e300, -1e300, 3e299]))
    v = np.sort(np.array([1.5e300, -2e299]))
    assert wasserstein_pair_sorted(u, v, 1e300) == wasserstein_pair(u, v, 1e300)
    with pytest.raises(ValueError, match="ref_std"):
        wasserstein_pair_sorted(u, v, -1.0)


@pytest.mark.parametrize("n1,n2,decimals", [(100_000, 50_000, None), (50_000, 100_000, 2), (30_000, 12_000, 0)])
def test_one_pass_ks_and_wasserstein_equal_scipy_at_window_sizes(n1, n2, decimals):
    rng = np.random.default_rng(n1 + 3 * n2)
    u, v = rng.normal(size=n1), rng.normal(0.01, 1.0, size=n2)
    if decimals is not None:
        u, v = np.round(u, decimals), np.round(v, decimals)
    test, w1 = ks_and_wasserstein_sorted(np.sort(u), np.sort(v))
    want = ks_2samp(u, v)
    assert max(n1, n2) > KS_EXACT_MAX_N  # the one-pass branch, not the fallback
    assert (test.statistic, test.p_value, test.neg_log10_p) == (want.statistic, want.pvalue, ks_test(u, v).neg_log10_p)
    assert w1 == wasserstein_distance(u, v)


def _frames(seed: int, n_ref: int, n_cur: int, mean_shift: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ref, cur = synthetic.window(rng, n_ref), synthetic.window(rng, n_cur, mean_shift=mean_shift)
    cur.loc[cur.index[:: 97], "num_03"] = np.nan  # a missing share to test as well
    cur["num_05"] = cur["num_05"].round(0)  # ties inside and across the samples
    return ref, cur


def _straightforward(ref, cur, name: str, cfg: DriftConfig) -> dict:
    """The numeric fields of one column from the plain calls on the unsorted samples."""
    r, c = ref.columns[name], cur.columns[name]
    assert isinstance(r, NumericProfile) and isinstance(c, NumericProfile)
    distinct = np.unique(r.sample).size
    w, wn = wasserstein_pair(r.sample, c.sample, r.std, cfg.std_floor)
    out = {"wasserstein": w, "wasserstein_normalised": wn,
           "method": "ks" if distinct > cfg.discrete_max_values else None}
    if out["method"] == "ks":
        t = ks_test(r.sample, c.sample)
        out.update(statistic=t.statistic, p_value=t.p_value, neg_log10_p=t.neg_log10_p)
    return out


@pytest.mark.parametrize("seed,n_ref,n_cur,shift", [(1, 20_000, 30_000, 0.0), (2, 50_000, 100_000, 0.0),
                                                     (3, 15_000, 40_000, 0.3)])
def test_compare_equals_the_straightforward_recomputation(seed, n_ref, n_cur, shift):
    ref_frame, cur_frame = _frames(seed, n_ref, n_cur, shift)
    ref = build_profile(ref_frame)
    cur = build_profile(cur_frame, reference=ref, sample_size=100_000)
    cfg = DriftConfig()
    results = {r.column: r.to_dict() for r in compare(ref, cur, cfg)}
    for name in synthetic.NUMERIC:
        want = _straightforward(ref, cur, name, cfg)
        got = results[name]
        if want.pop("method") == "ks":
            assert got["method"] == "ks"
        else:  # few distinct values: the histogram test
            assert got["method"] != "ks"
        assert {k: got[k] for k in want} == want, name
    # the thread pool (windows of 100,000 rows or more) and the serial loop agree to the bit,
    # and a second call on the same profiles (cached sorted reference) repeats the first
    serial = _decide([_column(ref.columns[n], cur.columns.get(n), cur.n_rows, n, cfg) for n in ref.columns],
                     cur.n_rows, cfg)
    assert [r.to_dict() for r in serial] == list(results.values())
    assert [r.to_dict() for r in compare(ref, cur, cfg)] == list(results.values())
    if shift:
        assert results[synthetic.SHIFT_COLUMN]["drifted"] is True


def test_distinct_count_chooses_the_test_as_np_unique():
    # exactly discrete_max_values distinct values: still the histogram test; one more: KS
    rng = np.random.default_rng(5)
    for k, tested_by_ks in ((20, False), (21, True)):
        values = rng.permutation(np.resize(np.arange(k, dtype=float) - 10.0, 3_000))
        values[np.flatnonzero(values == 0.0)[:3]] = -0.0  # signed zeros count once, as in np.unique
        ref = build_profile(pd.DataFrame({"x": values}))
        cur = build_profile(pd.DataFrame({"x": rng.permutation(values)}), reference=ref)
        got = compare(ref, cur)[0]
        assert np.unique(ref.columns["x"].sample).size == k
        assert (got.method == "ks") is tested_by_ks
