"""contextkit.masking: the one function that hides secrets, on every form a password takes in text (no server).

The property tests draw passwords (and user names) full of URL delimiters and quotes and put them in every form
the brief lists: raw and percent-encoded user info, URL query parameters, libpq keyword strings (quoted, escaped or
bare), DSNs inside driver error texts, reprs of option mappings and JSON. The end-to-end proof, on real servers and
through errors, reprs, health, metrics, the CLI and logs, is ``tests/security/test_secrets_never_leak.py``.
"""

from __future__ import annotations

import json
import logging
import string
import time
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from contextkit import masking
from contextkit.config import load_config
from contextkit.errors import ConfigError
from contextkit.masking import (
    MASK,
    SECRET_FILTER,
    check_url_credentials,
    mask_secrets,
    remember_secrets,
    secrets_in,
)

#: Printable ASCII without whitespace: what a password in a URL can hold.
_NO_SPACE = "".join(c for c in string.printable if not c.isspace())
PASSWORDS = st.tuples(
    st.text(alphabet=_NO_SPACE, max_size=10),
    st.sampled_from("#/?@:%'\"\\&="),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=4, max_size=8),
    st.text(alphabet=_NO_SPACE, max_size=10),
).map("".join)
#: User names may hold delimiters too (an '@' or ':' in a user name is where parsers disagree).
USERS = st.text(alphabet=string.ascii_letters + string.digits + "._-@", min_size=1, max_size=10)
SCHEMES = st.sampled_from(["redis", "rediss", "postgresql", "postgres", "http", "https", "clickhouse"])
#: Masking is cheap: many examples per property.
MANY = settings(max_examples=500)


@pytest.fixture(autouse=True)
def _forget_remembered_secrets() -> Iterator[None]:
    """Secrets drawn here are remembered for the process; forget them afterwards, so later tests' texts are not
    masked by a drawn string that happens to match them."""
    known = masking._KNOWN
    before = (known.secrets, known.pattern)
    yield
    known.secrets, known.pattern = before


def _hidden(text: str, secret: str) -> bool:
    return secret not in text and quote(secret, safe="") not in text


# -- URLs ------------------------------------------------------------------------------------------------------------
@MANY
@given(scheme=SCHEMES, user=USERS, password=PASSWORDS)
def test_a_raw_password_in_a_url_inside_a_driver_message_is_hidden(scheme: str, user: str, password: str) -> None:
    """``scheme://user:password@host``, the password as typed (``#``, ``/``, ``?``, ``@``, ``:`` unencoded), inside
    the text of a driver error: the user info up to the URL's last ``@`` is masked, the host and the rest stay."""
    text = f"could not connect to {scheme}://{user}:{password}@db.example:5432/app (connection refused)"
    assume(_hidden(text.replace(password, MASK, 1), password))
    masked = mask_secrets(text)
    assert _hidden(masked, password)
    assert masked.endswith("@db.example:5432/app (connection refused)")
    assert mask_secrets(masked) == masked


@MANY
@given(scheme=SCHEMES, user=USERS, password=PASSWORDS)
def test_a_percent_encoded_password_in_a_url_is_hidden_in_both_forms(scheme: str, user: str, password: str) -> None:
    url = f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@h:1/db?sslmode=require"
    expected = f"target {scheme}://{quote(user, safe='')}:{MASK}@h:1/db?sslmode=require"
    assume(_hidden(expected, password))  # a password such as "/0000" can be a piece of the rest of the URL
    assert mask_secrets(f"target {url}") == expected


@given(password=PASSWORDS)
def test_a_lone_redis_user_info_is_the_password_and_is_hidden(password: str) -> None:
    """redis-py reads ``redis://secret@host`` as a password: it is masked whole."""
    assume(":" not in password and _hidden("redis://***@h:6379/0 rediss://***@h:6379/0", password))
    assert _hidden(mask_secrets(f"redis://{quote(password, safe='')}@h:6379/0"), password)
    assert _hidden(mask_secrets(f"rediss://{password}@h:6379/0"), password)


