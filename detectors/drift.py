"""Drift decision: compare a current window's profile with the reference profile.

Per column, a two-sample test gives a p-value and a set of distances gives the size of the
change; per window, the p-values of all columns are adjusted for multiple testing before any
column is called drifted; the dataset verdict is whether any (or a configured share of)
columns drifted.

The recommended default (``DriftConfig()``), and why it differs from Evidently's default rule
(reproduced exactly by ``DriftConfig(mode="evidently")``, see :mod:`detectors.evidently_rule`):

- **One test per column type, whatever the reference size.** Numeric columns: two-sample
  Kolmogorov–Smirnov on the samples; numeric columns with few distinct values (ties make KS
  conservative): the categorical test on the reference-edged histogram. Categorical and
  boolean columns: the chi-square test of *homogeneity* on the 2×k table of reference and
  current counts (Fisher's exact test or merged rare categories when expected counts are
  below 5). Evidently switches from p-values to fixed distance thresholds at 1,000 reference
  rows and uses a goodness-of-fit chi-square that treats the reference as exact.
- **False alarms under control.** The p-values of all tests in a window form one family and
  are adjusted (Bonferroni by default) to a family-wise level ``alpha = 0.001``: on stable
  data a window is wrongly flagged at most about once per 1,000 windows, however many
  columns there are. A per-column ``p < 0.05`` over 25 columns flags most stable windows at
  least once. (The windows' p-values are exact or conservative, so the bound holds; see
  ``bench/`` for the measured rate.)
- **Sensitive to one column.** The dataset verdict fires when ``min_drifted_columns`` (default
  1) columns drift after the adjustment, instead of half of them.
- **Missing values are a signal.** The share of rows without a usable value is tested
  (two-proportion z-test) against the reference's share in the same family, so a feature
  that the serving code stopped sending, or renamed, is a drift rather than "insufficient
  data".
- **Effect sizes always reported** (PSI, Jensen–Shannon, Hellinger, total variation,
  Wasserstein-1 raw and in reference standard deviations), and ``decision="both"`` requires a
  material effect besides significance, for very large windows where every p-value is tiny.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._checks import StatisticUndefined, TestResult
from .calibration import bootstrap_histogram_statistics, min_null_size, threshold_from_null
from .categorical import categorical_test, category_distances, chi2_homogeneity, contingency_table, g_test
from .distance import (
    PSI_EPS,
    STD_FLOOR,
    hellinger_distance,
    js_distance,
    psi,
    total_variation_distance,
    wasserstein_divisor,
    wasserstein_pair,
    wasserstein_pair_sorted,
)
from .evidently_rule import evidently_column_drift
from .multiple_testing import adjust_p_values
from .profile import OTHER, CategoricalProfile, ColumnKind, ColumnProfile, NumericProfile, Profile, kind_of
from .two_sample import (
    anderson_darling_test,
    ks_and_wasserstein_sorted,
    cramer_von_mises_test,
    epps_singleton_test,
    ks_test,
    mann_whitney_u_test,
    welch_t_test,
)

Status = Literal["ok", "insufficient_data"]

#: Numeric two-sample tests by name (each takes the reference and current samples).
NUMERIC_TESTS: dict[str, Callable[[np.ndarray, np.ndarray], TestResult]] = {
    "ks": ks_test,
    "anderson_darling": anderson_darling_test,
    "cramer_von_mises": cramer_von_mises_test,
    "mann_whitney_u": mann_whitney_u_test,
    "welch_t": welch_t_test,
    "epps_singleton": epps_singleton_test,
}
#: Categorical tests by name (each takes reference and current category counts).
CATEGORICAL_TESTS: dict[str, Callable[[Mapping[str, int], Mapping[str, int]], TestResult]] = {
    "chi2": chi2_homogeneity,
    "g_test": g_test,
}
#: Effect sizes a decision can use; ``wasserstein_normalised`` is numeric only.
EFFECT_SIZES = ("js_distance", "psi", "hellinger", "total_variation", "wasserstein_normalised")
DECISIONS = ("p_value", "effect_size", "both", "calibrated")
CORRECTIONS = ("bonferroni", "holm", "bh", "none")


@dataclass(frozen=True)
class DriftConfig:
    """How columns are tested and when they count as drifted.

    Attributes:
        mode: ``"recommended"`` (this module's rule, see the module docstring) or
            ``"evidently"`` (Evidently 0.7's default data-drift rule, column by column, via
            :func:`detectors.evidently_rule.evidently_column_drift` on the profiles' samples
            and category counts; exact when the samples hold every value of both windows).
            The column type is the profile's kind (numeric -> ``"num"``, categorical ->
            ``"cat"``), not Evidently's dtype rule: a profile does not keep the dtype, so an
            integer column with 6 to 10 distinct values (categorical to Evidently) is tested
            as numerical, and string columns Evidently would call text are tested as
            categories. In ``"evidently"`` mode only ``min_count`` of the fields below applies.
        alpha: level in ``(0, 1)`` for the adjusted p-values (family-wise for
            Bonferroni/Holm, false discovery rate for Benjamini–Hochberg). Default 0.001.
        correction: ``"bonferroni"`` (default), ``"holm"``, ``"bh"`` (Benjamini–Hochberg) or
            ``"none"`` (each p-value against ``alpha`` alone). The family is every p-value one
            :func:`compare` call produces: the distribution test of each column with enough
            data, and the missing-share test of each column where either window has a
            missing value.
        numeric_test: ``"auto"`` (Kolmogorov–Smirnov; the categorical test on the histogram,
            whose bins are then one per value, when the reference has at most
            ``discrete_max_values`` distinct values) or a key of
            :data:`NUMERIC_TESTS`.
        categorical_test: ``"auto"`` (chi-square of homogeneity; Fisher's exact test for a
            2×2 table, or rare categories merged and the result marked low-confidence, when
            an expected count is below 5) or a key of :data:`CATEGORICAL_TESTS`.
        column_tests: per-column override of the two fields above, column -> test name.
        discrete_max_values: a numeric column whose reference sample has at most this many
            distinct values (>= 1) is tested as categorical over its histogram bins by
            ``"auto"``; with :func:`~detectors.profile.build_profile`'s default of the same
            value those bins are one per value. Default 20.
        decision: ``"p_value"`` (adjusted p-value < alpha; default), ``"effect_size"``
            (effect size >= its threshold), ``"both"`` (both must hold; for very large
            windows), or ``"calibrated"`` (the column's Jensen–Shannon distance above the
            ``1 - false_alarm_rate / m`` quantile of its bootstrap null distribution at the
            current window's size, ``m`` columns tested; see :mod:`detectors.calibration`).
        numeric_effect_size / categorical_effect_size: the effect size used by the
            ``"effect_size"`` / ``"both"`` decisions, a name in :data:`EFFECT_SIZES`.
            Defaults ``"wasserstein_normalised"`` (Wasserstein-1 in reference standard
            deviations) and ``"js_distance"``.
        numeric_effect_threshold / categorical_effect_threshold: drift when the effect size
            is at least this, > 0. Defaults 0.1 and 0.1.
        false_alarm_rate: per-window rate of the ``"calibrated"`` decision, in ``(0, 1)``,
            shared by the columns (Bonferroni split). Default 0.001.
        calibration_samples: bootstrap replicates for ``"calibrated"``; 0 picks the smallest
            count :func:`detectors.calibration.min_null_size` accepts.
        test_missing_share: test the missing-value share of each column (default True;
            never in ``"evidently"`` mode, which drops missing values as Evidently does).
        min_count: fewest usable values (finite numbers, non-missing categories) in each
            window for the distribution test, and fewest rows for the missing-share test,
            >= 1; below it the result is ``"insufficient_data"``. Default 30.
        psi_eps: smallest bin proportion for PSI (see :func:`detectors.distance.psi`),
            default 1e-4.
        std_floor: floor of the reference standard deviation in the normalised Wasserstein
            distance, default 1e-12 (see :func:`detectors.distance.wasserstein_normalised`).
        seed: seed of the calibration bootstrap and of resampling tests.

    Raises:
        ValueError: a field is out of range or names an unknown test, decision or effect size.
    """

    mode: Literal["recommended", "evidently"] = "recommended"
    alpha: float = 0.001
    correction: str = "bonferroni"
    numeric_test: str = "auto"
    categorical_test: str = "auto"
    column_tests: Mapping[str, str] = field(default_factory=dict)
    discrete_max_values: int = 20
    decision: str = "p_value"
    numeric_effect_size: str = "wasserstein_normalised"
    categorical_effect_size: str = "js_distance"
    numeric_effect_threshold: float = 0.1
    categorical_effect_threshold: float = 0.1
    false_alarm_rate: float = 0.001
    calibration_samples: int = 0
    test_missing_share: bool = True
    min_count: int = 30
    psi_eps: float = PSI_EPS
    std_floor: float = STD_FLOOR
    seed: int = 0

    def __post_init__(self) -> None:
        def check(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(what)

        check(self.mode in ("recommended", "evidently"), f"mode must be 'recommended' or 'evidently', got {self.mode!r}")
        check(0.0 < self.alpha < 1.0, f"alpha must be in (0, 1), got {self.alpha}")
        check(self.correction in CORRECTIONS, f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        check(self.numeric_test == "auto" or self.numeric_test in NUMERIC_TESTS,
              f"numeric_test must be 'auto' or one of {sorted(NUMERIC_TESTS)}, got {self.numeric_test!r}")
        check(self.categorical_test == "auto" or self.categorical_test in CATEGORICAL_TESTS,
              f"categorical_test must be 'auto' or one of {sorted(CATEGORICAL_TESTS)}, got {self.categorical_test!r}")
        known = {"auto", *NUMERIC_TESTS, *CATEGORICAL_TESTS}
        for col, test in self.column_tests.items():
            check(test in known, f"column_tests[{col!r}]: unknown test {test!r}; expected one of {sorted(known)}")
        check(self.discrete_max_values >= 1, f"discrete_max_values must be >= 1, got {self.discrete_max_values}")
        check(self.decision in DECISIONS, f"decision must be one of {DECISIONS}, got {self.decision!r}")
        check(self.numeric_effect_size in EFFECT_SIZES,
              f"numeric_effect_size must be one of {EFFECT_SIZES}, got {self.numeric_effect_size!r}")
        check(self.categorical_effect_size in EFFECT_SIZES[:-1],
              f"categorical_effect_size must be one of {EFFECT_SIZES[:-1]}, got {self.categorical_effect_size!r}")
        check(self.numeric_effect_threshold > 0, "numeric_effect_threshold must be > 0")
        check(self.categorical_effect_threshold > 0, "categorical_effect_threshold must be > 0")
        check(0.0 < self.false_alarm_rate < 1.0, f"false_alarm_rate must be in (0, 1), got {self.false_alarm_rate}")
        check(self.calibration_samples >= 0, "calibration_samples must be >= 0")
        check(self.min_count >= 1, f"min_count must be >= 1, got {self.min_count}")
        check(0.0 < self.psi_eps < 1.0, f"psi_eps must be in (0, 1), got {self.psi_eps}")
        check(self.std_floor > 0, f"std_floor must be > 0, got {self.std_floor}")
        # anderson_darling's p-value is floored at 0.001 (scipy's table): below that level it
        # could never flag anything
        uses_ad = "anderson_darling" in (self.numeric_test, *self.column_tests.values())
        check(not (uses_ad and self.mode == "recommended" and self.decision in ("p_value", "both")
                   and (self.correction != "none" or self.alpha <= 0.001)),
              "anderson_darling reports p-values no smaller than 0.001, so a p-value decision with it needs "
              "correction='none' and alpha > 0.001 (or decision='effect_size')")


@dataclass(frozen=True)
class ColumnDrift:
    """Drift result for one column.

    Attributes:
        column: column name.
        kind: ``"numeric"`` or ``"categorical"`` (the reference's kind).
        method: the test that ran, e.g. ``"ks"``, ``"chi2"``, ``"fisher_exact"``; in
            Evidently mode ``"evidently:<stattest>"``.
        statistic: the test statistic (KS ``D``, chi-square ``X²``, ...); in Evidently mode
            Evidently's drift score. Never NaN.
        p_value: in ``[0, 1]``, may be 0.0 when it underflows; None where the test has none.
        p_value_adjusted: after the multiple-testing correction; None when not tested.
        neg_log10_p: ``-log10 p`` >= 0, finite even when ``p_value`` underflowed, where the
            test can compute it; None otherwise.
        drifted: the column's distribution drifted under ``DriftConfig.decision``; None when
            ``status`` is ``"insufficient_data"``.
        status: ``"ok"``, or ``"insufficient_data"`` when either window has fewer than
            ``min_count`` usable values (then statistic, p-values, drifted and every
            distance are None, never NaN).
        low_confidence: the test's approximation is poor for these counts (rare categories
            merged).
        effect_size: the value the effect-size decision reads (see ``effect_size_name``).
        effect_size_name: which effect size, a name in :data:`EFFECT_SIZES`.
        threshold: the threshold ``drifted`` was decided against: ``alpha`` for p-value
            decisions, the effect-size threshold, or the calibrated threshold.
        psi: Population Stability Index >= 0 (nats), over histogram bins / categories (hash
            buckets when a category table is capped, see :func:`align_categories`).
        js_distance: Jensen–Shannon distance, base 2, in ``[0, 1]``.
        hellinger: Hellinger distance in ``[0, 1]``.
        total_variation: total variation distance in ``[0, 1]``.
        wasserstein: Wasserstein-1 distance of the samples, in the column's units (numeric).
        wasserstein_normalised: the same divided by the reference std (``std_floor`` when it is 0) (numeric).
        n_reference: usable values in the reference window.
        n_current: usable values in the current window (0 if the column is absent).
        missing_share: share of the current window's rows without a usable value (missing,
            NaN or ±inf), in ``[0, 1]``; 1.0 when the column is absent from a non-empty
            window; None for a window without rows.
        reference_missing_share: the same share in the reference, None without rows.
        missing_p_value: test of the two missing shares (chi-square on the 2×2 table, Fisher's
            exact test when an expected count is below 5); None when not tested (neither
            window has a missing value, too few rows, or switched off).
        missing_drifted: the missing share drifted (adjusted p-value < alpha); None when
            not tested.
    """

    column: str
    kind: ColumnKind
    method: str
    statistic: float | None
    p_value: float | None
    drifted: bool | None
    status: Status
    psi: float | None
    js_distance: float | None
    wasserstein_normalised: float | None
    n_reference: int
    n_current: int
    missing_share: float | None
    p_value_adjusted: float | None = None
    neg_log10_p: float | None = None
    low_confidence: bool = False
    effect_size: float | None = None
    effect_size_name: str | None = None
    threshold: float | None = None
    hellinger: float | None = None
    total_variation: float | None = None
    wasserstein: float | None = None
    reference_missing_share: float | None = None
    missing_p_value: float | None = None
    missing_drifted: bool | None = None

    @property
    def any_drift(self) -> bool:
        """True when the distribution or the missing share drifted."""
        return bool(self.drifted) or bool(self.missing_drifted)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a dict of str, int, float, bool and None.

        Floats are never NaN, but a statistic can be ±inf where the test defines it so (Welch's
        t and Epps–Singleton between two different constants, Fisher's odds ratio with an
        empty cell) and ``neg_log10_p`` can be inf; ``json.dumps`` writes those as
        ``Infinity``, PostgreSQL and Prometheus store them as infinities.
        """
        return asdict(self)


