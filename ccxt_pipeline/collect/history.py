"""What every history fetch shares: what the catalog already holds, checkpointed storing, and the result.

History is stored as it arrives, in checkpoints (every `CHECKPOINT_ROWS` rows or `CHECKPOINT_SECONDS`,
and at the end), so a failure or a kill keeps what came, and the next run, which plans from what is
stored, fetches only the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from ccxt_pipeline.catalog import CatalogReader
from ccxt_pipeline.catalog.layout import instrument_dir, overlapping_files
from ccxt_pipeline.catalog.schema import FUNDING_RATE, DataKind
from ccxt_pipeline.collect.plan import Range
from ccxt_pipeline.errors import ExchangeError, RecordError
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.timeutil import NS_PER_MINUTE

CHECKPOINT_ROWS = 2_000
CHECKPOINT_SECONDS = 2.0

Store = Callable[[pa.Table], Awaitable[None]]
"""Where fetched rows go (the catalog writer, or a list when nothing is stored)."""


@dataclass(frozen=True)
class Stored:
    """What the catalog holds of one instrument's series inside the requested range."""

    times: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    """`ts_init` of the stored rows, sorted."""
    intervals: Sequence[int | None] = ()
    """Funding only: each row's interval in ns (None: unknown), beside `times`."""
    gaps: Sequence[Range] = ()
    """Recorded coverage gaps of this data type: ranges the exchange could not serve, not asked for again."""


@dataclass
class History:
    """The outcome of one instrument's history fetch: rows stored, the gaps the exchange could not fill,
    notes for the user, and the windows (pages) that failed for good."""

    kind: DataKind
    rows: int = 0
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    windows: int = 0
    failed: list[Range] = field(default_factory=list)
    error: ExchangeError | None = None
    """The last error of a failed window."""


P = TypeVar("P")


class Checkpoints(Generic[P]):
    """Checkpoints of raw parts (one page's rows, say), made into one table per checkpoint by `build` in a
    worker thread. Building and validating a table page by page on the event loop held up the requests in
    flight (a conformed table costs a few ms whatever its size, most of it in Arrow's group-by); one table
    per checkpoint, built off the loop, costs the loop nothing.

    A part is taken out only once its table is built, so a flush interrupted while building (Ctrl-C) leaves
    it for the next flush. A checkpoint holding a bad part (RecordError) stores the parts that build, then
    raises the first error: no good row is dropped for a bad one beside it. Parts that are tables already:
    `tables_checkpoints`."""

    def __init__(
        self,
        store: Store,
        build: Callable[[Sequence[P]], pa.Table],
        *,
        rows: int = CHECKPOINT_ROWS,
        seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        self._store = store
        self._build = build
        self._rows = rows
        self._seconds = seconds
        self._parts: list[tuple[P, int]] = []
        self._buffered = 0
        self._since = time.monotonic()
        self.stored = 0

    async def add(self, part: P, rows: int) -> None:
        """Buffer `part`, which holds `rows` rows (a part without rows is not kept)."""
        if rows:
            self._parts.append((part, rows))
            self._buffered += rows
        if self._buffered >= self._rows or (
            self._buffered and time.monotonic() - self._since >= self._seconds
        ):
            await self.flush()

    async def flush(self) -> None:
        self._since = time.monotonic()
        if not self._parts:
            return
        taken = list(self._parts)
        table, error = await asyncio.to_thread(self._build_parts, [p for p, _ in taken])
        del self._parts[: len(taken)]
        self._buffered -= sum(n for _, n in taken)
        if table is not None and table.num_rows:
            await self._store(table)
            self.stored += table.num_rows
        if error is not None:
            raise error

    def _build_parts(self, parts: list[P]) -> tuple[pa.Table | None, RecordError | None]:
        """One table of every part; if one is bad, the table of the others and the first error."""
        try:
            return self._build(parts), None
        except RecordError as exc:
            if len(parts) == 1:
                return None, exc
            error = exc
        tables = []
        first: RecordError | None = None
        for part in parts:
            try:
                tables.append(self._build([part]))
            except RecordError as exc:
                first = first or exc
        return (pa.concat_tables(tables) if tables else None), first or error


def tables_checkpoints(
    store: Store, *, rows: int = CHECKPOINT_ROWS, seconds: float = CHECKPOINT_SECONDS
) -> Checkpoints[pa.Table]:
    """Checkpoints of tables already built (funding's windows): each checkpoint is their concatenation."""
    return Checkpoints[pa.Table](
        store,
        lambda tables: pa.concat_tables(tables) if len(tables) > 1 else tables[0],
        rows=rows,
        seconds=seconds,
    )


class Hooks(Protocol):
    """Progress callbacks of a history fetch."""

    def plan(self, windows: int) -> None: ...

    def advance(self, rows: int) -> None: ...


def read_stored(reader: CatalogReader | None, kind: DataKind, iid: str, start: int, end: int) -> Stored:
    """What the catalog holds of the instrument in [start, end]: the stored times (only the `ts_init`
    column, and for funding the intervals, of the files overlapping the range) and the recorded gaps."""
    if reader is None:
        return Stored()
    gaps = [Range(a, b) for a, b in reader.recorded_gaps(iid, kind, start, end)]
    if not overlapping_files(instrument_dir(reader.root, kind, iid), start, end):
        # Nothing stored in the range (a first backfill): answered from the file names, without building an
        # Arrow table, which pyarrow's first import of pandas would hold up (`run.warm_arrow`).
        return Stored(gaps=gaps)
    columns = ("ts_init", "interval_minutes") if kind is FUNDING_RATE else ("ts_init",)
    table = reader.read_columns(kind, iid, columns, start, end)
    times = table.column("ts_init").to_numpy()
    if kind is not FUNDING_RATE:
        return Stored(times=times, gaps=gaps)
    intervals = [
        None if m is None else m * NS_PER_MINUTE for m in table.column("interval_minutes").to_pylist()
    ]
    return Stored(times=times, intervals=intervals, gaps=gaps)
