"""The pipeline in process, on SQLite and PostgreSQL: exact counts, bootstrap references,
drift results, restart from stored state, and the webhook to a real HTTP server."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from alerting.events import OutgoingRequest
from inferwatch import demo
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.pipeline import Pipeline
from inferwatch.reference import profile_frame, read_reference_file
from inferwatch.runner import log_dead_letter, open_store, run_in_process
from collector.message import Message

from e2e import WebhookReceiver

DAY_MS = 86_400_000


def _settings(db_url, **extra):
    base = {"database_url": db_url, "window": {"length_seconds": 86_400, "idle_close_seconds": None},
            "reference": {"bootstrap_records": 2000},
            "metrics": {"enabled": False}}
    base.update(extra)
    return load_config(None, **base)


def set_training_reference(store, model: str, tmp_path) -> None:
    """Store the demo model's training half as the reference of every version of ``model``."""
    ref = read_reference_file(demo.write_reference_file(tmp_path / "train.parquet"))
    with store.transaction() as conn:
        store.put_reference(conn, model, "*", "training half", len(ref), profile_frame(ref, set(), 10, 50_000).to_dict())


def _day(rec) -> int:
    return int(datetime.fromisoformat(rec["timestamp"]).timestamp() * 1000) // DAY_MS * DAY_MS


@pytest.fixture(scope="module")
def episode():
    return demo.episode_records(model_name="ep", n_stable=10_000, n_drift=10_000, n_recovery=10_000,
                                records_per_day=10_000)


def test_in_process_replay_counts_detects_and_alerts(db_url, episode, tmp_path):
    hook = WebhookReceiver()
    settings = _settings(db_url, alerting={"webhook_url": hook.url})
    store = open_store(settings)
    set_training_reference(store, "ep", tmp_path)
    metrics = Metrics()
    try:
        run_in_process(settings, (demo.encode_record(r) for r in episode.records), store, metrics,
                       source_name="replay", batch_size=3000)
    finally:
        hook.close()
    windows = store.list_windows()
    assert dict(zip(windows.window_start_ms, windows.record_count)) == Counter(map(_day, episode.records))
    assert windows.dataset_drifted.tolist() == [False, True, False]
    drift_day = store.list_drift_results(int(windows.id[1])).set_index("column_name")
    assert drift_day.loc["features.ANC", "p_value"] < 1e-6 and drift_day.loc["features.ANC", "method"] == "chi2"
    assert drift_day.loc["features.AGEP", "method"] == "ks"
    for col in ("psi", "js_distance"):
        assert drift_day[col].notna().all() and (drift_day[col] >= 0).all()
    assert drift_day["wasserstein_normalised"].notna().sum() == 2  # AGEP and the predicted probability
    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
    assert store.load_offsets("replay") == {("replay", 0): len(episode.records)}
    store.close()


def test_bootstrap_reference_is_exactly_the_first_n_records(db_url, episode):
    settings = _settings(db_url)
    store = open_store(settings)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    payloads = [demo.encode_record(r) for r in episode.records[:2500]]
    pipeline.process([Message("t", 0, i, p) for i, p in enumerate(payloads[:1500])])
    with store.transaction() as conn:
        assert store.get_reference(conn, "ep", "1") is None
    pipeline.process([Message("t", 0, 1500 + i, p) for i, p in enumerate(payloads[1500:])])
    with store.transaction() as conn:
        key, profile = store.get_reference(conn, "ep", "1")
        assert store.reference_partial_counts(conn) == {}
    assert key == "1"
    ages = [r["features"]["AGEP"] for r in episode.records[:2000]]
    agep = profile["columns"]["features.AGEP"]
    assert agep["count"] == 2000 and agep["mean"] == pytest.approx(sum(ages) / 2000, rel=1e-12)
    store.close()


def test_restart_from_stored_state_counts_each_record_once(db_url, episode):
    settings = _settings(db_url)
    payloads = [demo.encode_record(r) for r in episode.records]
    store = open_store(settings)
    first = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    for start in range(0, 14_000, 2000):
        first.process([Message("t", 0, start + i, p) for i, p in enumerate(payloads[start:start + 2000])])
    del first  # a crash: nothing but the store survives
    resumed_at = store.load_offsets("g")[("t", 0)]
    assert resumed_at == 14_000
    second = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    for start in range(resumed_at, len(payloads), 2000):
        second.process([Message("t", 0, start + i, p) for i, p in enumerate(payloads[start:start + 2000])])
    second.close_all()
    windows = store.list_windows()
    assert dict(zip(windows.window_start_ms, windows.record_count)) == Counter(map(_day, episode.records))
    store.close()


