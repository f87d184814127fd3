"""A third-party backend defined here, registered through the plugin manager, chosen by config, conformant.

The backend keeps its data in a dict-of-dicts of JSON text (so it shares no code path with the memory tier's
object storage for reads) by wrapping the memory tier and round-tripping every record through JSON.
"""

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest

import contextkit
from contextkit import ContextKit
from contextkit.plugins import BackendRegistry, get_plugin_manager
from contextkit.records import Message, Session
from contextkit.stores import ArchiveSpec, HotStore, StoreSettings
from contextkit.testing.engine import EngineSuite
from contextkit.testing.hot import HotStoreSuite
from contextkit_memory.hot import MemoryHotStore


class JsonRoundTripStore(MemoryHotStore):
    """A hot tier that serializes every record it returns (as a networked backend would)."""

    name = "jsontrip"

    async def get_session(self, session_id: str) -> Session | None:
        session = await super().get_session(session_id)
        if session is None:
            return None
        # the version is kept beside the record's JSON (as a backend keeps it in a column of its own)
        return replace(Session.from_dict(json.loads(json.dumps(session.to_dict()))), version=session.version)

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        messages = await super().read_history(key, limit)
        return [Message.from_dict(json.loads(json.dumps(m.to_dict()))) for m in messages]

    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        return await super().append_messages(key, [Message.from_dict(m.to_dict()) for m in messages], archive=archive)


def _factory(settings: StoreSettings, options: Mapping[str, Any]) -> JsonRoundTripStore:
    return JsonRoundTripStore(settings)


class ThirdPartyPlugin:
    """What a third-party distribution's plugin module contains."""

    @contextkit.hookimpl
    def contextkit_register_backends(self, registry: BackendRegistry) -> None:
        registry.add_hot("jsontrip", _factory, description="test-only JSON round-trip tier", aliases=("jt",))


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    manager = get_plugin_manager()
    manager.register(ThirdPartyPlugin(), name="thirdparty-test")
    yield
    manager.unregister("thirdparty-test")


async def test_config_chooses_the_third_party_backend_by_name_and_alias() -> None:
    for name in ("jsontrip", "jt", "JSONTRIP"):
        async with ContextKit.from_config({"hot": name}, env={}) as kit:
            assert isinstance(kit.hot, JsonRoundTripStore)
            await kit.create_session("s", "u")
            assert (await kit.get_session("s")) is not None


def test_plugin_is_listed_with_its_tier() -> None:
    manager = get_plugin_manager()
    assert "thirdparty-test" in [p.name for p in manager.plugins()]
    assert manager.backends.get("hot", "jsontrip").plugin == "thirdparty-test"


class TestThirdPartyHotStore(HotStoreSuite):
    async def make_store(self, settings: StoreSettings) -> HotStore:
        store = get_plugin_manager().backends.get("hot", "jsontrip").factory(settings, {})
        await store.open()
        return store


class TestThirdPartyEngine(EngineSuite):
    def kit_config(self) -> dict[str, Any]:
        return {"hot": "jsontrip"}


