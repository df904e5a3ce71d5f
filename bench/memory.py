"""Peak memory of building a reference profile from a large source read in chunks.

``build_profile_chunks`` reads chunks of ``chunk`` rows of the 25-column synthetic stream
from a generator (re-created for its second pass), once for ``rows[0]`` and once for
``rows[1]`` rows. The peak is what ``tracemalloc`` saw allocated at once during the call:
Python objects and numpy arrays (numpy reports its buffers to tracemalloc). It includes the
chunk being read; it does not include memory Apache Arrow allocates for the string columns,
which tracemalloc cannot see.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors.profile import DEFAULT_KLL_K, DEFAULT_MAX_CATEGORIES, DEFAULT_SAMPLE_SIZE, build_profile_chunks

from . import synthetic
from .table import render, verdict

#: Peaks within this factor of each other count as independent of the row count.
MAX_PEAK_RATIO = 1.2


@dataclass(frozen=True)
class MemoryConfig:
    rows: tuple[int, int] = (1_000_000, 10_000_000)
    chunk: int = 100_000
    seed: int = 11


QUICK = MemoryConfig(rows=(100_000, 1_000_000), chunk=50_000)


def chunk_source(rows: int, chunk: int, seed: int):
    """``make_chunks`` for build_profile_chunks: the same chunks of the synthetic stream on every call."""

    def make() -> Iterator[pd.DataFrame]:
        rng = np.random.default_rng(seed)
        for start in range(0, rows, chunk):
            yield synthetic.window(rng, min(chunk, rows - start))

    return make


def state_bound(rows: int, n_bins: int = 10) -> int:
    """The bound ``build_profile_chunks``' docstring states for its state, in bytes, for this stream.

    Per numeric column ``2 * 16 * sample_size`` (sample and keys, doubled while merging) +
    ``8 * (3 * kll_k + log2(rows))`` (KLL) + ``16 * (2 * n_bins + 2)`` (edges and histogram);
    per categorical column ``(100 + longest label) * category_capacity`` with the default
    capacity ``4 * max_categories``. One chunk comes on top.
    """
    numeric = 2 * 16 * DEFAULT_SAMPLE_SIZE + 8 * (3 * DEFAULT_KLL_K + math.log2(rows)) + 16 * (2 * n_bins + 2)
    longest = max(len(str(v)) for labels, _ in synthetic.CATEGORIES.values() for v in labels)
    categorical = (100 + longest) * 4 * DEFAULT_MAX_CATEGORIES
    return int(synthetic.N_NUMERIC * numeric + synthetic.N_CATEGORICAL * categorical)


@dataclass
class MemoryResult:
    cfg: MemoryConfig
    peaks: tuple[int, int]  # bytes
    seconds: tuple[float, float]
    chunk_bytes: int  # one chunk as pandas counts it (deep), strings included

    @property
    def ratio(self) -> float:
        return self.peaks[1] / self.peaks[0]


def measure_peak(rows: int, chunk: int, seed: int) -> tuple[int, float]:
    """(peak bytes seen by tracemalloc, seconds) of one build_profile_chunks call."""
    make = chunk_source(rows, chunk, seed)
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        profile = build_profile_chunks(make)
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if profile.n_rows != rows:
        raise RuntimeError(f"profiled {profile.n_rows} rows, expected {rows}")
    return peak, seconds


def run_memory(cfg: MemoryConfig = MemoryConfig()) -> MemoryResult:
    small = measure_peak(cfg.rows[0], cfg.chunk, cfg.seed)
    large = measure_peak(cfg.rows[1], cfg.chunk, cfg.seed)
    one = synthetic.window(np.random.default_rng(cfg.seed), cfg.chunk)
    return MemoryResult(cfg, (small[0], large[0]), (small[1], large[1]), int(one.memory_usage(deep=True).sum()))


def report(r: MemoryResult) -> str:
    mb = 1e6
    rows = [
        [f"build_profile_chunks, {r.cfg.rows[0]:,} rows", r.peaks[0] / mb, r.seconds[0], "", ""],
        [f"build_profile_chunks, {r.cfg.rows[1]:,} rows", r.peaks[1] / mb, r.seconds[1], "", ""],
        ["ratio of the peaks", r.ratio, None, f"<= {MAX_PEAK_RATIO:g}", verdict(r.ratio <= MAX_PEAK_RATIO)],
        ["docstring bound on the state kept between chunks", state_bound(r.cfg.rows[1]) / mb, None, "", ""],
        [f"one chunk of {r.cfg.chunk:,} rows (pandas, deep)", r.chunk_bytes / mb, None, "", ""],
        ["peak - (state bound + one chunk): working memory", (max(r.peaks) - state_bound(r.cfg.rows[1])
                                                               - r.chunk_bytes) / mb, None, "", ""],
    ]
    return render(
        f"Peak memory of a reference profile built in chunks of {r.cfg.chunk:,} rows (tracemalloc)",
        ["measure", "MB", "seconds", "target", "result"],
        rows,
    )
