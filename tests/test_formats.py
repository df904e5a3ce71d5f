"""Serving-fleet formats, part 1: format config, detection, file replay, KServe CloudEvents and
Open Inference Protocol bodies. Payloads are shaped as the real systems emit them
(tests/data/formats/README.md says where each shape comes from)."""

import base64
import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from collector.decode import RejectReason
from collector.formats import DECODERS, FormatConfig, Limits, decode_messages, detect_format
from collector.formats.files import expand_paths, iter_file, iter_messages
from collector.message import Message

DATA = Path(__file__).parent / "data" / "formats"
LIMITS = Limits()
T0 = 1714564800000  # 2024-05-01T12:00:00Z


def msg(value, headers=(), topic="t", ts=T0, key=None, offset=0):
    """A message as kafka-python hands it over: header values are bytes."""
    if isinstance(value, (dict, list)):
        value = json.dumps(value).encode()
    elif isinstance(value, str):
        value = value.encode()
    return Message(topic=topic, partition=0, offset=offset, value=value, key=key,
                   headers=tuple((k, v.encode() if isinstance(v, str) else v) for k, v in headers), timestamp_ms=ts)


def dump(name):
    return list(iter_file(DATA / name))


def texts(series):
    """A text column's values, missing ones as None."""
    return [None if pd.isna(v) else v for v in series.tolist()]


def reasons(decoded):
    return [r.reason for r in decoded.rejected]


# --- configuration ---------------------------------------------------------------------------

def test_config_rejects_unknown_keys_and_names_the_key():
    with pytest.raises(ValidationError, match="feature_nmes"):
        FormatConfig(format="kserve", feature_nmes=["a"])
    with pytest.raises(ValidationError, match="format"):
        FormatConfig(format="triton")
    with pytest.raises(ValidationError, match="mapping: format mapped_json needs a field mapping"):
        FormatConfig(format="mapped_json")
    with pytest.raises(ValidationError, match="mapping: only used by format mapped_json"):
        FormatConfig(format="kserve", mapping={"features": ["a"]})
    with pytest.raises(ValidationError, match="feature_names: duplicate name 'a'"):
        FormatConfig(feature_names=["a", "b", "a"])
    with pytest.raises(ValidationError, match="inputs.x: give at least one column name"):
        FormatConfig(inputs={"x": []})
    with pytest.raises(ValidationError, match="timezone: 'Mars/Olympus' is not an IANA"):
        FormatConfig(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match=r"mapping.features: 'a\.\*\.b'"):
        FormatConfig(format="mapped_json", mapping={"features": ["a.*.b"]})
    with pytest.raises(ValidationError, match="mapping.timestamp: 'ts.\\*' is not a dotted key path"):
        FormatConfig(format="mapped_json", mapping={"features": ["a"], "timestamp": "ts.*"})
    with pytest.raises(ValidationError, match="extra"):
        FormatConfig(format="mapped_json", mapping={"features": ["a"], "labels": "y"})
    with pytest.raises(ValueError, match="max_features"):
        Limits(max_features=0)


def test_config_accepts_the_documented_example():
    fmt = FormatConfig.model_validate({
        "format": "mapped_json", "model": "churn",
        "mapping": {"model": "svc.model", "timestamp": "ts", "timestamp_unit": "s", "request_id": "trace_id",
                    "features": ["input.*", "feat_*", "country"], "predictions": ["score"], "label": "outcome"}})
    assert fmt.mapping.features == ["input.*", "feat_*", "country"]
    assert FormatConfig().format == "auto"
    assert set(DECODERS) | {"auto"} == set(FormatConfig.model_fields["format"].annotation.__args__)


# --- detection -------------------------------------------------------------------------------

