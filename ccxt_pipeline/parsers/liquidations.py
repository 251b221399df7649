"""Liquidations from the raw websocket messages ccxt.pro receives, read by each venue's `LiquidationWire`.

Raw, not ccxt's parsed structure: ccxt's ws parsers drop the contract size (so its values stay empty) and
its `side` is the wire side, whose meaning differs by exchange (docs/exchanges.md). Here:

- `side` is the side of the position that was liquidated: Binance's forceOrder `S` is the liquidation
  order's side (SELL closes a long); Bybit's allLiquidation `S` is the position's side (Buy = long);
- quantity in base units = wire quantity x contract size; notional = price x quantity;
- `ts_event` is the exchange's trade time `T`; `ts_init` the receipt time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import Liquidation, Side, validate_record
from ccxt_pipeline.parsers.common import number
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import LiquidationWire

Lookup = Callable[[str], tuple[Instrument, float] | None]
"""Exchange market id (`BTCUSDT`) -> (instrument, contract size), or None for a market we do not keep."""


def parse_liquidation_message(
    message: Mapping[str, Any], wire: LiquidationWire, lookup: Lookup, *, received_ns: int
) -> list[Liquidation]:
    """Every liquidation in one websocket message. Items of markets `lookup` does not know are skipped;
    a malformed item raises RecordError naming the field."""
    raw = message.get(wire.items_key)
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else []
    out = []
    for item in items:
        found = lookup(str(item.get(wire.symbol_field)))
        if found is None:
            continue
        inst, contract_size = found
        out.append(_parse_item(item, wire, inst, contract_size, received_ns))
    return out


def _parse_item(
    item: Mapping[str, Any], wire: LiquidationWire, inst: Instrument, contract_size: float, received_ns: int
) -> Liquidation:
    side_raw = item.get(wire.side_field)
    if side_raw == wire.long_liquidated:
        side = Side.LONG
    elif side_raw == wire.short_liquidated:
        side = Side.SHORT
    else:
        raise RecordError(f"Liquidation.side: unknown wire side (got {side_raw!r})")
    contracts = number(item.get(wire.quantity_field))
    price = number(item.get(wire.price_field))
    quantity = contracts * contract_size if contracts is not None else None
    t = item.get(wire.time_field)
    return validate_record(
        Liquidation,
        {
            "exchange": inst.exchange,
            "instrument_id": inst.instrument_id,
            "ts_event": int(t) * NS_PER_MS if t is not None else None,
            "ts_init": received_ns,
            "side": side,
            "quantity": quantity,
            "price": price,
            "notional": price * quantity if price is not None and quantity is not None else None,
        },
    )
