"""The JSON prediction-log record: accepted shapes become columns, every broken kind is rejected
with its reason."""

import json

import numpy as np
import pytest

from collector.decode import RejectReason, decode_json_batch, parse_timestamp
from collector.message import Message, next_offsets


def msg(value, offset=0):
    if isinstance(value, dict):
        value = json.dumps(value).encode()
    return Message("t", 0, offset, value)


GOOD = {"model": "m", "model_version": "3", "timestamp": "2016-03-01T00:00:00.250Z", "request_id": "r1",
        "features": {"age": 41, "state": "MA", "car": True, "income": None},
        "predictions": {"cls": "yes", "p": 0.8, "proba": [0.2, 0.8]}, "label": True, "latency_ms": 3.5}


def test_good_record_becomes_typed_columns():
    other = {**GOOD, "request_id": "r2", "timestamp": 1456790400000, "model_version": 3,
             "features": {"age": 42.5, "state": 7, "car": False, "income": 1000}}
    batch = decode_json_batch([msg(GOOD), msg(other, 1)], 1 << 20, 100)
    assert batch.rejected == []
    f = batch.frame
    assert list(f["event_time_ms"]) == [1456790400250, 1456790400000]
    assert list(f["model_version"]) == ["3", "3"]
    assert f["features.age"].dtype == np.float64 and list(f["features.age"]) == [41.0, 42.5]
    # a column mixing strings and integers is categorical text; integral numbers lose no digits
    assert list(f["features.state"]) == ["MA", "7"]
    assert list(f["features.car"]) == ["true", "false"]
    assert np.isnan(f["features.income"][0]) and f["features.income"][1] == 1000.0
    assert list(f["predictions.proba[1]"]) == [0.8, 0.8]
    assert list(f["label"]) == ["true", "true"]
    assert list(f["latency_ms"]) == [3.5, 3.5]


