"""Reruns fill every hole, and history is written as it arrives: the CLI, the real ccxt, the simulator.

The hole scenarios are the ones an independent fake exchange found (issue 10): a range fetched, a later one
fetched, then the whole span asked for. Counts are checked against the simulator's own series.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.collect.plan import Range, missing_grid_points
from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.simulator.data import DAY_MS
from ccxt_pipeline.simulator.server import ExchangeSimulator, FailureRule
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MS, now_ns, parse_when
from tests.catalog_checks import assert_catalog_invariants
from tests.test_fetch import FIVE_MIN, IDS, _history_catalog, catalog, expected_oi_points, iso

Cli = Callable[..., Any]
"""The `cli` fixture: runs `ccxt-cli ARGS --config <simulator config>`, returns click's Result."""
ROOT = Path(__file__).resolve().parent.parent
OI_LIMIT = {"binance": 500, "bybit": 200}  # rows per open-interest history page (venues.py)
OI_ENDPOINT = {"binance": "openInterestHist", "bybit": "open-interest"}
FUNDING_ENDPOINT = {"binance": "fundingRate", "bybit": "funding/history", "hyperliquid": "fundingHistory"}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def oi_range() -> tuple[int, int]:
    """30 days of 5-minute points, inside Binance's 30-day window with half an hour to spare."""
    now = now_ns()
    to = now - now % FIVE_MIN - FIVE_MIN
    return to - 30 * NS_PER_DAY + 6 * FIVE_MIN, to


