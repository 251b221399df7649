"""The sink: where fetched rows and checkpoints are written, once the symbol gate opens."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from ccxt_pipeline.catalog import CatalogWriter, DataKind, WriteResult
from ccxt_pipeline.catalog.definitions import ensure_definition
from ccxt_pipeline.collect.gate import SymbolGate
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import Record
from ccxt_pipeline.timeutil import now_ns


@dataclass
class Sink:
    """Where rows go: the catalog, once the symbol gate opens; writes run in a worker thread so other
    exchanges' requests keep flowing meanwhile."""

    writer: CatalogWriter
    gate: SymbolGate

    async def write(self, records: Sequence[Record], bucket_ns: int | None = None) -> WriteResult:
        await self.gate.wait()
        return await asyncio.to_thread(functools.partial(self.writer.write, records, bucket_ns=bucket_ns))

    async def write_table(self, kind: DataKind, table: pa.Table) -> WriteResult:
        await self.gate.wait()
        return await asyncio.to_thread(self.writer.write_table, kind, table)

    async def define(self, client: ExchangeClient, instruments: Sequence[Instrument]) -> None:
        """Instrument definitions for a BacktestNode, once per instrument."""
        await self.gate.wait()
        now = now_ns()
        for inst in instruments:
            await asyncio.to_thread(
                ensure_definition, self.writer.root, inst, client.market(inst.ccxt_symbol), now
            )
