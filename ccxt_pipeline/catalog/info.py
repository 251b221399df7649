"""What the catalog holds: per type and instrument, files, rows, bytes, and the first and last row's
`ts_init`, plus the files in quarantine (not data). The library behind `catalog info`.

Everything is read from the data, not from file names (a stream, live-snapshot or compacted file is named
for the minute, ten minutes or day it stands for, so its name can reach well past its last row), and from
the Parquet footers only: the row count, and `ts_init`'s min and max from the column statistics every file
is written with (`ccxt_pipeline.catalog.footer`). A file whose footer does not give them is read through
pyarrow (`ccxt_pipeline.catalog.files`: rows from the footer, `ts_init` of the first and last file with a
row), which also moves a file that cannot be read to the quarantine.

This module imports neither pyarrow nor the record models, so that `catalog info` starts fast
(tests/test_startup_imports.py); they load only when a file needs the full read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ccxt_pipeline.catalog.footer import Footer, read_footer
from ccxt_pipeline.catalog.layout import DATA_DIR, DataFile, list_data_files
from ccxt_pipeline.catalog.quarantine import QuarantinedFile, list_quarantined

KIND_FOLDERS: tuple[tuple[str, str], ...] = (
    ("open_interest", "custom_open_interest"),
    ("funding_rate", "funding_rate_update"),
    ("funding_estimate", "custom_funding_rate_estimate"),
    ("liquidation", "custom_liquidation"),
    ("gap", "custom_coverage_gap"),
)
"""Each stored kind's name and folder under `data/`, in `catalog.schema.KINDS` order. Spelt out so that
`catalog info` needs no pyarrow; a test checks that they agree."""


@dataclass(frozen=True)
class SeriesInfo:
    """One type and instrument: what `catalog info` shows."""

    type: str
    instrument_id: str
    files: int
    rows: int
    bytes: int
    first_ns: int | None
    """The first row's `ts_init` (None if no readable file holds a row)."""
    last_ns: int | None


@dataclass(frozen=True)
class CatalogInfo:
    series: list[SeriesInfo]
    quarantined: list[QuarantinedFile]
    """Files moved out of `data/` because they could not be read: not data, listed so nobody forgets them."""


def describe(root: Path) -> CatalogInfo:
    """Files, rows, bytes and the first and last row's time of every type and instrument."""
    info = _describe(root, footers_only=False)
    assert info is not None
    return info


def describe_from_footers(root: Path) -> CatalogInfo | None:
    """What :func:`describe` gives when every file's footer answers; None if a file needs the full read
    through pyarrow (it may be unreadable, and be quarantined then). Nothing is changed either way."""
    return _describe(root, footers_only=True)


def _describe(root: Path, *, footers_only: bool) -> CatalogInfo | None:
    series = []
    for name, folder in KIND_FOLDERS:
        for iid in _instruments(root / DATA_DIR / folder):
            files = list_data_files(root / DATA_DIR / folder / iid)
            footers = [_footer(f) for f in files]
            if all(ft is not None for ft in footers):
                found = _from_footers(name, iid, files, [ft for ft in footers if ft is not None])
            elif footers_only:
                return None
            else:
                found = _read_fully(name, iid, files)
            if found is not None:
                series.append(found)
    return CatalogInfo(series, list_quarantined(root))


def _instruments(folder: Path) -> list[str]:
    """The instrument folders of one type (`layout.list_instruments`, given the folder)."""
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def _footer(f: DataFile) -> Footer | None:
    try:
        return read_footer(f.path, "ts_init")
    except OSError:
        return None  # the full read reports it (CatalogError)


def _from_footers(name: str, iid: str, files: list[DataFile], footers: list[Footer]) -> SeriesInfo | None:
    if not files:
        return None
    with_rows = [ft for ft in footers if ft.rows]
    return SeriesInfo(
        type=name,
        instrument_id=iid,
        files=len(files),
        rows=sum(ft.rows for ft in footers),
        bytes=sum(f.path.stat().st_size for f in files),
        first_ns=with_rows[0].min if with_rows else None,
        last_ns=with_rows[-1].max if with_rows else None,
    )


def _read_fully(name: str, iid: str, files: list[DataFile]) -> SeriesInfo | None:
    """One series through pyarrow: unreadable files are quarantined and left out."""
    from ccxt_pipeline.catalog.files import read_row_count

    counts = [read_row_count(f.path) for f in files]  # None: unreadable, moved to quarantine
    kept = [f for f, n in zip(files, counts, strict=True) if n is not None]
    if not kept:
        return None
    return SeriesInfo(
        type=name,
        instrument_id=iid,
        files=len(kept),
        rows=sum(n for n in counts if n is not None),
        bytes=sum(f.path.stat().st_size for f in kept),
        first_ns=_edge(name, kept, first=True),
        last_ns=_edge(name, kept, first=False),
    )


def _edge(name: str, files: list[DataFile], *, first: bool) -> int | None:
    """The first (or last) row's `ts_init`: files are disjoint and sorted, so only the first (last) readable
    file with a row is opened, and only its `ts_init` column."""
    import pyarrow.compute as pc

    from ccxt_pipeline.catalog.files import read_data_file
    from ccxt_pipeline.catalog.schema import get_kind

    kind = get_kind(name)
    for f in files if first else reversed(files):
        table = read_data_file(kind, f.path, columns=["ts_init"])
        if table is None or table.num_rows == 0:
            continue
        value = (pc.min if first else pc.max)(table.column("ts_init")).as_py()
        return int(value)
    return None
