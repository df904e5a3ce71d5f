"""Tests for detectors.performance: metrics against sklearn, exact merging, performance drift, prediction columns."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    precision_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)

from detectors.performance import (
    LOG_LOSS_EPS,
    ClassificationSummary,
    MetricThreshold,
    RegressionSummary,
    _exact_sum,
    bootstrap_windows,
    classification_summary,
    classifier_prediction_columns,
    llm_output_columns,
    performance_drift,
    reference_thresholds,
    regression_summary,
    regressor_prediction_columns,
    time_chunks,
)

TOL = 1e-12


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _binary_data(n: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels in {0, 1}; predictions right with probability ``accuracy``; P(class 1) agreeing with the prediction."""
    rng = _rng(seed)
    y = rng.integers(0, 2, n)
    correct = rng.random(n) < accuracy
    pred = np.where(correct, y, 1 - y)
    prob = np.where(pred == 1, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    return y, pred, prob


def _multi_data(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = _rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = prob.argmax(axis=1)
    return y, pred, prob


# --------------------------------------------------------------------------- exact sums


def test_exact_sum_equals_rational_sum_over_all_magnitudes():
    rng = _rng(1)
    x = rng.normal(size=20_000) * 10.0 ** rng.integers(-300, 300, size=20_000)
    x = np.concatenate([x, [5e-324, -3 * 5e-324, 1e-310, 1e308, 1e308, -1e308]])
    exact = sum((Fraction(float(v)) for v in x), Fraction(0))
    assert Fraction(_exact_sum(x), 1 << 1074) == exact
    # 0.1 + 0.2 + 0.3 in naive float64 is 0.6000000000000001; the exact sum rounds to 0.6.
    assert _exact_sum(np.array([0.1, 0.2, 0.3])) / (1 << 1074) == math.fsum([0.1, 0.2, 0.3]) == 0.6


# --------------------------------------------------------------------------- classification vs sklearn


def test_binary_metrics_equal_sklearn():
    y, pred, prob = _binary_data(5_000, 0.85, seed=2)
    m = classification_summary(y, pred, prob, labels=[0, 1], keep_scores=True).metrics()
    assert m.average == "binary"
    assert m.accuracy == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m.precision == pytest.approx(precision_score(y, pred), abs=TOL)
    assert m.recall == pytest.approx(recall_score(y, pred), abs=TOL)
    assert m.f1 == pytest.approx(f1_score(y, pred), abs=TOL)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, prob), abs=TOL)
    assert m.roc_auc_error_bound == 0.0
    assert m.log_loss == pytest.approx(log_loss(y, prob, labels=[0, 1]), abs=TOL)
    assert (m.n_rows, m.n_labelled, m.n_scored, m.labelled_share) == (5_000, 5_000, 5_000, 1.0)


def test_binary_two_column_probabilities_and_string_labels():
    y, pred, prob = _binary_data(2_000, 0.8, seed=3)
    names = np.array(["ham", "spam"])
    two = np.column_stack([1.0 - prob, prob])
    m = classification_summary(names[y], names[pred], two, labels=["ham", "spam"], keep_scores=True).metrics()
    assert m.precision == pytest.approx(precision_score(names[y], names[pred], pos_label="spam"), abs=TOL)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, prob), abs=TOL)
    assert m.log_loss == pytest.approx(log_loss(names[y], two, labels=["ham", "spam"]), abs=TOL)


def test_pos_label_selects_the_positive_class():
    y, pred, _ = _binary_data(1_000, 0.7, seed=4)
    m = classification_summary(y, pred, labels=[0, 1], pos_label=0).metrics()
    assert m.precision == pytest.approx(precision_score(y, pred, pos_label=0), abs=TOL)
    assert m.recall == pytest.approx(recall_score(y, pred, pos_label=0), abs=TOL)
    assert m.f1 == pytest.approx(f1_score(y, pred, pos_label=0), abs=TOL)


