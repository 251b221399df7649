"""Our catalog's instrument definitions decode to what NautilusTrader 1.221's own adapters build from the same
exchange payload, field by field; the differences left on purpose are listed in docs/catalog.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nautilus_trader")

from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from ccxt_pipeline.catalog.definitions import ensure_definition
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.nautilus_venues import (
    NOW_MS,
    ccxt_markets,
    nautilus_id,
    nautilus_instrument,
    raw_markets,
)

pytestmark = pytest.mark.nautilus

NOT_COMPARED = {"info", "ts_event", "ts_init", "type"}
ON_PURPOSE: dict[str, set[str]] = {
    # Nautilus reads fees from the account (keys); ours are ccxt's published defaults.
    "binance": {"maker_fee", "taker_fee"},
    # ... and Bybit's margins are Nautilus' placeholder 0.1; ours 1 / max leverage and half of it.
    "bybit": {"maker_fee", "taker_fee", "margin_init", "margin_maint"},
    # Nautilus leaves Hyperliquid's margins and fees at 0.
    "hyperliquid": {"maker_fee", "taker_fee", "margin_init", "margin_maint"},
}


@pytest.fixture(scope="module")
def markets() -> dict[str, dict[str, Any]]:
    return ccxt_markets()


@pytest.mark.parametrize("exchange", ["binance", "bybit", "hyperliquid"])
def test_definitions_equal_the_adapters_instruments(
    exchange: str, markets: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    rows = {
        nautilus_id(exchange, r): r for r in raw_markets(ExchangeSimulator(seed=0, now_ms=NOW_MS), exchange)
    }
    for symbol, market in markets[exchange].items():
        ensure_definition(tmp_path, instrument_for(exchange, symbol, market), market, NOW_MS * 1_000_000)
    ours = {str(i.id): i for i in ParquetDataCatalog(str(tmp_path)).instruments()}
    assert set(ours) == set(rows)
    for iid, row in rows.items():
        theirs = nautilus_instrument(exchange, row)
        mine = ours[iid]
        assert isinstance(mine, CryptoPerpetual)
        a, b = mine.to_dict(mine), theirs.to_dict(theirs)
        skip = NOT_COMPARED | ON_PURPOSE[exchange]
        assert {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}
        # No precision mismatch for data Nautilus records: its prices and sizes fit our definition.
        assert mine.make_price(float(str(theirs.price_increment)) * 7) == theirs.make_price(
            float(str(theirs.price_increment)) * 7
        )
        assert mine.make_qty(float(str(theirs.size_increment)) * 3) == theirs.make_qty(
            float(str(theirs.size_increment)) * 3
        )


def test_tick_string_keeps_its_trailing_zero(markets: dict[str, dict[str, Any]]) -> None:
    from ccxt_pipeline.catalog.definitions import perpetual_definition

    btc = markets["binance"]["BTC/USDT:USDT"]
    row = perpetual_definition(instrument_for("binance", "BTC/USDT:USDT", btc), btc, 0)
    assert (row["price_increment"], row["price_precision"]) == ("0.10", 2)
    assert row["min_notional"] == "5 USDT"
