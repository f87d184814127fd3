"""Development sessions for contextkit: tests, conformance, lint, types, the extras smoke test, demo and bench.

Plugins are discovered from ``plugins/*`` (a directory with a pyproject.toml; names starting with ``_``, such as
the ``_template`` scaffold, are skipped), so a new plugin gets its sessions without editing this file. Every
session installs third-party packages from the one list in ``requirements/test.txt``.

    nox -l                          # list the sessions
    nox -r -s tests                 # everything; -r reuses the session's virtualenv on later runs
    nox -r -s "package(redis)"      # one package's tests ("package(core)" for tests/)
    nox -s extras_smoke             # built wheels in a clean venv: contextkit[redis,clickhouse] + contextkit alone
    nox -s extras_smoke -- sqlite   # the same with other extras
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests"]

ROOT = Path(__file__).resolve().parent
REQUIREMENTS = ROOT / "requirements" / "test.txt"
SMOKE_EXTRAS = ("redis", "clickhouse")


def discover_plugins() -> list[str]:
    """Directory names of the plugins under plugins/ (``contextkit-<name>``), scaffolds excluded."""
    plugins_dir = ROOT / "plugins"
    return sorted(
        path.name
        for path in plugins_dir.iterdir()
        if path.is_dir() and not path.name.startswith(("_", ".")) and (path / "pyproject.toml").is_file()
    )


PLUGINS = discover_plugins()
PACKAGES = ["core", *(name.removeprefix("contextkit-") for name in PLUGINS)]


def pinned(*names: str) -> list[str]:
    """The lines of requirements/test.txt for ``names`` (so sessions that need a few tools use the same pins)."""
    wanted = {canonicalize_name(name) for name in names}
    lines = []
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and canonicalize_name(Requirement(line).name) in wanted:
            lines.append(line)
    missing = wanted - {canonicalize_name(Requirement(line).name) for line in lines}
    if missing:
        raise RuntimeError(f"requirements/test.txt does not list {', '.join(sorted(missing))}")
    return lines


def install_repo(session: nox.Session, plugins: list[str] | None = None) -> None:
    """Install contextkit (with the langgraph extra) and ``plugins`` (default: all) editable, plus the test list."""
    editable = ["-e", ".[langgraph]"]
    for plugin in PLUGINS if plugins is None else plugins:
        editable += ["-e", f"plugins/{plugin}"]
    session.install(*editable, "-r", str(REQUIREMENTS))


def service_env() -> dict[str, str]:
    """The variables that make service tests strict (CI) or point them at servers, passed through as they are."""
    return {
        key: value
        for key, value in os.environ.items()
        if key == "CONTEXTKIT_REQUIRE_SERVICES" or key.startswith("CONTEXTKIT_TEST_")
    }


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: tests/ and every plugin's tests, against every plugin installed editable."""
    install_repo(session)
    session.run("python", "-m", "pytest", *session.posargs, env=service_env())


@nox.session
@nox.parametrize("package", PACKAGES, ids=PACKAGES)
def package(session: nox.Session, package: str) -> None:
    """One package's tests with only contextkit, the memory plugin and that package installed."""
    if package == "core":
        install_repo(session, ["contextkit-memory"])
        target = "tests"
    else:
        install_repo(session, sorted({"contextkit-memory", f"contextkit-{package}"}))
        target = f"plugins/contextkit-{package}/tests"
    session.run("python", "-m", "pytest", target, *session.posargs, env=service_env())


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance suites only: every ``test_*conformance*.py`` of tests/ and the plugins."""
    candidates = [*ROOT.glob("tests/test_*conformance*.py")]
    for plugin in PLUGINS:
        candidates += (ROOT / "plugins" / plugin / "tests").glob("test_*conformance*.py")
    files = sorted(str(path.relative_to(ROOT)) for path in candidates)
    if not files:
        session.error("no test_*conformance*.py file found under tests/ or plugins/*/tests/")
    install_repo(session)
    session.run("python", "-m", "pytest", *files, *session.posargs, env=service_env())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check over the repository (the root pyproject holds the configuration)."""
    session.install(*pinned("ruff"))
    session.run("ruff", "check", *(session.posargs or ["."]))


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict (root pyproject) on contextkit/."""
    install_repo(session)
    session.run("mypy", *(session.posargs or ["contextkit"]))


# -- extras smoke test -----------------------------------------------------------------------------------------------


def _wheel_metadata(wheel: Path) -> tuple[str, str, list[Requirement]]:
    """(name, version, requirements) read from a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        message = Parser().parsestr(archive.read(name).decode("utf-8"))
    requirements = [Requirement(line) for line in message.get_all("Requires-Dist") or []]
    return canonicalize_name(message["Name"]), message["Version"], requirements


def third_party_requirements(wheels: dict[str, list[Requirement]], root: str, extras: list[str]) -> list[str]:
    """Requirements outside our wheels that installing ``root[extras]`` pulls in, markers evaluated.

    Our own packages are then installed with ``--no-index`` from the wheels only, so a release that forgot a file
    or a dependency fails here instead of being papered over by the working tree or by PyPI.
    """
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    pending = [(canonicalize_name(root), extra) for extra in ["", *extras]]
    while pending:
        dist, extra = pending.pop()
        if (dist, extra) in seen:
            continue
        seen.add((dist, extra))
        for req in wheels[dist]:
            if req.marker is not None and not req.marker.evaluate({"extra": extra}):
                continue
            if req.marker is None and extra:
                continue  # unconditional requirements were handled with extra=""
            name = canonicalize_name(req.name)
            if name in wheels:
                pending += [(name, sub) for sub in ["", *sorted(req.extras)]]
            else:
                line = req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "") + str(req.specifier)
                found.add(line)
    return sorted(found)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CONTEXTKIT_", "VIRTUAL_ENV", "PYTHONPATH"))}