def test_multiclass_macro_metrics_equal_sklearn():
    labels = [0, 1, 2, 3]
    y, pred, prob = _multi_data(4_000, 4, seed=5)
    m = classification_summary(y, pred, prob, labels=labels, keep_scores=True).metrics()
    assert m.average == "macro"
    assert m.accuracy == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m.precision == pytest.approx(precision_score(y, pred, average="macro"), abs=TOL)
    assert m.recall == pytest.approx(recall_score(y, pred, average="macro"), abs=TOL)
    assert m.f1 == pytest.approx(f1_score(y, pred, average="macro"), abs=TOL)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", labels=labels), abs=TOL)
    assert m.log_loss == pytest.approx(log_loss(y, prob, labels=labels), abs=TOL)


def test_macro_skips_undefined_classes_like_sklearn_nan_zero_division():
    # Class 2 is never true and never predicted; class 1 is true but never predicted.
    y = np.array([0, 0, 1, 1, 0])
    pred = np.array([0, 0, 0, 0, 0])
    m = classification_summary(y, pred, labels=[0, 1, 2]).metrics()
    kw = {"labels": [0, 1, 2], "average": "macro", "zero_division": np.nan}
    # precision: class 0 = 3/5, class 1 undefined, class 2 undefined -> 0.6
    assert m.precision == pytest.approx(0.6, abs=TOL) == precision_score(y, pred, **kw)
    # recall: class 0 = 1, class 1 = 0 -> 0.5; f1: class 0 = 6/8, class 1 = 0 -> 0.375
    assert m.recall == pytest.approx(0.5, abs=TOL) == recall_score(y, pred, **kw)
    assert m.f1 == pytest.approx(0.375, abs=TOL) == f1_score(y, pred, **kw)


def test_zero_division_gives_none_not_nan():
    y = np.array([0, 0, 1, 1])
    none_predicted = np.array([0, 0, 0, 0])
    m = classification_summary(y, none_predicted, labels=[0, 1]).metrics()
    assert m.precision is None  # TP + FP = 0
    assert math.isnan(precision_score(y, none_predicted, zero_division=np.nan))
    assert m.recall == 0.0 and m.f1 == 0.0  # FN = 2 keeps both defined
    all_negative = classification_summary([0, 0], [0, 0], labels=[0, 1]).metrics()
    assert (all_negative.precision, all_negative.recall, all_negative.f1) == (None, None, None)
    assert all_negative.accuracy == 1.0


def test_roc_auc_is_none_when_a_class_is_absent():
    m = classification_summary([1, 1, 1], [1, 0, 1], [0.9, 0.4, 0.8], labels=[0, 1], keep_scores=True).metrics()
    assert m.roc_auc is None and m.roc_auc_error_bound is None
    assert m.log_loss == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.8)) / 3, abs=TOL)
    y, pred, prob = _multi_data(300, 3, seed=6)
    keep = y != 2  # class 2 never true: its one-vs-rest AUC is undefined
    m3 = classification_summary(y[keep], pred[keep], prob[keep], labels=[0, 1, 2]).metrics()
    assert m3.roc_auc is None
    assert m3.accuracy == pytest.approx(accuracy_score(y[keep], pred[keep]), abs=TOL)


def test_no_probabilities_no_auc_or_log_loss():
    m = classification_summary([0, 1, 1], [0, 1, 0], labels=[0, 1]).metrics()
    assert (m.n_scored, m.roc_auc, m.log_loss) == (0, None, None)
    assert m.accuracy == pytest.approx(2 / 3, abs=TOL)


def test_log_loss_clips_probabilities_like_sklearn():
    y = np.array([0, 1, 1, 0])
    prob = np.array([0.0, 1.0, 0.0, 1.0])  # two confident mistakes
    m = classification_summary(y, (prob > 0.5).astype(int), prob, labels=[0, 1]).metrics()
    expected = -2 * math.log(LOG_LOSS_EPS) / 4  # right answers lose log(1 - eps) ~ -1.1e-16
    assert m.log_loss == pytest.approx(expected, rel=1e-12)
    assert m.log_loss == pytest.approx(log_loss(y, prob), abs=TOL)


