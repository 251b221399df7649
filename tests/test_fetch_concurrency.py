"""A history fetch keeps the exchange busy: its pages go out in parallel, and turning them into catalog tables
happens per checkpoint in a worker thread, not page by page on the event loop that sends the requests.

Orders and overlaps are read from the simulator's own log of each request's arrival and answer (real ccxt,
the simulator's limits enforced), never from wall-clock durations.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from aiohttp import web

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader
from ccxt_pipeline.collect.clients import open_exchanges
from ccxt_pipeline.collect.history import Checkpoints
from ccxt_pipeline.collect.open_interest import oi_parts_table, oi_table
from ccxt_pipeline.collect.run import FetchRequest, run_fetch
from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_DAY, now_ns
from ccxt_pipeline.venues import VENUES
from tests.conftest import SimulatorThread, sim_settings, until

BYBIT = VENUES["bybit"]
assert BYBIT.oi_history_raw is not None
RAW = BYBIT.oi_history_raw
INST = resolve_many(["BTCUSDT-PERP"], ["bybit"])[0]
T0 = 1_793_342_700_000  # ms, on the 5-minute grid


def _rows(first: int, n: int, amount: str = "10") -> list[dict[str, Any]]:
    """Bybit's raw open-interest rows (https://bybit-exchange.github.io/docs/v5/market/open-interest)."""
    return [{"openInterest": amount, "timestamp": str(T0 + (first + i) * 300_000)} for i in range(n)]


def _prices(first: int, n: int) -> dict[int, float]:
    return {T0 + (first + i) * 300_000: 2.0 for i in range(n)}


# --- checkpoints built off the loop ----------------------------------------------------------------------


def test_one_table_of_several_windows_equals_their_tables_end_to_end() -> None:
    # Window 2 fetched no candles of its own: the candles window 1 fetched for the same times value it.
    parts = [(_rows(0, 3), _prices(0, 5)), (_rows(3, 2), None), (_rows(5, 4), _prices(5, 2))]
    whole = oi_parts_table(parts, INST, RAW)
    merged = {**_prices(0, 5), **_prices(5, 2)}
    separate = pa.concat_tables([oi_table(rows, INST, RAW, merged) for rows, _ in parts])
    assert whole.equals(separate)
    values = whole.column("open_interest_value").to_pylist()
    assert values == [10.0] * 7 + [None, None]  # one side (half of 10) x mark 2.0; no candle: empty


async def test_built_checkpoints_build_one_table_per_checkpoint_outside_the_loop() -> None:
    loop_thread = threading.get_ident()
    built: list[tuple[int, int]] = []  # (parts, thread)
    stored: list[int] = []

    def build(parts: Sequence[list[int]]) -> pa.Table:
        built.append((len(parts), threading.get_ident()))
        return pa.table({"x": [x for part in parts for x in part]})

    async def store(table: pa.Table) -> None:
        stored.append(table.num_rows)

    cp = Checkpoints[list[int]](store, build, rows=1000, seconds=3600)
    for i in range(7):
        await cp.add(list(range(300)), 300)
        assert len(built) == (1 if i >= 3 else 0)
    await cp.add([], 0)  # a window with no new row adds nothing
    await cp.flush()
    await cp.flush()  # nothing left: no build, no empty write
    assert [n for n, _ in built] == [4, 3]
    assert all(thread != loop_thread for _, thread in built)
    assert stored == [1200, 900]
    assert cp.stored == 2100


async def test_a_bad_window_does_not_drop_the_good_ones_beside_it() -> None:
    stored: list[list[int]] = []

    def build(parts: Sequence[list[int]]) -> pa.Table:
        values = [x for part in parts for x in part]
        if any(x < 0 for x in values):
            raise RecordError("OpenInterest.open_interest: must be >= 0")
        return pa.table({"x": values})

    async def store(table: pa.Table) -> None:
        stored.append(table.column("x").to_pylist())

    cp = Checkpoints[list[int]](store, build, rows=1000, seconds=3600)
    await cp.add([1, 2], 2)
    await cp.add([-1], 1)
    await cp.add([3], 1)
    with pytest.raises(RecordError, match="must be >= 0"):
        await cp.flush()
    assert stored == [[1, 2, 3]]
    assert cp.stored == 3
    await cp.flush()  # the bad window is not tried again, nor the good ones stored twice
    assert stored == [[1, 2, 3]]


async def test_a_flush_interrupted_while_building_keeps_its_rows_for_the_next() -> None:
    release = threading.Event()
    building = threading.Event()
    stored: list[int] = []

    def build(parts: Sequence[list[int]]) -> pa.Table:
        building.set()
        release.wait(30)
        return pa.table({"x": [x for part in parts for x in part]})

    async def store(table: pa.Table) -> None:
        stored.append(table.num_rows)

    cp = Checkpoints[list[int]](store, build, rows=1000, seconds=3600)
    await cp.add([1, 2, 3], 3)
    flushing = asyncio.create_task(cp.flush())
    await until(building.is_set, what="the build to start")
    flushing.cancel()  # Ctrl-C while the worker thread builds
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert stored == []
    await cp.flush()  # the `finally` of the fetch: what arrived is kept
    assert stored == [3]


