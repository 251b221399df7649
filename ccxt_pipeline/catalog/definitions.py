"""Instrument definitions in the catalog: `data/crypto_perpetual/<instrument_id>/`, in the exact layout
NautilusTrader 1.221 writes for `CryptoPerpetual` (nautilus_trader/serialization/arrow/implementations/
instruments.py), so that a `BacktestNode` loads the instruments of the data it replays.

Each row holds what NautilusTrader's own adapter builds from the same exchange answer, read from the raw
payload ccxt keeps in `market['info']` (ccxt's parsed precision is a float and loses the tick string's
trailing zeros, which Nautilus keeps: a `tickSize` of "0.10" is precision 2):

* Binance (nautilus_trader/adapters/binance/futures/providers.py `_parse_instrument`): precision = decimals
  of PRICE_FILTER `tickSize` / LOT_SIZE `stepSize`; quantities and prices at that precision; min notional
  from MIN_NOTIONAL `notional`; margins `requiredMarginPercent` / `maintMarginPercent` / 100.
* Bybit (nautilus_trader/adapters/bybit/schemas/instrument.py `BybitInstrumentLinear.parse_to_instrument`):
  `priceFilter` and `lotSizeFilter` strings as printed; no notional limits.
* Hyperliquid (nautilus_trader crates/adapters/hyperliquid/src/http/parse.rs @ v1.221.0): price decimals
  = max(0, 6 - szDecimals), tick 10^-decimals, lot 10^-szDecimals, quote USD, settlement USDC, no limits.

What Nautilus takes from an account (fees, Binance's max notional) or fills with a placeholder (Bybit's
margins 0.1, Hyperliquid's none) differs on purpose: fees are ccxt's published defaults, margins 1 / max
leverage and half of it (Hyperliquid's documented rule; an estimate on Bybit, whose margin depends on the
risk-limit tier). docs/catalog.md lists these differences.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog.files import write_parquet_atomic
from ccxt_pipeline.catalog.layout import DATA_DIR, data_file_names, file_name
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.venues import VENUES

TYPE_DIR = "crypto_perpetual"
_DICT16 = pa.dictionary(pa.int16(), pa.string())
SCHEMA = pa.schema(
    [
        pa.field("id", pa.dictionary(pa.int64(), pa.string())),
        pa.field("raw_symbol", pa.string()),
        pa.field("base_currency", _DICT16),
        pa.field("quote_currency", _DICT16),
        pa.field("settlement_currency", _DICT16),
        pa.field("is_inverse", pa.bool_()),
        pa.field("price_precision", pa.uint8()),
        pa.field("size_precision", pa.uint8()),
        pa.field("price_increment", _DICT16),
        pa.field("size_increment", _DICT16),
        pa.field("multiplier", _DICT16),
        pa.field("max_quantity", _DICT16),
        pa.field("min_quantity", _DICT16),
        pa.field("max_notional", _DICT16),
        pa.field("min_notional", _DICT16),
        pa.field("max_price", _DICT16),
        pa.field("min_price", _DICT16),
        pa.field("margin_init", pa.string()),
        pa.field("margin_maint", pa.string()),
        pa.field("maker_fee", pa.string()),
        pa.field("taker_fee", pa.string()),
        pa.field("info", pa.binary()),
        pa.field("ts_event", pa.uint64()),
        pa.field("ts_init", pa.uint64()),
    ],
    metadata={"class": "CryptoPerpetual"},
)


def _dec(x: Any) -> Decimal | None:
    if x is None or x == "":
        return None
    return Decimal(str(x)).normalize()


def _text(x: Decimal | None) -> str | None:
    return None if x is None else format(x, "f")


def _decimals(number: str) -> int:
    """Decimals of a number as printed: `"0.10"` -> 2, `"1"` -> 0 (Nautilus: abs of the exponent)."""
    return abs(int(Decimal(number).as_tuple().exponent))


def _fixed(number: Any, decimals: int) -> str | None:
    """`number` at `decimals` decimals, as Nautilus' `Price(float(x), precision)` prints it."""
    if number is None or number == "":
        return None
    return format(Decimal(str(number)).quantize(Decimal(1).scaleb(-decimals)), "f")


