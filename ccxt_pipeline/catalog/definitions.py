"""Instrument definitions in the catalog: `data/crypto_perpetual/<instrument_id>/`, in the exact layout
NautilusTrader 1.221 writes for `CryptoPerpetual` (nautilus_trader/serialization/arrow/implementations/
instruments.py), so that a `BacktestNode` loads the instruments of the data it replays.

Built from ccxt's market structure (tick size, lot size, limits, fees, leverage). Margins: the initial
margin is the exchange's required margin (Binance `requiredMarginPercent`) or 1 / max leverage; the
maintenance margin is Binance's `maintMarginPercent`, else half the initial margin, which is Hyperliquid's
documented rule and an estimate elsewhere (Bybit's depends on the risk-limit tier).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog.files import write_parquet_atomic
from ccxt_pipeline.catalog.layout import DATA_DIR, data_file_names, file_name
from ccxt_pipeline.instruments import Instrument

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


def _precision(step: Decimal) -> int:
    return max(0, -step.as_tuple().exponent)  # type: ignore[operator]


def perpetual_definition(inst: Instrument, market: Mapping[str, Any], ts_ns: int) -> dict[str, Any]:
    """One `CryptoPerpetual` row from a ccxt market (tick-size precision mode, as for all our venues)."""
    precision, limits, info = (
        market.get("precision") or {},
        market.get("limits") or {},
        market.get("info") or {},
    )
    tick = _dec(precision.get("price")) or Decimal("0.01")
    step = _dec(precision.get("amount")) or Decimal("0.001")
    leverage = _dec((limits.get("leverage") or {}).get("max"))
    required = _dec(info.get("requiredMarginPercent"))
    if required is not None:
        margin_init = required / 100
    else:
        margin_init = Decimal(1) / leverage if leverage else Decimal("0.1")
    maint_pct = _dec(info.get("maintMarginPercent"))
    margin_maint = maint_pct / 100 if maint_pct is not None else margin_init / 2
    amount, price = (limits.get(k) or {} for k in ("amount", "price"))
    return {
        "id": inst.instrument_id,
        # Hyperliquid's market id is an asset index ("0"); its symbol is the coin.
        "raw_symbol": str(market["id"]) if not str(market.get("id", "")).isdigit() else inst.base,
        "base_currency": inst.base,
        "quote_currency": inst.quote,
        "settlement_currency": inst.settle,
        "is_inverse": False,
        "price_precision": _precision(tick),
        "size_precision": _precision(step),
        "price_increment": _text(tick),
        "size_increment": _text(step),
        "multiplier": _text(_dec(market.get("contractSize")) or Decimal(1)),
        "max_quantity": _text(_dec(amount.get("max"))),
        "min_quantity": _text(_dec(amount.get("min"))),
        "max_notional": None,
        "min_notional": None,
        "max_price": _text(_dec(price.get("max"))),
        "min_price": _text(_dec(price.get("min"))),
        "margin_init": _text(margin_init.normalize()),
        "margin_maint": _text(margin_maint.normalize()),
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
