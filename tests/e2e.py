"""Helpers for end-to-end tests: the real service as a subprocess, a real webhook receiver on
127.0.0.1, producing to the real broker, and waiting with a deadline."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.5) -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create a topic with this many partitions."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, payloads: Iterable[bytes | tuple[bytes, list]], keyed: bool = False) -> int:
    """Send payloads (or (payload, headers) pairs) in order and wait for every ack; ``keyed``
    gives each message its sequence number as key, spreading them over the partitions."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_request_size=4 << 20)
    n = 0
    for p in payloads:
        value, headers = p if isinstance(p, tuple) else (p, None)
        producer.send(topic, value=value, headers=headers, key=str(n).encode() if keyed else None)
        n += 1
    producer.flush()
    producer.close()
    return n


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 recording every JSON body POSTed to it."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_config(path: Path, **sections) -> Path:
    """Write an inferwatch YAML config."""
    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


class Service:
    """``inferwatch run --config FILE`` as a real subprocess; ``env`` adds variables to its
    environment (the secrets a config names by ``{env: NAME}``)."""

    def __init__(self, config: Path, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        env = {**os.environ, **self.env, "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "run", "--config", str(self.config)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            raise AssertionError(f"service did not stop within {timeout}s; log:\n{self.log()}") from None
        finally:
            self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample on ``/metrics`` keyed by (name, sorted label items)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class Outgoing(NamedTuple):
    """One message for :class:`StreamProducer`: the value, an optional key (the default
    partitioner hashes it to a partition) and an optional explicit partition."""

    value: bytes
    key: bytes | None = None
    partition: int | None = None


class StreamProducer:
    """Produces messages to the real broker from a background thread at a steady rate, the way
    a serving fleet streams its prediction logs while the collector runs.

    Args:
        bootstrap: broker address ``host:port``.
        topic: target topic (must exist).
        messages: what to send, in order; may be endless when ``stop()`` ends the stream.
        rate_per_s: messages per second (> 0); the thread sleeps when it is ahead of
            ``i / rate_per_s`` seconds since its start.

    After :meth:`finish`, for the i-th message sent: ``sent_at_ms[i]`` is the wall-clock time
    (epoch ms) just before ``send`` was called — no consumer can have read it earlier — and
    ``partitions[i]`` / ``offsets[i]`` are where the broker acknowledged it.
    """

    def __init__(self, bootstrap: str, topic: str, messages: Iterable[Outgoing], rate_per_s: float) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        self.topic = topic
        self.rate = float(rate_per_s)
        self._messages = messages
        self._stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.sent_at_ms: list[int] = []
        self.partitions: dict[int, int] = {}
        self.offsets: dict[int, int] = {}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                       max_request_size=4 << 20)
        self._thread = threading.Thread(target=self._run, name=f"produce-{topic}", daemon=True)

    def start(self) -> StreamProducer:
        self._thread.start()
        return self

    @property
    def sent(self) -> int:
        """Messages handed to the client so far."""
        return len(self.sent_at_ms)

    def _acked(self, i: int, metadata) -> None:
        self.partitions[i] = metadata.partition
        self.offsets[i] = metadata.offset

    def _run(self) -> None:
        try:
            t0 = time.monotonic()
            for i, m in enumerate(self._messages):
                if self._stop.is_set():
                    break
                ahead = t0 + i / self.rate - time.monotonic()
                if ahead > 0.002:
                    time.sleep(ahead)
                self.sent_at_ms.append(int(time.time() * 1000))
                future = self._producer.send(self.topic, value=m.value, key=m.key, partition=m.partition)
                future.add_callback(self._acked, i)
            self._producer.flush()
        except BaseException as exc:  # reported by finish()
            self.error = exc
        finally:
            self.done.set()

    def stop(self) -> None:
        """End an endless stream after the message being sent."""
        self._stop.set()

    def finish(self, timeout: float) -> int:
        """Wait for the stream to end and every message to be acknowledged; returns how many
        were sent.

        Raises:
            AssertionError: not done within ``timeout`` seconds, the client failed, or a
                message was not acknowledged.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"producer to {self.topic} still running after {timeout:.0f}s "
                                 f"({self.sent} sent)")
        self._producer.close()
        if self.error is not None:
            raise AssertionError(f"producer to {self.topic} failed: {self.error!r}") from self.error
        if len(self.partitions) != self.sent:
            raise AssertionError(f"{self.sent - len(self.partitions)} of {self.sent} messages to {self.topic} "
                                 "were not acknowledged")
        return self.sent


def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    """The next offset to be written per (topic, partition) of ``topic``, from the broker."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {(tp.topic, tp.partition): int(o) for tp, o in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def assigned_partitions(log_text: str) -> list[tuple[str, int]] | None:
    """The partitions of the last ``partitions assigned`` line the service logged, or None
    before its first assignment."""
    found = re.findall(r"partitions assigned: (\[.*?\])\s*$", log_text, flags=re.MULTILINE)
    return [tuple(tp) for tp in ast.literal_eval(found[-1])] if found else None


def json_prediction(model: str, model_version: str, event_time_ms: int, request_id: str, features: dict,
                    predictions: dict, latency_ms: float | None = None) -> bytes:
    """One record in inferwatch's own JSON format (see collector/decode.py), its timestamp as
    RFC 3339 UTC with milliseconds, encoded as a serving process would log it."""
    ts = datetime.fromtimestamp(event_time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    rec = {"model": model, "model_version": model_version, "timestamp": ts, "request_id": request_id,
           "features": features, "predictions": predictions}
    if latency_ms is not None:
        rec["latency_ms"] = latency_ms
    return json.dumps(rec, separators=(",", ":")).encode()


def wait_for_value(read: Callable[[], object], target: object, quiet: float, timeout: float, what: str,
                   alive: Callable[[], bool] = lambda: True, interval: float = 0.5) -> object:
    """Poll ``read()`` until it returns ``target``, or the same value for ``quiet`` seconds (it
    will not get there: the caller's assertions then show how far it got), or ``alive()`` turns
    false; returns the last value read.

    Raises:
        AssertionError: still changing after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last, since = object(), time.monotonic()
    while time.monotonic() < deadline:
        value = read()
        if not alive():
            return value
        if value == target:
            return value
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
