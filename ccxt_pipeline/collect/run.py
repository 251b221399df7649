"""Running a fetch across exchanges: input checked before any request, exchanges kept apart.

Order of work, so that bad input never costs a request or a write:
1. exchange names, symbol syntax, period and range are checked (`collect.request`);
2. the catalog is opened (an unwritable path fails here);
3. every exchange loads its markets, concurrently (`collect.clients`); a symbol listed on none of them is bad
   input (`collect.gate`);
4. each exchange fetches and writes (`collect.sink`) on its own: one failing (after retries) never stops the
   others; each says what it did in its report (`collect.report`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pyarrow as pa

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogWriter, DataKind, WriteResult
from ccxt_pipeline.collect.clients import Exchanges, RequestMeter, open_exchanges
from ccxt_pipeline.collect.funding import current_funding, funding_history
from ccxt_pipeline.collect.gate import SymbolGate, check_symbols
from ccxt_pipeline.collect.history import History, read_stored
from ccxt_pipeline.collect.open_interest import current_open_interest, open_interest_history
from ccxt_pipeline.collect.report import (
    ExchangeHooks,
    ExchangeReport,
    FetchReport,
    InstrumentOutcome,
    Progress,
    failed_pages,
)
from ccxt_pipeline.collect.request import NO_HISTORY, FetchRequest, check_request
from ccxt_pipeline.collect.sink import LazyCatalog, Sink
from ccxt_pipeline.errors import PipelineError, SymbolError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.timeutil import NS_PER_MINUTE, NS_PER_MS, now_ns, ns_to_iso
from ccxt_pipeline.venues import get_venue

__all__ = [
    "SNAPSHOT_BUCKET_NS",
    "ExchangeReport",
    "Exchanges",
    "FetchReport",
    "FetchRequest",
    "Progress",
    "check_request",
    "fetch_on",
    "open_exchanges",
    "run_fetch",
]

SNAPSHOT_BUCKET_NS = 10 * NS_PER_MINUTE


async def run_fetch(
    settings: Settings,
    request: FetchRequest,
    *,
    progress: Progress | None = None,
    policy: RetryPolicy | None = None,
    clock: Callable[[], int] = now_ns,
    clients: ClientFactory = ExchangeClient,
    report: FetchReport | None = None,
) -> FetchReport:
    """Fetch current values or history for `request`, store them (unless `store` is off) and report.
    `report`, if given, is filled as the fetch goes (so that an interrupted fetch can say what it saved).
    The catalog is created only once there is something to write."""
    names = check_request(settings, request, clock())
    catalog = LazyCatalog.at(settings.catalog_path) if request.store else None
    warm_arrow()
    async with open_exchanges(settings, names, policy, clients=clients) as exchanges:
        return await fetch_on(exchanges, request, catalog, progress=progress, clock=clock, report=report)


def warm_arrow() -> None:
    """Import what pyarrow imports at its first array, before the first request: start-up work, like the
    other imports. pyarrow (26) imports pandas lazily the first time it builds an array or a table
    (`pa.array`, `pa.table`, `Schema.empty_table`, ...): 0.25-0.35 s on a 2-core machine, holding the GIL.
    Left to itself that happened in the middle of the fetch (it stood between the markets' answers and the
    first history request); in a thread beside the requests it held the GIL while they waited on the event
    loop (measured: no better in process time, 0.2-0.5 s worse from the first request to the last answer)."""
    pa.array([0])


async def fetch_on(
    exchanges: Exchanges,
    request: FetchRequest,
    writer: CatalogWriter | LazyCatalog | None,
    *,
    progress: Progress | None = None,
    clock: Callable[[], int] = now_ns,
    report: FetchReport | None = None,
) -> FetchReport:
    """Run `request` on `exchanges` (several requests may share them, and their request limits)."""
    wanted = [get_venue(e).name for e in request.exchanges] if request.exchanges else exchanges.names
    reports = {n: ExchangeReport(n) for n in exchanges.names if n in wanted}
    out = report if report is not None else FetchReport([])
    out.exchanges[:] = list(reports.values())
    gate = SymbolGate(len(reports))
    catalog = LazyCatalog(writer.root, writer) if isinstance(writer, CatalogWriter) else writer
    sink = Sink(catalog, gate) if catalog is not None else None
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
            if not job.cancelling():  # a job already told to stop is finishing its last writes
                job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
    return out


async def _exchange_job(
    exchanges: Exchanges,
    request: FetchRequest,
    report: ExchangeReport,
    sink: Sink | None,
    gate: SymbolGate,
    progress: Progress,
    clock: Callable[[], int],
) -> None:
    """One exchange: wait for its own client, check the symbols on its markets, fetch and store."""
    client = await _open_and_check(exchanges, request, report, gate)
    if client is None or not report.instruments:
        return
    # Instrument definitions are written beside the fetch (once the symbols are settled), not after it.
    defining = asyncio.create_task(sink.define(client, report.instruments)) if sink is not None else None
    try:
        if request.start is None:
            await _current(client, request, report, sink, clock)
        else:
            meter = exchanges.meters.get(report.exchange)
            await _history(client, request, report, sink, progress, meter, clock)
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


async def _open_and_check(
    exchanges: Exchanges, request: FetchRequest, report: ExchangeReport, gate: SymbolGate
) -> ExchangeClient | None:
    """The exchange's client with the symbols checked on its markets (the gate told either way), or None if
    it could not be opened (the report says why)."""
    unknown: dict[str, str] | None = None
    try:
        client = await exchanges.client(report.exchange)
        if client is None:
            report.error = exchanges.errors.get(report.exchange, "could not be opened")
            return None
        unknown = {}
        check_symbols(
            client,
            request.symbols,
            report.instruments,
            unknown,
            report.notes,
            all_symbols=request.all_symbols,
        )
    finally:
        gate.checked(unknown)
    return client


async def _current(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    sink: Sink | None,
    clock: Callable[[], int],
) -> None:
    if request.data is OPEN_INTEREST:
        records: Sequence[Record] = await current_open_interest(client, report.instruments, clock)
    else:
        records = await current_funding(client, report.instruments, clock)
    report.records.extend(records)
    if sink is not None and records:
        # Live snapshots go to 10-minute files: a daemon polling every few seconds adds no file a poll, and
        # no file it rewrites grows past a few hundred rows.
        report.count(await sink.write(records, bucket_ns=SNAPSHOT_BUCKET_NS))


_COUNTING = threading.Lock()
"""Row counts are added in the writers' threads (`account`)."""

