"""Configuration precedence (arguments > environment > TOML file > defaults) and the seed's variables."""

import re
from pathlib import Path

import pytest

from contextkit.config import KitConfig, load_config
from contextkit.errors import ConfigError
from contextkit.masking import mask_secrets
from contextkit.stores import RetentionPolicy


def test_defaults_give_memory_without_cold_tier() -> None:
    config = load_config(env={})
    assert (config.hot, config.cold, config.history_cap, config.session_ttl, config.checkpoint_ttl) == (
        "memory",
        None,
        1000,
        86_400.0,
        604_800.0,
    )


def test_fallback_is_off_by_default() -> None:
    """A hot tier that cannot be reached fails loudly unless fallback is asked for (a typo in a URL must not send
    an application's data to process memory)."""
    assert load_config(env={}).fallback is False
    assert KitConfig().fallback is False
    assert load_config({"fallback": True}, env={}).fallback is True


def test_defaults_are_below_file_environment_and_arguments(tmp_path: Path) -> None:
    """``defaults`` (how the ContextEngine facade keeps the seed's fallback) apply only where nothing else sets
    the key: the file, the environment and the arguments each override them."""
    assert load_config(env={}, defaults={"fallback": True}).fallback is True
    assert load_config(env={"CONTEXTKIT_FALLBACK": "false"}, defaults={"fallback": True}).fallback is False
    assert load_config({"fallback": False}, env={}, defaults={"fallback": True}).fallback is False
    toml = tmp_path / "contextkit.toml"
    toml.write_text("fallback = false\n")
    assert load_config(toml, env={}, defaults={"fallback": True}).fallback is False


def test_arguments_beat_environment_beat_file(tmp_path: Path) -> None:
    toml = tmp_path / "contextkit.toml"
    toml.write_text('hot = "memory"\nnamespace = "from-file"\nhistory_cap = 7\nsession_ttl = 11\n[redis]\nurl = "redis://file"\n')
    env = {"CONTEXTKIT_NAMESPACE": "from-env", "CONTEXTKIT_HISTORY_CAP": "8", "REDIS_URL": "redis://env"}
    config = load_config(toml, env=env, history_cap=9)
    assert config.namespace == "from-env"
    assert config.history_cap == 9
    assert config.session_ttl == 11.0
    assert config.hot == "redis"  # REDIS_URL in the environment selects the redis tier, as in the seed
    assert config.hot_options["url"] == "redis://env"


def test_pyproject_tool_table_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.contextkit]\nnamespace = "pp"\n[tool.contextkit.archiver]\nbatch_size = 42\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert (config.namespace, config.archiver.batch_size) == ("pp", 42)


def test_contextkit_toml_beats_pyproject(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.contextkit]\nnamespace = "pp"\n')
    (tmp_path / "contextkit.toml").write_text('namespace = "ck"\n')
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).namespace == "ck"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("postgres", "postgres"), ("pg", "postgres"), ("postgresql", "postgres"), ("clickhouse", "clickhouse"),
     ("ch", "clickhouse"), ("none", None), ("off", None), ("false", None), ("disabled", None), ("0", None)],
)
def test_seed_permanent_backend_values(value: str, expected: str | None) -> None:
    assert load_config(env={"CONTEXT_PERMANENT_BACKEND": value}).cold == expected


def test_legacy_clickhouse_enabled_only_when_permanent_backend_unset() -> None:
    assert load_config(env={"CLICKHOUSE_ENABLED": "true"}).cold == "clickhouse"
    assert load_config(env={"CLICKHOUSE_ENABLED": "true", "CONTEXT_PERMANENT_BACKEND": "none"}).cold is None


def test_seed_postgres_and_clickhouse_variables_become_options() -> None:
    env = {
        "CONTEXT_PERMANENT_BACKEND": "pg",
        "POSTGRES_URL": "postgresql://main/db",
        "CONTEXT_PG_URL": "postgresql://archive/db",
        "CONTEXT_PG_DATABASE": "archive",
    }
    config = load_config(env=env)
    assert config.cold_options == {"url": "postgresql://archive/db", "database": "archive"}
    env = {"CONTEXT_PERMANENT_BACKEND": "ch", "CLICKHOUSE_HOST": "h", "CLICKHOUSE_PORT": "8124",
           "CLICKHOUSE_USER": "u", "CLICKHOUSE_PASSWORD": "p", "CLICKHOUSE_DATABASE": "d"}
    assert load_config(env=env).cold_options == {"host": "h", "port": "8124", "username": "u", "password": "p",
                                                 "database": "d"}
    assert load_config(env={"CONTEXT_PERMANENT_BACKEND": "pg", "POSTGRES_URL": "postgresql://main/db"}).cold_options == {
        "url": "postgresql://main/db"
    }


