"""A catalog writer that fails while streams run: seen at once, told in health, nothing stored lost.

The real ccxt.pro streams from the simulator. The fault is an unexpected error (not a full disk, which
the writer rides out: tests/test_batching_writer.py) raised where the catalog writes files
(`pyarrow.parquet.write_table` as `ccxt_pipeline.catalog.files` calls it), so our writer code runs as is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.stream.run import LiquidationStream, StreamRequest
from tests.conftest import SimulatorThread, sim_settings, until
from tests.test_stream import expected_row, stored_rows, stream_settings


class Breakable:
    """`pq.write_table` that raises RuntimeError while `broken`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, broken: bool = False) -> None:
        import pyarrow.parquet as pq  # what ccxt_pipeline.catalog.files writes with

        self.broken = broken
        real: Callable[..., Any] = pq.write_table

        def write_table(*args: Any, **kwargs: Any) -> None:
            if self.broken:
                raise RuntimeError("injected: the writer broke")
            real(*args, **kwargs)

        monkeypatch.setattr("ccxt_pipeline.catalog.files.pq.write_table", write_table)


async def test_a_failing_writer_stops_the_run_at_once_is_told_in_health_and_loses_nothing_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog"
    disk = Breakable(monkeypatch)
    async with ExchangeSimulator(seed=41) as sim:
        feed = sim.liquidations
        stream = LiquidationStream(
            stream_settings(sim, catalog), StreamRequest(["BTCUSDT-PERP"], ["binance", "bybit"])
        )
        stop = asyncio.Event()  # never set unless the run hangs: the failure alone must end it
        run = asyncio.create_task(stream.run(stop))
        try:
            for ex in ("binance", "bybit"):
                await feed.wait_subscribed(ex, "BTCUSDT")
            await feed.burst("binance", "BTCUSDT", 20, within_ms=10)
            await until(lambda: stream.batcher.rows_written == 20)
            first = list(feed.sent)
            disk.broken = True
            await feed.burst("binance", "BTCUSDT", 5, within_ms=10)
            done, _ = await asyncio.wait([run], timeout=60)
            assert run in done, "the run did not end after its writer failed"
        finally:
            stop.set()
            summary = await run
    assert (summary.failure or "").startswith("the catalog writer failed: RuntimeError: injected")
    for name in ("binance", "bybit"):
        health = summary.health[name]
        assert "the catalog writer failed: RuntimeError" in (health.last_error or ""), name
        assert health.errors >= 1
        assert health.state == "stopped"
    # Nothing already stored is lost; what came after is counted, not silently dropped.
    assert sorted(stored_rows(catalog)) == sorted(expected_row(e) for e in first)
    assert summary.rows_written == 20
    assert summary.unsaved_events == summary.health["binance"].events - 20 > 0


def test_cli_exits_with_one_line_when_the_writer_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Breakable(monkeypatch, broken=True)
    with SimulatorThread(ExchangeSimulator(seed=42)) as sim:
        sim.liquidations.rate_per_s = {"binance": 20.0}
        config = tmp_path / "config.yaml"
        settings = sim_settings(
            sim, tmp_path / "catalog", stream={"health_seconds": 0.5, "flush_seconds": 0.2}
        )
        config.write_text(yaml.safe_dump(settings))
        # An hour: only the writer's failure ends this run.
        args = [
            "stream-liquidations",
            "BTCUSDT-PERP",
            "-e",
            "binance",
            "--duration",
            "1h",
            "--config",
            str(config),
        ]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.stderr  # nothing stored
    output = result.output + result.stderr
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: the catalog writer failed: RuntimeError: injected: the writer broke")
    assert "  binance: stopped," in result.stderr
