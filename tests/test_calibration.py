"""Calibrated thresholds (bootstrap, reference chunks) and the k-of-n alarm policy.

The false-alarm tests run the calibrated threshold on fresh stationary windows
and check the observed rate against the configured one; the bounds [0.004, 0.02]
for rate 0.01 over 2,000 windows hold the binomial 99.9% interval
(Binomial(2000, 0.01): mean 20, sd 4.4).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import binom, ks_2samp, wasserstein_distance

from detectors.alarm_policy import KOfNAlarm, firing_rate, per_window_rate
from detectors.calibration import (
    CalibratedThreshold,
    bootstrap_histogram_statistics,
    bootstrap_ks_statistics,
    bootstrap_statistics,
    chunk_histogram_statistics,
    chunk_statistics,
    histogram_statistics,
    ks_statistics,
    min_null_size,
    threshold_from_null,
)
from detectors.distance import js_distance, psi

RATE = 0.01
LOW, HIGH = 0.004, 0.02


def _quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    inner = np.unique(np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.concatenate([[-np.inf], inner, [np.inf]])


def _histograms(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Row-wise histograms of a (B, m) array on edges, bin i = [edges[i], edges[i+1])."""
    k = edges.size - 1
    bins = np.searchsorted(edges, values, side="right") - 1
    offsets = np.arange(values.shape[0])[:, None] * k
    return np.bincount((bins + offsets).ravel(), minlength=values.shape[0] * k).reshape(-1, k)


# ----------------------------------------------------------------------------- threshold rules


def test_min_null_size() -> None:
    assert min_null_size(0.01) == 2000
    assert min_null_size(0.001) == 20000
    assert min_null_size(0.05) == 400
    assert min_null_size(0.3) == 67


def test_quantile_rule_golden() -> None:
    null = np.arange(1.0, 2001.0)[::-1]  # order must not matter
    t = threshold_from_null(null, 0.01)
    # k = ceil(0.99 * 2001) = ceil(1980.99) = 1981 -> the 1981st smallest value
    assert t.threshold == 1981.0 and t.rule == "quantile" and t.n_null == 2000
    # a new exchangeable value exceeds it with probability 20 / 2001 <= 0.01
    assert np.mean(np.arange(1, 2002) > t.threshold) == pytest.approx(20 / 2001)
    assert t.null_mean == 1000.5
    assert t.null_std == pytest.approx(math.sqrt(2000 * 2001 / 12), rel=1e-12)
    assert t.exceeded(1981.5) and not t.exceeded(1981.0)


def test_quantile_rule_needs_enough_null_values() -> None:
    with pytest.raises(ValueError, match="at least 2000"):
        threshold_from_null(np.arange(1999.0), 0.01)
    assert threshold_from_null(np.arange(1999.0), 0.01, rule="auto").rule == "normal"
    assert threshold_from_null(np.arange(2000.0), 0.01, rule="auto").rule == "quantile"


def test_normal_rule_golden() -> None:
    t = threshold_from_null([1.0, 2.0, 3.0, 4.0, 5.0], 0.05, rule="normal")
    # mean 3, sd sqrt(2.5), z_0.95 = 1.6448536269514722
    assert t.threshold == pytest.approx(3.0 + 1.6448536269514722 * math.sqrt(2.5), rel=1e-12)
    assert t.rule == "normal" and t.null_std == pytest.approx(math.sqrt(2.5))
    with pytest.raises(ValueError, match="at least 2"):
        threshold_from_null([1.0], 0.05, rule="normal")


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, float("nan")])
def test_threshold_rejects_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        threshold_from_null(np.arange(100000.0), rate)


def test_threshold_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        threshold_from_null([], 0.1)
    with pytest.raises(ValueError, match="finite"):
        threshold_from_null([1.0, float("nan")] * 100, 0.1, rule="normal")
    with pytest.raises(ValueError, match="unknown rule"):
        threshold_from_null(np.arange(1000.0), 0.1, rule="median")
    t = threshold_from_null([1.0, 2.0], 0.1, rule="normal")
    with pytest.raises(ValueError, match="NaN"):
        t.exceeded(float("nan"))


