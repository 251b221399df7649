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

A request costs, per instrument: one stat of the folder, which is all when the folder has not changed
since a listing taken once it had rested SETTLE_NS (any create, rename or removal in it changes its
mtime and ctime); otherwise (the folder the stream writes changes every flush) a listing and one stat per
file in the range, by name in the folder. (A file changed in place by another program, which the catalog's
writers never do, is seen once its folder changes.) The heatmap takes numpy arrays kept beside each file's table
(`side` and `exchange` already numbers), so no string column is touched again, and each folder's last
join of them is kept, so the run of files two requests share is copied in one piece; /liquidations
takes the Arrow tables. 24 hours of the stream's one-minute files on two exchanges (2 x 1,440 files,
600,000 rows) answer warm well under the 300 ms target, also while the current minute is rewritten
before every request (benchmarks/heatmap.py, docs/benchmarks.md).

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
import weakref
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
        self._joined: collections.OrderedDict[str, _Joined] = collections.OrderedDict()
        self.joined_bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._files)

    def get(self, path: str, st: os.stat_result | None = None) -> Cached | None:
        """The file's current version (`st`: its stat, just taken, if the caller has it); None if it is
        unreadable (moved to quarantine: a hole).

        Raises FileNotFoundError or CatalogError if the file is gone (compaction removed it after the
        caller listed the folder: the caller lists again)."""
        if st is None:
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

    def joined(self, key: str, files: Sequence[Cached]) -> Events:
        """`files`' arrays one after the other, the last such join of each `key` (a folder) kept, within
        a quarter of the byte budget beside it."""
        with self._lock:
            before = self._joined.get(key)
        joined = _join(files, before)
        if joined is not before:
            with self._lock:
                old = self._joined.pop(key, None)
                if old is not None:
                    self.joined_bytes -= old.nbytes
                self._joined[key] = joined
                self.joined_bytes += joined.nbytes
                while self.joined_bytes > self.max_bytes // 4 and self._joined:
                    _, out = self._joined.popitem(last=False)
                    self.joined_bytes -= out.nbytes
        return joined.events

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
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # a stat by name in it: half the cost
            try:
                for name in names:
                    path = f"{folder}{os.sep}{name}"
                    held = known.get(name)
                    got = cache.held(path, held) if held is not None else None
                    found.append(got if got is not None else cache.get(path, os.stat(name, dir_fd=fd)))
            finally:
                os.close(fd)
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
    parts: list[Events] = []
    for iid in instrument_ids:
        found = _instrument_files(root, cache, iid, start, end)
        if found.overlapping:  # rare (a listing during compaction): through the table, de-duplicated
            events = Events.of_table(_table(found, start, end))
        else:
            events = cache.joined(f"{root}{os.sep}{iid}", found.files)
            if found.partial:
                keep = (events.ts >= start) & (events.ts <= end)
                events = Events(events.names, *(a[keep] for a in _arrays(events)))
        if len(events):
            remap = np.array([names.setdefault(n, len(names)) for n in events.names], np.intp)
            parts.append(Events(events.names, remap[events.exchange], *_arrays(events)[1:]))
    if not parts:
        return Events.empty()
    columns = [np.concatenate(c) for c in zip(*(_arrays(e) for e in parts), strict=True)]
    return Events(tuple(names), *columns)


def _arrays(e: Events) -> tuple[np.ndarray[Any, Any], ...]:
    return (e.exchange, e.short, e.ts, e.price, e.notional)


@dataclass(frozen=True, eq=False)
class _Joined:
    """Files' arrays one after the other (codes into the local `events.names`)."""

    files: tuple[weakref.ref[Cached], ...]
    """Weak: a file the cache lets go of is not held here (a dead one matches nothing)."""
    position: dict[int, int]
    """id(file) -> its index in `files` (checked against `files`: an id can be reused once it is dead)."""
    ends: np.ndarray[Any, np.dtype[np.int64]]
    """Rows up to and including each file."""
    events: Events

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in _arrays(self.events))


def _join(files: Sequence[Cached], before: _Joined | None) -> _Joined:
    """`files`' arrays one after the other. The longest run of them that `before` holds one after the other
    (the day so far, when only the file the stream rewrites or the window's ends changed) is copied from
    it in one piece, so a request does not join 1,440 small arrays again."""
    names: dict[str, int] = {}
    heads: list[tuple[np.ndarray[Any, Any], ...]] = []
    i = 0
    j = before.position.get(id(files[0]), -1) if before is not None and files else -1
    if before is not None and j >= 0 and before.files[j]() is files[0]:
        while i < len(files) and j + i < len(before.files) and files[i] is before.files[j + i]():
            i += 1
        lo = int(before.ends[j - 1]) if j else 0
        hi = int(before.ends[j + i - 1])
        if i == len(files) and lo == 0 and hi == len(before.events):
            return before
        names = {n: k for k, n in enumerate(before.events.names)}
        heads.append(tuple(a[lo:hi] for a in _arrays(before.events)))
    for f in files[i:]:
        remap = np.array([names.setdefault(n, len(names)) for n in f.names], np.intp)
        if f.codes is not None:
            codes = remap[f.codes]
        else:
            codes = np.full(len(f.ts), remap[0] if len(remap) else 0, np.intp)
        heads.append((codes, f.short, f.ts, f.price, f.notional))
    if heads:
        columns = [np.concatenate(c) for c in zip(*heads, strict=True)]
        events = Events(tuple(names), *columns)
    else:
        events = Events.empty()
    return _Joined(
        files=tuple(weakref.ref(f) for f in files),
        position={id(f): k for k, f in enumerate(files)},
        ends=np.cumsum([len(f.ts) for f in files], dtype=np.int64),
        events=events,
    )


def _numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    out: np.ndarray[Any, Any] = col.to_numpy(zero_copy_only=False)
    return out
