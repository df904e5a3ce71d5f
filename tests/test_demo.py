"""Tests for inferwatch.demo: the ACS employment demo data, model and record streams."""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from inferwatch import demo

YEAR_ROWS = {2015: 68_785, 2016: 69_126, 2017: 69_635, 2018: 70_131}
N_TRAIN, N_HOLDOUT = 34_392, 34_393
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RECORD_KEYS = {"model", "model_version", "timestamp", "request_id", "features", "predictions", "label"}
# Measured hold-out accuracy of the default model is 0.808 (0.804-0.808 on
# 2016-2018); the floors leave room for platform-level float differences.
ACCURACY_FLOOR = 0.79


def check_record(rec: dict) -> None:
    """Assert that ``rec`` has the canonical prediction-log record shape."""
    assert set(rec) <= RECORD_KEYS | {"latency_ms"}
    assert RECORD_KEYS - {"label"} <= set(rec)
    assert isinstance(rec["model"], str) and rec["model"]
    assert isinstance(rec["model_version"], str) and rec["model_version"]
    assert isinstance(rec["request_id"], str) and rec["request_id"]
    assert TS_RE.match(rec["timestamp"]), rec["timestamp"]
    feats = rec["features"]
    assert list(feats) == list(demo.FEATURES)
    assert isinstance(feats["AGEP"], float) and math.isfinite(feats["AGEP"])
    for c in demo.CODE_COLUMNS:
        assert isinstance(feats[c], str) and feats[c].isdigit(), (c, feats[c])
    preds = rec["predictions"]
    assert set(preds) == {"employed", "probability"}
    assert isinstance(preds["employed"], bool)
    p = preds["probability"]
    assert isinstance(p, float) and 0.0 <= p <= 1.0 and round(p, 6) == p
    assert preds["employed"] == (p >= 0.5) or abs(p - 0.5) <= 1e-6
    assert isinstance(rec["label"], bool)
    assert "latency_ms" not in rec  # the data has no latencies


