"""Compression of large checkpoint values: the format marker, the threshold, incompressible values kept as they
are, both codecs, typed errors for damaged data and bad settings."""

from __future__ import annotations

import json
import os
import zlib

import pytest

from contextkit.blob_compression import CODECS, ZLIB, ZSTD, BlobCompressor, default_codec, unpack
from contextkit.config import load_config
from contextkit.errors import ConfigError, CorruptData

#: SHA-256 of dictionary 1 (``+zsd1``): values stored with it must stay readable, so its bytes never change.
DICT_1_SHA256 = "9b3f232b29f92d742896e650529d56e04d84bf6367085951a780ae20491de176"
TEXT = json.dumps([f"message {i}: the weather in Paris is mild" for i in range(200)]).encode()


@pytest.mark.parametrize("codec", CODECS)
def test_large_values_are_marked_and_smaller_small_ones_unchanged(codec: str) -> None:
    compressor = BlobCompressor(1024, codec)
    packed = compressor.pack(("json", TEXT))
    assert packed[0] == f"json+{codec}" and len(packed[1]) < len(TEXT) // 4
    assert unpack(packed) == ("json", TEXT)
    small = ("json", TEXT[:1023])
    if codec == ZSTD:  # small values get the dictionary (below)
        assert compressor.pack(small)[0] == "json+zsd1"
    else:
        assert compressor.pack(small) is small
    assert unpack(small) is small  # no marker: read as it always was


def test_small_values_are_compressed_with_the_built_in_dictionary() -> None:
    """From 96 bytes up to the threshold, zstd with dictionary 1 (``+zsd1``): a chat message stores well under
    its msgpack size; tiny values stay as they are; damaged frames are ``CorruptData``; the dictionary's bytes,
    part of the stored format, never change."""
    pytest.importorskip("langchain_core")
    import hashlib
    import threading

    from langchain_core.messages import AIMessage
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from contextkit.blob_compression import _DICT_1, SMALL_MIN

    assert hashlib.sha256(_DICT_1).hexdigest() == DICT_1_SHA256
    serde = JsonPlusSerializer()
    message = serde.dumps_typed(AIMessage(content="The forecast for Lisbon: mild, brief showers later.", id="a1"))
    compressor = BlobCompressor(2048, ZSTD)
    packed = compressor.pack(message)
    assert packed[0] == "msgpack+zsd1" and len(packed[1]) < len(message[1]) * 0.6, (len(packed[1]), len(message[1]))
    assert unpack(packed) == message
    tiny = ("msgpack", message[1][: SMALL_MIN - 1])
    assert compressor.pack(tiny) is tiny
    assert BlobCompressor(2048, ZLIB).pack(message) is message
    with pytest.raises(CorruptData):
        unpack(("msgpack+zsd1", b"not a frame"))
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                value = ("json", json.dumps({"thread": n, "i": i, "text": "word " * (20 + i % 30)}).encode())
                assert unpack(compressor.pack(value)) == value
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


def test_incompressible_values_are_stored_as_they_are() -> None:
    noise = ("msgpack+aes", os.urandom(8192))  # encrypted bytes do not compress
    assert BlobCompressor(16).pack(noise) is noise


def test_damaged_compressed_values_raise_corrupt_data() -> None:
    for kind in ("json+zstd", "json+zlib"):
        with pytest.raises(CorruptData):
            unpack((kind, b"not a compressed frame"))
    assert unpack(("json+zlib", zlib.compress(b"[1]"))) == ("json", b"[1]")


def test_bad_settings_are_config_errors() -> None:
    for threshold in (0, -1, True, 1.5):
        with pytest.raises(ConfigError):
            BlobCompressor(threshold)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        BlobCompressor(10, "brotli")
    assert default_codec() in (ZSTD, ZLIB)


def test_checkpoints_section_sets_compression() -> None:
    """Compression is on by default (values of 2,048 bytes or more, zstd when installed); 0 turns it off."""
    default = load_config({}, env={}).checkpoints
    compressor = default.compressor()
    assert compressor is not None and compressor.threshold == 2048 and compressor.codec == default_codec()
    assert load_config({"checkpoints": {"compress_above": 0}}, env={}).checkpoints.compressor() is None
    zl = load_config({"checkpoints": {"compress_above": 100, "compression": "zlib"}}, env={}).checkpoints.compressor()
    assert zl is not None and zl.codec == ZLIB and zl.threshold == 100
    for bad in ({"compression": "lz4"}, {"compress_above": -5}, {"compress_above": "big"}):
        with pytest.raises(ConfigError):
            load_config({"checkpoints": bad}, env={})