def test_a_first_backfill_plans_without_building_an_arrow_table(tmp_path: Path) -> None:
    """With nothing stored for the instrument, `read_stored` answers from the file names: pyarrow's first
    table imports pandas (0.25-0.35 s holding the GIL), which must not stand between the markets and the
    first history request. In a fresh interpreter, where nothing has imported pandas yet."""
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader\n"
        "from ccxt_pipeline.collect.history import read_stored\n"
        "assert 'pandas' not in sys.modules\n"
        f"s = read_stored(CatalogReader(Path({str(tmp_path)!r})), OPEN_INTEREST, 'BTCUSDT-PERP.BINANCE', 0, 10**18)\n"
        "assert s.times.size == 0 and not s.gaps, s\n"
        "assert 'pandas' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# --- the exchange's view of one fetch ----------------------------------------------------------------------


Entry = tuple[float, float, str]
"""(arrival, answer, path) of one request, in the simulator's clock."""


@pytest.fixture
def logged_sim() -> Iterator[tuple[ExchangeSimulator, list[Entry]]]:
    """The simulator with its documented limits enforced, every request logged (outermost middleware: it
    sees refused requests too), answering after 150 ms: long enough that requests sent together are seen
    together even on a busy machine."""
    log: list[Entry] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        response: web.StreamResponse = await handler(request)
        log.append((arrived, time.monotonic(), request.path))
        return response

    sim = ExchangeSimulator(seed=0, enforce_limits=True)
    sim.app.middlewares.insert(0, record)
    with SimulatorThread(sim) as s:
        s.latency_ms = 150.0
        yield s, log


def _most_in_flight(entries: Sequence[Entry]) -> int:
    events = sorted([(a, 1) for a, _, _ in entries] + [(b, -1) for _, b, _ in entries])
    most = busy = 0
    for _, step in events:  # an answer before an arrival at the same instant
        busy += step
        most = max(most, busy)
    return most


async def test_bybit_history_pages_and_candles_go_out_together(
    logged_sim: tuple[ExchangeSimulator, list[Entry]], tmp_path: Path
) -> None:
    """10 days of 5-minute Bybit open interest: 15 open-interest pages (200 rows) and 3 mark-price candle
    pages (1000), paced by the documented limits (default settings): five at a time from the first page to
    the last, never more, candles and open interest in the same pool, nothing refused."""
    sim, log = logged_sim
    exchanges = {"bybit": {"ccxt": {**sim.ccxt_overrides("bybit"), "timeout": 10_000}}}
    settings = Settings.model_validate({"catalog_path": str(tmp_path / "catalog"), "exchanges": exchanges})
    start = now_ns() - 10 * NS_PER_DAY
    report = await run_fetch(settings, FetchRequest(OPEN_INTEREST, ["BTCUSDT-PERP"], ["bybit"], start=start))
    assert report.exchanges[0].error is None
    assert sum(sim.limit_rejections.values()) == 0

    oi = [e for e in log if e[2] == "/v5/market/open-interest"]
    marks = [e for e in log if e[2] == "/v5/market/mark-price-kline"]
    markets = [e for e in log if e[2] == "/v5/market/instruments-info"]
    assert (len(oi), len(marks)) == (15, 3)
    history = oi + marks
    assert _most_in_flight(log) <= BYBIT.max_concurrency
    assert _most_in_flight(history) == BYBIT.max_concurrency
    # Open-interest pages do not wait for the candles: one goes out before the last candle page is answered.
    assert min(a for a, _, _ in oi) < max(b for _, b, _ in marks)
    # History starts once the markets are in (the symbols are checked on them first).
    assert min(a for a, _, _ in history) >= max(b for _, b, _ in markets)
    rows = CatalogReader(tmp_path / "catalog").query(OPEN_INTEREST, [INST.instrument_id]).num_rows
    assert rows >= 10 * 24 * 12


async def test_every_exchange_is_closed_at_once(
    sim: ExchangeSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ccxt's close() waits `timeout_on_exit` (250 ms by default) for aiohttp's connections: the clients are
    closed together, not one after another. Each close starts before any ends, and every one ends."""
    events: list[tuple[str, str]] = []
    close = ExchangeClient.close

    async def recorded(self: ExchangeClient) -> None:
        events.append(("start", self.name))
        await close(self)
        events.append(("end", self.name))

    monkeypatch.setattr(ExchangeClient, "close", recorded)
    settings = Settings.model_validate(sim_settings(sim, tmp_path / "catalog"))
    names = ["binance", "bybit", "hyperliquid"]
    async with open_exchanges(settings, names) as exchanges:
        for name in names:
            assert await exchanges.client(name) is not None
    assert [kind for kind, _ in events[:3]] == ["start"] * 3
    assert sorted(name for kind, name in events if kind == "end") == names
