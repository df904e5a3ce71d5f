"""Decoders for the wire formats real serving fleets emit, into the canonical record.

Entry points:

- :func:`decode_messages` ``(messages, fmt, limits) -> Decoded``: decode a batch with the
  format fixed by ``fmt.format``, or detected per message when it is ``auto``;
- :func:`detect_format` ``(message) -> str``: the format a message looks like, from its headers,
  topic and body;
- :class:`FormatConfig` and :class:`Limits` (:mod:`collector.formats.config`);
- :mod:`collector.formats.files`: messages from JSON-lines files and Kafka dumps, for replay.

Formats (one module each): ``inferwatch`` (:mod:`collector.decode`), ``labels``, ``mapped_json``,
``kserve`` (:mod:`.cloudevents`), ``oip``, ``seldon_v2`` and ``seldon_v1`` (:mod:`.seldon`),
``sagemaker``, ``bentoml``. Every decoder turns bad messages into
:class:`collector.decode.Rejected` entries and never raises on message content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from collector.decode import decode_json_batch
from collector.formats import bentoml, cloudevents, labels, mapped_json, oip, sagemaker, seldon
from collector.formats.columns import merge_decoded
from collector.formats.config import FORMAT_NAMES, FormatConfig, JsonMapping, Limits
from collector.message import Message
from collector.record import Decoded

__all__ = ["FORMAT_NAMES", "DECODERS", "FormatConfig", "JsonMapping", "Limits", "UNKNOWN",
           "decode_messages", "detect_format"]

UNKNOWN = "unknown"


def decode_inferwatch(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """inferwatch's own JSON record (:func:`collector.decode.decode_json_batch`) as whole records."""
    batch = decode_json_batch(messages, limits.max_message_bytes, limits.max_features, limits.max_event_time_ms)
    return Decoded(records=batch.frame, rejected=batch.rejected)


Decoder = Callable[[Sequence[Message], FormatConfig, Limits], Decoded]
DECODERS: dict[str, Decoder] = {
    "inferwatch": decode_inferwatch,
    "mapped_json": mapped_json.decode,
    "kserve": cloudevents.decode,
    "oip": oip.decode,
    "seldon_v2": seldon.decode_v2,
    "seldon_v1": seldon.decode_v1,
    "sagemaker": sagemaker.decode,
    "bentoml": bentoml.decode,
    "labels": labels.decode,
}

# body keys, matched on the raw bytes (no parse) in the order checked
_BODY_RULES: tuple[tuple[str, tuple[re.Pattern[bytes], ...]], ...] = tuple(
    (fmt, tuple(re.compile(rb'"' + key.encode() + rb'"\s*:') for key in keys))
    for fmt, keys in (
        ("sagemaker", ("captureData",)),
        ("sagemaker", ("groundTruthData",)),
        ("inferwatch", ("model_version", "request_id", "features", "predictions")),
        ("bentoml", ("request_id", "trace_id", "timestamp")),
        ("bentoml", ("columns", "meta_data")),
        ("labels", ("request_id", "label")),
        ("oip", ("datatype", "shape")),
    ))
_OIP_ERROR = re.compile(rb'^\s*\{\s*"error"\s*:')
_BENTO_SCHEMA = re.compile(rb'^\s*\{\s*"columns"\s*:')


def _bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8", "replace") if isinstance(value, str) else bytes(value)


def detect_format(message: Message) -> str:
    """The format a message looks like, or ``"unknown"``.

    Rules, first match wins: ``ce_*`` headers or a ``application/cloudevents`` content type ->
    ``kserve`` (``seldon_v1`` when the event type is ``io.seldon...``); a ``seldon-infer-type``
    header or a Seldon v2 topic name -> ``seldon_v2``; a ``type`` header ``io.seldon...`` ->
    ``seldon_v1``; then body keys: ``captureData`` / ``groundTruthData`` -> ``sagemaker``;
    inferwatch's record keys -> ``inferwatch``; ``request_id`` + ``trace_id`` + ``timestamp``
    or a ``columns`` schema -> ``bentoml``; ``request_id`` + ``label`` -> ``labels``; tensors
    with ``datatype`` and ``shape`` (or an ``error`` body) -> ``oip``. The body is matched on
    its raw bytes, not parsed.
    """
    hdr = {name.lower(): _bytes(value) for name, value in message.headers}
    ce_type = hdr.get("ce_type", b"")
    if ce_type or any(k.startswith("ce_") for k in hdr):
        return "seldon_v1" if ce_type.startswith(b"io.seldon.") else "kserve"
    if hdr.get("content-type", b"").lower().startswith(b"application/cloudevents"):
        value = message.value or b""
        return "seldon_v1" if re.search(rb'"type"\s*:\s*"io\.seldon\.', value[:4096]) else "kserve"
    if "seldon-infer-type" in hdr or seldon.parse_topic(message.topic) or seldon.ERROR_TOPIC.match(message.topic):
        return "seldon_v2"
    if hdr.get("type", b"").startswith(b"io.seldon."):
        return "seldon_v1"
    value = message.value
    if not value:
        return UNKNOWN
    if _BENTO_SCHEMA.match(value):
        return "bentoml"
    for fmt, patterns in _BODY_RULES:
        if all(p.search(value) for p in patterns):
            return fmt
    if _OIP_ERROR.match(value):
        return "oip"
    return UNKNOWN


def decode_messages(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode a batch of messages into the canonical record's frames.

    With ``fmt.format`` fixed, every message goes to that format's decoder. With ``auto``
    each message is routed by :func:`detect_format`; messages no rule recognises go to
    ``mapped_json`` when ``fmt.mapping`` is set, else to the ``inferwatch`` record decoder,
    which rejects them with the precise reason (invalid JSON, missing field, ...).

    Args:
        messages: raw messages in the order read.
        fmt: how this topic or file is decoded.
        limits: per-message bounds.

    Returns:
        Whole records, request and response halves, labels, and the rejected messages in
        input order. Never raises on message content.
    """
    if fmt.format != "auto":
        return DECODERS[fmt.format](messages, fmt, limits)
    groups: dict[str, list[Message]] = {}
    for m in messages:
        groups.setdefault(detect_format(m), []).append(m)
    unknown = groups.pop(UNKNOWN, [])
    if unknown:
        # with a field mapping, flat JSON logs; else inferwatch's own record, whose decoder
        # names exactly what is wrong (invalid JSON, a missing field, ...)
        groups.setdefault("mapped_json" if fmt.mapping is not None else "inferwatch", []).extend(unknown)
    parts = [DECODERS[name](group, fmt, limits) for name, group in groups.items()]
    if len(parts) == 1:
        return parts[0]
    return merge_decoded(parts, {id(m): i for i, m in enumerate(messages)})
