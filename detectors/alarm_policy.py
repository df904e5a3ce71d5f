"""Alarm policy "k of the last n windows".

A per-window drift decision at false-alarm rate ``r`` fires on stable data
once every ``1/r`` windows on average. Requiring ``k`` drifted windows among
the last ``n`` lowers that rate to the binomial tail
``P(X >= k), X ~ Binomial(n, r)`` (for independent windows) while a real,
persistent shift still fires after ``k`` windows. :func:`firing_rate` gives
that rate and :func:`per_window_rate` inverts it, so a target alarm rate can
be turned into the per-window rate the thresholds are calibrated to
(:mod:`detectors.calibration`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom

#: How a window without a decision (insufficient data, None) is treated.
INSUFFICIENT_POLICIES = ("skip", "occupy")


def _check_k_n(k: int, n: int) -> None:
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")


class KOfNAlarm:
    """Fires while at least ``k`` of the last ``n`` windows drifted.

    Feed one decision per window, in window order, with :meth:`update`:
    True (drift), False (no drift) or None (insufficient data). The policy
    keeps the last ``n`` slots and is *firing* when at least ``k`` of them
    are True. Before ``n`` slots have been filled it looks at those it has,
    so a 2-of-3 policy fires on the second drifted window of a fresh start.

    None is handled by ``on_insufficient``:

    - ``"skip"`` (default): the window is ignored. It takes no slot, so it
      neither confirms nor clears the alarm: "k of the last n *decided*
      windows", and an outage of the data keeps the state as it was.
    - ``"occupy"``: the window takes a slot that does not count as drift,
      so a run of at least ``n - k + 1`` windows without data clears the alarm.

    The state is a few integers and booleans; :meth:`to_dict` /
    :meth:`from_dict` carry it across restarts.

    Args:
        k: drifted windows needed, ``1 <= k <= n``.
        n: number of windows looked at, >= 1.
        on_insufficient: ``"skip"`` or ``"occupy"``.

    Raises:
        ValueError: ``k``/``n`` not integers with ``1 <= k <= n``, or an
            unknown ``on_insufficient``.
    """

    def __init__(self, k: int, n: int, on_insufficient: str = "skip") -> None:
        _check_k_n(k, n)
        if on_insufficient not in INSUFFICIENT_POLICIES:
            raise ValueError(f"on_insufficient must be one of {INSUFFICIENT_POLICIES}, got {on_insufficient!r}")
        self.k = int(k)
        self.n = int(n)
        self.on_insufficient = on_insufficient
        self._slots: deque[bool | None] = deque(maxlen=self.n)

    @property
    def n_drifted(self) -> int:
        """Drifted windows among the slots held (at most ``n``)."""
        return sum(1 for s in self._slots if s is True)

    @property
    def firing(self) -> bool:
        """True while at least ``k`` of the held slots are drifted."""
        return self.n_drifted >= self.k

    @property
    def slots(self) -> tuple[bool | None, ...]:
        """The held slots, oldest first (None only under ``"occupy"``)."""
        return tuple(self._slots)

    def update(self, drifted: bool | None) -> bool:
        """Record one window's decision and return whether the policy fires now.

        Args:
            drifted: True, False, or None for insufficient data.

        Raises:
            ValueError: anything other than True, False or None (numpy bools are accepted).
        """
        if drifted is not None:
            if not isinstance(drifted, (bool, np.bool_)):
                raise ValueError(f"decision must be True, False or None, got {drifted!r}")
            self._slots.append(bool(drifted))
        elif self.on_insufficient == "occupy":
            self._slots.append(None)
        return self.firing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state; :meth:`from_dict` restores an equal policy."""
        return {"k": self.k, "n": self.n, "on_insufficient": self.on_insufficient, "slots": list(self._slots)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KOfNAlarm:
        """Restore a policy saved with :meth:`to_dict`.

        Raises:
            ValueError: a key is missing, ``k``/``n`` invalid, more than ``n``
                slots, or a slot that is not True/False (or None under ``"occupy"``).
        """
        try:
            alarm = cls(data["k"], data["n"], data.get("on_insufficient", "skip"))
            slots = list(data["slots"])
        except KeyError as exc:
            raise ValueError(f"alarm state is missing {exc.args[0]!r}") from None
        if len(slots) > alarm.n:
            raise ValueError(f"alarm state holds {len(slots)} slots, more than n={alarm.n}")
        allowed: tuple[object, ...] = (True, False, None) if alarm.on_insufficient == "occupy" else (True, False)
        for s in slots:
            if not any(s is a for a in allowed):
                raise ValueError(f"invalid slot {s!r} in alarm state")
        alarm._slots.extend(slots)
        return alarm

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KOfNAlarm):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"KOfNAlarm(k={self.k}, n={self.n}, on_insufficient={self.on_insufficient!r}, slots={list(self._slots)})"


def firing_rate(k: int, n: int, rate: float) -> float:
    """Stationary share of windows in which a k-of-n policy fires on stable data.

    ``P(X >= k)`` for ``X ~ Binomial(n, rate)``, i.e.
    ``sum_{j=k..n} C(n, j) rate^j (1 - rate)^(n - j)``, computed as
    ``scipy.stats.binom.sf(k - 1, n, rate)``. Exact when the per-window
    decisions are independent with false-alarm probability ``rate`` and the
    policy has seen at least ``n`` windows; positively correlated windows fire
    more often. E.g. 2 of 3 at 0.05 gives 0.00725.

    Args:
        k: ``1 <= k <= n``.
        n: >= 1.
        rate: per-window false-alarm rate in ``[0, 1]``.

    Raises:
        ValueError: invalid ``k``/``n`` or ``rate`` outside ``[0, 1]``.
    """
    _check_k_n(k, n)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return float(binom.sf(int(k) - 1, int(n), rate))


def per_window_rate(k: int, n: int, target: float) -> float:
    """Per-window false-alarm rate at which a k-of-n policy fires at ``target`` on stable data.

    The root ``r`` of ``firing_rate(k, n, r) = target`` (monotone in ``r``),
    found by ``scipy.optimize.brentq`` (absolute tolerance 1e-15); e.g. 2 of 3 at target 0.005
    gives r = 0.04140.

    Args:
        k: ``1 <= k <= n``.
        n: >= 1.
        target: firing rate per window, ``0 < target < 1``.

    Raises:
        ValueError: invalid ``k``/``n`` or ``target`` outside ``(0, 1)``.
    """
    _check_k_n(k, n)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    return float(brentq(lambda r: firing_rate(k, n, r) - target, 0.0, 1.0, xtol=1e-15))
