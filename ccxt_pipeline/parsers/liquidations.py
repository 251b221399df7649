"""Liquidations from the raw websocket messages ccxt.pro receives, read by each venue's `LiquidationWire`.

Raw, not ccxt's parsed structure: ccxt's ws parsers drop the contract size (so its values stay empty),
read Binance's quantity from the last fill `l` instead of the order's accumulated fill `z`, and give a
`side` that is the wire side, whose meaning differs by exchange (docs/exchanges.md). Here:

- `side` is the side of the position that was liquidated: Binance's forceOrder `S` is the liquidation
  order's side (SELL closes a long); Bybit's allLiquidation `S` is the position's side (Buy = long);
- quantity in base units = wire quantity x contract size; notional = price x quantity. Binance: the
  quantity is `z`, everything the liquidation order filled (an event can carry several fills, of which
  `l` is only the last), and the price `ap` is the average price of those fills; Bybit: `v` and `p`, the
  bankruptcy price (docs/catalog.md, liquidations);
- an item whose order status says its fills are not final (Binance `X` not in `filled_statuses`), or that
  filled nothing, is not a liquidation (yet): counted in `unfilled`, not stored;
- `ts_event` is the exchange's trade time `T`; `ts_init` the receipt time.

One bad item skips that item only: `parse_liquidation_message` returns the good records and one error
line per bad item, and never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import Liquidation, Side, validate_record
from ccxt_pipeline.parsers.common import number, stamped
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import LiquidationWire

Lookup = Callable[[str], tuple[Instrument, float] | None]
"""Exchange market id (`BTCUSDT`) -> (instrument, contract size), or None for a market we do not keep."""

_ITEM_ERRORS = (RecordError, TypeError, ValueError, AttributeError, KeyError)
"""What a malformed item can raise while read: wrong types, text where a number belongs, a failed model."""


@dataclass
class ParsedMessage:
    """What one websocket message holds."""

    records: list[Liquidation] = field(default_factory=list)
    """The well-formed liquidations of markets we keep, in message order."""
    errors: list[str] = field(default_factory=list)
    """One line per malformed item (or for a message with no items at all), naming the field."""
    unfilled: int = 0
    """Items that liquidated nothing final: an order state that is not final, or nothing filled."""


def parse_liquidation_message(
    message: Any, wire: LiquidationWire, lookup: Lookup, *, received_ns: int
) -> ParsedMessage:
    """Every liquidation in one websocket message. Items of markets `lookup` does not know are skipped
    silently; a malformed item is skipped and reported in `errors`, the others are kept."""
    out = ParsedMessage()
    raw = message.get(wire.items_key) if isinstance(message, Mapping) else None
    if isinstance(raw, Mapping):
        items: list[Any] = [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        out.errors.append(f"no liquidation item under {wire.items_key!r} (got {type(raw).__name__})")
        return out
    for k, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise RecordError(f"item {k} is not an object (got {item!r:.80})")
            found = lookup(str(item.get(wire.symbol_field)))
            if found is None:
                continue
            if not _final(item, wire):
                out.unfilled += 1
                continue
            inst, contract_size = found
            out.records.append(_parse_item(item, wire, inst, contract_size, received_ns))
        except _ITEM_ERRORS as exc:
            symbol = item.get(wire.symbol_field) if isinstance(item, Mapping) else None
            out.errors.append(f"item {k} ({symbol}): {exc}")
    return out


def _final(item: Mapping[str, Any], wire: LiquidationWire) -> bool:
    """Whether the item's quantity is what was finally liquidated. Without a status field (Bybit) every
    item is a liquidation; with one (Binance `X`), only a final state with something filled is."""
    if wire.status_field is None:
        return True
    status = item.get(wire.status_field)
    if not isinstance(status, str):
        raise RecordError(f"Liquidation status {wire.status_field!r}: missing (got {status!r})")
    if status not in wire.filled_statuses:
        return False
    return _number(item, wire.quantity_field, "quantity") != 0


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
    contracts = _number(item, wire.quantity_field, "quantity")
    price = _number(item, wire.price_field, "price")
    quantity = contracts * contract_size if contracts is not None else None
    t = item.get(wire.time_field)
    try:
        ts_event = int(t) * NS_PER_MS if t is not None else None
    except (TypeError, ValueError):
        raise RecordError(
            f"Liquidation.ts_event: {wire.time_field!r} is not milliseconds (got {t!r})"
        ) from None
    return validate_record(
        Liquidation,
        {
            **stamped(inst, ts_event, received_ns),
            "side": side,
            "quantity": quantity,
            "price": price,
            "notional": price * quantity if price is not None and quantity is not None else None,
        },
    )


def _number(item: Mapping[str, Any], key: str, name: str) -> float | None:
    """The item's `key` as a float, or RecordError naming the field and the raw value."""
    raw = item.get(key)
    try:
        return number(raw)
    except (TypeError, ValueError):
        raise RecordError(f"Liquidation.{name}: {key!r} is not a number (got {raw!r})") from None
