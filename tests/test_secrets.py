"""Credentials never reach a log, at DEBUG, from the config file or the environment, ccxt's own request
logging included (logger `ccxt.base.exchange`: `GET <url>, Request: <headers> <body>`; with `verbose`, ccxt
dumps every request's headers).

To have ccxt really send (and log) the key, these tests turn the venue table's `fetchCurrencies` back on
through the user's `ccxt` block: `load_markets` then calls the private currency endpoints with
`X-MBX-APIKEY` (Binance) and `X-BAPI-API-KEY`/`X-BAPI-SIGN` (Bybit) headers, which the simulator answers 404.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, sim_settings

KEYS = {
    "binance": ("BinanceKey7f3a9c2e5d1b8a6f4e0c", "BinanceSecret0b1c2d3e4f5a6b7c8d9e"),
    "bybit": ("BybitKeyQ9w8e7r6t5y4u3i2o1", "BybitSecretZ1x2c3v4b5n6m7a8s9d0"),
}
CUSTOM_HEADER = ("X-Partner-Auth", "partner-auth-value-5f5e5d5c")
SECRETS = [v for pair in KEYS.values() for v in pair] + [CUSTOM_HEADER[1]]


def debug_settings(sim: ExchangeSimulator, tmp: Path, *, keys_in_file: bool) -> dict[str, Any]:
    settings = sim_settings(sim, tmp / "catalog", logging={"level": "DEBUG"})
    settings["exchanges"] = {name: settings["exchanges"][name] for name in KEYS}
    for name, (key, secret) in KEYS.items():
        entry = settings["exchanges"][name]
        entry["ccxt"].update(
            {
                "verbose": True,
                "headers": {CUSTOM_HEADER[0]: CUSTOM_HEADER[1]},
                "has": {"fetchCurrencies": True},
            }
        )
        if keys_in_file:
            entry.update({"api_key": key, "secret": secret})
    return settings


def key_environment() -> dict[str, str]:
    env = {}
    for name, (key, secret) in KEYS.items():
        env[f"CCXT_EXCHANGES__{name.upper()}__API_KEY"] = key
        env[f"CCXT_EXCHANGES__{name.upper()}__SECRET"] = secret
    return env


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "**********" in text  # something was there, and was masked


@pytest.mark.parametrize("keys_in_file", [True, False], ids=["config-file", "environment"])
def test_a_debug_fetch_shows_no_credential(
    sim: ExchangeSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys_in_file: bool
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(debug_settings(sim, tmp_path, keys_in_file=keys_in_file)))
    if not keys_in_file:
        for name, value in key_environment().items():
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["fetch-oi", "BTCUSDT-PERP", "--config", str(config)])
    assert result.exit_code != 0  # the private endpoints are not simulated: both exchanges fail, in one line
    output = result.stdout + result.stderr
    assert "X-MBX-APIKEY" in output  # ccxt logged the signed request ...
    assert "X-BAPI-API-KEY" in output
    assert CUSTOM_HEADER[0] in output  # ... and the custom header (verbose)
    assert_no_secret(output)


def test_the_daemon_log_shows_no_credential(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    with SimulatorThread(ExchangeSimulator(seed=41)) as sim:
        settings = debug_settings(sim, tmp_path, keys_in_file=False)
        settings.update(symbols=["BTCUSDT-PERP"], daemon={"status_seconds": 1})
        config = tmp_path / "daemon.yaml"
        config.write_text(yaml.safe_dump(settings))
        log = tmp_path / "daemon.log"
        env = {**os.environ, "PYTHONPATH": str(root), **key_environment()}
        command = [sys.executable, "-m", "ccxt_pipeline", "daemon", "start", "--config", str(config)]
        proc = subprocess.Popen(
            [*command, "--log-file", str(log)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 45
            while not (
                log.exists() and "X-BAPI-API-KEY" in log.read_text() and "X-MBX-APIKEY" in log.read_text()
            ):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no signed request was logged"
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=60)
    text = log.read_text()
    assert CUSTOM_HEADER[0] in text
    assert_no_secret(text)
    for secret in SECRETS:
        assert secret not in stdout + stderr
