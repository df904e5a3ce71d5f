"""Collector throughput from a real Kafka broker, against a bare kafka-python consumer in the same run.

One topic (``partitions`` partitions) receives ``records`` JSON prediction records in
inferwatch's own format, 25 features each (:func:`record_pool`). Then, each in a fresh
process so neither inherits the other's memory:

- (a) the ceiling: a bare ``KafkaConsumer`` with the collector's consumer settings
  (``max_poll_records`` and the fetch sizes of ``KafkaConfig.consumer_config``) polls the whole topic and only iterates
  the records;
- (b) the collector: :func:`inferwatch.runner.run_kafka`, the service's own loop (poll, partition
  states, decode, windows, store on SQLite in a temporary directory, commit), reads the same
  topic with a fresh consumer group at the default settings;
- (c) the resident memory (``VmRSS``) of (b), sampled as it goes: at 10% of the records and at
  the end.

Both rates are records per second from the first stored (a: received) batch to the last, so
joining the group is not counted. A third part times (d) the Open Inference Protocol decoder
(:mod:`collector.formats.oip`) on JSON request bodies of 64 rows x 25 features, against parsing
the same bodies with msgspec alone.

The broker is ``INFERWATCH_BENCH_KAFKA`` (``host:port``) when set, else a fresh single-node
broker started by ``scripts/kafka_local.py`` and removed afterwards.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import synthetic
from .table import render, verdict

REPO = Path(__file__).resolve().parents[1]

#: Targets of issue 4: the collector at least this share of the bare consumer's rate ...
MIN_RATIO = 0.5
#: ... and at least this many records per second; RSS at the end within this factor of RSS at 10%.
MIN_RECORDS_PER_S = 50_000
MAX_RSS_GROWTH = 1.2

MODEL, MODEL_VERSION = "credit-risk", "7"
STEP_MS = 1  # event time advances 1 ms per record (1,000 predictions per second)


@dataclass(frozen=True)
class CollectorConfig:
    """records: records produced and read by each consumer; partitions: of the topic;
    producers: processes producing it; pool: distinct feature vectors the records cycle through;
    oip_messages: OIP request bodies timed (each ``oip_rows`` x ``oip_features``)."""

    records: int = 10_000_000
    partitions: int = 4
    producers: int = 2
    pool: int = 20_000
    seed: int = 11
    oip_messages: int = 2_000
    oip_rows: int = 64
    oip_features: int = 25
    timeout_s: float = 3600.0
    #: messages per poll for both consumers; None: the collector's default (``kafka.max_poll_records``).
    #: Small runs need fewer, or the whole topic comes in the first poll and no rate is measured.
    max_poll_records: int | None = None


QUICK = CollectorConfig(records=30_000, pool=2_000, oip_messages=200, timeout_s=600.0, max_poll_records=2_000)


# --------------------------------------------------------------------------- the records


def record_pool(n: int, seed: int) -> list[bytes]:
    """``n`` JSON fragments ``"features": {...}, "predictions": {...}, "latency_ms": x`` of the
    benchmark record: the 20 numeric features of :mod:`bench.synthetic` (12 normal ones rounded
    to 4 decimals, 5 at full precision, 2 counts as integers, a zero-inflated one to 3
    decimals), 4 categorical ones (strings), one boolean, and a prediction with its probability."""
    import msgspec

    rng = np.random.default_rng(seed)
    num = synthetic.numeric_block(rng, n)
    cats = {name: synthetic._categorical(rng, *synthetic.CATEGORIES[name], n) for name in synthetic.CATEGORICAL[:4]}
    owns_car = rng.random(n) < 0.3
    proba = rng.random(n)
    latency = rng.gamma(2.0, 3.0, n)
    out = []
    for i in range(n):
        features: dict[str, object] = {}
        for j, name in enumerate(synthetic.NUMERIC):
            v = float(num[name][i])
            features[name] = int(v) if j in (17, 18) else round(v, 4) if j < 12 else round(v, 3) if j == 19 else v
        for name, values in cats.items():
            features[name] = str(values[i])
        features["owns_car"] = bool(owns_car[i])
        body = {"features": features,
                "predictions": {"approved": bool(proba[i] > 0.5), "probability": round(float(proba[i]), 6)},
                "latency_ms": round(float(latency[i]), 3)}
        out.append(msgspec.json.encode(body)[1:-1])
    return out


def records(start: int, stop: int, step: int, t0_ms: int, pool: list[bytes]) -> Iterator[bytes]:
    """Records ``start, start + step, ... < stop`` of the stream: record ``i`` has event time
    ``t0_ms + i`` ms, request id ``req-<i>`` and feature vector ``pool[i % len(pool)]``."""
    idx = np.arange(start, stop, step, dtype=np.int64)
    for lo in range(0, len(idx), 50_000):
        chunk = idx[lo:lo + 50_000]
        stamps = np.datetime_as_string((t0_ms + chunk * STEP_MS).astype("datetime64[ms]"), unit="ms")
        for i, ts in zip(chunk.tolist(), stamps.tolist()):
            yield b'{"model":"%s","model_version":"%s","timestamp":"%sZ","request_id":"req-%d",%s}' % (
                MODEL.encode(), MODEL_VERSION.encode(), ts.encode(), i, pool[i % len(pool)])


def _produce_share(bootstrap: str, topic: str, partitions: list[int], cfg: CollectorConfig, t0_ms: int) -> None:
    from kafka import KafkaProducer

    pool = record_pool(cfg.pool, cfg.seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=512 * 1024,
                             max_request_size=4 << 20)
    try:
        for p in partitions:
            for n, value in enumerate(records(p, cfg.records, cfg.partitions, t0_ms, pool), 1):
                producer.send(topic, value=value, partition=p)
                if n % 100_000 == 0:  # bounded memory in the producer
                    producer.flush()
        producer.flush()
    finally:
        producer.close()


def produce(bootstrap: str, topic: str, cfg: CollectorConfig) -> tuple[float, int]:
    """Create the topic and fill it with ``cfg.records`` records from ``cfg.producers``
    processes (each owns some partitions). Returns (seconds, event time of record 0 in ms)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=cfg.partitions, replication_factor=1)])
    finally:
        admin.close()
    # the stream ends an hour before now: nothing is in the future, nothing idles out meanwhile
    t0_ms = int(time.time() * 1000) - cfg.records * STEP_MS - 3_600_000
    ctx = multiprocessing.get_context("spawn")
    shares = [list(range(k, cfg.partitions, cfg.producers)) for k in range(min(cfg.producers, cfg.partitions))]
    t = time.perf_counter()
    procs = [ctx.Process(target=_produce_share, args=(bootstrap, topic, share, cfg, t0_ms)) for share in shares]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise RuntimeError(f"a producer process failed (exit codes {[p.exitcode for p in procs]})")
    return time.perf_counter() - t, t0_ms


