"""Seldon Core: v2 model topics (protobuf or JSON Open Inference Protocol) and the v1 Kafka logger.

**v2.** Each model has the topics ``<prefix>.<namespace>.model.<model>.inputs`` (a
``ModelInferRequest``) and ``.outputs`` (a ``ModelInferResponse``); pipelines likewise
``<prefix>.<namespace>.pipeline.<pipeline>.inputs|outputs``. The topic says which half a
message is and which model; the two halves join on the ``x-request-id`` header (else the
body ``id``, else the message key). The gateway copies the input's headers onto the output,
so the header ``seldon-infer-type`` (``json/inferModelRequest``, ``proto/InferModelResponse``,
...) is read only for the encoding: ``json/...`` means the value is OIP JSON, anything else
protobuf. A value on an ``.inputs`` topic may be a response chained from the previous model
of a pipeline; its outputs are then read as the inputs. A value starting with byte 0 carries
the Confluent schema-registry framing (magic byte, 4-byte schema id, message indexes), which
is skipped. Tensors come from the typed ``*_contents`` or, when present, from
``raw_input_contents`` / ``raw_output_contents`` (one little-endian blob per tensor, in order).
Event time = the message timestamp.

**v1.** The Seldon Core v1 executor logs straight to one Kafka topic with the headers
``type`` (``io.seldon.serving.inference.request`` / ``.response``, ``io.seldon.serving.feedback``),
``requestid`` (the ``Seldon-Puid``, the join key), ``modelid`` (the graph node),
``inferenceservicename`` (the SeldonDeployment), ``namespace``, ``endpoint`` (the predictor),
``protocol`` and ``content-type``; the same attributes prefixed ``ce_`` (CloudEvents via
Knative) are read too. Bodies: a SeldonMessage (``{"data": {"names": [..], "ndarray": ..}}``
or ``"tensor": {"shape", "values"}``, ``jsonData``, ``strData``), the TensorFlow protocol
(``instances`` / ``predictions``) or OIP JSON. Feedback (``{"request", "response", "reward",
"truth"}``) becomes label rows when it carries ``truth``, keyed by the ``meta.puid`` of its
response when present, else by ``requestid``. Model = config ``model``, else
``inferenceservicename``, else ``modelid``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from google.protobuf.message import DecodeError

from collector.decode import RecordError, RejectReason
from collector.formats import oip
from collector.formats.cloudevents import decode_body as v1_or_oip_body
from collector.formats.cloudevents import is_oip
from collector.formats.columns import DecodedBuilder, merge_decoded
from collector.formats.common import event_time, headers, load_json, load_object, payload, require_model
from collector.formats.config import FormatConfig, Limits
from collector.formats.open_inference_pb2 import ModelInferRequest, ModelInferResponse
from collector.formats.tabular import matrix_columns, object_columns
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, Decoded, row_request_ids

INFER_TYPE_HEADER = "seldon-infer-type"
TOPIC = re.compile(r"^(?P<prefix>.+)\.(?P<namespace>[^.]+)\.(?P<kind>model|pipeline)\.(?P<name>.+)"
                   r"\.(?P<side>inputs|outputs)$")
ERROR_TOPIC = re.compile(r"^.+\.errors\.errors$")
V1_REQUEST, V1_RESPONSE = "io.seldon.serving.inference.request", "io.seldon.serving.inference.response"
V1_FEEDBACK = ("io.seldon.serving.feedback", "io.seldon.serving.inference.feedback")

# InferTensorContents field holding each datatype (FP16/BF16 travel only as raw bytes)
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
    "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def parse_topic(topic: str) -> dict[str, str] | None:
    """``{prefix, namespace, kind, name, side}`` of a Seldon v2 model or pipeline topic, else None."""
    m = TOPIC.match(topic)
    return m.groupdict() if m else None


def strip_schema_prefix(raw: bytes) -> bytes:
    """The protobuf bytes after a Confluent schema-registry prefix, if there is one.

    A protobuf message cannot start with byte 0 (field number 0 is invalid), so a leading 0 is
    the framing: magic 0, a 4-byte schema id, then the message-index list (a zigzag varint
    count, 0 meaning ``[0]``, then that many zigzag varints).

    Raises:
        RecordError: ``invalid_protobuf`` for a truncated prefix.
    """
    if not raw or raw[0] != 0:
        return raw
    pos = 5

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(raw) or shift > 63:
                raise RecordError(RejectReason.INVALID_PROTOBUF, "value: truncated schema-registry prefix")
            b = raw[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7

    if len(raw) < 6:
        raise RecordError(RejectReason.INVALID_PROTOBUF, "value: truncated schema-registry prefix")
    count = varint()
    for _ in range(max(count, 0)):
        varint()
    return raw[pos:]


def proto_tensors(tensors, raw_contents: Sequence[bytes], where: str) -> list[oip.Tensor]:
    """Tensors of a protobuf request's inputs or response's outputs.

    Raises:
        RecordError: bad datatype or shape, contents that do not fill the shape, a raw blob
            count different from the tensor count.
    """
    if raw_contents and len(raw_contents) != len(tensors):
        raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: {len(raw_contents)} raw blobs for "
                                                       f"{len(tensors)} tensors")
    out = []
    for i, t in enumerate(tensors):
        w = f"{where}[{i}]({t.name})"
        if not t.name:
            raise RecordError(RejectReason.MISSING_FIELD, f"{where}[{i}].name: missing")
        datatype = oip.check_datatype(t.datatype, w)
        shape = oip.check_shape(list(t.shape), w)
        if raw_contents:
            values = oip.raw_values(raw_contents[i], datatype, shape, w)
        else:
            field = _CONTENTS.get(datatype)
            if field is None:
                raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{w}: {datatype} travels only as raw contents")
            items = getattr(t.contents, field)
            if datatype == "BYTES":
                values = np.array([oip.utf8(b, w) for b in items], dtype=object)
            elif datatype == "BOOL":
                values = np.array(items, dtype=bool)
            else:
                values = np.array(items, dtype=np.float64)
            if values.size != oip.size_of(shape):
                raise oip.shape_mismatch(w, values.size, shape)
        out.append(oip.Tensor(t.name, datatype, shape, values))
    return out


def _parse(cls, raw: bytes):
    msg = cls()
    try:
        msg.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise RecordError(RejectReason.INVALID_PROTOBUF, f"value: not a {cls.__name__}: {str(exc)[:120]}") from None
    return msg


def proto_body(raw: bytes, side: str, fmt: FormatConfig, limits: Limits) -> oip.Body:
    """Rows of a protobuf ``ModelInferRequest`` (``side="request"``) or ``ModelInferResponse``.

    On the request side a value that is not a request with inputs is read as a chained
    response.

    Raises:
        RecordError: ``invalid_protobuf`` or any tensor error.
    """
    raw = strip_schema_prefix(raw)
    if side == "request":
        try:
            req = _parse(ModelInferRequest, raw)
        except RecordError:
            req = None
        # a response parses as a request too (same fields 1-5), but its raw blobs are field 6,
        # not 7: inputs without any contents mean it was a response
        if req is not None and req.inputs and (req.raw_input_contents
                                               or any(t.HasField("contents") for t in req.inputs)):
            tensors = proto_tensors(req.inputs, req.raw_input_contents, "inputs")
            n, cols = oip.side_columns(tensors, side, fmt, limits, "inputs")
            return oip.Body(n, cols, req.model_name or None, req.model_version or None, req.id or None)
        res = _parse(ModelInferResponse, raw)
        tensors = proto_tensors(res.outputs, res.raw_output_contents, "outputs")
        n, cols = oip.side_columns(tensors, side, fmt, limits, "outputs")
        return oip.Body(n, cols, res.model_name or None, res.model_version or None, res.id or None)
    res = _parse(ModelInferResponse, raw)
    tensors = proto_tensors(res.outputs, res.raw_output_contents, "outputs")
    n, cols = oip.side_columns(tensors, side, fmt, limits, "outputs")
    return oip.Body(n, cols, res.model_name or None, res.model_version or None, res.id or None)


def _key_text(msg: Message) -> str | None:
    return msg.key.decode("utf-8", "replace") if msg.key else None


def decode_v2(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode Seldon Core v2 model (or pipeline) input and output topics.

    Returns:
        Request halves from ``.inputs`` and response halves from ``.outputs``, keyed by
        ``x-request-id``; errors-topic messages and bad values rejected.
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        if ERROR_TOPIC.match(msg.topic):
            raise RecordError(RejectReason.ERROR_RESPONSE, f"topic {msg.topic}: a Seldon inference error")
        raw = payload(msg, limits)
        hdr = headers(msg)
        infer_type = hdr.get(INFER_TYPE_HEADER, "").lower()
        topic = parse_topic(msg.topic)
        if topic is not None:
            side = "request" if topic["side"] == "inputs" else "response"
        elif infer_type.endswith("request"):
            side = "request"
        elif infer_type.endswith("response"):
            side = "response"
        else:
            raise RecordError(RejectReason.MISSING_FIELD, f"topic {msg.topic[:120]!r} is no Seldon model topic and "
                                                          "no seldon-infer-type header says request or response")
        # without the header a JSON object is told apart by its first byte: 0x7B cannot start
        # these protobuf messages (it would be field 15)
        is_json = infer_type.startswith("json") or (not infer_type and raw[:1] == b"{")
        if is_json:
            body = oip.json_body(load_object(raw), side, fmt, limits)
        else:
            body = proto_body(raw, side, fmt, limits)
        rid = hdr.get("x-request-id") or body.id or _key_text(msg)
        if not rid:
            raise RecordError(RejectReason.MISSING_FIELD, "x-request-id: no request id in the header, "
                                                          "the body or the message key")
        model = (topic["name"] if topic is not None else None) or body.model_name or fmt.model
        model = require_model(model, "the topic")
        serving = {"namespace": topic["namespace"]} if topic is not None else {}
        if topic is not None and topic["kind"] == "pipeline":
            serving["component"] = "pipeline"
        t = event_time(None, "timestamp", msg, limits)
        oip.add_half(out, side, body, model=model,
                     model_version=(body.model_version if side == "response" else None) or fmt.model_version or "",
                     event_time_ms=t, request_id=rid, serving=serving)

    out.run(messages, one)
    return out.build()


def _v1_attr(hdr: dict[str, str], name: str) -> str | None:
    return hdr.get(name) or hdr.get("ce_" + name) or None


def seldon_message_columns(obj: dict, side: str, fmt: FormatConfig, limits: Limits,
                           where: str) -> tuple[int, dict]:
    """Rows of a Seldon v1 SeldonMessage ``{"data": {"names", "ndarray" | "tensor"}}``,
    ``{"jsonData": ..}`` or ``{"strData": ..}``.

    Raises:
        RecordError: ``unsupported_content`` for ``binData`` / ``tftensor``; shape errors.
    """
    prefix, names, default, key = ((FEATURE_PREFIX, fmt.feature_names, "f", "feature_names") if side == "request"
                                   else (PREDICTION_PREFIX, fmt.prediction_names, "p", "prediction_names"))
    if "data" in obj:
        data = obj["data"]
        if not isinstance(data, dict):
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data: must be an object")
        given = data.get("names") if isinstance(data.get("names"), list) else None
        if "ndarray" in data:
            rows = data["ndarray"]
            if not isinstance(rows, list):
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data.ndarray: must be a list")
            if rows and not isinstance(rows[0], list) and given is not None and len(given) == len(rows) > 1:
                rows = [rows]  # one row given flat with its names
            return matrix_columns(rows, prefix, names, default, f"{where}.data.ndarray", key,
                                  limits.max_features, given)
        if "tensor" in data:
            tensor = data["tensor"]
            if not isinstance(tensor, dict):
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data.tensor: must be an object")
            shape = oip.check_shape(tensor.get("shape"), f"{where}.data.tensor")
            try:
                values = np.asarray(tensor.get("values"), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError, OverflowError):
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data.tensor.values: must be numbers") from None
            if values.size != oip.size_of(shape) or not shape:
                raise oip.shape_mismatch(f"{where}.data.tensor", values.size, shape)
            n = shape[0]
            return matrix_columns(values.reshape(n, -1) if n else values.reshape(0, 0), prefix, names, default,
                                  f"{where}.data.tensor", key, limits.max_features, given)
        raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}.data: neither ndarray nor tensor")
    if "jsonData" in obj:
        js = obj["jsonData"]
        if isinstance(js, list):
            return v1_rows(js, prefix, names, default, f"{where}.jsonData", key, limits)
        if isinstance(js, dict):
            return object_columns([js], prefix, f"{where}.jsonData", limits.max_features)
        return matrix_columns([js], prefix, names, default, f"{where}.jsonData", key, limits.max_features)
    if "strData" in obj:
        return matrix_columns([obj["strData"]], prefix, names, default, f"{where}.strData", key,
                              limits.max_features)
    raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}: no data, jsonData or strData "
                                                        "(binData is not monitored)")


def v1_rows(rows: list, prefix, names, default, where, key, limits):
    """Rows of a JSON list (objects or lists)."""
    if rows and all(isinstance(r, dict) for r in rows):
        return object_columns(rows, prefix, where, limits.max_features)
    return matrix_columns(rows, prefix, names, default, where, key, limits.max_features)


def v1_body_columns(obj: object, side: str, fmt: FormatConfig, limits: Limits, where: str = "body") -> oip.Body:
    """Rows of any v1 logger body: SeldonMessage, TensorFlow protocol or OIP JSON.

    Raises:
        RecordError: ``no_data`` for an empty batch, or any body error.
    """
    if isinstance(obj, dict) and not is_oip(obj) and any(k in obj for k in ("data", "jsonData", "strData", "binData")):
        n, cols = seldon_message_columns(obj, side, fmt, limits, where)
        if n == 0:
            raise RecordError(RejectReason.NO_DATA, f"{where}: batch of 0 rows")
        return oip.Body(n, cols, None, None, None)
    return v1_or_oip_body(obj, side, fmt, limits, where)


def truth_labels(obj: dict) -> list[object]:
    """The ground-truth values of a feedback body's ``truth`` SeldonMessage, one per row.

    Raises:
        RecordError: ``no_data`` when there is no truth, ``wrong_type`` for a row that is not
            one scalar.
    """
    truth = obj.get("truth")
    if not isinstance(truth, dict):
        raise RecordError(RejectReason.NO_DATA, "truth: the feedback carries no ground truth")
    data = truth.get("data") if isinstance(truth.get("data"), dict) else None
    if data is not None and "ndarray" in data:
        rows = data["ndarray"]
    elif data is not None and isinstance(data.get("tensor"), dict):
        rows = data["tensor"].get("values")
    elif "jsonData" in truth:
        rows = truth["jsonData"]
    elif "strData" in truth:
        rows = [truth["strData"]]
    else:
        raise RecordError(RejectReason.NO_DATA, "truth: no data in the truth message")
    if not isinstance(rows, list):
        rows = [rows]
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, list):
            if len(r) != 1:
                raise RecordError(RejectReason.WRONG_TYPE, f"truth[{i}]: one label per row, got {len(r)} values")
            r = r[0]
        if isinstance(r, (dict, list)):
            raise RecordError(RejectReason.WRONG_TYPE, f"truth[{i}]: a label must be a scalar")
        out.append(r)
    if not out:
        raise RecordError(RejectReason.NO_DATA, "truth: no rows")
    return out


def decode_v1(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode the Seldon Core v1 request logger's Kafka messages.

    Returns:
        Request halves, response halves (keyed by ``requestid``) and label rows from feedback.
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        raw = payload(msg, limits)
        hdr = headers(msg)
        kind = _v1_attr(hdr, "type")
        ctype = hdr.get("content-type", "application/json").lower()
        if "json" not in ctype:
            raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"content-type: {ctype[:80]!r} is not JSON")
        obj = load_json(raw, "body")
        rid = _v1_attr(hdr, "requestid")
        t = event_time(_v1_attr(hdr, "time"), "time", msg, limits)
        model = fmt.model or _v1_attr(hdr, "inferenceservicename") or _v1_attr(hdr, "modelid")
        if kind in V1_FEEDBACK:
            if not isinstance(obj, dict):
                raise RecordError(RejectReason.NOT_AN_OBJECT, "body: feedback must be an object")
            labels = truth_labels(obj)
            response = obj.get("response")
            meta = response.get("meta") if isinstance(response, dict) else None
            puid = meta.get("puid") if isinstance(meta, dict) else None
            rid = puid if isinstance(puid, str) and puid else rid
            if not rid:
                raise RecordError(RejectReason.MISSING_FIELD, "requestid: the feedback names no request")
            out.add("labels", len(labels), model=model, event_time_ms=t,
                    request_ids=row_request_ids(rid, len(labels)), label=labels)
            return
        if kind == V1_REQUEST:
            side = "request"
        elif kind == V1_RESPONSE:
            side = "response"
        else:
            raise RecordError(RejectReason.UNSUPPORTED_CONTENT if kind else RejectReason.MISSING_FIELD,
                              f"type: {str(kind)[:80]!r} is not a Seldon inference request, response or feedback")
        if not rid:
            raise RecordError(RejectReason.MISSING_FIELD, "requestid: header missing")
        body = v1_body_columns(obj, side, fmt, limits)
        model = require_model(model, "the headers (inferenceservicename, modelid)")
        serving = {k: v for k, v in (("endpoint", _v1_attr(hdr, "endpoint")),
                                     ("namespace", _v1_attr(hdr, "namespace")),
                                     ("component", _v1_attr(hdr, "modelid"))) if v}
        oip.add_half(out, side, body, model=model, model_version=body.model_version or fmt.model_version or "",
                     event_time_ms=t, request_id=rid, serving=serving)

    out.run(messages, one)
    return out.build()


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode Seldon messages, v1 (a ``type`` header ``io.seldon...``) or v2 (anything else)."""
    v1, v2 = [], []
    for m in messages:
        t = _v1_attr(headers(m), "type") or ""
        (v1 if t.startswith("io.seldon.") else v2).append(m)
    if not v1:
        return decode_v2(v2, fmt, limits)
    if not v2:
        return decode_v1(v1, fmt, limits)
    return merge_decoded([decode_v1(v1, fmt, limits), decode_v2(v2, fmt, limits)],
                         {id(m): i for i, m in enumerate(messages)})