def test_calibrated_threshold_round_trip() -> None:
    t = threshold_from_null(np.linspace(0, 1, 500), 0.05)
    back = CalibratedThreshold.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t
    with pytest.raises(ValueError, match="missing 'rule'"):
        CalibratedThreshold.from_dict({k: v for k, v in t.to_dict().items() if k != "rule"})
    with pytest.raises(ValueError, match="rate"):
        CalibratedThreshold.from_dict({**t.to_dict(), "false_alarm_rate": 2.0})


# ----------------------------------------------------------------------------- vectorised statistics


def test_histogram_statistics_equal_scalar_and_scipy() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 50, size=12).astype(float)
    ref[4] = 0  # an empty reference bin exercises PSI's clipping
    cur = rng.integers(0, 30, size=(40, 12)).astype(float)
    cur[:, 7] = 0
    got_psi = histogram_statistics(ref, cur, "psi")
    got_js = histogram_statistics(ref, cur, "js_distance")
    for i in range(cur.shape[0]):
        assert got_psi[i] == pytest.approx(psi(ref, cur[i]), rel=1e-12, abs=1e-15)
        assert got_js[i] == pytest.approx(js_distance(ref, cur[i]), rel=1e-12, abs=1e-15)
        assert got_js[i] == pytest.approx(jensenshannon(ref, cur[i], base=2), rel=1e-12, abs=1e-15)


def test_histogram_statistics_golden() -> None:
    def one(p: list[float], q: list[float], name: str) -> float:
        return float(histogram_statistics(p, [q], name)[0])

    assert one([0.9, 0.1], [0.1, 0.9], "hellinger") == pytest.approx(0.63246, abs=5e-6)
    # sqrt(((sqrt .5 - sqrt .9)^2 + (sqrt .5 - sqrt .1)^2) / 2) = sqrt(1 - sqrt .45 - sqrt .05) = 0.32492
    assert one([0.5, 0.5], [0.9, 0.1], "hellinger") == pytest.approx(0.32492, abs=5e-6)
    assert one([1, 0], [0, 1], "hellinger") == 1.0
    assert one([0.5, 0.5], [0.9, 0.1], "total_variation") == pytest.approx(0.4, rel=1e-12)
    assert one([1, 0], [0, 1], "total_variation") == 1.0
    assert one([0.5, 0.5], [0.6, 0.4], "js_distance") == pytest.approx(0.085435, abs=5e-7)
    assert one([1, 0], [0, 1], "js_distance") == 1.0
    # booleans 70% vs 50% True: PSI 0.16946
    assert one([70, 30], [50, 50], "psi") == pytest.approx(0.16946, abs=5e-6)
    # one reference row per window
    both = histogram_statistics([[1, 0], [0.5, 0.5]], [[0, 1], [0.9, 0.1]], "total_variation")
    assert both == pytest.approx([1.0, 0.4], rel=1e-12)


def test_histogram_statistics_validation() -> None:
    with pytest.raises(ValueError, match="unknown histogram statistic"):
        histogram_statistics([1, 1], [[1, 1]], "kl")
    with pytest.raises(ValueError, match="shape"):
        histogram_statistics([1, 1, 1], [[1, 1]], "psi")
    with pytest.raises(ValueError, match="positive total"):
        histogram_statistics([1, 1], [[0, 0]], "psi")
    with pytest.raises(ValueError, match="eps"):
        histogram_statistics([1, 1], [[1, 1]], "psi", eps=0.0)


def test_ks_statistics_equal_scipy_with_ties() -> None:
    rng = np.random.default_rng(4)
    ref = rng.normal(size=700)
    ref[:200] = np.round(ref[:200], 1)
    windows = rng.normal(0.1, 1.2, size=(30, 150))
    windows[:, :60] = np.round(windows[:, :60], 1)  # ties within the window and with the reference
    windows[0] = ref[:150]
    got = ks_statistics(ref, windows)
    expected = [ks_2samp(ref, w).statistic for w in windows]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert ks_statistics([1.0] * 20, [[2.0] * 20])[0] == 1.0
    assert ks_statistics([1.0] * 20, [[1.0] * 20])[0] == 0.0


