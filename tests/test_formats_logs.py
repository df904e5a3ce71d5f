"""Serving-fleet formats, part 3: log lines written to files — SageMaker data capture and ground
truth, BentoML monitoring logs, flat JSON logs through a field mapping."""

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

from collector.decode import RejectReason
from collector.formats import FormatConfig, Limits, decode_messages
from collector.formats import bentoml, mapped_json, sagemaker
from collector.formats.files import iter_messages
from collector.message import Message

DATA = Path(__file__).parent / "data" / "formats"
LIMITS = Limits()
T0 = 1714564800000  # 2024-05-01T12:00:00Z
CAPTURE = DATA / "sagemaker" / "datacapture"


def msg(value, topic="t", ts=T0, offset=0):
    if isinstance(value, (dict, list)):
        value = json.dumps(value).encode()
    return Message(topic=topic, partition=0, offset=offset, value=value, timestamp_ms=ts)


def reasons(decoded):
    return [r.reason for r in decoded.rejected]


def texts(series):
    return [None if pd.isna(v) else v for v in series.tolist()]


# --- SageMaker -------------------------------------------------------------------------------

def test_sagemaker_capture_csv_json_and_base64():
    fmt = FormatConfig(format="sagemaker", feature_names=["age", "calls", "minutes", "msgs"])
    out = decode_messages(list(iter_messages([CAPTURE])), fmt, LIMITS)
    assert out.rejected == []
    r = out.records
    e = "aaaaaaaa-bbbb-cccc-dddd-00000000000"
    # inferenceId when the capture has one, else eventId; a batch of 2 CSV rows gets #0, #1
    assert list(r["request_id"]) == ["inf-1", f"{e}2#0", f"{e}2#1", "inf-3", f"{e}4"]
    assert list(r["model"]) == ["xgb-churn"] * 5  # the endpoint, from the capture path
    assert list(r["serving.endpoint"]) == ["AllTraffic"] * 5  # the variant
    assert list(r["event_time_ms"]) == [T0 + 349000, T0 + 360500, T0 + 360500, T0 + 420000, T0 + 480000]
    assert list(r["features.age"]) == [69.0, 94.0, 31.0, 12.0, 5.0]
    assert list(r["features.minutes"]) == [153.7, 197.1, 88.0, 77.5, 60.25]
    assert r["predictions.p0"].tolist()[:3] == [0.0254181120544672, 0.91, 0.07]
    assert r["predictions.p0"].tolist()[4] == 0.5
    assert r["predictions.score"].dtype == np.float64
    assert texts(r["predictions.score"]) == [None, None, None, 0.625, None]
    assert r["predictions.predicted_label"].tolist()[3] == 1.0
    assert list(r["model_version"]) == [""] * 5
    assert r["label"].isna().all()


def test_sagemaker_ground_truth_joins_by_the_captures_request_ids():
    out = decode_messages(list(iter_messages([DATA / "sagemaker" / "groundtruth"])),
                          FormatConfig(format="sagemaker", model="xgb-churn"), LIMITS)
    assert out.rejected == [] and len(out.records) == 0
    e = "aaaaaaaa-bbbb-cccc-dddd-000000000002"
    assert list(out.labels["request_id"]) == ["inf-1", f"{e}#0", f"{e}#1", "inf-3"]
    assert list(out.labels["label"]) == ["1", "1", "0", "0"]
    assert list(out.labels["model"]) == ["xgb-churn"] * 4
    # no event time in ground-truth lines: the hour of their .../2024/05/01/13/ path, when
    # SageMaker's layout says the labels were collected (not the file's modification time)
    assert set(out.labels["event_time_ms"]) == {T0 + 3_600_000}


def capture(inp, out, meta=None):
    body = {"captureData": {}, "eventMetadata": meta or {"eventId": "ev", "inferenceTime": "2024-05-01T12:00:00Z"},
            "eventVersion": "0"}
    if inp is not None:
        body["captureData"]["endpointInput"] = {"observedContentType": "text/csv", "mode": "INPUT", **inp}
    if out is not None:
        body["captureData"]["endpointOutput"] = {"observedContentType": "text/csv", "mode": "OUTPUT", **out}
    return msg(body)


