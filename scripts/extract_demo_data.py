#!/usr/bin/env python
"""Build ``inferwatch/demo_data/acs_employment_ma.parquet`` from the nannyml wheel.

One-off, reproducible extraction of the demo dataset (see
``inferwatch/demo_data/README.md`` for provenance and licensing).

Input: the three parquet files shipped in the nannyml 0.13.1 wheel
(Apache-2.0) under ``nannyml/datasets/data/``:

* ``employment_MA_reference.pq``        68,785 rows, survey year 2015, with target
* ``employment_MA_analysis.pq``        208,892 rows, survey years 2016-2018, no target
* ``employment_MA_analysis_target.pq`` 208,892 rows, (id, employed) for the analysis rows

Output: ONE zstd-compressed parquet file with all 277,677 rows in source order
(reference rows first, then analysis rows; row number == nannyml ``id``) and
the columns ``year`` (int16), ``AGEP`` (float32), the 15 ACS code columns
(int8) and ``employed`` (int8). nannyml's own ``prediction`` and
``predicted_probability`` columns are dropped.

Usage::

    # obtain the wheel and unpack it (any directory works)
    pip download --no-deps nannyml==0.13.1 -d /tmp/nm
    cd /tmp/nm && mkdir -p x && cd x && unzip -q ../nannyml-0.13.1-py3-none-any.whl
    .venv/bin/python scripts/extract_demo_data.py --src /tmp/nm/x/nannyml/datasets/data

The script prints the SHA-256 of each input and of the output so a rerun can
be compared with the values recorded in the README.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SRC = Path("/tmp/nm/x/nannyml/datasets/data")
DEFAULT_OUT = REPO_ROOT / "inferwatch" / "demo_data" / "acs_employment_ma.parquet"

CODE_COLUMNS = [
    "SCHL", "MAR", "RELP", "DIS", "ESP", "CIT", "MIG", "MIL", "ANC",
    "NATIVITY", "DEAR", "DEYE", "DREM", "SEX", "RAC1P",
]
OUT_COLUMNS = ["year", "AGEP", *CODE_COLUMNS, "employed"]
EXPECTED_ROWS = {2015: 68_785, 2016: 69_126, 2017: 69_635, 2018: 70_131}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _codes_to_int8(s: pd.Series) -> pd.Series:
    """Category (string labels such as "16") -> int8, refusing anything odd."""
    if s.isna().any():
        raise ValueError(f"{s.name}: unexpected missing values")
    values = pd.to_numeric(s.astype(str), errors="raise").astype(np.int64)
    if values.min() < 0 or values.max() > 127:
        raise ValueError(f"{s.name}: code out of int8 range")
    return values.astype(np.int8)


def build(src: Path) -> pd.DataFrame:
    ref = pd.read_parquet(src / "employment_MA_reference.pq")
    ana = pd.read_parquet(src / "employment_MA_analysis.pq")
    tgt = pd.read_parquet(src / "employment_MA_analysis_target.pq")

    if len(ana) != len(tgt) or not np.array_equal(ana["id"].to_numpy(), tgt["id"].to_numpy()):
        # Fall back to a join on id if the target file were ever reordered.
        ana = ana.merge(tgt, on="id", how="left", validate="one_to_one")
    else:
        ana = ana.assign(employed=tgt["employed"].to_numpy())
    if ana["employed"].isna().any():
        raise ValueError("analysis rows without a target")

    df = pd.concat([ref, ana], ignore_index=True)
    if not np.array_equal(df["id"].to_numpy(), np.arange(len(df))):
        raise ValueError("source ids are not 0..n-1 in file order")

    out = pd.DataFrame(
        {
            "year": df["year"].astype(np.int16),
            "AGEP": df["AGEP"].astype(np.float32),
            **{c: _codes_to_int8(df[c]) for c in CODE_COLUMNS},
            "employed": df["employed"].astype(np.int8),
        }
    )[OUT_COLUMNS]

    if not np.array_equal(out["AGEP"].to_numpy(np.float64), df["AGEP"].to_numpy(np.float64)):
        raise ValueError("AGEP does not survive float32 exactly")
    if not set(np.unique(out["employed"])) <= {0, 1}:
        raise ValueError("employed is not 0/1")
    counts = out["year"].value_counts().sort_index().to_dict()
    if counts != EXPECTED_ROWS:
        raise ValueError(f"unexpected rows per year: {counts}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC,
                    help="directory holding the nannyml employment_MA_*.pq files")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    for name in ("employment_MA_reference.pq", "employment_MA_analysis.pq",
                 "employment_MA_analysis_target.pq"):
        print(f"in   {sha256(args.src / name)}  {name}")

    out = build(args.src)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # One row group, no pandas index; zstd at a high level (the file is
    # written once and read many times).
    out.to_parquet(args.out, engine="pyarrow", index=False, compression="zstd",
                   compression_level=19, row_group_size=len(out))
    print(f"out  {sha256(args.out)}  {args.out.name}")
    print(f"rows {len(out)}  bytes {args.out.stat().st_size}  "
          f"per year {out['year'].value_counts().sort_index().to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
