"""Looking after a catalog: verify its invariants (and repair what can be repaired without losing a row),
compact small files into daily ones, and describe what it holds.

Every change goes through the same atomic steps as the writer (temp file, fsync, rename), under the catalog
lock; a crash at any point leaves overlapping files at worst, which `repair` merges losslessly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.files import exclusive_lock, read_data_file, remove_files, write_parquet_atomic
from ccxt_pipeline.catalog.layout import (
    LOCK_FILE,
    PARQUET,
    TMP_SUFFIX,
    DataFile,
    file_name,
    kind_dir,
    list_data_files,
    parse_file_name,
)
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.migrate import migrate_catalog, migration_problems
from ccxt_pipeline.catalog.repair import merge_files, overlapping_groups
from ccxt_pipeline.catalog.schema import KINDS, DataKind
from ccxt_pipeline.timeutil import NS_PER_DAY, now_ns


@dataclass(frozen=True)
class Problem:
    kind: str
    """`temp-file`, `bad-name`, `overlap`, `unsorted`, `duplicates`, `name-understates`, `schema`, `unreadable`,
    `needs-migration` (written by an earlier release in another meaning: `ccxt-cli catalog migrate`)."""
    path: Path
    detail: str
    repairable: bool = True


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    rows: int = 0
    repaired: list[Problem] = field(default_factory=list)


def verify(root: Path, *, repair: bool = False) -> VerifyReport:
    """Check every invariant of docs/catalog.md in every folder we own; with `repair`, fix what can be
    fixed without losing a row (and verify again). Row counts before and after are in the report."""
    report = VerifyReport()
    for kind, folder in _folders(root):
        report.problems.extend(_check_folder(kind, folder, report))
    report.problems.extend(Problem("needs-migration", p, d) for p, d in migration_problems(root))
    if repair and report.problems:
        with exclusive_lock(root / LOCK_FILE):
            for kind, folder in _folders(root):
                _repair_folder(kind, folder)
            migrate_catalog(root)  # files an earlier release wrote, to today's schema version
        after = verify(root)
        report.repaired = [p for p in report.problems if p.repairable]
        report.problems = after.problems
        report.files, report.rows = after.files, after.rows
    return report


def _folders(root: Path) -> Iterable[tuple[DataKind, Path]]:
    for kind in KINDS.values():
        base = kind_dir(root, kind)
        if base.is_dir():
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                yield kind, folder


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
            table = pq.read_table(f.path)
        except (OSError, pa.ArrowInvalid) as exc:
            problems.append(Problem("unreadable", f.path, str(exc), repairable=False))
            continue
        report.rows += table.num_rows
        if table.schema.remove_metadata() != kind.schema.remove_metadata():
            problems.append(
                Problem("schema", f.path, _schema_diff(kind, table.schema), _castable(kind, table))
            )
            continue
        ts = table.column("ts_init")
        if table.num_rows and (pc.min(ts).as_py() < f.start or pc.max(ts).as_py() > f.end):
            problems.append(Problem("name-understates", f.path, "rows outside the range the name declares"))
        if _unsorted(table):
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


def _repair_folder(kind: DataKind, folder: Path) -> None:
    """Temp files go; a file with a bad or understating name is renamed to its rows' range; unsorted,
    duplicated or mistyped files are rewritten; then overlapping files are merged. No row is dropped but
    exact duplicates (same natural key)."""
    for name in os.listdir(folder):
        if name.endswith(TMP_SUFFIX):
            (folder / name).unlink()
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if not name.endswith(PARQUET):
            continue
        try:
            table = read_data_file(kind, path)  # cast to the type's schema: fixes a castable dtype
        except Exception:  # unreadable or uncastable: reported by verify, left for a person
            continue
        if table.num_rows == 0:
            path.unlink()
            continue
        fixed = sort_unique(kind, table)
        lo, hi = int(pc.min(fixed.column("ts_init")).as_py()), int(pc.max(fixed.column("ts_init")).as_py())
        parsed = parse_file_name(name)
        rename = parsed is None or lo < parsed[0] or hi > parsed[1]
        mistyped = pq.read_schema(path).remove_metadata() != kind.schema.remove_metadata()
        if not (rename or mistyped or fixed.num_rows != table.num_rows or _unsorted(table)):
            continue
        target = folder / file_name(lo, hi) if rename else path
        if target != path and target.exists():  # a file with that very range: merge into it
            fixed = sort_unique(kind, pa.concat_tables([read_data_file(kind, target), fixed]))
        write_parquet_atomic(fixed, target)
        if target != path:
            remove_files([path])
    for group in overlapping_groups(list_data_files(folder)):
        merge_files(kind, group)


def _unsorted(table: pa.Table) -> bool:
    ts = table.column("ts_init")
    return table.num_rows > 1 and not pc.all(pc.less_equal(ts.slice(0, len(ts) - 1), ts.slice(1))).as_py()


@dataclass
class CompactReport:
    folders: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    days_written: int = 0


def compact(root: Path, *, today_start: int | None = None) -> CompactReport:
    """Merge each folder's files into one file per UTC day, named [day start, next day start - 1 ns], for
    every day that has ended. Idempotent (a day already in one such file is left alone) and crash-safe
    (new daily files are written before the old files are removed; a crash leaves overlaps, which the
    next repair or compaction merges without loss)."""
    today = today_start if today_start is not None else now_ns() - now_ns() % NS_PER_DAY
    report = CompactReport()
    with exclusive_lock(root / LOCK_FILE):
        for kind, folder in _folders(root):
            for group in overlapping_groups(list_data_files(folder)):  # leftovers of an earlier crash
                merge_files(kind, group)
            files = list_data_files(folder)
            report.folders += 1
            report.files_before += len(files)
            done = [f for f in files if f.end < today]
            todo = [f for f in done if not _is_day_file(f)]
            days_touched = {d for f in todo for d in range(f.start // NS_PER_DAY, f.end // NS_PER_DAY + 1)}
            # A day file already present for a touched day joins the merge; a file reaching into today
            # keeps its days out of this run (the daily name would overlap it).
            blocked = {
                d
                for f in files
                if f.end >= today
                for d in range(f.start // NS_PER_DAY, f.end // NS_PER_DAY + 1)
            }
            days = sorted(days_touched - blocked)
            sources = [
                f
                for f in done
                if any(d in days for d in range(f.start // NS_PER_DAY, f.end // NS_PER_DAY + 1))
            ]
            if not days or not sources:
                report.files_after += len(files)
                continue
            report.rows_before += sum(pq.ParquetFile(f.path).metadata.num_rows for f in sources)
            for day in days:  # one day in memory at a time
                start, end = day * NS_PER_DAY, (day + 1) * NS_PER_DAY - 1
                parts = [read_data_file(kind, f.path) for f in sources if f.start <= end and f.end >= start]
                table = sort_unique(kind, pa.concat_tables(parts))
                ts = table.column("ts_init")
                rows = table.filter(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)))
                if rows.num_rows:
                    write_parquet_atomic(rows, folder / file_name(start, end))
                    report.days_written += 1
                    report.rows_after += rows.num_rows
            written = {folder / file_name(d * NS_PER_DAY, (d + 1) * NS_PER_DAY - 1) for d in days}
            remove_files([f.path for f in sources if f.path not in written])
            report.files_after += len(list_data_files(folder))
    return report


def _is_day_file(f: DataFile) -> bool:
    return f.start % NS_PER_DAY == 0 and f.end == f.start + NS_PER_DAY - 1


__all__ = ["CompactReport", "Problem", "VerifyReport", "compact", "verify"]
