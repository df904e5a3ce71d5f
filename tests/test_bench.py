"""The benchmark code paths at tiny sizes, so they keep running; timings are not asserted here."""

from __future__ import annotations

import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

os.environ.setdefault("DO_NOT_TRACK", "1")
# bench/ lives at the repository root and is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import collector, memory, quality, speed, synthetic  # noqa: E402
from bench.__main__ import main  # noqa: E402
from bench.evidently_precomputed import EvidentlyReference, wasserstein_sorted  # noqa: E402
from detectors.drift import compare  # noqa: E402
from detectors.evidently_rule import evidently_dataset_drift  # noqa: E402
from detectors.profile import build_profile  # noqa: E402

NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(NUMBER, line.split("  ", 1)[1])] if "  " in line else []


# ---------------------------------------------------------------- the synthetic stream


def test_window_has_the_documented_columns_and_kinds() -> None:
    frame = synthetic.window(np.random.default_rng(0), 2_000)
    assert list(frame.columns) == list(synthetic.COLUMNS)
    assert len(synthetic.NUMERIC) == 20 and len(synthetic.CATEGORICAL) == 5
    assert all(frame[c].dtype == np.float64 for c in synthetic.NUMERIC)
    assert all(pd.api.types.is_string_dtype(frame[c].dtype) for c in synthetic.CATEGORICAL)
    assert frame["num_18"].nunique() <= 5  # discrete column
    assert (frame["num_19"] == 0).mean() == pytest.approx(0.7, abs=0.05)  # zero-inflated


def test_mean_shift_moves_only_the_shift_column_by_that_many_sd() -> None:
    a = synthetic.window(np.random.default_rng(1), 200_000)
    b = synthetic.window(np.random.default_rng(1), 200_000, mean_shift=0.5)
    col = synthetic.SHIFT_COLUMN
    assert (b[col].mean() - a[col].mean()) / synthetic.SHIFT_SD == pytest.approx(0.5, abs=0.02)
    pd.testing.assert_frame_equal(a.drop(columns=col), b.drop(columns=col))


def test_shifted_shares_adds_delta_and_keeps_the_total() -> None:
    shares = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
    new = synthetic.shifted_shares(shares, 2, 0.05)
    np.testing.assert_allclose(new, [0.40 * 0.80 / 0.85, 0.25 * 0.80 / 0.85, 0.20, 0.12 * 0.80 / 0.85,
                                     0.08 * 0.80 / 0.85])
    assert new.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        synthetic.shifted_shares(shares, 2, 0.9)


# ---------------------------------------------------------------- Evidently with a precomputed reference


def test_wasserstein_sorted_equals_scipy_with_ties() -> None:
    rng = np.random.default_rng(2)
    ref = np.round(rng.normal(0, 1, 3_000), 1)  # many ties across both samples
    cur = np.round(rng.normal(0.2, 1.3, 700), 1)
    assert wasserstein_sorted(np.sort(ref), cur) == pytest.approx(wasserstein_distance(ref, cur), rel=1e-12)
    assert wasserstein_sorted(np.sort(ref), ref) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("drift", [{}, {"mean_shift": 0.3}, {"category_shift": 0.2}])
def test_precomputed_reference_equals_evidently_rule(drift: dict) -> None:
    rng = np.random.default_rng(3)
    ref = synthetic.window(rng, 4_000)
    cur = synthetic.window(rng, 1_500, **drift)
    cur.loc[:10, "num_03"] = np.nan  # cleaning of missing values on the current side
    fast, fast_share, fast_drifted = EvidentlyReference(ref).dataset(cur)
    slow, slow_share, slow_drifted = evidently_dataset_drift(ref, cur)
    assert (fast_share, fast_drifted) == (slow_share, slow_drifted)
    assert len(fast) == len(slow) == 25
    for a, b in zip(fast, slow):
        assert (a.column, a.column_type, a.stattest, a.drifted) == (b.column, b.column_type, b.stattest, b.drifted)
        assert math.isclose(a.statistic, b.statistic, rel_tol=1e-9, abs_tol=1e-12)
    if drift:
        assert any(r.drifted for r in fast)


def test_precomputed_reference_falls_back_for_small_references() -> None:
    rng = np.random.default_rng(4)
    ref, cur = synthetic.window(rng, 500), synthetic.window(rng, 300)
    fast = EvidentlyReference(ref).dataset(cur)
    slow = evidently_dataset_drift(ref, cur)
    assert [r.stattest for r in fast[0]] == [r.stattest for r in slow[0]]
    assert "ks" in {r.stattest for r in fast[0]}
    assert fast[1:] == slow[1:]


# ---------------------------------------------------------------- quality