def test_missing_labels_are_counted_and_excluded():
    y, pred, prob = _binary_data(1_000, 0.8, seed=7)
    y_obj = pd.Series(y, dtype="Int64")
    y_obj[::4] = pd.NA  # 250 rows without a label yet
    m = classification_summary(y_obj, pred, prob, labels=[0, 1], keep_scores=True).metrics()
    keep = np.ones(1_000, bool)
    keep[::4] = False
    assert (m.n_rows, m.n_labelled, m.n_scored, m.labelled_share) == (1_000, 750, 750, 0.75)
    assert m.accuracy == pytest.approx(accuracy_score(y[keep], pred[keep]), abs=TOL)
    assert m.roc_auc == pytest.approx(roc_auc_score(y[keep], prob[keep]), abs=TOL)
    assert m.log_loss == pytest.approx(log_loss(y[keep], prob[keep]), abs=TOL)
    # Float labels with NaN for the missing ones work the same way.
    y_float = np.where(keep, y, np.nan)
    assert classification_summary(y_float, pred, prob, labels=[0, 1], keep_scores=True).metrics() == m
    empty = classification_summary([None, None], [0, 1], labels=[0, 1]).metrics()
    assert (empty.n_labelled, empty.labelled_share, empty.accuracy, empty.precision) == (0, 0.0, None, None)
    nothing = classification_summary([], [], labels=[0, 1]).metrics()
    assert (nothing.n_rows, nothing.labelled_share, nothing.accuracy) == (0, None, None)


# --------------------------------------------------------------------------- binned ROC AUC


def test_binned_auc_hand_computed():
    # Positives score 0.8 and 0.4, negatives 0.4 and 0.1: exact AUC = (1 + 1 + 0.5 + 1) / 4.
    y = [1, 1, 0, 0]
    prob = [0.8, 0.4, 0.4, 0.1]
    pred = [1, 0, 0, 0]
    fine = classification_summary(y, pred, prob, labels=[0, 1]).metrics()
    assert fine.roc_auc == pytest.approx(0.875, abs=TOL) == roc_auc_score(y, prob)
    assert fine.roc_auc_error_bound == pytest.approx(0.125, abs=TOL)  # only the tied pair shares a bin
    # Two bins: 0.4, 0.4, 0.1 share bin 0, so pairs (0.4, 0.4) and (0.4, 0.1) count 1/2 each:
    # AUC = (1*2 + 0.5 * (1*2)) / 4 = 0.75, bound = 0.5 * 2/4 = 0.25 >= |0.75 - 0.875|.
    coarse = classification_summary(y, pred, prob, labels=[0, 1], n_bins=2).metrics()
    assert coarse.roc_auc == pytest.approx(0.75, abs=TOL)
    assert coarse.roc_auc_error_bound == pytest.approx(0.25, abs=TOL)


@pytest.mark.parametrize("n_bins", [5, 20, 1000])
def test_binned_auc_within_its_bound(n_bins):
    y, pred, prob = _binary_data(3_000, 0.75, seed=8)
    m = classification_summary(y, pred, prob, labels=[0, 1], n_bins=n_bins).metrics()
    exact = roc_auc_score(y, prob)
    assert m.roc_auc_error_bound is not None
    assert abs(m.roc_auc - exact) <= m.roc_auc_error_bound + TOL
    if n_bins == 1000:
        assert m.roc_auc_error_bound < 1e-3
    if n_bins == 5:
        assert abs(m.roc_auc - exact) > 1e-4  # coarse bins really do lose something


def test_binned_multiclass_auc_within_its_bound():
    y, pred, prob = _multi_data(2_000, 3, seed=9)
    m = classification_summary(y, pred, prob, labels=[0, 1, 2], n_bins=10).metrics()
    exact = roc_auc_score(y, prob, multi_class="ovr", labels=[0, 1, 2])
    assert 0 < m.roc_auc_error_bound < 0.1
    assert abs(m.roc_auc - exact) <= m.roc_auc_error_bound + TOL


