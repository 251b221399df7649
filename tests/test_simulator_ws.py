"""The simulator's liquidation websockets, driven by the REAL ccxt.pro classes (never mocked).

What ccxt.pro 4.5.90 does against them (each point is asserted below):
- binanceusdm connects to `/market/ws/<n>` (n = ccxt's stream index) and sends
  `{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"],"id":1}`, or `["!forceOrder@arr"]` for
  `watch_liquidations_for_symbols([])`; bybit connects to `/v5/public/linear` and sends
  `{"op":"subscribe","req_id":1,"args":["allLiquidation.BTCUSDT"]}`.
- ccxt's `side` is the wire `S` lowercased, so it means opposite things: Binance "sell" = a LONG was
  liquidated (order side), Bybit "buy" = a LONG was liquidated (position side). `contractSize`,
  `baseValue` and `quoteValue` are None on both.
- abrupt drop -> pending watch raises `NetworkError("Connection closed by remote server, closing code 1006")`;
  clean close -> the same with code 1000 (never RequestTimeout); the next watch call reconnects and resubscribes.
- silence -> `RequestTimeout("... timed out due to a ping-pong keepalive missing on time")` 2-3 keepAlive periods
  after the last pong (binance 180 s and websocket PING frames, bybit 18 s and `{"op":"ping"}`; the tests
  shorten keepAlive to 100 ms).
- a frame that starts with `{` but is not JSON kills ccxt's receive loop (the decode error escapes an asyncio
  callback): nothing more is parsed on that socket until the keepalive times out. Binance dies the same way on a
  non-JSON text frame; Bybit ignores it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest

from ccxt_pipeline.simulator import ExchangeSimulator, data
from ccxt_pipeline.simulator.liquidations import LiquidatedSide, SentEvent
from tests.conftest import opened, until

NOW = int(datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp() * 1000)
EXCHANGES = ["binance", "bybit"]
CLASSES = {"binance": ccxt_pro.binanceusdm, "bybit": ccxt_pro.bybit}
OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"defaultType": "swap"},
    "bybit": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
}
BTC = "BTC/USDT:USDT"
FAST_KEEPALIVE = {"keepAlive": 100}


def collecting(cls: Any) -> Any:
    """The ccxt class, also recording every liquidation it parses (the workaround for ccxt's bug 2)."""

    class Collecting(cls):  # type: ignore[misc]
        parsed: list[dict[str, Any]]

        def parse_ws_liquidation(self, liquidation: Any, market: Any = None) -> Any:
            out = super().parse_ws_liquidation(liquidation, market)
            if not hasattr(self, "parsed"):
                self.parsed = []
            self.parsed.append(out)
            return out

    return Collecting


@contextlib.asynccontextmanager
async def client(sim: ExchangeSimulator, name: str, **extra: Any) -> AsyncIterator[Any]:
    config = {**sim.ccxt_overrides(name), "timeout_on_exit": 0, "options": OPTIONS[name], **extra}
    exchange = collecting(CLASSES[name])(config)
    exchange.parsed = []
    async with opened(exchange):
        yield exchange


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW) as simulator:
        yield simulator


async def watching(
    sim: ExchangeSimulator, exchange: Any, name: str, symbol: str = "BTCUSDT"
) -> asyncio.Task[Any]:
    """Start `watch_liquidations(BTC)` and return once the simulator has the subscription."""
    task: asyncio.Task[Any] = asyncio.ensure_future(exchange.watch_liquidations(BTC))
    await sim.liquidations.wait_subscribed(name, symbol)
    return task


def frames(sim: ExchangeSimulator) -> list[tuple[str, Any]]:
    return [(f.path, json.loads(f.text)) for f in sim.liquidations.received]


# --- where ccxt connects and what it sends -------------------------------------------------------------


