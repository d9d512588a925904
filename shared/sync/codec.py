"""The binary framing of a stored sync state (format version 1), apart from what the columns mean.

    offset  size  field
    0       8     magic b"OMNISYNC"
    8       2     format version, little-endian u16 (1)
    10      4     length L of the header, u32
    14      4     CRC-32 of the header
    18      L     header: UTF-8 JSON (counts, the export's tag table, and the section table)
    18+L    ...   the sections, back to back, in the order the section table lists them

Each section is a fixed-width column (or the concatenated emails) stored `raw` or `zlib`-compressed,
optionally byte-shuffled first (byte 0 of every value, then byte 1, ...): sorted 64-bit keys then
compress to about 6 bytes each. The section table gives every section's stored size, raw size and
the CRC-32 of its raw bytes, so a reader knows what to expect before it inflates anything and stops
at the first inconsistency with a `StateFormatError` naming the section.
"""
from __future__ import annotations

import json
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator

from .errors import StateFormatError, UnknownVersionError

MAGIC = b"OMNISYNC"
FORMAT_VERSION = 1
KNOWN_VERSIONS = (FORMAT_VERSION,)
_PREFIX = struct.Struct("<8sHII")  # magic, version, header length, header CRC-32
MAX_HEADER_BYTES = 1 << 20
CODECS = ("raw", "zlib")
_INFLATE_INPUT = 256 * 1024  # compressed bytes fed to the inflater at a time
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True)
class Section:
    """One stored section: its name, how it is stored, and what its raw bytes must look like."""

    name: str
    codec: str  # "raw" | "zlib"
    shuffle: int  # value width in bytes that was byte-shuffled (1: not shuffled)
    size: int  # bytes stored
    raw_size: int  # bytes once inflated (and un-shuffled)
    crc32: int  # of the raw bytes

    def to_dict(self) -> dict:
        return {"name": self.name, "codec": self.codec, "shuffle": self.shuffle, "size": self.size,
                "rawSize": self.raw_size, "crc32": self.crc32}

    @classmethod
    def from_dict(cls, data: object, where: str) -> "Section":
        if not isinstance(data, dict):
            raise StateFormatError("a section entry is not an object", where=where)
        values = {key: data.get(key) for key in ("name", "codec", "shuffle", "size", "rawSize", "crc32")}
        if not isinstance(values["name"], str) or values["codec"] not in CODECS:
            raise StateFormatError(f"bad section name or codec {values['name']!r}/{values['codec']!r}", where=where)
        for key in ("shuffle", "size", "rawSize", "crc32"):
            if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 0:
                raise StateFormatError(f"section field {key!r} must be a non-negative integer", where=where)
        if values["shuffle"] not in (1, 2, 4, 8):
            raise StateFormatError(f"shuffle width {values['shuffle']} is not 1, 2, 4 or 8", where=where)
        return cls(values["name"], values["codec"], values["shuffle"], values["size"], values["rawSize"],
                   values["crc32"])


# --------------------------------------------------------------------------- columns <-> bytes


def column_bytes(column) -> bytes:
    """An `array` as little-endian bytes."""
    if _BIG_ENDIAN:
        column = column[:]
        column.byteswap()
    return column.tobytes()


def fill_column(column, raw: bytes | bytearray) -> None:
    """Append little-endian `raw` to an `array` of the matching item size."""
    column.frombytes(raw)
    if _BIG_ENDIAN:
        column.byteswap()


def shuffle(raw: bytes, width: int) -> bytes:
    if width == 1:
        return raw
    return b"".join(raw[i::width] for i in range(width))


def unshuffle(data: bytes | bytearray, width: int) -> bytes | bytearray:
    if width == 1:
        return data
    out = bytearray(len(data))
    count = len(data) // width
    for i in range(width):
        out[i::width] = data[i * count:(i + 1) * count]
    return out


