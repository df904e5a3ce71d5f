"""The deployment files stay valid and in step with the code.

- ``docker-compose.yml`` passes Debian's ``docker-compose config -q`` (skipped when the tool is
  missing, except on CI where that fails), and its bind mounts, ports and environment agree with
  the example config, the Prometheus scrape config and the Grafana provisioning files;
- every metric the Grafana dashboards query exists in :class:`inferwatch.metrics.Metrics` (or is a
  recorded series of dashboards/rules), every panel queries the ``${datasource}`` template
  variable, the four dashboards have unique uids and the provisioning loads their folder;
- Prometheus sends alerts to the stack's Alertmanager, whose config ``amtool check-config``
  accepts, and inferwatch pushes its alerts there;
- the example configs load with :func:`inferwatch.config.load_config`, and
  ``examples/inferwatch.yaml`` shows every key with its default.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from inferwatch.config import Settings, load_config
from inferwatch.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD_DIR = REPO / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
EXAMPLE_CONFIG = REPO / "examples" / "inferwatch.yaml"
COMPOSE_CONFIG = REPO / "examples" / "inferwatch.compose.yaml"
DEMO_CONFIG = REPO / "examples" / "inferwatch.demo.yaml"
ALERTMANAGER_CONFIG = DASHBOARD_DIR / "alertmanager.yml"
RULE_FILE = DASHBOARD_DIR / "rules" / "inferwatch.rules.yml"
DATASOURCE_VAR = "${datasource}"
# a metric name, or a recorded series (level:metric:operations)
METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])(?:[a-z_]+:)?inferwatch[_:][A-Za-z0-9_:]+")
EXPECTED_DASHBOARDS = {"inferwatch-fleet", "inferwatch-model-drift", "inferwatch-serving", "inferwatch-health"}


def _missing_tool(reason: str) -> None:
    """Fail on CI (``CI=true``), skip elsewhere: a missing tool is no pass on CI."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _bind_mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repo) of a service's bind mounts."""
    out = {}
    for spec in service.get("volumes", []):
        parts = spec.split(":")
        if parts[0].startswith((".", "/")):
            out[parts[1]] = parts[0]
    return out


# ------------------------------------------------------------------------------ compose
def test_docker_compose_config_is_valid():
    exe = shutil.which("docker-compose")
    if exe is None:
        _missing_tool("docker-compose not installed (apt-get install -y docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    proc = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"docker-compose config failed:\n{proc.stdout}\n{proc.stderr}"


def test_compose_services_and_bind_mounts():
    services = _compose()["services"]
    assert set(services) >= {"kafka", "postgres", "prometheus", "alertmanager", "grafana", "inferwatch",
                             "demo-producer"}
    for name, service in services.items():
        for host_path in _bind_mounts(service).values():
            assert (REPO / host_path).exists(), f"{name} mounts {host_path}, which does not exist"
    assert services["demo-producer"]["restart"] == "no"
    assert "--serving" in services["demo-producer"]["command"]  # the serving dashboard needs telemetry
    for dep in ("kafka", "postgres"):
        assert services["inferwatch"]["depends_on"][dep]["condition"] == "service_healthy"


def test_compose_inferwatch_service_config(clean_env):
    """The config the inferwatch container sees: the mounted file plus the service's environment."""
    service = _compose()["services"]["inferwatch"]
    command = service["command"]
    config_path = command[command.index("--config") + 1]
    assert _bind_mounts(service)[config_path] == "./examples/inferwatch.compose.yaml"
    for key, value in service["environment"].items():
        # ${VAR:-default} as docker compose substitutes it when VAR is unset
        clean_env.setenv(key, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value)))
    settings = load_config(COMPOSE_CONFIG)
    assert settings.database_url.startswith("postgresql+psycopg://inferwatch:")
    assert settings.database_url.endswith("@postgres:5432/inferwatch")
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.metrics.host == "0.0.0.0"
    assert f"127.0.0.1:{settings.metrics.port}:{settings.metrics.port}" in service["ports"]

    producer = _compose()["services"]["demo-producer"]["command"]
    assert producer[producer.index("-b") + 1] == settings.kafka.bootstrap_servers
    assert producer[producer.index("-t") + 1] in settings.kafka.topics

    scrape = yaml.safe_load((DASHBOARD_DIR / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] if job["job_name"] == "inferwatch"
               for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"inferwatch:{settings.metrics.port}"]

    # the HTTP API listens on every interface of the container, on the published port
    assert settings.api.enabled and settings.api.host == "0.0.0.0"
    assert f"127.0.0.1:{settings.api.port}:{settings.api.port}" in service["ports"]
    assert settings.api.token is not None and settings.api.token.value.get_secret_value()

    # inferwatch pushes its alerts to the stack's Alertmanager, on the port it listens on
    (am,) = [r for r in settings.alerting.receivers if r.type == "alertmanager"]
    assert str(am.url).rstrip("/") == "http://alertmanager:9093"
    assert "alertmanager" in service["depends_on"]


