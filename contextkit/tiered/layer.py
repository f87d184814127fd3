"""The tiered layer: :class:`Tiered`, the one place that owns read-through, rehydration, numbering and deletes.

The kit's API, the import / migration sink and (for its seed-checkpoint side) the LangGraph adapter reach the hot
tier through it. What it relies on from the stores is the contract of :mod:`contextkit.stores` ("Tiering"):

* a hot tier archived by a cold tier assigns a version to every write inside the write's atomic step and puts the
  write's archive event into its own outbox in that same step (``atomic_outbox``); the layer passes the event's
  id and time (:class:`~contextkit.stores.EventHead`) and then only wakes the archiver;
* such a hot tier raises :class:`~contextkit.errors.OwnerUnknown`, before writing anything, when it does not know
  an owner (or may hold an older copy of it than the archive).

On ``OwnerUnknown`` the layer *learns* the owner: it waits until the outbox holds no event that may belong to it
(:meth:`contextkit.archiver.Archiver.settle`), asks the archive (:meth:`~contextkit.stores.ColdStore.read_owner`,
plus the newest messages of its stream), puts that back with :meth:`~contextkit.stores.HotStore.restore_owner`
(put-if-absent: a write that raced it is never overwritten) and calls again. So the versions and seqs the hot tier
hands out always continue above what the archive holds, a deleted owner comes back as a tombstone, not as its
data, and an archive that cannot be asked makes the call fail with
:class:`~contextkit.errors.BackendUnavailable` instead of guessing (unless ``assume_new_when_unreachable``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from contextkit.errors import BackendUnavailable, ContextKitError, OwnerUnknown
from contextkit.records import Message, utcnow
from contextkit.stores import ColdStore, EventHead, HotStore, OwnerState, StoreSettings

if TYPE_CHECKING:
    from contextkit.archiver import Archiver

__all__ = ["Tiered", "TieringStats"]

logger = logging.getLogger("contextkit.tiered")

T = TypeVar("T")

# A call meets OwnerUnknown again only when the owner vanished between the restore and the retry (a TTL ending
# right then, a concurrent eviction): a few rounds are plenty.
_ATTEMPTS = 4


@dataclass(slots=True)
class TieringStats:
    """What the layer did, for ``get_metrics`` and ``health_check``."""

    #: Owners the archive was asked about (the hot tier did not know them).
    consults: int = 0
    #: Consults that found something (a record, a version, a seq or a delete) and put it back.
    restored: int = 0
    #: Consults that failed (archive unreachable, or behind by more than the owner window).
    consult_failures: int = 0
    #: Owners taken as new because the archive could not be asked (``assume_new_when_unreachable`` only).
    assumed_new: int = 0
    #: Archived messages read for a history the hot tier keeps only in part.
    cold_history_reads: int = 0
    #: Owners whose hot copy may have been older than the archive (the hot tier restarted from an older snapshot,
    #: or was declared restored) and were reconciled with it: each is a rollback the archive repaired.
    reconciled: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {
            "consults": self.consults,
            "restored": self.restored,
            "consult_failures": self.consult_failures,
            "assumed_new": self.assumed_new,
            "cold_history_reads": self.cold_history_reads,
            "reconciled": self.reconciled,
        }


class Tiered:
    """A hot tier, the cold tier that archives it (or None) and the archiver between them, as one store.

    :param settings: the settings the tiers were built with (history cap, owner window).
    :param consult_timeout: seconds a consult may wait for the outbox to settle and for the archive to answer.
    :param foreign_outbox_since: set when the outbox outlives the hot tier's data (the memory tier with a file
        outbox): events queued before this time may belong to any owner, so a consult waits for them too.
    :param assume_new_when_unreachable: take an owner as new when the archive cannot be asked, instead of failing
        (a guess: an id reused after its hot copy was lost may then repeat seqs; counted in ``assumed_new``).
    """

    def __init__(
        self,
        hot: HotStore,
        cold: ColdStore | None,
        archiver: Archiver | None,
        settings: StoreSettings,
        *,
        consult_timeout: float = 5.0,
        foreign_outbox_since: datetime | None = None,
        assume_new_when_unreachable: bool = False,
    ) -> None:
        self.hot = hot
        self.cold = cold
        self.archiver = archiver
        self.settings = settings
        self.consult_timeout = consult_timeout
        self.foreign_outbox_since = foreign_outbox_since
        self.assume_new_when_unreachable = assume_new_when_unreachable
        self.stats = TieringStats()

    @property
    def archiving(self) -> bool:
        """True when writes carry archive events (a cold tier is configured)."""
        return self.archiver is not None

    def head(self, event_type: str = "") -> EventHead | None:
        """The event head a write passes to the hot tier, or None when nothing is archived."""
        return EventHead(event_type) if self.archiver is not None else None

    def written(self, events: int) -> None:
        """Tell the archiver that a write put ``events`` events into the outbox."""
        if self.archiver is not None and events:
            self.archiver.notify(events)

    async def archived_until(self, cutoff: datetime) -> bool:
        """Wait (up to ``consult_timeout``) until every event created before ``cutoff`` has left the outbox for the
        archive; True when it has (and always without a cold tier)."""
        if self.archiver is None:
            return True
        return await self.archiver.settle(cutoff, self.consult_timeout)

    @property
    def archiver_error(self) -> str | None:
        """The archiver's last error, if any."""
        return None if self.archiver is None else self.archiver.last_error

    # -- the one loop ----------------------------------------------------------------------------------------
    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a hot-tier call; when the hot tier does not know the owner, learn it from the archive and run the
        call again. The call must be safe to repeat after ``OwnerUnknown`` (the store wrote nothing)."""
        for _ in range(_ATTEMPTS):
            try:
                return await op()
            except OwnerUnknown as exc:
                if self.cold is None:
                    raise ContextKitError(
                        f"the hot tier reports an unknown owner ({exc.owner[:200]!r}) though no cold tier archives it: "
                        "a store built with settings.archived=True needs a cold tier"
                    ) from exc
                if exc.stale:
                    self.stats.reconciled += 1
                await self.learn(exc.owner)
        raise BackendUnavailable(
            f"the hot tier lost its copy again each time it was restored ({_ATTEMPTS} attempts); retry the call"
        )

    async def learn(self, owner: str) -> OwnerState:
        """Ask the archive what it holds of ``owner`` and put it back into the hot tier where the hot tier lacks it."""
        state = await self.consult(owner)
        if state.last_seq > 0:
            tail = await self._cold(self._need_cold().read_history(owner, self.settings.history_cap, None))
            state = replace(state, history=tuple(tail))
        await self.hot.restore_owner(state)
        if not state.empty:
            self.stats.restored += 1
        return state

    async def consult(self, owner: str) -> OwnerState:
        """What the archive holds of ``owner``, once every event that may belong to it has reached the archive.

        Raises ``BackendUnavailable`` when the outbox does not settle or the archive does not answer within
        ``consult_timeout`` (or returns an empty state, counted, with ``assume_new_when_unreachable``)."""
        cold = self._need_cold()
        self.stats.consults += 1
        try:
            if self.archiver is not None:
                cutoff = utcnow() - timedelta(seconds=self.settings.owner_window)
                if self.foreign_outbox_since is not None:
                    cutoff = max(cutoff, self.foreign_outbox_since)
                if not await self.archiver.settle(cutoff, self.consult_timeout):
                    raise BackendUnavailable(
                        f"the archive is behind by more than {self.settings.owner_window:g} s (events older than that "
                        f"still wait in the outbox: {self.archiver.last_error or 'the archiver has not caught up'}); "
                        f"what it holds of {owner[:200]!r} cannot be known yet"
                    )
            return await self._cold(cold.read_owner(owner))
        except BackendUnavailable as exc:
            self.stats.consult_failures += 1
            if self.assume_new_when_unreachable:
                self.stats.assumed_new += 1
                # the text, not the exception: a record must not keep its traceback (and its frames) alive
                logger.warning("taking %r as new: the archive cannot be asked (%s)", owner[:200], str(exc))
                return OwnerState(owner)
            raise

    async def _cold(self, awaitable: Awaitable[T]) -> T:
        """Await a read of the archive within ``consult_timeout`` (opening it first if it was down at start)."""

        async def read() -> T:
            if self.archiver is not None:
                try:
                    await self.archiver.ensure_cold_open()
                except BaseException:
                    if inspect.iscoroutine(awaitable):
                        awaitable.close()  # never started: no "never awaited" warning
                    raise
            return await awaitable

        try:
            return await asyncio.wait_for(read(), timeout=self.consult_timeout)
        except asyncio.TimeoutError as exc:
            raise BackendUnavailable(f"the archive did not answer within {self.consult_timeout:g} s") from exc
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"the archive cannot be read: {exc}") from exc

    def _need_cold(self) -> ColdStore:
        if self.cold is None:
            raise ContextKitError("no cold tier is configured")
        return self.cold

    # -- reads that may go on into the archive -------------------------------------------------------------------
    async def history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages of a stream (every kept one for None), oldest first; messages older than
        the hot tier keeps come from the archive (and refill the hot tier while it has room)."""
        messages = await self.call(lambda: self.hot.read_history(key, limit))
        if self.cold is None or limit is None or len(messages) >= limit:
            return messages
        # An empty list is a new stream, or one compacted to nothing or deleted: only the latter have an archive.
        before = messages[0].seq if messages else (await self.call(lambda: self.hot.history_bounds(key)))[1] + 1
        if before <= 1:
            return messages
        # Messages a delete removed stay gone, also while the delete still waits in the outbox.
        floor = (await self.call(lambda: self.hot.delete_mark(key)))[1]
        if before <= floor + 1:
            return messages
        older = [
            m for m in await self._cold(self.cold.read_history(key, limit - len(messages), before)) if m.seq > floor
        ]
        if older:
            self.stats.cold_history_reads += len(older)
            await self.call(lambda: self.hot.backfill_history(key, older))
        return [*older, *messages]

    async def checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, object] | None:
        """A seed checkpoint document from the hot tier, else from the archive (not refilled), unless the hot tier
        remembers a delete of the thread."""
        document = await self.call(lambda: self.hot.get_checkpoint_document(thread_id, checkpoint_id))
        if document is None and self.cold is not None:
            if (await self.call(lambda: self.hot.delete_mark(thread_id)))[0]:
                return None  # deleted (its delete may still wait in the outbox); later documents are hot
            document = await self._cold(self.cold.read_checkpoint_document(thread_id, checkpoint_id))
        return document

    # -- deletes -------------------------------------------------------------------------------------------------
    async def delete_owner(self, owner: str, *, also: Sequence[str] = ()) -> bool:
        """Delete ``owner`` with a tombstone and a delete event (see :meth:`HotStore.delete_session`), after the
        owners in ``also``; with a cold tier, also the conversation sessions the archive registers under ``owner``
        that the hot tier no longer holds, so none of them comes back through read-through."""
        extra = list(also)
        if self.cold is not None:
            try:
                extra += await self._cold(self.cold.conversation_keys_of(owner))
            except BackendUnavailable as exc:
                if not self.assume_new_when_unreachable:
                    raise
                # The archive's conversation sessions of the owner cannot be known: delete what the hot tier holds.
                self.stats.assumed_new += 1
                logger.warning(
                    "deleting %r without the archive's list of its conversation sessions: %s", owner[:200], str(exc)
                )
        for key in dict.fromkeys(extra):
            if key != owner:
                await self.call(lambda key=key: self.hot.delete_session(key, archive=self.head("delete")))  # type: ignore[misc]
        existed: bool = await self.call(lambda: self.hot.delete_session(owner, archive=self.head("delete")))
        return existed
