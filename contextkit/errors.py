"""The error tree of contextkit.

Every error contextkit raises on purpose derives from :class:`ContextKitError`. Backends translate their
driver's exceptions into this tree (a connection error becomes :class:`BackendUnavailable`), so application
code can handle storage failures without importing redis, asyncpg or clickhouse-connect.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "BackendNotFound",
    "BackendUnavailable",
    "CapabilityNotSupported",
    "ConfigError",
    "ContextKitError",
    "CorruptData",
    "EventRefused",
    "InvalidInput",
    "LimitExceeded",
    "MissingBlobs",
    "NotFound",
    "OwnerUnknown",
    "SerializationError",
]


class ContextKitError(Exception):
    """Root of every error contextkit raises on purpose."""


class ConfigError(ContextKitError):
    """The configuration is invalid: an unknown key, a bad value, a URL that cannot be parsed."""


#: contextkit's own backends per tier (``plugins/contextkit-<name>``): other names belong to third parties.
OWN_BACKENDS: dict[str, tuple[str, ...]] = {
    "hot": ("memory", "redis", "sqlite"),
    "cold": ("clickhouse", "memory", "postgres", "sqlite"),
}

#: The seed's variables that select one of contextkit's own backends for a tier. The backend's plugin reads them
#: (``contextkit_env_options``); when it is not installed nobody does, so :func:`contextkit.config.load_config`
#: still selects the backend by name and building the kit raises :class:`BackendNotFound` with the command that
#: installs it, instead of running on the memory tier without a word (a value in the off list selects nothing).
OWN_SELECTING_VARIABLES: dict[str, dict[str, str]] = {
    "hot": {"REDIS_URL": "redis", "REDIS_HOST": "redis"},
    "cold": {"CLICKHOUSE_ENABLED": "clickhouse"},
}


def install_command(name: str) -> str:
    """The command that installs contextkit's plugin ``name`` from a checkout of contextkit (the distributions
    are not on the public package index yet): the checkout's own ``scripts/install`` when contextkit runs from one
    (an editable install), else the relative command to run in a checkout."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "install"
    if script.is_file():
        return f"{shlex.quote(str(script))} {name}"
    return f"./scripts/install {name} (in a checkout of contextkit)"


class BackendNotFound(ConfigError):
    """No installed plugin registers a backend under the requested name.

    The message lists the installed backends, suggests the closest name of the tier (installed or one of
    contextkit's own) when the name looks like a typo ("did you mean 'redis'?"), and gives the command that
    installs one of contextkit's own backends from a checkout.
    """

    def __init__(self, name: str, tier: str, installed: Iterable[str]) -> None:
        self.name = name
        self.tier = tier
        self.installed = sorted(installed)
        own = OWN_BACKENDS.get(tier, ())
        wanted = name.strip().lower()
        close = difflib.get_close_matches(wanted, sorted({*self.installed, *own}), n=1, cutoff=0.6)
        #: The backend name the caller probably meant, or None.
        self.suggestion: str | None = close[0] if close else None
        listed = ", ".join(self.installed) or "none"
        message = f"no {tier} tier backend named {name!r} is installed (installed: {listed})"
        other_tiers = [other for other, names in OWN_BACKENDS.items() if other != tier and wanted in names]
        if wanted in own:
            self.suggestion = None
            message += f"; install it with: {install_command(wanted)}"
        elif self.suggestion is not None:
            message += f"; did you mean {self.suggestion!r}?"
            if self.suggestion not in self.installed:
                message += f" Install it with: {install_command(self.suggestion)}"
        elif other_tiers:
            message += f"; {wanted!r} is a {other_tiers[0]} tier backend, not a {tier} tier one"
        else:
            message += (
                f"; it is not one of contextkit's own {tier} tier backends ({', '.join(own)}): a third-party "
                "backend comes with its own distribution"
            )
        super().__init__(message)


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
    """A value the caller passed cannot be stored: not JSON-compatible (NaN or infinity, a key that is not a
    string, bytes, an integer over Python's int-string digit limit), or a counter that would leave what every tier
    holds. Refused at the edge, before anything is written. Data read back that cannot be decoded is
    :class:`CorruptData` instead."""


class CorruptData(ContextKitError, ValueError):
    """Data read back from a tier cannot be decoded: a stored document that is not JSON, a record missing its
    fields, a reply of the wrong shape (written by hand, by another program or an older bug, or damaged).

    Not an :class:`InvalidInput`: the caller's arguments were fine and nothing was written; retrying gives the
    same answer until the record is repaired or removed. A ``ValueError``, as ``json.loads`` raises, so code
    written for the standard library's error still catches it.
    """


class MissingBlobs(ContextKitError):
    """A checkpoint put names stored blobs it relies on without sending them (the values of the channels it did
    not change, the nodes of a shared list) and the hot tier no longer holds one: it lost the thread's data in the
    middle of a run (a Redis restart without persistence, an eviction, an expiry). Nothing was written.

    Raised only by stores declaring ``checked_puts`` (:class:`contextkit.stores.CheckedPutStore`);
    :class:`~contextkit.langgraph.ContextKitSaver` answers it by writing the checkpoint again with every value, so
    the checkpoint reads back whole instead of without the values that were lost. ``keys`` are the missing
    ``(channel, version)`` pairs (the first ones found; at least one).
    """

    def __init__(self, message: str, keys: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.keys: tuple[tuple[str, str], ...] = tuple(keys)


class EventRefused(InvalidInput):
    """A tier refused the data itself, not for want of a connection: a value or a key larger than it can store or
    index (PostgreSQL's btree row limit, a string too big for SQLite), a value of the wrong shape.

    Retrying the same data gives the same answer, so the archiver never retries it: it splits the batch until the
    refused events are isolated, keeps them as dead letters and archives the rest. ``BackendUnavailable`` is the
    other answer (an outage: connection lost, timeout), after which the whole batch is retried. Nothing of the
    refused batch was written.
    """


class CapabilityNotSupported(ContextKitError, NotImplementedError):
    """The composed backend does not declare the capability this call needs."""


class OwnerUnknown(ContextKitError):
    """The hot tier does not know the owner of a record (a session id, a stream key, a thread id) well enough to
    serve the call without the archive: it never held it, or it lost it (expired, evicted, restarted), or it may
    hold an older copy than the archive (``stale``: restored from an older snapshot).

    Raised only by a hot tier that a cold tier archives (``StoreSettings.archived``), and only to the tiered layer
    (:mod:`contextkit.tiered`), which then asks the archive, puts what it holds back into the hot tier
    (put-if-absent) and calls again; application code never sees it. Nothing was written when it is raised.
    """

    def __init__(self, owner: str, *, stale: bool = False) -> None:
        self.owner = owner
        self.stale = stale
        what = "may be older than the archive" if stale else "is not known to the hot tier"
        super().__init__(f"owner {owner[:200]!r} {what}; the tiered layer consults the archive")
