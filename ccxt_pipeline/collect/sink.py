"""The sink: where fetched rows and checkpoints are written, once the symbol gate opens.

The catalog is opened at the first write (`LazyCatalog`): a run that has nothing to write (an exchange that
cannot be reached, a rerun with everything stored) creates no folder and no lock file.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ccxt_pipeline.catalog import CatalogReader, CatalogWriter, DataKind, WriteResult
from ccxt_pipeline.catalog.definitions import ensure_definition
from ccxt_pipeline.collect.gate import SymbolGate
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import Record
from ccxt_pipeline.timeutil import now_ns


class LazyCatalog:
    """The catalog writer of `root`, opened at the first write. Until then reads go to a reader of the same
    folder (a folder that does not exist yet holds nothing). A catalog that already exists is opened at once,
    so that what an earlier crash left is repaired before anything is read from it."""

    def __init__(self, root: Path, writer: CatalogWriter | None = None) -> None:
        self.root = Path(root)
        self._writer = writer
        self._opening = asyncio.Lock()

    @classmethod
    def at(cls, root: Path) -> LazyCatalog:
        """Check offline that `root` can be created or written (CatalogError if not); open it now only if it
        exists already."""
        root = Path(root).expanduser()
        if root.is_dir():
            return cls(root, CatalogWriter(root))
        check_creatable(root)
        return cls(root)

    @property
    def reader(self) -> CatalogReader:
        return self._writer if self._writer is not None else CatalogReader(self.root)

    async def writer(self) -> CatalogWriter:
        if self._writer is None:
            async with self._opening:
                if self._writer is None:
                    self._writer = await asyncio.to_thread(CatalogWriter, self.root)
        return self._writer


def check_creatable(root: Path) -> None:
    """CatalogError unless `root` could be created: its nearest existing ancestor is a writable folder."""
    probe = root
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise CatalogError(f"catalog path {root} is not writable: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CatalogError(f"catalog path {root} is not writable: permission denied on {probe}")


@dataclass
class Sink:
    """Where rows go: the catalog, once the symbol gate opens; writes run in a worker thread so other
    exchanges' requests keep flowing meanwhile."""

    catalog: LazyCatalog
    gate: SymbolGate

    @property
    def reader(self) -> CatalogReader:
        return self.catalog.reader

    async def write(self, records: Sequence[Record], bucket_ns: int | None = None) -> WriteResult:
        await self.gate.wait()
        writer = await self.catalog.writer()
        return await asyncio.to_thread(functools.partial(writer.write, records, bucket_ns=bucket_ns))

    async def write_table(
        self, kind: DataKind, table: pa.Table, on_written: Callable[[WriteResult], None] | None = None
    ) -> WriteResult:
        """Write `table`; `on_written` is called in the writer's thread as soon as the rows are in the
        catalog, so that they are counted even if this coroutine is cancelled meanwhile (Ctrl-C)."""
        await self.gate.wait()
        writer = await self.catalog.writer()

        def write() -> WriteResult:
            result = writer.write_table(kind, table)
            if on_written is not None:
                on_written(result)
            return result

        return await asyncio.to_thread(write)

    async def define(self, client: ExchangeClient, instruments: Sequence[Instrument]) -> None:
        """Instrument definitions for a BacktestNode, once per instrument."""
        await self.gate.wait()
        writer = await self.catalog.writer()
        now = now_ns()
        for inst in instruments:
            await asyncio.to_thread(
                ensure_definition, writer.root, inst, client.market(inst.ccxt_symbol), now
            )
