"""The Grafana dashboards show data: a real Prometheus scrapes a real run of inferwatch on the
real ACS data, and every panel's query returns some.

The run: the real Kafka broker, ``inferwatch demo-producer --stream both`` (the ACS employment
logs 2015-2018 plus the stationary control stream, with the producer's simulated serving
telemetry), a few malformed messages (rejects) and one record for a closed window (late);
``inferwatch run`` as a real process on SQLite with realized performance, a dataset-drift rule
notifying a real webhook receiver on 127.0.0.1 (which answers its first request 503, so the
outbox retries), a retraining hook calling a real HTTP server and an autoscaling hook in
``metric_only`` mode. Debian's Prometheus 2.42 (``/usr/bin/prometheus``) scrapes it every second
and evaluates ``dashboards/rules/inferwatch.rules.yml``.

Then every target of every panel of every dashboard in ``dashboards/`` is sent to Prometheus's
HTTP API with Grafana's variables substituted (``$model`` a model of the run, ``$__rate_interval``
15 s, ...): instant targets to ``/api/v1/query``, the others to ``/api/v1/query_range`` over the
run; each must return a series with a finite value. Template variable queries
(``label_values(...)``) must list the model and version used.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import service_unavailable
from e2e import REPO, Service, create_topic, free_port, json_prediction, produce, scrape, wait_for, write_config

pytestmark = [pytest.mark.kafka]

DASHBOARD_DIR = REPO / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
RULES = DASHBOARD_DIR / "rules" / "inferwatch.rules.yml"
PROVISIONING = DASHBOARD_DIR / "provisioning" / "dashboards" / "inferwatch.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PROMETHEUS_BIN = "/usr/bin/prometheus"

MODEL, VERSION = "employment", "1"
WINDOW_SECONDS = 7_884_000  # a quarter of 365 days, as examples/inferwatch.compose.yaml
ORIGIN_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z
END_MS = 1_546_300_800_000  # 2019-01-01T00:00:00Z: both demo streams end just before it
WINDOWS_PER_MODEL = math.ceil((END_MS - ORIGIN_MS) / (WINDOW_SECONDS * 1000))  # 17: the last one is short
RATE_INTERVAL = "15s"  # Grafana: max(4 x scrape interval, interval + scrape interval)
INTERVAL = "2s"


# ------------------------------------------------------------------------------ dashboard JSON
def panels(dashboard: dict):
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variable_queries(dashboard: dict) -> dict[str, str]:
    """Template variable name -> its ``label_values(...)`` query."""
    out = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            out[var["name"]] = q["query"] if isinstance(q, dict) else q
    return out


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with Grafana's variables (``$name``, ``${name}``, ``[[name]]``) replaced by
    ``values``; fails on a variable it does not know."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in values, f"unknown variable {name!r} in {expr}"
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", one, expr)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_json(path):
    """Datasource through the variable everywhere, model/model_version from label_values()."""
    dashboard = json.loads(path.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, query in variable_queries(dashboard).items():
        assert variables[name]["datasource"] == DATASOURCE, name
        assert re.fullmatch(rf"label_values\(inferwatch_\w+(\{{[^}}]*\}})?, {name}\)", query), query
    assert "model" in variables
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DATASOURCE, (panel["title"], t["refId"])
            assert t["expr"].strip(), (panel["title"], t["refId"])


def test_dashboards_unique_and_provisioned():
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == 4 and len(set(uids)) == 4, uids
    titles = [json.loads(p.read_text())["title"] for p in DASHBOARDS]
    assert len(set(titles)) == 4, titles
    # the provider loads the folder the compose file mounts ./dashboards at
    (provider,) = yaml.safe_load(PROVISIONING.read_text())["providers"]
    assert provider["type"] == "file"
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = dict(reversed(v.split(":")[:2]) for v in grafana["volumes"] if v.startswith("."))
    assert mounts[provider["options"]["path"]] == "./dashboards"


# ------------------------------------------------------------------------------ real servers
class CheckingReceiver:
    """A real HTTP server on 127.0.0.1 (``test_notifiers.Receiver``): ``check(method, path,
    headers, body)`` returns the problems of a request (answered 400); ``status(n)`` the
    answer to the n-th request that passed them (counted from 0)."""

    def __init__(self, check, status=lambda n: 200) -> None:
        from test_notifiers import Receiver

        self.bodies: list[object] = []  # the accepted requests' bodies (answered < 300)
        self.problems: list[str] = []
        self.answered = 0  # requests that passed the checks
        self.lock = threading.Lock()

        def respond(req) -> tuple[int, str]:
            try:
                body = req.json()
            except ValueError:
                body = None
            problems = check(req.method, req.path, req.headers, body) if body is not None else ["body is not JSON"]
            with self.lock:
                if problems:
                    self.problems.extend(problems)
                    return 400, ""
                code = status(self.answered)
                self.answered += 1
                if code < 300:
                    self.bodies.append(body)
                return code, ""
        self._server = Receiver(respond)
        self.url = self._server.url

    def close(self) -> None:
        self._server.close()


def webhook_check(method, path, headers, body) -> list[str]:
    """Alertmanager webhook body (version 4) POSTed to /alerts."""
    problems = []
    if (method, path) != ("POST", "/alerts"):
        problems.append(f"{method} {path}")
    if not headers.get("content-type", "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('content-type')!r}")
    if not isinstance(body, dict) or body.get("version") != "4" or body.get("status") not in ("firing", "resolved"):
        problems.append(f"not a webhook v4 body: {str(body)[:200]}")
    elif not body.get("alerts") or any(a["labels"].get("alertname") != "InferwatchDatasetDrift"
                                       for a in body["alerts"]):
        problems.append(f"unexpected alerts: {body.get('alerts')}")
    return problems


def retrain_check(method, path, headers, body) -> list[str]:
    """The http retraining hook's templated body POSTed to /retrain."""
    problems = []
    if (method, path) != ("POST", "/retrain"):
        problems.append(f"{method} {path}")
    if not headers.get("content-type", "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('content-type')!r}")
    if not isinstance(body, dict) or body.get("model") != MODEL or "ANC" not in str(body.get("features")):
        problems.append(f"unexpected retrain body: {body}")
    return problems


