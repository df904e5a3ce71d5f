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

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


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

alert_states = sa.Table(
    "alert_states", metadata,
    sa.Column("alert_name", sa.Text, primary_key=True),
    sa.Column("model", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("since_ms", sa.BigInteger, nullable=False),
    sa.Column("last_window_id", sa.BigInteger, nullable=True),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.Text, nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
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


# any fixed 64-bit number: the key of the advisory lock the members of a group share
WINDOW_LOCK_KEY = 0x1F_77A7C4


def split_statements(sql_text: str) -> list[str]:
    """Split a DDL file into statements (our DDL has no semicolons inside literals)."""
    lines = [ln for ln in sql_text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@dataclass(frozen=True)
class OutboxMessage:
    """A pending outgoing notification: POST ``body`` (JSON text) to ``url``."""

    id: int
    idempotency_key: str
    url: str
    body: str
    attempts: int


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
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        self.engine: Engine = engine

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def create_schema(self) -> None:
        """Run ``sql/<dialect>.sql`` (idempotent: every statement is ``IF NOT EXISTS``)."""
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
        return _concat([frame_from_bytes(p) for p in payloads])

    # --- closed windows and drift results --------------------------------------------------
    def insert_window(self, conn: Connection, row: dict, results: Iterable[dict]) -> int:
        """Store a closed window and its per-column drift results; returns the window id."""
        window_id = conn.execute(windows.insert().values(**row).returning(windows.c.id)).scalar_one()
        rows = [{**r, "window_id": window_id} for r in results]
        if rows:
            conn.execute(drift_results.insert(), rows)
        return int(window_id)

    def closed_windows(self, conn: Connection) -> list[tuple[str, str, int, int, str]]:
        """(model, version, window_start_ms, segment, close_reason) of every closed window."""
        c = windows.c
        return [(m, v, int(s), int(g), r) for m, v, s, g, r in
                conn.execute(sa.select(c.model, c.model_version, c.window_start_ms, c.segment, c.close_reason))]

    def list_windows(self, model: str | None = None) -> pd.DataFrame:
        """Closed windows (without profiles), ordered by model and start time."""
        cols = [c for c in windows.c if c.name != "profile"]
        q = sa.select(*cols).order_by(windows.c.model, windows.c.model_version, windows.c.window_start_ms,
                                      windows.c.segment)
        if model is not None:
            q = q.where(windows.c.model == model)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in cols])

    def recent_verdicts(self, conn: Connection, model: str, model_version: str, n: int) -> list[bool]:
        """Dataset verdicts of the last ``n`` closed windows of a model version that have one,
        oldest first (windows with insufficient data are skipped)."""
        c = windows.c
        q = (sa.select(c.dataset_drifted)
             .where(c.model == model, c.model_version == model_version, c.dataset_drifted.is_not(None))
             .order_by(c.window_start_ms.desc(), c.segment.desc()).limit(n))
        return [bool(v) for (v,) in conn.execute(q)][::-1]

    def list_drift_results(self, window_id: int) -> pd.DataFrame:
        """Per-column drift results of one closed window."""
        q = sa.select(drift_results).where(drift_results.c.window_id == window_id).order_by(
            drift_results.c.column_name)
        with self.engine.connect() as conn:
            return pd.DataFrame(conn.execute(q).mappings().all(), columns=[c.name for c in drift_results.c])

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

    def load_watermarks(self, conn: Connection) -> dict[tuple[str, str, str, int], int]:
        """Highest event time seen per (model, version, topic, partition)."""
        c = watermarks.c
        q = sa.select(c.model, c.model_version, c.topic, c.partition, c.max_event_time_ms)
        return {(m, v, t, int(p)): int(ms) for m, v, t, p, ms in conn.execute(q)}

    # --- alerts and outbox --------------------------------------------------------------
    def get_alert_state(self, conn: Connection, alert_name: str, model: str, model_version: str
                        ) -> tuple[str, int] | None:
        """``(state, since_ms)``: ``"firing"`` since it started or ``"resolved"`` since the start
        of the firing it ended; None when the alert never fired."""
        c = alert_states.c
        row = conn.execute(sa.select(c.state, c.since_ms).where(
            (c.alert_name == alert_name) & (c.model == model) & (c.model_version == model_version)))
        found = row.first()
        return None if found is None else (found[0], int(found[1]))

    def set_alert_state(self, conn: Connection, alert_name: str, model: str, model_version: str, state: str,
                        since_ms: int, window_id: int) -> None:
        """Record a state transition of an alert, caused by window ``window_id``."""
        _upsert(conn, alert_states, {"alert_name": alert_name, "model": model, "model_version": model_version},
                {"state": state, "since_ms": since_ms, "last_window_id": window_id})

    def enqueue(self, conn: Connection, idempotency_key: str, url: str, body: dict) -> None:
        """Add an outgoing message to the outbox (ignored if the key is already there)."""
        exists = conn.execute(sa.select(outbox.c.id).where(outbox.c.idempotency_key == idempotency_key)).first()
        if exists is None:
            conn.execute(outbox.insert().values(idempotency_key=idempotency_key, url=url, body=json.dumps(body),
                                                created_at_ms=now_ms(), attempts=0))

    def pending_outbox(self, limit: int = 100) -> list[OutboxMessage]:
        """Outbox messages neither delivered nor given up, oldest first."""
        c = outbox.c
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(c.id, c.idempotency_key, c.url, c.body, c.attempts).where(
                c.delivered_at_ms.is_(None) & c.dead_at_ms.is_(None)).order_by(c.id).limit(limit))
            return [OutboxMessage(*r) for r in rows]

    def mark_outbox(self, message_id: int, delivered: bool, error: str | None = None, dead: bool = False) -> None:
        """Record a delivery attempt; ``dead`` gives the message up (never retried)."""
        c = outbox.c
        values: dict = {"attempts": c.attempts + 1, "last_error": error}
        if delivered:
            values["delivered_at_ms"] = now_ms()
        if dead:
            values["dead_at_ms"] = now_ms()
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(c.id == message_id).values(**values))


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
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()
