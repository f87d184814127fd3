"""The plumbing every part of :class:`~contextkit.kit.ContextKit` shares: its state, timing, validation helpers.

The kit is split by subject (sessions, history, documents, conversations) into mixins over :class:`KitBase`; the
composer (:mod:`contextkit.kit.composer`) builds the tiers and the tiered layer they all call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from contextkit.backend.tables import ArchiveTables
from contextkit.errors import BackendUnavailable, ContextKitError
from contextkit.plugins import PluginManager, StorageEvent
from contextkit.records import Message, new_event_id
from contextkit.stores import ArchiveSpec
from contextkit.validation import check_id, check_key_bytes

if TYPE_CHECKING:
    from contextkit.archiver import Archiver
    from contextkit.config import KitConfig
    from contextkit.stores import ColdStore, HotStore
    from contextkit.tiered import Tiered

__all__ = ["KitBase", "Perf"]

logger = logging.getLogger("contextkit")

T = TypeVar("T")


class Perf:
    """Latency and hit-rate counters of the kit's own calls (for ``get_metrics``)."""

    __slots__ = ("calls", "errors", "hits", "misses", "total_time")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.total_time = 0.0
        self.hits = 0
        self.misses = 0


class KitBase:
    """State and helpers shared by the kit's mixins (see :class:`contextkit.kit.ContextKit`)."""

    config: KitConfig
    plugins: PluginManager
    _hot: HotStore
    _cold: ColdStore | None
    _archiver: Archiver | None
    _tiered: Tiered | None
    _opened: bool
    _closed: bool
    _perf: Perf
    #: The original ContextEngine's leniency, on in the :class:`~contextkit.compat.ContextEngine` facade only:
    #: ``update_session`` ignores keys it cannot update and stores any status text, and an agent message may go to
    #: a conversation key nobody created or come from a sender who is not a participant. The native kit refuses
    #: all of these with ``InvalidInput`` / ``NotFound``.
    _seed_leniency: bool = False
    #: The tightest id limit the tiers declare (``contextkit.stores.max_key_bytes``): (bytes, which tier), or None.
    _key_limit: tuple[int, str] | None = None
    #: What an append passes as ``archive=`` (set at open): None without a cold tier, ``DEFERRED_MESSAGE_EVENTS``
    #: for a hot tier that draws its events' ids itself (capability ``deferred_events``); with
    #: ``_draw_event_ids`` the kit draws them, a new spec per append.
    _append_archive: ArchiveSpec | None = None
    _draw_event_ids: bool = False
    #: The archiver's outbox's ``has_room`` (set at open; None without a cold tier), looked up once: the room
    #: check runs before every archived write.
    _has_room: Callable[[int], bool] | None = None

    @property
    def tiered(self) -> Tiered:
        """The tiered layer every call goes through (the kit must be open)."""
        self._ensure_open()
        assert self._tiered is not None
        return self._tiered

    def _ensure_open(self) -> None:
        if not self._opened:
            if self._closed:
                raise ContextKitError("this ContextKit was closed")
            raise ContextKitError("the ContextKit is not open: use 'async with kit' or 'await kit.open()'")

    async def _timed(self, call: Callable[[], Awaitable[T]]) -> T:
        self._ensure_open()
        start = time.perf_counter()
        self._perf.calls += 1
        try:
            return await call()
        except ContextKitError:
            self._perf.errors += 1
            raise
        finally:
            self._perf.total_time += time.perf_counter() - start

    async def _lookup(self, call: Callable[[], Awaitable[T]]) -> T:
        """A read: a hit when the hot tier answered alone, a miss when the archive had to be asked."""
        tiered = self.tiered
        before = tiered.stats.consults + tiered.stats.cold_history_reads
        result = await call()
        if tiered.stats.consults + tiered.stats.cold_history_reads > before:
            self._perf.misses += 1
        else:
            self._perf.hits += 1
        return result

    async def _append(self, key: str, message: Message) -> Message:
        """Append one message through the tiered layer; the store writes its archive event in the same step (and
        moves the session's last_activity forward)."""
        tiered = self.tiered
        if self._draw_event_ids:
            spec: ArchiveSpec | None = ArchiveSpec(ArchiveTables.CONVERSATIONS, (new_event_id(),), (message.timestamp,))
        else:
            spec = self._append_archive
        stored = await tiered.call(lambda: self._hot.append_messages(key, [message], archive=spec))
        # tiered.written(1) without its call: one call less on every archived append.
        if self._archiver is not None:
            self._archiver.notify(1)
        return stored[0]

    def _check_room(self, count: int) -> None:
        has_room = self._has_room
        if has_room is not None and not has_room(count):
            self._refuse_full()

    def _refuse_full(self) -> None:
        raise BackendUnavailable(
            "the archive outbox is full (the cold tier has been down too long); refusing the write so no "
            "event is lost"
        )

    def _emit(self, kind: str, key: str, **detail: Any) -> None:
        if self.plugins.has_observers:
            self.plugins.emit(StorageEvent(kind, key, detail))

    def _id(self, value: object, what: str) -> str:
        return check_key_bytes(check_id(value, what, self.config.limits), what, self._key_limit)
