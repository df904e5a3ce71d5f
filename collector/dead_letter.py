"""Forwarding rejected messages to the dead-letter topic, with the reason and original headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer

from collector.decode import Rejected
from collector.kafka_source import RECONNECT_BACKOFF_MAX_MS

# Header names added to each dead-lettered message, beside the original headers.
REASON_HEADER = "inferwatch-reject-reason"
DETAIL_HEADER = "inferwatch-reject-detail"
SOURCE_HEADERS = ("inferwatch-source-topic", "inferwatch-source-partition", "inferwatch-source-offset")


def dead_letter_headers(r: Rejected) -> list[tuple[str, bytes]]:
    """Original headers followed by the reason, detail and source coordinates."""
    m = r.message
    return [*((k, v if v is not None else b"") for k, v in m.headers),
            (REASON_HEADER, r.reason.value.encode()), (DETAIL_HEADER, r.detail.encode()[:1000]),
            (SOURCE_HEADERS[0], m.topic.encode()), (SOURCE_HEADERS[1], str(m.partition).encode()),
            (SOURCE_HEADERS[2], str(m.offset).encode())]


class KafkaDeadLetter:
    """Sends rejected messages to a Kafka topic and waits until the broker has them.

    Args:
        bootstrap_servers: ``host:port[,host:port]``.
        topic: the dead-letter topic.
        client_options: kafka-python options; those :class:`kafka.KafkaProducer` knows are
            passed to it (security settings), the consumer-only ones are left out; they may set
            ``reconnect_backoff_max_ms`` (default
            :data:`collector.kafka_source.RECONNECT_BACKOFF_MAX_MS`).
    """

    def __init__(self, bootstrap_servers: str, topic: str, client_options: dict[str, Any] | None = None) -> None:
        self.topic = topic
        options = {"reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
                   **{k: v for k, v in (client_options or {}).items() if k in KafkaProducer.DEFAULT_CONFIG}}
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), acks="all",
                                      max_request_size=16 * 1024 * 1024, **options)

    def __call__(self, rejected: Sequence[Rejected]) -> None:
        """Send and flush. While the broker restarts, the producer retries on its own (for up to
        ``delivery_timeout_ms``, two minutes by default, with ``acks="all"``), so a short outage
        only delays the batch.

        Raises:
            kafka.errors.KafkaError: the broker did not acknowledge in time; the caller pauses
                and retries the batch (its messages may then reach the topic twice).
        """
        # in source order, whatever order the decoders reported them in
        ordered = sorted(rejected, key=lambda r: (r.message.topic, r.message.partition, r.message.offset))
        futures = [self.producer.send(self.topic, value=r.message.value, key=r.message.key,
                                      headers=dead_letter_headers(r)) for r in ordered]
        self.producer.flush()
        for f in futures:
            f.get(timeout=30)

    def close(self) -> None:
        """Flush and close the producer."""
        self.producer.close()
