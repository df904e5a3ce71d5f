"""Windows of an idle model close on wall-clock time, by the service's APScheduler job, while the
poll loop keeps processing another model's records: first with the job and a real scheduler in
process (the batches fed as the poll loop feeds them), then ``inferwatch run`` end to end."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from kafka import KafkaProducer

from collector.kafka_source import KafkaSource
from collector.message import Message
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.runner import KafkaService, idle_check_seconds, log_dead_letter, open_store
from inferwatch.store import Store

from e2e import Service, create_topic, free_port, produce, wait_for, write_config

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the idle model's window ended long ago
HOUR = 3_600_000

pytestmark = pytest.mark.kafka


def record(model: str, t_ms: int, i: int) -> bytes:
    return json.dumps({"model": model, "model_version": "1", "timestamp": t_ms, "request_id": f"{model}-{i}",
                       "features": {"x": i % 7}, "predictions": {"p": 0.5}}).encode()


@pytest.fixture
def service(tmp_path, kafka_bootstrap):
    """A KafkaService on SQLite whose poll loop the test plays itself (its job and scheduler are
    the real ones); the consumer is subscribed but never polled."""
    topic = f"idle-{uuid.uuid4().hex[:8]}"
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'idle.db'}",
                           kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": f"g-{topic}"},
                           window={"length_seconds": 3600, "idle_close_seconds": 1},
                           metrics={"enabled": False})
    store = open_store(settings)
    source = KafkaSource(kafka_bootstrap, [topic], f"g-{topic}", lambda: {})
    closed_by: list[tuple[str, str, str]] = []  # (thread, model, close reason)

    def on_closed(windows):
        closed_by.extend((threading.current_thread().name, w.key.model, w.reason) for w in windows)

    svc = KafkaService(settings, store, Metrics(), source, log_dead_letter, threading.Event(), on_closed)
    svc.closed_by = closed_by
    svc.topic = topic
    yield svc
    if svc.scheduler.running:
        svc.scheduler.shutdown(wait=True)
    source.close()
    store.close()


def feed(svc: KafkaService, messages: list[Message]) -> None:
    """One poll-loop turn with these messages, its only partition caught up."""
    closed, failure = svc.process_batch({(svc.topic, 0): True}, {(svc.topic, 0)}, messages)
    assert failure is None
    if closed:
        svc.on_closed(closed)


def idle_windows(svc: KafkaService) -> list[tuple[str, int, int, str]]:
    w = svc.store.list_windows()
    return [(r.model, int(r.window_start_ms), int(r.record_count), r.close_reason) for r in w.itertuples()]


def test_an_idle_models_window_closes_while_another_model_streams(service):
    """The job and the poll loop share the pipeline under one lock; whichever finds the window
    due first closes it (a batch closes due windows too), once."""
    svc = service
    assert idle_check_seconds(svc.settings) == 0.25  # a quarter of idle_close_seconds
    offset = 0

    def next_messages(model: str, times: list[int]) -> list[Message]:
        nonlocal offset
        out = [Message(svc.topic, 0, offset + i, record(model, t, offset + i)) for i, t in enumerate(times)]
        offset += len(out)
        return out

    feed(svc, next_messages("idle-model", [T0 + i * 1000 for i in range(40)]))
    svc.scheduler.start()
    streaming = threading.Event()
    stop = threading.Event()

    def stream_live_model():
        streaming.set()
        while not stop.is_set():
            now = int(time.time() * 1000)
            feed(svc, next_messages("live-model", [now - 5, now]))
            time.sleep(0.02)

    feeder = threading.Thread(target=stream_live_model, name="poll-loop")
    feeder.start()
    try:
        streaming.wait(5)
        wait_for(lambda: any(m == "idle-model" for m, *_ in idle_windows(svc)), 20, "the idle model's window")
        assert feeder.is_alive()  # the other model never stopped
    finally:
        stop.set()
        feeder.join(10)
    assert idle_windows(svc)[:1] == [("idle-model", T0, 40, "idle")]
    assert [(m, r) for _t, m, r in svc.closed_by if m == "idle-model"] == [("idle-model", "idle")]
    # every live record counted: in a window still open or closed
    with svc.store.transaction() as conn:
        live_open = sum(n for (m, *_), n in svc.store.open_windows(conn).items() if m == "live-model")
    live_closed = sum(n for m, _s, n, _r in idle_windows(svc) if m == "live-model")
    assert live_open + live_closed == offset - 40


def test_the_job_alone_closes_it_and_skips_while_consumption_is_paused(service):
    svc = service
    feed(svc, [Message(svc.topic, 0, i, record("idle-model", T0 + i * 1000, i)) for i in range(25)])
    svc.source.pause()  # an outage: the job must leave the pipeline alone
    svc.scheduler.start()
    time.sleep(2.0)  # eight turns of the job, twice the idle time
    assert idle_windows(svc) == []
    svc.source.rewind({})  # the outage is over
    wait_for(lambda: idle_windows(svc), 10, "the idle model's window")
    assert idle_windows(svc) == [("idle-model", T0, 25, "idle")]
    # closed by the scheduler's thread: nothing else ran
    assert [(m, r) for _t, m, r in svc.closed_by] == [("idle-model", "idle")]
    assert svc.closed_by[0][0] != threading.main_thread().name


def test_inferwatch_run_closes_an_idle_models_window_while_another_model_streams(tmp_path, kafka_bootstrap):
    topic = f"idle-e2e-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, 1)
    produce(kafka_bootstrap, topic, [record("idle-model", T0 + i * 1000, i) for i in range(30)])
    db_url = f"sqlite:///{tmp_path / 'idle.db'}"
    cfg = write_config(tmp_path / "inferwatch.yaml", database_url=db_url,
                       kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": f"g-{topic}",
                              "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200},
                       window={"length_seconds": 3600, "idle_close_seconds": 2}, metrics={"port": free_port()})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    stop, sent = threading.Event(), [0]

    def stream_live_model():
        while not stop.is_set():
            producer.send(topic, record("live-model", int(time.time() * 1000), sent[0]))
            sent[0] += 1
            time.sleep(0.02)
        producer.flush()

    service = Service(cfg, tmp_path / "service.log").start()
    streamer = threading.Thread(target=stream_live_model)
    streamer.start()
    try:
        store = Store(db_url)
        store.create_schema()

        def consumed() -> int:
            return sum(store.load_offsets(f"g-{topic}").values())

        wait_for(lambda: not store.list_windows().empty or not service.running(), 30, "the idle model's window")
        at_close = consumed()
        wait_for(lambda: consumed() > at_close + 20 or not service.running(), 15, "the live model still consumed")
        assert service.running(), service.log()
        windows = store.list_windows()
        assert list(zip(windows.model, windows.record_count, windows.close_reason)) == [("idle-model", 30, "idle")]
        store.close()
    finally:
        stop.set()
        streamer.join(10)
        producer.close()
        code = service.stop()
    assert code == 0, service.log()
