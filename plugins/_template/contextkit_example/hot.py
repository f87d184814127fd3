"""ExampleHotStore: the hot tier of contextkit-example (a scaffold: every data method is yours to write).

Implement the methods one at a time against your server's client and run the conformance suite
(``pytest tests/test_conformance.py``); each of its tests states the contract it checks and how to fix a
failure. The semantics every hot tier shares are in :mod:`contextkit.stores` (the module docstring and
:class:`contextkit.stores.HotStore`). Rules that keep a backend honest:

* no I/O in ``__init__`` or the factory: connect in :meth:`open`;
* translate your driver's exceptions: connection errors and timeouts become ``BackendUnavailable``,
  undecodable stored data becomes ``CorruptData`` (use :mod:`contextkit.backend.documents`);
* never put a password in ``describe()``, ``health()``, a repr, a log line or an error message: pass every text
  that could hold one through :func:`contextkit.masking.mask_secrets` (it hides URL passwords, ``password=``
  parameters and every secret the options held, which :meth:`ExampleOptions.parse` remembers with
  :func:`contextkit.masking.remember_secrets`);
* declare in ``capabilities`` only what you implement (see :class:`contextkit.stores.Capability`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

from contextkit.errors import BackendUnavailable
from contextkit.masking import mask_secrets
from contextkit.records import Message, Session
from contextkit.stores import ArchiveSpec, EventHead, OwnerState, SessionUpdate, StoreSettings, StoreStats

from contextkit_example.options import ExampleOptions

__all__ = ["ExampleHotStore"]


def _todo(method: str) -> NoReturn:
    raise NotImplementedError(f"ExampleHotStore.{method} is not implemented yet (see contextkit.stores.HotStore)")


class ExampleHotStore:
    """A contextkit hot tier backed by an example server (replace with what yours stores data in)."""

    name = "example"
    # Add a capability when you implement it, e.g. frozenset({Capability.TTL, Capability.SHARED}).
    capabilities: frozenset[str] = frozenset()

    def __init__(self, settings: StoreSettings, *, url: str) -> None:
        """Keep the settings and the target; no I/O here (the composer calls :meth:`open`)."""
        self.settings = settings
        self.url = url
        self._client: Any = None

    @classmethod
    def from_options(cls, settings: StoreSettings, options: Mapping[str, Any]) -> ExampleHotStore:
        """The factory contextkit calls (``plugin.py`` registers it): validates ``options`` (this backend's table
        of the config, see :class:`~contextkit_example.options.ExampleOptions`), does no I/O."""
        return cls(settings, url=ExampleOptions.parse(options).url)

    def __repr__(self) -> str:
        return f"ExampleHotStore({mask_secrets(self.url)!r}, namespace={self.settings.namespace!r})"

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect (and create what the namespace needs); raise ``BackendUnavailable`` if the server is down."""
        try:
            self._client = await self._connect()
        except OSError as exc:
            # the driver's text can echo the URL: the whole message goes through the masker
            raise BackendUnavailable(mask_secrets(f"example server at {self.url} is unreachable: {exc}")) from None

    async def _connect(self) -> Any:
        _todo("open")

    async def aclose(self) -> None:
        """Close the client this store created; a second call does nothing."""
        self._client = None

    async def health(self) -> dict[str, Any]:
        """Ping the server; never raises, never shows the password."""
        started = time.perf_counter()
        try:
            await self._ping()
        except Exception as exc:
            return {"status": "unhealthy", "error": type(exc).__name__, "target": mask_secrets(self.url)}
        return {"status": "healthy", "latency_ms": (time.perf_counter() - started) * 1000.0}

    async def _ping(self) -> None:
        _todo("health")

    def describe(self) -> dict[str, Any]:
        """The backend, its target without credentials and the namespace; no I/O."""
        return {
            "backend": self.name,
            "target": mask_secrets(self.url),
            "namespace": self.settings.namespace,
            "capabilities": sorted(self.capabilities),
        }

    async def stats(self) -> StoreStats:
        """Counts shared by every process of the namespace (``-1`` where counting is not cheap)."""
        _todo("stats")

    # -- tiering (with a cold tier: see "Tiering" in contextkit.stores) ------------------------------------------
    async def restore_owner(self, state: OwnerState) -> None:
        """Put back what the archive holds of an owner, only where this tier has no meta for it (put-if-absent),
        in one atomic step."""
        _todo("restore_owner")

    # -- sessions -------------------------------------------------------------------------------------------------
    async def put_session(
        self, session: Session, *, task_context: Mapping[str, Any] | None = None, archive: EventHead | None = None
    ) -> Session:
        """Store the session whole (and its task context) under the owner's next versions, start its TTL; with
        ``archive``, write their events to your outbox in the same atomic step. Returns the session stored."""
        _todo("put_session")

    async def get_session(self, session_id: str) -> Session | None:
        """The session, or None when missing or expired."""
        _todo("get_session")

    async def update_session(
        self, session_id: str, update: SessionUpdate, *, archive: EventHead | None = None
    ) -> Session | None:
        """Apply counter increments atomically (server-side), move last_activity forward only, refresh the TTL,
        under the owner's next version (and its event, with ``archive``). Counters that would leave their range
        raise SerializationError before anything is written (``update.counters_after`` in the atomic step)."""
        _todo("update_session")

    async def delete_session(
        self, session_id: str, *, archive: EventHead | None = None, evict: bool = False
    ) -> bool:
        """Remove the session and every key family of it (a tombstone and a delete event when archived; nothing
        left with ``evict``); True if the record existed."""
        _todo("delete_session")

    async def scan_sessions(self, cursor: str | None, count: int) -> tuple[list[Session], str | None]:
        """About ``count`` sessions after ``cursor``, and the next cursor (None at the end)."""
        _todo("scan_sessions")

    async def idle_sessions(self, before: datetime, limit: int) -> list[str]:
        """Ids of sessions idle since before ``before``, oldest first, from an index."""
        _todo("idle_sessions")

    # -- history streams ------------------------------------------------------------------------------------------
    async def append_messages(
        self, key: str, messages: Sequence[Message], *, archive: ArchiveSpec | None = None
    ) -> list[Message]:
        """Append with consecutive seq numbers assigned atomically; trim the oldest beyond the cap; when a session
        with id == ``key`` exists, move its last_activity forward to the newest message and refresh its TTL in the
        same atomic step (and write the messages' events, with ``archive``)."""
        _todo("append_messages")

    async def read_history(self, key: str, limit: int | None) -> list[Message]:
        """The newest ``limit`` messages in chronological order, in O(limit)."""
        _todo("read_history")

    async def history_length(self, key: str) -> int:
        """Number of messages kept in the stream."""
        _todo("history_length")

    async def history_bounds(self, key: str) -> tuple[int, int]:
        """(first kept seq, highest seq ever assigned); (0, 0) for an empty stream."""
        _todo("history_bounds")

    async def replace_history(self, key: str, messages: Sequence[Message]) -> None:
        """Replace the whole stream atomically, keeping the messages' seq as given."""
        _todo("replace_history")

    async def delete_mark(self, owner: str) -> tuple[int, int]:
        """(version, last seq) of the owner's last delete your meta remembers, (0, 0) when none."""
        _todo("delete_mark")

    async def backfill_history(self, key: str, older: Sequence[Message]) -> int:
        """Insert archived messages older than every kept one at the head of the stream, up to the cap."""
        _todo("backfill_history")

    # -- task contexts and conversation sessions ------------------------------------------------------------------
    async def put_task_context(
        self, session_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store the task context document of a session (and its event, with ``archive``)."""
        _todo("put_task_context")

    async def get_task_context(self, session_id: str) -> dict[str, Any] | None:
        """The stored task context document, or None."""
        _todo("get_task_context")

    async def put_conversation_session(
        self, session_key: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store a conversation session, registered under ``document["session_id"]`` for deletion (and its event,
        with ``archive``)."""
        _todo("put_conversation_session")

    async def get_conversation_session(self, session_key: str) -> dict[str, Any] | None:
        """The stored conversation session document, or None."""
        _todo("get_conversation_session")

    # -- seed checkpoints -----------------------------------------------------------------------------------------
    async def put_checkpoint_document(
        self, thread_id: str, checkpoint_id: str, document: Mapping[str, Any], *, archive: EventHead | None = None
    ) -> None:
        """Store or replace a checkpoint document (thread TTL: ``settings.checkpoint_ttl``; its event, with
        ``archive``)."""
        _todo("put_checkpoint_document")

    async def get_checkpoint_document(self, thread_id: str, checkpoint_id: str | None) -> dict[str, Any] | None:
        """That checkpoint, or the thread's most recently inserted one when ``checkpoint_id`` is None."""
        _todo("get_checkpoint_document")

    async def list_checkpoint_documents(self, thread_id: str, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` checkpoint documents, newest first, in O(limit)."""
        _todo("list_checkpoint_documents")

    async def put_writes_document(
        self,
        thread_id: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[Any],
        *,
        archive: EventHead | None = None,
    ) -> None:
        """Append one task's writes to the checkpoint (later calls add, never replace; their event, with
        ``archive``)."""
        _todo("put_writes_document")

    async def get_writes_documents(self, thread_id: str, checkpoint_id: str) -> list[tuple[str, Any]]:
        """(task_id, write) pairs of the checkpoint in the order they were put."""
        _todo("get_writes_documents")

    # -- enumeration (export, import and `contextkit migrate` walk the tier with these) ---------------------------
    async def list_conversation_sessions(self, session_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(session_key, document) of the conversation sessions registered under the session, sorted by key."""
        _todo("list_conversation_sessions")

    async def iter_data_owners(self) -> AsyncIterator[str]:
        """Every id holding a history, task context or conversation session document, with or without a session
        record (a walk of the keys or rows is fine: only export and migration call it)."""
        _todo("iter_data_owners")
        yield ""  # unreachable; makes this an async generator like the real one

    async def scan_checkpoint_threads(self, cursor: str | None, count: int) -> tuple[list[str], str | None]:
        """About ``count`` seed checkpoint thread ids after ``cursor``, from an index, and the next cursor."""
        _todo("scan_checkpoint_threads")

    async def read_checkpoint_thread(
        self, thread_id: str
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, list[tuple[str, Any]]]]]:
        """(documents in insertion order, writes by checkpoint id) of one seed checkpoint thread."""
        _todo("read_checkpoint_thread")
