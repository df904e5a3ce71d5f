"""KServe inference logger CloudEvents over Kafka, into request and response halves.

The KServe agent logs each request and (when the model answered HTTP 200) its response as
CloudEvents of type ``org.kubeflow.serving.inference.request`` / ``.response`` sharing one
``id`` — the join key of the two halves. A Knative KafkaSink writes them to Kafka

- in binary mode: the value is the HTTP body; every attribute is a header ``ce_<name>``
  (``ce_id``, ``ce_type``, ``ce_time``, ``ce_inferenceservicename``, ``ce_namespace``,
  ``ce_component``, ``ce_endpoint``, ``ce_metadata``) and ``content-type`` the body's type;
- in structured mode (``content-type: application/cloudevents+json``): the value is the JSON
  envelope with the attributes as keys and the body in ``data`` (or ``data_base64``).

Bodies are V1 (``{"instances": ..}`` -> ``{"predictions": ..}``, see
:mod:`collector.formats.tabular`) or Open Inference Protocol (:mod:`collector.formats.oip`).
Model = the ``inferenceservicename`` attribute, else config ``model``, else (a response) the
body's ``model_name``: both halves of a call get the same model, which the request-response
join keys on together with the id; event time = ``time``,
else the message timestamp. Model version = the body's (an OIP response's ``model_version``),
else config ``model_version``, else ``""``: a request half names none (V1 bodies have no
version, OIP puts it in the URL, and no CloudEvent attribute carries it), so the
request-response join gives a request that is never answered the version its model's
responses use (:class:`collector.join.RequestResponseJoin`). Serving metadata: ``serving.endpoint`` (default/canary),
``serving.component`` (predictor/transformer/explainer), ``serving.namespace`` and
``serving.x_request_id`` (from the ``metadata`` attribute, a JSON map of logged HTTP headers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from collector.decode import RecordError, RejectReason
from collector.formats import oip
from collector.formats.columns import DecodedBuilder
from collector.formats.common import b64decode, event_time, headers, load_json, load_object, payload, require_model
from collector.formats.config import FormatConfig, Limits
from collector.formats.tabular import body_columns
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, Decoded

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
STRUCTURED_CONTENT_TYPE = "application/cloudevents"


def is_structured(hdr: dict[str, str]) -> bool:
    """Whether the message is a structured-mode CloudEvent (by its content type)."""
    return hdr.get("content-type", "").strip().lower().startswith(STRUCTURED_CONTENT_TYPE)


def attributes(msg: Message, hdr: dict[str, str], raw: bytes) -> tuple[dict[str, object], object, str]:
    """The CloudEvent's attributes, its body and the body's content type.

    Returns:
        ``(attributes, body, content_type)``; ``body`` is bytes (binary mode, ``data_base64``)
        or an already-parsed JSON value (structured mode with JSON ``data``).

    Raises:
        RecordError: a structured envelope that is not a JSON object or has no data.
    """
    if is_structured(hdr):
        env = load_object(raw, "value")
        attrs = {k: v for k, v in env.items() if k not in ("data", "data_base64")}
        ctype = str(env.get("datacontenttype") or "application/json")
        if "data_base64" in env:
            return attrs, b64decode(env["data_base64"], "data_base64"), ctype
        if "data" not in env:
            raise RecordError(RejectReason.MISSING_FIELD, "data: the CloudEvent has no data")
        data = env["data"]
        if isinstance(data, str) and "json" in ctype.lower():
            data = load_json(data, "data")  # JSON body sent as a string
        return attrs, data, ctype
    attrs = {k[3:]: v for k, v in hdr.items() if k.startswith("ce_")}
    return attrs, raw, hdr.get("content-type", "application/json")


def _text(attrs: dict, name: str) -> str | None:
    v = attrs.get(name)
    return v if isinstance(v, str) and v else None


def metadata_request_id(value: object) -> str | None:
    """``x-request-id`` from the ``metadata`` attribute (JSON map of header name -> values)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        meta = json.loads(value)
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    for k, v in meta.items():
        if isinstance(k, str) and k.lower() == "x-request-id":
            if isinstance(v, list):
                v = v[0] if v else None
            return v if isinstance(v, str) and v else None
    return None


def is_oip(body: object) -> bool:
    """Whether a parsed body is Open Inference Protocol (tensors with a datatype) rather than V1."""
    if not isinstance(body, dict):
        return False
    for key in ("inputs", "outputs"):
        tensors = body.get(key)
        if isinstance(tensors, list) and tensors and isinstance(tensors[0], dict) and "datatype" in tensors[0]:
            return True
    return False


def decode_body(body: object, side: str, fmt: FormatConfig, limits: Limits, where: str = "body") -> oip.Body:
    """Rows of a V1 or OIP body (parsed JSON).

    Raises:
        RecordError: as the V1 or OIP readers; ``no_data`` for an empty batch.
    """
    if is_oip(body) or (isinstance(body, dict) and "error" in body):
        return oip.json_body(body, side, fmt, limits, where)
    if side == "request":
        n, cols = body_columns(body, side, FEATURE_PREFIX, fmt.feature_names, "f", where, "feature_names",
                               limits.max_features, strict=True)
    else:
        n, cols = body_columns(body, side, PREDICTION_PREFIX, fmt.prediction_names, "p", where,
                               "prediction_names", limits.max_features, strict=True)
    if n == 0:
        raise RecordError(RejectReason.NO_DATA, f"{where}: batch of 0 rows")
    return oip.Body(n, cols, None, None, None)


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode KServe inference-logger CloudEvents (binary or structured mode).

    Returns:
        Request halves and response halves keyed by the CloudEvent ``id`` (per row
        ``id#i`` for a batch); rejected messages (unknown event type, no id, bad body...).
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        raw = payload(msg, limits)
        hdr = headers(msg)
        attrs, body, ctype = attributes(msg, hdr, raw)
        ce_type = _text(attrs, "type")
        if ce_type == REQUEST_TYPE:
            side = "request"
        elif ce_type == RESPONSE_TYPE:
            side = "response"
        else:
            raise RecordError(RejectReason.UNSUPPORTED_CONTENT if ce_type else RejectReason.MISSING_FIELD,
                              f"type: {str(ce_type)[:80]!r} is not a KServe inference request or response")
        rid = _text(attrs, "id")
        if rid is None:
            raise RecordError(RejectReason.MISSING_FIELD, "id: the CloudEvent has no id")
        if isinstance(body, bytes):
            if "json" not in ctype.lower():
                raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"content-type: {ctype[:80]!r} is not JSON")
            body = load_json(body, "body")
        rows = decode_body(body, side, fmt, limits)
        # the config's model before the body's: a request body never names its model, and
        # both halves of a call must name the same one to join
        model = require_model(_text(attrs, "inferenceservicename") or fmt.model or rows.model_name,
                              "the CloudEvent (inferenceservicename)")
        t = event_time(attrs.get("time"), "time", msg, limits)
        serving = {k: _text(attrs, k) for k in ("endpoint", "component", "namespace")}
        serving["x_request_id"] = metadata_request_id(attrs.get("metadata"))
        oip.add_half(out, side, rows, model=model, model_version=rows.model_version or fmt.model_version or "",
                     event_time_ms=t, request_id=rid, serving={k: v for k, v in serving.items() if v is not None})

    out.run(messages, one)
    return out.build()
