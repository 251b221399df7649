"""History backfill speed against the local simulator with 50 ms per request.

    python benchmarks/fetch_history.py [--latency-ms 50] [--days 30]

Fetches `--days` of 5-minute open interest plus settled funding for BTCUSDT-PERP from Binance, Bybit and
Hyperliquid (Hyperliquid keeps no open-interest history), both jobs on one set of clients, into a fresh
catalog. Reports the wall time, the requests each exchange received, and the ratio to the floor:

    floor = max over exchanges of (fewest possible requests x latency / requests in flight allowed)

where the fewest possible requests are load_markets' own plus ceil(rows / page limit) per history, and
"in flight allowed" is the venue table's `max_concurrency`. Target: 1.5x the floor or better.
ccxt's own rate limiter is off here (the simulator enforces none); in production it spaces requests by each
exchange's documented weights, which for long backfills, not latency, sets the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow.dataset  # noqa: F401 - imported lazily by pyarrow on first write; not part of the timing

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogWriter
from ccxt_pipeline.collect.run import FetchRequest, check_request, fetch_on, open_exchanges
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE, now_ns
from ccxt_pipeline.venues import VENUES

# Requests ccxt's load_markets makes (docs/exchanges.md), with the venue table's options.
LOAD_MARKETS_REQUESTS = {"binance": 1, "bybit": 2, "hyperliquid": 1}


def _serve(conn: Connection, latency_ms: float) -> None:
    """The simulator in its own process, so its CPU is not charged to the pipeline."""

    async def serve() -> None:
        # Compute the series once before timing: the simulator should answer in its latency, not in the
        # time its own data generation takes (it shares this 2-core machine with the pipeline).
        now_ms = int(time.time() * 1000)
        for exchange, symbol in (("binance", "BTCUSDT"), ("bybit", "BTCUSDT"), ("hyperliquid", "BTC")):
            for t in data.period_grid("5m", now_ms - 31 * 86_400_000, now_ms + 3_600_000):
                data.open_interest(exchange, symbol, t, 0)  # as the handlers call it: same cache key
                data.mark_price(exchange, symbol, t, 0)
        async with ExchangeSimulator(seed=0) as sim:
            sim.latency_ms = latency_ms
            conn.send(sim.port)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until told to stop
            conn.send(dict(sim.requests))

    asyncio.run(serve())


async def main(latency_ms: float, days: int) -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, latency_ms), daemon=True)
    server.start()
    sim = ExchangeSimulator(port=parent.recv())  # not started: only for its ccxt URL overrides
    try:
        with tempfile.TemporaryDirectory() as tmp:
            exchanges = {
                name: {"ccxt": {**sim.ccxt_overrides(name), "timeout_on_exit": 0}}
                for name in VENUES
                if name != "okx"
            }
            settings = Settings(catalog_path=Path(tmp), exchanges=exchanges)
            now = now_ns()
            start = now - days * NS_PER_DAY + 10 * NS_PER_MINUTE  # inside Binance's 30-day window
            oi = FetchRequest(OPEN_INTEREST, ["BTCUSDT-PERP"], start=start, end=now)
            funding = FetchRequest(FUNDING_RATE, ["BTCUSDT-PERP"], start=start, end=now)
            names = check_request(settings, oi, now)
            writer = CatalogWriter(settings.catalog_path)
            t0, cpu0 = time.perf_counter(), time.process_time()
            async with open_exchanges(settings, names) as opened:
                reports = await asyncio.gather(
                    fetch_on(opened, oi, writer), fetch_on(opened, funding, writer)
                )
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            rows = {r.exchange: 0 for r in reports[0].exchanges}
            for report in reports:
                for ex in report.exchanges:
                    assert ex.error is None, ex.error
                    rows[ex.exchange] += ex.written
    finally:
        parent.send("stop")
        counts: dict[tuple[str, str], int] = parent.recv()
        server.join(timeout=10)
    floor, lines = 0.0, []
    for name in names:
        venue = VENUES[name]
        fewest = LOAD_MARKETS_REQUESTS[name] + _fewest_history_requests(name, start, now, days)
        ex_floor = fewest * latency_ms / 1000 / venue.max_concurrency
        floor = max(floor, ex_floor)
        received = sum(n for (ex, _), n in counts.items() if ex == name)
        lines.append(
            f"  {name:<12} requests {received:>4} (fewest {fewest:>3}), in flight {venue.max_concurrency}, "
            f"floor {ex_floor * 1000:>5.0f} ms, rows written {rows[name]:,}"
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"{days} days of 5m open interest + funding history, BTCUSDT-PERP, 3 exchanges, {latency_ms:.0f} ms/request"
    )
    print("\n".join(lines))
    ratio = f"{wall / floor:.2f}" if floor else "-"
    print(f"pipeline CPU time {cpu * 1000:.0f} ms (the simulator runs in its own process)")
    print(f"wall time {wall * 1000:.0f} ms; floor {floor * 1000:.0f} ms; ratio {ratio} (target <= 1.5)")


def _fewest_history_requests(name: str, start: int, end: int, days: int) -> int:
    venue = VENUES[name]
    start_ms, end_ms = start // 1_000_000, end // 1_000_000
    n = 0
    if venue.oi_history_periods:
        points = len(data.period_grid("5m", start_ms, end_ms))
        n += math.ceil(points / venue.oi_history_limit)
    symbol = "BTC" if name == "hyperliquid" else "BTCUSDT"
    settlements = len(data.funding_settlements(name, symbol, start_ms, end_ms))
    n += math.ceil(settlements / venue.funding_history_limit)
    return n


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.latency_ms, args.days)))