def test_windows_without_reference_are_stored_as_such(db_url):
    settings = _settings(db_url, reference={"bootstrap_records": 100_000})
    store = open_store(settings)
    recs = demo.episode_records(model_name="x", n_stable=500, n_drift=0, n_recovery=0, records_per_day=500).records
    run_in_process(settings, (demo.encode_record(r) for r in recs), store, Metrics(), source_name="s")
    windows = store.list_windows()
    assert windows.status.tolist() == ["no_reference"] and windows.record_count.tolist() == [500]
    assert windows.drift_share.isna().all()
    store.close()


def test_undelivered_notifications_wait_and_survive_a_restart(db_url, episode, tmp_path):
    from e2e import free_port

    port = free_port()
    dead_url = f"http://127.0.0.1:{port}/hook"  # nobody listens yet
    settings = _settings(db_url, alerting={"webhook_url": dead_url, "timeout_seconds": 1})
    store = open_store(settings)
    set_training_reference(store, "ep", tmp_path)
    metrics = Metrics()
    run_in_process(settings, (demo.encode_record(r) for r in episode.records), store, metrics, source_name="r")
    pending = store.list_outbox("pending")[::-1]  # oldest first
    assert [json.loads(m.body)["status"] for m in pending] == ["firing", "resolved"]
    # failures back off instead of being retried on every batch
    assert metrics.outbox_deliveries.labels("webhook", "failed")._value.get() <= 2

    hook = WebhookReceiver(port)  # the receiver comes back; inferwatch restarts
    try:
        restarted = Pipeline(settings, store, Metrics(), log_dead_letter, "r")
        delivered = 0
        deadline = time.monotonic() + 30
        while delivered < 2 and time.monotonic() < deadline:  # each waits out its stored backoff
            delivered += restarted.deliver_outbox()
            time.sleep(0.2)
        assert delivered == 2
    finally:
        hook.close()
    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"] and store.list_outbox("pending") == []
    store.close()


def test_alert_state_is_per_model_version(db_url, tmp_path):
    """A drifting canary (v2) next to a healthy v1: v2 fires once, v1 never resolves it."""
    hook = WebhookReceiver()
    settings = _settings(db_url, alerting={"webhook_url": hook.url})
    store = open_store(settings)
    set_training_reference(store, "m", tmp_path)
    healthy = demo.episode_records(model_name="m", model_version="1", n_stable=30_000, n_drift=0, n_recovery=0,
                                   records_per_day=10_000).records
    canary = demo.episode_records(model_name="m", model_version="2", n_stable=0, n_drift=30_000, n_recovery=0,
                                  records_per_day=10_000).records
    merged = sorted(healthy + canary, key=lambda r: r["timestamp"])
    try:
        run_in_process(settings, (demo.encode_record(r) for r in merged), store, Metrics(), source_name="s")
    finally:
        hook.close()
    assert {b["alerts"][0]["labels"]["model_version"] for b in hook.bodies} == {"2"}
    statuses = [b["status"] for b in hook.bodies]
    assert statuses[0] == "firing" and all(a != b for a, b in zip(statuses, statuses[1:]))
    store.close()


def test_a_receiver_refusing_a_notification_does_not_block_the_next(db_url):
    from test_alerting import Flaky

    srv = Flaky([400, 200])
    settings = _settings(db_url, alerting={"receivers": [{"name": "r", "type": "webhook", "url": srv.url}]})
    store = open_store(settings)
    with store.transaction() as conn:
        for n in (1, 2):
            store.enqueue(conn, OutgoingRequest("r", "POST", "", json.dumps({"n": n}), f"k{n}"), 0)
    metrics = Metrics()
    try:
        assert Pipeline(settings, store, metrics, log_dead_letter, "g").deliver_outbox() == 1
    finally:
        srv.close()
    assert [b for _, b in srv.requests] == [b'{"n": 1}', b'{"n": 2}']
    assert store.list_outbox("pending") == [] and metrics.outbox_deliveries.labels("r", "dead")._value.get() == 1
    store.close()


