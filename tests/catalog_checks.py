"""Assertions about a catalog folder that every test may use."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TypeVar, cast

import pyarrow.parquet as pq

from ccxt_pipeline.catalog.layout import kind_dir, list_data_files
from ccxt_pipeline.catalog.merge import is_sorted_unique
from ccxt_pipeline.catalog.schema import KINDS, META_VERSION, SCHEMA_VERSION
from ccxt_pipeline.models import Record

R = TypeVar("R", bound=Record)


def as_records(model: type[R], rows: list[Record]) -> list[R]:
    """`rows` (e.g. from `CatalogReader.query_records(kind)`) typed as `model`, the kind's model.

    For the type checker only: no runtime check, so a test behaves exactly as it did without it.
    """
    del model  # names the type; nothing to do at run time
    return cast("list[R]", rows)


def assert_catalog_invariants(root: Path, *, exact_names: bool = True) -> int:
    """Check every invariant of docs/catalog.md on disk; return the total row count."""
    total = 0
    for kind in KINDS.values():
        base = kind_dir(root, kind)
        if not base.is_dir():
            continue
        for folder in base.iterdir():
            files = list_data_files(folder)
            names = sorted(p.name for p in folder.iterdir())
            assert names == [f.path.name for f in files], f"stray files in {folder}: {names}"
            for prev, cur in itertools.pairwise(files):
                assert prev.end < cur.start, f"overlap: {prev.path.name} / {cur.path.name}"
            for f in files:
                table = pq.read_table(f.path)
                assert table.schema.remove_metadata() == kind.schema.remove_metadata(), f.path
                assert table.schema.metadata[META_VERSION] == SCHEMA_VERSION.encode()
                assert table.num_rows > 0
                assert is_sorted_unique(kind, table), f"unsorted or duplicated: {f.path}"
                ts = table.column("ts_init").to_pylist()
                if exact_names:
                    assert (ts[0], ts[-1]) == (f.start, f.end), f"name does not match contents: {f.path}"
                else:
                    assert f.start <= ts[0], f"name understates contents: {f.path}"
                    assert ts[-1] <= f.end, f"name understates contents: {f.path}"
                assert set(table.column("instrument_id").to_pylist()) == {folder.name}
                total += table.num_rows
    return total
