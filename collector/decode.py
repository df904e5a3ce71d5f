"""Decoder for inferwatch's JSON prediction-log record, into columnar batches.

The record (one JSON object per message, UTF-8)::

    {
      "model": "employment",                    # string, required
      "model_version": "1",                     # string (or integer), required
      "timestamp": "2016-03-01T12:00:00.000Z",  # RFC 3339 with offset, or epoch milliseconds
      "request_id": "req-123",                  # string, required
      "features": {"age": 41, "state": "MA", "owns_car": true, "income": null},
      "predictions": {"employed": true, "probability": 0.83, "proba": [0.17, 0.83]},
      "label": true,                            # optional scalar
      "latency_ms": 3.2,                        # optional number >= 0
      "serving": {"status_code": 200, "replica": "vllm-0", "prompt_tokens": 412}   # optional
    }

Features map names to number | string | bool | null; predictions map names to
number | string | bool | list of class probabilities (each list item becomes its own numeric
column ``predictions.<name>[i]``). Anything else is rejected with a reason from
:class:`RejectReason`; the caller forwards rejected messages to the dead-letter topic.

``serving`` (optional, an object or null) carries serving metadata; each key becomes the
column ``serving.<key>`` (float64 for numbers, NaN when missing; text for strings, None
when missing):

==========================  ========================================  =====================
key                         value                                     column
==========================  ========================================  =====================
``status_code``             integer 100..599 (HTTP status)            float64
``replica``                 string (pod or instance name)             text
``queue_ms``                number >= 0, milliseconds queued          float64
``prompt_tokens``           integer >= 0 (below 2**63)                float64
``completion_tokens``       integer >= 0 (below 2**63)                float64
``time_to_first_token_ms``  number >= 0                               float64
``batch_size``              integer >= 1 (below 2**63)                float64
``finish_reason``           string (``stop``, ``length``, ...)        text
``endpoint``                string (route or serving endpoint name)   text
==========================  ========================================  =====================

A key that is absent or null adds no value (NaN / None where other rows of the batch have
it); a frame has a ``serving.<key>`` column only when one of its rows carries that key. A
value of the wrong type or range rejects the record as ``wrong_type``, the detail naming the
key (``serving.status_code: must be an integer from 100 to 599``); a ``serving`` that is not
an object is ``wrong_type`` too. Keys not listed above are ignored, as unknown top-level keys
are: a producer that starts sending a newer signal keeps its records accepted by collectors
that do not know it yet, instead of losing them to the dead-letter topic. Serving columns
do not count against ``max_features``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from itertools import compress
from operator import attrgetter, itemgetter
from typing import Annotated, Any

import msgspec
from msgspec.structs import astuple
import numpy as np
import pandas as pd

from collector.message import Message
from collector.record import SERVING_PREFIX
from detectors.profile import category_label  # one labelling rule for decode and profiles

log = logging.getLogger(__name__)

FEATURE_PREFIX = "features."
PREDICTION_PREFIX = "predictions."
META_COLUMNS = ("model", "model_version", "event_time_ms", "request_id", "label", "latency_ms")
MAX_EPOCH_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z
# JSON escapes that can decode to text no database stores: NUL and (lone) UTF-16 surrogates
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
REQUIRED_FIELDS = ("model", "model_version", "timestamp", "request_id", "features", "predictions")


class RejectReason(str, Enum):
    """Why a message was not accepted (the ``reason`` label of the rejected-records counter)."""

    EMPTY = "empty_message"
    OVERSIZE = "oversize"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TOO_MANY_FEATURES = "too_many_features"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNKNOWN_FORMAT = "unknown_format"
    UNSUPPORTED_CONTENT = "unsupported_content"
    INVALID_PROTOBUF = "invalid_protobuf"
    INVALID_BASE64 = "invalid_base64"
    INVALID_CSV = "invalid_csv"
    SHAPE_MISMATCH = "shape_mismatch"
    ERROR_RESPONSE = "error_response"
    NO_DATA = "no_data"
    NO_SCHEMA = "no_schema"
    DECODER_ERROR = "decoder_error"
    TOO_MANY_MODELS = "too_many_models"
    TOO_MANY_ROWS = "too_many_rows"


class RecordError(ValueError):
    """A record failed validation; ``reason`` says which rule and the message says where."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Rejected:
    """A message that could not be decoded, with the reason and a human-readable detail."""

    message: Message
    reason: RejectReason
    detail: str


@dataclass
class DecodedBatch:
    """The columnar result of decoding a batch of messages.

    Attributes:
        frame: one row per accepted record. Columns: ``model``, ``model_version`` (str),
            ``event_time_ms`` (int64, UTC epoch ms), ``request_id`` (str), ``label`` (str or
            None), ``latency_ms`` (float64, NaN when absent), then one column per feature
            (``features.<name>``) and per prediction (``predictions.<name>``), then the
            ``serving.<key>`` columns the rows carry (see the module docstring). A column whose
            values are all numbers is float64 (missing = NaN); any other column holds strings
            (booleans as ``"true"``/``"false"``, integral numbers without ``.0``) or None.
            Whether a column is numeric is decided over all rows of the batch, whatever model
            they belong to.
        rejected: messages that failed, in input order.
        frames: the same rows as one frame per model (in order of each model's first row; row
            order kept), each with only the columns its own rows carry and each column typed by
            its own rows alone: a feature one model sends as numbers stays float64 for that
            model even when another model of the batch sends text under the same name. One
            frame (``frame`` itself) when the batch holds one model; none when it has no rows.
    """

    frame: pd.DataFrame
    rejected: list[Rejected]
    frames: list[pd.DataFrame] = field(default_factory=list)


