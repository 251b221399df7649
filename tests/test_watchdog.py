"""The stream watchdog: a socket that never comes back, or goes quiet, is redialled instead of waited on.

ccxt does not always reject a pending `watch_*` call when its socket closes while it is (re)connecting
(seen in tests/test_stream.py's drop-and-silence stress: the client sat disconnected with its watch pending
until the test gave up). The watchdog is what turns that into a reconnect; the clock is injected here.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.models import Record
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.source import StaleConnection, _watch_until_stop, _watchdog
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.timeutil import NS_PER_SECOND
from ccxt_pipeline.venues import VENUES


class Clock:
    """The watchdog's idea of time, moved by the test, not by the machine."""

    def __init__(self) -> None:
        self.now = 1_800_000_000 * NS_PER_SECOND

    def __call__(self) -> int:
        return self.now


class FakeSocket:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


STALE = 0.05
"""Seconds of watchdog time; it checks every STALE / 4 seconds of real time."""


def _tap(clock: Clock) -> Tap:
    def emit(records: list[Record]) -> None:
        pass

    return Tap(VENUES["binance"], ExchangeHealth("binance"), emit, clock, ["MARKET.BINANCE"])


async def _run_until_it_fires(watchdog: asyncio.Task[None], clock: Clock) -> BaseException | None:
    """Move the clock a second at a time until the watchdog ends (bounded: it must end long before)."""
    for _ in range(2_000):
        if watchdog.done():
            return watchdog.exception()
        clock.now += NS_PER_SECOND
        await asyncio.sleep(STALE / 4)
    watchdog.cancel()
    raise AssertionError("the watchdog never fired")


async def _silent_socket_fires(connected: bool) -> str:
    """Run the watchdog over a socket that hears nothing until it fires; its message (the socket closed)."""
    clock = Clock()
    tap, socket = _tap(clock), FakeSocket()
    if connected:
        tap.connected()
    exchange = SimpleNamespace(clients={"ws": socket})
    error = await _run_until_it_fires(asyncio.create_task(_watchdog(exchange, tap, STALE)), clock)
    assert isinstance(error, StaleConnection)
    assert socket.closed
    return str(error)


async def test_a_socket_that_never_connects_is_redialled() -> None:
    assert "not connected" in await _silent_socket_fires(connected=False)


async def test_a_connected_socket_that_goes_quiet_is_redialled() -> None:
    assert "no frame and no pong" in await _silent_socket_fires(connected=True)


async def test_a_socket_that_keeps_talking_is_left_alone() -> None:
    clock = Clock()
    tap, socket = _tap(clock), FakeSocket()
    tap.connected()
    exchange = SimpleNamespace(clients={"ws": socket})
    watchdog = asyncio.create_task(_watchdog(exchange, tap, STALE))
    try:
        for _ in range(40):  # 40 checks' worth of real time; a frame arrives within every STALE of clock time
            clock.now += int(STALE / 2 * NS_PER_SECOND)
            tap.frame()
            await asyncio.sleep(STALE / 4)
            assert not watchdog.done()
        assert not socket.closed
    finally:
        watchdog.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watchdog


async def test_a_watch_cancelled_by_its_closing_socket_is_a_reconnect_not_the_end() -> None:
    """Closing a ccxt client cancels the futures its watches wait on; that must surface as a connection
    failure (the caller reconnects), not as a CancelledError that ends the stream for good."""
    clock = Clock()
    tap = _tap(clock)
    tap.connected()
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def watch_liquidations(symbol: str) -> asyncio.Future[None]:
        return pending

    exchange = SimpleNamespace(clients={}, watch_liquidations=watch_liquidations)
    inst = instrument_for("binance", "BTC/USDT:USDT")
    asyncio.get_running_loop().call_soon(pending.cancel)
    with pytest.raises(StaleConnection, match="cancelled"):
        await asyncio.wait_for(_watch_until_stop(exchange, [inst], asyncio.Event(), tap, 60.0), timeout=30)
