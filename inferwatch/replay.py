"""Replaying prediction-log files through the same decoders, windows and detectors as the
Kafka path (``inferwatch replay PATH...``).

Each file is a source of its own: its messages carry the file path as topic and the line
number as offset (Kafka dumps carry their recorded topic, partition and offset). Offsets are
stored with the windows' rows exactly as for Kafka, under the consumer group name given, so
running the same replay again — after a crash, or on purpose — skips every line already
stored: each record is counted once. At the end of the input, the windows of the models it fed are
closed (a live service sharing the database keeps its own).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path

from collector.decode import Rejected

from collector.formats.files import iter_messages
from collector.message import Message
from inferwatch.metrics import Metrics
from inferwatch.config import Settings
from inferwatch.pipeline import ClosedWindow, DeadLetterSink, Pipeline
from inferwatch.runner import log_dead_letter
from inferwatch.store import Store

OnClosed = Callable[[list[ClosedWindow]], None]


class FileDeadLetter:
    """Dead-letter sink of a replay: appends each rejected message to a JSON-lines file, in the
    Kafka dump layout :mod:`collector.formats.files` reads back (so a fixed file can be replayed
    again), plus ``reason`` and ``detail``.

    Raises:
        OSError: the file cannot be opened for appending.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")

    def __call__(self, rejected: Sequence[Rejected]) -> None:
        for r in rejected:
            m = r.message
            line = {"topic": m.topic, "partition": m.partition, "offset": m.offset, "timestamp": m.timestamp_ms,
                    "headers": [[k, None if v is None else v.decode("utf-8", "replace")] for k, v in m.headers],
                    "reason": r.reason.value, "detail": r.detail}
            try:
                line["value"] = (m.value or b"").decode("utf-8")
            except UnicodeDecodeError:
                line["value_base64"] = base64.b64encode(m.value or b"").decode("ascii")
            self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())  # before the offsets are stored

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def replay_files(settings: Settings, paths: Iterable[str | os.PathLike], store: Store, metrics: Metrics,
                 group_id: str = "replay", batch_size: int = 5000, on_closed: OnClosed | None = None,
                 on_batch: Callable[[list[Message]], None] | None = None,
                 dead_letter: DeadLetterSink = log_dead_letter) -> Pipeline:
    """Feed the messages of ``paths`` (files or directories, see
    :func:`collector.formats.files.expand_paths`) through a :class:`Pipeline`, then close every
    window it opened.

    Args:
        group_id: name under which the files' offsets are stored.
        batch_size: messages per batch (one database transaction each), > 0.
        on_closed: called with the windows each batch closed.
        on_batch: called with each batch after it is stored (progress reporting).
        dead_letter: receives rejected messages (default: logged with their reason).

    Raises:
        FileNotFoundError: a path that does not exist.
        OSError: a file that cannot be read.
        ValueError: ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    if "max_skew_seconds" not in settings.join.model_fields_set:
        # files of one topic each are read one after the other: a request may wait for its
        # response as long as the files take; what waits at the end is given up by close_all
        settings = settings.model_copy(update={"join": settings.join.model_copy(update={"max_skew_seconds": None})})
    pipeline = Pipeline(settings, store, metrics, dead_letter, group_id=group_id)
    stored = store.load_offsets(group_id)
    # what an earlier run of the same replay stored is skipped, line by line
    fresh = (m for m in iter_messages(paths) if m.offset >= stored.get((m.topic, m.partition), 0))
    while True:
        batch = list(islice(fresh, batch_size))
        if not batch:
            break
        closed = pipeline.process(batch)
        if on_batch:
            on_batch(batch)
        if closed and on_closed:
            on_closed(closed)
    # the replay's own windows only: a live service may share the database
    closed = pipeline.close_all(only=pipeline.fed_models)
    if closed and on_closed:
        on_closed(closed)
    return pipeline
