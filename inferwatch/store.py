"""The database: SQLAlchemy tables mirroring ``sql/<dialect>.sql`` and the queries over them.

SQLite is the embedded default (no server); PostgreSQL is the production store. The DDL files
in ``sql/`` are the source of truth: :func:`Store.create_schema` executes them, and
``tests/test_store.py`` checks that the tables declared here match what they create.

All times are UTC epoch milliseconds (``BIGINT``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from detectors.profile import category_label


metadata = sa.MetaData()

reference_profiles = sa.Table(
    "reference_profiles", metadata,
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("profile", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
)

reference_partials = sa.Table(
    "reference_partials", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

window_partials = sa.Table(
    "window_partials", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("window_start_ms", sa.BigInteger, nullable=False),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

windows = sa.Table(
    "windows", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("window_start_ms", sa.BigInteger, nullable=False),
    sa.Column("window_end_ms", sa.BigInteger, nullable=False),
    sa.Column("segment", sa.Integer, nullable=False),
    sa.Column("record_count", sa.BigInteger, nullable=False),
    sa.Column("close_reason", sa.Text, nullable=False),
    sa.Column("closed_at_ms", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("n_columns", sa.Integer, nullable=False),
    sa.Column("n_drifted", sa.Integer, nullable=False),
    sa.Column("drift_share", sa.Float, nullable=True),
    sa.Column("dataset_drifted", sa.Boolean, nullable=True),
    sa.Column("profile", sa.Text, nullable=False),
    sa.UniqueConstraint("model", "model_version", "window_start_ms", "segment"),
)

drift_results = sa.Table(
    "drift_results", metadata,
    sa.Column("window_id", sa.BigInteger, sa.ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("column_name", sa.Text, primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("statistic", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("drifted", sa.Boolean, nullable=True),
    sa.Column("psi", sa.Float, nullable=True),
    sa.Column("js_distance", sa.Float, nullable=True),
    sa.Column("wasserstein_normalised", sa.Float, nullable=True),
    sa.Column("n_reference", sa.BigInteger, nullable=False),
    sa.Column("n_current", sa.BigInteger, nullable=False),
    sa.Column("missing_share", sa.Float, nullable=True),
    sa.Column("p_value_adjusted", sa.Float, nullable=True),
    sa.Column("neg_log10_p", sa.Float, nullable=True),
    sa.Column("low_confidence", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("effect_size", sa.Float, nullable=True),
    sa.Column("effect_size_name", sa.Text, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("hellinger", sa.Float, nullable=True),
    sa.Column("total_variation", sa.Float, nullable=True),
    sa.Column("wasserstein", sa.Float, nullable=True),
    sa.Column("reference_missing_share", sa.Float, nullable=True),
    sa.Column("missing_p_value", sa.Float, nullable=True),
    sa.Column("missing_drifted", sa.Boolean, nullable=True),
)

window_samples = sa.Table(
    "window_samples", metadata,
    sa.Column("window_id", sa.BigInteger, sa.ForeignKey("windows.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("column_name", sa.Text, primary_key=True),
    sa.Column("n_values", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

consumer_offsets = sa.Table(
    "consumer_offsets", metadata,
    sa.Column("group_id", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

watermarks = sa.Table(
    "watermarks", metadata,
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, primary_key=True),
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("max_event_time_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

partition_states = sa.Table(
    "partition_states", metadata,
    sa.Column("topic", sa.Text, primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("caught_up", sa.Boolean, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

bentoml_schemas = sa.Table(
    "bentoml_schemas", metadata,
    sa.Column("monitor", sa.Text, primary_key=True),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

alert_instances = sa.Table(
    "alert_instances", metadata,
    sa.Column("fingerprint", sa.Text, primary_key=True),
    sa.Column("alertname", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("annotations", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("state_detail", sa.Text, nullable=False),
    sa.Column("last_window_id", sa.BigInteger, nullable=True),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

silences = sa.Table(
    "silences", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("starts_at_ms", sa.BigInteger, nullable=False),
    sa.Column("ends_at_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
    sa.Column("next_attempt_at_ms", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("lease_until_ms", sa.BigInteger, nullable=True),
    sa.Column("delivered_at_ms", sa.BigInteger, nullable=True),
    sa.Column("dead_at_ms", sa.BigInteger, nullable=True),
)


def now_ms() -> int:
    """Current UTC wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def frame_to_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise a columnar batch as an Arrow IPC stream (the partial-window payload)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def frame_from_bytes(payload: bytes) -> pd.DataFrame:
    """Inverse of :func:`frame_to_bytes`."""
    with pa.ipc.open_stream(io.BytesIO(payload)) as reader:
        return reader.read_all().to_pandas()


def frames_from_bytes(payloads: list[bytes]) -> pd.DataFrame:
    """The rows of several :func:`frame_to_bytes` payloads, in order, as one frame (empty, no
    columns, for none): what concatenating each payload's :func:`frame_from_bytes` gives.
    Payloads of one Arrow schema are joined before a single conversion to pandas."""
    tables = []
    for payload in payloads:
        with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
            tables.append(reader.read_all())
    if len(tables) > 1 and all(t.schema.equals(tables[0].schema, check_metadata=True) for t in tables[1:]):
        return pa.concat_tables(tables).to_pandas()
    return _concat([t.to_pandas() for t in tables])


def encode_sample(values: np.ndarray) -> bytes:
    """A ``window_samples`` payload: the values as float64 little-endian, zstd level 1 (through
    pyarrow; several times faster than zlib at a similar size, which matters because every
    closed window writes one per numeric column)."""
    return _ZSTD.compress(np.ascontiguousarray(values, dtype="<f8").tobytes(), asbytes=True)


def decode_sample(payload: bytes, n_values: int) -> np.ndarray:
    """Inverse of :func:`encode_sample`: ``n_values`` float64 values (native byte order).

    Raises:
        OSError: the payload is not zstd data of ``8 * n_values`` bytes (pyarrow's error).
    """
    raw = _ZSTD.decompress(payload, decompressed_size=8 * int(n_values), asbytes=True)
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


_ZSTD = pa.Codec("zstd", 1)


# any fixed 64-bit number: the key of the advisory lock the members of a group share
WINDOW_LOCK_KEY = 0x1F_77A7C4


