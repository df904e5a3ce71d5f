"""Messages from files, for replaying logs through the decoders.

Two line layouts, told apart by a file's first non-blank line:

- JSON lines: one message per line (SageMaker capture files, BentoML monitor logs, flat JSON
  logs, inferwatch records, OIP bodies). ``topic`` = the file path, ``partition`` = 0,
  ``offset`` = the line number (1-based), ``timestamp_ms`` = the file's modification time
  (what formats without their own event time fall back to, like Kafka's append time).
- Kafka dump: one consumed record per line, so messages with headers (CloudEvents, Seldon) can
  be replayed as they were::

      {"topic": "seldon.ns.model.iris.inputs", "partition": 0, "offset": 17,
       "timestamp": 1714564800123, "key": "k", "headers": [["x-request-id", "r1"]],
       "value": "{...}"}

  ``value`` is text (UTF-8); binary values (protobuf) go in ``value_base64`` instead (and
  ``key_base64`` for keys). Header values are text or null. A malformed dump line is passed
  on as a JSON-lines message, so the decoder rejects it and nothing is silently skipped.

Files may be gzip-compressed (``.gz``). A directory is walked recursively in name order,
except that a ``schema`` subdirectory comes before its siblings (BentoML writes column roles
there, and they must be known before the data lines). Files are streamed line by line; a line
longer than ``max_line_bytes`` is cut there (the decoder then rejects it as oversize) and the
rest of it skipped, so memory stays bounded.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from collector.message import Message

_JSON_SUFFIXES = {"jsonl", "ndjson", "json", "log"}
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


def is_log_file(path: Path) -> bool:
    """Whether a file met while walking a directory is read: a name with a ``.jsonl``,
    ``.ndjson``, ``.json`` or ``.log`` part (``data.0.log.2024-05-01``, ``x.jsonl.gz`` too);
    hidden files are not."""
    if path.name.startswith("."):
        return False
    parts = [p.lower() for p in path.name.split(".")[1:]]
    return any(p in _JSON_SUFFIXES for p in parts)


def _walk_key(p: Path) -> tuple[int, str]:
    return (0 if p.is_dir() and p.name == "schema" else 1, p.name)


def _walk(directory: Path) -> Iterator[Path]:
    for entry in sorted(directory.iterdir(), key=_walk_key):
        if entry.is_dir():
            if not entry.is_symlink():  # a linked directory could loop
                yield from _walk(entry)
        elif entry.is_file() and is_log_file(entry):
            yield entry


def expand_paths(paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """The files to read: each file as given, each directory walked recursively; as absolute
    paths (a file's stored offsets are keyed by its path, however it was typed), each once.

    Args:
        exclude: files never read (e.g. the replay's own dead-letter file).

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    skip = {Path(p).resolve() for p in exclude}
    out: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = _walk(path)
        elif path.exists():
            found = [path]
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
        for f in found:
            f = f.resolve()
            if f not in skip:
                out[f] = None
    return list(out)


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _lines(f: BinaryIO, max_line_bytes: int) -> Iterator[bytes]:
    """Lines without their end, each at most ``max_line_bytes + 1`` bytes (longer ones cut)."""
    while True:
        line = f.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            while True:  # skip the rest of an over-long line
                rest = f.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line
            continue
        yield line.rstrip(b"\r\n")


def _is_dump(obj: object) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("topic"), str) and "offset" in obj
            and ("value" in obj or "value_base64" in obj))


def _text_bytes(obj: dict, key: str) -> bytes | None:
    if obj.get(key + "_base64") is not None:
        return base64.b64decode(obj[key + "_base64"], validate=True)
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        v = json.dumps(v)  # a JSON value written inline
    return v.encode("utf-8")


def dump_message(obj: dict) -> Message:
    """The Kafka message one dump line describes.

    Raises:
        ValueError: a field of the wrong type or invalid base64.
    """
    headers = []
    for h in obj.get("headers") or []:
        if not (isinstance(h, list) and len(h) == 2 and isinstance(h[0], str)):
            raise ValueError("headers: must be [name, value] pairs")
        name, v = h
        headers.append((name, None if v is None else str(v).encode("utf-8")))
    partition, offset, ts = obj.get("partition", 0), obj["offset"], obj.get("timestamp")
    for key, v in (("partition", partition), ("offset", offset)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key}: must be an integer")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float))):
        raise ValueError("timestamp: must be epoch milliseconds")
    try:
        value, key = _text_bytes(obj, "value"), _text_bytes(obj, "key")
    except (binascii.Error, ValueError):
        raise ValueError("value_base64/key_base64: invalid base64") from None
    return Message(topic=obj["topic"], partition=partition, offset=offset, value=value, key=key,
                   headers=tuple(headers), timestamp_ms=None if ts is None else int(ts))


def iter_file(path: str | os.PathLike, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Message]:
    """Messages of one file (JSON lines or Kafka dump, plain or gzip), streamed.

    Raises:
        OSError: the file cannot be read; also a corrupt gzip stream when reached
            (``EOFError`` for a truncated one).
    """
    path = Path(path)
    mtime_ms = int(path.stat().st_mtime * 1000)
    topic = str(path)
    dump = None
    with _open(path) as f:
        for number, line in enumerate(_lines(f, max_line_bytes), start=1):
            if not line.strip():
                continue
            if dump is None:  # the first line decides the layout of the file
                try:
                    dump = _is_dump(json.loads(line))
                except ValueError:
                    dump = False
            if dump:
                try:
                    obj = json.loads(line)
                    if _is_dump(obj):
                        yield dump_message(obj)
                        continue
                except ValueError:
                    pass
            yield Message(topic=topic, partition=0, offset=number, value=line, timestamp_ms=mtime_ms)


def iter_messages(paths: Iterable[str | os.PathLike],
                  max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Message]:
    """Messages of every file under ``paths`` (see :func:`expand_paths`), file after file.

    Raises:
        FileNotFoundError: a path that does not exist.
        OSError: a file that cannot be read.
    """
    for path in expand_paths(paths):
        try:
            yield from iter_file(path, max_line_bytes)
        except (EOFError, zlib.error) as exc:  # a truncated or corrupt gzip stream
            raise OSError(f"{path}: {exc or type(exc).__name__}") from None
