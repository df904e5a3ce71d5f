"""Columnar assembly of decoded rows into the frames of :class:`collector.record.Decoded`.

Decoders hand over one block of rows per message (numpy arrays per column); the builder
concatenates blocks once per batch. Column rule (the same as :func:`collector.decode.to_column`):
a column whose values are all numbers is float64 with NaN for missing; any other column holds
text labels (:func:`detectors.profile.category_label`) with missing values empty.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from collector.decode import RecordError, Rejected, RejectReason, to_column
from collector.message import Message
from collector.record import LABEL_COLUMNS, META_COLUMNS, Decoded
from detectors.profile import category_label

REQUEST_COLUMNS = ("model", "model_version", "event_time_ms", "request_id")
RESPONSE_COLUMNS = ("model", "model_version", "event_time_ms", "request_id", "latency_ms")
KINDS = ("records", "requests", "responses", "labels")
_BASE = {"records": META_COLUMNS, "requests": REQUEST_COLUMNS, "responses": RESPONSE_COLUMNS,
         "labels": LABEL_COLUMNS}
_SCALARS = (str, int, float, bool, type(None))
_MAX_FLOAT = 1.7976931348623157e308


def column(values: Sequence[object] | np.ndarray, where: str) -> np.ndarray:
    """One column array from values: float64 if all are numbers (None -> NaN), else text labels.

    ``values`` may be a list of JSON scalars or a numpy array (numeric -> float64, bool ->
    ``"true"``/``"false"``, other -> labels).

    Raises:
        RecordError: ``wrong_type`` for a value that is not a scalar, or a number beyond float64.
    """
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind in "iuf":
            return values.astype(np.float64, copy=False)
        if kind == "b":
            return np.where(values, "true", "false").astype(object)
        values = values.tolist()
    types = set(map(type, values))
    if not types <= set(_SCALARS):
        bad = next(v for v in values if not isinstance(v, _SCALARS))
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: {type(bad).__name__} is not number|string|bool|null")
    try:
        return to_column(values)
    except OverflowError:
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: integer out of the float64 range") from None


def scalar(v: object, where: str) -> object:
    """A JSON scalar that fits a column (number within float64, text, bool or null).

    Raises:
        RecordError: ``wrong_type``.
    """
    if isinstance(v, (dict, list)):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: {type(v).__name__} is not number|string|bool|null")
    if type(v) is int and not -_MAX_FLOAT <= v <= _MAX_FLOAT:
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: integer out of the float64 range")
    return v


def check_width(n_columns: int, limits_max: int, where: str) -> None:
    """Reject a record with more feature plus prediction columns than the limit.

    Raises:
        RecordError: ``too_many_features``.
    """
    if n_columns > limits_max:
        raise RecordError(RejectReason.TOO_MANY_FEATURES, f"{where}: {n_columns} columns > limit {limits_max}")


#: Most rows one message may add to a :class:`DecodedBuilder` (None: no bound), for the builders
#: made while it is set; :func:`collector.formats.decode_messages` sets it from its limits.
MAX_ROWS_PER_MESSAGE: ContextVar[int | None] = ContextVar("max_rows_per_message", default=None)


class DecodedBuilder:
    """Collects blocks of rows and rejected messages; :meth:`build` makes the frames.

    A block is ``n`` rows of one kind (records, requests, responses, labels): meta values
    (a scalar for all rows or a sequence of ``n``) and data columns (arrays of ``n``).
    """

    def __init__(self) -> None:
        self._blocks: dict[str, list[tuple[int, dict[str, np.ndarray]]]] = {k: [] for k in KINDS}
        self._rows: dict[str, list[tuple]] = {k: [] for k in KINDS}
        self.rejected: list[Rejected] = []
        self.max_rows = MAX_ROWS_PER_MESSAGE.get()
        self._message_rows = 0  # rows the message being decoded by run() added so far
        self._message_blocks: list[tuple[str, int]] = []  # and its blocks: (kind, index)

    def add_row(self, message: Message, kind: str, *, model: str | None, model_version: str = "",
                event_time_ms: int, request_id: str, values: dict[str, object], label: object = None,
                latency_ms: float = math.nan) -> None:
        """Add one row of ``message`` whose ``values`` are JSON scalars (see :func:`scalar`).

        One-row messages (log lines) take this path: their values become columns once per
        batch instead of once per message.
        """
        self._count_rows(1)
        self._rows[kind].append((model, model_version, event_time_ms, request_id, label, latency_ms, values,
                                 message))

    def _count_rows(self, n: int) -> None:
        """Count rows of the message being decoded against :attr:`max_rows`.

        Raises:
            RecordError: ``too_many_rows``, before anything of these rows is kept.
        """
        self._message_rows += n
        if self.max_rows is not None and self._message_rows > self.max_rows:
            raise RecordError(RejectReason.TOO_MANY_ROWS,
                              f"the message expands to {self._message_rows} rows > limit {self.max_rows}")

    def _flush_rows(self, kind: str) -> None:
        rows = self._rows[kind]
        if not rows:
            return
        self._rows[kind] = []
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r[6]))
        try:
            cols = {name: column([r[6].get(name) for r in rows], name) for name in names}
        except RecordError:  # a value no column takes: reject its message, keep the others
            good = []
            for r in rows:
                try:
                    for name, v in r[6].items():
                        column([v], name)
                except RecordError as err:
                    self.reject(r[7], err.reason, str(err))
                else:
                    good.append(r)
            self._rows[kind] = good
            if good:
                self._flush_rows(kind)
            return
        model, version, t, rid, label, latency, _, _ = zip(*rows)
        self.add(kind, len(rows), model=model, model_version=version, event_time_ms=t, request_ids=rid,
                 columns=cols, label=label, latency_ms=latency, _of_rows=True)

    def add(self, kind: str, n: int, *, model: str | Sequence[str] | None = None,
            model_version: str | Sequence[str] = "", event_time_ms: int | Sequence[int],
            request_ids: Sequence[str], columns: dict[str, np.ndarray] | None = None,
            label: Sequence[object] | None = None, latency_ms: float | Sequence[float] = math.nan,
            _of_rows: bool = False) -> None:
        """Add ``n`` rows of ``kind``; meta values are one value for all rows or ``n`` values.

        ``request_ids`` has ``n`` entries, ``label`` too if given. For ``labels`` only
        ``request_ids``, ``label``, ``event_time_ms`` and (optionally) ``model`` are used.

        Raises:
            RecordError: ``too_many_rows``: the message being decoded would add more than
                :attr:`max_rows` rows (``_of_rows``: the block holds rows of :meth:`add_row`,
                counted there).
        """
        if not _of_rows:
            self._count_rows(n)
        if self._rows[kind]:  # keep the input order
            self._flush_rows(kind)
        if not _of_rows:
            self._message_blocks.append((kind, len(self._blocks[kind])))
        meta: dict[str, np.ndarray] = {
            "request_id": np.asarray(request_ids, dtype=object),
            "event_time_ms": _meta(event_time_ms, n, np.int64),
        }
        if kind == "labels":
            meta["label"] = _labels(label, n)
            if model is not None:
                meta["model"] = _meta(model, n, object)
            self._blocks[kind].append((n, meta))
            return
        meta["model"] = _meta(model, n, object)
        meta["model_version"] = _meta(model_version, n, object)
        if kind in ("records", "responses"):
            meta["latency_ms"] = _meta(latency_ms, n, np.float64)
        if kind == "records":
            meta["label"] = _labels(label, n)
        meta.update(columns or {})
        self._blocks[kind].append((n, meta))

    def reject(self, message: Message, reason: RejectReason, detail: str) -> None:
        """Record a message that could not be decoded."""
        self.rejected.append(Rejected(message, reason, detail))

    def run(self, messages: Iterable[Message], decode_one: Callable[[Message], None]) -> None:
        """Call ``decode_one`` per message; a raised error becomes a rejection, never escapes.

        ``decode_one`` must add its rows only after everything about the message checked out. A
        message adding more than :attr:`max_rows` rows is rejected as ``too_many_rows`` and none
        of its rows are kept.
        """
        for msg in messages:
            self._message_rows = 0
            self._message_blocks = []
            try:
                decode_one(msg)
            except RecordError as err:
                if err.reason is RejectReason.TOO_MANY_ROWS:  # drop the blocks it added before the excess
                    for kind, index in reversed(self._message_blocks):
                        del self._blocks[kind][index]
                self.reject(msg, err.reason, str(err))
            except RecursionError:
                self.reject(msg, RejectReason.INVALID_JSON, "nested too deeply")
            except Exception as exc:  # a decoder must never fail the batch
                self.reject(msg, RejectReason.DECODER_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}")

    def build(self) -> Decoded:
        """The frames of all blocks and rows added so far, plus the rejected messages in order."""
        for kind in KINDS:
            self._flush_rows(kind)
        frames = {k: concat_blocks(self._blocks[k], _BASE[k]) for k in KINDS}
        return Decoded(rejected=list(self.rejected), **frames)


def _meta(value: object, n: int, dtype) -> np.ndarray:
    if value is None or isinstance(value, (str, int, float)):
        return np.full(n, value, dtype=dtype)
    return np.asarray(value, dtype=dtype)


def _labels(label: Sequence[object] | None, n: int) -> np.ndarray:
    if label is None:
        return np.full(n, None, dtype=object)
    return np.array([None if v is None else category_label(v) for v in label], dtype=object)


def _as_labels(arr: np.ndarray) -> np.ndarray:
    """Float column pieces rendered as text labels (NaN -> None) to join a text column."""
    return np.array([None if v != v else category_label(v) for v in arr.tolist()], dtype=object)


def concat_blocks(blocks: list[tuple[int, dict[str, np.ndarray]]], base: tuple[str, ...]) -> pd.DataFrame:
    """One frame from blocks of rows; the ``base`` columns first, then the others in first-seen order.

    A column missing from a block is NaN (numeric) or empty (text) there; a column numeric in
    one block and text in another becomes text. ``event_time_ms`` stays int64.
    """
    if not blocks:
        return pd.DataFrame({c: [] for c in base})
    if len(blocks) == 1:
        n, cols = blocks[0]
        data = {c: cols[c] if c in cols else _missing(n, c) for c in base}
        data.update({c: v for c, v in cols.items() if c not in data})
        return pd.DataFrame(data, copy=False)
    total = sum(n for n, _ in blocks)
    names: dict[str, None] = dict.fromkeys(base)
    for _, cols in blocks:
        names.update(dict.fromkeys(cols))
    data: dict[str, np.ndarray] = {}
    for name in names:
        pieces = [cols.get(name) for _, cols in blocks]
        kinds = {p.dtype.kind for p in pieces if p is not None}
        numeric = kinds <= {"i", "u", "f"}
        if all(p is not None for p in pieces) and (numeric or kinds == {"O"}):
            if kinds == {"i"}:  # event_time_ms
                data[name] = np.concatenate(pieces)
            else:
                data[name] = np.concatenate(pieces).astype(np.float64 if numeric else object, copy=False)
            continue
        out = np.full(total, np.nan) if numeric else np.full(total, None, dtype=object)
        pos = 0
        for (n, _), p in zip(blocks, pieces):
            if p is not None:
                out[pos:pos + n] = p if numeric or p.dtype.kind == "O" else _as_labels(p)
            pos += n
        data[name] = out
    return pd.DataFrame(data, copy=False)


def _missing(n: int, name: str) -> np.ndarray:
    if name == "latency_ms":
        return np.full(n, np.nan)
    return np.full(n, None, dtype=object)


def frame_blocks(frame: pd.DataFrame) -> tuple[int, dict[str, np.ndarray]]:
    """A decoded frame as one block, to merge it with others through :func:`concat_blocks`."""
    cols = {}
    for c in frame.columns:
        arr = frame[c].to_numpy()
        if arr.dtype.kind not in "iufbO":
            arr = arr.astype(object)
        if arr.dtype.kind == "O":
            arr = np.array([None if (isinstance(v, float) and v != v) else v for v in arr.tolist()], dtype=object)
        cols[c] = arr
    return len(frame), cols


def merge_decoded(parts: list[Decoded], order: dict[int, int]) -> Decoded:
    """Concatenate the results of several decoders; rejected messages sorted by input position.

    Args:
        parts: decoder results.
        order: ``id(message) -> position`` in the input batch.
    """
    parts = [p for p in parts if p.n_rows or p.rejected]
    if not parts:
        return DecodedBuilder().build()
    if len(parts) == 1:
        return parts[0]
    frames = {}
    for k in KINDS:
        blocks = [frame_blocks(getattr(p, k)) for p in parts if len(getattr(p, k))]
        frames[k] = concat_blocks(blocks, _BASE[k])
    rejected = sorted((r for p in parts for r in p.rejected), key=lambda r: order.get(id(r.message), 0))
    return Decoded(rejected=rejected, **frames)
