"""Serving-fleet formats, part 2: Seldon Core v2 model topics (protobuf and JSON) and the Seldon
Core v1 Kafka logger."""

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd

from collector.decode import RejectReason
from collector.formats import FormatConfig, Limits, decode_messages
from collector.formats.files import iter_file
from collector.formats.open_inference_pb2 import ModelInferRequest, ModelInferResponse
from collector.formats.seldon import decode, decode_v1, decode_v2, parse_topic, strip_schema_prefix
from collector.message import Message

DATA = Path(__file__).parent / "data" / "formats"
LIMITS = Limits()
T0 = 1714564800000
IN, OUT = "seldon.prod.model.iris.inputs", "seldon.prod.model.iris.outputs"


def msg(value, topic=IN, headers=(("x-request-id", "r-1"),), ts=T0, key=None, offset=0):
    if isinstance(value, (dict, list)):
        value = json.dumps(value).encode()
    return Message(topic=topic, partition=0, offset=offset, value=value, key=key,
                   headers=tuple((k, v.encode() if isinstance(v, str) else v) for k, v in headers), timestamp_ms=ts)


def reasons(decoded):
    return [r.reason for r in decoded.rejected]


def texts(series):
    return [None if pd.isna(v) else v for v in series.tolist()]


def f32(*values):
    return [float(np.float32(v)) for v in values]


def test_topic_names():
    assert parse_topic("seldon.prod.model.iris.inputs") == \
        {"prefix": "seldon", "namespace": "prod", "kind": "model", "name": "iris", "side": "inputs"}
    assert parse_topic("acme.seldon.ns.pipeline.fraud-chain.outputs")["name"] == "fraud-chain"
    assert parse_topic("acme.seldon.ns.pipeline.fraud-chain.outputs")["prefix"] == "acme.seldon"
    assert parse_topic("seldon.prod.model.iris") is None
    assert parse_topic("predictions") is None


def test_protobuf_written_by_tritons_classes_with_raw_and_typed_contents():
    inputs, outputs = iter_file(DATA / "seldon_v2.dump.jsonl")
    out = decode_v2([inputs, outputs], FormatConfig(), LIMITS)
    assert out.rejected == []
    q, r = out.requests, out.responses
    # the x-request-id header is the join key, not the body id or the message key
    assert list(q["request_id"]) == ["req-7#0", "req-7#1", "req-7#2"] == list(r["request_id"])
    assert list(q["model"]) == ["iris"] * 3 == list(r["model"])
    assert list(q["event_time_ms"]) == [1714564800100] * 3 and list(r["event_time_ms"]) == [1714564800150] * 3
    assert list(q["features.predict[0]"]) == f32(5.1, 6.2, 7.7)
    assert list(q["features.predict[3]"]) == f32(0.2, 1.3, 2.3)
    assert list(q["features.segment"]) == ["gold", "silver", "bronzeé"]
    assert list(q["features.score_fp16"]) == [0.5, -1.25, 2.0]
    assert list(q["features.age"]) == [41.0, 7.0, 255.0]
    assert list(q["serving.namespace"]) == ["prod"] * 3
    assert list(q["model_version"]) == [""] * 3 and list(r["model_version"]) == ["1"] * 3
    assert list(r["predictions.predict"]) == [0.0, 1.0, 2.0]
    assert list(r["predictions.proba[0]"]) == [0.9, 0.1, 0.0]
    assert list(r["predictions.proba[2]"]) == [0.05, 0.1, 0.8]
    assert list(r["predictions.flagged"]) == ["false", "true", "false"]
    # the gateway copied the input's "proto/InferModelRequest" header onto the output: the topic decides
    assert dict(outputs.headers)["seldon-infer-type"] == b"proto/InferModelRequest"


