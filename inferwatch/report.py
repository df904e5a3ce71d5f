"""HTML drift reports: one closed window against its reference, as Evidently's data-drift page
with inferwatch's own per-column verdict on top.

The store keeps profiles, not rows, so both frames handed to Evidently are rebuilt from them:

- categorical columns: each stored label repeated as often as it was counted (capped tables
  keep their ``__other__`` bucket as a label of its own), missing values as None;
- numeric columns of the reference: the reference's stored uniform sample;
- numeric columns of the window: its stored raw values (``window_samples``, kept
  ``window.sample_retention_days`` after the window's end): every value of the column when the
  sample holds them all (a window closed against a reference always does), otherwise a uniform
  sample of them, which the page's notes then say;
- numeric columns of a window whose raw values are not stored (purged, or not kept): its
  histogram on the reference's bin edges and its quantile sketch (KLL), so each bin gets as
  many values as it counted, placed at the sketch's quantiles over the bin's rank range: the
  window's values while the sketch holds all of them (up to about 200), otherwise within the
  sketch's rank error (about 1.5 % of the window), which is enough to move a
  Kolmogorov–Smirnov p-value of a large window by a factor of a few;
- a frame bigger than ``max_rows`` rows is scaled down to ``max_rows``, keeping each column's
  proportions of values, missing and infinite entries (largest-remainder rounding);
- each column is rebuilt on its own, so relations between columns within a row are not kept
  (Evidently's data-drift tests are per column and do not need them).

Evidently gets the column types inferwatch used (numeric profiles as numerical ``float64``,
categorical ones as categorical strings) through a ``DataDefinition`` and runs its default
tests (which differ from inferwatch's: see :mod:`detectors.evidently_rule`). The page's
header says how the frames were rebuilt, lists inferwatch's stored method, statistic, p-value
and verdict per column next to Evidently's, and names the columns where the two disagree:
inferwatch's verdict is the one its alerts fired on.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alerting.events import rfc3339
from detectors._checks import StatisticUndefined, neg_log10_p
from detectors.categorical import categorical_test, g_test
from detectors.drift import NUMERIC_TESTS
from detectors.sketch import kll_load
from inferwatch.times import parse_time

#: Default cap on the rows of each rebuilt frame (reference and window).
DEFAULT_MAX_ROWS = 50_000

#: Id of the HTML section holding inferwatch's verdict, inserted right after ``<body>``.
VERDICT_SECTION_ID = "inferwatch-verdict"

_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


class ReportError(ValueError):
    """A report cannot be made; ``flag`` is the command-line flag at fault (``--model``,
    ``--window`` or ``--model-version``) and the message names it and the fix."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class ColumnVerdict:
    """One column's verdict by inferwatch (as stored in ``drift_results``) and by Evidently.

    Attributes:
        column: stored column name, e.g. ``features.ANC``.
        role: ``"feature"`` or ``"prediction"``.
        kind: ``"numeric"`` or ``"categorical"`` (the reference profile's kind).
        method: inferwatch's test (``ks``, ``chi2``, ...).
        status: ``"ok"`` or ``"insufficient_data"``.
        statistic: the test statistic, or None.
        p_value, p_value_adjusted: raw and multiple-testing adjusted p-values in ``[0, 1]``,
            or None.
        threshold: the level the decision used (``alpha`` for p-values), or None.
        drifted: inferwatch's distribution verdict; None when not tested.
        missing_drifted: inferwatch's verdict on the missing share; None when not tested.
        evidently_test: Evidently's test name (e.g. ``Jensen-Shannon distance``), or None
            when Evidently did not test the column (no values on one side).
        evidently_score: Evidently's drift score (a p-value or a distance), or None.
        evidently_threshold: Evidently's threshold for that score, or None.
        evidently_drifted: Evidently's verdict, or None when it did not test the column.
    """

    column: str
    role: str
    kind: str
    method: str
    status: str
    statistic: float | None
    p_value: float | None
    p_value_adjusted: float | None
    threshold: float | None
    drifted: bool | None
    missing_drifted: bool | None
    evidently_test: str | None = None
    evidently_score: float | None = None
    evidently_threshold: float | None = None
    evidently_drifted: bool | None = None

    @property
    def inferwatch_drifted(self) -> bool:
        """Whether inferwatch called the column drifted (distribution or missing share)."""
        return bool(self.drifted) or bool(self.missing_drifted)

    @property
    def disagree(self) -> bool:
        """inferwatch and Evidently both tested the column and reached different verdicts."""
        return self.evidently_drifted is not None and self.status == "ok" and (
            self.evidently_drifted != self.inferwatch_drifted)


