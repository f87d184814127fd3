"""Multi-agent conversation sessions and their messages (the :class:`ConversationsAPI` mixin of the kit)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from contextkit.errors import InvalidInput, NotFound
from contextkit.kit.base import KitBase
from contextkit.records import (
    PARTICIPANT_TYPES,
    SESSION_TYPES,
    AgentMessage,
    ConversationParticipant,
    ConversationSession,
    Message,
    to_iso,
    utcnow,
)
from contextkit.stores import SessionUpdate
from contextkit.validation import check_content, check_limit, check_metadata, check_name, check_role

__all__ = ["ConversationsAPI"]

_SESSION_TYPE_RULES: dict[str, tuple[str, str]] = {
    "user_to_mc": ("user", "master_controller"),
    "mc_to_agent": ("master_controller", "agent"),
    "agent_to_agent": ("agent", "agent"),
    "user_to_agent": ("user", "agent"),
}


class ConversationsAPI(KitBase):
    """The multi-agent conversation calls of :class:`~contextkit.kit.ContextKit`."""

    def _participants(self, participants: object) -> tuple[ConversationParticipant, ...]:
        if isinstance(participants, (str, bytes, Mapping)) or not isinstance(participants, Sequence):
            raise InvalidInput("participants must be a list of {id, type, role, metadata} mappings")
        result = []
        for raw in participants:
            p = raw if isinstance(raw, ConversationParticipant) else ConversationParticipant.from_dict(raw)
            pid = self._id(p.participant_id, "participant id")
            if p.participant_type not in PARTICIPANT_TYPES:
                raise InvalidInput(
                    f"unknown participant type {p.participant_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}"
                )
            role = p.participant_role
            if p.participant_type == "agent" and not role:
                raise InvalidInput(f"agent participant {pid!r} needs a role")
            if role is not None:
                role = check_role(role, "participant role", self.config.limits)
            result.append(ConversationParticipant(pid, p.participant_type, role, check_metadata(p.metadata)))
        return tuple(result)

    async def create_conversation_session(
        self,
        session_id: str,
        participants: Sequence[Mapping[str, Any] | ConversationParticipant],
        session_type: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a multi-participant conversation session and return its unambiguous session key.

        ``session_type`` is ``user_to_mc``, ``mc_to_agent``, ``agent_to_agent`` or ``user_to_agent``; the
        participants must match it (for example a user and an agent for ``user_to_agent``).
        """
        sid = self._id(session_id, "session_id")
        if session_type not in SESSION_TYPES:
            raise InvalidInput(f"unknown session type {session_type!r}; expected one of {sorted(SESSION_TYPES)}")
        members = self._participants(participants)
        needed = _SESSION_TYPE_RULES[session_type]
        kinds = sorted(p.participant_type for p in members)
        if kinds != sorted(needed):
            raise InvalidInput(
                f"a {session_type} session needs participants of types {list(needed)}, got {kinds}"
            )
        if len({p.participant_id for p in members}) != len(members):
            raise InvalidInput("participant ids must be distinct")
        now = utcnow()
        conversation = ConversationSession(sid, members, session_type, now, now, check_metadata(metadata))
        key = conversation.session_key
        document = conversation.to_dict()
        self._check_room(1)

        async def run() -> str:
            tiered = self.tiered
            await tiered.call(lambda: self._hot.put_conversation_session(key, document, archive=tiered.head()))
            tiered.written(1)
            self._emit("conversation_session.create", key, session_type=session_type)
            return key

        return await self._timed(run)

    async def get_conversation_session(self, session_key: str) -> ConversationSession | None:
        """The conversation session stored under ``session_key`` (read through from the archive), or None."""
        key = self._id(session_key, "session_key")
        return await self._timed(lambda: self._conversation(key))

    async def _conversation(self, key: str) -> ConversationSession | None:
        document = await self._lookup(lambda: self.tiered.call(lambda: self._hot.get_conversation_session(key)))
        return None if document is None else ConversationSession.from_dict(document)

    async def add_agent_communication_message(
        self,
        session_key: str,
        sender_id: str,
        sender_type: str,
        sender_role: str | None,
        recipient_id: str | None = None,
        recipient_type: str | None = None,
        recipient_role: str | None = None,
        content: str | None = None,
        message_type: str = "communication",
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Add a message between participants of a conversation session; True once stored.

        The sender must be a participant. ``message_type`` is one of the ten well-known types or a well-formed
        custom one (``analysis_result``). Raises :class:`~contextkit.errors.NotFound` for an unknown session key.
        """
        key = self._id(session_key, "session_key")
        sender = self._id(sender_id, "sender_id")
        if sender_type not in PARTICIPANT_TYPES:
            raise InvalidInput(f"unknown sender type {sender_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}")
        if recipient_type is not None and recipient_type not in PARTICIPANT_TYPES:
            raise InvalidInput(
                f"unknown recipient type {recipient_type!r}; expected one of {sorted(PARTICIPANT_TYPES)}"
            )
        if content is None:
            raise InvalidInput("content is required")
        limits = self.config.limits
        message = AgentMessage(
            session_key=key,
            sender_id=sender,
            sender_type=sender_type,
            sender_role=None if sender_role is None else check_role(sender_role, "sender_role", limits),
            content=check_content(content, limits),
            message_type=check_name(message_type, "message_type"),
            recipient_id=None if recipient_id is None else self._id(recipient_id, "recipient_id"),
            recipient_type=recipient_type,
            recipient_role=None if recipient_role is None else check_role(recipient_role, "recipient_role", limits),
            metadata=check_metadata(metadata, limits),
        )
        if not message.content.strip():
            raise InvalidInput("content must not be empty")
        self._check_room(3)

        async def run() -> bool:
            tiered = self.tiered
            conversation = await self._conversation(key)
            lenient = self._seed_leniency
            if conversation is None and not lenient:
                raise NotFound(f"no conversation session with key {key!r}; create it with create_conversation_session")
            if (
                conversation is not None
                and not lenient
                and sender not in {p.participant_id for p in conversation.participants}
            ):
                raise InvalidInput(f"sender {sender!r} is not a participant of conversation {key!r}")
            await self._append(key, message.to_message())
            if conversation is None:
                # The original's leniency: the message is kept under the key, there is no session to touch.
                self._emit("agent_message.append", key, message_type=message.message_type)
                return True
            touched = dataclasses.replace(conversation, last_activity=message.timestamp).to_dict()
            await tiered.call(lambda: self._hot.put_conversation_session(key, touched, archive=tiered.head()))
            tiered.written(1)
            if conversation.session_type == "user_to_mc":
                activity = SessionUpdate(activity=message.timestamp)
                sid = conversation.session_id
                if await tiered.call(lambda: self._hot.update_session(sid, activity, archive=tiered.head("update"))):
                    tiered.written(1)
            self._emit("agent_message.append", key, message_type=message.message_type)
            return True

        return await self._timed(run)

    async def get_agent_conversation_history(
        self, session_key: str, limit: int = 50, message_types: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` agent messages (of ``message_types`` when given) in chronological order, as dicts.

        The type filter applies before the limit, so ``limit`` matching messages come back when they exist.
        """
        key = self._id(session_key, "session_key")
        check_limit(limit, "limit", self.config.limits)
        wanted = None
        if message_types is not None:
            if isinstance(message_types, str):
                raise InvalidInput("message_types must be a list of message types")
            wanted = {check_name(t, "message type") for t in message_types}

        async def run() -> list[dict[str, Any]]:
            messages = await self._lookup(lambda: self.tiered.history(key, None if wanted else (limit or None)))
            rows = [_agent_row(key, m) for m in messages]
            if wanted is not None:
                rows = [r for r in rows if r["message_type"] in wanted]
            return rows[-limit:] if limit else rows

        return await self._timed(run)


def _agent_row(key: str, message: Message) -> dict[str, Any]:
    meta = dict(message.metadata)
    row = {
        "message_id": meta.pop("message_id", message.id),
        "session_key": key,
        "seq": message.seq,
        "sender_id": meta.pop("sender_id", None),
        "sender_type": meta.pop("sender_type", None),
        "sender_role": meta.pop("sender_role", None),
        "recipient_id": meta.pop("recipient_id", None),
        "recipient_type": meta.pop("recipient_type", None),
        "recipient_role": meta.pop("recipient_role", None),
        "message_type": meta.pop("message_type", "communication"),
        "role": message.role,
        "content": message.content,
        "timestamp": to_iso(message.timestamp),
    }
    row["metadata"] = meta
    return row
