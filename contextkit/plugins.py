"""The plugin manager: finds plugins, runs the registration hooks once, and holds what they registered.

The manager is built lazily by :func:`get_plugin_manager` (never at import). Plugins come from the ``contextkit``
entry-point group and from :meth:`PluginManager.register`. Three environment switches control loading:

* ``CONTEXTKIT_LOAD_PLUGINS``: comma-separated entry-point names to load (an allow list); empty loads none.
* ``CONTEXTKIT_DISABLE_PLUGINS``: comma-separated entry-point names never to load.
* ``CONTEXTKIT_TRACE_PLUGINS``: when set to a true value, every hook call is logged at DEBUG on
  ``contextkit.plugins``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from contextkit import hookspecs
from contextkit.errors import BackendNotFound, ConfigError
from contextkit.masking import is_secret_key
from contextkit.records import Message
from contextkit.stores import ColdStore, HotStore, StoreSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendInfo",
    "BackendRegistry",
    "ColdFactory",
    "Compactor",
    "CompactorRegistry",
    "EnvOptions",
    "HotFactory",
    "PluginInfo",
    "PluginManager",
    "StorageEvent",
    "get_plugin_manager",
    "reset_plugin_manager",
    "store_factory",
]

logger = logging.getLogger("contextkit.plugins")

ENTRY_POINT_GROUP = "contextkit"

HotFactory = Callable[[StoreSettings, Mapping[str, Any]], HotStore]
ColdFactory = Callable[[StoreSettings, Mapping[str, Any]], ColdStore]
Compactor = Callable[[list[Message], int, Mapping[str, Any]], Awaitable[list[Message]]]


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """A completed write, as seen by :func:`contextkit.hookspecs.contextkit_on_event` observers."""

    kind: str
    key: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnvOptions:
    """What a backend reads from the environment: its options and, maybe, a tier it selects.

    Returned by :func:`~contextkit.hookspecs.contextkit_env_options` (a backend builds it in its
    ``Options.from_env`` with :meth:`read`); :func:`contextkit.config.load_config` merges it between the
    configuration file and the explicit arguments.
    """

    #: The backend whose options these are (its registered name, e.g. ``redis``).
    backend: str
    #: ``{option: value}`` for every option a variable sets, the values as written in the environment.
    options: Mapping[str, str] = field(default_factory=dict)
    #: ``{option: variable}``: where each option came from, so a message about a bad value can name the variable.
    variables: Mapping[str, str] = field(default_factory=dict)
    #: The tiers (``hot`` / ``cold``) whose backend the variables select when the generic variables leave it unset
    #: (the seed's ``REDIS_URL`` selects the redis hot tier, ``CLICKHOUSE_ENABLED=true`` the clickhouse cold tier).
    selects: tuple[str, ...] = ()

    @classmethod
    def read(
        cls,
        backend: str,
        env: Mapping[str, str],
        variables: Mapping[str, str | Sequence[str]],
        *,
        selects: Sequence[str] = (),
    ) -> EnvOptions:
        """Read ``{option: variable}`` (or ``{option: (variable, fallback variable, ...)}``, the first one set
        wins) from ``env``. A variable that is empty or blank is unset; values are stripped of surrounding
        spaces, except a secret's (a password is taken as written: a space at either end is part of it).

        :param backend: the backend's registered name.
        :param env: the environment to read.
        :param variables: the option each variable sets.
        :param selects: the tiers these options select the backend for (kept only when a variable is set).
        """
        options: dict[str, str] = {}
        sources: dict[str, str] = {}
        for option, names in variables.items():
            for name in (names,) if isinstance(names, str) else names:
                raw = env.get(name, "")
                if raw.strip():
                    options[option] = raw if is_secret_key(option) else raw.strip()
                    sources[option] = name
                    break
        return cls(backend, options, sources, tuple(selects) if options else ())


def store_factory(target: str) -> Callable[[StoreSettings, Mapping[str, Any]], Any]:
    """The factory to register for the store class ``target`` (``"package.module:ClassName"``).

    It imports the module on its first call and returns ``ClassName.from_options(settings, options)``, so that
    loading a plugin (and running its hooks) imports none of its driver: ``import contextkit_redis`` does not
    import redis-py, and a kit configured without Redis never does. A driver that fails to import raises
    :class:`~contextkit.errors.ConfigError` naming it.
    """
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name.isidentifier():
        raise ConfigError(f"store_factory takes 'package.module:ClassName', got {target!r}")

    def factory(settings: StoreSettings, options: Mapping[str, Any]) -> Any:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"{module_name} cannot be imported ({exc}); reinstall the plugin that provides it") from exc
        return getattr(module, class_name).from_options(settings, options)

    factory.__name__ = "from_options"
    factory.__qualname__ = f"{class_name}.from_options"
    factory.__doc__ = f"Build ``{target}`` with its ``from_options`` (imported on first use)."
    return factory


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """A registered tier backend."""

    name: str
    tier: str
    factory: Callable[[StoreSettings, Mapping[str, Any]], Any]
    plugin: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    #: URL schemes that name this backend in :meth:`contextkit.kit.ContextKit.from_url` (its name and aliases
    #: always do).
    schemes: tuple[str, ...] = ()
    #: The options ``[compat] physical_names = "aiecs"`` gives this (cold) backend: the original ContextEngine's
    #: schema or table names. Options set explicitly win.
    aiecs_options: Mapping[str, Any] = field(default_factory=dict)

    def build(self, settings: StoreSettings, options: Mapping[str, Any], variables: Mapping[str, str] | None = None) -> Any:
        """Call the factory (no I/O). ``variables`` (``{option: environment variable}``, from
        :attr:`contextkit.config.KitConfig.env_variables`) name where options came from: a ``ConfigError`` the
        factory raises then says which variables set them, so the user knows what to fix."""
        try:
            return self.factory(settings, options)
        except ConfigError as exc:
            named = {option: variable for option, variable in (variables or {}).items() if option in options}
            if not named:
                raise
            origin = ", ".join(f"{option} from {variable}" for option, variable in sorted(named.items()))
            raise ConfigError(f"{exc} (options set by the environment: {origin})") from exc


class BackendRegistry:
    """Typed registry handed to :func:`~contextkit.hookspecs.contextkit_register_backends`."""

    def __init__(self) -> None:
        self._backends: dict[tuple[str, str], BackendInfo] = {}
        self._aliases: dict[tuple[str, str], str] = {}
        self.current_plugin = "?"

    def _add(
        self,
        tier: str,
        name: str,
        factory: Any,
        description: str,
        aliases: tuple[str, ...],
        schemes: tuple[str, ...],
        aiecs_options: Mapping[str, Any] | None = None,
    ) -> None:
        for label in (name, *aliases):
            if not label or label != label.lower() or any(c.isspace() for c in label):
                raise ConfigError(f"backend names are lowercase without spaces, got {label!r}")
            owner = self._backends.get((tier, label)) or self._backends.get((tier, self._aliases.get((tier, label), "")))
            if owner is not None:
                raise ConfigError(
                    f"{tier} backend {label!r} is registered by both {owner.plugin} and {self.current_plugin}"
                )
        for scheme in schemes:
            if not scheme or scheme != scheme.lower() or not scheme.replace("+", "").replace("-", "").isalnum():
                raise ConfigError(f"URL schemes are lowercase letters, digits, '+' and '-', got {scheme!r}")
        self._backends[(tier, name)] = BackendInfo(
            name, tier, factory, self.current_plugin, description, aliases, tuple(schemes), dict(aiecs_options or {})
        )
        for alias in aliases:
            self._aliases[(tier, alias)] = name

    def add_hot(
        self,
        name: str,
        factory: HotFactory,
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        schemes: tuple[str, ...] = (),
    ) -> None:
        """Register a hot tier factory under ``name`` (and optional ``aliases``); ``schemes`` are the URL schemes
        besides the name and aliases that select it in ``ContextKit.from_url`` (the factory gets ``{"url": url}``)."""
        self._add("hot", name, factory, description, aliases, schemes)

    def add_cold(
        self,
        name: str,
        factory: ColdFactory,
        *,
        description: str = "",
        aliases: tuple[str, ...] = (),
        schemes: tuple[str, ...] = (),
        aiecs_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Register a cold tier factory under ``name`` (and optional ``aliases``); ``schemes`` are the URL schemes
        besides the name and aliases that select it in ``ContextKit.from_url`` (the factory gets ``{"url": url}``);
        ``aiecs_options`` are the options ``[compat] physical_names = "aiecs"`` sets (the original ContextEngine's
        names for what this backend stores)."""
        self._add("cold", name, factory, description, aliases, schemes, aiecs_options)

    def get(self, tier: str, name: str) -> BackendInfo:
        """The backend registered for ``tier`` under ``name`` or an alias; raises :class:`BackendNotFound`."""
        key = name.strip().lower()
        key = self._aliases.get((tier, key), key)
        try:
            return self._backends[(tier, key)]
        except KeyError:
            raise BackendNotFound(name, tier, self.names(tier)) from None

    def for_scheme(self, tier: str, scheme: str) -> BackendInfo | None:
        """The backend of ``tier`` that a URL scheme names (its name, an alias or a registered scheme), or None."""
        key = scheme.strip().lower()
        for info in self._backends.values():
            if info.tier == tier and (key == info.name or key in info.aliases or key in info.schemes):
                return info
        return None

    def names(self, tier: str) -> list[str]:
        """Names registered for ``tier``, sorted."""
        return sorted(n for (t, n) in self._backends if t == tier)

    def all(self) -> list[BackendInfo]:
        """Every registered backend."""
        return list(self._backends.values())


