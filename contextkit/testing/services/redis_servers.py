"""Throw-away redis-server processes for tests: a standalone server and a 3-master Redis Cluster.

Both bind 127.0.0.1 on free ports, keep nothing on disk beyond a temporary directory (``--save ""``,
``--appendonly no``) and are stopped (or SIGKILLed, for fault tests) by the test that started them. They need the
``redis-server`` and ``redis-cli`` binaries on PATH; :func:`redis_binaries` tells whether they are there so a
fixture can call :func:`contextkit.testing.services.missing_service` instead.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from contextkit.testing.services import free_port, missing_service, wait_for_port

__all__ = ["RedisClusterServers", "RedisServer", "free_cluster_port", "private_redis_server", "redis_binaries", "redis_command"]


def redis_binaries() -> tuple[str, str] | None:
    """Paths of ``redis-server`` and ``redis-cli``, or None when either is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def redis_command(port: int, *args: str, timeout: float = 2.0) -> str:
    """Send one command over a raw socket and return the reply's text (no client library involved)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        chunks = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks += chunk
            if chunks.startswith((b"+", b"-", b":")) and chunks.endswith(b"\r\n"):
                break
            if chunks.startswith(b"$"):
                header, _, rest = chunks.partition(b"\r\n")
                if int(header[1:]) < 0 or len(rest) >= int(header[1:]) + 2:
                    break
    return chunks.decode("utf-8", "replace")


def free_cluster_port() -> int:
    """A free port P such that P + 10000 (the cluster bus port) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    """One redis-server process on 127.0.0.1.

    :param port: the port (a free one by default); :meth:`restart` reuses it.
    :param directory: working directory (a temporary one by default, removed by :meth:`stop`).
    :param extra_args: more ``redis-server`` arguments (e.g. ``["--cluster-enabled", "yes"]``).
    """

    def __init__(self, port: int | None = None, directory: Path | None = None, extra_args: list[str] | None = None):
        binaries = redis_binaries()
        if binaries is None:
            raise RuntimeError("redis-server / redis-cli are not on PATH")
        self.binary = binaries[0]
        self.port = port or free_port()
        self._own_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="contextkit-redis-"))
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        """Start the process and wait until it answers PING."""
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / f"redis-{self.port}.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        if not wait_for_port(self.port, timeout=timeout):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        while time.monotonic() < deadline:
            try:
                reply = redis_command(self.port, "PING")
                # -NOAUTH also proves the server is serving (a --requirepass server)
                if reply.startswith(("+PONG", "-NOAUTH")):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} does not answer PING")

    def kill(self) -> None:
        """SIGKILL the process (a crash: no shutdown, no save) and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, timeout: float = 15.0) -> RedisServer:
        """Start again on the same port (after :meth:`kill` or :meth:`stop`)."""
        self.kill()
        return self.start(timeout)

    def stop(self) -> None:
        """Terminate the process and remove the temporary directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class RedisClusterServers:
    """A Redis Cluster of ``masters`` masters and no replicas on 127.0.0.1, created with ``redis-cli --cluster``."""

    def __init__(self, masters: int = 3) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.directory = Path(tempfile.mkdtemp(prefix="contextkit-redis-cluster-"))
        self.nodes: list[RedisServer] = []
        self.masters = masters

    @property
    def ports(self) -> list[int]:
        """The node ports."""
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The URL of the first node (a cluster client discovers the others)."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> RedisClusterServers:
        """Start the nodes, create the cluster and wait for ``cluster_state:ok`` on every node."""
        binaries = redis_binaries()
        if binaries is None:
            raise RuntimeError("redis-server / redis-cli are not on PATH")
        try:
            for _ in range(self.masters):
                port = free_cluster_port()
                node_dir = self.directory / str(port)
                node_dir.mkdir()
                args = ["--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf"]
                args += ["--cluster-node-timeout", "2000"]
                self.nodes.append(RedisServer(port, node_dir, args).start())
            create = [binaries[1], "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            create += ["--cluster-replicas", "0", "--cluster-yes"]
            result = subprocess.run(create, capture_output=True, timeout=timeout, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {result.stdout[-500:]!r} {result.stderr[-500:]!r}")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all("cluster_state:ok" in redis_command(p, "CLUSTER", "INFO") for p in self.ports):
                    return self
                time.sleep(0.1)
            raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node and remove the directory."""
        for node in self.nodes:
            node.stop()
        self.nodes = []
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def private_redis_server(directory: Path | None = None, extra_args: list[str] | None = None) -> RedisServer:
    """A redis-server of the test's own (to kill, flush, restart or configure), not started yet: use it as
    ``with private_redis_server() as server:``. Without the binaries the test is a missing service (it fails when
    ``CONTEXTKIT_REQUIRE_SERVICES=1``)."""
    if redis_binaries() is None:
        missing_service("redis-server", "redis-server / redis-cli are not on PATH")
    return RedisServer(directory=directory, extra_args=extra_args)
