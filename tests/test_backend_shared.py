"""What the backends share (:mod:`contextkit.backend`) and the typed optional abilities (issue 16).

The migration runner is checked against a real SQLite database (the PostgreSQL, ClickHouse and SQLite stores run
it in their own suites); the JSON helpers' errors are checked for their two meanings; ``capability_mismatches``
is checked on small stand-ins (unit tests: the conformance suites run it on every real store).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contextkit.backend.documents import dump_document, load_document, load_object
from contextkit.backend.migrations import Migration, apply_migrations_sync, load_migrations, pending_migrations
from contextkit.backend.tables import KEY_COLUMNS
from contextkit.errors import ConfigError, CorruptData, InvalidInput, SerializationError
from contextkit.records import ARCHIVE_TABLES
from contextkit.stores import Capability, capability_mismatches


class _SqliteLedger:
    """A ledger over a real SQLite connection: DDL and records in one transaction under the write lock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.execute("CREATE TABLE IF NOT EXISTS done (version INTEGER PRIMARY KEY, checksum TEXT NOT NULL)")

    def applied(self) -> dict[int, str]:
        return {int(v): str(c) for v, c in self.conn.execute("SELECT version, checksum FROM done")}

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def apply(self, migration: Migration) -> None:
        for statement in migration.text.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.execute("INSERT INTO done VALUES (?, ?)", (migration.version, migration.checksum))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrations_apply_in_order_once_and_report_what_they_applied(conn: sqlite3.Connection) -> None:
    steps = [Migration(2, "b", "CREATE TABLE b (x REFERENCES a(x))"), Migration(1, "a", "CREATE TABLE a (x PRIMARY KEY)")]
    ledger = _SqliteLedger(conn)
    assert apply_migrations_sync(ledger, steps) == [1, 2]
    assert {"a", "b"} <= _tables(conn)
    assert apply_migrations_sync(ledger, steps) == []  # up to date: nothing run again
    three = [*steps, Migration(3, "c", "CREATE TABLE c (y)")]
    assert apply_migrations_sync(ledger, three) == [3]


def test_a_failing_migration_leaves_nothing_half_applied(conn: sqlite3.Connection) -> None:
    """Within one transaction (SQLite, PostgreSQL), a migration that fails leaves neither its DDL nor its record,
    nor those of the migrations applied before it in the same run: the next run starts over."""
    ledger = _SqliteLedger(conn)
    steps = [Migration(1, "a", "CREATE TABLE a (x)"), Migration(2, "bad", "CREATE TABLE b (x); NOT SQL")]
    with pytest.raises(sqlite3.OperationalError):
        apply_migrations_sync(ledger, steps)
    assert ledger.applied() == {}
    assert "a" not in _tables(conn) and "b" not in _tables(conn)
    fixed = [steps[0], Migration(2, "b", "CREATE TABLE b (x)")]
    assert apply_migrations_sync(ledger, fixed) == [1, 2]


def test_a_changed_migration_is_reported_not_run_again(conn: sqlite3.Connection) -> None:
    ledger = _SqliteLedger(conn)
    apply_migrations_sync(ledger, [Migration(1, "a", "CREATE TABLE a (x)")])
    heard: list[int] = []
    edited = [Migration(1, "a", "CREATE TABLE a (x, y)")]
    assert apply_migrations_sync(ledger, edited, on_changed=lambda m: heard.append(m.version)) == []
    assert heard == [1]
    assert [r[1] for r in conn.execute("PRAGMA table_info(a)")] == ["x"]


def test_pending_takes_versions_without_checksums() -> None:
    steps = [Migration(1, "a", ""), Migration(2, "b", "")]
    assert [m.version for m in pending_migrations(steps, {1})] == [2]
    assert pending_migrations(steps, {1: None, 2: "whatever"}) == []


def _package(root: Path, name: str, files: dict[str, str]) -> str:
    package = root / name
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for file, text in files.items():
        (package / "migrations" / file).write_text(text)
    return name


