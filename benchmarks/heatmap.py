"""Heatmap speed: 24 hours of BTC liquidations on Binance and Bybit (600,000 stored rows), over HTTP.

    python benchmarks/heatmap.py [--rows-per-exchange 300000] [--repeat 20]

Builds a catalog with one UTC day of liquidations per exchange as the stream writes them (one file per
instrument per minute: 2 x 1,440 files), starts the real server on it (`ccxt-cli serve --catalog ...
--port 0`, default settings, in its own process) and times
`GET /liquidations/heatmap?symbol=BTCUSDT-PERP&exchanges=binance,bybit&from=<day>&to=<day end>` from
here over one keep-alive HTTP connection:

- cold: the first request of the fresh server (every file read; the OS page cache is warm);
- warm: the median of `--repeat` requests that follow;
- live: the median of `--repeat` requests, each after 5 more liquidations were written into the day's last
  minute (its file rewritten, as the stream's writer does every flush: `stream.flush_seconds` 1 s), not
  timed;

then compacts the day (`catalog compact`: one file per instrument) and times cold and warm on a fresh
server again. After each layout the last answer's totals must equal the stored notional per exchange
and side. Target (issue 14): under 300 ms warm.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader, CatalogWriter  # noqa: E402
from ccxt_pipeline.catalog.maintenance import compact  # noqa: E402
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND  # noqa: E402

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
INSTRUMENTS = {"binance": "BTCUSDT-PERP.BINANCE", "bybit": "BTCUSDT-LINEAR.BYBIT"}
PARAMS = {
    "symbol": "BTCUSDT-PERP",
    "exchanges": "binance,bybit",
    "from": "2025-01-01T00:00:00Z",
    "to": "2025-01-01T23:59:59.999999999Z",
}
PATH = "/liquidations/heatmap?" + urllib.parse.urlencode(PARAMS)


def liquidations(exchange: str, ts: np.ndarray[Any, Any], rng: np.random.Generator) -> pa.Table:
    rows = len(ts)
    price = np.round(95_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, rows))), 1)
    qty = np.round(rng.lognormal(-3, 1.5, rows), 3) + 0.001
    return pa.table(
        {
            "exchange": [exchange] * rows,
            "instrument_id": [INSTRUMENTS[exchange]] * rows,
            "side": np.where(rng.random(rows) < 0.5, "LONG", "SHORT"),
            "quantity": qty,
            "price": price,
            "notional": price * qty,
            "ts_event": ts - 5_000_000,
            "ts_init": ts,
        }
    )


def build(root: Path, rows: int) -> None:
    """`rows` liquidations per exchange over the day: a random walk of prices around 95,000."""
    writer = CatalogWriter(root, durable=False)
    rng = np.random.default_rng(14)
    for exchange in INSTRUMENTS:
        ts = np.sort(rng.integers(T0, T0 + NS_PER_DAY - NS_PER_MINUTE, rows))
        ts = ts + np.arange(rows) % 1000  # distinct stamps, still sorted
        writer.write_table(LIQUIDATION, liquidations(exchange, ts, rng), bucket_ns=NS_PER_MINUTE)


class Server:
    """`ccxt-cli serve` on the catalog, any free port, default settings, in its own process."""

    def __init__(self, catalog: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline", "serve", "--port", "0", "--catalog", str(catalog)],
            cwd=catalog.parent,  # no config file of this checkout's
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # printed once the socket listens
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the server did not start: {line}{self.proc.communicate()[1]}")
        self.port = int(match.group(1))
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self) -> tuple[float, dict[str, Any]]:
        for attempt in range(2):
            t = time.perf_counter()
            try:
                self.conn.request("GET", PATH)
                response = self.conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionError):
                if attempt:
                    raise
                # the server closes a connection idle for 5 s (uvicorn's keep-alive): open a new one
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            break
        data = response.read()
        elapsed = time.perf_counter() - t
        assert response.status == 200, data[:300]
        body: dict[str, Any] = json.loads(data)
        return elapsed, body

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        _, rest = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, rest


def check_totals(root: Path, body: dict[str, Any]) -> None:
    stored = CatalogReader(root).query(LIQUIDATION)
    assert body["events"] == stored.num_rows, (body["events"], stored.num_rows)
    for exchange in INSTRUMENTS:
        for side in ("LONG", "SHORT"):
            mask = np.logical_and(
                stored.column("exchange").to_numpy(zero_copy_only=False) == exchange,
                stored.column("side").to_numpy(zero_copy_only=False) == side,
            )
            want = math.fsum(stored.column("notional").to_numpy()[mask])
            got = body["totals"][exchange][side.lower()]
            assert math.isclose(got, want, rel_tol=1e-9), (exchange, side, got, want)


def report(layout: str, files: int, times: list[float], body: dict[str, Any], cold: float | None) -> None:
    head = f"cold {cold * 1000:.0f} ms  " if cold is not None else ""
    print(
        f"{layout:<28} files {files:>5}  rows {body['events']:,}  cells {len(body['cells']):,}  "
        f"bucket {int(body['bucket_ns']) // NS_PER_MINUTE}m x price step {body['price_step']}  {head}"
        f"median {statistics.median(times) * 1000:.0f} ms "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, n {len(times)})",
        flush=True,
    )


def count_files(root: Path) -> int:
    return sum(1 for _ in (root / "data" / LIQUIDATION.type_dir).rglob("*.parquet"))


def main(rows: int, repeat: int) -> None:
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}"
    )
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalog"
        t = time.perf_counter()
        build(root, rows)
        print(f"built {2 * rows:,} liquidations in {time.perf_counter() - t:.1f} s")

        server = Server(root)
        try:
            cold, body = server.get()
            warm = [server.get()[0] for _ in range(repeat)]
            body = server.get()[1]
            check_totals(root, body)
            report("minute files (stream)", count_files(root), warm, body, cold)

            writer = CatalogWriter(root, durable=False)
            rng = np.random.default_rng(15)
            last = T0 + NS_PER_DAY - NS_PER_MINUTE
            live = []
            step = 59 * NS_PER_SECOND // (5 * repeat)  # the minute's events spread over the requests
            for i in range(repeat):
                ts = last + (i * 5 + np.arange(5, dtype=np.int64)) * step
                for exchange in INSTRUMENTS:  # not timed: the stream's flush into the current minute
                    writer.write_table(LIQUIDATION, liquidations(exchange, ts, rng), bucket_ns=NS_PER_MINUTE)
                elapsed, body = server.get()
                live.append(elapsed)
            check_totals(root, body)
            report("minute files, being written", count_files(root), live, body, None)
        finally:
            server.close()

        compact(root, durable=False)
        server = Server(root)
        try:
            cold, body = server.get()
            warm = [server.get()[0] for _ in range(repeat)]
            check_totals(root, body)
            report("daily files (compacted)", count_files(root), warm, body, cold)
        finally:
            server.close()
    print("totals equal the stored notional per exchange and side: yes")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-exchange", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    main(args.rows_per_exchange, args.repeat)