@pytest.mark.parametrize("value, reason", [
    (b"", RejectReason.EMPTY),
    (b"x" * 2000, RejectReason.OVERSIZE),
    (b"\xff\xfe{}", RejectReason.INVALID_UTF8),
    (b"{not json", RejectReason.INVALID_JSON),
    (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
    ({k: v for k, v in GOOD.items() if k != "request_id"}, RejectReason.MISSING_FIELD),
    ({**GOOD, "features": [1, 2]}, RejectReason.WRONG_TYPE),
    ({**GOOD, "features": {"a": {"nested": 1}}}, RejectReason.WRONG_TYPE),
    ({**GOOD, "predictions": {"proba": [0.1, "x"]}}, RejectReason.WRONG_TYPE),
    ({**GOOD, "model": 5}, RejectReason.WRONG_TYPE),
    ({**GOOD, "latency_ms": -1}, RejectReason.WRONG_TYPE),
    ({**GOOD, "timestamp": "2016-03-01T00:00:00"}, RejectReason.INVALID_TIMESTAMP),
    ({**GOOD, "timestamp": "yesterday"}, RejectReason.INVALID_TIMESTAMP),
    ({**GOOD, "features": {f"f{i}": i for i in range(11)}}, RejectReason.TOO_MANY_FEATURES),
])
def test_broken_records_are_rejected_with_reason(value, reason):
    batch = decode_json_batch([msg(GOOD, 0), msg(value, 1), msg(GOOD, 2)], 1000, 10)
    assert [r.reason for r in batch.rejected] == [reason]
    assert batch.rejected[0].message.offset == 1
    assert len(batch.frame) == 2  # the good ones around it survive


def test_timestamps():
    assert parse_timestamp("1970-01-01T00:00:01+00:00") == 1000
    assert parse_timestamp("1970-01-01T02:00:01+02:00") == 1000
    assert parse_timestamp(1234) == 1234


def test_empty_batch_has_meta_columns():
    batch = decode_json_batch([msg(b"nope")], 100, 10)
    assert len(batch.frame) == 0 and "event_time_ms" in batch.frame.columns


def test_next_offsets():
    ms = [Message("a", 0, 5, b""), Message("a", 0, 6, b""), Message("a", 1, 2, b""), Message("b", 0, 0, b"")]
    assert next_offsets(ms) == {("a", 0): 7, ("a", 1): 3, ("b", 0): 1}


def test_timestamps_beyond_the_limit_are_rejected():
    ok = {**GOOD, "timestamp": 10_000}
    late = {**GOOD, "timestamp": 10_001}
    batch = decode_json_batch([msg(ok), msg(late, 1)], 1 << 20, 100, max_event_time_ms=10_000)
    assert [r.reason for r in batch.rejected] == [RejectReason.FUTURE_TIMESTAMP] and len(batch.frame) == 1


def _raw(**fields):
    return json.dumps({**GOOD, **fields}).encode()


@pytest.mark.parametrize("value, reason", [
    (b'{"features": {"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}", RejectReason.INVALID_JSON),
    (_raw().replace(b'"age": 41', b'"age": ' + b"7" * 5000), RejectReason.INVALID_JSON),
    (_raw().replace(b'"age": 41', b'"age": 1' + b"0" * 400), RejectReason.WRONG_TYPE),
    (_raw().replace(b'"p": 0.8', b'"p": 1' + b"0" * 400), RejectReason.WRONG_TYPE),
    (_raw().replace(b'"proba": [0.2, 0.8]', b'"proba": [0.2, 1' + b"0" * 400 + b"]"), RejectReason.WRONG_TYPE),
    (_raw(timestamp=1e300), RejectReason.INVALID_TIMESTAMP),
    (_raw(timestamp=float("nan")), RejectReason.INVALID_TIMESTAMP),
    (_raw(latency_ms=1e400), RejectReason.WRONG_TYPE),
    (_raw().replace(b'"model": "m"', b'"model": "m\\ud800"'), RejectReason.WRONG_TYPE),
    (_raw().replace(b'"model": "m"', b'"model": "m\\u0000x"'), RejectReason.WRONG_TYPE),
    (_raw().replace(b'"state": "MA"', b'"st\\udc00": "MA"'), RejectReason.WRONG_TYPE),
    (_raw(predictions={"proba": [0.001] * 200}), RejectReason.TOO_MANY_FEATURES),
])
def test_poison_messages_are_rejected_not_raised(value, reason):
    batch = decode_json_batch([msg(GOOD), msg(value, 1)], 10 << 20, 100)
    assert [r.reason for r in batch.rejected] == [reason] and len(batch.frame) == 1


def test_escaped_emoji_and_non_ascii_text_are_accepted():
    batch = decode_json_batch([msg(_raw().replace(b'"MA"', b'"\\ud83d\\ude00 caf\\u00e9"'))], 1 << 20, 100)
    assert batch.rejected == [] and batch.frame["features.state"][0] == "\U0001F600 café"


# --- the batch path against the one-message-at-a-time rule book ---------------------------------

from datetime import datetime, timedelta, timezone  # noqa: E402

import pandas as pd  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from collector.decode import decode_json_each  # noqa: E402


def assert_same_decoding(messages, max_bytes=1 << 20, max_features=100, max_event_time_ms=None):
    import collector.decode as decode

    failures = []
    decode.log.exception = lambda *a, **k: failures.append(a)  # the batch path's safety net must stay unused
    try:
        fast = decode_json_batch(messages, max_bytes, max_features, max_event_time_ms)
    finally:
        del decode.log.exception
    assert failures == []
    each = decode_json_each(messages, max_bytes, max_features, max_event_time_ms)
    pd.testing.assert_frame_equal(fast.frame, each.frame, check_exact=True)
    assert len(fast.frames) == len(each.frames)
    for a, b in zip(fast.frames, each.frames):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert [(r.message.offset, r.reason, r.detail) for r in fast.rejected] == \
        [(r.message.offset, r.reason, r.detail) for r in each.rejected]
    return fast


def _layouts(dt: datetime, fraction: int, separator: str, zone: str) -> str:
    text = dt.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if fraction:
        text += "." + f"{dt.microsecond:06d}"[:fraction]
    return text + zone


good_zones = st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "-23:59"])
odd_zones = st.sampled_from(["+24:00", "+01:60", "z", "+0100", "", "+01:00:30"])
recent = st.datetimes(min_value=datetime(1700, 1, 1), max_value=datetime(2200, 12, 31))
any_time = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31))
good_rfc3339 = st.builds(_layouts, recent, st.integers(0, 6), st.sampled_from(["T", " "]), good_zones)
rfc3339 = st.one_of(good_rfc3339, good_rfc3339, good_rfc3339,
                    st.builds(_layouts, any_time, st.integers(0, 9), st.sampled_from(["T", " ", "t", "x"]),
                              st.one_of(good_zones, odd_zones)))
