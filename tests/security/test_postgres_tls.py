"""The PostgreSQL cold tier over TLS with a SCRAM password, on a private server started by the tests.

The server (``conftest.tls_postgres``) has a self-signed certificate chain generated for this run and a
``pg_hba.conf`` that accepts TCP connections only as ``hostssl ... scram-sha-256`` and rejects plain ``host`` ones.
The kit (memory hot tier + postgres cold tier) archives over that connection and reads the archive back; a wrong
password, a plain-text connection and an unverifiable certificate all fail with typed errors that show no password.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from contextkit import ContextKit
from contextkit.errors import BackendUnavailable
from contextkit.plugins import get_plugin_manager
from contextkit.stores import StoreSettings

pytestmark = pytest.mark.postgres

TIMEOUT = 10.0


def _kit(url: str) -> ContextKit:
    config = {
        "hot": "memory",
        "cold": "postgres",
        "namespace": f"ckpgtls_{uuid.uuid4().hex[:10]}",
        "timeout": TIMEOUT,
        "postgres": {"url": url},
        # a wrong password keeps the archive from answering: new ids are taken as new (and the failure logged)
        "tiering": {"assume_new_when_unreachable": True},
    }
    return ContextKit.from_config(config, env={})


async def _admin_fetch(tls_postgres: Any, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(tls_postgres.admin_dsn, timeout=TIMEOUT)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _open_cold(url: str) -> Any:
    """A postgres cold store built through the plugin registry (as the composer does) and opened."""
    factory = get_plugin_manager().backends.get("cold", "postgres").factory
    store = factory(StoreSettings(namespace=f"ckpgtls_{uuid.uuid4().hex[:10]}", timeout=TIMEOUT), {"url": url})
    try:
        await store.open()
    except BaseException:
        await store.aclose()
        raise
    return store


@pytest.mark.parametrize("mode", ["require", "verify-full"])
async def test_the_cold_tier_archives_and_reads_back_over_tls_with_a_scram_password(
    tls_postgres: Any, mode: str, assert_hidden: Callable[..., None]
) -> None:
    """Write through the kit, flush the archiver, read the archive back; every connection of the role is TLS."""
    url = tls_postgres.url(sslmode=mode)
    if mode == "verify-full":
        url += f"&sslrootcert={tls_postgres.files.ca_cert}"
    kit = _kit(url)
    async with kit:
        await kit.create_session("s1", user_id="u1", metadata={"via": "tls"})
        for i in range(5):
            await kit.add_conversation_message("s1", "user", f"message {i}")
        assert await kit.update_session("s1", increment_requests=True, add_processing_time=0.25)
        assert kit.archiver is not None and await kit.archiver.flush(30)
        cold = kit.cold
        assert cold is not None
        archived = await cold.read_history("s1", None)
        assert [m.content for m in archived] == [f"message {i}" for i in range(5)]
        session = await cold.read_session("s1")
        assert session is not None and session.user_id == "u1" and session.request_count == 1
        rows = await _admin_fetch(
            tls_postgres,
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1",
            tls_postgres.user,
        )
        assert rows and all(row["ssl"] for row in rows), rows
        health = await kit.health_check()
        assert health["status"] == "healthy", health
        assert health["cold"]["status"] == "healthy"
        assert_hidden(tls_postgres.password, kit, cold, kit.describe(), health, cold.describe())
        await cold.drop_schema()  # type: ignore[attr-defined]


async def test_a_wrong_password_fails_typed_and_shows_neither_password(
    tls_postgres: Any, assert_hidden: Callable[..., None]
) -> None:
    """Opening the cold tier with a wrong password raises BackendUnavailable; the kit starts degraded, secret-free."""
    wrong = "wrong-" + uuid.uuid4().hex
    url = tls_postgres.url(password=wrong)
    with pytest.raises(BackendUnavailable) as caught:
        await _open_cold(url)
    assert "password" in str(caught.value).lower()  # the reason ("password authentication failed") is kept
    assert_hidden(wrong, caught.value)
    assert_hidden(tls_postgres.password, caught.value)
    assert caught.value.__cause__ is None

    kit = _kit(url)
    async with kit:  # the kit starts: events wait in the outbox while the cold tier refuses
        await kit.create_session("s1", user_id="u1")
        health = await kit.health_check()
        assert health["status"] == "degraded"
        assert health["cold"]["status"] == "unhealthy"
        assert_hidden(wrong, health, kit.describe(), kit, kit.cold)
        await kit.aclose(drain_timeout=0)


async def test_a_plain_text_connection_is_rejected_typed(tls_postgres: Any, assert_hidden: Callable[..., None]) -> None:
    """``sslmode=disable`` reaches the ``host ... reject`` line: BackendUnavailable, password not shown."""
    with pytest.raises(BackendUnavailable) as caught:
        await _open_cold(tls_postgres.url(sslmode="disable"))
    assert "no encryption" in str(caught.value) or "pg_hba" in str(caught.value), caught.value
    assert_hidden(tls_postgres.password, caught.value)


async def test_verify_full_without_the_ca_refuses_the_self_signed_certificate(
    tls_postgres: Any, assert_hidden: Callable[..., None]
) -> None:
    """``sslmode=verify-full`` checks the chain: the system CAs do not know the test CA, so opening fails, typed."""
    with pytest.raises(BackendUnavailable) as caught:
        await _open_cold(tls_postgres.url(sslmode="verify-full"))
    assert_hidden(tls_postgres.password, caught.value)
