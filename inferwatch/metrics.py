"""Prometheus metrics served on ``/metrics``.

Names follow Prometheus conventions: the ``inferwatch_`` prefix, ``_total`` on counters, base
units (seconds, ratios 0-1). Labels are bounded: model, model version, column, role, method,
reason — never request ids or raw values. Drift gauges hold the values of the most recently
closed window of each model version, identical to what is stored in the database for that window.

Label values that come from the data (model, model version, column, alert name, topic) are
capped: once a label has seen ``metrics.max_label_values`` distinct values, further values are
exported as :data:`OVERFLOW` and each replacement is counted in
``inferwatch_label_values_overflowed_total{label}``. Every call site maps such values through
:meth:`Metrics.label_value` (or :meth:`Metrics.model_label`, ...) before it sets a series.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from detectors.profile import CategoricalProfile, ColumnProfile, NumericProfile, Profile

#: the label value that stands for every value beyond a label's cap
OVERFLOW = "__overflow__"
#: labels whose values come from the data, and so are capped
CAPPED_LABELS = ("model", "model_version", "column", "alertname", "topic")
#: upper bounds (seconds) of ``inferwatch_serving_latency_seconds``: 5 ms (small models on a
#: GPU) to a minute (long generations)
LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                           30.0, 60.0)
#: quantile label -> serving signal (:data:`detectors.serving.SERVING_SIGNALS`) of
#: ``inferwatch_serving_window_latency_seconds``
WINDOW_LATENCY_QUANTILES = (("0.5", "latency_p50_seconds"), ("0.95", "latency_p95_seconds"),
                            ("0.99", "latency_p99_seconds"))


class LabelCap:
    """At most ``max_values`` distinct values per label name; later values become :data:`OVERFLOW`.

    Thread-safe (the poll loop, the scheduler job and the scrape share it). Values admitted once
    stay admitted for the life of the process, so a series never changes its label value.

    Args:
        max_values: distinct values kept per label name (≥ 1).
        on_overflow: called with the label name once per replacement.

    Raises:
        ValueError: ``max_values`` < 1.
    """

    def __init__(self, max_values: int, on_overflow) -> None:
        if max_values < 1:
            raise ValueError(f"max_values must be >= 1, got {max_values}")
        self.max_values = int(max_values)
        self._seen: dict[str, set[str]] = {}
        self._on_overflow = on_overflow
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str) -> str:
        """``value`` if ``label`` has seen it or has room for it, else :data:`OVERFLOW` (counted)."""
        seen = self._seen.get(label)
        if seen is not None and value in seen:  # the common case, without the lock
            return value
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen or len(seen) < self.max_values:
                seen.add(value)
                return value
        self._on_overflow(label)
        return OVERFLOW


def _observations(seconds: np.ndarray) -> np.ndarray:
    """The latencies worth observing: finite and not negative."""
    return seconds[np.isfinite(seconds) & (seconds >= 0)]


class LatencyHistogram(Collector):
    """A histogram per model fed a batch of observations at once (prometheus_client's
    :class:`~prometheus_client.Histogram` observes one value per call).

    Args:
        name: the family name (base unit seconds).
        documentation: its help text.
        buckets: upper bounds, increasing (``+Inf`` is added).
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name, self.documentation = name, documentation
        self._edges = np.asarray(tuple(buckets), dtype=np.float64)
        self._le = [floatToGoString(e) for e in self._edges] + ["+Inf"]
        self._counts: dict[str, np.ndarray] = {}  # model -> observations per bucket (not cumulative), +Inf last
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, model: str, seconds: np.ndarray) -> int:
        """Add observations (seconds; NaN, infinite and negative values are skipped) to the
        model's series; returns how many were added."""
        seconds = _observations(seconds)
        if not len(seconds):
            return 0
        # le is inclusive: a value equal to a bound belongs to that bound's bucket
        counts = np.bincount(np.searchsorted(self._edges, seconds, side="left"), minlength=len(self._le))
        total = float(seconds.sum())
        with self._lock:
            if model in self._counts:
                self._counts[model] += counts
                self._sums[model] += total
            else:
                self._counts[model] = counts.astype(np.int64)
                self._sums[model] = total
        return len(seconds)

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=["model"])]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=["model"])
        with self._lock:
            series = [(m, np.cumsum(c).tolist(), self._sums[m]) for m, c in sorted(self._counts.items())]
        for model, cumulative, total in series:
            family.add_metric([model], list(zip(self._le, cumulative)), total)
        yield family