def test_a_new_reference_applies_without_a_restart(db_url, tmp_path):
    # 2,000-record days: ANC's change (p ~ 1e-4) is judged per column, without the correction
    settings = _settings(db_url, drift={"alpha": 0.01, "correction": "none"})
    store = open_store(settings)
    stable = demo.episode_records(model_name="r", n_stable=4000, n_drift=0, n_recovery=0,
                                  records_per_day=2000).records
    drifted = demo.episode_records(model_name="r", n_stable=0, n_drift=20_000, n_recovery=0,
                                   records_per_day=20_000, seed=5).records
    payloads = [demo.encode_record(r) for r in stable]
    train = read_reference_file(demo.write_reference_file(tmp_path / "train.parquet"))

    def set_reference(frame):
        with store.transaction() as conn:
            store.put_reference(conn, "r", "*", "test", len(frame), profile_frame(frame, set(), 10, 50_000).to_dict())

    set_reference(train)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    first = pipeline.process([Message("t", 0, i, p) for i, p in enumerate(payloads[:2001])])  # closes day 1
    assert [(w.drift_share, w.drifted_columns) for w in first] == [(0.0, ())]
    assert pipeline.process([Message("t", 0, 2001 + i, p) for i, p in enumerate(payloads[2001:])]) == []
    # the running pipeline picks up a reference built from 2018 records: the 2015 day now drifts
    from collector.decode import decode_json_batch
    frame = decode_json_batch([Message("x", 0, i, demo.encode_record(r)) for i, r in enumerate(drifted)], 1 << 20, 100).frame
    set_reference(frame[[c for c in frame.columns if c.startswith(("features.", "predictions."))]])
    second = pipeline.close_all()
    assert len(second) == 1 and "ANC" in second[0].drifted_columns
    store.close()


def test_alert_fires_on_k_of_the_last_n_windows(db_url, tmp_path):
    # days: stable, drift, drift, stable, stable -> verdicts F T T F F; 2 of the last 3 fires on
    # the second drifted day and resolves when only one of the last three drifted
    records = demo.episode_records(model_name="k", n_stable=5000, n_drift=10_000, n_recovery=10_000,
                                   records_per_day=5000).records
    hook = WebhookReceiver()
    settings = _settings(db_url, alerting={"webhook_url": hook.url, "k_of_n": [2, 3]})
    store = open_store(settings)
    set_training_reference(store, "k", tmp_path)
    try:
        run_in_process(settings, (demo.encode_record(r) for r in records), store, Metrics(),
                       source_name="replay", batch_size=5000)
    finally:
        hook.close()
    windows = store.list_windows()
    assert windows.dataset_drifted.tolist() == [False, True, True, False, False]
    assert [b["status"] for b in hook.bodies] == ["firing", "resolved"]
    starts = [b["alerts"][0]["annotations"]["window_start"] for b in hook.bodies]
    day = [datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
           for ms in windows.window_start_ms]
    assert starts == [day[2], day[4]]  # fired by the second drifted day, resolved by the second stable one
    store.close()


def test_a_column_whose_test_changes_drops_its_old_series(tmp_path):
    from collector.windows import WindowKey
    from inferwatch.pipeline import ClosedWindow

    settings = _settings(f"sqlite:///{tmp_path / 'm.db'}")
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    key = WindowKey("m", "1", 0, 0)

    def publish(method, p):
        row = {"column_name": "features.c", "role": "feature", "method": method, "statistic": 1.0, "p_value": p,
               "neg_log10_p": 1.0, "drifted": p < 0.001, "psi": 0.1, "js_distance": 0.1, "missing_share": 0.0,
               "missing_drifted": None}
        pipeline._publish(ClosedWindow(1, key, 1, 100, "watermark", "ok", 0.0, (), False), [row])

    def series(method):
        labels = {"model": "m", "model_version": "1", "column": "c", "role": "feature", "method": method}
        return metrics.registry.get_sample_value("inferwatch_drift_detected", labels)

    publish("chi2", 1e-9)
    assert series("chi2") == 1.0
    publish("fisher_exact", 0.5)
    assert series("fisher_exact") == 0.0 and series("chi2") is None  # no stale "drifted" left behind
    store.close()


def _json_messages(topic: str, partition: int, times: list[int], first_offset: int = 0) -> list[Message]:
    import json

    return [Message(topic, partition, first_offset + i, json.dumps(
        {"model": "m", "model_version": "1", "timestamp": t, "request_id": f"{partition}-{first_offset + i}",
         "features": {"x": i % 7}, "predictions": {"p": 0.5}}).encode()) for i, t in enumerate(times)]


