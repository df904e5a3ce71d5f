"""detectors.evidently_rule against Evidently itself (in-process) and against hand-computed values.

Evidently's default data-drift check (``Report([DataDriftPreset()])``) runs on
the same frames; every column must get the same test, the same drift score to
1e-9 and the same decision, and the dataset the same share and decision.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, ks_2samp, wasserstein_distance

from detectors.evidently_rule import (
    EVIDENTLY_VERSION,
    choose_evidently_stattest,
    evidently_column_drift,
    evidently_column_type,
    evidently_dataset_drift,
)

# Evidently sends usage telemetry unless this is set (inferwatch/__init__.py sets it too).
os.environ.setdefault("DO_NOT_TRACK", "1")
evidently = pytest.importorskip("evidently")


def _close(ours: float, theirs: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


# ---------------------------------------------------------------- frames


def _small_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference of 600 rows, current of 400: Evidently's p-value tests."""
    rng = np.random.default_rng(11)

    def frame(n: int, drift: bool) -> pd.DataFrame:
        shift = 0.5 if drift else 0.0
        x_nan = rng.normal(0.0, 1.0, n)
        x_nan[rng.random(n) < 0.1] = np.nan
        x_nan[:2] = [np.inf, -np.inf]
        few_unseen = rng.choice([0.0, 1.0, 2.0], n)
        if drift:
            few_unseen[:3] = 3.0  # a value the reference never had
        categories = pd.Categorical(rng.choice(["u", "v", "w"], n), categories=["u", "v", "w", "unused"])
        return pd.DataFrame(
            {
                "x_stable": rng.normal(0.0, 1.0, n),
                "x_shift": rng.normal(shift, 1.0, n),
                "i_many": rng.integers(0, 100, n),  # int, > 10 values: numerical
                "few": rng.choice([0.0, 1.0, 2.0, 3.0], n, p=[0.1, 0.2, 0.3, 0.4] if drift else [0.25] * 4),
                "few_stable": rng.choice([0.0, 1.0, 2.0], n),
                "few_unseen": few_unseen,
                "binary": (rng.random(n) < 0.3).astype(np.float64),
                "const": np.full(n, 7.0),
                "flag": rng.random(n) < (0.7 if drift else 0.5),
                "s": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1] if drift else [0.25] * 4),
                "s2": rng.choice(["yes", "no"], n),
                "i_cat": rng.integers(0, 4, n),  # int, <= 10 values: categorical
                "cat": categories,
                "x_nan": x_nan + shift,
                "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="s"),
                "nullable": pd.array(rng.integers(0, 3, n), dtype="Int64"),
            }
        )

    return frame(600, False), frame(400, True)


def _large_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference of 3000 rows, current of 1200: Evidently's distances."""
    rng = np.random.default_rng(12)

    def frame(n: int, drift: bool) -> pd.DataFrame:
        x_nan = rng.normal(0.0, 1.0, n)
        x_nan[rng.random(n) < 0.05] = np.nan
        return pd.DataFrame(
            {
                "x_stable": rng.normal(0.0, 1.0, n),
                "x_shift": rng.normal(0.3 if drift else 0.0, 1.0, n),
                "x_small_shift": rng.normal(0.05 if drift else 0.0, 1.0, n),
                "few": rng.choice([0.0, 1.0, 2.0, 3.0], n),
                "binary": (rng.random(n) < (0.6 if drift else 0.3)).astype(np.float64),
                "flag": rng.random(n) < 0.5,
                "s": rng.choice(["a", "b", "c", "d", "e", "f", "g"], n),
                "i_cat": rng.integers(0, 4, n),
                "x_nan": x_nan,
            }
        )

    return frame(3000, False), frame(1200, True)


def _boundary_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference of 1010 rows where NaN brings one column's reference to 990 values (<= 1000)."""
    rng = np.random.default_rng(13)
    ref = pd.DataFrame({"full": rng.normal(0.0, 1.0, 1010), "holes": rng.normal(0.0, 1.0, 1010)})
    ref.loc[:19, "holes"] = np.nan
    cur = pd.DataFrame({"full": rng.normal(0.2, 1.0, 500), "holes": rng.normal(0.2, 1.0, 500)})
    return ref, cur


