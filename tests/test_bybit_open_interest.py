"""Bybit open interest is stored as ONE side of the market, like Binance and Hyperliquid.

Bybit documents `openInterest` as "the sum of both sides" and `singleOpenInterest` as "the single side"
(https://bybit-exchange.github.io/docs/v5/market/open-interest); tickers carry `openInterest` /
`openInterestValue` (both sides) and `singleOpenInterest` / `singleOpenInterestValue` (single side)
(https://bybit-exchange.github.io/docs/v5/market/tickers). Parsers on recorded payloads; then `fetch-oi`
through the real CLI and the real ccxt against the simulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.models import OpenInterest
from ccxt_pipeline.parsers.open_interest import open_interest_history_table, parse_ticker_open_interest
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MINUTE, NS_PER_MS
from ccxt_pipeline.venues import VENUES

FIXTURES = Path(__file__).parent / "fixtures"
BYBIT = VENUES["bybit"]
assert BYBIT.oi_history_raw is not None
HISTORY_FIELDS = BYBIT.oi_history_raw.fields
TICKER_FIELDS = BYBIT.ticker_oi
BTC_BYBIT = instrument_for("bybit", "BTC/USDT:USDT")
RECEIVED = 1_760_352_369_814_000_000
IID = "BTCUSDT-LINEAR.BYBIT"


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


# --- parsers on recorded payloads ------------------------------------------------------------------------


def test_history_rows_with_the_single_side_field_store_it_as_sent() -> None:
    # Bybit's docs example (category inverse: the unit is USD there, which does not matter for which field
    # is read). Its single side is not exactly half of both sides (31955346 vs 63910691 / 2): Bybit's own
    # single-side figure is what is stored, not our half.
    rows = fixture("exchange-docs/bybit/open-interest.json")["result"]["list"]
    table = open_interest_history_table(rows, BTC_BYBIT, fields=HISTORY_FIELDS)
    assert table.column("open_interest").to_pylist() == [float(r["singleOpenInterest"]) for r in rows]
    assert table.column("open_interest").to_pylist()[0] == 31955346.0
    assert table.column("open_interest_value").null_count == table.num_rows  # history has no value
    assert table.column("ts_event").to_pylist() == [int(r["timestamp"]) * NS_PER_MS for r in rows]


def test_history_rows_without_it_store_half_of_both_sides() -> None:
    # ccxt's recorded linear answer from before Bybit served singleOpenInterest.
    answer = fixture("ccxt/bybit.response.json")["methods"]["fetchOpenInterest"][0]["httpResponse"]
    rows = answer["result"]["list"]
    assert "singleOpenInterest" not in rows[0]
    table = open_interest_history_table(rows, BTC_BYBIT, fields=HISTORY_FIELDS)
    assert table.column("open_interest").to_pylist() == [62129.455 / 2]
    # A page that mixes both kinds of row: each row on its own terms.
    mixed = [
        *rows,
        {"openInterest": "52664.642", "singleOpenInterest": "26332.321", "timestamp": "1739728800000"},
    ]
    table = open_interest_history_table(mixed, BTC_BYBIT, fields=HISTORY_FIELDS)
    assert table.column("open_interest").to_pylist() == [62129.455 / 2, 26332.321]


def test_ticker_without_single_side_fields_stores_half_of_both_sides() -> None:
    # ccxt's recorded linear ticker (BTCUSDT) and Bybit's docs example (inverse): neither has the
    # single-side fields, so amount and value are half of Bybit's both-sides figures.
    recorded = fixture("ccxt/bybit.response.json")["methods"]["fetchTicker"][0]["parsedResponse"]
    oi = parse_ticker_open_interest(recorded, BTC_BYBIT, received_ns=RECEIVED, fields=TICKER_FIELDS)
    assert (oi.open_interest, oi.open_interest_value) == (225766.793 / 2, 11614437205.81 / 2)
    assert oi.open_interest_value == pytest.approx(oi.open_interest * recorded["markPrice"], rel=1e-12)

    raw = fixture("exchange-docs/bybit/tickers-inverse.json")["result"]["list"][0]
    oi = parse_ticker_open_interest({"info": raw}, BTC_BYBIT, received_ns=RECEIVED, fields=TICKER_FIELDS)
    assert (oi.open_interest, oi.open_interest_value) == (240113967 / 2, 2089.79 / 2)


def test_ticker_with_single_side_fields_stores_them_as_sent() -> None:
    # The recorded linear ticker plus the two fields the tickers page documents; values chosen to differ
    # from half of both sides, so that reading the wrong field cannot pass.
    recorded = fixture("ccxt/bybit.response.json")["methods"]["fetchTicker"][0]["parsedResponse"]
    ticker = {
        **recorded,
        "info": {
            **recorded["info"],
            "singleOpenInterest": "112883.4",
            "singleOpenInterestValue": "5807221724.96",
        },
    }
    oi = parse_ticker_open_interest(ticker, BTC_BYBIT, received_ns=RECEIVED, fields=TICKER_FIELDS)
    assert (oi.open_interest, oi.open_interest_value) == (112883.4, 5807221724.96)
    # An empty single-side string (Bybit sends "" for fields without a value) falls back too.
    ticker["info"] = {**recorded["info"], "singleOpenInterest": "", "singleOpenInterestValue": ""}
    oi = parse_ticker_open_interest(ticker, BTC_BYBIT, received_ns=RECEIVED, fields=TICKER_FIELDS)
    assert (oi.open_interest, oi.open_interest_value) == (225766.793 / 2, 11614437205.81 / 2)


def test_ticker_without_any_value_takes_amount_times_mark() -> None:
    recorded = fixture("ccxt/bybit.response.json")["methods"]["fetchTicker"][0]["parsedResponse"]
    info = {k: v for k, v in recorded["info"].items() if k != "openInterestValue"}
    oi = parse_ticker_open_interest(
        {**recorded, "info": info}, BTC_BYBIT, received_ns=RECEIVED, fields=TICKER_FIELDS
    )
    assert oi.open_interest == 225766.793 / 2
    assert oi.open_interest_value == oi.open_interest * 51444.4


# --- fetch-oi through the CLI, real ccxt, simulator ---------------------------------------------------------


def reader(config_file: Path) -> CatalogReader:
    return CatalogReader(config_file.parent / "catalog")


def oi_records(config_file: Path, ids: list[str] | None = None) -> list[OpenInterest]:
    return [r for r in reader(config_file).query_records(OPEN_INTEREST, ids) if isinstance(r, OpenInterest)]


def test_fetch_oi_current_stores_the_single_side(cli: Any, config_file: Path, sim: ExchangeSimulator) -> None:
    sim.now_ms = 1_763_640_000_000  # a fixed now: 2025-11-20T12:00:00Z
    result = cli("fetch-oi", "BTCUSDT-PERP")
    assert result.exit_code == 0, result.output + result.stderr
    rows = oi_records(config_file, [IID])
    assert len(rows) == 1
    row = rows[0]
    single = data.open_interest("bybit", "BTCUSDT", sim.now_ms, sim.seed)
    assert row.open_interest == single  # exactly the simulator's single side, not its 2x openInterest
    assert row.open_interest_value == data.open_interest_value("bybit", "BTCUSDT", sim.now_ms, sim.seed)
    mark = data.mark_price("bybit", "BTCUSDT", sim.now_ms, sim.seed)
    assert row.open_interest_value == pytest.approx(single * mark, abs=0.005)  # Bybit rounds to the cent
    # Comparable with the other venues: each is its own single-side series at the same instant.
    for r in oi_records(config_file):
        ex_symbol = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "hyperliquid": "BTC"}[r.exchange]
        assert r.open_interest == data.open_interest(r.exchange, ex_symbol, sim.now_ms, sim.seed)


def test_fetch_oi_history_stores_the_single_side(cli: Any, config_file: Path, sim: ExchangeSimulator) -> None:
    result = cli("fetch-oi", "BTCUSDT-PERP", "--from", "30d")
    assert result.exit_code == 0, result.output + result.stderr
    table = reader(config_file).query(OPEN_INTEREST, [IID])
    ts = table.column("ts_init").to_pylist()
    assert len(ts) >= 30 * 24 * 12 - 1
    assert all(t % (5 * NS_PER_MINUTE) == 0 for t in ts)
    expected = [data.open_interest("bybit", "BTCUSDT", t // NS_PER_MS, sim.seed) for t in ts]
    assert table.column("open_interest").to_pylist() == expected
    # Bybit's history endpoint has no value in quote currency: amount x mark (tests/test_bybit_oi_value.py).
    assert table.column("open_interest_value").null_count == 0
    # Binance's history is on the same scale (one side), and its values are amount x mark.
    binance = oi_records(config_file, ["BTCUSDT-PERP.BINANCE"])
    assert binance
    for r in binance:
        t = r.ts_init // NS_PER_MS
        assert r.open_interest == data.open_interest("binance", "BTCUSDT", t, sim.seed)
        assert r.open_interest_value is not None
        mark = data.mark_price("binance", "BTCUSDT", t, sim.seed)
        assert r.open_interest_value == pytest.approx(r.open_interest * mark, rel=1e-9)
