"""The simulator's full market (`ExchangeSimulator(full_market=True)`): 200+ linear perpetuals per exchange,
with listing dates, parsed by the real ccxt; every series endpoint answers for every listed symbol and
nothing before its listing.

Listing-date fields: Binance exchangeInfo `onboardDate` (ms number, the Exchange-Information example
`"onboardDate": 1598252400000`), Bybit instruments-info `launchTime` (ms string, tests/fixtures/exchange-docs/
bybit/instruments-info-linear.json `"launchTime": "1585526400000"`); Hyperliquid's `meta` universe has none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from ccxt_pipeline.simulator import ExchangeSimulator, data
from tests.test_simulator import NOW, client

HOUR = data.HOUR_MS
DAY = data.DAY_MS
EXCHANGES = ("binance", "bybit", "hyperliquid")


@pytest.fixture
async def full() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW, full_market=True) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def late_listing(exchange: str) -> data.Instrument:
    """A generated perpetual listed well after the simulator's history start (2024-01-01)."""
    return next(
        i for i in data.listed(exchange, full=True) if i.launch_ms > data.HISTORY_START_MS + 400 * DAY
    )


def test_the_core_symbols_lead_the_full_market_unchanged() -> None:
    for exchange in EXCHANGES:
        core = data.INSTRUMENTS[exchange]
        full = data.listed(exchange, full=True)
        assert full[: len(core)] == core
        assert len(full) - len(core) >= 200
        assert not any(i.generated for i in core)
        assert all(i.generated for i in full[len(core) :])
        assert len({i.id for i in full}) == len(full)
        launches = [i.launch_ms for i in full[len(core) :]]
        assert min(launches) >= data.HISTORY_START_MS - 5 * 365 * DAY
        assert max(launches) <= data.LISTING_END_MS
        assert all(t % HOUR == 0 for t in launches)
    # the same coin lists on several exchanges, each at its own date
    shared = {i.base for i in data.listed("binance", full=True)} & {
        i.base for i in data.listed("bybit", full=True)
    }
    assert len(shared) >= 150


@pytest.mark.parametrize("name", EXCHANGES)
async def test_ccxt_loads_200_linear_perpetuals_with_their_listing_dates(
    full: ExchangeSimulator, name: str
) -> None:
    async with client(full, name, load=False) as exchange:
        started = time.perf_counter()
        markets = await exchange.load_markets()
        elapsed = time.perf_counter() - started
    print(f"{name}: load_markets of {len(markets)} markets took {elapsed * 1000:.0f} ms")
    swaps = [m for m in markets.values() if m["swap"] and m["linear"]]
    assert len(swaps) >= 200
    for inst in full.instruments(name):
        market = markets[inst.ccxt_symbol]
        # Hyperliquid's market id is the asset index; its coin is `baseName`
        assert (market["baseName"] if name == "hyperliquid" else market["id"]) == inst.id
        assert market["swap"]
        assert market["linear"]
        assert market["active"] is not False
        assert market["settle"] == inst.settle
        if name != "hyperliquid":  # Hyperliquid's meta has no listing date
            assert market["created"] == inst.launch_ms


async def test_a_core_simulator_does_not_know_the_generated_symbols(http: aiohttp.ClientSession) -> None:
    inst = late_listing("binance")
    async with ExchangeSimulator(seed=7, now_ms=NOW) as core:
        async with http.get(f"{core.base_url}/fapi/v1/openInterest", params={"symbol": inst.id}) as r:
            assert r.status == 400
            assert (await r.json())["code"] == -1121
        async with client(core, "binance") as b:
            assert len(b.markets) == len(data.INSTRUMENTS["binance"])


async def _get(http: aiohttp.ClientSession, url: str, **params: Any) -> Any:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as response:
        assert response.status == 200, (url, params, await response.text())
        return await response.json()


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as response:
        assert response.status == 200, (url, body, await response.text())
        return await response.json()


