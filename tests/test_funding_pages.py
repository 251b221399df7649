"""Funding history from a symbol's listing asks the fewest pages (issue 12, `--all` backfills): through the
real ccxt against the simulator's full market (generated perpetuals with listing dates), counting the requests
the simulator received.

Bybit answers newest first (https://bybit-exchange.github.io/docs/v5/market/history-fund-rate: "passing only
endTime returns 200 records up till endTime", `limit` at most 200) and gives each market's `launchTime`
(https://bybit-exchange.github.io/docs/v5/market/instrument), from which the fetch starts. The simulator's first
settlement of a market listed later is one grid step after the listing (`simulator/data.py` `_segments`: a
settlement closes the period before it). A listing on the settlement grid once cost one more page per symbol:
the stretch between the listing and the first settlement looked like room for one more row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ccxt_pipeline.catalog import FUNDING_RATE, CatalogReader
from ccxt_pipeline.collect.funding import plan_funding
from ccxt_pipeline.collect.plan import Range
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND, parse_when
from ccxt_pipeline.venues import VENUES
from tests.conftest import SimulatorThread, run_cli, sim_settings

DAY_MS = 86_400_000

CASES = {
    # Bybit, listed 2025-02-06T08:00Z, every 8h: on the grid; 344 settlements to 2025-06-01
    "bybit-on-grid-8h": ("bybit", "BARUSDT", "2025-01-01", "2025-06-01"),
    # listed 2025-05-22T04:00Z, every hour: on the grid; 236 settlements
    "bybit-on-grid-1h": ("bybit", "BEKUSDT", "2025-01-01", "2025-06-01"),
    # listed 2025-01-15T17:00Z, every 8h: between settlements; exactly 200 settlements (one page) to the --to
    "bybit-between-8h": ("bybit", "ZUNUSDT", "2025-01-01", "2025-03-23T08:00:00Z"),
    # listed on the grid 12 h before --from: the day of padding before --from (the first row's interval)
    # reaches back to the listing
    "bybit-before-from-on-grid": ("bybit", "BARUSDT", "2025-02-06T20:00:00Z", "2025-06-01"),
    # listed 2025-01-15T05:00Z, long before --from
    "bybit-before-from": ("bybit", "TORUKUSDT", "2025-03-01", "2025-06-01"),
    # Binance (oldest first, `onboardDate`; the same planner): listed 2025-01-21T04:00Z, every 4h, on the
    # grid; 784 settlements, one page of 1000. The --to is off the grid: Binance's history planner assumes
    # 8h where it does not know the interval, and a --to on the 8h grid costs a 4h symbol one more request.
    "binance-on-grid-4h": ("binance", "KUTOKUSDT", "2025-01-01", "2025-05-31T23:00:00Z"),
}
PATH = {"binance": "/fapi/v1/fundingRate", "bybit": "/v5/market/funding/history"}


@pytest.mark.parametrize("case", list(CASES))
def test_funding_from_the_listing_asks_the_fewest_pages(case: str, tmp_path: Path) -> None:
    """Requests = ceil(settlements the simulator serves in the span asked / page limit), the span being from the
    listing, or from a day before --from (padding for the first row's interval) if that is later; the rows
    stored equal the simulator's series from max(--from, listing)."""
    exchange, symbol, start, end = CASES[case]
    start_ms, end_ms = parse_when(start, 0) // NS_PER_MS, parse_when(end, 0) // NS_PER_MS
    listed_ms = data.series_start(exchange, symbol)
    with SimulatorThread(ExchangeSimulator(seed=0, full_market=True)) as sim:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(sim_settings(sim, tmp_path / "catalog")))
        result = run_cli(
            config, "fetch-funding", f"{symbol}-PERP", "-e", exchange, "--from", start, "--to", end
        )
        assert result.exit_code == 0, result.output + result.stderr
        asked = sim.count(exchange, PATH[exchange])
    padded = max(listed_ms, start_ms - DAY_MS)
    served = data.funding_settlements(exchange, symbol, padded, end_ms)
    fewest = -(-len(served) // VENUES[exchange].funding_history_limit)
    assert asked == fewest, f"{symbol}: {asked} requests for {len(served)} settlements (fewest {fewest})"
    rows = CatalogReader(tmp_path / "catalog").query(FUNDING_RATE)
    expected = [(t, r) for t, r, _ in served if max(start_ms, listed_ms) <= t <= end_ms]
    assert [t // NS_PER_MS for t in rows.column("ts_event").to_pylist()] == [t for t, _ in expected]
    assert rows.column("rate").to_pylist() == [r for _, r in expected]


HOUR = 3_600_000_000_000


def test_a_newest_first_plan_starts_past_a_listing_on_the_grid() -> None:
    """Pure: a span from a listing on the settlement grid starts just past the stamp slack after it (no
    settlement closes at the listing), and its first window holds a full page; a listing between settlements,
    or a venue not told (oldest first), keeps the listing as the start."""
    listed = 1_738_828_800_000_000_000  # 2025-02-06T08:00Z, on the 8h grid
    end = listed + 400 * 8 * HOUR
    plan = plan_funding([Range(listed, end)], 480, 200, listed, end, settles_after_floor=True)
    assert plan.spans[0].start == listed + NS_PER_SECOND + 1
    assert plan.windows[0].end == listed + 200 * 8 * HOUR + HOUR // 2 - 1  # settlements 1..200 after it
    assert plan_funding([Range(listed, end)], 480, 200, listed, end).spans[0].start == listed
    between = listed + HOUR
    assert (
        plan_funding([Range(between, end)], 480, 200, between, end, settles_after_floor=True).spans[0].start
        == between
    )
    # A listing that is also the range's end: nothing left to ask for.
    assert (
        plan_funding([Range(listed, listed)], 480, 200, listed, listed, settles_after_floor=True).windows
        == []
    )
