"""Physical names from namespaces: the reversible escapings every backend builds its key prefix, schema, table
prefix or table name with, so two namespaces never share one.

A namespace becomes a physical name in several places (a Redis key prefix, a PostgreSQL schema, a ClickHouse
table prefix, the table of the SQLite outbox). Each is an escaping that can be undone, so two namespaces can never
meet under one name (design section 3b, invariant 7):

* :func:`percent_name` keeps letters, digits, ``_``, ``.``, ``-`` and ``~`` and percent-encodes every other
  character (``%`` included) as the UTF-8 bytes ``%XX``. Every namespace the configuration accepts
  (``[A-Za-z0-9_.-]{1,64}``) is its own percent name, so a namespace keeps the physical name earlier versions gave
  it wherever that name was the namespace itself (every Redis prefix; the PostgreSQL schema and ClickHouse prefix
  of a plain identifier such as ``contextkit`` or ``myapp``). Its output holds no ``:``, braces, quotes,
  whitespace or control characters. Redis, PostgreSQL (a quoted identifier) and ClickHouse (a backquoted one) use it.
* :func:`identifier_name` writes a namespace with lowercase letters, digits and ``_`` only (every other character,
  ``_`` included, becomes ``_`` and two hex digits of each UTF-8 byte), for a name that must be a plain SQL
  identifier compared without regard to case (SQLite table names: ``ck_outbox_<identifier name>``).

:func:`legacy_name` is the lossy name versions before these escapings gave a namespace, kept so that an archive
written then is found again (and as the fallback of a namespace whose escaping does not fit); it is not injective.

Where a backend's name is bounded (PostgreSQL identifiers have 63 bytes), a namespace whose escaping does not fit
gets a hashed name, and the backend records which namespace owns each physical name and refuses a second one with
a :class:`~contextkit.errors.ConfigError` (see the PostgreSQL and ClickHouse plugins).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from urllib.parse import quote, unquote

__all__ = ["identifier_name", "legacy_name", "percent_name", "unescape_identifier_name", "unescape_percent_name"]

_IDENTIFIER_KEPT = re.compile(r"[a-z0-9]+")
_IDENTIFIER_ESCAPE = re.compile(r"_([0-9a-f]{2})")


def percent_name(namespace: str) -> str:
    """``namespace`` with every character other than ASCII letters, digits, ``_``, ``.``, ``-`` and ``~``
    percent-encoded (UTF-8, ``%XX``); ``%`` itself becomes ``%25``, so :func:`unescape_percent_name` undoes it and
    two namespaces never share a percent name. A namespace of those characters only is its own percent name."""
    return quote(namespace, safe="")


def unescape_percent_name(name: str) -> str:
    """The namespace whose :func:`percent_name` is ``name``."""
    return unquote(name, errors="strict")


def identifier_name(namespace: str) -> str:
    """``namespace`` as lowercase letters, digits and ``_`` only: ``a-z`` and ``0-9`` stay, every other character
    (``_`` and capitals included) becomes ``_`` plus the two lowercase hex digits of each of its UTF-8 bytes
    (``my-app`` -> ``my_2dapp``, ``MyApp`` -> ``_4dy_41pp``). Undone by :func:`unescape_identifier_name`; distinct
    namespaces give names that differ even when compared without regard to case."""
    parts: list[str] = []
    for char in namespace:
        if _IDENTIFIER_KEPT.fullmatch(char):
            parts.append(char)
        else:
            parts.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(parts)


def unescape_identifier_name(name: str) -> str:
    """The namespace whose :func:`identifier_name` is ``name``."""
    raw = bytearray()
    position = 0
    for match in _IDENTIFIER_ESCAPE.finditer(name):
        raw += name[position : match.start()].encode("ascii")
        raw.append(int(match[1], 16))
        position = match.end()
    raw += name[position:].encode("ascii")
    return raw.decode("utf-8")


_LEGACY_REPLACED = re.compile(r"[^a-z0-9_]")


def legacy_name(
    namespace: str, *, longest: int, keep: int, reserved: Callable[[str], bool] | None = None, reserved_prefix: str = "ck_"
) -> str:
    """The name versions before :func:`percent_name` gave a namespace (the PostgreSQL schema, the ClickHouse table
    prefix): its lowercase letters, digits and ``_``, every other character ``_``; prefixed with
    ``reserved_prefix`` when ``reserved`` says the result may not be used as it is; and, when characters were
    replaced or the result is longer than ``longest``, cut to ``keep`` characters followed by ``_`` and 8 hex digits
    of the namespace's SHA-1. Not injective (``A`` and ``a_6dcd4ce2`` meet), which is why it is only found again,
    never chosen first; kept byte for byte, since archives live under it."""
    cleaned = _LEGACY_REPLACED.sub("_", namespace.lower())
    lossy = cleaned != namespace
    if reserved is not None and reserved(cleaned):
        cleaned = reserved_prefix + cleaned
    if lossy or len(cleaned) > longest:
        digest = hashlib.sha1(namespace.encode("utf-8")).hexdigest()[:8]
        cleaned = f"{cleaned[:keep]}_{digest}"
    return cleaned