broken_text = st.sampled_from(["2016-02-30T00:00:00Z", "2015-02-29T00:00:00Z", "2016-02-29T00:00:00Z",
                               "2016-13-01T00:00:00Z", "2016-00-10T00:00:00Z", "2016-01-01T24:00:00Z",
                               "2016-01-01T23:60:00Z", "2016-01-01T23:59:60Z", "0000-01-01T00:00:00Z",
                               "2016-01-01T00:00:00.Z", "2016-01-01T00:00Z", "2016-01-01T00:00:00,5Z",
                               "２０１６-01-01T00:00:00Z", "2016-01-01T00:00:00.1234567Z", "yesterday", "",
                               "2016-01-01T00:00:00.000000000000000000000000Z", "2016-01-01T00:00:00.-1Z"])
texts = st.one_of(st.sampled_from(["a", "MA", "caf\u00e9", "\U0001F600", "7", "true"]), st.text(max_size=6))
good_scalars = st.one_of(st.integers(-3, 1000), st.integers(-2**63 + 1, 2**63 - 1), st.floats(allow_nan=False,
                         allow_infinity=False), texts, st.booleans(), st.none())
numbers = st.one_of(st.floats(0, 1), st.integers(0, 1), st.floats(allow_nan=False, allow_infinity=False))
feature_names = st.sampled_from(["age", "state", "income", "car", "zip"])


@st.composite
def good_records(draw) -> dict:
    """Records the rule book accepts, in every accepted shape."""
    names = draw(st.sampled_from([("age", "state", "income"), ("state", "age", "income"), ("zip",), ()])) \
        if draw(st.integers(0, 3)) else tuple(draw(st.lists(feature_names, unique=True, max_size=4)))
    preds = {}
    if draw(st.booleans()):
        preds["cls"] = draw(st.one_of(st.sampled_from(["yes", "no"]), good_scalars))
    if draw(st.booleans()):
        size = draw(st.sampled_from([0, 2, 2, 2, 3]))
        preds["proba"] = draw(st.lists(numbers, min_size=size, max_size=size))
    record = {"model": draw(st.sampled_from(["m", "m", "n"])),
              "model_version": draw(st.one_of(st.sampled_from(["1", "2"]), st.integers(-5, 5))),
              "timestamp": draw(st.one_of(good_rfc3339, good_rfc3339, st.integers(0, 253_402_300_799_999))),
              "request_id": draw(st.one_of(st.just("r"), st.text(min_size=1, max_size=4))),
              "features": {k: draw(good_scalars) for k in names},
              "predictions": preds}
    if draw(st.booleans()):
        record["label"] = draw(good_scalars)
    if draw(st.booleans()):
        record["latency_ms"] = draw(st.one_of(st.floats(0, 1e3), st.integers(0, 10**6), st.none()))
    return record


bad_values = {
    "model": st.sampled_from(["", 5, None, True, ["m"]]),
    "model_version": st.one_of(st.sampled_from(["", True, 1.5, None]), st.integers(2**63, 2**70)),
    "timestamp": st.one_of(rfc3339, broken_text, st.integers(-10, -1), st.integers(2**62, 2**70),
                           st.floats(allow_nan=False), st.booleans(), st.none()),
    "request_id": st.sampled_from(["", 7, None, {"id": 1}]),
    "features": st.one_of(st.just([1]), st.just("x"),
                          st.dictionaries(feature_names, st.one_of(st.integers(2**63, 2**80),
                                          st.just([1]), st.just({"k": 1}), st.just(1e308)), min_size=1)),
    "predictions": st.one_of(st.just("yes"), st.just({"proba": [0.1, True]}), st.just({"proba": [0.2, "x"]}),
                             st.just({"proba": [2**70]}), st.just({"proba[0]": 0.5, "proba": [0.1]}),
                             st.just({"cls": {"a": 1}}), st.just({"p": [0.1] * 150})),
    "label": st.sampled_from([[1], {"a": 1}, 2**70, -2**64, 1.5, False]),
    "latency_ms": st.sampled_from([-1, -0.5, 1e308, 2**1030, 10**400, True, "3", [1]]),
}


