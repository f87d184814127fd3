"""A real ClickHouse HTTP server for tests, started from the ``chdb-core`` wheel without Docker.

This module owns :class:`ClickHouseServer`: a subprocess that runs ClickHouse's clickhouse-local engine (shipped in
``chdb-core``) with its HTTP listener open on a free loopback port, so clickhouse-connect talks to the same HTTP
handlers as a clickhouse-server. It can be stopped (SIGTERM), killed (SIGKILL) and restarted on the same data
directory and port, which is what fault tests need. See ``reference/clickhouse-local-server.md`` for the facts it
relies on:

* ``chdb._chdb.query(sql, "TabSeparated", path=data_dir)`` runs a real LocalServer (``chdb.connect`` does not, and
  cannot open listeners). Only one such call works per process, so the child process makes exactly one call: it
  opens the HTTP listener and then runs a query that sleeps forever. The call releases the GIL.
* The port and bind address come from ``./config.xml`` in the current directory, so the child chdirs into a
  config directory written by the launcher.
* The output format of that call becomes the HTTP interface's default format, which must be ``TabSeparated``.

It relies on a private chdb entry point; ``chdb-core==26.9.0`` (ClickHouse 26.9.2.1) is the version tested.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from xml.sax.saxutils import escape

from contextkit.testing.services import docker_available, env_url, free_port

__all__ = ["ClickHouseServer", "ClickHouseServerError", "ClickHouseService", "chdb_available", "clickhouse_service"]

#: Marker comment of the keep-alive query, so it can be told apart in ``system.processes``.
KEEPALIVE_MARKER = "contextkit-clickhouse-keepalive"

# The child program. It is passed with ``-c`` so it needs no file of its own; argv: config dir, data dir, parent pid.
# A watchdog thread kills the server when the test process is gone, so no server outlives its tests. (Not
# PR_SET_PDEATHSIG: that fires when the parent *thread* exits, e.g. an asyncio.to_thread worker that restarted it.)
_CHILD_PROGRAM = f"""
import os, signal, sys, threading, time
config_dir, data_dir, parent = sys.argv[1], sys.argv[2], int(sys.argv[3])

def watch_parent():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)

threading.Thread(target=watch_parent, daemon=True).start()
os.chdir(config_dir)
from chdb import _chdb
_chdb.query(
    "SYSTEM START LISTEN HTTP; "
    "SELECT /* {KEEPALIVE_MARKER} */ count() FROM numbers(1000000000000000) WHERE sleepEachRow(1) = 0 "
    "SETTINGS max_block_size = 1, max_threads = 1, max_execution_time = 0",
    "TabSeparated",
    path=data_dir,
)
sys.stderr.write("clickhouse keep-alive query ended\\n")
sys.exit(3)
"""


#: The image testcontainers runs when neither a URL nor chdb-core is available.
CONTAINER_IMAGE = "clickhouse/clickhouse-server:25.8"


class ClickHouseServerError(RuntimeError):
    """The test ClickHouse server could not be started (the message includes the tail of its stderr)."""


def chdb_available() -> bool:
    """True when the ``chdb-core`` wheel (module ``chdb._chdb``) can be imported in this interpreter."""
    import importlib.util

    try:
        return importlib.util.find_spec("chdb") is not None and importlib.util.find_spec("chdb._chdb") is not None
    except (ImportError, ValueError):
        return False


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR (as ClickHouse itself binds) ignores TIME_WAIT left by a killed server, not a live listener
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ClickHouseServer:
    """A ClickHouse HTTP server in a child process, on ``127.0.0.1:<port>``, with its own data directory.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`kill` sends SIGKILL (the data
    directory survives); :meth:`restart` starts it again on the same data directory and port.

    :param root: directory for ``config/``, ``data/`` and ``server.log``; a temporary one (removed by
        :meth:`cleanup`) when None.
    :param port: HTTP port; a free one when None.
    :param user: an extra user (besides the password-less ``default``) defined in ``users.xml``.
    :param password: the extra user's password.
    :param start_timeout: seconds to wait for ``/ping`` to answer before giving up.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._owns_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="contextkit-clickhouse-"))
        self.port = port or free_port()
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"ClickHouseServer(port={self.port}, root={str(self.root)!r}, {state})"

    # -- paths and urls ---------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """Where ClickHouse keeps its databases; it survives :meth:`kill` and :meth:`restart`."""
        return self.root / "data"

    @property
    def config_dir(self) -> Path:
        """The directory holding ``config.xml`` and ``users.xml`` (the child's working directory)."""
        return self.root / "config"

    @property
    def log_path(self) -> Path:
        """The server's stderr and stdout."""
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the password-less ``default`` user)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or None."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.pid is not None

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> ClickHouseServer:
        """Start the server and wait until ``/ping`` answers; raise :class:`ClickHouseServerError` otherwise."""
        if self.running:
            return self
        if not chdb_available():
            raise ClickHouseServerError("chdb-core is not installed (pip install chdb-core==26.9.0)")
        # Another server on the port would answer /ping and pass for this one, so refuse a busy port up front.
        if not _port_is_free(self.port):
            raise ClickHouseServerError(f"port {self.port} on 127.0.0.1 is already in use")
        self._write_config()
        log = open(self.log_path, "ab")  # noqa: SIM115  # closed in _reap, after the child exits
        self._log = log
        self._process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop gracefully (SIGTERM), escalating to SIGKILL after ``timeout`` seconds; no-op when stopped."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._reap()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would; the data directory is kept."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(10)
        self._reap()

    def restart(self) -> ClickHouseServer:
        """Stop the server if it runs and start it again on the same data directory and port."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and remove the root directory if this launcher created it."""
        self.stop()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ClickHouseServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()

    def ping(self, timeout: float = 1.0) -> bool:
        """True when ``GET /ping`` answers ``Ok.``."""
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=timeout) as response:  # loopback only
                return bool(response.status == 200 and response.read().strip() == b"Ok.")
        except (OSError, urllib.error.URLError):
            return False

    def stderr_tail(self, limit: int = 4000) -> str:
        """The last ``limit`` characters the server wrote to stderr/stdout."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-limit:]

    # -- internals --------------------------------------------------------------------------------------------
    def _command(self) -> list[str]:
        """The child's argv (a hook for tests of the launcher itself)."""
        return [sys.executable, "-c", _CHILD_PROGRAM, str(self.config_dir), str(self.data_dir), str(os.getpid())]

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._reap()
                raise ClickHouseServerError(
                    f"ClickHouse exited with code {code} before answering on port {self.port}:\n{self.stderr_tail()}"
                )
            if self.ping(timeout=0.5):
                return
            time.sleep(0.05)
        self.kill()
        raise ClickHouseServerError(
            f"ClickHouse did not answer /ping on port {self.port} within {self.start_timeout:.0f}s:\n{self.stderr_tail()}"
        )

    def _reap(self) -> None:
        log = self._log
        self._log = None
        if log is not None:
            with contextlib.suppress(Exception):
                log.close()
        self._process = None

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        extra_user = ""
        if self.user:
            extra_user = (
                f"<{escape(self.user)}><password>{escape(self.password or '')}</password>"
                "<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
                "<profile>default</profile><quota>default</quota></" + escape(self.user) + ">"
            )
        users = (
            "<clickhouse>\n"
            "  <profiles><default/></profiles>\n"
            "  <quotas><default/></quotas>\n"
            "  <users>\n"
            "    <default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
            "<profile>default</profile><quota>default</quota></default>\n"
            f"    {extra_user}\n"
            "  </users>\n"
            "</clickhouse>\n"
        )
        config = (
            "<clickhouse>\n"
            "  <listen_host>127.0.0.1</listen_host>\n"
            f"  <http_port>{self.port}</http_port>\n"
            f"  <users_config>{escape(str(self.config_dir / 'users.xml'))}</users_config>\n"
            "  <logger><level>warning</level><console>1</console></logger>\n"
            "</clickhouse>\n"
        )
        (self.config_dir / "users.xml").write_text(users)
        (self.config_dir / "config.xml").write_text(config)


