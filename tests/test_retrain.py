"""Retraining hooks: each kind's request checked by a real HTTP server on loopback that answers
like the real API, the cooldown, filters, dry run, template errors at load, and the hook_calls
table on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from pydantic import ValidationError

from alerting.delivery import deliver
from alerting.retrain import (
    GITHUB_MAX_PAYLOAD_BYTES,
    Decision,
    DriftedFeature,
    DriftEpisode,
    RetrainHookConfig,
    RetrainTrigger,
    airflow_run_id,
    argo_workflow_name,
    idempotency_key,
    payload,
    request_for,
)
from inferwatch.store import Store

TOKEN_ENV = "IW_TEST_RETRAIN_TOKEN"
TOKEN = "s3cr3t-token-value"
HOUR_MS = 3_600_000
T0 = 1_764_554_400_000  # 2025-12-01T02:00:00Z


def episode(model: str = "fraud", version: str = "3", window_id: int = 42, alertname: str = "DatasetDrift",
            fired_at_ms: int = T0 + HOUR_MS + 60_000, drifted: tuple[DriftedFeature, ...] | None = None
            ) -> DriftEpisode:
    if drifted is None:
        drifted = (DriftedFeature("age", "feature", "ks", 0.31, 1e-9, 0.05),
                   DriftedFeature("score", "prediction", "psi", 0.27, None, 0.2))
    return DriftEpisode(alertname=alertname, model=model, model_version=version, window_id=window_id,
                        window_start_ms=T0, window_end_ms=T0 + HOUR_MS, dataset_drift_share=0.4,
                        drifted=drifted, fired_at_ms=fired_at_ms)


# --- a real receiver ------------------------------------------------------------------------

class Receiver:
    """An HTTP server on 127.0.0.1 (port 0) in a thread that records each request and answers
    with ``respond(method, path, headers, body) -> (status, json_or_None)``; it shuts itself
    down after ``lifetime`` seconds even if the test never stops it."""

    def __init__(self, respond, lifetime: float = 30.0) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                body = json.loads(raw) if raw else None
                rec = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body": body, "raw": raw}
                outer.requests.append(rec)
                status, answer = respond(rec)
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PATCH = do_PUT = do_GET = _any

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.timer = threading.Timer(lifetime, self.server.shutdown)
        self.timer.daemon = True

    def __enter__(self) -> Receiver:
        self.thread.start()
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def send(hook: RetrainHookConfig, req):
    """Deliver one stored request as the outbox does (credentials added here, from the hook)."""
    with httpx.Client(timeout=5) as client:
        return deliver(client, "webhook", hook, req, T0)


@pytest.fixture
def token(monkeypatch) -> dict:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return {"env": TOKEN_ENV}


def check_common(rec: dict, req) -> None:
    h = {k.lower(): v for k, v in rec["headers"].items()}
    assert h["authorization"] == f"Bearer {TOKEN}"
    assert h["content-type"] == "application/json"
    assert h["idempotency-key"] == req.idempotency_key
    assert TOKEN not in req.body  # the stored body never holds the credential


# --- each kind against a server that answers like the real API ------------------------------

def test_github_repository_dispatch(token):
    def respond(rec):
        h = {k.lower(): v for k, v in rec["headers"].items()}
        ok = (rec["method"] == "POST" and rec["path"] == "/repos/acme/churn-models/dispatches"
              and h.get("accept") == "application/vnd.github+json"
              and h.get("x-github-api-version") == "2022-11-28" and h.get("user-agent")
              and isinstance(rec["body"], dict) and set(rec["body"]) == {"event_type", "client_payload"}
              and len(rec["body"]["client_payload"]) <= 10 and len(rec["raw"]) < GITHUB_MAX_PAYLOAD_BYTES)
        return (204, None) if ok else (422, {"message": "Invalid request"})

    hook = RetrainHookConfig(name="gh", kind="github", url="http://placeholder", repository="acme/churn-models",
                             bearer_token=token)
    ep = episode()
    req = request_for(hook, ep)
    with Receiver(respond) as rx:
        hook = hook.model_copy(update={"url": rx.url})
        outcome = send(hook, req)
    assert outcome.accepted and outcome.status == 204
    (rec,) = rx.requests
    check_common(rec, req)
    body = rec["body"]
    assert body["event_type"] == "inferwatch-drift"
    cp = body["client_payload"]
    assert cp == {**payload(ep), "idempotency_key": "retrain:gh:fraud:3:42"}
    assert cp["window"] == {"id": 42, "start": "2025-12-01T02:00:00.000Z", "end": "2025-12-01T03:00:00.000Z"}
    assert cp["drifted"][0] == {"name": "age", "role": "feature", "method": "ks", "statistic": 0.31,
                                "p_value": 1e-9, "threshold": 0.05}
    assert cp["drifted"][1]["p_value"] is None
    assert cp["drift_share"] == 0.4 and cp["fired_at"] == "2025-12-01T03:01:00.000Z"


def test_github_headers_are_defaults_the_config_can_override():
    hook = RetrainHookConfig(name="gh", kind="github", url="https://api.github.com", repository="a/b",
                             headers={"x-github-api-version": "2026-03-10", "X-Team": "ml"})
    assert hook.headers == {"Accept": "application/vnd.github+json", "x-github-api-version": "2026-03-10",
                            "X-Team": "ml"}
    other = RetrainHookConfig(name="h", kind="http", url="https://example.com")
    assert other.headers == {}


def test_github_client_payload_stays_under_64kb_with_many_drifted_columns():
    many = tuple(DriftedFeature(f"feature_with_a_long_name_{i:05d}", "feature", "ks", 0.5, 1e-6, 0.05)
                 for i in range(5000))
    hook = RetrainHookConfig(name="gh", kind="github", url="https://api.github.com", repository="a/b")
    body = json.loads(request_for(hook, episode(drifted=many)).body)
    cp = body["client_payload"]
    assert len(json.dumps(cp).encode()) < GITHUB_MAX_PAYLOAD_BYTES
    assert len(cp) <= 10
    assert cp["drifted_count"] == 5000 and 100 < len(cp["drifted"]) < 5000
    assert cp["drifted"][0]["name"] == "feature_with_a_long_name_00000"  # cut from the end


def argo_server():
    """Argo Server's submit: 200 with the Workflow, 409 when the name exists (Kubernetes)."""
    created: set[str] = set()

    def respond(rec):
        b = rec["body"]
        if rec["method"] != "POST" or rec["path"] != "/api/v1/workflows/ml-train/submit":
            return 404, {"code": 5, "message": "Not Found"}
        if (b.get("resourceKind") not in ("WorkflowTemplate", "ClusterWorkflowTemplate")
                or not all(isinstance(p, str) and "=" in p for p in b["submitOptions"]["parameters"])):
            return 400, {"code": 3, "message": "bad request"}
        name = b["submitOptions"]["name"]
        if name in created:
            return 409, {"code": 6, "message": f'workflows.argoproj.io "{name}" already exists'}
        created.add(name)
        return 200, {"metadata": {"name": name, "namespace": b["namespace"], "uid": "4f1b"},
                     "spec": {"workflowTemplateRef": {"name": b["resourceName"]}}, "status": {}}
    return respond


