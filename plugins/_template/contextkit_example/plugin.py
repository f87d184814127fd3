"""The hook implementations of contextkit-example, and nothing else.

contextkit imports this module through the entry point ``example`` in group ``contextkit`` (see pyproject.toml)
and calls the hooks below: they register the ``example`` hot tier and read its environment variables. Hooks do
no I/O, and neither imports the driver: ``hot.py`` is imported by the factory (:func:`contextkit.plugins.
store_factory`) when a kit is built with the backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contextkit import hookimpl
from contextkit.plugins import EnvOptions, store_factory

from contextkit_example.options import ExampleOptions

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry

__all__ = ["contextkit_env_options", "contextkit_register_backends"]


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``example`` hot tier (config: ``{"hot": {"backend": "example", "url": ...}}``)."""
    registry.add_hot(
        "example",
        store_factory("contextkit_example.hot:ExampleHotStore"),
        description="example hot tier (scaffold)",
    )


@hookimpl
def contextkit_env_options(env: Mapping[str, str]) -> EnvOptions:
    """The options the environment sets: ``EXAMPLE_URL`` (which also selects the example hot tier)."""
    return ExampleOptions.from_env(env)
