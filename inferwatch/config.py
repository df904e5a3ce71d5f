"""Configuration: one YAML file plus ``INFERWATCH_*`` environment overrides, validated at start-up.

Environment variables override the file; nested keys use ``__``, e.g.
``INFERWATCH_DATABASE_URL`` or ``INFERWATCH_KAFKA__BOOTSTRAP_SERVERS``. An unknown key or a bad
value fails start-up with :class:`ConfigError` naming the key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, FilePath, SecretStr, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from alerting.autoscale import AutoscaleConfig
from alerting.retrain import RetrainHookConfig
from alerting.rules import RuleConfig
from alerting.endpoint import Endpoint, Secret
from alerting.notifiers import ReceiverConfig
from alerting.outbox import OutboxConfig
from collector.formats.config import FormatConfig


class ConfigError(ValueError):
    """The configuration is invalid; the message names every bad key and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# kafka-python options inferwatch sets itself on the consumer or the dead-letter producer
FIXED_CLIENT_OPTIONS = ("bootstrap_servers", "group_id", "enable_auto_commit", "auto_offset_reset",
                        "max_poll_records", "client_id", "acks", "max_request_size")


class KafkaConfig(_Section):
    """Kafka consumer settings (passed to kafka-python)."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="comma-separated host:port list")
    topics: list[str] = Field(default_factory=lambda: ["predictions"], min_length=1)
    group_id: str = Field("inferwatch", min_length=1, description="consumer group id")
    dead_letter_topic: str = Field("inferwatch.dead-letter", min_length=1)
    auto_offset_reset: str = Field("earliest", pattern="^(earliest|latest)$")
    max_poll_records: int = Field(20_000, gt=0, description="messages per poll, and so per stored batch: the "
                                                           "per-batch costs (transaction, queries) spread over more")
    poll_timeout_ms: int = Field(500, gt=0)
    max_message_bytes: int = Field(1_048_576, gt=0, description="larger messages are rejected as oversize")
    max_features: int = Field(1000, gt=0, description="records with more features are rejected")
    max_rows_per_message: int = Field(100_000, gt=0, description="a message expanding to more rows (a batched "
                                      "tensor, a V1 instances list) is rejected whole (reason too_many_rows)")
    max_models: int = Field(1000, gt=0, description="(model, version) pairs tracked; records of further "
                                                    "ones are rejected as too_many_models")
    model_idle_release_seconds: int | None = Field(
        86400, gt=0, description="a tracked (model, version) pair with no record for this long (wall clock) "
                                 "and no open window gives its max_models slot to a new pair; null: never")
    max_categories: int = Field(1000, gt=0, description="distinct values kept per model and text column; "
                                                        "later new values become __other__")
    client_options: dict[str, Any] = Field(default_factory=dict,
                                           description="extra kafka-python options, e.g. request_timeout_ms")
    # outages of the database or the broker: consumption pauses and retries with exponential backoff
    outage_retry_initial_seconds: float = Field(0.5, gt=0, allow_inf_nan=False,
                                                description="first delay after a failed batch")
    outage_retry_max_seconds: float = Field(30.0, gt=0, allow_inf_nan=False,
                                            description="the delay doubles up to this")
    # security of the connections to the brokers, for the consumer and the dead-letter producer
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"] | None = None
    sasl_plain_username: str | None = Field(None, min_length=1)
    sasl_plain_password: SecretStr | None = Field(None, description="never logged; better from the environment")
    sasl_plain_password_file: FilePath | None = Field(None, description="file holding the password")
    ssl_cafile: FilePath | None = Field(None, description="CA certificates (PEM) to verify the brokers")
    ssl_certfile: FilePath | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: FilePath | None = Field(None, description="client private key (PEM)")
    ssl_check_hostname: bool = Field(True, description="the broker certificate must name the host")

    @field_validator("client_options")
    @classmethod
    def _known_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        from kafka import KafkaConsumer, KafkaProducer

        unknown = sorted(set(v) - set(KafkaConsumer.DEFAULT_CONFIG) - set(KafkaProducer.DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"not a kafka-python consumer or producer option: {', '.join(unknown)}")
        fixed = sorted(set(v) & set(FIXED_CLIENT_OPTIONS))
        if fixed:
            raise ValueError(f"{', '.join(fixed)}: set by inferwatch (group_id, offsets and batch size come from "
                             "the kafka keys of the same names; commits and acks are what exactly-once needs)")
        explicit = sorted(set(v) & set(SECURITY_KEYS))
        if explicit:
            raise ValueError(f"set {', '.join('kafka.' + k for k in explicit)} instead of putting "
                             f"{'it' if len(explicit) == 1 else 'them'} here")
        return v

    @field_validator("sasl_plain_password_file")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is not None:
            try:
                v.read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {v}: {exc.strerror}") from None
        return v

    @model_validator(mode="after")
    def _security(self) -> KafkaConfig:
        def bad(message: str) -> PydanticCustomError:
            # the message already names the key: no "Value error, " prefix
            return PydanticCustomError("kafka_settings", message)

        protocol = self.security_protocol
        if self.sasl_plain_password is not None and self.sasl_plain_password_file is not None:
            raise bad("kafka.sasl_plain_password and kafka.sasl_plain_password_file are both set; keep one")
        if not protocol.startswith("SASL_"):
            given = [k for k in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                                 "sasl_plain_password_file") if getattr(self, k) is not None]
            if given:
                raise bad(f"kafka.{given[0]} needs kafka.security_protocol SASL_PLAINTEXT or SASL_SSL "
                          f"(it is {protocol})")
        elif self.sasl_mechanism is None:
            raise bad(f"kafka.sasl_mechanism is required with kafka.security_protocol {protocol}")
        elif self.sasl_mechanism != "GSSAPI":  # Kerberos logs in without a password
            if self.sasl_plain_username is None:
                raise bad(f"kafka.sasl_plain_username is required with kafka.sasl_mechanism {self.sasl_mechanism}")
            if self.sasl_plain_password is None and self.sasl_plain_password_file is None:
                raise bad(f"kafka.sasl_plain_password (or kafka.sasl_plain_password_file) is required with "
                          f"kafka.sasl_mechanism {self.sasl_mechanism}")
        if protocol not in ("SSL", "SASL_SSL"):
            given = [k for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, k) is not None]
            if given:
                raise bad(f"kafka.{given[0]} needs kafka.security_protocol SSL or SASL_SSL (it is {protocol})")
        if self.outage_retry_max_seconds < self.outage_retry_initial_seconds:
            raise bad("kafka.outage_retry_max_seconds must not be below kafka.outage_retry_initial_seconds")
        return self

    def security_options(self) -> dict[str, Any]:
        """The security settings as kafka-python options, for the consumer and the producer alike
        (the password in clear: hand it to the client only, never log it).

        Raises:
            ValueError: the password file can no longer be read.
        """
        out: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            out["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_plain_username is not None:
                out["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                out["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
            elif self.sasl_plain_password_file is not None:
                try:
                    # one trailing line break is the file's, not the password's
                    text = self.sasl_plain_password_file.read_text()
                except OSError as exc:
                    raise ValueError(f"kafka.sasl_plain_password_file: cannot read {self.sasl_plain_password_file}: "
                                     f"{exc.strerror}") from None
                out["sasl_plain_password"] = text[:-1] if text.endswith("\n") else text
        if self.security_protocol in ("SSL", "SASL_SSL"):
            out["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, key) is not None:
                    out[key] = str(getattr(self, key))
        return out

    def client_config(self) -> dict[str, Any]:
        """``client_options`` plus the security options: what kafka-python receives."""
        return {**self.client_options, **self.security_options()}

    def consumer_config(self) -> dict[str, Any]:
        """What the consumer receives: :data:`CONSUMER_DEFAULTS` overridden by
        :meth:`client_config`."""
        return {**CONSUMER_DEFAULTS, **self.client_config()}


# kafka-python consumer options inferwatch changes from the client's defaults (client_options
# may set others): 8 MiB per partition and fetch (1 MiB by default) lets one poll fill
# max_poll_records, so the client fetches, and the collector stores, fewer and larger batches
CONSUMER_DEFAULTS: dict[str, Any] = {"max_partition_fetch_bytes": 8 * 1024 * 1024}


# The kafka-python options that have their own key in the kafka section.
SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                 "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


MAX_WINDOWS_PER_RECORD = 24


class FormatsConfig(_Section):
    """How messages are decoded: the wire format of each topic (or replayed file) and the names
    the format itself does not carry (see :class:`collector.formats.FormatConfig`)."""

    default: FormatConfig = Field(default_factory=FormatConfig,
                                  description="for topics not listed; format auto detects it per message")
    topics: dict[str, FormatConfig] = Field(default_factory=dict, description="topic -> its format settings")

    def for_topic(self, topic: str) -> FormatConfig:
        """The format settings of ``topic``."""
        return self.topics.get(topic, self.default)


class JoinConfig(_Section):
    """Joining request and response halves logged as separate messages (KServe, Seldon) by
    request id, in a bounded buffer per partition number (request and response topics must be
    partitioned alike, e.g. both keyed by request id, so the two halves meet in one member)."""

    ttl_seconds: int = Field(60, gt=0, description="a half waits this long in event time for its partner; "
                                                   "then it is used alone (a request for feature drift)")
    max_pending: int = Field(100_000, gt=0, description="most halves waiting per partition; the oldest are "
                                                        "given up early beyond it")
    max_bytes: int = Field(64 * 2**20, gt=0, description="most estimated bytes of waiting halves per partition")
    max_skew_seconds: int | None = Field(600, ge=0, description="a waiting half expires on its partner side's "
                                         "clock, taken as at least its own side's clock minus this (so requests "
                                         "whose responses never come still expire, and their partition's windows "
                                         "close at most this much later); null: no bound but max_pending and "
                                         "max_bytes (inferwatch replay's default when not set)")


class ModelPerformance(_Section):
    """How to read one model's predictions and labels for realized performance."""

    task: Literal["classification", "regression"]
    prediction: str = Field(..., min_length=1, description="prediction name holding the predicted class "
                                                           "(classification) or value (regression)")
    labels: list[str] = Field(default_factory=list, description="classification: every class, as text "
                                                                "(booleans as true/false)")
    probabilities: list[str] = Field(default_factory=list,
                                     description="prediction names of the class probabilities, in labels order "
                                                 "(or one: the positive class's)")
    pos_label: str | None = Field(None, description="binary positive class (default: the second label)")

    def spec(self):
        """The :class:`collector.join.PerformanceSpec` of this model.

        Raises:
            ValueError: the labels or probabilities do not fit the task.
        """
        from collector.join import PerformanceSpec
        from collector.record import PREDICTION_PREFIX

        return PerformanceSpec(self.task, PREDICTION_PREFIX + self.prediction, tuple(self.labels),
                               tuple(PREDICTION_PREFIX + p for p in self.probabilities), self.pos_label)