def test_members_of_a_group_share_windows_and_close_each_only_once(db_url):
    """Two members on one database, each reading one of the two partitions: a window closes
    only when both partitions' watermarks have passed its end, with both members' rows."""
    hour = 3_600_000
    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None})
    store = open_store(settings)
    a = Pipeline(settings, store, Metrics(), log_dead_letter, group_id="g")
    b = Pipeline(settings, store, Metrics(), log_dead_letter, group_id="g")
    everything = [("t", 0), ("t", 1)]
    # member a reads partition 0 to its end, into the third window; b has not reported yet
    assert a.process(_json_messages("t", 0, [10, 20, 2 * hour]), sources={("t", 0): True},
                     partitions=everything) == []
    # b reads partition 1 (behind its end) up to the second window: the first may close now,
    # holding a's two rows and b's one
    closed = b.process(_json_messages("t", 1, [30, hour + 5]), sources={("t", 1): False}, partitions=everything)
    assert [(w.key.start_ms, w.record_count, w.reason) for w in closed] == [(0, 3, "watermark")]
    # a learns from the store that partition 1 holds the watermark at hour + 5: nothing more closes
    assert a.tick(sources={("t", 0): True}, partitions=everything) == []
    # b catches up too, and both partitions stay quiet: the watermark is the highest time (2 h)
    from collector.windows import IDLE_PARTITION_MS
    from inferwatch.store import now_ms

    closed = b.tick(now=now_ms() + IDLE_PARTITION_MS, sources={("t", 1): True}, partitions=everything)
    assert [(w.key.start_ms, w.record_count) for w in closed] == [(hour, 1)]
    # a record of the closed first window arriving at a is late, not a second close
    a.process(_json_messages("t", 0, [40], first_offset=3), sources={("t", 0): True}, partitions=everything)
    windows = store.list_windows()
    assert sorted(zip(windows["window_start_ms"], windows["segment"], windows["record_count"])) == [
        (0, 0, 3), (hour, 0, 1)]
    assert store.load_offsets("g") == {("t", 0): 4, ("t", 1): 2}
    store.close()


def test_records_of_models_beyond_the_cap_are_dead_lettered_with_their_reason(db_url):
    import json

    settings = _settings(db_url, kafka={"max_models": 2, "max_categories": 2},
                         window={"length_seconds": 3600, "idle_close_seconds": None})
    store = open_store(settings)
    dead = []
    metrics = Metrics()
    pipe = Pipeline(settings, store, metrics, dead.extend, group_id="g")
    msgs = [Message("t", 0, i, json.dumps({"model": f"m{i % 3}", "model_version": "1", "timestamp": 1000 + i,
                                           "request_id": f"r{i}", "features": {"c": f"v{i}"},
                                           "predictions": {"p": 1}}).encode()) for i in range(6)]
    pipe.process(msgs)
    # m0 and m1 are tracked; both records of m2 are dead-lettered, naming the key to raise
    assert [(r.message.offset, r.reason.value) for r in dead] == [(2, "too_many_models"), (5, "too_many_models")]
    assert "kafka.max_models" in dead[0].detail
    assert metrics.records_rejected.labels("too_many_models")._value.get() == 2
    assert metrics.records_ingested.labels("m0")._value.get() == 2
    # each model keeps its first two categories: m0 saw v0, v3 -> none capped yet
    assert metrics.values_capped.labels("m0", "too_many_categories")._value.get() == 0
    pipe.process([Message("t", 0, 6, json.dumps({"model": "m0", "model_version": "1", "timestamp": 2000,
                                                 "request_id": "r6", "features": {"c": "new"},
                                                 "predictions": {"p": 1}}).encode())])
    assert metrics.values_capped.labels("m0", "too_many_categories")._value.get() == 1
    # a restart knows the tracked pairs from the store
    again = Pipeline(settings, store, Metrics(), dead.extend, group_id="g")
    assert again.model_limit.known == {("m0", "1"), ("m1", "1")}
    store.close()


def _kserve(offset: int, kind: str, event_id: str, t_ms: int, body: dict) -> Message:
    import json

    stamp = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    headers = (("ce_specversion", b"1.0"), ("ce_type", f"org.kubeflow.serving.inference.{kind}".encode()),
               ("ce_source", b"http://localhost:9081/"), ("ce_id", event_id.encode()), ("ce_time", stamp.encode()),
               ("ce_inferenceservicename", b"sklearn-iris"), ("ce_namespace", b"default"),
               ("ce_component", b"predictor"), ("ce_endpoint", b"default"), ("content-type", b"application/json"))
    return Message("kserve-logs", 0, offset, json.dumps(body).encode(), None, headers, t_ms)


