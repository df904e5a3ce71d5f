"""`inferwatch replay`: files through the whole pipeline, counted once even when run twice."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime

from typer.testing import CliRunner

from inferwatch import demo
from inferwatch.cli import app
from inferwatch.store import Store

DAY_MS = 86_400_000


def _day(rec) -> int:
    return int(datetime.fromisoformat(rec["timestamp"]).timestamp() * 1000) // DAY_MS * DAY_MS


def test_replay_counts_each_line_once_and_dead_letters_the_bad_ones(tmp_path):
    records = demo.episode_records(model_name="rp", n_stable=3000, n_drift=0, n_recovery=0,
                                   records_per_day=1000).records
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [demo.encode_record(r) for r in records]
    with gzip.open(logs / "a.jsonl.gz", "wb") as f:
        f.write(b"\n".join(lines[:2000] + [b"{not json", b'{"model": "rp"}']) + b"\n")
    (logs / "b.jsonl").write_bytes(b"\n".join(lines[2000:]) + b"\n")
    db = tmp_path / "replay.db"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{db}", "metrics": {"enabled": False},
                                  "window": {"length_seconds": 86_400, "idle_close_seconds": None},
                                  "reference": {"bootstrap_records": 500}}))
    dead = tmp_path / "dead.jsonl"
    runner = CliRunner()
    result = runner.invoke(app, ["replay", str(logs), "-c", str(config), "--dead-letter", str(dead),
                                 "--batch-size", "700"])
    assert result.exit_code == 0, result.output
    assert "Drift per window" in result.output and "3002 lines" in result.output
    store = Store(f"sqlite:///{db}")
    stored = Counter()
    for w in store.list_windows().itertuples():
        stored[int(w.window_start_ms)] += int(w.record_count)
    assert stored == Counter(_day(r) for r in records)
    rejected = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(r["reason"], r["offset"]) for r in rejected] == [("invalid_json", 2001), ("missing_field", 2002)]
    assert rejected[0]["value"] == "{not json" and rejected[0]["topic"].endswith("a.jsonl.gz")
    # a second run of the same replay finds every line stored and adds nothing
    again = runner.invoke(app, ["replay", str(logs), "-c", str(config), "--dead-letter", str(dead)])
    assert again.exit_code == 0, again.output
    assert int(store.list_windows()["record_count"].sum()) == len(records)
    assert len(dead.read_text().splitlines()) == 2
    store.close()


def test_replay_names_a_bad_format_flag(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text("{}\n")
    result = CliRunner().invoke(app, ["replay", str(f), "--format", "kserv"])
    assert result.exit_code == 2 and "--format" in result.output and "kserve" in result.output


def test_replay_keys_files_by_absolute_path_and_never_reads_its_dead_letter_file(tmp_path, monkeypatch):
    records = demo.episode_records(model_name="ab", n_stable=300, n_drift=0, n_recovery=0,
                                   records_per_day=300).records
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_bytes(b"\n".join(demo.encode_record(r) for r in records) + b"\n{bad\n")
    db = tmp_path / "r.db"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{db}", "metrics": {"enabled": False},
                                  "window": {"length_seconds": 86_400, "idle_close_seconds": None}}))
    runner = CliRunner()
    dead = logs / "rejected.jsonl"  # inside the replayed directory
    monkeypatch.chdir(tmp_path)
    first = runner.invoke(app, ["replay", "logs", "logs/a.jsonl", "-c", str(config), "--dead-letter", str(dead)])
    assert first.exit_code == 0, first.output
    assert "301 new lines read, 1 rejected (1 invalid_json)" in " ".join(first.output.split())
    # the same file by another spelling is the same source: nothing new
    again = runner.invoke(app, ["replay", str(logs / "a.jsonl"), "-c", str(config), "--dead-letter", str(dead)])
    assert again.exit_code == 0 and "0 new lines read" in again.output
    store = Store(f"sqlite:///{db}")
    assert int(store.list_windows()["record_count"].sum()) == 300
    store.close()
    assert len(dead.read_text().splitlines()) == 1


def test_replay_names_a_truncated_gzip_file(tmp_path):
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-20])
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{tmp_path / 'x.db'}", "metrics": {"enabled": False}}))
    result = CliRunner().invoke(app, ["replay", str(f), "-c", str(config)])
    assert result.exit_code == 1 and "cut.jsonl.gz" in result.output


def _kserve_dump_line(offset: int, kind: str, event_id: str, t_ms: int, body: dict) -> str:
    stamp = datetime.utcfromtimestamp(t_ms / 1000).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    headers = [["ce_specversion", "1.0"], ["ce_id", event_id], ["ce_source", "http://localhost:9081/"],
               ["ce_type", f"org.kubeflow.serving.inference.{kind}"], ["ce_time", stamp],
               ["ce_inferenceservicename", "iris"], ["ce_namespace", "ml"], ["ce_component", "predictor"],
               ["ce_endpoint", "default"], ["content-type", "application/json"]]
    return json.dumps({"topic": "kserve-logs", "partition": 0, "offset": offset, "timestamp": t_ms, "key": None,
                       "headers": headers, "value": json.dumps(body)})


def test_replay_of_per_topic_dumps_joins_across_files_and_closes_what_still_waits(tmp_path):
    """Requests in one file, responses in another, read one after the other (replay leaves the
    join's skew unbounded); requests never answered at all still end in a closed window."""
    t0 = 1_714_564_800_000
    n = 40  # one call a minute: 40 minutes of requests before the first response is read
    requests = [_kserve_dump_line(i, "request", f"q{i}", t0 + i * 60_000, {"instances": [[1.0, float(i)]]})
                for i in range(n)]
    responses = [_kserve_dump_line(i, "response", f"q{i}", t0 + i * 60_000 + 50, {"predictions": [i % 3]})
                 for i in range(n - 10)]  # the last 10 are never answered
    (tmp_path / "1-requests.jsonl").write_text("\n".join(requests) + "\n")
    (tmp_path / "2-responses.jsonl").write_text("\n".join(responses) + "\n")
    db = tmp_path / "r.db"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{db}", "metrics": {"enabled": False},
                                  "window": {"length_seconds": 86_400, "idle_close_seconds": None},
                                  "formats": {"default": {"format": "kserve", "model_version": "1"}}}))
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "1-requests.jsonl"),
                                      str(tmp_path / "2-responses.jsonl"), "-c", str(config), "--batch-size", "7"])
    assert result.exit_code == 0, result.output
    store = Store(f"sqlite:///{db}")
    windows = store.list_windows()
    assert int(windows["record_count"].sum()) == n  # one row per call, none left in the partials
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        assert conn.execute(sa.text("SELECT COUNT(*) FROM window_partials")).scalar() == 0
        profile = json.loads(conn.execute(sa.text("SELECT profile FROM windows")).scalar())
    # the 30 answered calls joined across the two files: 30 predictions, 40 feature rows
    predictions = [c for c in profile["columns"] if c.startswith("predictions.")]
    features = [c for c in profile["columns"] if c.startswith("features.")]
    assert predictions and features
    assert {profile["columns"][c]["count"] for c in predictions} == {n - 10}
    assert {profile["columns"][c]["count"] for c in features} == {n}
    store.close()