class PerformanceConfig(_Section):
    """Realized performance: predictions joined with the ground truth that arrives later (a
    labels topic, SageMaker ground-truth lines, Seldon feedback, or a label in the record)."""

    label_delay_seconds: int = Field(7 * 86_400, gt=0, description="longest time from a prediction to its label "
                                                                   "(event time); later labels are counted, unused")
    models: dict[str, ModelPerformance] = Field(default_factory=dict,
                                                description="model -> how to read its predictions and labels")

    @field_validator("models")
    @classmethod
    def _specs(cls, v: dict[str, ModelPerformance]) -> dict[str, ModelPerformance]:
        for model, m in v.items():
            try:
                m.spec()
            except ValueError as exc:
                raise ValueError(f"{model}: {exc}") from None
        return v


class WindowConfig(_Section):
    """Event-time windows: tumbling, or sliding when ``slide_seconds`` is set."""

    length_seconds: int = Field(3600, gt=0, le=10 * 366 * 86_400)
    slide_seconds: int | None = Field(None, gt=0, description="sliding windows: a new window starts every "
                                                              "slide; must divide length_seconds (null: tumbling)")
    max_records: int = Field(100_000, gt=0, description="a window segment is cut at this many records")
    allowed_lateness_seconds: int = Field(0, ge=0)
    idle_close_seconds: int | None = Field(300, gt=0, description="close ended windows of a model idle this long")
    max_future_seconds: int | None = Field(86_400, gt=0,
                                           description="reject timestamps further ahead of the wall clock")
    origin: datetime = Field(datetime(1970, 1, 1, tzinfo=timezone.utc),
                             description="a window boundary; others are whole lengths away from it")
    sample_retention_days: int = Field(30, ge=0, description="keep each closed window's raw numeric values "
                                                              "(for backfill and reports) this many days after "
                                                              "its end; 0: do not store them")

    @field_validator("slide_seconds")
    @classmethod
    def _divides(cls, v: int | None, info) -> int | None:
        length = info.data.get("length_seconds")
        if v is not None and length is not None and (v > length or length % v):
            raise ValueError(f"must divide length_seconds ({length}), e.g. {length // 4 or 1}")
        if v is not None and length is not None and length // v > MAX_WINDOWS_PER_RECORD:
            # each record is stored once per window covering it
            raise ValueError(f"at most {MAX_WINDOWS_PER_RECORD} overlapping windows (length_seconds / slide_seconds); "
                             f"use at least {-(-length // MAX_WINDOWS_PER_RECORD)}")
        return v

    @field_validator("origin")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2015-01-01T00:00:00Z")
        return v

    @property
    def origin_ms(self) -> int:
        """The origin in epoch milliseconds."""
        return int(self.origin.timestamp() * 1000)


