"""The hook specifications of contextkit: the whole plugin contract.

Hooks are few, synchronous and free of I/O. They only *register* things into typed registries the core passes
in; the objects registered (store factories, compactors) are the ones that do async work later. A plugin module
implements any of them with ``@contextkit.hookimpl`` and is found through the ``contextkit`` entry-point group
(or registered directly with :meth:`contextkit.plugins.PluginManager.register`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry, CompactorRegistry, EnvOptions, StorageEvent

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "contextkit"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register hot and cold tier factories by name.

    Called once, when the plugin manager is first used, for every plugin. Call ``registry.add_hot(name, factory)``
    and/or ``registry.add_cold(name, factory)``; a factory takes ``(settings: StoreSettings, options: Mapping)``
    and returns a store object without doing I/O (the composer awaits ``store.open()``).

    :param registry: the registry to add factories to; a name registered twice raises ``ConfigError``.
    :return: nothing; results are ignored.
    """


@hookspec
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions | None:
    """Read a backend's own environment variables (``REDIS_URL``, ``CONTEXT_PG_URL``, ...) into its options.

    Called by :func:`contextkit.config.load_config` every time it resolves a configuration, for every plugin that
    implements it, with the environment it reads. Return the options the variables set (build it with
    :meth:`contextkit.plugins.EnvOptions.read`, usually from the backend's ``Options.from_env``), or None when the
    plugin reads none. The values are the variables' text: the store factory validates them like any option. The
    environment ranks above the configuration file and below explicit arguments, key by key. A plugin may also
    select its backend for a tier the generic variables (``CONTEXTKIT_HOT`` / ``CONTEXTKIT_COLD`` /
    ``CONTEXT_PERMANENT_BACKEND``) leave unset, as ``REDIS_URL`` selects the redis hot tier.

    :param env: the environment being read (``os.environ``, or the mapping passed to ``load_config``).
    :return: the options set by the environment, or None.
    """


@hookspec
def contextkit_register_compactors(registry: CompactorRegistry) -> None:
    """Register history compaction strategies by name.

    Called once, when the plugin manager is first used. Call ``registry.add(name, compactor)``; a compactor is an
    async callable ``(messages: list[Message], keep_recent: int, options: Mapping) -> list[Message]`` that returns
    the compacted history (for example a summary message followed by the newest messages). ``truncate``,
    ``summarize``, ``semantic`` and ``hybrid`` are built in (:mod:`contextkit.compaction`).

    :param registry: the registry to add compactors to.
    :return: nothing; results are ignored.
    """


@hookspec
def contextkit_on_event(event: StorageEvent) -> None:
    """Observe a write the kit has completed (session created, message appended, checkpoint stored, ...).

    Called after every successful write, for every plugin that implements it, synchronously on the calling task:
    it must be fast and must not do I/O (buffer and flush elsewhere). An exception raised here is logged and does
    not fail the write.

    :param event: what happened: ``event.kind`` (``session.create``, ``message.append``, ...), ``event.key`` and
        ``event.detail`` (a small dict without message content).
    :return: nothing; results are ignored.
    """
