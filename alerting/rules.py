"""Alert rules: a condition over one signal of a closed window, held "for k of the last n
windows", with a severity, labels and annotations templated with the numbers that fired it.

A rule is evaluated whenever a window of a model closes (drift, missing values, serving
signals) or, for realized performance, whenever labels change a window's performance. Each
evaluation yields :class:`Observation` values, one per alert instance: one per model version
for window-level signals, one per column for per-column signals (``feature`` label). The
lifecycle (:mod:`alerting.lifecycle`) turns the observations into pending, firing and resolved.

Signals (``signal`` key):

=====================  ==========================================================  =============
signal                 value                                                       instances
=====================  ==========================================================  =============
feature_drift          ``field`` of a feature's drift result: ``drifted`` (1/0),   per feature
                       ``statistic``, ``p_value``, ``psi``, ``js_distance``
prediction_drift       the same, for a prediction column                           per column
missing_share          share of missing values in the window (0-1)                 per column
dataset_drift_share    share of drifted features (0-1)                             per version
dataset_drift          the window's dataset verdict (1 drift, 0 not)               per version
performance            realized performance ``metric`` (accuracy, f1, rmse, ...)   per version
serving signals        :data:`detectors.serving.SERVING_SIGNALS` (seconds, ratios) per version
=====================  ==========================================================  =============

A value that cannot be computed (insufficient data, no reference yet, a signal the logs do not
carry) is None and changes nothing.
"""

from __future__ import annotations

import math
import operator
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.performance import CLASSIFICATION_METRICS, REGRESSION_METRICS
from detectors.serving import SERVING_SIGNALS
from alerting.events import rfc3339

COLUMN_SIGNALS = ("feature_drift", "prediction_drift", "missing_share")
WINDOW_SIGNALS = ("dataset_drift_share", "dataset_drift", *SERVING_SIGNALS)
SIGNALS = (*COLUMN_SIGNALS, *WINDOW_SIGNALS, "performance")
DRIFT_FIELDS = ("drifted", "statistic", "p_value", "psi", "js_distance")
SEVERITIES = ("critical", "error", "warning", "info")

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}

# names annotations may use: {name} or {name:format}
TEMPLATE_NAMES = ("alertname", "model", "model_version", "severity", "signal", "value", "op", "threshold",
                  "feature", "role", "method", "statistic", "p_value", "psi", "js_distance", "drifted",
                  "missing_share", "metric", "drift_share", "n_drifted", "n_columns", "drifted_features",
                  "window_id", "window_start", "window_end")
_TEXT_NAMES = {"alertname", "model", "model_version", "severity", "signal", "op", "feature", "role", "method",
               "metric", "drifted_features", "window_start", "window_end"}
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_LABELS = ("alertname", "model", "model_version", "severity", "feature", "role", "metric")


class _Missing:
    """Stands in for a number that is None: ``n/a`` whatever the format spec or conversion."""

    def __format__(self, spec: str) -> str:
        return "n/a"

    def __str__(self) -> str:
        return "n/a"

    __repr__ = __str__


def _template_fields(template: str) -> list[str]:
    """Placeholder names of a ``str.format`` template.

    Raises:
        ValueError: malformed template, or positional/attribute/index placeholders.
    """
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not _LABEL_NAME.match(name):
            raise ValueError(f"placeholder {{{name}}} is not a plain name")
        names.append(name)
    return names


