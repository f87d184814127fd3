"""Every Python block of README.md and docs/*.md runs, so the docs cannot rot.

Each ```python block runs in its own ``python -W error`` process (top-level ``await`` allowed, as in a snippet),
in a temporary directory, with ``examples/`` on ``PYTHONPATH`` and ``CONTEXTKIT_NAMESPACE`` set to a namespace of
this test alone, whose Redis keys and PostgreSQL schema are removed afterwards. An HTML comment on the line before
the fence says more about a block (invisible on a rendered page):

* ``<!-- contextkit-docs: needs=redis,postgres -->``: the block talks to those servers. It is written with the
  documented URLs (``redis://localhost:6379/0``, ``postgresql://postgres@localhost:5432/postgres``), which are
  replaced by the test servers' URLs; a missing server skips it (fails it in CI).
* ``<!-- contextkit-docs: file=examples/quickstart.py -->``: the block is that file, verbatim (checked); the file
  itself runs, on SQLite and (needs redis, postgres) on Redis + PostgreSQL.
* ``<!-- contextkit-docs: skip: REASON -->``: intentionally not runnable (a sketch of your own plugin); it is
  only compiled. Few are allowed (:data:`MAX_SKIPPED`).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from contextkit.testing.services import env_url, missing_service

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: The URLs the docs are written with, and the test servers they stand for.
DOC_REDIS = "redis://localhost:6379/0"
DOC_POSTGRES = "postgresql://postgres@localhost:5432/postgres"
#: Most blocks that may be marked as not runnable.
MAX_SKIPPED = 4
#: Seconds one block may take (a hang guard; the blocks take about a second each).
BLOCK_TIMEOUT = 180

_BLOCK = re.compile(r"^(?:<!-- contextkit-docs: (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)^```", re.M | re.S)
_RUNNER = """
import ast, asyncio, sys, types
path = sys.argv[1]
with open(path, encoding="utf-8") as handle:
    source = handle.read()
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__", "__file__": path}
module = types.ModuleType("__main__")
module.__dict__.update(namespace)
sys.modules["__main__"] = module
if code.co_flags & 0x80:  # CO_COROUTINE: the snippet awaits at top level
    asyncio.run(types.FunctionType(code, module.__dict__)())
else:
    exec(code, module.__dict__)
