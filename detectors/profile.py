"""Column profiles: the summary of one window that drift detection compares.

A profile is built once per window (reference or current) and is all the
detectors ever look at, so it must be small enough to store as JSON yet keep
what the statistics need: histogram counts for PSI / Jensen–Shannon, a raw
sample for the Kolmogorov–Smirnov test and the Wasserstein distance, and
category counts for the chi-square test.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from pandas.api import types as pdt

ColumnKind = Literal["numeric", "categorical"]

#: Name of the bucket that collects categories beyond ``max_categories``.
OTHER = "__other__"

#: Version tag written by :meth:`Profile.to_dict`; bump when the layout changes.
PROFILE_FORMAT = "inferwatch.profile/1"

_KINDS: tuple[str, ...] = get_args(ColumnKind)


def infer_kind(values: pd.Series) -> ColumnKind:
    """Decide whether a column is analysed as numeric or categorical.

    Args:
        values: one column, any length (only its dtype is inspected).

    Returns:
        ``"categorical"`` for bool (numpy ``bool`` and pandas ``boolean``),
        string (``str`` / ``string``), ``object`` and ``category`` dtypes;
        ``"numeric"`` for integer and float dtypes, including the pandas
        nullable ``Int*`` / ``UInt*`` / ``Float*`` dtypes.

    Raises:
        TypeError: for dtypes that are neither (datetime, timedelta, period,
            interval, complex, ...). Pass such columns with an explicit kind,
            or drop them, rather than have them guessed.
    """
    dtype = values.dtype
    # bool must be tested first: pandas counts it as a numeric dtype.
    if pdt.is_bool_dtype(dtype):
        return "categorical"
    if isinstance(dtype, pd.CategoricalDtype) or pdt.is_object_dtype(dtype) or pdt.is_string_dtype(dtype):
        return "categorical"
    if pdt.is_numeric_dtype(dtype) and not pdt.is_complex_dtype(dtype):
        return "numeric"
    raise TypeError(f"cannot infer a column kind for dtype {dtype!r}; pass it explicitly in `kinds`")


# --------------------------------------------------------------------------- profiles


@dataclass(eq=False)
class NumericProfile:
    """Summary of a numeric column in one window.

    Attributes:
        count: number of finite values (>= 0). Only these enter ``hist``,
            ``sample`` and the moments.
        missing: number of missing values (None, NaN, pandas NA).
        nonfinite: number of +inf / -inf values. ``count + missing +
            nonfinite`` is the number of rows in the window.
        mean: arithmetic mean of the finite values; None when ``count == 0``.
        std: *sample* standard deviation (ddof=1) of the finite values;
            None when ``count < 2`` (undefined there).
        min, max: smallest / largest finite value; None when ``count == 0``.
        edges: float64 array, shape ``(k + 1,)`` for ``k >= 1`` bins, strictly increasing,
            ``edges[0] == -inf`` and ``edges[-1] == +inf`` so every finite
            value falls in some bin. Bin ``i`` is the half-open interval
            ``[edges[i], edges[i+1])``.
        hist: int64 array, shape ``(k,)``, counts of finite values per
            bin; sums to ``count``.
        sample: float64 array, shape ``(min(count, sample_size),)``, raw
            finite values (all of them, in input order, when they fit;
            otherwise a seeded uniform subsample without replacement, kept in
            input order).

    Raises:
        ValueError: on construction, if the arrays are inconsistent (shapes,
            ordering, infinite outer edges, ``hist`` not summing to
            ``count``, non-finite sample values).
    """

    count: int
    missing: int
    nonfinite: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    edges: np.ndarray
    hist: np.ndarray
    sample: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        self.hist = np.asarray(self.hist, dtype=np.int64)
        self.sample = np.asarray(self.sample, dtype=np.float64)
        if self.count < 0 or self.missing < 0 or self.nonfinite < 0:
            raise ValueError("count, missing and nonfinite must be >= 0")
        if self.edges.ndim != 1 or self.edges.size < 2:
            raise ValueError("edges must be a 1-D array with at least 2 entries")
        if not (self.edges[0] == -np.inf and self.edges[-1] == np.inf):
            raise ValueError("outer edges must be -inf and +inf")
        if not np.all(np.diff(self.edges) > 0):
            raise ValueError("edges must be strictly increasing")
        if self.hist.shape != (self.edges.size - 1,):
            raise ValueError(f"hist has shape {self.hist.shape}, expected ({self.edges.size - 1},) for the edges")
        if np.any(self.hist < 0) or int(self.hist.sum()) != self.count:
            raise ValueError("hist must be non-negative and sum to count")
        if self.sample.ndim != 1 or self.sample.size > self.count or not np.all(np.isfinite(self.sample)):
            raise ValueError("sample must be 1-D, finite and no longer than count")

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays with ==, which is ambiguous.
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            (self.count, self.missing, self.nonfinite, self.mean, self.std, self.min, self.max)
            == (other.count, other.missing, other.nonfinite, other.mean, other.std, other.min, other.max)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.hist, other.hist)
            and np.array_equal(self.sample, other.sample)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, holds arrays


@dataclass
class CategoricalProfile:
    """Summary of a categorical column in one window.

    Attributes:
        count: number of non-missing values (>= 0); equals ``sum(counts)``.
        missing: number of missing values (None, NaN, pandas NA).
        counts: category label -> number of rows (> 0). Labels are strings:
            booleans become ``"true"`` / ``"false"``, integers and integral
            floats are written without a fraction (``3`` and ``3.0`` both give
            ``"3"``), other values use ``str()``. At most ``max_categories``
            labels are kept; the rest are summed under ``"__other__"``.
            Ordered by decreasing count, then label.

    Raises:
        ValueError: on construction, if counts are not positive or do not
            sum to ``count``.
    """

    count: int
    missing: int
    counts: dict[str, int]

    def __post_init__(self) -> None:
        self.counts = {str(k): int(v) for k, v in self.counts.items()}
        if self.count < 0 or self.missing < 0:
            raise ValueError("count and missing must be >= 0")
        if any(v <= 0 for v in self.counts.values()) or sum(self.counts.values()) != self.count:
            raise ValueError("category counts must be positive and sum to count")


ColumnProfile = NumericProfile | CategoricalProfile


def kind_of(profile: ColumnProfile) -> ColumnKind:
    """Return ``"numeric"`` or ``"categorical"`` for a column profile.

    Raises:
        TypeError: if ``profile`` is neither profile class.
    """
    if isinstance(profile, NumericProfile):
        return "numeric"
    if isinstance(profile, CategoricalProfile):
        return "categorical"
    raise TypeError(f"not a column profile: {type(profile).__name__}")


@dataclass
class Profile:
    """Profiles of every column of one window.

    Attributes:
        n_rows: number of rows in the window (>= 0).
        columns: column name -> :class:`NumericProfile` or
            :class:`CategoricalProfile`, in frame order.
    """

    n_rows: int
    columns: dict[str, ColumnProfile]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (``json.dumps(..., allow_nan=False)`` works).

        Arrays become lists. JSON has no infinity or NaN, so non-finite floats
        (the ±inf outer bin edges, and a mean/std that overflowed) are written
        as the strings ``"inf"``, ``"-inf"`` and ``"nan"``; missing statistics
        are ``null``. :meth:`from_dict` reverses this exactly (finite floats
        round-trip bit for bit through Python's ``json``).
        """
        columns: dict[str, Any] = {}
        for name, prof in self.columns.items():
            if isinstance(prof, NumericProfile):
                columns[name] = {
                    "kind": "numeric",
                    "count": prof.count,
                    "missing": prof.missing,
                    "nonfinite": prof.nonfinite,
                    "mean": _encode_float(prof.mean),
                    "std": _encode_float(prof.std),
                    "min": _encode_float(prof.min),
                    "max": _encode_float(prof.max),
                    "edges": [_encode_float(e) for e in prof.edges.tolist()],
                    "hist": prof.hist.tolist(),
                    "sample": prof.sample.tolist(),
                }
            else:
                columns[name] = {
                    "kind": "categorical",
                    "count": prof.count,
                    "missing": prof.missing,
                    "counts": dict(prof.counts),
                }
        return {"format": PROFILE_FORMAT, "n_rows": self.n_rows, "columns": columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Rebuild a profile written by :meth:`to_dict`.

        Raises:
            ValueError: unknown format tag or column kind, an undecodable float,
                or inconsistent column data.
            KeyError: a required field is absent.
        """
        if data.get("format") != PROFILE_FORMAT:
            raise ValueError(f"unsupported profile format {data.get('format')!r}; expected {PROFILE_FORMAT!r}")
        columns: dict[str, ColumnProfile] = {}
        for name, col in data["columns"].items():
            kind = col["kind"]
            if kind == "numeric":
                columns[name] = NumericProfile(
                    count=int(col["count"]),
                    missing=int(col["missing"]),
                    nonfinite=int(col["nonfinite"]),
                    mean=_decode_float(col["mean"]),
                    std=_decode_float(col["std"]),
                    min=_decode_float(col["min"]),
                    max=_decode_float(col["max"]),
                    edges=np.array([_decode_float(e) for e in col["edges"]], dtype=np.float64),
                    hist=np.array(col["hist"], dtype=np.int64),
                    sample=np.array(col["sample"], dtype=np.float64),
                )
            elif kind == "categorical":
                columns[name] = CategoricalProfile(
                    count=int(col["count"]), missing=int(col["missing"]), counts=dict(col["counts"])
                )
            else:
                raise ValueError(f"column {name!r}: unknown kind {kind!r}")
        return cls(n_rows=int(data["n_rows"]), columns=columns)


_NONFINITE_TOKENS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _encode_float(x: float | None) -> float | str | None:
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _decode_float(x: float | int | str | None) -> float | None:
    if x is None:
        return None
    if isinstance(x, str):
        if x not in _NONFINITE_TOKENS:
            raise ValueError(f"cannot decode float from {x!r}")
        return _NONFINITE_TOKENS[x]
    return float(x)


# --------------------------------------------------------------------------- building


def build_profile(
    frame: pd.DataFrame,
    kinds: Mapping[str, ColumnKind] | None = None,
    *,
    reference: Profile | None = None,
    n_bins: int = 10,
    sample_size: int = 50_000,
    max_categories: int = 200,
    seed: int = 0,
) -> Profile:
    """Profile every column of one window.

    Args:
        frame: the window, shape ``(n_rows, n_columns)``. Column labels are
            converted with ``str()`` and must stay unique.
        kinds: column name -> ``"numeric"`` / ``"categorical"``. A column not
            listed takes the kind it has in ``reference``, else
            :func:`infer_kind`. (So a current window whose column is entirely
            None — dtype object — is still profiled as numeric when the
            reference says so.)
        reference: the reference window's profile. When given, a numeric
            column is binned on the reference's edges (a current window must
            always be, so histograms line up bin for bin), and a categorical
            column keeps every category the reference names even past
            ``max_categories``.
        n_bins: number of quantile bins, >= 1, used when there is no
            reference edge set for the column. Edges are the quantiles of the
            finite values at ``k / n_bins`` for ``k = 1 .. n_bins - 1``,
            de-duplicated; a value that occupies two or more consecutive
            quantile points (an atom carrying at least one bin's worth of
            mass, e.g. the zeros of a 90%-zero column, or the single value of
            a constant column) also gets a bin of its own,
            ``[v, nextafter(v, +inf))``. Outer edges are -inf/+inf, so values
            beyond the reference range land in the outer bins. The result has
            at most ``2 * n_bins + 1`` bins; a column without finite values
            gets the single bin ``[-inf, +inf)``.
        sample_size: maximum length of each numeric ``sample``, >= 1.
        max_categories: maximum number of labels per categorical column,
            ``"__other__"`` included, >= 2.
        seed: seed for the subsample (``numpy.random.default_rng(seed)``,
            fresh for every column), so the same frame always gives the same
            profile.

    Returns:
        A :class:`Profile` with one entry per column of ``frame``.

    Raises:
        ValueError: bad parameters, duplicate column names, ``kinds`` naming a
            column not in ``frame`` or an unknown kind, a column declared
            numeric whose values are not numbers, or a reference column whose
            kind differs from the requested kind.
        TypeError: a column whose kind cannot be inferred (see
            :func:`infer_kind`).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be >= 1, got {sample_size}")
    if max_categories < 2:
        raise ValueError(f"max_categories must be >= 2, got {max_categories}")

    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate column names: {dupes}")
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(names))
    if unknown:
        raise ValueError(f"kinds names columns not in the frame: {unknown}")
    for name, kind in kinds.items():
        if kind not in _KINDS:
            raise ValueError(f"column {name!r}: kind must be one of {_KINDS}, got {kind!r}")

    ref_columns = reference.columns if reference is not None else {}
    columns: dict[str, ColumnProfile] = {}
    for i, name in enumerate(names):
        values = frame.iloc[:, i]
        ref_col = ref_columns.get(name)
        kind = kinds.get(name) or (kind_of(ref_col) if ref_col is not None else infer_kind(values))
        if ref_col is not None and kind_of(ref_col) != kind:
            raise ValueError(
                f"column {name!r}: requested kind {kind!r} but the reference profile is {kind_of(ref_col)!r}"
            )
        if kind == "numeric":
            ref_edges = ref_col.edges if isinstance(ref_col, NumericProfile) else None
            columns[name] = _numeric_profile(values, name, ref_edges, n_bins, sample_size, seed)
        else:
            keep = frozenset(ref_col.counts) - {OTHER} if isinstance(ref_col, CategoricalProfile) else frozenset()
            columns[name] = _categorical_profile(values, max_categories, keep)
    return Profile(n_rows=len(frame), columns=columns)


