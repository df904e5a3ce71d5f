"""Alert rules, the alert lifecycle and silences (pure logic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alerting.lifecycle import FIRING, INACTIVE, PENDING, RESOLVED, InstanceState, repeat_due, step
from alerting.rules import RuleConfig, WindowFacts, observe, render
from alerting.silences import Silence, parse_matcher, silenced
from detectors.serving import serving_signals
from inferwatch.config import ConfigError, load_config

H = 3_600_000


def _facts(**kw) -> WindowFacts:
    base = dict(model="m", model_version="1", window_id=7, window_start_ms=0, window_end_ms=H)
    return WindowFacts(**{**base, **kw})


def _drift(name: str, role: str = "feature", **kw) -> dict:
    return {"column_name": f"{role}s.{name}", "role": role, "method": "ks", "statistic": 0.3, "p_value": 0.001,
            "drifted": True, "psi": 0.4, "js_distance": 0.2, "missing_share": 0.0, **kw}


# --- rules -------------------------------------------------------------------------------
def test_feature_rule_gives_one_instance_per_feature_with_templated_numbers():
    rule = RuleConfig(name="FeatureDrift", signal="feature_drift", field="p_value", op="<", threshold=0.01,
                      annotations={"summary": "{feature}: {method} statistic {statistic:.2f}, p={p_value:.1e}"})
    facts = _facts(results=[_drift("age"), _drift("income", p_value=0.5, statistic=0.01), _drift("score", "prediction")])
    obs = observe(rule, facts)
    assert [o.labels["feature"] for o in obs] == ["age", "income"]  # the prediction column is another signal
    assert obs[0].labels == {"alertname": "FeatureDrift", "model": "m", "model_version": "1", "severity": "warning",
                             "feature": "age", "role": "feature"}
    assert [rule.breaches(o.value) for o in obs] == [True, False]
    assert render(rule, obs[0].context)["summary"] == "age: ks statistic 0.30, p=1.0e-03"
    assert render(rule, obs[0].context)["window_start"] == "1970-01-01T00:00:00.000Z"


def test_drifted_field_defaults_to_equal_one_and_missing_numbers_print_na():
    rule = RuleConfig(name="D", signal="prediction_drift")
    assert (rule.field, rule.op, rule.threshold) == ("drifted", "==", 1.0)
    obs = observe(rule, _facts(results=[_drift("score", "prediction", p_value=None, drifted=False)]))
    assert obs[0].value == 0.0 and not rule.breaches(obs[0].value)
    assert render(rule, obs[0].context)["p_value"] == "n/a"


def test_window_rules_read_dataset_serving_and_performance_signals():
    share = RuleConfig(name="Share", signal="dataset_drift_share", op=">=", threshold=0.3)
    p95 = RuleConfig(name="Slow", signal="latency_p95_seconds", op=">", threshold=0.25)
    acc = RuleConfig(name="Acc", signal="performance", metric="accuracy", op="<", threshold=0.8)
    close = _facts(results=[], drift_share=0.5, n_drifted=2, n_columns=4, serving={"latency_p95_seconds": 0.3})
    assert [o.value for o in observe(share, close)] == [0.5]
    assert [o.value for o in observe(p95, close)] == [0.3]
    assert observe(acc, close) == []  # a window close carries no labels yet
    labelled = _facts(performance={"accuracy": 0.7})
    assert [(o.labels["metric"], o.value) for o in observe(acc, labelled)] == [("accuracy", 0.7)]
    assert observe(share, labelled) == [] and observe(p95, labelled) == []
    assert "2 of 4 features drifted (share 0.50)" in render(share, observe(share, close)[0].context)["summary"]


def test_rule_filters_by_model_and_column():
    rule = RuleConfig(name="R", signal="missing_share", op=">", threshold=0.1, models=["m"], columns=["age"])
    facts = _facts(results=[_drift("age", missing_share=0.2), _drift("income", missing_share=0.9)])
    assert [(o.labels["feature"], o.value) for o in observe(rule, facts)] == [("age", 0.2)]
    assert observe(rule, _facts(model="other", results=facts.results)) == []


@pytest.mark.parametrize("rule, message", [
    ({"name": "X", "signal": "latency"}, "unknown signal 'latency'"),
    ({"name": "X", "signal": "error_rate", "threshold": 0.1}, "op is required"),
    ({"name": "X", "signal": "error_rate", "op": ">"}, "threshold is required"),
    ({"name": "X", "signal": "performance", "op": "<", "threshold": 1}, "needs metric"),
    ({"name": "X", "signal": "feature_drift", "field": "mean"}, "field: one of"),
    ({"name": "X", "signal": "error_rate", "op": ">", "threshold": 0.1, "resolve_threshold": 0.2},
     "must not exceed threshold"),
    ({"name": "X", "signal": "error_rate", "op": ">", "threshold": 0.1, "for": [3, 2]}, "1 <= k <= n"),
    ({"name": "X", "signal": "error_rate", "op": ">", "threshold": 0.1, "annotations": {"summary": "{replica}"}},
     "unknown placeholder {replica}"),
    ({"name": "X", "signal": "error_rate", "op": ">", "threshold": 0.1, "annotations": {"summary": "{model:.2f}"}},
     "annotation summary"),
    ({"name": "X", "signal": "error_rate", "op": ">", "threshold": 0.1, "labels": {"model": "a"}},
     "set by inferwatch"),
    ({"name": "bad name", "signal": "error_rate", "op": ">", "threshold": 0.1}, "alertname"),
])
def test_bad_rule_fails_start_up_naming_it(rule, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, alerting={"rules": [{"name": "Fine", "signal": "dataset_drift"}, rule]})
    text = str(err.value)
    assert message in text
    assert f"alerting.rules[1] ({rule['name']})" in text  # names the rule, not just its position


def test_duplicate_rule_names_and_legacy_keys_with_rules_are_refused():
    with pytest.raises(ConfigError, match="unique: A"):
        load_config(None, alerting={"rules": [{"name": "A", "signal": "dataset_drift"}] * 2})
    with pytest.raises(ConfigError, match="fire_share, resolve_share and k_of_n"):
        load_config(None, alerting={"fire_share": 0.3, "rules": [{"name": "A", "signal": "dataset_drift"}]})


def test_implied_rule_follows_the_legacy_keys():
    (rule,) = load_config(None, alerting={"k_of_n": [2, 3]}).alerting.effective_rules()
    assert (rule.name, rule.signal, rule.for_windows) == ("InferwatchDatasetDrift", "dataset_drift", (2, 3))
    (rule,) = load_config(None, alerting={"fire_share": 0.4, "resolve_share": 0.2}).alerting.effective_rules()
    assert (rule.signal, rule.op, rule.threshold, rule.resolve_threshold) == ("dataset_drift_share", ">=", 0.4, 0.2)
    assert rule.clears(0.19) and not rule.clears(0.3) and not rule.breaches(0.3)


# --- lifecycle ---------------------------------------------------------------------------
def _run(values, rule: RuleConfig, st=None):
    """Feed one value per window (window i starts at i hours); the transitions in order."""
    st = st or InstanceState()
    out = []
    for i, v in enumerate(values):
        b = None if v is None else rule.breaches(v)
        c = None if v is None else rule.clears(v)
        k, n = rule.for_windows
        st, t = step(st, i * H, b, c, k=k, n=n, resolve_after=rule.resolve_after_windows, now_ms=i * H + 1)
        out.append((st.state, t))
    return st, out


def test_k_of_n_goes_pending_then_firing_and_insufficient_data_changes_nothing():
    rule = RuleConfig(name="R", signal="error_rate", op=">", threshold=0.1, **{"for": [2, 3]})
    st, out = _run([0.2, None, 0.0, 0.5], rule)
    assert out == [(PENDING, PENDING), (PENDING, None), (INACTIVE, INACTIVE), (FIRING, FIRING)]
    assert st.fired_at_ms == 3 * H + 1 and [h for _, h in st.history] == [True, False, True]


def test_hysteresis_resolve_threshold_and_resolve_after_windows():
    rule = RuleConfig(name="R", signal="error_rate", op=">", threshold=0.1, resolve_threshold=0.05,
                      resolve_after_windows=2)
    st, out = _run([0.2, 0.08, 0.04, 0.2, 0.01, 0.02], rule)
    # 0.08 no longer breaches but is not clear; 0.04 clears once; 0.2 restarts the count; two clears resolve
    assert [t for _, t in out] == [FIRING, None, None, None, None, RESOLVED]
    assert st.state == RESOLVED and st.history == () and st.resolved_at_ms == 5 * H + 1
    assert st.fired_at_ms == 1  # the firing's start is kept for the resolve notification


def test_a_window_seen_again_replaces_its_entry():
    st = InstanceState()
    st, t = step(st, 0, True, False, k=2, n=2, resolve_after=1, now_ms=1)
    st, t = step(st, 0, True, False, k=2, n=2, resolve_after=1, now_ms=2)  # more labels for window 0
    assert (st.state, t, st.history) == (PENDING, None, ((0, True),))
    st, t = step(st, H, True, False, k=2, n=2, resolve_after=1, now_ms=3)
    assert (st.state, t) == (FIRING, FIRING)


def test_state_round_trips_and_repeat_is_due_after_the_interval():
    st = InstanceState(FIRING, ((0, True),), 0, 10, None, True, 100)
    assert InstanceState.from_dict(st.to_dict()) == st
    assert not repeat_due(st, 150, 100) and repeat_due(st, 200, 100)
    assert repeat_due(InstanceState(FIRING, fired_at_ms=10), 11, 10**9)  # a silenced firing never sent
    assert not repeat_due(InstanceState(RESOLVED, last_sent_ms=0), 10**9, 1)


# --- silences ----------------------------------------------------------------------------
def test_matchers_and_silence_window():
    s = Silence(1, (parse_matcher("model=credit"), parse_matcher('alertname=~"Feature.*"'),
                    parse_matcher("feature!=age")), 100, 200)
    labels = {"alertname": "FeatureDrift", "model": "credit", "feature": "income"}
    assert s.mutes(labels, 150) and not s.mutes(labels, 200) and not s.mutes(labels, 99)
    assert not s.mutes({**labels, "feature": "age"}, 150)
    assert not s.mutes({**labels, "alertname": "XFeatureDrift"}, 150)  # regexes are anchored
    assert silenced(labels, [Silence(2, (parse_matcher("model!~cred.*"),), 0, 10**12), s], 150)
    with pytest.raises(ValueError, match="not name=value"):
        parse_matcher("model")
    with pytest.raises(ValueError, match="invalid regex"):
        parse_matcher("model=~(")


# --- serving signals ---------------------------------------------------------------------
def test_serving_signals_match_numpy_and_need_enough_values():
    rng = np.random.default_rng(3)
    lat = rng.gamma(2.0, 30.0, 400)
    rows = pd.DataFrame({"latency_ms": lat, "serving.status_code": np.where(np.arange(400) % 10 == 0, 503, 200),
                         "serving.replica": np.array(["a", "b", "c", "d"])[np.arange(400) % 4],
                         "serving.queue_ms": lat / 10, "serving.prompt_tokens": np.full(400, 12.0),
                         "serving.completion_tokens": np.arange(400, dtype=float)})
    s = serving_signals(rows, window_seconds=100.0)
    assert s["latency_p95_seconds"] == pytest.approx(np.quantile(lat, 0.95) / 1000, rel=1e-12)
    assert s["latency_p99_seconds"] == pytest.approx(np.percentile(lat, 99) / 1000, rel=1e-12)
    assert s["error_rate"] == pytest.approx(0.1)
    assert s["throughput_rps"] == 4.0 and s["throughput_per_replica_rps"] == 1.0
    assert s["concurrency_per_replica"] == pytest.approx(1.0 * lat.mean() / 1000)
    assert s["queue_time_p95_seconds"] == pytest.approx(np.quantile(lat / 10, 0.95) / 1000)
    assert s["prompt_tokens_total"] == 4800.0 and s["completion_tokens_mean"] == pytest.approx(199.5)
    assert s["time_to_first_token_p95_seconds"] is None  # not logged
    few = serving_signals(rows.iloc[:5], window_seconds=100.0)
    assert few["latency_p50_seconds"] is None and few["throughput_rps"] is None and few["error_rate"] is None
    assert serving_signals(rows.iloc[:0], 60.0)["latency_p99_seconds"] is None
    with pytest.raises(ValueError, match="window_seconds"):
        serving_signals(rows, 0)


def test_config_refuses_unknown_metrics_group_by_labels_and_a_lease_shorter_than_a_timeout():
    with pytest.raises(ConfigError, match="needs metric, one of: accuracy"):
        load_config(None, alerting={"rules": [{"name": "A", "signal": "performance", "metric": "acuracy",
                                               "op": "<", "threshold": 0.9}]})
    with pytest.raises(ConfigError, match="group_by: 'modle' is no alert label"):
        load_config(None, alerting={"group_by": ["modle"]})
    ok = load_config(None, alerting={"group_by": ["team"], "rules": [
        {"name": "A", "signal": "dataset_drift", "labels": {"team": "risk"}}]})
    assert ok.alerting.group_by == ["team"]
    with pytest.raises(ConfigError, match=r"lease_seconds \(60\) must be at least twice .* \(40\)"):
        load_config(None, alerting={"webhook_url": "http://127.0.0.1:1", "timeout_seconds": 40})


def test_a_firing_alert_whose_rule_left_the_configuration_is_resolved_on_the_tick(tmp_path):
    from alerting.notifiers import ReceiverConfig
    from inferwatch.alerts import AlertEvaluator
    from inferwatch.store import Store

    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    store.create_schema()
    sent = []

    def evaluator(rules):
        settings = load_config(None, alerting={"rules": rules})
        receiver = ReceiverConfig(name="r", type="webhook", url="http://127.0.0.1:1")
        return AlertEvaluator(settings, store, [receiver], enqueue=None,
                              requests_for=lambda n, r, key, now: sent.append(n) or [])

    rule = {"name": "Slow", "signal": "latency_p95_seconds", "op": ">", "threshold": 0.2,
            "annotations": {"summary": "p95 {value:.2f}"}}
    first = evaluator([rule])
    with store.transaction() as conn:
        first.evaluate(conn, _facts(results=[], serving={"latency_p95_seconds": 0.5}), 10)
        # still firing one window later at another value: the numbers that fired it are kept
        first.evaluate(conn, _facts(window_start_ms=H, results=[], serving={"latency_p95_seconds": 0.9}), 20)
    assert [n.status for n in sent] == ["firing"]
    assert store.alert_instances_in(None, ("firing",))[0]["annotations"]["summary"] == "p95 0.50"
    with store.transaction() as conn:
        assert first.tick(conn, 30) == []  # its rule is configured: nothing to resolve
    changed = evaluator([{**rule, "severity": "critical"}])  # new labels: a new instance
    with store.transaction() as conn:
        changes = changed.tick(conn, 40)
    assert [(c.before, c.after) for c in changes] == [("firing", "resolved")]
    (resolved,) = sent[1].alerts
    assert (resolved.status, resolved.starts_at_ms, resolved.ends_at_ms) == ("resolved", 10, 40)
    assert "removed or changed" in resolved.annotations["resolved_by"]
    assert store.alert_instances_in(None, ("firing", "pending")) == []
    store.close()