def test_kserve_requests_join_their_responses_across_batches_and_a_restart(db_url):
    hour = 3_600_000
    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         formats={"default": {"format": "kserve", "model_version": "1",
                                              "feature_names": ["a", "b"], "prediction_names": ["y"]}},
                         join={"ttl_seconds": 60}, reference={"bootstrap_records": 1_000_000})
    store = open_store(settings)
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"features.a": rng.normal(5, 3, 500), "features.b": rng.normal(5, 3, 500),
                        "predictions.y": rng.uniform(0, 1, 500)})
    with store.transaction() as conn:
        store.put_reference(conn, "sklearn-iris", "*", "test", 500, profile_frame(ref, set(), 10, 1000).to_dict())
    metrics = Metrics()
    first = Pipeline(settings, store, metrics, log_dead_letter, "g")
    # r1 and r2 answered in the same batch, r3's response comes after a restart, r4 never gets one
    first.process([_kserve(0, "request", "r1", 1000, {"instances": [[1.0, 2.0]]}),
                   _kserve(1, "response", "r1", 1100, {"predictions": [0.25]}),
                   _kserve(2, "request", "r2", 2000, {"instances": [[3.0, 4.0], [5.0, 6.0]]}),
                   _kserve(3, "request", "r3", 3000, {"instances": [[7.0, 8.0]]}),
                   _kserve(4, "response", "r2", 2100, {"predictions": [0.5, 0.75]}),
                   _kserve(5, "request", "r4", 4000, {"instances": [[9.0, 10.0]]})])
    assert metrics.join_outcomes.labels("matched")._value.get() == 3  # r1 and both rows of r2
    second = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    second.process([_kserve(6, "response", "r3", 3100, {"predictions": [0.9]})])
    # an hour of event time later r4 has expired: it is stored with its features alone
    second.process([_kserve(7, "request", "r5", hour + 120_000, {"instances": [[0.0, 0.0]]})])
    second.close_all()
    windows = store.list_windows()
    counts = dict(zip(windows["window_start_ms"], windows["record_count"]))
    assert counts == {0: 5, hour: 1}
    # r4 (no response) counts for the features only: no missing prediction appears
    import json

    first_window = int(windows[windows["window_start_ms"] == 0]["id"].iloc[0])
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        stats = json.loads(conn.execute(sa.text("SELECT profile FROM windows WHERE id = :i"),
                                        {"i": first_window}).scalar())["columns"]
    assert (stats["features.a"]["count"], stats["features.a"]["missing"]) == (5, 0)
    assert (stats["predictions.y"]["count"], stats["predictions.y"]["missing"]) == (4, 0)
    assert store.load_offsets("g") == {("kserve-logs", 0): 8}
    store.close()


def test_labels_arriving_later_feed_the_realized_performance_of_their_windows(db_url):
    import json

    import numpy as np

    hour = 3_600_000
    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         performance={"label_delay_seconds": 2 * 3600, "models": {"clf": {
                             "task": "classification", "prediction": "employed", "labels": ["false", "true"],
                             "probabilities": ["p"]}}})
    store = open_store(settings)
    rng = np.random.default_rng(7)
    n = 400
    pred = rng.random(n) < 0.5
    truth = np.where(rng.random(n) < 0.8, pred, ~pred)  # about 80 % right
    times = np.arange(n) * 15_000  # 400 predictions over 100 minutes: windows 0 and 1 h
    preds = [Message("preds", 0, i, json.dumps({
        "model": "clf", "model_version": "1", "timestamp": int(times[i]), "request_id": f"r{i}",
        "features": {"x": float(i)}, "predictions": {"employed": bool(pred[i]), "p": 0.9 if pred[i] else 0.1}}).encode())
        for i in range(n)]
    metrics = Metrics()
    Pipeline(settings, store, metrics, log_dead_letter, "g").process(preds)
    # labels come on their own topic later, after a restart; the last 10 come too late
    labels = [Message("labels", 0, i, json.dumps({"request_id": f"r{i}", "label": bool(truth[i]),
                                                  "timestamp": int(times[i]) + (3 * hour if i >= n - 10 else 60_000)})
                      .encode()) for i in range(n)]
    again = Pipeline(settings, store, metrics, log_dead_letter, "g")
    again.process(labels[:200])
    again.process(labels[200:])
    perf = store.list_window_performance("clf").set_index("window_start_ms")
    right = pred == truth
    in_first = times < hour
    labelled = np.arange(n) < n - 10
    assert perf.loc[0, "n_labelled"] == int((in_first & labelled).sum())
    assert perf.loc[0, "accuracy"] == pytest.approx(right[in_first & labelled].mean(), abs=1e-12)
    assert perf.loc[hour, "accuracy"] == pytest.approx(right[~in_first & labelled].mean(), abs=1e-12)
    assert metrics.labels_joined.labels("matched")._value.get() == n - 10
    assert metrics.labels_joined.labels("label_too_late")._value.get() == 10
    # the gauge shows the newest window with labels
    assert metrics.realized_performance.labels("clf", "1", "accuracy")._value.get() == pytest.approx(
        right[~in_first & labelled].mean(), abs=1e-12)
    store.close()