def test_sagemaker_shapes_of_inputs_and_outputs():
    fmt = FormatConfig(model="m", prediction_names=["score"])
    out = sagemaker.decode([
        # XGBoost answering a 3-row CSV batch on one line
        capture({"data": "1,2\n3,4\n5,6", "encoding": "CSV"}, {"data": "0.1,0.2,0.3", "encoding": "CSV"}),
        # input capture only: a request half
        capture({"data": "7,8", "encoding": "CSV"}, None),
        # JSON lines payload in BASE64
        capture({"observedContentType": "application/jsonlines", "encoding": "BASE64",
                 "data": base64.b64encode(b'{"a": 1}\n{"a": 2}\n').decode()},
                {"data": json.dumps([0.4, 0.6]), "encoding": "JSON"}),
    ], fmt, LIMITS)
    assert out.rejected == []
    assert list(out.records["request_id"]) == ["ev#0", "ev#1", "ev#2", "ev#0", "ev#1"]
    assert list(out.records["predictions.score"]) == [0.1, 0.2, 0.3, 0.4, 0.6]
    assert out.records["features.f1"].tolist()[:3] == [2.0, 4.0, 6.0]
    assert out.records["features.a"].tolist()[3:] == [1.0, 2.0]
    assert list(out.requests["features.f0"]) == [7.0] and list(out.requests["serving.batch_size"]) == [1.0]


