"""The Lua scripts as package data (contextkit_redis/lua): shipped in the wheel, composed with their libraries, read
once, and every composed script compiles on a real Redis."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import redis.asyncio as aioredis

from contextkit_redis import checkpoints, lua, outbox, scripts

PLUGIN = Path(__file__).resolve().parent.parent
LUA_DIR = PLUGIN / "contextkit_redis" / "lua"

# Every script the tier runs, by its path below contextkit_redis/lua.
GROUPS = ("store", "checkpoint", "outbox")


def _all_scripts() -> dict[str, str]:
    return {f"{group}/{name}": source for group in GROUPS for name, source in lua.group(group).items()}


def test_the_wheel_carries_every_lua_file_and_the_scripts_load_from_it(tmp_path: Path) -> None:
    """``pip wheel`` of the plugin (as scripts/install builds it) holds every ``.lua`` file of the checkout, and
    the package imported from that wheel (a zip: importlib.resources, not the file system) composes the same
    scripts as the checkout."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
         "--wheel-dir", str(tmp_path), str(PLUGIN)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("contextkit_redis-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.endswith(".lua")}
    expected = {f"contextkit_redis/lua/{path.relative_to(LUA_DIR).as_posix()}" for path in LUA_DIR.rglob("*.lua")}
    assert shipped == expected
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(wheel)!r})\n"
        "from contextkit_redis import lua\n"
        "print(json.dumps({'file': lua.__file__, 'scripts': {f'{g}/{n}': s for g in sys.argv[1:] "
        "for n, s in lua.group(g).items()}}))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, *GROUPS], capture_output=True, text=True, timeout=120, check=False
    )
    assert loaded.returncode == 0, loaded.stderr
    answer = json.loads(loaded.stdout)
    assert answer["file"].startswith(str(wheel))  # imported from the wheel, not the checkout
    assert answer["scripts"] == _all_scripts()


def test_scripts_are_composed_from_their_libraries_and_read_once() -> None:
    """A ``--! uses:`` line is replaced by the libraries it names, in order; no source keeps the directive; the
    modules hold the very strings the loader cached (each file is read once)."""
    append = (LUA_DIR / "store" / "append.lua").read_text(encoding="utf-8")
    assert append.startswith(f"{lua.USES} side owner\n")
    side = (LUA_DIR / "lib" / "side.lua").read_text(encoding="utf-8")
    owner = (LUA_DIR / "lib" / "owner.lua").read_text(encoding="utf-8")
    assert side + owner + append.partition("\n")[2] == scripts.ALL_SCRIPTS["append"]
    for name, source in _all_scripts().items():
        assert lua.USES not in source, name
    assert lua.script("store/append") is scripts.ALL_SCRIPTS["append"]
    assert lua.script("store/epoch") is scripts.EPOCH
    assert lua.script("checkpoint/put") is checkpoints.LG_SCRIPTS["put"]
    assert lua.script("outbox/peek") is outbox._PEEK
    # the Python names of the error replies are the ones the scripts send
    assert f"local RANGE_REPLY = '{scripts.RANGE_REPLY}'" in scripts.ALL_SCRIPTS["update_session"]
    assert f"'{scripts.UNKNOWN_REPLY}'" in scripts.ALL_SCRIPTS["put_session"]


def test_every_library_a_script_uses_exists_and_every_library_is_used() -> None:
    libraries = {path.stem for path in (LUA_DIR / "lib").glob("*.lua")}
    used: set[str] = set()
    for path in LUA_DIR.rglob("*.lua"):
        first = path.read_text(encoding="utf-8").partition("\n")[0]
        if first.startswith(lua.USES):
            names = first[len(lua.USES) :].split()
            assert names and set(names) <= libraries, (path, names)
            used.update(names)
    assert used == libraries


async def test_every_composed_script_compiles_on_redis(redis_url: str) -> None:
    """SCRIPT LOAD compiles each script as the tier sends it: a composition that breaks a script's syntax fails
    here, not at the first write that runs it."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for name, source in _all_scripts().items():
            sha = await client.script_load(source)
            assert sha == hashlib.sha1(source.encode("utf-8")).hexdigest(), name
    finally:
        await client.aclose()
