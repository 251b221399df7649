"""Running liquidation streams across exchanges into the catalog, until stopped or for a duration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccxt_pipeline.catalog import CatalogWriter
from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.exchanges.errors import scrub
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument, resolve_many
from ccxt_pipeline.models import Record
from ccxt_pipeline.settings import ExchangeSettings, Settings
from ccxt_pipeline.stream.every import run_every_perpetual
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.source import run_source
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.stream.writer import BatchingWriter
from ccxt_pipeline.timeutil import now_ns
from ccxt_pipeline.venues import Venue, get_venue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamRequest:
    symbols: Sequence[str] = ()
    """Empty: the `symbols` setting (unless `all_market`)."""
    exchanges: Sequence[str] = ()
    """Empty: every enabled exchange that has a stream."""
    all_market: bool = False
    duration_s: float | None = None
    store: bool = True


@dataclass
class StreamSummary:
    seconds: float
    health: dict[str, ExchangeHealth]
    rows_written: int
    gaps_written: int
    dropped_batches: int
    notes: list[str] = field(default_factory=list)
    never_connected: dict[str, str] = field(default_factory=dict)
    """Exchanges whose stream never opened a connection, and why (their last error)."""
    dropped_events: int = 0
    """Events dropped while the catalog could not be written (past the writer's memory bound; gaps)."""
    unsaved_events: int = 0
    """Events still unwritten at the stop: the catalog never became writable again."""
    storage: str | None = None
    """Why the catalog could not be written at the stop (`disk full`, ...), if it could not."""
    failure: str | None = None
    """Why the stream stopped before it was asked to (the catalog writer failed), if it did."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "rows_written": self.rows_written,
            "gaps_written": self.gaps_written,
            "dropped_batches": self.dropped_batches,
            "exchanges": {n: h.as_dict() for n, h in self.health.items()},
            "notes": self.notes,
            "never_connected": self.never_connected,
            "dropped_events": self.dropped_events,
            "unsaved_events": self.unsaved_events,
            "storage": self.storage,
            "failure": self.failure,
        }


def plan_stream(
    settings: Settings, request: StreamRequest
) -> tuple[dict[str, list[Instrument] | None], list[str]]:
    """Which instruments to subscribe on which exchange (None: the whole market; an empty list: every linear
    perpetual the exchange lists, for `symbols: all` where it has no whole-market stream), checked offline.

    An exchange named with `-e` that has no stream (or no all-market stream for `--all`) is bad input; one
    that is merely enabled in settings is skipped with a note.
    """
    explicit = bool(request.exchanges)
    names = [get_venue(e).name for e in request.exchanges] if explicit else settings.enabled_exchanges()
    every = not request.symbols and not request.all_market and settings.all_symbols  # `symbols: all`
    symbols = list(request.symbols) or ([] if request.all_market else settings.symbol_list())
    if not symbols and not request.all_market and not every:
        raise PipelineError(
            "no symbol to stream: name symbols, ask for the whole market, or set `symbols` in settings"
        )
    plan: dict[str, list[Instrument] | None] = {}
    notes: list[str] = []
    for name in dict.fromkeys(names):
        venue = get_venue(name)
        problem = None
        if venue.liquidations is None:
            problem = f"{name} {venue.no_liquidations_reason}"
        elif request.all_market and not request.symbols and not venue.liquidations.all_market:
            problem = f"{name} has no all-market liquidation stream; name the symbols instead"
        if problem is not None:
            if explicit:
                raise PipelineError(problem)
            notes.append(problem)
            continue
        assert venue.liquidations is not None
        if (request.all_market or every) and venue.liquidations.all_market:
            plan[name] = None
        elif every:
            plan[name] = []  # resolved from its markets when the stream opens (stream/every.py)
        else:
            plan[name] = resolve_many(symbols, [name])
    if not plan:
        raise PipelineError("no exchange to stream from: " + "; ".join(notes))
    return plan, notes


class LiquidationStream:
    """Liquidations from every planned exchange into one queue and the catalog.

    `run` supervises one task per exchange and the writer in a task group: an exchange that fails never
    stops the others (its health says why), and a writer that fails stops the stream at once (every
    exchange's health and the summary say why) after storing whatever it still can.
    """

    def __init__(
        self,
        settings: Settings,
        request: StreamRequest,
        *,
        on_records: Callable[[list[Record]], None] | None = None,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.settings = settings
        self.request = request
        self.plan, self.notes = plan_stream(settings, request)
        self.writer = CatalogWriter(settings.catalog_path) if request.store else None
        self.clock = clock
        self.health = {name: ExchangeHealth(name) for name in self.plan}
        self.batcher = BatchingWriter(
            self.writer,
            settings.stream.queue_size,
            settings.stream.flush_seconds,
            on_records,
            on_definition_failed=self._definition_failed,
        )
        self.taps = {name: self._tap(get_venue(name), self.plan[name]) for name in self.plan}
        self.failure: str | None = None
        """Why the writer failed, once it has."""

    def _tap(self, venue: Venue, instruments: list[Instrument] | None) -> Tap:
        gap_ids = (
            [i.instrument_id for i in instruments] if instruments else [f"MARKET.{venue.nautilus_venue}"]
        )
        define = self.batcher.define if self.writer is not None else None
        return Tap(venue, self.health[venue.name], self.batcher.put, self.clock, gap_ids, define)

    async def run(self, stop: asyncio.Event) -> StreamSummary:
        """Stream until `stop` is set, the duration passes or the writer fails; then flush everything
        and summarise."""
        started = time.monotonic()
        stop_sources, stop_writer, failed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        policy = RetryPolicy.from_settings(self.settings.retry)
        async with asyncio.TaskGroup() as group:
            sources = [
                group.create_task(self._source(name, instruments, policy, stop_sources))
                for name, instruments in self.plan.items()
            ]
            group.create_task(self._write(stop_writer, failed))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.request.duration_s):
                    await _either(stop, failed)
            stop_sources.set()
            await asyncio.wait(sources)  # each closes its sockets and records a gap still open
            stop_writer.set()
        if self.failure is not None:
            await self._salvage()
        return self._summary(time.monotonic() - started)

    async def _source(
        self, name: str, instruments: list[Instrument] | None, policy: RetryPolicy, stop: asyncio.Event
    ) -> None:
        """One exchange, until `stop`. Its failing for good (markets that never load, or a bug) is told
        in its health and never stops the others."""
        settings = self.settings.exchanges.get(name) or ExchangeSettings()
        try:
            if instruments == []:  # `symbols: all` without a whole-market stream: one topic per symbol
                await run_every_perpetual(self.taps[name], settings, self.settings.stream, policy, stop)
            else:
                await run_source(self.taps[name], settings, self.settings.stream, policy, instruments, stop)
        except PipelineError as exc:
            self.health[name].record_error(str(exc))
            self.health[name].note = f"stopped: {exc}"
        except Exception as exc:
            log.error(
                "%s: liquidation stream failed: %r", name, exc, exc_info=log.isEnabledFor(logging.DEBUG)
            )
            self.health[name].record_error(f"stream failed: {type(exc).__name__}: {exc}")
            self.health[name].note = f"stopped: {type(exc).__name__}: {exc}"
        finally:
            self.health[name].stopped = True

    async def _write(self, stop: asyncio.Event, failed: asyncio.Event) -> None:
        """The writer, until `stop`; if it fails, `failed` is set so that `run` stops at once."""
        try:
            await self.batcher.run(stop)
        except Exception as exc:
            log.debug("the catalog writer failed", exc_info=True)  # the traceback, for a bug report
            self.failure = scrub(f"the catalog writer failed: {type(exc).__name__}: {exc}")
            for health in self.health.values():
                health.record_error(self.failure)
            failed.set()

    async def _salvage(self) -> None:
        """After the writer failed: store what is still queued if the catalog takes it (the gaps the
        sources closed at the stop included); what it does not take is counted as unsaved."""
        try:
            await self.batcher.drain()
        except Exception as exc:
            self.batcher.unsaved = len(self.batcher.pending)
            log.error("%d events not stored after the writer failed: %s", self.batcher.unsaved, exc)

    def _definition_failed(self, exchange: str, text: str) -> None:
        health = self.health.get(exchange)
        if health is not None:
            health.record_error(text)

    def _summary(self, seconds: float) -> StreamSummary:
        return StreamSummary(
            seconds=seconds,
            health=self.health,
            rows_written=self.batcher.rows_written,
            gaps_written=self.batcher.gaps_written,
            dropped_batches=self.batcher.dropped,
            notes=self.notes,
            never_connected=self._never_connected(seconds),
            dropped_events=self.batcher.dropped_records,
            unsaved_events=self.batcher.unsaved,
            storage=self.batcher.blocked,
            failure=self.failure,
        )

    def _never_connected(self, seconds: float) -> dict[str, str]:
        """Exchanges that had something to subscribe but never opened a socket, with the reason."""
        out = {}
        for name, health in self.health.items():
            if health.ever_connected or (health.note or "").startswith("not listed"):
                continue
            out[name] = health.last_error or f"no connection within {seconds:.1f}s"
        return out


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    """Wait until `a` or `b` is set."""
    waits = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