def parse_ts(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return demo.load_demo_frame()


@pytest.fixture(scope="module")
def demo_stream() -> list[dict]:
    return list(demo.demo_records())


@pytest.fixture(scope="module")
def control_stream() -> list[dict]:
    return list(demo.control_records())


@pytest.fixture(scope="module")
def holdout_rows() -> set[int]:
    return set(demo.holdout_frame()["row"].tolist())


# --- data ------------------------------------------------------------------


def test_frame_shape_and_types(frame):
    assert len(frame) == 277_677
    assert list(frame.columns) == ["year", "AGEP", *demo.CODE_COLUMNS, "employed"]
    assert frame["year"].dtype == np.int16
    assert frame["AGEP"].dtype == np.float32
    for c in (*demo.CODE_COLUMNS, "employed"):
        assert frame[c].dtype == np.int8, c
    assert frame["year"].value_counts().sort_index().to_dict() == YEAR_ROWS
    assert set(frame["employed"].unique()) == {0, 1}
    assert not frame.isna().any().any()
    # Source order: years are contiguous and ascending.
    assert frame["year"].is_monotonic_increasing


def test_missing_codes_follow_age_universe(frame):
    # folktables turns the ACS "not applicable" blanks into 0; they are age-driven.
    age = frame["AGEP"]
    assert ((frame["SCHL"] == 0) == (age < 3)).all()
    assert ((frame["DREM"] == 0) == (age < 5)).all()
    assert ((frame["MIL"] == 0) == (age < 17)).all()
    assert ((frame["MIG"] == 0) == (age < 1)).all()
    assert frame.loc[age < 16, "employed"].eq(0).all()


def test_load_returns_copy(frame):
    a = demo.load_demo_frame()
    a.loc[0, "AGEP"] = -1.0
    assert demo.load_demo_frame().loc[0, "AGEP"] == frame.loc[0, "AGEP"]


def test_shuffle_is_deterministic_and_within_year(frame):
    s1 = demo.shuffled_frame()
    demo._shuffled.cache_clear()
    s2 = demo.shuffled_frame()
    assert s1.equals(s2)
    assert s1["year"].is_monotonic_increasing
    assert s1.groupby("year").size().to_dict() == YEAR_ROWS
    # A permutation of the source rows that keeps each row in its year ...
    assert sorted(s1["row"].tolist()) == list(range(len(frame)))
    assert (frame["year"].to_numpy()[s1["row"].to_numpy()] == s1["year"].to_numpy()).all()
    # ... whose feature values are those of the source row ...
    src = frame.iloc[s1["row"].to_numpy()].reset_index(drop=True)
    assert src.equals(s1[frame.columns])
    # ... and that really reorders rows.
    assert (s1["row"].to_numpy() != np.arange(len(frame))).mean() > 0.99


def test_train_holdout_split():
    tr, ho = demo.training_frame(), demo.holdout_frame()
    assert (len(tr), len(ho)) == (N_TRAIN, N_HOLDOUT)
    assert (tr["year"] == 2015).all() and (ho["year"] == 2015).all()
    assert set(tr["row"]).isdisjoint(ho["row"])
    # Random halves: both cover the whole year's source order, not chunks of it.
    for half in (tr, ho):
        assert half["row"].min() < 1_000 and half["row"].max() > 67_785
        assert abs(half["row"].mean() - 68_784 / 2) < 1_000
    # ... and look alike (a random split, unlike contiguous chunks).
    assert stats.ks_2samp(tr["AGEP"], ho["AGEP"]).pvalue > 0.01


# --- model -----------------------------------------------------------------


def accuracy(model, df: pd.DataFrame) -> float:
    return float(np.mean(model.predict(df) == (df["employed"].to_numpy() == 1)))


def test_model_accuracy():
    model = demo.default_model()
    assert model.converged
    s = demo.shuffled_frame()
    assert accuracy(model, demo.holdout_frame()) > ACCURACY_FLOOR
    for year in (2016, 2017, 2018):
        assert accuracy(model, s[s["year"] == year]) > ACCURACY_FLOOR
    # Better than always guessing the majority class (about 50 %).
    assert accuracy(model, demo.holdout_frame()) > 0.5 + 0.25


def test_model_is_deterministic_and_serialisable():
    m1 = demo.train_model(demo.training_frame())
    assert m1 == demo.default_model()  # same data, same fit, parameter for parameter
    ho = demo.holdout_frame()
    p = m1.predict_proba(ho)
    assert p.shape == (len(ho),) and np.all((p > 0) & (p < 1))
    m3 = demo.EmploymentModel.from_dict(json.loads(json.dumps(m1.to_dict())))
    np.testing.assert_array_equal(m3.predict_proba(ho), p)


def test_model_accepts_canonical_string_codes_and_unknown_codes():
    model = demo.default_model()
    ho = demo.holdout_frame().head(500)
    canon = demo._canonical(ho, np.zeros(len(ho)))
    np.testing.assert_allclose(model.predict_proba(canon), model.predict_proba(ho), rtol=0, atol=1e-12)
    odd = canon.copy()
    odd["SCHL"] = "99"  # never seen in training: contributes nothing
    odd.loc[odd.index[:10], "RAC1P"] = None
    p = model.predict_proba(odd)
    assert np.all(np.isfinite(p))


# --- reference file --------------------------------------------------------


def test_reference_frame_columns():
    ref = demo.reference_frame()
    assert len(ref) == N_TRAIN
    assert list(ref.columns) == [*demo.FEATURES, *demo.PREDICTION_COLUMNS, demo.LABEL_COLUMN]
    assert ref["AGEP"].dtype == np.float64
    for c in demo.CODE_COLUMNS:
        assert pd.api.types.is_string_dtype(ref[c].dtype), c
        assert ref[c].str.fullmatch(r"\d+").all()
    assert ref["prediction.employed"].dtype == bool
    assert ref["label"].dtype == bool
    assert ref["prediction.probability"].between(0, 1).all()
    assert (ref["prediction.employed"] == (ref["prediction.probability"] >= 0.5)).mean() > 0.9999
    assert ref["label"].sum() == demo.training_frame()["employed"].sum()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_reference_file(tmp_path, suffix):
    path = demo.write_reference_file(tmp_path / f"ref{suffix}")
    back = pd.read_csv(path, dtype={c: str for c in demo.CODE_COLUMNS}) if suffix == ".csv" else pd.read_parquet(path)
    ref = demo.reference_frame()
    assert list(back.columns) == list(ref.columns)
    assert len(back) == len(ref)
    for c in ref.columns:
        assert back[c].tolist() == ref[c].tolist(), c


def test_write_reference_file_rejects_unknown_suffix(tmp_path):
    with pytest.raises(ValueError):
        demo.write_reference_file(tmp_path / "ref.json")


# --- demo stream -----------------------------------------------------------


def test_demo_records_counts_and_shape(demo_stream, holdout_rows):
    assert len(demo_stream) == N_HOLDOUT + YEAR_ROWS[2016] + YEAR_ROWS[2017] + YEAR_ROWS[2018]
    for rec in demo_stream:
        check_record(rec)
    assert {r["model"] for r in demo_stream} == {"employment"}
    assert {r["model_version"] for r in demo_stream} == {"1"}
    per_year = pd.Series([r["timestamp"][:4] for r in demo_stream]).value_counts().to_dict()
    assert per_year == {"2015": N_HOLDOUT, "2016": YEAR_ROWS[2016], "2017": YEAR_ROWS[2017], "2018": YEAR_ROWS[2018]}
    rows_2015 = {demo.source_row(r["request_id"]) for r in demo_stream if r["timestamp"].startswith("2015")}
    assert rows_2015 == holdout_rows


def test_demo_records_timestamps(demo_stream):
    ts = [r["timestamp"] for r in demo_stream]
    # Same-width RFC 3339 strings: lexical order is time order.
    assert all(a < b for a, b in zip(ts, ts[1:]))
    for rec in demo_stream:
        rid_year = rec["request_id"].split("-")[1]
        assert rec["timestamp"][:4] == rid_year
    assert ts[0] == "2015-01-01T00:00:00.000Z"
    assert ts[-1] < "2019-01-01T00:00:00.000Z"
    # Evenly spread: each year's first record is at its start, gaps are ~constant.
    for year in (2016, 2017, 2018):
        in_year = [parse_ts(t) for t in ts if t.startswith(str(year))]
        assert in_year[0] == dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
        gaps = np.diff([t.timestamp() for t in in_year])
        assert gaps.max() - gaps.min() <= 0.0011


def test_demo_records_ids_and_values(demo_stream, frame):
    ids = [r["request_id"] for r in demo_stream]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"acs-\d{4}-\d{6}", i) for i in ids)
    # Features and label match the source row named in the request id.
    rows = np.array([demo.source_row(i) for i in ids])
    src = frame.iloc[rows]
    assert np.array_equal(np.array([r["features"]["AGEP"] for r in demo_stream]), src["AGEP"].to_numpy(np.float64))
    for c in ("SCHL", "ANC", "RAC1P"):
        assert [r["features"][c] for r in demo_stream] == src[c].astype(str).tolist()
    assert [r["label"] for r in demo_stream] == (src["employed"] == 1).tolist()
    # Predictions are the default model's.
    probs = demo.default_model().predict_proba(src)
    np.testing.assert_allclose([r["predictions"]["probability"] for r in demo_stream], probs, atol=5e-7)


