"""Reading the catalog: queries, last timestamps, coverage. Never changes a file.

Everything that can be answered from file names is: `last_timestamp`, `first_timestamp` and `coverage`
list one folder and compare fixed-width names as strings, so they stay fast with thousands of files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

from ccxt_pipeline.catalog.layout import (
    data_file_names,
    instrument_dir,
    list_data_files,
    list_instruments,
    name_overlaps,
    parse_file_name,
    stamp_bounds,
)
from ccxt_pipeline.catalog.schema import DataKind, from_table
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.models import Record
from ccxt_pipeline.venues import get_venue


class CatalogReader:
    """Read-only access to a catalog folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def instruments(self, kind: DataKind) -> list[str]:
        """Instrument ids that have a folder for `kind`."""
        return list_instruments(self.root, kind)

    def last_timestamp(self, kind: DataKind, instrument_id: str) -> int | None:
        """The newest `ts_init` stored for the instrument, from file names alone; None if nothing is stored."""
        names = data_file_names(instrument_dir(self.root, kind, instrument_id))
        for name in reversed(names):
            parsed = parse_file_name(name)
            if parsed is not None:
                return parsed[1]
        return None

    def first_timestamp(self, kind: DataKind, instrument_id: str) -> int | None:
        """The oldest `ts_init` stored for the instrument, from file names alone."""
        for name in data_file_names(instrument_dir(self.root, kind, instrument_id)):
            parsed = parse_file_name(name)
            if parsed is not None:
                return parsed[0]
        return None

    def coverage(self, kind: DataKind, instrument_id: str, tolerance_ns: int = 0) -> list[tuple[int, int]]:
        """The `ts_init` ranges present, from file names: touching ranges, or ranges no more than
        `tolerance_ns` apart (e.g. one sampling period), are joined into one."""
        out: list[tuple[int, int]] = []
        for f in list_data_files(instrument_dir(self.root, kind, instrument_id)):
            if out and f.start - out[-1][1] <= max(tolerance_ns, 1):
                out[-1] = (out[-1][0], max(out[-1][1], f.end))
            else:
                out.append((f.start, f.end))
        return out

    def resolve_instruments(
        self,
        kind: DataKind,
        instrument_ids: Iterable[str] | None = None,
        exchanges: Iterable[str] | None = None,
    ) -> list[str]:
        """The stored instrument ids selected by ids and/or exchanges (all of them if neither is given)."""
        stored = self.instruments(kind)
        selected = stored if instrument_ids is None else [i for i in instrument_ids if i in stored]
        if exchanges is not None:
            suffixes = tuple("." + get_venue(e).nautilus_venue for e in exchanges)
            selected = [i for i in selected if i.endswith(suffixes)]
        return selected

    def query(
        self,
        kind: DataKind,
        instrument_ids: Iterable[str] | None = None,
        exchanges: Iterable[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> pa.Table:
        """Rows of `kind` with `start <= ts_init <= end` (either bound optional), sorted by `ts_init`.

        Files are pruned by name before anything is opened.
        """
        lo, hi = stamp_bounds(start, end)
        paths: list[str] = []
        for iid in self.resolve_instruments(kind, instrument_ids, exchanges):
            folder = instrument_dir(self.root, kind, iid)
            paths.extend(str(folder / n) for n in data_file_names(folder) if name_overlaps(n, lo, hi))
        if not paths:
            return kind.schema.empty_table()
        table = self._read(kind, paths, start, end)
        if len(paths) > 1:
            table = table.sort_by([(c, "ascending") for c in kind.key])
        return table

    def query_records(
        self,
        kind: DataKind,
        instrument_ids: Iterable[str] | None = None,
        exchanges: Iterable[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[Record]:
        """Like :meth:`query`, as validated models."""
        return from_table(kind, self.query(kind, instrument_ids, exchanges, start, end))

    def _read(self, kind: DataKind, paths: Sequence[str], start: int | None, end: int | None) -> pa.Table:
        expr = None
        ts = ds.field("ts_init")
        if start is not None:
            expr = ts >= start
        if end is not None:
            expr = (ts <= end) if expr is None else expr & (ts <= end)
        try:
            dataset = ds.dataset(list(paths), format="parquet", schema=kind.schema)
            table = dataset.to_table(filter=expr)
        except (OSError, pa.ArrowInvalid) as exc:
            raise CatalogError(f"cannot read {kind.type_dir} files under {self.root}: {exc}") from exc
        return table.replace_schema_metadata(kind.schema.metadata)
