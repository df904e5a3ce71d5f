"""Composes the stages into the running service (Kafka) and the in-process replay.

The Kafka service survives outages of its dependencies. When a batch cannot be stored (the
database does not answer) or its rejected messages cannot be dead-lettered (the broker does not
answer), consumption pauses: the consumer keeps polling its paused partitions, so it stays a
member of its group, and the service retries with exponential backoff. Once the database
answers, the pipeline state is rebuilt from the store and every partition is rewound to its
stored offset — the same path as a restart — so nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from itertools import islice

import sqlalchemy.exc
from apscheduler.schedulers.background import BackgroundScheduler
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import (KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError,
                          UnsupportedSaslMechanismError)
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_when_event_set
from threadpoolctl import threadpool_limits

from collector.dead_letter import KafkaDeadLetter
from collector.decode import Rejected
from collector.kafka_source import RECONNECT_BACKOFF_MAX_MS, ClientErrors, KafkaSource
from collector.message import Message
from alerting.outbox import OutboxWorker
from inferwatch.config import KafkaConfig, Settings
from inferwatch.metrics import Metrics
from inferwatch.pipeline import ClosedWindow, Pipeline
from inferwatch.store import Store

log = logging.getLogger(__name__)

#: seconds between two purges of the windows' stored raw values (window.sample_retention_days)
SAMPLE_PURGE_SECONDS = 3600
#: how long one read of the log-end offsets (metrics.lag_interval_seconds) may take; the
#: service's stop waits for a read in progress
LAG_REQUEST_TIMEOUT_MS = 5000

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
    metrics = Metrics(settings.metrics.max_label_values)
    try:
        port = metrics.serve(settings.metrics.host, settings.metrics.port) if settings.metrics.enabled else None
    except OSError as exc:
        raise StartupError(f"metrics.port: cannot listen on {settings.metrics.host}:{settings.metrics.port}: "
                           f"{exc.strerror or exc} (pick another port, or 0 for any free one)") from None
    if port is not None:
        log.info("metrics on http://%s:%d/metrics", settings.metrics.host, port)
    return metrics, port


def serve_api(settings: Settings, store: Store, ready: Callable[[], bool] | None = None):
    """Serve the HTTP API (:mod:`inferwatch.api`) on ``api.host:api.port`` from a daemon
    thread; returns the running :class:`inferwatch.api.ApiServer` (call ``stop()``).

    Raises:
        StartupError: ``api.token`` is unset, or the port is taken or the host not of this machine.
    """
    from inferwatch.api import start_api

    try:
        return start_api(settings, store, ready)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    except OSError as exc:
        raise StartupError(f"api.port: cannot listen on {settings.api.host}:{settings.api.port}: "
                           f"{exc.strerror or exc} (pick another port, or 0 for any free one)") from None


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means a dependency is unavailable for now, so the batch is worth retrying:
    the database connection refused or lost (``OperationalError``, ``InterfaceError``, an
    invalidated connection; for SQLite also "database is locked"), or a Kafka client error
    (broker unreachable, request timed out). Programming and data errors are not."""
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, KafkaError)


def _describe(exc: BaseException) -> tuple[str, str]:
    """(which dependency, the first line of its error) for a log line."""
    what = "Kafka broker" if isinstance(exc, KafkaError) else "database"
    text = str(getattr(exc, "orig", None) or exc).strip()
    return what, (text.splitlines()[0] if text else type(exc).__name__)


def idle_check_seconds(settings: Settings) -> float:
    """How often the wall-clock job reports this member's partitions and looks for windows to
    close: every second, or a quarter of ``window.idle_close_seconds`` when that is shorter."""
    idle = settings.window.idle_close_seconds
    return 1.0 if idle is None else min(1.0, idle / 4)


