"""The Lua scripts of the Redis tier: ``*.lua`` package data beside this module, read once per process.

* ``store/``: the hot store's scripts (:data:`contextkit_redis.scripts.ALL_SCRIPTS`);
* ``checkpoint/``: the LangGraph checkpointer's (:data:`contextkit_redis.checkpoints.LG_SCRIPTS`);
* ``outbox/``: the outbox's drain lease (:mod:`contextkit_redis.outbox`);
* ``lib/``: local functions several scripts share. A script names the ones it uses on its first line,
  ``--! uses: side owner``, and :func:`script` puts them before its text, in that order. Redis runs one script
  per EVAL with no ``require``, so the libraries are composed here, in one place, instead of being copied.

The files are read with :mod:`importlib.resources`, so they are found in a wheel, an editable install or a zip
alike; each file is read once (:func:`functools.cache`), when the module that uses it is imported.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

__all__ = ["USES", "group", "script"]

#: The first-line directive of a script that uses libraries of ``lib/``.
USES = "--! uses:"


@cache
def _read(path: str) -> str:
    return resources.files(__name__).joinpath(*path.split("/")).read_text(encoding="utf-8")


@cache
def script(name: str) -> str:
    """The source of script ``name`` (``"store/append"``: a path below this package without ``.lua``), with the
    libraries its ``--! uses:`` line names put before it."""
    text = _read(f"{name}.lua")
    first, _, rest = text.partition("\n")
    if not first.startswith(USES):
        return text
    return "".join(_read(f"lib/{lib}.lua") for lib in first[len(USES) :].split()) + rest


def group(folder: str) -> dict[str, str]:
    """Every script of ``folder`` (``"store"``), by file name without ``.lua``, in name order."""
    names = sorted(
        entry.name[: -len(".lua")]
        for entry in resources.files(__name__).joinpath(folder).iterdir()
        if entry.name.endswith(".lua")
    )
    return {name: script(f"{folder}/{name}") for name in names}
