"""Kafka consumption as a member of a consumer group, resuming from offsets stored with the data.

The database, not Kafka, is the source of truth for where to resume: window rows and the
offsets that produced them are written in one transaction, so when partitions are assigned the
consumer seeks to the stored offsets. Offsets are also committed to Kafka after each stored
batch so that consumer-lag tooling sees progress.

While the database or the broker is unavailable the caller pauses the assignment and keeps
polling (so the consumer stays a member of its group), then rewinds every partition to its
stored offset: whatever was fetched but not stored is read again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from collector.message import Message, next_offsets

log = logging.getLogger(__name__)

StoredOffsets = Callable[[], dict[tuple[str, int], int]]

# how often the end offsets are read from the broker while a partition looks caught up, and how
# long that request may block the poll loop
END_OFFSETS_EVERY_S = 1.0
END_OFFSETS_TIMEOUT_MS = 2000
# kafka-python's reconnect backoff grows to 30 s by default: a restarted broker would be found
# again only that late. client_options may set another cap.
RECONNECT_BACKOFF_MAX_MS = 2000


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked) -> None:
        # every polled batch is stored before the next poll, so nothing is pending here
        log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned) -> None:
        src = self.source
        try:
            stored = src.stored_offsets()
        except Exception as exc:  # the database is down: read nothing until the caller rewinds
            # an exception here would leave kafka-python's poll with a KafkaError and a traceback
            src.assignment_error = exc
            src.consumer.pause(*assigned)
            log.warning("partitions assigned while the stored offsets cannot be read (%s): paused %s",
                        _first_line(exc), sorted((tp.topic, tp.partition) for tp in assigned))
            return
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                src.consumer.seek(tp, offset)
        if src.paused:  # assigned during an outage: stay paused like the rest
            src.consumer.pause(*assigned)
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class KafkaSource:
    """Polls batches of :class:`Message` from Kafka topics.

    Args:
        bootstrap_servers: ``host:port[,host:port]``.
        topics: topics to subscribe to.
        group_id: consumer group id.
        stored_offsets: returns the next offset per (topic, partition) as stored in the
            database; called on every partition assignment. If it raises, the new partitions
            are paused and :attr:`assignment_error` is set until :meth:`rewind`.
        auto_offset_reset: where to start on a partition with no stored offset.
        max_poll_records: upper bound of messages per batch.
        client_options: kafka-python options; those :class:`kafka.KafkaConsumer` knows are passed
            to it (security settings, timeouts); they may not override the options set here
            (group, offsets, ``max_poll_records``) but may override ``reconnect_backoff_max_ms``
            (:data:`RECONNECT_BACKOFF_MAX_MS`).

    Raises:
        kafka.errors.KafkaTimeoutError: no broker answered (or accepted the credentials) within
            ``bootstrap_timeout_ms``.
    """

    def __init__(self, bootstrap_servers: str, topics: list[str], group_id: str, stored_offsets: StoredOffsets,
                 auto_offset_reset: str = "earliest", max_poll_records: int = 5000,
                 client_options: dict[str, Any] | None = None) -> None:
        self.stored_offsets = stored_offsets
        self.paused = False
        #: why the stored offsets could not be read at the last assignment (None: they were)
        self.assignment_error: Exception | None = None
        # lowest offset fetched per partition: where a partition without a stored offset restarts
        self._first_fetched: dict[tuple[str, int], int] = {}
        # end offsets read from the broker (ListOffsets) at most END_OFFSETS_EVERY_S ago
        self._end_floor: dict[tuple[str, int], int] = {}
        self._ends_due = 0.0
        options = {"reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
                   **{k: v for k, v in (client_options or {}).items() if k in KafkaConsumer.DEFAULT_CONFIG}}
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers.split(","), group_id=group_id, enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset, max_poll_records=max_poll_records, client_id="inferwatch",
            **options)
        self.topics = list(topics)
        self._partitions: set[tuple[str, int]] | None = None
        self._partitions_due = 0.0
        self.consumer.subscribe(topics=self.topics, listener=_SeekToStored(self))

    def poll(self, timeout_ms: int) -> list[Message]:
        """The next batch (possibly empty), ordered by partition then offset.

        Raises:
            kafka.errors.KafkaError: the client gave up on a request (e.g. a rebalance failed).
        """
        records = self.consumer.poll(timeout_ms=timeout_ms)
        out: list[Message] = []
        for tp in sorted(records, key=lambda t: (t.topic, t.partition)):
            batch = records[tp]
            if batch:
                key = (tp.topic, tp.partition)
                self._first_fetched[key] = min(batch[0].offset, self._first_fetched.get(key, batch[0].offset))
                out += to_messages(batch)
        return out

    def partition_states(self) -> dict[tuple[str, int], bool]:
        """Each assigned partition mapped to whether it has caught up with its end: its position
        has reached the high watermark of its last fetch and the end offset the broker reported at
        most :data:`END_OFFSETS_EVERY_S` ago. False while either is unknown.

        The fetch's high watermark alone goes stale: kafka-python fetches a partition again only
        once every buffered record of every partition is drained (and keeps fetches of paused
        partitions), so a partition drained early would look caught up while its newer records
        wait on the broker, and the other partitions' event time would make them late.
        """
        assigned = list(self.consumer.assignment())
        positions = {}
        for tp in assigned:
            high = self.consumer.highwater(tp)
            try:
                pos = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # revoked meanwhile, or no position yet
                pos = None
            positions[tp] = pos if high is not None and pos is not None and pos >= high else None
        if any(p is not None for p in positions.values()) and time.monotonic() >= self._ends_due:
            self._refresh_end_offsets(assigned)
        return {(tp.topic, tp.partition): pos is not None and pos >= self._end_floor.get((tp.topic, tp.partition), 0)
                for tp, pos in positions.items()}

    def _refresh_end_offsets(self, partitions: list[TopicPartition]) -> None:
        self._ends_due = time.monotonic() + END_OFFSETS_EVERY_S
        try:
            ends = self.consumer.end_offsets(partitions, timeout_ms=END_OFFSETS_TIMEOUT_MS)
        except Exception as exc:  # the broker is away: keep the last ones
            log.debug("end offsets not refreshed: %s", exc)
            return
        self._end_floor = {(tp.topic, tp.partition): int(o) for tp, o in ends.items()}

    def all_partitions(self) -> set[tuple[str, int]] | None:
        """Every partition of the subscribed topics, whichever member reads it, from the cluster
        metadata (looked up at most every :data:`END_OFFSETS_EVERY_S` seconds: the lookup of an
        unknown topic blocks); None while a topic's partitions are unknown."""
        now = time.monotonic()
        if now >= self._partitions_due:
            self._partitions_due = now + END_OFFSETS_EVERY_S
            out: set[tuple[str, int]] | None = set()
            for topic in self.topics:
                parts = self.consumer.partitions_for_topic(topic)
                if not parts:
                    out = None
                    break
                out.update((topic, p) for p in parts)
            self._partitions = out
        return self._partitions

    def pause(self) -> None:
        """Stop fetching from every assigned partition (and from those assigned later) until
        :meth:`rewind`; :meth:`poll` keeps the group membership alive meanwhile."""
        self.paused = True
        self.consumer.pause(*self.consumer.assignment())

    def rewind(self, stored: dict[tuple[str, int], int]) -> None:
        """Seek every assigned partition to its stored next offset and fetch again.

        A partition without a stored offset goes back to the first offset fetched from it in
        this process (nothing of it was stored), or stays where it is if nothing was fetched.
        The end offsets are read again before a partition counts as caught up: records arrived
        during the outage.

        Args:
            stored: next offset per (topic, partition), as in the database now.
        """
        for tp in self.consumer.assignment():
            key = (tp.topic, tp.partition)
            offset = stored.get(key, self._first_fetched.get(key))
            if offset is not None:
                self.consumer.seek(tp, offset)
        # records fetched before the outage may come back after resume() (kafka-python keeps
        # them for paused partitions) with the high watermark of then: read the ends afresh
        self._ends_due = 0.0
        self.assignment_error = None
        self.paused = False
        self.consumer.resume(*self.consumer.paused())

    def commit(self, messages: list[Message]) -> None:
        """Commit the offsets after ``messages`` to Kafka, asynchronously (best effort, for lag
        tooling: the offsets stored with the data are authoritative, so the loop never waits
        for the broker's answer; a failed commit is logged and the next batch commits again)."""
        offsets = next_offsets(messages)
        if not offsets:
            return
        try:
            self.consumer.commit_async({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                        for (t, p), o in offsets.items()}, callback=_log_failed_commit)
        except Exception as exc:  # a rebalance in progress, the broker restarting: the next batch commits again
            log.warning("offset commit to Kafka failed (stored offsets are kept): %s", exc)

    def close(self) -> None:
        """Leave the group and close the connection."""
        self.consumer.close(autocommit=False)


