"""Tests for mergeable column summaries: sketches, merge_profiles, the chunked builder."""

from __future__ import annotations

import json
import math
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.profile import (
    OTHER,
    PROFILE_FORMAT,
    CategoricalProfile,
    NumericProfile,
    Profile,
    build_profile,
    build_profile_chunks,
    merge_profiles,
)
from detectors.sketch import (
    bottom_k,
    kll_load,
    label_buckets,
    label_hashes,
    kll_rank_error,
    merge_moments,
    misra_gries,
    moment_scale,
    moments,
    row_keys,
)

# ----------------------------------------------------------------------------- primitives


def test_row_keys_are_splitmix64_outputs() -> None:
    # The first outputs of SplitMix64 seeded with 0 (published reference values).
    assert row_keys(np.array([0, 1, 2]), seed=0).tolist() == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_label_hashes_are_splitmix64_of_crc32() -> None:
    # crc32(b"a") = 0xE8B7BE43 (the standard CRC-32 check value of "a"); the 64-bit hash is the
    # (crc + 1)-th SplitMix64 output, computed here with Python integers.
    mask = 2**64 - 1
    z = ((0xE8B7BE43 + 1) * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    assert z == 0xA7A8397841EC7C8F
    assert label_hashes(["a", "é", ""]).tolist()[0] == z
    buckets = label_buckets({"a": 3, "true": 2, "é": 4}, 128)
    assert buckets.dtype == np.int64 and buckets.sum() == 9
    assert {i: int(buckets[i]) for i in np.flatnonzero(buckets)} == {z % 128: 3, 0x6A9A513DF43B0981 % 128: 2,
                                                                     0x26F24BDFEB09E6F7 % 128: 4}
    assert label_buckets({}, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="n_buckets"):
        label_buckets({"a": 1}, 0)


def test_row_keys_int64_read_as_uint64_and_distinct() -> None:
    signed = np.array([-1, -(2**63), 5], dtype=np.int64)
    assert np.array_equal(row_keys(signed, 3), row_keys(signed.view(np.uint64), 3))
    keys = row_keys(np.arange(1_000_000, dtype=np.int64), 11)
    assert keys.dtype == np.uint64 and np.unique(keys).size == keys.size  # a bijection: no collisions
    assert not np.array_equal(keys[:10], row_keys(np.arange(10), 12))
    with pytest.raises(ValueError, match="integer"):
        row_keys(np.array([1.5]))


def test_bottom_k_of_parts_is_bottom_k_of_union() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, size=300).astype(np.uint64)  # many ties
    values = rng.normal(size=300)
    whole = bottom_k(keys, values, 40)
    ka, va = bottom_k(keys[:120], values[:120], 40)
    kb, vb = bottom_k(keys[120:], values[120:], 40)
    merged = bottom_k(np.concatenate([ka, kb]), np.concatenate([va, vb]), 40)
    assert np.array_equal(whole[0], merged[0]) and np.array_equal(whole[1], merged[1])
    # the rows with the 40 smallest (key, value) pairs, by brute force
    order = sorted(zip(keys.tolist(), values.tolist()))[:40]
    assert whole[0].tolist() == [k for k, _ in order] and whole[1].tolist() == [v for _, v in order]


def test_merge_moments_matches_numpy_on_the_union() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(3.0, 2.0, size=1000), rng.normal(-1.0, 0.5, size=37)
    merged = merge_moments((a.size, *moments(a, 1.0), 1.0), (b.size, *moments(b, 1.0), 1.0))
    u = np.concatenate([a, b])
    assert merged[0] == 1037
    assert merged[1] == pytest.approx(np.mean(u), rel=1e-13)
    assert merged[2] == pytest.approx(np.var(u) * u.size, rel=1e-13)
    # an empty side changes nothing
    assert merge_moments((0, None, 0.0, 1.0), (a.size, *moments(a, 1.0), 1.0))[1:3] == moments(a, 1.0)


