"""Looking after a catalog: verify its invariants (and repair what can be repaired without losing a row),
compact small files into daily ones, and describe what it holds.

Every change goes through the same atomic steps as the writer (temp file, fsync, rename), under the catalog
lock; a crash at any point leaves overlapping files at worst, which `repair` merges losslessly.
"""

from __future__ import annotations

import bisect
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.files import (
    BadDataFile,
    exclusive_lock,
    read_data_file,
    remove_files,
    write_parquet_atomic,
)
from ccxt_pipeline.catalog.layout import (
    DATA_DIR,
    LOCK_FILE,
    PARQUET,
    TMP_SUFFIX,
    DataFile,
    file_name,
    list_data_files,
    parse_file_name,
)
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.migrate import migrate_catalog, migration_problems
from ccxt_pipeline.catalog.quarantine import QuarantinedFile, list_quarantined
from ccxt_pipeline.catalog.repair import merge_files, overlapping_groups, owned_folders, unsorted
from ccxt_pipeline.catalog.repair import repair as repair_catalog
from ccxt_pipeline.catalog.schema import DataKind
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.timeutil import NS_PER_DAY, now_ns, ns_to_iso


@dataclass(frozen=True)
class Problem:
    kind: str
    """`temp-file`, `bad-name`, `overlap`, `unsorted`, `duplicates`, `name-understates`, `schema`, `unreadable`,
    `needs-migration` (written by an earlier release in another meaning: `ccxt-cli catalog migrate`),
    `rows-lost` (fewer rows than the compaction manifest records)."""
    path: Path
    detail: str
    repairable: bool = True


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    repaired: list[Problem] = field(default_factory=list)
    quarantined: list[QuarantinedFile] = field(default_factory=list)
    """Files moved out of `data/` because they could not be read (now or before): `<catalog>/quarantine/`."""


def verify(root: Path, *, repair: bool = False) -> VerifyReport:
    """Check every invariant of docs/catalog.md in every folder we own; with `repair`, fix what can be
    fixed without losing a row (and verify again). Row counts before and after are in the report."""
    report = VerifyReport()
    manifest = read_manifest(root)
    for kind, folder in owned_folders(root):
        found = _check_folder(kind, folder, report)
        report.problems.extend(found + _check_rows(root, folder, found, manifest))
    report.problems.extend(Problem("needs-migration", p, d) for p, d in migration_problems(root))
    if repair and report.problems:
        with exclusive_lock(root / LOCK_FILE):
            repair_catalog(root, rewrite=True)
            migrate_catalog(root)  # files an earlier release wrote, to today's schema version
        after = verify(root)
        report.repaired = [p for p in report.problems if p.repairable]
        report.problems = after.problems
        report.files, report.rows = after.files, after.rows
    report.quarantined = list_quarantined(root)
    return report


def _check_folder(kind: DataKind, folder: Path, report: VerifyReport) -> list[Problem]:
    problems = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if name.endswith(TMP_SUFFIX):
            problems.append(Problem("temp-file", path, "a temp file left by an interrupted write"))
        elif name.endswith(PARQUET) and parse_file_name(name) is None:
            problems.append(
                Problem("bad-name", path, "not <start>_<end>.parquet: every query of this type fails")
            )
    files = list_data_files(folder)
    for group in overlapping_groups(files):
        problems.append(
            Problem("overlap", group[0].path, f"overlaps {', '.join(f.path.name for f in group[1:])}")
        )
    for f in files:
        report.files += 1
        try:
            table = read_data_file(kind, f.path, raw=True, quarantine=False)
        except BadDataFile as exc:  # --repair (or any writer meeting it) moves it to quarantine/
            problems.append(Problem("unreadable", f.path, f"{exc}; --repair moves it to quarantine/"))
            continue
        assert table is not None
        report.rows += table.num_rows
        if table.schema.remove_metadata() != kind.schema.remove_metadata():
            detail = _schema_diff(kind, table.schema)
            if not _castable(kind, table):
                detail += "; cannot be cast: --repair moves it to quarantine/"
            problems.append(Problem("schema", f.path, detail))
            continue
        ts = table.column("ts_init")
        if table.num_rows and (pc.min(ts).as_py() < f.start or pc.max(ts).as_py() > f.end):
            problems.append(Problem("name-understates", f.path, "rows outside the range the name declares"))
        if unsorted(table):
            problems.append(Problem("unsorted", f.path, "rows not sorted by ts_init"))
        elif sort_unique(kind, table).num_rows != table.num_rows:
            problems.append(Problem("duplicates", f.path, "rows with the same natural key"))
    return problems