# ----------------------------------------------------------------------------- bootstrap paths


def test_bootstrap_ks_is_scipy_ks_of_the_drawn_windows() -> None:
    ref = np.round(np.random.default_rng(5).normal(size=400), 2)
    got = bootstrap_ks_statistics(ref, 50, n_boot=25, seed=11)
    # same draws, reproduced: positions into the sorted reference
    pos = np.random.default_rng(11).integers(0, ref.size, size=(25, 50))
    windows = np.sort(ref)[pos]
    np.testing.assert_allclose(got, [ks_2samp(ref, w).statistic for w in windows], rtol=0, atol=1e-12)
    corrected = bootstrap_ks_statistics(ref, 50, n_boot=25, seed=11, resample_reference=True)
    np.testing.assert_allclose(corrected, got * math.sqrt(1 + 50 / 400), rtol=1e-12)


def test_bootstrap_histogram_is_multinomial_then_scalar_statistic() -> None:
    ref = np.array([30.0, 50.0, 0.0, 20.0])
    got = bootstrap_histogram_statistics(ref, 40, "psi", n_boot=30, seed=2)
    draws = np.random.default_rng(2).multinomial(40, ref / ref.sum(), size=30)
    np.testing.assert_allclose(got, [psi(ref, d) for d in draws], rtol=1e-12)
    js = bootstrap_histogram_statistics(ref, 40, "js_distance", n_boot=30, seed=2)
    np.testing.assert_allclose(js, [js_distance(ref, d) for d in draws], rtol=1e-12, atol=1e-15)


def test_bootstrap_histogram_resample_reference_draws_both() -> None:
    ref = np.array([30.0, 50.0, 20.0])
    got = bootstrap_histogram_statistics(ref, 40, "total_variation", n_boot=5, seed=8, resample_reference=True)
    rng = np.random.default_rng(8)
    w = rng.multinomial(40, ref / 100, size=5)
    r = rng.multinomial(100, ref / 100, size=5)
    expected = 0.5 * np.abs(w / 40 - r / 100).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="integer reference total"):
        bootstrap_histogram_statistics([0.5, 0.7], 40, "psi", n_boot=5, seed=8, resample_reference=True)


