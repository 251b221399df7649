"""The Parquet catalog NautilusTrader's `ParquetDataCatalog` reads as it is.

    <catalog>/data/<type_dir>/<instrument_id>/<first ts_init>_<last ts_init>.parquet

`CatalogWriter` owns every invariant (sorted, disjoint, de-duplicated, atomic, crash-safe);
`CatalogReader` queries without changing anything. See docs/catalog.md.
"""

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
