"""Reference profiles from training data files (``inferwatch reference set``).

File format (CSV or Parquet, chosen by suffix): one column per feature, named as the feature
is named in the prediction records; prediction columns named ``prediction.<name>`` (or
``predictions.<name>``); an optional ``label`` column, which is ignored for drift. Numeric
columns become numeric profiles; text and boolean columns, and columns listed in
``drift.categorical`` for the model, become categorical profiles.

A CSV file must have one field per header name on every line and no header name twice. A new
reference is checked against the store (:func:`check_reference`) before it replaces anything.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from collector.decode import FEATURE_PREFIX, PREDICTION_PREFIX
from detectors import Profile, build_profile, kind_of


def read_reference_file(path: str | Path) -> pd.DataFrame:
    """Training data as a frame with inferwatch's column names (``features.*``, ``predictions.*``).

    Raises:
        ValueError: unknown suffix, unreadable file, no feature/prediction columns, or no values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            _check_csv_shape(path)
            raw = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raise ValueError(f"--file: {path} must end in .csv or .parquet")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"--file: cannot read {path}: {exc}") from None
    _refuse_duplicates(path, [str(c) for c in raw.columns])  # Parquet keeps duplicate names as they are
    renamed = {}
    for col in raw.columns:
        name = str(col)
        if name == "label":
            continue
        for prefix in ("prediction.", "predictions."):
            if name.startswith(prefix):
                renamed[col] = PREDICTION_PREFIX + name[len(prefix):]
                break
        else:
            renamed[col] = FEATURE_PREFIX + name
    if not renamed:
        raise ValueError(f"--file: {path} has no feature or prediction columns")
    # prediction.y and predictions.y are the same column
    _refuse_duplicates(path, [_file_name(c) for c in renamed.values()])
    frame = raw[list(renamed)].rename(columns=renamed)
    usable = [c for c in frame.columns if frame[c].notna().any()]
    if frame.empty or not usable:
        raise ValueError(f"--file: {path} has no rows with values; a reference needs training data")
    return frame


def _check_csv_shape(path: Path) -> None:
    """Refuse a CSV file whose header names a column twice or whose lines do not have one field
    per header name. pandas would rename a second ``a`` to ``a.1``, fill short lines with
    missing values and take the first field of long lines as the row index, all silently."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return  # empty file: read_csv names it
        _refuse_duplicates(path, header)
        empty = [i + 1 for i, name in enumerate(header) if not name.strip()]
        if empty:  # pandas would call them "Unnamed: i"
            raise ValueError(f"--file: {path} has a header without a name in column(s) "
                             f"{', '.join(map(str, empty))}; name every column as the records do")
        for row in reader:
            if row and len(row) != len(header):  # blank lines are skipped, as pandas does
                raise ValueError(f"--file: {path} line {reader.line_num} has {len(row)} fields, the header "
                                 f"{len(header)}; every line needs one field per column")


def _refuse_duplicates(path: Path, names: list[str]) -> None:
    twice = sorted(n for n, k in Counter(names).items() if k > 1)
    if twice:
        raise ValueError(f"--file: {path} names a column more than once: {', '.join(twice)}")


def _file_name(column: str) -> str:
    """A stored column name as the file names it: ``features.AGEP`` -> ``AGEP``,
    ``predictions.employed`` -> ``prediction.employed``."""
    if column.startswith(PREDICTION_PREFIX):
        return "prediction." + column[len(PREDICTION_PREFIX):]
    return column[len(FEATURE_PREFIX):] if column.startswith(FEATURE_PREFIX) else column


class ReferenceRefused(ValueError):
    """A new reference that :func:`check_reference` refuses.

    Attributes:
        conflict: True when it is refused because of the stored reference it would replace
            (columns dropped, a column's kind changed); forcing replaces it anyway. False when
            it can never be used (too few rows); forcing does not help.
    """

    def __init__(self, message: str, conflict: bool) -> None:
        super().__init__(message)
        self.conflict = conflict


def stored_reference(store: Any, conn: Any, model: str, model_version: str) -> dict | None:
    """The profile dict stored for exactly ``model``/``model_version`` (the one a new
    reference of that key replaces), or None; the model-wide ``'*'`` one only for ``'*'``."""
    found = store.get_reference(conn, model, model_version)
    return found[1] if found is not None and found[0] == model_version else None


def check_reference(profile: Profile, existing: Mapping[str, Any] | None, min_count: int,
                    force: bool = False) -> None:
    """Refuse a new reference that would switch drift detection off without anyone noticing.

    Args:
        profile: the new reference's profile (:func:`profile_frame`).
        existing: the profile dict it replaces (:func:`stored_reference`), or None.
        min_count: ``drift.min_count``, the fewest values a drift test runs with.
        force: replace ``existing`` even if columns are dropped or change kind.

    Raises:
        ReferenceRefused: fewer rows than ``min_count`` (never forcible); or, unless
            ``force``, columns of ``existing`` missing from the new one or of another kind
            (numeric or categorical), each named as in the file.
    """
    if profile.n_rows < min_count:
        raise ReferenceRefused(f"{profile.n_rows} rows; a reference needs at least drift.min_count ({min_count}) "
                               f"rows, or no drift test could ever run against it", conflict=False)
    if existing is None or force:
        return
    old = {c: p.get("kind") for c, p in existing.get("columns", {}).items()}
    dropped = [_file_name(c) for c in old if c not in profile.columns]
    changed = [f"{_file_name(c)} ({old[c]} -> {kind_of(p)})" for c, p in profile.columns.items()
               if c in old and old[c] != kind_of(p)]
    problems = ([f"drops column(s) of the stored reference: {', '.join(dropped)}"] if dropped else []) + (
        [f"changes the kind of column(s): {', '.join(changed)}"] if changed else [])
    if problems:
        # windows would no longer be tested on those columns, silently
        raise ReferenceRefused("; ".join(problems), conflict=True)


def profile_frame(frame: pd.DataFrame, categorical: set[str], n_bins: int, sample_size: int) -> Profile:
    """Build a reference profile; ``categorical`` names columns (without prefix) forced categorical."""
    kinds = {}
    for col in frame.columns:
        name = col.split(".", 1)[1]
        s = frame[col]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        # a numeric column forced categorical is labelled by the detectors ("3" for 3 and 3.0)
        kinds[col] = "numeric" if numeric and name not in categorical else "categorical"
    return build_profile(frame, kinds, n_bins=n_bins, sample_size=sample_size)
