"""contextkit-example: a hot tier for contextkit (a scaffold: replace "example" with your backend's name).

* :class:`~contextkit_example.hot.ExampleHotStore` - the store (registered as the hot tier ``example``).
* :class:`~contextkit_example.options.ExampleOptions` - its options.

The hooks are in :mod:`contextkit_example.plugin`. Importing this package imports no driver: the names above load
their module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextkit_example.hot import ExampleHotStore
    from contextkit_example.options import ExampleOptions

__all__ = ["ExampleHotStore", "ExampleOptions"]
__version__ = "0.1.0"

# Each public name and its module, imported on first use of the name: a store's module imports the driver, which
# registering the plugin or reading its options must not.
_EXPORTS = {
    "ExampleHotStore": "contextkit_example.hot",
    "ExampleOptions": "contextkit_example.options",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