@st.composite
def records_strategy(draw) -> dict:
    """Mostly good records, some with one or two fields broken (or dropped)."""
    record = draw(good_records())
    for _ in range(draw(st.sampled_from([0] * 6 + [1] * 3 + [2]))):
        field = draw(st.sampled_from(sorted(bad_values)))
        if draw(st.integers(0, 5)) == 0:
            record.pop(field, None)
        else:
            record[field] = draw(bad_values[field])
    return record


records = records_strategy()


def _encode(record: dict, how: int) -> bytes | None:
    if how == 0:
        return json.dumps(record, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == 1:
        return json.dumps(record).encode()  # non-ASCII as \u escapes
    raw = json.dumps(record).encode()
    return [b"", None, raw[: len(raw) // 2], b"\xff" + raw, b"[" + raw + b"]", raw + b" x",
            raw.replace(b"{", b"{\"features\": 1, ", 1), raw.replace(b": ", b": NaN, \"x\": ", 1)][how - 2]


messages_strategy = st.lists(st.tuples(records, st.sampled_from([0] * 8 + [1] * 4 + list(range(2, 10)))),
                             min_size=1, max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages_strategy, st.sampled_from([None, 1_456_790_400_000, 10**16]), st.sampled_from([3, 100]))
def test_batch_path_agrees_with_the_rule_book(items, max_event_time_ms, max_features):
    messages = [Message("t", 0, i, _encode(r, how)) for i, (r, how) in enumerate(items)]
    assert_same_decoding(messages, 1 << 20, max_features, max_event_time_ms)


@settings(max_examples=300, deadline=None)
@given(st.lists(good_records(), min_size=1, max_size=40))
def test_batch_path_agrees_on_good_records(items):
    assert_same_decoding([Message("t", 0, i, json.dumps(r).encode()) for i, r in enumerate(items)])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(rfc3339, broken_text), min_size=1, max_size=20))
def test_timestamp_layouts_agree_with_fromisoformat(stamps):
    batch = [Message("t", 0, i, json.dumps({**GOOD, "timestamp": t}).encode()) for i, t in enumerate(stamps)]
    assert_same_decoding(batch)


def test_uniform_batch_takes_no_careful_path(monkeypatch):
    # every record of a well-formed batch is read by the batch path alone
    import collector.decode as decode

    monkeypatch.setattr(decode, "_decode_one", lambda *a: pytest.fail("careful path used"))
    rows = [{**GOOD, "request_id": f"r{i}", "timestamp": t} for i, t in enumerate(
        ["2016-03-01T00:00:00.250Z", "2016-03-01 00:00:00+01:00", "2016-03-01T00:00:00.123456-08:00",
         "2016-03-01T00:00:00Z", "2016-03-01T00:00:00.5+05:30"])]
    batch = decode_json_batch([msg(r, i) for i, r in enumerate(rows)], 1 << 20, 100)
    assert list(batch.frame["event_time_ms"]) == [1456790400250, 1456786800000, 1456819200123,
                                                  1456790400000, 1456770600500]


def test_mixed_layouts_keep_input_order_and_first_appearance_column_order():
    a = {**GOOD, "features": {"x": 1, "y": "u"}, "predictions": {"p": 0.5}}
    b = {**GOOD, "model": "n", "features": {"z": 2.5, "x": 3}, "predictions": {"proba": [0.1, 0.9]}}
    c = {**GOOD, "model_version": 4, "timestamp": 1456790400000.5, "features": {"y": True}, "predictions": {}}
    bad = {**GOOD, "features": {"x": [1]}}
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate([a, b, bad, c, a, b])])
    f = batch.frame
    assert list(f.columns[6:]) == ["features.x", "features.y", "predictions.p", "features.z",
                                   "predictions.proba[0]", "predictions.proba[1]"]
    assert list(f["model"]) == ["m", "n", "m", "m", "n"]
    assert list(f["model_version"]) == ["3", "3", "4", "3", "3"]
    assert [None if pd.isna(v) else v for v in f["features.y"]] == ["u", None, "true", "u", None]
    assert [r.reason for r in batch.rejected] == [RejectReason.WRONG_TYPE]


