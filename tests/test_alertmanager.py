"""Pushing alerts into a real Alertmanager (Debian ``prometheus-alertmanager``, started per test by
the ``alertmanager_factory`` fixture) that routes them to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import alertmanager_local
from alerting.alertmanager import (
    PUSH_PATH,
    alertmanager_fingerprint,
    idempotency_key,
    push_body,
    push_request,
)
from alerting.events import FIRING, RESOLVED, ZERO_TIME, Alert, Notification, rfc3339
from conftest import REPO_ROOT, service_unavailable

RECEIVER = "oncall-am"
HOOK_PATH = "/hooks/alertmanager"
WAIT = 6.0  # seconds: group_wait and group_interval are 1 s each


class Receiver:
    """A real HTTP server on 127.0.0.1 that takes Alertmanager's webhook POSTs and queues them."""

    def __init__(self):
        self.calls: queue.Queue = queue.Queue()
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                calls.put({"method": "POST", "path": self.path, "headers": dict(self.headers), "raw": raw})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):  # noqa: N802
                calls.put({"method": "GET", "path": self.path, "headers": dict(self.headers), "raw": b""})
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{HOOK_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_webhook(self, timeout: float = WAIT) -> dict:
        """The next webhook body, after checking it is a JSON POST to the configured path."""
        try:
            call = self.calls.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no webhook from Alertmanager within {timeout}s") from None
        assert call["method"] == "POST"
        assert call["path"] == HOOK_PATH
        headers = {k.lower(): v for k, v in call["headers"].items()}
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"].startswith("Alertmanager/")
        return json.loads(call["raw"])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def epoch_ms(text: str) -> int:
    """Epoch ms of an RFC 3339 time as Alertmanager writes it (Go's RFC3339Nano)."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


LABELS = {"alertname": "InferwatchDatasetDrift", "model": "fraud-scorer", "severity": "warning"}
ANNOTATIONS = {"summary": "dataset drift on fraud-scorer: 4 of 10 features drifted",
               "description": "share of drifted features 0.4 > 0.3 in 2 of the last 3 windows"}
GENERATOR = "http://127.0.0.1:9108/metrics"
EXTERNAL = "http://inferwatch.example:9108"


def drift_alert(status: str, starts_at_ms: int, ends_at_ms: int | None = None) -> Alert:
    return Alert(status=status, labels=dict(LABELS), annotations=dict(ANNOTATIONS), starts_at_ms=starts_at_ms,
                 ends_at_ms=ends_at_ms, generator_url=GENERATOR, values={"drift_share": 0.4})


def notification(*alerts: Alert) -> Notification:
    return Notification(group_labels={"alertname": LABELS["alertname"], "model": LABELS["model"]},
                        alerts=tuple(alerts), external_url=EXTERNAL)


def send(am, request) -> httpx.Response:
    """Deliver an outbox request to the real Alertmanager as the delivery worker would."""
    assert request.method == "POST" and request.path == PUSH_PATH
    resp = httpx.request(request.method, am.url + request.path, content=request.body.encode(),
                         headers={"Content-Type": request.content_type,
                                  "Idempotency-Key": request.idempotency_key}, timeout=5.0)
    return resp


def listed_alerts(am) -> list[dict]:
    resp = httpx.get(f"{am.url}/api/v2/alerts", timeout=5.0)
    resp.raise_for_status()
    return resp.json()


# --------------------------------------------------------------------------
# The body, without a peer
# --------------------------------------------------------------------------


def test_firing_ends_four_resend_intervals_ahead_and_resolved_at_its_resolve_time():
    t = 1_796_000_000_000
    firing = drift_alert(FIRING, t - 60_000)
    resolved = drift_alert(RESOLVED, t - 60_000, ends_at_ms=t - 5_000)
    body = push_body([firing, resolved], now_ms=t, resend_seconds=30)
    assert [set(a) for a in body] == [{"labels", "annotations", "startsAt", "endsAt", "generatorURL"}] * 2
    assert body[0]["endsAt"] == rfc3339(t + 120_000)
    assert body[1]["endsAt"] == rfc3339(t - 5_000)
    assert body[0]["startsAt"] == rfc3339(t - 60_000) == "2026-11-30T00:52:20.000Z"
    assert body[0]["labels"] == LABELS and body[0]["annotations"] == ANNOTATIONS
    assert body[0]["generatorURL"] == GENERATOR
    # a resolved alert without its resolve time ends now
    assert push_body([drift_alert(RESOLVED, t - 1)], t, 30)[0]["endsAt"] == rfc3339(t)


def test_push_request_with_four_positional_arguments():
    t = 1_796_000_000_000
    unlinked = Alert(FIRING, dict(LABELS), {}, t - 1_000)
    req = push_request(notification(unlinked), RECEIVER, "n-17@1796000000000", t)
    assert (req.target, req.method, req.path, req.content_type) == (RECEIVER, "POST", "/api/v2/alerts",
                                                                     "application/json")
    body = json.loads(req.body)
    assert body[0]["endsAt"] == rfc3339(t + 240_000)  # default re-send interval 60 s
    assert body[0]["generatorURL"] == EXTERNAL  # the alert has no link of its own
    assert req.expires_at_ms == t + 240_000
    assert req.idempotency_key == idempotency_key("n-17@1796000000000", RECEIVER)
    assert req.idempotency_key != push_request(notification(unlinked), "other-am", "n-17@1796000000000",
                                               t).idempotency_key
    assert req.idempotency_key != push_request(notification(unlinked), RECEIVER, "n-18", t).idempotency_key
    resolved = push_request(notification(drift_alert(RESOLVED, t - 9_000, t - 1_000)), RECEIVER, "k", t)
    assert resolved.expires_at_ms is None


@pytest.mark.parametrize("alert, resend, message", [
    (Alert(FIRING, {"alertname": "A", "model-name": "m"}, {}, 0), 60, "label name 'model-name'"),
    (Alert(FIRING, {"alertname": "A"}, {"run book": "x"}, 0), 60, "annotation name 'run book'"),
    (Alert(FIRING, {"alertname": ""}, {}, 0), 60, "at least one label"),
    (Alert("pending", {"alertname": "A"}, {}, 0), 60, "status"),
    (Alert(RESOLVED, {"alertname": "A"}, {}, 5_000, ends_at_ms=4_000), 60, "ends"),
    (Alert(FIRING, {"alertname": "A"}, {}, 0), 0, "resend_seconds"),
])
def test_push_body_refuses_what_alertmanager_rejects(alert, resend, message):
    with pytest.raises(ValueError, match=message):
        push_body([alert], 10_000, resend)


def test_alertmanager_fingerprint_known_values():
    # FNV-1a 64 offset basis: prometheus/common's fingerprint of the empty label set
    assert alertmanager_fingerprint({}) == "cbf29ce484222325"
    assert alertmanager_fingerprint({"a": "b", "empty": ""}) == alertmanager_fingerprint({"a": "b"})
    assert alertmanager_fingerprint({"a": "b"}) != alertmanager_fingerprint({"a": "c"})


# --------------------------------------------------------------------------
# Against a real Alertmanager
# --------------------------------------------------------------------------


def test_firing_then_resolved_reach_the_receiver(alertmanager_factory, receiver):
    am = alertmanager_factory(receiver.url, receiver_name=RECEIVER)
    t0 = now_ms()
    starts = t0 - 120_000
    req = push_request(notification(drift_alert(FIRING, starts)), RECEIVER, "drift-fraud@1", t0)
    resp = send(am, req)
    assert resp.status_code == 200, resp.text

    listed = [a for a in listed_alerts(am) if a["labels"] == LABELS]
    assert len(listed) == 1
    assert listed[0]["status"]["state"] == "active"
    assert listed[0]["fingerprint"] == alertmanager_fingerprint(LABELS)
    assert listed[0]["annotations"] == ANNOTATIONS
    assert epoch_ms(listed[0]["startsAt"]) == starts
    assert epoch_ms(listed[0]["endsAt"]) == t0 + 240_000
    assert [r["name"] for r in listed[0]["receivers"]] == [RECEIVER]

    hook = receiver.next_webhook()
    assert hook["version"] == "4"
    assert hook["status"] == FIRING
    assert hook["receiver"] == RECEIVER
    assert hook["groupLabels"] == {"alertname": LABELS["alertname"], "model": LABELS["model"]}
    assert hook["commonLabels"] == LABELS
    assert hook["commonAnnotations"] == ANNOTATIONS
    assert hook["externalURL"] == am.url
    assert hook["truncatedAlerts"] == 0
    [got] = hook["alerts"]
    assert got["status"] == FIRING
    assert got["labels"] == LABELS and got["annotations"] == ANNOTATIONS
    assert epoch_ms(got["startsAt"]) == starts
    assert got["endsAt"] == ZERO_TIME
    assert got["generatorURL"] == GENERATOR
    assert got["fingerprint"] == alertmanager_fingerprint(LABELS)

    t1 = now_ms()
    req = push_request(notification(drift_alert(RESOLVED, starts, ends_at_ms=t1 - 1)), RECEIVER,
                       "drift-fraud@2", t1)
    assert send(am, req).status_code == 200

    hook = receiver.next_webhook()
    assert hook["status"] == RESOLVED
    [got] = hook["alerts"]
    assert got["status"] == RESOLVED
    assert got["fingerprint"] == alertmanager_fingerprint(LABELS)
    assert got["labels"] == LABELS
    assert epoch_ms(got["startsAt"]) == starts
    assert epoch_ms(got["endsAt"]) == t1 - 1
    # a resolved alert is no longer listed as active
    assert [a for a in listed_alerts(am) if a["labels"] == LABELS] == []


def test_alertmanager_resolves_by_itself_when_resends_stop(alertmanager_factory, receiver):
    am = alertmanager_factory(receiver.url, receiver_name=RECEIVER)
    t0 = now_ms()
    # re-sent every second: endsAt is 4 s ahead; when no re-send comes, Alertmanager resolves it
    req = push_request(notification(drift_alert(FIRING, t0 - 10_000)), RECEIVER, "drift-fraud@1", t0,
                       resend_seconds=1.0)
    assert send(am, req).status_code == 200
    assert receiver.next_webhook()["status"] == FIRING
    hook = receiver.next_webhook(timeout=WAIT + 4)
    assert now_ms() >= t0 + 4_000
    assert hook["status"] == RESOLVED
    [got] = hook["alerts"]
    assert got["fingerprint"] == alertmanager_fingerprint(LABELS)
    assert epoch_ms(got["endsAt"]) == t0 + 4_000


def test_real_alertmanager_rejects_what_push_body_refuses(alertmanager_factory, receiver):
    am = alertmanager_factory(receiver.url)
    t = now_ms()
    valid = {"labels": {"alertname": "A"}, "annotations": {}, "startsAt": rfc3339(t - 1_000),
             "endsAt": rfc3339(t + 60_000), "generatorURL": ""}
    post = lambda alert: httpx.post(f"{am.url}{PUSH_PATH}", json=[alert], timeout=5.0)  # noqa: E731
    assert post(valid).status_code == 200
    assert post({**valid, "labels": {"alertname": "A", "model-name": "m"}}).status_code == 400
    assert post({**valid, "annotations": {"run book": "x"}}).status_code == 400
    assert post({**valid, "labels": {}}).status_code == 400
    assert post({**valid, "endsAt": rfc3339(t - 2_000)}).status_code == 400
    # Alertmanager drops empty label values before it fingerprints, as alertmanager_fingerprint does
    assert post({**valid, "labels": {"alertname": "B", "pod": ""}}).status_code == 200
    fingerprints = {a["labels"]["alertname"]: a["fingerprint"] for a in listed_alerts(am)}
    assert fingerprints == {"A": alertmanager_fingerprint({"alertname": "A"}),
                            "B": alertmanager_fingerprint({"alertname": "B", "pod": ""})}


def test_webhook_body_has_the_shape_alertmanager_sends(alertmanager_factory, receiver):
    from alerting.notifiers import webhook_body

    am = alertmanager_factory(receiver.url, receiver_name=RECEIVER)
    t0 = now_ms()
    firing = notification(drift_alert(FIRING, t0 - 30_000))
    assert send(am, push_request(firing, RECEIVER, "k1", t0)).status_code == 200
    real = receiver.next_webhook()
    ours = webhook_body(firing, RECEIVER)
    assert set(ours) == set(real)
    assert [set(a) for a in ours["alerts"]] == [set(a) for a in real["alerts"]]
    for name in ("version", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
                 "truncatedAlerts", "groupKey"):
        assert ours[name] == real[name], name
    for o, r in zip(ours["alerts"], real["alerts"], strict=True):
        for name in ("status", "labels", "annotations", "endsAt", "generatorURL"):
            assert o[name] == r[name], name
        assert epoch_ms(o["startsAt"]) == epoch_ms(r["startsAt"])

    t1 = now_ms()
    resolved = notification(drift_alert(RESOLVED, t0 - 30_000, ends_at_ms=t1 - 1))
    assert send(am, push_request(resolved, RECEIVER, "k2", t1)).status_code == 200
    real = receiver.next_webhook()
    ours = webhook_body(resolved, RECEIVER)
    assert set(ours) == set(real)
    assert (ours["status"], ours["alerts"][0]["status"]) == (real["status"], real["alerts"][0]["status"]) \
        == (RESOLVED, RESOLVED)
    assert epoch_ms(ours["alerts"][0]["endsAt"]) == epoch_ms(real["alerts"][0]["endsAt"])


# --------------------------------------------------------------------------
# scripts/alertmanager_local.py
# --------------------------------------------------------------------------


def test_command_line_start_status_stop(tmp_path, receiver):
    if alertmanager_local.find_binary() is None:
        service_unavailable("no prometheus-alertmanager binary (apt-get install prometheus-alertmanager)")
    script = [sys.executable, str(REPO_ROOT / "scripts" / "alertmanager_local.py")]
    run = lambda *args: subprocess.run([*script, *args, "--dir", str(tmp_path)],  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    started = run("start", "--webhook-url", receiver.url)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/-/ready", timeout=5.0).status_code == 200
        status = run("status")
        assert status.returncode == 0 and url in status.stdout
        config = httpx.get(f"{url}/api/v2/status", timeout=5.0).json()["config"]["original"]
        assert receiver.url in config and "send_resolved: true" in config
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert run("status").returncode == 1
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/-/ready", timeout=2.0)


def test_a_process_that_dies_at_start_reports_its_log(tmp_path, monkeypatch):
    fake = tmp_path / "fake-alertmanager"
    fake.write_text("#!/bin/sh\necho 'level=error msg=\"cannot load config: boom\"'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(alertmanager_local.BINARY_ENV, str(fake))
    server = alertmanager_local.AlertmanagerServer(tmp_path / "am", webhook_url="http://127.0.0.1:9/x",
                                                   start_timeout=10)
    with pytest.raises(alertmanager_local.ServiceError, match=r"exited with code 3(.|\n)*cannot load config: boom"):
        server.start()
    assert not server.is_running()


def test_no_binary_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv(alertmanager_local.BINARY_ENV, str(tmp_path / "missing"))
    assert alertmanager_local.find_binary() is None
    with pytest.raises(alertmanager_local.ServiceError, match="apt-get install -y prometheus-alertmanager"):
        alertmanager_local.AlertmanagerServer(tmp_path / "am", webhook_url="http://127.0.0.1:9/x").start()
    assert os.listdir(tmp_path) == []