"""


@dataclass(frozen=True)
class Block:
    """A python block of a document and what its marker says."""

    doc: Path
    line: int
    code: str
    needs: tuple[str, ...] = ()
    file: str | None = None
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            marker = (match.group("marker") or "").strip()
            needs: tuple[str, ...] = ()
            file = skip = None
            if marker.startswith("needs="):
                needs = tuple(name.strip() for name in marker[len("needs="):].split(",") if name.strip())
            elif marker.startswith("file="):
                file = marker[len("file="):].strip()
            elif marker.startswith("skip:"):
                skip = marker[len("skip:"):].strip()
            elif marker:
                raise AssertionError(f"{doc.name}:{line}: unknown contextkit-docs marker {marker!r}")
            found.append(Block(doc, line, match.group("code"), needs, file, skip))
    return found


BLOCKS = _blocks()


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


def _server_urls(needs: tuple[str, ...]) -> dict[str, str]:
    urls = {}
    if "redis" in needs:
        urls["redis"] = env_url("redis") or "redis://127.0.0.1:6379/0"
        if not _reachable(urls["redis"], 6379):
            missing_service("redis", f"nothing answers at {urlsplit(urls['redis']).netloc}")
    if "postgres" in needs:
        urls["postgres"] = env_url("postgres") or "postgresql://postgres@127.0.0.1:5432/test"
        if not _reachable(urls["postgres"], 5432):
            missing_service("postgres", f"nothing answers at {urlsplit(urls['postgres']).netloc}")
    unknown = set(needs) - {"redis", "postgres"}
    assert not unknown, f"unknown needs {unknown}: the docs test provides redis and postgres"
    return urls


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of this test alone; what the block wrote under it on the machine's Redis and PostgreSQL is
    removed afterwards (blocks without ``needs`` may still reach the default Redis, as ``ContextEngine`` does)."""
    name = f"ckdocs{uuid.uuid4().hex[:10]}"
    yield name
    script = f"""
import asyncio
async def main():
    try:
        from contextkit import ContextKit
        async with ContextKit.from_url({env_url("redis") or "redis://127.0.0.1:6379/0"!r}, namespace={name!r}, env={{}}) as kit:
            await kit.hot.drop_namespace()
    except Exception:
        pass
    try:
        import asyncpg
        from contextkit_postgres.options import schema_from_namespace
        conn = await asyncpg.connect({env_url("postgres") or "postgresql://postgres@127.0.0.1:5432/test"!r}, timeout=5)
        await conn.execute('DROP SCHEMA IF EXISTS "' + schema_from_namespace({name!r}) + '" CASCADE')
        await conn.close()
    except Exception:
        pass
asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120, check=False)


def _run(args: list[str], cwd: Path, namespace: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONTEXTKIT_", "CONTEXT_", "REDIS_", "POSTGRES_", "CLICKHOUSE_"))
    }
    env.update(CONTEXTKIT_NAMESPACE=namespace, PYTHONPATH=str(ROOT / "examples"))
    return subprocess.run(
        [sys.executable, "-W", "error", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
    )


def test_the_docs_have_blocks_and_few_are_not_run() -> None:
    """The collection works (the README has its quickstart) and the blocks marked not runnable are few, each with
    its reason."""
    assert any(block.file == "examples/quickstart.py" and block.doc.name == "README.md" for block in BLOCKS)
    skipped = [block for block in BLOCKS if block.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, [block.id for block in skipped]
    assert all(block.skip for block in skipped), "a skip marker needs its reason: <!-- contextkit-docs: skip: why -->"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path, namespace: str) -> None:
    """The block runs to the end without an exception or a warning (``-W error``)."""
    if block.skip is not None:
        compile(block.code, block.id, "exec", flags=0x2000)  # PyCF_ALLOW_TOP_LEVEL_AWAIT: a snippet may await
        return
    if block.file is not None:
        source = ROOT / block.file
        assert source.read_text(encoding="utf-8").rstrip() == block.code.rstrip(), (
            f"{block.id} is no longer {block.file} verbatim: copy the file into the block"
        )
        result = _run([str(source)], tmp_path, namespace)
        assert result.returncode == 0, result.stderr[-4000:]
        return
    code = block.code
    for name, url in _server_urls(block.needs).items():
        code = code.replace(DOC_REDIS if name == "redis" else DOC_POSTGRES, url)
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    runner = tmp_path / "run_block.py"
    runner.write_text(_RUNNER, encoding="utf-8")
    result = _run([str(runner), str(script)], tmp_path, namespace)
    assert result.returncode == 0, f"{block.id} failed:\n{result.stderr[-4000:]}"


def test_quickstart_runs_on_redis_and_postgres_and_prints_its_result(tmp_path: Path, namespace: str) -> None:
    """``python -W error examples/quickstart.py REDIS POSTGRES``: paused, resumed, and the archive named."""
    urls = _server_urls(("redis", "postgres"))
    result = _run([str(ROOT / "examples" / "quickstart.py"), urls["redis"], urls["postgres"]], tmp_path, namespace)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "paused: approve the refund?"
    assert lines[1] == "resumed: ['plan: refund order A-1001', 'approve: approved', 'act: refund sent']"
    assert lines[2].endswith("in redis (archived to postgresql)")


def test_quickstart_on_sqlite_prints_its_result(tmp_path: Path, namespace: str) -> None:
    """The README's first run: no server, the checkpoints in ./quickstart.db."""
    result = _run([str(ROOT / "examples" / "quickstart.py")], tmp_path, namespace)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.splitlines()[1].startswith("resumed: ['plan: refund order A-1001'")
    assert (tmp_path / "quickstart.db").is_file()
