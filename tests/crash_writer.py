"""Child process for the crash trials: writes overlapping batches until it is killed.

After each `write` returns it appends the batch number to a journal and fsyncs it, so the parent knows
exactly which batches the catalog must hold after a SIGKILL.

    python tests/crash_writer.py CATALOG JOURNAL SEED
"""

from __future__ import annotations

import os
import random
import sys

from ccxt_pipeline.catalog import CatalogWriter
from ccxt_pipeline.models import Liquidation, OpenInterest, Record

T0 = 1_735_689_600_000_000_000
SECOND = 1_000_000_000


def batch(n: int, rng: random.Random) -> list[Record]:
    """Batch n: a random window of open interest (overlapping earlier ones) and some liquidations."""
    start = rng.randrange(0, 400)
    rows: list[Record] = [
        OpenInterest(
            exchange="binance",
            instrument_id="BTCUSDT-PERP.BINANCE",
            ts_event=T0 + k * SECOND,
            ts_init=T0 + k * SECOND,
            open_interest=float(k),
        )
        for k in range(start, start + rng.randrange(1, 60))
    ]
    rows += [
        Liquidation(
            exchange="bybit",
            instrument_id="BTCUSDT-LINEAR.BYBIT",
            ts_event=T0 + (n * 7 + j) * SECOND,
            ts_init=T0 + (n * 7 + j) * SECOND + 1,
            side="LONG" if j % 2 else "SHORT",
            quantity=1.0 + j,
            price=100.0 + n,
        )
        for j in range(rng.randrange(0, 12))
    ]
    return rows


def main() -> None:
    catalog, journal, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    writer = CatalogWriter(catalog)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # Build batches ahead, so that the process spends its time inside `write`, where kills matter.
    ahead = [batch(n, rng) for n in range(300)]
    n = 0
    while True:
        writer.write(ahead[n] if n < len(ahead) else batch(n, rng))
        os.write(fd, f"{n}\n".encode())
        os.fsync(fd)
        if n == 0:
            print("ready", flush=True)
        n += 1


if __name__ == "__main__":
    main()
