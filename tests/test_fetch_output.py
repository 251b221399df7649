"""What `fetch-oi` / `fetch-funding` say (issue 13 items 2, 3, 4, 11): through the CLI, the real ccxt and the
simulator; what a terminal sees under a pseudo-terminal (`pty`)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
import yaml

from ccxt_pipeline.catalog import FUNDING_RATE, CatalogReader
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import Cli, run_cli, sim_settings, wait_for

ROOT = Path(__file__).resolve().parent.parent
RANGE = ("--from", "2025-01-01", "--to", "2025-03-01")
BTC_IDS = ["BTCUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT", "BTC-USD-PERP.HYPERLIQUID"]


def catalog(config_file: Path) -> CatalogReader:
    return CatalogReader(config_file.parent / "catalog")


def test_a_rerun_says_up_to_date_and_counts_what_is_stored(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    first = cli("fetch-funding", "BTCUSDT-PERP", *RANGE, "--json")
    assert first.exit_code == 0, first.output + first.stderr
    answer = json.loads(first.output)
    written = {e["exchange"]: e["rows_written"] for e in answer["exchanges"]}
    assert all(n > 0 for n in written.values()), written
    assert all(e["rows_already_stored"] == 0 for e in answer["exchanges"])
    reader = catalog(config_file)
    stored = {iid: reader.query(FUNDING_RATE, [iid]).num_rows for iid in BTC_IDS}
    assert sorted(stored.values()) == sorted(written.values())

    sim.reset_counters()
    again = cli("fetch-funding", "BTCUSDT-PERP", *RANGE, "--json")
    assert again.exit_code == 0
    answer = json.loads(again.output)
    for e in answer["exchanges"]:  # honest: everything was already stored, nothing written
        assert e["rows_written"] == 0
        assert e["rows_already_stored"] == written[e["exchange"]]
        assert e["up_to_date"] == e["instruments"]
    assert sim.count("binance", "fundingRate") == sim.count("bybit", "funding/history") == 0

    text = cli("fetch-funding", "BTCUSDT-PERP", *RANGE)
    assert text.exit_code == 0
    lines = [line for line in text.output.splitlines() if line.strip()]
    assert sorted(lines) == sorted(f"{iid}: up to date: nothing to fetch" for iid in BTC_IDS)
    assert "rows written" not in text.output  # no table of zeros


def test_a_full_instrument_id_selects_its_exchange_and_nothing_more(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    result = cli("fetch-oi", "BTCUSDT-PERP.BINANCE")
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr.strip() == ""  # no notes about bybit or hyperliquid
    assert "bybit" not in result.output
    assert "hyperliquid" not in result.output
    assert sum(n for (ex, _), n in sim.requests.items() if ex != "binance") == 0  # never even opened
    mixed = cli("fetch-oi", "BTCUSDT-PERP.BINANCE", "ETHUSDT-LINEAR.BYBIT", "--json", "--no-store")
    assert mixed.exit_code == 0, mixed.output + mixed.stderr
    answer = json.loads(mixed.output)
    assert {e["exchange"]: e["instruments"] for e in answer["exchanges"]} == {
        "binance": ["BTCUSDT-PERP.BINANCE"],
        "bybit": ["ETHUSDT-LINEAR.BYBIT"],
    }
    assert all(e["notes"] == [] for e in answer["exchanges"])


def _offline_config(tmp_path: Path, sim: ExchangeSimulator, base_url: str) -> Path:
    settings = sim_settings(sim, tmp_path / "data" / "catalog")
    for entry in settings["exchanges"].values():
        entry["ccxt"] = json.loads(json.dumps(entry["ccxt"]).replace(sim.base_url, base_url))
    settings["retry"] = {"attempts": 2, "backoff_base_seconds": 0.01, "backoff_max_seconds": 0.02}
    path = tmp_path / "offline.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        (f"http://127.0.0.1:{_closed_port()}", "connection refused"),
        ("http://exchange.invalid", "host name could not be resolved"),
    ],
)
def test_offline_creates_nothing_and_says_why(
    sim: ExchangeSimulator, tmp_path: Path, base_url: str, why: str
) -> None:
    config = _offline_config(tmp_path, sim, base_url)
    result = run_cli(config, "fetch-oi", "BTCUSDT-PERP", catch_exceptions=False)
    assert result.exit_code == 3  # every exchange failed
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3, result.stderr  # one line per exchange
    for exchange, line in zip(("binance", "bybit", "hyperliquid"), lines, strict=True):
        assert exchange in line, line
        assert why in line, line
    assert not (tmp_path / "data").exists()  # no catalog folder, no lock file
    assert "Traceback" not in result.output + result.stderr


def _controlling_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin), so that Ctrl-C
    typed into it is a SIGINT to the child."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`ccxt-cli ARGS` in a subprocess whose stdout and stderr are a pseudo-terminal; its output collected
    by a reader thread (ANSI escapes removed by `text`)."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160", "LINES": "40", "TERM": "xterm"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            preexec_fn=_controlling_terminal,  # a session of its own, the pty its terminal
        )
        os.close(slave)
        self.master = master
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def text(self) -> str:
        raw = b"".join(self.chunks).decode("utf-8", "replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw).replace("\r", "\n")

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        os.close(self.master)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.slow
def test_progress_rows_agree_with_the_final_table(config_file: Path, sim: ExchangeSimulator) -> None:
    term = Terminal("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", *RANGE, "--config", str(config_file))
    try:
        assert term.wait() == 0, term.text
    finally:
        term.kill()
    text = term.text
    # The table: exchange | instruments | rows written | already stored | gaps.
    table = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in re.finditer(r"│\s*(binance|bybit|hyperliquid)\s*│\s*\d+\s*│\s*([\d,]+)\s*│", text)
    }
    assert set(table) == {"binance", "bybit", "hyperliquid"}, text
    for exchange, written in table.items():
        bars = re.findall(rf"{exchange}\s.*?(\d+)/2 symbols\s+([\d,]+) rows\s+[\d,]+ req/min", text)
        assert bars, text
        done, rows = bars[-1]  # the bar as the run ended
        assert (int(done), int(rows.replace(",", ""))) == (2, written), (exchange, bars[-1], written)


@pytest.mark.slow
def test_ctrl_c_says_what_was_saved_and_exits_130(config_file: Path, sim: ExchangeSimulator) -> None:
    sim.latency_ms = 500  # long enough to be interrupted halfway
    reader = catalog(config_file)
    args = ("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", "ETHUSDT-PERP", "--from", "2023-01-01")
    term = Terminal(*args, "--config", str(config_file))
    stored = reader.root / "data" / FUNDING_RATE.type_dir
    try:
        # A file on disk, not a query of the catalog being written: on a busy machine a query per poll let
        # the whole fetch finish before the interrupt was sent.
        wait_for(lambda: any(stored.rglob("*.parquet")), "rows stored before the interrupt", within=60)
        assert term.proc.poll() is None, term.text
        os.write(term.master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to the foreground process
        code = term.wait()
    finally:
        term.kill()
    text = term.text
    assert code == 128 + signal.SIGINT, text
    assert "Traceback" not in text
    lines = [line.strip() for line in text.splitlines() if "interrupted" in line]
    assert [line.split(":")[0] for line in lines] == ["binance", "bybit", "hyperliquid"], text
    assert all("a rerun fetches only what is missing" in line for line in lines)
    counts = [re.search(r"([\d,]+) new rows saved", line) for line in lines]
    saved = sum(int(m.group(1).replace(",", "")) for m in counts if m is not None)
    assert len([m for m in counts if m is not None]) == 3
    assert saved == sum(
        reader.query(FUNDING_RATE, [iid]).num_rows for iid in reader.instruments(FUNDING_RATE)
    )
