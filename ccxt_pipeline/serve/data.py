"""What the HTTP service reads from the catalog: liquidations through a cache of immutable files.

Data files are immutable once named (written to a temp file and renamed; compaction writes new files and
removes the old ones), so a file's columns can be kept in memory, keyed by its path, size, mtime and inode,
and never go stale: a changed file is a different key. Warm requests then cost a folder listing and a
concatenation, whether the day is one compacted file or 1,440 one-minute stream files.

Between compaction's rename and its removal of the sources, a listing can see a new daily file beside the
files it replaces (same rows twice); such a listing is de-duplicated by the natural key, like the writer
does, so a row is never counted twice. A file removed between the listing and the read is listed again.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.files import read_data_file
from ccxt_pipeline.catalog.layout import DataFile, instrument_dir, overlapping_files
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.schema import LIQUIDATION
from ccxt_pipeline.errors import CatalogError

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

_LIQ_SCHEMA = pa.schema([LIQUIDATION.schema.field(c) for c in LIQUIDATION_COLUMNS])
_RETRIES = 5


class FileCache:
    """Columns of data files by (path, size, mtime, inode), least recently used first out, within a byte
    budget. Thread-safe (FastAPI runs plain handlers in a thread pool)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._tables: collections.OrderedDict[tuple[str, int, int, int], pa.Table] = collections.OrderedDict()
        self._lock = threading.Lock()

    def liquidations(self, f: DataFile) -> pa.Table | None:
        """The file's liquidation columns; None if it is unreadable (moved to quarantine: a hole)."""
        st = os.stat(f.path)  # FileNotFoundError if compaction removed it: the caller lists again
        key = (str(f.path), st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                self.hits += 1
                return table
        table = read_data_file(LIQUIDATION, f.path, columns=LIQUIDATION_COLUMNS)
        if table is None:
            return None
        table = table.cast(_LIQ_SCHEMA).combine_chunks()
        with self._lock:
            self.misses += 1
            if key not in self._tables:
                self._tables[key] = table
                self.bytes += table.nbytes
            while self.bytes > self.max_bytes and len(self._tables) > 1:
                _, old = self._tables.popitem(last=False)
                self.bytes -= old.nbytes
        return table


def read_liquidations(
    root: Path, cache: FileCache, instrument_ids: Sequence[str], start: int, end: int
) -> pa.Table:
    """Liquidations of the instruments with `start <= ts_init <= end`, each instrument in `ts_init` order
    (instruments one after the other), in the columns of :data:`LIQUIDATION_COLUMNS`."""
    parts = [_instrument(root, cache, iid, start, end) for iid in instrument_ids]
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return _LIQ_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _instrument(root: Path, cache: FileCache, instrument_id: str, start: int, end: int) -> pa.Table:
    folder = instrument_dir(root, LIQUIDATION, instrument_id)
    for attempt in range(_RETRIES):
        files = overlapping_files(folder, start, end)
        try:
            tables = [t for t in (cache.liquidations(f) for f in files) if t is not None]
        except (FileNotFoundError, CatalogError):
            if attempt == _RETRIES - 1:
                raise
            continue  # removed by compaction after the listing: its rows are in a newer file
        break
    if not tables:
        return _LIQ_SCHEMA.empty_table()
    table = pa.concat_tables(tables).combine_chunks()  # one chunk: what follows runs on contiguous arrays
    if files[0].start < start or files[-1].end > end:
        ts = table.column("ts_init")
        table = table.filter(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)))
    if any(a.end >= b.start for a, b in itertools.pairwise(files)):
        table = sort_unique(LIQUIDATION, table)  # compaction caught half way: a row counts once
    return table
