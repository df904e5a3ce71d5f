"""Real-data demo: ACS employment (Massachusetts, 2015-2018), a model, and log records.

The demo dataset (``inferwatch/demo_data/acs_employment_ma.parquet``, see the
README next to it) holds 277,677 US Census ACS PUMS person records, one survey
year at a time, with 16 features and the binary target ``employed``.

How the data is turned into a production story
-----------------------------------------------
The ACS has no timestamps inside a survey year, and the source rows are
grouped by household and geography, so contiguous chunks of one year differ
from each other. Therefore:

1. the rows of each year are shuffled with a fixed seed (:data:`SPLIT_SEED`);
2. the shuffled 2015 rows are cut into two random halves: the *training* half
   (the model's training data and the drift reference) and the *hold-out*
   half (replayed as 2015 production traffic);
3. a logistic regression (:func:`train_model`) is fitted on the training half;
4. :func:`demo_records` replays the hold-out half as calendar year 2015 and
   all rows of 2016, 2017 and 2018 as the following years, spreading each
   year's rows evenly over its calendar year.

The hold-out half comes from the same distribution as the reference, so a
drift detector should stay (mostly) quiet on it; later years show the real
year-to-year change of the population.

Record format
-------------
Every record produced here is a dict in the project's canonical JSON
prediction-log form::

    {"model": "employment", "model_version": "1",
     "timestamp": "2016-03-01T12:34:56.789Z",
     "request_id": "acs-2016-070123",
     "features": {"AGEP": 46.0, "SCHL": "21", "MAR": "1", ...},
     "predictions": {"employed": true, "probability": 0.948828},
     "label": true}

``AGEP`` is a number; the 15 ACS code columns are strings because they are
codes, not quantities. ``latency_ms`` is omitted: the data has none.
:func:`encode_record` turns a record into compact UTF-8 JSON bytes.
:func:`with_simulated_serving` adds SIMULATED serving telemetry (``latency_ms`` and a
``serving`` object) for demos of the serving dashboards; it is not part of the ACS data.

Only numpy, pandas and scipy are used (no nannyml, no scikit-learn).
"""

from __future__ import annotations

import datetime as _dt
import functools
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, sparse

__all__ = [
    "AGE_COLUMN",
    "CODE_COLUMNS",
    "DATA_FILE",
    "FEATURES",
    "LABEL_COLUMN",
    "PREDICTION_COLUMNS",
    "SPLIT_SEED",
    "YEARS",
    "EmploymentModel",
    "Episode",
    "control_records",
    "default_model",
    "demo_records",
    "encode_record",
    "episode_records",
    "holdout_frame",
    "load_demo_frame",
    "reference_frame",
    "shuffled_frame",
    "source_row",
    "train_model",
    "training_frame",
    "with_simulated_serving",
    "write_reference_file",
]

DATA_FILE = "acs_employment_ma.parquet"
#: Numeric feature (age in years).
AGE_COLUMN = "AGEP"
#: ACS code features, in source order; emitted as strings in records.
CODE_COLUMNS: tuple[str, ...] = (
    "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
    "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
)
#: All 16 model features, in the order used in records.
FEATURES: tuple[str, ...] = (AGE_COLUMN, *CODE_COLUMNS)
TARGET = "employed"
YEARS: tuple[int, ...] = (2015, 2016, 2017, 2018)
TRAIN_YEAR = 2015
#: Seed of the fixed within-year shuffle (and thus of the train/hold-out split).
SPLIT_SEED = 20150101

#: Column names of the reference file (see :func:`reference_frame`).
PREDICTION_COLUMNS: tuple[str, ...] = ("prediction.employed", "prediction.probability")
LABEL_COLUMN = "label"

_MS_PER_DAY = 86_400_000
# "0".."127" as Python str objects: vectorised int code -> string lookup.
_CODE_STR = np.array([str(i) for i in range(128)], dtype=object)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _raw_frame() -> pd.DataFrame:
    ref = resources.files("inferwatch") / "demo_data" / DATA_FILE
    with resources.as_file(ref) as path:
        return pd.read_parquet(path)


def load_demo_frame() -> pd.DataFrame:
    """Load the shipped demo parquet file, rows in source order.

    Columns: ``year`` (int16), ``AGEP`` (float32), the 15 ACS code columns
    (int8, see :data:`CODE_COLUMNS`) and ``employed`` (int8, 0/1). The row
    number (0..277,676) equals the ``id`` of the original nannyml files.
    Returns a fresh copy the caller may modify.
    """
    return _raw_frame().copy()