class RuleConfig(BaseModel):
    """One alert rule (an entry of ``alerting.rules``).

    Attributes:
        name: the ``alertname`` label ([A-Za-z_][A-Za-z0-9_]*), unique among rules.
        signal: one of :data:`SIGNALS` (see the module docstring).
        field: for ``feature_drift`` / ``prediction_drift``: which part of the drift result
            (:data:`DRIFT_FIELDS`, default ``drifted``).
        metric: for ``performance``: the realized-performance metric (``accuracy``, ``f1``,
            ``rmse``, ... as ``performance`` computes them).
        op, threshold: the condition ``value <op> threshold``. For ``drifted`` and
            ``dataset_drift`` the defaults are ``== 1``.
        resolve_threshold: hysteresis: while firing, a window clears only when ``value`` is
            on the safe side of this (``value <= resolve_threshold`` for ``>``/``>=``, ``>=``
            for ``<``/``<=``). Default: the window clears when the condition is false.
        for_windows: ``[k, n]``: fires when the condition held in at least k of the last n
            windows that had a value (1 ≤ k ≤ n ≤ 100). YAML key ``for``.
        resolve_after_windows: consecutive clear windows before a firing alert resolves (≥ 1).
        severity: critical | error | warning | info.
        labels: extra labels (bounded values only).
        annotations: templates (``str.format`` over :data:`TEMPLATE_NAMES`; a number that is
            None prints ``n/a``); ``summary`` gets a default.
        models: only these models (empty: all).
        columns: for per-column signals, only these feature/prediction names (empty: all).

    Raises:
        ValueError: (at validation) an unknown signal, field, operator or placeholder, an
            inconsistent hysteresis, k > n; the message names the key.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    signal: str
    field: str | None = None
    metric: str | None = None
    op: str | None = None
    threshold: float | None = None
    resolve_threshold: float | None = None
    for_windows: tuple[int, int] = Field((1, 1), alias="for")
    resolve_after_windows: int = Field(1, ge=1, le=100)
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    models: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _LABEL_NAME.match(v):
            raise ValueError("must match [A-Za-z_][A-Za-z0-9_]* (it becomes the alertname label)")
        return v

    @field_validator("signal")
    @classmethod
    def _signal(cls, v: str) -> str:
        if v not in SIGNALS:
            raise ValueError(f"unknown signal {v!r}; one of: {', '.join(SIGNALS)}")
        return v

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        if v not in SEVERITIES:
            raise ValueError(f"must be one of {', '.join(SEVERITIES)}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not _LABEL_NAME.match(k):
                raise ValueError(f"label name {k!r} must match [A-Za-z_][A-Za-z0-9_]*")
            if k in _RESERVED_LABELS:
                raise ValueError(f"label {k!r} is set by inferwatch")
        return v

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, v: dict[str, str]) -> dict[str, str]:
        for key, template in v.items():
            if not _LABEL_NAME.match(key):  # Alertmanager refuses other names with 400
                raise ValueError(f"annotation name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
            try:
                names = _template_fields(template)
            except ValueError as exc:
                raise ValueError(f"annotation {key}: {exc}") from None
            unknown = [n for n in names if n not in TEMPLATE_NAMES]
            if unknown:
                raise ValueError(f"annotation {key}: unknown placeholder {{{unknown[0]}}}; "
                                 f"known: {', '.join(TEMPLATE_NAMES)}")
            try:  # catches format specs that no value accepts, e.g. {value:d}
                template.format_map({n: "x" if n in _TEXT_NAMES else 0.5 for n in TEMPLATE_NAMES})
            except (ValueError, TypeError) as exc:
                raise ValueError(f"annotation {key}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RuleConfig:
        s = self.signal
        if s in ("feature_drift", "prediction_drift"):
            self.field = self.field or "drifted"
            if self.field not in DRIFT_FIELDS:
                raise ValueError(f"field: one of {', '.join(DRIFT_FIELDS)} for signal {s}")
        elif self.field is not None:
            raise ValueError(f"field applies only to feature_drift and prediction_drift, not {s}")
        if s == "performance":
            if self.metric not in (*CLASSIFICATION_METRICS, *REGRESSION_METRICS):
                raise ValueError(f"signal performance needs metric, one of: "
                                 f"{', '.join((*CLASSIFICATION_METRICS, *REGRESSION_METRICS))}")
        elif self.metric is not None:
            raise ValueError(f"metric applies only to signal performance, not {s}")
        if self.columns and s not in COLUMN_SIGNALS:
            raise ValueError(f"columns applies only to per-column signals ({', '.join(COLUMN_SIGNALS)})")
        boolean = s == "dataset_drift" or self.field == "drifted"
        if self.op is None:
            if not boolean:
                raise ValueError(f"op is required for signal {s} (one of {' '.join(_OPS)})")
            self.op = "=="
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {' '.join(_OPS)}")
        if self.threshold is None:
            if not boolean:
                raise ValueError(f"threshold is required for signal {s}")
            self.threshold = 1.0
        if not math.isfinite(self.threshold):
            raise ValueError("threshold must be a finite number")
        if self.resolve_threshold is not None:
            if self.op in (">", ">=") and self.resolve_threshold > self.threshold:
                raise ValueError("resolve_threshold must not exceed threshold for op > / >=")
            if self.op in ("<", "<=") and self.resolve_threshold < self.threshold:
                raise ValueError("resolve_threshold must not be below threshold for op < / <=")
            if self.op in ("==", "!="):
                raise ValueError("resolve_threshold needs an ordering op (>, >=, <, <=)")
        k, n = self.for_windows
        if not 1 <= k <= n <= 100:
            raise ValueError(f"for: needs 1 <= k <= n <= 100, got [{k}, {n}]")
        defaults = {"summary": self._default_summary(), "value": "{value}", "window_start": "{window_start}",
                    "window_end": "{window_end}", "window_id": "{window_id}"}
        if s in ("dataset_drift", "dataset_drift_share"):
            defaults.update(drift_share="{drift_share:.6f}", drifted_columns="{drifted_features}")
        elif s in ("feature_drift", "prediction_drift"):
            defaults.update(method="{method}", statistic="{statistic:.6g}", p_value="{p_value:.6g}")
        self.annotations = {**defaults, **self.annotations}
        return self

    def _default_summary(self) -> str:
        if self.signal in ("dataset_drift", "dataset_drift_share"):
            return ("{model} v{model_version}: {n_drifted} of {n_columns} features drifted (share {drift_share:.2f}) "
                    "in window starting {window_start}")
        what = {"feature_drift": "feature {feature} {method} " + (self.field or ""),
                "prediction_drift": "prediction {feature} {method} " + (self.field or ""),
                "missing_share": "{role} {feature} missing share",
                "performance": "{metric}"}.get(self.signal, self.signal)
        return (f"{{model}} v{{model_version}}: {what} = {{value:.4g}} ({{op}} {{threshold:.4g}}) "
                f"in window {{window_start}}")

    def breaches(self, value: float) -> bool:
        """Whether ``value`` meets the condition ``value <op> threshold``."""
        return _OPS[self.op](value, self.threshold)

    def clears(self, value: float) -> bool:
        """Whether ``value`` counts towards resolving a firing alert (see ``resolve_threshold``)."""
        if self.resolve_threshold is None:
            return not self.breaches(value)
        if self.op in (">", ">="):
            return value <= self.resolve_threshold
        return value >= self.resolve_threshold


@dataclass(frozen=True)
class WindowFacts:
    """What one evaluation sees of a model version's window.

    Attributes:
        model, model_version: whose window.
        window_id: id of the stored window (None for a performance update of a window not
            closed by this process).
        window_start_ms, window_end_ms: the window, UTC epoch ms.
        results: per-column drift results (dicts with ``column_name``, ``role``, ``method``,
            ``statistic``, ``p_value``, ``drifted``, ``psi``, ``js_distance``,
            ``missing_share``); None when this evaluation is not a window close.
        drift_share, n_drifted, n_columns, dataset_drifted: the dataset-level result.
        serving: serving signals (:func:`detectors.serving.serving_signals`); None: not a close.
        performance: realized performance metrics of the window; None: not a labels update.
    """

    model: str
    model_version: str
    window_id: int | None
    window_start_ms: int
    window_end_ms: int
    results: list[dict] | None = None
    drift_share: float | None = None
    n_drifted: int = 0
    n_columns: int = 0
    dataset_drifted: bool | None = None
    serving: dict[str, float | None] | None = None
    performance: dict[str, float | None] | None = None
    drifted_features: tuple[str, ...] = ()


@dataclass(frozen=True)
class Observation:
    """A rule's value for one alert instance in one window.

    Attributes:
        labels: the instance's labels (alertname, model, model_version, severity, rule labels,
            and ``feature`` + ``role`` for per-column signals, ``metric`` for performance).
        value: the signal's value; None: insufficient data (changes nothing).
        context: template values for the annotations (numbers may be None).
    """

    labels: dict[str, str]
    value: float | None
    context: dict[str, object] = field(default_factory=dict)


def _number(v: object) -> float | None:
    if v is None or isinstance(v, str):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def observe(rule: RuleConfig, facts: WindowFacts) -> list[Observation]:
    """The rule's observations in ``facts`` (empty when the rule does not apply to this
    evaluation: another model, or a signal this evaluation does not carry).

    Drift results whose column is named ``features.<name>`` / ``predictions.<name>`` give the
    instance label ``feature=<name>`` and ``role=feature|prediction``.
    """
    if rule.models and facts.model not in rule.models:
        return []
    base = {"alertname": rule.name, "model": facts.model, "model_version": facts.model_version,
            "severity": rule.severity, **rule.labels}
    ctx = {"alertname": rule.name, "model": facts.model, "model_version": facts.model_version,
           "severity": rule.severity, "signal": rule.signal, "op": rule.op, "threshold": rule.threshold,
           "window_id": facts.window_id, "window_start": rfc3339(facts.window_start_ms),
           "window_end": rfc3339(facts.window_end_ms), "drift_share": facts.drift_share,
           "n_drifted": facts.n_drifted, "n_columns": facts.n_columns,
           "drifted_features": ",".join(facts.drifted_features)}
    s = rule.signal
    if s in COLUMN_SIGNALS:
        if facts.results is None:
            return []
        out = []
        for r in facts.results:
            role = r.get("role")
            if s == "feature_drift" and role != "feature" or s == "prediction_drift" and role != "prediction":
                continue
            name = str(r["column_name"]).split(".", 1)[-1]
            if rule.columns and name not in rule.columns:
                continue
            value = _number(r.get("missing_share") if s == "missing_share" else r.get(rule.field))
            row_ctx = {**ctx, "feature": name, "role": role, "value": value,
                       **{k: r.get(k) for k in ("method", "statistic", "p_value", "psi", "js_distance", "drifted",
                                                "missing_share")}}
            out.append(Observation({**base, "feature": name, "role": str(role)}, value, row_ctx))
        return out
    if s == "performance":
        if facts.performance is None:
            return []
        value = _number(facts.performance.get(rule.metric))
        return [Observation({**base, "metric": rule.metric}, value, {**ctx, "metric": rule.metric, "value": value})]
    if s in ("dataset_drift_share", "dataset_drift"):
        if facts.results is None:
            return []
        value = facts.drift_share if s == "dataset_drift_share" else (
            None if facts.dataset_drifted is None else float(facts.dataset_drifted))
        return [Observation(base, _number(value), {**ctx, "value": _number(value)})]
    if facts.serving is None:
        return []
    value = _number(facts.serving.get(s))
    return [Observation(base, value, {**ctx, "value": value})]


def render(rule: RuleConfig, context: dict[str, object]) -> dict[str, str]:
    """The rule's annotations filled from an observation's context (None prints ``n/a``)."""
    values = {n: _Missing() for n in TEMPLATE_NAMES}
    values.update({k: (_Missing() if v is None else v) for k, v in context.items() if k in values})
    out = {}
    for key, template in rule.annotations.items():
        try:
            out[key] = template.format_map(values)
        except (ValueError, TypeError):  # a numeric format spec met text: send the template as written
            out[key] = template
    return out
