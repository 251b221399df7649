"""catalog info / coverage / verify / compact and query, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, OPEN_INTEREST, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.layout import file_name, instrument_dir
from ccxt_pipeline.catalog.schema import to_table
from ccxt_pipeline.cli import app
from ccxt_pipeline.models import CoverageGap
from tests.strategies import liq, oi


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    w = CatalogWriter(root)
    w.write([oi(i) for i in range(30) if i not in (10, 11)])
    w.write([oi(i, iid="BTCUSDT-LINEAR.BYBIT", exchange="bybit") for i in range(30)])
    w.write([liq(i, side="LONG" if i % 2 else "SHORT") for i in range(25)])
    w.write(
        [
            CoverageGap.between(
                LIQUIDATION,
                "binance",
                "BTCUSDT-PERP.BINANCE",
                liq(30).ts_init,
                liq(40).ts_init,
                "liquidation stream disconnected",
            )
        ]
    )
    return root


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_info_lists_types_instruments_rows(catalog: Path) -> None:
    result = run("catalog", "info", "--catalog", str(catalog), "--json")
    assert result.exit_code == 0
    rows = {(r["type"], r["instrument_id"]): r["rows"] for r in json.loads(result.stdout)}
    assert rows[("open_interest", "BTCUSDT-PERP.BINANCE")] == 28
    assert rows[("open_interest", "BTCUSDT-LINEAR.BYBIT")] == 30
    assert rows[("liquidation", "BTCUSDT-PERP.BINANCE")] == 25


def test_coverage_shows_missing_points_and_recorded_gaps(catalog: Path) -> None:
    result = run("catalog", "coverage", "--catalog", str(catalog), "--json")
    entries = {(e["type"], e["instrument_id"]): e for e in json.loads(result.stdout)}
    binance = entries[("open_interest", "BTCUSDT-PERP.BINANCE")]
    assert len(binance["missing"]) == 1
    assert binance["missing"][0]["from"].startswith("2025-01-01T00:50:00")
    assert entries[("open_interest", "BTCUSDT-LINEAR.BYBIT")]["missing"] == []
    assert (
        entries[("liquidation", "BTCUSDT-PERP.BINANCE")]["gaps"][0]["reason"]
        == "liquidation stream disconnected"
    )


def test_verify_exit_codes_and_repair_counts(catalog: Path) -> None:
    assert run("catalog", "verify", "--catalog", str(catalog)).exit_code == 0
    folder = instrument_dir(catalog, OPEN_INTEREST, "BTCUSDT-PERP.BINANCE")
    pq.write_table(
        to_table(OPEN_INTEREST, [oi(i) for i in range(5, 12)]),
        folder / file_name(oi(5).ts_init, oi(11).ts_init),
    )
    bad = run("catalog", "verify", "--catalog", str(catalog), "--json")
    assert bad.exit_code == 1
    assert {p["kind"] for p in json.loads(bad.stdout)["problems"]} == {"overlap"}
    fixed = run("catalog", "verify", "--catalog", str(catalog), "--repair", "--json")
    assert fixed.exit_code == 0
    report = json.loads(fixed.stdout)
    assert (report["rows_before"], report["rows_after"]) == (28 + 30 + 25 + 1 + 7, 28 + 2 + 30 + 25 + 1)
    assert CatalogReader(catalog).query(OPEN_INTEREST, ["BTCUSDT-PERP.BINANCE"]).num_rows == 30


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_query_output_matches_the_catalog_exactly(catalog: Path, tmp_path: Path, fmt: str) -> None:
    expected = CatalogReader(catalog).query(OPEN_INTEREST, ["BTCUSDT-PERP.BINANCE"], start=oi(3).ts_init)
    out = tmp_path / f"q.{fmt}"
    result = run(
        "query",
        "oi",
        "BTCUSDT-PERP",
        "-e",
        "binance",
        "--from",
        "2025-01-01T00:15:00Z",
        "--format",
        fmt,
        "-o",
        str(out),
        "--catalog",
        str(catalog),
    )
    assert result.exit_code == 0, result.stderr
    if fmt == "csv":
        got = pacsv.read_csv(out).to_pylist()
    elif fmt == "json":
        got = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        got = pq.read_table(out).to_pylist()
    assert got == expected.to_pylist()


def test_query_limit_and_stdout(catalog: Path) -> None:
    result = run(
        "query",
        "liquidations",
        "BTCUSDT-PERP.BINANCE",
        "--format",
        "json",
        "--limit",
        "3",
        "--catalog",
        str(catalog),
    )
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ts_init"] for r in rows] == [liq(i).ts_init for i in range(3)]
    assert rows[1]["side"] == "LONG"


def test_compact_cli(catalog: Path) -> None:
    result = run("catalog", "compact", "--catalog", str(catalog), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["days_written"] >= 1
    assert CatalogReader(catalog).query(LIQUIDATION).num_rows == 25
    assert CatalogReader(catalog).query(COVERAGE_GAP).num_rows == 1
