"""A private PostgreSQL server for fault tests: its own data directory, a free loopback port, start/stop/kill.

Fault tests stop and kill the server they talk to, so they must never use the machine's shared PostgreSQL.
:class:`PostgresServer` runs ``initdb`` once into a temporary directory and then starts ``postgres`` on that data
directory and port as often as a test needs (``stop()`` then ``start()`` keeps the data; ``kill()`` is a crash).

``initdb`` refuses to run as root, so when the tests run as root the server runs as the ``postgres`` user (the
data directory is handed to that user). The binaries are found through ``CONTEXTKIT_PG_BINDIR``, ``pg_config
--bindir``, ``/usr/lib/postgresql/*/bin`` or ``PATH``. Every wait is bounded; a server still running when the
interpreter exits is killed.

Typical use::

    server = PostgresServer.create_or_skip()
    with server:                       # start(); on exit: kill and remove the data directory
        dsn = server.dsn               # postgresql://postgres@127.0.0.1:<port>/postgres
        server.stop()                  # clean shutdown; start() brings the same data back on the same port
        server.kill()                  # SIGKILL the whole server process group (a crash)
        server.restart()

A server with encrypted, password-only TCP connections (the superuser keeps trust over the Unix socket, for setup)::

    files = make_tls_files()                                   # contextkit.testing.services.tls
    server = PostgresServer(
        ssl_cert_file=files.server_cert,
        ssl_key_file=files.server_key,
        hba=["local all all trust", "hostssl all all 127.0.0.1/32 scram-sha-256", "host all all 127.0.0.1/32 reject"],
    )
    server.start()
    admin_dsn = server.socket_dsn                              # postgresql://postgres@/postgres?host=<socket dir>&port=<port>
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from contextkit.testing.services import free_port, missing_service

__all__ = ["PostgresServer", "PostgresServerError", "find_postgres_bindir"]

_RUNNING: weakref.WeakSet[PostgresServer] = weakref.WeakSet()


class PostgresServerError(RuntimeError):
    """The private server could not be initialised or started (the message holds the end of its log)."""


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb``, ``postgres`` and ``pg_isready``, or None when PostgreSQL is not installed."""
    candidates: list[str] = []
    if os.environ.get("CONTEXTKIT_PG_BINDIR"):
        candidates.append(os.environ["CONTEXTKIT_PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(out.stdout.strip())
    # Debian/Ubuntu keep the server binaries out of PATH; prefer the newest major version.
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / name).is_file() for name in ("initdb", "postgres", "pg_isready")):
            return path
    return None


def _major_version(path: str) -> int:
    try:
        return int(Path(path).parent.name.split(".")[0])
    except ValueError:
        return 0