def split_statements(sql_text: str) -> list[str]:
    """Split a DDL file into statements (our DDL has no semicolons inside literals)."""
    lines = [ln for ln in sql_text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


OUTBOX_STATES = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class OutboxRow:
    """One row of the outbox: an outgoing request and its delivery bookkeeping.

    Times are UTC epoch ms. ``state`` is ``delivered`` (``delivered_at_ms`` set), ``dead``
    (``dead_at_ms`` set: refused, expired or unknown target; ``last_error`` says which) or
    ``pending`` (waiting for ``next_attempt_at_ms``, or claimed by a worker until
    ``lease_until_ms``).
    """

    id: int
    idempotency_key: str
    target: str
    method: str
    path: str
    body: str
    content_type: str
    created_at_ms: int
    expires_at_ms: int | None
    next_attempt_at_ms: int
    attempts: int
    last_error: str | None
    lease_until_ms: int | None
    delivered_at_ms: int | None
    dead_at_ms: int | None

    @property
    def state(self) -> str:
        """``pending``, ``delivered`` or ``dead``."""
        if self.delivered_at_ms is not None:
            return "delivered"
        return "dead" if self.dead_at_ms is not None else "pending"

    @property
    def request(self):
        """The stored request as an ``alerting.events.OutgoingRequest``."""
        from alerting.events import OutgoingRequest

        return OutgoingRequest(self.target, self.method, self.path, self.body, self.idempotency_key,
                               self.expires_at_ms, self.content_type)


class Store:
    """Access to the inferwatch database.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///inferwatch.db`` or
            ``postgresql+psycopg://user:pass@host:5432/inferwatch``.

    Raises:
        sqlalchemy.exc.ArgumentError: the URL is malformed.
        ValueError: the dialect is neither SQLite nor PostgreSQL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        backend = sa.make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {backend!r}; use sqlite:///FILE or postgresql+psycopg://…")
        # a server that hangs instead of refusing must still fail (and be retried), not block
        connect_args = {"connect_timeout": 10} if backend == "postgresql" else {}
        engine = sa.create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        self.engine: Engine = engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Run ``sql/<dialect>.sql`` (idempotent: every statement is ``IF NOT EXISTS``).

        Raises:
            ValueError: a table exists without a column this version needs (a database
                created by an earlier version; there are no migrations yet).
        """
        inspector = sa.inspect(self.engine)
        existing = set(inspector.get_table_names())
        for table in metadata.sorted_tables:
            if table.name in existing:
                have = {c["name"] for c in inspector.get_columns(table.name)}
                missing = [c.name for c in table.columns if c.name not in have]
                if missing:
                    raise ValueError(f"table {table.name} has no column {', '.join(missing)}: the database was "
                                     "created by an earlier inferwatch version; point database_url at a new "
                                     "database (schema migrations are not supported yet)")
        ddl = resources.files("inferwatch").joinpath("sql", f"{self.dialect}.sql").read_text()
        with self.engine.begin() as conn:
            for stmt in split_statements(ddl):
                conn.exec_driver_sql(stmt)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One database transaction: committed on normal exit, rolled back on an exception.

        On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``), so two
        processes never both read and then fail to upgrade to writing."""
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn

    def lock_windows(self, conn: Connection) -> None:
        """Serialise the window bookkeeping of the members of a consumer group for the rest of
        this transaction: each member reads the shared state (open windows, watermarks,
        partition states), adds its rows and closes what is due without another member
        changing that state in between. PostgreSQL: a transaction-level advisory lock;
        SQLite: already held (the transaction began IMMEDIATE)."""
        if self.dialect == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WINDOW_LOCK_KEY})")

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # --- reference profiles -------------------------------------------------------------
    def put_reference(self, conn: Connection, model: str, model_version: str, source: str,
                      n_rows: int, profile: dict) -> None:
        """Insert or replace the reference profile of ``model``/``model_version``."""
        conn.execute(reference_profiles.delete().where(
            (reference_profiles.c.model == model) & (reference_profiles.c.model_version == model_version)))
        conn.execute(reference_profiles.insert().values(
            model=model, model_version=model_version, source=source, n_rows=n_rows,
            profile=json.dumps(profile), created_at_ms=now_ms()))

    def reference_stamp(self, conn: Connection, model: str, model_version: str) -> tuple[str, int] | None:
        """Which reference applies — ``(model_version_key, created_at_ms)`` of this version's
        profile, else of the model-wide ``'*'`` one — or None. Cheap: the profile is not read."""
        c = reference_profiles.c
        rows = dict(conn.execute(sa.select(c.model_version, c.created_at_ms).where(
            (c.model == model) & c.model_version.in_([model_version, "*"]))).all())
        for key in (model_version, "*"):
            if key in rows:
                return key, int(rows[key])
        return None

    def get_reference(self, conn: Connection, model: str, model_version: str) -> tuple[str, dict] | None:
        """The profile for this version, else the model-wide ``'*'`` one, else None.

        Returns ``(model_version_key, profile_dict)``.
        """
        stamp = self.reference_stamp(conn, model, model_version)
        if stamp is None:
            return None
        c = reference_profiles.c
        text = conn.execute(sa.select(c.profile).where((c.model == model) & (c.model_version == stamp[0]))).scalar()
        return stamp[0], json.loads(text)

    def add_reference_partial(self, conn: Connection, model: str, model_version: str, frame: pd.DataFrame) -> None:
        """Append rows towards a bootstrap reference (first N records of a model version)."""
        conn.execute(reference_partials.insert().values(
            model=model, model_version=model_version, n_rows=len(frame), payload=frame_to_bytes(frame)))

    def reference_partial_counts(self, conn: Connection) -> dict[tuple[str, str], int]:
        """Rows gathered so far per (model, version) for bootstrap references."""
        q = sa.select(reference_partials.c.model, reference_partials.c.model_version,
                      sa.func.sum(reference_partials.c.n_rows)).group_by(
            reference_partials.c.model, reference_partials.c.model_version)
        return {(m, v): int(n) for m, v, n in conn.execute(q)}

    def take_reference_partials(self, conn: Connection, model: str, model_version: str) -> pd.DataFrame:
        """Load and delete the bootstrap rows of ``model``/``model_version`` (in insertion order)."""
        where = (reference_partials.c.model == model) & (reference_partials.c.model_version == model_version)
        payloads = [r[0] for r in conn.execute(
            sa.select(reference_partials.c.payload).where(where).order_by(reference_partials.c.id))]
        conn.execute(reference_partials.delete().where(where))
        return _concat([frame_from_bytes(p) for p in payloads])

    # --- open windows -------------------------------------------------------------------
    def add_window_partial(self, conn: Connection, model: str, model_version: str, window_start_ms: int,
                           segment: int, frame: pd.DataFrame) -> None:
        """Append rows to an open window."""
        conn.execute(window_partials.insert().values(
            model=model, model_version=model_version, window_start_ms=window_start_ms, segment=segment,
            n_rows=len(frame), payload=frame_to_bytes(frame)))

    def open_windows(self, conn: Connection) -> dict[tuple[str, str, int, int], int]:
        """Row counts of every open window, keyed by (model, version, window_start_ms, segment)."""
        c = window_partials.c
        q = sa.select(c.model, c.model_version, c.window_start_ms, c.segment, sa.func.sum(c.n_rows)).group_by(
            c.model, c.model_version, c.window_start_ms, c.segment)
        return {(m, v, int(s), int(g)): int(n) for m, v, s, g, n in conn.execute(q)}

    def take_window_partials(self, conn: Connection, model: str, model_version: str, window_start_ms: int,
                             segment: int) -> pd.DataFrame:
        """Load and delete the rows of one open window."""
        c = window_partials.c
        where = ((c.model == model) & (c.model_version == model_version)
                 & (c.window_start_ms == window_start_ms) & (c.segment == segment))
        payloads = [r[0] for r in conn.execute(sa.select(c.payload).where(where).order_by(c.id))]
        conn.execute(window_partials.delete().where(where))
        return frames_from_bytes(payloads)

    # --- closed windows and drift results --------------------------------------------------
    def insert_window(self, conn: Connection, row: dict, results: Iterable[dict]) -> int:
        """Store a closed window and its per-column drift results; returns the window id."""
        window_id = conn.execute(windows.insert().values(**row).returning(windows.c.id)).scalar_one()
        rows = [{**r, "window_id": window_id} for r in results]
        if rows:
            conn.execute(drift_results.insert(), rows)
        return int(window_id)

    def put_window_samples(self, conn: Connection, window_id: int, samples: dict[str, np.ndarray]) -> int:
        """Store the raw values of a closed window's numeric columns (``{column: float64 array}``,
        each the column's finite values or a uniform sample of them) as ``window_samples`` rows,
        see :func:`encode_sample`; returns the payload bytes written. Columns already stored for
        the window are replaced."""
        rows = [{"window_id": window_id, "column_name": name, "n_values": len(values),
                 "payload": encode_sample(values)} for name, values in samples.items()]
        if rows:
            conn.execute(window_samples.delete().where(window_samples.c.window_id == window_id))
            conn.execute(window_samples.insert(), rows)
        return sum(len(r["payload"]) for r in rows)

    def get_window_samples(self, conn: Connection | None, window_id: int) -> dict[str, np.ndarray]:
        """The stored raw values of a closed window's numeric columns, ``{column: float64 array}``
        (in the order they were stored); empty when none are stored (purged, not kept, or a
        window without numeric columns). ``conn``: an open connection, or None for a new one."""
        q = sa.select(window_samples.c.column_name, window_samples.c.payload, window_samples.c.n_values).where(
            window_samples.c.window_id == window_id)

        def read(cx: Connection) -> dict[str, np.ndarray]:
            return {name: decode_sample(payload, n) for name, payload, n in cx.execute(q)}
        if conn is not None:
            return read(conn)
        with self.engine.connect() as cx:
            return read(cx)

    def purge_window_samples(self, before_ms: int) -> int:
        """Delete the stored samples of the closed windows that ended before ``before_ms`` (UTC
        epoch ms); returns how many ``window_samples`` rows were deleted."""
        ended = sa.select(windows.c.id).where(windows.c.window_end_ms < before_ms)
        with self.engine.begin() as conn:
            return int(conn.execute(window_samples.delete().where(window_samples.c.window_id.in_(ended))).rowcount)

    def closed_windows(self, conn: Connection) -> list[tuple[str, str, int, int, str]]:
        """(model, version, window_start_ms, segment, close_reason) of every closed window."""
        c = windows.c
        return [(m, v, int(s), int(g), r) for m, v, s, g, r in
                conn.execute(sa.select(c.model, c.model_version, c.window_start_ms, c.segment, c.close_reason))]

    def closed_window_id(self, conn: Connection, model: str, model_version: str, window_start_ms: int) -> int | None:
        """Id of the closed window of a model version starting at ``window_start_ms`` (its
        latest segment); None while it is open."""
        c = windows.c
        q = (sa.select(c.id).where(c.model == model, c.model_version == model_version,
                                   c.window_start_ms == window_start_ms).order_by(c.segment.desc()).limit(1))
        found = conn.execute(q).scalar()
        return None if found is None else int(found)

    def windows_starting_between(self, model: str, model_version: str | None, since_ms: int,
                                 until_ms: int) -> list[dict]:
        """Closed windows of ``model`` (and ``model_version`` when given) whose start is in
        ``[since_ms, until_ms)`` (UTC epoch ms): dicts of the ``windows`` columns without the
        profile, oldest first (version, start, segment)."""
        c = windows.c
        q = (sa.select(*[col for col in windows.c if col.name != "profile"])
             .where(c.model == model, c.window_start_ms >= since_ms, c.window_start_ms < until_ms)
             .order_by(c.window_start_ms, c.model_version, c.segment))
        if model_version is not None:
            q = q.where(c.model_version == model_version)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def models_with_windows(self) -> list[str]:
        """Names of the models that have closed windows, sorted."""
        with self.engine.connect() as conn:
            return sorted(conn.execute(sa.select(windows.c.model).distinct()).scalars())

    def window_with_results(self, conn: Connection, window_id: int) -> tuple[dict, list[dict]] | None:
        """One closed window with its profile (the ``windows`` row as a dict, ``profile`` as
        stored JSON text) and its ``drift_results`` rows (dicts without ``window_id``, by column
        name); None when there is no such window."""
        row = conn.execute(sa.select(windows).where(windows.c.id == window_id)).mappings().first()
        if row is None:
            return None
        cols = [c for c in drift_results.c if c.name != "window_id"]
        results = conn.execute(sa.select(*cols).where(drift_results.c.window_id == window_id)
                               .order_by(drift_results.c.column_name)).mappings().all()
        return dict(row), [dict(r) for r in results]

    def replace_window_drift(self, conn: Connection, window_id: int, values: dict, results: Iterable[dict]) -> None:
        """Replace a closed window's drift: its ``drift_results`` rows by ``results`` (dicts
        of their columns without ``window_id``) and the ``windows`` columns in ``values``
        (e.g. status, n_columns, n_drifted, drift_share, dataset_drifted, profile)."""
        conn.execute(drift_results.delete().where(drift_results.c.window_id == window_id))
        rows = [{**r, "window_id": window_id} for r in results]
        if rows:
            conn.execute(drift_results.insert(), rows)
        conn.execute(windows.update().where(windows.c.id == window_id).values(**values))

    def list_windows(self, model: str | None = None) -> pd.DataFrame:
        """Closed windows (without profiles), ordered by model and start time."""
        cols = [c for c in windows.c if c.name != "profile"]
        q = sa.select(*cols).order_by(windows.c.model, windows.c.model_version, windows.c.window_start_ms,
                                      windows.c.segment)
        if model is not None:
            q = q.where(windows.c.model == model)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in cols])

    def get_window(self, window_id: int) -> dict | None:
        """One closed window's row, ``profile`` included (JSON text, as stored), or None when
        no window has this id."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(windows).where(windows.c.id == window_id)).mappings().first()
        return None if row is None else dict(row)

    def list_drift_results(self, window_id: int) -> pd.DataFrame:
        """Per-column drift results of one closed window."""
        q = sa.select(drift_results).where(drift_results.c.window_id == window_id).order_by(
            drift_results.c.column_name)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in drift_results.c])

    def latest_windows(self, model: str, model_version: str | None = None, since_ms: int | None = None,
                       until_ms: int | None = None, limit: int | None = None) -> list[dict]:
        """Closed windows of ``model`` (dicts of the ``windows`` columns without the profile),
        newest first (start time, then segment, descending), at most ``limit``: of
        ``model_version`` when given, starting in ``[since_ms, until_ms)`` (UTC epoch ms) when
        given. Pages back from the newest, as :meth:`windows_starting_between` cannot."""
        c = windows.c
        q = sa.select(*[col for col in windows.c if col.name != "profile"]).order_by(
            c.window_start_ms.desc(), c.segment.desc(), c.id.desc())
        for column, value in ((c.model, model), (c.model_version, model_version)):
            if value is not None:
                q = q.where(column == value)
        if since_ms is not None:
            q = q.where(c.window_start_ms >= since_ms)
        if until_ms is not None:
            q = q.where(c.window_start_ms < until_ms)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def last_windows(self) -> dict[tuple[str, str], dict]:
        """The latest closed window (greatest start, then segment) of each (model, version), as
        :meth:`latest_windows` rows."""
        c = windows.c
        rank = sa.func.row_number().over(partition_by=(c.model, c.model_version),
                                         order_by=(c.window_start_ms.desc(), c.segment.desc(), c.id.desc()))
        inner = sa.select(*[col for col in windows.c if col.name != "profile"], rank.label("rank")).subquery()
        q = sa.select(*[col for col in inner.c if col.name != "rank"]).where(inner.c.rank == 1)
        with self.engine.connect() as conn:
            return {(r["model"], r["model_version"]): dict(r) for r in conn.execute(q).mappings()}

    def list_references(self) -> list[dict]:
        """Stored reference profiles without the profile itself (dicts with ``model``,
        ``model_version`` (``'*'``: every version), ``source``, ``n_rows``, ``created_at_ms``),
        ordered by model and version."""
        c = reference_profiles.c
        q = sa.select(c.model, c.model_version, c.source, c.n_rows, c.created_at_ms).order_by(c.model, c.model_version)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # --- consumer offsets and watermarks ------------------------------------------------
    def save_offsets(self, conn: Connection, group_id: str, offsets: dict[tuple[str, int], int]) -> None:
        """Upsert the next offset to read for each (topic, partition)."""
        for (topic, partition), next_offset in offsets.items():
            _upsert(conn, consumer_offsets,
                    {"group_id": group_id, "topic": topic, "partition": partition},
                    {"next_offset": next_offset})

    def load_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """Stored next offsets of a consumer group."""
        c = consumer_offsets.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.topic, c.partition, c.next_offset).where(c.group_id == group_id))
            return {(t, int(p)): int(o) for t, p, o in rows}

    def save_watermarks(self, conn: Connection, marks: dict[tuple[str, str, str, int], int],
                        arrived: dict[tuple[str, str], int] | None = None) -> None:
        """Upsert the highest event time seen per (model, version, topic, partition), with the
        wall-clock time a record of that model version last arrived (``arrived``; now if
        absent)."""
        arrived = arrived or {}
        for (model, version, topic, partition), ms in sorted(marks.items()):
            _upsert(conn, watermarks, {"model": model, "model_version": version, "topic": topic,
                                       "partition": partition},
                    {"max_event_time_ms": ms, "updated_at_ms": arrived.get((model, version), now_ms())})

    def tracked_models(self, conn: Connection) -> set[tuple[str, str]]:
        """(model, version) pairs the store holds windows, open rows or watermarks of."""
        out: set[tuple[str, str]] = set()
        for table in (watermarks, window_partials, windows):
            q = sa.select(table.c.model, table.c.model_version).distinct()
            out.update((m, v) for m, v in conn.execute(q))
        return out

    def partition_arrivals(self, conn: Connection) -> dict[tuple[str, int], int]:
        """Wall-clock time a record was last read per (topic, partition), over all models."""
        c = watermarks.c
        q = sa.select(c.topic, c.partition, sa.func.max(c.updated_at_ms)).group_by(c.topic, c.partition)
        return {(t, int(p)): int(ms) for t, p, ms in conn.execute(q)}

    def last_arrivals(self, conn: Connection) -> dict[tuple[str, str], int]:
        """Wall-clock time a record last arrived per (model, version), over all partitions."""
        c = watermarks.c
        q = sa.select(c.model, c.model_version, sa.func.max(c.updated_at_ms)).group_by(c.model, c.model_version)
        return {(m, v): int(ms) for m, v, ms in conn.execute(q)}

    def save_partition_states(self, conn: Connection, states: dict[tuple[str, int], bool]) -> None:
        """Upsert whether each (topic, partition) read by this member has caught up with its end."""
        now = now_ms()
        for (topic, partition), caught_up in sorted(states.items()):
            _upsert(conn, partition_states, {"topic": topic, "partition": partition},
                    {"caught_up": bool(caught_up), "updated_at_ms": now})

    def save_bentoml_schemas(self, conn: Connection, schemas: dict[str, str]) -> None:
        """Upsert the BentoML schema (column roles as JSON text) per monitor key."""
        now = now_ms()
        for monitor, roles in sorted(schemas.items()):
            _upsert(conn, bentoml_schemas, {"monitor": monitor}, {"roles": roles, "updated_at_ms": now})

    def load_bentoml_schemas(self, conn: Connection) -> list[tuple[str, str]]:
        """Every stored ``(monitor key, schema JSON)``, least recently written first."""
        c = bentoml_schemas.c
        q = sa.select(c.monitor, c.roles).order_by(c.updated_at_ms, c.monitor)
        return [(m, r) for m, r in conn.execute(q)]

    def load_partition_states(self, conn: Connection) -> dict[tuple[str, int], bool]:
        """Whether each (topic, partition) has caught up with its end, as last reported."""
        c = partition_states.c
        return {(t, int(p)): bool(u) for t, p, u in conn.execute(sa.select(c.topic, c.partition, c.caught_up))}

    def closed_windows_between(self, conn: Connection, spans: dict[tuple[str, str], tuple[int, int]]
                               ) -> list[tuple[str, str, int, int, str]]:
        """Closed windows (model, version, start, segment, close_reason) of each model version
        whose start lies in its inclusive span."""
        c = windows.c
        out = []
        for (model, version), (lo, hi) in spans.items():
            q = sa.select(c.model, c.model_version, c.window_start_ms, c.segment, c.close_reason).where(
                (c.model == model) & (c.model_version == version) & (c.window_start_ms >= lo)
                & (c.window_start_ms <= hi))
            out.extend((m, v, int(s), int(g), r) for m, v, s, g, r in conn.execute(q))
        return out

    def next_free_segment(self, conn: Connection, model: str, model_version: str, window_start_ms: int,
                          segment: int) -> int:
        """``segment`` if no closed window has that key yet, else one past the highest stored."""
        c = windows.c
        top = conn.execute(sa.select(sa.func.max(c.segment)).where(
            (c.model == model) & (c.model_version == model_version) & (c.window_start_ms == window_start_ms))
        ).scalar()
        return segment if top is None or top < segment else int(top) + 1

    def load_watermark_state(self, conn: Connection) -> tuple[dict[tuple[str, str, str, int], int],
                                                               dict[tuple[str, str], int],
                                                               dict[tuple[str, int], int]]:
        """:meth:`load_watermarks`, :meth:`last_arrivals` and :meth:`partition_arrivals` from
        one read of the watermarks table."""
        c = watermarks.c
        marks: dict[tuple[str, str, str, int], int] = {}
        last: dict[tuple[str, str], int] = {}
        arrivals: dict[tuple[str, int], int] = {}
        q = sa.select(c.model, c.model_version, c.topic, c.partition, c.max_event_time_ms, c.updated_at_ms)
        for m, v, t, p, ms, at in conn.execute(q):
            p, at = int(p), int(at)
            marks[(m, v, t, p)] = int(ms)
            if last.get((m, v), at) <= at:
                last[(m, v)] = at
            if arrivals.get((t, p), at) <= at:
                arrivals[(t, p)] = at
        return marks, last, arrivals

    def load_watermarks(self, conn: Connection) -> dict[tuple[str, str, str, int], int]:
        """Highest event time seen per (model, version, topic, partition)."""
        c = watermarks.c
        q = sa.select(c.model, c.model_version, c.topic, c.partition, c.max_event_time_ms)
        return {(m, v, t, int(p)): int(ms) for m, v, t, p, ms in conn.execute(q)}

    # --- alerts and outbox --------------------------------------------------------------
    def load_alert_instances(self, conn: Connection, fingerprints: list[str]) -> dict[str, dict]:
        """Stored alert instances by fingerprint (absent ones are left out). Each is a dict with
        ``labels``, ``annotations`` (dicts) and ``state`` (the
        :meth:`alerting.lifecycle.InstanceState.to_dict` form)."""
        c = alert_instances.c
        out: dict[str, dict] = {}
        for i in range(0, len(fingerprints), 500):  # stay under SQL parameter limits
            q = sa.select(c.fingerprint, c.labels, c.annotations, c.state_detail).where(
                c.fingerprint.in_(fingerprints[i:i + 500]))
            for fp, labels, notes, detail in conn.execute(q):
                out[fp] = {"labels": json.loads(labels), "annotations": json.loads(notes), "state": json.loads(detail)}
        return out

    def save_alert_instance(self, conn: Connection, fingerprint: str, labels: dict[str, str],
                            annotations: dict[str, str], state: dict, window_id: int | None, now: int) -> None:
        """Upsert an alert instance's state (``state``: the ``InstanceState.to_dict`` form), in
        the caller's transaction."""
        _upsert(conn, alert_instances, {"fingerprint": fingerprint},
                {"alertname": labels["alertname"], "model": labels["model"], "model_version": labels["model_version"],
                 "labels": json.dumps(labels, sort_keys=True), "annotations": json.dumps(annotations),
                 "state": state["state"], "state_detail": json.dumps(state), "last_window_id": window_id,
                 "updated_at_ms": now})

    def alert_instances_in(self, conn: Connection | None, states: tuple[str, ...]) -> list[dict]:
        """Alert instances whose state is one of ``states`` (dicts with ``fingerprint``,
        ``labels``, ``annotations``, ``state``), ordered by model, alertname and fingerprint."""
        c = alert_instances.c
        q = sa.select(c.fingerprint, c.labels, c.annotations, c.state_detail).where(c.state.in_(states)).order_by(
            c.model, c.alertname, c.fingerprint)

        def rows(cx: Connection) -> list[dict]:
            return [{"fingerprint": fp, "labels": json.loads(lb), "annotations": json.loads(an),
                     "state": json.loads(st)} for fp, lb, an, st in cx.execute(q)]
        if conn is not None:
            return rows(conn)
        with self.engine.connect() as cx:
            return rows(cx)

    def add_silence(self, matchers: list[str], starts_at_ms: int, ends_at_ms: int, created_by: str,
                    comment: str) -> int:
        """Store a silence (``matchers``: Alertmanager-style matcher strings); returns its id."""
        with self.engine.begin() as conn:
            return int(conn.execute(silences.insert().values(
                matchers=json.dumps(matchers), starts_at_ms=starts_at_ms, ends_at_ms=ends_at_ms,
                created_by=created_by, comment=comment, created_at_ms=now_ms())).inserted_primary_key[0])

    def list_silences(self, conn: Connection | None = None, active_at_ms: int | None = None) -> list[dict]:
        """Silences (dicts with ``id``, ``matchers`` (list of str), ``starts_at_ms``,
        ``ends_at_ms``, ``created_by``, ``comment``), newest first; only those not ended by
        ``active_at_ms`` when given."""
        c = silences.c
        q = sa.select(silences).order_by(c.id.desc())
        if active_at_ms is not None:
            q = q.where(c.ends_at_ms > active_at_ms)

        def rows(cx: Connection) -> list[dict]:
            return [{**dict(r), "matchers": json.loads(r["matchers"])} for r in cx.execute(q).mappings()]
        if conn is not None:
            return rows(conn)
        with self.engine.connect() as cx:
            return rows(cx)

    def expire_silence(self, silence_id: int, at_ms: int) -> bool:
        """End a silence at ``at_ms`` (if it would end later); False when no such silence."""
        c = silences.c
        with self.engine.begin() as conn:
            if conn.execute(sa.select(c.id).where(c.id == silence_id)).first() is None:
                return False
            conn.execute(silences.update().where((c.id == silence_id) & (c.ends_at_ms > at_ms)).values(
                ends_at_ms=at_ms))
            return True
    # --- outbox (alerting.outbox) ---------------------------------------------------------
    def enqueue(self, conn: Connection, req, now_ms: int) -> bool:
        """Add an ``alerting.events.OutgoingRequest`` to the outbox inside the caller's
        transaction, due at once. Returns False (and changes nothing) when a row with its
        idempotency key exists, even one another process is inserting concurrently."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(outbox).values(
            idempotency_key=req.idempotency_key, target=req.target, method=req.method, path=req.path,
            body=req.body, content_type=req.content_type, created_at_ms=now_ms, expires_at_ms=req.expires_at_ms,
            next_attempt_at_ms=now_ms, attempts=0).on_conflict_do_nothing(index_elements=["idempotency_key"])
        return conn.execute(stmt.returning(outbox.c.id)).first() is not None

    def claim_due(self, now_ms: int, lease_ms: int, limit: int) -> list[OutboxRow]:
        """Claim up to ``limit`` due rows for ``lease_ms``, oldest first, in one transaction.

        A row is due when it is pending, its ``next_attempt_at_ms`` has come, no live lease
        holds it, and no older pending row of the same target exists (per-target order: at
        most one row per target is claimed at a time). Claimed rows are leased until
        ``now_ms + lease_ms``: on PostgreSQL the selection locks them (``FOR UPDATE SKIP
        LOCKED``), on SQLite the transaction holds the write lock, so two workers never claim
        one row."""
        o = outbox.alias("o")
        older = outbox.alias("older")
        blocked = sa.exists().where(
            (older.c.target == o.c.target) & (older.c.id < o.c.id)
            & older.c.delivered_at_ms.is_(None) & older.c.dead_at_ms.is_(None))
        q = sa.select(o.c.id).where(
            o.c.delivered_at_ms.is_(None), o.c.dead_at_ms.is_(None), o.c.next_attempt_at_ms <= now_ms,
            sa.or_(o.c.lease_until_ms.is_(None), o.c.lease_until_ms <= now_ms), ~blocked,
        ).order_by(o.c.id).limit(limit)
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True, of=o)
        with self.transaction() as conn:
            ids = [int(r[0]) for r in conn.execute(q)]
            if not ids:
                return []
            conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(lease_until_ms=now_ms + lease_ms))
            rows = conn.execute(sa.select(outbox).where(outbox.c.id.in_(ids)).order_by(outbox.c.id)).all()
        return [OutboxRow(*r) for r in rows]

    def _update_outbox(self, row_id: int, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == row_id).values(**values))

    def mark_delivered(self, row_id: int, now_ms: int) -> None:
        """Record the accepted attempt of row ``row_id``."""
        c = outbox.c
        self._update_outbox(row_id, delivered_at_ms=now_ms, attempts=c.attempts + 1, lease_until_ms=None)

    def mark_retry(self, row_id: int, next_at_ms: int, error: str) -> None:
        """Record a failed attempt; the row is due again at ``next_at_ms``."""
        c = outbox.c
        self._update_outbox(row_id, next_attempt_at_ms=next_at_ms, attempts=c.attempts + 1,
                            last_error=error[:1000], lease_until_ms=None)

    def mark_dead(self, row_id: int, now_ms: int, error: str, attempted: bool = True) -> None:
        """Give row ``row_id`` up (never sent again unless revived); ``attempted``: a request
        was sent for it (counted in ``attempts``)."""
        c = outbox.c
        self._update_outbox(row_id, dead_at_ms=now_ms, last_error=error[:1000], lease_until_ms=None,
                            attempts=c.attempts + 1 if attempted else c.attempts)

    def revive(self, idempotency_key: str, now_ms: int | None = None, expires_at_ms: int | None = None) -> bool:
        """Make a dead row pending again, due at once with a fresh backoff and the expiry
        ``expires_at_ms`` (None: never). Returns False when no dead row has that key."""
        c = outbox.c
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self.engine.begin() as conn:
            return conn.execute(outbox.update().where(
                (c.idempotency_key == idempotency_key) & c.dead_at_ms.is_not(None) & c.delivered_at_ms.is_(None)
            ).values(dead_at_ms=None, next_attempt_at_ms=now, attempts=0, expires_at_ms=expires_at_ms,
                     lease_until_ms=None)).rowcount == 1

    def list_outbox(self, state: str | None = None, limit: int = 100) -> list[OutboxRow]:
        """Outbox rows, newest first; ``state``: ``pending``, ``delivered``, ``dead`` or None
        (all).

        Raises:
            ValueError: an unknown state.
        """
        c = outbox.c
        q = sa.select(outbox).order_by(c.id.desc()).limit(limit)
        if state == "pending":
            q = q.where(c.delivered_at_ms.is_(None), c.dead_at_ms.is_(None))
        elif state == "delivered":
            q = q.where(c.delivered_at_ms.is_not(None))
        elif state == "dead":
            q = q.where(c.dead_at_ms.is_not(None), c.delivered_at_ms.is_(None))
        elif state is not None:
            raise ValueError(f"unknown outbox state {state!r}; use one of {', '.join(OUTBOX_STATES)}")
        with self.engine.connect() as conn:
            return [OutboxRow(*r) for r in conn.execute(q)]

    def purge_outbox(self, before_ms: int) -> int:
        """Delete delivered and dead outbox rows that ended before ``before_ms``; returns how
        many were deleted."""
        c = outbox.c
        with self.engine.begin() as conn:
            return int(conn.execute(outbox.delete().where(
                (c.delivered_at_ms < before_ms) | (c.dead_at_ms < before_ms))).rowcount)

    def outbox_counts(self) -> dict[str, int]:
        """Rows per state: ``{"pending": n, "delivered": n, "dead": n}``."""
        c = outbox.c
        state = sa.case((c.delivered_at_ms.is_not(None), "delivered"), (c.dead_at_ms.is_not(None), "dead"),
                        else_="pending")
        counts = dict.fromkeys(OUTBOX_STATES, 0)
        with self.engine.connect() as conn:
            for name, n in conn.execute(sa.select(state, sa.func.count()).group_by(state)):
                counts[name] = int(n)
        return counts

    # --- request-response and label joins (collector.join) ------------------------------
    def save_join_changes(self, conn: Connection, join_name: str, changes) -> None:
        """Store the changes of a request–response join (``collector.join.JoinChanges``).

        Inserts ``changes.added`` and ``changes.added_finished`` (one row each), lists ``changes.removed`` sequence
        numbers, and sets the clock and next sequence number. Once at least half of the stored
        entries are listed as removed, the live ones are rewritten as one batch, so storage
        stays within twice the live state and each entry is rewritten O(1) times on average.
        Call it in the transaction that stores the batch's window rows and offsets.
        """
        for added in (changes.added, changes.added_finished):
            if len(added):
                conn.execute(join_entries.insert().values(
                    join_name=join_name, n_rows=len(added), payload=frame_to_bytes(_arrow_safe(added))))
        if len(changes.removed):
            conn.execute(join_removed.insert(), [{"join_name": join_name, "seq": int(s)} for s in changes.removed])
        _upsert(conn, join_clocks, {"join_name": join_name},
                {"clock_ms": changes.clock_ms, "next_seq": int(changes.next_seq)})
        stored = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(join_entries.c.n_rows), 0)).where(
            join_entries.c.join_name == join_name)).scalar_one()
        removed = conn.execute(sa.select(sa.func.count()).select_from(join_removed).where(
            join_removed.c.join_name == join_name)).scalar_one()
        if removed and 2 * int(removed) >= int(stored):
            live = self._join_entries(conn, join_name)
            conn.execute(join_entries.delete().where(join_entries.c.join_name == join_name))
            conn.execute(join_removed.delete().where(join_removed.c.join_name == join_name))
            if len(live):
                conn.execute(join_entries.insert().values(
                    join_name=join_name, n_rows=len(live), payload=frame_to_bytes(_arrow_safe(live))))

    def load_join_state(self, conn: Connection, join_name: str) -> tuple[pd.DataFrame, int | None, int]:
        """``(entries, clock_ms, next_seq)`` of a request–response join, for
        ``RequestResponseJoin.restore``; an empty frame, None and 0 when nothing is stored."""
        row = conn.execute(sa.select(join_clocks.c.clock_ms, join_clocks.c.next_seq).where(
            join_clocks.c.join_name == join_name)).first()
        if row is None:
            return pd.DataFrame(), None, 0
        clock = None if row[0] is None else int(row[0])
        return self._join_entries(conn, join_name), clock, int(row[1])

    def _join_entries(self, conn: Connection, join_name: str) -> pd.DataFrame:
        c = join_entries.c
        payloads = [r[0] for r in conn.execute(
            sa.select(c.payload).where(c.join_name == join_name).order_by(c.id))]
        frame = _concat([frame_from_bytes(p) for p in payloads])
        if len(frame) == 0:
            return frame
        gone = [int(s) for (s,) in conn.execute(sa.select(join_removed.c.seq).where(
            join_removed.c.join_name == join_name))]
        return frame[~frame["join_seq"].isin(gone)].reset_index(drop=True)

    def label_state(self, conn: Connection, join_name: str) -> StoreLabelState:
        """The waiting predictions and labels of label join ``join_name`` in this transaction,
        as a ``collector.join.LabelState``."""
        return StoreLabelState(conn, join_name)

    # --- realized performance ----------------------------------------------------------
    def merge_window_performance(self, conn: Connection, model: str, model_version: str, window_start_ms: int,
                                 summary) -> Any:
        """Merge a performance summary (``detectors.performance``) into the stored one of a
        window; returns the merged summary."""
        from detectors.performance import REGRESSION_FORMAT, ClassificationSummary, RegressionSummary

        c = window_performance.c
        key = (c.model == model) & (c.model_version == model_version) & (c.window_start_ms == window_start_ms)
        text = conn.execute(sa.select(c.summary).where(key)).scalar()
        if text is not None:
            data = json.loads(text)
            kind = RegressionSummary if data.get("format") == REGRESSION_FORMAT else ClassificationSummary
            try:
                summary = kind.from_dict(data).merge(summary)
            except (ValueError, TypeError):  # the model's task or labels changed: the new one wins
                pass
        _upsert(conn, window_performance, {"model": model, "model_version": model_version,
                                           "window_start_ms": window_start_ms},
                {"n_rows": summary.n_rows, "n_labelled": summary.n_labelled,
                 "summary": json.dumps(summary.to_dict()), "updated_at_ms": now_ms()})
        return summary

    def list_window_performance(self, model: str | None = None) -> pd.DataFrame:
        """Realized performance per window: model, version, start, rows, labelled rows and the
        metrics of the summary as columns."""
        from detectors.performance import REGRESSION_FORMAT, ClassificationSummary, RegressionSummary

        c = window_performance.c
        q = sa.select(c.model, c.model_version, c.window_start_ms, c.n_rows, c.n_labelled, c.summary).order_by(
            c.model, c.model_version, c.window_start_ms)
        if model is not None:
            q = q.where(c.model == model)
        rows = []
        with self.engine.connect() as conn:
            for m, v, start, n, n_lab, text in conn.execute(q):
                data = json.loads(text)
                kind = RegressionSummary if data.get("format") == REGRESSION_FORMAT else ClassificationSummary
                rows.append({"model": m, "model_version": v, "window_start_ms": int(start), "n_rows": int(n),
                             "n_labelled": int(n_lab), **kind.from_dict(data).metrics().values()})
        return pd.DataFrame(rows)

    # --- retraining hook calls (alerting.retrain) ------------------------------------------
    def last_hook_call(self, conn: Connection, hook: str, model: str, model_version: str | None = None
                       ) -> int | None:
        """When the retraining hook ``hook`` was last called for ``model_version`` of ``model``
        (UTC epoch ms), or, with ``model_version`` None, for any version of ``model`` (the
        latest; the cooldown of :mod:`alerting.retrain` keys on the model); None if never."""
        c = hook_calls.c
        where = (c.hook == hook) & (c.model == model)
        if model_version is not None:
            where = where & (c.model_version == model_version)
        found = conn.execute(sa.select(sa.func.max(c.last_called_ms)).where(where)).scalar()
        return None if found is None else int(found)

    def record_hook_call(self, conn: Connection, hook: str, model: str, model_version: str, now_ms: int,
                         idempotency_key: str) -> None:
        """Record that ``hook`` was called for ``model``/``model_version`` at ``now_ms`` with
        ``idempotency_key``, in the caller's transaction (the one that enqueues the request)."""
        _upsert(conn, hook_calls, {"hook": hook, "model": model, "model_version": model_version},
                {"last_called_ms": now_ms, "last_idempotency_key": idempotency_key})


