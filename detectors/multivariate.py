"""Multivariate drift: is the joint distribution of several columns different in the current window?

Univariate tests look at one column at a time and miss changes that only show
in the joint distribution (a correlation that flips while every marginal stays
the same) or that are spread thinly over many columns (an embedding whose
shift lies in a subspace). This module holds three tests over row-aligned
float matrices, plus helpers that turn embedding columns into such matrices:

* :func:`mmd_test` — maximum mean discrepancy with an RBF kernel and a
  permutation p-value (Gretton et al., JMLR 2012).
* :func:`domain_classifier_test` — a classifier learns to tell reference rows
  from current rows; its held-out ROC AUC is the statistic and the
  Mann–Whitney U test on its held-out scores gives the p-value.
* :func:`pca_reconstruction_test` — PCA fitted on the reference; the mean
  reconstruction error of the current window is compared with a band from
  reference chunks (data reconstruction drift as NannyML describes it).

Inputs are ``reference`` of shape ``(n, d)`` and ``current`` of shape
``(m, d)``, finite floats (callers drop rows holding NaN first). Every test is
deterministic for a given ``seed``: randomness comes only from
``numpy.random.default_rng(seed)`` and scikit-learn's ``random_state``. Cost
is bounded: each test subsamples to a documented maximum number of rows.
Below a documented minimum number of rows a test returns
``status="insufficient_data"`` with ``None`` in place of every value.

Windows summarised by profiles (:mod:`detectors.profile`) are tested through
:func:`profile_matrix`, which joins the numeric columns' bottom-k samples on
their row keys into such a matrix, and :func:`multivariate_drift`, which runs
the tests on the joined samples of a reference and a current profile.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detectors.profile import NumericProfile, Profile, kind_of

OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"

# Permuted statistics within this absolute distance of the observed MMD² count
# as ties (>=): equal statistics computed over different index sets may differ
# in the last bits. MMD² with a kernel bounded by 1 is O(1), so 1e-12 is far
# below any real difference.
_TIE_TOLERANCE = 1e-12

# Reconstruction errors are in reference standard deviations. When the kept
# components span (almost) all the variance, errors are SVD rounding noise
# (~1e-16); a current window only leaves the band if it is outside by more
# than this, so noise never reads as drift.
_BAND_TOLERANCE = 1e-9


@dataclass(frozen=True)
class MultivariateResult:
    """Outcome of a multivariate drift test.

    Attributes:
        method: ``"mmd"``, ``"domain_classifier"`` or ``"pca_reconstruction"``.
        statistic: the test statistic (unbiased MMD²; held-out ROC AUC in
            ``[0, 1]``; mean reconstruction error >= 0 of the current window),
            or ``None`` when ``status`` is ``"insufficient_data"``.
        p_value: in ``(0, 1]``, or ``None`` when the method has none (PCA
            reconstruction) or data is insufficient.
        threshold: the bound the statistic is compared with (the AUC
            threshold; the upper bound of the reference band for PCA), or
            ``None`` when the decision rests on the p-value alone (MMD) or
            data is insufficient. Other decision inputs are in ``details``.
        drifted: the decision, or ``None`` when data is insufficient.
        status: ``"ok"`` or ``"insufficient_data"``.
        n_reference: reference rows given (before any subsampling).
        n_current: current rows given (before any subsampling).
        details: method-specific numbers (rows used, bandwidth, alpha, ...);
            never NaN.
    """

    method: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool | None
    status: str
    n_reference: int
    n_current: int
    details: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- input handling


def _float_matrix(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (rows, columns), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one column")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must contain only finite values (drop rows with NaN or ±inf first)")
    return arr


def _matrices(reference: ArrayLike, current: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ref = _float_matrix(reference, "reference")
    cur = _float_matrix(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} columns but current has {cur.shape[1]}")
    return ref, cur


def _check_positive_int(value: int, name: str, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_share(value: float, name: str) -> None:
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")


def _subsample(x: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_rows`` rows drawn without replacement; kept in their original order."""
    if x.shape[0] <= max_rows:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=max_rows, replace=False))]


def _column_scale(rows: np.ndarray) -> np.ndarray:
    """Per-column standard deviation (ddof=0) of ``rows``; 1 for a constant column so it is only centred."""
    sd = rows.std(axis=0)
    return np.where(sd > 0, sd, 1.0)


def _insufficient(method: str, n_ref: int, n_cur: int, reason: str, **details: Any) -> MultivariateResult:
    return MultivariateResult(
        method=method,
        statistic=None,
        p_value=None,
        threshold=None,
        drifted=None,
        status=INSUFFICIENT_DATA,
        n_reference=n_ref,
        n_current=n_cur,
        details={"reason": reason, **details},
    )


# ----------------------------------------------------------------------------- maximum mean discrepancy


