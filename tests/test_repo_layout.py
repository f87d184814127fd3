"""The repository keeps one name in five places, and the root extras stay in sync with the plugins.

``plugins/contextkit-<name>/`` -> distribution ``contextkit-<name>`` -> package ``contextkit_<name>`` (typed) ->
entry point ``<name>`` in group ``contextkit`` -> extra ``contextkit[<name>]``, which accepts the plugin's minor
series. The memory tier is the one built-in plugin: ``plugins/contextkit-memory/`` holds its package, tests and
README like every plugin, but the package ships in the ``contextkit`` distribution (no pyproject of its own), so
no distribution of ours requires another in a cycle. The scaffold ``plugins/_template`` is checked against the
HotStore protocol, and kept out of discovery.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from contextkit.plugins import ENTRY_POINT_GROUP, PluginManager
from contextkit.stores import HotStore, StoreSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DIR = ROOT / "plugins"
TEMPLATE = PLUGINS_DIR / "_template"
PLUGIN_EXTRAS = ("memory", "redis", "postgres", "clickhouse", "sqlite")
BUILT_IN = ("contextkit-memory",)


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


ROOT_DATA = _toml(ROOT / "pyproject.toml")
ROOT_PROJECT = ROOT_DATA["project"]
ALL_PLUGIN_DIRS = sorted(p for p in PLUGINS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
# The plugins released as distributions of their own.
PLUGIN_DIRS = [p for p in ALL_PLUGIN_DIRS if p.name not in BUILT_IN]


def _plugin_name(directory: Path) -> str:
    return directory.name.removeprefix("contextkit-")


def _package(directory: Path) -> str:
    return f"contextkit_{_plugin_name(directory).replace('-', '_')}"


def _pins(requirements: list[str]) -> dict[str, SpecifierSet]:
    """``{distribution: specifier}`` of the contextkit distributions in a requirement list."""
    pins = {}
    for line in requirements:
        req = Requirement(line)
        if req.name.startswith("contextkit"):
            pins[req.name] = req.specifier
    return pins


def _minor_series(version: str) -> SpecifierSet:
    """``>=0.1,<0.2`` for 0.1.x: what a pin between our distributions accepts (not ``==``)."""
    release = Version(version).release
    return SpecifierSet(f">={release[0]}.{release[1]},<{release[0]}.{release[1] + 1}")


@pytest.mark.parametrize("directory", ALL_PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_directory_keeps_the_one_name_in_every_place(directory: Path) -> None:
    """plugins/contextkit-<name> has a typed package contextkit_<name>, a README and a tests/ directory; its
    distribution (contextkit-<name>, or contextkit for a built-in plugin) has the entry point <name> in group
    contextkit pointing into that package, and ships the package."""
    assert directory.name.startswith("contextkit-"), f"{directory.name}: plugin directories are contextkit-<name>"
    name = _plugin_name(directory)
    package = _package(directory)
    assert (directory / package / "__init__.py").is_file(), f"no package {package}/ in {directory.name}"
    assert (directory / package / "py.typed").is_file(), f"{package} has no py.typed marker"
    assert (directory / "README.md").is_file(), f"{directory.name} has no README.md"
    assert (directory / "tests").is_dir(), f"{directory.name} has no tests/ directory"

    if directory.name in BUILT_IN:
        assert not (directory / "pyproject.toml").exists(), f"{directory.name} ships in contextkit, not on its own"
        data, project = ROOT_DATA, ROOT_PROJECT
        shipped = f"plugins/{directory.name}/{package}"
        assert shipped in data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        assert shipped in data["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
        entry_points = project["entry-points"][ENTRY_POINT_GROUP]
    else:
        pyproject = directory / "pyproject.toml"
        assert pyproject.is_file(), f"{directory.name} has no pyproject.toml"
        data = _toml(pyproject)
        project = data["project"]
        assert project["name"] == directory.name
        assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [package]
        entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        assert list(entry_points) == [name], f"{directory.name}: expected entry point {name!r} in group contextkit"
    target = entry_points[name].split(":")[0]
    assert target == package or target.startswith(f"{package}."), f"entry point {name} -> {target}"


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_accepts_the_core_minor_series(directory: Path) -> None:
    """Every in-tree plugin requires contextkit>=M.m,<M.(m+1) of the root version: released together, yet a pin
    that pip can satisfy with any compatible build (== broke installs from a checkout)."""
    project = _toml(directory / "pyproject.toml")["project"]
    pins = _pins(project.get("dependencies", []))
    assert pins == {"contextkit": _minor_series(ROOT_PROJECT["version"])}, pins


def test_the_core_requires_none_of_our_distributions() -> None:
    """contextkit's own dependencies name no plugin: plugins require the core, never the other way round."""
    assert _pins(ROOT_PROJECT["dependencies"]) == {}


