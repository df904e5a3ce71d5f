"""The alerting and hooks examples stay loadable and say what the code does.

``examples/inferwatch.yaml`` shows every key with its default (``tests/test_deploy_files.py``
checks that), so its rules, receivers and hooks are commented examples after a line ending in
``Example:``. These tests uncomment them into the file's ``alerting`` and ``hooks`` sections,
load the result with :func:`inferwatch.config.load_config` and check what the examples mean.
The README's alerting snippets (configuration YAML, the signature check, the start-up error,
the KEDA trigger) are checked the same way.
"""

from __future__ import annotations

import base64
import re
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from alerting.autoscale import desired_replicas
from alerting.events import fingerprint
from alerting.retrain import DriftEpisode, DriftedFeature, request_for
from alerting.rules import render
from alerting.signing import sign
from inferwatch.config import ConfigError, Settings, load_config
from inferwatch.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "inferwatch.yaml"
README = REPO / "README.md"

# the variables the examples' secrets name, with made-up values
SECRETS = {
    "INFERWATCH_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"example signing key 0123456789").decode(),
    "PAGERDUTY_ROUTING_KEY": "R0UT1NGKEY0000000000000000000000",
    "GITHUB_TOKEN": "ghp_example_token_value",
    "ARGO_TOKEN": "argo-example-token-value",
    "AIRFLOW_TOKEN": "airflow-example-token-value",
    "SCALER_TOKEN": "scaler-example-token-value",
}
_EXAMPLE_LINE = re.compile(r"^\s*#   (.*)$")


def commented_examples(text: str) -> dict[str, dict]:
    """Top-level section -> the YAML of the commented ``Example:`` blocks inside it, merged.

    A block is the run of lines ``<indent>#   <yaml>`` right after a comment line ending in
    ``Example:``; its text after ``#   `` is YAML.
    """
    out: dict[str, dict] = {}
    section = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^[a-z_]+:", line):
            section = line.split(":", 1)[0]
        if line.lstrip().startswith("#") and line.rstrip().endswith("Example:"):
            block = []
            i += 1
            while i < len(lines) and _EXAMPLE_LINE.match(lines[i]):
                block.append(_EXAMPLE_LINE.match(lines[i]).group(1))
                i += 1
            assert block, f"an Example: line in {section} is not followed by a commented block"
            out.setdefault(section, {}).update(yaml.safe_load("\n".join(block)))
            continue
        i += 1
    return out


@pytest.fixture
def secrets_env(clean_env):
    for name, value in SECRETS.items():
        clean_env.setenv(name, value)
    return clean_env


@pytest.fixture
def example(secrets_env, tmp_path) -> Settings:
    """examples/inferwatch.yaml with its alerting and hooks examples uncommented."""
    data = yaml.safe_load(EXAMPLE.read_text())
    examples = commented_examples(EXAMPLE.read_text())
    for section in ("alerting", "hooks"):
        data[section].update(examples[section])
    path = tmp_path / "inferwatch.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def test_every_alerting_list_has_a_commented_example():
    examples = commented_examples(EXAMPLE.read_text())
    assert set(examples["alerting"]) == {"rules", "receivers"}
    assert set(examples["hooks"]) == {"retrain", "autoscale"}
    active = yaml.safe_load(EXAMPLE.read_text())
    # the active keys stay at their defaults; the examples are what the comments show
    assert active["alerting"]["rules"] == [] and active["hooks"] == {"retrain": [], "autoscale": []}


def test_example_rules(example):
    rules = {r.name: r for r in example.alerting.effective_rules()}
    assert list(rules) == ["FeatureDrift", "HighPSI", "MissingValues", "AccuracyDrop", "HighLatency"]
    fd = rules["FeatureDrift"]
    assert (fd.signal, fd.field, fd.op, fd.threshold, fd.for_windows) == ("feature_drift", "drifted", "==", 1.0,
                                                                          (2, 3))
    assert fd.labels == {"team": "credit-risk"}
    summary = render(fd, {"model": "credit", "model_version": "7", "feature": "income", "method": "ks",
                          "p_value": 1.234e-9})
    assert summary["summary"] == "credit v7: income drifted (ks p=1.2e-09)"
    assert render(fd, {"model": "credit", "model_version": "7", "feature": "income", "method": "ks",
                       "p_value": None})["summary"] == "credit v7: income drifted (ks p=n/a)"

    psi = rules["HighPSI"]
    assert (psi.field, psi.op, psi.threshold, psi.resolve_threshold, psi.resolve_after_windows) == (
        "psi", ">=", 0.25, 0.1, 2)
    assert psi.columns == ["income", "age"] and psi.models == ["credit"]
    # hysteresis: 0.2 no longer breaches but does not count as clear either
    assert psi.breaches(0.25) and not psi.breaches(0.2) and not psi.clears(0.2) and psi.clears(0.1)

    acc = rules["AccuracyDrop"]
    assert (acc.metric, acc.op, acc.threshold, acc.resolve_threshold, acc.severity) == (
        "accuracy", "<", 0.85, 0.88, "critical")
    assert acc.breaches(0.84) and not acc.clears(0.87) and acc.clears(0.88)

    lat = rules["HighLatency"]
    assert (lat.signal, lat.for_windows) == ("latency_p95_seconds", (3, 3))
    assert render(lat, {"model": "llm", "model_version": "2", "value": 0.61234, "threshold": 0.5})["summary"] \
        == "llm v2: p95 latency 0.612 s (SLO 0.5 s)"
    assert rules["MissingValues"].breaches(0.25) and not rules["MissingValues"].breaches(0.2)


