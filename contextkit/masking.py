"""Secrets out of sight: :func:`mask_secrets`, the one function that hides passwords in text.

Every backend, the CLI and the logs go through :func:`mask_secrets`; nothing else in contextkit masks. It hides

* every secret this process was configured with (:func:`remember_secrets`, called wherever options are parsed), in
  the forms text can carry it: as written, percent-decoded, percent-encoded, JSON- and repr-escaped;
* the password in the user info of every URL (``scheme://user:password@host``), where the user info runs to the
  *last* ``@`` of the URL, so a password holding a raw ``#``, ``/``, ``?``, ``@`` or ``:`` is hidden whole, and a
  lone user info (``redis://secret@host``) is hidden on the schemes whose drivers read it as a password;
* the value of every password-like parameter: URL queries (``?password=...``, ``&sslpassword=...``), libpq keyword
  strings (``host=db password='it''s' ...``, quoted or not) and ``'password': '...'`` in reprs of mappings.

Text from a driver (a DSN inside an error message) gets the same treatment, so code never needs to know whether a
message could hold a secret: it masks it. :func:`secrets_in` collects the secrets of a configuration value (a
mapping of options, a URL, a keyword string), and :func:`check_url_credentials` refuses a URL whose user name or
password holds an unencoded ``/``, ``?`` or ``#`` (or, for asyncpg, ``@``) before a driver cuts it apart and echoes a
piece of it in an error. :data:`SECRET_FILTER` masks the records of every contextkit logger. Over-masking is
preferred to a leak: a text with a second ``@`` after a URL's password may show less than it could.
"""

from __future__ import annotations

import json
import logging
import re
import string
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlsplit

from contextkit.errors import ConfigError

__all__ = [
    "MASK",
    "MIN_REMEMBERED",
    "SECRET_FILTER",
    "SecretFilter",
    "check_url_credentials",
    "is_secret_key",
    "mask_secrets",
    "remember_secrets",
    "secrets_in",
]

#: What a secret is replaced with.
MASK = "***"
#: Shortest secret :func:`remember_secrets` keeps. Remembered secrets are hidden in *any* text, so a two-letter
#: password would mangle every message; shorter ones are still hidden where their context shows them (URLs,
#: ``password=`` parameters, option mappings) and wherever their owner passes them to :func:`mask_secrets`.
MIN_REMEMBERED = 4

# Option and parameter names that hold a secret (matched as substrings of the lowercased name, so
# "sslpassword", "client_secret", "api_token" and "aws_secret_access_key" count).
_SECRET_WORDS = ("password", "passwd", "pwd", "secret", "token", "access_key", "api_key", "apikey", "credential")
# Schemes whose drivers read a lone user info (no ':') as the password (redis-py: redis://secret@host).
_PASSWORD_ONLY_USERINFO = frozenset({"redis", "rediss", "unix", "valkey", "valkeys"})
# The scheme of a URL (starting where a run of scheme characters starts, so the search never backtracks inside one);
# the user info then runs to the last '@' before whitespace, found by _mask_urls.
_URL_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*)://")
_WHITESPACE = re.compile(r"\s")
# A secret word inside a parameter name; the name around it is found by _keyword_values, not by the regex, so
# a long run of name characters is walked once (a pattern with a greedy prefix before the word backtracks
# quadratically over it).
_SECRET_WORD = re.compile("|".join(re.escape(word) for word in _SECRET_WORDS), re.IGNORECASE)
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_EQUALS = re.compile(r"\s*=\s*")
_COLON = re.compile(r"\s*:\s*")
_BARE_VALUE = re.compile(r"""[^\s&'"]*""")
# What may follow a complete parameter value.
_VALUE_FOLLOWERS = frozenset(" \t\r\n,;)}]&")
# Where a URL's authority ends under RFC 3986 (and under urllib, redis-py and asyncpg).
_AUTHORITY_END = re.compile(r"[/?#]")


