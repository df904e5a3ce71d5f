"""Prometheus metrics served on ``/metrics``.

Names follow Prometheus conventions: the ``inferwatch_`` prefix, ``_total`` on counters, base
units. Labels are bounded: model, model version, column, role, method, reason — never request
ids or raw values. Drift gauges hold the values of the most recently closed window of each model
version, identical to what is stored in the database for that window.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class Metrics:
    """The metric families of one inferwatch process, on their own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.records_ingested = Counter("inferwatch_records_ingested_total",
                                        "Prediction records decoded and placed in a window.", ["model"], registry=r)
        self.records_rejected = Counter("inferwatch_records_rejected_total",
                                        "Messages rejected and sent to the dead-letter topic, by reason.",
                                        ["reason"], registry=r)
        self.records_late = Counter("inferwatch_records_late_total",
                                    "Records whose window had already closed.", ["model"], registry=r)
        self.values_capped = Counter("inferwatch_values_capped_total",
                                     "Values replaced by __other__ because a column reached its category cap.",
                                     ["model", "reason"], registry=r)
        self.join_outcomes = Counter("inferwatch_join_halves_total",
                                     "Request and response halves through the request-response join, by outcome "
                                     "(matched pairs, expired, evicted for memory, duplicate, late).",
                                     ["outcome"], registry=r)
        self.labels_joined = Counter("inferwatch_labels_total",
                                     "Predictions and labels through the label join, by outcome (matched, label "
                                     "too late, prediction never labelled, duplicate, ...).", ["outcome"],
                                     registry=r)
        self.realized_performance = Gauge("inferwatch_realized_performance",
                                          "Realized performance of the newest window with labels (accuracy, F1, "
                                          "ROC AUC, log loss, MAE, RMSE, labelled_share, ...), by metric.",
                                          ["model", "model_version", "metric"], registry=r)
        self.windows_closed = Counter("inferwatch_windows_closed_total", "Windows closed, by reason.",
                                      ["model", "reason"], registry=r)
        mv = ["model", "model_version"]
        self.window_records = Gauge("inferwatch_window_records", "Records in the last closed window.", mv,
                                    registry=r)
        self.window_start = Gauge("inferwatch_window_start_timestamp_seconds",
                                  "Start of the last closed window (event time).", mv, registry=r)
        self.dataset_drift_share = Gauge("inferwatch_dataset_drift_share",
                                         "Share of columns drifted in the last closed window (0-1).", mv,
                                         registry=r)
        self.dataset_drift_detected = Gauge("inferwatch_dataset_drift_detected",
                                            "1 when the last closed window's dataset verdict is drift, else 0.", mv,
                                            registry=r)
        col = ["model", "model_version", "column", "role", "method"]
        self.drift_statistic = Gauge("inferwatch_drift_statistic", "Test statistic of the last closed window.",
                                     col, registry=r)
        self.drift_p_value = Gauge("inferwatch_drift_p_value", "p-value of the last closed window.", col,
                                   registry=r)
        self.drift_neg_log10_p = Gauge("inferwatch_drift_neg_log10_p_value",
                                       "-log10 of the p-value of the last closed window; finite where the p-value "
                                       "underflows to 0.", col, registry=r)
        self.drift_detected = Gauge("inferwatch_drift_detected",
                                    "1 when the column drifted in the last closed window, else 0.", col,
                                    registry=r)
        self.psi = Gauge("inferwatch_drift_psi", "Population Stability Index of the last closed window.", col,
                         registry=r)
        self.js_distance = Gauge("inferwatch_drift_jensen_shannon_distance",
                                 "Jensen-Shannon distance (base 2, 0-1) of the last closed window.", col,
                                 registry=r)
        self.missing_share = Gauge("inferwatch_missing_share",
                                   "Share of rows with the column missing or non-finite in the last closed window "
                                   "(0-1).", ["model", "model_version", "column", "role"], registry=r)
        self.missing_share_drift = Gauge("inferwatch_missing_share_drift_detected",
                                         "1 when the column's missing share drifted from the reference's in the last "
                                         "closed window, else 0.", ["model", "model_version", "column", "role"],
                                         registry=r)
        self.alert_firing = Gauge("inferwatch_alert_firing", "Alert instances firing (one per rule and model "
                                  "version; per-column rules one per column).",
                                  ["alertname", "model", "model_version"], registry=r)
        self.hook_calls = Counter("inferwatch_hook_calls_total", "Retraining hook decisions when a drift alert "
                                  "started firing: send (enqueued), cooldown, filtered, dry_run.",
                                  ["hook", "decision"], registry=r)
        self.outbox_deliveries = Counter("inferwatch_outbox_deliveries_total",
                                         "Outbox delivery attempts by target and outcome: delivered, failed (retried "
                                         "later) or dead (refused for good, expired or unknown target).",
                                         ["target", "outcome"], registry=r)
        self.outbox_messages = Gauge("inferwatch_outbox_messages",
                                     "Outbox messages by state: pending (not delivered yet) or dead (given up).",
                                     ["state"], registry=r)
        self.desired_replicas = Gauge("inferwatch_desired_replicas",
                                      "Replicas an autoscaling hook wants for a model's serving workload (after "
                                      "tolerance, stabilisation and min/max), for KEDA or an HPA to scale on; target "
                                      "is namespace/kind/name or the hook name.", ["model", "target"], registry=r)
        self.autoscale_decisions = Counter("inferwatch_autoscale_decisions_total",
                                           "Autoscaling hook evaluations, by outcome (scaled, within_tolerance, "
                                           "stabilizing, owned_by_hpa, owned_by_keda, metric_only, "
                                           "insufficient_data).", ["hook", "reason"], registry=r)
        self.autoscale_errors = Counter("inferwatch_autoscale_errors_total",
                                        "Autoscaling hook evaluations that failed on a Kubernetes API call, by call.",
                                        ["hook", "operation"], registry=r)
        self._server = None

    def outbox_outcome(self, target: str, outcome: str) -> None:
        """Count one outbox attempt (the outbox worker's ``on_outcome``)."""
        self.outbox_deliveries.labels(target, outcome).inc()

    def set_outbox_counts(self, counts: dict[str, int]) -> None:
        """Set the outbox gauge from ``Store.outbox_counts()`` (pending and dead)."""
        for state in ("pending", "dead"):
            self.outbox_messages.labels(state).set(counts.get(state, 0))

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint in a daemon thread; returns the bound port (``port=0`` picks one)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def stop(self) -> None:
        """Stop the HTTP endpoint if it runs."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