def parse_timestamp(value: object) -> int:
    """Event time in epoch milliseconds from RFC 3339 text or an epoch-milliseconds number.

    Raises:
        RecordError: not a string/number, no UTC offset in the text, or not parseable.
    """
    if isinstance(value, bool):
        raise RecordError(RejectReason.INVALID_TIMESTAMP, "timestamp: boolean is not a time")
    if isinstance(value, (int, float)):
        if not 0 <= value < MAX_EPOCH_MS:  # also false for NaN
            raise RecordError(RejectReason.INVALID_TIMESTAMP,
                              f"timestamp: {str(value)[:32]} is not epoch milliseconds before year 10000")
        return int(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(RejectReason.INVALID_TIMESTAMP, f"timestamp: {value[:64]!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise RecordError(RejectReason.INVALID_TIMESTAMP, "timestamp: RFC 3339 needs a UTC offset or 'Z'")
        return int(round(parsed.timestamp() * 1000))
    raise RecordError(RejectReason.INVALID_TIMESTAMP, f"timestamp: {type(value).__name__} is not a time")


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_SCALAR_TYPES = {int, float, str, bool, type(None)}


_MAX_FLOAT = 1.7976931348623157e308


def _check_int_range(where: str, values) -> None:
    # JSON integers are unbounded; beyond float64 they cannot enter a numeric column
    for v in values:
        if type(v) is int and not -_MAX_FLOAT <= v <= _MAX_FLOAT:
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}: integer out of the float64 range")


def _check_text(obj: object) -> None:
    """Reject strings (keys or values, at any depth) with NUL or unpaired surrogates."""
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise RecordError(RejectReason.WRONG_TYPE, "text contains a NUL character")
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise RecordError(RejectReason.WRONG_TYPE, "text contains an unpaired UTF-16 surrogate") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


_INT64_LIMIT = 2**63


def _status_code(v: object) -> bool:
    return type(v) is int and 100 <= v <= 599


def _text(v: object) -> bool:
    return type(v) is str


def _milliseconds(v: object) -> bool:
    return _is_number(v) and 0 <= v <= _MAX_FLOAT  # also false for NaN


def _count(v: object) -> bool:
    return type(v) is int and 0 <= v < _INT64_LIMIT


def _positive_count(v: object) -> bool:
    return type(v) is int and 1 <= v < _INT64_LIMIT


# the keys of the record's ``serving`` object, in column order: (key, test of a value, rule)
SERVING_FIELDS: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("status_code", _status_code, "must be an integer from 100 to 599"),
    ("replica", _text, "must be a string"),
    ("queue_ms", _milliseconds, "must be a finite number >= 0"),
    ("prompt_tokens", _count, "must be an integer >= 0"),
    ("completion_tokens", _count, "must be an integer >= 0"),
    ("time_to_first_token_ms", _milliseconds, "must be a finite number >= 0"),
    ("batch_size", _positive_count, "must be an integer >= 1"),
    ("finish_reason", _text, "must be a string"),
    ("endpoint", _text, "must be a string"),
)
SERVING_KEYS: tuple[str, ...] = tuple(name for name, _test, _rule in SERVING_FIELDS)


def serving_columns(serving: object) -> dict[str, object]:
    """The ``serving.<key>`` columns of a record's ``serving`` value (see the module docstring).

    Args:
        serving: the parsed ``serving`` value: an object, or None when absent or null.

    Returns:
        ``serving.<key>`` -> value for the known keys whose value is not null, in the order of
        :data:`SERVING_FIELDS` (numbers as ints or floats, text as str); unknown keys ignored.

    Raises:
        RecordError: ``wrong_type``: not an object, or a value breaking its key's rule (the
            detail names the key).
    """
    if serving is None:
        return {}
    if type(serving) is not dict:
        raise RecordError(RejectReason.WRONG_TYPE, "serving: must be an object of name -> value")
    out: dict[str, object] = {}
    for name, test, rule in SERVING_FIELDS:
        v = serving.get(name)
        if v is None:
            continue
        if not test(v):
            raise RecordError(RejectReason.WRONG_TYPE, f"serving.{name}: {rule}")
        out[SERVING_PREFIX + name] = v
    return out


def _scalar(field_name: str, name: str, v: object) -> object:
    if v is None or isinstance(v, (str, bool)) or _is_number(v):
        return v
    raise RecordError(RejectReason.WRONG_TYPE, f"{field_name}.{name}: {type(v).__name__} is not number|string|bool|null")


def validate_record(obj: object, max_features: int, max_event_time_ms: int | None = None
                    ) -> tuple[tuple, dict[str, object]]:
    """Check one parsed JSON value against the record schema.

    ``max_event_time_ms`` rejects timestamps beyond it (a clock far ahead would otherwise push
    the watermark forward and make every later record late).

    Returns:
        ``((model, model_version, event_time_ms, request_id, label, latency_ms), columns)``
        where ``columns`` maps ``features.<name>`` / ``predictions.<name>`` to scalar values,
        then the ``serving.<key>`` values (:func:`serving_columns`).

    Raises:
        RecordError: with the rule broken.
    """
    if not isinstance(obj, dict):
        raise RecordError(RejectReason.NOT_AN_OBJECT, f"record is a JSON {type(obj).__name__}, not an object")
    missing = [f for f in REQUIRED_FIELDS if f not in obj]
    if missing:
        raise RecordError(RejectReason.MISSING_FIELD, f"missing required field(s): {', '.join(missing)}")
    model, version, request_id = obj["model"], obj["model_version"], obj["request_id"]
    if not isinstance(model, str) or not model:
        raise RecordError(RejectReason.WRONG_TYPE, "model: must be a non-empty string")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version:
        raise RecordError(RejectReason.WRONG_TYPE, "model_version: must be a non-empty string")
    if not isinstance(request_id, str) or not request_id:
        raise RecordError(RejectReason.WRONG_TYPE, "request_id: must be a non-empty string")
    features, predictions = obj["features"], obj["predictions"]
    if not isinstance(features, dict):
        raise RecordError(RejectReason.WRONG_TYPE, "features: must be an object of name -> value")
    if not isinstance(predictions, dict):
        raise RecordError(RejectReason.WRONG_TYPE, "predictions: must be an object of name -> value")
    if len(features) > max_features:
        raise RecordError(RejectReason.TOO_MANY_FEATURES, f"features: {len(features)} > limit {max_features}")
    event_time = parse_timestamp(obj["timestamp"])
    if max_event_time_ms is not None and event_time > max_event_time_ms:
        raise RecordError(RejectReason.FUTURE_TIMESTAMP, f"timestamp: {event_time} ms is beyond {max_event_time_ms}")
    label = obj.get("label")
    if isinstance(label, (dict, list)):
        raise RecordError(RejectReason.WRONG_TYPE, "label: must be a scalar")
    latency = obj.get("latency_ms")
    if latency is not None and (not _is_number(latency) or not 0 <= latency <= _MAX_FLOAT):
        raise RecordError(RejectReason.WRONG_TYPE, "latency_ms: must be a finite number >= 0")
    serving = serving_columns(obj.get("serving"))

    types = set(map(type, features.values()))
    if not types <= _SCALAR_TYPES:
        for name, v in features.items():
            _scalar("features", name, v)  # raises, naming the first bad one
    if int in types:
        _check_int_range("features", features.values())
    columns: dict[str, object] = {FEATURE_PREFIX + name: v for name, v in features.items()}
    for name, v in predictions.items():
        if isinstance(v, list):
            if not all(_is_number(p) for p in v):
                raise RecordError(RejectReason.WRONG_TYPE, f"predictions.{name}: class probabilities must be numbers")
            _check_int_range(f"predictions.{name}", v)
            for i, p in enumerate(v):
                columns[f"{PREDICTION_PREFIX}{name}[{i}]"] = p
        else:
            columns[PREDICTION_PREFIX + name] = _scalar("predictions", name, v)
            if type(v) is int:
                _check_int_range(f"predictions.{name}", (v,))
        if len(columns) > max_features:
            raise RecordError(RejectReason.TOO_MANY_FEATURES,
                              f"features and prediction columns: more than the limit {max_features}")
    if serving:
        columns.update(serving)  # after the features and predictions, in SERVING_FIELDS order
    meta = (model, version, event_time, request_id, None if label is None else category_label(label),
            float(latency) if latency is not None else math.nan)
    return meta, columns