def test_tombstones_escapes_and_big_integers_agree():
    raw = json.dumps(GOOD).encode()
    batch = assert_same_decoding([
        Message("t", 0, 0, None), msg(GOOD, 1), Message("t", 0, 2, raw.replace(b'"MA"', b'"\\u0000"')),
        Message("t", 0, 3, raw.replace(b'"MA"', b'"caf\\u00e9"')), msg({**GOOD, "features": {"n": 2**64}}, 4),
        msg({**GOOD, "model_version": 2**70}, 5), msg({**GOOD, "label": 10**30}, 6)])
    assert [r.message.offset for r in batch.rejected] == [0, 2]
    assert list(batch.frame["features.state"])[:2] == ["MA", "café"]
    assert list(batch.frame["model_version"])[-2:] == [str(2**70), "3"]
    assert batch.frame["label"].iloc[-1] == str(10**30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages_strategy, st.sampled_from([1, 2, 3, 5, 4096]), st.sampled_from([1, 2, 64]))
def test_batches_read_in_chunks_agree_with_the_rule_book(items, chunk, layout_run):
    # small chunks, and short runs of one layout read as structs before the rest
    import collector.decode as decode

    messages = [Message("t", 0, i, _encode(r, how)) for i, (r, how) in enumerate(items)]
    saved = decode._CHUNK, decode._MIN_LAYOUT_RUN
    decode._CHUNK, decode._MIN_LAYOUT_RUN = chunk, layout_run
    try:
        assert_same_decoding(messages)
    finally:
        decode._CHUNK, decode._MIN_LAYOUT_RUN = saved


@settings(max_examples=200, deadline=None)
@given(st.lists(good_records(), min_size=1, max_size=40), st.sampled_from([1, 2, 3]))
def test_good_records_in_layout_runs_agree_with_the_rule_book(items, layout_run):
    import collector.decode as decode

    saved, decode._MIN_LAYOUT_RUN = decode._MIN_LAYOUT_RUN, layout_run
    try:
        assert_same_decoding([Message("t", 0, i, json.dumps(r).encode()) for i, r in enumerate(items)])
    finally:
        decode._MIN_LAYOUT_RUN = saved


def test_column_types_are_decided_per_model():
    # model m sends age as a number, model n as text: m's column stays numeric in m's frame
    rows = [{**GOOD, "features": {"age": 41, "zip": "02139"}}, {**GOOD, "model": "n", "features": {"age": "old"}},
            {**GOOD, "features": {"age": 42.5}}, {**GOOD, "model": "n", "features": {"age": None, "car": True}}]
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate(rows)])
    assert list(batch.frame["features.age"])[:3] == ["41", "old", "42.5"]  # the whole batch as one frame: text
    m, n = batch.frames
    assert list(m["model"]) == ["m", "m"] and list(n["model"]) == ["n", "n"]
    assert m["features.age"].dtype == np.float64 and list(m["features.age"]) == [41.0, 42.5]
    assert list(m.columns[6:]) == ["features.age", "features.zip", "predictions.cls", "predictions.p",
                                   "predictions.proba[0]", "predictions.proba[1]"]
    assert [None if pd.isna(v) else v for v in n["features.age"]] == ["old", None]
    assert "features.zip" not in n.columns and "features.car" not in m.columns
    # one model: its frame is the batch's frame
    single = decode_json_batch([msg(GOOD, 0), msg(GOOD, 1)], 1 << 20, 100)
    assert len(single.frames) == 1 and single.frames[0] is single.frame
    assert decode_json_batch([msg(b"x", 0)], 1 << 20, 100).frames == []


def test_repeated_and_unknown_keys_agree():
    # the batch parser reads only the record's own fields: the last of repeated keys wins, as in json
    raw = json.dumps(GOOD).encode()
    batch = assert_same_decoding([
        msg(raw.replace(b"{", b'{"model": "x", "extra": {"deep": [1, {"a": null}]}, ', 1), 0),
        msg(raw.replace(b'"label": true', b'"label": true, "label": "late"'), 1),
        msg(raw[:-1] + b', "model": "last", "features": {"age": 7}}', 2),
        msg(raw.replace(b'"request_id": "r1", ', b""), 3)])
    assert list(batch.frame["model"]) == ["m", "m", "last"]
    assert list(batch.frame["label"]) == ["true", "late", "true"]
    assert list(batch.frame["features.age"]) == [41.0, 41.0, 7.0]
    assert [(r.message.offset, r.reason) for r in batch.rejected] == [(3, RejectReason.MISSING_FIELD)]


