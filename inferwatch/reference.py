"""Reference profiles from training data files (``inferwatch reference set``).

File format (CSV or Parquet, chosen by suffix): one column per feature, named as the feature
is named in the prediction records; prediction columns named ``prediction.<name>`` (or
``predictions.<name>``); an optional ``label`` column, which is ignored for drift. Numeric
columns become numeric profiles; text and boolean columns, and columns listed in
``drift.categorical`` for the model, become categorical profiles.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from collector.decode import FEATURE_PREFIX, PREDICTION_PREFIX
from detectors import Profile, build_profile


def read_reference_file(path: str | Path) -> pd.DataFrame:
    """Training data as a frame with inferwatch's column names (``features.*``, ``predictions.*``).

    Raises:
        ValueError: unknown suffix, unreadable file, no feature/prediction columns, or no values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            raw = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raise ValueError(f"--file: {path} must end in .csv or .parquet")
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"--file: cannot read {path}: {exc}") from None
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
    frame = raw[list(renamed)].rename(columns=renamed)
    usable = [c for c in frame.columns if frame[c].notna().any()]
    if frame.empty or not usable:
        raise ValueError(f"--file: {path} has no rows with values; a reference needs training data")
    return frame


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