def test_moments_of_huge_values_do_not_overflow() -> None:
    a, b = np.array([1e300, -1e300, 3e300]), np.array([2e300])
    sa, sb = moment_scale(-1e300, 3e300), moment_scale(2e300, 2e300)
    assert (sa, sb) == (2.0**999, 2.0**998) and moment_scale(-5.0, 1e100) == 1.0
    n, mean, m2, s = merge_moments((3, *moments(a, sa), sa), (1, *moments(b, sb), sb))
    assert s == sa  # the union's scale: that of its largest magnitude
    u = np.concatenate([a, b]) / 1e300
    assert mean == pytest.approx(np.mean(u) * 1e300, rel=1e-12)
    assert m2 * (s / 1e300) ** 2 == pytest.approx(np.var(u) * 4, rel=1e-12)


def test_misra_gries_keeps_heavy_labels_and_bounds_the_error() -> None:
    counts = {"a": 50, "b": 30, "c": 10, "d": 5, "e": 5}
    assert misra_gries(counts, 5) == (counts, True)
    kept, exact = misra_gries(counts, 2)
    # third-largest count (10) is subtracted from all: a 40, b 20
    assert (kept, exact) == ({"a": 40, "b": 20}, False)


def test_object_column_tells_nan_from_none() -> None:
    s = pd.Series([None, float("nan"), 1.0, np.float32("nan"), pd.NA, np.inf], dtype=object)
    p = build_profile(pd.DataFrame({"x": s}), kinds={"x": "numeric"}).columns["x"]
    assert isinstance(p, NumericProfile)
    assert (p.count, p.missing, p.nan, p.posinf, p.neginf) == (1, 4, 2, 1, 0)


def test_quantiles_from_kll_equal_inverted_cdf_while_exact() -> None:
    x = np.random.default_rng(2).normal(size=150)
    p = build_profile(pd.DataFrame({"x": x}), kll_k=200).columns["x"]
    assert isinstance(p, NumericProfile)
    qs = np.linspace(0, 1, 21)
    assert p.quantile_rank_error == 0.0
    assert np.array_equal(p.quantiles(qs), np.quantile(x, qs, method="inverted_cdf"))
    assert p.quantiles([[0.5]]).shape == (1, 1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        p.quantiles([1.5])
    empty = build_profile(pd.DataFrame({"x": [np.nan]})).columns["x"]
    with pytest.raises(ValueError, match="no finite values"):
        empty.quantiles([0.5])  # type: ignore[union-attr]


def test_quantiles_beyond_capacity_within_rank_error() -> None:
    x = np.random.default_rng(3).exponential(size=100_000)
    p = build_profile(pd.DataFrame({"x": x}), kll_k=200).columns["x"]
    assert isinstance(p, NumericProfile)
    eps = p.quantile_rank_error
    # the KLL bound, plus a tenth for the grouping of large sorted windows
    assert eps == 1.1 * kll_rank_error(200) and kll_rank_error(200) == pytest.approx(0.01329, abs=1e-5)
    qs = np.linspace(0.01, 0.99, 99)
    ranks = np.searchsorted(np.sort(x), p.quantiles(qs), side="right") / x.size
    assert np.max(np.abs(ranks - qs)) <= eps


def test_samples_of_two_columns_join_row_for_row_on_keys() -> None:
    rng = np.random.default_rng(4)
    n = 5000
    x = rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "y": 2 * x + 1, "z": np.where(np.arange(n) % 3 == 0, np.nan, 3 * x)})
    prof = build_profile(frame, sample_size=200)
    px, py, pz = (prof.columns[c] for c in "xyz")
    assert isinstance(px, NumericProfile) and isinstance(py, NumericProfile) and isinstance(pz, NumericProfile)
    assert np.array_equal(px.sample_keys, py.sample_keys)  # no missing values: the same rows
    assert np.array_equal(py.sample, 2 * px.sample + 1)
    # z has missing rows, so it samples other rows; where keys meet, the rows agree
    common, ix, iz = np.intersect1d(px.sample_keys, pz.sample_keys, return_indices=True)
    assert common.size > 0 and np.array_equal(pz.sample[iz], 3 * px.sample[ix])


# ----------------------------------------------------------------------------- merge property


_SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, None])
_NUMBER = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-3, 3).map(float), _SPECIAL)


