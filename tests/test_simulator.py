"""The local exchange simulator, driven by the REAL ccxt async classes (never mocked).

Each test starts an ExchangeSimulator on 127.0.0.1 with a fixed "now" and points ccxt at it with
`sim.ccxt_overrides(...)`; values ccxt returns must equal `ccxt_pipeline.simulator.data` exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro
import pytest
import yaml

from ccxt_pipeline.simulator import ExchangeSimulator, FailureRule, data, hyperliquid
from ccxt_pipeline.simulator.__main__ import config_block
from tests.conftest import opened

NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = data.HOUR_MS
DAY = data.DAY_MS
SYMBOLS = {
    "binance": ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"],
    "bybit": ["BTC/USDC:USDC", "BTC/USDT:USDT", "ETH/USDC:USDC", "ETH/USDT:USDT", "SOL/USDT:USDT"],
    "hyperliquid": ["BTC/USDC:USDC", "ETH/USDC:USDC", "KPEPE/USDC:USDC", "SOL/USDC:USDC"],
}
IDS = {
    "binance": {"BTC/USDT:USDT": "BTCUSDT", "ETH/USDT:USDT": "ETHUSDT", "SOL/USDT:USDT": "SOLUSDT"},
    "bybit": {
        "BTC/USDT:USDT": "BTCUSDT",
        "ETH/USDT:USDT": "ETHUSDT",
        "SOL/USDT:USDT": "SOLUSDT",
        "BTC/USDC:USDC": "BTCPERP",
        "ETH/USDC:USDC": "ETHPERP",
    },
    "hyperliquid": {
        "BTC/USDC:USDC": "BTC",
        "ETH/USDC:USDC": "ETH",
        "SOL/USDC:USDC": "SOL",
        "KPEPE/USDC:USDC": "kPEPE",
    },
}
BASE_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"options": {"defaultType": "swap"}},
    "bybit": {"options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}}},
    "hyperliquid": {"options": {"defaultType": "swap"}},
}
CLASSES = {"binance": "binanceusdm", "bybit": "bybit", "hyperliquid": "hyperliquid"}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make(sim: ExchangeSimulator, name: str, module: Any = ccxt_async, **extra: Any) -> Any:
    # timeout_on_exit: ccxt's close() otherwise sleeps 250 ms (a websocket workaround) per client
    config = merge(merge(BASE_OPTIONS[name], sim.ccxt_overrides(name)), {"timeout_on_exit": 0, **extra})
    return getattr(module, CLASSES[name])(config)


@contextlib.asynccontextmanager
async def client(sim: ExchangeSimulator, name: str, *, load: bool = True, **extra: Any) -> AsyncIterator[Any]:
    async with opened(make(sim, name, **extra), load=load) as exchange:
        yield exchange


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW) as simulator:
        yield simulator


def oi(exchange: str, sym: str, t: int) -> float:
    return data.open_interest(exchange, sym, t, seed=7)


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_strings(v)
    elif isinstance(value, str):
        yield value


# --- server basics -------------------------------------------------------------------------------------


async def test_binds_localhost_only_and_stops(sim: ExchangeSimulator) -> None:
    assert sim.bound_addresses
    assert all(host == "127.0.0.1" for host, _ in sim.bound_addresses)
    assert sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert sim.ws_url == f"ws://127.0.0.1:{sim.port}"
    async with aiohttp.ClientSession() as http, http.get(f"{sim.base_url}/fapi/v1/time") as resp:
        assert (await resp.json()) == {"serverTime": NOW}
    await sim.stop()
    assert sim.bound_addresses == []


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
async def test_overrides_leave_no_url_outside_localhost(sim: ExchangeSimulator, name: str) -> None:
    exchange = make(sim, name, module=ccxt_pro)  # the pro class has the websocket URLs too
    try:
        urls = list(walk_strings(exchange.urls["api"]))
        assert urls
        for url in urls:
            resolved = exchange.implode_hostname(url)
            assert resolved.startswith((f"http://127.0.0.1:{sim.port}", f"ws://127.0.0.1:{sim.port}")), url
            assert "{hostname}" not in url
        assert exchange.enableRateLimit is False
    finally:
        await exchange.close()


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
async def test_load_markets_lists_the_linear_perps(sim: ExchangeSimulator, name: str) -> None:
    async with client(sim, name) as exchange:
        markets = exchange.markets
        assert sorted(markets) == SYMBOLS[name]
        for symbol in SYMBOLS[name]:
            market = markets[symbol]
            assert market["swap"]
            assert market["linear"]
            assert market["contract"]
            assert market["active"]
            assert market["contractSize"] == 1
            assert market["id"] == IDS[name][symbol] or name == "hyperliquid"
            assert market["precision"]["amount"] is not None
            assert market["precision"]["price"] is not None
    expected = {
        "binance": {("binance", "/fapi/v1/exchangeInfo"): 1},
        # linear + status=PreLaunch
        "bybit": {("bybit", "/v5/market/instruments-info"): 2},
        "hyperliquid": {
            ("hyperliquid", "info:spotMeta"): 1,
            ("hyperliquid", "info:spotMetaAndAssetCtxs"): 1,
            ("hyperliquid", "info:metaAndAssetCtxs"): 1,
            ("hyperliquid", "info:perpDexs"): 1,
        },
    }[name]
    assert dict(sim.requests) == expected
    assert sim.unhandled == []


async def test_bybit_without_linear_only_option_still_loads(sim: ExchangeSimulator) -> None:
    config = merge({"options": {"defaultType": "swap"}, "timeout_on_exit": 0}, sim.ccxt_overrides("bybit"))
    exchange = ccxt_async.bybit(config)
    try:
        await exchange.load_markets()
        assert sorted(exchange.markets) == SYMBOLS["bybit"]
        assert (
            sim.count("bybit", "instruments-info") == 11
        )  # spot, linear x2, inverse x2, option x3 coins ...
    finally:
        await exchange.close()


async def test_precision_and_metadata(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b, client(sim, "bybit") as y, client(sim, "hyperliquid") as h:
        assert b.markets["BTC/USDT:USDT"]["precision"] == {
            "amount": 0.001,
            "price": 0.1,
            "base": 1e-08,
            "quote": 1e-08,
        }
        assert y.markets["SOL/USDT:USDT"]["precision"]["amount"] == 0.1
        assert y.markets["SOL/USDT:USDT"]["info"]["fundingInterval"] == 240
        assert h.markets["BTC/USDC:USDC"]["precision"]["amount"] == 0.00001
        assert h.markets["ETH/USDC:USDC"]["limits"]["leverage"]["max"] == 25


# --- Binance -------------------------------------------------------------------------------------------


async def test_binance_open_interest(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        for symbol, sid in IDS["binance"].items():
            result = await b.fetch_open_interest(symbol)
            assert result["openInterestAmount"] == oi("binance", sid, NOW)
            assert result["openInterestValue"] is None  # ccxt leaves it None for fapi/v1/openInterest
            assert result["timestamp"] == NOW
    assert sim.count("binance", "/fapi/v1/openInterest") == 3


async def test_binance_open_interest_history_since_until(sim: ExchangeSimulator) -> None:
    since, until = NOW - 10 * DAY, NOW - 10 * DAY + 2 * HOUR
    async with client(sim, "binance") as b:
        rows = await b.fetch_open_interest_history("ETH/USDT:USDT", "5m", since, 500, {"until": until})
    times = [r["timestamp"] for r in rows]
    assert times == data.period_grid("5m", since, until)
    assert len(times) == 25
    for r in rows:
        assert r["openInterestAmount"] == oi("binance", "ETHUSDT", r["timestamp"])
        assert r["openInterestValue"] == data.open_interest_value(
            "binance", "ETHUSDT", r["timestamp"], seed=7
        )
    assert sim.count("binance", "/futures/data/openInterestHist") == 1


async def test_binance_open_interest_history_window_and_defaults(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        with pytest.raises(ccxt.BadRequest, match="-1130"):
            await b.fetch_open_interest_history("BTC/USDT:USDT", "1h", NOW - 31 * DAY, 10)
        # since only: ccxt sends endTime = since + 30 periods; the server answers the first 30 rows from since
        since = NOW - 5 * DAY
        rows = await b.fetch_open_interest_history("BTC/USDT:USDT", "1h", since)
        assert [r["timestamp"] for r in rows] == data.period_grid("1h", since, since + 29 * HOUR)
        # neither: the latest 30 points up to now
        rows = await b.fetch_open_interest_history("BTC/USDT:USDT", "1d")
        assert [r["timestamp"] for r in rows] == data.period_grid("1d", NOW - 29 * DAY - 12 * HOUR, NOW)
        # periods on their UTC grid
        rows = await b.fetch_open_interest_history("BTC/USDT:USDT", "4h", NOW - 2 * DAY, 500, {"until": NOW})
        assert all(r["timestamp"] % (4 * HOUR) == 0 for r in rows)
        assert len(rows) == 13


async def test_binance_funding_rates(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        for symbol, sid in IDS["binance"].items():
            fr = await b.fetch_funding_rate(symbol)
            rate, next_time, _hours = data.current_funding("binance", sid, NOW, seed=7)
            assert fr["fundingRate"] == rate
            assert fr["fundingTimestamp"] == next_time
            assert fr["markPrice"] == data.mark_price("binance", sid, NOW, seed=7)
            assert fr["indexPrice"] == data.index_price("binance", sid, NOW, seed=7)
            assert fr["timestamp"] == NOW
            assert fr["interval"] is None  # premiumIndex has no interval
        rates = await b.fetch_funding_rates()
        assert sorted(rates) == SYMBOLS["binance"]
        intervals = await b.fetch_funding_intervals()
        assert {s: v["interval"] for s, v in intervals.items()} == {"SOL/USDT:USDT": "4h"}
    assert sim.count("binance", "/fapi/v1/premiumIndex") == 4
    assert sim.count("binance", "/fapi/v1/fundingInfo") == 1


async def test_binance_funding_history_follows_the_sol_interval_switch(sim: ExchangeSimulator) -> None:
    switch = data.BINANCE_SOL_SWITCH_MS
    since, until = switch - 2 * DAY, switch + DAY
    async with client(sim, "binance") as b:
        rows = await b.fetch_funding_rate_history("SOL/USDT:USDT", since, 1000, {"until": until})
    expected = data.funding_settlements("binance", "SOLUSDT", since, until, seed=7)
    assert [(r["timestamp"], r["fundingRate"]) for r in rows] == [(t, rate) for t, rate, _ in expected]
    gaps = {b["timestamp"] - a["timestamp"] for a, b in itertools.pairwise(rows)}
    assert gaps == {8 * HOUR, 4 * HOUR}
    assert [h for t, _, h in expected if t <= switch][-1] == 8
    assert next(h for t, _, h in expected if t > switch) == 4
    assert len(rows) == 6 + 1 + 6  # 8h before (incl. the switch), then 4h


async def test_binance_funding_history_paging_limits(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        rows = await b.fetch_funding_rate_history("BTC/USDT:USDT", data.HISTORY_START_MS, 1000)
        assert len(rows) == 1000
        assert rows[0]["timestamp"] == data.HISTORY_START_MS
        nxt = await b.fetch_funding_rate_history("BTC/USDT:USDT", rows[-1]["timestamp"] + 1, 1000)
        assert nxt[0]["timestamp"] == rows[-1]["timestamp"] + 8 * HOUR
        latest = await b.fetch_funding_rate_history("BTC/USDT:USDT")  # no since: the latest 100
        assert len(latest) == 100
        assert latest[-1]["timestamp"] == 8 * HOUR * (NOW // (8 * HOUR))
        with pytest.raises(ccxt.BadRequest):
            await b.fetch_funding_rate_history("BTC/USDT:USDT", None, 1001)


# --- Bybit ---------------------------------------------------------------------------------------------


async def test_bybit_open_interest(sim: ExchangeSimulator) -> None:
    async with client(sim, "bybit") as y:
        result = await y.fetch_open_interest("BTC/USDT:USDT")
    latest_hour = HOUR * (NOW // HOUR)
    assert result["timestamp"] == latest_hour
    # ccxt passes Bybit's `openInterest` through: the sum of both sides, twice the single side
    assert result["openInterestAmount"] == 2 * oi("bybit", "BTCUSDT", latest_hour)
    assert float(result["info"]["singleOpenInterest"]) == oi("bybit", "BTCUSDT", latest_hour)
    assert result["openInterestValue"] is None
    assert sim.count("bybit", "/v5/market/open-interest") == 1


async def test_bybit_open_interest_history_one_page(sim: ExchangeSimulator) -> None:
    since, until = NOW - 3 * DAY, NOW - 3 * DAY + 10 * HOUR
    async with client(sim, "bybit") as y:
        rows = await y.fetch_open_interest_history("SOL/USDT:USDT", "5m", since, 200, {"until": until})
    # 121 points in [since, until]: all fit in one page of 200
    assert [r["timestamp"] for r in rows] == data.period_grid("5m", since, until)
    assert all(
        r["openInterestAmount"] == 2 * oi("bybit", "SOLUSDT", r["timestamp"]) for r in rows
    )  # both sides
    assert all(float(r["info"]["singleOpenInterest"]) == oi("bybit", "SOLUSDT", r["timestamp"]) for r in rows)


async def test_bybit_open_interest_history_cursor_paging(sim: ExchangeSimulator) -> None:
    since, until = NOW - 2 * DAY, NOW
    expected = data.period_grid("5m", since, until)
    async with client(sim, "bybit") as y:
        # manual: the cursor of the first page comes back in the newest row's info
        first = await y.fetch_open_interest_history("BTC/USDT:USDT", "5m", since, 200, {"until": until})
        assert [r["timestamp"] for r in first] == expected[-200:]
        cursor = next(r["info"]["nextPageCursor"] for r in first if "nextPageCursor" in r["info"])
        assert cursor.startswith("lastid%3D")
        assert "lasttime%3D" in cursor
        second = await y.fetch_open_interest_history(
            "BTC/USDT:USDT", "5m", since, 200, {"until": until, "cursor": cursor}
        )
        assert [r["timestamp"] for r in second] == expected[-400:-200]
        sim.reset_counters()
        # ccxt's own cursor paging
        rows = await y.fetch_open_interest_history(
            "BTC/USDT:USDT", "5m", since, None, {"paginate": True, "until": until}
        )
    times = [r["timestamp"] for r in rows]
    assert times == sorted(expected, reverse=True)  # paginate=True returns NEWEST FIRST
    assert all(
        r["openInterestAmount"] == 2 * oi("bybit", "BTCUSDT", r["timestamp"]) for r in rows
    )  # both sides
    assert sim.count("bybit", "/v5/market/open-interest") == 3  # 200 + 200 + 177


async def test_bybit_open_interest_since_without_until_drops_the_since_row(sim: ExchangeSimulator) -> None:
    since = NOW - DAY
    async with client(sim, "bybit") as y:
        rows = await y.fetch_open_interest_history("BTC/USDT:USDT", "1h", since, 5)
    # ccxt sends endTime = since + 5h: 6 points in range, the newest 5 come back, `since` itself is lost
    assert [r["timestamp"] for r in rows] == [since + k * HOUR for k in range(1, 6)]


async def test_bybit_funding_rates_and_tickers(sim: ExchangeSimulator) -> None:
    async with client(sim, "bybit") as y:
        for symbol, sid in IDS["bybit"].items():
            fr = await y.fetch_funding_rate(symbol)
            rate, next_time, hours = data.current_funding("bybit", sid, NOW, seed=7)
            assert (fr["fundingRate"], fr["fundingTimestamp"], fr["interval"]) == (
                rate,
                next_time,
                f"{hours}h",
            )
            assert fr["markPrice"] == data.mark_price("bybit", sid, NOW, seed=7)
            assert fr["timestamp"] == NOW
        rates = await y.fetch_funding_rates()
        assert sorted(rates) == SYMBOLS["bybit"]
        assert rates["SOL/USDT:USDT"]["interval"] == "4h"
        tickers = await y.fetch_tickers()
        assert sorted(tickers) == SYMBOLS["bybit"]
        for symbol, sid in IDS["bybit"].items():
            info = tickers[symbol]["info"]
            single_value = data.open_interest_value("bybit", sid, NOW, seed=7)
            assert float(info["singleOpenInterest"]) == oi("bybit", sid, NOW)
            assert float(info["singleOpenInterestValue"]) == single_value
            assert float(info["openInterest"]) == 2 * oi("bybit", sid, NOW)  # both sides
            assert float(info["openInterestValue"]) == 2 * single_value
            assert tickers[symbol]["markPrice"] == data.mark_price("bybit", sid, NOW, seed=7)
    assert sim.count("bybit", "/v5/market/tickers") == len(IDS["bybit"]) + 2  # each rate, all rates, tickers


async def test_bybit_funding_history(sim: ExchangeSimulator) -> None:
    since, until = NOW - 20 * DAY, NOW - 10 * DAY
    async with client(sim, "bybit") as y:
        rows = await y.fetch_funding_rate_history("SOL/USDT:USDT", since, 200, {"until": until})
        expected = data.funding_settlements("bybit", "SOLUSDT", since, until, seed=7)
        assert [(r["timestamp"], r["fundingRate"]) for r in rows] == [(t, r) for t, r, _ in expected]
        assert len(rows) == 61
        assert {h for _, _, h in expected} == {4}
        # since without until: ccxt adds endTime = since + limit x interval; the newest `limit` rows come back,
        # so the settlement AT since is dropped
        on_grid = 8 * HOUR * (since // (8 * HOUR))
        rows = await y.fetch_funding_rate_history("BTC/USDT:USDT", on_grid, 3)
        assert [r["timestamp"] for r in rows] == [on_grid + k * 8 * HOUR for k in (1, 2, 3)]
    async with aiohttp.ClientSession() as http:
        url = f"{sim.base_url}/v5/market/funding/history?category=linear&symbol=BTCUSDT&startTime={since}"
        async with http.get(url) as resp:
            body = await resp.json()
    assert resp.status == 200
    assert body["retCode"] == 10001


# --- Hyperliquid ---------------------------------------------------------------------------------------


async def test_hyperliquid_open_interest(sim: ExchangeSimulator) -> None:
    async with client(sim, "hyperliquid") as h:
        many = await h.fetch_open_interests()
        one = await h.fetch_open_interest("SOL/USDC:USDC")
    assert sorted(many) == SYMBOLS["hyperliquid"]
    # ccxt passes Hyperliquid's `openInterest` through: both sides, twice the one-side series
    for symbol, coin in IDS["hyperliquid"].items():
        assert many[symbol]["openInterestAmount"] == 2 * oi("hyperliquid", coin, NOW)
        assert many[symbol]["timestamp"] is None
        assert many[symbol]["openInterestValue"] is None
    assert one["openInterestAmount"] == 2 * oi("hyperliquid", "SOL", NOW)
    assert sim.count("hyperliquid", "info:metaAndAssetCtxs") == 1 + 2


async def test_hyperliquid_funding_rates(sim: ExchangeSimulator) -> None:
    async with client(sim, "hyperliquid") as h:
        fr = await h.fetch_funding_rate("ETH/USDC:USDC")
        rates = await h.fetch_funding_rates()
    rate, _next, hours = data.current_funding("hyperliquid", "ETH", NOW, seed=7)
    assert fr["fundingRate"] == rate
    assert fr["interval"] == "1h"
    assert hours == 1
    assert fr["markPrice"] == data.mark_price("hyperliquid", "ETH", NOW, seed=7)
    assert fr["indexPrice"] == data.index_price("hyperliquid", "ETH", NOW, seed=7)  # oraclePx
    assert fr["timestamp"] is None  # and fundingTimestamp is ccxt's LOCAL next hour, not the server's
    assert sorted(rates) == SYMBOLS["hyperliquid"]


async def test_hyperliquid_funding_history_500_row_cap(sim: ExchangeSimulator) -> None:
    since = NOW - 30 * DAY
    expected = data.funding_settlements("hyperliquid", "BTC", since, NOW, seed=7)
    assert len(expected) == 721
    got: list[tuple[int, float]] = []
    async with client(sim, "hyperliquid") as h:
        cursor = since
        while True:
            page = await h.fetch_funding_rate_history("BTC/USDC:USDC", cursor, None, {"until": NOW})
            got.extend((r["timestamp"], r["fundingRate"]) for r in page)
            if len(page) < 500:
                break
            assert len(page) == 500
            cursor = page[-1]["timestamp"] + 1
    # stamped a few ms past the hour, as Hyperliquid does: the hour of NOW is not settled yet at NOW
    assert got == [(hyperliquid.funding_time("BTC", t), r) for t, r, _ in expected[:-1]]
    assert all(0 < ts % 3_600_000 < 100 for ts, _ in got)
    assert sim.count("hyperliquid", "info:fundingHistory") == 2
    assert max(abs(r) for _, r in got) <= 0.0005 / 8 + 1e-12


async def test_hyperliquid_unknown_info_type_is_422(sim: ExchangeSimulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{sim.base_url}/info", json={"type": "nope"}) as resp,
    ):
        assert resp.status == 422
    assert sim.count("hyperliquid", "info:nope") == 1


# --- knobs, counters, failures -------------------------------------------------------------------------


async def test_counters(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        sim.reset_counters()
        for _ in range(3):
            await b.fetch_open_interest("BTC/USDT:USDT")
        await b.fetch_funding_rate_history("BTC/USDT:USDT", NOW - DAY)
    assert sim.requests[("binance", "/fapi/v1/openInterest")] == 3
    assert sim.count("binance") == 4
    assert sim.count("binance", "fundingRate") == 1
    assert sim.count("bybit") == 0
    sim.reset_counters()
    assert sim.count("binance") == 0


EXPECTED_ERRORS: dict[str, dict[str, type[Exception]]] = {
    "http_500": dict.fromkeys(CLASSES, ccxt.ExchangeNotAvailable),
    "http_502": dict.fromkeys(CLASSES, ccxt.ExchangeNotAvailable),
    "http_503": dict.fromkeys(CLASSES, ccxt.ExchangeNotAvailable),
    "http_429": {
        "binance": ccxt.DDoSProtection,
        "bybit": ccxt.RateLimitExceeded,
        "hyperliquid": ccxt.RateLimitExceeded,
    },
    "timeout": dict.fromkeys(CLASSES, ccxt.RequestTimeout),
}
# one funding-history call per exchange that returns exactly 10 rows when nothing fails
CALLS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "binance": ("fetch_funding_rate_history", ("BTC/USDT:USDT", NOW - 5 * DAY, 10)),
    "bybit": ("fetch_funding_rate_history", ("BTC/USDT:USDT", NOW - 5 * DAY, 10)),
    "hyperliquid": (
        "fetch_funding_rate_history",
        ("BTC/USDC:USDC", NOW - 5 * DAY, 10, {"until": NOW - 5 * DAY + 9 * HOUR + 100}),  # +100: ms late
    ),
}


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
@pytest.mark.parametrize("kind", list(EXPECTED_ERRORS))
async def test_failure_kinds_raise_ccxt_errors(sim: ExchangeSimulator, name: str, kind: Any) -> None:
    method, args = CALLS[name]
    async with client(sim, name, timeout=300) as exchange:
        rule = sim.add_failure(FailureRule(kind=kind, exchange=name, match="funding", timeout_s=2, times=1))
        started = time.monotonic()
        with pytest.raises(EXPECTED_ERRORS[kind][name]):
            await getattr(exchange, method)(*args)
        assert time.monotonic() - started < 1.5
        assert rule.fired == 1
        assert len(await getattr(exchange, method)(*args)) == 10  # times=1: the next request is fine


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
@pytest.mark.parametrize("kind", ["malformed", "truncated"])
async def test_broken_bodies_are_swallowed_by_ccxt(sim: ExchangeSimulator, name: str, kind: Any) -> None:
    """ccxt raises NOTHING for a 200 answer whose body is not JSON (or is cut): it hands the text to the parser,
    which finds no rows. A caller must treat an empty page (or None fields) as suspicious itself."""
    method, args = CALLS[name]
    async with client(sim, name) as exchange:
        sim.add_failure(FailureRule(kind=kind, exchange=name))
        assert await getattr(exchange, method)(*args) == []
        if name == "binance":
            result = await exchange.fetch_open_interest("BTC/USDT:USDT")
            assert result["openInterestAmount"] is None
            assert result["timestamp"] is None
        if name == "bybit":
            with pytest.raises(IndexError):  # not even a ccxt error
                await exchange.fetch_open_interest("BTC/USDT:USDT")


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
async def test_short_page_halves_the_rows(sim: ExchangeSimulator, name: str) -> None:
    method, args = CALLS[name]
    async with client(sim, name) as exchange:
        sim.add_failure(FailureRule(kind="short_page", exchange=name, match="funding"))
        rows = await getattr(exchange, method)(*args)
    assert len(rows) == 5


async def test_failure_rule_times_and_every(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        rule = sim.add_failure(FailureRule(kind="http_503", match="/fapi/v1/openInterest", every=2, times=2))
        outcomes = []
        for _ in range(6):
            try:
                await b.fetch_open_interest("BTC/USDT:USDT")
                outcomes.append("ok")
            except ccxt.ExchangeNotAvailable:
                outcomes.append("fail")
        await b.fetch_funding_rates()  # does not match
        assert outcomes == ["ok", "fail", "ok", "fail", "ok", "ok"]
        assert (rule.matched, rule.fired) == (6, 2)
        sim.clear_failures()
        assert sim.requests[("binance", "/fapi/v1/openInterest")] == 6  # failed requests count too


async def test_hyperliquid_failures_match_the_info_type(sim: ExchangeSimulator) -> None:
    async with client(sim, "hyperliquid") as h:
        sim.add_failure(FailureRule(kind="http_502", exchange="hyperliquid", match="fundingHistory"))
        assert len(await h.fetch_open_interests()) == len(SYMBOLS["hyperliquid"])
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await h.fetch_funding_rate_history("BTC/USDC:USDC", NOW - DAY)


async def test_rate_limit_knob(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b, client(sim, "bybit") as y:
        sim.rate_limit = 2
        await b.fetch_open_interest("BTC/USDT:USDT")
        await b.fetch_open_interest("BTC/USDT:USDT")
        with pytest.raises(ccxt.DDoSProtection):
            await b.fetch_open_interest("BTC/USDT:USDT")
        await y.fetch_funding_rates()  # per exchange: bybit has its own budget
        await y.fetch_funding_rates()
        with pytest.raises(ccxt.RateLimitExceeded):
            await y.fetch_funding_rates()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.base_url}/fapi/v1/openInterest?symbol=BTCUSDT") as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "1"
                assert (await resp.json())["code"] == -1003
            async with http.get(f"{sim.base_url}/v5/market/tickers?category=linear") as resp:
                assert resp.status == 200
                assert resp.headers["Retry-After"] == "1"
                assert (await resp.json())["retCode"] == 10006
        sim.rate_limit = None
        await b.fetch_open_interest("BTC/USDT:USDT")


async def test_latency_knob(sim: ExchangeSimulator) -> None:
    async with client(sim, "bybit") as y:
        sim.latency_ms = 250
        started = time.monotonic()
        await y.fetch_open_interest("BTC/USDT:USDT")
        assert time.monotonic() - started >= 0.25
        sim.latency_ms = 0
        started = time.monotonic()
        await y.fetch_open_interest("BTC/USDT:USDT")
        assert time.monotonic() - started < 0.2


@pytest.mark.parametrize("name", ["binance", "bybit", "hyperliquid"])
async def test_down_knob(sim: ExchangeSimulator, name: str) -> None:
    method, args = CALLS[name]
    async with client(sim, name) as exchange:
        sim.down = True
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await getattr(exchange, method)(*args)
        sim.down = False
        assert len(await getattr(exchange, method)(*args)) == 10
    # aiohttp itself retries an idempotent GET once when a kept-alive connection is dropped: 2 or 3 requests
    assert sim.count(name, "funding") in (2, 3)


# --- data and CLI --------------------------------------------------------------------------------------


def test_data_is_deterministic_and_plausible() -> None:
    t = NOW - 12_345_678
    assert data.open_interest("binance", "BTCUSDT", t) == data.open_interest("binance", "BTCUSDT", t)
    assert data.mark_price("bybit", "ETHUSDT", t, seed=1) != data.mark_price("bybit", "ETHUSDT", t, seed=2)
    assert 60_000 < data.mark_price("binance", "BTCUSDT", t) < 120_000
    assert 2_000 < data.mark_price("hyperliquid", "ETH", t) < 4_000
    assert 100 < data.index_price("bybit", "SOLUSDT", t) < 200
    rates = [r for _, r, _ in data.funding_settlements("binance", "BTCUSDT", NOW - 200 * DAY, NOW)]
    assert min(rates) < 0 < max(rates)
    assert max(abs(r) for r in rates) <= 0.0005
    # the interval changes over time for Binance SOLUSDT only
    switch = data.BINANCE_SOL_SWITCH_MS
    assert data.funding_interval_hours("binance", "SOLUSDT", switch - 1) == 8
    assert data.funding_interval_hours("binance", "SOLUSDT", switch) == 4
    assert data.funding_interval_hours("bybit", "SOLUSDT", switch - 1) == 4
    assert data.funding_interval_hours("hyperliquid", "BTC", NOW) == 1
    # settlements start with the history and sit on their UTC grid
    first = data.funding_settlements("bybit", "BTCUSDT", 0, data.HISTORY_START_MS + DAY)
    assert [t for t, _, _ in first] == [data.HISTORY_START_MS + k * 8 * HOUR for k in range(4)]
    # the live estimate is the rate that settles next
    rate, nxt, hours = data.current_funding("binance", "SOLUSDT", switch - HOUR)
    assert (nxt, hours) == (switch, 8)
    assert rate == data.funding_rate("binance", "SOLUSDT", switch)
    assert data.funding_settlements("binance", "SOLUSDT", switch, switch) == [(switch, rate, 8)]
    # descending iteration gives the same rows
    asc = data.funding_settlements("binance", "SOLUSDT", switch - DAY, switch + DAY)
    desc = list(data.iter_settlements("binance", "SOLUSDT", switch - DAY, switch + DAY, descending=True))
    assert desc == asc[::-1]


def test_formatting_round_trips() -> None:
    for x in (0.00012345, -0.0000029, 90123.4, 5888201202.92, 0.1 + 0.2, 1e-05):
        assert float(data.fmt(x, 8)) == x
        assert float(data.fmt_short(x)) == x
        assert "e" not in data.fmt_short(x)


async def test_cli_prints_a_pasteable_config(sim: ExchangeSimulator) -> None:
    block = yaml.safe_load(config_block(sim))
    assert set(block["exchanges"]) == {"binance", "bybit", "hyperliquid"}
    for name, section in block["exchanges"].items():
        # the pasted block leaves ccxt's own rate limiter as the user has it (on by default)
        assert "enableRateLimit" not in section["ccxt"]
        assert section["ccxt"]["urls"] == sim.ccxt_overrides(name)["urls"]
    assert block["exchanges"]["bybit"]["ccxt"]["urls"]["api"]["public"] == sim.base_url
    assert (
        block["exchanges"]["hyperliquid"]["ccxt"]["urls"]["api"]["ws"]["public"]
        == f"{sim.ws_url}/hyperliquid/ws"
    )


async def test_binance_tickers_and_unsimulated_endpoints(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        tickers = await b.fetch_tickers()
        assert sorted(tickers) == SYMBOLS["binance"]
        assert tickers["ETH/USDT:USDT"]["last"] == data.mark_price("binance", "ETHUSDT", NOW, seed=7)
        with pytest.raises(ccxt.ExchangeNotAvailable):  # a local 404, never the internet
            await b.fetch_order_book("BTC/USDT:USDT")
    assert [(ex, method, path.split("?")[0]) for ex, method, path in sim.unhandled] == [
        ("binance", "GET", "/fapi/v1/depth")
    ]


async def test_bybit_instruments_info_cursor_paging(sim: ExchangeSimulator) -> None:
    seen: list[str] = []
    cursor = ""
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            url = f"{sim.base_url}/v5/market/instruments-info?category=linear&limit=1&cursor={cursor}"
            async with http.get(url) as resp:
                result = (await resp.json())["result"]
            seen.extend(row["symbol"] for row in result["list"])
            cursor = result["nextPageCursor"]
            if not cursor:
                break
        async with http.get(f"{sim.base_url}/v5/market/instruments-info?category=spot") as resp:
            assert (await resp.json())["result"]["list"] == []
    assert seen == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BTCPERP", "ETHPERP"]


async def test_stop_then_start_is_a_real_refused_outage(sim: ExchangeSimulator) -> None:
    port = sim.port
    async with client(sim, "bybit") as y:
        await sim.stop()
        with pytest.raises(ccxt.ExchangeNotAvailable):  # connection refused
            await y.fetch_funding_rates()
        await sim.start()  # same port again
        assert sim.port == port
        assert len(await y.fetch_funding_rates()) == len(SYMBOLS["bybit"])
