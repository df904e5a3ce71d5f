"""Autoscaling hooks: desired replicas of a model server from the serving signals in its logs.

One hook watches one model's serving signal (computed per window by
:mod:`detectors.serving`) and computes the replica count that brings it back to a target with
the Kubernetes HorizontalPodAutoscaler algorithm: ``ceil(current × observed / target)``, kept at
``current`` while the ratio is within a tolerance, stabilised over a window like the HPA's
``behavior.scaleDown/scaleUp.stabilizationWindowSeconds`` and clamped to ``[min, max]``
(https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/).

The result is applied in one of three ways (``apply``):

- ``kubernetes``: patch the target's scale subresource
  (``PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`` with
  ``{"spec": {"replicas": N}}`` as ``application/merge-patch+json``) through the official
  ``kubernetes`` client. When an HPA or a KEDA ScaledObject already owns the target, a direct
  patch would be overridden within seconds and the two controllers would fight, so inferwatch
  logs a warning once, never patches and only exports the number.
- ``webhook``: an :class:`~alerting.events.OutgoingRequest` for the outbox
  (:meth:`Autoscaler.webhook_request`).
- ``metric_only``: only the gauge ``inferwatch_desired_replicas{model, target}`` (for a KEDA
  ``prometheus`` trigger or an HPA External metric through prometheus-adapter).

RBAC the ``kubernetes`` mode needs in the target's namespace: ``get`` and ``patch`` on
``deployments/scale`` (or ``statefulsets/scale``), ``list`` on
``horizontalpodautoscalers.autoscaling`` and on ``scaledobjects.keda.sh``.

Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerting.endpoint import Endpoint, Secret
from alerting.events import OutgoingRequest

if TYPE_CHECKING:
    from inferwatch.metrics import Metrics

log = logging.getLogger(__name__)

SIGNALS = ("throughput_per_replica_rps", "latency_p95_seconds", "queue_time_p95_seconds", "concurrency_per_replica")

REASONS = ("scaled", "within_tolerance", "stabilizing", "owned_by_hpa", "owned_by_keda", "metric_only",
           "insufficient_data")

MERGE_PATCH = "application/merge-patch+json"


# --- the HPA algorithm --------------------------------------------------------------------------

def desired_replicas(current: int, observed: float | None, target: float, tolerance: float = 0.1,
                     min_replicas: int = 1, *, max_replicas: int) -> int | None:
    """Replicas that bring ``observed`` to ``target``, by the Kubernetes HPA algorithm.

    ``ratio = observed / target``; when ``|ratio − 1| ≤ tolerance`` the count stays ``current``,
    else it is ``ceil(current × ratio)``; the result is then clamped to
    ``[min_replicas, max_replicas]`` (so a count outside the bounds is brought inside even when the
    ratio is within tolerance, as the HPA does). A product within 1e-9 of an integer counts as
    that integer, so float noise (``2.1 / 0.3 = 7.000000000000001``) never adds a replica.

    Args:
        current: replicas now (≥ 0).
        observed: the signal's value (≥ 0, same unit as ``target``); None or NaN: unknown.
        target: the value to hold the signal at (> 0).
        tolerance: relative dead band around 1.0 (≥ 0; the HPA default is 0.1).
        min_replicas: lower bound (≥ 0).
        max_replicas: upper bound (≥ ``min_replicas``, ≥ 1).

    Returns:
        the desired count, or None for "insufficient data": ``observed`` is None, NaN or
        infinite, or ``current`` is 0 (nothing serves, so the logs say nothing about the load per
        replica; starting from zero is left to KEDA's activation or to a person, as the HPA itself
        does not scale a target that is at zero).

    Raises:
        ValueError: ``target`` ≤ 0 or not finite, ``current`` < 0, ``observed`` < 0,
            ``tolerance`` < 0, or bounds out of order.
    """
    if not (math.isfinite(target) and target > 0):
        raise ValueError(f"target must be a finite number > 0, got {target}")
    if current < 0:
        raise ValueError(f"current replicas must be >= 0, got {current}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if min_replicas < 0 or max_replicas < max(min_replicas, 1):
        raise ValueError(f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                         f"{min_replicas}..{max_replicas}")
    if observed is None or not math.isfinite(observed) or current == 0:
        return None
    if observed < 0:
        raise ValueError(f"observed must be >= 0, got {observed}")
    ratio = observed / target
    wanted = current if abs(ratio - 1.0) <= tolerance else math.ceil(round(current * ratio, 9))
    return min(max(wanted, min_replicas), max_replicas)


class Stabilizer:
    """The HPA's stabilisation windows over a stream of recommendations.

    A scale-down goes only as low as the highest recommendation within the scale-down window;
    a scale-up goes only as high as the lowest recommendation within the scale-up window. With
    the defaults (300 s down, 0 s up) the target grows at once and shrinks only after five
    minutes of lower recommendations. This mirrors the HPA controller: the result is ``current``
    moved up to the window's lowest up-recommendation or down to its highest down-recommendation.

    No clock: every call passes the time. One instance per target; not thread-safe.
    """

    def __init__(self, scale_down_window_ms: int = 300_000, scale_up_window_ms: int = 0) -> None:
        """Windows in milliseconds (≥ 0).

        Raises:
            ValueError: a negative window.
        """
        if scale_down_window_ms < 0 or scale_up_window_ms < 0:
            raise ValueError("stabilisation windows must be >= 0")
        self.scale_down_window_ms = scale_down_window_ms
        self.scale_up_window_ms = scale_up_window_ms
        self._history: list[tuple[int, int]] = []  # (time ms, recommendation)

    def stabilize(self, current: int, recommendation: int, now_ms: int) -> int:
        """Record ``recommendation`` at ``now_ms`` and return the replica count to apply.

        Recommendations strictly newer than ``now_ms − window`` count (the current one always
        does). Returns ``current`` when the window holds it back entirely.
        """
        up_cutoff = now_ms - self.scale_up_window_ms
        down_cutoff = now_ms - self.scale_down_window_ms
        up = down = recommendation
        for at, rec in self._history:
            if at > up_cutoff:
                up = min(up, rec)
            if at > down_cutoff:
                down = max(down, rec)
        result = current
        if result < up:
            result = up
        if result > down:
            result = down
        oldest = now_ms - max(self.scale_up_window_ms, self.scale_down_window_ms)
        self._history = [(at, rec) for at, rec in self._history if at > oldest]
        self._history.append((now_ms, recommendation))
        return result


# --- configuration ------------------------------------------------------------------------------

class KubernetesTarget(BaseModel):
    """The workload to scale and how to reach its API server.

    Connection, first that applies: ``api_url`` (with ``bearer_token`` when the server needs one;
    out-of-cluster or ``kubectl proxy``), else the ``kubeconfig`` file (its current context),
    else the in-cluster service account.

    Attributes:
        namespace: the workload's namespace.
        kind: ``Deployment`` or ``StatefulSet``.
        name: the workload's name.
        api_url: API server base URL, ``http(s)://host:port``.
        bearer_token: sent as ``Authorization: Bearer`` (only with ``api_url``).
        kubeconfig: path of a kubeconfig file.
        verify_tls: verify the API server's certificate (only with ``api_url``).
        ca_file: CA bundle for that verification (only with ``api_url``); default: the
            system's.
        timeout_seconds: connect and read timeout of each API call (> 0).
    """

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field(min_length=1)
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"
    name: str = Field(min_length=1)
    api_url: str | None = None
    bearer_token: Secret | None = None
    kubeconfig: Path | None = None
    verify_tls: bool = True
    ca_file: Path | None = None
    timeout_seconds: float = Field(5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesTarget:
        if self.api_url is not None and not self.api_url.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        if self.api_url is None and (self.bearer_token is not None or self.ca_file is not None):
            raise ValueError("bearer_token and ca_file go with api_url")
        return self

    @property
    def label(self) -> str:
        """``namespace/kind/name``, e.g. ``serving/Deployment/llm``."""
        return f"{self.namespace}/{self.kind}/{self.name}"


class AutoscaleConfig(BaseModel):
    """One autoscaling hook.

    Attributes:
        name: the hook's name (the outbox target of its webhook calls; a metric label).
        model: the model whose serving signals drive it.
        signal: the serving signal compared with ``target_value`` (values from
            :func:`detectors.serving.serving_signals`):

            - ``throughput_per_replica_rps``: records per second per serving replica;
            - ``latency_p95_seconds``: 95th percentile end-to-end latency, seconds;
            - ``queue_time_p95_seconds``: 95th percentile time queued before serving, seconds;
            - ``concurrency_per_replica``: requests in flight per replica (throughput × mean
              latency).

            The per-replica signals follow the HPA's assumption that load spreads evenly over
            replicas; latency and queue time only approximately shrink in proportion to added
            replicas, so give them a generous tolerance.
        target_value: the value to hold the signal at (> 0, the signal's unit).
        tolerance: relative dead band around the target (0–1; 0.1 as in the HPA).
        min_replicas, max_replicas: bounds (0 ≤ min ≤ max, max ≥ 1).
        scale_down_stabilization_seconds: scale-down window (0–3600; 300 as in the HPA).
        scale_up_stabilization_seconds: scale-up window (0–3600; 0 as in the HPA).
        apply: ``kubernetes`` (patch the scale subresource), ``webhook`` (POST to ``webhook``)
            or ``metric_only`` (only export ``inferwatch_desired_replicas``).
        kubernetes: the workload; required for ``kubernetes``; with ``webhook`` it names the
            target in the body; with ``metric_only`` it is not contacted (the current count
            comes from the distinct ``serving.replica`` values of the window).
        webhook: the receiver; required for ``webhook``.
        webhook_expiry_seconds: a webhook call not delivered within this long is given up (a late
            scale order is stale).

    Raises:
        ValueError: (at validation) a bad or inconsistent value; the message names the hook and
            the key.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    model: str = Field(min_length=1)
    signal: Literal["throughput_per_replica_rps", "latency_p95_seconds", "queue_time_p95_seconds",
                    "concurrency_per_replica"]
    target_value: float = Field(gt=0, allow_inf_nan=False)
    tolerance: float = Field(0.1, ge=0, le=1)
    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(ge=1)
    scale_down_stabilization_seconds: int = Field(300, ge=0, le=3600)
    scale_up_stabilization_seconds: int = Field(0, ge=0, le=3600)
    apply: Literal["kubernetes", "webhook", "metric_only"] = "metric_only"
    kubernetes: KubernetesTarget | None = None
    webhook: Endpoint | None = None
    webhook_expiry_seconds: int = Field(300, gt=0, le=86400)

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_hook(cls, data: Any, handler: Any) -> AutoscaleConfig:
        # pydantic names the key but not which hook; with many hooks both are needed
        hook = data.get("name", "?") if isinstance(data, dict) else getattr(data, "name", "?")
        try:
            cfg = handler(data)
        except ValidationError as exc:
            parts = [f"{'.'.join(str(p) for p in e['loc']) or '(hook)'}: {e['msg']}" for e in exc.errors()]
            raise ValueError(f"autoscale hook {hook!r}: " + "; ".join(parts)) from None
        if cfg.min_replicas > cfg.max_replicas:
            raise ValueError(f"autoscale hook {hook!r}: min_replicas ({cfg.min_replicas}) > max_replicas "
                             f"({cfg.max_replicas})")
        if cfg.apply == "kubernetes" and cfg.kubernetes is None:
            raise ValueError(f"autoscale hook {hook!r}: kubernetes: required when apply is kubernetes")
        if cfg.apply == "webhook" and cfg.webhook is None:
            raise ValueError(f"autoscale hook {hook!r}: webhook: required when apply is webhook")
        return cfg

    @property
    def target_label(self) -> str:
        """The ``target`` label of the gauge: ``namespace/kind/name``, else the hook name."""
        return self.kubernetes.label if self.kubernetes is not None else self.name


# --- decisions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Owner:
    """Another autoscaler that owns a workload: ``kind`` is ``hpa`` or ``keda``, ``name`` the
    HorizontalPodAutoscaler's or ScaledObject's name (same namespace as the workload)."""

    kind: Literal["hpa", "keda"]
    name: str

    def __str__(self) -> str:
        return f"{'HorizontalPodAutoscaler' if self.kind == 'hpa' else 'KEDA ScaledObject'} {self.name}"


@dataclass(frozen=True)
class ScaleDecision:
    """What one evaluation decided.

    Attributes:
        hook: the hook's name.
        model: the model whose signal drove it.
        target: ``namespace/kind/name`` or the hook name (the gauge's ``target`` label).
        at_ms: when it was decided.
        signal: the signal's name; ``observed`` its value (None: unknown); ``target_value`` the
            value it is held at.
        current: replicas before (None when unknown).
        recommended: the HPA formula's count before stabilisation (None: insufficient data).
        desired: the count after stabilisation, what should run (None: insufficient data).
        applied: True when the change goes out: patched (``kubernetes``) or due to be sent as
            :meth:`Autoscaler.webhook_request` (``webhook``).
        reason: ``scaled`` (desired ≠ current and applied), ``within_tolerance`` (the formula
            keeps the current count: ratio within tolerance, or min/max hold it), ``stabilizing``
            (a window holds a change back), ``owned_by_hpa`` / ``owned_by_keda`` (another
            autoscaler owns the target; not patched), ``metric_only`` (only exported),
            ``insufficient_data`` (no signal value, or no replicas to measure).
        owner: the HPA or ScaledObject that owns the target, when one does.
    """

    hook: str
    model: str
    target: str
    at_ms: int
    signal: str
    observed: float | None
    target_value: float
    current: int | None
    recommended: int | None
    desired: int | None
    applied: bool
    reason: str
    owner: Owner | None = None


class ScaleError(RuntimeError):
    """A Kubernetes API call failed (transport error, timeout, non-2xx answer or an answer
    without the expected fields). The caller counts it and carries on; the next evaluation tries
    again.

    Attributes:
        target: ``namespace/kind/name``.
        operation: ``read scale``, ``patch scale``, ``list HPAs``, ``list ScaledObjects`` or
            ``connect``.
        status: the HTTP status, None for transport errors.
        decision: when the patch failed, the decision that was being applied (desired computed,
            ``applied`` False), so the caller can still export it.
    """

    def __init__(self, message: str, target: str, operation: str, status: int | None = None) -> None:
        super().__init__(message)
        self.target = target
        self.operation = operation
        self.status = status
        self.decision: ScaleDecision | None = None


class Scaler(Protocol):
    """What :class:`Autoscaler` needs from the thing that reads and sets replicas
    (:class:`KubernetesScaler`)."""

    def current_replicas(self) -> int: ...

    def set_replicas(self, replicas: int) -> None: ...

    def owner(self) -> Owner | None: ...


class Autoscaler:
    """Evaluates one hook: signal value in, :class:`ScaleDecision` out, the scale applied.

    Args:
        config: the hook.
        scaler: reads the current count (and, for ``apply: kubernetes``, detects an owner and
            patches); required for ``kubernetes``, optional otherwise.

    Not thread-safe: one evaluation at a time per hook.
    """

    def __init__(self, config: AutoscaleConfig, scaler: Scaler | None = None) -> None:
        if config.apply == "kubernetes" and scaler is None:
            raise ValueError(f"autoscale hook {config.name!r}: apply kubernetes needs a scaler")
        self.config = config
        self.scaler = scaler
        self.stabilizer = Stabilizer(config.scale_down_stabilization_seconds * 1000,
                                     config.scale_up_stabilization_seconds * 1000)
        self._last_desired: int | None = None
        self._warned_owner: Owner | None = None

    def evaluate(self, observed: float | None, now_ms: int, *, current_replicas: int | None = None) -> ScaleDecision:
        """Decide (and for ``apply: kubernetes`` apply) the replica count for ``observed``.

        The current count comes from the scaler when there is one; else from
        ``current_replicas`` (for example the distinct ``serving.replica`` values of the window);
        else from the previous decision's desired count (assumed applied by the webhook's
        receiver). With none of them the decision is ``insufficient_data``.

        Args:
            observed: the hook's signal in the latest window (None: too few records).
            now_ms: the decision time (drives the stabilisation windows and the idempotency key).
            current_replicas: replicas now, when no scaler reads them (≥ 0).

        Returns:
            the decision; ``desired`` is exported even when an owner stops the patch.

        Raises:
            ScaleError: the Kubernetes API failed (``decision`` set when only the patch did).
        """
        c = self.config

        def decision(current: int | None, recommended: int | None, desired: int | None, applied: bool,
                     reason: str, owner: Owner | None = None) -> ScaleDecision:
            return ScaleDecision(hook=c.name, model=c.model, target=c.target_label, at_ms=now_ms, signal=c.signal,
                                 observed=observed, target_value=c.target_value, current=current,
                                 recommended=recommended, desired=desired, applied=applied, reason=reason,
                                 owner=owner)

        if observed is None or not math.isfinite(observed):
            return decision(None, None, None, False, "insufficient_data")
        if self.scaler is not None:
            current = self.scaler.current_replicas()
        elif current_replicas is not None:
            current = current_replicas
        else:
            current = self._last_desired
        recommended = None if current is None else desired_replicas(
            current, observed, c.target_value, c.tolerance, c.min_replicas, max_replicas=c.max_replicas)
        if current is None or recommended is None:
            return decision(current, None, None, False, "insufficient_data")
        desired = self.stabilizer.stabilize(current, recommended, now_ms)
        self._last_desired = desired

        if c.apply == "metric_only":
            return decision(current, recommended, desired, False, "metric_only")
        if c.apply == "kubernetes":
            assert self.scaler is not None
            owner = self.scaler.owner()
            self._note_owner(owner)
            if owner is not None:
                return decision(current, recommended, desired, False, f"owned_by_{owner.kind}", owner)
        if desired == current:
            reason = "within_tolerance" if recommended == current else "stabilizing"
            return decision(current, recommended, desired, False, reason)
        if c.apply == "kubernetes":
            assert self.scaler is not None
            try:
                self.scaler.set_replicas(desired)
            except ScaleError as exc:
                exc.decision = decision(current, recommended, desired, False, "scaled")
                raise
        return decision(current, recommended, desired, True, "scaled")

    def _note_owner(self, owner: Owner | None) -> None:
        # once per owner: a warning every evaluation would flood the log
        if owner is not None and owner != self._warned_owner:
            log.warning("autoscale hook %s: %s is owned by %s; not patching it, only exporting "
                        "inferwatch_desired_replicas", self.config.name, self.config.target_label, owner)
        elif owner is None and self._warned_owner is not None:
            log.info("autoscale hook %s: %s is no longer owned by %s; patching it again",
                     self.config.name, self.config.target_label, self._warned_owner)
        self._warned_owner = owner

    def webhook_request(self, decision: ScaleDecision) -> OutgoingRequest | None:
        """The outbox entry announcing ``decision`` to the hook's webhook (``apply: webhook``).

        ``POST`` to the webhook URL with body ``{model, target: {namespace, kind, name} | null,
        current_replicas, desired_replicas, signal, observed, target_value}``; idempotency key
        ``autoscale:<hook>:<decision time ms>``; given up after ``webhook_expiry_seconds``.

        Returns:
            the request, or None when there is nothing to send (the decision did not scale, or
            the hook does not use a webhook).
        """
        c = self.config
        if c.apply != "webhook" or not decision.applied or decision.hook != c.name:
            return None
        k = c.kubernetes
        body = {
            "model": decision.model,
            "target": None if k is None else {"namespace": k.namespace, "kind": k.kind, "name": k.name},
            "current_replicas": decision.current,
            "desired_replicas": decision.desired,
            "signal": decision.signal,
            "observed": decision.observed,
            "target_value": decision.target_value,
        }
        return OutgoingRequest(target=c.name, method="POST", path="", body=json.dumps(body, sort_keys=True),
                               idempotency_key=f"autoscale:{c.name}:{decision.at_ms}",
                               expires_at_ms=decision.at_ms + c.webhook_expiry_seconds * 1000)


def export_decision(metrics: Metrics, decision: ScaleDecision) -> None:
    """Set ``inferwatch_desired_replicas{model, target}`` from ``decision`` (left as it was when
    the decision has no desired count) and count it in
    ``inferwatch_autoscale_decisions_total{hook, reason}``."""
    if decision.desired is not None:
        metrics.desired_replicas.labels(model=decision.model, target=decision.target).set(decision.desired)
    metrics.autoscale_decisions.labels(hook=decision.hook, reason=decision.reason).inc()


def export_error(metrics: Metrics, error: ScaleError, hook: str) -> None:
    """Count a failed evaluation in ``inferwatch_autoscale_errors_total{hook, operation}`` and,
    when the failure was the patch, still export the desired count."""
    metrics.autoscale_errors.labels(hook=hook, operation=error.operation).inc()
    if error.decision is not None and error.decision.desired is not None:
        metrics.desired_replicas.labels(model=error.decision.model,
                                        target=error.decision.target).set(error.decision.desired)


# --- Kubernetes ---------------------------------------------------------------------------------

class KubernetesScaler:
    """Reads and sets a workload's replicas through its scale subresource with the official
    ``kubernetes`` client, and finds an HPA or KEDA ScaledObject that owns it.

    Calls (``{res}`` is ``deployments`` or ``statefulsets``):

    - ``GET /apis/apps/v1/namespaces/{ns}/{res}/{name}/scale`` — current ``spec.replicas``;
    - ``PATCH`` the same path, body ``{"spec": {"replicas": N}}``,
      ``Content-Type: application/merge-patch+json`` (set explicitly: the client would pick
      strategic merge patch for a dict body);
    - ``GET /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers`` — an HPA whose
      ``spec.scaleTargetRef`` has the workload's kind and name owns it;
    - ``GET /apis/keda.sh/v1alpha1/namespaces/{ns}/scaledobjects`` — a ScaledObject whose
      ``spec.scaleTargetRef.name`` is the workload (``kind`` defaulting to Deployment) owns it;
      404 means KEDA is not installed: no owner.

    Every call has a connect and read timeout of ``target.timeout_seconds``; transport errors
    are retried ``retries`` times by urllib3 (setting replicas to N is idempotent).

    Raises:
        ScaleError: (at construction) no usable connection configuration: the kubeconfig is
            unreadable, or outside a cluster without ``api_url`` or ``kubeconfig``.
    """

    def __init__(self, target: KubernetesTarget, retries: int = 2) -> None:
        from kubernetes import client, config  # imported here: only this mode needs it

        self.target = target
        self._client = client
        try:
            if target.api_url is not None:
                cfg = client.Configuration(host=target.api_url, verify_ssl=target.verify_tls,
                                           ssl_ca_cert=None if target.ca_file is None else str(target.ca_file),
                                           retries=retries)
                if target.bearer_token is not None:
                    cfg.api_key = {"BearerToken": target.bearer_token.get()}
                    cfg.api_key_prefix = {"BearerToken": "Bearer"}
                api = client.ApiClient(configuration=cfg)
            elif target.kubeconfig is not None:
                cfg = client.Configuration()
                config.load_kube_config(config_file=str(target.kubeconfig), client_configuration=cfg,
                                        persist_config=False)
                cfg.retries = retries
                api = client.ApiClient(configuration=cfg)
            else:
                cfg = client.Configuration()
                config.load_incluster_config(client_configuration=cfg)
                cfg.retries = retries
                api = client.ApiClient(configuration=cfg)
        except (config.ConfigException, OSError, ValueError) as exc:
            raise ScaleError(f"cannot configure the Kubernetes client for {target.label}: {exc}", target.label,
                             "connect") from exc
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._hpa = client.AutoscalingV2Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._timeout = (target.timeout_seconds, target.timeout_seconds)

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import urllib3

        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            raise ScaleError(f"{operation} {self.target.label}: HTTP {exc.status} {exc.reason}", self.target.label,
                             operation, exc.status) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ScaleError(f"{operation} {self.target.label}: {type(exc).__name__}: {exc}", self.target.label,
                             operation) from exc
        except ValueError as exc:  # an answer the client could not read as the expected object
            raise ScaleError(f"{operation} {self.target.label}: unexpected answer: {exc}", self.target.label,
                             operation) from exc

    def current_replicas(self) -> int:
        """``spec.replicas`` of the scale subresource (≥ 0).

        Raises:
            ScaleError: the call failed or the answer has no replica count.
        """
        t = self.target
        read = (self._apps.read_namespaced_deployment_scale if t.kind == "Deployment"
                else self._apps.read_namespaced_stateful_set_scale)
        scale = self._call("read scale", read, t.name, t.namespace)
        replicas = None if scale.spec is None else scale.spec.replicas
        if replicas is None:
            # the API server omits spec.replicas when it is 0
            replicas = 0
        return int(replicas)

    def set_replicas(self, replicas: int) -> None:
        """Patch ``spec.replicas`` to ``replicas`` (≥ 0) by JSON merge patch.

        Raises:
            ScaleError: the call failed (404: no such workload; 403: RBAC; 409/422: refused).
        """
        t = self.target
        patch = (self._apps.patch_namespaced_deployment_scale if t.kind == "Deployment"
                 else self._apps.patch_namespaced_stateful_set_scale)
        self._call("patch scale", patch, t.name, t.namespace, {"spec": {"replicas": int(replicas)}},
                   _content_type=MERGE_PATCH)

    def owner(self) -> Owner | None:
        """The KEDA ScaledObject or HPA that owns the workload, or None.

        KEDA is checked first: it drives the target through an HPA of its own
        (``keda-hpa-<name>``), and the ScaledObject is the object a person edits.

        Raises:
            ScaleError: a list call failed (other than 404 for the KEDA resource).
        """
        t = self.target
        try:
            objects = self._call("list ScaledObjects", self._custom.list_namespaced_custom_object, "keda.sh",
                                 "v1alpha1", t.namespace, "scaledobjects")
        except ScaleError as exc:
            if exc.status != 404:
                raise
            objects = {"items": []}
        for item in (objects or {}).get("items") or []:
            ref = (item.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("name") == t.name and (ref.get("kind") or "Deployment") == t.kind:
                return Owner("keda", str((item.get("metadata") or {}).get("name", "")))
        hpas = self._call("list HPAs", self._hpa.list_namespaced_horizontal_pod_autoscaler, t.namespace)
        for hpa in hpas.items or []:
            ref = hpa.spec.scale_target_ref
            if ref.kind == t.kind and ref.name == t.name:
                return Owner("hpa", str(hpa.metadata.name if hpa.metadata else ""))
        return None

    def close(self) -> None:
        """Release the client's connections."""
        self._api.close()
