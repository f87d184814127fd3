"""The options of the sqlite tiers: :class:`SqliteOptions`, validated without I/O and without aiosqlite.

:func:`parse_options` checks a backend's options (``path`` or ``url``, ``busy_timeout``, ``sweep_interval``,
``sweep_batch``); the sqlite tiers read no environment variable of their own (``CONTEXTKIT_HOT_URL`` /
``CONTEXTKIT_COLD_URL`` take a ``sqlite:///`` URL).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contextkit.errors import ConfigError
from contextkit.plugins import EnvOptions

__all__ = ["DEFAULT_PATH", "ENV_VARIABLES", "SqliteOptions", "parse_options"]

DEFAULT_PATH = "./contextkit.sqlite3"
#: The environment variables the sqlite tiers read, by option: none.
ENV_VARIABLES: dict[str, str] = {}
# Keys the composer may leave in a backend's options besides ours.
_IGNORED_OPTIONS = {"backend", "tier"}
_KNOWN_OPTIONS = {"path", "url", "busy_timeout", "sweep_interval", "sweep_batch"}


@dataclass(frozen=True, slots=True)
class SqliteOptions:
    """The options of the sqlite backend, parsed.

    :param path: the database file (``:memory:`` for a private in-memory database).
    :param busy_timeout: seconds a call waits for another process's write lock before failing.
    :param sweep_interval: seconds between two bounded sweeps of expired rows (expiry is also checked on read).
    :param sweep_batch: most expired rows of each kind one sweep removes.
    """

    path: str = DEFAULT_PATH
    busy_timeout: float = 5.0
    sweep_interval: float = 60.0
    sweep_batch: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options the environment sets: none (the sqlite tiers have no variable of their own)."""
        return EnvOptions.read("sqlite", env, ENV_VARIABLES)


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite://"):
        raise ConfigError(f"a sqlite url starts with sqlite:/// (sqlite:///relative/path or sqlite:////abs/path), got {url!r}")
    rest = url[len("sqlite://") :]
    if rest in ("", "/"):
        raise ConfigError(f"the sqlite url {url!r} names no file")
    # sqlite:///x -> "/x" -> relative "x"; sqlite:////abs -> "//abs" -> "/abs" (SQLAlchemy's convention).
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    return path or DEFAULT_PATH


def parse_options(options: Mapping[str, Any], default_timeout: float) -> SqliteOptions:
    """Parse a backend's options: ``path`` or ``url`` (``sqlite:///file``), ``busy_timeout`` (seconds),
    ``sweep_interval`` (seconds) and ``sweep_batch``; raise :class:`ConfigError` for anything else."""
    unknown = set(options) - _KNOWN_OPTIONS - _IGNORED_OPTIONS
    if unknown:
        raise ConfigError(f"unknown sqlite option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_KNOWN_OPTIONS))}")
    path = options.get("path")
    url = options.get("url")
    if path is not None and url is not None:
        raise ConfigError("give the sqlite backend either path or url, not both")
    if url is not None:
        if not isinstance(url, str):
            raise ConfigError(f"sqlite url must be a string, got {type(url).__name__}")
        path = _path_from_url(url.strip())
    if path is None:
        path = DEFAULT_PATH
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ConfigError(f"sqlite path must be a non-empty string, got {path!r}")
    path = str(path)
    if path != ":memory:":
        path = os.path.expanduser(path)

    def number(key: str, default: float, kind: type = float) -> Any:
        value = options.get(key, default)
        if isinstance(value, bool):
            raise ConfigError(f"sqlite option {key} must be a number, got {value!r}")
        try:
            parsed = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"sqlite option {key} must be a number, got {value!r}") from None
        if parsed < 0:
            raise ConfigError(f"sqlite option {key} must be >= 0, got {value!r}")
        return parsed

    return SqliteOptions(
        path=path,
        busy_timeout=number("busy_timeout", default_timeout),
        sweep_interval=number("sweep_interval", 60.0),
        sweep_batch=max(1, number("sweep_batch", 500, int)),
    )
