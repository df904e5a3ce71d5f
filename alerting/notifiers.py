"""Notification receivers: their configuration and the bodies they are sent.

The body builders are pure: a :class:`~alerting.events.Notification` (or one
:class:`~alerting.events.Alert`) in, a JSON-ready dict out (FORMATS.md section 7):

- :func:`webhook_body`: the Alertmanager webhook body (``version`` "4"), which receivers written
  for Alertmanager accept unchanged;
- :func:`pagerduty_event`: a PagerDuty Events v2 event (trigger or resolve, dedup key = the
  alert's fingerprint);
- :func:`slack_message`: a Slack incoming-webhook message.

:func:`requests_for` turns a notification into the :class:`~alerting.events.OutgoingRequest`
rows a receiver needs; they go into the outbox and are sent by :mod:`alerting.outbox`. No body
holds a credential: the PagerDuty routing key, bearer tokens and signatures are added when a
request is sent (:mod:`alerting.delivery`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, model_validator

from alerting.endpoint import Endpoint, Secret
from alerting.events import FIRING, RESOLVED, ZERO_TIME, Alert, Notification, OutgoingRequest, rfc3339
from alerting.outbox import OutboxConfig

PAGERDUTY_URL = "https://events.pagerduty.com"
PAGERDUTY_PATH = "/v2/enqueue"
PAGERDUTY_SUMMARY_MAX = 1024  # Events v2 rejects longer summaries
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
# alert severity label -> PagerDuty severity; anything else is "warning"
_PD_SEVERITY = {"critical": "critical", "page": "critical", "error": "error", "high": "error", "major": "error",
                "warning": "warning", "warn": "warning", "medium": "warning", "info": "info", "low": "info",
                "none": "info"}
SLACK_MAX_ALERTS = 20  # alerts shown as blocks; Slack allows 50 blocks per message
_SLACK_TEXT_MAX = 3000  # Slack's limit for a section block's text

ReceiverType = Literal["webhook", "alertmanager", "pagerduty", "slack"]


class ReceiverConfig(Endpoint):
    """One notification receiver (an entry of ``alerting.receivers``).

    Attributes:
        name: unique name (letters, digits, ``_ . -``); the outbox target and the ``receiver``
            of webhook bodies.
        type: ``webhook`` (Alertmanager webhook body POSTed to ``url``), ``alertmanager`` (alerts
            pushed to an Alertmanager's ``/api/v2/alerts``), ``pagerduty`` (Events v2 at
            ``url`` + ``/v2/enqueue``; ``url`` defaults to ``https://events.pagerduty.com``) or
            ``slack`` (incoming webhook ``url``).
        routing_key: the PagerDuty integration key (from env or file); required for and only
            allowed with ``pagerduty``.
        match: only alerts whose labels equal all of these are sent (empty: all).
        send_resolved: also notify when alerts resolve.

    Raises:
        ValueError: (at validation) a missing or misplaced routing key, or any invalid field;
            the message names the receiver.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    type: ReceiverType
    routing_key: Secret | None = None
    match: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = True

    @model_validator(mode="wrap")
    @classmethod
    def _named(cls, data, handler):
        # every error says which receiver, also those of nested fields (a secret's unset variable)
        name = data.get("name") if isinstance(data, dict) else None
        if isinstance(data, dict) and data.get("type") == "pagerduty" and "url" not in data:
            data = {**data, "url": PAGERDUTY_URL}
        try:
            receiver = handler(data)
        except ValidationError as exc:
            if name is None:
                raise
            problems = "; ".join(
                (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
                for e in exc.errors())
            raise ValueError(f"receiver {name!r}: {problems}") from None
        if receiver.type == "pagerduty" and receiver.routing_key is None:
            raise ValueError(f"receiver {name!r}: type pagerduty needs routing_key ({{env: NAME}} or {{file: PATH}})")
        if receiver.type != "pagerduty" and receiver.routing_key is not None:
            raise ValueError(f"receiver {name!r}: routing_key applies to type pagerduty only, not {receiver.type}")
        return receiver

    def accepts(self, alert: Alert) -> bool:
        """Whether ``alert`` is sent to this receiver: its labels match and, when resolved,
        ``send_resolved`` is on."""
        if alert.status == RESOLVED and not self.send_resolved:
            return False
        return all(alert.labels.get(k) == v for k, v in self.match.items())


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    """The items equal in every dict (Alertmanager's commonLabels / commonAnnotations)."""
    if not dicts:
        return {}
    return {k: v for k, v in dicts[0].items() if all(d.get(k) == v for d in dicts[1:])}


def _ends_at(alert: Alert) -> str:
    if alert.status == FIRING or alert.ends_at_ms is None:
        return ZERO_TIME
    return rfc3339(alert.ends_at_ms)


def webhook_body(notification: Notification, receiver_name: str) -> dict:
    """The Alertmanager webhook body (``version`` "4") of a notification.

    Returns:
        ``{version, groupKey, truncatedAlerts (0), status (firing when any alert fires),
        receiver, groupLabels, commonLabels, commonAnnotations (items equal across all
        alerts), externalURL, alerts: [{status, labels, annotations, startsAt, endsAt
        (0001-01-01T00:00:00Z while firing), generatorURL, fingerprint}]}``.
    """
    alerts = list(notification.alerts)
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": receiver_name,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": notification.external_url,
        "alerts": [{
            "status": a.status,
            "labels": dict(a.labels),
            "annotations": dict(a.annotations),
            "startsAt": rfc3339(a.starts_at_ms),
            "endsAt": _ends_at(a),
            "generatorURL": a.generator_url,
            "fingerprint": a.fingerprint,
        } for a in alerts],
    }


def _finite(value):
    """JSON has no NaN or infinity: such numbers become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _summary(alert: Alert) -> str:
    text = alert.annotations.get("summary") or " ".join(
        [alert.name] + [f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname"])
    return text if len(text) <= PAGERDUTY_SUMMARY_MAX else text[:PAGERDUTY_SUMMARY_MAX - 1] + "…"


def pagerduty_event(alert: Alert) -> dict:
    """A PagerDuty Events v2 event for one alert, without the routing key (added at send time).

    Returns:
        resolved: ``{event_action: "resolve", dedup_key}``; firing: ``{event_action: "trigger",
        dedup_key, payload: {summary (annotation ``summary``, else the alert name and labels;
        at most 1024 characters), source (host of the generator URL, else "inferwatch"),
        severity (the ``severity`` label mapped to critical|error|warning|info; unknown:
        warning), timestamp (startsAt), component (``model`` label), group (``model_version``
        label), class (alert name), custom_details (the alert's values; NaN as null)}}`` and
        ``links`` to the generator URL when there is one. ``dedup_key`` is the alert's
        fingerprint, so the resolve closes the incident its trigger opened.
    """
    if alert.status == RESOLVED:
        return {"event_action": "resolve", "dedup_key": alert.fingerprint}
    payload = {
        "summary": _summary(alert),
        "source": urlsplit(alert.generator_url).hostname or "inferwatch",
        "severity": _PD_SEVERITY.get(alert.labels.get("severity", "").lower(), "warning"),
        "timestamp": rfc3339(alert.starts_at_ms),
        "class": alert.name,
        "custom_details": {k: _finite(v) for k, v in alert.values.items()},
    }
    for field, label in (("component", "model"), ("group", "model_version")):
        if alert.labels.get(label):
            payload[field] = alert.labels[label]
    event = {"event_action": "trigger", "dedup_key": alert.fingerprint, "payload": payload}
    if alert.generator_url:
        event["links"] = [{"href": alert.generator_url, "text": "inferwatch"}]
    return event


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK_MESSAGE_MAX = 40_000  # characters Slack shows of a message's text


def slack_message(notification: Notification) -> dict:
    """A Slack incoming-webhook message.

    Returns:
        ``{text, blocks}``: ``text`` (the fallback shown in notifications) is a title like
        ``[FIRING:2] InferwatchDatasetDrift m`` followed by one line per alert with its
        summary, cut to :data:`SLACK_MESSAGE_MAX` characters (Slack's limit) with a note of
        how many lines were left out; ``blocks`` holds a header, one section per alert (at most 20, then a note of
        how many more) and a context line with the external URL.
    """
    alerts = notification.alerts
    n_firing = sum(a.status == FIRING for a in alerts)
    status = f"FIRING:{n_firing}" if n_firing else "RESOLVED"
    title = f"[{status}] " + " ".join(notification.group_labels[k] for k in sorted(notification.group_labels))
    lines = []
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    for i, a in enumerate(alerts):
        summary = a.annotations.get("summary") or a.name
        lines.append(f"{a.status}: {summary}")
        if i < SLACK_MAX_ALERTS:
            labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
            text = f"*{a.status}* {_slack_escape(summary)}\n`{_slack_escape(labels)}`"
            if a.generator_url:
                text += f"\n<{a.generator_url}|source>"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:_SLACK_TEXT_MAX]}})
    if len(alerts) > SLACK_MAX_ALERTS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"and {len(alerts) - SLACK_MAX_ALERTS} more"}]})
    if notification.external_url:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"inferwatch: {_slack_escape(notification.external_url)}"}]})
    text = "\n".join([title, *lines])
    if len(text) > SLACK_MESSAGE_MAX:  # Slack truncates longer messages; say how much is left out
        kept = text[:SLACK_MESSAGE_MAX - 40].rsplit("\n", 1)[0]
        text = f"{kept}\n… and {text.count(chr(10)) - kept.count(chr(10))} more lines"
    return {"text": text, "blocks": blocks}


def _json(body) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False)


def requests_for(notification: Notification, receiver: ReceiverConfig, key: str, now_ms: int,
                 outbox: OutboxConfig | None = None, resend_seconds: float = 60.0) -> list[OutgoingRequest]:
    """The outbox rows that send ``notification`` to ``receiver``.

    Alerts the receiver does not accept (:meth:`ReceiverConfig.accepts`) are dropped first;
    nothing is left, nothing is sent (an empty list).

    Args:
        notification: the group of alerts due.
        receiver: where it goes.
        key: unique and stable per notification (the same on a retried decision, so a second
            enqueue is ignored); the idempotency key is ``{key}:{receiver.name}``, for
            PagerDuty ``{key}:{receiver.name}:{fingerprint}``.
        now_ms: now, UTC epoch ms (the expiry counts from it).
        outbox: its ``expire_after_seconds`` sets each request's expiry (default
            :class:`~alerting.outbox.OutboxConfig`'s).
        resend_seconds: how often firing alerts are re-pushed to Alertmanager receivers (their
            ``endsAt`` is four of these ahead).

    Returns:
        webhook and slack: one request (POST to the receiver's URL) per notification;
        pagerduty: one request (POST ``/v2/enqueue``) per alert; alertmanager: what
        ``alerting.alertmanager.push_request`` gives.
    """
    alerts = tuple(a for a in notification.alerts if receiver.accepts(a))
    if not alerts:
        return []
    if len(alerts) != len(notification.alerts):
        notification = dataclasses.replace(notification, alerts=alerts)
    expire = (outbox or OutboxConfig()).expire_after_seconds
    expires_at = None if expire is None else now_ms + int(expire * 1000)
    base = f"{key}:{receiver.name}"
    if receiver.type == "webhook":
        reqs = [OutgoingRequest(receiver.name, "POST", "", _json(webhook_body(notification, receiver.name)), base)]
    elif receiver.type == "slack":
        reqs = [OutgoingRequest(receiver.name, "POST", "", _json(slack_message(notification)), base)]
    elif receiver.type == "pagerduty":
        reqs = [OutgoingRequest(receiver.name, "POST", PAGERDUTY_PATH, _json(pagerduty_event(a)),
                                f"{base}:{a.fingerprint}") for a in alerts]
    else:  # alertmanager
        from alerting.alertmanager import push_request

        made = push_request(notification, receiver.name, key, now_ms, resend_seconds)
        reqs = [made] if isinstance(made, OutgoingRequest) else list(made)
    return [r if r.expires_at_ms is not None else dataclasses.replace(r, expires_at_ms=expires_at) for r in reqs]
