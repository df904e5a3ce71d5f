"""End to end of alerting: the real ACS drift episode, replayed through the real broker into
``inferwatch run`` (a real process on PostgreSQL), pages once, resolves once and starts one
retrain.

Every outgoing call goes to a real HTTP server on 127.0.0.1 that checks method, path, headers
and body the way the real service would, and answers as it does: PagerDuty Events v2
(``POST /v2/enqueue``, 202), GitHub ``repository_dispatch`` (``POST
/repos/{owner}/{repo}/dispatches``, 204), a generic webhook that verifies the Standard Webhooks
signature, and a real Alertmanager that routes the pushed alerts to a receiver of its own. A
request that fails a check is answered 400, which the outbox counts as dead.

The stream is produced in two parts, the way time passes in a fleet: the stable days and the
two drift days first; once the page, the dispatch and Alertmanager's firing notification
arrived, the recovery days.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest
import yaml

from alerting.events import fingerprint, rfc3339
from alerting.signing import verify
from inferwatch import demo
from inferwatch.store import Store

from e2e import REPO, Service, free_port, produce, scrape, wait_for, write_config

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DAY_MS = 86_400_000
RPD = 3_000  # records per 1-day window of the episode model: both 2018 days still flag ANC (checked)
CONTROL_RPD = 2_000
EPISODE = "employment-episode"
CONTROL = "employment-control"
ALERTNAME = "InferwatchDatasetDrift"
REPOSITORY = ("acme", "employment-models")
EVENT_TYPE = "inferwatch-drift"
PD_SEVERITIES = ("critical", "error", "warning", "info")

# the variables the service's config names its secrets by
PD_KEY_ENV = "IW_E2E_PAGERDUTY_ROUTING_KEY"
GITHUB_TOKEN_ENV = "IW_E2E_GITHUB_TOKEN"
SIGNING_ENV = "IW_E2E_WEBHOOK_SIGNING_SECRET"


@dataclass(frozen=True)
class Received:
    """One request a :class:`Receiver` accepted: method, path, headers (names lower-cased), the
    raw body and its JSON value."""

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: object


# check(request) -> (problems, status, response body); problems non-empty: answered 400
Check = Callable[[Received], tuple[list[str], int, bytes]]


class Receiver:
    """A real HTTP server on 127.0.0.1 (port 0) that checks every POST with ``check`` and
    records the accepted ones in ``requests``; a request failing a check is answered 400 with
    the problems, which are kept in ``problems``."""

    def __init__(self, check: Check) -> None:
        self.requests: list[Received] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                req = Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body)
                problems, status, answer = check(req) if body is not None else (["body is not JSON"], 400, b"")
                with receiver._lock:
                    if problems:
                        receiver.problems.extend(problems)
                    else:
                        receiver.requests.append(req)
                if problems:
                    status, answer = 400, json.dumps({"errors": problems}).encode()
                self.send_response(status)
                if answer:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list:
        with self._lock:
            return [r.body for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _json_post(req: Received, path: str) -> list[str]:
    problems = []
    if req.path != path:
        problems.append(f"path {req.path!r}, expected {path!r}")
    if not req.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"Content-Type {req.headers.get('content-type')!r}")
    return problems


def _rfc3339(text: object) -> bool:
    try:
        return isinstance(text, str) and datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
    except ValueError:
        return False


def pagerduty_check(routing_key: str) -> Check:
    """PagerDuty Events v2 (FORMATS.md section 7): answers 202 like PagerDuty."""

    def check(req: Received) -> tuple[list[str], int, bytes]:
        problems = _json_post(req, "/v2/enqueue")
        b = req.body if isinstance(req.body, dict) else {}
        if b.get("routing_key") != routing_key:
            problems.append("routing_key is not the configured secret")
        if not isinstance(b.get("dedup_key"), str) or not b.get("dedup_key"):
            problems.append("dedup_key missing")
        action = b.get("event_action")
        if action == "trigger":
            p = b.get("payload") or {}
            for field in ("summary", "source", "component", "group", "class"):
                if not isinstance(p.get(field), str) or not p[field]:
                    problems.append(f"payload.{field} missing")
            if len(p.get("summary", "")) > 1024:
                problems.append("payload.summary longer than 1024 characters")
            if p.get("severity") not in PD_SEVERITIES:
                problems.append(f"payload.severity {p.get('severity')!r}")
            if not _rfc3339(p.get("timestamp")):
                problems.append(f"payload.timestamp {p.get('timestamp')!r}")
            if not isinstance(p.get("custom_details"), dict):
                problems.append("payload.custom_details is not an object")
        elif action == "resolve":
            if set(b) - {"routing_key", "event_action", "dedup_key"}:
                problems.append(f"resolve carries more than it needs: {sorted(b)}")
        else:
            problems.append(f"event_action {action!r}")
        answer = {"status": "success", "message": "Event processed", "dedup_key": b.get("dedup_key")}
        return problems, 202, json.dumps(answer).encode()

    return check


def github_check(token: str) -> Check:
    """GitHub ``repository_dispatch`` (FORMATS.md section 8): answers 204 like GitHub."""

    def check(req: Received) -> tuple[list[str], int, bytes]:
        problems = _json_post(req, f"/repos/{REPOSITORY[0]}/{REPOSITORY[1]}/dispatches")
        h = req.headers
        if h.get("authorization") != f"Bearer {token}":
            problems.append("Authorization is not Bearer <the configured token>")
        if h.get("accept") != "application/vnd.github+json":
            problems.append(f"Accept {h.get('accept')!r}")
        if not h.get("x-github-api-version"):
            problems.append("X-GitHub-Api-Version missing")
        if not h.get("user-agent"):
            problems.append("User-Agent missing (GitHub refuses requests without one)")
        b = req.body if isinstance(req.body, dict) else {}
        if set(b) != {"event_type", "client_payload"}:
            problems.append(f"body keys {sorted(b)}")
        if b.get("event_type") != EVENT_TYPE:
            problems.append(f"event_type {b.get('event_type')!r}")
        payload = b.get("client_payload")
        if not isinstance(payload, dict) or not 0 < len(payload) <= 10:
            problems.append("client_payload must be an object of at most 10 top-level keys")
        if len(req.raw) >= 64 * 1024:
            problems.append("body of 64 KB or more")
        return problems, 204, b""

    return check


def webhook_v4_check(path: str, signing_secret: str | None = None) -> Check:
    """An Alertmanager webhook (version 4) receiver; with ``signing_secret`` it also verifies
    the Standard Webhooks signature. Answers 200."""

    def check(req: Received) -> tuple[list[str], int, bytes]:
        problems = _json_post(req, path)
        b = req.body if isinstance(req.body, dict) else {}
        if b.get("version") != "4" or b.get("status") not in ("firing", "resolved") or not b.get("alerts"):
            problems.append(f"not an Alertmanager webhook v4 body: {str(b)[:200]}")
        if signing_secret is not None and not verify(signing_secret, req.headers, req.raw, time.time()):
            problems.append("Standard Webhooks signature does not verify")
        return problems, 200, b""

    return check


def _ms(rfc: str) -> int:
    return int(datetime.fromisoformat(rfc).timestamp() * 1000)


def _statuses(bodies: list, model: str) -> list[str]:
    """The status of each webhook v4 body whose alerts are all of ``model``."""
    return [b["status"] for b in bodies if all(a["labels"].get("model") == model for a in b["alerts"])]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_drift_episode_pages_once_resolves_once_and_starts_one_retrain(tmp_path, db_url, kafka_bootstrap,
                                                                        alertmanager_factory):
    t_start = time.monotonic()
    episode = demo.episode_records(model_name=EPISODE, n_stable=2 * RPD, n_drift=2 * RPD, n_recovery=2 * RPD,
                                   records_per_day=RPD)
    control = demo.episode_records(model_name=CONTROL, n_stable=4 * CONTROL_RPD, n_drift=0,
                                   n_recovery=2 * CONTROL_RPD, records_per_day=CONTROL_RPD, seed=3)
    records = sorted(episode.records + control.records, key=lambda r: r["timestamp"])
    recovery_ms = int(episode.drift_end.timestamp() * 1000)
    first = [r for r in records if _ms(r["timestamp"]) < recovery_ms]
    second = [r for r in records if _ms(r["timestamp"]) >= recovery_ms]
    expected = Counter((r["model"], _ms(r["timestamp"]) // DAY_MS * DAY_MS) for r in records)
    drift_ms = int(episode.drift_start.timestamp() * 1000)

    secret_env = {PD_KEY_ENV: f"pd-{secrets.token_hex(16)}", GITHUB_TOKEN_ENV: f"ghp_{secrets.token_hex(18)}",
                  SIGNING_ENV: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()}
    env = {**os.environ, **secret_env}
    pagerduty = Receiver(pagerduty_check(secret_env[PD_KEY_ENV]))
    github = Receiver(github_check(secret_env[GITHUB_TOKEN_ENV]))
    signed = Receiver(webhook_v4_check("/signed", secret_env[SIGNING_ENV]))
    routed = Receiver(webhook_v4_check("/routed"))  # Alertmanager's own receiver
    receivers = (pagerduty, github, signed, routed)
    am = alertmanager_factory(f"{routed.url}/routed")

    topic = f"alerting-{uuid.uuid4().hex[:8]}"
    port = free_port()
    cfg = write_config(
        tmp_path / "inferwatch.yaml",
        database_url=db_url,
        kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": f"g-{topic}",
               "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200},
        window={"length_seconds": 86_400, "idle_close_seconds": 4},
        reference={"bootstrap_records": 5000},
        alerting={
            "external_url": f"http://127.0.0.1:{port}",
            "receivers": [
                {"name": "pagerduty", "type": "pagerduty", "url": pagerduty.url, "routing_key": {"env": PD_KEY_ENV}},
                {"name": "alertmanager", "type": "alertmanager", "url": am.url},
                {"name": "signed-webhook", "type": "webhook", "url": f"{signed.url}/signed",
                 "signing_secret": {"env": SIGNING_ENV}},
            ],
            "outbox": {"poll_interval_seconds": 0.5},
        },
        hooks={"retrain": [{"name": "github-retrain", "kind": "github", "url": github.url,
                            "repository": "/".join(REPOSITORY), "event_type": EVENT_TYPE,
                            "bearer_token": {"env": GITHUB_TOKEN_ENV}}]},
        metrics={"port": port},
    )
    assert yaml.safe_load(cfg.read_text())["alerting"]["receivers"][0]["routing_key"] == {"env": PD_KEY_ENV}

    ref_file = demo.write_reference_file(tmp_path / "train.parquet")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "reference", "set", "--model", EPISODE,
                           "--file", str(ref_file), "--config", str(cfg)], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    store = Store(db_url)
    store.create_schema()
    service = Service(cfg, tmp_path / "service.log", env=secret_env).start()
    try:
        # stable days and the two drift days: the first drift window fires
        assert produce(kafka_bootstrap, topic, (demo.encode_record(r) for r in first)) == len(first)
        wait_for(lambda: (pagerduty.bodies() and github.bodies() and "firing" in _statuses(routed.bodies(), EPISODE)
                          and signed.bodies()) or not service.running(), 180,
                 "the page, the retraining dispatch and Alertmanager's firing notification")
        assert service.running(), service.log()

        # the recovery days: the first 2015 window after the episode resolves it
        assert produce(kafka_bootstrap, topic, (demo.encode_record(r) for r in second)) == len(second)
        wait_for(lambda: (len(store.list_windows()) == len(expected)
                          and "resolved" in _statuses(routed.bodies(), EPISODE)
                          and store.outbox_counts()["pending"] == 0) or not service.running(), 180,
                 f"{len(expected)} closed windows, Alertmanager's resolved notification and an empty outbox")
        assert service.running(), service.log()
        # the gauge is set by the idle-close job; the counters by the worker after each answer
        samples = wait_for(lambda: (lambda s: s if s.get(("inferwatch_outbox_messages", (("state", "pending"),)))
                                    == 0 else None)(scrape(port)), 30, "the outbox gauge to show nothing pending")
        time.sleep(2)  # nothing more may arrive
        samples = scrape(port)
        outbox_rows = store.list_outbox(limit=1000)
        counts = store.outbox_counts()
        listed = subprocess.run([sys.executable, "-m", "inferwatch.cli", "outbox", "list", "--limit", "1000",
                                 "--config", str(cfg)], cwd=REPO, capture_output=True, text=True, env=env,
                                timeout=120)
    finally:
        code = service.stop()
        for r in receivers:
            r.close()
    log_text = (tmp_path / "service.log").read_text(errors="replace")
    assert code == 0, service.log()
    assert "Traceback" not in log_text, log_text[-6000:]
    for r in receivers:
        assert r.problems == [], r.problems

    windows = store.list_windows()
    stored = Counter({(w.model, int(w.window_start_ms)): int(w.record_count) for w in windows.itertuples()})
    assert stored == expected
    flagged = {(w.model, int(w.window_start_ms)) for w in windows.itertuples() if w.dataset_drifted}
    assert flagged == {(EPISODE, drift_ms), (EPISODE, drift_ms + DAY_MS)}
    fired_window = int(windows[(windows.model == EPISODE) & (windows.window_start_ms == drift_ms)].id.iloc[0])

    # PagerDuty: exactly one trigger and one resolve, both for the episode, one dedup key
    pd_events = pagerduty.bodies()
    assert [e["event_action"] for e in pd_events] == ["trigger", "resolve"], pd_events
    trigger, resolve = pd_events
    assert trigger["dedup_key"] == resolve["dedup_key"]
    p = trigger["payload"]
    assert (p["component"], p["group"], p["class"]) == (EPISODE, "1", ALERTNAME)
    assert p["source"] == "127.0.0.1"
    assert all(e["routing_key"] == secret_env[PD_KEY_ENV] for e in pd_events)

    # Alertmanager routed the pushed alert to its receiver: firing, then resolved, for the episode only
    routed_bodies = routed.bodies()
    assert _statuses(routed_bodies, EPISODE) == ["firing", "resolved"], routed_bodies
    assert all(a["labels"]["model"] == EPISODE for b in routed_bodies for a in b["alerts"])
    am_firing, am_resolved = (b["alerts"][0] for b in routed_bodies)
    assert am_firing["labels"]["alertname"] == ALERTNAME and am_firing["endsAt"] == "0001-01-01T00:00:00Z"
    assert am_resolved["status"] == "resolved" and am_resolved["labels"] == am_firing["labels"]
    assert "ANC" in am_firing["annotations"]["drifted_columns"].split(",")
    assert datetime.fromisoformat(p["timestamp"]) == datetime.fromisoformat(am_firing["startsAt"])
    # inferwatch's dedup key is the fingerprint of the labels Alertmanager shows
    assert trigger["dedup_key"] == fingerprint(am_firing["labels"])

    # the signed webhook: firing then resolved, one alert each, the same instance
    signed_bodies = signed.bodies()
    assert [b["status"] for b in signed_bodies] == ["firing", "resolved"]
    assert {b["alerts"][0]["fingerprint"] for b in signed_bodies} == {trigger["dedup_key"]}
    assert signed_bodies[0]["alerts"][0]["annotations"]["window_start"] == rfc3339(drift_ms)
    assert len({r.headers["webhook-id"] for r in signed.requests}) == 2

    # GitHub: one dispatch naming the model, version, window and ANC with its statistics
    dispatches = github.bodies()
    assert len(dispatches) == 1, dispatches
    cp = dispatches[0]["client_payload"]
    assert (cp["model"], cp["model_version"], cp["alertname"]) == (EPISODE, "1", ALERTNAME)
    assert cp["window"] == {"id": fired_window, "start": rfc3339(drift_ms), "end": rfc3339(drift_ms + DAY_MS)}
    assert cp["idempotency_key"] == f"retrain:github-retrain:{EPISODE}:1:{fired_window}"
    anc = store.list_drift_results(fired_window).set_index("column_name").loc["features.ANC"]
    sent_anc = [d for d in cp["drifted"] if d["name"] == "ANC"]
    assert len(sent_anc) == 1 and cp["drifted_count"] == len(cp["drifted"]) >= 1
    assert sent_anc[0]["role"] == "feature" and sent_anc[0]["method"] == anc["method"]
    assert sent_anc[0]["p_value"] == pytest.approx(float(anc["p_value"]), rel=1e-12) and anc["p_value"] < 1e-6
    assert sent_anc[0]["statistic"] == pytest.approx(float(anc["statistic"]), rel=1e-12)

    # the outbox: everything delivered, nothing dead or pending, also as `inferwatch outbox list` says
    assert counts["dead"] == 0 and counts["pending"] == 0 and counts["delivered"] == len(outbox_rows)
    assert all(r.state == "delivered" and r.attempts == 1 for r in outbox_rows), \
        [(r.idempotency_key, r.state, r.attempts, r.last_error) for r in outbox_rows]
    by_target = Counter(r.target for r in outbox_rows)
    assert by_target["pagerduty"] == 2 and by_target["github-retrain"] == 1 and by_target["signed-webhook"] == 2
    assert by_target["alertmanager"] >= 2  # firing and resolved, plus re-pushes of the firing alert
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert listed.stdout.strip().splitlines()[-1] == f"0 pending, {len(outbox_rows)} delivered, 0 dead"

    # /metrics: each target's deliveries, one retraining call, no alert firing any more
    for target, n in by_target.items():
        assert samples[("inferwatch_outbox_deliveries_total", (("outcome", "delivered"), ("target", target)))] == n
    assert not [k for k, v in samples.items() if k[0] == "inferwatch_outbox_deliveries_total"
                and dict(k[1])["outcome"] != "delivered" and v]
    assert samples[("inferwatch_hook_calls_total", (("decision", "send"), ("hook", "github-retrain")))] == 1
    assert sum(v for k, v in samples.items() if k[0] == "inferwatch_hook_calls_total") == 1
    assert samples[("inferwatch_outbox_messages", (("state", "dead"),))] == 0
    firing_key = (("alertname", ALERTNAME), ("model", EPISODE), ("model_version", "1"))
    assert samples[("inferwatch_alert_firing", firing_key)] == 0
    assert not any(name == "inferwatch_alert_firing" and ("model", CONTROL) in labels for name, labels in samples)
    store.close()
    print(f"runtime {time.monotonic() - t_start:.1f}s")
