"""Alert evaluation wired to the database: rules over each closed window (and each change of
realized performance), the lifecycle persisted per alert instance, silences, grouping per
model, and notifications written to the outbox, all in the caller's transaction.

The decisions are the stages' (:mod:`alerting.rules`, :mod:`alerting.lifecycle`,
:mod:`alerting.silences`, :mod:`alerting.notifiers`); this module loads and stores their state.
A crash before the transaction commits loses nothing: the window is closed again after the
restart and the same decisions are made again.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, replace

from functools import partial

from alerting.autoscale import Autoscaler, KubernetesScaler, ScaleError, export_decision, export_error
from alerting.events import FIRING, RESOLVED, Alert, Notification, fingerprint
from alerting.lifecycle import INACTIVE, PENDING, InstanceState, repeat_due, step
from alerting.notifiers import requests_for
from alerting.retrain import DriftEpisode, RetrainTrigger
from alerting.rules import RuleConfig, WindowFacts, observe, render
from alerting.silences import Silence, parse_matcher, silenced
from detectors.serving import SERVING_SIGNALS
from inferwatch.config import Settings
from inferwatch.metrics import Metrics
from inferwatch.store import Store, now_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertChange:
    """A state change of one alert instance, for the metrics once the transaction committed.

    Attributes:
        labels: the instance's labels.
        before, after: lifecycle states (inactive, pending, firing, resolved).
    """

    labels: dict[str, str]
    before: str
    after: str


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:16]


def _values(context: dict[str, object]) -> dict[str, float | str | None]:
    """The JSON-safe numbers and names behind an alert (PagerDuty custom details, hooks)."""
    out: dict[str, float | str | None] = {}
    for k, v in context.items():
        if v is None or isinstance(v, (str, int, float, bool)):
            out[k] = float(v) if isinstance(v, bool) else v
    return out


class AlertEvaluator:
    """Evaluates the configured rules and keeps each alert instance's lifecycle in the store.

    Args:
        settings: the configuration (``alerting``: rules, receivers, grouping, intervals).
        store: the database.
        receivers: configured receivers (:class:`alerting.notifiers.ReceiverConfig`), the
            implied ``webhook`` receiver included.
        enqueue: called as ``enqueue(conn, request)`` to add an outgoing request to the outbox
            in the caller's transaction.
        requests_for: builds a receiver's requests for a notification
            (:func:`alerting.notifiers.requests_for`).
    """

    def __init__(self, settings: Settings, store: Store, receivers: list, enqueue, requests_for) -> None:
        cfg = settings.alerting
        self.rules: list[RuleConfig] = cfg.effective_rules()
        self._rules = {r.name: r for r in self.rules}
        self.group_by = list(cfg.group_by)
        self.repeat_ms = int(cfg.repeat_interval_seconds * 1000)
        self.resend_ms = int(cfg.alertmanager_resend_seconds * 1000)
        self.external_url = cfg.external_url
        self.store = store
        self.receivers = receivers
        self._enqueue = enqueue
        self._requests_for = requests_for
        self._resent_ms: dict[str, int] = {}  # fingerprint -> last push to Alertmanager receivers

    # --- evaluation -------------------------------------------------------------------
    def evaluate(self, conn, facts: WindowFacts, now: int) -> tuple[list[AlertChange], list[tuple[RuleConfig, Alert]]]:
        """Evaluate every rule on one window's facts, store the instances' new states and
        enqueue the notifications due.

        Returns:
            ``(changes, fired)``: state changes (for metrics) and the alerts that started
            firing with their rule (for retraining hooks).
        """
        observations = [(rule, obs, fingerprint(obs.labels)) for rule in self.rules for obs in observe(rule, facts)]
        if not observations:
            return [], []
        stored = self.store.load_alert_instances(conn, [fp for _, _, fp in observations])
        silences = self._silences(conn, now)
        changes: list[AlertChange] = []
        fired: list[tuple[RuleConfig, Alert]] = []
        due: list[Alert] = []
        for rule, obs, fp in observations:
            old = stored.get(fp)
            st = InstanceState.from_dict(old["state"]) if old else InstanceState()
            breached = cleared = None
            if obs.value is not None:
                breached, cleared = rule.breaches(obs.value), rule.clears(obs.value)
            k, n = rule.for_windows
            new, transition = step(st, facts.window_start_ms, breached, cleared, k=k, n=n,
                                   resolve_after=rule.resolve_after_windows, now_ms=now)
            annotations = render(rule, obs.context) if obs.value is not None or old is None else old["annotations"]
            if old is not None and transition is None and new.state == FIRING:
                annotations = old["annotations"]  # a firing alert keeps the numbers that fired it
            if transition == FIRING:
                alert = Alert(FIRING, obs.labels, annotations, new.fired_at_ms, None,
                              f"{self.external_url}/metrics", _values(obs.context))
                fired.append((rule, alert))
                if not silenced(obs.labels, silences, now):
                    due.append(alert)
                    new = replace(new, notified=True, last_sent_ms=now)
                    self._resent_ms[fp] = now
            elif transition == RESOLVED and st.notified:
                # the receivers saw the firing, so they see its end (even under a silence)
                due.append(Alert(RESOLVED, obs.labels, annotations, st.fired_at_ms, now,
                                 f"{self.external_url}/metrics", _values(obs.context)))
                self._resent_ms.pop(fp, None)
            if new != st or old is None or annotations != old["annotations"]:
                self.store.save_alert_instance(conn, fp, obs.labels, annotations, new.to_dict(), facts.window_id, now)
            if new.state != st.state:
                changes.append(AlertChange(obs.labels, st.state, new.state))
        self._notify(conn, due, now, f"w{facts.window_id}:{facts.window_start_ms}")
        return changes, fired

    def _configured(self, labels: dict[str, str]) -> bool:
        """Whether a rule of the configuration still yields an instance with these labels (a
        rule removed, or its severity, labels or filters changed, leaves its old instances)."""
        rule = self._rules.get(labels.get("alertname", ""))
        if rule is None or labels.get("severity") != rule.severity:
            return False
        if any(labels.get(k) != v for k, v in rule.labels.items()):
            return False
        if rule.models and labels.get("model") not in rule.models:
            return False
        return not (rule.columns and labels.get("feature") not in rule.columns)

    def tick(self, conn, now: int) -> list[AlertChange]:
        """Re-send firing alerts: every ``repeat_interval_seconds`` (and at once when a
        silence muting an unsent firing ended) to all receivers, and every
        ``alertmanager_resend_seconds`` to Alertmanager receivers, which otherwise let an
        alert expire. Instances no configured rule yields any more are resolved (receivers
        that saw them firing are told, with the annotation ``resolved_by``). Returns the state
        changes."""
        active = self.store.alert_instances_in(conn, (FIRING, PENDING))
        if not active:
            return []
        silences = self._silences(conn, now)
        repeat: list[Alert] = []
        resend: list[Alert] = []
        ended: list[Alert] = []
        changes: list[AlertChange] = []
        for row in active:
            st = InstanceState.from_dict(row["state"])
            labels = row["labels"]
            if not self._configured(labels):
                new = replace(st, state=RESOLVED if st.state == FIRING else INACTIVE, history=(), clear_streak=0,
                              resolved_at_ms=now if st.state == FIRING else st.resolved_at_ms)
                notes = {**row["annotations"], "resolved_by": "its rule was removed or changed in the configuration"}
                self.store.save_alert_instance(conn, row["fingerprint"], labels, notes, new.to_dict(), None, now)
                changes.append(AlertChange(labels, st.state, new.state))
                if st.state == FIRING and st.notified:
                    ended.append(Alert(RESOLVED, labels, notes, st.fired_at_ms, now, f"{self.external_url}/metrics"))
                self._resent_ms.pop(row["fingerprint"], None)
                continue
            if st.state != FIRING:
                continue
            if silenced(labels, silences, now):
                continue
            alert = Alert(FIRING, labels, row["annotations"], st.fired_at_ms, None, f"{self.external_url}/metrics")
            if repeat_due(st, now, self.repeat_ms):
                repeat.append(alert)
                new = replace(st, notified=True, last_sent_ms=now)
                self.store.save_alert_instance(conn, row["fingerprint"], labels, row["annotations"], new.to_dict(),
                                               None, now)
                self._resent_ms[row["fingerprint"]] = now
            elif now - self._resent_ms.get(row["fingerprint"], 0) >= self.resend_ms:
                resend.append(alert)
                self._resent_ms[row["fingerprint"]] = now
        self._notify(conn, repeat, now, f"repeat:{now}")
        self._notify(conn, resend, now, f"resend:{now}",
                     receivers=[r for r in self.receivers if r.type == "alertmanager"])
        self._notify(conn, ended, now, f"unconfigured:{now}")
        return changes

    # --- helpers ----------------------------------------------------------------------
    def _silences(self, conn, now: int) -> list[Silence]:
        out = []
        for s in self.store.list_silences(conn, active_at_ms=now):
            out.append(Silence(int(s["id"]), tuple(parse_matcher(m) for m in s["matchers"]), int(s["starts_at_ms"]),
                               int(s["ends_at_ms"]), s["created_by"], s["comment"]))
        return out

    def _notify(self, conn, alerts: list[Alert], now: int, cause: str, receivers: list | None = None) -> None:
        """Group ``alerts`` by the ``group_by`` labels and enqueue each group for each receiver."""
        if not alerts:
            return
        groups: dict[tuple, list[Alert]] = defaultdict(list)
        for a in alerts:
            groups[tuple(a.labels.get(k, "") for k in self.group_by)].append(a)
        for key, members in groups.items():
            members.sort(key=lambda a: (a.status != FIRING, a.name, a.fingerprint))
            notification = Notification(dict(zip(self.group_by, key)), tuple(members), self.external_url)
            ident = _digest(notification.group_key, cause, *(f"{a.fingerprint}:{a.status}" for a in members))
            for receiver in self.receivers if receivers is None else receivers:
                for req in self._requests_for(notification, receiver, f"alert:{ident}", now):
                    self._enqueue(conn, req)

    def instance_counts(self) -> dict[tuple[str, str, str, str], int]:
        """Pending and firing instances per (alertname, model, model_version, state), from the
        store (start-up)."""
        counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        for row in self.store.alert_instances_in(None, (PENDING, FIRING)):
            lb = row["labels"]
            counts[(lb["alertname"], lb["model"], lb["model_version"], row["state"]["state"])] += 1
        return dict(counts)


class Alerting:
    """Everything that happens after a window is evaluated: alert rules and their lifecycle,
    retraining hooks on drift alerts that start firing, autoscaling hooks on serving signals,
    and the metrics of all three.

    Alert and retraining decisions are written (state and outbox rows) in the caller's
    transaction. Autoscaling talks to the Kubernetes API, so it runs after the transaction
    commits (:meth:`after_commit`), never while the database lock is held.

    Args:
        settings: the configuration (``alerting`` and ``hooks``).
        store: the database.
        metrics: the metric families to update.
        scaler_factory: builds the scaler of an ``apply: kubernetes`` hook (default
            :class:`alerting.autoscale.KubernetesScaler`).
    """

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, scaler_factory=KubernetesScaler) -> None:
        cfg = settings.alerting
        self.store = store
        self.metrics = metrics
        self.enqueued = 0  # outbox rows written since the last commit (the caller delivers them)
        self.evaluator = AlertEvaluator(settings, store, cfg.all_receivers(), enqueue=self._enqueue,
                                        requests_for=partial(requests_for, outbox=cfg.outbox,
                                                             resend_seconds=cfg.alertmanager_resend_seconds))
        self.retrain = RetrainTrigger(settings.hooks.retrain)
        self.autoscalers = [Autoscaler(h, scaler_factory(h.kubernetes) if h.apply == "kubernetes" else None)
                            for h in settings.hooks.autoscale]
        self._scale_inputs: list[tuple[Autoscaler, float | None, int, int | None]] = []
        self._retrain_outcomes: list[tuple[str, str]] = []
        # instances per exported (capped) label values: firing per (alertname, model, version),
        # and per (alertname, model, state)
        self._firing: dict[tuple[str, str, str], int] = {}
        self._in_state: dict[tuple[str, str, str], int] = {}
        for (name, model, version, state), n in self.evaluator.instance_counts().items():
            self._count_instances({"alertname": name, "model": model, "model_version": version}, None, state, n)

    def on_window(self, conn, facts: WindowFacts, now: int) -> list[AlertChange]:
        """Evaluate a window's facts (in the caller's transaction): rules, then retraining
        hooks when a drift rule started firing, then queue the autoscaling inputs.

        Returns:
            the alert state changes, to pass to :meth:`after_commit`.
        """
        changes, fired = self.evaluator.evaluate(conn, facts, now)
        # one episode per drift rule that started firing (in config order), so each hook's
        # alerts filter sees every name; the cooldown keeps it to one retrain per hook and model
        names = list(dict.fromkeys(a.name for rule, a in fired if rule.signal not in SERVING_SIGNALS))
        if names and self.retrain.hooks and facts.window_id is not None:
            window = {"id": facts.window_id, "model": facts.model, "model_version": facts.model_version,
                      "window_start_ms": facts.window_start_ms, "window_end_ms": facts.window_end_ms,
                      "drift_share": facts.drift_share}
            for name in names:
                episode = DriftEpisode.from_results(name, window, facts.results or [], now)
                for outcome in self.retrain.fire(self.store, conn, episode, now, self._enqueue):
                    if outcome.decision.value != "filtered":
                        self._retrain_outcomes.append((outcome.hook, outcome.decision.value))
        if facts.serving is not None:
            replicas = facts.serving.get("replicas")
            for scaler in self.autoscalers:
                if scaler.config.model == facts.model:
                    self._scale_inputs.append((scaler, facts.serving.get(scaler.config.signal), now,
                                               None if replicas is None else int(replicas)))
        return changes

    def tick(self, conn, now: int) -> list[AlertChange]:
        """Re-send firing alerts that are due and resolve those of rules no longer configured
        (:meth:`AlertEvaluator.tick`), in the caller's transaction; returns the state changes,
        for :meth:`after_commit`."""
        return self.evaluator.tick(conn, now)

    def _count_instances(self, labels: dict[str, str], before: str | None, after: str, n: int = 1) -> None:
        """Move ``n`` instances from state ``before`` to ``after`` in ``inferwatch_alert_firing``
        and ``inferwatch_alerts`` (label values capped by the metrics)."""
        name, model, version = self.metrics.alert_labels(labels)
        delta = n * ((after == FIRING) - (before == FIRING))
        if delta or (name, model, version) not in self._firing:
            self._firing[(name, model, version)] = self._firing.get((name, model, version), 0) + delta
            self.metrics.alert_firing.labels(name, model, version).set(self._firing[(name, model, version)])
        for state in (PENDING, FIRING):
            key = (name, model, state)
            delta = n * ((after == state) - (before == state))
            if delta or key not in self._in_state:
                self._in_state[key] = self._in_state.get(key, 0) + delta
                self.metrics.alerts.labels(*key).set(self._in_state[key])

    def _enqueue(self, conn, request) -> None:
        if self.store.enqueue(conn, request, now_ms()):
            self.enqueued += 1

    def drop_pending(self) -> None:
        """Forget what a failed transaction queued for :meth:`after_commit`."""
        self._scale_inputs.clear()
        self._retrain_outcomes.clear()
        self.enqueued = 0

    def after_commit(self, changes: list[AlertChange]) -> None:
        """Publish alert and hook metrics and run the autoscaling hooks (Kubernetes calls,
        webhook requests enqueued in their own transaction)."""
        for ch in changes:
            self._count_instances(ch.labels, ch.before, ch.after)
        outcomes, self._retrain_outcomes = self._retrain_outcomes, []
        for hook, decision in outcomes:
            self.metrics.hook_calls.labels(hook, decision).inc()
        inputs, self._scale_inputs = self._scale_inputs, []
        for scaler, observed, at, replicas in inputs:
            try:
                decision = scaler.evaluate(observed, at, current_replicas=replicas)
            except ScaleError as exc:
                export_error(self.metrics, exc, scaler.config.name)
                log.warning("autoscaling hook %s: %s", scaler.config.name, exc)
                continue
            export_decision(self.metrics, decision)
            request = scaler.webhook_request(decision) if scaler.config.apply == "webhook" else None
            if request is not None:
                with self.store.transaction() as conn:
                    self._enqueue(conn, request)
