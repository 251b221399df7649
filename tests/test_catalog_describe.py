"""`CatalogReader.describe()` / `coverage_report()` and the `catalog info` / `catalog coverage` output (issues 11
and 13): times from the data, not the file names; each series by its own period; recorded gaps subtracted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ccxt_pipeline.catalog import (
    FUNDING_RATE,
    LIQUIDATION,
    OPEN_INTEREST,
    CatalogReader,
    CatalogWriter,
    DataKind,
)
from ccxt_pipeline.catalog.describe import infer_period, period_name
from ccxt_pipeline.catalog.layout import instrument_dir, list_data_files
from ccxt_pipeline.cli import app
from ccxt_pipeline.collect.plan import Range
from ccxt_pipeline.models import CoverageGap, FundingRate, Liquidation, OpenInterest
from ccxt_pipeline.timeutil import NS_PER_HOUR, NS_PER_MINUTE, parse_when
from tests.strategies import fields

BINANCE = "BTCUSDT-PERP.BINANCE"
BYBIT = "BTCUSDT-LINEAR.BYBIT"
DAY = parse_when("2025-01-01", 0)
H22 = DAY + 22 * NS_PER_HOUR


def at(text: str) -> int:
    return parse_when(f"2025-01-01T{text}Z", 0)


def oi_row(
    ts: int, iid: str = BINANCE, exchange: str = "binance", ts_init: int | None = None
) -> OpenInterest:
    init = ts if ts_init is None else ts_init
    return OpenInterest(**fields(ts, exchange=exchange, instrument_id=iid, ts_init=init, open_interest=1.0))


def liq_row(ts: int) -> Liquidation:
    return Liquidation(**fields(ts, side="LONG", quantity=1.0, price=90_000.0, notional=90_000.0))


def gap(iid: str, kind: DataKind, start: int, end: int, reason: str) -> CoverageGap:
    return CoverageGap.between(kind, iid.rsplit(".", 1)[1].lower(), iid, start, end, reason)


def funding_row(ts: int, minutes: int | None) -> FundingRate:
    return FundingRate(**fields(ts, rate=0.0001, interval_minutes=minutes))


@pytest.fixture
def acceptance(tmp_path: Path) -> Path:
    """Issue 13's case: a 5m open-interest series (one point missing, one live snapshot), a 1h series, and a
    liquidation stream written in minute files around a recorded disconnect from 23:02:05 to 23:02:28."""
    root = tmp_path / "catalog"
    w = CatalogWriter(root)
    five = 5 * NS_PER_MINUTE
    w.write([oi_row(H22 + i * five) for i in range(12) if i != 4])  # 22:00 .. 22:55, 22:20 missing
    # A live snapshot received at 22:57:31 (exchange time 22:57:30), in its 10-minute file 22:50 .. 22:59:59.
    w.write([oi_row(at("22:57:30"), ts_init=at("22:57:31"))], bucket_ns=10 * NS_PER_MINUTE)
    w.write([oi_row(DAY + h * NS_PER_HOUR, BYBIT, "bybit") for h in range(18, 24)])  # 1h: 18:00 .. 23:00
    minute = NS_PER_MINUTE
    for t in ("23:01:03", "23:01:40", "23:02:01"):
        w.write([liq_row(at(t))], bucket_ns=minute)
    w.write([gap(BINANCE, LIQUIDATION, at("23:02:05"), at("23:02:28"), "liquidation stream disconnected")])
    for t in ("23:02:31", "23:03:41.5"):
        w.write([liq_row(at(t))], bucket_ns=minute)
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


EXPECTED_COVERAGE = """\
type           instrument id         period  first (UTC)          last (UTC)               rows  gaps  missing  covered
open_interest  BTCUSDT-LINEAR.BYBIT  1h      2025-01-01 18:00:00  2025-01-01 23:00:00      6     0     0        100.0%
open_interest  BTCUSDT-PERP.BINANCE  5m      2025-01-01 22:00:00  2025-01-01 22:57:31      12    0     1        91.6%
liquidation    BTCUSDT-PERP.BINANCE  -       2025-01-01 23:01:03  2025-01-01 23:03:41.500  5     1     0        85.4%

open_interest BTCUSDT-LINEAR.BYBIT
  present  2025-01-01 18:00:00 .. 2025-01-01 23:00:00

open_interest BTCUSDT-PERP.BINANCE
  present  2025-01-01 22:00:00 .. 2025-01-01 22:15:00
  missing  2025-01-01 22:20:00 .. 2025-01-01 22:20:00
  present  2025-01-01 22:25:00 .. 2025-01-01 22:55:00

