"""Configuration: one :class:`KitConfig` built from arguments, the environment, a TOML file and defaults.

Precedence, per key: explicit arguments > environment > TOML file > defaults. The TOML file is
``$CONTEXTKIT_CONFIG``, else ``./contextkit.toml`` (top level), else ``[tool.contextkit]`` of ``./pyproject.toml``.

A mapping (or TOML table) looks like::

    hot = "redis"                       # or {backend = "redis", url = "redis://..."}
    cold = "postgres"                   # "none" / false turns the cold tier off
    namespace = "myapp"
    session_ttl = 86400                 # seconds
    checkpoint_ttl = 604800
    history_cap = 1000
    timeout = 5.0
    fallback = false                    # true: hot tier unreachable at start -> memory tier, health "degraded"
    [redis]                             # options of a backend, by backend name
    url = "redis://localhost:6379/0"
    [archiver]
    batch_size = 500
    [tiering]
    tombstone_ttl = 604800
    [limits]
    max_message_bytes = 1048576
    [compat]
    physical_names = "aiecs"            # the cold tier under the original ContextEngine's table names and schema
    [checkpoints]                       # retention of LangGraph checkpoints (docs/configuration.md)
    keep_latest = 20                    # per thread and namespace; the newest always stays
    max_age = "30d"                     # seconds, or a number with s/m/h/d
    keep_first = true
    prune_every = 10                    # apply it to a thread after every 10th put (0: only on prune)

Environment: ``CONTEXTKIT_HOT``, ``CONTEXTKIT_COLD``, ``CONTEXTKIT_NAMESPACE``, ``CONTEXTKIT_SESSION_TTL``,
``CONTEXTKIT_CHECKPOINT_TTL``, ``CONTEXTKIT_HISTORY_CAP``, ``CONTEXTKIT_TIMEOUT``, ``CONTEXTKIT_FALLBACK``,
``CONTEXTKIT_HOT_URL``, ``CONTEXTKIT_COLD_URL`` (a tier's URL, whose scheme picks its backend as in
``ContextKit.from_url``), and the seed's ``CONTEXT_PERMANENT_BACKEND`` (the cold tier's
name or alias; none|off|false|disabled|0 turns it off). Each backend reads its own variables through the
:func:`~contextkit.hookspecs.contextkit_env_options` hook (the redis plugin ``REDIS_URL`` and ``REDIS_HOST/PORT/
DB/PASSWORD``, the postgres plugin ``CONTEXT_PG_URL`` / ``POSTGRES_URL``, ...: each plugin's README lists
them); this module names no backend, and a backend's aliases are the ones its plugin registers.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from contextkit.blob_compression import CODECS, BlobCompressor, default_codec
from contextkit.errors import OWN_SELECTING_VARIABLES, BackendNotFound, ConfigError
from contextkit.masking import MASK, is_secret_key, mask_secrets, remember_secrets, secrets_in
from contextkit.plugins import BackendInfo, PluginManager, get_plugin_manager
from contextkit.stores import RetentionPolicy, StoreSettings
from contextkit.validation import Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ArchiverConfig",
    "CheckpointsConfig",
    "CompatConfig",
    "KitConfig",
    "TieringConfig",
    "load_config",
    "parse_duration",
]

_OFF = {"", "none", "off", "false", "disabled", "0", "no"}
# A namespace becomes a key prefix, a schema or a table prefix: no separators (':' would let namespace "a" reach
# the keys of namespace "a:b"), no control characters, bounded length.
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_TRUE = {"1", "true", "yes", "on"}
#: The top-level keys that are tables of their own (any other table is a backend's options).
_SECTIONS = ("archiver", "tiering", "limits", "compat", "checkpoints")
_TOP_KEYS = {"hot", "cold", "namespace", "session_ttl", "checkpoint_ttl", "history_cap", "timeout", "fallback", *_SECTIONS}


@dataclass(frozen=True, slots=True)
class ArchiverConfig:
    """How the archiver drains the outbox into the cold tier.

    :param batch_size: most events written to the cold tier per batch.
    :param flush_interval: seconds the archiver waits for a batch to fill before writing a partial one.
    :param max_backoff: longest wait, in seconds, between retries while the cold tier is down.
    :param drain_timeout: seconds ``aclose()`` spends draining before leaving the rest in the outbox.
    :param outbox_path: file of a durable local outbox (SQLite); when unset, the hot tier's outbox is used if it
        has one, else an in-process queue (as durable as the memory tier itself).
    :param max_pending: most events an in-process outbox holds; beyond it writes raise ``BackendUnavailable``
        instead of dropping events.
    :param max_in_flight: most batches written at once while a backlog waits, when the cold tier declares
        ``concurrent_writes`` and the outbox can read past the batches in flight (``peek_ahead``); 1 writes one
        batch at a time. Batches are acknowledged in outbox order either way.
    :param batch_bytes: most bytes (of the events' JSON, about) written per batch, as well as ``batch_size``
        events: an event larger than this is written alone, so a big event never drags a batch of small ones
        into a long write, and one read of the outbox never loads more than about this much.
    :param max_pending_bytes: most bytes an in-process outbox holds, as well as ``max_pending`` events; once
        reached, writes raise ``BackendUnavailable`` instead of holding more memory.
    """

    batch_size: int = 500
    flush_interval: float = 0.05
    max_backoff: float = 5.0
    drain_timeout: float = 10.0
    outbox_path: str | None = None
    max_pending: int = 1_000_000
    max_in_flight: int = 2
    batch_bytes: int = 8 * 1024 * 1024
    max_pending_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TieringConfig:
    """How the hot tier and the archive are kept consistent (see :mod:`contextkit.tiered`).

    :param tombstone_ttl: seconds a deleted owner's tombstone stays in the hot tier; keep it above how far the
        archive may fall behind (a consult waits for older events to be archived first).
    :param consult_timeout: seconds a call may wait, for an owner the hot tier does not know, for the outbox to
        settle and the archive to answer, before it fails with ``BackendUnavailable``.
    :param assume_new_when_unreachable: when the archive cannot be asked, take an unknown owner as new instead of
        failing the call (a guess: an id whose hot copy was lost may then repeat seqs; counted in the metrics).
    """

    tombstone_ttl: float = 604_800.0
    consult_timeout: float = 5.0
    assume_new_when_unreachable: bool = False


@dataclass(frozen=True, slots=True)
class CompatConfig:
    """Compatibility with the original ContextEngine (AIECS).

    :param physical_names: ``contextkit`` (default): the cold tier's tables live under names derived from the
        namespace (PostgreSQL schema ``contextkit``, ClickHouse tables ``contextkit_context_*``). ``aiecs``: the
        original's names, so its queries and dashboards keep working: PostgreSQL's ``public`` schema and
        ClickHouse's unprefixed ``context_*`` tables in the configured database (an explicit ``schema`` /
        ``table_prefix`` option still wins). A PostgreSQL archive the original wrote there is adopted in place
        on first open (see ``docs/migrating-from-aiecs.md``).
    """

    physical_names: str = "contextkit"


#: Bytes from which a checkpoint value is stored compressed, by default (``[checkpoints] compress_above``).
DEFAULT_COMPRESS_ABOVE = 2048

@dataclass(frozen=True, slots=True)
class CheckpointsConfig:
    """The ``[checkpoints]`` section: retention of LangGraph checkpoints (see ``docs/configuration.md``).

    :param retention: what a prune keeps per thread and namespace (:class:`~contextkit.stores.RetentionPolicy`:
        ``keep_latest``, ``max_age``, ``keep_first``); with no limit set, nothing is pruned.
    :param prune_every: apply the policy to a thread after every this many puts the saver made to it (bounded
        work per put: the thread holds about what the policy keeps); 0 leaves it to ``contextkit checkpoints
        prune`` and ``ContextKit.prune_checkpoints``.
    :param compress_above: channel values and pending writes of at least this many bytes are stored compressed
        (:mod:`contextkit.blob_compression`); 0 stores them as the serializer wrote them. Read back either way.
    :param compression: ``"zstd"`` (the default when the ``zstandard`` package is installed) or ``"zlib"``.
    :param share_lists: store list-valued channel values with structural sharing between versions
        (:mod:`contextkit.checkpoint_lists`; on by default); off stores every version whole. Read back either way.
    """

    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    prune_every: int = 0
    compress_above: int = DEFAULT_COMPRESS_ABOVE
    compression: str | None = None
    share_lists: bool = True

    def describe(self) -> dict[str, Any]:
        """The section as plain values (for ``KitConfig.describe``)."""
        retention = self.retention
        return {
            "keep_latest": retention.keep_latest,
            "max_age": retention.max_age,
            "keep_first": retention.keep_first,
            "prune_every": self.prune_every,
            "compress_above": self.compress_above,
            "compression": (self.compression or default_codec()) if self.compress_above else None,
            "share_lists": self.share_lists,
        }

    def compressor(self) -> BlobCompressor | None:
        """The saver's compressor of large values, or None when ``compress_above`` is 0."""
        return BlobCompressor(self.compress_above, self.compression) if self.compress_above else None