def test_demo_records_options():
    a = list(demo.demo_records(model_name="m", model_version="7", start_year=2024, years=(2018, 2016), seed=1))
    assert len(a) == YEAR_ROWS[2016] + YEAR_ROWS[2018]
    assert {(r["model"], r["model_version"]) for r in a} == {("m", "7")}
    # Data years are replayed in ascending order in consecutive calendar years.
    assert a[0]["timestamp"].startswith("2024-") and a[0]["request_id"].startswith("acs-2016-")
    assert a[-1]["timestamp"].startswith("2025-") and a[-1]["request_id"].startswith("acs-2018-")
    # The seed changes the replay order, not the set of rows.
    b = list(demo.demo_records(start_year=2024, years=(2016,), seed=0))
    a16 = [r["request_id"] for r in a if r["request_id"].startswith("acs-2016-")]
    b16 = [r["request_id"] for r in b]
    assert a16 != b16 and sorted(a16) == sorted(b16)
    c = list(demo.demo_records(start_year=2024, years=(2016,), seed=0))
    assert c == b


def test_encode_record(demo_stream):
    rec = demo_stream[12345]
    raw = demo.encode_record(rec)
    assert isinstance(raw, bytes)
    assert b" " not in raw and b"\n" not in raw
    assert json.loads(raw.decode("utf-8")) == rec
    bad = dict(rec, predictions={"employed": True, "probability": float("nan")})
    with pytest.raises(ValueError):
        demo.encode_record(bad)


# --- control stream --------------------------------------------------------


def test_control_records_use_only_holdout(control_stream, demo_stream, holdout_rows):
    assert len(control_stream) == len(demo_stream)
    assert {r["model"] for r in control_stream} == {"employment-control"}
    rows = [demo.source_row(r["request_id"]) for r in control_stream]
    assert set(rows) <= holdout_rows
    # Resampled with replacement: many hold-out rows, some repeated.
    assert len(set(rows)) > 0.9 * len(holdout_rows)
    assert len(set(rows)) < len(rows)
    ids = [r["request_id"] for r in control_stream]
    assert len(set(ids)) == len(ids)
    for rec in control_stream[::97]:
        check_record(rec)