def _to_float64(values: pd.Series, name: str) -> np.ndarray:
    """Column as float64 with every kind of missing value turned into NaN."""
    if pdt.is_complex_dtype(values.dtype):
        raise ValueError(f"column {name!r}: complex values cannot be profiled as numeric")
    if not (pdt.is_numeric_dtype(values.dtype) or pdt.is_bool_dtype(values.dtype)):
        # object/str/category declared numeric, e.g. an all-None window.
        try:
            values = pd.to_numeric(values.astype(object), errors="raise")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"column {name!r} is declared numeric but holds non-numeric values: {exc}") from exc
    # Int64/Float64/boolean need na_value, or pd.NA cannot become a float.
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges from the quantiles of finite, non-empty ``x`` (see build_profile)."""
    q = np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1))
    # Equal neighbouring quantiles mean a point mass; give it its own bin so
    # a move off that value (or onto it) changes the histogram.
    atoms = np.unique(q[1:][q[1:] == q[:-1]])
    inner = np.concatenate([q[1:-1], atoms, np.nextafter(atoms, np.inf)])
    return np.unique(np.concatenate([[-np.inf], inner, [np.inf]]))


def _moments(x: np.ndarray) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean, sample std, min, max) of finite ``x``; None where undefined."""
    if x.size == 0:
        return None, None, None, None
    lo, hi = float(np.min(x)), float(np.max(x))
    # Sums of squares overflow float64 beyond ~1e154; rescale only then so
    # ordinary data gets numpy's exact results.
    scale = max(abs(lo), abs(hi))
    if scale > 1e150:
        y = x / scale
        mean = float(np.mean(y)) * scale
        std = float(np.std(y, ddof=1)) * scale if x.size >= 2 else None
    else:
        mean = float(np.mean(x))
        std = float(np.std(x, ddof=1)) if x.size >= 2 else None
    return mean, std, lo, hi