_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(value: Any, key: str) -> float:
    """Seconds from a positive number or a string such as ``"90"``, ``"15m"``, ``"12h"``, ``"30d"``;
    :class:`~contextkit.errors.ConfigError` otherwise."""
    if isinstance(value, str):
        match = _DURATION.match(value.lower())
        if match is None:
            raise ConfigError(f"{key} must be seconds or a number with s, m, h or d, got {value!r}")
        return float(_number(float(match.group(1)) * _DURATION_UNITS[match.group(2)], key, float))
    return float(_number(value, key, float))


def _checkpoints_config(data: Any) -> CheckpointsConfig:
    if isinstance(data, CheckpointsConfig):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"[checkpoints] must be a table of options, got {type(data).__name__}")
    unknown = set(data) - {
        "keep_latest", "max_age", "keep_first", "prune_every", "compress_above", "compression", "share_lists"
    }
    if unknown:
        raise ConfigError(f"[checkpoints] has unknown option(s): {', '.join(sorted(unknown))}")
    keep_latest = data.get("keep_latest")
    max_age = data.get("max_age")
    prune_every = data.get("prune_every", 0)
    if isinstance(prune_every, str) and prune_every.strip() in ("", "0"):
        prune_every = 0
    return CheckpointsConfig(
        retention=RetentionPolicy(
            keep_latest=None if keep_latest in (None, 0, "", "0") else _number(keep_latest, "checkpoints.keep_latest", int),
            max_age=None if max_age in (None, 0, "", "0") else parse_duration(max_age, "checkpoints.max_age"),
            keep_first=_boolean(data.get("keep_first", False), "checkpoints.keep_first"),
        ),
        prune_every=0 if prune_every == 0 else _number(prune_every, "checkpoints.prune_every", int),
        compress_above=_compress_above(data.get("compress_above", DEFAULT_COMPRESS_ABOVE)),
        compression=_compression(data.get("compression")),
        share_lists=_boolean(data.get("share_lists", True), "checkpoints.share_lists"),
    )


