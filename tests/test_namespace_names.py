"""Physical names from namespaces never collide (design section 3b, invariant 7): the names themselves, no server.

Every backend turns the namespace into a physical name: the Redis key prefix, the PostgreSQL schema, the ClickHouse
table prefix and the table of the SQLite outbox (the SQLite hot and cold tiers keep the namespace in a column of
fixed tables, so they need no name). Each is a reversible escaping of the namespace, so two namespaces can only
meet where a backend falls back to a hashed name (a PostgreSQL schema past 63 bytes, a ClickHouse prefix past the
file-name bound); those names carry an owner record that the real-server tests (``tests/integration``) show
refusing a second namespace. Plain identifiers keep the names earlier versions gave them, so their archives are
found where they are.
"""

from __future__ import annotations

import random
import re
import string
from urllib.parse import unquote

from hypothesis import given, settings
from hypothesis import strategies as st

from contextkit.naming import identifier_name, percent_name, unescape_identifier_name, unescape_percent_name
from contextkit.records import ARCHIVE_TABLES
from contextkit.stores import StoreSettings
from contextkit_clickhouse.schema import MAX_TABLE_FILE_NAME, OWNER_TABLE, legacy_table_prefix_for, table_prefix_for
from contextkit_postgres.options import legacy_schema_from_namespace, schema_from_namespace
from contextkit_redis.keys import KeyLayout
from contextkit_sqlite import SqliteHotStore

#: Any text a store can be given as its namespace (the configuration accepts less, see CONFIG_NAMESPACES).
NAMESPACES = st.text(min_size=1, max_size=90)
#: What ``load_config`` accepts as a namespace.
CONFIG_NAMESPACES = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
#: Identifiers earlier versions used as they were: they must keep their schema and table prefix.
PLAIN_IDENTIFIERS = st.from_regex(r"[a-z_][a-z0-9_]{0,39}", fullmatch=True).filter(lambda s: not s.startswith("pg_"))
#: Every table name a ClickHouse prefix goes in front of (the local tables of a cluster included).
CLICKHOUSE_TABLES = (*ARCHIVE_TABLES, *(f"{t}_local" for t in ARCHIVE_TABLES), "schema_migrations", OWNER_TABLE)


def redis_prefix(namespace: str) -> str:
    return KeyLayout(namespace).prefix


def sqlite_outbox(namespace: str) -> str:
    return SqliteHotStore(StoreSettings(namespace=namespace), {"path": ":memory:"}).outbox_table


def _decodes_to(name: str, namespace: str) -> bool:
    """True when ``name`` is the percent name of ``namespace`` (the PostgreSQL ``%70g_`` spelling included)."""
    try:
        return unquote(name, errors="strict") == namespace
    except UnicodeDecodeError:
        return False


def schema_fits(namespace: str) -> bool:
    """The namespace's percent name (a leading ``pg_``, reserved, written ``%70g_``) fits a PostgreSQL identifier
    (63 bytes): its schema must decode back to it."""
    name = percent_name(namespace)
    return 0 < len(name) + (2 if name.startswith("pg_") else 0) <= 63


def prefix_fits(namespace: str) -> bool:
    """Its ClickHouse tables' names fit the file-name bound (a character outside ``[A-Za-z0-9_]`` takes three
    bytes in a ClickHouse file name): its table prefix must decode back to it."""
    longest = percent_name(namespace) + "_context_conversation_sessions_local"
    return sum(1 if re.fullmatch(r"[A-Za-z0-9_]", c) else 3 for c in longest) <= MAX_TABLE_FILE_NAME


def assert_apart(a: str, b: str) -> None:
    """Two different namespaces share no key prefix, schema, table or outbox table on any backend."""
    assert a != b
    # Redis: prefix-free, so no key of one namespace can be a key of the other.
    pa, pb = redis_prefix(a), redis_prefix(b)
    assert not pa.startswith(pb) and not pb.startswith(pa), (a, b, pa, pb)
    # PostgreSQL: a schema decoding back to its namespace is that namespace's alone. Only a namespace too long for
    # a reversible name gets a hashed one, which the owner record guards (tests/integration/test_namespace_owners).
    sa, sb = schema_from_namespace(a), schema_from_namespace(b)
    for namespace, schema in ((a, sa), (b, sb)):
        assert not schema_fits(namespace) or _decodes_to(schema, namespace), (namespace, schema)
    assert sa != sb or not (schema_fits(a) and schema_fits(b))
    # ClickHouse: no full table name in common, under the same rule for the hashed fallback.
    ca, cb = table_prefix_for(a), table_prefix_for(b)
    for namespace, prefix in ((a, ca), (b, cb)):
        assert not prefix_fits(namespace) or _decodes_to(prefix[:-1], namespace), (namespace, prefix)
    if {ca + t for t in CLICKHOUSE_TABLES} & {cb + t for t in CLICKHOUSE_TABLES}:
        assert not (prefix_fits(a) and prefix_fits(b)), (a, b, ca, cb)
    # SQLite compares table names without regard to case.
    assert sqlite_outbox(a).lower() != sqlite_outbox(b).lower(), (a, b)


# -- the escapings -----------------------------------------------------------------------------------------------
@given(NAMESPACES)
def test_percent_names_decode_back_and_hold_no_separator(namespace: str) -> None:
    name = percent_name(namespace)
    assert unescape_percent_name(name) == namespace
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]+", name)


@given(NAMESPACES)
def test_identifier_names_decode_back_and_are_lowercase_identifiers(namespace: str) -> None:
    name = identifier_name(namespace)
    assert unescape_identifier_name(name) == namespace
    assert re.fullmatch(r"[a-z0-9_]+", name)


