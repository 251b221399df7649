"""Our parsers on payloads from outside the project: exchange documentation examples, NautilusTrader's test data
and ccxt's recorded responses (tests/fixtures/; sources in tests/fixtures/SOURCES.md).

REST bodies go through the real ccxt first, as in production: a ccxt exchange whose HTTP layer (`fetch`) answers
from the recorded bodies (tests/fake_transport.py, a recorded-transport fake below ccxt; nothing of ours is
mocked). Websocket messages go to our raw-message parser as ccxt.pro receives them. Values are asserted as the exchange means them: base
units, quote-currency values, the side of the liquidated position, exchange times in nanoseconds.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ccxt
import pytest

from ccxt_pipeline.instruments import Instrument, instrument_for
from ccxt_pipeline.models import Side
from ccxt_pipeline.parsers.funding import parse_funding_estimate, parse_funding_history
from ccxt_pipeline.parsers.liquidations import parse_liquidation_message
from ccxt_pipeline.parsers.open_interest import (
    open_interest_history_table,
    parse_open_interest,
    parse_ticker_open_interest,
)
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import VENUES, RawHistory
from tests.fake_transport import RecordedTransport

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED = 1_739_700_000_000_000_000
BTC_BINANCE = instrument_for("binance", "BTC/USDT:USDT")
BTC_BYBIT = instrument_for("bybit", "BTC/USDT:USDT")
BTC_HL = instrument_for("hyperliquid", "BTC/USDC:USDC")
ETH_HL = instrument_for("hyperliquid", "ETH/USDC:USDC")


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def ccxt_recorded(exchange: str, method: str, index: int = 0) -> Any:
    return fixture(f"ccxt/{exchange}.response.json")["methods"][method][index]


Answer = Callable[[str, Mapping[str, Any] | None], Any]


def offline(name: str, answer: Answer) -> Any:
    """The real (sync) ccxt exchange for a venue, configured as the pipeline does, with its HTTP layer answering
    from recorded bodies: `answer(url, json_body)` returns the decoded body ccxt would have received."""
    venue = VENUES[name]
    exchange = getattr(ccxt, venue.ccxt_id)({**venue.ccxt_options, "enableRateLimit": False})
    RecordedTransport(lambda request: answer(request.url, request.json)).install(exchange)
    exchange.load_markets()
    return exchange


def history_table_kwargs(raw: RawHistory) -> dict[str, Any]:
    """The venue table's raw-history settings that `open_interest_history_table` takes (as the collector does)."""
    accepted = inspect.signature(open_interest_history_table).parameters
    return {f.name: getattr(raw, f.name) for f in dataclasses.fields(raw) if f.name in accepted}


def liquidations(message: Any, name: str, quote: str) -> list[Any]:
    """Our raw-message parser with the venue table's wire description; the liquidations it produced."""
    wire = VENUES[name].liquidations
    assert wire is not None
    parsed: Any = parse_liquidation_message(message, wire, lookup_for(name, quote), received_ns=RECEIVED)
    return list(getattr(parsed, "records", parsed))


def ticker_kwargs(name: str) -> dict[str, Any]:
    """The venue table's ticker fields, when `parse_ticker_open_interest` takes them (as the collector does)."""
    accepted = inspect.signature(parse_ticker_open_interest).parameters
    return {"fields": VENUES[name].ticker_oi} if "fields" in accepted else {}


def lookup_for(exchange: str, quote: str) -> Callable[[str], tuple[Instrument, float] | None]:
    def lookup(market_id: str) -> tuple[Instrument, float] | None:
        if not market_id.endswith(quote):
            return None
        return instrument_for(exchange, f"{market_id[: -len(quote)]}/{quote}:{quote}"), 1.0

    return lookup


# --- Binance USD-M ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binance() -> Any:
    bodies = {
        "/fapi/v1/exchangeInfo": fixture("nautilus/binance/exchangeInfo.json"),
        "/fapi/v1/openInterest": fixture("exchange-docs/binance-usdm/openInterest.json"),
        "/fapi/v1/premiumIndex": fixture("exchange-docs/binance-usdm/premiumIndex.json"),
        "/fapi/v1/fundingRate": fixture("nautilus/binance/fundingRate.json"),
    }

    def answer(url: str, body: Mapping[str, Any] | None) -> Any:
        path = url.split("?")[0].split("binance.com")[1]
        return bodies[path]

    return offline("binance", answer)


