"""Funding: the live estimate, and the settled history with our own paging.

ccxt's own `paginate` steps on a fixed 8h grid and leaves holes for 4h or 1h symbols (see
docs/exchanges.md), so history is paged here: windows sized for the symbol's current interval, and
`page_window` asks again wherever an answer leaves room for more settlements. Each row's interval is the
spacing from the settlement before it (one earlier settlement is fetched for the first row).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ccxt_pipeline.catalog.schema import FUNDING_RATE, to_table
from ccxt_pipeline.collect.history import History, Hooks
from ccxt_pipeline.collect.paging import page_windows
from ccxt_pipeline.collect.plan import Range, missing_ranges
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, FundingRate, FundingRateEstimate
from ccxt_pipeline.parsers.common import interval_minutes
from ccxt_pipeline.parsers.funding import parse_funding_estimate, parse_funding_history
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS, now_ns

Clock = Callable[[], int]
_SHORTEST_INTERVAL = NS_PER_HOUR
_LONGEST_INTERVAL = NS_PER_DAY


async def current_funding(
    client: ExchangeClient, instruments: Sequence[Instrument], clock: Clock = now_ns
) -> list[FundingRateEstimate]:
    """The live funding estimate of each instrument on one exchange."""
    client.require("fetchFundingRates", "current funding rates")
    symbols = [i.ccxt_symbol for i in instruments]
    answer: Mapping[str, Any] = await client.call("fetch_funding_rates", symbols)
    received = clock()
    intervals = await _intervals(client, instruments, answer)
    return [
        parse_funding_estimate(
            answer[i.ccxt_symbol], i, received_ns=received, interval=intervals.get(i.ccxt_symbol)
        )
        for i in instruments
    ]


async def _intervals(
    client: ExchangeClient, instruments: Sequence[Instrument], answer: Mapping[str, Any]
) -> dict[str, int | None]:
    """Funding intervals in minutes where the funding-rate answer lacks them (Binance: fundingInfo)."""
    missing = [i.ccxt_symbol for i in instruments if not (answer.get(i.ccxt_symbol) or {}).get("interval")]
    out: dict[str, int | None] = {s: known_interval(client, s) for s in missing}
    if any(v is None for v in out.values()) and client.supports("fetchFundingIntervals"):
        listed: Mapping[str, Any] = await client.call("fetch_funding_intervals", missing)
        for s in missing:
            text = (listed.get(s) or {}).get("interval")
            minutes = interval_minutes(text)
            out[s] = minutes if minutes is not None else client.venue.default_funding_interval_minutes
    return out


def known_interval(client: ExchangeClient, symbol: str) -> int | None:
    """The symbol's current funding interval in minutes from facts already at hand, without a request."""
    if client.venue.funding_interval_minutes is not None:
        return client.venue.funding_interval_minutes
    field = client.venue.market_funding_interval_field
    if field is not None:
        value = (client.market(symbol).get("info") or {}).get(field)
        if value:
            return int(value)
    return None


async def funding_history(
    client: ExchangeClient,
    inst: Instrument,
    start: int,
    end: int,
    stored: tuple[int, int] | None,
    last_interval: int | None,
    *,
    clock: Clock = now_ns,
    hooks: Hooks | None = None,
) -> History:
    """Every settlement in [start, end] not already stored, with its interval, and the holes between."""
    client.require("fetchFundingRateHistory", "funding rate history")
    venue = client.venue
    end = min(end, clock())
    interval = known_interval(client, inst.ccxt_symbol) or venue.default_funding_interval_minutes
    tail_step = (last_interval or venue.funding_interval_minutes or 60) * NS_PER_MINUTE
    ranges = missing_ranges(start, end, stored, head_step=_SHORTEST_INTERVAL, tail_step=tail_step)
    out = History(FUNDING_RATE, FUNDING_RATE.schema.empty_table())
    if not ranges:
        return out
    # Fetch one settlement further back than asked, so the first row's interval is known too.
    padded = [Range(max(0, r.start - _LONGEST_INTERVAL), r.end) for r in ranges]
    window_ns = venue.funding_history_limit * (interval or 60) * NS_PER_MINUTE
    windows = [
        Range(s, min(s + window_ns - 1, r.end)) for r in padded for s in range(r.start, r.end + 1, window_ns)
    ]

    async def fetch(w: Range) -> Sequence[dict[str, Any]]:
        return await client.call(  # type: ignore[no-any-return]
            "fetch_funding_rate_history",
            inst.ccxt_symbol,
            -(-w.start // NS_PER_MS),
            venue.funding_history_limit,
            {"until": w.end // NS_PER_MS},
        )

    if hooks is not None:
        hooks.plan(len(windows))
    rows = await page_windows(
        fetch,
        windows,
        _ts_ns,
        _spacing,
        on_window=hooks.advance if hooks else None,
    )
    # Intervals come from the spacing to the settlement before, fetched too thanks to the padding.
    parsed = parse_funding_history(rows, inst, fixed_interval=venue.funding_interval_minutes)
    wanted = [r for r in parsed if any(rg.start <= r.ts_event <= rg.end for rg in ranges)]
    out.table = to_table(FUNDING_RATE, wanted)
    out.gaps.extend(_holes(inst, wanted))
    return out


def _ts_ns(row: Mapping[str, Any]) -> int:
    return int(row["timestamp"]) * NS_PER_MS


def _spacing(times: list[int]) -> int:
    """The smallest spacing between settlements in one answer, bounded to real funding intervals."""
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return max(_SHORTEST_INTERVAL, min(gaps)) if gaps else _SHORTEST_INTERVAL


def _holes(inst: Instrument, rows: Sequence[FundingRate]) -> list[CoverageGap]:
    """Ranges between consecutive settlements whose spacing is no funding interval: settlements missing."""
    out = []
    for a, b in itertools.pairwise(rows):
        if b.interval_minutes is None and b.ts_event - a.ts_event > _SHORTEST_INTERVAL:
            out.append(
                CoverageGap(
                    exchange=inst.exchange,
                    instrument_id=inst.instrument_id,
                    data_type="funding_rate",
                    ts_event=a.ts_event + 1,
                    ts_init=a.ts_event + 1,
                    end_ns=b.ts_event - 1,
                    reason="no settlement served between these two (spacing is no funding interval)",
                )
            )
    return out
