"""The README's offline section, for real: `python -m ccxt_pipeline.simulator` with liquidations and bursts,
its printed config pasted as is (ccxt's rate limiter left on), `stream-liquidations`, the daemon's job log
lines, and the backtest example on a catalog that holds liquidations and open interest for SOL but no funding.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from typer.testing import CliRunner

from ccxt_pipeline.catalog import FUNDING_RATE, LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.cli import app
from ccxt_pipeline.daemon.control import DaemonPaths, read_status
from ccxt_pipeline.simulator.__main__ import main as simulator_main

ROOT = Path(__file__).resolve().parent.parent
ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("CCXT_")}, "PYTHONPATH": str(ROOT)}


def test_bad_simulator_flags_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, line in [
        (["--burst-size", "3"], "error: --burst-size needs --burst-every"),
        (
            ["--liquidations-per-second", "0"],
            "error: argument --liquidations-per-second: must be more than 0, got 0",
        ),
        (["--burst-every", "x"], "error: argument --burst-every: not a number: 'x'"),
    ]:
        with pytest.raises(SystemExit) as info:
            simulator_main(argv)
        assert info.value.code == 2
        captured = capsys.readouterr()
        assert captured.err.splitlines() == [line]


class Simulator:
    """`python -m ccxt_pipeline.simulator ARGS` in a subprocess; `config` is the block it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline.simulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=ENV,
            # Unbuffered: a buffered reader would take several lines from the pipe at once, and `select`
            # would then wait on a pipe that is empty while the lines sit in the reader's buffer.
            bufsize=0,
        )
        try:
            self.printed = self._read_config()
        except BaseException:
            self.close()
            raise
        # What the README's `sed -n '/^exchanges:/,$p'` keeps: the config block.
        self.config: dict[str, Any] = yaml.safe_load(
            "\n".join(self.printed[self.printed.index("exchanges:") :])
        )

    def _read_config(self) -> list[str]:
        assert self.proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not lines or lines[-1] != "# end of config":
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "the simulator printed no config within 60s: " + "\n".join(lines)
            line = self.proc.stdout.readline()
            assert line, "the simulator exited: " + "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
        return lines

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    sim = Simulator(
        "--seed", "3", "--liquidations-per-second", "20", "--burst-every", "0.5", "--burst-size", "7"
    )
    try:
        yield sim
    finally:
        sim.close()


def user_config(sim: Simulator, tmp: Path, **extra: Any) -> Path:
    """The printed block as a user pastes it, plus a catalog and short schedules for the daemon."""
    data = {**sim.config, "catalog_path": str(tmp / "catalog"), "symbols": ["SOLUSDT-PERP"], **extra}
    path = tmp / "ccxt_pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_printed_config_leaves_the_rate_limiter_on(simulator: Simulator) -> None:
    assert (
        simulator.printed[1] == "# liquidations (binance, bybit): 20/s per exchange; bursts of 7 every 0.5s"
    )
    assert set(simulator.config["exchanges"]) == {"binance", "bybit", "hyperliquid"}
    for section in simulator.config["exchanges"].values():
        assert "enableRateLimit" not in section["ccxt"]  # ccxt's default (on) stays


@pytest.mark.slow
def test_stream_liquidations_then_the_example_without_funding(simulator: Simulator, tmp_path: Path) -> None:
    config = user_config(simulator, tmp_path)
    runner = CliRunner()
    streamed = runner.invoke(
        app, ["stream-liquidations", "SOLUSDT-PERP", "--duration", "3s", "--config", str(config)]
    )
    assert streamed.exit_code == 0, streamed.stderr
    events = [line for line in streamed.stdout.splitlines() if "notional" in line]
    assert len(events) > 7  # random events and at least one burst of 7
    assert {"SOLUSDT-PERP.BINANCE", "SOLUSDT-LINEAR.BYBIT"} <= {line.split()[2] for line in events}
    fetched = runner.invoke(app, ["fetch-oi", "SOLUSDT-PERP", "-e", "binance", "--config", str(config)])
    assert fetched.exit_code == 0, fetched.stderr  # the instrument's definition and its open interest
    catalog = tmp_path / "catalog"
    reader = CatalogReader(catalog)
    assert reader.instruments(FUNDING_RATE) == []
    liquidations = reader.query(LIQUIDATION, ["SOLUSDT-PERP.BINANCE"]).num_rows
    assert liquidations > 0
    report = tmp_path / "report.json"
    example = [str(ROOT / "examples" / "backtest_derivatives_data.py"), str(catalog), "--report", str(report)]
    proc = subprocess.run(
        [sys.executable, *example],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    counts = json.loads(report.read_text())["counts"]
    assert counts["Liquidation SOLUSDT-PERP.BINANCE"] == liquidations
    assert counts["OpenInterest SOLUSDT-PERP.BINANCE"] == reader.query(OPEN_INTEREST).num_rows


@pytest.mark.slow
def test_daemon_logs_what_each_job_did(simulator: Simulator, tmp_path: Path) -> None:
    config = user_config(
        simulator,
        tmp_path,
        schedule={"open_interest_seconds": 2, "funding_seconds": 3600},
        daemon={"status_seconds": 0.5, "open_interest_backfill_days": 0.01, "funding_backfill_days": 1},
        logging={"level": "INFO"},
    )
    cli = [sys.executable, "-m", "ccxt_pipeline", "daemon"]
    started = subprocess.run([*cli, "start", "--detach", "--config", str(config)], env=ENV, timeout=120)
    assert started.returncode == 0
    paths = DaemonPaths.for_catalog(tmp_path / "catalog")
    try:
        deadline = time.monotonic() + 90
        while True:  # until both jobs have run once and liquidations arrived
            status = read_status(paths) or {}
            jobs = status.get("jobs", {})
            if all(jobs.get(j, {}).get("runs", 0) >= 1 for j in ("open_interest", "funding")) and (
                status.get("liquidations_written", 0) > 0
            ):
                break
            assert time.monotonic() < deadline, f"the daemon did not run its jobs: {status}"
            time.sleep(0.2)
    finally:
        stopped = subprocess.run(
            [*cli, "stop", "--config", str(config), "--timeout", "30"], env=ENV, timeout=120
        )
    assert stopped.returncode == 0
    log = paths.log.read_text()
    for line in [
        "funding (settled) binance: ",
        "funding (estimate) hyperliquid: ",
        "open interest (current) bybit: ",
        "job funding done in ",
        "job open_interest done in ",
        "liquidations: ",
    ]:
        assert line in log, f"{line!r} not in the daemon's log:\n{log[-3000:]}"
    assert re.search(
        r"INFO .*funding \(settled\) binance: \d+ rows written, \d+ already stored, \d+ gaps", log
    )
