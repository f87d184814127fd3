"""The JSON encoder for what applications put in metadata and documents, shared by the kit and the facade.

:func:`to_json_value` turns a value into plain JSON values (dict with str keys, list, str, int, float, bool, None)
so every call that stores application data (session and message metadata, task contexts, checkpoint data and
writes, conversation sessions) accepts the same types and stores them the same way:

=====================================  ===================================================================
value                                  stored as
=====================================  ===================================================================
``datetime``, ``date``, ``time``       ISO-8601 text (``isoformat()``; a naive datetime stays naive, as the
                                       original ContextEngine's ``DateTimeEncoder`` wrote it)
``uuid.UUID``                          its canonical text
``decimal.Decimal``                    its exact text (``str``), never a rounded float
``enum.Enum``                          its ``value``, encoded in turn
``set`` / ``frozenset``                a list (sorted when the items can be sorted, so the text is stable)
``tuple``                              a list
a dataclass instance                   a dict of its fields, encoded in turn
a Pydantic model (v2 or v1)            ``model_dump(mode="json")`` (``dict()`` on v1)
=====================================  ===================================================================

Anything else (bytes, arbitrary objects, non-str keys, NaN) raises
:class:`~contextkit.errors.SerializationError` naming the path of the value, for example
``metadata.items[3]``, before anything is written. Reading gives back the plain JSON form: a datetime comes back
as text, a dataclass as a dict.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from contextkit.errors import LimitExceeded, SerializationError

__all__ = ["MAX_DEPTH", "to_json_value"]

logger = logging.getLogger("contextkit.encoding")

#: Deepest nesting :func:`to_json_value` follows; the validators apply the configured (smaller) limits after it.
MAX_DEPTH = 256

_SCALARS = (str, int, float, bool, type(None))


def to_json_value(value: Any, path: str = "value", *, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` as plain JSON values (see the module docstring for the conversions).

    Plain JSON input is copied, never modified in place. Raises :class:`~contextkit.errors.SerializationError`
    naming the path (``metadata.items[3]``) of a value it cannot encode, and
    :class:`~contextkit.errors.LimitExceeded` for nesting deeper than ``max_depth`` (or a cycle).
    """
    return _encode(value, path, 0, max_depth)


def _encode(value: Any, path: str, depth: int, max_depth: int) -> Any:
    # bool and int subclasses such as IntEnum are checked as enums first: an IntEnum is stored as its value.
    if isinstance(value, enum.Enum):
        return _encode(value.value, path, depth + 1, max_depth)
    if isinstance(value, _SCALARS):
        return value
    if depth >= max_depth:
        raise LimitExceeded(f"{path} is nested deeper than {max_depth} levels (or refers to itself)")
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, enum.Enum) and isinstance(key.value, str):
                key = key.value
            if not isinstance(key, str):
                raise SerializationError(f"keys must be str, got {type(key).__name__} {key!r:.40} at {path}")
            result[key] = _encode(item, f"{path}.{key}", depth + 1, max_depth)
        return result
    if isinstance(value, (list, tuple)):
        return [_encode(item, f"{path}[{index}]", depth + 1, max_depth) for index, item in enumerate(value)]
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise SerializationError(f"{path} holds Decimal({str(value)!r}); JSON has no NaN or infinity")
        return str(value)
    if isinstance(value, (set, frozenset)):
        items = list(value)
        try:
            items.sort()
        except TypeError:
            pass  # mixed types: the set's own order (still every item)
        return [_encode(item, f"{path}[{index}]", depth + 1, max_depth) for index, item in enumerate(items)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        logger.debug("converting dataclass %s at %s to a dict", type(value).__name__, path)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _encode(fields, path, depth + 1, max_depth)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        # Pydantic v2: its own JSON mode already turns datetimes, UUIDs and nested models into JSON values.
        return _encode(dump(mode="json"), path, depth + 1, max_depth)
    legacy = getattr(value, "dict", None)
    if callable(legacy) and hasattr(type(value), "__fields__") and hasattr(value, "json"):
        return _encode(legacy(), path, depth + 1, max_depth)  # Pydantic v1
    raise SerializationError(
        f"{path} holds a {type(value).__name__}, which is not JSON-serializable (supported beyond JSON: datetime, "
        "date, time, UUID, Decimal, Enum, set, tuple, dataclasses, Pydantic models)"
    )
