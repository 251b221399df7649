"""Pacing by each exchange's documented REST limits (exchanges/pacing.py, the venue table's `rest_limits`).

The real ccxt and our whole client stack answer through `tests.fake_transport` (no sockets); time is
`EventClock`, a discrete-event clock on the retry layer's `CLOCK`: a sleep ends when the event loop has
nothing else to do and no earlier sleep is due, so every figure below is exact and nothing waits for real.

Facts (tests/fixtures/SOURCES.md, "Rate limits"):
- Bybit: 600 requests per 5-second window per IP, https://bybit-exchange.github.io/docs/v5/rate-limit
- Binance USD-M: REQUEST_WEIGHT 2400 a minute (Exchange-Information); /futures/data/openInterestHist "Request
  Weight 0", "IP rate limit 1000 requests/5min"; fundingRate "share 500/5min/IP rate limit with GET
  /fapi/v1/fundingInfo"; markPriceKlines weight by `limit` [1,100) 1, [100,500) 2, [500,1000] 5, > 1000 10
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/...)
- Hyperliquid: 1200 weight a minute; info 20 (l2Book etc. 2, userRole 60); fundingHistory one more per 20 items
  returned, https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader
from ccxt_pipeline.collect.run import FetchRequest, run_fetch
from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.pacing import Pacer, pacer_for
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.settings import ExchangeSettings, Settings
from ccxt_pipeline.simulator.limits import Limiter, Rule, VenueLimits, WindowKind
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import BINANCE_LIMITS, HYPERLIQUID_LIMITS, VENUES, RateLimit, RestLimits
from tests.fake_transport import (
    Answer,
    NotRecorded,
    RecordedTransport,
    Request,
    Response,
    client_factory,
    recorded,
)

T = TypeVar("T")
POLICY = RetryPolicy(attempts=4, base_s=0.5, max_s=4.0, max_retry_after_s=120.0, max_total_s=180.0)
BYBIT_OI = json.loads(recorded("exchange-docs/bybit/open-interest.json"))
BYBIT_KLINE = json.loads(recorded("exchange-docs/bybit/mark-price-kline.json"))
HL_FUNDING_ROW = json.loads(recorded("exchange-docs/hyperliquid/fundingHistory.json"))[0]


class EventClock:
    """The retry layer's clock as a discrete-event simulation: `sleep(s)` ends at `now() + s`, and time moves
    to the next due sleep only once the event loop has nothing else ready (every task is waiting on a sleep,
    or on something a sleeper holds)."""

    def __init__(self) -> None:
        self.t = 0.0
        self._due: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._due, (self.t + seconds, next(self._seq), done))
        await done

    async def run(self, work: Awaitable[T]) -> T:
        """Await `work`, moving time on whenever nothing else can run."""
        task = asyncio.ensure_future(work)
        loop = asyncio.get_running_loop()
        while not task.done():
            await asyncio.sleep(0)
            if getattr(loop, "_ready", None):  # something can still run: let it (CPython's ready queue)
                continue
            if task.done():
                break
            while self._due and self._due[0][2].cancelled():
                heapq.heappop(self._due)
            if not self._due:
                await asyncio.sleep(0)
                continue
            self.t, _, done = heapq.heappop(self._due)
            done.set_result(None)
        return task.result()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> EventClock:
    fake = EventClock()
    monkeypatch.setattr(retry, "CLOCK", fake)
    return fake


class Exchanges:
    """Answers as the exchanges document: markets from recorded bodies; Bybit open interest and mark-price
    candles on their grids (newest first, `limit` at most 200 and 1000); the rest the docs' example bodies.
    Keeps the clock time and the requests in flight of every request."""

    def __init__(self, clock: EventClock) -> None:
        self.clock = clock
        self.transport = RecordedTransport(self)
        self.log: list[tuple[float, str, int]] = []
        """(time, endpoint, requests in flight) of each request."""
        self.faults: list[Any] = []
        self.rows = 500

    def __call__(self, request: Request) -> Answer:
        host = request.url.split("/")[2]
        name = next(
            n
            for n, h in (("binance", "binance.com"), ("bybit", "bybit.com"), ("hyperliquid", "hyperliquid"))
            if host.endswith(h) or h in host
        )
        endpoint = (request.json or {}).get("type") or request.path
        self.log.append((self.clock.now(), endpoint, pacer_for(VENUES[name]).busy))
        for fault in self.faults:
            answer = fault(request)
            if answer is not None:
                return answer
        return getattr(self, name)(request)

    def binance(self, request: Request) -> Answer:
        if request.path == "/fapi/v1/exchangeInfo":
            return recorded("nautilus/binance/exchangeInfo.json")
        if request.path == "/futures/data/openInterestHist":
            return recorded("exchange-docs/binance-usdm/openInterestHist.json")
        if request.path == "/fapi/v1/fundingRate":
            return recorded("exchange-docs/binance-usdm/fundingRate.json")
        raise NotRecorded(request.url)

    def bybit(self, request: Request) -> Answer:
        q = request.query
        if request.path == "/v5/market/instruments-info":
            return recorded("exchange-docs/bybit/instruments-info-linear.json")
        if request.path == "/v5/market/open-interest" and "startTime" not in q:
            return BYBIT_OI
        if request.path == "/v5/market/open-interest":
            assert int(q["limit"]) <= 200, q
            assert q["intervalTime"] == "5min", q
            times = grid(int(q["startTime"]), int(q["endTime"]))[::-1][: int(q["limit"])]
            row = BYBIT_OI["result"]["list"][0]
            rows = [{**row, "timestamp": str(t)} for t in times]
            return {**BYBIT_OI, "result": {**BYBIT_OI["result"], "symbol": q["symbol"], "list": rows}}
        if request.path == "/v5/market/mark-price-kline":
            assert int(q["limit"]) <= 1000, q
            assert q["interval"] == "5", q
            times = grid(int(q["start"]), int(q["end"]))[::-1][: int(q["limit"])]
            candle = BYBIT_KLINE["result"]["list"][0]
            candles = [[str(t), *candle[1:]] for t in times]
            return {**BYBIT_KLINE, "result": {**BYBIT_KLINE["result"], "list": candles}}
        raise NotRecorded(request.url)

    def hyperliquid(self, request: Request) -> Answer:
        body = request.json or {}
        if body.get("type") == "metaAndAssetCtxs":
            return recorded("exchange-docs/hyperliquid/metaAndAssetCtxs.json")
        if body.get("type") == "fundingHistory":  # at most 500 rows a call, from startTime, oldest first
            hours = range(body["startTime"], body["startTime"] + self.rows * 3_600_000, 3_600_000)
            return [{**HL_FUNDING_ROW, "coin": body["coin"], "time": t} for t in hours]
        raise NotRecorded(request.url)


NOW_MS = 1_793_491_200_000  # 2026-11-01T00:00:00Z
STEP_MS = 5 * 60_000


def grid(start_ms: int, end_ms: int) -> list[int]:
    first = -(-start_ms // STEP_MS) * STEP_MS
    return list(range(first, min(end_ms, NOW_MS) + 1, STEP_MS))


@pytest.fixture
def venues(clock: EventClock) -> Iterator[Exchanges]:
    ex = Exchanges(clock)
    yield ex
    assert ex.transport.unanswered == []


def client(venues: Exchanges, name: str) -> ExchangeClient:
    return client_factory(venues.transport)(name, ExchangeSettings(), POLICY)


def slow_clients(venues: Exchanges, latency_s: float) -> ClientFactory:
    """Clients whose every answer takes `latency_s` of the clock (a sleep before the recorded transport)."""
    fast = client_factory(venues.transport)

    def make(name: str, *args: Any, **kwargs: Any) -> ExchangeClient:
        made = fast(name, *args, **kwargs)
        answer = made.exchange.fetch

        async def fetch(*call: Any, **options: Any) -> Any:
            await venues.clock.sleep(latency_s)
            return await answer(*call, **options)

        made.exchange.fetch = fetch
        return made

    return make


def times(venues: Exchanges, endpoint: str) -> list[float]:
    return [t for t, e, _ in venues.log if e == endpoint]


def most_in_any_window(events: list[tuple[float, float]], period: float) -> float:
    """The most weight of `events` (time, weight) in any window [t, t + period): the most is in one that
    starts at an event."""
    return max(sum(w for u, w in events if t <= u < t + period - 1e-9) for t, _ in events)


def bucket_refusals(events: list[tuple[float, float, float]], capacity: float, period: float) -> int:
    """What an exchange counting a token bucket (NautilusTrader's Hyperliquid `WeightedLimiter`: full at
    the start, refilled at capacity / period a second) refuses of `events` (time it counts the request,
    weight it must have, weight it takes with the answer's items), in time order."""
    tokens, last, refused = capacity, 0.0, 0
    for t, need, take in sorted(events, key=lambda e: e[0]):
        tokens = min(capacity, tokens + (t - last) * capacity / period)
        last = t
        if tokens + 1e-9 < need:
            refused += 1
            continue
        tokens -= take
    return refused


# --- the limits as data ------------------------------------------------------------------------------------


def test_documented_weights_per_endpoint() -> None:
    w = BINANCE_LIMITS.weights
    assert w("openInterestHist", {"limit": 500}) == {"futures_data": 1}  # weight 0, 1000 requests / 5 min
    assert w("fundingRate", {"limit": 1000}) == {"funding": 1}  # the shared 500 / 5 min
    assert w("fundingInfo", {}) == {"funding": 1}
    assert w("exchangeInfo", {}) == {"weight": 1}
    klines = [w("markPriceKlines", {"limit": n})["weight"] for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)]
    assert klines == [1, 1, 2, 2, 5, 5, 10, 10]
    assert w("markPriceKlines", {}) == {"weight": 5}  # limit "Default 500"
    h = HYPERLIQUID_LIMITS
    assert h.weights("info", {"type": "metaAndAssetCtxs"}) == {"weight": 20}
    assert h.weights("info", {"type": "l2Book"}) == {"weight": 2}
    assert h.weights("info", {"type": "userRole"}) == {"weight": 60}
    assert h.weights("info", {"type": "fundingHistory"}) == {"weight": 20}
    funding = {"type": "fundingHistory"}
    assert h.extra("info", funding, [{}] * 500) == {"weight": 25}  # one more per 20 items returned
    assert h.extra("info", funding, [{}] * 21) == {"weight": 2}  # a part of 20 counts whole
    assert h.extra("info", funding, []) == {}
    assert h.extra("info", {"type": "candleSnapshot"}, [{}] * 120) == {"weight": 2}  # per 60
    assert h.extra("info", {"type": "metaAndAssetCtxs"}, [{}] * 500) == {}
    for venue in ("binance", "bybit", "hyperliquid"):
        v = VENUES[venue]
        assert v.rest_limits is not None
        assert v.max_concurrency == 5
        assert v.ccxt_options["enableRateLimit"] is False  # ours paces; ccxt's cannot express these limits
        assert all(lim.source.startswith("https://") for lim in v.rest_limits.limits)
        # Hyperliquid's minute as NautilusTrader's adapter counts it; Binance counts per interval, Bybit "in
        # any 5-second window"
        assert {lim.counted for lim in v.rest_limits.limits} == {
            "bucket" if venue == "hyperliquid" else "window"
        }