def _compress_above(value: Any) -> int:
    if value in (0, "0", "", False, None):
        return 0
    return int(_number(value, "checkpoints.compress_above", int))


def _compression(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in CODECS:
        raise ConfigError(f"checkpoints.compression must be one of {', '.join(CODECS)}, got {value!r}")
    codec = value.strip().lower()
    BlobCompressor(1, codec)  # a codec that is not installed fails here, at configuration time
    return codec



@dataclass(frozen=True, slots=True, repr=False)
class KitConfig:
    """The resolved configuration of a kit."""

    hot: str = "memory"
    cold: str | None = None
    namespace: str = "contextkit"
    session_ttl: float = 86_400.0
    checkpoint_ttl: float = 604_800.0
    history_cap: int = 1000
    timeout: float = 5.0
    fallback: bool = False
    hot_options: Mapping[str, Any] = field(default_factory=dict)
    cold_options: Mapping[str, Any] = field(default_factory=dict)
    #: ``{"hot": {option: variable}, "cold": {...}}``: the tier options an environment variable set (and nothing
    #: above the environment overrode), so an error about one can name the variable.
    env_variables: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    archiver: ArchiverConfig = field(default_factory=ArchiverConfig)
    tiering: TieringConfig = field(default_factory=TieringConfig)
    limits: Limits = field(default_factory=Limits)
    compat: CompatConfig = field(default_factory=CompatConfig)
    checkpoints: CheckpointsConfig = field(default_factory=CheckpointsConfig)

    def store_settings(self) -> StoreSettings:
        """The settings every tier is built with (``archived`` when a cold tier is configured)."""
        return StoreSettings(
            namespace=self.namespace,
            session_ttl=self.session_ttl,
            checkpoint_ttl=self.checkpoint_ttl,
            history_cap=self.history_cap,
            limits=self.limits,
            timeout=self.timeout,
            archived=bool(self.cold),
            tombstone_ttl=self.tiering.tombstone_ttl,
        )

    def __repr__(self) -> str:
        return f"KitConfig({self.describe()!r})"

    def describe(self) -> dict[str, Any]:
        """The configuration without secrets (URLs masked, password options hidden)."""
        return {
            "hot": self.hot,
            "cold": self.cold,
            "namespace": self.namespace,
            "session_ttl": self.session_ttl,
            "checkpoint_ttl": self.checkpoint_ttl,
            "history_cap": self.history_cap,
            "timeout": self.timeout,
            "fallback": self.fallback,
            "hot_options": _mask_options(self.hot_options),
            "cold_options": _mask_options(self.cold_options),
            "checkpoints": self.checkpoints.describe(),
        }


def _mask_options(options: Mapping[str, Any]) -> dict[str, Any]:
    secrets = secrets_in(options)
    masked: dict[str, Any] = {}
    for key, value in options.items():
        if is_secret_key(str(key)):
            masked[key] = MASK if value else value
        elif isinstance(value, str):
            masked[key] = mask_secrets(value, secrets)  # a URL or libpq keyword string may hold a password
        elif isinstance(value, (int, float, bool)) or value is None:
            masked[key] = value
        else:
            masked[key] = f"<{type(value).__name__}>"
    return masked


def _backend_name(value: Any, tier: str, plugins: PluginManager) -> str | None:
    """The registered name of the backend ``value`` names (an alias the plugin registered becomes its name; an
    unknown name is kept, and building the kit reports it with the installed ones)."""
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{tier} must name a backend (a str), got {type(value).__name__}")
    name = value.strip().lower()
    if name in _OFF:
        if tier == "hot":
            raise ConfigError("the hot tier cannot be turned off; use 'memory' for an in-process tier")
        return None
    try:
        return plugins.backends.get(tier, name).name
    except BackendNotFound:
        return name


def _layer_from_mapping(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Normalise a config mapping into {key: value} plus {"options": {backend: {...}}}."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: configuration must be a mapping, got {type(data).__name__}")
    layer: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key in ("hot", "cold") and isinstance(value, Mapping):
            inner = dict(value)
            backend = inner.pop("backend", None)
            if backend is None:
                raise ConfigError(f"{source}: [{key}] needs a 'backend' key")
            layer[key] = backend
            layer[f"{key}_inline"] = inner
        elif key in _TOP_KEYS:
            layer[key] = value
        elif isinstance(value, Mapping):
            options[str(key)] = dict(value)
        else:
            raise ConfigError(f"{source}: unknown configuration key {key!r}")
    layer["options"] = options
    return layer


_OTHER_TIER = {"hot": "cold", "cold": "hot"}
_TIER_VARIABLE = {"hot": "CONTEXTKIT_HOT", "cold": "CONTEXTKIT_COLD"}


def _scheme_owner(manager: PluginManager, tier: str, scheme: str) -> BackendInfo | None:
    """The backend of ``tier`` a URL scheme names (``postgresql+asyncpg`` as ``postgresql``), or None."""
    return manager.backends.for_scheme(tier, scheme) or manager.backends.for_scheme(tier, scheme.split("+", 1)[0])


def _url_options(url: str) -> dict[str, Any]:
    """The options a backend gets from its URL: ``memory://`` and ``sqlite://`` alone select its defaults."""
    return {"url": url} if url.partition("://")[2].strip("/") else {}


def backend_for_url(
    manager: PluginManager, tier: str, url: object, *, variable: str | None = None
) -> tuple[BackendInfo, dict[str, Any]]:
    """The backend of ``tier`` a URL names by its scheme (a backend's name, an alias or a scheme its plugin
    registers), and the options it is built with; ``ConfigError`` for anything else, ``BackendNotFound`` for a
    scheme no installed backend knows. ``variable``: the environment variable the URL came from (named in
    errors); else it is :meth:`ContextKit.from_url`'s argument."""
    what = variable if variable is not None else "the URL" if tier == "hot" else "the cold URL"
    if not isinstance(url, str):
        raise ConfigError(f"{what} must be a string such as 'sqlite:///app.db', got {type(url).__name__}")
    url = url.strip()
    remember_secrets(secrets_in({"url": url}))  # before any message can show it
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(
            f"{what} {mask_secrets(url)[:200]!r} is not a URL: give one such as 'memory://', 'sqlite:///app.db' or "
            "'redis://localhost:6379/0'"
        )
    scheme = scheme.lower()
    info = _scheme_owner(manager, tier, scheme)
    if info is None:
        other = _OTHER_TIER[tier]
        elsewhere = _scheme_owner(manager, other, scheme)
        if elsewhere is not None and variable is not None:
            raise ConfigError(
                f"{variable}: {scheme}:// names the {elsewhere.name} {other} tier; set it as {_TIER_VARIABLE[other]}_URL"
            )
        if elsewhere is not None and tier == "hot":
            raise ConfigError(
                f"{scheme}:// names the {elsewhere.name} archive (cold) tier, which needs a hot tier in front of it: "
                f"ContextKit.from_url('sqlite:///app.db', cold={mask_secrets(url)!r}) or "
                f"ContextKit.from_url('redis://localhost:6379/0', cold=...) (ContextKitSaver.from_conn_string takes "
                "the same arguments)"
            )
        if elsewhere is not None:
            raise ConfigError(
                f"{scheme}:// names the {elsewhere.name} hot tier, not an archive: pass it as the first URL and a "
                "postgresql://, clickhouse:// or sqlite:/// URL as cold="
            )
        manager.backends.get(tier, scheme)  # raises BackendNotFound: what is installed, "did you mean"
    assert info is not None
    return info, _url_options(url)


def _select_by_url(
    env: Mapping[str, str], plugins: PluginManager, layer: dict[str, Any], selected: dict[str, list[str]]
) -> None:
    """A tier's URL variable selects the backend its scheme names, as ContextKit.from_url does (added to
    ``selected``); with the tier also named (CONTEXTKIT_HOT / CONTEXTKIT_COLD, CONTEXT_PERMANENT_BACKEND), the URL
    is that backend's, unless its scheme names another one."""
    for tier, generic in _TIER_VARIABLE.items():
        variable = f"{generic}_URL"
        url = env.get(variable, "").strip()
        if not url:
            continue
        named = layer.get(tier)
        if named is None:
            try:
                info, inline = backend_for_url(plugins, tier, url, variable=variable)
            except BackendNotFound as exc:
                # e.g. ClickHouse's http:// URL: a scheme of no backend's own, which only the named tier can take
                raise ConfigError(f"{variable}: {exc}; or set {generic} to the backend that takes this URL") from None
            if info.name not in selected[tier]:
                selected[tier].append(info.name)
        else:
            chosen = _backend_name(named, tier, plugins)
            scheme = url.partition("://")[0].lower()
            owner = _scheme_owner(plugins, tier, scheme) or _scheme_owner(plugins, _OTHER_TIER[tier], scheme)
            if chosen is None or (owner is not None and owner.name != chosen):
                if not env.get(generic, "").strip():
                    generic = "CONTEXT_PERMANENT_BACKEND"
                what = "turns the cold tier off" if chosen is None else f"names the {chosen} backend"
                kind = "a URL" if owner is None else f"a {owner.name} URL"
                raise ConfigError(f"{variable} is {kind} but {generic} {what}; unset one, or make them agree")
            # a scheme of no backend's own (http://) goes to the named backend whole, which checks it
            inline = _url_options(url) if owner is not None else {"url": url}
        layer[f"{tier}_inline"] = inline


def _env_layer(env: Mapping[str, str], plugins: PluginManager, *, tiers: bool = True) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}

    simple = {
        "CONTEXTKIT_HOT": "hot",
        "CONTEXTKIT_NAMESPACE": "namespace",
        "CONTEXTKIT_SESSION_TTL": "session_ttl",
        "CONTEXTKIT_CHECKPOINT_TTL": "checkpoint_ttl",
        "CONTEXTKIT_HISTORY_CAP": "history_cap",
        "CONTEXTKIT_TIMEOUT": "timeout",
        "CONTEXTKIT_FALLBACK": "fallback",
    }
    origins: dict[str, str] = {}  # key -> the variable that set it, named in errors about its value
    for var, key in simple.items():
        if env.get(var, "").strip():
            layer[key] = env[var].strip()
            origins[key] = var

    if env.get("CONTEXTKIT_COLD", "").strip():
        layer["cold"] = env["CONTEXTKIT_COLD"].strip()
    elif "CONTEXT_PERMANENT_BACKEND" in env:
        layer["cold"] = env["CONTEXT_PERMANENT_BACKEND"].strip() or "none"

    # Each backend's own variables, read by its plugin; one may also pick its backend for a tier the generic
    # variables above leave unset (the seed's REDIS_URL picks the redis hot tier).
    selected: dict[str, list[str]] = {"hot": [], "cold": []}
    sources: dict[str, dict[str, str]] = {}
    for contribution in plugins.env_options(env):
        if contribution.options:
            options.setdefault(contribution.backend, {}).update(contribution.options)
            sources.setdefault(contribution.backend, {}).update(contribution.variables)
        for tier in contribution.selects:
            if tier in selected and contribution.backend not in selected[tier]:
                selected[tier].append(contribution.backend)
    for tier, variables in OWN_SELECTING_VARIABLES.items():
        # A variable of one of contextkit's own backends whose plugin is missing: select it anyway, so the kit
        # reports the missing plugin (BackendNotFound, with the install command) rather than ignoring the variable.
        for variable, backend in variables.items():
            value = env.get(variable, "").strip().lower()
            if value and value not in _OFF and backend not in selected[tier] and backend not in plugins.backends.names(tier):
                selected[tier].append(backend)
    if tiers:
        _select_by_url(env, plugins, layer, selected)
        for tier, backends in selected.items():
            if tier in layer or not backends:
                continue
            if len(backends) > 1:
                raise ConfigError(
                    f"the environment selects {' and '.join(backends)} for the {tier} tier; set "
                    f"{_TIER_VARIABLE[tier]} to choose one"
                )
            layer[tier] = backends[0]
    else:
        layer.pop("hot", None)
        layer.pop("cold", None)
    layer["origins"] = origins
    layer["options"] = options
    layer["sources"] = sources
    return layer