class ReferenceConfig(_Section):
    """Reference profiles."""

    bootstrap_records: int = Field(5000, gt=0, description="first N records of a version become its reference")
    sample_size: int = Field(50_000, gt=0, description="raw values kept per numeric column")
    n_bins: int = Field(10, ge=2, description="quantile bins for PSI and Jensen-Shannon distance")


class DriftSettings(_Section):
    """Drift decisions (see detectors.drift.DriftConfig for the meaning of each field)."""

    mode: Literal["recommended", "evidently"] = Field(
        "recommended", description="recommended rule, or Evidently 0.7's default data-drift rule")
    alpha: float = Field(0.001, gt=0, lt=1, allow_inf_nan=False,
                         description="level of the adjusted p-values (family-wise for bonferroni)")
    correction: Literal["bonferroni", "holm", "bh", "none"] = Field(
        "bonferroni", description="multiple-testing correction across the columns of a window")
    numeric_test: str = Field("auto", description="auto, ks, anderson_darling, cramer_von_mises, mann_whitney_u, "
                                                  "welch_t or epps_singleton")
    categorical_test: str = Field("auto", description="auto (chi2 / Fisher / merged rare categories), chi2, g_test")
    decision: Literal["p_value", "effect_size", "both", "calibrated"] = Field(
        "p_value", validate_default=True, description="what makes a column drifted")
    numeric_effect_threshold: float = Field(0.1, gt=0, allow_inf_nan=False,
                                            description="Wasserstein-1 in reference std units")
    categorical_effect_threshold: float = Field(0.1, gt=0, le=1, allow_inf_nan=False,
                                                description="Jensen-Shannon distance (base 2)")
    false_alarm_rate: float = Field(0.001, gt=0, lt=1, allow_inf_nan=False,
                                    description="per-window rate of the calibrated decision")
    test_missing_share: bool = Field(True, description="test each column's missing-value share against the reference")
    min_count: int = Field(30, gt=0, description="fewer values on either side -> insufficient data")
    psi_eps: float = Field(1e-4, gt=0, lt=1, allow_inf_nan=False)
    min_drifted_columns: int = Field(1, gt=0, description="dataset drift needs at least this many drifted features")
    share_threshold: float | None = Field(None, gt=0, le=1,
                                          description="and, if set, at least this share of features drifted")
    categorical: dict[str, list[str]] = Field(default_factory=dict,
                                              description="model -> columns always treated as categorical")

    @field_validator("numeric_test", "categorical_test")
    @classmethod
    def _known_test(cls, v: str, info) -> str:
        from detectors.drift import CATEGORICAL_TESTS, NUMERIC_TESTS

        known = NUMERIC_TESTS if info.field_name == "numeric_test" else CATEGORICAL_TESTS
        if v != "auto" and v not in known:
            raise ValueError(f"must be 'auto' or one of {sorted(known)}")
        return v

    @field_validator("decision")
    @classmethod
    def _decidable(cls, v: str, info) -> str:
        # anderson_darling's p-value is floored at 0.001 (scipy's table): it could never pass a
        # stricter level, which would silently hide every drift
        if v in ("p_value", "both") and info.data.get("numeric_test") == "anderson_darling" and (
                info.data.get("correction") != "none" or info.data.get("alpha", 1.0) <= 0.001):
            raise ValueError("numeric_test anderson_darling reports p-values no smaller than 0.001, so a p-value "
                             "decision needs correction: none and alpha > 0.001 (or decision: effect_size)")
        return v