class PostgresServer:
    """A PostgreSQL server owned by one test (module or session): private data directory, loopback port.

    :param port: TCP port on 127.0.0.1 (a free one by default); kept across stop/start.
    :param bindir: directory of the PostgreSQL binaries (found by :func:`find_postgres_bindir` by default).
    :param os_user: the account the server runs as when the tests run as root (``postgres``).
    :param settings: extra ``-c name=value`` server settings.
    :param hba: lines that replace ``pg_hba.conf`` after ``initdb`` (by default initdb's: trust for every
        connection). Keep a ``local ... trust`` line for :attr:`socket_dsn` if the superuser must still get in.
    :param ssl_cert_file: a PEM server certificate; with ``ssl_key_file`` it is copied into the data directory
        (owned by the server account, the key readable by it alone, as PostgreSQL demands) and ``ssl=on`` is set.
    :param ssl_key_file: the PEM private key of ``ssl_cert_file``.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        bindir: Path | str | None = None,
        os_user: str = "postgres",
        settings: dict[str, str] | None = None,
        hba: Sequence[str] | None = None,
        ssl_cert_file: Path | str | None = None,
        ssl_key_file: Path | str | None = None,
    ) -> None:
        if (ssl_cert_file is None) != (ssl_key_file is None):
            raise PostgresServerError("ssl_cert_file and ssl_key_file go together")
        found = Path(bindir) if bindir is not None else find_postgres_bindir()
        if found is None:
            raise PostgresServerError("PostgreSQL server binaries (initdb, postgres) are not installed")
        self.bindir = found
        self.port = port or free_port()
        self.base_dir = Path(tempfile.mkdtemp(prefix="contextkit-pg-"))
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_path = self.base_dir / "server.log"
        self._settings = {
            # A throwaway server: nothing here must survive a power cut, so skip fsync. Commits stay synchronous
            # (a killed server must keep every transaction it acknowledged, as a real one does).
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "40",
            "shared_buffers": "16MB",
            **(settings or {}),
        }
        self._hba = list(hba) if hba is not None else None
        self._ssl_files = (Path(ssl_cert_file), Path(ssl_key_file)) if ssl_cert_file and ssl_key_file else None
        if self._ssl_files is not None:
            # Relative to the data directory, where initdb() copies the files.
            self._settings.update({"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"})
        self._proc: subprocess.Popen[bytes] | None = None
        self._uid: int | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(os_user)
            except KeyError:
                shutil.rmtree(self.base_dir, ignore_errors=True)
                raise PostgresServerError(f"running as root and there is no {os_user!r} user to run initdb") from None
            self._uid, self._gid = entry.pw_uid, entry.pw_gid
            os.chown(self.base_dir, self._uid, self._gid)
        self.socket_dir.mkdir()
        if self._uid is not None:
            os.chown(self.socket_dir, self._uid, self._gid or -1)
        self._initialised = False

    # -- construction helpers ---------------------------------------------------------------------------------
    @classmethod
    def create_or_skip(cls, **kwargs: object) -> PostgresServer:
        """A started server, or skip the test (fail under ``CONTEXTKIT_REQUIRE_SERVICES=1``) when none can run."""
        try:
            server = cls(**kwargs)  # type: ignore[arg-type]
        except PostgresServerError as exc:
            missing_service("postgres (private server)", str(exc))
        try:
            server.start()
        except PostgresServerError as exc:
            server.close()
            missing_service("postgres (private server)", str(exc))
        return server

    # -- properties -------------------------------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:<port>/postgres`` (trust authentication, loopback only)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def socket_dsn(self) -> str:
        """The superuser over the server's Unix socket (``local`` lines of ``pg_hba.conf`` apply, not ``host``)."""
        return f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """True while the postmaster process is alive."""
        return self.pid is not None

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _run_as_server_user(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.base_dir,
            env=self._env(),
            user=self._uid,
            group=self._gid,
            extra_groups=[] if self._uid is not None else None,
        )

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        return env

    def initdb(self, timeout: float = 60.0) -> None:
        """Create the data directory (once); called by :meth:`start`."""
        if self._initialised:
            return
        result = self._run_as_server_user(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout,
        )
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}")
        if self._hba is not None:
            self._write_owned(self.data_dir / "pg_hba.conf", "\n".join(self._hba).encode() + b"\n", 0o600)
        if self._ssl_files is not None:
            cert, key = self._ssl_files
            try:
                self._write_owned(self.data_dir / "server.crt", cert.read_bytes(), 0o644)
                self._write_owned(self.data_dir / "server.key", key.read_bytes(), 0o600)
            except OSError as exc:
                raise PostgresServerError(f"cannot install the TLS certificate and key: {exc}") from None
        self._initialised = True

    def _write_owned(self, path: Path, data: bytes, mode: int) -> None:
        """Write a file of the data directory, owned by the server account (PostgreSQL refuses a key others read)."""
        path.write_bytes(data)
        path.chmod(mode)
        if self._uid is not None:
            os.chown(path, self._uid, self._gid or -1)

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (running ``initdb`` first if needed) and wait until it accepts queries."""
        if self.running:
            return
        self.initdb()
        args = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.socket_dir)]
        args += ["-c", "listen_addresses=127.0.0.1"]
        for name, value in self._settings.items():
            args += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=self._env(),
                user=self._uid,
                group=self._gid,
                extra_groups=[] if self._uid is not None else None,
                # Its own process group, so kill() takes the backends down with the postmaster.
                start_new_session=True,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PostgresServerError(f"postgres exited with {self._proc.returncode}: {self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.kill()
        raise PostgresServerError(f"postgres did not accept connections within {timeout:.0f}s: {self.log_tail()}")

    def _ready(self) -> bool:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            result = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-t", "2"],
                capture_output=True,
                timeout=5,
                check=False,
                env=self._env(),
            )
            return result.returncode == 0
        return False

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down cleanly (SIGINT: fast shutdown); SIGKILL when it takes longer than ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return
        self._reap_group(proc.pid)
        self._proc = None

    def kill(self) -> None:
        """Crash the server: SIGKILL the postmaster and every backend (its process group)."""
        proc = self._proc
        if proc is None:
            return
        self._reap_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self._proc = None

    def _reap_group(self, pgid: int) -> None:
        # Backends outlive a killed postmaster; they hold the shared memory a restart needs, so kill them all.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()  # reap the postmaster so the group can empty
            if not _live_members(pgid):
                return
            time.sleep(0.05)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (cleanly) and start again on the same data directory and port."""
        self.stop()
        self.start(timeout=timeout)

    def close(self) -> None:
        """Kill the server and remove its directory; idempotent."""
        self.kill()
        _RUNNING.discard(self)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, size: int = 2000) -> str:
        """The last ``size`` characters of the server log."""
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PostgresServer(port={self.port}, {state}, data={str(self.data_dir)!r})"


def _live_members(pgid: int) -> bool:
    """True while a process of group ``pgid`` is alive (zombies waiting for a reaper do not count)."""
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.close()
