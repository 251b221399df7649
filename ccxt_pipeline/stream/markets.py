"""Wire market ids (`BTCUSDT`) to our instruments, from the markets ccxt loaded, remembered per stream."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccxt_pipeline.errors import SymbolError
from ccxt_pipeline.instruments import Instrument, instrument_for

Met = Callable[[Instrument, Any], None]
"""Called once per instrument the first time a message names it, with its ccxt market."""


class MarketBook:
    """`lookup` for the decoder: a market id -> (instrument, contract size), or None for a market we do
    not keep (spot, inverse, unknown). A whole-market stream meets its instruments as they come: each new
    one is handed to `met` (the stream queues its definition for the writer)."""

    def __init__(self, venue: str, met: Met) -> None:
        self.venue = venue
        self.met = met
        self._exchange: Any = None
        self._known: dict[str, tuple[Instrument, float] | None] = {}

    def bind(self, exchange: Any) -> None:
        """The ccxt exchange whose loaded markets translate wire ids (a new one after each reopen)."""
        self._exchange = exchange

    def lookup(self, market_id: str) -> tuple[Instrument, float] | None:
        if self._exchange is None:
            return None  # no markets loaded yet: nothing is remembered
        if market_id not in self._known:
            self._known[market_id] = self._resolve(market_id)
        return self._known[market_id]

    def _resolve(self, market_id: str) -> tuple[Instrument, float] | None:
        market = self._exchange.safe_market(market_id, None, None, "swap")
        if not market or not market.get("linear") or not market.get("symbol"):
            return None
        try:
            inst = instrument_for(self.venue, market["symbol"], market)
        except SymbolError:
            return None
        self.met(inst, market)
        return inst, float(market.get("contractSize") or 1.0)
