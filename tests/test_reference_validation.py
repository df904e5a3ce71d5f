"""A new reference is checked before it replaces the stored one, the same way from
``inferwatch reference set`` and from ``PUT /api/v1/models/{model}/reference``: too few rows,
dropped columns, a column changing kind, a column name twice, ragged CSV lines."""

from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from inferwatch.api import start_api
from inferwatch.cli import app
from inferwatch.config import load_config
from inferwatch.runner import open_store

TOKEN_ENV = "INFERWATCH_TEST_REF_TOKEN"
AUTH = {"Authorization": "Bearer ref-check-token"}
runner = CliRunner()


def _training(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Four numeric and two text features, a prediction and a label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"AGEP": rng.integers(18, 90, n), "WKHP": rng.normal(38, 9, n).round(1),
                         "PINCP": rng.lognormal(10, 1, n).round(0), "JWMNP": rng.integers(0, 90, n),
                         "SEX": rng.choice(["m", "f"], n), "STATE": rng.choice(["CA", "NY", "TX"], n),
                         "prediction.employed": rng.integers(0, 2, n), "label": rng.integers(0, 2, n)})


@pytest.fixture
def cfg(tmp_path, clean_env):
    path = tmp_path / "c.yaml"
    path.write_text(f"database_url: sqlite:///{tmp_path / 'ref.db'}\n")
    return path


def _stored(cfg, model: str = "employment", version: str = "*") -> tuple[int, set[str]] | None:
    """(n_rows, column names) of the reference stored for exactly this version."""
    store = open_store(load_config(cfg))
    try:
        with store.engine.connect() as conn:
            found = store.get_reference(conn, model, version)
        if found is None or found[0] != version:
            return None
        return found[1]["n_rows"], set(found[1]["columns"])
    finally:
        store.close()


def _set(cfg, path, *extra: str):
    return runner.invoke(app, ["reference", "set", "--model", "employment", "--file", str(path), "--config",
                               str(cfg), *extra], terminal_width=300)


def _text(result) -> str:
    return " ".join(result.output.split())


def test_cli_refuses_a_one_row_reference_and_keeps_the_stored_one(tmp_path, cfg):
    train = tmp_path / "train.csv"
    _training().to_csv(train, index=False)
    assert _set(cfg, train).exit_code == 0
    one = tmp_path / "one.csv"
    one.write_text("a,b\n1,2\n")
    for extra in ((), ("--force",)):  # too few rows is never forcible
        r = _set(cfg, one, *extra)
        assert r.exit_code == 2, r.output
        assert "--file" in _text(r) and "1 rows; a reference needs at least drift.min_count (30) rows" in _text(r)
    assert _stored(cfg) == (200, {"features.AGEP", "features.WKHP", "features.PINCP", "features.JWMNP",
                                  "features.SEX", "features.STATE", "predictions.employed"})


def test_min_count_is_read_from_the_drift_settings(tmp_path, cfg):
    cfg.write_text(cfg.read_text() + "drift:\n  min_count: 50\n")
    f = tmp_path / "t.csv"
    _training(49).to_csv(f, index=False)
    r = _set(cfg, f)
    assert r.exit_code == 2 and "49 rows" in _text(r) and "drift.min_count (50)" in _text(r)
    _training(50).to_csv(f, index=False)
    assert _set(cfg, f).exit_code == 0 and _stored(cfg)[0] == 50


def test_cli_refuses_dropped_columns_and_kind_changes_unless_forced(tmp_path, cfg):
    train = tmp_path / "train.csv"
    _training().to_csv(train, index=False)
    assert _set(cfg, train).exit_code == 0
    fewer = tmp_path / "fewer.csv"
    _training(100, seed=1).drop(columns=["PINCP", "STATE"]).to_csv(fewer, index=False)
    r = _set(cfg, fewer)
    assert r.exit_code == 2, r.output
    assert "drops column(s) of the stored reference: PINCP, STATE" in _text(r) and "--force" in _text(r)
    assert _stored(cfg)[0] == 200
    kinds = tmp_path / "kinds.csv"
    frame = _training(100, seed=2)
    frame["AGEP"] = np.where(frame["AGEP"] > 50, "old", "young")
    frame["SEX"] = (frame["SEX"] == "m").astype(int)
    frame.to_csv(kinds, index=False)
    r = _set(cfg, kinds)
    assert r.exit_code == 2 and "AGEP (numeric -> categorical)" in _text(r) \
        and "SEX (categorical -> numeric)" in _text(r)
    # added columns are fine; --force replaces it anyway
    more = tmp_path / "more.csv"
    _training(120, seed=3).assign(extra=1.5).to_csv(more, index=False)
    assert _set(cfg, more).exit_code == 0 and _stored(cfg)[0] == 120
    r = _set(cfg, fewer, "--force")
    assert r.exit_code == 0, r.output
    assert _stored(cfg) == (100, {"features.AGEP", "features.WKHP", "features.JWMNP", "features.SEX",
                                  "predictions.employed"})
    # the model-wide reference is not the one of version 3: nothing to conflict with
    assert _set(cfg, kinds, "--model-version", "3").exit_code == 0 and _stored(cfg, version="3")[0] == 100


