"""The bounds of the DeltaChannel walks a saver remembers (contextkit.langgraph._DeltaWalks): what it holds stays
within its limits, the walk used longest ago goes first, and a thread (or everything) can be forgotten."""

from __future__ import annotations

import pytest

import contextkit.langgraph as saver_module
from contextkit.stores import DeltaStep, WriteRow


def _steps(writes: int) -> list[DeltaStep]:
    return [DeltaStep(f"c{i}", [WriteRow("task", 0, "turns", ("msgpack", b"x"), "")], {}) for i in range(writes)]


def _key(n: int) -> tuple[str, str, tuple[str, ...]]:
    return (f"t{n}", "", ("turns",))


def test_remembered_walks_are_bounded_in_number_the_one_used_longest_ago_going_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(saver_module, "_WALKS_REMEMBERED", 3)
    walks = saver_module._DeltaWalks()
    for n in range(3):
        walks.set(_key(n), "start", _steps(2))
    assert walks.get(_key(0)) is not None  # reading t0 makes t1 the one used longest ago
    walks.set(_key(3), "start", _steps(2))
    assert walks.get(_key(1)) is None
    assert all(walks.get(_key(n)) is not None for n in (0, 2, 3))
    walks.forget("t0")
    assert walks.get(_key(0)) is None and walks.get(_key(2)) is not None
    walks.forget()
    assert all(walks.get(_key(n)) is None for n in range(4)) and walks._writes == 0


def test_remembered_walks_are_bounded_in_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(saver_module, "_WALK_WRITES_HELD", 100)
    walks = saver_module._DeltaWalks()
    walks.set(_key(0), "start", _steps(11))  # over a tenth of what all may hold: not kept
    assert walks.get(_key(0)) is None and walks._writes == 0
    for n in range(11):
        walks.set(_key(n), "start", _steps(10))
    assert walks._writes == 100 and walks.get(_key(0)) is None and walks.get(_key(10)) is not None
    walks.set(_key(10), "start", _steps(4))  # a walk replaced counts once
    assert walks._writes == 94