def test_binance_exchange_info_perpetual(binance: Any) -> None:
    market = binance.market("BTC/USDT:USDT")
    assert (market["id"], market["linear"], market["swap"], market["contractSize"]) == (
        "BTCUSDT",
        True,
        True,
        1.0,
    )


def test_binance_open_interest_is_base_units_at_exchange_time(binance: Any) -> None:
    item = binance.fetch_open_interest("BTC/USDT:USDT")
    oi = parse_open_interest(item, BTC_BINANCE, received_ns=RECEIVED)
    assert oi.open_interest == 10659.509  # BTC
    assert oi.open_interest_value is None  # the endpoint gives no value and no mark price was passed
    assert oi.ts_event == 1589437530011 * NS_PER_MS
    assert oi.ts_init == RECEIVED
    mark = binance.fetch_funding_rate("BTC/USDT:USDT")["markPrice"]
    valued = parse_open_interest(item, BTC_BINANCE, received_ns=RECEIVED, mark_price=mark)
    assert valued.open_interest_value == pytest.approx(10659.509 * 11793.63104562)


@pytest.mark.parametrize(
    ("path", "amount", "value", "t_ms"),
    [
        # docs (current shape: numeric timestamp, CMCCirculatingSupply)
        (
            "exchange-docs/binance-usdm/openInterestHist.json",
            20403.12345678,
            176196512.12345678,
            1591261042378,
        ),
        # NautilusTrader's copy of the older docs shape: timestamp as a string
        ("nautilus/binance/openInterestHist.json", 20403.637, 150570784.07809979, 1583127900000),
    ],
)
def test_binance_open_interest_history_raw_rows(path: str, amount: float, value: float, t_ms: int) -> None:
    raw = VENUES["binance"].oi_history_raw
    assert raw is not None
    table = open_interest_history_table(fixture(path), BTC_BINANCE, **history_table_kwargs(raw))
    first = table.to_pylist()[0]
    assert first["open_interest"] == amount  # sumOpenInterest: base units
    assert first["open_interest_value"] == pytest.approx(value)  # sumOpenInterestValue: USDT
    assert first["ts_event"] == first["ts_init"] == t_ms * NS_PER_MS


def test_binance_premium_index_is_the_running_estimate(binance: Any) -> None:
    item = binance.fetch_funding_rate("BTC/USDT:USDT")
    est = parse_funding_estimate(item, BTC_BINANCE, received_ns=RECEIVED, interval=480)
    assert est.rate == 0.00038246  # lastFundingRate
    assert (
        est.next_funding_ns == 1597392000000 * NS_PER_MS
    )  # nextFundingTime: when the running interval settles
    assert est.ts_event == 1597370495002 * NS_PER_MS
    assert (est.mark_price, est.index_price) == (11793.63104562, 11781.8049597)
    assert est.interval_minutes == 480  # premiumIndex has none; fundingInfo/default supplies it


def test_binance_settled_funding_history(binance: Any) -> None:
    rows = binance.fetch_funding_rate_history("BTC/USDT:USDT")
    history = parse_funding_history(rows, BTC_BINANCE)
    assert [(r.ts_event, r.rate) for r in history] == [
        (1570608000000 * NS_PER_MS, -0.0375),
        (1570636800000 * NS_PER_MS, 0.0001),
    ]
    assert [r.interval_minutes for r in history] == [None, 480]  # 8 h between the two settlements


def test_binance_docs_funding_history_row_through_ccxt(binance: Any) -> None:
    row = fixture("exchange-docs/binance-usdm/fundingRate.json")[0]
    parsed = binance.parse_funding_rate_history(row, binance.market("BTC/USDT:USDT"))
    (settled,) = parse_funding_history([parsed], BTC_BINANCE)
    assert (settled.rate, settled.ts_event) == (-0.0375, 1570608000000 * NS_PER_MS)


