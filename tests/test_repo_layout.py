"""The repository keeps one name in five places, and the root extras stay in sync with the plugins.

``plugins/contextkit-<name>/`` -> distribution ``contextkit-<name>`` -> package ``contextkit_<name>`` (typed) ->
entry point ``<name>`` in group ``contextkit`` -> extra ``contextkit[<name>]``, which accepts the plugin's minor
series. The memory tier is the one built-in plugin: ``plugins/contextkit-memory/`` holds its package, tests and
README like every plugin, but the package ships in the ``contextkit`` distribution (no pyproject of its own), so
no distribution of ours requires another in a cycle. The scaffold ``plugins/_template`` is checked against the
HotStore protocol, and kept out of discovery. Every plugin package and the scaffold have one shape (``plugin.py``,
``options.py``, ``hot.py`` / ``cold.py``, ``from_options``, ``<Name>Options.from_env``, no driver imported on
load): the tests under "one plugin shape" fail when a plugin leaves it.
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


# -- one plugin shape --------------------------------------------------------------------------------------------------
# Every plugin package, and the scaffold, is laid out alike (docs/plugins.md, "The shape"): __init__.py re-exports
# the public names lazily, plugin.py holds the hook implementations only, options.py the typed options with their
# environment variables, hot.py / cold.py the stores, each built by a from_options classmethod that plugin.py
# registers through contextkit.plugins.store_factory, so loading a plugin imports no driver.

SHAPED = [*ALL_PLUGIN_DIRS, TEMPLATE]
_REQUIRED_HOOKS = {"contextkit_register_backends", "contextkit_env_options"}


def _shape_package(directory: Path) -> Path:
    return directory / ("contextkit_example" if directory == TEMPLATE else _package(directory))


def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _is_hookimpl(decorator: ast.expr) -> bool:
    return isinstance(decorator, ast.Name) and decorator.id == "hookimpl"


def _registrations(plugin: ast.Module) -> list[tuple[str, str]]:
    """``(tier, "module:Class")`` of every ``registry.add_hot/add_cold(name, store_factory("module:Class"), ...)``."""
    found = []
    for node in ast.walk(plugin):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("add_hot", "add_cold"):
            tier = node.func.attr.removeprefix("add_")
            factory = node.args[1] if len(node.args) > 1 else None
            target = "<not store_factory>"
            if (
                isinstance(factory, ast.Call)
                and isinstance(factory.func, ast.Name)
                and factory.func.id == "store_factory"
                and isinstance(factory.args[0], ast.Constant)
            ):
                target = str(factory.args[0].value)
            found.append((tier, target))
    return found


def _classmethods(module: ast.Module, class_name: str) -> set[str]:
    for node in module.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef)
                and any(isinstance(d, ast.Name) and d.id == "classmethod" for d in item.decorator_list)
            }
    raise AssertionError(f"no class {class_name}")


@pytest.mark.parametrize("directory", SHAPED, ids=lambda p: p.name)
def test_plugin_package_has_the_one_layout(directory: Path) -> None:
    """The package holds __init__.py, plugin.py, options.py, py.typed and hot.py and/or cold.py (no store.py):
    the same files in every plugin, so a reader (and a merge) finds each part where the template puts it.

    Fix: move the hooks into plugin.py, the options into options.py, the stores into hot.py / cold.py."""
    package = _shape_package(directory)
    for name in ("__init__.py", "plugin.py", "options.py", "py.typed"):
        assert (package / name).is_file(), f"{package.relative_to(ROOT)} has no {name}"
    assert (package / "hot.py").is_file() or (package / "cold.py").is_file(), f"{package.name} has no hot.py / cold.py"
    assert not (package / "store.py").exists(), f"{package.name}/store.py: stores live in hot.py / cold.py"


@pytest.mark.parametrize("directory", SHAPED, ids=lambda p: p.name)
def test_plugin_module_holds_the_hooks_only(directory: Path) -> None:
    """plugin.py defines hook implementations and nothing else (no class, no other function), imports hookimpl as
    ``from contextkit import hookimpl``, implements the registration and environment hooks, and registers each
    store as ``store_factory("contextkit_<name>.hot:Class")`` (or ``.cold:`` for a cold tier).

    Fix: keep helpers in options.py or the store modules; register ``store_factory(...)`` of the store class."""
    package = _shape_package(directory)
    plugin = _module(package / "plugin.py")
    hooks = set()
    for node in plugin.body:
        assert not isinstance(node, (ast.ClassDef, ast.AsyncFunctionDef)), f"plugin.py defines {node.name}"
        if isinstance(node, ast.FunctionDef):
            assert any(_is_hookimpl(d) for d in node.decorator_list), f"plugin.py: {node.name} is not a hook"
            hooks.add(node.name)
        if isinstance(node, ast.ImportFrom) and any(alias.name == "hookimpl" for alias in node.names):
            assert node.module == "contextkit", f"hookimpl imported from {node.module}: use 'from contextkit import hookimpl'"
    assert hooks >= _REQUIRED_HOOKS, f"plugin.py lacks {_REQUIRED_HOOKS - hooks}"
    registrations = _registrations(plugin)
    assert registrations, "plugin.py registers no tier"
    for tier, target in registrations:
        module, _, _class = target.partition(":")
        expected = f"{package.name}.{tier}"
        assert module == expected, f"{tier} tier registered as {target}: use store_factory('{expected}:<Class>')"


@pytest.mark.parametrize("directory", SHAPED, ids=lambda p: p.name)
def test_every_store_is_built_by_from_options(directory: Path) -> None:
    """Each registered store class has the one factory name, a ``from_options(settings, options)`` classmethod
    (what store_factory calls), and the package re-exports it.

    Fix: add ``@classmethod def from_options(cls, settings, options)`` that validates and builds without I/O."""
    package = _shape_package(directory)
    init = (package / "__init__.py").read_text(encoding="utf-8")
    for tier, target in _registrations(_module(package / "plugin.py")):
        class_name = target.partition(":")[2]
        assert "from_options" in _classmethods(_module(package / f"{tier}.py"), class_name), f"{class_name}.from_options"
        assert f'"{class_name}"' in init, f"{package.name}/__init__.py does not export {class_name}"


@pytest.mark.parametrize("directory", SHAPED, ids=lambda p: p.name)
def test_options_are_a_typed_dataclass_with_from_env(directory: Path) -> None:
    """options.py defines ``<Name>Options`` (a dataclass, each field documented) with a ``from_env`` classmethod
    and the ``ENV_VARIABLES`` it reads; plugin.py's environment hook returns ``<Name>Options.from_env(env)``, and
    the package exports the class.

    Fix: keep the backend's options and variables in options.py; config.py must not name them."""
    package = _shape_package(directory)
    options = _module(package / "options.py")
    classes = [n for n in options.body if isinstance(n, ast.ClassDef) and n.name.endswith("Options")]
    assert len(classes) == 1, f"options.py should define one *Options class, has {[c.name for c in classes]}"
    options_class = classes[0]
    # ClickHouse keeps a slotted class with a documented __init__; every other backend a dataclass.
    is_dataclass = any(
        (isinstance(d, ast.Name) and d.id == "dataclass")
        or (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "dataclass")
        for d in options_class.decorator_list
    )
    assert is_dataclass or (ast.get_docstring(options_class) and ":param" in (ast.get_docstring(options_class) or "")), (
        f"{options_class.name} is neither a dataclass nor documents its parameters"
    )
    assert ast.get_docstring(options_class), f"{options_class.name} has no docstring"
    undocumented = _undocumented_fields(package / "options.py", options_class)
    assert not undocumented, f"{options_class.name} fields without a '#:' comment or ':param:': {undocumented}"
    assert "from_env" in _classmethods(options, options_class.name), f"{options_class.name}.from_env"
    assigned = {t.id for n in options.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    assert "ENV_VARIABLES" in assigned, "options.py does not declare ENV_VARIABLES"
    plugin_source = (package / "plugin.py").read_text(encoding="utf-8")
    assert f"return {options_class.name}.from_env(env)" in plugin_source
    assert f'"{options_class.name}"' in (package / "__init__.py").read_text(encoding="utf-8")


def _undocumented_fields(path: Path, options_class: ast.ClassDef) -> list[str]:
    """The fields of an Options class (annotated class attributes, or the keyword parameters of its ``__init__``)
    that have neither a ``#:`` comment above them nor a ``:param <name>:`` line in the class docstring."""
    lines = path.read_text(encoding="utf-8").splitlines()
    docstring = ast.get_docstring(options_class) or ""
    missing = []
    init = next((n for n in options_class.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    fields: list[tuple[str, int]] = [
        (node.target.id, node.lineno)
        for node in options_class.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    if init is not None:
        fields += [(arg.arg, 0) for arg in init.args.kwonlyargs]
    for name, lineno in fields:
        if f":param {name}:" in docstring:
            continue
        above = lineno - 2
        comment = []
        while above >= 0 and lines[above].strip().startswith("#"):
            comment.append(lines[above].strip())
            above -= 1
        if not any(line.startswith("#:") for line in comment):
            missing.append(name)
    return missing


def _driver_modules(directory: Path) -> set[str]:
    """The top-level modules of a plugin's non-contextkit dependencies (its drivers), as installed."""
    if not (directory / "pyproject.toml").is_file():
        return set()
    names = {
        Requirement(line).name.lower().replace("_", "-")
        for line in _toml(directory / "pyproject.toml")["project"].get("dependencies", [])
        if not Requirement(line).name.startswith("contextkit")
    }
    modules = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in names for d in dists)
    }
    assert modules or not names, f"{directory.name}: the drivers {sorted(names)} are not installed"
    return modules


@pytest.mark.parametrize("directory", ALL_PLUGIN_DIRS, ids=lambda p: p.name)
def test_loading_a_plugin_imports_no_driver(directory: Path) -> None:
    """``import contextkit_<name>``, its plugin module and options, registering its backends and reading the
    environment import none of the plugin's drivers (redis-py, asyncpg, clickhouse-connect, aiosqlite): a kit on
    another backend never pays for them, and a broken driver cannot break the others. Checked in a fresh
    interpreter through ``sys.modules``.

    Fix: import the driver in the store modules only (hot.py / cold.py and what they import), never in
    __init__.py, plugin.py or options.py; register ``store_factory(...)``."""
    package = _package(directory)
    drivers = _driver_modules(directory)
    script = f"""
import sys
import {package}, {package}.plugin, {package}.options
from contextkit.plugins import PluginManager
manager = PluginManager(load_entrypoints=False)
manager.register({package}.plugin, name="shape-check")
manager.backends.all()
manager.env_options({{}})
print(sorted(m for m in sys.modules if m.split(".")[0] in {sorted(drivers)!r}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]", f"{package} imports its driver when loaded: {result.stdout.strip()}"


@pytest.mark.parametrize("directory", SHAPED, ids=lambda p: p.name)
def test_package_version_is_the_distribution_version(directory: Path) -> None:
    """``contextkit_<name>.__version__`` is the version its distribution declares (the root's for the built-in
    memory plugin)."""
    pyproject = directory / "pyproject.toml"
    version = (_toml(pyproject) if pyproject.is_file() else ROOT_DATA)["project"]["version"]
    init = _module(_shape_package(directory) / "__init__.py")
    declared = [
        n.value.value for n in init.body
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__version__" for t in n.targets)
        and isinstance(n.value, ast.Constant)
    ]
    assert declared == [version], f"__version__ {declared} != {version}"


@pytest.mark.parametrize("directory", [*PLUGIN_DIRS, TEMPLATE], ids=lambda p: p.name)
def test_every_requirement_on_contextkit_accepts_the_minor_series(directory: Path) -> None:
    """Every requirement a plugin (or the scaffold) has on a contextkit distribution, extras included, accepts one
    minor series (``>=0.1,<0.2``), never ``==``."""
    project = _toml(directory / "pyproject.toml")["project"]
    lines = [*project.get("dependencies", [])]
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    requirements = [Requirement(line) for line in lines]
    pins = [(req.name, req.specifier) for req in requirements if req.name.startswith("contextkit")]
    assert pins, f"{directory.name} does not require contextkit"
    for name, spec in pins:
        assert spec == _minor_series(ROOT_PROJECT["version"]), f"{directory.name}: {name}{spec}"


def test_no_distribution_requires_the_built_in_memory_plugin() -> None:
    """contextkit-memory ships inside contextkit (no pyproject of its own), and no pyproject of the repository
    requires it: no dependency cycle between our distributions."""
    assert not (PLUGINS_DIR / "contextkit-memory" / "pyproject.toml").exists()
    for pyproject in [ROOT / "pyproject.toml", *PLUGINS_DIR.glob("*/pyproject.toml")]:
        project = _toml(pyproject)["project"]
        lines = [*project.get("dependencies", [])]
        for extra in project.get("optional-dependencies", {}).values():
            lines.extend(extra)
        assert "contextkit-memory" not in {Requirement(line).name for line in lines}, pyproject


def test_the_core_configuration_names_no_backend() -> None:
    """contextkit/config.py holds no backend's name, alias or environment variable in its code (docstrings may
    show examples): each plugin reads its variables through contextkit_env_options and registers its aliases.

    Fix: move the variable or alias into the plugin's options.py / plugin.py."""
    registry = PluginManager().backends
    names = {alias for info in registry.all() if info.plugin != "contextkit.compaction" for alias in (info.name, *info.aliases)}
    names.discard("memory")  # the built-in default tier is the core's own
    variables: set[str] = set()
    for directory in ALL_PLUGIN_DIRS:
        module = importlib.import_module(f"{_package(directory)}.options")
        for value in module.ENV_VARIABLES.values():
            variables.update((value,) if isinstance(value, str) else value)
    assert {"REDIS_URL", "CONTEXT_PG_URL", "CLICKHOUSE_HOST"} <= variables
    tree = _module(ROOT / "contextkit" / "config.py")
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
        and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    constants = {
        node.value.lower() for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }
    assert not constants & names, f"config.py names backends {sorted(constants & names)}"
    code = {c.upper() for c in constants}
    assert not {v for v in variables if any(v in c for c in code)}, "config.py reads a backend's variable"


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
