"""`symbols: all` on an exchange without a whole-market liquidation stream (Bybit): one topic per symbol, for
every linear perpetual the exchange lists, re-read once a day so that new listings join.

Bybit has no topic for every symbol: its liquidation stream is `allLiquidation.{symbol}`, one topic per
symbol (https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation). ccxt 4.5.90 has no
`watch_liquidations_for_symbols` for Bybit: `watch_liquidations(symbol)` sends one `subscribe` request per
symbol with that single topic in `args` (ccxt/pro/bybit.py `watch_liquidations` -> `watch_topics`), on one
socket per URL. Bybit's args limits for a public connection
(https://bybit-exchange.github.io/docs/v5/ws/connect, "Public channel - Args limits"): "for one public
connection, you cannot have length of "args" array over 21,000 characters"; "No args limit for Futures and
Spread for now". One topic per request keeps every request far inside that; the topics of one connection
together are checked against it here (`ARGS_BUDGET`), read conservatively as a
budget for the whole connection: ~23 characters a topic, so about 900 symbols fit (Bybit lists ~500).

Each day the market list is read again (a fresh REST client, markets loaded): if the perpetuals changed, the
socket is reopened with the new list (a delisted symbol is dropped, a new one subscribed); the seconds in
between are recorded as a coverage gap like any other disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from ccxt_pipeline.collect.gate import linear_perpetuals
from ccxt_pipeline.errors import ExchangeError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.settings import ExchangeSettings, StreamSettings
from ccxt_pipeline.stream.source import backoff_seconds, run_source
from ccxt_pipeline.stream.tap import Tap

log = logging.getLogger(__name__)

RELIST_SECONDS = 86_400.0
"""How often the exchange's market list is read again (new listings join, delisted ones are dropped)."""

ARGS_BUDGET: dict[str, tuple[str, int]] = {"bybit": ("allLiquidation.", 21_000)}
"""Per exchange: the topic prefix of its per-symbol liquidation stream and the most characters the topics
of one public connection may take (Bybit, docs cited in the module's doc)."""


async def run_every_perpetual(
    tap: Tap,
    exchange_settings: ExchangeSettings,
    stream_settings: StreamSettings,
    policy: RetryPolicy,
    stop: asyncio.Event,
    *,
    clients: ClientFactory = ExchangeClient,
    relist_seconds: float | None = None,
) -> None:
    """Stream every linear perpetual `tap`'s exchange lists until `stop`, re-reading the list every
    `relist_seconds` (default `RELIST_SECONDS`) and resubscribing when it changed."""
    every = RELIST_SECONDS if relist_seconds is None else relist_seconds
    instruments = await _listed(tap, exchange_settings, stream_settings, policy, stop, clients)
    while instruments is not None and not stop.is_set():
        subscribed = _within_budget(tap, instruments)
        ids = {i.instrument_id for i in subscribed}
        tap.gap_ids = sorted(ids)
        log.info("%s: liquidations of %d linear perpetuals subscribed", tap.venue.name, len(subscribed))
        round_stop = asyncio.Event()
        relisted: list[list[Instrument]] = []
        watcher = asyncio.create_task(
            _relist(
                tap,
                exchange_settings,
                stream_settings,
                policy,
                stop,
                round_stop,
                every,
                ids,
                relisted,
                clients,
            )
        )
        try:
            await run_source(
                tap, exchange_settings, stream_settings, policy, subscribed, round_stop, clients=clients
            )
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if stop.is_set() or not relisted:
            break
        instruments = relisted[0]
        tap.reopen()  # the seconds until the new socket's first frame are a gap
    tap.finish()


async def _relist(
    tap: Tap,
    exchange_settings: ExchangeSettings,
    stream_settings: StreamSettings,
    policy: RetryPolicy,
    stop: asyncio.Event,
    round_stop: asyncio.Event,
    every: float,
    ids: set[str],
    out: list[list[Instrument]],
    clients: ClientFactory,
) -> None:
    """Every `every` seconds read the list again; when it changed, put it in `out` and end the round. `stop`
    ends the round too."""
    try:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
            if stop.is_set():
                return
            listed = await _listed(tap, exchange_settings, stream_settings, policy, stop, clients, once=True)
            if listed is not None and {i.instrument_id for i in _within_budget(tap, listed)} != ids:
                out.append(listed)
                return
    finally:
        round_stop.set()


async def _listed(
    tap: Tap,
    exchange_settings: ExchangeSettings,
    stream_settings: StreamSettings,
    policy: RetryPolicy,
    stop: asyncio.Event,
    clients: ClientFactory,
    *,
    once: bool = False,
) -> list[Instrument] | None:
    """Every active linear perpetual the exchange lists, from freshly loaded markets; retried with backoff
    until `stop` (None then), or tried `once` (None if it failed: the current list is kept)."""
    attempt = 0
    while not stop.is_set():
        try:
            async with clients(tap.venue.name, exchange_settings, policy) as client:
                return linear_perpetuals(client)
        except ExchangeError as exc:
            tap.health.record_error(str(exc))
            if once:
                return None
            attempt += 1
            with contextlib.suppress(TimeoutError):
                wait = backoff_seconds(attempt, stream_settings.reconnect_max_seconds)
                await asyncio.wait_for(stop.wait(), timeout=wait)
    return None


def topic_chars(tap: Tap, instruments: list[Instrument]) -> int:
    """Length of the `args` array of every topic of `instruments` on one connection, as JSON, at most: the
    symbol of the instrument id (`BTCUSDT-LINEAR`) is never shorter than the market id (`BTCUSDT`)."""
    prefix = ARGS_BUDGET[tap.venue.name][0] if tap.venue.name in ARGS_BUDGET else ""
    return len(json.dumps([prefix + i.instrument_id.partition(".")[0] for i in instruments]))


def _within_budget(tap: Tap, instruments: list[Instrument]) -> list[Instrument]:
    """The instruments whose topics fit the exchange's args budget for one connection; any left out are
    told in the health note and the log (never silently)."""
    budget = ARGS_BUDGET[tap.venue.name][1] if tap.venue.name in ARGS_BUDGET else None
    if budget is None or topic_chars(tap, instruments) <= budget:
        return instruments
    fits = list(instruments)
    while fits and topic_chars(tap, fits) > budget:
        fits.pop()
    left = len(instruments) - len(fits)
    tap.health.note = (
        f"{left} perpetuals not subscribed: past {tap.venue.name}'s {budget}-character args limit"
    )
    log.warning("%s: %s", tap.venue.name, tap.health.note)
    return fits