def pack_section(name: str, raw: bytes, *, codec: str = "zlib", shuffle_width: int = 1,
                 level: int = 6) -> tuple[Section, bytes]:
    """A column's raw bytes as a stored section."""
    stored = shuffle(raw, shuffle_width)
    if codec == "zlib":
        stored = zlib.compress(stored, level)
    return Section(name, codec, shuffle_width, len(stored), len(raw), zlib.crc32(raw)), stored


def unpack_section(section: Section, stored: bytes | memoryview) -> bytes | bytearray:
    """A stored section's raw bytes, checked against the section table."""
    where = f"section {section.name!r}"
    if len(stored) != section.size:
        raise StateFormatError(f"{len(stored)} bytes stored, the header says {section.size}", where=where)
    if section.codec == "zlib":
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(stored, section.raw_size + 1)  # a bomb stops one byte over
        except zlib.error as exc:
            raise StateFormatError(f"cannot be inflated: {exc}", where=where) from None
        if not inflater.eof or inflater.unused_data:
            raise StateFormatError("the compressed stream is incomplete or has trailing bytes", where=where)
    else:
        data = bytes(stored)
    if len(data) != section.raw_size:
        raise StateFormatError(f"{len(data)} raw bytes, the header says {section.raw_size}", where=where)
    data = unshuffle(data, section.shuffle)
    if zlib.crc32(data) != section.crc32:
        raise StateFormatError("checksum mismatch", where=where)
    return data


# --------------------------------------------------------------------------- the whole blob


def frame(header: dict, sections: list[tuple[Section, bytes | list[bytes]]]) -> list[bytes]:
    """The stored form as a list of byte strings to write in order (nothing is copied together)."""
    header = dict(header, sections=[section.to_dict() for section, _ in sections])
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise StateFormatError(f"the header would take {len(text)} bytes (limit {MAX_HEADER_BYTES})",
                               where="header")
    parts = [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(text), zlib.crc32(text)), text]
    for _, stored in sections:
        parts.extend(stored if isinstance(stored, list) else [stored])
    return parts


