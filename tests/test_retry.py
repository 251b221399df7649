"""Retrying what the exchange says is temporary: the retry layer alone, error translation, and the CLI
against the simulator (the real ccxt) with each exchange's own "try again" answer injected.

Long waits are skipped by replacing the retry layer's clock (`retry.CLOCK`): its sleep advances a virtual
time instead of sleeping, so a 120 s Retry-After costs nothing and no wall clock is asserted.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import ccxt
import pytest
import yaml

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.errors import ExchangeError, NotSupportedError, RateLimited, TemporaryError
from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.exchanges.errors import error_code, translate
from ccxt_pipeline.exchanges.retry import RetryPolicy, with_retries
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator, FailureRule
from ccxt_pipeline.timeutil import NS_PER_MS
from tests.fake_transport import VirtualClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    fake = VirtualClock()
    monkeypatch.setattr(retry, "CLOCK", fake)
    return fake


class Script:
    """A call that raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


FAST = RetryPolicy(attempts=5, base_s=0.5, max_s=4.0, max_retry_after_s=120.0, max_total_s=180.0)


# --- the retry layer ------------------------------------------------------------------------------------


async def test_temporary_errors_are_retried_until_success(clock: VirtualClock) -> None:
    call = Script(TemporaryError("binance", "x"), TemporaryError("binance", "y"))
    assert await with_retries(FAST, call) == "ok"
    assert call.calls == 3
    assert len(clock.sleeps) == 2
    assert all(0 <= s <= FAST.max_s for s in clock.sleeps)  # capped, jittered


async def test_permanent_errors_are_not_retried(clock: VirtualClock) -> None:
    call = Script(ExchangeError("binance", "bad symbol"))
    with pytest.raises(ExchangeError, match="bad symbol"):
        await with_retries(FAST, call)
    assert call.calls == 1
    assert clock.sleeps == []


async def test_retry_after_is_a_floor(clock: VirtualClock) -> None:
    call = Script(RateLimited("bybit", "429", retry_after=7.0))
    assert await with_retries(FAST, call) == "ok"
    assert clock.sleeps == [pytest.approx(7.0, abs=FAST.max_s)]
    assert clock.sleeps[0] >= 7.0


async def test_out_of_tries_gives_up_with_one_line(clock: VirtualClock) -> None:
    call = Script(*[TemporaryError("binance", f"fetch: ExchangeNotAvailable #{i}") for i in range(9)])
    with pytest.raises(TemporaryError) as info:
        await with_retries(FAST, call)
    assert call.calls == FAST.attempts
    message = str(info.value)
    assert message.startswith("binance: gave up after 5 tries in ")
    assert message.endswith("last error: fetch: ExchangeNotAvailable #4")
    assert "\n" not in message


async def test_a_retry_after_past_the_allowed_wait_gives_up_at_once(clock: VirtualClock) -> None:
    call = Script(RateLimited("binance", "418 banned", retry_after=3600.0))
    with pytest.raises(RateLimited, match=r"gave up after 1 try .* asks to wait 3600s \(Retry-After\)"):
        await with_retries(FAST, call)
    assert call.calls == 1
    assert clock.sleeps == []  # never asks a banned IP again


async def test_the_total_time_is_bounded(clock: VirtualClock) -> None:
    call = Script(*[RateLimited("binance", "429", retry_after=100.0) for _ in range(5)])
    with pytest.raises(RateLimited, match=r"gave up after 2 tries .*past the retry budget of 180s"):
        await with_retries(FAST, call)
    assert call.calls == 2
    assert sum(clock.sleeps) <= FAST.max_total_s


async def test_long_waits_are_announced_short_ones_not(clock: VirtualClock) -> None:
    heard: list[tuple[float, str]] = []
    call = Script(TemporaryError("bybit", "blip"), RateLimited("bybit", "429", retry_after=30.0))
    result = await with_retries(FAST, call, announce=lambda s, e: heard.append((s, str(e))))
    assert result == "ok"
    assert len(heard) == 1
    assert heard[0][0] >= 30.0
    assert "429" in heard[0][1]


