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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader, CatalogWriter, DataKind
from ccxt_pipeline.collect.funding import current_funding, funding_history
from ccxt_pipeline.collect.history import History
from ccxt_pipeline.collect.open_interest import NO_HISTORY, current_open_interest, open_interest_history
from ccxt_pipeline.errors import ExchangeError, PipelineError, SymbolError
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument, resolve, resolve_many
from ccxt_pipeline.models import CoverageGap, FundingRate, Record
from ccxt_pipeline.settings import ExchangeSettings, Settings
from ccxt_pipeline.timeutil import PERIODS_NS, now_ns
from ccxt_pipeline.venues import get_venue


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
        raise PipelineError("no exchange selected: enable one in settings or pass -e NAME")
    resolve_many(request.symbols, names)  # syntax, before any request
    if request.start is not None:
        end = request.end if request.end is not None else now
        if request.start > now:
            raise PipelineError("--from is in the future")
        if end < request.start:
            raise PipelineError("--to is before --from")
        if request.data is DataType.OPEN_INTEREST:
            _check_period(names, request.period)
    return names


def _check_period(names: list[str], period: str) -> None:
    if period not in PERIODS_NS:
        raise PipelineError(f"--period: unknown period {period!r} (periods: {', '.join(PERIODS_NS)})")
    with_history = [get_venue(n) for n in names if get_venue(n).oi_history_periods]
    if not with_history:
        raise PipelineError(f"{', '.join(names)}: {NO_HISTORY}")
    for venue in with_history:
        if period not in venue.oi_history_periods:
            raise PipelineError(
                f"--period: {venue.name} has no {period} open-interest history "
                f"(periods: {', '.join(venue.oi_history_periods)})"
            )


@dataclass
class Exchanges:
    """Clients with markets loaded, for the exchanges that could be opened; why the others could not."""

    clients: dict[str, ExchangeClient]
    errors: dict[str, str]


@contextlib.asynccontextmanager
async def open_exchanges(
    settings: Settings, names: Sequence[str], policy: RetryPolicy | None = None
) -> AsyncIterator[Exchanges]:
    """Open every exchange concurrently and close them all on exit; one failing to open is recorded."""
    policy = policy or RetryPolicy.from_settings(settings.retry)
    errors: dict[str, str] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(name: str) -> ExchangeClient | None:
            client = ExchangeClient(name, settings.exchanges.get(name) or ExchangeSettings(), policy)
            try:
                return await stack.enter_async_context(client)
            except ExchangeError as exc:
                errors[name] = str(exc)
                return None

        opened = await asyncio.gather(*(open_one(n) for n in names))
        yield Exchanges({n: c for n, c in zip(names, opened, strict=True) if c is not None}, errors)


async def run_fetch(
    settings: Settings,
    request: FetchRequest,
    *,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    clock: Callable[[], int] = now_ns,
) -> FetchReport:
    """Fetch current values or history for `request`, store them (unless `store` is off) and report."""
    names = check_request(settings, request, clock())
    writer = CatalogWriter(settings.catalog_path) if request.store else None
    async with open_exchanges(settings, names, policy) as exchanges:
        return await fetch_on(exchanges, request, writer, progress=progress, clock=clock)


async def fetch_on(
    exchanges: Exchanges,
    request: FetchRequest,
    writer: CatalogWriter | None,
    *,
    progress: Progress | None = None,
    clock: Callable[[], int] = now_ns,
) -> FetchReport:
    """Run `request` on exchanges already open (so several requests can share clients and their limits)."""
    names = [*exchanges.clients, *exchanges.errors]
    wanted = [get_venue(e).name for e in request.exchanges] if request.exchanges else names
    reports = {n: ExchangeReport(n, error=exchanges.errors.get(n)) for n in names if n in wanted}
    clients = {n: c for n, c in exchanges.clients.items() if n in reports}
    _resolve_on_markets(request.symbols, clients, reports)
    await asyncio.gather(
        *(
            _fetch_one(clients[n], request, reports[n], writer, progress or Progress(), clock)
            for n in clients
            if reports[n].instruments
        )
    )
    return FetchReport(list(reports.values()))