# --------------------------------------------------------------------------- the two consumers


def rss_bytes() -> int:
    """Resident set size of this process (``VmRSS`` of /proc/self/status), bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Run:
    """One consumer's run: records counted from the first batch on, over ``seconds``."""

    records: int
    seconds: float
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (s, records, rss bytes)
    windows_closed: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def rss_at(self, share: float) -> int:
        """RSS at the first sample with at least ``share`` of the records read."""
        total = self.samples[-1][1]
        return next(rss for _s, n, rss in self.samples if n >= share * total)


def _bare(bootstrap: str, topic: str, expected: int, max_poll_records: int, timeout_s: float,
          options: dict | None, out) -> None:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap.split(","), group_id=f"bench-bare-{uuid.uuid4().hex}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=max_poll_records, client_id="inferwatch-bench", **(options or {}))
    seen = first_n = 0
    first_t = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for r in batch:
                    seen += 1
                    if r.value is None:
                        raise RuntimeError("unexpected tombstone")
            if first_t is None and seen:
                first_t, first_n = time.perf_counter(), seen
        elapsed = time.perf_counter() - first_t if first_t is not None else 0.0
    finally:
        consumer.close(autocommit=False)
    out.put((seen, first_n, elapsed))


def _collector(bootstrap: str, topic: str, expected: int, timeout_s: float, interval_s: float,
               max_poll_records: int | None, out) -> None:
    import inferwatch  # noqa: F401  (environment defaults before Evidently is imported)
    from inferwatch.config import Settings
    from inferwatch.runner import run_kafka
    from inferwatch.store import Store

    with tempfile.TemporaryDirectory(prefix="inferwatch-bench-") as tmp:
        group = f"bench-collector-{uuid.uuid4().hex}"
        kafka = {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": group,
                 "dead_letter_topic": f"{topic}.dead-letter"}
        if max_poll_records:
            kafka["max_poll_records"] = max_poll_records
        settings = Settings(database_url=f"sqlite:///{tmp}/inferwatch.db", metrics={"enabled": False}, kafka=kafka)
        stop = threading.Event()
        closed: list[int] = []
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                run_kafka(settings, stop, on_closed=lambda ws: closed.append(len(ws)))
            except BaseException as exc:  # reported by the sampling loop
                failure.append(exc)
                stop.set()

        thread = threading.Thread(target=serve, name="collector")
        thread.start()
        reader = None
        samples: list[tuple[float, int, int]] = []
        deadline = time.monotonic() + timeout_s
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                time.sleep(interval_s)
                if reader is None:
                    if not Path(tmp, "inferwatch.db").exists():
                        continue
                    reader = Store(settings.database_url)
                try:
                    n = sum(reader.load_offsets(group).values())
                except Exception:  # noqa: BLE001 - the schema may not exist yet
                    continue
                if n:
                    samples.append((time.perf_counter(), n, rss_bytes()))
                if n >= expected:
                    break
        finally:
            stop.set()
            thread.join(timeout=120)
            if reader is not None:
                reader.close()
        if failure:
            raise failure[0]
    out.put((samples, sum(closed)))


