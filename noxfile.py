"""Development sessions for contextkit: tests, conformance, lint, types, the install and extras smoke tests, the
Redis tests against the newest and the lowest supported redis-py, demo and bench.

Plugins are discovered from ``plugins/*`` (a directory with a pyproject.toml; names starting with ``_``, such as
the ``_template`` scaffold, are skipped), so a new plugin gets its sessions without editing this file. A plugin
directory without a pyproject is built in: its package ships in the contextkit distribution (the memory tier).
Every session installs third-party packages from the one list in ``requirements/test.txt``.

    nox -l                          # list the sessions
    nox -r -s tests                 # everything; -r reuses the session's virtualenv on later runs
    nox -r -s "package(redis)"      # one package's tests ("package(core)" for tests/)
    nox -s install                  # README's install: scripts/install in a fresh venv outside the checkout
    nox -s extras_smoke             # built wheels in a clean venv: contextkit[redis,clickhouse] + contextkit alone
    nox -s extras_smoke -- sqlite   # the same with other extras
    nox -s "redis_py(lowest)"       # the Redis tests on the lowest redis-py the plugin declares ("newest" too)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
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


def discover_builtin_plugins() -> list[str]:
    """Plugin directories without a pyproject: their package ships inside the contextkit distribution."""
    plugins_dir = ROOT / "plugins"
    return sorted(
        path.name
        for path in plugins_dir.iterdir()
        if path.is_dir() and not path.name.startswith(("_", ".")) and not (path / "pyproject.toml").exists()
    )


PLUGINS = discover_plugins()
BUILTIN_PLUGINS = discover_builtin_plugins()
PACKAGES = ["core", *(name.removeprefix("contextkit-") for name in sorted(PLUGINS + BUILTIN_PLUGINS))]


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
    """Install contextkit (with the langgraph extra and its built-in plugins) and ``plugins`` (default: all)
    editable, plus the test list."""
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
    """One package's tests with only contextkit (and its built-in memory tier) and that package installed."""
    if package == "core":
        install_repo(session, [])
        target = "tests"
    else:
        install_repo(session, [] if f"contextkit-{package}" in BUILTIN_PLUGINS else [f"contextkit-{package}"])
        target = f"plugins/contextkit-{package}/tests"
    session.run("python", "-m", "pytest", target, *session.posargs, env=service_env())


@nox.session
def conformance(session: nox.Session) -> None:
    """The conformance suites only: every test marked ``conformance`` under tests/ and the plugins, which is every
    run of a suite of ``contextkit.testing`` (hot, cold, checkpoint, engine, tiering), whatever its file's name:
    the suite classes set the marker, their subclasses inherit it."""
    install_repo(session)
    session.run("python", "-m", "pytest", "-m", "conformance", *session.posargs, env=service_env())


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check over the repository (the root pyproject holds the configuration)."""
    session.install(*pinned("ruff"))
    session.run("ruff", "check", *(session.posargs or ["."]))


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict (root pyproject) on contextkit/ and every plugin package (the pyproject's ``files``)."""
    install_repo(session)
    session.run("mypy", *session.posargs)


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
    unknown = [extra for extra in extras if f"contextkit-{extra}" not in PLUGINS + BUILTIN_PLUGINS]
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
        dist_name = "contextkit" if f"contextkit-{extra}" in BUILTIN_PLUGINS else f"contextkit-{extra}"
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


# -- install from the checkout --------------------------------------------------------------------------------------

INSTALL_EXTRAS = "redis,postgres,langgraph"
TEMPLATE_README = ROOT / "plugins" / "_template" / "README.md"


