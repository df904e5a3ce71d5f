"""The ``inferwatch`` command line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from inferwatch.config import ConfigError, Settings, load_config

app = typer.Typer(help="Drift detection and monitoring for prediction logs on Kafka.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode="markdown")
reference_app = typer.Typer(help="Manage reference profiles.", no_args_is_help=True)
app.add_typer(reference_app, name="reference")
# piped output (make demo > file) would otherwise wrap the tables at 80 columns
console = Console(width=None if sys.stdout.isatty() else 160)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config file (INFERWATCH_* env vars override it).",
                            exists=True, dir_okay=False)
VerboseOption = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level (default: INFO).")
#: the largest id (and row count) the store holds: a signed 64-bit integer (BIGINT)
MAX_ID = 2**63 - 1


def _settings(config: Optional[Path], **overrides) -> Settings:
    try:
        return load_config(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO, and a URL can be a credential (Slack webhooks)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _window_line(w) -> str:
    share = "-" if w.drift_share is None else f"{w.drift_share:.2f}"
    cols = ",".join(w.drifted_columns[:6]) + ("…" if len(w.drifted_columns) > 6 else "")
    return (f"window {w.key.model} v{w.key.model_version} {_utc(w.key.start_ms)} seg {w.key.segment}: "
            f"{w.record_count} records, {w.status}, drift share {share} {cols}")


@app.command()
def run(config: Optional[Path] = ConfigOption, verbose: bool = VerboseOption) -> None:
    """Consume prediction logs from Kafka as a consumer group member until SIGTERM or Ctrl-C."""
    from inferwatch.runner import run_kafka

    settings = _settings(config)
    _logging(verbose)
    stop = _stop_on_signals("the current batch")
    with _startup_errors():
        run_kafka(settings, stop, on_closed=lambda ws: [logging.getLogger("inferwatch").info(_window_line(w))
                                                        for w in ws])


@app.command()
def api(config: Optional[Path] = ConfigOption, verbose: bool = VerboseOption) -> None:
    """Serve the HTTP API alone (no consumer) on api.host:api.port until SIGTERM or Ctrl-C.

    Reads the store inferwatch run writes; writes (silences, reference uploads) need
    Authorization: Bearer <api.token>. OpenAPI document at /openapi.json, docs at /docs.
    """
    from inferwatch.runner import serve_api

    settings, store = _open_store(config)
    _logging(verbose)
    if settings.api.token is None:
        store.close()
        console.print("[red]error:[/red] api.token: the API needs a bearer token for its write endpoints; set "
                      "api.token to {env: NAME} or {file: PATH}")
        raise typer.Exit(2)
    stop = _stop_on_signals("the requests in flight")
    with _startup_errors():
        server = serve_api(settings, store)
    console.print(f"API on {server.url} (docs at {server.url}/docs)")
    try:
        server.wait(stop)
    finally:
        server.stop()
        store.close()


@contextmanager
def _startup_errors() -> Iterator[None]:
    """A dependency unreachable at start: one line naming the config key, exit code 3."""
    from inferwatch.runner import StartupError

    try:
        yield
    except StartupError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(3) from None


def _open_store(config: Optional[Path]):
    """The settings and the opened store; a bad config or an unreachable database exits with
    the message naming the key."""
    from inferwatch.runner import open_store

    settings = _settings(config)
    with _startup_errors():
        return settings, open_store(settings)


def _stop_on_signals(what: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT (logged: stopping after ``what``)."""
    stop = threading.Event()

    def _stop(signum, _frame):
        logging.getLogger("inferwatch").info("signal %d: stopping after %s", signum, what)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


