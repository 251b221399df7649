"""Our instrument ids equal NautilusTrader 1.221's own, for every perpetual the simulator lists."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("nautilus_trader")

from ccxt_pipeline.instruments import instrument_for, nautilus_symbol, resolve
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.nautilus_venues import NOW_MS, ccxt_markets, nautilus_id, raw_markets

pytestmark = pytest.mark.nautilus
EXCHANGES = ("binance", "bybit", "hyperliquid")


@pytest.fixture(scope="module")
def markets() -> dict[str, dict[str, Any]]:
    return ccxt_markets()


@pytest.mark.parametrize("exchange", EXCHANGES)
def test_ids_equal_nautilus_symbology_over_every_simulated_perpetual(
    exchange: str, markets: dict[str, dict[str, Any]]
) -> None:
    rows = raw_markets(ExchangeSimulator(seed=0, now_ms=NOW_MS), exchange)
    assert len(rows) == len(data.INSTRUMENTS[exchange])
    theirs = sorted(nautilus_id(exchange, row) for row in rows)
    ours_from_markets = sorted(
        instrument_for(exchange, symbol, market).instrument_id for symbol, market in markets[exchange].items()
    )
    assert ours_from_markets == theirs
    # Typed as the ccxt symbol and checked against the markets, each resolves to the same id.
    for symbol in markets[exchange]:
        (inst,) = resolve(symbol.lower(), [exchange], {exchange: markets[exchange]})
        assert inst.instrument_id in theirs
        assert inst.ccxt_symbol == symbol
        # ... and typed as the Nautilus id, with or without markets, back to the same instrument.
        assert resolve(inst.instrument_id, [exchange], {exchange: markets[exchange]}) == [inst]
        assert resolve(inst.instrument_id.lower(), [exchange], {exchange: markets[exchange]}) == [inst]


def test_the_new_ids() -> None:
    assert {i.instrument_id for i in resolve("BTC/USDC:USDC", ["bybit", "hyperliquid"])} == {
        "BTCPERP-LINEAR.BYBIT",
        "BTC-USD-PERP.HYPERLIQUID",
    }
    (kpepe,) = resolve("kPEPE-USD-PERP.HYPERLIQUID", ["hyperliquid"])
    assert (kpepe.instrument_id, kpepe.ccxt_symbol) == ("kPEPE-USD-PERP.HYPERLIQUID", "KPEPE/USDC:USDC")


def test_kpepe_is_found_whatever_the_case(markets: dict[str, dict[str, Any]]) -> None:
    listed = {"hyperliquid": markets["hyperliquid"]}
    for text in ("KPEPEUSDT-PERP", "kpepeusdc-perp", "KPEPE/USDC:USDC", "KPEPE-USD-PERP.HYPERLIQUID"):
        (inst,) = resolve(text, ["hyperliquid"], listed)
        assert inst.instrument_id == "kPEPE-USD-PERP.HYPERLIQUID"
        assert inst.ccxt_symbol == "KPEPE/USDC:USDC"
    assert nautilus_symbol("hyperliquid", markets["hyperliquid"]["KPEPE/USDC:USDC"]) == "kPEPE-USD-PERP"


def test_old_bybit_usdc_id_points_to_the_new_one(markets: dict[str, dict[str, Any]]) -> None:
    from ccxt_pipeline.errors import SymbolError

    for listed in (None, {"bybit": markets["bybit"]}):
        with pytest.raises(SymbolError, match=r"did you mean 'BTCPERP-LINEAR\.BYBIT'"):
            resolve("BTCUSDC-LINEAR.BYBIT", ["bybit"], listed)
