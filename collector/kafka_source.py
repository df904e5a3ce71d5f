"""Kafka consumption as a member of a consumer group, resuming from offsets stored with the data.

The database, not Kafka, is the source of truth for where to resume: window rows and the
offsets that produced them are written in one transaction, so when partitions are assigned the
consumer seeks to the stored offsets. Offsets are also committed to Kafka after each stored
batch so that consumer-lag tooling sees progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition

from collector.message import Message, next_offsets

log = logging.getLogger(__name__)

StoredOffsets = Callable[[], dict[tuple[str, int], int]]


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    def on_partitions_revoked(self, revoked) -> None:
        # every polled batch is stored before the next poll, so nothing is pending here
        log.info("partitions revoked: %s", sorted((tp.topic, tp.partition) for tp in revoked))

    def on_partitions_assigned(self, assigned) -> None:
        stored = self.source.stored_offsets()
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is not None:
                self.source.consumer.seek(tp, offset)
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))


class KafkaSource:
    """Polls batches of :class:`Message` from Kafka topics.

    Args:
        bootstrap_servers: ``host:port[,host:port]``.
        topics: topics to subscribe to.
        group_id: consumer group id.
        stored_offsets: returns the next offset per (topic, partition) as stored in the
            database; called on every partition assignment.
        auto_offset_reset: where to start on a partition with no stored offset.
        max_poll_records: upper bound of messages per batch.
        client_options: kafka-python options; those :class:`kafka.KafkaConsumer` knows are passed
            to it (security settings, timeouts); they may not override the options set here.

    Raises:
        kafka.errors.NoBrokersAvailable: no broker answered at start.
    """

    def __init__(self, bootstrap_servers: str, topics: list[str], group_id: str, stored_offsets: StoredOffsets,
                 auto_offset_reset: str = "earliest", max_poll_records: int = 5000,
                 client_options: dict[str, Any] | None = None) -> None:
        self.stored_offsets = stored_offsets
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers.split(","), group_id=group_id, enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset, max_poll_records=max_poll_records, client_id="inferwatch",
            **{k: v for k, v in (client_options or {}).items() if k in KafkaConsumer.DEFAULT_CONFIG})
        self.consumer.subscribe(topics=list(topics), listener=_SeekToStored(self))

    def poll(self, timeout_ms: int) -> list[Message]:
        """The next batch (possibly empty), ordered by partition then offset."""
        records = self.consumer.poll(timeout_ms=timeout_ms)
        out: list[Message] = []
        for tp in sorted(records, key=lambda t: (t.topic, t.partition)):
            for r in records[tp]:
                out.append(Message(r.topic, r.partition, r.offset, r.value, r.key, tuple(r.headers or ()),
                                   r.timestamp))
        return out

    def partition_states(self) -> dict[tuple[str, int], bool]:
        """Each assigned partition mapped to whether it has caught up with its end (position at
        the high watermark the broker last reported); False while either is unknown."""
        states = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            try:
                pos = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # revoked meanwhile, or no position yet
                pos = None
            states[(tp.topic, tp.partition)] = high is not None and pos is not None and pos >= high
        return states

    def commit(self, messages: list[Message]) -> None:
        """Commit the offsets after ``messages`` to Kafka (best effort: the stored offsets are
        authoritative)."""
        offsets = next_offsets(messages)
        if not offsets:
            return
        try:
            self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                  for (t, p), o in offsets.items()})
        except Exception as exc:  # a rebalance in progress; the next batch commits again
            log.warning("offset commit to Kafka failed (stored offsets are kept): %s", exc)

    def close(self) -> None:
        """Leave the group and close the connection."""
        self.consumer.close(autocommit=False)
