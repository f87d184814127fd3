"""The shared encoder: what it converts, and the typed error naming the path of what it cannot."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from contextkit.encoding import to_json_value
from contextkit.errors import LimitExceeded, SerializationError
from contextkit.validation import check_metadata


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclass
class Inner:
    when: dt.datetime
    tags: set[str] = field(default_factory=set)


@dataclass
class Outer:
    inner: Inner
    pair: tuple[int, int] = (1, 2)


class Model(pydantic.BaseModel):
    ident: uuid.UUID
    at: dt.datetime


def test_every_supported_type_becomes_plain_json() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {
        "datetime": dt.datetime(2024, 1, 2, 3, 4, 5),
        "aware": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "date": dt.date(2024, 1, 2),
        "time": dt.time(3, 4, 5),
        "uuid": ident,
        "decimal": Decimal("10.10"),
        "enum": Colour.RED,
        "int_enum": Level.HIGH,
        "set": {"b", "a"},
        "frozenset": frozenset({2, 1}),
        "tuple": (1, "x"),
        "dataclass": Outer(Inner(dt.datetime(2024, 1, 1), {"t"})),
        "pydantic": Model(ident=ident, at=dt.datetime(2024, 5, 6)),
    }
    assert to_json_value(value) == {
        "datetime": "2024-01-02T03:04:05",
        "aware": "2024-01-02T03:04:05+00:00",
        "date": "2024-01-02",
        "time": "03:04:05",
        "uuid": str(ident),
        "decimal": "10.10",
        "enum": "red",
        "int_enum": 3,
        "set": ["a", "b"],
        "frozenset": [1, 2],
        "tuple": [1, "x"],
        "dataclass": {"inner": {"when": "2024-01-01T00:00:00", "tags": ["t"]}, "pair": [1, 2]},
        "pydantic": {"ident": str(ident), "at": "2024-05-06T00:00:00"},
    }


def test_plain_input_is_copied_not_changed() -> None:
    value: dict[str, Any] = {"a": [1, {"b": 2}]}
    result = to_json_value(value)
    assert result == value and result is not value and result["a"] is not value["a"]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"items": [1, 2, 3, object()]}, "metadata.items[3]"),
        ({"deep": {"raw": b"bytes"}}, "metadata.deep.raw"),
        ({"d": Decimal("NaN")}, "metadata.d"),
        ({"k": {1: "int key"}}, "metadata.k"),
    ],
)
def test_what_it_cannot_encode_is_a_typed_error_naming_the_path(value: Any, path: str) -> None:
    with pytest.raises(SerializationError) as caught:
        check_metadata(value)
    assert path in str(caught.value)


def test_a_cycle_is_refused_not_a_recursion_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(LimitExceeded):
        check_metadata(loop)
