"""History backfill of one symbol, as users run it (issue 12): the real CLI with its default settings
(requests paced by each exchange's documented limits) against the simulator in its own process, with those
limits enforced and 50 ms per answer.

    python benchmarks/fetch_history.py [oi] [funding] [--latency-ms 50]

- `oi`: `ccxt-cli fetch-oi BTCUSDT-PERP --from 30d`; target 1.5x the floor, 0 rejections.
- `funding`: `ccxt-cli fetch-funding BTCUSDT-PERP --from 2025-01-01`; target 1.2x the floor, 0 rejections.

The floor is the slowest exchange's maximum of two figures (printed with their inputs):

    latency floor = fewest requests / requests in flight allowed (venue table) x latency
    limit floor   = for each documented limit (venue table `rest_limits`) the fewest requests draw weight
                    W from, of capacity C per period P:
                    - token bucket (W - C) / (C / P): what a full token bucket of the documented limit
                      admits, the issue's definition, printed for every limit and used for the ratio;
                    - window (ceil(W / C) - 1) x P: for a limit the exchange counts in windows of its period
                      (fixed or sliding: `RateLimit.counted`, "window" unless the venue table
                      says "bucket"), nothing sends W faster without a refusal; printed beside it, with
                      the ratio against it.

The fewest requests are load_markets' own (docs/exchanges.md) plus, per symbol and history,
ceil(rows the simulator serves in the range / the page limit); Bybit's open interest adds its mark-price
candles (1000 a page) that value the rows. Rejections are the simulator's count of requests its limits
refused; every stored row is compared with the simulator's series (time and value). Two wall times are
given: the CLI process (Python start-up included) and the exchange's view, from the first request the
simulator received to its last answer.

The simulator's `now` follows the wall clock, as an exchange's does. Before the open-interest run it computes
the series the run will ask for (`warm`), as the first version of this benchmark did: a real exchange serves
stored history, while the simulator computes each point on first request on one event loop, and cold its
1000-candle pages cost 100-200 ms of CPU instead of the 50 ms answer the floor assumes. The CLI is not
touched: it runs with its defaults, the limits enforced. `benchmarks/fetch_all.py` runs the
`--all` scenarios with the same machinery.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.timeutil import NS_PER_MS, now_ns, parse_when
from ccxt_pipeline.venues import VENUES, RateLimit

ACCOUNTING_FIELD = "counted"
"""`RateLimit`'s field saying how the exchange counts the limit ("window" or "bucket")."""

LOAD_MARKETS_REQUESTS = {"binance": 1, "bybit": 2, "hyperliquid": 1}
"""Requests ccxt's load_markets makes with the venue table's options (docs/exchanges.md)."""
LOAD_MARKETS_PATH = {"binance": "exchangeInfo", "bybit": "instruments-info", "hyperliquid": "info"}
"""ccxt's implicit-API path of those requests, to weigh them (`RestLimits.weights`)."""
HISTORY_PATHS = {
    "/futures/data/openInterestHist": ("binance", "oi"),
    "/fapi/v1/fundingRate": ("binance", "funding"),
    "/v5/market/open-interest": ("bybit", "oi"),
    "/v5/market/mark-price-kline": ("bybit", "mark"),
    "/v5/market/funding/history": ("bybit", "funding"),
}
"""The history endpoints whose requests the simulator process logs (Hyperliquid: `fundingHistory`)."""
FIVE_MIN_MS = 300_000
DAY_MS = 86_400_000


# --- the simulator in its own process ------------------------------------------------------------------------


