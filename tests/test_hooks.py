"""One test per hook of contextkit.hookspecs (tests/test_hooks_documented.py enforces that), plus plugin loading.

Plugins here are third-party style: classes defined in this module whose methods carry ``@hookimpl``,
registered with :meth:`contextkit.plugins.PluginManager.register` on a manager built for the test.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping
from typing import Any, cast

import pytest

from contextkit import hookimpl
from contextkit.config import load_config
from contextkit.errors import BackendNotFound, ConfigError
from contextkit.plugins import (
    BackendRegistry,
    CompactorRegistry,
    EnvOptions,
    PluginManager,
    StorageEvent,
    store_factory,
)
from contextkit.records import Message, utcnow
from contextkit.stores import HotStore, StoreSettings


class AcmeHotStore:
    """A third-party hot tier as far as registration is concerned: built by its factory without I/O."""

    name = "acme"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, settings: StoreSettings, options: Mapping[str, Any]) -> None:
        self.settings = settings
        self.options = dict(options)
        self.opened = False

    async def open(self) -> None:
        self.opened = True

    async def aclose(self) -> None:
        self.opened = False


def build_acme(settings: StoreSettings, options: Mapping[str, Any]) -> HotStore:
    """The factory a plugin registers. Only registration is exercised here, so the store is not a full HotStore."""
    return cast(HotStore, AcmeHotStore(settings, options))


class AcmePlugin:
    """Registers the ``acme`` hot tier with the alias ``acme-kv``."""

    @hookimpl
    def contextkit_register_backends(self, registry: BackendRegistry) -> None:
        registry.add_hot("acme", build_acme, description="Acme key-value server", aliases=("acme-kv",))


class RivalAcmePlugin:
    """Another plugin claiming the name ``acme``: the registry must refuse it."""

    @hookimpl
    def contextkit_register_backends(self, registry: BackendRegistry) -> None:
        registry.add_hot("acme", build_acme)


def fresh_manager() -> PluginManager:
    """A manager with the installed entry points, independent of the process-wide one."""
    return PluginManager()


# -- contextkit_register_backends ------------------------------------------------------------------------------------


def test_hook_contextkit_register_backends() -> None:
    """A backend registered by a plugin is found by name and by alias, and its factory builds the store."""
    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")

    info = pm.backends.get("hot", "acme")
    assert info.name == "acme"
    assert info.tier == "hot"
    assert info.plugin == "acme-plugin"
    assert info.aliases == ("acme-kv",)
    assert pm.backends.get("hot", "acme-kv") is info
    assert pm.backends.get("hot", " ACME ") is info  # names are matched case- and space-insensitively
    assert "acme" in pm.backends.names("hot")

    settings = StoreSettings(namespace="hooks-test")
    store = info.factory(settings, {"url": "acme://127.0.0.1:1"})
    assert isinstance(store, AcmeHotStore)
    assert store.settings is settings
    assert store.options == {"url": "acme://127.0.0.1:1"}
    assert not store.opened  # a factory does no I/O; the composer opens the store


def test_backend_registered_only_in_one_tier_is_not_found_in_the_other() -> None:
    """A hot backend is not a cold backend: asking the cold tier for it raises BackendNotFound."""
    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")
    with pytest.raises(BackendNotFound):
        pm.backends.get("cold", "acme")


def test_plugin_registered_after_first_use_appears_in_the_registry() -> None:
    """Registering a plugin after the registry was built rebuilds it, so the new backend is found."""
    pm = fresh_manager()
    assert "acme" not in pm.backends.names("hot")
    pm.register(AcmePlugin(), name="acme-plugin")
    assert pm.backends.get("hot", "acme").plugin == "acme-plugin"
    pm.unregister("acme-plugin")
    assert "acme" not in pm.backends.names("hot")


def test_duplicate_backend_name_raises_config_error_naming_both_plugins() -> None:
    """Two plugins registering the same hot backend name is a configuration error naming both, not an override."""
    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")
    pm.register(RivalAcmePlugin(), name="rival-plugin")
    both = r"hot backend 'acme' is registered by both (acme-plugin and rival-plugin|rival-plugin and acme-plugin)"
    with pytest.raises(ConfigError, match=both):
        _ = pm.backends


def test_alias_clashing_with_a_backend_name_raises_config_error() -> None:
    """An alias is reserved like a name: another backend cannot take it."""

    class AliasThief:
        @hookimpl
        def contextkit_register_backends(self, registry: BackendRegistry) -> None:
            registry.add_hot("acme-kv", build_acme)

    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")
    pm.register(AliasThief(), name="alias-thief")
    with pytest.raises(ConfigError, match="acme-kv"):
        _ = pm.backends


def test_unknown_backend_lists_installed_backends_and_suggests_the_closest() -> None:
    """BackendNotFound names every installed backend of the tier, a third party's included, and suggests the
    closest one for a typo."""
    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")
    with pytest.raises(BackendNotFound) as caught:
        pm.backends.get("hot", "nosuchdb")
    message = str(caught.value)
    for installed in pm.backends.names("hot"):
        assert installed in message
    assert "acme" in message
    with pytest.raises(BackendNotFound, match="did you mean 'acme'"):
        pm.backends.get("hot", "acne")
    assert caught.value.installed == pm.backends.names("hot")
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize("bad_name", ["", "Acme", " acme", "acme\n", "acme db"])
def test_backend_names_must_be_lowercase_without_spaces(bad_name: str) -> None:
    """A name that config lookup could never match is refused at registration."""
    registry = BackendRegistry()
    with pytest.raises(ConfigError):
        registry.add_hot(bad_name, build_acme)




def test_store_factory_imports_the_store_module_on_first_call_only() -> None:
    """``store_factory("module:Class")`` imports nothing when made and calls ``Class.from_options`` when called;
    a module that cannot be imported (a driver missing) raises ConfigError naming it, a malformed target at once."""
    factory = store_factory("contextkit_memory.hot:MemoryHotStore")
    assert factory.__qualname__ == "MemoryHotStore.from_options"
    store = factory(StoreSettings(namespace="factory"), {"max_sessions": 3})
    assert type(store).__name__ == "MemoryHotStore" and store.name == "memory"
    with pytest.raises(ConfigError, match="max_sessions"):
        factory(StoreSettings(), {"max_sessions": 0})
    missing = store_factory("contextkit_no_such_plugin.hot:NoStore")
    with pytest.raises(ConfigError, match=r"contextkit_no_such_plugin\.hot cannot be imported"):
        missing(StoreSettings(), {})
    for target in ("contextkit_memory.hot", ":MemoryHotStore", "contextkit_memory.hot:not a name"):
        with pytest.raises(ConfigError, match=r"package\.module:ClassName"):
            store_factory(target)

# -- contextkit_env_options -------------------------------------------------------------------------------------------


class AcmeEnvPlugin(AcmePlugin):
    """Reads ``ACME_URL`` / ``ACME_PASSWORD`` into the acme options; ``ACME_URL`` selects the acme hot tier."""

    @hookimpl
    def contextkit_env_options(self, env: Mapping[str, str]) -> EnvOptions:
        found = EnvOptions.read("acme", env, {"url": "ACME_URL", "password": ("ACME_PASSWORD", "ACME_PASS")})
        return EnvOptions(found.backend, found.options, found.variables, selects=("hot",) if "url" in found.options else ())


def test_hook_contextkit_env_options(tmp_path: Any) -> None:
    """A plugin's variables become its options, between the file and the explicit arguments, and may select its
    backend for a tier the generic variables leave unset; a password keeps its spaces, other values are stripped."""
    manager = PluginManager(load_entrypoints=False)
    manager.register(AcmeEnvPlugin(), name="acme")
    config = load_config(env={"ACME_URL": " acme://h:1 ", "ACME_PASS": " p w "}, plugins=manager)
    assert (config.hot, dict(config.hot_options)) == ("acme", {"url": "acme://h:1", "password": " p w "})
    assert manager.env_options({"ACME_PASSWORD": "a", "ACME_PASS": "b"})[0].variables == {"password": "ACME_PASSWORD"}

    toml = tmp_path / "contextkit.toml"
    toml.write_text('hot = "memory"\n[acme]\nurl = "acme://file"\ntimeout_ms = 5\n')
    config = load_config(toml, env={"ACME_URL": "acme://env"}, plugins=manager)
    assert config.hot == "acme"  # a selection is part of the environment, above the file (the seed's REDIS_URL)
    assert dict(config.hot_options) == {"url": "acme://env", "timeout_ms": 5}  # env beats file, key by key
    assert load_config(toml, env={"ACME_URL": "acme://env"}, plugins=manager, hot="memory").hot == "memory"
    config = load_config({"hot": "acme", "acme": {"url": "acme://arg"}}, env={"ACME_URL": "acme://env"}, plugins=manager)
    assert config.hot_options["url"] == "acme://arg"  # arguments beat env
    assert load_config(env={"CONTEXTKIT_HOT": "memory", "ACME_URL": "acme://env"}, plugins=manager).hot == "memory"
    # no variable set: nothing contributed, nothing selected
    assert load_config(env={}, plugins=manager).hot == "memory"


def test_two_plugins_selecting_one_tier_from_the_environment_is_a_config_error() -> None:
    """When the variables of two backends both select the hot tier, the error names both and the generic variable
    that settles it, instead of picking one by plugin order."""

    class OtherEnvPlugin:
        @hookimpl
        def contextkit_env_options(self, env: Mapping[str, str]) -> EnvOptions:
            return EnvOptions("other", {"url": env["OTHER_URL"]}, {"url": "OTHER_URL"}, selects=("hot",))

    manager = PluginManager(load_entrypoints=False)
    manager.register(AcmeEnvPlugin(), name="acme")
    manager.register(OtherEnvPlugin(), name="other")
    with pytest.raises(ConfigError, match="CONTEXTKIT_HOT"):
        load_config(env={"ACME_URL": "acme://h", "OTHER_URL": "x"}, plugins=manager)
    assert load_config(env={"ACME_URL": "acme://h", "OTHER_URL": "x", "CONTEXTKIT_HOT": "acme"}, plugins=manager).hot == "acme"


# -- contextkit_register_compactors ----------------------------------------------------------------------------------


async def keep_oldest(messages: list[Message], keep_recent: int, options: Mapping[str, Any]) -> list[Message]:
    """A custom strategy: keep the first ``keep_recent`` messages instead of the last."""
    return list(messages[:keep_recent])


class KeepOldestPlugin:
    """Registers the ``keep-oldest`` compaction strategy."""

    @hookimpl
    def contextkit_register_compactors(self, registry: CompactorRegistry) -> None:
        registry.add("keep-oldest", keep_oldest)


def _messages(count: int) -> list[Message]:
    now = utcnow()
    return [Message(role="user", content=f"m{i}", timestamp=now, seq=i) for i in range(1, count + 1)]


async def test_hook_contextkit_register_compactors() -> None:
    """A strategy registered by a plugin is found by name next to the built-in ``truncate``, and runs."""
    pm = fresh_manager()
    pm.register(KeepOldestPlugin(), name="keep-oldest-plugin")

    assert {"truncate", "keep-oldest"} <= set(pm.compactors.names())
    assert pm.compactors.get("keep-oldest") is keep_oldest

    history = _messages(5)
    assert [m.seq for m in await pm.compactors.get("keep-oldest")(history, 2, {})] == [1, 2]
    assert [m.seq for m in await pm.compactors.get("truncate")(history, 2, {})] == [4, 5]


def test_unknown_compactor_raises_config_error_listing_known_strategies() -> None:
    """Asking for a strategy nobody registered names the ones that exist."""
    pm = fresh_manager()
    with pytest.raises(ConfigError, match=r"unknown compaction strategy 'summarise'.*truncate"):
        pm.compactors.get("summarise")


def test_duplicate_compactor_name_raises_config_error() -> None:
    """A plugin cannot replace the built-in ``truncate`` by registering the same name."""

    class TruncateClash:
        @hookimpl
        def contextkit_register_compactors(self, registry: CompactorRegistry) -> None:
            registry.add("truncate", keep_oldest)

    pm = fresh_manager()
    pm.register(TruncateClash(), name="truncate-clash")
    with pytest.raises(ConfigError, match="truncate"):
        _ = pm.compactors


# -- contextkit_on_event ---------------------------------------------------------------------------------------------


class RecordingObserver:
    """Keeps every event it observes."""

    def __init__(self) -> None:
        self.events: list[StorageEvent] = []

    @hookimpl
    def contextkit_on_event(self, event: StorageEvent) -> None:
        self.events.append(event)


class FailingObserver:
    """An observer with a bug: raises on every event."""

    @hookimpl
    def contextkit_on_event(self, event: StorageEvent) -> None:
        raise RuntimeError("observer bug")


def test_hook_contextkit_on_event(caplog: pytest.LogCaptureFixture) -> None:
    """Emitted events reach every observer; one that raises is logged and neither propagates nor stops others."""
    pm = fresh_manager()
    recorder = RecordingObserver()
    pm.register(recorder, name="recorder")
    pm.register(FailingObserver(), name="failing-observer")
    assert pm.has_observers

    event = StorageEvent(kind="message.append", key="session-1", detail={"seq": 1})
    with caplog.at_level(logging.ERROR, logger="contextkit.plugins"):
        pm.emit(event)  # must not raise

    assert recorder.events == [event]
    failures = [r for r in caplog.records if r.name == "contextkit.plugins" and "failing-observer" in r.getMessage()]
    assert failures, "the failing observer was not logged"
    assert failures[0].exc_info is not None
    assert "message.append" in failures[0].getMessage()


def test_manager_without_observers_reports_none() -> None:
    """With no observer plugin the kit can skip building events."""
    pm = PluginManager(load_entrypoints=False)
    assert not pm.has_observers
    pm.emit(StorageEvent(kind="session.create", key="s"))  # nothing to call, nothing raised


# -- validation and environment switches -----------------------------------------------------------------------------


class MisspelledHookPlugin:
    """Implements ``contextkit_register_backend`` (singular): a hook that does not exist."""

    @hookimpl
    def contextkit_register_backend(self, registry: BackendRegistry) -> None:
        registry.add_hot("typo", build_acme)


def test_check_pending_raises_config_error_for_a_misspelled_hook() -> None:
    """A plugin implementing a hook no spec defines is reported instead of silently never called."""
    pm = fresh_manager()
    pm.register(MisspelledHookPlugin(), name="typo-plugin")
    with pytest.raises(ConfigError, match="contextkit_register_backend"):
        pm.check_pending()


def test_check_pending_accepts_correct_plugins() -> None:
    """The installed plugins and well-formed ones pass validation."""
    pm = fresh_manager()
    pm.register(AcmePlugin(), name="acme-plugin")
    pm.register(RecordingObserver(), name="recorder")
    pm.check_pending()


def _memory_entry_point_installed() -> bool:
    return any(ep.name == "memory" for ep in importlib.metadata.entry_points(group="contextkit"))


def _loaded(pm: PluginManager) -> set[str]:
    return {info.name for info in pm.plugins()}


@pytest.fixture
def plugin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean plugin environment; the memory entry point must be installed (it ships with contextkit itself)."""
    assert _memory_entry_point_installed(), "the memory entry point is missing: reinstall contextkit (pip install -e .)"
    for name in ("CONTEXTKIT_LOAD_PLUGINS", "CONTEXTKIT_DISABLE_PLUGINS", "CONTEXTKIT_TRACE_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_installed_entry_points_are_loaded_by_default(plugin_env: pytest.MonkeyPatch) -> None:
    """Without switches, the memory plugin's entry point is loaded with its distribution (contextkit itself: the
    memory tier is built in) and version."""
    pm = PluginManager()
    assert "memory" in _loaded(pm)
    (memory,) = [info for info in pm.plugins() if info.name == "memory"]
    assert memory.distribution == "contextkit"
    assert memory.version


def test_load_plugins_allow_list_loads_only_the_named_entry_points(plugin_env: pytest.MonkeyPatch) -> None:
    """CONTEXTKIT_LOAD_PLUGINS names the entry points to load; others are not loaded."""
    plugin_env.setenv("CONTEXTKIT_LOAD_PLUGINS", "memory")
    assert _loaded(PluginManager()) & _entry_point_names() == {"memory"}


def test_empty_load_plugins_loads_no_entry_point(plugin_env: pytest.MonkeyPatch) -> None:
    """CONTEXTKIT_LOAD_PLUGINS set but empty loads no installed plugin (the built-in compaction stays)."""
    plugin_env.setenv("CONTEXTKIT_LOAD_PLUGINS", "")
    pm = PluginManager()
    assert not _loaded(pm) & _entry_point_names()
    assert "truncate" in pm.compactors.names()


def test_disable_plugins_blocks_the_named_entry_points(plugin_env: pytest.MonkeyPatch) -> None:
    """CONTEXTKIT_DISABLE_PLUGINS keeps the named entry points out, even when the allow list names them."""
    plugin_env.setenv("CONTEXTKIT_DISABLE_PLUGINS", " memory , nosuch")
    assert "memory" not in _loaded(PluginManager())
    plugin_env.setenv("CONTEXTKIT_LOAD_PLUGINS", "memory")
    assert "memory" not in _loaded(PluginManager())


def test_trace_plugins_logs_hook_calls_at_debug(
    plugin_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """CONTEXTKIT_TRACE_PLUGINS=1 logs every hook call on the contextkit.plugins logger."""
    plugin_env.setenv("CONTEXTKIT_TRACE_PLUGINS", "1")
    with caplog.at_level(logging.DEBUG, logger="contextkit.plugins"):
        _ = PluginManager().compactors
    traced = [r.getMessage() for r in caplog.records if r.name == "contextkit.plugins"]
    assert any("contextkit_register_compactors" in text for text in traced), traced


def test_without_trace_plugins_hook_calls_are_not_logged(
    plugin_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing is off by default."""
    with caplog.at_level(logging.DEBUG, logger="contextkit.plugins"):
        _ = PluginManager().compactors
    traced = [r.getMessage() for r in caplog.records if r.name == "contextkit.plugins"]
    assert not any("contextkit_register_compactors" in text for text in traced), traced


def _entry_point_names() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group="contextkit")}