def _file_layer(path: Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    if path is None:
        explicit = env.get("CONTEXTKIT_CONFIG", "").strip()
        if explicit:
            path = Path(explicit)
            if not path.is_file():
                raise ConfigError(f"CONTEXTKIT_CONFIG points at {path}, which does not exist")
        elif Path("contextkit.toml").is_file():
            path = Path("contextkit.toml")
        elif Path("pyproject.toml").is_file():
            data = _read_toml(Path("pyproject.toml"))
            table = data.get("tool", {}).get("contextkit")
            return _layer_from_mapping(table, "pyproject.toml [tool.contextkit]") if table else {"options": {}}
        else:
            return {"options": {}}
    elif not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("contextkit", {})
    return _layer_from_mapping(data, str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc


def _number(value: Any, key: str, kind: type) -> Any:
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    try:
        result = kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{key} must be a finite number, got {value!r}") from None
    if kind is float and not math.isfinite(result):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if result != result or result <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")
    return result


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _OFF:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def _dataclass_from(cls: type, data: Any, key: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{key}] must be a table of options, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"[{key}] has unknown option(s): {', '.join(sorted(unknown))}")
    defaults = cls()
    values: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(defaults, name)
        if isinstance(default, bool):
            values[name] = _boolean(value, f"{key}.{name}")
        elif isinstance(default, (int, float)):
            values[name] = _number(value, f"{key}.{name}", type(default))
        elif default is None or isinstance(default, str):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{key}.{name} must be a str, got {value!r}")
            values[name] = value
        else:
            values[name] = value
    return replace(defaults, **values)


def _canonical(table: str, plugins: PluginManager) -> str | None:
    """The registered name of the backend a table names (its name or an alias, in either tier), or None."""
    for tier in ("hot", "cold"):
        try:
            return plugins.backends.get(tier, table).name
        except BackendNotFound:
            continue
    return None


def _by_backend(options: Mapping[str, dict[str, Any]], source: str, plugins: PluginManager) -> dict[str, dict[str, Any]]:
    """One layer's backend tables by backend name: a table named by an alias (``[pg]``) is the backend's, as
    ``hot = "pg"`` is; two tables of one layer setting the same option of one backend are refused."""
    out: dict[str, dict[str, Any]] = {}
    tables: dict[str, str] = {}
    for table, values in options.items():
        name = _canonical(table, plugins) or table
        merged = out.setdefault(name, {})
        for key, value in values.items():
            if key in merged:
                raise ConfigError(f"{source}: [{tables[name]}] and [{table}] both set {name} option {key!r}: keep one")
            merged[key] = value
        tables[name] = table
    return out


def _check_stray_tables(options: Mapping[str, dict[str, Any]], hot: str, cold: str | None, plugins: PluginManager) -> None:
    """A table naming no installed backend is kept (its plugin may be installed elsewhere) unless it looks like a
    typo that would otherwise go unnoticed: of a section (``[checkpoint]``: the retention would not apply), or of
    the backend a tier uses while that backend has no table (``[rediss]``: the tier would run on its defaults,
    maybe on another server than the one meant)."""
    unused = [name for name in (hot, cold) if name is not None and name not in options]
    for table in options:
        if _canonical(table, plugins) is not None:
            continue
        close = difflib.get_close_matches(table, _SECTIONS, n=1, cutoff=0.75)
        if close:
            raise ConfigError(f"unknown section [{table}]; did you mean [{close[0]}]?")
        close = difflib.get_close_matches(table, unused, n=1, cutoff=0.75)
        if close:
            raise ConfigError(
                f"[{table}] names no installed backend, and the {close[0]} tier in use has no table of options: did "
                f"you mean [{close[0]}]? (the table of a backend not installed here may stay)"
            )


def load_config(
    config: Mapping[str, Any] | KitConfig | str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
    plugins: PluginManager | None = None,
    tiers: bool = True,
    **overrides: Any,
) -> KitConfig:
    """Resolve a :class:`KitConfig`.

    :param config: a mapping of explicit settings, a ready :class:`KitConfig` (returned with ``overrides``
        applied), or the path of a TOML file to use instead of the default file lookup.
    :param env: the environment to read (``os.environ`` by default; pass ``{}`` to ignore it).
    :param defaults: settings for keys that no file, environment variable or argument sets (lowest precedence;
        the ``ContextEngine`` facade passes ``{"fallback": True}``, the seed's behaviour).
    :param plugins: the plugin manager whose backends read their environment variables and resolve aliases
        (the process-wide one by default).
    :param tiers: False: the environment's variables that choose a tier (``CONTEXTKIT_HOT_URL``, ``REDIS_URL``,
        ...) choose nothing and are not checked (:meth:`ContextKit.from_url` takes the tiers from its URLs).
    :param overrides: explicit settings given as keyword arguments (highest precedence).
    """
    if isinstance(config, KitConfig):
        return replace(config, **overrides) if overrides else config
    environ = os.environ if env is None else env
    manager = plugins if plugins is not None else get_plugin_manager()
    file_path = Path(config) if isinstance(config, (str, os.PathLike)) else None
    explicit = dict(config) if isinstance(config, Mapping) else {}
    explicit.update(overrides)

    layers = [
        _layer_from_mapping(defaults or {}, "defaults"),
        _file_layer(file_path, environ),
        _env_layer(environ, manager, tiers=tiers),
        _layer_from_mapping(explicit, "arguments"),
    ]
    merged: dict[str, Any] = {}
    options: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {}  # backend -> option -> the variable that set it (the last layer's)
    inline: dict[str, dict[str, Any]] = {"hot": {}, "cold": {}}
    labels: dict[str, str] = {}  # key -> how errors name it: with the environment variable that set it

    def label(key: str) -> str:
        return labels.get(key, key)

    for layer, source in zip(layers, ("defaults", "the configuration file", "the environment", "the arguments"), strict=True):
        for backend, opts in _by_backend(layer.get("options", {}), source, manager).items():
            options.setdefault(backend, {}).update(opts)
            layer_sources = layer.get("sources", {}).get(backend, {})
            for key in opts:
                if key in layer_sources:
                    sources.setdefault(backend, {})[key] = layer_sources[key]
                else:
                    sources.get(backend, {}).pop(key, None)
        for tier in ("hot", "cold"):
            if f"{tier}_inline" in layer:
                inline[tier].update(layer[f"{tier}_inline"])
        for key, value in layer.items():
            if key in _TOP_KEYS:
                merged[key] = value
                variable = layer.get("origins", {}).get(key)
                labels[key] = key if variable is None else f"{key} ({variable})"

    # Remembered before anything is validated, so no error raised from here on (ours or a backend's) can show them.
    for backend_options in (*options.values(), *inline.values()):
        remember_secrets(secrets_in(backend_options))
    hot = _backend_name(merged.get("hot", "memory"), "hot", manager) or "memory"
    cold = _backend_name(merged.get("cold"), "cold", manager)
    _check_stray_tables(options, hot, cold, manager)
    namespace = merged.get("namespace", "contextkit")
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise ConfigError(
            f"{label('namespace')} must be 1 to 64 characters of letters, digits, '_', '-' and '.', got "
            f"{str(namespace)[:80]!r}"
        )
    compat = _dataclass_from(CompatConfig, merged.get("compat", {}), "compat")
    if compat.physical_names not in ("contextkit", "aiecs"):
        raise ConfigError(f"compat.physical_names must be 'contextkit' or 'aiecs', got {compat.physical_names!r}")
    cold_options = {**options.get(cold, {}), **inline["cold"]} if cold else {}
    if cold and compat.physical_names == "aiecs":
        # Each cold backend registers the original's names for what it stores (aiecs_options).
        try:
            aiecs = manager.backends.get("cold", cold).aiecs_options
        except BackendNotFound:
            aiecs = {}
        cold_options = {**aiecs, **cold_options}
    result = KitConfig(
        hot=hot,
        cold=cold,
        namespace=namespace,
        session_ttl=_number(merged.get("session_ttl", 86_400.0), label("session_ttl"), float),
        checkpoint_ttl=_number(merged.get("checkpoint_ttl", 604_800.0), label("checkpoint_ttl"), float),
        history_cap=_number(merged.get("history_cap", 1000), label("history_cap"), int),
        timeout=_number(merged.get("timeout", 5.0), label("timeout"), float),
        fallback=_boolean(merged.get("fallback", False), label("fallback")),
        hot_options={**options.get(hot, {}), **inline["hot"]},
        cold_options=cold_options,
        env_variables={
            tier: {k: v for k, v in sources.get(backend, {}).items() if k not in inline[tier]}
            for tier, backend in (("hot", hot), ("cold", cold))
            if backend and sources.get(backend)
        },
        archiver=_dataclass_from(ArchiverConfig, merged.get("archiver", {}), "archiver"),
        tiering=_dataclass_from(TieringConfig, merged.get("tiering", {}), "tiering"),
        limits=_dataclass_from(Limits, merged.get("limits", {}), "limits"),
        compat=compat,
        checkpoints=_checkpoints_config(merged.get("checkpoints", {})),
    )
    return result