class WindowLatencySummary(Collector):
    """``inferwatch_serving_window_latency_seconds``: the latency quantiles of each model
    version's last closed window, as a summary (quantiles of a sliding time window, which a
    window is), with ``_count`` and ``_sum`` over every closed window's latencies.

    A gauge cannot carry the ``quantile`` label (``promtool check metrics`` refuses it), hence
    the summary type; queries read ``{quantile="0.95"}`` either way.
    """

    name = "inferwatch_serving_window_latency_seconds"
    documentation = ("Request latency quantiles (0.5, 0.95, 0.99) of the last closed window, from the logged "
                     "latency; _count and _sum over the latencies of every closed window.")

    def __init__(self) -> None:
        # (model, version) -> ({quantile label: seconds}, count, sum)
        self._series: dict[tuple[str, str], tuple[dict[str, float], int, float]] = {}
        self._lock = threading.Lock()

    def set_window(self, model: str, version: str, quantiles: Mapping[str, float], count: int,
                   total_seconds: float) -> None:
        """Replace the quantiles of (model, version) (empty: too few values, none exported) and
        add the window's number of latencies and their sum (seconds)."""
        with self._lock:
            _old, n, s = self._series.get((model, version), ({}, 0, 0.0))
            if quantiles or n or count:
                self._series[(model, version)] = (dict(quantiles), n + int(count), s + float(total_seconds))

    def describe(self):
        return [Metric(self.name, self.documentation, "summary")]

    def collect(self):
        family = Metric(self.name, self.documentation, "summary")
        with self._lock:
            series = sorted(self._series.items())
        for (model, version), (quantiles, count, total) in series:
            labels = {"model": model, "model_version": version}
            for q, _signal in WINDOW_LATENCY_QUANTILES:
                if q in quantiles:
                    family.add_sample(self.name, {**labels, "quantile": q}, quantiles[q])
            family.add_sample(self.name + "_sum", labels, total)
            family.add_sample(self.name + "_count", labels, count)
        yield family