def kafka_startup_message(k: KafkaConfig, exc: BaseException, seen: Sequence[KafkaError]) -> str:
    """The start-up error for a Kafka client that could not connect, naming the config key at
    fault: the SASL keys when the broker refused the credentials or the mechanism, the TLS keys
    when the handshake failed, else ``kafka.bootstrap_servers``.

    Args:
        exc: what the client raised (usually a :class:`KafkaTimeoutError`).
        seen: errors kafka-python logged while it retried (see :class:`ClientErrors`).
    """
    where = k.bootstrap_servers
    for err in reversed(seen):
        if isinstance(err, SaslAuthenticationFailedError):
            return (f"kafka.sasl_plain_username/kafka.sasl_plain_password: the broker at {where} refused the "
                    f"credentials of user {k.sasl_plain_username!r} ({k.sasl_mechanism}): "
                    f"{str(err).rsplit(': ', 1)[-1]}")
        if isinstance(err, UnsupportedSaslMechanismError):
            return f"kafka.sasl_mechanism: the broker at {where} does not accept {k.sasl_mechanism}: {err}"
        if "Handshake failed" in str(err):
            return (f"kafka.security_protocol/kafka.ssl_cafile: the TLS handshake with {where} failed ({err}); "
                    f"check the CA file, kafka.ssl_check_hostname and that the listener speaks "
                    f"{k.security_protocol}")
    # the broker accepted the connections, then closed them: after a refused login it often
    # closes without the error response reaching the client
    if any("socket disconnected" in str(err) for err in seen):
        if k.security_protocol.startswith("SASL_"):
            return (f"kafka.sasl_plain_username/kafka.sasl_plain_password: the broker at {where} closed every "
                    f"connection while authenticating user {k.sasl_plain_username!r} ({k.sasl_mechanism}): check "
                    f"the user name and password, kafka.sasl_mechanism, and that the listener expects "
                    f"kafka.security_protocol {k.security_protocol}")
        return (f"kafka.security_protocol: the broker at {where} closed every connection: does the listener "
                f"expect {k.security_protocol}? ({exc})")
    return f"kafka.bootstrap_servers: no broker answered at {where} ({exc})"


def connect_kafka(settings: Settings, stored_offsets: Callable[[], dict[tuple[str, int], int]]
                  ) -> tuple[KafkaSource, KafkaDeadLetter]:
    """The consumer and the dead-letter producer, both with ``kafka.client_options`` and the
    security settings of the ``kafka`` section.

    Raises:
        StartupError: a broker did not answer or refused the connection; names the key at fault.
    """
    k = settings.kafka
    try:
        options = k.client_config()
        consumer_options = k.consumer_config()
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    source = None
    with ClientErrors() as seen:
        try:
            source = KafkaSource(k.bootstrap_servers, k.topics, k.group_id, stored_offsets, k.auto_offset_reset,
                                 k.max_poll_records, consumer_options)
            dead_letter = KafkaDeadLetter(k.bootstrap_servers, k.dead_letter_topic, options)
        except KafkaTimeoutError as exc:
            if source is not None:
                source.close()
            raise StartupError(kafka_startup_message(k, exc, seen.errors)) from None
    return source, dead_letter