def _in_child(timeout_s: float, target, *args) -> tuple:
    """Run ``target(*args, queue)`` in a fresh interpreter and return what it put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    try:
        result = queue.get(timeout=timeout_s + 300)  # the child's own timeout, plus start-up
    finally:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    if proc.exitcode not in (0, None):
        raise RuntimeError(f"{target.__name__} exited with code {proc.exitcode}")
    return result


def run_bare(bootstrap: str, topic: str, expected: int, max_poll_records: int, timeout_s: float,
             options: dict | None = None) -> Run:
    """(a): the bare consumer in a fresh process; ``options``: further kafka-python options
    (the collector's consumer options, so both read alike)."""
    seen, first_n, seconds = _in_child(timeout_s, _bare, bootstrap, topic, expected, max_poll_records, timeout_s,
                                       options)
    if seen < expected:
        raise RuntimeError(f"bare consumer read {seen} of {expected} records")
    return Run(seen - first_n, seconds)


def run_collector(bootstrap: str, topic: str, expected: int, timeout_s: float, interval_s: float,
                  max_poll_records: int | None = None) -> Run:
    """(b) and (c): the service loop in a fresh process, sampled every ``interval_s``;
    ``max_poll_records`` None: the service's default."""
    samples, closed = _in_child(timeout_s, _collector, bootstrap, topic, expected, timeout_s, interval_s,
                                max_poll_records)
    if not samples or samples[-1][1] < expected:
        raise RuntimeError(f"collector stored {samples[-1][1] if samples else 0} of {expected} records")
    t0, n0, _ = samples[0]
    return Run(samples[-1][1] - n0, samples[-1][0] - t0, [(t - t0, n, rss) for t, n, rss in samples], closed)


# --------------------------------------------------------------------------- OIP tensors


def oip_bodies(cfg: CollectorConfig) -> list[bytes]:
    """``cfg.oip_messages`` OIP JSON request bodies, one FP32 input tensor of shape
    ``[oip_rows, oip_features]`` each, flat ``data`` in half of them and nested in the others."""
    import msgspec

    rng = np.random.default_rng(cfg.seed)
    out = []
    for i in range(cfg.oip_messages):
        values = np.round(rng.normal(0.0, 1.0, (cfg.oip_rows, cfg.oip_features)).astype(np.float32), 5)
        data = values.tolist() if i % 2 else values.reshape(-1).tolist()
        out.append(msgspec.json.encode({"id": f"req-{i}", "inputs": [
            {"name": "input-0", "shape": [cfg.oip_rows, cfg.oip_features], "datatype": "FP32", "data": data}]}))
    return out


@dataclass
class OipResult:
    rows: int
    parse_seconds: float
    decode_seconds: float

    @property
    def ratio(self) -> float:
        return self.parse_seconds / self.decode_seconds


def run_oip(cfg: CollectorConfig, repeats: int = 3) -> OipResult:
    """Rows per second of ``collector.formats.decode_messages`` (format ``oip``, features named
    by config) on request bodies, and of ``msgspec.json.decode`` of the same bodies (the
    baseline); best of ``repeats``, in batches of 5,000 messages' worth of 500."""
    import msgspec

    from collector.formats import FormatConfig, Limits, decode_messages
    from collector.message import Message

    bodies = oip_bodies(cfg)
    messages = [Message("oip", 0, i, b, b"req-%d" % i, (), 1_700_000_000_000 + i) for i, b in enumerate(bodies)]
    fmt = FormatConfig(format="oip", model=MODEL, feature_names=[f"f{j}" for j in range(cfg.oip_features)])
    limits = Limits()
    parse, decode = [], []
    rows = 0
    for _ in range(repeats):
        t = time.perf_counter()
        for b in bodies:
            msgspec.json.decode(b)
        parse.append(time.perf_counter() - t)
        t = time.perf_counter()
        rows = 0
        for lo in range(0, len(messages), 500):
            decoded = decode_messages(messages[lo:lo + 500], fmt, limits)
            if decoded.rejected:
                raise RuntimeError(f"OIP body rejected: {decoded.rejected[0].detail}")
            rows += len(decoded.requests)
        decode.append(time.perf_counter() - t)
    return OipResult(rows, min(parse), min(decode))


# --------------------------------------------------------------------------- the run


@dataclass
class CollectorResult:
    cfg: CollectorConfig
    produce_seconds: float
    bare: Run
    collector: Run
    oip: OipResult | None

    @property
    def ratio(self) -> float:
        return self.collector.rate / self.bare.rate

    @property
    def rss_growth(self) -> float:
        return self.collector.rss_at(1.0) / self.collector.rss_at(0.1)


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """The bootstrap address of ``INFERWATCH_BENCH_KAFKA``, or of a fresh local broker."""
    external = os.environ.get("INFERWATCH_BENCH_KAFKA")
    if external:
        yield external
        return
    # more heap than the test default: the broker serves a few gigabytes here
    os.environ.setdefault("INFERWATCH_KAFKA_JVM_OPTS", "-Xms512m -Xmx1g")
    sys.path.insert(0, str(REPO / "scripts"))
    import kafka_local

    b = kafka_local.KafkaBroker()
    try:
        b.start()
        yield b.bootstrap_servers
    finally:
        b.cleanup()


def run_collector_bench(cfg: CollectorConfig = CollectorConfig()) -> CollectorResult:
    from inferwatch.config import KafkaConfig

    max_poll = cfg.max_poll_records or KafkaConfig().max_poll_records
    from kafka import KafkaConsumer

    # the collector's consumer options (fetch sizes), so the ceiling reads as the collector does
    options = {k: v for k, v in KafkaConfig().consumer_config().items() if k in KafkaConsumer.DEFAULT_CONFIG}
    interval = 0.1 if cfg.records < 1_000_000 else 0.5
    with broker() as bootstrap:
        topic = f"bench-records-{uuid.uuid4().hex[:8]}"
        produce_s, _t0 = produce(bootstrap, topic, cfg)
        bare = run_bare(bootstrap, topic, cfg.records, max_poll, cfg.timeout_s, options)
        collector = run_collector(bootstrap, topic, cfg.records, cfg.timeout_s, interval, max_poll)
    oip = run_oip(cfg) if cfg.oip_messages else None
    return CollectorResult(cfg, produce_s, bare, collector, oip)


def report(r: CollectorResult) -> str:
    mb = 1 << 20
    c = r.collector
    rows = [
        ["(a) bare kafka-python consumer", r.bare.rate, 1.0, "", "", r.bare.seconds],
        ["(b) collector: run_kafka loop to SQLite", c.rate, r.ratio,
         f">= {MIN_RATIO} and >= {MIN_RECORDS_PER_S:,}/s",
         verdict(r.ratio >= MIN_RATIO and c.rate >= MIN_RECORDS_PER_S), c.seconds],
    ]
    table = render(
        f"Collector throughput: {r.cfg.records:,} records of 25 features, {r.cfg.partitions} partitions "
        f"(produced in {r.produce_seconds:.0f} s); one process each, same topic, same run",
        ["run", "records/s", "ratio to (a)", "target", "result", "seconds"], rows)
    rss10, rss100 = c.rss_at(0.1) / mb, c.rss_at(1.0) / mb
    table += "\n\n" + render(
        f"Collector resident memory over {r.cfg.records:,} records ({c.windows_closed} windows closed)",
        ["point", "RSS MiB", "ratio to 10%", "target", "result"],
        [["after 10% of the records", rss10, 1.0, "", ""],
         ["after 50% of the records", c.rss_at(0.5) / mb, c.rss_at(0.5) / mb / rss10, "", ""],
         ["after 100% of the records", rss100, r.rss_growth, f"<= {MAX_RSS_GROWTH}",
          verdict(r.rss_growth <= MAX_RSS_GROWTH)],
         ["highest sample", max(s[2] for s in c.samples) / mb, max(s[2] for s in c.samples) / mb / rss10, "", ""]])
    if r.oip is not None:
        o = r.oip
        table += "\n\n" + render(
            f"Open Inference Protocol: {r.cfg.oip_messages:,} JSON request bodies of {r.cfg.oip_rows} rows x "
            f"{r.cfg.oip_features} FP32 features (best of 3)",
            ["run", "rows/s", "ratio to parse"],
            [["msgspec.json.decode of the bodies (baseline)", o.rows / o.parse_seconds, 1.0],
             ["collector.formats.decode_messages (oip)", o.rows / o.decode_seconds, o.ratio]])
    return table
