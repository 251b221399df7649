"""The symbol gate: every write waits until each exchange has checked the symbols against its markets.

A symbol that no exchange lists is bad input, and bad input writes nothing. Fetching starts before that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ccxt_pipeline.collect.request import pinned_exchange
from ccxt_pipeline.errors import SymbolError
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument, instrument_for, resolve


class SymbolGate:
    """Holds every write until each exchange has checked the symbols against its markets: a symbol that
    no exchange lists is bad input, and bad input writes nothing. Fetching starts before that."""

    def __init__(self, expected: int) -> None:
        self._pending = expected
        self._opened = 0
        self._unknown: dict[str, list[str]] = {}
        self.settled = asyncio.Event()
        self.error: SymbolError | None = None

    def checked(self, unknown: dict[str, str] | None) -> None:
        """One exchange is done checking (`unknown`: symbol -> why), or could not be opened (None)."""
        if unknown is not None:
            self._opened += 1
            for symbol, why in unknown.items():
                self._unknown.setdefault(symbol, []).append(why)
        self._pending -= 1
        if self._pending == 0:
            for whys in self._unknown.values():
                if self._opened and len(whys) == self._opened:
                    self.error = SymbolError(whys[0])
                    break
            self.settled.set()

    async def wait(self) -> None:
        await self.settled.wait()
        if self.error is not None:
            raise self.error


def check_symbols(
    client: ExchangeClient,
    symbols: Sequence[str],
    instruments: list[Instrument],
    unknown: dict[str, str],
    notes: list[str],
    *,
    all_symbols: bool = False,
) -> None:
    """Resolve `symbols` on the client's markets: found instruments are added to `instruments` (once each),
    symbols the exchange does not list go to `unknown` (symbol -> why) and their reason to `notes`. A full
    instrument id of another exchange is not this exchange's business: it is skipped without a word.
    `all_symbols`: every linear perpetual the exchange lists instead."""
    if all_symbols:
        instruments.extend(i for i in linear_perpetuals(client) if i not in instruments)
        return
    for symbol in symbols:
        pinned = pinned_exchange(symbol)
        if pinned is not None and pinned != client.name:
            continue
        try:
            found = resolve(symbol, [client.name], {client.name: client.markets})
        except SymbolError as exc:
            unknown[symbol] = str(exc)
            notes.append(str(exc))
            continue
        instruments.extend(i for i in found if i not in instruments)


def linear_perpetuals(client: ExchangeClient) -> list[Instrument]:
    """Every linear perpetual the exchange lists as trading, by ccxt symbol: ccxt's unified market
    structure marks them `swap` and `linear` and sets `active` from the exchange's status (Binance
    `status == "TRADING"`, Bybit `status == "Trading"`; ccxt 4.5.90 `binance.parse_market`,
    `bybit.fetch_future_markets`, https://docs.ccxt.com/#/README?id=market-structure)."""
    out = []
    for symbol, market in sorted(client.markets.items()):
        if not (market.get("swap") and market.get("linear")) or market.get("active") is False:
            continue
        if market.get("settle") != market.get("quote"):
            continue
        try:
            out.append(instrument_for(client.name, symbol, market))
        except SymbolError:
            continue  # not a perpetual this exchange settles the way we store it
    return out
