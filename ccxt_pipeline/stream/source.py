"""One exchange's liquidation subscription: watch, reconnect with backoff, watchdog for stale sockets.

ccxt.pro reconnects on the next `watch_*` call after a connection dies; this loop makes that call again
after a capped, jittered exponential backoff, and a watchdog closes sockets that went silent (no frame and
no pong for `stale_seconds`) so that they are reopened rather than trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ccxt_pipeline.errors import ExchangeError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument, listed_instrument
from ccxt_pipeline.settings import ExchangeSettings, StreamSettings
from ccxt_pipeline.stream.tap import Tap, tapped
from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND

log = logging.getLogger(__name__)


def backoff_seconds(attempt: int, cap: float, base: float = 0.5) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)], at least 50 ms."""
    return max(0.05, random.uniform(0, min(cap, base * 2**attempt)))


class StaleConnection(Exception):
    """The watchdog found no frame and no pong for too long."""


async def run_source(
    tap: Tap,
    exchange_settings: ExchangeSettings,
    stream_settings: StreamSettings,
    policy: RetryPolicy,
    instruments: Sequence[Instrument] | None,
    stop: asyncio.Event,
    *,
    clients: ClientFactory = ExchangeClient,
) -> None:
    """Stream until `stop`: `instruments`, or the whole market when None. `clients` builds the client of
    each connection (tests give one whose HTTP layer is a recorded transport)."""
    health = tap.health
    keepalive_ms = max(1000, int(stream_settings.stale_seconds * 1000 / 2))
    config = {"streaming": {"keepAlive": keepalive_ms, "maxPingPongMisses": 2}}
    opening_attempt = 0
    while not stop.is_set():
        client = clients(tap.venue.name, exchange_settings, policy, subclass=tapped(tap), config=config)
        try:
            await client.call("load_markets")
        except ExchangeError as exc:  # markets would not load (after retries): try again later, for ever
            await client.close()
            health.record_error(str(exc))
            opening_attempt += 1
            await _pause(stop, backoff_seconds(opening_attempt, stream_settings.reconnect_max_seconds))
            continue
        try:
            await _stream(client, tap, stream_settings, instruments, stop)
        finally:
            tap.closing()
            await client.close()
        break
    tap.finish()


async def _stream(
    client: ExchangeClient,
    tap: Tap,
    stream_settings: StreamSettings,
    instruments: Sequence[Instrument] | None,
    stop: asyncio.Event,
) -> None:
    health = tap.health
    tap.bind(client.exchange)
    if instruments is not None:
        found = [(i, listed_instrument(i, client.markets)) for i in instruments]  # ids from raw market ids
        listed = [x for _, x in found if x is not None]
        missing = [i.instrument_id for i, x in found if x is None]
        if missing:
            health.note = f"not listed on {tap.venue.name}: {', '.join(missing)}"
        if not listed:
            return
        instruments = listed
        health.subscribed = len(listed)
        for inst in listed:
            tap.define(inst, client.market(inst.ccxt_symbol))
    attempt = 0
    while not stop.is_set():
        try:
            await _watch_until_stop(client.exchange, instruments, stop, tap, stream_settings.stale_seconds)
        except Exception as exc:  # whatever broke the socket (ccxt, network, watchdog): reconnect
            health.record_error(f"{type(exc).__name__}: {str(exc)[:200]}")
            tap.disconnected(f"{type(exc).__name__}")
        if stop.is_set():
            break
        # Back off harder while reconnects keep failing; start over after a connection that held a minute.
        since = health.connected_at_ns
        health.connected_at_ns = None  # consumed: a failed redial does not count as a held connection
        attempt = 0 if since is not None and tap.clock() - since > 60 * NS_PER_SECOND else attempt + 1
        health.reconnects += 1
        await _pause(stop, backoff_seconds(attempt, stream_settings.reconnect_max_seconds))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _watch_until_stop(
    exchange: Any,
    instruments: Sequence[Instrument] | None,
    stop: asyncio.Event,
    tap: Tap,
    stale_seconds: float,
) -> None:
    """Hold the subscriptions beside the watchdog; return when `stop` is set, raise when the connection
    fails."""
    calls: list[Callable[[], Awaitable[Any]]]
    if instruments is None:
        calls = [functools.partial(exchange.watch_liquidations_for_symbols, [])]
    else:
        calls = [functools.partial(exchange.watch_liquidations, inst.ccxt_symbol) for inst in instruments]
    tasks = [asyncio.create_task(_hold_subscription(c)) for c in calls]
    tasks.append(asyncio.create_task(_watchdog(exchange, tap, stale_seconds)))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            if task.cancelled():
                # Not us (our own cancellation raises out of `wait`): closing a ccxt client cancels the
                # futures its watches wait on. A connection failure like any other, never the end of the
                # source (a CancelledError escaping here ended the stream for good after an outage).
                raise StaleConnection("the watch was cancelled by its closing socket")
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)


async def _hold_subscription(watch: Callable[[], Awaitable[Any]]) -> None:
    """Keep one `watch_*` subscription open, for its failure only.

    Events never come back through here: the tapped class hands each message to the tap and never
    resolves ccxt's future (stream/tap.py), so the call subscribes and then stays pending until its
    connection fails, when it raises, which is what the reconnect loop waits for. Were a ccxt version to
    resolve it anyway, its value (ccxt's own parse, which loses items) is discarded on purpose and the
    subscription renewed.
    """
    while True:
        await watch()


async def _watchdog(exchange: Any, tap: Tap, stale_seconds: float) -> None:
    """Raise StaleConnection when a connected socket has shown no frame and no pong for `stale_seconds`, or
    when no socket has been connected for `stale_seconds`: ccxt does not always reject a pending watch when
    its socket closes while it is (re)connecting, and a watch left pending would wait forever."""
    down_since: int | None = tap.clock()
    while True:
        await asyncio.sleep(min(1.0, stale_seconds / 4))
        health, now = tap.health, tap.clock()
        if not health.connected:
            down_since = down_since or now
            if now - down_since > stale_seconds * NS_PER_SECOND:
                await _close_all(exchange)
                raise StaleConnection(f"not connected for {stale_seconds:.0f}s")
            continue
        down_since = None
        pongs = [getattr(c, "lastPong", None) or 0 for c in list(getattr(exchange, "clients", {}).values())]
        alive = max(health.last_frame_ns or 0, health.connected_at_ns or 0, max(pongs, default=0) * NS_PER_MS)
        if now - alive > stale_seconds * NS_PER_SECOND:
            await _close_all(exchange)
            raise StaleConnection(f"no frame and no pong for {stale_seconds:.0f}s")


async def _close_all(exchange: Any) -> None:
    for ws in list(getattr(exchange, "clients", {}).values()):
        with contextlib.suppress(Exception):
            await ws.close()