@given(password=PASSWORDS, key=st.sampled_from(["password", "sslpassword", "PASSWORD", "auth_token", "secret"]))
def test_a_password_in_a_url_query_is_hidden(password: str, key: str) -> None:
    masked = mask_secrets(f"unix:///tmp/redis.sock?db=1&{key}={quote(password, safe='')}&x=y")
    assert masked == f"unix:///tmp/redis.sock?db=1&{key}={MASK}&x=y"
    assert masked.endswith("&x=y")


def test_urls_without_a_password_are_left_as_they_are() -> None:
    for text in (
        "postgresql://postgres@127.0.0.1/test",
        "redis://127.0.0.1:6379/0",
        "unix:///tmp/r.sock?db=1",
        "http://127.0.0.1:8123 answered 500",
        "password authentication failed for user \"ckapp\"",
        "a plain sentence with user@example.com in it",
    ):
        assert mask_secrets(text) == text


# -- libpq keyword strings and mapping reprs -------------------------------------------------------------------------
@MANY
@given(password=PASSWORDS)
def test_a_quoted_libpq_keyword_password_is_hidden(password: str) -> None:
    """``password='...'`` with libpq's backslash escapes, and the SQL doubling of quotes, whole."""
    backslashed = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    doubled = "'" + password.replace("'", "''") + "'"
    for literal in (backslashed, doubled):
        text = f"invalid DSN: host=db port=5432 password={literal} dbname=app user=me"
        assert mask_secrets(text) == "invalid DSN: host=db port=5432 password='***' dbname=app user=me"


@given(password=PASSWORDS)
def test_a_bare_libpq_keyword_password_is_hidden(password: str) -> None:
    assume(not any(c in password for c in "'\"&"))
    assert mask_secrets(f"host=db password = {password} dbname=app") == "host=db password = *** dbname=app"


@MANY
@given(password=PASSWORDS)
def test_a_password_in_the_repr_or_json_of_options_is_hidden(password: str) -> None:
    options = {"url": "redis://h:6379/0", "password": password, "sslpassword": password}
    masked = {"url": "redis://h:6379/0", "password": MASK, "sslpassword": MASK}
    assume(_hidden(repr(masked) + json.dumps(masked), password))
    assert mask_secrets(json.dumps(options)) == json.dumps(masked)
    shown = mask_secrets(repr(options))  # repr quotes a string holding ' with ": the mask keeps either quote
    assert _hidden(shown, password) and shown.replace('"', "'") == repr(masked)


# -- remembered secrets ----------------------------------------------------------------------------------------------
@given(password=st.text(min_size=4, max_size=30).map(lambda s: "ckmask-" + s))
def test_a_remembered_secret_is_hidden_in_any_text_and_any_escaping(password: str) -> None:
    """Once remembered (option parsers do it), a secret is hidden wherever it shows: bare text, JSON- and
    repr-escaped, percent-encoded."""
    remember_secrets([password])
    for text in (
        f"driver said: auth {password} refused",
        json.dumps({"detail": f"x{password}y"}),
        repr([password]),
        f"redis://h/0?p={quote(password, safe='')}",
    ):
        masked = mask_secrets(text)
        assert password not in masked and quote(password, safe="") not in masked, masked


def test_short_secrets_are_not_remembered_but_are_hidden_in_context() -> None:
    """A two-letter password would mangle every message if hidden everywhere; it is still hidden in its URL."""
    remember_secrets(["pw"])
    assert mask_secrets("pwd is the working directory") == "pwd is the working directory"
    assert mask_secrets("redis://:pw@h/0") == f"redis://:{MASK}@h/0"
    assert mask_secrets("error in pw", ["pw"]) == f"error in {MASK}"