def _schema_diff(kind: DataKind, schema: pa.Schema) -> str:
    want = {f.name: f.type for f in kind.schema}
    have = {f.name: f.type for f in schema}
    parts = [f"{n}: {have.get(n, 'missing')} (want {t})" for n, t in want.items() if have.get(n) != t]
    parts += [f"{n}: unexpected column" for n in have if n not in want]
    return "; ".join(parts)


def _castable(kind: DataKind, table: pa.Table) -> bool:
    try:
        table.select(kind.columns).cast(kind.schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


@dataclass
class CompactReport:
    folders: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    """Rows in every data file of every folder when its compaction began (files it rewrote and files it
    left alone alike), so that a user can compare the whole catalog before and after. Counted after an
    earlier crash's overlapping leftovers are merged; a file that cannot be read is moved to quarantine and
    not counted."""
    rows_after: int = 0
    """Rows in every data file of every folder after its compaction: `rows_before - duplicates_dropped`."""
    duplicates_dropped: int = 0
    """Rows dropped as exact duplicates (same natural key as a row kept)."""
    days_written: int = 0


def compact(root: Path, *, today_start: int | None = None, durable: bool = True) -> CompactReport:
    """Merge each folder's files into one file per UTC day, named [day start, next day start - 1 ns], for
    every day that has ended; the part of a file that reaches into today is kept in a file of its own.

    Lossless and crash-safe: the new files are written (temp file, fsync, rename) and their row counts read
    back from disk before any source file is removed, and a source is only removed when every one of its
    rows is in those new files. A crash in between leaves the new files overlapping their sources, holding
    the same rows, which the next writer open, `verify --repair` or `compact` merges by natural key.
    Idempotent: a day already in one daily file, touched by no other file, is left alone.

    Each folder is compacted under the catalog lock, so a writer waits for one folder at most. The row
    counts of every folder changed are recorded in the catalog's compaction manifest, which `verify`
    checks. Raises CatalogError (after recording) if a folder's row count on disk came out short.
    `durable=False` skips fsync (tests of the logic only).
    """
    if today_start is None:
        now = now_ns()
        today_start = now - now % NS_PER_DAY
    report = CompactReport()
    entries: dict[str, dict[str, int]] = {}
    for kind, folder in owned_folders(root):
        with exclusive_lock(root / LOCK_FILE):
            entry = _compact_folder(kind, folder, today_start, report, durable)
        if entry is not None:
            entries[folder.relative_to(root / DATA_DIR).as_posix()] = entry
    if entries:
        with exclusive_lock(root / LOCK_FILE):
            manifest = read_manifest(root)
            manifest.update(entries)
            _write_manifest(root, manifest, durable)
    short = [
        f"{name}: {e['rows_after']:,} of {_expected(e):,} rows" for name, e in entries.items() if _lost(e)
    ]
    if short:
        raise CatalogError(f"compaction left fewer rows than it found: {'; '.join(short)}")
    return report


def _compact_folder(
    kind: DataKind, folder: Path, today: int, report: CompactReport, durable: bool
) -> dict[str, int] | None:
    """Compact one folder (caller holds the lock); the manifest entry if anything changed."""
    for group in overlapping_groups(list_data_files(folder)):  # leftovers of an earlier crash
        merge_files(kind, group, durable=durable)
    files = list_data_files(folder)
    report.folders += 1
    report.files_before += len(files)
    days = _days_to_rewrite(files, today)
    # Sources: every file whose range meets one of those days (the daily files of those days included, and
    # at most one file reaching into today). Files are disjoint, so the sources of one day are consecutive.
    sources = [f for f in files if _meets(f, days)]
    if not sources:
        report.files_after += len(files)
        unchanged = sum(_num_rows(f.path) for f in files)
        report.rows_before += unchanged
        report.rows_after += unchanged
        return None
    source_paths = {f.path for f in sources}
    others = sum(_num_rows(f.path) for f in files if f.path not in source_paths)  # unchanged, under the lock
    run = _Rewrite(kind, folder, durable)
    first = 0
    for day in days:  # one day (plus the sources that span it) in memory at a time
        start, end = day * NS_PER_DAY, (day + 1) * NS_PER_DAY - 1
        while first < len(sources) and sources[first].end < start:
            first += 1
        if run.store(run.rows_between(sources, first, start, end), end, start):
            report.days_written += 1
    # What is left in memory is the file reaching into today (if any): its rows from today on stay in a
    # file of their own, named from its first such row to the old end (clear of every other file).
    for f in [s for s in sources if s.path in run.cache]:
        part = _between(run.cache.pop(f.path), today, f.end)
        run.store(part, f.end)
    on_disk = run.check()
    remove_files([f.path for f in sources if f.path not in run.written], durable=durable)
    report.files_after += len(list_data_files(folder))
    # The whole folder, not only the files rewritten: a file compaction leaves alone (one that lies wholly
    # in today, a daily file no other file touches) holds rows of the catalog all the same.
    entry = {
        "at_ns": now_ns(),
        "rows_before": others + run.read,
        "duplicates_dropped": run.placed - run.distinct,
        "rows_after": others + on_disk,
    }
    report.rows_before += entry["rows_before"]
    report.rows_after += entry["rows_after"]
    report.duplicates_dropped += entry["duplicates_dropped"]
    return entry


def _days_to_rewrite(files: list[DataFile], today: int) -> list[int]:
    """Every ended day that a file other than its own daily file touches, ascending."""
    today_day = today // NS_PER_DAY
    return sorted(
        {
            d
            for f in files
            if not _is_day_file(f)
            for d in range(_day(f.start), min(_day(f.end), today_day - 1) + 1)
        }
    )


@dataclass
class _Rewrite:
    """One folder's sources being rewritten: those read and still needed, and the counts that prove that
    every row read is in a new file."""

    kind: DataKind
    folder: Path
    durable: bool
    cache: dict[Path, pa.Table] = field(default_factory=dict)  # sources that reach past the day being written
    bounds: dict[Path, tuple[int, int]] = field(default_factory=dict)  # each cached source's ts_init range
    written: dict[Path, int] = field(default_factory=dict)  # new files and their rows
    read: int = 0  # rows read
    placed: int = 0  # rows that fell in a day or in today's part
    distinct: int = 0  # distinct keys among them

    def rows_between(self, sources: list[DataFile], first: int, start: int, end: int) -> pa.Table:
        """The rows in [start, end] of the sorted `sources` from `first` (the first that meets the range); a
        source that ends in the range is let go."""
        parts = []
        for f in sources[first:]:
            if f.start > end:
                break
            if f.path not in self.cache:
                # An unreadable file is moved to quarantine by the read, with its rows: not ours to place.
                stored = read_data_file(self.kind, f.path)
                table = self.cache[f.path] = self.kind.schema.empty_table() if stored is None else stored
                self.read += table.num_rows
                lo_hi = pc.min_max(table.column("ts_init"))
                self.bounds[f.path] = (lo_hi["min"].as_py() or 0, lo_hi["max"].as_py() or 0)
            lo, hi = self.bounds[f.path]
            whole = start <= lo and hi <= end  # (the common case of small files: no filter to run)
            parts.append(self.cache[f.path] if whole else _between(self.cache[f.path], start, end))
            if f.end <= end:
                del self.cache[f.path]
        return pa.concat_tables(parts) if parts else self.kind.schema.empty_table()

    def store(self, table: pa.Table, end: int, start: int | None = None) -> bool:
        """Write the distinct rows of `table`, if any, to the file of [start, end] (start None: from the
        first row's ts_init); True if written."""
        self.placed += table.num_rows
        rows, keys = _unique(self.kind, table, self.folder)
        self.distinct += keys
        if not rows.num_rows:
            return False
        path = self.folder / file_name(
            int(rows.column("ts_init")[0].as_py()) if start is None else start, end
        )
        self.written[path] = rows.num_rows
        write_parquet_atomic(rows, path, durable=self.durable)
        return True

    def check(self) -> int:
        """The rows in the new files; stops the compaction unless every row read was placed and the new
        files on disk hold what was written to them (never remove a source before that)."""
        on_disk = sum(_num_rows(path) for path in self.written)
        if self.placed != self.read or on_disk != sum(self.written.values()):
            detail = f"{self.read:,} rows read, {self.placed:,} placed, {on_disk:,} in the new files"
            raise _stopped(self.folder, detail)
        return on_disk


def _unique(kind: DataKind, table: pa.Table, folder: Path) -> tuple[pa.Table, int]:
    """`table` sorted with one row per natural key (the first), and its count of distinct keys. The count is
    made another way (Arrow's group-by), so that a row dropped by mistake stops the compaction."""
    rows = sort_unique(kind, table)
    if not table.num_rows:
        return rows, 0
    keys = list(kind.key)
    distinct: int = table.select(keys).group_by(keys).aggregate([]).num_rows
    if rows.num_rows != distinct or rows.select(keys).group_by(keys).aggregate([]).num_rows != distinct:
        raise _stopped(folder, f"{distinct:,} distinct rows, {rows.num_rows:,} kept")
    return rows, distinct


def _stopped(folder: Path, detail: str) -> CatalogError:
    return CatalogError(
        f"compaction of {folder} stopped ({detail}); no source file was removed, and the next repair "
        "merges the files it wrote with them"
    )


def _day(ns: int) -> int:
    return ns // NS_PER_DAY


def _is_day_file(f: DataFile) -> bool:
    return f.start % NS_PER_DAY == 0 and f.end == f.start + NS_PER_DAY - 1


def _meets(f: DataFile, days: list[int]) -> bool:
    """True if `f`'s range meets one of the sorted `days`."""
    i = bisect.bisect_left(days, _day(f.start))
    return i < len(days) and days[i] <= _day(f.end)


def _between(table: pa.Table, start: int, end: int) -> pa.Table:
    ts = table.column("ts_init")
    return table.filter(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)))


