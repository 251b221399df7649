"""`ccxt-cli stream-liquidations` on a terminal: the real command with its output on a 160-column pty.

What a user sees there: one health line per exchange that never wraps, the last error's text beside the
error count, and "stopped" for every exchange after a normal stop (`--duration`, or Ctrl-C), where a
real outage says DISCONNECTED.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, sim_settings

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 160
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class Terminal:
    """A command run with stdin, stdout and stderr on a pseudo-terminal of COLUMNS columns."""

    def __init__(self, args: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env.update({"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"})
        script = Path(sys.executable).parent / "ccxt-cli"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "ccxt_pipeline"]
        self.proc = subprocess.Popen([*command, *args], stdin=slave, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        self.master = master
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def text(self) -> str:
        return _ANSI.sub("", b"".join(self._chunks).decode(errors="replace"))

    def lines(self) -> list[str]:
        return self.text.replace("\r\n", "\n").split("\n")

    def wait_for(self, predicate: Callable[[str], bool], what: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not predicate(self.text):
            assert self.proc.poll() is None, f"exited while waiting for {what}:\n{self.text}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text}"
            time.sleep(0.05)

    def finish(self, within: float = 60.0) -> int:
        code = self.proc.wait(timeout=within)
        self._reader.join(timeout=10)
        os.close(self.master)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def config(sim: ExchangeSimulator, tmp: Path) -> Path:
    path = tmp / "config.yaml"
    settings = sim_settings(sim, tmp / "catalog", stream={"health_seconds": 0.3, "flush_seconds": 0.2})
    path.write_text(yaml.safe_dump(settings))
    return path


def health_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("health  ")]


def summary_lines(lines: list[str]) -> list[str]:
    (start,) = [i for i, line in enumerate(lines) if line.startswith("stopped after")]
    return lines[start + 1 :]


def check_health_lines(lines: list[str]) -> None:
    health = health_lines(lines)
    assert health
    for line in health:
        assert len(line) <= COLUMNS, line  # never wrapped by the terminal
        assert " | " not in line
        assert re.match(r"health  (binance|bybit): ", line), line  # one exchange per line
    for name in ("binance", "bybit"):
        assert any(line.startswith(f"health  {name}: connected") for line in health), name


def _shows_last_error(name: str) -> Callable[[str], bool]:
    def shows(text: str) -> bool:
        return re.search(rf"health  {name}: connected.*last error: ", text) is not None

    return shows


def test_ctrl_c_stops_every_exchange_and_shows_the_last_error(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=51)) as sim:
        sim.liquidations.rate_per_s = {"binance": 20.0, "bybit": 20.0}
        sim.liquidations.malformed_every = 4  # garbage frames: counted as errors, the socket kept
        term = Terminal(["stream-liquidations", "BTCUSDT-PERP", "--config", str(config(sim, tmp_path))])
        try:
            for name in ("binance", "bybit"):
                term.wait_for(_shows_last_error(name), f"a health line with {name}'s last error")
            term.proc.send_signal(signal.SIGINT)  # Ctrl-C
            code = term.finish()
        finally:
            term.kill()
    lines = term.lines()
    assert code == 0, term.text
    assert "Traceback" not in term.text
    check_health_lines(lines)
    with_error = [line for line in health_lines(lines) if "last error: " in line]
    assert any("last error: bad frame skipped: JSONDecodeError" in line for line in with_error), with_error
    summary = summary_lines(lines)
    for name in ("binance", "bybit"):
        (line,) = [s for s in summary if s.startswith(f"  {name}: ")]
        assert line.startswith(f"  {name}: stopped, "), line
        assert "last error: " in line
        assert len(line) <= COLUMNS
    assert "DISCONNECTED" not in "\n".join(summary)


def test_duration_stops_every_exchange_as_stopped_not_disconnected(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=52)) as sim:
        sim.liquidations.rate_per_s = {"binance": 10.0, "bybit": 10.0}
        args = ["stream-liquidations", "BTCUSDT-PERP", "ETHUSDT-PERP", "-e", "binance", "-e", "bybit"]
        term = Terminal([*args, "--duration", "2.5s", "--config", str(config(sim, tmp_path))])
        try:
            code = term.finish()
        finally:
            term.kill()
    lines = term.lines()
    assert code == 0, term.text
    check_health_lines(lines)
    summary = summary_lines(lines)
    assert [s.split(",")[0] for s in summary if s.startswith("  ")] == [
        "  binance: stopped",
        "  bybit: stopped",
    ]
    assert "DISCONNECTED" not in term.text.split("stopped after")[1]
