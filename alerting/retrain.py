"""Retraining hooks: an HTTP call that starts a retraining run when a drift alert fires.

A hook is configured per target (:class:`RetrainHookConfig`, one of ``github``, ``argo``,
``kubeflow``, ``airflow`` or ``http``). When an alert starts firing, the caller builds a
:class:`DriftEpisode` and hands it to :meth:`RetrainTrigger.fire` inside the transaction that
records the alert state. For each hook the trigger decides (:meth:`RetrainTrigger.decide`)
whether to send, and when it sends it records the call in the ``hook_calls`` table and enqueues
the :class:`~alerting.events.OutgoingRequest` in that same transaction, so one drift episode
starts one retrain even across restarts.

Cooldown is per (hook, model), across versions: a retraining pipeline retrains the model, not a
version, and while a rollout or canary serves two versions of one model, one shift in the input
data makes both drift; keyed on the version that would start two runs of the same pipeline for
one episode. A version deployed by the retrain that drifts again within the cooldown is most
often still the same shift; shorten ``cooldown_seconds`` to retrain it sooner.

Each request carries the idempotency key ``retrain:{hook}:{model}:{model_version}:{window_id}``.
Argo workflow names and Airflow ``dag_run_id`` values are derived from it, so a repeated
delivery (a crash between sending and recording the delivery) is refused by the peer with
409 Conflict (:attr:`RetrainHookConfig.repeat_statuses`) instead of starting a second run.
GitHub and Kubeflow Pipelines have no such field: the key is in the GitHub ``client_payload``
(``idempotency_key``, usable as a workflow ``concurrency`` group) and in the Kubeflow run's
``description``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, field_validator, model_validator

from alerting.endpoint import Endpoint
from alerting.events import OutgoingRequest, rfc3339

log = logging.getLogger(__name__)

#: the names a template may use, each rendered as text (see :func:`template_values`)
PLACEHOLDERS = ("model", "model_version", "window_start", "window_end", "window_id", "drifted_features",
                "drift_share", "alertname")

#: headers GitHub's REST API asks for; filled into a ``github`` hook's ``headers`` unless given
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

# GitHub refuses a client_payload with more top-level keys or of 64 KB or more
GITHUB_MAX_PAYLOAD_KEYS = 10
GITHUB_MAX_PAYLOAD_BYTES = 64 * 1024

DEFAULT_KUBEFLOW_DISPLAY_NAME = "retrain {model} {model_version} window {window_id}"


# --- the drift episode and its payload ------------------------------------------------------

@dataclass(frozen=True)
class DriftedFeature:
    """One drifted column of the window that fired the alert.

    Attributes:
        name: column name without its role prefix (``age``, not ``features.age``).
        role: ``"feature"`` or ``"prediction"``.
        method: the test or distance that decided (``ks``, ``chi2``, ``psi``, ``wasserstein``, ...).
        statistic: the test statistic or distance.
        p_value: the test's p-value in [0, 1]; None for distances, which have none.
        threshold: the value it was compared with (significance level or distance threshold);
            None when the result does not record one.
    """

    name: str
    role: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float | None


@dataclass(frozen=True)
class DriftEpisode:
    """A drift alert that started firing, with the window that fired it.

    Attributes:
        alertname: the alert's ``alertname`` label.
        model, model_version: the model version that drifted.
        window_id: id of the closed window (``windows.id``) that fired the alert.
        window_start_ms, window_end_ms: the window's span, UTC epoch milliseconds.
        dataset_drift_share: share of columns that drifted, in [0, 1]; None when not computed.
        drifted: the drifted columns, in the order given (most drifted first, by convention).
        fired_at_ms: when the alert started firing, UTC epoch milliseconds.
    """

    alertname: str
    model: str
    model_version: str
    window_id: int
    window_start_ms: int
    window_end_ms: int
    dataset_drift_share: float | None
    drifted: tuple[DriftedFeature, ...]
    fired_at_ms: int

    @classmethod
    def from_results(cls, alertname: str, window: Mapping[str, Any], results: Iterable[Mapping[str, Any]],
                     fired_at_ms: int) -> DriftEpisode:
        """An episode from a ``windows`` row (``id``, ``model``, ``model_version``,
        ``window_start_ms``, ``window_end_ms``, ``drift_share``) and its ``drift_results`` rows;
        the rows whose ``drifted`` is true become :attr:`drifted`, ordered by p-value (smallest
        first, distances after), then by statistic (largest first). A ``column_name`` loses its
        ``features.``/``predictions.`` prefix."""
        picked = []
        for r in results:
            if not r.get("drifted"):
                continue
            name = str(r["column_name"])
            for prefix in ("features.", "predictions."):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            picked.append(DriftedFeature(name=name, role=str(r["role"]), method=str(r["method"]),
                                         statistic=_finite(r.get("statistic")), p_value=_finite(r.get("p_value")),
                                         threshold=_finite(r.get("threshold"))))
        picked.sort(key=lambda f: (f.p_value is None, f.p_value if f.p_value is not None else 0.0,
                                   -(f.statistic if f.statistic is not None else -math.inf)))
        return cls(alertname=alertname, model=str(window["model"]), model_version=str(window["model_version"]),
                   window_id=int(window["id"]), window_start_ms=int(window["window_start_ms"]),
                   window_end_ms=int(window["window_end_ms"]), dataset_drift_share=_finite(window.get("drift_share")),
                   drifted=tuple(picked), fired_at_ms=fired_at_ms)


def _finite(x: Any) -> float | None:
    """A float for JSON: None for missing, NaN or infinite values (JSON has no NaN)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def payload(episode: DriftEpisode) -> dict[str, Any]:
    """The episode as a JSON-safe object (8 top-level keys, so it fits GitHub's limit of 10
    with the idempotency key added)::

        {"alertname": str, "model": str, "model_version": str,
         "window": {"id": int, "start": RFC 3339, "end": RFC 3339},
         "drift_share": float | null, "drifted_count": int,
         "drifted": [{"name", "role", "method", "statistic", "p_value", "threshold"}, ...],
         "fired_at": RFC 3339}

    Non-finite numbers become null."""
    return {
        "alertname": episode.alertname,
        "model": episode.model,
        "model_version": episode.model_version,
        "window": {"id": episode.window_id, "start": rfc3339(episode.window_start_ms),
                   "end": rfc3339(episode.window_end_ms)},
        "drift_share": _finite(episode.dataset_drift_share),
        "drifted_count": len(episode.drifted),
        "drifted": [{"name": f.name, "role": f.role, "method": f.method, "statistic": _finite(f.statistic),
                     "p_value": _finite(f.p_value), "threshold": _finite(f.threshold)} for f in episode.drifted],
        "fired_at": rfc3339(episode.fired_at_ms),
    }


