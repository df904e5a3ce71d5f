"""inferwatch backfill: drift of past windows recomputed from their stored profiles.

Every test runs the real pipeline over slices of the real ACS demo data into a real
database, changes the reference or the drift settings, backfills, and compares the stored
rows with those of a fresh pipeline run under the new reference or settings.
"""

from __future__ import annotations

import json
import math

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from inferwatch import demo as demo_data
from inferwatch.backfill import backfill
from inferwatch.times import parse_time
from inferwatch.cli import app
from inferwatch.config import load_config
from inferwatch.metrics import Metrics
from inferwatch.reference import profile_frame, read_reference_file
from inferwatch.runner import open_store, run_in_process

MODEL = "employment"
HALF_DAY = 12 * 3600
DAY_MS = 86_400_000
T2015 = 1_420_070_400_000  # 2015-01-01T00:00Z
T2018 = 1_514_764_800_000  # 2018-01-01T00:00Z
FAR_FUTURE = 4_102_444_800_000  # 2100-01-01


@pytest.fixture(scope="module")
def demo_records() -> list[dict]:
    """The demo's records of 2015-01-01..02 and 2018-01-01..28."""
    return [r for r in demo_data.demo_records()
            if r["timestamp"] < "2015-01-03" or "2018-01-01" <= r["timestamp"] < "2018-01-29"]


@pytest.fixture(scope="module")
def payloads(demo_records) -> list[bytes]:
    """The demo's records of 2015-01-01..02 and 2018-01-01..02 (about 48 and 96 per 12 h)."""
    return [demo_data.encode_record(r) for r in demo_records if r["timestamp"] < "2018-01-03"]


