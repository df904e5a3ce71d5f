"""The outbox on SQLite and PostgreSQL: idempotent enqueue in the caller's transaction, the
worker's retries with a stored backoff, dead messages (refused, expired, unknown target) with
their metric, per-target order, leases that keep two workers off one row, the CLI, and the
acceptance test: a receiver failing for a minute, ``inferwatch outbox deliver`` killed with
SIGKILL in the middle and started again, every message accepted exactly once."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import yaml
from typer.testing import CliRunner

from alerting.endpoint import Endpoint
from alerting.events import Alert, Notification, OutgoingRequest
from alerting.notifiers import ReceiverConfig, requests_for
from alerting.outbox import OutboxConfig, OutboxWorker, backoff_seconds
from alerting.signing import verify
from inferwatch.metrics import Metrics
from inferwatch.store import Store

from e2e import REPO
from test_notifiers import Receiver

FAST = OutboxConfig(backoff_initial_seconds=1, backoff_max_seconds=4, jitter_seconds=0, poll_interval_seconds=0.1,
                    lease_seconds=30)


def _req(target: str, key: str, body: dict | None = None, expires_at_ms: int | None = None, path: str = ""):
    return OutgoingRequest(target, "POST", path, json.dumps(body or {"key": key}), key, expires_at_ms)


def _enqueue(store: Store, *reqs: OutgoingRequest, now: int = 1_000) -> list[bool]:
    with store.transaction() as conn:
        return [store.enqueue(conn, r, now) for r in reqs]


def _sample(metrics: Metrics, target: str, outcome: str) -> float:
    return metrics.registry.get_sample_value("inferwatch_outbox_deliveries_total",
                                             {"target": target, "outcome": outcome}) or 0.0


def test_enqueue_is_idempotent_per_key_and_part_of_the_callers_transaction(store):
    assert _enqueue(store, _req("t", "k1", {"a": 1}), _req("t", "k1", {"a": 2})) == [True, False]
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            assert store.enqueue(conn, _req("t", "k2"), 1_000)
            raise RuntimeError("the decision's transaction fails: its message goes too")
    [row] = store.list_outbox()
    assert (row.idempotency_key, row.body, row.state, row.attempts, row.next_attempt_at_ms) == (
        "k1", '{"a": 1}', "pending", 0, 1_000)
    assert row.request == OutgoingRequest("t", "POST", "", '{"a": 1}', "k1")
    assert store.outbox_counts() == {"pending": 1, "delivered": 0, "dead": 0}


def test_retry_with_stored_backoff_then_delivered(store, receiver):
    answers = iter([(503, "busy"), (500, ""), (200, "")])
    srv = receiver(lambda req: next(answers))
    metrics = Metrics()
    _enqueue(store, _req("hook", "k1", path="/in"), now=10_000)
    worker = OutboxWorker(store, {"hook": ("webhook", Endpoint(url=srv.url))}, FAST, metrics.outbox_outcome)
    try:
        assert worker.run_once(10_000) == {"delivered": 0, "retry": 1, "dead": 0, "expired": 0}
        [row] = store.list_outbox("pending")
        assert (row.attempts, row.next_attempt_at_ms, row.last_error) == (1, 11_000, "HTTP 503: busy")
        assert worker.run_once(10_999)["retry"] == 0 and len(srv.requests) == 1  # not due yet
        assert worker.run_once(11_000)["retry"] == 1
        assert store.list_outbox()[0].next_attempt_at_ms == 11_000 + 2_000  # doubled
        assert worker.run_once(13_000)["delivered"] == 1
    finally:
        worker.close()
    [row] = store.list_outbox("delivered")
    assert (row.attempts, row.delivered_at_ms, row.lease_until_ms) == (3, 13_000, None)
    assert [(r.method, r.path, r.headers["idempotency-key"]) for r in srv.requests] == [("POST", "/in", "k1")] * 3
    assert (_sample(metrics, "hook", "failed"), _sample(metrics, "hook", "delivered")) == (2, 1)


def test_backoff_is_tenacitys_exponential_with_jitter():
    cfg = OutboxConfig(backoff_initial_seconds=1, backoff_max_seconds=300, jitter_seconds=0)
    assert [backoff_seconds(cfg, n) for n in (1, 2, 3, 9, 10, 20)] == [1, 2, 4, 256, 300, 300]
    jittered = [backoff_seconds(OutboxConfig(jitter_seconds=1), 3) for _ in range(200)]
    assert 4 <= min(jittered) < max(jittered) <= 5 and len(set(jittered)) > 100


def test_refused_message_is_dead_at_once_with_the_metric_and_does_not_block(store, receiver):
    srv = receiver(lambda req: (400, "invalid body") if req.json()["key"] == "k1" else (200, ""))
    metrics = Metrics()
    _enqueue(store, _req("hook", "k1"), _req("hook", "k2"))
    worker = OutboxWorker(store, {"hook": ("webhook", Endpoint(url=srv.url))}, FAST, metrics.outbox_outcome)
    try:
        assert worker.run_once(2_000) == {"delivered": 1, "retry": 0, "dead": 1, "expired": 0}
    finally:
        worker.close()
    [dead] = store.list_outbox("dead")
    assert (dead.idempotency_key, dead.attempts, dead.last_error, dead.dead_at_ms) == (
        "k1", 1, "HTTP 400: invalid body", 2_000)
    assert [r.idempotency_key for r in store.list_outbox("delivered")] == ["k2"]
    assert (_sample(metrics, "hook", "dead"), _sample(metrics, "hook", "delivered")) == (1, 1)
    assert len(srv.requests) == 2
    metrics.set_outbox_counts(store.outbox_counts())
    assert metrics.registry.get_sample_value("inferwatch_outbox_messages", {"state": "dead"}) == 1
    assert metrics.registry.get_sample_value("inferwatch_outbox_messages", {"state": "pending"}) == 0


def test_expired_and_unknown_target_go_dead_without_a_request(store, receiver):
    srv = receiver()
    metrics = Metrics()
    _enqueue(store, _req("hook", "old", expires_at_ms=5_000), _req("gone", "lost"), _req("hook", "fresh"))
    worker = OutboxWorker(store, {"hook": ("webhook", Endpoint(url=srv.url))}, FAST, metrics.outbox_outcome)
    try:
        assert worker.run_once(5_000) == {"delivered": 1, "retry": 0, "dead": 1, "expired": 1}
    finally:
        worker.close()
    dead = {r.idempotency_key: (r.last_error, r.attempts) for r in store.list_outbox("dead")}
    assert dead == {"old": ("expired", 0), "lost": ("unknown target 'gone': not configured", 0)}
    assert [r.headers["idempotency-key"] for r in srv.requests] == ["fresh"]
    assert (_sample(metrics, "hook", "dead"), _sample(metrics, "gone", "dead")) == (1, 1)


def test_delivered_and_dead_messages_are_purged_after_the_retention(store, receiver):
    srv = receiver()
    _enqueue(store, _req("hook", "sent"), _req("gone", "lost"), _req("hook", "later", expires_at_ms=10**15))
    cfg = FAST.model_copy(update={"retention_seconds": 60})
    worker = OutboxWorker(store, {"hook": ("webhook", Endpoint(url=srv.url))}, cfg)
    try:
        worker.run_once(5_000)  # "sent" and "later" delivered at 5 s, "lost" dead at 5 s
        assert worker.purge(64_999) == 0  # not yet 60 s old
        assert worker.purge(65_001) == 3 and store.outbox_counts() == {"pending": 0, "delivered": 0, "dead": 0}
        _enqueue(store, _req("hook", "new"))
        assert worker.purge(10**12) == 0  # a pending message is never purged
        assert [r.idempotency_key for r in store.list_outbox("pending")] == ["new"]
        assert OutboxWorker(store, {}, FAST.model_copy(update={"retention_seconds": None})).purge(10**15) == 0
    finally:
        worker.close()


def test_per_target_order_a_failing_head_blocks_only_its_target(store, receiver):
    srv = receiver(lambda req: (503, "") if req.path == "/a" else (200, ""))
    _enqueue(store, _req("a", "a1"), _req("b", "b1"), _req("a", "a2"), _req("b", "b2"))
    targets = {"a": ("webhook", Endpoint(url=srv.url + "/a")), "b": ("webhook", Endpoint(url=srv.url + "/b"))}
    worker = OutboxWorker(store, targets, FAST)
    try:
        assert worker.run_once(2_000) == {"delivered": 2, "retry": 1, "dead": 0, "expired": 0}
        assert [(r.path, r.headers["idempotency-key"]) for r in srv.requests] == [("/a", "a1"), ("/b", "b1"),
                                                                                   ("/b", "b2")]
        srv.respond = lambda req: (200, "")
        assert worker.run_once(3_000)["delivered"] == 2
    finally:
        worker.close()
    assert [r.headers["idempotency-key"] for r in srv.requests[3:]] == ["a1", "a2"]  # a1 before a2


def test_a_lease_keeps_two_workers_off_one_row(store, db_url):
    _enqueue(store, *[_req(f"t{i % 40}", f"k{i}") for i in range(120)])
    other = Store(db_url)
    claimed: list[list[str]] = [[], []]

    def claim(s: Store, out: list[str]) -> None:
        for _ in range(30):
            out.extend(r.idempotency_key for r in s.claim_due(2_000, 60_000, 7))

    try:
        threads = [threading.Thread(target=claim, args=(s, out)) for s, out in zip((store, other), claimed)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.close()
    both = claimed[0] + claimed[1]
    # the head of each of the 40 targets, each claimed once; the rest wait behind their heads
    assert sorted(both, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(40)]
    assert store.claim_due(2_000, 60_000, 100) == []  # all heads leased
    assert len(store.claim_due(62_000, 60_000, 100)) == 40  # leases run out: claimable again


def test_background_worker_start_and_stop(store, receiver):
    srv = receiver()
    worker = OutboxWorker(store, {"hook": ("webhook", Endpoint(url=srv.url))}, FAST)
    worker.start()
    try:
        _enqueue(store, _req("hook", "k1"), _req("hook", "k2"), now=int(time.time() * 1000))
        deadline = time.monotonic() + 10
        while store.outbox_counts()["delivered"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert worker._thread is None
    assert [r.headers["idempotency-key"] for r in srv.requests] == ["k1", "k2"]
    worker.close()


def _write_config(path, db_url, receivers, outbox) -> str:
    path.write_text(yaml.safe_dump({"database_url": db_url, "metrics": {"enabled": False},
                                    "alerting": {"receivers": receivers, "outbox": outbox}}))
    return str(path)


def test_background_worker_logs_a_database_outage_once(tmp_path, caplog):
    # a database that cannot be opened (its directory does not exist) fails every poll
    broken = Store(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    worker = OutboxWorker(broken, {}, FAST.model_copy(update={"poll_interval_seconds": 0.01}))
    with caplog.at_level(logging.INFO, logger="alerting.outbox"):
        worker.start()
        time.sleep(0.5)  # polls at 0.02, 0.04, ... s: several failures
        worker.close()
    msgs = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(msgs) == 1 and msgs[0][0] == "WARNING" and "outbox delivery paused (OperationalError" in msgs[0][1]
    broken.close()


def test_cli_list_and_retry(store, db_url, tmp_path, clean_env):
    from inferwatch.cli import app

    _enqueue(store, _req("hook", "k1"), _req("hook", "k2"))
    [row] = store.claim_due(2_000, 1_000, 1)
    store.mark_dead(row.id, 2_000, "HTTP 400: no")
    cfg = _write_config(tmp_path / "c.yaml", db_url, [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1"}],
                        {"expire_after_seconds": 600})
    runner = CliRunner()
    out = runner.invoke(app, ["outbox", "list", "--state", "dead", "-c", cfg], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "k1" in out.output and "HTTP 400: no" in out.output and "k2" not in out.output
    assert "1 pending, 0 delivered, 1 dead" in out.output
    assert runner.invoke(app, ["outbox", "list", "--state", "lost", "-c", cfg]).exit_code == 2
    out = runner.invoke(app, ["outbox", "retry", "k1", "-c", cfg])
    assert out.exit_code == 0, out.output
    revived = {r.idempotency_key: r for r in store.list_outbox("pending")}["k1"]
    assert revived.attempts == 0 and revived.expires_at_ms - revived.next_attempt_at_ms == 600_000
    assert runner.invoke(app, ["outbox", "retry", "k1", "-c", cfg]).exit_code == 1  # not dead any more


def test_cli_deliver_sends_hook_messages_too(store, db_url, tmp_path, clean_env, receiver):
    from inferwatch.cli import app

    srv = receiver()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"database_url": db_url, "hooks": {"retrain": [
        {"name": "retrain", "kind": "http", "url": srv.url, "path": "/runs", "method": "POST",
         "body": {"model": "{model}"}}]}}))
    _enqueue(store, _req("retrain", "r1", path="/runs"))
    out = CliRunner().invoke(app, ["outbox", "deliver", "--until-empty", "-c", str(cfg)])
    assert out.exit_code == 0, out.output
    assert [r.path for r in srv.requests] == ["/runs"]
    assert [r.idempotency_key for r in store.list_outbox("delivered")] == ["r1"]


# --- acceptance: a receiver down for a minute, the worker killed in the middle ---------------

FAIL_SECONDS = 60


class Recovering:
    """A receiver answering 500 and 429 in turn for the first ``FAIL_SECONDS`` after it starts,
    then 200 (PagerDuty path: 202), recording each idempotency key it accepted. It checks every
    request: method, path, content type, idempotency key, the signature of the signed target and
    the routing key of the PagerDuty one (a bad request gets 400, which would make it dead)."""

    def __init__(self, signing_secret: str) -> None:
        self.started = time.monotonic()
        self.accepted: Counter[str] = Counter()
        self.failed = 0
        self.bad: list[str] = []
        self.lock = threading.Lock()
        self.secret = signing_secret
        self.server = Receiver(self._respond)
        self.url = self.server.url

    def _check(self, req) -> str | None:
        key = req.headers.get("idempotency-key", "")
        if req.method != "POST" or req.headers.get("content-type") != "application/json":
            return f"{key}: {req.method} {req.headers.get('content-type')}"
        body = req.json()
        if req.path == "/hook":
            if not verify(self.secret, req.headers, req.body, time.time()) or req.headers["webhook-id"] != key:
                return f"{key}: bad signature"
            if body.get("version") != "4" or not key.endswith(":hook"):
                return f"{key}: not an Alertmanager body"
        elif req.path == "/pd/v2/enqueue":
            if body.get("routing_key") != "R0UTING" or not key.endswith(body.get("dedup_key", "-")):
                return f"{key}: bad PagerDuty event"
        else:
            return f"{key}: path {req.path}"
        return None

    def _respond(self, req):
        problem = self._check(req)
        with self.lock:
            if problem:
                self.bad.append(problem)
                return 400, problem
            if time.monotonic() - self.started < FAIL_SECONDS:
                self.failed += 1
                return (500, "down") if self.failed % 2 else (429, "rate limited")
            self.accepted[req.headers["idempotency-key"]] += 1
            return (202, '{"status":"success"}') if req.path.startswith("/pd") else (200, "")

    def close(self) -> None:
        self.server.close()


def _notifications(n: int) -> list[Notification]:
    out = []
    for i in range(n):
        labels = {"alertname": "InferwatchFeatureDrift", "model": "fraud", "model_version": "3",
                  "severity": "critical", "feature": f"f{i}"}
        alert = Alert("firing", labels, {"summary": f"f{i} drifted"}, 1_764_558_000_000 + i, values={"psi": 0.3})
        out.append(Notification({"alertname": "InferwatchFeatureDrift", "model": "fraud"}, (alert,), "http://iw"))
    return out


def test_receiver_down_for_a_minute_and_a_restart_every_message_arrives_once(db_url, tmp_path, clean_env):
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    (tmp_path / "routing_key").write_text("R0UTING\n")
    rec = Recovering(secret)
    receivers = [
        {"name": "hook", "type": "webhook", "url": rec.url + "/hook", "timeout_seconds": 3,
         "signing_secret": {"env": "IW_TEST_SIGNING_SECRET"}},
        {"name": "pd", "type": "pagerduty", "url": rec.url + "/pd", "timeout_seconds": 3,
         "routing_key": {"file": str(tmp_path / "routing_key")}},
    ]
    # backoff at most 3 s (+ jitter), so the worker finds the receiver back soon after the minute;
    # lease 10 s: a row claimed when the process was killed is free again well within the minute
    outbox_cfg = {"backoff_initial_seconds": 0.5, "backoff_max_seconds": 3, "jitter_seconds": 0.5,
                  "poll_interval_seconds": 0.2, "lease_seconds": 10, "expire_after_seconds": 3600}
    cfg = _write_config(tmp_path / "inferwatch.yaml", db_url, receivers, outbox_cfg)
    clean_env.setenv("IW_TEST_SIGNING_SECRET", secret)
    settings_receivers = [ReceiverConfig(**r) for r in receivers]
    store = Store(db_url)
    store.create_schema()
    now = int(time.time() * 1000)
    keys = []
    with store.transaction() as conn:
        for i, n in enumerate(_notifications(10)):
            for receiver in settings_receivers:
                for req in requests_for(n, receiver, f"alert:{i}", now, OutboxConfig(**outbox_cfg)):
                    assert store.enqueue(conn, req, now)
                    keys.append(req.idempotency_key)
    assert len(keys) == 20 and len(set(keys)) == 20

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "inferwatch.cli", "outbox", "deliver", "--until-empty", "-c", cfg, "-v"]
    logs = [open(tmp_path / f"deliver{i}.log", "wb") for i in (1, 2)]
    first = second = None
    try:
        first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
        time.sleep(max(0.0, FAIL_SECONDS / 2 - (time.monotonic() - rec.started)))
        assert first.poll() is None, (tmp_path / "deliver1.log").read_text()
        first.send_signal(signal.SIGKILL)  # no clean shutdown: whatever was in flight stays leased
        first.wait(10)
        failed_before_restart = rec.failed
        mid = store.outbox_counts()
        assert failed_before_restart >= 2 and not rec.accepted
        assert mid == {"pending": 20, "delivered": 0, "dead": 0}
        assert {r.target for r in store.list_outbox("pending") if r.attempts > 0} == {"hook", "pd"}

        second = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        code = second.wait(FAIL_SECONDS + 60)
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
        for f in logs:
            f.close()
        rec.close()
    log2 = (tmp_path / "deliver2.log").read_text()
    assert code == 0, log2
    assert rec.bad == []
    assert rec.failed > failed_before_restart  # the restarted worker also met the failing receiver
    assert dict(rec.accepted) == dict.fromkeys(keys, 1)  # every key accepted, exactly once
    assert store.outbox_counts() == {"pending": 0, "delivered": 20, "dead": 0}
    rows = store.list_outbox("delivered", limit=100)
    assert all(r.attempts >= 2 and r.last_error in ("HTTP 500: down", "HTTP 429: rate limited")
               for r in rows if r.idempotency_key in (keys[0], keys[1]))
    assert secret not in log2 and "R0UTING" not in log2  # secrets are never logged
    assert "20 delivered" in log2
    store.close()
