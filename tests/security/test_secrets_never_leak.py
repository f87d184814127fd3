"""Secrets never leak: a property test over generated passwords against servers that demand them.

For each backend (Redis as the hot tier, PostgreSQL over TLS and ClickHouse as the cold tier, all started by
``conftest.py``) hypothesis generates passwords full of the characters that broke masking (``#``, ``/``, ``?``,
``@``, ``:``, quotes, ``%``, spaces) and the way the configuration carries them: percent-encoded in the URL, as its
own option, unencoded in the URL, in the environment, or (PostgreSQL) as a libpq keyword string. The server is set
to demand the password; the kit then runs, the server's password is changed under it (so every error path runs:
refused connections, a failing archiver, unhealthy health), and the CLI runs on the same configuration before and
after. Everything that shows text is collected: errors (``str``, ``repr``, every chained cause and the formatted
traceback), reprs, ``describe()``, ``health_check()``, ``get_metrics()``, the archiver's ``last_error``, CLI output
(``doctor``, ``doctor --json``, ``sessions list``) and every log record of every logger at DEBUG. Neither password
(as written, nor percent-encoded) may appear in any of it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import string
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from contextkit import ContextKit, masking
from contextkit.cli import cli
from contextkit.errors import ContextKitError

#: Printable ASCII without the line-breaking whitespace: what people put in passwords, URL delimiters included.
_ALPHABET = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c")
#: Generated passwords: any printable text around at least one URL delimiter and three letters or digits (so a
#: password cannot be a piece of text every output holds anyway, such as a port number).
PASSWORDS = st.tuples(
    st.text(alphabet=_ALPHABET, max_size=12),
    st.sampled_from("#/?@:"),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=3, max_size=6),
    st.text(alphabet=_ALPHABET, max_size=12),
).map("".join)
# No shrinking: each example runs servers for seconds, so a failure is reported as found (its values are printed).
EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TIMEOUT = 5.0
#: Environment variables the CLI would read on top of its configuration file; unset while it runs.
_CONFIG_VARIABLES = (
    "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "CONTEXTKIT_HOT", "CONTEXTKIT_COLD",
    "CONTEXTKIT_HOT_URL", "CONTEXTKIT_COLD_URL", "CONTEXTKIT_NAMESPACE", "CONTEXTKIT_CONFIG", "CONTEXT_PERMANENT_BACKEND",
    "CONTEXT_PG_URL", "POSTGRES_URL", "CONTEXT_PG_DATABASE", "CLICKHOUSE_ENABLED", "CLICKHOUSE_HOST", "CLICKHOUSE_PORT",
    "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "CLICKHOUSE_DATABASE",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _forget_generated_passwords() -> Iterator[None]:
    """The kit remembers every password it parses for the life of the process; forget the generated ones after
    the test, so a drawn string never masks text in later tests that happens to contain it."""
    known = masking._KNOWN
    before = (known.secrets, known.pattern)
    yield
    known.secrets, known.pattern = before


# -- what is shown ---------------------------------------------------------------------------------------------------
def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]


def _texts(thing: object) -> Iterator[str]:
    if isinstance(thing, BaseException):
        for exc in _chain(thing):
            yield str(exc)
            yield repr(exc)
        yield "".join(traceback.format_exception(type(thing), thing, thing.__traceback__))
        return
    yield str(thing)
    yield repr(thing)
    if isinstance(thing, (dict, list, tuple)):
        yield json.dumps(thing, default=str, ensure_ascii=False)


class Shown:
    """Everything a run showed: objects, CLI output and log lines."""

    def __init__(self) -> None:
        self.things: list[object] = []

    def add(self, *things: object) -> None:
        self.things.extend(things)

    def assert_hidden(self, *secrets: str) -> None:
        forms = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote(secret))}
        for thing in self.things:
            for text in _texts(thing):
                for form in forms:
                    assert form not in text, f"a password leaked ({form!r}) into: {text[:400]}"


class _Records(logging.Handler):
    """Formats every record of every logger, tracebacks included, as a handler of the application would."""

    def __init__(self, shown: Shown) -> None:
        super().__init__(logging.DEBUG)
        self.shown = shown
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.shown.add(self.format(record))


class _DebugLogs:
    """Every logger at DEBUG into ``shown`` for the duration of a ``with`` block."""

    def __init__(self, shown: Shown) -> None:
        self.handler = _Records(shown)
        self.root = logging.getLogger()

    def __enter__(self) -> None:
        self.level = self.root.level
        self.root.setLevel(logging.DEBUG)
        self.root.addHandler(self.handler)

    def __exit__(self, *exc: object) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.level)


# -- one run ---------------------------------------------------------------------------------------------------------
def _toml(config: dict[str, Any]) -> str:
    """``config`` as TOML (JSON strings are TOML basic strings)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables.extend(f"{k} = {json.dumps(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines + tables) + "\n"


def _run_cli(shown: Shown, config: dict[str, Any], env: dict[str, str], tmp: Path) -> None:
    path = tmp / "contextkit.toml"
    path.write_text(_toml(config), encoding="utf-8")
    runner = CliRunner()
    environment: dict[str, str | None] = {name: None for name in _CONFIG_VARIABLES}
    environment.update(env)
    for args in (["doctor"], ["--json", "doctor"], ["sessions", "list"]):
        result = runner.invoke(cli, ["--config", str(path), *args], env=environment, catch_exceptions=True)
        shown.add(result.output, result.stdout, result.stderr)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            shown.add(result.exception)


async def _show_status(shown: Shown, kit: ContextKit) -> None:
    """describe(), health_check() and get_metrics() (which may raise while a tier is refused: the error is shown)."""
    shown.add(kit.describe())
    for status in (kit.health_check, kit.get_metrics):
        try:
            shown.add(await status())
        except ContextKitError as exc:
            shown.add(exc)


async def _exercise(
    shown: Shown, config: dict[str, Any], env: dict[str, str], change_password: Callable[[], Awaitable[None]]
) -> None:
    """Open a kit on ``config``, use it, change the server's password under it, use it again; show everything."""
    try:
        kit = ContextKit.from_config(config, env=env)
    except ContextKitError as exc:
        shown.add(exc)
        return
    shown.add(kit, kit.config, kit.config.describe(), kit.describe(), kit.hot, kit.hot.describe())
    if kit.cold is not None:
        shown.add(kit.cold, kit.cold.describe())
    try:
        await kit.open()
    except ContextKitError as exc:
        shown.add(exc, kit.describe())
        await kit.aclose()
        return
    try:
        try:
            await kit.create_session("s1", user_id="u1")
            await kit.add_conversation_message("s1", "user", "before the password changed")
        except ContextKitError as exc:  # a new id asks the archive first, which may refuse (and must not leak)
            shown.add(exc)
        await _show_status(shown, kit)
        await change_password()
        failed = 0
        for attempt in (
            lambda: kit.create_session("s2", user_id="u2"),
            lambda: kit.add_conversation_message("s1", "user", "after the password changed"),
            lambda: kit.get_conversation_history("s1", 10),
        ):
            try:
                await attempt()
            except ContextKitError as exc:
                shown.add(exc)
                failed += 1
        archiver = kit.archiver
        if archiver is not None:
            # Polled (bounded): the archiver exposes its failure count, not an event to wait on.
            for _ in range(600):  # 30 s
                if archiver.consecutive_failures:
                    break
                await asyncio.sleep(0.05)
            assert archiver.consecutive_failures > 0, "the archiver never met the changed password"
            shown.add(archiver.last_error)
        else:
            assert failed, "no call met the changed password"
        await _show_status(shown, kit)
    finally:
        try:
            await kit.aclose()
        except ContextKitError as exc:
            shown.add(exc)


def run_case(
    tmp: Path,
    config: dict[str, Any],
    env: dict[str, str],
    change_password: Callable[[], Awaitable[None]],
) -> Shown:
    """The CLI on the working password, the kit (which changes it), the CLI on the changed one; all at DEBUG."""
    shown = Shown()
    with _DebugLogs(shown):
        _run_cli(shown, config, env, tmp)
        asyncio.run(_exercise(shown, config, env, change_password))
        _run_cli(shown, config, env, tmp)
    return shown


def _base(hot: str, cold: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"hot": hot, "fallback": False, "timeout": TIMEOUT, "namespace": "cksecrets"}
    if cold:
        config["cold"] = cold
        config["archiver"] = {"drain_timeout": 0.5, "max_backoff": 0.2}
    return config


# -- Redis -----------------------------------------------------------------------------------------------------------
@pytest.mark.redis
@EXAMPLES
@given(password=PASSWORDS, other=PASSWORDS, how=st.sampled_from(["url", "option", "raw url", "env"]))
def test_redis_passwords_never_appear(password_redis: Any, tmp_path: Path, password: str, other: str, how: str) -> None:
    """Redis hot tier with ``requirepass``: no generated password shows anywhere, whichever way it is configured."""
    assume(password != other)
    port = password_redis.server.port
    assume(password not in f"redis://127.0.0.1:{port}/0")
    current = {"password": password_redis.password}

    async def set_password(new: str, *, drop_clients: bool) -> None:
        admin = aioredis.Redis(port=port, password=current["password"])
        try:
            await admin.config_set("requirepass", new)
            current["password"] = new
            if drop_clients:  # the kit's pooled connections were authenticated with the old one
                await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        finally:
            await admin.aclose()

    asyncio.run(set_password(password, drop_clients=True))
    config, env = _base("redis", None), {}
    if how == "url":
        config["redis"] = {"url": f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"}
    elif how == "option":
        config["redis"] = {"url": f"redis://127.0.0.1:{port}/0", "password": password}
    elif how == "raw url":
        config["redis"] = {"url": f"redis://:{password}@127.0.0.1:{port}/0"}
    else:
        env = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port), "REDIS_PASSWORD": password}
    try:
        shown = run_case(tmp_path, config, env, lambda: set_password(other, drop_clients=True))
    finally:
        asyncio.run(set_password(password_redis.password, drop_clients=False))
    shown.assert_hidden(password, other)


