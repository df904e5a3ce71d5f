"""Compatibility mode: Evidently's default data-drift rule, reproduced from raw values.

This module reproduces, number for number, what Evidently **0.7.23** decides
when a user runs its default data-drift check, ``Report([DataDriftPreset()])``
(per column ``ValueDrift``, per dataset ``DriftedColumnsCount``), with no
method or threshold given. It exists so that users can hold our numbers
against Evidently's and so that benchmarks can run "Evidently's defaults"
without Evidently. It is *not* our recommended default: the weaknesses listed
below are why.

The rule (Evidently 0.7.23 sources, ``evidently/...``)
-------------------------------------------------------

1. Column type (``core/datasets.py: infer_column_type``), decided from the
   **current** frame's column only:

   - dtype ``float*`` -> numerical;
   - dtype ``int*`` -> categorical if it has <= 10 distinct values
     (``INTEGER_CARDINALITY_LIMIT``), else numerical;
   - dtype ``str`` / ``string``, or ``object`` whose first and last non-missing
     values are ``str`` -> text if distinct values > half the non-missing
     count, else categorical;
   - dtype ``bool`` or ``category`` -> categorical;
   - anything else -> not checked for drift (datetime, lists, and the pandas
     nullable dtypes ``boolean``, ``Int64``, ``Float64``, whose names do not
     match the rules above).

   The legacy API (``evidently.legacy``, ``utils/data_operations.py:
   process_columns``) instead calls every ``np.number`` dtype numerical and
   every other non-datetime dtype categorical, and treats columns named
   ``target`` / ``prediction`` specially; it is not reproduced here.

2. Cleaning (``legacy/calculations/data_drift.py: get_one_column_drift``):
   ``±inf`` is turned into NaN and NaN/None rows are dropped, separately in
   each window. An empty window raises. Sizes below are after cleaning.

3. Test choice (``legacy/calculations/stattests/registry.py:
   _get_default_stattest``), with ``n_ref`` the cleaned reference size and
   ``k`` the number of distinct values in both windows together:

   =================  ==============================  =============================
   column type        ``n_ref <= 1000``                ``n_ref > 1000``
   =================  ==============================  =============================
   numerical, k > 5   ``ks`` (p-value)                 ``wasserstein`` (distance)
   numerical, k <= 5  ``chisquare`` if k > 2 else     ``jensenshannon`` (distance)
                      ``z`` (p-value)
   categorical        ``chisquare`` if k > 2 else      ``jensenshannon`` (distance)
                      ``z`` (p-value)
   =================  ==============================  =============================

4. Statistic and threshold per test (``legacy/calculations/stattests/``):

   - ``ks`` (``ks_stattest.py``): p-value of ``scipy.stats.ks_2samp``,
     two-sided; drifted when ``p <= 0.05``.
   - ``chisquare`` (``chisquare_stattest.py``): Pearson's goodness-of-fit
     test, ``scipy.stats.chisquare(f_obs, f_exp)``, with ``f_obs`` the current
     counts and ``f_exp`` the reference counts scaled by ``n_cur / n_ref``,
     ``k - 1`` degrees of freedom; drifted when ``p < 0.05``. A value absent
     from the reference has ``f_exp = 0``, so ``X² = inf`` and ``p = 0``.
   - ``z`` (``z_stattest.py``): two-proportion z-test on the share of values
     different from the smallest value,
     ``z = (p1 - p2) / sqrt(P (1 - P) (1/n1 + 1/n2))`` with pooled ``P``,
     ``p = 2 (1 - Phi(|z|))``; ``p = 1`` when both windows hold the same
     single value; drifted when ``p < 0.05``.
   - ``wasserstein`` (``wasserstein_distance_norm.py``):
     ``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)``
     (population standard deviation, ``ddof = 0``; the floor is absolute, in
     the column's units); drifted when ``>= 0.1``.
   - ``jensenshannon`` (``jensenshannon.py``, ``utils.py: get_binned_data``):
     ``scipy.spatial.distance.jensenshannon(p, q)`` with the **natural**
     logarithm (range ``[0, sqrt(ln 2)] = [0, 0.8326]``), ``p`` / ``q`` the
     proportions of each distinct value in the reference / current window;
     drifted when ``>= 0.1``. (Evidently bins numbers with more than 20
     distinct reference values into Sturges bins of the pooled data first, but
     under the default rule Jensen–Shannon only meets columns with <= 5
     distinct values, so that branch is never reached and is not reproduced.)

5. Dataset (``legacy/calculations/data_drift.py: get_dataset_drift``):
   share = drifted columns / checked columns; dataset drift when
   ``share >= drift_share`` (default 0.5). ``DriftedColumnsCount``'s default
   test is "share < drift_share" and fails exactly then.

Known weaknesses of this rule
-----------------------------

- **Chi-square goodness of fit instead of homogeneity**: the reference
  proportions are treated as exact although the reference is a sample too,
  which overstates significance; and a single value never seen in the
  reference gives ``p = 0`` (drift) whatever the counts.
- **The test changes with the reference size**: at 1000 vs 1001 reference
  rows a column switches from a p-value (``ks``/``chisquare``/``z``) to a
  distance (``wasserstein``/``jensenshannon``) with unrelated thresholds, and
  dropping a few NaN can move a column across that line.
- **One threshold regardless of window size**: p-value tests at 0.05 flag
  negligible shifts on large windows, distances at 0.1 miss real shifts and
  flag noise on small windows; neither is calibrated to a false-alarm rate.
- **No multiple-testing control**: each column is tested at 0.05, so with
  many stable columns about one in twenty is flagged by chance.
- **Dataset drift needs half the columns**: one strongly drifted feature
  among 25 is not dataset drift, whatever its effect size.
- **Column type from the current window alone**: an integer column with
  10 distinct values in one window and 11 in the next changes from
  categorical to numerical (and its test), a string column becomes "text" in
  a small window with many distinct values, and pandas nullable dtypes are
  silently left out.
- **Fixed Wasserstein floor of 0.001** in the column's own units: for columns
  measured in small units (std below 0.001) the distance is under-scaled.
- **z-test p-value as ``2 (1 - Phi(|z|))``**: it rounds to exactly 0 beyond
  ``|z| ≈ 8.3``, so very strong evidence cannot be told apart.
- Missing values are dropped silently; a change in the missing share is not
  a drift signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, norm, wasserstein_distance

#: The Evidently release whose default rule this module reproduces.
EVIDENTLY_VERSION = "0.7.23"

#: Largest cleaned reference size that still uses p-value tests.
SMALL_REFERENCE_MAX = 1000
#: Largest number of distinct values for which a numerical column is tested as categories.
FEW_VALUES_MAX = 5
#: Largest number of distinct values of an integer column inferred as categorical.
INTEGER_CATEGORICAL_MAX = 10
#: Threshold of the p-value tests (``ks``, ``chisquare``, ``z``).
P_VALUE_THRESHOLD = 0.05
#: Threshold of the distances (``wasserstein``, ``jensenshannon``).
DISTANCE_THRESHOLD = 0.1
#: Floor of the reference standard deviation dividing the Wasserstein distance, in column units.
WASSERSTEIN_STD_FLOOR = 0.001
#: Default share of drifted columns that makes dataset drift.
DRIFT_SHARE = 0.5

ColumnType = Literal["num", "cat"]
StatTest = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon"]

#: Tests whose statistic is a p-value (drift when small); the others are distances (drift when large).
P_VALUE_TESTS = frozenset({"ks", "chisquare", "z"})


@dataclass(frozen=True)
class EvidentlyColumnResult:
    """One column's result under Evidently's default rule.

    Attributes:
        column: column name.
        column_type: ``"num"`` or ``"cat"``, as Evidently types the column.
        stattest: Evidently's registry name of the test, one of ``"ks"``,
            ``"chisquare"``, ``"z"``, ``"wasserstein"``, ``"jensenshannon"``.
        statistic: Evidently's drift score for that test: the p-value in
            ``[0, 1]`` for ``ks`` / ``chisquare`` / ``z``; the normalised
            Wasserstein distance (>= 0, in reference standard deviations) or
            the natural-log Jensen–Shannon distance (``[0, 0.8326]``) otherwise.
        threshold: 0.05 for the p-value tests, 0.1 for the distances.
        drifted: ``p <= t`` for ``ks``, ``p < t`` for ``chisquare`` and
            ``z``, ``d >= t`` for the distances (Evidently's comparisons).
    """

    column: str
    column_type: ColumnType
    stattest: StatTest
    statistic: float
    threshold: float
    drifted: bool


def evidently_column_type(values: pd.Series) -> Literal["num", "cat", "text"] | None:
    """Evidently 0.7.23's type for a column, from its dtype and distinct values.

    Mirrors ``evidently.core.datasets.infer_column_type`` (see the module
    docstring, rule 1). Evidently applies it to the **current** frame.

    Args:
        values: the column, any length, missing values allowed.

    Returns:
        ``"num"``, ``"cat"``, ``"text"``, or None for a column Evidently does
        not check for drift (datetime, lists, empty object columns, pandas
        nullable dtypes).
    """
    name = values.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if values.nunique() <= INTEGER_CATEGORICAL_MAX else "num"
    if name in ("string", "str"):
        return "text" if values.nunique() > values.count() * 0.5 else "cat"
    if name == "object":
        present = values.dropna()
        if present.empty:
            return None
        if isinstance(present.iloc[0], str) and isinstance(present.iloc[-1], str):
            return "text" if values.nunique() > values.count() * 0.5 else "cat"
        return None
    if name in ("bool", "category"):
        return "cat"
    return None


def choose_evidently_stattest(reference_size: int, n_distinct: int, column_type: ColumnType) -> StatTest:
    """Evidently 0.7.23's default test for a column (module docstring, rule 3).

    Args:
        reference_size: number of reference values left after dropping
            NaN/±inf, >= 1.
        n_distinct: number of distinct values in both windows together, >= 1.
        column_type: ``"num"`` or ``"cat"``.

    Returns:
        The registry name of the test.

    Raises:
        ValueError: ``column_type`` is not ``"num"``/``"cat"``, or a count < 1.
    """
    if column_type not in ("num", "cat"):
        raise ValueError(f"column_type must be 'num' or 'cat', got {column_type!r}")
    if reference_size < 1 or n_distinct < 1:
        raise ValueError(f"need reference_size >= 1 and n_distinct >= 1, got {reference_size} and {n_distinct}")
    if reference_size <= SMALL_REFERENCE_MAX:
        if column_type == "num" and n_distinct > FEW_VALUES_MAX:
            return "ks"
        return "chisquare" if n_distinct > 2 else "z"
    if column_type == "num" and n_distinct > FEW_VALUES_MAX:
        return "wasserstein"
    return "jensenshannon"


def _clean(values: pd.Series) -> pd.Series:
    """Drop NaN/None and ±inf, as Evidently does before every test."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Unused categories would otherwise show up as zero counts on both sides.
        values = values.astype(object)
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Counts of each distinct value in the reference and current window, aligned."""
    table = pd.concat([reference.value_counts(), current.value_counts()], axis=1).fillna(0)
    return table.iloc[:, 0].to_numpy(np.float64), table.iloc[:, 1].to_numpy(np.float64)


def _chisquare_p(reference: pd.Series, current: pd.Series) -> float:
    """p-value of Pearson's goodness-of-fit test of the current counts against the scaled reference."""
    ref_counts, cur_counts = _counts(reference, current)
    f_exp = ref_counts * (len(current) / len(reference))
    with np.errstate(divide="ignore", invalid="ignore"):
        # A value unseen in the reference has f_exp = 0: X² = inf, p = 0, as in Evidently.
        return float(chisquare(cur_counts, f_exp).pvalue)


def _z_p(reference: pd.Series, current: pd.Series) -> float:
    """p-value of the two-proportion z-test Evidently runs on columns with two values."""
    ref_unique, cur_unique = reference.unique(), current.unique()
    if len(ref_unique) == 1 and len(cur_unique) == 1 and ref_unique[0] == cur_unique[0]:
        return 1.0
    try:
        first = sorted(set(ref_unique) | set(cur_unique))[0]
    except TypeError as exc:
        raise ValueError(f"the values of column {reference.name!r} cannot be ordered (Evidently fails too)") from exc
    n1, n2 = len(reference), len(current)
    p1 = float(np.count_nonzero(reference.to_numpy() != first)) / n1
    p2 = float(np.count_nonzero(current.to_numpy() != first)) / n2
    # Same arithmetic as Evidently, so the numbers agree to the last bits.
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _js_natural(reference: pd.Series, current: pd.Series) -> float:
    """Jensen–Shannon distance (natural log) between the value proportions of the two windows."""
    ref_counts, cur_counts = _counts(reference, current)
    d = float(jensenshannon(ref_counts / len(reference), cur_counts / len(current)))
    # Rounding can make the divergence a hair negative (sqrt -> NaN) for near-identical proportions.
    return 0.0 if np.isnan(d) else d


def evidently_column_drift(
    reference: pd.Series,
    current: pd.Series,
    column_type: ColumnType | None = None,
) -> EvidentlyColumnResult:
    """One column's drift under Evidently 0.7.23's default rule (compatibility mode).

    Reproduces ``ValueDrift`` with no method/threshold: drops NaN/±inf, picks
    the test from the cleaned reference size, the column type and the number
    of distinct values, and applies that test's statistic and threshold (all
    in the module docstring, with the Evidently source of each step and the
    rule's known weaknesses). Statistics come from the same scipy functions
    Evidently calls: ``ks_2samp``, ``chisquare``, ``norm.cdf``,
    ``wasserstein_distance`` and ``jensenshannon``.

    Args:
        reference: the reference window's column, any length >= 1 after
            cleaning; its name becomes the result's ``column``.
        current: the current window's column, same meaning; may differ in
            length from the reference.
        column_type: ``"num"`` or ``"cat"``; None infers it from ``current``
            as Evidently does (:func:`evidently_column_type`).

    Returns:
        :class:`EvidentlyColumnResult`; the statistic is never NaN (a value
        unseen in the reference gives a chi-square p-value of exactly 0).

    Raises:
        ValueError: a window is empty after dropping NaN/±inf; ``column_type``
            is not ``"num"``/``"cat"``; a numerical column has a non-numeric
            dtype; or, when inferring, Evidently would type the column as text
            (its text-content drift is not reproduced) or skip it.
    """
    name = str(reference.name) if reference.name is not None else str(current.name)
    if column_type is None:
        inferred = evidently_column_type(current)
        if inferred == "text":
            raise ValueError(
                f"Evidently {EVIDENTLY_VERSION} would type column {name!r} as text; its text drift test is not "
                "reproduced here (pass column_type='cat' to test it as categories)"
            )
        if inferred is None:
            raise ValueError(
                f"Evidently {EVIDENTLY_VERSION} does not check column {name!r} (dtype {current.dtype}) for drift"
            )
        column_type = inferred
    if column_type not in ("num", "cat"):
        raise ValueError(f"column_type must be 'num', 'cat' or None, got {column_type!r}")

    ref, cur = _clean(reference), _clean(current)
    if ref.empty or cur.empty:
        window = "reference" if ref.empty else "current"
        raise ValueError(f"column {name!r} has no values left in the {window} window after dropping NaN/±inf")
    if column_type == "num" and not (pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur)):
        raise ValueError(f"numerical column {name!r} must have a numeric dtype in both windows")

    n_distinct = int(pd.concat([ref, cur]).nunique())
    stattest = choose_evidently_stattest(len(ref), n_distinct, column_type)
    if stattest == "ks":
        statistic = ks_2samp(ref.to_numpy(np.float64), cur.to_numpy(np.float64)).pvalue
        drifted = statistic <= P_VALUE_THRESHOLD
    elif stattest == "chisquare":
        statistic = _chisquare_p(ref, cur)
        drifted = statistic < P_VALUE_THRESHOLD
    elif stattest == "z":
        statistic = _z_p(ref, cur)
        drifted = statistic < P_VALUE_THRESHOLD
    elif stattest == "wasserstein":
        scale = max(float(np.std(ref)), WASSERSTEIN_STD_FLOOR)
        statistic = wasserstein_distance(ref.to_numpy(np.float64), cur.to_numpy(np.float64)) / scale
        drifted = statistic >= DISTANCE_THRESHOLD
    else:
        statistic = _js_natural(ref, cur)
        drifted = statistic >= DISTANCE_THRESHOLD
    threshold = P_VALUE_THRESHOLD if stattest in P_VALUE_TESTS else DISTANCE_THRESHOLD
    return EvidentlyColumnResult(
        column=name,
        column_type=column_type,
        stattest=stattest,
        statistic=float(statistic),
        threshold=threshold,
        drifted=bool(drifted),
    )