DATASET_DRIFT_RULE = "InferwatchDatasetDrift"


class AlertConfig(_Section):
    """Alert rules, their lifecycle, receivers and the outbox.

    Without ``rules`` one rule is implied: ``InferwatchDatasetDrift`` over the window's dataset
    verdict (or, with ``fire_share``, its drift share), held for ``k_of_n`` windows. With
    ``webhook_url`` a receiver named ``webhook`` (Alertmanager webhook format) is implied.
    """

    rules: list[RuleConfig] = Field(default_factory=list)
    group_by: list[str] = Field(["model"], description="labels notifications are grouped by (one "
                                                       "notification per group and evaluation)")
    repeat_interval_seconds: float = Field(4 * 3600, gt=0, description="re-send a firing alert this often")
    alertmanager_resend_seconds: float = Field(60, gt=0, description="re-push firing alerts to Alertmanager "
                                                                     "receivers this often")
    serving_min_count: int = Field(20, ge=1, description="fewest values a serving signal needs in a window")
    webhook_url: str | None = None
    fire_share: float | None = Field(None, gt=0, le=1,
                                     description="fire when the drift share reaches this; null: when the window's "
                                                 "dataset verdict is drift")
    resolve_share: float | None = Field(None, gt=0, le=1,
                                        description="resolve when it falls below this (default fire_share)")

    k_of_n: tuple[int, int] = Field((1, 1), description="fire while k of the last n windows with a verdict "
                                                         "drifted (without fire_share)")

    @field_validator("resolve_share")
    @classmethod
    def _hysteresis(cls, v: float | None, info) -> float | None:
        fire = info.data.get("fire_share")
        if v is not None and fire is None:
            raise ValueError("resolve_share needs fire_share")
        if v is not None and v > fire:
            raise ValueError("resolve_share must not exceed fire_share")
        return v

    @field_validator("k_of_n")
    @classmethod
    def _k_of_n(cls, v: tuple[int, int], info) -> tuple[int, int]:
        k, n = v
        if not 1 <= k <= n:
            raise ValueError(f"needs 1 <= k <= n, got {list(v)}")
        if n > 1 and info.data.get("fire_share") is not None:
            raise ValueError("k of n windows applies to the dataset verdict; it cannot be combined with fire_share")
        return v

    timeout_seconds: float = Field(5.0, gt=0)
    external_url: str = "http://127.0.0.1:9108"
    receivers: list[ReceiverConfig] = Field(default_factory=list, description="notification receivers: "
                                            "webhook, alertmanager, pagerduty, slack")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)

    @field_validator("receivers")
    @classmethod
    def _unique_receivers(cls, v: list[ReceiverConfig], info) -> list[ReceiverConfig]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"receiver names must be unique: {', '.join(dup)}")
        if info.data.get("webhook_url") and "webhook" in names:
            raise ValueError("webhook_url implies a receiver named webhook: rename that receiver")
        return v

    def all_receivers(self) -> list[ReceiverConfig]:
        """The receivers, plus ``webhook`` (Alertmanager webhook format) for ``webhook_url``."""
        implied = [] if not self.webhook_url else [ReceiverConfig(name="webhook", type="webhook", url=self.webhook_url,
                                                                  timeout_seconds=self.timeout_seconds)]
        return [*self.receivers, *implied]

    def outbox_targets(self) -> dict[str, tuple[str, Endpoint]]:
        """Outbox target name → (kind, endpoint) of every receiver (:meth:`all_receivers`)."""
        return {r.name: (r.type, r) for r in self.all_receivers()}

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("rules")
    @classmethod
    def _unique_rules(cls, v: list[RuleConfig]) -> list[RuleConfig]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique: {', '.join(dup)}")
        return v

    @model_validator(mode="after")
    def _group_by_labels(self) -> AlertConfig:
        known = {"alertname", "model", "model_version", "severity", "feature", "role", "metric"}
        known.update(k for r in self.rules for k in r.labels)
        unknown = [g for g in self.group_by if g not in known]
        if unknown:
            raise ValueError(f"group_by: {unknown[0]!r} is no alert label; labels: {', '.join(sorted(known))}")
        return self

    @model_validator(mode="after")
    def _legacy_keys(self) -> AlertConfig:
        if self.rules and (self.fire_share is not None or self.k_of_n != (1, 1)):
            raise ValueError("fire_share, resolve_share and k_of_n shape the implied rule; with rules, "
                             "set them in the rule (threshold, resolve_threshold, for)")
        return self

    def effective_rules(self) -> list[RuleConfig]:
        """The configured rules, or the implied dataset-drift rule."""
        if self.rules:
            return self.rules
        if self.fire_share is not None:
            return [RuleConfig(name=DATASET_DRIFT_RULE, signal="dataset_drift_share", op=">=",
                               threshold=self.fire_share, resolve_threshold=self.resolve_share)]
        return [RuleConfig(name=DATASET_DRIFT_RULE, signal="dataset_drift", **{"for": self.k_of_n})]


