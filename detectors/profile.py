"""Column profiles: the mergeable summary of one window that drift detection compares.

A profile is built once per window (reference or current) and is all the
detectors ever look at, so it must be small enough to store as JSON yet keep
what the statistics need: histogram counts for PSI / Jensen–Shannon, a raw
sample for the Kolmogorov–Smirnov test and the Wasserstein distance, moments,
a KLL quantile sketch, and category counts (by label, and by hash bucket for
tables too large to keep whole) for the chi-square test.

Profiles are mergeable: :func:`merge_profiles` of the profiles of two
disjoint sets of rows (built against the same reference, with row ids that
identify rows across both) equals the profile of their concatenation — exactly
for counts, histograms, categories and samples, to float64 rounding for the
moments, and exactly for KLL quantiles while the sketch holds every value.
This lets several collectors share a window and lets :func:`build_profile_chunks`
profile a reference far larger than memory.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pandas.api import types as pdt

from .sketch import (
    bottom_k,
    kll_load,
    kll_merge,
    kll_rank_error,
    kll_sketch,
    label_buckets,
    merge_moments,
    misra_gries,
    moment_scale,
    moments,
    row_keys,
    sample_candidates,
)

ColumnKind = Literal["numeric", "categorical"]

#: Name of the bucket that collects categories beyond ``max_categories``.
OTHER = "__other__"

#: Version tag written by :meth:`Profile.to_dict`; bump when the layout changes.
PROFILE_FORMAT = "inferwatch.profile/3"

#: Defaults shared by :func:`build_profile` and :func:`build_profile_chunks`.
DEFAULT_SAMPLE_SIZE = 50_000
DEFAULT_MAX_CATEGORIES = 200
DEFAULT_KLL_K = 200
#: A numeric reference column with at most this many distinct finite values gets one bin per
#: value; the same default as ``DriftConfig.discrete_max_values``.
DEFAULT_DISCRETE_MAX_VALUES = 20
#: Number of hash buckets every categorical profile counts its labels into.
CATEGORY_BUCKETS = 128

#: Spellings of true and false read as the reference's ``"true"`` / ``"false"``
#: (see :func:`build_profile`); 1 and 1.0 are labelled ``"1"`` by category_label.
_TRUE_SPELLINGS = frozenset({"true", "True", "TRUE", "1"})
_FALSE_SPELLINGS = frozenset({"false", "False", "FALSE", "0"})

_KINDS: tuple[str, ...] = get_args(ColumnKind)
_ALL_REAL = np.array([-np.inf, np.inf])


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
    """Mergeable summary of a numeric column in one window.

    Attributes:
        count: number of finite values (>= 0). Only these enter ``hist``,
            ``sample``, ``kll`` and the moments.
        missing: number of rows without a value: None, pandas NA and float
            NaN (pandas stores None as NaN in a float64 column).
        nan: how many of the ``missing`` rows were a float NaN rather than
            None / pandas NA, ``0 <= nan <= missing``. Only an ``object``
            column can tell the two apart: in a float64 column every missing
            value is NaN, and pandas' nullable dtypes turn NaN into NA.
        posinf, neginf: number of +inf / -inf values. ``count + missing +
            posinf + neginf`` is the number of rows in the window.
        min, max: smallest / largest finite value; None when ``count == 0``.
        mean: arithmetic mean of the finite values; None when ``count == 0``.
        m2: sum of squared deviations from the mean, in units of
            ``moment_scale``: ``sum((x - mean)**2) == m2 * moment_scale**2``;
            0.0 when ``count == 0``. Merged with Chan et al. (1979), see
            :func:`detectors.sketch.merge_moments`.
        moment_scale: a power of two, 1.0 unless the largest ``|x|`` is above
            ``2**500`` or below ``2**-500`` (then the moments are kept in scaled
            units so the squares neither overflow nor underflow; see
            :func:`detectors.sketch.moment_scale`).
        edges: float64 array, shape ``(k + 1,)`` for ``k >= 1`` bins, strictly
            increasing, ``edges[0] == -inf`` and ``edges[-1] == +inf`` so every
            finite value falls in some bin. Bin ``i`` is the half-open
            interval ``[edges[i], edges[i+1])``.
        hist: int64 array, shape ``(k,)``, counts of finite values per bin;
            sums to ``count``.
        sample_size: the sample's capacity ``s >= 1``.
        sample: float64 array, shape ``(min(count, s),)``: the finite values
            of the ``s`` rows with the smallest sampling keys (bottom-k
            sampling), ordered by (key, value). A uniform sample without
            replacement of the finite values; all of them when they fit.
        sample_keys: uint64 array, same shape: the rows' sampling keys (see
            :func:`detectors.sketch.row_keys`). Samples of two columns of the
            same window join row for row on these keys; when neither column
            has missing or infinite values the two arrays are identical.
        kll: serialised ``datasketches.kll_doubles_sketch`` of the finite
            values; see :meth:`quantiles`.

    Equality compares every field exactly, except ``kll`` once it has
    compacted (``count`` above its capacity, about ``k``): datasketches
    compacts with random coin flips, so two sketches of the same values then
    differ in which values they retain; they compare equal when they have
    the same ``k``, ``n``, min and max. While the sketch holds every value,
    equality compares those values.

    Raises:
        ValueError: on construction, if the fields are inconsistent (negative
            counts, ``nan > missing``, shapes, edge ordering or finite outer
            edges, ``hist`` not summing to ``count``, a sample of the wrong
            length, non-finite or not in key order, a sketch whose ``n`` is not
            ``count``).
    """

    count: int
    missing: int
    nan: int
    posinf: int
    neginf: int
    min: float | None
    max: float | None
    mean: float | None
    m2: float
    edges: np.ndarray
    hist: np.ndarray
    sample: np.ndarray = field(repr=False)
    sample_keys: np.ndarray = field(repr=False)
    kll: bytes = field(repr=False)
    sample_size: int = DEFAULT_SAMPLE_SIZE
    moment_scale: float = 1.0

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        self.hist = np.asarray(self.hist, dtype=np.int64)
        self.sample = np.asarray(self.sample, dtype=np.float64)
        self.sample_keys = np.asarray(self.sample_keys, dtype=np.uint64)
        self.kll = bytes(self.kll)
        if min(self.count, self.missing, self.nan, self.posinf, self.neginf) < 0:
            raise ValueError("count, missing, nan, posinf and neginf must be >= 0")
        if self.nan > self.missing:
            raise ValueError("nan counts a subset of missing, so it cannot exceed it")
        if self.sample_size < 1:
            raise ValueError(f"sample_size must be >= 1, got {self.sample_size}")
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
        if self.sample.shape != (min(self.count, self.sample_size),) or self.sample_keys.shape != self.sample.shape:
            raise ValueError("sample and sample_keys must both have min(count, sample_size) entries")
        if not np.all(np.isfinite(self.sample)):
            raise ValueError("sample values must be finite")
        if self.sample.size > 1:
            k, v = self.sample_keys, self.sample
            if not np.all((k[1:] > k[:-1]) | ((k[1:] == k[:-1]) & (v[1:] >= v[:-1]))):
                raise ValueError("sample must be ordered by (key, value)")
        if (self.mean is None) != (self.count == 0):
            raise ValueError("mean must be None exactly when count == 0")
        if not (self.m2 >= 0 and math.isfinite(self.m2)):
            raise ValueError("m2 must be finite and >= 0")
        if self.moment_scale <= 0 or math.frexp(self.moment_scale)[0] != 0.5:
            raise ValueError("moment_scale must be a positive power of two")
        try:
            n = kll_load(self.kll).n
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"kll is not a serialised KLL sketch: {exc}") from None
        if n != self.count:
            raise ValueError(f"kll sketch holds {n} values but count is {self.count}")

    @property
    def nonfinite(self) -> int:
        """Number of +inf and -inf values, ``posinf + neginf``."""
        return self.posinf + self.neginf

    @property
    def variance(self) -> float | None:
        """Sample variance ``M2 / (count - 1)`` (ddof=1); None when ``count < 2``.

        May be +inf when the spread exceeds float64 (values near 1e308).
        """
        if self.count < 2:
            return None
        return self.m2 / (self.count - 1) * self.moment_scale**2

    @property
    def std(self) -> float | None:
        """Sample standard deviation ``sqrt(M2 / (count - 1))`` (ddof=1); None when ``count < 2``."""
        if self.count < 2:
            return None
        return math.sqrt(self.m2 / (self.count - 1)) * self.moment_scale

    @property
    def kll_k(self) -> int:
        """The KLL sketch's parameter ``k``."""
        return int(kll_load(self.kll).k)

    @property
    def quantile_rank_error(self) -> float:
        """Bound on the normalised rank error of :meth:`quantiles`.

        0.0 while the KLL sketch holds every value (``count`` up to about its
        ``k``); otherwise datasketches' ``get_normalized_rank_error(k, False)``,
        a bound that holds with 99% confidence (0.0133 for ``k = 200``), plus a
        tenth of it for the grouping of large windows (see
        :func:`detectors.sketch.kll_sketch`).
        """
        sketch = kll_load(self.kll)
        return 1.1 * kll_rank_error(sketch.k) if sketch.is_estimation_mode() else 0.0

    def quantiles(self, qs: ArrayLike) -> np.ndarray:
        """Quantiles of the finite values from the KLL sketch.

        The ``q``-quantile is the inverse of the empirical distribution
        function without interpolation: the ``ceil(q * count)``-th smallest
        value (the minimum for ``q = 0``), as ``numpy.quantile(x, q,
        method="inverted_cdf")``. Exact while the sketch holds every value;
        beyond that the returned value's rank is within
        :attr:`quantile_rank_error` ``* count`` of the requested rank.

        Args:
            qs: probabilities, any shape, each in ``[0, 1]``.

        Returns:
            float64 array of the shape of ``qs``.

        Raises:
            ValueError: a probability outside ``[0, 1]`` or NaN, or
                ``count == 0`` (no value to take a quantile of).
        """
        q = np.asarray(qs, dtype=np.float64)
        if not np.all((q >= 0) & (q <= 1)):
            raise ValueError("quantile probabilities must lie in [0, 1]")
        if self.count == 0:
            raise ValueError("no finite values: quantiles are undefined")
        sketch = kll_load(self.kll)
        flat = sketch.get_quantiles(q.ravel().tolist(), True)
        return np.asarray(flat, dtype=np.float64).reshape(q.shape)

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays with ==, which is ambiguous.
        if not isinstance(other, NumericProfile):
            return NotImplemented
        scalars = ("count", "missing", "nan", "posinf", "neginf", "min", "max", "mean", "m2", "sample_size", "moment_scale")
        return (
            all(getattr(self, a) == getattr(other, a) for a in scalars)
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.hist, other.hist)
            and np.array_equal(self.sample, other.sample)
            and np.array_equal(self.sample_keys, other.sample_keys)
            and _kll_equal(self.kll, other.kll)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, holds arrays