def is_secret_key(name: str) -> bool:
    """True when an option or parameter called ``name`` holds a secret (``password``, ``sslpassword``, ``token``...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


# -- the secrets this process knows --------------------------------------------------------------------------------
class _Known:
    """The remembered secrets and one compiled pattern matching every form of them (rebuilt when one is added)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        fresh = {value for value in values if isinstance(value, str) and len(value) >= MIN_REMEMBERED}
        if fresh <= self.secrets:
            return
        with self._lock:
            merged = self.secrets | fresh
            self.pattern = _pattern_of(merged)
            self.secrets = merged


_KNOWN = _Known()


def remember_secrets(values: Iterable[str]) -> None:
    """Add ``values`` to the secrets :func:`mask_secrets` hides in every text from now on (for the life of the
    process; values shorter than :data:`MIN_REMEMBERED` are skipped). Option parsers call it with
    :func:`secrets_in` of what they parse, so a secret never shows up in an error, a repr, a log line or CLI
    output, whichever code formats it."""
    _KNOWN.add(values)


def _forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in text: as is, percent-encoded or -decoded, JSON- and repr-escaped."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), unquote(secret), unquote_plus(secret)}
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(repr(secret)[1:-1])
    forms.add(secret.replace("'", "''"))  # libpq and SQL string literals
    return {form for form in forms if form}


