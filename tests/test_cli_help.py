"""The command line's help and its errors for bad input.

Every command (sub-apps included) answers ``--help`` with exit 0, and every option and
argument says what it is for. Bad flag values and bad configuration exit 2 with one line
naming the flag or key, never a traceback.
"""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from inferwatch.cli import app

runner = CliRunner()


def _commands(group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """(path, command) of a command and, for a group, of everything under it."""
    out = [(path, group)]
    for name, cmd in sorted((getattr(group, "commands", None) or {}).items()):  # typer vendors click: duck typing
        out.extend(_commands(cmd, (*path, name)))
    return out


COMMANDS = _commands(typer.main.get_command(app))


def test_the_tree_has_every_command():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"run", "replay", "windows", "backfill", "demo", "demo-producer", "alerts", "reference set",
            "outbox list", "outbox retry", "outbox deliver", "silence add", "silence list",
            "silence expire"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_exits_0_and_every_parameter_is_explained(path, command):
    result = runner.invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output
    assert (command.help or "").strip(), f"{' '.join(path) or 'inferwatch'} has no help text"
    assert command.get_short_help_str(limit=200).strip()
    for param in command.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{' '.join(path)}: {param.opts} has no help text"


def test_help_paragraphs_are_reflowed():
    """Docstring line breaks inside a paragraph are not kept (markdown mode)."""
    result = runner.invoke(app, ["backfill", "--help"], env={"COLUMNS": "200"})
    assert "Each window's drift results and drift columns are replaced in one transaction; a second run" \
        in result.output


# --- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path, clean_env):
    path = tmp_path / "inferwatch.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path / 'cli.db'}\n")
    return path


def _fails(args: list[str], code: int, *needles: str) -> str:
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == code, result.output
    # an exception the command let escape would be the result's exception, not SystemExit
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    return result.output


def test_config_file_that_does_not_exist(tmp_path, clean_env):
    _fails(["windows", "--config", str(tmp_path / "nope.yaml")], 2, "--config", "does not exist")


def test_config_file_that_is_not_yaml(tmp_path, clean_env):
    path = tmp_path / "bad.yaml"
    path.write_text("database_url: [unclosed\n")
    _fails(["windows", "--config", str(path)], 2, "is not valid YAML")


def test_unknown_and_bad_config_keys_are_named(tmp_path, clean_env):
    path = tmp_path / "typo.yaml"
    path.write_text("databse_url: sqlite:///x.db\nwindow:\n  length_seconds: -5\n")
    out = _fails(["windows", "--config", str(path)], 2, "databse_url", "unknown key", "window.length_seconds")
    assert "greater than 0" in out


@pytest.mark.parametrize(("args", "needles"), [
    (["alerts", "--state", "sleeping"], ["--state", "inactive, pending, firing, resolved"]),
    (["outbox", "list", "--state", "lost"], ["--state", "pending, delivered, dead"]),
    (["silence", "add", "alertname=x", "--for", "5x", "--comment", "c"], ["--for", "30m"]),
    (["silence", "add", "alertname~x", "--comment", "c"], ["MATCHERS", "name=value"]),
    (["backfill", "--model", "m", "--since", "last week"], ["--since", "RFC 3339"]),
    (["backfill", "--model", "m", "--since", "7d", "--until", "8d"], ["--until", "is not after --since"]),
    (["backfill", "--model", "nosuch", "--since", "7d"], ["--model", "no closed windows of model 'nosuch'"]),
    # ids and counts beyond a signed 64-bit integer (SQLite INTEGER, PostgreSQL BIGINT)
    (["silence", "expire", "99999999999999999999999"],
     ["'silence_id'", "less than or equal to", "9223372036854775807"]),
    (["outbox", "list", "--limit", "99999999999999999999999"],
     ["'--limit'", "less than or equal to", "9223372036854775807"]),
    (["silence", "add", "model=x", "--for", "999999d", "--comment", "c"], ["--for", "at most 366d"]),
    (["silence", "add", "model=x", "--for", "367d", "--comment", "c"], ["--for", "at most 366d"]),
])
def test_bad_flag_values_exit_2_naming_the_flag(config, args, needles):
    _fails([*args, "--config", str(config)], 2, *needles)


def test_replay_with_an_unknown_format(tmp_path, config):
    log = tmp_path / "a.jsonl"
    log.write_text('{"model": "m"}\n')
    _fails(["replay", str(log), "--format", "bogus", "--config", str(config)], 2,
           "--format bogus", "'kserve'")


def test_reference_file_that_is_not_parquet(tmp_path, config):
    bad = tmp_path / "train.parquet"
    bad.write_text("not parquet at all\n")
    _fails(["reference", "set", "--model", "m", "--file", str(bad), "--config", str(config)], 2,
           "--file: cannot read", "train.parquet")


def test_windows_of_an_unknown_model_names_the_known_ones(config):
    result = runner.invoke(app, ["windows", "--model", "nosuch", "--config", str(config)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "no closed windows of model 'nosuch'; models with windows: none yet" in result.output


def test_demo_producer_without_a_broker(clean_env):
    # a port nothing listens on: kafka-python gives up bootstrapping after its timeout
    out = _fails(["demo-producer", "--bootstrap-servers", "127.0.0.1:9", "--limit", "1"], 3,
                 "--bootstrap-servers 127.0.0.1:9", "cannot reach Kafka")
    assert "check the host:port list" in out


def test_window_ids_beyond_64_bits_are_named_not_a_traceback(tmp_path, config):
    from inferwatch import demo
    from inferwatch.config import load_config
    from inferwatch.metrics import Metrics
    from inferwatch.runner import open_store, run_in_process

    settings = load_config(config, window={"length_seconds": 86_400, "idle_close_seconds": None},
                           metrics={"enabled": False}, reference={"bootstrap_records": 100})
    store = open_store(settings)
    episode = demo.episode_records(model_name="employment", n_stable=400, n_drift=0, n_recovery=0,
                                   records_per_day=200)
    run_in_process(settings, (demo.encode_record(r) for r in episode.records), store, Metrics(), source_name="s")
    assert len(store.list_windows("employment")) >= 1
    store.close()
    _fails(["report", "--model", "employment", "--window", "99999999999999999999999", "--config", str(config)], 2,
           "--window", "window ids are 1 to 9223372036854775807")
    # the largest id is looked up, and not found
    _fails(["report", "--model", "employment", "--window", "9223372036854775807", "--config", str(config)], 2,
           "--window 9223372036854775807: no window 9223372036854775807")


def test_a_silence_of_366_days_is_the_longest(config):
    result = runner.invoke(app, ["silence", "add", "model=x", "--for", "366d", "--comment", "c", "--config",
                                 str(config)], terminal_width=200)
    assert result.exit_code == 0 and "silence 1: model=x until" in result.output, result.output
