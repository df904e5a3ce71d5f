"""Notification receivers: the bodies against FORMATS.md section 7 (Alertmanager webhook v4,
PagerDuty Events v2, Slack), receiver configuration, and delivery to real HTTP servers on
127.0.0.1 that check method, path, headers and body (signing, bearer token, PagerDuty routing
key only on the wire, Slack's "ok")."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import ValidationError

from alerting.delivery import deliver
from alerting.endpoint import Endpoint
from alerting.events import ZERO_TIME, Alert, Notification, OutgoingRequest, fingerprint
from alerting.notifiers import (ReceiverConfig, pagerduty_event, requests_for, slack_message, webhook_body)
from alerting.outbox import OutboxConfig
from alerting.signing import verify

NOW_MS = 1_764_558_000_000  # 2025-12-01T03:00:00Z
SIGNING = "whsec_" + base64.b64encode(b"receiver-shared-secret-32-bytes!").decode()


@dataclass
class Request:
    """One request a :class:`Receiver` got."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self):
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request and answers with
    ``respond(request) -> (status, body_text)`` or ``(status, body_text, headers)`` (default
    200, empty)."""

    def __init__(self, respond=None) -> None:
        self.requests: list[Request] = []
        self.respond = respond or (lambda req: (200, ""))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot hold a handler thread forever

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append(req)
                status, text, *extra = outer.respond(req)
                data = text.encode()
                try:
                    self.send_response(status)
                    for name, value in (extra[0] if extra else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout) before the answer

            do_POST = do_PATCH = _any  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _alert(status="firing", model="fraud", feature=None, severity="critical", **kw) -> Alert:
    labels = {"alertname": "InferwatchFeatureDrift", "model": model, "model_version": "3", "severity": severity}
    if feature:
        labels["feature"] = feature
    return Alert(status=status, labels=labels,
                 annotations={"summary": f"{feature or 'dataset'} drifted", "runbook_url": "http://wiki/drift"},
                 starts_at_ms=NOW_MS - 3_600_000, ends_at_ms=NOW_MS if status == "resolved" else None,
                 generator_url="http://inferwatch.example:9108/metrics", values={"psi": 0.42, "p_value": 1e-9},
                 **kw)


def _notification(*alerts: Alert) -> Notification:
    return Notification({"alertname": "InferwatchFeatureDrift", "model": "fraud"}, alerts,
                        "http://inferwatch.example:9108")


# --- bodies --------------------------------------------------------------------------------

def test_webhook_body_is_alertmanager_v4():
    firing, resolved = _alert(feature="amount"), _alert("resolved", feature="age")
    body = webhook_body(_notification(firing, resolved), "oncall")
    assert body == {
        "version": "4",
        "groupKey": '{}:{alertname="InferwatchFeatureDrift", model="fraud"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "InferwatchFeatureDrift", "model": "fraud"},
        # labels and annotations equal across both alerts; feature and summary differ
        "commonLabels": {"alertname": "InferwatchFeatureDrift", "model": "fraud", "model_version": "3",
                         "severity": "critical"},
        "commonAnnotations": {"runbook_url": "http://wiki/drift"},
        "externalURL": "http://inferwatch.example:9108",
        "alerts": [
            {"status": "firing", "labels": firing.labels, "annotations": firing.annotations,
             "startsAt": "2025-12-01T02:00:00.000Z", "endsAt": ZERO_TIME,
             "generatorURL": "http://inferwatch.example:9108/metrics", "fingerprint": fingerprint(firing.labels)},
            {"status": "resolved", "labels": resolved.labels, "annotations": resolved.annotations,
             "startsAt": "2025-12-01T02:00:00.000Z", "endsAt": "2025-12-01T03:00:00.000Z",
             "generatorURL": "http://inferwatch.example:9108/metrics", "fingerprint": fingerprint(resolved.labels)},
        ],
    }
    only_resolved = webhook_body(_notification(resolved), "oncall")
    assert only_resolved["status"] == "resolved" and only_resolved["commonLabels"] == resolved.labels


def test_pagerduty_trigger_and_resolve_share_the_dedup_key():
    firing = _alert(feature="amount", severity="page")
    trigger = pagerduty_event(firing)
    assert trigger == {
        "event_action": "trigger",
        "dedup_key": firing.fingerprint,
        "payload": {"summary": "amount drifted", "source": "inferwatch.example", "severity": "critical",
                    "timestamp": "2025-12-01T02:00:00.000Z", "component": "fraud", "group": "3",
                    "class": "InferwatchFeatureDrift", "custom_details": {"psi": 0.42, "p_value": 1e-9}},
        "links": [{"href": "http://inferwatch.example:9108/metrics", "text": "inferwatch"}],
    }
    assert "routing_key" not in trigger
    resolved = Alert(**{**firing.__dict__, "status": "resolved", "ends_at_ms": NOW_MS})
    assert pagerduty_event(resolved) == {"event_action": "resolve", "dedup_key": firing.fingerprint}


def test_pagerduty_payload_limits_and_severity_mapping():
    long = Alert("firing", {"alertname": "A", "model": "m", "severity": "whatever"}, {"summary": "x" * 5000}, 0,
                 values={"share": float("nan"), "n": 3})
    event = pagerduty_event(long)
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["severity"] == "warning"
    assert event["payload"]["custom_details"] == {"share": None, "n": 3}
    assert event["payload"]["source"] == "inferwatch" and "group" not in event["payload"] and "links" not in event
    json.dumps(event, allow_nan=False)  # valid JSON: no NaN left
    for label, expected in (("critical", "critical"), ("error", "error"), ("warning", "warning"),
                            ("info", "info"), ("low", "info")):
        assert pagerduty_event(_alert(severity=label))["payload"]["severity"] == expected
    no_summary = Alert("firing", {"alertname": "A", "model": "m"}, {}, 0)
    assert pagerduty_event(no_summary)["payload"]["summary"] == "A model=m"


def test_slack_message_has_text_and_blocks():
    msg = slack_message(_notification(_alert(feature="a<b"), _alert("resolved", feature="age")))
    assert set(msg) == {"text", "blocks"}
    assert msg["text"] == "[FIRING:1] InferwatchFeatureDrift fraud\nfiring: a<b drifted\nresolved: age drifted"
    header, first, second, context = msg["blocks"]
    assert header == {"type": "header",
                      "text": {"type": "plain_text", "text": "[FIRING:1] InferwatchFeatureDrift fraud"}}
    assert first["type"] == "section" and first["text"]["type"] == "mrkdwn"
    assert first["text"]["text"].startswith("*firing* a&lt;b drifted\n`alertname=InferwatchFeatureDrift")
    assert second["text"]["text"].startswith("*resolved* age drifted")
    assert context["elements"][0]["text"] == "inferwatch: http://inferwatch.example:9108"
    many = slack_message(_notification(*[_alert(feature=f"f{i}") for i in range(25)]))
    assert len(many["blocks"]) == 1 + 20 + 2 and many["blocks"][-2]["elements"][0]["text"] == "and 5 more"
    assert slack_message(_notification(_alert("resolved")))["text"].startswith("[RESOLVED] ")


# --- receiver configuration and requests ---------------------------------------------------

def test_receiver_config_errors_name_the_receiver(monkeypatch):
    monkeypatch.delenv("IW_TEST_PD_KEY", raising=False)
    cases = [
        ({"name": "pd", "type": "pagerduty"}, "receiver 'pd': type pagerduty needs routing_key"),
        ({"name": "pd", "type": "pagerduty", "routing_key": {"env": "IW_TEST_PD_KEY"}},
         "receiver 'pd': routing_key: environment variable IW_TEST_PD_KEY is unset or empty"),
        ({"name": "hook", "type": "webhook", "url": "ftp://x"}, "receiver 'hook': url: must start with http"),
        ({"name": "hook", "type": "webhook", "url": "http://x", "routing_key": {"env": "HOME"}},
         "receiver 'hook': routing_key applies to type pagerduty only"),
        ({"name": "chat", "type": "teams", "url": "http://x"}, "receiver 'chat': type:"),
    ]
    for data, message in cases:
        with pytest.raises(ValidationError) as err:
            ReceiverConfig(**data)
        assert message in str(err.value), (data, str(err.value))
    monkeypatch.setenv("IW_TEST_PD_KEY", "R0UTING")
    pd = ReceiverConfig(name="pd", type="pagerduty", routing_key={"env": "IW_TEST_PD_KEY"})
    assert pd.url == "https://events.pagerduty.com" and "R0UTING" not in repr(pd)


def test_config_file_receivers_and_unique_names(tmp_path, clean_env):
    from inferwatch.config import ConfigError, load_config

    clean_env.setenv("IW_TEST_PD_KEY", "R0UTING")
    receivers = [{"name": "pd", "type": "pagerduty", "routing_key": {"env": "IW_TEST_PD_KEY"}},
                 {"name": "chat", "type": "slack", "url": "http://127.0.0.1:1/services/x"}]
    settings = load_config(None, alerting={"receivers": receivers, "webhook_url": "http://127.0.0.1:2/h",
                                           "outbox": {"backoff_max_seconds": 5}})
    targets = settings.alerting.outbox_targets()
    assert {name: kind for name, (kind, _) in targets.items()} == {"pd": "pagerduty", "chat": "slack",
                                                                  "webhook": "webhook"}
    assert targets["webhook"][1].url == "http://127.0.0.1:2/h" and settings.alerting.outbox.backoff_max_seconds == 5
    with pytest.raises(ConfigError, match=r"alerting.receivers: .*receiver names must be unique: pd"):
        load_config(None, alerting={"receivers": [receivers[0], receivers[0]]})
    with pytest.raises(ConfigError, match=r"alerting.outbox.batch_size"):
        load_config(None, alerting={"outbox": {"batch_size": 0}})


def test_requests_for_each_receiver_type(monkeypatch):
    monkeypatch.setenv("IW_TEST_PD_KEY", "R0UTING")
    a1, a2 = _alert(feature="amount"), _alert("resolved", feature="age")
    n = _notification(a1, a2)
    hook = ReceiverConfig(name="hook", type="webhook", url="http://127.0.0.1:1/h")
    [req] = requests_for(n, hook, "g1", NOW_MS)
    assert (req.target, req.method, req.path, req.idempotency_key) == ("hook", "POST", "", "g1:hook")
    assert req.expires_at_ms == NOW_MS + 86_400_000 and req.content_type == "application/json"
    assert json.loads(req.body) == webhook_body(n, "hook")

    pd = ReceiverConfig(name="pd", type="pagerduty", routing_key={"env": "IW_TEST_PD_KEY"})
    reqs = requests_for(n, pd, "g1", NOW_MS, OutboxConfig(expire_after_seconds=60))
    assert [r.idempotency_key for r in reqs] == [f"g1:pd:{a1.fingerprint}", f"g1:pd:{a2.fingerprint}"]
    assert [json.loads(r.body)["event_action"] for r in reqs] == ["trigger", "resolve"]
    assert all(r.path == "/v2/enqueue" and r.expires_at_ms == NOW_MS + 60_000 for r in reqs)
    assert all("R0UTING" not in r.body for r in reqs)  # the stored body never holds the key

    slack = ReceiverConfig(name="chat", type="slack", url="http://127.0.0.1:1/s", send_resolved=False,
                           match={"feature": "amount"})
    [req] = requests_for(n, slack, "g1", NOW_MS, OutboxConfig(expire_after_seconds=None))
    assert json.loads(req.body) == slack_message(_notification(a1)) and req.expires_at_ms is None
    assert requests_for(_notification(a2), slack, "g2", NOW_MS) == []  # resolved only, send_resolved off
    other = ReceiverConfig(name="hook2", type="webhook", url="http://127.0.0.1:1/h", match={"model": "churn"})
    assert requests_for(n, other, "g1", NOW_MS) == []

    am = ReceiverConfig(name="am", type="alertmanager", url="http://127.0.0.1:9093")
    [req] = requests_for(n, am, "g1", NOW_MS)
    assert req.target == "am" and req.path == "/api/v2/alerts"
    assert [a["labels"] for a in json.loads(req.body)] == [a1.labels, a2.labels]


# --- delivery to real receivers ------------------------------------------------------------

def _send(kind, endpoint, req):
    with httpx.Client() as client:
        return deliver(client, kind, endpoint, req, int(time.time() * 1000))


def test_signed_webhook_with_bearer_token_and_headers(receiver, monkeypatch):
    monkeypatch.setenv("IW_TEST_SIGNING", SIGNING)
    monkeypatch.setenv("IW_TEST_TOKEN", "t0ken")

    def respond(req: Request):
        ok = (req.method == "POST" and req.path == "/alerts/in"
              and req.headers["authorization"] == "Bearer t0ken" and req.headers["x-team"] == "ml"
              and req.headers["user-agent"] == "inferwatch" and req.headers["content-type"] == "application/json"
              and req.headers["idempotency-key"] == req.headers["webhook-id"] == "g1:hook"
              and verify(SIGNING, req.headers, req.body, time.time()))
        return (204, "") if ok else (401, "bad request headers")

    srv = receiver(respond)
    hook = ReceiverConfig(name="hook", type="webhook", url=srv.url + "/alerts/in", headers={"X-Team": "ml"},
                          bearer_token={"env": "IW_TEST_TOKEN"}, signing_secret={"env": "IW_TEST_SIGNING"})
    [req] = requests_for(_notification(_alert()), hook, "g1", NOW_MS)
    outcome = _send("webhook", hook, req)
    assert (outcome.accepted, outcome.status) == (True, 204), outcome
    [got] = srv.requests
    assert got.json()["version"] == "4" and got.body == req.body.encode()
    # a body changed on the way fails the receiver's check
    assert not verify(SIGNING, got.headers, got.body.replace(b"firing", b"resolved"), time.time())


def test_pagerduty_routing_key_only_on_the_wire(receiver, monkeypatch):
    monkeypatch.setenv("IW_TEST_PD_KEY", "R0UTING")
    srv = receiver(lambda req: (202, '{"status":"success","message":"Event processed"}')
                   if req.path == "/v2/enqueue" and req.json().get("routing_key") == "R0UTING" else (400, "no"))
    pd = ReceiverConfig(name="pd", type="pagerduty", url=srv.url, routing_key={"env": "IW_TEST_PD_KEY"})
    firing = _alert(feature="amount")
    [trigger] = requests_for(_notification(firing), pd, "t1", NOW_MS)
    resolved = Alert(**{**firing.__dict__, "status": "resolved", "ends_at_ms": NOW_MS})
    [resolve] = requests_for(_notification(resolved), pd, "t2", NOW_MS)
    assert [_send("pagerduty", pd, r).accepted for r in (trigger, resolve)] == [True, True]
    sent = [r.json() for r in srv.requests]
    assert [s["event_action"] for s in sent] == ["trigger", "resolve"]
    assert sent[0]["dedup_key"] == sent[1]["dedup_key"] == firing.fingerprint
    assert sent[1] == {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": firing.fingerprint}
    assert sent[0]["payload"]["summary"] == "amount drifted" and sent[0]["routing_key"] == "R0UTING"
    assert "R0UTING" not in trigger.body and "R0UTING" not in resolve.body


@pytest.mark.parametrize(("status", "text", "accepted", "retryable"), [
    (200, "ok", True, False),
    (200, "invalid_payload", False, False),  # Slack's 200 means nothing without "ok"
    (400, "invalid_payload", False, False),
    (404, "channel_not_found", False, False),
    (429, "rate_limited", False, True),
    (500, "rollup_error", False, True),
])
def test_slack_needs_ok(receiver, status, text, accepted, retryable):
    srv = receiver(lambda req: (status, text) if req.path == "/services/T0/B0/x" else (404, "no_service"))
    slack = ReceiverConfig(name="chat", type="slack", url=srv.url + "/services/T0/B0/x")
    [req] = requests_for(_notification(_alert()), slack, "s1", NOW_MS)
    outcome = _send("slack", slack, req)
    assert (outcome.accepted, outcome.retryable, outcome.status) == (accepted, retryable, status)
    assert text in outcome.detail
    assert srv.requests[0].json()["text"].startswith("[FIRING:1]")


def test_answers_that_are_retried_and_final(receiver):
    codes = iter([408, 429, 502, 503, 400, 401, 404, 422, 301, 201])
    srv = receiver(lambda req: (next(codes), ""))
    ep = Endpoint(url=srv.url, timeout_seconds=2)
    req = OutgoingRequest("t", "PATCH", "/x", "{}", "k", content_type="application/merge-patch+json")
    got = [(o.accepted, o.retryable) for o in (_send("webhook", ep, req) for _ in range(10))]
    assert got == [(False, True)] * 4 + [(False, False)] * 5 + [(True, False)]
    assert {(r.method, r.path, r.headers["content-type"]) for r in srv.requests} == {
        ("PATCH", "/x", "application/merge-patch+json")}


def test_a_receiver_that_hangs_times_out(receiver):
    srv = receiver(lambda req: (time.sleep(3), (200, ""))[1])
    started = time.monotonic()
    outcome = _send("webhook", Endpoint(url=srv.url, timeout_seconds=0.5), OutgoingRequest("t", "POST", "", "{}", "k"))
    assert time.monotonic() - started < 2.5
    assert (outcome.accepted, outcome.retryable, outcome.status) == (False, True, None)
    assert "Timeout" in outcome.detail


def test_retry_after_is_read(receiver):
    answers = iter([(429, "slow down", {"Retry-After": "7"}), (503, "", {}), (429, "", {"Retry-After": "soon"})])
    srv = receiver(lambda req: next(answers))
    got = [_send("webhook", Endpoint(url=srv.url), OutgoingRequest("t", "POST", "", "{}", "k")) for _ in range(3)]
    assert [(o.retryable, o.retry_after_seconds) for o in got] == [(True, 7.0), (True, None), (True, None)]
    assert got[0].detail == "HTTP 429: slow down"


class _RetrainLikeHook(Endpoint):
    """An endpoint whose peer answers 409 for an idempotency key it has seen (Argo, Airflow)."""

    @property
    def repeat_statuses(self) -> frozenset[int]:
        return frozenset({409})


def test_repeat_statuses_count_as_delivered(receiver):
    srv = receiver(lambda req: (409, "run already exists"))
    req = OutgoingRequest("argo", "POST", "/api/v1/workflows/ml/submit", "{}", "k")
    hook = _send("argo", _RetrainLikeHook(url=srv.url), req)
    plain = _send("webhook", Endpoint(url=srv.url), req)
    assert (hook.accepted, hook.status, hook.detail) == (True, 409, "delivered before: HTTP 409: run already exists")
    assert (plain.accepted, plain.retryable) == (False, False)
    assert [r.path for r in srv.requests] == ["/api/v1/workflows/ml/submit"] * 2


def test_a_key_that_is_not_ascii_is_sent_percent_encoded_and_signed(receiver, monkeypatch):
    monkeypatch.setenv("IW_SIGN", "whsec_" + base64.b64encode(b"k" * 24).decode())
    srv = receiver()
    key = 'retrain:argo:Fraud/V2 "beta" ünï:1:9'
    ep = Endpoint(url=srv.url, signing_secret={"env": "IW_SIGN"})
    outcome = _send("webhook", ep, OutgoingRequest("t", "POST", "", "{}", key))
    assert outcome.accepted
    (req,) = srv.requests
    assert req.headers["idempotency-key"] == req.headers["webhook-id"] == \
        'retrain:argo:Fraud/V2%20"beta"%20%C3%BCn%C3%AF:1:9'
    assert verify("whsec_" + base64.b64encode(b"k" * 24).decode(), req.headers, req.body, time.time())


def test_an_answer_trickling_in_is_cut_at_the_timeout():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
            for _ in range(40):  # one byte every 0.2 s: each read is quick, the whole takes 8 s
                try:
                    conn.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.2)

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    outcome = _send("webhook", Endpoint(url=f"http://127.0.0.1:{server.getsockname()[1]}", timeout_seconds=1),
                    OutgoingRequest("t", "POST", "", "{}", "k"))
    assert time.monotonic() - started < 2.5
    assert (outcome.accepted, outcome.retryable) == (False, True) and "not complete within 1 s" in outcome.detail
    server.close()


def test_a_url_given_as_a_secret_is_used_and_never_shown(receiver, monkeypatch):
    srv = receiver(lambda req: (200, "ok"))
    monkeypatch.setenv("IW_SLACK_URL", srv.url + "/services/T0/B0/SECRETPART")
    ep = ReceiverConfig(name="slack", type="slack", url={"env": "IW_SLACK_URL"})
    assert _send("slack", ep, OutgoingRequest("slack", "POST", "", "{}", "k")).accepted
    assert [r.path for r in srv.requests] == ["/services/T0/B0/SECRETPART"]
    assert ep.display_url == "<url from env IW_SLACK_URL>"
    assert "SECRETPART" not in repr(ep) and "SECRETPART" not in str(ep.model_dump())
    monkeypatch.setenv("IW_BAD_URL", "ftp://x")
    with pytest.raises(ValidationError, match="must start with http"):
        Endpoint(url={"env": "IW_BAD_URL"})


def test_slack_text_is_cut_at_slacks_limit_saying_how_much_is_left_out():
    from alerting.notifiers import SLACK_MESSAGE_MAX

    alerts = tuple(Alert("firing", {"alertname": "FeatureDrift", "model": "m", "feature": f"f{i}"},
                         {"summary": f"feature f{i} drifted " + "x" * 1000}, 0) for i in range(300))
    text = slack_message(Notification({"model": "m"}, alerts, ""))["text"]
    assert len(text) <= SLACK_MESSAGE_MAX
    shown = text.count("\nfiring: ")
    assert 30 < shown < 300 and text.endswith(f"… and {300 - shown} more lines")
