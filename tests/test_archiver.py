"""Dual-write without loss, on the in-process tiers: outage, backlog, read-through, durable file outbox."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from contextkit import ContextKit
from contextkit.archiver import FileOutbox, MemoryOutbox
from contextkit.errors import BackendUnavailable, OwnerUnknown
from contextkit.records import ArchiveEvent


async def _kit(**overrides: object) -> ContextKit:
    config = {"hot": "memory", "cold": "memory", "namespace": "arch", "archiver": {"flush_interval": 0.01}}
    config.update(overrides)
    return await ContextKit.from_config(config, env={}).open()


async def test_cold_outage_delays_but_never_drops_events() -> None:
    kit = await _kit(archiver={"flush_interval": 0.01, "max_backoff": 0.05})
    try:
        cold = kit.cold
        await kit.create_session("s", "u")  # known to the hot tier before the outage
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        cold.set_available(False)  # type: ignore[union-attr]
        for i in range(2000):
            await kit.add_conversation_message("s", "user", f"m{i}")
        await asyncio.sleep(0.2)
        metrics = (await kit.get_metrics())["archiver"]
        assert metrics["queue_depth"] == 2000 and metrics["failures"] >= 1
        health = await kit.health_check()
        assert health["status"] == "degraded"
        cold.set_available(True)  # type: ignore[union-attr]
        assert await kit.archiver.flush(10)  # type: ignore[union-attr]
        assert await cold.count_events("context_conversations", "s") == 2000  # type: ignore[union-attr]
        archived = await cold.read_history("s", None)  # type: ignore[union-attr]
        assert [m.seq for m in archived] == list(range(1, 2001))
        assert (await kit.health_check())["status"] == "healthy"
    finally:
        await kit.aclose()


async def test_hot_path_never_waits_for_a_down_cold_tier() -> None:
    kit = await _kit()
    try:
        await kit.create_session("s", "u")
        kit.cold.set_available(False)  # type: ignore[union-attr]
        await asyncio.wait_for(kit.update_session("s", increment_requests=True), timeout=1.0)
        await asyncio.wait_for(kit.add_message("s", "user", "hi"), timeout=1.0)
        session = await kit.get_session("s")
        assert session is not None and session.request_count == 1
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
        await kit.aclose()


async def test_an_owner_the_hot_tier_does_not_know_fails_typed_while_the_archive_is_down() -> None:
    """A new (or lost) id cannot be numbered without asking the archive: the call fails typed, writes nothing,
    and works once the archive is back; health says why in the meantime."""
    kit = await _kit(tiering={"consult_timeout": 0.5})
    try:
        kit.cold.set_available(False)  # type: ignore[union-attr]
        with pytest.raises(BackendUnavailable, match="archive cannot be read"):
            await kit.add_message("new", "user", "hello")
        with pytest.raises(BackendUnavailable):
            await kit.create_session("new", "u")
        health = await kit.health_check()
        assert health["status"] == "degraded" and health["tiering"]["consult_failures"] == 2
        assert any("could not be asked" in issue for issue in health["issues"])
        kit.cold.set_available(True)  # type: ignore[union-attr]
        assert (await kit.add_message("new", "user", "hello")).seq == 1
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert await kit.cold.count_events("context_conversations", "new") == 1  # type: ignore[union-attr]
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
        await kit.aclose()


async def test_assume_new_when_unreachable_serves_new_owners_during_an_outage_and_counts_them() -> None:
    kit = await _kit(tiering={"assume_new_when_unreachable": True})
    try:
        kit.cold.set_available(False)  # type: ignore[union-attr]
        await kit.create_session("fresh", "u")
        assert (await kit.add_message("fresh", "user", "hello")).seq == 1
        metrics = await kit.get_metrics()
        assert metrics["tiering"]["assumed_new"] == 1 and metrics["tiering"]["consult_failures"] == 1
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
        await kit.aclose()


async def test_full_outbox_refuses_writes_instead_of_dropping() -> None:
    kit = await _kit(archiver={"max_pending": 10, "flush_interval": 0.01})
    try:
        await kit.add_conversation_message("s", "user", "m0")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        kit.cold.set_available(False)  # type: ignore[union-attr]
        for i in range(1, 11):
            await kit.add_conversation_message("s", "user", f"m{i}")
        with pytest.raises(BackendUnavailable, match="outbox is full"):
            await kit.add_conversation_message("s", "user", "one too many")
        assert len(await kit.get_conversation_history("s", limit=0)) == 11
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
        await kit.aclose()


async def test_read_through_after_hot_loss_rehydrates_hot_tier() -> None:
    kit = await _kit()
    try:
        await kit.create_session("s", "u", {"k": "v"})
        await kit.update_session("s", increment_requests=True)
        for i in range(30):
            await kit.add_conversation_message("s", "user" if i % 2 else "assistant", f"m{i}")
        key = await kit.create_conversation_session(
            "s", [{"id": "u", "type": "user"}, {"id": "a", "type": "agent", "role": "r"}], "user_to_agent"
        )
        await kit.store_checkpoint("s", "c1", {"step": 1})
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        await kit.hot.delete_session("s", evict=True)  # as if the hot copy expired
        with pytest.raises(OwnerUnknown):
            await kit.hot.get_session("s")

        session = await kit.get_session("s")
        assert session is not None and session.request_count == 1 and session.metadata == {"k": "v"}
        history = await kit.get_conversation_history("s", limit=10)
        assert [m.content for m in history] == [f"m{i}" for i in range(20, 30)]
        assert [m.seq for m in history] == list(range(21, 31))
        assert len(await kit.hot.read_history("s", None)) == 30  # rehydrated
        assert (await kit.get_task_context("s")) is not None
        assert (await kit.get_conversation_session(key)) is not None
        assert (await kit.get_checkpoint("s", "c1"))["data"] == {"step": 1}  # type: ignore[index]
    finally:
        await kit.aclose()


async def test_messages_older_than_the_hot_cap_are_read_from_cold() -> None:
    kit = await _kit(history_cap=100)
    try:
        for i in range(1, 251):
            await kit.add_conversation_message("s", "user", f"m{i}")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert len(await kit.hot.read_history("s", None)) == 100
        history = await kit.get_conversation_history("s", limit=180)
        assert [m.seq for m in history] == list(range(71, 251))
        assert [m.content for m in history] == [f"m{i}" for i in range(71, 251)]
    finally:
        await kit.aclose()


async def test_cleanup_archives_sessions_as_expired() -> None:
    kit = await _kit()
    try:
        await kit.create_session("s", "u")
        assert await kit.cleanup_expired_sessions(max_idle_hours=0) == 1
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        archived = await kit.cold.read_session("s")  # type: ignore[union-attr]
        assert archived is not None and archived.status == "expired"
    finally:
        await kit.aclose()


async def test_a_session_read_right_after_cleanup_comes_back_expired_and_its_versions_stay_unique() -> None:
    """Cleanup evicts a session only once the archive holds its expire event: a read right after (the archiver is
    slow here) asks the archive and gets the expired session, and the next write takes a version above the
    expire event's instead of repeating it."""
    kit = await _kit(archiver={"flush_interval": 30})
    try:
        await kit.create_session("s", "u")
        assert await kit.cleanup_expired_sessions(max_idle_hours=0) == 1
        again = await kit.get_session("s")
        assert again is not None and again.status == "expired"
        await kit.update_session("s", increment_requests=True)
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        rows = kit.cold._rows_of("context_sessions", "s")  # type: ignore[union-attr]
        versions = [row.version for row in rows]
        assert [row.payload["event_type"] for row in rows] == ["create", "expire", "update"]
        assert versions == sorted(set(versions)), versions
        archived = await kit.cold.read_session("s")  # type: ignore[union-attr]
        assert archived is not None and archived.status == "expired" and archived.request_count == 1
    finally:
        await kit.aclose()