def test_replay_of_requests_never_answered_closes_their_windows(tmp_path):
    t0 = 1_714_564_800_000
    lines = [_kserve_dump_line(i, "request", f"q{i}", t0 + i * 60_000, {"instances": [[1.0, float(i)]]})
             for i in range(30)]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    db = tmp_path / "r.db"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{db}", "metrics": {"enabled": False},
                                  "window": {"length_seconds": 86_400, "idle_close_seconds": None},
                                  "formats": {"default": {"format": "kserve"}}}))
    result = CliRunner().invoke(app, ["replay", str(tmp_path / "requests.jsonl"), "-c", str(config)])
    assert result.exit_code == 0, result.output
    store = Store(f"sqlite:///{db}")
    assert store.list_windows()["record_count"].tolist() == [30]
    store.close()


def test_replay_without_dead_letter_file_logs_one_warning_per_batch_and_reason(tmp_path, caplog):
    import logging

    f = tmp_path / "bad.jsonl"
    f.write_bytes(b"{not json\n" * 2500 + b"[1, 2]\n" * 10)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"database_url": f"sqlite:///{tmp_path / 'x.db'}", "metrics": {"enabled": False}}))
    caplog.set_level(logging.DEBUG, logger="inferwatch.runner")
    result = CliRunner().invoke(app, ["replay", str(f), "-c", str(config), "--batch-size", "1000"])
    assert result.exit_code == 0, result.output
    runner_logs = [r for r in caplog.records if r.name == "inferwatch.runner" and "rejected" in r.getMessage()]
    warnings = [r.getMessage() for r in runner_logs if r.levelno == logging.WARNING]
    # batches of 1000, 1000 and 510 lines; the last holds both reasons
    assert len(warnings) == 4, warnings
    assert warnings[0].startswith("rejected 1000 record(s) (invalid_json); first ") and "@1:" in warnings[0]
    assert warnings[1].startswith("rejected 1000 record(s) (invalid_json); first ") and "@1001:" in warnings[1]
    assert warnings[2].startswith("rejected 500 record(s) (invalid_json); first ") and "@2001:" in warnings[2]
    assert warnings[3].startswith("rejected 10 record(s) (not_an_object); first ") and "@2501:" in warnings[3]
    assert sum(r.levelno == logging.DEBUG for r in runner_logs) == 2510
