"""JSON documents as the backends store them: one meaning of the errors on every tier.

A value a write cannot store as JSON is the caller's input: :class:`~contextkit.errors.SerializationError`, before
anything is written. Text read back that is not JSON, or not the JSON object a record needs, is stored data gone
bad: :class:`~contextkit.errors.CorruptData`. Both go through :mod:`contextkit.codec` (orjson when installed, the
standard library's meaning either way).
"""

from __future__ import annotations

from typing import Any

from contextkit.codec import archive_json, archive_loads
from contextkit.errors import CorruptData, SerializationError

__all__ = ["dump_document", "load_document", "load_object"]


def dump_document(value: Any, what: str = "value") -> str:
    """Compact JSON text of ``value`` (UTF-8 kept as is); ``SerializationError`` naming ``what`` when JSON cannot
    hold it (NaN or infinity, bytes, a key that is not a string, an integer over the int-string digit limit)."""
    try:
        return archive_json(value)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} cannot be stored as JSON: {exc}") from exc


def load_document(raw: str | bytes, what: str) -> Any:
    """The value of stored JSON text; ``CorruptData`` naming ``what`` when the text is not JSON."""
    try:
        return archive_loads(raw)
    except (TypeError, ValueError) as exc:
        raise CorruptData(f"stored {what} is not valid JSON: {exc}") from None


def load_object(raw: str | bytes, what: str) -> dict[str, Any]:
    """The JSON object of stored text; ``CorruptData`` naming ``what`` when it is not JSON or not an object."""
    value = load_document(raw, what)
    if not isinstance(value, dict):
        raise CorruptData(f"stored {what} is not a JSON object")
    return value
