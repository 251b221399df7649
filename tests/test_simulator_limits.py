"""The simulator's per-IP rate limits (`ExchangeSimulator(enforce_limits=True)`), driven by the real ccxt and
by raw HTTP, on an injected clock (no sleeping: the test moves time).

The rules are each venue module's `LIMITS` table (sources there and in tests/fixtures/SOURCES.md):
Binance REQUEST_WEIGHT 2400/min (fixed minute, `X-MBX-USED-WEIGHT-1M`), openInterestHist 1000/5min,
fundingRate+fundingInfo 500/5min, 429 + Retry-After then a 418 ban; Bybit 600 requests per 5 s, then HTTP 403
"access too frequent" for 10 minutes; Hyperliquid 1200 weight/min (info 20, allMids 2, +1 per 20
fundingHistory rows), HTTP 429, counted as a token bucket (1200, refilled at 20 a second, starting full) as
NautilusTrader's Hyperliquid adapter counts it (Hyperliquid does not say).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt
import pytest

from ccxt_pipeline.simulator import ExchangeSimulator
from ccxt_pipeline.simulator.limits import Limiter, Rule, VenueLimits
from tests.test_simulator import NOW, client

T0 = 1_800_000_000.0
"""A clock reading on a 5-minute boundary (so the fixed windows start with the test)."""


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW, enforce_limits=True, limit_clock=clock) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> tuple[int, dict[str, str], str]:
    async with http.get(url, params={k: str(v) for k, v in params.items()}) as r:
        return r.status, dict(r.headers), await r.text()


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, str], str]:
    async with http.post(url, json=body) as r:
        return r.status, dict(r.headers), await r.text()


async def statuses(calls: list[Any], batch: int = 50) -> list[int]:
    """Run the request coroutines a batch at a time; their HTTP statuses in order."""
    out: list[int] = []
    for k in range(0, len(calls), batch):
        out += [status for status, _h, _t in await asyncio.gather(*calls[k : k + batch])]
    return out


# --- Binance --------------------------------------------------------------------------------------------


async def test_binance_weight_header_and_429_then_the_next_minute(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    base = sim.base_url
    status, headers, _ = await get(http, f"{base}/fapi/v1/premiumIndex", symbol="BTCUSDT")
    assert status == 200
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    status, headers, _ = await get(http, f"{base}/fapi/v1/premiumIndex")  # all symbols: weight 10
    assert headers["X-MBX-USED-WEIGHT-1M"] == "11"
    # 24hr tickers of all symbols weigh 40: 59 more fit (11 + 59 x 40 = 2371), the next would pass 2400
    assert set(await statuses([get(http, f"{base}/fapi/v1/ticker/24hr") for _ in range(59)])) == {200}
    assert sim.used_weight("binance") == 2371
    clock.t += 45.0
    status, headers, body = await get(http, f"{base}/fapi/v1/ticker/24hr")
    assert status == 429
    assert headers["Retry-After"] == "15"  # until the minute ends
    assert headers["X-MBX-USED-WEIGHT-1M"] == "2371"
    assert '"code":-1003' in body
    # a lighter request still fits in what is left
    assert (await get(http, f"{base}/fapi/v1/openInterest", symbol="BTCUSDT"))[0] == 200
    assert sim.rejections("binance") == 1
    assert sim.rejections("binance", 429) == 1
    clock.t += 15.0  # the next minute
    status, headers, _ = await get(http, f"{base}/fapi/v1/ticker/24hr")
    assert status == 200
    assert headers["X-MBX-USED-WEIGHT-1M"] == "40"


async def test_binance_repeated_429s_become_a_418_ban(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/fapi/v1/ticker/24hr"
    assert set(await statuses([get(http, url) for _ in range(60)])) == {200}  # 2400: the whole minute
    assert await statuses([get(http, url) for _ in range(9)], batch=1) == [429] * 9
    status, headers, body = await get(http, url)  # the 10th refusal within a minute
    assert status == 418
    assert headers["Retry-After"] == "120"
    assert "IP banned until" in body
    clock.t += 119.0  # the weight window has reset, the ban has not
    assert (await get(http, f"{sim.base_url}/fapi/v1/time"))[0] == 418
    clock.t += 1.0
    assert (await get(http, f"{sim.base_url}/fapi/v1/time"))[0] == 200
    assert sim.rejections("binance", 429) == 9
    assert sim.rejections("binance", 418) == 2


async def test_binance_endpoint_limits_count_requests(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    base = sim.base_url
    funding = [get(http, f"{base}/fapi/v1/fundingRate", symbol="BTCUSDT", limit=1) for _ in range(499)]
    assert set(await statuses([*funding, get(http, f"{base}/fapi/v1/fundingInfo")])) == {200}
    status, headers, _ = await get(http, f"{base}/fapi/v1/fundingInfo")  # shares fundingRate's 500
    assert status == 429
    assert headers["Retry-After"] == "300"
    assert headers["X-MBX-USED-WEIGHT-1M"] == "0"  # both weigh 0 against REQUEST_WEIGHT
    hist = [
        get(http, f"{base}/futures/data/openInterestHist", symbol="BTCUSDT", period="1h", limit=1)
        for _ in range(1001)
    ]
    assert (await statuses(hist))[-2:] == [200, 429]
    assert sim.rejections("binance", 429) == 2
    clock.t += 300.0
    assert (await get(http, f"{base}/fapi/v1/fundingInfo"))[0] == 200


async def test_ccxt_binance_raises_ddos_protection_on_the_429(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        assert sim.used_weight("binance") == 1  # load_markets: exchangeInfo
        for _ in range(59):
            await b.fetch_tickers()  # GET /fapi/v1/ticker/24hr without symbol: weight 40
        with pytest.raises(ccxt.DDoSProtection):
            await b.fetch_tickers()
    assert sim.rejections("binance", 429) == 1


# --- Bybit ----------------------------------------------------------------------------------------------


async def test_bybit_403_and_a_ten_minute_ban(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/v5/market/time"
    status, headers, _ = await get(http, url)
    assert status == 200
    assert headers["X-Bapi-Limit"] == "600"
    assert headers["X-Bapi-Limit-Status"] == "599"
    assert headers["X-Bapi-Limit-Reset-Timestamp"] == str(int(T0 * 1000))
    clock.t += 1.0
    assert set(await statuses([get(http, url) for _ in range(599)])) == {200}
    status, headers, body = await get(http, url)
    assert status == 403
    assert body == "access too frequent"
    assert headers["Retry-After"] == "600"
    clock.t += 5.0  # the window has slid past every request, but the IP stays banned
    assert (await get(http, url))[0] == 403
    clock.t += 595.0
    status, headers, _ = await get(http, url)
    assert status == 200
    assert headers["X-Bapi-Limit-Status"] == "599"
    assert sim.rejections("bybit", 403) == 2
    assert sim.rejections() == 2


async def test_bybit_window_slides(sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/v5/market/time"
    assert set(await statuses([get(http, url) for _ in range(300)])) == {200}
    clock.t += 3.0
    assert set(await statuses([get(http, url) for _ in range(300)])) == {200}
    clock.t += 2.0  # the first 300 left the 5-second window
    assert set(await statuses([get(http, url) for _ in range(300)])) == {200}
    assert sim.rejections("bybit") == 0


async def test_ccxt_bybit_raises_rate_limit_exceeded_on_the_403(
    sim: ExchangeSimulator, http: aiohttp.ClientSession
) -> None:
    await statuses([get(http, f"{sim.base_url}/v5/market/time") for _ in range(600)])
    async with client(sim, "bybit", load=False) as b:
        with pytest.raises(ccxt.RateLimitExceeded):
            await b.load_markets()


# --- Hyperliquid -----------------------------------------------------------------------------------------


async def test_hyperliquid_weights_and_429(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/info"
    assert (await post(http, url, {"type": "allMids"}))[0] == 200  # weight 2
    assert sim.used_weight("hyperliquid") == 2
    # 500 funding rows: 20 + 500 // 20 = 45
    start = NOW - 600 * 3_600_000
    assert (await post(http, url, {"type": "fundingHistory", "coin": "BTC", "startTime": start}))[0] == 200
    assert sim.used_weight("hyperliquid") == 47
    metas = [post(http, url, {"type": "metaAndAssetCtxs"}) for _ in range(57)]  # 20 each: 1187
    assert set(await statuses(metas)) == {200}
    status, headers, _ = await post(http, url, {"type": "meta"})  # 13 tokens left: 7 more in 0.35 s
    assert status == 429
    assert headers["Retry-After"] == "1"
    assert (await post(http, url, {"type": "allMids"}))[0] == 200  # 1189: 2 still fits
    assert sim.rejections("hyperliquid", 429) == 1
    clock.t += 60.0  # the bucket is full again
    assert (await post(http, url, {"type": "meta"}))[0] == 200
    async with client(sim, "hyperliquid", load=False) as h:
        for _ in range(59):  # with the meta above: 60 x 20 = 1200, the whole bucket
            await h.public_post_info({"type": "meta"})
        with pytest.raises(ccxt.RateLimitExceeded):
            await h.public_post_info({"type": "meta"})


async def test_hyperliquid_full_bucket_admits_1200_at_once_then_refills_20_a_second(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/info"
    metas = [post(http, url, {"type": "meta"}) for _ in range(60)]  # 60 x 20 = 1200 at one instant
    assert set(await statuses(metas)) == {200}
    assert sim.used_weight("hyperliquid") == 1200
    refusal = sim.limiter("hyperliquid").admit("info:meta", 20)
    assert refusal is not None
    assert refusal.retry_after_s == pytest.approx(1.0)  # 20 tokens at 1200 / 60 a second
    status, headers, _ = await post(http, url, {"type": "meta"})
    assert status == 429
    assert headers["Retry-After"] == "1"
    clock.t += 0.5
    assert (await post(http, url, {"type": "meta"}))[0] == 429  # 10 tokens: not yet
    clock.t += 0.5
    assert (await post(http, url, {"type": "meta"}))[0] == 200
    assert (await post(http, url, {"type": "meta"}))[0] == 429
    assert sim.rejections("hyperliquid", 429) == 3  # the three HTTP 429s (not the direct `admit`)
    clock.t += 3600.0  # an idle hour refills to the capacity, no further
    assert sim.used_weight("hyperliquid") == 0
    assert set(await statuses([post(http, url, {"type": "meta"}) for _ in range(60)])) == {200}
    assert (await post(http, url, {"type": "meta"}))[0] == 429


async def test_hyperliquid_items_weight_is_taken_from_the_bucket_after_the_answer(
    sim: ExchangeSimulator, clock: Clock, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/info"
    start = NOW - 600 * 3_600_000
    assert (await post(http, url, {"type": "fundingHistory", "coin": "BTC", "startTime": start}))[0] == 200
    assert sim.used_weight("hyperliquid") == 45  # 20 on admission + 500 rows // 20 after the answer
    metas = [post(http, url, {"type": "meta"}) for _ in range(57)]
    assert set(await statuses(metas)) == {200}  # 1185 used, 15 tokens left
    refusal = sim.limiter("hyperliquid").admit("info:meta", 20)
    assert refusal is not None
    assert refusal.retry_after_s == pytest.approx(0.25)
    clock.t += 0.25
    assert (await post(http, url, {"type": "meta"}))[0] == 200
    assert sim.used_weight("hyperliquid") == 1200


# --- within the limits, and off ------------------------------------------------------------------------


async def test_a_paced_whole_market_run_is_never_refused(clock: Clock) -> None:
    """A history walk over every symbol of the full market, paced to the documented limits: no rejection."""
    sim = ExchangeSimulator(seed=7, now_ms=NOW, enforce_limits=True, full_market=True, limit_clock=clock)
    async with sim:
        async with client(sim, "binance") as b:
            for inst in sim.instruments("binance"):
                await b.fetch_funding_rate_history(inst.ccxt_symbol, NOW - 30 * 86_400_000, 100)
                clock.t += 0.6  # 500 per 5 minutes
            assert sim.used_weight("binance", "fundingRate") <= 500
        async with client(sim, "bybit") as y:
            for inst in sim.instruments("bybit"):
                await y.fetch_open_interest_history(inst.ccxt_symbol, "1h", NOW - 86_400_000, 24)
                clock.t += 0.0083  # 600 per 5 s
        async with client(sim, "hyperliquid") as h:
            for inst in sim.instruments("hyperliquid"):
                await h.fetch_funding_rate_history(inst.ccxt_symbol, NOW - 86_400_000)
                clock.t += 2.0  # 20 + 1 per 20 rows: 40 weight a call, 1200 per minute
        assert sim.rejections() == 0


async def test_limits_are_off_by_default(http: aiohttp.ClientSession) -> None:
    async with ExchangeSimulator(seed=7, now_ms=NOW) as sim:
        assert sim.enforce_limits is False
        statuses_ = await statuses([get(http, f"{sim.base_url}/fapi/v1/ticker/24hr") for _ in range(61)])
        status, headers, _ = await get(http, f"{sim.base_url}/fapi/v1/ticker/24hr")
        assert set(statuses_) == {200}
        assert status == 200
        assert "X-MBX-USED-WEIGHT-1M" not in headers
        assert sim.rejections() == 0
        sim.enforce_limits = True  # a knob, switchable at any time
        assert (await get(http, f"{sim.base_url}/fapi/v1/time"))[1]["X-MBX-USED-WEIGHT-1M"] == "1"


def test_limiter_windows() -> None:
    clock = Clock()
    limiter = Limiter(
        VenueLimits(
            rules=(Rule("w", 10, 60.0, "fixed"), Rule("s", 3, 5.0, "sliding", paths=("/a",), weighted=False))
        ),
        clock,
    )
    assert limiter.admit("/a", 4) is None
    assert limiter.admit("/a", 4) is None
    refusal = limiter.admit("/b", 4)  # 8 + 4 > 10
    assert refusal is not None
    assert refusal.rule is not None
    assert refusal.rule.name == "w"
    assert limiter.admit("/b", 2) is None
    clock.t += 1.0
    refusal = limiter.admit("/a", 0)  # the sliding rule: a third /a fits, a fourth does not
    assert refusal is None
    refusal = limiter.admit("/a", 0)
    assert refusal is not None
    assert refusal.retry_after_s == pytest.approx(4.0)
    clock.t += 4.0
    assert limiter.admit("/a", 0) is None
    assert limiter.used("s") == 2


def test_limiter_bucket() -> None:
    """A token bucket as NautilusTrader's Hyperliquid `WeightedLimiter`: starts full, refills continuously,
    admits while it holds the cost, an after-answer charge empties it but never below 0."""
    clock = Clock()
    limiter = Limiter(VenueLimits(rules=(Rule("b", 1200, 60.0, "bucket"),)), clock)
    assert all(limiter.admit("/x", 20) is None for _ in range(60))
    refusal = limiter.admit("/x", 20)
    assert refusal is not None
    assert refusal.rule is not None
    assert refusal.rule.name == "b"
    assert refusal.retry_after_s == pytest.approx(1.0)
    assert limiter.reset_at("b") == pytest.approx(T0 + 60.0)  # full again after a minute
    clock.t += 0.25
    refusal = limiter.admit("/x", 20)
    assert refusal is not None
    assert refusal.retry_after_s == pytest.approx(0.75)
    assert limiter.used("b") == 1195
    clock.t += 0.75
    assert limiter.admit("/x", 20) is None
    limiter.charge("/x", 500)  # more than the bucket holds: it is empty, not in debt
    assert limiter.used("b") == 1200
    clock.t += 1.0
    assert limiter.admit("/x", 20) is None
    clock.t += 120.0
    assert limiter.used("b") == 0
    assert limiter.admit("/x", 1201) is not None  # more than the capacity never fits
