"""Validation at the API edge: ids, roles, message types, metadata and sizes.

Every public entry point of contextkit runs its arguments through these functions before anything is written,
so a bad argument raises :class:`~contextkit.errors.InvalidInput` (or a subclass) and leaves storage untouched.
The limits are configurable per kit through :class:`Limits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from contextkit.codec import archive_json, archive_loads, int_fits_json
from contextkit.encoding import to_json_value
from contextkit.errors import CorruptData, InvalidInput, LimitExceeded, SerializationError

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "check_content",
    "check_id",
    "check_json_document",
    "check_key_bytes",
    "check_limit",
    "check_metadata",
    "check_name",
    "check_role",
    "parse_input",
]

T = TypeVar("T")

# C0 and C1 control characters, DEL, and lone surrogates (which cannot be encoded as UTF-8).
_FORBIDDEN_IN_IDS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAME = re.compile(r"^[a-z][a-z0-9_.\-]*$")


def parse_input(parse: Callable[[Mapping[str, Any]], T], data: Mapping[str, Any], what: str) -> T:
    """``parse(data)`` (a record's ``from_dict``) for data the caller hands in (an import file, a source dataset):
    a malformed record is input refused with ``SerializationError`` (an ``InvalidInput``: nothing of it is
    written), not the ``CorruptData`` that the same decoder raises for a record read back from a tier."""
    try:
        return parse(data)
    except CorruptData as exc:
        raise SerializationError(f"{what} is malformed: {exc}") from None


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits enforced before anything is stored.

    :param max_id_length: longest session id, user id, thread id or key, in characters.
    :param max_role_length: longest message role or participant role.
    :param max_message_bytes: largest message content, in UTF-8 bytes.
    :param max_metadata_bytes: largest metadata mapping once serialized as JSON, in bytes.
    :param max_metadata_depth: deepest nesting of containers inside a metadata mapping.
    :param max_document_bytes: largest JSON document (task context, checkpoint data), in bytes.
    :param max_read: largest ``limit`` a single history or listing read may ask for.
    """

    max_id_length: int = 2048
    max_role_length: int = 64
    max_message_bytes: int = 4 * 1024 * 1024
    max_metadata_bytes: int = 64 * 1024
    max_metadata_depth: int = 32
    max_document_bytes: int = 16 * 1024 * 1024
    max_read: int = 100_000


DEFAULT_LIMITS = Limits()


def check_id(value: object, what: str = "id", limits: Limits = DEFAULT_LIMITS) -> str:
    """Return ``value`` if it is a usable identifier, else raise :class:`InvalidInput`.

    Any printable text is allowed (``:``, ``{``, ``*``, spaces, unicode); empty strings, control characters,
    lone surrogates and strings longer than ``limits.max_id_length`` are refused.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limits.max_id_length:
        raise LimitExceeded(f"{what} is {len(value)} characters long; the limit is {limits.max_id_length}")
    bad = _FORBIDDEN_IN_IDS.search(value)
    if bad:
        raise InvalidInput(f"{what} contains a control character or lone surrogate {bad.group()!r}")
    if value.strip() != value or not value.strip():
        raise InvalidInput(f"{what} must not start or end with whitespace: {value[:80]!r}")
    return value


def check_key_bytes(value: str, what: str, limit: tuple[int, str] | None) -> str:
    """Return ``value`` if its UTF-8 form fits ``limit`` (``(bytes, which tier declares it)``, the tightest
    ``max_key_bytes`` of the configured tiers; None: no limit), else raise :class:`LimitExceeded` naming the tier
    and the limit. ``value`` already passed :func:`check_id`."""
    # A character is at most 4 UTF-8 bytes: most ids are far below any limit and are not encoded at all.
    if limit is not None and len(value) * 4 > limit[0]:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > limit[0]:
            raise LimitExceeded(
                f"{what} is {size} bytes long in UTF-8 ({len(value)} characters); {limit[1]} can index ids of at "
                f"most {limit[0]} bytes (max_key_bytes)"
            )
    return value


def check_role(value: object, what: str = "role", limits: Limits = DEFAULT_LIMITS) -> str:
    """Return ``value`` if it is a well-formed role (1 to ``max_role_length`` printable characters)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > limits.max_role_length:
        raise LimitExceeded(f"{what} is {len(value)} characters long; the limit is {limits.max_role_length}")
    bad = _FORBIDDEN_IN_IDS.search(value)
    if bad:
        raise InvalidInput(f"{what} contains a control character {bad.group()!r}")
    if value.strip() != value:
        raise InvalidInput(f"{what} must not start or end with whitespace: {value!r}")
    return value


def check_name(value: object, what: str, max_length: int = 64) -> str:
    """Return ``value`` if it is a lowercase identifier such as a message type (``analysis_result``)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not value or len(value) > max_length or not _NAME.match(value):
        raise InvalidInput(
            f"{what} {value[:80]!r} is malformed: use 1 to {max_length} characters of a-z, 0-9, '_', '.', '-', "
            "starting with a letter"
        )
    return value


def check_content(value: object, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return ``value`` if it is message content: a str that encodes as UTF-8 within ``max_message_bytes``."""
    if not isinstance(value, str):
        raise InvalidInput(f"content must be a str, got {type(value).__name__}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"content is not valid unicode text: {exc.reason}") from None
    if size > limits.max_message_bytes:
        raise LimitExceeded(f"content is {size} bytes; the limit is {limits.max_message_bytes}")
    if "\x00" in value:
        # PostgreSQL and several drivers cannot store U+0000; refusing it here keeps every tier able to hold
        # what the hot tier accepted.
        raise InvalidInput("content contains a NUL character (U+0000), which storage backends cannot hold")
    return value


def check_limit(value: object, what: str = "limit", limits: Limits = DEFAULT_LIMITS) -> int:
    """Return ``value`` if it is a non-negative int no larger than ``max_read`` (0 means "all")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, got {type(value).__name__}")
    if value < 0:
        raise InvalidInput(f"{what} must be >= 0, got {value}")
    if value > limits.max_read:
        raise LimitExceeded(f"{what} is {value}; the limit is {limits.max_read}")
    return value


def _depth_and_check(value: Any, depth: int, limit: int, path: str) -> None:
    if depth > limit:
        raise LimitExceeded(f"metadata is nested deeper than {limit} levels at {path}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(f"metadata keys must be str, got {type(key).__name__} at {path}")
            if "\x00" in key:
                raise SerializationError(f"metadata key at {path} contains a NUL character (U+0000)")
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise SerializationError(f"metadata key at {path} holds a lone surrogate") from None
            _depth_and_check(item, depth + 1, limit, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _depth_and_check(item, depth + 1, limit, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise SerializationError(f"metadata holds {value!r} at {path}; JSON has no NaN or infinity")
    elif isinstance(value, int) and not isinstance(value, bool) and not int_fits_json(value):
        # json.dumps would raise a plain ValueError, and no reader could parse the text back
        raise SerializationError(
            f"metadata holds an integer of {value.bit_length()} bits at {path}, over Python's int-string digit limit"
        )
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise SerializationError(f"metadata holds a {type(value).__name__} at {path}, which is not JSON-serializable")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationError(f"metadata holds a string with a lone surrogate at {path}") from None
        if "\x00" in value:
            raise SerializationError(f"metadata holds a NUL character (U+0000) at {path}")


def check_json_document(
    value: object, what: str, *, max_bytes: int, max_depth: int
) -> dict[str, Any]:
    """Return a plain-JSON deep copy of ``value`` if it is a mapping that JSON can represent within the limits.

    Values beyond JSON that applications commonly hold (datetimes, UUIDs, Decimals, enums, sets, tuples,
    dataclasses, Pydantic models) are converted by :func:`contextkit.encoding.to_json_value` first.
    """
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        _depth_and_check(value, 0, max_depth, what)
    except SerializationError:
        # Not plain JSON: convert what the encoder knows (it names the path of what it cannot) and check again.
        # Plain JSON, the common case, never pays for the conversion. The conversion follows at most a few
        # levels more than allowed, so a cycle stops early; the precise limit comes from _depth_and_check.
        value = to_json_value(value, what, max_depth=max_depth + 2)
        _depth_and_check(value, 0, max_depth, what)
    text = archive_json(value)  # the storage codec: what is checked here is what the tiers will write
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise LimitExceeded(f"{what} is {size} bytes as JSON; the limit is {max_bytes}")
    copied: dict[str, Any] = archive_loads(text)
    return copied


def check_metadata(value: object, limits: Limits = DEFAULT_LIMITS, what: str = "metadata") -> dict[str, Any]:
    """Return a JSON deep copy of ``value`` (``None`` gives ``{}``) or raise.

    Metadata must be a mapping with str keys holding only JSON values (no NaN or infinity), within
    ``max_metadata_bytes`` and ``max_metadata_depth``.
    """
    if value is None:
        return {}
    return check_json_document(
        value, what, max_bytes=limits.max_metadata_bytes, max_depth=limits.max_metadata_depth
    )