def test_records_of_one_layout_keep_each_rows_own_key_order():
    # parsed by the layout of the first record: the columns still follow the first accepted
    # row's own key order, per batch and per model
    a = {**GOOD, "features": {"age": 1, "state": "MA"}, "predictions": {"p": 0.1, "proba": [0.2, 0.8]}}
    b = {**GOOD, "features": {"state": "NY", "age": 2}, "predictions": {"proba": [0.3, 0.7], "p": 0.2}}
    late = {**a, "timestamp": "yesterday"}
    rows = [late, b, a, {**a, "model": "n"}, {**b, "model": "n"}]
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate(rows)])
    assert list(batch.frame.columns[6:]) == ["features.state", "features.age", "predictions.proba[0]",
                                             "predictions.proba[1]", "predictions.p"]
    assert list(batch.frames[1].columns[6:]) == ["features.age", "features.state", "predictions.p",
                                                 "predictions.proba[0]", "predictions.proba[1]"]
    # same keys, lists of another length: parsed again into dicts, same result
    short = {**a, "predictions": {"p": 0.1, "proba": [1.0]}}
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate([a, short, b, {**a, "features": {"age": 3}}])])
    assert list(batch.frame["predictions.proba[1]"].isna()) == [False, True, False, False]


# --- the optional serving object ------------------------------------------------------------

SERVING = {"status_code": 200, "replica": "vllm-0", "queue_ms": 1.5, "prompt_tokens": 412, "completion_tokens": 37,
           "time_to_first_token_ms": 80, "batch_size": 4, "finish_reason": "stop", "endpoint": "/v1/completions"}


def _text_values(column) -> list:
    return [None if pd.isna(v) else v for v in column]


def test_serving_object_becomes_serving_columns():
    rows = [{**GOOD, "serving": SERVING},
            {**GOOD, "request_id": "r2", "serving": {"status_code": 503, "replica": "vllm-1", "queue_ms": None,
                                                     "inter_token_latency_ms": [3, 4]}},
            {**GOOD, "request_id": "r3"},
            {**GOOD, "request_id": "r4", "serving": None}]
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate(rows)])
    f = batch.frame
    assert batch.rejected == []
    serving = [c for c in f.columns if c.startswith("serving.")]
    # after the features and predictions, in the documented key order; unknown keys ignored
    assert serving == ["serving." + k for k in SERVING] and list(f.columns[-len(serving):]) == serving
    for name in ("status_code", "queue_ms", "prompt_tokens", "completion_tokens", "time_to_first_token_ms",
                 "batch_size"):
        assert f["serving." + name].dtype == np.float64
    for name in ("replica", "finish_reason", "endpoint"):  # text, as other text columns
        assert pd.api.types.is_string_dtype(f["serving." + name])
    assert f["serving.status_code"].tolist()[:2] == [200.0, 503.0] and f["serving.status_code"][2:].isna().all()
    assert _text_values(f["serving.replica"]) == ["vllm-0", "vllm-1", None, None]
    assert f["serving.queue_ms"][0] == 1.5 and f["serving.queue_ms"][1:].isna().all()
    assert f["serving.prompt_tokens"][0] == 412.0 and f["serving.time_to_first_token_ms"][0] == 80.0
    assert _text_values(f["serving.finish_reason"]) == ["stop", None, None, None]


def test_records_without_serving_have_no_serving_columns():
    batch = assert_same_decoding([msg(GOOD, 0), msg({**GOOD, "serving": {}}, 1), msg({**GOOD, "serving": None}, 2)])
    assert len(batch.frame) == 3 and not any(c.startswith("serving.") for c in batch.frame.columns)