@st.composite
def _frames(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray]:
    n = draw(st.integers(0, 60))
    ids = np.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n, unique=True)), dtype=np.int64)
    frame = pd.DataFrame(
        {
            "x": pd.Series(draw(st.lists(_NUMBER, min_size=n, max_size=n)), dtype="float64"),
            "f32": np.array(draw(st.lists(st.floats(-100, 100, width=32), min_size=n, max_size=n)), dtype=np.float32),
            "c": pd.Series(draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", None]), min_size=n, max_size=n)), dtype=object),
            "u": pd.Series(draw(st.lists(st.sampled_from(["p", "q", None]), min_size=n, max_size=n)), dtype=object),
            "b": np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool),
            "nb": pd.array(draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n)), dtype="boolean"),
        }
    )
    return frame, ids


_REF_FRAME = pd.DataFrame(
    {
        "x": np.concatenate([np.linspace(-2e6, 2e6, 30), np.zeros(20)]),
        "f32": np.linspace(-50, 50, 50).astype(np.float32),
        # capped at max_categories=3: names "a" and "b", folds the rest; so it fixes the labels
        "c": ["a"] * 20 + ["b"] * 15 + ["c"] * 10 + ["d"] * 5,
        "u": ["p"] * 50,  # not capped: windows name labels freely (at most 2 here, under the cap)
        "b": [True, False] * 25,
        "nb": pd.array([True] * 50, dtype="boolean"),
    }
)
_PARAMS = {"n_bins": 4, "sample_size": 16, "max_categories": 3, "kll_k": 8, "seed": 5}
_REF = build_profile(_REF_FRAME, **_PARAMS)


def _assert_same_summary(merged: Profile, whole: Profile, frame: pd.DataFrame) -> None:
    assert merged.n_rows == whole.n_rows
    assert list(merged.columns) == list(whole.columns)
    for name, w in whole.columns.items():
        m = merged.columns[name]
        if isinstance(w, CategoricalProfile):
            assert m == w, name
            continue
        assert isinstance(m, NumericProfile)
        exact = ("count", "missing", "nan", "posinf", "neginf", "min", "max", "sample_size", "moment_scale")
        assert [getattr(m, a) for a in exact] == [getattr(w, a) for a in exact], name
        for a in ("edges", "hist", "sample", "sample_keys"):
            assert np.array_equal(getattr(m, a), getattr(w, a)), (name, a)
        if w.count == 0:
            assert m.mean is None and m.m2 == 0.0
            continue
        # 1e-9 relative; where the mean or M2 cancels to near zero, relative to the values' size.
        size = max(abs(w.min), abs(w.max))  # type: ignore[arg-type]
        assert abs(m.mean - w.mean) <= 1e-9 * abs(w.mean) + 1e-12 * size, name  # type: ignore[operator]
        assert abs(m.m2 - w.m2) <= 1e-9 * w.m2 + 1e-12 * w.count * size**2, name
        km, kw = kll_load(m.kll), kll_load(w.kll)
        assert km.n == kw.n and km.is_estimation_mode() == kw.is_estimation_mode()
        qs = np.linspace(0, 1, 11)
        if not kw.is_estimation_mode():
            assert np.array_equal(m.quantiles(qs), w.quantiles(qs)), name
            assert sorted(v for v, _ in km) == sorted(v for v, _ in kw)  # holds the same values
        else:
            values = np.sort(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))
            values = values[np.isfinite(values)]
            got = m.quantiles(qs)
            lo = np.searchsorted(values, got, side="left") / values.size
            hi = np.searchsorted(values, got, side="right") / values.size
            assert np.all((lo <= qs + m.quantile_rank_error) & (hi >= qs - m.quantile_rank_error)), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_frames(), _frames())