def test_grafana_provisioning_matches_compose():
    grafana = _compose()["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    datasources = yaml.safe_load((DASHBOARD_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["uid"] == "prometheus"
    providers = yaml.safe_load((DASHBOARD_DIR / "provisioning" / "dashboards" / "inferwatch.yml").read_text())
    paths = [p["options"]["path"] for p in providers["providers"]]
    assert paths and all(mounts.get(p) == "./dashboards" for p in paths), (paths, mounts)
    assert mounts["/etc/grafana/provisioning/datasources"] == "./dashboards/provisioning/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == "./dashboards/provisioning/dashboards"
    prometheus = _bind_mounts(_compose()["services"]["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./dashboards/prometheus.yml"
    # the rule files Prometheus loads are the repository's, and only those (not their tests)
    assert prometheus["/etc/prometheus/rules"] == "./dashboards/rules"
    (pattern,) = yaml.safe_load((DASHBOARD_DIR / "prometheus.yml").read_text())["rule_files"]
    loaded = sorted(p.name for p in (DASHBOARD_DIR / "rules").glob(pattern.rsplit("/", 1)[1]))
    assert loaded == ["inferwatch.rules.yml"]
    # Grafana opens on the fleet overview, one of the mounted dashboards
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    folder, name = home.rsplit("/", 1)
    assert mounts[folder] == "./dashboards" and json.loads((DASHBOARD_DIR / name).read_text())["uid"] == \
        "inferwatch-fleet"


def test_prometheus_alerts_go_to_the_compose_alertmanager():
    services = _compose()["services"]
    scrape = yaml.safe_load((DASHBOARD_DIR / "prometheus.yml").read_text())
    targets = [t for am in scrape["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    am = services["alertmanager"]
    assert am["image"].startswith("prom/alertmanager:")
    assert _bind_mounts(am)["/etc/alertmanager/alertmanager.yml"] == "./dashboards/alertmanager.yml"
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in am["command"]
    assert "127.0.0.1:9093:9093" in am["ports"]
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    assert config["route"]["receiver"] in {r["name"] for r in config["receivers"]}


def test_prometheus_config_is_valid():
    exe = shutil.which("promtool")
    if exe is None:
        _missing_tool("promtool not installed (apt-get install -y prometheus)")
    proc = subprocess.run([exe, "check", "config", str(DASHBOARD_DIR / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alertmanager_config_is_valid():
    exe = shutil.which("amtool")
    if exe is None:
        _missing_tool("amtool not installed (apt-get install -y prometheus-alertmanager)")
    proc = subprocess.run([exe, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ dashboards
def exposed_metric_names(metrics: Metrics) -> set[str]:
    """Sample names a scrape of ``/metrics`` can return for the registered families."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "info": ("_info",), "stateset": ("",),
                "enum": ("",), "gaugehistogram": ("_bucket", "_gcount", "_gsum"), "unknown": ("",)}
    names = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes[family.type])
    return names


def _panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def _queries(dashboard: dict) -> list[str]:
    out = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] == "query":
            q = var["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def recorded_series() -> set[str]:
    """Names of the recording rules in dashboards/rules/inferwatch.rules.yml."""
    groups = yaml.safe_load(RULE_FILE.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def test_there_are_dashboards():
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)), f"dashboard uids are not unique: {uids}"
    assert set(uids) == EXPECTED_DASHBOARDS


def test_exposed_metric_names_helper():
    names = exposed_metric_names(Metrics())
    assert "inferwatch_records_ingested_total" in names and "inferwatch_records_ingested" not in names
    assert "inferwatch_dataset_drift_share" in names


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_only_existing_metrics(path):
    dashboard = json.loads(path.read_text())
    known = exposed_metric_names(Metrics()) | recorded_series()
    queries = _queries(dashboard)
    assert queries
    for expr in queries:
        used = set(METRIC_RE.findall(expr))
        if not used:  # Prometheus's own scrape status of inferwatch
            assert re.fullmatch(r'up\{job=~?"inferwatch[^"]*"\}', expr), f"query uses no inferwatch metric: {expr}"
            continue
        assert used <= known, f"unknown metric(s) {sorted(used - known)} in: {expr}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels_use_the_datasource_variable(path):
    dashboard = json.loads(path.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "model" in variables and variables["model"]["datasource"]["uid"] == DATASOURCE_VAR
    ids = []
    for panel in _panels(dashboard):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_VAR}, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE_VAR, (panel["title"], t["refId"])
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    # file provisioning does not resolve import-time inputs (FORMATS.md §9)
    assert "${DS_" not in path.read_text()
    assert "__inputs" not in dashboard


# ------------------------------------------------------------------------------ example configs
@pytest.mark.parametrize("path", [EXAMPLE_CONFIG, COMPOSE_CONFIG, DEMO_CONFIG], ids=lambda p: p.name)
def test_example_config_loads(path, clean_env):
    load_config(path)


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        out.add(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out |= _keys(field.annotation, f"{prefix}{name}.")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in data.items():
        out.add(prefix + key)
        if isinstance(value, dict) and value and (prefix + key) not in {"drift.categorical",
                                                                        "kafka.client_options"}:
            out |= _yaml_keys(value, f"{prefix}{key}.")
    return out


def test_example_config_documents_every_key_with_its_default(clean_env):
    assert _yaml_keys(yaml.safe_load(EXAMPLE_CONFIG.read_text())) == _keys(Settings)
    assert load_config(EXAMPLE_CONFIG).model_dump() == Settings().model_dump()