def _serve(conn: Connection, latency_ms: float, full_market: bool) -> None:
    """The simulator with limits enforced, in its own process (the CLI then has the GIL to itself), logging
    every history request: (time s, exchange, kind, symbol, start ms, end ms, HTTP status)."""
    from aiohttp import web

    from ccxt_pipeline.simulator.server import ExchangeSimulator

    log: list[tuple[float, str, str, str, int, int, int]] = []
    times: list[float] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        times.append(time.time())
        response: web.StreamResponse = await handler(request)
        times.append(time.time())
        entry = _history_request(request.path, dict(request.query), await _body(request))
        if entry is not None:
            log.append((time.time(), *entry, response.status))
        return response

    async def serve() -> None:
        sim = ExchangeSimulator(seed=0, enforce_limits=True, full_market=full_market)
        sim.app.middlewares.insert(0, record)  # outermost: sees refused requests too
        async with sim:
            sim.latency_ms = latency_ms
            conn.send(sim.port)
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stats":
                    conn.send(
                        {
                            "requests": dict(sim.requests),
                            "rejections": dict(sim.limit_rejections),
                            "log": list(log),
                            "first": times[0] if times else None,
                            "last": times[-1] if times else None,
                        }
                    )
                elif isinstance(command, tuple) and command[0] == "warm":
                    warm(*command[1:])
                    conn.send(True)
                elif command == "reset":  # counters only: the limits' windows stay, as an exchange's do
                    sim.reset_counters()
                    log.clear()
                    times.clear()
                    conn.send(True)
                else:
                    conn.send(True)
                    return

    asyncio.run(serve())


def warm(series: list[tuple[str, str]], start_ms: int, end_ms: int) -> None:
    """Compute the simulator's 5-minute open-interest and mark-price series for `series` (exchange, symbol) in
    [start_ms, end_ms] into its caches. A real exchange serves stored history; the simulator computes each
    point on first request, on one event loop, and a 1000-candle page then costs 100-200 ms of CPU instead
    of the 50 ms answer the floor assumes. Warming before the clock starts takes that artefact out of the
    exchange-side time; nothing in the CLI changes."""
    from ccxt_pipeline.simulator import data

    first = start_ms - start_ms % FIVE_MIN_MS
    for exchange, symbol in series:
        for t in range(first, end_ms + 1, FIVE_MIN_MS):
            # positional seed 0 (the simulator's): lru_cache keys f(a, b, c) and f(a, b, c, 0) apart
            data.open_interest(exchange, symbol, t, 0)
            data.mark_price(exchange, symbol, t, 0)
            data.mark_price(exchange, symbol, t + FIVE_MIN_MS - 1, 0)  # a candle's close


async def _body(request: Any) -> Any:
    if request.method != "POST":
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


def _history_request(path: str, query: dict[str, str], body: Any) -> tuple[str, str, str, int, int] | None:
    """(exchange, kind, symbol, start ms, end ms) of a history request, or None for any other request."""
    if path == "/info" and isinstance(body, dict) and body.get("type") == "fundingHistory":
        end = body.get("endTime")
        return "hyperliquid", "funding", str(body.get("coin")), int(body["startTime"]), int(end or 2**62)
    known = HISTORY_PATHS.get(path)
    if known is None:
        return None
    start = query.get("startTime") or query.get("start") or "0"
    end = query.get("endTime") or query.get("end") or str(2**62)
    return known[0], known[1], query.get("symbol", ""), int(start), int(end)


class Simulator:
    """The simulator process: its port, an exchanges config for the CLI, and its counters."""

    def __init__(self, latency_ms: float, *, full_market: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, latency_ms, full_market), daemon=True)
        self.latency_ms = latency_ms

    def __enter__(self) -> Simulator:
        self._process.start()
        self.port: int = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(timeout=30)

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        answer: dict[str, Any] = self._conn.recv()
        return answer

    def warm(self, series: list[tuple[str, str]], start_ms: int, end_ms: int) -> None:
        self._conn.send(("warm", series, start_ms, end_ms))
        self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def write_config(self, path: Path, catalog: Path) -> None:
        """A user's config pointing ccxt at the simulator and nothing else: default settings otherwise
        (requests paced by the documented limits; ccxt's own limiter as the venue table sets it). The pacing
        ledger lives beside the config: it belongs to this simulator (one IP), shared by the runs against it
        (a kill and its rerun), never by another scenario's simulator or the user's real exchanges."""
        from ccxt_pipeline.simulator.server import ExchangeSimulator

        sim = ExchangeSimulator(port=self.port)  # not started: only for its ccxt URL overrides
        exchanges = {
            name: {
                "ccxt": {k: v for k, v in sim.ccxt_overrides(name).items() if k != "enableRateLimit"},
                "pacing_state_dir": str(path.parent / "pacing"),
            }
            for name in ("binance", "bybit", "hyperliquid")
        }
        path.write_text(yaml.safe_dump({"catalog_path": str(catalog), "exchanges": exchanges}))


def cli_command(config: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "ccxt-cli"), *args, "--config", str(config)]