def test_policy_from_settings() -> None:
    from ccxt_pipeline.settings import RetrySettings

    policy = RetryPolicy.from_settings(RetrySettings(max_total_seconds=60, max_retry_after_seconds=30))
    assert (policy.max_total_s, policy.max_retry_after_s, policy.attempts) == (60, 30, 6)


# --- which ccxt errors are temporary (ccxt's classes, plus the HTTP status and code client.py attaches) --


def ccxt_error(cls: type[Exception], message: str, status: int | None = None, code: str | None = None) -> Any:
    exc: Any = cls(message)
    exc.http_status, exc.exchange_code, exc.retry_after = status, code, None
    return exc


@pytest.mark.parametrize(
    ("exchange", "exc", "expected"),
    [
        # ccxt/async_support/binance.py exceptions['exact']: -1001 -> OperationFailed
        ("binance", ccxt_error(ccxt.OperationFailed, "binanceusdm -1001", 500, "-1001"), TemporaryError),
        # ccxt/async_support/bybit.py exceptions['exact']: 10016 -> ExchangeError; Bybit: "Server error."
        ("bybit", ccxt_error(ccxt.ExchangeError, "bybit 10016", 200, "10016"), TemporaryError),
        ("bybit", ccxt_error(ccxt.ExchangeError, "bybit 10016", 503, "10016"), TemporaryError),
        ("bybit", ccxt_error(ccxt.BadRequest, "bybit 10001 params error", 200, "10001"), ExchangeError),
        ("binance", ccxt_error(ccxt.ExchangeError, "binanceusdm 10016", 400, "10016"), ExchangeError),
        ("hyperliquid", ccxt_error(ccxt.ExchangeError, "hyperliquid 502", 502), TemporaryError),
        ("hyperliquid", ccxt_error(ccxt.DDoSProtection, "hyperliquid 418", 418), RateLimited),
        ("bybit", ccxt_error(ccxt.RateLimitExceeded, "bybit 10006", 200, "10006"), RateLimited),
        (
            "binance",
            ccxt_error(ccxt.BadSymbol, "binanceusdm -1121 Invalid symbol.", 400, "-1121"),
            ExchangeError,
        ),
        ("binance", ccxt_error(ccxt.RequestTimeout, "binanceusdm GET timeout"), TemporaryError),
        ("binance", ccxt_error(ccxt.NotSupported, "no"), NotSupportedError),
    ],
)
def test_translation(exchange: str, exc: Exception, expected: type[ExchangeError]) -> None:
    assert type(translate(exc, exchange, "call")) is expected


def test_error_code_reads_binance_and_bybit_bodies() -> None:
    assert error_code({"code": -1001, "msg": "Internal error"}) == "-1001"
    assert error_code({"retCode": 10016, "retMsg": "Server error."}) == "10016"
    assert error_code({"retCode": 0, "retMsg": "OK"}) is None
    assert error_code([{"code": 1}]) is None


# --- through the CLI, against the simulator ---------------------------------------------------------------


def oi_rows(config_file: Path) -> dict[str, list[int]]:
    reader = CatalogReader(config_file.parent / "catalog")
    return {
        iid: reader.query(OPEN_INTEREST, [iid]).column("ts_init").to_pylist()
        for iid in ("BTCUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT")
    }


def test_one_binance_1001_and_one_bybit_10016_lose_nothing(cli: Any, config_file: Path, sim: Any) -> None:
    binance = sim.add_failure(
        FailureRule(kind="server_error", exchange="binance", match="openInterestHist", times=1)
    )
    bybit = sim.add_failure(
        FailureRule(kind="server_error", exchange="bybit", match="open-interest", times=1)
    )
    result = cli("fetch-oi", "BTCUSDT-PERP", "--from", "1d")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert (binance.fired, bybit.fired) == (1, 1)
    rows = oi_rows(config_file)
    assert len(rows["BTCUSDT-PERP.BINANCE"]) >= 288
    assert len(rows["BTCUSDT-LINEAR.BYBIT"]) >= 288
    for ts in rows.values():  # every 5-minute point of the day, once, in order
        assert ts == sorted(set(ts))
        assert all(b - a == 5 * 60 * 10**9 for a, b in itertools.pairwise(ts))


