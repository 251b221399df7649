"""What the HTTP service reads from the catalog: liquidations through a cache of the catalog's files.

The catalog's writers never change a data file in place: each version of a file is written to a temp
file and renamed over its name (catalog/files.py `write_parquet_atomic`: the stream rewrites its current
minute file every flush that way), and compaction renames its daily file in before it removes the files
it replaces. So a version is known by its path and stat (size, mtime, inode): the cache keeps, per path,
the columns of the version last read, and reads the file again when its stat differs. A version read
less than :data:`SETTLE_NS` after it was written is not kept for later requests (a file system stamps
mtimes with a coarse clock, so two versions written within one tick can share an mtime, and a removed
file's inode number can come back): the file the stream is still rewriting is read on every request
(it is one small file), every other file once.

A request costs, per instrument: one listing of the folder (each name parsed once per process), one stat
per file in the range, and joining the cached columns. The heatmap takes numpy arrays kept beside each
file's table (`side` and `exchange` already turned into numbers), so no string column is touched again;
/liquidations takes the Arrow tables. 24 hours of the stream's one-minute files on two exchanges
(2 x 1,440 files, 600,000 rows) answer in well under the 300 ms target (docs/benchmarks.md).

A listing that sees compaction half way (a new daily file beside the files it replaces) has files whose
ranges overlap: those rows are de-duplicated by the natural key, as the writer does, so a row is never
counted twice. A file removed between the listing and its read makes the service list the folder again.
A file that cannot be read is moved to quarantine by the reader (catalog/files.py) and is a hole in the
answer.
"""

from __future__ import annotations

import collections
import functools
import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.files import read_data_file
from ccxt_pipeline.catalog.layout import (
    data_file_names,
    instrument_dir,
    name_overlaps,
    parse_file_name,
    stamp_bounds,
)
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.schema import LIQUIDATION
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.serve.heatmap import Events

LIQUIDATION_COLUMNS = [
    "exchange",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "notional",
    "ts_event",
    "ts_init",
]
"""Every liquidation column the service answers with (the natural key's columns among them)."""

SETTLE_NS = 2_000_000_000
"""A file version read at least this long after its mtime is kept for later requests (see above)."""

_LIQ_SCHEMA = pa.schema([LIQUIDATION.schema.field(c) for c in LIQUIDATION_COLUMNS])
_RETRIES = 5
_FOLDERS = 4096
"""Folder listings remembered (a few hundred bytes per file named; the least recently listed out)."""
_STAMP = len("2025-01-01T00-00-00-000000000Z")


@functools.lru_cache(maxsize=1 << 16)
def _well_formed(name: str) -> bool:
    """The name is `<start>_<end>.parquet` (memoised: a day of minute files is 1,440 names per folder)."""
    return parse_file_name(name) is not None


@dataclass(frozen=True, eq=False)
class Cached:
    """One version of one data file: its liquidation columns, and the heatmap's arrays over them."""

    key: tuple[int, int, int]
    """(size, mtime_ns, inode) when it was read."""
    settled: bool
    table: pa.Table
    names: tuple[str, ...]
    """The distinct `exchange` values (one, in the catalog: a folder is one instrument)."""
    codes: np.ndarray[Any, np.dtype[np.intp]] | None
    """Per row, an index into `names`; None when there is one name."""
    short: np.ndarray[Any, np.dtype[np.bool_]]
    ts: np.ndarray[Any, np.dtype[np.int64]]
    price: np.ndarray[Any, np.dtype[np.float64]]
    notional: np.ndarray[Any, np.dtype[np.float64]]
    nbytes: int


def _cached(table: pa.Table, key: tuple[int, int, int], settled: bool) -> Cached:
    table = table.cast(_LIQ_SCHEMA).combine_chunks()
    exchange = table.column("exchange")
    names = tuple(sorted(str(v) for v in pc.unique(exchange).to_pylist()))
    codes = None
    if len(names) > 1:
        codes = _numpy(pc.index_in(exchange, value_set=pa.array(names))).astype(np.intp)
    short = _numpy(pc.not_equal(table.column("side"), "LONG")).astype(np.bool_)
    return Cached(
        key=key,
        settled=settled,
        table=table,
        names=names,
        codes=codes,
        short=short,
        ts=_numpy(table.column("ts_init")).astype(np.int64, copy=False),
        price=_numpy(table.column("price")).astype(np.float64, copy=False),
        notional=_numpy(table.column("notional")).astype(np.float64, copy=False),
        nbytes=table.nbytes + short.nbytes + (0 if codes is None else codes.nbytes),
    )


