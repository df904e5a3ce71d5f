"""Flat JSON prediction logs read through a configured field mapping (format ``mapped_json``).

One JSON object per message. :class:`collector.formats.config.JsonMapping` says which dotted
key path holds the model, version, timestamp, request id, label and latency, and which paths
or patterns are features and predictions, e.g. for the line::

    {"ts": 1714564800.25, "svc": {"model": "churn", "version": 3}, "trace_id": "t-1",
     "input": {"tenure": 12, "plan": "pro"}, "feat_age": 41, "score": 0.83}

the mapping ``{model: svc.model, model_version: svc.version, timestamp: ts,
timestamp_unit: s, request_id: trace_id, features: ["input.*", "feat_*"], predictions: [score]}``
gives features ``tenure``, ``plan``, ``feat_age`` and prediction ``score``. A missing feature
is a missing value (a line with none of them is rejected as ``no_data``: it is no prediction
log); a list of numbers becomes ``name[i]`` columns.

Serving metadata comes from ``mapping.serving`` (:class:`collector.formats.config.ServingPaths`),
one dotted path per ``serving.<key>`` column, e.g. for an OpenAI-style completion log::

    {"ts": "2024-05-01T12:00:00Z", "id": "cmpl-1", "model": "llama-3-8b", "kubernetes": {"pod": "vllm-0"},
     "request": {"max_tokens": 256}, "response": {"status": 200},
     "usage": {"prompt_tokens": 412, "completion_tokens": 37}}

``serving: {status_code: response.status, replica: kubernetes.pod, prompt_tokens:
usage.prompt_tokens, completion_tokens: usage.completion_tokens}`` gives the columns
``serving.status_code``, ``serving.replica``, ``serving.prompt_tokens`` and
``serving.completion_tokens``. Values follow the rules of the inferwatch record's ``serving``
object (:data:`collector.decode.SERVING_FIELDS`: a status code is an integer 100..599, token
counts integers >= 0, ``*_ms`` numbers >= 0 in milliseconds, names text); a value breaking
them rejects the line as ``wrong_type``, the detail naming the path. A path absent from a line
(or null there) gives no value; a batch has a ``serving.<key>`` column when one of its lines
has that value. Serving columns do not count against ``max_features``.
"""

from __future__ import annotations

from collections.abc import Sequence

from collector.decode import SERVING_FIELDS, RecordError, RejectReason
from collector.formats.columns import DecodedBuilder, check_width, scalar
from collector.formats.common import event_time, load_object, payload, position_id, require_model, text_id
from collector.formats.config import FormatConfig, JsonMapping, Limits
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, SERVING_PREFIX, Decoded

MISSING = object()  # what lookup returns for an absent path
_UNIT_MS = {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 0.000001}


def lookup(obj: object, path: str) -> object:
    """The value at a dotted key path, or :data:`MISSING` when absent."""
    for key in path.split("."):
        if not isinstance(obj, dict) or key not in obj:
            return MISSING
        obj = obj[key]
    return obj


def _get(obj: dict, path: str | None) -> object:
    if path is None:
        return None
    v = lookup(obj, path)
    return None if v is MISSING else v


def select(obj: dict, patterns: Sequence[str], prefix: str, row: dict, where: str) -> int:
    """Add the columns the patterns pick from ``obj`` to ``row`` (named ``prefix + last key``).

    Returns:
        How many keys the patterns found in ``obj``.

    Raises:
        RecordError: a picked value that is an object or a list of non-scalars.
    """
    found = 0
    for pattern in patterns:
        if pattern.endswith("*"):
            parent_path, _, stem = pattern[:-1].rpartition(".")
            parent = lookup(obj, parent_path) if parent_path else obj
            if not isinstance(parent, dict):
                continue
            picked = parent.items() if not stem else [(k, v) for k, v in parent.items() if k.startswith(stem)]
        else:
            v = lookup(obj, pattern)
            if v is MISSING:
                row[prefix + pattern.rpartition(".")[2]] = None
                continue
            picked = [(pattern.rpartition(".")[2], v)]
        for name, v in picked:
            found += 1
            t = type(v)
            if t is float or t is str or t is bool or v is None:  # the common case, no checks needed
                row[prefix + name] = v
            elif t is list:
                for i, x in enumerate(v):
                    row[f"{prefix}{name}[{i}]"] = scalar(x, f"{where}.{name}[{i}]")
            else:
                row[prefix + name] = scalar(v, f"{where}.{name}")
    return found


