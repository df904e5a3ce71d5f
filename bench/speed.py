"""Evaluation speed: our drift check against Evidently's default data-drift report, same frames, same run.

A reference and a current window of ``rows`` rows each, 25 columns (20 numeric, 5
categorical, :mod:`bench.synthetic`), stationary. Timed:

- Evidently: ``evidently.Report([DataDriftPreset()]).run(current, reference)``, in-process,
  once (it is the slow side; its time is the baseline of the ratios);
- ours, the deployed path: ``build_profile(current, reference=reference_profile)``, then
  :func:`detectors.drift.compare` and :func:`detectors.drift.dataset_drift` at the defaults,
  against a reference profile built beforehand (the service stores it);
- ours including ``build_profile(reference)``.

Ours is the median of ``repeats`` runs, wall-clock (``time.perf_counter``). When the deployed
path misses the target, the report adds a cProfile of it: where the time goes.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from dataclasses import dataclass

import numpy as np

from detectors.drift import compare, dataset_drift
from detectors.profile import build_profile

from . import synthetic
from .table import render, verdict

#: Target of issue 3: the deployed path in at most this share of Evidently's time.
MAX_RATIO = 1 / 100


@dataclass(frozen=True)
class SpeedConfig:
    """rows: rows of each window; repeats: runs of ours (median reported); seed: data seed."""

    rows: int = 1_000_000
    repeats: int = 3
    seed: int = 7
    profile_top: int = 12


QUICK = SpeedConfig(rows=50_000)


@dataclass
class SpeedResult:
    cfg: SpeedConfig
    evidently: float  # seconds
    reference_profile: float
    current_profile: float
    compare: float
    drifted: bool | None
    evidently_drifted: bool | None
    profile: str | None  # cProfile of the deployed path, when it misses the target

    @property
    def deployed(self) -> float:
        return self.current_profile + self.compare

    @property
    def with_reference(self) -> float:
        return self.reference_profile + self.deployed


def run_evidently(reference, current) -> tuple[float, bool | None]:
    """Seconds of Evidently's default data-drift report, and its dataset verdict."""
    import inferwatch  # noqa: F401  (sets DO_NOT_TRACK before Evidently is imported)
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current, reference)
    seconds = time.perf_counter() - t0
    drifted = None
    for metric in snapshot.dict().get("metrics", []):
        if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
            drifted = bool(metric["value"]["share"] >= metric["config"]["drift_share"])
    return seconds, drifted


def _deployed(reference_profile, current):
    return dataset_drift(compare(reference_profile, build_profile(current, reference=reference_profile)))


def run_speed(cfg: SpeedConfig = SpeedConfig()) -> SpeedResult:
    rng = np.random.default_rng(cfg.seed)
    reference = synthetic.window(rng, cfg.rows)
    current = synthetic.window(rng, cfg.rows)
    ev_seconds, ev_drifted = run_evidently(reference, current)
    ref_t, cur_t, cmp_t = [], [], []
    drifted = None
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        ref_profile = build_profile(reference)
        t1 = time.perf_counter()
        cur_profile = build_profile(current, reference=ref_profile)
        t2 = time.perf_counter()
        drifted = dataset_drift(compare(ref_profile, cur_profile)).drifted
        t3 = time.perf_counter()
        ref_t.append(t1 - t0)
        cur_t.append(t2 - t1)
        cmp_t.append(t3 - t2)
    result = SpeedResult(cfg, ev_seconds, statistics.median(ref_t), statistics.median(cur_t),
                         statistics.median(cmp_t), drifted, ev_drifted, None)
    if result.deployed > MAX_RATIO * ev_seconds and cfg.profile_top:
        prof = cProfile.Profile()
        prof.runcall(_deployed, ref_profile, current)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(cfg.profile_top)
        result.profile = out.getvalue()
    return result


def report(r: SpeedResult) -> str:
    ev = r.evidently
    rows = [
        ["Evidently Report([DataDriftPreset()]).run", ev, 1.0, "", "", r.evidently_drifted],
        ["ours: window vs stored reference profile", r.deployed, r.deployed / ev, f"<= 1/{round(1 / MAX_RATIO)}",
         verdict(r.deployed <= MAX_RATIO * ev), r.drifted],
        ["  build_profile(current, reference=...)", r.current_profile, r.current_profile / ev, "", "", None],
        ["  compare + dataset_drift", r.compare, r.compare / ev, "", "", None],
        ["ours: including build_profile(reference)", r.with_reference, r.with_reference / ev, "", "", r.drifted],
        ["  build_profile(reference)", r.reference_profile, r.reference_profile / ev, "", "", None],
    ]
    table = render(
        f"Evaluation time: {r.cfg.rows:,}-row current window vs {r.cfg.rows:,}-row reference, "
        f"25 columns (ours: median of {r.cfg.repeats})",
        ["run", "seconds", "ratio to Evidently", "target", "result", "dataset drift"],
        rows,
    )
    if r.profile:
        table += "\n\nWhere the deployed path spends its time (cProfile, by own time):\n"
        table += "\n".join(line for line in r.profile.splitlines() if line.strip())
    return table
