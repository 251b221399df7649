"""Shared fixtures: the exchange simulator in a background thread, and settings pointing ccxt at it; waiting
for a condition (`until` in a test's event loop, `wait_for` in a thread), never for a fixed time.

The CLI runs its own event loop (`asyncio.run`), so the simulator lives in a thread with a loop of its own;
its knobs are plain attributes the test thread may change at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from typer.testing import CliRunner, Result

from ccxt_pipeline.cli import app
from ccxt_pipeline.exchanges import pacing
from ccxt_pipeline.simulator.server import ExchangeSimulator


@pytest.fixture(autouse=True)
def _pacing_ledgers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test's pacing ledgers in its own dir (`pacing_state_dir`'s default): never the developer's
    cache, never another test's (each simulator is one "IP")."""
    monkeypatch.setattr(pacing, "default_state_dir", lambda: tmp_path / "pacing-state")


async def until(predicate: Callable[[], object], within: float = 10.0, what: str = "the condition") -> None:
    """Wait, yielding to the event loop every 10 ms, until `predicate()` is true; fail naming `what` after
    `within` seconds (a bound for a stuck test, not a timing assertion)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {within:g}s")
        await asyncio.sleep(0.01)


def wait_for(predicate: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    """`until` for a test thread that runs no event loop (the CLI in a subprocess or thread): polls every 50 ms;
    the first true value of `predicate()`."""
    deadline = time.monotonic() + within
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {within:g}s")
        time.sleep(0.05)
    return value


@contextlib.asynccontextmanager
async def opened(exchange: Any, *, load: bool = True) -> AsyncIterator[Any]:
    """A ccxt client with its markets loaded (unless `load` is off), closed however the block ends."""
    try:
        if load:
            await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def run_cli(config: Path, *args: str, catch_exceptions: bool = True) -> Result:
    """`ccxt-cli ARGS --config CONFIG` in this process; click's Result (stdout, stderr, exit_code)."""
    return CliRunner().invoke(app, [*args, "--config", str(config)], catch_exceptions=catch_exceptions)


class Cli(Protocol):
    """The `cli` fixture: runs `ccxt-cli ARGS --config <simulator config>`, returns click's Result."""

    def __call__(self, *args: str) -> Result: ...


class SimulatorThread:
    def __init__(self, sim: ExchangeSimulator) -> None:
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    def __enter__(self) -> ExchangeSimulator:
        self.thread.start()
        self.run(self.sim.start())
        return self.sim

    def __exit__(self, *exc: object) -> None:
        self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def sim() -> Iterator[ExchangeSimulator]:
    """A simulator following the wall clock."""
    with SimulatorThread(ExchangeSimulator(seed=0)) as s:
        yield s


def sim_settings(sim: ExchangeSimulator, catalog: Path, **extra: Any) -> dict[str, Any]:
    """Settings that point every exchange at `sim`, with fast retries for tests."""
    exchanges = {}
    for name in ("binance", "bybit", "hyperliquid"):
        ccxt_config = sim.ccxt_overrides(name)
        ccxt_config.update({"timeout": 2000, "timeout_on_exit": 0})
        # The simulator enforces no limits unless told to (like ccxt's limiter, ours is off against it;
        # tests/test_pacing.py tests the pacing on a virtual clock).
        exchanges[name] = {
            "ccxt": ccxt_config,
            "pace_requests": False,
            "pacing_state_dir": str(pacing.default_state_dir()),  # the test's own (a CLI subprocess too)
        }
    data: dict[str, Any] = {
        "catalog_path": str(catalog),
        "exchanges": exchanges,
        "retry": {"attempts": 8, "backoff_base_seconds": 0.02, "backoff_max_seconds": 0.2},
        "logging": {"level": "WARNING"},
    }
    data.update(extra)
    return data


def write_sim_config(sim: ExchangeSimulator, folder: Path) -> Path:
    """`folder`/ccxt_pipeline.yaml: `sim_settings` with the catalog in `folder`/catalog."""
    path = folder / "ccxt_pipeline.yaml"
    path.write_text(yaml.safe_dump(sim_settings(sim, folder / "catalog")))
    return path


@pytest.fixture
def config_file(sim: ExchangeSimulator, tmp_path: Path) -> Path:
    return write_sim_config(sim, tmp_path)


FUNDING_HISTORY_PATHS = {"/fapi/v1/fundingRate": "binance", "/v5/market/funding/history": "bybit"}
FundingAsked = list[tuple[str, str, int]]
"""(exchange, symbol as the exchange spells it, startTime ms) of funding-history requests."""


@pytest.fixture
def funding_asked(monkeypatch: pytest.MonkeyPatch) -> FundingAsked:
    """Every funding-history request ccxt sends (its own `fetch` wrapped; the real one still runs): Binance's
    and Bybit's by path and query, Hyperliquid's `fundingHistory` by its POST body."""
    import json

    from ccxt.async_support.base import exchange as ccxt_exchange

    seen: FundingAsked = []
    original = ccxt_exchange.Exchange.fetch

    async def fetch(self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        if parts.path in FUNDING_HISTORY_PATHS:
            query = parse_qs(parts.query)
            seen.append((FUNDING_HISTORY_PATHS[parts.path], query["symbol"][0], int(query["startTime"][0])))
        elif body and '"fundingHistory"' in str(body):
            request = json.loads(body)
            seen.append(("hyperliquid", request["coin"], int(request["startTime"])))
        return await original(self, url, method, headers, body)

    monkeypatch.setattr(ccxt_exchange.Exchange, "fetch", fetch)
    return seen


@pytest.fixture
def cli(config_file: Path) -> Cli:
    """Run `ccxt-cli ARGS --config <sim config>`; returns click's Result (output, stderr, exit_code)."""

    def invoke(*args: str) -> Result:
        return run_cli(config_file, *args, catch_exceptions=False)

    return invoke