def idempotency_key(hook: str, episode: DriftEpisode) -> str:
    """``retrain:{hook}:{model}:{model_version}:{window_id}``: the same for every attempt at
    one episode, so the outbox keeps one request per episode and hook."""
    return f"retrain:{hook}:{episode.model}:{episode.model_version}:{episode.window_id}"


# --- templates ------------------------------------------------------------------------------

def template_values(episode: DriftEpisode) -> dict[str, str]:
    """The text each placeholder stands for: ``{model}``, ``{model_version}``, ``{alertname}``
    as they are; ``{window_start}``/``{window_end}`` in RFC 3339; ``{window_id}`` in decimal;
    ``{drifted_features}`` the drifted column names joined by commas; ``{drift_share}`` with 6
    significant digits, empty when unknown."""
    share = _finite(episode.dataset_drift_share)
    return {
        "model": episode.model,
        "model_version": episode.model_version,
        "window_start": rfc3339(episode.window_start_ms),
        "window_end": rfc3339(episode.window_end_ms),
        "window_id": str(episode.window_id),
        "drifted_features": ",".join(f.name for f in episode.drifted),
        "drift_share": "" if share is None else format(share, ".6g"),
        "alertname": episode.alertname,
    }


def check_template(hook: str, where: str, text: str) -> None:
    """Check a ``str.format`` template: only ``{name}`` placeholders from :data:`PLACEHOLDERS`
    (``{{``/``}}`` for literal braces); no positional fields, attribute or index access,
    conversions or format specs, so rendering can never fail.

    Raises:
        ValueError: naming the hook, where the template is and the offending placeholder.
    """
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"retraining hook {hook!r}: {where}: malformed template {text!r} ({exc})") from None
    for _literal, field, spec, conversion in parts:
        if field is None:
            continue
        base = re.split(r"[.\[]", field, maxsplit=1)[0]
        if base not in PLACEHOLDERS:
            raise ValueError(f"retraining hook {hook!r}: {where}: unknown placeholder {{{field}}}; "
                             f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        if base != field or spec or conversion:
            raise ValueError(f"retraining hook {hook!r}: {where}: placeholder {{{field}}} must be plain "
                             f"(no attribute, index, conversion or format spec)")


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill a template checked by :func:`check_template`."""
    return text.format_map(values)


def _check_json_templates(hook: str, where: str, value: Any) -> None:
    if isinstance(value, str):
        check_template(hook, where, value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_json_templates(hook, f"{where}.{k}", v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json_templates(hook, f"{where}[{i}]", v)


def _render_json(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, dict):
        return {k: _render_json(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, values) for v in value]
    return value


# --- configuration --------------------------------------------------------------------------

HookKind = Literal["github", "argo", "kubeflow", "airflow", "http"]

# per kind: the fields it needs, and the optional ones it takes; other kinds' fields are refused
_KIND_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "github": (frozenset({"repository"}), frozenset({"event_type"})),
    "argo": (frozenset({"namespace", "resource_name"}), frozenset({"resource_kind", "parameters"})),
    "kubeflow": (frozenset({"pipeline_id", "pipeline_version_id"}),
                 frozenset({"experiment_id", "display_name", "parameters"})),
    "airflow": (frozenset({"dag_id"}), frozenset({"api_version"})),
    "http": (frozenset(), frozenset({"path", "method", "body"})),
}
_KIND_SPECIFIC = frozenset().union(*(need | opt for need, opt in _KIND_FIELDS.values()))

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class RetrainHookConfig(Endpoint):
    """A retraining hook: where to send (the :class:`~alerting.endpoint.Endpoint` fields:
    ``url``, ``timeout_seconds``, ``headers``, ``bearer_token``, ``signing_secret``), when, and
    what, by ``kind``:

    - ``github``: ``repository`` (``owner/name``), ``event_type`` (default
      ``inferwatch-drift``, at most 100 characters). ``url`` is the API root
      (``https://api.github.com``); ``headers`` get GitHub's ``Accept`` and
      ``X-GitHub-Api-Version`` unless given (GitHub also needs a ``User-Agent``, which the
      delivery sends). ``bearer_token``: a token allowed to write the repository's contents.
    - ``argo``: ``namespace``, ``resource_kind`` (``WorkflowTemplate``, the default, or
      ``ClusterWorkflowTemplate``), ``resource_name``, ``parameters`` (name → templated value;
      names the template declares). ``url``: the Argo Server.
    - ``kubeflow``: ``pipeline_id``, ``pipeline_version_id``, ``experiment_id`` (optional:
      the default experiment), ``display_name`` (templated), ``parameters`` (name → templated
      value, the pipeline's inputs). ``url``: the KFP API server (or its gateway).
    - ``airflow``: ``dag_id``, ``api_version`` ``"v1"`` (Airflow 2, the default) or ``"v2"``
      (Airflow 3). ``url``: the webserver / API server root.
    - ``http``: ``path`` (appended to ``url``, default ``""``), ``method`` (``POST``, the
      default, or ``PATCH``), ``body`` (a JSON object whose string values, at any depth, are
      templated; default: :func:`payload` plus ``idempotency_key``).

    Templates use ``{model}``, ``{model_version}``, ``{window_start}``, ``{window_end}``,
    ``{window_id}``, ``{drifted_features}``, ``{drift_share}``, ``{alertname}``
    (:func:`template_values`).

    Attributes:
        name: the hook's name (letters, digits, ``_.-``); the outbox target and part of the
            idempotency key.
        kind: which API it calls.
        alerts: alertnames that trigger it; empty: any.
        models: models it retrains; empty: any.
        cooldown_seconds: after a call for a model, further episodes of that model (any
            version) within this many seconds start nothing (>= 0; default one day).
        dry_run: log at INFO what would be sent and send nothing.

    Raises:
        pydantic.ValidationError: a field the kind needs is missing, a field of another kind is
            given, a value is malformed, or a template names an unknown placeholder; messages
            name the hook.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    kind: HookKind
    alerts: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    cooldown_seconds: int = Field(86400, ge=0)
    dry_run: bool = False

    # github
    repository: str | None = None
    event_type: str | None = None
    # argo
    namespace: str | None = None
    resource_kind: Literal["WorkflowTemplate", "ClusterWorkflowTemplate"] | None = None
    resource_name: str | None = None
    # argo and kubeflow
    parameters: dict[str, str] | None = None
    # kubeflow
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None
    experiment_id: str | None = None
    display_name: str | None = None
    # airflow
    dag_id: str | None = None
    api_version: Literal["v1", "v2"] | None = None
    # http
    path: str | None = None
    method: Literal["POST", "PATCH"] | None = None
    body: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_the_hook_early(cls, data: object) -> object:
        # field errors of pydantic do not say which hook; the common ones are caught here
        if isinstance(data, dict) and data.get("kind") not in _KIND_FIELDS and "kind" in data:
            raise ValueError(f"retraining hook {data.get('name')!r}: kind must be one of "
                             f"{', '.join(_KIND_FIELDS)}, not {data.get('kind')!r}")
        return data

    @field_validator("alerts", "models")
    @classmethod
    def _no_empty_names(cls, v: list[str]) -> list[str]:
        if any(not s for s in v):
            raise ValueError("names must not be empty")
        return v

    @model_validator(mode="after")
    def _by_kind(self) -> RetrainHookConfig:
        hook, kind = self.name, self.kind
        need, optional = _KIND_FIELDS[kind]
        missing = sorted(f for f in need if not getattr(self, f))
        if missing:
            raise ValueError(f"retraining hook {hook!r} (kind {kind}): {', '.join(missing)} required")
        foreign = sorted((self.model_fields_set & _KIND_SPECIFIC) - need - optional)
        if foreign:
            raise ValueError(f"retraining hook {hook!r} (kind {kind}): {', '.join(foreign)} "
                             f"not allowed for this kind")
        if kind == "github":
            if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", self.repository or ""):
                raise ValueError(f"retraining hook {hook!r}: repository must be owner/name, "
                                 f"not {self.repository!r}")
            self.event_type = self.event_type or "inferwatch-drift"
            if len(self.event_type) > 100:
                raise ValueError(f"retraining hook {hook!r}: event_type longer than 100 characters")
            given = {h.lower() for h in self.headers}
            self.headers = {**{k: v for k, v in GITHUB_HEADERS.items() if k.lower() not in given},
                            **self.headers}
        elif kind == "argo":
            if not _DNS_LABEL.fullmatch(self.namespace or ""):
                raise ValueError(f"retraining hook {hook!r}: namespace {self.namespace!r} is not a "
                                 f"Kubernetes namespace name")
            if not _DNS_SUBDOMAIN.fullmatch(self.resource_name or ""):
                raise ValueError(f"retraining hook {hook!r}: resource_name {self.resource_name!r} is not a "
                                 f"Kubernetes object name")
            self.resource_kind = self.resource_kind or "WorkflowTemplate"
        elif kind == "kubeflow":
            self.display_name = self.display_name or DEFAULT_KUBEFLOW_DISPLAY_NAME
            check_template(hook, "display_name", self.display_name)
        elif kind == "airflow":
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,250}", self.dag_id or ""):
                raise ValueError(f"retraining hook {hook!r}: dag_id {self.dag_id!r} is not an Airflow DAG id")
            self.api_version = self.api_version or "v1"
        else:
            self.path = self.path or ""
            if self.path and not self.path.startswith("/"):
                raise ValueError(f"retraining hook {hook!r}: path must be empty or start with /")
            self.method = self.method or "POST"
            if self.body is not None:
                _check_json_templates(hook, "body", self.body)
        if kind in ("argo", "kubeflow"):
            self.parameters = dict(self.parameters or {})
            for pname, text in self.parameters.items():
                if not pname or "=" in pname:
                    raise ValueError(f"retraining hook {hook!r}: parameter name {pname!r} is empty or holds '='")
                check_template(hook, f"parameters.{pname}", text)
        return self

    @property
    def repeat_statuses(self) -> frozenset[int]:
        """HTTP statuses by which the peer says the run named by this idempotency key already
        exists (a repeated delivery), which the outbox should count as delivered. Argo Workflows and
        Airflow answer 409 Conflict; GitHub, Kubeflow and plain HTTP have no such answer."""
        return frozenset({409}) if self.kind in ("argo", "airflow") else frozenset()

    def matches(self, episode: DriftEpisode) -> bool:
        """True when the episode's alertname and model pass the ``alerts`` and ``models``
        filters (an empty list passes all)."""
        return ((not self.alerts or episode.alertname in self.alerts)
                and (not self.models or episode.model in self.models))


# --- the request per kind --------------------------------------------------------------------

def _digest(key: str, n: int) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:n]


def _dns_part(text: str, n: int) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:n].strip("-")