def test_json_values_when_seldon_infer_type_says_so():
    req = {"inputs": [{"name": "income", "shape": [2, 3], "datatype": "FP64", "data": [[1, 2, 3], [4, 5, 6]]}]}
    res = {"model_name": "income_1", "model_version": "1", "id": "9c3e",
           "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1]}]}
    h = (("x-request-id", "cq8v"), ("seldon-infer-type", "json/inferModelRequest"))
    out = decode_v2([msg(req, "seldon.ns.model.income.inputs", h),
                     msg(res, "seldon.ns.model.income.outputs", h)],
                    FormatConfig(inputs={"income": ["age", "hours", "gain"]}), LIMITS)
    assert out.rejected == []
    assert list(out.requests["features.hours"]) == [2.0, 5.0]
    assert list(out.requests["request_id"]) == ["cq8v#0", "cq8v#1"] == list(out.responses["request_id"])
    assert list(out.responses["model"]) == ["income"] * 2  # from the topic, as on the request side
    assert list(out.responses["predictions.predict"]) == [0.0, 1.0]


def test_every_typed_contents_field_and_bf16_raw():
    req = ModelInferRequest(model_name="m", id="b-1")
    for name, dtype, field, values in [
            ("i8", "INT8", "int_contents", [-3, 4]), ("i16", "INT16", "int_contents", [300, -300]),
            ("i64", "INT64", "int64_contents", [2**40, -1]), ("u16", "UINT16", "uint_contents", [65535, 0]),
            ("u64", "UINT64", "uint64_contents", [2**63, 5]), ("f32", "FP32", "fp32_contents", [0.5, 1.5]),
            ("b", "BOOL", "bool_contents", [True, False]), ("s", "BYTES", "bytes_contents", [b"x", b"yz"])]:
        t = req.inputs.add(name=name, datatype=dtype, shape=[2])
        getattr(t.contents, field).extend(values)
    out = decode_v2([msg(req.SerializeToString())], FormatConfig(), LIMITS)
    assert out.rejected == []
    q = out.requests
    assert list(q["features.i8"]) == [-3.0, 4.0] and list(q["features.i16"]) == [300.0, -300.0]
    assert list(q["features.i64"]) == [2.0**40, -1.0] and list(q["features.u16"]) == [65535.0, 0.0]
    assert list(q["features.u64"]) == [2.0**63, 5.0] and list(q["features.f32"]) == [0.5, 1.5]
    assert list(q["features.b"]) == ["true", "false"] and list(q["features.s"]) == ["x", "yz"]
    # BF16 only as raw bytes: the upper 16 bits of a float32
    res = ModelInferResponse(model_name="m")
    res.outputs.add(name="p", datatype="BF16", shape=[3])
    bits = np.array([1.0, -2.5, 0.15625], dtype="<f4").view("<u4") >> 16
    res.raw_output_contents.append(bits.astype("<u2").tobytes())
    out = decode_v2([msg(res.SerializeToString(), OUT)], FormatConfig(), LIMITS)
    assert list(out.responses["predictions.p"]) == [1.0, -2.5, 0.15625]


def test_schema_registry_framing_and_chained_response_on_inputs():
    req = ModelInferRequest()
    req.inputs.add(name="x", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0, 2.0])
    framed = b"\x00" + struct.pack(">I", 42) + b"\x00" + req.SerializeToString()
    assert strip_schema_prefix(framed) == req.SerializeToString()
    # message indexes [1, 0]: count 2, then 1 and 0, all zigzag varints
    assert strip_schema_prefix(b"\x00\x00\x00\x00\x07" + bytes([4, 2, 0]) + b"rest") == b"rest"
    # a pipeline step: the previous model's response arrives on this model's inputs topic
    prev = ModelInferResponse(model_name="scaler")
    prev.outputs.add(name="scaled", datatype="FP64", shape=[2]).contents.fp64_contents.extend([0.25, 0.75])
    raw = ModelInferResponse(model_name="scaler")
    raw.outputs.add(name="scaled", datatype="FP64", shape=[2])
    raw.raw_output_contents.append(np.array([1.5, 2.5], dtype="<f8").tobytes())
    out = decode_v2([msg(framed), msg(prev.SerializeToString(), headers=(("x-request-id", "r-2"),)),
                     msg(raw.SerializeToString(), headers=(("x-request-id", "r-3"),))], FormatConfig(), LIMITS)
    assert out.rejected == []
    assert list(out.requests["request_id"]) == ["r-1", "r-2#0", "r-2#1", "r-3#0", "r-3#1"]
    # raw bytes that happen to parse as a requested-output entry: still read as the response
    tricky = ModelInferResponse()
    tricky.outputs.add(name="code", datatype="UINT8", shape=[3])
    tricky.raw_output_contents.append(bytes([0x0A, 0x01, 0x78]))
    assert ModelInferRequest.FromString(tricky.SerializeToString()).outputs[0].name == "x"
    q = decode_v2([msg(tricky.SerializeToString())], FormatConfig(), LIMITS).requests
    assert list(q["features.code"]) == [10.0, 1.0, 120.0]
    assert list(out.requests["features.x[1]"].iloc[:1]) == [2.0]
    assert list(out.requests["features.scaled"].iloc[1:]) == [0.25, 0.75, 1.5, 2.5]