def timestamp_value(value: object, mapping: JsonMapping) -> object:
    """A numeric timestamp converted to epoch milliseconds by the configured unit; text as is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value * _UNIT_MS[mapping.timestamp_unit]
    return value


_SERVING_RULES = {name: (test, rule) for name, test, rule in SERVING_FIELDS}


def serving_values(obj: dict, paths: Sequence[tuple[str, str]], row: dict) -> None:
    """Add the ``serving.<key>`` values found at ``paths`` (``(key, dotted path)`` pairs, see
    :meth:`collector.formats.config.ServingPaths.paths`) in ``obj`` to ``row``; an absent or
    null value adds nothing.

    Raises:
        RecordError: ``wrong_type``: a value breaking its key's rule (the detail names the path).
    """
    for name, path in paths:
        v = lookup(obj, path)
        if v is MISSING or v is None:
            continue
        test, rule = _SERVING_RULES[name]
        if not test(v):
            raise RecordError(RejectReason.WRONG_TYPE, f"{path}: serving.{name} {rule}")
        row[SERVING_PREFIX + name] = v


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode flat JSON log lines through ``fmt.mapping``.

    Returns:
        One whole record per line (label, latency and ``serving.*`` columns when mapped);
        rejected lines.

    Raises:
        ValueError: ``fmt`` has no mapping (a configuration error, not a message error).
    """
    mapping = fmt.mapping
    if mapping is None:
        raise ValueError("mapping: format mapped_json needs a field mapping")
    out = DecodedBuilder()
    zone = fmt.zone()
    serving = mapping.serving.paths() if mapping.serving is not None else []

    def one(msg: Message) -> None:
        obj = load_object(payload(msg, limits))
        model = _get(obj, mapping.model)
        if model is not None and not isinstance(model, str):
            raise RecordError(RejectReason.WRONG_TYPE, f"{mapping.model}: the model name must be a string")
        model = require_model(model or fmt.model, f"the line ({mapping.model or 'no model path'})")
        version = _get(obj, mapping.model_version)
        if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
            raise RecordError(RejectReason.WRONG_TYPE, f"{mapping.model_version}: the version must be a string")
        version = str(version) if version is not None and version != "" else (fmt.model_version or "")
        ts = timestamp_value(_get(obj, mapping.timestamp), mapping)
        t = event_time(ts, mapping.timestamp or "timestamp", msg, limits, zone)
        rid = text_id(_get(obj, mapping.request_id), mapping.request_id or "request_id") or position_id(msg)
        label = scalar(_get(obj, mapping.label), mapping.label or "label")
        latency = _get(obj, mapping.latency_ms)
        if latency is not None and (isinstance(latency, bool) or not isinstance(latency, (int, float))
                                    or not 0 <= latency < float("inf")):
            raise RecordError(RejectReason.WRONG_TYPE, f"{mapping.latency_ms}: latency must be a number >= 0")
        row: dict[str, object] = {}
        if not select(obj, mapping.features, FEATURE_PREFIX, row, "features"):
            raise RecordError(RejectReason.NO_DATA, f"features: none of {mapping.features} is in the line")
        select(obj, mapping.predictions, PREDICTION_PREFIX, row, "predictions")
        check_width(len(row), limits.max_features, "features and predictions")
        if serving:
            serving_values(obj, serving, row)
        out.add_row(msg, "records", model=model, model_version=version, event_time_ms=t, request_id=rid, values=row,
                    label=label, latency_ms=float("nan") if latency is None else float(latency))

    out.run(messages, one)
    return out.build()
