"""Detection quality: false alarms on stationary windows, detection delay after injected drift.

Every window is judged twice on the same rows: by our recommended default
(``build_profile(window, reference=reference_profile)``, :func:`detectors.drift.compare` with
``DriftConfig()``, :func:`detectors.drift.dataset_drift` with its defaults) and by Evidently
0.7.23's default rule (:func:`detectors.evidently_rule.evidently_dataset_drift`, proved equal to
Evidently's ``DataDriftPreset`` by ``tests/test_evidently_parity.py``). For Evidently two verdicts
are kept: its dataset verdict (at least half of the columns drifted, its default), and "any
column drifted" under its per-column thresholds, which is what a user who alerts on any
column would see.

Windows are independent draws; each task derives its generator from the run seed and its own
index, so the results do not depend on how many worker processes share the work.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.drift import DriftConfig, compare, dataset_drift
from detectors.evidently_rule import evidently_dataset_drift
from detectors.profile import Profile, build_profile

from . import synthetic
from .evidently_precomputed import EvidentlyReference
from .table import render, verdict

#: Targets of issue 3 at our defaults.
MAX_FALSE_ALARMS_PER_1000 = 5.0
SCENARIOS: tuple[tuple[str, dict[str, float], float | None], ...] = (
    # (label, drift injected into every window after the change, target median delay)
    (f"mean shift 0.10 sd ({synthetic.SHIFT_COLUMN})", {"mean_shift": 0.10}, 3.0),
    (f"mean shift 0.25 sd ({synthetic.SHIFT_COLUMN})", {"mean_shift": 0.25}, 1.0),
    (f"mean shift 0.50 sd ({synthetic.SHIFT_COLUMN})", {"mean_shift": 0.50}, None),
    (f"share of '{synthetic.CATEGORY_GAINING}' in {synthetic.CATEGORY_COLUMN} +0.05 (0.15 -> 0.20)",
     {"category_shift": 0.05}, None),
)


@dataclass(frozen=True)
class QualityConfig:
    """Sizes of the quality run.

    Attributes:
        window: rows per current window.
        reference: rows of the synthetic reference (the real reference is the demo's
            training half of 2015, 34,392 rows).
        stationary: synthetic stationary windows.
        real_windows: windows from the real dataset's stable period.
        trials: drift episodes per scenario.
        horizon: windows watched after the change; a detector silent for all of them
            scores "never".
        seed: run seed.
        workers: processes (1 runs in this process).
    """

    window: int = 5_000
    reference: int = 50_000
    stationary: int = 1_000
    real_windows: int = 1_000
    trials: int = 50
    horizon: int = 10
    seed: int = 20260101
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


QUICK = QualityConfig(reference=20_000, stationary=100, real_windows=50, trials=10, horizon=5)


# --------------------------------------------------------------------------- evaluation


def ours_drifted(reference_profile: Profile, frame: pd.DataFrame, cfg: DriftConfig = DriftConfig()) -> bool:
    """Our dataset verdict for one window at the defaults (insufficient data counts as no alarm)."""
    current = build_profile(frame, reference=reference_profile)
    return bool(dataset_drift(compare(reference_profile, current, cfg)).drifted)


def evidently_drifted(reference: EvidentlyReference | pd.DataFrame, frame: pd.DataFrame) -> tuple[bool, bool]:
    """Evidently's default rule on one window: (dataset verdict, any column drifted)."""
    if isinstance(reference, EvidentlyReference):
        results, _share, drifted = reference.dataset(frame)
    else:
        results, _share, drifted = evidently_dataset_drift(reference, frame)
    return drifted, any(r.drifted for r in results)


# Per process: name -> (Evidently reference, our reference profile, pool of rows or None).
_STATE: dict[str, tuple[EvidentlyReference, Profile, pd.DataFrame | None]] = {}
_CFG: list[QualityConfig] = []


