"""The request-response and label joins fed by real wire formats: Seldon Core v2 model topics
(protobuf), KServe CloudEvents and SageMaker ground truth, decoded by their decoders and joined
as the pipeline joins them."""

import json

import pandas as pd

from collector.formats import FormatConfig, Limits
from collector.formats.cloudevents import decode as decode_ce
from collector.formats.open_inference_pb2 import ModelInferRequest, ModelInferResponse
from collector.formats.seldon import decode_v2
from collector.join import JOIN_STATUS, RequestResponseJoin
from collector.message import Message

LIMITS = Limits()
T0 = 1714564800000


def seldon(value: bytes, model: str, side: str, rid: str, ts: int, offset: int = 0) -> Message:
    return Message(topic=f"seldon.prod.model.{model}.{side}", partition=0, offset=offset, value=value, key=None,
                   headers=(("x-request-id", rid.encode()),), timestamp_ms=ts)


def scaler_request(x: float) -> bytes:
    r = ModelInferRequest(model_name="scaler")
    r.inputs.add(name="income", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(x)
    return r.SerializeToString()


def scaler_response(scaled: float) -> bytes:
    r = ModelInferResponse(model_name="scaler", model_version="2")
    r.outputs.add(name="scaled", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(scaled)
    return r.SerializeToString()


def classifier_response(p: float) -> bytes:
    r = ModelInferResponse(model_name="classifier", model_version="7")
    r.outputs.add(name="proba", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(p)
    return r.SerializeToString()


def feed(join: RequestResponseJoin, messages: list[Message]) -> list[pd.DataFrame]:
    """Decode each message on its own (one topic at a time, as the pipeline decodes a topic's
    group) and add its halves to the join; the records emitted per step."""
    out = []
    for m in messages:
        d = decode_v2([m], FormatConfig(), LIMITS)
        assert d.rejected == []
        res = join.add(d.requests if len(d.requests) else None, d.responses if len(d.responses) else None)
        out.append(res.records)
    return out


def test_pipeline_steps_sharing_one_request_id_join_their_own_halves():
    # A Seldon Core v2 pipeline scaler -> classifier passes x-request-id "p-1" to both models;
    # the classifier's inputs topic carries the scaler's response. The classifier's outputs are
    # read before the scaler's outputs (another topic, another consumer position).
    msgs = [
        seldon(scaler_request(52_000.0), "scaler", "inputs", "p-1", T0),
        seldon(classifier_response(0.83), "classifier", "outputs", "p-1", T0 + 9),
        seldon(scaler_response(0.52), "scaler", "outputs", "p-1", T0 + 3),
        seldon(scaler_response(0.52), "classifier", "inputs", "p-1", T0 + 4),
    ]
    j = RequestResponseJoin(ttl_ms=60_000)
    steps = feed(j, msgs)
    # the classifier's response never joins the scaler's request
    assert [len(s) for s in steps] == [0, 0, 1, 1]
    scaler, classifier = steps[2].iloc[0], steps[3].iloc[0]
    assert (scaler["model"], scaler["model_version"], scaler["request_id"]) == ("scaler", "2", "p-1")
    assert scaler["features.income"] == 52_000.0 and scaler["predictions.scaled"] == 0.52
    assert "predictions.proba" not in steps[2].columns
    assert (classifier["model"], classifier["model_version"], classifier["request_id"]) == ("classifier", "7", "p-1")
    assert classifier["features.scaled"] == 0.52 and classifier["predictions.proba"] == 0.83
    assert scaler[JOIN_STATUS] == classifier[JOIN_STATUS] == "matched"
    assert j.n_pending == 0


def test_pipeline_steps_stay_apart_across_a_restore():
    j = RequestResponseJoin(ttl_ms=60_000)
    feed(j, [seldon(scaler_request(1.0), "scaler", "inputs", "p-9", T0),
             seldon(scaler_response(0.1), "scaler", "outputs", "p-9", T0 + 1)])
    # the finished (scaler, p-9) is remembered per model: a duplicate of the scaler's request
    # is dropped, while the classifier's halves of the same id still join each other
    restored = RequestResponseJoin(ttl_ms=60_000)
    restored.restore(j.pending(), clock_ms=j.clock_ms, next_seq=j.next_seq)
    steps = feed(restored, [seldon(scaler_request(1.0), "scaler", "inputs", "p-9", T0 + 2),
                            seldon(scaler_response(0.1), "classifier", "inputs", "p-9", T0 + 2),
                            seldon(classifier_response(0.4), "classifier", "outputs", "p-9", T0 + 5)])
    assert [len(s) for s in steps] == [0, 0, 1]
    assert steps[2]["model"].tolist() == ["classifier"]
    finished = restored.pending().query("join_half == 'finished'")
    assert finished[["model", "request_id"]].values.tolist() == [["scaler", "p-9"], ["classifier", "p-9"]]


def kserve(kind: str, ce_id: str, time: str, body: dict, isvc: str = "sklearn-iris", endpoint: str = "default",
           offset: int = 0) -> Message:
    """A KServe logger CloudEvent in Kafka binary mode, as a Knative KafkaSink writes it."""
    hdr = [("ce_specversion", "1.0"), ("ce_id", ce_id), ("ce_source", "http://localhost:9081/"),
           ("ce_type", f"org.kubeflow.serving.inference.{kind}"), ("ce_time", time),
           ("ce_inferenceservicename", isvc), ("ce_namespace", "kserve-test"), ("ce_component", "predictor"),
           ("ce_endpoint", endpoint), ("content-type", "application/json")]
    return Message(topic="kserve-logs", partition=0, offset=offset, value=json.dumps(body).encode(), key=None,
                   headers=tuple((k, v.encode()) for k, v in hdr), timestamp_ms=T0)


IRIS = FormatConfig(format="kserve", feature_names=["sl", "sw", "pl", "pw"])


def join_ce(join: RequestResponseJoin, messages: list[Message], fmt: FormatConfig = IRIS):
    """Decode and join one message at a time; (records, late halves, summed counts)."""
    records, late, counts = [], [], {}
    for m in messages:
        d = decode_ce([m], fmt, LIMITS)
        assert d.rejected == []
        res = join.add(d.requests if len(d.requests) else None, d.responses if len(d.responses) else None)
        records.append(res.records)
        late.append(res.late)
        for k, v in res.counts.items():
            counts[k] = counts.get(k, 0) + v
    cat = lambda fs: pd.concat([f for f in fs if len(f)], ignore_index=True) if any(len(f) for f in fs) \
        else fs[0]  # noqa: E731
    return cat(records), cat(late), {k: v for k, v in counts.items() if v}


def test_a_response_after_its_request_expired_is_not_a_second_row():
    # call A's response takes 95 s, beyond the 60 s time to live: A's request has been given up
    # (a request_only row, its features in feature drift) by the time the response comes
    j = RequestResponseJoin(ttl_ms=60_000)
    records, late, counts = join_ce(j, [
        kserve("request", "A", "2024-05-01T12:00:00Z", {"instances": [[6.8, 2.8, 4.8, 1.4]]}),
        kserve("request", "B", "2024-05-01T12:01:30Z", {"instances": [[5.1, 3.5, 1.4, 0.2]]}),
        kserve("response", "B", "2024-05-01T12:01:31Z", {"predictions": [0]}),
        kserve("response", "A", "2024-05-01T12:01:35Z", {"predictions": [1]}),
    ])
    # one row per call: every window record count sees A and B once
    assert sorted(records["request_id"]) == ["A", "B"]
    assert records.set_index("request_id")[JOIN_STATUS].to_dict() == {"A": "request_only", "B": "matched"}
    assert counts == {"matched": 1, "request_expired": 1, "response_late": 1}
    # rows = matched + expired + evicted + no id; the late half is counted, not emitted as a row
    assert len(records) == counts["matched"] + counts["request_expired"]
    # A's prediction is still readable apart from the records
    assert late[["request_id", "predictions.p0", JOIN_STATUS]].values.tolist() == [["A", 1.0, "response_only"]]
    assert j.n_pending == 0


def iris_request(i: int) -> bytes:
    r = ModelInferRequest(model_name="iris")
    r.inputs.add(name="petal", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0 + i, 0.5])
    return r.SerializeToString()


def iris_response(i: int) -> bytes:
    r = ModelInferResponse(model_name="iris", model_version="1")
    r.outputs.add(name="class", datatype="INT64", shape=[1, 1]).contents.int64_contents.append(i % 3)
    return r.SerializeToString()


def replay_order(n: int, step_ms: int = 30_000):
    """Per-topic dump files replayed one after the other: every input (a call every 30 s for
    n calls) before any output (each 40 ms after its input)."""
    inputs = [seldon(iris_request(i), "iris", "inputs", f"c-{i}", T0 + i * step_ms, offset=i) for i in range(n)]
    outputs = [seldon(iris_response(i), "iris", "outputs", f"c-{i}", T0 + i * step_ms + 40, offset=i)
               for i in range(n)]
    return inputs, outputs


def run(join: RequestResponseJoin, messages: list[Message], batch: int = 4):
    records, counts = [], {}
    for k in range(0, len(messages), batch):
        d = decode_v2(messages[k:k + batch], FormatConfig(), LIMITS)
        assert d.rejected == []
        res = join.add(d.requests if len(d.requests) else None, d.responses if len(d.responses) else None)
        records.append(res.records)
        for key, v in res.counts.items():
            counts[key] = counts.get(key, 0) + v
    frames = [r for r in records if len(r)]
    return (pd.concat(frames, ignore_index=True) if frames else records[0]), {k: v for k, v in counts.items() if v}


def test_replayed_topics_all_inputs_before_all_outputs_still_join():
    # 40 calls over 20 minutes, time to live 60 s: the inputs file runs 20 minutes ahead of
    # the outputs file; requests wait for the responses' clock, not for their own side's
    inputs, outputs = replay_order(40)
    j = RequestResponseJoin(ttl_ms=60_000)
    first, counts = run(j, inputs)
    assert len(first) == 0 and counts == {} and j.n_pending == 40
    assert j.side_clocks_ms == {"request": T0 + 39 * 30_000, "response": None}
    records, counts = run(j, outputs)
    assert counts == {"matched": 40}
    assert (records[JOIN_STATUS] == "matched").all() and records["request_id"].tolist() == [f"c-{i}" for i in range(40)]
    assert records["predictions.class"].tolist() == [float(i % 3) for i in range(40)]
    assert records["features.petal[0]"].tolist() == [1.0 + i for i in range(40)]
    assert j.n_pending == 0


def test_side_clocks_survive_a_restart_between_the_files():
    inputs, outputs = replay_order(12)
    j = RequestResponseJoin(ttl_ms=60_000)
    run(j, inputs)
    ch = j.drain_changes()
    stored = pd.concat([ch.added, ch.added_finished], ignore_index=True)
    restarted = RequestResponseJoin(ttl_ms=60_000)
    restarted.restore(stored, clock_ms=ch.clock_ms, next_seq=ch.next_seq)
    assert restarted.side_clocks_ms == {"request": T0 + 11 * 30_000, "response": None}
    records, counts = run(restarted, outputs)
    assert counts == {"matched": 12} and len(records) == 12


def test_a_side_that_never_comes_is_bounded_by_the_caps_and_max_skew():
    inputs, _ = replay_order(30)
    # memory cap: the oldest waiting requests are evicted, the rest wait
    j = RequestResponseJoin(ttl_ms=60_000, max_pending=10)
    records, counts = run(j, inputs)
    # (the given-up ids are remembered for their late responses, up to max_finished = 10)
    assert counts == {"request_evicted": 20, "ids_forgotten_early": 10} and j.n_pending == 10
    assert records["request_id"].tolist() == [f"c-{i}" for i in range(20)]
    # max_skew_ms: a side may trail the other by at most 5 minutes before its partners expire
    j = RequestResponseJoin(ttl_ms=60_000, max_skew_ms=300_000)
    records, counts = run(j, inputs)
    # clock 870 s: requests at or before 870 - 300 - 60 = 510 s expire (calls 0..16)
    assert counts == {"request_expired": 17}
    assert (records[JOIN_STATUS] == "request_only").all() and j.n_pending == 13


def oip_request(x: float) -> dict:
    return {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [x]}]}


