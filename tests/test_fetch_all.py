"""`fetch-funding --all`: every linear perpetual, each from its listing date, resumable (issue 12 item 4).

Through the CLI, the real ccxt and the simulator listing its full market (200+ perpetuals per exchange with
listing dates: Binance `onboardDate`, Bybit `launchTime`; Hyperliquid has none). Requests are observed by
wrapping ccxt's own `fetch` (the real one still runs): what time each asked for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, CatalogReader
from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MS, parse_when
from tests.conftest import (
    Cli,
    FundingAsked,
    SimulatorThread,
    run_cli,
    wait_for,
    write_sim_config,
)

ROOT = Path(__file__).resolve().parent.parent
START, END = "2026-06-01", "2026-07-01"  # listings fall inside this month on every exchange
START_MS, END_MS = parse_when(START, 0) // NS_PER_MS, parse_when(END, 0) // NS_PER_MS


@pytest.fixture
def full_sim() -> Iterator[ExchangeSimulator]:
    with SimulatorThread(ExchangeSimulator(seed=0, full_market=True)) as s:
        yield s


@pytest.fixture
def full_config(full_sim: ExchangeSimulator, tmp_path: Path) -> Path:
    return write_sim_config(full_sim, tmp_path)


def served(exchange: str, symbol: str) -> list[tuple[int, float]]:
    """(time ms, rate) of every settlement the simulator serves in [START, END]."""
    out = []
    for t, rate, _hours in data.funding_settlements(exchange, symbol, START_MS - data.DAY_MS, END_MS):
        at = hyperliquid.funding_time(symbol, t) if exchange == "hyperliquid" else t
        if START_MS <= at <= END_MS:
            out.append((at, rate))
    return out


def stored(reader: CatalogReader, iid: str) -> list[tuple[int, float]]:
    table = reader.query(FUNDING_RATE, [iid])
    times = [t // NS_PER_MS for t in table.column("ts_event").to_pylist()]
    return list(zip(times, table.column("rate").to_pylist(), strict=True))


def ids_by_symbol(answer: dict[str, Any], exchange: str) -> dict[str, str]:
    """The simulator's exchange id -> our instrument id, from a --json answer."""
    ex = next(e for e in answer["exchanges"] if e["exchange"] == exchange)
    listed = {i.id: i for i in data.listed(exchange, full=True)}
    out = {}
    for iid in ex["instruments"]:
        symbol = iid.split(".")[0].removesuffix("-PERP").removesuffix("-LINEAR").removesuffix("-USD")
        assert symbol in listed, iid
        out[symbol] = iid
    return out


def test_all_with_symbols_or_neither_is_one_line(cli: Cli, sim: ExchangeSimulator) -> None:
    for args, message in (
        (("fetch-oi", "--all", "BTCUSDT-PERP"), "--all fetches every perpetual: name no symbols with it"),
        (("fetch-funding", "--from", "1d"), "name symbols, or use --all"),
    ):
        result = cli(*args)
        assert result.exit_code == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert message in lines[0]
    assert sum(sim.requests.values()) == 0


