"""Atomic file operations and the catalog lock: the only code that creates or replaces data files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.layout import TMP_SUFFIX
from ccxt_pipeline.catalog.quarantine import quarantine_file
from ccxt_pipeline.catalog.schema import DataKind
from ccxt_pipeline.catalog.versions import upgrade_table
from ccxt_pipeline.errors import CatalogError

PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


class CatalogWriteError(CatalogError):
    """A data file could not be written: the disk is full, the catalog read-only, ... (`errno` says which).
    Nothing was changed: the file holds what it held before."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(f"cannot write the catalog ({cause.strerror or cause}): {path}")
        self.errno = cause.errno
        self.path = path


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, path: Path, *, durable: bool = True) -> None:
    """Write `table` to `path` so that `path` holds either its old content or all of `table`, never a part.

    Temp file in the same folder (hidden, `.tmp`), fsync, rename over `path`, fsync the folder. A crash
    leaves at most a stray temp file, which the next open of the catalog removes.
    """
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **PARQUET_OPTIONS)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):  # disk full, read-only, quota, permission: one line, not a traceback
            raise CatalogWriteError(path, exc) from exc
        raise


def remove_files(paths: list[Path], *, durable: bool = True) -> None:
    folders = set()
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
        folders.add(p.parent)
    if durable:
        for folder in folders:
            fsync_dir(folder)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `lock_path` (one writer per catalog, across processes)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only catalog, say: one line, not a traceback
        raise CatalogError(f"cannot lock the catalog ({exc.strerror or exc}): {lock_path}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class BadDataFile(CatalogError):
    """A data file that cannot be read as its type: not Parquet, cut short, or columns that do not cast."""


def read_data_file(
    kind: DataKind,
    path: Path,
    *,
    columns: list[str] | None = None,
    raw: bool = False,
    quarantine: bool = True,
) -> pa.Table | None:
    """Read one data file in `kind`'s schema and today's meaning (see :mod:`ccxt_pipeline.catalog.versions`);
    `raw`: as stored; `columns`: only those columns, as stored.

    The one way data files are opened. A file that is not Parquet, is cut short, or whose columns cannot
    be cast to the type's schema is moved to the catalog's quarantine folder (see
    :mod:`ccxt_pipeline.catalog.quarantine`) and None is returned: callers treat it as a hole and go on.
    With `quarantine=False` (verify, which only reports) it raises :class:`BadDataFile` instead. An
    error of the system rather than of the file (the file gone, no permission) raises CatalogError.
    """
    try:
        st = os.stat(path)
        table = _read(path, columns)
        if not raw and columns is None:
            # Older files to today's meaning (needs the file's metadata), then today's schema and version.
            table = upgrade_table(kind, path.parent.name, table)
            table = table.select(kind.columns).cast(kind.schema)
        return table
    except OSError as exc:
        if exc.errno is not None:  # the system's error (pyarrow's own for a bad file carry no errno)
            raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from exc
        reason = _one_line(exc)
    except (pa.ArrowException, KeyError) as exc:
        reason = _one_line(exc)
    if not quarantine:
        raise BadDataFile(f"cannot read {path}: {reason}")
    quarantine_file(path, reason, identity=(st.st_dev, st.st_ino))
    return None


def read_row_count(path: Path) -> int | None:
    """Rows in one data file, from its footer; None if the file is unreadable (it is quarantined)."""
    try:
        st = os.stat(path)
        rows: int = pq.ParquetFile(path).metadata.num_rows
        return rows
    except OSError as exc:
        if exc.errno is not None:
            raise CatalogError(f"cannot read {path}: {exc.strerror or exc}") from exc
        reason = _one_line(exc)
    except pa.ArrowException as exc:
        reason = _one_line(exc)
    quarantine_file(path, reason, identity=(st.st_dev, st.st_ino))
    return None


def _read(path: Path, columns: list[str] | None) -> pa.Table:
    # ParquetFile, not read_table: read_table would import pyarrow.dataset (slow to import).
    return pq.ParquetFile(path).read(columns=columns, use_threads=False)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]
