"""The store on SQLite and PostgreSQL: the DDL in sql/ and the SQLAlchemy tables agree, and the
queries the pipeline relies on return what was written."""

import pandas as pd
import pytest
import sqlalchemy as sa

from inferwatch.store import Store, frame_from_bytes, frame_to_bytes, metadata


def test_ddl_and_sqlalchemy_tables_agree(store):
    store.create_schema()  # idempotent
    inspector = sa.inspect(store.engine)
    assert set(inspector.get_table_names()) == set(metadata.tables)
    for name, table in metadata.tables.items():
        live = {c["name"]: c for c in inspector.get_columns(name)}
        assert set(live) == {c.name for c in table.columns}, name
        for col in table.columns:
            assert live[col.name]["nullable"] == col.nullable or col.primary_key, (name, col.name)
        pk = inspector.get_pk_constraint(name)["constrained_columns"]
        assert sorted(pk) == sorted(c.name for c in table.primary_key.columns), name


def test_partials_offsets_and_windows_round_trip(store):
    frame = pd.DataFrame({"model": ["m"] * 3, "features.a": [1.0, None, 3.0], "features.s": ["x", None, "y"]})
    with store.transaction() as conn:
        store.add_window_partial(conn, "m", "1", 0, 0, frame.iloc[:2])
        store.add_window_partial(conn, "m", "1", 0, 0, frame.iloc[2:])
        store.save_offsets(conn, "g", {("t", 0): 10, ("t", 1): 4})
        store.save_watermarks(conn, {("m", "1", "t", 0): 1234, ("m", "1", "t", 1): 99})
    with store.transaction() as conn:
        store.save_offsets(conn, "g", {("t", 0): 12})
        assert store.open_windows(conn) == {("m", "1", 0, 0): 3}
        rows = store.take_window_partials(conn, "m", "1", 0, 0)
        assert store.open_windows(conn) == {}
        wid = store.insert_window(conn, {
            "model": "m", "model_version": "1", "window_start_ms": 0, "window_end_ms": 10, "segment": 0,
            "record_count": 3, "close_reason": "watermark", "closed_at_ms": 5, "status": "ok", "n_columns": 1,
            "n_drifted": 1, "drift_share": 1.0, "dataset_drifted": True, "profile": "{}"},
            [{"column_name": "features.a", "role": "feature", "kind": "numeric", "method": "ks", "status": "ok",
              "statistic": 0.5, "p_value": 1e-300, "drifted": True, "psi": 0.2, "js_distance": 0.1,
              "wasserstein_normalised": 0.3, "n_reference": 10, "n_current": 2, "missing_share": 1 / 3}])
    pd.testing.assert_frame_equal(rows, frame)
    assert store.load_offsets("g") == {("t", 0): 12, ("t", 1): 4}
    with store.transaction() as conn:
        assert store.load_watermarks(conn) == {("m", "1", "t", 0): 1234, ("m", "1", "t", 1): 99}
    res = store.list_drift_results(wid)
    assert res.loc[0, "p_value"] == 1e-300 and bool(res.loc[0, "drifted"]) is True
    assert store.list_windows("m")["record_count"].tolist() == [3]


def test_a_failed_transaction_stores_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            store.save_offsets(conn, "g", {("t", 0): 99})
            raise RuntimeError("crash between writes")
    assert store.load_offsets("g") == {}


def test_outbox_is_idempotent_per_key(store):
    from alerting.events import OutgoingRequest

    with store.transaction() as conn:
        assert store.enqueue(conn, OutgoingRequest("t", "POST", "", '{"a": 1}', "k1"), 0)
        assert not store.enqueue(conn, OutgoingRequest("t", "POST", "", '{"a": 2}', "k1"), 0)
    pending = store.list_outbox("pending")
    assert [(m.idempotency_key, m.body) for m in pending] == [("k1", '{"a": 1}')]
    store.mark_delivered(pending[0].id, 1)
    assert store.list_outbox("pending") == []


