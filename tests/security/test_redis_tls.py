"""The Redis hot tier over TLS (``rediss://``) against a redis-server that has no plain-text port at all.

The server (``conftest.tls_redis``) presents a certificate signed by a CA generated for this run and asks every
client for a certificate signed by the same CA (redis-server's default ``tls-auth-clients yes``). A kit that
trusts the CA and presents the client certificate works; one that does not trust the CA, presents no client
certificate or speaks plain text fails to open with a typed error.
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.errors import BackendUnavailable

pytestmark = pytest.mark.redis

TIMEOUT = 10.0


def _kit(url: str, **redis_options: Any) -> ContextKit:
    config = {
        "hot": "redis",
        "namespace": f"cktls-{uuid.uuid4().hex[:10]}",
        "timeout": TIMEOUT,
        "fallback": False,
        "redis": {"url": url, **redis_options},
    }
    return ContextKit.from_config(config, env={})


def _client_cert(tls_redis: Any) -> dict[str, str]:
    return {"ssl_certfile": str(tls_redis.files.client_cert), "ssl_keyfile": str(tls_redis.files.client_key)}


async def _round_trip(kit: ContextKit) -> None:
    await kit.create_session("s1", user_id="u1")
    await kit.add_conversation_message("s1", "user", "encrypted hello")
    assert [m.content for m in await kit.get_conversation_history("s1")] == ["encrypted hello"]


@pytest.mark.parametrize(
    ("host", "cert_reqs"),
    [("localhost", "required"), ("127.0.0.1", "required"), ("localhost", ssl.CERT_REQUIRED)],
    ids=["localhost", "127.0.0.1", "localhost, ssl.CERT_REQUIRED"],
)
async def test_a_kit_over_rediss_that_trusts_the_ca_works(tls_redis: Any, host: str, cert_reqs: Any) -> None:
    """``rediss://`` + ``ssl_ca_certs`` (+ the client certificate the server asks for): a full round trip, healthy.
    ``ssl_cert_reqs`` by name or as an ``ssl.VerifyMode`` (which redis-py 5.x cannot take: the tier hands it on by
    name)."""
    url = f"rediss://{host}:{tls_redis.port}/0"
    kit = _kit(url, ssl_ca_certs=str(tls_redis.files.ca_cert), ssl_cert_reqs=cert_reqs, **_client_cert(tls_redis))
    async with kit:
        await _round_trip(kit)
        health = await kit.health_check()
        assert health["status"] == "healthy", health
        assert health["hot"]["target"].startswith("rediss://")
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]


async def test_a_kit_that_does_not_trust_the_ca_fails_to_open(tls_redis: Any) -> None:
    """Certificate verification is on by default: without the CA the self-signed chain is refused, typed."""
    kit = _kit(tls_redis.url, **_client_cert(tls_redis))
    with pytest.raises(BackendUnavailable) as caught:
        await kit.open()
    await kit.aclose()
    assert "certificate" in str(caught.value).lower() or "ssl" in str(caught.value).lower(), caught.value


async def test_a_kit_without_a_client_certificate_is_refused_by_the_server(tls_redis: Any) -> None:
    """The server verifies clients: trusting its CA is not enough without a client certificate."""
    kit = _kit(tls_redis.url, ssl_ca_certs=str(tls_redis.files.ca_cert))
    with pytest.raises(BackendUnavailable):
        await kit.open()
    await kit.aclose()


async def test_plain_text_to_the_tls_port_fails_typed(tls_redis: Any) -> None:
    """``redis://`` against a TLS-only server fails to open with BackendUnavailable (no hang, no plain fallback)."""
    kit = _kit(f"redis://127.0.0.1:{tls_redis.port}/0")
    with pytest.raises(BackendUnavailable):
        await kit.open()
    await kit.aclose()


async def test_turning_verification_off_is_an_explicit_choice_that_still_encrypts(tls_redis: Any) -> None:
    """``ssl_cert_reqs = "none"`` connects without the CA (the connection is still TLS: the port speaks nothing else)."""
    kit = _kit(tls_redis.url, ssl_cert_reqs="none", **_client_cert(tls_redis))
    async with kit:
        await _round_trip(kit)
        await kit.hot.drop_namespace()  # type: ignore[attr-defined]
