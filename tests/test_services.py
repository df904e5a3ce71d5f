"""The real services behind the test fixtures work end to end."""

from __future__ import annotations

import time
import uuid

import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def unique_topic(prefix: str) -> str:
    """A topic name no other test (or earlier run on the same broker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Send *values* to *topic* and wait until the broker acknowledged all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, value=v) for v in values]
        producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)


def consume(bootstrap: str, topic: str, count: int, timeout: float = 60.0) -> list[bytes]:
    """Read *count* values of *topic* from the beginning (fails after *timeout* s)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=1000).values():
                values.extend(r.value for r in records)
    finally:
        consumer.close()
    return values


@pytest.mark.kafka
def test_kafka_round_trip_100_messages(kafka_bootstrap):
    topic = unique_topic("roundtrip")  # auto-created on first produce
    sent = [f"message-{i:03d}-{uuid.uuid4().hex}".encode() for i in range(100)]

    produce(kafka_bootstrap, topic, sent)

    # One partition, so order is preserved too.
    assert consume(kafka_bootstrap, topic, len(sent)) == sent


@pytest.mark.kafka
def test_kafka_restart_keeps_data(kafka_broker):
    bootstrap = kafka_broker.bootstrap_servers
    topic = unique_topic("restart")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    before = [f"before-{i}".encode() for i in range(20)]
    produce(bootstrap, topic, before)

    kafka_broker.restart()

    assert kafka_broker.bootstrap_servers == bootstrap
    assert consume(bootstrap, topic, len(before)) == before
    # The broker also takes new writes after the restart.
    after = [f"after-{i}".encode() for i in range(5)]
    produce(bootstrap, topic, after)
    assert consume(bootstrap, topic, len(before) + len(after)) == before + after


def test_db_round_trip(db_url):
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            conn.execute(sa.text("create table probe (id integer primary key, name text)"))
            conn.execute(
                sa.text("insert into probe (id, name) values (:id, :name)"),
                [{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id, name from probe order by id")).all()
        assert [tuple(r) for r in rows] == [(1, "alpha"), (2, "beta")]
    finally:
        engine.dispose()


def test_db_url_is_isolated_per_test(db_url):
    # The previous test's table must not exist in this test's fresh database.
    engine = sa.create_engine(db_url)
    try:
        assert "probe" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
