"""The pure liquidation decoder (stream/decoder.py) on recorded payloads, and the market lookup it is given.

Payloads are read from tests/fixtures/ (sources in tests/fixtures/SOURCES.md): Binance's `forceOrder`
example from its docs and NautilusTrader's copy of it, Bybit's `allLiquidation` example. Variants change
one field of those, and say which. The markets come from ccxt parsing NautilusTrader's recorded Binance
`exchangeInfo`. No socket, clock or disk: the decoder is called directly.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import ccxt
import pytest

from ccxt_pipeline.instruments import Instrument, instrument_for
from ccxt_pipeline.models import Side
from ccxt_pipeline.parsers.liquidations import Lookup
from ccxt_pipeline.stream.decoder import SeenEvents, decode_liquidations, event_key
from ccxt_pipeline.stream.markets import MarketBook
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import VENUES, LiquidationWire

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED = 1_739_502_303_300_000_000


def payload(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return data


def wire(exchange: str) -> LiquidationWire:
    found = VENUES[exchange].liquidations
    assert found is not None
    return found


def linear_lookup(exchange: str, contract_size: float = 1.0) -> tuple[Lookup, list[str]]:
    """Every `...USDT` id is a linear perpetual; the ids asked for are kept."""
    asked: list[str] = []

    def lookup(market_id: str) -> tuple[Instrument, float] | None:
        asked.append(market_id)
        if not market_id.endswith("USDT"):
            return None
        return instrument_for(exchange, f"{market_id[:-4]}/USDT:USDT"), contract_size

    return lookup, asked


def decode(message: Any, exchange: str, seen: SeenEvents | None = None, contract_size: float = 1.0) -> Any:
    lookup, _ = linear_lookup(exchange, contract_size)
    return decode_liquidations(
        message, wire(exchange), lookup, seen if seen is not None else SeenEvents(), received_ns=RECEIVED
    )


def test_binance_docs_force_order_is_one_long_liquidation() -> None:
    message = payload("exchange-docs/binance-usdm/forceOrder.json")
    out = decode(message, "binance")
    (liq,) = out.records
    assert (out.errors, out.unfilled, out.duplicates) == ([], 0, 0)
    assert liq.side is Side.LONG  # S=SELL: the liquidation order sold, closing a long
    assert (liq.instrument_id, liq.quantity, liq.price) == ("BTCUSDT-PERP.BINANCE", 0.014, 9910.0)
    assert liq.notional == pytest.approx(0.014 * 9910)
    assert (liq.ts_event, liq.ts_init) == (1568014460893 * NS_PER_MS, RECEIVED)


def test_nautilus_copy_prices_at_the_average_fill_price() -> None:
    (liq,) = decode(payload("nautilus/binance/forceOrder.json"), "binance").records
    assert liq.price == 9910.12345678  # `ap`, not the order price `p` (9910.00000000)
    assert liq.notional == pytest.approx(0.014 * 9910.12345678)


def test_bybit_docs_all_liquidation_is_one_short_liquidation_scaled_by_contract_size() -> None:
    message = payload("exchange-docs/bybit/allLiquidation.json")
    (liq,) = decode(message, "bybit").records
    assert liq.side is Side.SHORT  # Bybit S is the position's side: Sell = a short was liquidated
    assert (liq.instrument_id, liq.quantity, liq.price) == ("ROSEUSDT-LINEAR.BYBIT", 20000.0, 0.04499)
    (scaled,) = decode(message, "bybit", contract_size=10.0).records
    assert (scaled.quantity, scaled.notional) == (200_000.0, pytest.approx(200_000 * 0.04499))


def test_a_message_decoded_again_is_all_duplicates_and_the_memory_is_only_what_is_passed_in() -> None:
    message = payload("exchange-docs/binance-usdm/forceOrder.json")
    seen = SeenEvents()
    first = decode(message, "binance", seen)
    again = decode(message, "binance", seen)
    assert (len(first.records), first.duplicates) == (1, 0)
    assert (again.records, again.duplicates) == ([], 1)
    assert len(decode(message, "binance", SeenEvents()).records) == 1  # a fresh memory: new again
    assert len(seen) == 1


def test_the_decoder_leaves_the_message_as_it_was() -> None:
    message = payload("exchange-docs/bybit/allLiquidation.json")
    before = copy.deepcopy(message)
    decode(message, "bybit")
    assert message == before


def test_bad_unfilled_and_unknown_items_are_counted_apart_and_the_good_ones_kept() -> None:
    """Bybit's docs message with five items: the example, a broken side, a non-number size, an inverse
    market (not ours: skipped silently), and the example one millisecond later."""
    good = payload("exchange-docs/bybit/allLiquidation.json")["data"][0]
    message = {
        "topic": "allLiquidation.ROSEUSDT",
        "data": [
            good,
            {**good, "T": good["T"] + 1, "S": "Hold"},
            {**good, "T": good["T"] + 2, "v": "abc"},
            {**good, "T": good["T"] + 3, "s": "ROSEUSD"},
            {**good, "T": good["T"] + 4},
        ],
    }
    lookup, asked = linear_lookup("bybit")
    out = decode_liquidations(message, wire("bybit"), lookup, SeenEvents(), received_ns=RECEIVED)
    assert [r.ts_event // NS_PER_MS - good["T"] for r in out.records] == [0, 4]
    assert len(out.errors) == 2
    assert out.errors[0].startswith("item 1 (ROSEUSDT): Liquidation.side")
    assert out.errors[1] == "item 2 (ROSEUSDT): Liquidation.quantity: 'v' is not a number (got 'abc')"
    assert (out.unfilled, out.duplicates) == (0, 0)
    assert "ROSEUSD" in asked


def test_binance_orders_not_finally_filled_are_unfilled_not_errors() -> None:
    """The docs example with `X` changed: NEW is not a final state (Binance order states, SOURCES.md)."""
    message = payload("exchange-docs/binance-usdm/forceOrder.json")
    message["o"]["X"] = "NEW"
    out = decode(message, "binance")
    assert (out.records, out.errors, out.unfilled) == ([], [], 1)


def test_a_message_without_items_is_one_error() -> None:
    out = decode({"e": "forceOrder"}, "binance")
    assert out.records == []
    assert out.errors == ["no liquidation item under 'o' (got NoneType)"]


def test_seen_events_forget_the_oldest_past_their_limit() -> None:
    seen = SeenEvents(limit=2)
    assert [seen.add(k) for k in ("a", "b", "a", "c")] == [True, True, False, True]
    assert len(seen) == 2
    assert seen.add("a")  # forgotten when "c" came: new again
    assert not seen.add("c")


def test_the_event_key_tells_apart_what_differs_in_any_field() -> None:
    message = payload("exchange-docs/binance-usdm/forceOrder.json")
    (liq,) = decode(message, "binance").records
    assert event_key(liq) != event_key(liq.model_copy(update={"price": 9911.0}))
    assert event_key(liq) == event_key(liq.model_copy(update={"ts_init": liq.ts_init + 1}))  # a replay


def binance_exchange() -> Any:
    """ccxt's binanceusdm with the markets parsed from NautilusTrader's recorded exchangeInfo."""
    exchange = ccxt.binanceusdm()
    info = payload("nautilus/binance/exchangeInfo.json")
    exchange.set_markets([exchange.parse_market(m) for m in info["symbols"]])
    return exchange


def test_market_book_resolves_wire_ids_through_ccxt_and_tells_each_new_instrument_once() -> None:
    met: list[str] = []
    book = MarketBook("binance", lambda inst, market: met.append(inst.instrument_id))
    assert book.lookup("BTCUSDT") is None  # not bound to an exchange yet: nothing remembered
    book.bind(binance_exchange())
    for _ in range(3):
        found = book.lookup("BTCUSDT")
        assert found is not None
        assert (found[0].instrument_id, found[1]) == ("BTCUSDT-PERP.BINANCE", 1.0)
    assert book.lookup("DOGEUSDT") is None  # not listed
    assert book.lookup("ETHUSDT") is not None
    assert met == ["BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE"]


def test_decoder_with_the_market_book_on_the_recorded_payload() -> None:
    book = MarketBook("binance", lambda inst, market: None)
    book.bind(binance_exchange())
    message = payload("exchange-docs/binance-usdm/forceOrder.json")
    out = decode_liquidations(message, wire("binance"), book.lookup, SeenEvents(), received_ns=RECEIVED)
    assert [(r.instrument_id, r.side, r.quantity) for r in out.records] == [
        ("BTCUSDT-PERP.BINANCE", Side.LONG, 0.014)
    ]
