"""The daemon against the simulator: scheduled jobs, streams, status, stop, outage, the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxt_pipeline.catalog import (
    COVERAGE_GAP,
    FUNDING_ESTIMATE,
    FUNDING_RATE,
    OPEN_INTEREST,
    CatalogReader,
)
from ccxt_pipeline.daemon.control import DaemonPaths, assess, is_locked, read_status
from ccxt_pipeline.daemon.service import aligned_start
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_SECOND, now_ns
from tests.catalog_checks import as_records
from tests.conftest import SimulatorThread, sim_settings
from tests.test_stream import expected_row, stored_rows

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccxt_pipeline", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def daemon_config(sim: ExchangeSimulator, tmp: Path, oi_seconds: int = 3, **extra: Any) -> Path:
    data = sim_settings(
        sim,
        tmp / "catalog",
        schedule={"open_interest_seconds": oi_seconds, "funding_seconds": 4},
        daemon={"status_seconds": 1, "open_interest_backfill_days": 1, "funding_backfill_days": 3},
        stream={"flush_seconds": 0.5, "stale_seconds": 3, "reconnect_max_seconds": 1},
        symbols=["BTCUSDT-PERP"],
        **extra,
    )
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as log_fh:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline", "daemon", "start", "--config", str(config)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=log_fh,
        )
    paths = DaemonPaths.for_catalog(config.parent / "catalog")
    deadline = time.monotonic() + 20
    while not (is_locked(paths) and read_status(paths)):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.1)
    return proc


def test_aligned_start_is_on_the_wall_clock_grid() -> None:
    assert aligned_start(300, now=1_735_689_700.0).timestamp() == 1_735_689_900  # 00:05:00 after 00:01:40
    assert aligned_start(5, now=12.0).timestamp() == 15


def test_status_verdicts() -> None:
    now = now_ns()
    base = {
        "updated_ns": now,
        "status_seconds": 1,
        "started_ns": now - 100 * NS_PER_SECOND,
        "stale_seconds": 5,
    }
    job_ok = {"interval_s": 3, "runs": 5, "last_success_ns": now, "last_error_ns": None}
    assert assess({**base, "jobs": {"oi": job_ok}}, running=True, now=now)[0] == "healthy"
    failed = {**job_ok, "last_error_ns": now + 1, "last_error": "boom"}
    assert assess({**base, "jobs": {"oi": failed}}, running=True, now=now) == (
        "unhealthy",
        ["job oi failed: boom"],
    )
    stale = {**base, "updated_ns": now - 60 * NS_PER_SECOND, "jobs": {}}
    assert assess(stale, running=True, now=now)[0] == "unhealthy"
    down_stream = {**base, "jobs": {}, "streams": {"bybit": {"connected": False, "last_error": "x"}}}
    assert assess(down_stream, running=True, now=now)[0] == "unhealthy"
    assert assess(None, running=False, now=now)[0] == "down"


def test_bad_config_stops_start_up_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("schedule:\n  open_interest_secnds: 5\n")
    result = cli("daemon", "start", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown key 'schedule.open_interest_secnds'" in result.stderr


def test_stop_without_a_daemon_says_so(tmp_path: Path) -> None:
    result = cli("daemon", "stop", "--catalog", str(tmp_path / "catalog"))
    assert result.returncode != 0
    assert "no daemon is running" in result.stderr
    status = cli("daemon", "status", "--catalog", str(tmp_path / "catalog"))
    assert status.returncode == 3
    assert "down" in status.stdout


def collect_and_check(
    tmp_path: Path, run_seconds: float, outage: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Run the daemon for `run_seconds` (optionally taking the simulator down for a while), stop it, and
    check what the catalog holds. Returns figures for the caller."""
    thread = SimulatorThread(ExchangeSimulator(seed=21))
    with thread as sim:
        sim.liquidations.rate_per_s = {"binance": 10.0, "bybit": 10.0}
        config = daemon_config(sim, tmp_path)
        proc = start_daemon(config, tmp_path / "daemon.log")
        paths = DaemonPaths.for_catalog(tmp_path / "catalog")
        started = time.monotonic()
        saw_outage = False
        try:
            while (elapsed := time.monotonic() - started) < run_seconds:
                if outage and outage[0] <= elapsed < outage[1]:
                    if not sim.down:  # the whole exchange goes away: REST refused, open sockets cut
                        sim.down = True
                        for ex in ("binance", "bybit"):
                            sim.liquidations.drop_connections(ex)
                    live_status = read_status(paths) or {}
                    streams = live_status.get("streams", {})
                    saw_outage |= any(not s["connected"] for s in streams.values())
                else:
                    sim.down = False
                time.sleep(0.25)
            sim.liquidations.rate_per_s = {}
            time.sleep(1.0)  # let the last events arrive
            status = cli("daemon", "status", "--config", str(config))
            json_status = read_status(paths)
            stop = cli("daemon", "stop", "--config", str(config))
            proc.wait(timeout=15)
        finally:
            proc.kill()
        sent = list(sim.liquidations.sent)
    log = (tmp_path / "daemon.log").read_text()
    assert status.returncode == 0, status.stdout + status.stderr + log[-3000:]
    assert stop.returncode == 0, stop.stderr
    assert "stopped cleanly" in stop.stdout
    catalog = tmp_path / "catalog"
    reader = CatalogReader(catalog)
    # Liquidations: every event the sockets delivered is on disk, once.
    assert sorted(stored_rows(catalog)) == sorted(expected_row(e) for e in sent)
    # Open-interest snapshots on the wall-clock grid: one per tick per exchange, each taken just after it.
    hl = reader.query_records(OPEN_INTEREST, ["BTC-USD-PERP.HYPERLIQUID"])
    offsets = [(r.ts_init % (3 * NS_PER_SECOND)) / NS_PER_SECOND for r in hl]
    assert (
        len(hl) >= run_seconds / 3 - 3 - (outage[1] - outage[0]) / 3
        if outage
        else len(hl) >= run_seconds / 3 - 2
    )
    assert max(offsets) < 1.5, offsets  # taken within 1.5 s after each :00/:03/:06... tick
    # Funding history and live estimates, stored apart.
    assert reader.query(FUNDING_RATE, ["BTCUSDT-PERP.BINANCE"]).num_rows >= 3 * 3
    assert reader.query(FUNDING_ESTIMATE).num_rows >= 3
    return {
        "status": json_status,
        "stop": stop.stdout.strip(),
        "saw_outage": saw_outage,
        "sent": len(sent),
        "hl_snapshots": len(hl),
        "log": log,
    }


