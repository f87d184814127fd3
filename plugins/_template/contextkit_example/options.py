"""ExampleOptions: the options of the example hot tier, validated without I/O and without the driver.

This module imports no driver (nor ``hot.py``), so the plugin's hooks can read the environment through it while
the driver stays unimported until a kit is built with the backend. Add a field per option, each documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from contextkit.errors import ConfigError
from contextkit.masking import check_url_credentials, remember_secrets, secrets_in
from contextkit.plugins import EnvOptions

__all__ = ["ENV_VARIABLES", "ExampleOptions"]

#: The environment variables the backend reads, by option (the first one set wins for a tuple). ``EXAMPLE_URL``
#: also selects the example hot tier when ``CONTEXTKIT_HOT`` is unset.
ENV_VARIABLES: dict[str, str | tuple[str, ...]] = {"url": "EXAMPLE_URL"}


@dataclass(frozen=True)
class ExampleOptions:
    """The validated options of the example hot tier (this backend's table of the configuration)."""

    #: Where the server is: ``example://[user:password@]host:port``. Required.
    url: str

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> ExampleOptions:
        """Validate ``options``; raises ``ConfigError`` naming the option (never showing a secret)."""
        remember_secrets(secrets_in(options))  # before any check, so no error can show them
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"unknown option(s) for the example hot tier: {', '.join(sorted(unknown))}")
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError("the example hot tier needs a 'url' option (or EXAMPLE_URL), e.g. example://localhost:1234")
        check_url_credentials(url, "example url")
        return cls(url=url)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnvOptions:
        """The options :data:`ENV_VARIABLES` set in ``env`` (text: :meth:`parse` checks them with the rest); a URL
        selects the example hot tier."""
        return EnvOptions.read("example", env, ENV_VARIABLES, selects=("hot",))
