"""Standard Webhooks request signing: a known vector computed here with hmac/base64, the verify
round trip, and what verify refuses (tampered body, id or timestamp, stale time, wrong secret)."""

import base64
import hashlib
import hmac

import pytest

from alerting.signing import sign, verify

SECRET_BYTES = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(SECRET_BYTES).decode()
BODY = b'{"version":"4","status":"firing"}'
TS = 1_764_558_000


def _expected(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def test_whsec_secret_signs_with_its_decoded_bytes():
    headers = sign(SECRET, "msg_1", TS, BODY)
    assert headers == {"webhook-id": "msg_1", "webhook-timestamp": str(TS),
                       "webhook-signature": _expected(SECRET_BYTES, "msg_1", TS, BODY)}
    # the convention's own example (standard-webhooks spec): fixed secret, id, time and body
    spec = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}')
    assert spec["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_other_secrets_sign_with_their_utf8_bytes():
    headers = sign("plain-secret-é", "k:1", TS, BODY)
    assert headers["webhook-signature"] == _expected("plain-secret-é".encode(), "k:1", TS, BODY)
    assert headers["webhook-signature"] != sign("plain-secret-e", "k:1", TS, BODY)["webhook-signature"]


def test_verify_round_trip_and_tamper_detection():
    headers = sign(SECRET, "k:1", TS, BODY)
    assert verify(SECRET, headers, BODY, now_s=TS + 10)
    # header names in any case, as HTTP servers hand them over
    assert verify(SECRET, {k.title(): v for k, v in headers.items()}, BODY, now_s=TS)
    assert not verify(SECRET, headers, BODY + b" ", now_s=TS)
    assert not verify(SECRET, {**headers, "webhook-id": "k:2"}, BODY, now_s=TS)
    assert not verify(SECRET, {**headers, "webhook-timestamp": str(TS + 1)}, BODY, now_s=TS)
    assert not verify("whsec_" + base64.b64encode(b"another key").decode(), headers, BODY, now_s=TS)
    assert not verify(SECRET, headers, BODY, now_s=TS + 301)  # outside the default tolerance
    assert verify(SECRET, headers, BODY, now_s=TS + 301, tolerance_s=600)
    assert not verify(SECRET, {"webhook-id": "k:1"}, BODY, now_s=TS)
    assert not verify(SECRET, {**headers, "webhook-timestamp": "soon"}, BODY, now_s=TS)


def test_verify_accepts_any_of_several_signatures():
    good = sign(SECRET, "k:1", TS, BODY)["webhook-signature"]
    rotated = f"v1,{base64.b64encode(b'x' * 32).decode()} {good}"
    headers = {"webhook-id": "k:1", "webhook-timestamp": str(TS), "webhook-signature": rotated}
    assert verify(SECRET, headers, BODY, now_s=TS)
    assert not verify(SECRET, {**headers, "webhook-signature": good.replace("v1,", "v2,")}, BODY, now_s=TS)


def test_bad_secrets_are_refused():
    with pytest.raises(ValueError, match="empty"):
        sign("", "k", TS, BODY)
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not*base64", "k", TS, BODY)
