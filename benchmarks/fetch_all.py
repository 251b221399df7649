"""Whole-market history backfills (issue 12): `fetch-funding --all` and `fetch-oi --all` through the real
CLI with its default settings (requests paced by the documented limits), against the simulator listing its
full market (200+ perpetuals per exchange, with listing dates) in its own process, limits enforced, 50 ms
per answer. Machinery, floor and row checks: benchmarks/fetch_history.py.

    python benchmarks/fetch_all.py funding [--from 2025-01-01] [-e binance -e bybit -e hyperliquid]
    python benchmarks/fetch_all.py oi [--from 30d] [-e binance -e bybit]
        [--floor-only] [--no-rerun] [--latency-ms 50]

Each scenario runs twice, each time with its own simulator and catalog:
1. straight: wall time vs the rate-limit floor (target 1.2x), rejections (target 0), every stored row equal
   to the simulator's series (time and value; rows the moving `now` added meanwhile may follow);
2. killed halfway (SIGKILL once half the fewest history requests were received), then rerun at once: the
   final catalog again equals the series, and the rerun's history requests are classified against what
   the killed run had stored: `stored` asks only for rows the catalog held (target 0), `empty` asks for a
   range the simulator serves nothing in.

`--floor-only` prints the floor without running (the acceptance's funding scenario from 2025-01-01 is
hours of Hyperliquid's 1200 weight a minute).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from fetch_history import (
    Floor,
    Need,
    Simulator,
    catalog_dir,
    cli_command,
    compare_rows,
    floor_of,
    instrument_id,
    machine,
    oi_points,
    print_requests,
    rejections,
    settlements,
    summary,
)

from ccxt_pipeline.simulator import data
from ccxt_pipeline.timeutil import NS_PER_MS, now_ns, parse_when

TARGET = 1.2


def plan(kind: str, exchanges: list[str], start_ms: int, now_ms: int) -> tuple[list[Need], dict[str, Any]]:
    """The fewest requests per exchange, and the series the simulator serves: instrument id -> (exchange,
    symbol, [(time ms, value)]), from each symbol's listing."""
    needs, series = [], {}
    for ex in exchanges:
        need = Need(ex)
        need.load_markets()
        for inst in data.listed(ex, full=True):
            lo = max(start_ms, data.series_start(ex, inst.id))
            if kind == "oi":
                points = oi_points(ex, inst.id, lo, now_ms, now_ms)
                if points:
                    need.oi(len(points))
                rows = [(t, data.open_interest(ex, inst.id, t)) for t in points]
            else:
                rows = settlements(ex, inst.id, lo, now_ms)
                need.funding([t for t, _ in rows])
            series[instrument_id(ex, inst.id)] = (ex, inst.id, rows)
        needs.append(need)
    return needs, series


def expected_now(
    kind: str, series: dict[str, Any], start_ms: int, end_ms: int, first_ms: int
) -> dict[str, Any]:
    """The series again, up to `end_ms` (after the run), from where the exchange still served it at
    `first_ms` (Binance keeps 30 days of open interest: the start moves with the clock)."""
    out = {}
    for iid, (ex, symbol, _rows) in series.items():
        lo = max(start_ms, data.series_start(ex, symbol))
        if kind == "oi":
            out[iid] = [
                (t, data.open_interest(ex, symbol, t)) for t in oi_points(ex, symbol, lo, end_ms, first_ms)
            ]
        else:
            out[iid] = settlements(ex, symbol, lo, end_ms)
    return out


def args_for(kind: str, exchanges: list[str], from_: str) -> list[str]:
    command = "fetch-oi" if kind == "oi" else "fetch-funding"
    return [command, "--all", *[a for ex in exchanges for a in ("-e", ex)], "--from", from_]


def history_requests(stats: dict[str, Any]) -> int:
    return len(stats["log"])