def test_seed_redis_variables_become_options() -> None:
    config = load_config(env={"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "1", "REDIS_PASSWORD": "pw"})
    assert config.hot == "redis"
    assert config.hot_options == {"host": "cache", "port": "6380", "db": "1", "password": "pw"}


def test_inline_tier_tables() -> None:
    config = load_config({"hot": {"backend": "sqlite", "path": "x.db"}, "cold": {"backend": "sqlite", "path": "y.db"}},
                         env={})
    assert (config.hot_options, config.cold_options) == ({"path": "x.db"}, {"path": "y.db"})


@pytest.mark.parametrize(
    "bad",
    [{"hot": "none"}, {"history_cap": 0}, {"timeout": -1}, {"session_ttl": "soon"}, {"fallback": "maybe"},
     {"bogus_key": 1}, {"namespace": "has space"}, {"archiver": {"nope": 1}}, {"limits": {"max_id_length": "x"}},
     {"hot": {"url": "x"}}],
)
def test_bad_configuration_raises_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        load_config(bad, env={})


def test_missing_or_broken_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("hot = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken, env={})


def test_describe_masks_secrets() -> None:
    config = load_config(
        {"hot": {"backend": "redis", "url": "redis://user:hunter2@h:6379/0", "password": "hunter2"}}, env={}
    )
    text = repr(config.describe())
    assert "hunter2" not in text
    assert "redis://user:***@h:6379/0" in text
    assert mask_secrets("postgresql://postgres@127.0.0.1/test") == "postgresql://postgres@127.0.0.1/test"


def test_kitconfig_passthrough_applies_overrides() -> None:
    base = KitConfig(namespace="a")
    assert load_config(base, namespace="b").namespace == "b"


def test_passwords_from_the_environment_keep_their_spaces() -> None:
    """Other variables are stripped; a password is taken as written (a space at either end is part of it)."""
    config = load_config(
        env={
            "REDIS_HOST": " 127.0.0.1 ",
            "REDIS_PASSWORD": " r pw ",
            "CONTEXT_PERMANENT_BACKEND": "clickhouse",
            "CLICKHOUSE_HOST": " 127.0.0.1",
            "CLICKHOUSE_PASSWORD": " c pw\t",
        }
    )
    assert config.hot_options["host"] == "127.0.0.1" and config.hot_options["password"] == " r pw "
    assert config.cold_options["host"] == "127.0.0.1" and config.cold_options["password"] == " c pw\t"


def test_a_bad_value_from_a_backend_variable_names_the_variable() -> None:
    """The redis plugin reads REDIS_PORT; when its value is refused, the error says it came from REDIS_PORT (the
    core names no backend variable: the plugin reports where each option came from). An option set explicitly is
    not blamed on the environment."""
    from contextkit import ContextKit

    config = load_config(env={"REDIS_HOST": "cache", "REDIS_PORT": "six"})
    assert config.env_variables == {"hot": {"host": "REDIS_HOST", "port": "REDIS_PORT"}}
    with pytest.raises(ConfigError, match="port from REDIS_PORT"):
        ContextKit.from_config(env={"REDIS_HOST": "cache", "REDIS_PORT": "six"})
    with pytest.raises(ConfigError, match="CONTEXT_PG_URL"):
        ContextKit.from_config(env={"CONTEXT_PERMANENT_BACKEND": "pg", "CONTEXT_PG_URL": "mysql://h/db"})
    explicit = load_config({"redis": {"port": "seven"}}, env={"REDIS_HOST": "cache", "REDIS_PORT": "six"})
    assert explicit.env_variables == {"hot": {"host": "REDIS_HOST"}}
    with pytest.raises(ConfigError) as refused:
        ContextKit.from_config({"redis": {"port": "seven"}}, env={"REDIS_HOST": "cache", "REDIS_PORT": "six"})
    assert "REDIS_PORT" not in str(refused.value)


def test_a_seed_variable_of_a_missing_plugin_is_reported_not_ignored() -> None:
    """REDIS_URL without contextkit-redis installed: nobody reads the variable, yet the kit does not run on the
    memory tier as if it were unset; it raises BackendNotFound with the command that installs the plugin. A value
    from the off list (CLICKHOUSE_ENABLED=false) selects nothing."""
    from contextkit import ContextKit
    from contextkit.errors import BackendNotFound
    from contextkit.plugins import PluginManager

    bare = PluginManager(load_entrypoints=False)  # no backend plugin at all
    assert load_config(env={"REDIS_URL": "redis://cache:6379/0"}, plugins=bare).hot == "redis"
    assert load_config(env={"CLICKHOUSE_ENABLED": "true"}, plugins=bare).cold == "clickhouse"
    assert load_config(env={"CLICKHOUSE_ENABLED": "false"}, plugins=bare).cold is None
    assert load_config(env={"REDIS_URL": "redis://cache", "CONTEXTKIT_HOT": "memory"}, plugins=bare).hot == "memory"
    with pytest.raises(BackendNotFound, match="scripts/install redis"):
        ContextKit.from_config(env={"REDIS_URL": "redis://cache:6379/0"}, plugins=bare)


def test_checkpoints_section_gives_the_retention_policy(tmp_path: Path) -> None:
    """``[checkpoints]`` sets the retention policy: ``max_age`` in seconds or with a unit, 0/absent limits off."""
    path = tmp_path / "contextkit.toml"
    path.write_text('[checkpoints]\nkeep_latest = 20\nmax_age = "30d"\nkeep_first = true\nprune_every = 5\n')
    config = load_config(path, env={})
    assert config.checkpoints.retention == RetentionPolicy(keep_latest=20, max_age=30 * 86_400.0, keep_first=True)
    assert config.checkpoints.prune_every == 5
    assert load_config({"checkpoints": {"max_age": "90"}}, env={}).checkpoints.retention.max_age == 90.0
    assert load_config({"checkpoints": {"max_age": 1.5}}, env={}).checkpoints.retention.max_age == 1.5
    default = load_config({}, env={}).checkpoints
    assert not default.retention.limits and default.prune_every == 0
    assert not load_config({"checkpoints": {"keep_latest": 0, "max_age": 0}}, env={}).checkpoints.retention.limits


@pytest.mark.parametrize(
    "section",
    [
        {"keep_latest": -1},
        {"keep_latest": "many"},
        {"max_age": "3 weeks"},
        {"max_age": -5},
        {"keep_first": "perhaps"},
        {"prune_every": -2},
        {"keep": 3},
    ],
)
def test_checkpoints_section_refuses_bad_values(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_config({"checkpoints": section}, env={})


def test_describe_shows_the_checkpoints_section() -> None:
    described = load_config({"checkpoints": {"keep_latest": 5, "compress_above": 0}}, env={}).describe()
    assert described["checkpoints"]["keep_latest"] == 5
    assert described["checkpoints"]["compression"] is None and described["checkpoints"]["max_age"] is None


def test_a_tier_url_variable_selects_the_backend_its_scheme_names() -> None:
    """CONTEXTKIT_HOT_URL / CONTEXTKIT_COLD_URL pick their backend by the URL's scheme, as ContextKit.from_url does
    (the cold URL was ignored without CONTEXTKIT_COLD: no archive, and nothing said so)."""
    config = load_config(env={"CONTEXTKIT_HOT_URL": "sqlite:///app.db"})
    assert (config.hot, config.hot_options) == ("sqlite", {"url": "sqlite:///app.db"})
    config = load_config(env={"CONTEXTKIT_HOT_URL": "rediss://cache:6380/1"})
    assert (config.hot, config.hot_options) == ("redis", {"url": "rediss://cache:6380/1"})
    config = load_config(env={"CONTEXTKIT_HOT_URL": "memory://"})
    assert (config.hot, config.hot_options) == ("memory", {})  # the memory tier takes no url option
    config = load_config(env={"CONTEXTKIT_COLD_URL": "postgresql://pg:5432/app"})
    assert (config.hot, config.cold, config.cold_options) == ("memory", "postgres", {"url": "postgresql://pg:5432/app"})
    # the generic variable agreeing with the URL (by name or alias), and the environment over the file
    assert load_config(env={"CONTEXTKIT_HOT": "sqlite", "CONTEXTKIT_HOT_URL": "sqlite:///a.db"}).hot == "sqlite"
    agreed = load_config(env={"CONTEXT_PERMANENT_BACKEND": "pg", "CONTEXTKIT_COLD_URL": "postgresql://pg/app"})
    assert agreed.cold == "postgres"
    assert load_config({"namespace": "n"}, env={"CONTEXTKIT_HOT_URL": "sqlite:///a.db"}).hot == "sqlite"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"CONTEXTKIT_HOT": "redis", "CONTEXTKIT_HOT_URL": "sqlite:///a.db"}, ["CONTEXTKIT_HOT_URL", "CONTEXTKIT_HOT ", "redis"]),
        (
            {"CONTEXT_PERMANENT_BACKEND": "none", "CONTEXTKIT_COLD_URL": "postgresql://u:hunter2@pg/app"},
            ["CONTEXTKIT_COLD_URL", "CONTEXT_PERMANENT_BACKEND", "off"],
        ),
        ({"CONTEXTKIT_COLD": "clickhouse", "CONTEXTKIT_COLD_URL": "postgresql://pg/app"}, ["CONTEXTKIT_COLD ", "clickhouse"]),
        ({"REDIS_URL": "redis://cache", "CONTEXTKIT_HOT_URL": "sqlite:///a.db"}, ["redis and sqlite", "CONTEXTKIT_HOT"]),
        ({"CONTEXTKIT_HOT_URL": "postgresql://u:hunter2@pg/app"}, ["CONTEXTKIT_HOT_URL", "CONTEXTKIT_COLD_URL"]),
        ({"CONTEXTKIT_COLD_URL": "redis://cache"}, ["CONTEXTKIT_COLD_URL", "CONTEXTKIT_HOT_URL"]),
        ({"CONTEXTKIT_HOT_URL": "cache:6379"}, ["CONTEXTKIT_HOT_URL", "is not a URL"]),
    ],
)
def test_a_tier_url_variable_that_disagrees_or_names_no_tier_is_refused(env: dict[str, str], words: list[str]) -> None:
    """A URL variable naming another backend than the tier's variable, another tier, or nothing: ConfigError naming
    the variables, the password never shown."""
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    message = str(info.value)
    for word in words:
        assert word in message, message
    assert "hunter2" not in message


