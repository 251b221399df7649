"""The batching writer: one bounded queue in, the catalog out, at least once per flush interval.

Durability: records reach disk (atomic file, fsync) within `flush_seconds` of arriving, so a SIGKILL loses
at most that much; on a clean stop (SIGINT/SIGTERM) the queue is drained and flushed before exit.

Records are routed by their catalog `DataKind` (`ROUTES`): liquidations go to minute files and may be
dropped past the memory bound; coverage gaps are written as they are and never dropped. Instrument
definitions the streams meet are queued here too (`define`) and written by the same flush, in the
worker thread, never in a socket's receive callback.

When the catalog cannot be written (disk full, quota, read-only, permission) nothing stops: the sockets
stay open, the records of every failed flush are kept in memory, oldest first, and every flush tries
again, so they are written as soon as space returns. The memory is bounded: past `max_pending` records,
the oldest are dropped and a `CoverageGap` records exactly the time range of what was dropped, per
instrument (written with the rest when space returns). `status()` says so for the health line.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, CatalogWriter, DataKind, WriteResult, kind_of
from ccxt_pipeline.catalog.definitions import ensure_definition
from ccxt_pipeline.catalog.files import CatalogWriteError
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.timeutil import NS_PER_SECOND

log = logging.getLogger(__name__)

BUCKET_NS = 60 * NS_PER_SECOND
"""Stream rows go to one file per instrument per minute (about 1,440 files a day, not one per flush)."""

MAX_PENDING = 100_000
"""Records kept in memory while the catalog cannot be written: about 120 MB of liquidations, hours of
Binance's whole-market stream."""

_WHY = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "catalog read-only"}


@dataclass(frozen=True)
class Route:
    """How the stream writer stores one kind of record."""

    bucket_ns: int | None
    """Files per time bucket (merged into on each flush), or None: the catalog's own file layout."""
    droppable: bool
    """May be dropped (and recorded as a gap) past the memory bound while the catalog cannot be written."""


ROUTES: Mapping[str, Route] = {
    LIQUIDATION.name: Route(bucket_ns=BUCKET_NS, droppable=True),
    COVERAGE_GAP.name: Route(bucket_ns=None, droppable=False),  # few and small; what a drop leaves behind
}
_OTHER = Route(bucket_ns=None, droppable=False)

DefinitionFailed = Callable[[str, str], None]
"""Told (exchange, error text) when an instrument definition could not be written."""


def _write(writer: CatalogWriter, records: list[Record], bucket_ns: int | None = None) -> WriteResult:
    """`writer.write` in a worker thread, then Arrow's freed blocks handed back from that same thread.

    The merge into the minute's file reads and rewrites it in Arrow. Arrow's allocator (mimalloc) keeps
    freed pages per thread, and `release_unused` collects only the calling thread's, so it is called here,
    not from the event loop: without it a 5,000 events/s burst left about 55 MB resident for good
    (benchmarks/liquidation_burst.py). It costs well under 1 ms."""
    try:
        return writer.write(records, bucket_ns=bucket_ns)
    finally:
        pa.default_memory_pool().release_unused()


@dataclass
class _Definition:
    inst: Instrument
    market: Any
    """ccxt's market (its `info` is the exchange's own row)."""
    ts_ns: int
    failed: bool = False


@dataclass
class _Dropped:
    """Records of one series dropped while the catalog could not be written: a gap to record."""

    exchange: str
    instrument_id: str
    kind: DataKind
    first_ns: int
    last_ns: int
    count: int
    why: str


