"""Rows of named columns from the row-oriented payloads of V1-style protocols and CSV.

Shapes read (each row = one prediction):

- a list of lists ``[[1, 2], [3, 4]]``: columns named by configuration, else by the payload
  (Seldon ``names``), else ``f0..`` / ``p0..``;
- a list of objects ``[{"age": 41}, {"age": 37}]``: columns named by the keys;
- a list of scalars ``[0.2, 0.7]``: one column;
- inside an object: ``instances`` / ``inputs`` (requests) or ``predictions`` / ``outputs``
  (responses) holding one of the above, or columns ``{"a": [..], "b": [..]}`` of equal
  length, or one row of scalars.

A value that is a list of numbers inside an object row becomes columns ``name[i]``.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Sequence

import numpy as np

from collector.decode import RecordError, RejectReason
from collector.formats.columns import check_width, column

REQUEST_KEYS = ("instances", "inputs")
RESPONSE_KEYS = ("predictions", "outputs")


def _names(count: int, configured: Sequence[str] | None, given: Sequence[str] | None, default: str,
           where: str, key: str) -> list[str]:
    if configured is not None:
        if len(configured) != count:
            raise RecordError(RejectReason.SHAPE_MISMATCH,
                              f"{where}: {count} columns but {key} has {len(configured)} names")
        return list(configured)
    if given is not None and len(given) == count and all(isinstance(g, str) and g for g in given):
        return list(given)
    return _default_names(default, count)


@functools.lru_cache(maxsize=256)
def _default_names(stem: str, count: int) -> list[str]:
    return [f"{stem}{i}" for i in range(count)]


def matrix_columns(rows: list, prefix: str, names: Sequence[str] | None, default: str, where: str,
                   key: str, max_columns: int, given: Sequence[str] | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """Columns of a list of equal-length lists (or of scalars: one column).

    Args:
        rows: the rows.
        prefix: ``features.`` or ``predictions.``.
        names: configured column names (``key`` names the config key in errors).
        default: default name stem (``f`` / ``p``) for unnamed columns.
        where: field named in errors.
        max_columns: width limit.
        given: names the payload itself carries (Seldon ``names``).

    Returns:
        ``(n_rows, {prefix + name: column})``.

    Raises:
        RecordError: ragged rows (``shape_mismatch``), nested values or mixed row types
            (``wrong_type``), too many columns.
    """
    n = len(rows)
    arr = None
    try:
        arr = np.array(rows)
    except (ValueError, TypeError):  # ragged rows
        pass
    if arr is not None and arr.dtype.kind in "iufb" and arr.ndim >= 1:
        if arr.ndim == 1:
            arr = arr.reshape(n, 1)
        elif arr.ndim > 2:
            arr = arr.reshape(n, -1)
        k = arr.shape[1]
        check_width(k, max_columns, where)
        cols = _names(k, names, given, default, where, key)
        mat = np.ascontiguousarray(arr.T)
        return n, {prefix + c: column(mat[i], f"{where}[{c}]") for i, c in enumerate(cols)}
    # text or mixed values, or ragged: go row by row
    if all(not isinstance(r, (list, dict)) for r in rows):
        cols = _names(1, names, given, default, where, key)
        return n, {prefix + cols[0]: column(rows, where)}
    if not all(isinstance(r, list) for r in rows):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: rows must all be lists, all objects or all scalars")
    k = len(rows[0])
    if any(len(r) != k for r in rows):
        raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: rows of different lengths")
    check_width(k, max_columns, where)
    cols = _names(k, names, given, default, where, key)
    return n, {prefix + c: column([r[i] for r in rows], f"{where}[{c}]") for i, c in enumerate(cols)}


def object_columns(rows: list[dict], prefix: str, where: str, max_columns: int) -> tuple[int, dict[str, np.ndarray]]:
    """Columns of a list of objects (one row each); a missing key is a missing value.

    Raises:
        RecordError: a value that is neither a scalar nor a list of numbers (``wrong_type``),
            too many columns.
    """
    n = len(rows)
    values: dict[str, list] = {}
    for i, row in enumerate(rows):
        for name, v in row.items():
            if isinstance(v, list):
                if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                    raise RecordError(RejectReason.WRONG_TYPE, f"{where}[{i}].{name}: lists must hold numbers")
                for j, x in enumerate(v):
                    values.setdefault(f"{name}[{j}]", [None] * n)[i] = x
            elif isinstance(v, dict):
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}[{i}].{name}: object is not number|string|bool|null")
            else:
                values.setdefault(name, [None] * n)[i] = v
        if len(values) > max_columns:
            break
    check_width(len(values), max_columns, where)
    return n, {prefix + name: column(v, f"{where}.{name}") for name, v in values.items()}


def rows_columns(rows: object, prefix: str, names: Sequence[str] | None, default: str, where: str,
                 key: str, max_columns: int, given: Sequence[str] | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """Columns of a rows payload: list of lists, of objects or of scalars, or one scalar row.

    Raises:
        RecordError: as :func:`matrix_columns` and :func:`object_columns`.
    """
    if not isinstance(rows, list):
        if isinstance(rows, dict):
            return object_columns([rows], prefix, where, max_columns)
        return matrix_columns([rows], prefix, names, default, where, key, max_columns, given)
    if not rows:
        return 0, {}
    if isinstance(rows[0], dict):
        if not all(isinstance(r, dict) for r in rows):
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}: rows must all be lists, all objects or all scalars")
        # SageMaker's built-in algorithms take {"instances": [{"features": [..]}, ..]}
        if all(len(r) == 1 and isinstance(r.get("features"), list) for r in rows):
            return matrix_columns([r["features"] for r in rows], prefix, names, default, where, key,
                                  max_columns, given)
        return object_columns(rows, prefix, where, max_columns)
    return matrix_columns(rows, prefix, names, default, where, key, max_columns, given)


def body_columns(obj: object, side: str, prefix: str, names: Sequence[str] | None, default: str,
                 where: str, key: str, max_columns: int, strict: bool = False) -> tuple[int, dict[str, np.ndarray]]:
    """Columns of a V1-style JSON body (see the module docstring).

    Args:
        side: ``request`` (looks for ``instances``/``inputs``) or ``response``
            (``predictions``/``outputs``).
        strict: the body must be an object with one of those keys holding a list or an
            object (the KServe V1 and TensorFlow protocols); else any JSON shape is read.

    Raises:
        RecordError: as :func:`rows_columns`; ``missing_field`` / ``wrong_type`` when
            ``strict`` and the key is missing or holds a scalar; ``wrong_type`` for ``null``.
    """
    keys = REQUEST_KEYS if side == "request" else RESPONSE_KEYS
    if obj is None:
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: null is no payload")
    if isinstance(obj, dict):
        for k in keys:
            if k in obj:
                inner = obj[k]
                if isinstance(inner, dict):  # columnar {"inputs": {"a": [..], "b": [..]}}
                    return columnar(inner, prefix, f"{where}.{k}", max_columns)
                if strict and not isinstance(inner, list):
                    raise RecordError(RejectReason.WRONG_TYPE, f"{where}.{k}: must be a list or an object")
                return rows_columns(inner, prefix, names, default, f"{where}.{k}", key, max_columns)
    if strict:
        raise RecordError(RejectReason.MISSING_FIELD if isinstance(obj, dict) else RejectReason.NOT_AN_OBJECT,
                          f"{where}: an object with {' or '.join(keys)} expected")
    if isinstance(obj, dict):
        if obj and all(isinstance(v, list) for v in obj.values()):
            return columnar(obj, prefix, where, max_columns)
        return object_columns([obj], prefix, where, max_columns)
    return rows_columns(obj, prefix, names, default, where, key, max_columns)


def columnar(obj: dict, prefix: str, where: str, max_columns: int) -> tuple[int, dict[str, np.ndarray]]:
    """Columns given as ``{"name": [v0, v1, ..], ..}`` (equal lengths; a list of lists per
    name becomes ``name[i]`` columns).

    Raises:
        RecordError: lengths differ (``shape_mismatch``), bad values, too many columns.
    """
    lengths = {len(v) if isinstance(v, list) else 1 for v in obj.values()}
    if len(lengths) != 1:
        raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: columns of different lengths")
    n = lengths.pop()
    out: dict[str, np.ndarray] = {}
    for name, v in obj.items():
        vals = v if isinstance(v, list) else [v]
        if vals and isinstance(vals[0], list):
            _, sub = matrix_columns(vals, "", None, "", f"{where}.{name}", "", max_columns)
            out.update({f"{prefix}{name}[{c}]": a for c, a in sub.items()})
        else:
            out[prefix + name] = column(vals, f"{where}.{name}")
        check_width(len(out), max_columns, where)
    return n, out


def csv_rows(text: str, where: str) -> list[list[str]]:
    """Rows of CSV text (RFC 4180 quoting); blank lines are skipped.

    Raises:
        RecordError: ``invalid_csv``.
    """
    try:
        return [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as exc:
        raise RecordError(RejectReason.INVALID_CSV, f"{where}: {exc}") from None


def csv_column(cells: list[str], where: str) -> np.ndarray:
    """A CSV column: float64 when every non-empty cell is a number (empty -> NaN), else text."""
    try:
        return np.array([c if c.strip() else "nan" for c in cells], dtype=np.float64)
    except ValueError:
        return column([c if c != "" else None for c in cells], where)


def csv_columns(rows: list[list[str]], prefix: str, names: Sequence[str] | None, default: str, where: str,
                key: str, max_columns: int) -> tuple[int, dict[str, np.ndarray]]:
    """Named columns of CSV rows of equal length.

    Raises:
        RecordError: rows of different lengths (``shape_mismatch``), too many columns.
    """
    n = len(rows)
    if not n:
        return 0, {}
    k = len(rows[0])
    if any(len(r) != k for r in rows):
        raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: CSV rows of different lengths")
    check_width(k, max_columns, where)
    cols = _names(k, names, None, default, where, key)
    try:  # all cells numbers: one conversion for the whole block
        mat = np.array(rows, dtype=np.float64).T
    except ValueError:
        return n, {prefix + c: csv_column([r[i] for r in rows], f"{where}[{c}]") for i, c in enumerate(cols)}
    return n, {prefix + c: mat[i] for i, c in enumerate(cols)}