class HooksConfig(_Section):
    """Retraining and autoscaling hooks (names unique within each list and across receivers)."""

    retrain: list[RetrainHookConfig] = Field(default_factory=list, description="HTTP calls that start a "
                                             "retraining run when a drift alert starts firing")
    autoscale: list[AutoscaleConfig] = Field(default_factory=list, description="desired replicas from the "
                                             "serving signals of each closed window")

    @field_validator("retrain", "autoscale")
    @classmethod
    def _unique(cls, v: list, info) -> list:
        names = [h.name for h in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{info.field_name} hook names must be unique: {', '.join(dup)}")
        return v


class MetricsConfig(_Section):
    """The Prometheus ``/metrics`` endpoint."""

    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535, description="0 picks a free port")
    enabled: bool = True
    max_label_values: int = Field(500, ge=1, description="distinct values per label (model, model_version, column, "
                                  "alertname, topic); further ones are exported as __overflow__ and counted in "
                                  "inferwatch_label_values_overflowed_total")
    lag_interval_seconds: float = Field(15, gt=0, allow_inf_nan=False,
                                        description="how often the consumer lag is computed from the log-end offsets "
                                                    "the broker reports, independently of the poll loop")


class ApiConfig(_Section):
    """The HTTP API (:mod:`inferwatch.api`): served by ``inferwatch run`` when enabled, and by
    ``inferwatch api`` alone. Reads are open; writes (silences, reference uploads) need
    ``Authorization: Bearer <token>``, so serving the API needs ``token``."""

    enabled: bool = Field(False, description="serve the API from inferwatch run")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    token: Secret | None = Field(None, description="bearer token of the write endpoints: {env: NAME} or {file: PATH}")
    max_body_bytes: int = Field(64 * 1024, gt=0, description="largest request body of the JSON endpoints (silences)")
    max_upload_bytes: int = Field(64 * 2**20, gt=0, description="largest reference upload (CSV, Parquet or JSON "
                                                                "lines)")

    @model_validator(mode="after")
    def _token_when_enabled(self) -> ApiConfig:
        if self.enabled and self.token is None:
            raise PydanticCustomError("api_token", "api.token is required when api.enabled is true (the write "
                                                   "endpoints need it): set api.token to {env: NAME} or {file: PATH}")
        return self


