"""Putting right what a crash (or a hand) left in a catalog, without losing a committed row.

The one repair path, always under the catalog lock. Every writer runs it when it opens the catalog (and
`catalog migrate` before migrating):

- hidden temp files (`.<name>.<id>.tmp`) are removed: a temp file is only ever renamed into place whole,
  so one still there was never committed;
- files whose name ranges overlap (a crash in the middle of a merge, or files copied in by hand) are
  merged into one file over the union of their ranges, de-duplicated by natural key, and the originals
  removed. A crash during this merge leaves overlaps again, which the next run merges the same way.

`catalog verify --repair` runs it with `rewrite`: every `*.tmp` goes, and before the overlaps are merged
each file that breaks an invariant on its own (a bad or understating name, unsorted or duplicated rows, a
castable dtype) is rewritten; an unreadable or uncastable one is moved to quarantine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.files import read_data_file, remove_files, write_parquet_atomic
from ccxt_pipeline.catalog.layout import (
    PARQUET,
    TMP_SUFFIX,
    DataFile,
    file_name,
    kind_dir,
    list_data_files,
    parse_file_name,
)
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.schema import KINDS, DataKind


@dataclass
class RepairReport:
    temp_files_removed: list[Path] = field(default_factory=list)
    overlaps_merged: list[list[Path]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.temp_files_removed or self.overlaps_merged)

    def summary(self) -> str:
        return (
            f"{len(self.temp_files_removed)} temp file(s) removed, "
            f"{len(self.overlaps_merged)} group(s) of overlapping files merged"
        )


def repair(root: Path, *, durable: bool = True, rewrite: bool = False) -> RepairReport:
    """Remove stale temp files and merge overlapping files in every instrument folder we own; with
    `rewrite`, also put right each file that breaks an invariant on its own (see the module docstring).
    Caller holds the lock."""
    report = RepairReport()
    for kind, folder in owned_folders(root):
        repair_folder(kind, folder, report, durable=durable, rewrite=rewrite)
    return report


def owned_folders(root: Path) -> Iterator[tuple[DataKind, Path]]:
    """Every instrument folder of every type we own, type by type, folders in name order."""
    for kind in KINDS.values():
        base = kind_dir(root, kind)
        if base.is_dir():
            for folder in sorted(p for p in base.iterdir() if p.is_dir()):
                yield kind, folder


def repair_folder(
    kind: DataKind, folder: Path, report: RepairReport, *, durable: bool = True, rewrite: bool = False
) -> None:
    """`repair` for one instrument folder. No row is dropped but exact duplicates (same natural key)."""
    stale = [
        folder / n for n in os.listdir(folder) if n.endswith(TMP_SUFFIX) and (rewrite or n.startswith("."))
    ]
    if stale:
        remove_files(stale, durable=durable)
        report.temp_files_removed.extend(stale)
    if rewrite:
        _rewrite_files(kind, folder, durable=durable)
    for group in overlapping_groups(list_data_files(folder)):
        merge_files(kind, group, durable=durable)
        report.overlaps_merged.append([f.path for f in group])


def _rewrite_files(kind: DataKind, folder: Path, *, durable: bool) -> None:
    """A file with a bad or understating name is renamed to its rows' range (merged into a file that already
    has that very range); unsorted, duplicated or mistyped files are rewritten; empty files go."""
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if not name.endswith(PARQUET):
            continue
        raw = read_data_file(kind, path, raw=True)
        # Cast to the type's schema: fixes a castable dtype. Unreadable or uncastable: quarantined.
        table = read_data_file(kind, path) if raw is not None else None
        if raw is None or table is None:
            continue
        if table.num_rows == 0:
            remove_files([path], durable=durable)
            continue
        fixed = sort_unique(kind, table)
        lo, hi = int(pc.min(fixed.column("ts_init")).as_py()), int(pc.max(fixed.column("ts_init")).as_py())
        parsed = parse_file_name(name)
        rename = parsed is None or lo < parsed[0] or hi > parsed[1]
        mistyped = raw.schema.remove_metadata() != kind.schema.remove_metadata()
        if not (rename or mistyped or fixed.num_rows != table.num_rows or unsorted(table)):
            continue
        target = folder / file_name(lo, hi) if rename else path
        if target != path and target.exists():  # a file with that very range: merge into it
            there = read_data_file(kind, target)
            fixed = sort_unique(kind, pa.concat_tables([there, fixed])) if there is not None else fixed
        write_parquet_atomic(fixed, target, durable=durable)
        if target != path:
            remove_files([path], durable=durable)


def unsorted(table: pa.Table) -> bool:
    """Rows not in `ts_init` order."""
    ts = table.column("ts_init")
    return table.num_rows > 1 and not pc.all(pc.less_equal(ts.slice(0, len(ts) - 1), ts.slice(1))).as_py()


def overlapping_groups(files: list[DataFile]) -> list[list[DataFile]]:
    """Groups of two or more files (sorted by start) whose inclusive ranges overlap, transitively."""
    groups: list[list[DataFile]] = []
    current: list[DataFile] = []
    current_end = -1
    for f in files:
        if current and f.start <= current_end:
            current.append(f)
            current_end = max(current_end, f.end)
            continue
        if len(current) > 1:
            groups.append(current)
        current, current_end = [f], f.end
    if len(current) > 1:
        groups.append(current)
    return groups


def merge_files(kind: DataKind, group: list[DataFile], *, durable: bool = True) -> Path:
    """Replace `group` by one file over the union of their ranges holding the union of their rows.

    An unreadable member is moved to quarantine (see `files.read_data_file`) and left out: the others are
    merged over their own ranges (or, if one is left, kept as it is)."""
    tables = [(f, read_data_file(kind, f.path)) for f in group]
    parts = [t for _, t in tables if t is not None]
    group = [f for f, t in tables if t is not None]
    if len(group) < 2:  # nothing (or one file) left to merge
        return group[0].path if group else tables[0][0].path
    merged = sort_unique(kind, pa.concat_tables(parts))
    folder = group[0].path.parent
    target = folder / file_name(min(f.start for f in group), max(f.end for f in group))
    assert target.name.endswith(PARQUET)
    write_parquet_atomic(merged, target, durable=durable)
    remove_files([f.path for f in group if f.path != target], durable=durable)
    return target
