"""Drift decision: compare a current window's profile with the reference profile.

Per column, a two-sample test gives the drift verdict (``p_value < alpha``)
and PSI, Jensen–Shannon and (numeric) normalised Wasserstein distances give the
size of the change. Per dataset, the share of drifted columns gives the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .distance import PSI_EPS, js_distance, psi, wasserstein_normalised
from .profile import OTHER, CategoricalProfile, ColumnKind, ColumnProfile, NumericProfile, Profile, kind_of
from .two_sample import chi2_homogeneity, contingency_table, ks_test

Status = Literal["ok", "insufficient_data"]


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds for the drift decision.

    Attributes:
        alpha: significance level in ``(0, 1)``; a column drifted when its
            test's p-value is below it. No multiple-testing correction is
            applied across columns.
        min_count: smallest number of usable values (finite numbers, or
            non-missing categories) needed in *each* window, >= 1; below it the
            column's status is ``"insufficient_data"``.
        psi_eps: empty-bin proportion floor passed to :func:`~detectors.distance.psi`, in ``(0, 1)``.

    Raises:
        ValueError: a field is out of range.
    """

    alpha: float = 0.05
    min_count: int = 30
    psi_eps: float = PSI_EPS

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if not 0.0 < self.psi_eps < 1.0:
            raise ValueError(f"psi_eps must be in (0, 1), got {self.psi_eps}")


@dataclass(frozen=True)
class ColumnDrift:
    """Drift result for one column.

    Attributes:
        column: column name.
        kind: ``"numeric"`` or ``"categorical"`` (the reference's kind).
        method: the test used, ``"ks"`` (numeric) or ``"chi2"`` (categorical).
        statistic: KS ``D`` in ``[0, 1]`` or Pearson ``X²`` >= 0.
        p_value: in ``[0, 1]``.
        drifted: ``p_value < alpha``.
        status: ``"ok"``, or ``"insufficient_data"`` when either window has
            fewer than ``min_count`` usable values; then ``statistic``,
            ``p_value``, ``drifted``, ``psi``, ``js_distance`` and
            ``wasserstein_normalised`` are all None (never NaN).
        psi: Population Stability Index >= 0 (nats).
        js_distance: Jensen–Shannon distance, base 2, in ``[0, 1]``.
        wasserstein_normalised: Wasserstein-1 distance in reference standard
            deviations, >= 0; None for categorical columns.
        n_reference: usable values in the reference window.
        n_current: usable values in the current window (0 if the column is
            absent from it).
        missing_share: share of the current window's rows where the column
            is missing (None/NaN) or ±inf, in ``[0, 1]``; 1.0 when the column
            is absent from a non-empty current window; None when the current
            window has no rows.
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

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-safe dict (str, int, float, bool, None)."""
        return asdict(self)


