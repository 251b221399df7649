"""Where things live in a catalog, and what file names mean.

    <catalog>/data/<type_dir>/<instrument_id>/<first ts_init>_<last ts_init>.parquet

File names carry the inclusive `ts_init` range in NautilusTrader's stamp form. The stamps have a fixed
width, so comparing names as strings compares times: listing and pruning never parse a timestamp.
Temporary files are hidden (leading dot) and end in `.tmp`, so neither NautilusTrader (`*.parquet`)
nor pyarrow datasets (which skip dot-files) ever see them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccxt_pipeline.timeutil import ns_to_stamp, stamp_to_ns

if TYPE_CHECKING:  # annotations only: listing files needs no pyarrow (`catalog info` starts without it)
    from ccxt_pipeline.catalog.schema import DataKind

DATA_DIR = "data"
LOCK_FILE = ".ccxt_pipeline.lock"
PARQUET = ".parquet"
TMP_SUFFIX = ".tmp"
_STAMP_LEN = len("2025-01-01T00-00-00-000000000Z")
_NAME_LEN = 2 * _STAMP_LEN + 1 + len(PARQUET)


@dataclass(frozen=True)
class DataFile:
    """One data file and the inclusive `ts_init` range its name declares."""

    path: Path
    start: int
    end: int


def file_name(start: int, end: int) -> str:
    return f"{ns_to_stamp(start)}_{ns_to_stamp(end)}{PARQUET}"


def parse_file_name(name: str) -> tuple[int, int] | None:
    """`<start>_<end>.parquet` -> (start, end), or None if the name is not of that form."""
    if len(name) != _NAME_LEN or not name.endswith(PARQUET) or name[_STAMP_LEN] != "_":
        return None
    try:
        return stamp_to_ns(name[:_STAMP_LEN]), stamp_to_ns(name[_STAMP_LEN + 1 : 2 * _STAMP_LEN + 1])
    except ValueError:
        return None


def data_root(root: Path) -> Path:
    return root / DATA_DIR


def kind_dir(root: Path, kind: DataKind) -> Path:
    return root / DATA_DIR / kind.type_dir


def instrument_dir(root: Path, kind: DataKind, instrument_id: str) -> Path:
    return root / DATA_DIR / kind.type_dir / instrument_id


def data_file_names(folder: Path) -> list[str]:
    """Names of the well-formed data files in `folder`, in time order (empty if there is no folder)."""
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if len(e.name) == _NAME_LEN and e.name.endswith(PARQUET)]
    except FileNotFoundError:
        return []
    names.sort()
    return names


def list_data_files(folder: Path) -> list[DataFile]:
    """The well-formed data files in `folder`, sorted by start."""
    out = []
    for name in data_file_names(folder):
        parsed = parse_file_name(name)
        if parsed is not None:
            out.append(DataFile(folder / name, *parsed))
    return out


def overlapping_files(folder: Path, start: int, end: int) -> list[DataFile]:
    """The data files in `folder` whose ranges meet [start, end]; only those names are parsed."""
    lo, hi = stamp_bounds(start, end)
    out = []
    for name in data_file_names(folder):
        if name_overlaps(name, lo, hi):
            parsed = parse_file_name(name)
            if parsed is not None:
                out.append(DataFile(folder / name, *parsed))
    return out


def list_instruments(root: Path, kind: DataKind) -> list[str]:
    try:
        with os.scandir(kind_dir(root, kind)) as it:
            return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    except FileNotFoundError:
        return []


def stamp_bounds(start: int | None, end: int | None) -> tuple[str, str]:
    """Query bounds as stamps, so file names can be pruned by string comparison."""
    lo = ns_to_stamp(start) if start is not None else ""
    hi = ns_to_stamp(end) if end is not None else "~"
    return lo, hi


def name_overlaps(name: str, lo: str, hi: str) -> bool:
    """True if the file called `name` may hold a `ts_init` in [lo, hi] (stamps from :func:`stamp_bounds`)."""
    return name[:_STAMP_LEN] <= hi and name[_STAMP_LEN + 1 : 2 * _STAMP_LEN + 1] >= lo
