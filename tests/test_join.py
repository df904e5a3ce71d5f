"""Joins by request id: request halves with response halves (bounded, event time, restorable),
labels with predictions (within a delay, state in memory or in the database), and realized
performance per window from the labelled pairs."""

import uuid
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.join import (
    JOIN_COUNTS,
    JOIN_STATUS,
    LabelJoin,
    MemoryLabelState,
    PerformanceSpec,
    RequestResponseJoin,
    performance_summaries,
    row_bytes,
    window_starts,
)
from detectors.performance import classification_summary, regression_summary
from inferwatch.store import Store, frame_from_bytes, frame_to_bytes

# KServe logs both halves of one call under the CloudEvents id; rows of a batched request get
# "<id>#<i>" (collector.record.row_request_ids). The request half names no version.
ISVC = "sklearn-iris"


def req(ids, times, version="", **extra):
    n = len(ids)
    cols = {"model": [ISVC] * n, "model_version": [version] * n, "event_time_ms": times, "request_id": ids,
            "features.sepal_length": [5.1 + i for i in range(n)], "features.species_hint": ["setosa"] * n,
            "serving.endpoint": ["default"] * n, "serving.component": ["predictor"] * n}
    cols.update(extra)
    return pd.DataFrame(cols)


def resp(ids, times, version="v1", **extra):
    n = len(ids)
    cols = {"model": [ISVC] * n, "model_version": [version] * n, "event_time_ms": times, "request_id": ids,
            "predictions.class": [float(i % 3) for i in range(n)], "latency_ms": [2.5 + i for i in range(n)],
            "serving.status_code": [200.0] * n}
    cols.update(extra)
    return pd.DataFrame(cols)


def nonzero(counts):
    return {k: v for k, v in counts.items() if v}


def rows(result, *cols):
    return [tuple(r) for r in result.records[list(cols)].itertuples(index=False)]


# --------------------------------------------------------------------------- request-response join


def test_request_then_response_gives_one_whole_record():
    j = RequestResponseJoin(ttl_ms=60_000)
    first = j.add(req(["7f1c"], [1_000]))
    assert len(first.records) == 0 and nonzero(first.counts) == {}
    assert j.n_pending == 1
    out = j.add(None, resp(["7f1c"], [1_040], **{"serving.endpoint": ["canary"], "serving.replica": ["r-2"]}))
    rec = out.records
    assert nonzero(out.counts) == {"matched": 1}
    assert list(rec.columns) == ["model", "model_version", "event_time_ms", "request_id", "label", "latency_ms",
                                 "features.sepal_length", "features.species_hint", "predictions.class",
                                 "serving.endpoint", "serving.component", "serving.status_code",
                                 "serving.replica", JOIN_STATUS]
    r = rec.iloc[0].to_dict()
    assert r == {"model": ISVC, "model_version": "v1", "event_time_ms": 1_000, "request_id": "7f1c", "label": None,
                 "latency_ms": 2.5, "features.sepal_length": 5.1, "features.species_hint": "setosa",
                 "predictions.class": 0.0, "serving.endpoint": "default", "serving.component": "predictor",
                 "serving.status_code": 200.0, "serving.replica": "r-2", JOIN_STATUS: "matched"}
    assert j.n_pending == 0 and j.n_finished == 1


def test_response_before_request_and_both_halves_in_one_batch():
    j = RequestResponseJoin(ttl_ms=60_000)
    assert len(j.add(None, resp(["a"], [20])).records) == 0
    out = j.add(req(["b", "a", "c"], [30, 10, 40]), resp(["c", "b"], [45, 35]))
    assert nonzero(out.counts) == {"matched": 3}
    # arrival order of the requests; each record carries its request's event time and features
    assert rows(out, "request_id", "event_time_ms", "features.sepal_length", "predictions.class", "latency_ms") == [
        ("b", 30, 5.1, 1.0, 3.5), ("a", 10, 6.1, 0.0, 2.5), ("c", 40, 7.1, 0.0, 2.5)]
    assert j.n_pending == 0


def test_request_version_wins_when_it_has_one():
    j = RequestResponseJoin(ttl_ms=1_000)
    out = j.add(req(["a", "b"], [1, 2], version="3"), resp(["a", "b"], [3, 4], version="v1"))
    assert out.records["model_version"].tolist() == ["v1", "v1"]  # the response's version wins
    out = j.add(req(["c"], [5], version="3"), resp(["c"], [6], version=""))
    assert out.records["model_version"].tolist() == ["3"]  # unless it has none