async def test_every_series_endpoint_answers_for_every_listed_symbol(
    full: ExchangeSimulator, http: aiohttp.ClientSession
) -> None:
    base = full.base_url
    recent = NOW - 2 * DAY

    async def binance(inst: data.Instrument) -> None:
        oi = await _get(http, f"{base}/fapi/v1/openInterest", symbol=inst.id)
        assert float(oi["openInterest"]) > 0
        hist = await _get(http, f"{base}/futures/data/openInterestHist", symbol=inst.id, period="1h", limit=2)
        assert len(hist) == 2
        rates = await _get(http, f"{base}/fapi/v1/fundingRate", symbol=inst.id, startTime=recent, limit=3)
        assert len(rates) == 3
        assert all(r["fundingTime"] >= recent for r in rates)
        mark = await _get(http, f"{base}/fapi/v1/premiumIndex", symbol=inst.id)
        assert mark["nextFundingTime"] > NOW

    async def bybit(inst: data.Instrument) -> None:
        q = {"category": "linear", "symbol": inst.id}
        oi = await _get(http, f"{base}/v5/market/open-interest", **q, intervalTime="1h", limit=2)
        assert len(oi["result"]["list"]) == 2
        rates = await _get(http, f"{base}/v5/market/funding/history", **q, limit=2)
        assert len(rates["result"]["list"]) == 2
        kline = await _get(http, f"{base}/v5/market/mark-price-kline", **q, interval="60", limit=2)
        assert len(kline["result"]["list"]) == 2
        tickers = await _get(http, f"{base}/v5/market/tickers", **q)
        assert float(tickers["result"]["list"][0]["openInterest"]) > 0

    async def hyperliquid(inst: data.Instrument) -> None:
        rows = await _post(
            http, f"{base}/info", {"type": "fundingHistory", "coin": inst.id, "startTime": recent}
        )
        assert len(rows) == 48
        assert rows[0]["coin"] == inst.id

    checks = {"binance": binance, "bybit": bybit, "hyperliquid": hyperliquid}
    for name, check in checks.items():
        insts = full.instruments(name)
        for k in range(0, len(insts), 25):  # a few at a time: the simulator shares 2 cores
            await asyncio.gather(*(check(i) for i in insts[k : k + 25]))
    ctxs = await _post(http, f"{base}/info", {"type": "metaAndAssetCtxs"})
    assert len(ctxs[0]["universe"]) == len(ctxs[1]) == len(full.instruments("hyperliquid"))


# --- nothing before the listing ----------------------------------------------------------------------


@pytest.mark.parametrize("name", EXCHANGES)
async def test_funding_history_starts_after_the_listing(full: ExchangeSimulator, name: str) -> None:
    inst = late_listing(name)
    hours = data.funding_schedule(name, inst.id)[0][1]
    first = (inst.launch_ms // (hours * HOUR) + 1) * hours * HOUR  # the first settlement after the listing
    async with client(full, name) as exchange:
        before = await exchange.fetch_funding_rate_history(
            inst.ccxt_symbol, inst.launch_ms - 30 * DAY, 100, params={"until": inst.launch_ms - 1}
        )
        assert before == []
        rows = await exchange.fetch_funding_rate_history(inst.ccxt_symbol, inst.launch_ms - 10 * DAY, 50)
    assert rows
    assert all(r["timestamp"] > inst.launch_ms for r in rows)
    # Hyperliquid stamps a settlement a few ms past the hour
    assert rows[0]["timestamp"] // HOUR * HOUR == first


async def test_binance_open_interest_history_starts_at_the_listing(http: aiohttp.ClientSession) -> None:
    inst = late_listing("binance")
    now = inst.launch_ms + 10 * DAY  # inside Binance's 30-day window
    async with ExchangeSimulator(seed=7, now_ms=now, full_market=True) as sim:
        url = f"{sim.base_url}/futures/data/openInterestHist"
        rows = await _get(http, url, symbol=inst.id, period="1h", startTime=now - 20 * DAY, limit=500)
        assert rows[0]["timestamp"] == -(-inst.launch_ms // HOUR) * HOUR
        before = await _get(
            http, url, symbol=inst.id, period="1h", startTime=now - 20 * DAY, endTime=inst.launch_ms - 1
        )
        assert before == []


async def test_bybit_open_interest_and_candles_start_at_the_listing(full: ExchangeSimulator) -> None:
    inst = late_listing("bybit")
    async with client(full, "bybit") as b:
        rows = await b.fetch_open_interest_history(
            inst.ccxt_symbol, "1h", inst.launch_ms - 5 * DAY, 200, params={"until": inst.launch_ms + 2 * DAY}
        )
        candles = await b.fetch_ohlcv(
            inst.ccxt_symbol, "1h", inst.launch_ms - 5 * DAY, 200, params={"price": "mark"}
        )
        before = await b.fetch_ohlcv(
            inst.ccxt_symbol,
            "1h",
            inst.launch_ms - 5 * DAY,
            100,
            params={"price": "mark", "until": inst.launch_ms - 1},
        )
    assert rows[0]["timestamp"] == -(-inst.launch_ms // HOUR) * HOUR
    assert len(rows) == 49
    assert candles[0][0] == -(-inst.launch_ms // HOUR) * HOUR
    assert before == []


async def test_hyperliquid_meta_lists_no_listing_date(full: ExchangeSimulator) -> None:
    exchange = ccxt_async.hyperliquid({**full.ccxt_overrides("hyperliquid"), "timeout_on_exit": 0})
    try:
        meta = await exchange.public_post_info({"type": "meta"})
    finally:
        await exchange.close()
    assert len(meta["universe"]) == len(full.instruments("hyperliquid"))
    assert {key for row in meta["universe"] for key in row} == {
        "szDecimals",
        "name",
        "maxLeverage",
        "marginTableId",
    }
    table_ids = {table_id for table_id, _table in meta["marginTables"]}
    assert {row["marginTableId"] for row in meta["universe"]} <= table_ids
