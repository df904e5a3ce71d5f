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


def test_an_idle_model_version_without_open_windows_gives_its_slot_to_a_new_one():
    open_pairs = {("a", "1")}
    limit = ModelLimit(2, idle_release_ms=1000, open_pairs=lambda: open_pairs, now_ms=0)
    assert limit.admit(frame(["a", "b"]), now_ms=0).all()
    # b sent at 500: not idle at 1200; a is idle but has an open window
    assert limit.admit(frame(["b"]), now_ms=500).all()
    assert limit.admit(frame(["c"]), now_ms=1200).tolist() == [False]
    assert limit.known == {("a", "1"), ("b", "1")} and limit.released == 0
    # a's windows closed: its slot goes to c, in the same batch as rows of b
    open_pairs.clear()
    assert limit.admit(frame(["b", "c", "c"]), now_ms=1300).tolist() == [True, True, True]
    assert limit.known == {("b", "1"), ("c", "1")} and limit.released == 1
    # a, back, is a new pair now: b and c are idle (last seen at 1300) only from 2300 on, and
    # only one slot is released (the longest idle, ties by name)
    assert limit.admit(frame(["a"]), now_ms=2299).tolist() == [False]
    assert limit.admit(frame(["a"]), now_ms=2300).tolist() == [True]
    assert limit.known == {("a", "1"), ("c", "1")} and limit.released == 2


def test_without_an_idle_release_time_slots_are_held_forever():
    limit = ModelLimit(1, known=[("a", "1")], last_seen={("a", "1"): 0}, now_ms=0)
    assert limit.admit(frame(["b"]), now_ms=10**12).tolist() == [False]
    assert limit.known == {("a", "1")}


def test_known_pairs_start_from_their_stored_last_record_and_beyond_the_cap_idle_ones_go():
    # a last sent at 0, b at 5000, c never recorded (counts as seen at the start, 6000)
    known = [("a", "1"), ("b", "1"), ("c", "1")]
    seen = {("a", "1"): 0, ("b", "1"): 5000}
    # over the cap at the start: the longest idle (a) goes, down to the cap
    limit = ModelLimit(2, known, idle_release_ms=1000, last_seen=seen, now_ms=6000)
    assert limit.known == {("b", "1"), ("c", "1")} and limit.released == 1
    limit = ModelLimit(3, known, idle_release_ms=1000, last_seen=seen, now_ms=6000)
    assert limit.known == set(known)
    # one slot wanted, one released: a and b are idle, a the longer
    assert limit.admit(frame(["d"]), now_ms=6500).tolist() == [True]
    assert limit.known == {("b", "1"), ("c", "1"), ("d", "1")}
    with pytest.raises(ValueError, match="idle_release_ms"):
        ModelLimit(1, idle_release_ms=0)


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
