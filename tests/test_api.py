"""The HTTP API served by a real uvicorn on 127.0.0.1, over a store filled by a real pipeline
run of the demo data (SQLite and PostgreSQL): what it returns is what the store holds;
bearer-token auth on writes, body limits while streaming, reference uploads, readiness,
``inferwatch api`` and ``inferwatch run`` serving it, and schemathesis against its OpenAPI
document."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import httpx
import pandas as pd
import pytest

from inferwatch import demo
from inferwatch.api import ApiServer, create_app, parse_time, start_api
from inferwatch.config import ConfigError, load_config
from inferwatch.metrics import Metrics
from inferwatch.reference import profile_frame, read_reference_file
from inferwatch.runner import open_store, run_in_process
from inferwatch.store import Store

from conftest import service_unavailable
from e2e import REPO, free_port, wait_for
from test_pipeline import set_training_reference

TOKEN_ENV = "INFERWATCH_TEST_API_TOKEN"
TOKEN = "t0ken-for-the-api-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 4096
MAX_UPLOAD = 1 << 20


def _settings(db_url: str, **api):
    return load_config(None, database_url=db_url,
                       window={"length_seconds": 86_400, "idle_close_seconds": None},
                       metrics={"enabled": False},
                       api={"enabled": True, "port": 0, "token": {"env": TOKEN_ENV}, "max_body_bytes": MAX_BODY,
                            "max_upload_bytes": MAX_UPLOAD, **api})


class Served:
    """A store filled by the pipeline and the API serving it."""

    def __init__(self, settings, store: Store, server: ApiServer, consumer: dict) -> None:
        self.settings, self.store, self.server, self.consumer = settings, store, server, consumer
        self.client = httpx.Client(base_url=server.url, timeout=30)


@pytest.fixture
def served(db_url, tmp_path, monkeypatch):
    """Two days of the ``ep`` model (a stable day, then a 2018 day that drifts) through the
    real pipeline, and the API on a free port of 127.0.0.1."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    settings = _settings(db_url)
    store = open_store(settings)
    set_training_reference(store, "ep", tmp_path)
    episode = demo.episode_records(model_name="ep", n_stable=5000, n_drift=5000, n_recovery=0, records_per_day=5000)
    run_in_process(settings, (demo.encode_record(r) for r in episode.records), store, Metrics(), source_name="s")
    consumer = {"ready": True}
    server = start_api(settings, store, ready=lambda: consumer["ready"])
    s = Served(settings, store, server, consumer)
    yield s
    s.client.close()
    server.stop()
    store.close()