@pytest.mark.parametrize("serving, detail", [
    ("pod-1", "serving: must be an object of name -> value"),
    ([200], "serving: must be an object of name -> value"),
    ({"status_code": 99}, "serving.status_code: must be an integer from 100 to 599"),
    ({"status_code": 600}, "serving.status_code: must be an integer from 100 to 599"),
    ({"status_code": 200.0}, "serving.status_code: must be an integer from 100 to 599"),
    ({"status_code": "200"}, "serving.status_code: must be an integer from 100 to 599"),
    ({"status_code": True}, "serving.status_code: must be an integer from 100 to 599"),
    ({"replica": 3}, "serving.replica: must be a string"),
    ({"queue_ms": -0.5}, "serving.queue_ms: must be a finite number >= 0"),
    ({"queue_ms": "2"}, "serving.queue_ms: must be a finite number >= 0"),
    ({"prompt_tokens": -1}, "serving.prompt_tokens: must be an integer >= 0"),
    ({"prompt_tokens": 12.0}, "serving.prompt_tokens: must be an integer >= 0"),
    ({"completion_tokens": 2**63}, "serving.completion_tokens: must be an integer >= 0"),
    ({"time_to_first_token_ms": [1]}, "serving.time_to_first_token_ms: must be a finite number >= 0"),
    ({"batch_size": 0}, "serving.batch_size: must be an integer >= 1"),
    ({"finish_reason": {"type": "stop"}}, "serving.finish_reason: must be a string"),
    ({"endpoint": False}, "serving.endpoint: must be a string"),
])
def test_wrong_serving_values_are_rejected_naming_the_key(serving, detail):
    batch = assert_same_decoding([msg({**GOOD, "serving": SERVING}, 0), msg({**GOOD, "serving": serving}, 1),
                                  msg(GOOD, 2)])
    assert [(r.message.offset, r.reason, r.detail) for r in batch.rejected] == [(1, RejectReason.WRONG_TYPE, detail)]
    assert len(batch.frame) == 2


def test_serving_edge_values_agree():
    # the batch parser bounds integers to int64 and leaves the rest to the careful path
    raw = json.dumps({**GOOD, "serving": {"queue_ms": 1}}).encode()
    batch = assert_same_decoding([
        msg({**GOOD, "serving": {"queue_ms": 2**70, "batch_size": 2**63 - 1, "status_code": 100}}, 0),
        msg({**GOOD, "serving": {"queue_ms": 1e308, "time_to_first_token_ms": -0.0, "status_code": 599}}, 1),
        Message("t", 0, 2, raw.replace(b'"queue_ms": 1', b'"queue_ms": NaN')),
        Message("t", 0, 3, raw.replace(b'"queue_ms": 1', b'"queue_ms": 1e400')),
        Message("t", 0, 4, raw.replace(b'"queue_ms": 1', b'"replica": "a\\u0000b"')),
        Message("t", 0, 5, raw.replace(b'"queue_ms": 1', b'"replica": "caf\\u00e9", "replica": "last"')),
        msg({**GOOD, "serving": {"prompt_tokens": 10**400}}, 6)])
    assert [r.message.offset for r in batch.rejected] == [2, 3, 4, 6]
    assert batch.frame["serving.queue_ms"].tolist()[:2] == [float(2**70), 1e308]
    assert _text_values(batch.frame["serving.replica"]) == [None, None, "last"]


def test_uniform_serving_batch_takes_no_careful_path(monkeypatch):
    # records of one layout with the same serving keys are read as structs by the batch path alone
    import collector.decode as decode

    monkeypatch.setattr(decode, "_decode_one", lambda *a: pytest.fail("careful path used"))
    rows = [{**GOOD, "request_id": f"r{i}", "serving": {**SERVING, "replica": f"pod-{i % 3}", "prompt_tokens": i}}
            for i in range(decode._MIN_LAYOUT_RUN + 10)]
    batch = decode_json_batch([msg(r, i) for i, r in enumerate(rows)], 1 << 20, 100)
    assert len(batch.frame) == len(rows)
    assert batch.frame["serving.prompt_tokens"].tolist() == [float(i) for i in range(len(rows))]
    assert _text_values(batch.frame["serving.replica"])[:4] == ["pod-0", "pod-1", "pod-2", "pod-0"]


def test_serving_columns_are_decided_per_model():
    # model m's rows carry serving text, model n's none: n's frame has no serving columns
    rows = [{**GOOD, "serving": {"replica": "a", "status_code": 200}}, {**GOOD, "model": "n"},
            {**GOOD, "serving": {"status_code": 500}}, {**GOOD, "model": "n", "serving": {"queue_ms": 3}}]
    batch = assert_same_decoding([msg(r, i) for i, r in enumerate(rows)])
    m, n = batch.frames
    assert _text_values(m["serving.replica"]) == ["a", None] and m["serving.status_code"].tolist() == [200.0, 500.0]
    assert "serving.queue_ms" not in m.columns
    assert [c for c in n.columns if c.startswith("serving.")] == ["serving.queue_ms"]
    assert np.isnan(n["serving.queue_ms"][0]) and n["serving.queue_ms"][1] == 3.0