def argo_workflow_name(hook: str, episode: DriftEpisode) -> str:
    """The Workflow's ``metadata.name``: ``retrain-<hook>-<model>-<16 hex digits of SHA-256 of
    the idempotency key>``, names lowered and reduced to ``[a-z0-9-]`` (16 characters each),
    at most 63 characters (Argo puts the name in pod labels)."""
    parts = ["retrain", _dns_part(hook, 16), _dns_part(episode.model, 16),
             _digest(idempotency_key(hook, episode), 16)]
    return "-".join(p for p in parts if p)


def airflow_run_id(hook: str, episode: DriftEpisode) -> str:
    """The ``dag_run_id``: the idempotency key with characters outside Airflow's default
    ``allowed_run_id_pattern`` (``[A-Za-z0-9_.~:+-]``) replaced by ``_``, cut to 200
    characters, then ``-`` and 12 hex digits of its SHA-256 (two keys that differ only in
    replaced characters stay apart)."""
    key = idempotency_key(hook, episode)
    return f"{re.sub(r'[^A-Za-z0-9_.~:+-]', '_', key)[:200]}-{_digest(key, 12)}"


def _argo_label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")


def _github_client_payload(body: dict[str, Any]) -> dict[str, Any]:
    # GitHub refuses 64 KB or more: drop drifted columns from the end (drifted_count keeps the
    # total); measured with spaces after separators and 4 KB to spare, however GitHub re-encodes it
    drifted = list(body["drifted"])
    while drifted and len(json.dumps(body).encode()) >= GITHUB_MAX_PAYLOAD_BYTES - 4096:
        drifted = drifted[: len(drifted) * 9 // 10]
        body = {**body, "drifted": drifted}
    return body


def request_for(hook: RetrainHookConfig, episode: DriftEpisode, now_ms: int | None = None) -> OutgoingRequest:
    """The HTTP call that starts a retraining run for ``episode`` through ``hook``:

    - github: ``POST /repos/{owner}/{repo}/dispatches``
      ``{"event_type", "client_payload": payload + idempotency_key}`` (at most 10 top-level
      keys, under 64 KB: the ``drifted`` list is cut from the end when needed). GitHub answers
      204.
    - argo: ``POST /api/v1/workflows/{namespace}/submit`` ``{"namespace", "resourceKind",
      "resourceName", "submitOptions": {"name", "parameters": ["k=v", ...], "labels"}}``.
    - kubeflow: ``POST /apis/v2beta1/runs`` ``{"display_name", "description",
      "pipeline_version_reference": {"pipeline_id", "pipeline_version_id"},
      "runtime_config": {"parameters": {...}}, "experiment_id"?}``.
    - airflow: ``POST /api/v1/dags/{dag_id}/dagRuns`` ``{"dag_run_id", "conf"}`` or, for
      ``api_version: v2``, ``/api/v2/dags/{dag_id}/dagRuns`` ``{"dag_run_id",
      "logical_date": null, "conf"}``; ``conf`` is payload + idempotency_key.
    - http: ``{method} {path}`` with the rendered ``body`` (or payload + idempotency_key).

    The request expires ``cooldown_seconds`` after ``now_ms`` (default: the episode's
    ``fired_at_ms``): a retrain not started by then is given up, and a later episode starts its
    own. With no cooldown it never expires.
    """
    key = idempotency_key(hook.name, episode)
    values = template_values(episode)
    data = {**payload(episode), "idempotency_key": key}
    if hook.kind == "github":
        owner, repo = hook.repository.split("/", 1)  # type: ignore[union-attr]
        path = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/dispatches"
        client_payload = _github_client_payload(data)
        assert len(client_payload) <= GITHUB_MAX_PAYLOAD_KEYS
        body: dict[str, Any] = {"event_type": hook.event_type, "client_payload": client_payload}
        method = "POST"
    elif hook.kind == "argo":
        path = f"/api/v1/workflows/{quote(hook.namespace or '', safe='')}/submit"
        options: dict[str, Any] = {
            "name": argo_workflow_name(hook.name, episode),
            "parameters": [f"{k}={render(v, values)}" for k, v in (hook.parameters or {}).items()],
        }
        labels = [f"inferwatch.io/hook={_argo_label_value(hook.name)}"]
        model_label = _argo_label_value(episode.model)
        if model_label:
            labels.append(f"inferwatch.io/model={model_label}")
        options["labels"] = ",".join(labels)
        body = {"namespace": hook.namespace, "resourceKind": hook.resource_kind,
                "resourceName": hook.resource_name, "submitOptions": options}
        method = "POST"
    elif hook.kind == "kubeflow":
        path = "/apis/v2beta1/runs"
        body = {
            "display_name": render(hook.display_name or DEFAULT_KUBEFLOW_DISPLAY_NAME, values),
            "description": f"inferwatch retraining hook {hook.name}; idempotency key {key}",
            "pipeline_version_reference": {"pipeline_id": hook.pipeline_id,
                                           "pipeline_version_id": hook.pipeline_version_id},
            "runtime_config": {"parameters": {k: render(v, values) for k, v in (hook.parameters or {}).items()}},
        }
        if hook.experiment_id:
            body["experiment_id"] = hook.experiment_id
        method = "POST"
    elif hook.kind == "airflow":
        path = f"/api/{hook.api_version}/dags/{quote(hook.dag_id or '', safe='')}/dagRuns"
        body = {"dag_run_id": airflow_run_id(hook.name, episode)}
        if hook.api_version == "v2":
            body["logical_date"] = None  # Airflow 3 requires the field; null: not a scheduled interval
        body["conf"] = data
        method = "POST"
    else:
        path = hook.path or ""
        body = data if hook.body is None else _render_json(hook.body, values)
        method = hook.method or "POST"
    base = episode.fired_at_ms if now_ms is None else now_ms
    return OutgoingRequest(target=hook.name, method=method, path=path,
                           body=json.dumps(body, allow_nan=False, separators=(",", ":")),
                           idempotency_key=key,
                           expires_at_ms=base + hook.cooldown_seconds * 1000 if hook.cooldown_seconds else None)


# --- deciding and firing ---------------------------------------------------------------------

class Decision(str, enum.Enum):
    """What happens to one episode at one hook."""

    SEND = "send"            # enqueue the request and record the call
    COOLDOWN = "cooldown"    # the model's last call through this hook is too recent
    FILTERED = "filtered"    # the hook's alerts/models filters exclude the episode
    DRY_RUN = "dry_run"      # would send; logged, nothing enqueued or recorded


@dataclass(frozen=True)
class HookOutcome:
    """The decision for one hook; ``request`` is set for SEND and DRY_RUN."""

    hook: str
    decision: Decision
    request: OutgoingRequest | None = None


class RetrainTrigger:
    """Decides and starts retraining for the configured hooks.

    Args:
        hooks: the configured hooks (names unique).

    Raises:
        ValueError: two hooks share a name.
    """

    def __init__(self, hooks: Sequence[RetrainHookConfig]) -> None:
        names = [h.name for h in hooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"retraining hook names must be unique: {', '.join(dupes)}")
        self.hooks = tuple(hooks)

    @staticmethod
    def decide(hook: RetrainHookConfig, episode: DriftEpisode, last_call_ms: int | None, now_ms: int) -> Decision:
        """Pure decision for one hook. ``last_call_ms``: the last recorded call through this
        hook for the episode's model (any version), None if never. In order: FILTERED when the
        filters exclude it; COOLDOWN when ``now_ms - last_call_ms < cooldown_seconds * 1000``
        (a clock that went back counts as within); DRY_RUN when the hook is a dry run; SEND."""
        if not hook.matches(episode):
            return Decision.FILTERED
        if last_call_ms is not None and now_ms - last_call_ms < hook.cooldown_seconds * 1000:
            return Decision.COOLDOWN
        if hook.dry_run:
            return Decision.DRY_RUN
        return Decision.SEND

    def fire(self, store: Any, conn: Any, episode: DriftEpisode, now_ms: int,
             enqueue: Callable[[Any, OutgoingRequest], object]) -> list[HookOutcome]:
        """Decide every hook for ``episode`` inside the caller's transaction ``conn``: for SEND,
        :meth:`~inferwatch.store.Store.record_hook_call` and ``enqueue(conn, request)`` (the
        outbox insert) in that transaction; for DRY_RUN, log at INFO the method, URL and body
        (never credentials) and write nothing.

        Args:
            store: an :class:`inferwatch.store.Store`.
            conn: the open transaction (``Store.transaction()``).
            episode: the alert that started firing.
            now_ms: current time, UTC epoch milliseconds.
            enqueue: adds an :class:`~alerting.events.OutgoingRequest` to the outbox on ``conn``.

        Returns:
            one :class:`HookOutcome` per hook, in configuration order.
        """
        out = []
        for hook in self.hooks:
            last = store.last_hook_call(conn, hook.name, episode.model)
            decision = self.decide(hook, episode, last, now_ms)
            request = None
            if decision is Decision.SEND:
                request = request_for(hook, episode, now_ms)
                store.record_hook_call(conn, hook.name, episode.model, episode.model_version, now_ms,
                                       request.idempotency_key)
                enqueue(conn, request)
                log.info("retraining hook %s: %s %s%s enqueued for %s %s window %d (idempotency key %s)",
                         hook.name, request.method, hook.display_url, request.path, episode.model,
                         episode.model_version, episode.window_id, request.idempotency_key)
            elif decision is Decision.DRY_RUN:
                request = request_for(hook, episode, now_ms)
                log.info("retraining hook %s (dry run): would send %s %s%s body %s (idempotency key %s)",
                         hook.name, request.method, hook.display_url, request.path, request.body,
                         request.idempotency_key)
            elif decision is Decision.COOLDOWN and last is not None:
                log.info("retraining hook %s: %s %s window %d within the cooldown of %d s after the call at %s",
                         hook.name, episode.model, episode.model_version, episode.window_id,
                         hook.cooldown_seconds, rfc3339(last))
            out.append(HookOutcome(hook.name, decision, request))
        return out