def run_cli(config: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(cli_command(config, *args), capture_output=True, text=True, check=False)
    return time.perf_counter() - t0, done


# --- what the simulator serves, and the floor --------------------------------------------------------------


def sim_symbol(exchange: str, instrument_id: str) -> str:
    """The simulator's exchange id of one of our instrument ids (`ZAKUSDT-PERP.BINANCE` -> `ZAKUSDT`)."""
    symbol = instrument_id.split(".")[0]
    for suffix in ("-USD-PERP", "-PERP", "-LINEAR"):
        symbol = symbol.removesuffix(suffix)
    return symbol


def instrument_id(exchange: str, symbol: str) -> str:
    return {
        "binance": "{}-PERP.BINANCE",
        "bybit": "{}-LINEAR.BYBIT",
        "hyperliquid": "{}-USD-PERP.HYPERLIQUID",
    }[exchange].format(symbol)


def oi_points(exchange: str, symbol: str, start_ms: int, end_ms: int, now_ms: int) -> list[int]:
    """5-minute open-interest times the simulator serves in [start, end] (Binance: the last 30 days)."""
    lo = max(start_ms, data.series_start(exchange, symbol))
    if exchange == "binance":
        lo = max(lo, now_ms - 30 * DAY_MS)
    first = -(-lo // FIVE_MIN_MS) * FIVE_MIN_MS
    return list(range(first, min(end_ms, now_ms) + 1, FIVE_MIN_MS))


def settlements(exchange: str, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
    """(stamped time ms, rate) of every settlement the simulator serves in [start, end]."""
    out = []
    for t, rate, _hours in data.funding_settlements(exchange, symbol, start_ms - 1000, end_ms):
        at = hyperliquid.funding_time(symbol, t) if exchange == "hyperliquid" else t
        if start_ms <= at <= end_ms:
            out.append((at, rate))
    return out


@dataclass
class Need:
    """The fewest requests of one exchange and what they draw from each documented limit."""

    exchange: str
    requests: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    by_kind: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, path: str, params: dict[str, Any], n: int = 1, items: int = 0) -> None:
        limits = VENUES[self.exchange].rest_limits
        assert limits is not None
        self.requests += n
        self.by_kind[kind] += n
        for name, w in limits.weights(path, params).items():
            self.weights[name] = self.weights.get(name, 0.0) + w * n
        if items:
            extra = limits.extra(path, params, [None] * items)
            for name, w in extra.items():
                self.weights[name] = self.weights.get(name, 0.0) + w

    def load_markets(self) -> None:
        body = {"type": "metaAndAssetCtxs"} if self.exchange == "hyperliquid" else {}
        self.add("markets", LOAD_MARKETS_PATH[self.exchange], body, LOAD_MARKETS_REQUESTS[self.exchange])

    def oi(self, points: int) -> None:
        venue = VENUES[self.exchange]
        raw = venue.oi_history_raw
        assert raw is not None
        pages = math.ceil(points / venue.oi_history_limit)
        path = "openInterestHist" if self.exchange == "binance" else "v5/market/open-interest"
        self.add("oi", path, {}, pages)
        if raw.value_from_mark is not None:
            self.add("mark", "v5/market/mark-price-kline", {}, math.ceil(points / raw.value_from_mark.limit))

    def funding(self, times: list[int]) -> None:
        limit = VENUES[self.exchange].funding_history_limit
        for page in range(0, len(times), limit):
            rows = min(limit, len(times) - page)
            if self.exchange == "hyperliquid":
                self.add("funding", "info", {"type": "fundingHistory"}, items=rows)
            elif self.exchange == "binance":
                self.add("funding", "fundingRate", {})
            else:
                self.add("funding", "v5/market/funding/history", {})


@dataclass
class Floor:
    seconds: float
    """The issue's floor: every limit as a full token bucket of its documented capacity."""
    lines: list[str]
    window_seconds: float = 0.0
    """The same with each limit the exchange counts in windows taken as such ((ceil(W / C) - 1) periods)."""


def accounting(limit: RateLimit) -> str:
    """How the exchange counts `limit`: "bucket" or "window" (the venue table's field; "window" without it)."""
    return str(getattr(limit, ACCOUNTING_FIELD, "window"))


def floor_of(needs: Iterable[Need], latency_ms: float) -> Floor:
    """The slowest exchange's max(latency floor, each limit's floor), with the inputs spelled out: the
    token-bucket floor of every limit, and for a limit counted in windows the window floor beside it."""
    worst = worst_window = 0.0
    lines = []
    for need in needs:
        venue = VENUES[need.exchange]
        assert venue.rest_limits is not None
        latency = need.requests / venue.max_concurrency * latency_ms / 1000
        parts = [
            f"latency {need.requests} req / {venue.max_concurrency} in flight x {latency_ms:g} ms = {latency:.2f} s"
        ]
        ex_floor = ex_window = latency
        for lim in venue.rest_limits.limits:
            drawn = need.weights.get(lim.name, 0.0)
            if not drawn:
                continue
            rate = lim.weight / lim.seconds
            bucket = max(0.0, (drawn - lim.weight) / rate)
            text = (
                f"{lim.name} bucket ({drawn:,.0f} - {lim.weight:g}) / ({lim.weight:g}/{lim.seconds:g} s)"
                f" = {bucket:.2f} s"
            )
            window = bucket
            if accounting(lim) != "bucket":
                periods = max(0, math.ceil(drawn / lim.weight - 1e-9) - 1)
                window = periods * lim.seconds
                text += f" | window {periods} x {lim.seconds:g} s = {window:.2f} s"
            parts.append(text)
            ex_floor = max(ex_floor, bucket)
            ex_window = max(ex_window, window)
        worst = max(worst, ex_floor)
        worst_window = max(worst_window, ex_window)
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(need.by_kind.items()))
        shown = f"{ex_floor:8.2f} s" + (f" (window {ex_window:.2f} s)" if ex_window != ex_floor else "")
        lines.append(f"  floor {need.exchange:<11} {shown}  [{'; '.join(parts)}]  fewest: {kinds}")
    return Floor(worst, lines, worst_window)


# --- checks ------------------------------------------------------------------------------------------------


def compare_rows(
    catalog: Path,
    kind: str,
    expected: dict[str, list[tuple[int, float]]],
    *,
    tail_ms: int = 0,
    start_slack_ms: int = 0,
    within: tuple[int, int] | None = None,
) -> list[str]:
    """Mismatches between the catalog and `expected` (instrument id -> (time ms, value) ascending): the
    open-interest amount or the funding rate, exactly. Rows newer than `tail_ms` that the simulator's moving
    `now` added meanwhile are allowed past the expected series, if they are on it. `within` (ms, both ends
    included): compare only rows in that span, on both sides."""
    from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader

    reader = CatalogReader(catalog)
    kind_ = OPEN_INTEREST if kind == "oi" else FUNDING_RATE
    column = "open_interest" if kind == "oi" else "rate"
    problems = []
    for iid, want in expected.items():
        table = reader.query(kind_, [iid])
        got = list(
            zip(
                [t // NS_PER_MS for t in table.column("ts_event").to_pylist()],
                table.column(column).to_pylist(),
                strict=True,
            )
        )
        if within is not None:
            got = [(t, v) for t, v in got if within[0] <= t <= within[1]]
            want = [(t, v) for t, v in want if within[0] <= t <= within[1]]
        if tail_ms and got and want:
            got = [(t, v) for t, v in got if t <= want[-1][0]]
        if start_slack_ms and got and want:  # the CLI read `--from 30d` a moment after `want` was planned
            want = [(t, v) for t, v in want if t >= got[0][0] or t > want[0][0] + start_slack_ms]
        if got != want:
            extra = sorted(set(got) - set(want))[:3]
            missing = sorted(set(want) - set(got))[:3]
            problems.append(f"{iid}: {len(got)} rows, expected {len(want)}; extra {extra} missing {missing}")
    return problems


@contextmanager
def catalog_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fetch-bench-") as tmp:
        yield Path(tmp)


def machine() -> str:
    load = os.getloadavg()
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def rejections(stats: dict[str, Any]) -> int:
    return sum(stats["rejections"].values())


def received(stats: dict[str, Any], exchange: str) -> int:
    return sum(n for (ex, _), n in stats["requests"].items() if ex == exchange)


def summary(name: str, wall: float, seen: float, floor: Floor, target: float, stats: dict[str, Any]) -> str:
    """The ratio against the issue's (token-bucket) floor decides; the window floor is shown beside it."""
    ratio = seen / floor.seconds if floor.seconds else float("inf")
    met = "MET" if ratio <= target and rejections(stats) == 0 else "NOT MET"
    window = ""
    if floor.window_seconds and floor.window_seconds != floor.seconds:
        window = f" [window floor {floor.window_seconds:.2f} s, ratio {seen / floor.window_seconds:.2f}]"
    return (
        f"{name}: exchange-side {seen:.2f} s, CLI process {wall:.2f} s, floor {floor.seconds:.2f} s, "
        f"ratio {ratio:.2f} (process {wall / floor.seconds:.2f}) vs target {target:g}{window}; "
        f"rejections {rejections(stats)} -> {met}"
    )


def print_requests(stats: dict[str, Any], exchanges: Iterable[str]) -> None:
    for ex in exchanges:
        eps = sorted((ep, n) for (e, ep), n in stats["requests"].items() if e == ex)
        print(f"  received {ex:<11} {received(stats, ex):>6}: " + ", ".join(f"{ep} {n}" for ep, n in eps))
    if stats["rejections"]:
        print(f"  rejections: {stats['rejections']}")


# --- the two single-symbol scenarios -------------------------------------------------------------------------


SINGLE = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "hyperliquid": "BTC"}


def scenario(kind: str, latency_ms: float) -> bool:
    args = (
        ("fetch-oi", "BTCUSDT-PERP", "--from", "30d")
        if kind == "oi"
        else ("fetch-funding", "BTCUSDT-PERP", "--from", "2025-01-01")
    )
    target = 1.5 if kind == "oi" else 1.2
    exchanges = ("binance", "bybit") if kind == "oi" else ("binance", "bybit", "hyperliquid")
    with Simulator(latency_ms) as sim, catalog_dir() as tmp:
        config = tmp / "config.yaml"
        sim.write_config(config, tmp / "catalog")
        if kind == "oi":
            now_ms = now_ns() // NS_PER_MS
            sim.warm([(ex, SINGLE[ex]) for ex in exchanges], now_ms - 31 * DAY_MS, now_ms + 10 * 60_000)
        t_start = now_ns() // NS_PER_MS
        wall, done = run_cli(config, *args)
        t_end = now_ns() // NS_PER_MS
        stats = sim.stats()
        if done.returncode != 0:
            print(f"{' '.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}")
            return False
        start_ms = parse_when(args[-1], t_start * NS_PER_MS) // NS_PER_MS
        needs, expected = [], {}
        for ex in exchanges:
            need = Need(ex)
            need.load_markets()
            symbol = SINGLE[ex]
            if kind == "oi":
                points = oi_points(ex, symbol, start_ms, t_end, t_start)
                need.oi(len([t for t in points if t <= t_start]))
                expected[instrument_id(ex, symbol)] = [(t, data.open_interest(ex, symbol, t)) for t in points]
            else:
                rows = settlements(ex, symbol, start_ms, t_end)
                need.funding([t for t, _ in rows if t <= t_start])
                expected[instrument_id(ex, symbol)] = rows
            needs.append(need)
        if kind == "oi":
            need = Need("hyperliquid")  # keeps no open-interest history: its markets only
            need.load_markets()
            needs.append(need)
        problems = compare_rows(
            tmp / "catalog",
            kind,
            expected,
            tail_ms=t_end,
            start_slack_ms=(t_end - t_start) if kind == "oi" else 0,
        )
    floor = floor_of(needs, latency_ms)
    print(f"ccxt-cli {' '.join(args)}  ({latency_ms:g} ms per answer, limits enforced)")
    print("\n".join(floor.lines))
    print_requests(stats, [n.exchange for n in needs])
    seen = (stats["last"] or 0) - (stats["first"] or 0)
    print(f"  rows: {'equal to the simulator series' if not problems else problems[:5]}")
    print(summary(" ".join(args), wall, seen, floor, target, stats))
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", metavar="oi|funding", default=[])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()
    if not set(args.scenarios) <= {"oi", "funding"}:
        parser.error("scenarios: oi, funding")
    print(machine())
    ok = True
    for kind in args.scenarios or ["oi", "funding"]:
        ok = scenario(kind, args.latency_ms) and ok
    print(machine())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