def _kll_equal(a: bytes, b: bytes) -> bool:
    """KLL sketch equality as documented on :class:`NumericProfile`."""
    if a == b:
        return True
    sa, sb = kll_load(a), kll_load(b)
    if (sa.k, sa.n, sa.is_estimation_mode()) != (sb.k, sb.n, sb.is_estimation_mode()):
        return False
    if sa.is_empty():
        return True
    if sa.is_estimation_mode():
        return (sa.get_min_value(), sa.get_max_value()) == (sb.get_min_value(), sb.get_max_value())
    # Exact mode: the same values, whatever order they were inserted in.
    return sorted(v for v, _ in sa) == sorted(v for v, _ in sb)


@dataclass(eq=False)
class CategoricalProfile:
    """Mergeable summary of a categorical column in one window.

    Attributes:
        count: number of non-missing values (>= 0); equals ``sum(counts)``.
        missing: number of rows without a value: None, NaN, pandas NA, and
            float +inf / -inf (an infinite float is not a category; the
            string ``"inf"`` is an ordinary label).
        counts: category label -> number of rows (> 0). Labels are strings
            (see :func:`category_label`): booleans become ``"true"`` /
            ``"false"``, integers and integral floats are written without a
            fraction (``3`` and ``3.0`` both give ``"3"``), other values use
            ``str()``. At most ``max_categories`` labels are kept; the rest
            are summed under ``"__other__"`` (see :func:`build_profile` for
            which are kept). Ordered by decreasing count, then label.
        max_categories: the cap the table was built with, >= 2. A window
            built against a reference also keeps every label the reference
            names, so it can hold more labels than this.
        buckets: int64 array, shape ``(n_buckets,)`` (``CATEGORY_BUCKETS`` =
            128 when built here): the non-missing values counted per hash
            bucket of their label,
            :func:`detectors.sketch.label_buckets`, over *all* labels before
            any were folded into ``"__other__"``; sums to ``count``. The
            drift tests read these instead of ``counts`` when a table is
            capped: the labels a capped table keeps were chosen by their own
            counts, so they would look drifted in any stable window. May be
            omitted (None) for an uncapped table, and is then computed from
            ``counts``.

    Equality compares every field, ``buckets`` included.

    Raises:
        ValueError: on construction, if counts are not positive or do not
            sum to ``count``, ``max_categories < 2``, or ``buckets`` is
            omitted for a capped table, negative, does not sum to ``count``,
            or disagrees with the named labels (an uncapped table's buckets
            must equal those of its counts; a capped table's must be at least
            those of its named labels).
    """

    count: int
    missing: int
    counts: dict[str, int]
    max_categories: int = DEFAULT_MAX_CATEGORIES
    buckets: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.counts = {str(k): int(v) for k, v in self.counts.items()}
        if self.count < 0 or self.missing < 0:
            raise ValueError("count and missing must be >= 0")
        if any(v <= 0 for v in self.counts.values()) or sum(self.counts.values()) != self.count:
            raise ValueError("category counts must be positive and sum to count")
        if self.max_categories < 2:
            raise ValueError(f"max_categories must be >= 2, got {self.max_categories}")
        capped = OTHER in self.counts
        if self.buckets is None:
            if capped:
                raise ValueError("a capped category table (with '__other__') needs its bucket counts")
            self.buckets = label_buckets(self.counts, CATEGORY_BUCKETS)
            return
        self.buckets = np.asarray(self.buckets, dtype=np.int64)
        if self.buckets.ndim != 1 or self.buckets.size < 1:
            raise ValueError("buckets must be a 1-D array with at least 1 entry")
        if np.any(self.buckets < 0) or int(self.buckets.sum()) != self.count:
            raise ValueError("bucket counts must be non-negative and sum to count")
        named = label_buckets({k: n for k, n in self.counts.items() if k != OTHER}, self.buckets.size)
        if (np.any(named > self.buckets)) if capped else (not np.array_equal(named, self.buckets)):
            raise ValueError("bucket counts disagree with the category counts")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        return (
            (self.count, self.missing, self.counts, self.max_categories)
            == (other.count, other.missing, other.counts, other.max_categories)
            and np.array_equal(self.buckets, other.buckets)  # type: ignore[arg-type]
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, holds an array


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

        Arrays become lists, except ``sample_keys`` (little-endian uint64) and
        the KLL sketch, which are base64 text. JSON has no infinity or NaN, so
        non-finite floats (the ±inf outer bin edges) are written as the
        strings ``"inf"``, ``"-inf"`` and ``"nan"``; missing statistics are
        ``null``. ``"std"`` is written for readers and ignored by
        :meth:`from_dict`, which reverses the rest exactly (finite floats
        round-trip bit for bit through Python's ``json``).
        """
        columns: dict[str, Any] = {}
        for name, prof in self.columns.items():
            if isinstance(prof, NumericProfile):
                columns[name] = {
                    "kind": "numeric",
                    "count": prof.count,
                    "missing": prof.missing,
                    "nan": prof.nan,
                    "posinf": prof.posinf,
                    "neginf": prof.neginf,
                    "min": _encode_float(prof.min),
                    "max": _encode_float(prof.max),
                    "mean": _encode_float(prof.mean),
                    "std": _encode_float(prof.std),
                    "m2": prof.m2,
                    "moment_scale": prof.moment_scale,
                    "edges": [_encode_float(e) for e in prof.edges.tolist()],
                    "hist": prof.hist.tolist(),
                    "sample_size": prof.sample_size,
                    "sample": prof.sample.tolist(),
                    "sample_keys": base64.b64encode(prof.sample_keys.astype("<u8").tobytes()).decode("ascii"),
                    "kll": base64.b64encode(prof.kll).decode("ascii"),
                }
            else:
                columns[name] = {
                    "kind": "categorical",
                    "count": prof.count,
                    "missing": prof.missing,
                    "max_categories": prof.max_categories,
                    "counts": dict(prof.counts),
                    "buckets": prof.buckets.tolist(),  # type: ignore[union-attr]
                }
        return {"format": PROFILE_FORMAT, "n_rows": self.n_rows, "columns": columns}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Rebuild a profile written by :meth:`to_dict`.

        Raises:
            ValueError: unknown format tag (profiles of an older format must
                be rebuilt from their data), unknown column kind, an
                undecodable float or base64 field, or inconsistent column data.
            KeyError: a required field is absent.
        """
        if data.get("format") != PROFILE_FORMAT:
            raise ValueError(
                f"unsupported profile format {data.get('format')!r}; expected {PROFILE_FORMAT!r} "
                "(rebuild the profile from its data)"
            )
        columns: dict[str, ColumnProfile] = {}
        for name, col in data["columns"].items():
            kind = col["kind"]
            if kind == "numeric":
                columns[name] = NumericProfile(
                    count=int(col["count"]),
                    missing=int(col["missing"]),
                    nan=int(col["nan"]),
                    posinf=int(col["posinf"]),
                    neginf=int(col["neginf"]),
                    min=_decode_float(col["min"]),
                    max=_decode_float(col["max"]),
                    mean=_decode_float(col["mean"]),
                    m2=float(col["m2"]),
                    moment_scale=float(col["moment_scale"]),
                    edges=np.array([_decode_float(e) for e in col["edges"]], dtype=np.float64),
                    hist=np.array(col["hist"], dtype=np.int64),
                    sample_size=int(col["sample_size"]),
                    sample=np.array(col["sample"], dtype=np.float64),
                    sample_keys=np.frombuffer(_b64(col["sample_keys"], name), dtype="<u8").astype(np.uint64),
                    kll=_b64(col["kll"], name),
                )
            elif kind == "categorical":
                columns[name] = CategoricalProfile(
                    count=int(col["count"]),
                    missing=int(col["missing"]),
                    counts=dict(col["counts"]),
                    max_categories=int(col["max_categories"]),
                    buckets=np.array(col["buckets"], dtype=np.int64),
                )
            else:
                raise ValueError(f"column {name!r}: unknown kind {kind!r}")
        return cls(n_rows=int(data["n_rows"]), columns=columns)


def _b64(text: str, column: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"column {column!r}: invalid base64 field: {exc}") from None


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
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    row_ids: ArrayLike | None = None,
    row_offset: int = 0,
    kll_k: int = DEFAULT_KLL_K,
    discrete_max_values: int = DEFAULT_DISCRETE_MAX_VALUES,
    threads: int | None = None,
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
            ``max_categories``. If the reference itself was capped (it has
            ``"__other__"``), its labels are the only ones kept and every
            other label is counted under ``"__other__"`` — the drift tests
            cannot tell a new label from one the reference folded away, and a
            label set fixed by the reference makes :func:`merge_profiles`
            exact. If the reference's labels are ``"true"`` and/or
            ``"false"`` (a boolean column), the current window's labels
            ``"True"``, ``"TRUE"`` and ``"1"`` (from ``True``, 1, 1.0 and
            those strings) count as ``"true"``, and ``"False"``, ``"FALSE"``
            and ``"0"`` as ``"false"``, so a flag sent as strings or 0/1 is
            compared value for value; other labels stay as they are.
        n_bins: number of quantile bins, >= 1, used when there is no
            reference edge set for the column and it has more than
            ``discrete_max_values`` distinct finite values. Edges are the quantiles of the
            finite values at ``k / n_bins`` for ``k = 1 .. n_bins - 1``
            (numpy's default linear interpolation), de-duplicated; a value
            that occupies two or more consecutive quantile points (an atom
            carrying at least one bin's worth of mass, e.g. the zeros of a
            90%-zero column, or the single value of a constant column) also
            gets a bin of its own, ``[v, nextafter(v, +inf))``. Outer edges
            are -inf/+inf, so values beyond the reference range land in the
            outer bins. The result has at most ``2 * n_bins + 1`` bins; a
            column without finite values gets the single bin
            ``[-inf, +inf)``.
        discrete_max_values: a column (without reference edges) with at
            most this many distinct finite values, >= 0, gets one bin per
            value ``v``, ``[v, nextafter(v, +inf))``, and the gaps between
            consecutive values and beyond the extremes as bins of their own
            (values the reference never had land there): ``2 * d + 1`` bins
            for ``d`` values, so a histogram test compares values, not
            quantile bins that would hide a move from one value to another
            inside a bin. Default 20, the threshold below which
            ``DriftConfig(numeric_test="auto")`` tests the histogram rather
            than the sample. 0 switches value bins off.
        sample_size: capacity of each numeric ``sample``, >= 1.
        max_categories: maximum number of labels per categorical column,
            ``"__other__"`` included, >= 2. Without a capped reference the
            most frequent labels are kept (ties broken by label). Every label
            is counted in the hash buckets
            (:attr:`CategoricalProfile.buckets`) before any is folded.
        seed: seed of the sampling keys (see :func:`detectors.sketch.row_keys`),
            so the same rows always give the same sample.
        row_ids: integer array, shape ``(n_rows,)``, identifying each row
            across windows and collectors (e.g. a hash of topic, partition
            and offset); int64 or uint64. Profiles of disjoint row sets merge
            into the profile of their union only if their row ids are
            distinct. Default: the row positions ``row_offset + arange(n_rows)``.
        row_offset: position of the first row when ``row_ids`` is not given,
            >= 0; a frame split into consecutive parts merges exactly when
            each part passes the number of rows before it.
        kll_k: the KLL sketch's ``k``, 8 <= k <= 65535; larger is more
            accurate and larger (rank error 0.0133 at ``k = 200``; see
            :attr:`NumericProfile.quantile_rank_error`).

        threads: columns profiled in parallel by this many threads
            (numpy's sorting and arithmetic release the GIL); None picks
            ``min(4, os.cpu_count() + 1)`` for frames of at least 100,000 rows
            and 1 below (a thread building a KLL sketch holds the GIL, so one
            thread more than the cores keeps them busy).
            The profile is the same whatever the count.
    Returns:
        A :class:`Profile` with one entry per column of ``frame``.

    Raises:
        ValueError: bad parameters, duplicate column names, ``kinds`` naming a
            column not in ``frame`` or an unknown kind, a column declared
            numeric whose values are not numbers, a reference column whose
            kind differs from the requested kind, or ``row_ids`` of the wrong
            length or type.
        TypeError: a column whose kind cannot be inferred (see
            :func:`infer_kind`).
    """
    _check_params(n_bins, sample_size, max_categories, kll_k, discrete_max_values)
    resolved = _resolve_kinds(frame, kinds, reference)
    keys = _frame_keys(len(frame), row_ids, row_offset, seed)
    candidates = sample_candidates(keys, sample_size)
    ref_columns = reference.columns if reference is not None else {}

    def numeric(i: int, name: str) -> NumericProfile:
        ref_col = ref_columns.get(name)
        arr, nan = _to_float64(frame.iloc[:, i], name)
        if isinstance(ref_col, NumericProfile):
            edges = ref_col.edges
        else:
            edges = _reference_edges(arr[np.isfinite(arr)], n_bins, discrete_max_values)
        return _numeric_profile(arr, nan, keys, edges, sample_size, kll_k, candidates)

    def categorical(i: int, name: str) -> CategoricalProfile:
        ref_col = ref_columns.get(name)
        keep, fixed = _reference_labels(ref_col)
        missing, counts = _label_counts(frame.iloc[:, i], ref_col)
        return CategoricalProfile(
            count=sum(counts.values()),
            missing=missing,
            counts=_apply_cap(counts, max_categories, keep, fixed),
            max_categories=max_categories,
            buckets=label_buckets(counts, CATEGORY_BUCKETS),
        )

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if threads is None:
        # one more thread than cores: a thread in the KLL sketch holds the GIL
        threads = min(4, (os.cpu_count() or 1) + 1) if len(frame) >= 100_000 else 1
    tasks = [(numeric if kind == "numeric" else categorical, i, name)
             for i, (name, kind) in enumerate(resolved.items())]
    if threads > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(min(threads, len(tasks))) as pool:
            built = list(pool.map(lambda t: t[0](t[1], t[2]), tasks))
    else:
        built = [fn(i, name) for fn, i, name in tasks]
    columns = {name: prof for (_, _, name), prof in zip(tasks, built)}
    return Profile(n_rows=len(frame), columns=columns)


def _check_params(n_bins: int, sample_size: int, max_categories: int, kll_k: int, discrete_max_values: int) -> None:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if sample_size < 1:
        raise ValueError(f"sample_size must be >= 1, got {sample_size}")
    if max_categories < 2:
        raise ValueError(f"max_categories must be >= 2, got {max_categories}")
    if not 8 <= kll_k <= 65535:
        raise ValueError(f"kll_k must be in [8, 65535], got {kll_k}")
    if discrete_max_values < 0:
        raise ValueError(f"discrete_max_values must be >= 0, got {discrete_max_values}")


def _resolve_kinds(
    frame: pd.DataFrame, kinds: Mapping[str, ColumnKind] | None, reference: Profile | None
) -> dict[str, ColumnKind]:
    """Column name -> kind for every column of ``frame``, in frame order (see build_profile)."""
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
    resolved: dict[str, ColumnKind] = {}
    for i, name in enumerate(names):
        ref_col = ref_columns.get(name)
        kind = kinds.get(name) or (kind_of(ref_col) if ref_col is not None else infer_kind(frame.iloc[:, i]))
        if ref_col is not None and kind_of(ref_col) != kind:
            raise ValueError(
                f"column {name!r}: requested kind {kind!r} but the reference profile is {kind_of(ref_col)!r}"
            )
        resolved[name] = kind
    return resolved


def _frame_keys(n: int, row_ids: ArrayLike | None, row_offset: int, seed: int) -> np.ndarray:
    """Sampling keys of the ``n`` rows of a frame (see build_profile)."""
    if row_ids is None:
        if row_offset < 0:
            raise ValueError(f"row_offset must be >= 0, got {row_offset}")
        ids = np.arange(row_offset, row_offset + n, dtype=np.uint64)
    else:
        ids = np.asarray(row_ids)
        if ids.shape != (n,):
            raise ValueError(f"row_ids has shape {ids.shape}, expected ({n},) for the frame")
    return row_keys(ids, seed)


def _to_float64(values: pd.Series, name: str) -> tuple[np.ndarray, int]:
    """Column as float64 with every kind of missing value turned into NaN, and how many were float NaN."""
    dtype = values.dtype
    if pdt.is_complex_dtype(dtype):
        raise ValueError(f"column {name!r}: complex values cannot be profiled as numeric")
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        arr = values.to_numpy(dtype=np.float64)
        return arr, int(np.count_nonzero(np.isnan(arr)))
    if pdt.is_numeric_dtype(dtype) or pdt.is_bool_dtype(dtype):
        # Integers hold no NaN, and pandas' nullable dtypes store NaN as NA.
        # Int64/Float64/boolean need na_value, or pd.NA cannot become a float.
        return values.to_numpy(dtype=np.float64, na_value=np.nan), 0
    # object/str/category declared numeric, e.g. an all-None window.
    objects = values.to_numpy(dtype=object)
    try:
        arr = pd.to_numeric(pd.Series(objects), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"column {name!r} is declared numeric but holds non-numeric values: {exc}") from exc
    missing = objects[np.isnan(arr)]
    # Only the missing entries are inspected, to tell NaN from None / NA.
    nan = sum(1 for v in missing if isinstance(v, (float, np.floating)))
    return arr, nan


def _quantile_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin edges from the quantiles of finite, non-empty ``x`` (see build_profile)."""
    q = np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1))
    # Equal neighbouring quantiles mean a point mass; give it its own bin so
    # a move off that value (or onto it) changes the histogram.
    atoms = np.unique(q[1:][q[1:] == q[:-1]])
    inner = np.concatenate([q[1:-1], atoms, np.nextafter(atoms, np.inf)])
    return np.unique(np.concatenate([[-np.inf], inner, [np.inf]]))


def _reference_edges(x: np.ndarray, n_bins: int, discrete_max_values: int) -> np.ndarray:
    """Bin edges for finite ``x`` without reference edges: value bins or quantile bins (see build_profile)."""
    if x.size == 0:
        return _ALL_REAL
    values = np.unique(x)
    if values.size > discrete_max_values:
        return _quantile_edges(x, n_bins)
    # [v, nextafter(v)) per value; the unique() also drops a bin that would be empty because
    # nextafter(v) is the next value, and the one past the largest double (nextafter is +inf).
    return np.unique(np.concatenate([[-np.inf], values, np.nextafter(values, np.inf), [np.inf]]))


def _histogram(x_sorted: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # bin i holds edges[i] <= x < edges[i+1]: the values below edges[i+1] minus those below edges[i]
    return np.diff(np.searchsorted(x_sorted, edges, side="left")).astype(np.int64)


def _numeric_profile(
    arr: np.ndarray,
    nan: int,
    keys: np.ndarray,
    edges: np.ndarray,
    sample_size: int,
    kll_k: int,
    candidates: np.ndarray | None = None,
) -> NumericProfile:
    finite = np.isfinite(arr)
    all_finite = bool(finite.all())
    x = arr if all_finite else arr[finite]
    count = int(x.size)
    edges = np.asarray(edges, dtype=np.float64)
    if all_finite and candidates is not None:
        # the frame's bottom-k rows in key order, found once per frame (see sample_candidates)
        sample_keys, sample = keys[candidates], x[candidates]
    else:
        sample_keys, sample = bottom_k(keys[finite], x, sample_size)
    # one sort serves the histogram, min/max and the sketch (datasketches compacts sorted input faster)
    x_sorted = np.sort(x)
    if count:
        lo, hi = float(x_sorted[0]), float(x_sorted[-1])
        scale = moment_scale(lo, hi)
        mean, m2 = moments(x, scale)
    else:
        lo = hi = mean = None
        scale, m2 = 1.0, 0.0
    # an all-finite column (the common case) has nothing to count in three more passes
    missing = 0 if all_finite else int(np.count_nonzero(np.isnan(arr)))
    posinf = 0 if all_finite else int(np.count_nonzero(arr == np.inf))
    neginf = 0 if all_finite else int(np.count_nonzero(arr == -np.inf))
    return NumericProfile(
        count=count,
        missing=missing,
        nan=nan,
        posinf=posinf,
        neginf=neginf,
        min=lo,
        max=hi,
        mean=mean,
        m2=m2,
        moment_scale=scale,
        edges=edges,
        hist=_histogram(x_sorted, edges),
        sample_size=sample_size,
        sample=sample,
        sample_keys=sample_keys,
        kll=kll_sketch(x_sorted, kll_k, presorted=True),
    )


def category_label(value: Hashable) -> str:
    """Normalise one non-missing value to its category label.

    ``True``/``False`` -> ``"true"``/``"false"``; integers and floats with an
    integral value -> decimal integer (``3``, ``3.0``, ``np.int8(3)`` ->
    ``"3"``); other floats -> shortest round-trip repr at their own precision
    (``np.float32(0.1)`` -> ``"0.1"``); anything else -> ``str(value)``.
    Labels from different types can coincide (``3`` and ``"3"``) and are then
    counted together.

    Profiles never label float ±inf (counted as missing, see
    :class:`CategoricalProfile`); here they give ``"inf"`` / ``"-inf"``.
    Against a boolean reference, :func:`build_profile` reads ``"True"``,
    ``"TRUE"`` and ``"1"`` as ``"true"`` and ``"False"``, ``"FALSE"`` and
    ``"0"`` as ``"false"``; this function itself keeps them apart.
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



def _is_infinite_float(value: object) -> bool:
    return isinstance(value, (float, np.floating)) and math.isinf(value)


def _label_counts(values: pd.Series, ref_col: ColumnProfile | None = None) -> tuple[int, dict[str, int]]:
    """(missing count, label -> count) of one categorical column, uncapped.

    Float ±inf counts as missing. Against a boolean reference (``ref_col``),
    the spellings of true and false are read as ``"true"`` / ``"false"``.
    """
    missing_mask = values.isna().to_numpy(dtype=bool)
    missing = int(missing_mask.sum())
    present = values[~missing_mask]
    counts: Counter[str] = Counter()
    if pdt.is_object_dtype(present.dtype):
        # Python treats True == 1 == 1.0 as one dict key, so value_counts would
        # merge them in a mixed column; label each value first.
        labels = [None if _is_infinite_float(v) else category_label(v) for v in present]
        counts.update(labels)
        missing += counts.pop(None, 0)  # type: ignore[call-overload]
    else:
        for value, n in present.value_counts(dropna=True).items():
            if not n:  # category dtype reports unused categories with count 0
                continue
            if _is_infinite_float(value):
                missing += int(n)
            else:
                counts[category_label(value)] += int(n)
    if _is_boolean_reference(ref_col):
        read = Counter[str]()
        for label, n in counts.items():
            read["true" if label in _TRUE_SPELLINGS else "false" if label in _FALSE_SPELLINGS else label] += n
        counts = read
    return missing, dict(counts)


def _is_boolean_reference(ref_col: ColumnProfile | None) -> bool:
    """The reference column is categorical and its labels are ``"true"`` and/or ``"false"``."""
    return isinstance(ref_col, CategoricalProfile) and bool(ref_col.counts) and set(ref_col.counts) <= {"true", "false"}


def _reference_labels(ref_col: ColumnProfile | None) -> tuple[frozenset[str], bool]:
    """(labels the reference names, whether the reference was capped and so fixes the label set)."""
    if not isinstance(ref_col, CategoricalProfile):
        return frozenset(), False
    return frozenset(ref_col.counts) - {OTHER}, OTHER in ref_col.counts


def _apply_cap(counts: Mapping[str, int], max_categories: int, keep: frozenset[str], fixed: bool) -> dict[str, int]:
    """Cap a label table: the capping rule shared by building and merging.

    ``counts`` may already hold an ``OTHER`` bucket. With ``fixed``, only
    ``keep`` is named. Otherwise, if the labels (with ``OTHER`` if non-empty)
    fit in ``max_categories`` nothing is folded; else every label of ``keep``
    stays and the most frequent others (ties by label) fill the remaining
    ``max_categories - 1 - len(kept)`` places. The rest goes to ``OTHER``.
    """

    def order(item: tuple[str, int]) -> tuple[int, str]:
        return (-item[1], item[0])

    other = int(counts.get(OTHER, 0))
    named = {k: int(n) for k, n in counts.items() if k != OTHER}
    if fixed:
        kept = {k: n for k, n in named.items() if k in keep}
        other += sum(n for k, n in named.items() if k not in keep)
    elif len(named) + (other > 0) <= max_categories:
        kept = named
    else:
        kept = {k: n for k, n in named.items() if k in keep}
        rest = sorted(((k, n) for k, n in named.items() if k not in keep), key=order)
        budget = max(max_categories - 1 - len(kept), 0)
        kept.update(rest[:budget])
        other += sum(n for _, n in rest[budget:])
    if other:
        kept[OTHER] = other
    return dict(sorted(kept.items(), key=order))


# --------------------------------------------------------------------------- merging


def merge_profiles(a: Profile, b: Profile, *, reference: Profile | None = None) -> Profile:
    """Combine the profiles of two disjoint sets of rows into the profile of their union.

    Counts, histograms and (with distinct row ids, see :func:`build_profile`)
    samples combine exactly; moments by the parallel update of Chan, Golub &
    LeVeque (1979), equal to a two-pass computation over the union to float64
    rounding relative to the spread of the values; KLL sketches by
    datasketches' merge, exact while the merged sketch holds every value and
    within its rank-error bound beyond. The result equals
    ``build_profile(concat(frame_a, frame_b), ...)`` built with the same
    parameters and reference, except for categorical capping, below.

    Categories: hash-bucket counts are summed (exact, whatever was folded),
    label counts are summed and ``"__other__"`` counts added,
    then the capping rule of :func:`build_profile` is applied again (keeping
    the labels ``reference`` names; with a capped reference only those). This
    equals the profile of the union whenever the kept label set does not
    depend on the data — the reference was capped and so fixes it — or
    neither part folded a label away. When a part did fold a label the union
    would name, its rows stay under ``"__other__"`` and the merged table
    under-counts that label.

    A column present in only one profile is kept, and the other profile's
    rows count as missing for it (as ``pandas.concat`` fills them).

    Args:
        a, b: profiles of disjoint row sets, built with the same bin edges
            (the same reference), seed and row-id scheme.
        reference: the profile ``a`` and ``b`` were built against, for the
            categorical capping rule; None when they had none.

    Returns:
        A new :class:`Profile`; ``n_rows`` is the sum. Columns are in ``a``'s
        order, then ``b``'s new ones. The sample capacity is the smaller of
        the two (the bottom-k of the union at that size is still exact).

    Raises:
        ValueError: a column is numeric in one profile and categorical in the
            other, numeric bin edges differ, or ``max_categories`` or the
            number of hash buckets differ.
    """
    ref_columns = reference.columns if reference is not None else {}
    columns: dict[str, ColumnProfile] = {}
    for name in [*a.columns, *(c for c in b.columns if c not in a.columns)]:
        ca, cb = a.columns.get(name), b.columns.get(name)
        if cb is None:
            assert ca is not None
            columns[name] = dataclasses.replace(ca, missing=ca.missing + b.n_rows)
        elif ca is None:
            columns[name] = dataclasses.replace(cb, missing=cb.missing + a.n_rows)
        elif isinstance(ca, NumericProfile) and isinstance(cb, NumericProfile):
            columns[name] = _merge_numeric(name, ca, cb)
        elif isinstance(ca, CategoricalProfile) and isinstance(cb, CategoricalProfile):
            keep, fixed = _reference_labels(ref_columns.get(name))
            columns[name] = _merge_categorical(name, ca, cb, keep, fixed)
        else:
            raise ValueError(f"column {name!r} is {kind_of(ca)} in one profile and {kind_of(cb)} in the other")
    return Profile(n_rows=a.n_rows + b.n_rows, columns=columns)


def _merge_numeric(name: str, a: NumericProfile, b: NumericProfile) -> NumericProfile:
    if not np.array_equal(a.edges, b.edges):
        raise ValueError(f"column {name!r}: the profiles have different bin edges; build both against one reference")
    n, mean, m2, scale = merge_moments((a.count, a.mean, a.m2, a.moment_scale), (b.count, b.mean, b.m2, b.moment_scale))
    k = min(a.sample_size, b.sample_size)
    sample_keys, sample = bottom_k(
        np.concatenate([a.sample_keys, b.sample_keys]), np.concatenate([a.sample, b.sample]), k
    )
    lows = [v for v in (a.min, b.min) if v is not None]
    highs = [v for v in (a.max, b.max) if v is not None]
    return NumericProfile(
        count=n,
        missing=a.missing + b.missing,
        nan=a.nan + b.nan,
        posinf=a.posinf + b.posinf,
        neginf=a.neginf + b.neginf,
        min=min(lows) if lows else None,
        max=max(highs) if highs else None,
        mean=mean,
        m2=m2,
        moment_scale=scale,
        edges=a.edges,
        hist=a.hist + b.hist,
        sample_size=k,
        sample=sample,
        sample_keys=sample_keys,
        kll=kll_merge(a.kll, b.kll),
    )


def _merge_categorical(
    name: str, a: CategoricalProfile, b: CategoricalProfile, keep: frozenset[str], fixed: bool
) -> CategoricalProfile:
    if a.max_categories != b.max_categories:
        raise ValueError(
            f"column {name!r}: max_categories differ ({a.max_categories} and {b.max_categories}); "
            "profiles capped differently cannot be merged"
        )
    assert a.buckets is not None and b.buckets is not None
    if a.buckets.shape != b.buckets.shape:
        raise ValueError(f"column {name!r}: the profiles count {a.buckets.size} and {b.buckets.size} hash buckets")
    summed = Counter(a.counts)
    summed.update(b.counts)
    return CategoricalProfile(
        count=a.count + b.count,
        missing=a.missing + b.missing,
        counts=_apply_cap(summed, a.max_categories, keep, fixed),
        max_categories=a.max_categories,
        buckets=a.buckets + b.buckets,
    )


# --------------------------------------------------------------------------- large sources


Chunk = pd.DataFrame | tuple[pd.DataFrame, ArrayLike]


def build_profile_chunks(
    make_chunks: Callable[[], Iterable[Chunk]],
    kinds: Mapping[str, ColumnKind] | None = None,
    *,
    reference: Profile | None = None,
    n_bins: int = 10,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    kll_k: int = DEFAULT_KLL_K,
    category_capacity: int | None = None,
    discrete_max_values: int = DEFAULT_DISCRETE_MAX_VALUES,
) -> Profile:
    """Profile a source too large for memory, read in chunks, in bounded memory.

    ``make_chunks()`` is called once or twice and must yield the same chunks
    each time (e.g. re-open a Parquet file and iterate its row groups).

    Pass 1 summarises each chunk and merges the summaries
    (:func:`merge_profiles`): counts, moments, min/max, the bottom-k sample,
    the KLL sketch, and per categorical column a Misra–Gries table of at most
    ``category_capacity`` labels (:func:`detectors.sketch.misra_gries`).
    Numeric bin edges then come from ``reference`` if given, else from the
    column's sample by the rule of :func:`build_profile` (value bins when the
    sample has at most ``discrete_max_values`` distinct values, else
    quantile bins); when the sample holds every finite value (``count <=
    sample_size``) they are the exact edges :func:`build_profile` gives for
    the whole source, and otherwise those of a uniform sample of
    ``sample_size`` values (quantile rank error of order ``1 /
    sqrt(sample_size)``, 0.2% at the default; a value too rare to be sampled
    gets no bin of its own but is still counted, in a gap bin). Edges
    depend only on the data and the seed, never on chunk boundaries.
    Categorical hash buckets are summed chunk by chunk, always exact.

    Pass 2 (skipped when no column needs it) counts each numeric column's
    values into the bins of those edges, and counts exactly, per categorical
    column whose Misra–Gries table lost counts, the labels it kept. The most
    frequent of those are named (as in :func:`build_profile`); every label
    occurring more than ``n / (category_capacity + 1)`` times is among them,
    so the named labels are the ones :func:`build_profile` names for the
    whole source unless the cut falls among labels rarer than that — and
    always when the source has at most ``category_capacity`` distinct labels.

    With no row ids, row positions count on across chunks, so the result
    equals ``build_profile(concat(chunks))`` in every field except possibly
    edges from a partial sample, the categorical caveat above, and the KLL
    sketch's random compaction.

    Memory (state kept between chunks, independent of the number of rows):
    per numeric column about ``16 * sample_size`` bytes for the sample and
    its keys (twice that while merging), ``8 * (3 * kll_k + log2(n))`` bytes
    for the KLL sketch (5.2 kB at ``kll_k = 200``, ``n = 10**7``) and
    ``16 * (2 * n_bins + 2)`` for the edges and histogram: 1.6 MB at the
    defaults. Per categorical column ``category_capacity`` labels with their
    counts, about ``(100 + label length) * category_capacity`` bytes in
    Python dicts (160 kB for 800 labels of 100 characters). Plus one chunk at
    a time, which the caller sizes.

    Args:
        make_chunks: returns an iterable of chunks, each a DataFrame or a
            ``(DataFrame, row_ids)`` pair (``row_ids`` as in
            :func:`build_profile`). Chunks may lack columns that others have
            (those rows count as missing); a column's kind is settled by
            ``kinds``, the reference, or its dtype in the first chunk that
            has it.
        kinds, reference, n_bins, sample_size, max_categories, seed, kll_k,
            discrete_max_values: as in :func:`build_profile`.
        category_capacity: Misra–Gries table size, >= ``max_categories``;
            default ``4 * max_categories``.

    Returns:
        A :class:`Profile` of all rows of all chunks.

    Raises:
        ValueError: as :func:`build_profile`; ``category_capacity`` below
            ``max_categories``; a chunk that mixes row ids with chunks that
            have none; or a second pass that does not see the rows of the
            first.
        TypeError: as :func:`build_profile`.
    """
    _check_params(n_bins, sample_size, max_categories, kll_k, discrete_max_values)
    capacity = 4 * max_categories if category_capacity is None else category_capacity
    if capacity < max_categories:
        raise ValueError(f"category_capacity must be >= max_categories ({max_categories}), got {capacity}")
    kinds = dict(kinds or {})
    ref_columns = reference.columns if reference is not None else {}
    settled: dict[str, ColumnKind] = {}
    numeric: dict[str, NumericProfile] = {}
    cat_counts: dict[str, dict[str, int]] = {}
    cat_missing: dict[str, int] = {}
    cat_buckets: dict[str, np.ndarray] = {}
    cat_present: dict[str, int] = {}
    cat_lossy: set[str] = set()
    rows_seen: dict[str, int] = {}
    n_rows = 0
    with_ids: bool | None = None

    for chunk in make_chunks():
        frame, ids = chunk if isinstance(chunk, tuple) else (chunk, None)
        if with_ids is None:
            with_ids = ids is not None
        elif with_ids != (ids is not None):
            raise ValueError("either every chunk comes with row ids or none does")
        names = [str(c) for c in frame.columns]
        resolved = _resolve_kinds(
            frame,
            {n: k for n, k in {**settled, **kinds}.items() if n in names},
            reference,
        )
        keys = _frame_keys(len(frame), ids, n_rows, seed)
        for i, (name, kind) in enumerate(resolved.items()):
            settled.setdefault(name, kind)
            rows_seen[name] = rows_seen.get(name, 0) + len(frame)
            values = frame.iloc[:, i]
            if kind == "numeric":
                arr, nan = _to_float64(values, name)
                ref_col = ref_columns.get(name)
                edges = ref_col.edges if isinstance(ref_col, NumericProfile) else _ALL_REAL
                part = _numeric_profile(arr, nan, keys, edges, sample_size, kll_k)
                numeric[name] = _merge_numeric(name, numeric[name], part) if name in numeric else part
            else:
                missing, counts = _label_counts(values, ref_columns.get(name))
                buckets = label_buckets(counts, CATEGORY_BUCKETS)
                cat_buckets[name] = cat_buckets[name] + buckets if name in cat_buckets else buckets
                merged = Counter(cat_counts.get(name, {}))
                merged.update(counts)
                cat_counts[name], exact = misra_gries(merged, capacity)
                if not exact:
                    cat_lossy.add(name)
                cat_missing[name] = cat_missing.get(name, 0) + missing
                cat_present[name] = cat_present.get(name, 0) + sum(counts.values())
        n_rows += len(frame)
        # Drop this chunk's arrays before the next is read, so at most one chunk is alive.
        del chunk, frame, ids, keys, values

    edges: dict[str, np.ndarray] = {}
    pass2_numeric: list[str] = []
    for name, prof in numeric.items():
        ref_col = ref_columns.get(name)
        if isinstance(ref_col, NumericProfile):
            continue  # binned on the reference's edges in pass 1
        edges[name] = _reference_edges(prof.sample, n_bins, discrete_max_values)
        if prof.count == prof.sample.size:
            # The sample holds every finite value: bin it, no second pass needed.
            numeric[name] = dataclasses.replace(prof, edges=edges[name], hist=_histogram(np.sort(prof.sample), edges[name]))
        else:
            pass2_numeric.append(name)

    exact_counts: dict[str, Counter[str]] = {name: Counter() for name in cat_lossy}
    if pass2_numeric or cat_lossy:
        hists = {name: np.zeros(edges[name].size - 1, dtype=np.int64) for name in pass2_numeric}
        candidates = {name: set(cat_counts[name]) | _reference_labels(ref_columns.get(name))[0] for name in cat_lossy}
        rows_again = 0
        for chunk in make_chunks():
            frame = chunk[0] if isinstance(chunk, tuple) else chunk
            rows_again += len(frame)
            for i, name in enumerate(str(c) for c in frame.columns):
                if name in hists:
                    arr, _ = _to_float64(frame.iloc[:, i], name)
                    hists[name] += _histogram(np.sort(arr[np.isfinite(arr)]), edges[name])
                elif name in candidates:
                    _, counts = _label_counts(frame.iloc[:, i], ref_columns.get(name))
                    exact_counts[name].update({k: n for k, n in counts.items() if k in candidates[name]})
            del chunk, frame
        if rows_again != n_rows:
            raise ValueError(f"make_chunks() gave {n_rows} rows on the first pass and {rows_again} on the second")
        for name, hist in hists.items():
            if int(hist.sum()) != numeric[name].count:
                raise ValueError(f"column {name!r}: the second pass saw different values than the first")
            numeric[name] = dataclasses.replace(numeric[name], edges=edges[name], hist=hist)

    columns: dict[str, ColumnProfile] = {}
    for name, kind in settled.items():
        absent = n_rows - rows_seen[name]
        if kind == "numeric":
            columns[name] = dataclasses.replace(numeric[name], missing=numeric[name].missing + absent)
            continue
        keep, fixed = _reference_labels(ref_columns.get(name))
        if name in cat_lossy:
            counts = dict(exact_counts[name])
            counts[OTHER] = cat_present[name] - sum(counts.values())
        else:
            counts = cat_counts[name]
        capped = _apply_cap({k: n for k, n in counts.items() if n > 0}, max_categories, keep, fixed)
        columns[name] = CategoricalProfile(
            count=sum(capped.values()),
            missing=cat_missing[name] + absent,
            counts=capped,
            max_categories=max_categories,
            buckets=cat_buckets[name],
        )
    return Profile(n_rows=n_rows, columns=columns)