def test_load_migrations_reads_numbered_files_in_order_and_refuses_a_shared_version(tmp_path: Path) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        good = _package(tmp_path, "ck_mig_good", {"002_b.sql": "B", "001_a.sql": "A", "README.md": "x", "1_bad.sql": "x"})
        loaded = load_migrations(good, Migration)
        assert [(m.version, m.name, m.text) for m in loaded] == [(1, "a", "A"), (2, "b", "B")]
        assert loaded[0].file_name == "001_a.sql"
        twice = _package(tmp_path, "ck_mig_twice", {"001_a.sql": "A", "001_b.sql": "B"})
        with pytest.raises(ConfigError, match="share a version"):
            load_migrations(twice, Migration)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_value_json_cannot_hold_is_refused_input_and_bad_stored_text_is_corrupt_data() -> None:
    with pytest.raises(SerializationError):
        dump_document({"x": float("nan")}, "metadata")
    with pytest.raises(SerializationError):
        dump_document({"x": b"raw"})
    for text in ("{", b"\xff", '{"n":' + "1" * 5000 + "}"):
        with pytest.raises(CorruptData) as raised:
            load_document(text, "session")
        # Stored data gone bad is not the caller's input: nothing it passed was wrong.
        assert not isinstance(raised.value, InvalidInput) and isinstance(raised.value, ValueError)
    with pytest.raises(CorruptData, match="not a JSON object"):
        load_object("[1, 2]", "task context")
    assert load_object('{"a": [1, "é"]}', "task context") == {"a": [1, "é"]}
    assert dump_document({"a": "é"}) == '{"a":"é"}'


def test_the_table_names_are_defined_once() -> None:
    assert tuple(KEY_COLUMNS) == ARCHIVE_TABLES
    assert len(set(ARCHIVE_TABLES)) == 6


class _Declares:
    name = "stand-in"

    def __init__(self, *capabilities: Capability) -> None:
        self.capabilities = frozenset(c.value for c in capabilities)


class _WithOutbox(_Declares):
    def outbox(self, max_pending: int = 1, **options: Any) -> Any:
        return None


def test_capability_mismatches_names_a_declaration_without_its_protocol() -> None:
    """Unit test on stand-ins (the hot and cold suites run the same check on every real store)."""
    assert capability_mismatches(_Declares(Capability.TTL, Capability.DURABLE)) == []
    assert capability_mismatches(_WithOutbox(Capability.OUTBOX, Capability.ATOMIC_OUTBOX)) == []
    problems = capability_mismatches(_Declares(Capability.CHECKPOINTS, Capability.ATOMIC_OUTBOX))
    assert any("'checkpoints'" in p and "CheckpointStore" in p for p in problems)
    assert any("'atomic_outbox'" in p and "OutboxProvider" in p for p in problems)
    assert "declares 'atomic_outbox' without 'outbox'" in problems


@pytest.mark.parametrize(
    ("namespace", "schema", "prefix"),
    [
        ("", "ck_", ""),
        ("contextkit", "contextkit", "contextkit_"),
        ("A", "a_6dcd4ce2", "a_6dcd4ce2_"),
        ("my-app", "my_app_431cf07b", "my_app_431cf07b_"),
        ("1abc", "ck_1abc", "1abc_"),
        ("pg_x", "ck_pg_x", "pg_x_"),
        ("é", "__bf15be71", "__bf15be71_"),
        ("x" * 70, "x" * 54 + "_bbaad84b", "x" * 40 + "_bbaad84b_"),
    ],
)
def test_the_legacy_names_stay_what_earlier_versions_wrote(namespace: str, schema: str, prefix: str) -> None:
    """The PostgreSQL schema and ClickHouse prefix earlier versions derived (one sanitizer now,
    contextkit.naming.legacy_name): archives live under them, so they never change."""
    from contextkit_clickhouse.schema import legacy_table_prefix_for
    from contextkit_postgres.options import legacy_schema_from_namespace

    assert legacy_schema_from_namespace(namespace) == schema
    assert legacy_table_prefix_for(namespace) == prefix
