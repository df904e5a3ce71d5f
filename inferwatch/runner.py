"""Composes the stages into the running service (Kafka) and the in-process replay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import islice

import sqlalchemy.exc
from kafka.errors import KafkaTimeoutError

from collector.dead_letter import KafkaDeadLetter
from collector.decode import Rejected
from collector.kafka_source import KafkaSource
from collector.message import Message
from inferwatch.config import Settings
from inferwatch.metrics import Metrics
from inferwatch.pipeline import ClosedWindow, Pipeline
from inferwatch.store import Store

log = logging.getLogger(__name__)

OnClosed = Callable[[list[ClosedWindow]], None]


class StartupError(RuntimeError):
    """A dependency could not be reached at start; the message names the config key."""


def open_store(settings: Settings) -> Store:
    """Connect to the configured database and create the schema if needed.

    Raises:
        StartupError: the URL is malformed or the database cannot be reached.
    """
    try:
        store = Store(settings.database_url)
        store.create_schema()
    except (sqlalchemy.exc.ArgumentError, ValueError, ImportError) as exc:
        raise StartupError(f"database_url: {exc}") from None
    except sqlalchemy.exc.OperationalError as exc:
        raise StartupError(f"database_url: cannot connect: {str(exc.orig).strip()}") from None
    return store


def start_metrics(settings: Settings) -> tuple[Metrics, int | None]:
    """Metric families, served on ``/metrics`` when enabled; returns them and the bound port.

    Raises:
        StartupError: the port is taken or the host is not an address of this machine.
    """
    metrics = Metrics()
    try:
        port = metrics.serve(settings.metrics.host, settings.metrics.port) if settings.metrics.enabled else None
    except OSError as exc:
        raise StartupError(f"metrics.port: cannot listen on {settings.metrics.host}:{settings.metrics.port}: "
                           f"{exc.strerror or exc} (pick another port, or 0 for any free one)") from None
    if port is not None:
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    return metrics, port


def run_kafka(settings: Settings, stop: threading.Event, on_closed: OnClosed | None = None) -> None:
    """Consume the configured topics until ``stop`` is set, then leave the group cleanly.

    Every polled batch is stored (with its offsets) before the next poll, so stopping at any
    moment loses nothing and counts nothing twice.
    """
    k = settings.kafka
    store = open_store(settings)
    try:
        dead_letter = KafkaDeadLetter(k.bootstrap_servers, k.dead_letter_topic, k.client_options)
        source = KafkaSource(k.bootstrap_servers, k.topics, k.group_id, lambda: store.load_offsets(k.group_id),
                             k.auto_offset_reset, k.max_poll_records, k.client_options)
    except KafkaTimeoutError as exc:
        store.close()
        raise StartupError(f"kafka.bootstrap_servers: no broker answered at {k.bootstrap_servers} ({exc})") from None
    metrics, _ = start_metrics(settings)
    pipeline = Pipeline(settings, store, metrics, dead_letter, k.group_id)
    log.info("consuming %s as group %s from %s", ",".join(k.topics), k.group_id, k.bootstrap_servers)
    try:
        while not stop.is_set():
            # the partitions' state before the poll is the one the stored watermarks describe
            states = source.partition_states()
            messages = source.poll(k.poll_timeout_ms)
            closed = pipeline.process(messages, sources=states) if messages else pipeline.tick(sources=states)
            if messages:
                source.commit(messages)
            if closed and on_closed:
                on_closed(closed)
    finally:
        source.close()
        dead_letter.close()
        metrics.stop()
        store.close()
        log.info("stopped")


def log_dead_letter(rejected: Sequence[Rejected]) -> None:
    """Dead-letter sink for in-process sources: logs each rejected record with its reason."""
    for r in rejected:
        log.warning("rejected %s:%d@%d (%s): %s", r.message.topic, r.message.partition, r.message.offset,
                    r.reason.value, r.detail)


def run_in_process(settings: Settings, payloads: Iterable[bytes], store: Store, metrics: Metrics,
                   source_name: str = "in-process", batch_size: int = 5000,
                   on_closed: OnClosed | None = None) -> Pipeline:
    """Feed encoded records through the same decoders, windows and detectors as the Kafka path,
    then close every window at the end of the input.

    Args:
        payloads: encoded records (bytes), in order.
        source_name: the topic name recorded with the offsets.
    """
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, group_id=source_name)
    start = store.load_offsets(source_name).get((source_name, 0), 0)
    it = iter(payloads)
    offset = 0
    # skip what an earlier run of the same source already stored
    for _ in islice(it, start):
        offset += 1
    while True:
        chunk = list(islice(it, batch_size))
        if not chunk:
            break
        messages = [Message(source_name, 0, offset + i, value) for i, value in enumerate(chunk)]
        offset += len(chunk)
        closed = pipeline.process(messages)
        if closed and on_closed:
            on_closed(closed)
    closed = pipeline.close_all()
    if closed and on_closed:
        on_closed(closed)
    return pipeline
