"""Request signing by the Standard Webhooks convention (https://www.standardwebhooks.com).

A signed request carries three headers:

- ``webhook-id``: the message id (our idempotency key), the same on every retry;
- ``webhook-timestamp``: when it was sent, integer UTC epoch seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"``;
  a receiver accepts the request when any of its space-separated signatures matches.

The key is the secret's bytes: for a secret ``whsec_<base64>`` (the convention's format) the
decoded base64, for any other secret its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be followed by base64") from None
    return secret.encode()


def _signature(key: bytes, msg_id: str, timestamp_s: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp_s}.".encode() + body
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign(secret: str, msg_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The signing headers of one request.

    Args:
        secret: ``whsec_<base64>`` or any other non-empty text (its UTF-8 bytes are the key).
        msg_id: the message id; inferwatch uses the idempotency key, so retries keep it.
        timestamp_s: send time, integer UTC epoch seconds.
        body: the exact bytes sent as the request body.

    Returns:
        ``{"webhook-id", "webhook-timestamp", "webhook-signature"}``; the signature is
        ``v1,`` followed by the base64 HMAC-SHA256.

    Raises:
        ValueError: the secret is empty or a ``whsec_`` secret is not base64.
    """
    if not secret:
        raise ValueError("the signing secret is empty")
    sig = _signature(_key(secret), msg_id, int(timestamp_s), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp_s)), "webhook-signature": f"v1,{sig}"}


def verify(secret: str, headers: Mapping[str, str], body: bytes, now_s: int | float,
           tolerance_s: int = 300) -> bool:
    """Whether a request carries a valid Standard Webhooks signature (what a receiver checks).

    Args:
        secret: the shared secret, as for :func:`sign`.
        headers: the request headers (names in any case).
        body: the raw request body.
        now_s: the receiver's current time, UTC epoch seconds.
        tolerance_s: largest accepted distance between ``webhook-timestamp`` and ``now_s``, in
            seconds (replay protection).

    Returns:
        True when the headers are present, the timestamp is within the tolerance and at least
        one ``v1,`` signature of the space-separated list matches (compared in constant time).
        False otherwise, including for malformed headers.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sigs = lower.get("webhook-id"), lower.get("webhook-timestamp"), lower.get("webhook-signature")
    if not msg_id or not stamp or not sigs:
        return False
    try:
        ts = int(stamp)
        key = _key(secret)
    except ValueError:
        return False
    if abs(now_s - ts) > tolerance_s:
        return False
    expected = _signature(key, msg_id, ts, body).encode()
    found = False
    for item in sigs.split(" "):
        version, _, value = item.partition(",")
        # every candidate is compared, so the time taken does not tell which one matched
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            found = True
    return found
