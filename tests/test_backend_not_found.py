"""BackendNotFound: a typo gets "did you mean", one of contextkit's own backends gets the command that installs it
from this checkout, and the table of our own backends matches what the plugins register."""

from __future__ import annotations

from pathlib import Path

import pytest

from contextkit import ContextKit
from contextkit.errors import OWN_BACKENDS, BackendNotFound, ConfigError, install_command
from contextkit.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parent.parent


def test_a_typo_of_an_installed_backend_gets_did_you_mean() -> None:
    error = BackendNotFound("reddis", "hot", ["memory", "redis"])
    assert error.suggestion == "redis"
    assert "did you mean 'redis'?" in str(error)
    assert "install" not in str(error).split("?", 1)[1]  # installed already: nothing to install


def test_a_typo_of_one_of_our_backends_not_installed_gets_the_checkout_install_command() -> None:
    """contextkit runs from this checkout (editable): the message names its scripts/install, which exists."""
    message = str(BackendNotFound("reddis", "hot", ["memory", "sqlite"]))
    assert "did you mean 'redis'?" in message
    assert f"Install it with: {ROOT / 'scripts' / 'install'} redis" in message
    assert (ROOT / "scripts" / "install").is_file()


def test_one_of_our_backends_not_installed_gets_the_install_command() -> None:
    error = BackendNotFound("postgres", "cold", ["memory"])
    assert error.suggestion is None
    assert str(error).endswith(f"install it with: {install_command('postgres')}")


def test_a_backend_of_the_other_tier_is_named_as_such() -> None:
    assert "'redis' is a hot tier backend, not a cold tier one" in str(BackendNotFound("redis", "cold", ["memory"]))


def test_an_unknown_name_points_at_third_party_distributions() -> None:
    message = str(BackendNotFound("acme", "hot", ["memory"]))
    assert "did you mean" not in message and "not one of contextkit's own hot tier backends" in message


def test_the_composer_raises_it_with_the_suggestion() -> None:
    with pytest.raises(BackendNotFound, match="did you mean 'memory'") as caught:
        ContextKit.from_config({"hot": "memroy"}, env={})
    assert isinstance(caught.value, ConfigError) and caught.value.installed


def test_our_backend_table_matches_what_our_plugins_register() -> None:
    """OWN_BACKENDS (used for suggestions without the plugin installed) lists exactly the backends the plugins of
    this repository register, per tier; every plugin is installed in the test environment."""
    registered: dict[str, set[str]] = {"hot": set(), "cold": set()}
    for info in get_plugin_manager().backends.all():
        if info.plugin in {path.name.removeprefix("contextkit-") for path in (ROOT / "plugins").glob("contextkit-*")}:
            registered[info.tier].add(info.name)
    assert {tier: set(names) for tier, names in OWN_BACKENDS.items()} == registered
