"""Distances between the reference and the current window.

PSI and the Jensen–Shannon distance compare two histograms over the same bins
(numeric) or the same categories (categorical); the normalised Wasserstein
distance compares two raw samples. All are effect sizes: unlike a p-value they
do not shrink toward "drift" as the windows grow.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from ._checks import finite_sample

#: Default smallest bin proportion used by :func:`psi`.
PSI_EPS = 1e-4

#: Default floor for the reference standard deviation in
#: :func:`wasserstein_normalised`, in the column's own units.
STD_FLOOR = 1e-12


def _proportions(ref_counts: ArrayLike, cur_counts: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two count vectors over the same bins and turn them into proportions."""
    p = np.asarray(ref_counts, dtype=np.float64)
    q = np.asarray(cur_counts, dtype=np.float64)
    if p.ndim != 1 or p.shape != q.shape or p.size == 0:
        raise ValueError(f"need two non-empty 1-D count vectors of equal length, got shapes {p.shape} and {q.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))) or np.any(p < 0) or np.any(q < 0):
        raise ValueError("counts must be finite and non-negative")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("both windows need at least one counted value")
    return p / p.sum(), q / q.sum()


def psi(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = PSI_EPS) -> float:
    """Population Stability Index of the current window against the reference.

    ``PSI = sum_i (q_i - p_i) * ln(q_i / p_i)`` where ``p_i`` / ``q_i`` are the
    reference / current proportions in bin ``i`` (Siddiqi, *Credit Risk
    Scorecards*, 2006; Yurdakul, *Statistical properties of the population
    stability index*, 2018). It is the symmetrised Kullback–Leibler
    divergence (Jeffreys divergence), in nats. Usual reading: < 0.1 stable,
    0.1–0.25 moderate shift, > 0.25 major shift.

    Empty bins would make ``ln`` infinite, so both proportion vectors are
    clipped from below at ``eps`` (not renormalised afterwards). The default
    1e-4 leaves every non-empty bin of a window of up to 10,000 values
    untouched (one value is already >= 1e-4 of it), so only truly empty bins
    are smoothed, and it bounds a single bin's term by about
    ``ln(1 / 1e-4) = 9.2``. A bin empty on both sides contributes 0.

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.
        eps: smallest proportion, ``0 < eps < 1``.

    Returns:
        PSI >= 0 (0 for identical proportions), finite.

    Raises:
        ValueError: shapes differ or are empty, counts negative/non-finite, a
            window has a zero total, or ``eps`` outside ``(0, 1)``.
    """
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    p, q = _proportions(ref_counts, cur_counts)
    p = np.maximum(p, eps)
    q = np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Jensen–Shannon distance, base 2, between two histograms.

    This is the *distance*, i.e. the square root of the Jensen–Shannon
    divergence (Lin, *Divergence measures based on the Shannon entropy*,
    1991; the square root is a metric: Endres & Schindelin, 2003)::

        m = (p + q) / 2
        JSD = (KL(p || m) + KL(q || m)) / 2      with log base 2
        distance = sqrt(JSD)

    where ``p`` / ``q`` are the reference / current proportions. Computed by
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``; empty bins need
    no smoothing (``0 * log 0 = 0``).

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.

    Returns:
        Distance in ``[0, 1]``: 0 for identical proportions, 1 when the two
        histograms share no bin. Symmetric in its arguments.

    Raises:
        ValueError: shapes differ or are empty, counts negative/non-finite, or
            a window has a zero total.
    """
    p, q = _proportions(ref_counts, cur_counts)
    d = float(jensenshannon(p, q, base=2))
    # Rounding can leave the divergence a hair below 0 (sqrt -> NaN) or the
    # distance a hair above 1.
    if math.isnan(d):
        return 0.0
    return min(max(d, 0.0), 1.0)


def wasserstein_normalised(
    ref_sample: ArrayLike,
    cur_sample: ArrayLike,
    ref_std: float | None,
    std_floor: float = STD_FLOOR,
) -> float:
    """Wasserstein-1 distance between two samples, in reference standard deviations.

    ``W1 = integral |F_ref(x) - F_cur(x)| dx`` over the two empirical CDFs
    (Kantorovich 1942; Vaserstein 1969), computed by
    ``scipy.stats.wasserstein_distance``, then divided by
    ``max(ref_std, std_floor)``. Dividing by the reference spread makes the
    number comparable across columns: 0.1 means "the mass moved one tenth of
    a reference standard deviation on average".

    A constant reference column has ``std == 0``; the floor (default 1e-12,
    absolute, in the column's units) keeps the result finite. Then an
    unchanged current window gives 0 and any departure from the constant
    gives a very large but finite value (``W1 / 1e-12``), which is the honest
    reading: the column moved by infinitely many reference deviations. A
    ``ref_std`` of None (fewer than two reference values) is treated as 0.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.
        ref_std: standard deviation of the reference column, >= 0, or None.
        std_floor: smallest divisor, > 0.

    Returns:
        Normalised distance >= 0, finite for finite inputs.

    Raises:
        ValueError: empty or non-1-D samples, non-finite values, ``ref_std``
            negative or NaN, ``std_floor`` not > 0.
    """
    if not std_floor > 0:
        raise ValueError(f"std_floor must be > 0, got {std_floor}")
    if ref_std is not None and (math.isnan(ref_std) or ref_std < 0):
        raise ValueError(f"ref_std must be >= 0, got {ref_std}")
    u = finite_sample(ref_sample, "ref_sample")
    v = finite_sample(cur_sample, "cur_sample")
    scale = max(ref_std or 0.0, std_floor)
    return float(wasserstein_distance(u, v)) / scale

