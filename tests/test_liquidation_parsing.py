"""Liquidation messages as each exchange documents them, and what the tap makes of them (pure: no socket)."""

from __future__ import annotations

from typing import Any

import pytest

from ccxt_pipeline.instruments import Instrument, instrument_for
from ccxt_pipeline.models import CoverageGap, Liquidation, Record, Side
from ccxt_pipeline.parsers.liquidations import Lookup, parse_liquidation_message
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import VENUES

RECEIVED = 1_739_502_303_300_000_000
BINANCE = VENUES["binance"].liquidations
BYBIT = VENUES["bybit"].liquidations


def lookup_for(exchange: str, contract_size: float = 1.0) -> Lookup:
    def lookup(market_id: str) -> tuple[Instrument, float] | None:
        quote = "USDT" if market_id.endswith("USDT") else None
        if quote is None:
            return None
        return instrument_for(exchange, f"{market_id[:-4]}/USDT:USDT"), contract_size

    return lookup


# https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams
BINANCE_SAMPLE: dict[str, Any] = {
    "e": "forceOrder",
    "E": 1568014460893,
    "o": {
        "s": "BTCUSDT",
        "S": "SELL",
        "o": "LIMIT",
        "f": "IOC",
        "q": "0.014",
        "p": "9910",
        "ap": "9910",
        "X": "FILLED",
        "l": "0.014",
        "z": "0.014",
        "T": 1568014460893,
    },
}

# https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation
BYBIT_SAMPLE: dict[str, Any] = {
    "topic": "allLiquidation.ROSEUSDT",
    "type": "snapshot",
    "ts": 1739502303204,
    "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000", "p": "0.04499"}],
}


def test_binance_sell_order_means_a_long_was_liquidated() -> None:
    assert BINANCE is not None
    (liq,) = parse_liquidation_message(
        BINANCE_SAMPLE, BINANCE, lookup_for("binance"), received_ns=RECEIVED
    ).records
    assert liq.side is Side.LONG  # S=SELL: the liquidation order sold, closing a long position
    assert (liq.instrument_id, liq.quantity, liq.price) == ("BTCUSDT-PERP.BINANCE", 0.014, 9910.0)
    assert liq.notional == pytest.approx(138.74)
    assert liq.ts_event == 1568014460893 * NS_PER_MS
    assert liq.ts_init == RECEIVED


def test_bybit_sell_means_a_short_was_liquidated() -> None:
    assert BYBIT is not None
    (liq,) = parse_liquidation_message(BYBIT_SAMPLE, BYBIT, lookup_for("bybit"), received_ns=RECEIVED).records
    assert liq.side is Side.SHORT  # Bybit: S is the position side; Sell = a short position was liquidated
    assert (liq.instrument_id, liq.quantity, liq.price) == ("ROSEUSDT-LINEAR.BYBIT", 20000.0, 0.04499)
    assert liq.notional == pytest.approx(899.8)
    assert liq.ts_event == 1739502302929 * NS_PER_MS


def test_contract_size_scales_quantity_and_notional() -> None:
    assert BYBIT is not None
    (liq,) = parse_liquidation_message(
        BYBIT_SAMPLE, BYBIT, lookup_for("bybit", 10.0), received_ns=RECEIVED
    ).records
    assert liq.quantity == 200_000.0
    assert liq.notional == pytest.approx(8998.0)


def test_several_items_in_one_message_and_unknown_markets_skipped() -> None:
    assert BYBIT is not None
    message = {
        "topic": "allLiquidation.BTCUSDT",
        "data": [
            {"T": 1739502302001, "s": "BTCUSDT", "S": "Buy", "v": "0.5", "p": "97000"},
            {"T": 1739502302002, "s": "BTCUSD", "S": "Buy", "v": "100", "p": "97000"},  # inverse: not ours
            {"T": 1739502302003, "s": "BTCUSDT", "S": "Sell", "v": "0.25", "p": "96999.5"},
        ],
    }
    got = parse_liquidation_message(message, BYBIT, lookup_for("bybit"), received_ns=RECEIVED)
    assert [(r.side, r.quantity) for r in got.records] == [(Side.LONG, 0.5), (Side.SHORT, 0.25)]
    assert got.errors == []


