"""ScriptSet's direct path: scripts and reads on connections kept out of the pool (see contextkit_redis.scripts)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from contextkit_redis import scripts
from contextkit_redis.scripts import ScriptSet

ECHO = "return ARGV[1]"
SET_GET = "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])"
FAIL = "return redis.error_reply('refused on purpose')"


@pytest.fixture
async def client(redis_url: str) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=6, timeout=2.0)
    client = aioredis.Redis(connection_pool=pool)
    yield client
    await client.aclose()
    # A client handed a pool does not close it: its connections would be left to the garbage collector
    # (ResourceWarning: unclosed transport).
    await pool.disconnect()


def _in_use(client: aioredis.Redis) -> int:
    return len(client.connection_pool._in_use_connections)


async def test_scripts_and_reads_run_on_kept_connections_and_go_back_to_the_pool(client: aioredis.Redis) -> None:
    runner = ScriptSet(client, {"echo": ECHO, "set_get": SET_GET})
    assert runner.keep == 3  # half of max_connections
    key = f"ckrunner-{uuid.uuid4().hex}"
    try:
        assert await runner.run("echo", [], ["hé"]) == "hé".encode()
        assert await runner.run("set_get", [key], [b"\x00\xff"]) == b"\x00\xff"
        assert await runner.read("GET", key) == b"\x00\xff"
        # 12 calls at once need more connections than are kept: the extra ones go back to the pool
        replies = await asyncio.gather(*(runner.run("echo", [], [str(i)]) for i in range(12)))
        assert replies == [str(i).encode() for i in range(12)]
        assert _in_use(client) <= runner.keep
        await runner.release()
        assert _in_use(client) == 0
    finally:
        await client.delete(key)


async def test_an_error_reply_is_raised_and_the_connection_stays_usable(client: aioredis.Redis) -> None:
    runner = ScriptSet(client, {"fail": FAIL, "echo": ECHO})
    with pytest.raises(ResponseError, match="refused on purpose"):
        await runner.run("fail", [], [])
    assert await runner.run("echo", [], ["after"]) == b"after"
    await runner.release()


async def test_a_connection_the_server_closed_is_reopened_before_the_next_call(client: aioredis.Redis) -> None:
    runner = ScriptSet(client, {"echo": ECHO})
    await runner.run("echo", [], ["first"])
    [kept] = runner._idle
    await client.client_kill_filter(_id=await _client_id(runner))
    await asyncio.sleep(0.05)  # the transport sees the EOF
    assert await runner.run("echo", [], ["second"]) == b"second"
    assert runner._idle == [kept]  # the same connection object, reconnected
    await runner.release()


async def test_a_script_the_server_does_not_know_is_loaded_on_first_use(client: aioredis.Redis) -> None:
    body = f"return '{uuid.uuid4().hex}'"  # unknown to the server: NOSCRIPT, then SCRIPT LOAD (as after a restart)
    runner = ScriptSet(client, {"fresh": body})
    assert (await runner.run("fresh", [], [])).decode() == body.split("'")[1]
    await runner.release()


async def test_without_hiredis_the_connections_own_packer_is_used(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scripts, "_hiredis_pack", None)
    runner = ScriptSet(client, {"echo": ECHO})
    assert await runner.run("echo", [], [b"x" * 10_000]) == b"x" * 10_000  # redis-py packs this in chunks
    await runner.release()


async def _client_id(runner: ScriptSet) -> int:
    [conn] = runner._idle
    await conn.send_packed_command(conn.pack_command("CLIENT", "ID"), False)
    return int(await conn.read_response())


async def test_a_call_still_running_at_release_returns_its_connection_to_the_pool(client: aioredis.Redis) -> None:
    runner = ScriptSet(client, {"echo": ECHO})
    call = asyncio.ensure_future(runner.run("echo", [], ["late"]))
    await asyncio.sleep(0)  # the call has taken its connection
    await runner.release()
    assert await call == b"late"
    assert runner._idle == []
    assert _in_use(client) == 0