# ---------------------------------------------------------------- Evidently


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, drift_share: float = 0.5) -> dict:
    """Run Evidently's default data-drift preset; collect what it decided, per column and per dataset."""
    from evidently import Dataset, Report
    from evidently.legacy.calculations.stattests import (
        chi_stat_test,
        jensenshannon_stat_test,
        ks_stat_test,
        wasserstein_stat_test,
        z_stat_test,
    )
    from evidently.presets import DataDriftPreset

    registry_name = {
        t.display_name: t.name
        for t in (ks_stat_test, chi_stat_test, z_stat_test, wasserstein_stat_test, jensenshannon_stat_test)
    }
    snapshot = Report([DataDriftPreset(drift_share=drift_share)], include_tests=True).run(current, reference)
    report = snapshot.dict()
    definition = Dataset.from_pandas(current).data_definition
    types = {c: "num" for c in definition.numerical_columns} | {c: "cat" for c in definition.categorical_columns}

    columns: dict[str, dict] = {}
    dataset: dict = {}
    for metric in report["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {
                "stattest": registry_name[config["method"]],
                "statistic": float(metric["value"]),
                "threshold": config["threshold"],
                "column_type": types[config["column"]],
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            dataset = {"count": metric["value"]["count"], "share": metric["value"]["share"]}
    for test in report["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            columns[params["column"]]["drifted"] = test["status"] == "FAIL"
        elif params["type"].endswith("DriftedColumnsCount"):
            dataset["drifted"] = test["status"] == "FAIL"
    return {"columns": columns, "dataset": dataset}


def _assert_parity(reference: pd.DataFrame, current: pd.DataFrame, drift_share: float = 0.5) -> list:
    theirs = _evidently(reference, current, drift_share)
    results, share, drifted = evidently_dataset_drift(reference, current, drift_share)
    ours = {r.column: r for r in results}
    assert set(ours) == set(theirs["columns"])
    for column, expected in theirs["columns"].items():
        got = ours[column]
        assert got.column_type == expected["column_type"], column
        assert got.stattest == expected["stattest"], column
        assert _close(got.statistic, expected["statistic"]), (column, got.statistic, expected["statistic"])
        assert got.threshold == expected["threshold"], column
        assert got.drifted == expected["drifted"], column
    assert sum(r.drifted for r in results) == theirs["dataset"]["count"]
    assert _close(share, theirs["dataset"]["share"])
    assert drifted == theirs["dataset"]["drifted"]
    return results


def test_version_is_the_one_reproduced():
    assert evidently.__version__ == EVIDENTLY_VERSION


def test_parity_small_reference():
    reference, current = _small_frames()
    results = _assert_parity(reference, current)
    by_column = {r.column: r for r in results}
    # The rule's choices, stated independently of Evidently.
    expected = {
        "x_stable": ("num", "ks"),
        "x_shift": ("num", "ks"),
        "i_many": ("num", "ks"),
        "few": ("num", "chisquare"),
        "few_stable": ("num", "chisquare"),
        "few_unseen": ("num", "chisquare"),
        "binary": ("num", "z"),
        "const": ("num", "z"),
        "flag": ("cat", "z"),
        "s": ("cat", "chisquare"),
        "s2": ("cat", "z"),
        "i_cat": ("cat", "chisquare"),
        "cat": ("cat", "chisquare"),
        "x_nan": ("num", "ks"),
    }
    assert {c: (r.column_type, r.stattest) for c, r in by_column.items()} == expected
    # Datetime and pandas nullable columns are left out, as Evidently does.
    assert "when" not in by_column and "nullable" not in by_column
    assert by_column["x_shift"].drifted and not by_column["x_stable"].drifted
    assert by_column["few_unseen"].statistic == 0.0 and by_column["few_unseen"].drifted
    assert by_column["const"].statistic == 1.0 and not by_column["const"].drifted
    assert by_column["few"].drifted and by_column["s"].drifted and by_column["flag"].drifted


def test_parity_large_reference():
    reference, current = _large_frames()
    results = _assert_parity(reference, current)
    by_column = {r.column: r for r in results}
    expected = {
        "x_stable": "wasserstein",
        "x_shift": "wasserstein",
        "x_small_shift": "wasserstein",
        "few": "jensenshannon",
        "binary": "jensenshannon",
        "flag": "jensenshannon",
        "s": "jensenshannon",
        "i_cat": "jensenshannon",
        "x_nan": "wasserstein",
    }
    assert {c: r.stattest for c, r in by_column.items()} == expected
    assert by_column["x_shift"].drifted and by_column["binary"].drifted
    assert not by_column["x_stable"].drifted and not by_column["x_small_shift"].drifted


def test_parity_large_reference_lower_drift_share():
    reference, current = _large_frames()
    _, share, drifted = evidently_dataset_drift(reference, current, drift_share=0.2)
    assert drifted and 0.2 <= share < 0.5
    _assert_parity(reference, current, drift_share=0.2)


def test_parity_when_nan_moves_a_column_below_1000_reference_values():
    reference, current = _boundary_frames()
    results = _assert_parity(reference, current)
    assert {r.column: r.stattest for r in results} == {"full": "wasserstein", "holes": "ks"}


# ---------------------------------------------------------------- hand-computed values


def test_choice_table():
    assert choose_evidently_stattest(1000, 6, "num") == "ks"
    assert choose_evidently_stattest(1000, 5, "num") == "chisquare"
    assert choose_evidently_stattest(1000, 3, "num") == "chisquare"
    assert choose_evidently_stattest(1000, 2, "num") == "z"
    assert choose_evidently_stattest(1000, 1, "num") == "z"
    assert choose_evidently_stattest(1000, 50, "cat") == "chisquare"
    assert choose_evidently_stattest(1000, 2, "cat") == "z"
    assert choose_evidently_stattest(1001, 6, "num") == "wasserstein"
    assert choose_evidently_stattest(1001, 5, "num") == "jensenshannon"
    assert choose_evidently_stattest(1001, 2, "cat") == "jensenshannon"
    with pytest.raises(ValueError, match="column_type"):
        choose_evidently_stattest(10, 3, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_size"):
        choose_evidently_stattest(0, 3, "num")


def test_z_test_booleans_golden():
    # 70% vs 50% True, n = 100 each: z = 0.2 / sqrt(0.6 * 0.4 * 0.02) = 2.88675, p = 0.0038924 (= chi-square 8.3333).
    result = evidently_column_drift(pd.Series([True] * 70 + [False] * 30), pd.Series([True] * 50 + [False] * 50))
    assert (result.column_type, result.stattest) == ("cat", "z")
    assert result.statistic == pytest.approx(0.0038924171, rel=1e-7)
    assert result.drifted and result.threshold == 0.05


def test_chisquare_is_goodness_of_fit_not_homogeneity():
    # Reference A/B/C = 30/30/40, current 20/40/40: expected 30/30/40, X² = 10/3 + 10/3 = 6.6667 on 2 dof,
    # p = exp(-X²/2) = 0.035674. The homogeneity test on the same 2x3 table gives X² = 3.4286, p = 0.18009.
    reference = pd.Series(["A"] * 30 + ["B"] * 30 + ["C"] * 40, name="s")
    current = pd.Series(["A"] * 20 + ["B"] * 40 + ["C"] * 40, name="s")
    result = evidently_column_drift(reference, current)
    assert (result.column, result.stattest) == ("s", "chisquare")
    assert result.statistic == pytest.approx(math.exp(-10 / 3), rel=1e-12)
    assert result.drifted
    homogeneity = chi2_contingency([[30, 30, 40], [20, 40, 40]], correction=False)
    assert homogeneity.statistic == pytest.approx(24 / 7, rel=1e-12)
    assert homogeneity.pvalue == pytest.approx(0.180092, rel=1e-5)


def test_chisquare_unseen_value_gives_p_zero():
    reference = pd.Series(["A"] * 50 + ["B"] * 50 + ["C"] * 50)
    current = pd.Series(["A"] * 50 + ["B"] * 50 + ["C"] * 49 + ["D"])
    result = evidently_column_drift(reference, current)
    assert result.statistic == 0.0 and result.drifted


def test_jensen_shannon_uses_natural_log():
    # Proportions 0.5/0.5 vs 0.6/0.4: base-2 distance 0.085435, natural-log distance 0.085435 * sqrt(ln 2).
    reference = pd.Series(["a"] * 1000 + ["b"] * 1000)
    current = pd.Series(["a"] * 600 + ["b"] * 400)
    result = evidently_column_drift(reference, current)
    assert result.stattest == "jensenshannon" and result.threshold == 0.1
    assert result.statistic == pytest.approx(0.085435 * math.sqrt(math.log(2)), rel=1e-5)
    assert result.statistic == pytest.approx(float(jensenshannon([0.5, 0.5], [0.6, 0.4])), rel=1e-12)
    assert not result.drifted


def test_wasserstein_normed_by_population_std():
    # 0..1999 shifted by 10: W1 = 10, np.std = sqrt((2000² - 1) / 12) = 577.3499.
    reference = pd.Series(np.arange(2000, dtype=np.float64))
    result = evidently_column_drift(reference, reference + 10.0)
    assert result.stattest == "wasserstein"
    assert result.statistic == pytest.approx(10.0 / math.sqrt((2000**2 - 1) / 12), rel=1e-12)
    assert result.statistic == pytest.approx(wasserstein_distance(reference, reference + 10) / np.std(reference))
    assert not result.drifted


def test_wasserstein_floor_for_constant_reference():
    # Reference constant (std 0): the divisor is Evidently's floor 0.001, so a shift of 0.0005 reads 0.5.
    reference = pd.Series(np.full(1500, 3.0))
    current = pd.Series(3.0 + np.repeat([0.0, 0.0002, 0.0004, 0.0006, 0.0008, 0.001], 100))
    result = evidently_column_drift(reference, current)
    assert result.stattest == "wasserstein"
    assert result.statistic == pytest.approx(0.0005 / 0.001, rel=1e-9)
    assert result.drifted


def test_ks_p_value_and_drift_at_equality():
    reference = pd.Series(np.linspace(0.0, 1.0, 200))
    current = pd.Series(np.linspace(0.3, 1.3, 150))
    result = evidently_column_drift(reference, current)
    assert result.stattest == "ks"
    assert result.statistic == ks_2samp(reference, current).pvalue
    assert result.drifted


def test_nan_and_inf_are_dropped_before_choosing():
    # 1005 reference rows, 10 of them NaN/inf: 995 values left, so the small-reference test applies.
    values = np.random.default_rng(3).normal(size=1005)
    values[:5] = np.nan
    values[5:10] = np.inf
    result = evidently_column_drift(pd.Series(values), pd.Series(np.random.default_rng(4).normal(size=300)))
    assert result.stattest == "ks"
    assert result.statistic == pytest.approx(ks_2samp(values[10:], np.random.default_rng(4).normal(size=300)).pvalue)


def test_column_type_inference():
    assert evidently_column_type(pd.Series([1.0, 2.0])) == "num"
    assert evidently_column_type(pd.Series(np.arange(10))) == "cat"
    assert evidently_column_type(pd.Series(np.arange(11))) == "num"
    assert evidently_column_type(pd.Series([True, False])) == "cat"
    assert evidently_column_type(pd.Series(["a", "b", "a", "a"])) == "cat"
    assert evidently_column_type(pd.Series(["a", "b", "c", "a"])) == "text"
    assert evidently_column_type(pd.Series(pd.array([1, 2], dtype="Int64"))) is None
    assert evidently_column_type(pd.Series(pd.array([True, None], dtype="boolean"))) is None
    assert evidently_column_type(pd.Series(pd.to_datetime(["2024-01-01"]))) is None


def test_errors():
    with pytest.raises(ValueError, match="text"):
        evidently_column_drift(pd.Series(["a", "b"] * 5), pd.Series(["p", "q", "r", "s"]))
    with pytest.raises(ValueError, match="does not check"):
        evidently_column_drift(pd.Series(pd.array([1, 2], dtype="Int64")), pd.Series(pd.array([1], dtype="Int64")))
    with pytest.raises(ValueError, match="current window"):
        evidently_column_drift(pd.Series([1.0, 2.0]), pd.Series([np.nan, np.inf]))
    with pytest.raises(ValueError, match="column_type"):
        evidently_column_drift(pd.Series([1.0]), pd.Series([1.0]), "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="numeric dtype"):
        evidently_column_drift(pd.Series(["a"]), pd.Series(["b"]), "num")
    with pytest.raises(ValueError, match="drift_share"):
        evidently_dataset_drift(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1.0]}), drift_share=1.5)
    with pytest.raises(ValueError, match="no column"):
        dates = pd.DataFrame({"d": pd.to_datetime(["2024-01-01"])})
        evidently_dataset_drift(dates, dates)


def test_parity_legacy_api_with_its_column_types():
    # The legacy API shares the choice and the statistics; only its typing differs (every np.number dtype is
    # numerical, the rest categorical), which column_types reproduces. An int column with 8 values shows it:
    # categorical (chi-square) in the new API, numerical (KS) in the legacy one.
    from evidently.legacy.metric_preset import DataDriftPreset as LegacyDataDriftPreset
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report as LegacyReport

    reference, current = _small_frames()
    reference, current = reference.drop(columns=["when", "nullable"]), current.drop(columns=["when", "nullable"])
    rng = np.random.default_rng(14)
    reference["i_8"], current["i_8"] = rng.integers(0, 8, len(reference)), rng.integers(0, 8, len(current))
    legacy_types = {
        c: "num" if pd.api.types.is_numeric_dtype(current[c]) and current[c].dtype != bool else "cat" for c in current
    }

    report = LegacyReport(metrics=[LegacyDataDriftPreset()])
    report.run(reference_data=reference, current_data=current, column_mapping=ColumnMapping())
    table = next(m["result"] for m in report.as_dict()["metrics"] if m["metric"] == "DataDriftTable")
    results, share, drifted = evidently_dataset_drift(reference, current, column_types=legacy_types)
    ours = {r.column: r for r in results}
    assert set(ours) == set(table["drift_by_columns"])
    for column, theirs in table["drift_by_columns"].items():
        assert ours[column].column_type == theirs["column_type"], column
        assert _close(ours[column].statistic, theirs["drift_score"]), column
        assert ours[column].drifted == theirs["drift_detected"], column
    assert _close(share, table["share_of_drifted_columns"]) and drifted == table["dataset_drift"]
    assert ours["i_8"].stattest == "ks"
    assert evidently_column_drift(reference["i_8"], current["i_8"]).stattest == "chisquare"