@functools.lru_cache(maxsize=1)
def _shuffled() -> pd.DataFrame:
    raw = _raw_frame()
    years = raw["year"].to_numpy()
    parts = []
    for year in np.unique(years):
        rows = np.flatnonzero(years == year)
        rng = np.random.default_rng([SPLIT_SEED, int(year)])
        rows = rows[rng.permutation(len(rows))]
        part = np.full(len(rows), "production", dtype=object)
        if year == TRAIN_YEAR:
            n_train = len(rows) // 2
            part[:n_train] = "train"
            part[n_train:] = "holdout"
        frame = raw.iloc[rows].copy()
        frame.insert(0, "row", rows.astype(np.int64))
        frame["part"] = part
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    out["part"] = pd.Categorical(out["part"], categories=["train", "holdout", "production"])
    return out


def shuffled_frame() -> pd.DataFrame:
    """All rows, years ascending, shuffled within each year with :data:`SPLIT_SEED`.

    Adds two columns to those of :func:`load_demo_frame`: ``row`` (the source
    row number) and ``part`` (``"train"`` / ``"holdout"`` for the two random
    halves of 2015 -- the first ``n // 2`` shuffled rows are ``"train"`` -- and
    ``"production"`` for 2016-2018). Deterministic across calls and processes.
    """
    return _shuffled().copy()


def training_frame() -> pd.DataFrame:
    """The training half of 2015 (34,392 rows): model training data and drift reference."""
    s = _shuffled()
    return s[s["part"] == "train"].reset_index(drop=True)


def holdout_frame() -> pd.DataFrame:
    """The hold-out half of 2015 (34,393 rows), replayed as 2015 production traffic."""
    s = _shuffled()
    return s[s["part"] == "holdout"].reset_index(drop=True)


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------


def _code_values(s: pd.Series) -> np.ndarray:
    """Codes as int64; accepts int columns or canonical string codes ("16").

    Anything not parseable as an integer becomes -1 (treated as unknown).
    """
    if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
        return s.to_numpy(dtype=np.int64)
    num = pd.to_numeric(s.astype("object"), errors="coerce").to_numpy(dtype=np.float64)
    whole = np.isfinite(num) & (num == np.round(num))
    return np.where(whole, num, -1).astype(np.int64)


