"""Every hook in contextkit.hookspecs is documented in docs/hooks.md with its exact signature, and has a test.

Hooks are discovered by inspection, so a new hook without docs or without ``test_hook_<name>`` in
tests/test_hooks.py fails here.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from contextkit import hookspecs
from contextkit.plugins import PluginManager

ROOT = Path(__file__).resolve().parent.parent
HOOKS_DOC = ROOT / "docs" / "hooks.md"
HOOK_TESTS = ROOT / "tests" / "test_hooks.py"


def _hookspecs() -> dict[str, Callable[..., Any]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: obj
        for name, obj in vars(hookspecs).items()
        if inspect.isfunction(obj) and hasattr(obj, marker)
    }


HOOKSPECS = _hookspecs()


def written_signature(func: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return`` with the annotations as written in the source.

    hookspecs.py uses ``from __future__ import annotations``, so inspect gives the annotations as source strings.
    """
    sig = inspect.signature(func)
    params = []
    for param in sig.parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {param.annotation}"
        if param.default is not inspect.Parameter.empty:
            text += f" = {param.default!r}" if param.annotation is not inspect.Parameter.empty else f"={param.default!r}"
        params.append(text)
    result = f"{func.__name__}({', '.join(params)})"
    if sig.return_annotation is not inspect.Signature.empty:
        result += f" -> {sig.return_annotation}"
    return result


def _test_functions() -> set[str]:
    tree = ast.parse(HOOK_TESTS.read_text(encoding="utf-8"))
    return {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_hookspecs_are_discovered_and_match_the_plugin_manager() -> None:
    """Discovery by inspection finds every hook the plugin manager exposes (and at least the register hook)."""
    relay = PluginManager(load_entrypoints=False).hook
    exposed = {name for name in dir(relay) if name.startswith(f"{hookspecs.PROJECT_NAME}_")}
    assert "contextkit_register_backends" in HOOKSPECS
    assert set(HOOKSPECS) == exposed


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_hook_is_documented_with_its_exact_signature(hook: str) -> None:
    """docs/hooks.md has a heading for the hook and its signature exactly as in contextkit/hookspecs.py."""
    doc = HOOKS_DOC.read_text(encoding="utf-8")
    signature = written_signature(HOOKSPECS[hook])
    assert f"## {hook}\n" in doc, f"docs/hooks.md has no '## {hook}' section"
    assert signature in doc, f"docs/hooks.md does not show the signature `{signature}`"


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_hook_has_its_own_test(hook: str) -> None:
    """tests/test_hooks.py defines ``test_hook_<name>`` for the hook."""
    assert f"test_hook_{hook}" in _test_functions(), f"tests/test_hooks.py has no test_hook_{hook}"


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_hook_has_a_docstring_saying_what_it_returns(hook: str) -> None:
    """The hookspec's own docstring (the reference) says when it is called and documents its return."""
    doc = inspect.getdoc(HOOKSPECS[hook]) or ""
    assert "Called" in doc, f"{hook}'s docstring does not say when it is called"
    assert ":return:" in doc or ":returns:" in doc, f"{hook}'s docstring has no :return:"