def test_a_tier_url_variable_of_no_installed_backend_names_the_installed_ones() -> None:
    """A scheme no installed backend registers: the installed ones, and that the tier variable can name the
    backend the URL is for (ClickHouse takes http:// URLs, a scheme of no backend's own)."""
    with pytest.raises(ConfigError, match=r"mongodb.*installed: memory.*set CONTEXTKIT_HOT to the backend"):
        load_config(env={"CONTEXTKIT_HOT_URL": "mongodb://db/app"})
    with pytest.raises(ConfigError, match="set CONTEXTKIT_COLD to the backend"):
        load_config(env={"CONTEXTKIT_COLD_URL": "http://127.0.0.1:8123"})
    named = load_config(env={"CONTEXTKIT_COLD": "clickhouse", "CONTEXTKIT_COLD_URL": "http://127.0.0.1:8123"})
    assert (named.cold, named.cold_options) == ("clickhouse", {"url": "http://127.0.0.1:8123"})
    named = load_config(env={"CONTEXT_PERMANENT_BACKEND": "ch", "CONTEXTKIT_COLD_URL": "clickhouses://h:8443/db"})
    assert (named.cold, named.cold_options) == ("clickhouse", {"url": "clickhouses://h:8443/db"})
    assert load_config(env={"CONTEXTKIT_HOT": "memory", "CONTEXTKIT_HOT_URL": "memory://"}).hot_options == {}


