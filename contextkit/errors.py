"""The error tree of contextkit.

Every error contextkit raises on purpose derives from :class:`ContextKitError`. Backends translate their
driver's exceptions into this tree (a connection error becomes :class:`BackendUnavailable`), so application
code can handle storage failures without importing redis, asyncpg or clickhouse-connect.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendNotFound",
    "BackendUnavailable",
    "CapabilityNotSupported",
    "ConfigError",
    "ContextKitError",
    "InvalidInput",
    "LimitExceeded",
    "NotFound",
    "SerializationError",
]


class ContextKitError(Exception):
    """Root of every error contextkit raises on purpose."""


class ConfigError(ContextKitError):
    """The configuration is invalid: an unknown key, a bad value, a URL that cannot be parsed."""


class BackendNotFound(ConfigError):
    """No installed plugin registers a backend under the requested name.

    The message lists the installed backends and the ``pip install`` line that would provide the missing one.
    """

    def __init__(self, name: str, tier: str, installed: Iterable[str]) -> None:
        self.name = name
        self.tier = tier
        self.installed = sorted(installed)
        listed = ", ".join(self.installed) or "none"
        super().__init__(
            f"no {tier} tier backend named {name!r} is installed (installed: {listed}); "
            f'install it with: pip install "contextkit[{name}]"'
        )


class BackendUnavailable(ContextKitError):
    """The backend cannot be reached or failed while serving a call (connection refused, timeout, server error).

    Raised within the configured timeout; the call may be retried once the server is back.
    """


class NotFound(ContextKitError, LookupError):
    """The record the call needs (a session, a conversation session, a checkpoint) does not exist."""


class InvalidInput(ContextKitError, ValueError):
    """An argument is malformed: wrong type, empty, too long, control characters, unknown enum value.

    Nothing has been written when this is raised.
    """


class LimitExceeded(InvalidInput):
    """An argument is larger than a configured limit (id length, message size, metadata size or depth)."""


class SerializationError(InvalidInput):
    """A value cannot be serialized (not JSON-compatible, NaN or infinity) or stored data cannot be decoded."""


class CapabilityNotSupported(ContextKitError, NotImplementedError):
    """The composed backend does not declare the capability this call needs."""
