"""Running liquidation streams across exchanges into the catalog, until stopped or for a duration."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccxt_pipeline.catalog import CatalogWriter
from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument, resolve_many
from ccxt_pipeline.models import Record
from ccxt_pipeline.settings import ExchangeSettings, Settings
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.source import run_source
from ccxt_pipeline.stream.tap import Tap
from ccxt_pipeline.stream.writer import BatchingWriter
from ccxt_pipeline.timeutil import now_ns
from ccxt_pipeline.venues import get_venue


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
        }


def plan_stream(
    settings: Settings, request: StreamRequest
) -> tuple[dict[str, list[Instrument] | None], list[str]]:
    """Which instruments to subscribe on which exchange (None: the whole market), checked offline.

    An exchange named with `-e` that has no stream (or no all-market stream for `--all`) is bad input; one
    that is merely enabled in settings is skipped with a note.
    """
    explicit = bool(request.exchanges)
    names = [get_venue(e).name for e in request.exchanges] if explicit else settings.enabled_exchanges()
    symbols = list(request.symbols) or ([] if request.all_market else list(settings.symbols))
    if not symbols and not request.all_market:
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
        if request.all_market and venue.liquidations.all_market:
            plan[name] = None
        else:
            plan[name] = resolve_many(symbols, [name])
    if not plan:
        raise PipelineError("no exchange to stream from: " + "; ".join(notes))
    return plan, notes


class _WatchedTap(Tap):
    """A tap that remembers whether its websocket ever opened, for the summary (and the exit code)."""

    ever_connected = False

    def connected(self) -> None:
        self.ever_connected = True
        super().connected()


class LiquidationStream:
    """Liquidations from every planned exchange into one queue and the catalog."""

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
        self.taps: dict[str, _WatchedTap] = {}
        self.batcher = BatchingWriter(
            self.writer, settings.stream.queue_size, settings.stream.flush_seconds, on_records
        )

    async def run(self, stop: asyncio.Event) -> StreamSummary:
        """Stream until `stop` is set (or the duration passes); then flush everything and summarise."""
        started = time.monotonic()
        stop_sources, stop_writer = asyncio.Event(), asyncio.Event()
        policy = RetryPolicy.from_settings(self.settings.retry)
        sources = []
        for name, instruments in self.plan.items():
            venue = get_venue(name)
            gap_ids = (
                [i.instrument_id for i in instruments] if instruments else [f"MARKET.{venue.nautilus_venue}"]
            )
            tap = _WatchedTap(venue, self.health[name], self.batcher.put, self.clock, gap_ids)
            self.taps[name] = tap
            tap.definitions_root = self.writer.root if self.writer is not None else None
            settings = self.settings.exchanges.get(name) or ExchangeSettings()
            sources.append(
                asyncio.create_task(
                    self._guarded(
                        run_source(tap, settings, self.settings.stream, policy, instruments, stop_sources),
                        name,
                    )
                )
            )
        writer_task = asyncio.create_task(self.batcher.run(stop_writer))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=self.request.duration_s)
        stop_sources.set()
        await asyncio.gather(*sources)
        stop_writer.set()
        await writer_task
        return StreamSummary(
            seconds=time.monotonic() - started,
            health=self.health,
            rows_written=self.batcher.rows_written,
            gaps_written=self.batcher.gaps_written,
            dropped_batches=self.batcher.dropped,
            notes=self.notes,
            never_connected=self._never_connected(time.monotonic() - started),
            dropped_events=self.batcher.dropped_records,
            unsaved_events=self.batcher.unsaved,
            storage=self.batcher.blocked,
        )

    def _never_connected(self, seconds: float) -> dict[str, str]:
        """Exchanges that had something to subscribe but never opened a socket, with the reason."""
        out = {}
        for name, tap in self.taps.items():
            health = self.health[name]
            if tap.ever_connected or (health.note or "").startswith("not listed"):
                continue
            out[name] = health.last_error or f"no connection within {seconds:.1f}s"
        return out

    async def _guarded(self, source: Any, name: str) -> None:
        """One exchange failing for good (its markets never load) never stops the others."""
        try:
            await source
        except PipelineError as exc:
            self.health[name].record_error(str(exc))
            self.health[name].note = f"stopped: {exc}"