def test_merge_of_parts_equals_profile_of_concatenation(a: tuple[pd.DataFrame, np.ndarray], b: tuple[pd.DataFrame, np.ndarray]) -> None:
    (fa, ia), (fb, ib) = a, b
    ib = ib[~np.isin(ib, ia)]  # row ids are distinct across the parts
    fb = fb.iloc[: ib.size].reset_index(drop=True)
    whole = pd.concat([fa, fb], ignore_index=True)
    pa = build_profile(fa, reference=_REF, row_ids=ia, **_PARAMS)
    pb = build_profile(fb, reference=_REF, row_ids=ib, **_PARAMS)
    pw = build_profile(whole, reference=_REF, row_ids=np.concatenate([ia, ib]), **_PARAMS)
    _assert_same_summary(merge_profiles(pa, pb, reference=_REF), pw, whole)
    _assert_same_summary(merge_profiles(pb, pa, reference=_REF), pw, whole)  # order does not matter


def test_merge_without_reference_of_row_position_parts() -> None:
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], size=500)})
    ref = build_profile(frame.iloc[:100], sample_size=64)
    parts = [build_profile(frame.iloc[i : i + 100], reference=ref, sample_size=64, row_offset=i) for i in range(0, 500, 100)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merge_profiles(merged, p, reference=ref)
    whole = build_profile(frame, reference=ref, sample_size=64)
    _assert_same_summary(merged, whole, frame)


def test_merge_folds_after_summing_when_the_union_exceeds_the_cap() -> None:
    # neither part exceeds 3 labels, the union has 4
    a = build_profile(pd.DataFrame({"c": ["a"] * 3 + ["b"] * 2}), max_categories=3)
    b = build_profile(pd.DataFrame({"c": ["c"] * 4 + ["b"] * 2 + ["d"]}), max_categories=3)
    whole = build_profile(pd.DataFrame({"c": ["a"] * 3 + ["b"] * 4 + ["c"] * 4 + ["d"]}), max_categories=3)
    assert merge_profiles(a, b).columns["c"] == whole.columns["c"]
    assert whole.columns["c"].counts == {OTHER: 4, "b": 4, "c": 4}  # type: ignore[union-attr]


def test_merge_undercounts_a_label_one_part_folded() -> None:
    # Documented limit without a capped reference: "c" was folded in part a.
    a = build_profile(pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["c", "d"]}), max_categories=3)
    b = build_profile(pd.DataFrame({"c": ["c"] * 9}), max_categories=3)
    assert a.columns["c"].counts == {"a": 5, "b": 4, OTHER: 2}  # type: ignore[union-attr]
    merged = merge_profiles(a, b).columns["c"]
    whole = build_profile(pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["c", "d"] + ["c"] * 9}), max_categories=3)
    assert whole.columns["c"].counts == {"c": 10, "a": 5, OTHER: 5}  # type: ignore[union-attr]
    assert merged.counts == {"c": 9, "a": 5, OTHER: 6}  # type: ignore[union-attr]
    assert merged.count == whole.columns["c"].count == 20  # the total stays exact
    # The hash buckets, which the drift test reads for capped tables, merge exactly.
    assert np.array_equal(merged.buckets, whole.columns["c"].buckets)  # type: ignore[union-attr]
    assert np.array_equal(merged.buckets, label_buckets({"a": 5, "b": 4, "c": 10, "d": 1}, 128))


def test_merge_errors_and_one_sided_columns() -> None:
    ref_a = build_profile(pd.DataFrame({"x": np.arange(10.0)}))
    ref_b = build_profile(pd.DataFrame({"x": np.arange(10.0) * 2}))
    with pytest.raises(ValueError, match="'x'.*different bin edges"):
        merge_profiles(ref_a, ref_b)
    with pytest.raises(ValueError, match="'x' is numeric in one profile and categorical"):
        merge_profiles(ref_a, build_profile(pd.DataFrame({"x": ["a"]})))
    with pytest.raises(ValueError, match="max_categories differ"):
        merge_profiles(build_profile(pd.DataFrame({"c": ["a"]}), max_categories=3), build_profile(pd.DataFrame({"c": ["a"]})))
    other = build_profile(pd.DataFrame({"c": ["a", "b", None]}))
    merged = merge_profiles(ref_a, other)
    assert merged.n_rows == 13 and list(merged.columns) == ["x", "c"]
    x, c = merged.columns["x"], merged.columns["c"]
    assert (x.count, x.missing, x.nan) == (10, 3, 0)  # type: ignore[union-attr]
    assert c == CategoricalProfile(count=2, missing=11, counts={"a": 1, "b": 1})


