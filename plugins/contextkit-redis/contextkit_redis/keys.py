"""The Redis key layout of contextkit: one hash tag per owner id, index shards, and the namespace prefix.

Every key starts with ``<percent name of the namespace>:`` (:func:`contextkit.naming.percent_name`): a namespace
of letters, digits, ``_``, ``.`` and ``-`` (every namespace the configuration accepts) is its own prefix, as in
earlier versions; any other character is percent-encoded, ``:`` and ``%`` included. So the prefix never holds a
``:`` before its end, no namespace's prefix starts another's (``a`` and ``a:b`` no longer overlap), and two
namespaces never share a key. The keys of one owner (a session id, a history stream key or a
checkpoint thread id) share the hash tag ``{<encoded id>}`` so every operation on them touches one slot, which
is what lets the same Lua scripts run on Redis Cluster. The id is percent-encoded (``urllib.parse.quote`` with
no safe characters): the encoding is injective and its output never contains ``{``, ``}``, ``:``, ``*`` or
``#``, so no id can end the tag early, collide with another id, or look like an index key.

Index keys (session listing, idle cleanup, stats counters and the seed checkpoint threads) live in ``shards``
fixed shards whose tags are ``{#<n>}``; ``#`` never appears in an encoded id, so an owner tag is never an index
tag. A session's shard is chosen by a stable hash of its id, so an index update touches one slot too.

The LangGraph checkpointer reuses :meth:`KeyLayout.owner_key` with its own ``kind`` names (``lg:...``).
"""

from __future__ import annotations

import binascii
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, unquote

from contextkit.errors import ConfigError
from contextkit.naming import percent_name

__all__ = ["DEFAULT_INDEX_SHARDS", "IndexKeys", "KeyLayout", "OwnerKeys", "encode_id"]

DEFAULT_INDEX_SHARDS = 16
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
# Owner key families that hold data a session may not list (see KeyLayout.data_owner).
_DATA_FAMILIES = frozenset({"history", "task", "conversation"})


_SLOT_TAGS: list[str] = []


def _slot_tags() -> list[str]:
    """For every cluster hash slot, a hash tag that hashes to it (``#o<hex>``: ``#`` never appears in an encoded
    id, so no owner's tag is one of them). Found once, by trying tags in order (about 170,000 CRC16s, ~0.1 s)."""
    if not _SLOT_TAGS:
        tags = [""] * 16384
        missing, n = 16384, 0
        while missing:
            tag = f"#o{n:x}"
            slot = binascii.crc_hqx(tag.encode("ascii"), 0) % 16384
            if not tags[slot]:
                tags[slot] = tag
                missing -= 1
            n += 1
        _SLOT_TAGS.extend(tags)
    return _SLOT_TAGS


def encode_id(value: str) -> str:
    """The injective, brace-free encoding of an id used inside hash tags (percent-encoding of UTF-8)."""
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class OwnerKeys:
    """Every key family of one owner id, all in the owner's slot."""

    session: str  #: HASH: the session record (counters, status, last activity, version)
    history: str  #: LIST: the history stream, oldest at the head
    seq: str  #: STRING: highest seq of the stream, as kept before the meta record held it (read once, then dropped)
    task: str  #: STRING: the task context document (JSON)
    conversations: str  #: SET: conversation session keys registered under this session
    conversation: str  #: STRING: the conversation session document stored under this key (JSON)
    cp_docs: str  #: HASH: seed checkpoint documents by checkpoint id
    cp_order: str  #: LIST: seed checkpoint ids in order of first insertion
    cp_writes: str  #: HASH: seed checkpoint writes by checkpoint id (a JSON array)
    meta: str  #: HASH: the owner's meta: ``v`` version counter, ``s`` highest stream seq, ``t`` tombstone flag

    def session_family(self) -> list[str]:
        """Keys whose TTL is the session TTL (refreshed on session activity)."""
        return [self.session, self.history, self.seq, self.task, self.conversations, self.conversation]

    def checkpoint_family(self) -> list[str]:
        """Keys whose TTL is the checkpoint TTL (refreshed on checkpoint writes)."""
        return [self.cp_docs, self.cp_order, self.cp_writes]

    def all(self) -> list[str]:
        """Every data key of the owner (its meta record aside)."""
        return self.session_family() + self.checkpoint_family()


@dataclass(frozen=True, slots=True)
class IndexKeys:
    """The keys of one index shard, all in the shard's slot."""

    by_activity: str  #: ZSET: session id -> last_activity (epoch seconds), for idle cleanup
    by_id: str  #: ZSET: session id with score 0, walked lexicographically by scan_sessions
    active: str  #: ZSET: ids of sessions whose status is active -> last_activity
    stats: str  #: HASH: counters (messages, checkpoints) of the sessions of this shard

    def all(self) -> list[str]:
        """The four keys in the order the Lua scripts expect them."""
        return [self.by_activity, self.by_id, self.active, self.stats]


