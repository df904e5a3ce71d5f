"""Multiple-testing correction across the features of one window.

Testing 25 features at level 0.05 each flags at least one of them in about
``1 - 0.95**25 = 72%`` of stable windows. The corrections here turn the
per-feature p-values into adjusted p-values so that a single level controls
the error over the whole family:

- Bonferroni and Holm control the family-wise error rate (probability of
  one or more false rejections) under any dependence between the tests;
  Holm is uniformly more powerful than Bonferroni.
- Benjamini–Hochberg controls the false discovery rate (expected share of
  false rejections among the rejections) for independent or positively
  dependent tests.

A feature whose test could not run (insufficient data) has p-value None: it
is left out of the family, so it does not count in ``m``, and its adjusted
p-value and decision stay None.

The adjusted p-value of a feature is the smallest level at which the
procedure would reject it, so "reject at level ``alpha``" is exactly
"adjusted p-value <= alpha".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import false_discovery_control

#: Procedures accepted by :func:`adjust_p_values`.
METHODS = ("bonferroni", "holm", "bh")


@dataclass(frozen=True)
class AdjustedPValues:
    """Adjusted p-values and decisions for a family of tests, in input order.

    Attributes:
        p_values: the p-values as given (None where the test could not run).
        adjusted: adjusted p-values in ``[0, 1]``, None where the input was None.
        rejected: ``adjusted <= alpha`` (True = drift), None where the input was None.
        method: ``"bonferroni"``, ``"holm"`` or ``"bh"``.
        alpha: the family-wise error rate (Bonferroni, Holm) or the false
            discovery rate (BH) the decisions control.
        n_tests: ``m``, the number of p-values that were not None.
    """

    p_values: tuple[float | None, ...]
    adjusted: tuple[float | None, ...]
    rejected: tuple[bool | None, ...]
    method: str
    alpha: float
    n_tests: int

    @property
    def n_rejected(self) -> int:
        """Number of rejected hypotheses (drifted features)."""
        return sum(1 for r in self.rejected if r)


def _split(p_values: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the non-None p-values and those p-values as float64, validated."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    p = np.array([p_values[i] for i in idx], dtype=np.float64)
    if p.size and (not np.all(np.isfinite(p)) or np.any(p < 0) or np.any(p > 1)):
        bad = next(p_values[i] for i in idx if not (0.0 <= float(p_values[i]) <= 1.0))  # type: ignore[arg-type]
        raise ValueError(
            f"p-values must lie in [0, 1] (use None for a test that could not run), got {bad}"
        )
    return np.array(idx, dtype=np.intp), p


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _bonferroni(p: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, p.size * p)


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="stable")
    # i-th smallest (1-based) is multiplied by m - i + 1; the running maximum
    # makes the adjusted values monotone in the raw ones (step-down).
    scaled = (m - np.arange(m)) * p[order]
    adj_sorted = np.minimum(1.0, np.maximum.accumulate(scaled))
    out = np.empty(m)
    out[order] = adj_sorted
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    return np.asarray(false_discovery_control(p, method="bh"), dtype=np.float64)


_ADJUST = {"bonferroni": _bonferroni, "holm": _holm, "bh": _bh}


def adjust_p_values(p_values: Sequence[float | None], method: str = "bh", alpha: float = 0.05) -> AdjustedPValues:
    """Adjust per-feature p-values for multiple testing and decide at level ``alpha``.

    Let ``p_(1) <= ... <= p_(m)`` be the ``m`` non-None p-values in ascending
    order. The adjusted p-values are:

    - ``"bonferroni"``: ``min(1, m * p_i)`` (Bonferroni 1936; Dunn 1961).
    - ``"holm"``: ``p~_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))``
      (Holm, *A simple sequentially rejective multiple test procedure*, 1979).
    - ``"bh"``: ``p~_(i) = min(1, min_{j >= i} m * p_(j) / j)`` (Benjamini &
      Hochberg, *Controlling the false discovery rate*, JRSS B 57, 1995),
      computed by ``scipy.stats.false_discovery_control(p, method="bh")``.

    A hypothesis is rejected when its adjusted p-value is ``<= alpha``; for
    BH this is the step-up rule "reject the ``k`` smallest, ``k`` the largest
    ``i`` with ``p_(i) <= i * alpha / m``".

    Args:
        p_values: one p-value per feature, each in ``[0, 1]``, or None where
            the feature had insufficient data. May be empty or all None.
        method: ``"bonferroni"``, ``"holm"`` or ``"bh"`` (default).
        alpha: level in ``(0, 1)``, default 0.05: family-wise error rate for
            Bonferroni/Holm, false discovery rate for BH.

    Returns:
        :class:`AdjustedPValues` in input order; ``n_tests`` is ``m``.

    Raises:
        ValueError: unknown method, ``alpha`` outside ``(0, 1)``, or a
            p-value that is NaN, infinite or outside ``[0, 1]``.
    """
    if method not in _ADJUST:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    _check_alpha(alpha)
    idx, p = _split(p_values)
    adjusted: list[float | None] = [None] * len(p_values)
    rejected: list[bool | None] = [None] * len(p_values)
    if p.size:
        adj = _ADJUST[method](p)
        for i, a in zip(idx.tolist(), adj.tolist()):
            a = min(max(a, 0.0), 1.0)
            adjusted[i] = a
            rejected[i] = bool(a <= alpha)
    given = tuple(None if x is None else float(x) for x in p_values)
    return AdjustedPValues(
        p_values=given,
        adjusted=tuple(adjusted),
        rejected=tuple(rejected),
        method=method,
        alpha=float(alpha),
        n_tests=int(p.size),
    )


def bonferroni(p_values: Sequence[float | None], alpha: float = 0.05) -> AdjustedPValues:
    """Bonferroni correction, ``min(1, m * p)``; see :func:`adjust_p_values`."""
    return adjust_p_values(p_values, "bonferroni", alpha)


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> AdjustedPValues:
    """Holm step-down correction (Holm 1979); see :func:`adjust_p_values`."""
    return adjust_p_values(p_values, "holm", alpha)


def benjamini_hochberg(p_values: Sequence[float | None], alpha: float = 0.05) -> AdjustedPValues:
    """Benjamini–Hochberg step-up correction (Benjamini & Hochberg 1995); see :func:`adjust_p_values`."""
    return adjust_p_values(p_values, "bh", alpha)


def family_wise_level(alpha: float, m: int) -> float:
    """Chance of at least one false rejection among ``m`` independent uncorrected tests at level ``alpha``.

    ``1 - (1 - alpha)**m``; e.g. 25 features at 0.05 give 0.72. Shown next to
    a configuration to explain why a correction is needed.

    Raises:
        ValueError: ``alpha`` outside ``(0, 1)`` or ``m < 0``.
    """
    _check_alpha(alpha)
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    return -math.expm1(m * math.log1p(-alpha))
