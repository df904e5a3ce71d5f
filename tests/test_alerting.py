"""What a delivery attempt to a real HTTP server on 127.0.0.1 comes to (retry, give up,
accepted)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from alerting.delivery import deliver
from alerting.endpoint import Endpoint
from alerting.events import OutgoingRequest


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