def test_merged_sample_capacity_is_the_smaller() -> None:
    f = pd.DataFrame({"x": np.arange(100.0)})
    ref = build_profile(f)
    small = build_profile(f.iloc[:50], reference=ref, sample_size=10)
    big = build_profile(f.iloc[50:], reference=ref, sample_size=30, row_offset=50)
    merged = merge_profiles(small, big).columns["x"]
    whole = build_profile(f, reference=ref, sample_size=10).columns["x"]
    assert isinstance(merged, NumericProfile) and isinstance(whole, NumericProfile)
    assert merged.sample_size == 10 and np.array_equal(merged.sample, whole.sample)


# ----------------------------------------------------------------------------- serialisation


def test_round_trip_is_exact_including_sketch_bytes_and_keys() -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "x": np.concatenate([rng.normal(size=996), [np.nan, np.inf, -np.inf, 1e300]]),
            "e": np.full(1000, np.nan),
            "c": rng.choice(["a", "b", "c"], size=1000),
            "b": rng.random(1000) < 0.5,
            "h": rng.integers(0, 40, 1000).astype(str),  # capped at 5: the buckets must round-trip
        }
    )
    prof = build_profile(frame, sample_size=300, max_categories=5)
    d = prof.to_dict()
    assert OTHER in d["columns"]["h"]["counts"] and len(d["columns"]["h"]["buckets"]) == 128
    assert sum(d["columns"]["h"]["buckets"]) == 1000
    assert d["format"] == PROFILE_FORMAT == "inferwatch.profile/3"
    back = Profile.from_dict(json.loads(json.dumps(d, allow_nan=False)))
    assert back == prof
    for name in ("x", "e"):
        p, q = prof.columns[name], back.columns[name]
        assert isinstance(p, NumericProfile) and isinstance(q, NumericProfile)
        assert q.kll == p.kll and np.array_equal(q.sample_keys, p.sample_keys) and q.m2 == p.m2
    assert back.to_dict() == d
    assert d["columns"]["x"]["std"] == prof.columns["x"].std  # type: ignore[union-attr]


def test_from_dict_rejects_format_1_and_bad_fields() -> None:
    with pytest.raises(ValueError, match="rebuild"):
        Profile.from_dict({"format": "inferwatch.profile/1", "n_rows": 0, "columns": {}})
    with pytest.raises(ValueError, match="rebuild"):  # format 2 had no category buckets
        Profile.from_dict({"format": "inferwatch.profile/2", "n_rows": 0, "columns": {}})
    d = build_profile(pd.DataFrame({"x": [1.0, 2.0]})).to_dict()
    d["columns"]["x"]["kll"] = "not base64!"
    with pytest.raises(ValueError, match="base64"):
        Profile.from_dict(d)


def test_numeric_profile_validation() -> None:
    p = build_profile(pd.DataFrame({"x": [3.0, 1.0, 2.0]})).columns["x"]
    assert isinstance(p, NumericProfile)
    import dataclasses

    with pytest.raises(ValueError, match="key"):
        dataclasses.replace(p, sample=p.sample[::-1].copy(), sample_keys=p.sample_keys[::-1].copy())
    with pytest.raises(ValueError, match="kll sketch holds 3"):
        dataclasses.replace(p, count=4, hist=p.hist + np.eye(p.hist.size, dtype=np.int64)[0], sample_size=2,
                            sample=p.sample[:2], sample_keys=p.sample_keys[:2])
    with pytest.raises(ValueError, match="nan"):
        dataclasses.replace(p, nan=1)


# ----------------------------------------------------------------------------- chunked builder


def _chunks(frame: pd.DataFrame, size: int):
    return lambda: (frame.iloc[i : i + size] for i in range(0, len(frame), size))


