"""Planning and the paging loop, on a fake page source (no exchange involved: the loop is ours)."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_pipeline.catalog import FUNDING_RATE, CatalogReader
from ccxt_pipeline.collect.funding import plan_funding, settlement_windows, widen
from ccxt_pipeline.collect.paging import Order, page_window, page_windows
from ccxt_pipeline.collect.plan import Range, grid_windows, missing_grid_points
from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MS, parse_when
from ccxt_pipeline.venues import VENUES
from tests.conftest import SimulatorThread, run_cli, sim_settings

STEP = 300


def test_grid_windows_hold_at_most_limit_points() -> None:
    windows = grid_windows(Range(1, 10 * STEP), STEP, 4)
    assert windows == [Range(STEP, 4 * STEP), Range(5 * STEP, 8 * STEP), Range(9 * STEP, 10 * STEP)]


def test_missing_grid_points() -> None:
    present = {0, 300, 1200}
    assert missing_grid_points(Range(0, 1500), STEP, present) == [Range(600, 900), Range(1500, 1500)]


def test_parse_when_forms() -> None:
    now = 1_800_000_000_000_000_000
    assert parse_when("2025-01-01", now) == 1_735_689_600_000_000_000
    assert parse_when("2025-01-01T01:00:00+01:00", now) == 1_735_689_600_000_000_000
    assert parse_when("2d", now) == now - 2 * 86_400_000_000_000


def make_source(
    times: list[int], limit: int, newest_first: bool, short: set[int]
) -> tuple[Callable[[Range], Awaitable[list[int]]], list[Range]]:
    """A page source over `times` that answers like an exchange: at most `limit` rows, in its order;
    requests whose number is in `short` are silently cut to half."""
    calls: list[Range] = []

    async def fetch(r: Range) -> list[int]:
        calls.append(r)
        rows = [t for t in times if r.start <= t <= r.end]
        rows = rows[-limit:][::-1] if newest_first else rows[:limit]
        if len(calls) in short:
            rows = rows[: max(1, len(rows) // 2)]
        return rows

    return fetch, calls


async def test_complete_window_costs_one_request() -> None:
    times = [i * STEP for i in range(10)]
    fetch, calls = make_source(times, 10, newest_first=False, short=set())
    assert await page_window(fetch, Range(0, 9 * STEP), lambda t: t, STEP) == times
    assert len(calls) == 1


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    holes=st.sets(st.integers(0, 59), max_size=10),
    limit=st.integers(1, 12),
    newest_first=st.booleans(),
    short=st.sets(st.integers(1, 30), max_size=5),
    window_points=st.integers(1, 25),
)
async def test_property_every_row_found_whatever_the_answers(
    n: int, holes: set[int], limit: int, newest_first: bool, short: set[int], window_points: int
) -> None:
    times = [i * STEP for i in range(n) if i not in holes]
    fetch, _ = make_source(times, limit, newest_first, short)
    windows = grid_windows(Range(0, max(0, n - 1) * STEP), STEP, window_points) if n else []
    got = await page_windows(fetch, windows, lambda t: t, STEP)
    assert got == times  # every row, once, in order


# --- funding windows: a complete page costs one request ------------------------------------------------------

HOUR = 3_600_000_000_000


@settings(max_examples=300, deadline=None)
@given(
    interval_h=st.sampled_from([1, 4, 8]),
    settled_h=st.sampled_from([None, 1, 2, 4, 8]),
    per_window=st.integers(1, 12),
    start_off=st.integers(0, 8 * HOUR),
    length=st.integers(0, 80 * 8 * HOUR),
    late_ms=st.integers(0, 999),
    newest_first=st.booleans(),
    documented=st.booleans(),
)
async def test_property_settlement_windows_cost_one_request_each(
    interval_h: int,
    settled_h: int | None,
    per_window: int,
    start_off: int,
    length: int,
    late_ms: int,
    newest_first: bool,
    documented: bool,
) -> None:
    """Settlements on the interval's UTC grid, stamped up to 999 ms late (Hyperliquid: `"time":1683849600076`,
    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals), answered
    `per_window` at most a page, oldest or newest first (told to the paging or not): each window costs exactly
    one request (the paging allows a second of stamp slack, which once made every full page ask again), and
    every row is found. `settled_h`: the history settled at another interval than the one planned with
    (Binance's history is planned at 8 hours; a 4-hour symbol holds two pages in each window): each window
    then costs the pages its rows fill, and no empty request after a full last page."""
    interval = interval_h * HOUR
    settled = (settled_h or interval_h) * HOUR
    base = 1_735_689_600_000_000_000  # 2025-01-01T00:00Z, on every interval's grid
    span = Range(base + start_off, base + start_off + length)
    late = late_ms * 1_000_000
    series = [t + late for t in range(base - 10 * interval, span.end + 10 * interval, settled)]
    windows = settlement_windows(widen(span, 0, span.end + 10 * interval), interval, per_window)
    assert span.start - interval < windows[0].start <= span.start
    assert span.end <= windows[-1].end < span.end + interval
    assert all(b.start == a.end + 1 for a, b in itertools.pairwise(windows))
    fetch, calls = make_source(series, per_window, newest_first, short=set())
    order: Order = ("newest" if newest_first else "oldest") if documented else None
    got: list[int] = []
    for w in windows:
        got += await page_window(fetch, w, lambda t: t, settled, slack=1_000_000_000, order=order)
    assert sorted(got) == [t for t in series if windows[0].start <= t <= windows[-1].end]
    rows_in = [sum(w.start <= t <= w.end for t in series) for w in windows]
    assert len(calls) == sum(max(1, -(-n // per_window)) for n in rows_in)
    if settled == interval:
        assert len(calls) == len(windows)
        # Only the first window (starting mid-slot) and the last (ending early) may hold fewer than
        # `per_window`.
        assert len(windows) <= -(-len(got) // per_window) + 2


@pytest.mark.parametrize("newest_first", [False, True])
async def test_a_documented_order_asks_again_only_where_a_page_was_cut(newest_first: bool) -> None:
    """Pages cut short (half their rows) are completed on the side the exchange cut them, and only there."""
    times = [i * STEP for i in range(40)]
    fetch, calls = make_source(times, 10, newest_first, short={1, 2, 3})
    order: Order = "newest" if newest_first else "oldest"
    assert sorted(await page_window(fetch, Range(0, 39 * STEP), lambda t: t, STEP, order=order)) == times
    for asked in calls[1:]:
        assert (asked.end == 39 * STEP) if not newest_first else (asked.start == 0)


def test_plan_funding_uses_the_fewest_pages() -> None:
    """2,095 settlements every 8h in 1000-row pages: three windows, from half an hour before the
    settlement a day early (the first row's interval) to the range's end (now: nothing is due after it)."""
    start, end = 1_735_689_600_000_000_000, 1_735_689_600_000_000_000 + 697 * 24 * HOUR
    plan = plan_funding([Range(start, end)], 480, 1000)
    assert plan.spans == [Range(start - 24 * HOUR - HOUR // 2, end)]
    assert [w.end for w in plan.windows] == [
        start - 24 * HOUR + 999 * 8 * HOUR + HOUR // 2 - 1,
        start - 24 * HOUR + 1999 * 8 * HOUR + HOUR // 2 - 1,
        end,
    ]
    # A range ending on a settlement time, before now, ends half an hour later.
    assert (
        plan_funding([Range(start, end)], 480, 1000, until=end + 24 * HOUR).spans[0].end
        == end + HOUR // 2 - 1
    )
    # A range starting a nanosecond after a stored settlement starts half an hour before it, the floor
    # (listing) permitting.
    floor = start - 24 * HOUR - HOUR // 4
    assert plan_funding([Range(start + 1, end)], 480, 1000, floor=floor).spans[0].start == floor
    assert plan_funding([Range(start + 1, end)], 480, 1000).spans[0].start == start - 24 * HOUR - HOUR // 2


# --- the same through the real ccxt and the simulator's request counters --------------------------------------

FEWEST_PATH = {
    "binance": "/fapi/v1/fundingRate",
    "bybit": "/v5/market/funding/history",
    "hyperliquid": "info:fundingHistory",
}


@pytest.mark.parametrize(
    ("exchange", "symbol", "start"),
    [
        ("binance", "BTCUSDT", "2025-01-01"),
        ("bybit", "BTCUSDT", "2025-01-01"),
        ("hyperliquid", "BTC", "2025-01-01"),  # BTCUSDT-PERP names it too
        # Settles every 4 hours from 2025-03-01 on, while Binance's history is planned at 8: each window
        # holds two full pages, which once cost a third, empty request (collect/funding.py
        # `settlement_windows`).
        ("binance", "SOLUSDT", "2025-03-01"),
    ],
)
def test_funding_history_of_a_year_asks_the_fewest_pages(
    exchange: str, symbol: str, start: str, tmp_path: Path
) -> None:
    """A year of funding from each exchange: rows equal the simulator's series, and the requests are
    ceil(settlements / page limit) (Binance 1000, Bybit 200, Hyperliquid 500 a page; venue table). Binance and
    Bybit pad the start by a day (the first row's interval); Hyperliquid's first page is also its probe of
    where the series starts, and its fixed interval needs no padding."""
    end = str(int(start[:4]) + 1) + start[4:]
    start_ms, end_ms = parse_when(start, 0) // NS_PER_MS, parse_when(end, 0) // NS_PER_MS
    instrument = "BTCUSDT-PERP" if symbol == "BTC" else f"{symbol}-PERP"
    with SimulatorThread(ExchangeSimulator(seed=0)) as sim:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(sim_settings(sim, tmp_path / "catalog")))
        result = run_cli(config, "fetch-funding", instrument, "-e", exchange, "--from", start, "--to", end)
        assert result.exit_code == 0, result.output + result.stderr
        asked = sim.count(exchange, FEWEST_PATH[exchange])
    padded = start_ms - (0 if exchange == "hyperliquid" else 86_400_000)
    settled = data.funding_settlements(exchange, symbol, padded - 1000, end_ms)
    stamp = (lambda t: hyperliquid.funding_time(symbol, t)) if exchange == "hyperliquid" else (lambda t: t)
    in_span = [stamp(t) for t, _, _ in settled if padded <= stamp(t) <= end_ms]
    assert asked == -(-len(in_span) // VENUES[exchange].funding_history_limit)
    rows = CatalogReader(tmp_path / "catalog").query(FUNDING_RATE)
    expected = [(t, r) for t, r, _ in settled if start_ms <= stamp(t) <= end_ms]
    assert [t // NS_PER_MS for t in rows.column("ts_event").to_pylist()] == [stamp(t) for t, _ in expected]
    assert rows.column("rate").to_pylist() == [r for _, r in expected]
