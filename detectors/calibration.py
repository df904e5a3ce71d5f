"""Drift thresholds calibrated to a false-alarm rate per window, from the reference alone.

A fixed threshold such as "PSI > 0.1" or "p < 0.05" fires at a rate that
depends on the window size, the number of bins and the column: on stable data
it can alarm every few windows or never. Here the threshold is instead the
``1 - rate`` quantile of the statistic's distribution when nothing has
changed (its *null distribution*), estimated from the reference:

- **Bootstrap** (Efron & Tibshirani, *An Introduction to the Bootstrap*,
  1993, ch. 6 and 16): draw ``B`` windows of the current window's size ``m``
  with replacement from the reference and compute the statistic of each
  against the reference. Assumes the windows are independent draws from the
  reference distribution.
- **Reference chunks in time order**: cut the ordered reference into
  consecutive chunks of ``m`` values and compute the statistic of each chunk
  against the rest of the reference. Keeps the reference's own slow
  variation (daily cycles, autocorrelation), which the bootstrap erases, so
  it gives the higher, more honest threshold when the stream is not i.i.d.

In both cases the statistic is compared with ``threshold`` and drift is
``statistic > threshold`` (strict), see :meth:`CalibratedThreshold.exceeded`.

Finite reference. A bootstrap window compared with the fixed reference
reproduces only the current window's sampling noise; in production the
reference is itself a sample of size ``n``, and its noise adds to the
statistic (for KS, ``D`` scales like ``sqrt(1/m + 1/n)`` instead of
``sqrt(1/m)``). The thresholds are then too low by a factor of about
``sqrt(1 + m/n)`` (``1 + m/n`` for PSI, which scales like a chi-square), so
the false-alarm rate is too high unless ``n >> m``. ``resample_reference=True``
corrects this: each replicate compares a bootstrap window with a bootstrap
reference of size ``n`` (the two-sample bootstrap under the null,
Efron & Tibshirani 1993, section 16.2), exactly for the histogram statistics
and the callable path, and by the asymptotic factor ``sqrt(1 + m/n)`` for the
fast KS path (Smirnov 1939: ``sqrt(nm/(n+m)) D`` and ``sqrt(m) D_one-sample``
share the Kolmogorov limit). The correction calibrates the rate averaged over
references; for one fixed reference the realised rate still varies around it.

Randomness comes only from ``numpy.random.default_rng(seed)`` with an explicit
seed, so the same inputs always give the same threshold.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import rel_entr
from scipy.stats import norm

from ._checks import finite_sample
from .distance import PSI_EPS

#: A two-sample statistic ``(ref_values, window_values) -> float``, larger = more drift.
Statistic = Callable[[np.ndarray, np.ndarray], float]

#: Names accepted by the vectorised histogram paths.
HISTOGRAM_STATISTICS = ("psi", "js_distance", "total_variation", "hellinger")

#: Null statistics expected above a quantile threshold, at least: the
#: quantile rule needs ``B >= ceil(MIN_EXCEEDANCES / rate)``. With 20
#: exceedances the realised rate's relative standard error is about
#: ``1 / sqrt(20) = 22%``.
MIN_EXCEEDANCES = 20

#: Fewest reference chunks accepted: below 5 the standard deviation used by
#: the normal rule has a relative standard error above ``1/sqrt(2*4) = 35%``.
MIN_CHUNKS = 5

#: Threshold rules accepted by :func:`threshold_from_null`.
RULES = ("quantile", "normal", "auto")

# Cap on the elements of one (windows x bins) block, to bound memory.
_BLOCK_ELEMENTS = 2_000_000


# ----------------------------------------------------------------------------- threshold


@dataclass(frozen=True)
class CalibratedThreshold:
    """A threshold on a drift statistic and how it was obtained.

    Attributes:
        threshold: drift when the statistic is strictly greater; finite.
        false_alarm_rate: the configured rate per window, in ``(0, 1)``.
        rule: ``"quantile"`` or ``"normal"`` (see :func:`threshold_from_null`).
        n_null: number of null statistics it was estimated from.
        null_mean: mean of those statistics.
        null_std: their sample standard deviation (``ddof=1``), 0 for a single value.
    """

    threshold: float
    false_alarm_rate: float
    rule: str
    n_null: int
    null_mean: float
    null_std: float

    def exceeded(self, statistic: float) -> bool:
        """True when ``statistic > threshold`` (drift).

        Raises:
            ValueError: ``statistic`` is NaN.
        """
        if math.isnan(statistic):
            raise ValueError("statistic is NaN")
        return bool(statistic > self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` inverts it."""
        return {
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "rule": self.rule,
            "n_null": self.n_null,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibratedThreshold:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: a key is missing or a value out of range.
        """
        try:
            out = cls(
                threshold=float(data["threshold"]),
                false_alarm_rate=float(data["false_alarm_rate"]),
                rule=str(data["rule"]),
                n_null=int(data["n_null"]),
                null_mean=float(data["null_mean"]),
                null_std=float(data["null_std"]),
            )
        except KeyError as exc:
            raise ValueError(f"calibrated threshold is missing {exc.args[0]!r}") from None
        _check_rate(out.false_alarm_rate)
        if out.rule not in ("quantile", "normal") or out.n_null < 1 or not math.isfinite(out.threshold):
            raise ValueError(f"invalid calibrated threshold {data!r}")
        return out


def _check_rate(rate: float) -> None:
    if not (isinstance(rate, numbers.Real) and 0.0 < rate < 1.0):
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")


def min_null_size(rate: float) -> int:
    """Fewest null statistics for the quantile rule at ``rate``: ``ceil(MIN_EXCEEDANCES / rate)``.

    E.g. 2,000 for rate 0.01, 20,000 for 0.001.

    Raises:
        ValueError: ``rate`` outside ``(0, 1)``.
    """
    _check_rate(rate)
    # The small slack keeps 20 / 0.01 at 2000 despite 0.01 not being exact in binary.
    return max(1, math.ceil(MIN_EXCEEDANCES / rate - 1e-9))


def threshold_from_null(null_statistics: ArrayLike, rate: float, rule: str = "quantile") -> CalibratedThreshold:
    """Threshold exceeded with probability ``rate`` by a statistic from the null distribution.

    Rules, for ``B`` null statistics ``t_(1) <= ... <= t_(B)``:

    - ``"quantile"``: ``t_(k)`` with ``k = ceil((1 - rate) * (B + 1))``. For a
      new statistic exchangeable with the ``B`` null ones,
      ``P(T > t_(k)) <= (B + 1 - k) / (B + 1) <= rate``, with equality up to
      rounding when there are no ties (the Monte Carlo test quantile:
      Davison & Hinkley, *Bootstrap Methods and their Application*, 1997,
      section 4.2.5). Ties (discrete statistics) only make it conservative.
      Needs ``B >= min_null_size(rate) = ceil(20 / rate)`` so that about 20
      null values lie above the threshold.
    - ``"normal"``: ``mean + z * std`` with ``z = Phi^-1(1 - rate)``
      (``scipy.stats.norm.isf(rate)``) and ``std`` with ``ddof=1``. Needs
      only ``B >= 2`` (use it for a handful of reference chunks), but it is
      exact only for a normal null distribution; for right-skewed statistics
      (PSI, KS ``D``) the true rate is higher than ``rate``.
    - ``"auto"``: ``"quantile"`` when ``B >= min_null_size(rate)``, else ``"normal"``.

    Args:
        null_statistics: statistics computed with no drift, shape ``(B,)``, finite.
        rate: false-alarm rate per window, ``0 < rate < 1``.
        rule: ``"quantile"`` (default), ``"normal"`` or ``"auto"``.

    Returns:
        :class:`CalibratedThreshold` with the rule actually used.

    Raises:
        ValueError: empty, non-1-D or non-finite statistics; ``rate`` outside
            ``(0, 1)``; unknown rule; ``B`` below what the rule needs.
    """
    _check_rate(rate)
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; expected one of {RULES}")
    t = finite_sample(null_statistics, "null_statistics")
    b = t.size
    need = min_null_size(rate)
    if rule == "auto":
        rule = "quantile" if b >= need else "normal"
    mean = float(np.mean(t))
    std = float(np.std(t, ddof=1)) if b > 1 else 0.0
    if rule == "quantile":
        if b < need:
            raise ValueError(
                f"the quantile rule at rate {rate} needs at least {need} null statistics "
                f"(ceil({MIN_EXCEEDANCES} / rate)), got {b}"
            )
        k = math.ceil((1.0 - rate) * (b + 1) - 1e-9)
        threshold = float(np.partition(t, k - 1)[k - 1])
    else:
        if b < 2:
            raise ValueError(f"the normal rule needs at least 2 null statistics, got {b}")
        threshold = mean + float(norm.isf(rate)) * std
    return CalibratedThreshold(
        threshold=threshold, false_alarm_rate=float(rate), rule=rule, n_null=b, null_mean=mean, null_std=std
    )


# ----------------------------------------------------------------------------- vectorised statistics


def _ref_proportions(ref_counts: ArrayLike) -> np.ndarray:
    p = np.asarray(ref_counts, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"ref_counts must be a non-empty 1-D array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("ref_counts must be finite, non-negative, with a positive total")
    return p


def _rows_to_proportions(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(axis=1, keepdims=True)


def histogram_statistics(
    ref_counts: ArrayLike, cur_counts: ArrayLike, statistic: str, eps: float = PSI_EPS
) -> np.ndarray:
    """One histogram statistic for many current windows at once.

    With ``p`` the reference and ``q`` a window's proportions over the same bins:

    - ``"psi"``: ``sum (q - p) ln(q / p)`` after clipping both at ``eps``
      from below; identical to :func:`detectors.distance.psi`.
    - ``"js_distance"``: ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p+q)/2``,
      log base 2, in ``[0, 1]``; as :func:`detectors.distance.js_distance`.
    - ``"total_variation"``: ``sum |p - q| / 2``, in ``[0, 1]``.
    - ``"hellinger"``: ``sqrt(sum (sqrt p - sqrt q)^2 / 2)``, in ``[0, 1]``
      (Hellinger 1909; the ``1/sqrt 2`` normalisation).

    Args:
        ref_counts: reference counts, shape ``(k,)``, or one reference per
            window, shape ``(B, k)``; finite, >= 0, positive row totals.
        cur_counts: window counts, shape ``(B, k)``; same conditions.
        statistic: one of :data:`HISTOGRAM_STATISTICS`.
        eps: PSI's smallest proportion, ``0 < eps < 1`` (default
            :data:`detectors.distance.PSI_EPS` = 1e-4); unused otherwise.

    Returns:
        float64 array of shape ``(B,)``, finite, >= 0.

    Raises:
        ValueError: unknown statistic, shapes that do not match, negative or
            non-finite counts, a zero total, ``eps`` outside ``(0, 1)``.
    """
    if statistic not in HISTOGRAM_STATISTICS:
        raise ValueError(f"unknown histogram statistic {statistic!r}; expected one of {HISTOGRAM_STATISTICS}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] == 0 or r.ndim not in (1, 2) or r.shape[-1] != c.shape[1]:
        raise ValueError(f"need cur_counts of shape (B, k) and ref_counts of shape (k,) or (B, k), got {r.shape}, {c.shape}")
    if r.ndim == 2 and r.shape[0] != c.shape[0]:
        raise ValueError(f"ref_counts has {r.shape[0]} rows but cur_counts has {c.shape[0]}")
    for a in (r, c):
        if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a.sum(axis=-1) <= 0):
            raise ValueError("counts must be finite, non-negative, with a positive total per window")
    p = r / r.sum(axis=-1, keepdims=True)
    p = np.broadcast_to(p, c.shape)
    q = _rows_to_proportions(c)
    return _histogram_rows(p, q, statistic, eps)


def _histogram_rows(p: np.ndarray, q: np.ndarray, statistic: str, eps: float) -> np.ndarray:
    """The statistic per row of proportion arrays ``p``, ``q`` of shape ``(B, k)``."""
    if statistic == "psi":
        pc = np.maximum(p, eps)
        qc = np.maximum(q, eps)
        return np.sum((qc - pc) * np.log(qc / pc), axis=1)
    if statistic == "js_distance":
        m = (p + q) / 2.0
        js = (np.sum(rel_entr(p, m), axis=1) + np.sum(rel_entr(q, m), axis=1)) / np.log(2.0)
        # Rounding can leave the divergence a hair below 0 or the distance above 1.
        return np.clip(np.sqrt(np.maximum(js / 2.0, 0.0)), 0.0, 1.0)
    if statistic == "total_variation":
        return np.minimum(0.5 * np.sum(np.abs(p - q), axis=1), 1.0)
    # hellinger
    return np.minimum(np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1)), 1.0)


def ks_statistics(reference: ArrayLike, windows: ArrayLike) -> np.ndarray:
    """Two-sample Kolmogorov–Smirnov ``D`` of each window against the reference, vectorised.

    ``D = sup_x |F_ref(x) - F_win(x)|`` (Kolmogorov 1933; Smirnov 1948). With
    the window sorted, ``x_1 <= ... <= x_m``, the supremum is attained at a
    window value or just before it, so
    ``D = max_i max(i/m - F_ref(x_i), F_ref(x_i-) - (i-1)/m)``, with
    ``F_ref`` and its left limit from ``searchsorted`` on the sorted
    reference; ties within the window or with the reference are handled
    exactly. Equals ``scipy.stats.ks_2samp(reference, window).statistic``
    (up to rounding), at ``O(m log n)`` per window with no Python loop.

    Args:
        reference: reference values, shape ``(n,)``, n >= 1, finite.
        windows: current windows, shape ``(B, m)``, m >= 1, finite.

    Returns:
        float64 array of shape ``(B,)`` with values in ``[0, 1]``.

    Raises:
        ValueError: empty or wrongly shaped input, or non-finite values.
    """
    ref = np.sort(finite_sample(reference, "reference"))
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] == 0:
        raise ValueError(f"windows must have shape (B, m) with m >= 1, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("windows must contain only finite values")
    out = np.empty(w.shape[0])
    rows = max(1, _BLOCK_ELEMENTS // w.shape[1])
    for start in range(0, w.shape[0], rows):
        out[start : start + rows] = _ks_sorted_ref(ref, w[start : start + rows])
    return out


def _ks_sorted_ref(sorted_ref: np.ndarray, windows: np.ndarray) -> np.ndarray:
    n = sorted_ref.size
    m = windows.shape[1]
    x = np.sort(windows, axis=1)
    f_at = np.searchsorted(sorted_ref, x, side="right") / n
    f_before = np.searchsorted(sorted_ref, x, side="left") / n
    upper = np.arange(1, m + 1) / m
    lower = np.arange(0, m) / m
    d = np.maximum(np.max(upper - f_at, axis=1), np.max(f_before - lower, axis=1))
    return np.clip(d, 0.0, 1.0)


# ----------------------------------------------------------------------------- bootstrap


def _generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    if seed is None:
        raise ValueError("an explicit seed (int or numpy Generator) is required for reproducible thresholds")
    return np.random.default_rng(seed)


def _check_sizes(window_size: int, n_boot: int) -> None:
    if int(window_size) != window_size or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size}")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot}")


def bootstrap_statistics(
    reference: ArrayLike,
    window_size: int,
    statistic: Statistic,
    *,
    n_boot: int,
    seed: int | np.random.Generator,
    resample_reference: bool = False,
) -> np.ndarray:
    """Null distribution of any two-sample statistic by the bootstrap.

    For ``b = 1..B``: ``w_b`` = ``window_size`` values drawn uniformly with
    replacement from the reference; ``t_b = statistic(reference, w_b)``, or
    ``statistic(r_b, w_b)`` with ``r_b`` a fresh resample of size ``n`` when
    ``resample_reference`` (see the module docstring for why). Efron &
    Tibshirani (1993), ch. 6 and 16. Calls ``statistic`` ``B`` times; for
    histogram statistics and KS use the vectorised
    :func:`bootstrap_histogram_statistics` / :func:`bootstrap_ks_statistics`.

    Args:
        reference: reference values, shape ``(n,)``, n >= 1, finite.
        window_size: ``m``, the current window's size, >= 1.
        statistic: ``(ref_values, window_values) -> float``, larger = more drift.
        n_boot: ``B`` >= 1; the quantile rule needs ``B >= ceil(20 / rate)``.
        seed: int or ``numpy.random.Generator``; required.
        resample_reference: also resample the reference in each replicate.

    Returns:
        float64 array of shape ``(B,)``.

    Raises:
        ValueError: bad reference, sizes or seed, or ``statistic`` returned a
            non-finite value.
    """
    ref = finite_sample(reference, "reference")
    _check_sizes(window_size, n_boot)
    rng = _generator(seed)
    n = ref.size
    out = np.empty(int(n_boot))
    for b in range(int(n_boot)):
        window = ref[rng.integers(0, n, size=int(window_size))]
        base = ref[rng.integers(0, n, size=n)] if resample_reference else ref
        out[b] = statistic(base, window)
    if not np.all(np.isfinite(out)):
        raise ValueError("statistic returned a non-finite value on a bootstrap window")
    return out


def bootstrap_histogram_statistics(
    ref_counts: ArrayLike,
    window_size: int,
    statistic: str,
    *,
    n_boot: int,
    seed: int | np.random.Generator,
    resample_reference: bool = False,
    eps: float = PSI_EPS,
) -> np.ndarray:
    """Null distribution of a histogram statistic by the multinomial bootstrap, vectorised.

    With bins fixed by the reference, the histogram of ``m`` values drawn with
    replacement from the reference is ``Multinomial(m, p_ref)``, so the
    ``B`` bootstrap windows are one ``rng.multinomial(m, p_ref, size=B)``
    call; no raw values are needed, only the reference histogram. With
    ``resample_reference`` each replicate's reference histogram is
    ``Multinomial(n, p_ref)`` as well, ``n`` the reference total. B = 10,000
    over 10 bins takes milliseconds.

    Args:
        ref_counts: reference histogram, shape ``(k,)``, finite, >= 0,
            positive total (an integer total when ``resample_reference``).
        window_size: ``m`` >= 1.
        statistic: one of :data:`HISTOGRAM_STATISTICS` (see :func:`histogram_statistics`).
        n_boot: ``B`` >= 1.
        seed: int or ``numpy.random.Generator``; required.
        resample_reference: also draw the reference histogram per replicate.
        eps: PSI's smallest proportion (default 1e-4).

    Returns:
        float64 array of shape ``(B,)``.

    Raises:
        ValueError: bad counts, sizes, seed, statistic name or ``eps``.
    """
    if statistic not in HISTOGRAM_STATISTICS:
        raise ValueError(f"unknown histogram statistic {statistic!r}; expected one of {HISTOGRAM_STATISTICS}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    counts = _ref_proportions(ref_counts)
    _check_sizes(window_size, n_boot)
    rng = _generator(seed)
    total = float(counts.sum())
    n = round(total)
    if resample_reference and abs(total - n) > 1e-9 * max(total, 1.0):
        raise ValueError(f"resample_reference needs an integer reference total, got {total}")
    p_ref = counts / total
    k = p_ref.size
    out = np.empty(int(n_boot))
    rows = max(1, _BLOCK_ELEMENTS // k)
    for start in range(0, int(n_boot), rows):
        size = min(rows, int(n_boot) - start)
        q = rng.multinomial(int(window_size), p_ref, size=size) / float(window_size)
        if resample_reference:
            p = rng.multinomial(n, p_ref, size=size) / float(n)
        else:
            p = np.broadcast_to(p_ref, q.shape)
        out[start : start + size] = _histogram_rows(p, q, statistic, eps)
    return out


def bootstrap_ks_statistics(
    reference: ArrayLike,
    window_size: int,
    *,
    n_boot: int,
    seed: int | np.random.Generator,
    resample_reference: bool = False,
) -> np.ndarray:
    """Null distribution of the KS ``D`` by the bootstrap, vectorised.

    Draws ``B`` windows of ``m`` values with replacement from the reference
    and computes each one's ``D`` against the reference with
    :func:`ks_statistics` (blocks of windows, no per-window Python call).
    With ``resample_reference`` the values are multiplied by
    ``sqrt(1 + m/n)``, the asymptotic ratio of the two-sample to the
    one-sample ``D`` (Smirnov 1939), instead of resampling the reference,
    which would cost ``O(n)`` per replicate.

    Args:
        reference: reference values, shape ``(n,)``, n >= 1, finite.
        window_size: ``m`` >= 1.
        n_boot: ``B`` >= 1.
        seed: int or ``numpy.random.Generator``; required.
        resample_reference: apply the finite-reference factor ``sqrt(1 + m/n)``.

    Returns:
        float64 array of shape ``(B,)``, values in ``[0, 1]`` (may exceed 1
        only by the correction factor, which is then clipped to 1).

    Raises:
        ValueError: bad reference, sizes or seed.
    """
    ref = np.sort(finite_sample(reference, "reference"))
    _check_sizes(window_size, n_boot)
    rng = _generator(seed)
    n, m = ref.size, int(window_size)
    # A bootstrap window holds reference values, so F_ref at (and just before)
    # each of them is known in advance; sorting the drawn positions sorts the window.
    f_at_ref = np.searchsorted(ref, ref, side="right") / n
    f_before_ref = np.searchsorted(ref, ref, side="left") / n
    upper = np.arange(1, m + 1) / m
    lower = np.arange(0, m) / m
    out = np.empty(int(n_boot))
    rows = max(1, _BLOCK_ELEMENTS // m)
    for start in range(0, int(n_boot), rows):
        size = min(rows, int(n_boot) - start)
        pos = np.sort(rng.integers(0, n, size=(size, m)), axis=1)
        d = np.maximum(np.max(upper - f_at_ref[pos], axis=1), np.max(f_before_ref[pos] - lower, axis=1))
        out[start : start + size] = np.clip(d, 0.0, 1.0)
    if resample_reference:
        out = np.minimum(out * math.sqrt(1.0 + m / n), 1.0)
    return out


# ----------------------------------------------------------------------------- reference chunks


def _chunk_count(n: int, window_size: int) -> int:
    if int(window_size) != window_size or window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size}")
    chunks = n // int(window_size)
    if chunks < MIN_CHUNKS:
        raise ValueError(
            f"a reference of {n} values gives {chunks} chunks of {window_size}; at least {MIN_CHUNKS} are needed"
        )
    return chunks


def _check_against(against: str) -> None:
    if against not in ("rest", "whole"):
        raise ValueError(f"against must be 'rest' or 'whole', got {against!r}")


def chunk_statistics(
    reference: ArrayLike, window_size: int, statistic: Statistic, *, against: str = "rest"
) -> np.ndarray:
    """Statistic of each time-ordered reference chunk against the reference.

    The reference, in time order, is cut into ``c = n // m`` consecutive
    chunks ``x[j*m : (j+1)*m]``; the trailing ``n - c*m`` values form no chunk
    but stay in the comparison base. ``t_j = statistic(base_j, chunk_j)``
    with ``base_j`` the reference without chunk ``j`` (``against="rest"``,
    default: the chunk is not compared with itself, which would shrink the
    statistic) or the whole reference (``against="whole"``). Feed the result
    to :func:`threshold_from_null`; with fewer than ``ceil(20 / rate)``
    chunks use ``rule="normal"`` (mean + z * std).

    Args:
        reference: reference values in time order, shape ``(n,)``, finite.
        window_size: ``m`` >= 1, with ``n // m >= MIN_CHUNKS`` (5).
        statistic: ``(ref_values, window_values) -> float``.
        against: ``"rest"`` or ``"whole"``.

    Returns:
        float64 array of shape ``(c,)``, in time order.

    Raises:
        ValueError: bad reference, fewer than 5 chunks, bad ``against``, or
            ``statistic`` returned a non-finite value.
    """
    ref = finite_sample(reference, "reference")
    _check_against(against)
    m = int(window_size)
    chunks = _chunk_count(ref.size, window_size)
    out = np.empty(chunks)
    for j in range(chunks):
        chunk = ref[j * m : (j + 1) * m]
        base = np.concatenate([ref[: j * m], ref[(j + 1) * m :]]) if against == "rest" else ref
        out[j] = statistic(base, chunk)
    if not np.all(np.isfinite(out)):
        raise ValueError("statistic returned a non-finite value on a reference chunk")
    return out


def chunk_histogram_statistics(
    reference: ArrayLike,
    edges: ArrayLike,
    window_size: int,
    statistic: str,
    *,
    against: str = "rest",
    eps: float = PSI_EPS,
) -> np.ndarray:
    """:func:`chunk_statistics` for a histogram statistic, vectorised.

    Values are binned once on ``edges`` (bin ``i`` holds
    ``edges[i] <= x < edges[i+1]``, as in the reference profile); each
    chunk's histogram comes from one ``bincount`` and the rest of the
    reference is the total histogram minus the chunk's.

    Args:
        reference: reference values in time order, shape ``(n,)``, finite.
        edges: bin edges, shape ``(k + 1,)``, strictly increasing,
            ``edges[0] = -inf`` and ``edges[-1] = +inf``.
        window_size: ``m`` >= 1 with ``n // m >= 5``.
        statistic: one of :data:`HISTOGRAM_STATISTICS`.
        against: ``"rest"`` (default) or ``"whole"``.
        eps: PSI's smallest proportion (default 1e-4).

    Returns:
        float64 array of shape ``(n // m,)``, in time order.

    Raises:
        ValueError: bad reference, edges, chunk count, ``against``, statistic or ``eps``.
    """
    ref = finite_sample(reference, "reference")
    _check_against(against)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not (e[0] == -np.inf and e[-1] == np.inf) or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be strictly increasing with -inf and +inf as outer edges")
    m = int(window_size)
    chunks = _chunk_count(ref.size, window_size)
    k = e.size - 1
    bins = np.searchsorted(e, ref, side="right") - 1
    total = np.bincount(bins, minlength=k).astype(np.float64)
    used = chunks * m
    per_chunk = np.bincount(
        np.repeat(np.arange(chunks), m) * k + bins[:used], minlength=chunks * k
    ).reshape(chunks, k).astype(np.float64)
    base = total[None, :] - per_chunk if against == "rest" else total
    return histogram_statistics(base, per_chunk, statistic, eps)
