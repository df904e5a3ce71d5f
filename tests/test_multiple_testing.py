"""Multiple-testing corrections: hand-computed golden values, scipy equality, None handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from detectors.multiple_testing import (
    adjust_p_values,
    benjamini_hochberg,
    bonferroni,
    family_wise_level,
    holm,
)

# m = 4 (the None is left out). Sorted: 0.005, 0.01, 0.03, 0.04 at positions 4, 0, 3, 1.
GOLDEN = [0.01, 0.04, None, 0.03, 0.005]


def _close(got: tuple[float | None, ...], expected: list[float | None]) -> bool:
    """Equal positions of None, and the floats equal to 1e-12 relative."""
    return len(got) == len(expected) and all(
        (g is None and e is None) or (g is not None and e is not None and math.isclose(g, e, rel_tol=1e-12))
        for g, e in zip(got, expected)
    )


def test_bonferroni_golden() -> None:
    res = bonferroni(GOLDEN, alpha=0.05)
    # 4 * p
    assert _close(res.adjusted, [0.04, 0.16, None, 0.12, 0.02])
    assert res.rejected == (True, False, None, False, True)
    assert res.n_tests == 4 and res.n_rejected == 2
    assert res.p_values == tuple(GOLDEN)


def test_holm_golden() -> None:
    res = holm(GOLDEN, alpha=0.05)
    # (m - j + 1) * p_(j): 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, 1*0.04=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert _close(res.adjusted, [0.03, 0.06, None, 0.06, 0.02])
    assert res.rejected == (True, False, None, False, True)


def test_bh_golden() -> None:
    res = benjamini_hochberg(GOLDEN, alpha=0.05)
    # m * p_(j) / j: 0.02, 0.02, 0.04, 0.04 -> running min from the top: same
    assert _close(res.adjusted, [0.02, 0.04, None, 0.04, 0.02])
    assert res.rejected == (True, True, None, True, True)
    assert res.n_rejected == 4


def test_bh_step_up_rescues_smaller_p_value() -> None:
    # 3 * 0.02 / 1 = 0.06 > 0.05 on its own, but p_(3) = 0.04 <= 3 * 0.05 / 3 rejects all three.
    res = benjamini_hochberg([0.02, 0.03, 0.04], alpha=0.05)
    assert res.adjusted == pytest.approx([0.04, 0.04, 0.04], rel=1e-12)
    assert res.rejected == (True, True, True)
    # Holm on the same: 0.06, max(0.06, 0.06), max(0.06, 0.04) -> none at 0.05
    h = holm([0.02, 0.03, 0.04], alpha=0.05)
    assert h.adjusted == pytest.approx([0.06, 0.06, 0.06], rel=1e-12)
    assert h.rejected == (False, False, False)


def test_adjusted_values_capped_at_one() -> None:
    res = bonferroni([0.5, 0.9, 0.001])
    assert res.adjusted == pytest.approx([1.0, 1.0, 0.003], rel=1e-12)
    assert holm([0.5, 0.9, 0.001]).adjusted == pytest.approx([1.0, 1.0, 0.003], rel=1e-12)


def test_rejection_is_adjusted_le_alpha_inclusive() -> None:
    # 2 * 0.025 = 0.05 exactly is rejected at 0.05
    res = bonferroni([0.025, 0.5], alpha=0.05)
    assert res.adjusted[0] == 0.05
    assert res.rejected == (True, False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0, allow_nan=False)),
        min_size=0,
        max_size=40,
    )
)
def test_bh_equals_scipy_and_none_excluded(ps: list[float | None]) -> None:
    res = benjamini_hochberg(ps)
    present = [p for p in ps if p is not None]
    assert res.n_tests == len(present)
    assert [a is None for a in res.adjusted] == [p is None for p in ps]
    assert [r is None for r in res.rejected] == [p is None for p in ps]
    if present:
        expected = false_discovery_control(np.array(present), method="bh")
        got = np.array([a for a in res.adjusted if a is not None])
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=30))
def test_holm_equals_brute_force_step_down(ps: list[float]) -> None:
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    expected = [0.0] * m
    running = 0.0
    for j, i in enumerate(order):  # j is 0-based rank
        running = max(running, min(1.0, (m - j) * ps[i]))
        expected[i] = running
    assert list(holm(ps).adjusted) == pytest.approx(expected, rel=1e-12, abs=0.0)
    # Holm never adjusts more than Bonferroni, and BH never more than Holm
    b, h, f = bonferroni(ps).adjusted, holm(ps).adjusted, benjamini_hochberg(ps).adjusted
    for bi, hi, fi in zip(b, h, f):
        assert fi <= hi * (1 + 1e-12) and hi <= bi * (1 + 1e-12)


def test_all_none_and_empty() -> None:
    for ps in ([], [None, None]):
        for method in ("bonferroni", "holm", "bh"):
            res = adjust_p_values(ps, method)
            assert res.n_tests == 0 and res.n_rejected == 0
            assert res.adjusted == tuple(None for _ in ps)


def test_single_p_value_unchanged() -> None:
    for method in ("bonferroni", "holm", "bh"):
        assert adjust_p_values([None, 0.03], method).adjusted == (None, 0.03)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5, float("inf")])
def test_invalid_p_value_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bonferroni([0.1, bad])


def test_invalid_method_and_alpha() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        adjust_p_values([0.1], "sidak")
    for alpha in (0.0, 1.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            adjust_p_values([0.1], "bh", alpha)


def test_family_wise_level() -> None:
    assert family_wise_level(0.05, 25) == pytest.approx(1 - 0.95**25, rel=1e-12)
    assert family_wise_level(0.05, 25) == pytest.approx(0.7226, abs=1e-4)
    assert family_wise_level(0.05, 0) == 0.0
    assert math.isclose(family_wise_level(0.01, 1), 0.01)
