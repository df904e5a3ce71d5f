"""Horizontal scale: several collector processes in one consumer group share the windows.

Three ``inferwatch run`` processes (same consumer group, same PostgreSQL database) read a
six-partition topic while prediction records stream in; the first of them, which has read
every partition before the others joined, is killed with SIGKILL and a fourth is added
mid-stream. Records are keyed by request id, so every partition carries every model, and their
event times increase with up to 2 s of disorder (the allowed lateness is 3 s): no record is
really late. Each member writes partial rows for its partitions; a window may close only when
every partition's watermark has passed its end, and then exactly once, with every member's rows.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from inferwatch.store import Store

from e2e import (Outgoing, Service, StreamProducer, assigned_partitions, create_topic, end_offsets, free_port,
                 json_prediction, scrape, wait_for, wait_for_value, write_config)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 6
MODELS = ("fraud", "churn", "eta")
VERSION = "7"
WINDOW_MS = 10_000  # 1,000 records per window at STEP_MS: a window closes every second of the run
STEP_MS = 10
DISORDER_MS = 2_000  # a record's event time is up to this much before its position in the stream
LATENESS_S = 3
RATE = 1_000  # records per second
MAX_RECORDS = 240_000  # the stream is stopped well before (about a minute of it is used)
CLIENT = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


class Stream:
    """The i-th record of the stream, reproducibly: event time, model and payload."""

    def __init__(self, t0: int, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        self.times = t0 + np.arange(MAX_RECORDS, dtype=np.int64) * STEP_MS - rng.integers(0, DISORDER_MS,
                                                                                         MAX_RECORDS)
        self.models = rng.integers(0, len(MODELS), MAX_RECORDS)
        self.amount = np.round(rng.lognormal(3.0, 0.8, MAX_RECORDS), 2)
        self.tenure = rng.integers(0, 120, MAX_RECORDS)
        self.score = np.round(rng.beta(2, 6, MAX_RECORDS), 4)
        self.request_ids = [f"{uuid.UUID(int=(int(a) << 64) | i)}" for i, a in
                            enumerate(rng.integers(0, 2**63, MAX_RECORDS))]

    def messages(self):
        for i in range(MAX_RECORDS):
            rid = self.request_ids[i]
            yield Outgoing(json_prediction(
                MODELS[self.models[i]], VERSION, int(self.times[i]), rid,
                {"amount": float(self.amount[i]), "tenure_months": int(self.tenure[i]),
                 "channel": ("web", "app", "store")[i % 3]},
                {"score": float(self.score[i])}, 2.5), key=rid.encode())


def member_config(tmp_path, name, db_url, bootstrap, topic):
    port = free_port()
    cfg = write_config(
        tmp_path / f"{name}.yaml",
        database_url=db_url,
        kafka={"bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"g-{topic}",
               "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200, "max_poll_records": 200,
               "client_options": CLIENT},
        window={"length_seconds": WINDOW_MS // 1000, "max_records": 100_000,
                "allowed_lateness_seconds": LATENESS_S, "idle_close_seconds": 10},
        reference={"bootstrap_records": 500},
        metrics={"port": port},
    )
    return cfg, port


def by_model(samples, name: str) -> dict[str, float]:
    return {dict(labels)["model"]: v for (n, labels), v in samples.items() if n == name}


class CloseMonitor:
    """Watches the shared database from a background thread: for each closed window, the stored
    offsets read just after its row was first seen (so read after the close was committed)."""

    def __init__(self, db_url: str, group: str, interval: float = 0.2) -> None:
        self.store = Store(db_url)
        self.group = group
        self.interval = interval
        self.after_close: dict[int, dict[tuple[str, int], int]] = {}
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="close-monitor", daemon=True)

    def start(self) -> CloseMonitor:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ids = self.store.list_windows()["id"].tolist()
                offsets = self.store.load_offsets(self.group)
                for i in ids:
                    self.after_close.setdefault(int(i), offsets)
                self._stop.wait(self.interval)
        except Exception as exc:  # reported by the test
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.store.close()


def settled(members: list[Service]) -> bool:
    """Every member holds partitions, and together they hold each partition once."""
    lists = [assigned_partitions(m.log_path.read_text(errors="replace")) for m in members]
    if any(not held for held in lists):
        return False
    flat = [tp for held in lists for tp in held]
    return len(flat) == len(set(flat)) == PARTITIONS


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_three_members_one_killed_one_added_share_windows_exactly(tmp_path, db_url, kafka_bootstrap):
    t0 = (int(time.time() * 1000) - 3 * 86_400_000) // WINDOW_MS * WINDOW_MS
    stream = Stream(t0)
    topic = f"scale-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    create_topic(kafka_bootstrap, topic, PARTITIONS)
    store = Store(db_url)
    store.create_schema()
    configs = {name: member_config(tmp_path, name, db_url, kafka_bootstrap, topic) for name in "abcd"}
    members: dict[str, Service] = {}

    def start(name: str) -> Service:
        members[name] = Service(configs[name][0], tmp_path / f"{name}.log").start()
        return members[name]

    def stored_offsets() -> dict[tuple[str, int], int]:
        return store.load_offsets(group)

    def logs() -> str:
        return "\n".join(f"--- {n}:\n{m.log()}" for n, m in members.items())

    t_start = time.monotonic()
    monitor = CloseMonitor(db_url, group).start()
    producer = StreamProducer(kafka_bootstrap, topic, stream.messages(), RATE).start()
    markers = None
    try:
        a = start("a")
        # a alone reads every partition before the others join
        wait_for(lambda: (len(o := stored_offsets()) == PARTITIONS and min(o.values()) > 0) or not a.running(),
                 90, "a to store progress on all six partitions")
        assert a.running(), a.log()
        events = {"b, c started": int(time.time() * 1000)}
        start("b")
        start("c")
        wait_for(lambda: settled([members[n] for n in "abc"]) or not all(m.running() for m in members.values()),
                 90, "a, b and c to share the partitions")
        assert all(m.running() for m in members.values()), logs()
        time.sleep(3)
        late_a = by_model(scrape(configs["a"][1]), "inferwatch_records_late_total")
        held_by_a = assigned_partitions(a.log_path.read_text())
        assert a.stop(signal.SIGKILL, timeout=30) == -signal.SIGKILL, a.log()
        at_kill = stored_offsets()
        events["a killed"] = int(time.time() * 1000)
        # b and c take a's partitions over once a's session has expired
        wait_for(lambda: all(o > at_kill[tp] for tp, o in stored_offsets().items()), 90,
                 "every partition to advance after the kill")
        events["d started"] = int(time.time() * 1000)
        d = start("d")
        wait_for(lambda: settled([members[n] for n in "bcd"]) or not all(members[n].running() for n in "bcd"),
                 90, "b, c and d to share the partitions")
        assert all(members[n].running() for n in "bcd"), logs()
        held_by_d = assigned_partitions(d.log_path.read_text())
        wait_for(lambda: sum(by_model(scrape(configs["d"][1]), "inferwatch_records_ingested_total").values()) > 0,
                 60, "d to ingest records")
        time.sleep(3)
        producer.stop()
        n = producer.finish(60)
        # then one record per model and partition past every data window's end plus the lateness
        last_end = (int(stream.times[:n].max()) // WINDOW_MS + 1) * WINDOW_MS
        marker_t = last_end + LATENESS_S * 1000 + 1000
        ends = [Outgoing(json_prediction(model, VERSION, marker_t, f"end-{p}-{model}",
                                         {"amount": 1.0, "tenure_months": 1, "channel": "web"}, {"score": 0.5}, 2.5),
                         partition=p)
                for p in range(PARTITIONS) for model in MODELS]
        markers = StreamProducer(kafka_bootstrap, topic, ends, 1000).start()
        assert markers.finish(60) == len(ends)
        total = n + len(ends)

        def stored_total() -> int:
            w = store.list_windows()
            return int(w["record_count"].sum()) if len(w) else 0

        def survivors_running() -> bool:
            return all(members[x].running() for x in "bcd")

        wait_for(lambda: sum(stored_offsets().values()) >= total or not survivors_running(), 180,
                 "every record to be read")
        assert survivors_running(), logs()
        # the end-of-stream windows close 10 s after the last record; then nothing may change
        wait_for_value(stored_total, total, 25, 120, f"{total} records in closed windows", survivors_running)
        time.sleep(1)  # a duplicate close would show up now
        assert survivors_running(), logs()
        samples = {x: scrape(configs[x][1]) for x in "bcd"}
        for x in "bcd":
            assert members[x].stop() == 0, members[x].log()
    except BaseException:
        print(logs())
        raise
    finally:
        producer.stop()
        monitor.stop()
        for m in members.values():
            if m.running():
                m.stop(signal.SIGKILL)
    elapsed = time.monotonic() - t_start

    times = np.concatenate([stream.times[:n], np.full(len(ends), marker_t)])
    models = np.concatenate([stream.models[:n], np.repeat(np.arange(len(MODELS))[None, :], PARTITIONS, 0).ravel()])
    parts = np.array([producer.partitions[i] for i in range(n)] + [markers.partitions[i] for i in range(len(ends))])
    expected = Counter(zip((MODELS[m] for m in models), (times // WINDOW_MS * WINDOW_MS).tolist()))
    windows = store.list_windows()

    def rel(ms) -> str:  # wall-clock time relative to the stream's start
        return f"{(int(ms) - producer.sent_at_ms[0]) / 1000:.1f}s"

    ingested = {x: sum(by_model(samples[x], "inferwatch_records_ingested_total").values()) for x in "bcd"}
    print(f"\n{n} records streamed, {len(expected)} windows, {elapsed:.0f}s; a held {held_by_a} "
          f"and was killed, d joined with {held_by_d}; ingested per survivor {ingested}; stream times: "
          + ", ".join(f"{what} {rel(ms)}" for what, ms in events.items()))

    problems: list[str] = []  # every check, so one run shows the whole picture

    # (a) merged totals exact, per window
    stored = Counter()
    for r in windows.itertuples():
        stored[(r.model, int(r.window_start_ms))] += int(r.record_count)
    closed_at = {(r.model, int(r.window_start_ms)): int(r.closed_at_ms) for r in windows.itertuples()}
    wrong = [f"  {k[0]} +{(k[1] - t0) // 1000}s: produced {expected[k]}, stored {stored[k]}"
             + (f" (closed at {rel(closed_at[k])})" if k in closed_at else "")
             for k in sorted(set(stored) | set(expected), key=lambda k: (k[1], k[0])) if stored[k] != expected[k]]
    if wrong:
        problems.append(f"{len(wrong)} of {len(expected)} windows miscounted ({total} produced, "
                        f"{sum(stored.values())} stored):\n" + "\n".join(wrong[:60]))
    if store.load_offsets(group) != end_offsets(kafka_bootstrap, topic):
        problems.append(f"stored offsets {store.load_offsets(group)} != end offsets "
                        f"{end_offsets(kafka_bootstrap, topic)}")

    # (b) each window closed once, and only once every partition's watermark had passed its end
    per_start = windows.groupby(["model", "model_version", "window_start_ms"]).size()
    if not (per_start == 1).all():
        problems.append(f"windows closed more than once:\n{per_start[per_start > 1]}")
    data = windows[windows.window_start_ms < last_end]
    if set(data.close_reason) != {"watermark"}:
        problems.append(f"data windows not closed by their watermark: {Counter(data.close_reason)}")
    # the stored offsets read right after each close was seen must be past every record of the
    # window on every partition: rows are stored with their offsets, so an offset not yet stored
    # means a record of the window not yet counted when it closed
    recs = pd.DataFrame({"model": [MODELS[m] for m in models], "start": times // WINDOW_MS * WINDOW_MS,
                         "partition": parts, "offset": [producer.offsets[i] for i in range(n)]
                         + [markers.offsets[i] for i in range(len(ends))]})
    last_offset = {key: g.droplevel([0, 1]) for key, g in
                   recs.groupby(["model", "start", "partition"])["offset"].max().groupby(level=[0, 1])}
    early = []
    for r in windows.itertuples():
        after = monitor.after_close.get(int(r.id))
        if after is None:
            continue
        behind = [f"p{p}: next offset stored {after.get((topic, int(p)), 0)}, the window's last record at {off}"
                  for p, off in last_offset.get((r.model, int(r.window_start_ms)), pd.Series()).items()
                  if after.get((topic, int(p)), 0) <= off]
        if behind:
            early.append(f"  {r.model} +{(r.window_start_ms - t0) // 1000}s closed ({r.close_reason}) at "
                         f"{rel(r.closed_at_ms)} while {'; '.join(behind)}")
    if monitor.error is not None or not set(windows["id"]) <= set(monitor.after_close):
        problems.append(f"the close monitor missed windows (error: {monitor.error!r})")
    if early:
        problems.append(f"{len(early)} of {len(windows)} windows closed before every partition was read past "
                        f"them ({', '.join(f'{what} {rel(ms)}' for what, ms in events.items())}):\n"
                        + "\n".join(early[:40]))
    # nothing was late: a's counts up to its kill, the survivors' over their whole run
    late = {"a": sum(late_a.values()), **{x: sum(by_model(samples[x], "inferwatch_records_late_total").values())
                                          for x in "bcd"}}
    if any(late.values()):
        problems.append(f"records counted late per member (a: until shortly before its kill): {late}")

    # (c) a had read every partition before b and c joined; every partition was read on after a's
    # kill, so by another member; each survivor, d included, ingested records
    if not all(at_kill[tp] < o for tp, o in end_offsets(kafka_bootstrap, topic).items()):
        problems.append(f"partitions not read after a's kill: stored then {at_kill}")
    if not all(v > 0 for v in ingested.values()):
        problems.append(f"a member ingested nothing: {ingested}")
    assert not problems, "\n".join(problems)
    store.close()