@dataclass(frozen=True)
class DatasetDrift:
    """Dataset-level verdict from per-column results.

    Attributes:
        n_columns: columns with status ``"ok"`` (>= 0).
        n_drifted: of those, how many drifted (``0 <= n_drifted <= n_columns``).
        share: ``n_drifted / n_columns`` in ``[0, 1]``; None when ``n_columns == 0``.
        drifted: ``share >= share_threshold``; None when ``share`` is None.
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


def _method(kind: ColumnKind) -> str:
    return "ks" if kind == "numeric" else "chi2"


def _usable_and_missing(profile: ColumnProfile) -> tuple[int, int]:
    """(usable values, rows without a usable value) of one column profile."""
    if isinstance(profile, NumericProfile):
        return profile.count, profile.missing + profile.nonfinite
    return profile.count, profile.missing


def _insufficient(
    column: str, kind: ColumnKind, n_reference: int, n_current: int, missing_share: float | None
) -> ColumnDrift:
    return ColumnDrift(
        column=column,
        kind=kind,
        method=_method(kind),
        statistic=None,
        p_value=None,
        drifted=None,
        status="insufficient_data",
        psi=None,
        js_distance=None,
        wasserstein_normalised=None,
        n_reference=n_reference,
        n_current=n_current,
        missing_share=missing_share,
    )


def align_categories(
    reference: CategoricalProfile, current: CategoricalProfile
) -> tuple[dict[str, int], dict[str, int]]:
    """Put two categorical profiles on a common set of categories.

    A category only the current window has stays a category of its own,
    unless the reference was capped (has ``"__other__"``): then the category
    may be one the reference folded away, so it is folded into the current's
    ``"__other__"`` as well. The current profile must have been built with
    ``build_profile(..., reference=...)`` so that it names every category the
    reference names.

    Returns:
        ``(reference_counts, current_counts)``; missing categories are simply
        absent (count 0), see :func:`~detectors.two_sample.contingency_table`.
    """
    ref = dict(reference.counts)
    cur = dict(current.counts)
    if OTHER in ref:
        folded = sum(cur.pop(c) for c in [c for c in cur if c not in ref])
        if folded:
            cur[OTHER] = cur.get(OTHER, 0) + folded
    return ref, cur


def compare_column(
    reference: ColumnProfile,
    current: ColumnProfile,
    cfg: DriftConfig = DriftConfig(),
    *,
    column: str = "<unnamed>",
) -> ColumnDrift:
    """Compare one column of the current window with the reference.

    Numeric: two-sided KS test on the samples; PSI and Jensen–Shannon distance
    on the histograms (both binned on the reference's edges); Wasserstein
    distance on the samples divided by the reference std. Categorical:
    chi-square test of homogeneity; PSI and Jensen–Shannon distance over the
    union of categories (see :func:`align_categories`). ``drifted`` is
    ``p_value < cfg.alpha``.

    Args:
        reference: the column's reference profile.
        current: the column's current-window profile, same kind.
        cfg: thresholds.
        column: column name, used in the result and in error messages.

    Returns:
        A :class:`ColumnDrift`; ``status="insufficient_data"`` (all statistics
        None) when either window has fewer than ``cfg.min_count`` usable values.

    Raises:
        ValueError: the two profiles are of different kinds, or numeric
            profiles have different bin edges (the current window was not
            built with ``reference=``).
    """
    kind = kind_of(reference)
    if kind_of(current) != kind:
        raise ValueError(
            f"column {column!r}: reference profile is {kind} but current profile is {kind_of(current)}"
        )
    n_ref, _ = _usable_and_missing(reference)
    n_cur, cur_missing = _usable_and_missing(current)
    rows = n_cur + cur_missing
    missing_share = cur_missing / rows if rows else None
    if n_ref < cfg.min_count or n_cur < cfg.min_count:
        return _insufficient(column, kind, n_ref, n_cur, missing_share)

    wasserstein: float | None = None
    if isinstance(reference, NumericProfile):
        assert isinstance(current, NumericProfile)
        if not np.array_equal(reference.edges, current.edges):
            raise ValueError(
                f"column {column!r}: current histogram uses different bin edges from the reference; "
                "build the current profile with build_profile(..., reference=reference_profile)"
            )
        test = ks_test(reference.sample, current.sample)
        ref_hist, cur_hist = reference.hist, current.hist
        wasserstein = wasserstein_normalised(reference.sample, current.sample, reference.std)
    else:
        assert isinstance(current, CategoricalProfile)
        ref_counts, cur_counts = align_categories(reference, current)
        test = chi2_homogeneity(ref_counts, cur_counts)
        _, table = contingency_table(ref_counts, cur_counts)
        ref_hist, cur_hist = table[0], table[1]

    return ColumnDrift(
        column=column,
        kind=kind,
        method=test.method,
        statistic=test.statistic,
        p_value=test.p_value,
        drifted=bool(test.p_value < cfg.alpha),
        status="ok",
        psi=psi(ref_hist, cur_hist, eps=cfg.psi_eps),
        js_distance=js_distance(ref_hist, cur_hist),
        wasserstein_normalised=wasserstein,
        n_reference=n_ref,
        n_current=n_cur,
        missing_share=missing_share,
    )


def compare(
    reference: Profile,
    current: Profile,
    cfg: DriftConfig = DriftConfig(),
    columns: Iterable[str] | None = None,
) -> list[ColumnDrift]:
    """Compare every reference column (or the listed ones) with the current window.

    Args:
        reference: profile of the reference window.
        current: profile of the current window, built with
            ``build_profile(..., reference=reference)``.
        cfg: thresholds.
        columns: names to compare, in this order; default all reference
            columns in reference order. Columns only the current window has are
            ignored.

    Returns:
        One :class:`ColumnDrift` per column. A column absent from the current
        window is ``"insufficient_data"`` with ``n_current == 0``.

    Raises:
        ValueError: a listed column is not in the reference, or a column's
            profiles are of different kinds (see :func:`compare_column`).
    """
    names = list(reference.columns) if columns is None else list(columns)
    unknown = [c for c in names if c not in reference.columns]
    if unknown:
        raise ValueError(f"columns not in the reference profile: {unknown}")
    results = []
    for name in names:
        ref_col = reference.columns[name]
        cur_col = current.columns.get(name)
        if cur_col is None:
            n_ref, _ = _usable_and_missing(ref_col)
            share = 1.0 if current.n_rows else None
            results.append(_insufficient(name, kind_of(ref_col), n_ref, 0, share))
        else:
            results.append(compare_column(ref_col, cur_col, cfg, column=name))
    return results


def dataset_drift(results: list[ColumnDrift], share_threshold: float = 0.5) -> DatasetDrift:
    """Summarise column results: is a large enough share of columns drifted?

    ``share = n_drifted / n_columns`` over the columns with status ``"ok"``;
    the dataset drifted when ``share >= share_threshold``.

    Args:
        results: per-column results, e.g. from :func:`compare`.
        share_threshold: in ``(0, 1]``.

    Returns:
        A :class:`DatasetDrift`; when no column has status ``"ok"``, share and
        drifted are None and status is ``"insufficient_data"``.

    Raises:
        ValueError: ``share_threshold`` outside ``(0, 1]``.
    """
    if not 0.0 < share_threshold <= 1.0:
        raise ValueError(f"share_threshold must be in (0, 1], got {share_threshold}")
    tested = [r for r in results if r.status == "ok"]
    n_columns = len(tested)
    n_drifted = sum(1 for r in tested if r.drifted)
    if n_columns == 0:
        return DatasetDrift(n_columns=0, n_drifted=0, share=None, drifted=None, status="insufficient_data")
    share = n_drifted / n_columns
    return DatasetDrift(
        n_columns=n_columns, n_drifted=n_drifted, share=share, drifted=share >= share_threshold, status="ok"
    )
