"""Open Inference Protocol (KServe v2, Triton, MLServer, Seldon v2) tensors into rows.

Request body ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}, ..]}``;
response body ``{"model_name"?, "model_version"?, "id"?, "outputs": [..]}``; an error body
``{"error": ".."}`` is rejected as ``error_response``. ``data`` is row-major, nested or flat;
dimension 0 of ``shape`` is the batch: a tensor of shape ``[N]`` or ``[N, 1]`` is one column,
``[N, k]`` (or ``[N, a, b]``, flattened) is ``k`` columns named ``<tensor>[i]`` unless the
config names them. Every tensor of one message must have the same ``N``.

Naming (FormatConfig): ``inputs`` / ``outputs`` map a tensor to a column name or a list of
names; ``feature_names`` / ``prediction_names`` name the columns when the message has exactly
one input / output tensor.

Over Kafka a message is a request or a response half: request id = body ``id``, else the
``x-request-id`` header, else the message key; model = response ``model_name``, else config
``model``. Event time = the message timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.decode import RecordError, RejectReason
from collector.formats.columns import DecodedBuilder, check_width, column
from collector.formats.common import event_time, headers, load_object, payload, require_model, text_id
from collector.formats.config import FormatConfig, Limits
from collector.message import Message
from collector.record import FEATURE_PREFIX, PREDICTION_PREFIX, Decoded, row_request_ids

# little-endian element types of the raw (binary) tensor encoding
RAW_DTYPES: dict[str, str] = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BF16": "<u2",
}
DATATYPES = frozenset(RAW_DTYPES) | {"BYTES"}


@dataclass
class Tensor:
    """One tensor: ``values`` holds ``prod(shape)`` elements, flat in row-major order
    (numbers as a numeric array, BOOL as bool, BYTES as text objects)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray


@dataclass
class Body:
    """The rows of one request or response body."""

    n: int
    columns: dict
    model_name: str | None
    model_version: str | None
    id: str | None


def size_of(shape: tuple[int, ...]) -> int:
    """Element count of a tensor shape (1 for the scalar shape ``[]``)."""
    size = 1
    for d in shape:
        size *= d
    return size


def check_shape(shape: object, where: str) -> tuple[int, ...]:
    """A tensor shape as a tuple of non-negative ints (protobuf-JSON writes them as text).

    Raises:
        RecordError: ``wrong_type``.
    """
    if not isinstance(shape, (list, tuple)):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}.shape: must be a list of integers")
    out = []
    for d in shape:
        if isinstance(d, str) and d.isdigit():
            d = int(d)
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}.shape: {d!r} is not a dimension >= 0")
        out.append(d)
    return tuple(out)


def check_datatype(datatype: object, where: str) -> str:
    """The datatype name, upper-cased.

    Raises:
        RecordError: ``unsupported_content`` for a datatype outside the protocol.
    """
    if not isinstance(datatype, str) or datatype.upper() not in DATATYPES:
        raise RecordError(RejectReason.UNSUPPORTED_CONTENT, f"{where}.datatype: {str(datatype)[:32]!r} is not an "
                                                            "Open Inference Protocol datatype")
    return datatype.upper()


def shape_mismatch(where: str, got: int, shape: tuple[int, ...]) -> RecordError:
    """The error for ``got`` elements that do not fill ``shape``."""
    return RecordError(RejectReason.SHAPE_MISMATCH, f"{where}.data: {got} elements do not fill shape {list(shape)}")


def json_tensor(t: object, where: str) -> Tensor:
    """A tensor from its JSON form (``data`` nested or flat).

    Raises:
        RecordError: missing keys, a bad shape or datatype, values of the wrong type, or a
            ``data`` length that does not fill the shape.
    """
    if not isinstance(t, dict):
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: tensor must be an object")
    for key in ("name", "shape", "datatype", "data"):
        if key not in t:
            raise RecordError(RejectReason.MISSING_FIELD, f"{where}.{key}: missing")
    name = t["name"]
    if not isinstance(name, str) or not name:
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}.name: must be a non-empty string")
    where = f"{where}({name})"
    shape = check_shape(t["shape"], where)
    datatype = check_datatype(t["datatype"], where)
    data = t["data"]
    if not isinstance(data, list):
        data = [data]
    if datatype in ("BYTES", "BOOL"):
        try:
            flat = np.array(data, dtype=object).reshape(-1)
        except ValueError:
            raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}.data: nested lists of different lengths") from None
        want = str if datatype == "BYTES" else bool
        if not set(map(type, flat)) <= {want}:
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data: {datatype} elements must be "
                                                       f"{'strings' if want is str else 'true/false'}")
        values = flat.astype(bool) if datatype == "BOOL" else flat
    else:
        try:
            values = np.asarray(data, dtype=np.float64).reshape(-1)
        except (TypeError, OverflowError):
            raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data: {datatype} elements must be numbers") from None
        except ValueError as exc:
            if "could not convert" in str(exc):
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}.data: {datatype} elements must be numbers") from None
            raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}.data: nested lists of different lengths") from None
    if values.size != size_of(shape):
        raise shape_mismatch(where, values.size, shape)
    return Tensor(name, datatype, shape, values)