def test_a_request_waiting_for_its_response_holds_the_watermark_back(db_url):
    """Responses arrive up to 5 s after their requests; with no allowed lateness and small
    batches, no joined record may be late at a window's end."""
    import numpy as np

    settings = _settings(db_url, window={"length_seconds": 60, "idle_close_seconds": None},
                         formats={"default": {"format": "kserve", "model_version": "1",
                                              "feature_names": ["a"], "prediction_names": ["y"]}},
                         join={"ttl_seconds": 30})
    store = open_store(settings)
    rng = np.random.default_rng(3)
    n = 600
    t_req = np.arange(n) * 500  # one request every 0.5 s: 5 minutes
    t_resp = t_req + rng.integers(5, 5000, n)
    events = sorted([(int(t), 0, i) for i, t in enumerate(t_req)] + [(int(t), 1, i) for i, t in enumerate(t_resp)])
    msgs = [_kserve(k, "request" if kind == 0 else "response", f"r{i}", t,
                    {"instances": [[float(i)]]} if kind == 0 else {"predictions": [0.5]})
            for k, (t, kind, i) in enumerate(events)]
    metrics = Metrics()
    pipe = Pipeline(settings, store, metrics, log_dead_letter, "g")
    for start in range(0, len(msgs), 37):
        pipe.process(msgs[start:start + 37])
    pipe.close_all()
    windows = store.list_windows()
    assert int(windows["record_count"].sum()) == n
    assert dict(zip(windows["window_start_ms"], windows["record_count"])) == {m * 60_000: 120 for m in range(5)}
    assert metrics.records_late.labels("sklearn-iris")._value.get() == 0
    store.close()


@pytest.mark.parametrize("max_skew_seconds", [600, None])
def test_requests_whose_responses_never_come_expire_within_the_skew_bound(db_url, max_skew_seconds):
    """A KServe logger in request-only mode logs no response at all, so the responses' clock
    never moves: with ``join.max_skew_seconds`` the requests still expire (and their windows
    close on the watermark); without a bound they wait, holding the watermark back."""
    hour = 3_600_000
    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         formats={"default": {"format": "kserve", "model_version": "1",
                                              "feature_names": ["a"], "prediction_names": ["y"]}},
                         join={"ttl_seconds": 60, "max_skew_seconds": max_skew_seconds},
                         reference={"bootstrap_records": 100})
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    n = 3 * 360  # one request every 10 s for three hours
    msgs = [_kserve(i, "request", f"r{i}", i * 10_000, {"instances": [[float(i % 7)]]}) for i in range(n)]
    for lo in range(0, n, 60):
        pipeline.process(msgs[lo:lo + 60])
    windows = store.list_windows()
    expired = metrics.join_outcomes.labels("request_expired")._value.get()
    if max_skew_seconds is None:
        assert windows.empty and expired == 0
    else:
        # requests expire once the requests' own clock is 600 s + 60 s past them, so the first
        # two hours close and hold every request of theirs, each counted for its features
        counts = dict(zip(windows["window_start_ms"], windows["record_count"]))
        assert counts == {0: 360, hour: 360}
        # the last request is at (n - 1) x 10 s: those strictly more than 660 s before it expired
        assert expired == (n - 1) - (600 + 60) // 10
    pipeline.close_all()
    counts = dict(zip(*(store.list_windows()[c] for c in ("window_start_ms", "record_count"))))
    assert counts == {0: 360, hour: 360, 2 * hour: 360}  # nothing lost either way
    store.close()


def test_a_late_response_is_still_labelled_and_unscorable_labels_are_counted(db_url):
    """A response arriving after its request was given up adds no second row to the window,
    but its prediction still meets its label; a label outside the configured classes is
    counted ``unscorable`` in inferwatch_labels_total."""
    import json

    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         formats={"default": {"format": "kserve", "model_version": "1",
                                              "feature_names": ["a"], "prediction_names": ["y"]},
                                  "topics": {"labels": {"format": "labels"}}},
                         join={"ttl_seconds": 60},
                         performance={"label_delay_seconds": 3600, "models": {"sklearn-iris": {
                             "task": "classification", "prediction": "y", "labels": ["0", "1"]}}})
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    pipeline.process([_kserve(0, "request", "r1", 0, {"instances": [[1.0]]}),
                      _kserve(1, "request", "r2", 1_000, {"instances": [[2.0]]}),
                      _kserve(2, "request", "r3", 2_000, {"instances": [[3.0]]}),
                      _kserve(3, "response", "r2", 100_000, {"predictions": [1]})])  # r1 and r3 expire
    assert metrics.join_outcomes.labels("request_expired")._value.get() == 2
    pipeline.process([_kserve(4, "response", "r1", 100_500, {"predictions": [0]}),  # late
                      _kserve(5, "response", "r3", 101_000, {"predictions": [1]})])  # late
    assert metrics.join_outcomes.labels("response_late")._value.get() == 2
    labels = [Message("labels", 0, i, json.dumps({"request_id": rid, "label": label, "timestamp": 200_000}).encode())
              for i, (rid, label) in enumerate([("r1", 0), ("r2", 1), ("r3", "maybe")])]
    pipeline.process(labels)
    pipeline.close_all()
    windows = store.list_windows()
    assert windows["record_count"].tolist() == [3]  # one row per call
    perf = store.list_window_performance("sklearn-iris")
    assert perf["n_labelled"].tolist() == [2] and perf["accuracy"].tolist() == [1.0]  # r1 (late) and r2
    assert metrics.labels_joined.labels("matched")._value.get() == 3
    assert metrics.labels_joined.labels("unscorable")._value.get() == 1
    store.close()


