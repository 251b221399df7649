"""Heatmap speed: 24 hours of BTC liquidations on Binance and Bybit (600,000 stored rows), over HTTP.

    python benchmarks/heatmap.py [--rows-per-exchange 300000] [--repeat 20]

Builds a catalog with one UTC day of liquidations per exchange, first as the stream writes them (one file
per instrument per minute: 2 x 1,440 files), then as `catalog compact` leaves them (one file per
instrument), and times `GET /liquidations/heatmap?symbol=BTCUSDT-PERP&exchanges=binance,bybit` for that
day through the real app (FastAPI's TestClient: routing, parameter checks, JSON encoding included):
the first request of a fresh app (cold: every file read from disk; the OS page cache is warm) and the
median of repeated requests (warm). Checks that the totals equal the stored notional per exchange and
side. Target (issue 14): under 300 ms warm.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader, CatalogWriter  # noqa: E402
from ccxt_pipeline.catalog.maintenance import compact  # noqa: E402
from ccxt_pipeline.serve.api import create_app  # noqa: E402
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE  # noqa: E402

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
INSTRUMENTS = {"binance": "BTCUSDT-PERP.BINANCE", "bybit": "BTCUSDT-LINEAR.BYBIT"}
PARAMS = {
    "symbol": "BTCUSDT-PERP",
    "exchanges": "binance,bybit",
    "from": "2025-01-01T00:00:00Z",
    "to": "2025-01-01T23:59:59.999999Z",
}


def build(root: Path, rows: int) -> None:
    """`rows` liquidations per exchange over the day: a random walk of prices around 95,000."""
    writer = CatalogWriter(root, durable=False)
    rng = np.random.default_rng(14)
    for exchange, iid in INSTRUMENTS.items():
        ts = np.sort(rng.integers(T0, T0 + NS_PER_DAY, rows))
        ts = ts + np.arange(rows) % 1000  # distinct stamps, still sorted
        price = np.round(95_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, rows))), 1)
        qty = np.round(rng.lognormal(-3, 1.5, rows), 3) + 0.001
        table = pa.table(
            {
                "exchange": [exchange] * rows,
                "instrument_id": [iid] * rows,
                "side": np.where(rng.random(rows) < 0.5, "LONG", "SHORT"),
                "quantity": qty,
                "price": price,
                "notional": price * qty,
                "ts_event": ts - 5_000_000,
                "ts_init": ts,
            }
        )
        writer.write_table(LIQUIDATION, table, bucket_ns=NS_PER_MINUTE)  # the stream's one file a minute


def time_requests(root: Path, repeat: int) -> tuple[float, list[float], dict[str, object]]:
    times = []
    body: dict[str, object] = {}
    with TestClient(create_app(root)) as client:  # one event loop for every request, as a server has
        for _ in range(repeat + 1):
            t = time.perf_counter()
            r = client.get("/liquidations/heatmap", params=PARAMS)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            body = r.json()
    return times[0], times[1:], body


def check_totals(root: Path, body: dict[str, object]) -> None:
    stored = CatalogReader(root).query(LIQUIDATION)
    totals = body["totals"]
    assert isinstance(totals, dict)
    for exchange in INSTRUMENTS:
        for side in ("LONG", "SHORT"):
            mask = np.logical_and(
                stored.column("exchange").to_numpy(zero_copy_only=False) == exchange,
                stored.column("side").to_numpy(zero_copy_only=False) == side,
            )
            want = math.fsum(stored.column("notional").to_numpy()[mask])
            got = totals[exchange][side.lower()]
            assert math.isclose(got, want, rel_tol=1e-9), (exchange, side, got, want)


def report(layout: str, files: int, cold: float, warm: list[float], body: dict[str, object]) -> None:
    cells = body["cells"]
    assert isinstance(cells, list)
    print(
        f"{layout:<22} files {files:>5}  rows {body['events']:,}  cells {len(cells):,}  "
        f"bucket {int(body['bucket_ns']) // NS_PER_MINUTE}m x price step {body['price_step']}  "  # type: ignore[call-overload]
        f"cold {cold * 1000:.0f} ms  warm median {statistics.median(warm) * 1000:.0f} ms "
        f"(min {min(warm) * 1000:.0f}, max {max(warm) * 1000:.0f})"
    )


def main(rows: int, repeat: int) -> None:
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalog"
        t = time.perf_counter()
        build(root, rows)
        print(f"built {2 * rows:,} liquidations in {time.perf_counter() - t:.1f} s")
        files = sum(1 for _ in (root / "data" / LIQUIDATION.type_dir).rglob("*.parquet"))
        cold, warm, body = time_requests(root, repeat)
        check_totals(root, body)
        report("minute files (stream)", files, cold, warm, body)
        compact(root, durable=False)
        files = sum(1 for _ in (root / "data" / LIQUIDATION.type_dir).rglob("*.parquet"))
        cold, warm, body = time_requests(root, repeat)
        check_totals(root, body)
        report("daily files (compact)", files, cold, warm, body)
    print("totals equal the stored notional per exchange and side: yes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-exchange", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    main(args.rows_per_exchange, args.repeat)
