"""The hook implementations of contextkit-example, and nothing else.

contextkit imports this module through the entry point ``example`` in group ``contextkit`` (see pyproject.toml)
and calls the hooks below once, when its plugin manager is first used. Hooks only register things; they do no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contextkit import hookimpl

from contextkit_example.hot import ExampleHotStore

if TYPE_CHECKING:
    from contextkit.plugins import BackendRegistry


@hookimpl
def contextkit_register_backends(registry: BackendRegistry) -> None:
    """Register the ``example`` hot tier (config: ``{"hot": {"backend": "example", "url": ...}}``)."""
    registry.add_hot(
        "example",
        ExampleHotStore.from_options,
        description="example hot tier (scaffold)",
    )