def test_a_feature_numeric_for_one_model_and_text_for_another_keeps_each_models_type(db_url):
    """Two models share a feature name in one batch: numbers for one, text for the other.
    Each model's reference and windows see its own type (numbers stay numbers, never text
    labels capped into categories)."""
    import json

    import numpy as np

    from detectors import Profile, kind_of

    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         reference={"bootstrap_records": 100}, kafka={"max_categories": 50})
    store = open_store(settings)
    rng = np.random.default_rng(5)
    msgs = []
    for i in range(400):
        model = "num" if i % 2 == 0 else "txt"
        x = float(rng.normal(0, 1)) if model == "num" else f"c{i % 3}"
        msgs.append(Message("preds", 0, i, json.dumps({
            "model": model, "model_version": "1", "timestamp": i * 1000, "request_id": f"r{i}",
            "features": {"x": x, "shared": 1.5}, "predictions": {"y": 0.5}}).encode()))
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    pipeline.process(msgs[:200])
    pipeline.process(msgs[200:])
    pipeline.close_all()
    with store.engine.connect() as conn:
        num = Profile.from_dict(store.get_reference(conn, "num", "1")[1])
        txt = Profile.from_dict(store.get_reference(conn, "txt", "1")[1])
    assert kind_of(num.columns["features.x"]) == "numeric" and num.columns["features.x"].count == 100
    assert kind_of(txt.columns["features.x"]) == "categorical"
    assert kind_of(num.columns["features.shared"]) == "numeric"
    # 200 distinct numbers never reached the 50-category cap: nothing was replaced
    assert metrics.values_capped.labels("num", "too_many_categories")._value.get() == 0
    windows = store.list_windows().set_index("model")
    assert windows.loc["num", "record_count"] == 200 and windows.loc["num", "status"] == "ok"
    store.close()


def test_a_message_expanding_to_more_rows_than_the_limit_is_rejected_whole(db_url):
    import json

    settings = _settings(db_url, kafka={"max_rows_per_message": 3},
                         formats={"default": {"format": "oip", "model": "m", "model_version": "1"}})
    store = open_store(settings)
    metrics = Metrics()
    dead = []
    pipeline = Pipeline(settings, store, metrics, lambda rejected: dead.extend(rejected), "g")

    def body(rows: int) -> bytes:
        return json.dumps({"id": f"q{rows}", "inputs": [{"name": "a", "shape": [rows, 1], "datatype": "FP32",
                                                          "data": list(range(rows))}]}).encode()
    pipeline.process([Message("oip", 0, 0, body(3), None, (), 1000), Message("oip", 0, 1, body(4), None, (), 2000)])
    assert metrics.records_rejected.labels("too_many_rows")._value.get() == 1
    assert [r.message.offset for r in dead] == [1]
    pipeline.close_all()
    assert store.list_windows()["record_count"].sum() == 3
    store.close()


def _bentoml_line(i: int) -> bytes:
    import json

    return json.dumps({"sepal_len": 5.0 + i / 10, "pred": "setosa" if i % 2 else "virginica",
                       "label": "setosa", "timestamp": f"2024-05-01T00:00:{i:02d}.000000",
                       "request_id": f"r{i}", "trace_id": "0"}).encode()


def test_a_restart_past_a_bentoml_schema_line_still_decodes_its_monitors_data_lines(db_url, monkeypatch):
    """The schema line is stored with the batch that read it: a new pipeline on the same
    database (a restart, which resumes past that line) decodes the monitor's later data lines."""
    import json

    from collector.formats import bentoml

    settings = _settings(db_url, window={"length_seconds": 3600, "idle_close_seconds": None},
                         formats={"default": {"format": "bentoml"}})
    store = open_store(settings)
    dead = []
    schema = json.dumps({"meta_data": {"bento_name": "iris", "bento_version": "v7"},
                         "columns": [{"name": "sepal_len", "role": "feature", "type": "numerical"},
                                     {"name": "pred", "role": "prediction", "type": "categorical"},
                                     {"name": "label", "role": "target", "type": "categorical"}]}).encode()
    first = Pipeline(settings, store, Metrics(), dead.extend, group_id="g")
    first.process([Message("mon", 0, 0, schema)] + [Message("mon", 0, i, _bentoml_line(i)) for i in (1, 2)])
    assert dead == [] and store.load_offsets("g") == {("mon", 0): 3}
    # the process ends: what it remembered in memory is gone
    monkeypatch.setattr(bentoml, "SCHEMAS", bentoml.SchemaCache())
    again = Pipeline(settings, store, Metrics(), dead.extend, group_id="g")
    again.process([Message("mon", 0, i, _bentoml_line(i)) for i in (3, 4, 5)])
    assert [(r.reason.value, r.detail) for r in dead] == []
    closed = again.close_all()
    # model and version from the stored schema's bento name and version, all five rows counted
    assert [(w.key.model, w.key.model_version, w.record_count) for w in closed] == [("iris", "v7", 5)]
    windows = store.list_windows()
    assert windows["record_count"].tolist() == [5]
    store.close()