class KeyLayout:
    """Builds every key of one namespace.

    :param namespace: the namespace; its percent name (braces, ``:``, whitespace and control characters
        encoded, so none can become a hash tag or a separator) followed by ``:`` starts every key.
    :param shards: number of index shards.
    """

    def __init__(self, namespace: str, shards: int = DEFAULT_INDEX_SHARDS) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ConfigError(f"the namespace must be non-empty text, got {namespace!r}")
        if shards < 1:
            raise ConfigError(f"index shards must be >= 1, got {shards}")
        self.namespace = namespace
        try:
            self.prefix = percent_name(namespace) + ":"
        except UnicodeEncodeError:
            raise ConfigError(f"the namespace {namespace!r} is not valid text (a lone surrogate)") from None
        self.shards = shards

    def owner_tag(self, owner_id: str) -> str:
        """The hash tag shared by every key of ``owner_id``."""
        return "{" + encode_id(owner_id) + "}"

    def owner_key(self, owner_id: str, kind: str) -> str:
        """The key of family ``kind`` of ``owner_id`` (``kind`` is a fixed name chosen by the caller)."""
        return f"{self.prefix}{self.owner_tag(owner_id)}:{kind}"

    def owner(self, owner_id: str) -> OwnerKeys:
        """Every key family of ``owner_id``."""
        base = f"{self.prefix}{self.owner_tag(owner_id)}:"
        return OwnerKeys(
            session=base + "session",
            history=base + "history",
            seq=base + "seq",
            task=base + "task",
            conversations=base + "conversations",
            conversation=base + "conversation",
            cp_docs=base + "cp:docs",
            cp_order=base + "cp:order",
            cp_writes=base + "cp:writes",
            meta=base + "meta",
        )

    def shard_of(self, owner_id: str) -> int:
        """The index shard of ``owner_id`` (stable across processes and versions: CRC-32 of the UTF-8 id)."""
        return zlib.crc32(owner_id.encode("utf-8")) % self.shards

    def index(self, shard: int) -> IndexKeys:
        """The keys of index shard ``shard``."""
        base = f"{self.prefix}#index:{{#{shard}}}:"
        return IndexKeys(by_activity=base + "activity", by_id=base + "ids", active=base + "active", stats=base + "stats")

    def index_for(self, owner_id: str) -> IndexKeys:
        """The index shard keys of ``owner_id``."""
        return self.index(self.shard_of(owner_id))

    def seed_threads(self, shard: int) -> str:
        """ZSET (score 0) of the seed checkpoint thread ids of index shard ``shard``, walked lexicographically by
        ``scan_checkpoint_threads``; it shares the shard's hash tag, so a script of the shard can update it."""
        return f"{self.prefix}#index:{{#{shard}}}:cpthreads"

    def seed_threads_for(self, thread_id: str) -> str:
        """The seed checkpoint thread index key of ``thread_id``'s shard."""
        return self.seed_threads(self.shard_of(thread_id))

    def epoch(self) -> str:
        """HASH: the namespace's epoch (``e``) and the run id of the server it was taken on (``run``), plain Redis."""
        return f"{self.prefix}#epoch"

    def outbox_stream(self, shard: int) -> str:
        """The archive outbox stream of plain Redis (``shard`` 0; its own hash tag ``{#o<n>}``)."""
        return f"{self.prefix}#outbox:{{#o{shard}}}"

    def dead_letters(self) -> str:
        """HASH of the archiver's dead letters (event id -> JSON of the letter), one per namespace, in the hash tag
        of the plain Redis outbox stream (see :mod:`contextkit_redis.outbox`)."""
        return f"{self.prefix}#dead:{{#o0}}"

    def outbox_for_slot(self, slot: int) -> str:
        """The archive outbox stream of cluster hash slot ``slot``: a key whose hash tag hashes to that slot, so the
        write scripts of the owners of the slot can XADD to it (see :mod:`contextkit_redis.outbox`)."""
        return f"{self.prefix}#outbox:{{{_slot_tags()[slot]}}}"

    @staticmethod
    def encoded(owner_id: str) -> str:
        """The hash tag text of ``owner_id`` (its slot is the CRC16 of it)."""
        return encode_id(owner_id)

    def owner_scan_pattern(self) -> str:
        """A SCAN MATCH pattern matching every owner key of the namespace (``<prefix>{<id>}:<family>``)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "{*}:*"

    def data_owner(self, key: str) -> str | None:
        """The owner id of a history, task context or conversation session key of this namespace, else None."""
        if not key.startswith(self.prefix + "{"):
            return None
        tag, sep, family = key[len(self.prefix) + 1 :].rpartition("}:")
        if not sep or family not in _DATA_FAMILIES:
            return None
        return unquote(tag)

    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern matching every key of the namespace (glob characters escaped)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "*"
