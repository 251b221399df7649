"""What each record type looks like on disk: folder, Arrow schema, natural key.

The Parquet schema and the NautilusTrader class that reads it (`ccxt_pipeline.nautilus`) are defined to
match column for column; `tests/test_nautilus.py` checks that they do. Timestamps are int64 nanoseconds in
every file of every type (NautilusTrader's `@customdataclass` uses int64; one dtype per type is required).

| kind              | folder under data/             | Nautilus class (1.221)                 |
|-------------------|--------------------------------|----------------------------------------|
| open_interest     | custom_open_interest           | ccxt_pipeline.nautilus:OpenInterest      |
| funding_rate      | funding_rate_update            | nautilus_trader FundingRateUpdate (+codec) |
| funding_estimate  | custom_funding_rate_estimate   | ccxt_pipeline.nautilus:FundingRateEstimate |
| liquidation       | custom_liquidation             | ccxt_pipeline.nautilus:Liquidation       |
| gap               | custom_coverage_gap            | ccxt_pipeline.nautilus:CoverageGap       |
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import annotated_types
import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.models import (
    INSTRUMENT_ID_PATTERN,
    CoverageGap,
    FundingRate,
    FundingRateEstimate,
    Liquidation,
    OpenInterest,
    Record,
    Side,
)
from ccxt_pipeline.venues import VENUES

_INSTRUMENT_ID = re.compile(INSTRUMENT_ID_PATTERN)

SCHEMA_VERSION = "2"
"""Written into every file's metadata. What each version means, and how an older file is brought up to
date: `ccxt_pipeline.catalog.versions`."""
META_VERSION = b"ccxt_pipeline.schema_version"
META_KIND = b"ccxt_pipeline.kind"

_COMMON_HEAD = [pa.field("exchange", pa.string(), False), pa.field("instrument_id", pa.string(), False)]
_COMMON_TAIL = [pa.field("ts_event", pa.int64(), False), pa.field("ts_init", pa.int64(), False)]


@dataclass(frozen=True)
class DataKind:
    name: str
    """Our name for the type, used by the CLI (`open_interest`)."""
    model: type[Record]
    type_dir: str
    """Folder under `<catalog>/data/`: NautilusTrader's snake_case class name."""
    schema: pa.Schema
    key: tuple[str, ...]
    """Natural key: two rows with equal key columns are the same row. Starts with ts_init, the sort key."""

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


def _schema(name: str, fields: Sequence[pa.Field]) -> pa.Schema:
    return pa.schema(
        [*_COMMON_HEAD, *fields, *_COMMON_TAIL],
        metadata={META_VERSION: SCHEMA_VERSION.encode(), META_KIND: name.encode()},
    )


OPEN_INTEREST = DataKind(
    name="open_interest",
    model=OpenInterest,
    type_dir="custom_open_interest",
    schema=_schema(
        "open_interest",
        [pa.field("open_interest", pa.float64(), False), pa.field("open_interest_value", pa.float64())],
    ),
    key=("ts_init", "ts_event"),
)
FUNDING_RATE = DataKind(
    name="funding_rate",
    model=FundingRate,
    type_dir="funding_rate_update",
    schema=_schema(
        "funding_rate", [pa.field("rate", pa.float64(), False), pa.field("interval_minutes", pa.int64())]
    ),
    key=("ts_init", "ts_event"),
)
FUNDING_ESTIMATE = DataKind(
    name="funding_estimate",
    model=FundingRateEstimate,
    type_dir="custom_funding_rate_estimate",
    schema=_schema(
        "funding_estimate",
        [
            pa.field("rate", pa.float64(), False),
            pa.field("next_funding_ns", pa.int64()),
            pa.field("interval_minutes", pa.int64()),
            pa.field("mark_price", pa.float64()),
            pa.field("index_price", pa.float64()),
        ],
    ),
    key=("ts_init", "ts_event"),
)
LIQUIDATION = DataKind(
    name="liquidation",
    model=Liquidation,
    type_dir="custom_liquidation",
    schema=_schema(
        "liquidation",
        [
            pa.field("side", pa.string(), False),
            pa.field("quantity", pa.float64(), False),
            pa.field("price", pa.float64(), False),
            pa.field("notional", pa.float64(), False),
        ],
    ),
    key=("ts_init", "ts_event", "side", "price", "quantity"),
)

COVERAGE_GAP = DataKind(
    name="gap",
    model=CoverageGap,
    type_dir="custom_coverage_gap",
    schema=_schema(
        "gap",
        [
            pa.field("data_type", pa.string(), False),
            pa.field("end_ns", pa.int64(), False),
            pa.field("reason", pa.string(), False),
        ],
    ),
    key=("ts_init", "ts_event", "data_type", "end_ns"),
)

KINDS: dict[str, DataKind] = {
    k.name: k for k in (OPEN_INTEREST, FUNDING_RATE, FUNDING_ESTIMATE, LIQUIDATION, COVERAGE_GAP)
}
_BY_MODEL: dict[type[Record], DataKind] = {k.model: k for k in KINDS.values()}


