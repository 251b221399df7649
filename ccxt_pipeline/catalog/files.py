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
from ccxt_pipeline.catalog.schema import DataKind
from ccxt_pipeline.errors import CatalogError

PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **PARQUET_OPTIONS)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        fsync_dir(path.parent)


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
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_data_file(kind: DataKind, path: Path) -> pa.Table:
    """Read one data file in `kind`'s schema; CatalogError if it cannot be read."""
    try:
        table = pq.ParquetFile(path).read(use_threads=False)  # read_table would import pyarrow.dataset (slow)
        return table.select(kind.columns).cast(kind.schema)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from exc