def _smoke_install(session: nox.Session, venv: Path, dist: Path, wheels: dict[str, list[Requirement]],
                   extras: list[str]) -> Path:
    """A fresh venv with contextkit[extras] from the wheels in ``dist`` only; returns its bin directory."""
    shutil.rmtree(venv, ignore_errors=True)
    session.run(sys.executable, "-m", "venv", str(venv), external=True)
    bin_dir = venv / "bin"
    third_party = third_party_requirements(wheels, "contextkit", extras)
    session.log(f"third-party requirements of contextkit[{','.join(extras)}]: {' '.join(third_party)}")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--progress-bar", "off"]
    session.run(*pip, *third_party, external=True, env=_clean_env())
    target = f"contextkit[{','.join(extras)}]" if extras else "contextkit"
    session.run(*pip, "--no-index", "--find-links", str(dist), target, external=True, env=_clean_env())
    return bin_dir


def _plugins_json(session: nox.Session, bin_dir: Path) -> list[dict[str, object]]:
    result = subprocess.run(
        [str(bin_dir / "contextkit"), "plugins"], capture_output=True, text=True, env=_clean_env(), check=False
    )
    if result.returncode != 0:
        session.error(f"`contextkit plugins` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    rows: list[dict[str, object]] = json.loads(result.stdout)
    session.log("contextkit plugins: " + ", ".join(f"{row['name']} ({row['distribution']})" for row in rows))
    return rows


MEMORY_SMOKE = """
import asyncio
from contextkit import ContextKit

async def main():
    async with ContextKit.from_config({"hot": "memory", "cold": "none"}) as kit:
        await kit.create_session("smoke", user_id="u1")
        for text in ("one", "two", "three"):
            await kit.add_conversation_message("smoke", "user", text)
        history = await kit.get_conversation_history("smoke", limit=2)
        assert len(history) == 2, history
    print("memory tier: ok")

asyncio.run(main())
"""


@nox.session
def extras_smoke(session: nox.Session) -> None:
    """Build wheels of contextkit and every plugin; in clean venvs, install from those wheels only.

    1. ``contextkit[redis,clickhouse]`` (or the extras given after ``--``): ``contextkit plugins`` lists each.
    2. ``contextkit`` alone: ``contextkit plugins`` lists memory, and a session round-trips on the memory tier.
    """
    extras = session.posargs or list(SMOKE_EXTRAS)
    unknown = [extra for extra in extras if f"contextkit-{extra}" not in PLUGINS]
    if unknown:
        session.error(f"no plugin directory for extra(s) {', '.join(unknown)} (plugins: {', '.join(PLUGINS)})")

    session.install(*pinned("build"))
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for project in [ROOT, *(ROOT / "plugins" / plugin for plugin in PLUGINS)]:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(project), silent=True)
    wheels: dict[str, list[Requirement]] = {}
    versions: dict[str, str] = {}
    for wheel in sorted(dist.glob("*.whl")):
        name, version, requirements = _wheel_metadata(wheel)
        wheels[name], versions[name] = requirements, version
    session.log(f"built: {', '.join(sorted(f'{n}=={v}' for n, v in versions.items()))}")

    bin_dir = _smoke_install(session, tmp / "venv-extras", dist, wheels, extras)
    rows = {str(row["name"]): row for row in _plugins_json(session, bin_dir)}
    for extra in [*extras, "memory"]:
        row = rows.get(extra)
        if row is None:
            session.error(f"`contextkit plugins` does not list {extra!r} after installing contextkit[{extra}]")
        dist_name = f"contextkit-{extra}"
        if row["distribution"] != dist_name or row["version"] != versions[dist_name]:
            session.error(f"{extra}: expected {dist_name} {versions[dist_name]}, got {row}")
        tiers = row.get("tiers")
        registered = [name for names in tiers.values() for name in names] if isinstance(tiers, dict) else []
        if extra not in registered:
            session.error(f"{extra}: the plugin registers no backend named {extra!r}: {tiers}")

    bin_dir = _smoke_install(session, tmp / "venv-core", dist, wheels, [])
    rows = {str(row["name"]): row for row in _plugins_json(session, bin_dir)}
    if "memory" not in rows:
        session.error("`contextkit plugins` does not list memory after `pip install contextkit`")
    unexpected = sorted(set(rows) - {"memory", "contextkit.compaction"})
    if unexpected:
        session.error(f"`pip install contextkit` alone loaded more plugins than memory: {unexpected}")
    session.run(str(bin_dir / "python"), "-c", MEMORY_SMOKE, external=True, env=_clean_env())


# -- demo and benchmarks ---------------------------------------------------------------------------------------------


@nox.session
def demo(session: nox.Session) -> None:
    """``contextkit demo`` on the embedded default, in a venv with contextkit and its plugins."""
    session.install("-e", ".[langgraph]", *(arg for plugin in PLUGINS for arg in ("-e", f"plugins/{plugin}")))
    session.run("contextkit", "demo", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """``python -m benchmarks`` (the performance figures and their ratios against the peers)."""
    if not (ROOT / "benchmarks").is_dir():
        session.skip("no benchmarks/ directory")
    install_repo(session)
    session.run("python", "-m", "benchmarks", *session.posargs, env=service_env())