class FileCache:
    """The last version read of each data file, by path; least recently used out first, within a byte
    budget. Thread-safe (FastAPI runs plain handlers in a thread pool)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._files: collections.OrderedDict[str, Cached] = collections.OrderedDict()
        self._folders: dict[str, _Folder] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    def get(self, path: str) -> Cached | None:
        """The file's current version; None if it is unreadable (moved to quarantine: a hole).

        Raises FileNotFoundError or CatalogError if the file is gone (compaction removed it after the
        caller listed the folder: the caller lists again)."""
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            held = self._files.get(path)
            if held is not None and held.key == key and held.settled:
                self._files.move_to_end(path)
                self.hits += 1
                return held
        read_ns = time.time_ns()
        table = read_data_file(LIQUIDATION, Path(path), columns=LIQUIDATION_COLUMNS)
        if table is None:
            self._drop(path)
            return None
        found = _cached(table, key, settled=read_ns - st.st_mtime_ns >= SETTLE_NS)
        try:
            after = os.stat(path)
            same = (after.st_size, after.st_mtime_ns, after.st_ino) == key
        except FileNotFoundError:
            same = False
        with self._lock:
            self.misses += 1
            if not same:  # replaced while read: what was read is a whole version, but which one is unknown
                return found
            old = self._files.pop(path, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._files[path] = found
            self.bytes += found.nbytes
            while self.bytes > self.max_bytes and len(self._files) > 1:
                _, out = self._files.popitem(last=False)
                self.bytes -= out.nbytes
        return found

    def _drop(self, path: str) -> None:
        with self._lock:
            old = self._files.pop(path, None)
            if old is not None:
                self.bytes -= old.nbytes

    def held(self, path: str, key: tuple[int, int, int]) -> Cached | None:
        """The version of `path` with stat `key` if it is held, without asking the file system."""
        with self._lock:
            held = self._files.get(path)
            if held is None or held.key != key:
                return None
            self._files.move_to_end(path)
            self.hits += 1
            return held

    def folder(self, folder: str) -> _Folder | None:
        with self._lock:
            return self._folders.get(folder)

    def remember(self, folder: str, memo: _Folder) -> None:
        with self._lock:
            self._folders.pop(folder, None)
            self._folders[folder] = memo
            while len(self._folders) > _FOLDERS:
                del self._folders[next(iter(self._folders))]


@dataclass(frozen=True)
class _Folder:
    """A folder's listing, valid while the folder's own stat is `key` (see :func:`_instrument_files`)."""

    key: tuple[int, int, int]
    """The folder's (mtime_ns, ctime_ns, inode) before it was listed."""
    names: list[str]
    """Its well-formed data file names, in time order."""
    files: dict[str, tuple[int, int, int]]
    """Stat keys of the files read from this listing (all settled)."""


@dataclass(frozen=True)
class _Files:
    """One instrument's files for a request: what was read, and how the names relate to the range."""

    files: list[Cached]
    partial: bool
    """A file reaches outside [start, end]: rows must be filtered by `ts_init`."""
    overlapping: bool
    """Two files' ranges overlap (compaction caught half way): rows must be de-duplicated."""