def oip_response(version: str, p: float) -> dict:
    return {"model_name": "income", "model_version": version, "id": "x",
            "outputs": [{"name": "proba", "shape": [1], "datatype": "FP32", "data": [p]}]}


def test_unanswered_kserve_requests_take_their_models_response_version():
    # KServe v2 (Open Inference Protocol) bodies through the CloudEvents logger: the request
    # names no version (it is in the URL), the response does. A canary rollout answers "4" on
    # the canary endpoint and "3" on the default one; requests answered with a 500 are never
    # logged as responses and expire.
    ce = lambda kind, i, sec, body, ep: kserve(kind, f"id-{i}", f"2024-05-01T12:{sec:02d}:00Z", body,  # noqa: E731
                                               isvc="income", endpoint=ep, offset=i)
    j = RequestResponseJoin(ttl_ms=60_000)
    fmt = FormatConfig(format="kserve")
    records, late, counts = join_ce(j, [
        ce("request", 0, 0, oip_request(39.0), "default"),
        ce("response", 0, 0, oip_response("3", 0.2), "default"),
        ce("request", 1, 1, oip_request(50.0), "canary"),
        ce("response", 1, 1, oip_response("4", 0.7), "canary"),
        ce("request", 2, 2, oip_request(28.0), "default"),  # answered 500: no response
        ce("request", 3, 3, oip_request(61.0), "canary"),  # answered 500: no response
        ce("request", 4, 9, oip_request(45.0), "default"),
        ce("response", 4, 9, oip_response("3", 0.4), "default"),
    ], fmt)
    assert counts == {"matched": 3, "request_expired": 2}
    got = records.set_index("request_id")[["model_version", JOIN_STATUS]].to_dict("index")
    assert got == {"id-0": {"model_version": "3", JOIN_STATUS: "matched"},
                   "id-1": {"model_version": "4", JOIN_STATUS: "matched"},
                   "id-2": {"model_version": "3", JOIN_STATUS: "request_only"},
                   "id-3": {"model_version": "4", JOIN_STATUS: "request_only"},
                   "id-4": {"model_version": "3", JOIN_STATUS: "matched"}}
    # a restart keeps what the model's endpoints answer with
    again = RequestResponseJoin(ttl_ms=60_000)
    again.restore(j.pending(), clock_ms=j.clock_ms, next_seq=j.next_seq)
    records, _, counts = join_ce(again, [ce("request", 5, 10, oip_request(33.0), "canary"),
                                         ce("request", 6, 20, oip_request(34.0), "staging"),
                                         ce("response", 7, 30, oip_response("3", 0.1), "default")], fmt)
    # an endpoint whose responses named no version yet: the model's latest version change
    assert records.set_index("request_id")["model_version"].to_dict() == {"id-5": "4", "id-6": "4"}
    assert counts == {"request_expired": 2} and again.n_pending == 1  # id-7's response waits