# --- pacing through the real ccxt --------------------------------------------------------------------------


async def test_a_burst_up_to_capacity_goes_at_once_then_requests_are_paced(
    clock: EventClock, venues: Exchanges
) -> None:
    async def run() -> None:
        async with client(venues, "bybit") as bybit:
            params = {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"}
            await asyncio.gather(
                *(bybit.call("public_get_v5_market_open_interest", params) for _ in range(700))
            )

    await clock.run(run())
    sent = [t for t, _, _ in venues.log]
    assert len(sent) == 702  # load_markets' two requests, then 700
    assert sent[:600] == [0.0] * 600  # from idle, 600 requests in the first instant
    # then nothing until they leave the 5-second window (answered at once, counted until 5 s after)
    assert sent[600:] == [5.0] * 102
    assert most_in_any_window([(t, 1.0) for t in sent], 5.0) == 600
    assert max(busy for _, _, busy in venues.log) <= 5  # at most 5 in flight
    assert pacer_for(VENUES["bybit"]).spent == {"ip": 702}


async def test_weights_are_counted_per_endpoint_and_limit(clock: EventClock, venues: Exchanges) -> None:
    async def run() -> None:
        async with client(venues, "binance") as binance:
            oi = {"symbol": "BTCUSDT", "period": "5m", "limit": 500}
            funding = {"symbol": "BTCUSDT", "limit": 1000}
            await asyncio.gather(
                *(binance.call("fapipublic_get_fundingrate", funding) for _ in range(505)),
                *(binance.call("fapidata_get_openinteresthist", oi) for _ in range(20)),
            )

    await clock.run(run())
    assert pacer_for(VENUES["binance"]).spent == {"weight": 1, "futures_data": 20, "funding": 505}
    # 500 funding requests at once, then the 5 more when the first leave the 5-minute window; open interest
    # draws from its own limit and never waits behind them.
    assert times(venues, "/fapi/v1/fundingRate") == [0.0] * 500 + [300.0] * 5
    assert times(venues, "/futures/data/openInterestHist") == [0.0] * 20


async def test_hyperliquid_weight_grows_with_the_items_returned(clock: EventClock, venues: Exchanges) -> None:
    async def run() -> None:
        async with client(venues, "hyperliquid") as hl:
            for k in range(30):  # one after another: each answer's weight is known before the next request
                body = {"type": "fundingHistory", "coin": "BTC", "startTime": k * 500 * 3_600_000}
                await hl.call("public_post_info", body)

    await clock.run(run())
    pacer = pacer_for(VENUES["hyperliquid"])
    assert pacer.spent == {"weight": 20 + 30 * (20 + 25)}  # metaAndAssetCtxs, then 20 + 500/20 each
    sent = times(venues, "fundingHistory")
    # A token bucket of 1200 refilled at 20 a second (NautilusTrader's reading): load_markets takes 20; a
    # request is admitted while the tokens cover its 20 (and the 25 reserved for each one in flight), and
    # its answer then takes 25 more: 1180 - 26 x 45 = 10 left, so the 27th waits (20 - 10) / 20 s; the
    # bucket is then 25 below zero, and each next one waits (25 + 20) / 20 s.
    assert sent == pytest.approx([0.0] * 26 + [0.5, 2.75, 5.0, 7.25])
    events = [(0.0, 20.0, 20.0)] + [(t, 20.0, 45.0) for t in sent]  # each answer at once: both weights
    assert bucket_refusals(events, 1200, 60.0) == 0


async def test_a_retry_after_pauses_every_client_of_the_exchange(
    clock: EventClock, venues: Exchanges
) -> None:
    told = asyncio.Event()

    def once_429(request: Request) -> Answer | None:
        if request.path == "/v5/market/open-interest" and not told.is_set():
            told.set()
            return Response("Too Many Requests", 429, {"Retry-After": "7"})
        return None

    venues.faults.append(once_429)
    params = {"category": "linear", "symbol": "BTCUSDT", "intervalTime": "5min"}
    pacer: Pacer | None = None

    async def run() -> None:
        nonlocal pacer
        # Two clients of one exchange, as the daemon's old and new generations of clients are.
        async with client(venues, "bybit") as first, client(venues, "bybit") as second:
            rejected = asyncio.ensure_future(first.call("public_get_v5_market_open_interest", params))
            await told.wait()
            pacer = pacer_for(VENUES["bybit"])
            assert pacer.resume_at == 7.0  # the 429 paused the exchange before anything else ran
            others = [second.call("public_get_v5_market_open_interest", params) for _ in range(10)]
            await asyncio.gather(rejected, *others)

    await clock.run(run())
    assert isinstance(pacer, Pacer)
    oi = [(t, e) for t, e, _ in venues.log if e == "/v5/market/open-interest"]
    assert len(oi) == 12  # the 429, the retry, and the second client's 10
    assert oi[0][0] == 0.0
    assert all(t >= 7.0 for t, _ in oi[1:])  # nothing of either client before the Retry-After ended
    assert pacer.resume_at == 7.0


# --- Bybit open-interest history: independent windows, fetched at once ------------------------------------


async def test_bybit_oi_windows_are_fetched_concurrently_and_assembled_in_order(
    clock: EventClock, venues: Exchanges, tmp_path: Path
) -> None:
    settings = Settings(catalog_path=tmp_path / "catalog", exchanges={n: ExchangeSettings() for n in VENUES})
    start = NOW_MS - 30 * 86_400_000
    request = FetchRequest(
        OPEN_INTEREST, ["BTCUSDT-PERP"], ("bybit",), start=start * NS_PER_MS, end=NOW_MS * NS_PER_MS
    )
    report = await clock.run(
        run_fetch(
            settings,
            request,
            policy=POLICY,
            clock=lambda: NOW_MS * NS_PER_MS,
            clients=slow_clients(venues, 0.05),  # 50 ms an answer
        )
    )
    (bybit,) = report.exchanges
    assert bybit.error is None
    oi = [(t, busy) for t, e, busy in venues.log if e == "/v5/market/open-interest"]
    klines = [(t, busy) for t, e, busy in venues.log if e == "/v5/market/mark-price-kline"]
    assert (len(oi), len(klines)) == (44, 9)  # 8641 points: 44 pages of 200, 9 of 1000 candles
    # (the log has each request when it is answered, 50 ms after it was sent) load_markets' two requests
    # go together and are answered at 0.05 s; then the 53 pages go five at a time, 50 ms a round: the last
    # is answered at the end of round 11. One after another, that would be 0.05 + 53 x 0.05 s.
    markets = [t for t, e, _ in venues.log if e == "/v5/market/instruments-info"]
    assert markets == pytest.approx([0.05, 0.05])
    answered = sorted(t for t, _ in oi + klines)
    assert answered[0] == pytest.approx(0.1)
    assert answered[-1] == pytest.approx(0.05 + 11 * 0.05)
    assert max(busy for _, busy in oi + klines) == 5  # five in flight at once, never more
    table = CatalogReader(settings.catalog_path).query(OPEN_INTEREST, ["BTCUSDT-LINEAR.BYBIT"])
    stamps = [t // NS_PER_MS for t in table.column("ts_event").to_pylist()]
    assert stamps == grid(start, NOW_MS)  # every point once, in order: no duplicate, no hole
    assert None not in table.column("open_interest_value").to_pylist()


# --- the windows: never more than a limit's capacity in any window of its period ----------------------------

A = RateLimit("a", 10, 5.0, "test")
B = RateLimit("b", 7, 3.0, "test")
TWO_LIMITS = RestLimits(limits=(A, B), default={"a": 1})


@dataclass
class Sent:
    """One request of `drive`: when it asked, was sent and was answered, and what it drew."""

    asked: float
    weights: dict[str, float]
    sent: float = -1.0
    answered: float = -1.0


async def drive(
    clock: EventClock, pacer: Pacer, plan: list[tuple[float, dict[str, float], float]]
) -> list[Sent]:
    """Each (delay after the previous one asked, weights, latency): ask the pacer, hold the slot for the
    latency (the answer's time), all concurrently."""
    out: list[Sent] = []

    async def one(at: float, weights: dict[str, float], latency: float) -> None:
        await clock.sleep(at)
        item = Sent(clock.now(), weights)
        out.append(item)
        async with pacer.request(weights):
            item.sent = clock.now()
            assert pacer.busy <= pacer.in_flight
            await clock.sleep(latency)
        item.answered = clock.now()

    at = 0.0
    tasks = []
    for delay, weights, latency in plan:
        at += delay
        tasks.append(one(at, weights, latency))
    await clock.run(asyncio.gather(*tasks))
    return out


def exchange_refusals(done: list[Sent], kind: WindowKind, arrive: list[float]) -> int:
    """What the simulator's limiter (fixed or sliding windows of A and B) refuses when each request reaches
    it at `sent + fraction x latency`, in order of arrival."""
    now = [0.0]
    rules = tuple(Rule(lim.name, int(lim.weight), lim.seconds, kind, paths=(lim.name,)) for lim in (A, B))
    exchange = Limiter(VenueLimits(rules=rules), lambda: now[0])
    refused = 0
    order = sorted(range(len(done)), key=lambda i: (arrive[i], i))
    for i in order:
        now[0] = round(arrive[i], 6)  # to the microsecond: a float sum's last bit is no time
        for name, weight in done[i].weights.items():
            refused += exchange.admit(name, int(weight)) is not None
    return refused


weights_st = st.fixed_dictionaries(
    {},
    optional={"a": st.integers(1, int(A.weight)).map(float), "b": st.integers(1, int(B.weight)).map(float)},
)
plan_st = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 2.5, 3.0]),
        weights_st,
        st.sampled_from([0.0, 0.05, 0.3, 1.0]),
    ),
    min_size=1,
    max_size=60,
)


