"""`ccxt-cli fetch-oi` and `ccxt-cli fetch-funding`: current values, or an incremental history backfill."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, DataKind
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
from ccxt_pipeline.collect import run
from ccxt_pipeline.collect.run import ExchangeReport, FetchReport, FetchRequest, run_fetch
from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.models import FundingRateEstimate, OpenInterest
from ccxt_pipeline.timeutil import PERIODS_NS, now_ns, ns_to_iso, parse_period, parse_when

SymbolsArg = Annotated[
    list[str],
    typer.Argument(help="Symbols: BTCUSDT-PERP (every exchange), BTC/USDT:USDT, or BTCUSDT-PERP.BINANCE."),
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
    symbols: SymbolsArg,
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
    """
    _run(OPEN_INTEREST, symbols, exchange, from_, to, period, catalog, config, no_store, json_out)


def fetch_funding(
    symbols: SymbolsArg,
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
    """
    _run(FUNDING_RATE, symbols, exchange, from_, to, "5m", catalog, config, no_store, json_out)


for _cmd in (fetch_oi, fetch_funding):
    _cmd.__doc__ = f"{_cmd.__doc__}\n\n    {EXIT_CODES_HELP}"


@guarded
def _run(
    data: DataKind,
    symbols: list[str],
    exchanges: list[str] | None,
    from_: str | None,
    to: str | None,
    period: str,
    catalog: Path | None,
    config: Path | None,
    no_store: bool,
    json_out: bool,
) -> None:
    settings = load(config, catalog)
    now = now_ns()
    start = parse_when(from_, now, "start") if from_ is not None else None
    end = parse_when(to, now, "end") if to is not None else None
    if end is not None and start is None:
        raise PipelineError("--to needs --from")
    period = parse_period(period)  # the duration grammar: `60m` is `1h`
    request = FetchRequest(data, symbols, exchanges or (), start, end, period, store=not no_store)
    if start is None or json_out:
        report = asyncio.run(run_fetch(settings, request))
    else:
        with _ProgressBars() as bars:
            report = asyncio.run(run_fetch(settings, request, progress=bars))
    _render(report, request, json_out)
    raise typer.Exit(int(_exit_code(report)))


def _exit_code(report: FetchReport) -> Exit:
    failed = len(report.failed)
    if failed == 0:
        return Exit.OK
    return Exit.FAILED if failed == len(report.exchanges) else Exit.PARTIAL


class _ProgressBars(run.Progress):
    """One rich progress bar per exchange, counting windows (pages) fetched."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rows]:>8} rows"),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tasks:
            self.bars.stop()

    def plan(self, exchange: str, windows: int) -> None:
        if not windows:
            return  # nothing to fetch: no bar
        if not self.tasks:
            self.bars.start()  # only once there is something to show: bad input prints just its line
        if exchange not in self.tasks:
            self.tasks[exchange] = self.bars.add_task(exchange, total=0, rows=0)
        task = self.tasks[exchange]
        self.bars.update(task, total=(self.bars.tasks[task].total or 0) + windows)

    def advance(self, exchange: str, rows: int) -> None:
        task = self.tasks.get(exchange)
        if task is None:
            return
        self.bars.update(task, advance=1, rows=self.bars.tasks[task].fields["rows"] + rows)


def _render(report: FetchReport, request: FetchRequest, json_out: bool) -> None:
    if json_out:
        print_json(_as_json(report, request))
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


def _as_json(report: FetchReport, request: FetchRequest) -> dict[str, Any]:
    with_records = request.start is None or not request.store
    return {
        "exchanges": [
            {
                "exchange": ex.exchange,
                "ok": ex.error is None,
                "error": ex.error,
                "instruments": [i.instrument_id for i in ex.instruments],
                "rows_written": ex.written,
                "rows_already_stored": ex.already_stored,
                "gaps": [g.model_dump() for g in ex.gaps],
                "notes": ex.notes,
                **({"records": _rows(ex)} if with_records else {}),
            }
            for ex in report.exchanges
        ]
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


def _history_table(report: FetchReport) -> None:
    table = _table("exchange", "instruments", "rows written", "already stored", "gaps")
    for ex in report.exchanges:
        table.add_row(
            ex.exchange,
            str(len(ex.instruments)),
            f"{ex.written:,}",
            f"{ex.already_stored:,}",
            str(len(ex.gaps)),
        )
    out.print(table)
    for ex in report.exchanges:
        for g in ex.gaps:
            out.print(
                f"gap: {g.instrument_id} {g.data_type} {_minute(g.ts_event)} .. {_minute(g.end_ns)} UTC: "
                f"{g.reason}",
                markup=False,
            )


__all__ = ["fetch_funding", "fetch_oi"]