@dataclass(frozen=True)
class EmploymentModel:
    """L2-regularised logistic regression on one-hot ACS codes + standardised age.

    ``logit = intercept + age_coef * (AGEP - age_mean) / age_scale
    + sum_c code_coefs[c][index of the row's code in categories[c]]``.
    A code not seen in training (or missing/unparseable) contributes 0; a
    missing age is imputed with ``age_mean``.
    """

    categories: dict[str, tuple[int, ...]]
    age_mean: float
    age_scale: float
    intercept: float
    age_coef: float
    code_coefs: dict[str, tuple[float, ...]]
    l2: float = 1e-4
    converged: bool = field(default=True, compare=False)

    def _logit(self, df: pd.DataFrame) -> np.ndarray:
        age = pd.to_numeric(df[AGE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
        age = np.where(np.isnan(age), self.age_mean, age)
        z = self.intercept + self.age_coef * (age - self.age_mean) / self.age_scale
        for c in CODE_COLUMNS:
            cats = np.asarray(self.categories[c], dtype=np.int64)
            idx = _category_index(_code_values(df[c]), cats)
            w = np.append(np.asarray(self.code_coefs[c], dtype=np.float64), 0.0)
            z = z + w[idx]  # idx == -1 picks the appended 0.0
        return z

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """P(employed) per row, a 1-D float64 array (not sklearn's two columns).

        ``df`` needs the :data:`FEATURES` columns, either as in
        :func:`load_demo_frame` (int codes) or in canonical form (string codes).
        """
        return _sigmoid(self._logit(df))

    def predict(self, df: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        """Boolean predictions: ``predict_proba(df) >= threshold``."""
        return self.predict_proba(df) >= threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (inverse: :meth:`from_dict`)."""
        return {
            "kind": "logistic_regression",
            "features": list(FEATURES),
            "categories": {c: list(v) for c, v in self.categories.items()},
            "age_mean": self.age_mean,
            "age_scale": self.age_scale,
            "intercept": self.intercept,
            "age_coef": self.age_coef,
            "code_coefs": {c: list(v) for c, v in self.code_coefs.items()},
            "l2": self.l2,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EmploymentModel:
        return cls(
            categories={c: tuple(int(x) for x in v) for c, v in d["categories"].items()},
            age_mean=float(d["age_mean"]),
            age_scale=float(d["age_scale"]),
            intercept=float(d["intercept"]),
            age_coef=float(d["age_coef"]),
            code_coefs={c: tuple(float(x) for x in v) for c, v in d["code_coefs"].items()},
            l2=float(d.get("l2", 1e-4)),
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _category_index(values: np.ndarray, cats: np.ndarray) -> np.ndarray:
    """Position of each value in the sorted ``cats``; -1 where absent."""
    pos = np.searchsorted(cats, values)
    pos = np.minimum(pos, len(cats) - 1)
    return np.where(cats[pos] == values, pos, -1)


def train_model(train_df: pd.DataFrame, l2: float = 1e-4, max_iter: int = 2000) -> EmploymentModel:
    """Fit the logistic regression on ``train_df`` (features + ``employed``).

    Objective: mean log-loss + ``l2 / 2 * ||w||^2`` over all weights except
    the intercept, minimised with scipy's L-BFGS-B from a zero start using
    the analytic gradient. The categories of each code column are the codes
    present in ``train_df``; AGEP is standardised with the training mean and
    (population) standard deviation. Deterministic for a given input.
    """
    y = pd.to_numeric(train_df[TARGET]).to_numpy(dtype=np.float64)
    n = len(y)
    if n == 0:
        raise ValueError("empty training frame")
    age = pd.to_numeric(train_df[AGE_COLUMN]).to_numpy(dtype=np.float64)
    age_mean = float(age.mean())
    age_scale = float(age.std()) or 1.0
    age_std = (age - age_mean) / age_scale

    categories: dict[str, tuple[int, ...]] = {}
    indices: list[np.ndarray] = []
    sizes: list[int] = []
    for c in CODE_COLUMNS:
        v = _code_values(train_df[c])
        cats = np.unique(v[v >= 0])
        categories[c] = tuple(int(x) for x in cats)
        indices.append(_category_index(v, cats))
        sizes.append(len(cats))
    offsets = np.concatenate([[2], 2 + np.cumsum(sizes)])
    n_params = int(offsets[-1])
    # Sparse design matrix [1, age, one-hot codes]; an unknown code (only
    # possible for unparseable values) simply has no entry in its block.
    cols = [np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64)]
    vals = [np.ones(n), age_std]
    for j, idx in enumerate(indices):
        known = idx >= 0
        cols.append(np.where(known, idx + offsets[j], 0))
        vals.append(known.astype(np.float64))
    X = sparse.csr_matrix(
        (np.stack(vals, axis=1).ravel(), np.stack(cols, axis=1).ravel(),
         np.arange(0, n * len(cols) + 1, len(cols))),
        shape=(n, n_params),
    )
    XT = X.T.tocsr()
    penalised = np.ones(n_params)
    penalised[0] = 0.0  # the intercept is not regularised

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ theta
        softplus = np.logaddexp(0.0, z)
        w = theta * penalised
        loss = float(np.mean(softplus - y * z)) + 0.5 * l2 * float(w @ w)
        r = (np.exp(z - softplus) - y) / n  # sigmoid(z) - y, scaled
        return loss, XT @ r + l2 * w

    res = optimize.minimize(
        fun, np.zeros(n_params), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-6, "ftol": 1e-10},
    )
    theta = res.x
    return EmploymentModel(
        categories=categories,
        age_mean=age_mean,
        age_scale=age_scale,
        intercept=float(theta[0]),
        age_coef=float(theta[1]),
        code_coefs={
            c: tuple(float(x) for x in theta[offsets[j]:offsets[j + 1]])
            for j, c in enumerate(CODE_COLUMNS)
        },
        l2=l2,
        converged=bool(res.success),
    )


@functools.lru_cache(maxsize=1)
def default_model() -> EmploymentModel:
    """The demo model: :func:`train_model` on :func:`training_frame` (cached)."""
    return train_model(training_frame())


@functools.lru_cache(maxsize=1)
def _probabilities() -> np.ndarray:
    """Default-model P(employed) for every row of :func:`_shuffled`, in that order."""
    return default_model().predict_proba(_shuffled())


# --------------------------------------------------------------------------
# reference file
# --------------------------------------------------------------------------


def _canonical(frame: pd.DataFrame, proba: np.ndarray) -> pd.DataFrame:
    cols: dict[str, Any] = {AGE_COLUMN: frame[AGE_COLUMN].to_numpy(dtype=np.float64)}
    for c in CODE_COLUMNS:
        cols[c] = pd.array(_CODE_STR[frame[c].to_numpy(dtype=np.intp)], dtype="str")
    cols["prediction.employed"] = proba >= 0.5
    cols["prediction.probability"] = np.round(proba, 6)
    cols[LABEL_COLUMN] = frame[TARGET].to_numpy() == 1
    return pd.DataFrame(cols)


def reference_frame(model: EmploymentModel | None = None) -> pd.DataFrame:
    """The training half of 2015 in canonical (reference-file) column form.

    Reference file format (one row per prediction):

    * one column per feature, named as in the records' ``features`` object
      and typed the same way: ``AGEP`` float64; ``SCHL`` ... ``RAC1P`` strings
      holding the ACS code (e.g. ``"16"``);
    * one column per prediction, named ``prediction.<name>``:
      ``prediction.employed`` (bool, probability >= 0.5) and
      ``prediction.probability`` (float64, rounded to 6 digits);
    * ``label``: the observed outcome (bool ``employed``).

    Rows are in the fixed shuffled order of :func:`training_frame`. With
    ``model=None`` the predictions come from :func:`default_model`.
    Prefer parquet: it keeps the code columns as strings, so they profile
    as categorical like the string codes in the records. A CSV copy loses
    that typing (``pd.read_csv`` parses ``"16"`` back as a number); with a
    CSV reference list the 15 code columns under the model's
    ``drift.categorical`` setting.
    """
    train = training_frame()
    proba = (model or default_model()).predict_proba(train)
    return _canonical(train, proba)


def write_reference_file(path: str | Path, model: EmploymentModel | None = None) -> Path:
    """Write :func:`reference_frame` to ``path``: CSV for ``.csv``, parquet for ``.parquet``/``.pq``.

    The result is meant for ``inferwatch reference set --file <path>``.
    Returns the path written.
    """
    path = Path(path)
    frame = reference_frame(model)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".parquet", ".pq"):
        frame.to_parquet(path, index=False, compression="zstd")
    else:
        raise ValueError(f"unsupported reference file suffix {path.suffix!r} (use .csv or .parquet)")
    return path


# --------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------


def encode_record(rec: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON encoding of one record (no spaces, NaN rejected)."""
    return json.dumps(rec, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def source_row(request_id: str) -> int:
    """Source row number (row of :func:`load_demo_frame`) embedded in a request id.

    All request ids made here end in ``-<row>``: ``acs-2016-070123``,
    ``ctl-0000042-012345``, ``ep-0000042-012345``.
    """
    return int(request_id.rsplit("-", 1)[1])


def _utc_ms(value: str | _dt.datetime | _dt.date | int) -> int:
    """Milliseconds since the epoch for a datetime/date/ISO string/int year."""
    if isinstance(value, int):
        value = _dt.datetime(value, 1, 1, tzinfo=_dt.timezone.utc)
    elif isinstance(value, str):
        value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return int(round(value.timestamp() * 1000))


def _from_ms(ms: int) -> _dt.datetime:
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=int(ms))


def _even_offsets(n: int, span_ms: int) -> np.ndarray:
    """``n`` integer ms offsets spread evenly over ``[0, span_ms)``."""
    return (np.arange(n, dtype=np.int64) * np.int64(span_ms)) // np.int64(max(n, 1))


def _timestamps(ms: np.ndarray) -> list[str]:
    """RFC 3339 UTC strings with milliseconds and ``Z``."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


def _assemble(
    positions: np.ndarray,
    ts_ms: np.ndarray,
    request_ids: Sequence[str],
    model_name: str,
    model_version: str,
) -> list[dict[str, Any]]:
    """Build record dicts for rows ``positions`` of :func:`_shuffled` (vectorised columns)."""
    s = _shuffled()
    proba = _probabilities()[positions]
    feature_cols: list[list[Any]] = [s[AGE_COLUMN].to_numpy(dtype=np.float64)[positions].tolist()]
    for c in CODE_COLUMNS:
        feature_cols.append(_CODE_STR[s[c].to_numpy(dtype=np.intp)[positions]].tolist())
    employed_pred = (proba >= 0.5).tolist()
    prob = np.round(proba, 6).tolist()
    label = (s[TARGET].to_numpy()[positions] == 1).tolist()
    ts = _timestamps(ts_ms)
    names = FEATURES
    return [
        {
            "model": model_name,
            "model_version": model_version,
            "timestamp": t,
            "request_id": rid,
            "features": dict(zip(names, fv)),
            "predictions": {"employed": e, "probability": p},
            "label": lab,
        }
        for t, rid, fv, e, p, lab in zip(ts, request_ids, zip(*feature_cols), employed_pred, prob, label)
    ]


def _year_positions(year: int) -> np.ndarray:
    """Positions in :func:`_shuffled` of the rows replayed for a data year."""
    s = _shuffled()
    mask = s["year"].to_numpy() == year
    if year == TRAIN_YEAR:
        mask &= (s["part"] == "holdout").to_numpy()
    pos = np.flatnonzero(mask)
    if len(pos) == 0:
        raise ValueError(f"no demo data for year {year} (available: {YEARS})")
    return pos


def _calendar_years(years: Iterable[int], start_year: int) -> list[tuple[int, int]]:
    ys = sorted({int(y) for y in years})
    return [(y, start_year + i) for i, y in enumerate(ys)]


def _year_span_ms(cal_year: int) -> tuple[int, int]:
    return _utc_ms(cal_year), _utc_ms(cal_year + 1)


def demo_records(
    model_name: str = "employment",
    model_version: str = "1",
    start_year: int = 2015,
    years: Sequence[int] = YEARS,
    seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield the demo prediction-log records in event-time order.

    * Data year 2015 contributes only the hold-out half (34,393 rows); 2016,
      2017 and 2018 contribute all their rows (69,126 / 69,635 / 70,131).
    * The data years in ``years`` are replayed in ascending order in
      consecutive calendar years starting at ``start_year`` (default: each
      data year in its own calendar year). Each year's rows are spread evenly
      over ``[Y-01-01T00:00Z, (Y+1)-01-01T00:00Z)``: the i-th of n rows gets
      ``Y-01-01 + floor(i * len(year) / n)`` ms.
    * ``seed`` sets the replay order within each year (a permutation of the
      year's rows); the train/hold-out split does not depend on it.
    * ``request_id`` is ``acs-<data year>-<source row, 6 digits>``, unique.
    * predictions come from :func:`default_model`; ``label`` is the observed
      ``employed``; ``latency_ms`` is omitted.

    Records are built one year at a time with vectorised columns, so the full
    stream (~243k records) takes a few seconds.
    """
    s = _shuffled()
    rows = s["row"].to_numpy()
    for data_year, cal_year in _calendar_years(years, start_year):
        pos = _year_positions(data_year)
        rng = np.random.default_rng([int(seed), data_year, 1])
        pos = pos[rng.permutation(len(pos))]
        lo, hi = _year_span_ms(cal_year)
        ts = lo + _even_offsets(len(pos), hi - lo)
        rids = [f"acs-{data_year}-{r:06d}" for r in rows[pos].tolist()]
        yield from _assemble(pos, ts, rids, model_name, model_version)


def control_records(
    model_name: str = "employment-control",
    model_version: str = "1",
    start_year: int = 2015,
    years: Sequence[int] = YEARS,
    seed: int = 0,
    n_per_year: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a stationary control stream: 2015 hold-out rows only.

    Covers the same time span as ``demo_records(start_year=..., years=...)``:
    one calendar year per entry of ``years``, with as many records per year as
    :func:`demo_records` emits for that data year (or ``n_per_year`` records
    per year if given), evenly spread. Every record is a row drawn with
    replacement (``np.random.default_rng`` seeded from ``seed``) from the 2015
    hold-out half, so the feature distribution never changes and a drift
    detector should flag nothing. ``request_id`` is
    ``ctl-<sequence, 7 digits>-<source row, 6 digits>``.
    """
    s = _shuffled()
    rows = s["row"].to_numpy()
    holdout = _year_positions(TRAIN_YEAR)
    seq = 0
    for data_year, cal_year in _calendar_years(years, start_year):
        n = int(n_per_year) if n_per_year is not None else len(_year_positions(data_year))
        rng = np.random.default_rng([int(seed), data_year, 2])
        pos = holdout[rng.integers(0, len(holdout), size=n)]
        lo, hi = _year_span_ms(cal_year)
        ts = lo + _even_offsets(n, hi - lo)
        rids = [f"ctl-{seq + i:07d}-{r:06d}" for i, r in enumerate(rows[pos].tolist())]
        seq += n
        yield from _assemble(pos, ts, rids, model_name, model_version)


@dataclass(frozen=True)
class Episode:
    """A generated drift episode: records plus its time boundaries (UTC).

    Timeline: ``[start, drift_start)`` stable 2015 hold-out rows,
    ``[drift_start, drift_end)`` rows of ``drift_year`` (the drift episode),
    ``[drift_end, end)`` 2015 hold-out rows again (recovery). ``drift_start``
    is the timestamp of the first drift record and ``drift_end`` that of the
    first recovery record.
    """

    records: list[dict[str, Any]]
    start: _dt.datetime
    drift_start: _dt.datetime
    drift_end: _dt.datetime
    end: _dt.datetime
    records_per_day: float
    drift_year: int

    def overlaps_drift(self, window_start: _dt.datetime, window_end: _dt.datetime) -> bool:
        """True when ``[window_start, window_end)`` contains drift-segment time."""
        return window_start < self.drift_end and window_end > self.drift_start

    def fully_drifted(self, window_start: _dt.datetime, window_end: _dt.datetime) -> bool:
        """True when ``[window_start, window_end)`` lies entirely inside the drift segment."""
        return window_start >= self.drift_start and window_end <= self.drift_end


def episode_records(
    model_name: str = "employment-episode",
    model_version: str = "1",
    n_stable: int = 12_000,
    n_drift: int = 9_000,
    n_recovery: int = 9_000,
    records_per_day: float = 3_000,
    start: str | _dt.datetime = "2024-01-01T00:00:00Z",
    drift_year: int = 2018,
    seed: int = 0,
) -> Episode:
    """Build a stable -> drift -> recovery stream for one model, for end-to-end tests.

    Records are evenly spaced at ``records_per_day`` (record i at
    ``start + floor(i * 86_400_000 / records_per_day)`` ms), contiguous across
    the three segments. With the defaults (12,000 stable, 9,000 drift and
    9,000 recovery records at 3,000 per day from 2024-01-01; 30,000 records
    in all) 1-day windows hold 3,000 records, the stable part is days 1-4,
    the drift episode is exactly ``[2024-01-05, 2024-01-08)`` and recovery
    is days 8-10.

    What to expect from a detector (measured against
    :func:`reference_frame`, chi-square of homogeneity for codes, KS for
    AGEP, on a few hundred random 3,000-record windows): the clear signal
    of 2018 vs 2015 is ``ANC`` (ancestry recode), with p < 1e-3 in 99.5-100 %
    of 2018 windows and 0.3-0.5 % of hold-out windows. The other features
    move little: at p < 0.05 each is flagged in 1-15 % of hold-out windows
    (MAR most often: the two fixed 2015 halves differ slightly in marital
    status by chance) and 3-39 % of 2018 windows (SCHL, AGEP most often).
    The number of features with p < 0.05 is 0.8 on average (range 0-4) on
    hold-out windows and 2.9 (range 1-9) on 2018 windows, so that count
    alone does not separate single windows; test on ANC, or with a small
    alpha. With 2,000-record windows ANC still has p < 1e-3 in 96 % of 2018
    windows.

    Stable and recovery rows are drawn from the 2015 hold-out half without
    replacement and disjoint from each other when ``n_stable + n_recovery``
    fits in it (34,393 rows), otherwise with replacement; drift rows are
    drawn from ``drift_year`` without replacement when they fit, otherwise
    with replacement. ``request_id`` is ``ep-<sequence>-<source row>``.
    """
    if min(n_stable, n_drift, n_recovery) < 0 or records_per_day <= 0:
        raise ValueError("segment sizes must be >= 0 and records_per_day > 0")
    rng = np.random.default_rng([int(seed), int(drift_year), 3])
    holdout = _year_positions(TRAIN_YEAR)
    drift_pool = _year_positions(drift_year)

    n_ref = n_stable + n_recovery
    if n_ref <= len(holdout):
        ref_pos = holdout[rng.permutation(len(holdout))[:n_ref]]
    else:
        ref_pos = holdout[rng.integers(0, len(holdout), size=n_ref)]
    if n_drift <= len(drift_pool):
        drift_pos = drift_pool[rng.permutation(len(drift_pool))[:n_drift]]
    else:
        drift_pos = drift_pool[rng.integers(0, len(drift_pool), size=n_drift)]
    pos = np.concatenate([ref_pos[:n_stable], drift_pos, ref_pos[n_stable:]]).astype(np.int64)

    t0 = _utc_ms(start)
    n = len(pos)

    def offset(i: int | np.ndarray) -> Any:
        return np.floor(np.asarray(i, dtype=np.float64) * _MS_PER_DAY / records_per_day).astype(np.int64)

    ts = t0 + offset(np.arange(n))
    rows = _shuffled()["row"].to_numpy()
    rids = [f"ep-{i:07d}-{r:06d}" for i, r in enumerate(rows[pos].tolist())]
    records = _assemble(pos, ts, rids, model_name, model_version)
    return Episode(
        records=records,
        start=_from_ms(t0),
        drift_start=_from_ms(t0 + int(offset(n_stable))),
        drift_end=_from_ms(t0 + int(offset(n_stable + n_drift))),
        end=_from_ms(t0 + int(offset(n))),
        records_per_day=float(records_per_day),
        drift_year=int(drift_year),
    )


# --------------------------------------------------------------------------
# simulated serving telemetry
# --------------------------------------------------------------------------

#: Median and log-space standard deviation of the simulated latency (log-normal).
SIMULATED_LATENCY_MEDIAN_MS = 40.0
SIMULATED_LATENCY_SIGMA = 0.35
#: Share of simulated requests answered with a 5xx status code.
SIMULATED_ERROR_SHARE = 0.003
#: Simulated replicas per model (pod names ``<model>-<i>``).
SIMULATED_REPLICAS = 3


def with_simulated_serving(records: Iterable[dict[str, Any]], seed: int = 0,
                           chunk: int = 4096) -> Iterator[dict[str, Any]]:
    """Yield ``records`` with SIMULATED serving telemetry added, for the serving dashboards.

    The ACS data has no serving telemetry; these values are made up, seeded and deterministic
    (same input order, same ``seed`` -> same values), and are labelled in every record by
    ``serving.simulated: true`` (a key the collector ignores). Each record gets

    * ``latency_ms``: log-normal, median :data:`SIMULATED_LATENCY_MEDIAN_MS` ms, log-space
      sigma :data:`SIMULATED_LATENCY_SIGMA` (rounded to 0.1 ms);
    * ``serving.status_code``: 200, or 500/503 for a :data:`SIMULATED_ERROR_SHARE` share;
    * ``serving.replica``: ``<model>-<i>``, ``i`` uniform in ``0 .. SIMULATED_REPLICAS - 1``;
    * ``serving.queue_ms``: exponential with mean 2 ms (rounded to 0.01 ms).

    Records are changed in place (new keys only) and yielded in input order, ``chunk`` at a
    time drawn vectorised from one ``np.random.default_rng([seed, 5])``.
    """
    rng = np.random.default_rng([int(seed), 5])
    it = iter(records)
    while True:
        batch = list(itertools.islice(it, chunk))
        if not batch:
            return
        n = len(batch)
        latency = np.round(SIMULATED_LATENCY_MEDIAN_MS * np.exp(rng.normal(0.0, SIMULATED_LATENCY_SIGMA, n)), 1)
        error = rng.random(n) < SIMULATED_ERROR_SHARE
        status = np.where(error, np.where(rng.random(n) < 0.5, 500, 503), 200)
        replica = rng.integers(0, SIMULATED_REPLICAS, n)
        queue = np.round(rng.exponential(2.0, n), 2)
        for rec, lat, code, rep, q in zip(batch, latency.tolist(), status.tolist(), replica.tolist(),
                                          queue.tolist()):
            rec["latency_ms"] = lat
            rec["serving"] = {"status_code": code, "replica": f"{rec['model']}-{rep}", "queue_ms": q,
                              "simulated": True}
        yield from batch
