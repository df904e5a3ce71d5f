#!/usr/bin/env python3
"""Run a real single-node Apache Kafka 4 broker (KRaft) for tests and local use.

The broker jars come from Maven Central through ``mvn`` and are cached under
``~/.cache/inferwatch/kafka/<version>/lib`` (``$XDG_CACHE_HOME`` is honoured),
so only the first run pays for the download.

Command line (stdlib only)::

    python scripts/kafka_local.py start  [--dir DIR]   # prints 127.0.0.1:PORT
    python scripts/kafka_local.py status [--dir DIR]
    python scripts/kafka_local.py stop   [--dir DIR]
    python scripts/kafka_local.py resolve               # only fetch the jars

Python API::

    with KafkaBroker() as broker:
        use(broker.bootstrap_servers)
        broker.restart()          # same port, same log dir, data kept

    # plus a SASL_PLAINTEXT listener (mechanism PLAIN) with these users
    with KafkaBroker(sasl_plain_users={"inferwatch": "secret"}) as broker:
        use(broker.sasl_bootstrap_servers)

This module also holds the small process/port helpers that
``postgres_local.py`` and ``tests/conftest.py`` reuse.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KAFKA_VERSION = os.environ.get("INFERWATCH_KAFKA_VERSION", "4.4.0")
# Kafka's pom brings log4j-core but no SLF4J binding; without one the broker
# logs nothing at all (SLF4J NOP), so we add log4j's binding ourselves.
LOG4J_VERSION = "2.25.5"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# C1-only JIT starts the broker ~35% faster on 2 cores; set
# INFERWATCH_KAFKA_JVM_OPTS="-Xmx1g" (say) for throughput benchmarks.
JVM_OPTS = os.environ.get(
    "INFERWATCH_KAFKA_JVM_OPTS", "-Xms128m -Xmx512m -XX:TieredStopAtLevel=1"
)
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
HOST = "127.0.0.1"
STARTED_MARKER = "Kafka Server started"
DEFAULT_CLI_DIR = Path(tempfile.gettempdir()) / "inferwatch-kafka"


class ServiceError(RuntimeError):
    """A local service could not be set up, started or stopped."""


# --------------------------------------------------------------------------
# Generic helpers, shared with postgres_local.py and tests/conftest.py.
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    """Print a progress message on stderr (stdout is kept for results)."""
    print(msg, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Return the inferwatch cache directory (``~/.cache/inferwatch``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inferwatch"


def free_port(host: str = HOST) -> int:
    """Return a TCP port on *host* that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError):
        with socket.create_connection((host, port), timeout=0.5):
            return True
    return False


def tail(path: Path, lines: int = 40) -> str:
    """Return the last *lines* lines of a text file ('' if it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """Tell whether process *pid* exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # A zombie has exited; its parent just has not reaped it yet.
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_cmdline(pid: int) -> str:
    """Return the command line of *pid* joined by spaces ('' if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def terminate_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM *pid*, wait up to *timeout* s, then SIGKILL it.

    Returns True when the process ended on SIGTERM, False when it had to be
    killed.  Works for processes that are not our children (``stop`` runs in
    another Python process than ``start``).
    """
    if not pid_alive(pid):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    return False


def _reap(pid: int) -> None:
    # Reap our own child so it does not linger as a zombie; harmless otherwise.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def read_state(path: Path) -> dict | None:
    """Read a JSON state file, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_state(path: Path, state: dict) -> None:
    """Atomically write a JSON state file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(path)


@contextlib.contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on *path* (e.g. so parallel runs resolve once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def require_tool(name: str, hint: str) -> str:
    """Return the path of executable *name* or raise ServiceError with *hint*."""
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"'{name}' not found on PATH. {hint}")
    return found


# --------------------------------------------------------------------------
# Kafka jars
# --------------------------------------------------------------------------

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by inferwatch scripts/kafka_local.py: the Kafka broker runtime. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.inferwatch</groupId>
  <artifactId>kafka-broker-runtime</artifactId>
  <version>{kafka}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_cache_dir(version: str = KAFKA_VERSION) -> Path:
    """Return the cache directory for one Kafka version."""
    return cache_root() / "kafka" / version


def resolve_kafka_classpath(version: str = KAFKA_VERSION) -> list[Path]:
    """Return the broker's jars, downloading them with ``mvn`` on first use.

    The jars are copied into the cache dir, so later runs need neither mvn
    nor ``~/.m2``.  A ``complete`` marker is written last: an interrupted
    download is simply redone.
    """
    cache = kafka_cache_dir(version)
    lib = cache / "lib"
    marker = cache / "complete"
    with file_lock(cache / ".lock"):
        if not marker.exists():
            _download_jars(version, cache)
            marker.write_text(f"kafka {version}\n")
    jars = sorted(lib.glob("*.jar"))
    if not jars:
        marker.unlink(missing_ok=True)
        raise ServiceError(f"no jars in {lib}; delete {cache} and retry")
    return jars


