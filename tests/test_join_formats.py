"""The request-response and label joins fed by real wire formats: Seldon Core v2 model topics
(protobuf), KServe CloudEvents and SageMaker ground truth, decoded by their decoders and joined
as the pipeline joins them."""

import json

import numpy as np
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
    assert restored.pending()["model"].tolist() == ["scaler", "classifier"]
