"""Catalog writer throughput and `last_timestamp` latency.

    python benchmarks/catalog_write.py [--rows 1000000] [--files 2000]

1. Writes `--rows` liquidation rows through `CatalogWriter` (fsync on, as in production) in batches of
   several sizes, appending as a live stream does, and reports rows/s and the ratio of the writer's time
   to one bare `pyarrow.parquet.write_table` of the same final table (same compression). Target: <= 3.
   The models path (validated Pydantic records in) is measured too, on the largest batch size.
2. Fills one instrument folder with `--files` files through the writer and times `last_timestamp`
   (from file names alone). Target: < 10 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ccxt_pipeline.catalog import LIQUIDATION, CatalogWriter
from ccxt_pipeline.catalog.files import PARQUET_OPTIONS
from ccxt_pipeline.catalog.schema import from_table

T0 = 1_735_689_600_000_000_000
IID = "BTCUSDT-PERP.BINANCE"


def liquidation_table(start: int, n: int) -> pa.Table:
    """n liquidation rows, one per millisecond from row `start`, alternating sides."""
    idx = pa.array(range(start, start + n), pa.int64())
    ts = [T0 + i * 1_000_000 for i in range(start, start + n)]
    price = [90_000.0 + (i % 1000) * 0.5 for i in range(start, start + n)]
    qty = [0.001 * (1 + i % 50) for i in range(start, start + n)]
    return pa.table(
        {
            "exchange": ["binance"] * n,
            "instrument_id": [IID] * n,
            "side": ["LONG" if i % 2 else "SHORT" for i in idx.to_pylist()],
            "quantity": qty,
            "price": price,
            "notional": [p * q for p, q in zip(price, qty, strict=True)],
            "ts_event": ts,
            "ts_init": [t + 3_000_000 for t in ts],
        },
        schema=LIQUIDATION.schema,
    )


def bench_writer(rows: int, batch: int, root: Path) -> tuple[float, float, float, int]:
    tables = [liquidation_table(s, min(batch, rows - s)) for s in range(0, rows, batch)]
    writer = CatalogWriter(root)
    t = time.perf_counter()
    for table in tables:
        writer.write_table(LIQUIDATION, table)
    elapsed = time.perf_counter() - t
    final = writer.query(LIQUIDATION)
    assert final.num_rows == rows
    bare = root / "bare.parquet"
    t = time.perf_counter()
    pq.write_table(final, bare, **PARQUET_OPTIONS)
    bare_elapsed = time.perf_counter() - t
    # The floor for this batch size: one bare write_table per batch, each to its own file, no fsync.
    t = time.perf_counter()
    for i, table in enumerate(tables):
        pq.write_table(table, root / f"bare{i}.parquet", **PARQUET_OPTIONS)
    per_batch = time.perf_counter() - t
    return elapsed, bare_elapsed, per_batch, len(os.listdir(root / "data" / LIQUIDATION.type_dir / IID))


def bench_models(rows: int, root: Path) -> float:
    records = from_table(LIQUIDATION, liquidation_table(0, rows))  # validated models, as parsers produce
    writer = CatalogWriter(root)
    t = time.perf_counter()
    writer.write(records)
    return time.perf_counter() - t


def bench_last_timestamp(files: int, root: Path) -> tuple[float, float, float]:
    writer = CatalogWriter(root, durable=False)
    for i in range(files):
        writer.write_table(LIQUIDATION, liquidation_table(i * 10, 5))
    folder = root / "data" / LIQUIDATION.type_dir / IID
    assert len(os.listdir(folder)) == files
    os.sync()
    t = time.perf_counter()
    writer.last_timestamp(LIQUIDATION, IID)
    first = time.perf_counter() - t
    times = []
    for _ in range(200):
        t = time.perf_counter()
        writer.last_timestamp(LIQUIDATION, IID)
        times.append(time.perf_counter() - t)
    return first, statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1_000_000, 100_000, 10_000])
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pyarrow {pa.__version__}"
    )
    print(f"\n1. {args.rows:,} liquidation rows through CatalogWriter (fsync on, zstd)")
    print(
        "ratio: writer time / one bare write_table of the final table; "
        "batch floor: bare write_table of each batch to its own file"
    )
    print(
        f"{'batch':>10} {'files':>6} {'writer s':>9} {'rows/s':>12} {'bare s':>8} {'ratio':>6} "
        f"{'floor s':>8} {'vs floor':>8}"
    )
    for batch in args.batches:
        with tempfile.TemporaryDirectory() as d:
            elapsed, bare, floor, files = bench_writer(args.rows, batch, Path(d))
        print(
            f"{batch:>10,} {files:>6} {elapsed:>9.3f} {args.rows / elapsed:>12,.0f} {bare:>8.3f} "
            f"{elapsed / bare:>6.2f} {floor:>8.3f} {elapsed / floor:>8.2f}"
        )
    with tempfile.TemporaryDirectory() as d:
        elapsed = bench_models(args.rows, Path(d))
    print(
        f"models path: {args.rows:,} validated Liquidation records in one write: {elapsed:.3f} s, "
        f"{args.rows / elapsed:,.0f} rows/s"
    )
    with tempfile.TemporaryDirectory() as d:
        first, median, worst = bench_last_timestamp(args.files, Path(d))
    print(
        f"\n2. last_timestamp with {args.files:,} files in the folder: first call {first * 1e3:.2f} ms, "
        f"median {median * 1e3:.3f} ms, worst {worst * 1e3:.3f} ms (200 calls)"
    )


if __name__ == "__main__":
    main()