def test_bybit_10016_behind_a_503_is_retried(cli: Any, config_file: Path, sim: Any) -> None:
    sim.add_failure(
        FailureRule(kind="server_error", exchange="bybit", match="open-interest", times=2, status=503)
    )
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", "1d")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(oi_rows(config_file)["BTCUSDT-LINEAR.BYBIT"]) >= 288


def test_hyperliquid_418_on_30_percent_of_funding_pages_loses_no_row(
    clock: VirtualClock, sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """The project's default retry settings (6 tries), a 418 with `Retry-After: 2` on 30% of pages."""
    from typer.testing import CliRunner

    from ccxt_pipeline.cli import app
    from tests.conftest import sim_settings

    settings = sim_settings(sim, tmp_path / "catalog")
    del settings["retry"]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    sim.now_ms = 1_763_640_000_000  # 2025-11-20T12:00:00Z
    rule = sim.add_failure(
        FailureRule(
            kind="http_418", exchange="hyperliquid", match="fundingHistory", probability=0.3, retry_after_s=2
        )
    )
    result = CliRunner().invoke(
        app,
        [
            "fetch-funding",
            "BTCUSDT-PERP",
            "-e",
            "hyperliquid",
            "--from",
            "2025-01-01",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    assert rule.fired >= 5, (rule.matched, rule.fired)
    stored = CatalogReader(tmp_path / "catalog").query(FUNDING_RATE, ["BTC-USD-PERP.HYPERLIQUID"])
    expected = [
        t for t, _, _ in data.funding_settlements("hyperliquid", "BTC", 1_735_689_600_000, sim.now_ms)
    ]
    # Hyperliquid stamps each settlement some milliseconds after the hour: compare hours.
    expected = [t // 3_600_000 for t in expected]
    got = [t // NS_PER_MS // 3_600_000 for t in stored.column("ts_event").to_pylist()]
    # The settlement at "now" itself may or may not be served yet: compare what both saw.
    assert got == expected[: len(got)]
    assert len(expected) - 1 <= len(got)
    assert len(got) > 7000
    assert clock.sleeps
    assert max(clock.sleeps) >= 2


def test_a_long_retry_after_is_announced_once_then_kept(
    clock: VirtualClock, cli: Any, config_file: Path, sim: Any
) -> None:
    sim.add_failure(
        FailureRule(kind="http_429", exchange="binance", match="openInterestHist", times=1, retry_after_s=90)
    )
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", "1d")
    assert result.exit_code == 0, result.stdout + result.stderr
    waiting = [line for line in result.stderr.splitlines() if "waiting" in line]
    assert len(waiting) == 1, result.stderr
    assert re.search(r"binance: waiting 9\ds before trying again: rate limited", waiting[0])
    assert "asks to wait 90s (Retry-After)" in waiting[0]
    assert max(clock.sleeps) >= 90
    assert len(oi_rows(config_file)["BTCUSDT-PERP.BINANCE"]) >= 288


def test_a_persistent_429_gives_up_in_bounded_time_and_keeps_the_rest(
    clock: VirtualClock, cli: Any, config_file: Path, sim: Any
) -> None:
    sim.add_failure(
        FailureRule(kind="http_429", exchange="binance", match="openInterestHist", retry_after_s=120)
    )
    result = cli("fetch-oi", "BTCUSDT-PERP", "--from", "1d")
    assert result.exit_code == 1, result.stdout + result.stderr  # partial: bybit's rows are stored
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    waiting = [line for line in lines if "waiting 120s" in line]
    failed = [line for line in lines if "gave up" in line]
    assert len(waiting) == 1, result.stderr
    assert len(failed) == 1, result.stderr
    assert "binance" in failed[0]
    assert "past the retry budget of 180s" in failed[0]
    assert sum(clock.sleeps) <= 180
    rows = oi_rows(config_file)
    assert rows["BTCUSDT-PERP.BINANCE"] == []
    assert len(rows["BTCUSDT-LINEAR.BYBIT"]) >= 288
