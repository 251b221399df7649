"""The streams' batching writer alone, against a catalog whose disk fails and recovers.

The fault is injected where files are written (`pyarrow.parquet.write_table` as the catalog's file layer
calls it), as in tests/test_disk_full.py: our writer code runs unchanged. Each test takes milliseconds:
`drain()` flushes at once, and `run()` is stopped by an event, never by a sleep.
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, CatalogReader, CatalogWriter
from ccxt_pipeline.instruments import Instrument, instrument_for
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.stream.writer import ROUTES, BatchingWriter
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


# --- instrument definitions: queued by the streams' callbacks, written by the flush ------------------------


def binance_btc() -> tuple[Instrument, dict[str, Any]]:
    """BTCUSDT as ccxt parses NautilusTrader's recorded exchangeInfo (tests/fixtures/SOURCES.md)."""
    exchange = ccxt.binanceusdm()
    info = json.loads((Path(__file__).parent / "fixtures/nautilus/binance/exchangeInfo.json").read_text())
    exchange.set_markets([exchange.parse_market(m) for m in info["symbols"]])
    market: dict[str, Any] = exchange.market("BTC/USDT:USDT")
    return instrument_for("binance", "BTC/USDT:USDT", market), market


def definitions(catalog: Path) -> list[str]:
    folder = catalog / "data" / "crypto_perpetual"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_a_definition_is_written_by_the_next_flush_not_when_queued(catalog: Path) -> None:
    batcher, _ = writer(catalog)
    inst, market = binance_btc()
    batcher.define(inst, market, T0)
    batcher.define(inst, market, T0 + 1)  # met again before the flush: one definition
    assert definitions(catalog) == []
    await batcher.drain()
    assert definitions(catalog) == ["BTCUSDT-PERP.BINANCE"]
    batcher.define(inst, market, T0 + 2)  # already written: nothing queued
    assert not batcher._definitions


async def test_a_definition_the_disk_refuses_is_told_once_and_written_when_space_returns(
    catalog: Path, disk: Disk
) -> None:
    told: list[tuple[str, str]] = []
    batcher = BatchingWriter(
        CatalogWriter(catalog, durable=False),
        100,
        0.01,
        on_definition_failed=lambda exchange, text: told.append((exchange, text)),
    )
    inst, market = binance_btc()
    disk.full()
    batcher.define(inst, market, T0)
    batcher.put([liq(0)])
    await batcher.drain()
    await batcher.drain()
    assert [(ex, text.split(":")[0]) for ex, text in told] == [
        ("binance", "instrument definition not written (BTCUSDT-PERP.BINANCE)")
    ]
    assert "No space left on device" in told[0][1] or "ENOSPC" in told[0][1]
    disk.freed()
    await batcher.drain()
    assert definitions(catalog) == ["BTCUSDT-PERP.BINANCE"]
    assert liquidations(catalog) == [liq(0)]


async def test_a_market_the_definition_cannot_be_built_from_is_told_and_dropped(catalog: Path) -> None:
    told: list[str] = []
    batcher = BatchingWriter(
        CatalogWriter(catalog, durable=False),
        100,
        0.01,
        on_definition_failed=lambda exchange, text: told.append(text),
    )
    inst, market = binance_btc()
    unreadable = {**market, "info": None, "precision": {"price": "x", "amount": "y"}}
    batcher.define(inst, unreadable, T0)
    batcher.put([liq(0)])
    await batcher.drain()
    await batcher.drain()
    assert liquidations(catalog) == [liq(0)]  # the records are stored all the same
    assert len(told) == 1
    assert told[0].startswith("instrument definition not written (BTCUSDT-PERP.BINANCE): ")
    assert definitions(catalog) == []
    assert not batcher._definitions  # never tried again


async def test_records_are_routed_by_their_kind_and_counted_under_its_name(catalog: Path) -> None:
    batcher, _ = writer(catalog)
    gap = CoverageGap.between(LIQUIDATION, "binance", "BTCUSDT-PERP.BINANCE", T0, T0 + 5, "disconnected")
    batcher.put([liq(0), gap, liq(1)])
    await batcher.drain()
    assert dict(batcher.written) == {LIQUIDATION.name: 2, COVERAGE_GAP.name: 1}
    assert (batcher.rows_written, batcher.gaps_written) == (2, 1)
    assert ROUTES[COVERAGE_GAP.name].droppable is False
    assert ROUTES[LIQUIDATION.name].bucket_ns is not None


async def test_a_printer_that_fails_costs_no_row(catalog: Path) -> None:
    def printer(records: list[Record]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    batcher = BatchingWriter(CatalogWriter(catalog, durable=False), 100, 0.01, printer)
    batcher.put([liq(0), liq(1)])
    with pytest.raises(BrokenPipeError):
        await batcher.drain()
    assert liquidations(catalog) == [liq(0), liq(1)]  # stored before they were shown
