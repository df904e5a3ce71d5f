"""Distances between the reference and the current window.

On two histograms over the same bins (numeric) or the same categories
(categorical), given as count vectors: PSI, KL divergence, Jensen–Shannon
distance, Hellinger distance, total variation distance, L-infinity distance,
and Wasserstein-1 with bin positions as values. On two raw samples:
Wasserstein-1 (raw and in reference standard deviations) and energy
distance. All are effect sizes: unlike a p-value they do not shrink toward
"drift" as the windows grow.

Empty-bin smoothing (PSI and KL only, whose logarithms would be infinite):
proportions are clipped from below at ``eps``, default :data:`PSI_EPS` =
1e-4, configurable per call; the other distances need no smoothing.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr
from scipy.stats import energy_distance as _scipy_energy_distance
from scipy.stats import wasserstein_distance

from ._checks import finite_sample, merged_ecdf_counts

#: Default smallest bin proportion used by :func:`psi` and :func:`kl_divergence`.
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
    _check_eps(eps)
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


def _check_eps(eps: float) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")


def kl_divergence(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = PSI_EPS) -> float:
    """Kullback–Leibler divergence of the reference from the current window, in nats.

    ``KL(p || q) = sum_i p_i ln(p_i / q_i)`` with ``p`` / ``q`` the
    reference / current proportions (Kullback & Leibler, *On information and
    sufficiency*, 1951); the direction Evidently uses. Not symmetric and not
    a metric; ``psi = KL(p || q) + KL(q || p)`` with the same smoothing.

    Empty bins: both proportion vectors are clipped from below at ``eps``
    (default 1e-4, the same rule and default as :func:`psi`; not
    renormalised), so a bin that holds reference mass but no current mass
    contributes at most about ``p_i ln(p_i / 1e-4)`` instead of infinity.
    Terms are evaluated by ``scipy.special.rel_entr``.

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.
        eps: smallest proportion, ``0 < eps < 1``.

    Returns:
        KL >= 0 up to the smoothing (0 for identical proportions), finite.

    Raises:
        ValueError: as :func:`psi`.
    """
    _check_eps(eps)
    p, q = _proportions(ref_counts, cur_counts)
    return float(np.sum(rel_entr(np.maximum(p, eps), np.maximum(q, eps))))


def hellinger_distance(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Hellinger distance between two histograms (Hellinger 1909; Le Cam & Yang, *Asymptotics in Statistics*, 2000).

    ``H = sqrt(1 - sum_i sqrt(p_i q_i)) = ||sqrt(p) - sqrt(q)||_2 / sqrt(2)``;
    the second form is used (no cancellation when ``H`` is small). A metric;
    no smoothing needed.

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.

    Returns:
        Distance in ``[0, 1]``: 0 for identical proportions, 1 for disjoint supports.

    Raises:
        ValueError: as :func:`js_distance`.
    """
    p, q = _proportions(ref_counts, cur_counts)
    return min(float(np.linalg.norm(np.sqrt(p) - np.sqrt(q))) / math.sqrt(2.0), 1.0)