def raw_values(blob: bytes, datatype: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Elements of one raw (binary, little-endian) tensor blob.

    BYTES elements are each a 4-byte little-endian length followed by that many bytes (the
    Triton / KServe serialisation); BF16 is widened to float32.

    Raises:
        RecordError: a blob whose length does not fit the shape, or BYTES that are not UTF-8.
    """
    count = size_of(shape)
    if datatype == "BYTES":
        out, pos, end = [], 0, len(blob)
        while pos < end:
            if pos + 4 > end:
                raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: truncated BYTES element length")
            size = int.from_bytes(blob[pos:pos + 4], "little")
            pos += 4
            if pos + size > end:
                raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: BYTES element longer than the blob")
            out.append(utf8(blob[pos:pos + size], where))
            pos += size
        if len(out) != count:
            raise shape_mismatch(where, len(out), shape)
        return np.array(out, dtype=object)
    dtype = np.dtype(RAW_DTYPES[datatype])
    if len(blob) != count * dtype.itemsize:
        raise RecordError(RejectReason.SHAPE_MISMATCH,
                          f"{where}: {len(blob)} raw bytes do not hold shape {list(shape)} of {datatype}")
    values = np.frombuffer(blob, dtype=dtype)
    if datatype == "BF16":  # the upper half of a float32
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values


def utf8(raw: bytes, where: str) -> str:
    """BYTES element as text.

    Raises:
        RecordError: ``invalid_utf8`` (binary payloads such as images are not monitored here),
            ``wrong_type`` for a NUL character.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(RejectReason.INVALID_UTF8, f"{where}: BYTES element is not UTF-8 text") from None
    if "\x00" in text:
        raise RecordError(RejectReason.WRONG_TYPE, f"{where}: text contains a NUL character")
    return text


def tensor_columns(tensors: Sequence[Tensor], prefix: str, rename: dict, single_names: Sequence[str] | None,
                   where: str, max_columns: int, names_key: str, rename_key: str) -> tuple[int, dict]:
    """Rows of a set of tensors sharing dimension 0 (the batch).

    Args:
        tensors: the request's inputs or the response's outputs.
        prefix: ``features.`` or ``predictions.``.
        rename: tensor name -> column name or list of column names (config ``inputs``/``outputs``).
        single_names: column names for a lone tensor (config ``feature_names``/``prediction_names``).
        names_key, rename_key: the config keys named in errors.

    Returns:
        ``(n_rows, {column name: array of n_rows})``.

    Raises:
        RecordError: no tensors or no rows (``no_data``), batch sizes that differ or names
            that do not fit (``shape_mismatch``), too many columns, duplicate column names.
    """
    if not tensors:
        raise RecordError(RejectReason.NO_DATA, f"{where}: no tensors")
    batch = {t.shape[0] if t.shape else 1 for t in tensors}
    if len(batch) != 1:
        raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}: tensors disagree on the batch size "
                                                       f"(dimension 0): {sorted(batch)}")
    n = batch.pop()
    if n == 0:
        raise RecordError(RejectReason.NO_DATA, f"{where}: batch of 0 rows")
    widths = [t.values.size // n for t in tensors]
    check_width(sum(widths), max_columns, where)
    out: dict[str, np.ndarray] = {}
    for t, k in zip(tensors, widths):
        names = rename.get(t.name)
        key = f"{rename_key}.{t.name}"
        if names is None and single_names is not None and len(tensors) == 1:
            names, key = list(single_names), names_key
        if isinstance(names, list):
            if len(names) != k:
                raise RecordError(RejectReason.SHAPE_MISMATCH, f"{where}({t.name}): {k} columns but {key} "
                                                               f"has {len(names)} names")
            cols = names
        else:
            stem = names or t.name
            cols = [stem] if k == 1 else [f"{stem}[{i}]" for i in range(k)]
        mat = t.values.reshape(n, k)
        if k > 1:
            mat = np.ascontiguousarray(mat.T)
            parts = [mat[i] for i in range(k)]
        else:
            parts = [mat[:, 0]]
        for c, part in zip(cols, parts):
            if prefix + c in out:
                raise RecordError(RejectReason.WRONG_TYPE, f"{where}({t.name}): column {c!r} named twice")
            out[prefix + c] = column(part, f"{where}({t.name})")
    return n, out


def json_body(obj: dict, side: str, fmt: FormatConfig, limits: Limits, where: str = "body") -> Body:
    """Rows of an OIP JSON request (``side="request"``) or response body.

    A request body without ``inputs`` but with ``outputs`` (a response chained into the next
    model, as Seldon pipelines do) is read from its outputs.

    Raises:
        RecordError: ``error_response`` for an error body, or any tensor error.
    """
    if "error" in obj and "outputs" not in obj and "inputs" not in obj:
        raise RecordError(RejectReason.ERROR_RESPONSE, f"{where}.error: {str(obj['error'])[:200]}")
    key = "inputs" if side == "request" else "outputs"
    if key not in obj and side == "request" and "outputs" in obj:
        key = "outputs"
    raw = obj.get(key)
    if not isinstance(raw, list):
        raise RecordError(RejectReason.MISSING_FIELD if raw is None else RejectReason.WRONG_TYPE,
                          f"{where}.{key}: must be a list of tensors")
    tensors = [json_tensor(t, f"{where}.{key}[{i}]") for i, t in enumerate(raw)]
    n, cols = side_columns(tensors, side, fmt, limits, f"{where}.{key}")
    model_name = obj.get("model_name")
    version = obj.get("model_version")
    return Body(n, cols, model_name if isinstance(model_name, str) and model_name else None,
                str(version) if isinstance(version, (str, int)) and not isinstance(version, bool) and version != ""
                else None,
                text_id(obj.get("id"), f"{where}.id"))


def side_columns(tensors: Sequence[Tensor], side: str, fmt: FormatConfig, limits: Limits,
                 where: str) -> tuple[int, dict]:
    """Feature columns of request tensors or prediction columns of response tensors."""
    if side == "request":
        return tensor_columns(tensors, FEATURE_PREFIX, fmt.inputs, fmt.feature_names, where,
                              limits.max_features, "feature_names", "inputs")
    return tensor_columns(tensors, PREDICTION_PREFIX, fmt.outputs, fmt.prediction_names, where,
                          limits.max_features, "prediction_names", "outputs")


def body_side(obj: dict) -> str:
    """``request`` or ``response`` from the keys of an OIP body.

    Raises:
        RecordError: ``error_response`` or ``missing_field``.
    """
    if "inputs" in obj:
        return "request"
    if "outputs" in obj:
        return "response"
    if "error" in obj:
        raise RecordError(RejectReason.ERROR_RESPONSE, f"body.error: {str(obj['error'])[:200]}")
    raise RecordError(RejectReason.MISSING_FIELD, "body: neither inputs nor outputs")


def add_half(out: DecodedBuilder, side: str, body: Body, *, model: str, model_version: str,
             event_time_ms: int, request_id: str, serving: dict | None = None) -> None:
    """Add a decoded body as request or response rows (request ids per row, batch size)."""
    cols = dict(body.columns)
    for name, value in (serving or {}).items():
        cols["serving." + name] = np.full(body.n, value, dtype=object if isinstance(value, str) else np.float64)
    if side == "request":
        cols["serving.batch_size"] = np.full(body.n, float(body.n))
    out.add("requests" if side == "request" else "responses", body.n, model=model, model_version=model_version,
            event_time_ms=event_time_ms, request_ids=row_request_ids(request_id, body.n), columns=cols)


def decode(messages: Sequence[Message], fmt: FormatConfig, limits: Limits) -> Decoded:
    """Decode Kafka messages whose values are OIP JSON request or response bodies.

    Returns:
        Request halves (``features.*``) and response halves (``predictions.*``), joined later
        on ``request_id``; rejected messages with the reason.
    """
    out = DecodedBuilder()

    def one(msg: Message) -> None:
        obj = load_object(payload(msg, limits))
        side = body_side(obj)
        body = json_body(obj, side, fmt, limits)
        hdr = headers(msg)
        rid = body.id or hdr.get("x-request-id") or (msg.key.decode("utf-8", "replace") if msg.key else None)
        if not rid:
            raise RecordError(RejectReason.MISSING_FIELD, "body.id: no request id in the body, the "
                                                          "x-request-id header or the message key")
        model = require_model(body.model_name or fmt.model, "the body")
        t = event_time(None, "timestamp", msg, limits)
        add_half(out, side, body, model=model, model_version=body.model_version or fmt.model_version or "",
                 event_time_ms=t, request_id=rid)

    out.run(messages, one)
    return out.build()