async def test_cleanup_keeps_idle_sessions_hot_while_the_archive_cannot_take_their_expiry() -> None:
    """With the cold tier down, cleanup archives nothing it cannot confirm: it removes no session (the expire
    events wait in the outbox), and once the archive is back a later cleanup removes them."""
    kit = await _kit(archiver={"flush_interval": 0.01, "max_backoff": 0.05}, tiering={"consult_timeout": 0.3})
    try:
        await kit.create_session("s", "u")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        kit.cold.set_available(False)  # type: ignore[union-attr]
        assert await kit.cleanup_expired_sessions(max_idle_hours=0) == 0
        still = await kit.get_session("s")
        assert still is not None and still.status == "expired"
        kit.cold.set_available(True)  # type: ignore[union-attr]
        assert await kit.cleanup_expired_sessions(max_idle_hours=0) == 1
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        archived = await kit.cold.read_session("s")  # type: ignore[union-attr]
        assert archived is not None and archived.status == "expired"
    finally:
        kit.cold.set_available(True)  # type: ignore[union-attr]
        await kit.aclose()


async def test_aclose_drains_pending_events() -> None:
    kit = await _kit(archiver={"flush_interval": 0.5})
    cold = kit.cold
    for i in range(50):
        await kit.add_conversation_message("s", "user", f"m{i}")
    await kit.aclose()
    assert await cold.count_events("context_conversations") == 50  # type: ignore[union-attr]
    await kit.aclose()  # idempotent