def test_argo_submit_and_a_repeat_is_refused(token):
    hook = RetrainHookConfig(name="argo-retrain", kind="argo", url="http://placeholder", namespace="ml-train",
                             resource_name="retrain-fraud", bearer_token=token,
                             parameters={"model": "{model}", "version": "{model_version}",
                                         "features": "{drifted_features}", "window": "{window_start}/{window_end}"})
    ep = episode()
    req = request_for(hook, ep)
    with Receiver(argo_server()) as rx:
        hook = hook.model_copy(update={"url": rx.url})
        first, again = send(hook, req), send(hook, req)
    assert first.accepted and first.status == 200
    # the peer refuses a second run of the same name; the outbox counts that as delivered
    assert again.accepted and again.status == 409 and again.status in hook.repeat_statuses
    rec = rx.requests[0]
    check_common(rec, req)
    name = argo_workflow_name("argo-retrain", ep)
    assert rec["body"] == {
        "namespace": "ml-train", "resourceKind": "WorkflowTemplate", "resourceName": "retrain-fraud",
        "submitOptions": {"name": name,
                          "parameters": ["model=fraud", "version=3", "features=age,score",
                                         "window=2025-12-01T02:00:00.000Z/2025-12-01T03:00:00.000Z"],
                          "labels": "inferwatch.io/hook=argo-retrain,inferwatch.io/model=fraud"}}
    assert name.startswith("retrain-argo-retrain-fraud-") and len(name) <= 63
    # another window is another workflow; the same window is the same name
    assert argo_workflow_name("argo-retrain", episode(window_id=43)) != name
    assert argo_workflow_name("argo-retrain", episode()) == name