@examples(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plan_st, in_flight=st.integers(1, 5), fractions=st.lists(st.floats(0, 1), min_size=60, max_size=60)
)
def test_no_window_of_a_period_ever_holds_more_than_the_capacity(
    plan: list[tuple[float, dict[str, float], float]], in_flight: int, fractions: list[float]
) -> None:
    fake = EventClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retry, "CLOCK", fake)

        async def main() -> list[Sent]:
            return await drive(fake, Pacer("test", TWO_LIMITS, in_flight), plan)

        done = asyncio.run(main())
    assert len(done) == len(plan)
    assert all(d.answered >= d.sent >= d.asked for d in done)
    for lim in (A, B):
        events = [(d.sent, d.weights[lim.name]) for d in done if lim.name in d.weights]
        if not events:
            continue
        # any window [t, t + period), and the windows aligned on multiples of the period
        assert most_in_any_window(events, lim.seconds) <= lim.weight
        for k in {int(t // lim.seconds) for t, _ in events}:
            assert sum(w for t, w in events if k * lim.seconds <= t < (k + 1) * lim.seconds) <= lim.weight
    # requests drawing from the same limits go in the order they asked (one waiting on `a` lets one that
    # draws only from `b` pass)
    for keys in {tuple(sorted(d.weights)) for d in done}:
        asked = sorted((d.asked, d.sent) for d in done if tuple(sorted(d.weights)) == keys)
        assert all(s1 <= s2 + 1e-9 for (a1, s1), (a2, s2) in itertools.pairwise(asked) if a1 < a2)
    # and however long each request took to reach the exchange, neither reading refuses one
    arrive = [d.sent + f * (d.answered - d.sent) for d, f in zip(done, fractions, strict=False)]
    assert exchange_refusals(done, "sliding", arrive) == 0
    assert exchange_refusals(done, "fixed", arrive) == 0


async def test_a_burst_from_idle_is_the_capacity_at_once(clock: EventClock) -> None:
    pacer = Pacer("test", TWO_LIMITS, 100)
    done = await drive(clock, pacer, [(0.0, {"a": 1.0}, 0.0)] * 25)
    assert [d.sent for d in done] == [0.0] * 10 + [5.0] * 10 + [10.0] * 5
    assert pacer.spent == {"a": 25.0, "b": 0.0}


async def test_a_request_counts_until_a_period_after_its_answer(clock: EventClock) -> None:
    # Two of capacity 10 answered after 3 s: the exchange counted them somewhere in [0, 3], so the window
    # frees them at 3 + 5 s, not 5 s.
    done = await drive(clock, Pacer("test", TWO_LIMITS, 5), [(0.0, {"a": 5.0}, 3.0)] * 3)
    assert [d.sent for d in done] == [0.0, 0.0, 8.0]


async def test_a_weight_over_the_capacity_waits_for_an_empty_window(clock: EventClock) -> None:
    done = await drive(clock, Pacer("test", TWO_LIMITS, 5), [(0.0, {"b": 3.0}, 0.0), (1.0, {"b": 20.0}, 0.0)])
    assert [d.sent for d in done] == [0.0, 3.0]
    later = await drive(
        clock, Pacer("test", TWO_LIMITS, 5), [(0.0, {"b": 20.0}, 1.0), (0.0, {"b": 1.0}, 0.0)]
    )
    assert later[1].sent - later[0].sent == pytest.approx(1.0 + 3.0)  # in flight, then its whole period


async def test_after_a_retry_after_the_window_counts_as_full_and_frees_at_its_rate(clock: EventClock) -> None:
    pacer = Pacer("test", RestLimits(limits=(RateLimit("a", 60, 60.0, "test"),), default={"a": 1}), 5)
    pacer.pause(7.0)
    assert pacer.resume_at == 7.0
    assert pacer.level("a") == 0.0  # the exchange said its count is full
    done = await drive(clock, pacer, [(0.0, {"a": 1.0}, 0.0)] * 4)
    # nothing before 7 s; then one piece of 60 / 60 leaves each second
    assert [d.sent for d in done] == pytest.approx([8.0, 9.0, 10.0, 11.0])


# --- a token bucket (Hyperliquid's minute, as NautilusTrader's adapter counts it) ---------------------------

HL_BUCKET = RestLimits(limits=(RateLimit("w", 1200, 60.0, "test", counted="bucket"),), default={"w": 20})


async def test_a_full_bucket_admits_its_capacity_at_once_then_its_refill_rate(clock: EventClock) -> None:
    pacer = Pacer("test", HL_BUCKET, 100)
    done = await drive(clock, pacer, [(0.0, {"w": 20.0}, 0.0)] * 70)
    # 1200 at once from full, then 20 a second: one request of 20 each second
    assert [d.sent for d in done] == pytest.approx([0.0] * 60 + [float(k) for k in range(1, 11)])
    # a window would have held the 61st until the first minute passed; and a weight over the capacity
    # waits for a full bucket
    later = await drive(
        clock, Pacer("test", HL_BUCKET, 5), [(0.0, {"w": 1000.0}, 0.0), (0.0, {"w": 2000.0}, 0.0)]
    )
    assert later[1].sent - later[0].sent == pytest.approx(1000 / 20)


async def test_a_bucket_debits_the_answers_items_and_the_next_request_waits(clock: EventClock) -> None:
    pacer = Pacer("test", HL_BUCKET, 5)

    async def run() -> float:
        for _ in range(60):
            async with pacer.request({"w": 20.0}):
                pass
        pacer.charge({"w": 25.0})  # the last answer's items: the bucket goes 25 below zero
        assert pacer.level("w") == -25.0
        async with pacer.request({"w": 20.0}):
            return clock.now()

    assert await clock.run(run()) == pytest.approx((25 + 20) / 20)

    async def in_flight() -> None:  # its weight leaves the bucket when its answer arrives
        clock.t += 60.0
        async with pacer.request({"w": 20.0}, reserve={"w": 25.0}):
            assert pacer.level("w") == pytest.approx(1200 - 45)
        assert pacer.level("w") == pytest.approx(1200 - 20)

    await clock.run(in_flight())


async def test_a_paused_bucket_restarts_empty(clock: EventClock) -> None:
    pacer = Pacer("test", HL_BUCKET, 5)
    pacer.pause(7.0)
    assert pacer.level("w") == 0.0
    done = await drive(clock, pacer, [(0.0, {"w": 20.0}, 0.0)] * 4)
    # nothing before 7 s; then 20 tokens a second from empty
    assert [d.sent for d in done] == pytest.approx([8.0, 9.0, 10.0, 11.0])


async def test_hyperliquid_extra_weight_in_flight_is_reserved(clock: EventClock, venues: Exchanges) -> None:
    # The exchange charges an answer's items when it answers, 1 s before the answer reaches us: a request
    # sent meanwhile must not use that weight. Each fundingHistory answer holds 500 items (25 more).
    fast = client_factory(venues.transport)("hyperliquid", ExchangeSettings(), POLICY)
    answer = fast.exchange.fetch

    async def fetch(*call: Any, **options: Any) -> Any:
        got = await answer(*call, **options)  # the exchange counted and answered (venues.log)
        await clock.sleep(1.0)  # on the way back
        return got

    fast.exchange.fetch = fetch

    async def run() -> None:
        async with fast as hl:
            body = {"type": "fundingHistory", "coin": "BTC", "startTime": 0}
            await hl.call("public_post_info", body)
            assert pacer_for(VENUES["hyperliquid"]).expected[("info", "fundingHistory")] == {"weight": 25.0}
            await asyncio.gather(*(hl.call("public_post_info", {**body, "startTime": k}) for k in range(40)))

    await clock.run(run())
    counted = [(t, 20.0, 20.0 if e == "metaAndAssetCtxs" else 45.0) for t, e, _ in venues.log]
    # the exchange's bucket, debiting each request and its items when it counts it, never refuses one
    assert bucket_refusals(counted, 1200, 60.0) == 0
    assert (
        bucket_refusals([(0.0, 20.0, 20.0)] + [(0.0, 20.0, 45.0)] * 41, 1200, 60.0) > 0
    )  # all at once would be
    assert counted[-1][0] > 0.0
    assert len(counted) == 42


async def test_binance_used_weight_header_is_never_undercounted(clock: EventClock, venues: Exchanges) -> None:
    # A rerun right after a killed run: Binance says 2390 of its 2400 a minute are used by requests we never
    # saw. Ours counts them, so the 10th request waits for the minute instead of being refused.
    minute: list[float] = []

    def told(request: Request) -> Answer | None:
        if request.path != "/fapi/v1/exchangeInfo":
            return None
        now = venues.clock.now()
        minute.append(now)
        used = (2390 if now < 60 else 0) + sum(1 for t in minute if t // 60 == now // 60)
        assert used <= 2400  # what the exchange would refuse
        return Response(
            recorded("nautilus/binance/exchangeInfo.json"), 200, {"x-mbx-used-weight-1m": str(used)}
        )

    venues.faults.append(told)

    async def run() -> None:
        async with client(venues, "binance") as binance:  # load_markets: exchangeInfo, weight 1
            await asyncio.gather(*(binance.call("fapipublic_get_exchangeinfo") for _ in range(20)))

    await clock.run(run())
    assert minute == [0.0] * 10 + [60.0] * 11
