"""Liquidation burst: the real `ccxt-cli stream-liquidations` at 5,000 events/s for 60 s (issue #4).

    python benchmarks/liquidation_burst.py [--rate 5000] [--seconds 60] [--after 60]

The simulator runs in its own process (so its CPU is not charged to the pipeline); the pipeline is the
real CLI as a user runs it, `python -m ccxt_pipeline stream-liquidations BTCUSDT-PERP ETHUSDT-PERP`, with
default settings except the exchange URLs (pointed at the simulator on 127.0.0.1) and the catalog path.
Its event lines go to a file (a terminal would be slower), its health lines to another.

Phases: warm-up (`--warmup` s at `--idle-rate` events/s, so imports, first files and sockets are done),
the burst (`--rate` events/s for `--seconds` s, half on Binance `forceOrder`, half on Bybit
`allLiquidation`, each half split evenly over BTCUSDT and ETHUSDT, one event per websocket message),
then `--after` s at `--idle-rate` again, then SIGINT (a clean stop) and the catalog is read.

Measured:
- lost = events the simulator delivered - distinct events in the catalog after the clean stop;
- receipt-to-disk latency of each burst event: from just before the simulator generates and writes its
  frame (its wall clock, `time.time_ns()`) to the moment its row was in a catalog file. This process polls
  the liquidation folders every `--poll-ms` ms; a file whose (mtime, size, inode) changed is read and each
  row not seen before gets two times: the file's mtime (written just before its fsync and rename, so at
  or before the row became durable: a lower bound) and the poll that first saw it (after it became
  durable: an upper bound, late by at most one poll interval plus the time to list and read the files).
  The target is checked on the upper bound. Files are replaced atomically (temp file, fsync, rename), so
  a poll never reads half a file; reading costs this process a few % of one core;
- resident memory (VmRSS of the CLI process, /proc) every 0.5 s: at the end of warm-up, peak, and 30 s
  and at the end of `--after` after the burst.

Targets: 0 lost; p99 receipt-to-disk <= 1.5 s; resident memory at the end within 20 % of the warm-up's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader  # noqa: E402
from ccxt_pipeline.catalog.layout import kind_dir  # noqa: E402
from ccxt_pipeline.instruments import instrument_for  # noqa: E402
from ccxt_pipeline.simulator.server import ExchangeSimulator  # noqa: E402
from ccxt_pipeline.timeutil import NS_PER_MS  # noqa: E402

SYMBOLS = {"binance": ("BTCUSDT", "ETHUSDT"), "bybit": ("BTCUSDT", "ETHUSDT")}
CLI_SYMBOLS = ["BTCUSDT-PERP", "ETHUSDT-PERP"]
COLUMNS = ("ts_event", "side", "price", "quantity")
Key = tuple[str, int, str, float, float]
"""(instrument id, ts_event ns, LONG/SHORT, price, quantity): a stored row, as tests/test_stream.py."""


# --- the simulator process --------------------------------------------------------------------------------


async def _drive(sim: ExchangeSimulator, rate: float, seconds: float, out: list[Any]) -> None:
    """Emit `rate` events/s for `seconds`, round-robin over SYMBOLS (so each exchange gets half), at a
    steady pace: every pass emits what is due by now. Appends (key parts..., send ns) of delivered events."""
    if rate <= 0 or seconds <= 0:
        return
    feed = sim.liquidations
    targets = [(ex, sym) for ex, syms in SYMBOLS.items() for sym in syms]
    start = time.monotonic()
    total = int(rate * seconds)
    n = 0
    while n < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while n < due:
            ex, sym = targets[n % len(targets)]
            sent_ns = time.time_ns()
            ev = await feed.emit_random(ex, sym)
            if ev.delivered_to:
                out.append(
                    (ev.exchange, ev.ccxt_symbol, ev.t_ms, ev.liquidated_side, ev.price, ev.quantity, sent_ns)
                )
            n += 1
        await asyncio.sleep(0.002)


def _serve(conn: Connection) -> None:
    async def serve() -> None:
        loop = asyncio.get_running_loop()
        async with ExchangeSimulator(seed=5) as sim:
            conn.send({ex: sim.ccxt_overrides(ex) for ex in ("binance", "bybit", "hyperliquid")})
            while True:
                cmd = await loop.run_in_executor(None, conn.recv)
                if cmd[0] == "subscribed":
                    for ex, syms in SYMBOLS.items():
                        for sym in syms:
                            await sim.liquidations.wait_subscribed(ex, sym, max_wait_s=120)
                    conn.send(None)
                elif cmd[0] == "emit":
                    out: list[Any] = []
                    t0, c0 = time.monotonic(), time.process_time()
                    await _drive(sim, cmd[1], cmd[2], out)
                    conn.send((out, time.monotonic() - t0, time.process_time() - c0))
                else:
                    conn.send(len(sim.liquidations.undelivered))
                    return

    asyncio.run(serve())


# --- this process: the CLI, its memory, the catalog -------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class CatalogWatch:
    """First sight of each stored row: (file mtime ns, poll ns), from polling the liquidation folders."""

    def __init__(self, catalog: Path) -> None:
        self.folder = kind_dir(catalog, LIQUIDATION)
        self.seen: dict[Key, tuple[int, int, int]] = {}
        """Row -> (its ts_init: the CLI's receipt, file mtime, poll that first saw it), all ns."""
        self._state: dict[Path, tuple[int, int, int]] = {}
        self._prefix: dict[Path, tuple[int, int]] = {}
        """File -> (rows already taken, ts_init of the last of them): a rewrite of a minute's file keeps its
        rows (sorted by ts_init) and appends the new ones, so only rows past that prefix are converted."""
        self.reads = 0
        self.full_rereads = 0
        self.cpu_s = 0.0

    def poll(self) -> None:
        c0 = time.process_time()
        if not self.folder.is_dir():
            return
        for inst_dir in self.folder.iterdir():
            iid = inst_dir.name
            for entry in os.scandir(inst_dir):
                if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
                    continue  # temp files of a write in progress
                try:
                    st = entry.stat()
                    state = (st.st_mtime_ns, st.st_size, st.st_ino)
                    if self._state.get(Path(entry.path)) == state:
                        continue
                    table = pq.read_table(entry.path, columns=[*COLUMNS, "ts_init"])
                except FileNotFoundError:
                    continue  # replaced meanwhile: the next poll reads the new one
                seen_ns = time.time_ns()
                path = Path(entry.path)
                self._state[path] = state
                self.reads += 1
                done, last = self._prefix.get(path, (0, 0))
                if table.num_rows:
                    self._prefix[path] = (table.num_rows, table.column("ts_init")[-1].as_py())
                if 0 < done <= table.num_rows and table.column("ts_init")[done - 1].as_py() == last:
                    table = table.slice(done)  # the same rows as before, then the new ones
                elif done:
                    self.full_rereads += 1  # not an append: read it all (rows seen before are skipped)
                cols = [table.column(c).to_pylist() for c in (*COLUMNS, "ts_init")]
                for ts, side, price, qty, received in zip(*cols, strict=True):
                    key = (iid, ts, side, price, qty)
                    if key not in self.seen:
                        self.seen[key] = (received, state[0], seen_ns)
        self.cpu_s += time.process_time() - c0


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _keys(events: list[Any]) -> dict[Key, int]:
    out = {}
    for ex, ccxt_symbol, t_ms, side, price, qty, sent_ns in events:
        out[(instrument_for(ex, ccxt_symbol).instrument_id, t_ms * NS_PER_MS, side, price, qty)] = sent_ns
    return out


def main(rate: float, seconds: float, warmup: float, after: float, idle_rate: float, poll_ms: float) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="burst-"))
    catalog = tmp / "catalog"
    conn, child_conn = multiprocessing.Pipe()
    sim_proc = multiprocessing.Process(target=_serve, args=(child_conn,), daemon=True)
    sim_proc.start()
    overrides = conn.recv()
    config = tmp / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"catalog_path": str(catalog), "exchanges": {ex: {"ccxt": o} for ex, o in overrides.items()}}
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "ccxt_pipeline",
        "stream-liquidations",
        *CLI_SYMBOLS,
        "--config",
        str(config),
    ]
    with (tmp / "events.txt").open("wb") as out, (tmp / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    watch = CatalogWatch(catalog)
    samples: list[tuple[float, int]] = []  # (monotonic, rss)

    def phase(r: float, s: float) -> tuple[list[Any], float, float]:
        """Run one emitting phase in the simulator while sampling memory and polling the catalog."""
        conn.send(("emit", r, s))
        next_rss = 0.0
        while not conn.poll(poll_ms / 1000):
            now = time.monotonic()
            if now >= next_rss:
                samples.append((now, rss(proc.pid)))
                next_rss = now + 0.5
            watch.poll()
            if proc.poll() is not None:
                raise SystemExit(f"the CLI exited early ({proc.returncode}); see {tmp / 'stderr.txt'}")
        result: tuple[list[Any], float, float] = conn.recv()
        return result

    conn.send(("subscribed",))
    conn.recv()
    warm, _, _ = phase(idle_rate, warmup)
    rss_start, cpu_start = rss(proc.pid), cpu_s(proc.pid)
    burst_start = time.monotonic()
    burst, burst_wall, sim_cpu = phase(rate, seconds)
    burst_end = time.monotonic()
    cli_cpu = cpu_s(proc.pid) - cpu_start
    idle, _, _ = phase(idle_rate, min(30.0, after))
    rss_30 = rss(proc.pid)
    idle2, _, _ = phase(idle_rate, max(0.0, after - 30))
    rss_end = rss(proc.pid)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    watch.poll()
    conn.send(("stop",))
    undelivered = conn.recv()
    sim_proc.join(timeout=30)

    sent = _keys(warm + burst + idle + idle2)
    burst_keys = _keys(burst)
    burst_keys_start = min(burst_keys.values())
    table = CatalogReader(catalog).query(LIQUIDATION)
    cols = [table.column(c).to_pylist() for c in ("instrument_id", "ts_event", "side", "price", "quantity")]
    stored = set(zip(*cols, strict=True))
    lost = len(set(sent) - stored)
    by_receipt = [(watch.seen[k][0] - t) / 1e9 for k, t in burst_keys.items() if k in watch.seen]
    by_mtime = [(watch.seen[k][1] - t) / 1e9 for k, t in burst_keys.items() if k in watch.seen]
    by_sight = [(watch.seen[k][2] - t) / 1e9 for k, t in burst_keys.items() if k in watch.seen]
    unseen = len(burst_keys) - len(by_sight)
    peak = max(r for t, r in samples if t >= burst_start)
    stderr_tail = (tmp / "stderr.txt").read_text().strip().splitlines()
    summary = [line for line in stderr_tail if line.startswith(("stopped after", "  binance", "  bybit"))]
    summary += [line for line in stderr_tail if "dropped" in line and "queue full" not in line]
    queue_full = sum("queue full" in line for line in stderr_tail)
    if queue_full:
        summary.append(f"{queue_full} 'liquidation queue full' errors logged")

    mib = 2**20
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        "command: "
        + " ".join(
            ["python", "-m", "ccxt_pipeline", "stream-liquidations", *CLI_SYMBOLS, "--config", "<sim>"]
        )
    )
    print(
        f"burst: {len(burst):,} events in {burst_wall:.1f} s ({len(burst) / burst_wall:,.0f}/s asked {rate:,.0f}/s), "
        f"binance {sum(1 for e in burst if e[0] == 'binance'):,} / bybit {sum(1 for e in burst if e[0] == 'bybit'):,}, "
        f"BTCUSDT+ETHUSDT each, 1 event per message; simulator CPU {sim_cpu:.1f} s (own process)"
    )
    print(
        f"CLI CPU during the burst: {cli_cpu:.1f} s ({cli_cpu / (burst_end - burst_start) * 100:.0f} % of one core)"
    )
    print(f"warm-up {warmup:.0f} s and after {after:.0f} s at {idle_rate:.0f} events/s")
    print(f"CLI exit code {code}; its summary:")
    for line in summary:
        print("  " + line)
    print(
        f"delivered {len(sent):,} (undelivered {undelivered}), stored {len(stored):,} distinct, lost {lost}"
    )
    print(
        f"receipt-to-disk, {len(by_sight):,} burst events (poll every {poll_ms:.0f} ms, {watch.reads} file reads, "
        f"{watch.full_rereads} whole, {watch.cpu_s:.1f} s CPU):"
    )
    for name, vals in (
        ("upper bound (first poll that saw the row)", by_sight),
        ("lower bound (file mtime)", by_mtime),
        ("of which send to receipt (the row's ts_init)", by_receipt),
    ):
        if vals:
            print(
                f"  {name}: p50 {_pct(vals, 0.5):.3f} s, p99 {_pct(vals, 0.99):.3f} s, max {max(vals):.3f} s"
            )
    windows: dict[int, list[float]] = {}
    for k, t in burst_keys.items():
        if k in watch.seen:
            windows.setdefault(int((t - burst_keys_start) / 1e9 // 10), []).append(
                (watch.seen[k][2] - t) / 1e9
            )
    print(
        "  upper bound p99 per 10 s of the burst: "
        + ", ".join(f"{_pct(v, 0.99):.2f}" for _, v in sorted(windows.items()))
    )
    if unseen:
        print(f"  {unseen} burst events never seen by the polls (stored only at the stop)")
    print(
        f"resident memory: start {rss_start / mib:.1f} MiB, peak {peak / mib:.1f} MiB, "
        f"+30 s after {rss_30 / mib:.1f} MiB, +{after:.0f} s after {rss_end / mib:.1f} MiB "
        f"({(rss_end - rss_start) / rss_start * 100:+.1f} %)"
    )
    during = [r for t, r in samples if burst_start <= t <= burst_end]
    if during:
        print(f"  during the burst: median {statistics.median(during) / mib:.1f} MiB")
    print(
        "  every 10 s from the burst's start: "
        + ", ".join(
            f"{r / mib:.0f}"
            for t, r in samples
            if t >= burst_start and round((t - burst_start) * 2) % 20 == 0
        )
    )
    p99 = _pct(by_sight, 0.99) if by_sight else float("inf")
    misses = []
    if lost:
        misses.append(f"{lost} lost")
    if p99 > 1.5 or unseen:
        misses.append(
            f"p99 {p99:.3f} s > 1.5 s" if p99 > 1.5 else f"{unseen} events not durable until the stop"
        )
    if rss_end > rss_start * 1.2:
        misses.append(f"memory {rss_end / rss_start * 100 - 100:+.0f} % > +20 %")
    if code != 0:
        misses.append(f"CLI exit code {code}")
    print("targets met" if not misses else "TARGETS MISSED: " + "; ".join(misses))
    return 0 if not misses else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=15)
    parser.add_argument("--after", type=float, default=60)
    parser.add_argument("--idle-rate", type=float, default=20)
    parser.add_argument("--poll-ms", type=float, default=50)
    args = parser.parse_args()
    sys.exit(main(args.rate, args.seconds, args.warmup, args.after, args.idle_rate, args.poll_ms))