def test_argo_name_of_an_unusual_model_is_a_valid_kubernetes_name():
    name = argo_workflow_name("Hook_1", episode(model="Fraud Model/EU (v2)" * 5))
    assert len(name) <= 63 and all(c.isdigit() or c.islower() or c == "-" for c in name)
    assert not name.endswith("-") and name.startswith("retrain-hook-1-fraud-model-eu-")


def test_kubeflow_run(token):
    def respond(rec):
        b = rec["body"]
        if rec["method"] != "POST" or rec["path"] != "/apis/v2beta1/runs":
            return 404, {"error": "not found"}
        ref = b.get("pipeline_version_reference") or {}
        if not (b.get("display_name") and ref.get("pipeline_id") and ref.get("pipeline_version_id")):
            return 400, {"error": "invalid run"}
        return 200, {"run_id": "8c2f0f6e-0000-4000-8000-000000000001", "display_name": b["display_name"],
                     "experiment_id": b.get("experiment_id", "default"), "pipeline_version_reference": ref,
                     "runtime_config": b["runtime_config"], "state": "PENDING",
                     "created_at": "2025-12-01T03:01:01Z"}

    hook = RetrainHookConfig(name="kfp", kind="kubeflow", url="http://placeholder", bearer_token=token,
                             pipeline_id="p-1", pipeline_version_id="pv-7", experiment_id="exp-2",
                             parameters={"model_name": "{model}", "drift_share": "{drift_share}"})
    req = request_for(hook, episode())
    with Receiver(respond) as rx:
        outcome = send(hook.model_copy(update={"url": rx.url}), req)
    assert outcome.accepted and outcome.status == 200
    (rec,) = rx.requests
    check_common(rec, req)
    assert rec["body"] == {
        "display_name": "retrain fraud 3 window 42",
        "description": "inferwatch retraining hook kfp; idempotency key retrain:kfp:fraud:3:42",
        "pipeline_version_reference": {"pipeline_id": "p-1", "pipeline_version_id": "pv-7"},
        "runtime_config": {"parameters": {"model_name": "fraud", "drift_share": "0.4"}},
        "experiment_id": "exp-2"}
    no_exp = RetrainHookConfig(name="kfp", kind="kubeflow", url="http://x", pipeline_id="p", pipeline_version_id="v")
    assert "experiment_id" not in json.loads(request_for(no_exp, episode()).body)


def airflow_server(version: str):
    runs: set[str] = set()

    def respond(rec):
        b = rec["body"]
        if rec["method"] != "POST" or rec["path"] != f"/api/{version}/dags/retrain_fraud/dagRuns":
            return 404, {"title": "DAG not found", "status": 404}
        if version == "v2" and "logical_date" not in b:  # Airflow 3: required, may be null
            return 422, {"detail": [{"loc": ["body", "logical_date"], "msg": "Field required"}]}
        if not isinstance(b.get("conf"), dict):
            return 400, {"title": "bad request"}
        if b["dag_run_id"] in runs:
            return 409, {"title": "Conflict", "detail": f"DAGRun with DAG ID: 'retrain_fraud' and DAGRun ID: "
                                                        f"'{b['dag_run_id']}' already exists", "status": 409}
        runs.add(b["dag_run_id"])
        return 200, {"dag_id": "retrain_fraud", "dag_run_id": b["dag_run_id"], "conf": b["conf"],
                     "logical_date": b.get("logical_date"), "state": "queued", "run_type": "manual"}
    return respond


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_airflow_dag_run_and_a_repeat_is_refused(token, version):
    hook = RetrainHookConfig(name="af", kind="airflow", url="http://placeholder", bearer_token=token,
                             dag_id="retrain_fraud", api_version=version)
    ep = episode(model="fraud model")
    req = request_for(hook, ep)
    with Receiver(airflow_server(version)) as rx:
        hook = hook.model_copy(update={"url": rx.url})
        first, again = send(hook, req), send(hook, req)
    assert first.accepted and first.status == 200
    assert again.accepted and again.status == 409 and again.status in hook.repeat_statuses
    rec = rx.requests[0]
    check_common(rec, req)
    run_id = airflow_run_id("af", ep)
    assert run_id.startswith("retrain:af:fraud_model:3:42-")
    expected = {"dag_run_id": run_id, "conf": {**payload(ep), "idempotency_key": "retrain:af:fraud model:3:42"}}
    if version == "v2":
        expected["logical_date"] = None
    assert rec["body"] == expected


