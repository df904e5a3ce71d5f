"""Serving signals of one window, computed from the logged records themselves: latency
quantiles, error rate, throughput (overall and per replica), queue time, time to first token
and token counts.

These drive alert rules ("p95 latency above the SLO") and autoscaling (the HPA formula needs
an observed value per replica). Units are SI base units (seconds, requests per second) as
Prometheus conventions ask; the records carry milliseconds (``latency_ms``,
``serving.queue_ms``, ``serving.time_to_first_token_ms``).

Quantiles are the linear-interpolation sample quantiles of :func:`numpy.quantile` (Hyndman and
Fan's definition 7, the default of numpy and R). A signal whose input has fewer than
``min_count`` values is None: insufficient data, never a made-up number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# name -> unit, for documentation and rule validation
SERVING_SIGNALS: dict[str, str] = {
    "latency_p50_seconds": "s",
    "latency_p95_seconds": "s",
    "latency_p99_seconds": "s",
    "error_rate": "ratio 0-1 of records with serving.status_code >= 500",
    "throughput_rps": "records per second of window length",
    "replicas": "distinct serving.replica values in the window",
    "throughput_per_replica_rps": "records per second per distinct serving.replica",
    "concurrency_per_replica": "requests in flight per replica (Little's law: throughput x mean latency)",
    "queue_time_p95_seconds": "s",
    "time_to_first_token_p95_seconds": "s",
    "prompt_tokens_mean": "tokens per record",
    "completion_tokens_mean": "tokens per record",
    "prompt_tokens_total": "tokens",
    "completion_tokens_total": "tokens",
}


#: a ``serving.status_code`` at or above this is a failed request
ERROR_STATUS_MIN = 500


def is_error(status_code: np.ndarray) -> np.ndarray:
    """Which requests failed, from their ``serving.status_code`` values (float array, NaN where
    not logged: neither error nor ok): status ≥ :data:`ERROR_STATUS_MIN`. The one rule behind
    ``error_rate`` and ``inferwatch_serving_requests_total{outcome="error"}``."""
    return status_code >= ERROR_STATUS_MIN


def _numbers(rows: pd.DataFrame, column: str) -> np.ndarray:
    """Finite float values of a column (empty when the column is absent)."""
    if column not in rows.columns:
        return np.empty(0)
    values = pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def _quantile(values: np.ndarray, q: float, scale: float, min_count: int) -> float | None:
    return None if len(values) < min_count else float(np.quantile(values, q)) * scale


def serving_signals(rows: pd.DataFrame, window_seconds: float, min_count: int = 20) -> dict[str, float | None]:
    """The serving signals (:data:`SERVING_SIGNALS`) of one window's rows.

    Args:
        rows: the window's records (canonical columns: ``latency_ms`` and optional
            ``serving.status_code``, ``serving.replica``, ``serving.queue_ms``,
            ``serving.time_to_first_token_ms``, ``serving.prompt_tokens``,
            ``serving.completion_tokens``). Rows of requests never answered count for
            throughput but carry no latency.
        window_seconds: the window's length in seconds (> 0); throughput divides by it.
        min_count: fewest values a signal needs (≥ 1); fewer give None.

    Returns:
        signal name → value, None where the window has too few values (or the column is not
        logged at all).

    Raises:
        ValueError: ``window_seconds`` ≤ 0 or ``min_count`` < 1.
    """
    if not window_seconds > 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    n = len(rows)
    latency = _numbers(rows, "latency_ms")
    out: dict[str, float | None] = {
        "latency_p50_seconds": _quantile(latency, 0.50, 1e-3, min_count),
        "latency_p95_seconds": _quantile(latency, 0.95, 1e-3, min_count),
        "latency_p99_seconds": _quantile(latency, 0.99, 1e-3, min_count),
        "queue_time_p95_seconds": _quantile(_numbers(rows, "serving.queue_ms"), 0.95, 1e-3, min_count),
        "time_to_first_token_p95_seconds": _quantile(_numbers(rows, "serving.time_to_first_token_ms"), 0.95,
                                                     1e-3, min_count),
    }
    status = _numbers(rows, "serving.status_code")
    out["error_rate"] = None if len(status) < min_count else float(np.mean(is_error(status)))
    throughput = n / window_seconds if n >= min_count else None
    out["throughput_rps"] = throughput
    replicas = 0
    if "serving.replica" in rows.columns:
        replicas = int(rows["serving.replica"].dropna().nunique())
    out["replicas"] = float(replicas) if replicas else None
    per_replica = None if throughput is None or replicas == 0 else throughput / replicas
    out["throughput_per_replica_rps"] = per_replica
    out["concurrency_per_replica"] = (None if per_replica is None or len(latency) < min_count
                                      else per_replica * float(np.mean(latency)) * 1e-3)
    for side in ("prompt", "completion"):
        tokens = _numbers(rows, f"serving.{side}_tokens")
        enough = len(tokens) >= min_count
        out[f"{side}_tokens_mean"] = float(np.mean(tokens)) if enough else None
        out[f"{side}_tokens_total"] = float(np.sum(tokens)) if enough else None
    return out
