"""`symbols: all` in the daemon (issue 12 item 4): every listed linear perpetual, each from its listing.

The real daemon (`Daemon.run`, in this process so that ccxt's own `fetch` can be observed) against the
simulator listing its full market (200+ perpetuals per exchange with listing dates: Binance `onboardDate`,
Bybit `launchTime`; Hyperliquid has none), through the real ccxt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_ESTIMATE, FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.daemon.control import DaemonLock, DaemonPaths
from ccxt_pipeline.daemon.service import Daemon
from ccxt_pipeline.errors import ConfigError
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.settings import load_settings
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MS
from tests.catalog_checks import as_records
from tests.conftest import FundingAsked, SimulatorThread, run_cli, sim_settings

LISTED = {ex: {i.id: i.launch_ms for i in data.listed(ex, full=True)} for ex in ("binance", "bybit")}


@pytest.fixture
def full_sim() -> Iterator[ExchangeSimulator]:
    with SimulatorThread(ExchangeSimulator(seed=3, full_market=True)) as s:
        yield s


def write_config(tmp: Path, settings: dict[str, Any]) -> Path:
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def daemon_settings(sim: ExchangeSimulator, tmp: Path, **extra: Any) -> dict[str, Any]:
    return sim_settings(
        sim,
        tmp / "catalog",
        symbols="all",
        schedule={"open_interest_seconds": 2, "funding_seconds": 3600},
        stream={"flush_seconds": 0.5, "stale_seconds": 5, "reconnect_max_seconds": 1},
        **extra,
    )


async def run_until(daemon: Daemon, *conditions: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Run the daemon (holding its lock, as `daemon start` does) until each of `conditions` held in turn
    (checked every 0.1 s), then stop it and wait for its exit."""
    lock = DaemonLock(daemon.paths)
    lock.acquire()
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            for done in conditions:
                while not done():
                    assert not task.done(), "the daemon stopped by itself"
                    await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        lock.release()


def succeeded(daemon: Daemon, *jobs: str, runs: int = 1) -> bool:
    return all(
        daemon.jobs[j].last_success_ns is not None and daemon.jobs[j].runs - daemon.jobs[j].failures >= runs
        for j in jobs
    )


def test_symbols_all_spelling_and_an_empty_list_at_daemon_start(tmp_path: Path) -> None:
    assert load_settings(overrides={"symbols": "all"}).all_symbols
    assert load_settings(environ={"CCXT_SYMBOLS": "ALL"}).symbols == "all"
    assert load_settings(environ={"CCXT_SYMBOLS": "A-PERP,B-PERP"}).symbols == ["A-PERP", "B-PERP"]
    with pytest.raises(ConfigError, match="write `symbols: all` alone"):
        load_settings(overrides={"symbols": ["all", "BTCUSDT-PERP"]})
    with pytest.raises(ConfigError, match="or 'all' for every linear perpetual"):
        load_settings(overrides={"symbols": "everything"})
    config = tmp_path / "empty.yaml"
    config.write_text(f"catalog_path: {tmp_path / 'catalog'}\nsymbols: []\n")
    result = run_cli(config, "daemon", "start")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "symbols: empty, so the daemon has nothing to collect" in result.stderr
    assert "`symbols: all`" in result.stderr
    assert not (tmp_path / "catalog").exists()  # refused before anything was created


