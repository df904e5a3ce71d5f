"""BentoML monitoring logs (``bentoml.monitor``, the default file exporter).

A monitor named ``<name>`` writes two JSON-lines files under its log path:

- ``<name>/schema/schema.<worker>.log``, once per worker::

      {"meta_data": {"bento_name": "iris_classifier", "bento_version": "abc123"},
       "columns": [{"name": "sepal_len", "role": "feature", "type": "numerical"},
                   {"name": "pred", "role": "prediction", "type": "categorical"},
                   {"name": "label", "role": "target", "type": "categorical"}]}

- ``<name>/data/data.<worker>.log`` (rotated daily), one line per logged row::

      {"sepal_len": 5.1, "pred": "setosa", "label": "setosa",
       "timestamp": "2024-05-01T12:00:00.123456", "request_id": "4162..", "trace_id": "8a7f.."}

``timestamp`` is the server's local time without a UTC offset (read in config ``timezone``);
``request_id`` is the text of BentoML's request id (``"None"`` outside a request, then the line
position is used). Rows logged with ``log_batch`` in one request share its request id.

Roles: ``feature`` -> ``features.<name>``, ``prediction`` -> ``predictions.<name>``, the first
``target`` -> ``label``; a ``numerical_sequence`` value (a list) -> ``<name>[i]`` columns. A
schema line seen on a topic (or in a monitor directory) is remembered for later data lines
(in the caller's :class:`SchemaCache`; the service stores it in its database).
Config ``feature_names`` / ``prediction_names``, when set, list the feature and prediction
columns instead; with neither, a data line is rejected (``no_schema``). Model = config ``model``, else the monitor
name from the file path, else the schema's ``bento_name``; version = config, else
``bento_version``, else empty.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from collector.decode import RecordError, RejectReason
from collector.formats.columns import DecodedBuilder, check_width, scalar
from collector.formats.common import event_time, load_object, payload, position_id
from collector.formats.config import FormatConfig, Limits
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, Decoded

PRESERVED = ("timestamp", "request_id", "trace_id")
_MAX_SCHEMAS = 1024  # monitors remembered; least recently used forgotten first


@dataclass(frozen=True)
class Schema:
    """Column roles of one monitor: names of features, predictions and the label column."""

    features: tuple[str, ...]
    predictions: tuple[str, ...]
    target: str | None
    bento_name: str | None = None
    bento_version: str | None = None


class SchemaCache:
    """The last schema seen per monitor (bounded, least recently used evicted; thread-safe).

    A collector that resumes past a monitor's schema line still decodes its data lines when
    the schemas are kept outside the process: its owner loads the stored ones with
    :meth:`load`, stores what :meth:`changes` returns in the transaction of the batch that read
    them and confirms it with :meth:`stored` once committed. The decoder never touches storage.

    Args:
        capacity: monitors remembered (> 0).
        track_changes: record new schemas for :meth:`changes` (off for a cache nobody
            stores, so it stays bounded).
    """

    def __init__(self, capacity: int = _MAX_SCHEMAS, track_changes: bool = False) -> None:
        self._items: OrderedDict[str, Schema] = OrderedDict()
        self._changed: dict[str, Schema] = {}
        self._track = track_changes
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: str) -> Schema | None:
        """The schema remembered for ``key``, if any."""
        with self._lock:
            schema = self._items.get(key)
            if schema is not None:
                self._items.move_to_end(key)
            return schema

    def put(self, key: str, schema: Schema) -> None:
        """Remember ``schema`` for ``key`` (and report it by :meth:`changes` when it is new
        or differs from the one remembered)."""
        with self._lock:
            if self._track and self._items.get(key) != schema:
                self._changed[key] = schema
            self._items[key] = schema
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def load(self, schemas: Sequence[tuple[str, Schema]]) -> None:
        """Remember stored schemas, oldest first (the last ones are kept when they exceed the
        capacity); they are not reported as changes."""
        with self._lock:
            for key, schema in schemas:
                self._items[key] = schema
                self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def changes(self) -> dict[str, Schema]:
        """Schemas put (new or different) and not yet confirmed by :meth:`stored`, per monitor key."""
        with self._lock:
            return dict(self._changed)

    def stored(self, changes: dict[str, Schema]) -> None:
        """Confirm that ``changes`` (from :meth:`changes`) were stored: they are no longer
        reported, unless put again meanwhile with another schema. Changes never confirmed
        (their transaction failed) are reported again."""
        with self._lock:
            for key, schema in changes.items():
                if self._changed.get(key) == schema:
                    del self._changed[key]


#: the schemas of callers that keep none of their own (one-off decoding, replays)
SCHEMAS = SchemaCache()


def schema_to_json(schema: Schema) -> str:
    """``schema`` as JSON text (for storage); :func:`schema_from_json` reads it back."""
    return json.dumps({"features": list(schema.features), "predictions": list(schema.predictions),
                       "target": schema.target, "bento_name": schema.bento_name,
                       "bento_version": schema.bento_version}, separators=(",", ":"))


def schema_from_json(text: str) -> Schema:
    """The schema :func:`schema_to_json` wrote.

    Raises:
        ValueError, KeyError: text that is not such JSON.
    """
    d = json.loads(text)
    return Schema(tuple(d["features"]), tuple(d["predictions"]), d.get("target"), d.get("bento_name"),
                  d.get("bento_version"))


def monitor_key(topic: str) -> tuple[str, str | None]:
    """``(cache key, monitor name)``: the monitor directory of a ``.../<name>/data|schema/<file>``
    path, else the topic itself (and no name)."""
    parts = PurePath(topic).parts
    if len(parts) >= 3 and parts[-2] in ("data", "schema"):
        return str(PurePath(*parts[:-2])), parts[-3]
    return topic, None


def parse_schema(obj: dict) -> Schema:
    """The roles of a schema line.

    Raises:
        RecordError: ``wrong_type`` for a malformed column list.
    """
    cols = obj["columns"]
    if not isinstance(cols, list):
        raise RecordError(RejectReason.WRONG_TYPE, "columns: must be a list")
    features, predictions, targets = [], [], []
    for i, c in enumerate(cols):
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise RecordError(RejectReason.WRONG_TYPE, f"columns[{i}]: must be {{name, role, type}}")
        role = c.get("role")
        {"feature": features, "prediction": predictions, "target": targets}.get(role, []).append(c["name"])
    meta = obj.get("meta_data") if isinstance(obj.get("meta_data"), dict) else {}
    name, version = meta.get("bento_name"), meta.get("bento_version")
    return Schema(tuple(features), tuple(predictions), targets[0] if targets else None,
                  name if isinstance(name, str) and name else None,
                  version if isinstance(version, str) and version else None)


def _add_value(row: dict, prefix: str, name: str, v: object) -> None:
    if isinstance(v, list):  # numerical_sequence
        for i, x in enumerate(v):
            row[f"{prefix}{name}[{i}]"] = scalar(x, f"{name}[{i}]")
    else:
        row[prefix + name] = scalar(v, name)


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits,
           schemas: SchemaCache | None = None) -> Decoded:
    """Decode BentoML monitoring schema and data lines into whole records.

    Args:
        schemas: the schemas known per monitor, updated with the schema lines read; None: the
            process-wide :data:`SCHEMAS`.

    Returns:
        One record per data line; schema lines produce no rows (they are remembered);
        rejected lines.
    """
    out = DecodedBuilder()
    cache = SCHEMAS if schemas is None else schemas
    zone = fmt.zone()
    configured = (Schema(tuple(fmt.feature_names or ()), tuple(fmt.prediction_names or ()), None)
                  if fmt.feature_names or fmt.prediction_names else None)

    def one(msg: Message) -> None:
        obj = load_object(payload(msg, limits))
        key, monitor = monitor_key(msg.topic)
        if "columns" in obj and not any(k in obj for k in PRESERVED):
            cache.put(key, parse_schema(obj))
            return
        schema = configured or cache.get(key)
        if schema is None:
            raise RecordError(RejectReason.NO_SCHEMA, "columns: no BentoML schema line seen for this monitor and "
                                                      "no feature_names/prediction_names in the config")
        model = fmt.model or monitor or schema.bento_name
        if not model:
            raise RecordError(RejectReason.MISSING_FIELD, "model: the config sets no `model` and the monitor "
                                                          "has no name")
        t = event_time(obj.get("timestamp"), "timestamp", msg, limits, zone)
        rid = obj.get("request_id")
        rid = rid if isinstance(rid, str) and rid and rid != "None" else position_id(msg)
        row: dict[str, object] = {}
        for name in schema.features:
            _add_value(row, FEATURE_PREFIX, name, obj.get(name))
        for name in schema.predictions:
            _add_value(row, PREDICTION_PREFIX, name, obj.get(name))
        check_width(len(row), limits.max_features, "columns")
        label = scalar(obj.get(schema.target), schema.target) if schema.target else None
        out.add_row(msg, "records", model=model, model_version=fmt.model_version or schema.bento_version or "",
                    event_time_ms=t, request_id=rid, values=row, label=label)

    out.run(messages, one)
    return out.build()