class BatchingWriter:
    """Drains `queue` into the catalog (or only into `on_records` with no catalog)."""

    def __init__(
        self,
        writer: CatalogWriter | None,
        queue_size: int,
        flush_seconds: float,
        on_records: Callable[[list[Record]], None] | None = None,
        *,
        max_pending: int = MAX_PENDING,
        on_status: Callable[[str | None], None] | None = None,
        on_definition_failed: DefinitionFailed | None = None,
    ) -> None:
        self.writer = writer
        self.queue: asyncio.Queue[list[Record]] = asyncio.Queue(maxsize=queue_size)
        self.flush_seconds = flush_seconds
        self.on_records = on_records
        self.max_pending = max_pending
        self.on_status = on_status
        """Called with `status()` whenever it changes (at most once per flush)."""
        self.on_definition_failed = on_definition_failed
        self.written: Counter[str] = Counter()
        """Rows written, by kind name."""
        self.flushes = 0
        self.dropped = 0
        """Batches refused because the queue was full (never expected: the writer is far faster than any
        stream); counted and logged loudly, since each one is data lost."""
        self.pending: list[Record] = []
        """Records a failed flush kept, oldest first: written by the next flush that succeeds."""
        self.blocked: str | None = None
        """Why the catalog cannot be written right now (`disk full`, ...); None while it can."""
        self.dropped_records = 0
        """Records dropped because `pending` reached `max_pending` (each range is recorded as a gap)."""
        self.unsaved = 0
        """Records still unwritten when the writer stopped (the catalog never became writable again)."""
        self._dropped: dict[tuple[str, str], _Dropped] = {}
        self._definitions: dict[str, _Definition] = {}
        """Instrument definitions to write, by instrument id (kept until written)."""
        self._defined: set[str] = set()
        self._status: str | None = None

    @property
    def rows_written(self) -> int:
        return self.written[LIQUIDATION.name]

    @property
    def gaps_written(self) -> int:
        return self.written[COVERAGE_GAP.name]

    def put(self, records: list[Record]) -> None:
        """Called from the sockets' callbacks (synchronous): never blocks."""
        try:
            self.queue.put_nowait(records)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("liquidation queue full: %d records dropped", len(records))

    def define(self, inst: Instrument, market: Any, ts_ns: int) -> None:
        """Queue `inst`'s definition for the next flush (called from the sockets' callbacks: no I/O)."""
        if self.writer is None or inst.instrument_id in self._defined:
            return
        self._definitions.setdefault(inst.instrument_id, _Definition(inst, market, ts_ns))

    def status(self) -> str | None:
        """`disk full: 25 events waiting` while the catalog cannot be written; None while all is well."""
        if self.blocked is None:
            return None
        text = f"{self.blocked}: {len(self.pending)} events waiting"
        if self.dropped_records:
            text += f", {self.dropped_records} dropped (recorded as gaps)"
        return text

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_seconds` until `stop` is set, then drain and flush what is left.

        Flushes start on a fixed beat (not `flush_seconds` after the previous one ended), so a record
        waits at most `flush_seconds` plus one flush; a flush that overran is followed at once by the next.
        """
        deadline = time.monotonic() + self.flush_seconds
        while not stop.is_set():
            batch: list[Record] = []
            while (remaining := deadline - time.monotonic()) > 0 and not stop.is_set():
                try:
                    batch.extend(await asyncio.wait_for(self.queue.get(), timeout=min(remaining, 0.1)))
                except TimeoutError:
                    continue
                # Take everything queued meanwhile: one socket read puts many messages per turn of the
                # loop, and one get per turn fell behind at 5,000 events/s (benchmarks/liquidation_burst.py).
                self._take_queued(batch)
            self._take_queued(batch)
            await self._flush(batch)
            deadline = max(deadline + self.flush_seconds, time.monotonic())
        await self.drain()

    def _take_queued(self, batch: list[Record]) -> None:
        while not self.queue.empty():
            batch.extend(self.queue.get_nowait())

    async def drain(self) -> None:
        batch: list[Record] = []
        self._take_queued(batch)
        await self._flush(batch)
        self.unsaved = len(self.pending)
        if self.blocked is not None:
            log.error(
                "stopped with %d events not stored (%s)%s",
                self.unsaved,
                self.blocked,
                f"; {self.dropped_records} dropped before" if self.dropped_records else "",
            )

    async def _flush(self, batch: list[Record]) -> None:
        """Store `batch` and what earlier flushes kept, then show it (`on_records`): stored first, so
        that a failing printer costs no row."""
        if self.writer is not None:
            self.pending.extend(batch)
            await self._store(self.writer)
        if batch and self.on_records is not None:
            self.on_records(batch)

    async def _store(self, writer: CatalogWriter) -> None:
        """The records first (their durability is bounded by the flush interval), then any instrument
        definitions queued (metadata: a few fsynced files that must not delay the events)."""
        await self._store_pending(writer)
        if self._definitions:
            await self._write_definitions(writer)

    async def _store_pending(self, writer: CatalogWriter) -> None:
        if not self.pending and not self._dropped:
            return
        try:
            await self._write_pending(writer)
        except (OSError, CatalogError) as exc:
            self._blocked(exc)
            self._bound()
        else:
            if self.blocked is not None:
                log.warning("catalog writable again: every event kept meanwhile is stored")
            self.blocked = None
            self.flushes += 1
        self._report()

    async def _write_definitions(self, writer: CatalogWriter) -> None:
        """Write the queued definitions; one that fails (disk full, read-only) is told to its exchange once
        and tried again at the next flush."""
        for iid, d in list(self._definitions.items()):
            try:
                await asyncio.to_thread(ensure_definition, writer.root, d.inst, d.market, d.ts_ns)
            except (OSError, CatalogError) as exc:  # the disk: try again at the next flush
                if not d.failed:
                    d.failed = True
                    self._definition_failed(d, exc)
                continue
            except (
                AttributeError,
                KeyError,
                TypeError,
                ValueError,
                ArithmeticError,
            ) as exc:  # market not understood
                self._definition_failed(d, exc)
            else:
                self._defined.add(iid)
            del self._definitions[iid]

    def _definition_failed(self, d: _Definition, exc: Exception) -> None:
        text = f"instrument definition not written ({d.inst.instrument_id}): {exc}"
        log.warning("%s: %s", d.inst.exchange, text)
        if self.on_definition_failed is not None:
            self.on_definition_failed(d.inst.exchange, text)

    async def _write_pending(self, writer: CatalogWriter) -> None:
        """Write `pending` one series (kind and instrument) at a time, taking each off `pending` once it
        is stored: a flush that fails half-way keeps only what is not yet written."""
        if self._dropped:
            gaps = self._drop_gaps()
            self.written[COVERAGE_GAP.name] += (await asyncio.to_thread(_write, writer, gaps)).rows_written
            self._dropped.clear()
        series: dict[tuple[DataKind, str], list[Record]] = {}
        for r in self.pending:
            series.setdefault((kind_of(type(r)), r.instrument_id), []).append(r)
        done: set[int] = set()
        try:
            for (kind, _), records in series.items():
                route = ROUTES.get(kind.name, _OTHER)
                result = await asyncio.to_thread(_write, writer, records, route.bucket_ns)
                self.written[kind.name] += result.rows_written
                done.update(id(r) for r in records)
        finally:
            if done:
                self.pending = [r for r in self.pending if id(r) not in done]

    def _blocked(self, exc: OSError | CatalogError) -> None:
        code = exc.errno if isinstance(exc, OSError | CatalogWriteError) else None
        why = _WHY.get(code or 0) or f"cannot write: {str(exc)[:200]}"
        if self.blocked is None:
            log.error(
                "%s: %d events kept in memory (at most %d), written when the catalog can be written again",
                exc,
                len(self.pending),
                self.max_pending,
            )
        self.blocked = why

    def _bound(self) -> None:
        """Drop the oldest records past `max_pending`, recording what was dropped as gaps."""
        excess = len(self.pending) - self.max_pending
        if excess <= 0:
            return
        oldest, self.pending = self.pending[:excess], self.pending[excess:]
        count = 0
        for r in oldest:
            kind = kind_of(type(r))
            if not ROUTES.get(kind.name, _OTHER).droppable:
                self.pending.append(r)
                continue
            key = (r.instrument_id, kind.name)
            d = self._dropped.get(key)
            if d is None:
                d = _Dropped(
                    r.exchange, r.instrument_id, kind, r.ts_init, r.ts_init, 0, self.blocked or "disk full"
                )
                self._dropped[key] = d
            d.first_ns, d.last_ns = min(d.first_ns, r.ts_init), max(d.last_ns, r.ts_init)
            d.count += 1
            count += 1
        self.dropped_records += count
        log.error("%s: the %d oldest events kept were dropped (recorded as gaps)", self.blocked, count)

    def _drop_gaps(self) -> list[Record]:
        """One gap per series: from the first to the last event dropped (every event between was dropped:
        the oldest go first, and a series arrives in time order)."""
        return [
            CoverageGap.between(
                d.kind,
                d.exchange,
                d.instrument_id,
                d.first_ns,
                d.last_ns,
                f"{d.count} events dropped while the catalog could not be written ({d.why})",
            )
            for d in self._dropped.values()
        ]

    def _report(self) -> None:
        status = self.status()
        if status != self._status and self.on_status is not None:
            self.on_status(status)
        self._status = status
