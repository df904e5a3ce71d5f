"""The pipeline every source feeds: decode → window → store → detect → alert.

One call to :meth:`Pipeline.process` handles one batch of messages in one database
transaction: the rows it adds to open windows, the consumer offsets that produced them, the
watermarks, the windows it closes with their drift results, alert state changes and outgoing
notifications. A crash at any point therefore leaves the store at a batch boundary, and the
consumer resumes from the offsets stored with it — each record is counted exactly once.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter

import numpy as np
import pandas as pd

from alerting.outbox import OutboxWorker
from alerting.rules import WindowFacts
from collector.decode import FEATURE_PREFIX, PREDICTION_PREFIX, Rejected, RejectReason, to_column
from collector.formats import Limits, decode_messages, detect_format
from collector.formats.bentoml import SchemaCache, schema_from_json, schema_to_json
from collector.join import (JOIN_STATUS, REQUEST_ONLY, RESPONSE_ONLY, LabelJoin, RequestResponseJoin,
                            performance_summaries)
from collector.limits import CategoryLimit, ModelLimit
from collector.message import Message
from collector.record import SERVING_PREFIX
from collector.windows import EventTimeWindows, WindowKey, model_version_groups
from detectors import DriftConfig, Profile, build_profile, compare, dataset_drift, kind_of
from detectors.profile import NumericProfile
from detectors.serving import is_error, serving_signals
from inferwatch.alerts import AlertChange, Alerting
from inferwatch.config import Settings
from inferwatch.metrics import Metrics, prediction_shares, set_or_remove
from inferwatch.reference import profile_frame
from inferwatch.store import Store, now_ms

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[Sequence[Rejected]], None]


def column_role(column: str) -> tuple[str, str]:
    """``("feature", name)`` or ``("prediction", name)`` for a stored column name."""
    if column.startswith(PREDICTION_PREFIX):
        return "prediction", column[len(PREDICTION_PREFIX):]
    return "feature", column[len(FEATURE_PREFIX):] if column.startswith(FEATURE_PREFIX) else column


def split_per_model(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """A decoded frame as one frame per model (in order of each model's first row, row order
    kept), each through :func:`own_columns`; ``[frame]`` itself when it holds one model."""
    if frame.empty:
        return [frame]
    codes, models = pd.factorize(frame["model"])
    if len(models) <= 1:
        return [frame]
    return [own_columns(frame[codes == c].reset_index(drop=True)) for c in range(len(models))]


def own_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of one model cut from a frame of several: feature, prediction and serving columns
    none of its rows carries are dropped, and object columns are typed again by these rows
    alone (:func:`collector.decode.to_column`), so a feature another model sends as text
    never turns this model's numbers into categories."""
    drop, retyped = [], {}
    for col in rows.columns:
        if not col.startswith((FEATURE_PREFIX, PREDICTION_PREFIX, SERVING_PREFIX)):
            continue
        values = rows[col]
        if values.isna().all():
            drop.append(col)
        elif values.dtype == object:
            retyped[col] = to_column(values.tolist())
    if not drop and not retyped:
        return rows
    out = rows.drop(columns=drop)
    for col, column in retyped.items():
        out[col] = column
    return out


def role_rows(rows: pd.DataFrame, columns: list[str]) -> list[tuple[list[str], np.ndarray]] | None:
    """Which rows count for which columns when some are lone halves of a request-response
    join: per role (features, then predictions) that has columns among ``columns``, its
    columns and a boolean mask of the rows counting for them — a request without its response
    counts for the features only, a lone response for the predictions only. None when every
    row counts for every column (no lone halves)."""
    status = rows[JOIN_STATUS].to_numpy() if JOIN_STATUS in rows.columns else None
    if status is None or not ((status == REQUEST_ONLY) | (status == RESPONSE_ONLY)).any():
        return None
    out = []
    for role, skip in (("feature", RESPONSE_ONLY), ("prediction", REQUEST_ONLY)):
        names = [c for c in columns if column_role(c)[0] == role]
        if names:
            out.append((names, status != skip))
    return out


def profiled_columns(frame: pd.DataFrame) -> list[str]:
    """The feature and prediction columns of a decoded frame."""
    return [c for c in frame.columns if c.startswith((FEATURE_PREFIX, PREDICTION_PREFIX))]


@dataclass(frozen=True)
class ClosedWindow:
    """A window closed by this process, as stored."""

    window_id: int
    key: WindowKey
    window_end_ms: int
    record_count: int
    reason: str
    status: str
    drift_share: float | None
    drifted_columns: tuple[str, ...]
    dataset_drifted: bool | None = None


@dataclass(frozen=True)
class WindowDrift:
    """A closed window's drift against its reference, as stored.

    Attributes:
        results: one ``drift_results`` row per reference column (without ``window_id``):
            features first, then predictions, each in reference order.
        status: ``"ok"``, or ``"insufficient_data"`` when no feature could be evaluated.
        share: drifted share of the evaluated features in [0, 1], None when none was.
        n_columns, n_drifted: evaluated and drifted features.
        dataset_drifted: the dataset verdict, None when no feature was evaluated.
        drifted_columns: names (without the ``feature.`` prefix) of the drifted features, sorted.
    """

    results: list[dict]
    status: str
    share: float | None
    n_columns: int
    n_drifted: int
    dataset_drifted: bool | None
    drifted_columns: tuple[str, ...]


