"""Decoders for the wire formats real serving fleets emit, into the canonical record.

Entry points:

- :func:`decode_messages` ``(messages, fmt, limits) -> Decoded``: decode a batch with the
  format fixed by ``fmt.format``, or routed per message as :func:`detect_format` says when it
  is ``auto``;
- :func:`detect_format` ``(message, mapping=None) -> str``: the format a message looks like,
  from its headers, topic and body (and the topic's JSON mapping, when it has one);
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

import msgspec
import numpy as np
import pandas as pd

from collector.decode import decode_json_batch
from collector.formats import bentoml, cloudevents, labels, mapped_json, oip, sagemaker, seldon
from collector.formats.columns import MAX_ROWS_PER_MESSAGE, merge_decoded
from collector.formats.config import FORMAT_NAMES, FormatConfig, JsonMapping, Limits
from collector.message import Message
from collector.record import Decoded

__all__ = ["FORMAT_NAMES", "DECODERS", "FormatConfig", "JsonMapping", "Limits", "UNKNOWN",
           "decode_messages", "detect_format"]

UNKNOWN = "unknown"


def decode_inferwatch(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """inferwatch's own JSON record (:func:`collector.decode.decode_json_batch`) as whole records."""
    batch = decode_json_batch(messages, limits.max_message_bytes, limits.max_features, limits.max_event_time_ms)
    return Decoded(records=_typed_per_model(batch), rejected=batch.rejected)


def _typed_per_model(batch) -> pd.DataFrame:
    """The batch's rows in input order, each column's values as its own model's frame typed
    them: where two models disagree (numbers for one, text for the other) the column is
    object and still holds each model's numbers as numbers, so splitting it per model gives
    each model its own type back (the pipeline does), never text labels of numbers."""
    if len(batch.frames) <= 1:
        return batch.frame
    codes, _ = pd.factorize(batch.frame["model"])  # frames come in order of each model's first row
    combined = pd.concat(batch.frames, ignore_index=True)
    combined.index = np.argsort(codes, kind="stable")
    return combined.sort_index()[list(batch.frame.columns)]


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