def test_bootstrap_callable_draws_with_replacement() -> None:
    ref = np.arange(10.0)
    got = bootstrap_statistics(ref, 4, lambda r, w: float(w.mean() - r.mean()), n_boot=6, seed=9)
    rng = np.random.default_rng(9)
    expected = [ref[rng.integers(0, 10, size=4)].mean() - 4.5 for _ in range(6)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_bootstrap_deterministic_and_seed_required() -> None:
    ref = np.random.default_rng(1).normal(size=300)
    a = bootstrap_ks_statistics(ref, 30, n_boot=50, seed=3)
    np.testing.assert_array_equal(a, bootstrap_ks_statistics(ref, 30, n_boot=50, seed=3))
    assert not np.array_equal(a, bootstrap_ks_statistics(ref, 30, n_boot=50, seed=4))
    with pytest.raises(ValueError, match="seed"):
        bootstrap_ks_statistics(ref, 30, n_boot=50, seed=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="window_size"):
        bootstrap_histogram_statistics([1, 1], 0, "psi", n_boot=5, seed=1)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_statistics(ref, 5, lambda r, w: 0.0, n_boot=0, seed=1)
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_statistics(ref, 5, lambda r, w: float("nan"), n_boot=3, seed=1)


def test_multinomial_bootstrap_is_fast() -> None:
    import time

    start = time.perf_counter()
    out = bootstrap_histogram_statistics(np.full(10, 1000), 5000, "hellinger", n_boot=10_000, seed=0)
    assert time.perf_counter() - start < 0.5
    assert out.shape == (10_000,) and np.all(out >= 0)


# ----------------------------------------------------------------------------- false-alarm rate


def test_psi_bootstrap_threshold_holds_rate_on_stationary_stream() -> None:
    rng = np.random.default_rng(20)
    reference = rng.normal(size=200_000)
    edges = _quantile_edges(reference, 10)
    ref_counts = _histograms(reference[None, :], edges)[0]
    m = 1000
    null = bootstrap_histogram_statistics(ref_counts, m, "psi", n_boot=10_000, seed=21)
    t = threshold_from_null(null, RATE)
    windows = rng.normal(size=(2000, m))
    stats = histogram_statistics(ref_counts, _histograms(windows, edges), "psi")
    observed = float(np.mean(stats > t.threshold))
    assert LOW <= observed <= HIGH, observed


def test_ks_bootstrap_threshold_holds_rate_on_stationary_stream() -> None:
    rng = np.random.default_rng(30)
    reference = rng.normal(size=50_000)
    t = threshold_from_null(bootstrap_ks_statistics(reference, 1000, n_boot=2000, seed=31), RATE)
    stats = ks_statistics(reference, rng.normal(size=(2000, 1000)))
    observed = float(np.mean(stats > t.threshold))
    assert LOW <= observed <= HIGH, observed


def test_callable_bootstrap_threshold_holds_rate_for_wasserstein() -> None:
    rng = np.random.default_rng(40)
    reference = rng.normal(size=4000)
    m = 40
    null = bootstrap_statistics(reference, m, wasserstein_distance, n_boot=2000, seed=41, resample_reference=True)
    t = threshold_from_null(null, RATE)
    windows = rng.normal(size=(2000, m))
    observed = float(np.mean([wasserstein_distance(reference, w) > t.threshold for w in windows]))
    assert LOW <= observed <= HIGH, observed


def test_chunk_threshold_holds_rate_on_stationary_stream() -> None:
    rng = np.random.default_rng(50)
    m = 500
    reference = rng.normal(size=2000 * m)  # 2,000 chunks: enough for the quantile rule at 0.01
    edges = _quantile_edges(reference, 10)
    null = chunk_histogram_statistics(reference, edges, m, "psi")
    t = threshold_from_null(null, RATE)
    ref_counts = _histograms(reference[None, :], edges)[0]
    stats = histogram_statistics(ref_counts, _histograms(rng.normal(size=(2000, m)), edges), "psi")
    observed = float(np.mean(stats > t.threshold))
    assert LOW <= observed <= HIGH, observed


def test_finite_reference_correction() -> None:
    """With the reference as small as the window, the plain bootstrap alarms far too often; the correction does not.

    Averaged over 400 references of 1,000 values (5 fresh windows each), as
    the correction targets the rate over references.
    """
    rng = np.random.default_rng(60)
    n = m = 1000
    plain, corrected = [], []
    for r in range(400):
        reference = rng.normal(size=n)
        edges = _quantile_edges(reference, 10)
        ref_counts = _histograms(reference[None, :], edges)[0]
        stats = histogram_statistics(ref_counts, _histograms(rng.normal(size=(5, m)), edges), "psi")
        for flag, out in ((False, plain), (True, corrected)):
            null = bootstrap_histogram_statistics(ref_counts, m, "psi", n_boot=2000, seed=r, resample_reference=flag)
            out.extend(stats > threshold_from_null(null, RATE).threshold)
    assert np.mean(plain) > 0.1
    assert LOW <= np.mean(corrected) <= HIGH, np.mean(corrected)


def test_quarter_sd_shift_flagged_by_ks_at_5000() -> None:
    rng = np.random.default_rng(70)
    reference = rng.normal(size=100_000)
    t = threshold_from_null(bootstrap_ks_statistics(reference, 5000, n_boot=2000, seed=71), RATE)
    # the threshold is applied to scipy's statistic, as the detectors compute it
    flagged = [ks_2samp(reference, rng.normal(0.25, 1.0, size=5000)).statistic > t.threshold for _ in range(100)]
    assert np.mean(flagged) >= 0.95


# ----------------------------------------------------------------------------- reference chunks


def test_chunk_statistics_golden() -> None:
    ref = np.arange(10.0)

    def stat(base: np.ndarray, chunk: np.ndarray) -> float:
        return float(chunk.mean() - base.mean())

    # chunk means 0.5, 2.5, ..., 8.5; rest means (45 - chunk sum) / 8
    np.testing.assert_allclose(chunk_statistics(ref, 2, stat), [-5.0, -2.5, 0.0, 2.5, 5.0])
    np.testing.assert_allclose(chunk_statistics(ref, 2, stat, against="whole"), [-4.0, -2.0, 0.0, 2.0, 4.0])
    # an 11th value forms no chunk but stays in the base: rest means (145 - chunk sum) / 9
    with_tail = np.append(ref, 100.0)
    expected = [c - (145 - 2 * c) / 9 for c in (0.5, 2.5, 4.5, 6.5, 8.5)]
    np.testing.assert_allclose(chunk_statistics(with_tail, 2, stat), expected)
    with pytest.raises(ValueError, match="at least 5"):
        chunk_statistics(ref, 3, stat)
    with pytest.raises(ValueError, match="against"):
        chunk_statistics(ref, 2, stat, against="others")


def test_chunk_histogram_equals_callable_path() -> None:
    rng = np.random.default_rng(80)
    reference = rng.gamma(2.0, size=5_030)
    edges = _quantile_edges(reference, 8)

    def psi_of(base: np.ndarray, chunk: np.ndarray) -> float:
        return psi(_histograms(base[None, :], edges)[0], _histograms(chunk[None, :], edges)[0])

    for against in ("rest", "whole"):
        fast = chunk_histogram_statistics(reference, edges, 500, "psi", against=against)
        slow = chunk_statistics(reference, 500, psi_of, against=against)
        assert fast.shape == (10,)
        np.testing.assert_allclose(fast, slow, rtol=1e-12)
    with pytest.raises(ValueError, match="edges"):
        chunk_histogram_statistics(reference, [0.0, 1.0], 500, "psi")


def test_chunks_see_reference_seasonality_that_the_bootstrap_misses() -> None:
    rng = np.random.default_rng(90)
    m = 200
    t_index = np.arange(100 * m)
    # a daily cycle of 0.5 sd over 20 windows
    reference = rng.normal(size=t_index.size) + 0.5 * np.sin(2 * np.pi * t_index / (20 * m))
    edges = _quantile_edges(reference, 10)
    ref_counts = _histograms(reference[None, :], edges)[0]
    chunks = threshold_from_null(chunk_histogram_statistics(reference, edges, m, "psi"), 0.05, rule="normal")
    boot = threshold_from_null(bootstrap_histogram_statistics(ref_counts, m, "psi", n_boot=2000, seed=91), 0.05)
    assert chunks.threshold > 2 * boot.threshold


# ----------------------------------------------------------------------------- k of n alarm policy


def test_k_of_n_exact_sequence_skip() -> None:
    a = KOfNAlarm(2, 3)
    seq = [False, True, None, None, False, True, False, False, True, True, None, False, False]
    fired = [a.update(x) for x in seq]
    # decided windows only: F T F T F F T T F F ; 2 of the last 3 decided
    assert fired == [False, False, False, False, False, True, False, False, False, True, True, True, False]
    assert a.slots == (True, False, False)


def test_k_of_n_exact_sequence_occupy() -> None:
    a = KOfNAlarm(2, 3, on_insufficient="occupy")
    seq = [True, True, None, None, True, None, True]
    assert [a.update(x) for x in seq] == [False, True, True, False, False, False, True]
    assert a.slots == (True, None, True)


def test_k_of_n_warm_up_and_one_of_one() -> None:
    a = KOfNAlarm(3, 5)
    assert [a.update(True) for _ in range(3)] == [False, False, True]
    b = KOfNAlarm(1, 1)
    assert [b.update(x) for x in [True, False, None, True]] == [True, False, False, True]
    assert KOfNAlarm(2, 2).update(np.bool_(True)) is False


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (-1, 2), (1.5, 3), (True, 2)])
def test_k_of_n_validation(k: object, n: object) -> None:
    with pytest.raises(ValueError, match="k"):
        KOfNAlarm(k, n)  # type: ignore[arg-type]