def test_control_records_span_and_order(control_stream, demo_stream):
    ts = [r["timestamp"] for r in control_stream]
    assert all(a < b for a, b in zip(ts, ts[1:]))
    assert ts[0] == demo_stream[0]["timestamp"]
    assert ts[-1][:4] == "2018"
    # Same records per calendar year as the demo stream.
    assert (pd.Series([t[:4] for t in ts]).value_counts().to_dict()
            == pd.Series([r["timestamp"][:4] for r in demo_stream]).value_counts().to_dict())


def test_control_records_are_stationary(control_stream):
    # The clearest drifting feature of the demo (ANC) stays put in the control stream.
    ref = demo.reference_frame()["ANC"].value_counts()
    for year in ("2016", "2018"):
        win = pd.Series([r["features"]["ANC"] for r in control_stream if r["timestamp"].startswith(year)])
        table = pd.concat([ref, win.value_counts()], axis=1).fillna(0).to_numpy().T
        assert stats.chi2_contingency(table).pvalue > 1e-3


# --- episode ---------------------------------------------------------------


def test_episode_records_layout(holdout_rows):
    ep = demo.episode_records()
    recs = ep.records
    assert len(recs) == 30_000
    utc = dt.timezone.utc
    assert ep.start == dt.datetime(2024, 1, 1, tzinfo=utc)
    assert ep.drift_start == dt.datetime(2024, 1, 5, tzinfo=utc)
    assert ep.drift_end == dt.datetime(2024, 1, 8, tzinfo=utc)
    assert ep.end == dt.datetime(2024, 1, 11, tzinfo=utc)
    ts = [parse_ts(r["timestamp"]) for r in recs]
    assert all(a < b for a, b in zip(ts, ts[1:]))
    assert ts[0] == ep.start and ts[-1] < ep.end
    assert ts[12_000] == ep.drift_start and ts[21_000] == ep.drift_end
    ids = [r["request_id"] for r in recs]
    assert len(set(ids)) == len(ids)
    for rec in recs[::50]:
        check_record(rec)
    frame_year = demo.load_demo_frame()["year"].to_numpy()
    rows = np.array([demo.source_row(i) for i in ids])
    in_drift = np.array([ep.drift_start <= t < ep.drift_end for t in ts])
    assert (frame_year[rows[in_drift]] == 2018).all()
    assert set(rows[~in_drift].tolist()) <= holdout_rows
    # Stable and recovery rows are distinct hold-out rows.
    assert len(set(rows[~in_drift].tolist())) == 21_000
    # Window helpers.
    day = dt.timedelta(days=1)
    assert ep.fully_drifted(ep.drift_start, ep.drift_start + day)
    assert not ep.overlaps_drift(ep.start, ep.start + day)
    assert ep.overlaps_drift(ep.drift_end - day / 2, ep.drift_end + day / 2)
    assert not ep.overlaps_drift(ep.drift_end, ep.drift_end + day)


def test_episode_drift_is_detectable_on_anc():
    ep = demo.episode_records()
    ref = demo.reference_frame()["ANC"].value_counts()
    df = pd.DataFrame({"t": [r["timestamp"][:10] for r in ep.records],
                       "ANC": [r["features"]["ANC"] for r in ep.records]})
    for day, win in df.groupby("t"):
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
        table = pd.concat([ref, win["ANC"].value_counts()], axis=1).fillna(0).to_numpy().T
        p = stats.chi2_contingency(table).pvalue
        if ep.fully_drifted(start, start + dt.timedelta(days=1)):
            assert p < 1e-3, (day, p)
        else:
            assert p > 1e-3, (day, p)


def test_episode_records_options():
    ep = demo.episode_records(model_name="x", n_stable=100, n_drift=50, n_recovery=40_000,
                              records_per_day=24, start="2030-06-01T00:00:00Z", drift_year=2016, seed=3)
    assert len(ep.records) == 40_150
    assert ep.drift_start == dt.datetime(2030, 6, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=100)
    assert ep.drift_end - ep.drift_start == dt.timedelta(hours=50)
    assert {r["model"] for r in ep.records} == {"x"}
    with pytest.raises(ValueError):
        demo.episode_records(records_per_day=0)
