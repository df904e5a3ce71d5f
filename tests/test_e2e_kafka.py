"""End to end on the real broker and real databases, with the service as a real process.

The data is the real ACS employment extract (see inferwatch/demo_data/README.md): a stream of
2015 hold-out records (same population as the reference), then 2018 records (the drift
episode), then 2015 records again; and beside it a stationary control model fed only 2015
records. Every record is produced to Kafka and consumed by ``inferwatch run``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest
import yaml
from kafka import KafkaConsumer

from inferwatch import demo
from inferwatch.store import Store

from e2e import REPO, Service, WebhookReceiver, create_topic, free_port, produce, scrape, wait_for, write_config

DAY_MS = 86_400_000
RPD = 15_000  # records per day = per 1-day window for the drift-episode model
EPISODE = "employment-episode"
CONTROL = "employment-control"

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _ms(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


def expected_counts(records) -> Counter:
    """Records per (model, window start) for 1-day windows."""
    return Counter((r["model"], _ms(r["timestamp"]) // DAY_MS * DAY_MS) for r in records)


def base_config(tmp_path, db_url, bootstrap, topic, **extra):
    sections = {
        "database_url": db_url,
        "kafka": {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": f"g-{topic}",
                  "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200},
        "window": {"length_seconds": 86_400, "idle_close_seconds": 4},
        "reference": {"bootstrap_records": 5000},
        "metrics": {"port": free_port()},
    }
    for key, value in extra.items():
        sections[key] = {**sections.get(key, {}), **value} if isinstance(value, dict) else value
    return write_config(tmp_path / "inferwatch.yaml", **sections)


def metrics_port(cfg) -> int:
    return int(yaml.safe_load(cfg.read_text())["metrics"]["port"])


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_real_dataset_through_kafka_flags_the_drift_episode(tmp_path, db_url, kafka_bootstrap):
    episode = demo.episode_records(model_name=EPISODE, n_stable=2 * RPD, n_drift=2 * RPD, n_recovery=2 * RPD,
                                   records_per_day=RPD)
    control = demo.episode_records(model_name=CONTROL, n_stable=20_000, n_drift=0, n_recovery=10_000,
                                   records_per_day=5_000, seed=3)
    records = sorted(episode.records + control.records, key=lambda r: r["timestamp"])
    topic = f"predictions-{uuid.uuid4().hex[:8]}"
    hook = WebhookReceiver()
    cfg = base_config(tmp_path, db_url, kafka_bootstrap, topic, alerting={"webhook_url": hook.url})

    # the episode model's reference comes from its training data, through the CLI
    ref_file = demo.write_reference_file(tmp_path / "train.parquet")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "reference", "set", "--model", EPISODE,
                           "--file", str(ref_file), "--config", str(cfg)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # the control model gets no reference: its first 5,000 records become one

    produced = produce(kafka_bootstrap, topic, (demo.encode_record(r) for r in records))
    assert produced == len(records) == 6 * RPD + 30_000
    expected = expected_counts(records)

    service = Service(cfg, tmp_path / "service.log").start()
    store = Store(db_url)
    store.create_schema()  # idempotent; lets the test read before the service has started
    try:
        wait_for(lambda: len(store.list_windows()) == len(expected) or not service.running(), 300,
                 f"{len(expected)} closed windows")
        assert service.running(), service.log()
        wait_for(lambda: len(hook.bodies) >= 2, 30, "two webhook messages")
        time.sleep(2)  # nothing more may arrive
        samples = scrape(metrics_port(cfg))
    finally:
        code = service.stop()
        hook.close()
    assert code == 0, service.log()

    windows = store.list_windows()
    # every produced record counted exactly once, in the window its timestamp belongs to
    stored = Counter({(r.model, int(r.window_start_ms)): int(r.record_count) for r in windows.itertuples()})
    assert stored == expected
    assert set(windows["status"]) == {"ok"}

    # the windows made of 2018 records are flagged; the 2015 ones and the control stream are not
    drift_days = {int(episode.drift_start.timestamp() * 1000), int(episode.drift_start.timestamp() * 1000) + DAY_MS}
    flagged = {(r.model, int(r.window_start_ms)) for r in windows.itertuples() if r.dataset_drifted}
    assert flagged == {(EPISODE, d) for d in drift_days}
    ep = windows[windows.model == EPISODE].set_index("window_start_ms")
    for start in drift_days:
        wid = int(ep.loc[start, "id"])
        res = store.list_drift_results(wid).set_index("column_name")
        # ancestry (ANC) is the feature whose population really changed between 2015 and 2018
        assert bool(res.loc["features.ANC", "drifted"]) and res.loc["features.ANC", "p_value"] < 1e-6
    assert windows[windows.model == CONTROL]["drift_share"].max() < 0.15

    # /metrics serves exactly the stored results of each model's last window
    for model in (EPISODE, CONTROL):
        last = windows[windows.model == model].sort_values("window_start_ms").iloc[-1]
        mv = (("model", model), ("model_version", "1"))
        assert samples[("inferwatch_window_records", mv)] == last.record_count
        assert samples[("inferwatch_dataset_drift_share", mv)] == pytest.approx(last.drift_share, abs=0)
        assert samples[("inferwatch_dataset_drift_detected", mv)] == float(last.dataset_drifted)
        res = store.list_drift_results(int(last.id))
        for r in res.itertuples():
            labels = tuple(sorted({"model": model, "model_version": "1", "column": r.column_name.split(".", 1)[1],
                                   "role": r.role, "method": r.method}.items()))
            assert samples[("inferwatch_drift_p_value", labels)] == r.p_value
            assert samples[("inferwatch_drift_statistic", labels)] == r.statistic
            assert samples[("inferwatch_drift_neg_log10_p_value", labels)] == r.neg_log10_p
            col_labels = tuple((k, v) for k, v in labels if k != "method")
            assert samples[("inferwatch_missing_share", col_labels)] == r.missing_share == 0.0
        assert samples[("inferwatch_records_ingested_total", (("model", model),))] == sum(
            n for (m, _), n in expected.items() if m == model)

    firing_key = (("alertname", "InferwatchDatasetDrift"), ("model", EPISODE), ("model_version", "1"))
    assert samples[("inferwatch_alert_firing", firing_key)] == 0
    assert not any(name == "inferwatch_alert_firing" and ("model", CONTROL) in labels for name, labels in samples)

    # one firing and one resolved message for the episode, none for the control model
    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
    for body in hook.bodies:
        assert body["version"] == "4" and body["alerts"][0]["labels"]["model"] == EPISODE
    firing, resolved = (b["alerts"][0] for b in hook.bodies)
    assert firing["endsAt"] == "0001-01-01T00:00:00Z"
    assert firing["annotations"]["window_start"] == episode.drift_start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert "ANC" in firing["annotations"]["drifted_columns"].split(",")
    assert resolved["startsAt"] == firing["startsAt"] and resolved["fingerprint"] == firing["fingerprint"]
    store.close()


BROKEN = [
    ("invalid_json", b'{"model": "m", '),
    ("invalid_utf8", b'{"model": "\xff\xfe"}'),
    ("not_an_object", b"[1, 2, 3]"),
    ("missing_field", json.dumps({"model": "m", "model_version": "1", "timestamp": 1, "features": {},
                                  "predictions": {}}).encode()),
    ("wrong_type", json.dumps({"model": "m", "model_version": "1", "timestamp": 1, "request_id": "x",
                               "features": {"a": [1, 2]}, "predictions": {}}).encode()),
    ("invalid_timestamp", json.dumps({"model": "m", "model_version": "1", "timestamp": "last tuesday",
                                      "request_id": "x", "features": {}, "predictions": {}}).encode()),
    ("oversize", json.dumps({"model": "m", "model_version": "1", "timestamp": 1, "request_id": "x",
                             "features": {"pad": "x" * 9000}, "predictions": {}}).encode()),
    ("empty_message", b""),
    ("too_many_features", json.dumps({"model": "m", "model_version": "1", "timestamp": 1, "request_id": "x",
                                      "features": {f"f{i}": i for i in range(60)}, "predictions": {}}).encode()),
]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_bad_input_goes_to_the_dead_letter_topic_and_the_consumer_keeps_going(tmp_path, db_url, kafka_bootstrap):
    good = demo.episode_records(model_name=CONTROL, n_stable=3000, n_drift=0, n_recovery=0,
                                records_per_day=1000).records
    stream, broken_sent = [], []
    for i, rec in enumerate(good):
        stream.append((demo.encode_record(rec), [("trace-id", f"good-{i}".encode())]))
        if i % 300 == 150:  # broken messages scattered through the stream, each kind several times
            for reason, payload in BROKEN:
                headers = [("trace-id", f"bad-{i}-{reason}".encode())]
                stream.append((payload, headers))
                broken_sent.append((reason, payload, headers))
    topic = f"mixed-{uuid.uuid4().hex[:8]}"
    cfg = base_config(tmp_path, db_url, kafka_bootstrap, topic,
                      kafka={"max_message_bytes": 8192, "max_features": 50, "max_poll_records": 250})
    produce(kafka_bootstrap, topic, stream)

    service = Service(cfg, tmp_path / "service.log").start()
    store = Store(db_url)
    store.create_schema()
    try:
        wait_for(lambda: sum(store.list_windows()["record_count"]) == len(good) or not service.running(), 180,
                 "every valid record in a closed window")
        assert service.running(), service.log()
        samples = scrape(metrics_port(cfg))
    finally:
        code = service.stop()
    assert code == 0, service.log()

    # every valid record counted exactly once
    assert Counter({int(r.window_start_ms): int(r.record_count) for r in store.list_windows().itertuples()}) == \
        Counter(_ms(r["timestamp"]) // DAY_MS * DAY_MS for r in good)
    # every broken one in the dead-letter topic, with its reason, original bytes and headers
    consumer = KafkaConsumer(f"{topic}.dead-letter", bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    dead = [(dict(m.headers), m.value) for m in consumer]
    consumer.close()
    assert len(dead) == len(broken_sent)
    for (headers, value), (reason, payload, sent_headers) in zip(dead, broken_sent):
        assert headers["inferwatch-reject-reason"].decode() == reason
        assert headers["trace-id"] == sent_headers[0][1]
        assert headers["inferwatch-source-topic"].decode() == topic
        assert value == payload
    by_reason = Counter(reason for reason, _, _ in broken_sent)
    for reason, n in by_reason.items():
        assert samples[("inferwatch_records_rejected_total", (("reason", reason),))] == n
    store.close()


def test_sigterm_mid_stream_then_restart_loses_nothing_and_counts_nothing_twice(tmp_path, kafka_bootstrap):
    """On a 3-partition topic, whose partitions one process reads at different speeds."""
    db_url = f"sqlite:///{tmp_path / 'restart.db'}"
    records = demo.episode_records(model_name=CONTROL, n_stable=40_000, n_drift=0, n_recovery=0,
                                   records_per_day=8_000).records
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    cfg = base_config(tmp_path, db_url, kafka_bootstrap, topic, kafka={"max_poll_records": 200})
    create_topic(kafka_bootstrap, topic, 3)
    produce(kafka_bootstrap, topic, (demo.encode_record(r) for r in records), keyed=True)
    store = Store(db_url)
    store.create_schema()

    def progress() -> int:
        return sum(store.load_offsets(f"g-{topic}").values())

    first = Service(cfg, tmp_path / "first.log").start()
    wait_for(lambda: progress() >= 4000, 120, "the first run to store some progress")
    assert first.stop() == 0, first.log()
    stopped_at = progress()
    assert 0 < stopped_at < len(records), "SIGTERM must land mid-stream"

    second = Service(cfg, tmp_path / "second.log").start()
    try:
        wait_for(lambda: sum(store.list_windows()["record_count"]) >= len(records) or not second.running(), 180,
                 "all records in closed windows")
    finally:
        assert second.stop() == 0, second.log()
    stored = Counter({int(r.window_start_ms): int(r.record_count) for r in store.list_windows().itertuples()})
    assert stored == Counter(_ms(r["timestamp"]) // DAY_MS * DAY_MS for r in records)
    assert progress() == len(records) and len(store.load_offsets(f"g-{topic}")) == 3
    store.close()


def test_one_process_reading_a_partitioned_backlog_counts_exactly(tmp_path, kafka_bootstrap):
    """Partitions are fetched at different speeds; none of their records may be made late."""
    t0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    hour = 3_600_000
    records = [{"model": "m", "model_version": "1", "timestamp": t0 + i * 1000, "request_id": f"r{i}",
                "features": {"x": i % 97, "c": "abc"[i % 3]}, "predictions": {"p": (i % 10) / 10}}
               for i in range(30_000)]
    topic = f"backlog-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, 3)
    produce(kafka_bootstrap, topic, (json.dumps(r).encode() for r in records), keyed=True)
    db_url = f"sqlite:///{tmp_path / 'backlog.db'}"
    cfg = base_config(tmp_path, db_url, kafka_bootstrap, topic,
                      window={"length_seconds": 3600, "origin": "2024-01-01T00:00:00Z"})
    store = Store(db_url)
    store.create_schema()
    service = Service(cfg, tmp_path / "service.log").start()
    try:
        wait_for(lambda: sum(store.list_windows()["record_count"]) >= 30_000 or not service.running(), 180,
                 "all records in closed windows")
        samples = scrape(metrics_port(cfg))
    finally:
        assert service.stop() == 0, service.log()
    stored = Counter({int(r.window_start_ms): int(r.record_count) for r in store.list_windows().itertuples()})
    assert stored == Counter((r["timestamp"] - t0) // hour * hour + t0 for r in records)
    assert samples.get(("inferwatch_records_late_total", (("model", "m"),)), 0) == 0
    store.close()
