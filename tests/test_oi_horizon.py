"""A venue that serves only recent open-interest history (Binance: 30 days, measured when the request arrives)
is asked from where it serves at the moment of each request, not where it served when the fetch was planned.

A whole-market backfill takes long enough for that to matter: Binance's 4,194 pages for 233 perpetuals go at
1000 per 5 minutes, about 20 minutes, and the oldest windows planned at the start then lie outside the 30 days.
Binance refuses such a request whole (-1130 "parameter 'startTime' is invalid": docs/exchanges.md,
simulator/binance.py), so before this every late symbol lost its oldest page (41 hours) and the run exited 1.
Real ccxt against the simulator, with the simulator's now and the fetch's clock pinned apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from ccxt_pipeline.collect.clients import open_exchanges
from ccxt_pipeline.collect.history import History, Stored
from ccxt_pipeline.collect.open_interest import open_interest_history, served_since
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS
from ccxt_pipeline.venues import VENUES
from tests.conftest import sim_settings

PLANNED = 1_763_640_000_000 * NS_PER_MS  # 2025-11-20T12:00:00Z, on the 5-minute grid
ASKED = PLANNED + 2 * NS_PER_HOUR  # the requests go out two hours later (a long --all run)
FIVE = 5 * NS_PER_MINUTE
START = PLANNED - 30 * NS_PER_DAY
INST = resolve_many(["BTCUSDT-PERP"], ["binance"])[0]


def planned_then_asked() -> Iterator[int]:
    """The fetch's clock: the plan reads it first, every request after."""
    yield PLANNED
    while True:
        yield ASKED


async def backfill(
    sim: ExchangeSimulator, tmp_path: Path, clock: Callable[[], int]
) -> tuple[History, list[pa.Table]]:
    """30 days of Binance 5-minute open interest up to PLANNED, through the real ccxt; what each checkpoint
    stored, in the order stored."""
    settings = Settings(**sim_settings(sim, tmp_path / "catalog"))
    stored: list[pa.Table] = []

    async def store(table: pa.Table) -> None:
        stored.append(table)

    async with open_exchanges(settings, ["binance"]) as exchanges:
        client = await exchanges.client("binance")
        assert client is not None
        out = await open_interest_history(client, INST, START, PLANNED, "5m", Stored(), store, clock=clock)
    return out, stored


async def test_windows_that_left_the_30_days_are_asked_from_where_binance_serves(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    sim.now_ms = ASKED // NS_PER_MS
    clock = planned_then_asked()
    out, stored = await backfill(sim, tmp_path, lambda: next(clock))
    assert out.failed == []  # no page refused
    assert out.error is None
    served = served_since(VENUES["binance"], ASKED, FIVE)
    assert served is not None
    planned = served_since(VENUES["binance"], PLANNED, FIVE)
    assert planned is not None
    rows = sorted(
        (t, v)
        for table in stored
        for t, v in zip(
            table.column("ts_event").to_pylist(), table.column("open_interest").to_pylist(), strict=True
        )
    )  # windows land in any order
    assert [t for t, _ in rows] == list(range(served, PLANNED + 1, FIVE))  # every point still served, once
    assert [v for _, v in rows] == [data.open_interest("binance", "BTCUSDT", t // NS_PER_MS) for t, _ in rows]
    # The plan's own gap (older than 30 days when planned), then what left the window before the request:
    # both say why, neither is a failure.
    assert [(g.ts_event, g.end_ns) for g in out.gaps] == [(START, planned - 1), (planned, served - 1)]
    assert all("last 30 days" in g.reason for g in out.gaps)


async def test_a_request_that_waited_past_the_window_is_asked_again_from_further_in(
    sim: ExchangeSimulator, tmp_path: Path
) -> None:
    """The pacer can hold a Binance request for minutes (1000 pages per 5 minutes); by the time it arrives,
    its start may have left the 30 days, and Binance refuses it whole. The fetch's clock moves a minute at
    each reading here, and the simulator's now is 8 minutes on: the first try is refused, the next one,
    from further in, is served; no page fails and the skipped stretch is a gap that says why."""
    sim.now_ms = (ASKED + 8 * NS_PER_MINUTE) // NS_PER_MS
    readings = iter(range(0, 10_000))

    def clock() -> int:
        n = next(readings)
        return PLANNED if n == 0 else ASKED + n * NS_PER_MINUTE

    out, stored = await backfill(sim, tmp_path, clock)
    assert out.failed == []  # the refused try was asked again, not given up
    assert out.error is None
    times = sorted(t for table in stored for t in table.column("ts_event").to_pylist())
    first = times[0]
    assert first >= (sim.now_ms * NS_PER_MS) - 30 * NS_PER_DAY  # inside the window Binance served
    assert times == list(range(first, PLANNED + 1, FIVE))  # from there on, every point once
    spans = sorted((g.ts_event, g.end_ns) for g in out.gaps)
    assert spans[0][0] == START
    assert spans[-1][1] == first - 1  # the gaps reach the first stored point, with no hole between them
    assert all(a_end + 1 == b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))
    assert all("last 30 days" in g.reason for g in out.gaps)