def test_k_of_n_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="on_insufficient"):
        KOfNAlarm(1, 2, on_insufficient="count")
    with pytest.raises(ValueError, match="decision"):
        KOfNAlarm(1, 2).update(1)  # type: ignore[arg-type]


def test_k_of_n_state_survives_restart() -> None:
    seq = [True, None, False, True, None, True, False, False, True]
    for policy in ("skip", "occupy"):
        whole = KOfNAlarm(3, 4, on_insufficient=policy)
        expected = [whole.update(x) for x in seq]
        first = KOfNAlarm(3, 4, on_insufficient=policy)
        got = [first.update(x) for x in seq[:5]]
        restored = KOfNAlarm.from_dict(json.loads(json.dumps(first.to_dict())))
        assert restored == first
        got += [restored.update(x) for x in seq[5:]]
        assert got == expected


def test_k_of_n_from_dict_validation() -> None:
    with pytest.raises(ValueError, match="more than n"):
        KOfNAlarm.from_dict({"k": 1, "n": 2, "slots": [True, True, False]})
    with pytest.raises(ValueError, match="invalid slot"):
        KOfNAlarm.from_dict({"k": 1, "n": 2, "slots": [None]})  # None only under "occupy"
    with pytest.raises(ValueError, match="missing 'slots'"):
        KOfNAlarm.from_dict({"k": 1, "n": 2})
    with pytest.raises(ValueError, match="k"):
        KOfNAlarm.from_dict({"k": 3, "n": 2, "slots": []})


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    st.lists(st.sampled_from([True, False, None]), max_size=40),
    st.sampled_from(["skip", "occupy"]),
)
def test_k_of_n_matches_brute_force(kn: tuple[int, int], seq: list[bool | None], policy: str) -> None:
    k, n = kn
    a = KOfNAlarm(k, n, on_insufficient=policy)
    kept: list[bool | None] = []
    for x in seq:
        if x is not None or policy == "occupy":
            kept.append(x)
        assert a.update(x) == (sum(1 for s in kept[-n:] if s is True) >= k)


