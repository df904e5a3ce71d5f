"""Drift detectors: profile a window, compare it with a reference, report drift.

Pure and deterministic: no I/O, no clock, no global random state.

Typical use::

    ref = build_profile(reference_frame)
    cur = build_profile(current_frame, reference=ref)
    results = compare(ref, cur, DriftConfig())
    verdict = dataset_drift(results)
"""

from .distance import js_distance, psi, wasserstein_normalised
from .drift import ColumnDrift, DatasetDrift, DriftConfig, align_categories, compare, compare_column, dataset_drift
from .profile import (
    OTHER,
    CategoricalProfile,
    ColumnKind,
    ColumnProfile,
    NumericProfile,
    Profile,
    build_profile,
    category_label,
    infer_kind,
    kind_of,
)
from .two_sample import TestResult, chi2_homogeneity, contingency_table, ks_test

__all__ = [
    "OTHER",
    "CategoricalProfile",
    "ColumnDrift",
    "ColumnKind",
    "ColumnProfile",
    "DatasetDrift",
    "DriftConfig",
    "NumericProfile",
    "Profile",
    "TestResult",
    "align_categories",
    "build_profile",
    "category_label",
    "chi2_homogeneity",
    "compare",
    "compare_column",
    "contingency_table",
    "dataset_drift",
    "infer_kind",
    "js_distance",
    "kind_of",
    "ks_test",
    "psi",
    "wasserstein_normalised",
]