def test_duplicates_are_dropped_and_counted():
    j = RequestResponseJoin(ttl_ms=1_000)
    # within one batch the first copy wins
    out = j.add(req(["a", "a", "b"], [1, 2, 3]))
    assert nonzero(out.counts) == {"request_duplicate": 1}
    # a copy of a waiting half
    out = j.add(req(["b"], [4]), resp(["x", "x"], [5, 6]))
    assert nonzero(out.counts) == {"request_duplicate": 1, "response_duplicate": 1}
    assert j.n_pending == 3
    # a = first copy (features 5.1), joined once; later copies of either half are duplicates
    out = j.add(req(["a"], [7]), resp(["a"], [8]))
    assert nonzero(out.counts) == {"matched": 1, "request_duplicate": 1}
    assert rows(out, "request_id", "event_time_ms", "features.sepal_length") == [("a", 1, 5.1)]
    out = j.add(req(["a"], [9]), resp(["a"], [10]))
    assert nonzero(out.counts) == {"request_duplicate": 1, "response_duplicate": 1}
    assert len(out.records) == 0


def test_requests_without_response_expire_by_event_time_and_keep_their_features():
    # KServe logs no response for a non-200 answer: that request waits until its time to live passes
    j = RequestResponseJoin(ttl_ms=1_000)
    j.add(req(["ok", "err"], [0, 100]))
    out = j.add(None, resp(["ok"], [50]))
    assert nonzero(out.counts) == {"matched": 1}
    # a request expires on the responses' clock: 1100 = 100 + ttl has not passed it
    out = j.add(req(["n1"], [1_100]), resp(["n1"], [1_100]))
    assert nonzero(out.counts) == {"matched": 1} and j.n_pending == 1
    # nor do later requests alone: the response may still come while responses lag
    out = j.add(req(["n2"], [5_000]))
    assert len(out.records) == 0 and j.n_pending == 2
    out = j.add(None, resp(["n2"], [5_001]))
    assert nonzero(out.counts) == {"matched": 1, "request_expired": 1}
    rec = out.unmatched_requests
    assert rec[["request_id", "event_time_ms", "features.sepal_length", JOIN_STATUS]].values.tolist() == [
        ["err", 100, 6.1, "request_only"]]
    assert np.isnan(rec["predictions.class"].iloc[0]) and np.isnan(rec["latency_ms"].iloc[0])
    assert out.joined["request_id"].tolist() == ["n2"]


def test_expiry_follows_the_callers_clock_not_wall_time():
    j = RequestResponseJoin(ttl_ms=1_000)
    # a batch from hours ago is not expired just because it is old: only event time counts
    j.add(req(["a"], [10]), resp(["z"], [20]))
    # a lower clock from the caller (e.g. the lowest partition watermark) holds expiry back
    out = j.add(req(["b"], [5_000]), clock_ms=500)
    assert len(out.records) == 0 and j.clock_ms == 500
    out = j.advance(1_015)
    assert nonzero(out.counts) == {"request_expired": 1}
    out = j.advance(1_000)  # the clock never goes back
    assert j.clock_ms == 1_015 and len(out.records) == 0
    out = j.advance(6_001)
    assert rows(out, "request_id", JOIN_STATUS) == [("z", "response_only"), ("b", "request_only")]
    assert nonzero(out.counts) == {"request_expired": 1, "response_expired": 1}


def test_a_half_whose_partner_was_given_up_is_counted_late_and_adds_no_second_row():
    j = RequestResponseJoin(ttl_ms=100, remember_ms=10_000)
    j.add(req(["a"], [0]))
    out = j.advance(101)
    assert nonzero(out.counts) == {"request_expired": 1}
    assert rows(out, "request_id", JOIN_STATUS) == [("a", "request_only")]  # the call's one row
    out = j.add(None, resp(["a"], [150]))
    assert nonzero(out.counts) == {"response_late": 1}
    assert len(out.records) == 0  # not a second row of the same call
    late = out.late
    assert [tuple(r) for r in late[["request_id", "predictions.class", JOIN_STATUS]].itertuples(index=False)] == [
        ("a", 0.0, "response_only")]
    assert j.n_pending == 0
    # both halves are now used up
    out = j.add(req(["a"], [151]), resp(["a"], [152]))
    assert nonzero(out.counts) == {"request_duplicate": 1, "response_duplicate": 1}
    # after remember_ms the id is forgotten and may start over
    j.advance(50_000)
    out = j.add(req(["a"], [50_001]), resp(["a"], [50_002]))
    assert nonzero(out.counts) == {"matched": 1}


