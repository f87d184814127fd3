"""Task contexts, session metadata and checkpoints: the facade and the kit encode alike; TaskContext changes in
place are stored; the original's TaskContext methods."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from contextkit import ContextKit
from contextkit.compat import ContextEngine, TaskContext
from contextkit.errors import SerializationError
from contextkit.records import TaskContext as KitTaskContext


@dataclass
class SummarizerState:
    summary: str
    token_count: int
    created_at: dt.datetime


STATE = SummarizerState("s", 100, dt.datetime(2024, 1, 1, 12, 0, 0))
STORED_STATE = {"summary": "s", "token_count": 100, "created_at": "2024-01-01T12:00:00"}


async def test_task_context_metadata_with_dataclasses_datetimes_and_sets(engine: ContextEngine) -> None:
    context = TaskContext(
        {"user_id": "u1", "chat_id": "s1", "metadata": {"state": STATE, "tags": {"b", "a"}, "at": STATE.created_at}}
    )
    assert await engine.store_task_context("s1", context) is True
    got = await engine.get_task_context("s1")
    assert got is not None
    assert got.metadata == {"state": STORED_STATE, "tags": ["a", "b"], "at": "2024-01-01T12:00:00"}


async def test_kit_and_facade_store_the_same_document(engine: ContextEngine) -> None:
    """The native kit's calls (here on the same store: ``ContextKit.<method>(engine, ...)`` skips the facade's
    layer) store what the facade's store, through the same encoder."""
    metadata = {"state": STATE, "when": dt.date(2024, 2, 3)}
    expected = {"state": STORED_STATE, "when": "2024-02-03"}
    await engine.store_task_context("facade", TaskContext({"user_id": "u", "chat_id": "facade", "metadata": metadata}))
    await engine.create_session("sf", "u", metadata)
    await engine.store_checkpoint("t", "c-facade", {"state": STATE}, metadata)
    kit_context = KitTaskContext({"user_id": "u", "chat_id": "kit", "metadata": metadata})
    await ContextKit.store_task_context(engine, "kit", kit_context)
    await ContextKit.create_session(engine, "sk", "u", metadata)
    await ContextKit.store_checkpoint(engine, "t", "c-kit", {"state": STATE}, metadata)

    facade_ctx, kit_ctx = await engine.get_task_context("facade"), await engine.get_task_context("kit")
    assert facade_ctx is not None and kit_ctx is not None
    assert facade_ctx.metadata == kit_ctx.metadata == expected
    facade_session, kit_session = await engine.get_session("sf"), await engine.get_session("sk")
    assert facade_session is not None and kit_session is not None
    assert facade_session.metadata == kit_session.metadata == expected
    facade_cp, kit_cp = await engine.get_checkpoint("t", "c-facade"), await engine.get_checkpoint("t", "c-kit")
    assert facade_cp is not None and kit_cp is not None
    assert facade_cp["data"] == kit_cp["data"] == {"state": STORED_STATE}
    assert facade_cp["metadata"] == kit_cp["metadata"] == expected


async def test_unencodable_metadata_names_its_path_and_nothing_is_written(engine: ContextEngine) -> None:
    with pytest.raises(SerializationError, match=r"metadata\.items\[1\]"):
        await engine.create_session("s1", "u1", {"items": [1, object()]})
    assert await engine.get_session("s1") is None


async def test_in_place_changes_are_stored(engine: ContextEngine) -> None:
    await engine.create_session("s1", "u1", {"k0": 0})
    context = await engine.get_task_context("s1")
    assert isinstance(context, TaskContext)
    context.metadata["llm_response"] = "partial"
    context.metadata_toggles["k0"] = False
    context.add_context_update("message", {"text": "hi"}, {"source": "test"})
    context.add_resource("db", object())  # not JSON: stored as its type name (the original stored none)
    context.add_resource("config", {"url": "x"})
    context.track_file_operation("/tmp/a.txt", "read")
    context.track_model_usage("gpt", "openai", "chat")
    context.track_model_usage("gpt", "openai", "chat")  # the same call twice in a row is tracked once
    assert await engine.store_task_context("s1", context)

    got = await engine.get_task_context("s1")
    assert got is not None
    assert got.metadata == {"k0": 0, "llm_response": "partial"}
    assert got.get_active_metadata() == {"llm_response": "partial"}
    assert [u.update_type for u in got.context_history] == [
        "message", "resource", "resource", "file_operation", "model_usage"
    ]
    assert got.resources == {"db": {"type": "object"}, "config": {"url": "x"}}
    assert got.file_tracker["/tmp/a.txt"]["operation"] == "read"
    assert [(m["model_id"], m["provider_id"], m["mode"]) for m in got.model_tracker] == [("gpt", "openai", "chat")]


def test_native_task_context_stays_immutable() -> None:
    context = KitTaskContext({"metadata": {"a": 1}})
    assert context.with_metadata(a=2).metadata == {"a": 2} and context.metadata == {"a": 1}
    updated = context.with_context_update("message", {"text": "hi"}, {"source": "chat"})
    assert context.context_history == []
    (update,) = updated.context_history
    assert (update.update_type, update.data, update.metadata) == ("message", {"text": "hi"}, {"source": "chat"})
    with pytest.raises(AttributeError):
        context.user_id = "x"  # type: ignore[misc]


async def test_a_native_context_update_round_trips_through_the_store(engine: ContextEngine) -> None:
    """``TaskContext.with_context_update`` (the immutable record's way to add to ``context_history``) is stored
    and read back whole, in order, by the kit."""
    context = (
        KitTaskContext({"user_id": "u1", "chat_id": "s1"})
        .with_context_update("message", {"text": "hi"})
        .with_context_update("tool", [1, 2], {"name": "calc"})
    )
    assert await engine.store_task_context("s1", context)
    got = await engine.get_task_context("s1")
    assert got is not None
    assert [(u.update_type, u.data, u.metadata) for u in got.context_history] == [
        ("message", {"text": "hi"}, {}),
        ("tool", [1, 2], {"name": "calc"}),
    ]