def test_quality_run_tiny() -> None:
    cfg = quality.QualityConfig(reference=5_000, window=1_000, stationary=4, real_windows=3, trials=2, horizon=2,
                                workers=1)
    result = quality.run_quality(cfg)
    assert result.stationary["synthetic"].shape == (4, 3)
    assert result.stationary["real"].shape == (3, 3)
    assert len(result.delays) == len(quality.SCENARIOS)
    for d in result.delays:
        assert d.shape == (2, 3)
        assert np.all((d >= 1) & (d <= 2) | np.isinf(d))
    # 0.5 sd on 1,000 rows against 5,000: flagged at once by ours.
    assert result.median_delays(2)[0] == 1
    text = quality.report(result)
    lines = text.splitlines()
    assert sum(line.startswith("synthetic") or line.startswith("ACS 2015") for line in lines) == 2
    assert sum(line.startswith(("mean shift", "share of")) for line in lines) == 4
    for line in lines:
        if line.startswith(("synthetic", "ACS 2015")):
            assert all(math.isfinite(x) for x in _numbers(line))
            assert line.rstrip().endswith(("PASS", "FAIL"))


def test_real_frames_are_disjoint_halves_of_2015() -> None:
    ref, pool = quality.real_frames()
    assert (len(ref), len(pool)) == (34_392, 34_393)
    assert ref["AGEP"].dtype == np.float32 and pd.api.types.is_string_dtype(ref["SCHL"].dtype)


# ---------------------------------------------------------------- speed and memory


def test_speed_run_tiny() -> None:
    result = speed.run_speed(speed.SpeedConfig(rows=3_000, repeats=1, profile_top=5))
    for seconds in (result.evidently, result.reference_profile, result.current_profile, result.compare):
        assert math.isfinite(seconds) and seconds > 0
    assert result.drifted is False and result.evidently_drifted is False
    text = speed.report(result)
    for label in ("Evidently Report", "ours: window vs stored reference profile", "ours: including"):
        line = next(line for line in text.splitlines() if line.startswith(label))
        assert all(math.isfinite(x) for x in _numbers(line))


def test_memory_run_tiny() -> None:
    result = memory.run_memory(memory.MemoryConfig(rows=(3_000, 9_000), chunk=1_000))
    assert all(p > 0 for p in result.peaks) and math.isfinite(result.ratio)
    assert result.chunk_bytes > 0
    text = memory.report(result)
    assert "ratio of the peaks" in text and "docstring bound" in text and "working memory" in text


def test_state_bound_follows_the_docstring_formula() -> None:
    # 20 numeric columns: 2*16*50,000 + 8*(600 + log2 n) + 16*22 bytes; 5 categorical: (100 + 7) * 800.
    n = 2**20
    expected = 20 * (1_600_000 + 8 * (600 + 20) + 352) + 5 * 107 * 800
    assert memory.state_bound(n) == expected


def test_main_prints_one_section(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "QUICK", memory.MemoryConfig(rows=(2_000, 4_000), chunk=1_000))
    main(["--quick", "--only", "memory"])
    out = capsys.readouterr().out
    assert "Peak memory" in out and "Evaluation time" not in out


# ---------------------------------------------------------------- collector throughput


def test_collector_records_follow_the_record_format() -> None:
    import json

    from collector.decode import decode_json_batch
    from collector.message import Message

    pool = collector.record_pool(50, seed=3)
    values = list(collector.records(1, 200, 3, 1_700_000_000_000, pool))
    assert len(values) == 67 and json.loads(values[0])["request_id"] == "req-1"
    batch = decode_json_batch([Message("t", 0, i, v) for i, v in enumerate(values)], 1 << 20, 1000)
    assert batch.rejected == [] and len(batch.frame) == 67
    features = [c for c in batch.frame.columns if c.startswith("features.")]
    assert len(features) == 25
    assert sum(batch.frame[c].dtype == np.float64 for c in features) == 20
    assert list(batch.frame["event_time_ms"][:2]) == [1_700_000_000_001, 1_700_000_000_004]
    assert set(batch.frame["predictions.approved"]) <= {"true", "false"}


@pytest.mark.kafka
def test_collector_run_tiny(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_BENCH_KAFKA", kafka_bootstrap)
    cfg = collector.CollectorConfig(records=4_000, partitions=2, producers=1, pool=300, oip_messages=20,
                                    timeout_s=240.0, max_poll_records=500)
    result = collector.run_collector_bench(cfg)
    assert result.bare.rate > 0 and result.collector.rate > 0 and math.isfinite(result.ratio)
    assert result.collector.samples[-1][1] == 4_000  # every record stored once, offsets included
    assert result.oip is not None and result.oip.rows == 20 * 64
    text = collector.report(result)
    for label in ("(a) bare", "(b) collector", "after 10%", "after 100%", "collector.formats"):
        line = next(line for line in text.splitlines() if line.startswith(label))
        assert all(math.isfinite(x) for x in _numbers(line))
