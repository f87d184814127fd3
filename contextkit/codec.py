"""The project's JSON codec: :func:`archive_json` / :func:`archive_loads`, the stdlib's meaning at orjson's speed.

Every JSON text contextkit writes for storage goes through it: archive events in the outboxes, cold-tier rows,
the Redis hot tier's documents and the Redis saver's metadata. orjson is used when it is installed (it comes
with langsmith, so with langgraph) and the value or text is one it handles exactly like the stdlib; otherwise the
stdlib does the work, so the result and the errors never depend on whether orjson is there.

Errors are typed, each also a ``ValueError`` so code written for the stdlib's errors keeps working: a value the
stdlib refuses (NaN or infinity, an integer over Python's int-string digit limit, ``sys.get_int_max_str_digits()``)
raises :class:`~contextkit.errors.SerializationError` (refused before it is written); text that cannot be read
(not JSON, or an integer over that limit) raises :class:`~contextkit.errors.CorruptData`. :func:`int_fits_json`
tells beforehand whether an integer can be written.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from contextkit.errors import CorruptData, SerializationError

__all__ = ["archive_json", "archive_loads", "int_fits_json"]

_orjson: Any
try:  # optional: several times faster JSON for the outboxes and the cold writers (installed with langsmith)
    import orjson as _orjson
except ImportError:  # pragma: no cover - the stdlib gives the same text's meaning
    _orjson = None

_orjson_dumps: Any = None if _orjson is None else _orjson.dumps
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ENCODER_NAN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Values orjson would encode where the stdlib refuses them (datetimes, dataclasses) or encode differently
# (subclasses of str/int/dict/list) go to the stdlib instead.
_ORJSON_OPTIONS = (
    0
    if _orjson is None
    else (_orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_SUBCLASS)
)
# orjson reads an integer beyond 64 bits as a float (silently inexact): text that may hold an integer of 19 or
# more digits is read by the stdlib instead. An integer token starts the text or follows ':', ',', '[' (then
# optional whitespace and '-'); a digit run after anything else is inside a string (LangGraph's zero-padded channel
# versions, event ids) or a float's fraction or exponent, which both parsers read alike.
# Found by mapping every digit to "0", those delimiters to "N" and every other byte to "." (one C pass) and
# looking for "N" and 19 zeros: a regular expression search cost several times the parse itself (figures in
# docs/benchmarks.md, "Measurements behind design choices").
_TOKEN_START = frozenset(b":,[- \t\n\r")
_DIGIT_MASK = bytes(0x30 if 0x30 <= b <= 0x39 else 0x4E if b in _TOKEN_START else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19
_LONG_TOKEN = b"N" + _LONG_RUN


def _has_long_integer(text: str | bytes) -> bool:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    masked = data.translate(_DIGIT_MASK)
    return _LONG_TOKEN in masked or masked.startswith(_LONG_RUN)


# 2**14000 has 4215 decimal digits: an int of no more bits is below the stdlib's default limit of 4300 digits
# without converting it (the conversion of a long int is quadratic in its length).
_SURELY_FITS_BITS = 14_000


def int_fits_json(value: int) -> bool:
    """Whether ``value`` can be written as JSON text (and read back) under Python's int-string digit limit
    (``sys.get_int_max_str_digits()``, 4300 by default, 0 for none)."""
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    if limit == 0 or value.bit_length() <= min(_SURELY_FITS_BITS, limit * 3):
        return True  # (10**d > 2**(3d): an int of at most 3 * limit bits has fewer than limit digits)
    try:
        return len(str(value).lstrip("-")) <= limit
    except ValueError:  # over the limit
        return False


def archive_json(value: Any, *, allow_nan: bool = False) -> str:
    """JSON text of an archive value: what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
    allow_nan=allow_nan)`` returns, or means (orjson spells some floats differently), and the same errors, typed:
    ``TypeError`` for a value JSON cannot hold, :class:`~contextkit.errors.SerializationError` (a ``ValueError``)
    for NaN or infinity unless ``allow_nan``, and for an integer over Python's int-string digit limit."""
    if _orjson_dumps is not None:
        try:
            text: str = _orjson_dumps(value, None, _ORJSON_OPTIONS).decode()
        except TypeError:
            pass  # an int beyond 64 bits, a non-str key, a lone surrogate...: the stdlib takes it or names it
        else:
            # orjson writes NaN and infinity as null where the stdlib refuses them; text without null has none.
            # (Checked on the str: `in` on bytes first tries the operand as an int, several times slower.)
            if "null" not in text:
                return text
    try:
        return (_ENCODER_NAN if allow_nan else _ENCODER).encode(value)
    except SerializationError:
        raise
    except ValueError as exc:  # NaN or infinity, an integer over the digit limit, a circular reference
        raise SerializationError(f"value cannot be written as JSON: {exc}") from exc


def archive_loads(text: str | bytes) -> Any:
    """Parse JSON text as ``json.loads`` does (orjson when installed and the text is one it reads alike); raises
    :class:`~contextkit.errors.CorruptData` (a ``ValueError``) for text that is not JSON or holds an integer
    over Python's int-string digit limit, ``TypeError`` for a value that is not text."""
    if _orjson is not None and not _has_long_integer(text):
        try:
            return _orjson.loads(text)
        except ValueError:
            pass  # NaN/Infinity literals, lone surrogates...: the stdlib reads them or names the problem
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer over the digit limit
        raise CorruptData(f"text is not JSON contextkit can read: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    # The stdlib's digit-limit message tells to call sys.set_int_max_str_digits(): keep it, it is the way out.
    return str(exc)[:300]