def test_detect_format_from_headers_topic_and_body():
    kserve = dump("kserve.dump.jsonl")
    assert [detect_format(m) for m in kserve] == ["kserve"] * 4  # binary, then structured
    assert [detect_format(m) for m in dump("seldon_v2.dump.jsonl")] == ["seldon_v2"] * 2
    assert [detect_format(m) for m in dump("seldon_v1.dump.jsonl")] == ["seldon_v1"] * 3
    capture = next(iter_messages([DATA / "sagemaker" / "datacapture"]))
    assert detect_format(capture) == "sagemaker"
    assert detect_format(next(iter_messages([DATA / "sagemaker" / "groundtruth"]))) == "sagemaker"
    assert [detect_format(m) for m in iter_messages([DATA / "bentoml"])] == ["bentoml"] * 3
    assert detect_format(msg({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})) == "oip"
    assert detect_format(msg({"error": "model not ready"})) == "oip"
    record = {"model": "m", "model_version": "1", "timestamp": T0, "request_id": "r", "features": {}, "predictions": {}}
    assert detect_format(msg(record)) == "inferwatch"
    # a Seldon v2 topic alone says seldon_v2 (protobuf bodies carry no recognisable keys)
    assert detect_format(msg(b"\x0a\x01x", topic="seldon.ns.model.iris.inputs")) == "seldon_v2"
    # Seldon v1 CloudEvents (ce_ headers with an io.seldon type) are not KServe
    assert detect_format(msg("{}", headers=[("ce_type", "io.seldon.serving.inference.request")])) == "seldon_v1"
    assert detect_format(msg({"a": 1})) == "unknown"
    assert detect_format(msg(None)) == "unknown"


def test_auto_decodes_a_mixed_batch_and_keeps_rejections_in_input_order():
    record = {"model": "m", "model_version": "1", "timestamp": T0, "request_id": "r", "features": {"x": 1},
              "predictions": {"y": 0.5}}
    batch = [msg(record, offset=0), msg({"a": 1}, offset=1), *dump("kserve.dump.jsonl")[:2],
             msg(b"{", offset=4), *list(iter_messages([DATA / "sagemaker" / "datacapture"]))[:1]]
    out = decode_messages(batch, FormatConfig(), LIMITS)
    assert [r.message.offset for r in out.rejected] == [1, 4]
    # no rule matches them: inferwatch's record decoder names what is wrong
    assert reasons(out) == [RejectReason.MISSING_FIELD, RejectReason.INVALID_JSON]
    assert list(out.records["model"]) == ["m", "xgb-churn"]
    assert list(out.records["request_id"]) == ["r", "inf-1"]
    assert list(out.records["event_time_ms"]) == [T0, T0 + 349000]
    assert out.records["features.x"].tolist()[0] == 1.0 and np.isnan(out.records["features.x"].tolist()[1])
    assert len(out.requests) == 3 and len(out.responses) == 3
    # a configured mapping takes the messages no rule recognises
    fmt = FormatConfig(model="flat", mapping={"features": ["a"]})
    out = decode_messages([msg({"a": 1}, offset=1)], fmt, LIMITS)
    assert out.rejected == [] and list(out.records["features.a"]) == [1.0]


# --- file replay -----------------------------------------------------------------------------