INSTRUMENTS_IN_FLIGHT = 8
"""Instruments of one exchange fetched at once (their pages share the client's request slots): a large
backfill finishes symbols one after another, so that a kill leaves whole symbols done and the progress bar's
estimate means something."""


async def _history(
    client: ExchangeClient,
    request: FetchRequest,
    report: ExchangeReport,
    sink: Sink | None,
    progress: Progress,
    meter: RequestMeter | None,
    clock: Callable[[], int],
) -> None:
    assert request.start is not None
    end = request.end if request.end is not None else clock()
    kind = request.data
    if kind is OPEN_INTEREST and not client.venue.oi_history_periods:
        report.notes.append(f"{client.name} {NO_HISTORY}")
        return
    span = (request.start, end)
    failed: list[tuple[Instrument, History]] = []  # in the order they finish
    slots = asyncio.Semaphore(INSTRUMENTS_IN_FLIGHT)
    progress.start(client.name, len(report.instruments), meter)

    async def one(inst: Instrument) -> None:
        async with slots:
            hooks = ExchangeHooks(progress, client.name)
            outcome = InstrumentOutcome(inst.instrument_id, listed_ns=listed_ns(client, inst))
            history = await _instrument_history(
                client, request, inst, kind, span, report, sink, hooks, outcome, clock
            )
            report.outcomes.append(outcome)
            hooks.finish(outcome)
        if history.failed:
            failed.append((inst, history))

    await asyncio.gather(*(one(inst) for inst in report.instruments))
    if failed:
        report.error = failed_pages(client.name, failed)


def listed_ns(client: ExchangeClient, inst: Instrument) -> int | None:
    """When the exchange listed the instrument, in ns; None where it does not say. ccxt 4.5.90 puts the
    listing time in `market['created']` (ms): Binance `onboardDate` ("onboardDate": 1569398400000 in
    https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information;
    ccxt `binance.parse_market`: `safe_integer_2(market, 'onboardDate', 'listingTime')`), Bybit `launchTime`
    ("Launch timestamp (ms)", https://bybit-exchange.github.io/docs/v5/market/instrument; ccxt
    `bybit.fetch_future_markets`); Hyperliquid's meta has none (ccxt sets `created: None`)."""
    created = client.market(inst.ccxt_symbol).get("created")
    if created is None:
        return None
    try:
        value = int(created)
    except (TypeError, ValueError):
        return None
    return value * NS_PER_MS if value > 0 else None


async def _instrument_history(
    client: ExchangeClient,
    request: FetchRequest,
    inst: Instrument,
    kind: DataKind,
    span: tuple[int, int],
    report: ExchangeReport,
    sink: Sink | None,
    hooks: ExchangeHooks,
    outcome: InstrumentOutcome,
    clock: Callable[[], int],
) -> History:
    """One instrument's history in `span`, from its listing on (nothing is asked for before the market
    existed): what is stored is skipped, rows and gaps go to the sink (or the report, when nothing is
    stored)."""
    start, end = span
    if outcome.listed_ns is not None:
        if outcome.listed_ns > end:
            outcome.skipped = f"listed {ns_to_iso(outcome.listed_ns)[:10]}, after the range"
            return History(kind)
        start = max(start, outcome.listed_ns)
    reader = sink.reader if sink is not None else None
    stored = await asyncio.to_thread(read_stored, reader, kind, inst.instrument_id, start, end)
    outcome.already_stored = len(stored.times)
    report.already_stored += outcome.already_stored

    async def store(table: pa.Table) -> None:
        if sink is None:
            report.tables.append(table)
            outcome.written += table.num_rows
            return
        await sink.write_table(kind, table, on_written=account)

    def account(result: WriteResult) -> None:
        """In the writer's thread, once the rows are stored: counted even if the fetch is being cancelled."""
        with _COUNTING:
            report.written += result.rows_written
            outcome.written += result.rows_written
        hooks.progress.stored(client.name, result.rows_written)

    recorded: list[CoverageGap] = []  # gaps the fetch wrote itself as soon as it knew them
    if kind is OPEN_INTEREST:
        history = await open_interest_history(
            client, inst, start, end, request.period, stored, store, clock=clock, hooks=hooks
        )
    else:

        async def record_gaps(gaps: Sequence[CoverageGap]) -> None:
            if sink is not None:
                await sink.write(gaps)
                recorded.extend(gaps)

        history = await funding_history(
            client,
            inst,
            start,
            end,
            stored,
            store,
            clock=clock,
            hooks=hooks,
            listed=outcome.listed_ns,
            record_gaps=record_gaps,
        )
    outcome.windows, outcome.failed = history.windows, len(history.failed)
    report.gaps.extend(history.gaps)
    report.notes.extend(history.notes)
    unrecorded = [g for g in history.gaps if g not in recorded]
    if sink is not None and unrecorded:
        await sink.write(unrecorded)
    return history
