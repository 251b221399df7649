"""Collection, stream sources and the daemon's client pool through the client seam: the real ccxt and our whole
stack, no sockets, no sleeps.

Clients come from `tests.fake_transport.client_factory`: real `ExchangeClient`s whose ccxt HTTP layer answers
from the recorded bodies in tests/fixtures/ (markets) and from rows shaped exactly like the exchanges'
documented examples, one per point of a series (history). Faults are answers an exchange really gives (its
documented error bodies, a 503, a page cut short, a timeout). The retry layer's clock is virtual, so retry
waits cost nothing. The simulator keeps the end-to-end tests (tests/test_fetch.py, tests/test_holes.py).

Exchange facts the fakes follow (tests/fixtures/SOURCES.md, "Client-seam unit tests"):
- Binance `GET /futures/data/openInterestHist`: `limit` max 500; rows as the docs example
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics
- Binance `GET /fapi/v1/fundingRate`: `limit` max 1000; "If the number of data between startTime and endTime is
  larger than limit, return as startTime + limit", ascending
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History
- Bybit `GET /v5/market/funding/history`: `limit` [1, 200]; with `endTime` the rows before it, newest first
  https://bybit-exchange.github.io/docs/v5/market/history-fund-rate
- Hyperliquid `fundingHistory`: at most 500 rows a call from `startTime`, oldest first (docs/exchanges.md;
  https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals)
- Binance error -1001 "Internal error; unable to process your request. Please try again." is temporary
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, OPEN_INTEREST, CatalogReader, DataKind
from ccxt_pipeline.collect.run import FetchReport, FetchRequest, run_fetch
from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.settings import ExchangeSettings, Settings, StreamSettings
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.source import run_source
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import VENUES
from tests.fake_transport import (
    TIMEOUT,
    Answer,
    NotRecorded,
    RecordedTransport,
    Request,
    Response,
    VirtualClock,
    client_factory,
    recorded,
)

NOW_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
NOW_NS = NOW_MS * NS_PER_MS
DAY_MS = 86_400_000
STEP_MS = 5 * 60_000  # the 5m period
FAST = RetryPolicy(attempts=4, base_s=0.5, max_s=4.0, max_retry_after_s=120.0, max_total_s=180.0)

BINANCE_OI = "BTCUSDT-PERP.BINANCE"
OI_ROW = json.loads(recorded("exchange-docs/binance-usdm/openInterestHist.json"))[0]
BINANCE_FUNDING_ROW = json.loads(recorded("exchange-docs/binance-usdm/fundingRate.json"))[0]
BYBIT_FUNDING_ROW = json.loads(recorded("nautilus/bybit/funding-history.json"))["result"]["list"][0]
BYBIT_FUNDING = json.loads(recorded("nautilus/bybit/funding-history.json"))
HL_FUNDING_ROW = json.loads(recorded("exchange-docs/hyperliquid/fundingHistory.json"))[0]
BINANCE_1001 = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}

Fault = Callable[[Request], Answer | None]
"""Looks at a request first: an answer to give instead, or None to let the exchange answer."""


class Exchanges:
    """Binance USD-M, Bybit linear and Hyperliquid as far as these tests need them: markets from recorded
    bodies, history rows generated on each exchange's grid in its documented shape, paging and caps."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.oi_missing: tuple[int, int] | None = None
        """Binance serves no open-interest row in this [start, end] (ms)."""
        self.transport = RecordedTransport(self)

    def __call__(self, request: Request) -> Answer:
        for fault in self.faults:
            answer = fault(request)
            if answer is not None:
                return answer
        host = request.url.split("/")[2]
        if host.endswith("binance.com"):
            return self.binance(request)
        if host.endswith("bybit.com"):
            return self.bybit(request)
        if host.endswith("hyperliquid.xyz"):
            return self.hyperliquid(request)
        raise NotRecorded(request.url)

    def binance(self, request: Request) -> Answer:
        q = request.query
        if request.path == "/fapi/v1/exchangeInfo":
            return recorded("nautilus/binance/exchangeInfo.json")
        if request.path == "/futures/data/openInterestHist":
            assert (q["symbol"], q["period"]) == ("BTCUSDT", "5m")
            assert int(q["limit"]) <= 500, q
            times = grid(int(q["startTime"]), int(q["endTime"]), STEP_MS)
            if self.oi_missing is not None:
                a, b = self.oi_missing
                times = [t for t in times if not a <= t <= b]
            rows = [oi_row(t) for t in times[: int(q["limit"])]]
            return json.dumps(rows)
        if request.path == "/fapi/v1/fundingRate":
            assert int(q["limit"]) <= 1000, q
            times = grid(int(q["startTime"]), int(q["endTime"]), 8 * 3_600_000)[: int(q["limit"])]
            return [{**BINANCE_FUNDING_ROW, "fundingTime": t, "fundingRate": rate(t)} for t in times]
        raise NotRecorded(request.url)

    def bybit(self, request: Request) -> Answer:
        q = request.query
        if request.path == "/v5/market/instruments-info":
            return recorded("exchange-docs/bybit/instruments-info-linear.json")
        if request.path == "/v5/market/funding/history":
            assert (q["category"], q["symbol"]) == ("linear", "BTCUSDT")
            assert 1 <= int(q.get("limit", "200")) <= 200, q
            times = grid(int(q["startTime"]), int(q["endTime"]), 8 * 3_600_000)
            newest = sorted(times, reverse=True)[: int(q.get("limit", "200"))]
            rows = [
                {**BYBIT_FUNDING_ROW, "fundingRateTimestamp": str(t), "fundingRate": rate(t)} for t in newest
            ]
            return {**BYBIT_FUNDING, "result": {**BYBIT_FUNDING["result"], "list": rows}}
        raise NotRecorded(request.url)

    def hyperliquid(self, request: Request) -> Answer:
        body = request.json or {}
        if body.get("type") == "metaAndAssetCtxs":
            return recorded("exchange-docs/hyperliquid/metaAndAssetCtxs.json")
        if body.get("type") == "fundingHistory":
            assert body["coin"] == "BTC"
            end = body.get("endTime", NOW_MS)
            # Settlements are stamped a little after the hour (76 ms in the docs example).
            hours = grid(body["startTime"] - 76, end - 76, 3_600_000)[:500]
            return [{**HL_FUNDING_ROW, "coin": "BTC", "time": t + 76, "fundingRate": rate(t)} for t in hours]
        raise NotRecorded(request.url)


