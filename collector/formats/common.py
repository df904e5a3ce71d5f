"""What every format decoder does to a raw message: size check, headers, JSON, event time."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, tzinfo

from collector.decode import RecordError, RejectReason, parse_timestamp
from collector.formats.config import Limits
from collector.message import Message

# JSON escapes that decode to text no database stores: NUL and (lone) UTF-16 surrogates
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def payload(msg: Message, limits: Limits) -> bytes:
    """The message value, checked against the size limit.

    Raises:
        RecordError: ``empty_message`` (no value) or ``oversize``.
    """
    raw = msg.value
    if not raw:
        raise RecordError(RejectReason.EMPTY, "message has no value")
    if len(raw) > limits.max_message_bytes:
        raise RecordError(RejectReason.OVERSIZE, f"{len(raw)} bytes > limit {limits.max_message_bytes}")
    return raw


def headers(msg: Message) -> dict[str, str]:
    """Kafka headers as text, names lower-cased; the first of repeated names wins.

    Header values are bytes on the wire; undecodable bytes become U+FFFD.
    """
    out: dict[str, str] = {}
    for name, value in msg.headers:
        key = name.lower()
        if key in out:
            continue
        if isinstance(value, bytes):
            out[key] = value.decode("utf-8", errors="replace")
        elif value is not None:
            out[key] = str(value)
    return out


def _check_text(obj: object, where: str) -> None:
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}: text contains a NUL character")
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}: text contains an unpaired UTF-16 surrogate") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def load_json(raw: bytes | str, where: str = "value") -> object:
    """Parse JSON text (bytes must be UTF-8).

    Raises:
        RecordError: ``invalid_utf8``, ``invalid_json``, or ``wrong_type`` for text holding NUL
            or unpaired surrogates (no database stores them).
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(RejectReason.INVALID_UTF8, f"{where}: not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = raw
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(RejectReason.INVALID_JSON, f"{where}: invalid JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise RecordError(RejectReason.INVALID_JSON, f"{where}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise RecordError(RejectReason.INVALID_JSON, f"{where}: invalid JSON: {exc}") from None
    if _SUSPECT_ESCAPE.search(text):  # rare: only then walk the parsed value
        _check_text(obj, where)
    return obj


def load_object(raw: bytes | str, where: str = "value") -> dict:
    """Parse JSON text that must be an object.

    Raises:
        RecordError: as :func:`load_json`, or ``not_an_object``.
    """
    obj = load_json(raw, where)
    if not isinstance(obj, dict):
        raise RecordError(RejectReason.NOT_AN_OBJECT, f"{where}: a JSON {type(obj).__name__}, not an object")
    return obj


def b64decode(text: object, where: str) -> bytes:
    """Strict base64 (standard alphabet, padding required).

    Raises:
        RecordError: ``wrong_type`` (not text) or ``invalid_base64``.
    """
    if not isinstance(text, str):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: base64 data must be a string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordError(RejectReason.INVALID_BASE64, f"{where}: invalid base64: {exc}") from None


def parse_time(value: object, where: str, zone: tzinfo | None = None) -> int:
    """Epoch milliseconds from RFC 3339 text or an epoch-milliseconds number.

    Text without a UTC offset is read in ``zone`` when given, else rejected.

    Raises:
        RecordError: ``invalid_timestamp`` naming ``where``.
    """
    if zone is not None and isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(RejectReason.INVALID_TIMESTAMP, f"{where}: {value[:64]!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        value = int(round(parsed.timestamp() * 1000))
    try:
        return parse_timestamp(value)
    except RecordError as err:
        detail = str(err).removeprefix("timestamp: ")
        raise RecordError(err.reason, f"{where}: {detail}") from None


def event_time(value: object, where: str, msg: Message, limits: Limits, zone: tzinfo | None = None) -> int:
    """The event time: ``value`` (the format's own time field) when present, else the Kafka
    message timestamp; checked against ``limits.max_event_time_ms``.

    Raises:
        RecordError: ``invalid_timestamp``, ``missing_field`` (neither is there) or
            ``future_timestamp``.
    """
    if value is not None and value != "":
        ms = parse_time(value, where, zone)
    elif msg.timestamp_ms is not None and msg.timestamp_ms >= 0:
        ms = int(msg.timestamp_ms)
    else:
        raise RecordError(RejectReason.MISSING_FIELD, f"{where}: no event time in the message and no message timestamp")
    if limits.max_event_time_ms is not None and ms > limits.max_event_time_ms:
        raise RecordError(RejectReason.FUTURE_TIMESTAMP, f"{where}: {ms} ms is beyond {limits.max_event_time_ms}")
    return ms


def position_id(msg: Message) -> str:
    """A request id from the message position, for formats whose lines carry none."""
    return f"{msg.topic}:{msg.partition}:{msg.offset}"


def text_id(value: object, where: str) -> str | None:
    """A request id from a JSON value: non-empty text, or an integer written as text.

    Raises:
        RecordError: ``wrong_type`` for any other value.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: must be a string")
    text = str(value)
    return text or None


def require_model(model: str | None, where: str) -> str:
    """The model name, or a rejection saying where it should have come from.

    Raises:
        RecordError: ``missing_field``.
    """
    if not model:
        raise RecordError(RejectReason.MISSING_FIELD, f"model: {where} names no model and the format "
                                                      "config sets no `model`")
    return model
