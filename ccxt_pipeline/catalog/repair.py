"""Putting right what a crash (or a hand) left in a catalog, without losing a committed row.

Run by every writer when it opens the catalog, under the catalog lock:

- hidden temp files (`.<name>.<id>.tmp`) are removed: a temp file is only ever renamed into place whole,
  so one still there was never committed;
- files whose name ranges overlap (a crash in the middle of a merge, or files copied in by hand) are
  merged into one file over the union of their ranges, de-duplicated by natural key, and the originals
  removed. A crash during this merge leaves overlaps again, which the next run merges the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ccxt_pipeline.catalog.files import read_data_file, remove_files, write_parquet_atomic
from ccxt_pipeline.catalog.layout import (
    PARQUET,
    TMP_SUFFIX,
    DataFile,
    file_name,
    kind_dir,
    list_data_files,
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


def repair(root: Path, *, durable: bool = True) -> RepairReport:
    """Remove stale temp files and merge overlapping files in every type folder we own. Caller holds the lock."""
    report = RepairReport()
    for kind in KINDS.values():
        base = kind_dir(root, kind)
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            stale = [folder / n for n in os.listdir(folder) if n.startswith(".") and n.endswith(TMP_SUFFIX)]
            if stale:
                remove_files(stale, durable=durable)
                report.temp_files_removed.extend(stale)
            for group in overlapping_groups(list_data_files(folder)):
                merge_files(kind, group, durable=durable)
                report.overlaps_merged.append([f.path for f in group])
    return report


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