def test_daemon_collects_reports_healthy_and_stops_cleanly(tmp_path: Path) -> None:
    figures = collect_and_check(tmp_path, run_seconds=12)
    jobs = figures["status"]["jobs"]
    assert jobs["open_interest"]["runs"] >= 3
    assert jobs["funding"]["runs"] >= 2
    assert figures["status"]["streams"]["binance"]["connected"]
    assert figures["status"]["arrow_pool"] == "system"  # daemon/memory.py: Arrow on the C library's malloc


@pytest.mark.slow
def test_daemon_acceptance_60s_with_a_20s_outage(tmp_path: Path) -> None:
    figures = collect_and_check(tmp_path, run_seconds=60, outage=(20, 40))
    status = figures["status"]
    assert figures["saw_outage"]  # status showed the streams down during the outage
    gaps = as_records(CoverageGap, CatalogReader(tmp_path / "catalog").query_records(COVERAGE_GAP))
    assert any(g.data_type == "liquidation" for g in gaps)  # the stream outage is recorded
    assert any(
        g.data_type == "open_interest" and g.exchange == "hyperliquid" for g in gaps
    )  # missed snapshots
    for name in ("binance", "bybit", "hyperliquid"):
        assert status["exchanges"][name]["last_error"]  # the outage shows per exchange
    # History the exchanges still serve is complete: no 5-minute point missing after the outage.
    reader = CatalogReader(tmp_path / "catalog")
    for iid in ("BTCUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT"):
        ts = [
            t
            for t in reader.query(OPEN_INTEREST, [iid]).column("ts_init").to_pylist()
            if t % (300 * NS_PER_SECOND) == 0
        ]
        assert ts == list(range(ts[0], ts[-1] + 1, 300 * NS_PER_SECOND))
    print(
        f"daemon 60 s with a 20 s outage: {figures['sent']} liquidations delivered and stored, "
        f"{figures['hl_snapshots']} Hyperliquid snapshots, {len(gaps)} gap rows, stop: {figures['stop']}"
    )


def test_detach_runs_in_the_background_with_a_log_file(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=22)) as sim:
        config = daemon_config(sim, tmp_path, logging={"level": "INFO", "format": "json"})
        started = cli("daemon", "start", "--detach", "--config", str(config))
        try:
            assert started.returncode == 0, started.stderr
            assert "started in the background" in started.stdout
            time.sleep(4)
            status = cli("daemon", "status", "--config", str(config), "--json")
            assert status.returncode == 0, status.stdout
        finally:
            stopped = cli("daemon", "stop", "--config", str(config))
    assert stopped.returncode == 0
    log_lines = (tmp_path / "catalog" / ".daemon" / "daemon.log").read_text().splitlines()
    assert any('"message": "daemon started' in line for line in log_lines)  # JSON lines, as configured