def median_heuristic_bandwidth(pooled: ArrayLike) -> float:
    """RBF bandwidth ``σ`` by the median heuristic (Gretton et al., JMLR 2012, section 8).

    ``σ = median{ ||z_i - z_j|| : i < j }``, the median Euclidean distance over
    all distinct pairs of the pooled sample (distances, not squared distances).
    Guards: when that median is 0 (at least half of the pairs coincide, as with
    heavily tied data) the mean of the positive distances is used instead; when
    every distance is 0 (all rows identical) ``σ = 1`` — any value gives a
    kernel matrix of ones and MMD² = 0 then.

    Args:
        pooled: rows of shape ``(N, d)``, N >= 2, finite.

    Returns:
        ``σ > 0``, in the units of the columns.

    Raises:
        ValueError: fewer than two rows, not 2-D, or non-finite values.
    """
    z = _float_matrix(pooled, "pooled")
    if z.shape[0] < 2:
        raise ValueError("the median heuristic needs at least two rows")
    return _bandwidth_from_sq_distances(cdist(z, z, "sqeuclidean"))


def _bandwidth_from_sq_distances(sq: np.ndarray) -> float:
    iu = np.triu_indices(sq.shape[0], k=1)
    dist = np.sqrt(sq[iu])
    sigma = float(np.median(dist))
    if sigma > 0:
        return sigma
    positive = dist[dist > 0]
    return float(positive.mean()) if positive.size else 1.0