def test_chunks_equal_whole_frame_when_the_sample_holds_everything() -> None:
    rng = np.random.default_rng(8)
    n = 1000
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "z": np.where(rng.random(n) < 0.5, 0.0, rng.exponential(size=n)),
            "c": rng.choice(["a", "b", "c", "d", "e", "f"], size=n),
            "b": pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n) < 0.3), dtype="boolean"),
        }
    )
    whole = build_profile(frame, max_categories=4)
    chunked = build_profile_chunks(_chunks(frame, 77), max_categories=4)
    _assert_same_summary(chunked, whole, frame)


def test_chunks_larger_than_the_sample() -> None:
    x = np.random.default_rng(9).normal(size=20_000)
    frame = pd.DataFrame({"x": x})
    whole = build_profile(frame, sample_size=500).columns["x"]
    chunked = build_profile_chunks(_chunks(frame, 3000), sample_size=500).columns["x"]
    assert isinstance(whole, NumericProfile) and isinstance(chunked, NumericProfile)
    assert np.array_equal(chunked.sample, whole.sample)  # bottom-k is exact across chunks
    # edges: quantiles of the sample, by the same rule as build_profile
    assert np.allclose(chunked.edges[1:-1], np.quantile(whole.sample, np.linspace(0, 1, 11))[1:-1], rtol=0, atol=0)
    expected_hist = np.histogram(x, bins=np.concatenate([[-1e9], chunked.edges[1:-1], [1e9]]))[0]
    assert np.array_equal(chunked.hist, expected_hist)
    assert chunked.mean == pytest.approx(np.mean(x), rel=1e-12)
    assert chunked.std == pytest.approx(np.std(x, ddof=1), rel=1e-12)


def test_chunks_against_a_reference_and_with_row_ids() -> None:
    rng = np.random.default_rng(10)
    ref = build_profile(pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(list("abcdef"), 500)}), max_categories=3)
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, size=4000), "c": rng.choice(list("abcdefgh"), 4000)})
    ids = rng.integers(-(2**62), 2**62, size=4000)
    make = lambda: ((cur.iloc[i : i + 900], ids[i : i + 900]) for i in range(0, 4000, 900))  # noqa: E731
    chunked = build_profile_chunks(make, reference=ref, sample_size=100, max_categories=3)
    whole = build_profile(cur, reference=ref, sample_size=100, max_categories=3, row_ids=ids)
    _assert_same_summary(chunked, whole, cur)


def test_chunked_categories_beyond_the_misra_gries_capacity() -> None:
    rng = np.random.default_rng(11)
    heavy = np.repeat(["h1", "h2", "h3"], [3000, 2000, 1000])
    rare = np.array([f"r{i}" for i in range(4000)])  # 4000 labels seen once
    labels = rng.permutation(np.concatenate([heavy, rare]))
    frame = pd.DataFrame({"c": labels})
    chunked = build_profile_chunks(_chunks(frame, 1000), max_categories=4, category_capacity=8).columns["c"]
    whole = build_profile(frame, max_categories=4).columns["c"]
    assert chunked == whole
    assert whole.counts == {OTHER: 4000, "h1": 3000, "h2": 2000, "h3": 1000}  # type: ignore[union-attr]


def test_chunked_builder_value_bins_buckets_and_boolean_reference() -> None:
    rng = np.random.default_rng(12)
    frame = pd.DataFrame({"d": rng.integers(0, 12, 3000), "z": rng.integers(0, 2000, 3000).astype(str)})
    chunked = build_profile_chunks(_chunks(frame, 700), sample_size=5000, max_categories=50, category_capacity=60)
    whole = build_profile(frame, sample_size=5000, max_categories=50)
    _assert_same_summary(Profile(3000, {"d": chunked.columns["d"]}), Profile(3000, {"d": whole.columns["d"]}), frame)
    assert chunked.columns["d"].edges.size == 2 * 12 + 2  # type: ignore[union-attr]
    # The named labels past the Misra–Gries capacity may differ (documented); the buckets are exact.
    z_chunked, z_whole = chunked.columns["z"], whole.columns["z"]
    assert isinstance(z_chunked, CategoricalProfile) and isinstance(z_whole, CategoricalProfile)
    assert np.array_equal(z_chunked.buckets, z_whole.buckets) and z_chunked.count == 3000
    assert np.array_equal(z_whole.buckets, label_buckets(frame["z"].value_counts().to_dict(), 128))
    # A partial sample still gives value bins; its values outside them are counted in the gaps.
    partial = build_profile_chunks(_chunks(frame, 700), sample_size=100).columns["d"]
    assert isinstance(partial, NumericProfile)
    assert np.array_equal(partial.edges, whole.columns["d"].edges)  # type: ignore[union-attr]
    assert np.array_equal(partial.hist, whole.columns["d"].hist)  # type: ignore[union-attr]
    ref = build_profile(pd.DataFrame({"b": [True, False] * 10}))
    flags = pd.DataFrame({"b": ["True", "False", "true", "0", 1] * 20})
    chunked_flags = build_profile_chunks(_chunks(flags, 30), reference=ref).columns["b"]
    assert chunked_flags == build_profile(flags, reference=ref).columns["b"]
    assert chunked_flags.counts == {"true": 60, "false": 40}  # type: ignore[union-attr]


