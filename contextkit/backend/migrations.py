"""Versioned schema migrations, one runner for every backend.

A backend's schema is a list of migrations, each with a ``version`` (1, 2, ...): usually the files
``<package>/migrations/NNN_name.sql`` (:func:`load_migrations`; the files are the single source of truth), or
statements in code. :func:`apply_migrations` (and :func:`apply_migrations_sync`, for a driver that runs in a
thread) applies the ones the database has not recorded, in order, through a :class:`MigrationLedger` the backend
writes for its engine:

* ``applied()`` - the versions recorded (with the checksum recorded, where the engine keeps one);
* ``exclusive()`` - one migrator at a time, as the engine allows: a transaction holding an advisory lock
  (PostgreSQL: the DDL and the records commit together), the database's write lock (SQLite), nothing
  (ClickHouse has no transactions: its DDL is ``IF NOT EXISTS``, so two migrators racing do the same thing twice);
* ``apply(migration)`` - run one migration and record it.

The common case, a database already up to date, costs one read and takes no lock; otherwise the runner takes the
lock, reads the record again (a migrator that won the race has done the work) and applies what is still missing.
A recorded migration whose file changed since is not run again: ``on_changed`` hears of it (a warning).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Protocol, TypeVar

from contextkit.errors import ConfigError

__all__ = [
    "FILE_NAME",
    "Migration",
    "MigrationLedger",
    "SyncMigrationLedger",
    "apply_migrations",
    "apply_migrations_sync",
    "load_migrations",
    "pending_migrations",
]

#: The name of a migration file: its version (three digits at least) and a lowercase name.
FILE_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name and text (the engine's SQL, with the backend's placeholders)."""

    version: int
    name: str
    text: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the text (recorded with the migration where the engine keeps it)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def file_name(self) -> str:
        """``NNN_name.sql``."""
        return f"{self.version:03d}_{self.name}.sql"


def load_migrations(
    package: str, kind: Callable[[int, str, str], F], folder: str = "migrations"
) -> tuple[F, ...]:
    """Every ``NNN_name.sql`` file in ``folder`` of ``package`` as ``kind(version, name, text)`` (:class:`Migration`
    or a backend's subclass that renders its placeholders), ordered by version; ``ConfigError`` when two files
    share a version (the package is broken: nothing may be applied)."""
    found = []
    for entry in resources.files(package).joinpath(folder).iterdir():
        match = FILE_NAME.match(entry.name)
        if match:
            found.append(kind(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migration files of {package} share a version: {versions}")
    return tuple(found)


F = TypeVar("F", bound=Migration)


class _Step(Protocol):
    @property
    def version(self) -> int: ...


M = TypeVar("M", bound=_Step)
M_contra = TypeVar("M_contra", bound=_Step, contravariant=True)

#: What ``applied()`` returns: the versions recorded, each with its recorded checksum (None where none is kept).
Applied = Mapping[int, str | None] | Collection[int]


class MigrationLedger(Protocol[M_contra]):
    """Where an async backend records its migrations, and how it applies one (see the module docstring)."""

    async def applied(self) -> Applied:
        """The versions recorded (empty before the first migration, also when the record table is missing)."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[object]:
        """Held while migrations are applied: one migrator at a time, as far as the engine allows."""
        ...

    async def apply(self, migration: M_contra) -> None:
        """Run ``migration`` and record it (in one transaction where the engine has them)."""
        ...


class SyncMigrationLedger(Protocol[M_contra]):
    """:class:`MigrationLedger` for a driver called in a worker thread (SQLite)."""

    def applied(self) -> Applied:
        """As :meth:`MigrationLedger.applied`."""
        ...

    def exclusive(self) -> AbstractContextManager[object]:
        """As :meth:`MigrationLedger.exclusive`."""
        ...

    def apply(self, migration: M_contra) -> None:
        """As :meth:`MigrationLedger.apply`."""
        ...


def pending_migrations(
    migrations: Sequence[M], applied: Applied, on_changed: Callable[[M], None] | None = None
) -> list[M]:
    """The migrations not in ``applied``, by version; ``on_changed`` is told of each recorded one whose checksum
    (when both sides have one) differs from the one recorded."""
    checksums: Mapping[int, str | None] = applied if isinstance(applied, Mapping) else dict.fromkeys(applied)
    missing = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version not in checksums:
            missing.append(migration)
            continue
        recorded = checksums[migration.version]
        current = migration.checksum if isinstance(migration, Migration) else None  # statements in code carry none
        if on_changed is not None and recorded is not None and current is not None and recorded != current:
            on_changed(migration)
    return missing


async def apply_migrations(
    ledger: MigrationLedger[M], migrations: Sequence[M], *, on_changed: Callable[[M], None] | None = None
) -> list[int]:
    """Apply the migrations ``ledger`` has not recorded, in order, one migrator at a time; returns the versions
    applied now (``[]`` when the database was up to date)."""
    if not pending_migrations(migrations, await ledger.applied(), on_changed):
        return []  # the common case: no lock, no write
    done: list[int] = []
    async with ledger.exclusive():
        # Read again under the lock: another migrator may have applied them meanwhile.
        for migration in pending_migrations(migrations, await ledger.applied()):
            await ledger.apply(migration)
            done.append(migration.version)
    return done


def apply_migrations_sync(
    ledger: SyncMigrationLedger[M], migrations: Sequence[M], *, on_changed: Callable[[M], None] | None = None
) -> list[int]:
    """:func:`apply_migrations` for a :class:`SyncMigrationLedger`."""
    if not pending_migrations(migrations, ledger.applied(), on_changed):
        return []
    done: list[int] = []
    with ledger.exclusive():
        for migration in pending_migrations(migrations, ledger.applied()):
            ledger.apply(migration)
            done.append(migration.version)
    return done