@reference_app.command("set")
def reference_set(model: str = typer.Option(..., "--model", "-m", help="Model name as in the records."),
                  file: Path = typer.Option(..., "--file", "-f", exists=True, dir_okay=False,
                                            help="Training data: .csv or .parquet."),
                  version: str = typer.Option("*", "--model-version", "--version",
                                              help="Model version; '*' (default) applies to every version."),
                  force: bool = typer.Option(False, "--force",
                                             help="Replace the stored reference even if the new one drops some "
                                                  "of its columns or changes a column's kind."),
                  config: Optional[Path] = ConfigOption) -> None:
    """Build a reference profile from training data and store it, replacing the one of this
    model version.

    Refused (exit 2): fewer rows than drift.min_count; a CSV file with a column name twice or
    lines without one field per column; and, unless --force, a new reference that drops
    columns of the stored one or changes a column between numeric and categorical.
    """
    from detectors import kind_of
    from inferwatch.reference import (ReferenceRefused, check_reference, profile_frame, read_reference_file,
                                      stored_reference)
    from inferwatch.runner import open_store

    settings = _settings(config)
    try:
        frame = read_reference_file(file)
    except ValueError as exc:  # pyarrow's errors on a damaged file name neither the flag nor the file
        text = str(exc) if str(exc).startswith("--file") else f"--file: cannot read {file} as .csv or .parquet: {exc}"
        console.print(f"[red]error:[/red] {text}")
        raise typer.Exit(2) from None
    profile = profile_frame(frame, set(settings.drift.categorical.get(model, [])), settings.reference.n_bins,
                            settings.reference.sample_size)
    with _startup_errors():
        store = open_store(settings)
    try:
        with store.transaction() as conn:
            check_reference(profile, stored_reference(store, conn, model, version), settings.drift.min_count, force)
            store.put_reference(conn, model, version, f"file:{file.name}", len(frame), profile.to_dict())
    except ReferenceRefused as exc:
        hint = f"; the stored reference of {model} version {version} is kept (--force replaces it)" \
            if exc.conflict else ""
        console.print(f"[red]error:[/red] --file {file}: {exc}{hint}", soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    kinds = {}
    for c, p in profile.columns.items():
        kinds.setdefault(kind_of(p), []).append(c.split(".", 1)[1])
    console.print(f"reference for [bold]{model}[/bold] version {version}: {len(frame)} rows, "
                  f"{len(kinds.get('numeric', []))} numeric and {len(kinds.get('categorical', []))} categorical columns")


@app.command()
def replay(paths: list[Path] = typer.Argument(..., help="Files or directories of prediction logs (JSON lines, "
                                                       "Kafka dumps; .gz too).", exists=True),
           config: Optional[Path] = ConfigOption,
           format: Optional[str] = typer.Option(None, "--format", "-f",  # noqa: A002 (the flag's name)
                                                help="Wire format of every file, overriding formats.default "
                                                     "(auto, inferwatch, labels, mapped_json, kserve, oip, "
                                                     "seldon_v2, seldon_v1, sagemaker, bentoml)."),
           model: Optional[str] = typer.Option(None, "--model", "-m",
                                               help="Model name for logs that carry none (e.g. SageMaker)."),
           model_version: Optional[str] = typer.Option(None, "--model-version",
                                                       help="Model version for logs that carry none."),
           group: str = typer.Option("replay", help="Name the files' offsets are stored under: a second run "
                                                    "with the same name skips every line already stored."),
           dead_letter: Optional[Path] = typer.Option(
               None, "--dead-letter", help="Append rejected lines (with the reason) to this JSON-lines file; "
                                           "default: log them.", dir_okay=False),
           batch_size: int = typer.Option(5000, min=1, max=MAX_ID,
                                          help="Lines per batch (one database transaction)."),
           verbose: bool = VerboseOption) -> None:
    """Replay prediction-log files through the decoders, windows and detectors, then close every
    window and print the drift table."""
    from pydantic import ValidationError
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from collector.formats.files import expand_paths
    from inferwatch.metrics import Metrics
    from inferwatch.replay import FileDeadLetter, replay_files
    from inferwatch.runner import log_dead_letter, open_store

    _logging(verbose)
    settings = _settings(config)
    default = settings.formats.default
    changes = {k: v for k, v in (("format", format), ("model", model), ("model_version", model_version))
               if v is not None}
    if changes:
        try:
            fmt = type(default).model_validate({**default.model_dump(), **changes})
        except ValidationError as exc:  # one line per bad flag, without pydantic's links
            for err in exc.errors():
                key = err["loc"][0] if err["loc"] else None
                flag = f"--{str(key).replace('_', '-')} {changes[key]}" if key in changes else \
                    "--format/--model/--model-version"
                console.print(f"[red]error:[/red] {flag}: {err['msg']}")
            raise typer.Exit(2) from None
        # the flags apply to every file, whatever formats.topics says
        settings = settings.model_copy(update={"formats": settings.formats.model_copy(
            update={"default": fmt, "topics": {}})})
    try:
        files = expand_paths(paths, exclude=[dead_letter] if dead_letter else [])
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if not files:
        console.print("[red]error:[/red] no log files (*.jsonl, *.ndjson, *.json, *.log, also .gz) under "
                      + ", ".join(str(p) for p in paths))
        raise typer.Exit(2)
    # progress by bytes read (compressed files count their uncompressed lines)
    total = sum(f.stat().st_size for f in files if not f.name.endswith(".gz")) or None
    with _startup_errors():
        store = open_store(settings)
    target = FileDeadLetter(dead_letter) if dead_letter else log_dead_letter
    refused: dict[str, int] = {}

    def sink(rejected) -> None:
        target(rejected)
        for r in rejected:
            refused[r.reason.value] = refused.get(r.reason.value, 0) + 1
    lines = [0]
    columns = (TextColumn("replaying"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[n]} lines"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("replay", total=total, n=0)

            def advance(batch) -> None:
                lines[0] += len(batch)
                progress.update(task, advance=sum(len(m.value or b"") + 1 for m in batch), n=lines[0])

            replay_files(settings, files, store, Metrics(settings.metrics.max_label_values), group_id=group, batch_size=batch_size,
                         on_batch=advance, dead_letter=sink)
    except OSError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        if dead_letter:
            target.close()
    console.print(drift_table(store))
    store.close()
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(refused.items()))
    console.print(f"{lines[0]} new lines read, {sum(refused.values())} rejected" + (f" ({detail})" if detail else "")
                  + (f", kept in {dead_letter}" if dead_letter and refused else ""))
    if lines[0] and sum(refused.values()) == lines[0]:
        console.print("[yellow]warning:[/yellow] every line was rejected: check --format (their offsets are stored; "
                      "replay again under another --group)")


@app.command()
def windows(model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model (default: all)."),
            config: Optional[Path] = ConfigOption) -> None:
    """List closed windows and their dataset drift."""
    _, store = _open_store(config)
    console.print(drift_table(store, model))
    if model is not None:
        _no_windows_hint(store, model)
    store.close()


def _no_windows_hint(store, model: str) -> None:
    """Say so when ``model`` has no closed window, naming the models that have some."""
    known = store.models_with_windows()
    if model not in known:
        console.print(f"[yellow]no closed windows of model {model!r}[/yellow]; models with windows: "
                      + (", ".join(known) or "none yet"))


@app.command()
def backfill(model: str = typer.Option(..., "--model", "-m", help="Model name as in the records."),
             since: str = typer.Option(..., "--since", help="Windows starting at or after this time: RFC 3339 "
                                                            "(2026-11-01T00:00:00Z) or a duration ago (12h, 7d)."),
             until: Optional[str] = typer.Option(None, "--until", help="Windows starting before this time (same "
                                                                        "forms; default: now)."),
             model_version: Optional[str] = typer.Option(None, "--model-version",
                                                         help="Only this model version (default: every version)."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
             config: Optional[Path] = ConfigOption) -> None:
    """Recompute drift of past closed windows from their stored profiles against the CURRENT
    reference and drift settings (after `inferwatch reference set` or a drift settings change).

    Each window's drift results and drift columns are replaced in one transaction; a second
    run changes nothing. Numeric columns are rebuilt from the window's stored raw values
    (kept window.sample_retention_days, default 30, after the window's end). A window whose
    values cannot be rebuilt exactly (raw values purged or not stored and more than the
    stored sketch keeps, a stored sample smaller than the column, a capped category table)
    is kept as it is and listed with the reason. Past windows send no notifications, change
    no alert state and set no Prometheus gauges.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from inferwatch.backfill import backfill as run_backfill
    from inferwatch.times import parse_time

    now = int(time.time() * 1000)
    bounds = {}
    for flag, text in (("--since", since), ("--until", until)):
        try:
            bounds[flag] = now if text is None else parse_time(text, now)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=flag) from None
    if bounds["--since"] >= bounds["--until"]:
        raise typer.BadParameter(f"{_utc(bounds['--until'])} UTC is not after --since ({_utc(bounds['--since'])} UTC)",
                                 param_hint="--until")
    settings, store = _open_store(config)
    known = store.models_with_windows()
    if model not in known:
        store.close()
        raise typer.BadParameter(f"no closed windows of model {model!r}; models with windows: "
                                 + (", ".join(known) or "none yet"), param_hint="--model")
    columns = (TextColumn("recomputing" if not dry_run else "checking"), BarColumn(), MofNCompleteColumn(),
               TextColumn("windows"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("backfill", total=None)
            outcomes = run_backfill(settings, store, model, bounds["--since"], bounds["--until"], model_version,
                                    dry_run=dry_run, on_start=lambda n: progress.update(task, total=n),
                                    on_window=lambda _o: progress.advance(task))
        if not outcomes:
            console.print(f"no closed window of model {model!r}" + (f" version {model_version!r}" if model_version
                                                                    else "")
                          + f" starts between {_utc(bounds['--since'])} and {_utc(bounds['--until'])} UTC")
            return
    finally:
        store.close()
    table = Table(title="Backfill (dry run: nothing written)" if dry_run else "Backfill")
    for col in ("version", "window start (UTC)", "seg", "records", "status", "drift share", "drifted features",
                "result"):
        table.add_column(col, justify="right" if col in ("seg", "records", "drift share") else "left")

    def share(v) -> str:
        return "-" if v is None else f"{v:.2f}"
    for o in outcomes:
        if o.kept:
            result = f"[yellow]kept[/yellow]: {o.kept}"
        else:
            result = ("[bold]would change[/bold]" if dry_run else "[bold]changed[/bold]") if o.changed else "unchanged"
        arrow = (lambda a, b: a if a == b else f"{a} → {b}")
        table.add_row(o.model_version, _utc(o.window_start_ms), str(o.segment), str(o.record_count),
                      arrow(o.old_status, o.new_status), arrow(share(o.old_share), share(o.new_share)),
                      arrow(", ".join(o.old_drifted) or "-", ", ".join(o.new_drifted) or "-"), result)
    console.print(table)
    changed = sum(o.changed for o in outcomes)
    kept = sum(o.kept is not None for o in outcomes)
    console.print(f"{len(outcomes)} windows: {changed} {'would change' if dry_run else 'changed'}, "
                  f"{len(outcomes) - changed - kept} unchanged, {kept} kept")
    if any(o.kept and "values, the stored quantile sketch" in o.kept for o in outcomes):
        console.print("[yellow]some kept windows[/yellow] hold more values than their stored summary keeps (see "
                      "each reason); to recompute them, replay their prediction logs (inferwatch replay) into a new "
                      "database")


def _true(value) -> bool:
    """A stored boolean that is set and true (None, NaN: not set)."""
    return value is not None and value == value and bool(value)


def drift_table(store, model: str | None = None) -> Table:
    """A rich table of closed windows: id (for ``report --window``), start, records, drift share
    and the drifted features."""
    table = Table(title="Drift per window")
    for col in ("id", "model", "version", "window start (UTC)", "records", "status", "drift share", "dataset drift",
                "drifted features"):
        table.add_column(col, justify="right" if col in ("id", "records", "drift share") else "left")
    ws = store.list_windows(model)
    for row in ws.itertuples():
        res = store.list_drift_results(int(row.id))
        drifted = [] if res.empty else sorted(
            c.split(".", 1)[1] for c, d, m, r in zip(res.column_name, res.drifted, res.missing_drifted, res.role)
            if (_true(d) or _true(m)) and r == "feature")
        share = "-" if row.drift_share is None or row.drift_share != row.drift_share else f"{row.drift_share:.2f}"
        verdict = "-" if row.dataset_drifted is None or row.dataset_drifted != row.dataset_drifted else (
            "[bold red]DRIFT[/bold red]" if row.dataset_drifted else "no")
        table.add_row(str(int(row.id)), row.model, row.model_version, _utc(int(row.window_start_ms)), str(row.record_count),
                      row.status, share, verdict, ", ".join(drifted))
    return table


@app.command()
def report(model: str = typer.Option(..., "--model", "-m", help="Model name as in the records."),
           window: str = typer.Option(..., "--window", "-w",
                                      help="Window id as listed by `inferwatch windows`, or an RFC 3339 time "
                                           "inside the window (no offset: UTC)."),
           model_version: Optional[str] = typer.Option(None, "--model-version",
                                                       help="Only windows of this model version."),
           output: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False,
                                                 help="HTML file to write; default report-MODEL-ID.html (ID: the "
                                                      "window's id)."),
           tests: str = typer.Option("inferwatch", "--evidently-tests",
                                     help="Tests Evidently runs: inferwatch (the window's own tests, at thresholds "
                                          "that repeat its decision) or default (Evidently's default rule)."),
           max_rows: int = typer.Option(50_000, "--max-rows", min=100,
                                        help="Rows at most per side handed to Evidently (bigger profiles are scaled "
                                             "down in proportion)."),
           config: Optional[Path] = ConfigOption) -> None:
    """Write an Evidently HTML drift report of one closed window against its reference, with
    inferwatch's own per-column verdict (test, statistic, p-values, drifted) at the top."""
    from rich.markup import escape

    from inferwatch.report import EVIDENTLY_TEST_CHOICES, ReportError, write_report

    if tests not in EVIDENTLY_TEST_CHOICES:
        raise typer.BadParameter(f"one of {', '.join(EVIDENTLY_TEST_CHOICES)}", param_hint="--evidently-tests")
    if window.strip().isdigit() and not 1 <= int(window.strip()) <= MAX_ID:
        raise typer.BadParameter(f"window ids are 1 to {MAX_ID} (got {window.strip()})", param_hint="--window")
    _, store = _open_store(config)
    try:
        with console.status("building the report…"):
            rep, path = write_report(store, model, window, output, model_version, max_rows, tests)
    except ReportError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except OSError as exc:
        console.print(f"[red]error:[/red] --output: cannot write the report: {escape(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        store.close()
    drifted = [v.column for v in rep.verdicts if v.inferwatch_drifted]
    console.print(f"wrote {escape(str(path))}: window {rep.window_id} of {escape(model)} "
                  f"v{escape(rep.window['model_version'])} from {_utc(int(rep.window['window_start_ms']))} UTC, "
                  f"drifted: {escape(', '.join(drifted)) or 'none'}"
                  + (f"; Evidently disagrees on {sum(v.disagree for v in rep.verdicts)} column(s)"
                     if any(v.disagree for v in rep.verdicts) else ""))


@app.command()
def demo(db: Path = typer.Option(Path("inferwatch-demo.db"), help="SQLite file (recreated on every run)."),
         metrics_port: int = typer.Option(9108, help="Port for /metrics while it runs (0 = any free port)."),
         window_hours: int = typer.Option(2190, help="Window length in hours (2190 = a quarter of 365 days)."),
         alpha: float = typer.Option(0.001, help="Family-wise level of the Bonferroni-adjusted p-values."),
         share_threshold: Optional[float] = typer.Option(  # noqa: UP007 (typer needs Optional)
             None, help="Dataset drift only when this share of features drift (default: any one feature)."),
         verbose: bool = VerboseOption) -> None:
    """Replay the real ACS employment data (2015-2018) through the whole pipeline on SQLite.

    No server needed: records go through the same decoders, windows and detectors as the
    Kafka path, in process. Prints the drift table and exits 0.
    """
    from inferwatch import demo as demo_data
    from inferwatch.reference import profile_frame, read_reference_file
    from inferwatch.runner import open_store, run_in_process, start_metrics

    _logging(verbose)
    if not verbose:
        logging.getLogger("inferwatch").setLevel(logging.WARNING)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    settings = _settings(None, database_url=f"sqlite:///{db}",
                         window={"length_seconds": window_hours * 3600, "idle_close_seconds": None,
                                 "origin": "2015-01-01T00:00:00Z"},
                         metrics={"port": metrics_port},
                         drift={"alpha": alpha, "share_threshold": share_threshold},
                         alerting={"fire_share": share_threshold})  # None: fire on the dataset verdict
    with _startup_errors():
        store = open_store(settings)
        metrics, port = start_metrics(settings)
    console.print(f"metrics on http://{settings.metrics.host}:{port}/metrics while the replay runs")

    ref_file = db.with_suffix(".reference.parquet")
    demo_data.write_reference_file(ref_file)
    ref = read_reference_file(ref_file)
    profile = profile_frame(ref, set(), settings.reference.n_bins, settings.reference.sample_size)
    with store.transaction() as conn:
        store.put_reference(conn, "employment", "*", "demo: 2015 training half", len(ref), profile.to_dict())
    records = (demo_data.encode_record(r) for r in demo_data.demo_records())
    with console.status("replaying 2015-2018 prediction logs…"):
        run_in_process(settings, records, store, metrics, source_name="demo")
    console.print(drift_table(store))
    metrics.stop()
    store.close()


@app.command("demo-producer")
def demo_producer(bootstrap_servers: str = typer.Option("127.0.0.1:9092", "--bootstrap-servers", "-b",
                                                     help="Kafka brokers, host:port[,host:port...]."),
                  topic: str = typer.Option("predictions", "--topic", "-t", help="Topic to produce to."),
                  stream: str = typer.Option("demo", help="demo (2015-2018), control (stationary) or both."),
                  limit: Optional[int] = typer.Option(None, min=0, max=MAX_ID,
                                                      help="Stop after this many records."),
                  serving: bool = typer.Option(
                      True, "--serving/--no-serving",
                      help="Add SIMULATED serving telemetry (latency_ms and a serving object: status "
                           "code, replica, queue time; seeded log-normal latency, rare 5xx), marked "
                           "serving.simulated=true. The ACS data has none of its own."),
                  seed: int = typer.Option(0, help="Seed of the simulated serving telemetry.")) -> None:
    """Produce the ACS employment prediction logs to a Kafka topic, in event-time order.

    The features, predictions and labels are the real ACS data; the serving telemetry
    (--serving, on by default) is SIMULATED so the serving dashboards have something to show.
    """
    import heapq
    from itertools import islice

    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from inferwatch import demo as demo_data

    if stream not in ("demo", "control", "both"):
        console.print("[red]error:[/red] --stream must be demo, control or both")
        raise typer.Exit(2)
    streams = []
    if stream in ("demo", "both"):
        streams.append(demo_data.demo_records())
    if stream in ("control", "both"):
        streams.append(demo_data.control_records())
    if serving:  # each stream its own seed, so the two models' telemetry differs
        streams = [demo_data.with_simulated_serving(s, seed=seed * 2 + i) for i, s in enumerate(streams)]
    records = heapq.merge(*streams, key=lambda r: r["timestamp"]) if len(streams) > 1 else streams[0]
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers.split(","), acks="all", linger_ms=20)
    except (KafkaError, ValueError) as exc:
        console.print(f"[red]error:[/red] --bootstrap-servers {bootstrap_servers}: cannot reach Kafka ({exc}); "
                      "check the host:port list and that the brokers are up")
        raise typer.Exit(3) from None
    n = 0
    for rec in islice(records, limit):
        producer.send(topic, value=demo_data.encode_record(rec), key=rec["request_id"].encode())
        n += 1
    producer.flush()
    producer.close()
    console.print(f"produced {n} records to {topic}")


outbox_app = typer.Typer(help="Inspect and deliver the outbox of outgoing notifications and hooks.",
                         no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")


@outbox_app.command("list")
def outbox_list(state: Optional[str] = typer.Option(None, "--state", "-s", help="pending, delivered or dead."),
                limit: int = typer.Option(50, min=1, max=MAX_ID, help="Rows shown, newest first."),
                config: Optional[Path] = ConfigOption) -> None:
    """List outbox messages (newest first) and the number in each state."""
    from inferwatch.store import OUTBOX_STATES

    if state is not None and state not in OUTBOX_STATES:
        console.print(f"[red]error:[/red] --state must be one of {', '.join(OUTBOX_STATES)}")
        raise typer.Exit(2)
    _, store = _open_store(config)
    rows = store.list_outbox(state, limit)
    counts = store.outbox_counts()
    store.close()
    table = Table("id", "idempotency key", "target", "state", "attempts", "created", "next attempt / done",
                  "last error")
    for r in rows:
        done = r.delivered_at_ms or r.dead_at_ms
        table.add_row(str(r.id), r.idempotency_key, r.target, r.state, str(r.attempts), _utc(r.created_at_ms),
                      _utc(done) if done else _utc(r.next_attempt_at_ms), (r.last_error or "")[:80])
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


@outbox_app.command("retry")
def outbox_retry(key: str = typer.Argument(..., help="Idempotency key of a dead message."),
                 config: Optional[Path] = ConfigOption) -> None:
    """Make a dead message pending again (due at once, with a fresh expiry)."""
    from inferwatch.store import now_ms

    settings, store = _open_store(config)
    expire = settings.alerting.outbox.expire_after_seconds
    now = now_ms()
    revived = store.revive(key, now, None if expire is None else now + int(expire * 1000))
    store.close()
    if not revived:
        console.print(f"[red]error:[/red] no dead outbox message has the key {key!r}")
        raise typer.Exit(1)
    console.print(f"{key}: pending again")


@outbox_app.command("deliver")
def outbox_deliver(until_empty: bool = typer.Option(False, "--until-empty",
                                                    help="Exit once no message is pending (instead of running "
                                                         "until SIGTERM or Ctrl-C)."),
                   config: Optional[Path] = ConfigOption,
                   verbose: bool = VerboseOption) -> None:
    """Deliver outbox messages in the foreground to every configured target (receivers and hooks)."""
    from alerting.outbox import OutboxWorker

    settings, store = _open_store(config)
    _logging(verbose)
    cfg = settings.alerting
    totals: dict[str, int] = {}
    worker = OutboxWorker(store, settings.outbox_targets(), cfg.outbox)
    stop = _stop_on_signals("the current message")
    try:
        while not stop.is_set():
            counts = worker.run_once()
            for outcome, n in counts.items():
                totals[outcome] = totals.get(outcome, 0) + n
            if until_empty and store.outbox_counts()["pending"] == 0:
                break
            if sum(counts.values()) < cfg.outbox.batch_size:  # a full batch: more may be due at once
                stop.wait(cfg.outbox.poll_interval_seconds)
    finally:
        worker.close()
        store.close()
    console.print(", ".join(f"{n} {outcome}" for outcome, n in totals.items()))



# --- alerts and silences ---------------------------------------------------------------------
silence_app = typer.Typer(help="Mute alert notifications for a while (label matchers, as in Alertmanager).",
                          no_args_is_help=True)
app.add_typer(silence_app, name="silence")


def _duration_ms(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d``, ``1w`` in milliseconds (> 0), for ``--for``."""
    from inferwatch.times import duration_ms
    try:
        return duration_ms(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--for") from None


@app.command("alerts")
def alerts_list(state: Optional[str] = typer.Option(None, "--state", "-s",
                                                    help="inactive, pending, firing or resolved (default: pending and firing)."),
                config: Optional[Path] = ConfigOption) -> None:
    """List alert instances with their state, labels and summary."""
    states = ("pending", "firing") if state is None else (state,)
    if state is not None and state not in ("inactive", "pending", "firing", "resolved"):
        raise typer.BadParameter("one of inactive, pending, firing, resolved", param_hint="--state")
    _, store = _open_store(config)
    table = Table(title="Alerts")
    for col in ("state", "alertname", "model", "version", "labels", "since (UTC)", "summary"):
        table.add_column(col)
    for row in store.alert_instances_in(None, states):
        st, lb = row["state"], row["labels"]
        extra = ", ".join(f"{k}={v}" for k, v in sorted(lb.items())
                          if k not in ("alertname", "model", "model_version"))
        since = st["fired_at_ms"] if st["state"] == "firing" else st.get("resolved_at_ms")
        table.add_row(st["state"], lb["alertname"], lb["model"], lb["model_version"], extra,
                      "-" if since is None else _utc(int(since)), row["annotations"].get("summary", ""))
    console.print(table)
    store.close()


@silence_app.command("add")
def silence_add(matchers: list[str] = typer.Argument(..., help="Label matchers: name=value, name!=value, "
                                                                "name=~regex, name!~regex (all must match)."),
                duration: str = typer.Option("2h", "--for", help="How long, e.g. 30m, 2h, 1d (at most 366d)."),
                comment: str = typer.Option(..., "--comment", help="Why (shown in silence list)."),
                author: str = typer.Option(os.environ.get("USER", "unknown"), "--author",
                                           help="Who (shown in silence list; default: $USER)."),
                config: Optional[Path] = ConfigOption) -> None:
    """Silence matching alerts now for the given duration; prints the silence id."""
    from alerting.silences import MAX_SILENCE_SECONDS, parse_matcher

    for m in matchers:
        try:
            parse_matcher(m)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="MATCHERS") from None
    length = _duration_ms(duration)
    if length < 1000:
        raise typer.BadParameter("a silence lasts at least 1s", param_hint="--for")
    if length > MAX_SILENCE_SECONDS * 1000:
        raise typer.BadParameter(f"a silence lasts at most {MAX_SILENCE_SECONDS // 86_400}d; add another when it "
                                 "ends", param_hint="--for")
    if not comment.strip():
        raise typer.BadParameter("say why (shown in silence list)", param_hint="--comment")
    _, store = _open_store(config)
    now = int(time.time() * 1000)
    sid = store.add_silence(matchers, now, now + length, author, comment)
    console.print(f"silence {sid}: {' '.join(matchers)} until {_utc(now + length)} UTC")
    store.close()


@silence_app.command("list")
def silence_list(all_: bool = typer.Option(False, "--all", help="Include ended silences."),
                 config: Optional[Path] = ConfigOption) -> None:
    """List silences (active and future ones, or all)."""
    _, store = _open_store(config)
    now = int(time.time() * 1000)
    table = Table(title="Silences")
    for col in ("id", "state", "matchers", "starts (UTC)", "ends (UTC)", "author", "comment"):
        table.add_column(col)
    for s in store.list_silences(active_at_ms=None if all_ else now):
        st = "active" if s["starts_at_ms"] <= now < s["ends_at_ms"] else ("pending" if now < s["starts_at_ms"]
                                                                           else "expired")
        table.add_row(str(s["id"]), st, " ".join(s["matchers"]), _utc(int(s["starts_at_ms"])),
                      _utc(int(s["ends_at_ms"])), s["created_by"], s["comment"])
    console.print(table)
    store.close()


@silence_app.command("expire")
def silence_expire(silence_id: int = typer.Argument(..., min=1, max=MAX_ID, help="Id from silence list."),
                   config: Optional[Path] = ConfigOption) -> None:
    """End a silence now."""
    _, store = _open_store(config)
    found = store.expire_silence(silence_id, int(time.time() * 1000))
    store.close()
    if not found:
        console.print(f"[red]error:[/red] no silence {silence_id} (see inferwatch silence list)")
        raise typer.Exit(1)
    console.print(f"silence {silence_id} expired")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