async def test_every_event_has_an_id_and_retries_never_duplicate() -> None:
    kit = await _kit()
    try:
        event = ArchiveEvent("context_sessions", "s", {"event_type": "create", "session": {}})
        await kit.cold.write_events([event, event])  # type: ignore[union-attr]
        await kit.cold.write_events([event])  # type: ignore[union-attr]
        assert await kit.cold.count_events("context_sessions", "s") == 1  # type: ignore[union-attr]
    finally:
        await kit.aclose()


async def test_memory_outbox_acks_only_what_was_stored() -> None:
    outbox = MemoryOutbox()
    events = [ArchiveEvent("context_sessions", f"s{i}", {}) for i in range(5)]
    await outbox.push(events)
    batch = await outbox.peek(3)
    await outbox.ack([e.event_id for e in batch])
    assert [e.key for e in await outbox.peek(10)] == ["s3", "s4"]


async def test_file_outbox_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = FileOutbox(path)
    events = [ArchiveEvent("context_conversations", "s", {"message": {"n": i}}) for i in range(100)]
    await outbox.push(events)
    await outbox.ack([events[0].event_id])
    await outbox.aclose()
    script = (
        "import asyncio, json, sys\n"
        "from contextkit.archiver import FileOutbox\n"
        "async def main():\n"
        "    box = FileOutbox(sys.argv[1])\n"
        "    rows = await box.peek(1000)\n"
        "    print(json.dumps([e.payload['message']['n'] for e in rows]))\n"
        "    await box.aclose()\n"
        "asyncio.run(main())\n"
    )
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == list(range(1, 100))


async def test_kit_with_file_outbox_keeps_events_across_restart(tmp_path: Path) -> None:
    outbox = str(tmp_path / "box.sqlite3")
    kit = await _kit(archiver={"outbox_path": outbox, "flush_interval": 0.01, "drain_timeout": 0.2})
    cold = kit.cold
    await kit.add_conversation_message("s", "user", "m0")
    assert await kit.archiver.flush(5)  # type: ignore[union-attr]
    cold.set_available(False)  # type: ignore[union-attr]
    for i in range(1, 21):
        await kit.add_conversation_message("s", "user", f"m{i}")
    await kit.aclose(drain_timeout=0.2)
    assert await FileOutbox(outbox).depth() == 20
    # A new process: its memory tier is empty, the file still holds 20 events of "s". The archive is shared
    # (the same memory cold tier object stands for a database here).
    config = ContextKit.from_config(
        {"hot": "memory", "cold": "memory", "archiver": {"outbox_path": outbox, "flush_interval": 0.01}}, env={}
    )
    second = ContextKit(config.hot, cold, config=config.config)
    await second.open()
    try:
        # The next message must continue at 22: the archive is asked only once the file's events reached it.
        cold.set_available(True)  # type: ignore[union-attr]
        assert (await second.add_message("s", "user", "after restart")).seq == 22
        assert await second.archiver.flush(5)  # type: ignore[union-attr]
        assert await cold.count_events("context_conversations", "s") == 22  # type: ignore[union-attr]
        assert [m.seq for m in await cold.read_history("s", None)] == list(range(1, 23))  # type: ignore[union-attr]
    finally:
        await second.aclose()


