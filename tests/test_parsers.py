"""Pure parsers on recorded payloads (ccxt's own static test responses, tests/fixtures/ccxt/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.parsers.funding import interval_between, parse_funding_estimate, parse_funding_history
from ccxt_pipeline.parsers.open_interest import (
    open_interest_history_table,
    parse_open_interest,
    parse_ticker_open_interest,
)
from ccxt_pipeline.timeutil import NS_PER_HOUR, NS_PER_MS
from ccxt_pipeline.venues import BYBIT_SINGLE_SIDE, VENUES, OpenInterestFields

FIXTURES = Path(__file__).parent / "fixtures" / "ccxt"
BYBIT = json.loads((FIXTURES / "bybit.response.json").read_text())["methods"]
BTC_BYBIT = instrument_for("bybit", "BTC/USDT:USDT")
BTC_BINANCE = instrument_for("binance", "BTC/USDT:USDT")
BTC_HL = instrument_for("hyperliquid", "BTC/USDC:USDC")
RECEIVED = 1_730_729_904_000_000_000


def recorded(method: str, index: int = 0) -> Any:
    return BYBIT[method][index]["parsedResponse"]


def test_bybit_history_row_is_base_units_with_exchange_time() -> None:
    row = recorded("fetchOpenInterest")  # linear: openInterest in base coin (Bybit v5 docs)
    oi = parse_open_interest(row, BTC_BYBIT)
    assert oi.open_interest == 62129.455
    assert oi.open_interest_value is None  # Bybit's history row has no value, and no mark price was given
    assert oi.ts_event == oi.ts_init == 1739725200000 * NS_PER_MS
    assert oi.instrument_id == "BTCUSDT-LINEAR.BYBIT"


def test_inverse_row_is_refused_rather_than_stored_in_the_wrong_unit() -> None:
    row = recorded("fetchOpenInterest", 1)  # inverse: ccxt puts the USD figure in value, amount None
    with pytest.raises(RecordError, match="open_interest"):
        parse_open_interest(row, BTC_BYBIT)


def test_bybit_live_open_interest_from_ticker() -> None:
    ticker = recorded("fetchTicker")  # recorded before Bybit served singleOpenInterest: half of both sides
    oi = parse_ticker_open_interest(ticker, BTC_BYBIT, received_ns=RECEIVED, fields=BYBIT_SINGLE_SIDE)
    assert (oi.open_interest, oi.open_interest_value) == (225766.793 / 2, 11614437205.81 / 2)
    assert oi.ts_event == oi.ts_init == RECEIVED  # the recorded ticker has no timestamp: receipt time


def test_missing_value_is_amount_times_mark() -> None:
    # Binance's /fapi/v1/openInterest: amount only (docs/exchanges.md).
    row = {
        "symbol": "BTC/USDT:USDT",
        "openInterestAmount": 2.0,
        "openInterestValue": None,
        "timestamp": 1_700_000_000_000,
    }
    oi = parse_open_interest(row, BTC_BINANCE, received_ns=RECEIVED, mark_price=50_000.0)
    assert oi.open_interest_value == 100_000.0
    assert oi.ts_event == 1_700_000_000_000 * NS_PER_MS
    assert oi.ts_init == RECEIVED


def test_hyperliquid_has_no_time_and_values_from_mark_in_payload() -> None:
    # ccxt's hyperliquid open interest: timestamp None, info = the asset context with markPx and the
    # both-sides `openInterest` (ccxt's openInterestAmount is the same number).
    row = {
        "symbol": "BTC/USDC:USDC",
        "openInterestAmount": 21.0,
        "timestamp": None,
        "info": {"openInterest": "21.0", "markPx": "100000.0"},
    }
    oi = parse_open_interest(row, BTC_HL, received_ns=RECEIVED, fields=VENUES["hyperliquid"].current_oi_raw)
    assert oi.ts_event == oi.ts_init == RECEIVED
    assert oi.open_interest == 10.5  # one side: half of `openInterest`
    assert oi.open_interest_value == 1_050_000.0  # one side x markPx
    # Without the venue's fields: ccxt's unified amount as it is (what every other exchange passes).
    assert parse_open_interest(row, BTC_HL, received_ns=RECEIVED).open_interest == 21.0


def test_hyperliquid_without_open_interest_is_refused_not_taken_from_ccxt() -> None:
    # The one-side figure comes from the raw `openInterest` only: never ccxt's (both-sides) unified amount.
    row = {"openInterestAmount": 21.0, "timestamp": None, "info": {"markPx": "100000.0"}}
    with pytest.raises(RecordError):
        parse_open_interest(row, BTC_HL, received_ns=RECEIVED, fields=VENUES["hyperliquid"].current_oi_raw)


def test_live_funding_estimate_from_recorded_bybit() -> None:
    fr = recorded("fetchFundingRates")["BTC/USDT:USDT"]
    est = parse_funding_estimate(fr, BTC_BYBIT, received_ns=RECEIVED)
    assert est.rate == 0.0001
    assert est.interval_minutes == 480
    assert est.next_funding_ns == 1730736000000 * NS_PER_MS
    assert (est.mark_price, est.index_price) == (68649.9, 68650.75)
    assert est.ts_event == 1730729903941 * NS_PER_MS
    assert est.ts_init == RECEIVED


def test_estimate_takes_interval_from_caller_when_ccxt_has_none() -> None:
    fr = {"fundingRate": -0.0002, "fundingTimestamp": 1_700_006_400_000, "timestamp": None, "interval": None}
    est = parse_funding_estimate(fr, BTC_BINANCE, received_ns=RECEIVED, interval=240)
    assert (est.interval_minutes, est.ts_event, est.mark_price) == (240, RECEIVED, None)


def test_settled_history_intervals_from_spacing() -> None:
    h = 3_600_000
    t0 = 1_740_787_200_000  # 2025-03-01T00:00Z
    times = [t0 - 16 * h, t0 - 8 * h, t0, t0 + 4 * h, t0 + 8 * h, t0 + 24 * h]  # 8h, then 4h, then a hole
    rows = [{"timestamp": t + 3, "fundingRate": 0.0001} for t in reversed(times)]  # newest first, ms jitter
    parsed = parse_funding_history(rows, BTC_BINANCE)
    assert [r.ts_event for r in parsed] == [(t + 3) * NS_PER_MS for t in times]
    assert [r.interval_minutes for r in parsed] == [None, 480, 480, 240, 240, None]


def test_fixed_interval_and_duplicates() -> None:
    rows = [{"timestamp": 1_700_000_000_000, "fundingRate": "0.00001"}] * 2
    parsed = parse_funding_history(rows, BTC_HL, fixed_interval=60)
    assert len(parsed) == 1
    assert parsed[0].interval_minutes == 60
    assert parsed[0].rate == 0.00001


def test_interval_between_rejects_odd_spacing() -> None:
    assert interval_between(0, 8 * NS_PER_HOUR + 5 * NS_PER_MS) == 480
    assert interval_between(0, 16 * NS_PER_HOUR) is None
    assert interval_between(None, 1) is None


def test_raw_binance_history_rows_to_a_validated_table() -> None:
    # Binance's documented sample (Open Interest Statistics): strings, base units and quote value.
    rows = [
        {
            "symbol": "BTCUSDT",
            "sumOpenInterest": "20403.63700000",
            "sumOpenInterestValue": "150570784.07809979",
            "timestamp": 1583127900000,
        },
        {
            "symbol": "BTCUSDT",
            "sumOpenInterest": "20401.36700000",
            "sumOpenInterestValue": "149940752.14464448",
            "timestamp": 1583128200000,
        },
    ]
    table = open_interest_history_table(
        rows, BTC_BINANCE, fields=OpenInterestFields("sumOpenInterest", "sumOpenInterestValue")
    )
    assert table.column("open_interest").to_pylist() == [20403.637, 20401.367]
    assert table.column("open_interest_value").to_pylist() == [150570784.07809979, 149940752.14464448]
    assert (
        table.column("ts_event").to_pylist()
        == table.column("ts_init").to_pylist()
        == [
            1583127900000 * NS_PER_MS,
            1583128200000 * NS_PER_MS,
        ]
    )


def test_raw_history_with_a_negative_amount_is_refused() -> None:
    rows = [{"singleOpenInterest": "-1", "timestamp": "1739725200000"}]
    with pytest.raises(RecordError, match=r"OpenInterest.open_interest: must be >= 0 \(got -1.0 at row 0\)"):
        open_interest_history_table(rows, BTC_BYBIT, fields=BYBIT_SINGLE_SIDE)
