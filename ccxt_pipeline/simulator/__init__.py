"""A local exchange simulator for tests and offline use: Binance USD-M, Bybit v5 and Hyperliquid on one
aiohttp server on 127.0.0.1, answering the real ccxt classes in each exchange's wire format.

    async with ExchangeSimulator(seed=0, now_ms=...) as sim:
        exchange = ccxt.async_support.binanceusdm({**sim.ccxt_overrides("binance"), ...})

Market data comes from `ccxt_pipeline.simulator.data` (pure functions of seed, exchange, symbol and time).
"""

from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import (
    CCXT_CLASSES,
    FAILURE_KINDS,
    ExchangeSimulator,
    FailureKind,
    FailureRule,
)

__all__ = ["CCXT_CLASSES", "FAILURE_KINDS", "ExchangeSimulator", "FailureKind", "FailureRule", "data"]
