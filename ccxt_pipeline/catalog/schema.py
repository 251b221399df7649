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
import weakref
from collections.abc import Callable, Sequence
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

SCHEMA_VERSION = "3"
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
    cli_name: str | None = None
    """How users name the type on the command line (`ccxt-cli query oi ...`); None: not queryable there."""

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
    cli_name="oi",
)
FUNDING_RATE = DataKind(
    name="funding_rate",
    model=FundingRate,
    type_dir="funding_rate_update",
    schema=_schema(
        "funding_rate", [pa.field("rate", pa.float64(), False), pa.field("interval_minutes", pa.int64())]
    ),
    key=("ts_init", "ts_event"),
    cli_name="funding",
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
    cli_name="liquidations",
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
GAP_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k is not COVERAGE_GAP)
"""What `CoverageGap.data_type` may hold: the name of a stored kind (a string column on disk)."""
CLI_KINDS: dict[str, DataKind] = {k.cli_name: k for k in KINDS.values() if k.cli_name}
"""Kinds by the spelling users type (`oi`, `funding`, `liquidations`)."""


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


_CONFORMED: dict[int, tuple[weakref.ref[pa.Table], DataKind]] = {}
"""Tables `conform_table` returned, by id: tables are immutable, so one checked once stays checked and a
producer that checks early (a parser, to refuse bad input at once) costs the writer nothing."""


def conform_table(kind: DataKind, table: pa.Table) -> pa.Table:
    """Check an Arrow table against the rules of `kind.model` without building rows; return it in schema.

    Applies the same rules as the Pydantic model, vectorised: required columns, no nulls where the model
    needs a value, finite floats, numeric bounds (taken from the model's field metadata), known sides, the
    model validators' cross-field rules (`_RULES`: a liquidation's notional, filled from price x quantity
    when absent; a gap's order and data type), and the exchange/instrument pairing. Raises RecordError
    naming the column, the row and the raw value. The writer calls it on every table it is given
    (`CatalogWriter.write_table`): that is the one point where Arrow input is validated.
    """
    seen = _CONFORMED.get(id(table))
    if seen is not None and seen[0]() is table and seen[1] is kind:
        return table
    name = kind.model.__name__
    derived = _DERIVED.get(kind.name, {})
    missing = [
        c
        for c in kind.columns
        if c not in table.column_names and not kind.schema.field(c).nullable and c not in derived
    ]
    extra = [c for c in table.column_names if c not in kind.columns]
    if missing or extra:
        what = f"missing columns {missing}" if missing else f"unknown columns {extra}"
        raise RecordError(f"{name}: {what}")
    arrays: dict[str, pa.ChunkedArray] = {}
    for field in kind.schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            try:
                col = col.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RecordError(f"{name}.{field.name}: cannot be {field.type} ({exc})") from exc
        else:
            col = pa.chunked_array([pa.nulls(table.num_rows, field.type)])
        if field.name in derived:
            col = derived[field.name](arrays, col)
        arrays[field.name] = col
        _check_column(kind, field, col)
        for rule in _RULES.get((kind.name, field.name), ()):
            rule(kind, arrays)
    out = pa.Table.from_arrays(list(arrays.values()), schema=kind.schema)
    _check_venues(kind, out)
    key = id(out)
    _CONFORMED[key] = (weakref.ref(out, lambda _: _forget(key)), kind)
    return out


def _forget(key: int) -> None:
    _CONFORMED.pop(key, None)


# The model validators' rules (`ccxt_pipeline.models`), column by column. Each runs once its column and
# the columns before it are in schema and have passed their own checks, the order the model checks in.


def _fill_notional(cols: dict[str, pa.ChunkedArray], notional: pa.ChunkedArray) -> pa.ChunkedArray:
    """`Liquidation._fill_notional`: an absent notional is price x quantity."""
    if not notional.null_count:
        return notional
    return pc.coalesce(notional, pc.multiply(cols["price"], cols["quantity"]))


def _notional_consistent(kind: DataKind, cols: dict[str, pa.ChunkedArray]) -> None:
    """`Liquidation._notional_consistent`: math.isclose(notional, price x quantity, rel_tol=1e-6)."""
    notional, expected = cols["notional"], pc.multiply(cols["price"], cols["quantity"])
    tolerance = pc.multiply(pc.max_element_wise(pc.abs(notional), pc.abs(expected)), 1e-6)
    bad = pc.greater(pc.abs(pc.subtract(notional, expected)), tolerance)
    _fail(kind, "notional", notional, bad, "must be price x quantity (within 1e-6)")


def _gap_kind_known(kind: DataKind, cols: dict[str, pa.ChunkedArray]) -> None:
    """`CoverageGap._known_kind`: the name of a stored kind."""
    col = cols["data_type"]
    _fail(kind, "data_type", col, pc.invert(pc.is_in(col, pa.array(GAP_KINDS))), "unknown data type")


def _gap_ordered(kind: DataKind, cols: dict[str, pa.ChunkedArray]) -> None:
    """`CoverageGap._ordered`: a gap ends at or after its start."""
    _fail(kind, "end_ns", cols["end_ns"], pc.less(cols["end_ns"], cols["ts_event"]), "ends before it starts")


_DERIVED: dict[str, dict[str, Callable[[dict[str, pa.ChunkedArray], pa.ChunkedArray], pa.ChunkedArray]]] = {
    LIQUIDATION.name: {"notional": _fill_notional}
}
_RULES: dict[tuple[str, str], tuple[Callable[[DataKind, dict[str, pa.ChunkedArray]], None], ...]] = {
    (LIQUIDATION.name, "notional"): (_notional_consistent,),
    (COVERAGE_GAP.name, "data_type"): (_gap_kind_known,),
    # end_ns comes before ts_event in the schema: checked once ts_event is in.
    (COVERAGE_GAP.name, "ts_event"): (_gap_ordered,),
}


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
