"""The options of the memory tiers: :class:`MemoryOptions`, validated without I/O.

A configuration's ``[memory]`` table feeds both memory tiers, so each accepts the other's options (and ignores
them). The memory tiers read no environment variable of their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from contextkit.errors import ConfigError
from contextkit.plugins import EnvOptions

__all__ = ["ENV_VARIABLES", "MemoryOptions"]

#: The environment variables the memory tiers read, by option: none.
ENV_VARIABLES: dict[str, str] = {}


def _positive_int(options: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"memory tier option {name!r} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class MemoryOptions:
    """The validated options of the memory tiers."""

    #: (hot) A callable returning epoch seconds, used for TTLs (tests pass a fake clock to move time).
    clock: Callable[[], float] = time.time
    #: (hot) Most live sessions; creating one more raises ``LimitExceeded`` (nothing is evicted). None: unbounded.
    max_sessions: int | None = None
    #: (hot) Most expired owners a single write removes (bounds the latency of a write).
    sweep_batch: int = 16
    #: (cold) Start the archive in a simulated outage (tests of the archiver).
    fail: bool = False

    @classmethod
    def parse(cls, options: Mapping[str, Any], tier: str = "hot") -> MemoryOptions:
        """Validate ``options`` for the ``tier`` being built; raises ``ConfigError`` naming the bad option."""
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            label = "memory tier" if tier == "hot" else "memory cold tier"
            raise ConfigError(f"unknown {label} options {sorted(unknown)}; known: {sorted(known)}")
        clock = options.get("clock", time.time)
        if not callable(clock):
            raise ConfigError("memory tier option 'clock' must be a callable returning epoch seconds")
        fail = options.get("fail", False)
        if not isinstance(fail, bool):
            raise ConfigError(f"memory cold tier option 'fail' must be a bool, got {fail!r}")
        return cls(
            clock=clock,
            max_sessions=_positive_int(options, "max_sessions", None),
            sweep_batch=_positive_int(options, "sweep_batch", 16) or 16,
            fail=fail,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options the environment sets: none (the memory tiers have no variable of their own)."""
        return EnvOptions.read("memory", env, ENV_VARIABLES)
