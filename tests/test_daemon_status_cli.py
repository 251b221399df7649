"""`ccxt-cli daemon status` names each stream's state as the stream's own health lines do (issue 13 item 7):
`connecting` before the first socket, `DISCONNECTED` only for an outage, with the last error's text."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from typer.testing import CliRunner

from ccxt_pipeline.cli import app
from ccxt_pipeline.daemon.control import DaemonLock, DaemonPaths
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.timeutil import now_ns


def test_status_names_connecting_disconnected_and_the_last_error(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    paths = DaemonPaths.for_catalog(catalog)
    paths.root.mkdir(parents=True)
    now = now_ns()
    outage = ExchangeHealth("binance", connected=False, ever_connected=True, events=12, reconnects=1)
    outage.record_error("connection reset by peer")
    streams = {
        "binance": asdict(outage),
        "bybit": asdict(ExchangeHealth("bybit")),
        "hyperliquid": asdict(ExchangeHealth("hyperliquid", connected=True, ever_connected=True)),
    }
    status = {
        "pid": 1,
        "catalog": str(catalog),
        "started": "2026-01-01T00:00:00Z",
        "started_ns": now,
        "updated_ns": now,
        "status_seconds": 5,
        "stale_seconds": 30,
        "jobs": {},
        "exchanges": {},
        "streams": streams,
    }
    paths.status.write_text(json.dumps(status))
    lock = DaemonLock(paths)
    lock.acquire()
    try:
        result = CliRunner().invoke(app, ["daemon", "status", "--catalog", str(catalog)])
    finally:
        lock.release()
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("  stream ")}
    assert "DISCONNECTED" in lines["binance"]
    assert "last error: connection reset by peer" in lines["binance"]
    assert " connecting," in lines["bybit"]
    assert "DISCONNECTED" not in lines["bybit"]
    assert " connected," in lines["hyperliquid"]
