"""Recompute the drift of closed windows from their stored profiles (``inferwatch backfill``).

After ``inferwatch reference set`` replaced a model version's reference, or after the
``drift`` settings changed, the windows already closed still carry the results of the old
reference and settings. :func:`backfill` compares each window's stored profile with the
model version's *current* reference under the *current* drift settings, through the same
:func:`inferwatch.pipeline.window_drift` a window's close uses, and replaces its
``drift_results`` rows and the drift columns of its ``windows`` row (status, n_columns,
n_drifted, drift_share, dataset_drifted, and the profile, rebinned on the current
reference's edges) in one transaction per window. Running it twice changes nothing the second
time.

What is stored. A closed window keeps a summary, not its rows: counts, missing values,
moments, the histogram on the bins of the reference it was closed against, the KLL quantile
sketch, and category counts (``windows.profile``, see
:func:`inferwatch.pipeline.window_statistics`). Its numeric columns' raw values, which the
two-sample tests need, are stored apart in ``window_samples`` (every finite value of the
column, or a uniform sample of them when the column had more than the profile's
``sample_size``) and deleted ``window.sample_retention_days`` after the window's end. The
recomputation is exact only when every value of the window is still known:

- a numeric column whose stored sample holds every finite value (``n_values`` equals the
  column's count: always for a window closed against a reference, whose sample capacity is
  ``window.max_records``, the segment size), or, once the sample is purged or was never
  stored, whose KLL sketch holds every value (at most ``k`` = 200, the sketch's exact mode);
- a categorical column whose category table was not capped (no ``__other__`` label).

The column's profile is then rebuilt from those values on the current reference's bins,
exactly as the window's close would build it. A window with a column that cannot be rebuilt
(a numeric column with more values than its stored sample and sketch keep, or whose sample
was purged, a capped table, a column whose kind the current reference changed, a reference
column the window was not profiled for) is left as it is and reported with the reason: its
statistics would otherwise be approximations stored as if they were tests.

Side effects. Backfill sends no notifications and changes no alert state (the windows are
past; an alert that should have fired then is history now), and it sets no Prometheus
gauges (they show the newest window the service closed). It writes only the rows of the
windows it recomputes, so it can run while the service is consuming; the stored samples are
read, never rewritten (the values do not depend on the reference).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from detectors import Profile
from detectors.profile import OTHER, build_profile, kind_of
from detectors.sketch import kll_load
from inferwatch.config import Settings
from inferwatch.pipeline import column_role, drift_config, window_drift, window_statistics
from inferwatch.store import Store, now_ms

#: ``windows`` columns a backfill replaces (besides the profile).
DRIFT_COLUMNS = ("status", "n_columns", "n_drifted", "drift_share", "dataset_drifted")


@dataclass(frozen=True)
class WindowOutcome:
    """What a backfill did, or would do, to one closed window.

    Attributes:
        window_id, model, model_version, window_start_ms, segment, record_count: the window.
        old_status, new_status: ``windows.status`` before and after (``new_status`` equals
            ``old_status`` when the window was kept).
        old_share, new_share: dataset drift share in [0, 1] before and after; None when no
            feature was evaluated.
        old_drifted, new_drifted: drifted features (distribution or missing share), sorted.
        changed: the recomputed drift differs from the stored one (written, unless a dry run).
        kept: why the window was left as it is (no reference, a summary that cannot be
            rebuilt exactly); None when it was recomputed.
    """

    window_id: int
    model: str
    model_version: str
    window_start_ms: int
    segment: int
    record_count: int
    old_status: str
    new_status: str
    old_share: float | None
    new_share: float | None
    old_drifted: tuple[str, ...]
    new_drifted: tuple[str, ...]
    changed: bool
    kept: str | None = None


class NotRebuildable(Exception):
    """A window's stored profile does not determine a column exactly (the message says why)."""


