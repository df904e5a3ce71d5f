"""Exactly-once window counts under kill -9, on the real broker, PostgreSQL and SQLite.

A producer streams 200,000 prediction records of four models (1-hour event-time windows,
timestamps increasing, keyed by request id over three partitions) while ``inferwatch run`` is
SIGKILLed at ten random moments and restarted each time: some kills land right after start
(imports, restoring state, joining the group), the others at a random delay after the process
has stored a batch past a random point of the stream (mid-batch, mid-close, between polls).
Afterwards every window's stored count must equal what was produced for it, and the stored
offsets the topic's end.

The random moments come from a seeded generator; the seed is printed (``-s`` shows it) and
``INFERWATCH_KILL_SEED`` replays a run.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from inferwatch.store import Store

from e2e import (Outgoing, Service, StreamProducer, create_topic, end_offsets, free_port, json_prediction, scrape,
                 wait_for, wait_for_value, write_config)

pytestmark = [pytest.mark.kafka]

HOUR = 3_600_000
N_RECORDS = 200_000
STEP_MS = 720  # event time between consecutive records: 5,000 records (1,250 per model) per hour
MODELS = ("fraud", "churn", "ranking", "eta")
VERSION = "3"
PARTITIONS = 3
RATE = 1_500  # records per second: the stream lasts about as long as the ten kill cycles
LATENESS_S = 600  # absorbs the skew between partitions read in one poll; the data itself is in order
N_KILLS = 10
# after a kill -9 the group coordinator rebalances once the dead member's session expires
CLIENT = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: when and where it landed."""

    run: int
    kind: str  # "start": delay after the process started; "consuming": after a stored batch past a target
    delay_s: float
    uptime_s: float
    stored_before: int  # stored offsets (sum) when this run started
    stored_at_kill: int
    closed_at_kill: int
    produced_at_kill: int
    late: float | None  # records this run had counted late shortly before the kill (None: no /metrics yet)
    last_log_line: str


def records_late(service: Service) -> float | None:
    """The run's ``inferwatch_records_late_total`` over all models, from the /metrics port it logged."""
    found = re.search(r"metrics on http://[\d.]+:(\d+)/metrics", service.log_path.read_text(errors="replace"))
    if not found:
        return None
    try:
        samples = scrape(int(found.group(1)))
    except OSError:
        return None
    return sum(v for (name, _), v in samples.items() if name == "inferwatch_records_late_total")


