"""Pushing alerts into a Prometheus Alertmanager through its API v2 (``POST /api/v2/alerts``).

Alertmanager's API (https://prometheus.io/docs/alerting/latest/clients/ and
https://prometheus.io/docs/alerting/latest/alerts_api/; OpenAPI spec ``api/v2/openapi.yaml``,
``postableAlerts``) takes a JSON list of alerts, each ``{labels, annotations, startsAt, endsAt,
generatorURL}``, and answers 200. Clients re-send every alert that is still active at a fixed
interval; Alertmanager groups, deduplicates, silences and routes them to its own receivers. It
identifies an alert by its label set alone (:func:`alertmanager_fingerprint`), so a re-send
updates the alert instead of adding one; annotations are replaced by the latest ones.

``endsAt`` follows Prometheus (``rules/alerting.go`` ``sendAlerts`` sets ``ValidUntil = now +
4 × max(resend delay, evaluation interval)``; ``rules/manager.go`` ``SendAlerts`` sends
``endsAt = ResolvedAt`` when resolved, else ``ValidUntil``): a firing alert is sent with
``endsAt = now + 4 × resend interval``, so when inferwatch stops re-sending (it crashed, or lost
the network) Alertmanager resolves the alert by itself after about four missed re-sends instead
of keeping it firing forever; a resolved alert is sent with the time it resolved, which resolves
it at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

from alerting.events import FIRING, RESOLVED, Alert, Notification, OutgoingRequest, fingerprint, rfc3339

PUSH_PATH = "/api/v2/alerts"
# Prometheus' default resend delay (--rules.alert.resend-delay).
DEFAULT_RESEND_SECONDS = 60.0
# Alertmanager (up to 0.27, and later ones by default) accepts only these label and
# annotation names; anything else is answered with 400 and would never be delivered.
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Alertmanager's fingerprint is inferwatch's dedup key (see alerting.events.fingerprint)
alertmanager_fingerprint = fingerprint


def _check_names(kind: str, names: Iterable[str], alert: Alert) -> None:
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{kind} name {name!r} of alert {alert.labels.get('alertname', '?')!r} is not "
                             "accepted by Alertmanager (letters, digits and '_', not starting with a digit)")


def push_body(alerts: Sequence[Alert], now_ms: int, resend_seconds: float = DEFAULT_RESEND_SECONDS,
              *, generator_url: str = "") -> list[dict]:
    """The JSON value (before encoding) of ``POST /api/v2/alerts`` for these alerts.

    Each alert becomes Alertmanager's ``postableAlert``: ``labels`` (empty values left out, as
    Alertmanager drops them), ``annotations``, ``startsAt``, ``endsAt`` and ``generatorURL``, times
    as RFC 3339 UTC with milliseconds (:func:`alerting.events.rfc3339`).

    ``endsAt`` (Prometheus' rule, see the module docstring): for a firing alert
    ``now_ms + 4 × resend_seconds``, so Alertmanager resolves it by itself if no re-send comes;
    for a resolved alert its ``ends_at_ms``, or ``now_ms`` when that is unset.

    Args:
        alerts: the alerts, firing or resolved, in the order to send them.
        now_ms: the time of sending (UTC epoch milliseconds).
        resend_seconds: how often inferwatch re-sends an active alert (> 0).
        generator_url: ``generatorURL`` for alerts whose ``generator_url`` is empty.

    Returns:
        one dict per alert, in order.

    Raises:
        ValueError: ``resend_seconds`` not > 0; an alert whose status is neither firing nor
            resolved, with no non-empty label, with a label or annotation name Alertmanager
            rejects, or that would end before it starts (Alertmanager answers 400 to those).
    """
    if not resend_seconds > 0:
        raise ValueError(f"resend_seconds must be > 0, got {resend_seconds}")
    valid_until_ms = now_ms + round(4 * resend_seconds * 1000)
    body = []
    for alert in alerts:
        if alert.status == FIRING:
            ends_at_ms = valid_until_ms
        elif alert.status == RESOLVED:
            ends_at_ms = alert.ends_at_ms if alert.ends_at_ms is not None else now_ms
        else:
            raise ValueError(f"alert status must be {FIRING!r} or {RESOLVED!r}, got {alert.status!r}")
        labels = {k: v for k, v in alert.labels.items() if v != ""}
        if not labels:
            raise ValueError("an alert needs at least one label with a value")
        _check_names("label", labels, alert)
        _check_names("annotation", alert.annotations, alert)
        if ends_at_ms < alert.starts_at_ms:
            raise ValueError(f"alert {alert.labels.get('alertname', '?')!r} ends ({rfc3339(ends_at_ms)}) "
                             f"before it starts ({rfc3339(alert.starts_at_ms)})")
        body.append({
            "labels": labels,
            "annotations": dict(alert.annotations),
            "startsAt": rfc3339(alert.starts_at_ms),
            "endsAt": rfc3339(ends_at_ms),
            "generatorURL": alert.generator_url or generator_url,
        })
    return body


def idempotency_key(key: str, receiver_name: str) -> str:
    """The outbox idempotency key of one push: ``{key}:{receiver_name}`` (the convention of
    :func:`alerting.notifiers.requests_for`), so one message sent to two receivers gives two keys
    and a second enqueue of the same push gives the same key."""
    return f"{key}:{receiver_name}"


def push_request(notification: Notification, receiver_name: str, key: str, now_ms: int,
                 resend_seconds: float = DEFAULT_RESEND_SECONDS) -> OutgoingRequest:
    """The outbox entry that pushes a notification's alerts into an Alertmanager.

    ``POST /api/v2/alerts`` (appended to the receiver's base URL, e.g.
    ``http://alertmanager:9093``) with :func:`push_body` of the alerts; alerts without a
    ``generator_url`` link to ``notification.external_url``. Alertmanager answers 200 with an
    empty body when it took the alerts, 400 when one is invalid (not retried).

    Args:
        notification: the alerts to push (firing and resolved ones of one group).
        receiver_name: the configured Alertmanager receiver; the request's ``target``.
        key: unique per message (each periodic re-send of an active alert needs its own, e.g.
            the dedup key and the send time); with ``receiver_name`` it gives the idempotency key
            (:func:`idempotency_key`).
        now_ms: the time of sending (UTC epoch milliseconds).
        resend_seconds: how often active alerts are re-sent (> 0); firing alerts get
            ``endsAt = now_ms + 4 × resend_seconds``.

    Returns:
        the request. When an alert fires it expires at that ``endsAt``: delivered later, it would
        only repeat what Alertmanager already concluded (the alert resolved by timeout), and the
        next re-send carries the current state. A push of resolved alerts only never expires.

    Raises:
        ValueError: as :func:`push_body`.
    """
    body = push_body(notification.alerts, now_ms, resend_seconds, generator_url=notification.external_url)
    fires = any(a.status == FIRING for a in notification.alerts)
    return OutgoingRequest(
        target=receiver_name,
        method="POST",
        path=PUSH_PATH,
        body=json.dumps(body, separators=(",", ":")),
        idempotency_key=idempotency_key(key, receiver_name),
        expires_at_ms=now_ms + round(4 * resend_seconds * 1000) if fires else None,
    )