@MANY
@given(password=PASSWORDS, user=USERS)
def test_secrets_in_finds_the_password_of_every_configuration_form(password: str, user: str) -> None:
    forms = [
        {"url": f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@h/db"},
        {"url": f"redis://:{password}@h:6379/0"},
        {"url": "redis://h:6379/0", "password": password},
        {"url": f"unix:///tmp/r.sock?password={quote(password, safe='')}"},
        {"url": "host=h password='" + password.replace("\\", "\\\\").replace("'", "\\'") + "' dbname=x"},
        {"nested": {"client_secret": password}},
    ]
    for options in forms:
        assert password in secrets_in(options), options


def test_load_config_remembers_secrets_before_anything_can_fail() -> None:
    """A password in a configuration that is then refused never shows in the refusal (nor later)."""
    secret = "ckmask-" + "Zq#/?@:x"
    with pytest.raises(ConfigError) as caught:
        load_config({"hot": "redis", "redis": {"password": secret}, "session_ttl": -1}, env={})
    assert secret not in str(caught.value)
    assert secret not in mask_secrets(f"anything mentioning {secret}")


# -- refusing URLs parsers would cut apart ---------------------------------------------------------------------------
@given(scheme=SCHEMES, password=PASSWORDS)
def test_urls_whose_user_info_parsers_would_cut_apart_are_refused_without_showing_them(scheme: str, password: str) -> None:
    url = f"{scheme}://me:{password}@h:1/db"
    try:
        urlsplit(url)
    except ValueError:  # an unbalanced '[' or ']' in the password: urllib cannot split the URL at all
        with pytest.raises(ConfigError) as caught:
            check_url_credentials(url, "test url")
        assert password not in str(caught.value) and "%5B" in str(caught.value)
        return
    if any(c in password for c in "/?#"):
        with pytest.raises(ConfigError) as caught:
            check_url_credentials(url, "test url")
        assert password not in str(caught.value) and "%2F" in str(caught.value)
    else:
        check_url_credentials(url, "test url")  # an unencoded '@' or ':' is read the same by urllib and redis-py
    if "@" in password:
        with pytest.raises(ConfigError):
            check_url_credentials(url, "test url", single_at=True)  # asyncpg ends the user info at the first '@'
    check_url_credentials(f"{scheme}://me:{quote(password, safe='')}@h:1/db", "test url", single_at=True)


def test_a_url_urllib_cannot_split_is_refused_without_showing_it() -> None:
    """A raw '[' in a password reads as a broken IPv6 host: a ConfigError naming the fix, not urllib's ValueError."""
    with pytest.raises(ConfigError, match="%5B") as caught:
        check_url_credentials("http://ck:pa[ss@127.0.0.1:8123/default", "clickhouse url")
    assert "pa[ss" not in str(caught.value)


def test_an_at_sign_in_a_query_must_be_encoded() -> None:
    with pytest.raises(ConfigError, match="%40"):
        check_url_credentials("postgresql://h:5432/db?application_name=a@b", "postgres url")
    check_url_credentials("postgresql://h:5432/db?application_name=a%40b", "postgres url")


# -- logs ------------------------------------------------------------------------------------------------------------
def test_the_filter_masks_messages_arguments_and_tracebacks_of_every_contextkit_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "ckmask-Lo#g?/x"
    remember_secrets([secret])
    logger = logging.getLogger("contextkit.archiver")
    assert SECRET_FILTER in logger.filters
    with caplog.at_level(logging.DEBUG, logger="contextkit"):
        try:
            raise RuntimeError(f"driver: postgresql://u:{secret}@h/db refused")
        except RuntimeError:
            logger.debug("failed on %s", f"redis://:{secret}@h:6379/0", exc_info=True)
    text = caplog.text + "".join(logging.Formatter().format(record) for record in caplog.records)
    assert secret not in text and quote(secret, safe="") not in text
    assert "failed on redis://:***@h:6379/0" in text and "RuntimeError" in text


def test_masking_adversarial_megabyte_texts_never_hangs() -> None:
    """Every error and log line goes through mask_secrets, so it must stay linear: texts built to make a
    backtracking pattern quadratic (long runs of name or scheme characters, thousands of '://' or secret words
    without a value, unterminated quotes) are masked in well under the bound (a quadratic masker takes hours on
    them). A hang guard, not a performance bar."""
    texts = [
        "password" * 150_000,
        "x://" * 300_000,
        "x://a@" * 200_000,
        "a" * 1_000_000 + "=v",
        "password='" * 100_000,
        '"password":' * 100_000,
        "redis://" + "@" * 500_000,
        " ".join(["password=x"] * 100_000),
    ]
    started = time.perf_counter()
    for text in texts:
        masked = mask_secrets(text)
        assert "password=x" not in masked
    assert time.perf_counter() - started < 30
