"""Model-based tests on the memory tier, the kit (with and without a cold tier) and the LangGraph checkpointer.

Each test runs a hypothesis state machine from :mod:`contextkit.testing.model`: random operation sequences with
hostile ids and documents, every result compared with a plain-Python reference model.
"""

from __future__ import annotations

import importlib.util

import pytest
from hypothesis import settings

from contextkit.stores import HotStore, StoreSettings
from contextkit.testing.model import MODEL_SETTINGS, run_checkpointer_model, run_hot_store_model, run_kit_model
from contextkit_memory import MemoryHotStore


async def _memory_store(settings: StoreSettings) -> HotStore:
    store = MemoryHotStore(settings)
    await store.open()
    return store


def test_memory_hot_store_matches_the_reference_model() -> None:
    """Every HotStore operation on the memory tier agrees with the model, trimming and hostile ids included."""
    run_hot_store_model(_memory_store)


def test_memory_hot_store_with_a_cap_of_one_matches_the_reference_model() -> None:
    """With history_cap=1 every append trims; seqs still continue and bounds still report the trim."""
    run_hot_store_model(_memory_store, history_cap=1, run_settings=settings(MODEL_SETTINGS, max_examples=15))


def test_kit_on_the_memory_tier_matches_the_reference_model() -> None:
    """Sessions, messages, history, compression and cleanup through ContextKit agree with the model."""
    run_kit_model(with_cold=False)


def test_kit_with_a_cold_tier_survives_hot_loss_like_the_reference_model() -> None:
    """With the memory cold tier, the same sequences plus losing the whole hot tier: reads come back through the
    archive, numbering continues, and nothing that was acknowledged is lost."""
    run_kit_model(with_cold=True, run_settings=settings(MODEL_SETTINGS, max_examples=30))


@pytest.mark.skipif(importlib.util.find_spec("langgraph") is None, reason="langgraph is not installed")
def test_checkpointer_on_the_memory_tier_agrees_with_inmemorysaver() -> None:
    """ContextKitSaver over the memory tier returns what LangGraph's InMemorySaver returns for the same calls."""
    run_checkpointer_model(_memory_store, run_settings=settings(MODEL_SETTINGS, max_examples=30))
