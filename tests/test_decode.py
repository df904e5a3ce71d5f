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
