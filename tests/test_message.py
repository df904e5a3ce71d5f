"""Messages from kafka-python's consumer records: every field carried over, immutable."""

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from collector.kafka_source import to_messages
from collector.message import Message


def test_consumer_records_become_messages_field_by_field():
    records = [ConsumerRecord("preds", 3, 0, 41, 1_700_000_000_123, 0, b"k", b"{}", [("ce_type", b"x"), ("h", None)],
                              None, 1, 2, 10),
               ConsumerRecord("preds", 3, 0, 42, 1_700_000_000_124, 0, None, None, [], None, -1, -1, -1)]
    first, tombstone = to_messages(records)
    assert first == Message("preds", 3, 41, b"{}", b"k", (("ce_type", b"x"), ("h", None)), 1_700_000_000_123)
    assert (first.topic, first.partition, first.offset, first.timestamp_ms) == ("preds", 3, 41, 1_700_000_000_123)
    assert type(first) is Message and type(first.headers) is tuple
    assert tombstone == Message("preds", 3, 42, None, None, (), 1_700_000_000_124) and tombstone.headers == ()
    assert to_messages([]) == []


def test_messages_are_immutable_values():
    m = Message("t", 0, 5, b"x")
    assert (m.key, m.headers, m.timestamp_ms) == (None, (), None)
    with pytest.raises(AttributeError):
        m.offset = 6
    assert m == Message("t", 0, 5, b"x") and hash(m) == hash(Message("t", 0, 5, b"x"))
    assert m._replace(offset=6).offset == 6 and m.offset == 5