def _log_failed_commit(offsets, response) -> None:
    if isinstance(response, Exception):
        log.warning("offset commit to Kafka failed (stored offsets are kept): %s", response)


def to_messages(records: Sequence[Any]) -> list[Message]:
    """:class:`Message` objects from kafka-python ``ConsumerRecord`` tuples, in the same order.

    The fields are read by position (a ``ConsumerRecord`` is a named tuple: topic, partition,
    leader epoch, offset, timestamp, timestamp type, key, value, headers, ...); headers become
    a tuple of ``(name, value)`` pairs, empty when there are none.
    """
    new = tuple.__new__  # Message's own __new__ is a Python function: a third of the cost
    return [new(Message, (r[_TOPIC], r[_PARTITION], r[_OFFSET], r[_VALUE], r[_KEY],
                          tuple(r[_HEADERS]) if r[_HEADERS] else (), r[_TIMESTAMP])) for r in records]


_FIELDS = ConsumerRecord._fields
_TOPIC, _PARTITION, _OFFSET, _TIMESTAMP, _KEY, _VALUE, _HEADERS = (
    _FIELDS.index(f) for f in ("topic", "partition", "offset", "timestamp", "key", "value", "headers"))


class ClientErrors(logging.Handler):
    """Collects the errors kafka-python logs (and retries quietly) while a client connects, so a
    start-up that times out can say why: refused credentials, a failed TLS handshake.

    Use as a context manager around the client's construction; :attr:`errors` then holds the
    :class:`kafka.errors.KafkaError` instances seen, oldest first (at most 20).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[KafkaError] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, KafkaError) and len(self.errors) < 20:
                self.errors.append(arg)

    def __enter__(self) -> ClientErrors:
        logging.getLogger("kafka").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("kafka").removeHandler(self)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