def test_http_hook_renders_its_body_template(token):
    hook = RetrainHookConfig(name="web", kind="http", url="http://placeholder", path="/hooks/retrain",
                             bearer_token=token,
                             body={"text": "{model} v{model_version} drifted ({drift_share}): {drifted_features}",
                                   "window": {"id": "{window_id}", "from": "{window_start}"},
                                   "tags": ["{alertname}", "drift"], "priority": 2, "literal": "{{not a field}}"})
    req = request_for(hook, episode())
    with Receiver(lambda rec: (202, {"queued": True})) as rx:
        outcome = send(hook.model_copy(update={"url": rx.url}), req)
    assert outcome.accepted and outcome.status == 202
    (rec,) = rx.requests
    check_common(rec, req)
    assert rec["method"] == "POST" and rec["path"] == "/hooks/retrain"
    assert rec["body"] == {"text": "fraud v3 drifted (0.4): age,score",
                           "window": {"id": "42", "from": "2025-12-01T02:00:00.000Z"},
                           "tags": ["DatasetDrift", "drift"], "priority": 2, "literal": "{not a field}"}
    plain = RetrainHookConfig(name="web", kind="http", url="http://x")
    assert json.loads(request_for(plain, episode()).body) == {**payload(episode()),
                                                              "idempotency_key": "retrain:web:fraud:3:42"}


# --- configuration errors -------------------------------------------------------------------

@pytest.mark.parametrize("fields, needle", [
    ({"kind": "argo", "namespace": "ml", "resource_name": "r", "parameters": {"m": "{modle}"}},
     "retraining hook 'bad': parameters.m: unknown placeholder {modle}"),
    ({"kind": "kubeflow", "pipeline_id": "p", "pipeline_version_id": "v", "display_name": "run {}"},
     "retraining hook 'bad': display_name: unknown placeholder {}"),
    ({"kind": "kubeflow", "pipeline_id": "p", "pipeline_version_id": "v", "display_name": "{model.upper}"},
     "placeholder {model.upper} must be plain"),
    ({"kind": "http", "body": {"a": {"b": ["{drift_share:.2f}"]}}}, "body.a.b[0]: placeholder {drift_share}"),
    ({"kind": "http", "body": {"a": "{model"}}, "body.a: malformed template"),
    ({"kind": "argo", "namespace": "ml"}, "retraining hook 'bad' (kind argo): resource_name required"),
    ({"kind": "github", "repository": "a/b", "dag_id": "d"}, "(kind github): dag_id not allowed"),
    ({"kind": "airflow", "dag_id": "d", "parameters": {"a": "b"}}, "(kind airflow): parameters not allowed"),
    ({"kind": "github", "repository": "not-a-repo"}, "repository must be owner/name"),
    ({"kind": "airflow", "dag_id": "d", "api_version": "v3"}, "api_version"),
    ({"kind": "jenkins"}, "retraining hook 'bad': kind must be one of"),
])
def test_config_errors_name_the_hook(fields, needle):
    with pytest.raises(ValidationError) as err:
        RetrainHookConfig(name="bad", url="https://example.com", **fields)
    assert needle in str(err.value)


def test_cooldown_must_not_be_negative_and_secret_must_exist(monkeypatch):
    with pytest.raises(ValidationError, match="cooldown_seconds"):
        RetrainHookConfig(name="h", kind="http", url="http://x", cooldown_seconds=-1)
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValidationError, match=TOKEN_ENV):
        RetrainHookConfig(name="h", kind="http", url="http://x", bearer_token={"env": TOKEN_ENV})


def test_trigger_refuses_duplicate_hook_names():
    h = RetrainHookConfig(name="h", kind="http", url="http://x")
    with pytest.raises(ValueError, match="unique: h"):
        RetrainTrigger([h, h])


# --- decisions ------------------------------------------------------------------------------