def test_rows_without_request_id_are_emitted_unmatched():
    j = RequestResponseJoin(ttl_ms=100)
    out = j.add(req(["", None, "k"], [1, 2, 3]), resp([None], [4]))
    assert nonzero(out.counts) == {"request_no_id": 2, "response_no_id": 1}
    assert out.records[JOIN_STATUS].tolist() == ["request_only", "request_only", "response_only"]
    assert j.n_pending == 1


def test_memory_cap_evicts_the_oldest_event_times_first():
    j = RequestResponseJoin(ttl_ms=10**9, max_pending=3)
    out = j.add(req(["e50", "e10", "e30"], [50, 10, 30]), resp(["r20", "r10"], [20, 10]))
    # five waiting, cap three: the two oldest go; at equal event time the earlier arrival first
    assert nonzero(out.counts) == {"request_evicted": 1, "response_evicted": 1}
    assert rows(out, "request_id", JOIN_STATUS) == [("e10", "request_only"), ("r10", "response_only")]
    out = j.add(req(["e5"], [5]))
    assert rows(out, "request_id") == [("e5",)]  # a newcomer older than all is the first to go
    assert j.n_pending == 3
    # an evicted request's response comes late: counted, put apart, no second row
    out = j.add(None, resp(["e10"], [60]))
    assert nonzero(out.counts) == {"response_late": 1}
    assert len(out.records) == 0 and out.late["request_id"].tolist() == ["e10"]


def test_byte_cap_evicts_until_the_estimate_fits():
    batch = req(["a", "b", "c", "d"], [4, 1, 3, 2])
    sizer = RequestResponseJoin(ttl_ms=10**9)
    sizer.add(batch)
    per_row = sizer.pending_bytes // 4  # one estimate for every row of a batch
    assert per_row >= row_bytes(batch[["event_time_ms"]]) and sizer.pending_bytes == 4 * per_row
    j = RequestResponseJoin(ttl_ms=10**9, max_bytes=int(2.5 * per_row))
    out = j.add(batch)
    assert nonzero(out.counts) == {"request_evicted": 2}
    assert rows(out, "request_id") == [("b",), ("d",)]
    assert j.pending_bytes == 2 * per_row and j.n_pending == 2


def test_finished_ids_are_bounded():
    j = RequestResponseJoin(ttl_ms=10**9, max_finished=2)
    out = j.add(req(["a", "b", "c"], [1, 2, 3]), resp(["a", "b", "c"], [1, 2, 3]))
    assert nonzero(out.counts) == {"matched": 3, "ids_forgotten_early": 1}
    assert j.n_finished == 2
    out = j.add(req(["a", "b"], [4, 5]))  # a was forgotten: it waits again; b is a duplicate
    assert nonzero(out.counts) == {"request_duplicate": 1} and j.n_pending == 1


def test_flush_gives_up_everything_waiting():
    j = RequestResponseJoin(ttl_ms=10**9)
    j.add(req(["a", "b"], [1, 2]), resp(["c"], [3]))
    out = j.flush()
    assert nonzero(out.counts) == {"request_expired": 2, "response_expired": 1}
    assert rows(out, "request_id") == [("a",), ("b",), ("c",)] and j.n_pending == 0


def test_bad_frames_are_refused_without_changing_the_state():
    j = RequestResponseJoin(ttl_ms=100)
    j.add(req(["a"], [1]))
    with pytest.raises(ValueError, match="event_time_ms"):
        j.add(req(["b"], [None]))
    with pytest.raises(ValueError, match="'request_id'"):
        j.add(None, resp(["b"], [1]).drop(columns="request_id"))
    assert j.n_pending == 1 and j.next_seq == 1
    with pytest.raises(ValueError, match="ttl_ms"):
        RequestResponseJoin(ttl_ms=0)


def test_drain_changes_lists_what_to_insert_and_delete():
    j = RequestResponseJoin(ttl_ms=1_000, remember_ms=1_000)
    j.add(req(["a", "b"], [0, 1]))  # seq 0, 1
    ch = j.drain_changes()
    assert ch.added[["join_half", "join_seq", "request_id"]].values.tolist() == [["request", 0, "a"],
                                                                                   ["request", 1, "b"]]
    # the requests' clock gets its row (seq 2); no response seen yet, so none for that side
    assert ch.added_finished[["join_half", "join_seq", "request_id", "event_time_ms"]].values.tolist() == [
        ["clock", 2, "request", 1]]
    assert ch.removed.tolist() == [] and ch.clock_ms == 1 and ch.next_seq == 3
    # a joins (request 0 leaves, finished id 6 arrives), c comes and goes within one drain
    j.add(req(["c"], [2]), resp(["a", "c"], [3, 4]))  # seq 3 = c request, 4 = a response, 5 = c response
    ch = j.drain_changes()
    assert ch.removed.tolist() == [0, 2] and ch.added.empty  # request 0 and the requests' old clock row
    assert ch.added_finished[["join_half", "join_seq", "request_id", "join_halves", "event_time_ms",
                              "model"]].values.tolist() == [
        ["finished", 6, "a", 3, 4, ISVC], ["finished", 7, "c", 3, 4, ISVC],
        ["clock", 8, "request", 0, 2, ""], ["clock", 9, "response", 0, 4, ""],
        ["version", 10, "", 0, 4, ISVC]]  # the version ISVC's responses (no endpoint named) answer with
    assert ch.added_finished["model_version"].tolist()[-1] == "v1"
    ch = j.drain_changes()
    assert ch.added.empty and ch.added_finished.empty and ch.removed.tolist() == []


