"""The streams' batching writer alone, against a catalog whose disk fails and recovers.

The fault is injected where files are written (`pyarrow.parquet.write_table` as the catalog's file layer
calls it), as in tests/test_disk_full.py: our writer code runs unchanged. Each test takes milliseconds:
`drain()` flushes at once, and `run()` is stopped by an event, never by a sleep.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, CatalogReader, CatalogWriter
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.stream.writer import BatchingWriter
from tests.strategies import T0, liq

BYBIT = "BTCUSDT-LINEAR.BYBIT"


class Disk:
    """The catalog's disk: refuses file writes with `code` while `failing` is not zero (each refusal counts
    one down; -1: for ever), and the writes numbered in `nth`."""

    def __init__(self) -> None:
        self.failing = 0
        self.code = errno.ENOSPC
        self.writes = 0
        self.refused = 0
        self.nth: set[int] = set()

    def full(self, writes: int = -1, code: int = errno.ENOSPC) -> None:
        self.failing, self.code = writes, code

    def refuse_next(self, *nths: int) -> None:
        """Refuse the `nths` file writes from now (1: the next one)."""
        self.nth = {self.writes + n for n in nths}

    def refuses(self) -> bool:
        self.writes += 1
        if self.writes in self.nth or self.failing:
            self.failing -= 1 if self.failing > 0 else 0
            self.refused += 1
            return True
        return False

    def freed(self) -> None:
        self.failing = 0


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    import pyarrow.parquet as pq  # the module the catalog's file layer writes with

    state = Disk()
    real = pq.write_table

    def write_table(*args: Any, **kwargs: Any) -> None:
        if state.refuses():
            raise OSError(state.code, errno.errorcode[state.code])
        real(*args, **kwargs)

    monkeypatch.setattr("ccxt_pipeline.catalog.files.pq.write_table", write_table)
    return state


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "catalog"
    assert not list((tmp_path / "catalog").rglob("*.tmp"))  # no temp file left behind


def writer(catalog: Path, **kw: Any) -> tuple[BatchingWriter, list[str | None]]:
    statuses: list[str | None] = []
    batcher = BatchingWriter(
        CatalogWriter(catalog, durable=False), 100, 0.01, on_status=statuses.append, **kw
    )
    return batcher, statuses


def liquidations(catalog: Path) -> list[Any]:
    return CatalogReader(catalog).query_records(LIQUIDATION)


async def test_a_failed_flush_keeps_every_record_and_the_next_one_writes_them(
    catalog: Path, disk: Disk
) -> None:
    batcher, statuses = writer(catalog)
    events: list[Record] = [liq(i) for i in range(25)]
    disk.full()
    batcher.put(events[:10])
    await batcher.drain()
    batcher.put(events[10:])
    await batcher.drain()
    assert batcher.status() == "disk full: 25 events waiting"
    assert (batcher.rows_written, batcher.flushes, len(batcher.pending)) == (0, 0, 25)
    disk.freed()
    await batcher.drain()
    assert batcher.status() is None
    assert (batcher.rows_written, batcher.flushes, batcher.unsaved) == (25, 1, 0)
    assert liquidations(catalog) == events
    assert statuses == ["disk full: 10 events waiting", "disk full: 25 events waiting", None]


async def test_a_flush_failing_half_way_keeps_only_what_was_not_written(catalog: Path, disk: Disk) -> None:
    batcher, _ = writer(catalog)
    binance: list[Record] = [liq(i) for i in range(5)]
    bybit: list[Record] = [liq(i, exchange="bybit", instrument_id=BYBIT) for i in range(5)]
    disk.refuse_next(2)  # the first series is written, the second refused: only it stays pending
    batcher.put(binance + bybit)
    await batcher.drain()
    assert batcher.pending == bybit
    assert batcher.rows_written == 5
    await batcher.drain()
    assert batcher.pending == []
    assert batcher.rows_written == 10
    stored = liquidations(catalog)
    assert sorted(stored, key=lambda r: (r.instrument_id, r.ts_init)) == bybit + binance  # each once


async def test_past_the_memory_bound_the_oldest_are_dropped_and_recorded_as_one_gap(
    catalog: Path, disk: Disk
) -> None:
    batcher, _ = writer(catalog, max_pending=10)
    events: list[Record] = [liq(i) for i in range(25)]
    disk.full()
    for i in range(0, 25, 5):
        batcher.put(events[i : i + 5])
        await batcher.drain()
    assert batcher.pending == events[15:]  # the newest are kept
    assert batcher.dropped_records == 15
    assert batcher.status() == "disk full: 10 events waiting, 15 dropped (recorded as gaps)"
    disk.freed()
    await batcher.drain()
    assert liquidations(catalog) == events[15:]
    (gap,) = CatalogReader(catalog).query_records(COVERAGE_GAP)
    assert isinstance(gap, CoverageGap)
    assert (gap.ts_event, gap.end_ns) == (events[0].ts_init, events[14].ts_init)
    assert gap.reason == "15 events dropped while the catalog could not be written (disk full)"
    assert batcher.gaps_written == 1


async def test_gaps_waiting_in_memory_are_never_dropped(catalog: Path, disk: Disk) -> None:
    batcher, _ = writer(catalog, max_pending=3)
    gap = CoverageGap(
        exchange="binance",
        instrument_id="BTCUSDT-PERP.BINANCE",
        data_type="liquidation",
        ts_event=T0,
        ts_init=T0,
        end_ns=T0 + 5,
        reason="disconnected",
    )
    disk.full()
    batcher.put([gap, *[liq(i) for i in range(6)]])
    await batcher.drain()
    assert gap in batcher.pending
    disk.freed()
    await batcher.drain()
    stored_gaps = CatalogReader(catalog).query_records(COVERAGE_GAP)
    assert gap in stored_gaps
    assert len(stored_gaps) == 2  # the recorded one and the one for what was dropped


async def test_a_read_only_catalog_is_named_and_stopping_counts_what_is_unsaved(
    catalog: Path, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    batcher, statuses = writer(catalog)
    disk.full(code=errno.EROFS)
    batcher.put([liq(i) for i in range(7)])
    await batcher.drain()
    assert statuses == ["catalog read-only: 7 events waiting"]
    assert batcher.unsaved == 7
    assert "stopped with 7 events not stored (catalog read-only)" in caplog.text
    assert liquidations(catalog) == []


async def test_run_keeps_flushing_and_writes_everything_once_the_disk_recovers(
    catalog: Path, disk: Disk
) -> None:
    recovered = asyncio.Event()
    seen: list[str | None] = []

    def on_status(status: str | None) -> None:
        seen.append(status)
        if status is None:
            recovered.set()

    batcher = BatchingWriter(CatalogWriter(catalog, durable=False), 100, 0.01, on_status=on_status)
    events: list[Record] = [liq(i) for i in range(30)]
    disk.full(writes=2)  # two flushes fail, the third succeeds
    stop = asyncio.Event()
    running = asyncio.create_task(batcher.run(stop))
    try:
        batcher.put(events[:10])
        async with asyncio.timeout(30):
            await recovered.wait()
        batcher.put(events[10:])
    finally:
        stop.set()
        await running
    assert disk.refused == 2
    assert (seen[0] or "").startswith("disk full: 10 events waiting")
    assert seen[-1] is None
    assert liquidations(catalog) == events  # the rest drained at the stop
    assert (batcher.unsaved, batcher.dropped, batcher.dropped_records) == (0, 0, 0)


async def test_a_full_queue_drops_the_batch_counted_not_raised(catalog: Path) -> None:
    batcher = BatchingWriter(CatalogWriter(catalog, durable=False), 2, 0.01)
    for i in range(3):
        batcher.put([liq(i)])
    assert batcher.dropped == 1
    await batcher.drain()
    assert liquidations(catalog) == [liq(0), liq(1)]
