"""Running a fetch across exchanges: input checked before any request, exchanges kept apart.

Order of work, so that bad input never costs a request or a write:
1. exchange names, symbol syntax, period and range are checked;
2. the catalog is opened (an unwritable path fails here);
3. every exchange loads its markets, concurrently; a symbol listed on none of them is bad input;
4. each exchange fetches and writes on its own: one failing (after retries) never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from ccxt_pipeline.catalog import (
    FUNDING_RATE,
    OPEN_INTEREST,
    CatalogReader,
    CatalogWriter,
    DataKind,
    WriteResult,
)
from ccxt_pipeline.catalog.definitions import ensure_definition
from ccxt_pipeline.collect.funding import current_funding, funding_history
from ccxt_pipeline.collect.history import History, Stored
from ccxt_pipeline.collect.open_interest import NO_HISTORY, current_open_interest, open_interest_history
from ccxt_pipeline.collect.plan import Range
from ccxt_pipeline.errors import ExchangeError, InputError, PipelineError, SymbolError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument, resolve, resolve_many
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.settings import ExchangeSettings, Settings
from ccxt_pipeline.timeutil import NS_PER_MINUTE, PERIODS_NS, describe_ns, now_ns
from ccxt_pipeline.venues import get_venue

SNAPSHOT_BUCKET_NS = 10 * NS_PER_MINUTE


class DataType(StrEnum):
    OPEN_INTEREST = "open_interest"
    FUNDING = "funding"


@dataclass(frozen=True)
class FetchRequest:
    data: DataType
    symbols: Sequence[str]
    exchanges: Sequence[str] = ()
    """Empty: every enabled exchange in settings."""
    start: int | None = None
    """None: current values; else a history backfill from here."""
    end: int | None = None
    period: str = "5m"
    store: bool = True


@dataclass
class ExchangeReport:
    exchange: str
    instruments: list[Instrument] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    """Current values."""
    tables: list[pa.Table] = field(default_factory=list)
    """History rows, one Arrow table per instrument."""
    written: int = 0
    already_stored: int = 0
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class FetchReport:
    exchanges: list[ExchangeReport]

    @property
    def failed(self) -> list[ExchangeReport]:
        return [r for r in self.exchanges if r.error is not None]


class Progress:
    """Hooks for progress display; the default does nothing."""

    def plan(self, exchange: str, windows: int) -> None:
        """`exchange` will fetch `windows` more windows."""

    def advance(self, exchange: str, rows: int) -> None:
        """One window of `exchange` is done, with `rows` rows."""


def check_request(settings: Settings, request: FetchRequest, now: int) -> list[str]:
    """Validate what can be validated offline; return the exchange names to use."""
    names = (
        [get_venue(e).name for e in request.exchanges] if request.exchanges else settings.enabled_exchanges()
    )
    names = list(dict.fromkeys(names))
    if not names:
        raise PipelineError("no exchange selected: enable one in settings or name one")
    resolve_many(request.symbols, names)  # syntax, before any request
    if request.start is not None:
        end = request.end if request.end is not None else now
        if request.start > now:
            raise InputError("start", f"the start time {describe_ns(request.start)} is in the future")
        if end < request.start:
            raise InputError(
                "end",
                f"the end time {describe_ns(end)} is before the start time {describe_ns(request.start)}",
            )
        if request.data is DataType.OPEN_INTEREST:
            _check_period(names, request.period)
    return names


def _check_period(names: list[str], period: str) -> None:
    if period not in PERIODS_NS:
        raise InputError("period", f"unknown period {period!r} (periods: {', '.join(PERIODS_NS)})")
    with_history = [get_venue(n) for n in names if get_venue(n).oi_history_periods]
    if not with_history:
        raise PipelineError(f"{', '.join(names)}: {NO_HISTORY}")
    for venue in with_history:
        if period not in venue.oi_history_periods:
            raise InputError(
                "period",
                f"{venue.name} has no {period} open-interest history "
                f"(periods: {', '.join(venue.oi_history_periods)})",
            )


class Exchanges:
    """Exchanges being opened concurrently. Each client is awaited on its own, so an exchange slow to load
    its markets never holds up the others; `errors` says why an exchange could not be opened."""

    def __init__(
        self, opening: dict[str, asyncio.Task[ExchangeClient | None]], errors: dict[str, str]
    ) -> None:
        self._opening = opening
        self.errors = errors

    @property
    def names(self) -> list[str]:
        return list(self._opening)

    async def client(self, name: str) -> ExchangeClient | None:
        """The open client, or None if it could not be opened (see `errors`)."""
        return await self._opening[name]


@contextlib.asynccontextmanager
async def open_exchanges(
    settings: Settings,
    names: Sequence[str],
    policy: RetryPolicy | None = None,
    *,
    clients: ClientFactory = ExchangeClient,
) -> AsyncIterator[Exchanges]:
    """Start opening every exchange at once; on exit, stop what is still opening and close every client.
    `clients` builds each client (tests give one whose HTTP layer is a recorded transport)."""
    policy = policy or RetryPolicy.from_settings(settings.retry)
    errors: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(name: str) -> ExchangeClient | None:
            client = clients(name, settings.exchanges.get(name) or ExchangeSettings(), policy)
            try:
                return await stack.enter_async_context(client)
            except ExchangeError as exc:
                errors[name] = str(exc)
                return None

        tasks = {n: asyncio.create_task(open_one(n)) for n in names}
        try:
            yield Exchanges(tasks, errors)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)


async def run_fetch(
    settings: Settings,
    request: FetchRequest,
    *,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    clock: Callable[[], int] = now_ns,
    clients: ClientFactory = ExchangeClient,
) -> FetchReport:
    """Fetch current values or history for `request`, store them (unless `store` is off) and report."""
    names = check_request(settings, request, clock())
    writer = CatalogWriter(settings.catalog_path) if request.store else None
    async with open_exchanges(settings, names, policy, clients=clients) as exchanges:
        return await fetch_on(exchanges, request, writer, progress=progress, clock=clock)


class _SymbolGate:
    """Holds every write until each exchange has checked the symbols against its markets: a symbol that
    no exchange lists is bad input, and bad input writes nothing. Fetching starts before that."""

    def __init__(self, expected: int) -> None:
        self._pending = expected
        self._opened = 0
        self._unknown: dict[str, list[str]] = {}
        self.settled = asyncio.Event()
        self.error: SymbolError | None = None

    def checked(self, unknown: dict[str, str] | None) -> None:
        """One exchange is done checking (`unknown`: symbol -> why), or could not be opened (None)."""
        if unknown is not None:
            self._opened += 1
            for symbol, why in unknown.items():
                self._unknown.setdefault(symbol, []).append(why)
        self._pending -= 1
        if self._pending == 0:
            for whys in self._unknown.values():
                if self._opened and len(whys) == self._opened:
                    self.error = SymbolError(whys[0])
                    break
            self.settled.set()

    async def wait(self) -> None:
        await self.settled.wait()
        if self.error is not None:
            raise self.error


@dataclass
class _Sink:
    """Where rows go: the catalog, once the symbol gate opens; writes run in a worker thread so other
    exchanges' requests keep flowing meanwhile."""

    writer: CatalogWriter
    gate: _SymbolGate

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


