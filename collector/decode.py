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
      "latency_ms": 3.2                         # optional number >= 0
    }

Features map names to number | string | bool | null; predictions map names to
number | string | bool | list of class probabilities (each list item becomes its own numeric
column ``predictions.<name>[i]``). Anything else is rejected with a reason from
:class:`RejectReason`; the caller forwards rejected messages to the dead-letter topic.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import numpy as np
import pandas as pd

from collector.message import Message
from detectors.profile import category_label  # one labelling rule for decode and profiles

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
            (``features.<name>``) and per prediction (``predictions.<name>``). A column whose
            values are all numbers is float64 (missing = NaN); any other column holds strings
            (booleans as ``"true"``/``"false"``, integral numbers without ``.0``) or None.
        rejected: messages that failed, in input order.
    """

    frame: pd.DataFrame
    rejected: list[Rejected]


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
        where ``columns`` maps ``features.<name>`` / ``predictions.<name>`` to scalar values.

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
    meta = (model, version, event_time, request_id, None if label is None else category_label(label),
            float(latency) if latency is not None else math.nan)
    return meta, columns


def to_column(values: Sequence[object]) -> np.ndarray:
    """Column array from per-record values: float64 if every value is a number or None,
    else object strings (None kept) normalised by :func:`category_label`."""
    types = set(map(type, values))
    if types <= {int, float, type(None)}:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    if types <= {str, type(None)}:  # the common categorical case needs no per-value work
        return np.array(values, dtype=object)
    return np.array([None if v is None else category_label(v) for v in values], dtype=object)


def decode_json_batch(messages: Sequence[Message], max_message_bytes: int, max_features: int,
                      max_event_time_ms: int | None = None) -> DecodedBatch:
    """Decode a batch of JSON prediction-log messages into one columnar frame.

    Args:
        messages: raw messages, in the order read.
        max_message_bytes: larger values are rejected as ``oversize`` without parsing.
        max_features: records with more features are rejected as ``too_many_features``.
        max_event_time_ms: later timestamps are rejected as ``future_timestamp``.

    Returns:
        The accepted rows as a :class:`DecodedBatch` frame plus the rejected messages.
    """
    metas: list[tuple] = []
    rows: list[dict[str, object]] = []
    rejected: list[Rejected] = []
    for msg in messages:
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
            meta, columns = validate_record(obj, max_features, max_event_time_ms)
        except RecordError as err:
            rejected.append(Rejected(msg, err.reason, str(err)))
            continue
        metas.append(meta)
        rows.append(columns)

    n = len(metas)
    data: dict[str, np.ndarray] = {}
    if n:
        model, version, event_time, request_id, label, latency = zip(*metas)
        data = {
            "model": np.array(model, dtype=object),
            "model_version": np.array(version, dtype=object),
            "event_time_ms": np.array(event_time, dtype=np.int64),
            "request_id": np.array(request_id, dtype=object),
            "label": np.array(label, dtype=object),
            "latency_ms": np.array(latency, dtype=np.float64),
        }
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r))
        for name in names:
            data[name] = to_column([r.get(name) for r in rows])
    frame = pd.DataFrame(data) if n else pd.DataFrame({c: [] for c in META_COLUMNS})
    return DecodedBatch(frame=frame, rejected=rejected)
