"""A Parquet file's row count and one integer column's min and max, read from its footer in plain Python.

`catalog info` needs only this of each file. pyarrow reads the same footer, but importing it (with numpy,
which pyarrow loads whenever it is installed) costs more CPU than the rest of the command together; this
reads the few fields needed and nothing else. Anything it does not understand (no footer, an encrypted one,
a field of an unexpected type, a row group without statistics for the column) gives None, and the caller
reads the file through pyarrow instead (`ccxt_pipeline.catalog.files`), which also quarantines a file that
is not Parquet.

Format (apache/parquet-format, README.md "File Format" and src/main/thrift/parquet.thrift): a file ends with
the footer, its length as 4 bytes little-endian, and the magic `PAR1` (`PARE`: encrypted footer). The footer
is a `FileMetaData` struct in Thrift's compact protocol (apache/thrift, doc/specs/thrift-compact-protocol.md):
`FileMetaData` 3: num_rows i64, 4: row_groups list<RowGroup>; `RowGroup` 1: columns list<ColumnChunk>,
3: num_rows i64; `ColumnChunk` 3: meta_data ColumnMetaData; `ColumnMetaData` 1: type (2 = INT64),
3: path_in_schema list<string>, 12: statistics; `Statistics` 5: max_value, 6: min_value (PLAIN encoded: an
INT64 is 8 bytes little-endian, signed), 7 and 8: is_max_value_exact, is_min_value_exact.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAGIC = b"PAR1"
_TAIL = 8  # footer length (4 bytes) + magic
_READ = 64 * 1024
"""Bytes read from the end of a file at first: the whole footer of any of our files (a few KB)."""
_INT64 = 2  # parquet.thrift `enum Type`

# Thrift compact protocol type ids
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)


@dataclass(frozen=True)
class Footer:
    rows: int
    min: int | None
    """The column's smallest value (None with no rows)."""
    max: int | None


class _Bad(Exception):
    """The footer is not what this reader understands."""


def read_footer(path: Path, column: str) -> Footer | None:
    """Rows of the Parquet file at `path` and the min and max of its INT64 `column` (from each row group's
    statistics); None if the footer cannot be read here (the caller reads the file with pyarrow).

    An error of the system (the file gone, no permission) raises OSError."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < len(MAGIC) + _TAIL:
            return None
        fh.seek(max(0, size - _READ))
        tail = fh.read()
        if tail[-4:] != MAGIC:
            return None
        length = int.from_bytes(tail[-_TAIL:-4], "little")
        if length + _TAIL + len(MAGIC) > size:
            return None
        if length + _TAIL > len(tail):
            fh.seek(size - _TAIL - length)
            tail = fh.read()
    try:
        meta = _Reader(tail[-_TAIL - length : -_TAIL]).struct()
        return _summarise(meta, column)
    except (_Bad, IndexError, struct.error, UnicodeDecodeError, RecursionError):
        return None


def _summarise(meta: dict[int, Any], column: str) -> Footer | None:
    rows = meta.get(3)
    if not isinstance(rows, int) or rows < 0:
        return None
    lows: list[int] = []
    highs: list[int] = []
    counted = 0
    for group in meta.get(4, []):
        n = group.get(3)
        if not isinstance(n, int):
            return None
        counted += n
        if n == 0:
            continue
        chunk = next((c.get(3) for c in group.get(1, []) if _path(c.get(3)) == [column]), None)
        if not isinstance(chunk, dict) or chunk.get(1) != _INT64:
            return None
        stats = chunk.get(12)
        if not isinstance(stats, dict) or stats.get(7) is False or stats.get(8) is False:
            return None  # none, or bounds that are not the values themselves (is_max/min_value_exact)
        low, high = stats.get(6), stats.get(5)
        if not isinstance(low, bytes) or not isinstance(high, bytes) or len(low) != 8 or len(high) != 8:
            return None
        lows.append(int.from_bytes(low, "little", signed=True))
        highs.append(int.from_bytes(high, "little", signed=True))
    if counted != rows:
        return None
    return Footer(rows, min(lows) if lows else None, max(highs) if highs else None)


def _path(meta: Any) -> list[str] | None:
    if not isinstance(meta, dict):
        return None
    parts = meta.get(3)
    return [p.decode() for p in parts] if isinstance(parts, list) else None


class _Reader:
    """Thrift compact protocol: structs as {field id: value}, lists and sets as lists, maps as dicts."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise _Bad("varint too long")

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):  # inside a list or set: one byte of its own
            return self.byte() == _TRUE
        if kind == _BYTE:
            return self.byte()
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.pos += 8
            return struct.unpack_from("<d", self.data, self.pos - 8)[0]
        if kind == _BINARY:
            n = self.varint()
            if self.pos + n > len(self.data):
                raise _Bad("binary past the end")
            self.pos += n
            return self.data[self.pos - n : self.pos]
        if kind in (_LIST, _SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            return [self.value(head & 0x0F) for _ in range(size)]
        if kind == _MAP:
            size = self.varint()
            if not size:
                return {}
            types = self.byte()
            return {self.value(types >> 4): self.value(types & 0x0F) for _ in range(size)}
        if kind == _STRUCT:
            return self.struct()
        raise _Bad(f"unknown type {kind}")

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:  # stop
                return fields
            kind = head & 0x0F
            delta = head >> 4
            last = last + delta if delta else self.zigzag()
            if kind in (_TRUE, _FALSE):  # a bool field carries its value in its type
                fields[last] = kind == _TRUE
            else:
                fields[last] = self.value(kind)