# --------------------------------------------------------------------------- merging


_labels3 = st.sampled_from([0, 1, 2])
_row3 = st.tuples(
    st.one_of(st.none(), _labels3), _labels3, st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3)
)


def _cls_summary(rows, keep):
    y = pd.Series([r[0] for r in rows], dtype="Int64")
    pred = np.array([r[1] for r in rows], dtype=np.int64)
    prob = np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, 3)
    return classification_summary(y, pred, prob, labels=[0, 1, 2], n_bins=7, keep_scores=keep)


@settings(max_examples=60, deadline=None)
@given(st.lists(_row3, max_size=40), st.lists(_row3, max_size=40), st.booleans())
def test_classification_merge_equals_summary_of_concatenation(a, b, keep):
    merged = _cls_summary(a, keep).merge(_cls_summary(b, keep))
    assert merged == _cls_summary(a + b, keep)
    assert merged.metrics() == _cls_summary(a + b, keep).metrics()


_row2 = st.tuples(st.one_of(st.none(), st.sampled_from([0, 1])), st.sampled_from([0, 1]), st.floats(0.0, 1.0))


def _bin_summary(rows):
    return classification_summary(
        [r[0] for r in rows], np.array([r[1] for r in rows], dtype=int), np.array([r[2] for r in rows]), labels=[0, 1]
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_row2, max_size=40), st.lists(_row2, max_size=40))
def test_binary_merge_equals_summary_of_concatenation(a, b):
    assert _bin_summary(a).merge(_bin_summary(b)) == _bin_summary(a + b)


_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_reg_row = st.tuples(st.one_of(st.none(), _finite, st.just(0.0)), _finite)


def _reg_summary(rows):
    return regression_summary(
        np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=float),
        np.array([r[1] for r in rows], dtype=float),
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(_reg_row, max_size=40), st.lists(_reg_row, max_size=40))
def test_regression_merge_equals_summary_of_concatenation(a, b):
    merged = _reg_summary(a).merge(_reg_summary(b))
    assert merged == _reg_summary(a + b)
    assert merged.metrics() == _reg_summary(a + b).metrics()


def test_merge_keeps_raw_scores_only_when_both_sides_kept_them():
    y, pred, prob = _binary_data(200, 0.8, seed=10)
    kept = classification_summary(y[:100], pred[:100], prob[:100], labels=[0, 1], keep_scores=True)
    binned = classification_summary(y[100:], pred[100:], prob[100:], labels=[0, 1])
    merged = kept.merge(binned)
    assert merged.raw_scores is None
    assert merged == classification_summary(y, pred, prob, labels=[0, 1])


@pytest.mark.parametrize("keep", [False, True])
def test_summaries_round_trip_through_json(keep):
    y, pred, prob = _multi_data(500, 3, seed=21)
    y_missing = pd.Series(y, dtype="Int64")
    y_missing[::7] = pd.NA
    names = np.array(["a", "b", "c"])
    cls = classification_summary(
        pd.Series(names[y]).where(y_missing.notna().to_numpy()), names[pred], prob, labels=["a", "b", "c"],
        keep_scores=keep,
    )  # fmt: skip
    text = json.dumps(cls.to_dict())
    back = ClassificationSummary.from_dict(json.loads(text))
    assert back == cls and back.metrics() == cls.metrics()
    assert len(text) < 60_000  # sparse histogram: of 3 x 3 x 1000 cells, at most 3 per labelled row are non-zero
    reg = regression_summary(np.where(y_missing.notna().to_numpy(), prob[:, 0], np.nan), prob[:, 1])
    assert RegressionSummary.from_dict(json.loads(json.dumps(reg.to_dict()))) == reg
    with pytest.raises(ValueError, match="format"):
        RegressionSummary.from_dict(cls.to_dict())


