"""Simulator -> fetch-oi, fetch-funding, stream-liquidations -> catalog -> NautilusTrader BacktestNode.

The strategy in examples/backtest_derivatives_data.py must receive exactly what the catalog stores, per type
and instrument, in ts_init order, with the instruments loaded from the catalog's own definitions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccxt_pipeline.catalog import FUNDING_ESTIMATE, FUNDING_RATE, LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread
from tests.test_stream_cli import write_config

pytest.importorskip("nautilus_trader")
pytestmark = pytest.mark.nautilus

ROOT = Path(__file__).resolve().parent.parent
NAMES = {
    OPEN_INTEREST: "OpenInterest",
    LIQUIDATION: "Liquidation",
    FUNDING_ESTIMATE: "FundingRateEstimate",
    FUNDING_RATE: "FundingRateUpdate",
}


def test_cli_catalog_replays_in_a_backtest_node(tmp_path: Path) -> None:
    runner = CliRunner()
    with SimulatorThread(ExchangeSimulator(seed=31)) as sim:
        config = write_config(sim, tmp_path)

        def cli(*args: str) -> None:
            result = runner.invoke(app, [*args, "--config", str(config)], catch_exceptions=False)
            assert result.exit_code == 0, result.stderr

        cli("fetch-oi", "BTCUSDT-PERP", "--from", "2d")
        cli("fetch-oi", "BTCUSDT-PERP")
        cli("fetch-funding", "BTCUSDT-PERP", "--from", "5d")
        cli("fetch-funding", "BTCUSDT-PERP")
        sim.liquidations.rate_per_s = {"binance": 20.0, "bybit": 20.0}
        cli("stream-liquidations", "BTCUSDT-PERP", "--duration", "3s")
    catalog = tmp_path / "catalog"
    reader = CatalogReader(catalog)
    expected = {}
    for kind, name in NAMES.items():
        for iid in reader.instruments(kind):
            expected[f"{name} {iid}"] = reader.query(kind, [iid]).num_rows
    assert expected["Liquidation BTCUSDT-LINEAR.BYBIT"] > 10
    assert expected["FundingRateUpdate BTC-USD-PERP.HYPERLIQUID"] >= 5 * 24
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "backtest_derivatives_data.py"),
            str(catalog),
            "--report",
            str(report),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(report.read_text())
    assert got["counts"] == expected
    assert got["out_of_order"] == 0