def window_drift(ref: Profile, profile: Profile, drift_cfg: DriftConfig, settings: Settings) -> WindowDrift:
    """Compare a window's profile (built on ``ref``'s bins) with the reference under the
    ``drift`` settings: the statistics a closed window stores. Used when a window closes and
    by ``inferwatch backfill``.

    Raises:
        ValueError: as :func:`detectors.compare` (kinds or bin edges that differ).
    """
    # features and predictions are separate families for the multiple-testing correction
    names = {role: [c for c in ref.columns if column_role(c)[0] == role] for role in ("feature", "prediction")}
    features = compare(ref, profile, drift_cfg, names["feature"])
    col_results = features + compare(ref, profile, drift_cfg, names["prediction"])
    drift = settings.drift
    # Evidently's dataset rule is half of the columns unless a share is configured
    share_rule = drift.share_threshold if drift.share_threshold or drift.mode != "evidently" else 0.5
    ds = dataset_drift(features, share_rule, drift.min_drifted_columns)
    results = []
    for r in col_results:
        d = r.to_dict()
        d.pop("column")
        results.append({"column_name": r.column, "role": column_role(r.column)[0], **d})
    return WindowDrift(results, "ok" if ds.share is not None else "insufficient_data", ds.share, ds.n_columns,
                       ds.n_drifted, ds.drifted,
                       tuple(sorted(column_role(r.column)[1] for r in features if r.any_drift)))


