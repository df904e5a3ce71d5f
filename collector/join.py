"""Joins by request id: request halves with their response halves, and predictions with the
ground truth that arrives later.

Pure: no I/O and no clock. Time is event time, carried by the rows (``event_time_ms``) or
passed in by the caller (``clock_ms``), so replaying old files behaves exactly like live
traffic.

**Request–response join** (:class:`RequestResponseJoin`). Formats that log a request and its
response as separate messages (KServe CloudEvents, Seldon topics, the Seldon v1 logger) yield
*halves* sharing a request id. Halves join by *model and* request id: Seldon Core v2 passes
one ``x-request-id`` to every model of a pipeline, so one step's request must never join another
step's response (both halves of a call name the same model: the topic's, the inference
service's). The join keeps each half until its partner arrives, in a bounded buffer:

* *Time to live, in event time, on the partner's clock.* The join keeps one clock per side:
  the highest event time among the requests it has seen, and among the responses (or the
  caller's ``clock_ms``, which moves both). A waiting request *expires* once the *responses'*
  clock passes its event time plus ``ttl_ms`` (``clock > event_time_ms + ttl_ms``), and a
  waiting response once the requests' clock does: a half is given up only when the side its
  partner comes from has moved on past it, never because its own side ran ahead. Requests and
  responses often come from different topics read at different paces (Seldon Core v2's
  per-model ``.inputs`` / ``.outputs`` topics, one consumer lagging; replayed per-topic dump
  files, every input read before any output): one clock for both would expire the leading
  side's halves before their partners are even read. Wall-clock time plays no part, so a
  file replayed at full speed joins and expires exactly as the live stream did.
* *A side that stops.* While one side has not been seen at all, or stays behind (a model
  answering nothing but errors, which KServe does not log; a logger in ``request`` mode), the
  other side's halves do not expire; the memory cap below still bounds them (they are then
  *evicted*, oldest first), and ``max_skew_ms``, when set, bounds the wait in event time: a
  side's clock is taken as at least the other side's minus ``max_skew_ms``.
* *Memory cap.* At most ``max_pending`` waiting halves and ``max_bytes`` of them (estimated
  from the frames' memory use, see :func:`row_bytes`); beyond it the oldest halves (lowest
  event time, then arrival order) are *evicted* early.
* *Duplicates.* A request id is remembered for ``remember_ms`` after it finished (joined,
  expired or evicted), at most ``max_finished`` ids. A half whose id is already waiting with
  that half, or finished with that half, is a *duplicate* (dropped, counted).
* *Late halves: each call counted once.* A half whose partner had already expired or been
  evicted is *late*. Its partner's row is already in a window (a ``request_only`` row counted
  in that window's records and used for feature drift), so the late half adds no second row:
  it is counted (``request_late`` / ``response_late``) and returned apart in
  :attr:`JoinResult.late`, where a caller may still read a late response's predictions (e.g.
  for the label join) without counting the call again. Rows emitted therefore always equal
  ``matched`` + ``*_expired`` + ``*_evicted`` + ``*_no_id``, one per call (per request id,
  while it is remembered). A ``ttl_ms`` above the usual response delay keeps late halves rare.
* KServe logs a response only for HTTP 200, so some requests never get one: they expire and
  are still emitted, with their features, for feature drift. A request names no model version
  (V1 bodies carry none; the Open Inference Protocol puts it in the URL, not the body; the
  CloudEvent attributes carry none), so a request given up without a version takes the
  version of its model's responses: the version the responses of the same model and
  ``serving.endpoint`` (KServe's default / canary) last switched to, else of the model's
  responses on any endpoint; ``""`` only while no response of the model has named one. Its
  row then lands in the same model version's windows as the model's joined calls.

Every call returns whole records (:class:`JoinResult`): joined pairs and halves given up,
told apart by the ``join_status`` column (``"matched"``, ``"request_only"``,
``"response_only"``), plus counts by reason. One frame rather than three because the rows go to
the same event-time windows and the column travels with them into the stored window rows; the
window statistics are to read feature columns only from rows whose status is not
``"response_only"`` and prediction columns only from rows whose status is not
``"request_only"``, so a missing partner never shows up as missing values.

**Persistence contract** (exactly-once across restarts). The caller stores, in the one
database transaction that stores a batch's window rows and consumer offsets, the join's state
changes from :meth:`RequestResponseJoin.drain_changes` (:class:`JoinChanges`): rows to insert
(entries added since the last drain), sequence numbers to delete (entries removed since then),
the clock and the next sequence number. On start it loads the stored entries and calls
:meth:`RequestResponseJoin.restore`. The join is deterministic given its inputs (row order,
batch boundaries and ``clock_ms`` values), so a run cut at any batch boundary and restored this
way emits exactly what an uninterrupted run emits; a caller that advances the clock from wall
time (:meth:`RequestResponseJoin.advance` for idle sources) gives that up for those calls.
:meth:`RequestResponseJoin.pending` is the whole state in the same layout (for a snapshot).
One join instance serves one set of co-partitioned sources (its name in the store, e.g. the
partition number), so the state moves with the partitions on a rebalance.

**Label join** (:class:`LabelJoin`). Ground truth (a labels topic, SageMaker ground-truth
lines, Seldon feedback) is joined with the prediction of the same request id when it arrives
within ``delay_ms`` of the prediction (event time). Predictions may wait hours or days, so the
waiting predictions and the labels that came before their prediction live in a
:class:`LabelState`: the database (``inferwatch.store``) in production, :class:`MemoryLabelState`
for tests and small deployments. Matched pairs feed realized performance per window:
:func:`performance_summaries` turns them into mergeable summaries of
:mod:`detectors.performance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from collector.record import FEATURE_PREFIX, META_COLUMNS, PREDICTION_PREFIX, SERVING_PREFIX
from detectors.performance import (
    DEFAULT_AUC_BINS,
    PerformanceSummary,
    classification_summary,
    regression_summary,
)
from detectors.profile import category_label

# --------------------------------------------------------------------------- names

#: Output column telling joined records from halves given up.
JOIN_STATUS = "join_status"
MATCHED, REQUEST_ONLY, RESPONSE_ONLY = "matched", "request_only", "response_only"

#: Columns of the state frame (:meth:`RequestResponseJoin.pending`) besides the record columns.
JOIN_HALF = "join_half"  # "request" | "response" | "finished" | "clock" | "version"
JOIN_SEQ = "join_seq"  # arrival sequence number, unique per entry, int64
JOIN_BYTES = "join_bytes"  # estimated bytes of a waiting half, int64 (0 for finished ids)
JOIN_HALVES = "join_halves"  # finished ids: 1 = request consumed, 2 = response, 3 = both
_JOIN_KEY = "join_key"  # a waiting half's key (see _join_keys), in memory only
REQUEST, RESPONSE, FINISHED = "request", "response", "finished"
CLOCK = "clock"  # a side's clock: request_id = the side ("request" / "response"), event_time_ms = its time
VERSION = "version"  # a model's response version: model, model_version, request_id = the serving endpoint
_MAX_VERSIONS = 10_000  # (model, endpoint) response versions remembered
STATE_COLUMNS = (JOIN_HALF, JOIN_SEQ, JOIN_BYTES, JOIN_HALVES, "request_id", "event_time_ms")

#: Keys of :attr:`JoinResult.counts`, each the number of halves (or pairs) for that reason.
JOIN_COUNTS = (
    "matched",  # pairs joined
    "request_expired", "response_expired",  # time to live passed without a partner
    "request_evicted", "response_evicted",  # given up early for the memory cap
    "request_duplicate", "response_duplicate",  # same half of an id seen before: dropped
    "request_late", "response_late",  # partner already given up: no second row (JoinResult.late)
    "request_no_id", "response_no_id",  # no request id: emitted unmatched at once
    "ids_forgotten_early",  # finished ids dropped for max_finished before remember_ms
)

_ID_BYTES = 64  # per-entry overhead beyond the frame: id hash table slot and bookkeeping
_SIZE_SAMPLE = 256  # rows sampled to estimate a batch's bytes per row


# --------------------------------------------------------------------------- input checks


def _text(values: pd.Series) -> np.ndarray:
    """Object array of the values, missing as None."""
    arr = values.to_numpy(dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = None
    return arr


def _id_column(values: pd.Series) -> pd.Series:
    """Request ids as an object column (missing as None). Explicitly object: pandas would
    otherwise store them as Arrow strings and convert back on every lookup."""
    return pd.Series(_text(values), dtype=object, index=values.index)


#: Separates the model from the request id in the join's keys (no model name holds it).
_KEY_SEP = "\x1f"


def _join_keys(frame: pd.DataFrame) -> np.ndarray:
    """The join keys of a frame's rows (object array): ``len(model) + "\\x1f" + model +
    request_id``.

    Halves join by model *and* request id: Seldon Core v2 pipelines pass one ``x-request-id``
    to every model of the pipeline, so an id alone would join one step's request with another
    step's response. The model's length makes the key unambiguous whatever characters the
    model or the id hold (:func:`_split_keys` reads it back). A missing model or id counts as
    ``""`` (rows without an id never wait)."""
    n = len(frame)
    if n == 0:
        return np.zeros(0, dtype=object)
    if _JOIN_KEY in frame.columns:  # computed once when the half came in
        return frame[_JOIN_KEY].to_numpy(dtype=object)
    models = _text(frame["model"]) if "model" in frame.columns else np.full(n, None, dtype=object)
    rids = frame["request_id"].to_numpy(dtype=object)
    codes, uniq = pd.factorize(models, use_na_sentinel=False)  # a batch holds few models
    prefixes = np.array([_model_prefix(m) for m in uniq], dtype=object)[codes]
    try:  # the usual case: every id is text
        return prefixes + rids
    except TypeError:
        pass
    return np.array([p + ("" if r is None or r is pd.NA or r != r else str(r))
                     for p, r in zip(prefixes, _text(frame["request_id"]))], dtype=object)


def _model_prefix(model: object) -> str:
    text = "" if model is None or model is pd.NA or model != model else str(model)
    return f"{len(text)}{_KEY_SEP}{text}"


def _split_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(models, request ids) of join keys (object arrays), as :func:`_join_keys` built them."""
    models, rids = [], []
    for key in keys:
        length, _sep, rest = key.partition(_KEY_SEP)
        k = int(length)
        models.append(rest[:k])
        rids.append(rest[k:])
    return np.array(models, dtype=object), np.array(rids, dtype=object)


def _keys_of(ids: np.ndarray) -> pd.Index:
    """Request ids as an object Index: lookups against the chunks' object indexes then skip
    pandas' string inference and casting (about 20x faster per lookup)."""
    return pd.Index(ids, dtype=object)