@dataclass(frozen=True)
class DatasetDrift:
    """Dataset-level verdict from per-column results.

    Attributes:
        n_columns: columns with at least one evaluated signal (distribution or missing share).
        n_drifted: of those, how many drifted in either signal.
        share: ``n_drifted / n_columns`` in ``[0, 1]``; None when ``n_columns == 0``.
        drifted: ``n_drifted >= min_drifted_columns`` and (when set) ``share >= share_threshold``;
            None when ``share`` is None.
        status: ``"ok"``, or ``"insufficient_data"`` when no column could be tested.
    """

    n_columns: int
    n_drifted: int
    share: float | None
    drifted: bool | None
    status: Status

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict."""
        return asdict(self)


# --------------------------------------------------------------------------- helpers


def _usable_and_missing(profile: ColumnProfile) -> tuple[int, int]:
    """(usable values, rows without a usable value) of one column profile."""
    if isinstance(profile, NumericProfile):
        return profile.count, profile.missing + profile.posinf + profile.neginf
    return profile.count, profile.missing


def _share(missing: int, usable: int) -> float | None:
    rows = missing + usable
    return missing / rows if rows else None


def align_categories(
    reference: CategoricalProfile, current: CategoricalProfile
) -> tuple[dict[str, int], dict[str, int]]:
    """Put two categorical profiles on the common categories the tests and distances compare.

    When neither table is capped, the categories are the labels. A category only the current
    window has stays a category of its own (the chi-square table gets a column whose
    reference count is 0); a category that disappears counts 0.

    When either table is capped (holds ``"__other__"``), the categories are the hash buckets
    of :attr:`detectors.profile.CategoricalProfile.buckets`, keyed ``"bucket <i>"``. A capped
    table names the labels most frequent *in that window*: chosen on its own noise, they
    regress toward the mean in any other window, so a label-level test would flag nearly every
    stable window (the winner's curse). Buckets count every label and are chosen by no count,
    so under no drift they are two multinomial samples with the same cell probabilities and
    the chi-square test keeps its level. Changes between labels sharing a bucket are not seen.

    Returns:
        ``(reference_counts, current_counts)``; absent or empty categories are simply absent.

    Raises:
        ValueError: the two profiles count different numbers of hash buckets.
    """
    if OTHER not in reference.counts and OTHER not in current.counts:
        return dict(reference.counts), dict(current.counts)
    ref_b, cur_b = reference.buckets, current.buckets
    assert ref_b is not None and cur_b is not None
    if ref_b.shape != cur_b.shape:
        raise ValueError(f"the profiles count {ref_b.size} and {cur_b.size} hash buckets; "
                         "build both with the same version")

    def keyed(buckets: np.ndarray) -> dict[str, int]:
        return {f"bucket {i}": int(n) for i, n in enumerate(buckets) if n}

    return keyed(ref_b), keyed(cur_b)


def _histogram_counts(reference: NumericProfile, current: NumericProfile) -> tuple[dict[str, int], dict[str, int]]:
    """The two histograms as category counts keyed by bin index (bins empty on both sides dropped later)."""
    return ({str(i): int(n) for i, n in enumerate(reference.hist) if n},
            {str(i): int(n) for i, n in enumerate(current.hist) if n})


def _choose_test(kind: ColumnKind, reference: ColumnProfile, column: str, cfg: DriftConfig) -> str:
    name = cfg.column_tests.get(column) or (cfg.numeric_test if kind == "numeric" else cfg.categorical_test)
    if kind == "categorical" and name in NUMERIC_TESTS:
        raise ValueError(f"column {column!r} is categorical; test {name!r} needs a numeric column")
    if name != "auto":
        return name
    if kind == "numeric":
        assert isinstance(reference, NumericProfile)
        distinct = _distinct_values(reference)
        return "categorical_auto" if distinct <= cfg.discrete_max_values else "ks"
    return "categorical_auto"


def _run_test(name: str, ref: ColumnProfile, cur: ColumnProfile) -> TestResult:
    if isinstance(ref, NumericProfile):
        assert isinstance(cur, NumericProfile)
        if name in NUMERIC_TESTS:
            return NUMERIC_TESTS[name](ref.sample, cur.sample)
        ref_counts, cur_counts = _histogram_counts(ref, cur)
    else:
        assert isinstance(cur, CategoricalProfile)
        ref_counts, cur_counts = align_categories(ref, cur)
    if name == "categorical_auto":
        return categorical_test(ref_counts, cur_counts)
    return CATEGORICAL_TESTS[name](ref_counts, cur_counts)


@dataclass
class _Pending:
    """A column result before the family-wise adjustment decides ``drifted``."""

    base: dict[str, Any]
    test_p: float | None
    missing_p: float | None


def _insufficient(column: str, kind: ColumnKind, method: str, n_ref: int, n_cur: int,
                  missing_share: float | None, ref_missing_share: float | None) -> dict[str, Any]:
    return dict(column=column, kind=kind, method=method, statistic=None, p_value=None, drifted=None,
                status="insufficient_data", psi=None, js_distance=None, wasserstein_normalised=None,
                n_reference=n_ref, n_current=n_cur, missing_share=missing_share,
                reference_missing_share=ref_missing_share)


def _missing_test(ref: ColumnProfile, cur: ColumnProfile | None, n_rows_current: int,
                  cfg: DriftConfig) -> float | None:
    """p-value of the test of the missing shares, or None when not tested.

    The 2×2 table (missing, present) × (reference, current) goes through
    :func:`~detectors.categorical.categorical_test`: chi-square (the two-proportion z-test
    squared) when every expected count is at least 5, else Fisher's exact test — one missing
    value in a small window against a reference without any is an expected-count-0.02 cell,
    where the normal approximation would report p = 1e-12 instead of the exact 0.02.
    """
    # Evidently drops missing values without testing their share; its mode must not add a signal.
    if not cfg.test_missing_share or cfg.mode == "evidently":
        return None
    ref_usable, ref_missing = _usable_and_missing(ref)
    if cur is None:
        cur_usable, cur_missing = 0, n_rows_current
    else:
        cur_usable, cur_missing = _usable_and_missing(cur)
    ref_rows, cur_rows = ref_usable + ref_missing, cur_usable + cur_missing
    if ref_rows < cfg.min_count or cur_rows < cfg.min_count or (ref_missing == 0 and cur_missing == 0):
        return None
    return categorical_test({"missing": ref_missing, "present": ref_usable},
                            {"missing": cur_missing, "present": cur_usable}).p_value


def _effect(kind: ColumnKind, values: Mapping[str, float | None], cfg: DriftConfig) -> tuple[str, float | None, float]:
    if kind == "numeric":
        name, threshold = cfg.numeric_effect_size, cfg.numeric_effect_threshold
    else:
        name, threshold = cfg.categorical_effect_size, cfg.categorical_effect_threshold
    return name, values.get(name), threshold


def _calibrated_threshold(ref_counts: np.ndarray, window_size: int, rate: float, cfg: DriftConfig) -> float:
    """``1 - rate`` quantile of the bootstrap null distribution of the Jensen–Shannon distance."""
    n_boot = cfg.calibration_samples or min_null_size(rate)
    null = bootstrap_histogram_statistics(ref_counts, window_size, "js_distance", n_boot=n_boot, seed=cfg.seed,
                                          resample_reference=True)
    return threshold_from_null(null, rate, rule="quantile").threshold


def _column(reference: ColumnProfile, current: ColumnProfile | None, n_rows_current: int, column: str,
            cfg: DriftConfig) -> _Pending:
    kind = kind_of(reference)
    if current is not None and kind_of(current) != kind:
        raise ValueError(f"column {column!r}: reference profile is {kind} but current profile is {kind_of(current)}")
    n_ref, ref_missing = _usable_and_missing(reference)
    n_cur, cur_missing = _usable_and_missing(current) if current is not None else (0, n_rows_current)
    missing_share, ref_missing_share = _share(cur_missing, n_cur), _share(ref_missing, n_ref)
    missing_p = _missing_test(reference, current, n_rows_current, cfg)

    if cfg.mode == "evidently":
        method = "evidently"
    else:
        method = _choose_test(kind, reference, column, cfg)
    if current is None or n_ref < cfg.min_count or n_cur < cfg.min_count:
        shown = method if method != "categorical_auto" else "chi2"
        return _Pending(_insufficient(column, kind, shown, n_ref, n_cur, missing_share, ref_missing_share),
                        None, missing_p)

    distances: dict[str, float | None] = {"wasserstein": None, "wasserstein_normalised": None}
    ks_result: TestResult | None = None
    if isinstance(reference, NumericProfile):
        assert isinstance(current, NumericProfile)
        if not np.array_equal(reference.edges, current.edges):
            raise ValueError(
                f"column {column!r}: current histogram uses different bin edges from the reference; "
                "build the current profile with build_profile(..., reference=reference_profile)"
            )
        ref_hist, cur_hist = reference.hist, current.hist
        ref_sorted, cur_sorted = _sorted_sample(reference), np.sort(current.sample)
        if method == "ks" and cfg.mode == "recommended":
            # KS and W1 share one pass over the merged sorted samples (identical to the separate calls)
            ks_result, raw = ks_and_wasserstein_sorted(ref_sorted, cur_sorted)
        else:
            raw = None
        if raw is not None and math.isfinite(raw):
            distances["wasserstein"] = raw
            distances["wasserstein_normalised"] = raw / wasserstein_divisor(reference.std, cfg.std_floor)
        elif raw is None:  # W1 alone, still from the sorted samples (identical to wasserstein_pair)
            distances["wasserstein"], distances["wasserstein_normalised"] = wasserstein_pair_sorted(
                ref_sorted, cur_sorted, reference.std, cfg.std_floor)
        else:  # a distance beyond float64 that only the rescaled division keeps finite
            distances["wasserstein"], distances["wasserstein_normalised"] = wasserstein_pair(
                ref_sorted, cur_sorted, reference.std, cfg.std_floor)
        distances.update(psi=psi(ref_hist, cur_hist, cfg.psi_eps), js_distance=js_distance(ref_hist, cur_hist),
                         hellinger=hellinger_distance(ref_hist, cur_hist),
                         total_variation=total_variation_distance(ref_hist, cur_hist))
    else:
        assert isinstance(current, CategoricalProfile)
        ref_counts, cur_counts = align_categories(reference, current)
        d = category_distances(ref_counts, cur_counts, cfg.psi_eps)
        distances.update(psi=d.psi, js_distance=d.js_distance, hellinger=d.hellinger,
                         total_variation=d.total_variation)
        _, table = contingency_table(ref_counts, cur_counts)
        ref_hist = table[0]

    base = dict(column=column, kind=kind, status="ok", n_reference=n_ref, n_current=n_cur,
                missing_share=missing_share, reference_missing_share=ref_missing_share, **distances)

    if cfg.mode == "evidently":
        ev = evidently_column_drift(_values(reference), _values(current),
                                    "num" if kind == "numeric" else "cat")
        is_p = ev.stattest in ("ks", "chisquare", "z")
        base.update(method=f"evidently:{ev.stattest}", statistic=ev.statistic, p_value=ev.statistic if is_p else None,
                    drifted=ev.drifted, threshold=ev.threshold)
        return _Pending(base, None, missing_p)

    try:
        test = ks_result or _run_test(method, reference, current)
    except StatisticUndefined:
        return _Pending(_insufficient(column, kind, method, n_ref, n_cur, missing_share, ref_missing_share),
                        None, missing_p)
    name, value, threshold = _effect(kind, distances, cfg)
    base.update(method=test.method, statistic=test.statistic, p_value=test.p_value, neg_log10_p=test.neg_log10_p,
                low_confidence=test.low_confidence, effect_size_name=name, effect_size=value)
    if cfg.decision == "calibrated":
        base["calibration_counts"] = ref_hist
    else:
        base["threshold"] = cfg.alpha if cfg.decision == "p_value" else threshold
    return _Pending(base, test.p_value, missing_p)


def _sorted_sample(profile: NumericProfile) -> np.ndarray:
    """The profile's sample in ascending order, sorted once per profile object: a reference
    profile serves every window, so its sort is cached on it (the sample is never mutated)."""
    cached = profile.__dict__.get("_sorted_sample")
    if cached is None or cached.size != profile.sample.size:
        cached = np.sort(profile.sample)
        profile.__dict__["_sorted_sample"] = cached
    return cached


def _distinct_values(profile: NumericProfile) -> int:
    """``np.unique(profile.sample).size``, read off the cached sorted sample and cached in turn
    (a reference profile chooses its columns' tests for every window)."""
    cached = profile.__dict__.get("_distinct_values")
    if cached is None:
        ordered = _sorted_sample(profile)
        # as np.unique: a new value wherever a sorted value differs from the one before
        cached = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if ordered.size else 0
        profile.__dict__["_distinct_values"] = cached
    return cached


def _values(profile: ColumnProfile) -> pd.Series:
    """Raw values of a column for the Evidently rule: the sample, or the expanded category counts."""
    if isinstance(profile, NumericProfile):
        return pd.Series(profile.sample)
    labels = np.array(list(profile.counts), dtype=object)
    return pd.Series(np.repeat(labels, list(profile.counts.values())), dtype=object)


def _decide(pending: list[_Pending], n_rows_current: int, cfg: DriftConfig) -> list[ColumnDrift]:
    """Adjust the family of p-values and settle ``drifted`` / ``missing_drifted``."""
    family = [p.test_p for p in pending] + [p.missing_p for p in pending]
    if cfg.correction == "none":
        adjusted = family
    else:
        adjusted = list(adjust_p_values(family, cfg.correction, cfg.alpha).adjusted)
    n = len(pending)
    tested = sum(1 for p in pending if p.base["status"] == "ok")
    out = []
    for i, p in enumerate(pending):
        b = dict(p.base)
        adj, missing_adj = adjusted[i], adjusted[n + i]
        if p.missing_p is not None:
            b["missing_p_value"] = p.missing_p
            b["missing_drifted"] = bool(missing_adj is not None and missing_adj < cfg.alpha)
        counts = b.pop("calibration_counts", None)
        if b["status"] == "ok" and cfg.mode == "recommended":
            b["p_value_adjusted"] = adj
            significant = adj is not None and adj < cfg.alpha
            material = b["effect_size"] is not None and b["effect_size"] >= b.get("threshold", math.inf)
            if cfg.decision == "p_value":
                b["drifted"] = significant
            elif cfg.decision == "effect_size":
                b["drifted"] = material
            elif cfg.decision == "both":
                b["drifted"] = significant and material
            else:
                threshold = _calibrated_threshold(np.asarray(counts), b["n_current"],
                                                  cfg.false_alarm_rate / max(tested, 1), cfg)
                b["threshold"] = threshold
                b["drifted"] = bool(b["js_distance"] > threshold)
        out.append(ColumnDrift(**b))
    return out


# --------------------------------------------------------------------------- public API


def compare_column(
    reference: ColumnProfile,
    current: ColumnProfile,
    cfg: DriftConfig = DriftConfig(),
    *,
    column: str = "<unnamed>",
) -> ColumnDrift:
    """Compare one column of the current window with the reference (a family of one).

    See :func:`compare`; with a single column the multiple-testing adjustment only joins the
    distribution test and the missing-share test.

    Raises:
        ValueError: the profiles are of different kinds, or numeric profiles have different
            bin edges (the current window was not built with ``reference=``).
    """
    rows = sum(_usable_and_missing(current))
    return _decide([_column(reference, current, rows, column, cfg)], rows, cfg)[0]


def compare(
    reference: Profile,
    current: Profile,
    cfg: DriftConfig = DriftConfig(),
    columns: Iterable[str] | None = None,
) -> list[ColumnDrift]:
    """Compare every reference column (or the listed ones) with the current window.

    Per column: the test chosen by ``cfg`` (see :class:`DriftConfig`), the distances (PSI,
    Jensen–Shannon, Hellinger and total variation over the reference-edged histogram or the
    union of categories, or their hash buckets for a capped table; Wasserstein-1 raw and
    normalised over the samples), and the missing-share test. Then all p-values of the call are adjusted together
    (``cfg.correction``) and each column's ``drifted`` decided by ``cfg.decision``.

    Args:
        reference: profile of the reference window.
        current: profile of the current window, built with
            ``build_profile(..., reference=reference)``.
        cfg: test choice and thresholds.
        columns: names to compare, in this order; default all reference columns in reference
            order. Columns only the current window has are ignored.

    Returns:
        One :class:`ColumnDrift` per column. A column absent from the current window has
        ``n_current == 0``, status ``"insufficient_data"``, and a missing share of 1.0 that
        the missing-share test compares with the reference's.

    Raises:
        ValueError: a listed column is not in the reference, or a column's profiles are of
            different kinds or bin edges (see :func:`compare_column`).
    """
    names = list(reference.columns) if columns is None else list(columns)
    unknown = [c for c in names if c not in reference.columns]
    if unknown:
        raise ValueError(f"columns not in the reference profile: {unknown}")
    def one(name: str) -> _Pending:
        return _column(reference.columns[name], current.columns.get(name), current.n_rows, name, cfg)

    if current.n_rows >= 100_000 and len(names) > 1:
        # large samples: sorting and searching release the GIL, so columns overlap
        with ThreadPoolExecutor(min(4, (os.cpu_count() or 1) + 1, len(names))) as pool:
            pending = list(pool.map(one, names))
    else:
        pending = [one(n) for n in names]
    return _decide(pending, current.n_rows, cfg)


def dataset_drift(results: list[ColumnDrift], share_threshold: float | None = None,
                  min_drifted_columns: int = 1) -> DatasetDrift:
    """Summarise column results: did enough columns drift?

    A column counts when at least one of its signals was evaluated (distribution test with
    status ``"ok"``, or missing-share test), and counts as drifted when either drifted.
    ``share = n_drifted / n_columns``; the dataset drifted when ``n_drifted >=
    min_drifted_columns`` and, if ``share_threshold`` is set, ``share >= share_threshold``.
    The recommended default is any single column after the family-wise adjustment
    (``min_drifted_columns=1``, no share threshold); Evidently's default is
    ``share_threshold=0.5``.

    Args:
        results: per-column results, e.g. from :func:`compare`.
        share_threshold: in ``(0, 1]``, or None for no share condition.
        min_drifted_columns: >= 1.

    Returns:
        A :class:`DatasetDrift`; when no column was evaluated, share and drifted are None and
        status is ``"insufficient_data"``.

    Raises:
        ValueError: ``share_threshold`` outside ``(0, 1]`` or ``min_drifted_columns < 1``.
    """
    if share_threshold is not None and not 0.0 < share_threshold <= 1.0:
        raise ValueError(f"share_threshold must be in (0, 1], got {share_threshold}")
    if min_drifted_columns < 1:
        raise ValueError(f"min_drifted_columns must be >= 1, got {min_drifted_columns}")
    evaluated = [r for r in results if r.status == "ok" or r.missing_drifted is not None]
    n_columns = len(evaluated)
    n_drifted = sum(1 for r in evaluated if r.any_drift)
    if n_columns == 0:
        return DatasetDrift(n_columns=0, n_drifted=0, share=None, drifted=None, status="insufficient_data")
    share = n_drifted / n_columns
    return DatasetDrift(n_columns=n_columns, n_drifted=n_drifted, share=share,
                        drifted=n_drifted >= min_drifted_columns and (share_threshold is None or share >= share_threshold),
                        status="ok")