def total_variation_distance(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Total variation distance between two histograms: ``TV = sum_i |p_i - q_i| / 2``.

    The largest difference in probability the two windows assign to any set
    of bins (Levin, Peres & Wilmer, *Markov Chains and Mixing Times*, 2017,
    §4.1). A metric; no smoothing needed.

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.

    Returns:
        Distance in ``[0, 1]``: 0 for identical proportions, 1 for disjoint supports.

    Raises:
        ValueError: as :func:`js_distance`.
    """
    p, q = _proportions(ref_counts, cur_counts)
    return min(float(np.sum(np.abs(p - q))) / 2.0, 1.0)


def linf_distance(ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """L-infinity (Chebyshev) distance between two histograms: ``max_i |p_i - q_i|``.

    The largest change of a single bin's (category's) proportion.

    Args:
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape and bins.

    Returns:
        Distance in ``[0, 1]``.

    Raises:
        ValueError: as :func:`js_distance`.
    """
    p, q = _proportions(ref_counts, cur_counts)
    return float(np.max(np.abs(p - q)))


def wasserstein_histogram(positions: ArrayLike, ref_counts: ArrayLike, cur_counts: ArrayLike) -> float:
    """Wasserstein-1 distance between two histograms placed at given positions.

    Each bin is a point mass at ``positions[i]`` carrying the window's
    proportion in that bin, and ``W1 = integral |F_ref(x) - F_cur(x)| dx``
    over the two step CDFs; computed by
    ``scipy.stats.wasserstein_distance(positions, positions, p, q)``. The
    positions are the caller's choice of representative value per bin
    (e.g. bin midpoints, with the finite edge for open outer bins); the
    result is in their units.

    Args:
        positions: finite bin positions, shape ``(k,)`` (any order).
        ref_counts: counts per bin in the reference window, shape ``(k,)``,
            finite, >= 0, positive total.
        cur_counts: counts per bin in the current window, same shape.

    Returns:
        Distance >= 0, in the units of ``positions``.

    Raises:
        ValueError: as :func:`js_distance`, or ``positions`` not finite or of
            another length.
    """
    p, q = _proportions(ref_counts, cur_counts)
    x = finite_sample(positions, "positions")
    if x.shape != p.shape:
        raise ValueError(f"positions has shape {x.shape}, counts have shape {p.shape}")
    return float(wasserstein_distance(x, x, u_weights=p, v_weights=q))


def wasserstein(ref_sample: ArrayLike, cur_sample: ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples (Kantorovich 1942; Vaserstein 1969).

    ``W1 = integral |F_ref(x) - F_cur(x)| dx`` over the two empirical CDFs,
    by ``scipy.stats.wasserstein_distance``; in the column's units (see
    :func:`wasserstein_normalised` for a unit-free version).

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.

    Returns:
        Distance >= 0; for two constants ``a`` and ``b`` it is ``|a - b|``. Values near the
        float64 limit are rescaled by a power of two first; a distance beyond the largest
        double (about 1.8e308) is ``inf``, never NaN.

    Raises:
        ValueError: not 1-D or non-finite values.
        StatisticUndefined: an empty sample.
    """
    u = finite_sample(ref_sample, "ref_sample")
    v = finite_sample(cur_sample, "cur_sample")
    w, scale = _w1_scaled(u, v)
    return w * scale


# Above this magnitude differences of values can overflow float64.
_W1_SCALE_ABOVE = 2.0**500


def wasserstein_pair_sorted(
    ref_sorted: ArrayLike, cur_sorted: ArrayLike, ref_std: float | None, std_floor: float = STD_FLOOR
) -> tuple[float, float]:
    """:func:`wasserstein_pair` of two samples already in ascending order, without sorting them again.

    The merged values and the two CDFs come from one linear merge
    (:func:`detectors._checks.merged_ecdf_counts`) and the integral is evaluated with
    ``scipy.stats.wasserstein_distance``'s own arithmetic, so both numbers are identical to
    :func:`wasserstein_pair`'s (tests assert equality). Values beyond ``2**500`` in magnitude
    go through :func:`wasserstein_pair` itself.

    Args:
        ref_sorted: reference values, shape ``(n,)``, n >= 1, finite, ascending.
        cur_sorted: current values, shape ``(m,)``, m >= 1, finite, ascending.
        ref_std: standard deviation of the reference column, >= 0, or None.
        std_floor: smallest divisor, > 0.

    Returns:
        ``(W1, W1 / divisor)`` as :func:`wasserstein_pair`.

    Raises:
        ValueError: not 1-D or non-finite values (ordering is the caller's promise and is not
            checked), ``ref_std`` negative or NaN, ``std_floor`` not > 0.
        StatisticUndefined: an empty sample.
    """
    divisor = wasserstein_divisor(ref_std, std_floor)
    u = finite_sample(ref_sorted, "ref_sample")
    v = finite_sample(cur_sorted, "cur_sample")
    if max(abs(u[0]), abs(u[-1]), abs(v[0]), abs(v[-1])) > _W1_SCALE_ABOVE:
        return wasserstein_pair(u, v, ref_std, std_floor)
    merged, count_u, count_v = merged_ecdf_counts(u, v)
    w = _w1_from_cdfs(merged, count_u / u.size, count_v / v.size)
    return w, w / divisor


