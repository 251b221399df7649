"""The Parquet catalog NautilusTrader's `ParquetDataCatalog` reads as it is.

    <catalog>/data/<type_dir>/<instrument_id>/<first ts_init>_<last ts_init>.parquet

`CatalogWriter` owns every invariant (sorted, disjoint, de-duplicated, atomic, crash-safe);
`CatalogReader` queries without changing anything. See docs/catalog.md.

The names below load on first use (they pull in pyarrow and the record models), so that importing a light
submodule (`ccxt_pipeline.catalog.info`, for `catalog info`) does not load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccxt_pipeline.catalog.reader import CatalogReader
    from ccxt_pipeline.catalog.schema import (
        COVERAGE_GAP,
        FUNDING_ESTIMATE,
        FUNDING_RATE,
        KINDS,
        LIQUIDATION,
        OPEN_INTEREST,
        DataKind,
        get_kind,
        kind_of,
    )
    from ccxt_pipeline.catalog.writer import CatalogWriter, WriteResult

__all__ = [
    "COVERAGE_GAP",
    "FUNDING_ESTIMATE",
    "FUNDING_RATE",
    "KINDS",
    "LIQUIDATION",
    "OPEN_INTEREST",
    "CatalogReader",
    "CatalogWriter",
    "DataKind",
    "WriteResult",
    "get_kind",
    "kind_of",
]

_HOMES = {"CatalogReader": "reader", "CatalogWriter": "writer", "WriteResult": "writer"}
"""Submodule of each name; the rest are in `schema`."""


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES.get(name, 'schema')}"), name)
    globals()[name] = value
    return value