def test_from_url_takes_its_tiers_from_its_urls_whatever_the_environment_says() -> None:
    """ContextKit.from_url reads no tier from the environment, so tier variables that would be refused there
    (disagreeing, naming another tier) do not stop it."""
    from contextkit.kit import ContextKit

    env = {
        "CONTEXTKIT_HOT": "redis",
        "CONTEXTKIT_HOT_URL": "postgresql://pg/app",
        "CONTEXT_PERMANENT_BACKEND": "none",
        "CONTEXTKIT_COLD_URL": "redis://cache",
        "CONTEXTKIT_NAMESPACE": "from-env",
    }
    kit = ContextKit.from_url("memory://", env=env)
    assert (kit.config.hot, kit.config.cold, kit.config.namespace) == ("memory", None, "from-env")


def test_a_backend_table_named_by_an_alias_is_the_backends(tmp_path: Path) -> None:
    """[pg] is postgres's table, as cold = "pg" is postgres; the environment still wins over the file, and two
    tables of one file setting the same option are refused."""
    toml = tmp_path / "contextkit.toml"
    toml.write_text('cold = "postgres"\n[pg]\nurl = "postgresql://file/app"\nmin_size = 2\n')
    config = load_config(toml, env={})
    assert config.cold_options == {"url": "postgresql://file/app", "min_size": 2}
    config = load_config(toml, env={"CONTEXT_PG_URL": "postgresql://env/app"})
    assert config.cold_options == {"url": "postgresql://env/app", "min_size": 2}
    toml.write_text('cold = "postgres"\n[pg]\nurl = "postgresql://a/app"\n[postgres]\nurl = "postgresql://b/app"\n')
    with pytest.raises(ConfigError, match=r"\[pg\] and \[postgres\] both set postgres option 'url'"):
        load_config(toml, env={})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[checkpoint]\nkeep_latest = 5\n", ["[checkpoint]", "did you mean [checkpoints]"]),
        ("[archivers]\nbatch_size = 5\n", ["[archivers]", "did you mean [archiver]"]),
        ('hot = "redis"\n[rediss]\nurl = "redis://cache:6380/0"\n', ["[rediss]", "did you mean [redis]"]),
        ('cold = "postgres"\n[postgress]\nurl = "postgresql://pg/app"\n', ["[postgress]", "did you mean [postgres]"]),
    ],
)
def test_a_table_that_looks_like_a_typo_is_refused_not_ignored(tmp_path: Path, text: str, words: list[str]) -> None:
    """A misspelt section would leave its settings unapplied (no retention), a misspelt table of the backend in
    use would run that tier on its defaults (another server): both raise ConfigError."""
    toml = tmp_path / "contextkit.toml"
    toml.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(toml, env={})
    for word in words:
        assert word in str(info.value), str(info.value)