def test_seldon_v2_bad_messages():
    req = ModelInferRequest()
    req.inputs.add(name="a", datatype="FP32", shape=[1])
    req.inputs.add(name="b", datatype="FP32", shape=[1])
    req.raw_input_contents.append(b"\x00\x00\x80?")  # one blob for two tensors
    fp16 = ModelInferRequest()
    fp16.inputs.add(name="h", datatype="FP16", shape=[1])
    short = ModelInferResponse()
    short.outputs.add(name="p", datatype="FP64", shape=[2]).contents.fp64_contents.append(1.0)
    cases = [
        (msg(req.SerializeToString()), RejectReason.SHAPE_MISMATCH, "1 raw blobs for 2 tensors"),
        (msg(fp16.SerializeToString()), RejectReason.UNSUPPORTED_CONTENT, "only as raw contents"),
        (msg(short.SerializeToString(), OUT), RejectReason.SHAPE_MISMATCH, "do not fill shape [2]"),
        (msg(b"\x08\x96\x01\xff\xff", OUT), RejectReason.INVALID_PROTOBUF, "ModelInferResponse"),
        (msg(b"Model iris not found", "seldon.prod.errors.errors"), RejectReason.ERROR_RESPONSE, "errors"),
        (msg(req.SerializeToString(), headers=()), RejectReason.SHAPE_MISMATCH, "raw blobs"),
        (msg(b"\x0a\x01m", topic="other"), RejectReason.MISSING_FIELD, "seldon-infer-type"),
        (msg(b"{]", headers=(("x-request-id", "r"), ("seldon-infer-type", "json/inferModelRequest"))),
         RejectReason.INVALID_JSON, "invalid JSON"),
        (msg(b"\x00\x00\x00"), RejectReason.INVALID_PROTOBUF, "schema-registry"),
    ]
    out = decode_v2([m for m, _, _ in cases], FormatConfig(), LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail, rejected.detail
    # no request id anywhere
    ok = ModelInferRequest()
    ok.inputs.add(name="a", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    out = decode_v2([msg(ok.SerializeToString(), headers=())], FormatConfig(), LIMITS)
    assert reasons(out) == [RejectReason.MISSING_FIELD] and "x-request-id" in out.rejected[0].detail
    ok.id = "body-id"
    out = decode_v2([msg(ok.SerializeToString(), headers=())], FormatConfig(), LIMITS)
    assert list(out.requests["request_id"]) == ["body-id"]


def test_seldon_v1_logger_requests_responses_and_feedback():
    messages = list(iter_file(DATA / "seldon_v1.dump.jsonl"))
    out = decode_messages(messages, FormatConfig(), LIMITS)
    assert out.rejected == []
    rid = "9f1c3e1a-2b3c-4d5e-8f90-123456789abc"
    q, r, lab = out.requests, out.responses, out.labels
    assert list(q["request_id"]) == [f"{rid}#0", f"{rid}#1"] == list(r["request_id"])
    assert list(q["model"]) == ["seldon-model"] * 2
    assert list(q["features.f0"]) == [1.0, 3.0] and list(q["features.f1"]) == [2.0, 4.0]
    assert list(r["predictions.t:1"]) == [0.2, 0.7]
    assert list(q["serving.component"]) == ["classifier"] * 2 and list(q["serving.endpoint"]) == ["default"] * 2
    assert list(q["event_time_ms"]) == [T0 + 2000] * 2
    assert list(lab["request_id"]) == [f"{rid}#0", f"{rid}#1"]
    assert list(lab["label"]) == ["0", "1"]
    assert list(lab["event_time_ms"]) == [T0 + 100000] * 2
    assert list(lab["model"]) == ["seldon-model"] * 2


def v1(body, typ="io.seldon.serving.inference.request", ct="application/json", rid="p-1"):
    h = [("type", typ), ("content-type", ct), ("modelid", "clf"), ("inferenceservicename", "dep")]
    if rid:
        h.append(("requestid", rid))
    return msg(body, topic="seldon-logs", headers=h)


def test_seldon_v1_body_shapes():
    tensor = {"data": {"names": ["a", "b"], "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    tf = {"instances": [{"a": 1, "b": "x"}]}
    oip = {"inputs": [{"name": "a", "shape": [1], "datatype": "INT32", "data": [7]}]}
    strdata = {"strData": "the quick brown fox"}
    out = decode_v1([v1(tensor), v1(tf, rid="p-2"), v1(oip, rid="p-3"), v1(strdata, rid="p-4")],
                    FormatConfig(), LIMITS)
    assert out.rejected == []
    q = out.requests
    assert list(q["request_id"]) == ["p-1#0", "p-1#1", "p-2", "p-3", "p-4"]
    assert list(q["features.b"].iloc[:2]) == ["2", "4"]  # numbers and text in one column become labels
    assert q["features.a"].tolist()[:4] == [1.0, 3.0, 1.0, 7.0] and np.isnan(q["features.a"].iloc[4])
    assert texts(q["features.f0"])[4] == "the quick brown fox"
    # feedback keyed by its response's puid; reward-only feedback carries no label
    fb = {"response": {"meta": {"puid": "orig-9"}}, "reward": 1, "truth": {"data": {"ndarray": ["cat"]}}}
    out = decode_v1([v1(fb, "io.seldon.serving.feedback", rid="fb-call"),
                     v1({"reward": 0.0}, "io.seldon.serving.feedback")], FormatConfig(), LIMITS)
    assert list(out.labels["request_id"]) == ["orig-9"] and list(out.labels["label"]) == ["cat"]
    assert reasons(out) == [RejectReason.NO_DATA]


def test_seldon_v1_bad_messages():
    cases = [
        (v1({"data": {"ndarray": [[1]]}}, ct="application/x-protobuf"), RejectReason.UNSUPPORTED_CONTENT, "content-type"),
        (v1({"binData": "AAEC"}), RejectReason.UNSUPPORTED_CONTENT, "binData"),
        (v1({"data": {"ndarray": [[1]]}}, typ="io.seldon.serving.inference.outlier"),
         RejectReason.UNSUPPORTED_CONTENT, "type"),
        (v1({"data": {"ndarray": [[1]]}}, rid=None), RejectReason.MISSING_FIELD, "requestid"),
        (v1({"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}}), RejectReason.SHAPE_MISMATCH, "shape"),
        (v1({"truth": {"data": {"ndarray": [[1, 2]]}}}, typ="io.seldon.serving.feedback"),
         RejectReason.WRONG_TYPE, "one label per row"),
    ]
    out = decode_v1([m for m, _, _ in cases], FormatConfig(), LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail, rejected.detail


def test_seldon_decode_routes_v1_and_v2():
    v2_in = next(iter_file(DATA / "seldon_v2.dump.jsonl"))
    v1_req = next(iter_file(DATA / "seldon_v1.dump.jsonl"))
    out = decode([v1_req, v2_in, msg(b"\xff", OUT, offset=9)], FormatConfig(), LIMITS)
    assert len(out.requests) == 5 and sorted(set(out.requests["model"])) == ["iris", "seldon-model"]
    assert [r.message.offset for r in out.rejected] == [9]