async def test_appends_after_rehydration_continue_the_sequence() -> None:
    kit = await _kit()
    try:
        for i in range(5):
            await kit.add_conversation_message("s", "user", f"m{i}")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        await kit.hot.delete_session("s", evict=True)  # as if the hot copy expired
        assert len(await kit.get_conversation_history("s")) == 5
        stored = await kit.add_message("s", "user", "after")
        assert stored.seq == 6
    finally:
        await kit.aclose()


async def test_a_new_hot_stream_continues_the_archived_numbering() -> None:
    kit = await _kit()
    try:
        for i in range(5):
            await kit.add_conversation_message("s", "user", f"m{i}")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        await kit.hot.delete_session("s", evict=True)  # as if the hot copy expired
        stored = await kit.add_message("s", "user", "new")
        assert stored.seq == 6
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        archived = await kit.cold.read_history("s", None)  # type: ignore[union-attr]
        assert [m.seq for m in archived] == [1, 2, 3, 4, 5, 6]
        assert [m.content for m in await kit.get_conversation_history("s")] == [*(f"m{i}" for i in range(5)), "new"]
    finally:
        await kit.aclose()


async def test_deleted_session_is_not_brought_back_by_read_through() -> None:
    kit = await _kit()
    try:
        await kit.create_session("s", "u")
        assert await kit.delete_session("s")
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert await kit.get_session("s") is None
        assert await kit.cold.count_events("context_sessions", "s") == 2  # type: ignore[union-attr]
    finally:
        await kit.aclose()


@pytest.mark.parametrize("refusal", ["SerializationError", "EventRefused", "CorruptData"])
async def test_events_the_cold_tier_refuses_are_set_aside_not_retried_forever(refusal: str) -> None:
    """Every answer about the data itself (the event's, or stored data the write needed) isolates the event as a
    dead letter; only an outage retries the batch."""
    from contextkit import errors
    from contextkit.stores import StoreSettings
    from contextkit_memory.cold import MemoryColdStore

    error = getattr(errors, refusal)

    class PickyCold(MemoryColdStore):
        async def write_events(self, events):  # type: ignore[no-untyped-def]
            if any(e.payload.get("message", {}).get("content") == "poison" for e in events):
                raise error("cannot store this value")
            await super().write_events(events)

    cold = PickyCold(StoreSettings(namespace="picky"))
    built = ContextKit.from_config({"hot": "memory", "cold": "memory", "archiver": {"flush_interval": 0.01}}, env={})
    kit = ContextKit(built.hot, cold, config=built.config)
    await kit.open()
    try:
        for content in ("a", "poison", "b"):
            await kit.add_conversation_message("s", "user", content)
        assert await kit.archiver.flush(5)  # type: ignore[union-attr]
        assert [m.content for m in await cold.read_history("s", None)] == ["a", "b"]
        assert [e.payload["message"]["content"] for e, _ in kit.archiver.dead_letters] == ["poison"]  # type: ignore[union-attr]
        health = await kit.health_check()
        assert health["status"] == "degraded" and "refused by the cold tier" in health["issues"][0]
    finally:
        await kit.aclose()


async def test_nul_characters_are_refused_at_the_edge() -> None:
    from contextkit.errors import InvalidInput

    kit = await _kit()
    try:
        with pytest.raises(InvalidInput, match="NUL"):
            await kit.add_conversation_message("s", "user", "a\x00b")
        with pytest.raises(InvalidInput, match="NUL"):
            await kit.create_session("s", "u", {"k": "a\x00"})
        assert await kit.get_conversation_history("s") == []
    finally:
        await kit.aclose()