def _verbatim(number: Any) -> str | None:
    """A number string as the exchange printed it (`Price.from_str`), or None."""
    return None if number is None or number == "" else str(number).strip()


def _unit(decimals: int) -> str:
    """10^-decimals as Nautilus prints it: 0 -> `1`, 2 -> `0.01`."""
    return format(Decimal(1).scaleb(-decimals), "f")


Limits = dict[str, Any]
"""price/size precision and increment, min/max quantity, price and notional of one row."""


def _binance_limits(info: Mapping[str, Any], quote: str) -> Limits:
    """nautilus_trader/adapters/binance/futures/providers.py `_parse_instrument` on exchangeInfo's filters
    (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information)."""
    filters = {f.get("filterType"): f for f in info.get("filters") or []}
    price, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
    notional = filters.get("MIN_NOTIONAL", {}).get("notional")
    tick, step = str(price["tickSize"]), str(lot["stepSize"])
    pp, sp = _decimals(tick), _decimals(step)
    return {
        "price_precision": pp,
        "size_precision": sp,
        "price_increment": _fixed(tick, pp),
        "size_increment": _fixed(step, sp),
        "max_quantity": _fixed(lot.get("maxQty"), sp),
        "min_quantity": _fixed(lot.get("minQty"), sp),
        "max_notional": None,  # Nautilus: from the account's position risk (needs keys)
        "min_notional": None if notional in (None, "") else f"{_verbatim(notional)} {quote}",
        "max_price": _fixed(price.get("maxPrice"), pp),
        "min_price": _fixed(price.get("minPrice"), pp),
    }


def _bybit_limits(info: Mapping[str, Any], quote: str) -> Limits:
    """nautilus_trader/adapters/bybit/schemas/instrument.py `BybitInstrumentLinear.parse_to_instrument` on
    instruments-info (https://bybit-exchange.github.io/docs/v5/market/instrument): strings as printed."""
    del quote
    price, lot = info["priceFilter"], info["lotSizeFilter"]
    tick, step = str(price["tickSize"]), str(lot["qtyStep"])
    return {
        "price_precision": _decimals(tick),
        "size_precision": _decimals(step),
        "price_increment": _verbatim(tick),
        "size_increment": _verbatim(step),
        "max_quantity": _verbatim(lot.get("maxOrderQty")),
        "min_quantity": _verbatim(lot.get("minOrderQty")),
        "max_notional": None,
        "min_notional": None,
        "max_price": _verbatim(price.get("maxPrice")),
        "min_price": _verbatim(price.get("minPrice")),
    }


def _hyperliquid_limits(info: Mapping[str, Any], quote: str) -> Limits:
    """nautilus_trader crates/adapters/hyperliquid/src/http/parse.rs (v1.221.0) `parse_perp_instruments`:
    price decimals = max(0, 6 - szDecimals) ("MAX_DECIMALS" 6 for perps,
    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/tick-and-lot-size); no limits."""
    del quote
    sz = int(info["szDecimals"])
    pp = max(0, 6 - sz)
    return {
        "price_precision": pp,
        "size_precision": sz,
        "price_increment": _unit(pp),
        "size_increment": _unit(sz),
        **dict.fromkeys(("max_quantity", "min_quantity", "max_notional", "min_notional"), None),
        **dict.fromkeys(("max_price", "min_price"), None),
    }


