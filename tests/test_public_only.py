"""Public data needs no private endpoint: with API keys configured, market loading and every fetch use
public endpoints only (the real ccxt against the simulator), and a stream that never connects is a failure.

Without the venue table's `has: {fetchCurrencies: False}`, ccxt's `load_markets` with a key calls Binance's
private `GET /sapi/v1/capital/config/getall` and `/sapi/v1/margin/allPairs` and Bybit's
`GET /v5/asset/coin/query-info` (ccxt/async_support/binance.py and bybit.py `fetch_currencies`), which a
data pipeline has no use for and which fail for a key without those permissions.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import yaml

from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.conftest import SimulatorThread, run_cli, sim_settings

PRIVATE = ("/sapi/", "/fapi/v1/account", "/fapi/v2/", "/fapi/v3/", "/v5/asset/", "/v5/account/", "/v5/user/")


def keyed_config(sim: ExchangeSimulator, tmp: Path, **extra: Any) -> Path:
    settings = sim_settings(sim, tmp / "catalog", **extra)
    for name, entry in settings["exchanges"].items():
        entry["api_key"] = f"{name}-public-only-key-0001"
        entry["secret"] = f"{name}-public-only-secret-0001"
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def private_requests(sim: ExchangeSimulator) -> list[tuple[str, str]]:
    return [(ex, ep) for (ex, ep) in sim.requests if any(p in ep for p in PRIVATE)]


def test_fetching_with_keys_asks_public_endpoints_only(sim: ExchangeSimulator, tmp_path: Path) -> None:
    config = keyed_config(sim, tmp_path)
    for args in (
        ("fetch-oi", "BTCUSDT-PERP"),
        ("fetch-funding", "BTCUSDT-PERP"),
        ("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "-e", "bybit", "--from", "1d"),
        ("fetch-funding", "BTCUSDT-PERP", "--from", "3d"),
    ):
        result = run_cli(config, *args)
        assert result.exit_code == 0, (args, result.stdout + result.stderr)
    assert private_requests(sim) == []
    assert sim.unhandled == []
    assert sim.count("binance", "/fapi/v1/exchangeInfo") >= 1


def test_streaming_with_keys_connects(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=31)) as sim:
        sim.liquidations.rate_per_s = {"binance": 20.0}
        config = keyed_config(sim, tmp_path)
        result = run_cli(config, "stream-liquidations", "BTCUSDT-PERP", "-e", "binance", "--duration", "3s")
        assert private_requests(sim) == []
    assert result.exit_code == 0, result.stderr
    assert "never connected" not in result.stderr
    assert [line for line in result.stdout.splitlines() if "notional" in line]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def redirect_websockets(value: Any, port: int) -> Any:
    if isinstance(value, dict):
        return {k: redirect_websockets(v, port) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("ws://"):
        rest = value.split("/", 3)[3] if value.count("/") >= 3 else ""
        return f"ws://127.0.0.1:{port}/{rest}"
    return value


def test_a_stream_that_never_connects_exits_nonzero_naming_it(tmp_path: Path) -> None:
    with SimulatorThread(ExchangeSimulator(seed=32)) as sim:
        sim.liquidations.rate_per_s = {"bybit": 20.0}
        settings = sim_settings(sim, tmp_path / "catalog", stream={"reconnect_max_seconds": 0.5})
        binance = settings["exchanges"]["binance"]["ccxt"]
        binance["urls"] = redirect_websockets(binance["urls"], closed_port())  # REST works, the socket cannot
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(settings))
        both = run_cli(config, "stream-liquidations", "BTCUSDT-PERP", "--duration", "3s")
        alone = run_cli(config, "stream-liquidations", "BTCUSDT-PERP", "-e", "binance", "--duration", "2s")
    assert both.exit_code == 1, both.stderr  # partial: bybit streamed
    lines = [line for line in both.stderr.splitlines() if "never connected" in line]
    assert len(lines) == 1, both.stderr
    assert lines[0].startswith("error: binance never connected: ")
    assert len(lines[0]) > len("error: binance never connected: ") + 5  # and why
    assert alone.exit_code == 3, alone.stderr  # nothing streamed at all
    assert "error: binance never connected: " in alone.stderr
