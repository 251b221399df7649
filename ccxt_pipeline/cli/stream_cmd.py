"""`ccxt-cli stream-liquidations`: live liquidations from several exchanges into the catalog."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

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
)
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.timeutil import NS_PER_SECOND, now_ns, ns_to_iso, parse_duration

if TYPE_CHECKING:  # ccxt.pro and the catalog load when the command runs, not for --help
    from ccxt_pipeline.models import Record
    from ccxt_pipeline.stream.run import LiquidationStream, StreamSummary


@guarded
def stream_liquidations(
    symbols: Annotated[
        list[str] | None,
        typer.Argument(
            help="Symbols (BTCUSDT-PERP ...). Default: the `symbols` setting.", show_default=False
        ),
    ] = None,
    all_market: Annotated[
        bool,
        typer.Option("--all", help="Every symbol, where the exchange has an all-market stream (Binance)."),
    ] = False,
    exchange: ExchangeOption = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            help="Stop after this long: 90s, 10m, 2.5h, 1d (default: until Ctrl-C).",
            show_default=False,
        ),
    ] = None,
    catalog: CatalogOption = None,
    config: ConfigOption = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Print events, write nothing.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Stream liquidations live from Binance and Bybit into the catalog, with a health line every few seconds.

    Each event shows the side of the position that was liquidated (LONG or SHORT), the quantity in base units, the price and the notional. Every disconnect is recorded as a gap. Ctrl-C (or SIGTERM) flushes everything received and prints a summary. Hyperliquid has no public market-wide liquidation stream.

    Examples:

      ccxt-cli stream-liquidations BTCUSDT-PERP ETHUSDT-PERP

      ccxt-cli stream-liquidations --all -e binance --duration 10m --json
    """
    import asyncio

    from ccxt_pipeline.stream.run import LiquidationStream, StreamRequest

    settings = load(config, catalog)
    seconds = _seconds(duration) if duration is not None else None
    if not symbols and not all_market and not settings.symbols:  # the library's line does not know the flags
        raise PipelineError("no symbol to stream: name symbols, use --all, or set `symbols` in settings")
    request = StreamRequest(symbols or (), exchange or (), all_market, seconds, store=not no_store)
    stream = LiquidationStream(settings, request, on_records=_printer(json_out))
    for note in stream.notes:
        err.print(f"note: {note}", markup=False)
    summary = asyncio.run(_run(stream, settings.stream.health_seconds))
    if json_out:
        sys.stdout.write(json.dumps({"summary": summary.as_dict()}) + "\n")
    else:
        _print_summary(summary)
    if summary.failure:  # the writer failed and stopped the stream: one line, exit 1 (3 if nothing stored)
        unsaved = f" ({summary.unsaved_events} events not stored)" if summary.unsaved_events else ""
        err.print(f"error: {summary.failure}{unsaved}", markup=False)
        raise typer.Exit(int(Exit.PARTIAL if summary.rows_written else Exit.FAILED))
    if summary.unsaved_events:  # the catalog never became writable again: one line, exit 1
        err.print(f"error: {summary.unsaved_events} events not stored: {summary.storage}", markup=False)
        raise typer.Exit(int(Exit.PARTIAL))
    if summary.never_connected:
        # An exchange that never connected is a failure, not a quiet success (exit 1, or 3 if none did).
        for name, why in summary.never_connected.items():
            err.print(f"error: {name} never connected: {why}", markup=False)
        everyone = len(summary.never_connected) == len(summary.health)
        raise typer.Exit(int(Exit.FAILED if everyone else Exit.PARTIAL))


stream_liquidations.__doc__ = f"{stream_liquidations.__doc__}\n\n    {EXIT_CODES_HELP}"


async def _run(stream: LiquidationStream, health_seconds: float) -> StreamSummary:
    import asyncio  # not at the top: --help need not load it

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    reporter = asyncio.create_task(_health_lines(stream, health_seconds))
    try:
        return await stream.run(stop)
    finally:
        reporter.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


_HEALTH = "health  "


def _width() -> int:
    """Room for one health line: the terminal's width (never wrapped), or 150 when not a terminal."""
    from ccxt_pipeline.stream.health import LINE_WIDTH

    return max(80, min(err.width, 240)) - len(_HEALTH) - 1 if err.is_terminal else LINE_WIDTH


async def _health_lines(stream: LiquidationStream, every: float) -> None:
    """Every `every` seconds, one line per exchange (and one for the catalog while it cannot write)."""
    import asyncio

    while True:
        await asyncio.sleep(every)
        now, width = now_ns(), _width()
        lines = [h.line(now, width) for h in stream.health.values()]
        storage = stream.batcher.status()  # `disk full: 25 events waiting` while it cannot write
        if storage:
            lines.append(f"catalog: {storage}"[:width])
        err.print("\n".join(_HEALTH + line for line in lines), markup=False)


def _printer(json_out: bool) -> Callable[[list[Record]], None]:
    from ccxt_pipeline.models import Liquidation

    def show(records: list[Record]) -> None:
        lines = []
        for r in records:
            if not isinstance(r, Liquidation):
                continue
            if json_out:
                lines.append(json.dumps(r.model_dump(mode="json")))
            else:
                lines.append(
                    f"{ns_to_iso(r.ts_event)[:23]}Z  {r.exchange:<8} {r.instrument_id:<26} {r.side.value:<5} "
                    f"qty {r.quantity:<14g} price {r.price:<12g} notional {r.notional:,.2f}"
                )
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

    return show


def _print_summary(summary: StreamSummary) -> None:
    err.print(
        f"stopped after {summary.seconds:.1f}s: {summary.rows_written} liquidations written, "
        f"{summary.gaps_written} gap rows recorded",
        markup=False,
    )
    now, width = now_ns(), _width()
    for h in summary.health.values():
        err.print("  " + h.line(now, width), markup=False)
    if summary.dropped_batches:
        err.print(f"[bold red]{summary.dropped_batches} batches dropped: the writer fell behind[/]")
    if summary.dropped_events:
        err.print(f"{summary.dropped_events} events dropped while the catalog could not be written (gaps)")


def _seconds(text: str) -> float:
    """`--duration`, in the one duration grammar (timeutil.parse_duration); zero would stream nothing."""
    ns = parse_duration(text, "duration")
    if ns == 0:
        raise InputError("duration", f"duration {text!r} is zero: streaming would stop at once")
    return ns / NS_PER_SECOND


__all__ = ["stream_liquidations"]
