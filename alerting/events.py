"""The values alerting hands around: an alert instance, a group of them to notify, and one
outgoing HTTP call waiting in the outbox.

Everything here is plain data. Rules (:mod:`alerting.rules`) produce :class:`Alert` values, the
lifecycle (:mod:`alerting.lifecycle`) decides when a :class:`Notification` is due, notifiers
turn a notification into :class:`OutgoingRequest` bodies, and the outbox worker
(:mod:`alerting.outbox`) delivers them. Times are UTC epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

FIRING = "firing"
RESOLVED = "resolved"

# Alertmanager's "not ended yet" time, sent as endsAt while an alert fires
ZERO_TIME = "0001-01-01T00:00:00Z"


_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fingerprint(labels: dict[str, str]) -> str:
    """Dedup key of an alert instance: 16 lowercase hex digits, the fingerprint Alertmanager
    gives the same labels, so a receiver sees one key whether an alert came from inferwatch
    directly or through Alertmanager.

    FNV-1a 64 over the labels sorted by name (name, 0xFF, value, 0xFF each), as in
    prometheus/common ``model.LabelSet.Fingerprint``; labels with an empty value are left out,
    as Alertmanager drops them. Equal label sets give equal fingerprints in every process and
    after restarts.
    """
    h = _FNV_OFFSET
    for name in sorted(k for k, v in labels.items() if v != ""):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ 0xFF) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rfc3339(ms: int) -> str:
    """``ms`` (UTC epoch milliseconds) as an RFC 3339 / ISO 8601 UTC time with milliseconds,
    e.g. ``2026-12-01T03:00:00.000Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True)
class Alert:
    """One alert instance at the moment it is notified.

    Attributes:
        status: ``"firing"`` or ``"resolved"``.
        labels: identify the instance: at least ``alertname``, ``model``, ``severity``; rules over
            one feature add ``feature``. Bounded values only (never request ids).
        annotations: human text templated with the numbers that fired it (``summary``,
            ``description``, ...).
        starts_at_ms: when it started firing.
        ends_at_ms: when it resolved; None while firing.
        generator_url: link back to inferwatch (its ``/metrics`` or API).
        values: the numbers behind it (name → value), for bodies that carry details
            (PagerDuty ``custom_details``, retraining payloads).
    """

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at_ms: int
    ends_at_ms: int | None = None
    generator_url: str = ""
    values: dict[str, float | str | None] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The dedup key: :func:`fingerprint` of the labels."""
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels["alertname"]


@dataclass(frozen=True)
class Notification:
    """Alerts of one group (one model) that are due to be sent together.

    Attributes:
        group_labels: the labels the group is keyed by (``alertname`` and ``model``).
        alerts: the group's alerts, firing ones first; never empty.
        external_url: where inferwatch is reachable (Alertmanager's ``externalURL``).
    """

    group_labels: dict[str, str]
    alerts: tuple[Alert, ...]
    external_url: str

    @property
    def status(self) -> str:
        """``"firing"`` when any alert fires, else ``"resolved"``."""
        return FIRING if any(a.status == FIRING for a in self.alerts) else RESOLVED

    @property
    def group_key(self) -> str:
        """Alertmanager-style group key: ``{}:{k="v", ...}`` over the sorted group labels."""
        inner = ", ".join(f'{k}="{self.group_labels[k]}"' for k in sorted(self.group_labels))
        return f"{{}}:{{{inner}}}"


@dataclass(frozen=True)
class OutgoingRequest:
    """One HTTP call, stored in the outbox before it is sent.

    The body holds no secret: credentials (bearer tokens, PagerDuty routing keys, signing
    secrets) are added at delivery from the target's configuration, so the database never
    holds them.

    Attributes:
        target: name of the configured receiver or hook that sends it (resolves to its URL,
            credentials and how it says "accepted").
        method: ``"POST"`` or ``"PATCH"``.
        path: appended to the target's base URL (``""`` for the URL itself), e.g.
            ``/repos/acme/models/dispatches``.
        body: the JSON text to send.
        idempotency_key: unique per message; sent as ``Idempotency-Key`` (and ``webhook-id``
            when signed) so a receiver can drop a repeat; a second enqueue of the same key is
            ignored.
        expires_at_ms: give up (state ``dead``) when not delivered by then; None: never.
        content_type: the body's media type.
    """

    target: str
    method: str
    path: str
    body: str
    idempotency_key: str
    expires_at_ms: int | None = None
    content_type: str = "application/json"
