"""The batching writer: one bounded queue in, the catalog out, at least once per flush interval.

Durability: records reach disk (atomic file, fsync) within `flush_seconds` of arriving, so a SIGKILL loses
at most that much; on a clean stop (SIGINT/SIGTERM) the queue is drained and flushed before exit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ccxt_pipeline.catalog import CatalogWriter
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.timeutil import NS_PER_SECOND

log = logging.getLogger(__name__)

BUCKET_NS = 60 * NS_PER_SECOND
"""Stream rows go to one file per instrument per minute (about 1,440 files a day, not one per flush)."""


class BatchingWriter:
    """Drains `queue` into the catalog (or only into `on_records` with no catalog)."""

    def __init__(
        self,
        writer: CatalogWriter | None,
        queue_size: int,
        flush_seconds: float,
        on_records: Callable[[list[Record]], None] | None = None,
    ) -> None:
        self.writer = writer
        self.queue: asyncio.Queue[list[Record]] = asyncio.Queue(maxsize=queue_size)
        self.flush_seconds = flush_seconds
        self.on_records = on_records
        self.rows_written = 0
        self.gaps_written = 0
        self.flushes = 0
        self.dropped = 0
        """Batches refused because the queue was full (never expected: the writer is far faster than any
        stream); counted and logged loudly, since each one is data lost."""

    def put(self, records: list[Record]) -> None:
        """Called from the sockets' callbacks (synchronous): never blocks."""
        try:
            self.queue.put_nowait(records)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("liquidation queue full: %d records dropped", len(records))

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every `flush_seconds` until `stop` is set, then drain and flush what is left."""
        while not stop.is_set():
            deadline = time.monotonic() + self.flush_seconds
            batch: list[Record] = []
            while (remaining := deadline - time.monotonic()) > 0 and not stop.is_set():
                try:
                    batch.extend(await asyncio.wait_for(self.queue.get(), timeout=min(remaining, 0.1)))
                except TimeoutError:
                    continue
            await self._flush(batch)
        await self.drain()

    async def drain(self) -> None:
        batch: list[Record] = []
        while not self.queue.empty():
            batch.extend(self.queue.get_nowait())
        await self._flush(batch)

    async def _flush(self, batch: list[Record]) -> None:
        if not batch:
            return
        if self.on_records is not None:
            self.on_records(batch)
        if self.writer is None:
            return
        gaps = [r for r in batch if isinstance(r, CoverageGap)]
        rows = [r for r in batch if not isinstance(r, CoverageGap)]
        if rows:
            # Minute files: each flush merges into the current minute's file instead of adding one.
            result = await asyncio.to_thread(self.writer.write, rows, bucket_ns=BUCKET_NS)
            self.rows_written += result.rows_written
        if gaps:
            self.gaps_written += (await asyncio.to_thread(self.writer.write, gaps)).rows_written
        self.flushes += 1
