"""The tap's connection state as the health line tells it, and what the tap hands on (no I/O of its own).

The clock is injected; messages are the exchanges' documented examples (tests/fixtures/SOURCES.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.timeutil import NS_PER_SECOND
from ccxt_pipeline.venues import VENUES

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000 * NS_PER_SECOND
FORCE_ORDER: dict[str, Any] = json.loads(
    (FIXTURES / "exchange-docs/binance-usdm/forceOrder.json").read_text()
)


class FakeExchange:
    """Only what the tap's market book asks of a ccxt exchange: a market by id."""

    def safe_market(self, market_id: str, *_: object) -> dict[str, object]:
        if market_id.endswith("USDT"):
            return {"symbol": f"{market_id[:-4]}/USDT:USDT", "linear": True, "contractSize": 1.0}
        return {}


class Harness:
    def __init__(self) -> None:
        self.now = NOW
        self.emitted: list[Record] = []
        self.defined: list[tuple[str, int]] = []
        self.tap = Tap(
            VENUES["binance"],
            ExchangeHealth("binance"),
            self.emitted.extend,
            lambda: self.now,
            ["BTCUSDT-PERP.BINANCE"],
            self.define,
        )
        self.tap.bind(FakeExchange())

    def define(self, inst: Instrument, market: Any, ts_ns: int) -> None:
        self.defined.append((inst.instrument_id, ts_ns))

    @property
    def line(self) -> str:
        return self.tap.health.line(self.now)


def test_before_the_first_socket_the_line_says_connecting() -> None:
    h = Harness()
    assert h.line.startswith("binance: connecting, last message never")


def test_a_real_disconnect_says_disconnected_and_a_normal_stop_says_stopped() -> None:
    h = Harness()
    h.tap.connected()
    h.tap.frame()
    assert h.line.startswith("binance: connected, last message 0.0s ago")
    h.now += 2 * NS_PER_SECOND
    h.tap.disconnected("closed (1006)")
    assert h.line.startswith("binance: DISCONNECTED, last message 2.0s ago")
    h.tap.connected()
    h.tap.frame()
    h.tap.closing()  # we close the sockets ourselves
    h.tap.disconnected("closed (1000)")  # ccxt reports our own close: no outage
    h.tap.finish()
    assert h.line.startswith("binance: stopped,")
    assert "DISCONNECTED" not in h.line
    assert [type(r) for r in h.emitted] == [CoverageGap]  # the one real outage


def test_a_stop_during_an_outage_says_stopped_and_closes_the_gap_at_the_stop() -> None:
    h = Harness()
    h.tap.connected()
    h.tap.frame()
    alive = h.now
    h.tap.disconnected("timeout")
    h.now += 5 * NS_PER_SECOND
    h.tap.finish()
    assert h.line.startswith("binance: stopped,")
    (gap,) = h.emitted
    assert isinstance(gap, CoverageGap)
    assert (gap.ts_event, gap.end_ns) == (alive, h.now)


def test_an_instrument_met_is_handed_on_for_the_writer_once_and_nothing_is_written_here(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    h = Harness()
    h.tap.connected()
    for _ in range(3):
        h.tap.liquidation(FORCE_ORDER)
    assert h.defined == [("BTCUSDT-PERP.BINANCE", NOW)]
    assert len(h.emitted) == 1
    assert (h.tap.health.events, h.tap.health.duplicates) == (1, 2)
    assert list(tmp_path.iterdir()) == []  # the tap wrote nothing anywhere


def test_the_last_error_is_on_the_line_short_one_line_and_without_secrets() -> None:
    h = Harness()
    h.tap.connected()
    h.tap.frame()
    h.tap.health.record_error(
        "ExchangeError: binance GET https://x/fapi?apiKey=abcdef123456\nsecond line " * 9
    )
    line = h.line
    assert "errors 1" in line
    assert ", last error: ExchangeError: binance GET" in line
    assert "abcdef123456" not in line
    assert "\n" not in line
    assert len(line) <= 150
    narrow = h.tap.health.line(NOW, width=100)  # no room left: the error keeps 24 characters
    assert len(narrow.split(", last error: ")[1]) == 24
    assert "abcdef123456" not in (h.tap.health.last_error or "")


def test_a_bad_item_shows_as_the_last_error() -> None:
    h = Harness()
    h.tap.liquidation({"o": {**FORCE_ORDER["o"], "S": "HOLD"}})
    assert h.tap.health.errors == 1
    assert "last error: skipped item 0 (BTCUSDT): Liquidation.side" in h.line
