"""Open interest from ccxt structures.

Units: ccxt's `openInterestAmount` is in base units for the linear perpetuals we collect (Binance
`sumOpenInterest`/`openInterest`, Bybit `openInterest` "unit is base coin" for USDT/USDC contracts,
Hyperliquid `openInterest` in coins); `openInterestValue` is in the quote currency. Where the exchange gives
no value, it is amount x mark price, when a mark price is known, else left empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog.schema import OPEN_INTEREST, conform_table
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import OpenInterest, validate_record
from ccxt_pipeline.parsers.common import info, ms_to_ns_or, number, positive
from ccxt_pipeline.timeutil import NS_PER_MS


def parse_open_interest(
    item: Mapping[str, Any],
    inst: Instrument,
    *,
    received_ns: int | None = None,
    mark_price: float | None = None,
) -> OpenInterest:
    """A ccxt open-interest structure (`fetch_open_interest(s)`, `fetch_open_interest_history` rows).

    History rows (`received_ns` None) get `ts_init = ts_event`. Live values get `ts_init = received_ns`,
    and `ts_event = received_ns` when the exchange sends no time (Hyperliquid).
    `mark_price` (or the payload's own `markPx`) fills in a missing value.
    """
    amount = number(item.get("openInterestAmount"))
    if amount is None:
        amount = number(item.get("baseVolume"))
    value = number(item.get("openInterestValue"))
    if value is None:
        mark = mark_price if mark_price is not None else positive(info(item).get("markPx"))
        if amount is not None and mark is not None:
            value = amount * mark
    if received_ns is None:
        ts_event = ms_to_ns_or(item.get("timestamp"), 0)
        ts_init = ts_event
    else:
        ts_event = ms_to_ns_or(item.get("timestamp"), received_ns)
        ts_init = received_ns
    return validate_record(
        OpenInterest,
        {
            "exchange": inst.exchange,
            "instrument_id": inst.instrument_id,
            "ts_event": ts_event,
            "ts_init": ts_init,
            "open_interest": amount,
            "open_interest_value": value,
        },
    )


def parse_ticker_open_interest(
    ticker: Mapping[str, Any], inst: Instrument, *, received_ns: int
) -> OpenInterest:
    """Live open interest from a ticker whose raw payload carries it (Bybit v5 tickers:
    `openInterest` in base coin, `openInterestValue` in quote; https://bybit-exchange.github.io/docs/v5/market/tickers).
    """
    raw = info(ticker)
    return validate_record(
        OpenInterest,
        {
            "exchange": inst.exchange,
            "instrument_id": inst.instrument_id,
            "ts_event": ms_to_ns_or(ticker.get("timestamp"), received_ns),
            "ts_init": received_ns,
            "open_interest": number(raw.get("openInterest")),
            "open_interest_value": number(raw.get("openInterestValue")),
        },
    )


def open_interest_history_table(
    rows: Sequence[Mapping[str, Any]],
    inst: Instrument,
    *,
    amount_field: str = "openInterestAmount",
    value_field: str | None = "openInterestValue",
    time_field: str = "timestamp",
) -> pa.Table:
    """History rows straight to a validated Arrow table, column by column: ccxt's unified rows (the
    defaults) or an exchange's raw rows (Binance `sumOpenInterest`/`sumOpenInterestValue`, Bybit
    `openInterest`), both in base units with exchange times in milliseconds (strings or numbers).

    The bulk path: the same units and rules as :func:`parse_open_interest` (history: `ts_init = ts_event`),
    checked by `conform_table` on whole columns instead of one model per row.
    """
    n = len(rows)
    ts = pa.array([int(r[time_field]) * NS_PER_MS for r in rows], pa.int64())
    values = [number(r.get(value_field)) for r in rows] if value_field else [None] * n
    table = pa.table(
        {
            "exchange": pa.array([inst.exchange] * n, pa.string()),
            "instrument_id": pa.array([inst.instrument_id] * n, pa.string()),
            "open_interest": pa.array([number(r.get(amount_field)) for r in rows], pa.float64()),
            "open_interest_value": pa.array(values, pa.float64()),
            "ts_event": ts,
            "ts_init": ts,
        }
    )
    return conform_table(OPEN_INTEREST, table)
