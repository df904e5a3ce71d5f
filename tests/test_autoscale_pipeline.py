"""Autoscaling hooks driven by the serving signals of windows the pipeline closes: the replica
count reaches the (real, loopback) stand-in for the Kubernetes API, and the desired count is
exported."""

from __future__ import annotations

import json

import pytest
from prometheus_client import generate_latest

from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.runner import open_store, run_in_process
from test_autoscale import NS, TOKEN, FakeKube

MINUTE_MS = 60_000
T0 = 1_700_000_040_000  # a minute boundary


def _records(per_window: int, windows: int, replicas: int) -> list[bytes]:
    """``per_window`` records per one-minute window, spread evenly, served by ``replicas``
    replicas in turn."""
    out = []
    for w in range(windows):
        for i in range(per_window):
            t = T0 + w * MINUTE_MS + i * MINUTE_MS // per_window
            out.append(json.dumps({
                "model": "llm", "model_version": "1", "timestamp": t, "request_id": f"r{w}-{i}",
                "features": {"x": float(i % 7)}, "predictions": {"y": float(i % 3)}, "latency_ms": 20.0 + i % 5,
                "serving": {"replica": f"llm-{i % replicas}", "status_code": 200}}).encode())
    return out


@pytest.fixture
def kube(monkeypatch):
    monkeypatch.setenv("IW_TEST_K8S_TOKEN", TOKEN)
    fake = FakeKube(replicas=2)
    yield fake
    fake.stop()


def test_closed_windows_scale_the_deployment_by_the_hpa_formula(tmp_path, kube):
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'a.db'}",
                           window={"length_seconds": 60, "idle_close_seconds": 3600},
                           hooks={"autoscale": [{
                               "name": "llm-replicas", "model": "llm", "signal": "throughput_per_replica_rps",
                               "target_value": 10.0, "min_replicas": 1, "max_replicas": 8, "apply": "kubernetes",
                               "scale_down_stabilization_seconds": 0,
                               "kubernetes": {"namespace": NS, "name": "llm", "api_url": kube.url,
                                              "bearer_token": {"env": "IW_TEST_K8S_TOKEN"}}}]})
    store = open_store(settings)
    metrics = Metrics()
    # 3,000 records a minute on 2 replicas: 25 requests/s per replica against a target of 10
    run_in_process(settings, _records(3000, 2, 2), store, metrics, source_name="s")
    patches = [json.loads(r["body"]) for r in kube.calls("PATCH")]
    # the first window: ceil(2 x 25 / 10) = 5; the second sees 5 current replicas and the
    # logged 2 make 25/s each again: ceil(5 x 2.5) = 13, clamped to 8
    assert patches == [{"spec": {"replicas": 5}}, {"spec": {"replicas": 8}}]
    assert all(r["headers"]["content-type"] == "application/merge-patch+json" for r in kube.calls("PATCH"))
    text = generate_latest(metrics.registry).decode()
    assert f'inferwatch_desired_replicas{{model="llm",target="{NS}/Deployment/llm"}} 8.0' in text
    assert 'inferwatch_autoscale_decisions_total{hook="llm-replicas",reason="scaled"} 2.0' in text
    store.close()


def test_an_hpa_owning_the_target_leaves_it_alone_and_only_exports(tmp_path, kube):
    kube.add_hpa("llm-hpa", "Deployment", "llm")
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'a.db'}",
                           window={"length_seconds": 60, "idle_close_seconds": 3600},
                           hooks={"autoscale": [{
                               "name": "llm-replicas", "model": "llm", "signal": "throughput_per_replica_rps",
                               "target_value": 10.0, "max_replicas": 8, "apply": "kubernetes",
                               "kubernetes": {"namespace": NS, "name": "llm", "api_url": kube.url,
                                              "bearer_token": {"env": "IW_TEST_K8S_TOKEN"}}}]})
    store = open_store(settings)
    metrics = Metrics()
    run_in_process(settings, _records(3000, 1, 2), store, metrics, source_name="s")
    assert kube.calls("PATCH") == [] and kube.replicas == 2
    text = generate_latest(metrics.registry).decode()
    assert f'inferwatch_desired_replicas{{model="llm",target="{NS}/Deployment/llm"}} 5.0' in text
    assert 'inferwatch_autoscale_decisions_total{hook="llm-replicas",reason="owned_by_hpa"} 1.0' in text
    store.close()
