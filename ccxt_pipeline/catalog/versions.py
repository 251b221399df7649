"""What each schema version of a data file means, and how rows of an older file read today.

Every data file carries its version in the Parquet metadata (`ccxt_pipeline.schema_version`; files without
one count as version 0). Columns and dtypes have not changed between versions; meanings have:

| version | change |
|---|---|
| 1 | first release |
| 2 | Bybit open interest is ONE side of the market (`singleOpenInterest`), like Binance. Version 1 stored Bybit's `openInterest` and `openInterestValue`, "the sum of both sides" (https://bybit-exchange.github.io/docs/v5/market/open-interest, https://bybit-exchange.github.io/docs/v5/market/tickers): twice the single side. |
| 3 | Hyperliquid open interest is ONE side: half its `openInterest`, valued at `markPx`. Versions 0 to 2 stored Hyperliquid's `openInterest` (and that x `markPx`) as served: the sum of absolute position sizes, both sides (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/hip-3-deployer-actions, "Open interest caps"; docs/exchanges.md): twice the single side. |

Each rescale concerns one exchange: a Bybit file of version 2 needs nothing, a Hyperliquid file of version 2
is halved; a Bybit file of version 0 or 1 is halved once (by the version 2 rescale), never twice.

:func:`upgrade_table` brings a table read from an older file to today's meaning. `files.read_data_file`
applies it, and every code path that rewrites a file (the writer's merges, repair, compaction, migration)
reads through it: a rewritten file is always correct in the version it is written with. Files nobody
rewrites keep their old version until `ccxt-cli catalog migrate` (see `ccxt_pipeline.catalog.migrate`).
This module is pure: no disk, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.catalog.schema import META_VERSION, SCHEMA_VERSION, DataKind
from ccxt_pipeline.venues import get_venue

CURRENT_VERSION = int(SCHEMA_VERSION)


@dataclass(frozen=True)
class Rescale:
    """Columns that files of one type and exchange, older than `version`, stored at `factor` times today's
    meaning. Upgrading multiplies them by `1 / factor`."""

    version: int
    """The first version with today's meaning."""
    kind: str
    """`DataKind.name`."""
    exchange: str
    """Our exchange name; its instrument folders end in `.<NautilusTrader venue>`."""
    columns: tuple[str, ...]
    factor: float
    why: str


RESCALES: tuple[Rescale, ...] = (
    # Bybit's own docs: openInterest "The value is the sum of both sides"; tickers "Open interest size
    # (both sides)", "Open interest value (both sides)". Version 1 stored those; version 2 one side.
    Rescale(
        version=2,
        kind="open_interest",
        exchange="bybit",
        columns=("open_interest", "open_interest_value"),
        factor=2.0,
        why="Bybit open interest written before schema 2 is both sides (twice the single side)",
    ),
    # Hyperliquid's `openInterest` is "size (sum of absolute position sizes)" (HIP-3 deployer actions, "Open
    # interest caps"); its stats site "now shows two-sided open interest" from it (hyperliquid-dex/
    # hyperliquid-stats-web components/home/charts/open-interest.tsx). Versions 0-2 stored it as served,
    # and its value as that x `markPx`; version 3 stores half of both.
    Rescale(
        version=3,
        kind="open_interest",
        exchange="hyperliquid",
        columns=("open_interest", "open_interest_value"),
        factor=2.0,
        why="Hyperliquid open interest written before schema 3 is both sides (twice the single side)",
    ),
)


def file_version(metadata: Mapping[bytes, bytes] | None) -> int:
    """The schema version in a file's metadata; 0 if it has none (or one we cannot read as a number)."""
    raw = (metadata or {}).get(META_VERSION)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def rescales_for(kind: DataKind, instrument_id: str) -> list[Rescale]:
    """The rescales that ever applied to files of `kind` in the folder of `instrument_id`."""
    return [
        r
        for r in RESCALES
        if r.kind == kind.name and instrument_id.endswith("." + get_venue(r.exchange).nautilus_venue)
    ]


def pending(kind: DataKind, instrument_id: str, version: int) -> list[Rescale]:
    """The rescales a file of `version` still needs."""
    return [r for r in rescales_for(kind, instrument_id) if version < r.version]


def upgrade_table(kind: DataKind, instrument_id: str, table: pa.Table) -> pa.Table:
    """`table` as read from a file of `instrument_id`'s folder (its schema metadata intact), in today's
    meaning. Tables that need nothing come back unchanged (the same object). Halving is exact in binary
    floating point, so an upgraded value is exactly the old one divided by two."""
    todo = pending(kind, instrument_id, file_version(table.schema.metadata))
    for r in todo:
        for name in r.columns:
            if name in table.column_names:
                i = table.schema.get_field_index(name)
                scaled = pc.divide(table.column(name), pa.scalar(r.factor, pa.float64()))
                table = table.set_column(i, table.schema.field(i).with_type(scaled.type), scaled)
    return table


__all__ = [
    "CURRENT_VERSION",
    "RESCALES",
    "Rescale",
    "file_version",
    "pending",
    "rescales_for",
    "upgrade_table",
]
