"""Alert rules through the real pipeline, on SQLite and PostgreSQL, notifying real HTTP
receivers on 127.0.0.1: per-feature drift on the demo drift episode, serving signals computed
from the logged records, realized performance, silences through the CLI, the repeat interval,
a restart mid-episode, start-up errors of bad rules, and the firing gauge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from alerting.events import ZERO_TIME, fingerprint, rfc3339
from collector.message import Message
from inferwatch import demo
from inferwatch.cli import app
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.pipeline import Pipeline
from inferwatch.reference import profile_frame, read_reference_file
from inferwatch.runner import log_dead_letter, open_store
from inferwatch.store import now_ms

from e2e import REPO

WINDOW_S = 600
WINDOW_MS = WINDOW_S * 1000
T0 = int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp() * 1000)


class Receiver:
    """A real webhook receiver on 127.0.0.1 (port 0): accepts only ``POST /hook`` with a JSON
    body, ``Content-Type: application/json`` and an ``Idempotency-Key``; anything else is
    answered 400 and recorded in ``problems``."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.keys: list[str] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _refuse(self, why: str) -> None:
                with outer._lock:
                    outer.problems.append(why)
                self.send_response(400)
                self.end_headers()

            def do_POST(self):  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/hook":
                    return self._refuse(f"path {self.path}")
                if self.headers.get("Content-Type") != "application/json":
                    return self._refuse(f"content type {self.headers.get('Content-Type')}")
                key = self.headers.get("Idempotency-Key")
                if not key:
                    return self._refuse("no Idempotency-Key")
                try:
                    parsed = json.loads(body)
                except ValueError:
                    return self._refuse("body is not JSON")
                with outer._lock:
                    outer.bodies.append(parsed)
                    outer.keys.append(key)
                self.send_response(200)
                self.end_headers()

            def do_GET(self):  # noqa: N802
                self._refuse(f"GET {self.path}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
    assert r.problems == []


def _settings(db_url: str, hook_url: str, rules: list[dict], alerting: dict | None = None, **extra):
    base = {"database_url": db_url,
            "window": {"length_seconds": WINDOW_S, "idle_close_seconds": None},
            "reference": {"bootstrap_records": 1_000_000},
            "metrics": {"enabled": False},
            "alerting": {"receivers": [{"name": "ops", "type": "webhook", "url": hook_url, "timeout_seconds": 5}],
                         "rules": rules, **(alerting or {})}}
    base.update(extra)
    return load_config(None, **base)


def _check_webhook_body(body: dict, status: str, model: str) -> None:
    """The Alertmanager webhook (version 4) envelope of a notification grouped per model."""
    assert body["version"] == "4" and body["receiver"] == "ops" and body["status"] == status
    assert body["groupLabels"] == {"model": model} and body["groupKey"] == f'{{}}:{{model="{model}"}}'
    assert body["commonLabels"]["model"] == model and body["truncatedAlerts"] == 0
    for a in body["alerts"]:
        assert a["fingerprint"] == fingerprint(a["labels"])
        assert (a["endsAt"] == ZERO_TIME) == (a["status"] == "firing")


def _firing_gauge(metrics: Metrics, alertname: str, model: str, version: str = "1") -> float:
    return metrics.alert_firing.labels(alertname, model, version)._value.get()


def _states(store) -> dict[tuple[str, ...], str]:
    """(alertname, feature or "") -> state of the pending and firing instances."""
    return {(r["labels"]["alertname"], r["labels"].get("feature", "")): r["state"]["state"]
            for r in store.alert_instances_in(None, ("pending", "firing"))}


# --- per-feature drift on the demo drift episode ------------------------------------------
@pytest.fixture(scope="module")
def episode():
    return demo.episode_records(model_name="ep", n_stable=10_000, n_drift=10_000, n_recovery=10_000,
                                records_per_day=10_000)


@pytest.fixture(scope="module")
def training_profile(tmp_path_factory):
    ref = read_reference_file(demo.write_reference_file(tmp_path_factory.mktemp("ref") / "train.parquet"))
    return len(ref), profile_frame(ref, set(), 10, 50_000).to_dict()


FEATURE_RULE = {"name": "FeatureDrift", "signal": "feature_drift", "severity": "warning",
                "labels": {"team": "ml"},
                "annotations": {"summary": "{feature}: {method} statistic={statistic:.4f} p={p_value:.3e}"}}


def test_feature_drift_fires_per_feature_grouped_in_one_body_per_model(db_url, receiver, episode,
                                                                       training_profile):
    settings = _settings(db_url, receiver.url, [FEATURE_RULE], window={"length_seconds": 86_400,
                                                                        "idle_close_seconds": None},
                         drift={"correction": "none"})
    store = open_store(settings)
    with store.transaction() as conn:
        store.put_reference(conn, "ep", "*", "training half", training_profile[0], training_profile[1])
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    payloads = [demo.encode_record(r) for r in episode.records]
    gauge_after_day = []
    for day in range(3):  # each day's records close the day before
        chunk = payloads[day * 10_000:(day + 1) * 10_000]
        pipeline.process([Message("t", 0, day * 10_000 + i, p) for i, p in enumerate(chunk)])
        gauge_after_day.append(_firing_gauge(metrics, "FeatureDrift", "ep"))
    pipeline.close_all()
    gauge_after_day.append(_firing_gauge(metrics, "FeatureDrift", "ep"))

    windows = store.list_windows()
    assert len(windows) == 3
    drift_day = store.list_drift_results(int(windows.id[1]))
    drifted = drift_day[drift_day.drifted.astype(bool) & (drift_day.role == "feature")].set_index("column_name")
    names = sorted(c.split(".", 1)[1] for c in drifted.index)
    assert "ANC" in names and len(names) >= 2, names  # several instances, ANC among them
    for w in (0, 2):  # the stable days drift nowhere: nothing else fires or resolves
        other = store.list_drift_results(int(windows.id[w]))
        assert not other[other.role == "feature"].drifted.astype(bool).any()

    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    fired, resolved = receiver.bodies
    for body, status in ((fired, "firing"), (resolved, "resolved")):
        _check_webhook_body(body, status, "ep")
        assert sorted(a["labels"]["feature"] for a in body["alerts"]) == names
        assert body["commonLabels"] == {"alertname": "FeatureDrift", "model": "ep", "model_version": "1",
                                        "severity": "warning", "team": "ml", "role": "feature"}
    day2 = rfc3339(int(windows.window_start_ms[1]))
    for a in fired["alerts"]:
        r = drifted.loc[f"features.{a['labels']['feature']}"]
        ann = a["annotations"]
        assert ann["method"] == r["method"] and ann["window_start"] == day2
        assert ann["statistic"] == f"{r['statistic']:.6g}" and ann["p_value"] == f"{r['p_value']:.6g}"
        assert ann["summary"] == (f"{a['labels']['feature']}: {r['method']} statistic={r['statistic']:.4f} "
                                  f"p={r['p_value']:.3e}")
        assert a["startsAt"] != ZERO_TIME
    assert drifted.loc["features.ANC", "method"] == "chi2" and drifted.loc["features.ANC", "p_value"] < 1e-6
    # the resolve is the same instances (dedup keys), ended by the third day
    assert {a["fingerprint"] for a in resolved["alerts"]} == {a["fingerprint"] for a in fired["alerts"]}
    assert all(a["annotations"]["window_start"] == rfc3339(int(windows.window_start_ms[2]))
               for a in resolved["alerts"])
    assert gauge_after_day == [0, 0, len(names), 0]  # the drift day is judged when the next day's records close it
    store.close()


# --- serving signals ----------------------------------------------------------------------
SERVING_RULES = [
    {"name": "SlowP95", "signal": "latency_p95_seconds", "op": ">", "threshold": 0.5, "resolve_threshold": 0.3,
     "for": [2, 3], "resolve_after_windows": 2, "severity": "critical", "labels": {"team": "serving"},
     "annotations": {"summary": "p95 latency {value:.3f}s above {threshold}s in window {window_start}",
                     "exact": "{value!r}"}},
    {"name": "ServerErrors", "signal": "error_rate", "op": ">", "threshold": 0.1, "resolve_threshold": 0.05,
     "for": [2, 3], "resolve_after_windows": 2, "severity": "error", "labels": {"team": "serving"},
     "annotations": {"summary": "{value:.1%} of requests failed (5xx) in window {window_start}",
                     "exact": "{value!r}"}},
]
# window i: (gamma scale of the latency in ms, share of 503 answers)
# normal, slow x3, half-recovered (neither breaching nor clear), normal x2
SERVING_PLAN = [(25.0, 0.0), (200.0, 0.25), (200.0, 0.25), (200.0, 0.25), (50.0, 0.08), (25.0, 0.0), (25.0, 0.0)]
PER_WINDOW = 120
# (window index, expected states after that window closed); a window closes when the next one's records come
EXPECTED_STATES = {0: {}, 1: "pending", 2: "firing", 3: "firing", 4: "firing", 5: "firing", 6: {}}


class ServingData:
    """Inferwatch JSON records with ``latency_ms`` and a ``serving`` object, PER_WINDOW records
    per 10-minute window of model ``svc``, following SERVING_PLAN."""

    def __init__(self, seed: int = 11) -> None:
        rng = np.random.default_rng(seed)
        self.latency: list[np.ndarray] = []
        self.status: list[np.ndarray] = []
        self.payloads: list[list[bytes]] = []
        for w, (scale, errors) in enumerate(SERVING_PLAN):
            lat = np.round(rng.gamma(4.0, scale, PER_WINDOW), 3)
            status = np.full(PER_WINDOW, 200)
            status[rng.permutation(PER_WINDOW)[:int(round(errors * PER_WINDOW))]] = 503
            times = T0 + w * WINDOW_MS + np.arange(PER_WINDOW) * (WINDOW_MS // PER_WINDOW)
            recs = []
            for i in range(PER_WINDOW):
                recs.append(json.dumps({
                    "model": "svc", "model_version": "1", "timestamp": int(times[i]), "request_id": f"w{w}-{i}",
                    "features": {"x": float(rng.normal())}, "predictions": {"y": float(rng.random())},
                    "latency_ms": float(lat[i]),
                    "serving": {"status_code": int(status[i]), "replica": f"vllm-{i % 3}",
                                "queue_ms": float(lat[i] / 4), "prompt_tokens": int(rng.integers(50, 400)),
                                "completion_tokens": int(rng.integers(1, 200))},
                }).encode())
            self.latency.append(lat)
            self.status.append(status)
            self.payloads.append(recs)

    def p95_seconds(self, w: int) -> float:
        return float(np.quantile(self.latency[w], 0.95)) * 1e-3

    def error_rate(self, w: int) -> float:
        return float(np.mean(self.status[w] >= 500))

    def messages(self, w: int) -> list[Message]:
        return [Message("logs", 0, w * PER_WINDOW + i, p) for i, p in enumerate(self.payloads[w])]


@pytest.fixture(scope="module")
def serving_data():
    data = ServingData()
    # the plan as generated: slow windows breach, the half-recovered one neither breaches nor clears
    p95 = [data.p95_seconds(w) for w in range(len(SERVING_PLAN))]
    err = [data.error_rate(w) for w in range(len(SERVING_PLAN))]
    assert [p > 0.5 for p in p95] == [False, True, True, True, False, False, False]
    assert 0.3 < p95[4] <= 0.5 and p95[5] <= 0.3 and p95[6] <= 0.3
    assert [e > 0.1 for e in err] == [False, True, True, True, False, False, False]
    assert 0.05 < err[4] <= 0.1 and err[5] == err[6] == 0.0
    return data


def _check_serving_bodies(bodies: list[dict], data: ServingData) -> None:
    """One firing body (both rules, fired by window 2) and one resolved body (window 6)."""
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    fired, resolved = bodies
    for body, status, w in ((fired, "firing", 2), (resolved, "resolved", 6)):
        _check_webhook_body(body, status, "svc")
        alerts = {a["labels"]["alertname"]: a for a in body["alerts"]}
        assert sorted(alerts) == ["ServerErrors", "SlowP95"] and len(body["alerts"]) == 2
        slow, errors = alerts["SlowP95"], alerts["ServerErrors"]
        assert slow["labels"] == {"alertname": "SlowP95", "model": "svc", "model_version": "1",
                                  "severity": "critical", "team": "serving"}
        assert errors["labels"]["severity"] == "error"
        start = rfc3339(T0 + w * WINDOW_MS)
        # the numbers that fired (or resolved) it: numpy's quantile of that window's latencies
        assert float(slow["annotations"]["exact"]) == pytest.approx(data.p95_seconds(w), rel=1e-12, abs=0)
        assert slow["annotations"]["summary"] == (f"p95 latency {data.p95_seconds(w):.3f}s above 0.5s "
                                                  f"in window {start}")
        assert float(errors["annotations"]["exact"]) == pytest.approx(data.error_rate(w), rel=1e-12, abs=0)
        assert errors["annotations"]["summary"] == (f"{data.error_rate(w):.1%} of requests failed (5xx) "
                                                    f"in window {start}")
        assert slow["annotations"]["window_start"] == start
    for a, b in zip(sorted(fired["alerts"], key=lambda a: a["fingerprint"]),
                    sorted(resolved["alerts"], key=lambda a: a["fingerprint"])):
        assert a["fingerprint"] == b["fingerprint"] and a["startsAt"] == b["startsAt"]
        assert b["endsAt"] >= b["startsAt"]


def _expect_states(store, w: int) -> None:
    want = EXPECTED_STATES[w]
    want = {} if want == {} else {("SlowP95", ""): want, ("ServerErrors", ""): want}
    assert _states(store) == want, f"after window {w}"


def test_serving_rules_go_pending_then_firing_and_resolve_after_hysteresis(db_url, receiver, serving_data):
    settings = _settings(db_url, receiver.url, SERVING_RULES)
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    gauge = []
    for w in range(len(SERVING_PLAN)):
        pipeline.process(serving_data.messages(w))  # closes window w - 1
        if w:
            _expect_states(store, w - 1)
            # a notification only when a window fires or resolves: none for pending or held windows
            assert len(receiver.bodies) == {1: 0, 2: 0, 3: 1, 4: 1, 5: 1, 6: 1}[w], f"after window {w - 1}"
        gauge.append((_firing_gauge(metrics, "SlowP95", "svc"), _firing_gauge(metrics, "ServerErrors", "svc")))
    pipeline.close_all()
    _expect_states(store, 6)
    gauge.append((_firing_gauge(metrics, "SlowP95", "svc"), _firing_gauge(metrics, "ServerErrors", "svc")))
    # window 5 cleared once but two clear windows are needed: the resolve comes with window 6
    assert gauge == [(0, 0), (0, 0), (0, 0), (1, 1), (1, 1), (1, 1), (1, 1), (0, 0)]
    _check_serving_bodies(receiver.bodies, serving_data)
    resolved = store.alert_instances_in(None, ("resolved",))
    assert sorted(r["labels"]["alertname"] for r in resolved) == ["ServerErrors", "SlowP95"]
    store.close()


def test_restart_mid_episode_continues_history_and_firing_state(db_url, receiver, serving_data):
    settings = _settings(db_url, receiver.url, SERVING_RULES)
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    offsets = 0
    for w in range(len(SERVING_PLAN)):
        if w in (2, 4):  # a crash: only the store survives; window 1 left the rules pending, window 3 firing
            del pipeline
            metrics = Metrics()
            pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
            firing = 1.0 if w == 4 else 0.0
            assert _firing_gauge(metrics, "SlowP95", "svc") == firing  # the gauge starts from the store
            assert _firing_gauge(metrics, "ServerErrors", "svc") == firing
        assert store.load_offsets("g").get(("logs", 0), 0) == offsets
        pipeline.process(serving_data.messages(w))
        offsets += PER_WINDOW
        if w:
            _expect_states(store, w - 1)
    pipeline.close_all()
    _expect_states(store, 6)
    # the k-of-n history crossed the first restart (fires with window 2), the firing state the
    # second (no second firing; the resolve comes once, after two clear windows)
    _check_serving_bodies(receiver.bodies, serving_data)
    assert _firing_gauge(metrics, "SlowP95", "svc") == 0 and _firing_gauge(metrics, "ServerErrors", "svc") == 0
    store.close()


# --- silences through the CLI ---------------------------------------------------------------
def _cli(config_path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--config", str(config_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _write_config(path, db_url: str, hook_url: str, rules: list[dict], alerting: dict | None = None):
    path.write_text(yaml.safe_dump({
        "database_url": db_url, "window": {"length_seconds": WINDOW_S, "idle_close_seconds": None},
        "reference": {"bootstrap_records": 1_000_000}, "metrics": {"enabled": False},
        "alerting": {"receivers": [{"name": "ops", "type": "webhook", "url": hook_url, "timeout_seconds": 5}],
                     "rules": rules, **(alerting or {})}}, sort_keys=False))
    return path


def _wait_bodies(receiver: Receiver, pipeline: Pipeline, n: int, timeout: float = 10.0) -> None:
    """Wait until the receiver holds ``n`` bodies (delivering the outbox meanwhile)."""
    deadline = time.monotonic() + timeout
    while len(receiver.bodies) < n and time.monotonic() < deadline:
        pipeline.deliver_outbox()
        time.sleep(0.1)


def test_silence_mutes_the_firing_which_is_sent_once_after_it_expires(db_url, receiver, serving_data, tmp_path,
                                                                      clean_env):
    config = _write_config(tmp_path / "iw.yaml", db_url, receiver.url, SERVING_RULES)
    settings = load_config(config)
    store = open_store(settings)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    for w in range(2):
        pipeline.process(serving_data.messages(w))
    _expect_states(store, 0)
    out = _cli(config, "silence", "add", "model=svc", "--for", "1h", "--comment", "deploying a fix")
    silence_id = int(out.split()[1].rstrip(":"))
    assert "model=svc" in out
    assert "deploying a fix" in _cli(config, "silence", "list")
    for w in range(2, 4):
        pipeline.process(serving_data.messages(w))
    _expect_states(store, 2)  # recorded as firing ...
    listed = _cli(config, "alerts")
    assert listed.count("firing") == 2 and "SlowP95" in listed and "ServerErrors" in listed
    assert receiver.bodies == []  # ... but not sent
    assert store.list_outbox() == []
    pipeline.tick()
    _wait_bodies(receiver, pipeline, 1, timeout=1.0)
    assert receiver.bodies == []  # still silenced at the tick

    assert f"silence {silence_id} expired" in _cli(config, "silence", "expire", str(silence_id))
    pipeline.tick()  # the unsent firing goes out now, once
    _wait_bodies(receiver, pipeline, 1)
    pipeline.tick()
    pipeline.tick(now=now_ms() + 60_000)
    _wait_bodies(receiver, pipeline, 2, timeout=1.0)
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    assert sorted(a["labels"]["alertname"] for a in receiver.bodies[0]["alerts"]) == ["ServerErrors", "SlowP95"]
    _check_webhook_body(receiver.bodies[0], "firing", "svc")
    # the firing was seen, so its resolve is sent too
    for w in range(4, len(SERVING_PLAN)):
        pipeline.process(serving_data.messages(w))
    pipeline.close_all()
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    store.close()


def test_tick_delivers_what_it_enqueued_in_process(db_url, receiver, serving_data, tmp_path, clean_env):
    """An in-process pipeline (``deliver_in_line``) sends the notifications its own tick wrote,
    as it does for those of a batch: nobody else delivers its outbox."""
    config = _write_config(tmp_path / "iw.yaml", db_url, receiver.url, SERVING_RULES)
    settings = load_config(config)
    store = open_store(settings)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    pipeline.process(serving_data.messages(0))
    pipeline.process(serving_data.messages(1))
    silence_id = store.add_silence(["model=svc"], now_ms(), now_ms() + 3_600_000, "t", "c")
    pipeline.process(serving_data.messages(2))
    pipeline.process(serving_data.messages(3))
    store.expire_silence(silence_id, now_ms())
    pipeline.tick()
    deadline = time.monotonic() + 3
    while not receiver.bodies and time.monotonic() < deadline:
        time.sleep(0.1)
    waiting = [json.loads(m.body)["status"] for m in store.list_outbox("pending")]
    assert [b["status"] for b in receiver.bodies] == ["firing"], f"left in the outbox: {waiting}"
    store.close()


# --- repeat interval --------------------------------------------------------------------
def test_repeat_interval_resends_a_firing_alert_once_per_interval(db_url, receiver, serving_data):
    settings = _settings(db_url, receiver.url, SERVING_RULES[:1], alerting={"repeat_interval_seconds": 60})
    store = open_store(settings)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    for w in range(4):
        pipeline.process(serving_data.messages(w))
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    (row,) = store.alert_instances_in(None, ("firing",))
    sent = row["state"]["last_sent_ms"]
    assert sent is not None
    counts = []
    for dt in (1, 30, 59.9, 60, 60.5, 90, 119, 120, 121, 185):
        pipeline.tick(now=sent + int(dt * 1000))
        _wait_bodies(receiver, pipeline, 99, timeout=0.2)
        counts.append(len(receiver.bodies))
    # re-sent at +60 s, +120 s and +185 s (the interval counts from the last send), never in between
    assert counts == [1, 1, 1, 2, 2, 2, 2, 3, 3, 4]
    fps = {a["fingerprint"] for b in receiver.bodies for a in b["alerts"]}
    assert fps == {row["fingerprint"]} and all(len(b["alerts"]) == 1 for b in receiver.bodies)
    assert len(set(receiver.keys)) == len(receiver.keys)  # each repeat is its own message
    assert {b["alerts"][0]["startsAt"] for b in receiver.bodies} == {receiver.bodies[0]["alerts"][0]["startsAt"]}
    store.close()


# --- realized performance ---------------------------------------------------------------
PERF_PLAN = [0.95, 0.6, 0.95]  # share of right predictions per window


def test_performance_rule_fires_when_realized_accuracy_drops(db_url, receiver):
    rule = {"name": "LowAccuracy", "signal": "performance", "metric": "accuracy", "op": "<", "threshold": 0.8,
            "severity": "critical", "labels": {"team": "risk"},
            "annotations": {"summary": "accuracy {value:.4f} below {threshold} ({model} v{model_version})",
                            "exact": "{value!r}"}}
    settings = _settings(db_url, receiver.url, [rule], performance={"label_delay_seconds": 3600, "models": {
        "clf": {"task": "classification", "prediction": "employed", "labels": ["false", "true"]}}})
    store = open_store(settings)
    metrics = Metrics()
    pipeline = Pipeline(settings, store, metrics, log_dead_letter, "g")
    rng = np.random.default_rng(5)
    n = 200
    accuracy = []
    for w, share in enumerate(PERF_PLAN):
        pred = rng.random(n) < 0.5
        right = rng.permutation(n) < int(share * n)
        truth = np.where(right, pred, ~pred)
        accuracy.append(float(np.mean(pred == truth)))
        times = T0 + w * WINDOW_MS + np.arange(n) * (WINDOW_MS // n)
        pipeline.process([Message("logs", 0, w * n + i, json.dumps({
            "model": "clf", "model_version": "1", "timestamp": int(times[i]), "request_id": f"r{w}-{i}",
            "features": {"x": float(i)}, "predictions": {"employed": bool(pred[i])},
            "label": bool(truth[i])}).encode()) for i in range(n)])
    pipeline.close_all()
    assert accuracy == [0.95, 0.6, 0.95]
    perf = store.list_window_performance("clf").set_index("window_start_ms")
    assert perf["accuracy"].tolist() == pytest.approx(accuracy, abs=1e-12)
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    for body, w in zip(receiver.bodies, (1, 2)):
        _check_webhook_body(body, body["status"], "clf")
        (a,) = body["alerts"]
        assert a["labels"] == {"alertname": "LowAccuracy", "model": "clf", "model_version": "1",
                               "severity": "critical", "team": "risk", "metric": "accuracy"}
        assert float(a["annotations"]["exact"]) == pytest.approx(accuracy[w], abs=1e-12)
        assert a["annotations"]["summary"] == f"accuracy {accuracy[w]:.4f} below 0.8 (clf v1)"
        assert a["annotations"]["window_start"] == rfc3339(T0 + w * WINDOW_MS)
    assert _firing_gauge(metrics, "LowAccuracy", "clf") == 0
    store.close()


def test_performance_alerts_from_labels_arriving_later_are_delivered(db_url, receiver):
    """Labels on their own topic, after the prediction windows closed: the batch closes no
    window, and its firing (then resolve) still reaches the receiver from the in-process
    pipeline."""
    rule = {"name": "LowAccuracy", "signal": "performance", "metric": "accuracy", "op": "<", "threshold": 0.8,
            "labels": {"team": "risk"}, "annotations": {"exact": "{value!r}"}}
    settings = _settings(db_url, receiver.url, [rule], performance={"label_delay_seconds": 3600, "models": {
        "clf": {"task": "classification", "prediction": "employed", "labels": ["false", "true"]}}})
    store = open_store(settings)
    pipeline = Pipeline(settings, store, Metrics(), log_dead_letter, "g")
    rng = np.random.default_rng(6)
    n = 200
    preds, labels, accuracy = [], [], []
    for w, share in enumerate(PERF_PLAN):
        pred = rng.random(n) < 0.5
        truth = np.where(rng.permutation(n) < int(share * n), pred, ~pred)
        accuracy.append(float(np.mean(pred == truth)))
        times = T0 + w * WINDOW_MS + np.arange(n) * (WINDOW_MS // n)
        preds += [json.dumps({"model": "clf", "model_version": "1", "timestamp": int(times[i]),
                              "request_id": f"r{w}-{i}", "features": {"x": float(i)},
                              "predictions": {"employed": bool(pred[i])}}).encode() for i in range(n)]
        labels.append([json.dumps({"request_id": f"r{w}-{i}", "label": bool(truth[i]),
                                   "timestamp": int(times[i]) + 60_000}).encode() for i in range(n)])
    pipeline.process([Message("preds", 0, i, p) for i, p in enumerate(preds)])
    pipeline.close_all()
    assert len(store.list_windows()) == 3 and receiver.bodies == []
    first = labels[0] + labels[1]
    assert pipeline.process([Message("labels", 0, i, p) for i, p in enumerate(first)]) == []  # closes nothing
    assert [r["state"]["state"] for r in store.alert_instances_in(None, ("firing",))] == ["firing"]
    assert pipeline.process([Message("labels", 0, len(first) + i, p) for i, p in enumerate(labels[2])]) == []
    waiting = [json.loads(m.body)["status"] for m in store.list_outbox("pending")][::-1]
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"], f"left in the outbox: {waiting}"
    assert [float(b["alerts"][0]["annotations"]["exact"]) for b in receiver.bodies] == pytest.approx(
        accuracy[1:], abs=1e-12)
    store.close()


# --- bad rules fail start-up ------------------------------------------------------------
def test_bad_rules_fail_start_up_naming_each_rule(tmp_path, clean_env):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": f"sqlite:///{tmp_path / 'never.db'}",
        "kafka": {"bootstrap_servers": "127.0.0.1:1"},
        "alerting": {"rules": [
            {"name": "Fine", "signal": "dataset_drift"},
            {"name": "SlowP95", "signal": "latency_p95", "op": ">", "threshold": 0.5},
            {"name": "Errors", "signal": "error_rate", "op": ">", "threshold": 0.1,
             "annotations": {"summary": "{replica} fails"}},
        ]}}))
    proc = subprocess.run([sys.executable, "-m", "inferwatch.cli", "run", "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out
    assert "invalid configuration" in out
    assert "alerting.rules[1] (SlowP95).signal" in out and "unknown signal 'latency_p95'" in out
    assert "alerting.rules[2] (Errors).annotations" in out and "unknown placeholder {replica}" in out
    assert "rules[0]" not in out and not (tmp_path / "never.db").exists()  # nothing opened