def test_binance_funding_info_interval_is_in_hours() -> None:
    (row,) = fixture("exchange-docs/binance-usdm/fundingInfo.json")
    assert row["fundingIntervalHours"] * 60 == VENUES["binance"].default_funding_interval_minutes


@pytest.mark.parametrize(
    ("path", "price"),
    [
        ("exchange-docs/binance-usdm/forceOrder.json", 9910.0),
        ("nautilus/binance/forceOrder.json", 9910.12345678),
    ],
)
def test_binance_force_order(path: str, price: float) -> None:
    (liq,) = liquidations(fixture(path), "binance", "USDT")
    assert liq.side == Side.LONG  # S=SELL: the liquidation order sells, so a long was closed
    assert liq.quantity == 0.014  # l == z == q in every published example
    assert liq.price == price  # ap, the average fill price
    assert liq.notional == pytest.approx(0.014 * price)
    assert liq.ts_event == 1568014460893 * NS_PER_MS  # T
    assert liq.ts_init == RECEIVED


def test_binance_force_order_quantity_is_the_accumulated_fill() -> None:
    # No published forceOrder has l != z (docs, SDK tests, NautilusTrader all show one full fill), so the
    # choice of field is checked in the venue table: z is the order's accumulated filled quantity (docs).
    wire = VENUES["binance"].liquidations
    assert wire is not None
    assert wire.quantity_field == "z"


# --- Bybit v5 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bybit() -> Any:
    bodies = {
        "/v5/market/instruments-info": fixture("exchange-docs/bybit/instruments-info-linear.json"),
        "/v5/market/funding/history": fixture("nautilus/bybit/funding-history.json"),
        "/v5/market/tickers": ccxt_recorded("bybit", "fetchTicker")["httpResponse"],
    }

    def answer(url: str, body: Mapping[str, Any] | None) -> Any:
        return bodies[url.split("?")[0].split("bybit.com")[1]]

    return offline("bybit", answer)


def test_bybit_instrument_funding_interval_in_minutes(bybit: Any) -> None:
    market = bybit.market("BTC/USDT:USDT")
    assert (market["linear"], market["contractSize"]) == (True, 1.0)
    assert market["info"][VENUES["bybit"].market_funding_interval_field] == 480  # minutes (docs field table)


def test_bybit_history_stores_the_single_side() -> None:
    # Docs example (an inverse symbol, the only one the page shows): openInterest is both sides,
    # singleOpenInterest one side. Only the side semantics are asserted here, not the unit.
    raw = VENUES["bybit"].oi_history_raw
    assert raw is not None
    rows = fixture("exchange-docs/bybit/open-interest.json")["result"]["list"]
    table = open_interest_history_table(rows, BTC_BYBIT, **history_table_kwargs(raw))
    first = table.to_pylist()[0]
    assert first["open_interest"] == 31955346.0
    assert first["ts_event"] == 1780963200000 * NS_PER_MS


def test_bybit_history_without_single_side_is_half_of_both_sides() -> None:
    raw = VENUES["bybit"].oi_history_raw
    assert raw is not None
    rows = ccxt_recorded("bybit", "fetchOpenInterest")["httpResponse"]["result"]["list"]  # linear, real
    table = open_interest_history_table(rows, BTC_BYBIT, **history_table_kwargs(raw))
    first = table.to_pylist()[0]
    assert first["open_interest"] == pytest.approx(62129.455 / 2)  # BTC, one side
    assert first["ts_event"] == 1739725200000 * NS_PER_MS


def test_bybit_live_ticker_without_single_side_is_half_of_both_sides(bybit: Any) -> None:
    ticker = bybit.fetch_ticker("BTC/USDT:USDT")  # ccxt's real linear recording: no singleOpenInterest yet
    oi = parse_ticker_open_interest(ticker, BTC_BYBIT, received_ns=RECEIVED, **ticker_kwargs("bybit"))
    assert oi.open_interest == pytest.approx(225766.793 / 2)
    assert oi.open_interest_value == pytest.approx(11614437205.81 / 2)


