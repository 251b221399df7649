"""Liquidation streams end to end: the real ccxt.pro against the simulator's websockets, into the catalog."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, CatalogReader
from ccxt_pipeline.instruments import instrument_for
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.simulator.liquidations import SentEvent
from ccxt_pipeline.simulator.server import ExchangeSimulator, FailureRule
from ccxt_pipeline.stream.run import LiquidationStream, StreamRequest, StreamSummary
from ccxt_pipeline.timeutil import NS_PER_MS
from tests.catalog_checks import as_records, assert_catalog_invariants
from tests.conftest import sim_settings, until

FAST_STREAM = {
    "flush_seconds": 0.2,
    "stale_seconds": 2.0,
    "reconnect_max_seconds": 0.3,
    "health_seconds": 1.0,
}


def stream_settings(sim: ExchangeSimulator, catalog: Path, **stream: Any) -> Settings:
    return Settings(**sim_settings(sim, catalog, stream={**FAST_STREAM, **stream}))


def expected_row(event: SentEvent) -> tuple[Any, ...]:
    iid = instrument_for(event.exchange, event.ccxt_symbol).instrument_id
    return (iid, event.t_ms * NS_PER_MS, event.liquidated_side, event.price, event.quantity)


def stored_rows(catalog: Path) -> list[tuple[Any, ...]]:
    table = CatalogReader(catalog).query(LIQUIDATION)
    cols = [table.column(c).to_pylist() for c in ("instrument_id", "ts_event", "side", "price", "quantity")]
    return list(zip(*cols, strict=True))


async def run_stream(
    settings: Settings, request: StreamRequest, body: Callable[[LiquidationStream], Awaitable[None]]
) -> StreamSummary:
    stream = LiquidationStream(settings, request)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.run(stop))
    try:
        await body(stream)
    finally:
        stop.set()
    return await task


def events_seen(stream: LiquidationStream) -> int:
    return sum(h.events for h in stream.health.values())


async def test_every_event_lands_once_with_side_units_and_instrument(tmp_path: Path) -> None:
    async with ExchangeSimulator(seed=1) as sim:
        feed = sim.liquidations
        request = StreamRequest(["BTCUSDT-PERP", "ETHUSDT-PERP"], ["binance", "bybit"])

        async def body(stream: LiquidationStream) -> None:
            for ex in ("binance", "bybit"):
                for sym in ("BTCUSDT", "ETHUSDT"):
                    await feed.wait_subscribed(ex, sym)
            await feed.emit("binance", "BTCUSDT", liquidated_side="LONG", quantity=0.5, price=97_000.0)
            await feed.emit("binance", "ETHUSDT", liquidated_side="SHORT", quantity=2.0, price=3_100.0)
            await feed.emit("bybit", "BTCUSDT", liquidated_side="LONG", quantity=0.25, price=97_010.0)
            await feed.emit("bybit", "ETHUSDT", liquidated_side="SHORT", quantity=1.5, price=3_101.0)
            await feed.burst("binance", "BTCUSDT", 100, within_ms=10)
            await feed.burst("bybit", "ETHUSDT", 100, within_ms=10)
            await feed.burst("bybit", "BTCUSDT", 100, within_ms=10, batch=True)  # many items per message
            await until(lambda: events_seen(stream) >= len(feed.sent))

        summary = await run_stream(stream_settings(sim, tmp_path / "catalog"), request, body)
        sent = list(feed.sent)
    assert len(sent) == 304
    assert not [e for e in sent if e.malformed or e.duplicated]
    assert summary.rows_written == len(sent)
    rows = stored_rows(tmp_path / "catalog")
    assert sorted(rows) == sorted(expected_row(e) for e in sent)  # exactly N rows: side, price, qty, id
    table = CatalogReader(tmp_path / "catalog").query(LIQUIDATION)
    for q, p, n in zip(
        *(table.column(c).to_pylist() for c in ("quantity", "price", "notional")), strict=True
    ):
        assert n == pytest.approx(q * p)
    assert_catalog_invariants(tmp_path / "catalog", exact_names=False)


async def test_whole_market_stream_on_binance(tmp_path: Path) -> None:
    async with ExchangeSimulator(seed=2) as sim:
        feed = sim.liquidations

        async def body(stream: LiquidationStream) -> None:
            await feed.wait_subscribed("binance", "SOLUSDT")
            for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
                await feed.burst("binance", sym, 20, within_ms=5)
            await until(lambda: events_seen(stream) >= len(feed.sent))

        settings = stream_settings(sim, tmp_path / "catalog")
        await run_stream(settings, StreamRequest(exchanges=["binance"], all_market=True), body)
        sent = list(feed.sent)
    assert sorted(stored_rows(tmp_path / "catalog")) == sorted(expected_row(e) for e in sent)
    ids = {"BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE", "SOLUSDT-PERP.BINANCE"}
    assert {r[0] for r in stored_rows(tmp_path / "catalog")} == ids
    # Instrument definitions for what a whole-market stream met, so a backtest can load them.
    assert {p.name for p in (tmp_path / "catalog" / "data" / "crypto_perpetual").iterdir()} == ids


async def stress(
    sim: ExchangeSimulator,
    stream: LiquidationStream,
    seconds: float,
    drop_every: float,
    silence: tuple[float, float],
    malformed_every: int,
) -> tuple[list[int], tuple[int, int]]:
    """Steady events on both exchanges while connections drop, go silent and get garbage frames."""
    feed = sim.liquidations
    for ex in ("binance", "bybit"):
        await feed.wait_subscribed(ex, "BTCUSDT")
    feed.malformed_every = malformed_every
    feed.duplicate_every = 7
    rng = random.Random(5)
    drops: list[int] = []
    silent = (0, 0)
    started = time.monotonic()
    next_drop = started + drop_every
    silenced = False
    while (now := time.monotonic()) - started < seconds:
        for ex in ("binance", "bybit"):
            await feed.emit_random(ex, "BTCUSDT")
        if rng.random() < 0.05:
            await feed.burst("bybit", "BTCUSDT", 20, within_ms=5, batch=True)
        if now >= next_drop:
            for ex in ("binance", "bybit"):
                if len(drops) % 2:
                    feed.close_connections(ex)
                else:
                    feed.drop_connections(ex)
            drops.append(time.time_ns())
            next_drop = now + drop_every
        if not silenced and now - started >= silence[0]:
            feed.silence("binance", silence[1])
            silent = (time.time_ns(), time.time_ns() + int(silence[1] * 1e9))
            silenced = True
        await asyncio.sleep(0.02)
    feed.malformed_every = None
    feed.duplicate_every = None
    # Let every socket come back before stopping, so what was sent is what was received.
    for ex in ("binance", "bybit"):
        await feed.wait_subscribed(ex, "BTCUSDT", max_wait_s=30)
    await until(lambda: events_seen(stream) >= len(feed.sent), within=30)
    return drops, silent


def check_after_stress(
    catalog: Path, sent: list[SentEvent], summary: StreamSummary, drops: list[int], silent: tuple[int, int]
) -> None:
    rows = stored_rows(catalog)
    assert len(rows) == len(set(rows)), "duplicates stored"
    assert sorted(rows) == sorted(expected_row(e) for e in sent)  # every event the sockets delivered, once
    gaps = as_records(CoverageGap, CatalogReader(catalog).query_records(COVERAGE_GAP))
    for ex in ("binance", "bybit"):
        health = summary.health[ex]
        assert health.reconnects >= len(drops), (ex, health)
        assert health.duplicates > 0
        ex_gaps = [g for g in gaps if g.exchange == ex]
        assert all(g.ts_event < g.end_ns for g in ex_gaps)
        # Every disconnect lies in a recorded range with no coverage. (A gap starts at the last frame the
        # client handled, which may be a few ms after the test asked for the drop.)
        slack = 100_000_000
        for t in drops:
            assert any(g.ts_event - slack <= t <= g.end_ns for g in ex_gaps), (ex, t)
    # The silence (no frame, no pong) is a gap too: the watchdog noticed it and the gap lasts until the
    # socket spoke again, so the gaps cover the silence but for the watchdog's detection time.
    covered = sum(
        max(0, min(g.end_ns, silent[1]) - max(g.ts_event, silent[0])) for g in gaps if g.exchange == "binance"
    )
    assert covered >= (silent[1] - silent[0]) * 0.6
    assert summary.health["binance"].errors > 0  # garbage frames counted, not fatal
    assert_catalog_invariants(catalog, exact_names=False)


async def run_stressed(
    sim: ExchangeSimulator, catalog: Path, hurt: dict[str, Any], **stream: Any
) -> tuple[StreamSummary, list[SentEvent], list[int], tuple[int, int]]:
    """Stream BTCUSDT-PERP from Binance and Bybit (`stream` settings) while `stress(**hurt)` hurts the
    simulator: the summary, the events sent, and the drops and silence `stress` made."""
    holder: dict[str, Any] = {}

    async def body(stream: LiquidationStream) -> None:
        holder["drops"], holder["silent"] = await stress(sim, stream, **hurt)

    request = StreamRequest(["BTCUSDT-PERP"], ["binance", "bybit"])
    summary = await run_stream(stream_settings(sim, catalog, **stream), request, body)
    return summary, list(sim.liquidations.sent), holder["drops"], holder["silent"]


async def test_stream_survives_drops_silence_and_garbage(tmp_path: Path) -> None:
    async with ExchangeSimulator(seed=3) as sim:
        hurt = {"seconds": 6, "drop_every": 1.5, "silence": (2.0, 3.0), "malformed_every": 9}
        summary, sent, drops, silent = await run_stressed(sim, tmp_path / "catalog", hurt, stale_seconds=1.0)
    check_after_stress(tmp_path / "catalog", sent, summary, drops, silent)
    silent_gaps = [
        g
        for g in as_records(CoverageGap, CatalogReader(tmp_path / "catalog").query_records(COVERAGE_GAP))
        if g.exchange == "binance"
    ]
    assert max(g.end_ns - g.ts_event for g in silent_gaps) >= 1_000_000_000  # the silence shows as a gap


@pytest.mark.slow
async def test_stress_acceptance_drop_every_5s_30s_silence_garbage(tmp_path: Path) -> None:
    async with ExchangeSimulator(seed=4) as sim:
        hurt = {"seconds": 50, "drop_every": 5, "silence": (8, 30), "malformed_every": 25}
        summary, sent, drops, silent = await run_stressed(
            sim, tmp_path / "catalog", hurt, stale_seconds=5.0, reconnect_max_seconds=2.0
        )
    print(
        f"stress: {len(sent)} events delivered, {len(drops)} drop rounds, "
        + ", ".join(
            f"{n}: {h.reconnects} reconnects, {h.gaps} gaps, {h.errors} errors, {h.duplicates} duplicates"
            for n, h in summary.health.items()
        )
    )
    check_after_stress(tmp_path / "catalog", sent, summary, drops, silent)


async def test_one_exchange_failing_never_stops_the_others(tmp_path: Path) -> None:
    async with ExchangeSimulator(seed=6) as sim:
        sim.add_failure(FailureRule(kind="http_503", exchange="bybit"))  # bybit never loads its markets
        feed = sim.liquidations
        request = StreamRequest(["BTCUSDT-PERP"], ["binance", "bybit"])

        async def body(stream: LiquidationStream) -> None:
            await feed.wait_subscribed("binance", "BTCUSDT")
            await feed.burst("binance", "BTCUSDT", 30, within_ms=10)
            await until(lambda: events_seen(stream) >= len(feed.sent))
            await until(lambda: stream.health["bybit"].errors > 0)

        summary = await run_stream(stream_settings(sim, tmp_path / "catalog"), request, body)
        sent = list(feed.sent)
    assert summary.health["binance"].events == len(sent) == 30
    assert summary.health["bybit"].errors > 0
    assert "bybit" in (summary.health["bybit"].last_error or "")
    assert sorted(stored_rows(tmp_path / "catalog")) == sorted(expected_row(e) for e in sent)