def _pattern_of(secrets: Iterable[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for secret in secrets:
        forms |= _forms(secret)
    if not forms:
        return None
    # Longest first: a secret that contains another is replaced whole, not around the shorter one.
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


# -- masking ---------------------------------------------------------------------------------------------------------
def _masked_userinfo(scheme: str, userinfo: str) -> str:
    user, sep, password = userinfo.partition(":")
    if sep:
        return f"{user}:{MASK if password else ''}"
    if userinfo and scheme.lower() in _PASSWORD_ONLY_USERINFO:
        return MASK
    return userinfo  # a user name alone is no secret


def _mask_urls(text: str) -> str:
    """``text`` with the password of every URL's user info masked; the user info runs from ``://`` to the last ``@``
    of the URL's run of non-whitespace text. Each run is searched for its last ``@`` once (linear time)."""
    parts: list[str] = []
    position = search_from = run_end = 0
    while True:
        scheme = _URL_SCHEME.search(text, search_from)
        if scheme is None:
            break
        if scheme.end() > run_end:
            space = _WHITESPACE.search(text, scheme.end())
            run_end = len(text) if space is None else space.start()
        at = text.rfind("@", scheme.end(), run_end)
        if at < 0:  # no '@' up to the end of this run: no user info in any URL of it
            search_from = run_end
            continue
        parts += [text[position : scheme.end()], _masked_userinfo(scheme[1], text[scheme.end() : at])]
        position = search_from = at
    return "".join(parts) + text[position:]


def _quoted_end(text: str, start: int, *, backslash: bool) -> int | None:
    """Where the value quoted at ``text[start]`` ends, reading ``\\x`` as an escape (libpq, Python) or a doubled
    quote as one quote (SQL); None when it never ends."""
    quote_char = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if backslash and char == "\\":
            index += 2
            continue
        if char == quote_char:
            if not backslash and text[index + 1 : index + 2] == quote_char:
                index += 2
                continue
            return index + 1
        index += 1
    return None


def _value_end(text: str, start: int) -> int:
    """Where the parameter value at ``text[start]`` ends.

    A quoted value is read with backslash escapes (libpq, Python reprs, JSON) and, single-quoted, with doubled
    quotes (SQL); the two disagree on ``\\'`` and ``''``. The reading kept is the first whose closing quote is
    followed by what ends a value (the end, whitespace, ``,;)}]&``), else the longer one: hiding too much beats
    showing a piece. A value that never closes runs to the end of its line; a bare value ends at whitespace, a
    quote or ``&``.
    """
    if text[start : start + 1] in ("'", '"'):
        readings = [_quoted_end(text, start, backslash=True)]
        if text[start] == "'":
            readings.append(_quoted_end(text, start, backslash=False))
        ends = [end for end in readings if end is not None]
        for end in ends:
            if end == len(text) or text[end] in _VALUE_FOLLOWERS:
                return end
        if ends:
            return max(ends)
        newline = text.find("\n", start)
        return len(text) if newline < 0 else newline
    match = _BARE_VALUE.match(text, start)
    return start if match is None else match.end()


def _keyword_values(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the value of every secret-named parameter in ``text``, left to right: ``name=value``
    (URL queries, libpq keyword strings) and ``'name': value`` / ``"name": value`` (reprs of mappings, JSON)."""
    position, size = 0, len(text)
    while True:
        word = _SECRET_WORD.search(text, position)
        if word is None:
            return
        start, end = word.start(), word.end()
        while start > 0 and text[start - 1] in _NAME_CHARS:
            start -= 1
        while end < size and text[end] in _NAME_CHARS:
            end += 1
        separator = None
        if start > 0 and text[start - 1] in "'\"" and text[end : end + 1] == text[start - 1]:
            separator = _COLON.match(text, end + 1)
        if separator is None:
            separator = _EQUALS.match(text, end)
        if separator is None:
            position = end  # a secret word in running text, not a parameter
            continue
        value_end = _value_end(text, separator.end())
        if value_end > separator.end():
            yield separator.end(), value_end
        position = max(value_end, separator.end())


def _mask_keywords(text: str) -> str:
    parts: list[str] = []
    position = 0
    for start, end in _keyword_values(text):
        value = text[start:end]
        closed = len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]
        parts += [text[position:start], f"{value[0]}{MASK}{value[0]}" if closed else MASK]
        position = end
    return "".join(parts) + text[position:]


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret replaced by ``***``.

    Hides the secrets given here and every secret remembered by :func:`remember_secrets` (in each form text can
    hold them), the password of every URL (``scheme://user:***@host``, the user info running to the URL's last
    ``@``), and the value of every password-like parameter in URL queries, libpq keyword strings and reprs of
    mappings. Masking twice changes nothing.

    :param text: any text: a message, a URL, a repr, a traceback, a log line.
    :param secrets: secrets to hide beyond the remembered ones.
    """
    if not isinstance(text, str):
        text = str(text)
    pattern = _KNOWN.pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    extra = [secret for secret in secrets if secret and secret not in _KNOWN.secrets]
    if extra:
        extra_pattern = _pattern_of(extra)
        if extra_pattern is not None:
            text = extra_pattern.sub(MASK, text)
    if "://" in text:
        text = _mask_urls(text)
    return _mask_keywords(text)


# -- finding secrets -------------------------------------------------------------------------------------------------
def _url_secrets(url: str) -> set[str]:
    """The password of a URL, read both as RFC 3986 does (the user info ends with the authority) and up to the last
    ``@`` (what the user meant when the password holds a raw ``/``, ``?`` or ``#``); plus password-like query values."""
    found: set[str] = set()
    scheme, sep, rest = url.partition("://")
    if not sep:
        return found
    authority = _AUTHORITY_END.split(rest, 1)[0]
    readings = {authority.rpartition("@")[0] if "@" in authority else None, rest.rpartition("@")[0] if "@" in rest else None}
    for userinfo in readings - {None}:
        assert userinfo is not None
        user, colon, password = userinfo.partition(":")
        if colon:
            found.add(password)
        elif scheme.lower() in _PASSWORD_ONLY_USERINFO:
            found.add(user)
    query = rest.partition("?")[2].partition("#")[0]
    for key, value in parse_qsl(query, keep_blank_values=False):
        if is_secret_key(key):
            found.add(value)
    found |= _keyword_secrets(rest)
    return found


def _keyword_secrets(text: str) -> set[str]:
    """The values of the secret-named parameters of ``text``: as written, and unquoted under either escaping."""
    found = set()
    for start, end in _keyword_values(text):
        value = text[start:end]
        found.add(value)
        if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
            inner = value[1:-1]
            found |= {inner, re.sub(r"\\(.)", r"\1", inner), inner.replace(value[0] * 2, value[0])}
    return found


def secrets_in(value: Any, *, key: str | None = None) -> frozenset[str]:
    """Every secret a configuration value holds.

    A mapping contributes the values of its secret-named keys (see :func:`is_secret_key`) and the secrets of its
    other values; a string contributes the password of a URL (raw and percent-decoded, read both as RFC 3986 does
    and up to the last ``@``), password-like query parameters and libpq ``password=`` keywords. ``key`` is the
    option name ``value`` was given under (a secret-named key makes the whole string a secret).
    """
    found: set[str] = set()
    if isinstance(value, Mapping):
        for name, item in value.items():
            found |= secrets_in(item, key=str(name))
        return frozenset(found)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and key is not None and is_secret_key(key):
        value = str(value)  # a numeric password from TOML or the environment
    if not isinstance(value, str) or not value:
        return frozenset()
    if key is not None and is_secret_key(key):
        found.add(value)
    if "://" in value:
        found |= _url_secrets(value)
    elif "=" in value:
        found |= _keyword_secrets(value)
    decoded = {unquote(secret) for secret in found}
    return frozenset(secret for secret in found | decoded if secret)


# -- refusing ambiguous URLs -----------------------------------------------------------------------------------------
def check_url_credentials(url: str, what: str, *, single_at: bool = False) -> None:
    """Raise :class:`~contextkit.errors.ConfigError` when the user info of ``url`` cannot be read unambiguously:
    an ``@`` after the end of the authority (the first ``/``, ``?`` or ``#`` after ``://``), or, with
    ``single_at``, more than one ``@`` in the authority.

    Both come from a user name or password holding an unencoded ``@``, ``/``, ``?`` or ``#``. URL parsers end the
    user info at the first ``/``, ``?`` or ``#``, so a driver would read a piece of the password as the host, port
    or database and could echo it in an error. They disagree on which ``@`` ends it: urllib and redis-py take the
    last (so a raw ``@`` in a password works there), asyncpg the first (``single_at`` is for such a driver). An
    ``@`` that belongs to the path or query must be written ``%40``, which keeps every accepted URL unambiguous.
    The message names the fix and never the URL.

    :param url: the URL as configured.
    :param what: the option's name for the message (``"redis url"``).
    :param single_at: refuse a raw ``@`` in the user info too (for drivers that end the user info at the first).

    A URL that urllib cannot split at all (a raw ``[`` or ``]`` in a password reads as a broken IPv6 host) is
    refused the same way, rather than with urllib's bare ``ValueError``.
    """
    try:
        urlsplit(url)
    except ValueError:
        raise ConfigError(
            f"the {what} cannot be parsed: percent-encode '[' and ']' in its user name and password (%5B, %5D) or "
            "give the password as its own option; brackets belong only around an IPv6 host"
        ) from None
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return
    end = _AUTHORITY_END.search(rest)
    authority = rest if end is None else rest[: end.start()]
    if (single_at and authority.count("@") > 1) or "@" in rest[len(authority) :]:
        raise ConfigError(
            f"the {what} cannot be read unambiguously: percent-encode '@', '/', '?' and '#' in its user name and "
            "password (%40, %2F, %3F, %23) or give the password as its own option; an '@' in the path or query "
            "must be written %40 too"
        )


# -- logs --------------------------------------------------------------------------------------------------------------
class SecretFilter(logging.Filter):
    """A logging filter that masks each record's message and traceback with :func:`mask_secrets`.

    Attached to every contextkit logger, so what those loggers emit is masked whatever handler the application
    uses: the message is formatted and masked, and the traceback is formatted and masked into ``exc_text``, which
    ``logging.Formatter`` prints instead of formatting ``exc_info`` again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave the record to logging's own error handling
            return True
        record.msg, record.args = mask_secrets(message), None
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters print exc_text when it is set, instead of formatting exc_info themselves; exc_info stays
            # for tools that want the exception object (whose messages contextkit masks where it raises them).
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


#: The filter every contextkit logger carries.
SECRET_FILTER = SecretFilter()

# The loggers of the core; plugins attach SECRET_FILTER to their own (a filter on a logger sees only the records
# of that logger, not those of its children).
for _name in ("contextkit", "contextkit.archiver", "contextkit.langgraph", "contextkit.plugins", "contextkit.transfer"):
    logging.getLogger(_name).addFilter(SECRET_FILTER)