def test_merge_rejects_different_label_sets_or_bins():
    a = classification_summary([0], [0], labels=[0, 1])
    with pytest.raises(ValueError, match="labels"):
        a.merge(classification_summary([0], [0], labels=[0, 2]))
    with pytest.raises(ValueError, match="n_bins"):
        a.merge(classification_summary([0], [0], labels=[0, 1], n_bins=10))


# --------------------------------------------------------------------------- regression


def test_regression_metrics_equal_sklearn():
    rng = _rng(11)
    y = rng.normal(50.0, 10.0, 5_000)
    pred = y + rng.normal(0.0, 3.0, 5_000)
    m = regression_summary(y, pred).metrics()
    assert m.mae == pytest.approx(mean_absolute_error(y, pred), rel=TOL)
    assert m.rmse == pytest.approx(root_mean_squared_error(y, pred), rel=TOL)
    assert m.mape == pytest.approx(mean_absolute_percentage_error(y, pred), rel=TOL)
    assert m.mean_true == pytest.approx(y.mean(), rel=TOL)
    assert m.mean_pred == pytest.approx(pred.mean(), rel=TOL)
    assert (m.n_rows, m.n_labelled, m.n_mape, m.n_zero_true) == (5_000, 5_000, 5_000, 0)


def test_regression_hand_computed_with_zero_and_missing_labels():
    y = [2.0, 0.0, None, 4.0, -1.0]
    pred = [3.0, 1.0, 100.0, 3.0, -1.5]
    m = regression_summary(y, pred).metrics()
    # errors on labelled rows: 1, 1, 1, 0.5
    assert (m.n_rows, m.n_labelled, m.labelled_share) == (5, 4, 0.8)
    assert m.mae == pytest.approx(3.5 / 4, abs=TOL)
    assert m.rmse == pytest.approx(math.sqrt(3.25 / 4), abs=TOL)
    # MAPE leaves out y_true == 0: (1/2 + 1/4 + 0.5/1) / 3
    assert (m.n_mape, m.n_zero_true) == (3, 1)
    assert m.mape == pytest.approx(1.25 / 3, abs=TOL)
    assert m.mean_true == pytest.approx(1.25, abs=TOL)
    assert m.mean_pred == pytest.approx(1.375, abs=TOL)


def test_mape_floors_tiny_labels_like_sklearn():
    y = np.array([1e-300, 2.0])
    pred = np.array([1.0, 2.5])
    m = regression_summary(y, pred).metrics()
    assert m.mape == pytest.approx((1.0 / np.finfo(np.float64).eps + 0.25) / 2, rel=TOL)
    assert m.mape == pytest.approx(mean_absolute_percentage_error(y, pred), rel=TOL)