def _ccxt_limits(market: Mapping[str, Any]) -> Limits:
    """From ccxt's parsed market (its float precision has lost any trailing zeros of the tick string)."""
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    tick = _dec(precision.get("price")) or Decimal("0.01")
    step = _dec(precision.get("amount")) or Decimal("0.001")
    amount, price = (limits.get(k) or {} for k in ("amount", "price"))
    return {
        "price_precision": max(0, -int(tick.as_tuple().exponent)),
        "size_precision": max(0, -int(step.as_tuple().exponent)),
        "price_increment": _text(tick),
        "size_increment": _text(step),
        "max_quantity": _text(_dec(amount.get("max"))),
        "min_quantity": _text(_dec(amount.get("min"))),
        "max_notional": None,
        "min_notional": None,
        "max_price": _text(_dec(price.get("max"))),
        "min_price": _text(_dec(price.get("min"))),
    }


_RAW_LIMITS: dict[str, Callable[[Mapping[str, Any], str], Limits]] = {
    "binance": _binance_limits,
    "bybit": _bybit_limits,
    "hyperliquid": _hyperliquid_limits,
}
"""Per exchange: how its adapter reads tick, lot and limits from the raw market payload."""


def _limits(exchange: str, market: Mapping[str, Any], quote: str) -> Limits:
    raw = _RAW_LIMITS.get(exchange)
    info = market.get("info")
    if raw is not None and isinstance(info, Mapping):
        try:
            return raw(info, quote)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            pass  # not the payload the adapter expects: fall back to ccxt's parsed market
    return _ccxt_limits(market)


def _margins(market: Mapping[str, Any]) -> tuple[str, str]:
    """(initial, maintenance): Binance's `requiredMarginPercent` / `maintMarginPercent` / 100 (as Nautilus),
    else 1 / max leverage and half of it."""
    info = market.get("info") or {}
    required, maint = info.get("requiredMarginPercent"), info.get("maintMarginPercent")
    if required not in (None, "") and maint not in (None, ""):
        return str(Decimal(str(required)) / 100), str(Decimal(str(maint)) / 100)
    leverage = _dec(((market.get("limits") or {}).get("leverage") or {}).get("max"))
    margin_init = Decimal(1) / leverage if leverage else Decimal("0.1")
    return _text(margin_init.normalize()) or "0.1", _text((margin_init / 2).normalize()) or "0.05"


def perpetual_definition(inst: Instrument, market: Mapping[str, Any], ts_ns: int) -> dict[str, Any]:
    """One `CryptoPerpetual` row from a ccxt market, as NautilusTrader's adapter of that venue builds it."""
    venue = VENUES[inst.exchange]
    symbol = inst.instrument_id.rpartition(".")[0]
    raw_id = market.get("id")
    if venue.raw_symbol_is_id and isinstance(raw_id, str) and raw_id:
        raw_symbol = raw_id.upper() if venue.upper_symbols else raw_id
    else:
        raw_symbol = symbol
    base = market.get(venue.market_base_key)
    quote = venue.nautilus_quote or inst.quote
    margin_init, margin_maint = _margins(market)
    return {
        "id": inst.instrument_id,
        "raw_symbol": raw_symbol,
        "base_currency": base if isinstance(base, str) and base and not base.isdigit() else inst.base,
        "quote_currency": quote,
        "settlement_currency": inst.settle,
        "is_inverse": False,
        **_limits(venue.name, market, quote),
        "multiplier": _text(_dec(market.get("contractSize")) or Decimal(1)),
        "margin_init": margin_init,
        "margin_maint": margin_maint,
        "maker_fee": _text(_dec(market.get("maker")) or Decimal(0)),
        "taker_fee": _text(_dec(market.get("taker")) or Decimal(0)),
        "info": None,
        "ts_event": ts_ns,
        "ts_init": ts_ns,
    }


def ensure_definition(root: Path, inst: Instrument, market: Mapping[str, Any], ts_ns: int) -> bool:
    """Write the instrument's definition unless the catalog already holds one; True if written."""
    folder = root / DATA_DIR / TYPE_DIR / inst.instrument_id
    if data_file_names(folder):
        return False
    row = perpetual_definition(inst, market, ts_ns)
    write_parquet_atomic(pa.Table.from_pylist([row], schema=SCHEMA), folder / file_name(ts_ns, ts_ns))
    return True
