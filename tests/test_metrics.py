"""The Prometheus metrics: every family exported by a real pipeline run on SQLite passes
``promtool check metrics`` when scraped over HTTP; the serving histogram, request counter and
window gauges hold numpy's numbers of the logged records; alert states, prediction drift and
consumer lag (a real broker); the label cap keeps 10,000 model names to the cap plus one
overflow value and counts every replacement."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from collector.kafka_source import KafkaSource
from collector.message import Message
from detectors.serving import is_error
from inferwatch.config import ConfigError, load_config
from inferwatch.metrics import LATENCY_BUCKETS_SECONDS, OVERFLOW, Metrics
from inferwatch.pipeline import Pipeline
from inferwatch.runner import KafkaService, log_dead_letter, open_store
from test_alert_pipeline import PER_WINDOW, SERVING_PLAN, SERVING_RULES, T0, WINDOW_MS, WINDOW_S, Receiver, \
    ServingData
from test_pipeline import _kserve

from e2e import create_topic, produce, wait_for

N_WINDOWS = len(SERVING_PLAN)
# pending after window 1 closed, firing from window 2 to 5, resolved by window 6 (test_alert_pipeline)
ALERT_STATES = {0: (0, 0), 1: (1, 0), 2: (0, 1), 3: (0, 1), 4: (0, 1), 5: (0, 1), 6: (0, 0)}
PREDICTION_RULE = {"name": "PredictionShift", "signal": "prediction_drift", "field": "p_value", "op": "<=",
                   "threshold": 1.0, "severity": "info"}  # true whenever the column was tested


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str, **labels) -> float:
    """The one sample of ``family`` named ``sample`` whose labels include ``labels``."""
    found = [s.value for s in families[family].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (family, sample, labels, found)
    return found[0]


class Offsets:
    """Next offset per topic, for Messages built by hand."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def message(self, topic: str, value: bytes) -> Message:
        off = self.next.get(topic, 0)
        self.next[topic] = off + 1
        return Message(topic, 0, off, value)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A pipeline on SQLite fed seven windows of serving data (test_alert_pipeline's plan) plus
    a text column beyond its category cap, KServe halves, labels, a broken message and a late
    record, with serving and prediction rules, a retraining hook (dry run), an autoscaling
    hook and one whose Kubernetes API is unreachable; the metrics served on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("metrics")
    receiver = Receiver()
    settings = load_config(
        None, database_url=f"sqlite:///{tmp / 'm.db'}",
        window={"length_seconds": WINDOW_S, "idle_close_seconds": None},
        reference={"bootstrap_records": PER_WINDOW},
        kafka={"max_categories": 3},
        drift={"test_missing_share": True},
        formats={"topics": {"kserve-logs": {"format": "kserve", "model_version": "1", "feature_names": ["a", "b"],
                                            "prediction_names": ["y"]}}},
        performance={"label_delay_seconds": 7200, "models": {"svc": {"task": "regression", "prediction": "y"}}},
        metrics={"enabled": False},
        alerting={"receivers": [{"name": "ops", "type": "webhook", "url": receiver.url, "timeout_seconds": 5}],
                  "rules": [*SERVING_RULES, PREDICTION_RULE]},
        hooks={"retrain": [{"name": "retrain-svc", "kind": "http", "url": receiver.url.rsplit("/", 1)[0],
                            "path": "/hook", "dry_run": True, "models": ["svc"]}],
               "autoscale": [{"name": "svc-replicas", "model": "svc", "signal": "throughput_per_replica_rps",
                              "target_value": 0.05, "max_replicas": 10, "apply": "metric_only"},
                             {"name": "svc-k8s", "model": "svc", "signal": "throughput_per_replica_rps",
                              "target_value": 0.05, "max_replicas": 10, "apply": "kubernetes",
                              "kubernetes": {"namespace": "serving", "name": "svc", "api_url": "http://127.0.0.1:9",
                                             "timeout_seconds": 2}}]})
    store = open_store(settings)
    metrics = Metrics()
    data = ServingData()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    off = Offsets()
    states = []  # (pending, firing) of SlowP95 after each batch
    late = json.dumps({"model": "svc", "model_version": "1", "timestamp": T0 + 5, "request_id": "late-0",
                       "features": {"x": 0.0}, "predictions": {"y": 0.5}, "latency_ms": 7.5,
                       "serving": {"status_code": 502}}).encode()
    for w in range(N_WINDOWS):
        batch = data.messages(w)  # topic "logs", partition 0, offsets from 0
        t = T0 + w * WINDOW_MS
        batch += [off.message("cat", json.dumps({
            "model": "cat", "model_version": "2", "timestamp": t + i, "request_id": f"c{w}-{i}",
            "features": {"c": f"v{i % 6}", "d": None if i % 3 == w % 3 else float(i)},
            "predictions": {"p": 1.0}}).encode()) for i in range(30)]
        if w == 1:
            batch += [off.message("labels", json.dumps({"request_id": f"w1-{i}", "label": 0.5,
                                                        "timestamp": t + 1000}).encode()) for i in range(40)]
            batch += [off.message("bad", b"{not json")]
        if w == 2:
            n = off.next.get("kserve-logs", 0)
            batch += [_kserve(n, "request", "k1", t + 100, {"instances": [[1.0, 2.0]]}),
                      _kserve(n + 1, "response", "k1", t + 150, {"predictions": [0.25]})]
            batch += [off.message("late", late)]
        pipeline.process(batch)
        states.append((metrics.alerts.labels("SlowP95", "svc", "pending")._value.get(),
                       metrics.alerts.labels("SlowP95", "svc", "firing")._value.get()))
    pipeline.close_all()
    states.append((metrics.alerts.labels("SlowP95", "svc", "pending")._value.get(),
                   metrics.alerts.labels("SlowP95", "svc", "firing")._value.get()))
    # what the Kafka service exports after each poll (tested against a broker below)
    metrics.set_consumer_positions({("logs", 0): (840, 900)})
    port = metrics.serve("127.0.0.1", 0)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        metrics.stop()
        receiver.close()
        store.close()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert receiver.problems == []
    yield {"metrics": metrics, "text": response.text, "data": data, "states": states, "store_path": tmp / "m.db"}


def test_promtool_check_metrics_passes_on_every_family(full_run, promtool):
    text = full_run["text"]
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stdout + done.stderr
    # every family inferwatch registers had samples in that scrape
    families = _families(text)
    registered = {f.name for f in full_run["metrics"].registry.collect()}
    empty = {name for name in registered if not families.get(name) or not families[name].samples}
    assert empty == set()
    # the check is real: a gauge carrying a quantile label is refused
    bad = subprocess.run([promtool, "check", "metrics"], input='# HELP x_seconds x\n# TYPE x_seconds gauge\n'
                         'x_seconds{quantile="0.5"} 1\n', capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "quantile" in bad.stdout + bad.stderr


def test_serving_histogram_and_requests_hold_the_logged_records(full_run):
    data, fam = full_run["data"], _families(full_run["text"])
    latency = np.concatenate([*data.latency, [7.5]]) * 1e-3  # every window plus the late record
    status = np.concatenate([*data.status, [502]])
    name = "inferwatch_serving_latency_seconds"
    assert fam[name].type == "histogram"
    for le in LATENCY_BUCKETS_SECONDS:
        got = _value(fam, name, name + "_bucket", model="svc", le=floatToGoString(le))
        assert got == np.count_nonzero(latency <= le), le
    assert _value(fam, name, name + "_bucket", model="svc", le="+Inf") == len(latency)
    assert _value(fam, name, name + "_count", model="svc") == len(latency)
    assert _value(fam, name, name + "_sum", model="svc") == pytest.approx(latency.sum(), rel=1e-12)
    # the other models logged no latency; their rows are no observations
    assert {s.labels["model"] for s in fam[name].samples} == {"svc"}
    req = "inferwatch_serving_requests"
    errors = int(np.count_nonzero(is_error(status.astype(float))))
    assert errors == int(np.count_nonzero(status >= 500)) > 0
    assert _value(fam, req, req + "_total", model="svc", outcome="error") == errors
    assert _value(fam, req, req + "_total", model="svc", outcome="ok") == len(status) - errors


def test_window_serving_signals_are_the_last_closed_windows(full_run):
    data, fam = full_run["data"], _families(full_run["text"])
    last = N_WINDOWS - 1
    name = "inferwatch_serving_window_latency_seconds"
    assert fam[name].type == "summary"
    for q in (0.5, 0.95, 0.99):
        got = _value(fam, name, name, model="svc", model_version="1", quantile=str(q))
        assert got == pytest.approx(float(np.quantile(data.latency[last], q)) * 1e-3, rel=1e-12)
    windows = np.concatenate(data.latency) * 1e-3  # closed windows only: the late record is in none
    assert _value(fam, name, name + "_count", model="svc", model_version="1") == len(windows)
    assert _value(fam, name, name + "_sum", model="svc", model_version="1") == pytest.approx(windows.sum(),
                                                                                             rel=1e-12)
    ratio = "inferwatch_serving_window_error_ratio"
    assert _value(fam, ratio, ratio, model="svc", model_version="1") == data.error_rate(last)
    rps = "inferwatch_serving_window_throughput_requests_per_second"
    assert _value(fam, rps, rps, model="svc", model_version="1") == PER_WINDOW / WINDOW_S
    # the model without latencies or status codes has neither quantiles nor an error ratio;
    # throughput counts its records (detectors.serving: records per second of window length)
    for family in (name, ratio):
        assert all(s.labels["model"] != "cat" for s in fam[family].samples), family
    assert _value(fam, rps, rps, model="cat", model_version="2") == 30 / WINDOW_S


def test_prediction_drift_alert_states_and_consumer_lag(full_run):
    fam = _families(full_run["text"])
    pred = "inferwatch_prediction_drift_detected"
    drifted = [s.value for s in fam["inferwatch_drift_detected"].samples
               if s.labels["model"] == "svc" and s.labels["role"] == "prediction"]
    assert drifted and _value(fam, pred, pred, model="svc", model_version="1") == max(drifted)
    cat_pred = [s.value for s in fam["inferwatch_drift_detected"].samples
                if s.labels["model"] == "cat" and s.labels["role"] == "prediction"]
    assert _value(fam, pred, pred, model="cat", model_version="2") == max(cat_pred)
    # SlowP95 pending after window 1 closed, firing from window 2, resolved by window 6
    assert full_run["states"] == [(0.0, 0.0)] + [tuple(map(float, ALERT_STATES[w])) for w in range(N_WINDOWS)]
    # the prediction rule fired for both models' prediction column and stays firing
    assert _value(fam, "inferwatch_alerts", "inferwatch_alerts", alertname="PredictionShift", model="svc",
                  state="firing") == 1
    assert _value(fam, "inferwatch_alert_firing", "inferwatch_alert_firing", alertname="PredictionShift",
                  model="cat", model_version="2") == 1
    assert _value(fam, "inferwatch_hook_calls", "inferwatch_hook_calls_total", hook="retrain-svc",
                  decision="dry_run") == 1
    assert _value(fam, "inferwatch_consumer_lag_records", "inferwatch_consumer_lag_records", topic="logs",
                  partition="0") == 60
    assert _value(fam, "inferwatch_consumer_offset", "inferwatch_consumer_offset", topic="logs",
                  partition="0") == 840
    assert _value(fam, "inferwatch_values_capped", "inferwatch_values_capped_total", model="cat",
                  reason="too_many_categories") > 0
    over = "inferwatch_label_values_overflowed"
    assert {s.labels["label"]: s.value for s in fam[over].samples if s.name == over + "_total"} == {
        "model": 0, "model_version": 0, "column": 0, "alertname": 0, "topic": 0}


def test_window_serving_series_go_when_a_window_has_too_few_values():
    m = Metrics()
    signals = {"latency_p50_seconds": 0.01, "latency_p95_seconds": 0.02, "latency_p99_seconds": 0.03,
               "error_rate": 0.25, "throughput_rps": 2.0}
    m.set_window_serving("llm", "1", signals, np.array([0.01, 0.02, np.nan, 0.03]))
    m.set_window_serving("llm", "1", dict.fromkeys(signals), np.array([0.5]))
    fam = _families(generate_latest(m.registry).decode())
    name = "inferwatch_serving_window_latency_seconds"
    assert [(s.name, s.value) for s in fam[name].samples] == [(name + "_sum", pytest.approx(0.56)),
                                                             (name + "_count", 4.0)]
    assert fam["inferwatch_serving_window_error_ratio"].samples == []
    assert fam["inferwatch_serving_window_throughput_requests_per_second"].samples == []


def test_histogram_buckets_are_inclusive_and_skip_unknown_latencies():
    m = Metrics()
    m.observe_serving("llm", np.array([0.005, 0.0050001, 60.0, 61.0, np.nan, np.inf, -1.0, 0.0]), ok=5, error=2)
    fam = _families(generate_latest(m.registry).decode())
    name = "inferwatch_serving_latency_seconds"
    assert _value(fam, name, name + "_bucket", model="llm", le="0.005") == 2  # 0.0 and 0.005
    assert _value(fam, name, name + "_bucket", model="llm", le="0.01") == 3
    assert _value(fam, name, name + "_bucket", model="llm", le="60.0") == 4
    assert _value(fam, name, name + "_bucket", model="llm", le="+Inf") == 5
    assert _value(fam, name, name + "_count", model="llm") == 5
    assert _value(fam, name, name + "_sum", model="llm") == pytest.approx(121.0100001)
    req = "inferwatch_serving_requests"
    assert _value(fam, req, req + "_total", model="llm", outcome="ok") == 5
    assert _value(fam, req, req + "_total", model="llm", outcome="error") == 2


# --- the label cap ----------------------------------------------------------------------------
def _series_per_family(metrics: Metrics) -> dict[str, set[tuple]]:
    """Distinct label sets per family (a histogram's buckets and a summary's quantiles are one
    series with it)."""
    out: dict[str, set[tuple]] = {}
    for family in metrics.registry.collect():
        out[family.name] = {tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile")))
                            for s in family.samples}
    return out


def test_ten_thousand_model_names_stay_under_the_cap(monkeypatch):
    cap = 500
    m = Metrics(max_label_values=cap)
    n = 10_000
    signals = {"latency_p50_seconds": 0.01, "latency_p95_seconds": 0.02, "latency_p99_seconds": 0.03,
               "error_rate": 0.0, "throughput_rps": 1.0}
    lookups = 0
    for i in range(n):
        name = f"model-{i}"
        # the calls the pipeline makes for one model in a batch and for one closed window
        model = m.model_label(name)
        m.records_ingested.labels(model).inc(3)
        m.observe_serving(model, np.array([0.02, 0.04, 0.3]), ok=3, error=0)
        model, version = m.model_label(name), m.version_label("1")
        m.window_records.labels(model, version).set(3)
        m.drift_p_value.labels(model, version, m.column_label("x"), "feature", "ks").set(0.5)
        m.set_window_serving(model, version, signals, np.array([0.02, 0.04, 0.3]))
        m.alert_labels({"alertname": "SlowP95", "model": name, "model_version": "1"})
        lookups += 3
    series = _series_per_family(m)
    for family in ("inferwatch_records_ingested", "inferwatch_serving_latency_seconds", "inferwatch_serving_requests",
                   "inferwatch_window_records", "inferwatch_drift_p_value",
                   "inferwatch_serving_window_latency_seconds", "inferwatch_serving_window_error_ratio"):
        models = {dict(s)["model"] for s in series[family]}
        assert len(series[family]) == cap + 1 and OVERFLOW in models, family
    replaced = (n - cap) * 3  # three lookups of each model beyond the cap
    assert m.label_values_overflowed.labels("model")._value.get() == replaced == lookups - cap * 3
    assert m.label_values_overflowed.labels("model_version")._value.get() == 0
    # the overflow series holds the sum of every model beyond the cap
    assert m.records_ingested.labels(OVERFLOW)._value.get() == 3 * (n - cap)
    assert m.records_ingested.labels("model-0")._value.get() == 3
    # a value admitted before keeps its own series
    assert m.model_label("model-499") == "model-499" and m.model_label("model-500") == OVERFLOW


def test_label_cap_through_the_pipeline_covers_every_model_labelled_family(tmp_path):
    """60 models through the real pipeline (batches, closed windows, alerts) with a cap of 10."""
    cap, n = 10, 60
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'c.db'}", kafka={"max_models": 1000},
                           window={"length_seconds": 60, "idle_close_seconds": None},
                           reference={"bootstrap_records": 2},
                           alerting={"serving_min_count": 1,
                                     "rules": [{"name": "AnyTraffic", "signal": "throughput_rps", "op": ">=",
                                                "threshold": 0.0}]},
                           metrics={"enabled": False, "max_label_values": cap})
    store = open_store(settings)
    m = Metrics(settings.metrics.max_label_values)
    pipeline = Pipeline(settings, store, m, log_dead_letter, "g")
    t0 = 1_700_000_040_000
    messages = [Message("t", 0, i, json.dumps({
        "model": f"m{i % n:02d}", "model_version": "1", "timestamp": t0 + i, "request_id": f"r{i}",
        "features": {"x": float(i)}, "predictions": {"y": float(i % 2)}, "latency_ms": 10.0 + i,
        "serving": {"status_code": 200}}).encode()) for i in range(4 * n)]
    pipeline.process(messages)  # one batch: each model looked up once
    closed = pipeline.close_all()  # one window each, judged against its bootstrap reference
    assert len(closed) == n
    series = _series_per_family(m)
    for family, samples in series.items():
        models = {dict(s).get("model") for s in samples} - {None}
        others = {tuple(kv for kv in s if kv[0] != "model") for s in samples}
        assert len(models) <= cap + 1 and len(samples) <= (cap + 1) * len(others), family
    for family in ("inferwatch_window_records", "inferwatch_serving_window_latency_seconds",
                   "inferwatch_serving_latency_seconds", "inferwatch_records_ingested", "inferwatch_alert_firing"):
        assert len(series[family]) == cap + 1, family
    assert {dict(s)["model"] for s in series["inferwatch_records_ingested"]} == {
        *(f"m{i:02d}" for i in range(cap)), OVERFLOW}
    assert m.records_ingested.labels(OVERFLOW)._value.get() == 4 * (n - cap)
    assert m.alerts.labels("AnyTraffic", OVERFLOW, "firing")._value.get() == n - cap
    assert m.alert_firing.labels("AnyTraffic", "m00", "1")._value.get() == 1
    # replacements: once per model and batch, once per closed window, once per alert change
    assert m.label_values_overflowed.labels("model")._value.get() == 3 * (n - cap)
    store.close()