liquidation BTCUSDT-PERP.BINANCE
  present  2025-01-01 23:01:03 .. 2025-01-01 23:02:04.999
  gap      2025-01-01 23:02:05 .. 2025-01-01 23:02:28  liquidation stream disconnected
  present  2025-01-01 23:02:28.000 .. 2025-01-01 23:03:41.500
"""


def test_coverage_output_with_a_stream_gap_a_1h_and_a_5m_series(acceptance: Path) -> None:
    result = run("catalog", "coverage", "--catalog", str(acceptance))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == EXPECTED_COVERAGE


def test_coverage_json_is_the_same_report(acceptance: Path) -> None:
    result = run("catalog", "coverage", "--catalog", str(acceptance), "--json")
    entries = {(e["type"], e["instrument_id"]): e for e in json.loads(result.stdout)}
    bybit = entries[("open_interest", BYBIT)]
    assert (bybit["period"], bybit["missing"], bybit["covered_pct"]) == ("1h", [], 100.0)
    binance = entries[("open_interest", BINANCE)]
    assert binance["missing"] == [
        {"from": "2025-01-01T22:20:00.000000000Z", "to": "2025-01-01T22:20:00.000000000Z"}
    ]
    assert binance["covered_pct"] == round(100 * 11 / 12, 3)
    liq = entries[("liquidation", BINANCE)]
    assert liq["present"][0]["to"] == "2025-01-01T23:02:04.999999999Z"
    assert liq["gaps"] == [
        {
            "from": "2025-01-01T23:02:05.000000000Z",
            "to": "2025-01-01T23:02:28.000000000Z",
            "reason": "liquidation stream disconnected",
        }
    ]


def test_info_shows_the_first_and_last_row_not_the_file_names(acceptance: Path) -> None:
    # The names reach further: the snapshot's 10-minute file ends at 22:59:59.999999999, the last minute
    # file at 23:03:59.999999999.
    oi_files = list_data_files(instrument_dir(acceptance, OPEN_INTEREST, BINANCE))
    assert oi_files[-1].end == at("23:00:00") - 1
    assert list_data_files(instrument_dir(acceptance, LIQUIDATION, BINANCE))[-1].end == at("23:04:00") - 1
    series = {(s.type, s.instrument_id): s for s in CatalogReader(acceptance).describe().series}
    oi = series[("open_interest", BINANCE)]
    assert (oi.first_ns, oi.last_ns, oi.rows) == (at("22:00:00"), at("22:57:31"), 12)
    liq = series[("liquidation", BINANCE)]
    assert (liq.first_ns, liq.last_ns, liq.rows, liq.files) == (at("23:01:03"), at("23:03:41.5"), 5, 3)
    result = run("catalog", "info", "--catalog", str(acceptance))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "type",
        "instrument",
        "id",
        "files",
        "rows",
        "first",
        "(UTC)",
        "last",
        "(UTC)",
        "bytes",
    ]
    row = next(line for line in lines if line.startswith("liquidation "))
    assert "2025-01-01 23:01:03  2025-01-01 23:03:41.500" in row


def test_info_names_quarantined_files(acceptance: Path) -> None:
    folder = instrument_dir(acceptance, OPEN_INTEREST, BYBIT)
    bad = folder / list_data_files(folder)[0].path.name.replace("T18", "T17")
    bad.write_bytes(b"not parquet")
    described = CatalogReader(acceptance).describe()
    assert [q.original for q in described.quarantined] == [str(bad.relative_to(acceptance))]
    bybit = next(s for s in described.series if s.instrument_id == BYBIT)
    assert bybit.rows == 6  # the bad file is not data
    text = run("catalog", "info", "--catalog", str(acceptance))
    assert text.stdout.splitlines()[-1].startswith("quarantined (not data): ")
    as_json = run("catalog", "info", "--catalog", str(acceptance), "--json")
    assert {r["instrument_id"] for r in json.loads(as_json.stdout)} == {BINANCE, BYBIT}
    assert "quarantined (not data)" in as_json.stderr


def test_open_interest_missing_points_inside_a_recorded_gap_are_gaps_not_missing(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    step = NS_PER_HOUR
    w.write([oi_row(DAY + h * step) for h in range(10) if h not in (2, 3, 4, 7)])
    w.write([gap(BINANCE, OPEN_INTEREST, DAY + 2 * step, DAY + 3 * step, "not served")])
    [c] = CatalogReader(tmp_path).coverage_report([OPEN_INTEREST])
    assert c.period == "1h"
    assert c.missing == [Range(DAY + 4 * step, DAY + 4 * step), Range(DAY + 7 * step, DAY + 7 * step)]
    assert c.present == [
        Range(DAY, DAY + step),
        Range(DAY + 5 * step, DAY + 6 * step),
        Range(DAY + 8 * step, DAY + 9 * step),
    ]
    assert c.covered_pct == pytest.approx(60.0)
    assert [g.reason for g in c.gaps] == ["not served"]


def test_snapshot_only_open_interest_is_judged_like_a_stream(tmp_path: Path) -> None:
    # Hyperliquid keeps no history: rows are live snapshots (ts_init = receipt time), no period.
    iid = "BTC-USD-PERP.HYPERLIQUID"
    w = CatalogWriter(tmp_path)
    w.write(
        [
            OpenInterest(
                exchange="hyperliquid", instrument_id=iid, ts_event=t, ts_init=t + 1, open_interest=2.0
            )
            for t in (at("10:00:00.25"), at("10:01:00.5"), at("10:11:00.25"))
        ]
    )
    w.write([gap(iid, OPEN_INTEREST, at("10:02:00"), at("10:10:00") - 1, "snapshots missed")])
    [c] = CatalogReader(tmp_path).coverage_report([OPEN_INTEREST])
    assert c.period is None
    span = at("10:11:00.25") - at("10:00:00.25") + 1
    assert c.covered_pct == pytest.approx(100 * (span - 8 * NS_PER_MINUTE) / span)


def test_funding_uses_each_settlements_interval(tmp_path: Path) -> None:
    # 8h settlements, one missing (16:00 on day 1), then the interval drops to 4h; Hyperliquid-like
    # milliseconds past the hour do not count as holes.
    h = NS_PER_HOUR
    rows = [funding_row(DAY, 480), funding_row(DAY + 8 * h + 5_000_000, 480), funding_row(DAY + 24 * h, 480)]
    rows += [funding_row(DAY + 28 * h, 240), funding_row(DAY + 32 * h, 240)]
    CatalogWriter(tmp_path).write(rows)
    [c] = CatalogReader(tmp_path).coverage_report([FUNDING_RATE])
    assert c.period == "8h/4h"
    assert c.missing == [Range(DAY + 16 * h, DAY + 16 * h)]
    assert c.present == [Range(DAY, DAY + 8 * h + 5_000_000), Range(DAY + 24 * h, DAY + 32 * h)]
    assert c.covered_pct == pytest.approx(100 * 5 / 6)


def test_a_whole_market_stream_gap_counts_for_every_instrument_of_its_venue(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([liq_row(at("01:00:00")), liq_row(at("01:10:00"))])
    w.write([gap("MARKET.BINANCE", LIQUIDATION, at("01:02:00"), at("01:03:00") - 1, "down")])
    w.write([gap("MARKET.BYBIT", LIQUIDATION, at("01:02:00"), at("01:03:00") - 1, "down")])
    report = CatalogReader(tmp_path).coverage_report([LIQUIDATION])
    assert [(c.instrument_id, len(c.gaps)) for c in report] == [(BINANCE, 1), ("MARKET.BYBIT", 1)]
    assert report[0].covered_pct == pytest.approx(100 * (1 - NS_PER_MINUTE / (10 * NS_PER_MINUTE + 1)))
    assert report[1].rows == 0
    assert report[1].covered_pct is None


def test_period_inference() -> None:
    m = NS_PER_MINUTE
    assert infer_period([]) is None
    assert infer_period([0]) is None
    assert infer_period([0, 5 * m, 10 * m, 20 * m, 25 * m]) == 5 * m  # a missing point is no 10m period
    assert infer_period([0, 60 * m, 120 * m, 125 * m]) == 60 * m
    assert infer_period([0, 7 * m]) is None  # no open-interest period
    assert [period_name(p) for p in (5 * m, 60 * m, 480 * m, 1440 * m)] == ["5m", "1h", "8h", "1d"]


def test_gaps_of_a_series_with_no_rows_are_still_shown(tmp_path: Path) -> None:
    CatalogWriter(tmp_path).write([gap(BYBIT, OPEN_INTEREST, DAY, DAY + NS_PER_HOUR, "older than served")])
    [c] = CatalogReader(tmp_path).coverage_report()
    assert (c.type, c.instrument_id, c.rows, c.covered_pct) == ("open_interest", BYBIT, 0, None)
    assert [g.reason for g in c.gaps] == ["older than served"]