def test_firing_rate_golden_and_scipy() -> None:
    # 2 of 3 at r: 3 r^2 (1 - r) + r^3
    assert firing_rate(2, 3, 0.05) == pytest.approx(3 * 0.05**2 * 0.95 + 0.05**3, rel=1e-12)
    assert firing_rate(2, 3, 0.05) == pytest.approx(0.00725, rel=1e-12)
    assert firing_rate(1, 1, 0.01) == pytest.approx(0.01, rel=1e-12)
    assert firing_rate(3, 3, 0.1) == pytest.approx(0.001, rel=1e-12)
    assert firing_rate(3, 5, 0.2) == binom.sf(2, 5, 0.2)
    assert firing_rate(2, 3, 0.0) == 0.0 and firing_rate(2, 3, 1.0) == 1.0
    with pytest.raises(ValueError, match="rate"):
        firing_rate(2, 3, 1.5)


def test_per_window_rate_inverts_firing_rate() -> None:
    r = per_window_rate(2, 3, 0.005)
    assert r == pytest.approx(0.041400, abs=5e-7)
    assert firing_rate(2, 3, r) == pytest.approx(0.005, rel=1e-9)
    assert per_window_rate(1, 1, 0.01) == pytest.approx(0.01, rel=1e-9)
    with pytest.raises(ValueError, match="target"):
        per_window_rate(2, 3, 0.0)


@pytest.mark.parametrize(("k", "n", "r"), [(2, 3, 0.1), (3, 5, 0.2), (1, 4, 0.05)])
def test_stationary_firing_rate_matches_binomial_tail(k: int, n: int, r: float) -> None:
    rng = np.random.default_rng(100 + k * 10 + n)
    decisions = rng.random(200_000) < r
    a = KOfNAlarm(k, n)
    fired = np.array([a.update(bool(d)) for d in decisions])[n - 1 :]  # after the warm-up
    expected = binom.sf(k - 1, n, r)
    # overlapping windows are correlated, so allow a few independent-case standard errors
    se = math.sqrt(expected * (1 - expected) / fired.size)
    assert abs(fired.mean() - expected) < 6 * n * se, (fired.mean(), expected)