def test_chunked_builder_errors_and_absent_columns() -> None:
    a = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    b = pd.DataFrame({"x": [3.0]})
    prof = build_profile_chunks(lambda: [a, b])
    assert prof.n_rows == 3 and prof.columns["c"] == CategoricalProfile(count=2, missing=1, counts={"a": 1, "b": 1})
    with pytest.raises(ValueError, match="row ids"):
        build_profile_chunks(lambda: [(a, np.arange(2)), b])
    with pytest.raises(ValueError, match="category_capacity"):
        build_profile_chunks(lambda: [a], max_categories=10, category_capacity=5)
    calls = []

    def shrinking():
        calls.append(1)
        big = pd.DataFrame({"x": np.arange(100.0 if len(calls) == 1 else 50.0)})
        return [big]

    with pytest.raises(ValueError, match="first pass"):
        build_profile_chunks(shrinking, sample_size=10)


# ----------------------------------------------------------------------------- 10 million rows

_CHUNK = 1_000_000
_LABELS = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])


def _big_chunk(i: int) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + i)
    x = rng.normal(5.0, 2.0, size=_CHUNK)
    x[::1000] = np.nan
    codes = rng.integers(0, 5, size=_CHUNK)
    return pd.DataFrame(
        {"x": x, "y": rng.exponential(3.0, size=_CHUNK), "c": pd.Categorical.from_codes(codes, categories=_LABELS)}
    )


def _expected(n_chunks: int) -> tuple[int, float, float, np.ndarray]:
    """Independently: finite count and exact-sum means of x and y, and label counts."""
    count, sums_x, sums_y, cats = 0, [], [], np.zeros(5, dtype=np.int64)
    for i in range(n_chunks):
        f = _big_chunk(i)
        x = f["x"].to_numpy()
        x = x[np.isfinite(x)]
        count += x.size
        sums_x.append(math.fsum(x))  # correctly rounded partial sums
        sums_y.append(math.fsum(f["y"].to_numpy()))
        cats += np.bincount(f["c"].cat.codes.to_numpy(), minlength=5)
    return count, math.fsum(sums_x) / count, math.fsum(sums_y) / (n_chunks * _CHUNK), cats


def _build(n_chunks: int) -> tuple[Profile, int, float]:
    tracemalloc.start()
    t0 = time.perf_counter()
    prof = build_profile_chunks(lambda: (_big_chunk(i) for i in range(n_chunks)))
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return prof, peak, elapsed


