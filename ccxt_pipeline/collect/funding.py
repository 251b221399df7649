"""Funding: the live estimate, and the settled history with our own paging.

ccxt's own `paginate` steps on a fixed 8h grid and leaves holes for 4h or 1h symbols (see
docs/exchanges.md), so history is paged here: windows sized for the symbol's current interval, and
`page_window` asks again wherever an answer leaves room for more settlements. Each row's interval is the
spacing from the settlement before it (one earlier settlement is fetched for the first row).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ccxt_pipeline.catalog.schema import FUNDING_RATE, to_table
from ccxt_pipeline.collect.history import Checkpoints, History, Hooks, Store, Stored
from ccxt_pipeline.collect.paging import FetchPage, Outcome, fetch_each
from ccxt_pipeline.collect.plan import Range, confirmed_holes, settlement_holes, span_windows, subtract
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, FundingRateEstimate
from ccxt_pipeline.parsers.common import interval_minutes
from ccxt_pipeline.parsers.funding import parse_funding_estimate, parse_funding_history
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS, NS_PER_SECOND, now_ns

Clock = Callable[[], int]
_SHORTEST_INTERVAL = NS_PER_HOUR
_LONGEST_INTERVAL = NS_PER_DAY
_STAMP_SLACK = NS_PER_SECOND
"""Settlements may be stamped a little after the hour (Hyperliquid: `"time":1683849600076` in
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals), so two can be
slightly less than an interval apart: paging allows this much."""


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


@dataclass(frozen=True)
class FundingPlan:
    """What a funding history fetch asks for: the `ranges` with settlements missing, padded into `spans`
    (one settlement further back, for the first row's interval) cut into page-sized `windows`."""

    ranges: list[Range]
    spans: list[Range]
    windows: list[Range]


def plan_funding(ranges: list[Range], interval_minutes: int | None, page_limit: int) -> FundingPlan:
    """Pure: the spans and page windows covering `ranges`, for pages of `page_limit` settlements at the
    symbol's current interval (an hour if unknown)."""
    # Fetch one settlement further back than each range, so its first row's interval is known too;
    # ranges closer together than that are fetched as one span.
    spans: list[Range] = []
    for r in ranges:
        padded = Range(max(0, r.start - _LONGEST_INTERVAL), r.end)
        if spans and padded.start <= spans[-1].end + 1:
            spans[-1] = Range(spans[-1].start, r.end)
        else:
            spans.append(padded)
    window_ns = page_limit * (interval_minutes or 60) * NS_PER_MINUTE
    windows = [w for span in spans for w in span_windows(span, window_ns)]
    return FundingPlan(ranges, spans, windows)


def missing_settlements(
    start: int, end: int, stored: Stored
) -> tuple[list[tuple[int, int | None]], list[Range]]:
    """Pure: the stored settlements (time, interval) and the ranges missing settlements in [start, end],
    less the recorded gaps."""
    settled = list(zip(stored.times.tolist(), stored.intervals, strict=True))
    ranges = subtract(settlement_holes(start, end, settled, shortest=_SHORTEST_INTERVAL), stored.gaps)
    return settled, ranges


def funding_pages(client: ExchangeClient, inst: Instrument) -> FetchPage[dict[str, Any]]:
    """One page of settled funding rows for a window, through ccxt's unified method."""
    limit = client.venue.funding_history_limit

    async def fetch(w: Range) -> Sequence[dict[str, Any]]:
        return await client.call(  # type: ignore[no-any-return]
            "fetch_funding_rate_history",
            inst.ccxt_symbol,
            -(-w.start // NS_PER_MS),
            limit,
            {"until": w.end // NS_PER_MS},
        )

    return fetch


def funding_gaps(
    inst: Instrument,
    start: int,
    end: int,
    known: list[tuple[int, int | None]],
    ranges: list[Range],
    failed: list[Range],
) -> list[CoverageGap]:
    """Pure: the settlement holes left after the fetch that the exchange confirmed by serving nothing there."""
    left = settlement_holes(start, end, known, shortest=_SHORTEST_INTERVAL)
    last_known = known[-1][0] if known else None
    return [
        CoverageGap.between(
            FUNDING_RATE,
            inst.exchange,
            inst.instrument_id,
            hole.start,
            hole.end,
            "the exchange served no settlement here",
        )
        for hole in confirmed_holes(left, ranges, failed, last_known)
    ]


async def funding_history(
    client: ExchangeClient,
    inst: Instrument,
    start: int,
    end: int,
    stored: Stored,
    store: Store,
    *,
    clock: Clock = now_ns,
    hooks: Hooks | None = None,
) -> History:
    """Every settlement in [start, end] not already stored (nor recorded as a gap), with its interval,
    handed to `store` in checkpoints as it arrives; and the holes the exchange left."""
    client.require("fetchFundingRateHistory", "funding rate history")
    venue = client.venue
    end = min(end, clock())
    out = History(FUNDING_RATE)
    settled, ranges = missing_settlements(start, end, stored)
    if not ranges:
        return out
    interval = known_interval(client, inst.ccxt_symbol) or venue.default_funding_interval_minutes
    plan = plan_funding(ranges, interval, venue.funding_history_limit)
    out.windows = len(plan.windows)
    pages = _FundingWindows(inst, plan, venue.funding_interval_minutes, out, Checkpoints(store), hooks)
    if hooks is not None:
        hooks.plan(len(plan.windows))
    try:
        await fetch_each(
            funding_pages(client, inst),
            plan.windows,
            _ts_ns,
            _spacing,
            pages.on_window,
            ordered=True,
            slack=_STAMP_SLACK,
        )
    finally:
        await pages.checkpoints.flush()  # what arrived is kept, whatever stopped the rest
    out.rows = pages.checkpoints.stored
    known = sorted(dict([*settled, *pages.fetched]).items())
    out.gaps.extend(funding_gaps(inst, start, end, known, ranges, out.failed))
    return out


class _FundingWindows:
    """Each window in time order: its settlements with their intervals (the spacing from the settlement
    before), those wanted checkpointed; or its failure."""

    def __init__(
        self,
        inst: Instrument,
        plan: FundingPlan,
        fixed_interval: int | None,
        out: History,
        checkpoints: Checkpoints,
        hooks: Hooks | None,
    ) -> None:
        self.inst, self.ranges, self.fixed_interval = inst, plan.ranges, fixed_interval
        self.span_starts = {span.start for span in plan.spans}
        self.out, self.checkpoints, self.hooks = out, checkpoints, hooks
        self.fetched: list[tuple[int, int | None]] = []
        self.previous: int | None = None  # the latest settlement before the window at hand, in time order
        self.broken = (
            False  # the window before failed: the first settlement of this one has no known interval
        )

    async def on_window(self, done: Outcome[dict[str, Any]]) -> None:
        # Windows arrive in time order: each row's interval is the spacing from the settlement before it.
        if done.window.start in self.span_starts:
            self.previous, self.broken = None, False  # a new span: its padding holds the settlement before
        if done.error is not None:
            self.out.failed.append(done.window)
            self.out.error = done.error
            self.previous, self.broken = None, True
            if self.hooks is not None:
                self.hooks.advance(0)
            return
        rows = parse_funding_history(
            done.rows, self.inst, prev_ns=self.previous, fixed_interval=self.fixed_interval
        )
        if self.broken and self.fixed_interval is None and rows:
            rows = rows[1:]  # left for the rerun, which fetches it with the settlement before
        self.broken = False
        if rows:
            self.previous = rows[-1].ts_event
        wanted = [r for r in rows if any(rg.start <= r.ts_event <= rg.end for rg in self.ranges)]
        self.fetched.extend((r.ts_event, _ns(r.interval_minutes)) for r in wanted)
        await self.checkpoints.add(to_table(FUNDING_RATE, wanted))
        if self.hooks is not None:
            self.hooks.advance(len(wanted))


def _ns(minutes: int | None) -> int | None:
    return None if minutes is None else minutes * NS_PER_MINUTE


def _ts_ns(row: Mapping[str, Any]) -> int:
    return int(row["timestamp"]) * NS_PER_MS


def _spacing(times: list[int]) -> int:
    """The smallest spacing between settlements in one answer, bounded to real funding intervals."""
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return max(_SHORTEST_INTERVAL, min(gaps)) if gaps else _SHORTEST_INTERVAL