async def fetch_on(
    exchanges: Exchanges,
    request: FetchRequest,
    writer: CatalogWriter | None,
    *,
    progress: Progress | None = None,
    clock: Callable[[], int] = now_ns,
) -> FetchReport:
    """Run `request` on `exchanges` (several requests may share them, and their request limits)."""
    wanted = [get_venue(e).name for e in request.exchanges] if request.exchanges else exchanges.names
    reports = {n: ExchangeReport(n) for n in exchanges.names if n in wanted}
    gate = _SymbolGate(len(reports))
    sink = _Sink(writer, gate) if writer is not None else None
    jobs = [
        asyncio.create_task(
            _exchange_job(exchanges, request, reports[n], sink, gate, progress or Progress(), clock)
        )
        for n in reports
    ]
    try:
        await gate.settled.wait()
        if gate.error is not None:
            raise gate.error
        await asyncio.gather(*jobs)
    finally:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    return FetchReport(list(reports.values()))


async def _exchange_job(
    exchanges: Exchanges,
    request: FetchRequest,
    report: ExchangeReport,
    sink: _Sink | None,
    gate: _SymbolGate,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    """One exchange: wait for its own client, check the symbols on its markets, fetch and store."""
    unknown: dict[str, str] | None = None
    try:
        client = await exchanges.client(report.exchange)
        if client is None:
            report.error = exchanges.errors.get(report.exchange, "could not be opened")
            return
        unknown = {}
        for symbol in request.symbols:
            try:
                found = resolve(symbol, [client.name], {client.name: client.markets})
            except SymbolError as exc:
                unknown[symbol] = str(exc)
                report.notes.append(str(exc))
                continue
            report.instruments.extend(i for i in found if i not in report.instruments)
    finally:
        gate.checked(unknown)
    if not report.instruments:
        return
    # Instrument definitions are written beside the fetch (once the symbols are settled), not after it.
    defining = asyncio.create_task(sink.define(client, report.instruments)) if sink is not None else None
    try:
        if request.start is None:
            await _current(client, request, report, sink, clock)
        else:
            await _history(client, request, report, sink, progress, clock)
        if defining is not None:
            await defining
    except SymbolError:
        raise
    except PipelineError as exc:
        report.error = str(exc)
    finally:
        if defining is not None:  # awaited even when done: its error (a full disk) is never left unread
            if not defining.done():
                defining.cancel()
            await asyncio.gather(defining, return_exceptions=True)


async def _current(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    sink: _Sink | None,
    clock: Callable[[], int],
) -> None:
    if request.data is DataType.OPEN_INTEREST:
        records: Sequence[Record] = await current_open_interest(client, report.instruments, clock)
    else:
        records = await current_funding(client, report.instruments, clock)
    report.records.extend(records)
    if sink is not None and records:
        # Live snapshots go to 10-minute files: a daemon polling every few seconds adds no file a poll, and
        # no file it rewrites grows past a few hundred rows.
        result = await sink.write(records, bucket_ns=SNAPSHOT_BUCKET_NS)
        report.written += result.rows_written
        report.already_stored += result.rows_duplicate


async def _history(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    sink: _Sink | None,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    assert request.start is not None
    end = request.end if request.end is not None else clock()
    kind = OPEN_INTEREST if request.data is DataType.OPEN_INTEREST else FUNDING_RATE
    if kind is OPEN_INTEREST and not client.venue.oi_history_periods:
        report.notes.append(f"{client.name} {NO_HISTORY}")
        return
    start = request.start
    hooks = _Hooks(progress, client.name)
    reader = sink.writer if sink is not None else None
    failed: list[tuple[Instrument, History]] = []

    async def one(inst: Instrument) -> None:
        stored = await asyncio.to_thread(_stored, reader, kind, inst.instrument_id, start, end)

        async def store(table: pa.Table) -> None:
            if sink is None:
                report.tables.append(table)
                return
            result = await sink.write_table(kind, table)
            report.written += result.rows_written
            report.already_stored += result.rows_duplicate

        if kind is OPEN_INTEREST:
            history = await open_interest_history(
                client, inst, start, end, request.period, stored, store, clock=clock, hooks=hooks
            )
        else:
            history = await funding_history(client, inst, start, end, stored, store, clock=clock, hooks=hooks)
        report.gaps.extend(history.gaps)
        report.notes.extend(history.notes)
        if sink is not None and history.gaps:
            await sink.write(history.gaps)
        if history.failed:
            failed.append((inst, history))

    await asyncio.gather(*(one(inst) for inst in report.instruments))
    if failed:
        report.error = _failed_pages(client.name, failed)


def _failed_pages(exchange: str, failed: list[tuple[Instrument, History]]) -> str:
    """One line for every page that failed for good: the rest is stored, and a rerun fetches what is missing."""
    pages = sum(len(h.failed) for _, h in failed)
    windows = sum(h.windows for _, h in failed)
    ids = ", ".join(inst.instrument_id for inst, _ in failed)
    last = next((h.error for _, h in reversed(failed) if h.error is not None), None)
    why = " ".join(str(last).split()) if last is not None else "unknown error"
    return (
        f"{exchange}: {pages} of {windows} history pages failed ({ids}); the rest is stored and a rerun "
        f"fetches what is missing. Last error: {why}"
    )


@dataclass
class _Hooks:
    progress: Progress
    exchange: str

    def plan(self, windows: int) -> None:
        self.progress.plan(self.exchange, windows)

    def advance(self, rows: int) -> None:
        self.progress.advance(self.exchange, rows)


def _stored(reader: CatalogReader | None, kind: DataKind, iid: str, start: int, end: int) -> Stored:
    """What the catalog holds of the instrument in [start, end]: the stored times (only the `ts_init`
    column, and for funding the intervals, of the files overlapping the range) and the recorded gaps."""
    if reader is None:
        return Stored()
    columns = ("ts_init", "interval_minutes") if kind is FUNDING_RATE else ("ts_init",)
    table = reader.read_columns(kind, iid, columns, start, end)
    gaps = [Range(a, b) for a, b in reader.recorded_gaps(iid, kind.name, start, end)]
    times = table.column("ts_init").to_numpy()
    if kind is not FUNDING_RATE:
        return Stored(times=times, gaps=gaps)
    intervals = [
        None if m is None else m * NS_PER_MINUTE for m in table.column("interval_minutes").to_pylist()
    ]
    return Stored(times=times, intervals=intervals, gaps=gaps)
