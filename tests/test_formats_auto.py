"""Format ``auto``: routing a batch by trying the inferwatch decoder first gives exactly what
routing every message by :func:`detect_format` gives; a configured mapping wins over the
flat-log rules of other formats."""

import json
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.formats import bentoml
from collector.formats import DECODERS, UNKNOWN, FormatConfig, Limits, decode_messages, detect_format
from collector.formats.columns import merge_decoded
from collector.formats.files import iter_file, iter_messages
from collector.message import Message

DATA = Path(__file__).parent / "data" / "formats"
T0 = 1714564800000
STAMP = "2024-05-01T12:00:00Z"
KINDS = ("records", "requests", "responses", "labels")


def route_each(messages, fmt, limits):
    """The reference: every message routed by detect_format, each decoder given its messages
    in input order, the parts in order of their first message."""
    fallback = "mapped_json" if fmt.mapping is not None else "inferwatch"
    groups = {}
    for m in messages:
        name = detect_format(m, fmt.mapping)
        groups.setdefault(fallback if name == UNKNOWN else name, []).append(m)
    parts = [DECODERS[name](group, fmt, limits) for name, group in groups.items()]
    if len(parts) == 1:
        return parts[0]
    return merge_decoded(parts, {id(m): i for i, m in enumerate(messages)})


def assert_same_routing(messages, fmt, limits=Limits()):
    # BentoML schema lines are remembered across calls: each run starts from none
    bentoml.SCHEMAS = bentoml.SchemaCache()
    fast = decode_messages(messages, fmt, limits)
    bentoml.SCHEMAS = bentoml.SchemaCache()
    each = route_each(messages, fmt, limits)
    for kind in KINDS:
        a, b = getattr(fast, kind), getattr(each, kind)
        if len(a) or len(b):
            pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert [(r.message.offset, r.reason, r.detail) for r in fast.rejected] == \
        [(r.message.offset, r.reason, r.detail) for r in each.rejected]
    return fast


def record(i, **extra):
    body = {"model": "m", "model_version": "1", "timestamp": STAMP, "request_id": f"r{i}",
            "features": {"x": i, "state": "MA"}, "predictions": {"p": 0.5}}
    body.update(extra)
    return body


SEP = {"separators": (",", ":")}  # as most producers write it: '{"model":...'
KSERVE = list(iter_file(DATA / "kserve.dump.jsonl"))
CAPTURE = next(iter_messages([DATA / "sagemaker" / "datacapture"]))
BENTO = list(iter_messages([DATA / "bentoml"]))

# bodies of every kind a mixed topic may carry, as (value, headers, topic)
SHAPES = [
    (json.dumps(record(0), **SEP), (), "t"),
    (json.dumps(record(1)), (), "t"),  # '{"model": ...' with spaces
    (json.dumps(record(2, features={"name": "caf\u00e9"})), (), "t"),  # \u escape
    (json.dumps(record(3, features={"captureData": 1.5}), **SEP), (), "t"),  # a SageMaker key
    (json.dumps({"columns": [1], **record(4)}, **SEP), (), "t"),  # starts like a BentoML schema
    (" " + json.dumps(record(5), **SEP), (), "t"),
    (json.dumps(record(6, timestamp="yesterday"), **SEP), (), "t"),  # rejected by inferwatch
    (json.dumps(record(7, features=[1]), **SEP), (), "t"),
    (json.dumps({"request_id": "r8", "label": 1}, **SEP), (), "t"),  # labels
    (json.dumps({"request_id": "r9", "label": 1, "features": {"x": 1}}, **SEP), (), "t"),
    (json.dumps({"request_id": "r10", "trace_id": "t", "timestamp": STAMP, "feat_x": 2.5,
                 "features": 1}, **SEP), (), "t"),  # a BentoML-like flat log
    (json.dumps({"ts": T0, "feat_x": 1.5, "score": 0.2}, **SEP), (), "t"),  # flat log, no rule
    (json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}), (), "t"),
    (json.dumps(record(13), **SEP), (("traceparent", b"00-abc"),), "t"),  # a header no rule reads
    (json.dumps(record(14), **SEP), (("ce_type", b"org.kubeflow.serving.inference.request"),), "t"),
    (json.dumps(record(15), **SEP), (), "seldon.ns.model.iris.inputs"),
    ('{"features": ', (), "t"),
    ("", (), "t"),
    (None, (), "t"),
]


def build(choices):
    out = []
    for offset, k in enumerate(choices):
        if k == len(SHAPES):
            m = KSERVE[offset % len(KSERVE)]
        elif k == len(SHAPES) + 1:
            m = CAPTURE
        elif k == len(SHAPES) + 2:
            m = BENTO[offset % len(BENTO)]
        else:
            value, headers, topic = SHAPES[k]
            m = Message(topic, 0, offset, None if value is None else value.encode(), None, headers, T0 + offset)
        out.append(m._replace(offset=offset, partition=0))
    return out


MAPPING = FormatConfig(model="flat", mapping={"features": ["feat_*", "features.*"], "request_id": "request_id",
                                              "timestamp": "ts"})