def test_models_windows_and_drift_results_are_what_the_store_holds(served):
    c, store = served.client, served.store
    windows = store.list_windows("ep")
    assert windows.dataset_drifted.tolist() == [False, True]  # the stable day, then the 2018 day
    models = c.get("/api/v1/models").json()
    assert [m["model"] for m in models] == ["ep"]
    (version,) = models[0]["versions"]
    assert version["model_version"] == "1"
    assert version["reference"]["model_version"] == "*" and version["reference"]["source"] == "training half"
    assert version["reference"]["n_rows"] == 34_392
    last = windows.iloc[-1]
    assert version["last_window"]["id"] == int(last.id)
    assert version["last_window"]["start"] == datetime.fromtimestamp(
        int(last.window_start_ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert c.get("/api/v1/models/ep").json() == models[0]

    listed = c.get("/api/v1/models/ep/windows").json()
    assert [w["id"] for w in listed] == [int(i) for i in windows.id[::-1]]  # newest first
    for w, (_, row) in zip(listed, windows[::-1].iterrows()):
        assert (w["record_count"], w["n_drifted"], w["dataset_drifted"]) == (
            int(row.record_count), int(row.n_drifted), bool(row.dataset_drifted))
        assert w["drift_share"] == row.drift_share and w["window_end_ms"] == int(row.window_end_ms)
    second = int(windows.window_start_ms.iloc[1])
    rfc = datetime.fromtimestamp(second / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    assert [w["id"] for w in c.get("/api/v1/models/ep/windows", params={"since": rfc}).json()] == [int(last.id)]
    assert [w["id"] for w in c.get("/api/v1/models/ep/windows", params={"until": second}).json()] == [
        int(windows.id.iloc[0])]
    assert len(c.get("/api/v1/models/ep/windows", params={"limit": 1, "model_version": "1"}).json()) == 1
    assert c.get("/api/v1/models/ep/windows", params={"model_version": "9"}).json() == []

    detail = c.get(f"/api/v1/windows/{int(last.id)}").json()
    assert detail["id"] == int(last.id) and detail["dataset_drifted"] is True
    stored = store.list_drift_results(int(last.id)).set_index("column_name")
    got = {r["column_name"]: r for r in detail["drift_results"]}
    assert set(got) == set(stored.index) and len(got) >= 16
    for col, r in got.items():
        for field in ("statistic", "p_value", "p_value_adjusted", "psi", "js_distance"):
            want = stored.loc[col, field]
            assert r[field] == (None if pd.isna(want) else float(want)), (col, field)
        assert r["method"] == stored.loc[col, "method"] and r["n_current"] == int(stored.loc[col, "n_current"])
    assert got["features.ANC"]["drifted"] is True and got["features.ANC"]["method"] == "chi2"
    assert got["features.ANC"]["p_value"] < 1e-6

    for path, named in (("/api/v1/models/nope", "nope"), ("/api/v1/models/nope/windows", "nope"),
                        ("/api/v1/windows/999999", "999999")):
        r = c.get(path)
        assert r.status_code == 404 and named in r.json()["detail"], path
    r = c.get("/api/v1/models/ep/windows", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    assert c.get("/api/v1/models/ep/windows", params={"since": "2024-01-05T00:00:00"}).status_code == 422  # no offset
    assert c.get("/api/v1/models/ep/windows", params={"limit": 1001}).status_code == 422


def test_alerts_and_silences_with_the_bearer_token(served):
    c, store = served.client, served.store
    alerts = c.get("/api/v1/alerts").json()
    stored = store.alert_instances_in(None, ("pending", "firing"))
    assert [a["fingerprint"] for a in alerts] == [s["fingerprint"] for s in stored]
    (alert,) = alerts
    assert (alert["alertname"], alert["model"], alert["state"]) == ("InferwatchDatasetDrift", "ep", "firing")
    assert alert["fired_at_ms"] == stored[0]["state"]["fired_at_ms"] and alert["silenced_by"] == []
    assert c.get("/api/v1/alerts", params={"state": "resolved"}).json() == []
    assert c.get("/api/v1/alerts", params={"model": "other"}).json() == []
    assert c.get("/api/v1/alerts", params={"state": "exploded"}).status_code == 422

    body = {"matchers": ["model=ep", "alertname=~Inferwatch.*"], "duration_seconds": 3600, "comment": "retraining"}
    missing = c.post("/api/v1/silences", json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="inferwatch"'
    wrong = c.post("/api/v1/silences", json=body, headers={"Authorization": "Bearer " + TOKEN[:-1] + "X"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = c.post("/api/v1/silences", json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401
    assert store.list_silences() == []  # nothing written without the token

    made = c.post("/api/v1/silences", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    silence = made.json()
    (row,) = store.list_silences()
    assert silence["id"] == row["id"] and silence["matchers"] == row["matchers"] == body["matchers"]
    assert silence["ends_at_ms"] - silence["starts_at_ms"] == 3_600_000 and silence["state"] == "active"
    assert c.get("/api/v1/alerts").json()[0]["silenced_by"] == [silence["id"]]
    assert [s["id"] for s in c.get("/api/v1/silences").json()] == [silence["id"]]

    bad = c.post("/api/v1/silences", json={**body, "matchers": ["model~ep"]}, headers=AUTH)
    assert bad.status_code == 422 and "model~ep" in bad.text
    assert c.post("/api/v1/silences", json={**body, "comment": "  "}, headers=AUTH).status_code == 422

    assert c.delete(f"/api/v1/silences/{silence['id']}").status_code == 401
    expired = c.delete(f"/api/v1/silences/{silence['id']}", headers=AUTH)
    assert expired.status_code == 200 and expired.json()["state"] == "expired"
    assert store.list_silences()[0]["ends_at_ms"] <= int(time.time() * 1000)
    assert c.get("/api/v1/silences").json() == []
    assert [s["state"] for s in c.get("/api/v1/silences", params={"include_expired": True}).json()] == ["expired"]
    assert c.get("/api/v1/alerts").json()[0]["silenced_by"] == []
    assert c.delete("/api/v1/silences/424242", headers=AUTH).status_code == 404


def test_reference_upload_as_csv_parquet_and_json_lines(served, tmp_path):
    c, store, settings = served.client, served.store, served.settings
    train = pd.read_csv(demo.write_reference_file(tmp_path / "train.csv")).head(3000)
    csv_path = tmp_path / "small.csv"
    train.to_csv(csv_path, index=False)
    r = c.put("/api/v1/models/ep/reference", params={"model_version": "2"}, content=csv_path.read_bytes(),
              headers={**AUTH, "Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model"], out["model_version"], out["n_rows"]) == ("ep", "2", 3000)
    assert "features.AGEP" in out["numeric_columns"] and "features.ANC" in out["numeric_columns"]
    assert "label" not in str(out) and len(out["numeric_columns"]) + len(out["categorical_columns"]) == 18
    # the profile inferwatch reference set builds from the same file
    want = profile_frame(read_reference_file(csv_path), set(), settings.reference.n_bins,
                         settings.reference.sample_size).to_dict()
    with store.engine.connect() as conn:
        key, got = store.get_reference(conn, "ep", "2")

    def without_sketches(profile: dict) -> dict:  # KLL sketches are randomised: equal in all else
        return {**profile, "columns": {c: {k: v for k, v in p.items() if k != "kll"}
                                       for c, p in profile["columns"].items()}}
    assert key == "2" and without_sketches(got) == without_sketches(want) and got["n_rows"] == 3000
    refs = {x["model_version"]: x for x in c.get("/api/v1/models/ep").json()["references"]}
    assert set(refs) == {"*", "2"} and refs["2"]["n_rows"] == 3000 and refs["2"]["source"] == "api upload (csv)"

    parquet = io.BytesIO()
    train.head(500).to_parquet(parquet)
    r = c.put("/api/v1/models/fresh/reference", content=parquet.getvalue(),
              headers={**AUTH, "Content-Type": "application/vnd.apache.parquet"})
    assert r.status_code == 200 and r.json()["n_rows"] == 500
    lines = train.head(200).to_json(orient="records", lines=True).encode()
    r = c.put("/api/v1/models/fresh/reference", params={"model_version": "7"}, content=lines,
              headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200 and r.json()["n_rows"] == 200
    fresh = c.get("/api/v1/models/fresh").json()
    assert fresh["versions"] == [] and [x["model_version"] for x in fresh["references"]] == ["*", "7"]

    assert c.put("/api/v1/models/x/reference", content=b"AGEP\n1\n", headers={"Content-Type": "text/csv"}
                 ).status_code == 401
    r = c.put("/api/v1/models/x/reference", content=b"AGEP\n1\n", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 415 and "text/csv" in r.json()["detail"]
    r = c.put("/api/v1/models/x/reference", content=b"AGEP,SCHL\n,\n", headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status_code == 400 and "no rows with values" in r.json()["detail"]
    r = c.put("/api/v1/models/x/reference", content=b'{"a": [1]}\n', headers={**AUTH,
                                                                           "Content-Type": "application/x-ndjson"})
    assert r.status_code == 400 and "line 1" in r.json()["detail"]
    r = c.put("/api/v1/models/x/reference", content=b"not parquet",
              headers={**AUTH, "Content-Type": "application/vnd.apache.parquet"})
    assert r.status_code == 400
    assert "x" not in {m["model"] for m in c.get("/api/v1/models").json()}


def test_bodies_over_the_limit_are_refused_while_they_stream(served):
    c, store = served.client, served.store
    big = {"matchers": ["model=ep"], "duration_seconds": 60, "comment": "x" * (MAX_BODY + 10)}
    r = c.post("/api/v1/silences", json=big, headers=AUTH)  # Content-Length says it all
    assert r.status_code == 413 and "api.max_body_bytes" in r.json()["detail"]

    sent = []

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(8):
            sent.append(1024)
            yield b" " * 1024
    r = c.post("/api/v1/silences", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and "api.max_body_bytes" in r.json()["detail"] and sum(sent) > MAX_BODY
    assert store.list_silences() == []

    csv = b"AGEP\n" + b"42\n" * (MAX_UPLOAD // 3 + 10)  # over 1 MiB
    r = c.put("/api/v1/models/ep/reference", content=csv, headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status_code == 413 and "api.max_upload_bytes" in r.json()["detail"]

    def csv_chunks():
        yield b"AGEP\n"
        for _ in range(MAX_UPLOAD // 65_536 + 2):
            yield b"42\n" * 21_845 + b"4\n"
    r = c.put("/api/v1/models/ep/reference", content=csv_chunks(), headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status_code == 413
    assert [x["model_version"] for x in c.get("/api/v1/models/ep").json()["references"]] == ["*"]
    # a body under the limit still goes through
    assert c.post("/api/v1/silences", json={**big, "comment": "short"}, headers=AUTH).status_code == 201


def test_readiness_follows_the_consumer_and_the_database(served, tmp_path):
    c = served.client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json() == {"ready": True, "store": True, "consumer": True}
    served.consumer["ready"] = False
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json() == {"ready": False, "store": True, "consumer": False}
    assert c.get("/healthz").status_code == 200

    gone = Store(f"sqlite:///{tmp_path}/missing-dir/x.db")  # cannot be opened
    server = ApiServer(create_app(served.settings, gone), "127.0.0.1", 0)
    server.start()
    try:
        r = httpx.get(f"{server.url}/readyz", timeout=10)
        assert r.status_code == 503 and r.json() == {"ready": False, "store": False, "consumer": None}
        r = httpx.get(f"{server.url}/api/v1/models", timeout=10)
        assert r.status_code == 503 and "database" in r.json()["detail"]
    finally:
        server.stop()
        gone.close()


def test_times_are_epoch_ms_or_rfc3339_with_an_offset():
    assert parse_time("1704067200000") == parse_time("2024-01-01T00:00:00Z") == 1_704_067_200_000
    assert parse_time("2024-01-01T01:00:00+01:00") == parse_time("2024-01-01t00:00:00.000z") == 1_704_067_200_000
    for bad in ("2024-01-01", "2024-01-01T00:00:00", "soon", "99999999999999999", True):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_the_token_is_required_when_the_api_is_enabled(clean_env, tmp_path):
    with pytest.raises(ConfigError, match="api.token"):
        load_config(None, api={"enabled": True})
    settings = load_config(None, database_url=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="api.token"):
        create_app(settings, Store(settings.database_url))


def _write_config(tmp_path, port: int, **extra: str) -> str:
    cfg = tmp_path / "c.yaml"
    lines = [f"database_url: sqlite:///{tmp_path / 'api.db'}", "metrics:", "  enabled: false", "api:",
             "  host: 127.0.0.1", f"  port: {port}"]
    lines += [f"  {k}: {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return str(cfg)


def test_inferwatch_api_serves_until_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, TOKEN_ENV: TOKEN, "DO_NOT_TRACK": "1"}
    no_token = subprocess.run([sys.executable, "-m", "inferwatch.cli", "api", "--config",
                               _write_config(tmp_path, port)], cwd=REPO, capture_output=True, text=True, env=env,
                              timeout=60)
    assert no_token.returncode == 2 and "api.token" in no_token.stdout
    cfg = _write_config(tmp_path, port, token=f"{{env: {TOKEN_ENV}}}")
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch.cli", "api", "--config", cfg], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(f"{url}/readyz", timeout=2)
            except httpx.HTTPError:
                return None
        r = wait_for(up, 60, "inferwatch api to answer", interval=0.2)
        assert r.status_code == 200 and r.json() == {"ready": True, "store": True, "consumer": None}
        assert httpx.get(f"{url}/openapi.json", timeout=5).json()["info"]["title"] == "inferwatch"
        made = httpx.post(f"{url}/api/v1/silences", json={"matchers": ["model=m"], "duration_seconds": 60,
                                                          "comment": "deploy"}, headers=AUTH, timeout=5)
        assert made.status_code == 201
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [s["comment"] for s in Store(f"sqlite:///{tmp_path / 'api.db'}").list_silences()] == ["deploy"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_inferwatch_run_serves_the_api_and_stops_it_on_sigterm(kafka_bootstrap, tmp_path):
    from e2e import Service

    port = free_port()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'run.db'}\nmetrics:\n  enabled: false\n"
                   f"kafka:\n  bootstrap_servers: {kafka_bootstrap}\n  topics: [api-test-{port}]\n"
                   f"  group_id: api-test-{port}\n"
                   f"api:\n  enabled: true\n  port: {port}\n  token: {{env: {TOKEN_ENV}}}\n")
    service = Service(cfg, tmp_path / "run.log", env={TOKEN_ENV: TOKEN}).start()
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
        except httpx.HTTPError:
            return None
        return r if r.status_code == 200 else None
    try:
        r = wait_for(ready, 120, "the run's API to be ready")
        assert r.json() == {"ready": True, "store": True, "consumer": True}
        assert httpx.get(f"{url}/api/v1/models", timeout=5).json() == []
    finally:
        code = service.stop()
    assert code == 0, service.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


# --- schemathesis against the OpenAPI document -------------------------------------------------------------------

def _schemathesis():
    try:
        import schemathesis
    except ImportError:
        service_unavailable("schemathesis is not installed (pip install -e '.[dev]')")
    return schemathesis


def test_schemathesis_finds_no_server_error_and_every_response_matches_the_document(served):
    schemathesis = _schemathesis()
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                                   status_code_conformance)

    @schemathesis.serializer("application/vnd.apache.parquet", "application/x-ndjson")
    def _raw(_ctx, value) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode()

    url = served.server.url
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /healthz", "GET /readyz", "GET /api/v1/models", "GET /api/v1/models/{model}",
        "GET /api/v1/models/{model}/windows", "GET /api/v1/windows/{window_id}", "GET /api/v1/alerts",
        "GET /api/v1/silences", "POST /api/v1/silences", "DELETE /api/v1/silences/{silence_id}",
        "PUT /api/v1/models/{model}/reference"}
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
    calls = []
    started = time.monotonic()
    # valid requests (20 per operation), then invalid ones (10 per operation): none may get a 5xx
    for mode, examples in ((GenerationMode.POSITIVE, 20), (GenerationMode.NEGATIVE, 10)):
        for op in operations:
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(generation_mode=mode))
            def exercise(case):
                response = case.call_and_validate(base_url=url, headers=AUTH, checks=checks, timeout=20)
                calls.append((op.path, mode.value, response.status_code))
            # invalid requests where a query or a body can be invalid (a path segment is any text)
            if mode is GenerationMode.POSITIVE or len(op.query) or len(op.body):
                exercise()
    assert time.monotonic() - started < 90
    codes = {code for _, _, code in calls}
    assert len(calls) >= 100 and not any(code >= 500 for code in codes)
    assert {200, 201} <= codes, Counter(calls)  # the generated requests reached the real handlers, not only validation


# --- model names with slashes, non-finite numbers, the documented status codes -----------------------------------

SLASHED = "meta-llama/Llama-3-8B"


def test_model_names_with_slashes_reach_their_routes(served, tmp_path):
    c, store = served.client, served.store
    episode = demo.episode_records(model_name=SLASHED, n_stable=400, n_drift=400, n_recovery=0, records_per_day=400,
                                   start="2024-03-01T00:00:00Z")  # after ep's days: not late
    run_in_process(served.settings, (demo.encode_record(r) for r in episode.records), store, Metrics(),
                   source_name="slashed")
    windows = store.list_windows(SLASHED)
    assert len(windows) == 2
    quoted = SLASHED.replace("/", "%2F")  # as clients encode a path segment; uvicorn decodes it before routing
    for path in (f"/api/v1/models/{quoted}", f"/api/v1/models/{SLASHED}"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["model"] == SLASHED and [v["model_version"] for v in r.json()["versions"]] == ["1"]
    for path in (f"/api/v1/models/{quoted}/windows", f"/api/v1/models/{SLASHED}/windows"):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text)
        assert [w["id"] for w in r.json()] == [int(i) for i in windows.id[::-1]]
        assert {w["model"] for w in r.json()} == {SLASHED}
    assert SLASHED in {m["model"] for m in c.get("/api/v1/models").json()}

    parquet = io.BytesIO()
    pd.read_csv(demo.write_reference_file(tmp_path / "train.csv")).head(300).to_parquet(parquet)
    r = c.put(f"/api/v1/models/{quoted}/reference", params={"model_version": "1"}, content=parquet.getvalue(),
              headers={**AUTH, "Content-Type": "application/vnd.apache.parquet"})
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["n_rows"]) == (SLASHED, 300)
    with store.engine.connect() as conn:
        assert store.get_reference(conn, SLASHED, "1")[1]["n_rows"] == 300
    assert c.get(f"/api/v1/models/{quoted}").json()["references"][0]["model_version"] == "1"
    # the upload limit applies to slashed names too
    big = b"AGEP\n" + b"42\n" * (MAX_UPLOAD // 3 + 10)
    r = c.put(f"/api/v1/models/{quoted}/reference", content=big, headers={**AUTH, "Content-Type": "text/csv"})
    assert r.status_code == 413 and "api.max_upload_bytes" in r.json()["detail"]

    # a name ending in /windows is ambiguous: the windows listing wins (of the model "x")
    r = c.get("/api/v1/models/x%2Fwindows")
    assert r.status_code == 404 and r.json()["detail"].startswith("no model 'x'")
    r = c.get("/api/v1/models/a/b/c")
    assert r.status_code == 404 and "'a/b/c'" in r.json()["detail"]
    assert c.get("/api/v1/models/%2Fwindows").status_code == 422  # an empty model name
    for path in ("/api/v1/models/a%0Ab/windows", "/api/v1/models/a%0Ab"):  # a line break is text too
        r = c.get(path)
        assert r.status_code == 404 and r.json()["detail"].startswith("no model 'a\\nb'"), (path, r.text)


def test_non_finite_and_coerced_durations_are_422_in_fastapis_shape(served):
    c, store = served.client, served.store
    headers = {**AUTH, "Content-Type": "application/json"}
    for number, shown in (("Infinity", "Infinity"), ("-Infinity", "-Infinity"), ("NaN", "NaN"),
                          ("1e309", "Infinity")):
        body = '{"matchers":["model=x"],"duration_seconds":%s,"comment":"c"}' % number
        r = c.post("/api/v1/silences", content=body, headers=headers)
        assert r.status_code == 422, (number, r.status_code, r.text)
        (error,) = r.json()["detail"]
        assert error["loc"] == ["body", "duration_seconds"] and error["input"] == shown, error
        assert error["type"] == "finite_number" and error["msg"]
    # non-finite numbers deeper in the input are rendered too (lists, objects)
    body = '{"matchers":[NaN],"duration_seconds":60,"comment":"c","extra":{"a":[-Infinity, 1.5]}}'
    r = c.post("/api/v1/silences", content=body, headers=headers)
    assert r.status_code == 422, r.text
    errors = {tuple(e["loc"]): e for e in r.json()["detail"]}
    assert errors[("body", "matchers", 0)]["input"] == "NaN"
    assert errors[("body", "extra")]["input"] == {"a": ["-Infinity", 1.5]}
    # a number only: no text, no boolean
    good = {"matchers": ["model=x"], "comment": "c"}
    for coerced in ("60", True):
        r = c.post("/api/v1/silences", json={**good, "duration_seconds": coerced}, headers=AUTH)
        assert r.status_code == 422, (coerced, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "duration_seconds"]
    # a body that is not text at all: 400, as the document says
    r = c.post("/api/v1/silences", content=b"\xa3\x13NV\xff", headers=headers)
    assert r.status_code == 400 and r.json()["detail"], r.text
    assert "400" in c.get("/openapi.json").json()["paths"]["/api/v1/silences"]["post"]["responses"]
    assert store.list_silences() == []
    r = c.post("/api/v1/silences", json={**good, "duration_seconds": 90.5}, headers=AUTH)
    assert r.status_code == 201 and r.json()["ends_at_ms"] - r.json()["starts_at_ms"] == 90_500


def test_since_after_until_is_422_naming_both(served):
    c = served.client
    r = c.get("/api/v1/models/ep/windows", params={"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"})
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert [e["loc"] for e in errors] == [["query", "since"], ["query", "until"]]
    assert all("since" in e["msg"] and "until" in e["msg"] for e in errors)
    assert errors[0]["input"] == "2024-01-02T00:00:00Z" and errors[1]["input"] == "2024-01-01T00:00:00Z"
    same = c.get("/api/v1/models/ep/windows", params={"since": 1_704_067_200_000, "until": 1_704_067_200_000})
    assert same.status_code == 200 and same.json() == []  # an empty range, not a contradiction


def test_every_api_route_documents_503_and_answers_it_without_a_database(tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gone = Store(f"sqlite:///{tmp_path}/missing-dir/x.db")  # cannot be opened
    server = ApiServer(create_app(_settings(f"sqlite:///{tmp_path}/unused.db"), gone), "127.0.0.1", 0)
    server.start()
    try:
        c = httpx.Client(base_url=server.url, timeout=10, headers=AUTH)
        doc = c.get("/openapi.json").json()
        operations = {(method.upper(), path): op for path, item in doc["paths"].items()
                      for method, op in item.items() if path.startswith("/api/v1/")}
        assert len(operations) == 9
        for key, op in operations.items():
            assert op["responses"]["503"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}, key
        assert "503" not in doc["paths"]["/healthz"]["get"]["responses"]
        silence = {"matchers": ["model=m"], "duration_seconds": 60, "comment": "c"}
        calls = {("GET", "/api/v1/models"): c.get("/api/v1/models"),
                 ("GET", "/api/v1/models/{model}"): c.get("/api/v1/models/m"),
                 ("GET", "/api/v1/models/{model}/windows"): c.get("/api/v1/models/m/windows"),
                 ("GET", "/api/v1/windows/{window_id}"): c.get("/api/v1/windows/1"),
                 ("GET", "/api/v1/alerts"): c.get("/api/v1/alerts"),
                 ("GET", "/api/v1/silences"): c.get("/api/v1/silences"),
                 ("POST", "/api/v1/silences"): c.post("/api/v1/silences", json=silence),
                 ("DELETE", "/api/v1/silences/{silence_id}"): c.delete("/api/v1/silences/1"),
                 ("PUT", "/api/v1/models/{model}/reference"): c.put(
                     "/api/v1/models/m/reference", content=b"AGEP,SCHL\n35,21\n52,16\n",
                     headers={"Content-Type": "text/csv"})}
        assert set(calls) == set(operations)
        for key, r in calls.items():
            assert r.status_code == 503 and "database" in r.json()["detail"], (key, r.status_code, r.text)
        c.close()
    finally:
        server.stop()
        gone.close()