def _numeric_profile(
    values: pd.Series,
    name: str,
    ref_edges: np.ndarray | None,
    n_bins: int,
    sample_size: int,
    seed: int,
) -> NumericProfile:
    arr = _to_float64(values, name)
    missing_mask = np.isnan(arr)
    inf_mask = np.isinf(arr)
    x = arr[~(missing_mask | inf_mask)]
    count = int(x.size)

    if ref_edges is not None:
        edges = np.asarray(ref_edges, dtype=np.float64)
    elif count:
        edges = _quantile_edges(x, n_bins)
    else:
        edges = np.array([-np.inf, np.inf])
    # side="right": bin i holds edges[i] <= x < edges[i+1].
    idx = np.searchsorted(edges, x, side="right") - 1
    hist = np.bincount(idx, minlength=edges.size - 1).astype(np.int64)

    if count <= sample_size:
        sample = x.copy()
    else:
        chosen = np.random.default_rng(seed).choice(count, size=sample_size, replace=False)
        sample = x[np.sort(chosen)]

    mean, std, lo, hi = _moments(x)
    return NumericProfile(
        count=count,
        missing=int(missing_mask.sum()),
        nonfinite=int(inf_mask.sum()),
        mean=mean,
        std=std,
        min=lo,
        max=hi,
        edges=edges,
        hist=hist,
        sample=sample,
    )