def test_bybit_settled_funding_history_newest_first_in(bybit: Any) -> None:
    rows = bybit.fetch_funding_rate_history("BTC/USDT:USDT")
    history = parse_funding_history(rows, BTC_BYBIT)
    assert [(r.ts_event, r.rate, r.interval_minutes) for r in history] == [
        (1709856000000 * NS_PER_MS, 0.00015, None),
        (1709884800000 * NS_PER_MS, 0.0001, 480),
    ]


def test_bybit_all_liquidation_side_is_the_position() -> None:
    (liq,) = liquidations(fixture("exchange-docs/bybit/allLiquidation.json"), "bybit", "USDT")
    assert liq.side == Side.SHORT  # S=Sell: a short position was liquidated (docs: Buy = long liquidated)
    assert (liq.quantity, liq.price) == (20000.0, 0.04499)
    assert liq.notional == pytest.approx(20000 * 0.04499)
    assert liq.ts_event == 1739502302929 * NS_PER_MS
    assert liq.instrument_id == instrument_for("bybit", "ROSE/USDT:USDT").instrument_id


# --- Hyperliquid ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hyperliquid() -> Any:
    def answer(url: str, body: Mapping[str, Any] | None) -> Any:
        assert body is not None
        if body["type"] == "metaAndAssetCtxs":
            return fixture("exchange-docs/hyperliquid/metaAndAssetCtxs.json")
        if body["type"] == "fundingHistory" and body["coin"] == "ETH":
            return fixture("exchange-docs/hyperliquid/fundingHistory.json")
        if body["type"] == "fundingHistory" and body["coin"] == "BTC":
            return fixture("nautilus/hyperliquid/fundingHistory.json")
        raise AssertionError(f"not recorded: {body}")

    return offline("hyperliquid", answer)


def test_hyperliquid_open_interest_in_coins_valued_at_mark(hyperliquid: Any) -> None:
    item = hyperliquid.fetch_open_interests(["BTC/USDC:USDC"])["BTC/USDC:USDC"]
    assert item["openInterestAmount"] == 688.11  # ccxt passes `openInterest` through: both sides
    # The venue table reads one side, as the collector does: half of `openInterest` (docs/exchanges.md).
    oi = parse_open_interest(item, BTC_HL, received_ns=RECEIVED, fields=VENUES["hyperliquid"].current_oi_raw)
    assert oi.open_interest == 688.11 / 2 == 344.055  # coins, one side
    assert oi.open_interest_value == 344.055 * 14.3161  # x markPx, USDC
    assert oi.ts_event == oi.ts_init == RECEIVED  # no exchange time in the payload


def test_hyperliquid_live_funding(hyperliquid: Any) -> None:
    item = hyperliquid.fetch_funding_rates(["BTC/USDC:USDC"])["BTC/USDC:USDC"]
    est = parse_funding_estimate(item, BTC_HL, received_ns=RECEIVED)
    assert est.rate == 0.0000125
    assert (est.mark_price, est.index_price) == (14.3161, 14.32)  # markPx, oraclePx
    assert est.interval_minutes == 60


@pytest.mark.parametrize(
    ("symbol", "inst", "expected"),
    [
        ("ETH/USDC:USDC", ETH_HL, [(1683849600076, -0.00022196)]),
        (
            "BTC/USDC:USDC",
            BTC_HL,
            [(1769908800000, 0.0000125), (1769912400000, -0.0000081), (1769916000000, 3.3e-06)],
        ),
    ],
)
def test_hyperliquid_funding_history(
    hyperliquid: Any, symbol: str, inst: Instrument, expected: list[tuple[int, float]]
) -> None:
    rows = hyperliquid.fetch_funding_rate_history(symbol, since=expected[0][0])
    history = parse_funding_history(rows, inst, fixed_interval=VENUES["hyperliquid"].funding_interval_minutes)
    assert [(r.ts_event, r.rate) for r in history] == [(t * NS_PER_MS, rate) for t, rate in expected]
    assert all(r.interval_minutes == 60 for r in history)
