#!/usr/bin/env python3
"""Run a throw-away PostgreSQL server on 127.0.0.1 for tests and local use.

Uses the Debian server binaries (``/usr/lib/postgresql/<N>/bin``) and, when
they are missing and we are root, installs them with
``apt-get install -y postgresql``.  PostgreSQL refuses to run as root, so as
root every server command runs as the ``postgres`` OS user via ``runuser``.

The server is tuned for tests, not durability: fsync, full_page_writes and
synchronous_commit are off.

Command line (stdlib only)::

    python scripts/postgres_local.py start  [--dir DIR]  # prints the SQLAlchemy URL
    python scripts/postgres_local.py status [--dir DIR]
    python scripts/postgres_local.py stop   [--dir DIR]

Python API::

    with PostgresServer() as pg:
        engine = sqlalchemy.create_engine(pg.url)
        pg.restart()              # same port, same data
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

# The generic helpers (ports, pids, state files) live in kafka_local.py, next
# to this file, so both services share one copy.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_local import (  # noqa: E402
    HOST,
    ServiceError,
    cache_root,
    file_lock,
    free_port,
    log,
    pid_alive,
    pid_cmdline,
    port_in_use,
    tail,
    terminate_pid,
    write_state,
)

DB_NAME = "inferwatch"
DB_USER = os.environ.get("INFERWATCH_PG_USER", "inferwatch")
DB_PASSWORD = os.environ.get("INFERWATCH_PG_PASSWORD", "inferwatch")
SUPERUSER = "postgres"
OS_USER = "postgres"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
DEFAULT_CLI_DIR = Path(tempfile.gettempdir()) / "inferwatch-postgres"
# Unix socket paths are limited to 107 bytes; ".s.PGSQL.65535" takes 14.
_MAX_SOCKET_DIR = 90


def find_pg_bindir() -> Path | None:
    """Return the newest PostgreSQL server bin dir, or None if none is installed.

    ``INFERWATCH_PG_BINDIR`` overrides the search.
    """
    override = os.environ.get("INFERWATCH_PG_BINDIR")
    if override:
        return Path(override)
    candidates = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            candidates.append((float(initdb.parent.parent.name), initdb.parent))
    if candidates:
        return max(candidates)[1]
    # Non-Debian layouts put initdb on PATH.
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def ensure_pg_binaries(install: bool = True) -> Path:
    """Return the server bin dir, installing Debian's ``postgresql`` if missing.

    Installing needs root and apt-get; it runs only when no server is found.
    """
    bindir = find_pg_bindir()
    if bindir:
        return bindir
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb). "
            "Install them as root: apt-get update && apt-get install -y postgresql"
        )
    with file_lock(cache_root() / "postgres-install.lock"):
        bindir = find_pg_bindir()  # another process may have installed it meanwhile
        if bindir:
            return bindir
        log("postgres_local: installing PostgreSQL with apt-get (first run on this machine) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            result = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                raise ServiceError(
                    f"{' '.join(cmd)} failed (exit {result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                )
    bindir = find_pg_bindir()
    if not bindir:
        raise ServiceError("apt-get install postgresql succeeded but no initdb was found")
    return bindir


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class PostgresServer:
    """A PostgreSQL server in its own directory, on 127.0.0.1 and a free port.

    On first start it runs initdb, then creates the login role ``DB_USER``
    (password auth, CREATEDB) and the database ``inferwatch`` it owns.  The
    port is kept in the data dir, so ``restart()`` and a later ``start()`` on
    the same *directory* come back on the same URL with the same data.

    Args:
        directory: base dir for data, socket and logs; a fresh temp dir if None
            (then ``cleanup()``/the context manager removes it).  As root it
            must be reachable by the ``postgres`` user (pytest's tmp_path is not).
        start_timeout: seconds to wait for the server to accept connections.
        detach: leave the server running when this Python process exits
            (used by the ``start`` command); otherwise an atexit hook stops it.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        detach: bool = False,
    ) -> None:
        self._owns_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="inferwatch-pg-")).resolve()
        self.start_timeout = start_timeout
        self.detach = detach
        self.port: int | None = self._configured_port()
        self._bindir: Path | None = None
        self._atexit_registered = False

    # Paths and URLs -----------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's unix socket (used for admin commands)."""
        return self.dir / "run"

    @property
    def log_file(self) -> Path:
        """The server log written by pg_ctl."""
        return self.dir / "logs" / "postgres.log"

    @property
    def state_file(self) -> Path:
        """JSON file with pid, port and URL, read by ``stop``/``status``."""
        return self.dir / "state.json"

    @property
    def url(self) -> str:
        """SQLAlchemy URL ``postgresql+psycopg://USER:PASS@127.0.0.1:PORT/inferwatch``."""
        return self.url_for(DB_NAME)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of another database on this server, as ``DB_USER``."""
        if self.port is None:
            raise ServiceError("server has no port yet: call start() first")
        return (
            f"postgresql+psycopg://{quote(DB_USER, safe='')}:{quote(DB_PASSWORD, safe='')}"
            f"@{HOST}:{self.port}/{quote(database, safe='')}"
        )

    @property
    def pid(self) -> int | None:
        """Pid of the postmaster, if it is running."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) and "postgres" in pid_cmdline(pid) else None

    # Lifecycle ----------------------------------------------------------
    def is_running(self) -> bool:
        """Tell whether the server of this directory is running."""
        return self.pid is not None

    def start(self) -> "PostgresServer":
        """Start the server (initdb on first use) and wait until it accepts logins.

        Raises ServiceError with the tail of the server log on failure.
        """
        if self.is_running():
            return self
        self._bindir = ensure_pg_binaries()
        self._prepare_dirs()
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._initdb()
        if self.port is None:
            self.port = free_port()
        self._write_config()
        if port_in_use(self.port):
            raise ServiceError(f"port {HOST}:{self.port} of the PostgreSQL dir {self.dir} is taken")

        result = self._run(
            self._bin("pg_ctl"), "-D", self.data_dir, "-l", self.log_file,
            "-w", "-t", str(int(self.start_timeout)), "-s", "start",
        )
        if result.returncode != 0:
            raise ServiceError(
                f"pg_ctl start failed (exit {result.returncode}): {result.stderr.strip()}\n"
                f"--- tail of {self.log_file} ---\n{tail(self.log_file)}"
            )
        if not self.detach and not self._atexit_registered:
            atexit.register(self._atexit_stop)
            self._atexit_registered = True
        self._wait_ready()
        self._bootstrap_database()
        write_state(self.state_file, {
            "pid": self.pid, "port": self.port, "url": self.url, "dir": str(self.dir),
        })
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server (fast shutdown; SIGKILL if it hangs). Data is kept."""
        pid = self.pid
        if pid is not None:
            bindir = self._bindir or find_pg_bindir()
            result = None
            if bindir:
                result = self._run(
                    bindir / "pg_ctl", "-D", self.data_dir, "-m", "fast",
                    "-w", "-t", str(int(timeout)), "-s", "stop",
                )
            if result is None or result.returncode != 0:
                log(f"postgres_local: pg_ctl stop failed, killing postmaster {pid}")
                terminate_pid(pid, timeout=5)
        self.state_file.unlink(missing_ok=True)

    def restart(self) -> "PostgresServer":
        """Stop and start again on the same port and data dir."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its directory if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run *sql* as the superuser over the unix socket; return psql's output."""
        result = self._run(
            self._bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA",
            "-h", self.socket_dir, "-p", str(self.port), "-U", SUPERUSER, "-d", database,
            input=sql,
        )
        if result.returncode != 0:
            raise ServiceError(f"psql failed (exit {result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"PostgresServer(dir={str(self.dir)!r}, port={self.port}, pid={self.pid})"

    # Internals ----------------------------------------------------------
    def _atexit_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=10)

    def _bin(self, name: str) -> Path:
        if self._bindir is None:
            self._bindir = ensure_pg_binaries()
        return self._bindir / name

    def _as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *cmd, input: str | None = None) -> subprocess.CompletedProcess:
        """Run a PostgreSQL tool, as the postgres OS user when we are root."""
        argv = [str(c) for c in cmd]
        if self._as_root():
            argv = ["runuser", "-u", OS_USER, "--", *argv]
        # cwd: a postgres-owned dir, so tools do not complain about /root.
        return subprocess.run(
            argv, cwd=self.dir, input=input, capture_output=True, text=True,
            stdin=None if input is not None else subprocess.DEVNULL, check=False,
        )

    def _prepare_dirs(self) -> None:
        if len(str(self.socket_dir)) > _MAX_SOCKET_DIR:
            raise ServiceError(
                f"directory path too long for a unix socket: {self.socket_dir}; use a shorter --dir"
            )
        for d in (self.dir, self.socket_dir, self.log_file.parent):
            d.mkdir(parents=True, exist_ok=True)
        if self._as_root():
            try:
                shutil.chown(self.dir, OS_USER, OS_USER)
                for d in (self.socket_dir, self.log_file.parent):
                    shutil.chown(d, OS_USER, OS_USER)
            except LookupError as exc:
                raise ServiceError(f"no '{OS_USER}' OS user to run PostgreSQL as: {exc}") from exc
            probe = self._run("test", "-w", self.dir)
            if probe.returncode != 0:
                raise ServiceError(
                    f"the '{OS_USER}' user cannot write {self.dir} (a parent dir is private?); "
                    "use a directory under /tmp"
                )

    def _initdb(self) -> None:
        result = self._run(
            self._bin("initdb"), "-D", self.data_dir, "-U", SUPERUSER,
            "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        if result.returncode != 0:
            raise ServiceError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr}"
            )
        with open(self.data_dir / "postgresql.conf", "a") as fh:
            fh.write("\ninclude_if_exists = 'inferwatch.conf'\n")

    def _configured_port(self) -> int | None:
        # The port lives in the data dir so restarts keep the URL.
        try:
            text = (self.data_dir / "inferwatch.conf").read_text()
        except OSError:
            return None
        match = re.search(r"^port = (\d+)", text, re.M)
        return int(match.group(1)) if match else None

    def _write_config(self) -> None:
        conf = self.data_dir / "inferwatch.conf"
        conf.write_text(
            "# Generated by inferwatch scripts/postgres_local.py\n"
            f"listen_addresses = '{HOST}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            # A test server: speed over crash safety.
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "max_connections = 100\n"
            "shared_buffers = 128MB\n"
        )
        if self._as_root():
            shutil.chown(conf, OS_USER, OS_USER)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ready = self._run(self._bin("pg_isready"), "-q", "-h", HOST, "-p", str(self.port))
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise ServiceError(
            f"PostgreSQL did not accept connections on {HOST}:{self.port} within "
            f"{self.start_timeout:.0f}s.\n--- tail of {self.log_file} ---\n{tail(self.log_file)}"
        )

    def _bootstrap_database(self) -> None:
        # Idempotent, so a restart or a reused --dir is fine.
        user, password = _sql_ident(DB_USER), _sql_literal(DB_PASSWORD)
        self.psql(
            f"SELECT 'CREATE ROLE {user} LOGIN CREATEDB' "
            f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_sql_literal(DB_USER)})\n"
            "\\gexec\n"
            f"ALTER ROLE {user} PASSWORD {password};\n"
            f"SELECT 'CREATE DATABASE {_sql_ident(DB_NAME)} OWNER {user}' "
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {_sql_literal(DB_NAME)})\n"
            "\\gexec\n"
        )


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python scripts/postgres_local.py start|stop|status``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument(
        "--dir", default=str(DEFAULT_CLI_DIR),
        help=f"data, socket and log directory (default: {DEFAULT_CLI_DIR})",
    )
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT,
                        help="seconds to wait for the server to start")
    args = parser.parse_args(argv)

    server = PostgresServer(args.dir, start_timeout=args.timeout, detach=True)
    try:
        if args.command == "start":
            was_running = server.is_running()
            server.start()
            log(f"postgres_local: server {'already running' if was_running else 'started'}, "
                f"pid {server.pid}, dir {server.dir}, log {server.log_file}")
            print(server.url)
        elif args.command == "stop":
            running = server.is_running()
            server.stop()
            log("postgres_local: server stopped" if running
                else "postgres_local: server was not running")
        else:
            if not server.is_running():
                print("stopped")
                return 1
            print(f"running {server.url} pid {server.pid} dir {server.dir}")
    except ServiceError as exc:
        log(f"postgres_local: error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