def test_model_version_flag_and_its_old_spelling(tmp_path, cfg):
    train = tmp_path / "train.csv"
    _training().to_csv(train, index=False)
    assert _set(cfg, train, "--model-version", "4").exit_code == 0
    assert _set(cfg, train, "--version", "5").exit_code == 0
    assert _stored(cfg, version="4")[0] == 200 and _stored(cfg, version="5")[0] == 200
    assert _stored(cfg) is None


@pytest.mark.parametrize("text, needle", [
    ("a,b,a\n" + "1,2,3\n" * 40, "names a column more than once: a"),
    ("prediction.y,predictions.y,x\n" + "1,0,3\n" * 40, "names a column more than once: prediction.y"),
    ("a,b\n" + "1,2\n" * 10 + "3\n" + "1,2\n" * 30, "line 12 has 1 fields, the header 2"),
    ("a,b\n" + "1,2,3\n" * 40, "line 2 has 3 fields, the header 2"),  # pandas would make a the index
    ("x,,p\n" + "1,2,3\n" * 40, "without a name in column(s) 2"),  # pandas would call it "Unnamed: 1"
])
def test_cli_refuses_duplicate_names_and_ragged_lines(tmp_path, cfg, text, needle):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    r = _set(cfg, f)
    assert r.exit_code == 2, r.output
    assert "--file" in _text(r) and needle in _text(r)
    assert _stored(cfg) is None


@pytest.fixture
def api(tmp_path, clean_env, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, AUTH["Authorization"].split()[1])
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'api.db'}", metrics={"enabled": False},
                           api={"enabled": True, "port": 0, "token": {"env": TOKEN_ENV}})
    store = open_store(settings)
    server = start_api(settings, store)
    client = httpx.Client(base_url=server.url, timeout=30, headers={**AUTH, "Content-Type": "text/csv"})
    yield client, store
    client.close()
    server.stop()
    store.close()


def test_api_upload_runs_the_same_checks(api):
    c, store = api
    url = "/api/v1/models/employment/reference"
    assert c.put(url, content=_training().to_csv(index=False)).status_code == 200
    r = c.put(url, content=b"a,b\n1,2\n")
    assert r.status_code == 400 and "1 rows; a reference needs at least drift.min_count (30)" in r.json()["detail"]
    fewer = _training(100, seed=1).drop(columns=["PINCP"]).to_csv(index=False)
    r = c.put(url, content=fewer)
    assert r.status_code == 409, r.text
    assert "drops column(s) of the stored reference: PINCP" in r.json()["detail"] and "force=true" in r.json()["detail"]
    r = c.put(url, content=b"a,b,a\n" + b"1,2,3\n" * 40)
    assert r.status_code == 400 and "names a column more than once: a" in r.json()["detail"]
    r = c.put(url, content=b"a,b\n" + b"1,2\n" * 40 + b"7\n")
    assert r.status_code == 400 and "line 42 has 1 fields" in r.json()["detail"]
    with store.engine.connect() as conn:
        assert store.get_reference(conn, "employment", "*")[1]["n_rows"] == 200
    r = c.put(url, params={"force": "true"}, content=fewer)
    assert r.status_code == 200, r.text
    assert r.json()["n_rows"] == 100 and "features.PINCP" not in r.json()["numeric_columns"]
    r = c.put(url, params={"force": "true"}, content=b"a,b\n1,2\n")
    assert r.status_code == 400
    with store.engine.connect() as conn:
        assert store.get_reference(conn, "employment", "*")[1]["n_rows"] == 100
