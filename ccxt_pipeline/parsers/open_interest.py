"""Open interest from ccxt structures and raw exchange payloads.

Open interest is stored as ONE side of the market (open longs, which equal open shorts): what Binance
reports (`sumOpenInterest`/`openInterest`). Bybit's `openInterest` is the sum of both sides, so Bybit is read
from its single-side fields (`singleOpenInterest`, `singleOpenInterestValue`) through the venue table's
:class:`~ccxt_pipeline.venues.OpenInterestFields`, falling back to half the both-sides figures where an
answer lacks them (https://bybit-exchange.github.io/docs/v5/market/open-interest, .../v5/market/tickers).
Hyperliquid's `openInterest` is both sides too ("sum of absolute position sizes",
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/hip-3-deployer-actions) and has no
one-side field: its venue row (`Venue.current_oi_raw`) reads half of it.

Units: base units for the linear perpetuals we collect (Bybit: "BTCUSDT(linear) is BTC"); values in the
quote currency. Where the exchange gives no value, it is amount x mark price, when a mark price is known,
else left empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog.schema import OPEN_INTEREST, conform_table
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import OpenInterest, validate_record
from ccxt_pipeline.parsers.common import info, ms_to_ns_or, number, positive, stamped
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import OpenInterestFields

UNIFIED = OpenInterestFields("openInterestAmount", "openInterestValue")
"""ccxt's unified open-interest structure (`fetch_open_interest_history` rows)."""


def parse_open_interest(
    item: Mapping[str, Any],
    inst: Instrument,
    *,
    received_ns: int | None = None,
    mark_price: float | None = None,
    fields: OpenInterestFields | None = None,
) -> OpenInterest:
    """A ccxt open-interest structure (`fetch_open_interest(s)`, `fetch_open_interest_history` rows).

    History rows (`received_ns` None) get `ts_init = ts_event`. Live values get `ts_init = received_ns`,
    and `ts_event = received_ns` when the exchange sends no time (Hyperliquid).
    `mark_price` (or the payload's own `markPx`) fills in a missing value.

    ccxt passes each exchange's own figure through, one side or both. `fields` (the venue's
    `current_oi_raw`) reads one side from the raw `info` instead of ccxt's unified amount and value
    (Hyperliquid: half its both-sides `openInterest`, valued at its `markPx`). Bybit never comes this way
    (its live values come from tickers, its history from the raw endpoint).
    """
    if fields is None:
        amount = number(item.get("openInterestAmount"))
        if amount is None:
            amount = number(item.get("baseVolume"))
        value = number(item.get("openInterestValue"))
    else:
        raw = info(item)
        amount = _one_side(raw, fields.amount, fields.fallback_amount, fields.fallback_scale)
        value = _one_side(raw, fields.value, fields.fallback_value, fields.fallback_scale)
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
            **stamped(inst, ts_event, ts_init),
            "open_interest": amount,
            "open_interest_value": value,
        },
    )


def parse_ticker_open_interest(
    ticker: Mapping[str, Any], inst: Instrument, *, received_ns: int, fields: OpenInterestFields
) -> OpenInterest:
    """Live open interest from a ticker whose raw payload carries it, read from the venue's `fields`.

    Bybit v5 tickers (https://bybit-exchange.github.io/docs/v5/market/tickers): `singleOpenInterest` in
    base coin and `singleOpenInterestValue` in quote, one side; without them half of `openInterest` /
    `openInterestValue` (both sides). A value still missing is amount x the ticker's mark price.
    """
    raw = info(ticker)
    amount = _one_side(raw, fields.amount, fields.fallback_amount, fields.fallback_scale)
    value = _one_side(raw, fields.value, fields.fallback_value, fields.fallback_scale)
    if value is None and amount is not None:
        mark = positive(ticker.get("markPrice")) or positive(raw.get("markPrice"))
        value = amount * mark if mark is not None else None
    return validate_record(
        OpenInterest,
        {
            **stamped(inst, ms_to_ns_or(ticker.get("timestamp"), received_ns), received_ns),
            "open_interest": amount,
            "open_interest_value": value,
        },
    )


def _one_side(raw: Mapping[str, Any], field: str | None, fallback: str | None, scale: float) -> float | None:
    x = number(raw.get(field)) if field else None
    if x is None and fallback:
        both = number(raw.get(fallback))
        x = None if both is None else both * scale
    return x


def _column(
    rows: Sequence[Mapping[str, Any]], field: str | None, fallback: str | None, scale: float
) -> list[float | None]:
    """One field of every row; where a row lacks it (or there is no such field), its `fallback` field times
    `scale`."""
    if not field and not fallback:
        return [None] * len(rows)
    out = [number(r.get(field)) if field else None for r in rows]
    if fallback and None in out:
        out = [
            x if x is not None else _one_side(r, None, fallback, scale)
            for x, r in zip(out, rows, strict=True)
        ]
    return out


def mark_opens(
    rows: Sequence[Sequence[Any]], *, time_index: int = 0, open_index: int = 1
) -> dict[int, float]:
    """Candle start time (ms) -> open price, from raw kline rows such as Bybit's mark-price candles
    `[startTime, openPrice, highPrice, lowPrice, closePrice]`, strings
    (https://bybit-exchange.github.io/docs/v5/market/mark-kline). Rows without a positive open are left out:
    a missing mark leaves a value empty, never wrong."""
    out: dict[int, float] = {}
    for row in rows:
        try:
            price = positive(row[open_index])
            if price is not None:
                out[int(row[time_index])] = price
        except (IndexError, TypeError, ValueError):
            continue  # a garbled candle prices nothing
    return out


def open_interest_history_table(
    rows: Sequence[Mapping[str, Any]],
    inst: Instrument,
    *,
    fields: OpenInterestFields = UNIFIED,
    time_field: str = "timestamp",
    marks: Mapping[int, float] | None = None,
) -> pa.Table:
    """History rows straight to a validated Arrow table, column by column: ccxt's unified rows (the
    default) or an exchange's raw rows read through the venue table's `fields` (Binance
    `sumOpenInterest`/`sumOpenInterestValue`; Bybit `singleOpenInterest`, else half of `openInterest`), in
    base units with exchange times in milliseconds (strings or numbers).

    `marks` (row time in ms -> mark price at that time, :func:`mark_opens`) prices the rows that carry no
    value: value = amount x mark. A row whose time has no mark keeps an empty value.

    The bulk path: the same units and rules as :func:`parse_open_interest` (history: `ts_init = ts_event`),
    checked by `conform_table` on whole columns instead of one model per row.
    """
    n = len(rows)
    times_ms = [int(r[time_field]) for r in rows]
    ts = pa.array([t * NS_PER_MS for t in times_ms], pa.int64())
    amounts = _column(rows, fields.amount, fields.fallback_amount, fields.fallback_scale)
    values = _column(rows, fields.value, fields.fallback_value, fields.fallback_scale)
    if marks:
        values = [
            v if v is not None or a is None or (m := marks.get(t)) is None else a * m
            for v, a, t in zip(values, amounts, times_ms, strict=True)
        ]
    table = pa.table(
        {
            "exchange": pa.array([inst.exchange] * n, pa.string()),
            "instrument_id": pa.array([inst.instrument_id] * n, pa.string()),
            "open_interest": pa.array(amounts, pa.float64()),
            "open_interest_value": pa.array(values, pa.float64()),
            "ts_event": ts,
            "ts_init": ts,
        }
    )
    return conform_table(OPEN_INTEREST, table)