class KafkaService:
    """The Kafka consumer loop with its wall-clock job and its outage handling.

    The poll loop and an APScheduler interval job (:meth:`close_idle_windows`, every
    :func:`idle_check_seconds`) share the pipeline under one lock: the loop holds it while a batch
    is processed, the job while it closes windows of idle models on wall-clock time.

    Consumer lag is exported by another job (:meth:`export_lag`, every
    ``metrics.lag_interval_seconds``) that reads the log-end offsets of the assigned partitions
    with a Kafka client of its own (:attr:`lag_client`; the consumer is not thread-safe), so the
    lag keeps rising while a slow batch holds up the poll loop.

    Args:
        settings: validated configuration.
        store, metrics: opened by the caller, closed by it too.
        source, dead_letter: connected Kafka clients (see :func:`connect_kafka`).
        stop: set to stop after the current batch.
        on_closed: called with the windows closed by a batch or by the job (from either thread).
    """

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, source: KafkaSource,
                 dead_letter: KafkaDeadLetter, stop: threading.Event, on_closed: OnClosed | None = None) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.source = source
        self.dead_letter = dead_letter
        self.stop = stop
        self.on_closed = on_closed
        self.lock = threading.Lock()
        self.pipeline = Pipeline(settings, store, metrics, dead_letter, settings.kafka.group_id)
        # notifications and hooks leave through their own thread: a receiver that is down
        # never holds up consumption
        self.pipeline.deliver_in_line = False
        self.outbox = OutboxWorker(store, settings.outbox_targets(), settings.alerting.outbox,
                                   on_outcome=metrics.outbox_outcome)
        # partition states seen by the last poll, and every partition of the topics: the job
        # passes them to Pipeline.tick
        self._states: dict[tuple[str, int], bool] = {}
        self._partitions: set[tuple[str, int]] | None = None
        # an error the job met; the loop then recovers (outage) or re-raises it
        self._failure: BaseException | None = None
        self._attempts = 0  # failed attempts since the last stored batch: the backoff exponent
        self._running = False  # the poll loop is running (readiness of the HTTP API)
        self._recovered_at = 0.0
        self.scheduler = BackgroundScheduler(daemon=True)
        self.scheduler.add_job(self.close_idle_windows, "interval", seconds=idle_check_seconds(settings),
                               id="close-idle-windows", max_instances=1, coalesce=True, misfire_grace_time=None)
        if settings.window.sample_retention_days:  # first run at start, then hourly
            self.scheduler.add_job(self.purge_window_samples, "interval", seconds=SAMPLE_PURGE_SECONDS,
                                   next_run_time=datetime.now(timezone.utc), id="purge-window-samples",
                                   max_instances=1, coalesce=True, misfire_grace_time=None)
        # consumer lag, apart from the poll loop: the loop records the assigned partitions and
        # the next offset to process of each, the job reads the log-end offsets
        self._lag_lock = threading.Lock()
        self._next_offsets: dict[tuple[str, int], int | None] = {}
        self._end_offsets: dict[tuple[str, int], int] = {}
        self._lag_failing = False
        #: the client of :meth:`export_lag` (no group), opened by its first run, closed by :meth:`run`
        self.lag_client: KafkaConsumer | None = None
        self._lag_options = {"api_version": source.consumer.config.get("api_version")}
        self.scheduler.add_job(self.export_lag, "interval", seconds=settings.metrics.lag_interval_seconds,
                               id="consumer-lag", max_instances=1, coalesce=True, misfire_grace_time=None)

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until ``stop`` is set. Outages pause and retry; other errors propagate."""
        k = self.settings.kafka
        self.scheduler.start()
        self.outbox.start()
        self._running = True
        try:
            while not self.stop.is_set():
                failure = self._failure or self.source.assignment_error
                if failure is not None:
                    if not is_outage(failure) and failure is self._failure:
                        raise failure
                    self._recover(failure)
                    continue
                # the partitions' state before the poll is the one the stored watermarks describe
                states = self.source.partition_states()
                partitions = self.source.all_partitions()
                try:
                    messages = self.source.poll(k.poll_timeout_ms)
                except KafkaError as exc:
                    self._recover(exc)
                    continue
                self.note_batch(messages)
                closed, failure = self.process_batch(states, partitions, messages)
                if failure is not None:
                    self._recover(failure)
                    continue
                if messages:
                    self.source.commit(messages)
                self.export_positions()
                if closed and self.on_closed:
                    self.on_closed(closed)
        finally:
            self._running = False
            self.scheduler.shutdown(wait=True)
            self.close_lag_client()
            self.outbox.close()

    def ready(self) -> bool:
        """Whether the poll loop is consuming: started, not stopping, not paused by an outage
        (the HTTP API's ``/readyz``)."""
        return self._running and not self.stop.is_set() and self._failure is None and not self.source.paused

    def process_batch(self, states: dict[tuple[str, int], bool], partitions: set[tuple[str, int]] | None,
                      messages: list[Message]) -> tuple[list[ClosedWindow], BaseException | None]:
        """One turn of the poll loop after its poll, under the pipeline lock: remember the
        partition states for the job, process the batch (if any).

        Args:
            states: the assigned partitions and whether each has caught up (before the poll).
            partitions: every partition of the subscribed topics, or None while unknown.
            messages: the polled batch, possibly empty.

        Returns:
            The windows the batch closed, and the outage (database or broker error) that
            stopped it, or None; the caller then recovers.

        Raises:
            Exception: any error that is not an outage (see :func:`is_outage`).
        """
        with self.lock:
            self._states, self._partitions = states, partitions
            if self._failure is not None:  # the job failed meanwhile: the pipeline is stale
                return [], self._failure
            if not messages or self.source.assignment_error is not None:
                return [], self.source.assignment_error
            try:
                closed = self.pipeline.process(messages, sources=states, partitions=partitions)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                return [], exc
        self._attempts = 0
        return closed, None

    def note_batch(self, messages: Sequence[Message]) -> None:
        """Poll loop, after a poll and before its batch is processed: record the assigned
        partitions and the next offset to process of each (the batch's first offset where it
        has records, else the consumer's position) for :meth:`export_lag`. No broker request."""
        first = {(m.topic, m.partition): m.offset for m in reversed(messages)}
        self._note_assignment(first)

    def export_positions(self) -> None:
        """Poll loop, once the batch is stored: record the consumer's positions as the next
        offsets to process and export ``inferwatch_consumer_offset`` and
        ``inferwatch_consumer_lag_records`` against the last log-end offsets read by
        :meth:`export_lag` (the lag of a partition whose end offset was never read is absent).
        No broker request."""
        self._note_assignment({})

    def _note_assignment(self, first: dict[tuple[str, int], int]) -> None:
        consumer = self.source.consumer
        offsets: dict[tuple[str, int], int | None] = {}
        for tp in consumer.assignment():
            key = (tp.topic, tp.partition)
            if key in first:
                offsets[key] = first[key]
                continue
            try:
                offsets[key] = consumer.position(tp, timeout_ms=0)
            except Exception:  # revoked meanwhile, or no position yet
                offsets[key] = None
        with self._lag_lock:
            new = offsets.keys() - self._next_offsets.keys()
            self._next_offsets = offsets
            self._export_lag_locked()
        if new and self.scheduler.running:  # newly assigned partitions: their lag now, not an interval later
            self.scheduler.modify_job("consumer-lag", next_run_time=datetime.now(timezone.utc))

    def export_lag(self) -> None:
        """The scheduler job (every ``metrics.lag_interval_seconds``): read the log-end offsets
        of the assigned partitions from the broker with :attr:`lag_client` and export, per
        partition, ``inferwatch_consumer_offset`` (the next offset to process: the stored offset
        of the group, or the poll loop's, whichever is further) and
        ``inferwatch_consumer_lag_records`` (log-end offset − that offset, ≥ 0). Never touches
        the consumer, so it runs while a batch is being processed. A broker or database that does
        not answer leaves the last values of what it would have updated; logged once per outage."""
        with self._lag_lock:
            keys = list(self._next_offsets)
        if not keys:
            return
        try:
            stored = self.store.load_offsets(self.settings.kafka.group_id)
        except sqlalchemy.exc.SQLAlchemyError as exc:  # the poll loop's offsets stand in
            log.debug("stored offsets not read for the consumer lag: %s", exc)
            stored = {}
        try:
            if self.lag_client is None:
                self.lag_client = self._open_lag_client()
            ends = self.lag_client.end_offsets([TopicPartition(t, p) for t, p in keys],
                                               timeout_ms=LAG_REQUEST_TIMEOUT_MS)
        except Exception as exc:
            if not self._lag_failing:
                log.warning("consumer lag not updated: the log-end offsets could not be read (%s); next attempt "
                            "in %g s", _describe(exc)[1], self.settings.metrics.lag_interval_seconds)
            self._lag_failing = True
            ends = {}
        else:
            self._lag_failing = False
        with self._lag_lock:
            self._end_offsets.update({(tp.topic, tp.partition): int(o) for tp, o in ends.items()})
            for key, offset in stored.items():
                mine = self._next_offsets.get(key, -1)
                if key in self._next_offsets and (mine is None or offset > mine):
                    self._next_offsets[key] = offset
            self._export_lag_locked()

    def _export_lag_locked(self) -> None:
        self.metrics.set_consumer_positions({key: (offset, self._end_offsets.get(key))
                                             for key, offset in self._next_offsets.items()})

    def _open_lag_client(self) -> KafkaConsumer:
        """A consumer without group for ListOffsets requests, with ``kafka.client_options`` and
        the security settings of the ``kafka`` section, as the main consumer."""
        k = self.settings.kafka
        options = {"reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
                   **{key: v for key, v in k.consumer_config().items() if key in KafkaConsumer.DEFAULT_CONFIG},
                   **{key: v for key, v in self._lag_options.items() if v is not None}}
        return KafkaConsumer(bootstrap_servers=k.bootstrap_servers.split(","), group_id=None,
                             enable_auto_commit=False, client_id="inferwatch-lag", **options)

    def close_lag_client(self) -> None:
        """Close :attr:`lag_client` if open (:meth:`run` does at its end, once the jobs stopped)."""
        if self.lag_client is not None:
            self.lag_client.close()
            self.lag_client = None

    def close_idle_windows(self) -> None:
        """The scheduler job: report this member's partition states and close the windows due
        on wall-clock time (idle models) or on the shared watermark (the partitions caught up,
        another member's progress). Skips its turn while a batch is being processed (that batch
        does the same) or while consumption is paused."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self._failure is not None or self.source.paused:
                return
            try:
                closed = self.pipeline.tick(sources=self._states, partitions=self._partitions)
                self.metrics.set_outbox_counts(self.store.outbox_counts())
            except Exception as exc:  # the loop recovers (or re-raises a bug) on its next turn
                self._failure = exc
                return
            if closed and self.on_closed:
                self.on_closed(closed)
        finally:
            self.lock.release()

    def purge_window_samples(self, now_ms: int | None = None) -> int:
        """The scheduler job: delete the stored raw values (``window_samples``) of the windows
        that ended more than ``window.sample_retention_days`` before ``now_ms`` (UTC epoch ms,
        default now); returns the rows deleted. A database error is logged and the job tries
        again at its next run."""
        days = self.settings.window.sample_retention_days
        now = int(time.time() * 1000) if now_ms is None else now_ms
        try:
            deleted = self.store.purge_window_samples(now - days * 86_400_000)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            log.warning("window samples not purged (next attempt in %d s): %s", SAMPLE_PURGE_SECONDS, exc)
            return 0
        if deleted:
            log.info("purged %d window samples older than %d days (window.sample_retention_days)", deleted, days)
        return deleted

    # --- outages -------------------------------------------------------------------------
    def _delay(self, attempt: int) -> float:
        """Backoff before attempt ``attempt`` (1-based): the initial delay doubling, capped."""
        k = self.settings.kafka
        return min(k.outage_retry_max_seconds, k.outage_retry_initial_seconds * 2 ** min(attempt - 1, 60))

    def _recover(self, failure: BaseException) -> None:
        """Pause, wait, rebuild the pipeline from the store until it answers, rewind, resume."""
        k = self.settings.kafka
        started = time.monotonic()
        if started - self._recovered_at > k.outage_retry_max_seconds:
            self._attempts = 0  # a new outage, not the same one flapping
        self.source.pause()
        what, detail = _describe(failure)
        self._attempts += 1
        delay = self._delay(self._attempts)
        log.warning("%s unavailable (%s): consumption paused, next attempt in %.1f s", what, detail, delay)
        self._paused_sleep(delay)

        def log_retry(state: RetryCallState) -> None:
            what, detail = _describe(state.outcome.exception())
            log.warning("%s still unavailable (%s): next attempt in %.1f s", what, detail,
                        state.next_action.sleep if state.next_action else 0.0)

        def reload() -> tuple[Pipeline, dict[tuple[str, int], int]]:
            # the in-memory window state may be ahead of a rolled-back transaction: rebuild it
            pipeline = Pipeline(self.settings, self.store, self.metrics, self.dead_letter, k.group_id)
            return pipeline, self.store.load_offsets(k.group_id)

        def next_delay(state: RetryCallState) -> float:
            self._attempts += 1
            return self._delay(self._attempts)

        retrying = Retrying(retry=retry_if_exception(is_outage), wait=next_delay, stop=stop_when_event_set(self.stop),
                            sleep=self._paused_sleep, before_sleep=log_retry, reraise=True)
        try:
            pipeline, stored = retrying(reload)
        except Exception as exc:
            if self.stop.is_set() and is_outage(exc):
                log.warning("stopping while the database is unavailable; the stored offsets are where a restart "
                            "resumes")
                return
            raise
        with self.lock:
            self.pipeline = pipeline
            self._failure = None
        self.source.rewind(stored)
        self._recovered_at = time.monotonic()
        log.info("%s outage over after %.1f s: resuming from the stored offsets", what, self._recovered_at - started)

    def _paused_sleep(self, seconds: float) -> None:
        """Wait while polling the paused partitions (group membership and heartbeats stay alive;
        ``max_poll_interval_ms`` is never exceeded). Whatever a poll returns is dropped: the
        partitions are rewound to their stored offsets before consumption resumes."""
        k = self.settings.kafka
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.source.pause()  # partitions assigned by a rebalance meanwhile too
            try:
                self.source.poll(int(min(left * 1000, k.poll_timeout_ms)) + 1)
            except KafkaError as exc:
                log.debug("poll while paused: %s", exc)
                self.stop.wait(min(left, k.poll_timeout_ms / 1000))


def run_kafka(settings: Settings, stop: threading.Event, on_closed: OnClosed | None = None) -> None:
    """Consume the configured topics until ``stop`` is set, then leave the group cleanly.

    Every polled batch is stored (with its offsets) before the next poll, so stopping at any
    moment loses nothing and counts nothing twice. Database and broker outages pause
    consumption until they end (see the module docstring).

    Raises:
        StartupError: the database, a broker or the metrics port is unavailable at start.
    """
    k = settings.kafka
    store = open_store(settings)
    try:
        source, dead_letter = connect_kafka(settings, lambda: store.load_offsets(k.group_id))
    except StartupError:
        store.close()
        raise
    # the scheduler logs each run at INFO; a skipped turn (the previous one still running) is intended
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    metrics = api = None
    try:
        metrics, _ = start_metrics(settings)
        service = KafkaService(settings, store, metrics, source, dead_letter, stop, on_closed)
        if settings.api.enabled:
            api = serve_api(settings, store, service.ready)
        # the long-lived objects built so far (modules, clients, config) need no more scans, and
        # per-batch frames allocate many small objects: fewer full collections (measured in bench/)
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        log.info("consuming %s as group %s from %s", ",".join(k.topics), k.group_id, k.bootstrap_servers)
        # BLAS on one thread: its worker threads spin after each long dot product (the
        # Wasserstein step), doubling the CPU the drift tests take for no gain in wall time
        with threadpool_limits(limits=1, user_api="blas"):
            service.run()
    finally:
        if api is not None:
            api.stop()
        source.close()
        dead_letter.close()
        if metrics is not None:
            metrics.stop()
        store.close()
        log.info("stopped")


def log_dead_letter(rejected: Sequence[Rejected]) -> None:
    """Dead-letter sink when no dead-letter file is given: one WARNING per reason in the batch
    (its count and first record), and each record's detail at DEBUG."""
    by_reason: dict[str, list[Rejected]] = {}
    for r in rejected:
        by_reason.setdefault(r.reason.value, []).append(r)
        log.debug("rejected %s:%d@%d (%s): %s", r.message.topic, r.message.partition, r.message.offset,
                  r.reason.value, r.detail)
    # a bad producer rejects thousands of records for one reason: one line each would bury the log
    for reason, rs in by_reason.items():
        first = rs[0]
        log.warning("rejected %d record(s) (%s); first %s:%d@%d: %s", len(rs), reason, first.message.topic,
                    first.message.partition, first.message.offset, first.detail)


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
