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


TASK = "f86d7a49-842f-9cf2-74bd-a229dd0784f3"
# A packed write value with LangGraph's task id (16 bytes after 0xFF), its pull path prefix as 0xFF 0x00 and a
# small zstd value without the frame's magic number (code 11).
PACKED_WRITES = (
    b"\x02\x11\xff" + bytes.fromhex(TASK.replace("-", "")) + b"\x19\x09\xff\x00respond\x00\x08messages\x01\x0b\x02\x01\x02"
)


def test_packed_task_ids_paths_and_magicless_zstd_values_read_back() -> None:
    assert cp._SQUEEZED == b"\x0b" and cp._ZSTD_MAGIC == b"\x28\xb5\x2f\xfd"
    assert cp._decode_writes(PACKED_WRITES) == [
        WriteRow(TASK, 0, "messages", ("msgpack+zsd1", cp._ZSTD_MAGIC + b"\x01\x02"), "~__pregel_pull, respond")
    ]
    assert cp._typed(b"\x0b\x01\x02") == ("msgpack+zsd1", cp._ZSTD_MAGIC + b"\x01\x02")


def test_only_task_ids_and_paths_of_langgraphs_form_are_packed() -> None:
    """Other ids and paths (upper case, not 8-4-4-4-12, another prefix) are stored as text and read back exactly; a
    zstd value without the magic number, or of another type, is stored as it is."""
    for task_id in (TASK, TASK.upper(), TASK.replace("-", ""), "task-1", "", "é" * 36, TASK + "\n"):
        for path in ("~__pregel_pull, respond", "~__pregel_push, 0, False", "~__pregel_pull", "", "custom"):
            write = WriteRow(task_id, 1, "c", ("msgpack+zsd1", cp._ZSTD_MAGIC + b"x"), path)
            encoded = cp._encode_writes([write], False)
            assert cp._decode_writes(encoded) == [write]
            assert (b"\xff" + bytes.fromhex(TASK.replace("-", "")) in encoded) is (task_id == TASK)
    for typed in (("msgpack+zsd1", b"no magic"), ("msgpack+zstd", cp._ZSTD_MAGIC + b"x"), ("msgpack", cp._ZSTD_MAGIC)):
        assert cp._typed(cp._pack_typed(*typed)) == typed
        assert cp._pack_typed(*typed)[:1] != cp._SQUEEZED


def test_a_record_stores_its_small_zstd_checkpoint_without_the_magic_number() -> None:
    row = CheckpointRow(
        "t", "", CID, "1f1f17a0-0000-6000-8000-ffffffffffff", ("msgpack+zsd1", cp._ZSTD_MAGIC + b"frame"),
        {"step": 1}, {"messages": "b1b.ijklmnop"},
    )
    encoded = cp._encode_record(row)
    assert cp._ZSTD_MAGIC not in encoded and b"\x01\x0b\x05frame" in encoded
    assert cp._decode_record("t", "", CID, encoded) == (row, ["messages"])


LG_CID, LG_PARENT = "1f1f1a43-6d85-6ce5-810d-ad6ec048ceed", "1f1f1a43-69e9-635c-802f-2c955b350111"
# LangGraph's channel names as 0xFF and a prefix's index, a magicless small zstd checkpoint (code 11), and the parent
# as the 12 of its 16 bytes it does not share with the checkpoint's id ("*").
PACKED_RECORD = (
    b"\x01+\x02\xff\x01\rb1a.abcdefgh\x02\xff\x02\rb1b.ijklmnop\t\xff\x00respond\x00\x01\x0b\x05frame\x13\x01 'm"
    b"\x00\x00\x103}\x03\x00p\xc8\x15\x07\xb8\x86\x01\x02\x0e*\x04i\xe9c\\\x80/,\x95[5\x01\x11"
)


def test_a_record_with_packed_channel_names_and_parent_reads_back() -> None:
    row, channels = cp._decode_record("t", "", LG_CID, PACKED_RECORD)
    assert row == CheckpointRow(
        "t", "", LG_CID, LG_PARENT, ("msgpack+zsd1", cp._ZSTD_MAGIC + b"frame"), {"source": "loop", "step": 3, "parents": {}},
        {"__start__": "b1a.abcdefgh", "messages": "b1b.ijklmnop", "branch:to:respond": "b1b.ijklmnop"},
    )
    assert channels == ["__start__", "messages", "branch:to:respond"]
    assert cp._CHANNEL_PREFIXES[:3] == (b"branch:to:", b"__start__", b"messages")  # append only (Lua holds them too)