def _blank(values: np.ndarray) -> np.ndarray:
    """True where a text value is missing or empty."""
    return pd.isna(values) | (values == "")


def _event_times(frame: pd.DataFrame, what: str) -> np.ndarray:
    col = frame["event_time_ms"]
    if col.isna().any():
        raise ValueError(f"{what}.event_time_ms has {int(col.isna().sum())} missing values")
    try:
        return col.to_numpy(dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}.event_time_ms must be integer epoch milliseconds: {exc}") from exc


def row_bytes(frame: pd.DataFrame) -> int:
    """Estimated memory of one row of ``frame`` in bytes (>= 1).

    The deep memory use (``DataFrame.memory_usage(deep=True)``: 8 bytes per number, the size
    of each string) of the frame, or of an even sample of about 256 of its rows, divided by
    those rows, plus 64 bytes of per-entry overhead (hash-table slot, bookkeeping). An
    estimate, used for the join's memory cap.
    """
    if len(frame) == 0:
        return _ID_BYTES
    sample = frame if len(frame) <= _SIZE_SAMPLE else frame.iloc[:: -(-len(frame) // _SIZE_SAMPLE)]
    total = int(sample.memory_usage(index=False, deep=True).sum())
    return -(-total // len(sample)) + _ID_BYTES


def _half_frame(frame: pd.DataFrame | None, what: str) -> pd.DataFrame:
    """A validated copy of a batch of halves: request_id as object text, event_time_ms int64,
    model/model_version present, no label or internal columns."""
    if frame is None or len(frame) == 0:
        return pd.DataFrame()
    for col in ("request_id", "event_time_ms"):
        if col not in frame.columns:
            raise ValueError(f"{what} lack the column {col!r}")
    out = frame.drop(columns=[c for c in frame.columns if c == "label" or c.startswith("join_")])
    out = out.reset_index(drop=True)
    out["request_id"] = _id_column(out["request_id"])
    out["event_time_ms"] = _event_times(out, what)
    for col in ("model", "model_version"):
        if col not in out.columns:
            out[col] = ""
    return out


# --------------------------------------------------------------------------- waiting entries


class _Chunk:
    """Entries added together: a frame, its id index and live mask. Never grows; merged."""

    __slots__ = ("frame", "index", "event_ms", "seq", "nbytes", "alive", "n_alive")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame.reset_index(drop=True)
        self.index = pd.Index(_join_keys(self.frame), dtype=object)
        self.event_ms = self.frame["event_time_ms"].to_numpy(dtype=np.int64)
        self.seq = self.frame[JOIN_SEQ].to_numpy(dtype=np.int64)
        self.nbytes = self.frame[JOIN_BYTES].to_numpy(dtype=np.int64)
        self.alive = np.ones(len(self.frame), dtype=bool)
        self.n_alive = len(self.frame)

    def live(self) -> pd.DataFrame:
        return self.frame if self.n_alive == len(self.frame) else self.frame.loc[self.alive]



class _EntrySet:
    """Live entries of one kind, at most one per request id, in chunks of geometrically
    decreasing size (oldest first): a batch costs a hash lookup per chunk (O(log n) chunks)
    and each entry is copied O(log n) times over its life, instead of rebuilding one frame
    and its index per batch."""

    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.n = 0
        self.nbytes = 0

    def add(self, frame: pd.DataFrame) -> None:
        if len(frame):
            chunk = _Chunk(frame)
            self.chunks.append(chunk)
            self.n += chunk.n_alive
            self.nbytes += int(chunk.nbytes.sum())

    def contains(self, ids: pd.Index) -> np.ndarray:
        """Bool mask over ``ids`` (join keys): a live entry has that key."""
        mask = np.zeros(len(ids), dtype=bool)
        for c in self.chunks:
            pos = c.index.get_indexer(ids)
            found = pos >= 0
            found[found] = c.alive[pos[found]]
            mask |= found
        return mask

    def pop(self, ids: pd.Index) -> pd.DataFrame:
        """Remove and return the live entries with these ids, ordered by sequence number."""
        if len(ids) == 0 or not self.n:
            return pd.DataFrame()
        return self._take([(c, _hits(c, ids)) for c in self.chunks], remove=True)

    def pop_older(self, before_ms: int) -> pd.DataFrame:
        """Remove and return the live entries with ``event_time_ms < before_ms``."""
        picks = []
        for c in self.chunks:
            if c.n_alive and c.event_ms.min() < before_ms:
                picks.append((c, np.flatnonzero(c.alive & (c.event_ms < before_ms))))
        return self._take(picks, remove=True)

    def pop_seqs(self, seqs: np.ndarray) -> pd.DataFrame:
        """Remove and return the live entries with these sequence numbers."""
        picks = [(c, np.flatnonzero(c.alive & np.isin(c.seq, seqs))) for c in self.chunks if c.n_alive]
        return self._take(picks, remove=True)

    def keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(event_time_ms, seq, bytes) of the live entries."""
        parts = [(c.event_ms[c.alive], c.seq[c.alive], c.nbytes[c.alive]) for c in self.chunks if c.n_alive]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]

    def frame(self) -> pd.DataFrame:
        """All live entries, ordered by sequence number."""
        return self._take([(c, np.flatnonzero(c.alive)) for c in self.chunks], remove=False)

    def frame_from(self, min_seq: int) -> pd.DataFrame:
        """Live entries with ``seq >= min_seq``, ordered by sequence number."""
        picks = [(c, np.flatnonzero(c.alive & (c.seq >= min_seq))) for c in self.chunks
                 if c.n_alive and c.seq.max() >= min_seq]
        return self._take(picks, remove=False)

    def _take(self, picks: list[tuple[_Chunk, np.ndarray]], remove: bool) -> pd.DataFrame:
        parts = []
        for c, pos in picks:
            if len(pos) == 0:
                continue
            parts.append(c.frame.iloc[pos])
            if remove:
                c.alive[pos] = False
                c.n_alive -= len(pos)
                self.n -= len(pos)
                self.nbytes -= int(c.nbytes[pos].sum())
        if not parts:
            return pd.DataFrame()
        out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        if len(parts) > 1:
            out = out.sort_values(JOIN_SEQ, kind="stable", ignore_index=True)
        return out

    def tidy(self) -> None:
        """Drop empty chunks, rewrite half-dead ones, merge neighbours (see :func:`_merged`)."""
        chunks = [c if 2 * c.n_alive >= len(c.frame) else _Chunk(c.live()) for c in self.chunks if c.n_alive]
        self.chunks = _merged(chunks, lambda a, b: _Chunk(pd.concat([a.live(), b.live()], ignore_index=True)))


@dataclass
class _Ids:
    """Finished join keys (see :func:`_join_keys`) with their time, sequence number and used
    halves (arrays)."""

    ids: np.ndarray
    event_ms: np.ndarray
    seq: np.ndarray
    halves: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    def frame(self) -> pd.DataFrame:
        models, rids = _split_keys(self.ids)
        return pd.DataFrame({JOIN_SEQ: self.seq, JOIN_BYTES: np.zeros(len(self.seq), dtype=np.int64),
                             JOIN_HALVES: self.halves, "request_id": pd.Series(rids, dtype=object),
                             "event_time_ms": self.event_ms, "model": pd.Series(models, dtype=object)})


_NO_IDS = _Ids(np.zeros(0, dtype=object), *(np.zeros(0, dtype=np.int64) for _ in range(3)))


class _IdChunk:
    __slots__ = ("ids", "index", "event_ms", "seq", "halves", "alive", "n_alive")

    def __init__(self, ids: _Ids) -> None:
        self.ids, self.event_ms, self.seq, self.halves = ids.ids, ids.event_ms, ids.seq, ids.halves
        self.index = pd.Index(self.ids, dtype=object)
        self.alive = np.ones(len(self.seq), dtype=bool)
        self.n_alive = len(self.seq)

    def live(self) -> _Ids:
        a = self.alive
        return _Ids(self.ids[a], self.event_ms[a], self.seq[a], self.halves[a])


class _IdSet:
    """Finished ids, at most one live entry per id, in chunks like :class:`_EntrySet` but
    without frames: plain arrays are all a finished id needs."""

    def __init__(self) -> None:
        self.chunks: list[_IdChunk] = []
        self.n = 0

    def add(self, ids: _Ids) -> None:
        if len(ids):
            self.chunks.append(_IdChunk(ids))
            self.n += len(ids)

    def get(self, ids: pd.Index) -> _Ids:
        return self._take([(c, _hits(c, ids)) for c in self.chunks], remove=False)

    def pop(self, ids: pd.Index) -> _Ids:
        return self._take([(c, _hits(c, ids)) for c in self.chunks], remove=True)

    def pop_older(self, before_ms: int) -> _Ids:
        return self._take([(c, np.flatnonzero(c.alive & (c.event_ms < before_ms))) for c in self.chunks
                           if c.n_alive and c.event_ms.min() < before_ms], remove=True)

    def pop_seqs(self, seqs: np.ndarray) -> _Ids:
        return self._take([(c, np.flatnonzero(c.alive & np.isin(c.seq, seqs))) for c in self.chunks], remove=True)

    def keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        live = self._take([(c, np.flatnonzero(c.alive)) for c in self.chunks], remove=False)
        return live.event_ms, live.seq, np.zeros(len(live), dtype=np.int64)

    def frame(self) -> pd.DataFrame:
        return self.frame_from(-1)

    def frame_from(self, min_seq: int) -> pd.DataFrame:
        picks = [(c, np.flatnonzero(c.alive & (c.seq >= min_seq))) for c in self.chunks
                 if c.n_alive and c.seq.max() >= min_seq]
        return self._take(picks, remove=False).frame()

    def _take(self, picks: list[tuple[_IdChunk, np.ndarray]], remove: bool) -> _Ids:
        picks = [(c, pos) for c, pos in picks if len(pos)]
        if not picks:
            return _NO_IDS
        parts = []
        for c, pos in picks:
            parts.append((c.ids[pos], c.event_ms[pos], c.seq[pos], c.halves[pos]))
            if remove:
                c.alive[pos] = False
                c.n_alive -= len(pos)
                self.n -= len(pos)
        ids, event_ms, seq, halves = (np.concatenate(x) for x in zip(*parts))
        order = np.argsort(seq, kind="stable")
        return _Ids(ids[order], event_ms[order], seq[order], halves[order])

    def tidy(self) -> None:
        chunks = [c if 2 * c.n_alive >= len(c.seq) else _IdChunk(c.live()) for c in self.chunks if c.n_alive]
        self.chunks = _merged(chunks, lambda a, b: _IdChunk(_concat_ids(a.live(), b.live())))


def _concat_ids(a: _Ids, b: _Ids) -> _Ids:
    return _Ids(np.concatenate([a.ids, b.ids]), np.concatenate([a.event_ms, b.event_ms]),
                np.concatenate([a.seq, b.seq]), np.concatenate([a.halves, b.halves]))


def _hits(chunk, ids: pd.Index) -> np.ndarray:
    """Positions in ``chunk`` of the live entries whose id is in ``ids`` (ids unique)."""
    pos = chunk.index.get_indexer(ids)
    pos = pos[pos >= 0]
    return pos[chunk.alive[pos]]


def _merged(chunks: list, merge) -> list:
    """Merge neighbours until each chunk holds more than twice the live entries of the next
    newer one: O(log n) chunks, each entry copied O(log n) times over its life."""
    merged = True
    while merged:
        merged = False
        for i in range(len(chunks) - 2, -1, -1):
            if i + 1 < len(chunks) and chunks[i].n_alive <= 2 * chunks[i + 1].n_alive:
                chunks[i:i + 2] = [merge(chunks[i], chunks[i + 1])]
                merged = True
    return chunks


# --------------------------------------------------------------------------- whole records


def _prefer_text(first: pd.Series | None, second: pd.Series | None, n: int) -> pd.Series:
    """``first`` where it has non-empty text, else ``second``, else ``""``; positional."""
    if first is None:
        first, second = second, None
    if first is None:
        return pd.Series([""] * n)
    a = first.reset_index(drop=True)
    blank = (a.isna() | (a == "")).to_numpy(dtype=bool)
    if not blank.any():
        return a
    if second is not None:
        a = a.where(~blank, second.reset_index(drop=True))
        blank = (a.isna() | (a == "")).to_numpy(dtype=bool)
    return a.where(~blank, "")


def _prefer_number(first: pd.Series | None, second: pd.Series | None, n: int) -> np.ndarray:
    """``first`` where it is a number, else ``second``, else NaN (float64); positional."""
    a = pd.to_numeric(first, errors="coerce").to_numpy(np.float64) if first is not None else np.full(n, np.nan)
    if second is None:
        return a
    b = pd.to_numeric(second, errors="coerce").to_numpy(np.float64)
    return np.where(np.isnan(a), b, a)


def _whole(req: pd.DataFrame | None, resp: pd.DataFrame | None, status: str) -> pd.DataFrame:
    """Canonical records from aligned request and response rows (either may be None).

    The request's values win for features.*, serving.* and the model; the response's for
    predictions.*, latency_ms and the model version; each falls back to the other side's value
    where it has none. event_time_ms and the order key (``_order``) are the request's when
    there is one. Built from the request's frame (usually the wide one) with the response's
    few columns added, so the feature columns are not copied."""
    base, other = (req, resp) if req is not None else (resp, None)
    assert base is not None
    n = len(base)
    out = base.reset_index(drop=True)
    drop = [c for c in (JOIN_BYTES, JOIN_HALVES, JOIN_HALF, _JOIN_KEY) if c in out.columns]
    if drop:
        out = out.drop(columns=drop)
    out = out.rename(columns={JOIN_SEQ: "_order"})
    if other is not None:
        o = other.reset_index(drop=True)
        skip = set(META_COLUMNS) | {JOIN_SEQ, JOIN_BYTES, JOIN_HALVES, JOIN_HALF, _JOIN_KEY}
        for name in o.columns:
            if name in skip:
                continue
            if name not in out.columns:
                out[name] = o[name].array
            else:
                # features and serving: the request's value first; predictions: the response's
                a, b = out[name].to_numpy(), o[name].to_numpy()
                if name.startswith(PREDICTION_PREFIX):
                    a, b = b, a
                out[name] = np.where(pd.isna(a), b, a)
    out["model"] = _prefer_text(None if req is None else req.get("model"),
                                None if resp is None else resp.get("model"), n)
    out["model_version"] = _prefer_text(None if resp is None else resp.get("model_version"),
                                        None if req is None else req.get("model_version"), n)
    out["label"] = pd.Series(np.full(n, None, dtype=object), dtype=object)
    out["latency_ms"] = _prefer_number(None if resp is None else resp.get("latency_ms"),
                                       None if req is None else req.get("latency_ms"), n)
    out[JOIN_STATUS] = status
    return out


def _column_order(columns: Sequence[str]) -> list[str]:
    groups: tuple[list[str], ...] = ([], [], [], [])
    for c in columns:
        if c in META_COLUMNS or c in (JOIN_STATUS, "_order"):
            continue
        i = 0 if c.startswith(FEATURE_PREFIX) else 1 if c.startswith(PREDICTION_PREFIX) else \
            2 if c.startswith(SERVING_PREFIX) else 3
        groups[i].append(c)
    return [*META_COLUMNS, *groups[0], *groups[1], *groups[2], *groups[3], JOIN_STATUS]


_NO_RECORDS: list[pd.DataFrame] = []  # the empty records frame, built once (a copy is cheap)


def _records(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        if not _NO_RECORDS:
            _NO_RECORDS.append(pd.DataFrame({**{c: [] for c in META_COLUMNS}, JOIN_STATUS: []}).astype(
                {"event_time_ms": np.int64, "latency_ms": np.float64, "model": object, "model_version": object,
                 "request_id": object, "label": object, JOIN_STATUS: object}))
        return _NO_RECORDS[0].copy()
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    order = np.argsort(out["_order"].to_numpy(), kind="stable")
    cols = _column_order(out.columns)
    if np.any(order != np.arange(len(order))):
        out = out.take(order)
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------- request-response join


@dataclass
class JoinResult:
    """What one call of :class:`RequestResponseJoin` emitted.

    Attributes:
        records: canonical records (:mod:`collector.record` columns: model, model_version,
            event_time_ms, request_id, label (always None here), latency_ms, features.*,
            predictions.*, serving.*) plus ``join_status``: ``"matched"`` (a joined pair),
            ``"request_only"`` (a request whose response never came: expired, evicted or
            without id; prediction columns missing) or ``"response_only"`` (the converse;
            feature columns missing). Rows in arrival order of their request (or response).
            One row per call: a late half is not among them.
        counts: number of pairs or halves per reason, every key of :data:`JOIN_COUNTS`.
        late: halves whose partner had already been given up (counted ``*_late``), in the
            same layout with ``join_status`` ``"request_only"`` / ``"response_only"``. Their
            call already has its row (the partner's), so they are not records to window.
    """

    records: pd.DataFrame
    counts: dict[str, int]
    late: pd.DataFrame = field(default_factory=lambda: _records([]))

    @property
    def joined(self) -> pd.DataFrame:
        """The matched records."""
        return self.records[self.records[JOIN_STATUS] == MATCHED]

    @property
    def unmatched_requests(self) -> pd.DataFrame:
        """Requests given up: use for feature drift, not for prediction statistics."""
        return self.records[self.records[JOIN_STATUS] == REQUEST_ONLY]

    @property
    def unmatched_responses(self) -> pd.DataFrame:
        """Responses given up: use for prediction drift, not for feature statistics."""
        return self.records[self.records[JOIN_STATUS] == RESPONSE_ONLY]


@dataclass(frozen=True)
class JoinChanges:
    """State changes of a :class:`RequestResponseJoin` since the previous drain.

    Apply them in the transaction that stores the batch's window rows and offsets: delete the
    stored entries whose ``join_seq`` is in ``removed``, insert the rows of ``added`` and
    ``added_finished``, store ``clock_ms`` and ``next_seq``. On start, the stored rows of both
    concatenated are the ``entries`` of :meth:`RequestResponseJoin.restore`.

    Attributes:
        added: waiting halves that entered the state since the last drain and are still
            there, with the columns of :meth:`RequestResponseJoin.pending` that halves use
            (row and column order unspecified).
        added_finished: the same for finished ids: :data:`STATE_COLUMNS` and ``model``. Kept
            apart from ``added`` so the few id columns are not widened to every feature column.
        removed: int64 sequence numbers of entries that left the state since the last drain
            and existed at it (so each stored entry is deleted once; entries added and removed
            between two drains appear in neither).
        clock_ms: the join's clock (None before any event time was seen).
        next_seq: the next sequence number the join will give out.
    """

    added: pd.DataFrame
    added_finished: pd.DataFrame
    removed: np.ndarray
    clock_ms: int | None
    next_seq: int


class RequestResponseJoin:
    """Bounded join of request halves with response halves by ``request_id``.

    Semantics are in the module docstring. Per call the batch is processed in this order:
    rows without an id are emitted; duplicates within the batch are dropped (the first row of
    an id wins); halves of recently finished ids are dropped as duplicates or put apart as late;
    halves already waiting make the new copy a duplicate; new halves are matched with waiting
    partners and with each other; the rest waits; the clock advances; halves past their time
    to live expire; the oldest halves are evicted while over the memory cap; finished ids are
    forgotten after ``remember_ms`` or beyond ``max_finished``. Halves are keyed by
    ``(model, request_id)``: both halves of a call must name the same model, and a request id
    may repeat across models (a Seldon pipeline's steps).

    Args:
        ttl_ms: time to live of a waiting half in event time, ms (> 0).
        max_pending: most waiting halves, requests and responses together (>= 1); default
            100,000.
        max_bytes: most estimated bytes of waiting halves (>= 1), see :func:`row_bytes`;
            default 64 MiB (a half with 25 numeric features is about 400 bytes, so the entry
            cap binds first unless rows are wide or carry long text).
        remember_ms: how long a finished id is remembered to recognise duplicates and late
            halves, ms (>= 0), on the slower side's clock; default ``ttl_ms``.
        max_finished: most finished ids remembered (>= 0); default ``max_pending``.
        max_skew_ms: most event time one side's clock may trail the other's for expiry, ms
            (>= 0), so a side that stops sending cannot hold the other's halves past
            ``ttl_ms + max_skew_ms``; default None: no bound but the memory cap (replayed
            per-topic files trail by the whole file).

    Raises:
        ValueError: a parameter out of range.
    """

    def __init__(self, ttl_ms: int, *, max_pending: int = 100_000, max_bytes: int = 64 * 2**20,
                 remember_ms: int | None = None, max_finished: int | None = None,
                 max_skew_ms: int | None = None) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be > 0, got {ttl_ms}")
        if max_pending < 1 or max_bytes < 1:
            raise ValueError(f"max_pending and max_bytes must be >= 1, got {max_pending}, {max_bytes}")
        remember_ms = ttl_ms if remember_ms is None else remember_ms
        max_finished = max_pending if max_finished is None else max_finished
        if remember_ms < 0 or max_finished < 0:
            raise ValueError(f"remember_ms and max_finished must be >= 0, got {remember_ms}, {max_finished}")
        if max_skew_ms is not None and max_skew_ms < 0:
            raise ValueError(f"max_skew_ms must be >= 0, got {max_skew_ms}")
        self.max_skew_ms = None if max_skew_ms is None else int(max_skew_ms)
        self.ttl_ms = int(ttl_ms)
        self.max_pending = int(max_pending)
        self.max_bytes = int(max_bytes)
        self.remember_ms = int(remember_ms)
        self.max_finished = int(max_finished)
        self._reset(None, 0)

    def _reset(self, clock_ms: int | None, next_seq: int) -> None:
        self._sets = {REQUEST: _EntrySet(), RESPONSE: _EntrySet()}
        self._finished = _IdSet()
        self._clock = clock_ms
        # per side: the highest event time seen (or the caller's clock), and the sequence
        # number and value of its row in the caller's stored copy
        self._sides: dict[str, int | None] = {REQUEST: clock_ms, RESPONSE: clock_ms}
        self._side_rows: dict[str, tuple[int, int] | None] = {REQUEST: None, RESPONSE: None}
        # (model, endpoint) -> (version, event time) of the responses, in the order the versions
        # last changed; the sequence numbers of their stored rows; keys changed since the drain
        self._versions: dict[tuple[str, str], tuple[str, int]] = {}
        self._version_rows: dict[tuple[str, str], int] = {}
        self._versions_changed: set[tuple[str, str]] = set()
        self._next_seq = next_seq
        self._known_below = next_seq  # entries with a lower seq are in the caller's stored copy
        self._removed: list[np.ndarray] = []

    # --- inspection ---------------------------------------------------------------------
    @property
    def clock_ms(self) -> int | None:
        """The join's leading event-time clock (highest event time seen, or the caller's), or None."""
        return self._clock

    @property
    def side_clocks_ms(self) -> dict[str, int | None]:
        """``{"request": t, "response": t}``: each side's clock (highest event time seen on
        it, or the caller's), None for a side not seen yet. Requests expire on the responses'
        clock and responses on the requests'."""
        return dict(self._sides)

    @property
    def next_seq(self) -> int:
        """The next sequence number to be given out (>= 0)."""
        return self._next_seq

    @property
    def n_pending(self) -> int:
        """Waiting halves, requests and responses together."""
        return self._sets[REQUEST].n + self._sets[RESPONSE].n

    @property
    def pending_bytes(self) -> int:
        """Estimated bytes of the waiting halves."""
        return self._sets[REQUEST].nbytes + self._sets[RESPONSE].nbytes

    @property
    def oldest_pending_ms(self) -> int | None:
        """Lowest event time among the waiting halves (epoch ms), or None when none waits. A
        watermark must not pass it: the half's record is still to come."""
        times = [c.event_ms[c.alive].min() for kind in (REQUEST, RESPONSE) for c in self._sets[kind].chunks
                 if c.n_alive]
        return int(min(times)) if times else None

    @property
    def n_finished(self) -> int:
        """Finished ids remembered."""
        return self._finished.n

    # --- the join -----------------------------------------------------------------------
    def add(self, requests: pd.DataFrame | None = None, responses: pd.DataFrame | None = None, *,
            clock_ms: int | None = None) -> JoinResult:
        """Join a batch of request halves and response halves.

        Args:
            requests: request halves (``Decoded.requests``): ``request_id``, ``event_time_ms``
                (int64 epoch ms, none missing), ``model``, ``model_version`` (may be empty),
                ``features.*``, optionally ``serving.*``. Row order is arrival order.
            responses: response halves (``Decoded.responses``): ``request_id``,
                ``event_time_ms``, ``model``, ``model_version``, ``predictions.*``,
                ``latency_ms``, optionally ``serving.*``.
            clock_ms: the event-time clock to expire against, epoch ms, for both sides;
                default each side's highest event time seen so far, this batch included
                (requests expire on the responses' clock and responses on the requests'). A
                clock never goes back.

        Returns:
            A :class:`JoinResult`.

        Raises:
            ValueError: a frame lacks ``request_id`` or ``event_time_ms``, or has a missing or
                non-integer event time. The join's state is unchanged then.
        """
        q = _half_frame(requests, "requests")
        s = _half_frame(responses, "responses")
        counts = dict.fromkeys(JOIN_COUNTS, 0)
        out: list[pd.DataFrame] = []
        late: list[pd.DataFrame] = []
        q = self._number(q)
        s = self._number(s)
        self._note_versions(s)
        if clock_ms is not None:
            self._tick(REQUEST, int(clock_ms))
            self._tick(RESPONSE, int(clock_ms))
        else:
            for side, f in ((REQUEST, q), (RESPONSE, s)):
                if len(f):
                    self._tick(side, int(f["event_time_ms"].max()))

        q = self._screen(q, REQUEST, counts, out, late)
        s = self._screen(s, RESPONSE, counts, out, late)
        self._match(q, s, counts, out)
        self._expire(counts, out)
        self._evict(counts, out)
        for entries in (*self._sets.values(), self._finished):
            entries.tidy()
        return JoinResult(_records(out), counts, _records(late))

    def advance(self, clock_ms: int) -> JoinResult:
        """Move the clock to ``clock_ms`` (if later) and expire what is due; no new rows."""
        return self.add(None, None, clock_ms=clock_ms)

    def flush(self) -> JoinResult:
        """Give up every waiting half now (end of input), counted as expired."""
        counts = dict.fromkeys(JOIN_COUNTS, 0)
        out: list[pd.DataFrame] = []
        self._give_up(lambda half, e: e.pop_seqs(e.keys()[1]), "expired", counts, out)
        for entries in (*self._sets.values(), self._finished):
            entries.tidy()
        return JoinResult(_records(out), counts)

    def _number(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Give the rows sequence numbers in arrival order, and their estimated bytes."""
        if len(frame) == 0:
            return frame
        frame[JOIN_SEQ] = np.arange(self._next_seq, self._next_seq + len(frame), dtype=np.int64)
        frame[JOIN_BYTES] = np.full(len(frame), row_bytes(frame), dtype=np.int64)
        frame[_JOIN_KEY] = pd.Series(_join_keys(frame), dtype=object, index=frame.index)  # object: see _id_column
        self._next_seq += len(frame)
        return frame

    def _tick(self, side: str, t: int) -> None:
        self._clock = t if self._clock is None else max(self._clock, t)
        now = self._sides[side]
        self._sides[side] = t if now is None else max(now, t)

    def _side_clock(self, side: str) -> int | None:
        """The clock of ``side`` for expiry: its own, raised to the other side's minus
        ``max_skew_ms`` when that bound is set; None while unknown."""
        t = self._sides[side]
        if self.max_skew_ms is not None and self._clock is not None:
            floor = self._clock - self.max_skew_ms
            t = floor if t is None else max(t, floor)
        return t

    def _screen(self, f: pd.DataFrame, half: str, counts: dict[str, int], out: list[pd.DataFrame],
                late_out: list[pd.DataFrame]) -> pd.DataFrame:
        """Drop or emit the rows that cannot wait: no id (emitted), duplicates (dropped), late
        halves (put apart in ``late_out``)."""
        if len(f) == 0:
            return f
        status = REQUEST_ONLY if half == REQUEST else RESPONSE_ONLY
        bit = 1 if half == REQUEST else 2
        raw = f["request_id"].to_numpy(dtype=object)
        ids = _keys_of(_join_keys(f))
        keep = ~_blank(raw)
        if not keep.all():
            counts[f"{half}_no_id"] += int((~keep).sum())
            out.append(self._emit(f[~keep], half, status))
        dup = ids.duplicated(keep="first") & keep
        counts[f"{half}_duplicate"] += int(dup.sum())
        keep &= ~dup
        # finished ids: the same half again is a duplicate; the other half comes too late
        fin = self._finished.get(ids[keep] if not keep.all() else ids)
        if len(fin):
            pos = _keys_of(fin.ids).get_indexer(ids)
            known = (pos >= 0) & keep
            had = np.where(known, fin.halves[pos], 0)
            dup = known & ((had & bit) != 0)
            late = known & ~dup
            counts[f"{half}_duplicate"] += int(dup.sum())
            if late.any():
                counts[f"{half}_late"] += int(late.sum())
                late_out.append(self._emit(f[late], half, status))
                renewed = self._finished.pop(ids[np.flatnonzero(late)])
                self._note_removed(renewed)
                self._add_finished(renewed.ids, renewed.event_ms, renewed.halves | bit)
            keep &= ~known
        # the same half already waiting: the new copy is the duplicate
        waiting = self._sets[half].contains(ids) & keep
        counts[f"{half}_duplicate"] += int(waiting.sum())
        keep &= ~waiting
        return f if keep.all() else f[keep]

    def _match(self, q: pd.DataFrame, s: pd.DataFrame, counts: dict[str, int], out: list[pd.DataFrame]) -> None:
        q_ids = _keys_of(_join_keys(q))
        s_ids = _keys_of(_join_keys(s))
        old_s = self._sets[RESPONSE].pop(q_ids)  # waiting responses of the new requests
        old_q = self._sets[REQUEST].pop(s_ids)  # waiting requests of the new responses
        self._note_removed(old_s)
        self._note_removed(old_q)
        reqs, resps = [], []
        if len(old_s):
            hit = _keys_of(_join_keys(old_s)).get_indexer(q_ids) >= 0
            reqs.append(q[hit])
            resps.append(_aligned(old_s, q[hit]))
            q = q[~hit]
        if len(old_q):
            hit = _keys_of(_join_keys(old_q)).get_indexer(s_ids) >= 0
            reqs.append(old_q)
            resps.append(_aligned(s[hit], old_q))
            s = s[~hit]
        if len(q) and len(s):
            pos = _keys_of(_join_keys(s)).get_indexer(_keys_of(_join_keys(q)))
            hit = pos >= 0
            reqs.append(q[hit])
            resps.append(s.iloc[pos[hit]])
            s = s.drop(index=s.index[pos[hit]])
            q = q[~hit]
        reqs = [r for r in reqs if len(r)]
        if reqs:
            req = pd.concat(reqs, ignore_index=True)
            resp = pd.concat([r for r in resps if len(r)], ignore_index=True)
            counts["matched"] += len(req)
            out.append(_whole(req, resp, MATCHED))
            self._finish(_join_keys(req), 3)
        self._sets[REQUEST].add(q)
        self._sets[RESPONSE].add(s)

    def _expire(self, counts: dict[str, int], out: list[pd.DataFrame]) -> None:
        # a half expires on the clock of the side its partner comes from
        partner = {REQUEST: self._side_clock(RESPONSE), RESPONSE: self._side_clock(REQUEST)}

        def take(half: str, entries: _EntrySet) -> pd.DataFrame:
            t = partner[half]
            return pd.DataFrame() if t is None else entries.pop_older(t - self.ttl_ms)

        self._give_up(take, "expired", counts, out)
        # a finished id is remembered until both sides have moved on (its other half, or a
        # copy, may still come from the slower one)
        if partner[REQUEST] is not None and partner[RESPONSE] is not None:
            slower = min(partner[REQUEST], partner[RESPONSE])
            self._note_removed(self._finished.pop_older(slower - self.remember_ms))

    def _evict(self, counts: dict[str, int], out: list[pd.DataFrame]) -> None:
        n_over = self.n_pending - self.max_pending
        b_over = self.pending_bytes - self.max_bytes
        if n_over > 0 or b_over > 0:
            keys = [self._sets[h].keys() for h in (REQUEST, RESPONSE)]
            event_ms, seq, nbytes = (np.concatenate([k[i] for k in keys]) for i in range(3))
            order = np.lexsort((seq, event_ms))
            freed = np.cumsum(nbytes[order])
            k = max(n_over, 0)
            if b_over > 0:
                k = max(k, int(np.searchsorted(freed, b_over, side="left")) + 1)
            victims = seq[order[:k]]
            self._give_up(lambda half, e: e.pop_seqs(victims), "evicted", counts, out)
        fin = self._finished
        over = fin.n - self.max_finished
        if over > 0:
            event_ms, seq, _ = fin.keys()
            victims = seq[np.lexsort((seq, event_ms))[:over]]
            self._note_removed(fin.pop_seqs(victims))
            counts["ids_forgotten_early"] += over

    def _give_up(self, take, reason: str, counts: dict[str, int], out: list[pd.DataFrame]) -> None:
        """Emit the waiting halves ``take(half, entry_set)`` returns, unmatched, and remember their ids."""
        for half, status, bit in ((REQUEST, REQUEST_ONLY, 1), (RESPONSE, RESPONSE_ONLY, 2)):
            gone = take(half, self._sets[half])
            if len(gone):
                self._note_removed(gone)
                counts[f"{half}_{reason}"] += len(gone)
                out.append(self._emit(gone, half, status))
                self._finish(_join_keys(gone), bit)

    def _emit(self, rows: pd.DataFrame, half: str, status: str) -> pd.DataFrame:
        if half == RESPONSE:
            return _whole(None, rows, status)
        out = _whole(rows, None, status)
        if self._versions:
            version = out["model_version"].to_numpy(dtype=object)
            blank = np.flatnonzero(_blank(version))
            if len(blank):
                ends = out["serving.endpoint"].to_numpy(dtype=object) if "serving.endpoint" in out.columns \
                    else np.full(len(out), "", dtype=object)
                models = out["model"].to_numpy(dtype=object)
                by_model = {m: v for (m, _e), (v, _t) in self._versions.items()}  # the latest change wins
                version = version.copy()
                for i in blank:
                    e = ends[i] if isinstance(ends[i], str) else ""
                    found = self._versions.get((models[i], e))
                    version[i] = found[0] if found is not None else by_model.get(models[i], "")
                out["model_version"] = version
        return out

    def _note_versions(self, s: pd.DataFrame) -> None:
        """Remember the version each (model, endpoint) answers with (its last response naming
        one, in arrival order), for requests given up without a version."""
        if len(s) == 0:
            return
        v = s["model_version"]
        named = (v.notna() & (v != "")).to_numpy(dtype=bool)
        if not named.any():
            return
        cols = ["model", "model_version", "event_time_ms"]
        if "serving.endpoint" in s.columns:
            cols.append("serving.endpoint")
        sub = s.loc[named, cols]
        if sub["model"].nunique(dropna=False) == 1 and (
                len(cols) == 3 or sub["serving.endpoint"].nunique(dropna=False) == 1):
            # the usual batch: one model and endpoint, its last response counts
            row = sub.iloc[-1]
            e = row["serving.endpoint"] if len(cols) == 4 else None
            found = [(row["model"], e if isinstance(e, str) else "", row["model_version"], row["event_time_ms"])]
        else:
            last = pd.DataFrame({"m": _text(sub["model"]), "v": _text(sub["model_version"]),
                                 "t": sub["event_time_ms"].to_numpy(np.int64),
                                 "e": _text(sub["serving.endpoint"]) if len(cols) == 4 else None})
            last["e"] = last["e"].where(last["e"].notna(), "")
            found = list(last[["m", "e", "v", "t"]].drop_duplicates(["m", "e"], keep="last").itertuples(index=False))
        for m, e, v, t in found:
            key = (m if isinstance(m, str) else "", e)
            old = self._versions.get(key)
            if old is None or old[0] != v:
                self._versions.pop(key, None)  # re-inserted last: the latest change
                self._versions[key] = (v, int(t))
                self._versions_changed.add(key)
        while len(self._versions) > _MAX_VERSIONS:
            key = next(iter(self._versions))
            del self._versions[key]
            self._versions_changed.add(key)

    def _finish(self, ids: np.ndarray, halves: int) -> None:
        assert self._clock is not None
        n = len(ids)
        self._add_finished(ids, np.full(n, self._clock, dtype=np.int64), np.full(n, halves, dtype=np.int64))

    def _add_finished(self, ids: np.ndarray, event_ms: np.ndarray, halves: np.ndarray) -> None:
        seq = np.arange(self._next_seq, self._next_seq + len(ids), dtype=np.int64)
        self._next_seq += len(ids)
        self._finished.add(_Ids(np.asarray(ids, dtype=object), event_ms, seq, halves))

    def _note_removed(self, rows: pd.DataFrame | _Ids) -> None:
        if len(rows):
            seq = rows.seq if isinstance(rows, _Ids) else rows[JOIN_SEQ].to_numpy(dtype=np.int64)
            seq = seq[seq < self._known_below]
            if len(seq):
                self._removed.append(seq)

    # --- persistence --------------------------------------------------------------------
    def pending(self) -> pd.DataFrame:
        """The whole state as one frame, ordered by ``join_seq``.

        One row per waiting request (``join_half == "request"``), waiting response
        (``"response"``), remembered finished (model, request id) (``"finished"``) and side
        clock (``"clock"``: ``request_id`` names the side, ``event_time_ms`` is its clock, see
        :attr:`side_clocks_ms`; ``join_seq`` negative until drained once). Columns:
        :data:`STATE_COLUMNS` (``join_seq`` and ``join_bytes`` int64; ``join_halves`` int64,
        0 except for finished ids; ``event_time_ms`` the half's event time, or for a finished
        id the clock when it finished), then the halves' record columns (model,
        model_version, latency_ms, features.*, predictions.*, serving.*; missing where a
        half has no such column). Save it with :meth:`clock_ms` and :meth:`next_seq`.
        """
        out = self._state_frame(lambda e: e.frame())
        rows = [(row[0] if row is not None and row[1] == self._sides[side] else -1 - i, side, self._sides[side])
                for i, (side, row) in enumerate(self._side_rows.items()) if self._sides[side] is not None]
        versions = [(self._version_rows.get(k, -3) if k not in self._versions_changed else -3, k, *v)
                    for k, v in self._versions.items()]
        if rows or versions:
            out = pd.concat([out, _meta_rows(rows, versions)], ignore_index=True)
        out = out.sort_values(JOIN_SEQ, kind="stable", ignore_index=True)
        return out[[*STATE_COLUMNS, *(c for c in out.columns if c not in STATE_COLUMNS)]]

    def _state_frame(self, take, halves: tuple[str, ...] = (REQUEST, RESPONSE, FINISHED)) -> pd.DataFrame:
        parts = []
        for half in halves:
            f = take(self._sets[half] if half != FINISHED else self._finished)
            if _JOIN_KEY in f.columns:
                f = f.drop(columns=_JOIN_KEY)
            if len(f):
                f[JOIN_HALF] = half
                if JOIN_HALVES not in f.columns:
                    f[JOIN_HALVES] = np.zeros(len(f), dtype=np.int64)
                parts.append(f)
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype=np.int64 if c not in (JOIN_HALF, "request_id") else object)
                                 for c in STATE_COLUMNS})
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]

    def drain_changes(self) -> JoinChanges:
        """The state changes since the previous drain (or the restore); see :class:`JoinChanges`.

        Memory for changes not yet drained stays bounded without draining: ``added`` is read
        from the live entries, and ``removed`` holds at most the entries that existed at the
        previous drain."""
        added = self._state_frame(lambda e: e.frame_from(self._known_below), (REQUEST, RESPONSE))
        finished = self._state_frame(lambda e: e.frame_from(self._known_below), (FINISHED,))
        clocks = []
        for side, row in self._side_rows.items():
            t = self._sides[side]
            if t is not None and (row is None or row[1] != t):  # a side clock moved: its row replaced
                if row is not None and row[0] >= 0:
                    self._removed.append(np.array([row[0]], dtype=np.int64))
                self._side_rows[side] = (self._next_seq, t)
                clocks.append((self._next_seq, side, t))
                self._next_seq += 1
        versions = []
        for key in [k for k in self._versions if k in self._versions_changed] + \
                [k for k in self._versions_changed if k not in self._versions]:
            old = self._version_rows.pop(key, None)
            if old is not None and old >= 0:
                self._removed.append(np.array([old], dtype=np.int64))
            if key in self._versions:  # still remembered: its new row
                self._version_rows[key] = self._next_seq
                versions.append((self._next_seq, key, *self._versions[key]))
                self._next_seq += 1
        self._versions_changed = set()
        if clocks or versions:
            finished = pd.concat([f for f in (finished, _meta_rows(clocks, versions)) if len(f)], ignore_index=True)
        removed = np.sort(np.concatenate(self._removed)) if self._removed else np.zeros(0, dtype=np.int64)
        self._known_below = self._next_seq
        self._removed = []
        return JoinChanges(added=added, added_finished=finished, removed=removed, clock_ms=self._clock,
                           next_seq=self._next_seq)

    def restore(self, entries: pd.DataFrame, *, clock_ms: int | None, next_seq: int) -> None:
        """Replace the state with a saved one (:meth:`pending` or the stored changes applied).

        Columns missing in every entry of a half are not kept for that half (a column stored
        for another half only). Changes are drained from here on: the restored entries count
        as stored.

        Args:
            entries: frame in the layout of :meth:`pending`; row order does not matter.
            clock_ms: the saved :attr:`clock_ms`.
            next_seq: the saved :attr:`next_seq`, greater than every ``join_seq``.

        Raises:
            ValueError: a column of :data:`STATE_COLUMNS` is missing, an unknown ``join_half``,
                a request id twice in one half, or ``next_seq`` not above every ``join_seq``.
        """
        missing = [c for c in STATE_COLUMNS if c not in entries.columns]
        if missing:
            raise ValueError(f"join state lacks the columns {missing}")
        unknown = set(entries[JOIN_HALF].unique()) - {REQUEST, RESPONSE, FINISHED, CLOCK, VERSION}
        if unknown:
            raise ValueError(f"join state has unknown join_half values {sorted(map(str, unknown))}")
        seq = entries[JOIN_SEQ].to_numpy(dtype=np.int64)
        if len(seq) and int(seq.max()) >= next_seq:
            raise ValueError(f"next_seq {next_seq} is not above the highest join_seq {int(seq.max())}")
        sets = {}
        for half in (REQUEST, RESPONSE, FINISHED):
            f = entries[entries[JOIN_HALF] == half].drop(columns=JOIN_HALF)
            f = f.sort_values(JOIN_SEQ, kind="stable", ignore_index=True)
            if "model" not in f.columns:  # finished ids stored before the join was keyed by model
                f["model"] = ""
            if pd.Series(_join_keys(f)).duplicated().any():
                raise ValueError(f"join state has a model and request id twice among the {half} entries")
            keep = [c for c in f.columns if c in STATE_COLUMNS or f[c].notna().any()]
            if half != FINISHED:
                keep = [c for c in keep if c != JOIN_HALVES]
            f = f[keep].copy()
            f["request_id"] = _id_column(f["request_id"])
            if half != FINISHED:
                f[_JOIN_KEY] = pd.Series(_join_keys(f), dtype=object, index=f.index)
            for col in (JOIN_SEQ, JOIN_BYTES, "event_time_ms") + ((JOIN_HALVES,) if half == FINISHED else ()):
                f[col] = f[col].to_numpy(dtype=np.int64)
            sets[half] = f
        self._reset(None if clock_ms is None else int(clock_ms), int(next_seq))
        # side clocks (a state stored without them: both sides at the join's clock); a side
        # stored twice keeps its later clock
        c = entries[entries[JOIN_HALF] == CLOCK]
        if len(c):
            self._sides = {REQUEST: None, RESPONSE: None}  # a side without a row was not seen yet
        for seq_i, side, t in sorted(zip(c[JOIN_SEQ].to_numpy(np.int64), c["request_id"], c["event_time_ms"]),
                                     key=lambda r: r[2]):
            if side in (REQUEST, RESPONSE):
                self._sides[side] = int(t)
                self._side_rows[side] = (int(seq_i), int(t))
        v = entries[entries[JOIN_HALF] == VERSION]
        if len(v):  # in the order they changed (placeholder sequence numbers of a snapshot last)
            v = v.assign(_o=np.where(v[JOIN_SEQ] < 0, np.iinfo(np.int64).max, v[JOIN_SEQ]))
            v = v.sort_values("_o", kind="stable")
            for seq_i, m, e, ver, t in zip(v[JOIN_SEQ].to_numpy(np.int64), v["model"], v["request_id"],
                                           v["model_version"], v["event_time_ms"].to_numpy(np.int64)):
                key = (str(m), "" if pd.isna(e) else str(e))
                self._versions.pop(key, None)
                self._versions[key] = (str(ver), int(t))
                self._version_rows[key] = int(seq_i)
        for half, f in sets.items():
            if half == FINISHED:
                self._finished.add(_Ids(_join_keys(f), f["event_time_ms"].to_numpy(np.int64),
                                        f[JOIN_SEQ].to_numpy(np.int64), f[JOIN_HALVES].to_numpy(np.int64)))
            else:
                self._sets[half].add(f)


def _meta_rows(clocks: list[tuple[int, str, int]],
               versions: list[tuple[int, tuple[str, str], str, int]]) -> pd.DataFrame:
    """State rows of side clocks, from ``(join_seq, side, clock)``, and of response versions,
    from ``(join_seq, (model, endpoint), version, event time)``."""
    rows = [(CLOCK, seq, side, t, "", None) for seq, side, t in clocks] + \
        [(VERSION, seq, key[1], t, key[0], v) for seq, key, v, t in versions]
    n = len(rows)
    half, seq, rid, t, model, version = zip(*rows)
    return pd.DataFrame({JOIN_HALF: pd.Series(half, dtype=object), JOIN_SEQ: np.array(seq, dtype=np.int64),
                         JOIN_BYTES: np.zeros(n, dtype=np.int64), JOIN_HALVES: np.zeros(n, dtype=np.int64),
                         "request_id": pd.Series(rid, dtype=object), "event_time_ms": np.array(t, dtype=np.int64),
                         "model": pd.Series(model, dtype=object), "model_version": pd.Series(version, dtype=object)})


def _aligned(frame: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` in the join-key order of ``like`` (every key present, keys unique)."""
    pos = _keys_of(_join_keys(frame)).get_indexer(_keys_of(_join_keys(like)))
    return frame.iloc[pos].reset_index(drop=True)


# --------------------------------------------------------------------------- label join

#: Keys of :attr:`LabelJoinResult.counts`.
LABEL_COUNTS = (
    "matched",  # predictions joined with their label
    "label_in_record",  # records that carried their label already
    "prediction_unlabelled",  # predictions whose label did not come within the delay
    "prediction_no_id",  # predictions without request id (never labellable)
    "prediction_duplicate",  # a prediction of the same model and id is waiting or came first
    "label_unmatched",  # labels whose prediction did not come within label_wait_ms
    "label_too_late",  # labels more than delay_ms after their prediction
    "label_duplicate",  # a label of the same model and id is waiting or came first
    "label_invalid",  # labels without request id or value
)

#: Columns of a waiting prediction (plus its ``predictions.*`` columns).
WAITING_PREDICTION_COLUMNS = ("model", "model_version", "event_time_ms", "request_id")
#: Columns of a waiting label; ``model`` is ``""`` when the label names none.
WAITING_LABEL_COLUMNS = ("model", "request_id", "label", "event_time_ms")
#: Columns of the pairs a label join emits (plus ``predictions.*``).
PAIR_COLUMNS = ("model", "model_version", "event_time_ms", "request_id", "label")


@dataclass(frozen=True)
class LabelChanges:
    """What a label join step changes in its :class:`LabelState`.

    Apply in this order, in one transaction with the batch's offsets: delete, insert, set the
    clock, then purge predictions with ``event_time_ms < purge_predictions_before_ms`` and
    labels with ``event_time_ms < purge_labels_before_ms`` (no purge when None).

    Attributes:
        insert_predictions: :data:`WAITING_PREDICTION_COLUMNS` + ``predictions.*``.
        delete_predictions: keys ``model``, ``request_id`` of waiting predictions now labelled.
        insert_labels: :data:`WAITING_LABEL_COLUMNS`.
        delete_labels: keys ``model``, ``request_id`` of waiting labels now used.
        clock_ms: the label join's clock after this step (None before any event time).
    """

    insert_predictions: pd.DataFrame
    delete_predictions: pd.DataFrame
    insert_labels: pd.DataFrame
    delete_labels: pd.DataFrame
    clock_ms: int | None
    purge_predictions_before_ms: int | None
    purge_labels_before_ms: int | None


class LabelState(Protocol):
    """Where a label join keeps predictions awaiting labels and labels awaiting predictions.

    Implemented by :class:`MemoryLabelState` and by the database (``inferwatch.store``).
    """

    @property
    def clock_ms(self) -> int | None:
        """The stored clock, or None."""

    def find(self, request_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(waiting predictions, waiting labels) whose request id is in ``request_ids``."""

    def apply(self, changes: LabelChanges) -> tuple[pd.DataFrame, int]:
        """Apply ``changes``; return the purged predictions and the number of purged labels."""


class MemoryLabelState:
    """A :class:`LabelState` in memory (tests, small deployments), bounded.

    Args:
        max_entries: most waiting predictions plus labels (>= 1); beyond it the oldest
            predictions are purged early (returned as purged, so counted unlabelled), then the
            oldest labels.

    Raises:
        ValueError: ``max_entries < 1``.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = max_entries
        self.predictions = pd.DataFrame({c: pd.Series(dtype=object) for c in WAITING_PREDICTION_COLUMNS})
        self.labels = pd.DataFrame({c: pd.Series(dtype=object) for c in WAITING_LABEL_COLUMNS})
        self._clock: int | None = None

    @property
    def clock_ms(self) -> int | None:
        """The clock set by the last :meth:`apply`."""
        return self._clock

    def find(self, request_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Waiting predictions and labels with these request ids."""
        p = self.predictions[self.predictions["request_id"].isin(request_ids)].reset_index(drop=True)
        lab = self.labels[self.labels["request_id"].isin(request_ids)].reset_index(drop=True)
        return p, lab

    def apply(self, changes: LabelChanges) -> tuple[pd.DataFrame, int]:
        """Apply ``changes`` (see :class:`LabelChanges`); return purged predictions and label count."""
        self.predictions = _concat([_without(self.predictions, changes.delete_predictions),
                                    changes.insert_predictions]) if len(self.predictions) or len(
            changes.insert_predictions) else self.predictions
        self.labels = _concat([_without(self.labels, changes.delete_labels), changes.insert_labels]) \
            if len(self.labels) or len(changes.insert_labels) else self.labels
        if len(self.predictions) == 0:
            self.predictions = pd.DataFrame({c: pd.Series(dtype=object) for c in WAITING_PREDICTION_COLUMNS})
        if len(self.labels) == 0:
            self.labels = pd.DataFrame({c: pd.Series(dtype=object) for c in WAITING_LABEL_COLUMNS})
        self._clock = changes.clock_ms
        purged, n_labels = [], 0
        if changes.purge_predictions_before_ms is not None:
            old = self.predictions["event_time_ms"].to_numpy(np.int64) < changes.purge_predictions_before_ms
            purged.append(self.predictions[old])
            self.predictions = self.predictions[~old]
        if changes.purge_labels_before_ms is not None:
            old = self.labels["event_time_ms"].to_numpy(np.int64) < changes.purge_labels_before_ms
            n_labels += int(old.sum())
            self.labels = self.labels[~old]
        over = len(self.predictions) + len(self.labels) - self.max_entries
        if over > 0:
            order = np.argsort(self.predictions["event_time_ms"].to_numpy(np.int64), kind="stable")
            cut = order[:over]
            purged.append(self.predictions.iloc[cut])
            self.predictions = self.predictions.drop(index=self.predictions.index[cut])
            over -= len(cut)
        if over > 0:
            order = np.argsort(self.labels["event_time_ms"].to_numpy(np.int64), kind="stable")
            n_labels += over
            self.labels = self.labels.drop(index=self.labels.index[order[:over]])
        self.predictions = self.predictions.reset_index(drop=True)
        self.labels = self.labels.reset_index(drop=True)
        return _concat(purged), n_labels


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _without(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose (model, request_id) is not in ``keys``."""
    if len(keys) == 0 or len(frame) == 0:
        return frame
    drop = pd.MultiIndex.from_frame(frame[["model", "request_id"]].astype(object)).isin(
        pd.MultiIndex.from_frame(keys[["model", "request_id"]].astype(object)))
    return frame[~drop]


@dataclass
class LabelJoinResult:
    """What one :meth:`LabelJoin.process` call emitted.

    Attributes:
        pairs: labelled predictions, :data:`PAIR_COLUMNS` + ``predictions.*``
            (``event_time_ms`` is the prediction's), ordered by event time, model, request id.
        unlabelled: predictions that will never get a label (waited past the delay, or no
            request id), same columns with ``label`` None; they count towards the rows of
            their window's performance summary.
        counts: every key of :data:`LABEL_COUNTS`.
    """

    pairs: pd.DataFrame
    unlabelled: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


class LabelJoin:
    """Join of ground-truth labels with predictions by request id, within a delay.

    A label joins the prediction of its request id (and model, when the label names one; a
    label naming no model joins the predictions of every model with that id that are waiting
    when it comes, or the first batch of them after) if it came no more than ``delay_ms`` after
    the prediction in event time. A prediction waits until the clock passes its event time
    plus ``delay_ms``; a label waits for its prediction until the clock passes its event time
    plus ``label_wait_ms``. The clock is the highest event time seen (predictions and labels),
    or the caller's ``clock_ms``; it is kept in the state.

    Args:
        delay_ms: longest time from a prediction to its label, ms (> 0).
        label_wait_ms: how long a label waits for its prediction, ms (>= 0); default
            ``delay_ms``.
        prediction_columns: the ``predictions.*`` columns to keep while waiting (those
            performance needs); default all.

    Raises:
        ValueError: a parameter out of range, or a prediction column without the prefix.
    """

    def __init__(self, delay_ms: int, *, label_wait_ms: int | None = None,
                 prediction_columns: Sequence[str] | None = None) -> None:
        if delay_ms <= 0:
            raise ValueError(f"delay_ms must be > 0, got {delay_ms}")
        label_wait_ms = delay_ms if label_wait_ms is None else label_wait_ms
        if label_wait_ms < 0:
            raise ValueError(f"label_wait_ms must be >= 0, got {label_wait_ms}")
        if prediction_columns is not None:
            bad = [c for c in prediction_columns if not c.startswith(PREDICTION_PREFIX)]
            if bad:
                raise ValueError(f"prediction_columns must start with {PREDICTION_PREFIX!r}: {bad}")
        self.delay_ms = int(delay_ms)
        self.label_wait_ms = int(label_wait_ms)
        self.prediction_columns = None if prediction_columns is None else tuple(prediction_columns)

    def _predictions(self, frame: pd.DataFrame | None) -> pd.DataFrame:
        if frame is None or len(frame) == 0:
            return pd.DataFrame()
        for col in ("request_id", "event_time_ms", "model"):
            if col not in frame.columns:
                raise ValueError(f"predictions lack the column {col!r}")
        cols = [c for c in frame.columns if c.startswith(PREDICTION_PREFIX)] if self.prediction_columns is None \
            else list(self.prediction_columns)
        out = pd.DataFrame({
            "model": _prefer_text(frame["model"], None, len(frame)),
            "model_version": _prefer_text(frame.get("model_version"), None, len(frame)),
            "event_time_ms": _event_times(frame, "predictions"),
            "request_id": _text(frame["request_id"]),
            "label": _labels(frame["label"]) if "label" in frame.columns else np.full(len(frame), None, object),
        })
        for c in cols:
            out[c] = frame[c].to_numpy() if c in frame.columns else np.full(len(frame), np.nan)
        return out

    @staticmethod
    def _label_rows(frame: pd.DataFrame | None) -> pd.DataFrame:
        if frame is None or len(frame) == 0:
            return pd.DataFrame()
        for col in ("request_id", "label", "event_time_ms"):
            if col not in frame.columns:
                raise ValueError(f"labels lack the column {col!r}")
        return pd.DataFrame({
            "model": _prefer_text(frame.get("model"), None, len(frame)),
            "request_id": _text(frame["request_id"]),
            "label": _labels(frame["label"]),
            "event_time_ms": _event_times(frame, "labels"),
        })

    def process(self, state: LabelState, predictions: pd.DataFrame | None = None,
                labels: pd.DataFrame | None = None, *, clock_ms: int | None = None) -> LabelJoinResult:
        """Join a batch of predictions and labels with each other and with the waiting ones.

        Args:
            state: where waiting predictions and labels live; changed by this call.
            predictions: records or joined rows with ``model``, ``model_version``,
                ``event_time_ms``, ``request_id``, ``predictions.*`` and optionally ``label``
                (a record that carries its label is a pair at once).
            labels: label rows (``Decoded.labels``): ``request_id``, ``label``,
                ``event_time_ms``, optionally ``model``.
            clock_ms: the clock to purge against; default the highest event time seen.

        Returns:
            A :class:`LabelJoinResult`.

        Raises:
            ValueError: a frame lacks a required column or has a missing event time.
        """
        counts = dict.fromkeys(LABEL_COUNTS, 0)
        p = self._predictions(predictions)
        lab = self._label_rows(labels)
        pairs: list[pd.DataFrame] = []
        unlabelled: list[pd.DataFrame] = []

        clock = state.clock_ms
        times = [int(f["event_time_ms"].max()) for f in (p, lab) if len(f)]
        new_clock = clock_ms if clock_ms is not None else (max(times) if times else None)
        if new_clock is not None:
            clock = int(new_clock) if clock is None else max(clock, int(new_clock))

        if len(p):
            carried = p["label"].notna().to_numpy()
            counts["label_in_record"] = int(carried.sum())
            pairs.append(p[carried])
            p = p[~carried]
            no_id = _blank(p["request_id"].to_numpy(object))
            counts["prediction_no_id"] = int(no_id.sum())
            unlabelled.append(p[no_id])
            p = p[~no_id]
            dup = p.duplicated(["model", "request_id"], keep="first").to_numpy()
            counts["prediction_duplicate"] += int(dup.sum())
            p = p[~dup].drop(columns="label").reset_index(drop=True)
        if len(lab):
            bad = _blank(lab["request_id"].to_numpy(object)) | lab["label"].isna().to_numpy()
            counts["label_invalid"] = int(bad.sum())
            lab = lab[~bad]
            dup = lab.duplicated(["model", "request_id"], keep="first").to_numpy()
            counts["label_duplicate"] += int(dup.sum())
            lab = lab[~dup].reset_index(drop=True)

        ids = pd.unique(np.concatenate([f["request_id"].to_numpy(object) for f in (p, lab) if len(f)]
                                       or [np.zeros(0, dtype=object)]))
        old_p, old_l = state.find(ids) if len(ids) else (pd.DataFrame(), pd.DataFrame())
        if len(p) and len(old_p):
            dup = _keys_in(p, old_p)
            counts["prediction_duplicate"] += int(dup.sum())
            p = p[~dup].reset_index(drop=True)
        if len(lab) and len(old_l):
            dup = _keys_in(lab, old_l)
            counts["label_duplicate"] += int(dup.sum())
            lab = lab[~dup].reset_index(drop=True)

        preds = _concat([_with_source(old_p, True), _with_source(p, False)])
        labs = _concat([_with_source(old_l, True), _with_source(lab, False)])
        pid, lid, tried = self._pair(preds, labs)
        if len(pid):
            matched = preds.iloc[pid].reset_index(drop=True)
            matched["label"] = labs["label"].to_numpy(object)[lid]
            counts["matched"] = len(pid)
            pairs.append(matched)
        p_used = np.zeros(len(preds), dtype=bool)
        p_used[pid] = True
        l_used = np.zeros(len(labs), dtype=bool)
        l_used[lid] = True
        p_stored = preds["_stored"].to_numpy(bool) if len(preds) else np.zeros(0, bool)
        l_stored = labs["_stored"].to_numpy(bool) if len(labs) else np.zeros(0, bool)
        too_late = tried & ~l_used & ~l_stored
        counts["label_too_late"] = int(too_late.sum())

        new_p = preds[~p_stored & ~p_used] if len(preds) else preds
        new_l = labs[~l_stored & ~l_used & ~too_late] if len(labs) else labs
        purge_p = purge_l = None
        if clock is not None:
            purge_p, purge_l = clock - self.delay_ms, clock - self.label_wait_ms
            if len(new_p):
                old = new_p["event_time_ms"].to_numpy(np.int64) < purge_p
                unlabelled.append(new_p[old])
                counts["prediction_unlabelled"] += int(old.sum())
                new_p = new_p[~old]
            if len(new_l):
                old = new_l["event_time_ms"].to_numpy(np.int64) < purge_l
                counts["label_unmatched"] += int(old.sum())
                new_l = new_l[~old]
        changes = LabelChanges(
            insert_predictions=_drop_source(new_p),
            delete_predictions=_keys(preds[p_stored & p_used]) if len(preds) else _keys(preds),
            insert_labels=_drop_source(new_l),
            delete_labels=_keys(labs[l_stored & l_used]) if len(labs) else _keys(labs),
            clock_ms=clock,
            purge_predictions_before_ms=purge_p,
            purge_labels_before_ms=purge_l,
        )
        purged, n_labels = state.apply(changes)
        counts["prediction_unlabelled"] += len(purged)
        counts["label_unmatched"] += n_labels
        unlabelled.append(purged)
        return LabelJoinResult(pairs=_pair_frame(pairs), unlabelled=_pair_frame(unlabelled, unlabelled=True),
                               counts=counts)

    def _pair(self, preds: pd.DataFrame, labs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction rows, label rows) of the valid pairs, and a mask of the labels that had
        at least one candidate prediction."""
        empty = np.zeros(0, dtype=np.int64)
        tried = np.zeros(len(labs), dtype=bool)
        if len(preds) == 0 or len(labs) == 0:
            return empty, empty, tried
        pk = pd.DataFrame({"model": preds["model"].to_numpy(object), "request_id": preds["request_id"].to_numpy(object),
                           "p_t": preds["event_time_ms"].to_numpy(np.int64), "pid": np.arange(len(preds))})
        lk = pd.DataFrame({"model": labs["model"].to_numpy(object), "request_id": labs["request_id"].to_numpy(object),
                           "l_t": labs["event_time_ms"].to_numpy(np.int64), "lid": np.arange(len(labs))})
        named = lk["model"].to_numpy(object) != ""
        specific = lk[named].merge(pk, on=["model", "request_id"], how="inner")
        anymodel = lk[~named].drop(columns="model").merge(pk, on="request_id", how="inner")
        specific = specific[["pid", "lid", "p_t", "l_t"]]
        anymodel = anymodel[["pid", "lid", "p_t", "l_t"]]
        tried[specific["lid"].to_numpy()] = True
        tried[anymodel["lid"].to_numpy()] = True
        ok = specific[(specific["l_t"] - specific["p_t"]).to_numpy() <= self.delay_ms]
        # a label naming the model wins over one naming none
        anymodel = anymodel[~anymodel["pid"].isin(ok["pid"])]
        ok_any = anymodel[(anymodel["l_t"] - anymodel["p_t"]).to_numpy() <= self.delay_ms]
        both = pd.concat([ok, ok_any], ignore_index=True)
        return both["pid"].to_numpy(np.int64), both["lid"].to_numpy(np.int64), tried


def _labels(values: pd.Series) -> np.ndarray:
    """Labels as text (:func:`detectors.profile.category_label`), missing as None."""
    arr = _text(values)
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    if len(uniques) == 0:
        return arr
    text = np.array([v if isinstance(v, str) else category_label(v) for v in uniques], dtype=object)
    return np.where(codes >= 0, text[np.maximum(codes, 0)], None).astype(object)


def _keys_in(frame: pd.DataFrame, other: pd.DataFrame) -> np.ndarray:
    return pd.MultiIndex.from_frame(frame[["model", "request_id"]].astype(object)).isin(
        pd.MultiIndex.from_frame(other[["model", "request_id"]].astype(object)))


def _with_source(frame: pd.DataFrame, stored: bool) -> pd.DataFrame:
    """The rows with a ``_stored`` flag: True for rows read from the state, False for new ones."""
    if len(frame) == 0:
        return frame
    out = frame.copy()
    out["_stored"] = stored
    out["event_time_ms"] = out["event_time_ms"].to_numpy(np.int64)
    return out


def _drop_source(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="_stored").reset_index(drop=True) if "_stored" in frame.columns else frame


def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) == 0:
        return pd.DataFrame({"model": pd.Series(dtype=object), "request_id": pd.Series(dtype=object)})
    return frame[["model", "request_id"]].reset_index(drop=True)


def _pair_frame(parts: list[pd.DataFrame], unlabelled: bool = False) -> pd.DataFrame:
    out = _concat([_drop_source(p) for p in parts])
    if len(out) == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.int64 if c == "event_time_ms" else object) for c in PAIR_COLUMNS})
    if unlabelled or "label" not in out.columns:
        out["label"] = np.full(len(out), None, dtype=object)
    out["event_time_ms"] = out["event_time_ms"].to_numpy(np.int64)
    preds = [c for c in out.columns if c.startswith(PREDICTION_PREFIX)]
    out = out[[*PAIR_COLUMNS, *preds]]
    return out.sort_values(["event_time_ms", "model", "request_id"], kind="stable", ignore_index=True)


# --------------------------------------------------------------------------- realized performance


@dataclass(frozen=True)
class PerformanceSpec:
    """How to read a model's predictions and labels for realized performance.

    Attributes:
        task: ``"classification"`` or ``"regression"``.
        prediction: column of the predicted class (classification; normalised to text by
            :func:`detectors.profile.category_label`) or value (regression, numeric), e.g.
            ``"predictions.label"``.
        labels: classification: the fixed label set as text, ``k >= 2`` values.
        probabilities: classification, optional: ``k`` columns with the probability of each
            label in ``labels`` order, or one column with the probability of ``pos_label``
            (binary). Rows whose probabilities are missing or outside [0, 1] are left out.
        pos_label: binary positive class; default ``labels[1]``.
        n_bins: ROC AUC histogram bins (>= 1).
    """

    task: Literal["classification", "regression"]
    prediction: str
    labels: tuple[str, ...] = ()
    probabilities: tuple[str, ...] = ()
    pos_label: str | None = None
    n_bins: int = DEFAULT_AUC_BINS

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        if self.task == "classification":
            if len(set(self.labels)) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels must hold at least 2 distinct values, got {self.labels!r}")
            if len(self.probabilities) not in (0, 1, len(self.labels)) or (
                    len(self.probabilities) == 1 and len(self.labels) != 2):
                raise ValueError(f"probabilities must name {len(self.labels)} columns (or 1 for binary), "
                                 f"got {self.probabilities!r}")


@dataclass
class WindowPerformance:
    """Mergeable performance summaries per window of one batch.

    Attributes:
        summaries: ``{(model, model_version, window_start_ms): summary}``; merge with the
            window's other partial summaries (``summary.merge``).
        n_invalid: rows left out because their prediction, label or probabilities cannot be
            read under the spec (outside the label set, not numeric, missing).
    """

    summaries: dict[tuple[str, str, int], PerformanceSummary]
    n_invalid: int


def window_starts(event_time_ms: np.ndarray, window_ms: int, slide_ms: int | None = None,
                  origin_ms: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows each time falls in: ``(row index, window start)`` arrays, one entry per pair.

    Tumbling (``slide_ms`` None): start = ``origin + floor((t - origin) / window) * window``.
    Sliding: every start ``origin + k * slide`` with ``start <= t < start + window_ms``.

    Raises:
        ValueError: ``window_ms < 1`` or ``slide_ms < 1``.
    """
    slide = window_ms if slide_ms is None else slide_ms
    if window_ms < 1 or slide < 1:
        raise ValueError(f"window_ms and slide_ms must be >= 1, got {window_ms}, {slide}")
    t = np.asarray(event_time_ms, dtype=np.int64)
    last = ((t - origin_ms) // slide) * slide + origin_ms
    rows, starts = [], []
    for k in range(-(-window_ms // slide)):
        start = last - k * slide
        inside = start + window_ms > t
        rows.append(np.flatnonzero(inside))
        starts.append(start[inside])
    return np.concatenate(rows), np.concatenate(starts)


def performance_summaries(pairs: pd.DataFrame, spec: PerformanceSpec, *, window_ms: int,
                          slide_ms: int | None = None, origin_ms: int = 0,
                          unlabelled: pd.DataFrame | None = None) -> WindowPerformance:
    """Mergeable realized-performance summaries per (model, version, window start).

    Args:
        pairs: :attr:`LabelJoinResult.pairs` (rows with ``label`` None count as unlabelled), of
            the models the spec describes (select them first when models differ).
        spec: how to read predictions and labels.
        window_ms, slide_ms, origin_ms: the windows, as :func:`window_starts`; a row belongs to
            the windows of its prediction's event time.
        unlabelled: :attr:`LabelJoinResult.unlabelled`, counted in ``n_rows`` only.

    Returns:
        A :class:`WindowPerformance`; summaries equal those built from all the window's rows
        at once (``detectors.performance`` summaries merge exactly).

    Raises:
        ValueError: a column named by the spec is missing; bad window parameters.
    """
    rows = _concat([pairs, unlabelled] if unlabelled is not None else [pairs])
    if len(rows) == 0:
        return WindowPerformance({}, 0)
    for col in (spec.prediction, *spec.probabilities):
        if col not in rows.columns:
            raise ValueError(f"pairs lack the column {col!r} named by the performance spec")
    label = rows["label"] if "label" in rows.columns else pd.Series([None] * len(rows))
    if spec.task == "classification":
        y_true = _labels(label)
        y_pred = _labels(rows[spec.prediction])
        index = pd.Index(spec.labels)
        ok = (index.get_indexer(y_pred) >= 0) & (pd.isna(y_true) | (index.get_indexer(y_true) >= 0))
        prob = None
        if spec.probabilities:
            prob = np.column_stack([pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64)
                                    for c in spec.probabilities])
            ok &= np.all(np.isfinite(prob) & (prob >= 0.0) & (prob <= 1.0), axis=1)
            if prob.shape[1] == 1:
                prob = prob[:, 0]
    else:
        y_true = pd.to_numeric(label, errors="coerce").to_numpy(np.float64)
        y_pred = pd.to_numeric(rows[spec.prediction], errors="coerce").to_numpy(np.float64)
        ok = np.isfinite(y_pred) & (pd.isna(label).to_numpy() | np.isfinite(y_true))
    n_invalid = int((~ok).sum())
    keep = np.flatnonzero(ok)
    t = rows["event_time_ms"].to_numpy(np.int64)[keep]
    r, start = window_starts(t, window_ms, slide_ms, origin_ms)
    r = keep[r]
    groups = pd.DataFrame({"model": rows["model"].to_numpy(object)[r],
                           "model_version": rows["model_version"].to_numpy(object)[r],
                           "start": start}).groupby(["model", "model_version", "start"], sort=True).indices
    out: dict[tuple[str, str, int], PerformanceSummary] = {}
    for (model, version, s), members in groups.items():
        idx = r[members]
        if spec.task == "classification":
            out[(model, version, int(s))] = classification_summary(
                y_true[idx], y_pred[idx], None if prob is None else prob[idx], labels=spec.labels,
                pos_label=spec.pos_label, n_bins=spec.n_bins)
        else:
            out[(model, version, int(s))] = regression_summary(y_true[idx], y_pred[idx])
    return WindowPerformance(out, n_invalid)


__all__ = [
    "FINISHED", "JOIN_COUNTS", "JOIN_STATUS", "LABEL_COUNTS", "MATCHED", "PAIR_COLUMNS", "REQUEST",
    "REQUEST_ONLY", "RESPONSE", "RESPONSE_ONLY", "STATE_COLUMNS", "WAITING_LABEL_COLUMNS",
    "WAITING_PREDICTION_COLUMNS", "JoinChanges", "JoinResult", "LabelChanges", "LabelJoin",
    "LabelJoinResult", "LabelState", "MemoryLabelState", "PerformanceSpec", "RequestResponseJoin",
    "WindowPerformance", "performance_summaries", "row_bytes", "window_starts",
]
