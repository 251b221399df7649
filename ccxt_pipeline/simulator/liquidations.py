"""Liquidation events over the simulator's websockets: one feed shared by Binance USD-M (`forceOrder`) and
Bybit v5 (`allLiquidation`), with the ground truth of what was written to which socket and knobs for
websocket faults.

    async with ExchangeSimulator(seed=0) as sim:
        ...  # a ccxt.pro client calls watch_liquidations(...)
        await sim.liquidations.wait_subscribed("binance", "BTCUSDT")
        ev = await sim.liquidations.emit("binance", "BTCUSDT", liquidated_side="LONG", quantity=0.014, price=9910)
        assert sim.liquidations.sent == [ev]

The model is exchange neutral: an event is the liquidation of a LONG or SHORT position of `quantity` base
units (contract size 1) at `price`, at `t_ms`. Each exchange module turns it into its wire format
(`WireFormat`, registered by `binance.register` / `bybit.register`):
- Binance `S` is the side of the liquidation ORDER: a liquidated LONG is closed by a SELL.
- Bybit `S` is the side of the liquidated POSITION: a liquidated LONG is "Buy".

Ground truth: `sent` holds every event written intact to at least one socket (`delivered_to` counts the
sockets); `undelivered` holds the events no socket received (nobody subscribed, `silence`, every frame
garbled by `malformed_every`, or the socket was closing). Generated events never repeat
(exchange, symbol, T, side, price, quantity): their quantities are unique per symbol; `emit` refuses a repeat.

Knobs (plain attributes or methods, safe to call from another thread): `rate_per_s`, `malformed_every`,
`malformed_kind`, `duplicate_every`, `drop_connections`, `close_connections`, `silence`. The simulator's
`down` knob refuses websocket handshakes as well (the server middleware aborts them). `emit`, `emit_random`,
`burst` and `wait_subscribed` are coroutines of the simulator's loop: from another thread run them with
`asyncio.run_coroutine_threadsafe(..., loop)` (tests/conftest.py's `SimulatorThread.run`).

Determinism: `burst`/`emit_random` draw from a generator seeded with the simulator's seed, the background
generator (`rate_per_s`) from another; with a fixed `now_ms` the same calls give the same events. When they
happen (and so the background events' T and mark price on a wall clock) follows real time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import WSMsgType, web

from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator._http import dumps

if TYPE_CHECKING:
    from ccxt_pipeline.simulator.server import ExchangeSimulator

LiquidatedSide = Literal["LONG", "SHORT"]
LIQUIDATED_SIDES: tuple[LiquidatedSide, ...] = ("LONG", "SHORT")
MalformedKind = Literal["truncated_json", "text"]
"""`truncated_json`: the first half of the real frame (starts with `{`, invalid JSON); `text`: a non-JSON
text frame (`<html>...502 Bad Gateway...</html>`)."""
GARBAGE_TEXT = "<html><body><h1>502 Bad Gateway</h1></body></html>"
FINAL_STATUSES = ("FILLED", "EXPIRED")
"""Binance order states whose accumulated fill `z` is final (venues.py, binance `LiquidationWire`)."""


@dataclass(frozen=True, kw_only=True)
class SentEvent:
    """One liquidation event and what happened to it on the wire."""

    exchange: str
    symbol: str
    """The exchange's id (`BTCUSDT`)."""
    ccxt_symbol: str
    """The unified symbol ccxt reports (`BTC/USDT:USDT`)."""
    side: str
    """The wire `S` (Binance `SELL`/`BUY`, Bybit `Buy`/`Sell`)."""
    liquidated_side: LiquidatedSide
    quantity: float
    """Base units (contract size 1)."""
    price: float
    quantity_str: str
    price_str: str
    t_ms: int
    """The event's trade time (Binance `o.T`, Bybit `data[].T`)."""
    last_fill_str: str | None = None
    """Binance `l`, the liquidation order's last fill, when the event stands for several fills (Binance
    pushes one snapshot per symbol per second): `quantity` (`z`) is their sum and `price` (`ap`) their
    average. None: a single fill, `l` = `z`."""
    status: str = "FILLED"
    """Binance `X`: FILLED, or EXPIRED when the IOC order's rest was cancelled after fills (`q` > `z`)."""
    order_quantity_str: str | None = None
    """Binance `q`, the order's original quantity; None: `quantity` (a FILLED order)."""
    delivered_to: int = 0
    """Sockets the event was written to intact (a duplicated frame counts once)."""
    duplicated: int = 0
    """Sockets that got the event's frame twice (`duplicate_every`)."""
    malformed: int = 0
    """Sockets that got garbage instead of the event's frame (`malformed_every`)."""

    @property
    def key(self) -> tuple[str, str, int, str, float, float]:
        """(exchange, symbol, T, wire side, price, quantity): distinct for distinct events."""
        return (self.exchange, self.symbol, self.t_ms, self.side, self.price, self.quantity)

    @property
    def notional(self) -> float:
        return self.quantity * self.price

    @property
    def last_fill(self) -> float:
        """The order's last fill (Binance `l`; `quantity` for one fill and on Bybit): what ccxt reports as
        `contracts`."""
        return float(self.last_fill_str) if self.last_fill_str is not None else self.quantity

    @property
    def final(self) -> bool:
        """Whether the order's state is final, so that `quantity` was liquidated (stored by the pipeline)."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, kw_only=True)
class WireFormat:
    """How one exchange puts liquidations on the wire (provided by the exchange module)."""

    wire_side: Callable[[LiquidatedSide], str]
    """The liquidated position side -> the wire `S`."""
    topic: Callable[[str], str]
    """Exchange symbol id -> the stream/topic a client subscribes to for it (`btcusdt@forceOrder`)."""
    all_topic: str | None
    """The all-market stream (Binance `!forceOrder@arr`), None if the exchange has none."""
    message: Callable[[Sequence[SentEvent], int], dict[str, Any]]
    """(events, now ms) -> one wire message; several events only if `batches`."""
    batches: bool
    """Whether one message may carry several events (Bybit's `data` list)."""
    orders: bool = False
    """Whether the wire shows the liquidation ORDER (Binance: fills `l`/`z`, status `X`, quantity `q`), so
    that random events get several fills and some EXPIRED orders."""


@dataclass(eq=False, kw_only=True)
class WsConnection:
    """One accepted websocket."""

    exchange: str
    path: str
    conn_id: str
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    topics: set[str] = field(default_factory=set)
    dead: bool = False
    """Set by drop/close knobs: nothing more is written to it."""
    frames_sent: int = 0


@dataclass(frozen=True)
class ReceivedFrame:
    """A text frame a client sent (subscribe requests, pings)."""

    exchange: str
    path: str
    text: str


class LiquidationFeed:
    """Generates liquidation events, writes them to the subscribed sockets and records ground truth.

    Created by `ExchangeSimulator` as `sim.liquidations`; started and stopped with it.
    """

    tick_s = 0.005
    """Period of the background generator's loop."""

    def __init__(self, sim: ExchangeSimulator) -> None:
        self._sim = sim
        self._formats: dict[str, WireFormat] = {}
        self._conns: dict[str, dict[str, WsConnection]] = collections.defaultdict(dict)
        self.sent: list[SentEvent] = []
        """Every event written intact to at least one socket, in emission order."""
        self.undelivered: list[SentEvent] = []
        """Every event emitted that no socket received intact."""
        self.rate_per_s: dict[str, float] = {}
        """exchange -> mean random events per second for its subscribed symbols (Poisson; 0/absent: off)."""
        self.malformed_every: int | None = None
        """Every Nth event frame per exchange is replaced by garbage (`malformed_kind`)."""
        self.malformed_kind: MalformedKind = "truncated_json"
        self.duplicate_every: int | None = None
        """Every Nth event frame per exchange is written twice."""
        self.connections_opened: collections.Counter[str] = collections.Counter()
        self.subscribe_messages: collections.Counter[str] = collections.Counter()
        """Subscribe requests received (messages, not topics)."""
        self.frames_sent: collections.Counter[str] = collections.Counter()
        """Text frames written: events, duplicates, garbage, acks and app-level pongs."""
        self.pings_received: collections.Counter[str] = collections.Counter()
        """Pings received: websocket ping frames and app-level pings (Bybit `{"op":"ping"}`)."""
        self.received: list[ReceivedFrame] = []
        """Every text frame clients sent, in order."""
        self._silent_until: dict[str, float] = {}
        self._data_frames: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(f"liquidations:{sim.seed}")
        self._bg_rng = random.Random(f"liquidations-background:{sim.seed}")
        self._id_rng = random.Random(f"liquidations-conn-ids:{sim.seed}")
        self._used_keys: set[tuple[str, str, int, str, float, float]] = set()
        self._used_units: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
        self._next_unit: dict[tuple[str, str], dict[int, int]] = collections.defaultdict(dict)
        """Per symbol, used quantity (in steps) -> a larger one such that every one between is used too."""
        self._conn_seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[None]] = set()

    # --- exchange modules --------------------------------------------------------------------------------

    def add_exchange(self, exchange: str, wire: WireFormat) -> None:
        """Called by an exchange module's `register` to make `exchange` a liquidation source."""
        self._formats[exchange] = wire

    @property
    def exchanges(self) -> list[str]:
        return list(self._formats)

    def wire_side(self, exchange: str, liquidated_side: LiquidatedSide) -> str:
        return self._wire(exchange).wire_side(liquidated_side)

    async def serve(
        self,
        request: web.Request,
        exchange: str,
        on_text: Callable[[WsConnection, str], Awaitable[None]],
        *,
        topics: Sequence[str] = (),
    ) -> web.WebSocketResponse:
        """Accept a websocket for `exchange` and run it until it closes; `on_text` handles client text frames.

        Websocket ping frames are answered by hand (`autoping=False`) so that `silence` can withhold pongs.
        `topics` are subscribed from the start (Binance raw streams in the URL path).
        """
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = WsConnection(
            exchange=exchange,
            path=request.path,
            conn_id=str(uuid.UUID(int=self._id_rng.getrandbits(128), version=4)),
            ws=ws,
            transport=request.transport,
            topics=set(topics),
        )
        self._conns[exchange][f"{next(self._conn_seq)}"] = conn
        self.connections_opened[exchange] += 1
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.received.append(ReceivedFrame(exchange, request.path, msg.data))
                    await on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    self.pings_received[exchange] += 1
                    if not self.is_silent(exchange) and not conn.dead:
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            await ws.pong(msg.data)
        finally:
            conn.dead = True
            for key, c in list(self._conns[exchange].items()):
                if c is conn:
                    del self._conns[exchange][key]
        return ws

    async def reply(self, conn: WsConnection, payload: Any) -> bool:
        """Write a control frame (ack, pong, error) unless the exchange is silenced; True if written."""
        if self.is_silent(conn.exchange):
            return False
        return await self._write(conn, dumps(payload))

    def subscribe(self, conn: WsConnection, topics: Sequence[str]) -> None:
        self.subscribe_messages[conn.exchange] += 1
        conn.topics.update(topics)

    # --- state -------------------------------------------------------------------------------------------

    def connections(self, exchange: str) -> list[WsConnection]:
        """The open websockets of `exchange`, oldest first."""
        return [c for c in list(self._conns[exchange].values()) if not c.dead]

    def subscribers(self, exchange: str, symbol: str) -> int:
        """How many open sockets would receive an event of `symbol` now."""
        wire = self._wire(exchange)
        topic = wire.topic(self._instrument(exchange, symbol).id)
        return sum(1 for c in self.connections(exchange) if _wants(c, topic, wire.all_topic))

    def subscribed_symbols(self, exchange: str) -> list[str]:
        """Exchange ids of the simulated symbols at least one socket would receive."""
        return [i.id for i in self._sim.instruments(exchange) if self.subscribers(exchange, i.id) > 0]

    async def wait_subscribed(
        self, exchange: str, symbol: str, *, connections: int = 1, max_wait_s: float = 5.0
    ) -> None:
        """Wait until at least `connections` sockets would receive an event of `symbol`; TimeoutError after
        `max_wait_s`.

        ccxt subscribes after its websocket connects, so a test emits only once this returns.
        """
        deadline = time.monotonic() + max_wait_s
        while self.subscribers(exchange, symbol) < connections:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {connections} subscriber(s) for {exchange} {symbol} after {max_wait_s}s"
                )
            await asyncio.sleep(0.002)

    def is_silent(self, exchange: str) -> bool:
        return time.monotonic() < self._silent_until.get(exchange, 0.0)

    def reset(self) -> None:
        """Clear ground truth and counters (connections stay open, knobs unchanged)."""
        self.sent.clear()
        self.undelivered.clear()
        self.connections_opened.clear()
        self.subscribe_messages.clear()
        self.frames_sent.clear()
        self.pings_received.clear()
        self.received.clear()
        self._data_frames.clear()

    # --- knobs -------------------------------------------------------------------------------------------

    def drop_connections(self, exchange: str) -> int:
        """Abort every socket of `exchange` at the TCP level (no close frame); returns how many."""
        conns = self.connections(exchange)
        for conn in conns:
            conn.dead = True

        def abort() -> None:
            for conn in conns:
                if conn.transport is not None:
                    conn.transport.abort()

        self._call_on_loop(abort)
        return len(conns)

    def close_connections(self, exchange: str, code: int = 1000) -> int:
        """Close every socket of `exchange` cleanly (a close frame with `code`); returns how many."""
        conns = self.connections(exchange)
        for conn in conns:
            conn.dead = True

        def close() -> None:
            for conn in conns:
                task = asyncio.ensure_future(_close(conn, code))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

        self._call_on_loop(close)
        return len(conns)

    def silence(self, exchange: str, seconds: float) -> None:
        """Keep the sockets of `exchange` open but write nothing for `seconds` (no events, no pongs, no acks;
        events emitted meanwhile go to `undelivered`). `silence(exchange, 0)` ends it."""
        self._silent_until[exchange] = time.monotonic() + seconds

    def _call_on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is running or loop.is_closed():
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    # --- events ------------------------------------------------------------------------------------------

    async def emit(
        self,
        exchange: str,
        symbol: str,
        *,
        liquidated_side: LiquidatedSide,
        quantity: float,
        price: float,
        t_ms: int | None = None,
        last_fill: float | None = None,
        status: str = "FILLED",
        order_quantity: float | None = None,
    ) -> SentEvent:
        """Write one liquidation to every socket of `exchange` subscribed to `symbol` (exchange id or unified
        symbol; Binance `!forceOrder@arr` sockets get every symbol). `t_ms` defaults to the simulator's now.

        Binance only: `quantity` is the order's accumulated fill `z` and `price` its average price `ap`;
        `last_fill` (`l`, < `quantity`) makes the event stand for several fills; `status` (`X`) and
        `order_quantity` (`q`) describe the order (e.g. EXPIRED with `order_quantity` > `quantity`).

        Returns the event with its delivery counts (also appended to `sent` or `undelivered`). Raises
        ValueError for an unknown exchange/symbol/side or an event identical to an earlier one.
        """
        event = self._event(exchange, symbol, liquidated_side, quantity, price, t_ms)
        inst = self._instrument(exchange, symbol)
        decimals = _decimals(inst.step_size)
        if last_fill is not None and not 0 < last_fill <= quantity:
            raise ValueError("last_fill must be in (0, quantity]")
        if order_quantity is not None and order_quantity < quantity:
            raise ValueError("order_quantity must be >= quantity")
        event = dataclasses.replace(
            event,
            last_fill_str=None if last_fill is None else data.fmt(float(last_fill), decimals),
            status=status,
            order_quantity_str=None if order_quantity is None else data.fmt(float(order_quantity), decimals),
        )
        (out,) = await self._deliver(exchange, [event], batch=False)
        return out

    async def emit_random(self, exchange: str, symbol: str, t_ms: int | None = None) -> SentEvent:
        """`emit` a random liquidation (seeded) near the symbol's mark price."""
        inst = self._instrument(exchange, symbol)
        t = self._sim.now() if t_ms is None else t_ms
        event = self._random_event(self._rng, exchange, inst, t)
        (out,) = await self._deliver(exchange, [event], batch=False)
        return out

    async def burst(
        self, exchange: str, symbol: str, n: int, within_ms: int = 10, batch: bool = False
    ) -> list[SentEvent]:
        """`n` random liquidations of `symbol` with trade times spread evenly over `within_ms` from now,
        written back to back. `batch=True` (Bybit only) packs them into one message (`data` with n items)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        wire = self._wire(exchange)
        if batch and not wire.batches:
            raise ValueError(f"{exchange} sends one liquidation per message; batch=True is Bybit only")
        inst = self._instrument(exchange, symbol)
        start = self._sim.now()
        step = within_ms / (n - 1) if n > 1 else 0.0
        events = [self._random_event(self._rng, exchange, inst, start + round(k * step)) for k in range(n)]
        return await self._deliver(exchange, events, batch=batch)

    def _event(
        self,
        exchange: str,
        symbol: str,
        liquidated_side: LiquidatedSide,
        quantity: float,
        price: float,
        t_ms: int | None,
    ) -> SentEvent:
        wire = self._wire(exchange)
        inst = self._instrument(exchange, symbol)
        if liquidated_side not in LIQUIDATED_SIDES:
            raise ValueError(f"liquidated_side must be one of {LIQUIDATED_SIDES}, not {liquidated_side!r}")
        if not quantity > 0 or not price > 0:
            raise ValueError("quantity and price must be > 0")
        event = SentEvent(
            exchange=exchange,
            symbol=inst.id,
            ccxt_symbol=inst.ccxt_symbol,
            side=wire.wire_side(liquidated_side),
            liquidated_side=liquidated_side,
            quantity=float(quantity),
            price=float(price),
            quantity_str=data.fmt(float(quantity), _decimals(inst.step_size)),
            price_str=data.fmt(float(price), inst.price_decimals),
            t_ms=self._sim.now() if t_ms is None else int(t_ms),
        )
        if event.key in self._used_keys:
            raise ValueError(f"an identical event was emitted before: {event.key}")
        self._used_keys.add(event.key)
        step = float(inst.step_size)
        units = round(event.quantity / step)
        if abs(units * step - event.quantity) < step * 1e-6:
            self._used_units[(exchange, inst.id)].add(units)
        return event

    def _random_event(self, rng: random.Random, exchange: str, inst: data.Instrument, t_ms: int) -> SentEvent:
        side: LiquidatedSide = rng.choice(LIQUIDATED_SIDES)
        mark = data.mark_price(exchange, inst.id, t_ms, self._sim.seed)
        offset = rng.uniform(0.0005, 0.004)  # a long is liquidated below the mark, a short above it
        raw = mark * (1 - offset) if side == "LONG" else mark * (1 + offset)
        tick = float(inst.tick_size)
        price = round(round(raw / tick) * tick, inst.price_decimals)
        step = float(inst.step_size)
        notional = 10 ** rng.uniform(2.0, 5.5)  # $100 .. $316k
        units = max(1, round(notional / price / step))
        units = self._free_units((exchange, inst.id), units)  # unique quantities: every event distinct
        quantity = round(units * step, _decimals(inst.step_size))
        event = self._event(exchange, inst.id, side, quantity, price, t_ms)
        return _with_fills(event, inst) if self._wire(exchange).orders else event

    def _free_units(self, key: tuple[str, str], units: int) -> int:
        """The smallest unused quantity (in steps) >= `units`: what walking up one step at a time finds, but
        in near-constant time once a symbol has tens of thousands of events (`_next_unit` pointers, shortened
        as they are followed; `_used_units` only grows, so a pointer never becomes wrong)."""
        used, skip = self._used_units[key], self._next_unit[key]
        path = []
        while units in used:
            path.append(units)
            units = skip.get(units, units + 1)
        for u in path:
            skip[u] = units
        return units

    async def _deliver(self, exchange: str, events: Sequence[SentEvent], *, batch: bool) -> list[SentEvent]:
        wire = self._wire(exchange)
        groups = [list(range(len(events)))] if batch else [[k] for k in range(len(events))]
        delivered = [0] * len(events)
        duplicated = [0] * len(events)
        malformed = [0] * len(events)
        silent = self.is_silent(exchange)
        for group in groups:
            if silent:
                break
            topic = wire.topic(events[group[0]].symbol)
            targets = [c for c in self.connections(exchange) if _wants(c, topic, wire.all_topic)]
            if not targets:
                continue
            text = dumps(
                wire.message([events[k] for k in group], max(self._sim.now(), events[group[-1]].t_ms))
            )
            for conn in targets:
                self._data_frames[exchange] += 1
                n = self._data_frames[exchange]
                if self.malformed_every and n % self.malformed_every == 0:
                    garbage = (
                        text[: len(text) // 2] if self.malformed_kind == "truncated_json" else GARBAGE_TEXT
                    )
                    if await self._write(conn, garbage):
                        for k in group:
                            malformed[k] += 1
                    continue
                if not await self._write(conn, text):
                    continue
                for k in group:
                    delivered[k] += 1
                if self.duplicate_every and n % self.duplicate_every == 0 and await self._write(conn, text):
                    for k in group:
                        duplicated[k] += 1
        out = []
        for k, event in enumerate(events):
            done = dataclasses.replace(
                event, delivered_to=delivered[k], duplicated=duplicated[k], malformed=malformed[k]
            )
            (self.sent if done.delivered_to > 0 else self.undelivered).append(done)
            out.append(done)
        return out

    async def _write(self, conn: WsConnection, text: str) -> bool:
        if conn.dead or conn.ws.closed:
            return False
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            return False
        conn.frames_sent += 1
        self.frames_sent[conn.exchange] += 1
        return True

    def _wire(self, exchange: str) -> WireFormat:
        wire = self._formats.get(exchange)
        if wire is None:
            raise ValueError(
                f"{exchange!r} has no simulated liquidation stream; expected one of {self.exchanges}"
            )
        return wire

    def _instrument(self, exchange: str, symbol: str) -> data.Instrument:
        inst = data.find_instrument(exchange, symbol)
        if inst is None:
            inst = next((i for i in self._sim.instruments(exchange) if i.ccxt_symbol == symbol), None)
        if inst is None:
            raise ValueError(f"{exchange} does not simulate {symbol!r}")
        return inst

    # --- lifecycle (called by the simulator) -------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running loop and start the background generator (`rate_per_s`)."""
        self._loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._generate())

    async def stop(self) -> None:
        """Stop the generator and close every socket with 1001 (going away)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conns = [c for exchange in list(self._conns) for c in self.connections(exchange)]
        for conn in conns:
            conn.dead = True
        if conns:
            await asyncio.gather(*(_close(c, 1001) for c in conns))

    async def _generate(self) -> None:
        next_at: dict[str, float] = {}
        rates: dict[str, float] = {}
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            for exchange in list(self._formats):
                rate = float(self.rate_per_s.get(exchange, 0.0) or 0.0)
                if rate <= 0:
                    next_at.pop(exchange, None)
                    continue
                if exchange not in next_at or rates.get(exchange) != rate:
                    rates[exchange] = rate
                    next_at[exchange] = now + self._bg_rng.expovariate(rate)
                    continue
                next_at[exchange] = max(next_at[exchange], now - 1.0)  # no storm after a stall
                while next_at[exchange] <= now:
                    symbols = self.subscribed_symbols(exchange)
                    if symbols and not self.is_silent(exchange):
                        inst = data.instrument(exchange, self._bg_rng.choice(symbols))
                        event = self._random_event(self._bg_rng, exchange, inst, self._sim.now())
                        await self._deliver(exchange, [event], batch=False)
                    next_at[exchange] += self._bg_rng.expovariate(rate)


def _with_fills(event: SentEvent, inst: data.Instrument) -> SentEvent:
    """A random event as Binance shows a liquidation order: one to three fills (`l`, the last one, below
    the accumulated `z` when there are several), and one order in ten EXPIRED after partial fills (its
    original quantity `q` above `z`). Drawn from the event's own key, so the feed's generators draw the
    same numbers as before and the same event always gets the same fills."""
    rng = random.Random(f"fills:{event.key}")
    step = float(inst.step_size)
    decimals = _decimals(inst.step_size)
    units = round(event.quantity / step)
    fills = rng.choice((1, 1, 2, 3)) if units >= 3 else 1
    last = units if fills == 1 else rng.randint(1, units - (fills - 1))
    expired = rng.random() < 0.1
    return dataclasses.replace(
        event,
        last_fill_str=None if fills == 1 else data.fmt(round(last * step, decimals), decimals),
        status="EXPIRED" if expired else "FILLED",
        order_quantity_str=(
            data.fmt(round((units + rng.randint(1, max(1, units // 2))) * step, decimals), decimals)
            if expired
            else None
        ),
    )


def _wants(conn: WsConnection, topic: str, all_topic: str | None) -> bool:
    return topic in conn.topics or (all_topic is not None and all_topic in conn.topics)


def _decimals(step: str) -> int:
    return len(step.split(".")[1]) if "." in step else 0


async def _close(conn: WsConnection, code: int) -> None:
    """Send a close frame and wait briefly for the client's; abort the socket if it does not answer."""
    try:
        await asyncio.wait_for(conn.ws.close(code=code), timeout=1.0)
    except (TimeoutError, ConnectionError, RuntimeError):
        if conn.transport is not None:
            conn.transport.abort()


def parse_json(text: str) -> Any:
    """A client frame as JSON, or None if it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return None