def _normal(frames):
    """Concatenated outputs, columns without any value dropped, missing values as None."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out = out[sorted(c for c in out.columns if out[c].notna().any())].astype(object)
    return out.where(out.notna(), None)


def _sum_counts(results):
    return {k: sum(r.counts[k] for r in results) for k in JOIN_COUNTS}


class _Stored:
    """The caller's stored copy of a join's state, kept from drained changes through Arrow
    payloads, as the database keeps it."""

    def __init__(self):
        self.entries = {}
        self.clock, self.next_seq = None, 0

    def apply(self, ch):
        for s in ch.removed.tolist():
            del self.entries[s]
        for added in (ch.added, ch.added_finished):
            if len(added):
                back = frame_from_bytes(frame_to_bytes(added))
                for s, (_, row) in zip(back["join_seq"].tolist(), back.iterrows()):
                    assert s not in self.entries
                    self.entries[s] = row
        self.clock, self.next_seq = ch.clock_ms, ch.next_seq

    def frame(self):
        if not self.entries:
            return pd.DataFrame({c: [] for c in ("join_half", "join_seq", "join_bytes", "join_halves",
                                                 "request_id", "event_time_ms")})
        return pd.DataFrame(list(self.entries.values())).reset_index(drop=True)


@st.composite
def scenarios(draw):
    n = draw(st.integers(1, 14))
    messages = []
    for i in range(n):
        # a call is "<model>/<request id>": two models' calls share each request id, as the
        # steps of a Seldon pipeline do
        rid = f"{'scaler' if i % 2 == 0 else 'classifier'}/id-{i // 2}"
        t = draw(st.integers(0, 3_000))
        copies = draw(st.integers(1, 2))
        messages += [("q", rid, t, k) for k in range(copies)]
        if draw(st.booleans()) or draw(st.booleans()):
            lag = draw(st.integers(0, 400))
            messages += [("s", rid, t + lag, k) for k in range(draw(st.integers(1, 2)))]
    order = draw(st.permutations(range(len(messages))))
    arrived = [messages[i] for i in order]
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arrived) - 1)), max_size=6)))
    batches, start = [], 0
    for c in [*cuts, len(arrived)]:
        if c > start:
            batches.append(arrived[start:c])
            start = c
    restore_at = draw(st.sets(st.integers(0, len(batches)), max_size=3))
    params = {"ttl_ms": draw(st.sampled_from([150, 1_000, 10**9])),
              "max_pending": draw(st.sampled_from([2, 4, 1_000])),
              "remember_ms": draw(st.sampled_from([0, 300, 10**10])),
              "max_finished": draw(st.sampled_from([1, 10**6]))}
    via = draw(st.sampled_from(["pending", "changes"]))
    return batches, restore_at, params, via


def _frames(batch):
    qs = [(rid, t, k) for kind, rid, t, k in batch if kind == "q"]
    ss = [(rid, t, k) for kind, rid, t, k in batch if kind == "s"]
    q = req([r.split("/")[1] for r, _, _ in qs], [t for _, t, _ in qs]) if qs else None
    if q is not None:  # copies differ, so the test sees which one survived
        q["features.sepal_length"] = [float(k) + t / 1000 for _, t, k in qs]
        q["model"] = [r.split("/")[0] for r, _, _ in qs]
    s = resp([r.split("/")[1] for r, _, _ in ss], [t for _, t, _ in ss]) if ss else None
    if s is not None:
        s["predictions.class"] = [float(k) for _, _, k in ss]
        s["model"] = [r.split("/")[0] for r, _, _ in ss]
    return q, s


def _run(batches, params, restore_at=(), via="pending"):
    j = RequestResponseJoin(**params)
    stored = _Stored()
    results = []
    for i, batch in enumerate(batches):
        if i in restore_at:
            if via == "pending":
                snap = frame_from_bytes(frame_to_bytes(j.pending()))
                clock, nxt = j.clock_ms, j.next_seq
            else:
                stored.apply(j.drain_changes())
                snap, clock, nxt = stored.frame(), stored.clock, stored.next_seq
            j = RequestResponseJoin(**params)
            j.restore(snap, clock_ms=clock, next_seq=nxt)
        results.append(j.add(*_frames(batch)))
        if via == "changes":
            stored.apply(j.drain_changes())
    results.append(j.flush())
    return results


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_restored_join_equals_an_uninterrupted_one_and_every_half_ends_once(scenario):
    batches, restore_at, params, via = scenario
    plain = _run(batches, params)
    cut = _run(batches, params, restore_at, via)
    a = _normal([r.records for r in plain])
    b = _normal([r.records for r in cut])
    pd.testing.assert_frame_equal(a, b)
    assert _sum_counts(plain) == _sum_counts(cut)

    counts = _sum_counts(plain)
    n_q = sum(kind == "q" for batch in batches for kind, *_ in batch)
    n_s = sum(kind == "s" for batch in batches for kind, *_ in batch)
    status = a[JOIN_STATUS].tolist() if len(a) else []
    n_late = {h: sum(len(r.late[r.late[JOIN_STATUS] == f"{h}_only"]) for r in plain) for h in ("request", "response")}
    assert n_late == {"request": counts["request_late"], "response": counts["response_late"]}
    # every request message is joined, given up, late or a duplicate, exactly once
    assert n_q == status.count("matched") + status.count("request_only") + counts["request_late"] + \
        counts["request_duplicate"]
    assert n_s == status.count("matched") + status.count("response_only") + counts["response_late"] + \
        counts["response_duplicate"]
    assert counts["matched"] == status.count("matched")
    given_up = sum(counts[f"request_{r}"] for r in ("expired", "evicted", "no_id"))
    assert given_up == status.count("request_only")
    if params["remember_ms"] == 10**10 and params["max_finished"] == 10**6:
        # ids never forgotten: each call (request id) has exactly one row, whichever halves came
        calls = {rid for batch in batches for _kind, rid, *_ in batch}
        call = (a["model"] + "/" + a["request_id"]) if len(a) else pd.Series([], dtype=object)
        assert sorted(call.tolist()) == sorted(calls)
        ended = call[a[JOIN_STATUS] != "response_only"].tolist() if len(a) else []
        # and the first copy to arrive is the one kept
        first = {}
        for batch in batches:
            for kind, rid, t, k in batch:
                if kind == "q":
                    first.setdefault(rid, float(k) + t / 1000)
        kept = dict(zip(ended, a[a[JOIN_STATUS] != "response_only"]["features.sepal_length"])) if len(a) else {}
        assert all(kept[rid] == v for rid, v in first.items() if rid in kept)


def test_restore_refuses_a_broken_state():
    j = RequestResponseJoin(ttl_ms=100)
    j.add(req(["a"], [1]))
    snap = j.pending()
    with pytest.raises(ValueError, match="next_seq"):
        RequestResponseJoin(ttl_ms=100).restore(snap, clock_ms=1, next_seq=0)
    with pytest.raises(ValueError, match="twice"):
        RequestResponseJoin(ttl_ms=100).restore(pd.concat([snap, snap.assign(join_seq=5)]), clock_ms=1, next_seq=9)
    with pytest.raises(ValueError, match="join_half"):
        RequestResponseJoin(ttl_ms=100).restore(snap.assign(join_half="other"), clock_ms=1, next_seq=9)


def test_join_state_survives_in_the_database(db_url):
    store = Store(db_url)
    store.create_schema()
    params = {"ttl_ms": 500, "max_pending": 6}
    batches = [(req([f"q{i}" for i in range(k, k + 4)], [100 * k + i for i in range(4)]),
                resp([f"q{i}" for i in range(k - 2, k + 1)], [100 * k + 50 + i for i in range(3)]))
               for k in range(0, 40, 4)]
    plain = RequestResponseJoin(**params)
    expected = [plain.add(q, s) for q, s in batches]
    j = RequestResponseJoin(**params)
    got = []
    for i, (q, s) in enumerate(batches):
        if i % 3 == 2:  # a restart: everything from the database
            with store.transaction() as conn:
                entries, clock, nxt = store.load_join_state(conn, "kserve:0")
            j = RequestResponseJoin(**params)
            j.restore(entries, clock_ms=clock, next_seq=nxt)
        got.append(j.add(q, s))
        with store.transaction() as conn:
            store.save_join_changes(conn, "kserve:0", j.drain_changes())
            stored = conn.execute(sa.text("SELECT COALESCE(SUM(n_rows), 0) FROM join_entries")).scalar_one()
        live = len(j.pending())
        assert stored <= 2 * live + 1  # rewritten once half is dead
    pd.testing.assert_frame_equal(_normal([r.records for r in expected]), _normal([r.records for r in got]))
    assert _sum_counts(expected) == _sum_counts(got)
    assert _sum_counts(got)["matched"] == 28
    with store.transaction() as conn:
        entries, clock, nxt = store.load_join_state(conn, "kserve:0")
        assert store.load_join_state(conn, "other") [1:] == (None, 0)
    assert sorted(entries["join_seq"]) == sorted(j.pending()["join_seq"]) and clock == j.clock_ms
    store.close()


def test_mixed_text_and_number_columns_are_stored_as_text(db_url):
    store = Store(db_url)
    store.create_schema()
    j = RequestResponseJoin(ttl_ms=10**9)
    j.add(req(["a"], [1], **{"features.zip": [2139.0]}))
    j.add(req(["b"], [2], **{"features.zip": ["02139"]}))
    with store.transaction() as conn:
        store.save_join_changes(conn, "j", j.drain_changes())
        entries, _, _ = store.load_join_state(conn, "j")
    halves = entries[entries["join_half"] == "request"]
    assert halves["features.zip"].tolist() == ["2139", "02139"]
    store.close()


# --------------------------------------------------------------------------- label join

# SageMaker ground truth lines decode to label rows keyed by the capture's inferenceId.
def predictions(ids, times, model="churn", version="3", proba=None, label=None):
    n = len(ids)
    proba = proba if proba is not None else [0.1 * (i % 10) for i in range(n)]
    out = pd.DataFrame({"model": [model] * n, "model_version": [version] * n, "event_time_ms": times,
                        "request_id": ids, "predictions.label": ["yes" if p >= 0.5 else "no" for p in proba],
                        "predictions.proba_yes": proba, "features.tenure": [12.0] * n})
    if label is not None:
        out["label"] = label
    return out


def labels(ids, values, times, model=None):
    out = pd.DataFrame({"request_id": ids, "label": values, "event_time_ms": times})
    if model is not None:
        out["model"] = model
    return out


H = 3_600_000


@contextmanager
def _fresh_database(request, dialect, tmp_path):
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'labels.db'}"
        return
    base = sa.make_url(request.getfixturevalue("postgres_url"))
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def next_state(request, tmp_path):
    """The label state for the next batch: the same object in memory; in the database, a new
    transaction per batch (the previous one committed), as the collector runs it."""
    if request.param == "memory":
        state = MemoryLabelState()
        yield lambda: state
        return
    with _fresh_database(request, request.param, tmp_path) as url:
        store = Store(url)
        store.create_schema()
        open_tx = []

        def make():
            if open_tx:
                open_tx.pop().__exit__(None, None, None)
            tx = store.transaction()
            open_tx.append(tx)
            return store.label_state(tx.__enter__(), "labels")

        yield make
        for tx in open_tx:
            tx.__exit__(None, None, None)
        store.close()


def _step(join, next_state, preds=None, labs=None, **kw):
    return join.process(next_state(), preds, labs, **kw)


def test_labels_join_their_predictions_within_the_delay(next_state):
    join = LabelJoin(delay_ms=24 * H, prediction_columns=["predictions.label", "predictions.proba_yes"])
    out = _step(join, next_state, predictions(["i1", "i2", "i3"], [0, 10, 20], proba=[0.9, 0.2, 0.6]))
    assert len(out.pairs) == 0 and len(out.unlabelled) == 0
    # a label that came before its prediction waits for it
    out = _step(join, next_state, None, labels(["i1", "i4"], ["yes", "no"], [5 * H, 5 * H]))
    assert out.pairs[["request_id", "label", "predictions.label", "predictions.proba_yes", "event_time_ms"]
                     ].values.tolist() == [["i1", "yes", "yes", 0.9, 0]]
    assert list(out.pairs.columns) == ["model", "model_version", "event_time_ms", "request_id", "label",
                                       "predictions.label", "predictions.proba_yes"]
    out = _step(join, next_state, predictions(["i4"], [4 * H], proba=[0.3]))
    assert out.pairs[["request_id", "label", "model", "model_version", "event_time_ms"]].values.tolist() == [
        ["i4", "no", "churn", "3", 4 * H]]
    # i2 is labelled 24 h + 1 ms after its prediction: too late
    out = _step(join, next_state, None, labels(["i2"], ["no"], [10 + 24 * H + 1]))
    assert out.counts["label_too_late"] == 1 and len(out.pairs) == 0
    # that label moved the clock past i2's delay (not yet i3's): i2 is given up, unlabelled
    assert out.unlabelled[["request_id", "label", "predictions.proba_yes"]].values.tolist() == [
        ["i2", None, 0.2]]
    assert out.counts["prediction_unlabelled"] == 1
    out = _step(join, next_state, clock_ms=20 + 24 * H + 1)
    assert out.unlabelled["request_id"].tolist() == ["i3"] and out.counts["prediction_unlabelled"] == 1


def test_label_join_counts_duplicates_orphans_and_records_with_labels(next_state):
    join = LabelJoin(delay_ms=H, label_wait_ms=H // 2)
    out = _step(join, next_state,
                predictions(["a", "a", "b", ""], [0, 1, 2, 3], label=[None, None, "yes", None]),
                labels(["z", "z", None], ["no", "no", "yes"], [0, 0, 0]))
    assert {k: v for k, v in out.counts.items() if v} == {
        "label_in_record": 1, "prediction_no_id": 1, "prediction_duplicate": 1, "label_duplicate": 1,
        "label_invalid": 1}
    assert out.pairs["request_id"].tolist() == ["b"] and out.unlabelled["request_id"].tolist() == [""]
    out = _step(join, next_state, predictions(["a"], [10]), labels(["z"], ["yes"], [20]))
    assert {k: v for k, v in out.counts.items() if v} == {"prediction_duplicate": 1, "label_duplicate": 1}
    # half an hour later the label for z (a prediction never seen) is given up; a is given up at 1 h
    out = _step(join, next_state, clock_ms=H // 2 + 1)
    assert {k: v for k, v in out.counts.items() if v} == {"label_unmatched": 1}
    out = _step(join, next_state, clock_ms=H + 1)
    assert {k: v for k, v in out.counts.items() if v} == {"prediction_unlabelled": 1}
    assert out.unlabelled["request_id"].tolist() == ["a"]


def test_a_label_naming_its_model_joins_only_that_models_prediction(next_state):
    join = LabelJoin(delay_ms=H)
    both = pd.concat([predictions(["r"], [0], model="churn"), predictions(["r"], [0], model="churn-shadow")])
    _step(join, next_state, both)
    out = _step(join, next_state, None, labels(["r"], ["yes"], [5], model=["churn-shadow"]))
    assert out.pairs[["model", "label"]].values.tolist() == [["churn-shadow", "yes"]]
    # a label naming no model joins every waiting prediction of its request id
    _step(join, next_state, both.assign(request_id="s"))
    out = _step(join, next_state, None, labels(["s"], ["no"], [6]))
    assert out.pairs[["model", "request_id", "label"]].values.tolist() == [["churn", "s", "no"],
                                                                          ["churn-shadow", "s", "no"]]


# --------------------------------------------------------------------------- realized performance


def test_window_starts_tumbling_and_sliding():
    rows_, starts = window_starts(np.array([0, 59, 60, 119]), 60)
    assert rows_.tolist() == [0, 1, 2, 3] and starts.tolist() == [0, 0, 60, 60]
    rows_, starts = window_starts(np.array([10, 35]), 60, slide_ms=20, origin_ms=5)
    assert sorted(zip(rows_.tolist(), starts.tolist())) == [(0, -35), (0, -15), (0, 5), (1, -15), (1, 5), (1, 25)]


def test_classification_summaries_from_the_label_join_equal_the_direct_ones(next_state):
    rng = np.random.default_rng(7)
    n = 400
    t = np.sort(rng.integers(0, 4 * H, n))
    ids = [f"inf-{i}" for i in range(n)]
    proba = np.round(rng.random(n), 3)
    truth = np.where(rng.random(n) < proba, "yes", "no")
    labelled = rng.random(n) < 0.8  # a fifth never get a label
    delay = 2 * H
    join = LabelJoin(delay_ms=delay, prediction_columns=["predictions.label", "predictions.proba_yes"])
    spec = PerformanceSpec("classification", "predictions.label", labels=("no", "yes"),
                           probabilities=("predictions.proba_yes",))
    merged = {}
    for lo in range(0, n, 50):
        hi = lo + 50
        p = predictions(ids[lo:hi], t[lo:hi], proba=proba[lo:hi].tolist())
        late = [i for i in range(max(0, lo - 60), hi - 60) if labelled[i]]  # labels lag 60 rows
        lab = labels([ids[i] for i in late], truth[late].tolist(), (t[late] + H).tolist())
        out = _step(join, next_state, p, lab)
        batch = performance_summaries(out.pairs, spec, window_ms=H, unlabelled=out.unlabelled)
        assert batch.n_invalid == 0
        for key, summ in batch.summaries.items():
            merged[key] = merged[key].merge(summ) if key in merged else summ
    rest = [i for i in range(n - 60, n) if labelled[i]]
    out = _step(join, next_state, None, labels([ids[i] for i in rest], truth[rest].tolist(),
                                                      (t[rest] + H).tolist()))
    out2 = _step(join, next_state, clock_ms=int(t[-1]) + delay + 1)
    for o in (out, out2):
        batch = performance_summaries(o.pairs, spec, window_ms=H, unlabelled=o.unlabelled)
        for key, summ in batch.summaries.items():
            merged[key] = merged[key].merge(summ) if key in merged else summ

    assert set(merged) == {("churn", "3", w * H) for w in range(4)}
    for (_, _, start), summ in merged.items():
        inside = (t >= start) & (t < start + H)
        y_true = np.where(labelled, truth, None)[inside]
        y_pred = np.where(proba >= 0.5, "yes", "no")[inside]
        direct = classification_summary(y_true, y_pred, proba[inside], labels=("no", "yes"))
        assert summ == direct
        assert summ.n_rows == int(inside.sum()) and summ.n_labelled == int((inside & labelled).sum())


def test_regression_summaries_per_sliding_window_equal_the_direct_ones():
    join = LabelJoin(delay_ms=10**9)
    state = MemoryLabelState()
    t = np.array([0, 15, 30, 45, 50, 70])
    value = np.array([1.0, 2.5, -1.0, 4.0, 0.5, 3.0])
    truth = np.array([1.5, 2.0, -2.0, 4.0, 1.0, 2.0])
    p = pd.DataFrame({"model": "eta", "model_version": "1", "event_time_ms": t,
                      "request_id": [f"r{i}" for i in range(6)], "predictions.minutes": value})
    join.process(state, p)
    out = join.process(state, None, labels([f"r{i}" for i in range(6)], truth.tolist(), (t + 1).tolist()))
    spec = PerformanceSpec("regression", "predictions.minutes")
    res = performance_summaries(out.pairs, spec, window_ms=40, slide_ms=20)
    for (_, _, start), summ in res.summaries.items():
        inside = (t >= start) & (t < start + 40)
        assert summ == regression_summary(truth[inside], value[inside])
    assert sorted(s for _, _, s in res.summaries) == [-20, 0, 20, 40, 60]
    assert res.summaries[("eta", "1", 40)].metrics().mae == pytest.approx((0.0 + 0.5 + 1.0) / 3)


def test_rows_a_spec_cannot_read_are_counted_and_left_out():
    pairs = pd.DataFrame({"model": "m", "model_version": "1", "event_time_ms": [1, 2, 3, 4],
                          "request_id": list("abcd"), "label": ["yes", "maybe", "no", "no"],
                          "predictions.label": ["yes", "no", None, "no"], "predictions.p": [0.9, 0.1, 0.2, 1.5]})
    spec = PerformanceSpec("classification", "predictions.label", labels=("no", "yes"),
                           probabilities=("predictions.p",))
    res = performance_summaries(pairs, spec, window_ms=10)
    assert res.n_invalid == 3  # a label outside the set, a missing prediction, a probability above 1
    assert res.summaries[("m", "1", 0)].n_rows == 1
    with pytest.raises(ValueError, match="labels"):
        PerformanceSpec("classification", "predictions.label", labels=("yes",))
    with pytest.raises(ValueError, match="predictions.q"):
        performance_summaries(pairs, PerformanceSpec("regression", "predictions.q"), window_ms=10)


def test_a_model_and_id_never_join_another_model_and_id_with_the_same_text_joined():
    """(model "a\\x1fb", id "c") and (model "a", id "b\\x1fc") read the same when their texts
    are joined by the separator; they are two calls and must not match, also after the
    finished ids are stored and restored."""
    from collector.join import _join_keys, _split_keys

    join = RequestResponseJoin(60_000)
    q = req(["c"], [1000], model=["a\x1fb"])
    s = resp(["b\x1fc"], [1000], model=["a"])
    out = join.add(q, s)
    assert out.counts["matched"] == 0
    keys = _join_keys(pd.concat([q, s], ignore_index=True))
    assert len(set(keys)) == 2
    models, rids = _split_keys(keys)
    assert models.tolist() == ["a\x1fb", "a"] and rids.tolist() == ["c", "b\x1fc"]
    # integer ids and a missing model read back as text
    odd = pd.DataFrame({"model": [None, "m"], "request_id": [7, "x"]})
    assert [m for m in _split_keys(_join_keys(odd))[0]] == ["", "m"]
    assert [r for r in _split_keys(_join_keys(odd))[1]] == ["7", "x"]
