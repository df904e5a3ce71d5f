"""Tests for the detectors package: statistics against scipy and hand calculations, profiles, drift."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, chisquare, ks_2samp, wasserstein_distance

from detectors import (
    OTHER,
    CategoricalProfile,
    ColumnDrift,
    DriftConfig,
    NumericProfile,
    Profile,
    TestResult,
    build_profile,
    category_label,
    chi2_homogeneity,
    compare,
    compare_column,
    dataset_drift,
    infer_kind,
    js_distance,
    ks_test,
    psi,
    wasserstein_normalised,
)
from detectors.sketch import label_buckets


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _profiles(ref: pd.DataFrame, cur: pd.DataFrame, **kw) -> tuple[Profile, Profile]:
    r = build_profile(ref, **kw)
    return r, build_profile(cur, reference=r, **kw)


# ----------------------------------------------------------------------------- two-sample tests


def test_ks_equals_scipy_ks_2samp() -> None:
    a = _rng(1).normal(size=300)
    b = _rng(2).normal(0.2, 1.3, size=200)
    res = ks_test(a, b)
    ref = ks_2samp(a, b, alternative="two-sided")
    assert res == TestResult(
        statistic=float(ref.statistic),
        p_value=float(ref.pvalue),
        method="ks",
        neg_log10_p=-math.log10(float(ref.pvalue)),
    )
    assert 0 < res.p_value < 1


def test_ks_rejects_nonfinite_and_empty() -> None:
    with pytest.raises(ValueError, match="finite"):
        ks_test([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        ks_test([], [1.0])


def test_chi2_equals_scipy_chi2_contingency_on_hand_built_table() -> None:
    ref = {"a": 120, "b": 60, "c": 20}
    cur = {"a": 40, "b": 45, "c": 15}
    table = np.array([[120, 60, 20], [40, 45, 15]])
    expected = chi2_contingency(table, correction=False)
    res = chi2_homogeneity(ref, cur)
    assert res.method == "chi2"
    assert res.statistic == pytest.approx(float(expected.statistic), rel=1e-12)
    assert res.p_value == pytest.approx(float(expected.pvalue), rel=1e-12)
    assert res.p_value < 0.05


def test_chi2_2x2_uses_no_yates_correction() -> None:
    ref, cur = {"x": 30, "y": 10}, {"x": 20, "y": 20}
    table = np.array([[30, 10], [20, 20]])
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(float(chi2_contingency(table, correction=False).statistic))
    assert res.statistic != pytest.approx(float(chi2_contingency(table, correction=True).statistic))


def test_chi2_is_homogeneity_not_goodness_of_fit() -> None:
    # Same proportions, reference 10x larger: homogeneity sees no difference,
    # while a goodness-of-fit test against the raw reference counts would.
    ref = {"a": 1000, "b": 2000, "c": 7000}
    cur = {"a": 100, "b": 200, "c": 700}
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(0.0, abs=1e-9)
    assert res.p_value == pytest.approx(1.0)

    # Small reference: GOF treats its proportions as exact, homogeneity pools.
    # Pooled: a 20/40, b 20/40, expected 10 per cell; X² = 4 * (12-10)²/10 = 1.6.
    ref2, cur2 = {"a": 12, "b": 8}, {"a": 8, "b": 12}
    res2 = chi2_homogeneity(ref2, cur2)
    assert res2.statistic == pytest.approx(1.6)
    gof = chisquare([8, 12], f_exp=[12, 8])  # (8-12)²/12 + (12-8)²/8 = 3.33
    assert float(gof.statistic) == pytest.approx(10 / 3)
    assert res2.statistic != pytest.approx(float(gof.statistic))


def test_chi2_unseen_category_gets_its_own_column() -> None:
    ref = {"a": 50, "b": 50}
    cur = {"a": 40, "b": 40, "new": 20}
    expected = chi2_contingency(np.array([[50, 50, 0], [40, 40, 20]]), correction=False)
    res = chi2_homogeneity(ref, cur)
    assert expected.dof == 2
    assert res.statistic == pytest.approx(float(expected.statistic))
    assert res.p_value == pytest.approx(float(expected.pvalue))


def test_chi2_disappearing_category_counts_zero_and_all_zero_columns_dropped() -> None:
    ref = {"a": 50, "b": 30, "gone": 20, "never": 0}
    cur = {"a": 60, "b": 40}
    expected = chi2_contingency(np.array([[50, 30, 20], [60, 40, 0]]), correction=False)
    res = chi2_homogeneity(ref, cur)
    assert res.statistic == pytest.approx(float(expected.statistic))
    assert res.p_value == pytest.approx(float(expected.pvalue))
    assert res.p_value < 1e-4


def test_chi2_single_category_is_no_evidence() -> None:
    assert chi2_homogeneity({"a": 10}, {"a": 500}) == TestResult(0.0, 1.0, "chi2", neg_log10_p=0.0)
    assert chi2_homogeneity({"a": 10, "b": 0}, {"a": 3}) == TestResult(0.0, 1.0, "chi2", neg_log10_p=0.0)


def test_chi2_rejects_negative_counts_and_empty_window() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        chi2_homogeneity({"a": -1, "b": 3}, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="at least one"):
        chi2_homogeneity({"a": 5, "b": 3}, {})


# ----------------------------------------------------------------------------- distances


def test_psi_hand_computed() -> None:
    # p = (.5, .3, .2), q = (.4, .4, .2):
    # (.4-.5) ln(.4/.5) + (.4-.3) ln(.4/.3) + 0 = .1*0.2231436 + .1*0.2876821 = 0.05108256
    assert psi([50, 30, 20], [40, 40, 20]) == pytest.approx(0.0510825624, rel=1e-9)


def test_psi_smooths_empty_bins_with_eps() -> None:
    # p = (1, 0 -> 1e-4), q = (.5, .5):
    # (.5-1) ln(.5/1) + (.5-1e-4) ln(.5/1e-4) = 0.3465736 + 0.4999*8.5171932 = 0.3465736 + 4.2577449
    assert psi([10, 0], [5, 5]) == pytest.approx(4.6043184667, rel=1e-9)
    # A larger eps gives a smaller penalty for the same empty bin.
    assert psi([10, 0], [5, 5], eps=1e-2) < psi([10, 0], [5, 5])
    # Bins empty on both sides contribute nothing.
    assert psi([50, 30, 20, 0], [40, 40, 20, 0]) == pytest.approx(psi([50, 30, 20], [40, 40, 20]))


def test_psi_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        psi([0, 0], [1, 2])
    with pytest.raises(ValueError):
        psi([1, 2], [1, 2], eps=0)


def test_js_distance_equals_scipy_base_2() -> None:
    p = np.array([10, 20, 30, 0, 40])
    q = np.array([15, 5, 30, 25, 25])
    expected = float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
    assert js_distance(p, q) == pytest.approx(expected, rel=1e-12)
    # distance, not divergence: square it and recompute the divergence by hand
    pp, qq = p / p.sum(), q / q.sum()
    m = (pp + qq) / 2
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b) if x > 0)  # noqa: E731
    assert js_distance(p, q) ** 2 == pytest.approx((kl(pp, m) + kl(qq, m)) / 2, rel=1e-12)


def test_js_distance_range_endpoints() -> None:
    assert js_distance([1, 0, 0], [0, 3, 4]) == pytest.approx(1.0, abs=1e-12)
    assert js_distance([2, 4, 6], [1, 2, 3]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=12).filter(
        lambda pairs: sum(a for a, _ in pairs) > 0 and sum(b for _, b in pairs) > 0
    )
)
def test_distance_properties(pairs: list[tuple[int, int]]) -> None:
    p = [a for a, _ in pairs]
    q = [b for _, b in pairs]
    d = js_distance(p, q)
    assert 0.0 <= d <= 1.0 and not math.isnan(d)
    assert d == pytest.approx(js_distance(q, p), abs=1e-12)
    s = psi(p, q)
    assert s >= 0.0 and math.isfinite(s)
    assert s == pytest.approx(psi(q, p), rel=1e-9, abs=1e-12)


def test_wasserstein_normalised_equals_scipy_over_std() -> None:
    a = _rng(3).normal(10, 2, size=400)
    b = _rng(4).normal(11, 2, size=300)
    std = float(np.std(a, ddof=1))
    expected = float(wasserstein_distance(a, b)) / std
    assert wasserstein_normalised(a, b, std) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.5, abs=0.2)  # a 1-unit shift is ~0.5 sd


def test_wasserstein_constant_reference_uses_floor() -> None:
    const = np.full(50, 3.0)
    assert wasserstein_normalised(const, const, 0.0) == 0.0
    moved = wasserstein_normalised(const, const + 1.0, 0.0)
    assert math.isfinite(moved) and moved == pytest.approx(1.0 / 1e-12)
    assert wasserstein_normalised(const, const + 1.0, None, std_floor=0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        wasserstein_normalised(const, const, float("nan"))


# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1, 2, 3]), "numeric"),
        (pd.Series([1.5, None]), "numeric"),
        (pd.Series([1, None], dtype="Int64"), "numeric"),
        (pd.Series([1.5, None], dtype="Float64"), "numeric"),
        (pd.Series([1.5], dtype="float32"), "numeric"),
        (pd.Series([1], dtype="uint8"), "numeric"),
        (pd.Series([True, False]), "categorical"),
        (pd.Series([True, None], dtype="boolean"), "categorical"),
        (pd.Series(["a", "b"]), "categorical"),
        (pd.Series(["a", None], dtype="string"), "categorical"),
        (pd.Series(["a", 1], dtype=object), "categorical"),
        (pd.Series([1, 2], dtype="category"), "categorical"),
    ],
)
def test_infer_kind(series: pd.Series, kind: str) -> None:
    assert infer_kind(series) == kind


def test_infer_kind_rejects_datetimes() -> None:
    with pytest.raises(TypeError, match="cannot infer"):
        infer_kind(pd.Series(pd.to_datetime(["2024-01-01"])))


def test_category_labels() -> None:
    assert [category_label(v) for v in (True, np.bool_(False), 3, 3.0, np.int8(3), np.float32(2.5), "x")] == [
        "true",
        "false",
        "3",
        "3",
        "3",
        "2.5",
        "x",
    ]


def test_numeric_profile_basics_and_missing_counts() -> None:
    s = pd.Series([1.0, 2.0, np.nan, None, np.inf, -np.inf, 3.0, 4.0])
    p = build_profile(pd.DataFrame({"x": s}), n_bins=2).columns["x"]
    assert isinstance(p, NumericProfile)
    assert (p.count, p.missing, p.nan, p.posinf, p.neginf, p.nonfinite) == (4, 2, 2, 1, 1, 2)
    assert p.mean == 2.5 and p.min == 1.0 and p.max == 4.0
    assert p.m2 == 5.0  # (1.5**2 + 0.5**2) * 2
    assert p.std == pytest.approx(float(np.std([1, 2, 3, 4], ddof=1)))  # sample std
    assert np.array_equal(np.sort(p.sample), [1.0, 2.0, 3.0, 4.0])  # all values fit, in key order
    assert p.sample_keys.dtype == np.uint64 and np.all(np.diff(p.sample_keys.astype(float)) > 0)
    assert p.edges.dtype == np.float64 and p.hist.dtype == np.int64
    assert p.edges[0] == -np.inf and p.edges[-1] == np.inf
    assert p.hist.sum() == 4


def test_nullable_int_column() -> None:
    s = pd.Series([1, None, 3, 4], dtype="Int64")
    p = build_profile(pd.DataFrame({"x": s})).columns["x"]
    assert isinstance(p, NumericProfile)
    assert (p.count, p.missing, p.nan) == (3, 1, 0)
    assert np.array_equal(np.sort(p.sample), [1.0, 3.0, 4.0])


def test_float32_input() -> None:
    raw = np.array([0.1, 0.2, 0.3, 1e6], dtype=np.float32)
    p = build_profile(pd.DataFrame({"x": raw})).columns["x"]
    assert isinstance(p, NumericProfile)
    assert p.sample.dtype == np.float64
    assert np.array_equal(np.sort(p.sample), np.sort(raw.astype(np.float64)))
    assert p.max == float(np.float32(1e6))


def test_quantile_edges_on_continuous_data_give_n_bins() -> None:
    x = _rng(5).normal(size=1000)
    p = build_profile(pd.DataFrame({"x": x}), n_bins=10).columns["x"]
    assert len(p.edges) == 11
    assert np.allclose(p.edges[1:-1], np.quantile(x, np.linspace(0, 1, 11))[1:-1])
    assert np.all(p.hist == 100)


def test_quantile_edges_deduplicated_with_ties() -> None:
    x = np.concatenate([np.zeros(900), np.linspace(1, 10, 100)])
    p = build_profile(pd.DataFrame({"x": x}), n_bins=10).columns["x"]
    assert np.all(np.diff(p.edges) > 0)  # no zero-width bins
    assert len(p.edges) - 1 <= 21
    # the zeros get a bin of their own: [0, nextafter(0))
    zero_bin = int(np.searchsorted(p.edges, 0.0, side="right")) - 1
    assert p.edges[zero_bin] == 0.0 and p.edges[zero_bin + 1] == np.nextafter(0.0, 1.0)
    assert p.hist[zero_bin] == 900
    assert p.hist.sum() == 1000


def test_values_beyond_reference_range_land_in_outer_bins() -> None:
    ref = pd.DataFrame({"x": np.linspace(0.0, 1.0, 101)})
    cur = pd.DataFrame({"x": [-5.0, -1.0, 0.5, 7.0, 1e300]})
    r, c = _profiles(ref, cur, n_bins=4)
    rc, cc = r.columns["x"], c.columns["x"]
    assert isinstance(rc, NumericProfile) and isinstance(cc, NumericProfile)
    assert np.array_equal(cc.edges, rc.edges)  # binned on the reference's edges
    assert cc.hist.tolist() == [2, 0, 1, 2]
    assert cc.std is not None and math.isfinite(cc.std)  # 1e300 must not overflow the variance


def test_constant_column_edges() -> None:
    p = build_profile(pd.DataFrame({"x": np.full(50, 2.0)})).columns["x"]
    assert isinstance(p, NumericProfile)
    assert p.edges.tolist() == [-np.inf, 2.0, np.nextafter(2.0, np.inf), np.inf]
    assert p.hist.tolist() == [0, 50, 0]
    assert p.std == 0.0


def test_column_without_finite_values() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.inf, None]}, dtype="float64")
    p = build_profile(frame).columns["x"]
    assert isinstance(p, NumericProfile)
    assert (p.count, p.missing, p.nonfinite) == (0, 2, 1)
    assert (p.nan, p.posinf, p.neginf) == (2, 1, 0)
    assert p.mean is None and p.std is None and p.min is None and p.max is None and p.m2 == 0.0
    assert p.edges.tolist() == [-np.inf, np.inf] and p.hist.tolist() == [0]
    assert p.sample.size == 0


def test_sample_is_capped_and_deterministic() -> None:
    x = np.arange(1000, dtype=float)
    frame = pd.DataFrame({"x": x})
    a = build_profile(frame, sample_size=100, seed=7).columns["x"]
    b = build_profile(frame, sample_size=100, seed=7).columns["x"]
    c = build_profile(frame, sample_size=100, seed=8).columns["x"]
    assert isinstance(a, NumericProfile) and isinstance(c, NumericProfile)
    assert a.sample.size == 100 and len(set(a.sample.tolist())) == 100
    assert np.all(np.diff(a.sample_keys.astype(float)) > 0)  # kept in key order
    assert a == b
    assert not np.array_equal(a.sample, c.sample)
    assert a.count == 1000 and a.hist.sum() == 1000  # histogram uses every value


def test_booleans_are_categorical_true_false() -> None:
    frame = pd.DataFrame(
        {
            "b": [True, False, True, True],
            "nb": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    prof = build_profile(frame)
    b, nb = prof.columns["b"], prof.columns["nb"]
    assert b == CategoricalProfile(count=4, missing=0, counts={"true": 3, "false": 1})
    assert nb == CategoricalProfile(count=3, missing=1, counts={"true": 2, "false": 1})


def test_mixed_strings_and_ints_in_one_column() -> None:
    s = pd.Series(["a", 1, 2.0, "b", None, True, 1, "a", np.nan], dtype=object)
    p = build_profile(pd.DataFrame({"m": s})).columns["m"]
    assert isinstance(p, CategoricalProfile)
    # True stays "true" even though True == 1 in Python
    assert p.counts == {"1": 2, "a": 2, "2": 1, "b": 1, "true": 1}
    assert (p.count, p.missing) == (7, 2)


def test_integer_class_labels_declared_categorical() -> None:
    frame = pd.DataFrame({"y": [0, 1, 1, 2], "f": [3.0, 3.0, 3.5, None]})
    prof = build_profile(frame, kinds={"y": "categorical", "f": "categorical"})
    assert prof.columns["y"] == CategoricalProfile(count=4, missing=0, counts={"1": 2, "0": 1, "2": 1})
    assert prof.columns["f"] == CategoricalProfile(count=3, missing=1, counts={"3": 2, "3.5": 1})


def test_category_dtype_drops_unused_categories() -> None:
    s = pd.Series(pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]))
    p = build_profile(pd.DataFrame({"c": s})).columns["c"]
    assert p == CategoricalProfile(count=3, missing=0, counts={"a": 2, "b": 1})


def test_max_categories_folds_rest_into_other() -> None:
    values = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + ["e"]
    p = build_profile(pd.DataFrame({"c": values}), max_categories=3).columns["c"]
    # The hash buckets count every label, the folded ones included.
    buckets = label_buckets({"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}, 128)
    assert p == CategoricalProfile(count=15, missing=0, counts={"a": 5, "b": 4, OTHER: 6}, max_categories=3,
                                   buckets=buckets)
    with pytest.raises(ValueError, match="needs its bucket counts"):
        CategoricalProfile(count=15, missing=0, counts={"a": 5, "b": 4, OTHER: 6}, max_categories=3)
    with pytest.raises(ValueError, match="disagree"):
        CategoricalProfile(count=15, missing=0, counts={"a": 5, "b": 4, OTHER: 6}, max_categories=3,
                           buckets=label_buckets({"a": 4, "b": 4, "c": 7}, 128))
    with pytest.raises(ValueError, match="disagree"):
        CategoricalProfile(count=9, missing=0, counts={"a": 5, "b": 4}, buckets=label_buckets({"a": 9}, 128))
    with pytest.raises(ValueError, match="sum to count"):
        CategoricalProfile(count=9, missing=0, counts={"a": 5, "b": 4}, buckets=np.zeros(128))


def test_current_window_keeps_reference_categories_past_the_cap() -> None:
    ref = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2})
    cur = pd.DataFrame({"c": ["x"] * 9 + ["y"] * 8 + ["z"] * 7 + ["b"] * 1})
    r, c = _profiles(ref, cur, max_categories=3)
    assert r.columns["c"].counts == {"a": 5, "b": 4, OTHER: 5}
    # the capped reference fixes the labels: "b" stays named although "x", "y" and "z"
    # are commoner, and they go to "__other__" (they may be labels the reference folded)
    assert c.columns["c"].counts == {OTHER: 24, "b": 1}


def test_reference_kind_is_reused_for_an_all_none_current_column() -> None:
    ref = pd.DataFrame({"x": np.arange(100, dtype=float)})
    cur = pd.DataFrame({"x": [None] * 40})  # dtype object
    r, c = _profiles(ref, cur)
    cc = c.columns["x"]
    assert isinstance(cc, NumericProfile)
    assert (cc.count, cc.missing) == (0, 40)
    res = compare(r, c)[0]
    assert res.status == "insufficient_data" and res.missing_share == 1.0


def test_build_profile_errors() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]})
    with pytest.raises(ValueError, match="not in the frame"):
        build_profile(frame, kinds={"nope": "numeric"})
    with pytest.raises(ValueError, match="'s' is declared numeric"):
        build_profile(frame, kinds={"s": "numeric"})
    with pytest.raises(ValueError, match="kind must be"):
        build_profile(frame, kinds={"x": "text"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="duplicate"):
        build_profile(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(ValueError, match="n_bins"):
        build_profile(frame, n_bins=0)


def test_profile_round_trip_through_json_including_inf_edges() -> None:
    rng = _rng(6)
    frame = pd.DataFrame(
        {
            "x": np.concatenate([rng.normal(size=97), [np.nan, np.inf, -np.inf]]),
            "z": np.concatenate([np.zeros(80), rng.random(20)]),
            "const": np.full(100, 1.25),
            "c": rng.choice(["a", "b", "c"], size=100),
            "b": rng.random(100) < 0.5,
        }
    )
    frame.loc[3, "c"] = None
    prof = build_profile(frame)
    text = json.dumps(prof.to_dict(), allow_nan=False)  # strict JSON: no Infinity/NaN tokens
    back = Profile.from_dict(json.loads(text))
    assert back == prof
    x = back.columns["x"]
    assert isinstance(x, NumericProfile)
    assert x.edges[0] == -np.inf and x.edges[-1] == np.inf
    assert x.edges.dtype == np.float64 and x.hist.dtype == np.int64
    assert back != build_profile(frame.iloc[:50])


def test_from_dict_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="format"):
        Profile.from_dict({"format": "other/9", "n_rows": 0, "columns": {}})


# ----------------------------------------------------------------------------- drift


def test_identical_distributions_not_drifted() -> None:
    x = _rng(7).normal(size=2000)
    r, c = _profiles(pd.DataFrame({"x": x}), pd.DataFrame({"x": x}))
    res = compare(r, c)[0]
    assert res.status == "ok" and res.drifted is False
    assert res.p_value == pytest.approx(1.0)
    assert res.psi == pytest.approx(0.0) and res.js_distance == pytest.approx(0.0)
    assert res.wasserstein_normalised == pytest.approx(0.0)


def test_independent_samples_of_same_normal_not_drifted() -> None:
    ref = pd.DataFrame({"x": _rng(8).normal(size=2000), "c": _rng(9).choice(["a", "b", "c"], 2000)})
    cur = pd.DataFrame({"x": _rng(10).normal(size=2000), "c": _rng(11).choice(["a", "b", "c"], 2000)})
    r, c = _profiles(ref, cur)
    for res in compare(r, c):
        assert res.status == "ok" and res.drifted is False, res
        assert res.p_value is not None and res.p_value > 0.05
        assert res.psi is not None and res.psi < 0.1


def test_shifted_normal_drifted() -> None:
    ref = pd.DataFrame({"x": _rng(12).normal(0.0, 1.0, size=2000)})
    cur = pd.DataFrame({"x": _rng(13).normal(0.5, 1.0, size=2000)})
    r, c = _profiles(ref, cur)
    res = compare(r, c)[0]
    assert res.method == "ks" and res.drifted is True
    assert res.p_value is not None and res.p_value < 1e-10
    expected = ks_2samp(ref["x"].to_numpy(), cur["x"].to_numpy())
    assert res.statistic == pytest.approx(float(expected.statistic))
    assert res.wasserstein_normalised == pytest.approx(0.5, abs=0.1)
    assert res.psi is not None and res.psi > 0.1


def test_categorical_drift_with_new_and_vanished_categories() -> None:
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["gone"] * 20})
    cur = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["new"] * 20})
    r, c = _profiles(ref, cur)
    res = compare(r, c)[0]
    table = np.array([[50, 30, 20, 0], [50, 30, 0, 20]])
    expected = chi2_contingency(table, correction=False)
    assert res.method == "chi2" and res.drifted is True
    assert res.statistic == pytest.approx(float(expected.statistic))
    assert res.psi == pytest.approx(psi(table[0], table[1]))
    assert res.js_distance == pytest.approx(float(jensenshannon(table[0] / 100, table[1] / 100, base=2)))
    assert res.wasserstein_normalised is None


def test_new_category_folded_into_other_when_reference_was_capped() -> None:
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5})
    cur = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["d"] * 15 + ["c"] * 5})
    r, c = _profiles(ref, cur, max_categories=3)
    assert r.columns["c"].counts == c.columns["c"].counts == {"a": 50, "b": 30, OTHER: 20}
    res = compare(r, c)[0]
    # c and d were folded in the label tables, but the test reads the hash buckets, which count
    # them apart (a, b, c and d fall in four different buckets): c and d swapping is seen.
    table = [[50, 30, 15, 5], [50, 30, 5, 15]]
    assert res.statistic == pytest.approx(chi2_contingency(table, correction=False).statistic, rel=1e-12)


def test_nan_none_inf_excluded_from_tests_and_counted() -> None:
    base = _rng(14).normal(size=200)
    cur = np.concatenate([base[:150], [np.nan] * 20, [np.inf] * 5, [-np.inf] * 5])
    frame_cur = pd.DataFrame({"x": pd.Series(list(cur) + [None] * 20, dtype="float64")})
    r, c = _profiles(pd.DataFrame({"x": base}), frame_cur)
    res = compare(r, c)[0]
    assert res.status == "ok"
    assert res.n_current == 150
    assert res.missing_share == pytest.approx(50 / 200)
    assert res.statistic == pytest.approx(float(ks_2samp(base, base[:150]).statistic))
    for v in (res.statistic, res.p_value, res.psi, res.js_distance, res.wasserstein_normalised):
        assert v is not None and math.isfinite(v)


@pytest.mark.parametrize("constant_side", ["reference", "current", "both"])
def test_constant_column_on_either_side(constant_side: str) -> None:
    normal = _rng(15).normal(size=300)
    const = np.full(300, 0.0)
    ref = const if constant_side in ("reference", "both") else normal
    cur = const if constant_side in ("current", "both") else normal
    r, c = _profiles(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}))
    res = compare(r, c)[0]
    assert res.status == "ok"
    for v in (res.statistic, res.p_value, res.psi, res.js_distance, res.wasserstein_normalised):
        assert v is not None and math.isfinite(v)
    if constant_side == "both":
        assert res.drifted is False and res.psi == 0.0 and res.wasserstein_normalised == 0.0
    else:
        assert res.drifted is True and res.psi is not None and res.psi > 0.25


def test_constant_reference_moving_off_its_value_is_seen_by_histograms() -> None:
    r, c = _profiles(pd.DataFrame({"x": np.full(100, 5.0)}), pd.DataFrame({"x": np.full(100, 6.0)}))
    res = compare(r, c)[0]
    assert res.js_distance == pytest.approx(1.0) and res.drifted is True


@pytest.mark.parametrize("n_current", [0, 5, 29])
def test_empty_and_tiny_windows_are_insufficient(n_current: int) -> None:
    rng = _rng(16)
    ref = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    cur = ref.iloc[:n_current]
    r, c = _profiles(ref, cur)
    for res in compare(r, c):
        assert res.status == "insufficient_data"
        assert res.n_current == n_current and res.n_reference == 500
        assert (res.statistic, res.p_value, res.drifted) == (None, None, None)
        assert (res.psi, res.js_distance, res.wasserstein_normalised) == (None, None, None)
        assert res.missing_share == (0.0 if n_current else None)
        json.dumps(res.to_dict(), allow_nan=False)


def test_min_count_applies_to_reference_too() -> None:
    r, c = _profiles(pd.DataFrame({"x": np.arange(10.0)}), pd.DataFrame({"x": np.arange(100.0)}))
    assert compare(r, c)[0].status == "insufficient_data"
    assert compare(r, c, DriftConfig(min_count=10))[0].status == "ok"


def test_column_missing_from_current_window() -> None:
    ref = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    cur = pd.DataFrame({"c": ["a", "b"] * 50})
    r, c = _profiles(ref, cur)
    by_name = {res.column: res for res in compare(r, c)}
    assert by_name["x"].status == "insufficient_data"
    assert by_name["x"].n_current == 0 and by_name["x"].missing_share == 1.0
    assert by_name["c"].status == "ok"
    only = compare(r, c, columns=["c"])
    assert [res.column for res in only] == ["c"]
    with pytest.raises(ValueError, match="nope"):
        compare(r, c, columns=["nope"])


def test_compare_column_rejects_kind_mismatch_naming_column() -> None:
    num = build_profile(pd.DataFrame({"v": np.arange(50.0)})).columns["v"]
    cat = build_profile(pd.DataFrame({"v": ["a"] * 50})).columns["v"]
    with pytest.raises(ValueError, match="'score'"):
        compare_column(num, cat, DriftConfig(), column="score")


def test_compare_column_rejects_current_not_binned_on_reference_edges() -> None:
    r = build_profile(pd.DataFrame({"v": np.arange(100.0)})).columns["v"]
    c = build_profile(pd.DataFrame({"v": np.arange(50.0, 150.0)})).columns["v"]
    with pytest.raises(ValueError, match="edges"):
        compare_column(r, c, column="v")


def test_column_drift_to_dict_is_json_safe() -> None:
    r, c = _profiles(pd.DataFrame({"x": np.arange(100.0)}), pd.DataFrame({"x": np.arange(100.0) + 30}))
    d = compare(r, c)[0].to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["column"] == "x" and d["method"] == "ks" and isinstance(d["drifted"], bool)


def test_drift_config_validation() -> None:
    with pytest.raises(ValueError):
        DriftConfig(alpha=1.5)
    with pytest.raises(ValueError):
        DriftConfig(min_count=0)


def _result(status: str, drifted: bool | None) -> ColumnDrift:
    ok = status == "ok"
    return ColumnDrift(
        column="c",
        kind="numeric",
        method="ks",
        statistic=0.1 if ok else None,
        p_value=(0.01 if drifted else 0.5) if ok else None,
        drifted=drifted,
        status=status,  # type: ignore[arg-type]
        psi=0.0 if ok else None,
        js_distance=0.0 if ok else None,
        wasserstein_normalised=0.0 if ok else None,
        n_reference=100,
        n_current=100 if ok else 0,
        missing_share=0.0,
    )


def test_dataset_drift_share_arithmetic() -> None:
    results = [_result("ok", True)] * 3 + [_result("ok", False)] * 5 + [_result("insufficient_data", None)] * 4
    d = dataset_drift(results, share_threshold=0.5)
    assert (d.n_columns, d.n_drifted, d.share, d.drifted, d.status) == (8, 3, 0.375, False, "ok")
    assert dataset_drift(results).drifted is True  # default: any one drifted column
    assert dataset_drift(results, min_drifted_columns=4).drifted is False
    assert dataset_drift(results, share_threshold=0.375).drifted is True
    assert dataset_drift(results, share_threshold=0.4).drifted is False


def test_dataset_drift_none_when_no_columns() -> None:
    for results in ([], [_result("insufficient_data", None)]):
        d = dataset_drift(results)
        assert (d.n_columns, d.n_drifted, d.share, d.drifted, d.status) == (0, 0, None, None, "insufficient_data")
    with pytest.raises(ValueError):
        dataset_drift([], share_threshold=0)