# --- SageMaker ground truth ---------------------------------------------------------------------

def test_sagemaker_ground_truth_joins_the_captures_whatever_the_files_copy_time(tmp_path):
    # Ground truth uploaded as SageMaker lays it out, <prefix>/yyyy/mm/dd/hh/, then copied
    # here a month later (the copy's modification time), no model configured: the labels name
    # no model and take the hour of their path, so they join the captures' predictions
    import os
    import shutil
    from pathlib import Path

    from collector.formats import decode_messages
    from collector.formats.files import iter_messages
    from collector.join import LabelJoin, MemoryLabelState

    data = Path(__file__).parent / "data" / "formats" / "sagemaker"
    gt = tmp_path / "churn-labels" / "2024" / "05" / "01" / "13" / "labels.jsonl"
    gt.parent.mkdir(parents=True)
    shutil.copy(data / "groundtruth" / "2024" / "05" / "01" / "13" / "labels.jsonl", gt)
    month_later = (T0 + 30 * 86_400_000) / 1000
    os.utime(gt, (month_later, month_later))
    fmt = FormatConfig(format="sagemaker", feature_names=["age", "calls", "minutes", "msgs"])
    captures = decode_messages(list(iter_messages([data / "datacapture"])), fmt, LIMITS)
    labels = decode_messages(list(iter_messages([tmp_path])), fmt, LIMITS)
    assert captures.rejected == [] and labels.rejected == []
    assert "model" not in labels.labels.columns  # no model named: any model's prediction of the id
    assert set(labels.labels["event_time_ms"]) == {T0 + 3_600_000}  # 2024-05-01T13:00Z
    result = LabelJoin(delay_ms=86_400_000).process(MemoryLabelState(), captures.records, labels.labels)
    assert result.counts["matched"] == 4 and result.counts["label_too_late"] == 0
    pairs = result.pairs.set_index("request_id")
    assert set(pairs["model"]) == {"xgb-churn"}
    e = "aaaaaaaa-bbbb-cccc-dddd-000000000002"
    assert pairs["label"].to_dict() == {"inf-1": "1", f"{e}#0": "1", f"{e}#1": "0", "inf-3": "0"}


