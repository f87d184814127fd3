"""Typed errors, nothing applied: integers over Python's int-string digit limit and non-finite counter values.

The JSON codec (:mod:`contextkit.codec`) raises :class:`~contextkit.errors.SerializationError` for a value and
:class:`~contextkit.errors.CorruptData` for text read back (both still a ``ValueError``) where the stdlib raises a
plain ``ValueError``; the API edge refuses such integers in every JSON
document, the LangGraph saver in metadata and channel values, and :class:`~contextkit.stores.SessionUpdate` refuses
a non-finite processing time. The per-tier checks of counter updates are in the hot tier suite
(``test_a_counter_update_that_would_leave_its_range_is_refused_with_nothing_applied``); the hostile input catalogue
(``tests/hardening``) checks that nothing is written on each refused kit call.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contextkit import ContextKit
from contextkit.codec import archive_json, archive_loads, int_fits_json
from contextkit.errors import CorruptData, InvalidInput, SerializationError
from contextkit.records import utcnow
from contextkit.stores import MAX_COUNTER, SessionUpdate

LIMIT = sys.get_int_max_str_digits()
OVER = 10**LIMIT  # LIMIT + 1 digits
AT = 10**LIMIT - 1  # LIMIT digits: still fits


@pytest.mark.parametrize("value", [OVER, -OVER, {"a": [1, {"b": OVER}]}, [AT, OVER]], ids=["int", "negative", "deep", "list"])
def test_encoding_an_integer_over_the_digit_limit_is_a_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError) as raised:
        archive_json(value)
    assert isinstance(raised.value, ValueError)  # callers written for the stdlib's error still catch it


def test_an_integer_at_the_digit_limit_round_trips_exactly() -> None:
    text = archive_json({"n": AT, "m": -AT})
    assert archive_loads(text) == {"n": AT, "m": -AT}
    assert int_fits_json(AT) and int_fits_json(-AT) and int_fits_json(2**63)
    assert not int_fits_json(OVER) and not int_fits_json(-OVER)


@pytest.mark.parametrize(
    "text",
    ['{"n":' + "1" * (LIMIT + 1) + "}", "[-" + "9" * (LIMIT + 5) + "]", ("1" * (LIMIT + 1)).encode()],
    ids=["object", "negative in a list", "bytes"],
)
def test_decoding_an_integer_over_the_digit_limit_is_corrupt_data(text: str | bytes) -> None:
    with pytest.raises(CorruptData) as raised:
        archive_loads(text)
    assert isinstance(raised.value, ValueError) and not isinstance(raised.value, InvalidInput)


@pytest.mark.parametrize("text", ["", "{", "[1,]", b"\xff", '{"a": NaN'])
def test_text_that_is_not_json_is_corrupt_data(text: str | bytes) -> None:
    with pytest.raises(CorruptData):
        archive_loads(text)


def test_nan_is_a_serialization_error_unless_allowed() -> None:
    with pytest.raises(SerializationError):
        archive_json({"x": math.nan})
    assert archive_json({"x": math.inf}, allow_nan=True) == '{"x":Infinity}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_session_update_with_a_non_finite_processing_time_cannot_be_built(value: float) -> None:
    """No store ever sees NaN or infinity as an increment (a total it reached would stay there for good)."""
    with pytest.raises(InvalidInput):
        SessionUpdate(utcnow(), processing_time=value)


def test_counters_after_refuses_results_out_of_range_and_names_the_counter() -> None:
    update = SessionUpdate(utcnow(), requests=1, processing_time=1e308)
    with pytest.raises(SerializationError, match="total_processing_time"):
        update.counters_after("s", 0, 0, 1e308)
    with pytest.raises(SerializationError, match="request_count"):
        update.counters_after("s", MAX_COUNTER, 0, 0.0)
    assert update.counters_after("s", 1, 2, 0.5) == (2, 2, 1e308 + 0.5)
    # a counter this update leaves alone is not checked (a total stored as inf before the check existed)
    assert SessionUpdate(utcnow(), requests=1).counters_after("s", 0, 0, math.inf) == (1, 0, math.inf)


@pytest.fixture
async def kit() -> AsyncIterator[ContextKit]:
    async with ContextKit.from_config({"hot": "memory", "cold": "memory"}, env={}) as kit:
        yield kit


async def test_a_non_finite_total_is_refused_by_the_kit_and_a_retry_counts_nothing(kit: ContextKit) -> None:
    """``add_processing_time=1e308`` twice: the second call raises SerializationError; the session keeps its
    counters and version, the archive gets no event for it, and retrying changes nothing either."""
    await kit.create_session("s1", "u1")
    assert await kit.update_session("s1", increment_requests=True, add_processing_time=1e308)
    assert kit.archiver is not None and await kit.archiver.flush(5.0)
    before = await kit.get_session("s1")
    for _ in range(3):
        with pytest.raises(SerializationError):
            await kit.update_session("s1", increment_requests=True, add_processing_time=1e308)
    assert await kit.get_session("s1") == before
    assert await kit.archiver.outbox.depth() == 0


async def test_the_langgraph_saver_refuses_long_integers_typed_and_writes_nothing(kit: ContextKit) -> None:
    """Checkpoint metadata over the digit limit, and channel values or writes the serde cannot write (LangGraph's
    msgpack refuses ints beyond 64 bits with a TypeError), raise SerializationError; the thread stays empty."""
    from langgraph.checkpoint.base import empty_checkpoint

    saver = kit.checkpointer()
    config: Any = {"configurable": {"thread_id": "lg", "checkpoint_ns": ""}}
    checkpoint = empty_checkpoint()
    with pytest.raises(SerializationError, match="metadata"):
        await saver.aput(config, checkpoint, {"source": "input", "step": 1, "n": OVER}, {})  # type: ignore[typeddict-unknown-key]
    valued = empty_checkpoint()
    valued["channel_values"] = {"n": 2**64}
    valued["channel_versions"] = {"n": 1}
    with pytest.raises(SerializationError):
        await saver.aput(config, valued, {"source": "input", "step": 1}, {"n": 1})
    assert await saver.aget_tuple(config) is None
    stored = await saver.aput(config, checkpoint, {"source": "input", "step": 1}, {})
    with pytest.raises(SerializationError):
        await saver.aput_writes(stored, [("n", 2**64)], "task-1")
    found = await saver.aget_tuple(stored)
    assert found is not None and not found.pending_writes


def test_int_fits_json_follows_a_changed_digit_limit() -> None:
    """The limit is read at each call: an app that lowers it (640 is the smallest allowed) is held to it."""
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert int_fits_json(10**639) and not int_fits_json(10**640) and not int_fits_json(-(10**700))
        with pytest.raises(SerializationError):
            archive_json([10**700])
    finally:
        sys.set_int_max_str_digits(previous)
    sys.set_int_max_str_digits(0)  # no limit at all: every int fits
    try:
        assert int_fits_json(10**5000)
    finally:
        sys.set_int_max_str_digits(previous)