good_serving_values = {
    "status_code": st.integers(100, 599),
    "replica": texts,
    "queue_ms": st.one_of(st.floats(0, 1e4), st.integers(0, 10**6), st.integers(2**63 - 2, 2**64),
                          st.floats(0, allow_infinity=False)),
    "prompt_tokens": st.one_of(st.integers(0, 10**5), st.integers(2**63 - 3, 2**63 - 1)),
    "completion_tokens": st.integers(0, 10**5),
    "time_to_first_token_ms": st.one_of(st.floats(0, 1e4), st.integers(0, 10**4)),
    "batch_size": st.integers(1, 64),
    "finish_reason": st.sampled_from(["stop", "length", "tool_calls", ""]),
    "endpoint": st.one_of(st.sampled_from(["/v1/completions", "canary"]), texts),
}
bad_serving_values = {
    "status_code": st.sampled_from([99, 600, 200.0, True, "200", [200], -2**64]),
    "replica": st.sampled_from([3, True, ["a"], {"a": 1}]),
    "queue_ms": st.sampled_from([-1, -0.5, True, "3", 10**400, 2**1030]),
    "prompt_tokens": st.sampled_from([-1, 1.0, 2**63, 2**70, False, "5"]),
    "completion_tokens": st.sampled_from([-3, 0.5]),
    "time_to_first_token_ms": st.sampled_from([-1e-9, [1.0], None]),
    "batch_size": st.sampled_from([0, -1, 1.5, 2**63]),
    "finish_reason": st.sampled_from([1, None, {"a": "b"}]),
    "endpoint": st.sampled_from([False, 0.5]),
}
unknown_serving = st.dictionaries(st.sampled_from(["inter_token_latency_ms", "model_id", "x"]),
                                  st.one_of(good_scalars, st.just([1, {"a": None}])), max_size=2)


@st.composite
def serving_batches(draw) -> list[dict]:
    """Records of which most carry a serving object with the batch's keys (sometimes some null,
    missing, unknown or broken), a few none or one of another shape."""
    keys = draw(st.lists(st.sampled_from(sorted(good_serving_values)), unique=True, min_size=1, max_size=9))
    out = []
    for _ in range(draw(st.integers(1, 12))):
        record = draw(good_records())
        kind = draw(st.sampled_from(["same"] * 6 + ["subset", "none", "null", "other", "bad", "not_object"]))
        if kind == "none":
            out.append(record)
            continue
        if kind == "null":
            record["serving"] = None
        elif kind == "not_object":
            record["serving"] = draw(st.sampled_from(["pod", [1], 5, True]))
        else:
            names = keys if kind in ("same", "bad") else draw(st.lists(st.sampled_from(sorted(good_serving_values)),
                                                                       unique=True, max_size=9))
            if kind == "subset":
                names = [k for k in names if draw(st.booleans())]
            serving = {k: draw(good_serving_values[k]) for k in draw(st.permutations(names))}
            if kind == "bad":
                k = draw(st.sampled_from(sorted(bad_serving_values)))
                serving[k] = draw(bad_serving_values[k])
            if draw(st.integers(0, 4)) == 0:
                serving.update(draw(unknown_serving))
            record["serving"] = serving
        out.append(record)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serving_batches(), st.lists(st.sampled_from([0] * 8 + [1] * 4 + list(range(2, 10))), min_size=12,
                                   max_size=12), st.sampled_from([3, 100]))
def test_batch_path_agrees_with_the_rule_book_on_serving(items, encodings, max_features):
    messages = [Message("t", 0, i, _encode(r, how)) for i, (r, how) in enumerate(zip(items, encodings))]
    assert_same_decoding(messages, 1 << 20, max_features)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(serving_batches(), st.sampled_from([1, 2, 3, 5, 4096]), st.sampled_from([1, 2, 64]))
def test_serving_batches_read_in_chunks_and_layout_runs_agree(items, chunk, layout_run):
    import collector.decode as decode

    saved = decode._CHUNK, decode._MIN_LAYOUT_RUN
    decode._CHUNK, decode._MIN_LAYOUT_RUN = chunk, layout_run
    try:
        assert_same_decoding([Message("t", 0, i, json.dumps(r).encode()) for i, r in enumerate(items)])
    finally:
        decode._CHUNK, decode._MIN_LAYOUT_RUN = saved
