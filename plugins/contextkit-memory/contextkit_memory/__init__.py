"""contextkit-memory: the in-process tiers, registered as the hot tier ``memory`` and the cold tier ``memory``.

* :class:`~contextkit_memory.hot.MemoryHotStore` - the default hot tier (sessions, history, task contexts,
  conversation sessions, seed checkpoints, and LangGraph checkpoints through
  :class:`~contextkit_memory.checkpoints.MemoryCheckpoints`).
* :class:`~contextkit_memory.cold.MemoryColdStore` - an in-process archive for tests and demos (not durable).
* :class:`~contextkit_memory.options.MemoryOptions` - their options.

The package ships inside the ``contextkit`` distribution (the built-in plugin); its hooks are in
:mod:`contextkit_memory.plugin`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_memory.cold import MemoryColdStore
    from contextkit_memory.hot import MemoryHotStore
    from contextkit_memory.options import MemoryOptions

__all__ = ["MemoryColdStore", "MemoryHotStore", "MemoryOptions"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "MemoryHotStore": "contextkit_memory.hot",
    "MemoryColdStore": "contextkit_memory.cold",
    "MemoryOptions": "contextkit_memory.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
