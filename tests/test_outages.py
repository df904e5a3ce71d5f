"""Outages of the service's dependencies, end to end: ``inferwatch run`` as a real process, the
real broker and a real PostgreSQL server, each stopped mid-stream and started again.

Each test owns the dependency it stops (its own PostgreSQL server or its own broker), so the
session's shared services are never disturbed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

import pytest
from kafka import KafkaConsumer, TopicPartition

import postgres_local
import kafka_local
from conftest import start_or_bail
from inferwatch.store import Store

from e2e import Service, create_topic, free_port, produce, wait_for, write_config

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def records(first: int, n: int, model: str = "m") -> list[dict]:
    """The service's own JSON record, one per second of event time from ``T0 + first`` s."""
    return [{"model": model, "model_version": "1", "timestamp": T0 + i * 1000, "request_id": f"r{i}",
             "features": {"x": i % 97, "c": "abc"[i % 3]}, "predictions": {"p": (i % 10) / 10}}
            for i in range(first, first + n)]


def expected(recs: list[dict]) -> Counter:
    """Records per hourly window start."""
    return Counter((r["timestamp"] - T0) // HOUR * HOUR + T0 for r in recs)


def stored_counts(store: Store) -> Counter:
    return Counter({int(r.window_start_ms): int(r.record_count) for r in store.list_windows().itertuples()})


def config(tmp_path, db_url: str, bootstrap: str, topic: str, **kafka):
    return write_config(
        tmp_path / "inferwatch.yaml", database_url=db_url,
        kafka={"bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"g-{topic}",
               "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200, "max_poll_records": 50,
               "outage_retry_initial_seconds": 0.2, "outage_retry_max_seconds": 1.0, **kafka},
        window={"length_seconds": 3600, "origin": "2024-01-01T00:00:00Z", "idle_close_seconds": 2},
        reference={"bootstrap_records": 1000}, metrics={"port": free_port()})


def our_tracebacks(log_text: str) -> list[str]:
    """The log lines of inferwatch's own loggers followed by a traceback (kafka-python logs some
    of its reconnect errors with one)."""
    out, last = [], ""
    for line in log_text.splitlines():
        if re.match(r"\d{4}-\d\d-\d\d ", line):
            last = line
        elif line.startswith("Traceback") and " kafka." not in last:
            out.append(last)
    return out


def encode(recs: list[dict]) -> list[bytes]:
    return [json.dumps(r).encode() for r in recs]


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test alone: stopping it disturbs nobody."""
    server = start_or_bail(postgres_local.PostgresServer(start_timeout=30), "PostgreSQL server")
    yield server
    server.cleanup()


@pytest.fixture
def own_broker():
    """A Kafka broker of this test alone: restarting it disturbs nobody."""
    broker = start_or_bail(kafka_local.KafkaBroker(start_timeout=60), "Kafka broker")
    yield broker
    broker.cleanup()


def test_database_outage_pauses_consumption_and_resumes_with_exact_counts(tmp_path, own_postgres, kafka_bootstrap):
    topic = f"db-outage-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, 2)
    before, during = records(0, 12_000), records(12_000, 6_000)
    produce(kafka_bootstrap, topic, encode(before), keyed=True)
    cfg = config(tmp_path, own_postgres.url, kafka_bootstrap, topic)
    store = Store(own_postgres.url)
    store.create_schema()
    group = f"g-{topic}"

    def progress() -> int:
        return sum(store.load_offsets(group).values())

    service = Service(cfg, tmp_path / "service.log").start()
    try:
        wait_for(lambda: progress() >= 1500 or not service.running(), 60, "some stored progress")
        own_postgres.stop()  # fast shutdown: the open transaction is cut off
        store.close()
        stopped_at = time.monotonic()
        # records keep arriving while the database is down
        produce(kafka_bootstrap, topic, encode(during), keyed=True)
        wait_for(lambda: "database unavailable" in service.log() or not service.running(), 20,
                 "the outage to be noticed")
        while time.monotonic() - stopped_at < 12:
            assert service.running(), service.log()
            time.sleep(0.5)
        own_postgres.start()
        wait_for(lambda: "outage over" in service.log() or not service.running(), 30, "consumption to resume")
        everything = before + during
        wait_for(lambda: sum(stored_counts(store).values()) >= len(everything) or not service.running(), 90,
                 "every record in a closed window")
        assert service.running(), service.log()
    finally:
        code = service.stop()
    assert code == 0, service.log()

    # every record counted exactly once, in its own window, and every offset stored
    assert stored_counts(store) == expected(everything)
    assert progress() == len(everything)
    text = (tmp_path / "service.log").read_text()
    assert not our_tracebacks(text), text[-4000:]
    # one line per attempt with the next delay: about 12 s of outage at delays of at most 1 s
    retries = re.findall(r"database still unavailable \(.*\): next attempt in (\d+\.\d) s", text)
    assert 3 <= len(retries) <= 30, text[-4000:]
    assert max(float(d) for d in retries) == 1.0
    store.close()


def test_broker_restart_mid_stream_reconnects_with_exact_counts(tmp_path, own_broker):
    bootstrap = own_broker.bootstrap_servers
    topic = f"broker-restart-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, 2)
    before, after = records(0, 12_000), records(12_000, 6_000)
    broken = [b'{"model": "m", ', b"[1, 2, 3]"]

    def with_broken(recs: list[dict], tag: str) -> list[tuple[bytes, list]]:
        # a few undecodable messages in each half: the dead-letter producer works across the restart
        out = []
        for i, value in enumerate(encode(recs)):
            out.append((value, []))
            if i % 1500 == 700:
                out.extend((b, [("trace-id", f"{tag}-{i}-{j}".encode())]) for j, b in enumerate(broken))
        return out

    first, second = with_broken(before, "before"), with_broken(after, "after")
    produce(bootstrap, topic, first, keyed=True)
    db_url = f"sqlite:///{tmp_path / 'restart.db'}"
    cfg = config(tmp_path, db_url, bootstrap, topic)
    store = Store(db_url)
    store.create_schema()
    group = f"g-{topic}"

    def progress() -> int:
        return sum(store.load_offsets(group).values())

    service = Service(cfg, tmp_path / "service.log").start()
    try:
        wait_for(lambda: progress() >= 1500 or not service.running(), 60, "some stored progress")
        own_broker.restart()  # same port and data
        assert progress() < len(first), "the restart must land mid-stream"
        assert service.running(), service.log()
        produce(bootstrap, topic, second, keyed=True)
        everything = before + after
        wait_for(lambda: sum(stored_counts(store).values()) >= len(everything) or not service.running(), 90,
                 "every record in a closed window")
        # offsets committed to Kafka catch up with the stored ones (read without joining the group)
        reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        try:
            parts = [TopicPartition(topic, p) for p in (0, 1)]
            wait_for(lambda: {(tp.topic, tp.partition): reader.committed(tp) for tp in parts}
                     == store.load_offsets(group), 30, "Kafka commits equal to the stored offsets")
        finally:
            reader.close()
        assert service.running(), service.log()
    finally:
        code = service.stop()
    assert code == 0, service.log()

    assert stored_counts(store) == expected(everything)
    assert progress() == len(first) + len(second)
    # every broken message reached the dead-letter topic (at least once), from both halves
    consumer = KafkaConsumer(f"{topic}.dead-letter", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    dead = [dict(m.headers)["trace-id"].decode() for m in consumer]
    consumer.close()
    sent = [dict(h)["trace-id"].decode() for part in (first, second) for _, h in part if h]
    assert set(dead) == set(sent) and len(dead) >= len(sent)
    assert any(t.startswith("after") for t in dead)
    assert not our_tracebacks((tmp_path / "service.log").read_text())
    store.close()
