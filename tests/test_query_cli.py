"""`ccxt-cli query` for people and for programs: the table shows ISO UTC times, each instrument's own price and
size precision (from the instrument definitions the real fetch wrote from the simulator's exchange answers)
and ids in full; `--json` prints the stored rows; parquet never goes to a terminal.

Terminal behaviour is checked under a pseudo-terminal (`pty_run`), with the real `ccxt-cli` process.
"""

from __future__ import annotations

import json
import math
import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogReader, CatalogWriter
from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread
from tests.strategies import T0, liq
from tests.test_stream_cli import write_config

ROOT = Path(__file__).resolve().parent.parent
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def pty_run(args: list[str], columns: int = 60, timeout_s: float = 120.0) -> tuple[int, str]:
    """Run `python -m ccxt_pipeline ARGS` with stdin, stdout and stderr on a pseudo-terminal `columns`
    wide; its exit code and everything it wrote (stdout and stderr as a terminal shows them, colours
    left out)."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES") and not k.startswith("CCXT_")}
    env.update({"PYTHONPATH": str(ROOT), "TERM": "xterm"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccxt_pipeline", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                proc.kill()
                raise AssertionError(f"ccxt-cli {' '.join(args)} did not finish within {timeout_s}s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=timeout_s)
    finally:
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return code, _ANSI.sub("", text)


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


# Prices on Binance's BTCUSDT tick (0.10 -> 2 decimals as NautilusTrader counts them) and sizes on its lot
# (0.001); 0.008 x 88441.6 is 707.5328000000001 in floating point.
LIQUIDATIONS = [
    liq(0, price=88441.6, quantity=0.008),
    liq(1, price=97000.1, quantity=0.014, side="SHORT"),
    liq(2, price=101074.4, quantity=0.003),
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Instrument definitions and open interest from a real `fetch-oi` against the simulator, plus known
    liquidations written by the library."""
    tmp = tmp_path_factory.mktemp("query")
    with SimulatorThread(ExchangeSimulator(seed=5)) as sim:
        config = write_config(sim, tmp)
        result = CliRunner().invoke(
            app, ["fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--config", str(config)]
        )
        assert result.exit_code == 0, result.stderr
    root = tmp / "catalog"
    CatalogWriter(root).write(LIQUIDATIONS)
    return root


def test_table_shows_iso_times_the_instruments_precision_and_no_float_noise(catalog: Path) -> None:
    result = run("query", "liquidations", "BTCUSDT-PERP", "-e", "binance", "--catalog", str(catalog))
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "exchange", "instrument_id", "side", "quantity", "price", "notional",
        "ts_event", "(UTC)", "ts_init", "(UTC)",
    ]  # fmt: skip
    first = rows[0].split()
    # Price at the tick's 2 decimals (tickSize "0.10", as NautilusTrader's Binance adapter counts them),
    # quantity at the lot's 3, the notional without 707.5328000000001's noise.
    assert first[:6] == ["binance", "BTCUSDT-PERP.BINANCE", "LONG", "0.008", "88441.60", "707.5328"]
    # ts_event is whole milliseconds; ts_init is 7 ns later: each column shows what it holds, in UTC.
    assert first[6:] == ["2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000000007Z"]
    assert [r.split()[4] for r in rows] == ["88441.60", "97000.10", "101074.40"]
    assert str(T0) not in result.stdout
    assert len(rows) == len(LIQUIDATIONS)


def test_open_interest_table_uses_each_instruments_own_size_precision(catalog: Path) -> None:
    result = run("query", "oi", "BTCUSDT-PERP", "--catalog", str(catalog))
    assert result.exit_code == 0, result.stderr
    stored = CatalogReader(catalog).query(OPEN_INTEREST).to_pylist()
    rows = result.stdout.splitlines()[1:]
    assert len(rows) == len(stored) == 2
    for row, line in zip(stored, rows, strict=True):
        cells = line.split()
        assert cells[1] == row["instrument_id"]
        assert cells[2] == f"{row['open_interest']:.3f}"  # the simulator's lot is 0.001 on both exchanges
        # A quote value has no exchange grid: the stored float, less rounding noise (two units in the last place)
        value = row["open_interest_value"]
        assert abs(float(cells[3]) - value) <= 2 * math.ulp(value)


def test_json_flag_prints_the_stored_rows_as_one_array(catalog: Path) -> None:
    result = run("query", "liquidations", "BTCUSDT-PERP.BINANCE", "--json", "--catalog", str(catalog))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == CatalogReader(catalog).query(LIQUIDATION).to_pylist()
    clash = run(
        "query", "liquidations", "BTCUSDT-PERP", "--json", "--format", "csv", "--catalog", str(catalog)
    )
    assert clash.exit_code == 2
    assert clash.stderr.strip().splitlines() == [
        "error: --json prints one JSON array; --format csv is another format: use one"
    ]


def test_table_to_a_file(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "liq.txt"
    result = run("query", "liquidations", "BTCUSDT-PERP", "-o", str(out), "--catalog", str(catalog))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "707.5328" in out.read_text()


def test_on_a_narrow_terminal_ids_are_never_cut(catalog: Path) -> None:
    code, shown = pty_run(["query", "oi", "BTCUSDT-PERP", "--catalog", str(catalog)], columns=40)
    assert code == 0, shown
    assert "BTCUSDT-LINEAR.BYBIT" in shown
    assert "BTCUSDT-PERP.BINANCE" in shown
    assert "…" not in shown


def test_parquet_is_never_written_to_a_terminal(catalog: Path, tmp_path: Path) -> None:
    code, shown = pty_run(["query", "oi", "BTCUSDT-PERP", "--format", "parquet", "--catalog", str(catalog)])
    assert code == 2
    assert shown.strip().splitlines() == [
        "error: --format parquet is binary: write it to a file with -o FILE, or pipe it"
    ]
    # To a pipe (not a terminal) it is written as before.
    command = ["query", "oi", "BTCUSDT-PERP", "--format", "parquet", "--catalog", str(catalog)]
    piped = subprocess.run(
        [sys.executable, "-m", "ccxt_pipeline", *command],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=True,
    )
    assert piped.stdout.startswith(b"PAR1")
