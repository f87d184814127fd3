"""What contextkit_sqlite.database relies on inside aiosqlite, which has no public API for it.

aiosqlite offers no public "run this function on the connection's thread", so :class:`SqliteDatabase` uses four
private members of ``aiosqlite.Connection`` (see the module docstring of contextkit_sqlite.database):

* ``_execute(fn, *args)``: runs ``fn(*args)`` on the connection's thread and returns its result (one hop per
  transaction, where the public ``execute`` is one hop per statement); raises ``ValueError`` once closed;
* ``_conn``: the ``sqlite3.Connection`` that thread uses;
* ``_thread``: the ``threading.Thread`` (joined after a failed connect, so it never reports to a closed loop);
* ``_running``: False once the connection is closed (tells "closed" from a ValueError of the caller's function).

Each test below names the member it checks, so an aiosqlite release that changes one fails here, by name, rather
than as a store error. The plugin's pyproject caps aiosqlite below its next minor release for the same reason.
"""

from __future__ import annotations

import sqlite3
import threading

import aiosqlite
import pytest


def _broken(member: str, what: str) -> str:
    return (
        f"aiosqlite {aiosqlite.__version__}: Connection.{member} {what}; contextkit_sqlite.database relies on it "
        "(see tests/test_aiosqlite_contract.py): adapt SqliteDatabase before allowing this release"
    )


async def test_execute_runs_a_function_on_the_connection_thread_and_returns_its_result() -> None:
    async with aiosqlite.connect(":memory:") as db:
        execute = getattr(db, "_execute", None)
        assert callable(execute), _broken("_execute", "is gone")
        caller = threading.get_ident()

        def work(conn: sqlite3.Connection, a: int, b: int) -> tuple[int, int]:
            return conn.execute("SELECT ? + ?", (a, b)).fetchone()[0], threading.get_ident()

        raw = getattr(db, "_conn", None)
        assert isinstance(raw, sqlite3.Connection), _broken("_conn", "is no longer the sqlite3.Connection")
        total, thread = await execute(work, raw, 41, 1)
        assert total == 42, _broken("_execute", "no longer returns the function's result")
        assert thread != caller, _broken("_execute", "no longer runs the function on the connection's thread")
        worker = getattr(db, "_thread", None)
        assert isinstance(worker, threading.Thread), _broken("_thread", "is no longer the connection's Thread")
        assert worker.ident == thread, _broken("_thread", "is not the thread that runs the functions")
        assert getattr(db, "_running", None) is True, _broken("_running", "is not True while the connection is open")


async def test_execute_passes_the_function_errors_through_unchanged() -> None:
    async with aiosqlite.connect(":memory:") as db:

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute("SELECT * FROM no_such_table")

        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            await db._execute(fail, db._conn)


async def test_a_closed_connection_is_not_running_and_execute_raises_value_error() -> None:
    db = await aiosqlite.connect(":memory:")
    await db.close()
    assert getattr(db, "_running", None) is False, _broken("_running", "is not False once the connection is closed")
    # aiosqlite raises a bare ValueError("Connection closed")
    with pytest.raises(ValueError):
        await db._execute(lambda: None)
    worker = getattr(db, "_thread", None)
    assert isinstance(worker, threading.Thread), _broken("_thread", "is gone")
    worker.join(5.0)
    assert not worker.is_alive(), _broken("_thread", "keeps running after close")
