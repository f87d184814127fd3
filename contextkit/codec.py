"""The project's JSON codec: :func:`archive_json` / :func:`archive_loads`, the stdlib's meaning at orjson's speed.

Every JSON text contextkit writes for storage goes through it: archive events in the outboxes, cold-tier rows,
the Redis hot tier's documents and the Redis saver's metadata. orjson is used when it is installed (it comes
with langsmith, so with langgraph) and the value or text is one it handles exactly like the stdlib; otherwise the
stdlib does the work, so the result and the errors never depend on whether orjson is there.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["archive_json", "archive_loads"]

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
# looking for "N" and 19 zeros: a regular expression search cost 4.3 us on a 500-byte event, six times the parse.
_TOKEN_START = frozenset(b":,[- \t\n\r")
_DIGIT_MASK = bytes(0x30 if 0x30 <= b <= 0x39 else 0x4E if b in _TOKEN_START else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19
_LONG_TOKEN = b"N" + _LONG_RUN


def _has_long_integer(text: str | bytes) -> bool:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    masked = data.translate(_DIGIT_MASK)
    return _LONG_TOKEN in masked or masked.startswith(_LONG_RUN)


def archive_json(value: Any, *, allow_nan: bool = False) -> str:
    """JSON text of an archive value: what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"),
    allow_nan=allow_nan)`` returns, or means (orjson spells some floats differently), and the same errors
    (``TypeError`` for a value JSON cannot hold, ``ValueError`` for NaN or infinity unless ``allow_nan``)."""
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
    return (_ENCODER_NAN if allow_nan else _ENCODER).encode(value)


def archive_loads(text: str | bytes) -> Any:
    """Parse JSON text as ``json.loads`` does (orjson when installed and the text is one it reads alike);
    raises ``ValueError`` for text that is not JSON."""
    if _orjson is not None and not _has_long_integer(text):
        try:
            return _orjson.loads(text)
        except ValueError:
            pass  # NaN/Infinity literals, lone surrogates...: the stdlib reads them or names the problem
    return json.loads(text)