def _mmd2_unbiased(kernel: np.ndarray, groups: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD² for each row of ``groups`` (1 marks the reference rows, 0 the current rows).

    With ``a`` the indicator of the reference rows and ``b = 1 - a``:
    ``Σ_{i≠j∈X} k = aᵀKa - aᵀdiag(K)``, ``Σ_{i∈X, j∈Y} k = aᵀKb``, and the
    current-current sum follows from the total, so one matrix product covers
    every permutation.
    """
    ka = groups @ kernel  # (B, N); the kernel is symmetric
    diag = np.diag(kernel)
    s_xx = np.einsum("bn,bn->b", ka, groups)
    s_xy = ka.sum(axis=1) - s_xx
    s_yy = kernel.sum() - s_xx - 2.0 * s_xy
    d_x = groups @ diag
    d_y = diag.sum() - d_x
    return (s_xx - d_x) / (n * (n - 1)) + (s_yy - d_y) / (m * (m - 1)) - 2.0 * s_xy / (n * m)


def mmd_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    n_permutations: int = 200,
    alpha: float = 0.05,
    standardize: bool = True,
    max_rows: int = 1000,
    min_rows: int = 10,
    seed: int = 0,
) -> MultivariateResult:
    """Kernel two-sample test by maximum mean discrepancy (Gretton et al., JMLR 2012).

    Statistic: the unbiased estimate (their eq. 3)
    ``MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i,x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i,y_j)
    - 2/(nm) Σ_{i,j} k(x_i,y_j)`` with the RBF kernel
    ``k(x, y) = exp(-||x - y||² / (2σ²))`` and ``σ`` from
    :func:`median_heuristic_bandwidth` on the pooled sample. MMD²_u can be
    slightly negative when the distributions agree.

    p-value: a permutation test. The pooled rows are split at random into
    groups of sizes n and m, ``n_permutations`` = B times, and
    ``p = (1 + #{permuted MMD²_u >= observed}) / (1 + B)``, counting the
    observed split as one of the permutations, so ``p >= 1/(B+1)`` is never 0
    and the test is exact (Phipson & Smyth 2010). The column scaling and the
    bandwidth are functions of the pooled sample only, identical under every
    permutation, so choosing them from the data keeps the test exact.

    With ``standardize`` (default) every column is first centred by the
    pooled mean and divided by the pooled standard deviation (ddof=0; a
    constant column by 1) of the reference and current rows together, so one
    bandwidth suits columns of different units. Scaling by the reference
    side alone would depend on which rows are labelled reference and break
    the permutation test's exactness. Drift when ``p < alpha``.

    Cost: each side is subsampled (seeded, without replacement) to at most
    ``max_rows`` rows; the ``N×N`` kernel matrix (N <= 2·max_rows) is built
    once and each permutation costs one row of a matrix product, O(B·N²).

    Args:
        reference: shape ``(n, d)``, finite.
        current: shape ``(m, d)``, finite, same d.
        n_permutations: B >= 1; the smallest reachable p-value is 1/(B+1).
        alpha: significance level in (0, 1).
        standardize: scale columns by the pooled standard deviation.
        max_rows: rows kept per side, >= min_rows.
        min_rows: fewer rows on either side give ``"insufficient_data"``
            (default 10; at least 2, which MMD²_u needs).
        seed: seeds subsampling and permutations.

    Returns:
        :class:`MultivariateResult` with ``method="mmd"``, ``statistic=MMD²_u``,
        ``threshold=None``; ``details`` holds ``bandwidth``, ``alpha``,
        ``n_permutations``, ``n_reference_used``, ``n_current_used``.

    Raises:
        ValueError: inputs not 2-D, non-finite, or with different column
            counts; invalid parameters.
    """
    ref, cur = _matrices(reference, current)
    _check_positive_int(n_permutations, "n_permutations", 1)
    _check_positive_int(min_rows, "min_rows", 2)
    _check_positive_int(max_rows, "max_rows", min_rows)
    _check_share(alpha, "alpha")
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if min(n_ref, n_cur) < min_rows:
        return _insufficient("mmd", n_ref, n_cur, f"each window needs at least {min_rows} rows", min_rows=min_rows)

    rng = np.random.default_rng(seed)
    x = _subsample(ref, max_rows, rng)
    y = _subsample(cur, max_rows, rng)
    n, m = x.shape[0], y.shape[0]
    pooled = np.vstack([x, y])
    if standardize:
        # Pooled, not reference, moments: the same for every split, so the permutation test stays exact.
        pooled = (pooled - pooled.mean(axis=0)) / _column_scale(pooled)
    sq = cdist(pooled, pooled, "sqeuclidean")
    sigma = _bandwidth_from_sq_distances(sq)
    kernel = np.exp(-sq / (2.0 * sigma * sigma))

    observed_split = np.concatenate([np.ones(n), np.zeros(m)])
    permuted = rng.permuted(np.tile(observed_split, (n_permutations, 1)), axis=1)
    stats = _mmd2_unbiased(kernel, np.vstack([observed_split, permuted]), n, m)
    observed = float(stats[0])
    exceed = int(np.count_nonzero(stats[1:] >= observed - _TIE_TOLERANCE))
    p_value = (1 + exceed) / (1 + n_permutations)
    return MultivariateResult(
        method="mmd",
        statistic=observed,
        p_value=p_value,
        threshold=None,
        drifted=p_value < alpha,
        status=OK,
        n_reference=n_ref,
        n_current=n_cur,
        details={
            "bandwidth": sigma,
            "alpha": alpha,
            "n_permutations": n_permutations,
            "n_reference_used": n,
            "n_current_used": m,
        },
    )


# ----------------------------------------------------------------------------- domain classifier


def auc_mann_whitney(scores_reference: ArrayLike, scores_current: ArrayLike) -> tuple[float, float, float]:
    """ROC AUC of scores that should rank current rows above reference rows, with its p-value.

    ``AUC = U / (n0·n1)`` where ``U`` is the Mann–Whitney U statistic of the
    current scores against the reference scores (pairs with the current score
    higher count 1, ties 1/2) — the identity of Bamber (1975) / Hanley &
    McNeil (1982). U and the p-value come from
    ``scipy.stats.mannwhitneyu(current, reference, alternative="greater")``;
    AUC is computed as ``U / (n0·n1)``, one correctly rounded division of an
    exact count, and equals ``sklearn.metrics.roc_auc_score`` (current =
    positive class) up to that function's summation rounding (~1e-16):
    the one-sided test of the null that a current score is no more likely to
    exceed a reference score than the reverse (AUC = 0.5). This is valid only
    for scores of rows the classifier was not trained on.

    Args:
        scores_reference: shape ``(n0,)``, n0 >= 1, finite.
        scores_current: shape ``(n1,)``, n1 >= 1, finite.

    Returns:
        ``(auc, u, p_value)``; auc in ``[0, 1]``, u in ``[0, n0·n1]``, p in ``(0, 1]``.

    Raises:
        ValueError: an empty or non-finite score array.
    """
    s0 = np.asarray(scores_reference, dtype=np.float64).ravel()
    s1 = np.asarray(scores_current, dtype=np.float64).ravel()
    if s0.size == 0 or s1.size == 0:
        raise ValueError("both score arrays must be non-empty")
    if not (np.all(np.isfinite(s0)) and np.all(np.isfinite(s1))):
        raise ValueError("scores must be finite")
    res = mannwhitneyu(s1, s0, alternative="greater")
    u = float(res.statistic)
    return u / (s0.size * s1.size), u, float(res.pvalue)


# sklearn's default minimum leaf size for gradient boosting; used from 200 training rows up.
_LEAF_ROWS = 20


def _leaf_size(n_train: int) -> int:
    """Minimum rows per gradient-boosting leaf: ``min(20, max(1, n_train // 10))``.

    Leaves of 20 rows cannot split fewer than 40 training rows, so on small
    windows the model would score every row alike (AUC 0.5, p = 1) whatever
    the shift. A tenth of the training rows still leaves room for splits.
    """
    return min(_LEAF_ROWS, max(1, n_train // 10))


def _domain_model(model: str, seed: int, n_train: int) -> Any:
    if model == "gradient_boosting":
        # Early stopping off: its validation split would make the fit depend on row count thresholds.
        return HistGradientBoostingClassifier(
            max_iter=100, early_stopping=False, min_samples_leaf=_leaf_size(n_train), random_state=seed
        )
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def domain_classifier_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    model: Literal["gradient_boosting", "logistic"] = "gradient_boosting",
    test_size: float = 0.5,
    alpha: float = 0.05,
    auc_threshold: float = 0.55,
    decision: Literal["both", "p_value", "auc"] = "both",
    max_rows: int = 5000,
    min_rows: int = 20,
    seed: int = 0,
) -> MultivariateResult:
    """Classifier two-sample test: can a model tell current rows from reference rows?

    Reference rows are labelled 0 and current rows 1; a stratified, seeded
    split (``sklearn.model_selection.train_test_split``, ``test_size`` held
    out) trains the classifier, and its predicted probability of "current" on
    the held-out rows is scored with :func:`auc_mann_whitney`: statistic = ROC
    AUC (0.5 = indistinguishable, 1 = fully separable), p-value = one-sided
    Mann–Whitney U test (under the null the held-out AUC equals
    ``U/(n0·n1)`` of exchangeable scores). See Lopez-Paz & Oquab, "Revisiting
    classifier two-sample tests", ICLR 2017.

    Model: ``"gradient_boosting"`` (default,
    ``HistGradientBoostingClassifier``, 100 iterations, no early stopping)
    finds interactions and non-linear differences — a change of correlation
    with unchanged marginals, a shift on a curved region — that a linear
    model cannot separate, and needs no feature scaling. Its minimum leaf
    size is ``min(20, max(1, n_train // 10))`` for ``n_train`` training rows:
    sklearn's default of 20 from 200 training rows up, smaller below, because
    leaves of 20 rows cannot split fewer than 40 rows and the model would then
    score every row alike (AUC 0.5, p = 1) even for a shift of many standard
    deviations. Small leaves may overfit, which costs power but not validity:
    the p-value comes from held-out rows. ``"logistic"``
    (standardised logistic regression) is faster and sees only differences a
    hyperplane can separate, chiefly mean shifts.

    Decision (``decision``): ``"both"`` (default) flags drift when
    ``p < alpha`` and ``AUC > auc_threshold`` (default 0.55) — significance
    alone flags negligible differences in large windows, so the AUC is the
    effect size that must also be material; ``"p_value"`` or ``"auc"`` use one
    rule alone.

    Cost: each side is subsampled (seeded) to at most ``max_rows`` rows
    before the split.

    Args:
        reference: shape ``(n, d)``, finite.
        current: shape ``(m, d)``, finite, same d.
        model: ``"gradient_boosting"`` or ``"logistic"``.
        test_size: share of rows held out, in (0, 1); default 0.5.
        alpha: significance level in (0, 1).
        auc_threshold: AUC above which the difference is material, in (0.5, 1).
        decision: ``"both"``, ``"p_value"`` or ``"auc"``.
        max_rows: rows kept per side, >= min_rows.
        min_rows: fewer rows on either side give ``"insufficient_data"``
            (default 20, so each side has about 10 held-out rows at 0.5); so
            does a ``test_size`` that leaves a side fewer than 2 training or
            held-out rows.
        seed: seeds subsampling, the split and the model.

    Returns:
        :class:`MultivariateResult` with ``method="domain_classifier"``,
        ``statistic=AUC``, ``threshold=auc_threshold``; ``details`` holds
        ``u_statistic``, ``alpha``, ``decision``, ``model``, ``n_train``,
        ``n_test_reference``, ``n_test_current``, ``n_reference_used``,
        ``n_current_used`` and, for gradient boosting, ``min_samples_leaf``.

    Raises:
        ValueError: inputs not 2-D, non-finite, or with different column
            counts; invalid parameters.
    """
    ref, cur = _matrices(reference, current)
    _check_share(test_size, "test_size")
    _check_share(alpha, "alpha")
    if not 0.5 <= auc_threshold < 1.0:
        raise ValueError(f"auc_threshold must be in [0.5, 1), got {auc_threshold!r}")
    if decision not in ("both", "p_value", "auc"):
        raise ValueError(f"decision must be 'both', 'p_value' or 'auc', got {decision!r}")
    _check_positive_int(min_rows, "min_rows", 4)
    _check_positive_int(max_rows, "max_rows", min_rows)
    if model not in ("gradient_boosting", "logistic"):
        raise ValueError(f"model must be 'gradient_boosting' or 'logistic', got {model!r}")
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if min(n_ref, n_cur) < min_rows:
        return _insufficient(
            "domain_classifier", n_ref, n_cur, f"each window needs at least {min_rows} rows", min_rows=min_rows
        )

    rng = np.random.default_rng(seed)
    x = _subsample(ref, max_rows, rng)
    y = _subsample(cur, max_rows, rng)
    smaller = min(x.shape[0], y.shape[0])
    if not 2 <= smaller * test_size <= smaller - 2:
        # Both sides need rows to train on and to score, or the split (and the AUC) is undefined.
        return _insufficient(
            "domain_classifier",
            n_ref,
            n_cur,
            f"test_size {test_size} leaves fewer than 2 training or held-out rows of a window",
            min_rows=min_rows,
        )
    features = np.vstack([x, y])
    labels = np.concatenate([np.zeros(x.shape[0], dtype=np.int64), np.ones(y.shape[0], dtype=np.int64)])
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=test_size, stratify=labels, random_state=seed
    )
    clf = _domain_model(model, seed, y_train.size)
    clf.fit(x_train, y_train)
    scores = clf.predict_proba(x_test)[:, 1]
    auc, u, p_value = auc_mann_whitney(scores[y_test == 0], scores[y_test == 1])
    significant, material = p_value < alpha, auc > auc_threshold
    drifted = {"both": significant and material, "p_value": significant, "auc": material}[decision]
    return MultivariateResult(
        method="domain_classifier",
        statistic=auc,
        p_value=p_value,
        threshold=auc_threshold,
        drifted=bool(drifted),
        status=OK,
        n_reference=n_ref,
        n_current=n_cur,
        details={
            "u_statistic": u,
            "alpha": alpha,
            "decision": decision,
            "model": model,
            "n_train": int(y_train.size),
            "n_test_reference": int(np.count_nonzero(y_test == 0)),
            "n_test_current": int(np.count_nonzero(y_test == 1)),
            "n_reference_used": int(x.shape[0]),
            "n_current_used": int(y.shape[0]),
            **({"min_samples_leaf": _leaf_size(y_train.size)} if model == "gradient_boosting" else {}),
        },
    )


# ----------------------------------------------------------------------------- PCA reconstruction error


def pca_reconstruction_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    variance_share: float = 0.65,
    chunk_size: int | None = None,
    n_std: float = 3.0,
    quantile: float | None = None,
    min_chunks: int = 5,
    min_rows: int = 10,
    max_fit_rows: int = 100_000,
    seed: int = 0,
) -> MultivariateResult:
    """Data reconstruction drift: mean PCA reconstruction error against a band from reference chunks.

    Method (data reconstruction drift as described in NannyML's documentation):

    1. Standardise every column with the reference mean and standard
       deviation (a constant reference column is centred only).
    2. Fit PCA (``sklearn.decomposition.PCA``, full SVD) on the standardised
       reference, keeping the fewest components whose cumulative share of
       explained variance exceeds ``variance_share`` (default 0.65).
    3. Reconstruction error of a row ``z`` = Euclidean distance
       ``||z - ẑ||`` between the standardised row and its reconstruction from
       the kept components (in reference standard deviations, >= 0).
    4. Split the reference, in its row (time) order, into consecutive chunks
       of ``chunk_size`` rows; a trailing partial chunk is dropped. The
       default chunk size is ``min(m, n // min_chunks)``: the current
       window's row count m, or, when the reference (n rows) holds fewer than
       ``min_chunks`` chunks that large, the size that gives exactly
       ``min_chunks`` chunks. Smaller chunks than the current window make the
       band wider than the spread of the current mean (the chunk means vary
       more), so the test is then conservative: fewer false alarms, less
       power; ``details["chunk_size_reduced"]`` says so. The band is
       ``mean ± n_std · std`` (sample std, ddof=1; default 3) of the chunk
       mean errors, or, with ``quantile`` = q, the ``1-q`` and ``q``
       quantiles of the chunk means.
    5. Statistic = mean error of the current window; drifted when it falls
       outside the band by more than 1e-9 (rounding noise when the kept
       components span all the variance is not drift). Errors above the band mean the current rows no longer
       follow the reference's correlation structure; errors below it mean the
       rows collapsed onto it (for example a column became constant).

    The method reacts to changes of the joint structure that leave every
    marginal unchanged, which univariate tests cannot see. Reference chunk
    errors are in-sample (the PCA was fitted on them), as in NannyML; with far
    more reference rows than columns the optimism is negligible. With one
    column the reconstruction is exact and the error always 0.

    Cost: PCA is fitted on at most ``max_fit_rows`` reference rows (seeded
    subsample); the errors of all reference rows are one matrix product.

    Args:
        reference: shape ``(n, d)``, rows in time order, finite.
        current: shape ``(m, d)``, finite, same d.
        variance_share: share of variance the kept components explain, in (0, 1).
        chunk_size: rows per reference chunk, >= 2; default
            ``min(m, n // min_chunks)`` (see step 4).
        n_std: half-width of the band in standard deviations of the chunk means, > 0.
        quantile: if given, in (0.5, 1): use quantile bounds instead of ``n_std``.
        min_chunks: fewer full reference chunks give ``"insufficient_data"``
            (default 5); with the default chunk size this happens only when
            the reference has fewer than ``2 * min_chunks`` rows (or the
            current window fewer than 2).
        min_rows: fewer current rows give ``"insufficient_data"`` (default 10).
        max_fit_rows: reference rows used to fit the PCA.
        seed: seeds the fit subsample.

    Returns:
        :class:`MultivariateResult` with ``method="pca_reconstruction"``,
        ``statistic`` = mean current error, ``p_value=None``, ``threshold`` =
        upper bound; ``details`` holds ``lower_threshold``,
        ``upper_threshold``, ``n_components``, ``explained_variance``,
        ``reference_chunk_mean``, ``reference_chunk_std``, ``n_chunks``,
        ``chunk_size``, ``chunk_size_reduced`` (chunks smaller than the
        current window: a wider, conservative band).

    Raises:
        ValueError: inputs not 2-D, non-finite, or with different column
            counts; invalid parameters.
    """
    ref, cur = _matrices(reference, current)
    _check_share(variance_share, "variance_share")
    if not n_std > 0:
        raise ValueError(f"n_std must be > 0, got {n_std!r}")
    if quantile is not None and not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0.5, 1), got {quantile!r}")
    _check_positive_int(min_chunks, "min_chunks", 2)
    _check_positive_int(min_rows, "min_rows", 1)
    _check_positive_int(max_fit_rows, "max_fit_rows", 2)
    if chunk_size is not None:
        _check_positive_int(chunk_size, "chunk_size", 2)
    n_ref, n_cur = ref.shape[0], cur.shape[0]
    if n_cur < min_rows:
        return _insufficient(
            "pca_reconstruction", n_ref, n_cur, f"the current window needs at least {min_rows} rows", min_rows=min_rows
        )
    # Default: chunks the size of the current window, smaller when the reference cannot hold min_chunks of them.
    size = chunk_size if chunk_size is not None else min(n_cur, n_ref // min_chunks)
    if size < 2:
        return _insufficient(
            "pca_reconstruction",
            n_ref,
            n_cur,
            f"chunks of min({n_cur} current rows, {n_ref} reference rows // {min_chunks}) = {size} rows;"
            " at least 2 are needed",
            min_chunks=min_chunks,
        )
    n_chunks = n_ref // size
    if n_chunks < min_chunks:
        return _insufficient(
            "pca_reconstruction",
            n_ref,
            n_cur,
            f"the reference holds {n_chunks} chunks of {size} rows, at least {min_chunks} are needed",
            min_chunks=min_chunks,
            chunk_size=size,
        )

    centre, scale = ref.mean(axis=0), _column_scale(ref)
    z_ref = (ref - centre) / scale
    z_cur = (cur - centre) / scale
    fit_rows = _subsample(z_ref, max_fit_rows, np.random.default_rng(seed))
    mean, components, explained = _principal_axes(fit_rows, variance_share)

    def errors(z: np.ndarray) -> np.ndarray:
        centred = z - mean
        residual = centred - (centred @ components.T) @ components
        return np.sqrt(np.einsum("ij,ij->i", residual, residual))

    chunk_means = errors(z_ref[: n_chunks * size]).reshape(n_chunks, size).mean(axis=1)
    centre_err, spread = float(chunk_means.mean()), float(chunk_means.std(ddof=1))
    if quantile is None:
        lower, upper = centre_err - n_std * spread, centre_err + n_std * spread
    else:
        lower, upper = (float(v) for v in np.quantile(chunk_means, [1.0 - quantile, quantile]))
    statistic = float(errors(z_cur).mean())
    return MultivariateResult(
        method="pca_reconstruction",
        statistic=statistic,
        p_value=None,
        threshold=upper,
        drifted=bool(statistic > upper + _BAND_TOLERANCE or statistic < lower - _BAND_TOLERANCE),
        status=OK,
        n_reference=n_ref,
        n_current=n_cur,
        details={
            "lower_threshold": lower,
            "upper_threshold": upper,
            "n_components": int(components.shape[0]),
            "explained_variance": explained,
            "reference_chunk_mean": centre_err,
            "reference_chunk_std": spread,
            "n_chunks": int(n_chunks),
            "chunk_size": int(size),
            "chunk_size_reduced": bool(size < n_cur),
        },
    )


def _principal_axes(z: np.ndarray, variance_share: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The fit's mean, its kept principal axes (rows), and the share of variance they explain."""
    if np.all(z.var(axis=0) == 0):
        # No variance to explain (every reference column constant): keep no axis, error = distance from the mean.
        return z.mean(axis=0), np.zeros((0, z.shape[1])), 0.0
    pca = PCA(n_components=variance_share, svd_solver="full").fit(z)
    return pca.mean_, pca.components_, float(pca.explained_variance_ratio_.sum())


# ----------------------------------------------------------------------------- embedding columns


def embedding_matrix(values: pd.Series | Sequence[ArrayLike], name: str = "embedding") -> np.ndarray:
    """Stack fixed-length float vectors (one per row) into an ``(n, d)`` float64 matrix.

    Args:
        values: a pandas Series or sequence whose elements are lists, tuples or
            1-D arrays of the same length d >= 1.
        name: the column name used in error messages.

    Returns:
        Array of shape ``(n, d)``; ``(0, 0)`` when ``values`` is empty. Values
        are not checked for finiteness here (the tests reject NaN/±inf).

    Raises:
        ValueError: an element that is missing or not a 1-D vector, vectors of
            different lengths (the first offending row is named), or
            non-numeric entries.
    """
    items = values.tolist() if isinstance(values, pd.Series) else list(values)
    if not items:
        return np.zeros((0, 0))
    lengths = np.fromiter((_vector_length(v, name, i) for i, v in enumerate(items)), dtype=np.int64, count=len(items))
    ragged = np.flatnonzero(lengths != lengths[0])
    if ragged.size:
        i = int(ragged[0])
        raise ValueError(
            f"{name}: vectors have different lengths ({lengths[0]} in row 0, {lengths[i]} in row {i})"
        )
    if lengths[0] == 0:
        raise ValueError(f"{name}: vectors are empty")
    try:
        return np.asarray(items, dtype=np.float64).reshape(len(items), int(lengths[0]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: vectors must hold numbers ({exc})") from None


def _vector_length(v: Any, name: str, row: int) -> int:
    if v is None or np.ndim(v) != 1:
        raise ValueError(f"{name}: row {row} is not a 1-D vector (got {type(v).__name__})")
    return len(v)


def embedding_columns(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Gather columns ``name[0]`` .. ``name[d-1]`` of a frame into an ``(n, d)`` float64 matrix.

    Columns are ordered by their index, whatever their order in the frame.
    An index is a decimal integer without leading zeros (``e[01]`` is not
    position 1 of ``e``).

    Args:
        frame: holds the flattened embedding columns (other columns are ignored).
        name: the embedding's name.

    Returns:
        Array of shape ``(len(frame), d)``.

    Raises:
        ValueError: no ``name[i]`` column, indices not exactly ``0..d-1`` (the
            missing ones are named), or non-numeric values.
    """
    indices: dict[int, str] = {}
    for col in frame.columns:
        parsed = _embedding_position(col)
        if parsed is not None and parsed[0] == name:
            indices[parsed[1]] = col
    if not indices:
        raise ValueError(f"no columns named {name}[0], {name}[1], ... in the frame")
    d = max(indices) + 1
    missing = [i for i in range(d) if i not in indices]
    if missing:
        shown = ", ".join(f"{name}[{i}]" for i in missing[:5])
        raise ValueError(f"embedding {name} has {d} positions but lacks column(s) {shown}")
    try:
        return frame[[indices[i] for i in range(d)]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"embedding {name}: columns must hold numbers ({exc})") from None


# A flattened embedding column: "<name>[<index>]", the index in canonical decimal.
_EMBEDDING_COLUMN = re.compile(r"(.+)\[(0|[1-9][0-9]*)\]", re.ASCII)


def _embedding_position(column: Any) -> tuple[str, int] | None:
    """``("emb", 3)`` for the column name ``"emb[3]"``; ``None`` for any other name."""
    match = _EMBEDDING_COLUMN.fullmatch(column) if isinstance(column, str) else None
    return (match.group(1), int(match.group(2))) if match else None


def embedding_groups(column_names: Iterable[str]) -> dict[str, list[str]]:
    """Find the embeddings among flattened column names ``name[0]`` .. ``name[d-1]``.

    A column named ``name[i]`` (``i`` a decimal integer without leading zeros)
    holds position ``i`` of the embedding ``name``. A name counts as an
    embedding only when its positions are exactly ``0 .. d-1`` (d >= 1);
    names with a gap (``e[0]``, ``e[2]``) are left out, as are all other
    columns, since they are not fixed-length vectors.

    Args:
        column_names: column names, e.g. ``Profile.columns`` or ``frame.columns``;
            names that are not strings are ignored.

    Returns:
        name -> its d column names in position order, names in order of
        first appearance; empty when there is no embedding.
    """
    positions: dict[str, dict[int, str]] = {}
    for col in column_names:
        parsed = _embedding_position(col)
        if parsed is not None:
            positions.setdefault(parsed[0], {})[parsed[1]] = col
    return {
        name: [slots[i] for i in range(len(slots))]
        for name, slots in positions.items()
        if max(slots) == len(slots) - 1
    }


# ----------------------------------------------------------------------------- profiles


def _numeric_sample(profile: Profile, column: str) -> tuple[np.ndarray, np.ndarray]:
    if column not in profile.columns:
        raise ValueError(f"column {column!r} is not in the profile")
    prof = profile.columns[column]
    if not isinstance(prof, NumericProfile):
        raise ValueError(f"column {column!r} is {kind_of(prof)}, the multivariate tests need numeric columns")
    keys = prof.sample_keys
    # Keys are sorted (the profile keeps its sample in key order); equal
    # neighbours mean repeated row ids, whose rows cannot be told apart.
    if keys.size > 1 and np.any(keys[1:] == keys[:-1]):
        raise ValueError(
            f"column {column!r}: its sample repeats a row key (repeated row ids), so rows cannot be joined"
        )
    return keys, prof.sample


def profile_matrix(profile: Profile, columns: Sequence[str]) -> np.ndarray:
    """The sampled rows of a window's profile as a row-aligned ``(n, d)`` matrix.

    Each numeric column of a profile keeps the finite values of the rows with
    the smallest sampling keys (bottom-k sample, ``sample_keys``). The inner
    join of the listed columns' samples on those keys gives the rows whose key
    is in every sample, in increasing key order, with their values in the
    order of ``columns``. Because keys are a pseudo-random function of the row
    ids, these rows are a uniform sample of the window's rows in which every
    listed column is finite.

    Rows missing (None, NaN) or infinite in any listed column drop out. When
    no listed column has such values (and the columns share one
    ``sample_size``) the samples hold the same keys and the join keeps the
    whole sample, ``min(n_rows, sample_size)`` rows. When columns have missing
    values in different rows, the join can be much smaller than any sample:
    a full sample of a column reaches only as far in key order as that
    column's k-th finite row.

    Args:
        profile: one window's :class:`~detectors.profile.Profile`.
        columns: d >= 1 distinct names of numeric columns of ``profile``.

    Returns:
        float64 array of shape ``(n, d)``, finite; ``n`` may be 0.

    Raises:
        ValueError: no column, a repeated name, a column absent from the
            profile or not numeric, or a sample holding one key twice
            (the profile was built with repeated row ids).
    """
    if isinstance(columns, str):
        raise ValueError("columns must be a sequence of column names, not one string")
    cols = list(columns)
    if not cols:
        raise ValueError("columns must name at least one column")
    if len(set(cols)) != len(cols):
        raise ValueError(f"columns repeat a name: {cols}")
    samples = [_numeric_sample(profile, c) for c in cols]
    common = samples[0][0]
    for keys, _ in samples[1:]:
        common = np.intersect1d(common, keys, assume_unique=True)
    matrix = np.empty((common.size, len(cols)), dtype=np.float64)
    for j, (keys, values) in enumerate(samples):
        matrix[:, j] = values[np.searchsorted(keys, common)]
    return matrix


#: The tests :func:`multivariate_drift` can run, by name.
METHODS: dict[str, Any] = {
    "mmd": mmd_test,
    "domain_classifier": domain_classifier_test,
    "pca_reconstruction": pca_reconstruction_test,
}


def multivariate_drift(
    reference: Profile,
    current: Profile,
    columns: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = ("mmd", "domain_classifier", "pca_reconstruction"),
    seed: int = 0,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[MultivariateResult]:
    """Multivariate drift between two windows summarised by profiles.

    Both profiles' samples are joined with :func:`profile_matrix` over the
    same columns, and each chosen test runs on the two joined matrices:
    :func:`mmd_test`, :func:`domain_classifier_test` and
    :func:`pca_reconstruction_test`, with their defaults unless ``options``
    says otherwise. The flattened columns ``name[0]`` .. ``name[d-1]`` of an
    embedding are ordinary numeric columns here; pass
    ``embedding_groups(profile.columns)[name]`` as ``columns`` to test one
    embedding on its own.

    For the PCA test the joined reference sample stands in for the reference
    rows. It is in key order, which is a random order, so its chunks are
    random disjoint subsets: the band measures sampling variation, not the
    reference's variation over time. Unless ``options`` sets ``chunk_size``,
    chunks have the test's default ``min(m, n // min_chunks)`` rows (n, m =
    joined reference and current rows), so the reference always yields
    ``min_chunks`` chunks when it has the rows; chunks smaller than the
    current window give a wider band than the current mean's spread, which
    makes the test conservative.

    A join that leaves fewer rows than a test needs gives that test's
    ``"insufficient_data"`` result. ``n_reference`` and ``n_current`` of
    each result count joined sample rows, not window rows, and ``details``
    gains ``columns``.

    Args:
        reference: profile of the reference window.
        current: profile of the current window.
        columns: numeric columns to test jointly (d >= 1); default every
            numeric column of ``reference`` that is also numeric in
            ``current``, in the reference's order.
        methods: names from :data:`METHODS`, run in the order given.
        seed: passed to every test.
        options: method name -> keyword arguments for that test (e.g.
            ``{"mmd": {"n_permutations": 500}}``); ``seed`` is not allowed here.

    Returns:
        One :class:`MultivariateResult` per entry of ``methods``, in order.

    Raises:
        ValueError: no method, an unknown method name or ``options`` for a
            method not run, no shared numeric column, any error of
            :func:`profile_matrix` for either profile, or invalid test
            parameters in ``options``.
    """
    chosen = list(methods)
    if not chosen:
        raise ValueError("methods must name at least one test")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    opts = {m: dict(kw) for m, kw in (options or {}).items()}
    stray = [m for m in opts if m not in chosen]
    if stray:
        raise ValueError(f"options given for method(s) {stray} that are not run")
    if any("seed" in kw for kw in opts.values()):
        raise ValueError("options must not set seed; pass seed= to multivariate_drift")
    if columns is None:
        cols = [
            name
            for name, prof in reference.columns.items()
            if isinstance(prof, NumericProfile) and isinstance(current.columns.get(name), NumericProfile)
        ]
        if not cols:
            raise ValueError("the reference and current profiles share no numeric column")
    elif isinstance(columns, str):
        raise ValueError("columns must be a sequence of column names, not one string")
    else:
        cols = list(columns)
    x = profile_matrix(reference, cols)
    y = profile_matrix(current, cols)

    results = []
    for method in chosen:
        result = METHODS[method](x, y, seed=seed, **opts.get(method, {}))
        results.append(dataclasses.replace(result, details={**result.details, "columns": cols}))
    return results
