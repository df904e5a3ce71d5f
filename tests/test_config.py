"""Configuration: defaults, environment overrides, and bad keys named at start-up."""

import subprocess
import sys

import pytest

from inferwatch.config import ConfigError, load_config
from e2e import REPO


def test_defaults_are_embedded_sqlite():
    s = load_config(None)
    assert s.database_url == "sqlite:///inferwatch.db" and s.kafka.topics == ["predictions"]


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("kafka:\n  group_id: from-file\n  bootstrap_servers: a:1\n")
    monkeypatch.setenv("INFERWATCH_KAFKA__GROUP_ID", "from-env")
    s = load_config(f)
    assert (s.kafka.group_id, s.kafka.bootstrap_servers) == ("from-env", "a:1")


@pytest.mark.parametrize("text, key", [
    ("kafka:\n  topicz: [x]\n", "kafka.topicz: unknown key"),
    ("window:\n  length_seconds: 0\n", "window.length_seconds"),
    ("alerting:\n  webhook_url: ftp://x\n", "alerting.webhook_url"),
    ("window:\n  origin: 2015-01-01T00:00:00\n", "window.origin"),
    ("- just\n- a list\n", "must hold a mapping"),
    ("kafka: [unclosed\n", "not valid YAML"),
])
def test_bad_config_names_the_key(tmp_path, text, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        load_config(f)


def test_cli_fails_at_start_up_naming_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("drift:\n  alpha: 2\n")
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "run", "--config", str(f)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "drift.alpha" in done.stdout + done.stderr


@pytest.mark.parametrize("text, exit_code, message", [
    ("database_url: 'nonsense://'\n", 3, "database_url"),
    ("database_url: 'mysql://u:p@127.0.0.1/x'\n", 3, "database_url: unsupported database 'mysql'"),
    ("database_url: 'postgresql+psycopg://u:p@127.0.0.1:{port}/x'\n", 3, "database_url: cannot connect"),
    ("kafka:\n  bootstrap_servers: '127.0.0.1:{port}'\n  client_options: {{bootstrap_timeout_ms: 2000}}\n", 3,
     "kafka.bootstrap_servers: no broker answered"),
])
def test_cli_start_up_failures_name_the_key(tmp_path, text, exit_code, message):
    from e2e import free_port

    f = tmp_path / "c.yaml"
    f.write_text(text.format(port=free_port()) + f"metrics:\n  port: {free_port()}\n"
                 + ("" if "database_url" in text else f"database_url: sqlite:///{tmp_path / 'x.db'}\n"))
    done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "run", "--config", str(f)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == exit_code, out
    assert message in out and "Traceback" not in out


def test_client_options_must_be_kafka_python_options():
    assert load_config(None, kafka={"client_options": {"max_poll_interval_ms": 600000, "linger_ms": 5}})
    with pytest.raises(ConfigError, match="kafka.client_options.*not_an_option"):
        load_config(None, kafka={"client_options": {"not_an_option": 1}})


def test_resolve_share_above_fire_share_is_refused():
    with pytest.raises(ConfigError, match="resolve_share must not exceed fire_share"):
        load_config(None, alerting={"fire_share": 0.3, "resolve_share": 0.4})


def test_metrics_port_in_use_is_named(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "inferwatch.cli", "demo", "--db", str(tmp_path / "d.db"),
                               "--metrics-port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=120)
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3 and f"metrics.port: cannot listen on 127.0.0.1:{port}" in out, out


def test_k_of_n_needs_k_between_1_and_n():
    assert load_config(None, alerting={"k_of_n": [2, 3]}).alerting.k_of_n == (2, 3)
    for bad in ([0, 3], [4, 3]):
        with pytest.raises(ConfigError, match="k_of_n"):
            load_config(None, alerting={"k_of_n": bad})
    with pytest.raises(ConfigError, match="drift.numeric_test"):
        load_config(None, drift={"numeric_test": "t_test"})


def test_k_of_n_cannot_be_combined_with_fire_share():
    with pytest.raises(ConfigError, match="alerting.k_of_n"):
        load_config(None, alerting={"fire_share": 0.05, "k_of_n": [3, 3]})


def test_drift_thresholds_must_be_finite():
    for key, value in (("numeric_effect_threshold", float("inf")), ("alpha", float("nan"))):
        with pytest.raises(ConfigError, match=f"drift.{key}.*finite"):
            load_config(None, drift={key: value})


def test_client_options_may_not_override_what_inferwatch_sets():
    from inferwatch.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="kafka.client_options.*group_id"):
        load_config(None, kafka={"client_options": {"group_id": "other"}})


def test_sliding_windows_are_capped_at_24_per_record():
    from inferwatch.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="window.slide_seconds.*at most 24"):
        load_config(None, window={"length_seconds": 3600, "slide_seconds": 60})
    assert load_config(None, window={"length_seconds": 3600, "slide_seconds": 150}).window.slide_seconds == 150


@pytest.mark.parametrize("text, key", [
    ("api:\n  token: s3cr3t-plain\n", "api.token"),
    ("alerting:\n  receivers:\n  - {name: r, type: webhook, url: 'http://127.0.0.1:1/', "
     "bearer_token: s3cr3t-plain}\n", "bearer_token"),
])
def test_plaintext_secret_says_how_to_give_one(tmp_path, text, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    line = next(x for x in str(info.value).splitlines() if key in x)
    assert "{env: NAME}" in line and "{file: PATH}" in line and "never written in the config file" in line
    assert "s3cr3t-plain" not in str(info.value)  # the value is never echoed
