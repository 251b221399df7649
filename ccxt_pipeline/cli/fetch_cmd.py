"""`ccxt-cli fetch-oi` and `ccxt-cli fetch-funding`: current values, or an incremental history backfill."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ccxt_pipeline.cli.common import (
    EXIT_CODES_HELP,
    CatalogOption,
    ConfigOption,
    ExchangeOption,
    Exit,
    JsonOption,
    err,
    guarded,
    load,
    out,
    print_json,
)
from ccxt_pipeline.collect.report import Progress as FetchProgress
from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.timeutil import PERIODS_NS, now_ns, ns_to_iso, parse_period, parse_when

if TYPE_CHECKING:  # ccxt, pyarrow and the catalog load when a fetch runs, not for --help
    from ccxt_pipeline.catalog import DataKind
    from ccxt_pipeline.collect.clients import RequestMeter
    from ccxt_pipeline.collect.report import InstrumentOutcome
    from ccxt_pipeline.collect.run import ExchangeReport, FetchReport, FetchRequest

SymbolsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Symbols: BTCUSDT-PERP (every exchange), BTC/USDT:USDT, or BTCUSDT-PERP.BINANCE (that exchange only).",
        show_default=False,
    ),
]
AllOption = Annotated[
    bool,
    typer.Option(
        "--all",
        help="Every linear perpetual listed on the exchanges (-e to choose them); each from its listing date.",
    ),
]
FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Backfill history from WHEN: 2025-01-01, an ISO time, or a duration before now (30d, 12h, 90m).",
        show_default=False,
    ),
]
ToOption = Annotated[
    str | None,
    typer.Option(
        "--to", help="End of the backfill (default: now). Same forms as --from.", show_default=False
    ),
]
NoStoreOption = Annotated[bool, typer.Option("--no-store", help="Fetch and print, but write nothing.")]


def fetch_oi(
    symbols: SymbolsArg = None,
    all_symbols: AllOption = False,
    exchange: ExchangeOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    period: Annotated[
        str,
        typer.Option("--period", help=f"History period: {', '.join(PERIODS_NS)} (as the exchange offers)."),
    ] = "5m",
    catalog: CatalogOption = None,
    config: ConfigOption = None,
    no_store: NoStoreOption = False,
    json_out: JsonOption = False,
) -> None:
    """Fetch open interest: the current value on every exchange, or history with --from.

    Open interest is stored in base-asset units with its value in the quote currency. History is incremental: what the catalog holds is not fetched again, and gaps the exchange cannot fill (Binance keeps 30 days; Hyperliquid keeps none) are reported and recorded.

    Examples:

      ccxt-cli fetch-oi BTCUSDT-PERP

      ccxt-cli fetch-oi BTCUSDT-PERP ETHUSDT-PERP --from 30d -e binance -e bybit

      ccxt-cli fetch-oi --all -e binance --from 30d
    """
    from ccxt_pipeline.catalog.schema import OPEN_INTEREST

    _run(
        OPEN_INTEREST,
        _Selection(symbols or [], all_symbols),
        exchange,
        from_,
        to,
        period,
        catalog,
        config,
        no_store,
        json_out,
    )


def fetch_funding(
    symbols: SymbolsArg = None,
    all_symbols: AllOption = False,
    exchange: ExchangeOption = None,
    from_: FromOption = None,
    to: ToOption = None,
    catalog: CatalogOption = None,
    config: ConfigOption = None,
    no_store: NoStoreOption = False,
    json_out: JsonOption = False,
) -> None:
    """Fetch funding rates: the live estimate on every exchange, or settled history with --from.

    Settled rates go to funding_rate_update/ (NautilusTrader's FundingRateUpdate) with each row's funding interval; live estimates go to custom_funding_rate_estimate/. The two never mix.

    Examples:

      ccxt-cli fetch-funding BTCUSDT-PERP

      ccxt-cli fetch-funding BTCUSDT-PERP SOLUSDT-PERP --from 2025-01-01

      ccxt-cli fetch-funding --all --from 2024-01-01
    """
    from ccxt_pipeline.catalog.schema import FUNDING_RATE

    _run(
        FUNDING_RATE,
        _Selection(symbols or [], all_symbols),
        exchange,
        from_,
        to,
        "5m",
        catalog,
        config,
        no_store,
        json_out,
    )


for _cmd in (fetch_oi, fetch_funding):
    _cmd.__doc__ = f"{_cmd.__doc__}\n\n    {EXIT_CODES_HELP}"


@dataclass(frozen=True)
class _Selection:
    symbols: list[str]
    all_symbols: bool


EXIT_INTERRUPTED = 130
"""128 + SIGINT, what a shell reports for a program stopped by Ctrl-C."""


@guarded
def _run(
    data: DataKind,
    selection: _Selection,
    exchanges: list[str] | None,
    from_: str | None,
    to: str | None,
    period: str,
    catalog: Path | None,
    config: Path | None,
    no_store: bool,
    json_out: bool,
) -> None:
    import asyncio

    from ccxt_pipeline.collect.run import FetchReport, FetchRequest, run_fetch

    if selection.all_symbols and selection.symbols:
        raise PipelineError(
            f"--all fetches every perpetual: name no symbols with it (got {selection.symbols[0]})"
        )
    if not selection.all_symbols and not selection.symbols:
        raise PipelineError("no symbol to fetch: name symbols, or use --all")
    settings = load(config, catalog)
    now = now_ns()
    start = parse_when(from_, now, "start") if from_ is not None else None
    end = parse_when(to, now, "end") if to is not None else None
    if end is not None and start is None:
        raise PipelineError("--to needs --from")
    period = parse_period(period)  # the duration grammar: `60m` is `1h`
    request = FetchRequest(
        data,
        selection.symbols,
        exchanges or (),
        start,
        end,
        period,
        store=not no_store,
        all_symbols=selection.all_symbols,
    )
    report = FetchReport([])
    bars = _ProgressBars() if start is not None and not json_out else FetchProgress()
    try:
        try:
            asyncio.run(run_fetch(settings, request, progress=bars, report=report))
        finally:
            if isinstance(bars, _ProgressBars):
                bars.stop()
    except KeyboardInterrupt:
        _interrupted(report, request, json_out)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _render(report, request, json_out)
    raise typer.Exit(int(_exit_code(report)))


def _exit_code(report: FetchReport) -> Exit:
    failed = len(report.failed)
    if failed == 0:
        return Exit.OK
    return Exit.FAILED if failed == len(report.exchanges) else Exit.PARTIAL


def _interrupted(report: FetchReport, request: FetchRequest, json_out: bool) -> None:
    """Ctrl-C: one line per exchange, what was saved; what arrived before is in the catalog."""
    lines = []
    for ex in report.exchanges:
        if request.start is None or not request.store:
            lines.append(f"{ex.exchange}: interrupted; {ex.written:,} rows saved")
            continue
        done = len(ex.outcomes)
        lines.append(
            f"{ex.exchange}: interrupted; {ex.written:,} new rows saved ({done} of {len(ex.instruments)} "
            f"symbols done); a rerun fetches only what is missing"
        )
    if not lines:
        lines.append("interrupted before any exchange answered; nothing was saved")
    if json_out:
        print_json(
            {"interrupted": True, "exchanges": [_exchange_json(ex, request) for ex in report.exchanges]}
        )
    for line in lines:
        err.print(line, markup=False)


class _RequestRate(ProgressColumn):
    """Requests sent in the last minute, and ccxt's pace limit when its rate limiter is on."""

    def render(self, task: Task) -> Text:
        meter: RequestMeter | None = task.fields.get("meter")
        if meter is None:
            return Text("")
        limit = f" (limit {meter.limit_per_minute:,.0f})" if meter.limit_per_minute else ""
        return Text(f"{meter.per_minute():>5,} req/min{limit}")


@dataclass
class _Bar:
    total: int
    meter: RequestMeter | None
    completed: float = 0.0
    done: int = 0
    rows: int = 0
    task: TaskID | None = None


class _ProgressBars(FetchProgress):
    """One rich progress bar per exchange: symbols done of the total, new rows stored (the same count as the
    final table), requests per minute against the limit, and the time left. A bar appears with the first
    page done, so a run with nothing to fetch shows none."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.fields[done]:>5}/{task.total:.0f} symbols"),
            TextColumn("{task.fields[rows]:>12,} rows"),
            _RequestRate(),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self.state: dict[str, _Bar] = {}
        self.started = False

    def stop(self) -> None:
        if self.started:
            self.bars.stop()
            self.started = False

    def start(self, exchange: str, instruments: int, meter: RequestMeter | None) -> None:
        self.state[exchange] = _Bar(instruments, meter)

    def advance(self, exchange: str, share: float) -> None:
        bar = self.state.get(exchange)
        if bar is not None:
            bar.completed += share
            self._show(exchange, bar)

    def stored(self, exchange: str, rows: int) -> None:
        bar = self.state.get(exchange)
        if bar is not None:
            bar.rows += rows
            self._show(exchange, bar)

    def finished(self, exchange: str, outcome: InstrumentOutcome) -> None:
        bar = self.state.get(exchange)
        if bar is not None:
            bar.done += 1
            if not outcome.windows:
                bar.completed += 1  # nothing to fetch: counted, but no bar of its own
            if bar.task is not None or outcome.windows:
                self._show(exchange, bar)

    def _show(self, exchange: str, bar: _Bar) -> None:
        if bar.task is None:
            if not self.started:
                self.bars.start()
                self.started = True
            bar.task = self.bars.add_task(exchange, total=bar.total, done=0, rows=0, meter=bar.meter)
        self.bars.update(bar.task, completed=min(bar.completed, bar.total), done=bar.done, rows=bar.rows)


def _render(report: FetchReport, request: FetchRequest, json_out: bool) -> None:
    if json_out:
        print_json({"exchanges": [_exchange_json(ex, request) for ex in report.exchanges]})
    elif request.start is None:
        _current_table(report, request.data)
    else:
        _history_table(report)
    for ex in report.exchanges:
        if not json_out:
            for note in ex.notes:
                err.print(f"note: {note}", markup=False)
        if ex.error is not None:
            err.print(f"[bold red]failed:[/] {ex.error}")


def _exchange_json(ex: ExchangeReport, request: FetchRequest) -> dict[str, Any]:
    with_records = request.start is None or not request.store
    history = request.start is not None
    return {
        "exchange": ex.exchange,
        "ok": ex.error is None,
        "error": ex.error,
        "instruments": [i.instrument_id for i in ex.instruments],
        "rows_written": ex.written,
        "rows_already_stored": ex.already_stored,
        **(
            {
                "up_to_date": [o.instrument_id for o in ex.outcomes if o.up_to_date],
                "by_instrument": [asdict(o) for o in ex.outcomes],
            }
            if history
            else {}
        ),
        "gaps": [g.model_dump() for g in ex.gaps],
        "notes": ex.notes,
        **({"records": _rows(ex)} if with_records else {}),
    }


def _table(*columns: str) -> Table:
    """A table that wraps rather than cuts: an instrument id must never be shown truncated."""
    table = Table()
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _minute(ns: int, seconds: bool = False) -> str:
    """`2026-11-21 01:09` (UTC), for tables."""
    return ns_to_iso(ns)[: 19 if seconds else 16].replace("T", " ")


def _rows(ex: ExchangeReport) -> list[dict[str, Any]]:
    """Current values and history rows as plain dicts (timestamps stay integer nanoseconds)."""
    rows = [r.model_dump(mode="json") for r in ex.records]
    for table in ex.tables:
        rows.extend(table.to_pylist())
    return rows


def _current_table(report: FetchReport, data: DataKind) -> None:
    from ccxt_pipeline.catalog.schema import OPEN_INTEREST
    from ccxt_pipeline.models import FundingRateEstimate, OpenInterest

    if not any(ex.records for ex in report.exchanges):
        return  # every exchange failed: their lines say why
    if data is OPEN_INTEREST:
        table = _table("exchange", "instrument id", "open interest (base)", "value (quote)", "time (UTC)")
        for ex in report.exchanges:
            for r in ex.records:
                assert isinstance(r, OpenInterest)
                value = "-" if r.open_interest_value is None else f"{r.open_interest_value:,.0f}"
                table.add_row(
                    ex.exchange, r.instrument_id, f"{r.open_interest:,.4f}", value, ns_to_iso(r.ts_event)[:19]
                )
    else:
        table = _table("exchange", "instrument id", "rate", "interval", "next funding (UTC)", "mark")
        for ex in report.exchanges:
            for r in ex.records:
                assert isinstance(r, FundingRateEstimate)
                table.add_row(
                    ex.exchange,
                    r.instrument_id,
                    f"{r.rate:+.6%}",
                    f"{r.interval_minutes // 60}h" if r.interval_minutes else "-",
                    _minute(r.next_funding_ns) if r.next_funding_ns else "-",
                    f"{r.mark_price:,.2f}" if r.mark_price else "-",
                )
    out.print(table)


UP_TO_DATE_LINES = 20
"""Instruments with nothing to fetch are named one per line up to this many per exchange, then counted."""


def _history_table(report: FetchReport) -> None:
    """What was fetched, per exchange; instruments with nothing missing say so instead of a row of zeros."""
    fetched = [
        ex for ex in report.exchanges if ex.error is not None or any(not o.up_to_date for o in ex.outcomes)
    ]
    if fetched:
        table = _table("exchange", "instruments", "rows written", "already stored", "gaps")
        for ex in fetched:
            table.add_row(
                ex.exchange,
                str(len(ex.instruments)),
                f"{ex.written:,}",
                f"{ex.already_stored:,}",
                str(len(ex.gaps)),
            )
        out.print(table)
    for ex in report.exchanges:
        fresh = [o for o in ex.outcomes if o.up_to_date]
        if len(fresh) > UP_TO_DATE_LINES:
            out.print(f"{ex.exchange}: {len(fresh)} instruments up to date: nothing to fetch", markup=False)
        else:
            for o in sorted(fresh, key=lambda o: o.instrument_id):
                out.print(f"{o.instrument_id}: up to date: nothing to fetch", markup=False)
        for o in sorted(ex.outcomes, key=lambda o: o.instrument_id):
            if o.skipped is not None:
                out.print(f"{o.instrument_id}: nothing asked for: {o.skipped}", markup=False)
    for ex in report.exchanges:
        for g in ex.gaps:
            out.print(
                f"gap: {g.instrument_id} {g.data_type} {_minute(g.ts_event)} .. {_minute(g.end_ns)} UTC: "
                f"{g.reason}",
                markup=False,
            )


__all__ = ["fetch_funding", "fetch_oi"]