def test_json_lines_files_plain_and_gzip(tmp_path):
    lines = [b'{"a": 1}', b"", b'{"a": 2}\r', b'{"a": 3}']
    plain = tmp_path / "logs.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    packed = tmp_path / "more.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(lines)))
    os.utime(plain, (1714564800.5, 1714564800.5))
    got = list(iter_file(plain))
    assert [(m.offset, m.value) for m in got] == [(1, b'{"a": 1}'), (3, b'{"a": 2}'), (4, b'{"a": 3}')]
    assert {m.topic for m in got} == {str(plain)} and {m.partition for m in got} == {0}
    assert {m.timestamp_ms for m in got} == {1714564800500}
    assert [m.value for m in iter_file(packed)] == [b'{"a": 1}', b'{"a": 2}', b'{"a": 3}']
    # a directory: recursively, in name order; files without a JSON-lines name are left out
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.log").write_text('{"b": 1}\n')
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / ".hidden.jsonl").write_text('{"c": 1}\n')
    assert [p.name for p in expand_paths([tmp_path])] == ["logs.jsonl", "more.jsonl.gz", "x.log"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        expand_paths([tmp_path / "nowhere"])


def test_bentoml_schema_directory_is_read_before_data():
    names = [str(p.relative_to(DATA)) for p in expand_paths([DATA / "bentoml"])]
    assert names == ["bentoml/iris_clf/schema/schema.0.log", "bentoml/iris_clf/data/data.0.log"]


def test_kafka_dump_lines_keep_topic_offsets_headers_and_binary_values():
    inputs, outputs = dump("seldon_v2.dump.jsonl")
    assert (inputs.topic, inputs.partition, inputs.offset, inputs.timestamp_ms) == \
        ("seldon.prod.model.iris.inputs", 0, 10, 1714564800100)
    assert inputs.key == b"req-7-key"
    assert inputs.headers[0] == ("x-request-id", b"req-7")
    assert inputs.value[:2] == b"\x1a\x09"  # protobuf: field 3 (id), 9 bytes
    assert outputs.offset == 11


def test_over_long_lines_are_cut_and_rejected_not_held(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"a": "' + b"x" * 5000 + b'"}\n{"a": 1}\n')
    got = list(iter_file(path, max_line_bytes=100))
    assert [len(m.value) for m in got] == [101, 8]
    fmt = FormatConfig(format="mapped_json", model="m", mapping={"features": ["a"]})
    out = decode_messages(got, fmt, Limits(max_message_bytes=100))
    assert reasons(out) == [RejectReason.OVERSIZE] and list(out.records["features.a"]) == [1.0]


def test_malformed_dump_line_reaches_the_decoder_and_is_rejected(tmp_path):
    path = tmp_path / "dump.jsonl"
    good = {"topic": "t", "partition": 0, "offset": 5, "timestamp": T0, "headers": [], "value": '{"a": 1}'}
    bad = {**good, "offset": "six"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    got = list(iter_file(path))
    assert got[0].offset == 5 and got[0].value == b'{"a": 1}'
    assert got[1].topic == str(path) and got[1].offset == 2
    assert reasons(decode_messages(got[1:], FormatConfig(), LIMITS)) == [RejectReason.MISSING_FIELD]


# --- KServe CloudEvents ----------------------------------------------------------------------

def test_kserve_binary_mode_v1_instances_and_predictions():
    req, res = dump("kserve.dump.jsonl")[:2]
    out = decode_messages([req, res], FormatConfig(format="kserve", feature_names=["sl", "sw", "pl", "pw"]), LIMITS)
    assert out.rejected == [] and len(out.records) == 0
    q, r = out.requests, out.responses
    rid = "5b6c2d1e-8f0a-4c2b-9e1d-0a1b2c3d4e5f"
    assert list(q["request_id"]) == [f"{rid}#0", f"{rid}#1", f"{rid}#2"] == list(r["request_id"])
    assert list(q["model"]) == ["sklearn-iris"] * 3 and list(q["model_version"]) == [""] * 3
    assert list(q["features.sl"]) == [6.8, 6.0, 5.1] and list(q["features.pw"]) == [1.4, 1.6, 0.2]
    # ce_time has nanoseconds: rounded to milliseconds
    assert list(q["event_time_ms"]) == [T0 + 123] * 3 and list(r["event_time_ms"]) == [T0 + 162] * 3
    assert list(q["serving.endpoint"]) == ["default"] * 3
    assert list(q["serving.component"]) == ["predictor"] * 3
    assert list(q["serving.namespace"]) == ["kserve-test"] * 3
    assert list(q["serving.x_request_id"]) == ["client-42"] * 3
    assert list(q["serving.batch_size"]) == [3.0] * 3
    assert list(r["predictions.p0"]) == [1.0, 1.0, 0.0]
    assert r["latency_ms"].isna().all()


def test_kserve_structured_mode_with_open_inference_protocol_bodies():
    req, res = dump("kserve.dump.jsonl")[2:]
    out = decode_messages([req, res], FormatConfig(format="kserve"), LIMITS)
    assert out.rejected == []
    q, r = out.requests, out.responses
    assert list(q["request_id"]) == ["c0ffee-1#0", "c0ffee-1#1"] == list(r["request_id"])
    assert list(q["model"]) == ["income-v2"] * 2
    assert list(q["features.age"]) == [39.0, 50.0]
    assert list(q["features.workclass"]) == ["State-gov", "Self-emp-not-inc"]
    assert list(q["features.hours"]) == [40.0, 13.5]
    assert list(q["event_time_ms"]) == [T0 + 1000] * 2 and list(r["event_time_ms"]) == [T0 + 1020] * 2
    assert list(r["model_version"]) == ["v3"] * 2 and list(q["model_version"]) == [""] * 2
    assert list(r["predictions.output-0[0]"]) == [0.75, 0.125]
    assert list(r["predictions.output-0[1]"]) == [0.25, 0.875]
    assert list(r["serving.endpoint"]) == ["canary"] * 2
    assert "serving.x_request_id" not in q  # metadata "{}" logged no headers


def test_kserve_structured_data_base64_and_data_as_json_text():
    body = json.dumps({"instances": [{"age": 30, "city": "Oslo"}, {"age": 41, "city": None}]})
    base = {"specversion": "1.0", "id": "e1", "source": "http://localhost:9081/", "time": "2024-05-01T12:00:00Z",
            "type": "org.kubeflow.serving.inference.request", "inferenceservicename": "m",
            "datacontenttype": "application/json"}
    h = [("content-type", "application/cloudevents+json")]
    out = decode_messages([msg({**base, "data_base64": base64.b64encode(body.encode()).decode()}, h),
                           msg({**base, "id": "e2", "data": body}, h)], FormatConfig(format="kserve"), LIMITS)
    assert out.rejected == []
    assert list(out.requests["request_id"]) == ["e1#0", "e1#1", "e2#0", "e2#1"]
    assert list(out.requests["features.age"]) == [30.0, 41.0, 30.0, 41.0]
    assert texts(out.requests["features.city"]) == ["Oslo", None, "Oslo", None]


def test_kserve_event_time_falls_back_to_the_message_timestamp():
    h = [("ce_id", "x"), ("ce_type", "org.kubeflow.serving.inference.response"), ("ce_inferenceservicename", "m")]
    out = decode_messages([msg({"predictions": [[0.1, 0.9]]}, h, ts=T0 + 7)], FormatConfig(format="kserve"), LIMITS)
    assert list(out.responses["event_time_ms"]) == [T0 + 7]
    assert list(out.responses["request_id"]) == ["x"]  # one row: the id itself
    assert list(out.responses["predictions.p1"]) == [0.9]
    out = decode_messages([msg({"predictions": [1]}, h, ts=None)], FormatConfig(format="kserve"), LIMITS)
    assert reasons(out) == [RejectReason.MISSING_FIELD] and "no event time" in out.rejected[0].detail


def test_kserve_bad_messages_are_rejected_with_reasons():
    ok = [("ce_id", "x"), ("ce_type", "org.kubeflow.serving.inference.request"), ("ce_inferenceservicename", "m")]
    cases = [
        (msg({"instances": [[1]]}, [("ce_id", "x"), ("ce_type", "org.kubeflow.serving.inference.outlier")]),
         RejectReason.UNSUPPORTED_CONTENT, "type"),
        (msg({"instances": [[1]]}, ok[1:]), RejectReason.MISSING_FIELD, "id"),
        (msg(b"{not json", ok), RejectReason.INVALID_JSON, "body"),
        (msg({"instances": [[1, 2], [3]]}, ok), RejectReason.SHAPE_MISMATCH, "instances"),
        (msg({"instances": [[{"a": 1}]]}, ok), RejectReason.WRONG_TYPE, "instances"),
        (msg({"instances": []}, ok), RejectReason.NO_DATA, "0 rows"),
        (msg({"instances": [[1]]}, ok[:2]), RejectReason.MISSING_FIELD, "model"),
        (msg(b"garbage", [("content-type", "application/cloudevents+json")]), RejectReason.INVALID_JSON, "value"),
        (msg(b"\x89PNG", ok + [("content-type", "image/png")]), RejectReason.UNSUPPORTED_CONTENT, "content-type"),
        (msg({"instances": [[1]]}, ok + [("ce_time", "yesterday")]), RejectReason.INVALID_TIMESTAMP, "time"),
        (msg(None, ok), RejectReason.EMPTY, "no value"),
    ]
    out = decode_messages([m for m, _, _ in cases], FormatConfig(format="kserve"), LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail
    assert out.n_rows == 0


def test_limits_apply_to_kserve():
    h = [("ce_id", "x"), ("ce_type", "org.kubeflow.serving.inference.request"), ("ce_inferenceservicename", "m"),
         ("ce_time", "2030-01-01T00:00:00Z")]
    out = decode_messages([msg({"instances": [list(range(20))]}, h[:3]), msg({"instances": [[1]]}, h),
                           msg({"instances": [[1]] * 100}, h[:3])],
                          FormatConfig(format="kserve"), Limits(max_features=10, max_event_time_ms=T0 + 1000,
                                                                max_message_bytes=200))
    assert reasons(out) == [RejectReason.TOO_MANY_FEATURES, RejectReason.FUTURE_TIMESTAMP, RejectReason.OVERSIZE]


# --- Open Inference Protocol -----------------------------------------------------------------

def tensor(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def test_oip_every_datatype_in_a_batch_of_three():
    inputs = [
        tensor("b", "BOOL", [3], [True, False, True]),
        tensor("u8", "UINT8", [3], [0, 7, 255]),
        tensor("u16", "UINT16", [3, 1], [[1], [2], [65535]]),
        tensor("u32", "UINT32", [3], [1, 2, 4294967295]),
        tensor("u64", "UINT64", [3], [0, 1, 2**53]),
        tensor("i8", "INT8", [3], [-128, 0, 127]),
        tensor("i16", "INT16", [3], [-1, 0, 1]),
        tensor("i32", "INT32", [3], [-5, 6, 7]),
        tensor("i64", "INT64", [3], [-(2**40), 0, 2**40]),
        tensor("f16", "FP16", [3], [0.5, -1.25, 2.0]),
        tensor("bf16", "BF16", [3], [1.0, 0.5, -2.0]),
        tensor("f32", "FP32", [3, 2], [[0.25, 0.5], [1.0, 2.0], [4.0, 8.0]]),  # nested
        tensor("f64", "FP64", [3, 2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),  # flat
        tensor("s", "BYTES", [3], ["a", "ü", ""]),
    ]
    out = DECODERS["oip"]([msg({"id": "r", "inputs": inputs})], FormatConfig(model="m"), LIMITS)
    assert out.rejected == []
    q = out.requests
    assert list(q["request_id"]) == ["r#0", "r#1", "r#2"]
    assert list(q["features.b"]) == ["true", "false", "true"]
    assert list(q["features.u8"]) == [0.0, 7.0, 255.0]
    assert list(q["features.u16"]) == [1.0, 2.0, 65535.0]
    assert list(q["features.u32"]) == [1.0, 2.0, 4294967295.0]
    assert list(q["features.u64"]) == [0.0, 1.0, 2.0**53]
    assert list(q["features.i8"]) == [-128.0, 0.0, 127.0]
    assert list(q["features.i16"]) == [-1.0, 0.0, 1.0]
    assert list(q["features.i32"]) == [-5.0, 6.0, 7.0]
    assert list(q["features.i64"]) == [-(2.0**40), 0.0, 2.0**40]
    assert list(q["features.f16"]) == [0.5, -1.25, 2.0]
    assert list(q["features.bf16"]) == [1.0, 0.5, -2.0]
    assert list(q["features.f32[0]"]) == [0.25, 1.0, 4.0] and list(q["features.f32[1]"]) == [0.5, 2.0, 8.0]
    assert list(q["features.f64[0]"]) == [0.1, 0.3, 0.5] and list(q["features.f64[1]"]) == [0.2, 0.4, 0.6]
    assert list(q["features.s"]) == ["a", "ü", ""]
    assert q["features.u8"].dtype == np.float64


def test_oip_column_names_from_config():
    body = {"id": "r", "inputs": [tensor("input-0", "FP32", [2, 3], [1, 2, 3, 4, 5, 6])]}
    q = DECODERS["oip"]([msg(body)], FormatConfig(model="m", feature_names=["a", "b", "c"]), LIMITS).requests
    assert list(q["features.b"]) == [2.0, 5.0]
    body2 = {"id": "r", "inputs": [tensor("x", "FP32", [2, 2], [1, 2, 3, 4]), tensor("y", "INT32", [2], [7, 8])]}
    fmt = FormatConfig(model="m", inputs={"x": ["x_left", "x_right"], "y": "count"})
    q = DECODERS["oip"]([msg(body2)], fmt, LIMITS).requests
    assert list(q["features.x_right"]) == [2.0, 4.0] and list(q["features.count"]) == [7.0, 8.0]
    res = {"model_name": "m", "id": "r", "outputs": [tensor("proba", "FP32", [2, 2], [0.25, 0.75, 0.5, 0.5])]}
    r = DECODERS["oip"]([msg(res)], FormatConfig(outputs={"proba": ["no", "yes"]}), LIMITS).responses
    assert list(r["predictions.yes"]) == [0.75, 0.5]
    # names that do not fit the tensor are the message's problem, named by the config key
    out = DECODERS["oip"]([msg(body)], FormatConfig(model="m", feature_names=["a", "b"]), LIMITS)
    assert reasons(out) == [RejectReason.SHAPE_MISMATCH] and "feature_names has 2 names" in out.rejected[0].detail


def test_oip_response_model_and_ids_are_lenient():
    res = {"outputs": [tensor("out", "INT64", [1], [3])]}  # the spec's own example has no model_name
    out = DECODERS["oip"]([msg(res, headers=[("x-request-id", "h-1")])], FormatConfig(model="cfg"), LIMITS)
    assert list(out.responses["model"]) == ["cfg"] and list(out.responses["request_id"]) == ["h-1"]
    out = DECODERS["oip"]([msg(res, key=b"k-1")], FormatConfig(model="cfg"), LIMITS)
    assert list(out.responses["request_id"]) == ["k-1"]
    out = DECODERS["oip"]([msg(res)], FormatConfig(model="cfg"), LIMITS)
    assert reasons(out) == [RejectReason.MISSING_FIELD] and "request id" in out.rejected[0].detail
    out = DECODERS["oip"]([msg({**res, "id": "r"})], FormatConfig(), LIMITS)
    assert reasons(out) == [RejectReason.MISSING_FIELD] and "`model`" in out.rejected[0].detail
    out = DECODERS["oip"]([msg({**res, "id": "r", "model_name": "m", "model_version": 4})], FormatConfig(), LIMITS)
    assert list(out.responses["model_version"]) == ["4"]


def test_oip_bad_bodies_are_rejected():
    def req(*tensors):
        return msg({"id": "r", "inputs": list(tensors)})
    cases = [
        (req(tensor("x", "FP32", [2, 2], [1, 2, 3])), RejectReason.SHAPE_MISMATCH, "do not fill shape [2, 2]"),
        (req(tensor("x", "FP32", [2, 2], [[1, 2], [3]])), RejectReason.SHAPE_MISMATCH, "different lengths"),
        (req(tensor("x", "COMPLEX64", [1], [1])), RejectReason.UNSUPPORTED_CONTENT, "datatype"),
        (req(tensor("x", "FP32", [2], [1, 2]), tensor("y", "FP32", [3], [1, 2, 3])),
         RejectReason.SHAPE_MISMATCH, "batch size"),
        (req(tensor("x", "FP32", [1], ["abc"])), RejectReason.WRONG_TYPE, "must be numbers"),
        (req(tensor("x", "BOOL", [1], ["true"])), RejectReason.WRONG_TYPE, "true/false"),
        (req(tensor("x", "BYTES", [1], [5])), RejectReason.WRONG_TYPE, "strings"),
        (req(tensor("x", "FP32", [-1], [1])), RejectReason.WRONG_TYPE, "shape"),
        (req({"name": "x", "shape": [1], "datatype": "FP32"}), RejectReason.MISSING_FIELD, "data"),
        (req(tensor("x", "FP32", [0, 4], [])), RejectReason.NO_DATA, "0 rows"),
        (req(tensor("x", "FP32", [1, 2000], [0.0] * 2000)), RejectReason.TOO_MANY_FEATURES, "limit 1000"),
        (msg({"id": "r", "inputs": []}), RejectReason.NO_DATA, "no tensors"),
        (msg({"error": "Model iris is not ready"}), RejectReason.ERROR_RESPONSE, "not ready"),
        (msg([1, 2]), RejectReason.NOT_AN_OBJECT, "list"),
        (msg({"id": "r", "inputs": {"x": [1]}}), RejectReason.WRONG_TYPE, "list of tensors"),
    ]
    out = DECODERS["oip"]([m for m, _, _ in cases], FormatConfig(model="m"), LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail, rejected.detail


def test_garbage_never_raises_from_any_decoder():
    rng = np.random.default_rng(7)
    junk = [b"\x00", b"{", b"[]", b"null", b"1e999999", b'"\\ud800"', b'{"inputs": 5}', b'{"captureData": 1}',
            b'{"columns": 3}', b'{"eventMetadata": {"eventId": 5}}', b'{"outputs": [{"name": "x"}]}',
            b"\xff\xfe", b'{"a": "\\u0000"}', b'{"instances": [[{"b64": "AA=="}]]}',
            b'{"instances": [[' + b"9" * 400 + b"]]}"]
    junk += [rng.bytes(int(n)) for n in rng.integers(1, 200, size=30)]
    topics = ["t", "seldon.ns.model.m.inputs", "seldon.ns.model.m.outputs", "/x/m/data/data.0.log"]
    headers = [(), (("ce_id", b"1"), ("ce_type", b"org.kubeflow.serving.inference.request")),
               (("type", b"io.seldon.serving.inference.request"), ("requestid", b"r")),
               (("seldon-infer-type", b"json/inferModelRequest"),)]
    messages = [Message(topics[i % 4], 0, i, v, headers=headers[(i // 4) % 4], timestamp_ms=T0)
                for i, v in enumerate(junk)]
    fmt = FormatConfig(model="m", mapping={"features": ["a"]})
    for name, decoder in DECODERS.items():
        out = decoder(messages, fmt, LIMITS)
        assert out.n_rows == 0 and len(out.rejected) == len(messages), name
        assert all(r.reason != RejectReason.DECODER_ERROR for r in out.rejected), \
            [(name, r.detail) for r in out.rejected if r.reason == RejectReason.DECODER_ERROR]
    out = decode_messages(messages, FormatConfig(), LIMITS)
    assert len(out.rejected) == len(messages)