def test_ten_million_rows_in_bounded_memory() -> None:
    small, _, _ = _build(1)
    _, peak_small, _ = _build(2)  # two chunks: the first merge happens, as with ten
    big, peak_big, elapsed = _build(10)
    assert elapsed < 60
    n = 10 * _CHUNK
    count, mean_x, mean_y, cats = _expected(10)
    x, y, c = big.columns["x"], big.columns["y"], big.columns["c"]
    assert isinstance(x, NumericProfile) and isinstance(y, NumericProfile) and isinstance(c, CategoricalProfile)
    assert big.n_rows == n
    assert (x.count, x.missing, x.nan, x.nonfinite) == (count, n // 1000, n // 1000, 0) and count == n - n // 1000
    assert x.mean == pytest.approx(mean_x, rel=1e-9) and y.mean == pytest.approx(mean_y, rel=1e-9)
    assert int(x.hist.sum()) == x.count and int(y.hist.sum()) == n
    assert x.sample.size == y.sample.size == 50_000
    assert c.counts == {str(label): int(k) for label, k in zip(_LABELS, cats)} and c.count == n
    # rank error 0.0133 is about 0.07 in value at the median of N(5, 2)
    assert abs(x.quantiles([0.5])[0] - 5.0) < 0.1
    # Size does not grow with the rows: only the KLL sketch gains a level header now and then.
    size_small, size_big = len(json.dumps(small.to_dict())), len(json.dumps(big.to_dict()))
    assert size_big <= size_small * 1.01
    # Peak memory is one chunk plus bounded state: the same for 2e6 and 1e7 rows.
    assert peak_big <= peak_small * 1.1


@pytest.mark.parametrize("repeated", [False, True])
def test_frame_wide_sample_rows_equal_per_column_bottom_k(repeated):
    from detectors.sketch import bottom_k, row_keys

    rng = np.random.default_rng(11)
    n, k = 5_000, 300
    ids = rng.integers(0, 1_000, n) if repeated else rng.permutation(n) + 10**9
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 50, n).astype(float)})
    prof = build_profile(frame, row_ids=ids, sample_size=k)
    keys = row_keys(ids)
    for name in ("a", "b"):
        want_keys, want_values = bottom_k(keys, frame[name].to_numpy(), k)
        col = prof.columns[name]
        assert np.array_equal(col.sample_keys, want_keys) and np.array_equal(col.sample, want_values)


def test_threads_do_not_change_the_profile():
    rng = np.random.default_rng(12)
    n = 120_000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)} | {"c": rng.choice(["a", "b"], n)})
    frame.loc[::7, "x1"] = np.nan
    ref = build_profile(frame.iloc[:20_000], threads=1)
    one = build_profile(frame, reference=ref, threads=1)
    assert build_profile(frame, reference=ref, threads=3) == one
    assert build_profile(frame, reference=ref) == one  # None: threads for a frame this size
    with pytest.raises(ValueError, match="threads"):
        build_profile(frame, threads=0)


@pytest.mark.parametrize("n", [65_536, 1_000_001, 3_000_000])
def test_grouped_kll_of_a_large_window_keeps_count_extremes_and_rank_bound(n):
    from detectors.sketch import KLL_COARSEN_FROM, kll_group_size, kll_load, kll_merge, kll_rank_error, kll_sketch

    rng = np.random.default_rng(n)
    x = np.sort(rng.standard_cauchy(n))
    g = kll_group_size(n, 200)
    assert n >= KLL_COARSEN_FROM and g >= 2 and g / n <= kll_rank_error(200) / 10 and g * g <= n
    sketch = kll_load(kll_sketch(x, 200, presorted=True))
    assert (sketch.n, sketch.get_min_value(), sketch.get_max_value()) == (n, x[0], x[-1])
    qs = np.linspace(0.005, 0.995, 199)
    ranks = np.searchsorted(x, np.array(sketch.get_quantiles(qs)), side="right") / n
    assert np.max(np.abs(ranks - qs)) <= 1.1 * kll_rank_error(200)
    # two grouped halves merged: the shifts add up to at most (g1 + g2) / n
    half = n // 2
    merged = kll_load(kll_merge(kll_sketch(x[:half], 200, presorted=True), kll_sketch(x[half:], 200, presorted=True)))
    assert merged.n == n and (merged.get_min_value(), merged.get_max_value()) == (x[0], x[-1])
    ranks = np.searchsorted(x, np.array(merged.get_quantiles(qs)), side="right") / n
    assert np.max(np.abs(ranks - qs)) <= 1.1 * kll_rank_error(200)


def test_small_or_unsorted_input_is_sketched_value_by_value():
    from detectors.sketch import kll_group_size

    assert kll_group_size(65_535, 200) == 1 and kll_group_size(65_536, 200) == 64
    assert kll_group_size(10**6, 200) == 512  # sqrt(1e6) = 1000 -> 512