# -- PostgreSQL ------------------------------------------------------------------------------------------------------
@pytest.mark.postgres
# The aborted TLS logins of _collect_aborted_tls_sockets: hypothesis runs several examples in one test call, so the
# garbage collector may meet one example's socket while the next runs, outside the ignore of that helper (CI failed
# so once). Only this test's own private server is aborted on purpose.
@pytest.mark.filterwarnings(r"ignore:unclosed (transport|<socket):ResourceWarning")
@EXAMPLES
@given(password=PASSWORDS, other=PASSWORDS, how=st.sampled_from(["url", "option", "raw url", "env", "libpq"]))
def test_postgres_passwords_never_appear(tls_postgres: Any, tmp_path: Path, password: str, other: str, how: str) -> None:
    """PostgreSQL cold tier over TLS with SCRAM: no generated password shows anywhere, the archiver's failures and
    the libpq keyword string included."""
    assume(password != other)
    port, user = tls_postgres.server.port, tls_postgres.user
    assume(password not in f"postgresql://{user}@127.0.0.1:{port}/postgres?sslmode=require")

    async def set_password(new: str) -> None:
        conn = await asyncpg.connect(tls_postgres.admin_dsn, timeout=10)
        try:
            literal = "'" + new.replace("'", "''") + "'"  # standard_conforming_strings: only quotes are doubled
            await conn.execute(f"ALTER ROLE {user} PASSWORD {literal}")
            # the kit's pooled connections logged in with the old one: close them so it must log in again
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", user)
        finally:
            await conn.close()

    asyncio.run(set_password(password))
    base = f"127.0.0.1:{port}/postgres?sslmode=require"
    config, env = _base("memory", "postgres"), {}
    if how == "url":
        config["postgres"] = {"url": f"postgresql://{user}:{quote(password, safe='')}@{base}"}
    elif how == "option":
        config["postgres"] = {"url": f"postgresql://{user}@{base}", "password": password}
    elif how == "raw url":
        config["postgres"] = {"url": f"postgresql://{user}:{password}@{base}"}
    elif how == "env":
        del config["cold"]
        encoded = quote(password, safe="")
        env = {"CONTEXT_PERMANENT_BACKEND": "postgres", "CONTEXT_PG_URL": f"postgresql://{user}:{encoded}@{base}"}
    else:
        literal = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
        config["postgres"] = {"url": f"host=127.0.0.1 port={port} user={user} password={literal} dbname=postgres"}
    try:
        shown = run_case(tmp_path, config, env, lambda: set_password(other))
    finally:
        asyncio.run(_drop_schema(tls_postgres.admin_dsn))
        _collect_aborted_tls_sockets()
    shown.assert_hidden(password, other)


