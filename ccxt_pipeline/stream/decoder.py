"""The liquidation decoder: one raw websocket message in, its new records and what was skipped out.

Pure: no socket, no clock, no disk, no logging. Its only state is what the caller passes in, the
`SeenEvents` memory of what was already decoded (a replay after a reconnect, or the same frame twice,
is not stored again), and `lookup`, the caller's market id -> instrument translation. Reading each item
(side, units, final fills) is `parsers/liquidations.py`'s, from the venue's `LiquidationWire`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ccxt_pipeline.models import Liquidation
from ccxt_pipeline.parsers.liquidations import Lookup, parse_liquidation_message
from ccxt_pipeline.venues import LiquidationWire

SEEN_MAX = 20_000
"""Event keys remembered for de-duplication: minutes of a busy market, and a bounded memory for a daemon
that runs for months."""


class SeenEvents:
    """The last `limit` event keys decoded, oldest forgotten first."""

    def __init__(self, limit: int = SEEN_MAX) -> None:
        self.limit = limit
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False if it was already remembered (a duplicate)."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.limit:
            self._keys.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class Decoded:
    """What one message held."""

    records: list[Liquidation] = field(default_factory=list)
    """New liquidations of markets we keep, in message order."""
    errors: list[str] = field(default_factory=list)
    """One line per malformed item skipped (or for a message with no items), naming the field."""
    unfilled: int = 0
    """Items skipped because their order filled nothing final (Binance `X` neither FILLED nor EXPIRED)."""
    duplicates: int = 0
    """Items skipped because the same event was decoded before."""


def event_key(r: Liquidation) -> tuple[Any, ...]:
    """Two items with this key are the same liquidation (the exchanges send no event id)."""
    return (r.instrument_id, r.ts_event, r.side, r.price, r.quantity)


def decode_liquidations(
    message: Any, wire: LiquidationWire, lookup: Lookup, seen: SeenEvents, *, received_ns: int
) -> Decoded:
    """Every new liquidation in `message`; each bad, unfilled or repeated item is counted and skipped."""
    parsed = parse_liquidation_message(message, wire, lookup, received_ns=received_ns)
    out = Decoded(errors=parsed.errors, unfilled=parsed.unfilled)
    for r in parsed.records:
        if seen.add(event_key(r)):
            out.records.append(r)
        else:
            out.duplicates += 1
    return out