def _num_rows(path: Path) -> int:
    """Rows in a data file, from its footer; 0 for a file that cannot be read (verify reports it)."""
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowException):
        return 0


# --- the compaction manifest ------------------------------------------------------------------------------
# `<catalog>/.ccxt_pipeline.compaction.json`: for each folder (`<type dir>/<instrument id>`) the last
# compaction that changed it: when, the folder's rows before and after, and exact duplicates dropped. Writers
# only add rows, so `verify` reports a folder holding fewer rows than its last compaction left, and a
# compaction that left fewer rows than it found.

MANIFEST = ".ccxt_pipeline.compaction.json"


def read_manifest(root: Path) -> dict[str, dict[str, int]]:
    """The compaction manifest (empty if there is none, or if it cannot be read)."""
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    folders = data.get("folders") if isinstance(data, dict) else None
    return folders if isinstance(folders, dict) else {}


def _write_manifest(root: Path, folders: dict[str, dict[str, int]], durable: bool) -> None:
    path = root / MANIFEST
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    with open(tmp, "w") as fh:
        json.dump({"version": 1, "folders": folders}, fh, indent=1, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _expected(entry: dict[str, int]) -> int:
    return int(entry.get("rows_before", 0)) - int(entry.get("duplicates_dropped", 0))


def _lost(entry: dict[str, int]) -> bool:
    return int(entry.get("rows_after", 0)) < _expected(entry)


def _check_rows(
    root: Path, folder: Path, problems: list[Problem], manifest: dict[str, dict[str, int]]
) -> list[Problem]:
    """Row counts against the manifest: a compaction that lost rows, or rows gone since the last one. Only
    for a folder whose files are readable and disjoint (otherwise its rows cannot be counted from footers)."""
    entry = manifest.get(folder.relative_to(root / DATA_DIR).as_posix())
    if entry is None or any(p.kind in ("overlap", "unreadable", "bad-name") for p in problems):
        return []
    when = ns_to_iso(int(entry.get("at_ns", 0)))
    if _lost(entry):
        detail = f"the compaction at {when} left {entry['rows_after']:,} of {_expected(entry):,} rows"
        return [Problem("rows-lost", folder, detail, repairable=False)]
    rows = sum(_num_rows(f.path) for f in list_data_files(folder))
    if rows < int(entry.get("rows_after", 0)):
        detail = f"holds {rows:,} rows; the compaction at {when} left {entry['rows_after']:,}"
        return [Problem("rows-lost", folder, detail, repairable=False)]
    return []


__all__ = ["MANIFEST", "CompactReport", "Problem", "VerifyReport", "compact", "read_manifest", "verify"]