class Settings(BaseSettings):
    """The whole inferwatch configuration."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_", env_nested_delimiter="__", extra="forbid")

    database_url: str = "sqlite:///inferwatch.db"
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    formats: FormatsConfig = Field(default_factory=FormatsConfig)
    join: JoinConfig = Field(default_factory=JoinConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    alerting: AlertConfig = Field(default_factory=AlertConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)

    @model_validator(mode="after")
    def _one_name_per_outbox_target(self) -> Settings:
        seen: dict[str, str] = {}
        for where, name in ([("alerting.receivers", n) for n in self.alerting.outbox_targets()]
                            + [("hooks.retrain", h.name) for h in self.hooks.retrain]
                            + [("hooks.autoscale", h.name) for h in self.hooks.autoscale if h.apply == "webhook"]):
            if name in seen:
                raise ValueError(f"{where}: name {name!r} is already used in {seen[name]}; receivers and hooks "
                                 "share one set of names (the outbox targets)")
            seen[name] = where
        slowest = max((e.timeout_seconds for _, e in self.outbox_targets().values()), default=0.0)
        if self.alerting.outbox.lease_seconds < 2 * slowest:
            raise ValueError(f"alerting.outbox.lease_seconds ({self.alerting.outbox.lease_seconds:g}) must be at "
                             f"least twice the longest timeout_seconds of a receiver or hook ({slowest:g}), so a "
                             "message being sent is never claimed by a second worker")
        return self

    def outbox_targets(self) -> dict[str, tuple[str, Endpoint]]:
        """Every outbox target: name → (kind, endpoint). Receivers (and the implied
        ``webhook``), retraining hooks (kind = the hook's kind; their ``repeat_statuses`` count
        as delivered) and autoscaling hooks applied through a webhook."""
        targets = dict(self.alerting.outbox_targets())
        targets.update({h.name: (h.kind, h) for h in self.hooks.retrain})
        targets.update({h.name: ("webhook", h.webhook) for h in self.hooks.autoscale if h.apply == "webhook"})
        return targets

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        # environment beats the file: the file's values arrive as init kwargs, listed last
        return env_settings, init_settings


def _key_name(data: Any, loc: tuple) -> str:
    """The dotted key of a validation error; a list entry is shown as ``[i]``, followed by its
    ``name`` when it has one (``alerting.rules[1] (HighLatency).op``)."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            out += f"[{part}]" + (f" ({name})" if isinstance(name, str) else "")
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_config(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration.

    Args:
        path: YAML file; None uses defaults and the environment only.
        overrides: top-level keys applied over the file (before environment variables).

    Raises:
        ConfigError: unreadable file, not a mapping, or invalid keys (each named).
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(loaded).__name__}")
        data = loaded or {}
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _key_name(data, err["loc"])
            msg = "unknown key (check the spelling)" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"  {key}: {msg}")
        raise ConfigError("invalid configuration:\n" + "\n".join(problems)) from None