def backfill(settings: Settings, store: Store, model: str, since_ms: int, until_ms: int,
             model_version: str | None = None, dry_run: bool = False,
             on_window: Callable[[WindowOutcome], None] | None = None,
             on_start: Callable[[int], None] | None = None) -> list[WindowOutcome]:
    """Recompute the drift of the closed windows of ``model`` starting in ``[since_ms,
    until_ms)`` (UTC epoch ms) against the current reference and drift settings.

    Each window is read, recomputed and (unless ``dry_run``, and only when something changed)
    rewritten in its own transaction, so an interrupted backfill leaves every window either
    as it was or fully recomputed. No notifications, alert state or gauges are touched.

    Args:
        settings: validated configuration (its ``drift`` and ``window.max_records`` apply).
        store: the database.
        model: model name as stored.
        since_ms, until_ms: bounds on the window start, ``since_ms <= start < until_ms``.
        model_version: only this version; None for every version of the model.
        dry_run: compute and report, write nothing.
        on_window: called after each window with its outcome (progress).
        on_start: called once with the number of windows selected.

    Returns:
        One :class:`WindowOutcome` per window, oldest first.
    """
    cfg = drift_config(settings)
    sample_size = max(settings.window.max_records, 1)
    selected = store.windows_starting_between(model, model_version, since_ms, until_ms)
    if on_start is not None:
        on_start(len(selected))
    # version -> (reference stamp, its profile or why it cannot be read)
    references: dict[str, tuple[tuple[str, int], Profile | str]] = {}
    out = []
    for w in selected:
        # a dry run only reads: it takes no write lock (SQLite) a running service would wait for
        with store.engine.connect() if dry_run else store.transaction() as conn:
            found = store.window_with_results(conn, int(w["id"]))
            if found is None:  # removed meanwhile
                continue
            row, old_results = found
            version = row["model_version"]
            stamp = store.reference_stamp(conn, model, version)
            cached = references.get(version)
            if stamp is not None and (cached is None or cached[0] != stamp):
                try:
                    ref_profile = Profile.from_dict(store.get_reference(conn, model, version)[1])
                except (KeyError, ValueError) as exc:  # written by an older version
                    ref_profile = f"the stored reference cannot be read ({exc}); store it again with " \
                                  "inferwatch reference set"
                references[version] = cached = (stamp, ref_profile)
            old_drifted = _drifted(old_results)
            keep = dict(window_id=int(row["id"]), model=model, model_version=version,
                        window_start_ms=int(row["window_start_ms"]), segment=int(row["segment"]),
                        record_count=int(row["record_count"]), old_status=row["status"],
                        old_share=_float_or_none(row["drift_share"]), old_drifted=old_drifted)
            if stamp is None:
                outcome = WindowOutcome(**keep, new_status=row["status"], new_share=keep["old_share"],
                                        new_drifted=old_drifted, changed=False,
                                        kept=f"no reference for {model} version {version}")
            else:
                ref = cached[1]
                profile, reason = None, ref if isinstance(ref, str) else None
                try:
                    if reason is None:
                        samples = store.get_window_samples(conn, int(row["id"]))
                        profile = rebuild_profile(json.loads(row["profile"]), ref, sample_size,
                                                  closed_with_reference=row["status"] != "no_reference",
                                                  samples=samples,
                                                  no_samples=None if samples else _why_no_samples(settings, row))
                except NotRebuildable as exc:
                    reason = str(exc)
                except (KeyError, TypeError, ValueError) as exc:
                    reason = f"the stored profile cannot be read ({exc!r})"
                if profile is None:
                    outcome = WindowOutcome(**keep, new_status=row["status"], new_share=keep["old_share"],
                                            new_drifted=old_drifted, changed=False, kept=reason)
                else:
                    wd = window_drift(ref, profile, cfg, settings)
                    values = {"status": wd.status, "n_columns": wd.n_columns, "n_drifted": wd.n_drifted,
                              "drift_share": wd.share, "dataset_drifted": wd.dataset_drifted}
                    changed = (not _same_results(old_results, wd.results)
                               or any(not _same(row[k], v) for k, v in values.items()))
                    if changed and not dry_run:
                        store.replace_window_drift(conn, int(row["id"]),
                                                   {**values, "profile": json.dumps(window_statistics(profile, stamp))},
                                                   wd.results)
                    outcome = WindowOutcome(**keep, new_status=wd.status, new_share=wd.share,
                                            new_drifted=_drifted(wd.results), changed=changed)
        out.append(outcome)
        if on_window is not None:
            on_window(outcome)
    return out


def rebuild_profile(stored: Mapping, ref: Profile, sample_size: int, closed_with_reference: bool = True,
                    samples: Mapping[str, np.ndarray] | None = None, no_samples: str | None = None) -> Profile:
    """A window's profile on ``ref``'s bins, rebuilt from its stored summary (the ``windows.
    profile`` JSON): every reference column's values are recovered from the summary and
    profiled as the window's close profiles them (``build_profile(..., reference=ref,
    sample_size=window.max_records)``).

    Args:
        stored: the stored profile dict (``Profile.to_dict`` layout, samples possibly left out).
        ref: the current reference profile.
        sample_size: the windows' sample capacity (``max(window.max_records, 1)``).
        closed_with_reference: the window was closed against a reference, so its profile has
            every column that reference had; False for ``no_reference`` windows, whose profile
            has every column the window's records had (a reference column absent from it had
            no values).
        samples: the window's stored raw values per numeric column (``window_samples``,
            :meth:`inferwatch.store.Store.get_window_samples`); a column whose sample holds
            every finite value is rebuilt from it, the others from their quantile sketch.
        no_samples: why ``samples`` is empty (purged, not stored), added to the reason a
            column cannot be rebuilt; None: nothing to add.

    Raises:
        NotRebuildable: a column's values are not all in the summary (see the module docstring).
    """
    columns: dict = {}
    n_rows = int(stored["n_rows"])
    have = stored["columns"]
    for name, ref_col in ref.columns.items():
        kind = kind_of(ref_col)
        col = have.get(name)
        if col is None:
            if closed_with_reference:
                raise NotRebuildable(f"{_short(name)}: not in the stored profile (the reference the window was "
                                     "closed against had no such column)")
            values = pd.Series([None] * n_rows, dtype=object if kind == "categorical" else np.float64)
        elif col["kind"] != kind:
            raise NotRebuildable(f"{_short(name)}: stored as {col['kind']}, the reference now profiles it as {kind}")
        elif kind == "numeric":
            values = pd.Series(_numeric_values(name, col, (samples or {}).get(name), no_samples), dtype=np.float64)
        else:
            values = _categorical_values(name, col)
        columns.update(build_profile(pd.DataFrame({name: values}), {name: kind}, reference=ref,
                                     sample_size=sample_size).columns)
    return Profile(n_rows, columns)


