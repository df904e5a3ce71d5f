"""Helpers for end-to-end tests: the real service as a subprocess, a real webhook receiver on
127.0.0.1, producing to the real broker, and waiting with a deadline."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, KafkaProducer
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
    """``inferwatch run --config FILE`` as a real subprocess."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
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
