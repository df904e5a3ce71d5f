"""How one topic or file is decoded: the format and the names the format itself does not carry.

Example (YAML, one entry per topic or file)::

    format: kserve                 # or auto, inferwatch, mapped_json, oip, seldon_v2, ...
    model: credit-risk             # used when a message names no model
    feature_names: [age, income, tenure]   # columns of a 2-D input ([N, 3] tensor, CSV row, ...)
    prediction_names: [p_default]
    inputs: {input-0: [age, income, tenure]}   # OIP input tensor -> feature name(s)

    format: mapped_json            # flat JSON logs
    mapping:
      model: service.model
      timestamp: ts
      timestamp_unit: s
      request_id: trace_id
      features: ["input.*", "feat_*", "country"]
      predictions: [score]
      label: outcome
      serving:                     # optional serving metadata -> serving.<key> columns
        status_code: response.status
        replica: kubernetes.pod
        prompt_tokens: usage.prompt_tokens
        completion_tokens: usage.completion_tokens
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FormatName = Literal["auto", "inferwatch", "labels", "mapped_json", "kserve", "oip", "seldon_v2", "seldon_v1",
                     "sagemaker", "bentoml"]
FORMAT_NAMES: tuple[str, ...] = FormatName.__args__  # type: ignore[attr-defined]

# a dotted path of JSON object keys, optionally ending in ".*" (every key of that object) or
# in "<prefix>*" (every key of that object starting with the prefix)
_PATH = re.compile(r"^[^.*]+(\.[^.*]+)*(\.\*|\*)?$|^\*$")


def _check_names(key: str, names: list[str] | None) -> list[str] | None:
    if names is None:
        return None
    seen: set[str] = set()
    for n in names:
        if not n:
            raise ValueError(f"{key}: names must be non-empty")
        if n in seen:
            raise ValueError(f"{key}: duplicate name {n!r}")
        seen.add(n)
    return names


def _dotted_path(where: str, v: str | None) -> str | None:
    if v is not None and (not v or "*" in v or not _PATH.match(v)):
        raise ValueError(f"{where}: {v!r} is not a dotted key path (no wildcards here)")
    return v


class ServingPaths(BaseModel):
    """Where the serving metadata sits in a flat JSON log line: a dotted key path per
    ``serving.<key>`` column (keys and value rules as in the inferwatch record's ``serving``
    object, :mod:`collector.decode`). A path absent from a line gives no value for that line."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status_code: str | None = Field(None, description="Path of the HTTP status code (integer 100..599).")
    replica: str | None = Field(None, description="Path of the replica name (pod or instance), a string.")
    queue_ms: str | None = Field(None, description="Path of the time queued before serving, milliseconds >= 0.")
    prompt_tokens: str | None = Field(None, description="Path of the prompt token count (integer >= 0).")
    completion_tokens: str | None = Field(None, description="Path of the completion token count (integer >= 0).")
    time_to_first_token_ms: str | None = Field(
        None, description="Path of the time to the first generated token, milliseconds >= 0.")
    batch_size: str | None = Field(None, description="Path of the serving batch size (integer >= 1).")
    finish_reason: str | None = Field(None, description="Path of the finish reason (stop, length, ...), a string.")
    endpoint: str | None = Field(None, description="Path of the endpoint or route, a string.")

    @field_validator("*")
    @classmethod
    def _plain_path(cls, v: str | None, info) -> str | None:
        return _dotted_path(f"mapping.serving.{info.field_name}", v)

    def paths(self) -> list[tuple[str, str]]:
        """``(key, path)`` of every configured key, in field order."""
        return [(k, v) for k, v in self if v is not None]