def _numeric_values(name: str, col: Mapping, stored_sample: np.ndarray | None = None,
                    no_samples: str | None = None) -> np.ndarray:
    """Every value of a stored numeric column (finite values, then NaN for the missing ones and
    the infinities), or NotRebuildable. ``stored_sample``: the column's ``window_samples``
    values, if any; ``no_samples``: why there are none (for the message)."""
    count = int(col["count"])
    sample = col.get("sample")
    if stored_sample is not None and len(stored_sample) == count:
        finite = np.asarray(stored_sample, dtype=np.float64)
    elif sample is not None and len(sample) == count:
        finite = np.asarray(sample, dtype=np.float64)
    else:
        sketch = kll_load(base64.b64decode(col["kll"]))
        if sketch.is_estimation_mode() or sketch.n != count:
            kept = f"the stored quantile sketch keeps {sketch.k} exactly"
            if stored_sample is not None:
                kept += f", the stored sample a uniform {len(stored_sample)} of them"
            elif no_samples:
                kept += f"; {no_samples}"
            raise NotRebuildable(f"{_short(name)}: {count} values, {kept} (the two-sample tests need them all)")
        items = list(sketch) if count else []
        finite = np.repeat(np.array([v for v, _w in items], dtype=np.float64),
                           np.array([w for _v, w in items], dtype=np.int64)) if items else np.empty(0)
    return np.concatenate([finite, np.full(int(col["missing"]), np.nan),
                           np.full(int(col["posinf"]), np.inf), np.full(int(col["neginf"]), -np.inf)])


def _why_no_samples(settings: Settings, row: Mapping) -> str:
    """Why a window has no ``window_samples`` rows: purged after the retention, or not stored
    (``window.sample_retention_days`` 0 when it closed, or closed by an earlier version)."""
    days = settings.window.sample_retention_days
    if days and int(row["window_end_ms"]) < now_ms() - days * 86_400_000:
        return f"the window's raw values were purged after {days} days (window.sample_retention_days)"
    return "the window's raw values were not stored (window.sample_retention_days 0 when it closed)"


def _categorical_values(name: str, col: Mapping) -> pd.Series:
    """Every value of a stored categorical column (its labels, None for the missing ones), or
    NotRebuildable for a capped table."""
    counts: dict = col["counts"]
    if OTHER in counts:
        raise NotRebuildable(f"{_short(name)}: the stored category table was capped at {col['max_categories']} "
                             "labels")
    labels = np.repeat(np.array(list(counts), dtype=object), np.array(list(counts.values()), dtype=np.int64))
    return pd.Series(np.concatenate([labels, np.full(int(col["missing"]), None, dtype=object)]), dtype=object)


def _short(column: str) -> str:
    role, name = column_role(column)
    return name if role == "feature" else f"prediction {name}"


def _drifted(results: list[dict]) -> tuple[str, ...]:
    """Features whose distribution or missing share drifted, sorted (as the drift table shows)."""
    return tuple(sorted(column_role(r["column_name"])[1] for r in results
                        if r["role"] == "feature" and (_true(r.get("drifted")) or _true(r.get("missing_drifted")))))


def _true(value) -> bool:
    return value is not None and value == value and bool(value)


def _float_or_none(value) -> float | None:
    return None if value is None or value != value else float(value)


def _same(a, b) -> bool:
    """Stored and recomputed values equal (None and NaN alike; booleans and 0/1 alike)."""
    a_none = a is None or (isinstance(a, float) and math.isnan(a))
    b_none = b is None or (isinstance(b, float) and math.isnan(b))
    if a_none or b_none:
        return a_none and b_none
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return bool(a) == bool(b)
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return float(a) == float(b)
    return a == b


# a result dict leaves out the columns its test does not fill; the table's default for each
_RESULT_DEFAULTS = {"low_confidence": False}


def _same_results(old: list[dict], new: list[dict]) -> bool:
    """The stored drift_results rows equal the recomputed ones, column for column."""
    if len(old) != len(new):
        return False
    by_name = {r["column_name"]: r for r in new}
    for o in old:
        n = by_name.get(o["column_name"])
        if n is None:
            return False
        for key, value in o.items():
            if not _same(value, n.get(key, _RESULT_DEFAULTS.get(key))):
                return False
    return True