def straight(kind: str, exchanges: list[str], from_: str, latency_ms: float) -> bool:
    args = args_for(kind, exchanges, from_)
    with Simulator(latency_ms, full_market=True) as sim, catalog_dir() as tmp:
        config = tmp / "config.yaml"
        sim.write_config(config, tmp / "catalog")
        t0 = now_ns() // NS_PER_MS
        start_ms = parse_when(from_, t0 * NS_PER_MS) // NS_PER_MS
        needs, series = plan(kind, exchanges, start_ms, t0)
        floor = floor_of(needs, latency_ms)
        started = time.perf_counter()
        done = subprocess.run(cli_command(config, *args), capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        t1 = now_ns() // NS_PER_MS
        stats = sim.stats()
        problems = compare_rows(
            tmp / "catalog",
            kind,
            expected_now(kind, series, start_ms, t1, t1),
            within=stable(kind, exchanges, t0, t1),
        )
    print(f"ccxt-cli {' '.join(args)}  (straight; {latency_ms:g} ms per answer, limits enforced)")
    print(f"  instruments: {len(series)}; exit code {done.returncode}")
    if done.returncode != 0:
        print("  stderr: " + " | ".join(done.stderr.strip().splitlines()[-5:]))
    print("\n".join(floor.lines))
    print_requests(stats, exchanges)
    print(
        f"  rows: {'equal to the simulator series' if not problems else f'{len(problems)} instruments differ'}"
    )
    for p in problems[:5]:
        print(f"    {p}")
    seen = (stats["last"] or 0) - (stats["first"] or 0)
    print(summary("straight " + " ".join(args), wall, seen, floor, TARGET, stats))
    return done.returncode == 0 and not problems and rejections(stats) == 0


def stable(kind: str, exchanges: list[str], t0: int, t1: int) -> tuple[int, int]:
    """The span (ms) every instrument's rows are compared in, exactly: up to the run's start `t0` (each
    symbol is fetched up to the moment it is planned, later for later symbols), and from where Binance still
    served 30 days of open interest at the run's end `t1` (a symbol fetched later starts later; what left the
    window meanwhile is a recorded gap). A 20-minute run leaves 20 minutes of 30 days out of the check."""
    start = t1 - 30 * 86_400_000 + 300_000 if kind == "oi" and "binance" in exchanges else 0
    return start, t0


def stored_times(catalog: Path, kind: str) -> dict[str, set[int]]:
    from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader

    table = CatalogReader(catalog).query(OPEN_INTEREST if kind == "oi" else FUNDING_RATE)
    out: dict[str, set[int]] = defaultdict(set)
    for iid, t in zip(
        table.column("instrument_id").to_pylist(), table.column("ts_event").to_pylist(), strict=True
    ):
        out[str(iid)].add(t // NS_PER_MS)
    return out


def classify(log: list[Any], kind: str, held: dict[str, set[int]]) -> tuple[int, int, int]:
    """(requests asking only for rows `held` already, requests for ranges serving nothing, the rest)."""
    stored = empty = other = 0
    for at, ex, what, symbol, start, end, _status in log:
        iid = instrument_id(ex, symbol)
        at_ms = int(at * 1000)
        if what == "funding":
            served = [t for t, _ in settlements(ex, symbol, start, min(end, at_ms))]
        else:
            lo = max(start, data.series_start(ex, symbol))
            served = oi_points(ex, symbol, lo, min(end, at_ms), at_ms)
        if not served:
            empty += 1
        elif all(t in held.get(iid, ()) for t in served):
            stored += 1
        else:
            other += 1
    return stored, empty, other


def kill_and_rerun(kind: str, exchanges: list[str], from_: str, latency_ms: float, floor: Floor) -> bool:
    args = args_for(kind, exchanges, from_)
    with Simulator(latency_ms, full_market=True) as sim, catalog_dir() as tmp:
        config = tmp / "config.yaml"
        sim.write_config(config, tmp / "catalog")
        t0 = now_ns() // NS_PER_MS
        start_ms = parse_when(from_, t0 * NS_PER_MS) // NS_PER_MS
        needs, series = plan(kind, exchanges, start_ms, t0)
        half = sum(n.requests for n in needs) // 2
        proc = subprocess.Popen(cli_command(config, *args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while proc.poll() is None and history_requests(sim.stats()) < half:
            time.sleep(0.5)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = sim.stats()
        held = stored_times(tmp / "catalog", kind)
        sim.reset()
        started = time.perf_counter()
        done = subprocess.run(cli_command(config, *args), capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        t1 = now_ns() // NS_PER_MS
        second = sim.stats()
        problems = compare_rows(
            tmp / "catalog",
            kind,
            expected_now(kind, series, start_ms, t1, t1),
            within=stable(kind, exchanges, t0, t1),
        )
    asked_stored, empty, other = classify(second["log"], kind, held)
    rows_held = sum(len(v) for v in held.values())
    print(f"ccxt-cli {' '.join(args)}  (killed halfway, then rerun)")
    print(
        f"  first run: {'SIGKILL' if killed else 'ended before half'} after {history_requests(first)} history "
        f"requests (half the fewest: {half}); {rows_held:,} rows stored in {len(held)} instruments; "
        f"rejections {rejections(first)}"
    )
    print(f"  rerun: exit {done.returncode}, {wall:.1f} s, rejections {rejections(second)}")
    print_requests(second, exchanges)
    print(
        f"  rerun history requests {len(second['log'])}: only for stored rows {asked_stored} (target 0), "
        f"for ranges serving nothing {empty}, for new rows {other}"
    )
    print(
        f"  final rows: {'equal to the simulator series' if not problems else f'{len(problems)} instruments differ'}"
    )
    for p in problems[:5]:
        print(f"    {p}")
    ok = done.returncode == 0 and not problems and asked_stored == 0 and rejections(second) == 0
    print(
        f"kill+rerun {' '.join(args)}: rerun asked for stored rows {asked_stored} times, rejections "
        f"{rejections(first)} + {rejections(second)}, rows {'equal' if not problems else 'DIFFER'} -> "
        f"{'MET' if ok else 'NOT MET'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["funding", "oi"])
    parser.add_argument("--from", dest="from_", default=None)
    parser.add_argument("-e", "--exchange", action="append", default=None)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--floor-only", action="store_true")
    parser.add_argument("--no-rerun", action="store_true")
    parser.add_argument("--no-straight", action="store_true")
    args = parser.parse_args()
    from_ = args.from_ or ("30d" if args.kind == "oi" else "2025-01-01")
    exchanges = args.exchange or (
        ["binance", "bybit"] if args.kind == "oi" else ["binance", "bybit", "hyperliquid"]
    )
    print(machine())
    now_ms = now_ns() // NS_PER_MS
    needs, series = plan(args.kind, exchanges, parse_when(from_, now_ms * NS_PER_MS) // NS_PER_MS, now_ms)
    floor = floor_of(needs, args.latency_ms)
    if args.floor_only:
        print(f"ccxt-cli {' '.join(args_for(args.kind, exchanges, from_))}: {len(series)} instruments")
        print("\n".join(floor.lines))
        window = ""
        if floor.window_seconds != floor.seconds:
            window = f"; window floor {floor.window_seconds:.1f} s"
        print(f"floor {floor.seconds:.1f} s; target {TARGET} x = {TARGET * floor.seconds:.1f} s{window}")
        return 0
    ok = True
    if not args.no_straight:
        ok = straight(args.kind, exchanges, from_, args.latency_ms) and ok
    if not args.no_rerun:
        ok = kill_and_rerun(args.kind, exchanges, from_, args.latency_ms, floor) and ok
    print(machine())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
