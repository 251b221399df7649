"""What a fetch asks for, and its check before any request: exchange names, symbol syntax, period, range."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ccxt_pipeline.catalog.schema import FUNDING_RATE, OPEN_INTEREST, DataKind
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.timeutil import PERIODS_NS, describe_ns
from ccxt_pipeline.venues import get_venue, venue_for_nautilus

NO_HISTORY = "keeps no open-interest history; it accrues once the daemon records it"


FETCHED_KINDS: tuple[DataKind, ...] = (OPEN_INTEREST, FUNDING_RATE)
"""What `fetch_on` runs. `FUNDING_RATE` asks for funding: settled rates with a `start`, the live
estimate (stored as `FUNDING_ESTIMATE`) without."""


@dataclass(frozen=True)
class FetchRequest:
    data: DataKind
    """One of `FETCHED_KINDS`."""
    symbols: Sequence[str]
    exchanges: Sequence[str] = ()
    """Empty: every enabled exchange in settings."""
    start: int | None = None
    """None: current values; else a history backfill from here."""
    end: int | None = None
    period: str = "5m"
    store: bool = True
    all_symbols: bool = False
    """Every linear perpetual each exchange lists (`symbols` must then be empty)."""


def check_request(settings: Settings, request: FetchRequest, now: int) -> list[str]:
    """Validate what can be validated offline; return the exchange names to use."""
    if request.data not in FETCHED_KINDS:
        raise PipelineError(
            f"{request.data.name} is not fetched (fetched: {', '.join(k.name for k in FETCHED_KINDS)})"
        )
    if request.all_symbols and request.symbols:
        raise PipelineError("every perpetual was asked for: name no symbols with it")
    if not request.all_symbols and not request.symbols:
        raise PipelineError("no symbol to fetch: name symbols, or ask for every perpetual")
    pinned = [pinned_exchange(s) for s in request.symbols]
    if request.exchanges:
        names = [get_venue(e).name for e in request.exchanges]
    elif request.symbols and all(pinned):
        names = [p for p in pinned if p is not None]  # full ids select their exchanges, and only those
    else:
        names = settings.enabled_exchanges()
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
        if request.data is OPEN_INTEREST:
            _check_period(names, request.period)
    return names


def pinned_exchange(symbol: str) -> str | None:
    """The exchange a full instrument id (`BTCUSDT-PERP.BINANCE`) names, or None for any other form."""
    text = symbol.strip()
    if "/" in text or "." not in text:
        return None
    venue = venue_for_nautilus(text.rpartition(".")[2])
    return venue.name if venue is not None else None


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
