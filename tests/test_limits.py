"""Caps on models and categories: excess rows rejected or values collapsed, and counted."""

import numpy as np
import pandas as pd
import pytest

from collector.limits import OVERFLOW_CATEGORY, CategoryLimit, ModelLimit


def frame(models, versions=None, colour=None):
    n = len(models)
    return pd.DataFrame({"model": models, "model_version": versions or ["1"] * n,
                         "features.colour": np.array(colour or ["red"] * n, dtype=object),
                         "features.x": np.arange(n, dtype=float)})


def test_models_beyond_the_cap_are_rejected_in_order_of_first_appearance():
    limit = ModelLimit(2, known=[("a", "1")])
    mask = limit.admit(frame(["a", "b", "c", "b", "a", "c"]))
    assert mask.tolist() == [True, True, False, True, True, False]
    # the cap holds across batches; a new version is a new pair
    assert limit.admit(frame(["c", "a"], ["1", "2"])).tolist() == [False, False]
    assert limit.known == {("a", "1"), ("b", "1")}


def test_ten_thousand_model_names_keep_the_tracked_set_at_the_cap():
    limit = ModelLimit(50)
    mask = limit.admit(frame([f"m{i}" for i in range(10_000)]))
    assert mask.sum() == 50 and mask[:50].all() and len(limit.known) == 50


def test_categories_beyond_the_cap_collapse_to_the_overflow_value_and_are_counted():
    limit = CategoryLimit(3)
    out, replaced = limit.apply(frame(["a"] * 6, colour=["r", "g", "b", "y", "r", None]))
    values = out["features.colour"].tolist()
    assert values[:5] == ["r", "g", "b", OVERFLOW_CATEGORY, "r"] and pd.isna(values[5])
    assert replaced == {"a": 1}
    # per model: another model has its own vocabulary; numeric columns are untouched
    out, replaced = limit.apply(frame(["b", "a"], colour=["y", "y"]))
    assert out["features.colour"].tolist() == ["y", OVERFLOW_CATEGORY] and replaced == {"a": 1}
    assert out["features.x"].tolist() == [0.0, 1.0]


def test_a_frame_within_the_caps_is_returned_unchanged():
    f = frame(["a", "a"], colour=["r", "g"])
    out, replaced = CategoryLimit(5).apply(f)
    assert out is f and replaced == {}


def test_caps_must_be_positive():
    with pytest.raises(ValueError, match="max_models"):
        ModelLimit(0)
    with pytest.raises(ValueError, match="max_categories"):
        CategoryLimit(0)