def grid(start_ms: int, end_ms: int, step_ms: int) -> list[int]:
    """The points of a series on its grid in [start, end]."""
    first = -(-start_ms // step_ms) * step_ms
    return list(range(first, min(end_ms, NOW_MS) + 1, step_ms))


def oi_row(t: int) -> dict[str, Any]:
    amount = 20_000 + (t // STEP_MS) % 1000
    return {
        **OI_ROW,
        "sumOpenInterest": f"{amount}.5",
        "sumOpenInterestValue": f"{amount * 90_000}.5",
        "timestamp": t,
    }


def rate(t: int) -> str:
    return f"{((t // 3_600_000) % 7 - 3) * 1e-5:.8f}"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    fake = VirtualClock()
    monkeypatch.setattr(retry, "CLOCK", fake)
    return fake


@pytest.fixture
def venues(clock: VirtualClock) -> Iterator[Exchanges]:
    ex = Exchanges()
    yield ex
    assert ex.transport.unanswered == []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(catalog_path=tmp_path / "catalog", exchanges={n: ExchangeSettings() for n in VENUES})


async def fetch(
    settings: Settings, venues: Exchanges, data: DataKind, start_ms: int, end_ms: int, *exchanges: str
) -> FetchReport:
    request = FetchRequest(
        data, ["BTCUSDT-PERP"], exchanges or ("binance",), start=start_ms * NS_PER_MS, end=end_ms * NS_PER_MS
    )
    return await run_fetch(
        settings, request, policy=FAST, clock=lambda: NOW_NS, clients=client_factory(venues.transport)
    )


def stored(settings: Settings, kind: Any = OPEN_INTEREST, iid: str = BINANCE_OI) -> list[int]:
    """The stored `ts_event` of a series, in ms."""
    table = CatalogReader(settings.catalog_path).query(kind, [iid])
    return [t // NS_PER_MS for t in table.column("ts_event").to_pylist()]


def oi_pages(venues: Exchanges) -> list[tuple[int, int]]:
    return [
        (int(r.query["startTime"]), int(r.query["endTime"]))
        for r in venues.transport.calls("/futures/data/openInterestHist")
    ]


def first_n(n: int, path: str, answer: Callable[[Request], Answer]) -> Fault:
    """A fault on the first `n` requests to `path`."""
    left = [n]

    def fault(request: Request) -> Answer | None:
        if request.path != path or left[0] <= 0:
            return None
        left[0] -= 1
        return answer(request)

    return fault


# --- open-interest history ---------------------------------------------------------------------------------


async def test_oi_history_a_page_cut_short_is_asked_again(settings: Settings, venues: Exchanges) -> None:
    start, end = NOW_MS - DAY_MS, NOW_MS
    whole = venues.binance

    def cut_short(request: Request) -> Answer:  # the first answer silently stops after 100 rows
        return json.dumps(json.loads(str(whole(request)))[:100])

    venues.faults.append(first_n(1, "/futures/data/openInterestHist", cut_short))
    report = await fetch(settings, venues, OPEN_INTEREST, start, end)
    (binance,) = report.exchanges
    assert binance.error is None
    assert stored(settings) == grid(start, end, STEP_MS)  # 289 points, each once, in order
    assert binance.written == 289
    pages = oi_pages(venues)
    assert len(pages) == 2
    assert pages[1] == (start + 99 * STEP_MS + 1, end)  # asked again from just after the last row served
    assert binance.gaps == []


async def test_oi_history_a_failing_page_is_retried(
    settings: Settings, venues: Exchanges, clock: VirtualClock
) -> None:
    start, end = NOW_MS - DAY_MS, NOW_MS
    venues.faults.append(
        first_n(2, "/futures/data/openInterestHist", lambda r: Response.of(BINANCE_1001, 500))
    )
    venues.faults.append(first_n(1, "/futures/data/openInterestHist", lambda r: TIMEOUT))
    report = await fetch(settings, venues, OPEN_INTEREST, start, end)
    assert report.exchanges[0].error is None
    assert stored(settings) == grid(start, end, STEP_MS)
    assert len(oi_pages(venues)) == 4  # -1001, -1001, a timeout, then the page
    assert len(clock.sleeps) == 3


async def test_oi_history_a_page_failing_for_good_is_a_hole_and_the_rest_is_stored(
    settings: Settings, venues: Exchanges, clock: VirtualClock
) -> None:
    start, end = NOW_MS - 4 * DAY_MS, NOW_MS  # 1,153 points: three windows of at most 500
    middle = (start + 500 * STEP_MS, start + 999 * STEP_MS)

    def down(request: Request) -> Answer | None:
        if request.path == "/futures/data/openInterestHist" and int(request.query["startTime"]) == middle[0]:
            return Response.of(BINANCE_1001, 500)
        return None

    venues.faults.append(down)
    report = await fetch(settings, venues, OPEN_INTEREST, start, end)
    (binance,) = report.exchanges
    assert binance.error is not None
    assert binance.error.startswith(
        "binance: 1 of 3 history pages failed (BTCUSDT-PERP.BINANCE); the rest is stored and a rerun "
        "fetches what is missing. Last error: binance: gave up after 4 tries"
    )
    assert "\n" not in binance.error
    assert binance.gaps == []  # a failure is not a gap: the rerun asks again
    expected = [t for t in grid(start, end, STEP_MS) if not middle[0] <= t <= middle[1]]
    assert stored(settings) == expected
    assert len(clock.sleeps) == FAST.attempts - 1


async def test_a_hole_in_the_middle_of_stored_history_is_fetched_and_only_it(
    settings: Settings, venues: Exchanges
) -> None:
    start, end = NOW_MS - 4 * DAY_MS, NOW_MS
    hole = (start + 700 * STEP_MS, start + 760 * STEP_MS)

    def down(request: Request) -> Answer | None:
        if request.path != "/futures/data/openInterestHist":
            return None
        a, b = int(request.query["startTime"]), int(request.query["endTime"])
        return Response.of(BINANCE_1001, 500) if a <= hole[1] and b >= hole[0] else None

    # A first run stores everything but one page; the second window is split around the hole by
    # refusing exactly the requests that reach into it, so what is stored has a hole in its middle.
    venues.faults.append(down)
    first = await fetch(settings, venues, OPEN_INTEREST, start, end)
    assert first.exchanges[0].error is not None
    before = stored(settings)
    assert (before[0], before[-1]) == (start, end)
    missing = sorted(set(grid(start, end, STEP_MS)) - set(before))
    assert missing  # a hole strictly inside the stored range
    venues.faults.clear()
    venues.transport.requests.clear()

    second = await fetch(settings, venues, OPEN_INTEREST, start, end)
    (binance,) = second.exchanges
    assert binance.error is None
    assert stored(settings) == grid(start, end, STEP_MS)
    assert binance.written == len(missing)
    for a, b in oi_pages(venues):  # the planner asks only for what is not stored
        assert missing[0] <= a <= b <= missing[-1], (a, b, missing[0], missing[-1])


async def test_a_range_the_exchange_has_no_rows_for_is_recorded_once_and_not_asked_again(
    settings: Settings, venues: Exchanges
) -> None:
    start, end = NOW_MS - DAY_MS, NOW_MS
    venues.oi_missing = (start + 100 * STEP_MS, start + 111 * STEP_MS)  # an hour the exchange never served
    report = await fetch(settings, venues, OPEN_INTEREST, start, end)
    (binance,) = report.exchanges
    assert binance.error is None
    assert [(g.ts_event // NS_PER_MS, g.end_ns // NS_PER_MS) for g in binance.gaps] == [venues.oi_missing]
    gaps = CatalogReader(settings.catalog_path).query(COVERAGE_GAP, [BINANCE_OI])
    assert gaps.num_rows == 1
    venues.transport.requests.clear()
    again = await fetch(settings, venues, OPEN_INTEREST, start, end)
    assert again.exchanges[0].error is None
    assert oi_pages(venues) == []  # stored or known to be missing: nothing to ask
    assert CatalogReader(settings.catalog_path).query(COVERAGE_GAP, [BINANCE_OI]).num_rows == 1


# --- funding history ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "path", "cap", "interval_h", "days"),
    [
        ("binance", "/fapi/v1/fundingRate", 1000, 8, 400),  # 1,200 settlements
        ("bybit", "/v5/market/funding/history", 200, 8, 120),  # 360
        ("hyperliquid", "fundingHistory", 500, 1, 45),  # 1,080
    ],
)
async def test_funding_history_pages_across_the_cap(
    settings: Settings, venues: Exchanges, exchange: str, path: str, cap: int, interval_h: int, days: int
) -> None:
    start, end = NOW_MS - days * DAY_MS, NOW_MS
    report = await fetch(settings, venues, FUNDING_RATE, start, end, exchange)
    (rep,) = report.exchanges
    assert (rep.error, rep.gaps) == (None, [])
    iid = instrument_for(exchange, "BTC/USDC:USDC" if exchange == "hyperliquid" else "BTC/USDT:USDT")
    table = CatalogReader(settings.catalog_path).query(FUNDING_RATE, [iid.instrument_id])
    stamp = 76 if exchange == "hyperliquid" else 0
    expected = [t + stamp for t in grid(start - stamp, end - stamp, interval_h * 3_600_000)]
    assert len(expected) > cap
    assert [t // NS_PER_MS for t in table.column("ts_event").to_pylist()] == expected
    assert set(table.column("interval_minutes").to_pylist()) == {interval_h * 60}  # the first one too
    pages = venues.transport.calls(path)
    assert len(pages) > len(expected) // cap
    assert len(pages) <= 2 * (len(expected) // cap + 2)  # paging, not a request per row


async def test_funding_history_a_failed_page_leaves_a_hole_the_rerun_fills(
    settings: Settings, venues: Exchanges
) -> None:
    start, end = NOW_MS - 60 * DAY_MS, NOW_MS  # 1,441 hourly settlements: 4 pages of 500
    down_at = start + 30 * DAY_MS

    def down(request: Request) -> Answer | None:  # every request reaching `down_at` answers 502
        body = request.json or {}
        if body.get("type") == "fundingHistory" and body["startTime"] <= down_at <= body["endTime"]:
            return Response("", 502)
        return None

    venues.faults.append(down)
    first = await fetch(settings, venues, FUNDING_RATE, start, end, "hyperliquid")
    assert first.exchanges[0].error is not None
    assert "history pages failed" in first.exchanges[0].error
    iid = "BTC-USD-PERP.HYPERLIQUID"
    expected = [t + 76 for t in grid(start - 76, end - 76, 3_600_000)]
    kept = stored(settings, FUNDING_RATE, iid)
    assert 0 < len(kept) < len(expected)
    assert not [t for t in kept if abs(t - down_at) <= 3_600_000]  # the page holding `down_at` is a hole
    venues.faults.clear()
    second = await fetch(settings, venues, FUNDING_RATE, start, end, "hyperliquid")
    assert second.exchanges[0].error is None
    assert stored(settings, FUNDING_RATE, iid) == expected
    assert second.exchanges[0].written == len(expected) - len(kept)


# --- exchanges kept apart, a failing writer ----------------------------------------------------------------


async def test_an_exchange_that_cannot_load_its_markets_leaves_the_others(
    settings: Settings, venues: Exchanges
) -> None:
    venues.faults.append(
        lambda r: Response("<html>503</html>", 503) if r.path == "/fapi/v1/exchangeInfo" else None
    )
    report = await fetch(settings, venues, FUNDING_RATE, NOW_MS - 10 * DAY_MS, NOW_MS, "binance", "bybit")
    binance, bybit = report.exchanges
    assert "gave up after 4 tries" in (binance.error or "")
    assert bybit.error is None
    expected = grid(NOW_MS - 10 * DAY_MS, NOW_MS, 8 * 3_600_000)
    assert stored(settings, FUNDING_RATE, "BTCUSDT-LINEAR.BYBIT") == expected


async def test_a_full_disk_during_a_fetch_is_one_line_and_the_rerun_stores_everything(
    settings: Settings, venues: Exchanges, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq  # the module the catalog's file layer writes with

    real = pq.write_table
    full = [True]

    def write_table(*args: Any, **kwargs: Any) -> None:  # the disk, not our code, refuses the write
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **kwargs)

    monkeypatch.setattr("ccxt_pipeline.catalog.files.pq.write_table", write_table)
    start, end = NOW_MS - DAY_MS, NOW_MS
    report = await fetch(settings, venues, OPEN_INTEREST, start, end)
    (binance,) = report.exchanges
    assert binance.error is not None
    assert "\n" not in binance.error
    assert binance.error.startswith("cannot write the catalog (No space left on device): "), binance.error
    assert stored(settings) == []
    full[0] = False
    again = await fetch(settings, venues, OPEN_INTEREST, start, end)
    assert again.exchanges[0].error is None
    assert stored(settings) == grid(start, end, STEP_MS)


# --- streams: the source's client comes from the same seam -------------------------------------------------


def tap_for(name: str, health: ExchangeHealth) -> Tap:
    return Tap(VENUES[name], health, lambda records: None, lambda: NOW_NS, [f"MARKET.{name.upper()}"])


async def test_stream_source_retries_markets_that_will_not_load_until_stopped(venues: Exchanges) -> None:
    venues.faults.append(lambda r: Response("", 503) if r.path == "/fapi/v1/exchangeInfo" else None)
    health = ExchangeHealth("binance")
    stop = asyncio.Event()
    clients = client_factory(venues.transport)
    source = asyncio.create_task(
        run_source(
            tap_for("binance", health),
            ExchangeSettings(),
            StreamSettings(),
            FAST,
            None,
            stop,
            clients=clients,
        )
    )
    try:
        async with asyncio.timeout(30):
            while health.errors == 0:  # noqa: ASYNC110 (a counter the source bumps; no event to wait on)
                await asyncio.sleep(0)
    finally:
        stop.set()
        await source
    assert "gave up after 4 tries" in (health.last_error or "")
    assert len(venues.transport.calls("/fapi/v1/exchangeInfo")) >= FAST.attempts
    assert not health.connected


async def test_stream_source_with_no_listed_instrument_opens_no_socket(venues: Exchanges) -> None:
    health = ExchangeHealth("bybit")
    missing = instrument_for("bybit", "DOGE/USDT:USDT")
    stop = asyncio.Event()
    await run_source(
        tap_for("bybit", health),
        ExchangeSettings(),
        StreamSettings(),
        FAST,
        [missing],
        stop,
        clients=client_factory(venues.transport),
    )
    assert health.note == f"not listed on bybit: {missing.instrument_id}"
    assert (health.subscribed, health.connected) == (0, False)
    assert [r.path for r in venues.transport.requests] == ["/v5/market/instruments-info"] * len(
        venues.transport.requests
    )


# --- the daemon's client pool -------------------------------------------------------------------------------


async def test_client_pool_heals_an_exchange_that_was_down_and_closes_a_generation_after_its_last_job(
    settings: Settings, venues: Exchanges, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccxt_pipeline.daemon import pool as pool_module
    from ccxt_pipeline.daemon.pool import ClientPool

    venues.faults.append(lambda r: Response("", 503) if r.path == "/fapi/v1/exchangeInfo" else None)
    pool = ClientPool(settings, ["binance", "bybit"], clients=client_factory(venues.transport))
    try:
        async with pool.use() as first:
            assert await first.client("binance") is None
            assert "gave up after" in first.errors["binance"]
            bybit = await first.client("bybit")
            assert bybit is not None
            await pool.heal()  # within a minute of opening: nothing is reopened
            assert pool.recycled == 0
            venues.faults.clear()  # Binance is back
            monkeypatch.setattr(pool_module, "_HEAL_EVERY_S", 0.0)
            await pool.heal()
            assert pool.recycled == 1
            # The job still running keeps its generation, open, until it is done.
            assert not bybit.exchange.closed_by_user
            await bybit.call("load_markets", True)
        assert bybit.exchange.closed_by_user  # its last job left: closed
        async with pool.use() as second:
            assert await second.client("binance") is not None
            assert second.errors == {}
    finally:
        await pool.close()
    assert all(e.closed_by_user for e in venues.transport.exchanges)


def test_the_request_meter_keeps_one_minute_only() -> None:
    """The daemon's clients count requests and never ask for the rate; the count must not grow with uptime
    (the soak found its deque at 1,819 times after 7 minutes, growing without end)."""
    from ccxt_pipeline.collect.clients import RequestMeter

    now = [0.0]
    meter = RequestMeter(clock=lambda: now[0])
    for _ in range(10_000):
        now[0] += 0.5
        meter.mark()
    assert meter.total == 10_000
    assert len(meter._times) <= 121
    assert 120 <= meter.per_minute() <= 121
