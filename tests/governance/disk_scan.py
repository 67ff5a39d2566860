"""Search a store's files on disk for raw values, through ClickHouse's column compression.

A plain ``grep`` of a MergeTree folder proves nothing: column files (``*.bin``) are
sequences of compressed blocks, so a value can be stored and still not appear as bytes.
:func:`find_values` therefore searches every file twice: its raw bytes (metadata, marks,
WAL, SQLite pages, uncompressed parts) and, where the file parses as ClickHouse compressed
blocks, the decompressed stream. Tests pair it with a positive control (the same data
stored without redaction or encryption must be found), so a scan that cannot see the
values fails instead of passing.

Compressed block layout (ClickHouse ``src/Compression/CompressedReadBufferBase.cpp``):
16 bytes CityHash128 checksum, then a 9-byte header — 1 byte method (``0x02`` none,
``0x82`` LZ4, ``0x90`` ZSTD), UInt32 LE compressed size (header included), UInt32 LE
uncompressed size — then the payload. Other methods (Delta, DoubleDelta, Gorilla, T64,
encryption) nest or transform the payload; their blocks are skipped, not decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import lz4.block
import zstandard

__all__ = ["decompressed_blocks", "file_texts", "find_values"]

_CHECKSUM = 16
_HEADER = 9
_NONE, _LZ4, _ZSTD = 0x02, 0x82, 0x90
_MAX_BLOCK = 1 << 30


def decompressed_blocks(data: bytes) -> Iterator[bytes]:
    """Yield the payload of each ClickHouse compressed block in ``data``, in order.

    Stops at the first byte run that is not a well-formed block (so a file that is not
    a compressed column yields nothing, or only its well-formed prefix). Blocks of
    methods other than none/LZ4/ZSTD are skipped.
    """
    pos = 0
    zstd = zstandard.ZstdDecompressor()
    while pos + _CHECKSUM + _HEADER <= len(data):
        method = data[pos + _CHECKSUM]
        compressed, uncompressed = struct.unpack_from("<II", data, pos + _CHECKSUM + 1)
        end = pos + _CHECKSUM + compressed
        if compressed < _HEADER or end > len(data) or uncompressed > _MAX_BLOCK:
            return
        payload = data[pos + _CHECKSUM + _HEADER:end]
        try:
            if method == _NONE:
                yield payload
            elif method == _LZ4:
                yield lz4.block.decompress(payload, uncompressed_size=uncompressed)
            elif method == _ZSTD:
                yield zstd.decompress(payload, max_output_size=uncompressed)
        except (lz4.block.LZ4BlockError, zstandard.ZstdError):
            return
        pos = end


def file_texts(path: Path) -> Iterator[bytes]:
    """The file's raw bytes, then its decompressed blocks joined (when there are any)."""
    data = path.read_bytes()
    yield data
    blocks = b"".join(decompressed_blocks(data))
    if blocks:
        yield blocks


def find_values(root: Path, values: Iterable[str]) -> dict[str, list[Path]]:
    """Every file under ``root`` whose bytes contain each value (UTF-8), raw or decompressed.

    Args:
        root: a store folder (the chDB span store, the control store's folder, ...).
        values: the strings to look for (e.g. the raw PII values a test ingested).

    Returns:
        ``{value: [paths]}`` for the values found at least once; absent values are not keys.
    """
    needles = {value: value.encode() for value in values}
    found: dict[str, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for text in file_texts(path):
            for value, needle in needles.items():
                if needle in text and path not in found.get(value, []):
                    found.setdefault(value, []).append(path)
    return found
