"""Shared by the NautilusTrader comparison tests: the simulator's raw market payloads, ccxt's markets parsed
from them by the real ccxt over HTTP, and the instruments NautilusTrader 1.221's own adapters build from the
same payloads."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
import msgspec
from nautilus_trader.adapters.binance.common.enums import BinanceAccountType
from nautilus_trader.adapters.binance.common.symbol import BinanceSymbol
from nautilus_trader.adapters.binance.futures.providers import BinanceFuturesInstrumentProvider
from nautilus_trader.adapters.binance.futures.schemas.market import BinanceFuturesExchangeInfo
from nautilus_trader.adapters.binance.http.client import BinanceHttpClient
from nautilus_trader.adapters.bybit.common.symbol import BybitSymbol
from nautilus_trader.adapters.bybit.schemas.account.fee_rate import BybitFeeRate
from nautilus_trader.adapters.bybit.schemas.instrument import BybitInstrumentLinear
from nautilus_trader.common.component import LiveClock
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency

from ccxt_pipeline.simulator import binance, bybit, hyperliquid
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.venues import VENUES

NOW_MS = 1_763_640_000_000


def raw_markets(sim: ExchangeSimulator, exchange: str) -> list[dict[str, Any]]:
    """The simulator's raw market metadata rows of `exchange` (exchangeInfo symbols, instruments-info
    list, meta universe), exactly as it serves them."""
    if exchange == "binance":
        rows: list[dict[str, Any]] = binance.exchange_info(sim)["symbols"]
    elif exchange == "bybit":
        rows = bybit.instruments_info(sim, {"category": "linear"})["list"]
    else:
        rows = hyperliquid.meta()["universe"]
    return rows


async def _load(sim: ExchangeSimulator, exchange: str) -> dict[str, Any]:
    venue = VENUES[exchange]
    config = {**venue.ccxt_options, **sim.ccxt_overrides(exchange), "enableRateLimit": False}
    client = getattr(ccxt_async, venue.ccxt_id)(config)
    try:
        markets: dict[str, Any] = await client.load_markets()
        return markets
    finally:
        await client.close()


def ccxt_markets() -> dict[str, dict[str, Any]]:
    """ccxt's markets of each simulated exchange, loaded over HTTP from a simulator at a fixed time."""

    async def run() -> dict[str, dict[str, Any]]:
        async with ExchangeSimulator(seed=0, now_ms=NOW_MS) as sim:
            return {name: await _load(sim, name) for name in ("binance", "bybit", "hyperliquid")}

    return asyncio.run(run())


# --- NautilusTrader's own symbology and parsing -----------------------------------------------------------


def nautilus_id(exchange: str, row: dict[str, Any]) -> str:
    """The instrument id NautilusTrader's adapter gives a raw market row."""
    if exchange == "binance":
        # adapters/binance/futures/providers.py _parse_instrument
        return f"{BinanceSymbol(row['symbol']).parse_as_nautilus(BinanceAccountType.USDT_FUTURES)}.BINANCE"
    if exchange == "bybit":
        # adapters/bybit/schemas/instrument.py BybitInstrumentLinear.parse_to_instrument
        return str(BybitSymbol(row["symbol"] + "-LINEAR").to_instrument_id())
    # crates/adapters/hyperliquid/src/http/parse.rs @ v1.221.0: format!("{}-USD-PERP", asset.name); the
    # Rust parser is reachable from Python only through an HTTP client bound to api.hyperliquid.xyz.
    return str(nautilus_pyo3.InstrumentId.from_str(f"{row['name']}-USD-PERP.HYPERLIQUID"))


def nautilus_instrument(exchange: str, row: dict[str, Any]) -> CryptoPerpetual:
    """The CryptoPerpetual NautilusTrader's adapter builds from a raw market row (no account: fees 0)."""
    if exchange == "binance":
        clock = LiveClock()
        client = BinanceHttpClient(clock=clock, api_key="k", api_secret="s", base_url="http://127.0.0.1:9")
        provider = BinanceFuturesInstrumentProvider(client=client, clock=clock)
        info = msgspec.json.decode(json.dumps({"timezone": "UTC", "serverTime": NOW_MS, "symbols": [row]}))
        info = msgspec.convert({**info, "rateLimits": [], "exchangeFilters": []}, BinanceFuturesExchangeInfo)
        provider._parse_instrument(info.symbols[0], 0)
        (instrument,) = provider.list_all()
        assert isinstance(instrument, CryptoPerpetual)
        return instrument
    if exchange == "bybit":
        linear = msgspec.convert(row, BybitInstrumentLinear)
        fee = BybitFeeRate(symbol=row["symbol"], takerFeeRate="0", makerFeeRate="0", baseCoin=row["baseCoin"])
        base, quote = Currency.from_str(row["baseCoin"]), Currency.from_str(row["quoteCoin"])
        built = linear.parse_to_instrument(base, quote, fee, 0, 0)
        assert isinstance(built, CryptoPerpetual)
        return built
    # create_instrument_from_def (parse.rs @ v1.221.0) with parse_perp_instruments' rule, through the same
    # pyo3 constructor and the conversion the Python provider uses (instruments_from_pyo3).
    sz = int(row["szDecimals"])
    pp = max(0, 6 - sz)
    symbol = f"{row['name']}-USD-PERP"
    pyo3 = nautilus_pyo3.CryptoPerpetual(
        nautilus_pyo3.InstrumentId.from_str(f"{symbol}.HYPERLIQUID"),
        nautilus_pyo3.Symbol(symbol),
        nautilus_pyo3.Currency.from_str(row["name"]),
        nautilus_pyo3.Currency.from_str("USD"),
        nautilus_pyo3.Currency.from_str("USDC"),
        False,
        pp,
        sz,
        nautilus_pyo3.Price.from_str(str(Decimal(1).scaleb(-pp))),
        nautilus_pyo3.Quantity.from_str(str(Decimal(1).scaleb(-sz))),
        0,
        0,
    )
    return CryptoPerpetual.from_pyo3(pyo3)