@dataclass
class WindowReport:
    """A built report.

    Attributes:
        window: the window's stored row (``windows`` table) without its profile.
        reference_version: the model-version key of the reference used (``"*"``: model-wide).
        reference_source: where the reference came from (e.g. ``file:train.csv``).
        reference_rows: rows the reference was built from.
        verdicts: one :class:`ColumnVerdict` per column of the window's drift results.
        notes: how the frames were rebuilt and which tests Evidently ran, one sentence each
            (shown on the page).
        html: the whole page.
        evidently_tests: ``"inferwatch"`` or ``"default"`` (see :func:`build_report`).
    """

    window: dict
    reference_version: str
    reference_source: str
    reference_rows: int
    verdicts: list[ColumnVerdict]
    notes: list[str] = field(default_factory=list)
    html: str = ""
    evidently_tests: str = "inferwatch"

    @property
    def window_id(self) -> int:
        """The window's id (as in ``inferwatch windows``)."""
        return int(self.window["id"])

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (UTF-8); returns the path. Raises OSError."""
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path


# --- finding the window --------------------------------------------------------------------

def parse_time_ms(text: str) -> int | None:
    """An RFC 3339 time (``2018-07-01T12:00:00Z``, ``2018-07-01``; no offset means UTC) as UTC
    epoch milliseconds, or None when ``text`` is not such a time."""
    try:
        return parse_time(text, durations=False)
    except ValueError:
        return None


def find_window(store, model: str, window: str, model_version: str | None = None) -> dict:
    """The closed window of ``model`` named by ``window``: its id, or an RFC 3339 time inside
    it (``window_start_ms <= t < window_end_ms``).

    Returns:
        The window's stored row (``Store.get_window``), ``profile`` included.

    Raises:
        ReportError: no closed window for the model (or version), no window with that id or
            containing that time, the id belongs to another model or version, the text is
            neither an id nor a time, or a time falls in windows of several versions or
            segments (the message lists their ids).
    """
    listed = store.list_windows(model)
    if listed.empty:
        others = sorted(set(store.list_windows().model))
        hint = f"models with closed windows: {', '.join(others)}" if others else "no model has a closed window yet"
        raise ReportError("--model", f"--model {model}: no closed window for model {model} ({hint})")
    if model_version is not None:
        listed = listed[listed.model_version == model_version]
        if listed.empty:
            versions = sorted(set(store.list_windows(model).model_version))
            raise ReportError("--model-version", f"--model-version {model_version}: model {model} has no closed "
                                                 f"window of that version (versions: {', '.join(versions)})")
    list_hint = f"its window ids are {_id_list(listed)}; list them with `inferwatch windows --model {model}`"
    text = window.strip()
    if text.isdigit():
        row = store.get_window(int(text))
        if row is None or row["model"] != model:
            raise ReportError("--window", f"--window {text}: no window {text} for model {model}; {list_hint}")
        if model_version is not None and row["model_version"] != model_version:
            raise ReportError("--window", f"--window {text}: window {text} is of version {row['model_version']}, "
                                          f"not {model_version}; drop --model-version or {list_hint}")
        return row
    at = parse_time_ms(text)
    if at is None:
        raise ReportError("--window", f"--window {text}: give a window id or an RFC 3339 time such as "
                                      f"2018-07-01T12:00:00Z; {list_hint}")
    inside = listed[(listed.window_start_ms <= at) & (at < listed.window_end_ms)]
    if inside.empty:
        first, last = int(listed.window_start_ms.min()), int(listed.window_end_ms.max())
        raise ReportError("--window", f"--window {text}: no closed window of model {model} contains {rfc3339(at)} "
                                      f"(its windows span {rfc3339(first)} to {rfc3339(last)}); {list_hint}")
    if len(inside) > 1:
        which = ", ".join(f"{int(r.id)} (version {r.model_version}, segment {int(r.segment)})"
                          for r in inside.itertuples())
        raise ReportError("--window", f"--window {text}: several windows contain {rfc3339(at)}: {which}; "
                                      "pass one of these ids, or --model-version")
    return store.get_window(int(inside.id.iloc[0]))


def _id_list(listed: pd.DataFrame) -> str:
    """Window ids with their start times, the first and last five of a long list."""
    items = [f"{int(r.id)} ({rfc3339(int(r.window_start_ms))[:16]}Z)" for r in listed.itertuples()]
    return ", ".join(items if len(items) <= 10 else items[:5] + ["…"] + items[-5:])


# --- rebuilding frames from profiles -------------------------------------------------------

def scale_counts(counts: list[int], total: int) -> list[int]:
    """``counts`` scaled to sum to ``total`` by largest-remainder rounding (ties to the first);
    ``counts`` itself when it already sums to ``total``. Non-negative ints in, same length out;
    all zeros when ``counts`` sums to 0."""
    have = sum(counts)
    if have == total or have == 0:
        return list(counts) if have == total else [0] * len(counts)
    exact = np.asarray(counts, dtype=np.float64) * (total / have)
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out.tolist()


def _sketch_values(column: dict, k: int) -> np.ndarray:
    """``k`` values standing for a numeric column kept as a quantile sketch and a histogram:
    each histogram bin gets its share of the ``k`` values (exact bin masses), placed at the
    sketch's quantiles evenly spread over the bin's rank range (the shape within the bin)."""
    if k == 0:
        return np.empty(0)
    sketch = kll_load(base64.b64decode(column["kll"]))
    # stored edges are numbers or "inf"/"-inf" (JSON has no infinity); float() reads both
    edges = np.array([float(e) for e in column["edges"]], dtype=np.float64)
    per_bin = scale_counts([int(h) for h in column["hist"]], k)
    inner = edges[1:-1].tolist()
    ranks = [0.0] + (list(sketch.get_cdf(inner, False))[:-1] if inner else []) + [1.0]
    out = []
    for i, h in enumerate(per_bin):
        if h == 0:
            continue
        lo, hi = ranks[i], max(ranks[i + 1], ranks[i])
        values = np.asarray(sketch.get_quantiles((lo + (np.arange(h) + 0.5) / h * (hi - lo)).tolist(), True))
        # the sketch's rank error can place a quantile just outside the bin the histogram counted it in
        out.append(np.clip(values, edges[i], np.nextafter(edges[i + 1], -np.inf)))
    return np.concatenate(out)


def frame_from_profile(profile: dict, columns: list[str], max_rows: int = DEFAULT_MAX_ROWS
                       ) -> tuple[pd.DataFrame, list[str]]:
    """Rows standing for a stored profile (``Profile.to_dict`` form, or a window's stored
    statistics without samples), for Evidently.

    Args:
        profile: the stored profile dict (``n_rows`` and ``columns``).
        columns: the columns to rebuild, each present in ``profile["columns"]``.
        max_rows: cap on the rows (>= 1); a bigger profile is scaled down keeping each column's
            proportions.

    Returns:
        ``(frame, notes)``: ``float64`` columns for numeric profiles (NaN missing, ±inf kept),
        text columns of the stored string labels for categorical ones (missing as None, or NaN
        in pandas' string dtype); ``notes`` says, one sentence each, what was approximated.
    """
    n_rows = int(profile["n_rows"])
    cols = {c: profile["columns"][c] for c in columns}
    n = min(n_rows, max_rows)
    # a uniform sample holds only so many values: fewer rows keep every column in proportion
    for c, p in cols.items():
        sample = p.get("sample")
        if p["kind"] == "numeric" and sample and len(sample) < int(p["count"]):
            n = min(n, len(sample) * n_rows // int(p["count"]))
    n = max(n, 1)
    notes = []
    if n < n_rows:
        notes.append(f"{n_rows:,} rows scaled down to {n:,}, keeping each column's proportions")
    sketched, padded = [], []
    data: dict[str, np.ndarray] = {}
    for c, p in cols.items():
        total = int(p["count"]) + int(p["missing"]) + int(p.get("posinf", 0)) + int(p.get("neginf", 0))
        size = n if total == n_rows else min(n, round(n * total / max(n_rows, 1)))
        if size < n:
            padded.append(c)
        if p["kind"] == "numeric":
            finite, missing, pos, neg = scale_counts(
                [int(p["count"]), int(p["missing"]), int(p["posinf"]), int(p["neginf"])], size)
            sample = p.get("sample")
            if sample:
                # a bottom-k sample is in random key order: any prefix is a uniform sample too
                values = np.asarray(sample[:finite], dtype=np.float64)
            else:
                values = _sketch_values(p, finite)
                sketched.append(c)
            values = np.concatenate([values, np.full(missing + n - size, np.nan), np.full(pos, np.inf),
                                     np.full(neg, -np.inf)])
        else:
            labels = list(p["counts"])
            scaled = scale_counts([int(p["counts"][k]) for k in labels] + [int(p["missing"])], size)
            values = np.empty(n, dtype=object)
            values[:] = None
            values[: sum(scaled[:-1])] = np.repeat(np.asarray(labels, dtype=object), scaled[:-1])
        data[c] = values
    if sketched:
        notes.append(f"{', '.join(sketched)}: rebuilt from the stored histogram and quantile sketch (closed "
                     "windows keep no raw values): exact bin counts, values within about 1.5 % in rank once a "
                     "window holds more than about 200, so p-values computed on them are approximate")
    if padded:
        notes.append(f"{', '.join(padded)}: counted on fewer rows than the window has (requests whose response "
                     "never came); the other rows are shown as missing")
    return pd.DataFrame(data, columns=columns), notes


# --- which tests Evidently runs --------------------------------------------------------------

#: ``evidently_tests`` values: inferwatch's tests where Evidently has them, or Evidently's defaults.
EVIDENTLY_TEST_CHOICES = ("inferwatch", "default")


def _inferwatch_stattest(name: str, label: str, kinds: list, test):
    """Register inferwatch's test ``test`` with Evidently as the stat test ``name``. Its score is
    ``-log10 p`` (raw p-value), drift when the score is at least the threshold: Evidently sorts
    its table by descending score and shows six decimals, so the strongest drift comes first
    and a p-value of 1e-40 does not print as 0."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest

    def run(reference: pd.Series, current: pd.Series, _feature_type, threshold: float) -> tuple[float, bool]:
        try:
            result = test(reference.dropna(), current.dropna())
            score = result.neg_log10_p if result.neg_log10_p is not None else neg_log10_p(result.p_value)
        except StatisticUndefined:
            score = 0.0  # undefined on these values (e.g. no spread on either side): no evidence of a change
        return float(score), bool(score >= threshold)

    register_stattest(StatTest(name=name, display_name=label, allowed_feature_types=kinds), default_impl=run)
    return name


def _counts(values: pd.Series) -> dict:
    return {str(k): int(v) for k, v in values.value_counts().items()}


@functools.cache
def inferwatch_stattests() -> dict[tuple[str, str], str]:
    """inferwatch's tests registered with Evidently (once per process): ``(column kind, stored
    method name)`` -> Evidently stat test name. Categorical columns (and numeric ones inferwatch
    tested over their few distinct values) get its test of homogeneity on the value counts,
    which picks chi-square, Fisher's exact test or merged rare categories as the pipeline does;
    numeric columns get its two-sample test of the same name."""
    from evidently.legacy.core import ColumnType

    both = [ColumnType.Categorical, ColumnType.Numerical]
    homogeneity = _inferwatch_stattest("inferwatch_homogeneity", "inferwatch chi-square (homogeneity), -log10 p",
                                       both, lambda r, c: categorical_test(_counts(r), _counts(c)))
    g = _inferwatch_stattest("inferwatch_g_test", "inferwatch G-test, -log10 p", both,
                             lambda r, c: g_test(_counts(r), _counts(c)))
    out = {(kind, m): homogeneity for kind in ("numeric", "categorical") for m in ("chi2", "fisher_exact")}
    out.update({(kind, "g_test"): g for kind in ("numeric", "categorical")})
    for method, test in NUMERIC_TESTS.items():
        out[("numeric", method)] = _inferwatch_stattest(
            f"inferwatch_{method}", f"inferwatch {method.replace('_', ' ')}, -log10 p", [ColumnType.Numerical],
            lambda r, c, test=test: test(r.to_numpy(np.float64), c.to_numpy(np.float64)))
    return out


def matching_tests(results: pd.DataFrame, kinds: dict[str, str]
                   ) -> tuple[dict[str, str], dict[str, float], str]:
    """Evidently stat tests and thresholds that repeat inferwatch's stored decision of one window.

    Each column gets inferwatch's own test, registered with Evidently
    (:func:`inferwatch_stattests`); a column inferwatch tested in Evidently mode
    (``evidently:<test>``) gets that Evidently test at its default threshold. inferwatch
    decides on multiple-testing adjusted p-values, Evidently on raw ones, so the p-value
    threshold of each family (features, predictions) is one that splits inferwatch's own raw
    p-values as its decision did: the geometric mean of the largest p-value of a column it
    called drifted and the smallest of one it did not; ``alpha / m`` (``m`` p-values in the
    family) when none drifted. Evidently's scores are ``-log10 p`` and its thresholds
    ``-log10`` of these levels. Its p-values come from the rebuilt data (numeric
    windows from their quantile sketch), so near the threshold the two can still disagree;
    the report lists such columns.

    Args:
        results: the window's ``drift_results`` rows (``Store.list_drift_results``).
        kinds: column -> ``"numeric"`` / ``"categorical"``.

    Returns:
        ``(methods, thresholds, note)``: column -> Evidently test name, column -> threshold on
        ``-log10 p``, and a sentence for the report saying what was chosen.
    """
    registered = inferwatch_stattests()
    methods: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    fallback: list[str] = []
    levels: dict[str, float] = {}
    for role, family in results.groupby("role", sort=True):
        p = family.p_value.astype(float)
        drifted = family.drifted.map(lambda d: bool(d) if d is not None and d == d else False).astype(bool)
        tested = p.notna() & family.method.map(lambda m: not str(m).startswith("evidently:"))
        rejected, kept = p[tested & drifted], p[tested & ~drifted]
        alpha = float(family.threshold.dropna().iloc[0]) if family.threshold.notna().any() else 0.001
        m = int(p.notna().sum() + family.missing_p_value.notna().sum())
        if rejected.empty:
            level = alpha / max(m, 1)
        elif kept.empty or kept.min() <= rejected.max():
            level = float(max(rejected.max() * 10, alpha)) if kept.empty else float(rejected.max())
        elif rejected.max() > 0:
            level = float(np.sqrt(rejected.max() * kept.min()))
        else:
            level = float(kept.min()) / 10
        levels[role] = min(max(level, 1e-300), 1.0)  # p-values of 0 on both sides: still a finite -log10
        for r in family.itertuples():
            method = str(r.method)
            if method.startswith("evidently:"):
                methods[r.column_name] = method.split(":", 1)[1]
                continue
            counterpart = registered.get((kinds.get(r.column_name, ""), method))
            if counterpart is None or r.status != "ok":
                fallback.append(r.column_name)
                continue
            methods[r.column_name] = counterpart
            thresholds[r.column_name] = -float(np.log10(levels[role]))
    note = ("Evidently ran inferwatch's own test of each column on the rebuilt data, scored as -log10 of its raw "
            "p-value, against a threshold that splits inferwatch's stored p-values as its multiple-testing adjusted "
            "decision did (p-value "
            + ", ".join(f"{_fmt(level)} for {role}s" for role, level in levels.items()) + ")")
    if fallback:
        note += f"; Evidently's default test for {', '.join(fallback)} (not tested by inferwatch or no such test)"
    return methods, thresholds, note


# --- the report ----------------------------------------------------------------------------

def build_report(store, model: str, window: str, model_version: str | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS, evidently_tests: str = "inferwatch") -> WindowReport:
    """Evidently's data-drift report of one closed window against its model's reference, with
    inferwatch's stored verdict per column in a section right after ``<body>``.

    Args:
        store: an opened ``inferwatch.store.Store``.
        model: the model's name.
        window: a window id or an RFC 3339 time inside the window (see :func:`find_window`).
        model_version: restricts the window to this version; None: any.
        max_rows: cap on the rows of each rebuilt frame (>= 100).
        evidently_tests: ``"inferwatch"``: Evidently runs, per column, the test inferwatch ran,
            at thresholds that reproduce inferwatch's decisions on its own
            p-values (see :func:`matching_tests`); ``"default"``: Evidently's default tests
            and thresholds.

    Raises:
        ValueError: ``max_rows`` below 100 or an unknown ``evidently_tests``.
        ReportError: see :func:`find_window`; also a window stored without drift results
            (no reference when it closed, or too few records to test), no reference stored
            now, or no column with values on both sides.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import _default_input_data_generator
    from evidently.legacy.metrics import DataDriftTable
    from evidently.presets import DataDriftPreset

    if max_rows < 100:
        raise ValueError(f"max_rows must be >= 100, got {max_rows}")
    if evidently_tests not in EVIDENTLY_TEST_CHOICES:
        raise ValueError(f"evidently_tests must be one of {', '.join(EVIDENTLY_TEST_CHOICES)}, got {evidently_tests!r}")
    row = find_window(store, model, window, model_version)
    wid, version = int(row["id"]), row["model_version"]
    fix = f"pick another window (`inferwatch windows --model {model}`)"
    if row["status"] == "no_reference":
        raise ReportError("--window", f"--window {window}: window {wid} of model {model} closed before the model had "
                                      f"a reference, so it has no drift results; set one with `inferwatch reference "
                                      f"set --model {model} --file TRAINING.csv` and report a later window, or {fix}")
    results = store.list_drift_results(wid)
    if row["status"] == "insufficient_data" or results.empty:
        raise ReportError("--window", f"--window {window}: window {wid} of model {model} has too few records to test "
                                      f"({int(row['record_count'])} records, status {row['status']}); {fix}")
    with store.engine.connect() as conn:
        stamp = store.reference_stamp(conn, model, version)
        found = store.get_reference(conn, model, version)
        ref_meta = None
        if stamp is not None:
            from inferwatch.store import reference_profiles as rp
            import sqlalchemy as sa

            ref_meta = conn.execute(sa.select(rp.c.source, rp.c.n_rows).where(
                (rp.c.model == model) & (rp.c.model_version == stamp[0]))).first()
    if found is None or ref_meta is None:
        raise ReportError("--model", f"--model {model}: no reference profile is stored for model {model} version "
                                     f"{version}; set one with `inferwatch reference set --model {model} --file "
                                     "TRAINING.csv`")
    ref_key, reference = found
    current = json.loads(row["profile"])
    notes: list[str] = []
    # the window's stored raw values stand in for the sketch (see the module docstring)
    whole, sampled = [], []
    for c, values in store.get_window_samples(None, wid).items():
        col = current["columns"].get(c)
        if col is None or col["kind"] != "numeric" or not len(values):
            continue
        col["sample"] = values.tolist()
        (whole if len(values) == int(col["count"]) else sampled).append(c)
    # which reference the stored results were computed against: recorded at close and by backfill
    # (windows stored before it was recorded: the one in place when the window closed)
    used = current.get("reference")
    if used is not None:
        replaced = (used["model_version"], int(used["created_at_ms"])) != tuple(stamp)
    else:
        replaced = stamp[1] > int(row["closed_at_ms"])
    if replaced:
        notes.append(f"the reference was replaced at {rfc3339(stamp[1])}, after inferwatch's numbers were computed "
                     "(at the window's close or its last backfill): Evidently compares with the new one, "
                     "inferwatch's numbers were computed against the earlier one; `inferwatch backfill` "
                     "recomputes them")
    kinds = {c: reference["columns"][c]["kind"] for c in results.column_name if c in reference["columns"]}
    usable, skipped = [], []
    for c, kind in kinds.items():
        cur = current["columns"].get(c)
        if cur is None or cur["kind"] != kind or int(cur["count"]) == 0 or int(reference["columns"][c]["count"]) == 0:
            skipped.append(c)
        else:
            usable.append(c)
    if not usable:
        raise ReportError("--window", f"--window {window}: no column of window {wid} has values on both sides; {fix}")
    if skipped:
        notes.append(f"not given to Evidently (no values in the window or the reference): {', '.join(skipped)}")
    ref_frame, ref_notes = frame_from_profile(reference, usable, max_rows)
    cur_frame, cur_notes = frame_from_profile(current, usable, max_rows)
    notes += [f"reference: {n}" for n in ref_notes] + [f"window: {n}" for n in cur_notes]
    if used := [c for c in whole if c in usable]:
        notes.append(f"window: {', '.join(used)}: from the window's stored raw values, which hold every value")
    if used := [c for c in sampled if c in usable]:
        notes.append(f"window: {', '.join(used)}: a uniform sample of the window's values (the window's stored "
                     "sample holds fewer values than the column had), so p-values computed on them are those of "
                     "the sample")
    notes.append("categorical columns are their stored category counts expanded to rows; each column is rebuilt on "
                 "its own, so relations between columns within a row are not kept")

    definition = DataDefinition(numerical_columns=[c for c in usable if kinds[c] == "numeric"],
                                categorical_columns=[c for c in usable if kinds[c] == "categorical"])
    if evidently_tests == "inferwatch":
        methods, thresholds, tests_note = matching_tests(results[results.column_name.isin(usable)], kinds)
        preset = DataDriftPreset(per_column_method=methods or None, per_column_threshold=thresholds or None)
    else:
        preset, tests_note = DataDriftPreset(), ("Evidently ran its default tests and thresholds (the test depends on "
                                                 "the reference size; see its page)")
    notes.insert(0, tests_note)
    snapshot = Report([preset]).run(Dataset.from_pandas(cur_frame, data_definition=definition),
                                               Dataset.from_pandas(ref_frame, data_definition=definition))
    # the table the page shows (the preset renders it; this returns the cached result)
    table = snapshot.context.get_legacy_metric(DataDriftTable(
        per_column_stattest=preset.per_column_method, per_column_stattest_threshold=preset.per_column_threshold),
        _default_input_data_generator, None)[0]
    by_column = table.drift_by_columns

    verdicts = []
    for r in results.itertuples():
        ev = by_column.get(r.column_name)
        verdicts.append(ColumnVerdict(
            column=r.column_name, role=r.role, kind=kinds.get(r.column_name, r.kind), method=r.method,
            status=r.status, statistic=_num(r.statistic), p_value=_num(r.p_value),
            p_value_adjusted=_num(r.p_value_adjusted), threshold=_num(r.threshold), drifted=_flag(r.drifted),
            missing_drifted=_flag(r.missing_drifted),
            evidently_test=None if ev is None else str(ev.stattest_name),
            evidently_score=None if ev is None else float(ev.drift_score),
            evidently_threshold=None if ev is None else float(ev.stattest_threshold),
            evidently_drifted=None if ev is None else bool(ev.drift_detected)))
    window_row = {k: v for k, v in row.items() if k != "profile"}
    rep = WindowReport(window_row, ref_key, ref_meta[0], int(ref_meta[1]), verdicts, notes,
                       evidently_tests=evidently_tests)
    rep.html = _insert_after_body(snapshot.get_html_str(as_iframe=False), verdict_section(rep, max_rows))
    return rep


def write_report(store, model: str, window: str, path: str | Path | None = None, model_version: str | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS, evidently_tests: str = "inferwatch") -> tuple[WindowReport, Path]:
    """:func:`build_report`, saved to ``path`` (default ``report-<model>-<window id>.html``, the
    model name made safe for a file name). Returns the report and the path written.

    Raises:
        ReportError: as :func:`build_report`.
        OSError: the file cannot be written.
    """
    rep = build_report(store, model, window, model_version, max_rows, evidently_tests)
    if path is None:
        path = Path(f"report-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}-{rep.window_id}.html")
    return rep, rep.save(path)


def _num(value) -> float | None:
    return None if value is None or value != value else float(value)


def _flag(value) -> bool | None:
    return None if value is None or value != value else bool(value)


def _insert_after_body(page: str, section: str) -> str:
    m = _BODY_OPEN.search(page)
    return section + page if m is None else page[: m.end()] + section + page[m.end():]


def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _verdict_word(drifted: bool | None) -> str:
    return "not tested" if drifted is None else ("drifted" if drifted else "not drifted")


_STYLE = """<style>
#inferwatch-verdict{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 24px;
 padding:16px 20px;border:1px solid #d0d7de;border-radius:8px;background:#fff;color:#1f2328}
#inferwatch-verdict h1{font-size:20px;margin:0 0 8px}
#inferwatch-verdict h2{font-size:16px;margin:16px 0 6px}
#inferwatch-verdict table{border-collapse:collapse;font-size:13px}
#inferwatch-verdict th,#inferwatch-verdict td{border-bottom:1px solid #e5e7eb;padding:3px 8px;text-align:left}
#inferwatch-verdict td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#inferwatch-verdict .drifted{color:#b42318;font-weight:600}
#inferwatch-verdict tr.disagree{background:#fff8e1}
#inferwatch-verdict dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:0}
#inferwatch-verdict dt{font-weight:600}
#inferwatch-verdict dd{margin:0}
#inferwatch-verdict ul{margin:4px 0;padding-left:20px}
</style>"""


def verdict_section(rep: WindowReport, max_rows: int = DEFAULT_MAX_ROWS) -> str:
    """The ``<section id="inferwatch-verdict">`` of a report: the window, the reference, how the
    frames were rebuilt, and per column inferwatch's stored verdict next to Evidently's. Every
    stored text is HTML-escaped. Rows carry ``data-column``, ``data-inferwatch-drifted`` and
    ``data-evidently-drifted`` (``true``/``false``/``none``) attributes for scripts."""
    e = html.escape
    w = rep.window
    drifted = [v for v in rep.verdicts if v.inferwatch_drifted]
    dataset = w["dataset_drifted"]
    share = w["drift_share"]
    verdict = "not decided" if dataset is None else ("DATASET DRIFT" if dataset else "no dataset drift")
    share_text = "" if share is None or share != share else f", drift share {share:.2f} of {w['n_columns']} features"
    ev_tested = [v for v in rep.verdicts if v.evidently_drifted is not None]
    ev_drifted = [v for v in ev_tested if v.evidently_drifted]
    disagree = [v for v in rep.verdicts if v.disagree]
    out = [_STYLE, f'<section id="{VERDICT_SECTION_ID}">',
           f"<h1>inferwatch drift report: model {e(w['model'])} version {e(w['model_version'])}, "
           f"window {int(w['id'])}</h1>", "<dl>",
           f"<dt>Window</dt><dd>{e(rfc3339(int(w['window_start_ms'])))} to {e(rfc3339(int(w['window_end_ms'])))}"
           f" (segment {int(w['segment'])}), {int(w['record_count']):,} records, closed at "
           f"{e(rfc3339(int(w['closed_at_ms'])))} ({e(w['close_reason'])})</dd>",
           f"<dt>Reference</dt><dd>{e(rep.reference_source)} ({rep.reference_rows:,} rows; version key "
           f"{e(rep.reference_version)})</dd>",
           f'<dt>inferwatch</dt><dd id="inferwatch-dataset-verdict"><span class="{"drifted" if dataset else ""}">'
           f"{verdict}</span>{e(share_text)}; drifted columns: "
           f"{e(', '.join(v.column for v in drifted)) or 'none'}</dd>",
           f"<dt>Evidently</dt><dd>{len(ev_drifted)} of {len(ev_tested)} columns drifted "
           f"({'inferwatch’s tests' if rep.evidently_tests == 'inferwatch' else 'its default tests'}"
           f"; its dataset drift needs half of them): {e(', '.join(v.column for v in ev_drifted)) or 'none'}</dd>",
           "</dl>",
           "<p><strong>Alerts fire on inferwatch's verdict</strong>: its tests and its multiple-testing adjusted "
           "p-values below, as stored when the window closed (or by its last backfill). Evidently's page further down tests data rebuilt from "
           "the stored profiles with "
           + ("inferwatch's own tests on raw p-values" if rep.evidently_tests == "inferwatch"
              else "its own default tests and thresholds")
           + "; it is a second opinion and a picture of the distributions, not what inferwatch alerted on.</p>"]
    if disagree:
        out.append('<p id="inferwatch-disagreements">Evidently disagrees on '
                   f"{len(disagree)} column(s); inferwatch alerted on its own verdict:</p><ul>")
        for v in disagree:
            out.append(f"<li>{e(v.column)}: inferwatch {_verdict_word(v.inferwatch_drifted)} "
                       f"({e(v.method)}, adjusted p-value {_fmt(v.p_value_adjusted)}, level {_fmt(v.threshold)}"
                       f"{', missing share drifted' if v.missing_drifted else ''}); Evidently "
                       f"{_verdict_word(v.evidently_drifted)} ({e(v.evidently_test or '')} "
                       f"{_fmt(v.evidently_score)}, threshold {_fmt(v.evidently_threshold)})</li>")
        out.append("</ul>")
    out.append(f"<h2>How Evidently's input was made (at most {max_rows:,} rows per side)</h2><ul>")
    out += [f"<li>{e(n)}</li>" for n in rep.notes]
    out.append("</ul><h2>Per column</h2><table><thead><tr><th>column</th><th>role</th><th>kind</th>"
               "<th>inferwatch test</th><th>statistic</th><th>p-value</th><th>adjusted p-value</th><th>level</th>"
               "<th>missing share</th><th>inferwatch</th><th>Evidently test</th><th>score</th><th>threshold</th>"
               "<th>Evidently</th></tr></thead><tbody>")
    for v in rep.verdicts:
        theirs = "none" if v.evidently_drifted is None else str(v.evidently_drifted).lower()
        attrs = (f' data-column="{e(v.column)}" data-inferwatch-drifted="{str(v.inferwatch_drifted).lower()}"'
                 f' data-evidently-drifted="{theirs}"')
        mine = "drifted" if v.inferwatch_drifted else ("not tested" if v.status != "ok" else "not drifted")
        missing = "–" if v.missing_drifted is None else _verdict_word(v.missing_drifted)
        out.append(
            f'<tr class="{"disagree" if v.disagree else ""}"{attrs}><td>{e(v.column)}</td><td>{e(v.role)}</td>'
            f"<td>{e(v.kind)}</td><td>{e(v.method)}</td><td class=num>{_fmt(v.statistic)}</td>"
            f"<td class=num>{_fmt(v.p_value)}</td><td class=num>{_fmt(v.p_value_adjusted)}</td>"
            f"<td class=num>{_fmt(v.threshold)}</td><td>{missing}</td>"
            f'<td class="inferwatch-verdict {"drifted" if v.inferwatch_drifted else ""}">{mine}</td>'
            f"<td>{e(v.evidently_test or '–')}</td><td class=num>{_fmt(v.evidently_score)}</td>"
            f"<td class=num>{_fmt(v.evidently_threshold)}</td>"
            f'<td class="evidently-verdict {"drifted" if v.evidently_drifted else ""}">'
            f"{_verdict_word(v.evidently_drifted)}</td></tr>")
    out.append("</tbody></table></section>")
    return "\n".join(out)