@given(CONFIG_NAMESPACES)
def test_every_configurable_namespace_is_its_own_percent_name_and_redis_prefix(namespace: str) -> None:
    """Redis keys of every namespace the configuration accepts stay where earlier versions put them."""
    assert percent_name(namespace) == namespace
    assert redis_prefix(namespace) == namespace + ":"


@given(PLAIN_IDENTIFIERS)
def test_plain_identifiers_keep_their_schema_and_table_prefix(namespace: str) -> None:
    """``contextkit``, ``myapp``, ``my_app``: the schema and table prefix of earlier versions, unchanged."""
    assert schema_from_namespace(namespace) == legacy_schema_from_namespace(namespace) == namespace
    assert table_prefix_for(namespace) == legacy_table_prefix_for(namespace) == namespace + "_"


# -- injectivity ---------------------------------------------------------------------------------------------------
def test_a_and_its_old_hashed_name_get_different_names_everywhere() -> None:
    """The reported collision: ``a_`` + 8 hex of sha1("A") was the schema and prefix of both namespaces."""
    assert legacy_schema_from_namespace("A") == "a_6dcd4ce2" == legacy_schema_from_namespace("a_6dcd4ce2")
    assert legacy_table_prefix_for("A") == legacy_table_prefix_for("a_6dcd4ce2")
    assert (schema_from_namespace("A"), schema_from_namespace("a_6dcd4ce2")) == ("A", "a_6dcd4ce2")
    assert (table_prefix_for("A"), table_prefix_for("a_6dcd4ce2")) == ("A_", "a_6dcd4ce2_")
    assert (redis_prefix("A"), redis_prefix("a_6dcd4ce2")) == ("A:", "a_6dcd4ce2:")
    assert_apart("A", "a_6dcd4ce2")
    for a, b in [("a", "a:b"), ("a", "A"), ("a-b", "a_b"), ("pg_x", "%70g_x"), ("x%3Ay", "x:y"), ("a.b", "a_b")]:
        assert_apart(a, b)


def _near_names(namespace: str) -> list[str]:
    """Namespaces built to collide with ``namespace`` under a lossy mapping: its old names, case and punctuation
    variants, its escapings taken as namespaces, and extensions by a separator."""
    candidates = [
        legacy_schema_from_namespace(namespace),
        legacy_table_prefix_for(namespace).rstrip("_"),
        legacy_table_prefix_for(namespace)[:-1],
        namespace.lower(),
        namespace.upper(),
        namespace.swapcase(),
        re.sub(r"[^a-z0-9_]", "_", namespace.lower()),
        percent_name(namespace),
        identifier_name(namespace),
        schema_from_namespace(namespace),
        table_prefix_for(namespace),
        namespace + ":x",
        namespace + "_",
        namespace[:-1] or "x",
        "pg_" + namespace,
    ]
    return [c for c in candidates if c and c != namespace]


@settings(max_examples=300)
@given(NAMESPACES, st.data())
def test_generated_namespaces_and_their_near_names_never_share_a_physical_name(namespace: str, data: st.DataObject) -> None:
    other = data.draw(st.one_of(NAMESPACES, st.sampled_from(_near_names(namespace) or ["x"])))
    if other != namespace:
        assert_apart(namespace, other)


def _random_namespace(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:  # what the configuration accepts
        alphabet = string.ascii_letters + string.digits + "_.-"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 64)))
    if kind < 0.8:  # plain identifiers, the names of earlier versions' kind
        return "".join(rng.choice(string.ascii_lowercase + string.digits + "_") for _ in range(rng.randint(1, 70)))
    alphabet = string.printable + "äöüßé中文•ᴥ%:{}\u00a0"  # anything a store may be given directly
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))


def test_ten_thousand_generated_namespace_pairs_share_no_key_prefix_schema_or_table_prefix() -> None:
    """10,000 pairs (a fixed seed, so a failure reproduces): half random, half built to collide (old names, case
    and punctuation variants, escapings); none shares a Redis prefix, SQLite outbox, or a schema / table prefix
    outside the owner-guarded hashed fallback."""
    rng = random.Random(20240515)
    pairs = 0
    while pairs < 10_000:
        a = _random_namespace(rng)
        b = rng.choice(_near_names(a)) if pairs % 2 else _random_namespace(rng)
        if a == b:
            continue
        assert_apart(a, b)
        pairs += 1


def test_clickhouse_table_names_are_suffix_free() -> None:
    """No table name is another one with something in front, so distinct prefixes never give one table name."""
    for first in CLICKHOUSE_TABLES:
        for second in CLICKHOUSE_TABLES:
            assert first == second or not first.endswith(second), (first, second)


def test_hashed_fallbacks_are_only_for_names_that_do_not_fit() -> None:
    """Every namespace gets a reversible schema and prefix unless its percent name is too long (64 characters, or
    many escaped ones), where the owner record takes over."""
    for namespace in ("contextkit", "My-App.v2", "pg_stats", "9lives", "x" * 63, "中文"):
        assert schema_fits(namespace) and _decodes_to(schema_from_namespace(namespace), namespace)
    assert not schema_fits("x" * 64)
    assert schema_from_namespace("x" * 64) == legacy_schema_from_namespace("x" * 64)  # as earlier versions named it
    assert prefix_fits("x" * 64) and _decodes_to(table_prefix_for("x" * 64)[:-1], "x" * 64)
    assert not prefix_fits("." * 64)