def _download_jars(version: str, cache: Path) -> None:
    mvn = require_tool(
        "mvn", "Install Maven (Debian: apt-get install -y maven) to fetch the Kafka jars."
    )
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "pom.xml").write_text(_POM.format(kafka=version, log4j=LOG4J_VERSION))
    staging = cache / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    mvn_log = cache / "mvn.log"
    log(f"kafka_local: resolving Kafka {version} jars with mvn (first run only) ...")
    started = time.monotonic()
    with open(mvn_log, "w") as out:
        rc = subprocess.call(
            [
                mvn, "-B", "-q", "-f", str(cache / "pom.xml"),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            cwd=cache, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    if rc != 0:
        raise ServiceError(
            f"mvn could not resolve org.apache.kafka:kafka_2.13:{version} (exit {rc}); "
            f"see {mvn_log}:\n{tail(mvn_log)}"
        )
    lib = cache / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    log(f"kafka_local: jars cached in {lib} ({time.monotonic() - started:.1f}s)")


def check_java() -> str:
    """Return the java executable, raising if it is missing or older than 17."""
    java = require_tool(
        "java", "Install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)."
    )
    out = subprocess.run(
        [java, "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0" style
            major = int(match.group(2))
        if major < 17:
            raise ServiceError(f"Kafka 4 needs Java 17+, found: {out.strip()}")
    return java


# --------------------------------------------------------------------------
# Broker
# --------------------------------------------------------------------------


def new_cluster_id() -> str:
    """Return a random KRaft cluster id, like ``kafka-storage random-uuid``."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):  # Kafka rejects ids that look like options
            return cid


def kafka_answers(port: int, host: str = HOST, timeout: float = 2.0) -> bool:
    """Send a Kafka ApiVersions request and tell whether the broker replied.

    Stdlib only, so the CLI needs no kafka client library.
    """
    client_id = b"inferwatch-probe"
    correlation_id = 7
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(s, 8)
    except OSError:
        return False
    if header is None:
        return False
    _size, got_id = struct.unpack(">ii", header)
    return got_id == correlation_id


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


_LOG4J2 = """\
# Generated by inferwatch scripts/kafka_local.py
status = warn
# Kafka stops logging itself on SIGTERM; log4j's own hook only adds a warning.
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {logfile}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
# The request logger is very chatty even at INFO on busy tests.
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class KafkaBroker:
    """A single-node Kafka 4 broker (combined KRaft broker+controller).

    Listens on 127.0.0.1 only.  Ports are picked on the first start and kept
    for the life of the log dir, so ``restart()`` (and a new ``start()`` on the
    same *directory*) comes back on the same bootstrap address with its data.

    Args:
        directory: where config, data and logs live; a fresh temp dir if None
            (then ``cleanup()``/the context manager removes it).
        version: Kafka version to resolve from Maven Central.
        start_timeout: seconds to wait for the broker to answer.
        detach: leave the broker running when this Python process exits
            (used by the ``start`` command); otherwise an atexit hook stops it.
        sasl_plain_users: user name -> password; when given, the broker also
            listens on a SASL_PLAINTEXT listener (mechanism PLAIN, see
            ``sasl_bootstrap_servers``) that accepts exactly these users.  The
            PLAINTEXT listener stays open for tests and admin tools.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        version: str = KAFKA_VERSION,
        start_timeout: float = START_TIMEOUT,
        detach: bool = False,
        sasl_plain_users: dict[str, str] | None = None,
    ) -> None:
        self._owns_dir = directory is None
        self.dir = Path(directory or tempfile.mkdtemp(prefix="inferwatch-kafka-")).resolve()
        self.version = version
        self.start_timeout = start_timeout
        self.detach = detach
        self.port: int | None = None
        self.controller_port: int | None = None
        self.sasl_plain_users = dict(sasl_plain_users or {})
        self.sasl_port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._pid: int | None = None
        self._atexit_registered = False
        self._load_ports()

    # Paths --------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """The Kafka ``log.dirs`` directory (topic data and KRaft metadata)."""
        return self.dir / "data"

    @property
    def log_file(self) -> Path:
        """The broker's log4j log file."""
        return self.dir / "logs" / "server.log"

    @property
    def stdout_file(self) -> Path:
        """The JVM's stdout/stderr (crashes before log4j starts land here)."""
        return self.dir / "logs" / "kafka.out"

    @property
    def state_file(self) -> Path:
        """JSON file with pid and ports, read by ``stop``/``status``."""
        return self.dir / "state.json"

    @property
    def config_file(self) -> Path:
        """The generated ``server.properties``."""
        return self.dir / "server.properties"

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the PLAINTEXT listener."""
        if self.port is None:
            raise ServiceError("broker has no port yet: call start() first")
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT`` of the SASL_PLAINTEXT listener (needs ``sasl_plain_users``)."""
        if self.sasl_port is None:
            raise ServiceError("broker has no SASL listener: pass sasl_plain_users and call start()")
        return f"{HOST}:{self.sasl_port}"

    @property
    def pid(self) -> int | None:
        """Pid of the broker JVM, if known."""
        return self._pid

    # Lifecycle ----------------------------------------------------------
    def is_running(self) -> bool:
        """Tell whether the broker process of this directory is alive."""
        pid = self._pid or (read_state(self.state_file) or {}).get("pid")
        return bool(pid) and pid_alive(pid) and str(self.dir) in pid_cmdline(pid)

    def start(self) -> "KafkaBroker":
        """Start the broker (formatting the log dir on first use) and wait for it.

        Raises ServiceError with the tail of the broker log if it does not
        answer within ``start_timeout`` seconds.
        """
        if self.is_running():
            self._pid = self._pid or read_state(self.state_file)["pid"]
            return self
        java = check_java()
        classpath = os.pathsep.join(str(p) for p in resolve_kafka_classpath(self.version))
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port, self.controller_port = free_port(), free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
        if self.sasl_plain_users and self.sasl_port is None:
            self.sasl_port = free_port()
            while self.sasl_port in (self.port, self.controller_port):
                self.sasl_port = free_port()
        self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath)
        for port in (self.port, self.controller_port, self.sasl_port):
            if port is not None and port_in_use(port):
                raise ServiceError(f"port {HOST}:{port} of the Kafka dir {self.dir} is taken")

        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        cmd = [
            java, *JVM_OPTS.split(),
            "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            # Also marks the process as ours, see is_running().
            f"-Dinferwatch.kafka.dir={self.dir}",
            "-cp", classpath, "kafka.Kafka", str(self.config_file),
        ]
        with open(self.stdout_file, "ab") as out:
            # A new session: Ctrl-C in a terminal/pytest must not kill the
            # broker behind our back; we stop it ourselves.
            self._proc = subprocess.Popen(
                cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self._pid = self._proc.pid
        write_state(self.state_file, self._state())
        if not self.detach and not self._atexit_registered:
            atexit.register(self._atexit_stop)
            self._atexit_registered = True
        self._wait_ready(log_offset)
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after *timeout* seconds.

        Data stays in the directory, so ``start()`` brings it back.
        """
        pid = self._pid or (read_state(self.state_file) or {}).get("pid")
        if pid and pid_alive(pid) and str(self.dir) in pid_cmdline(pid):
            if not terminate_pid(pid, timeout):
                log(f"kafka_local: broker pid {pid} ignored SIGTERM for {timeout}s, killed")
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
        self._proc = None
        self._pid = None
        self.state_file.unlink(missing_ok=True)

    def restart(self) -> "KafkaBroker":
        """Stop and start again on the same port and log dir (data is kept)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the broker and delete its directory if this object created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "KafkaBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"KafkaBroker(dir={str(self.dir)!r}, port={self.port}, pid={self._pid})"

    # Internals ----------------------------------------------------------
    def _atexit_stop(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=10)

    def _state(self) -> dict:
        return {
            "pid": self._pid,
            "port": self.port,
            "controller_port": self.controller_port,
            "bootstrap_servers": self.bootstrap_servers,
            "dir": str(self.dir),
            "version": self.version,
        }

    def _load_ports(self) -> None:
        # The controller endpoint is written into the KRaft metadata at format
        # time, so an existing dir must keep its ports.
        if not self.config_file.exists():
            return
        props = dict(
            line.split("=", 1)
            for line in self.config_file.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        ports = re.findall(r"//[^:]+:(\d+)", props.get("listeners", ""))
        if len(ports) in (2, 3):
            self.port, self.controller_port = int(ports[0]), int(ports[1])
        if len(ports) == 3 and self.sasl_plain_users:
            self.sasl_port = int(ports[2])

    def _sasl_config(self) -> tuple[str, str]:
        """The extra listener and its settings ('' and '' without SASL users)."""
        if not self.sasl_plain_users:
            return "", ""
        for value in (*self.sasl_plain_users, *self.sasl_plain_users.values()):
            # kept out: they would need both JAAS and .properties escaping
            if not value or any(c in value for c in '"\\\n\r ;='):
                raise ServiceError(f"SASL user names and passwords must not be empty or contain "
                                   f"quotes, backslashes, spaces, ';', '=' or line breaks: {value!r}")
        users = " ".join(f'user_{name}="{pw}"' for name, pw in sorted(self.sasl_plain_users.items()))
        settings = (
            "sasl.enabled.mechanisms=PLAIN\n"
            # The broker's own PLAIN login module checks clients against user_<name>="<password>".
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};\n"
        )
        return f",SASL_PLAINTEXT://{HOST}:{self.sasl_port}", settings

    def _write_config(self) -> None:
        sasl_listener, sasl_settings = self._sasl_config()
        self.config_file.write_text(
            "# Generated by inferwatch scripts/kafka_local.py: single-node KRaft.\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.bootstrap.servers={HOST}:{self.controller_port}\n"
            f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}{sasl_listener}\n"
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}{sasl_listener}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
            f"{',SASL_PLAINTEXT:SASL_PLAINTEXT' if sasl_listener else ''}\n"
            f"{sasl_settings}"
            f"log.dirs={self.data_dir}\n"
            # One broker: every internal topic must live with replication 1.
            "offsets.topic.replication.factor=1\n"
            "offsets.topic.num.partitions=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "transaction.state.log.num.partitions=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "share.coordinator.state.topic.num.partitions=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            "num.partitions=1\n"
            "default.replication.factor=1\n"
            "auto.create.topics.enable=true\n"
            "num.network.threads=2\n"
            "num.io.threads=2\n"
            "num.recovery.threads.per.data.dir=1\n"
        )
        (self.dir / "log4j2.properties").write_text(_LOG4J2.format(logfile=self.log_file))

    def _format(self, java: str, classpath: str) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                java, "-Xmx256m", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp", classpath, "kafka.tools.StorageTool", "format",
                "--standalone", "--cluster-id", new_cluster_id(),
                "--config", str(self.config_file),
            ],
            cwd=self.dir, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"formatting the KRaft log dir {self.data_dir} failed "
                f"(exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def _new_log_text(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def _wait_ready(self, log_offset: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = self._pid = None
                self.state_file.unlink(missing_ok=True)
                raise ServiceError(
                    f"Kafka broker exited with code {code} while starting.\n"
                    f"{self._log_tails()}"
                )
            if STARTED_MARKER in self._new_log_text(log_offset) and kafka_answers(self.port):
                return
            time.sleep(0.25)
        self.stop(timeout=10)
        raise ServiceError(
            f"Kafka broker did not start within {self.start_timeout:.0f}s.\n{self._log_tails()}"
        )

    def _log_tails(self) -> str:
        # Skip the indented lines of the KafkaConfig dump: they hide the error.
        log_lines = [
            line for line in tail(self.log_file, 2000).splitlines()
            if line and not line[0].isspace()
        ]
        return (
            f"--- tail of {self.log_file} ---\n" + "\n".join(log_lines[-40:]) + "\n"
            f"--- tail of {self.stdout_file} ---\n{tail(self.stdout_file)}"
        )


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python scripts/kafka_local.py start|stop|status|resolve``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "resolve"])
    parser.add_argument(
        "--dir", default=str(DEFAULT_CLI_DIR),
        help=f"config, data and log directory (default: {DEFAULT_CLI_DIR})",
    )
    parser.add_argument("--timeout", type=float, default=START_TIMEOUT,
                        help="seconds to wait for the broker to start")
    args = parser.parse_args(argv)

    try:
        if args.command == "resolve":
            jars = resolve_kafka_classpath()
            print(kafka_cache_dir() / "lib")
            log(f"kafka_local: {len(jars)} jars for Kafka {KAFKA_VERSION}")
            return 0
        broker = KafkaBroker(args.dir, start_timeout=args.timeout, detach=True)
        if args.command == "start":
            was_running = broker.is_running()
            broker.start()
            log(f"kafka_local: broker {'already running' if was_running else 'started'}, "
                f"pid {broker.pid}, dir {broker.dir}, log {broker.log_file}")
            print(broker.bootstrap_servers)
        elif args.command == "stop":
            running = broker.is_running()
            broker.stop()
            log("kafka_local: broker stopped" if running else "kafka_local: broker was not running")
        else:
            if not broker.is_running():
                print("stopped")
                return 1
            state = read_state(broker.state_file) or {}
            print(f"running {state.get('bootstrap_servers')} pid {state.get('pid')} dir {broker.dir}")
    except ServiceError as exc:
        log(f"kafka_local: error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
