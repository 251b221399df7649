"""Sorting and de-duplication of Arrow tables by a type's natural key, columnar throughout."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.schema import DataKind


def sort_unique(kind: DataKind, table: pa.Table) -> pa.Table:
    """Sort by the natural key (ts_init first) and keep the first row of each key.

    The sort is stable, so "first" means first in `table`: put stored rows before new ones and the
    stored copy wins.
    """
    if table.num_rows <= 1:
        return table
    ts = table.column("ts_init").combine_chunks()
    if pc.all(pc.less(ts.slice(0, len(ts) - 1), ts.slice(1))).as_py():
        return table  # strictly increasing ts_init: sorted, and every key (which starts with it) unique
    table = table.sort_by([(c, "ascending") for c in kind.key])
    keep = first_of_each_key(table, kind.key)
    if keep is None:
        return table
    return table.filter(keep)


def first_of_each_key(table: pa.Table, key: tuple[str, ...]) -> pa.Array | None:
    """On a table sorted by `key`: a mask of each key's first row, or None if every key is unique."""
    n = table.num_rows
    differs: pa.Array | None = None
    for name in key:
        col = table.column(name).combine_chunks()
        d = pc.not_equal(col.slice(1), col.slice(0, n - 1))
        differs = d if differs is None else pc.or_(differs, d)
    assert differs is not None
    if pc.all(differs).as_py():
        return None
    return pa.concat_arrays([pa.array([True]), differs])


def is_sorted_unique(kind: DataKind, table: pa.Table) -> bool:
    """True if `table` is sorted by ts_init and holds no two rows with the same natural key."""
    if table.num_rows <= 1:
        return True
    ts = table.column("ts_init").combine_chunks()
    if not pc.all(pc.less_equal(ts.slice(0, len(ts) - 1), ts.slice(1))).as_py():
        return False
    return bool(sort_unique(kind, table).num_rows == table.num_rows)
