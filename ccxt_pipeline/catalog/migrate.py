"""Bringing files an earlier release wrote up to today's schema version (`ccxt-cli catalog migrate`).

What changed between versions, and the conversion itself, live in `ccxt_pipeline.catalog.versions`. Today
two migrations exist, both of open interest stored as both sides of the market: Bybit files older than
schema 2 and Hyperliquid files older than schema 3 are rewritten with `open_interest` and
`open_interest_value` halved (one side, as Binance reports). Each file is halved once, whatever its version:
a Bybit file of version 2 needs nothing.

Each file that needs it is read through `files.read_data_file` (which upgrades its rows) and written back
under the same name with `write_parquet_atomic`: temp file, fsync, rename, fsync of the folder. The new
values and the new version travel in the same rename, so a SIGKILL at any instant leaves each file either
as it was (old version, old values) or migrated (new version, new values), never half; no row is added or
dropped (rows are rewritten as they are, not de-duplicated). A migrated file carries the new version and is
never touched again: a second run changes nothing. Everything runs under the catalog lock.

Writers migrate a folder before they first add rows to it (`ensure_migrated`), so a series never changes
meaning halfway: no folder ever holds new single-side rows beside old both-sides files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.files import exclusive_lock, read_data_file, write_parquet_atomic
from ccxt_pipeline.catalog.layout import LOCK_FILE, instrument_dir, list_data_files, list_instruments
from ccxt_pipeline.catalog.repair import repair
from ccxt_pipeline.catalog.schema import KINDS, DataKind
from ccxt_pipeline.catalog.versions import (
    CURRENT_VERSION,
    RESCALES,
    Rescale,
    file_version,
    pending,
    rescales_for,
)

log = logging.getLogger(__name__)

COMMAND = "ccxt-cli catalog migrate"


@dataclass(frozen=True)
class PendingFile:
    """A data file older than a rescale it needs."""

    kind: DataKind
    path: Path
    version: int
    rescales: tuple[Rescale, ...]

    @property
    def detail(self) -> str:
        whys = "; ".join(r.why for r in self.rescales)
        return f"schema version {self.version} < {CURRENT_VERSION}: {whys}; run `{COMMAND}`"


@dataclass
class MigrateReport:
    files_checked: int = 0
    """Files in the folders a migration concerns."""
    migrated: list[Path] = field(default_factory=list)
    rows: int = 0
    """Rows in the migrated files (the same before and after)."""
    temp_files_removed: int = 0
    unreadable: list[str] = field(default_factory=list)
    """Files whose version could not be read: left alone (`catalog verify` reports them)."""


def _kinds() -> list[DataKind]:
    names = {r.kind for r in RESCALES}
    return [k for k in KINDS.values() if k.name in names]


def _version(path: Path) -> int:
    """The file's schema version, from its footer alone."""
    return file_version(pq.read_schema(path).metadata)


def pending_in_folder(kind: DataKind, folder: Path, unreadable: list[str] | None = None) -> list[PendingFile]:
    """The files of one instrument folder that need migrating (none, at no I/O, if no rescale concerns it)."""
    if not any(r.kind == kind.name for r in RESCALES) or not pending(kind, folder.name, 0):
        return []
    out = []
    for f in list_data_files(folder):
        try:
            version = _version(f.path)
        except (OSError, pa.ArrowInvalid) as exc:
            if unreadable is not None:
                unreadable.append(f"{f.path}: {exc}")
            continue
        todo = pending(kind, folder.name, version)
        if todo:
            out.append(PendingFile(kind, f.path, version, tuple(todo)))
    return out


def pending_files(root: Path, unreadable: list[str] | None = None) -> list[PendingFile]:
    """Every file of the catalog that needs migrating."""
    out = []
    for kind in _kinds():
        for iid in list_instruments(root, kind):
            out.extend(pending_in_folder(kind, instrument_dir(root, kind, iid), unreadable))
    return out


def migration_problems(root: Path) -> list[tuple[Path, str]]:
    """(file, what is wrong and the command to run) for every file needing migration: for `catalog verify`."""
    return [(p.path, p.detail) for p in pending_files(root)]


def _migrate_file(p: PendingFile, *, durable: bool) -> int | None:
    """Rewrite one file in today's meaning; its row count, or None if it proved unreadable (then it was
    moved to the quarantine folder, see `files.read_data_file`, and there is nothing to migrate)."""
    table = read_data_file(p.kind, p.path)  # upgraded to today's meaning, in today's schema and version
    if table is None:
        return None
    write_parquet_atomic(table, p.path, durable=durable)
    return int(table.num_rows)


def migrate_folder(kind: DataKind, folder: Path, *, durable: bool = True) -> MigrateReport:
    """Migrate the files of one instrument folder that need it. The caller holds the catalog lock."""
    report = MigrateReport()
    whys: set[str] = set()
    for p in pending_in_folder(kind, folder, report.unreadable):
        rows = _migrate_file(p, durable=durable)
        if rows is None:
            report.unreadable.append(f"{p.path}: unreadable, moved to the quarantine folder")
            continue
        report.rows += rows
        report.migrated.append(p.path)
        whys.update(r.why for r in p.rescales)
    if report.migrated:
        log.warning(
            "migrated %d file(s) in %s to schema version %d: %s",
            len(report.migrated),
            folder,
            CURRENT_VERSION,
            "; ".join(sorted(whys)),
        )
    return report


def ensure_migrated(kind: DataKind, folder: Path, done: set[Path], *, durable: bool = True) -> None:
    """Before a writer first adds rows to `folder`: migrate what an earlier release left there. `done`
    holds the folders this writer already checked (each is checked once per writer). Caller holds the lock."""
    if folder in done:
        return
    migrate_folder(kind, folder, durable=durable)
    done.add(folder)


def migrate_catalog(root: Path, *, durable: bool = True) -> MigrateReport:
    """Migrate every file that needs it. The caller holds the catalog lock."""
    report = MigrateReport()
    for kind in _kinds():
        for iid in list_instruments(root, kind):
            if not rescales_for(kind, iid):
                continue
            folder = instrument_dir(root, kind, iid)
            report.files_checked += len(list_data_files(folder))
            part = migrate_folder(kind, folder, durable=durable)
            report.migrated.extend(part.migrated)
            report.rows += part.rows
            report.unreadable.extend(part.unreadable)
    return report


def migrate(root: Path, *, durable: bool = True) -> MigrateReport:
    """`ccxt-cli catalog migrate`: take the lock, clear what a crash left (temp files, overlaps: see
    `repair`), then migrate every file that needs it. Idempotent and crash-safe."""
    with exclusive_lock(root / LOCK_FILE):
        repaired = repair(root, durable=durable)
        report = migrate_catalog(root, durable=durable)
    report.temp_files_removed = len(repaired.temp_files_removed)
    return report


__all__ = [
    "COMMAND",
    "MigrateReport",
    "PendingFile",
    "ensure_migrated",
    "migrate",
    "migrate_catalog",
    "migrate_folder",
    "migration_problems",
    "pending_files",
]