FORMATS = st.sampled_from([FormatConfig(), FormatConfig(model="fallback"), MAPPING])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(SHAPES) + 2), min_size=1, max_size=14), FORMATS)
def test_auto_routing_agrees_with_detection_per_message(choices, fmt):
    assert_same_routing(build(choices), fmt)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([0, 0, 0, 0, 1, 6, 7, 8, 13]), min_size=1, max_size=30), FORMATS)
def test_runs_of_records_agree_with_detection_per_message(choices, fmt):
    # mostly plain records: the whole run is tried by the inferwatch decoder at once
    assert_same_routing(build(choices), fmt)


def test_a_run_of_records_detects_nothing_per_message(monkeypatch):
    import collector.formats as formats

    calls = []
    real = formats.detect_format
    monkeypatch.setattr(formats, "detect_format", lambda m, mapping=None: calls.append(m.offset) or real(m, mapping))
    batch = build([0] * 25 + [6, 8] + [0] * 25)
    out = decode_messages(batch, FormatConfig(), Limits())
    assert len(out.records) == 50 and len(out.labels) == 1
    assert [r.reason.value for r in out.rejected] == ["invalid_timestamp"]
    assert sorted(calls) == [25, 26]  # only the two the inferwatch decoder did not accept


def test_configured_mapping_wins_over_other_flat_log_rules():
    fmt = FormatConfig(model="flat", mapping={"features": ["feat_*"], "request_id": "request_id", "label": "label"})
    bento_like = {"request_id": "r1", "trace_id": "t1", "timestamp": STAMP, "feat_age": 41, "feat_plan": "pro"}
    labelled = {"request_id": "r2", "label": "yes", "feat_age": 42}
    plain_label = {"request_id": "r3", "label": "no"}  # no mapped feature: still a label
    messages = [Message("t", 0, i, json.dumps(b).encode(), None, (), T0)
                for i, b in enumerate([bento_like, labelled, plain_label])]
    assert [detect_format(m, fmt.mapping) for m in messages] == ["mapped_json", "mapped_json", "labels"]
    assert [detect_format(m) for m in messages] == ["bentoml", "labels", "labels"]  # without the mapping
    out = assert_same_routing(messages, fmt)
    assert out.rejected == []
    assert list(out.records["request_id"]) == ["r1", "r2"]
    assert list(out.records["features.feat_age"]) == [41.0, 42.0]
    assert list(out.records["label"])[1] == "yes"
    assert list(out.labels["request_id"]) == ["r3"]


# --- rows per message ------------------------------------------------------------------------

def oip_request(rid, n_rows):
    return json.dumps({"id": rid, "inputs": [{"name": "x", "shape": [n_rows, 2], "datatype": "FP32",
                                               "data": [float(i) for i in range(2 * n_rows)]}]}).encode()


def test_a_message_expanding_to_too_many_rows_is_rejected_whole():
    import pytest

    from collector.decode import RejectReason

    limits = Limits(max_rows_per_message=3)
    batch = [Message("t", 0, i, oip_request(f"q{i}", n), None, (), T0) for i, n in enumerate([3, 4, 1, 100])]
    for fmt in (FormatConfig(model="m"), FormatConfig(format="oip", model="m")):
        out = decode_messages(batch, fmt, limits)
        assert [(r.message.offset, r.reason) for r in out.rejected] == [
            (1, RejectReason.TOO_MANY_ROWS), (3, RejectReason.TOO_MANY_ROWS)]
        assert out.rejected[0].detail == "the message expands to 4 rows > limit 3"
        assert list(out.requests["request_id"]) == ["q0#0", "q0#1", "q0#2", "q2"]
        assert out.requests["features.x[1]"].tolist() == [1.0, 3.0, 5.0, 1.0]
    # the default bound is far above a normal batch; a bound must be positive
    assert len(decode_messages(batch, FormatConfig(model="m"), Limits()).requests) == 108
    assert Limits().max_rows_per_message == 100_000
    with pytest.raises(ValueError, match="max_rows_per_message"):
        Limits(max_rows_per_message=0)


def test_rows_a_rejected_message_added_before_its_excess_are_dropped():
    from collector.formats.columns import MAX_ROWS_PER_MESSAGE, DecodedBuilder

    token = MAX_ROWS_PER_MESSAGE.set(3)
    try:
        out = DecodedBuilder()
    finally:
        MAX_ROWS_PER_MESSAGE.reset(token)

    def one(m):
        if m.offset == 1:  # labels first, then too many records
            out.add("labels", 2, event_time_ms=T0, request_ids=["a", "b"], label=[1, 0])
            out.add("records", 2, model="m", event_time_ms=T0, request_ids=["c", "d"])
        else:
            out.add_row(m, "records", model="m", event_time_ms=T0, request_id=f"r{m.offset}", values={"x": 1.0})

    out.run([Message("t", 0, i, b"{}") for i in range(3)], one)
    decoded = out.build()
    assert [(r.message.offset, r.reason.value) for r in decoded.rejected] == [(1, "too_many_rows")]
    assert list(decoded.records["request_id"]) == ["r0", "r2"] and len(decoded.labels) == 0