@pytest.mark.slow
def test_all_covers_every_perpetual_from_its_listing_and_a_rerun_asks_nothing(
    full_config: Path, full_sim: ExchangeSimulator, funding_asked: FundingAsked
) -> None:
    args = ("fetch-funding", "--all", "-e", "binance", "-e", "bybit", "--from", START, "--to", END)
    result = run_cli(full_config, *args, "--json", catch_exceptions=False)
    assert result.exit_code == 0, result.output + result.stderr
    answer = json.loads(result.output)
    reader = CatalogReader(full_config.parent / "catalog")
    listed_inside = 0
    for exchange in ("binance", "bybit"):
        ids = ids_by_symbol(answer, exchange)
        assert sorted(ids) == sorted(data.symbols(exchange, full=True))  # every perpetual listed
        for symbol, iid in ids.items():
            assert stored(reader, iid) == served(exchange, symbol), (exchange, symbol)
        launch = {i.id: i.launch_ms for i in data.listed(exchange, full=True)}
        requests = [(s, t) for ex, s, t in funding_asked if ex == exchange]
        assert {s for s, _ in requests} == set(ids)
        before = [(s, t, launch[s]) for s, t in requests if t < launch[s]]
        assert before == [], before[:5]  # nothing asked for before a market existed
        listed_inside += sum(1 for s in ids if launch[s] > START_MS)
    assert listed_inside > 0  # the month holds listings: the clamp was exercised
    # The only gaps: from a listing inside the month to its first settlement (none can be there); recorded,
    # so that no rerun asks for that stretch again.
    launches = {
        iid: i.launch_ms * NS_PER_MS
        for ex in ("binance", "bybit")
        for i in data.listed(ex, full=True)
        for iid in [f"{i.id}-PERP.BINANCE" if ex == "binance" else f"{i.id}-LINEAR.BYBIT"]
    }
    for gap in reader.query(COVERAGE_GAP).to_pylist():
        first = reader.query(FUNDING_RATE, [gap["instrument_id"]]).column("ts_event")[0].as_py()
        assert (gap["ts_event"], gap["end_ns"]) == (launches[gap["instrument_id"]], first - 1), gap

    funding_asked.clear()
    full_sim.reset_counters()
    again = run_cli(full_config, *args, catch_exceptions=False)
    assert again.exit_code == 0, again.output + again.stderr
    assert funding_asked == []
    for exchange in ("binance", "bybit"):
        n = len(data.symbols(exchange, full=True))
        assert f"{exchange}: {n} instruments up to date: nothing to fetch" in again.output


def test_hyperliquid_learns_where_a_series_begins_once(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    """No listing date: the first page from --from says where the series begins (2024-01-01 in the simulator);
    the empty head is recorded at once and never asked for again; the page itself is not asked twice."""
    args = (
        "fetch-funding",
        "BTC-USD-PERP.HYPERLIQUID",
        "--from",
        "2023-12-01",
        "--to",
        "2024-01-10T00:30:00Z",
    )
    result = cli(*args)
    assert result.exit_code == 0, result.output + result.stderr
    assert sim.count("hyperliquid", "fundingHistory") == 1  # 9 days of hourly rows fit one page
    reader = CatalogReader(config_file.parent / "catalog")
    times = [t // NS_PER_MS for t in reader.query(FUNDING_RATE).column("ts_event").to_pylist()]
    first_ms = hyperliquid.funding_time("BTC", data.HISTORY_START_MS)
    assert times[0] == first_ms
    gaps = reader.query(COVERAGE_GAP).to_pylist()
    assert [(g["ts_event"], g["end_ns"]) for g in gaps] == [
        (parse_when("2023-12-01", 0), first_ms * NS_PER_MS - 1)
    ]
    sim.reset_counters()
    again = cli(*args)
    assert again.exit_code == 0
    assert sim.count("hyperliquid", "fundingHistory") == 0
    assert "BTC-USD-PERP.HYPERLIQUID: up to date: nothing to fetch" in again.output


@pytest.mark.slow
def test_a_killed_all_fetch_resumes_without_asking_for_what_is_stored(
    full_config: Path, full_sim: ExchangeSimulator, funding_asked: FundingAsked
) -> None:
    args = ["fetch-funding", "--all", "-e", "bybit", "--from", START, "--to", END]
    reader = CatalogReader(full_config.parent / "catalog")
    full_sim.latency_ms = 100
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccxt_pipeline", *args, "--json", "--config", str(full_config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(lambda: len(reader.instruments(FUNDING_RATE)) >= 20, "20 symbols stored", within=60)
        assert proc.poll() is None, "the fetch ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    listed = {i.id: i for i in data.listed("bybit", full=True)}
    ids = {f"{s}-LINEAR.BYBIT": s for s in listed}
    complete = {
        s
        for iid, s in ids.items()
        if iid in reader.instruments(FUNDING_RATE) and stored(reader, iid) == served("bybit", s)
    }
    assert 0 < len(complete) < len(listed)  # killed halfway

    full_sim.latency_ms = 0
    rerun = run_cli(full_config, *args, catch_exceptions=False)
    assert rerun.exit_code == 0, rerun.output + rerun.stderr
    asked_for = {s for _, s, _ in funding_asked}
    assert asked_for.isdisjoint(complete)  # no request for a symbol already stored whole
    assert asked_for  # the rest was fetched
    for iid, symbol in ids.items():
        assert stored(reader, iid) == served("bybit", symbol), symbol
