"""The repository keeps one name in five places, and the root extras stay in sync with the plugins.

``plugins/contextkit-<name>/`` -> distribution ``contextkit-<name>`` -> package ``contextkit_<name>`` (typed) ->
entry point ``<name>`` in group ``contextkit`` -> extra ``contextkit[<name>]``, pinned to the plugin's version.
The scaffold ``plugins/_template`` is checked against the HotStore protocol, and kept out of discovery.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

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


def _toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


ROOT_PROJECT = _toml(ROOT / "pyproject.toml")["project"]
PLUGIN_DIRS = sorted(p for p in PLUGINS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def _plugin_name(directory: Path) -> str:
    return directory.name.removeprefix("contextkit-")


def _pins(requirements: list[str]) -> dict[str, str]:
    """``{distribution: specifier}`` of the contextkit distributions in a requirement list."""
    pins = {}
    for line in requirements:
        req = Requirement(line)
        if req.name.startswith("contextkit"):
            pins[req.name] = str(req.specifier)
    return pins


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_directory_keeps_the_one_name_in_every_place(directory: Path) -> None:
    """plugins/contextkit-<name> has distribution contextkit-<name>, typed package contextkit_<name>, entry point
    <name> in group contextkit pointing into that package, a README and a tests/ directory."""
    assert directory.name.startswith("contextkit-"), f"{directory.name}: plugin directories are contextkit-<name>"
    name = _plugin_name(directory)
    package = f"contextkit_{name.replace('-', '_')}"
    pyproject = directory / "pyproject.toml"
    assert pyproject.is_file(), f"{directory.name} has no pyproject.toml"
    data = _toml(pyproject)
    project = data["project"]

    assert project["name"] == directory.name
    assert (directory / package / "__init__.py").is_file(), f"no package {package}/ in {directory.name}"
    assert (directory / package / "py.typed").is_file(), f"{package} has no py.typed marker"
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [package]

    entry_points = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    assert list(entry_points) == [name], f"{directory.name}: expected entry point {name!r} in group contextkit"
    target = entry_points[name].split(":")[0]
    assert target == package or target.startswith(f"{package}."), f"entry point {name} -> {target}"

    assert (directory / "README.md").is_file(), f"{directory.name} has no README.md"
    assert (directory / "tests").is_dir(), f"{directory.name} has no tests/ directory"


@pytest.mark.parametrize("directory", PLUGIN_DIRS, ids=lambda p: p.name)
def test_plugin_depends_on_the_exact_core_version(directory: Path) -> None:
    """Every in-tree plugin pins contextkit==<root version> (they are released in lockstep)."""
    project = _toml(directory / "pyproject.toml")["project"]
    assert _pins(project.get("dependencies", [])).get("contextkit") == f"=={ROOT_PROJECT['version']}"


def test_root_extras_pin_each_plugin_to_its_version() -> None:
    """contextkit[<name>] is exactly contextkit-<name>==<plugin version>, and every pinned plugin exists."""
    versions = {d.name: _toml(d / "pyproject.toml")["project"]["version"] for d in PLUGIN_DIRS}
    extras = ROOT_PROJECT["optional-dependencies"]

    for name in PLUGIN_EXTRAS:
        assert extras.get(name) == [f"contextkit-{name}=={versions.get(f'contextkit-{name}', '<missing plugin>')}"], (
            f"extra {name!r}: {extras.get(name)}"
        )
    for extra, requirements in extras.items():
        for dist, spec in _pins(requirements).items():
            assert dist in versions, f"extra {extra!r} names {dist}, but plugins/{dist}/ does not exist"
            assert spec == f"=={versions[dist]}", f"extra {extra!r} pins {dist}{spec}, the plugin is {versions[dist]}"
    for dist, spec in _pins(ROOT_PROJECT["dependencies"]).items():
        assert spec == f"=={versions[dist]}", f"contextkit depends on {dist}{spec}, the plugin is {versions[dist]}"


def test_all_extra_includes_every_plugin() -> None:
    """contextkit[all] installs every plugin of the repository."""
    assert set(_pins(ROOT_PROJECT["optional-dependencies"]["all"])) >= {d.name for d in PLUGIN_DIRS}


def test_every_plugin_has_an_extra_of_its_own() -> None:
    """A plugin added to plugins/ gets its contextkit[<name>] extra."""
    extras = ROOT_PROJECT["optional-dependencies"]
    for directory in PLUGIN_DIRS:
        assert _plugin_name(directory) in extras, f"no extra contextkit[{_plugin_name(directory)}]"


# -- the scaffold ----------------------------------------------------------------------------------------------------


def test_template_is_a_complete_scaffold() -> None:
    """plugins/_template has a pyproject with the entry point, a typed package with plugin.py, a README and tests."""
    data = _toml(TEMPLATE / "pyproject.toml")
    assert data["project"]["name"] == "contextkit-example"
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
