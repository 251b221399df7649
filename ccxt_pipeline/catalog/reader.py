"""Reading the catalog: queries, last timestamps, coverage. Never changes a file.

Everything that can be answered from file names is: `last_timestamp`, `first_timestamp` and `coverage`
list one folder and compare fixed-width names as strings, so they stay fast with thousands of files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Concatenate, ParamSpec

import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog import describe as _describe
from ccxt_pipeline.catalog.files import read_data_file
from ccxt_pipeline.catalog.layout import (
    data_file_names,
    instrument_dir,
    list_data_files,
    list_instruments,
    name_overlaps,
    overlapping_files,
    parse_file_name,
    stamp_bounds,
)
from ccxt_pipeline.catalog.schema import (
    COVERAGE_GAP,
    FUNDING_RATE,
    LIQUIDATION,
    OPEN_INTEREST,
    DataKind,
    from_table,
)
from ccxt_pipeline.models import Record
from ccxt_pipeline.venues import get_venue

P = ParamSpec("P")
Query = Callable[Concatenate["CatalogReader", DataKind, P], pa.Table]


def _as_records(query: Query[P]) -> Callable[Concatenate[CatalogReader, DataKind, P], list[Record]]:
    """`query` answering validated models instead of a table: the same arguments, by position or by name."""

    def query_records(
        self: CatalogReader, kind: DataKind, /, *args: P.args, **kwargs: P.kwargs
    ) -> list[Record]:
        return from_table(kind, query(self, kind, *args, **kwargs))

    query_records.__qualname__ = "CatalogReader.query_records"
    query_records.__doc__ = "Like :meth:`query`, as validated models."
    return query_records


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

    def read_columns(
        self, kind: DataKind, instrument_id: str, columns: Sequence[str], start: int, end: int
    ) -> pa.Table:
        """Only `columns` (and `ts_init`) of the rows with `start <= ts_init <= end`, sorted by `ts_init`,
        read from the files whose names overlap the range: what history planning needs, without the rest."""
        wanted = list(dict.fromkeys(["ts_init", *columns]))
        parts = []
        for f in overlapping_files(instrument_dir(self.root, kind, instrument_id), start, end):
            table = read_data_file(kind, f.path, columns=wanted)
            if table is None:  # unreadable, moved to quarantine: a hole the next fetch fills
                continue
            if f.start < start or f.end > end:
                ts = table.column("ts_init")
                table = table.filter(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end)))
            parts.append(table.cast(pa.schema([kind.schema.field(c) for c in wanted])))
        if not parts:
            return pa.schema([kind.schema.field(c) for c in wanted]).empty_table()
        return pa.concat_tables(parts)

    def recorded_gaps(
        self, instrument_id: str, gap_kind: DataKind, start: int, end: int
    ) -> list[tuple[int, int]]:
        """The recorded coverage gaps of `gap_kind` for the instrument that meet [start, end], as inclusive
        (start, end) ranges. A gap's file is named for its start, so every file starting by `end` is read
        (gaps are few)."""
        out = []
        for f in list_data_files(instrument_dir(self.root, COVERAGE_GAP, instrument_id)):
            if f.start > end:
                break
            table = read_data_file(COVERAGE_GAP, f.path, columns=["ts_init", "end_ns", "data_type"])
            if table is None:
                continue
            for first, last, kind in zip(
                table.column("ts_init").to_pylist(),
                table.column("end_ns").to_pylist(),
                table.column("data_type").to_pylist(),
                strict=True,
            ):
                if kind == gap_kind.name and first <= end and last >= start:
                    out.append((first, last))
        return out

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

    def describe(self) -> _describe.CatalogInfo:
        """What `catalog info` shows: per type and instrument, files, rows, bytes and the first and last
        row's `ts_init` read from the data (not the file names), and the files in quarantine."""
        return _describe.describe(self.root)

    def coverage_report(
        self, kinds: Sequence[DataKind] = (OPEN_INTEREST, FUNDING_RATE, LIQUIDATION)
    ) -> list[_describe.SeriesCoverage]:
        """What `catalog coverage` shows: per series, the ranges present, the holes nobody recorded, the
        recorded gaps and the percent covered, each type by its own period (see
        :mod:`ccxt_pipeline.catalog.describe` and docs/catalog.md)."""
        return _describe.coverage(self.root, kinds)

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
                    part = self._read(kind, folder / name, start, end)
                    if part is not None:  # None: unreadable, moved to quarantine
                        parts.append(part)
        if not parts:
            return kind.schema.empty_table()
        table = pa.concat_tables(parts)
        if len(instruments) > 1:  # one instrument's files are disjoint and read in time order already
            table = table.sort_by([(c, "ascending") for c in kind.key])
        return table

    query_records = _as_records(query)

    def _read(self, kind: DataKind, path: Path, start: int | None, end: int | None) -> pa.Table | None:
        """One file in the type's schema, cut to [start, end] (sequential reads of small files beat a
        dataset scan: one year of daily files reads in tens of milliseconds); None if it is unreadable
        (it has been moved to quarantine)."""
        table = read_data_file(kind, path)
        if table is None:
            return None
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