def test_root_extras_accept_each_plugin_minor_series() -> None:
    """contextkit[<name>] is exactly contextkit-<name> in the plugin's minor series (empty for the built-in
    memory tier), and every plugin an extra names exists."""
    versions = {d.name: _toml(d / "pyproject.toml")["project"]["version"] for d in PLUGIN_DIRS}
    extras = ROOT_PROJECT["optional-dependencies"]

    for name in PLUGIN_EXTRAS:
        dist = f"contextkit-{name}"
        if dist in BUILT_IN:
            assert extras.get(name) == [], f"extra {name!r} of the built-in plugin: {extras.get(name)}"
            continue
        assert dist in versions, f"no plugins/{dist}/"
        assert _pins(extras.get(name, [])) == {dist: _minor_series(versions[dist])}, f"extra {name!r}: {extras.get(name)}"
        assert len(extras[name]) == 1, f"extra {name!r}: {extras[name]}"
    for extra, requirements in extras.items():
        for dist, spec in _pins(requirements).items():
            assert dist in versions, f"extra {extra!r} names {dist}, but plugins/{dist}/ does not exist"
            assert spec == _minor_series(versions[dist]), f"extra {extra!r} pins {dist}{spec}, the plugin is {versions[dist]}"


def test_all_extra_includes_every_plugin() -> None:
    """contextkit[all] installs every plugin of the repository."""
    assert set(_pins(ROOT_PROJECT["optional-dependencies"]["all"])) == {d.name for d in PLUGIN_DIRS}


def test_every_plugin_has_an_extra_of_its_own() -> None:
    """A plugin added to plugins/ gets its contextkit[<name>] extra."""
    extras = ROOT_PROJECT["optional-dependencies"]
    for directory in ALL_PLUGIN_DIRS:
        assert _plugin_name(directory) in extras, f"no extra contextkit[{_plugin_name(directory)}]"


# -- the scaffold ----------------------------------------------------------------------------------------------------


def test_template_is_a_complete_scaffold() -> None:
    """plugins/_template has a pyproject with the entry point, a typed package with plugin.py, a README and tests."""
    data = _toml(TEMPLATE / "pyproject.toml")
    assert data["project"]["name"] == "contextkit-example"
    assert _pins(data["project"]["dependencies"]) == {"contextkit": _minor_series(ROOT_PROJECT["version"])}
    assert data["project"]["entry-points"][ENTRY_POINT_GROUP] == {"example": "contextkit_example.plugin"}
    for relative in ("README.md", "contextkit_example/py.typed", "contextkit_example/plugin.py"):
        assert (TEMPLATE / relative).is_file(), relative
    conformance = (TEMPLATE / "tests" / "test_conformance.py").read_text(encoding="utf-8")
    assert "(HotStoreSuite)" in conformance
    assert "async def make_store(self, settings" in conformance


