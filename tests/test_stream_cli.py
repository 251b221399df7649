"""`ccxt-cli stream-liquidations` as a user runs it: output, Ctrl-C/SIGTERM, and SIGKILL durability."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, run_cli, sim_settings, wait_for
from tests.test_stream import expected_row, stored_rows

ROOT = Path(__file__).resolve().parent.parent


def write_config(sim: ExchangeSimulator, tmp: Path, **stream: float) -> Path:
    path = tmp / "config.yaml"
    settings = sim_settings(sim, tmp / "catalog", stream={"health_seconds": 1.0, **stream})
    path.write_text(yaml.safe_dump(settings))
    return path


def test_events_health_lines_and_summary(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=7)) as sim:
        sim.liquidations.rate_per_s = {"binance": 20.0, "bybit": 20.0}
        config = write_config(sim, tmp_path)
        result = run_cli(config, "stream-liquidations", "BTCUSDT-PERP", "--duration", "2.5s")
        sent = list(sim.liquidations.sent)
    assert result.exit_code == 0, result.stderr
    assert "hyperliquid offers no public market-wide liquidation stream" in result.stderr  # a note, not fatal
    event_lines = [line for line in result.stdout.splitlines() if "notional" in line]
    assert len(event_lines) == len(sent) > 10
    assert any(
        "BTCUSDT-LINEAR.BYBIT" in line and (" LONG " in line or " SHORT " in line) for line in event_lines
    )
    assert "health  binance: connected" in result.stderr
    assert "stopped after" in result.stderr
    assert sorted(stored_rows(tmp_path / "catalog")) == sorted(expected_row(e) for e in sent)


def test_json_lines(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=8)) as sim:
        sim.liquidations.rate_per_s = {"binance": 20.0}
        config = write_config(sim, tmp_path)
        result = run_cli(
            config,
            "stream-liquidations",
            "-e",
            "binance",
            "--all",
            "--duration",
            "1.5s",
            "--no-store",
            "--json",
        )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    events, summary = lines[:-1], lines[-1]["summary"]
    assert events
    assert set(LIQUIDATION.schema.names) <= set(events[0])  # every stored column, in each event
    assert summary["rows_written"] == 0  # --no-store
    assert not (tmp_path / "catalog").exists()


def start_cli(config: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccxt_pipeline", "stream-liquidations", *args, "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sigterm_flushes_every_event_received(tmp_path: Path) -> None:
    thread = SimulatorThread(ExchangeSimulator(seed=9))
    with thread as sim:
        config = write_config(sim, tmp_path, flush_seconds=5.0)  # a long interval: only the stop flushes
        proc = start_cli(config, "BTCUSDT-PERP", "ETHUSDT-PERP", "-e", "binance", "-e", "bybit")
        try:
            for ex in ("binance", "bybit"):
                for sym in ("BTCUSDT", "ETHUSDT"):
                    thread.run(sim.liquidations.wait_subscribed(ex, sym, max_wait_s=20))
            for _ in range(5):
                thread.run(sim.liquidations.burst("bybit", "BTCUSDT", 50, within_ms=10, batch=True))
                thread.run(sim.liquidations.burst("binance", "ETHUSDT", 50, within_ms=10))
            time.sleep(0.5)  # delivered on loopback; now stop the collector
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=20)
        finally:
            proc.kill()
        sent = list(sim.liquidations.sent)
    assert proc.returncode == 0, stderr.decode()
    assert b"stopped after" in stderr
    assert len(sent) == 500
    assert sorted(stored_rows(tmp_path / "catalog")) == sorted(expected_row(e) for e in sent)


@pytest.mark.slow
def last_flush(catalog: Path) -> float:
    """When the stream last committed liquidation rows (each flush adds a file or replaces one by a rename), by
    the files' own times; 0 before the first."""
    folder = catalog / "data" / LIQUIDATION.type_dir
    return (
        max((f.stat().st_mtime for f in folder.rglob("*.parquet")), default=0.0) if folder.exists() else 0.0
    )


def wait_for_two_flushes(catalog: Path) -> None:
    first = wait_for(lambda: last_flush(catalog), "a first flush")
    wait_for(lambda: last_flush(catalog) > first, "a second flush")


def test_sigkill_loses_at_most_the_flush_interval(tmp_path: Path) -> None:
    """A SIGKILL loses only the rows received since the last flush: per exchange, what is missing is a tail of
    what was sent (no hole before it), and the last flush was no more than one interval before the kill.

    Both are judged from the catalog itself (file times are the writer's own clock), not from when the test
    believes events arrived, so a busy machine that delivers late does not fail the test."""
    flush = 0.5
    slack = 1.0  # the flush timer itself, on a busy machine
    rng = random.Random(11)
    report = []
    for trial in range(10):
        folder = tmp_path / f"t{trial}"
        folder.mkdir()
        catalog = folder / "catalog"
        thread = SimulatorThread(ExchangeSimulator(seed=100 + trial))
        with thread as sim:
            config = write_config(sim, folder, flush_seconds=flush)
            proc = start_cli(config, "BTCUSDT-PERP", "-e", "binance", "-e", "bybit")
            try:
                for ex in ("binance", "bybit"):
                    thread.run(sim.liquidations.wait_subscribed(ex, "BTCUSDT", max_wait_s=20))
                sim.liquidations.rate_per_s = {"binance": 200.0, "bybit": 200.0}
                wait_for_two_flushes(catalog)
                time.sleep(rng.uniform(0.0, 2 * flush))  # kill at any point of the flush cycle
                proc.send_signal(signal.SIGKILL)
                killed = time.time()
                proc.wait(timeout=10)
            finally:
                proc.kill()
                proc.stderr.close()  # type: ignore[union-attr]
                sim.liquidations.rate_per_s = {}
            sent = list(sim.liquidations.sent)
        # The catalog as the kill left it: pyarrow reads the folder, no duplicates.
        table = ds.dataset(catalog / "data" / LIQUIDATION.type_dir, format="parquet").to_table()
        assert sort_unique(LIQUIDATION, table).num_rows == table.num_rows
        since_flush = killed - last_flush(catalog)
        assert since_flush <= flush + slack, (
            f"trial {trial}: the last flush was {since_flush:.2f}s before the kill"
        )
        stored = set(stored_rows(catalog))
        for ex in ("binance", "bybit"):
            kept = [expected_row(e) in stored for e in sent if e.exchange == ex]
            tail = kept.index(False) if False in kept else len(kept)  # the first row lost
            assert not any(kept[tail:]), f"trial {trial}: {ex} lost rows before its tail"
        lost = [e for e in sent if expected_row(e) not in stored]
        report.append((len(sent), len(lost), round(since_flush, 2)))
        CatalogWriter(catalog)  # the next open repairs leftovers
        assert CatalogReader(catalog).query(LIQUIDATION).num_rows == len(stored)
    print("SIGKILL trials (sent, lost, last flush s before kill):", report)