@dataclass
class ClickHouseService:
    """A ClickHouse for tests: its base URL, the launcher when this process started it, or why there is none.

    ``server`` is set only for a server started by :func:`clickhouse_service` from chdb-core: fault tests may
    kill and restart it. ``problem`` is set (and ``url`` empty) when no server could be found.
    """

    url: str
    server: ClickHouseServer | None = None
    problem: str | None = None

    def database_url(self, database: str) -> str:
        """The base URL with ``database`` as its path (``http://host:port/database``)."""
        return f"{self.url.rstrip('/')}/{database}"


@contextlib.contextmanager
def clickhouse_service(start_timeout: float = 90.0) -> Iterator[ClickHouseService]:
    """Find or start a ClickHouse for a test session, and stop what was started on exit.

    In order: ``CONTEXTKIT_TEST_CLICKHOUSE_URL``; a :class:`ClickHouseServer` from chdb-core on a free port;
    a testcontainers ClickHouse when Docker answers. When none works the service carries a ``problem`` (pass it
    to :func:`contextkit.testing.services.missing_service`). Meant for a session-scoped fixture: one server per
    test run.
    """
    url = env_url("clickhouse")
    if url is not None:
        yield ClickHouseService(url)
        return
    if chdb_available():
        server = ClickHouseServer(start_timeout=start_timeout)
        try:
            server.start()
        except ClickHouseServerError as exc:
            server.cleanup()
            yield ClickHouseService("", problem=f"the chdb-core ClickHouse did not start: {exc}")
            return
        try:
            yield ClickHouseService(server.url, server)
        finally:
            server.cleanup()
        return
    if docker_available():
        with _container_service() as service:
            yield service
        return
    yield ClickHouseService("", problem="set CONTEXTKIT_TEST_CLICKHOUSE_URL, install chdb-core==26.9.0, or run Docker")


@contextlib.contextmanager
def _container_service() -> Iterator[ClickHouseService]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    container = DockerContainer(CONTAINER_IMAGE).with_exposed_ports(8123)
    # the image's entrypoint otherwise restricts the default user to local connections
    container.with_env("CLICKHOUSE_SKIP_USER_SETUP", "1")
    try:
        container.start()
        wait_for_logs(container, "Ready for connections", timeout=120)
    except Exception as exc:  # Docker errors vary by engine; any of them means no container service
        with contextlib.suppress(Exception):
            container.stop()
        yield ClickHouseService("", problem=f"the ClickHouse container did not start: {exc}")
        return
    try:
        yield ClickHouseService(f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8123)}")
    finally:
        container.stop()