class JsonMapping(BaseModel):
    """Where the record's fields sit in a flat JSON log line (format ``mapped_json``).

    Every entry is a dotted path of object keys (``"meta.model"``). In ``features`` and
    ``predictions`` a path may end in ``.*`` (every key of that object) or ``<prefix>*``
    (every key starting with the prefix, e.g. ``"feat_*"``); a column is named by the last key
    of its path (``"user.age"`` -> ``features.age``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(None, description="Path of the model name; else FormatConfig.model.")
    model_version: str | None = Field(None, description="Path of the model version; else FormatConfig.model_version.")
    timestamp: str | None = Field(None, description="Path of the event time (RFC 3339 text or an epoch number); "
                                                    "else the Kafka message timestamp.")
    timestamp_unit: Literal["s", "ms", "us", "ns"] = Field(
        "ms", description="Unit of a numeric timestamp (epoch seconds, milliseconds, microseconds, nanoseconds).")
    request_id: str | None = Field(None, description="Path of the request id (the join key for labels); "
                                                     "else topic:partition:offset.")
    label: str | None = Field(None, description="Path of the ground-truth label, if the log carries it.")
    latency_ms: str | None = Field(None, description="Path of the serving latency in milliseconds.")
    features: list[str] = Field(..., min_length=1, description="Paths or patterns of the model inputs.")
    predictions: list[str] = Field(default_factory=list, description="Paths or patterns of the model outputs.")
    serving: ServingPaths | None = Field(
        None, description="Paths of serving metadata (status code, replica, token counts, ...), "
                          "each giving a serving.<key> column.")

    @field_validator("model", "model_version", "timestamp", "request_id", "label", "latency_ms")
    @classmethod
    def _plain_path(cls, v: str | None, info) -> str | None:
        return _dotted_path(f"mapping.{info.field_name}", v)

    @field_validator("features", "predictions")
    @classmethod
    def _patterns(cls, v: list[str], info) -> list[str]:
        for p in v:
            if not p or not _PATH.match(p):
                raise ValueError(f"mapping.{info.field_name}: {p!r} is not a dotted key path, "
                                 "'<path>.*' or '<prefix>*'")
        return _check_names(f"mapping.{info.field_name}", v) or []


TensorNames = dict[str, str | list[str]]


class FormatConfig(BaseModel):
    """How the messages of one topic (or one replayed file) are decoded.

    Names configured here are used only where the messages themselves carry none, except
    ``feature_names`` / ``prediction_names`` / ``inputs`` / ``outputs``, which rename columns
    the message names positionally or by tensor name.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: FormatName = Field(
        "auto", description="Wire format; 'auto' detects it per message from headers and body.")
    model: str | None = Field(
        None, min_length=1,
        description="Model name for messages that name none (SageMaker capture lines, OIP requests, "
                    "BentoML without a schema line, flat JSON logs).")
    model_version: str | None = Field(
        None, min_length=1, description="Model version for messages that name none; else empty text.")
    feature_names: list[str] | None = Field(
        None, description="Names of the columns of a 2-D input: one OIP input tensor of shape [N, k], "
                          "V1 'instances' lists, SageMaker CSV rows, Seldon ndarray. "
                          "Default: '<tensor>[i]' for tensors, 'f0'..'f<k-1>' otherwise.")
    prediction_names: list[str] | None = Field(
        None, description="Names of the columns of a 2-D output, likewise. "
                          "Default: '<tensor>[i]' for tensors, 'p0'..'p<k-1>' otherwise.")
    inputs: TensorNames = Field(
        default_factory=dict,
        description="OIP input tensor name -> feature name (for shape [N] or [N, 1]) or list of "
                    "feature names (one per column of shape [N, k]). Tensors not listed keep their "
                    "own name.")
    outputs: TensorNames = Field(
        default_factory=dict, description="OIP output tensor name -> prediction name(s), likewise.")
    mapping: JsonMapping | None = Field(
        None, description="Field mapping of flat JSON logs; required by (and only for) format mapped_json.")
    timezone: str = Field(
        "UTC", description="IANA time zone of timestamps written without a UTC offset "
                          "(BentoML writes the server's local time that way).")

    @field_validator("feature_names", "prediction_names")
    @classmethod
    def _names(cls, v: list[str] | None, info) -> list[str] | None:
        if v is not None and not v:
            raise ValueError(f"{info.field_name}: give at least one name or leave it out")
        return _check_names(info.field_name, v)

    @field_validator("inputs", "outputs")
    @classmethod
    def _tensor_names(cls, v: TensorNames, info) -> TensorNames:
        for tensor, names in v.items():
            key = f"{info.field_name}.{tensor}"
            if isinstance(names, str):
                if not names:
                    raise ValueError(f"{key}: the column name must be non-empty")
            elif not names:
                raise ValueError(f"{key}: give at least one column name")
            else:
                _check_names(key, names)
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: {v!r} is not an IANA time zone name") from None
        return v

    @model_validator(mode="after")
    def _mapping_for_mapped_json(self) -> FormatConfig:
        if self.format == "mapped_json" and self.mapping is None:
            raise ValueError("mapping: format mapped_json needs a field mapping")
        if self.mapping is not None and self.format not in ("mapped_json", "auto"):
            raise ValueError(f"mapping: only used by format mapped_json, not {self.format}")
        return self

    def zone(self) -> ZoneInfo:
        """The configured :attr:`timezone` as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class Limits:
    """Bounds every decoder enforces per message; an excess is a rejected message.

    Attributes:
        max_message_bytes: larger message values are rejected (``oversize``) before parsing;
            > 0.
        max_features: most feature plus prediction columns one record may have
            (``too_many_features``); > 0.
        max_event_time_ms: event times after this epoch-milliseconds instant are rejected
            (``future_timestamp``); None = no bound. The caller sets it per batch, typically to
            now plus an allowed clock skew.
        max_rows_per_message: a message that expands to more rows (an OIP tensor of shape
            [N, k], a batched KServe, Seldon or SageMaker body) is rejected whole
            (``too_many_rows``); > 0. Enforced for every format by
            :func:`collector.formats.decode_messages`.

    Raises:
        ValueError: a bound that is not positive.
    """

    max_message_bytes: int = 1_048_576
    max_features: int = 1000
    max_event_time_ms: int | None = None
    max_rows_per_message: int = 100_000

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes: must be > 0")
        if self.max_features <= 0:
            raise ValueError("max_features: must be > 0")
        if self.max_rows_per_message <= 0:
            raise ValueError("max_rows_per_message: must be > 0")
