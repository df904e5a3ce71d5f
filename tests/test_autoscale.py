"""Autoscaling hooks: the HPA formula, stabilisation windows, and the Kubernetes scale
subresource through the official client against a real HTTP server on 127.0.0.1 that stands in
for the API server."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import generate_latest

from alerting.autoscale import (
    AutoscaleConfig,
    Autoscaler,
    KubernetesScaler,
    KubernetesTarget,
    Owner,
    ScaleError,
    Stabilizer,
    desired_replicas,
    export_decision,
    export_error,
)
from inferwatch.metrics import Metrics

TOKEN = "k8s-token-for-tests"
NS = "serving"


# --- the formula --------------------------------------------------------------------------------

def test_formula_examples_from_the_hpa_documentation():
    # "if the current metric value is 200m, and the desired value is 100m, the number of replicas
    # will be doubled, since 200.0 / 100.0 == 2.0"
    assert desired_replicas(3, 200, 100, max_replicas=100) == 6
    # "If the current value is instead 50m, you'll halve the number of replicas"
    assert desired_replicas(4, 50, 100, max_replicas=100) == 2
    # walkthrough: 1 replica at 305% CPU against a 50% target: ceil(1 * 305 / 50) = ceil(6.1) = 7
    assert desired_replicas(1, 305, 50, max_replicas=10) == 7
    # ceil rounds a fraction of a replica up: 3 * 130 / 100 = 3.9 -> 4; 3 * 70 / 100 = 2.1 -> 3
    assert desired_replicas(3, 130, 100, max_replicas=100) == 4
    assert desired_replicas(3, 70, 100, max_replicas=100) == 3


def test_tolerance_keeps_the_count_inside_the_band_only():
    # ratios that are exact binary fractions, so the band edge is tested exactly
    assert desired_replicas(4, 125, 100, tolerance=0.25, max_replicas=100) == 4   # ratio 1.25: on the edge
    assert desired_replicas(4, 75, 100, tolerance=0.25, max_replicas=100) == 4    # ratio 0.75: on the edge
    assert desired_replicas(4, 126, 100, tolerance=0.25, max_replicas=100) == 6   # ceil(5.04)
    assert desired_replicas(4, 74, 100, tolerance=0.25, max_replicas=100) == 3    # ceil(2.96)
    # default tolerance 0.1: 10 replicas at ratio 1.05 stay, at 1.15 go to ceil(11.5) = 12
    assert desired_replicas(10, 105, 100, max_replicas=100) == 10
    assert desired_replicas(10, 115, 100, max_replicas=100) == 12
    assert desired_replicas(10, 115, 100, tolerance=0.0, max_replicas=100) == 12
    assert desired_replicas(10, 100, 100, tolerance=0.0, max_replicas=100) == 10


def test_clamping_and_float_noise():
    assert desired_replicas(4, 300, 100, min_replicas=2, max_replicas=5) == 5     # 12 -> max
    assert desired_replicas(4, 10, 100, min_replicas=2, max_replicas=5) == 2      # ceil(0.4) = 1 -> min
    assert desired_replicas(8, 100, 100, min_replicas=2, max_replicas=5) == 5     # above max, ratio 1
    assert desired_replicas(1, 100, 100, min_replicas=3, max_replicas=5) == 3     # below min, ratio 1
    assert desired_replicas(2, 0, 100, min_replicas=0, max_replicas=5) == 0       # no load, min 0
    # 2.1 / 0.3 is 7.000000000000001 in floats: still 7 replicas, not 8
    assert 2.1 / 0.3 > 7
    assert desired_replicas(1, 2.1, 0.3, max_replicas=100) == 7
    assert desired_replicas(2, 2.7, 0.3, max_replicas=100) == 18


def test_insufficient_data_and_invalid_input():
    assert desired_replicas(3, None, 1.0, max_replicas=5) is None
    assert desired_replicas(3, math.nan, 1.0, max_replicas=5) is None
    assert desired_replicas(3, math.inf, 1.0, max_replicas=5) is None
    assert desired_replicas(0, 50.0, 1.0, max_replicas=5) is None     # nothing serves: no per-replica load
    with pytest.raises(ValueError, match="target"):
        desired_replicas(3, 1.0, 0.0, max_replicas=5)
    with pytest.raises(ValueError, match="target"):
        desired_replicas(3, 1.0, -2.0, max_replicas=5)
    with pytest.raises(ValueError, match="observed"):
        desired_replicas(3, -1.0, 1.0, max_replicas=5)
    with pytest.raises(ValueError, match="current"):
        desired_replicas(-1, 1.0, 1.0, max_replicas=5)
    with pytest.raises(ValueError, match="min_replicas"):
        desired_replicas(3, 1.0, 1.0, min_replicas=6, max_replicas=5)


# --- stabilisation ------------------------------------------------------------------------------

def test_scale_down_window_applies_the_highest_recent_recommendation():
    s = Stabilizer(scale_down_window_ms=300_000, scale_up_window_ms=0)
    assert s.stabilize(5, 5, 0) == 5
    assert s.stabilize(5, 3, 60_000) == 5       # 5 (t=0) still in the window
    assert s.stabilize(5, 2, 120_000) == 5
    # t=300 s: the window is (0, 300 s], so t=0 drops out; highest left is 3 (t=60 s)
    assert s.stabilize(5, 2, 300_000) == 3
    # t=360 s: window (60 s, 360 s] holds 2, 2 and 2
    assert s.stabilize(3, 2, 360_000) == 2
    # a scale-up goes through at once (up window 0)
    assert s.stabilize(2, 8, 420_000) == 8


def test_scale_up_window_applies_the_lowest_recent_recommendation():
    s = Stabilizer(scale_down_window_ms=0, scale_up_window_ms=120_000)
    assert s.stabilize(2, 6, 0) == 6            # nothing earlier in the window
    assert s.stabilize(6, 10, 30_000) == 6      # 6 (t=0) holds it back
    assert s.stabilize(6, 12, 130_000) == 10    # window (10 s, 130 s]: lowest is 10 (t=30 s)
    assert s.stabilize(10, 3, 140_000) == 3     # scale-down goes through at once (down window 0)


def test_stabilizer_keeps_current_between_the_bounds():
    s = Stabilizer(scale_down_window_ms=300_000, scale_up_window_ms=300_000)
    assert s.stabilize(4, 4, 0) == 4
    assert s.stabilize(4, 8, 10_000) == 4       # up: min(4, 8) = 4
    assert s.stabilize(4, 1, 20_000) == 4       # down: max(4, 8, 1) = 8, up: min(...) = 1: stays 4
    with pytest.raises(ValueError):
        Stabilizer(-1, 0)


# --- a stand-in Kubernetes API server -----------------------------------------------------------

class FakeKube:
    """A real HTTP server on 127.0.0.1 answering the calls the scaler makes, like the API server:
    scale subresource GET/PATCH, HPA list, KEDA ScaledObject list (404 while ``scaledobjects``
    is None: KEDA not installed). Every request is recorded; a request without the bearer token
    gets 401, a PATCH that is not a merge patch 415, a body other than the replica patch 422."""

    def __init__(self, replicas: int = 2, kind: str = "Deployment", name: str = "llm") -> None:
        self.replicas = replicas
        self.resource = "deployments" if kind == "Deployment" else "statefulsets"
        self.name = name
        self.hpas: list[dict] = []
        self.scaledobjects: list[dict] | None = None
        self.fail: dict[tuple[str, str], int] = {}     # (method, path) -> status to answer
        self.delay_s = 0.0
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass    # the client gave up (timeout test)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._answer(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": message, "reason": reason, "code": code})

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                # header names are case-insensitive: recorded in lower case
                fake.requests.append({"method": method, "path": self.path,
                                      "headers": {k.lower(): v for k, v in self.headers.items()},
                                      "body": raw.decode()})
                if fake.delay_s:
                    time.sleep(fake.delay_s)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._status(401, "Unauthorized", "Unauthorized")
                if (method, self.path) in fake.fail:
                    return self._status(fake.fail[method, self.path], "InternalError", "injected failure")
                scale_path = f"/apis/apps/v1/namespaces/{NS}/{fake.resource}/{fake.name}/scale"
                if self.path == scale_path and method == "GET":
                    return self._answer(200, fake.scale())
                if self.path == scale_path and method == "PATCH":
                    if self.headers.get("Content-Type") != "application/merge-patch+json":
                        return self._status(415, "UnsupportedMediaType", self.headers.get("Content-Type", ""))
                    body = json.loads(raw)
                    if set(body) != {"spec"} or set(body["spec"]) != {"replicas"} \
                            or type(body["spec"]["replicas"]) is not int:
                        return self._status(422, "Invalid", "only spec.replicas may be patched here")
                    fake.replicas = body["spec"]["replicas"]
                    return self._answer(200, fake.scale())
                if self.path == f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers" and method == "GET":
                    return self._answer(200, {"kind": "HorizontalPodAutoscalerList", "apiVersion": "autoscaling/v2",
                                              "metadata": {"resourceVersion": "7"}, "items": fake.hpas})
                if self.path == f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects" and method == "GET":
                    if fake.scaledobjects is None:
                        return self._status(404, "NotFound", "the server could not find the requested resource")
                    return self._answer(200, {"kind": "ScaledObjectList", "apiVersion": "keda.sh/v1alpha1",
                                              "metadata": {"resourceVersion": "7"}, "items": fake.scaledobjects})
                return self._status(404, "NotFound", f"no route {method} {self.path}")

            def do_GET(self):
                self._handle("GET")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        # stops itself even if a test forgets to
        self._guard = threading.Timer(60, self.stop)
        self._guard.daemon = True
        self._guard.start()

    def scale(self) -> dict:
        spec = {"replicas": self.replicas} if self.replicas else {}   # omitempty, as the API server
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": self.name, "namespace": NS, "resourceVersion": "42"},
                "spec": spec, "status": {"replicas": self.replicas, "selector": f"app={self.name}"}}

    def add_hpa(self, name: str, kind: str, target: str) -> None:
        self.hpas.append({
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 60}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2}})

    def add_scaledobject(self, name: str, target: str, kind: str | None = None) -> None:
        if self.scaledobjects is None:
            self.scaledobjects = []
        ref = {"name": target} if kind is None else {"name": target, "kind": kind, "apiVersion": "apps/v1"}
        self.scaledobjects.append({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": ref, "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": "http://prometheus:9090", "query": "inferwatch_desired_replicas", "threshold": "1"}}]}})

    def calls(self, method: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method]

    def stop(self) -> None:
        self._guard.cancel()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kube():
    fake = FakeKube()
    yield fake
    fake.stop()


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("IW_TEST_K8S_TOKEN", TOKEN)


def _config(url: str, apply: str = "kubernetes", kind: str = "Deployment", **over) -> AutoscaleConfig:
    data = {"name": "llm-replicas", "model": "llm", "signal": "throughput_per_replica_rps", "target_value": 10.0,
            "min_replicas": 1, "max_replicas": 8, "apply": apply,
            "kubernetes": {"namespace": NS, "kind": kind, "name": "llm", "api_url": url,
                           "bearer_token": {"env": "IW_TEST_K8S_TOKEN"}, "timeout_seconds": 2.0}}
    data.update(over)
    return AutoscaleConfig.model_validate(data)


def _autoscaler(cfg: AutoscaleConfig) -> tuple[Autoscaler, KubernetesScaler]:
    assert cfg.kubernetes is not None
    scaler = KubernetesScaler(cfg.kubernetes)
    return Autoscaler(cfg, scaler), scaler


# --- Kubernetes mode ----------------------------------------------------------------------------

def test_scale_up_patches_the_scale_subresource_by_merge_patch(kube, token_env):
    auto, scaler = _autoscaler(_config(kube.url))
    # 2 replicas at 25 rps each against 10: ceil(2 * 2.5) = 5
    d = auto.evaluate(25.0, now_ms=1_000_000)
    scaler.close()
    assert (d.current, d.recommended, d.desired, d.applied, d.reason) == (2, 5, 5, True, "scaled")
    assert d.target == "serving/Deployment/llm" and d.owner is None
    scale = f"/apis/apps/v1/namespaces/{NS}/deployments/llm/scale"
    assert [(r["method"], r["path"]) for r in kube.requests] == [
        ("GET", scale),
        ("GET", f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects"),      # 404: KEDA not installed
        ("GET", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"),
        ("PATCH", scale)]
    patch = kube.calls("PATCH")[0]
    assert patch["headers"]["content-type"] == "application/merge-patch+json"
    assert patch["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(patch["body"]) == {"spec": {"replicas": 5}}
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in kube.requests)
    assert kube.replicas == 5


def test_client_default_patch_type_is_not_merge_patch(kube, token_env):
    # why set_replicas forces the content type: left alone, the client sends a dict body as a
    # strategic merge patch (the fake answers 415 to anything but a merge patch)
    from kubernetes import client

    cfg = client.Configuration(host=kube.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"})
    with client.ApiClient(cfg) as api, pytest.raises(client.exceptions.ApiException) as info:
        client.AppsV1Api(api).patch_namespaced_deployment_scale("llm", NS, {"spec": {"replicas": 3}},
                                                                _request_timeout=2)
    assert info.value.status == 415
    assert kube.calls("PATCH")[0]["headers"]["content-type"] == "application/strategic-merge-patch+json"
    assert kube.replicas == 2


def test_statefulset_uses_its_own_scale_path(token_env):
    fake = FakeKube(replicas=4, kind="StatefulSet")
    try:
        auto, scaler = _autoscaler(_config(fake.url, kind="StatefulSet"))
        d = auto.evaluate(5.0, now_ms=0)       # ratio 0.5: 4 -> 2, down window 300 s but no history
        scaler.close()
    finally:
        fake.stop()
    assert (d.desired, d.reason) == (2, "scaled")
    patch = fake.calls("PATCH")[0]
    assert patch["path"] == f"/apis/apps/v1/namespaces/{NS}/statefulsets/llm/scale"
    assert json.loads(patch["body"]) == {"spec": {"replicas": 2}}
    assert fake.replicas == 2


def test_within_tolerance_and_stabilizing_send_no_patch(kube, token_env):
    auto, scaler = _autoscaler(_config(kube.url))
    d1 = auto.evaluate(10.5, now_ms=0)        # ratio 1.05
    assert (d1.current, d1.recommended, d1.desired, d1.applied, d1.reason) == (2, 2, 2, False, "within_tolerance")
    d2 = auto.evaluate(4.0, now_ms=60_000)    # ratio 0.4: ceil(0.8) = 1, held at 2 by the 300 s window
    assert (d2.recommended, d2.desired, d2.applied, d2.reason) == (1, 2, False, "stabilizing")
    d3 = auto.evaluate(4.0, now_ms=300_001)   # t=0 (2) left the window; t=60 s (1) and now (1) remain
    scaler.close()
    assert (d3.desired, d3.reason) == (1, "scaled")
    assert [json.loads(r["body"]) for r in kube.calls("PATCH")] == [{"spec": {"replicas": 1}}]


def test_hpa_owner_blocks_the_patch_and_warns_once(kube, token_env, caplog):
    kube.add_hpa("other-hpa", "Deployment", "embedder")          # another target: not an owner
    kube.add_hpa("llm-hpa", "Deployment", "llm")
    auto, scaler = _autoscaler(_config(kube.url))
    with caplog.at_level(logging.WARNING, logger="alerting.autoscale"):
        d1 = auto.evaluate(25.0, now_ms=0)
        d2 = auto.evaluate(30.0, now_ms=15_000)
    scaler.close()
    assert kube.calls("PATCH") == []
    assert kube.replicas == 2
    assert (d1.desired, d1.applied, d1.reason, d1.owner) == (5, False, "owned_by_hpa", Owner("hpa", "llm-hpa"))
    assert (d2.desired, d2.reason) == (6, "owned_by_hpa")                 # ceil(2 * 3.0): still computed
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "llm-hpa" in warnings[0].getMessage() and "serving/Deployment/llm" in warnings[0].getMessage()


def test_hpa_on_a_statefulset_of_the_same_name_is_not_an_owner(kube, token_env):
    kube.add_hpa("sts-hpa", "StatefulSet", "llm")
    auto, scaler = _autoscaler(_config(kube.url))
    d = auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert (d.reason, d.owner) == ("scaled", None)
    assert len(kube.calls("PATCH")) == 1


def test_keda_owner_blocks_the_patch(kube, token_env, caplog):
    kube.add_scaledobject("llm-so", "llm")                             # kind defaults to Deployment
    kube.add_hpa("keda-hpa-llm-so", "Deployment", "llm")              # KEDA's own HPA
    auto, scaler = _autoscaler(_config(kube.url))
    with caplog.at_level(logging.WARNING, logger="alerting.autoscale"):
        d = auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert (d.desired, d.applied, d.reason, d.owner) == (5, False, "owned_by_keda", Owner("keda", "llm-so"))
    assert kube.calls("PATCH") == []
    assert "KEDA ScaledObject llm-so" in caplog.records[0].getMessage()


def test_keda_installed_without_a_scaledobject_for_the_target(kube, token_env):
    kube.add_scaledobject("embedder-so", "embedder")
    kube.add_scaledobject("llm-sts-so", "llm", kind="StatefulSet")
    auto, scaler = _autoscaler(_config(kube.url))
    d = auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert (d.reason, d.desired) == ("scaled", 5)
    assert kube.replicas == 5


def test_owner_gone_patches_again(kube, token_env):
    kube.add_hpa("llm-hpa", "Deployment", "llm")
    auto, scaler = _autoscaler(_config(kube.url))
    assert auto.evaluate(25.0, now_ms=0).reason == "owned_by_hpa"
    kube.hpas.clear()
    d = auto.evaluate(25.0, now_ms=15_000)
    scaler.close()
    assert (d.reason, d.desired) == ("scaled", 5)
    assert kube.replicas == 5


def test_api_down_raises_a_typed_error(token_env):
    fake = FakeKube()
    url = fake.url
    fake.stop()                                  # nothing listens on the port any more
    auto, scaler = _autoscaler(_config(url))
    t0 = time.monotonic()
    with pytest.raises(ScaleError) as info:
        auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert time.monotonic() - t0 < 10
    err = info.value
    assert (err.operation, err.status, err.target, err.decision) == ("read scale", None, "serving/Deployment/llm",
                                                                     None)
    assert "read scale serving/Deployment/llm" in str(err)


def test_slow_api_times_out(kube, token_env):
    kube.delay_s = 3.0
    cfg = _config(kube.url)
    assert cfg.kubernetes is not None
    scaler = KubernetesScaler(cfg.kubernetes.model_copy(update={"timeout_seconds": 0.3}), retries=0)
    t0 = time.monotonic()
    with pytest.raises(ScaleError) as info:
        scaler.current_replicas()
    scaler.close()
    assert time.monotonic() - t0 < 2.5
    assert info.value.operation == "read scale" and info.value.status is None


def test_failed_patch_keeps_the_decision_for_export(kube, token_env):
    kube.fail[("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/llm/scale")] = 500
    auto, scaler = _autoscaler(_config(kube.url))
    with pytest.raises(ScaleError) as info:
        auto.evaluate(25.0, now_ms=0)
    scaler.close()
    err = info.value
    assert (err.operation, err.status) == ("patch scale", 500)
    assert err.decision is not None and (err.decision.desired, err.decision.applied) == (5, False)
    m = Metrics()
    export_error(m, err, "llm-replicas")
    text = generate_latest(m.registry).decode()
    assert 'inferwatch_desired_replicas{model="llm",target="serving/Deployment/llm"} 5.0' in text
    assert 'inferwatch_autoscale_errors_total{hook="llm-replicas",operation="patch scale"} 1.0' in text


def test_forbidden_hpa_list_is_an_error_not_a_patch(kube, token_env):
    kube.fail[("GET", f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers")] = 403
    auto, scaler = _autoscaler(_config(kube.url))
    with pytest.raises(ScaleError) as info:
        auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert (info.value.operation, info.value.status) == ("list HPAs", 403)
    assert kube.calls("PATCH") == []


def test_wrong_token_is_a_401_error(kube, monkeypatch):
    monkeypatch.setenv("IW_TEST_K8S_TOKEN", "not-the-token")
    auto, scaler = _autoscaler(_config(kube.url))
    with pytest.raises(ScaleError) as info:
        auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert info.value.status == 401
    assert kube.requests[0]["headers"]["authorization"] == "Bearer not-the-token"


def test_insufficient_data_makes_no_call(kube, token_env):
    auto, scaler = _autoscaler(_config(kube.url))
    d = auto.evaluate(None, now_ms=0)
    scaler.close()
    assert (d.current, d.desired, d.reason, d.applied) == (None, None, "insufficient_data", False)
    assert kube.requests == []


def test_zero_replicas_is_insufficient_data(token_env):
    fake = FakeKube(replicas=0)
    try:
        auto, scaler = _autoscaler(_config(fake.url))
        d = auto.evaluate(25.0, now_ms=0)
        scaler.close()
    finally:
        fake.stop()
    assert (d.current, d.desired, d.reason) == (0, None, "insufficient_data")
    assert fake.calls("PATCH") == []


# --- metric-only and webhook modes --------------------------------------------------------------

def test_metric_only_exports_without_touching_the_target(kube, token_env):
    # the HPA here is expected (it scales on our metric): no warning, no patch, current read from the API
    kube.add_hpa("llm-hpa", "Deployment", "llm")
    cfg = _config(kube.url, apply="metric_only")
    auto, scaler = _autoscaler(cfg)
    d = auto.evaluate(25.0, now_ms=0)
    scaler.close()
    assert (d.current, d.desired, d.applied, d.reason) == (2, 5, False, "metric_only")
    assert [r["method"] for r in kube.requests] == ["GET"]
    m = Metrics()
    export_decision(m, d)
    export_decision(m, Autoscaler(cfg, None).evaluate(None, now_ms=1))
    text = generate_latest(m.registry).decode()
    assert 'inferwatch_desired_replicas{model="llm",target="serving/Deployment/llm"} 5.0' in text
    assert 'inferwatch_autoscale_decisions_total{hook="llm-replicas",reason="metric_only"} 1.0' in text
    assert 'inferwatch_autoscale_decisions_total{hook="llm-replicas",reason="insufficient_data"} 1.0' in text


def test_metric_only_without_kubernetes_uses_the_given_count():
    cfg = AutoscaleConfig(name="gpu-pool", model="llm", signal="queue_time_p95_seconds", target_value=0.2,
                          max_replicas=20)
    auto = Autoscaler(cfg)
    assert auto.evaluate(0.5, now_ms=0).reason == "insufficient_data"      # no count known yet
    d = auto.evaluate(0.5, now_ms=1_000, current_replicas=4)              # ceil(4 * 2.5) = 10
    assert (d.target, d.current, d.desired) == ("gpu-pool", 4, 10)
    d = auto.evaluate(0.3, now_ms=2_000)                                  # from 10 (last desired): 15
    assert (d.current, d.desired) == (10, 15)


def test_webhook_request(monkeypatch):
    cfg = AutoscaleConfig.model_validate({
        "name": "llm-webhook", "model": "llm", "signal": "latency_p95_seconds", "target_value": 0.5,
        "max_replicas": 10, "apply": "webhook", "webhook": {"url": "http://127.0.0.1:9/scale"},
        "kubernetes": {"namespace": NS, "kind": "Deployment", "name": "llm"}, "webhook_expiry_seconds": 120})
    auto = Autoscaler(cfg)
    d = auto.evaluate(1.2, now_ms=1_764_558_000_000, current_replicas=3)    # ceil(3 * 2.4) = ceil(7.2) = 8
    assert (d.current, d.desired, d.applied, d.reason) == (3, 8, True, "scaled")
    req = auto.webhook_request(d)
    assert req is not None
    assert (req.target, req.method, req.path, req.content_type) == ("llm-webhook", "POST", "", "application/json")
    assert req.idempotency_key == "autoscale:llm-webhook:1764558000000"
    assert req.expires_at_ms == 1_764_558_000_000 + 120_000
    assert json.loads(req.body) == {
        "model": "llm", "target": {"namespace": NS, "kind": "Deployment", "name": "llm"},
        "current_replicas": 3, "desired_replicas": 8, "signal": "latency_p95_seconds", "observed": 1.2,
        "target_value": 0.5}
    # the next decision has its own key; an unchanged count sends nothing
    d2 = auto.evaluate(0.5, now_ms=1_764_558_015_000, current_replicas=8)
    assert d2.reason == "within_tolerance" and auto.webhook_request(d2) is None


# --- configuration ------------------------------------------------------------------------------

@pytest.mark.parametrize("over, words", [
    ({"target_value": 0}, ["'llm-replicas'", "target_value", "greater than 0"]),
    ({"min_replicas": 9}, ["'llm-replicas'", "min_replicas (9) > max_replicas (8)"]),
    ({"signal": "cpu"}, ["'llm-replicas'", "signal"]),
    ({"apply": "webhook"}, ["'llm-replicas'", "webhook: required"]),
    ({"tolerance": 1.5}, ["'llm-replicas'", "tolerance"]),
    ({"scale_down_stabilization_seconds": -1}, ["'llm-replicas'", "scale_down_stabilization_seconds"]),
])
def test_config_errors_name_the_hook_and_key(token_env, over, words):
    with pytest.raises(ValueError) as info:
        _config("http://127.0.0.1:1", **over)
    for w in words:
        assert w in str(info.value)


def test_config_kubernetes_required_and_token_names_its_variable(monkeypatch):
    with pytest.raises(ValueError, match="'h1'.*kubernetes: required"):
        AutoscaleConfig(name="h1", model="m", signal="latency_p95_seconds", target_value=1, max_replicas=3,
                        apply="kubernetes")
    monkeypatch.delenv("IW_TEST_MISSING_TOKEN", raising=False)
    with pytest.raises(ValueError, match="IW_TEST_MISSING_TOKEN"):
        KubernetesTarget.model_validate({"namespace": NS, "name": "llm", "api_url": "https://k8s:6443",
                                         "bearer_token": {"env": "IW_TEST_MISSING_TOKEN"}})
    with pytest.raises(ValueError, match="apply kubernetes needs a scaler"):
        Autoscaler(_config_no_env())


def _config_no_env() -> AutoscaleConfig:
    return AutoscaleConfig(name="h2", model="m", signal="latency_p95_seconds", target_value=1, max_replicas=3,
                           apply="kubernetes", kubernetes=KubernetesTarget(namespace=NS, name="llm"))


def test_no_connection_configuration_is_a_scale_error(tmp_path, monkeypatch):
    # outside a cluster with no api_url and no kubeconfig
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ScaleError, match="cannot configure"):
        KubernetesScaler(KubernetesTarget(namespace=NS, name="llm"))
    with pytest.raises(ScaleError, match="cannot configure"):
        KubernetesScaler(KubernetesTarget(namespace=NS, name="llm", kubeconfig=tmp_path / "absent"))


def test_kubeconfig_file_connection(kube, tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": {"server": kube.url}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u", "namespace": NS}}]}))
    scaler = KubernetesScaler(KubernetesTarget(namespace=NS, name="llm", kubeconfig=kc))
    assert scaler.current_replicas() == 2
    scaler.set_replicas(3)
    scaler.close()
    assert kube.replicas == 3
    assert kube.calls("PATCH")[0]["headers"]["content-type"] == "application/merge-patch+json"