# --- consumer lag against a real broker --------------------------------------------------------
def _records(first: int, count: int) -> list[bytes]:
    t0 = 1_700_000_040_000
    return [json.dumps({"model": "m", "model_version": "1", "timestamp": t0 + i, "request_id": f"r{i}",
                        "features": {"x": float(i)}, "predictions": {"y": 1.0}}).encode()
            for i in range(first, first + count)]


def _consumer_series(metrics: Metrics, topic: str) -> dict[str, dict[int, float]]:
    """``inferwatch_consumer_lag_records`` and ``inferwatch_consumer_offset`` of ``topic`` as
    scraped: family -> {partition: value}; absent series are absent."""
    out: dict[str, dict[int, float]] = {"inferwatch_consumer_lag_records": {}, "inferwatch_consumer_offset": {}}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        if family.name in out:
            for s in family.samples:
                if s.labels["topic"] == topic:
                    out[family.name][int(s.labels["partition"])] = s.value
    return out


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The partitions' log-end offsets, read by a client of the test's own."""
    from kafka import KafkaConsumer, TopicPartition

    client = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        parts = wait_for(lambda: client.partitions_for_topic(topic), 30, f"partitions of {topic}")
        ends = client.end_offsets([TopicPartition(topic, p) for p in parts], timeout_ms=10_000)
    finally:
        client.close()
    return {tp.partition: int(o) for tp, o in ends.items()}


def test_lag_interval_must_be_positive():
    assert load_config(None).metrics.lag_interval_seconds == 15
    for bad in (0, -1, float("inf")):
        with pytest.raises(ConfigError, match="lag_interval_seconds"):
            load_config(None, metrics={"lag_interval_seconds": bad})


@pytest.mark.kafka
def test_consumer_lag_rises_while_a_slow_batch_holds_up_the_poll_loop(tmp_path, kafka_bootstrap):
    """The poll loop is held in its second batch (the pipeline waits on an event); the lag job
    reads the broker's end offsets with its own client meanwhile: the lag is what is not
    processed, and rises as records arrive. Once released, the loop drains it to 0."""
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    create_topic(kafka_bootstrap, topic, 2)
    n, more, interval = 50, 30, 0.5
    produce(kafka_bootstrap, topic, _records(0, n), keyed=True)
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'lag.db'}",
                           kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": group,
                                  "max_poll_records": 10},
                           window={"length_seconds": 3600, "idle_close_seconds": None},
                           metrics={"enabled": False, "lag_interval_seconds": interval})
    store = open_store(settings)
    source = KafkaSource(kafka_bootstrap, [topic], group, lambda: store.load_offsets(group), max_poll_records=10,
                         client_options=settings.kafka.consumer_config())
    metrics = Metrics()
    stop = threading.Event()
    svc = KafkaService(settings, store, metrics, source, log_dead_letter, stop)
    entered, release = threading.Event(), threading.Event()
    batches: list[int] = []
    process = svc.pipeline.process

    def held_process(messages, **kwargs):
        batches.append(len(messages))
        if len(batches) == 2:  # the second batch waits (bounded) until the test releases it
            entered.set()
            release.wait(120)
        return process(messages, **kwargs)

    svc.pipeline.process = held_process
    runner = threading.Thread(target=svc.run, daemon=True)
    runner.start()
    lag_client = None
    try:
        assert entered.wait(60), "the poll loop never reached its second batch"
        ends = _end_offsets(kafka_bootstrap, topic)
        assert sum(ends.values()) == n and len(ends) == 2
        stored = {p: o for (t, p), o in store.load_offsets(group).items() if t == topic}
        processed = batches[0]
        assert 0 < processed <= 10 and sum(stored.values()) == processed  # offsets start at 0
        expected = {p: ends[p] - stored.get(p, 0) for p in ends}
        assert sum(expected.values()) == n - processed

        def lag_is(want):
            return lambda: _consumer_series(metrics, topic)["inferwatch_consumer_lag_records"] == want

        # within a few lag intervals while the loop is held
        wait_for(lag_is(expected), 8 * interval + 5, f"lag {expected} while the poll loop is held")
        offsets = _consumer_series(metrics, topic)["inferwatch_consumer_offset"]
        assert offsets == {p: stored.get(p, 0) for p in ends}
        lag_client = svc.lag_client
        assert lag_client is not None and lag_client is not source.consumer

        # records arriving during the stall raise the lag; the loop is still in its second batch
        produce(kafka_bootstrap, topic, _records(n, more), keyed=True)
        ends = _end_offsets(kafka_bootstrap, topic)
        assert sum(ends.values()) == n + more
        risen = {p: ends[p] - stored.get(p, 0) for p in ends}
        assert sum(risen.values()) == n + more - processed
        wait_for(lag_is(risen), 8 * interval + 5, f"lag {risen} after {more} more records")
        assert len(batches) == 2 and runner.is_alive() and not release.is_set()
        assert _consumer_series(metrics, topic)["inferwatch_consumer_offset"] == offsets

        release.set()

        def drained():
            series = _consumer_series(metrics, topic)
            return (series["inferwatch_consumer_offset"] == {p: float(ends[p]) for p in ends}
                    and series["inferwatch_consumer_lag_records"] == {p: 0.0 for p in ends})

        wait_for(drained, 60, "consumer lag 0 on every partition")
        assert sum(store.load_offsets(group).values()) == n + more
    finally:
        release.set()
        stop.set()
        runner.join(30)
        source.close()
        store.close()
    assert not runner.is_alive()
    # the lag client was closed when the service stopped
    assert svc.lag_client is None and lag_client._closed


def test_readme_metrics_table_names_every_family():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("\n## Metrics\n"):]
    section = section[:section.index("\n### ")]
    documented = set(re.findall(r"`(inferwatch_[a-z0-9_]+)`", section))
    names = {f.name + ("_total" if f.type == "counter" else "") for f in Metrics().registry.collect()}
    assert names <= documented, names - documented


# --- prediction distribution -------------------------------------------------------------------
def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the finite ``values`` per bin ``[edges[i], edges[i+1])``, by numpy alone."""
    x = values[np.isfinite(values)]
    index = np.searchsorted(edges, x, side="right") - 1
    return np.bincount(index, minlength=len(edges) - 1) / len(x)