class Pipeline:
    """Stateful processing of message batches for one consumer-group member.

    Args:
        settings: validated configuration.
        store: the database (schema created).
        metrics: metric families to update.
        dead_letter: receives rejected messages; must have them durably written (e.g. flushed
            to the dead-letter topic) before it returns, since the offsets are committed next.
        group_id: consumer group whose offsets are stored.
    """

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, dead_letter: DeadLetterSink,
                 group_id: str) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.group_id = group_id
        self.drift_cfg = drift_config(settings)
        self._references: dict[tuple[str, str], tuple[tuple[str, int], Profile]] = {}
        self._pending_metrics: list[tuple[ClosedWindow, list[dict]]] = []
        self.alerting = Alerting(settings, store, metrics)
        self._pending_alert_changes: list[AlertChange] = []
        #: deliver the outbox after each batch that closed windows (replay, in-process runs);
        #: the Kafka service sets False and runs an :class:`~alerting.outbox.OutboxWorker` thread
        self.deliver_in_line = True
        # (model, version, column, role) -> method label of its published series
        self._published_method: dict[tuple[str, str, str, str], str] = {}
        # undelivered messages left by an earlier run are retried on the first batch
        self._outbox_failures = 1 if store.outbox_counts()["pending"] else 0
        self._outbox_worker: OutboxWorker | None = None
        self.category_limit = CategoryLimit(settings.kafka.max_categories)
        self._joins: dict[int, RequestResponseJoin] = {}  # per partition number
        #: (model, version) pairs this pipeline has placed records of
        self.fed_models: set[tuple[str, str]] = set()
        perf = settings.performance
        self._performance_start: dict[tuple[str, str], int] = {}
        self._performance_specs = {model: m.spec() for model, m in perf.models.items()}
        needed = sorted({c for spec in self._performance_specs.values() for c in (spec.prediction, *spec.probabilities)})
        self.label_join = LabelJoin(perf.label_delay_seconds * 1000, prediction_columns=needed or None)
        self._pending_label_counts: dict[str, int] = {}
        # (model, version) -> (window start, metrics) of the latest window whose performance changed
        self._pending_performance: dict[tuple[str, str], tuple[int, dict]] = {}
        # BentoML schema lines read by earlier runs (the stored offsets may lie past them)
        self.bentoml_schemas = SchemaCache(track_changes=True)
        with store.transaction() as conn:
            start = now_ms()
            self._restore(conn, start)
            idle = settings.kafka.model_idle_release_seconds
            self.model_limit = ModelLimit(
                settings.kafka.max_models, store.tracked_models(conn),
                idle_release_ms=None if idle is None else idle * 1000, last_seen=store.last_arrivals(conn),
                open_pairs=lambda: {(k.model, k.model_version) for k in self.windows.open}, now_ms=start)
            self.bentoml_schemas.load([(k, schema_from_json(t)) for k, t in store.load_bentoml_schemas(conn)])

    def _new_windows(self) -> EventTimeWindows:
        w = self.settings.window
        slide = None if w.slide_seconds is None else w.slide_seconds * 1000
        return EventTimeWindows(w.length_seconds * 1000, w.max_records, w.allowed_lateness_seconds * 1000,
                                w.origin_ms, slide)

    def _restore(self, conn, now: int) -> None:
        """Rebuild every piece of in-memory bookkeeping from the store (at start, and after a
        transaction that failed: what it changed in memory was rolled back in the database)."""
        self.windows = self._new_windows()
        self.windows.restore(self.store.open_windows(conn), self.store.load_watermarks(conn),
                             self.store.closed_windows(conn), now)
        self._bootstrap_counts = self.store.reference_partial_counts(conn)
        self._stale = False

    def _sync(self, conn, batch: Sequence[tuple[tuple[str, int], pd.DataFrame]], now: int,
              sources: dict[tuple[str, int], bool] | None,
              partitions: Iterable[tuple[str, int]] | None) -> None:
        """Take the state the members of the consumer group share from the store (under its
        window lock): open windows, watermarks, last arrivals, closed windows the batch's rows
        may fall into, and every partition's caught-up state."""
        self.store.lock_windows(conn)
        if self._stale:
            self._restore(conn, now)
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for _source, frame in batch:
            if frame.empty:
                continue
            times = frame["event_time_ms"].to_numpy(np.int64)
            for (model, version), idx in model_version_groups(frame):
                lo, hi = self.windows.start_range(times if idx is None else times[idx])
                old = spans.get((model, version), (lo, hi))
                spans[(model, version)] = (min(lo, old[0]), max(hi, old[1]))
        shared_sources = None
        if sources is not None:
            stored = self.store.load_partition_states(conn)
            universe = set(partitions) if partitions is not None else (
                set(sources) | {tp for tp in stored if tp[0] in {t for t, _ in sources}})
            # a partition nobody has reported on yet counts as behind: it may hold records
            shared_sources = {tp: stored.get(tp, False) for tp in universe} if sources else {}
            shared_sources.update(sources)
        marks, last_arrivals, partition_arrivals = self.store.load_watermark_state(conn)
        self.windows.sync(self.store.open_windows(conn), marks, last_arrivals,
                          self.store.closed_windows_between(conn, spans), shared_sources, partition_arrivals, now)

    def _join(self, partition: int) -> RequestResponseJoin:
        """The request-response join of one partition number, loaded from the store when new."""
        join = self._joins.get(partition)
        if join is None:
            j = self.settings.join
            skew = None if j.max_skew_seconds is None else j.max_skew_seconds * 1000
            join = RequestResponseJoin(j.ttl_seconds * 1000, max_pending=j.max_pending, max_bytes=j.max_bytes,
                                       max_skew_ms=skew)
            with self.store.engine.connect() as conn:
                entries, clock, next_seq = self.store.load_join_state(conn, _join_name(partition))
            if clock is not None or len(entries):
                join.restore(entries, clock_ms=clock, next_seq=next_seq)
            self._joins[partition] = join
        return join

    @contextmanager
    def _transaction(self) -> Iterator:
        """A store transaction; if it fails, the in-memory bookkeeping it changed is dropped."""
        try:
            with self.store.transaction() as conn:
                yield conn
        except BaseException:
            self._drop_memory()
            raise

    def _drop_memory(self) -> None:
        """Forget in-memory state that a failed batch may have changed: it is rebuilt from the
        store in the next transaction, and what the batch emitted was not stored."""
        self._stale = True
        self._joins.clear()
        self._pending_label_counts.clear()
        self._pending_performance.clear()
        self._pending_metrics.clear()
        self._pending_alert_changes.clear()
        self.alerting.drop_pending()

    # --- batches -------------------------------------------------------------------------
    def process(self, messages: Sequence[Message], now: int | None = None,
                sources: dict[tuple[str, int], bool] | None = None,
                partitions: Iterable[tuple[str, int]] | None = None) -> list[ClosedWindow]:
        """Decode, window and store one batch; close due windows. Returns the windows closed.

        ``sources`` maps the partitions this member reads to whether they have caught up with
        their end (see :mod:`collector.windows`); None for a single in-process source.
        ``partitions``: every partition of the subscribed topics (read by any member), when
        known; each holds the watermark back until its reader reports it caught up.
        """
        now = now_ms() if now is None else now
        kafka = self.settings.kafka
        future = self.settings.window.max_future_seconds
        max_event_time = None if future is None else now + future * 1000
        limits = Limits(kafka.max_message_bytes, kafka.max_features, max_event_time,
                        max_rows_per_message=kafka.max_rows_per_message)
        batch, rejected = [], []
        capped: dict[str, int] = {}
        join_counts: dict[str, int] = {}
        joins_touched: set[int] = set()
        join_sources: dict[tuple[str, int], int] = {}  # source -> the join its halves went to
        label_frames: list[pd.DataFrame] = []
        late_responses: list[pd.DataFrame] = []  # predictions whose call already has its row
        if sources is not None:  # a partition read elsewhere meanwhile reloads its join state from the store
            assigned = {p for _t, p in sources}
            for p in [p for p in self._joins if p not in assigned]:
                del self._joins[p]
        # decoded per partition: event time (and so the watermark) advances per partition
        offsets: dict[tuple[str, int], int] = {}  # next offset to read per partition (next_offsets)
        for source, group in groupby(messages, key=_source_of):
            group = list(group)
            top = max(m.offset for m in group) + 1
            offsets[source] = max(offsets.get(source, 0), top)
            decoded = decode_messages(group, self.settings.formats.for_topic(source[0]), limits, self.bentoml_schemas)
            rejected.extend(decoded.rejected)
            frame = decoded.records
            if len(decoded.labels):
                label_frames.append(decoded.labels)
            if len(decoded.requests) or len(decoded.responses):
                joined = self._join(source[1]).add(decoded.requests if len(decoded.requests) else None,
                                                   decoded.responses if len(decoded.responses) else None)
                joins_touched.add(source[1])
                join_sources[source] = source[1]
                for outcome, n in joined.counts.items():
                    join_counts[outcome] = join_counts.get(outcome, 0) + n
                frame = _concat_rows(frame, joined.records)
                if len(joined.late):
                    late = joined.late[joined.late[JOIN_STATUS] == RESPONSE_ONLY]
                    if len(late):
                        late_responses.append(late)
            admitted = self.model_limit.admit(frame, now)
            if not admitted.all():
                rejected.extend(self._over_model_cap(group, decoded, frame, ~admitted))
                frame = frame[admitted].reset_index(drop=True)
            batch.extend((source, part) for part in self._typed_and_capped(frame, capped))
        if rejected:
            try:
                self.dead_letter(rejected)
            except BaseException:
                self._drop_memory()  # the joins took this batch's halves, which are not stored
                raise
        schemas = self.bentoml_schemas.changes()
        with self._transaction() as conn:
            self._sync(conn, batch, now, sources, partitions)
            if schemas:  # with the offsets past their schema lines
                self.store.save_bentoml_schemas(conn, {k: schema_to_json(v) for k, v in schemas.items()})
            assignment = self.windows.assign_batch(batch, now)
            parts, late_rows, on_time = assignment.parts, assignment.late, assignment.on_time
            for key, rows in parts:
                self.store.add_window_partial(conn, key.model, key.model_version, key.start_ms, key.segment, rows)
            on_time_groups = model_version_groups(on_time)
            self._feed_bootstrap_references(conn, on_time, on_time_groups)
            if offsets:
                self.store.save_offsets(conn, self.group_id, offsets)
            touched = {mv for mv, _idx in on_time_groups}
            self.fed_models |= touched
            for source, join_partition in join_sources.items():
                self.windows.hold(source, self._joins[join_partition].oldest_pending_ms)
            self.store.save_watermarks(conn, {k: t for k, t in self.windows.held_event_time().items()
                                              if (k[2], k[3]) in offsets and (k[0], k[1]) in touched},
                                       {mv: now for mv in touched})
            if sources:
                self.store.save_partition_states(conn, sources)
            for p in sorted(joins_touched):
                self.store.save_join_changes(conn, _join_name(p), self._joins[p].drain_changes())
            self._realized_performance(conn, on_time, label_frames, late_responses)
            closed = self._close(conn, self.windows.due(now, self._idle_ms()), now)
        self.bentoml_schemas.stored(schemas)
        m = self.metrics
        for outcome, n in join_counts.items():
            if n:
                m.join_outcomes.labels(outcome).inc(n)
        for r in rejected:
            m.records_rejected.labels(r.reason.value).inc()
        model_label = _memo(m.model_label)  # the label cap looked up once per model and batch
        for model, n in capped.items():
            m.values_capped.labels(model_label(model), "too_many_categories").inc(n)
        for model, n in _rows_per_model(on_time, on_time_groups).items():
            m.records_ingested.labels(model_label(model)).inc(n)
        for model, n in late_rows.groupby("model").size().items() if len(late_rows) else []:
            m.records_late.labels(model_label(model)).inc(int(n))
        self._observe_serving(on_time, on_time_groups, model_label)
        if len(late_rows):
            self._observe_serving(late_rows, model_version_groups(late_rows), model_label)
        self._after_commit(closed)
        return closed

    def _observe_serving(self, frame: pd.DataFrame, groups: list[tuple[tuple[str, str], np.ndarray | None]],
                         model_label: Callable[[str], str]) -> None:
        """Latencies and request outcomes of placed records (on time or late) into the serving
        histogram and counter, per model, by whole columns. ``groups``: the frame's
        :func:`~collector.windows.model_version_groups`."""
        latency = _latency_seconds(frame)
        status = _float_values(frame, "serving.status_code")
        if latency is None and status is None:
            return
        for (model, _version), idx in groups:
            lat = None if latency is None else latency if idx is None else latency[idx]
            st = None if status is None else status if idx is None else status[idx]
            error = 0 if st is None else int(np.count_nonzero(is_error(st)))
            ok = 0 if st is None else int(np.count_nonzero(np.isfinite(st))) - error
            self.metrics.observe_serving(model_label(model), _NO_VALUES if lat is None else lat, ok, error)

    def _typed_and_capped(self, frame: pd.DataFrame, capped: dict[str, int]) -> list[pd.DataFrame]:
        """The frame per model (:func:`split_per_model`: each model's columns typed by its own
        rows) with text values beyond ``kafka.max_categories`` replaced; adds the replaced
        values per model to ``capped``."""
        parts = []
        for part in split_per_model(frame):
            part, replaced = self.category_limit.apply(part)
            for model, n in replaced.items():
                capped[model] = capped.get(model, 0) + n
            parts.append(part)
        return parts

    def _realized_performance(self, conn, records: pd.DataFrame, label_frames: list[pd.DataFrame],
                              late_responses: list[pd.DataFrame] = ()) -> None:
        """Join this batch's predictions (of the models ``performance.models`` describes) and
        labels with those waiting in the store, and merge the labelled pairs into the realized
        performance of their prediction's windows. ``late_responses``: responses that came
        after their request was given up; their call's row is the request's (no prediction),
        so their predictions are still labelled here. Pairs whose prediction, label or
        probabilities cannot be scored are counted as the outcome ``unscorable``."""
        specs = self._performance_specs
        if not specs:
            return
        late = [f[f["model"].isin(list(specs))] for f in late_responses]
        late = [f for f in late if len(f)]
        if late:
            records = pd.concat([records, *late], ignore_index=True) if len(records) else \
                pd.concat(late, ignore_index=True)
        preds = records[records["model"].isin(list(specs))] if len(records) else records
        if JOIN_STATUS in preds.columns:  # a request without its response has no prediction
            preds = preds[preds[JOIN_STATUS] != REQUEST_ONLY]
        labels = pd.concat(label_frames, ignore_index=True) if label_frames else pd.DataFrame()
        if not len(preds) and not len(labels):
            return
        result = self.label_join.process(self.store.label_state(conn, "labels"), preds if len(preds) else None,
                                         labels if len(labels) else None)
        for outcome, n in result.counts.items():
            self._pending_label_counts[outcome] = self._pending_label_counts.get(outcome, 0) + n
        w = self.windows
        for model, spec in specs.items():
            pairs = result.pairs[result.pairs["model"] == model] if len(result.pairs) else result.pairs
            unlabelled = result.unlabelled[result.unlabelled["model"] == model] if len(result.unlabelled) \
                else result.unlabelled
            if not len(pairs) and not len(unlabelled):
                continue
            perf = performance_summaries(pairs if len(pairs) else unlabelled.iloc[:0], spec, window_ms=w.length_ms,
                                         slide_ms=w.slide_ms, origin_ms=w.origin_ms,
                                         unlabelled=unlabelled if len(unlabelled) else None)
            if perf.n_invalid:
                counts = self._pending_label_counts
                counts["unscorable"] = counts.get("unscorable", 0) + perf.n_invalid
            for (m, v, start), summary in sorted(perf.summaries.items()):
                merged = self.store.merge_window_performance(conn, m, v, start, summary)
                facts = WindowFacts(m, v, self.store.closed_window_id(conn, m, v, start), start, start + w.length_ms,
                                    performance=merged.metrics().values())
                self._pending_alert_changes.extend(self.alerting.on_window(conn, facts, now_ms()))
                latest = self._pending_performance.get((m, v))
                if latest is None or start >= latest[0]:
                    self._pending_performance[(m, v)] = (start, merged.metrics().values())

    def _over_model_cap(self, group: list[Message], decoded, frame: pd.DataFrame, refused: np.ndarray
                        ) -> list[Rejected]:
        """Rejections for the rows of model versions beyond ``kafka.max_models``: their own
        message when each accepted message gave one row, else the row itself as a JSON record
        (so the dead-letter topic still holds what was refused)."""
        failed = {id(r.message) for r in decoded.rejected}
        accepted = [m for m in group if id(m) not in failed]
        # only inferwatch's own record is one row per message, in order
        topic_fmt = self.settings.formats.for_topic(group[0].topic)
        fmt, mapping = topic_fmt.format, topic_fmt.mapping
        one_to_one = len(accepted) == len(frame) and (
            fmt == "inferwatch" or (fmt == "auto" and all(detect_format(m, mapping) == "inferwatch" for m in accepted)))
        out = []
        for i in np.flatnonzero(refused):
            row = frame.iloc[i]
            detail = (f"model {row['model']!r} version {row['model_version']!r}: {self.model_limit.max_models} "
                      "model versions are tracked already (kafka.max_models)")
            if one_to_one:
                message = accepted[i]
            else:
                value = json.dumps({k: (None if isinstance(v, float) and np.isnan(v) else
                                        v.item() if isinstance(v, np.generic) else v)
                                    for k, v in row.items()}, default=str).encode()
                message = Message(group[0].topic, group[0].partition, -1, value)
            out.append(Rejected(message, RejectReason.TOO_MANY_MODELS, detail))
        return out

    def tick(self, now: int | None = None, sources: dict[tuple[str, int], bool] | None = None,
             partitions: Iterable[tuple[str, int]] | None = None) -> list[ClosedWindow]:
        """Report this member's partitions and close windows that are due on wall-clock time
        (idle models) or on the shared watermark (another member's progress)."""
        now = now_ms() if now is None else now
        with self._transaction() as conn:
            self._sync(conn, [], now, sources, partitions)
            if sources:
                self.store.save_partition_states(conn, sources)
            closed = self._close(conn, self.windows.due(now, self._idle_ms()), now)
            self._pending_alert_changes.extend(self.alerting.tick(conn, now))
        self._after_commit(closed)
        return closed

    def close_all(self, reason: str = "end_of_input", only: set[tuple[str, str]] | None = None
                  ) -> list[ClosedWindow]:
        """Close every open window (end of a finite input such as a replayed file); halves
        still waiting in the request-response joins are given up into their windows first.

        Args:
            only: close only the windows of these (model, version) pairs (e.g. those a replay
                fed, so a live service's windows in the same database stay open); None: all.
        """
        now = now_ms()
        with self._transaction() as conn:
            flushed = [(("join", p), j.flush()) for p, j in sorted(self._joins.items())]
            capped: dict[str, int] = {}
            batch = [(src, part) for src, res in flushed if len(res.records)
                     for part in self._typed_and_capped(res.records, capped)]
            self._sync(conn, batch, now, None, None)
            placed = []  # rows given up by the joins, placed on time or late
            if batch:
                assignment = self.windows.assign_batch(batch, now)
                for key, rows in assignment.parts:
                    self.store.add_window_partial(conn, key.model, key.model_version, key.start_ms, key.segment,
                                                  rows)
                placed = [f for f in (assignment.on_time, assignment.late) if len(f)]
            for p, j in self._joins.items():
                self.store.save_join_changes(conn, _join_name(p), j.drain_changes())
            # a model whose only rows were still waiting for their partners was fed too
            given_up = {(m, v) for _src, rows in batch for (m, v), _idx in model_version_groups(rows)}
            self.fed_models |= given_up
            if only is not None:
                only = only | given_up
            keys = [k for k in sorted(self.windows.open) if only is None or (k.model, k.model_version) in only]
            closed = self._close(conn, [(k, reason) for k in keys], now)
        model_label = _memo(self.metrics.model_label)
        for model, n in capped.items():
            self.metrics.values_capped.labels(model_label(model), "too_many_categories").inc(n)
        for frame in placed:
            self._observe_serving(frame, model_version_groups(frame), model_label)
        self._after_commit(closed)
        return closed

    def _idle_ms(self) -> int | None:
        s = self.settings.window.idle_close_seconds
        return None if s is None else s * 1000

    # --- references ----------------------------------------------------------------------
    def reference(self, conn, model: str, model_version: str) -> Profile | None:
        """The reference profile for a model version, or None. Cached, and reloaded when
        ``inferwatch reference set`` stores a new one while the service runs."""
        key = (model, model_version)
        stamp = self.store.reference_stamp(conn, model, model_version)
        if stamp is None:
            return None
        cached = self._references.get(key)
        if cached is None or cached[0] != stamp:
            found = self.store.get_reference(conn, model, model_version)
            self._references[key] = (stamp, Profile.from_dict(found[1]))
        return self._references[key][1]

    def _profile(self, model: str, frame: pd.DataFrame) -> Profile:
        """Profile of rows with no reference to bin against (bootstrap references, windows
        closed before their reference exists). As for windows, a request without its response
        counts for the features only and a lone response for the predictions only."""
        categorical = set(self.settings.drift.categorical.get(model, []))
        cfg = self.settings.reference
        names = profiled_columns(frame)
        roles = role_rows(frame, names)
        if roles is None:
            return profile_frame(frame[names], categorical, cfg.n_bins, cfg.sample_size)
        columns: dict = {}
        for role_names, counted in roles:
            part = frame.loc[counted, role_names]
            if len(part):
                columns.update(profile_frame(part, categorical, cfg.n_bins, cfg.sample_size).columns)
        return Profile(len(frame), columns)

    def _feed_bootstrap_references(self, conn, frame: pd.DataFrame,
                                   groups: list[tuple[tuple[str, str], np.ndarray | None]] | None = None) -> None:
        """The first N records of a model version without a reference become its reference.
        ``groups``: the frame's :func:`~collector.windows.model_version_groups`, when known."""
        if frame.empty:
            return
        n_needed = self.settings.reference.bootstrap_records
        for (model, version), idx in model_version_groups(frame) if groups is None else groups:
            if self.reference(conn, model, version) is not None:
                continue
            have = self._bootstrap_counts.get((model, version), 0)
            want = max(0, n_needed - have)
            take = frame.iloc[:want] if idx is None else own_columns(frame.iloc[idx[:want]])
            if take.empty:
                continue
            self.store.add_reference_partial(conn, model, version, take)
            have += len(take)
            self._bootstrap_counts[(model, version)] = have
            if have >= n_needed:
                ref_rows = self.store.take_reference_partials(conn, model, version)
                profile = self._profile(model, ref_rows)
                self.store.put_reference(conn, model, version, f"bootstrap:first {n_needed} records",
                                         len(ref_rows), profile.to_dict())
                del self._bootstrap_counts[(model, version)]
                log.info("reference for %s v%s built from its first %d records", model, version, n_needed)

    # --- closing windows -----------------------------------------------------------------
    def _close(self, conn, due: list[tuple[WindowKey, str]], now: int) -> list[ClosedWindow]:
        closed = []
        for key, reason in due:
            rows = self.store.take_window_partials(conn, key.model, key.model_version, key.start_ms, key.segment)
            self.windows.mark_closed(key, reason)
            if rows.empty:
                continue
            # rows a member added to a window just closed (its partition had been caught up)
            # are stored as a further segment of it, never dropped or merged twice
            segment = self.store.next_free_segment(conn, key.model, key.model_version, key.start_ms, key.segment)
            closed.append(self._close_one(conn, WindowKey(key.model, key.model_version, key.start_ms, segment),
                                          reason, rows, now))
        return closed

    def _close_one(self, conn, key: WindowKey, reason: str, rows: pd.DataFrame, now: int) -> ClosedWindow:
        end = key.start_ms + self.windows.length_ms
        ref = self.reference(conn, key.model, key.model_version)
        results: list[dict] = []
        share = None
        n_columns = n_drifted = 0
        drifted_cols: tuple[str, ...] = ()
        dataset_drifted = None
        if ref is None:
            status = "no_reference"
            profile = self._profile(key.model, rows)
        else:
            current = coerce_to_reference(rows, ref)
            profile = self._window_profile(current, rows, ref)
            wd = window_drift(ref, profile, self.drift_cfg, self.settings)
            results, status, share, n_columns, n_drifted, dataset_drifted, drifted_cols = (
                wd.results, wd.status, wd.share, wd.n_columns, wd.n_drifted, wd.dataset_drifted, wd.drifted_columns)
        window_id = self.store.insert_window(conn, {
            "model": key.model, "model_version": key.model_version, "window_start_ms": key.start_ms,
            "window_end_ms": end, "segment": key.segment, "record_count": len(rows), "close_reason": reason,
            "closed_at_ms": now, "status": status, "n_columns": n_columns, "n_drifted": n_drifted,
            "drift_share": share, "dataset_drifted": dataset_drifted, "profile": json.dumps(window_statistics(
                profile, None if ref is None else self._references[(key.model, key.model_version)][0])),
        }, results)
        if self.settings.window.sample_retention_days:
            # the raw values window_statistics leaves out, for backfill and reports (same transaction)
            self.store.put_window_samples(conn, window_id, {c: p.sample for c, p in profile.columns.items()
                                                            if isinstance(p, NumericProfile)})
        closed = ClosedWindow(window_id, key, end, len(rows), reason, status, share, drifted_cols, dataset_drifted)
        serving = serving_signals(rows, self.windows.length_ms / 1000, self.settings.alerting.serving_min_count)
        facts = WindowFacts(key.model, key.model_version, window_id, key.start_ms, end,
                            None if ref is None else results, share, n_drifted, n_columns, dataset_drifted,
                            serving, None, drifted_cols)
        self._pending_alert_changes.extend(self.alerting.on_window(conn, facts, now))
        # the distribution of the predictions, once per closed window, from the profiles' bins
        shares = {} if ref is None else prediction_shares(ref, profile, results)
        self._pending_metrics.append((closed, results, serving, _latency_seconds(rows), shares))
        return closed

    def _window_profile(self, current: pd.DataFrame, rows: pd.DataFrame, ref: Profile) -> Profile:
        """The window's profile on the reference's bins. Rows of a request whose response never
        came count for the features only, and lone responses for the predictions only, so a
        missing partner never shows up as missing values."""
        kinds = {c: kind_of(p) for c, p in ref.columns.items()}
        size = max(self.settings.window.max_records, 1)
        roles = role_rows(rows, list(ref.columns))
        if roles is None:
            return build_profile(current, kinds, reference=ref, sample_size=size)
        columns: dict = {}
        for names, counted in roles:
            columns.update(build_profile(current.loc[counted, names], {c: kinds[c] for c in names}, reference=ref,
                                         sample_size=size).columns)
        return Profile(len(rows), {c: columns[c] for c in ref.columns if c in columns})

    # --- after the transaction -----------------------------------------------------------
    def _after_commit(self, closed: list[ClosedWindow]) -> None:
        counts, self._pending_label_counts = self._pending_label_counts, {}
        for outcome, n in counts.items():
            if n:
                self.metrics.labels_joined.labels(outcome).inc(n)
        perf, self._pending_performance = self._pending_performance, {}
        for (model, version), (start, values) in perf.items():
            if start < self._performance_start.get((model, version), start):
                continue  # labels for an older window: the gauges keep the newest window's numbers
            self._performance_start[(model, version)] = start
            mv = (self.metrics.model_label(model), self.metrics.version_label(version))
            for metric, value in values.items():
                set_or_remove(self.metrics.realized_performance, (*mv, metric),
                               None if value is None or value != value else float(value))
        pending, self._pending_metrics = self._pending_metrics, []
        for w, results, serving, latency, shares in pending:
            self._publish(w, results, serving, latency, shares)
        changes, self._pending_alert_changes = self._pending_alert_changes, []
        self.alerting.after_commit(changes)
        enqueued, self.alerting.enqueued = self.alerting.enqueued, 0
        if self.deliver_in_line and (closed or enqueued or self._outbox_failures):
            self.deliver_outbox()

    def _publish(self, w: ClosedWindow, results: list[dict], serving: dict[str, float | None] | None = None,
                 latency_seconds: np.ndarray | None = None, shares: dict[str, dict] | None = None) -> None:
        """Export a closed window: record count, drift per column and of the dataset and the
        predictions, serving signals (``serving``: :func:`~detectors.serving.serving_signals`,
        None to leave those series alone; ``latency_seconds``: its logged latencies, None when
        not logged), the prediction distribution (``shares``:
        :func:`~inferwatch.metrics.prediction_shares`, None to leave those series alone). Label
        values go through the metrics' cap."""
        m = self.metrics
        mv = (m.model_label(w.key.model), m.version_label(w.key.model_version))
        m.windows_closed.labels(mv[0], w.reason).inc()
        m.window_records.labels(*mv).set(w.record_count)
        m.window_start.labels(*mv).set(w.key.start_ms / 1000)
        set_or_remove(m.dataset_drift_share, mv, w.drift_share)
        set_or_remove(m.dataset_drift_detected, mv, None if w.dataset_drifted is None else float(w.dataset_drifted))
        method_gauges = (m.drift_statistic, m.drift_p_value, m.drift_neg_log10_p, m.drift_detected, m.psi,
                         m.js_distance)
        for r in results:
            name = m.column_label(column_role(r["column_name"])[1])
            set_or_remove(m.missing_share, (*mv, name, r["role"]), r["missing_share"])
            set_or_remove(m.missing_share_drift, (*mv, name, r["role"]),
                           None if r["missing_drifted"] is None else float(r["missing_drifted"]))
            labels = (*mv, name, r["role"], r["method"])
            # a column whose test changed (chi2 -> fisher_exact, ...) drops its old series
            previous = self._published_method.get(labels[:4])
            if previous is not None and previous != r["method"]:
                for gauge in method_gauges:
                    set_or_remove(gauge, (*labels[:4], previous), None)
            self._published_method[labels[:4]] = r["method"]
            for gauge, value in ((m.drift_statistic, r["statistic"]), (m.drift_p_value, r["p_value"]),
                                 (m.drift_neg_log10_p, r["neg_log10_p"]),
                                 (m.drift_detected, None if r["drifted"] is None else float(r["drifted"])),
                                 (m.psi, r["psi"]), (m.js_distance, r["js_distance"])):
                set_or_remove(gauge, labels, value)
        tested = [r["drifted"] for r in results if r["role"] == "prediction" and r["drifted"] is not None]
        set_or_remove(m.prediction_drift_detected, mv, float(any(tested)) if tested else None)
        if serving is not None:
            m.set_window_serving(*mv, serving, _NO_VALUES if latency_seconds is None else latency_seconds)
        if shares is not None:
            m.set_prediction_distribution(*mv, {m.column_label(column_role(c)[1]): s for c, s in shares.items()})

    def deliver_outbox(self) -> int:
        """Send the outbox messages due now (``alerting.outbox.OutboxWorker.run_once``); returns
        how many were delivered now. Failed ones are due again after their backoff, stored
        with them, so a receiver that is down does not stall consumption batch after batch."""
        if self._outbox_worker is None:
            self._outbox_worker = OutboxWorker(self.store, self.settings.outbox_targets(),
                                               self.settings.alerting.outbox,
                                               on_outcome=self.metrics.outbox_outcome)
        counts = self._outbox_worker.run_once()
        pending = self.store.outbox_counts()
        self.metrics.set_outbox_counts(pending)
        self._outbox_failures = pending["pending"]
        return counts["delivered"]