def test_a_retired_model_versions_slot_goes_to_a_new_one_once_its_windows_closed(db_url):
    """kafka.max_models counts versions live at a time: a version idle for
    model_idle_release_seconds (wall clock) with no open window gives its slot up; one with
    an open window keeps it, also across a restart."""
    import json

    from inferwatch.store import now_ms

    settings = _settings(db_url, kafka={"max_models": 1, "model_idle_release_seconds": 1},
                         window={"length_seconds": 3600, "idle_close_seconds": None})
    store = open_store(settings)
    dead = []

    def rec(offset: int, version: str) -> Message:
        return Message("t", 0, offset, json.dumps({
            "model": "m", "model_version": version, "timestamp": 1000 + offset, "request_id": f"r{offset}",
            "features": {"x": offset}, "predictions": {"p": 0.5}}).encode())

    t0 = now_ms() - 60_000  # wall-clock times of the batches, all in the past
    pipe = Pipeline(settings, store, Metrics(), dead.extend, group_id="g")
    pipe.process([rec(0, "1"), rec(1, "1")], now=t0)
    # version 1 has sent nothing for 2 s, but its window is open: version 2 is refused
    pipe.process([rec(2, "2")], now=t0 + 2000)
    assert [(r.message.offset, r.reason.value) for r in dead] == [(2, "too_many_models")]
    assert [(w.key.model_version, w.record_count) for w in pipe.close_all()] == [("1", 2)]
    # its window closed: version 1's slot is released for version 2
    pipe.process([rec(3, "2")], now=t0 + 3000)
    assert len(dead) == 1 and pipe.model_limit.known == {("m", "2")} and pipe.model_limit.released == 1
    # and version 1, back, is now the one refused
    pipe.process([rec(4, "1")], now=t0 + 3500)
    assert [(r.message.offset, r.reason.value) for r in dead][1:] == [(4, "too_many_models")]
    # a restart tracks what the store holds, releasing at once the idle versions without an
    # open window beyond the cap: version 2 (open window) keeps the slot
    again = Pipeline(settings, store, Metrics(), dead.extend, group_id="g")
    assert again.model_limit.known == {("m", "2")}
    again.process([rec(5, "3")], now=t0 + 50_000)
    assert [r.message.offset for r in dead][2:] == [5]
    store.close()


def test_requests_given_up_at_the_end_keep_each_models_column_types(db_url):
    """Unanswered OIP requests of two models sharing a partition number wait in one join; the
    rows given up by close_all are typed per model and capped like any batch's: the text
    feature of one model keeps at most ``kafka.max_categories`` values, the other model's
    numbers under the same name are never capped."""
    import json

    import sqlalchemy as sa

    settings = _settings(db_url, formats={"topics": {
        "a-requests": {"format": "oip", "model": "a", "model_version": "1"},
        "b-requests": {"format": "oip", "model": "b", "model_version": "1"}}},
        reference={"bootstrap_records": 1000}, kafka={"max_categories": 5})
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")

    def body(i: int, datatype: str, data: list) -> bytes:
        return json.dumps({"id": f"q{i}", "inputs": [{"name": "x", "shape": [1, 1], "datatype": datatype,
                                                      "data": data}]}).encode()
    msgs = [Message("a-requests", 0, i, body(i, "FP32", [float(i)]), None, (), 1000 + i) for i in range(20)]
    msgs += [Message("b-requests", 0, i, body(100 + i, "BYTES", [f"c{i % 10}"]), None, (), 1000 + i)
             for i in range(20)]
    pipeline.process(msgs)
    assert store.list_windows().empty  # every request still waits for its response
    pipeline.close_all()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT model, record_count, profile FROM windows ORDER BY model")).all()
    assert [(m, n) for m, n, _p in rows] == [("a", 20), ("b", 20)]
    kinds = {m: json.loads(p)["columns"]["features.x"]["kind"] for m, _n, p in rows}
    assert kinds == {"a": "numeric", "b": "categorical"}
    # c5..c9 are beyond the cap of 5: 10 of b's 20 values; none of a's 20 distinct numbers
    assert metrics.values_capped.labels("b", "too_many_categories")._value.get() == 10
    assert metrics.values_capped.labels("a", "too_many_categories")._value.get() == 0
    store.close()