@pytest.fixture(scope="module")
def large_payloads(demo_records) -> list[bytes]:
    """The demo's records of 2018-01-01..28: two 14-day windows of about 2,700 records each."""
    return [demo_data.encode_record(r) for r in demo_records if r["timestamp"] >= "2018-01-01"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """(training reference frame, the same with every age 40 years higher) in reference-file form."""
    path = tmp_path_factory.mktemp("ref") / "reference.parquet"
    demo_data.write_reference_file(path)
    frame = read_reference_file(path)
    older = frame.copy()
    older["features.AGEP"] = older["features.AGEP"] + 40
    return frame, older


def _settings(url: str, length_seconds: int = HALF_DAY, retention_days: int = 30, origin: str = "2015-01-01",
              **drift):
    return load_config(None, database_url=url, metrics={"port": 0}, drift=drift,
                       window={"length_seconds": length_seconds, "idle_close_seconds": None,
                               "origin": f"{origin}T00:00:00Z", "sample_retention_days": retention_days})


def _put_reference(settings, store, frame) -> None:
    profile = profile_frame(frame, set(), settings.reference.n_bins, settings.reference.sample_size)
    with store.transaction() as conn:
        store.put_reference(conn, MODEL, "*", "test", len(frame), profile.to_dict())


def _run(settings, reference, payloads):
    store = open_store(settings)
    _put_reference(settings, store, reference)
    run_in_process(settings, payloads, store, Metrics())
    return store


def _snapshot(store) -> dict:
    """Every window's drift columns and drift_results rows, keyed by (version, start, segment)."""
    out = {}
    with store.engine.connect() as conn:
        for w in conn.execute(sa.text("SELECT id, model_version, window_start_ms, segment, status, n_columns, "
                                      "n_drifted, drift_share, dataset_drifted FROM windows")).mappings():
            rows = conn.execute(sa.text("SELECT * FROM drift_results WHERE window_id = :w ORDER BY column_name"),
                                {"w": w["id"]}).mappings().all()
            results = {r["column_name"]: {k: _norm(v) for k, v in r.items() if k != "window_id"} for r in rows}
            key = (w["model_version"], int(w["window_start_ms"]), int(w["segment"]))
            out[key] = ({k: _norm(w[k]) for k in ("status", "n_columns", "n_drifted", "drift_share",
                                                   "dataset_drifted")}, results)
    return out


def _norm(value):
    """Database values compared across SQLite and PostgreSQL: NaN as None, 0/1 booleans as bool."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _same_rows(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        wa, ra = a[key]
        wb, rb = b[key]
        assert {k: (bool(v) if k == "dataset_drifted" and v is not None else v) for k, v in wa.items()} == \
               {k: (bool(v) if k == "dataset_drifted" and v is not None else v) for k, v in wb.items()}, key
        assert ra.keys() == rb.keys(), key
        for col in ra:
            for field in ra[col]:
                x, y = ra[col][field], rb[col][field]
                if isinstance(x, (bool, int)) and isinstance(y, (bool, int)) and field in (
                        "drifted", "missing_drifted", "low_confidence"):
                    x, y = bool(x), bool(y)
                assert x == y, (key, col, field, x, y)


def test_backfill_after_reference_change_equals_a_fresh_run(db_url, tmp_path, references, payloads):
    training, older = references
    settings = _settings(db_url)
    store = _run(settings, training, payloads)
    try:
        before = _snapshot(store)
        assert len(before) == 8 and all(w["status"] == "ok" for w, _ in before.values())
        assert all(w["n_drifted"] == 0 for w, _ in before.values())  # 2015 and 2018 look like the 2015 training data

        # unchanged reference and settings: the stored profiles give back exactly what the close stored
        same = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert [o.changed for o in same] == [False] * 8 and all(o.kept is None for o in same)
        assert _snapshot(store) == before

        _put_reference(settings, store, older)
        dry = backfill(settings, store, MODEL, 0, FAR_FUTURE, dry_run=True)
        assert _snapshot(store) == before  # a dry run writes nothing
        assert all(o.changed for o in dry)
        assert all("AGEP" in o.new_drifted and o.new_share > 0 and o.old_share == 0.0 for o in dry)

        done = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert [(o.window_start_ms, o.new_share, o.new_drifted) for o in done] == \
               [(o.window_start_ms, o.new_share, o.new_drifted) for o in dry]
        after = _snapshot(store)
        fresh = _run(_settings(f"sqlite:///{tmp_path / 'fresh.db'}"), older, payloads)
        try:
            _same_rows(after, _snapshot(fresh))
        finally:
            fresh.close()
        for _key, (w, results) in after.items():
            assert w["dataset_drifted"] and results["features.AGEP"]["drifted"]
            assert results["features.AGEP"]["method"] == "ks"

        again = backfill(settings, store, MODEL, 0, FAR_FUTURE)  # idempotent
        assert not any(o.changed for o in again)
        assert _snapshot(store) == after
    finally:
        store.close()


def test_since_and_until_bound_the_window_start(tmp_path, references, payloads):
    training, older = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}")
    store = _run(settings, training, payloads)
    try:
        before = _snapshot(store)
        _put_reference(settings, store, older)
        # [2018-01-01T12:00Z, 2018-01-02T12:00Z): the second and third 2018 windows only
        out = backfill(settings, store, MODEL, T2018 + DAY_MS // 2, T2018 + 3 * DAY_MS // 2)
        assert [o.window_start_ms for o in out] == [T2018 + DAY_MS // 2, T2018 + DAY_MS]
        after = _snapshot(store)
        for key in before:
            inside = key[1] in (T2018 + DAY_MS // 2, T2018 + DAY_MS)
            assert (after[key] != before[key]) == inside, key
        # a version that has no windows selects nothing
        assert backfill(settings, store, MODEL, 0, FAR_FUTURE, model_version="2") == []
    finally:
        store.close()


def test_drift_settings_change_equals_a_fresh_run(tmp_path, references, payloads):
    training, _ = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}")
    store = _run(settings, training, payloads)
    try:
        before = _snapshot(store)
        loose = _settings(settings.database_url, alpha=0.5, correction="none")
        out = backfill(loose, store, MODEL, T2015, FAR_FUTURE)
        assert any(o.changed for o in out)
        fresh = _run(_settings(f"sqlite:///{tmp_path / 'fresh.db'}", alpha=0.5, correction="none"), training,
                     payloads)
        try:
            after = _snapshot(store)
            _same_rows(after, _snapshot(fresh))
        finally:
            fresh.close()
        assert any(w["n_drifted"] > 0 for w, _ in after.values()) and after != before
    finally:
        store.close()


def test_windows_too_large_for_their_summary_are_kept_without_samples(tmp_path, references, payloads):
    """Two-day windows stored without raw values (window.sample_retention_days 0): 2015's
    (about 190 records) fit the quantile sketch's exact mode and are recomputed; 2018's (about
    380) do not, and keep their results, with the reason."""
    training, older = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}", length_seconds=2 * 86400, retention_days=0)
    store = _run(settings, training, payloads)
    try:
        assert _sample_rows(store) == []
        before = _snapshot(store)
        _put_reference(settings, store, older)
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert len(out) == 2
        small, large = out
        assert small.record_count <= 200 < large.record_count
        assert small.kept is None and small.changed and "AGEP" in small.new_drifted
        assert large.kept.startswith(f"AGEP: {large.record_count} values, the stored quantile sketch keeps 200 "
                                     "exactly; the window's raw values were not stored")
        assert not large.changed and (large.new_share, large.new_status) == (large.old_share, large.old_status)
        assert _snapshot(store)[("1", T2018, 0)] == before[("1", T2018, 0)]
    finally:
        store.close()


def _sample_rows(store) -> list[tuple[int, str, int, int]]:
    """(window_id, column_name, n_values, payload bytes) of every stored window sample."""
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT window_id, column_name, n_values, length(payload) FROM window_samples "
            "ORDER BY window_id, column_name"))]


def test_backfill_recomputes_windows_of_thousands_of_records_from_their_samples(db_url, tmp_path, references,
                                                                                 large_payloads):
    """14-day windows of about 2,700 records: their raw values are stored at close, so a
    backfill after a reference change gives, row for row, what a fresh run with the new
    reference stores."""
    import numpy as np

    from inferwatch.store import decode_sample

    training, older = references
    settings = _settings(db_url, length_seconds=14 * 86400, origin="2018-01-01")
    store = _run(settings, training, large_payloads)
    try:
        before = _snapshot(store)
        assert len(before) == 2 and all(w["status"] == "ok" for w, _ in before.values())
        listed = store.list_windows(MODEL)
        assert listed["record_count"].min() > 2000
        # every numeric column of every window: all its finite values, as the profile counted them
        with store.engine.connect() as conn:
            for wid in listed["id"]:
                profile = store.get_window(int(wid))["profile"]
                numeric = {c: p for c, p in json.loads(profile)["columns"].items() if p["kind"] == "numeric"}
                samples = store.get_window_samples(conn, int(wid))
                assert set(samples) == set(numeric) == {"features.AGEP", "predictions.probability"}
                for c, p in numeric.items():
                    assert len(samples[c]) == p["count"] > 2000 and np.isfinite(samples[c]).all()
            payload, n_ages = conn.execute(sa.text(
                "SELECT payload, n_values FROM window_samples WHERE column_name = 'features.AGEP' ORDER BY window_id")
            ).first()
        ages = decode_sample(payload, n_ages)  # whole years, 0 to 99
        assert ages.dtype == np.float64 and 0 <= ages.min() < ages.max() <= 99 and np.array_equal(ages, np.round(ages))

        _put_reference(settings, store, older)
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert len(out) == 2 and all(o.kept is None and o.changed and "AGEP" in o.new_drifted for o in out)
        after = _snapshot(store)
        fresh = _run(_settings(f"sqlite:///{tmp_path / 'fresh.db'}", length_seconds=14 * 86400, origin="2018-01-01"),
                     older, large_payloads)
        try:
            _same_rows(after, _snapshot(fresh))
        finally:
            fresh.close()
        # numeric p-values that are not 0 or 1 compared too: the test is not trivially equal
        assert any(0 < r["p_value"] < 1 for _w, results in after.values() for r in results.values()
                   if r["kind"] == "numeric" and r["p_value"] is not None)
        assert not any(o.changed for o in backfill(settings, store, MODEL, 0, FAR_FUTURE))  # idempotent
    finally:
        store.close()


def test_purged_samples_leave_large_windows_kept_with_the_reason(tmp_path, references, large_payloads):
    """The purge deletes the raw values of the windows that ended before the cutoff, only
    those; backfill then keeps such a window and names the retention."""
    training, older = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}", length_seconds=14 * 86400, origin="2018-01-01")
    store = _run(settings, training, large_payloads)
    try:
        first, second = store.list_windows(MODEL)["id"].tolist()
        assert {w for w, *_ in _sample_rows(store)} == {first, second}
        # the first window ends at 2018-01-15: a cutoff just after it purges it, not the second
        end_first = T2018 + 14 * DAY_MS
        assert store.purge_window_samples(end_first) == 0
        assert store.purge_window_samples(end_first + 1) == 2  # AGEP and probability
        assert {w for w, *_ in _sample_rows(store)} == {second}
        before = _snapshot(store)
        _put_reference(settings, store, older)
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        kept, done = out
        assert kept.kept.startswith("AGEP: ") and "the stored quantile sketch keeps 200 exactly" in kept.kept
        assert kept.kept.endswith("the window's raw values were purged after 30 days (window.sample_retention_days) "
                                  "(the two-sample tests need them all)")
        assert not kept.changed and _snapshot(store)[("1", T2018, 0)] == before[("1", T2018, 0)]
        assert done.kept is None and done.changed
        # deleting a window deletes its samples (ON DELETE CASCADE)
        with store.transaction() as conn:
            conn.execute(sa.text("DELETE FROM windows WHERE id = :w"), {"w": second})
        assert _sample_rows(store) == []
    finally:
        store.close()


def test_a_window_sample_smaller_than_the_column_is_named(tmp_path, references, payloads):
    """A window closed without a reference profiles with reference.sample_size values per
    column: a column with more keeps a uniform sample, which backfill does not take for the
    values."""
    training, _ = references
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'a.db'}", metrics={"port": 0},
                           reference={"bootstrap_records": 10_000_000, "sample_size": 150},
                           window={"length_seconds": 2 * 86400, "idle_close_seconds": None,
                                   "origin": "2015-01-01T00:00:00Z"})
    store = open_store(settings)
    try:
        run_in_process(settings, payloads, store, Metrics())
        assert {n for _w, _c, n, _b in _sample_rows(store)} == {150}
        _put_reference(settings, store, training)
        small, large = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        # about 190 records: the quantile sketch holds every value
        assert small.record_count <= 200 and small.kept is None and small.new_status == "ok"
        assert large.record_count > 200 and not large.changed
        count = json.loads(store.get_window(large.window_id)["profile"])["columns"]["features.AGEP"]["count"]
        assert large.kept == (f"AGEP: {count} values, the stored quantile sketch keeps 200 exactly, "
                              "the stored sample a uniform 150 of them (the two-sample tests need them all)")
    finally:
        store.close()


def test_insufficient_data_stays_insufficient(tmp_path, references, payloads):
    training, older = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}", length_seconds=4 * 3600)
    store = _run(settings, training, payloads[:40])  # 2015-01-01: about 16 records per 4 h, below min_count
    try:
        before = _snapshot(store)
        assert {w["status"] for w, _ in before.values()} == {"insufficient_data"}
        _put_reference(settings, store, older)
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert {o.new_status for o in out} == {"insufficient_data"} and all(o.new_share is None for o in out)
        after = _snapshot(store)
        assert {w["status"] for w, _ in after.values()} == {"insufficient_data"}
        assert all(w["drift_share"] is None and w["dataset_drifted"] is None for w, _ in after.values())
    finally:
        store.close()


def test_windows_closed_before_their_reference_are_recomputed(tmp_path, references, payloads):
    """Windows stored as no_reference (no reference yet, bootstrap not reached) get drift once a
    reference is set, equal to a run that had it from the start."""
    training, _ = references
    settings = load_config(None, database_url=f"sqlite:///{tmp_path / 'a.db'}", metrics={"port": 0},
                           reference={"bootstrap_records": 10_000_000},
                           window={"length_seconds": HALF_DAY, "idle_close_seconds": None,
                                   "origin": "2015-01-01T00:00:00Z"})
    store = open_store(settings)
    try:
        run_in_process(settings, payloads, store, Metrics())
        before = _snapshot(store)
        assert {w["status"] for w, _ in before.values()} == {"no_reference"}
        assert backfill(settings, store, MODEL, 0, FAR_FUTURE)[0].kept == f"no reference for {MODEL} version 1"
        _put_reference(settings, store, training)
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert all(o.changed and o.kept is None and o.new_status == "ok" for o in out) and len(out) == 8
        fresh = _run(_settings(f"sqlite:///{tmp_path / 'fresh.db'}"), training, payloads)
        try:
            _same_rows(_snapshot(store), _snapshot(fresh))
        finally:
            fresh.close()
    finally:
        store.close()


def test_a_reference_that_cannot_be_read_keeps_every_window(tmp_path, references, payloads):
    training, _ = references
    settings = _settings(f"sqlite:///{tmp_path / 'a.db'}")
    store = _run(settings, training, payloads)
    try:
        before = _snapshot(store)
        with store.transaction() as conn:  # as an older version wrote it
            store.put_reference(conn, MODEL, "*", "old", 1, {"format": "inferwatch.profile/2", "columns": {}})
        out = backfill(settings, store, MODEL, 0, FAR_FUTURE)
        assert len(out) == 8 and not any(o.changed for o in out)
        assert all("the stored reference cannot be read" in o.kept and "inferwatch reference set" in o.kept
                   for o in out)
        assert _snapshot(store) == before
    finally:
        store.close()


def test_parse_time():
    now = T2018
    assert parse_time("2015-01-01T00:00:00Z") == T2015
    assert parse_time("2015-01-01T02:00:00+02:00") == T2015
    assert parse_time("2015-01-01") == T2015
    assert parse_time("12h", now) == now - DAY_MS // 2
    assert parse_time("7d", now) == now - 7 * DAY_MS
    assert parse_time("1.5w", now) == now - int(10.5 * DAY_MS)
    for bad in ("yesterday", "0d", "-3h", "7 days", "2015-13-01"):
        with pytest.raises(ValueError, match="RFC 3339|positive"):
            parse_time(bad, now)


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def cli_setup(tmp_path, references, payloads, clean_env):
    training, older = references
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "inferwatch.yaml"
    config.write_text(f"database_url: {url}\nwindow:\n  length_seconds: {HALF_DAY}\n  idle_close_seconds: null\n"
                      "  origin: '2015-01-01T00:00:00Z'\n")
    settings = _settings(url)
    store = _run(settings, training, payloads)
    _put_reference(settings, store, older)
    yield config, store
    store.close()


def test_cli_backfill_dry_run_then_backfill(cli_setup):
    config, store = cli_setup
    before = _snapshot(store)
    runner = CliRunner()
    dry = runner.invoke(app, ["backfill", "--model", MODEL, "--since", "2018-01-01T00:00:00Z", "--dry-run",
                              "--config", str(config)])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "0.00 →" in dry.output and "4 would change" in dry.output
    assert _snapshot(store) == before
    done = runner.invoke(app, ["backfill", "-m", MODEL, "--since", "2018-01-01", "--until", "2018-01-02",
                               "-c", str(config)])
    assert done.exit_code == 0, done.output
    assert "2 windows: 2 changed, 0 unchanged, 0 kept" in done.output
    assert "2/2" in done.output  # the progress bar's count
    after = _snapshot(store)
    assert sum(after[k] != before[k] for k in before) == 2


@pytest.mark.parametrize(("args", "flag"), [
    (["--since", "last week"], "--since"),
    (["--since", "2015-01-01", "--until", "soon"], "--until"),
    (["--since", "2018-01-02", "--until", "2018-01-01"], "--until"),
])
def test_cli_backfill_bad_times_exit_2_naming_the_flag(cli_setup, args, flag):
    config, store = cli_setup
    before = _snapshot(store)
    result = CliRunner().invoke(app, ["backfill", "--model", MODEL, *args, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {flag}" in result.output and "Traceback" not in result.output
    assert _snapshot(store) == before


# --- rebuilding a stored profile ---------------------------------------------------------------


def _frames(n: int, seed: int = 7):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = pd.Series(rng.normal(40, 12, n).round(), dtype="float64")
    age[::17] = np.nan
    return pd.DataFrame({"features.AGEP": age,
                         "features.SEX": pd.Series(rng.choice(["1", "2"], n), dtype=object),
                         "predictions.employed": pd.Series(rng.random(n) < 0.6, dtype=object)})


def test_rebuild_profile_from_a_stored_sample_equals_a_fresh_profile():
    """A summary that keeps every value (the sample) rebinned on another reference gives the
    profile the close would build against that reference: same histogram, values, counts."""
    import numpy as np

    from detectors import build_profile, compare
    from inferwatch.backfill import NotRebuildable, rebuild_profile
    from inferwatch.pipeline import window_statistics

    window, old_ref_rows, new_ref_rows = _frames(1000, 1), _frames(3000, 2), _frames(3000, 3)
    new_ref_rows["features.AGEP"] += 10
    kinds = {"features.AGEP": "numeric", "features.SEX": "categorical", "predictions.employed": "categorical"}
    old_ref, new_ref = build_profile(old_ref_rows, kinds), build_profile(new_ref_rows, kinds)
    stored = build_profile(window, kinds, reference=old_ref, sample_size=100_000)
    expected = build_profile(window, kinds, reference=new_ref, sample_size=100_000)

    rebuilt = rebuild_profile(stored.to_dict(), new_ref, 100_000)
    age, want = rebuilt.columns["features.AGEP"], expected.columns["features.AGEP"]
    assert not np.array_equal(stored.columns["features.AGEP"].edges, want.edges)
    assert np.array_equal(age.edges, want.edges) and np.array_equal(age.hist, want.hist)
    assert np.array_equal(np.sort(age.sample), np.sort(want.sample))
    assert (age.count, age.missing) == (want.count, want.missing) == (941, 59)
    for name in ("features.SEX", "predictions.employed"):
        assert rebuilt.columns[name] == expected.columns[name]
    # so the tests agree to the last bit
    assert [r.to_dict() for r in compare(new_ref, rebuilt)] == [r.to_dict() for r in compare(new_ref, expected)]

    # the stored window summary (without the sample) of 941 values cannot give them back
    with pytest.raises(NotRebuildable, match="AGEP: 941 values"):
        rebuild_profile(window_statistics(stored), new_ref, 100_000)


def test_rebuild_profile_refuses_capped_tables_and_changed_kinds():
    from detectors import build_profile
    from inferwatch.backfill import NotRebuildable, rebuild_profile

    window = _frames(300)
    window["features.SEX"] = [f"c{i}" for i in range(300)]  # 300 labels: capped at 200
    kinds = {"features.AGEP": "numeric", "features.SEX": "categorical", "predictions.employed": "categorical"}
    stored = build_profile(window, kinds, sample_size=100_000).to_dict()
    assert "__other__" in stored["columns"]["features.SEX"]["counts"]
    ref = build_profile(_frames(2000), kinds)
    with pytest.raises(NotRebuildable, match="SEX: the stored category table was capped at 200"):
        rebuild_profile(stored, ref, 100_000)
    as_number = build_profile(_frames(2000).assign(**{"features.SEX": 1.0}), {**kinds, "features.SEX": "numeric"})
    with pytest.raises(NotRebuildable, match="SEX: stored as categorical, the reference now profiles it as numeric"):
        rebuild_profile(stored, as_number, 100_000)
    missing = build_profile(_frames(2000).assign(**{"features.NEW": 1.0}), {**kinds, "features.NEW": "numeric"})
    uncapped = build_profile(_frames(300), kinds, sample_size=100_000).to_dict()
    with pytest.raises(NotRebuildable, match="NEW: not in the stored profile"):
        rebuild_profile(uncapped, missing, 100_000)
    # a window closed without a reference had every column its records had: NEW had none
    rebuilt = rebuild_profile(uncapped, missing, 100_000, closed_with_reference=False)
    assert (rebuilt.columns["features.NEW"].count, rebuilt.columns["features.NEW"].missing) == (0, 300)


def test_cli_names_windows_it_keeps_and_how_to_recompute_them(tmp_path, references, payloads, clean_env):
    training, older = references
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "inferwatch.yaml"
    config.write_text(f"database_url: {url}\nwindow:\n  length_seconds: {2 * 86400}\n  idle_close_seconds: null\n"
                      "  origin: '2015-01-01T00:00:00Z'\n  sample_retention_days: 0\n")
    settings = _settings(url, length_seconds=2 * 86400, retention_days=0)
    store = _run(settings, training, payloads)
    try:
        _put_reference(settings, store, older)
        result = CliRunner().invoke(app, ["backfill", "-m", MODEL, "--since", "2015-01-01", "-c", str(config)])
        assert result.exit_code == 0, result.output
        assert "2 windows: 1 changed, 0 unchanged, 1 kept" in result.output
        assert "kept: AGEP:" in result.output and "the stored quantile sketch keeps 200" in result.output
        assert "replay their prediction logs (inferwatch replay)" in result.output
    finally:
        store.close()


def test_a_database_without_the_samples_table_gets_it(tmp_path, references, payloads):
    """A database created before window_samples existed: opening it creates the table (no
    refusal), and windows closed from then on store their values."""
    training, _ = references
    settings = _settings(f"sqlite:///{tmp_path / 'old.db'}")
    store = open_store(settings)
    with store.transaction() as conn:
        conn.execute(sa.text("DROP TABLE window_samples"))
    store.close()
    store = _run(settings, training, payloads)  # open_store runs create_schema again
    try:
        assert "window_samples" in sa.inspect(store.engine).get_table_names()
        assert {c for _w, c, _n, _b in _sample_rows(store)} == {"features.AGEP", "predictions.probability"}
    finally:
        store.close()


@pytest.mark.kafka
def test_the_service_purges_samples_past_the_retention(tmp_path, references, payloads, kafka_bootstrap):
    """`inferwatch run`'s scheduler runs the purge at start: the demo's windows ended in 2015
    and 2018, far more than 30 days ago, so their raw values go; with retention 0 there is no
    such job."""
    import threading
    import time
    import uuid

    from collector.kafka_source import KafkaSource
    from inferwatch.runner import KafkaService, log_dead_letter

    training, _ = references
    topic = f"purge-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = _run(_settings(url), training, payloads)
    try:
        assert len(_sample_rows(store)) == 16  # 8 windows, AGEP and probability
        for days, job in ((0, False), (30, True)):
            settings = load_config(None, database_url=url, metrics={"enabled": False},
                                   kafka={"bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                          "group_id": f"g-{topic}"},
                                   window={"length_seconds": HALF_DAY, "sample_retention_days": days})
            source = KafkaSource(kafka_bootstrap, [topic], f"g-{topic}", lambda: {})
            svc = KafkaService(settings, store, Metrics(), source, log_dead_letter, threading.Event())
            try:
                assert (svc.scheduler.get_job("purge-window-samples") is not None) is job
                svc.scheduler.start()
                deadline = time.monotonic() + 20
                while job and _sample_rows(store) and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert len(_sample_rows(store)) == (0 if job else 16)
            finally:
                svc.scheduler.shutdown(wait=True)
                source.close()
        assert len(store.list_windows(MODEL)) == 8  # the windows themselves stay
    finally:
        store.close()