def _instrument_files(root: Path, cache: FileCache, instrument_id: str, start: int, end: int) -> _Files:
    """The instrument's files for [start, end], each at its current version.

    A folder's mtime changes whenever a file in it is created, renamed over or removed, and the catalog
    changes files no other way. So a listing taken when the folder's mtime was at least SETTLE_NS old stays
    true, with the versions then read, for as long as the folder's stat is the same: such a request costs
    one stat. Otherwise (the folder the stream is writing changes every flush) the folder is listed and
    each file in the range is stat'ed, and only changed files are read."""
    folder = str(instrument_dir(root, LIQUIDATION, instrument_id))
    lo, hi = stamp_bounds(start, end)
    for attempt in range(_RETRIES):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            return _Files([], partial=False, overlapping=False)
        listed_ns = time.time_ns()
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        memo = cache.folder(folder) if attempt == 0 else None
        if memo is not None and memo.key == key:
            all_names, known = memo.names, memo.files
        else:
            all_names = [n for n in data_file_names(Path(folder)) if _well_formed(n)]
            known = {}
        names = [n for n in all_names if name_overlaps(n, lo, hi)]
        found: list[Cached | None] = []
        try:
            for name in names:
                path = f"{folder}{os.sep}{name}"
                held = known.get(name)
                got = cache.held(path, held) if held is not None else None
                found.append(got if got is not None else cache.get(path))
        except (FileNotFoundError, CatalogError):
            if attempt == _RETRIES - 1:
                raise
            continue  # removed by compaction after the listing: its rows are in a newer file
        if listed_ns - st.st_mtime_ns >= SETTLE_NS:
            read = {n: f.key for n, f in zip(names, found, strict=True) if f is not None and f.settled}
            if memo is None or memo.key != key or not read.keys() <= memo.files.keys():
                cache.remember(folder, _Folder(key, all_names, {**known, **read}))
        break
    # Names are `<start stamp>_<end stamp>.parquet` and stamps compare as times (catalog/layout.py).
    return _Files(
        files=[f for f in found if f is not None],
        partial=bool(names) and (names[0][:_STAMP] < lo or names[-1][_STAMP + 1 : 2 * _STAMP + 1] > hi),
        overlapping=any(a[_STAMP + 1 : 2 * _STAMP + 1] >= b[:_STAMP] for a, b in itertools.pairwise(names)),
    )


def read_liquidations(
    root: Path, cache: FileCache, instrument_ids: Sequence[str], start: int, end: int
) -> pa.Table:
    """Liquidations of the instruments with `start <= ts_init <= end`, each instrument in `ts_init` order
    (instruments one after the other), in the columns of :data:`LIQUIDATION_COLUMNS`."""
    parts = [_table(_instrument_files(root, cache, iid, start, end), start, end) for iid in instrument_ids]
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return _LIQ_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _table(found: _Files, start: int, end: int) -> pa.Table:
    if not found.files:
        return _LIQ_SCHEMA.empty_table()
    table = pa.concat_tables([f.table for f in found.files]).combine_chunks()
    if found.partial:
        ts = table.column("ts_init")
        table = table.filter(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)))
    if found.overlapping:
        table = sort_unique(LIQUIDATION, table)  # compaction caught half way: a row counts once
    return table


def read_events(root: Path, cache: FileCache, instrument_ids: Sequence[str], start: int, end: int) -> Events:
    """The same rows as :func:`read_liquidations`, as the heatmap's arrays (no string column touched)."""
    names: dict[str, int] = {}
    codes: list[np.ndarray[Any, Any]] = []
    run_code, run_rows = 0, 0  # consecutive files of one exchange: their codes made in one go
    columns: tuple[list[np.ndarray[Any, Any]], ...] = ([], [], [], [])
    partial = False
    for iid in instrument_ids:
        found = _instrument_files(root, cache, iid, start, end)
        parts: list[Cached | Events] = list(found.files)
        if found.overlapping:  # rare (a listing during compaction): through the table, de-duplicated
            parts = [Events.of_table(_table(found, start, end))]
        else:
            partial = partial or found.partial
        for part in parts:
            many = part.names if len(part.names) > 1 else ()
            if not many and part.names and names.setdefault(part.names[0], len(names)) == run_code:
                run_rows += len(part.ts)
            else:
                codes.append(np.full(run_rows, run_code, np.intp))
                if many:
                    remap = np.array([names.setdefault(n, len(names)) for n in many], np.intp)
                    codes.append(remap[part.exchange if isinstance(part, Events) else part.codes])
                    run_rows = 0
                else:
                    run_code, run_rows = (names[part.names[0]], len(part.ts)) if part.names else (0, 0)
            for column, array in zip(columns, (part.short, part.ts, part.price, part.notional), strict=True):
                column.append(array)
    codes.append(np.full(run_rows, run_code, np.intp))
    if not columns[1]:
        return Events.empty()
    exchange = np.concatenate(codes)
    short, ts, price, notional = (np.concatenate(c) for c in columns)
    events = Events(tuple(names), exchange, short, ts, price, notional)
    if partial:
        keep = (ts >= start) & (ts <= end)
        events = Events(events.names, *(a[keep] for a in (exchange, short, ts, price, notional)))
    return events


def _numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    out: np.ndarray[Any, Any] = col.to_numpy(zero_copy_only=False)
    return out