def test_example_receivers_and_secrets(example):
    receivers = {r.name: r for r in example.alerting.all_receivers()}
    assert {n: r.type for n, r in receivers.items()} == {
        "ml-oncall-webhook": "webhook", "alertmanager": "alertmanager", "pagerduty-critical": "pagerduty",
        "slack-ml": "slack"}
    assert receivers["ml-oncall-webhook"].signing_secret.get() == SECRETS["INFERWATCH_WEBHOOK_SECRET"]
    pd = receivers["pagerduty-critical"]
    assert pd.url == "https://events.pagerduty.com" and pd.match == {"severity": "critical"}
    assert pd.routing_key.get() == SECRETS["PAGERDUTY_ROUTING_KEY"]
    assert receivers["slack-ml"].send_resolved is False and receivers["slack-ml"].timeout_seconds == 10
    assert receivers["alertmanager"].url == "http://alertmanager.monitoring:9093"
    shown = repr(example) + example.model_dump_json()
    for value in SECRETS.values():
        assert value not in shown


def test_example_without_a_secret_fails_naming_the_variable(secrets_env, tmp_path):
    secrets_env.delenv("PAGERDUTY_ROUTING_KEY")
    data = yaml.safe_load(EXAMPLE.read_text())
    data["alerting"].update(commented_examples(EXAMPLE.read_text())["alerting"])
    path = tmp_path / "missing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=r"pagerduty-critical.*PAGERDUTY_ROUTING_KEY is unset or empty"):
        load_config(path)


def test_example_hooks(example):
    retrain = {h.name: h for h in example.hooks.retrain}
    assert {n: h.kind for n, h in retrain.items()} == {
        "github-retrain": "github", "argo-retrain": "argo", "kubeflow-retrain": "kubeflow",
        "airflow-retrain": "airflow", "http-retrain": "http"}
    assert retrain["http-retrain"].dry_run is True
    assert retrain["github-retrain"].alerts == ["InferwatchDatasetDrift", "FeatureDrift"]
    episode = DriftEpisode("FeatureDrift", "credit", "7", 4121, 1_764_496_800_000, 1_764_500_400_000, 0.25,
                           (DriftedFeature("income", "feature", "ks", 0.21, 1e-9, 0.001),
                            DriftedFeature("age", "feature", "ks", 0.12, 1e-5, 0.001)), 1_764_500_404_512)
    paths = {n: (request_for(h, episode).method, request_for(h, episode).path) for n, h in retrain.items()}
    assert paths == {"github-retrain": ("POST", "/repos/acme/credit-model/dispatches"),
                     "argo-retrain": ("POST", "/api/v1/workflows/ml/submit"),
                     "kubeflow-retrain": ("POST", "/apis/v2beta1/runs"),
                     "airflow-retrain": ("POST", "/api/v1/dags/retrain_credit/dagRuns"),
                     "http-retrain": ("POST", "/retrain")}
    body = yaml.safe_load(request_for(retrain["http-retrain"], episode).body)
    assert body == {"model": "credit", "reason": "FeatureDrift: income,age", "share": "0.25"}
    argo = yaml.safe_load(request_for(retrain["argo-retrain"], episode).body)
    assert argo["submitOptions"]["parameters"] == ["model=credit", "version=7", "features=income,age"]

    autoscale = {h.name: h for h in example.hooks.autoscale}
    llm, ranker = autoscale["llm-replicas"], autoscale["ranker-replicas"]
    assert (llm.apply, llm.target_label, llm.max_replicas) == ("kubernetes", "serving/Deployment/llm", 10)
    assert (ranker.apply, ranker.target_label) == ("webhook", "ranker-replicas")
    assert ranker.webhook.bearer_token.get() == SECRETS["SCALER_TOKEN"]
    # 3 replicas at 6 records/s each, held at 4: ceil(3 * 6 / 4) = 5
    assert desired_replicas(3, 6.0, llm.target_value, llm.tolerance, llm.min_replicas,
                            max_replicas=llm.max_replicas) == 5

    targets = example.outbox_targets()
    assert set(targets) == {"ml-oncall-webhook", "alertmanager", "pagerduty-critical", "slack-ml", *retrain,
                            "ranker-replicas"}
    assert targets["argo-retrain"][0] == "argo" and targets["ranker-replicas"][0] == "webhook"