async def test_ccxt_urls_and_subscribe_messages(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b, client(sim, "bybit") as y:
        one = asyncio.ensure_future(b.watch_liquidations(BTC))
        await sim.liquidations.wait_subscribed("binance", "BTCUSDT")
        every = asyncio.ensure_future(b.watch_liquidations_for_symbols([]))
        await sim.liquidations.wait_subscribed("binance", "BTCUSDT", connections=2)
        btc = asyncio.ensure_future(y.watch_liquidations(BTC))
        await sim.liquidations.wait_subscribed("bybit", "BTCUSDT")
        eth = asyncio.ensure_future(y.watch_liquidations("ETH/USDT:USDT"))
        await sim.liquidations.wait_subscribed("bybit", "ETHUSDT")
        for task in (one, every, btc, eth):
            task.cancel()
    assert frames(sim) == [
        ("/market/ws/0", {"method": "SUBSCRIBE", "params": ["btcusdt@forceOrder"], "id": 1}),
        ("/market/ws/1", {"method": "SUBSCRIBE", "params": ["!forceOrder@arr"], "id": 1}),
        ("/v5/public/linear", {"op": "subscribe", "req_id": 1, "args": ["allLiquidation.BTCUSDT"]}),
        ("/v5/public/linear", {"op": "subscribe", "req_id": 2, "args": ["allLiquidation.ETHUSDT"]}),
    ]
    # Binance: one socket per symbol list; Bybit: one socket for all topics
    assert sim.liquidations.connections_opened == {"binance": 2, "bybit": 1}
    assert sim.liquidations.subscribe_messages == {"binance": 2, "bybit": 2}
    assert sim.count("binance", "/market/ws/") == 2
    assert sim.count("bybit", "/v5/public/linear") == 1


# --- parsing: symbol, price, amount, timestamp, side ----------------------------------------------------

WIRE_SIDES = {
    ("binance", "LONG"): "SELL",  # Binance S = the liquidation ORDER's side
    ("binance", "SHORT"): "BUY",
    ("bybit", "LONG"): "Buy",  # Bybit S = the liquidated POSITION's side
    ("bybit", "SHORT"): "Sell",
}


@pytest.mark.parametrize(("name", "liquidated"), list(WIRE_SIDES))
async def test_ccxt_parses_an_event(sim: ExchangeSimulator, name: str, liquidated: LiquidatedSide) -> None:
    async with client(sim, name) as ex:
        task = await watching(sim, ex, name)
        ev = await sim.liquidations.emit(
            name, "BTCUSDT", liquidated_side=liquidated, quantity=0.014, price=97000.5, t_ms=NOW - 1234
        )
        (got,) = await asyncio.wait_for(task, 2)
    wire = WIRE_SIDES[(name, liquidated)]
    assert ev.side == wire
    assert ev.delivered_to == 1
    assert sim.liquidations.sent == [ev]
    assert got["info"]["S"] == wire
    assert got["side"] == wire.lower()  # ccxt passes the wire side through: its meaning differs per exchange
    assert got["symbol"] == BTC
    assert got["price"] == 97000.5
    assert got["contracts"] == 0.014
    assert got["timestamp"] == NOW - 1234
    assert got["datetime"] == "2026-11-20T11:59:58.766Z"
    # ccxt bug 1 (shared doc): the ws parsers do not pass the market, so these stay None
    assert (got["contractSize"], got["baseValue"], got["quoteValue"]) == (None, None, None)


async def test_binance_wire_payload(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        task = await watching(sim, b, "binance")
        await sim.liquidations.emit(
            "binance", BTC, liquidated_side="LONG", quantity=0.014, price=9910, t_ms=NOW
        )
        (got,) = await asyncio.wait_for(task, 2)
    # `ap` is the price ccxt reports; `p` (the order's limit price) is deliberately different
    assert got["info"] == {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9860.45",
        "ap": "9910.00",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": NOW,
    }


async def test_binance_all_market_stream_gets_every_symbol(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        every = asyncio.ensure_future(b.watch_liquidations_for_symbols([]))
        await sim.liquidations.wait_subscribed("binance", "SOLUSDT")
        assert sim.liquidations.subscribers("binance", "ETHUSDT") == 1
        btc_only = asyncio.ensure_future(b.watch_liquidations(BTC))
        await sim.liquidations.wait_subscribed("binance", "BTCUSDT", connections=2)
        eth = await sim.liquidations.emit(
            "binance", "ETHUSDT", liquidated_side="SHORT", quantity=1.5, price=3001.25
        )
        (got,) = await asyncio.wait_for(every, 2)
        assert got["symbol"] == "ETH/USDT:USDT"
        assert (got["side"], got["contracts"], got["price"]) == ("buy", 1.5, 3001.25)
        assert eth.delivered_to == 1  # the BTC socket did not get it
        assert not btc_only.done()
        btc = await sim.liquidations.emit_random("binance", "BTCUSDT")
        assert btc.delivered_to == 2  # the BTC stream and the all-market stream
        await until(lambda: len(b.parsed) == 3)
        (got,) = await asyncio.wait_for(btc_only, 2)
        assert (got["symbol"], got["contracts"], got["price"]) == (BTC, btc.quantity, btc.price)


async def test_bybit_batched_message_carries_several_items(sim: ExchangeSimulator) -> None:
    async with client(sim, "bybit") as y:
        task = await watching(sim, y, "bybit")
        before = sim.liquidations.frames_sent["bybit"]
        events = await sim.liquidations.burst("bybit", "BTCUSDT", 5, within_ms=40, batch=True)
        assert sim.liquidations.frames_sent["bybit"] == before + 1  # one message, five items in `data`
        await until(lambda: len(y.parsed) == 5)
        await asyncio.wait_for(task, 2)
    assert [e.t_ms for e in events] == [NOW, NOW + 10, NOW + 20, NOW + 30, NOW + 40]
    assert [(p["timestamp"], p["contracts"], p["price"], p["info"]["S"]) for p in y.parsed] == [
        (e.t_ms, e.quantity, e.price, e.side) for e in events
    ]
    assert len({e.key for e in events}) == 5


async def test_generated_events_are_distinct_and_seeded(sim: ExchangeSimulator) -> None:
    events = await sim.liquidations.burst("binance", "BTCUSDT", 200, within_ms=0)
    assert len({e.key for e in events}) == 200  # same T for all: quantities keep them apart
    assert {e.liquidated_side for e in events} == {"LONG", "SHORT"}
    async with ExchangeSimulator(seed=7, now_ms=NOW) as twin:
        again = await twin.liquidations.burst("binance", "BTCUSDT", 200, within_ms=0)
    assert [e.key for e in again] == [e.key for e in events]
    e = events[0]
    with pytest.raises(ValueError, match="identical"):
        await sim.liquidations.emit(
            "binance",
            e.symbol,
            liquidated_side=e.liquidated_side,
            quantity=e.quantity,
            price=e.price,
            t_ms=e.t_ms,
        )
    with pytest.raises(ValueError, match="Bybit only"):
        await sim.liquidations.burst("binance", "BTCUSDT", 2, batch=True)


async def test_events_without_subscriber_are_undelivered(sim: ExchangeSimulator) -> None:
    ev = await sim.liquidations.emit("bybit", "SOLUSDT", liquidated_side="LONG", quantity=3.5, price=151.5)
    assert ev.delivered_to == 0
    assert sim.liquidations.undelivered == [ev]
    assert sim.liquidations.sent == []


# --- ccxt bug 2 (documents ccxt's behaviour, not ours) ---------------------------------------------------


@pytest.mark.parametrize("name", EXCHANGES)
async def test_documents_ccxt_new_updates_drops_burst_items(sim: ExchangeSimulator, name: str) -> None:
    """DOCUMENTS CCXT 4.5.90, NOT OUR CODE: with the default newUpdates=True each watch_liquidations call
    returns exactly ONE liquidation (handle_liquidation resolves the waiting future with `[liquidation]` per
    item; later items find no future). Items that arrive while the caller is not awaiting are lost from the
    returned lists; they sit only in `exchange.liquidations`. A parse hook (`collecting`) sees every item."""
    n = 8
    async with client(sim, name) as ex:
        assert ex.newUpdates is True
        task = await watching(sim, ex, name)
        sent = await sim.liquidations.burst(name, "BTCUSDT", n, batch=name == "bybit")
        returned = list(await asyncio.wait_for(task, 2))
        assert len(returned) == 1
        with contextlib.suppress(TimeoutError):  # keep watching as a consumer loop would
            while True:
                returned += await asyncio.wait_for(ex.watch_liquidations(BTC), 0.2)
        await until(lambda: len(ex.parsed) == n)
        assert len(returned) < n  # observed: 1 of 8 on both exchanges
        assert len(ex.liquidations) == n
    # ccxt takes Binance's amount from `l`, the order's LAST fill, not `z` (docs/exchanges.md)
    assert [(p["contracts"], p["price"]) for p in ex.parsed] == [(e.last_fill, e.price) for e in sent]


# --- connection knobs: drop, close, silence, down -------------------------------------------------------


@pytest.mark.parametrize("name", EXCHANGES)
async def test_drop_raises_network_error_then_ccxt_reconnects(sim: ExchangeSimulator, name: str) -> None:
    async with client(sim, name) as ex:
        task = await watching(sim, ex, name)
        # knobs may be turned from another thread
        assert await asyncio.to_thread(sim.liquidations.drop_connections, name) == 1
        with pytest.raises(ccxt.NetworkError, match="closing code 1006") as info:
            await asyncio.wait_for(task, 2)
        assert not isinstance(info.value, ccxt.RequestTimeout)
        await until(lambda: not sim.liquidations.connections(name))
        # the next watch call reconnects and subscribes again
        task = await watching(sim, ex, name)
        ev = await sim.liquidations.emit_random(name, "BTCUSDT")
        (got,) = await asyncio.wait_for(task, 2)
        assert got["contracts"] == ev.quantity
    assert sim.liquidations.connections_opened[name] == 2
    assert sim.liquidations.subscribe_messages[name] == 2


@pytest.mark.parametrize("name", EXCHANGES)
async def test_clean_close_raises_network_error(sim: ExchangeSimulator, name: str) -> None:
    async with client(sim, name) as ex:
        task = await watching(sim, ex, name)
        assert sim.liquidations.close_connections(name) == 1
        with pytest.raises(ccxt.NetworkError, match="Connection closed by remote server, closing code 1000"):
            await asyncio.wait_for(task, 2)
        ev = await sim.liquidations.emit_random(name, "BTCUSDT")
        assert ev.delivered_to == 0
        assert sim.liquidations.undelivered == [ev]


async def test_simulator_stop_closes_with_going_away() -> None:
    sim = ExchangeSimulator(seed=7, now_ms=NOW)
    await sim.start()
    try:
        async with client(sim, "bybit") as y:
            task = await watching(sim, y, "bybit")
            await sim.stop()
            with pytest.raises(ccxt.NetworkError, match="closing code 1001"):
                await asyncio.wait_for(task, 2)
    finally:
        await sim.stop()


@pytest.mark.parametrize("name", EXCHANGES)
async def test_silence_ends_in_keepalive_timeout(sim: ExchangeSimulator, name: str) -> None:
    """Silence withholds pongs (Binance: websocket PONG frames; Bybit: `{"op":"ping"}` answers), acks and
    events; ccxt raises RequestTimeout 2-3 keepAlive periods later (defaults: binance 180000 ms, bybit
    18000 ms, maxPingPongMisses 2)."""
    assert CLASSES[name]().streaming["keepAlive"] == {"binance": 180000, "bybit": 18000}[name]
    async with client(sim, name, streaming=FAST_KEEPALIVE) as ex:
        sim.liquidations.silence(name, 5)
        task = asyncio.ensure_future(ex.watch_liquidations(BTC))
        await sim.liquidations.wait_subscribed(name, "BTCUSDT")
        ev = await sim.liquidations.emit_random(name, "BTCUSDT")
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout, match="ping-pong keepalive missing"):
            await asyncio.wait_for(task, 3)
        assert time.monotonic() - started < 1.0
    assert sim.liquidations.undelivered == [ev]
    assert sim.liquidations.frames_sent[name] == 0  # no subscribe ack, no pong, no event
    assert sim.liquidations.pings_received[name] >= 2


async def test_down_refuses_websockets(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b:
        sim.down = True
        with pytest.raises(ccxt.NetworkError):
            await asyncio.wait_for(b.watch_liquidations(BTC), 2)
        assert sim.liquidations.connections_opened["binance"] == 0
        sim.down = False
        task = await watching(sim, b, "binance")  # after ccxt's dial backoff (0.2 s)
        task.cancel()


# --- frame knobs: duplicate, malformed ------------------------------------------------------------------


@pytest.mark.parametrize("name", EXCHANGES)
async def test_duplicate_frames_reach_ccxt_twice(sim: ExchangeSimulator, name: str) -> None:
    sim.liquidations.duplicate_every = 2
    async with client(sim, name) as ex:
        task = await watching(sim, ex, name)
        events = [await sim.liquidations.emit_random(name, "BTCUSDT") for _ in range(4)]
        await until(lambda: len(ex.parsed) == 6)
        task.cancel()
    assert [e.duplicated for e in events] == [0, 1, 0, 1]
    assert [p["contracts"] for p in ex.parsed] == [
        q for e in events for q in [e.last_fill] * (1 + e.duplicated)
    ]  # ccxt does not deduplicate (and takes Binance's last fill `l`)


async def test_bybit_ignores_a_non_json_text_frame(sim: ExchangeSimulator) -> None:
    sim.liquidations.malformed_every = 2
    sim.liquidations.malformed_kind = "text"
    async with client(sim, "bybit") as y:
        task = await watching(sim, y, "bybit")
        events = [await sim.liquidations.emit_random("bybit", "BTCUSDT") for _ in range(4)]
        await until(lambda: len(y.parsed) == 2)
        await asyncio.sleep(0.05)
        task.cancel()
    assert [e.malformed for e in events] == [0, 1, 0, 1]
    assert sim.liquidations.sent == [events[0], events[2]]
    assert sim.liquidations.undelivered == [events[1], events[3]]
    assert [p["contracts"] for p in y.parsed] == [events[0].quantity, events[2].quantity]


@pytest.mark.parametrize(
    ("name", "kind"), [("binance", "truncated_json"), ("bybit", "truncated_json"), ("binance", "text")]
)
async def test_documents_ccxt_garbage_frame_kills_the_receive_loop(
    sim: ExchangeSimulator, name: str, kind: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """DOCUMENTS CCXT 4.5.90, NOT OUR CODE: a frame starting with `{` that is not JSON (and, on Binance, any
    non-JSON text) raises inside ccxt's receive callback; the socket stays open but nothing more is parsed,
    and only the keepalive (here 100 ms) ends the wait with RequestTimeout."""
    sim.liquidations.malformed_every = 2
    sim.liquidations.malformed_kind = kind
    async with client(sim, name, streaming=FAST_KEEPALIVE) as ex:
        task = await watching(sim, ex, name)
        events = [await sim.liquidations.emit_random(name, "BTCUSDT") for _ in range(3)]
        await asyncio.wait_for(task, 2)
        task = asyncio.ensure_future(ex.watch_liquidations(BTC))
        with pytest.raises(ccxt.RequestTimeout):
            await asyncio.wait_for(task, 3)
    assert [e.delivered_to for e in events] == [1, 0, 1]
    assert [p["contracts"] for p in ex.parsed] == [events[0].last_fill]  # the third never got parsed
    assert any("Exception in callback" in r.getMessage() for r in caplog.records)


# --- background generation ------------------------------------------------------------------------------


async def test_background_rate_emits_for_subscribed_symbols(sim: ExchangeSimulator) -> None:
    async with client(sim, "binance") as b, client(sim, "bybit") as y:
        tasks = [await watching(sim, b, "binance"), await watching(sim, y, "bybit")]
        sim.liquidations.rate_per_s = {"binance": 100.0, "bybit": 100.0}
        await until(lambda: all(sum(e.exchange == n for e in sim.liquidations.sent) >= 5 for n in EXCHANGES))
        sim.liquidations.rate_per_s = {}
        await asyncio.sleep(0.05)
        sent = list(sim.liquidations.sent)
        await until(lambda: len(b.parsed) + len(y.parsed) == len(sent))
        for task in tasks:
            task.cancel()
    assert {e.symbol for e in sent} == {"BTCUSDT"}  # only the subscribed symbol
    assert sim.liquidations.undelivered == []
    for name, ex in (("binance", b), ("bybit", y)):
        mine = [e for e in sent if e.exchange == name]
        assert [(p["contracts"], p["price"], p["info"]["S"]) for p in ex.parsed] == [
            (e.last_fill, e.price, e.side)
            for e in mine  # ccxt: Binance's last fill `l`
        ]


# --- the wire protocol without ccxt ---------------------------------------------------------------------


async def test_bybit_protocol(sim: ExchangeSimulator) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{sim.ws_url}/v5/public/linear") as ws:
        await ws.send_json({"op": "subscribe", "req_id": "a1", "args": ["allLiquidation.BTCUSDT"]})
        ack = await ws.receive_json(timeout=2)
        conn_id = ack["conn_id"]
        assert ack == {
            "success": True,
            "ret_msg": "subscribe",
            "conn_id": conn_id,
            "req_id": "a1",
            "op": "subscribe",
        }
        await ws.send_json({"op": "ping", "req_id": "p"})
        assert await ws.receive_json(timeout=2) == {
            "success": True,
            "ret_msg": "pong",
            "conn_id": conn_id,
            "req_id": "p",
            "op": "ping",
        }
        await ws.send_json({"op": "subscribe", "req_id": 2, "args": ["allLiquidation.DOGEUSDT"]})
        bad = await ws.receive_json(timeout=2)
        assert (bad["success"], bad["ret_msg"], bad["req_id"]) == (
            False,
            "Invalid symbol :[allLiquidation.DOGEUSDT]",
            2,
        )
        ev = await sim.liquidations.emit("bybit", BTC, liquidated_side="SHORT", quantity=0.003, price=97000.5)
        assert await ws.receive_json(timeout=2) == {
            "topic": "allLiquidation.BTCUSDT",
            "type": "snapshot",
            "ts": NOW,
            "data": [{"T": NOW, "s": "BTCUSDT", "S": "Sell", "v": "0.003", "p": "97000.50"}],
        }
        assert ev.delivered_to == 1


async def test_binance_protocol(sim: ExchangeSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_url}/market/ws/0", autoping=False) as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@forceOrder"], "id": 5})
            assert await ws.receive_json(timeout=2) == {"result": None, "id": 5}
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 6})
            assert await ws.receive_json(timeout=2) == {"result": ["ethusdt@forceOrder"], "id": 6}
            await ws.ping()
            pong = await ws.receive(timeout=2)
            assert pong.type == aiohttp.WSMsgType.PONG  # websocket-level, what ccxt's binance keepalive uses
            await ws.send_json({"method": "UNSUBSCRIBE", "params": ["ethusdt@forceOrder"], "id": 7})
            assert await ws.receive_json(timeout=2) == {"result": None, "id": 7}
            assert sim.liquidations.subscribers("binance", "ETHUSDT") == 0
        # Binance's raw-stream URL subscribes at connect
        async with http.ws_connect(f"{sim.ws_url}/market/ws/solusdt@forceOrder") as ws:
            await sim.liquidations.wait_subscribed("binance", "SOLUSDT")
            ev = await sim.liquidations.emit(
                "binance", "SOLUSDT", liquidated_side="SHORT", quantity=12, price=150.5
            )
            msg = await ws.receive_json(timeout=2)
    assert msg["e"] == "forceOrder"
    assert msg["E"] == NOW
    assert msg["o"]["s"] == "SOLUSDT"
    assert (msg["o"]["S"], msg["o"]["q"], msg["o"]["l"], msg["o"]["ap"]) == ("BUY", "12", "12", "150.500")
    assert ev.delivered_to == 1


def test_sent_event_value() -> None:
    ev = SentEvent(
        exchange="bybit",
        symbol="BTCUSDT",
        ccxt_symbol=BTC,
        side="Buy",
        liquidated_side="LONG",
        quantity=0.5,
        price=100.0,
        quantity_str="0.500",
        price_str="100.00",
        t_ms=1,
    )
    assert ev.notional == 50.0
    assert data.instrument("bybit", ev.symbol).ccxt_symbol == ev.ccxt_symbol
