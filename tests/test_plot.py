"""`ccxt-cli plot heatmap|oi|funding`: a self-contained HTML file (data inlined) or a PNG, over a catalog
that the CLI filled from the simulator (stream-liquidations, fetch-oi, fetch-funding)."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, sim_settings
from tests.test_browser import chromium_or_fail

EXCHANGES = ("binance", "bybit")


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The settings file of a catalog holding 3 s of liquidations, a day of open interest (Binance, Bybit)
    and the current one (all three), and 3 days of funding."""
    tmp = tmp_path_factory.mktemp("plot")
    with SimulatorThread(ExchangeSimulator(seed=41)) as sim:
        sim.liquidations.rate_per_s = {"binance": 30.0, "bybit": 30.0}
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(sim_settings(sim, tmp / "catalog")))
        runner = CliRunner()
        for args in (
            ["stream-liquidations", "BTCUSDT-PERP", "--duration", "3s"],
            ["fetch-oi", "BTCUSDT-PERP", "--from", "1d"],  # Hyperliquid serves no OI history: a gap
            ["fetch-oi", "BTCUSDT-PERP"],  # the current snapshot, Hyperliquid's too
            ["fetch-funding", "BTCUSDT-PERP", "--from", "3d"],
        ):
            result = runner.invoke(app, [*args, "--config", str(config)])
            assert result.exit_code == 0, result.output
        yield config


def plot(config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["plot", *args, "--config", str(config)])


def inlined(html: str) -> dict[str, Any]:
    match = re.search(r"<script>window\.CCXT_PLOT = (.*?);</script>", html)
    assert match, "no inlined data"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_heatmap_html_is_self_contained_and_sums_the_stored_events(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "heatmap.html"
    result = plot(filled, "heatmap", "BTCUSDT-PERP", "--from", "1h", "--out", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text()
    # Offline: no script, style or image is fetched from anywhere (the only URL is the SVG namespace).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<script src" not in html
    assert "<link" not in html
    assert "function drawHeatmap" in html  # the page's own drawing code, inlined
    payload = inlined(html)
    data = payload["data"]
    assert payload["kind"] == "heatmap"
    assert data["cells"]
    table = CatalogReader(filled.parent / "catalog").query(LIQUIDATION)
    stored: dict[tuple[str, str], float] = {}
    for row in table.select(["exchange", "side", "notional"]).to_pylist():
        key = (row["exchange"], row["side"].lower())
        stored[key] = stored.get(key, 0.0) + row["notional"]
    for exchange in EXCHANGES:
        for side in ("long", "short"):
            in_cells = sum(c["by_exchange"].get(exchange, {}).get(side, 0.0) for c in data["cells"])
            assert in_cells == pytest.approx(stored.get((exchange, side), 0.0), rel=1e-9)
            assert data["totals"][exchange][side] == pytest.approx(
                stored.get((exchange, side), 0.0), rel=1e-9
            )


def test_exchange_option_limits_the_heatmap(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "bybit.html"
    result = plot(filled, "heatmap", "BTCUSDT-PERP", "-e", "bybit", "--bucket", "1m", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = inlined(out.read_text())["data"]
    assert data["bucket_ns"] == 60 * 10**9
    assert data["cells"]
    assert {ex for c in data["cells"] for ex in c["by_exchange"]} == {"bybit"}


def test_open_interest_html_has_one_series_per_exchange(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "oi.html"
    result = plot(filled, "oi", "BTCUSDT-PERP", "--from", "1d", "--out", str(out))
    assert result.exit_code == 0, result.output
    series = inlined(out.read_text())["data"]["series"]
    reader = CatalogReader(filled.parent / "catalog")
    for exchange in ("binance", "bybit", "hyperliquid"):
        stored = reader.query(OPEN_INTEREST, exchanges=[exchange])
        assert 0 < len(series[exchange]) <= stored.num_rows
        assert series[exchange][-1]["value"] == stored.column("open_interest")[-1].as_py()


def test_funding_html(filled: Path, tmp_path: Path) -> None:
    out = tmp_path / "funding.html"
    result = plot(filled, "funding", "BTCUSDT-PERP", "--from", "3d", "--out", str(out))
    assert result.exit_code == 0, result.output
    series = inlined(out.read_text())["data"]["series"]
    assert all(series[ex] for ex in ("binance", "bybit", "hyperliquid"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["heatmap", "BTCUSDT-PERP", "--out", "x.txt"],
            "--out: the output file x.txt must end in .html or .png",
        ),
        (["heatmap", "BTCUSDT-PERP", "--from", "yesterday", "--out", "x.html"], "--from: "),
        (["heatmap", "BTCUSDT-PERP", "--bucket", "5 parsecs", "--out", "x.html"], "--bucket: "),
        (["heatmap", "BTCUSDT-PERP", "-e", "kraken", "--out", "x.html"], "kraken"),
        (["oi", "BTCUSDT-PERP", "--out", "missing/dir/x.html"], "does not exist"),
        (["heatmap", "BTCUSDT-PERP", "--from", "1h", "--to", "2h", "--out", "x.html"], "--to: "),
    ],
)
def test_bad_input_is_one_line_and_exit_2(filled: Path, args: list[str], message: str) -> None:
    result = plot(filled, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.output


def test_png_without_chromium_says_so(filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLOT_CHROMIUM", "no-such-browser")
    out = tmp_path / "x.png"
    result = plot(filled, "heatmap", "BTCUSDT-PERP", "--out", str(out))
    assert result.exit_code == 3
    assert "Chromium" in result.stderr
    assert ".html" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not out.exists()


@pytest.mark.browser
def test_png_is_drawn_by_headless_chromium(filled: Path, tmp_path: Path) -> None:
    chromium_or_fail()
    out = tmp_path / "heatmap.png"
    result = plot(filled, "heatmap", "BTCUSDT-PERP", "--from", "1h", "--out", str(out))
    assert result.exit_code == 0, result.output
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width >= 1000
    assert height >= 380
    assert len(png) > 10_000  # drawn cells and axes, not a blank page
