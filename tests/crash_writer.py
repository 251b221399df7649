"""Child process for the crash trials: writes overlapping batches until it is killed.

After each `write_table` returns it appends the batch number to a journal and fsyncs it, so the parent knows
exactly which batches the catalog must hold after a SIGKILL. Batches are Arrow tables of a few thousand
rows, so most of the child's time is spent inside the writer (building Parquet, fsync, rename), where a
kill tests something.

    python tests/crash_writer.py CATALOG JOURNAL SEED
"""

from __future__ import annotations

import os
import random
import sys

import pyarrow as pa

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogWriter, DataKind

T0 = 1_735_689_600_000_000_000
SECOND = 1_000_000_000


def batch(n: int, rng: random.Random) -> list[tuple[DataKind, pa.Table]]:
    """Batch n: a random window of open interest (overlapping earlier ones) and a run of liquidations."""
    start = rng.randrange(0, 20_000)
    ks = list(range(start, start + rng.randrange(1, 4_000)))
    ts = [T0 + k * SECOND for k in ks]
    oi = pa.table(
        {
            "exchange": ["binance"] * len(ks),
            "instrument_id": ["BTCUSDT-PERP.BINANCE"] * len(ks),
            "open_interest": [float(k) for k in ks],
            "ts_event": ts,
            "ts_init": ts,
        }
    )
    m = rng.randrange(0, 2_000)
    lts = [T0 + (n * 1_000 + j) * SECOND for j in range(m)]
    liq = pa.table(
        {
            "exchange": ["bybit"] * m,
            "instrument_id": ["BTCUSDT-LINEAR.BYBIT"] * m,
            "side": ["LONG" if j % 2 else "SHORT" for j in range(m)],
            "quantity": [1.0 + j for j in range(m)],
            "price": [100.0 + n] * m,
            "notional": [(1.0 + j) * (100.0 + n) for j in range(m)],
            "ts_event": lts,
            "ts_init": [t + 1 for t in lts],
        }
    )
    return [(OPEN_INTEREST, oi), (LIQUIDATION, liq)]


def main() -> None:
    catalog, journal, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    writer = CatalogWriter(catalog)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    n = 0
    while True:
        for kind, table in batch(n, rng):
            writer.write_table(kind, table)
        os.write(fd, f"{n}\n".encode())
        os.fsync(fd)
        if n == 0:
            print("ready", flush=True)
        n += 1


if __name__ == "__main__":
    main()