def test_sagemaker_ground_truth_time_from_the_line_then_the_path_then_the_message():
    from collector.formats.sagemaker import decode as decode_sm

    def gt(meta, topic):
        value = json.dumps({"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": meta,
                            "eventVersion": "0"}).encode()
        return Message(topic=topic, partition=0, offset=0, value=value, key=None, headers=(), timestamp_ms=T0 + 7)

    out = decode_sm([gt({"eventId": "e-1", "inferenceId": "inf-9", "inferenceTime": "2024-05-01T12:30:00Z"},
                        "gt/2024/05/02/08/a.jsonl"),
                     gt({"eventId": "e-2"}, "s3/bucket/gt/2024/05/02/08/b.jsonl"),
                     gt({"eventId": "e-3"}, "ground-truth-topic"),
                     gt({"eventId": "e-4"}, "gt/2024/13/02/08/c.jsonl")], FormatConfig(), LIMITS)
    assert out.rejected == []
    assert out.labels["request_id"].tolist() == ["inf-9", "e-2", "e-3", "e-4"]
    assert out.labels["event_time_ms"].tolist() == [T0 + 1_800_000, T0 + 20 * 3_600_000, T0 + 7, T0 + 7]


def test_kserve_halves_without_inferenceservicename_join_under_the_configured_model():
    # without the inferenceservicename attribute the request names no model (the configured
    # one stands in) while the OIP response names the server's model: both halves take the
    # configured model, so they join
    def bare(kind, body):
        m = kserve(kind, "c-1", "2024-05-01T12:00:00Z", body)
        return Message(topic=m.topic, partition=0, offset=0, value=m.value, key=None, timestamp_ms=T0,
                       headers=tuple((k, v) for k, v in m.headers if k != "ce_inferenceservicename"))

    resp = oip_response("3", 0.6)
    resp["model_name"] = "income-predictor"
    j = RequestResponseJoin(ttl_ms=60_000)
    records, _, counts = join_ce(j, [bare("request", oip_request(40.0)), bare("response", resp)],
                                 FormatConfig(format="kserve", model="income"))
    assert counts == {"matched": 1}
    assert records[["model", "model_version", "features.age", "predictions.proba"]].values.tolist() == [
        ["income", "3", 40.0, 0.6]]  # JSON FP32 data read as written