def test_decide_cooldown_filters_and_dry_run():
    hook = RetrainHookConfig(name="h", kind="http", url="http://x", cooldown_seconds=3600)
    ep, now = episode(), T0 + 10 * HOUR_MS
    decide = RetrainTrigger.decide
    assert decide(hook, ep, None, now) is Decision.SEND
    assert decide(hook, ep, now - 3_599_999, now) is Decision.COOLDOWN
    assert decide(hook, ep, now - 3_600_000, now) is Decision.SEND
    assert decide(hook, ep, now + 5_000, now) is Decision.COOLDOWN  # clock went back
    assert decide(hook.model_copy(update={"cooldown_seconds": 0}), ep, now, now) is Decision.SEND

    only = hook.model_copy(update={"alerts": ["DatasetDrift"], "models": ["fraud", "churn"]})
    assert decide(only, ep, None, now) is Decision.SEND
    assert decide(only, episode(alertname="PredictionDrift"), None, now) is Decision.FILTERED
    assert decide(only, episode(model="ranker"), None, now) is Decision.FILTERED
    assert decide(only, episode(model="ranker"), now, now) is Decision.FILTERED  # filters first

    dry = hook.model_copy(update={"dry_run": True})
    assert decide(dry, ep, None, now) is Decision.DRY_RUN
    assert decide(dry, ep, now - 60_000, now) is Decision.COOLDOWN


def test_idempotency_key_and_expiry():
    hook = RetrainHookConfig(name="h", kind="http", url="http://x", cooldown_seconds=600)
    ep = episode()
    assert idempotency_key("h", ep) == "retrain:h:fraud:3:42"
    assert request_for(hook, ep).idempotency_key == request_for(hook, ep).idempotency_key
    assert request_for(hook, ep).expires_at_ms == ep.fired_at_ms + 600_000
    assert request_for(hook, ep, now_ms=T0).expires_at_ms == T0 + 600_000
    assert request_for(hook.model_copy(update={"cooldown_seconds": 0}), ep).expires_at_ms is None


def test_episode_from_store_rows():
    window = {"id": 7, "model": "fraud", "model_version": "3", "window_start_ms": T0, "window_end_ms": T0 + HOUR_MS,
              "drift_share": float("nan")}
    rows = [
        {"column_name": "features.age", "role": "feature", "method": "ks", "statistic": 0.2, "p_value": 1e-3,
         "threshold": 0.05, "drifted": True},
        {"column_name": "features.income", "role": "feature", "method": "ks", "statistic": 0.4, "p_value": 1e-8,
         "threshold": 0.05, "drifted": True},
        {"column_name": "features.zip", "role": "feature", "method": "chi2", "statistic": 1.0, "p_value": 0.6,
         "threshold": 0.05, "drifted": False},
        {"column_name": "predictions.score", "role": "prediction", "method": "psi", "statistic": float("inf"),
         "p_value": None, "threshold": 0.2, "drifted": True},
    ]
    ep = DriftEpisode.from_results("DatasetDrift", window, rows, fired_at_ms=T0 + HOUR_MS)
    assert [f.name for f in ep.drifted] == ["income", "age", "score"]
    assert ep.drifted[2] == DriftedFeature("score", "prediction", "psi", None, None, 0.2)
    assert ep.dataset_drift_share is None and ep.window_id == 7
    json.dumps(payload(ep), allow_nan=False)  # JSON-safe


# --- the store and the whole trigger ---------------------------------------------------------

def test_hook_calls_round_trip(store):
    with store.transaction() as conn:
        assert store.last_hook_call(conn, "h", "fraud", "3") is None
        assert store.last_hook_call(conn, "h", "fraud") is None
        store.record_hook_call(conn, "h", "fraud", "3", 1_000, "retrain:h:fraud:3:1")
        store.record_hook_call(conn, "h", "fraud", "4", 5_000, "retrain:h:fraud:4:2")
        store.record_hook_call(conn, "other", "fraud", "4", 9_000, "retrain:other:fraud:4:2")
    with store.transaction() as conn:
        assert store.last_hook_call(conn, "h", "fraud", "3") == 1_000
        assert store.last_hook_call(conn, "h", "fraud") == 5_000
        assert store.last_hook_call(conn, "h", "churn") is None
        store.record_hook_call(conn, "h", "fraud", "3", 7_000, "retrain:h:fraud:3:9")
    with store.transaction() as conn:
        assert store.last_hook_call(conn, "h", "fraud", "3") == 7_000
        assert store.last_hook_call(conn, "h", "fraud") == 7_000
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            store.record_hook_call(conn, "h", "churn", "1", 8_000, "k")
            raise RuntimeError("rolled back")
    with store.transaction() as conn:
        assert store.last_hook_call(conn, "h", "churn") is None