class Prometheus:
    """Debian's Prometheus server on 127.0.0.1 with its own config and a TSDB in ``directory``."""

    def __init__(self, directory: Path, metrics_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "inferwatch", "static_configs": [
                {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
        }, sort_keys=False))
        self.log_path = directory / "prometheus.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS_BIN, f"--config.file={self.config}", f"--storage.tsdb.path={directory / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=directory)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log()}")
        try:
            return self.client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    def api(self, path: str, **params) -> dict:
        answer = self.client.get(f"/api/v1/{path}", params=params)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def value(self, expr: str) -> float | None:
        """The single value of an instant query (None when it returns nothing)."""
        result = self.api("query", query=expr)["result"]
        return float(result[0]["value"][1]) if result else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _finite(result: list[dict]) -> bool:
    """Whether an API result (vector or matrix) holds a finite sample."""
    for series in result:
        samples = series.get("values") or [series["value"]]
        if any(math.isfinite(float(v)) for _t, v in samples):
            return True
    return False


# ------------------------------------------------------------------------------ the test
def test_every_panel_query_returns_data(tmp_path, kafka_bootstrap):
    if not os.access(PROMETHEUS_BIN, os.X_OK):
        service_unavailable(f"{PROMETHEUS_BIN} not found (Debian: apt-get install -y prometheus)")
    t_start = time.monotonic()
    topic = f"dashboards-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic, 3)
    port = free_port()
    webhook = CheckingReceiver(webhook_check, status=lambda n: 503 if n == 0 else 200)  # one retry
    retrain = CheckingReceiver(retrain_check, status=lambda n: 202)
    classification = {"task": "classification", "prediction": "employed", "labels": ["false", "true"],
                      "probabilities": ["probability"]}
    cfg = write_config(
        tmp_path / "inferwatch.yaml",
        database_url=f"sqlite:///{tmp_path / 'inferwatch.db'}",
        kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic], "group_id": f"g-{topic}",
               "dead_letter_topic": f"{topic}.dead-letter", "poll_timeout_ms": 200},
        window={"length_seconds": WINDOW_SECONDS, "origin": "2015-01-01T00:00:00Z", "idle_close_seconds": 3},
        reference={"bootstrap_records": 20000},
        drift={"mode": "recommended", "categorical": {}},
        performance={"models": {MODEL: classification, "employment-control": classification}},
        alerting={
            "rules": [{"name": "InferwatchDatasetDrift", "signal": "dataset_drift", "for": [1, 1],
                       "severity": "warning"}],
            "receivers": [{"name": "oncall-webhook", "type": "webhook", "url": f"{webhook.url}/alerts"}],
            "external_url": f"http://127.0.0.1:{port}",
            "outbox": {"poll_interval_seconds": 0.5, "backoff_initial_seconds": 0.5, "jitter_seconds": 0.1},
        },
        hooks={
            "retrain": [{"name": "retrain-http", "kind": "http", "url": retrain.url, "path": "/retrain",
                         "body": {"model": "{model}", "features": "{drifted_features}"}}],
            "autoscale": [{"name": "employment-replicas", "model": MODEL, "signal": "latency_p95_seconds",
                           "target_value": 0.08, "max_replicas": 10, "apply": "metric_only"}],
        },
        metrics={"host": "127.0.0.1", "port": port},
    )
    service = Service(cfg, tmp_path / "service.log").start()
    prometheus = Prometheus(tmp_path, port)
    producer = None
    try:
        wait_for(prometheus.ready, 60, "Prometheus to be ready")
        wait_for(lambda: prometheus.value('up{job="inferwatch"}') == 1 or not service.running(), 60,
                 "Prometheus to scrape inferwatch")
        assert service.running(), service.log()
        t_query_start = time.time()
        # a message that is no JSON and one without the required fields: two rejects
        assert produce(kafka_bootstrap, topic, [b"{not json", b'{"model": "employment"}']) == 2
        producer = subprocess.run(
            [sys.executable, "-m", "inferwatch.cli", "demo-producer", "-b", kafka_bootstrap, "-t", topic,
             "--stream", "both"], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert producer.returncode == 0, producer.stdout + producer.stderr
        produced = int(re.search(r"produced (\d+) records", producer.stdout).group(1))
        assert produced > 480_000

        def ingested_and_closed():
            s = scrape(port)
            ingested = sum(v for (name, _), v in s.items() if name == "inferwatch_records_ingested_total")
            closed = sum(v for (name, _), v in s.items() if name == "inferwatch_windows_closed_total")
            return (ingested, closed) if ingested == produced and closed == 2 * WINDOWS_PER_MODEL else None

        wait_for(lambda: ingested_and_closed() or not service.running(), 120,
                 f"{produced} records ingested and {2 * WINDOWS_PER_MODEL} windows closed")
        assert service.running(), service.log()
        # a record for a window closed long ago: counted late
        late = json_prediction(MODEL, VERSION, ORIGIN_MS + 86_400_000, "late-1", {"AGEP": 40.0, "SCHL": "21"},
                               {"employed": True, "probability": 0.9}, latency_ms=30.0)
        assert produce(kafka_bootstrap, topic, [late]) == 1
        wait_for(lambda: (prometheus.value("sum(inferwatch_records_late_total)") or 0) >= 1
                 and retrain.bodies and len(webhook.bodies) >= 1
                 and prometheus.value('sum(inferwatch_outbox_messages{state="pending"})') == 0, 60,
                 "Prometheus to see the late record, the hook call, the notification and an empty outbox")
        time.sleep(3)  # a few more scrapes and rule evaluations of the final state
        t_query_end = time.time()
        scrapes = prometheus.value(f'count_over_time(up{{job="inferwatch"}}[{int(t_query_end - t_query_start)}s])')
        assert scrapes >= 30, f"only {scrapes} scrapes"

        values = {"model": MODEL, "model_version": VERSION, "datasource": "prometheus",
                  "__rate_interval": RATE_INTERVAL, "__interval": INTERVAL,
                  "__range": f"{int(t_query_end - t_query_start) + 1}s"}
        failures, checked = [], 0
        for path in DASHBOARDS:
            dashboard = json.loads(path.read_text())
            for name, query in variable_queries(dashboard).items():
                m = re.fullmatch(r"label_values\((.+), (\w+)\)", substitute(query, values))
                found = {s.get(m.group(2)) for s in prometheus.api("series", **{"match[]": m.group(1)})}
                if values[name] not in found:
                    failures.append(f"{dashboard['title']} / variable {name}: {query} gave {sorted(found)}")
            for panel in panels(dashboard):
                for target in panel.get("targets", []):
                    expr = substitute(target["expr"], values)
                    if target.get("instant"):
                        result = prometheus.api("query", query=expr, time=t_query_end)["result"]
                    else:
                        result = prometheus.api("query_range", query=expr, start=t_query_start, end=t_query_end,
                                                step=1)["result"]
                    checked += 1
                    if not _finite(result):
                        failures.append(f"{dashboard['title']} / {panel['title']} / {target['refId']}: "
                                        f"{target['expr']} returned {'NaN only' if result else 'nothing'}")
        assert not failures, "panels without data:\n" + "\n".join(failures)
        assert checked >= 60
        assert webhook.problems == [] and retrain.problems == [], webhook.problems + retrain.problems
        # the simulated serving telemetry reached the logs' histogram: ~0.3 % errors, p50 near 40 ms
        errors = prometheus.value(f'sum(inferwatch_serving_requests_total{{model="{MODEL}", outcome="error"}})')
        total = prometheus.value(f'sum(inferwatch_serving_requests_total{{model="{MODEL}"}})')
        assert 0.001 < errors / total < 0.006
        assert total >= 243_000
    finally:
        prometheus.stop()
        code = service.stop()
        webhook.close()
        retrain.close()
    assert code == 0, service.log()
    assert "Traceback" not in (tmp_path / "service.log").read_text(errors="replace"), service.log()
    print(f"runtime {time.monotonic() - t_start:.1f}s, {checked} panel queries")


def test_simulated_serving_telemetry_is_seeded_marked_and_decodes():
    """The demo producer's serving telemetry: deterministic per seed, marked simulated, and
    read by the collector as latency and serving columns (the marker key ignored)."""
    import itertools

    import numpy as np

    from collector.decode import validate_record
    from inferwatch import demo

    def first(n: int, seed: int) -> list[dict]:
        return list(itertools.islice(demo.with_simulated_serving(demo.demo_records(), seed=seed), n))

    a, b, c = first(5000, 0), first(5000, 0), first(5000, 1)
    assert a == b and a != c
    assert all(r["serving"]["simulated"] is True for r in a)
    latency = np.array([r["latency_ms"] for r in a])
    assert 35 < np.median(latency) < 45 and latency.min() > 0
    codes = [r["serving"]["status_code"] for r in a]
    assert set(codes) <= {200, 500, 503} and 0 < sum(c >= 500 for c in codes) < 60
    assert {r["serving"]["replica"] for r in a} == {f"employment-{i}" for i in range(demo.SIMULATED_REPLICAS)}
    meta, columns = validate_record(json.loads(demo.encode_record(a[0])), max_features=100)
    assert meta[5] == a[0]["latency_ms"]
    assert columns["serving.status_code"] == a[0]["serving"]["status_code"]
    assert columns["serving.replica"] == a[0]["serving"]["replica"]
    assert "serving.simulated" not in columns