def to_column(values: Sequence[object]) -> np.ndarray:
    """Column array from per-record values: float64 if every value is a number or None,
    else object strings (None kept) normalised by :func:`category_label`."""
    return _column(values, set(map(type, values)))


def _column(values: Sequence[object], types: set[type]) -> np.ndarray:
    """:func:`to_column` given the set of the values' types."""
    if types <= {int, float, type(None)}:
        return np.array(values, dtype=np.float64)  # numpy reads None as NaN
    if types <= {str, type(None)}:  # the common categorical case needs no per-value work
        return np.array(values, dtype=object)
    if types <= {bool, type(None)}:  # category_label's text of a boolean, by lookup
        return np.array(list(map(_BOOL_LABELS.__getitem__, values)), dtype=object)
    return np.array([None if v is None else category_label(v) for v in values], dtype=object)


_BOOL_LABELS = {True: category_label(True), False: category_label(False), None: None}


def _decode_one(msg: Message, max_message_bytes: int, max_features: int, max_event_time_ms: int | None
                ) -> tuple[tuple, dict[str, object]] | Rejected:
    """One message by the rule book: ``(meta, columns)`` as :func:`validate_record` returns, or
    the :class:`Rejected` entry."""
    try:
        raw = msg.value
        if not raw:
            raise RecordError(RejectReason.EMPTY, "message has no value")
        if len(raw) > max_message_bytes:
            raise RecordError(RejectReason.OVERSIZE, f"{len(raw)} bytes > limit {max_message_bytes}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RecordError(RejectReason.INVALID_UTF8, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(RejectReason.INVALID_JSON, f"invalid JSON: {exc.msg} at {exc.pos}") from None
        except RecursionError:
            raise RecordError(RejectReason.INVALID_JSON, "invalid JSON: nested too deeply") from None
        except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
            raise RecordError(RejectReason.INVALID_JSON, f"invalid JSON: {exc}") from None
        if _SUSPECT_ESCAPE.search(text):  # rare: only then walk the parsed value
            _check_text(obj)
        return validate_record(obj, max_features, max_event_time_ms)
    except RecordError as err:
        return Rejected(msg, err.reason, str(err))


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: [] for c in META_COLUMNS})


def decode_json_each(messages: Sequence[Message], max_message_bytes: int, max_features: int,
                     max_event_time_ms: int | None = None) -> DecodedBatch:
    """:func:`decode_json_batch` one message at a time (``json`` parser, one
    :func:`validate_record` call per message): the rule book the batch path is held to, about
    four times slower. Same arguments, result and guarantees."""
    metas: list[tuple] = []
    rows: list[dict[str, object]] = []
    rejected: list[Rejected] = []
    for msg in messages:
        out = _decode_one(msg, max_message_bytes, max_features, max_event_time_ms)
        if isinstance(out, Rejected):
            rejected.append(out)
            continue
        metas.append(out[0])
        rows.append(out[1])
    if not metas:
        return DecodedBatch(frame=_empty_frame(), rejected=rejected)
    frame = _rows_frame(metas, rows)
    models: dict[str, list[int]] = {}
    for i, meta in enumerate(metas):
        models.setdefault(meta[0], []).append(i)
    frames = [frame] if len(models) == 1 else [
        _rows_frame([metas[i] for i in idx], [rows[i] for i in idx]) for idx in models.values()]
    return DecodedBatch(frame=frame, rejected=rejected, frames=frames)


def _rows_frame(metas: list[tuple], rows: list[dict[str, object]]) -> pd.DataFrame:
    """One frame of records (meta tuples and column dicts), columns in order of first appearance."""
    model, version, event_time, request_id, label, latency = zip(*metas)
    data = _meta_arrays(model, version, event_time, request_id, label, latency)
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    for name in names:
        data[name] = to_column([r.get(name) for r in rows])
    return pd.DataFrame(data)


def _meta_arrays(model, version, event_time, request_id, label, latency) -> dict[str, np.ndarray]:
    return {
        "model": np.array(model, dtype=object),
        "model_version": np.array(version, dtype=object),
        "event_time_ms": np.array(event_time, dtype=np.int64),
        "request_id": np.array(request_id, dtype=object),
        "label": np.array(label, dtype=object),
        "latency_ms": np.array(latency, dtype=np.float64),
    }


