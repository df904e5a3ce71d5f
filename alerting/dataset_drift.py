"""The dataset-drift alert: fires when a closed window's dataset verdict is drift (or, when
configured, when its share of drifted columns reaches a threshold) and resolves when a later
window is not drifted (or its share falls below the resolve threshold: hysteresis when that is
lower than the firing one).

Pure decision logic: the caller stores the state and enqueues the notification in the same
transaction as the window that caused it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

ALERT_NAME = "InferwatchDatasetDrift"


@dataclass(frozen=True)
class AlertEvent:
    """A state change to notify.

    Attributes:
        status: ``"firing"`` or ``"resolved"``.
        model, model_version: whose window caused it.
        window_start_ms, window_end_ms: the window (event time, UTC epoch ms).
        drift_share: share of drifted columns in that window (0-1).
        drifted_columns: names of the drifted columns, sorted.
        window_id: id of the stored window.
    """

    status: str
    model: str
    model_version: str
    window_start_ms: int
    window_end_ms: int
    drift_share: float
    drifted_columns: tuple[str, ...]
    window_id: int


def next_state(previous: str | None, share: float | None, fire_share: float | None, resolve_share: float | None,
               drifted: bool | None = None) -> str | None:
    """The alert state after a window, or None when it does not change.

    Args:
        previous: ``"firing"``, ``"resolved"`` or None (never fired).
        share: the window's dataset drift share; None (insufficient data) never changes state.
        fire_share: fire when ``share >= fire_share``; None: fire when the window's dataset
            verdict ``drifted`` is True and resolve when it is False.
        resolve_share: resolve when ``share < resolve_share`` (<= fire_share); ignored when
            ``fire_share`` is None.
        drifted: the window's dataset verdict (None: insufficient data, no change).
    """
    if fire_share is None:
        if drifted is None:
            return None
        if previous != "firing" and drifted:
            return "firing"
        if previous == "firing" and not drifted:
            return "resolved"
        return None
    if share is None:
        return None
    if previous != "firing" and share >= fire_share:
        return "firing"
    if previous == "firing" and share < (fire_share if resolve_share is None else resolve_share):
        return "resolved"
    return None


def fingerprint(labels: dict[str, str]) -> str:
    """Stable dedup key of an alert: SHA-256 of its sorted labels, first 16 hex digits."""
    text = "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(event: AlertEvent, started_at_ms: int, now_ms: int, external_url: str) -> dict:
    """The notification in the Alertmanager webhook format (``version`` "4"), so receivers
    written for Alertmanager accept it unchanged.

    ``startsAt`` is when the alert started firing; ``endsAt`` is ``0001-01-01T00:00:00Z`` while
    firing and the resolve time once resolved.
    """
    labels = {"alertname": ALERT_NAME, "model": event.model, "model_version": event.model_version,
              "severity": "warning"}
    annotations = {
        "summary": (f"{event.model} v{event.model_version}: {len(event.drifted_columns)} drifted columns "
                    f"(share {event.drift_share:.2f}) in window starting {_rfc3339(event.window_start_ms)}"),
        "drift_share": f"{event.drift_share:.6f}",
        "drifted_columns": ",".join(event.drifted_columns),
        "window_start": _rfc3339(event.window_start_ms),
        "window_end": _rfc3339(event.window_end_ms),
        "window_id": str(event.window_id),
    }
    alert = {
        "status": event.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(started_at_ms),
        "endsAt": "0001-01-01T00:00:00Z" if event.status == "firing" else _rfc3339(now_ms),
        "generatorURL": f"{external_url}/metrics",
        "fingerprint": fingerprint(labels),
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{ALERT_NAME}", model="{event.model}"}}',
        "truncatedAlerts": 0,
        "status": event.status,
        "receiver": "inferwatch",
        "groupLabels": {"alertname": ALERT_NAME, "model": event.model},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [alert],
    }