# ------------------------------------------------------------------------------ README
def _readme_blocks(lang: str) -> list[str]:
    """The README's fenced ``lang`` blocks, dedented (blocks inside list items are indented)."""
    found = re.findall(rf"^( *)```{lang}\n(.*?)^\1```", README.read_text(), flags=re.S | re.M)
    return [textwrap.dedent(body) for _indent, body in found]


def _config_snippets() -> list[str]:
    fields = set(Settings.model_fields)
    return [b for b in _readme_blocks("yaml")
            if isinstance(yaml.safe_load(b), dict) and set(yaml.safe_load(b)) <= fields
            and set(yaml.safe_load(b)) & {"alerting", "hooks"}]


CONFIG_SNIPPETS = _config_snippets()


def test_readme_has_the_alerting_snippets():
    keys = {key for s in CONFIG_SNIPPETS for section in yaml.safe_load(s).values() for key in section}
    assert {"rules", "receivers", "retrain", "autoscale"} <= keys


@pytest.mark.parametrize("text", CONFIG_SNIPPETS, ids=lambda s: "+".join(
    k for section in yaml.safe_load(s).values() for k in section))
def test_readme_config_snippets_load(text, secrets_env, tmp_path):
    # a {file: PATH} secret: point it at a file holding a value
    secret_file = tmp_path / "secret"
    secret_file.write_text("file-secret-value\n")
    text = re.sub(r"\{file: [^}]+\}", "{file: %s}" % secret_file, text)
    path = tmp_path / "snippet.yaml"
    path.write_text(text)
    settings = load_config(path)
    data = yaml.safe_load(text)
    alerting, hooks = data.get("alerting", {}), data.get("hooks", {})
    assert [r.name for r in settings.alerting.rules] == [r["name"] for r in alerting.get("rules", [])]
    assert [r.name for r in settings.alerting.receivers] == [r["name"] for r in alerting.get("receivers", [])]
    for receiver in settings.alerting.receivers:
        if receiver.type == "pagerduty":
            assert receiver.routing_key.get() == "file-secret-value"
    assert [h.name for h in settings.hooks.retrain] == [h["name"] for h in hooks.get("retrain", [])]
    assert [h.name for h in settings.hooks.autoscale] == [h["name"] for h in hooks.get("autoscale", [])]


def test_readme_start_up_error_is_the_real_one(clean_env, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("alerting:\n  rules:\n    - {name: HighLatency, signal: latency_p95_seconds, threshold: 0.5}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "alerting.rules[0] (HighLatency)" in message
    assert message in README.read_text()


def test_readme_signature_check_accepts_inferwatch_signatures():
    (code,) = [b for b in _readme_blocks("python") if "def verified" in b]
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the README's own snippet
    verified = namespace["verified"]
    secret = "plain shared secret"
    body = b'{"version":"4","status":"firing"}'
    headers = sign(secret, "alert:0123456789abcdef:ml-oncall-webhook", int(time.time()), body)
    assert verified(secret.encode(), headers, body)
    assert not verified(secret.encode(), headers, body + b" ")
    assert not verified(b"another secret", headers, body)
    stale = sign(secret, "alert:0123456789abcdef:ml-oncall-webhook", int(time.time()) - 3600, body)
    assert not verified(secret.encode(), stale, body)
    # whsec_ secrets: the key is the decoded base64
    key = b"\x00\x01binary key"
    whsec = "whsec_" + base64.b64encode(key).decode()
    assert verified(key, sign(whsec, "k", int(time.time()), body), body)


def test_readme_keda_trigger_queries_the_desired_replicas_gauge():
    (keda,) = [yaml.safe_load(b) for b in _readme_blocks("yaml") if "ScaledObject" in b]
    (trigger,) = keda["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    # AverageValue (KEDA's default) with threshold 1: the HPA runs ceil(value / 1) replicas
    assert "metricType" not in trigger and trigger["metadata"]["threshold"] == "1"
    query = trigger["metadata"]["query"]
    gauge = Metrics().desired_replicas
    assert gauge._name in query
    assert set(re.findall(r"(\w+)=\"", query)) <= set(gauge._labelnames)


def test_fingerprint_is_the_dedup_key_the_readme_describes():
    labels = {"alertname": "FeatureDrift", "model": "credit", "model_version": "7", "severity": "warning",
              "feature": "income", "role": "feature"}
    fp = fingerprint(labels)
    assert re.fullmatch(r"[0-9a-f]{16}", fp) and fp == fingerprint(dict(reversed(labels.items())))