def decode_json_batch(messages: Sequence[Message], max_message_bytes: int, max_features: int,
                      max_event_time_ms: int | None = None) -> DecodedBatch:
    """Decode a batch of JSON prediction-log messages into one columnar frame.

    The batch is parsed with msgspec and checked column by column (one type check per column,
    timestamps parsed as arrays); a message that any of these checks cannot clear for certain
    (a parse error, a ``\\u0000`` or surrogate escape, a wrong type, an integer beyond 2**63, an
    unusual timestamp layout, ...) is decoded alone by :func:`decode_json_each`'s rules. The
    result is exactly :func:`decode_json_each`'s: the same rows, columns, dtypes, rejections,
    reasons and details.

    Args:
        messages: raw messages, in the order read.
        max_message_bytes: larger values are rejected as ``oversize`` without parsing.
        max_features: records with more features are rejected as ``too_many_features``.
        max_event_time_ms: later timestamps are rejected as ``future_timestamp``.

    Returns:
        The accepted rows as a :class:`DecodedBatch` frame (and as one frame per model) plus
        the rejected messages, in input order. Never raises on message content.
    """
    parts: list[_Part] = []
    slow: list[int] = []

    def raw(position: int) -> bytes:
        return messages[position].value

    # a few thousand parsed records at a time stay in the CPU caches; the parts are joined after
    for start in range(0, len(messages), _CHUNK):
        chunk = messages[start:start + _CHUNK]
        chunk_slow: list[int] = []
        try:
            new: list[_Part] = []
            for positions, objs in _parse(chunk, start, max_message_bytes, chunk_slow):
                if not objs:
                    continue
                run_slow: list[int] = []
                try:
                    new += _fast_parts(objs, positions, max_features, max_event_time_ms, run_slow, raw)
                except _NotUniform:  # read by one layout, but not all alike: parse these again into dicts
                    run_slow = []
                    positions, objs = _parse_plain([raw(i) for i in positions], positions[0], max_message_bytes,
                                                   run_slow)
                    new += _fast_parts(objs, positions, max_features, max_event_time_ms, run_slow, raw) if objs else []
                chunk_slow += run_slow
            parts += new
        except Exception:  # noqa: BLE001 - a defect here must not lose the batch: decode it message by message
            log.exception("batch decoding failed; decoding these %d messages one by one", len(chunk))
            chunk_slow = list(range(start, start + len(chunk)))
        slow += chunk_slow
    rejected: list[Rejected] = []
    for i in sorted(slow):
        out = _decode_one(messages[i], max_message_bytes, max_features, max_event_time_ms)
        if isinstance(out, Rejected):
            rejected.append(out)
        else:
            parts.append(_Part.of_row(i, *out))
    frame = _assemble(list(parts))
    if not len(frame):
        return DecodedBatch(frame=frame, rejected=rejected)
    by_model = _parts_by_model(parts)
    frames = [frame] if len(by_model) == 1 else [_assemble(p) for p in by_model]
    return DecodedBatch(frame=frame, rejected=rejected, frames=frames)


# --- the batch path --------------------------------------------------------------------------

_Milliseconds = (Annotated[int, msgspec.Meta(ge=0, le=_INT64_LIMIT - 1)]
                 | Annotated[float, msgspec.Meta(ge=0, le=_MAX_FLOAT)])
_Count = Annotated[int, msgspec.Meta(ge=0, le=_INT64_LIMIT - 1)]


class _Serving(msgspec.Struct, gc=False):
    """The ``serving`` object as the batch path reads it: every value the parser lets through is
    one :func:`serving_columns` accepts as it is (a value it may not accept fails the parse and
    leaves the message to the careful path); unknown keys are skipped, as there."""

    status_code: Annotated[int, msgspec.Meta(ge=100, le=599)] | None = None
    replica: str | None = None
    queue_ms: _Milliseconds | None = None
    prompt_tokens: _Count | None = None
    completion_tokens: _Count | None = None
    time_to_first_token_ms: _Milliseconds | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=_INT64_LIMIT - 1)] | None = None
    finish_reason: str | None = None
    endpoint: str | None = None


assert tuple(_Serving.__struct_fields__) == SERVING_KEYS


class _Record(msgspec.Struct, gc=False):
    """The fields of a record the batch path reads; any other key is skipped unread. Values are
    any JSON, checked column by column afterwards; a missing required field or a value that is
    not an object fails the parse and leaves the message to the careful path. Never tracked by
    the garbage collector: parsed JSON is a tree, it cannot hold a cycle."""

    model: Any
    model_version: Any
    timestamp: Any
    request_id: Any
    features: Any
    predictions: Any
    label: Any = None
    latency_ms: Any = None
    serving: _Serving | None = None


# about 40% cheaper than parsing into a dict: the record's own keys and unknown fields are
# never built as Python objects (msgspec keeps the last of repeated keys, as json does)
_decode_bytes = msgspec.json.Decoder(_Record).decode
_decode_plain = msgspec.json.Decoder().decode


