"""Child process for the migration crash trials: migrates a catalog, to be SIGKILLed part way.

Prints `ready` once imported (the parent starts its clock there), then `done` when the migration returned.

    python tests/migrate_crash_child.py CATALOG
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ccxt_pipeline.catalog.files import PARQUET_OPTIONS
from ccxt_pipeline.catalog.migrate import migrate


def main() -> None:
    root = Path(sys.argv[1])
    # Warm up what the first file would otherwise pay for (lazy imports, the zstd codec), so that the
    # parent's kill times spread over the migration itself.
    warm = root.parent / f".{root.name}.warmup.parquet"
    pq.write_table(pa.table({"x": [1.0]}), warm, **PARQUET_OPTIONS)
    pq.ParquetFile(warm).read()
    warm.unlink()
    print("ready", flush=True)
    migrate(root)
    print("done", flush=True)


if __name__ == "__main__":
    main()
