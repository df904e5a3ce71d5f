"""Shared pytest fixtures: a real Kafka broker and a real PostgreSQL server.

Both are started once per test session by ``scripts/kafka_local.py`` and
``scripts/postgres_local.py``.  Set ``INFERWATCH_TEST_KAFKA`` (bootstrap
address) or ``INFERWATCH_TEST_POSTGRES_URL`` (SQLAlchemy URL) to use an
already running service instead.

If a service cannot be started the tests that need it are skipped, except on
CI (``CI=true``), where they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import alertmanager_local  # noqa: E402
import kafka_local  # noqa: E402
import postgres_local  # noqa: E402

KAFKA_ENV = "INFERWATCH_TEST_KAFKA"
POSTGRES_ENV = "INFERWATCH_TEST_POSTGRES_URL"


def service_unavailable(reason: str) -> None:
    """Fail on CI (``CI=true``), skip elsewhere: a missing service is no pass."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of Prometheus's ``promtool`` (Debian package ``prometheus``)."""
    path = shutil.which("promtool")
    if path is None:
        service_unavailable("promtool not found (Debian: apt-get install -y prometheus)")
    return path


def start_or_bail(service, what: str):
    """Start *service* and return it; on failure clean up and skip/fail."""
    try:
        return service.start()
    except Exception as exc:  # noqa: BLE001 - any failure means "no service"
        reason = f"cannot start a local {what}: {exc}"
    # Outside the except block, so the report is not a chained traceback.
    service.cleanup()
    service_unavailable(reason)


# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_broker():
    """The session's ``KafkaBroker`` (for tests that restart it).

    Skipped when ``INFERWATCH_TEST_KAFKA`` points at an external broker, which
    this process cannot control.
    """
    if os.environ.get(KAFKA_ENV):
        pytest.skip(f"{KAFKA_ENV} is set: the broker is external and cannot be restarted")
    broker = start_or_bail(kafka_local.KafkaBroker(), "Kafka broker")
    yield broker
    broker.cleanup()


@pytest.fixture(scope="session")
def kafka_bootstrap(request) -> str:
    """Bootstrap address ``127.0.0.1:PORT`` of a running Kafka broker."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        return external
    return request.getfixturevalue("kafka_broker").bootstrap_servers


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    """The session's ``PostgresServer``.

    Skipped when ``INFERWATCH_TEST_POSTGRES_URL`` points at an external server.
    """
    if os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is set: the server is external")
    # Not tmp_path: as root, pytest's private tmp dirs are unreadable for the
    # postgres OS user, so the server gets its own dir under /tmp.
    server = start_or_bail(postgres_local.PostgresServer(), "PostgreSQL server")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def postgres_url(request) -> str:
    """SQLAlchemy URL of the ``inferwatch`` database on a running server."""
    external = os.environ.get(POSTGRES_ENV)
    if external:
        return external
    return request.getfixturevalue("postgres_server").url


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request, tmp_path):
    """A SQLAlchemy URL of an empty database, once for SQLite and once for PostgreSQL.

    The PostgreSQL variant is a fresh database on the session server, created
    for this test and dropped after it, so tests cannot see each other's rows.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inferwatch.db'}"
        return

    import sqlalchemy as sa

    base = sa.make_url(request.getfixturevalue("postgres_url"))
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a test that leaked a connection must not break the drop.
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------


@pytest.fixture
def store(db_url):
    """A :class:`inferwatch.store.Store` on ``db_url`` with the schema created."""
    from inferwatch.store import Store

    s = Store(db_url)
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
def receiver():
    """Makes real HTTP receivers on 127.0.0.1 (``test_notifiers.Receiver``:
    ``receiver(respond=None)``), closed after the test."""
    from test_notifiers import Receiver

    servers = []

    def make(respond=None) -> Receiver:
        servers.append(Receiver(respond))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def alertmanager_factory():
    """Start real Alertmanagers (Debian ``prometheus-alertmanager``) for one test.

    ``alertmanager_factory(webhook_url, **options)`` returns a running
    ``alertmanager_local.AlertmanagerServer`` on 127.0.0.1 (base URL ``.url``) that routes
    every alert, grouped by alertname and model, to ``webhook_url`` with
    ``send_resolved: true``. Options: ``receiver_name``, ``group_wait``,
    ``group_interval``, ``repeat_interval`` (seconds; defaults 1, 1, 4 h). Each one is
    stopped and its directory removed after the test. Without the binary the test is
    skipped, or fails on CI.
    """
    started = []

    def start(webhook_url: str, **options):
        server = alertmanager_local.AlertmanagerServer(webhook_url=webhook_url, **options)
        started.append(server)
        return start_or_bail(server, "Alertmanager")

    yield start
    for server in started:
        server.cleanup()


@pytest.fixture
def clean_env(monkeypatch):
    """No ``INFERWATCH_*`` variables from the caller's environment leak into config loading."""
    for name in list(os.environ):
        if name.startswith("INFERWATCH_"):
            monkeypatch.delenv(name)
    return monkeypatch