class _Fields(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of the struct of one layout's ``features`` or ``predictions`` object: exactly its
    keys (any other key, or a missing one, fails the parse), values any JSON."""


class _NotUniform(Exception):
    """The records of a chunk parsed by the layout of its first one do not all fit the layout's
    fast path (e.g. a list of class probabilities of another length): parse them again."""


_LAYOUTS: dict[tuple, Callable[[bytes], object]] = {}  # (feature keys, prediction keys) -> decoder
_MAX_LAYOUTS = 64


def _fields_struct(keys: tuple[str, ...]) -> type:
    names = [f"f{i}" for i in range(len(keys))]  # any text may be a key: fields renamed to it
    return msgspec.defstruct("_LayoutFields", [(n, Any) for n in names], bases=(_Fields,),
                             rename=dict(zip(names, keys)))


def _layout_decoder(first: bytes) -> Callable[[bytes], object] | None:
    """A parser of records with exactly the feature and prediction keys of the record ``first``
    (in any order), into a :class:`_Record`-like struct whose ``features`` and ``predictions``
    are :class:`_Fields` structs; None when ``first`` is no record with both objects.

    Parsing 25 features into a struct costs about 40% less than into a dict, and its values come
    out as a tuple (``msgspec.structs.astuple``) at half the cost of looking each key up."""
    try:
        obj = _decode_plain(first)
    except Exception:  # noqa: BLE001 - not for this path
        return None
    if type(obj) is not dict or type(obj.get("features")) is not dict or type(obj.get("predictions")) is not dict:
        return None
    key = (tuple(obj["features"]), tuple(obj["predictions"]))
    decoder = _LAYOUTS.get(key)
    if decoder is None:
        if len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.clear()
        record = msgspec.defstruct(
            "_LayoutRecord", [("model", Any), ("model_version", Any), ("timestamp", Any), ("request_id", Any),
                              ("features", _fields_struct(key[0])), ("predictions", _fields_struct(key[1])),
                              ("label", Any, None), ("latency_ms", Any, None),
                              ("serving", _Serving | None, None)], gc=False)
        decoder = _LAYOUTS[key] = msgspec.json.Decoder(record).decode
    return decoder


def _keys(obj: dict | _Fields) -> list[str]:
    """The keys of a parsed object: a dict's in their order, a layout struct's in its field order."""
    return list(obj) if type(obj) is dict else list(obj.__struct_encode_fields__)


def _items(obj: dict | _Fields):
    return obj.items() if type(obj) is dict else zip(obj.__struct_encode_fields__, astuple(obj))
_CHUNK = 4096
_SUSPECT_ESCAPE_BYTES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_REQUIRED = attrgetter(*REQUIRED_FIELDS)
_LABEL, _LATENCY, _SERVING = attrgetter("label"), attrgetter("latency_ms"), attrgetter("serving")
_NO_SERVING = (None,) * len(SERVING_KEYS)
_INT_LIMIT = 2**63  # integers beyond it take the careful path (its range and digit rules)
_NONE = type(None)
_NUMERIC_TYPES = {int, float, _NONE}
_TEXT_TYPES = {str, _NONE}


@dataclass
class _Part:
    """Accepted rows sharing one column layout: their message positions (ascending), the six
    meta columns and the feature/prediction columns (name -> values, in first-row order)."""

    positions: list[int]
    meta: tuple[Sequence, ...]
    columns: dict[str, Sequence]
    types: dict[str, set[type]] | None = None  # each column's value types, when known
    # the column names of row j in that row's own order (None: one row, whose order the columns keep)
    order_at: Callable[[int], list[str]] | None = None

    @classmethod
    def of_row(cls, position: int, meta: tuple, columns: dict[str, object]) -> _Part:
        return cls([position], tuple([v] for v in meta), {k: [v] for k, v in columns.items()})

    def then(self, other: _Part) -> _Part:
        """This part followed by ``other`` (same columns, every position after this part's)."""
        types = None if self.types is None or other.types is None else {
            k: self.types[k] | other.types[k] for k in self.types}
        return _Part(self.positions + other.positions, tuple(_joined(a, b) for a, b in zip(self.meta, other.meta)),
                     {k: _joined(v, other.columns[k]) for k, v in self.columns.items()}, types)


def _joined(a: Sequence, b: Sequence) -> Sequence:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.concatenate([np.asarray(a), np.asarray(b)])
    return [*a, *b]


def _parse(messages: Sequence[Message], base: int, max_message_bytes: int, slow: list[int]
           ) -> list[tuple[list[int], list]]:
    """Parse every message the fast parser may read; the others' positions (``base`` + index)
    go to ``slow``.

    Returns:
        Runs of ``(positions, parsed records)``, in message order: first, when the first
        :data:`_MIN_LAYOUT_RUN` or more records share the feature and prediction keys of the
        first one, those records as the structs of :func:`_layout_decoder`; then the others as
        :class:`_Record` structs. A run may be empty.
    """
    values = [m.value for m in messages]
    try:
        if all(values) and max(map(len, values)) <= max_message_bytes:
            joined = b"".join(values)
            # one memchr for a backslash rules out \u escapes in most batches
            clean = b"\\" not in joined or b"\\u" not in joined
        else:
            clean = False
    except TypeError:  # a tombstone (None value)
        clean = False
    if not clean:
        return [_parse_each(values, base, max_message_bytes, slow)]
    decoder = _layout_decoder(values[0])
    objs: list = []
    if decoder is not None:
        append = objs.append
        try:
            for v in values:
                append(decoder(v))
        except Exception:  # noqa: BLE001 - another layout from here on
            pass
    k = len(objs)
    if k == len(values):
        return [(list(range(base, base + k)), objs)]
    if k < _MIN_LAYOUT_RUN:  # too short a run to be worth its own part: parsed again with the rest
        return [_parse_plain(values, base, max_message_bytes, slow)]
    return [(list(range(base, base + k)), objs), _parse_plain(values[k:], base + k, max_message_bytes, slow)]


_MIN_LAYOUT_RUN = 64


def _parse_plain(values: list[bytes], base: int, max_message_bytes: int, slow: list[int]
                 ) -> tuple[list[int], list]:
    """Values without tombstones, oversize ones or \\u escapes, parsed into :class:`_Record`
    structs; the positions of those that fail go to ``slow``."""
    try:
        return list(range(base, base + len(values))), list(map(_decode_bytes, values))
    except Exception:  # noqa: BLE001 - any parse failure: find it message by message
        return _parse_each(values, base, max_message_bytes, slow)


def _parse_each(values: list[bytes | None], base: int, max_message_bytes: int, slow: list[int]
                ) -> tuple[list[int], list]:
    """Values parsed one by one into :class:`_Record` structs; tombstones, oversize values, the
    ones with NUL or surrogate escapes and those that fail go to ``slow``."""
    positions, objs = [], []
    for i, raw in enumerate(values, base):
        if not raw or len(raw) > max_message_bytes or _SUSPECT_ESCAPE_BYTES.search(raw):
            slow.append(i)
            continue
        try:
            obj = _decode_bytes(raw)
        except Exception:  # noqa: BLE001 - the careful path names the reason
            slow.append(i)
            continue
        positions.append(i)
        objs.append(obj)
    return positions, objs


def _drop(keep: np.ndarray, positions: list[int], slow: list[int], *columns: Sequence) -> list[list]:
    """Send the positions where ``keep`` is False to ``slow``; return ``positions`` and every
    column without those rows."""
    mask = keep.tolist()
    slow.extend(p for p, k in zip(positions, mask) if not k)
    return [list(compress(c, mask)) for c in (positions, *columns)]


def _nonempty_text(values: Sequence) -> np.ndarray:
    """Row mask: a non-empty string."""
    if set(map(type, values)) == {str} and "" not in values:
        return np.ones(len(values), dtype=bool)
    return np.fromiter((type(v) is str and v != "" for v in values), dtype=bool, count=len(values))


def _fast_parts(objs: list, positions: list[int], max_features: int, max_event_time_ms: int | None,
                slow: list[int], raw: Callable[[int], bytes]) -> list[_Part]:
    """Column-wise checks of parsed records (:class:`_Record`, or the layout structs of
    :func:`_layout_decoder`); rows that pass become parts, the others go to ``slow``. ``raw``
    gives the message value at a position.

    Raises:
        _NotUniform: layout structs that do not all fit one part.
    """
    top = list(map(_REQUIRED, objs))  # the parse left only objects with every required field
    model, version, stamp, request_id, features, predictions = zip(*top)
    label = list(map(_LABEL, objs))
    latency = list(map(_LATENCY, objs))
    serving = list(map(_SERVING, objs))
    has_serving = serving.count(None) != len(serving)

    keep = _nonempty_text(model) & _nonempty_text(request_id)
    version, ok = _versions(version)
    keep &= ok
    f_types, p_types = set(map(type, features)), set(map(type, predictions))
    if not (f_types == p_types == {dict} or (len(f_types) == len(p_types) == 1 and issubclass(
            next(iter(f_types)), _Fields) and issubclass(next(iter(p_types)), _Fields))):
        keep &= np.fromiter((type(f) is dict and type(p) is dict for f, p in zip(features, predictions)),
                            dtype=bool, count=len(objs))
    label, ok = _labels(label)
    keep &= ok
    latency_ms, ok = _latencies(latency)
    keep &= ok
    event_time, ok = _event_times(stamp)
    keep &= ok
    if max_event_time_ms is not None:
        keep &= event_time <= max_event_time_ms
    if not keep.all():
        event_time, latency_ms = event_time[keep], latency_ms[keep]
        positions, model, version, request_id, label, features, predictions, serving = _drop(
            keep, positions, slow, model, version, request_id, label, features, predictions, serving)
        if not positions:
            return []
    meta = (model, version, event_time, request_id, label, latency_ms)
    if has_serving:
        return _serving_parts(serving, features, predictions, positions, meta, max_features, slow, raw)
    return _layout_parts(features, predictions, positions, meta, max_features, slow, raw)


def _serving_parts(serving: list, features: Sequence, predictions: Sequence, positions: list[int], meta: tuple,
                   max_features: int, slow: list[int], raw: Callable[[int], bytes]) -> list[_Part]:
    """:func:`_layout_parts` of rows some of which carry a ``serving`` object (parsed and checked
    as :class:`_Serving`): rows carrying the same keys (not null) make one group whose parts
    have these ``serving.<key>`` columns last, in :data:`SERVING_KEYS` order."""
    values = list(zip(*[_NO_SERVING if s is None else astuple(s) for s in serving]))
    n = len(positions)
    present = [(SERVING_PREFIX + name, col) for name, col in zip(SERVING_KEYS, values) if col.count(None) != n]
    if all(None not in col for _name, col in present):  # the common case: every row has the same keys
        return _layout_parts(features, predictions, positions, meta, max_features, slow, raw, dict(present))
    groups: dict[tuple[bool, ...], list[int]] = {}
    for i, key in enumerate(zip(*[[v is not None for v in col] for _name, col in present])):
        groups.setdefault(key, []).append(i)
    parts = []
    for key, rows in groups.items():
        columns = {name: _pick(rows, col) for (name, col), has in zip(present, key) if has}
        parts += _layout_parts(_pick(rows, features), _pick(rows, predictions), _pick(rows, positions),
                               tuple(_pick(rows, m) for m in meta), max_features, slow, raw, columns)
    return parts


def _versions(values: Sequence) -> tuple[Sequence, np.ndarray]:
    """model_version as text (integers written out) and the row mask of valid ones."""
    types = set(map(type, values))
    if types == {str} and "" not in values:
        return values, np.ones(len(values), dtype=bool)
    ok = np.fromiter(((type(v) is str and v != "") or (type(v) is int and -_INT_LIMIT < v < _INT_LIMIT)
                      for v in values), dtype=bool, count=len(values))
    return [str(v) if type(v) is int else v for v in values], ok


def _labels(values: list) -> tuple[Sequence, np.ndarray]:
    """Labels as :func:`category_label` text (None kept) and the row mask of valid ones."""
    types = set(map(type, values))
    if types <= _TEXT_TYPES:
        return values, np.ones(len(values), dtype=bool)
    ok = np.fromiter((type(v) in (str, bool, float, _NONE) or (type(v) is int and -_INT_LIMIT < v < _INT_LIMIT)
                      for v in values), dtype=bool, count=len(values))
    return [None if v is None or not k else category_label(v) for v, k in zip(values, ok.tolist())], ok


def _latencies(values: list) -> tuple[np.ndarray, np.ndarray]:
    """latency_ms as float64 (NaN when absent) and the row mask of valid ones (a number in
    ``[0, max float)``)."""
    n = len(values)
    if set(map(type, values)) <= _NUMERIC_TYPES:
        try:
            out = np.array(values, dtype=np.float64)
        except OverflowError:
            pass
        else:
            absent = np.fromiter((v is None for v in values), dtype=bool, count=n) if None in values else False
            with np.errstate(invalid="ignore"):
                return out, absent | ((out >= 0) & (out < _MAX_FLOAT))
    ok = np.fromiter((v is None or (type(v) in (int, float) and 0 <= v < _MAX_FLOAT) for v in values),
                     dtype=bool, count=n)
    return np.array([v if k else None for v, k in zip(values, ok.tolist())], dtype=np.float64), ok


def _event_times(values: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Event times in epoch ms from RFC 3339 text or epoch-ms integers, and the row mask of
    those read here for certain (others: the careful path decides)."""
    n = len(values)
    types = set(map(type, values))
    if types == {str}:
        return _rfc3339_ms(values)
    if types == {int}:
        try:
            ms = np.array(values, dtype=np.int64)
        except OverflowError:
            pass
        else:
            return ms, (ms >= 0) & (ms < MAX_EPOCH_MS)
    ms = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    text = [i for i, v in enumerate(values) if type(v) is str]
    if text:
        ms[text], ok[text] = _rfc3339_ms([values[i] for i in text])
    ints = [i for i, v in enumerate(values) if type(v) is int and 0 <= v < MAX_EPOCH_MS]
    if ints:
        ms[ints] = [values[i] for i in ints]
        ok[ints] = True
    return ms, ok


# RFC 3339 date-times read here: YYYY-MM-DD('T'|' ')HH:MM:SS[.f{1,6}]('Z'|+HH:MM|-HH:MM). Any
# other text that datetime.fromisoformat may accept is left to it.
_TS_MAX_LEN = 32
_DIGIT_AT = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)
_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_EXACT_US = 2**53  # float64 holds every microsecond count below it (years 1685-2255)


def _rfc3339_ms(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms of RFC 3339 date-times (as ``round(datetime.fromisoformat(t).timestamp() *
    1000)``) and the row mask of those in the layout read here."""
    n = len(texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    ok = (lengths >= 20) & (lengths <= _TS_MAX_LEN)
    if not ok.all():  # longer text would widen the array for every row
        texts = [t if k else "" for t, k in zip(texts, ok.tolist())]
        lengths = np.where(ok, lengths, 0)
    c = np.array(texts, dtype=f"<U{_TS_MAX_LEN}").view(np.uint32).reshape(n, _TS_MAX_LEN).astype(np.int64)
    d = c - ord("0")
    rows = np.arange(n)
    last = np.maximum(lengths - 1, 0)
    ok &= ((d[:, _DIGIT_AT] >= 0) & (d[:, _DIGIT_AT] <= 9)).all(axis=1)
    ok &= (c[:, 4] == ord("-")) & (c[:, 7] == ord("-")) & ((c[:, 10] == ord("T")) | (c[:, 10] == ord(" ")))
    ok &= (c[:, 13] == ord(":")) & (c[:, 16] == ord(":"))
    # suffix: 'Z' or +HH:MM / -HH:MM
    zulu = c[rows, last] == ord("Z")
    at = np.clip(lengths[:, None] - np.array([6, 5, 4, 3, 2, 1]), 0, _TS_MAX_LEN - 1)
    off = c[rows[:, None], at]
    off_d = off[:, [1, 2, 4, 5]] - ord("0")
    offset = (((off[:, 0] == ord("+")) | (off[:, 0] == ord("-"))) & (off[:, 3] == ord(":"))
              & ((off_d >= 0) & (off_d <= 9)).all(axis=1))
    ok &= zulu | offset
    body = lengths - np.where(zulu, 1, 6)
    fraction_digits = np.where(body > 19, body - 20, 0)
    ok &= (body == 19) | ((c[:, 19] == ord(".")) & (fraction_digits >= 1) & (fraction_digits <= 6))
    fraction = np.zeros(n, dtype=np.int64)
    for k in range(6):
        used = k < fraction_digits
        digit = np.where(used, d[:, 20 + k], 0)
        ok &= ~used | ((digit >= 0) & (digit <= 9))
        fraction = fraction * 10 + digit
    oh = off_d[:, 0] * 10 + off_d[:, 1]
    om = off_d[:, 2] * 10 + off_d[:, 3]
    offset_s = np.where(zulu, 0, np.where(off[:, 0] == ord("-"), -1, 1) * (oh * 3600 + om * 60))
    ok &= zulu | ((oh <= 23) & (om <= 59))
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 5] * 10 + d[:, 6]
    day = d[:, 8] * 10 + d[:, 9]
    hour, minute, second = d[:, 11] * 10 + d[:, 12], d[:, 14] * 10 + d[:, 15], d[:, 17] * 10 + d[:, 18]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    dim = _DAYS_IN_MONTH[np.where(month_ok, month, 1)] + ((month == 2) & leap)
    ok &= (year >= 1) & month_ok & (day >= 1) & (day <= dim) & (hour <= 23) & (minute <= 59) & (second <= 59)
    # days since 1970-01-01 of the proleptic Gregorian date (civil-from-days, inverted)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    us = (days * 86400 + hour * 3600 + minute * 60 + second - offset_s) * 1_000_000 + fraction
    ok &= np.abs(us) < _EXACT_US
    us = np.where(ok, us, 0)
    # what datetime.timestamp() and round() do: a correctly rounded division, then half-even
    ms = np.rint(us.astype(np.float64) / 1e6 * 1000.0).astype(np.int64)
    return ms, ok


class _MixedLayout(Exception):
    """The rows of a batch do not all have the same column names."""


def _layout_parts(features: Sequence[dict], predictions: Sequence[dict], positions: list[int], meta: tuple,
                  max_features: int, slow: list[int], raw: Callable[[int], bytes],
                  serving: dict[str, Sequence] | None = None) -> list[_Part]:
    """The rows' parts: one when every row has the same feature names, prediction names and
    list lengths (checked while transposing), else one per such layout, ordered by first row.
    ``serving``: ``serving.<key>`` columns every row has a value of (checked), last in every part.

    Raises:
        _NotUniform: layout structs whose list lengths differ.
    """
    f0, p0 = features[0], predictions[0]
    if isinstance(f0, _Fields):  # one layout by construction
        try:
            part = _layout_part(None, positions, meta, features, predictions, max_features, slow, raw, serving)
        except (KeyError, _MixedLayout):
            raise _NotUniform from None
        return [part] if part is not None else []
    if set(map(len, features)) == {len(f0)} and set(map(len, predictions)) == {len(p0)}:
        try:
            part = _layout_part(None, positions, meta, features, predictions, max_features, slow, raw, serving)
            return [part] if part is not None else []
        except (KeyError, _MixedLayout):
            pass
    groups: dict[tuple, list[int]] = {}
    for i, (f, p) in enumerate(zip(features, predictions)):
        key = (frozenset(f), frozenset((k, len(v) if type(v) is list else -1) for k, v in p.items()))
        groups.setdefault(key, []).append(i)
    parts = []
    for rows in groups.values():
        part = _layout_part(rows, positions, meta, features, predictions, max_features, slow, raw, serving)
        if part is not None:
            parts.append(part)
    return parts


def _pick(rows: list[int] | None, values: Sequence) -> Sequence:
    if rows is None:
        return values
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[i] for i in rows]


def _column_names(f: dict | _Fields, p: dict | _Fields) -> list[str]:
    """Column names of one record, in the order :func:`validate_record` creates them (of a
    layout struct: in its field order)."""
    names = [FEATURE_PREFIX + k for k in _keys(f)]
    for k, v in _items(p):
        if type(v) is list:
            names.extend(f"{PREDICTION_PREFIX}{k}[{i}]" for i in range(len(v)))
        else:
            names.append(PREDICTION_PREFIX + k)
    return names


def _layout_part(rows: list[int] | None, positions: list[int], meta: tuple, features: Sequence[dict],
                 predictions: Sequence[dict], max_features: int, slow: list[int],
                 raw: Callable[[int], bytes], serving: dict[str, Sequence] | None = None) -> _Part | None:
    """The part of the rows (None: all) of one layout, or None when no row passes. Its columns
    are in the order of its first row (for layout structs: as that row's own text has them),
    then the ``serving`` columns (of all the rows) in their order.

    Raises:
        KeyError, _MixedLayout: the rows do not all have the same names and list lengths.
    """
    feats, preds, pos = _pick(rows, features), _pick(rows, predictions), list(_pick(rows, positions))
    f_names, p_names = _keys(feats[0]), _keys(preds[0])
    structs = isinstance(feats[0], _Fields)
    columns: dict[str, Sequence] = {}
    if f_names:
        f_values = list(zip(*map(astuple, feats))) if structs else _transpose(feats, f_names)
        for name, values in zip(f_names, f_values):
            columns[FEATURE_PREFIX + name] = values
    p_values = (list(zip(*map(astuple, preds))) if structs else _transpose(preds, p_names)) if p_names else ()
    for name, values in zip(p_names, p_values):
        types = set(map(type, values))
        if list not in types:
            columns[PREDICTION_PREFIX + name] = values
            continue
        if types != {list} or len(set(map(len, values))) != 1:
            raise _MixedLayout(name)
        for i, items in enumerate(zip(*values)):
            columns[f"{PREDICTION_PREFIX}{name}[{i}]"] = _ListItems(items)
    tail = list(serving) if serving else []  # not counted against max_features, as in validate_record
    for name in tail:
        columns[name] = _pick(rows, serving[name])
    names = _column_names(feats[0], preds[0])
    if len(f_names) > max_features or len(names) > max_features or len(set(names)) != len(names):
        slow.extend(pos)  # over the limit, or two names for one column: the careful path decides
        return None
    keep = np.ones(len(pos), dtype=bool)
    types: dict[str, set[type]] | None = {}
    for name, values in columns.items():
        ok, types[name] = _values_ok(values)
        keep &= ok
    meta = tuple(_pick(rows, m) for m in meta)
    if not keep.all():
        types = None  # the dropped rows' types may be gone
        mask = keep.tolist()
        slow.extend(p for p, k in zip(pos, mask) if not k)
        if not any(mask):
            return None
        pos = list(compress(pos, mask))
        meta = tuple(m[keep] if isinstance(m, np.ndarray) else list(compress(m, mask)) for m in meta)
        columns = {k: list(compress(v, mask)) for k, v in columns.items()}
        feats, preds = list(compress(feats, mask)), list(compress(preds, mask))
    if structs:
        def order_at(j: int, pos: list[int] = pos) -> list[str]:
            obj = _decode_plain(raw(pos[j]))  # parsed alike before: a record with both objects
            return _column_names(obj["features"], obj["predictions"]) + tail
    else:
        def order_at(j: int, feats: Sequence[dict] = feats, preds: Sequence[dict] = preds) -> list[str]:
            return _column_names(feats[j], preds[j]) + tail
    if structs or not keep.all():  # the (first accepted) row's own order
        order = order_at(0)
        if order != list(columns):
            columns = {k: columns[k] for k in order}
    return _Part(pos, meta, columns, types, order_at)


class _ListItems(tuple):
    """Column of one class-probability position: numbers only (no bool, no text)."""


def _transpose(dicts: Sequence[dict], names: list[str]) -> list[tuple]:
    """Column tuples of ``names`` over dicts that hold these keys (KeyError otherwise)."""
    if len(names) == 1:
        return [tuple(map(itemgetter(names[0]), dicts))]
    return list(zip(*map(itemgetter(*names), dicts)))


def _values_ok(values: Sequence) -> tuple[np.ndarray | bool, set[type]]:
    """Row mask of values the batch path accepts in a feature or prediction column, and the
    set of the values' types."""
    types = set(map(type, values))
    allowed = {int, float} if isinstance(values, _ListItems) else _SCALAR_TYPES
    if types <= allowed and (int not in types or _ints_in_range(values, types)):
        return True, types
    return np.fromiter((type(v) in allowed and (type(v) is not int or -_INT_LIMIT < v < _INT_LIMIT)
                        for v in values), dtype=bool, count=len(values)), types


def _ints_in_range(values: Sequence, types: set) -> bool:
    if types <= {int, float}:
        return -_INT_LIMIT < min(values) and max(values) < _INT_LIMIT
    return all(-_INT_LIMIT < v < _INT_LIMIT for v in values if type(v) is int)


def _assemble(parts: list[_Part]) -> pd.DataFrame:
    """One frame of all parts' rows in message order; columns in order of first appearance."""
    if not parts:
        return _empty_frame()
    parts.sort(key=lambda p: p.positions[0])
    runs = [parts[0]]
    for p in parts[1:]:
        last = runs[-1]
        if last.positions[-1] < p.positions[0] and list(last.columns) == list(p.columns):
            runs[-1] = last.then(p)
        else:
            runs.append(p)
    parts = runs
    if len(parts) == 1:
        part = parts[0]
        data = _meta_arrays(*part.meta)
        for name, values in part.columns.items():
            data[name] = to_column(values) if part.types is None else _column(values, part.types[name])
        return pd.DataFrame(data, copy=False)  # the arrays are ours alone
    order = np.argsort(np.concatenate([np.asarray(p.positions) for p in parts]), kind="stable")
    meta = []
    for k in range(len(META_COLUMNS)):
        values = np.empty(len(order), dtype=object)
        values[:] = [v for p in parts for v in _as_list(p.meta[k])]
        meta.append(values[order].tolist())
    data = _meta_arrays(*meta)
    names: dict[str, None] = {}
    for p in parts:
        names.update(dict.fromkeys(p.columns))
    starts = np.cumsum([0] + [len(p.positions) for p in parts])
    for name in names:
        values = np.full(len(order), None, dtype=object)
        for p, start in zip(parts, starts):
            if name in p.columns:
                block = np.empty(len(p.positions), dtype=object)
                block[:] = list(p.columns[name])
                values[start:start + len(p.positions)] = block
        data[name] = to_column(values[order].tolist())
    return pd.DataFrame(data)


def _parts_by_model(parts: list[_Part]) -> list[list[_Part]]:
    """The parts' rows regrouped per model (in order of each model's first row): a part of one
    model goes whole, a part of several is cut into one per model (column types then unknown)."""
    groups: dict[str, list[_Part]] = {}
    for p in parts:
        models = p.meta[0]
        names = dict.fromkeys(models)
        if len(names) == 1:
            groups.setdefault(models[0], []).append(p)
            continue
        for name in names:
            mask = [m == name for m in models]
            keep = np.array(mask)
            first = mask.index(True)  # the model's first row orders its columns
            order = p.order_at(first) if p.order_at else list(p.columns)
            groups.setdefault(name, []).append(_Part(
                list(compress(p.positions, mask)),
                tuple(m[keep] if isinstance(m, np.ndarray) else list(compress(m, mask)) for m in p.meta),
                {k: list(compress(p.columns[k], mask)) for k in order}))
    return sorted(groups.values(), key=lambda ps: min(p.positions[0] for p in ps))


def _as_list(values: Sequence) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