def test_bad_items_are_refused_with_the_field() -> None:
    assert BINANCE is not None
    bad_side = {"o": {**BINANCE_SAMPLE["o"], "S": "HOLD"}}
    got = parse_liquidation_message(bad_side, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    assert got.records == []
    (error,) = got.errors
    assert "side" in error
    assert "HOLD" in error
    zero_price = {"o": {**BINANCE_SAMPLE["o"], "ap": "0"}}
    got = parse_liquidation_message(zero_price, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    assert got.records == []
    assert len(got.errors) == 1
    assert "price" in got.errors[0]
    not_messages: list[object] = [None, [], {"e": "forceOrder"}, {"o": "text"}]
    for not_a_message in not_messages:
        got = parse_liquidation_message(not_a_message, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
        assert got.records == []
        assert len(got.errors) == 1


class FakeExchange:
    """Only what the tap asks of a ccxt exchange: market lookup by id."""

    def safe_market(self, market_id: str, *_: object) -> dict[str, object]:
        if market_id.endswith("USDT"):
            return {"symbol": f"{market_id[:-4]}/USDT:USDT", "linear": True, "contractSize": 1.0}
        return {}


def make_tap() -> tuple[Tap, list[Record], list[int]]:
    emitted: list[Record] = []
    now = [RECEIVED]
    tap = Tap(
        VENUES["binance"], ExchangeHealth("binance"), emitted.extend, lambda: now[0], ["BTCUSDT-PERP.BINANCE"]
    )
    tap.bind(FakeExchange())
    return tap, emitted, now


def test_tap_drops_duplicate_frames_and_counts_them() -> None:
    tap, emitted, _ = make_tap()
    tap.connected()
    for _ in range(3):
        tap.liquidation(BINANCE_SAMPLE)
    assert len(emitted) == 1
    assert (tap.health.events, tap.health.duplicates) == (1, 2)
    assert tap.health.lag_ms == (RECEIVED - 1568014460893 * NS_PER_MS) / NS_PER_MS


def test_tap_records_each_disconnect_as_a_gap_from_last_alive_to_reconnect() -> None:
    tap, emitted, now = make_tap()
    tap.connected()
    tap.frame()
    alive = now[0]
    now[0] += 5_000_000_000
    tap.disconnected("dropped")
    tap.disconnected("dropped again")  # the same outage, reported twice by ccxt
    now[0] += 2_000_000_000
    tap.connected()
    assert not [r for r in emitted if isinstance(r, CoverageGap)]  # connected, but not yet heard from
    now[0] += 1_000_000
    tap.frame()  # the subscription ack: listening again
    gaps = [r for r in emitted if isinstance(r, CoverageGap)]
    assert len(gaps) == 1
    assert (gaps[0].ts_event, gaps[0].end_ns, gaps[0].data_type) == (alive, now[0], "liquidation")
    assert tap.health.gaps == 1


def test_tap_skips_a_malformed_message_and_keeps_going() -> None:
    tap, emitted, _ = make_tap()
    tap.liquidation({"o": {"s": "BTCUSDT", "S": "SELL", "l": "x", "ap": "1", "T": 1}})
    tap.liquidation(BINANCE_SAMPLE)
    assert tap.health.errors == 1
    assert [type(r) for r in emitted] == [Liquidation]


# --- whole fills, order states and one bad item among good ones -------------------------------------------
# Payloads are Binance's and Bybit's documented examples (see tests/fixtures/SOURCES.md), with the fields
# each case is about changed.


def binance(**changes: object) -> dict[str, object]:
    return {**BINANCE_SAMPLE, "o": {**BINANCE_SAMPLE["o"], **changes}}


def test_binance_quantity_is_the_accumulated_fill_not_the_last_one() -> None:
    """One snapshot per symbol per second: an order that filled three times shows its last fill in `l`,
    all of them in `z`, and their average price in `ap`."""
    assert BINANCE is not None
    message = binance(q="0.030", p="9860", ap="9905.5", l="0.004", z="0.030")
    got = parse_liquidation_message(message, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    (liq,) = got.records
    assert (liq.quantity, liq.price) == (0.030, 9905.5)
    assert liq.notional == pytest.approx(297.165)
    assert (got.errors, got.unfilled) == ([], 0)


def test_binance_expired_after_partial_fills_stores_what_was_filled() -> None:
    """An IOC liquidation order that filled 0.020 of 0.030 and expired: 0.020 was liquidated."""
    assert BINANCE is not None
    message = binance(X="EXPIRED", q="0.030", l="0.005", z="0.020")
    (liq,) = parse_liquidation_message(message, BINANCE, lookup_for("binance"), received_ns=RECEIVED).records
    assert liq.quantity == 0.020


@pytest.mark.parametrize(
    "changes",
    [
        {"X": "PARTIALLY_FILLED", "l": "0.004", "z": "0.010"},  # not final: its last snapshot repeats it
        {"X": "NEW", "l": "0", "z": "0"},
        {"X": "EXPIRED", "l": "0", "z": "0"},  # expired unfilled: nothing liquidated
        {"X": "CANCELED", "l": "0.004", "z": "0.004"},  # not a state a liquidation order ends in
    ],
    ids=lambda c: c["X"],
)
def test_binance_states_that_liquidated_nothing_final_are_counted_not_stored(changes: dict[str, str]) -> None:
    assert BINANCE is not None
    got = parse_liquidation_message(binance(**changes), BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    assert (got.records, got.errors, got.unfilled) == ([], [], 1)


def test_binance_missing_status_is_a_bad_item() -> None:
    assert BINANCE is not None
    order: dict[str, object] = dict(BINANCE_SAMPLE["o"])
    del order["X"]
    got = parse_liquidation_message({"o": order}, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    assert got.records == []
    assert len(got.errors) == 1
    assert "'X'" in got.errors[0]


def bybit_items(*items: object) -> dict[str, object]:
    return {**BYBIT_SAMPLE, "data": list(items)}


GOOD_ROSE = BYBIT_SAMPLE["data"][0]


def test_bybit_one_bad_item_skips_that_item_only() -> None:
    assert BYBIT is not None
    message = bybit_items(
        GOOD_ROSE,
        {**GOOD_ROSE, "T": 1739502302930, "v": "abc"},
        {**GOOD_ROSE, "T": 1739502302931, "S": "Buy", "v": "150"},
        {**GOOD_ROSE, "T": 1739502302932, "p": None},
        "not an item",
    )
    got = parse_liquidation_message(message, BYBIT, lookup_for("bybit"), received_ns=RECEIVED)
    assert [(r.ts_event // NS_PER_MS, r.side, r.quantity) for r in got.records] == [
        (1739502302929, Side.SHORT, 20000.0),
        (1739502302931, Side.LONG, 150.0),
    ]
    assert len(got.errors) == 3
    assert got.errors[0] == "item 1 (ROSEUSDT): Liquidation.quantity: 'v' is not a number (got 'abc')"
    assert got.errors[1].startswith("item 3 (ROSEUSDT): Liquidation.price")
    assert got.errors[2].startswith("item 4 (None): item 4 is not an object")


def test_tap_counts_each_bad_item_and_stores_the_good_ones() -> None:
    emitted: list[Record] = []
    tap = Tap(VENUES["bybit"], ExchangeHealth("bybit"), emitted.extend, lambda: RECEIVED, [])
    tap.bind(FakeExchange())
    message = bybit_items(
        GOOD_ROSE,
        {**GOOD_ROSE, "T": 1739502302930, "S": "Hold"},
        {**GOOD_ROSE, "T": 1739502302931, "v": "-3"},
        {**GOOD_ROSE, "T": 1739502302932, "v": "7"},
    )
    tap.liquidation(message)
    assert [r.quantity for r in emitted if isinstance(r, Liquidation)] == [20000.0, 7.0]
    assert (tap.health.events, tap.health.errors) == (2, 2)
    assert "item 2" in str(tap.health.last_error)


def test_tap_counts_unfilled_binance_orders() -> None:
    tap, emitted, _ = make_tap()
    tap.liquidation(binance(X="PARTIALLY_FILLED", l="0.004", z="0.010"))
    tap.liquidation(binance(X="EXPIRED", q="0.030", l="0.005", z="0.020"))
    assert [r.quantity for r in emitted if isinstance(r, Liquidation)] == [0.020]
    assert (tap.health.unfilled, tap.health.errors, tap.health.events) == (1, 0, 1)


async def test_simulated_forceorder_events_parse_to_the_simulators_quantity() -> None:
    """The simulator's random Binance events carry several fills (`l` < `z`) and some EXPIRED orders;
    what the parser stores from the frame it would send is the event's accumulated quantity and price."""
    from ccxt_pipeline.simulator import binance as sim_binance
    from ccxt_pipeline.simulator.server import ExchangeSimulator

    assert BINANCE is not None
    async with ExchangeSimulator(seed=3, now_ms=1_763_640_000_000) as sim:  # fixed: the same events each run
        events = await sim.liquidations.burst("binance", "BTCUSDT", 40, within_ms=400)
    multi = [e for e in events if e.last_fill_str is not None]
    expired = [e for e in events if e.status == "EXPIRED"]
    assert multi
    assert expired
    assert all(e.final for e in events)
    for event in events:
        frame = sim_binance.liquidation_message([event], event.t_ms)
        order = frame["o"]
        if event in multi:
            assert float(order["l"]) < float(order["z"])
        if event in expired:
            assert float(order["q"]) > float(order["z"])
        (liq,) = parse_liquidation_message(
            frame, BINANCE, lookup_for("binance"), received_ns=RECEIVED
        ).records
        assert (liq.quantity, liq.price, liq.side.value) == (
            event.quantity,
            event.price,
            event.liquidated_side,
        )
