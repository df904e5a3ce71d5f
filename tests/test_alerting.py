"""The dataset-drift alert: state changes with hysteresis, the Alertmanager body, and what a
delivery attempt to a real HTTP server on 127.0.0.1 comes to (retry, give up, accepted)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from alerting.dataset_drift import AlertEvent, fingerprint, next_state, webhook_body
from alerting.delivery import deliver
from alerting.endpoint import Endpoint
from alerting.events import OutgoingRequest


def test_state_changes_with_hysteresis():
    assert next_state(None, 0.2, 0.5, 0.3) is None
    assert next_state(None, 0.5, 0.5, 0.3) == "firing"
    assert next_state("firing", 0.4, 0.5, 0.3) is None  # between the thresholds: keeps firing
    assert next_state("firing", 0.29, 0.5, 0.3) == "resolved"
    assert next_state("resolved", 0.6, 0.5, 0.3) == "firing"
    assert next_state("firing", None, 0.5, 0.3) is None  # insufficient data never decides


def test_state_follows_the_dataset_verdict_without_a_share_threshold():
    assert next_state(None, 0.05, None, None, drifted=False) is None
    assert next_state(None, 0.05, None, None, drifted=True) == "firing"
    assert next_state("firing", 0.05, None, None, drifted=True) is None
    assert next_state("firing", 0.0, None, None, drifted=False) == "resolved"
    assert next_state("firing", None, None, None, drifted=None) is None  # insufficient data never decides
    assert next_state("firing", 0.5, 0.5, None) is None  # a share threshold without resolve_share: same for both
    assert next_state("firing", 0.49, 0.5, None, drifted=True) == "resolved"


def test_body_is_alertmanager_webhook_v4():
    ev = AlertEvent("resolved", "m", "2", 0, 3_600_000, 0.125, ("a", "b"), 7)
    body = webhook_body(ev, started_at_ms=1000, now_ms=7_200_000, external_url="http://x")
    assert body["version"] == "4" and body["status"] == "resolved"
    alert = body["alerts"][0]
    assert alert["startsAt"] == "1970-01-01T00:00:01.000Z" and alert["endsAt"] == "1970-01-01T02:00:00.000Z"
    assert alert["labels"] == {"alertname": "InferwatchDatasetDrift", "model": "m", "model_version": "2",
                               "severity": "warning"}
    assert alert["annotations"]["drifted_columns"] == "a,b" and alert["annotations"]["drift_share"] == "0.125000"
    assert alert["fingerprint"] == fingerprint(alert["labels"]) != fingerprint({**alert["labels"], "model": "n"})
    firing = webhook_body(AlertEvent("firing", "m", "2", 0, 1, 0.5, (), 7), 1000, 2000, "http://x")
    assert firing["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


class Flaky:
    """A real HTTP server that answers with the given status codes in turn."""

    def __init__(self, codes):
        self.codes = list(codes)
        self.requests = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                self.send_response(outer.codes.pop(0) if outer.codes else 200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _attempt(url, timeout=5.0):
    req = OutgoingRequest("hook", "POST", "", json.dumps({"a": 1}), "key-1")
    with httpx.Client() as client:
        return deliver(client, "webhook", Endpoint(url=url, timeout_seconds=timeout), req, 1_700_000_000_000)


def test_delivery_says_retry_on_5xx_and_429_then_accepts():
    srv = Flaky([503, 429, 200])
    try:
        outcomes = [_attempt(srv.url) for _ in range(3)]
    finally:
        srv.close()
    assert [(o.accepted, o.retryable, o.status) for o in outcomes] == [
        (False, True, 503), (False, True, 429), (True, False, 200)]
    assert len(srv.requests) == 3
    assert all(h["Idempotency-Key"] == "key-1" and h["Content-Type"] == "application/json" for h, _ in srv.requests)
    assert srv.requests[-1][1] == b'{"a": 1}'


def test_delivery_gives_up_on_4xx():
    srv = Flaky([400, 200])
    try:
        outcome = _attempt(srv.url)
    finally:
        srv.close()
    assert (outcome.accepted, outcome.retryable, outcome.status) == (False, False, 400)
    assert "400" in outcome.detail and len(srv.requests) == 1


def test_delivery_fails_cleanly_when_nobody_listens():
    from e2e import free_port

    outcome = _attempt(f"http://127.0.0.1:{free_port()}/", timeout=1)
    assert (outcome.accepted, outcome.retryable, outcome.status) == (False, True, None)
    assert "ConnectError" in outcome.detail