class ByteSource:
    """Exact-size reads over an iterable of byte strings (a blob download's chunks, or one bytes)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = bytearray()
        self.offset = 0  # bytes handed out so far

    def read(self, size: int, where: str) -> bytes:
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise StateFormatError(f"the data ends at byte {self.offset + len(self._buffer)}, "
                                       f"{size - len(self._buffer)} bytes short", where=where)
            self._buffer += chunk
        with memoryview(self._buffer) as view:
            data = bytes(view[:size])
        del self._buffer[:size]
        self.offset += size
        return data

    def expect_end(self) -> None:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return
            self._buffer += chunk
        raise StateFormatError(f"unexpected bytes after the last section (from byte {self.offset})",
                               where="end of data")


def header_size(head: bytes) -> int:
    """How many leading bytes hold the whole header, from at least its first 18 (0 when fewer)."""
    if len(head) < _PREFIX.size:
        return 0
    return _PREFIX.size + _PREFIX.unpack(head[:_PREFIX.size])[2]


def read_header(source: ByteSource) -> tuple[int, dict, list[Section]]:
    """(version, header fields, section table) of a stored state; checks the magic, version and CRC."""
    prefix = source.read(_PREFIX.size, "header")
    magic, version, length, crc = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise StateFormatError(f"not a sync state (starts with {magic[:8]!r})", where="header")
    if version not in KNOWN_VERSIONS:
        raise UnknownVersionError(version, KNOWN_VERSIONS)
    if length > MAX_HEADER_BYTES:
        raise StateFormatError(f"header of {length} bytes is over the {MAX_HEADER_BYTES}-byte limit", where="header")
    text = source.read(length, "header")
    if zlib.crc32(text) != crc:
        raise StateFormatError("header checksum mismatch", where="header")
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFormatError(f"header is not JSON: {exc}", where="header") from None
    if not isinstance(header, dict) or not isinstance(header.get("sections"), list):
        raise StateFormatError("header has no section table", where="header")
    sections = [Section.from_dict(entry, f"header.sections[{i}]") for i, entry in enumerate(header.pop("sections"))]
    return version, header, sections


# --------------------------------------------------------------------------- streaming emails


class Deflater:
    """Concatenated byte strings compressed as one zlib stream, with its raw size and CRC-32.

    Small pieces (one email each) are gathered and compressed 64 KiB at a time: one zlib call per
    email would cost more than everything else a contact costs."""

    _GATHER = 64 * 1024

    def __init__(self, level: int = 6) -> None:
        self._compressor = zlib.compressobj(level)
        self._pending: list[bytes] = []
        self._pending_size = 0
        self.parts: list[bytes] = []
        self.raw_size = 0
        self.crc32 = 0

    def add(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= self._GATHER:
            self._compress_pending()

    def _compress_pending(self) -> None:
        data = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        self.raw_size += len(data)
        self.crc32 = zlib.crc32(data, self.crc32)
        out = self._compressor.compress(data)
        if out:
            self.parts.append(out)

    def finish(self, name: str) -> tuple[Section, list[bytes]]:
        self._compress_pending()
        self.parts.append(self._compressor.flush())
        size = sum(map(len, self.parts))
        return Section(name, "zlib", 1, size, self.raw_size, self.crc32), self.parts


class Inflater:
    """Sequential reads of a stored zlib section's raw bytes, inflating only as far as needed (at most
    1 MiB ahead of the reader, and never past the raw size the section table gives)."""

    _STEP = 1 << 20

    def __init__(self, section: Section, stored: list[bytes]) -> None:
        self.section = section
        self._where = f"section {section.name!r}"
        self._pieces = iter(_pieces(stored))
        self._inflater = zlib.decompressobj()
        self._tail: bytes | memoryview = b""
        self._buffer = bytearray()
        self._consumed = 0  # raw offset of _buffer[0]
        self._crc = 0

    @property
    def position(self) -> int:
        return self._consumed

    def _inflate_more(self) -> bool:
        """Inflate up to one step more into the buffer; False at the end of the stored bytes."""
        if not self._tail:
            self._tail = next(self._pieces, b"")
            if not self._tail:
                return False
        try:
            self._buffer += self._inflater.decompress(self._tail, self._STEP)
        except zlib.error as exc:
            raise StateFormatError(f"cannot be inflated: {exc}", where=self._where) from None
        self._tail = self._inflater.unconsumed_tail
        if self._consumed + len(self._buffer) > self.section.raw_size:
            raise StateFormatError(f"inflates past the {self.section.raw_size} raw bytes the header gives",
                                   where=self._where)
        return True

    def read(self, size: int) -> bytes:
        """The next `size` raw bytes."""
        while len(self._buffer) < size:
            if not self._inflate_more():
                raise StateFormatError(f"ends at raw byte {self._consumed + len(self._buffer)}, "
                                       f"{size - len(self._buffer)} bytes short", where=self._where)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._consumed += size
        self._crc = zlib.crc32(data, self._crc)
        return data

    def skip(self, size: int) -> None:
        self.read(size)  # inflating is the cost; keeping the CRC of what was skipped keeps the full check

    def check_complete(self) -> None:
        """After every raw byte was read: the stream ended where the table says, with its CRC."""
        while self._inflate_more():
            pass
        if not self._inflater.eof or self._inflater.unused_data:
            raise StateFormatError("the compressed stream is incomplete or has trailing bytes", where=self._where)
        if self._consumed != self.section.raw_size or self._buffer:
            raise StateFormatError(f"{self._consumed + len(self._buffer)} raw bytes, the header says "
                                   f"{self.section.raw_size}", where=self._where)
        if self._crc != self.section.crc32:
            raise StateFormatError("checksum mismatch", where=self._where)


def _pieces(stored: list[bytes]) -> Iterator[memoryview]:
    for part in stored:
        view = memoryview(part)
        for start in range(0, len(view), _INFLATE_INPUT):
            yield view[start:start + _INFLATE_INPUT]