def evidently_dataset_drift(
    reference_frame: pd.DataFrame,
    current_frame: pd.DataFrame,
    drift_share: float = DRIFT_SHARE,
    column_types: Mapping[str, ColumnType] | None = None,
) -> tuple[list[EvidentlyColumnResult], float, bool]:
    """Dataset drift under Evidently 0.7.23's default rule (compatibility mode).

    Reproduces ``DataDriftPreset`` / ``DriftedColumnsCount``: every column of
    the current frame that Evidently types numerical or categorical is tested
    with :func:`evidently_column_drift`; columns it would not check (datetime,
    pandas nullable dtypes, ...) are left out; ``share = drifted / tested``
    and the dataset drifted when ``share >= drift_share`` (Evidently's
    ``get_dataset_drift``). See the module docstring for the rule's known
    weaknesses, the half-the-columns default among them.

    Args:
        reference_frame: the reference window, one column per feature.
        current_frame: the current window; must hold every tested column in
            the reference too. Row counts may differ.
        drift_share: share of drifted columns that makes dataset drift, in
            ``[0, 1]``; Evidently's default 0.5.
        column_types: optional column -> ``"num"``/``"cat"`` overrides
            (Evidently's ``DataDefinition``); other columns are inferred from
            the current frame.

    Returns:
        ``(results, share, drifted)``: the per-column results in the current
        frame's column order, the share of drifted columns in ``[0, 1]``, and
        the dataset decision.

    Raises:
        ValueError: ``drift_share`` outside ``[0, 1]``; no column to test; a
            tested column missing from the reference; or any error of
            :func:`evidently_column_drift` (text columns among them).
    """
    if not 0.0 <= drift_share <= 1.0:
        raise ValueError(f"drift_share must be in [0, 1], got {drift_share}")
    overrides = dict(column_types or {})
    results: list[EvidentlyColumnResult] = []
    for column in current_frame.columns:
        column_type = overrides.get(column)
        if column_type is None and evidently_column_type(current_frame[column]) is None:
            continue
        if column not in reference_frame.columns:
            raise ValueError(f"column {column!r} is missing from the reference frame")
        results.append(evidently_column_drift(reference_frame[column], current_frame[column], column_type))
    if not results:
        raise ValueError("no column Evidently would check for drift")
    share = sum(r.drifted for r in results) / len(results)
    return results, share, bool(share >= drift_share)