def _prediction_series(text: str) -> dict[tuple[str, str, str, str], dict[str, float]]:
    """(model, version, column, window) -> {bin: share} of a scrape."""
    out: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for s in _families(text)["inferwatch_prediction_bin_share"].samples:
        key = (s.labels["model"], s.labels["model_version"], s.labels["column"], s.labels["window"])
        out.setdefault(key, {})[s.labels["bin"]] = s.value
    return out


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Every 4th record of the real ACS demo stream (2015-2018 in 16 equal windows) through the
    pipeline on SQLite against the demo's reference (the 2015 training half); the metrics
    scraped over HTTP afterwards."""
    import pandas as pd

    from inferwatch import demo
    from inferwatch.reference import profile_frame, read_reference_file
    from inferwatch.runner import run_in_process

    tmp = tmp_path_factory.mktemp("distribution")
    settings = load_config(None, database_url=f"sqlite:///{tmp / 'd.db'}",
                           window={"length_seconds": 1461 * 86400 // 16, "idle_close_seconds": None,
                                   "origin": "2015-01-01T00:00:00Z"},
                           reference={"bootstrap_records": 10_000_000}, metrics={"enabled": False})
    store = open_store(settings)
    ref = read_reference_file(demo.write_reference_file(tmp / "train.parquet"))
    profile = profile_frame(ref, set(), settings.reference.n_bins, settings.reference.sample_size)
    with store.transaction() as conn:
        store.put_reference(conn, "employment", "*", "demo: 2015 training half", len(ref), profile.to_dict())
    records = list(demo.demo_records())[::4]
    metrics = Metrics()
    run_in_process(settings, (demo.encode_record(r) for r in records), store, metrics, source_name="demo")
    windows = store.list_windows("employment")
    port = metrics.serve("127.0.0.1", 0)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        metrics.stop()
        store.close()
    assert response.status_code == 200
    times = pd.to_datetime([r["timestamp"] for r in records], utc=True).as_unit("ms").asi8
    yield {"text": response.text, "reference": ref, "profile": profile, "records": records, "times": times,
           "windows": windows}


def test_prediction_shares_equal_numpy_shares_of_the_last_window_and_the_reference(demo_run):
    from inferwatch.metrics import bin_labels

    windows = demo_run["windows"]
    last = windows.loc[windows.window_start_ms.idxmax()]
    assert len(windows) == 16 and last.status == "ok"
    in_last = (demo_run["times"] >= last.window_start_ms) & (demo_run["times"] < last.window_end_ms)
    rows = [r for r, keep in zip(demo_run["records"], in_last) if keep]
    assert len(rows) == last.record_count > 1000
    series = _prediction_series(demo_run["text"])
    assert {k for k in series if k[0] == "employment"} == {
        ("employment", "1", c, w) for c in ("probability", "employed") for w in ("current", "reference")}

    # numeric: the reference profile's bin edges, every bin (empty ones as 0)
    edges = demo_run["profile"].columns["predictions.probability"].edges
    labels = bin_labels(edges)
    assert len(labels) >= 8 and labels == sorted(labels) and len(set(labels)) == len(labels)
    assert labels[0].startswith("00 (-Inf, ") and labels[-1].endswith(", +Inf)")
    window_values = np.array([r["predictions"]["probability"] for r in rows], dtype=float)
    reference_values = demo_run["reference"]["predictions.probability"].to_numpy(dtype=float)
    for window, values in (("current", window_values), ("reference", reference_values)):
        got = series[("employment", "1", "probability", window)]
        assert list(got) == labels or set(got) == set(labels)
        expected = _bin_shares(values, edges)
        assert [got[b] for b in labels] == pytest.approx(expected.tolist(), abs=1e-12), window
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    # the window's predictions moved from the reference's (2018 against 2015): not the same shares
    assert max(abs(a - b) for a, b in zip(_bin_shares(window_values, edges),
                                          _bin_shares(reference_values, edges))) > 0.005

    # categorical (a boolean prediction): one bin per category
    employed = np.array([r["predictions"]["employed"] for r in rows], dtype=bool)
    reference_employed = demo_run["reference"]["predictions.employed"].to_numpy(dtype=bool)
    for window, values in (("current", employed), ("reference", reference_employed)):
        got = series[("employment", "1", "employed", window)]
        assert got == pytest.approx({"true": np.mean(values), "false": np.mean(~values)}, abs=1e-12), window
        assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)


def test_prediction_shares_in_the_full_run_pass_promtool(full_run, promtool):
    """The family is in the scrape the promtool test checks: svc's uniform prediction and cat's
    constant one (a value bin of its own)."""
    series = _prediction_series(full_run["text"])
    assert {k[:3] for k in series} == {("svc", "1", "y"), ("cat", "2", "p")}
    for key, bins in series.items():
        assert sum(bins.values()) == pytest.approx(1.0, abs=1e-9), key
    assert series[("cat", "2", "p", "current")]["01 [1, 1]"] == 1.0
    assert series[("cat", "2", "p", "reference")]["01 [1, 1]"] == 1.0


def _scored(model: str, t: int, labels: list[str], scores: np.ndarray) -> list[Message]:
    return [Message("t", 0, t + i, json.dumps({
        "model": model, "model_version": "1", "timestamp": t + i, "request_id": f"{model}-{t}-{i}",
        "features": {"x": float(i)}, "predictions": {"label": lab, "score": float(s)}}).encode())
        for i, (lab, s) in enumerate(zip(labels, scores))]


def test_stale_prediction_bins_are_removed(tmp_path):
    """Through the real pipeline: a category the next window lacks, a window with too few
    predictions, and a new reference with other bin edges each remove the series they end."""
    import pandas as pd

    from inferwatch.metrics import bin_labels
    from inferwatch.reference import profile_frame

    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 's.db'}",
                           window={"length_seconds": 60, "idle_close_seconds": None},
                           reference={"bootstrap_records": 10_000_000}, metrics={"enabled": False})
    store = open_store(settings)
    m = Metrics()
    pipeline = Pipeline(settings, store, m, log_dead_letter, "g")
    rng = np.random.default_rng(3)

    def put_reference(version: str, scores: np.ndarray):
        frame = pd.DataFrame({"features.x": np.arange(len(scores), dtype=float),
                              "predictions.label": ["a", "b"] * (len(scores) // 2), "predictions.score": scores})
        profile = profile_frame(frame, set(), settings.reference.n_bins, settings.reference.sample_size)
        with store.transaction() as conn:
            store.put_reference(conn, "m", version, "test", len(frame), profile.to_dict())
        return profile.columns["predictions.score"].edges

    def scrape():
        return _prediction_series(generate_latest(m.registry).decode())

    first_edges = put_reference("*", rng.random(200))
    t0 = 1_700_000_040_000
    w = [t0 + k * 60_000 for k in range(6)]
    pipeline.process(_scored("m", w[0], ["a", "b", "c", "a"] * 10, rng.random(40)))
    pipeline.process(_scored("m", w[1], ["a", "b"] * 20, rng.random(40)))  # closes window 0
    after_first = scrape()
    assert set(after_first[("m", "1", "label", "current")]) == {"a", "b", "c"}
    assert after_first[("m", "1", "label", "current")] == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})
    assert after_first[("m", "1", "label", "reference")] == {"a": 0.5, "b": 0.5, "c": 0.0}
    assert set(after_first[("m", "1", "score", "current")]) == set(bin_labels(first_edges))

    pipeline.process(_scored("m", w[2], ["a"] * 5, rng.random(5)))  # closes window 1: no "c"
    after_second = scrape()
    assert after_second[("m", "1", "label", "current")] == {"a": 0.5, "b": 0.5}
    assert after_second[("m", "1", "label", "reference")] == {"a": 0.5, "b": 0.5}
    text = generate_latest(m.registry).decode()
    assert 'bin="c"' not in text and 'bin="a"' in text

    pipeline.process(_scored("m", w[3], ["a", "b"] * 20, rng.random(40)))  # closes window 2: 5 rows
    assert scrape() == {}  # too few predictions to test: no samples at all

    # a version-specific reference with other edges: the old bins go, the new ones come
    second_edges = put_reference("1", rng.normal(5.0, 1.0, 200))
    assert not np.array_equal(first_edges, second_edges)
    pipeline.process(_scored("m", w[4], ["b"] * 40, rng.normal(5.0, 1.0, 40)))  # closes window 3
    pipeline.close_all()  # closes window 4
    final = scrape()
    for window in ("current", "reference"):
        assert set(final[("m", "1", "score", window)]) == set(bin_labels(second_edges))
        assert sum(final[("m", "1", "score", window)].values()) == pytest.approx(1.0, abs=1e-9)
    assert final[("m", "1", "label", "current")] == {"a": 0.0, "b": 1.0}
    assert len(m.prediction_bin_share._metrics) == sum(len(b) for b in final.values())
    store.close()


def test_bin_labels_are_distinct_sortable_intervals():
    from inferwatch.metrics import bin_labels

    assert bin_labels(np.array([-np.inf, 0.1, 0.25, 0.9, np.inf])) == [
        "00 (-Inf, 0.1)", "01 [0.1, 0.25)", "02 [0.25, 0.9)", "03 [0.9, +Inf)"]
    # value bins of a discrete column: [v, nextafter(v)) reads [v, v], the gap after it (v, w)
    edges = [-np.inf]
    for v in (0.0, 1.0):
        edges += [v, np.nextafter(v, np.inf)]
    assert bin_labels(np.array([*edges, np.inf])) == [
        "00 (-Inf, 0)", "01 [0, 0]", "02 (0, 1)", "03 [1, 1]", "04 (1, +Inf)"]
    assert bin_labels(np.array([-np.inf, np.inf])) == ["00 (-Inf, +Inf)"]
    # edges closer than four digits get as many digits as they need
    assert bin_labels(np.array([-np.inf, 0.12345671, 0.12345679, np.inf]))[1] == "01 [0.1234567, 0.1234568)"
    many = bin_labels(np.concatenate([[-np.inf], np.arange(150.0), [np.inf]]))
    assert many == sorted(many) and many[0].startswith("000 ") and many[-1] == "150 [149, +Inf)"
