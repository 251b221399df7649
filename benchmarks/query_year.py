"""Query speed: one year of 5-minute open interest for one instrument (105,120 rows in 365 daily files).

    python benchmarks/query_year.py [--repeat 20]

Builds the catalog once (daily files, as `catalog compact` leaves them), then times
`CatalogReader.query(OPEN_INTEREST, [instrument])` for the whole year: the first call in a fresh process
(cold: file metadata not yet read; the OS page cache is warm, as it is for a catalog in use) and the median
of repeated calls (warm). Target: under 100 ms warm.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader, CatalogWriter  # noqa: E402

T0 = 1_735_689_600_000_000_000  # 2025-01-01
STEP = 300_000_000_000
DAY = 86_400_000_000_000
IID = "BTCUSDT-PERP.BINANCE"


def build(root: Path) -> None:
    writer = CatalogWriter(root, durable=False)
    for day in range(365):
        ts = [T0 + day * DAY + i * STEP for i in range(288)]
        table = pa.table(
            {
                "exchange": ["binance"] * 288,
                "instrument_id": [IID] * 288,
                "open_interest": [80_000.0 + (day * 288 + i) % 997 for i in range(288)],
                "open_interest_value": [8e9 + i for i in range(288)],
                "ts_event": ts,
                "ts_init": ts,
            }
        )
        writer.write_table(OPEN_INTEREST, table)


def timed_query(root: Path) -> tuple[float, int]:
    t = time.perf_counter()
    table = CatalogReader(root).query(OPEN_INTEREST, [IID], start=T0, end=T0 + 365 * DAY)
    return time.perf_counter() - t, table.num_rows


def main(repeat: int, root: Path | None) -> None:
    if root is not None:  # the cold child: one query in a fresh process
        seconds, rows = timed_query(root)
        print(f"{seconds * 1000:.1f} {rows}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog"
        build(catalog)
        files = len(os.listdir(catalog / "data" / OPEN_INTEREST.type_dir / IID))
        cold = subprocess.run(
            [sys.executable, __file__, "--cold", str(catalog)], capture_output=True, text=True, check=True
        ).stdout.split()
        warm = [timed_query(catalog)[0] for _ in range(repeat)]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, pyarrow {pa.__version__}"
    )
    print(f"one year of 5-minute open interest: {cold[1]} rows in {files} daily files")
    print(f"cold (first query in a fresh process): {float(cold[0]):.1f} ms")
    print(
        f"warm (median of {repeat}): {statistics.median(warm) * 1000:.1f} ms; best {min(warm) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cold", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    main(args.repeat, args.cold)