def test_regression_degenerate_windows():
    zeros = regression_summary([0.0, 0.0], [1.0, -1.0]).metrics()
    assert zeros.mape is None and zeros.n_zero_true == 2 and zeros.mae == 1.0
    unlabelled = regression_summary([None, None], [1.0, 2.0]).metrics()
    assert (unlabelled.n_labelled, unlabelled.mae, unlabelled.rmse, unlabelled.mape) == (0, None, None, None)
    assert regression_summary([], []).metrics().labelled_share is None
    with pytest.raises(ValueError, match="y_pred must contain only finite"):
        regression_summary([1.0], [np.nan])
    with pytest.raises(ValueError, match="±inf"):
        regression_summary([np.inf], [1.0])
    with pytest.raises(ValueError, match="rows"):
        regression_summary([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="numeric"):
        regression_summary(["a"], [1.0])
    with pytest.raises(ValueError, match="squared error overflows"):
        regression_summary([1e200], [-1e200])


# --------------------------------------------------------------------------- input errors


def test_classification_input_errors():
    with pytest.raises(ValueError, match="outside the label set"):
        classification_summary([0, 3], [0, 1], labels=[0, 1])
    with pytest.raises(ValueError, match="y_pred has values outside"):
        classification_summary([0, 1], [0, "x"], labels=[0, 1])
    with pytest.raises(ValueError, match="missing"):
        classification_summary([0, 1], [0, None], labels=[0, 1])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        classification_summary([0], [0], labels=[0, 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classification_summary([0, 1], [0, 1], [0.2, 1.2], labels=[0, 1])
    with pytest.raises(ValueError, match="finite"):
        classification_summary([0, 1], [0, 1], [0.2, np.nan], labels=[0, 1])
    with pytest.raises(ValueError, match="needs 2 labels"):
        classification_summary([0, 1], [0, 1], [0.2, 0.3], labels=[0, 1, 2])
    with pytest.raises(ValueError, match="shape"):
        classification_summary([0, 1], [0, 1], np.zeros((2, 3)), labels=[0, 1])
    with pytest.raises(ValueError, match="pos_label"):
        classification_summary([0, 1], [0, 1], labels=[0, 1], pos_label=5)


# --------------------------------------------------------------------------- performance drift


def _chunk_summaries(y, pred, prob, size):
    return [classification_summary(y[i], pred[i], prob[i], labels=[0, 1]) for i in time_chunks(len(y), chunk_size=size)]


def test_accuracy_drop_is_flagged_and_stationary_windows_are_not():
    y, pred, prob = _binary_data(100_000, 0.9, seed=12)
    thresholds = reference_thresholds(_chunk_summaries(y, pred, prob, 1_000))
    acc = thresholds["accuracy"]
    assert acc.status == "ok" and acc.n_chunks == 100
    assert acc.reference_mean == pytest.approx(0.9, abs=0.002)
    # Binomial standard deviation of a 1,000-row accuracy: sqrt(0.9 * 0.1 / 1000) = 0.0095.
    assert acc.reference_std == pytest.approx(0.0095, rel=0.25)
    assert acc.lower == pytest.approx(acc.reference_mean - 3 * acc.reference_std, abs=TOL)
    assert acc.upper == pytest.approx(acc.reference_mean + 3 * acc.reference_std, abs=TOL)

    cy, cpred, cprob = _binary_data(1_000, 0.75, seed=13)
    result = performance_drift(classification_summary(cy, cpred, cprob, labels=[0, 1]), thresholds)
    assert result["accuracy"].status == "ok"
    assert result["accuracy"].value == pytest.approx(accuracy_score(cy, cpred), abs=TOL)
    assert result["accuracy"].value < 0.8
    assert result["accuracy"].drifted is True
    assert result["roc_auc"].drifted is True

    for seed in range(100, 120):
        sy, spred, sprob = _binary_data(1_000, 0.9, seed=seed)
        stable = performance_drift(classification_summary(sy, spred, sprob, labels=[0, 1]), thresholds)
        assert stable["accuracy"].status == "ok"
        assert stable["accuracy"].drifted is False, seed


def test_bootstrap_thresholds_flag_the_same_drop():
    y, pred, prob = _binary_data(20_000, 0.9, seed=14)
    windows = bootstrap_windows(len(y), window_size=1_000, n_windows=200, seed=3)
    assert windows.shape == (200, 1_000)
    assert np.array_equal(windows, bootstrap_windows(len(y), window_size=1_000, n_windows=200, seed=3))
    chunks = [classification_summary(y[w], pred[w], prob[w], labels=[0, 1]) for w in windows]
    thresholds = reference_thresholds(chunks, method="quantile", quantiles=(0.005, 0.995))
    acc = thresholds["accuracy"]
    values = sorted(c.metrics().accuracy for c in chunks)
    assert acc.lower == pytest.approx(np.quantile(values, 0.005), abs=TOL)
    assert acc.upper == pytest.approx(np.quantile(values, 0.995), abs=TOL)
    cy, cpred, cprob = _binary_data(1_000, 0.75, seed=15)
    assert performance_drift(classification_summary(cy, cpred, cprob, labels=[0, 1]), thresholds)["accuracy"].drifted


def test_too_few_labels_is_insufficient_data_not_nan():
    y, pred, prob = _binary_data(20_000, 0.9, seed=16)
    thresholds = reference_thresholds(_chunk_summaries(y, pred, prob, 1_000))
    cy, cpred, cprob = _binary_data(1_000, 0.5, seed=17)
    few = pd.Series(cy, dtype="Int64")
    few[50:] = pd.NA  # only 50 labelled rows
    result = performance_drift(classification_summary(few, cpred, cprob, labels=[0, 1]), thresholds)
    assert {r.status for r in result.values()} == {"insufficient_data"}
    assert all(r.drifted is None for r in result.values())
    assert result["accuracy"].n_labelled == 50
    empty = performance_drift(classification_summary([], [], labels=[0, 1]), thresholds)
    assert all(r.status == "insufficient_data" and r.value is None for r in empty.values())
    # A lower minimum judges the same window.
    judged = performance_drift(classification_summary(few, cpred, cprob, labels=[0, 1]), thresholds, min_labelled=30)
    assert judged["accuracy"].status == "ok" and judged["accuracy"].drifted is True


def test_thresholds_insufficient_without_enough_chunks_and_bounds_outside_range_dropped():
    y, pred, prob = _binary_data(3_000, 0.9, seed=18)
    few = reference_thresholds(_chunk_summaries(y, pred, prob, 1_000))  # 3 chunks < 5
    assert few["accuracy"].status == "insufficient_data"
    assert (few["accuracy"].lower, few["accuracy"].upper, few["accuracy"].n_chunks) == (None, None, 3)
    cy, cpred, cprob = _binary_data(1_000, 0.9, seed=19)
    assert performance_drift(classification_summary(cy, cpred, cprob, labels=[0, 1]), few)["accuracy"].status == (
        "insufficient_data"
    )
    # Perfect reference chunks: accuracy 1 everywhere; upper bound 1 + 0 is at the range limit -> dropped.
    perfect = [classification_summary([0, 1] * 60, [0, 1] * 60, labels=[0, 1]) for _ in range(6)]
    th = reference_thresholds(perfect)
    assert (th["accuracy"].lower, th["accuracy"].upper, th["accuracy"].reference_std) == (1.0, None, 0.0)
    assert th["roc_auc"].status == "insufficient_data"  # no probabilities in any chunk
    worse = performance_drift(classification_summary([0, 1] * 60, [0, 1] * 59 + [1, 1], labels=[0, 1]), th)
    assert worse["accuracy"].drifted is True and worse["roc_auc"].status == "insufficient_data"


def test_regression_performance_drift():
    rng = _rng(20)
    y = rng.normal(10.0, 2.0, 50_000)
    pred = y + rng.normal(0.0, 1.0, 50_000)
    chunks = [regression_summary(y[i], pred[i]) for i in time_chunks(len(y), chunk_size=500)]
    thresholds = reference_thresholds(chunks)
    assert set(thresholds) == {"mae", "rmse", "mape"}
    assert thresholds["rmse"].reference_mean == pytest.approx(1.0, abs=0.01)
    cy = rng.normal(10.0, 2.0, 500)
    worse = performance_drift(regression_summary(cy, cy + rng.normal(0.0, 1.5, 500)), thresholds)
    assert worse["rmse"].drifted is True and worse["mae"].drifted is True
    same = performance_drift(regression_summary(cy, cy + rng.normal(0.0, 1.0, 500)), thresholds)
    assert same["rmse"].drifted is False


def test_drift_parameter_errors():
    chunk = regression_summary([1.0], [1.0])
    with pytest.raises(ValueError, match="no reference chunks"):
        reference_thresholds([])
    with pytest.raises(ValueError, match="all ClassificationSummary or all RegressionSummary"):
        reference_thresholds([chunk, classification_summary([0], [0], labels=[0, 1])])
    with pytest.raises(ValueError, match="quantiles"):
        reference_thresholds([chunk], method="quantile", quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="not computed"):
        performance_drift(chunk, {"accuracy": MetricThreshold("accuracy", "std", 0.5, None, 0.9, 0.1, 10, "ok")})
    with pytest.raises(ValueError, match="chunk_size"):
        time_chunks(10, chunk_size=0)
    assert [c.tolist() for c in time_chunks(7, chunk_size=3)] == [[0, 1, 2], [3, 4, 5]]


def test_summaries_are_validated_on_construction():
    with pytest.raises(ValueError, match="counts"):
        RegressionSummary(
            n_rows=1, n_labelled=2, abs_error_sum=0, sq_error_sum=0, ape_sum=0, n_mape=0, true_sum=0, pred_sum=0
        )
    with pytest.raises(ValueError, match="confusion"):
        ClassificationSummary(
            labels=(0, 1), pos_label_index=1, n_rows=1, confusion=np.zeros((3, 3)), n_scored=0, log_loss_sum=0,
            score_classes=(1,), score_hist=np.zeros((2, 1, 10)), n_bins=10,
        )  # fmt: skip


# --------------------------------------------------------------------------- prediction drift columns


def test_classifier_prediction_columns():
    frame = classifier_prediction_columns(
        ["cat", "dog", "cat", None], np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]]), labels=["cat", "dog"]
    )
    assert list(frame.columns) == ["prediction", "prediction_proba_cat", "prediction_proba_dog"]
    assert isinstance(frame["prediction"].dtype, pd.CategoricalDtype)
    assert frame["prediction"].value_counts().to_dict() == {"cat": 2, "dog": 1}
    assert int(frame["prediction"].isna().sum()) == 1
    assert frame["prediction_proba_dog"].tolist() == [0.3, 0.8, 0.4, 0.5]
    # Integer classes still become a categorical column, so class shares are compared as categories.
    ints = classifier_prediction_columns(np.array([1, 0, 1]), np.array([0.9, 0.1, 0.6]), labels=[0, 1])
    assert isinstance(ints["prediction"].dtype, pd.CategoricalDtype)
    assert ints["prediction_proba_1"].tolist() == [0.9, 0.1, 0.6]
    with pytest.raises(ValueError, match="labels are required"):
        classifier_prediction_columns([0, 1], [0.1, 0.2])