class Metrics:
    """The metric families of one inferwatch process, on their own registry.

    Args:
        max_label_values: distinct values kept per capped label (:data:`CAPPED_LABELS`, ≥ 1;
            config ``metrics.max_label_values``).

    Raises:
        ValueError: ``max_label_values`` < 1.
    """

    def __init__(self, max_label_values: int = 500) -> None:
        r = self.registry = CollectorRegistry()
        self.label_values_overflowed = Counter(
            "inferwatch_label_values_overflowed_total",
            f"Label values replaced by {OVERFLOW} because the label had reached metrics.max_label_values distinct "
            "values, by label.", ["label"], registry=r)
        for label in CAPPED_LABELS:
            self.label_values_overflowed.labels(label)
        self._cap = LabelCap(max_label_values, lambda label: self.label_values_overflowed.labels(label).inc())
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
        self.consumer_lag = Gauge("inferwatch_consumer_lag_records",
                                  "Records not processed yet, per assigned partition: the log-end offset read "
                                  "from the broker every metrics.lag_interval_seconds minus "
                                  "inferwatch_consumer_offset.", ["topic", "partition"], registry=r)
        self.consumer_offset = Gauge("inferwatch_consumer_offset",
                                     "Next offset to process, per assigned partition.", ["topic", "partition"],
                                     registry=r)
        self.serving_latency = LatencyHistogram(
            "inferwatch_serving_latency_seconds", "Request latency from the logged records (latency_ms), per model.",
            LATENCY_BUCKETS_SECONDS)
        r.register(self.serving_latency)
        self.serving_requests = Counter("inferwatch_serving_requests_total",
                                        "Logged requests with a serving.status_code, by outcome: error (status code "
                                        ">= 500) or ok.", ["model", "outcome"], registry=r)
        self.serving_window_latency = WindowLatencySummary()
        r.register(self.serving_window_latency)
        self.serving_window_error_ratio = Gauge(
            "inferwatch_serving_window_error_ratio",
            "Share of requests with serving.status_code >= 500 in the last closed window (0-1).", mv, registry=r)
        self.serving_window_throughput = Gauge(
            "inferwatch_serving_window_throughput_requests_per_second",
            "Records per second of window length in the last closed window.", mv, registry=r)
        self.prediction_drift_detected = Gauge(
            "inferwatch_prediction_drift_detected",
            "1 when a prediction column drifted in the last closed window, else 0 (absent when none was tested).",
            mv, registry=r)
        self.prediction_bin_share = Gauge(
            "inferwatch_prediction_bin_share",
            "Share (0-1) of a prediction column's values in each bin, in the last closed window (window=\"current\") "
            "and in its reference (window=\"reference\"): numeric columns on the reference's histogram bins, "
            "categorical ones per category; missing and non-finite values left out.",
            ["model", "model_version", "column", "window", "bin"], registry=r)
        self._prediction_bins: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self.alerts = Gauge("inferwatch_alerts", "Alert instances per state (pending, firing).",
                            ["alertname", "model", "state"], registry=r)
        self._consumer_partitions: set[tuple[str, str]] = set()
        self._server = None

    # --- capped label values ---------------------------------------------------------------
    def label_value(self, label: str, value: str) -> str:
        """The value to export for ``label``: ``value`` itself while the label is under its
        cap (or has seen it before), else :data:`OVERFLOW`, counted in
        ``inferwatch_label_values_overflowed_total{label}``. Call it once per batch or window
        per value, not per record."""
        return self._cap(label, value)

    def model_label(self, model: str) -> str:
        """:meth:`label_value` of the ``model`` label."""
        return self._cap("model", model)

    def version_label(self, model_version: str) -> str:
        """:meth:`label_value` of the ``model_version`` label."""
        return self._cap("model_version", model_version)

    def column_label(self, column: str) -> str:
        """:meth:`label_value` of the ``column`` label."""
        return self._cap("column", column)

    def alert_labels(self, labels: Mapping[str, str]) -> tuple[str, str, str]:
        """``(alertname, model, model_version)`` of an alert instance's labels, as exported."""
        return (self._cap("alertname", labels["alertname"]), self._cap("model", labels["model"]),
                self._cap("model_version", labels["model_version"]))

    # --- serving ---------------------------------------------------------------------------
    def observe_serving(self, model: str, latency_seconds: np.ndarray, ok: int, error: int) -> None:
        """Add a batch of requests of one model: their latencies (seconds, NaN where unknown;
        skipped) to ``inferwatch_serving_latency_seconds`` and their outcomes to
        ``inferwatch_serving_requests_total``.

        Args:
            model: the label value (already through :meth:`model_label`).
        """
        self.serving_latency.observe(model, latency_seconds)
        if ok:
            self.serving_requests.labels(model, "ok").inc(ok)
        if error:
            self.serving_requests.labels(model, "error").inc(error)

    def set_window_serving(self, model: str, version: str, signals: Mapping[str, float | None],
                           latency_seconds: np.ndarray) -> None:
        """Export the serving signals of a closed window (:func:`detectors.serving.serving_signals`):
        latency quantiles, error ratio and throughput; a signal that is None (too few values)
        removes its series.

        Args:
            model, version: label values (through :meth:`model_label`, :meth:`version_label`).
            latency_seconds: the window's logged latencies (NaN where unknown; skipped as in
                :meth:`observe_serving`), counted into the summary's ``_count`` and ``_sum``.
        """
        quantiles = {q: signals[s] for q, s in WINDOW_LATENCY_QUANTILES if signals.get(s) is not None}
        latency = _observations(latency_seconds)
        self.serving_window_latency.set_window(model, version, quantiles, len(latency), float(latency.sum()))
        set_or_remove(self.serving_window_error_ratio, (model, version), signals.get("error_rate"))
        set_or_remove(self.serving_window_throughput, (model, version), signals.get("throughput_rps"))

    # --- prediction distribution ------------------------------------------------------------
    def set_prediction_distribution(self, model: str, version: str,
                                    shares: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Replace the ``inferwatch_prediction_bin_share`` series of a model version with those
        of its last closed window; series of an earlier window that ``shares`` does not hold
        (bins of a replaced reference, categories no longer seen, columns without enough data)
        are removed.

        Args:
            model, version: label values (through :meth:`model_label`, :meth:`version_label`).
            shares: column label (through :meth:`column_label`) -> ``"current"`` /
                ``"reference"`` -> bin label -> share in [0, 1] (:func:`prediction_shares`).
                A model, version or column that is :data:`OVERFLOW` is not exported: the
                distributions of several columns folded into one series would be meaningless.
        """
        exported: set[tuple[str, ...]] = set()
        if OVERFLOW not in (model, version):
            for column, windows in shares.items():
                if column == OVERFLOW:
                    continue
                for window, bins in windows.items():
                    for label, share in bins.items():
                        labels = (model, version, column, window, label)
                        self.prediction_bin_share.labels(*labels).set(share)
                        exported.add(labels)
        for labels in self._prediction_bins.pop((model, version), set()) - exported:
            set_or_remove(self.prediction_bin_share, labels, None)
        if exported:
            self._prediction_bins[(model, version)] = exported

    # --- consumer --------------------------------------------------------------------------
    def set_consumer_positions(self, positions: Mapping[tuple[str, int], tuple[int | None, int | None]]) -> None:
        """Set ``inferwatch_consumer_lag_records`` and ``inferwatch_consumer_offset`` from the
        assigned partitions' ``(next offset, log-end offset)`` (None where unknown; the lag is
        their difference, at least 0); partitions no longer assigned lose their series.

        Args:
            positions: (topic, partition) -> (next offset to process, log-end offset).
        """
        exported = set()
        for (topic, partition), (position, high) in positions.items():
            key = (self.label_value("topic", topic), str(partition))
            set_or_remove(self.consumer_offset, key, None if position is None else float(position))
            lag = None if position is None or high is None else float(max(0, high - position))
            set_or_remove(self.consumer_lag, key, lag)
            exported.add(key)
        for key in self._consumer_partitions - exported:
            set_or_remove(self.consumer_offset, key, None)
            set_or_remove(self.consumer_lag, key, None)
        self._consumer_partitions = exported

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


def set_or_remove(gauge: Gauge, labels: tuple, value: float | None) -> None:
    """Set a gauge, or drop its series when there is no value (never a stale or NaN one)."""
    if value is None or value != value:
        try:
            gauge.remove(*labels)
        except KeyError:
            pass
    else:
        gauge.labels(*labels).set(value)


def bin_labels(edges: np.ndarray) -> list[str]:
    """``bin`` label values of a numeric histogram's bins, in bin order.

    Bin ``i`` is ``[edges[i], edges[i+1])`` (:class:`detectors.profile.NumericProfile`). Each
    label is the bin's zero-padded position (at least two digits, so the labels sort in bin
    order as strings), a space and the interval: ``"00 (-Inf, 0.1)"``, ``"01 [0.1, 0.25)"``,
    ``"09 [0.9, +Inf)"``. A bin of one value ``[v, nextafter(v))`` (value bins of a discrete
    column) reads ``"[v, v]"`` and the bin after it ``"(v, w)"``. Edges are written with the
    fewest significant digits (at least 4) that keep them distinct.

    Args:
        edges: float64 array, shape ``(k + 1,)``, strictly increasing, ``-inf`` first and
            ``+inf`` last.

    Returns:
        ``k`` distinct strings.
    """
    e = np.asarray(edges, dtype=np.float64)
    k = e.size - 1
    # an edge right above the previous one closes a one-value bin; it is written as that value
    above = [False] * (k + 1)
    for j in range(1, k + 1):
        above[j] = bool(np.isfinite(e[j]) and e[j] == np.nextafter(e[j - 1], np.inf) and not above[j - 1])
    base = [j for j in range(k + 1) if np.isfinite(e[j]) and not above[j]]
    digits = 4
    while digits < 17 and len({_number(e[j], digits) for j in base}) < len(base):
        digits += 1
    text = {j: _number(e[j], digits) for j in base}
    width = max(2, len(str(k - 1)))
    out = []
    for i in range(k):
        if above[i + 1]:
            interval = f"[{text[i]}, {text[i]}]"
        else:
            lower = "(-Inf" if e[i] == -np.inf else f"({text[i - 1]}" if above[i] else f"[{text[i]}"
            upper = "+Inf)" if e[i + 1] == np.inf else f"{text[i + 1]})"
            interval = f"{lower}, {upper}"
        out.append(f"{i:0{width}d} {interval}")
    return out


def _number(x: float, digits: int) -> str:
    return format(float(x) + 0.0, f".{digits}g")  # + 0.0: no "-0"


def column_shares(reference: ColumnProfile, current: ColumnProfile | None) -> dict[str, dict[str, float]]:
    """The distribution of one column in a window and in its reference, as shares per bin.

    Numeric columns: the histograms on the reference's edges (:func:`bin_labels`), every bin
    included (empty ones as 0), over the finite values. Categorical columns: one bin per
    category of either table, labelled by the category (``"__other__"`` where the table was
    capped), over the non-missing values; the empty label is written ``'""'``. Missing and
    non-finite values are left out: their share is ``inferwatch_missing_share``.

    Args:
        reference: the reference's profile of the column.
        current: the window's profile of the column, built on the reference's bins; None when
            the window lacks the column.

    Returns:
        ``{"reference": {bin: share}, "current": {bin: share}}``, shares in [0, 1] summing to
        1 per side; a side without values is left out.

    Raises:
        ValueError: the two profiles are of different kinds or bin edges.
    """
    out: dict[str, dict[str, float]] = {}
    if isinstance(reference, NumericProfile):
        if current is not None and (not isinstance(current, NumericProfile)
                                    or not np.array_equal(current.edges, reference.edges)):
            raise ValueError("the window's histogram is not on the reference's bin edges")
        labels = bin_labels(reference.edges)
        for window, prof in (("reference", reference), ("current", current)):
            if prof is not None and prof.count:
                out[window] = dict(zip(labels, (prof.hist / prof.count).tolist()))
        return out
    if current is not None and not isinstance(current, CategoricalProfile):
        raise ValueError("the window's profile is not categorical like the reference's")
    categories = list(reference.counts) + [c for c in (current.counts if current else ()) if c not in reference.counts]
    for window, prof in (("reference", reference), ("current", current)):
        if prof is not None and prof.count:
            out[window] = {c or '""': prof.counts.get(c, 0) / prof.count for c in categories}
    return out


def prediction_shares(reference: Profile, window: Profile, results: Iterable[Mapping]) -> dict[str, dict]:
    """:func:`column_shares` of every prediction column of a closed window whose drift test had
    enough data (``status == "ok"``): fewer than ``drift.min_count`` values in either window
    give no distribution, as they give no drift statistic.

    Args:
        reference: the reference profile.
        window: the window's profile, built on the reference's bins.
        results: the window's drift result rows (``column_name``, ``role``, ``status``).

    Returns:
        column name (with its ``predictions.`` prefix) -> :func:`column_shares`.
    """
    return {r["column_name"]: column_shares(reference.columns[r["column_name"]],
                                            window.columns.get(r["column_name"]))
            for r in results if r["role"] == "prediction" and r["status"] == "ok"}
