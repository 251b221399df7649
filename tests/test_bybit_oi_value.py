"""Bybit open-interest history gets its quote value: one side's amount x the mark price at the same time.

Bybit's `/v5/market/open-interest` has no value field (https://bybit-exchange.github.io/docs/v5/market/open-interest);
the mark price at time t is the OPEN of the mark-price candle starting at t, from `/v5/market/mark-price-kline`
(https://bybit-exchange.github.io/docs/v5/market/mark-kline: rows `[startTime, openPrice, highPrice, lowPrice,
closePrice]`, newest first, futures limit [1, 1000]). Parsers on the docs' example; the simulator's endpoint
through the real ccxt; then `fetch-oi` through the real CLI and the real ccxt against the simulator.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.parsers.open_interest import mark_opens, open_interest_history_table
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator, FailureRule
from ccxt_pipeline.timeutil import NS_PER_MINUTE, NS_PER_MS
from ccxt_pipeline.venues import VENUES, MarkKline
from tests.test_simulator_shapes import differences

FIXTURES = Path(__file__).parent / "fixtures"
BYBIT = VENUES["bybit"]
assert BYBIT.oi_history_raw is not None
RAW = BYBIT.oi_history_raw


def _kline() -> MarkKline:
    assert RAW.value_from_mark is not None
    return RAW.value_from_mark


KLINE = _kline()
BTC_BYBIT = instrument_for("bybit", "BTC/USDT:USDT")
IID = "BTCUSDT-LINEAR.BYBIT"
NOW = 1_739_700_000_000  # 2025-02-16T10:00:00Z
FIVE_MIN_MS = 5 * 60_000


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


# --- parsers on the docs' examples -----------------------------------------------------------------------


def test_mark_opens_reads_the_docs_example() -> None:
    rows = fixture("exchange-docs/bybit/mark-price-kline.json")["result"]["list"]
    assert mark_opens(rows, time_index=KLINE.time_index, open_index=KLINE.open_index) == {
        1670608800000: 17164.16  # [startTime, openPrice, ...]: the open, not the close 17131.64
    }
    # A garbled or empty candle prices nothing rather than something wrong.
    garbled = [*rows, ["1670609700000", ""], ["1670610600000"], ["1670611500000", "0", "1", "1", "1"]]
    assert mark_opens(garbled) == {1670608800000: 17164.16}


def test_history_rows_are_priced_by_the_mark_at_their_time() -> None:
    # Derived payload, said so: the docs' open-interest rows (inverse BTCUSD example), the newest re-stamped
    # at the docs' mark-price candle start, so that exactly one row has a mark.
    rows = fixture("exchange-docs/bybit/open-interest.json")["result"]["list"]
    candle = fixture("exchange-docs/bybit/mark-price-kline.json")["result"]["list"]
    rows = [{**rows[0], "timestamp": candle[0][0]}, *rows[1:]]
    marks = mark_opens(candle)
    table = open_interest_history_table(rows, BTC_BYBIT, fields=RAW.fields, marks=marks)
    values = table.column("open_interest_value").to_pylist()
    assert values[0] == 31955346.0 * 17164.16  # single side x the candle's open
    assert values[1:] == [None] * (len(rows) - 1)  # no mark at their time: empty, never a guess
    # Without marks the parser is what it was: amounts only.
    bare = open_interest_history_table(rows, BTC_BYBIT, fields=RAW.fields)
    assert bare.column("open_interest_value").null_count == len(rows)
    assert bare.column("open_interest").to_pylist() == table.column("open_interest").to_pylist()


def test_a_value_the_row_carries_is_not_replaced() -> None:
    # Binance's documented history row has its own sumOpenInterestValue: a mark never overrides it.
    binance = VENUES["binance"].oi_history_raw
    assert binance is not None
    rows = fixture("exchange-docs/binance-usdm/openInterestHist.json")
    marks = {int(r["timestamp"]): 1.0 for r in rows}
    table = open_interest_history_table(rows, BTC_BYBIT, fields=binance.fields, marks=marks)
    assert table.column("open_interest_value").to_pylist() == [float(r["sumOpenInterestValue"]) for r in rows]


# --- the simulator's endpoint, through the real ccxt -------------------------------------------------------


@pytest.fixture
async def fixed_sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW) as simulator:
        yield simulator


@pytest.fixture
async def bybit(fixed_sim: ExchangeSimulator) -> AsyncIterator[Any]:
    config = {**fixed_sim.ccxt_overrides("bybit"), "timeout_on_exit": 0}
    config["options"] = {
        **config.get("options", {}),
        "defaultType": "swap",
        "fetchMarkets": {"types": ["linear"]},
    }
    exchange = ccxt_async.bybit(config)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def test_simulated_mark_kline_has_bybits_shape_and_paging(
    fixed_sim: ExchangeSimulator, bybit: Any
) -> None:
    start = NOW - 3000 * FIVE_MIN_MS
    params = {"category": "linear", "symbol": "BTCUSDT", "interval": "5", "start": start, "end": NOW}
    answer = await bybit.public_get_v5_market_mark_price_kline({**params, "limit": 1000})
    assert differences(fixture("exchange-docs/bybit/mark-price-kline.json"), answer, {}) == []
    rows = answer["result"]["list"]
    times = [int(r[0]) for r in rows]
    # With `start`: the `limit` candles from `start` on, newest first.
    assert times == list(range(start + 999 * FIVE_MIN_MS, start - 1, -FIVE_MIN_MS))
    for t, open_, high, low, close in ((int(r[0]), *map(float, r[1:])) for r in rows):
        assert open_ == data.mark_price("bybit", "BTCUSDT", t, 7)
        assert close == data.mark_price("bybit", "BTCUSDT", t + FIVE_MIN_MS - 1, 7)
        assert low <= min(open_, close)
        assert high >= max(open_, close)
    # A mid-candle start returns the candle containing it; `end` bounds the newest.
    answer = await bybit.public_get_v5_market_mark_price_kline(
        {**params, "start": start + 1, "end": start + 2 * FIVE_MIN_MS, "limit": 10}
    )
    assert [int(r[0]) for r in answer["result"]["list"]] == [
        start + 2 * FIVE_MIN_MS,
        start + FIVE_MIN_MS,
        start,
    ]
    # Without `start`: the newest `limit` up to now (the open candle included); default limit 200.
    answer = await bybit.public_get_v5_market_mark_price_kline(
        {"category": "linear", "symbol": "BTCUSDT", "interval": "60"}
    )
    times = [int(r[0]) for r in answer["result"]["list"]]
    assert len(times) == 200
    assert times[0] == NOW - NOW % 3_600_000
    # Bybit's limit range for futures is [1, 1000]: retCode 10001, which ccxt raises as BadRequest.
    with pytest.raises(ccxt_async.BadRequest):
        await bybit.public_get_v5_market_mark_price_kline({**params, "limit": 1001})
    # ccxt's unified fetch_mark_ohlcv reads the same candles.
    ohlcv = await bybit.fetch_mark_ohlcv("BTC/USDT:USDT", "5m", start, 3)
    assert [c[0] for c in ohlcv] == [start, start + FIVE_MIN_MS, start + 2 * FIVE_MIN_MS]
    assert [c[1] for c in ohlcv] == [data.mark_price("bybit", "BTCUSDT", c[0], 7) for c in ohlcv]


# --- fetch-oi through the CLI, real ccxt, simulator ---------------------------------------------------------


def bybit_table(config_file: Path) -> Any:
    return CatalogReader(config_file.parent / "catalog").query(OPEN_INTEREST, [IID])


def test_fetch_oi_history_values_are_amount_times_mark(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    result = cli("fetch-oi", "BTCUSDT-PERP", "--from", "30d")
    assert result.exit_code == 0, result.output + result.stderr
    table = bybit_table(config_file)
    ts = table.column("ts_init").to_pylist()
    assert len(ts) >= 30 * 24 * 12 - 1
    assert all(t % (5 * NS_PER_MINUTE) == 0 for t in ts)
    amounts = table.column("open_interest").to_pylist()
    values = table.column("open_interest_value").to_pylist()
    assert amounts == [data.open_interest("bybit", "BTCUSDT", t // NS_PER_MS, sim.seed) for t in ts]
    assert None not in values
    for t, amount, value in zip(ts, amounts, values, strict=True):
        mark = data.mark_price("bybit", "BTCUSDT", t // NS_PER_MS, sim.seed)
        assert value == pytest.approx(amount * mark, rel=1e-9), t
    # 30 days of 5-minute points: 200 open-interest rows a page, 1000 candles a page.
    assert sim.count("bybit", "open-interest") == 44
    assert sim.count("bybit", "mark-price-kline") == 9

    sim.reset_counters()
    again = cli("fetch-oi", "BTCUSDT-PERP", "--from", "30d")
    assert again.exit_code == 0, again.output + again.stderr
    # Nothing new to fetch (at most the point a new 5 minutes brought): no candles for stored points.
    new_pages = sim.count("bybit", "open-interest")
    assert new_pages <= 1
    assert sim.count("bybit", "mark-price-kline") == new_pages
    after = bybit_table(config_file)
    assert after.column("open_interest_value").null_count == 0


def test_missing_marks_leave_a_hole_the_rerun_fills(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    """A row is never stored without its value (stored rows are never rewritten, so it would stay empty):
    while the candles fail, the open interest of those windows is not stored either, the run says so in one
    line and exits non-zero, and the rerun stores every point with its value."""
    rule = sim.add_failure(FailureRule(kind="http_500", exchange="bybit", match="mark-price-kline"))
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", "1d")
    assert result.exit_code != 0, result.output + result.stderr
    assert "rerun fetches what is missing" in result.stderr + result.output
    assert "Traceback" not in result.stderr + result.output
    assert rule.fired > 0
    assert bybit_table(config_file).num_rows == 0
    sim.clear_failures()
    again = cli("fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", "1d")
    assert again.exit_code == 0, again.output + again.stderr
    table = bybit_table(config_file)
    assert table.num_rows >= 24 * 12
    ts = table.column("ts_init").to_pylist()
    assert table.column("open_interest").to_pylist() == [
        data.open_interest("bybit", "BTCUSDT", t // NS_PER_MS, sim.seed) for t in ts
    ]
    assert table.column("open_interest_value").null_count == 0