def _venv_env(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell in which ``venv`` is activated (as ``. venv/bin/activate`` leaves it)."""
    env = _clean_env()
    env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def _bash_blocks(markdown: Path) -> list[str]:
    """The ```bash blocks of a markdown file, in order."""
    return re.findall(r"^```bash\n(.*?)^```", markdown.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def _template_steps(checkout: Path) -> str:
    """Steps 1 and 2 of the plugin template's README (copy and rename; install and check the wiring), as a bash
    script with ``CONTEXTKIT`` pointing at ``checkout``."""
    blocks = _bash_blocks(TEMPLATE_README)
    if len(blocks) < 2 or not re.search(r"^CONTEXTKIT=.*$", blocks[0], flags=re.MULTILINE):
        raise RuntimeError(f"{TEMPLATE_README}: expected its first bash block to set CONTEXTKIT=<checkout>")
    first = re.sub(r"^CONTEXTKIT=.*$", f"CONTEXTKIT={shlex.quote(str(checkout))}", blocks[0], flags=re.MULTILINE)
    return "set -eo pipefail\n" + first + blocks[1]


@nox.session(venv_backend="none")
def install(session: nox.Session) -> None:
    """The README's install, as a new user runs it: a fresh ``python -m venv`` (its stock pip) outside the checkout.

    1. With the venv active, ``<checkout>/scripts/install "redis,postgres,langgraph"`` (or the extras given after
       ``--``): ``contextkit plugins`` lists memory (built in) and the plugin of every extra that names one.
    2. The README's quickstart file (``examples/quickstart.py``, copied out of the checkout) runs with
       ``python -W error`` on Redis + PostgreSQL (``CONTEXTKIT_TEST_REDIS_URL`` / ``CONTEXTKIT_TEST_POSTGRES_URL``,
       else the machine's servers), under a namespace of its own that is removed afterwards, and prints its result
       (paused, resumed, the archive named). Skipped when the extras do not include redis, postgres and langgraph.
    3. Steps 1 and 2 of ``plugins/_template/README.md`` as written (copy and rename the scaffold, a venv of its
       own, ``scripts/install testing``, ``pip install -e ".[testing]"``, ``pytest tests/test_plugin.py``):
       ``contextkit plugins`` in that venv lists the copy's backend ``acme``.

    Everything, wheels included (``CONTEXTKIT_DIST``), goes to a temporary directory removed at the end.
    """
    extras = ",".join(session.posargs) or INSTALL_EXTRAS
    with tempfile.TemporaryDirectory(prefix="contextkit-install-") as raw_tmp:
        tmp = Path(raw_tmp)
        dist = tmp / "dist"
        venv = tmp / "venv"
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        with session.chdir(tmp):
            session.run(str(ROOT / "scripts" / "install"), extras, external=True, include_outer_env=False,
                        env=_venv_env(venv, CONTEXTKIT_DIST=str(dist)))
        rows = {str(row["name"]): row for row in _plugins_json(session, venv / "bin")}
        for name in ["memory", *extras.split(",")]:
            directory = f"contextkit-{name.strip()}"
            if directory not in PLUGINS + BUILTIN_PLUGINS:
                continue  # an extra that is no plugin (langgraph, testing, all)
            expected = "contextkit" if directory in BUILTIN_PLUGINS else directory
            row = rows.get(name.strip())
            if row is None or row["distribution"] != expected:
                session.error(f"`contextkit plugins` should list {name.strip()} from {expected}: {sorted(rows)}")

        if {"redis", "postgres", "langgraph"} <= {name.strip() for name in extras.split(",")}:
            _quickstart(session, venv, tmp)

        with session.chdir(tmp):
            session.run("bash", "-c", _template_steps(ROOT), external=True, include_outer_env=False,
                        env={**_clean_env(), "CONTEXTKIT_DIST": str(dist)})
        rows = {str(row["name"]): row for row in _plugins_json(session, tmp / "contextkit-acme" / ".venv" / "bin")}
        if rows.get("acme", {}).get("distribution") != "contextkit-acme":
            session.error(f"the template copy's venv does not list the acme plugin: {sorted(rows)}")


QUICKSTART_CLEANUP = """
import asyncio, sys
import asyncpg
from contextkit import ContextKit
from contextkit_postgres.options import schema_from_namespace

async def main(redis_url, postgres_url, namespace):
    async with ContextKit.from_url(redis_url, namespace=namespace, env={}) as kit:
        await kit.hot.drop_namespace()
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema_from_namespace(namespace)}" CASCADE')
    finally:
        await conn.close()

asyncio.run(main(*sys.argv[1:4]))
"""


def _answers(url: str, default_port: int) -> bool:
    """Whether something accepts connections at the host and port of ``url`` (passwords stay out of messages: the
    caller shows URLs of the test servers only)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2.0):
            return True
    except OSError:
        return False


def _quickstart(session: nox.Session, venv: Path, tmp: Path) -> None:
    """Run the README's quickstart file in ``venv`` on Redis + PostgreSQL and check what it prints."""
    redis_url = os.environ.get("CONTEXTKIT_TEST_REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
    postgres_url = os.environ.get("CONTEXTKIT_TEST_POSTGRES_URL", "").strip() or "postgresql://postgres@127.0.0.1:5432/test"
    down = [url for url, port in ((redis_url, 6379), (postgres_url, 5432)) if not _answers(url, port)]
    if down:
        message = f"the quickstart needs Redis and PostgreSQL; nothing answers at {', '.join(down)}"
        if os.environ.get("CONTEXTKIT_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes", "on"}:
            session.error(message)
        session.warn(message + ": quickstart not run")
        return
    namespace = f"quickstart{os.getpid()}"
    script = tmp / "quickstart.py"
    shutil.copyfile(ROOT / "examples" / "quickstart.py", script)
    python = str(venv / "bin" / "python")
    env = _venv_env(venv, CONTEXTKIT_NAMESPACE=namespace)
    try:
        session.log(f"$ python -W error quickstart.py {redis_url} {postgres_url}")
        result = subprocess.run([python, "-W", "error", str(script), redis_url, postgres_url], capture_output=True,
                                text=True, cwd=tmp, env=env, timeout=300, check=False)
        for line in result.stdout.splitlines():
            session.log(f"  {line}")
        if result.returncode != 0:
            session.error(f"the quickstart failed ({result.returncode}):\n{result.stderr[-3000:]}")
        lines = result.stdout.splitlines()
        if len(lines) != 3 or lines[0] != "paused: approve the refund?" or not lines[1].startswith("resumed: ") \
                or not lines[2].endswith("in redis (archived to postgresql)"):
            session.error(f"the quickstart printed something else:\n{result.stdout}")
    finally:
        subprocess.run([python, "-c", QUICKSTART_CLEANUP, redis_url, postgres_url, namespace], env=env, timeout=120,
                       check=False)


# -- redis-py versions -----------------------------------------------------------------------------------------------


def redis_py_requirement() -> Requirement:
    """The ``redis`` requirement of the Redis plugin: the range of redis-py it declares it supports."""
    text = (ROOT / "plugins" / "contextkit-redis" / "pyproject.toml").read_text(encoding="utf-8")
    found = re.findall(r'"(redis(?:\[[^\]]*\])?\s*[<>=!~][^"]*)"', text)
    if len(found) != 1:
        raise RuntimeError(f"plugins/contextkit-redis/pyproject.toml: expected one redis requirement, found {found}")
    return Requirement(found[0])


def lowest_supported(requirement: Requirement) -> str:
    """The version in the ``>=`` bound of ``requirement``."""
    lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    if len(lows) != 1:
        raise RuntimeError(f"{requirement}: declare the lowest supported version with one >= bound")
    return lows[0]


@nox.session
@nox.parametrize("redis_py", ["newest", "lowest"], ids=["newest", "lowest"])
def redis_py(session: nox.Session, redis_py: str) -> None:
    """The Redis tests (``plugins/contextkit-redis/tests``, and the tests under ``tests/`` marked redis or cluster)
    with the newest redis-py the plugin's range allows, or the lowest it declares (CI's own run uses the version
    pinned in requirements/test.txt)."""
    install_repo(session)
    requirement = redis_py_requirement()
    name = requirement.name + (f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else "")
    if redis_py == "lowest":
        session.install(f"{name}=={lowest_supported(requirement)}")
    else:
        session.install("--upgrade", f"{name}{requirement.specifier}")
    session.run("python", "-c", "import redis; print('redis-py', redis.__version__)")
    session.run("python", "-m", "pytest", "plugins/contextkit-redis/tests", *session.posargs, env=service_env())
    session.run("python", "-m", "pytest", "tests", "-m", "redis or cluster", *session.posargs, env=service_env())


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