def make_stream(t0: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[Outgoing]]:
    """Event times, model indices and the encoded messages: N_RECORDS in event-time order, then one
    record per model and partition an hour plus the allowed lateness after the last window's end,
    so every data window's watermark passes its end."""
    rng = np.random.default_rng(seed)
    times = t0 + np.arange(N_RECORDS, dtype=np.int64) * STEP_MS
    models = rng.integers(0, len(MODELS), N_RECORDS)
    amount = np.round(rng.lognormal(3.5, 1.0, N_RECORDS), 2)
    age = rng.integers(18, 90, N_RECORDS)
    country = rng.choice(np.array(["DE", "FR", "US", "BR", "IN", "JP"]), N_RECORDS)
    score = np.round(rng.beta(2, 5, N_RECORDS), 4)
    latency = np.round(rng.gamma(2.0, 4.0, N_RECORDS), 3)
    messages = []
    for i in range(N_RECORDS):
        rid = f"{uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)}"
        messages.append(Outgoing(json_prediction(
            MODELS[models[i]], VERSION, int(times[i]), rid,
            {"amount": float(amount[i]), "customer_age": int(age[i]), "country": str(country[i]),
             "is_returning": bool(i % 3)},
            {"score": float(score[i]), "label": "positive" if score[i] > 0.5 else "negative"}, float(latency[i])),
            key=rid.encode()))
    last_end = (int(times[-1]) // HOUR + 1) * HOUR
    marker_t = last_end + LATENESS_S * 1000 + 1000
    m_times, m_models = [], []
    for p in range(PARTITIONS):
        for k, model in enumerate(MODELS):
            messages.append(Outgoing(json_prediction(model, VERSION, marker_t, f"end-of-stream-{p}-{model}",
                                                     {"amount": 1.0, "customer_age": 40, "country": "DE",
                                                      "is_returning": True},
                                                     {"score": 0.1, "label": "negative"}, 1.0), partition=p))
            m_times.append(marker_t)
            m_models.append(k)
    return np.concatenate([times, m_times]), np.concatenate([models, m_models]), messages


def config(tmp_path, db_url, bootstrap, topic, idle_close_seconds, metrics_port=0):
    return write_config(
        tmp_path / "inferwatch.yaml",
        database_url=db_url,
        kafka={"bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"g-{topic}",
               "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200, "max_poll_records": 300,
               "client_options": CLIENT},
        # segments of 500 records: most windows close in three pieces, so kills also hit cut segments
        window={"length_seconds": 3600, "max_records": 500, "allowed_lateness_seconds": LATENESS_S,
                "idle_close_seconds": idle_close_seconds},
        reference={"bootstrap_records": 1000},
        metrics={"port": metrics_port},
    )


def test_kill_9_at_ten_random_moments_counts_every_record_exactly_once(tmp_path, db_url, kafka_bootstrap):
    seed = int(os.environ.get("INFERWATCH_KILL_SEED", random.SystemRandom().randrange(2**32)))
    print(f"\nkill seed: {seed} (INFERWATCH_KILL_SEED={seed} replays it)")
    rng = random.Random(seed)
    t0 = (int(time.time() * 1000) - 5 * 86_400_000) // HOUR * HOUR  # five days ago: no future timestamps
    times, models, messages = make_stream(t0, seed)
    total = len(messages)
    expected = Counter(zip((MODELS[m] for m in models), (times // HOUR * HOUR).tolist()))

    topic = f"exactly-once-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    # during the kills no window closes on the wall clock: a stalled producer must not close one
    cfg = config(tmp_path, db_url, kafka_bootstrap, topic, idle_close_seconds=None)
    store = Store(db_url)
    store.create_schema()

    def progress() -> int:
        return sum(store.load_offsets(group).values())

    kinds = ["start"] * 3 + ["consuming"] * (N_KILLS - 3)
    rng.shuffle(kinds)
    # the "consuming" kills spread over the whole stream: each waits for the stored progress to
    # pass a random point of it, then for a random delay
    targets = iter(sorted(int(rng.uniform(0.02, 0.95) * N_RECORDS) for k in kinds if k == "consuming"))
    producer = StreamProducer(kafka_bootstrap, topic, messages, RATE).start()
    kills: list[Kill] = []
    services: list[Service] = []
    t_start = time.monotonic()
    try:
        service = Service(cfg, tmp_path / "run-0.log").start()
        services.append(service)
        for run, kind in enumerate(kinds):
            started = time.monotonic()
            before = progress()
            if kind == "consuming":
                # a stored batch of this run (once the group has rebalanced away from the killed
                # member) at or past the target; when the collector has caught up with the whole
                # stream already there is none to wait for, and the kill hits it idle
                target = min(max(next(targets), before + 1), total)
                wait_for(lambda: progress() >= target or not service.running(), 120,
                         f"run {run} to store records up to {target}")
                assert service.running(), service.log()
            delay = rng.uniform(0.2, 4.0)
            time.sleep(delay)
            late = records_late(service)
            stored, closed, produced = progress(), len(store.list_windows()), producer.sent
            lines = service.log_path.read_text(errors="replace").strip().splitlines()
            code = service.stop(signal.SIGKILL, timeout=30)
            assert code == -signal.SIGKILL, f"run {run} ended by itself ({code}) before the kill:\n{service.log()}"
            kills.append(Kill(run, kind, round(delay, 2), round(time.monotonic() - started, 2), before, stored,
                              closed, produced, late, lines[-1][:160] if lines else ""))
            if run == len(kinds) - 1:
                # the last run may close idle windows: only the end-of-stream windows are left open
                assert producer.finish(300) == total
                cfg = config(tmp_path, db_url, kafka_bootstrap, topic, idle_close_seconds=2,
                             metrics_port=free_port())
            service = Service(cfg, tmp_path / f"run-{run + 1}.log").start()
            services.append(service)

        def stored_total() -> int:
            windows = store.list_windows()
            return int(windows["record_count"].sum()) if len(windows) else 0

        wait_for(lambda: progress() >= total or not service.running(), 240, "every record to be read")
        assert service.running(), service.log()
        # the end-of-stream windows close 2 s after the last record; then nothing may change
        wait_for_value(stored_total, total, 15, 120, f"{total} records in closed windows", service.running)
        time.sleep(1)  # a duplicate would show up now
        assert service.running(), service.log()
        port = int(yaml.safe_load(cfg.read_text())["metrics"]["port"])
        samples = scrape(port)
        assert service.stop() == 0, service.log()
    except BaseException:
        print(f"kills so far: {kills}\nlast run's log:\n{service.log()}")
        raise
    finally:
        producer.stop()
        for s in services:
            if s.running():
                s.stop(signal.SIGKILL)
    elapsed = time.monotonic() - t_start

    print(f"{len(kills)} kills in {elapsed:.0f}s on {store.dialect}:")
    for k in kills:
        print(f"  run {k.run} {k.kind:9} +{k.delay_s:.2f}s (up {k.uptime_s:5.2f}s): stored {k.stored_before:>6} -> "
              f"{k.stored_at_kill:>6} of {k.produced_at_kill:>6} produced, {k.closed_at_kill:>3} windows closed, "
              f"{k.late} late | "
              f"{k.last_log_line}")

    problems: list[str] = []  # every check, so one run shows the whole picture
    windows = store.list_windows()
    stored = Counter()
    for r in windows.itertuples():
        stored[(r.model, int(r.window_start_ms))] += int(r.record_count)
    lines = []
    for key in sorted(set(stored) | set(expected), key=lambda k: (k[1], k[0])):
        if stored[key] != expected[key]:
            segs = windows[(windows.model == key[0]) & (windows.window_start_ms == key[1])]
            lines.append(f"  {key[0]} {key[1]} (+{(key[1] - t0) // HOUR}h): produced {expected[key]}, "
                         f"stored {stored[key]} in segments "
                         f"{list(zip(segs.segment, segs.record_count, segs.close_reason))}")
    final_late = sum(v for (name, _), v in samples.items() if name == "inferwatch_records_late_total")
    if lines:
        problems.append(f"{len(lines)} of {len(expected)} windows miscounted; records counted late per run "
                        f"shortly before its kill: {[k.late for k in kills]}, by the last run: {final_late}\n"
                        + "\n".join(lines[:60]))
    if sum(stored.values()) != total:
        problems.append(f"{total} records produced, {sum(stored.values())} stored")
    # every segment stored once
    duplicated = windows.duplicated(["model", "model_version", "window_start_ms", "segment"])
    if duplicated.any():
        problems.append(f"segments stored twice:\n{windows[duplicated]}")
    # the stored offsets are the topic's end: every record read, none skipped
    ends = end_offsets(kafka_bootstrap, topic)
    if store.load_offsets(group) != ends:
        problems.append(f"stored offsets {store.load_offsets(group)}, the topic's end {ends}")
    # the last run made nothing late
    if final_late:
        problems.append(f"the last run counted {final_late} records late")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)
    # the kills landed mid-stream, not after the last record was stored
    assert sum(k.stored_at_kill < N_RECORDS for k in kills) >= N_KILLS - 2, kills
    store.close()
