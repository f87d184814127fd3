"""The Redis tier's stored checkpoint formats are permanent: values written by this version must read back the same
in every later one. Pinned here: the metadata dictionary and the type-code table (stored values name them by
position or content), and a record, a packed write value and blob values as this version writes them, decoded
from their bytes (a change of the encoder that still reads them is fine; one that stops reading them is not)."""

from __future__ import annotations

import hashlib

from contextkit.stores import CheckpointRow, WriteRow
from contextkit_redis import checkpoints as cp

META_DICT_1_SHA256 = "d302715f50ebcba81d1718c1c584994535e7b3886fa236484a4bb9d40a1baab8"
TYPES = ("msgpack", "msgpack+zsd1", "msgpack+zstd", "msgpack+zlib", "json", "null", "bytes", "bytearray", "empty", "pickle")

CID = "1f1f17a0-0000-6000-8001-000000000001"
RECORD = (
    b"\x01@\t__start__\rb1a.abcdefgh\x08messages\rb1b.ijklmnop\x11branch:to:respond\x00\x01\x01\x0b\x82\xa1v\x04"
    b"\xa2ts\xa3now\x13\x01 'm\x00\x00\x103}\x03\x00p\xc8\x15\x07\xb8\x86\x01\x02\x10+\x160-ffffffffffff"
)
WRITES = b"\x02\x06task-19\x17~__pregel_pull, respond\x00\x08messages\x01\x02\x02\x01\x02\x05\r__interrupt__\x01\x06\x00"


def test_the_metadata_dictionary_and_the_type_codes_never_change() -> None:
    assert hashlib.sha256(cp._META_DICT_1).hexdigest() == META_DICT_1_SHA256
    assert cp._TYPES[: len(TYPES)] == TYPES  # append only


def test_a_record_of_this_version_reads_back() -> None:
    row, channels = cp._decode_record("t", "", CID, RECORD)
    assert row == CheckpointRow(
        "t", "", CID, "1f1f17a0-0000-6000-8000-ffffffffffff", ("msgpack", b"\x82\xa1v\x04\xa2ts\xa3now"),
        {"source": "loop", "step": 3, "parents": {}},
        {"__start__": "b1a.abcdefgh", "messages": "b1b.ijklmnop", "branch:to:respond": "b1b.ijklmnop"},
    )
    assert channels == ["__start__", "messages", "branch:to:respond"]


def test_a_packed_write_value_of_this_version_reads_back() -> None:
    assert cp._decode_writes(WRITES) == [
        WriteRow("task-1", 0, "messages", ("msgpack+zsd1", b"\x01\x02"), "~__pregel_pull, respond"),
        WriteRow("task-1", -3, "__interrupt__", ("null", b""), "~__pregel_pull, respond"),
    ]


def test_blob_values_of_this_version_read_back() -> None:
    assert cp._typed(b"\x01\x91\x01") == ("msgpack", b"\x91\x01")
    assert cp._typed(b"8:ck-block" + b"\x00" * 16) == ("ck-block", b"\x00" * 16)
