"""The catalog writer: every invariant of the catalog is kept here, and callers cannot break it.

Invariants (see docs/catalog.md and NautilusTrader 1.221's reader):

- files of one type and instrument are each sorted by `ts_init` and pairwise disjoint, and each name gives
  the inclusive `ts_init` range of its rows;
- no two rows share a natural key (`DataKind.key`); writing the same rows twice leaves one copy, and the
  stored copy wins over a new one;
- one schema (and dtype) per type, with a schema version in the file metadata.

How a batch is written, so that a crash (SIGKILL) at any instant leaves a readable, duplicate-free catalog:
the batch is sorted and de-duplicated, then split along the existing files' ranges. Rows inside an
existing file's range are merged into that file, which is replaced in one atomic rename under the same
name (its range cannot grow). Rows in the gaps between files become new files whose ranges lie strictly
inside the gaps. Each step is a single rename, so at every instant every file is whole and no two files
overlap; a crash can only leave hidden temp files, which the next open removes. Files are never merged
across ranges here; `repair` (and compaction) do that, losslessly, by natural key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.files import exclusive_lock, read_data_file, write_parquet_atomic
from ccxt_pipeline.catalog.layout import (
    LOCK_FILE,
    DataFile,
    data_root,
    file_name,
    instrument_dir,
    overlapping_files,
)
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.migrate import ensure_migrated
from ccxt_pipeline.catalog.reader import CatalogReader
from ccxt_pipeline.catalog.repair import RepairReport, repair
from ccxt_pipeline.catalog.schema import DataKind, conform_table, kind_of, to_table
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.models import Record

log = logging.getLogger(__name__)


@dataclass
class WriteResult:
    """What one write did: rows new to the catalog, rows it already held (or repeated in the batch)."""

    rows_written: int = 0
    rows_duplicate: int = 0
    files_written: int = 0
    by_instrument: dict[str, int] = field(default_factory=dict)

    def add(self, other: WriteResult) -> None:
        self.rows_written += other.rows_written
        self.rows_duplicate += other.rows_duplicate
        self.files_written += other.files_written
        for iid, n in other.by_instrument.items():
            self.by_instrument[iid] = self.by_instrument.get(iid, 0) + n


class CatalogWriter(CatalogReader):
    """Writes validated records into a catalog; also reads it (see :class:`CatalogReader`).

    Opening creates the catalog folder if needed, checks it is writable, and repairs what an earlier
    crash may have left (temp files, overlapping files) without losing a committed row. One writer at a
    time per catalog holds an exclusive lock (`.ccxt_pipeline.lock`) while it changes files; other
    processes wait for it.

    `durable=False` skips fsync (tests and benchmarks of the logic only; a power cut may then lose data).
    """

    def __init__(self, root: Path | str, *, durable: bool = True, repair_on_open: bool = True) -> None:
        super().__init__(root)
        self.durable = durable
        try:
            data_root(self.root).mkdir(parents=True, exist_ok=True)
            probe = self.root / LOCK_FILE
            probe.touch(exist_ok=True)
        except OSError as exc:
            raise CatalogError(f"catalog path {self.root} is not writable: {exc.strerror or exc}") from exc
        self.last_repair: RepairReport | None = None
        self._migrated: set[Path] = set()  # folders checked for files of an earlier schema version
        if repair_on_open:
            with exclusive_lock(self.root / LOCK_FILE):
                self.last_repair = repair(self.root, durable=durable)
            if self.last_repair.changed:
                log.warning("catalog %s repaired on open: %s", self.root, self.last_repair.summary())

    # --- public API -------------------------------------------------------------------------------------

    def write(self, records: Iterable[Record], *, bucket_ns: int | None = None) -> WriteResult:
        """Write validated records of any types and instruments. Returns what was new.

        `bucket_ns` (streams): new rows go into one file per time bucket (a minute, say), named for the
        bucket rather than for its rows, so that later flushes of the same bucket merge into it instead of
        adding a file each; names then cover their rows without being exact, which readers accept.
        """
        by_kind: dict[type[Record], list[Record]] = {}
        for r in records:
            by_kind.setdefault(type(r), []).append(r)
        result = WriteResult()
        for model, rows in by_kind.items():
            kind = kind_of(model)
            result.add(self._write_conformed(kind, to_table(kind, rows), bucket_ns))
        return result

    def write_table(self, kind: DataKind, table: pa.Table, *, bucket_ns: int | None = None) -> WriteResult:
        """Write an Arrow table of `kind`; it is checked against the model's rules column by column.

        This is the one point where Arrow input is validated (`conform_table`, the model's rules vectorised);
        a table a producer already conformed is not checked again. Records (`write`) were validated by
        their model when built.
        """
        return self._write_conformed(kind, conform_table(kind, table), bucket_ns)

    # --- internals --------------------------------------------------------------------------------------

    def _write_conformed(self, kind: DataKind, table: pa.Table, bucket_ns: int | None = None) -> WriteResult:
        result = WriteResult()
        if table.num_rows == 0:
            return result
        iids = pc.unique(table.column("instrument_id")).to_pylist()
        with exclusive_lock(self.root / LOCK_FILE):
            for iid in sorted(iids):
                part = table if len(iids) == 1 else table.filter(pc.equal(table.column("instrument_id"), iid))
                result.add(self._write_instrument(kind, iid, part, bucket_ns))
        return result

    def _write_instrument(
        self, kind: DataKind, iid: str, table: pa.Table, bucket_ns: int | None = None
    ) -> WriteResult:
        batch = sort_unique(kind, table)
        result = WriteResult(rows_duplicate=table.num_rows - batch.num_rows)
        folder = instrument_dir(self.root, kind, iid)
        # An earlier release's files here are migrated first: a series never changes meaning halfway.
        ensure_migrated(kind, folder, self._migrated, durable=self.durable)
        ts = batch.column("ts_init").to_numpy()
        first, last = int(ts[0]), int(ts[-1])
        if bucket_ns:  # see the files the buckets may touch, to name new ones clear of them
            first, last = first - first % bucket_ns, last - last % bucket_ns + bucket_ns - 1
        files = overlapping_files(folder, first, last)
        for existing, lo, hi in _split_by_files(ts, files):
            rows = batch.slice(lo, hi - lo)
            if existing is None:
                for name_lo, name_hi, a, b in _new_files(ts, lo, hi, files, bucket_ns):
                    write_parquet_atomic(
                        rows.slice(a - lo, b - a), folder / file_name(name_lo, name_hi), durable=self.durable
                    )
                    result.files_written += 1
                new = rows.num_rows
            else:
                new = self._merge_into(kind, existing, rows)
                result.files_written += 1 if new else 0
            result.rows_written += new
            result.rows_duplicate += rows.num_rows - new
        if result.rows_written:
            result.by_instrument[iid] = result.rows_written
        return result

    def _merge_into(self, kind: DataKind, existing: DataFile, rows: pa.Table) -> int:
        """Merge `rows` (all inside `existing`'s range) into it, replacing it atomically; return new rows."""
        stored = read_data_file(kind, existing.path)
        if stored is None:  # unreadable: quarantined; the rows go to a file of their own in its range
            ts = rows.column("ts_init")
            name = file_name(int(ts[0].as_py()), int(ts[-1].as_py()))
            write_parquet_atomic(rows, existing.path.with_name(name), durable=self.durable)
            return int(rows.num_rows)
        merged = sort_unique(kind, pa.concat_tables([stored, rows]))
        new: int = merged.num_rows - stored.num_rows
        if new:
            write_parquet_atomic(merged, existing.path, durable=self.durable)
        return new


def _new_files(
    ts: np.ndarray, lo: int, hi: int, files: Sequence[DataFile], bucket_ns: int | None
) -> list[tuple[int, int, int, int]]:
    """Files for rows [lo, hi) that fall between existing files: (name start, name end, row lo, row hi).

    Without buckets, one file named for its first and last row. With buckets, one file per bucket, named
    for the bucket but clipped clear of the neighbouring files (names never overlap).
    """
    if not bucket_ns:
        return [(int(ts[lo]), int(ts[hi - 1]), lo, hi)]
    out = []
    a = lo
    while a < hi:
        start = int(ts[a]) - int(ts[a]) % bucket_ns
        b = int(np.searchsorted(ts, start + bucket_ns, side="left", sorter=None))
        b = min(max(b, a + 1), hi)
        row_lo, row_hi = int(ts[a]), int(ts[b - 1])
        prev_end = max((f.end for f in files if f.end < row_lo), default=start - 1)
        next_start = min((f.start for f in files if f.start > row_hi), default=start + bucket_ns)
        out.append((max(start, prev_end + 1), min(start + bucket_ns - 1, next_start - 1), a, b))
        a = b
    return out


def _split_by_files(ts: np.ndarray, files: Sequence[DataFile]) -> list[tuple[DataFile | None, int, int]]:
    """Split sorted `ts` into runs [lo, hi): each inside one file's range, or in a gap (file None)."""
    out: list[tuple[DataFile | None, int, int]] = []
    pos, n = 0, len(ts)
    first, last = int(ts[0]), int(ts[-1])
    for f in files:
        if f.end < first or f.start > last:
            continue
        lo = int(np.searchsorted(ts, f.start, side="left"))
        hi = int(np.searchsorted(ts, f.end, side="right"))
        if lo > pos:
            out.append((None, pos, lo))
        if hi > lo:
            out.append((f, lo, hi))
        pos = max(pos, hi)
    if pos < n:
        out.append((None, pos, n))
    return out
