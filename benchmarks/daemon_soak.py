"""Soak: the daemon for a long time against the simulator, watching memory, tasks, descriptors and rows.

    python benchmarks/daemon_soak.py [--minutes 120] [--rate 200] [--warmup-minutes 10] [--window-minutes 15]

The simulator runs in this process; the daemon is a real `ccxt-cli daemon start` subprocess with every job
at 1-second intervals and liquidation streams at `--rate` events/s in all (half Binance, half Bybit).
Every 10 s it samples the daemon's resident memory and open descriptors (/proc) and its asyncio task count
(from the status file), with what the daemon says its memory is made of (Arrow buffers in use, Python heap
blocks). Targets: resident memory grows by 5 % or less after warm-up (median of the first against the last
`--window-minutes`); no growth in tasks or descriptors; no liquidation lost (every event the simulator delivered
is in the catalog at the end).
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

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader  # noqa: E402
from ccxt_pipeline.daemon.control import DaemonPaths, is_locked, read_status  # noqa: E402
from ccxt_pipeline.instruments import instrument_for  # noqa: E402
from ccxt_pipeline.simulator.server import ExchangeSimulator  # noqa: E402
from ccxt_pipeline.timeutil import NS_PER_MS  # noqa: E402
from tests.conftest import SimulatorThread, sim_settings  # noqa: E402


def proc_sample(pid: int) -> tuple[int, int]:
    rss = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope (bytes per second)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def main(minutes: float, rate: float, warmup_minutes: float, window_minutes: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    thread = SimulatorThread(ExchangeSimulator(seed=42))
    samples: list[tuple[float, int, int, int, int, int]] = []
    with thread as sim:
        data = sim_settings(
            sim,
            tmp / "catalog",
            schedule={"open_interest_seconds": 1, "funding_seconds": 1},
            daemon={"status_seconds": 1, "open_interest_backfill_days": 1, "funding_backfill_days": 2},
            stream={"flush_seconds": 1.0},
            symbols=["BTCUSDT-PERP", "ETHUSDT-PERP"],
        )
        data["logging"] = {"level": "WARNING", "format": "json"}
        config = tmp / "soak.yaml"
        config.write_text(yaml.safe_dump(data))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        log = (tmp / "daemon.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline", "daemon", "start", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        paths = DaemonPaths.for_catalog(tmp / "catalog")
        while not (is_locked(paths) and read_status(paths)):
            time.sleep(0.2)
        for ex in ("binance", "bybit"):
            thread.run(sim.liquidations.wait_subscribed(ex, "BTCUSDT", max_wait_s=30))
        sim.liquidations.rate_per_s = {"binance": rate / 2, "bybit": rate / 2}
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < minutes * 60:
            rss, fds = proc_sample(proc.pid)
            status = read_status(paths) or {}
            arrow, blocks = int(status.get("arrow_bytes", 0)), int(status.get("python_blocks", 0))
            samples.append((elapsed, rss, fds, int(status.get("tasks", 0)), arrow, blocks))
            print(
                f"{elapsed / 60:6.1f} min  rss {rss / 2**20:7.1f} MiB  arrow {arrow / 2**20:6.1f} MiB  "
                f"py blocks {blocks:8d}  fds {fds:4d}  tasks {samples[-1][3]:3d}  "
                f"liquidations {status.get('liquidations_written', 0)}",
                flush=True,
            )
            time.sleep(10)
        sim.liquidations.rate_per_s = {}
        time.sleep(2)
        final_status = read_status(paths) or {}
        stop = subprocess.run(
            [sys.executable, "-m", "ccxt_pipeline", "daemon", "stop", "--config", str(config)],
            env=env,
            capture_output=True,
            text=True,
        )
        proc.wait(timeout=30)
        sent = list(sim.liquidations.sent)
    table = CatalogReader(tmp / "catalog").query(LIQUIDATION)
    stored = set(
        zip(
            *(
                table.column(c).to_pylist()
                for c in ("instrument_id", "ts_event", "side", "price", "quantity")
            ),
            strict=True,
        )
    )
    expected = {
        (
            instrument_for(e.exchange, e.ccxt_symbol).instrument_id,
            e.t_ms * NS_PER_MS,
            e.liquidated_side,
            e.price,
            e.quantity,
        )
        for e in sent
    }
    lost = len(expected - stored)
    after = [s for s in samples if s[0] >= warmup_minutes * 60]
    base, end = after[0], after[-1]
    # Resident memory swings with the allocator (tens of MiB either way); compare the first and last five
    # window after warm-up by their medians, and fit a slope, rather than trusting two single samples.
    window = max(1, int(window_minutes * 6))  # samples, 10 s apart
    first_rss = statistics.median(s[1] for s in after[:window])
    last_rss = statistics.median(s[1] for s in after[-window:])
    slope_last_half = _slope([(s[0], s[1]) for s in after[len(after) // 2 :]]) * 3600 / 2**20

    def medians(i: int) -> str:
        return f"{statistics.median(s[i] for s in after[:window]):.0f} -> {statistics.median(s[i] for s in after[-window:]):.0f}"

    growth = (last_rss - first_rss) / first_rss * 100
    slope = _slope([(s[0], s[1]) for s in after]) * 3600 / 2**20
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"soak: {minutes:.0f} min, all jobs every 1 s, streams {rate:.0f} events/s; warm-up {warmup_minutes:.0f} min"
    )
    print(
        f"resident memory after warm-up, median of the first vs the last {window_minutes:.0f} min: "
        f"{first_rss / 2**20:.1f} -> {last_rss / 2**20:.1f} MiB ({growth:+.1f} %); trend {slope:+.1f} MiB/hour "
        f"(second half alone {slope_last_half:+.1f} MiB/hour); "
        f"range {min(s[1] for s in after) / 2**20:.1f}..{max(s[1] for s in after) / 2**20:.1f} MiB"
    )
    print(f"arrow bytes in use (first vs last window medians): {medians(4)}")
    print(f"python heap blocks (first vs last window medians): {medians(5)}")
    print(f"open descriptors after warm-up: {base[2]} -> {end[2]} (max {max(s[2] for s in after)})")
    print(f"asyncio tasks after warm-up: {base[3]} -> {end[3]} (max {max(s[3] for s in after)})")
    print(f"liquidations delivered {len(expected)}, stored {len(stored)}, lost {lost}")
    jobs = final_status.get("jobs", {})
    print("jobs: " + ", ".join(f"{n} runs {j['runs']} failures {j['failures']}" for n, j in jobs.items()))
    print(f"stop: {stop.stdout.strip() or stop.stderr.strip()}")
    ok = growth <= 5 and end[2] <= base[2] + 2 and end[3] <= base[3] + 2 and lost == 0
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=120)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--warmup-minutes", type=float, default=10)
    parser.add_argument("--window-minutes", type=float, default=15)
    args = parser.parse_args()
    sys.exit(main(args.minutes, args.rate, args.warmup_minutes, args.window_minutes))