def detect_format(message: Message, mapping: JsonMapping | None = None) -> str:
    """The format a message looks like, or ``"unknown"``.

    Rules, first match wins: ``ce_*`` headers or a ``application/cloudevents`` content type ->
    ``kserve`` (``seldon_v1`` when the event type is ``io.seldon...``); a ``seldon-infer-type``
    header or a Seldon v2 topic name -> ``seldon_v2``; a ``type`` header ``io.seldon...`` ->
    ``seldon_v1``; then body keys: ``captureData`` / ``groundTruthData`` -> ``sagemaker``;
    inferwatch's record keys -> ``inferwatch``; with a ``mapping`` (the topic's configured
    :class:`JsonMapping`), a JSON object in which the mapping finds a feature ->
    ``mapped_json``; ``request_id`` + ``trace_id`` + ``timestamp`` or a ``columns`` schema ->
    ``bentoml``; ``request_id`` + ``label`` -> ``labels``; tensors with ``datatype`` and
    ``shape`` (or an ``error`` body) -> ``oip``. The body is matched on its raw bytes; it is
    parsed only for the mapping rule, and only when the rules before it did not match.
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
        if fmt == "bentoml" and mapping is not None and _mapping_applies(value, mapping):
            return "mapped_json"  # before the rules of other flat logs (bentoml, labels, oip)
        if all(p.search(value) for p in patterns):
            return fmt
    if _OIP_ERROR.match(value):
        return "oip"
    return UNKNOWN


_parse_json = msgspec.json.Decoder().decode


def _mapping_applies(value: bytes, mapping: JsonMapping) -> bool:
    """Whether ``value`` is a JSON object in which one of the mapping's feature paths or
    patterns finds a key (what :mod:`.mapped_json` needs to accept a line)."""
    try:
        obj = _parse_json(value)
    except Exception:  # noqa: BLE001 - not JSON (or too deep): not a mapped log line
        return False
    if type(obj) is not dict:
        return False
    for pattern in mapping.features:
        if pattern.endswith("*"):
            parent_path, _, stem = pattern[:-1].rpartition(".")
            parent = mapped_json.lookup(obj, parent_path) if parent_path else obj
            if isinstance(parent, dict) and (any(k.startswith(stem) for k in parent) if stem else parent):
                return True
        elif mapped_json.lookup(obj, pattern) is not mapped_json.MISSING:
            return True
    return False


# headers that decide a format (detect_format's header rules); messages carrying none of them
# are told apart by topic and body alone
_FORMAT_HEADERS = frozenset({"content-type", "seldon-infer-type", "type"})


def _plain_headers(headers: tuple) -> bool:
    for name, _value in headers:
        if type(name) is not str:
            return False
        name = name.lower()
        if name.startswith("ce_") or name in _FORMAT_HEADERS:
            return False
    return True


def _plain_topic(topic: str) -> bool:
    return not (seldon.parse_topic(topic) or seldon.ERROR_TOPIC.match(topic))


def decode_messages(messages: Sequence[Message], fmt: FormatConfig, limits: Limits,
                    schemas: bentoml.SchemaCache | None = None) -> Decoded:
    """Decode a batch of messages into the canonical record's frames.

    With ``fmt.format`` fixed, every message goes to that format's decoder. With ``auto``
    each message is routed as :func:`detect_format` (given ``fmt.mapping``) says; messages no
    rule recognises go to ``mapped_json`` when ``fmt.mapping`` is set, else to the
    ``inferwatch`` record decoder, which rejects them with the precise reason (invalid JSON,
    missing field, ...). Each decoder gets its messages in input order.

    Args:
        messages: raw messages in the order read.
        fmt: how this topic or file is decoded.
        limits: per-message bounds; ``max_rows_per_message`` holds for every decoder (the
            decoders of single-row formats never reach it).
        schemas: BentoML schemas known per monitor, updated with the schema lines read (the
            caller may store its changes); None: the process-wide ``bentoml.SCHEMAS``.

    Returns:
        Whole records, request and response halves, labels, and the rejected messages in
        input order. Never raises on message content.
    """
    token = MAX_ROWS_PER_MESSAGE.set(limits.max_rows_per_message)
    try:
        if fmt.format == "bentoml":
            return bentoml.decode(messages, fmt, limits, schemas)
        if fmt.format != "auto":
            return DECODERS[fmt.format](messages, fmt, limits)
        return _decode_auto(messages, fmt, limits, schemas)
    finally:
        MAX_ROWS_PER_MESSAGE.reset(token)


_OPEN = np.frombuffer(b'{"', dtype=np.uint8)
_SCHEMA_OPEN = np.frombuffer(b'{"columns"', dtype=np.uint8)


def _plain_message(m: Message, plain_topic: bool) -> bool:
    """Whether nothing about one message could make :func:`detect_format` pick a format before
    inferwatch's own: a plain topic and headers, a body naming ``"features"`` with no escape,
    no SageMaker key and no BentoML schema start (:func:`_plain_run` is the batch form)."""
    v = m.value
    return bool(v and b'"features"' in v and plain_topic and (not m.headers or _plain_headers(m.headers))
                and b"\\" not in v and b'Data"' not in v and v[:2] == b'{"' and v[:10] != b'{"columns"')


def _plain_run(messages: Sequence[Message], topics: dict[str, bool]) -> np.ndarray | None:
    """For a run of messages that look alike (inferwatch records, say), the mask of those whose
    format can be told by trying the inferwatch decoder first; None when the run does not
    qualify as a whole and each message is looked at on its own.

    A run qualifies when no message has a format-deciding header, every topic is plain, every
    value is non-empty bytes, no value holds a backslash (so no ``\\u`` escape) or a SageMaker
    key, and the first and last values name ``"features"``. The mask then holds the values
    that start with ``{"`` but not with ``{"columns"`` (a BentoML schema line).
    """
    if not all(topics.values()) or any(m.headers for m in messages):
        return None
    values = [m.value for m in messages]
    try:
        joined = b"".join(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    except TypeError:  # a tombstone (None value)
        return None
    if not values or b'"features"' not in values[0] or b'"features"' not in values[-1]:
        return None
    # the SageMaker keys contain 'D', which memchr rules out at once in most batches
    if b"\\" in joined or (b"D" in joined and (b'captureData"' in joined or b'groundTruthData"' in joined)):
        return None
    if not lengths.all():
        return None
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    data = np.frombuffer(joined, dtype=np.uint8)
    # the first bytes of every value (past a short value's end: the next one's, masked below)
    head = data[np.minimum(starts[:, None] + np.arange(len(_SCHEMA_OPEN)), len(data) - 1)]
    opened = (head[:, :2] == _OPEN).all(axis=1) & (lengths >= 2)
    schema = (head == _SCHEMA_OPEN).all(axis=1) & (lengths >= len(_SCHEMA_OPEN))
    return opened & ~schema


def _decode_auto(messages: Sequence[Message], fmt: FormatConfig, limits: Limits,
                 schemas: bentoml.SchemaCache | None = None) -> Decoded:
    """``auto`` routing without a regex pass over every body.

    Messages that may be inferwatch records (no format-deciding header, a plain topic, a body
    naming ``"features"``, and none of what the rules before inferwatch's look for) go to the
    inferwatch decoder first, together with the other messages :func:`detect_format` routes
    there. A message that decoder accepts is one :func:`detect_format` calls ``inferwatch``
    (its record keys are in the body, spelled plainly as no ``\\u`` escape is in it); only the
    ones it rejects are run through :func:`detect_format`, and go to the decoder it names, or
    keep their rejection when that is the inferwatch decoder. The result is the one of routing
    every message by :func:`detect_format`.
    """
    mapping = fmt.mapping
    fallback = "mapped_json" if mapping is not None else "inferwatch"
    n = len(messages)
    name_of: list[str | None] = [None] * n  # None: tried by the inferwatch decoder first
    topics = {t: _plain_topic(t) for t in {m.topic for m in messages}}
    plain = _plain_run(messages, topics)
    if plain is not None:
        for i in np.flatnonzero(~plain).tolist():
            name = detect_format(messages[i], mapping)
            name_of[i] = fallback if name == UNKNOWN else name
    else:
        for i, m in enumerate(messages):
            if _plain_message(m, topics[m.topic]):
                continue
            name = detect_format(m, mapping)
            name_of[i] = fallback if name == UNKNOWN else name
    if plain is not None and plain.all():  # the common case: one run of records
        first = range(n)
        tried = decode_inferwatch(messages, fmt, limits)
    else:
        first = [i for i in range(n) if name_of[i] is None or name_of[i] == "inferwatch"]
        tried = decode_inferwatch([messages[i] for i in first], fmt, limits) if first else None
    if tried is not None:
        kept = []
        at = iter(first)
        for r in tried.rejected:  # a subsequence of the messages tried, in their order
            i = next(at)
            while messages[i] is not r.message:
                i = next(at)
            if name_of[i] is None:  # rejected at the first try: where detection sends it
                name = detect_format(r.message, mapping)
                name_of[i] = fallback if name == UNKNOWN else name
            if name_of[i] == "inferwatch":
                kept.append(r)
        tried.rejected = kept
        if set(name_of) <= {None, "inferwatch"}:
            return tried
    groups: dict[str, list[Message]] = {}
    for i, name in enumerate(name_of):
        groups.setdefault(name or "inferwatch", []).append(messages[i])
    parts = [tried if name == "inferwatch" else bentoml.decode(group, fmt, limits, schemas) if name == "bentoml"
             else DECODERS[name](group, fmt, limits) for name, group in groups.items()]
    if len(parts) == 1:
        return parts[0]
    return merge_decoded(parts, {id(m): i for i, m in enumerate(messages)})

