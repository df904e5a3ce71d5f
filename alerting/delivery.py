"""One HTTP attempt of an outbox message, and whether the answer means delivered, retry later
or give up.

Credentials are added here, at send time, from the target's configuration: the
``Authorization`` bearer token, the Standard Webhooks signature (:mod:`alerting.signing`) and,
for PagerDuty, the routing key inside the body. So the outbox table never holds a secret, and
nothing here logs a request body or header.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from alerting.endpoint import Endpoint
from alerting.events import OutgoingRequest
from alerting.signing import sign

USER_AGENT = "inferwatch"
_DETAIL_MAX = 300  # characters of a receiver's answer kept as the error text


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to.

    Attributes:
        accepted: the receiver took the message (delivered).
        retryable: not accepted, but a later attempt may succeed (transport error, timeout,
            408, 429, 5xx); False with ``accepted`` False means give up (dead).
        status: the HTTP status code; None when no answer came.
        detail: short text for the outbox's ``last_error`` (status and the start of the
            answer, or the transport error); never holds a credential.
        retry_after_seconds: the receiver's ``Retry-After`` (seconds) on 429 or 503, if given.
    """

    accepted: bool
    retryable: bool
    status: int | None
    detail: str
    retry_after_seconds: float | None = None


def _retry_after(value: str | None, now_ms: int) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_ms / 1000)
    except (TypeError, ValueError):
        return None


def deliver(client: httpx.Client, kind: str, endpoint: Endpoint, req: OutgoingRequest, now_ms: int) -> Outcome:
    """Send ``req`` once to ``endpoint``.

    Args:
        client: the HTTP client (its connection pool is reused across calls).
        kind: how the body is completed and what counts as accepted: ``pagerduty`` (routing key
            added to the body) and ``slack`` (accepted only on 200 ``ok``) are special; any other
            kind (``webhook``, ``alertmanager``, a hook's) is plain HTTP.
        endpoint: the target's URL and credentials; for ``pagerduty`` an object with a
            ``routing_key`` :class:`~alerting.endpoint.Secret` (a
            :class:`~alerting.notifiers.ReceiverConfig`). An endpoint with a
            ``repeat_statuses`` set of status codes (a retraining hook's) has those answers
            counted as accepted: the peer says the message's idempotency key was seen before.
        req: the stored request; sent as ``req.method`` to ``endpoint.url + req.path``.
        now_ms: now, UTC epoch ms (the signature's timestamp).

    Headers sent: ``Content-Type``, ``Idempotency-Key``, ``User-Agent: inferwatch``, the
    endpoint's ``headers``, ``Authorization: Bearer`` when a token is set, and ``webhook-id``
    (= the idempotency key), ``webhook-timestamp``, ``webhook-signature`` when a signing secret
    is set. The timeout of the call is ``endpoint.timeout_seconds``.

    Returns:
        accepted on 2xx (Slack: only 200 with the body ``ok``) and on the endpoint's
        ``repeat_statuses``; retryable on transport errors,
        timeouts, 408, 429 and 5xx; any other answer is final. Never raises for an HTTP or
        transport failure.
    """
    body = req.body.encode()
    if kind == "pagerduty":
        key = getattr(endpoint, "routing_key", None)
        if key is None:
            return Outcome(False, False, None, "pagerduty target without routing_key")
        try:
            event = json.loads(req.body)
        except ValueError:
            return Outcome(False, False, None, "stored body is not JSON")
        body = json.dumps({"routing_key": key.get(), **event}, separators=(",", ":")).encode()
    headers = {"Content-Type": req.content_type, "Idempotency-Key": req.idempotency_key, "User-Agent": USER_AGENT,
               **endpoint.headers}
    if endpoint.bearer_token is not None:
        headers["Authorization"] = f"Bearer {endpoint.bearer_token.get()}"
    if endpoint.signing_secret is not None:
        try:
            headers.update(sign(endpoint.signing_secret.get(), req.idempotency_key, now_ms // 1000, body))
        except ValueError as exc:
            return Outcome(False, False, None, f"cannot sign: {exc}")
    try:
        resp = client.request(req.method, endpoint.url + req.path, content=body, headers=headers,
                              timeout=endpoint.timeout_seconds)
    except httpx.TransportError as exc:  # connect/read/write errors and timeouts
        return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])
    except httpx.HTTPError as exc:  # an unusable URL or redirect: retrying will not help
        return Outcome(False, False, None, f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])
    code = resp.status_code
    text = resp.text.strip()
    detail = f"HTTP {code}" + (f": {text}" if text else "")
    detail = detail[:_DETAIL_MAX]
    if 200 <= code < 300:
        if kind == "slack" and (code != 200 or text != "ok"):
            return Outcome(False, False, code, "slack answered " + detail)
        return Outcome(True, False, code, detail)
    if code in getattr(endpoint, "repeat_statuses", ()):
        return Outcome(True, False, code, "delivered before: " + detail)
    if code in (408, 429) or code >= 500:
        return Outcome(False, True, code, detail, _retry_after(resp.headers.get("Retry-After"), now_ms))
    return Outcome(False, False, code, detail)
