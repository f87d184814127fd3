"""The composer and the domain API: :class:`ContextKit`.

``ContextKit.from_config(...)`` resolves the configuration, asks the plugin manager for the hot and cold tier
factories, and on ``open()`` (or ``async with``) connects them, falls back to the memory tier when the hot tier
is unreachable and ``fallback`` is on, starts the archiver when a cold tier is configured, and builds the tiered
layer (:mod:`contextkit.tiered`) every call goes through.

Every public method validates its arguments first (so bad input raises :class:`~contextkit.errors.InvalidInput`
and nothing is written), then calls the hot tier through the tiered layer, which writes each write's archive event
in the same atomic step and reads through to the archive what the hot tier does not hold. The calls themselves
live in the mixins of :mod:`contextkit.kit.sessions`, :mod:`~contextkit.kit.history`,
:mod:`~contextkit.kit.documents` and :mod:`~contextkit.kit.conversations`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contextkit.archiver import Archiver, SharedDrain
from contextkit.config import KitConfig, backend_for_url, load_config
from contextkit.errors import BackendUnavailable, CapabilityNotSupported, ConfigError, ContextKitError, InvalidInput
from contextkit.kit.base import Perf
from contextkit.kit.conversations import ConversationsAPI
from contextkit.kit.documents import DocumentsAPI
from contextkit.kit.history import HistoryAPI, KeyedLocks
from contextkit.kit.sessions import SessionsAPI
from contextkit.plugins import PluginManager, get_plugin_manager
from contextkit.records import to_iso, utcnow
from contextkit.stores import (
    DEFERRED_MESSAGE_EVENTS,
    Capability,
    CheckpointStore,
    ColdStore,
    HotStore,
    OutboxProvider,
    RestoreAware,
    RetentionPolicy,
    StoreStats,
    max_key_bytes,
)
from contextkit.tiered import Tiered

if TYPE_CHECKING:
    from collections.abc import Callable

    from contextkit.checkpoint_usage import PrunePlan, ThreadUsage
    from contextkit.langgraph import ContextKitSaver
    from contextkit.transfer import MigrationProgress, TransferSummary

__all__ = ["ContextKit"]

logger = logging.getLogger("contextkit")


def _key_limit(hot: HotStore, cold: ColdStore | None) -> tuple[int, str] | None:
    """The tightest id limit, in UTF-8 bytes, the tiers declare (each its own: a cold tier's indexes may hold less
    than the hot tier's keys), with the tier that declares it; None when neither has one."""
    limits = [
        (limit, f"the {tier.name} {kind} tier")
        for tier, kind in ((hot, "hot"), (cold, "cold"))
        if tier is not None and (limit := max_key_bytes(tier)) is not None
    ]
    return min(limits) if limits else None


class ContextKit(SessionsAPI, HistoryAPI, DocumentsAPI, ConversationsAPI):
    """Context storage for an application: the seed's whole API over a hot tier and an optional cold tier.

    Build one with :meth:`from_config` and use it as an async context manager::

        async with ContextKit.from_config({"hot": "redis", "cold": "postgres"}) as kit:
            await kit.create_session("s1", user_id="u1")

    A hot tier built by hand for a kit with a cold tier must be built with ``StoreSettings(archived=True)``
    (``from_config`` does it).
    """

    def __init__(
        self,
        hot: HotStore,
        cold: ColdStore | None = None,
        *,
        config: KitConfig | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        self.config = config or KitConfig()
        self.plugins = plugins or get_plugin_manager()
        self._hot = hot
        self._cold = cold
        self._archiver: Archiver | None = None
        self._tiered: Tiered | None = None
        self._opened = False
        self._closed = False
        self._degraded_reason: str | None = None
        self._perf = Perf()
        self._compaction_locks = KeyedLocks()
        self._open_lock: asyncio.Lock | None = None
        self.compaction_options: dict[str, Any] = {}
        self._key_limit = _key_limit(hot, cold)
        settings = getattr(hot, "settings", None)
        if cold is not None and settings is not None and not getattr(settings, "archived", False):
            raise ConfigError(
                f"the {hot.name} hot tier was built without StoreSettings(archived=True) but a cold tier archives it: "
                "build it with archived=True (ContextKit.from_config does), or the hot tier cannot tell what it lost"
            )

    # -- construction and lifecycle ------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | KitConfig | str | Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
        **overrides: Any,
    ) -> ContextKit:
        """Build a kit from a mapping, a TOML file path, a :class:`KitConfig`, the environment and defaults.

        No I/O happens here; ``await kit.open()`` or ``async with kit`` connects. An unknown backend name raises
        :class:`~contextkit.errors.BackendNotFound` listing the installed ones.
        """
        manager = plugins or get_plugin_manager()
        resolved = load_config(config, env=env, plugins=manager, **overrides)
        settings = resolved.store_settings()
        hot_info = manager.backends.get("hot", resolved.hot)
        hot = hot_info.build(settings, resolved.hot_options, resolved.env_variables.get("hot"))
        cold = None
        if resolved.cold:
            cold_info = manager.backends.get("cold", resolved.cold)
            cold = cold_info.build(settings, resolved.cold_options, resolved.env_variables.get("cold"))
        return cls(hot, cold, config=resolved, plugins=manager)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        cold: str | None = None,
        env: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
        **settings: Any,
    ) -> ContextKit:
        """Build a kit whose hot tier is the backend ``url`` names and, with ``cold``, an archive at that URL.

        ``url`` is ``memory://``, ``sqlite:///app.db`` (a path relative to the working directory;
        ``sqlite:////var/lib/app.db`` an absolute one), ``redis://[user:password@]host:port/db`` (also
        ``rediss://`` and ``unix://``), or a URL whose scheme names an installed hot tier plugin (its name, an
        alias or a scheme it registers). ``cold`` is ``postgresql://user:password@host/db``,
        ``clickhouse://user:password@host:8123/db`` or ``sqlite:///archive.db``. The backend gets the URL as its
        ``url`` option. PostgreSQL and ClickHouse are archive tiers only: ``from_url("postgresql://...")`` raises
        :class:`~contextkit.errors.ConfigError` naming the form to use,
        ``from_url("sqlite:///app.db", cold="postgresql://...")``.

        The tiers come from the URLs alone (no ``hot``/``cold`` setting or backend option of the environment or
        a TOML file is read); the other settings (``namespace``, ``session_ttl``, ``checkpoint_ttl``,
        ``history_cap``, ``timeout``, ``archiver``, ...) are the keyword arguments, else the environment and the
        file as in :meth:`from_config`. No I/O happens here: use the kit as ``async with`` (or ``await
        kit.open()``). Raises :class:`~contextkit.errors.ConfigError` for a URL that is not one (the password
        masked), :class:`~contextkit.errors.BackendNotFound` for a scheme no installed backend registers.
        """
        for key in ("hot", "cold"):
            if key in settings:
                raise ConfigError(f"from_url takes the tiers from its URLs; pass {key!r} in the URL, not as a setting")
        manager = plugins or get_plugin_manager()
        hot_info, hot_options = backend_for_url(manager, "hot", url)
        cold_info, cold_options = (None, {}) if cold is None else backend_for_url(manager, "cold", cold)
        resolved = load_config(settings, env=env, plugins=manager, tiers=False)
        resolved = replace(
            resolved,
            hot=hot_info.name,
            cold=cold_info.name if cold_info is not None else None,
            hot_options=hot_options,
            cold_options=cold_options,
            env_variables={},  # the tiers come from the URLs, not from any variable
        )
        store_settings = resolved.store_settings()
        hot = hot_info.factory(store_settings, hot_options)
        cold_store = cold_info.factory(store_settings, cold_options) if cold_info is not None else None
        return cls(hot, cold_store, config=resolved, plugins=manager)

    @property
    def hot(self) -> HotStore:
        """The hot tier in use (the memory tier after a fallback)."""
        return self._hot

    @property
    def cold(self) -> ColdStore | None:
        """The cold tier, or None."""
        return self._cold

    @property
    def archiver(self) -> Archiver | None:
        """The archiver feeding the cold tier, or None without a cold tier."""
        return self._archiver

    @property
    def degraded(self) -> str | None:
        """Why the kit runs degraded (for example on the memory fallback), or None."""
        return self._degraded_reason

    async def open(self) -> ContextKit:
        """Connect the tiers and start the archiver; idempotent.

        The hot tier unreachable: with ``fallback`` on the kit continues on the memory tier, logs a warning and
        reports "degraded" health; otherwise it raises ``BackendUnavailable``. The cold tier unreachable: the kit
        starts anyway and the archiver keeps events until it comes back (an owner the hot tier does not know then
        cannot be served: see :mod:`contextkit.tiered`).
        """
        if self._closed:
            raise ContextKitError("this ContextKit was closed; build a new one")
        if self._opened:
            return self
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._opened:
                return self
            await self._open_hot()
            foreign_since = None
            if self._cold is not None:
                foreign_since = await self._start_archiver()
            if self._archiver is not None:
                self._has_room = self._archiver.outbox.has_room
                if Capability.DEFERRED_EVENTS.value in self._hot.capabilities:
                    self._append_archive = DEFERRED_MESSAGE_EVENTS
                else:
                    self._draw_event_ids = True
            tiering = self.config.tiering
            self._tiered = Tiered(
                self._hot,
                self._cold,
                self._archiver,
                getattr(self._hot, "settings", None) or self.config.store_settings(),
                consult_timeout=tiering.consult_timeout,
                foreign_outbox_since=foreign_since,
                assume_new_when_unreachable=tiering.assume_new_when_unreachable,
            )
            self._opened = True
        return self

    async def _open_hot(self) -> None:
        try:
            await self._hot.open()
        except BackendUnavailable as exc:
            if not self.config.fallback or self.config.hot == "memory":
                raise
            with_cause = f"{self.config.hot} hot tier unreachable at start ({exc}); using the memory tier"
            logger.warning("%s", with_cause)
            self._degraded_reason = with_cause
            with_memory = self.plugins.backends.get("hot", "memory")
            self._hot = with_memory.factory(self.config.store_settings(), {})
            await self._hot.open()

    async def _start_archiver(self) -> Any:
        """Open the cold tier (or note that it is down), take the hot tier's outbox and start the archiver;
        returns when the outbox starts to outlive the hot tier's data (a file outbox of the memory tier), else None."""
        assert self._cold is not None
        hot = self._hot
        if Capability.ATOMIC_OUTBOX not in hot.capabilities or not isinstance(hot, OutboxProvider):
            raise ConfigError(
                f"the {hot.name} hot tier cannot write archive events in the same step as its writes (no "
                "'atomic_outbox' capability), so a cold tier cannot archive it without losing events: use it "
                "without a cold tier, or a hot tier that has it"
            )
        cold_open = True
        try:
            await self._cold.open()
        except BackendUnavailable as exc:
            logger.warning("cold tier unreachable at start (%s); events wait in the outbox", exc)
            cold_open = False
        archiver_config = self.config.archiver
        foreign_since = None
        make_outbox = hot.outbox
        if archiver_config.outbox_path:
            if hot.name != "memory":
                raise ConfigError(
                    f"[archiver] outbox_path is for the memory hot tier; the {hot.name} tier keeps its own durable outbox"
                )
            outbox = make_outbox(max_pending=archiver_config.max_pending, path=archiver_config.outbox_path)
            # The file keeps events of a previous process whose memory tier is gone: until they are archived, the
            # archive cannot be asked about any owner (see Tiered.consult).
            foreign_since = utcnow()
        elif hot.name == "memory":
            # In process: bounded by bytes as well (its events hold the process's memory).
            outbox = make_outbox(
                max_pending=archiver_config.max_pending, max_pending_bytes=archiver_config.max_pending_bytes
            )
        else:
            outbox = make_outbox(max_pending=archiver_config.max_pending)
        self._archiver = Archiver(self._cold, outbox, archiver_config, cold_open=cold_open)
        self._archiver.start()
        return foreign_since

    async def aclose(self, drain_timeout: float | None = None) -> int | None:
        """Drain the archiver (within ``drain_timeout``, pending events stay in a durable outbox), stop it and
        close the tiers; idempotent. Events that another process holds the drain of (the Redis outbox's lease,
        perhaps of a crashed process) are left in the durable outbox at once, not waited for.

        Never raises because a tier is down: returns how many archive events stay in the outbox (0 when it was
        drained; None without a cold tier, or when the outbox could not be read), also logged as a WARNING and
        kept in the archiver's ``left_at_close`` metric.
        """
        if self._closed:
            return None if self._archiver is None else self._archiver.left_at_close
        self._closed = True
        # From here every call raises "this ContextKit was closed" (_ensure_open): left open, a call reached the
        # closed tier, which said BackendUnavailable (read as an outage) on Redis and SQLite and answered from
        # the closed store's memory on the memory tier.
        self._opened = False
        left = None
        try:
            if self._archiver is not None:
                if await self._drained_elsewhere():
                    drain_timeout = 0.0
                await self._archiver.aclose(drain_timeout)
                left = self._archiver.left_at_close
        finally:
            for tier in (self._cold, self._hot):
                if tier is None:
                    continue
                try:
                    await tier.aclose()
                except BackendUnavailable as exc:  # a tier that is down has nothing left to release
                    logger.warning("closing the %s tier failed: %s", tier.name, exc)
        return left

    async def _drained_elsewhere(self) -> bool:
        """Whether every waiting event is in a durable outbox another process drains (an outbox that can tell:
        the Redis streams' drain lease); closing then leaves them to it, as waiting for a crashed holder's lease
        to lapse would stall the close for nothing."""
        assert self._archiver is not None
        outbox = self._archiver.outbox
        if not isinstance(outbox, SharedDrain):
            return False
        try:
            return await outbox.drained_elsewhere()
        except Exception:  # the server is down: the drain below reports what is left
            return False

    async def __aenter__(self) -> ContextKit:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def describe(self) -> dict[str, Any]:
        """The composed tiers and settings, without secrets."""
        return {
            "config": self.config.describe(),
            "hot": self._hot.describe(),
            "cold": self._cold.describe() if self._cold is not None else None,
            "archiver": None if self._archiver is None else type(self._archiver.outbox).__name__,
            "degraded": self._degraded_reason,
        }

    def __repr__(self) -> str:
        cold = self._cold.name if self._cold is not None else None
        return f"<ContextKit hot={self._hot.name!r} cold={cold!r} namespace={self.config.namespace!r}>"

    async def import_aiecs(
        self,
        redis_url: str,
        *,
        state_path: str | Path | None = None,
        restart: bool = False,
        on_progress: Callable[[MigrationProgress], None] | None = None,
    ) -> TransferSummary:
        """Import a Redis dataset written by the original ContextEngine (AIECS) into this kit's tiers; idempotent,
        resumable with ``state_path``. Returns a :class:`~contextkit.transfer.TransferSummary` (see
        :mod:`contextkit.compat.aiecs_source`)."""
        from contextkit.compat.aiecs_source import import_aiecs

        self._ensure_open()
        return await import_aiecs(self, redis_url, state_path=state_path, restart=restart, on_progress=on_progress)

    def checkpointer(self, *, serde: Any = None) -> ContextKitSaver:
        """A LangGraph checkpointer (``BaseCheckpointSaver``) over the hot tier; needs ``contextkit[langgraph]``.

        With a cold tier, its checkpoints are archived and read back when the hot tier no longer has them (the
        kit must be open: the archiver starts with it). The ``[checkpoints]`` config section gives it its
        retention policy (applied every ``prune_every`` puts of a thread, and by :meth:`ContextKitSaver.aretain`).
        """
        hot = self._hot
        if Capability.CHECKPOINTS not in hot.capabilities or not isinstance(hot, CheckpointStore):
            raise CapabilityNotSupported(f"the {hot.name} hot tier does not store LangGraph checkpoints")
        from contextkit.langgraph import ContextKitSaver

        if self._cold is not None and self._archiver is None:
            self._ensure_open()
        checkpoints = self.config.checkpoints
        return ContextKitSaver(
            hot,
            serde=serde,
            archive=self._archiver,
            key_limit=self._key_limit,
            retention=checkpoints.retention,
            prune_every=checkpoints.prune_every,
            compression=checkpoints.compressor(),
            share_lists=checkpoints.share_lists,
        )

    def _checkpoint_store(self) -> CheckpointStore:
        self._ensure_open()
        hot = self._hot
        if Capability.CHECKPOINTS not in hot.capabilities or not isinstance(hot, CheckpointStore):
            raise CapabilityNotSupported(f"the {hot.name} hot tier does not store LangGraph checkpoints")
        return hot

    async def checkpoint_threads(self) -> list[str]:
        """The ids of every thread the hot tier holds LangGraph checkpoints of (a scan: for maintenance)."""
        from contextkit.checkpoint_usage import thread_ids

        return await thread_ids(self._checkpoint_store())

    async def checkpoint_usage(self, thread_id: str, *, policy: RetentionPolicy | None = None) -> ThreadUsage | None:
        """Where a LangGraph thread's bytes go (``contextkit checkpoints du``): per tier (hot, archive), per
        channel, the growth per checkpoint, and what ``policy`` (by default the ``[checkpoints]`` section) would
        free in the hot tier. None when no tier holds the thread. See :mod:`contextkit.checkpoint_usage`."""
        from contextkit.checkpoint_usage import thread_usage

        store = self._checkpoint_store()
        thread_id = self._id(thread_id, "thread id")
        return await thread_usage(
            store, thread_id, cold=self._cold, policy=policy if policy is not None else self.config.checkpoints.retention
        )

    async def prune_checkpoints(
        self,
        thread_ids: Sequence[str] | None = None,
        *,
        policy: RetentionPolicy | None = None,
        dry_run: bool = False,
    ) -> list[PrunePlan]:
        """Apply a retention policy (by default the ``[checkpoints]`` section) to LangGraph threads in the hot tier
        (``contextkit checkpoints prune``): every thread it holds when ``thread_ids`` is None (a scan). Returns
        what each thread keeps and loses, as decided just before its prune (the prune itself decides again, so a
        checkpoint put in between is never lost); ``dry_run`` removes nothing. The archive keeps its copies; a
        saver with the same policy does not read them back. Raises
        :class:`~contextkit.errors.InvalidInput` for a policy without a limit."""
        import time

        from contextkit.checkpoint_usage import planned_prune
        from contextkit.checkpoint_usage import thread_ids as all_threads

        store = self._checkpoint_store()
        policy = policy if policy is not None else self.config.checkpoints.retention
        if not policy.limits:
            raise InvalidInput(
                "no retention limit: set keep_latest or max_age in the [checkpoints] section (or pass them)"
            )
        if isinstance(thread_ids, str):
            raise InvalidInput("thread_ids must be a sequence of thread ids, not a string")
        threads = [self._id(t, "thread id") for t in thread_ids] if thread_ids is not None else await all_threads(store)
        plans: list[PrunePlan] = []
        for thread_id in threads:
            bundles = [b async for b in store.cp_list(thread_id, None)]
            if not bundles:
                continue
            plan = await planned_prune(store, thread_id, bundles, policy, time.time())
            plans.append(plan)
            if not dry_run and plan.pruned_count:
                await store.cp_prune([thread_id], True, policy=policy)
        return plans

    async def hot_restored(self, backup: str | Path | None = None) -> int:
        """Declare that the hot tier was put back to an older copy of itself (a SQLite hot file copied back from a
        backup, while its processes run or not): every owner written before is reconciled with the archive at its
        next call (counted in ``tiering.reconciled``), so numbers continue above the archive's and the archive
        never goes back. Run it right after the copy, before the applications write again; or give ``backup``
        and the hot tier copies it back itself, with the declaration in the same step (no write falls between).
        Returns the hot tier's new restore epoch.

        Raises :class:`~contextkit.errors.CapabilityNotSupported` for a hot tier that takes no such declaration
        (Redis notices a restart from an older snapshot by itself; the memory tier keeps no copy of itself)."""
        self._ensure_open()
        hot = self._hot
        if not isinstance(hot, RestoreAware):
            raise CapabilityNotSupported(
                f"the {hot.name} hot tier takes no restore declaration (a Redis server notices a restart from an "
                "older snapshot by itself; the memory tier keeps no copy to go back to)"
            )
        epoch = await hot.mark_restored(None if backup is None else str(backup))
        logger.warning("the %s hot tier was declared restored (epoch %d): owners written before are reconciled "
                       "with the archive at their next use", hot.name, epoch)
        return epoch

    # -- health and metrics --------------------------------------------------------------------------------------
    async def health_check(self) -> dict[str, Any]:
        """``{status, storage_backend, active_sessions, total_messages, issues, hot, cold, archiver, tiering}``.

        ``status`` is ``healthy``, ``degraded`` (memory fallback, cold tier down, archive backlog with errors,
        events the cold tier refused, owners that could not be served for want of the archive) or ``unhealthy``
        (the hot tier fails). Never raises; never shows secrets.
        """
        issues: list[str] = []
        hot = await self._hot.health()
        status = "healthy"
        if hot.get("status") == "degraded":
            # serving, but at risk (for example a Redis that may evict the outbox): the tier says why in "reason"
            status = "degraded"
            issues.append(f"hot tier {self._hot.name} is degraded: {hot.get('reason', '')}".strip())
        elif hot.get("status") not in ("healthy", "ok"):
            status = "unhealthy"
            issues.append(f"hot tier {self._hot.name} is {hot.get('status')}: {hot.get('error', '')}".strip())
        if hot.get("warning"):
            issues.append(f"hot tier {self._hot.name}: {hot['warning']}")
        if self._degraded_reason:
            status = "degraded" if status == "healthy" else status
            issues.append(self._degraded_reason)
        cold = None
        archiver = None
        if self._cold is not None:
            cold = await self._cold.health()
            if cold.get("status") not in ("healthy", "ok"):
                status = "degraded" if status == "healthy" else status
                issues.append(f"cold tier {self._cold.name} is {cold.get('status')}; events wait in the outbox")
        if self._archiver is not None:
            archiver = await self._archiver.metrics()
            if archiver["consecutive_failures"]:
                status = "degraded" if status == "healthy" else status
                issues.append(f"archiver failing: {archiver['last_error']}")
            if archiver["dead_letters"]:
                status = "degraded" if status == "healthy" else status
                issues.append(
                    f"{archiver['dead_letters']} archive event(s) refused by the cold tier and kept as dead letters "
                    "(contextkit dead-letters list; replay them once the cause is fixed)"
                )
            if archiver["outbox_error"]:
                status = "degraded" if status == "healthy" else status
                issues.append(f"archive outbox unreadable: {archiver['outbox_error']}")
        tiering = self._tiered.stats.as_dict() if self._tiered is not None else None
        if tiering and tiering["consult_failures"]:
            status = "degraded" if status == "healthy" else status
            issues.append(
                f"{tiering['consult_failures']} call(s) failed because the archive could not be asked about an owner "
                "the hot tier does not know"
            )
        if tiering and tiering["reconciled"]:
            # Not a fault now (the archive repaired each one), but an operator wants to know a rollback happened.
            issues.append(
                f"{tiering['reconciled']} owner(s) of the hot tier were older than the archive (a restart from an "
                "older snapshot) and were reconciled with it"
            )
        stats = StoreStats()
        if status != "unhealthy":
            try:
                stats = await self._hot.stats()
            except ContextKitError as exc:
                issues.append(f"stats unavailable: {exc}")
        return {
            "status": status,
            "storage_backend": self._hot.name,
            "active_sessions": stats.active_sessions,
            "total_messages": stats.messages,
            "issues": issues,
            "hot": hot,
            "cold": cold,
            "archiver": archiver,
            "tiering": tiering,
            "timestamp": to_iso(utcnow()),
        }

    async def get_metrics(self) -> dict[str, Any]:
        """Counts shared by every process on the same hot tier, plus this kit's latency, hit rate and tiering.

        ``memory_usage`` is a fraction of the tier's memory limit (0.0 when it has none); ``memory_bytes`` the
        bytes used when known.
        """
        self._ensure_open()
        stats = await self._hot.stats()
        hot_health = await self._hot.health()
        limit = hot_health.get("memory_limit_bytes") or 0
        used = stats.memory_bytes if stats.memory_bytes >= 0 else int(hot_health.get("memory_bytes", -1))
        perf = self._perf
        lookups = perf.hits + perf.misses
        return {
            "total_sessions": stats.sessions,
            "active_sessions": stats.active_sessions,
            "total_messages": stats.messages,
            "total_checkpoints": stats.checkpoints,
            "memory_usage": (used / limit) if limit and used >= 0 else 0.0,
            "memory_bytes": used,
            "storage_backend": self._hot.name,
            "storage_performance": {
                "avg_response_time": (perf.total_time / perf.calls) if perf.calls else 0.0,
                "cache_hit_rate": (perf.hits / lookups) if lookups else 1.0,
                "operations": perf.calls,
                "errors": perf.errors,
            },
            "archiver": await self._archiver.metrics() if self._archiver is not None else None,
            "tiering": self._tiered.stats.as_dict() if self._tiered is not None else None,
            "timestamp": to_iso(utcnow()),
        }
