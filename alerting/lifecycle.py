"""The life of one alert instance: inactive → pending → firing → resolved.

Pure state transitions; the caller loads the state from the database, calls :func:`step` for
each window's observation, and stores the result in the same transaction as the window, so a
restart continues exactly where the state was.

- **pending**: the condition held in the latest window, but not yet in k of the last n.
- **firing**: the condition held in at least k of the last n windows that had a value.
- **resolved**: a firing alert no longer holds in k of the last n windows and saw
  ``resolve_after`` consecutive clear windows (hysteresis: "clear" may use a stricter
  ``resolve_threshold`` than the firing condition). Its window history is then forgotten, so
  firing again needs k fresh breaches.
- **inactive**: otherwise (also a pending alert whose condition stopped holding).

A window without a value (insufficient data) changes nothing. A later evaluation of a window
already in the history (another segment of it, or labels arriving later) replaces its entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"


@dataclass(frozen=True)
class InstanceState:
    """Stored state of one alert instance.

    Attributes:
        state: inactive | pending | firing | resolved.
        history: ``(window_start_ms, breached)`` of the last n windows with a value, oldest
            first.
        clear_streak: consecutive clear windows while firing.
        fired_at_ms: when the current (or last) firing began (Alertmanager ``startsAt``).
        resolved_at_ms: when it last resolved.
        notified: whether the current firing was sent to receivers (a silenced firing is not,
            and then neither is its resolve).
        last_sent_ms: when the firing was last sent (for the repeat interval).
    """

    state: str = INACTIVE
    history: tuple[tuple[int, bool], ...] = field(default_factory=tuple)
    clear_streak: int = 0
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    notified: bool = False
    last_sent_ms: int | None = None

    def to_dict(self) -> dict:
        """JSON-safe form (for the ``alert_instances`` table)."""
        return {"state": self.state, "history": [list(h) for h in self.history], "clear_streak": self.clear_streak,
                "fired_at_ms": self.fired_at_ms, "resolved_at_ms": self.resolved_at_ms,
                "notified": self.notified, "last_sent_ms": self.last_sent_ms}

    @classmethod
    def from_dict(cls, d: dict) -> InstanceState:
        """Inverse of :meth:`to_dict`."""
        return cls(d["state"], tuple((int(s), bool(b)) for s, b in d["history"]), int(d["clear_streak"]),
                   d["fired_at_ms"], d["resolved_at_ms"], bool(d["notified"]), d["last_sent_ms"])


def step(st: InstanceState, window_start_ms: int, breached: bool | None, cleared: bool | None, *,
         k: int, n: int, resolve_after: int, now_ms: int) -> tuple[InstanceState, str | None]:
    """The state after one window's observation.

    Args:
        st: the state before.
        window_start_ms: the observed window (its history entry).
        breached: the firing condition held; None: no value (nothing changes).
        cleared: the window counts towards resolving (see :meth:`alerting.rules.RuleConfig.clears`).
        k, n: "for k of the last n windows" (1 ≤ k ≤ n).
        resolve_after: consecutive clear windows that resolve a firing alert (≥ 1).
        now_ms: evaluation time (firing and resolve times).

    Returns:
        ``(new_state, transition)``: transition is ``"firing"`` or ``"resolved"`` when the alert
        must be notified, ``"pending"`` / ``"inactive"`` for silent changes, None for none.
    """
    if breached is None:
        return st, None
    entries = dict(st.history)
    if window_start_ms not in entries and entries and window_start_ms < min(entries) and len(entries) >= n:
        return st, None  # older than the whole history: it cannot change the last n windows
    entries[window_start_ms] = breached
    history = tuple(sorted(entries.items())[-n:])
    if st.state == FIRING:
        streak = st.clear_streak + 1 if cleared else 0
        if streak >= resolve_after and sum(b for _, b in history) < k:
            return replace(st, state=RESOLVED, history=(), clear_streak=0, resolved_at_ms=now_ms), RESOLVED
        return replace(st, history=history, clear_streak=streak), None
    if sum(b for _, b in history) >= k:
        return replace(st, state=FIRING, history=history, clear_streak=0, fired_at_ms=now_ms, notified=False,
                       last_sent_ms=None), FIRING
    latest_breached = history[-1][1]
    if latest_breached:
        return replace(st, state=PENDING, history=history), (PENDING if st.state != PENDING else None)
    if st.state == PENDING:
        return replace(st, state=INACTIVE, history=history), INACTIVE
    return replace(st, history=history), None


def repeat_due(st: InstanceState, now_ms: int, repeat_interval_ms: int) -> bool:
    """Whether a firing alert should be sent again: it fires and was last sent at least
    ``repeat_interval_ms`` ago, or never (its firing was silenced and the silence ended)."""
    return st.state == FIRING and (st.last_sent_ms is None or now_ms - st.last_sent_ms >= repeat_interval_ms)
