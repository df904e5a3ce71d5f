"""Serving metadata (``serving.*`` columns) through the pipeline: records carrying a ``serving``
object, or flat JSON logs with serving paths in their mapping, keep their serving columns and
values in the rows a window hands to its close (what ``Pipeline._close_one`` receives), after
decoding, per-model typing, the category cap, window assignment and the stored partials."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from collector.message import Message
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.pipeline import Pipeline
from inferwatch.runner import log_dead_letter, open_store

DAY_MS = 86_400_000
T0 = 1714564800000  # 2024-05-01T12:00:00Z


class RecordingPipeline(Pipeline):
    """A pipeline that keeps a copy of the rows of every window it closes."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.closed_rows: dict[tuple[str, str], list[pd.DataFrame]] = {}

    def _close_one(self, conn, key, reason, rows, now):
        self.closed_rows.setdefault((key.model, key.model_version), []).append(rows.copy())
        return super()._close_one(conn, key, reason, rows, now)


@pytest.fixture
def pipeline(tmp_path):
    settings = load_config(
        None, database_url=f"sqlite:///{tmp_path / 'inferwatch.db'}",
        window={"length_seconds": 86_400, "idle_close_seconds": None}, reference={"bootstrap_records": 2000},
        metrics={"enabled": False},
        formats={"topics": {"llm-logs": {"format": "mapped_json", "mapping": {
            "model": "model", "timestamp": "created", "timestamp_unit": "s", "request_id": "id",
            "features": ["request.*"],
            "serving": {"status_code": "response.status", "replica": "kubernetes.pod",
                        "prompt_tokens": "usage.prompt_tokens", "completion_tokens": "usage.completion_tokens",
                        "time_to_first_token_ms": "metrics.ttft_ms"}}}}})
    store = open_store(settings)
    yield RecordingPipeline(settings, store, Metrics(), log_dead_letter, "g")
    store.close()


def _record(i: int, model: str = "llm", **over) -> bytes:
    record = {"model": model, "model_version": "1", "timestamp": T0 + i * 1000, "request_id": f"r{i}",
              "features": {"prompt_chars": 100 + i, "lang": "en"}, "predictions": {"toxicity": 0.01 * i}}
    record.update(over)
    return json.dumps(record).encode()


def _serving(i: int) -> dict:
    return {"status_code": 200 if i % 4 else 503, "replica": f"vllm-{i % 2}", "queue_ms": 0.5 * i,
            "prompt_tokens": 400 + i, "completion_tokens": 30 + i, "time_to_first_token_ms": 150.0 + i,
            "batch_size": 1 + i % 3, "finish_reason": "stop" if i % 2 else "length", "endpoint": "/v1/chat"}


def _texts(column: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in column]


def test_window_rows_keep_the_serving_columns_of_the_records(pipeline):
    # two batches stored as two partials of one window: the first with every serving key, the
    # second with other key sets (a stored payload of another schema) and rows without serving
    first = [Message("t", 0, i, _record(i, serving=_serving(i))) for i in range(8)]
    second = [Message("t", 0, 8, _record(8)),
              Message("t", 0, 9, _record(9, serving={"status_code": 429, "replica": "vllm-1"})),
              Message("t", 0, 10, _record(10, serving={"prompt_tokens": 7, "finish_reason": "length",
                                                        "inter_token_latency_ms": 12})),
              Message("t", 0, 11, _record(11, model="other", serving={"replica": "cpu-0"}))]
    assert pipeline.process(first) == [] and pipeline.process(second) == []
    closed = pipeline.close_all()
    assert sorted((w.key.model, w.record_count) for w in closed) == [("llm", 11), ("other", 1)]

    [rows] = pipeline.closed_rows[("llm", "1")]
    rows = rows.sort_values("request_id", key=lambda s: s.str[1:].astype(int)).reset_index(drop=True)
    assert list(rows["request_id"]) == [f"r{i}" for i in range(11)]
    assert list(rows["event_time_ms"]) == [T0 + i * 1000 for i in range(11)]
    expect = [_serving(i) for i in range(8)] + [{}, {"status_code": 429, "replica": "vllm-1"},
                                                {"prompt_tokens": 7, "finish_reason": "length"}]
    numeric = ("status_code", "queue_ms", "prompt_tokens", "completion_tokens", "time_to_first_token_ms",
               "batch_size")
    for name in numeric:
        col = rows["serving." + name]
        assert col.dtype == np.float64, name
        assert _texts(col) == [None if e.get(name) is None else float(e[name]) for e in expect], name
    for name in ("replica", "finish_reason", "endpoint"):
        assert _texts(rows["serving." + name]) == [e.get(name) for e in expect], name
    assert "serving.inter_token_latency_ms" not in rows.columns  # not a serving key: ignored
    # the features and predictions are there too, untouched by the serving columns
    assert list(rows["features.prompt_chars"]) == [100.0 + i for i in range(11)]

    # the other model's window carries only the serving column its own rows have
    [other] = pipeline.closed_rows[("other", "1")]
    assert [c for c in other.columns if c.startswith("serving.")] == ["serving.replica"]
    assert _texts(other["serving.replica"]) == ["cpu-0"]


def test_window_rows_keep_the_serving_columns_of_a_mapped_log(pipeline):
    def line(i: int, **over) -> bytes:
        body = {"id": f"cmpl-{i}", "created": T0 // 1000 + i, "model": "llama-3-8b",
                "kubernetes": {"pod": f"vllm-{i % 2}"}, "request": {"max_tokens": 256, "temperature": 0.7},
                "response": {"status": 200}, "usage": {"prompt_tokens": 400 + i, "completion_tokens": 30 + i},
                "metrics": {"ttft_ms": 180.5 + i}}
        body.update(over)
        return json.dumps(body).encode()

    messages = [Message("llm-logs", 0, i, line(i)) for i in range(5)]
    messages.append(Message("llm-logs", 0, 5, line(5, response={"status": 500}, usage={"prompt_tokens": 9})))
    pipeline.process(messages)
    pipeline.close_all()
    [rows] = pipeline.closed_rows[("llama-3-8b", "")]
    rows = rows.sort_values("request_id").reset_index(drop=True)
    assert list(rows["request_id"]) == [f"cmpl-{i}" for i in range(6)]
    assert list(rows["serving.status_code"]) == [200.0] * 5 + [500.0]
    assert _texts(rows["serving.replica"]) == ["vllm-0", "vllm-1"] * 3
    assert list(rows["serving.prompt_tokens"]) == [400.0, 401.0, 402.0, 403.0, 404.0, 9.0]
    assert _texts(rows["serving.completion_tokens"]) == [30.0, 31.0, 32.0, 33.0, 34.0, None]
    assert list(rows["serving.time_to_first_token_ms"]) == [180.5 + i for i in range(6)]
    assert not {"serving.queue_ms", "serving.batch_size", "serving.endpoint"} & set(rows.columns)
