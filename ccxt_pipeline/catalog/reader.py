"""Reading the catalog: queries, last timestamps, coverage. Never changes a file.

Everything that can be answered from file names is: `last_timestamp`, `first_timestamp` and `coverage`
list one folder and compare fixed-width names as strings, so they stay fast with thousands of files.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.layout import (
    DataFile,
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

    def grid_span(self, kind: DataKind, instrument_id: str, step: int) -> tuple[int, int] | None:
        """The first and last stored history points on the `step` grid (`ts_init == ts_event`, a multiple of
        `step`), skipping live snapshots that share the folder. Reads the ts columns of as few files as it
        must: from each end inwards until a grid point is found."""
        files = list_data_files(instrument_dir(self.root, kind, instrument_id))

        def grid_points(f: DataFile) -> list[int]:
            table = pq.ParquetFile(f.path).read(columns=["ts_event", "ts_init"], use_threads=False)
            ts_init, ts_event = table.column("ts_init").to_numpy(), table.column("ts_event").to_numpy()
            return [int(t) for t in ts_init[(ts_init == ts_event) & (ts_init % step == 0)]]

        first = next((min(p) for f in files if (p := grid_points(f))), None)
        last = next((max(p) for f in reversed(files) if (p := grid_points(f))), None)
        return (first, last) if first is not None and last is not None else None

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
        parts = []
        instruments = self.resolve_instruments(kind, instrument_ids, exchanges)
        for iid in instruments:
            folder = instrument_dir(self.root, kind, iid)
            for name in data_file_names(folder):
                if name_overlaps(name, lo, hi):
                    parts.append(self._read(kind, folder / name, start, end))
        if not parts:
            return kind.schema.empty_table()
        table = pa.concat_tables(parts)
        if len(instruments) > 1:  # one instrument's files are disjoint and read in time order already
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

    def _read(self, kind: DataKind, path: Path, start: int | None, end: int | None) -> pa.Table:
        """One file in the type's schema, cut to [start, end] (sequential reads of small files beat a
        dataset scan: one year of daily files reads in tens of milliseconds)."""
        try:
            table = pq.ParquetFile(path).read(use_threads=False)
        except (OSError, pa.ArrowInvalid) as exc:
            raise CatalogError(f"cannot read {path}: {exc}") from exc
        if table.schema != kind.schema:
            table = table.select(kind.columns).cast(kind.schema)
        bounds = parse_file_name(path.name)
        if bounds is not None and (
            (start is not None and bounds[0] < start) or (end is not None and bounds[1] > end)
        ):
            ts = table.column("ts_init")
            mask = None
            if start is not None:
                mask = pc.greater_equal(ts, start)
            if end is not None:
                upper = pc.less_equal(ts, end)
                mask = upper if mask is None else pc.and_(mask, upper)
            table = table.filter(mask)
        return table
