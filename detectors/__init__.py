"""Drift detectors: summarise a window, compare it with a reference, report drift.

Pure and deterministic: no I/O, no clock, no global random state.

Typical use::

    ref = build_profile(reference_frame)
    cur = build_profile(current_frame, reference=ref)
    results = compare(ref, cur, DriftConfig())
    verdict = dataset_drift(results)

Modules: :mod:`.profile` (mergeable column summaries), :mod:`.two_sample` (numeric tests),
:mod:`.categorical` (tests and distances on category counts), :mod:`.distance` (PSI, KL,
Jensen–Shannon, Hellinger, total variation, Wasserstein, energy), :mod:`.multiple_testing`,
:mod:`.calibration` (thresholds for a false-alarm rate), :mod:`.alarm_policy` (k of the last n
windows), :mod:`.drift` (the per-window decision), :mod:`.evidently_rule` (Evidently's default
rule, for comparison), :mod:`.multivariate` (MMD, domain classifier, PCA reconstruction error)
and :mod:`.performance` (realised model performance and its drift). The last two import
scikit-learn and are not imported here.
"""

from ._checks import StatisticUndefined, TestResult
from .alarm_policy import KOfNAlarm
from .calibration import CalibratedThreshold
from .categorical import categorical_test, category_distances, chi2_homogeneity, contingency_table
from .categorical import fisher_exact_test, g_test, two_proportion_z_test
from .distance import (
    energy_distance,
    hellinger_distance,
    js_distance,
    kl_divergence,
    linf_distance,
    psi,
    total_variation_distance,
    wasserstein,
    wasserstein_histogram,
    wasserstein_normalised,
)
from .drift import ColumnDrift, DatasetDrift, DriftConfig, align_categories, compare, compare_column, dataset_drift
from .evidently_rule import evidently_column_drift, evidently_dataset_drift
from .multiple_testing import adjust_p_values
from .profile import (
    OTHER,
    CategoricalProfile,
    ColumnKind,
    ColumnProfile,
    NumericProfile,
    Profile,
    build_profile,
    build_profile_chunks,
    category_label,
    infer_kind,
    kind_of,
    merge_profiles,
)
from .two_sample import (
    anderson_darling_test,
    cramer_von_mises_test,
    epps_singleton_test,
    ks_test,
    mann_whitney_u_test,
    welch_t_test,
)

__all__ = [
    "OTHER", "CalibratedThreshold", "CategoricalProfile", "ColumnDrift", "ColumnKind", "ColumnProfile",
    "DatasetDrift", "DriftConfig", "KOfNAlarm", "NumericProfile", "Profile", "StatisticUndefined", "TestResult",
    "adjust_p_values", "align_categories", "anderson_darling_test", "build_profile", "build_profile_chunks",
    "categorical_test", "category_distances", "category_label", "chi2_homogeneity", "compare", "compare_column",
    "contingency_table", "cramer_von_mises_test", "dataset_drift", "energy_distance", "epps_singleton_test",
    "evidently_column_drift", "evidently_dataset_drift", "fisher_exact_test", "g_test", "hellinger_distance",
    "infer_kind", "js_distance", "kind_of", "kl_divergence", "ks_test", "linf_distance", "mann_whitney_u_test",
    "merge_profiles", "psi", "total_variation_distance", "two_proportion_z_test", "wasserstein",
    "wasserstein_histogram", "wasserstein_normalised", "welch_t_test",
]