class CompactorRegistry:
    """Typed registry handed to :func:`~contextkit.hookspecs.contextkit_register_compactors`."""

    def __init__(self) -> None:
        self._compactors: dict[str, Compactor] = {}

    def add(self, name: str, compactor: Compactor) -> None:
        """Register ``compactor`` under ``name``; a duplicate name raises :class:`ConfigError`."""
        if name in self._compactors:
            raise ConfigError(f"compaction strategy {name!r} is registered twice")
        self._compactors[name] = compactor

    def get(self, name: str) -> Compactor:
        """The compactor registered under ``name``; :class:`ConfigError` lists the known ones otherwise."""
        try:
            return self._compactors[name]
        except KeyError:
            known = ", ".join(sorted(self._compactors)) or "none"
            raise ConfigError(f"unknown compaction strategy {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered strategy names, sorted."""
        return sorted(self._compactors)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded plugin, as ``contextkit plugins`` reports it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginManager:
    """A typed facade over :class:`pluggy.PluginManager`.

    Registration hooks run once, on first use of :attr:`backends` or :attr:`compactors`; registering a plugin
    after that re-runs them so the new plugin's backends appear.
    """

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._dists: dict[str, tuple[str, str]] = {}
        self._backends: BackendRegistry | None = None
        self._compactors: CompactorRegistry | None = None
        self._lock = threading.RLock()
        if os.environ.get("CONTEXTKIT_TRACE_PLUGINS", "").lower() in {"1", "true", "yes", "on"}:
            self._pm.trace.root.setwriter(lambda text: logger.debug("%s", text.rstrip()))
            self._pm.enable_tracing()
        from contextkit import compaction

        self._pm.register(compaction, name="contextkit.compaction")
        if load_entrypoints:
            self._load_entrypoints()

    def _load_entrypoints(self) -> None:
        allow = _env_list("CONTEXTKIT_LOAD_PLUGINS")
        block = _env_list("CONTEXTKIT_DISABLE_PLUGINS") or set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allow is not None and ep.name not in allow) or ep.name in block:
                logger.debug("plugin %s not loaded (CONTEXTKIT_LOAD_PLUGINS / CONTEXTKIT_DISABLE_PLUGINS)", ep.name)
                continue
            if self._pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the core down
                logger.warning("plugin %s failed to load: %s", ep.name, exc)
                continue
            self._pm.register(plugin, name=ep.name)
            if ep.dist is not None:
                self._dists[ep.name] = (ep.dist.name, ep.dist.version)

    @property
    def hook(self) -> Any:
        """The pluggy hook relay (``pm.hook.contextkit_on_event(...)``)."""
        return self._pm.hook

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object or module; returns its name. Registries are rebuilt on next use."""
        with self._lock:
            registered = self._pm.register(plugin, name=name)
            if registered is None:
                raise ConfigError(f"plugin {name or plugin!r} is already registered or blocked")
            self._backends = None
            self._compactors = None
            return registered

    def unregister(self, name: str) -> None:
        """Remove a plugin by name; registries are rebuilt on next use."""
        with self._lock:
            self._pm.unregister(name=name)
            self._backends = None
            self._compactors = None

    def check_pending(self) -> None:
        """Raise if a registered plugin implements a hook that no spec defines (a typo in a hook name)."""
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise ConfigError(str(exc)) from exc

    @property
    def backends(self) -> BackendRegistry:
        """Every hot and cold backend the plugins registered."""
        with self._lock:
            if self._backends is None:
                registry = BackendRegistry()
                for impl in reversed(self._pm.hook.contextkit_register_backends.get_hookimpls()):
                    registry.current_plugin = impl.plugin_name
                    impl.function(registry=registry)
                registry.current_plugin = "?"
                self._backends = registry
            return self._backends

    @property
    def compactors(self) -> CompactorRegistry:
        """Every compaction strategy the plugins registered (``truncate`` is built in)."""
        with self._lock:
            if self._compactors is None:
                registry = CompactorRegistry()
                self._pm.hook.contextkit_register_compactors(registry=registry)
                self._compactors = registry
            return self._compactors

    def env_options(self, env: Mapping[str, str]) -> list[EnvOptions]:
        """What every plugin reads from ``env`` (:func:`~contextkit.hookspecs.contextkit_env_options`), in
        registration order; a plugin's error propagates (a bad variable is the user's to fix)."""
        results: list[EnvOptions | None] = self._pm.hook.contextkit_env_options(env=env)
        return [result for result in reversed(results) if result is not None]

    def emit(self, event: StorageEvent) -> None:
        """Call every :func:`~contextkit.hookspecs.contextkit_on_event` observer; an observer's error is logged."""
        for impl in self._pm.hook.contextkit_on_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception:
                logger.exception("event observer %s failed on %s", impl.plugin_name, event.kind)

    @property
    def has_observers(self) -> bool:
        """True when at least one plugin observes events (the kit skips building events otherwise)."""
        return bool(self._pm.hook.contextkit_on_event.get_hookimpls())

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins with their distribution, version and implemented hooks."""
        infos = []
        for name, plugin in sorted(self._pm.list_name_plugin(), key=lambda item: item[0]):
            dist = self._dists.get(name)
            hooks = tuple(sorted(caller.name for caller in self._pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, dist[0] if dist else None, dist[1] if dist else None, hooks))
        return infos


_manager: PluginManager | None = None
_manager_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, built on first call (entry points loaded then, not at import)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests, or after changing the plugin environment switches)."""
    global _manager
    with _manager_lock:
        _manager = None