def kind_of(model: type[Record]) -> DataKind:
    return _BY_MODEL[model]


def get_kind(name: str) -> DataKind:
    try:
        return KINDS[name]
    except KeyError:
        raise RecordError(f"unknown data type {name!r} (known: {', '.join(KINDS)})") from None


# --- models <-> Arrow -----------------------------------------------------------------------------------


def to_table(kind: DataKind, records: Sequence[Record]) -> pa.Table:
    """Validated records to an Arrow table of `kind.schema`, one column at a time (no per-row dicts)."""
    arrays = []
    for field in kind.schema:
        values = list(map(operator.attrgetter(field.name), records))
        if field.name == "side":
            values = [v.value for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=kind.schema)


def from_table(kind: DataKind, table: pa.Table) -> list[Record]:
    """An Arrow table of `kind` back to validated records."""
    columns = [c for c in kind.columns if c in table.column_names]
    pylists = [table.column(c).to_pylist() for c in columns]
    return [
        kind.model.model_validate(dict(zip(columns, row, strict=True))) for row in zip(*pylists, strict=True)
    ]


# --- vectorised validation of Arrow input ----------------------------------------------------------------


def _bounds(kind: DataKind, column: str) -> list[tuple[str, Any]]:
    """The numeric bounds the Pydantic model puts on `column`, as (operator, limit) pairs."""
    out: list[tuple[str, Any]] = []
    for meta in kind.model.model_fields[column].metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if isinstance(meta, getattr(annotated_types, attr.capitalize())):
                out.append((op, getattr(meta, attr)))
    return out


_OPS = {">": pc.greater, ">=": pc.greater_equal, "<": pc.less, "<=": pc.less_equal}


def conform_table(kind: DataKind, table: pa.Table) -> pa.Table:
    """Check an Arrow table against the rules of `kind.model` without building rows; return it in schema.

    Applies the same rules as the Pydantic model (taken from its field metadata): required columns,
    no nulls where the model needs a value, finite floats, numeric bounds, known sides, and the
    exchange/instrument pairing. Raises RecordError naming the column, the row and the raw value.
    """
    name = kind.model.__name__
    missing = [c for c in kind.columns if c not in table.column_names and not kind.schema.field(c).nullable]
    extra = [c for c in table.column_names if c not in kind.columns]
    if missing or extra:
        what = f"missing columns {missing}" if missing else f"unknown columns {extra}"
        raise RecordError(f"{name}: {what}")
    arrays = []
    for field in kind.schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RecordError(f"{name}.{field.name}: cannot be {field.type} ({exc})") from exc
        else:
            col = pa.nulls(table.num_rows, field.type)
        arrays.append(col)
        _check_column(kind, field, col)
    out = pa.Table.from_arrays(arrays, schema=kind.schema)
    _check_venues(kind, out)
    return out


def _fail(kind: DataKind, column: str, col: pa.ChunkedArray, bad: pa.ChunkedArray, rule: str) -> None:
    idx = pc.index(bad, True).as_py()
    if idx >= 0:
        raise RecordError(f"{kind.model.__name__}.{column}: {rule} (got {col[idx].as_py()!r} at row {idx})")


def _check_column(kind: DataKind, field: pa.Field, col: pa.ChunkedArray) -> None:
    if not field.nullable and col.null_count:
        _fail(kind, field.name, col, pc.is_null(col), "a value is required")
    if pa.types.is_floating(field.type):
        _fail(kind, field.name, col, pc.invert(pc.is_finite(col)), "must be a finite number")
    if field.name == "side":
        _fail(
            kind, field.name, col, pc.invert(pc.is_in(col, pa.array([s.value for s in Side]))), "unknown side"
        )
    for op, limit in _bounds(kind, field.name) if field.name in kind.model.model_fields else []:
        ok = _OPS[op](col, pa.scalar(limit if not isinstance(limit, float) or math.isfinite(limit) else 0))
        _fail(kind, field.name, col, pc.invert(pc.fill_null(ok, True)), f"must be {op} {limit}")


def _check_venues(kind: DataKind, table: pa.Table) -> None:
    """Each distinct (exchange, instrument_id) pair must name a known exchange and an id on its venue."""
    if table.num_rows == 0:
        return
    pairs = table.group_by(["exchange", "instrument_id"]).aggregate([])
    for exchange, iid in zip(
        pairs.column("exchange").to_pylist(), pairs.column("instrument_id").to_pylist(), strict=True
    ):
        venue = VENUES.get(exchange)
        if venue is None:
            raise RecordError(f"{kind.model.__name__}.exchange: unknown exchange (got {exchange!r})")
        if not _INSTRUMENT_ID.match(iid) or not iid.endswith("." + venue.nautilus_venue):
            raise RecordError(
                f"{kind.model.__name__}.instrument_id: not an instrument on {exchange} (got {iid!r})"
            )