def _resolve_on_markets(
    symbols: Sequence[str], clients: dict[str, ExchangeClient], reports: dict[str, ExchangeReport]
) -> None:
    """Each symbol on each exchange that lists it; a symbol no exchange lists is bad input."""
    unknown: dict[str, list[str]] = {}
    for name, client in clients.items():
        markets = {name: list(client.markets)}
        for symbol in symbols:
            try:
                found = resolve(symbol, [name], markets)
            except SymbolError as exc:
                unknown.setdefault(symbol, []).append(str(exc))
                reports[name].notes.append(str(exc))
                continue
            reports[name].instruments.extend(i for i in found if i not in reports[name].instruments)
    for errors in unknown.values():
        if clients and len(errors) == len(clients):
            raise SymbolError(errors[0])


async def _fetch_one(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    writer: CatalogWriter | None,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    try:
        if request.start is None:
            await _current(client, request, report, writer, clock)
        else:
            await _history(client, request, report, writer, progress, clock)
    except PipelineError as exc:
        report.error = str(exc)


async def _current(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    writer: CatalogWriter | None,
    clock: Callable[[], int],
) -> None:
    if request.data is DataType.OPEN_INTEREST:
        records: Sequence[Record] = await current_open_interest(client, report.instruments, clock)
    else:
        records = await current_funding(client, report.instruments, clock)
    report.records.extend(records)
    await _store(writer, report, records)


async def _history(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    writer: CatalogWriter | None,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    assert request.start is not None
    end = request.end if request.end is not None else clock()
    kind = OPEN_INTEREST if request.data is DataType.OPEN_INTEREST else FUNDING_RATE
    if kind is OPEN_INTEREST and not client.venue.oi_history_periods:
        report.notes.append(f"{client.name} {NO_HISTORY}")
        return
    await asyncio.gather(
        *(
            _history_of(client, inst, kind, request, end, report, writer, progress, clock)
            for inst in report.instruments
        )
    )


async def _history_of(
    client: ExchangeClient,
    inst: Instrument,
    kind: DataKind,
    request: FetchRequest,
    end: int,
    report: ExchangeReport,
    writer: CatalogWriter | None,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    assert request.start is not None
    stored = _stored_span(writer, kind, inst.instrument_id)

    hooks = _Hooks(progress, client.name)
    if kind is OPEN_INTEREST:
        history: History = await open_interest_history(
            client, inst, request.start, end, request.period, stored, clock=clock, hooks=hooks
        )
    else:
        last_interval = _last_interval(writer, inst.instrument_id) if stored else None
        history = await funding_history(
            client, inst, request.start, end, stored, last_interval, clock=clock, hooks=hooks
        )
    report.records.extend(history.records)
    report.gaps.extend(history.gaps)
    report.notes.extend(history.notes)
    await _store(writer, report, history.records, history.gaps)


@dataclass
class _Hooks:
    progress: Progress
    exchange: str

    def plan(self, windows: int) -> None:
        self.progress.plan(self.exchange, windows)

    def advance(self, rows: int) -> None:
        self.progress.advance(self.exchange, rows)


def _stored_span(reader: CatalogReader | None, kind: DataKind, iid: str) -> tuple[int, int] | None:
    if reader is None:
        return None
    first, last = reader.first_timestamp(kind, iid), reader.last_timestamp(kind, iid)
    return (first, last) if first is not None and last is not None else None


def _last_interval(reader: CatalogReader | None, iid: str) -> int | None:
    if reader is None:
        return None
    last = reader.last_timestamp(FUNDING_RATE, iid)
    rows = reader.query_records(FUNDING_RATE, [iid], start=last, end=last)
    return rows[-1].interval_minutes if rows and isinstance(rows[-1], FundingRate) else None


async def _store(
    writer: CatalogWriter | None,
    report: ExchangeReport,
    records: Sequence[Record],
    gaps: Sequence[CoverageGap] = (),
) -> None:
    """Write in a worker thread, so other exchanges' requests keep flowing meanwhile."""
    if writer is None:
        return
    if records:
        result = await asyncio.to_thread(writer.write, records)
        report.written += result.rows_written
        report.already_stored += result.rows_duplicate
    if gaps:
        await asyncio.to_thread(writer.write, gaps)