def test_alert_instances_and_silences_round_trip(store):
    labels = {"alertname": "A", "model": "m", "model_version": "1", "severity": "warning"}
    with store.transaction() as conn:
        store.save_alert_instance(conn, "fp1", labels, {"summary": "s"}, {"state": "firing", "x": 1}, 7, 5)
        store.save_alert_instance(conn, "fp1", labels, {"summary": "t"}, {"state": "resolved", "x": 2}, None, 6)
        assert store.load_alert_instances(conn, ["fp1", "nope"]) == {
            "fp1": {"labels": labels, "annotations": {"summary": "t"}, "state": {"state": "resolved", "x": 2}}}
    assert store.alert_instances_in(None, ("firing",)) == []
    assert [r["fingerprint"] for r in store.alert_instances_in(None, ("resolved",))] == ["fp1"]
    sid = store.add_silence(["model=m"], 100, 200, "me", "deploy")
    assert [s["matchers"] for s in store.list_silences(active_at_ms=150)] == [["model=m"]]
    assert store.expire_silence(sid, 120) and not store.expire_silence(sid + 1, 120)
    assert store.list_silences(active_at_ms=150) == [] and store.list_silences()[0]["ends_at_ms"] == 120

def test_arrow_payload_keeps_types():
    f = pd.DataFrame({"x": [1.5, float("nan")], "s": ["a", None], "t": [1, 2]})
    back = frame_from_bytes(frame_to_bytes(f))
    assert back["x"].iloc[0] == 1.5 and pd.isna(back["x"].iloc[1])
    assert back["s"].iloc[0] == "a" and pd.isna(back["s"].iloc[1])
    assert back["t"].tolist() == [1, 2]


def test_partials_read_back_as_one_frame_whatever_their_schemas():
    """frames_from_bytes gives what concatenating each payload's frame gives: payloads of one
    schema joined as Arrow tables, others (a column missing, an int that became a float, a
    text column that is all missing) through pandas."""
    from inferwatch.store import frames_from_bytes

    same = [pd.DataFrame({"model": pd.array(["m", "m"], dtype="str"), "features.a": [1.0, float("nan")],
                          "features.s": ["x", None], "n": [1, 2]}),
            pd.DataFrame({"model": pd.array(["m"], dtype="str"), "features.a": [3.5], "features.s": ["y"], "n": [3]})]
    mixed = [*same, pd.DataFrame({"model": ["m"], "features.a": [7], "features.s": [None]})]
    for frames in (same, mixed, same[:1]):
        got = frames_from_bytes([frame_to_bytes(f) for f in frames])
        expected = pd.concat([frame_from_bytes(frame_to_bytes(f)) for f in frames], ignore_index=True)
        pd.testing.assert_frame_equal(got, expected)
    assert frames_from_bytes([]).empty


def test_watermark_state_is_the_three_watermark_reads_in_one(store):
    with store.transaction() as conn:
        store.save_watermarks(conn, {("m", "1", "t", 0): 10, ("m", "1", "t", 1): 20}, {("m", "1"): 500})
        store.save_watermarks(conn, {("m", "2", "t", 0): 30, ("n", "1", "u", 0): 5}, {("m", "2"): 700, ("n", "1"): 600})
        marks, last, arrivals = store.load_watermark_state(conn)
        assert marks == store.load_watermarks(conn) == {("m", "1", "t", 0): 10, ("m", "1", "t", 1): 20,
                                                        ("m", "2", "t", 0): 30, ("n", "1", "u", 0): 5}
        assert last == store.last_arrivals(conn) == {("m", "1"): 500, ("m", "2"): 700, ("n", "1"): 600}
        assert arrivals == store.partition_arrivals(conn) == {("t", 0): 700, ("t", 1): 500, ("u", 0): 600}


def test_sqlite_runs_in_wal_mode_syncing_at_checkpoints(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'x.db'}")
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    s.close()


def test_a_database_from_an_earlier_version_is_refused_naming_the_table(tmp_path):
    import sqlite3

    from inferwatch.config import load_config
    from inferwatch.runner import StartupError, open_store

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the outbox as an earlier version created it
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, idempotency_key TEXT, url TEXT, body TEXT)")
    with pytest.raises(StartupError, match="table outbox has no column target.*new database"):
        open_store(load_config(None, database_url=f"sqlite:///{path}"))