def _upsert(conn: Connection, table: sa.Table, key: dict, values: dict) -> None:
    """Portable upsert: UPDATE, then INSERT if nothing matched (we hold the only writer per key)."""
    where = sa.and_(*[table.c[k] == v for k, v in key.items()])
    if conn.execute(table.update().where(where).values(**values)).rowcount == 0:
        conn.execute(table.insert().values(**key, **values))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the metrics/CLI readers run while the collector writes; foreign keys are off by default.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # in WAL mode NORMAL syncs at checkpoints, not at every commit: a killed process loses
    # nothing committed, a power cut may lose the last transactions, which the stored offsets
    # then read again from Kafka (the data and its offsets roll back together)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


# --- request-response and label joins (collector.join) ----------------------------------

join_entries = sa.Table(
    "join_entries", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("join_name", sa.Text, nullable=False),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

join_removed = sa.Table(
    "join_removed", metadata,
    sa.Column("join_name", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
)

join_clocks = sa.Table(
    "join_clocks", metadata,
    sa.Column("join_name", sa.Text, primary_key=True),
    sa.Column("clock_ms", sa.BigInteger, nullable=True),
    sa.Column("next_seq", sa.BigInteger, nullable=False),
)

label_waiting_predictions = sa.Table(
    "label_waiting_predictions", metadata,
    sa.Column("join_name", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("event_time_ms", sa.BigInteger, nullable=False),
    sa.Column("predictions", sa.Text, nullable=False),
)

label_waiting_labels = sa.Table(
    "label_waiting_labels", metadata,
    sa.Column("join_name", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("event_time_ms", sa.BigInteger, nullable=False),
)

window_performance = sa.Table(
    "window_performance", metadata,
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, primary_key=True),
    sa.Column("window_start_ms", sa.BigInteger, primary_key=True),
    sa.Column("n_rows", sa.BigInteger, nullable=False),
    sa.Column("n_labelled", sa.BigInteger, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

# --- retraining hook calls (alerting.retrain) --------------------------------------------

hook_calls = sa.Table(
    "hook_calls", metadata,
    sa.Column("hook", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, primary_key=True),
    sa.Column("last_called_ms", sa.BigInteger, nullable=False),
    sa.Column("last_idempotency_key", sa.Text, nullable=False),
)

_IDS_PER_QUERY = 500  # request ids per IN (...) lookup; far below every driver's parameter limit


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A text column that also holds numbers (rows of batches typed differently) as text
    labels throughout, the decoders' rule for a mixed column; Arrow needs one type per column."""
    out = frame
    for name in frame.columns:
        col = frame[name]
        if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("mixed", "mixed-integer"):
            if out is frame:
                out = frame.copy()
            out[name] = [v if v is None or isinstance(v, str) else None if pd.isna(v) else category_label(v)
                         for v in col.to_numpy(dtype=object)]
    return out


class StoreLabelState:
    """``collector.join.LabelState`` over the database, within one transaction.

    Waiting predictions are rows of ``label_waiting_predictions`` (their ``predictions.*``
    columns as one JSON object per row), waiting labels rows of ``label_waiting_labels``, the
    clock a row of ``join_clocks``; all keyed by the join's name. Lookups go by request id
    (primary-key prefix); purges by event time (index).
    """

    def __init__(self, conn: Connection, join_name: str) -> None:
        self.conn = conn
        self.join_name = join_name

    @property
    def clock_ms(self) -> int | None:
        """The stored clock of this label join, or None."""
        v = self.conn.execute(sa.select(join_clocks.c.clock_ms).where(
            join_clocks.c.join_name == self.join_name)).scalar()
        return None if v is None else int(v)

    def find(self, request_ids) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(waiting predictions, waiting labels) whose request id is in ``request_ids``."""
        p, lab = label_waiting_predictions.c, label_waiting_labels.c
        ids = [str(i) for i in request_ids]
        preds, labels = [], []
        for i in range(0, len(ids), _IDS_PER_QUERY):
            part = ids[i:i + _IDS_PER_QUERY]
            preds.extend(self.conn.execute(
                sa.select(p.model, p.model_version, p.event_time_ms, p.request_id, p.predictions)
                .where(p.join_name == self.join_name, p.request_id.in_(part))).all())
            labels.extend(self.conn.execute(
                sa.select(lab.model, lab.request_id, lab.label, lab.event_time_ms)
                .where(lab.join_name == self.join_name, lab.request_id.in_(part))).all())
        return _prediction_rows(preds), pd.DataFrame(
            labels, columns=["model", "request_id", "label", "event_time_ms"]).astype(
            {"model": object, "request_id": object, "label": object, "event_time_ms": np.int64})

    def apply(self, changes) -> tuple[pd.DataFrame, int]:
        """Apply ``collector.join.LabelChanges``: delete, insert, set the clock, purge.
        Returns the purged predictions and the number of purged labels."""
        name, conn = self.join_name, self.conn
        for table, keys in ((label_waiting_predictions, changes.delete_predictions),
                            (label_waiting_labels, changes.delete_labels)):
            if len(keys):
                c = table.c
                conn.execute(table.delete().where(
                    c.join_name == sa.bindparam("n"), c.request_id == sa.bindparam("r"), c.model == sa.bindparam("m")),
                    [{"n": name, "r": r, "m": m} for m, r in zip(keys["model"], keys["request_id"])])
        ins = changes.insert_predictions
        if len(ins):
            cols = [c for c in ins.columns if c.startswith("predictions.")]
            values = ins[cols].to_numpy(dtype=object).tolist()
            conn.execute(label_waiting_predictions.insert(), [
                {"join_name": name, "request_id": r, "model": m, "model_version": v, "event_time_ms": int(t),
                 "predictions": orjson.dumps(dict(zip(cols, row))).decode()}
                for r, m, v, t, row in zip(ins["request_id"], ins["model"], ins["model_version"],
                                           ins["event_time_ms"], values)])
        ins = changes.insert_labels
        if len(ins):
            conn.execute(label_waiting_labels.insert(), [
                {"join_name": name, "request_id": r, "model": m, "label": lab, "event_time_ms": int(t)}
                for r, m, lab, t in zip(ins["request_id"], ins["model"], ins["label"], ins["event_time_ms"])])
        _upsert(conn, join_clocks, {"join_name": name}, {"clock_ms": changes.clock_ms, "next_seq": 0})
        purged = pd.DataFrame()
        n_labels = 0
        if changes.purge_predictions_before_ms is not None:
            p = label_waiting_predictions.c
            where = (p.join_name == name) & (p.event_time_ms < int(changes.purge_predictions_before_ms))
            purged = _prediction_rows(conn.execute(
                sa.select(p.model, p.model_version, p.event_time_ms, p.request_id, p.predictions).where(where)
                .order_by(p.event_time_ms, p.model, p.request_id)).all())
            conn.execute(label_waiting_predictions.delete().where(where))
        if changes.purge_labels_before_ms is not None:
            lab = label_waiting_labels.c
            n_labels = conn.execute(label_waiting_labels.delete().where(
                (lab.join_name == name) & (lab.event_time_ms < int(changes.purge_labels_before_ms)))).rowcount
        return purged, int(n_labels)


def _prediction_rows(rows) -> pd.DataFrame:
    """Waiting-prediction rows (model, version, time, id, JSON) as a frame with predictions.* columns."""
    base = pd.DataFrame([r[:4] for r in rows], columns=["model", "model_version", "event_time_ms", "request_id"])
    base = base.astype({"model": object, "model_version": object, "event_time_ms": np.int64, "request_id": object})
    if not rows:
        return base
    preds = pd.DataFrame.from_records([orjson.loads(r[4]) for r in rows])
    return pd.concat([base, preds], axis=1)