def _rows_per_model(frame: pd.DataFrame, groups: list[tuple[tuple[str, str], np.ndarray | None]]) -> dict[str, int]:
    """Rows per model of a frame, from its :func:`~collector.windows.model_version_groups`
    (rows without a model version are not counted)."""
    out: dict[str, int] = {}
    for (model, _version), idx in groups:
        out[model] = out.get(model, 0) + (len(frame) if idx is None else len(idx))
    return out


_source_of = attrgetter("topic", "partition")  # (topic, partition) of a message


def _join_name(partition: int) -> str:
    return f"requests:{partition}"


def _concat_rows(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if not len(b):
        return a
    if not len(a):
        return b.reset_index(drop=True)
    return pd.concat([a, b], ignore_index=True)


def drift_config(settings: Settings) -> DriftConfig:
    """The detectors' configuration from the ``drift`` settings."""
    d = settings.drift
    return DriftConfig(mode=d.mode, alpha=d.alpha, correction=d.correction, numeric_test=d.numeric_test,
                       categorical_test=d.categorical_test, decision=d.decision,
                       numeric_effect_threshold=d.numeric_effect_threshold,
                       categorical_effect_threshold=d.categorical_effect_threshold,
                       false_alarm_rate=d.false_alarm_rate, test_missing_share=d.test_missing_share,
                       min_count=d.min_count, psi_eps=d.psi_eps)


def _memo(fn: Callable[[str], str]) -> Callable[[str], str]:
    """``fn`` with its results remembered (a label cap looked up once per value and batch)."""
    cache: dict[str, str] = {}

    def get(value: str) -> str:
        out = cache.get(value)
        if out is None:
            out = cache[value] = fn(value)
        return out
    return get


def _float_values(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """A column as float64, NaN where missing or not a number; None when the frame lacks it."""
    if column not in frame.columns:
        return None
    values = frame[column]
    if values.dtype == np.float64:
        return values.to_numpy()
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _latency_seconds(frame: pd.DataFrame) -> np.ndarray | None:
    """The records' ``latency_ms`` in seconds (NaN where unknown); None when not logged."""
    ms = _float_values(frame, "latency_ms")
    return None if ms is None else ms * 1e-3


def window_statistics(profile: Profile, reference: tuple[str, int] | None = None) -> dict:
    """The stored summary of a window: its profile without the raw values kept for the tests
    (counts, missing, moments, the histogram on the reference's edges, the quantile sketch,
    category counts), and under ``"reference"`` which reference its drift results were computed
    against (``{"model_version": key, "created_at_ms": ms}``, ``Store.reference_stamp``) when
    ``reference`` is given, so a later reader can tell whether the reference changed since."""
    # the raw values are left out before encoding: written as lists they would cost more than
    # the rest of the window's close
    light = {}
    for name, col in profile.columns.items():
        if isinstance(col, NumericProfile):
            col = copy.copy(col)
            col.sample, col.sample_keys = _NO_VALUES, _NO_KEYS
        light[name] = col
    d = Profile(profile.n_rows, light).to_dict()
    raw = ("sample", "sample_keys")
    d["columns"] = {c: {k: v for k, v in col.items() if k not in raw} for c, col in d["columns"].items()}
    if reference is not None:
        d["reference"] = {"model_version": reference[0], "created_at_ms": int(reference[1])}
    return d


_NO_VALUES = np.empty(0, dtype=np.float64)
_NO_KEYS = np.empty(0, dtype=np.uint64)


def coerce_to_reference(rows: pd.DataFrame, ref: Profile) -> pd.DataFrame:
    """The window's columns in the reference's kinds: numbers parsed where the reference is
    numeric (unparseable values become missing), missing columns as all-missing."""
    out = {}
    for col, prof in ref.columns.items():
        values = rows[col] if col in rows.columns else pd.Series([None] * len(rows), dtype=object)
        if kind_of(prof) == "numeric":
            # float columns (most) are kept as they are: no parse, no copy
            out[col] = values if values.dtype == np.float64 else pd.to_numeric(values, errors="coerce").astype(
                np.float64)
        else:
            out[col] = values
    return pd.DataFrame(out, index=rows.index, copy=False)  # the columns are read, never written