def test_sagemaker_bad_lines():
    good_in = {"data": "1,2", "encoding": "CSV"}
    cases = [
        (capture({"data": "@@@", "encoding": "BASE64"}, None), RejectReason.INVALID_BASE64, "endpointInput.data"),
        (capture(good_in, {"data": "0.1\n0.2\n0.3", "encoding": "CSV"}), RejectReason.SHAPE_MISMATCH,
         "1 input rows but 3 output rows"),
        (capture({"data": "1,2\n3", "encoding": "CSV"}, None), RejectReason.SHAPE_MISMATCH, "CSV rows"),
        (capture(good_in, {"data": "x", "encoding": "PARQUET"}), RejectReason.UNSUPPORTED_CONTENT, "encoding"),
        (capture({"observedContentType": "image/jpeg", "encoding": "BASE64",
                  "data": base64.b64encode(b"\xff\xd8\xff\xe0").decode()}, None),
         RejectReason.UNSUPPORTED_CONTENT, "binary"),
        (capture(good_in, None, meta={"inferenceTime": "2024-05-01T12:00:00Z"}), RejectReason.MISSING_FIELD, "eventId"),
        (capture(good_in, None, meta={"eventId": "e", "inferenceTime": "noon"}), RejectReason.INVALID_TIMESTAMP,
         "inferenceTime"),
        (capture(None, None), RejectReason.NO_DATA, "neither"),
        (msg({"eventMetadata": {"eventId": "e"}}), RejectReason.MISSING_FIELD, "captureData"),
        (capture({"data": '{"instances": [[1, [2]]]}', "encoding": "JSON"}, None), RejectReason.WRONG_TYPE,
         "instances"),
    ]
    out = sagemaker.decode([m for m, _, _ in cases], FormatConfig(model="m"), LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail, rejected.detail
    # no model configured and no capture path to take the endpoint from
    out = sagemaker.decode([capture(good_in, None)], FormatConfig(), LIMITS)
    assert reasons(out) == [RejectReason.MISSING_FIELD] and "`model`" in out.rejected[0].detail


# --- BentoML ---------------------------------------------------------------------------------

def test_bentoml_schema_and_data_lines():
    out = decode_messages(list(iter_messages([DATA / "bentoml"])), FormatConfig(format="bentoml"), LIMITS)
    assert out.rejected == []
    r = out.records
    assert list(r["model"]) == ["iris_clf"] * 2  # the monitor name
    assert list(r["model_version"]) == ["qojf5xauugwqtgxi"] * 2  # the bento version
    assert list(r["request_id"]) == ["11405418069391516449", "4023178112348713371"]
    # local time without offset, read as UTC by default
    assert list(r["event_time_ms"]) == [T0 + 123, T0 + 1500]
    assert list(r["features.sepal_len"]) == [5.1, 6.7] and list(r["features.color"]) == ["blue", "red"]
    assert list(r["features.embedding[0]"]) == [0.5, 0.25] and list(r["features.embedding[1]"]) == [1.0, 2.0]
    assert list(r["predictions.pred"]) == ["setosa", "virginica"]
    assert texts(r["label"]) == ["setosa", None]
    assert "features.target" not in r and "features.timestamp" not in r


def test_bentoml_time_zone_fallbacks_and_missing_schema():
    line = {"x": 1.5, "y": "a", "timestamp": "2024-05-01T14:00:00", "request_id": "None", "trace_id": "0"}
    fmt = FormatConfig(format="bentoml", model="svc", feature_names=["x"], prediction_names=["y"],
                       timezone="Europe/Berlin")
    out = bentoml.decode([msg(line, topic="bento-monitor", offset=12)], fmt, LIMITS)
    assert out.rejected == []
    assert list(out.records["event_time_ms"]) == [T0]  # 14:00 in Berlin (CEST) is 12:00 UTC
    assert list(out.records["request_id"]) == ["bento-monitor:0:12"]
    assert list(out.records["features.x"]) == [1.5] and list(out.records["predictions.y"]) == ["a"]
    out = bentoml.decode([msg(line, topic="never-seen-a-schema")], FormatConfig(format="bentoml", model="svc"), LIMITS)
    assert reasons(out) == [RejectReason.NO_SCHEMA] and "feature_names" in out.rejected[0].detail
    # a schema line on a topic is remembered for the data lines that follow
    schema = {"meta_data": {"bento_name": "svc", "bento_version": "v9"},
              "columns": [{"name": "x", "role": "feature", "type": "numerical"}]}
    out = bentoml.decode([msg(schema, topic="bento-topic"), msg(line, topic="bento-topic")],
                         FormatConfig(format="bentoml"), LIMITS)
    assert out.rejected == [] and list(out.records["model"]) == ["svc"]
    assert list(out.records["model_version"]) == ["v9"]
    out = bentoml.decode([msg({**line, "x": {"nested": 1}}, topic="bento-topic")], FormatConfig(), LIMITS)
    assert reasons(out) == [RejectReason.WRONG_TYPE] and out.rejected[0].detail.startswith("x:")


# --- flat JSON logs through a mapping --------------------------------------------------------

MAPPING = {"model": "svc.model", "model_version": "svc.version", "timestamp": "ts", "timestamp_unit": "s",
           "request_id": "trace_id", "label": "outcome", "latency_ms": "took_ms",
           "features": ["input.*", "feat_*", "country"], "predictions": ["score"]}


def test_bentoml_schemas_of_a_caller_are_kept_apart_and_reported_until_stored():
    schema = msg({"meta_data": {"bento_name": "iris", "bento_version": "v1"},
                  "columns": [{"name": "x", "role": "feature", "type": "numerical"},
                              {"name": "y", "role": "target", "type": "categorical"}]}, topic="mon")
    data = msg({"x": 1.5, "y": "a", "timestamp": "2024-05-01T12:00:00", "request_id": "r1", "trace_id": "0"},
               topic="mon", offset=1)
    mine = bentoml.SchemaCache(track_changes=True)
    out = decode_messages([schema, data], FormatConfig(format="bentoml"), LIMITS, mine)
    assert out.rejected == [] and list(out.records["model"]) == ["iris"]
    assert bentoml.SCHEMAS.get("mon") is None  # the process-wide cache is not touched
    changes = mine.changes()
    assert changes == {"mon": bentoml.Schema(("x",), (), "y", "iris", "v1")}
    # not confirmed (the batch's transaction failed): still reported, also after the line is read again
    decode_messages([schema], FormatConfig(), LIMITS, mine)
    assert mine.changes() == changes
    mine.stored(changes)
    assert mine.changes() == {}
    # a restart loads the stored text and decodes data lines without the schema line
    again = bentoml.SchemaCache(track_changes=True)
    again.load([(k, bentoml.schema_from_json(bentoml.schema_to_json(v))) for k, v in changes.items()])
    out = decode_messages([data], FormatConfig(), LIMITS, again)
    assert out.rejected == [] and list(out.records["model_version"]) == ["v1"]
    assert texts(out.records["label"]) == ["a"]
    assert again.changes() == {}


def test_mapped_json_the_documented_example():
    line = {"ts": 1714564800.25, "svc": {"model": "churn", "version": 3}, "trace_id": "t-1",
            "input": {"tenure": 12, "plan": "pro"}, "feat_age": 41, "feat_ids": [1, 2], "score": 0.83,
            "outcome": True, "took_ms": 4.5}
    other = {"ts": "2024-05-01T12:00:01Z", "svc": {"model": "churn"}, "input": {"tenure": 3}, "score": 0.1}
    fmt = FormatConfig(format="mapped_json", mapping=MAPPING)
    out = mapped_json.decode([msg(line), msg(other, offset=1)], fmt, LIMITS)
    assert out.rejected == []
    r = out.records
    assert list(r["model"]) == ["churn", "churn"] and list(r["model_version"]) == ["3", ""]
    assert list(r["event_time_ms"]) == [T0 + 250, T0 + 1000]
    assert list(r["request_id"]) == ["t-1", "t:0:1"]
    assert list(r["features.tenure"]) == [12.0, 3.0] and texts(r["features.plan"]) == ["pro", None]
    assert r["features.feat_age"].tolist()[0] == 41.0 and np.isnan(r["features.feat_age"].tolist()[1])
    assert r["features.feat_ids[1]"].tolist()[0] == 2.0
    assert np.isnan(r["features.country"]).all()
    assert list(r["predictions.score"]) == [0.83, 0.1]
    assert texts(r["label"]) == ["true", None]
    assert r["latency_ms"].tolist()[0] == 4.5 and np.isnan(r["latency_ms"].tolist()[1])


def test_mapped_json_bad_lines():
    fmt = FormatConfig(format="mapped_json", mapping=MAPPING)
    base = {"ts": 1714564800, "svc": {"model": "m"}, "input": {"a": 1}}
    cases = [
        (msg({**base, "svc": {"model": 5}}), RejectReason.WRONG_TYPE, "svc.model"),
        (msg({**base, "svc": {}}), RejectReason.MISSING_FIELD, "`model`"),
        (msg({**base, "ts": "soon"}), RejectReason.INVALID_TIMESTAMP, "ts"),
        (msg({**base, "input": {"a": {"b": 1}}}), RejectReason.WRONG_TYPE, "features.a"),
        (msg({**base, "took_ms": -1}), RejectReason.WRONG_TYPE, "took_ms"),
        (msg({"ts": 1714564800, "svc": {"model": "m"}}), RejectReason.NO_DATA, "none of"),
        (msg([base]), RejectReason.NOT_AN_OBJECT, "list"),
    ]
    out = mapped_json.decode([m for m, _, _ in cases], fmt, LIMITS)
    assert reasons(out) == [r for _, r, _ in cases]
    for rejected, (_, _, word) in zip(out.rejected, cases):
        assert word in rejected.detail, rejected.detail


def test_inferwatch_format_goes_through_the_existing_decoder():
    record = {"model": "m", "model_version": "1", "timestamp": "2024-05-01T12:00:00Z", "request_id": "r",
              "features": {"x": 2}, "predictions": {"y": "a"}, "label": 1}
    out = decode_messages([msg(record), msg(b"{}", offset=1)], FormatConfig(format="inferwatch"), LIMITS)
    assert list(out.records["features.x"]) == [2.0] and list(out.records["label"]) == ["1"]
    assert reasons(out) == [RejectReason.MISSING_FIELD]


def test_one_row_values_no_column_takes_reject_only_their_message():
    from collector.formats.columns import DecodedBuilder
    out = DecodedBuilder()
    a, b = msg(b"{}", offset=0), msg(b"{}", offset=1)
    out.add_row(a, "records", model="m", event_time_ms=T0, request_id="a", values={"features.x": 10**400})
    out.add_row(b, "records", model="m", event_time_ms=T0, request_id="b", values={"features.x": 2})
    decoded = out.build()
    assert [r.message.offset for r in decoded.rejected] == [1 - 1] and reasons(decoded) == [RejectReason.WRONG_TYPE]
    assert list(decoded.records["request_id"]) == ["b"] and list(decoded.records["features.x"]) == [2.0]


# --- serving metadata through a mapping -------------------------------------------------------

import pytest  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from collector.formats.config import JsonMapping  # noqa: E402

VLLM_MAPPING = {"model": "model", "timestamp": "created", "timestamp_unit": "s", "request_id": "id",
                "latency_ms": "metrics.e2e_ms", "features": ["request.*"],
                "serving": {"status_code": "response.status", "replica": "kubernetes.pod",
                            "prompt_tokens": "usage.prompt_tokens", "completion_tokens": "usage.completion_tokens",
                            "queue_ms": "metrics.queue_ms", "time_to_first_token_ms": "metrics.ttft_ms",
                            "finish_reason": "choices.finish_reason"}}


def _vllm_line(i, **over):
    line = {"id": f"cmpl-{i}", "object": "text_completion", "created": 1714564800 + i, "model": "llama-3-8b",
            "kubernetes": {"pod": f"vllm-{i % 2}", "namespace": "llm"},
            "request": {"temperature": 0.7, "max_tokens": 256},
            "response": {"status": 200}, "choices": {"finish_reason": "stop"},
            "usage": {"prompt_tokens": 400 + i, "completion_tokens": 30 + i, "total_tokens": 430 + 2 * i},
            "metrics": {"queue_ms": 1.5 * i, "ttft_ms": 180 + i, "e2e_ms": 950.5}}
    line.update(over)
    return line


def test_mapped_json_serving_columns_of_an_openai_style_completion_log():
    fmt = FormatConfig(format="mapped_json", mapping=VLLM_MAPPING)
    lines = [_vllm_line(0), _vllm_line(1, choices={"finish_reason": "length"}),
             _vllm_line(2, usage={"prompt_tokens": 12}, metrics={"e2e_ms": 3.0}),  # no completion yet: absent
             _vllm_line(3, response={"status": 429}, kubernetes={"pod": None})]
    out = mapped_json.decode([msg(line, offset=i) for i, line in enumerate(lines)], fmt, LIMITS)
    assert out.rejected == []
    r = out.records
    assert list(r["request_id"]) == ["cmpl-0", "cmpl-1", "cmpl-2", "cmpl-3"]
    assert list(r["event_time_ms"]) == [T0, T0 + 1000, T0 + 2000, T0 + 3000]
    assert list(r["latency_ms"]) == [950.5, 950.5, 3.0, 950.5]
    assert list(r["serving.status_code"]) == [200.0, 200.0, 200.0, 429.0]
    assert texts(r["serving.replica"]) == ["vllm-0", "vllm-1", "vllm-0", None]
    assert list(r["serving.prompt_tokens"]) == [400.0, 401.0, 12.0, 403.0]
    assert texts(r["serving.completion_tokens"]) == [30.0, 31.0, None, 33.0]
    assert texts(r["serving.queue_ms"]) == [0.0, 1.5, None, 4.5]
    assert texts(r["serving.time_to_first_token_ms"]) == [180.0, 181.0, None, 183.0]
    assert texts(r["serving.finish_reason"]) == ["stop", "length", "stop", "stop"]
    for name in ("status_code", "prompt_tokens", "completion_tokens", "queue_ms", "time_to_first_token_ms"):
        assert r["serving." + name].dtype == np.float64
    # serving columns come after the features and are not features
    assert [c for c in r.columns if c.startswith("features.")] == ["features.temperature", "features.max_tokens"]
    assert list(r.columns).index("serving.status_code") > list(r.columns).index("features.max_tokens")


FASTAPI_MAPPING = {"model": "model", "timestamp": "time", "request_id": "request_id", "latency_ms": "duration_ms",
                   "features": ["body.*"], "predictions": ["prediction"],
                   "serving": {"status_code": "status_code", "endpoint": "path", "replica": "host.name",
                               "batch_size": "batch"}}


def test_mapped_json_serving_columns_of_a_fastapi_access_log():
    fmt = FormatConfig(format="mapped_json", mapping=FASTAPI_MAPPING)
    ok = {"time": "2024-05-01T12:00:00.120Z", "level": "INFO", "logger": "uvicorn.access", "client": "10.0.0.7:51234",
          "method": "POST", "path": "/v1/predict", "status_code": 200, "duration_ms": 12.3,
          "host": {"name": "churn-api-5c9d-xk2"}, "model": "churn", "request_id": "a1", "batch": 1,
          "body": {"tenure": 12, "plan": "pro"}, "prediction": 0.81}
    error = {**ok, "request_id": "a2", "status_code": 500, "duration_ms": 3.1, "prediction": None}
    no_batch = {k: v for k, v in ok.items() if k != "batch"} | {"request_id": "a3", "path": "/v2/predict"}
    out = mapped_json.decode([msg(ok), msg(error, offset=1), msg(no_batch, offset=2)], fmt, LIMITS)
    assert out.rejected == []  # a 500 answer is kept: it is what error rates are counted from
    r = out.records
    assert list(r["serving.status_code"]) == [200.0, 500.0, 200.0]
    assert texts(r["serving.endpoint"]) == ["/v1/predict", "/v1/predict", "/v2/predict"]
    assert texts(r["serving.replica"]) == ["churn-api-5c9d-xk2"] * 3
    assert texts(r["serving.batch_size"]) == [1.0, 1.0, None]
    assert list(r["latency_ms"]) == [12.3, 3.1, 12.3]
    assert texts(r["predictions.prediction"]) == [0.81, None, 0.81]


@pytest.mark.parametrize("over, detail", [
    ({"status_code": 99}, "status_code: serving.status_code must be an integer from 100 to 599"),
    ({"status_code": "200"}, "status_code: serving.status_code must be an integer from 100 to 599"),
    ({"status_code": 200.0}, "status_code: serving.status_code must be an integer from 100 to 599"),
    ({"path": ["/a"]}, "path: serving.endpoint must be a string"),
    ({"host": {"name": 7}}, "host.name: serving.replica must be a string"),
    ({"batch": 0}, "batch: serving.batch_size must be an integer >= 1"),
    ({"batch": True}, "batch: serving.batch_size must be an integer >= 1"),
])
def test_mapped_json_wrong_serving_values_reject_the_line_naming_the_path(over, detail):
    fmt = FormatConfig(format="mapped_json", mapping=FASTAPI_MAPPING)
    good = {"time": "2024-05-01T12:00:00Z", "model": "churn", "request_id": "a", "status_code": 200,
            "path": "/p", "host": {"name": "h"}, "batch": 2, "body": {"x": 1}}
    out = mapped_json.decode([msg(good), msg({**good, **over}, offset=1)], fmt, LIMITS)
    assert [(r.message.offset, r.reason, r.detail) for r in out.rejected] == [(1, RejectReason.WRONG_TYPE, detail)]
    assert list(out.records["serving.batch_size"]) == [2.0]


def test_mapped_json_wrong_token_and_time_values():
    fmt = FormatConfig(format="mapped_json", mapping=VLLM_MAPPING)
    cases = [_vllm_line(0, usage={"prompt_tokens": -1}), _vllm_line(1, usage={"completion_tokens": 2.5}),
             _vllm_line(2, metrics={"queue_ms": -0.1}), _vllm_line(3, metrics={"ttft_ms": "fast"}),
             _vllm_line(4, choices={"finish_reason": 1}), _vllm_line(5)]
    out = mapped_json.decode([msg(line, offset=i) for i, line in enumerate(cases)], fmt, LIMITS)
    assert [r.detail for r in out.rejected] == [
        "usage.prompt_tokens: serving.prompt_tokens must be an integer >= 0",
        "usage.completion_tokens: serving.completion_tokens must be an integer >= 0",
        "metrics.queue_ms: serving.queue_ms must be a finite number >= 0",
        "metrics.ttft_ms: serving.time_to_first_token_ms must be a finite number >= 0",
        "choices.finish_reason: serving.finish_reason must be a string"]
    assert list(out.records["request_id"]) == ["cmpl-5"]


def test_mapped_json_without_serving_paths_has_no_serving_columns():
    mapping = {k: v for k, v in VLLM_MAPPING.items() if k != "serving"}
    out = mapped_json.decode([msg(_vllm_line(0))], FormatConfig(format="mapped_json", mapping=mapping), LIMITS)
    assert out.rejected == [] and not any(c.startswith("serving.") for c in out.records.columns)


@pytest.mark.parametrize("serving, word", [
    ({"status_code": "response.*"}, "mapping.serving.status_code"),
    ({"replica": "pod*"}, "mapping.serving.replica"),
    ({"prompt_tokens": ""}, "mapping.serving.prompt_tokens"),
    ({"queue_ms": "metrics..queue"}, "mapping.serving.queue_ms"),
    ({"status": "response.status"}, "serving.status"),  # not a serving key
])
def test_serving_paths_are_validated_like_the_other_paths(serving, word):
    with pytest.raises(ValidationError) as err:
        JsonMapping(features=["x"], serving=serving)
    assert word in str(err.value)
    assert JsonMapping(features=["x"], serving={"status_code": "a.b"}).serving.paths() == [("status_code", "a.b")]


def test_auto_format_with_a_mapping_reads_serving_columns():
    out = decode_messages([msg(_vllm_line(0))], FormatConfig(mapping=VLLM_MAPPING), LIMITS)
    assert out.rejected == [] and list(out.records["serving.prompt_tokens"]) == [400.0]
