"""One HTTP attempt of an outbox message, and whether the answer means delivered, retry later
or give up.

Credentials are added here, at send time, from the target's configuration: the
``Authorization`` bearer token, the Standard Webhooks signature (:mod:`alerting.signing`) and,
for PagerDuty, the routing key inside the body. So the outbox table never holds a secret, and
nothing here logs a request body or header.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote

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


_BODY_MAX = 64 * 1024  # of an answer: receivers answer briefly; more is not read


def header_value(key: str) -> str:
    """An idempotency key as an HTTP header value: itself when it is printable ASCII, else
    percent-encoded UTF-8 (keys hold model names, which may be any text). Stable, so a
    receiver sees one value for one key."""
    if key.isascii() and key.isprintable():
        return key
    return quote(key, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%"))


def _exchange(client: httpx.Client, method: str, url: str, body: bytes, headers: dict[str, str],
              timeout: float) -> tuple[int, str, str | None]:
    """One request with ``timeout`` as the deadline of the whole exchange (httpx's timeouts
    bound each read, so a receiver trickling its answer could hold a call much longer).

    Returns:
        ``(status, body text (at most 64 KiB, stripped), Retry-After header)``.

    Raises:
        httpx.ReadTimeout: the answer did not end within the deadline.
        httpx.HTTPError: the request failed.
    """
    deadline = time.monotonic() + timeout
    with client.stream(method, url, content=body, headers=headers, timeout=timeout) as resp:
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _BODY_MAX:
                break
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"answer not complete within {timeout:g} s")
        text = b"".join(chunks)[:_BODY_MAX].decode(resp.encoding or "utf-8", errors="replace").strip()
        return resp.status_code, text, resp.headers.get("Retry-After")


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

    Headers sent: ``Content-Type``, ``Idempotency-Key`` (:func:`header_value` of the key),
    ``User-Agent: inferwatch``, the
    endpoint's ``headers``, ``Authorization: Bearer`` when a token is set, and ``webhook-id``
    (= the idempotency key), ``webhook-timestamp``, ``webhook-signature`` when a signing secret
    is set. ``endpoint.timeout_seconds`` bounds the whole call, the answer included.

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
    wire_key = header_value(req.idempotency_key)
    headers = {"Content-Type": req.content_type, "Idempotency-Key": wire_key, "User-Agent": USER_AGENT,
               **endpoint.headers}
    if endpoint.bearer_token is not None:
        headers["Authorization"] = f"Bearer {endpoint.bearer_token.get()}"
    if endpoint.signing_secret is not None:
        try:
            headers.update(sign(endpoint.signing_secret.get(), wire_key, now_ms // 1000, body))
        except ValueError as exc:
            return Outcome(False, False, None, f"cannot sign: {exc}")
    try:
        code, text, retry_after = _exchange(client, req.method, endpoint.base_url() + req.path, body, headers,
                                            endpoint.timeout_seconds)
    except httpx.TransportError as exc:  # connect/read/write errors and timeouts
        return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])
    except httpx.HTTPError as exc:  # an unusable URL or redirect: retrying will not help
        return Outcome(False, False, None, f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])
    except (ValueError, TypeError, UnicodeError) as exc:  # a header or URL no HTTP request can carry
        return Outcome(False, False, None, f"cannot send: {type(exc).__name__}: {exc}"[:_DETAIL_MAX])
    detail = f"HTTP {code}" + (f": {text}" if text else "")
    detail = detail[:_DETAIL_MAX]
    if 200 <= code < 300:
        if kind == "slack" and (code != 200 or text != "ok"):
            return Outcome(False, False, code, "slack answered " + detail)
        return Outcome(True, False, code, detail)
    if code in getattr(endpoint, "repeat_statuses", ()):
        return Outcome(True, False, code, "delivered before: " + detail)
    if code in (408, 429) or code >= 500:
        return Outcome(False, True, code, detail, _retry_after(retry_after, now_ms))
    return Outcome(False, False, code, detail)