def _collect_aborted_tls_sockets() -> None:
    """Collect, here, the raw socket of a TLS login this case aborted on purpose.

    The case changes the role's password and terminates its sessions while the pool logs in again over TLS; now and
    then asyncio leaves the plain transport under an aborted TLS handshake unclosed (its SSL shutdown never
    finishes once the case's event loop is closed), and the garbage collector reports it later as an unraisable
    ResourceWarning, in whichever test is running then (it failed the ClickHouse case once). The socket belongs to
    the private server of this test; collecting it now, with that one warning ignored, keeps it out of the others.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"unclosed (transport|<socket)", ResourceWarning)
        gc.collect()


async def _drop_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute('DROP SCHEMA IF EXISTS "cksecrets" CASCADE')
    finally:
        await conn.close()


# -- ClickHouse ------------------------------------------------------------------------------------------------------
@pytest.mark.clickhouse
@EXAMPLES
@given(password=PASSWORDS, other=PASSWORDS, how=st.sampled_from(["url", "option", "raw url", "env"]))
def test_clickhouse_passwords_never_appear(
    password_clickhouse: Any, tmp_path: Path, password: str, other: str, how: str
) -> None:
    """ClickHouse cold tier with a password user: no generated password shows anywhere, the outage while the server
    restarts with another password and the authentication failures after it included."""
    assume(password != other)
    port, user = password_clickhouse.server.port, password_clickhouse.user
    assume(password not in f"http://{user}@127.0.0.1:{port}/default")
    password_clickhouse.set_password(password)

    async def change() -> None:
        await asyncio.to_thread(password_clickhouse.set_password, other)

    config, env = _base("memory", "clickhouse"), {}
    if how == "url":
        config["clickhouse"] = {"url": f"http://{user}:{quote(password, safe='')}@127.0.0.1:{port}/default"}
    elif how == "option":
        config["clickhouse"] = {"host": "127.0.0.1", "port": port, "username": user, "password": password}
    elif how == "raw url":
        config["clickhouse"] = {"url": f"http://{user}:{password}@127.0.0.1:{port}/default"}
    else:
        del config["cold"]
        env = {
            "CONTEXT_PERMANENT_BACKEND": "clickhouse", "CLICKHOUSE_HOST": "127.0.0.1", "CLICKHOUSE_PORT": str(port),
            "CLICKHOUSE_USER": user, "CLICKHOUSE_PASSWORD": password,
        }  # fmt: skip
    shown = run_case(tmp_path, config, env, change)
    shown.assert_hidden(password, other)