def category_label(value: Hashable) -> str:
    """Normalise one non-missing value to its category label.

    ``True``/``False`` -> ``"true"``/``"false"``; integers and floats with an
    integral value -> decimal integer (``3``, ``3.0``, ``np.int8(3)`` ->
    ``"3"``); other floats -> shortest round-trip repr at their own precision
    (``np.float32(0.1)`` -> ``"0.1"``); anything else -> ``str(value)``.
    Labels from different types can coincide (``3`` and ``"3"``) and are then
    counted together.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return str(int(f))
        return str(value)
    return str(value)


def _categorical_profile(values: pd.Series, max_categories: int, keep: frozenset[str]) -> CategoricalProfile:
    missing_mask = values.isna().to_numpy(dtype=bool)
    present = values[~missing_mask]
    counts: Counter[str] = Counter()
    if pdt.is_object_dtype(present.dtype):
        # Python treats True == 1 == 1.0 as one dict key, so value_counts would
        # merge them in a mixed column; label each value first.
        counts.update(category_label(v) for v in present)
    else:
        for value, n in present.value_counts(dropna=True).items():
            if n:  # category dtype reports unused categories with count 0
                counts[category_label(value)] += int(n)
    return CategoricalProfile(
        count=int(present.size), missing=int(missing_mask.sum()), counts=_cap_categories(counts, max_categories, keep)
    )


def _cap_categories(counts: Mapping[str, int], max_categories: int, keep: frozenset[str]) -> dict[str, int]:
    """Keep the most frequent labels (and all of ``keep``), fold the rest into OTHER."""

    def order(item: tuple[str, int]) -> tuple[int, str]:
        return (-item[1], item[0])

    if len(counts) <= max_categories:
        return dict(sorted(counts.items(), key=order))
    kept = {k: n for k, n in counts.items() if k in keep}
    rest = sorted(((k, n) for k, n in counts.items() if k not in keep), key=order)
    budget = max(max_categories - 1 - len(kept), 0)
    kept.update(rest[:budget])
    folded = sum(n for _, n in rest[budget:])
    if folded:
        kept[OTHER] = kept.get(OTHER, 0) + folded
    return dict(sorted(kept.items(), key=order))
