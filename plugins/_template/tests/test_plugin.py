"""The package is wired into contextkit: its entry point loads and registers the ``example`` hot tier."""

from __future__ import annotations

from contextkit.plugins import PluginManager
from contextkit.stores import StoreSettings

from contextkit_example import ExampleHotStore


def test_entry_point_registers_the_example_hot_tier() -> None:
    """Installing the package (``pip install -e .``) is enough for contextkit to find the backend by name."""
    info = PluginManager().backends.get("hot", "example")
    store = info.factory(StoreSettings(namespace="wiring-test"), {"url": "example://localhost"})
    assert isinstance(store, ExampleHotStore)
    assert store.name == "example"
