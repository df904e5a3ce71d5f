"""SageMaker Model Monitor data-capture lines and ground-truth lines.

Capture line (one per invocation)::

    {"captureData": {
        "endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                           "data": "69,0,153.7\\n", "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                           "data": "0.0254", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "..", "inferenceId"?: "..", "inferenceTime": "2022-02-14T17:25:49Z"},
     "eventVersion": "0"}

``encoding`` is ``CSV`` or ``JSON`` (``data`` is the text itself) or ``BASE64`` (``data`` is
base64 of the payload, whose ``observedContentType`` says CSV or JSON). A capture with both
sides is a whole record; with only one side (capture mode INPUT or OUTPUT only) a request or
response half. Several CSV lines (or JSON instances) are a batch of rows.

Ground-truth line: ``{"groundTruthData": {"data": "1", "encoding": "CSV"},
"eventMetadata": {"eventId": ".."}, "eventVersion": "0"}`` -> a label row.

Request id (the label join key) = ``inferenceId`` when the line has one, else ``eventId``,
on both kinds of line (ground truth is uploaded with the capture's inference id, or its event
id when the capture has none, in ``eventId``).

Capture lines: model = config ``model``, else the endpoint name of a capture file path
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`` (``serving.endpoint`` = the
variant); event time = ``inferenceTime``, else the message timestamp.

Ground-truth lines are read from the line itself, not from where the file sits:

- *Model* = config ``model``, else none: the label joins the prediction of its request id
  whatever the model (:class:`collector.join.LabelJoin`). Ground truth is uploaded under
  ``<prefix>/yyyy/mm/dd/hh/``, without the endpoint and variant of a capture path, so the
  path's directories name no model (read as a capture path they would give the prefix's last
  directories, and the labels would join nothing).
- *Event time* (when the label became known, which the label join compares with the
  prediction's time against its delay) = ``eventMetadata.inferenceTime`` when the line has
  one (a line built from its capture's metadata), else the hour of a ground-truth path
  ``.../yyyy/mm/dd/hh/<file>`` (UTC; SageMaker's layout, where that hour is when the labels
  were collected), else the message timestamp. The file's modification time (the timestamp
  of a file replayed) is the last resort only: a copied or downloaded file's is the copy's,
  days after the labels, which would make every label too late for the join.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from collector.decode import RecordError, RejectReason
from collector.formats.columns import DecodedBuilder, check_width
from collector.formats.common import b64decode, event_time, load_json, load_object, payload, require_model, text_id
from collector.formats.config import FormatConfig, Limits
from collector.formats.tabular import body_columns, csv_columns, csv_rows
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, Decoded, row_request_ids

_CAPTURE_PATH = re.compile(r"(?:^|/)(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+$")


_HOUR_PATH = re.compile(r"(?:^|/)(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<h>\d{2})/[^/]+$")


def hour_from_path(topic: str) -> int | None:
    """Epoch ms of the hour of a SageMaker ``.../yyyy/mm/dd/hh/<file>`` path (UTC), else None
    (not such a path, or not a valid date)."""
    m = _HOUR_PATH.search(topic.replace("\\", "/"))
    if m is None:
        return None
    try:
        t = datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["h"]), tzinfo=timezone.utc)
    except ValueError:
        return None
    return int(t.timestamp()) * 1000


def endpoint_from_path(topic: str) -> tuple[str, str] | None:
    """``(endpoint, variant)`` from a data-capture file path, else None."""
    m = _CAPTURE_PATH.search(topic.replace("\\", "/"))
    return (m["endpoint"], m["variant"]) if m else None


def _text(part: dict, where: str) -> tuple[str, str]:
    """The payload text of a capture side (or ground truth) and its kind (``csv`` / ``json``)."""
    encoding = part.get("encoding")
    data = part.get("data")
    if not isinstance(encoding, str):
        raise RecordError(RejectReason.MISSING_FIELD, f"{where}.encoding: missing")
    if not isinstance(data, str):
        raise RecordError(RejectReason.MISSING_FIELD if data is None else RejectReason.WRONG_TYPE,
                          f"{where}.data: must be a string")
    encoding = encoding.upper()
    ctype = str(part.get("observedContentType") or "").lower()
    if encoding == "CSV":
        return data, "csv"
    if encoding == "JSON":
        return data, "json"
    if encoding == "BASE64":
        raw = b64decode(data, f"{where}.data")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}.data: the payload is binary "
                                                                f"({ctype or 'no content type'})") from None
        if "csv" in ctype:
            return text, "csv"
        if "json" in ctype:
            return text, "jsonlines" if "jsonlines" in ctype else "json"
        if not ctype:
            return text, "csv"
        raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}.observedContentType: {ctype[:80]!r} "
                                                            "is neither CSV nor JSON")
    raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}.encoding: {encoding[:32]!r} is not CSV, JSON or BASE64")


def _side_columns(part: object, side: str, fmt: FormatConfig, limits: Limits, where: str,
                  n_in: int | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """Columns of one capture side. ``n_in`` (output side): the input's row count, so that a
    CSV answer of one line holding one value per input row (as XGBoost gives) is read as
    ``n_in`` rows."""
    if not isinstance(part, dict):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: must be an object")
    text, kind = _text(part, where)
    prefix, names, default, key = ((FEATURE_PREFIX, fmt.feature_names, "f", "feature_names") if side == "request"
                                   else (PREDICTION_PREFIX, fmt.prediction_names, "p", "prediction_names"))
    if kind == "csv":
        rows = csv_rows(text, f"{where}.data")
        if n_in is not None and n_in > 1 and len(rows) == 1 and len(rows[0]) == n_in:
            rows = [[v] for v in rows[0]]
        return csv_columns(rows, prefix, names, default, f"{where}.data", key, limits.max_features)
    if kind == "jsonlines":
        obj = [load_json(line, f"{where}.data") for line in text.splitlines() if line.strip()]
    else:
        obj = load_json(text, f"{where}.data")
    return body_columns(obj, side, prefix, names, default, f"{where}.data", key, limits.max_features)


def _labels(gt: dict) -> list[object]:
    text, kind = _text(gt, "groundTruthData")
    if kind == "csv":
        rows = csv_rows(text, "groundTruthData.data")
        values = [v for r in rows for v in r] if len(rows) == 1 else [r[0] if len(r) == 1 else None for r in rows]
        if any(v is None for v in values):
            raise RecordError(RejectReason.WRONG_TYPE, "groundTruthData.data: one label per line")
        return [v.strip() for v in values]
    obj = load_json(text, "groundTruthData.data")
    values = obj if isinstance(obj, list) else [obj]
    if isinstance(obj, dict) and len(obj) == 1:
        values = [next(iter(obj.values()))]
        values = values[0] if isinstance(values[0], list) else values
    for v in values:
        if isinstance(v, (dict, list)):
            raise RecordError(RejectReason.WRONG_TYPE, "groundTruthData.data: a label must be a scalar")
    return values


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode SageMaker data-capture and ground-truth JSON lines.

    Returns:
        Whole records (or halves for one-sided captures) and label rows; rejected lines.
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        obj = load_object(payload(msg, limits))
        meta = obj.get("eventMetadata")
        if not isinstance(meta, dict):
            raise RecordError(RejectReason.MISSING_FIELD, "eventMetadata: missing")
        rid = text_id(meta.get("inferenceId"), "eventMetadata.inferenceId") or \
            text_id(meta.get("eventId"), "eventMetadata.eventId")
        if not rid:
            raise RecordError(RejectReason.MISSING_FIELD, "eventMetadata.eventId: missing")
        if "groundTruthData" in obj:
            gt = obj["groundTruthData"]
            if not isinstance(gt, dict):
                raise RecordError(RejectReason.WRONG_TYPE, "groundTruthData: must be an object")
            labels = _labels(gt)
            if not labels:
                raise RecordError(RejectReason.NO_DATA, "groundTruthData.data: no label")
            own = meta.get("inferenceTime")
            t = event_time(own if own not in (None, "") else hour_from_path(msg.topic),
                           "eventMetadata.inferenceTime", msg, limits)
            out.add("labels", len(labels), model=fmt.model, event_time_ms=t,
                    request_ids=row_request_ids(rid, len(labels)), label=labels)
            return
        t = event_time(meta.get("inferenceTime"), "eventMetadata.inferenceTime", msg, limits)
        path = endpoint_from_path(msg.topic)
        model = fmt.model or (path[0] if path else None)
        capture = obj.get("captureData")
        if not isinstance(capture, dict):
            raise RecordError(RejectReason.MISSING_FIELD, "captureData: missing")
        model = require_model(model, "a data-capture line")
        has_in, has_out = "endpointInput" in capture, "endpointOutput" in capture
        if not (has_in or has_out):
            raise RecordError(RejectReason.NO_DATA, "captureData: neither endpointInput nor endpointOutput")
        cols: dict[str, np.ndarray] = {}
        n_in = n_out = None
        if has_in:
            n_in, c = _side_columns(capture["endpointInput"], "request", fmt, limits, "captureData.endpointInput")
            cols.update(c)
        if has_out:
            n_out, c = _side_columns(capture["endpointOutput"], "response", fmt, limits,
                                     "captureData.endpointOutput", n_in)
            if n_in is not None and n_out != n_in:
                raise RecordError(RejectReason.SHAPE_MISMATCH, f"captureData: {n_in} input rows but "
                                                               f"{n_out} output rows")
            cols.update(c)
        n = n_in if n_in is not None else n_out
        if not n:
            raise RecordError(RejectReason.NO_DATA, "captureData: no rows")
        check_width(len(cols), limits.max_features, "captureData")  # features and predictions only so far
        serving = {"serving.endpoint": np.full(n, path[1], dtype=object)} if path else {}
        cols.update(serving)
        kind = "records" if has_in and has_out else ("requests" if has_in else "responses")
        if kind == "requests":
            cols["serving.batch_size"] = np.full(n, float(n))
        if n == 1:  # the common case: columns are built once per batch
            out.add_row(msg, kind, model=model, model_version=fmt.model_version or "", event_time_ms=t, request_id=rid,
                        values={c: a.tolist()[0] for c, a in cols.items()})
            return
        out.add(kind, n, model=model, model_version=fmt.model_version or "", event_time_ms=t,
                request_ids=row_request_ids(rid, n), columns=cols)

    out.run(messages, one)
    return out.build()
