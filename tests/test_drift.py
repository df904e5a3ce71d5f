"""Drift decisions on hard inputs, end to end: build_profile -> compare (-> dataset_drift).

Each test states the right value independently (by hand, or by a direct scipy call on the
table or values the issue describes) and checks what :func:`detectors.drift.compare` reports.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import zlib

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_ndtr
from scipy.stats import chi2_contingency, ks_2samp, norm, wasserstein_distance

from detectors.calibration import bootstrap_histogram_statistics, min_null_size, threshold_from_null
from detectors.distance import js_distance, psi
from detectors.drift import NUMERIC_TESTS, ColumnDrift, DriftConfig, compare, compare_column, dataset_drift
from detectors.evidently_rule import evidently_column_drift, evidently_dataset_drift
from detectors.profile import OTHER, Profile, build_profile

LN10 = math.log(10.0)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _profiles(ref: pd.DataFrame, cur: pd.DataFrame, **kw) -> tuple[Profile, Profile]:
    r = build_profile(ref, **kw)
    return r, build_profile(cur, reference=r, **kw)


def _one(ref: pd.DataFrame, cur: pd.DataFrame, cfg: DriftConfig = DriftConfig(), **kw) -> ColumnDrift:
    r, c = _profiles(ref, cur, **kw)
    (res,) = compare(r, c, cfg)
    return res


def _chi2(table: list[list[int]]):
    return chi2_contingency(np.asarray(table), correction=False)


def _assert_no_nan(results: list[ColumnDrift]) -> None:
    """Every float field of every result is a number (None allowed), and the dict is JSON-safe."""
    for res in results:
        for f in dataclasses.fields(res):
            v = getattr(res, f.name)
            if isinstance(v, (float, np.floating)):
                assert not math.isnan(v), (res.column, f.name)
        json.dumps(res.to_dict())
        if res.status == "insufficient_data":
            shown = (res.statistic, res.p_value, res.p_value_adjusted, res.neg_log10_p, res.drifted, res.psi,
                     res.js_distance, res.hellinger, res.total_variation, res.wasserstein, res.wasserstein_normalised)
            assert shown == (None,) * len(shown), res


# ----------------------------------------------------------------------------- missing values


def test_nan_none_inf_excluded_and_ks_equals_scipy_on_finite_values() -> None:
    rng = _rng(1)
    ref = rng.normal(size=800)
    ref[:40], ref[40:45], ref[45:50] = np.nan, np.inf, -np.inf
    cur_finite = rng.normal(0.1, 1.0, 600)
    # object column: None stays None (not NaN) until the profile reads it.
    cur = pd.Series([*cur_finite, *[None] * 30, *[np.nan] * 30, *[np.inf] * 20, *[-np.inf] * 20], dtype=object)
    r, c = _profiles(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
    col = c.columns["x"]
    assert (col.count, col.missing, col.nan, col.posinf, col.neginf) == (600, 60, 30, 20, 20)

    (res,) = compare(r, c)
    expected = ks_2samp(ref[np.isfinite(ref)], cur_finite)
    assert (res.status, res.method) == ("ok", "ks")
    assert res.statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert res.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert (res.n_reference, res.n_current) == (750, 600)
    assert res.reference_missing_share == pytest.approx(50 / 800)
    assert res.missing_share == pytest.approx(100 / 700)
    # The missing-share z-test is the 2x2 chi-square (z² = X²) on (missing, usable) rows.
    assert res.missing_p_value == pytest.approx(_chi2([[50, 750], [100, 600]]).pvalue, rel=1e-9)
    _assert_no_nan([res])


def test_missing_share_jump_with_unchanged_values_is_missing_drift_only() -> None:
    rng = _rng(2)
    values = rng.normal(size=1000)
    cur = values.copy()
    holes = rng.choice(1000, 300, replace=False)
    cur[holes] = np.nan
    res = _one(pd.DataFrame({"x": values}), pd.DataFrame({"x": cur}))
    assert res.status == "ok"
    assert (res.reference_missing_share, res.missing_share) == (0.0, pytest.approx(0.3))
    assert res.drifted is False and res.missing_drifted is True and res.any_drift
    kept = np.delete(values, holes)
    assert res.statistic == pytest.approx(float(ks_2samp(values, kept).statistic), rel=1e-12)
    p_missing = _chi2([[0, 1000], [300, 700]]).pvalue
    assert res.missing_p_value == pytest.approx(p_missing, rel=1e-9)
    # Bonferroni over the family of two p-values (distribution test and missing-share test).
    assert res.p_value_adjusted == pytest.approx(min(1.0, 2 * res.p_value))
    d = dataset_drift([res])
    assert (d.n_columns, d.n_drifted, d.drifted) == (1, 1, True)


def test_renamed_feature_is_missing_drift_and_counts_in_dataset_drift() -> None:
    rng = _rng(3)
    ref = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    cur = pd.DataFrame({"x_renamed": rng.normal(size=500), "y": rng.normal(size=500)})
    r, c = _profiles(ref, cur)
    results = compare(r, c)
    by = {res.column: res for res in results}
    assert list(by) == ["x", "y"]  # reference columns only; "x_renamed" is ignored
    x = by["x"]
    assert x.status == "insufficient_data" and x.drifted is None
    assert (x.n_reference, x.n_current, x.missing_share, x.reference_missing_share) == (500, 0, 1.0, 0.0)
    assert x.missing_p_value == pytest.approx(_chi2([[0, 500], [500, 0]]).pvalue, rel=1e-9)
    assert x.missing_drifted is True
    y = by["y"]
    assert y.status == "ok" and y.drifted is False and y.missing_drifted is None
    d = dataset_drift(results)
    assert (d.n_columns, d.n_drifted, d.share, d.drifted, d.status) == (2, 1, 0.5, True, "ok")
    assert dataset_drift(results, share_threshold=0.6).drifted is False
    _assert_no_nan(results)


# ----------------------------------------------------------------------------- constant columns


def test_constant_reference_and_equal_constant_current_not_drifted() -> None:
    ref, cur = pd.DataFrame({"x": np.full(200, 3.0)}), pd.DataFrame({"x": np.full(150, 3.0)})
    res = _one(ref, cur)
    # One distinct value: "auto" tests the histogram; both windows sit in the same single bin.
    assert (res.method, res.statistic, res.p_value, res.drifted) == ("chi2", 0.0, 1.0, False)
    assert (res.psi, res.js_distance, res.wasserstein, res.wasserstein_normalised) == (0.0, 0.0, 0.0, 0.0)
    ks = _one(ref, cur, DriftConfig(numeric_test="ks"))
    assert (ks.method, ks.statistic, ks.p_value, ks.drifted) == ("ks", 0.0, 1.0, False)
    _assert_no_nan([res, ks])


def test_constant_reference_and_different_constant_current_drifted() -> None:
    ref, cur = pd.DataFrame({"x": np.full(200, 3.0)}), pd.DataFrame({"x": np.full(150, 4.0)})
    res = _one(ref, cur)
    expected = _chi2([[200, 0], [0, 150]])
    assert res.method == "chi2" and res.drifted is True
    assert res.statistic == pytest.approx(350.0) and res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert res.js_distance == 1.0 and res.wasserstein == 1.0
    # Reference std is 0: W1 is divided by the floor 1e-12, a huge but finite number.
    assert res.wasserstein_normalised == pytest.approx(1.0 / 1e-12)
    ks = _one(ref, cur, DriftConfig(numeric_test="ks"))
    assert ks.statistic == 1.0 and ks.p_value == pytest.approx(float(ks_2samp(np.full(200, 3.0), np.full(150, 4.0)).pvalue))
    assert ks.drifted is True
    _assert_no_nan([res, ks])


def test_constant_reference_and_spread_current() -> None:
    cur_values = _rng(4).normal(3.0, 1.0, 300)
    ref, cur = pd.DataFrame({"x": np.full(200, 3.0)}), pd.DataFrame({"x": cur_values})
    res = _one(ref, cur)
    # The constant gets its own bin [3, nextafter(3)); the current values fall below or above it.
    below, above = int(np.sum(cur_values < 3.0)), int(np.sum(cur_values > 3.0))
    expected = _chi2([[200, 0, 0], [0, below, above]])
    assert res.method == "chi2" and res.drifted is True
    assert res.statistic == pytest.approx(expected.statistic) and res.statistic == pytest.approx(500.0)
    assert res.js_distance == 1.0
    ks = _one(ref, cur, DriftConfig(numeric_test="ks"))
    assert ks.statistic == pytest.approx(float(ks_2samp(np.full(200, 3.0), cur_values).statistic))
    assert ks.drifted is True
    _assert_no_nan([res, ks])


def test_spread_reference_and_constant_current() -> None:
    ref_values = _rng(5).normal(size=300)
    res = _one(pd.DataFrame({"x": ref_values}), pd.DataFrame({"x": np.zeros(200)}))
    expected = ks_2samp(ref_values, np.zeros(200))
    assert res.method == "ks" and res.drifted is True
    assert res.statistic == pytest.approx(float(expected.statistic)) and res.p_value == pytest.approx(float(expected.pvalue))
    _assert_no_nan([res])


# ----------------------------------------------------------------------------- empty and tiny windows


def _mixed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = _rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.integers(0, 4, n),
        "c": rng.choice(["a", "b", "c"], n),
        "b": rng.random(n) < 0.5,
        "nb": pd.array(rng.random(n) < 0.5, dtype="boolean"),
    })


@pytest.mark.parametrize("n_current", [0, 1, 2, 29, 30])
def test_tiny_current_window_insufficient_below_min_count(n_current: int) -> None:
    r, c = _profiles(_mixed_frame(400, 6), _mixed_frame(n_current, 7))
    results = compare(r, c)
    assert [res.status for res in results] == ["insufficient_data" if n_current < 30 else "ok"] * 5
    for res in results:
        assert (res.n_reference, res.n_current) == (400, n_current)
        assert res.missing_share == (0.0 if n_current else None)
        assert res.missing_drifted is None  # no missing values on either side: not tested
    d = dataset_drift(results)
    assert d.status == ("insufficient_data" if n_current < 30 else "ok")
    _assert_no_nan(results)


def test_min_count_is_configurable_and_applies_to_both_windows() -> None:
    r, c = _profiles(_mixed_frame(400, 8), _mixed_frame(5, 9))
    assert {res.status for res in compare(r, c, DriftConfig(min_count=6))} == {"insufficient_data"}
    assert {res.status for res in compare(r, c, DriftConfig(min_count=5))} == {"ok"}
    r, c = _profiles(_mixed_frame(5, 10), _mixed_frame(400, 11))
    assert {res.status for res in compare(r, c, DriftConfig(min_count=6))} == {"insufficient_data"}
    results = compare(r, c, DriftConfig(min_count=5))
    assert {res.status for res in results} == {"ok"}
    _assert_no_nan(results)


def test_empty_reference_and_empty_current() -> None:
    empty = _mixed_frame(0, 12)
    r, c = _profiles(empty, empty)
    results = compare(r, c)
    assert all(res.status == "insufficient_data" and res.missing_share is None for res in results)
    assert all(res.reference_missing_share is None and res.missing_drifted is None for res in results)
    d = dataset_drift(results)
    assert (d.n_columns, d.share, d.drifted, d.status) == (0, None, None, "insufficient_data")
    _assert_no_nan(results)


def test_all_missing_current_column_is_insufficient_but_missing_drifted() -> None:
    rng = _rng(13)
    ref = pd.DataFrame({"x": rng.normal(size=200), "c": rng.choice(["a", "b"], 200)})
    cur = pd.DataFrame({"x": np.full(100, np.nan), "c": pd.Series([None] * 100, dtype=object)})
    r, c = _profiles(ref, cur)
    results = compare(r, c)
    for res in results:
        assert res.status == "insufficient_data" and res.n_current == 0
        assert res.missing_share == 1.0 and res.missing_drifted is True
    assert dataset_drift(results).n_drifted == 2
    _assert_no_nan(results)


@pytest.mark.parametrize("test_name", sorted(NUMERIC_TESTS))
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tiny_windows_with_min_count_one_never_crash_nor_nan(test_name: str, n: int) -> None:
    # Spread, constant-equal and constant-different windows, for every numeric test.
    rng = _rng(14 + n)
    cases = [(rng.normal(size=n), rng.normal(size=n)), (np.ones(n), np.ones(n)), (np.ones(n), np.full(n, 2.0))]
    for ref, cur in cases:
        r, c = _profiles(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
        # anderson_darling's p-value is floored at 0.001, so it needs an uncorrected level above that
        level = {"correction": "none", "alpha": 0.01} if test_name == "anderson_darling" else {}
        results = compare(r, c, DriftConfig(numeric_test=test_name, min_count=1, **level))
        # A test undefined for so few values (Epps–Singleton below 5, ...) says so instead of failing.
        assert results[0].status in ("ok", "insufficient_data")
        _assert_no_nan(results)


@pytest.mark.parametrize("decision", ["p_value", "effect_size", "both", "calibrated"])
def test_tiny_windows_every_decision_no_nan(decision: str) -> None:
    r, c = _profiles(_mixed_frame(3, 20), _mixed_frame(2, 21))
    results = compare(r, c, DriftConfig(decision=decision, min_count=1, false_alarm_rate=0.1))
    assert {res.status for res in results} == {"ok"}
    assert all(isinstance(res.drifted, bool) for res in results)
    _assert_no_nan(results)


# ----------------------------------------------------------------------------- categories


def test_unseen_category_gets_its_own_bucket_golden() -> None:
    # Issue golden case: reference A=30, B=30, C=40; current A=20, B=20, C=40, D=20.
    ref = pd.DataFrame({"s": ["A"] * 30 + ["B"] * 30 + ["C"] * 40})
    cur = pd.DataFrame({"s": ["A"] * 20 + ["B"] * 20 + ["C"] * 40 + ["D"] * 20})
    res = _one(ref, cur)
    table = [[30, 30, 40, 0], [20, 20, 40, 20]]
    expected = _chi2(table)
    assert res.method == "chi2"
    assert res.statistic == pytest.approx(24.0, rel=1e-12) and res.statistic == pytest.approx(expected.statistic)
    assert res.p_value == pytest.approx(2.498e-5, rel=1e-3) and res.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert res.js_distance == pytest.approx(0.33841, abs=1e-5)
    assert res.psi == pytest.approx(psi(table[0], table[1]))
    assert res.p_value_adjusted == res.p_value  # a family of one: no missing values anywhere
    assert res.drifted is True


def test_vanished_category_counts_zero() -> None:
    ref = pd.DataFrame({"s": ["a"] * 50 + ["b"] * 30 + ["gone"] * 20})
    cur = pd.DataFrame({"s": ["a"] * 60 + ["b"] * 40})
    res = _one(ref, cur)
    table = [[50, 30, 20], [60, 40, 0]]
    assert res.method == "chi2"
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_chi2(table).pvalue, rel=1e-12)
    assert res.js_distance == pytest.approx(js_distance(table[0], table[1]))
    assert res.total_variation == pytest.approx(0.2)


def test_capped_reference_folds_new_labels_into_other_and_tests_buckets() -> None:
    ref = pd.DataFrame({"s": ["a"] * 100 + ["b"] * 60 + ["c"] * 30 + ["d"] * 10})
    cur = pd.DataFrame({"s": ["a"] * 80 + ["b"] * 60 + ["c"] * 20 + ["e"] * 40})
    r, c = _profiles(ref, cur, max_categories=3)
    assert r.columns["s"].counts == {"a": 100, "b": 60, OTHER: 40}
    assert c.columns["s"].counts == {"a": 80, "b": 60, OTHER: 60}
    (res,) = compare(r, c)
    # The test reads the hash buckets, where a..e fall in five different buckets: the label table.
    assert len({int(np.flatnonzero(_bucket_counts(np.array([x])))[0]) for x in "abcde"}) == 5
    table = [[100, 60, 30, 10, 0], [80, 60, 20, 0, 40]]
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_chi2(table).pvalue, rel=1e-12)


def test_uncapped_reference_current_overflow_is_an_unseen_other_bucket() -> None:
    # The reference (a, b) fits the cap; the current has five labels, so past the cap its new
    # labels are counted together under "__other__"; the test reads the hash buckets (a..e
    # fall in five different ones).
    ref = pd.DataFrame({"s": ["a"] * 60 + ["b"] * 40})
    cur = pd.DataFrame({"s": ["a"] * 40 + ["b"] * 30 + ["c"] * 10 + ["d"] * 10 + ["e"] * 10})
    r, c = _profiles(ref, cur, max_categories=3)
    assert c.columns["s"].counts == {"a": 40, "b": 30, OTHER: 30}
    (res,) = compare(r, c)
    table = [[60, 40, 0, 0, 0], [40, 30, 10, 10, 10]]
    assert res.method == "chi2"
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.drifted is True


def test_mixed_strings_and_numbers_in_one_column() -> None:
    # category_label: 1, "1" and 1.0 -> "1"; 2.0, 2 and "2" -> "2"; True -> "true".
    ref = pd.DataFrame({"m": pd.Series(["a", 1, "1", 2.0] * 25, dtype=object)})
    cur = pd.DataFrame({"m": pd.Series(["a", "a", 1.0, "2", 2, True] * 20, dtype=object)})
    r, c = _profiles(ref, cur)
    assert r.columns["m"].counts == {"1": 50, "2": 25, "a": 25}
    assert c.columns["m"].counts == {"2": 40, "a": 40, "1": 20, "true": 20}
    (res,) = compare(r, c)
    table = [[50, 25, 25, 0], [20, 40, 40, 20]]
    assert (res.kind, res.method, res.n_reference, res.n_current) == ("categorical", "chi2", 100, 120)
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_chi2(table).pvalue, rel=1e-12)


# ----------------------------------------------------------------------------- booleans


def test_booleans_golden() -> None:
    # Issue golden case: 70% True vs 50% True, n = 100 each.
    ref = pd.DataFrame({"b": [True] * 70 + [False] * 30})
    cur = pd.DataFrame({"b": [True] * 50 + [False] * 50})
    r, c = _profiles(ref, cur)
    assert r.columns["b"].counts == {"true": 70, "false": 30}
    (res,) = compare(r, c)
    assert (res.kind, res.method) == ("categorical", "chi2")
    assert res.statistic == pytest.approx(8.3333, abs=1e-4) and res.statistic == pytest.approx(25 / 3, rel=1e-12)
    assert res.p_value == pytest.approx(0.0038924, rel=1e-4)
    assert res.psi == pytest.approx(0.16946, abs=1e-5)
    # p = 0.0039 is above the default family-wise level 0.001, below 0.01.
    assert res.drifted is False
    assert compare(r, c, DriftConfig(alpha=0.01))[0].drifted is True


def test_nullable_booleans_with_na_golden() -> None:
    ref = pd.DataFrame({"b": pd.array([True] * 70 + [False] * 30 + [pd.NA] * 20, dtype="boolean")})
    cur = pd.DataFrame({"b": pd.array([pd.NA] * 20 + [True] * 50 + [False] * 50, dtype="boolean")})
    r, c = _profiles(ref, cur)
    col = c.columns["b"]
    assert (col.counts, col.missing) == ({"false": 50, "true": 50}, 20)
    (res,) = compare(r, c)
    assert res.statistic == pytest.approx(25 / 3, rel=1e-12)
    assert res.p_value == pytest.approx(0.0038924, rel=1e-4)
    assert res.psi == pytest.approx(0.16946, abs=1e-5)
    assert (res.n_reference, res.n_current) == (100, 100)
    assert res.missing_share == res.reference_missing_share == pytest.approx(20 / 120)
    # Equal missing shares: z = 0, p = 1; it still joins the family, so Bonferroni uses m = 2.
    assert res.missing_p_value == 1.0 and res.missing_drifted is False
    assert res.p_value_adjusted == pytest.approx(2 * 0.003892417, rel=1e-6)


# ----------------------------------------------------------------------------- few distinct values


def test_integers_with_few_values_use_histogram_chi_square() -> None:
    rng = _rng(30)
    ref_values = rng.integers(0, 5, 1000)
    cur_values = rng.choice(5, 800, p=[0.3, 0.2, 0.2, 0.15, 0.15])
    ref, cur = pd.DataFrame({"k": ref_values}), pd.DataFrame({"k": cur_values})
    r, c = _profiles(ref, cur)
    (res,) = compare(r, c)
    # Each of the five values is an atom of the reference, so it has a bin of its own: the histogram
    # table is the table of value counts.
    table = [np.bincount(ref_values, minlength=5).tolist(), np.bincount(cur_values, minlength=5).tolist()]
    expected = _chi2(table)
    assert (res.kind, res.method) == ("numeric", "chi2")
    assert res.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    assert res.drifted is True
    assert res.psi == pytest.approx(psi(table[0], table[1]), rel=1e-12)
    assert res.wasserstein == pytest.approx(wasserstein_distance(ref_values, cur_values), rel=1e-12)
    # Fewer allowed distinct values than the column has: back to Kolmogorov–Smirnov.
    (ks,) = compare(r, c, DriftConfig(discrete_max_values=4))
    assert ks.method == "ks"
    assert ks.statistic == pytest.approx(float(ks_2samp(ref_values, cur_values).statistic), rel=1e-12)


# ----------------------------------------------------------------------------- float32


def test_float32_gives_the_float64_result() -> None:
    rng = _rng(31)
    frames32 = []
    for n, shift in ((1500, 0.0), (1200, 0.2)):
        frames32.append(pd.DataFrame({
            "x": rng.normal(shift, 1.0, n).astype(np.float32),
            "few": rng.integers(0, 4, n).astype(np.float32) / np.float32(10),
        }))
    frames32[1].loc[:9, "x"] = np.nan
    frames64 = [f.astype(np.float64) for f in frames32]
    ours32 = [res.to_dict() for res in compare(*_profiles(*frames32))]
    ours64 = [res.to_dict() for res in compare(*_profiles(*frames64))]
    assert ours32 == ours64
    x32 = frames32[1]["x"].to_numpy()
    expected = ks_2samp(frames32[0]["x"].to_numpy(np.float64), x32[np.isfinite(x32)].astype(np.float64))
    assert ours32[0]["statistic"] == pytest.approx(float(expected.statistic), rel=1e-12)


# ----------------------------------------------------------------------------- underflowing p-values


def test_ks_p_value_underflow_keeps_statistic_and_neg_log10_p() -> None:
    rng = _rng(32)
    ref_values, cur_values = rng.normal(0.0, 1.0, 20_000), rng.normal(1.0, 1.0, 20_000)
    res = _one(pd.DataFrame({"x": ref_values}), pd.DataFrame({"x": cur_values}))
    expected = ks_2samp(ref_values, cur_values)
    assert res.p_value == 0.0 == float(expected.pvalue)
    assert res.p_value_adjusted == 0.0 and res.drifted is True
    d = float(expected.statistic)
    assert res.statistic == pytest.approx(d, rel=1e-12) and 0.3 < d < 0.45
    # Kolmogorov's asymptotic tail 2 exp(-2 n_e D²), n_e = n m / (n + m) = 10,000.
    assert res.neg_log10_p == pytest.approx((2 * 10_000 * d * d - math.log(2.0)) / LN10, rel=1e-12)
    assert res.neg_log10_p > 1000


def test_chi_square_p_value_underflow_keeps_statistic_and_neg_log10_p() -> None:
    ref = pd.DataFrame({"s": ["a"] * 5000 + ["b"] * 5000})
    cur = pd.DataFrame({"s": ["a"] * 9000 + ["b"] * 1000})
    res = _one(ref, cur)
    expected = _chi2([[5000, 5000], [9000, 1000]])
    assert res.p_value == 0.0 and res.drifted is True
    assert res.statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    # One degree of freedom: P(X² > x) = 2 Φ(-sqrt(x)), whose log log_ndtr keeps in the far tail.
    log_p = math.log(2.0) + float(log_ndtr(-math.sqrt(res.statistic)))
    assert res.neg_log10_p == pytest.approx(-log_p / LN10, rel=1e-9)
    assert res.neg_log10_p > 800


# ----------------------------------------------------------------------------- very large windows


def test_very_large_windows_effect_size_decides() -> None:
    # A deterministic standard-normal grid (the n quantiles at (i + 0.5) / n) and the same grid shifted:
    # no sampling noise, so D = max_x Φ(x) - Φ(x - s) ≈ 0.3989 s and W1 = s exactly.
    n = 200_000
    grid = norm.ppf((np.arange(n) + 0.5) / n)
    ref = pd.DataFrame({"x": grid})
    r = build_profile(ref, sample_size=n)  # tests run on the sample: let it hold every value
    for shift, negligible in ((0.02, True), (0.5, False)):
        c = build_profile(pd.DataFrame({"x": grid + shift}), reference=r, sample_size=n)
        by_decision = {dec: compare(r, c, DriftConfig(decision=dec))[0] for dec in ("p_value", "effect_size", "both")}
        p_res = by_decision["p_value"]
        assert p_res.statistic == pytest.approx(float(ks_2samp(grid, grid + shift).statistic), rel=1e-12)
        assert p_res.p_value < 1e-4  # 0.02 sd: D ≈ 0.008, sqrt(n/2) D ≈ 2.5, p ≈ 1e-5
        for res in by_decision.values():
            assert res.effect_size_name == "wasserstein_normalised"
            assert res.wasserstein == pytest.approx(shift, rel=1e-9)
            assert res.effect_size == pytest.approx(shift / np.std(grid, ddof=1), rel=1e-9)
        assert p_res.drifted is True and p_res.threshold == 0.001
        assert by_decision["effect_size"].threshold == by_decision["both"].threshold == 0.1
        assert by_decision["effect_size"].drifted is (not negligible)
        assert by_decision["both"].drifted is (not negligible)


# ----------------------------------------------------------------------------- multiple testing


def test_bonferroni_default_keeps_false_alarms_rare_over_25_stationary_columns() -> None:
    n_columns, n_windows, n_rows = 25, 100, 500
    rng = _rng(40)
    names = [f"x{i}" for i in range(n_columns)]
    uncorrected = DriftConfig(correction="none", alpha=0.05)
    alarms = {"default": 0, "uncorrected": 0}
    flagged_columns = 0
    for _ in range(n_windows):
        # A fresh reference per window keeps the windows independent, so the counts are binomial
        # (with one fixed small reference, its own sampling error makes some columns alarm far
        # more often than others).
        r, c = _profiles(*(pd.DataFrame({col: rng.normal(size=n_rows) for col in names}) for _ in range(2)))
        for key, cfg in (("default", DriftConfig()), ("uncorrected", uncorrected)):
            results = compare(r, c, cfg)
            alarms[key] += bool(dataset_drift(results).drifted)  # default: any one drifted column
            if key == "uncorrected":
                flagged_columns += sum(bool(res.drifted) for res in results)
    # Uncorrected: per window P(some column has p < 0.05) = 1 - 0.95^25 = 0.723, so about 72 of
    # 100 windows (binomial sd 4.5) and about 0.05 * 25 * 100 = 125 column flags (sd 11).
    # Default (Bonferroni, family-wise 0.001 per window): expected count <= 0.1, P(>= 2 of 100) < 0.005.
    assert alarms["default"] <= 2
    assert alarms["uncorrected"] >= 55
    assert 90 <= flagged_columns <= 160


# ----------------------------------------------------------------------------- calibrated decision


def test_calibrated_decision_threshold_and_decisions() -> None:
    rng = _rng(50)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b", "c"], 3000, p=[0.5, 0.3, 0.2])})
    stationary = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2])})
    shifted = pd.DataFrame({"x": rng.normal(0.5, 1.0, 1000), "c": rng.choice(["a", "b", "c"], 1000, p=[0.3, 0.3, 0.4])})
    cfg = DriftConfig(decision="calibrated", false_alarm_rate=0.01)
    r = build_profile(ref)
    calm = compare(r, build_profile(stationary, reference=r), cfg)
    moved = compare(r, build_profile(shifted, reference=r), cfg)
    for before, after in zip(calm, moved):
        # The threshold depends on the reference and the window size only.
        assert before.threshold == after.threshold and 0 < before.threshold < 1
        assert before.drifted is False and before.js_distance <= before.threshold
        assert after.drifted is True and after.js_distance > after.threshold
    # The rate is shared by the two tested columns: the 1 - 0.01/2 quantile of the bootstrap
    # Jensen–Shannon distances at the window's size.
    rate = 0.01 / 2
    null = bootstrap_histogram_statistics(r.columns["x"].hist, 1000, "js_distance", n_boot=min_null_size(rate), seed=0,
                                          resample_reference=True)
    assert calm[0].threshold == threshold_from_null(null, rate, rule="quantile").threshold
    _assert_no_nan(calm + moved)


# ----------------------------------------------------------------------------- Evidently mode


def _evidently_frames(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = _rng(seed)

    def frame(n: int, drift: bool) -> pd.DataFrame:
        x_nan = rng.normal(0.3 if drift else 0.0, 1.0, n)
        x_nan[rng.random(n) < 0.1] = np.nan
        x_nan[:2] = [np.inf, -np.inf]
        return pd.DataFrame({
            "x": rng.normal(0.4 if drift else 0.0, 1.0, n),
            "x_stable": rng.normal(size=n),
            "x_nan": x_nan,
            "few": rng.choice([0.0, 1.0, 2.0, 3.0], n, p=[0.1, 0.2, 0.3, 0.4] if drift else [0.25] * 4),
            "binary": (rng.random(n) < (0.5 if drift else 0.3)).astype(np.float64),
            "const": np.full(n, 7.0),
            "flag": rng.random(n) < (0.6 if drift else 0.5),
            "s": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1] if drift else [0.25] * 4),
            "s2": rng.choice(["yes", "no"], n),
        })

    return frame(n_ref, False), frame(n_cur, True)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(600, 400), (1500, 700)])
def test_evidently_mode_matches_evidently_rule_column_by_column(n_ref: int, n_cur: int) -> None:
    ref, cur = _evidently_frames(n_ref, n_cur, seed=n_ref)
    r, c = _profiles(ref, cur)
    results = compare(r, c, DriftConfig(mode="evidently", min_count=1))
    seen = set()
    for res in results:
        ev = evidently_column_drift(ref[res.column], cur[res.column], "num" if res.kind == "numeric" else "cat")
        assert res.method == f"evidently:{ev.stattest}", res.column
        assert res.statistic == pytest.approx(ev.statistic, rel=1e-12, abs=1e-15), res.column
        assert (res.drifted, res.threshold) == (ev.drifted, ev.threshold), res.column
        seen.add(ev.stattest)
    expected_tests = {"ks", "chisquare", "z"} if n_ref <= 1000 else {"wasserstein", "jensenshannon"}
    assert seen == expected_tests
    _assert_no_nan(results)


def test_evidently_mode_matches_evidently_itself_on_a_small_frame() -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    pytest.importorskip("evidently")
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = _evidently_frames(300, 200, seed=60)
    ref, cur = ref[["x", "few", "binary", "flag", "s"]], cur[["x", "few", "binary", "flag", "s"]]
    r, c = _profiles(ref, cur)
    ours = {res.column: res for res in compare(r, c, DriftConfig(mode="evidently", min_count=1))}
    snapshot = Report([DataDriftPreset()]).run(cur, ref).dict()
    theirs = {m["config"]["column"]: float(m["value"]) for m in snapshot["metrics"]
              if m["config"]["type"].endswith("ValueDrift")}
    assert set(theirs) == set(ours)
    for column, value in theirs.items():
        assert ours[column].statistic == pytest.approx(value, rel=1e-9, abs=1e-12), column


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "legacy"),
        ("alpha", 0.0),
        ("alpha", 1.0),
        ("alpha", float("nan")),
        ("correction", "sidak"),
        ("numeric_test", "t"),
        ("categorical_test", "ks"),
        ("column_tests", {"x": "nope"}),
        ("discrete_max_values", 0),
        ("decision", "vote"),
        ("numeric_effect_size", "kl"),
        ("categorical_effect_size", "wasserstein_normalised"),
        ("numeric_effect_threshold", 0.0),
        ("categorical_effect_threshold", -1.0),
        ("false_alarm_rate", 1.0),
        ("calibration_samples", -1),
        ("min_count", 0),
        ("psi_eps", 0.0),
        ("std_floor", 0.0),
    ],
)
def test_drift_config_validation_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        DriftConfig(**{field: value})


def test_numeric_test_on_categorical_column_names_the_column() -> None:
    r, c = _profiles(pd.DataFrame({"colour": ["red", "blue"] * 20}), pd.DataFrame({"colour": ["red"] * 40}))
    with pytest.raises(ValueError, match="'colour'"):
        compare(r, c, DriftConfig(column_tests={"colour": "ks"}))
    with pytest.raises(ValueError, match="'colour'"):
        compare_column(r.columns["colour"], c.columns["colour"], DriftConfig(column_tests={"colour": "ks"}),
                       column="colour")


def test_dataset_drift_validation_names_the_argument() -> None:
    with pytest.raises(ValueError, match="share_threshold"):
        dataset_drift([], share_threshold=1.5)
    with pytest.raises(ValueError, match="min_drifted_columns"):
        dataset_drift([], min_drifted_columns=0)


def test_evidently_mode_does_not_add_a_missing_share_signal() -> None:
    # Evidently drops missing values and never tests their share, so its mode must not either:
    # otherwise dataset_drift would flag a window Evidently calls stable.
    rng = _rng(61)
    ref = pd.DataFrame({"x": rng.normal(size=600), "y": rng.normal(size=600)})
    cur = pd.DataFrame({"x": rng.normal(size=400), "y": rng.normal(size=400)})
    cur.loc[:199, "x"] = np.nan  # missing share 0% -> 50%
    r, c = _profiles(ref, cur)
    results = compare(r, c, DriftConfig(mode="evidently", min_count=1))
    assert [(res.missing_share, res.missing_p_value, res.missing_drifted) for res in results] == [
        (0.5, None, None), (0.0, None, None)]
    theirs, share, drifted = evidently_dataset_drift(ref, cur)
    assert [res.drifted for res in results] == [t.drifted for t in theirs]
    d = dataset_drift(results, share_threshold=0.5)  # Evidently's dataset rule
    assert (d.share, d.drifted) == (share, drifted) == (0.0, False)
    # The recommended mode sees it.
    assert compare(r, c)[0].missing_drifted is True


def test_evidently_mode_types_columns_by_profile_kind_not_dtype() -> None:
    # Documented limitation: an int column with 8 distinct values is categorical to Evidently
    # (chi-square), but a profile keeps no dtype, so the mode tests it as numerical (KS).
    rng = _rng(62)
    ref, cur = pd.Series(rng.integers(0, 8, 600)), pd.Series(rng.integers(0, 8, 400))
    (res,) = compare(*_profiles(pd.DataFrame({"i": ref}), pd.DataFrame({"i": cur})),
                     DriftConfig(mode="evidently", min_count=1))
    assert res.method == "evidently:ks"
    assert res.statistic == pytest.approx(float(ks_2samp(ref, cur).pvalue), rel=1e-12)
    assert evidently_column_drift(ref, cur).stattest == "chisquare"


def test_small_2x2_table_uses_fisher_exact_golden() -> None:
    # Issue golden case: reference [2, 18] vs current [0, 20]; expected count 1 < 5, so Fisher: p = 0.48718.
    ref = pd.DataFrame({"s": ["bad"] * 2 + ["good"] * 18})
    cur = pd.DataFrame({"s": ["good"] * 20})
    res = _one(ref, cur, DriftConfig(min_count=20))
    assert res.method == "fisher_exact" and res.low_confidence is False
    assert res.p_value == pytest.approx(0.48718, abs=1e-5)
    # Sample odds ratio of the table [[18, 2], [20, 0]] (categories in reference order, most frequent first).
    assert res.statistic == 0.0
    assert res.drifted is False


def test_rare_categories_merged_and_marked_low_confidence() -> None:
    ref = pd.DataFrame({"s": ["a"] * 50 + ["b"] * 45 + ["c"] * 3 + ["d"] * 2})
    cur = pd.DataFrame({"s": ["a"] * 40 + ["b"] * 55 + ["c"] * 2 + ["d"] * 3})
    res = _one(ref, cur)
    # c and d (pooled 5 each, expected 2.5) are merged into one column of 10: a 2x3 table.
    merged = [[50, 45, 5], [40, 55, 5]]
    assert (res.method, res.low_confidence) == ("chi2", True)
    assert res.statistic == pytest.approx(_chi2(merged).statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_chi2(merged).pvalue, rel=1e-12)


def test_values_near_the_float64_limit_give_finite_scores():
    values = [1.7e308, -1.7e308, 1e308] * 20
    ref = build_profile(pd.DataFrame({"x": values}))
    same = compare(ref, build_profile(pd.DataFrame({"x": values}), reference=ref))[0]
    assert (same.statistic, same.p_value, same.wasserstein, same.wasserstein_normalised) == (0.0, 1.0, 0.0, 0.0)
    moved = compare(ref, build_profile(pd.DataFrame({"x": [1.7e308] * 60}), reference=ref))[0]
    # the mass of -1.7e308 and 1e308 (2/3 of it) moves to 1.7e308: W1 = (3.4e308 + 0.7e308) / 3
    assert moved.wasserstein == pytest.approx(4.1 / 3 * 1e308, rel=1e-12)
    assert moved.wasserstein_normalised == pytest.approx(moved.wasserstein / ref.columns["x"].std, rel=1e-12)
    assert moved.drifted is True


def test_anderson_darling_with_an_unreachable_level_is_refused():
    with pytest.raises(ValueError, match="anderson_darling"):
        DriftConfig(numeric_test="anderson_darling")  # Bonferroni at 0.001: p >= 0.001 could never pass
    with pytest.raises(ValueError, match="anderson_darling"):
        DriftConfig(column_tests={"x": "anderson_darling"}, correction="none", alpha=0.001)
    rng = _rng(3)
    r, c = _profiles(pd.DataFrame({"x": rng.normal(size=2000)}), pd.DataFrame({"x": rng.normal(1.0, 1, 2000)}))
    res = compare(r, c, DriftConfig(numeric_test="anderson_darling", correction="none", alpha=0.01))[0]
    assert (res.method, res.p_value, res.drifted) == ("anderson_darling", 0.001, True)
    assert DriftConfig(numeric_test="anderson_darling", decision="effect_size").numeric_test == "anderson_darling"


def test_wasserstein_keeps_the_scale_of_columns_in_tiny_units():
    rng = _rng(4)
    x = rng.normal(size=3000)
    r, c = _profiles(pd.DataFrame({"x": x * 1e-300}), pd.DataFrame({"x": (x[:1000] + 0.5) * 1e-300}))
    r1, c1 = _profiles(pd.DataFrame({"x": x}), pd.DataFrame({"x": x[:1000] + 0.5}))
    tiny, unit = compare(r, c)[0], compare(r1, c1)[0]
    assert tiny.wasserstein_normalised == pytest.approx(unit.wasserstein_normalised, rel=1e-9)
    assert 0.45 < unit.wasserstein_normalised < 0.55


# ----------------------------------------------------------------------------- high-cardinality categories


def _splitmix64(x: int) -> int:
    """The (x + 1)-th output of SplitMix64 seeded with 0, in Python integers."""
    mask = 2**64 - 1
    z = ((x + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _bucket_counts(labels: np.ndarray, n_buckets: int = 128) -> np.ndarray:
    """Rows per hash bucket, computed independently: SplitMix64(CRC-32(UTF-8 label)) mod n_buckets."""
    out = np.zeros(n_buckets, dtype=np.int64)
    for label in labels:
        out[_splitmix64(zlib.crc32(str(label).encode("utf-8"))) % n_buckets] += 1
    return out


def _labels(rng: np.random.Generator, n: int, p: np.ndarray | None = None, k: int = 1000) -> pd.DataFrame:
    return pd.DataFrame({"z": rng.choice(k, n, p=p).astype(str)})


def test_capped_reference_stable_windows_rarely_flagged() -> None:
    # 1,000 labels, cap 200: the reference keeps its 199 most frequent labels, selected on its own
    # noise. A label-level test flagged nearly every stable window; the hash-bucket test must flag
    # about alpha = 0.001 of them (0.2 expected in 200 trials).
    flagged = 0
    for trial in range(200):
        rng = _rng(10_000 + trial)
        r, c = _profiles(_labels(rng, 5000), _labels(rng, 5000))
        assert OTHER in r.columns["z"].counts
        (res,) = compare(r, c)
        flagged += bool(res.drifted)
    assert flagged <= 3


def test_capped_reference_tests_hash_buckets_golden() -> None:
    rng = _rng(70)
    ref, cur = _labels(rng, 5000), _labels(rng, 4000)
    (res,) = compare(*_profiles(ref, cur))
    table = [_bucket_counts(ref["z"].to_numpy()), _bucket_counts(cur["z"].to_numpy())]
    keep = (table[0] + table[1]) > 0
    table = [table[0][keep], table[1][keep]]
    assert (res.method, res.low_confidence) == ("chi2", False)
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.p_value == pytest.approx(_chi2(table).pvalue, rel=1e-12)
    assert res.js_distance == pytest.approx(js_distance(table[0], table[1]), rel=1e-12)
    assert res.drifted is False


def test_capped_reference_still_sees_real_shifts() -> None:
    rng = _rng(71)
    # One label holds 2% of the rows; in the current window its share is 5 times that.
    p_ref = np.full(1000, 0.98 / 999)
    p_ref[0] = 0.02
    p_cur = p_ref * (0.9 / 0.98)
    p_cur[0] = 0.10
    r, c = _profiles(_labels(rng, 5000, p_ref), _labels(rng, 5000, p_cur))
    (res,) = compare(r, c)
    assert res.drifted is True and res.p_value < 1e-12
    # A block of 200 labels (20% of the rows) stops occurring. (The bucket chi-square sees it as
    # the uneven share of removed labels per bucket: noncentrality about n/2 * 128 / 4000, so 80
    # on 127 degrees of freedom at 5,000 rows, about 90% power; 320 at 20,000 rows.)
    r, c = _profiles(_labels(rng, 20_000), _labels(rng, 20_000, k=800))
    (res,) = compare(r, c)
    assert res.drifted is True and res.p_value < 1e-12
    # Half the labels removed. Decimal IDs are structured: CRC-32 alone, which is linear, gives
    # nearly the same share of them to each of its low-bit buckets, and lost most of this.
    r, c = _profiles(_labels(rng, 5000), _labels(rng, 5000, k=500))
    (res,) = compare(r, c)
    assert res.drifted is True and res.p_value < 1e-12


def test_uncapped_current_past_the_cap_tests_hash_buckets() -> None:
    # The reference fits the cap; the current window overflows it, so the labels it keeps are
    # selected on its own counts: buckets again.
    rng = _rng(72)
    ref, cur = _labels(rng, 5000, k=150), _labels(rng, 5000, k=300)
    r, c = _profiles(ref, cur)
    assert OTHER not in r.columns["z"].counts and OTHER in c.columns["z"].counts
    (res,) = compare(r, c)
    table = np.array([_bucket_counts(ref["z"].to_numpy()), _bucket_counts(cur["z"].to_numpy())])
    table = table[:, table.sum(axis=0) > 0]
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    assert res.drifted is True


# ----------------------------------------------------------------------------- few distinct values: value bins


def test_moves_within_a_quantile_bin_are_seen_for_discrete_columns() -> None:
    rng = _rng(73)
    ref_values = rng.integers(0, 20, 5000)
    r = build_profile(pd.DataFrame({"d": ref_values}))
    # The issue's reproducer: each value moves to the top of its former quantile bin.
    quantile_edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, 11)))
    x = rng.integers(0, 20, 5000)
    idx = np.minimum(np.searchsorted(quantile_edges, x, "right"), quantile_edges.size - 1)
    cur_values = np.minimum(np.ceil(quantile_edges[idx]) - 1, 19).astype(int)
    cur_values = np.maximum(cur_values, x)
    assert not np.array_equal(cur_values, x)
    c = build_profile(pd.DataFrame({"d": cur_values}), reference=r)
    (res,) = compare(r, c)
    table = [np.bincount(ref_values, minlength=20), np.bincount(cur_values, minlength=20)]
    keep = (table[0] + table[1]) > 0
    expected_chi2 = _chi2([table[0][keep], table[1][keep]])
    assert (res.kind, res.method) == ("numeric", "chi2")
    assert res.statistic == pytest.approx(expected_chi2.statistic, rel=1e-12)
    assert res.drifted is True and res.p_value < 1e-20
    col = r.columns["d"]
    # Every value has a bin [v, nextafter(v)), with the gaps between values as bins too.
    values = np.arange(20.0)
    expected = np.unique(np.concatenate([[-np.inf, np.inf], values, np.nextafter(values, np.inf)]))
    assert np.array_equal(col.edges, expected)
    assert col.hist[1::2].tolist() == np.bincount(ref_values, minlength=20).tolist()
    assert col.hist[0::2].sum() == 0


def test_discrete_value_bins_count_unseen_values_in_gaps() -> None:
    r = build_profile(pd.DataFrame({"d": [1, 3, 3, 7] * 10}))
    col = r.columns["d"]
    n1, n3, n7 = (np.nextafter(v, np.inf) for v in (1.0, 3.0, 7.0))
    assert col.edges.tolist() == [-np.inf, 1.0, n1, 3.0, n3, 7.0, n7, np.inf]
    assert col.hist.tolist() == [0, 10, 0, 20, 0, 10, 0]
    c = build_profile(pd.DataFrame({"d": [0, 1, 2, 3, 5, 7, 8, 2.5]}), reference=r)
    assert c.columns["d"].hist.tolist() == [1, 1, 2, 1, 1, 1, 1]
    # More distinct values than discrete_max_values: quantile bins as before.
    q = build_profile(pd.DataFrame({"d": [1, 3, 3, 7] * 10}), discrete_max_values=2, n_bins=2).columns["d"]
    assert q.edges.tolist() == [-np.inf, 3.0, np.inf]
    with pytest.raises(ValueError, match="discrete_max_values"):
        build_profile(pd.DataFrame({"d": [1]}), discrete_max_values=-1)


# ----------------------------------------------------------------------------- boolean encodings


@pytest.mark.parametrize(
    "encoded",
    [
        pd.Series(["True"] * 50 + ["False"] * 50),
        pd.Series([1] * 50 + [0] * 50),
        pd.Series([1.0] * 50 + [0.0] * 50),
        pd.Series(["true"] * 20 + ["TRUE"] * 20 + [True] * 5 + ["1"] * 5 + ["false", "FALSE", "0", 0, False] * 10,
                  dtype=object),
    ],
    ids=["strings", "ints", "floats", "mixed"],
)
def test_boolean_reference_reads_other_encodings_of_true_and_false(encoded: pd.Series) -> None:
    ref = pd.DataFrame({"b": [True] * 70 + [False] * 30})
    r, c = _profiles(ref, pd.DataFrame({"b": encoded}))
    assert c.columns["b"].counts == {"false": 50, "true": 50}
    (res,) = compare(r, c)
    # The golden case of test_booleans_golden: 70% vs 50% true, n = 100 each.
    assert res.statistic == pytest.approx(25 / 3, rel=1e-12)
    assert res.js_distance < 0.2


def test_boolean_mapping_only_for_a_true_false_reference() -> None:
    r, c = _profiles(pd.DataFrame({"s": ["a", "b"] * 50}), pd.DataFrame({"s": ["a", "1", "True"] * 20}))
    assert c.columns["s"].counts == {"1": 20, "True": 20, "a": 20}
    # Other labels next to true/false stay what they are: a new category.
    r, c = _profiles(pd.DataFrame({"b": [True, False] * 50}), pd.DataFrame({"b": ["yes", "True", 0] * 20}))
    assert c.columns["b"].counts == {"false": 20, "true": 20, "yes": 20}


# ----------------------------------------------------------------------------- infinities in categorical columns


def test_infinite_floats_in_categorical_columns_count_as_missing() -> None:
    values = pd.Series(["a", "b"] * 40 + [np.inf] * 5 + [-np.inf] * 5 + [None] * 5 + ["inf"] * 10, dtype=object)
    ref = pd.DataFrame({"c": pd.Series(["a", "b"] * 45 + ["inf"] * 10, dtype=object)})
    r, c = _profiles(ref, pd.DataFrame({"c": values}))
    col = c.columns["c"]
    # The string "inf" is a label; the floats +inf and -inf are not values.
    assert (col.counts, col.count, col.missing) == ({"a": 40, "b": 40, "inf": 10}, 90, 15)
    (res,) = compare(r, c)
    assert res.missing_share == pytest.approx(15 / 105)
    table = [[45, 45, 10], [40, 40, 10]]
    assert res.statistic == pytest.approx(_chi2(table).statistic, rel=1e-12)
    floats = build_profile(pd.DataFrame({"f": [1.0, np.inf, -np.inf, np.nan, 2.5]}), kinds={"f": "categorical"})
    assert (floats.columns["f"].counts, floats.columns["f"].missing) == ({"1": 1, "2.5": 1}, 3)
    cats = pd.Series(pd.Categorical([1.0, np.inf, 1.0, None]))
    prof = build_profile(pd.DataFrame({"k": cats})).columns["k"]
    assert (prof.counts, prof.missing) == ({"1": 2}, 2)


def test_one_missing_value_in_a_small_window_is_not_drift():
    # expected count 0.02 in the current window's missing cell: Fisher's exact test, not the normal approximation
    rng = _rng(21)
    ref = pd.DataFrame({"x": rng.normal(size=50_000)})
    cur = pd.DataFrame({"x": rng.normal(size=1_000)})
    cur.loc[0, "x"] = np.nan
    r, c = _profiles(ref, cur)
    res = compare(r, c)[0]
    assert res.missing_p_value == pytest.approx(1_000 / 51_000, rel=1e-9) and res.missing_drifted is False
    cur.loc[:299, "x"] = np.nan  # 30 % missing is drift
    res = compare(r, build_profile(cur, reference=r))[0]
    assert res.missing_drifted is True and res.drifted is False