def assert_oi_exact(reader: CatalogReader, exchange: str, start: int, end: int) -> None:
    table = reader.query(OPEN_INTEREST, [IDS[exchange]])
    ts = table.column("ts_init").to_pylist()
    assert ts == expected_oi_points(exchange, start, end), (exchange, len(ts))
    amounts = table.column("open_interest").to_pylist()
    assert amounts == [data.open_interest(exchange, "BTCUSDT", t // NS_PER_MS) for t in ts]


def history_requests(sim: ExchangeSimulator, endpoints: dict[str, str]) -> dict[str, int]:
    return {ex: sim.count(ex, ep) for ex, ep in endpoints.items()}


def test_clean_run_makes_the_fewest_requests(cli: Cli, config_file: Path, sim: ExchangeSimulator) -> None:
    start, to = oi_range()
    result = cli(
        "fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--from", iso(start), "--to", iso(to)
    )
    assert result.exit_code == 0, result.output + result.stderr
    points = len(expected_oi_points("binance", start, to))
    assert history_requests(sim, OI_ENDPOINT) == {"binance": 18, "bybit": 44}
    assert history_requests(sim, OI_ENDPOINT) == {ex: ceil_div(points, n) for ex, n in OI_LIMIT.items()}


def test_open_interest_rerun_fills_the_hole_between_two_fetches(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    start, to = oi_range()
    first_to = start + 10 * NS_PER_DAY  # like --from 30d --to 20d
    later = to - 5 * NS_PER_DAY  # like --from 5d
    for a, b in ((start, first_to), (later, to)):
        result = cli(
            "fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--from", iso(a), "--to", iso(b)
        )
        assert result.exit_code == 0, result.output + result.stderr
    hole = [t for t in expected_oi_points("binance", start, to) if first_to < t < later]
    assert len(hole) > 4000

    sim.reset_counters()
    result = cli(
        "fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--from", iso(start), "--to", iso(to)
    )
    assert result.exit_code == 0, result.output + result.stderr
    reader = catalog(config_file)
    for ex in ("binance", "bybit"):
        assert_oi_exact(reader, ex, start, to)
    # Only the hole was asked for, in as few pages as it fits in.
    assert history_requests(sim, OI_ENDPOINT) == {ex: ceil_div(len(hole), n) for ex, n in OI_LIMIT.items()}
    assert reader.query(COVERAGE_GAP).num_rows == 0
    assert_catalog_invariants(reader.root)

    sim.reset_counters()
    again = cli(
        "fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--from", iso(start), "--to", iso(to)
    )
    assert again.exit_code == 0
    assert history_requests(sim, OI_ENDPOINT) == {"binance": 0, "bybit": 0}


FUNDING_IDS = {
    "binance": {"BTCUSDT": "BTCUSDT-PERP.BINANCE", "SOLUSDT": "SOLUSDT-PERP.BINANCE"},
    "bybit": {"BTCUSDT": "BTCUSDT-LINEAR.BYBIT", "SOLUSDT": "SOLUSDT-LINEAR.BYBIT"},
    "hyperliquid": {"BTC": "BTC-USD-PERP.HYPERLIQUID", "SOL": "SOL-USD-PERP.HYPERLIQUID"},
}


def served_settlements(
    exchange: str, symbol: str, start_ms: int, end_ms: int
) -> list[tuple[int, float, int]]:
    """(time ms, rate, interval minutes) the simulator serves in [start_ms, end_ms]: Hyperliquid stamps its
    settlements a few milliseconds past the hour."""
    out = []
    for t, rate, hours in data.funding_settlements(exchange, symbol, start_ms - DAY_MS, end_ms):
        at = hyperliquid.funding_time(symbol, t) if exchange == "hyperliquid" else t
        if start_ms <= at <= end_ms:
            out.append((at, rate, hours * 60))
    return out


def test_funding_rerun_fills_the_hole_between_two_fetches(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    """The hole holds Binance SOLUSDT's 8h -> 4h switch (2025-03-01): intervals change inside it."""
    end = "2025-09-01"
    for a, b in (("2025-01-01", "2025-02-01"), ("2025-06-01", end)):
        result = cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", "--from", a, "--to", b)
        assert result.exit_code == 0, result.output + result.stderr
    result = cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", "--from", "2025-01-01", "--to", end)
    assert result.exit_code == 0, result.output + result.stderr

    reader = catalog(config_file)
    start_ms, end_ms = parse_when("2025-01-01", 0) // NS_PER_MS, parse_when(end, 0) // NS_PER_MS
    total = 0
    for ex, ids in FUNDING_IDS.items():
        for sym, iid in ids.items():
            expected = served_settlements(ex, sym, start_ms, end_ms)
            table = reader.query(FUNDING_RATE, [iid])
            stored = list(
                zip(
                    [t // NS_PER_MS for t in table.column("ts_event").to_pylist()],
                    table.column("rate").to_pylist(),
                    table.column("interval_minutes").to_pylist(),
                    strict=True,
                )
            )
            assert stored == expected, (ex, sym, len(stored), len(expected))
            total += len(expected)
    assert total > 10_000
    sol = reader.query(FUNDING_RATE, ["SOLUSDT-PERP.BINANCE"]).column("interval_minutes").to_pylist()
    assert set(sol) == {480, 240}
    assert reader.query(COVERAGE_GAP).num_rows == 0
    assert_catalog_invariants(reader.root)

    # Every settlement is stored: a rerun asks for nothing, whatever the intervals (8h, 4h, 1h, a switch).
    sim.reset_counters()
    again = cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", "--from", "2025-01-01", "--to", end)
    assert again.exit_code == 0
    assert history_requests(sim, FUNDING_ENDPOINT) == {ex: 0 for ex in FUNDING_ENDPOINT}


def test_a_page_that_fails_for_good_leaves_only_its_hole(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    start, to = oi_range()
    first = -(-start // FIVE_MIN) * FIVE_MIN
    bad_page = Range(first + 5 * 500 * FIVE_MIN, first + (6 * 500 - 1) * FIVE_MIN)  # the sixth of 18 pages
    rule = sim.add_failure(
        FailureRule(kind="http_503", exchange="binance", match=f"startTime={bad_page.start // NS_PER_MS}")
    )
    args = ("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", iso(start), "--to", iso(to))
    result = cli(*args)
    assert rule.fired >= 2  # retried, then given up
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if "failed" in line]
    assert len(lines) == 1, result.stderr
    assert "binance" in lines[0]
    reader = catalog(config_file)
    expected = expected_oi_points("binance", start, to)
    ts = reader.query(OPEN_INTEREST, [IDS["binance"]]).column("ts_init").to_pylist()
    assert ts == [t for t in expected if not bad_page.start <= t <= bad_page.end]  # every other page stored
    assert reader.query(COVERAGE_GAP).num_rows == 0  # a failure is no gap: the exchange said nothing

    sim.clear_failures()
    sim.reset_counters()
    rerun = cli(*args)
    assert rerun.exit_code == 0, rerun.output + rerun.stderr
    assert sim.count("binance", "openInterestHist") == 1  # the missing page only
    assert_oi_exact(reader, "binance", start, to)
    assert_catalog_invariants(reader.root)


@pytest.mark.slow
def test_a_killed_fetch_keeps_what_arrived_and_the_rerun_fetches_the_rest(
    cli: Cli, config_file: Path, sim: ExchangeSimulator, tmp_path: Path
) -> None:
    start, to = oi_range()
    args = ["fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", iso(start), "--to", iso(to)]
    expected = expected_oi_points("bybit", start, to)
    reader = catalog(config_file)
    sim.latency_ms = 250  # 44 pages, 5 in flight: a few seconds
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccxt_pipeline", *args, "--config", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while proc.poll() is None and time.monotonic() < deadline:
            stored = reader.query(OPEN_INTEREST, [IDS["bybit"]]).num_rows
            if stored:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the fetch ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    ts = reader.query(OPEN_INTEREST, [IDS["bybit"]]).column("ts_init").to_pylist()
    assert 0 < len(ts) < len(expected)  # killed halfway: something stored, not everything
    assert set(ts) <= set(expected)
    missing = missing_grid_points(Range(expected[0], expected[-1]), FIVE_MIN, set(ts))

    sim.latency_ms = 0
    sim.reset_counters()
    rerun = cli(*args)
    assert rerun.exit_code == 0, rerun.output + rerun.stderr
    # No request for what was stored: each missing run costs the pages it fits in, no more.
    fewest = sum(ceil_div((r.end - r.start) // FIVE_MIN + 1, OI_LIMIT["bybit"]) for r in missing)
    assert sim.count("bybit", "open-interest") == fewest < 44
    assert_catalog_invariants(reader.root)

    clean_cfg = tmp_path / "clean" / "ccxt_pipeline.yaml"
    clean_cfg.parent.mkdir()
    clean_cfg.write_text(
        config_file.read_text().replace(
            str(config_file.parent / "catalog"), str(clean_cfg.parent / "catalog")
        )
    )
    clean = subprocess.run(
        [sys.executable, "-m", "ccxt_pipeline", *args, "--config", str(clean_cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stderr
    assert _history_catalog(config_file) == _history_catalog(clean_cfg)
    assert_oi_exact(reader, "bybit", start, to)


def test_a_recorded_gap_is_not_asked_for_again(cli: Cli, config_file: Path, sim: ExchangeSimulator) -> None:
    """Binance serves 30 days: the older part of `--from 40d` is recorded once, then never asked for."""
    args = ("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", "40d")
    assert cli(*args).exit_code == 0
    reader = catalog(config_file)
    assert len(reader.query_records(COVERAGE_GAP)) == 1
    sim.reset_counters()
    again = cli(*args)
    assert again.exit_code == 0, again.output + again.stderr
    assert sim.count("binance", "openInterestHist") <= 1  # at most the newest point, not published before
    assert len(reader.query_records(COVERAGE_GAP)) == 1  # the same gap, not a second one