def _load_template_module(monkeypatch: pytest.MonkeyPatch, module: str) -> Any:
    monkeypatch.syspath_prepend(str(TEMPLATE))
    for name in [m for m in sys.modules if m == "contextkit_example" or m.startswith("contextkit_example.")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(module)


def test_template_store_has_every_hot_store_method_with_the_protocol_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scaffold lists every HotStore method with the protocol's parameters, so a copy starts complete."""
    hot = _load_template_module(monkeypatch, "contextkit_example.hot")
    members = [
        name
        for name, value in vars(HotStore).items()
        if not name.startswith("_") and callable(value)
    ]
    assert members, "HotStore has no methods?"
    for name in members:
        implemented = getattr(hot.ExampleHotStore, name, None)
        assert implemented is not None, f"ExampleHotStore lacks {name}"
        expected = list(inspect.signature(getattr(HotStore, name)).parameters)
        assert list(inspect.signature(implemented).parameters) == expected, name
        assert inspect.iscoroutinefunction(implemented) == inspect.iscoroutinefunction(getattr(HotStore, name)), name


def test_template_plugin_registers_the_example_hot_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering the scaffold's plugin module makes the ``example`` backend available; its factory needs a url."""
    plugin = _load_template_module(monkeypatch, "contextkit_example.plugin")
    pm = PluginManager(load_entrypoints=False)
    pm.register(plugin, name="example")
    pm.check_pending()
    store = pm.backends.get("hot", "example").factory(
        StoreSettings(namespace="t"), {"url": "example://user:secret@localhost:1"}
    )
    assert store.name == "example"
    assert "secret" not in repr(store)
    assert "secret" not in str(store.describe())


def test_template_is_not_discovered_as_a_plugin_by_nox() -> None:
    """noxfile.py discovers plugins/* but skips directories starting with an underscore."""
    spec = importlib.util.spec_from_file_location("contextkit_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    pytest.importorskip("nox")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    assert noxfile.discover_plugins() == [d.name for d in PLUGIN_DIRS]


def test_template_tests_are_not_collected_by_the_repository_test_run() -> None:
    """pytest run from the repository root collects nothing under plugins/_template (its package is not installed)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "plugins/_template"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout + result.stderr


# The published suites of contextkit.testing: every subclass a test module defines is a run of one.
_SUITES = {"HotStoreSuite", "ColdStoreSuite", "CheckpointStoreSuite", "EngineSuite", "TieringSuite"}


def _suite_runs() -> set[str]:
    """``path::Class`` of every ``Test*`` class under tests/ and plugins/*/tests/ that derives (through classes of
    any module of the repository, by name) from a suite of contextkit.testing: read from the source, not from
    pytest, so a run the marker misses shows up."""
    bases: dict[str, set[str]] = {}
    tests: dict[str, str] = {}
    sources = [*ROOT.glob("contextkit/testing/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/contextkit-*/**/*.py")]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                named = [b for b in node.bases if isinstance(b, (ast.Name, ast.Attribute))]
                bases.setdefault(node.name, set()).update(b.id if isinstance(b, ast.Name) else b.attr for b in named)
                if node.name.startswith("Test") and "tests" in path.relative_to(ROOT).parts:
                    tests[node.name] = f"{path.relative_to(ROOT).as_posix()}::{node.name}"

    def derives(name: str, seen: frozenset[str] = frozenset()) -> bool:
        return name in _SUITES or any(derives(b, seen | {name}) for b in bases.get(name, ()) if b not in seen)

    return {node for name, node in tests.items() if derives(name)}


def test_nox_conformance_runs_every_run_of_every_suite() -> None:
    """``nox -s conformance`` selects ``-m conformance``, and that marker reaches every ``Test*`` class of the
    repository that runs a suite of contextkit.testing (the checkpoint suites of Redis and memory, the engine and
    tiering runs too, whatever their file is called), because the suite classes set it and pytest inherits class
    marks.

    Fix: give a new suite class ``pytestmark = [pytest.mark.conformance]``; keep the nox session on the marker."""
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert '"-m", "conformance"' in noxfile
    expected = _suite_runs()
    assert {"plugins/contextkit-redis/tests/test_checkpoints_redis.py::TestRedisCheckpoints",
            "tests/langgraph/test_memory_checkpoints.py::TestMemoryCheckpoints"} <= expected
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "conformance", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = {"::".join(line.split("::")[:2]) for line in result.stdout.splitlines() if "::" in line}
    assert expected - collected == set(), "suite runs the conformance marker does not select"
    assert {node.split("::")[1] for node in collected} <= {node.split("::")[1] for node in expected}, (
        "tests outside the suites carry the conformance marker"
    )


def test_mypy_checks_the_core_and_every_plugin_package() -> None:
    """mypy with no argument (``nox -s types``) checks contextkit/ and the package of every plugin, the template's
    too, under the root's strict settings.

    Fix: keep the plugin packages in ``[tool.mypy] files`` of the root pyproject."""
    config = _toml(ROOT / "pyproject.toml")["tool"]["mypy"]
    assert config["strict"] is True
    checked = {path.resolve() for pattern in config["files"] for path in ROOT.glob(pattern)}
    packages = {path.parent.resolve() for path in PLUGINS_DIR.glob("*/contextkit_*/__init__.py")}
    assert packages and packages <= checked
    assert (ROOT / "contextkit").resolve() in checked
    assert '"mypy", *session.posargs' in (ROOT / "noxfile.py").read_text(encoding="utf-8")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_server_launchers_are_test_support_in_contextkit_testing_services() -> None:
    """The launchers of test servers (PostgreSQL, Redis, Redis Cluster, ClickHouse, TLS material) live in the
    ``contextkit.testing.services`` package, which needs the ``testing`` extra; the runtime package never imports
    ``contextkit.testing``, so none of them loads outside tests, benchmarks and conformance runs.

    Fix: put a new launcher in ``contextkit/testing/services/`` (or the plugin's own tests), and import test support
    only from tests."""
    services = ROOT / "contextkit" / "testing" / "services"
    launchers = {"clickhouse_server", "postgres_server", "redis_servers", "tls"}
    assert {path.stem for path in services.glob("*.py")} >= launchers | {"__init__"}
    testing = ROOT / "contextkit" / "testing"
    assert not {path.stem for path in testing.glob("*.py")} & launchers
    for path in testing.glob("*.py"):
        # the suites run kits (tiering.py starts a worker process running contextkit), never a server binary
        found = re.findall(r"\b(redis-server|pg_ctl|initdb|chdb|openssl)\b", path.read_text(encoding="utf-8"))
        assert not found, (path, found)
    runtime = [p for p in (ROOT / "contextkit").rglob("*.py") if testing not in p.parents]
    assert runtime
    for path in runtime:
        assert not {name for name in _imports(path) if name.startswith("contextkit.testing")}, path
