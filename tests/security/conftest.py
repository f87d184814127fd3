"""Servers of the authentication and encryption tests: each one started here, on a free loopback port, and stopped.

* :func:`tls_files` - a throwaway CA, server and client certificate (:mod:`contextkit.testing.services.tls`);
* :func:`password_redis` - redis-server with ``requirepass``;
* :func:`acl_redis` - redis-server whose ACL user may only touch keys under its prefix and run only the commands
  of :data:`REDIS_TIER_COMMANDS` (the default user keeps full rights, for setup);
* :func:`tls_redis` - redis-server listening on a TLS port only (the plain port is off), verifying client
  certificates against the test CA;
* :func:`tls_postgres` - a private PostgreSQL whose TCP connections must use TLS and a SCRAM password
  (``hostssl ... scram-sha-256``; plain ``host`` connections are rejected), with a login role of its own;
* :func:`password_clickhouse` - a ClickHouse (chdb-core) with a user whose password a test may change (the
  server restarts on its data directory: clickhouse-local reads users from ``users.xml`` only);
* :func:`assert_hidden` - the check that a secret shows up in none of the given objects.

Test modules cannot import this conftest (``--import-mode=importlib``), so every credential travels in the
object a fixture returns. The machine's shared servers are never touched: no ACL, no config change, no restart.
Passwords are random per run, so a test that finds one in some output knows it leaked from this configuration.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from contextkit.testing.services import free_port, missing_service
from contextkit.testing.services.clickhouse_server import ClickHouseServer, ClickHouseServerError, chdb_available
from contextkit.testing.services.postgres_server import PostgresServer
from contextkit.testing.services.redis_servers import RedisServer, redis_binaries, redis_command
from contextkit.testing.services.tls import TlsFiles, TlsMaterialError, make_tls_files, openssl_version

#: The commands the Redis hot tier needs on a standalone server, and nothing else: connection set-up
#: (``hello``, ``client|setname``, ``select``; ``client|setinfo`` where the server has it), ``ping`` and
#: ``info`` (cluster detection and health), its Lua scripts (``evalsha``, ``eval``, ``script|load``,
#: ``script|exists``), the direct reads and pipelined writes of the store and the checkpointer, ``scan`` +
#: ``unlink`` (``drop_namespace``, the key count of health) and the stream commands of the archiver's outbox.
#: Commands called from inside a Lua script are checked against the user's rights too, so HSET, HINCRBY,
#: RPUSH, LTRIM, ... are here as well.
REDIS_TIER_COMMANDS = (
    "hello", "client|setname", "select", "ping",
    "info", "evalsha", "eval", "script|load", "script|exists",
    "scan", "unlink", "del", "exists", "get", "set", "incrby", "time",
    "pexpire", "hget", "hgetall", "hmget", "hset", "hdel", "hexists",
    "hincrby", "hincrbyfloat", "hlen", "lrange", "llen", "lindex", "rpush", "lpush", "ltrim",
    "sadd", "srem", "smembers",
    "zadd", "zrem", "zcard", "zscore", "zlexcount", "zrangebylex", "zrangebyscore", "zrevrange", "zrevrangebylex",
    "xadd", "xdel", "xlen", "xrange",
)  # fmt: skip
#: Timeout (seconds) of kits and stores in these tests: roomy, the machine is shared.
TIMEOUT = 10.0


def run_blocking(coro: Any) -> Any:
    """Run ``coro`` on a fresh loop in another thread (safe beside pytest-asyncio's loop, usable from sync fixtures)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _need_redis() -> None:
    if redis_binaries() is None:
        missing_service("redis-server", "redis-server / redis-cli are not on PATH")


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TlsFiles]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, removed at the end."""
    if openssl_version() is None:
        missing_service("openssl", "the openssl command is not on PATH")
    try:
        files = make_tls_files()
    except TlsMaterialError as exc:
        missing_service("openssl", str(exc))
    try:
        yield files
    finally:
        files.remove()


@dataclass(frozen=True)
class PasswordRedis:
    """A redis-server with ``requirepass``."""

    server: RedisServer
    password: str

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self.server.url


@pytest.fixture(scope="module")
def password_redis() -> Iterator[PasswordRedis]:
    """redis-server with ``--requirepass`` (a random password)."""
    _need_redis()
    password = "rp-" + secrets.token_hex(12)
    server = RedisServer(extra_args=["--requirepass", password]).start()
    try:
        yield PasswordRedis(server, password)
    finally:
        server.stop()


@dataclass(frozen=True)
class AclRedis:
    """A redis-server with an ACL user limited to the keys under :attr:`prefix` and to :attr:`commands`."""

    server: RedisServer
    user: str
    password: str
    prefix: str
    commands: tuple[str, ...]

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self.server.url


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[AclRedis]:
    """redis-server with the ACL user ``ck``: keys ``ckacl*`` only, commands of :data:`REDIS_TIER_COMMANDS`."""
    _need_redis()
    target = AclRedis(RedisServer(), "ck", "acl-" + secrets.token_hex(12), "ckacl", REDIS_TIER_COMMANDS)
    target.server.start()
    try:
        # reset: no rights at all, then exactly these; the key pattern covers every namespace "ckacl-<id>"
        # (owner keys "<ns>:{id}:..." and index keys "<ns>:#index:{#n}:..." alike).
        rule = ["ACL", "SETUSER", target.user, "reset", "on", f">{target.password}", f"~{target.prefix}*"]
        rule += ["resetchannels", "-@all", *(f"+{command}" for command in target.commands)]
        reply = redis_command(target.server.port, *rule)
        assert reply.startswith("+OK"), reply
        # redis-py sends CLIENT SETINFO on connect (and ignores a refusal); Redis 7.0 does not know the command
        redis_command(target.server.port, "ACL", "SETUSER", target.user, "+client|setinfo")
        yield target
    finally:
        target.server.stop()


class TlsRedisServer(RedisServer):
    """A redis-server that listens on a TLS port only (``--port 0``); :attr:`port` is the TLS port.

    :class:`RedisServer` checks readiness with a plain-text PING, which a TLS port cannot answer, so this class
    starts the process itself and waits for a PING over TLS (with the client certificate the server asks for).
    """

    def __init__(self, files: TlsFiles) -> None:
        tls_port = free_port()
        super().__init__(
            tls_port,
            extra_args=[
                "--port", "0",
                "--tls-port", str(tls_port),
                "--tls-cert-file", str(files.server_cert),
                "--tls-key-file", str(files.server_key),
                "--tls-ca-cert-file", str(files.ca_cert),
            ],
        )  # fmt: skip
        self.files = files

    @property
    def url(self) -> str:
        """``rediss://localhost:<tls port>/0`` (the certificate names localhost and 127.0.0.1)."""
        return f"rediss://localhost:{self.port}/0"

    def _tls_ping(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.files.ca_cert))
        context.load_cert_chain(str(self.files.client_cert), str(self.files.client_key))
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as sock,
            ):
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except (OSError, ssl.SSLError):
            return False

    def start(self, timeout: float = 15.0) -> TlsRedisServer:
        """Start the process and wait until it answers PING over TLS."""
        args = [self.binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        args += ["--daemonize", "no", "--logfile", str(self.directory / "redis-tls.log"), *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self._tls_ping():
                return self
            time.sleep(0.05)
        log = (self.directory / "redis-tls.log").read_text(errors="replace")[-1500:] if self.directory.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server with TLS did not answer on port {self.port}: {log}")


@pytest.fixture(scope="module")
def tls_redis(tls_files: TlsFiles) -> Iterator[TlsRedisServer]:
    """redis-server on a TLS-only port, client certificates verified against the test CA."""
    _need_redis()
    server = TlsRedisServer(tls_files)
    try:
        server.start()
    except RuntimeError as exc:  # e.g. a redis-server built without TLS ("--tls-port" unknown)
        missing_service("redis-server with TLS", str(exc))
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class TlsPostgres:
    """A private PostgreSQL that accepts TCP connections over TLS with a SCRAM password only."""

    server: PostgresServer
    files: TlsFiles
    user: str
    password: str

    def url(self, *, password: str | None = None, sslmode: str = "require") -> str:
        """A URL for :attr:`user` on 127.0.0.1 (its password unless another is given; ``sslmode`` as given)."""
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@127.0.0.1:{self.server.port}/postgres?sslmode={sslmode}"

    @property
    def admin_dsn(self) -> str:
        """The superuser over the Unix socket (trust), for setup and for checking what landed in the tables."""
        return self.server.socket_dsn


async def _create_role(dsn: str, user: str, password: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=TIMEOUT)
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        # user and password are generated here ([a-z0-9-]), so plain interpolation is safe
        await conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        await conn.execute(f"GRANT CREATE ON DATABASE postgres TO {user}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def tls_postgres(tls_files: TlsFiles) -> Iterator[TlsPostgres]:
    """A private PostgreSQL: ``hostssl ... scram-sha-256``, plain ``host`` rejected, the superuser on the socket."""
    hba = [
        "local all all trust",
        "hostssl all all 127.0.0.1/32 scram-sha-256",
        "host all all 127.0.0.1/32 reject",
        "host all all ::1/128 reject",
    ]
    server = PostgresServer.create_or_skip(
        ssl_cert_file=tls_files.server_cert,
        ssl_key_file=tls_files.server_key,
        hba=hba,
        settings={"password_encryption": "scram-sha-256"},
    )
    try:
        target = TlsPostgres(server, tls_files, "ckapp", "pg-" + secrets.token_hex(12))
        run_blocking(_create_role(server.socket_dsn, target.user, target.password))
        yield target
    finally:
        server.close()


@dataclass(frozen=True)
class PasswordClickHouse:
    """A ClickHouse whose user :attr:`user` needs :attr:`password`; :meth:`set_password` changes it."""

    server: ClickHouseServer
    user: str

    @property
    def password(self) -> str:
        """The password the server demands now."""
        return self.server.password or ""

    def set_password(self, password: str) -> None:
        """Make the server demand ``password`` from now on (a restart on the same port and data directory)."""
        if password != self.server.password:
            self.server.password = password
            self.server.restart()


@pytest.fixture(scope="module")
def password_clickhouse() -> Iterator[PasswordClickHouse]:
    """A ClickHouse from chdb-core on a free port whose user ``ck`` has a (random, changeable) password."""
    if not chdb_available():
        missing_service("clickhouse (chdb-core)", "chdb-core is not installed (pip install chdb-core==26.9.0)")
    server = ClickHouseServer(user="ck", password="ch-" + secrets.token_hex(12))
    try:
        server.start()
    except ClickHouseServerError as exc:
        server.cleanup()
        missing_service("clickhouse (chdb-core)", str(exc))
    try:
        yield PasswordClickHouse(server, "ck")
    finally:
        server.cleanup()


def _assert_hidden(secret: str, *shown: object) -> None:
    for thing in shown:
        for text in (str(thing), repr(thing)):
            assert secret not in text, f"a secret leaked into: {text[:300]}"


@pytest.fixture
def assert_hidden() -> Callable[..., None]:
    """``assert_hidden(secret, *objects)``: fail when ``secret`` is in the ``str`` or ``repr`` of any object."""
    return _assert_hidden