@pytest.mark.slow
def test_one_round_covers_every_listed_perpetual_and_missed_snapshots_are_gaps(
    full_sim: ExchangeSimulator, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        daemon_settings(
            full_sim,
            tmp_path,
            daemon={"status_seconds": 0.5, "open_interest_backfill_days": 0.02, "funding_backfill_days": 0.5},
        ),
    )
    settings = load_settings(config)
    paths = DaemonPaths.for_catalog(settings.catalog_path)
    daemon = Daemon(settings, paths)
    listed = {ex: len(data.listed(ex, full=True)) for ex in ("binance", "bybit", "hyperliquid")}
    outage: dict[str, int] = {}

    def round_done() -> bool:
        return succeeded(daemon, "open_interest", "open_interest_history", "funding") and bool(
            daemon.stream and daemon.stream.health["bybit"].connected
        )

    def after_outage() -> bool:
        runs = daemon.jobs["open_interest"].runs
        if not outage:
            full_sim.down = True  # every request refused for more than 1.5 snapshot intervals
            outage["runs"] = runs
        elif full_sim.down and runs >= outage["runs"] + 2:
            full_sim.down = False
            outage["failures"] = daemon.jobs["open_interest"].failures
            outage["after"] = runs
        return bool(
            not full_sim.down
            and "after" in outage
            and daemon.jobs["open_interest"].last_success_ns
            and daemon.jobs["open_interest"].runs > outage["after"]
            and daemon.jobs["open_interest"].failures == outage["failures"]
        )

    def status_written() -> bool:
        daemon.write_status()
        status.update(json.loads(paths.status.read_text()))
        return True

    status: dict[str, Any] = {}
    try:
        asyncio.run(run_until(daemon, round_done, after_outage, status_written))
    finally:
        full_sim.down = False
    # The status file: `all`, and how many perpetuals the last run covered on each exchange.
    assert status["symbols"] == "all"
    assert {ex: status["exchanges"][ex]["instruments"] for ex in listed} == listed
    assert status["streams"]["bybit"]["subscribed"] == listed["bybit"]  # one topic per Bybit perpetual
    assert status["streams"]["binance"]["connected"]  # Binance: its whole-market stream
    reader = CatalogReader(settings.catalog_path)
    # One snapshot round covered every perpetual of every exchange; funding estimates too.
    oi_ids = set(reader.query(OPEN_INTEREST).column("instrument_id").to_pylist())
    estimate_ids = set(reader.query(FUNDING_ESTIMATE).column("instrument_id").to_pylist())
    for ex, count in listed.items():
        venue = ex.upper()
        assert len({i for i in oi_ids if i.endswith("." + venue)}) == count, ex
        assert len({i for i in estimate_ids if i.endswith("." + venue)}) == count, ex
    # Hyperliquid keeps no open-interest history: the snapshots the outage cost are a gap for every perpetual.
    gaps = as_records(CoverageGap, reader.query_records(COVERAGE_GAP))
    hl_gaps = {
        g.instrument_id for g in gaps if g.data_type == "open_interest" and g.exchange == "hyperliquid"
    }
    assert len(hl_gaps) == listed["hyperliquid"]


@pytest.mark.slow
def test_backfill_starts_at_each_listing(
    full_sim: ExchangeSimulator, tmp_path: Path, funding_asked: FundingAsked
) -> None:
    """200 days of funding: the window holds the listings of a few perpetuals; none is asked for a time
    before its listing, and each of those is asked from its listing on."""
    days = 200
    values = daemon_settings(
        full_sim,
        tmp_path,
        daemon={"open_interest_backfill_days": 0, "funding_backfill_days": days, "liquidations": False},
    )
    values["exchanges"] = {ex: values["exchanges"][ex] for ex in LISTED}  # those with listing dates
    config = write_config(tmp_path, values)
    settings = load_settings(config)
    daemon = Daemon(settings, DaemonPaths.for_catalog(settings.catalog_path))
    asyncio.run(run_until(daemon, lambda: succeeded(daemon, "funding"), timeout_s=300))
    window_start = daemon.jobs["funding"].last_run_ns or 0  # a bound: the window starts `days` before this
    assert funding_asked
    first: dict[tuple[str, str], int] = {}
    for ex, symbol, start_ms in funding_asked:
        assert start_ms >= LISTED[ex][symbol], (ex, symbol, start_ms)  # nothing before a listing
        first[(ex, symbol)] = min(start_ms, first.get((ex, symbol), start_ms))
    for ex, listings in LISTED.items():
        assert {s for e, s in first if e == ex} == set(listings), ex  # every perpetual asked for
        inside = [s for s, t in listings.items() if t * 1_000_000 > window_start - days * 86_400 * 10**9]
        assert inside, ex  # the window holds listings, so the check above means something
        for symbol in inside:
            assert first[(ex, symbol)] == listings[symbol], (ex, symbol)  # from the listing on
    reader = CatalogReader(settings.catalog_path)
    rows = reader.query(FUNDING_RATE)
    assert rows.num_rows > 0
    ids = rows.column("instrument_id").to_pylist()
    ts = rows.column("ts_event").to_pylist()
    earliest: dict[str, int] = {}
    for iid, t in zip(ids, ts, strict=True):
        earliest[iid] = min(t, earliest.get(iid, t))
    for ex, listings in LISTED.items():
        venue = "BINANCE" if ex == "binance" else "BYBIT"
        suffix = "-PERP." if ex == "binance" else "-LINEAR."
        for symbol, launch in listings.items():
            iid = f"{symbol}{suffix}{venue}"
            if iid in earliest:
                assert earliest[iid] >= launch * NS_PER_MS, iid