def real_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stable period of the demo dataset: (reference, pool of current rows).

    Reference: the training half of 2015 (34,392 rows); pool: the hold-out half (34,393
    rows, disjoint from it; both are random halves of the shuffled 2015 rows, see
    :mod:`inferwatch.demo`). Features: ``AGEP`` (float32, numeric) and the 15 ACS codes as
    strings (categorical), as the demo's records carry them.
    """
    from inferwatch import demo

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[list(demo.FEATURES)].copy()
        for c in demo.CODE_COLUMNS:
            out[c] = out[c].astype(np.int64).astype(str)
        return out.reset_index(drop=True)

    return features(demo.training_frame()), features(demo.holdout_frame())


def _setup(cfg: QualityConfig, real: bool) -> None:
    _CFG[:] = [cfg]
    ref = synthetic.window(np.random.default_rng([cfg.seed, 0]), cfg.reference)
    _STATE["synthetic"] = (EvidentlyReference(ref), build_profile(ref), None)
    if real:
        ref, pool = real_frames()
        _STATE["real"] = (EvidentlyReference(ref), build_profile(ref), pool)


def _stationary(task: tuple[str, int]) -> tuple[bool, bool, bool]:
    source, i = task
    cfg = _CFG[0]
    ref, ref_profile, pool = _STATE[source]
    if source == "synthetic":
        frame = synthetic.window(np.random.default_rng([cfg.seed, 1, i]), cfg.window)
    else:
        assert pool is not None
        # Rows without replacement within the window; windows are independent draws.
        rows = np.random.default_rng([cfg.seed, 2, i]).choice(len(pool), cfg.window, replace=False)
        frame = pool.iloc[np.sort(rows)].reset_index(drop=True)
    return (ours_drifted(ref_profile, frame), *evidently_drifted(ref, frame))


def _trial(task: tuple[int, int]) -> tuple[float, float, float]:
    """Delays (1-based window, inf when silent over the horizon) of ours, Evidently, Evidently any column."""
    scenario, trial = task
    cfg = _CFG[0]
    ref, ref_profile, _ = _STATE["synthetic"]
    rng = np.random.default_rng([cfg.seed, 3, scenario, trial])
    delays = [math.inf, math.inf, math.inf]
    for w in range(1, cfg.horizon + 1):
        frame = synthetic.window(rng, cfg.window, **SCENARIOS[scenario][1])
        if math.isinf(delays[0]) and ours_drifted(ref_profile, frame):
            delays[0] = w
        if math.isinf(delays[1]) or math.isinf(delays[2]):
            dataset, any_column = evidently_drifted(ref, frame)
            if dataset and math.isinf(delays[1]):
                delays[1] = w
            if any_column and math.isinf(delays[2]):
                delays[2] = w
        if not any(math.isinf(d) for d in delays):
            break
    return delays[0], delays[1], delays[2]


def _run(fn: Callable, tasks: Sequence, workers: int) -> list:
    if workers <= 1:
        return [fn(t) for t in tasks]
    # fork: the workers inherit the references built by _setup.
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(fn, tasks, chunksize=max(1, len(tasks) // (8 * workers)))


# --------------------------------------------------------------------------- report


@dataclass
class QualityResult:
    """Raw outcomes: per source the stationary verdicts, per scenario the trial delays."""

    cfg: QualityConfig
    stationary: dict[str, np.ndarray]  # source -> bool array (windows, 3)
    delays: list[np.ndarray]  # per scenario, float array (trials, 3), inf = never

    def false_alarms_per_1000(self, source: str) -> np.ndarray:
        """Alarms per 1,000 windows: ours, Evidently dataset, Evidently any column."""
        v = self.stationary[source]
        return 1000.0 * v.mean(axis=0)

    def median_delays(self, scenario: int) -> np.ndarray:
        return np.median(self.delays[scenario], axis=0)


def run_quality(cfg: QualityConfig = QualityConfig(), real: bool = True) -> QualityResult:
    """Run the stationary and drift scenarios (see the module docstring)."""
    _setup(cfg, real)
    tasks = [("synthetic", i) for i in range(cfg.stationary)]
    if real:
        tasks += [("real", i) for i in range(cfg.real_windows)]
    verdicts = np.array(_run(_stationary, tasks, cfg.workers), dtype=bool).reshape(-1, 3)
    stationary = {"synthetic": verdicts[: cfg.stationary]}
    if real:
        stationary["real"] = verdicts[cfg.stationary:]
    trials = [(s, t) for s in range(len(SCENARIOS)) for t in range(cfg.trials)]
    delays = np.array(_run(_trial, trials, cfg.workers), dtype=float).reshape(len(SCENARIOS), cfg.trials, 3)
    return QualityResult(cfg, stationary, list(delays))


def _pct(x: np.ndarray) -> str:
    return f"{100.0 * float(np.mean(x)):.0f}%"


def report(result: QualityResult) -> str:
    """The two tables: false alarms, and detection delay."""
    cfg = result.cfg
    rows = []
    labels = {
        "synthetic": f"synthetic, 25 features, reference {cfg.reference:,} rows",
        "real": "ACS 2015 hold-out half vs training half, 16 features",
    }
    for source, v in result.stationary.items():
        ours, ev, ev_any = result.false_alarms_per_1000(source)
        rows.append([labels[source], len(v), ours, ev, ev_any, f"<= {MAX_FALSE_ALARMS_PER_1000:g}",
                     verdict(ours <= MAX_FALSE_ALARMS_PER_1000)])
    fa = render(
        f"False alarms per 1,000 stationary windows of {cfg.window:,} rows",
        ["stream", "windows", "ours", "Evidently", "Evidently any column", "target (ours)", "result"],
        rows,
    )
    rows = []
    for s, (label, _, target) in enumerate(SCENARIOS):
        d = result.delays[s]
        med = result.median_delays(s)
        rows.append([label, len(d), med[0], _pct(d[:, 0] <= 1), _pct(d[:, 0] <= 3), med[1], med[2],
                     "-" if target is None else f"median <= {target:g}",
                     "-" if target is None else verdict(med[0] <= target)])
    dl = render(
        f"Detection delay in windows (1 = first drifted window; never = silent for {cfg.horizon} windows)",
        ["drift", "trials", "ours median", "ours at 1", "ours by 3", "Evidently median",
         "Evidently any column median", "target (ours)", "result"],
        rows,
    )
    return fa + "\n\n" + dl