def _w1_from_cdfs(merged: np.ndarray, cdf_u: np.ndarray, cdf_v: np.ndarray) -> float:
    """``sum |F_u - F_v| * gap`` over the merged values but the last, as scipy's ``_cdf_distance`` sums it."""
    return float(np.vecdot(np.abs(cdf_u[:-1] - cdf_v[:-1]), np.diff(merged)))


def _w1_scaled(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """``(W1 / scale, scale)`` with ``scale`` a power of two chosen so the computation cannot overflow.

    W1 is positively homogeneous (``W1(cu, cv) = c W1(u, v)``) and dividing by a power of two
    is exact, so values near the float64 limit give the right distance instead of NaN.
    """
    m = max(float(np.max(np.abs(u))), float(np.max(np.abs(v))))
    scale = 1.0 if m <= _W1_SCALE_ABOVE else math.ldexp(1.0, min(math.frexp(m)[1], 1023))
    if scale == 1.0:
        return float(wasserstein_distance(u, v)), 1.0
    return float(wasserstein_distance(u / scale, v / scale)), scale


def wasserstein_pair(
    ref_sample: ArrayLike, cur_sample: ArrayLike, ref_std: float | None, std_floor: float = STD_FLOOR
) -> tuple[float, float]:
    """``(wasserstein(ref, cur), wasserstein_normalised(ref, cur, ref_std, std_floor))`` with one W1 computation.

    Raises:
        ValueError / StatisticUndefined: as the two functions.
    """
    _check_std(ref_std, std_floor)
    u = finite_sample(ref_sample, "ref_sample")
    v = finite_sample(cur_sample, "cur_sample")
    w, scale = _w1_scaled(u, v)
    # dividing in scaled units keeps a huge W1 over a huge std finite
    return w * scale, w / (wasserstein_divisor(ref_std, std_floor) / scale)


def wasserstein_divisor(ref_std: float | None, std_floor: float = STD_FLOOR) -> float:
    """The divisor of :func:`wasserstein_normalised`: ``ref_std``, or ``std_floor`` when that is 0 or None.

    The floor stands in only for a zero spread (a constant reference column), so a column in
    tiny units (std 1e-300) is still divided by its own spread.

    Raises:
        ValueError: ``ref_std`` negative or NaN, ``std_floor`` not > 0.
    """
    _check_std(ref_std, std_floor)
    return ref_std if ref_std else std_floor


def _check_std(ref_std: float | None, std_floor: float) -> None:
    if not std_floor > 0:
        raise ValueError(f"std_floor must be > 0, got {std_floor}")
    if ref_std is not None and (math.isnan(ref_std) or ref_std < 0):
        raise ValueError(f"ref_std must be >= 0, got {ref_std}")


def energy_distance(ref_sample: ArrayLike, cur_sample: ArrayLike) -> float:
    """Energy distance between two samples (Székely & Rizzo, *Energy statistics*, 2013).

    ``D = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` with ``X, X'`` drawn from
    the reference and ``Y, Y'`` from the current window (empirical
    expectations over all pairs). This is scipy's convention,
    ``scipy.stats.energy_distance``, which returns the square root of
    Székely's energy distance ``E``: ``D = sqrt(E)``. 0 only for identical
    empirical distributions. In the column's units. Cost is
    ``O((n + m) log(n + m))`` in one dimension.

    Args:
        ref_sample: reference values, shape ``(n,)``, n >= 1, finite.
        cur_sample: current values, shape ``(m,)``, m >= 1, finite.

    Returns:
        Distance >= 0; for two constants ``a`` and ``b`` it is ``sqrt(2 |a - b|)``.

    Raises:
        ValueError: not 1-D or non-finite values.
        StatisticUndefined: an empty sample.
    """
    u = finite_sample(ref_sample, "ref_sample")
    v = finite_sample(cur_sample, "cur_sample")
    return float(_scipy_energy_distance(u, v))


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
    ``ref_std`` (``std_floor`` when that is 0 or None). Dividing by the reference spread makes the
    number comparable across columns: 0.1 means "the mass moved one tenth of
    a reference standard deviation on average".

    A constant reference column has ``std == 0``; the floor (default 1e-12,
    absolute, in the column's units) replaces it then — and only then, so a
    column measured in tiny units (std 1e-300) is still divided by its own
    spread — and keeps the result finite. Then an
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
    return wasserstein_pair(ref_sample, cur_sample, ref_std, std_floor)[1]

