"""Prediction and performance drift.

Three parts:

* **Mergeable performance summaries** of one window, built from predictions
  and (possibly late, possibly missing) labels: :func:`classification_summary`
  and :func:`regression_summary`. ``a.merge(b)`` equals the summary of the
  concatenated rows *exactly*: counts are integers and every float sum is
  kept as an exact integer multiple of 2**-1074 (every finite float64 is
  one), so summation order cannot change a single bit. The realized metrics
  (accuracy, precision, recall, F1, ROC AUC, log loss; MAE, RMSE, MAPE)
  come from the summary with :meth:`ClassificationSummary.metrics` and
  :meth:`RegressionSummary.metrics`.
* **Performance drift**: thresholds from the reference period's per-chunk
  metric values (:func:`time_chunks` / :func:`bootstrap_windows`,
  :func:`reference_thresholds`), and the verdict for a current window
  (:func:`performance_drift`).
* **Prediction drift columns**: predictions turned into the columns that the
  column profiles and univariate tests compare (:func:`classifier_prediction_columns`,
  :func:`regressor_prediction_columns`, :func:`llm_output_columns`).

Rows without a label are counted (``n_rows - n_labelled``) and left out of
every metric.

References:
    Fawcett, T. (2006). An introduction to ROC analysis. Pattern Recognition
    Letters 27(8), 861–874.
    Hanley, J. A. & McNeil, B. J. (1982). The meaning and use of the area
    under a receiver operating characteristic (ROC) curve. Radiology 143(1),
    29–36.
    Bishop, C. M. (2006). Pattern Recognition and Machine Learning. Springer,
    p. 209 (cross-entropy / log loss).
    scikit-learn, sklearn.metrics: accuracy_score, precision_score,
    recall_score, f1_score, roc_auc_score, log_loss, mean_absolute_error,
    root_mean_squared_error, mean_absolute_percentage_error (the definitions
    the tests compare against).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

Status = Literal["ok", "insufficient_data"]

#: Probabilities are clipped to ``[eps, 1 - eps]`` before the logarithm in
#: the log loss; float64 machine epsilon (2.220446049250313e-16), the value
#: sklearn.metrics.log_loss uses for float64 input.
LOG_LOSS_EPS: float = float(np.finfo(np.float64).eps)

#: Floor on |y_true| in the MAPE denominator, float64 machine epsilon (as in
#: sklearn.metrics.mean_absolute_percentage_error). Only rows with
#: y_true == 0 are left out of MAPE; the floor matters only for
#: 0 < |y_true| < 2.2e-16.
MAPE_EPS: float = float(np.finfo(np.float64).eps)

#: Number of equal-width bins on [0, 1] for the mergeable ROC AUC histograms.
DEFAULT_AUC_BINS: int = 1000

#: Fewest labelled rows a window (or a reference chunk) needs for its metrics
#: to be judged; below it the result is ``"insufficient_data"``. At 100 rows
#: an accuracy near 0.9 has a standard error of about 0.03.
DEFAULT_MIN_LABELLED: int = 100

#: Fewest usable reference chunk values needed to set a metric's thresholds.
DEFAULT_MIN_CHUNKS: int = 5

#: Default multiplier of the reference chunks' standard deviation (NannyML's
#: default threshold is also mean ± 3 standard deviations of chunk values).
DEFAULT_N_STD: float = 3.0

#: Version tags written by the summaries' ``to_dict``; bump when the layout changes.
CLASSIFICATION_FORMAT = "inferwatch.performance.classification/1"
REGRESSION_FORMAT = "inferwatch.performance.regression/1"

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("mae", "rmse", "mape")

# Range of each metric: thresholds beyond it are dropped (no bound on that side).
_METRIC_RANGE: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "precision": (0.0, 1.0),
    "recall": (0.0, 1.0),
    "f1": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "log_loss": (0.0, np.inf),
    "mae": (0.0, np.inf),
    "rmse": (0.0, np.inf),
    "mape": (0.0, np.inf),
}


# --------------------------------------------------------------------------- exact sums

# Every finite float64 is an integer multiple of 2**-1074 (the smallest
# subnormal), so a sum of float64 values is an integer in those units.
_UNIT_BITS = 1074
_UNIT = 1 << _UNIT_BITS


def _exact_sum(x: np.ndarray) -> int:
    """Exact sum of finite float64 values as an integer number of 2**-1074.

    Vectorised: each value is split into a 53-bit integer mantissa and an
    exponent; mantissas are summed per exponent in int64 (in two 26/27-bit
    halves, so up to 2**36 values cannot overflow), and only the distinct
    exponents (at most 2098) are combined in Python integers.
    """
    x = x[x != 0.0]
    if x.size == 0:
        return 0
    frac, exp = np.frexp(x)  # x = frac * 2**exp, 0.5 <= |frac| < 1
    mant = np.ldexp(frac, 53).astype(np.int64)  # exact: at most 53 significant bits
    order = np.argsort(exp, kind="stable")
    exp = exp[order]
    mant = mant[order]
    starts = np.flatnonzero(np.concatenate(([True], exp[1:] != exp[:-1])))
    hi = np.add.reduceat(mant >> 26, starts)
    lo = np.add.reduceat(mant & ((1 << 26) - 1), starts)
    total = 0
    for e, h, low in zip(exp[starts].tolist(), hi.tolist(), lo.tolist()):
        group = (h << 26) + low  # sum of mantissas; value = group * 2**(e - 53)
        shift = e - 53 + _UNIT_BITS
        # A negative shift only occurs for subnormals, whose sum is still a
        # multiple of 2**-1074, so the right shift drops no bits.
        total += group << shift if shift >= 0 else group >> -shift
    return total


def _ratio(exact: int, n: int) -> float:
    """``exact * 2**-1074 / n`` correctly rounded to float64 (n >= 1)."""
    try:
        return exact / (_UNIT * n)  # int / int is correctly rounded in Python
    except OverflowError as exc:
        raise ValueError("sum exceeds the float64 range") from exc


def _finite_terms(terms: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(terms)):
        raise ValueError(f"{what} overflows float64 for some rows")
    return terms


# --------------------------------------------------------------------------- input helpers


def _as_series(values: ArrayLike | pd.Series, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    arr = np.asarray(values) if not isinstance(values, (list, tuple)) else None
    if arr is not None and arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return pd.Series(values if arr is None else arr)


def _numeric(values: pd.Series, name: str) -> np.ndarray:
    """float64 array with NaN for missing (None, NaN, pandas NA)."""
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc


def _label_codes(values: pd.Series, index: pd.Index, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes into ``index``, missing mask); ValueError on a value outside the label set."""
    missing = values.isna().to_numpy(dtype=bool)
    codes = np.asarray(index.get_indexer(values), dtype=np.int64)
    unknown = (codes < 0) & ~missing
    if unknown.any():
        seen = pd.unique(values[unknown])[:5]
        raise ValueError(f"{name} has values outside the label set {list(index)}: {list(seen)}")
    return codes, missing


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class ClassificationMetrics:
    """Realized classification performance of one window.

    Every metric is a float, or None where it is undefined (never NaN).
    With ``k = len(labels)`` and the confusion matrix ``C`` (rows = true
    label, columns = predicted label) over the labelled rows:

    * accuracy = trace(C) / n_labelled (sklearn ``accuracy_score``);
      None when ``n_labelled == 0``.
    * per class c: precision = TP / (TP + FP), recall = TP / (TP + FN),
      F1 = 2 TP / (2 TP + FP + FN) (sklearn ``precision_score``,
      ``recall_score``, ``f1_score``); a ratio with a zero denominator is
      None. Binary (``k == 2``): the values for ``pos_label``. Multi-class:
      the macro average, the unweighted mean over the classes where the
      value is defined; None when it is defined for none. This equals
      sklearn's ``average="macro", zero_division=np.nan`` with
      ``labels=labels``.
    * roc_auc: the probability that a random positive scores above a random
      negative, ties counting one half (Mann–Whitney form of the area under
      the ROC curve: Hanley & McNeil 1982; Fawcett 2006). Binary: on the
      ``pos_label`` score. Multi-class: one-vs-rest per class on that class's
      probability, macro-averaged (sklearn ``roc_auc_score(...,
      multi_class="ovr", average="macro")``). None when any class has no
      positive or no negative scored row, or no rows came with probabilities.
    * roc_auc_error_bound: 0.0 when roc_auc was computed from raw scores;
      otherwise (binned scores) the bound on ``|roc_auc - exact AUC|``, see
      :meth:`ClassificationSummary.metrics`.
    * log_loss = -(1/n_scored) Σ log(clip(p_i, eps, 1 - eps)) with ``p_i`` the
      probability given to the true label (natural log; sklearn ``log_loss``;
      Bishop 2006, p. 209); None when ``n_scored == 0``.

    Attributes:
        n_rows: rows in the window (labelled or not), >= 0.
        n_labelled: rows with a label, ``<= n_rows``.
        labelled_share: ``n_labelled / n_rows`` in [0, 1]; None when ``n_rows == 0``.
        n_scored: labelled rows that came with probabilities (used by roc_auc
            and log_loss), ``<= n_labelled``.
        average: ``"binary"`` or ``"macro"``.
    """

    n_rows: int
    n_labelled: int
    labelled_share: float | None
    n_scored: int
    average: Literal["binary", "macro"]
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    roc_auc_error_bound: float | None
    log_loss: float | None

    def values(self) -> dict[str, float | None]:
        """The metrics by name (``CLASSIFICATION_METRICS`` order)."""
        return {name: getattr(self, name) for name in CLASSIFICATION_METRICS}

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict."""
        return asdict(self)


def _div(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _auc_from_hist(pos: np.ndarray, neg: np.ndarray) -> tuple[float | None, float | None]:
    """(AUC, error bound) from positive/negative score counts on the same bins."""
    n_pos = float(pos.sum())
    n_neg = float(neg.sum())
    if n_pos == 0.0 or n_neg == 0.0:
        return None, None
    posf = pos.astype(np.float64)
    negf = neg.astype(np.float64)
    below = np.cumsum(negf) - negf  # negatives in strictly lower bins
    same = float(posf @ negf)
    auc = (float(posf @ below) + 0.5 * same) / (n_pos * n_neg)
    return auc, 0.5 * same / (n_pos * n_neg)


@dataclass(eq=False)
class ClassificationSummary:
    """Mergeable performance summary of a classifier over one window.

    Build it with :func:`classification_summary`; combine partial windows
    with :meth:`merge`; read the metrics with :meth:`metrics`.

    Attributes:
        labels: the fixed label set, ``k >= 2`` distinct values, in the
            order of the probability columns.
        pos_label_index: index in ``labels`` of the positive class (binary
            metrics and binary ROC AUC); ``1`` by default, as in sklearn,
            whose positive class is the greater of two sorted labels.
        n_rows: rows seen, labelled or not (>= 0).
        confusion: int64, shape ``(k, k)``; ``confusion[i, j]`` = labelled
            rows with true label ``labels[i]`` predicted as ``labels[j]``.
        n_scored: labelled rows that came with probabilities.
        log_loss_sum: exact Σ -log(clip(p_true, eps, 1 - eps)) over the
            scored rows, as an integer number of 2**-1074.
        score_classes: indices of the classes whose score is histogrammed:
            ``(pos_label_index,)`` for binary, ``(0, ..., k-1)`` otherwise.
        score_hist: int64, shape ``(k, len(score_classes), n_bins)``;
            ``score_hist[t, j, b]`` = scored rows with true label ``labels[t]``
            whose probability for ``labels[score_classes[j]]`` falls in bin
            ``b`` (bin ``b`` = ``[b/n_bins, (b+1)/n_bins)``, the last bin closed).
        n_bins: number of score bins (>= 1).
        eps: log-loss clipping constant in ``(0, 0.5)``.
        raw_true: int64 codes of the scored rows' true labels, shape
            ``(n_scored,)``, or None when raw scores are not kept.
        raw_scores: float64, shape ``(n_scored, len(score_classes))``, the
            scores histogrammed above, or None. When kept, ROC AUC is exact;
            they grow with the window, so keep them only for bounded windows.

    Raises:
        ValueError: on construction, if the arrays are inconsistent.
    """

    labels: tuple[Hashable, ...]
    pos_label_index: int
    n_rows: int
    confusion: np.ndarray
    n_scored: int
    log_loss_sum: int
    score_classes: tuple[int, ...]
    score_hist: np.ndarray = field(repr=False)
    n_bins: int = DEFAULT_AUC_BINS
    eps: float = LOG_LOSS_EPS
    raw_true: np.ndarray | None = field(default=None, repr=False)
    raw_scores: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        k = len(self.labels)
        self.confusion = np.asarray(self.confusion, dtype=np.int64)
        self.score_hist = np.asarray(self.score_hist, dtype=np.int64)
        if k < 2 or len(set(self.labels)) != k:
            raise ValueError(f"labels must hold at least 2 distinct values, got {self.labels!r}")
        if not 0 <= self.pos_label_index < k:
            raise ValueError(f"pos_label_index {self.pos_label_index} out of range for {k} labels")
        if self.confusion.shape != (k, k) or np.any(self.confusion < 0):
            raise ValueError(f"confusion must be a ({k}, {k}) array of counts >= 0")
        if self.n_rows < int(self.confusion.sum()):
            raise ValueError("n_rows is smaller than the number of labelled rows")
        if self.score_hist.shape != (k, len(self.score_classes), self.n_bins):
            expected = (k, len(self.score_classes), self.n_bins)
            raise ValueError(f"score_hist has shape {self.score_hist.shape}, expected {expected}")
        if int(self.score_hist[:, 0, :].sum()) != self.n_scored:
            raise ValueError("score_hist does not hold n_scored rows")
        if (self.raw_true is None) != (self.raw_scores is None):
            raise ValueError("raw_true and raw_scores must both be given or both be None")
        if self.raw_true is not None:
            self.raw_true = np.asarray(self.raw_true, dtype=np.int64)
            self.raw_scores = np.asarray(self.raw_scores, dtype=np.float64).reshape(-1, len(self.score_classes))
            if self.raw_true.shape != (self.n_scored,) or self.raw_scores.shape[0] != self.n_scored:
                raise ValueError("raw_true and raw_scores must hold n_scored rows")

    @property
    def n_labelled(self) -> int:
        """Labelled rows (the confusion matrix total)."""
        return int(self.confusion.sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationSummary):
            return NotImplemented
        same_raw = (self.raw_true is None and other.raw_true is None) or (
            self.raw_true is not None
            and other.raw_true is not None
            and np.array_equal(self.raw_true, other.raw_true)
            and np.array_equal(self.raw_scores, other.raw_scores)
        )
        return (
            self.labels == other.labels
            and self.pos_label_index == other.pos_label_index
            and self.n_rows == other.n_rows
            and np.array_equal(self.confusion, other.confusion)
            and self.n_scored == other.n_scored
            and self.log_loss_sum == other.log_loss_sum
            and self.score_classes == other.score_classes
            and np.array_equal(self.score_hist, other.score_hist)
            and self.n_bins == other.n_bins
            and self.eps == other.eps
            and same_raw
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (format ``CLASSIFICATION_FORMAT``) for storing partial windows.

        Exact sums are decimal strings (they exceed float and JSON number
        precision); the score histogram is stored sparsely as flat indices
        and counts of its non-zero cells. Labels must be JSON scalars
        (str, int, float, bool); numpy scalars are converted.
        """
        flat = self.score_hist.ravel()
        nz = np.flatnonzero(flat)
        return {
            "format": CLASSIFICATION_FORMAT,
            "labels": [v.item() if isinstance(v, np.generic) else v for v in self.labels],
            "pos_label_index": self.pos_label_index,
            "n_rows": self.n_rows,
            "confusion": self.confusion.tolist(),
            "n_scored": self.n_scored,
            "log_loss_sum": str(self.log_loss_sum),
            "score_classes": list(self.score_classes),
            "score_hist": {"index": nz.tolist(), "count": flat[nz].tolist()},
            "n_bins": self.n_bins,
            "eps": self.eps,
            "raw_true": None if self.raw_true is None else self.raw_true.tolist(),
            "raw_scores": None if self.raw_scores is None else self.raw_scores.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationSummary:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: wrong format tag, or inconsistent content.
        """
        if data.get("format") != CLASSIFICATION_FORMAT:
            raise ValueError(f"expected format {CLASSIFICATION_FORMAT!r}, got {data.get('format')!r}")
        k, m, n_bins = len(data["labels"]), len(data["score_classes"]), int(data["n_bins"])
        flat = np.zeros(k * m * n_bins, dtype=np.int64)
        flat[np.asarray(data["score_hist"]["index"], dtype=np.int64)] = data["score_hist"]["count"]
        raw_scores = data["raw_scores"]
        return cls(
            labels=tuple(data["labels"]),
            pos_label_index=int(data["pos_label_index"]),
            n_rows=int(data["n_rows"]),
            confusion=np.asarray(data["confusion"], dtype=np.int64).reshape(k, k),
            n_scored=int(data["n_scored"]),
            log_loss_sum=int(data["log_loss_sum"]),
            score_classes=tuple(int(c) for c in data["score_classes"]),
            score_hist=flat.reshape(k, m, n_bins),
            n_bins=n_bins,
            eps=float(data["eps"]),
            raw_true=None if data["raw_true"] is None else np.asarray(data["raw_true"], dtype=np.int64),
            raw_scores=None if raw_scores is None else np.asarray(raw_scores, dtype=np.float64).reshape(-1, m),
        )

    def merge(self, other: ClassificationSummary) -> ClassificationSummary:
        """Summary of the rows of ``self`` followed by the rows of ``other``.

        Exact: equal to the summary built from the concatenated rows. Raw
        scores survive only if both sides kept them.

        Raises:
            ValueError: the two summaries differ in labels, positive class,
                number of bins or eps.
        """
        for attr in ("labels", "pos_label_index", "n_bins", "eps", "score_classes"):
            if getattr(self, attr) != getattr(other, attr):
                mine, theirs = getattr(self, attr), getattr(other, attr)
                raise ValueError(f"cannot merge summaries with different {attr}: {mine!r} vs {theirs!r}")
        keep = self.raw_true is not None and other.raw_true is not None
        return ClassificationSummary(
            labels=self.labels,
            pos_label_index=self.pos_label_index,
            n_rows=self.n_rows + other.n_rows,
            confusion=self.confusion + other.confusion,
            n_scored=self.n_scored + other.n_scored,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            score_classes=self.score_classes,
            score_hist=self.score_hist + other.score_hist,
            n_bins=self.n_bins,
            eps=self.eps,
            raw_true=np.concatenate([self.raw_true, other.raw_true]) if keep else None,
            raw_scores=np.concatenate([self.raw_scores, other.raw_scores]) if keep else None,
        )

    def _class_auc(self, j: int) -> tuple[float | None, float | None]:
        c = self.score_classes[j]
        if self.raw_true is not None and self.raw_scores is not None:
            y = self.raw_true == c
            if y.all() or not y.any():
                return None, None
            return float(roc_auc_score(y, self.raw_scores[:, j])), 0.0
        pos = self.score_hist[c, j]
        neg = self.score_hist[:, j].sum(axis=0) - pos
        return _auc_from_hist(pos, neg)

    def metrics(self) -> ClassificationMetrics:
        """Accuracy, precision, recall, F1, ROC AUC and log loss of the window.

        Definitions and sources in :class:`ClassificationMetrics`.

        ROC AUC comes from the raw scores when kept (exact, via sklearn
        ``roc_auc_score``), else from the score histograms: with ``P_b`` and
        ``N_b`` the positives and negatives in bin ``b``,
        ``AUC = [Σ_b P_b Σ_{b'<b} N_b' + ½ Σ_b P_b N_b] / (n_P n_N)``: pairs in
        different bins are ordered exactly, pairs sharing a bin count one
        half. Such a pair counts 0, ½ or 1 in the exact AUC, so
        ``|AUC_binned - AUC_exact| <= ½ Σ_b P_b N_b / (n_P n_N)`` — half the
        share of positive–negative pairs that share a bin; this is
        ``roc_auc_error_bound`` (for multi-class, the mean of the per-class
        bounds, which bounds the error of the macro average).
        """
        k = len(self.labels)
        cm = self.confusion
        n = self.n_labelled
        tp = np.diag(cm).astype(np.float64)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        prec = [_div(tp[c], tp[c] + fp[c]) for c in range(k)]
        rec = [_div(tp[c], tp[c] + fn[c]) for c in range(k)]
        f1s = [_div(2 * tp[c], 2 * tp[c] + fp[c] + fn[c]) for c in range(k)]
        if k == 2:
            p = self.pos_label_index
            average: Literal["binary", "macro"] = "binary"
            precision, recall, f1 = prec[p], rec[p], f1s[p]
        else:
            average = "macro"
            precision, recall, f1 = (_macro(v) for v in (prec, rec, f1s))
        aucs = [self._class_auc(j) for j in range(len(self.score_classes))]
        if self.n_scored == 0 or any(a is None for a, _ in aucs):
            roc_auc = bound = None
        else:
            roc_auc = float(np.mean([a for a, _ in aucs]))
            bound = float(np.mean([b for _, b in aucs]))
        return ClassificationMetrics(
            n_rows=self.n_rows,
            n_labelled=n,
            labelled_share=_div(n, self.n_rows),
            n_scored=self.n_scored,
            average=average,
            accuracy=_div(float(tp.sum()), n),
            precision=precision,
            recall=recall,
            f1=f1,
            roc_auc=roc_auc,
            roc_auc_error_bound=bound,
            log_loss=_ratio(self.log_loss_sum, self.n_scored) if self.n_scored else None,
        )


def _macro(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def classification_summary(
    y_true: ArrayLike | pd.Series,
    y_pred: ArrayLike | pd.Series,
    y_prob: ArrayLike | None = None,
    *,
    labels: Sequence[Hashable],
    pos_label: Hashable | None = None,
    n_bins: int = DEFAULT_AUC_BINS,
    eps: float = LOG_LOSS_EPS,
    keep_scores: bool = False,
) -> ClassificationSummary:
    """Summarise a classifier's predictions against labels over one window.

    Args:
        y_true: true labels, shape ``(n,)``; missing values (None, NaN,
            pandas NA) mark rows without a label yet, which are counted in
            ``n_rows`` and otherwise ignored.
        y_pred: predicted labels, shape ``(n,)``, none missing.
        y_prob: optional predicted probabilities, in [0, 1] and finite:
            shape ``(n, k)`` with columns in ``labels`` order, or for binary
            problems shape ``(n,)`` holding the probability of ``pos_label``.
            Rows are not renormalised.
        labels: the fixed label set, ``k >= 2`` distinct values (the same for
            every window that will be merged or compared).
        pos_label: the positive class of binary metrics; default
            ``labels[1]``. Only meaningful when ``k == 2``.
        n_bins: equal-width bins on [0, 1] for the ROC AUC histograms (>= 1).
            The AUC error bound shrinks as bins get finer.
        eps: log-loss clipping constant in ``(0, 0.5)``; default
            :data:`LOG_LOSS_EPS`.
        keep_scores: also keep the raw scores of the scored rows so that ROC
            AUC is exact (memory grows with the rows).

    Returns:
        A :class:`ClassificationSummary`.

    Raises:
        ValueError: lengths differ; ``labels`` has fewer than 2 distinct
            values or contains a missing value; a label or prediction is
            outside ``labels``; a prediction is missing; ``y_prob`` has the
            wrong shape, or values that are non-finite or outside [0, 1];
            ``pos_label`` not in ``labels``; ``n_bins < 1``; ``eps`` out of range.
    """
    labels_t = tuple(labels)
    index = pd.Index(labels_t)
    k = len(labels_t)
    if k < 2 or not index.is_unique:
        raise ValueError(f"labels must hold at least 2 distinct values, got {labels_t!r}")
    if index.hasnans:
        raise ValueError("labels must not contain a missing value")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if pos_label is None:
        pos = 1
    else:
        if pos_label not in labels_t:
            raise ValueError(f"pos_label {pos_label!r} is not in labels {labels_t!r}")
        pos = labels_t.index(pos_label)

    true_s = _as_series(y_true, "y_true")
    pred_s = _as_series(y_pred, "y_pred")
    n = len(true_s)
    if len(pred_s) != n:
        raise ValueError(f"y_true has {n} rows but y_pred has {len(pred_s)}")
    t_code, t_missing = _label_codes(true_s, index, "y_true")
    p_code, p_missing = _label_codes(pred_s, index, "y_pred")
    if p_missing.any():
        raise ValueError(f"y_pred has {int(p_missing.sum())} missing values")
    labelled = ~t_missing
    t_lab = t_code[labelled]
    confusion = np.bincount(t_lab * k + p_code[labelled], minlength=k * k).reshape(k, k)

    score_classes = (pos,) if k == 2 else tuple(range(k))
    m = len(score_classes)
    if y_prob is None:
        hist = np.zeros((k, m, n_bins), dtype=np.int64)
        return ClassificationSummary(
            labels=labels_t, pos_label_index=pos, n_rows=n, confusion=confusion, n_scored=0, log_loss_sum=0,
            score_classes=score_classes, score_hist=hist, n_bins=n_bins, eps=eps,
            raw_true=np.zeros(0, np.int64) if keep_scores else None,
            raw_scores=np.zeros((0, m)) if keep_scores else None,
        )  # fmt: skip

    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim == 1:
        if k != 2:
            raise ValueError(f"1-D y_prob (positive-class probability) needs 2 labels, got {k}")
        if prob.shape != (n,):
            raise ValueError(f"y_prob has shape {prob.shape}, expected ({n},)")
    elif prob.shape != (n, k):
        raise ValueError(f"y_prob has shape {prob.shape}, expected ({n}, {k}) (one column per label)")
    if not np.all(np.isfinite(prob)):
        raise ValueError("y_prob must contain only finite values")
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        raise ValueError("y_prob values must lie in [0, 1]")

    prob = prob[labelled]
    rows = np.arange(t_lab.size)
    if prob.ndim == 1:
        # Same per-row value as sklearn, which expands p to the columns [1 - p, p].
        p_true = np.where(t_lab == pos, prob, 1.0 - prob)
        scores = prob[:, None]
    else:
        p_true = prob[rows, t_lab]
        scores = prob[:, list(score_classes)]
    loss_terms = -np.log(np.clip(p_true, eps, 1.0 - eps))
    bins = np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)
    flat = t_lab[:, None] * (m * n_bins) + np.arange(m)[None, :] * n_bins + bins
    hist = np.bincount(flat.ravel(), minlength=k * m * n_bins).reshape(k, m, n_bins)
    return ClassificationSummary(
        labels=labels_t,
        pos_label_index=pos,
        n_rows=n,
        confusion=confusion,
        n_scored=int(t_lab.size),
        log_loss_sum=_exact_sum(loss_terms),
        score_classes=score_classes,
        score_hist=hist,
        n_bins=n_bins,
        eps=eps,
        raw_true=t_lab.copy() if keep_scores else None,
        raw_scores=np.ascontiguousarray(scores) if keep_scores else None,
    )


# --------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class RegressionMetrics:
    """Realized regression performance of one window.

    With errors ``e_i = y_true_i - y_pred_i`` over the ``n_labelled`` rows:

    * mae = (1/n) Σ |e_i| (sklearn ``mean_absolute_error``).
    * rmse = sqrt((1/n) Σ e_i²) (sklearn ``root_mean_squared_error``).
    * mape = (1/n_mape) Σ |e_i| / max(|y_true_i|, eps) over rows with
      ``y_true_i != 0``, ``eps`` = :data:`MAPE_EPS`, as a fraction, not a
      percentage. On data without zeros this is sklearn's
      ``mean_absolute_percentage_error``; sklearn keeps rows with
      ``y_true == 0`` (each adding ``|e| / eps``, about 4.5e15 |e|), which
      would swamp the mean, so they are left out here and counted.
    * mean_true, mean_pred: means of ``y_true`` and ``y_pred`` over the
      labelled rows.

    A metric with no row to average is None (never NaN).

    Attributes:
        n_rows: rows in the window (labelled or not).
        n_labelled: rows with a label.
        labelled_share: ``n_labelled / n_rows``; None when ``n_rows == 0``.
        n_mape: labelled rows with ``y_true != 0`` (used by mape).
        n_zero_true: labelled rows with ``y_true == 0``, left out of mape.
    """

    n_rows: int
    n_labelled: int
    labelled_share: float | None
    n_mape: int
    n_zero_true: int
    mae: float | None
    rmse: float | None
    mape: float | None
    mean_true: float | None
    mean_pred: float | None

    def values(self) -> dict[str, float | None]:
        """The metrics by name (``REGRESSION_METRICS`` order)."""
        return {name: getattr(self, name) for name in REGRESSION_METRICS}

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class RegressionSummary:
    """Mergeable performance summary of a regressor over one window.

    All sums are exact, as integer numbers of 2**-1074, so :meth:`merge`
    equals the summary of the concatenated rows bit for bit.

    Attributes:
        n_rows: rows seen, labelled or not (>= 0).
        n_labelled: rows with a label (``<= n_rows``).
        abs_error_sum: Σ |y_true - y_pred| over labelled rows.
        sq_error_sum: Σ (y_true - y_pred)².
        ape_sum: Σ |y_true - y_pred| / max(|y_true|, MAPE_EPS) over labelled
            rows with y_true != 0.
        n_mape: labelled rows with y_true != 0.
        true_sum: Σ y_true over labelled rows.
        pred_sum: Σ y_pred over labelled rows.
    """

    n_rows: int
    n_labelled: int
    abs_error_sum: int
    sq_error_sum: int
    ape_sum: int
    n_mape: int
    true_sum: int
    pred_sum: int

    def __post_init__(self) -> None:
        if not 0 <= self.n_mape <= self.n_labelled <= self.n_rows:
            raise ValueError("counts must satisfy 0 <= n_mape <= n_labelled <= n_rows")
        if self.abs_error_sum < 0 or self.sq_error_sum < 0 or self.ape_sum < 0:
            raise ValueError("error sums must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (format ``REGRESSION_FORMAT``); exact sums as decimal strings."""
        out: dict[str, Any] = {"format": REGRESSION_FORMAT}
        for name, value in asdict(self).items():
            out[name] = str(value) if name in _EXACT_FIELDS else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionSummary:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: wrong format tag, or inconsistent content.
        """
        if data.get("format") != REGRESSION_FORMAT:
            raise ValueError(f"expected format {REGRESSION_FORMAT!r}, got {data.get('format')!r}")
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})

    def merge(self, other: RegressionSummary) -> RegressionSummary:
        """Summary of the rows of both windows; exact (integer addition)."""
        return RegressionSummary(
            n_rows=self.n_rows + other.n_rows,
            n_labelled=self.n_labelled + other.n_labelled,
            abs_error_sum=self.abs_error_sum + other.abs_error_sum,
            sq_error_sum=self.sq_error_sum + other.sq_error_sum,
            ape_sum=self.ape_sum + other.ape_sum,
            n_mape=self.n_mape + other.n_mape,
            true_sum=self.true_sum + other.true_sum,
            pred_sum=self.pred_sum + other.pred_sum,
        )

    def metrics(self) -> RegressionMetrics:
        """MAE, RMSE, MAPE and the means; definitions in :class:`RegressionMetrics`."""
        n = self.n_labelled
        return RegressionMetrics(
            n_rows=self.n_rows,
            n_labelled=n,
            labelled_share=_div(n, self.n_rows),
            n_mape=self.n_mape,
            n_zero_true=n - self.n_mape,
            mae=_ratio(self.abs_error_sum, n) if n else None,
            rmse=float(np.sqrt(_ratio(self.sq_error_sum, n))) if n else None,
            mape=_ratio(self.ape_sum, self.n_mape) if self.n_mape else None,
            mean_true=_ratio(self.true_sum, n) if n else None,
            mean_pred=_ratio(self.pred_sum, n) if n else None,
        )


def regression_summary(y_true: ArrayLike | pd.Series, y_pred: ArrayLike | pd.Series) -> RegressionSummary:
    """Summarise a regressor's predictions against labels over one window.

    Args:
        y_true: true values, shape ``(n,)``; missing values (None, NaN,
            pandas NA) mark unlabelled rows, counted and otherwise ignored.
        y_pred: predictions, shape ``(n,)``, all finite.

    Returns:
        A :class:`RegressionSummary`.

    Raises:
        ValueError: lengths differ; a value is not numeric; ``y_true`` holds
            ±inf; ``y_pred`` holds a missing or non-finite value; a squared
            error overflows float64.
    """
    t = _numeric(_as_series(y_true, "y_true"), "y_true")
    p = _numeric(_as_series(y_pred, "y_pred"), "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} rows but y_pred has {p.size}")
    if not np.all(np.isfinite(p)):
        raise ValueError("y_pred must contain only finite values")
    labelled = ~np.isnan(t)
    t = t[labelled]
    p = p[labelled]
    if not np.all(np.isfinite(t)):
        raise ValueError("y_true must not contain ±inf")
    nonzero = t != 0.0
    with np.errstate(over="ignore"):  # overflow is reported as a ValueError below
        err = _finite_terms(np.abs(t - p), "the absolute error")
        sq = _finite_terms(err * err, "the squared error")
        # The eps floor (as in sklearn) keeps a tiny non-zero label from overflowing the ratio.
        ape = _finite_terms(err[nonzero] / np.maximum(np.abs(t[nonzero]), MAPE_EPS), "the absolute percentage error")
    return RegressionSummary(
        n_rows=int(labelled.size),
        n_labelled=int(t.size),
        abs_error_sum=_exact_sum(err),
        sq_error_sum=_exact_sum(sq),
        ape_sum=_exact_sum(ape),
        n_mape=int(nonzero.sum()),
        true_sum=_exact_sum(t),
        pred_sum=_exact_sum(p),
    )


_EXACT_FIELDS = frozenset({"abs_error_sum", "sq_error_sum", "ape_sum", "true_sum", "pred_sum"})

PerformanceSummary = ClassificationSummary | RegressionSummary


# --------------------------------------------------------------------------- drift against the reference


def time_chunks(n_rows: int, *, chunk_size: int) -> list[np.ndarray]:
    """Row indices of consecutive reference chunks, in time order.

    Args:
        n_rows: rows in the reference period, ordered by time (>= 0).
        chunk_size: rows per chunk (>= 1); use the current window's size.

    Returns:
        ``n_rows // chunk_size`` int64 index arrays of ``chunk_size`` rows
        each; a trailing partial chunk is dropped, since its metric would be
        noisier than a window's.

    Raises:
        ValueError: ``n_rows < 0`` or ``chunk_size < 1``.
    """
    if n_rows < 0 or chunk_size < 1:
        raise ValueError(f"need n_rows >= 0 and chunk_size >= 1, got {n_rows}, {chunk_size}")
    return [np.arange(i * chunk_size, (i + 1) * chunk_size) for i in range(n_rows // chunk_size)]


def bootstrap_windows(n_rows: int, *, window_size: int, n_windows: int = 200, seed: int = 0) -> np.ndarray:
    """Row indices of bootstrap windows drawn from the reference rows.

    Each window draws ``window_size`` rows uniformly with replacement, from
    ``numpy.random.default_rng(seed)`` (deterministic for a given seed).

    Returns:
        int64 array, shape ``(n_windows, window_size)``, values in ``[0, n_rows)``.

    Raises:
        ValueError: ``n_rows < 1``, ``window_size < 1`` or ``n_windows < 1``.
    """
    if n_rows < 1 or window_size < 1 or n_windows < 1:
        raise ValueError(f"need n_rows, window_size, n_windows >= 1, got {n_rows}, {window_size}, {n_windows}")
    return np.random.default_rng(seed).integers(0, n_rows, size=(n_windows, window_size))


@dataclass(frozen=True)
class MetricThreshold:
    """Acceptable range of one metric, from reference chunk values.

    Attributes:
        metric: metric name (see ``CLASSIFICATION_METRICS`` / ``REGRESSION_METRICS``).
        method: ``"std"`` (mean ± n_std × sample standard deviation of the
            chunk values) or ``"quantile"`` (empirical quantiles of the chunk
            values, numpy's linear interpolation).
        lower, upper: a window's value below ``lower`` or above ``upper`` is
            drift; None means no bound on that side (the computed bound lies
            outside the metric's range, e.g. an accuracy above 1), or no
            bounds at all when ``status`` is ``"insufficient_data"``.
        reference_mean: mean of the chunk values; None when there are none.
        reference_std: their sample standard deviation (ddof=1); None when
            fewer than 2.
        n_chunks: chunks with enough labelled rows and a defined value.
        status: ``"ok"``, or ``"insufficient_data"`` when ``n_chunks`` is
            below ``min_chunks``.
    """

    metric: str
    method: Literal["std", "quantile"]
    lower: float | None
    upper: float | None
    reference_mean: float | None
    reference_std: float | None
    n_chunks: int
    status: Status

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict."""
        return asdict(self)


def _metric_values(summary: PerformanceSummary) -> tuple[int, dict[str, float | None]]:
    metrics = summary.metrics()
    return metrics.n_labelled, metrics.values()


def reference_thresholds(
    chunks: Sequence[PerformanceSummary],
    *,
    method: Literal["std", "quantile"] = "std",
    n_std: float = DEFAULT_N_STD,
    quantiles: tuple[float, float] = (0.005, 0.995),
    min_labelled: int = DEFAULT_MIN_LABELLED,
    min_chunks: int = DEFAULT_MIN_CHUNKS,
) -> dict[str, MetricThreshold]:
    """Thresholds for every metric from the reference period's chunk summaries.

    The chunks are reference summaries of the current window's size, either
    consecutive in time (:func:`time_chunks`) or bootstrap windows
    (:func:`bootstrap_windows`). Chunks with fewer than ``min_labelled``
    labelled rows, and chunks where a metric is undefined (None), do not
    contribute to that metric.

    Rule ``"std"`` (default, as NannyML's default): ``mean ± n_std · s`` with
    ``s`` the sample standard deviation (ddof=1) of the chunk values. Rule
    ``"quantile"``: the ``quantiles`` of the chunk values. A bound outside the
    metric's range (``[0, 1]`` for accuracy, precision, recall, F1, ROC AUC;
    ``[0, ∞)`` for log loss, MAE, RMSE, MAPE) is dropped (None).

    Args:
        chunks: summaries of one kind (all classification or all regression).
        method: ``"std"`` or ``"quantile"``.
        n_std: multiplier for ``"std"``, > 0; default 3.
        quantiles: ``(low, high)`` with ``0 <= low < high <= 1`` for ``"quantile"``.
        min_labelled: fewest labelled rows for a chunk to count (>= 1).
        min_chunks: fewest usable chunk values to set a threshold (>= 2);
            below it the metric's status is ``"insufficient_data"``.

    Returns:
        ``{metric name: MetricThreshold}`` for every metric of the summaries' kind.

    Raises:
        ValueError: no chunks; chunks of mixed kinds; a parameter out of range.
    """
    if not chunks:
        raise ValueError("no reference chunks given")
    kinds = {type(c) for c in chunks}
    if len(kinds) != 1 or not kinds <= {ClassificationSummary, RegressionSummary}:
        raise ValueError("chunks must be all ClassificationSummary or all RegressionSummary")
    if method not in ("std", "quantile"):
        raise ValueError(f"method must be 'std' or 'quantile', got {method!r}")
    if not n_std > 0:
        raise ValueError(f"n_std must be > 0, got {n_std}")
    lo_q, hi_q = quantiles
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise ValueError(f"quantiles must satisfy 0 <= low < high <= 1, got {quantiles}")
    if min_labelled < 1 or min_chunks < 2:
        raise ValueError(f"need min_labelled >= 1 and min_chunks >= 2, got {min_labelled}, {min_chunks}")

    per_chunk = [_metric_values(c) for c in chunks]
    names = CLASSIFICATION_METRICS if isinstance(chunks[0], ClassificationSummary) else REGRESSION_METRICS
    out: dict[str, MetricThreshold] = {}
    for name in names:
        vals = np.array([v[name] for n, v in per_chunk if n >= min_labelled and v[name] is not None], dtype=np.float64)
        mean = float(vals.mean()) if vals.size else None
        std = float(vals.std(ddof=1)) if vals.size >= 2 else None
        if vals.size < min_chunks:
            out[name] = MetricThreshold(name, method, None, None, mean, std, int(vals.size), "insufficient_data")
            continue
        if method == "std":
            assert mean is not None and std is not None
            lower, upper = mean - n_std * std, mean + n_std * std
        else:
            lower, upper = (float(q) for q in np.quantile(vals, [lo_q, hi_q]))
        lo_lim, hi_lim = _METRIC_RANGE[name]
        out[name] = MetricThreshold(
            metric=name,
            method=method,
            lower=lower if lower > lo_lim else None,
            upper=upper if upper < hi_lim else None,
            reference_mean=mean,
            reference_std=std,
            n_chunks=int(vals.size),
            status="ok",
        )
    return out


@dataclass(frozen=True)
class MetricDrift:
    """Performance drift verdict for one metric in one window.

    Attributes:
        metric: metric name.
        value: the window's value; None when undefined or not judged.
        lower, upper: the thresholds used (None = no bound on that side).
        drifted: ``value < lower or value > upper``; None unless status is ``"ok"``.
        status: ``"ok"``, or ``"insufficient_data"`` when the window has
            fewer than ``min_labelled`` labelled rows, the metric is
            undefined in the window, or its threshold is ``"insufficient_data"``.
        n_labelled: labelled rows in the window.
    """

    metric: str
    value: float | None
    lower: float | None
    upper: float | None
    drifted: bool | None
    status: Status
    n_labelled: int

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict."""
        return asdict(self)


def performance_drift(
    current: PerformanceSummary,
    thresholds: Mapping[str, MetricThreshold],
    *,
    min_labelled: int = DEFAULT_MIN_LABELLED,
) -> dict[str, MetricDrift]:
    """Judge a window's realized performance against reference thresholds.

    Args:
        current: the current window's summary.
        thresholds: from :func:`reference_thresholds` on summaries of the same kind.
        min_labelled: fewest labelled rows for the window to be judged (>= 1).

    Returns:
        ``{metric name: MetricDrift}`` for every metric in ``thresholds``;
        never NaN, ``"insufficient_data"`` where no verdict is possible.

    Raises:
        ValueError: ``min_labelled < 1``; a threshold names a metric the
            summary does not have.
    """
    if min_labelled < 1:
        raise ValueError(f"min_labelled must be >= 1, got {min_labelled}")
    n, values = _metric_values(current)
    out: dict[str, MetricDrift] = {}
    for name, th in thresholds.items():
        if name not in values:
            raise ValueError(f"metric {name!r} is not computed for {type(current).__name__}")
        value = values[name]
        if n < min_labelled or value is None or th.status != "ok":
            out[name] = MetricDrift(name, value, th.lower, th.upper, None, "insufficient_data", n)
            continue
        drifted = (th.lower is not None and value < th.lower) or (th.upper is not None and value > th.upper)
        out[name] = MetricDrift(name, value, th.lower, th.upper, bool(drifted), "ok", n)
    return out


# --------------------------------------------------------------------------- prediction drift columns


def classifier_prediction_columns(
    y_pred: ArrayLike | pd.Series,
    y_prob: ArrayLike | None = None,
    *,
    labels: Sequence[Hashable] | None = None,
    prefix: str = "prediction",
) -> pd.DataFrame:
    """Columns describing a classifier's outputs, for the column profiles.

    Args:
        y_pred: predicted labels, shape ``(n,)`` (missing values stay missing).
        y_prob: optional probabilities, shape ``(n, k)`` with columns in
            ``labels`` order, or ``(n,)`` for the positive class of a binary
            problem (then ``labels`` has 2 values and the column is named for
            ``labels[1]``).
        labels: the label set; required with ``y_prob``.
        prefix: column-name prefix.

    Returns:
        A frame with ``n`` rows: ``prefix`` holds the predicted labels as a
        pandas ``category`` column (profiled as categorical, so the class
        shares are compared by the categorical tests; every value seen is a
        category), and ``f"{prefix}_proba_{label}"`` float64 columns hold the
        probabilities (profiled as numeric distributions).

    Raises:
        ValueError: ``y_pred`` is not 1-D; ``y_prob`` without ``labels``, or
            of a shape that does not match.
    """
    pred = _as_series(y_pred, "y_pred")
    frame = pd.DataFrame({prefix: pred.astype("category")})
    if y_prob is None:
        return frame
    if labels is None:
        raise ValueError("labels are required to name the probability columns")
    labels_t = tuple(labels)
    prob = np.asarray(y_prob, dtype=np.float64)
    if prob.ndim == 1:
        if len(labels_t) != 2:
            raise ValueError("1-D y_prob needs exactly 2 labels")
        prob, names = prob[:, None], [labels_t[1]]
    else:
        names = list(labels_t)
    if prob.shape != (len(pred), len(names)):
        raise ValueError(f"y_prob has shape {prob.shape}, expected ({len(pred)}, {len(names)})")
    for j, label in enumerate(names):
        frame[f"{prefix}_proba_{label}"] = prob[:, j]
    return frame


def regressor_prediction_columns(y_pred: ArrayLike | pd.Series, *, prefix: str = "prediction") -> pd.DataFrame:
    """The regressor's outputs as one float64 column (missing → NaN), for the numeric tests.

    Raises:
        ValueError: ``y_pred`` is not 1-D or not numeric.
    """
    return pd.DataFrame({prefix: _numeric(_as_series(y_pred, "y_pred"), "y_pred")})


def llm_output_columns(
    texts: ArrayLike | pd.Series,
    completion_tokens: ArrayLike | pd.Series | None = None,
    *,
    prefix: str = "output",
) -> pd.DataFrame:
    """Numeric columns describing generated texts: length in characters and tokens.

    Args:
        texts: generated texts, shape ``(n,)``; missing values (None / NaN)
            give missing lengths.
        completion_tokens: optional token counts reported by the server
            (e.g. OpenAI-style ``usage.completion_tokens``), shape ``(n,)``,
            non-negative; missing entries stay missing.

    Returns:
        A frame with ``n`` rows and float64 columns (NaN where missing):

        * ``f"{prefix}_chars"``: length in Unicode code points (Python ``len``;
          not bytes, not grapheme clusters).
        * ``f"{prefix}_tokens"``: the server's counts when ``completion_tokens``
          is given. Otherwise an approximation: the number of
          whitespace-delimited words (runs of non-whitespace characters).
          Subword tokenisers typically give more tokens than words, so this
          tracks changes in output length, not the billed count. The two
          sources are never mixed in one column: with ``completion_tokens``
          given, a missing count stays missing (its share is itself a
          drift signal) rather than being estimated.

    Raises:
        ValueError: lengths differ; a text is not a string; a token count is
            negative or not numeric.
    """
    series = _as_series(texts, "texts")
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        raise ValueError("texts must be strings (or missing)")
    text = series.astype("string")
    chars = text.str.len().astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if completion_tokens is None:
        tokens = text.str.count(r"\S+").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        tokens = _numeric(_as_series(completion_tokens, "completion_tokens"), "completion_tokens")
        if tokens.shape != chars.shape:
            raise ValueError(f"texts has {chars.size} rows but completion_tokens has {tokens.size}")
        if np.any(tokens[~np.isnan(tokens)] < 0):
            raise ValueError("completion_tokens must be >= 0")
    return pd.DataFrame({f"{prefix}_chars": chars, f"{prefix}_tokens": tokens})