def test_tables_of_backends_not_installed_here_are_kept(tmp_path: Path) -> None:
    """A table of a backend whose plugin is not installed in this environment (nor close to a section or to the
    backend in use) is not an error: one file can serve environments with different plugins."""
    toml = tmp_path / "contextkit.toml"
    toml.write_text('hot = "redis"\n[redis]\nurl = "redis://cache"\n[mongodb]\nuri = "mongodb://db"\n[redis_two]\nurl = "x"\n')
    config = load_config(toml, env={})
    assert (config.hot, config.hot_options) == ("redis", {"url": "redis://cache"})


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("CONTEXTKIT_TIMEOUT", "0", "timeout (CONTEXTKIT_TIMEOUT) must be a positive number"),
        ("CONTEXTKIT_HISTORY_CAP", "many", "history_cap (CONTEXTKIT_HISTORY_CAP) must be a finite number"),
        ("CONTEXTKIT_SESSION_TTL", "inf", "session_ttl (CONTEXTKIT_SESSION_TTL) must be a finite number"),
        ("CONTEXTKIT_FALLBACK", "maybe", "fallback (CONTEXTKIT_FALLBACK) must be true or false"),
        ("CONTEXTKIT_NAMESPACE", "a:b", "namespace (CONTEXTKIT_NAMESPACE) must be 1 to 64 characters"),
    ],
)
def test_a_bad_value_from_the_environment_names_its_variable(variable: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        load_config(env={variable: value})
    # set by the arguments over the environment, the value is the argument's, and so is the message
    key = words.split(" ", 1)[0]
    with pytest.raises(ConfigError) as info:
        load_config({key: value}, env={variable: value})
    assert variable not in str(info.value)