def test_regressor_prediction_columns():
    frame = regressor_prediction_columns(pd.Series([1.5, None, 3], dtype="Float64"))
    assert frame["prediction"].dtype == np.float64
    assert frame["prediction"].tolist()[0] == 1.5 and math.isnan(frame["prediction"].tolist()[1])


def test_llm_output_columns_fallback_word_count():
    texts = ["The answer is 42.", None, "  two\twords\n", "", "naïve café ☕"]
    frame = llm_output_columns(texts)
    assert list(frame.columns) == ["output_chars", "output_tokens"]
    chars = frame["output_chars"].to_numpy()
    tokens = frame["output_tokens"].to_numpy()
    assert chars[[0, 2, 3, 4]].tolist() == [17.0, 12.0, 0.0, 12.0]  # code points, not bytes
    assert tokens[[0, 2, 3, 4]].tolist() == [4.0, 2.0, 0.0, 3.0]
    assert math.isnan(chars[1]) and math.isnan(tokens[1])


def test_llm_output_columns_with_server_token_counts():
    frame = llm_output_columns(pd.Series(["Hello there", "Hi", "Yo"]), completion_tokens=[3, None, 1])
    assert frame["output_chars"].tolist() == [11.0, 2.0, 2.0]
    tokens = frame["output_tokens"].to_numpy()
    assert tokens[0] == 3.0 and math.isnan(tokens[1]) and tokens[2] == 1.0  # missing stays missing, not estimated
    with pytest.raises(ValueError, match=">= 0"):
        llm_output_columns(["a"], completion_tokens=[-1])
    with pytest.raises(ValueError, match="rows"):
        llm_output_columns(["a", "b"], completion_tokens=[1])
    with pytest.raises(ValueError, match="strings"):
        llm_output_columns(["a", 3])
