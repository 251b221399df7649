"""Liquidation messages as each exchange documents them, and what the tap makes of them (pure: no socket)."""

from __future__ import annotations

import pytest

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.instruments import Instrument, instrument_for
from ccxt_pipeline.models import CoverageGap, Liquidation, Record, Side
from ccxt_pipeline.parsers.liquidations import parse_liquidation_message
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import VENUES

RECEIVED = 1_739_502_303_300_000_000
BINANCE = VENUES["binance"].liquidations
BYBIT = VENUES["bybit"].liquidations


def lookup_for(exchange: str, contract_size: float = 1.0):
    def lookup(market_id: str) -> tuple[Instrument, float] | None:
        quote = "USDT" if market_id.endswith("USDT") else None
        if quote is None:
            return None
        return instrument_for(exchange, f"{market_id[:-4]}/USDT:USDT"), contract_size

    return lookup


# https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams
BINANCE_SAMPLE = {
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
BYBIT_SAMPLE = {
    "topic": "allLiquidation.ROSEUSDT",
    "type": "snapshot",
    "ts": 1739502303204,
    "data": [{"T": 1739502302929, "s": "ROSEUSDT", "S": "Sell", "v": "20000", "p": "0.04499"}],
}


def test_binance_sell_order_means_a_long_was_liquidated() -> None:
    assert BINANCE is not None
    (liq,) = parse_liquidation_message(BINANCE_SAMPLE, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    assert liq.side is Side.LONG  # S=SELL: the liquidation order sold, closing a long position
    assert (liq.instrument_id, liq.quantity, liq.price) == ("BTCUSDT-PERP.BINANCE", 0.014, 9910.0)
    assert liq.notional == pytest.approx(138.74)
    assert liq.ts_event == 1568014460893 * NS_PER_MS
    assert liq.ts_init == RECEIVED


def test_bybit_sell_means_a_short_was_liquidated() -> None:
    assert BYBIT is not None
    (liq,) = parse_liquidation_message(BYBIT_SAMPLE, BYBIT, lookup_for("bybit"), received_ns=RECEIVED)
    assert liq.side is Side.SHORT  # Bybit: S is the position side; Sell = a short position was liquidated
    assert (liq.instrument_id, liq.quantity, liq.price) == ("ROSEUSDT-LINEAR.BYBIT", 20000.0, 0.04499)
    assert liq.notional == pytest.approx(899.8)
    assert liq.ts_event == 1739502302929 * NS_PER_MS


def test_contract_size_scales_quantity_and_notional() -> None:
    assert BYBIT is not None
    (liq,) = parse_liquidation_message(BYBIT_SAMPLE, BYBIT, lookup_for("bybit", 10.0), received_ns=RECEIVED)
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
    assert [(r.side, r.quantity) for r in got] == [(Side.LONG, 0.5), (Side.SHORT, 0.25)]


def test_bad_items_are_refused_with_the_field() -> None:
    assert BINANCE is not None
    bad_side = {"o": {**BINANCE_SAMPLE["o"], "S": "HOLD"}}
    with pytest.raises(RecordError, match="side"):
        parse_liquidation_message(bad_side, BINANCE, lookup_for("binance"), received_ns=RECEIVED)
    zero_price = {"o": {**BINANCE_SAMPLE["o"], "ap": "0"}}
    with pytest.raises(RecordError, match="price"):
        parse_liquidation_message(zero_price, BINANCE, lookup_for("binance"), received_ns=RECEIVED)


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
