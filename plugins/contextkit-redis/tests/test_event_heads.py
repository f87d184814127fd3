"""The archive event heads the append script completes: head + message JSON + "}}" is the event's JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from contextkit.archiver import message_event_heads as _event_heads
from contextkit.errors import InvalidInput
from contextkit.records import ArchiveEvent, Message, new_event_id
from contextkit.stores import ArchiveSpec

KEYS = ["s", "a:b", "{x}", "*", "line\nbreak", 'quote"back\\slash', "é" * 300, "\u2028\u2029\x7f", "tab\tctl\x01"]


@pytest.mark.parametrize("key", KEYS)
def test_a_completed_head_is_the_events_json(key: str) -> None:
    moments = [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), datetime.now(timezone.utc)]
    ids = [new_event_id(), 'id-with-"quote"']
    heads = _event_heads(key, ArchiveSpec("context_conversations", tuple(ids), tuple(moments)), 2)
    for head, event_id, moment in zip(heads, ids, moments, strict=True):
        message = Message(role="user", content='hé\n"x"', timestamp=moment, metadata={"k": [1, None]}, id="m1")
        payload = {"message": message.to_dict()}
        text = head + json.dumps(payload["message"], ensure_ascii=False) + "}}"
        expected = ArchiveEvent("context_conversations", key, payload, created_at=moment, event_id=event_id)
        assert json.loads(text) == expected.to_dict()
        assert list(json.loads(text)) == list(expected.to_dict())  # same keys, same order
        assert ArchiveEvent.from_dict(json.loads(text)) == expected


def test_a_spec_that_does_not_match_the_messages_is_refused() -> None:
    now = datetime.now(timezone.utc)
    spec = ArchiveSpec("context_conversations", ("a",), (now, now + timedelta(seconds=1)))
    with pytest.raises(InvalidInput):
        _event_heads("s", spec, 1)