def test_one_episode_one_retrain_across_versions_and_restarts(store, token):
    hook = RetrainHookConfig(name="af", kind="airflow", url="http://placeholder", bearer_token=token,
                             dag_id="retrain_fraud", cooldown_seconds=3600, models=["fraud"])
    enqueued = []
    fire_at = T0 + 2 * HOUR_MS
    with store.transaction() as conn:
        out = RetrainTrigger([hook]).fire(store, conn, episode(window_id=1), fire_at,
                                          lambda c, r: enqueued.append(r))
    assert [o.decision for o in out] == [Decision.SEND]
    # a new process (a restart) with the same database: another window, and another version of
    # the same model, within the cooldown start nothing
    store.close()
    again = Store(store.url)
    try:
        with again.transaction() as conn:
            trigger = RetrainTrigger([hook])
            d2 = trigger.fire(again, conn, episode(window_id=2), fire_at + 60_000, lambda c, r: enqueued.append(r))
            d3 = trigger.fire(again, conn, episode(version="4", window_id=3), fire_at + HOUR_MS - 1,
                              lambda c, r: enqueued.append(r))
            d4 = trigger.fire(again, conn, episode(model="churn", window_id=4), fire_at,
                              lambda c, r: enqueued.append(r))
        assert [d2[0].decision, d3[0].decision, d4[0].decision] == [Decision.COOLDOWN, Decision.COOLDOWN,
                                                                    Decision.FILTERED]
        with again.transaction() as conn:
            d5 = trigger.fire(again, conn, episode(version="4", window_id=5), fire_at + HOUR_MS,
                              lambda c, r: enqueued.append(r))
        assert d5[0].decision is Decision.SEND
        with again.transaction() as conn:
            assert again.last_hook_call(conn, "af", "fraud", "3") == fire_at
            assert again.last_hook_call(conn, "af", "fraud") == fire_at + HOUR_MS
    finally:
        again.close()
    assert [r.idempotency_key for r in enqueued] == ["retrain:af:fraud:3:1", "retrain:af:fraud:4:5"]
    with Receiver(airflow_server("v1")) as rx:
        hook = hook.model_copy(update={"url": rx.url})
        assert all(send(hook, r).accepted for r in enqueued)
    assert [r["body"]["conf"]["window"]["id"] for r in rx.requests] == [1, 5]


def test_dry_run_logs_and_never_sends(store, token, caplog):
    hook = RetrainHookConfig(name="gh-dry", kind="github", url="http://placeholder", repository="acme/models",
                             bearer_token=token, dry_run=True)
    enqueued = []
    with Receiver(lambda rec: (204, None)) as rx:
        hook = hook.model_copy(update={"url": rx.url})
        with caplog.at_level(logging.INFO, logger="alerting.retrain"):
            with store.transaction() as conn:
                out = RetrainTrigger([hook]).fire(store, conn, episode(), T0 + 2 * HOUR_MS,
                                                  lambda c, r: enqueued.append(r))
        for r in enqueued:  # nothing, so nothing reaches the server
            send(hook, r)
    assert [o.decision for o in out] == [Decision.DRY_RUN]
    assert enqueued == [] and rx.requests == []
    with store.transaction() as conn:
        assert store.last_hook_call(conn, "gh-dry", "fraud") is None
    (rec,) = [r for r in caplog.records if "dry run" in r.getMessage()]
    line = rec.getMessage()
    assert rec.levelno == logging.INFO
    assert f"POST {rx.url}/repos/acme/models/dispatches" in line
    assert '"event_type":"inferwatch-drift"' in line and "retrain:gh-dry:fraud:3:42" in line
    assert TOKEN not in caplog.text and "Bearer" not in caplog.text


def test_hook_calls_ddl_matches_the_sqlalchemy_table(store):
    import sqlalchemy as sa

    from inferwatch.store import hook_calls
    inspector = sa.inspect(store.engine)
    live = {c["name"]: c for c in inspector.get_columns("hook_calls")}
    assert set(live) == {c.name for c in hook_calls.columns}
    assert all(live[c.name]["nullable"] == c.nullable or c.primary_key for c in hook_calls.columns)
    assert sorted(inspector.get_pk_constraint("hook_calls")["constrained_columns"]) == sorted(
        ["hook", "model", "model_version"])
