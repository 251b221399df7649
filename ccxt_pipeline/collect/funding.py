"""Funding: the live estimate, and the settled history with our own paging.

ccxt's own `paginate` steps on a fixed 8h grid and leaves holes for 4h or 1h symbols (see
docs/exchanges.md), so history is paged here: windows sized for the symbol's current interval, and
`page_window` asks again wherever an answer leaves room for more settlements. Each row's interval is the
spacing from the settlement before it (one earlier settlement is fetched for the first row).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ccxt_pipeline.catalog.schema import FUNDING_RATE, to_table
from ccxt_pipeline.collect.history import Checkpoints, History, Hooks, Store, Stored, tables_checkpoints
from ccxt_pipeline.collect.paging import FetchPage, Outcome, fetch_each
from ccxt_pipeline.collect.plan import Range, confirmed_holes, settlement_holes, subtract
from ccxt_pipeline.errors import ExchangeError
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


def plan_funding(
    ranges: list[Range],
    interval_minutes: int | None,
    page_limit: int,
    floor: int = 0,
    until: int | None = None,
    *,
    settles_after_floor: bool = False,
) -> FundingPlan:
    """Pure: the spans and page windows covering `ranges`, for pages of `page_limit` settlements at the
    symbol's current interval (an hour if unknown). Nothing before `floor` (the listing) is asked for, nor
    after `until` (now; default: the last range's end). `settles_after_floor`: see `past_listing`."""
    interval = (interval_minutes or 60) * NS_PER_MINUTE
    cap = ranges[-1].end if until is None else until
    # Fetch one settlement further back than each range, so its first row's interval is known too;
    # ranges closer together than that are fetched as one span.
    spans: list[Range] = []
    for r in ranges:
        padded = widen(Range(max(floor, r.start - _LONGEST_INTERVAL), r.end), floor, cap)
        if settles_after_floor and floor > 0 and padded.start == floor:
            past = past_listing(floor, interval)
            if past > padded.end:
                continue
            padded = Range(past, padded.end)
        if spans and padded.start <= spans[-1].end + 1:
            spans[-1] = Range(spans[-1].start, padded.end)
        else:
            spans.append(padded)
    windows = [w for span in spans for w in settlement_windows(span, interval, page_limit)]
    return FundingPlan(ranges, spans, windows)


def past_listing(listed: int, interval: int) -> int:
    """Pure: where a span starting at the listing `listed` starts when the exchange settles only after it:
    past a settlement time that lies within the paging's stamp slack of the listing, else the listing.

    A settlement pays for the interval before it (each row's interval is the spacing from the settlement
    before, module docstring), so none is due at the listing instant itself: the period it would close
    predates the market. Bybit (newest first, `NEWEST_FIRST`) then answers the first settlements one grid
    step after a listing on the grid, and a window starting at the listing would look, after a page that
    reaches back to that first settlement, like it had room for one more row: one wasted request per
    symbol of an `--all` backfill (docs/benchmarks.md, issue 12). No Bybit page states the first
    settlement's time in so many words; the simulator follows the same rule (`simulator/data.py`
    `_segments`, "strictly after the listing")."""
    k = (listed + interval // 2) // interval
    if abs(listed - k * interval) <= _STAMP_SLACK:
        return max(listed, k * interval + _STAMP_SLACK + 1)
    return listed


def widen(span: Range, floor: int, until: int) -> Range:
    """Pure: `span`, with an end that lies within the paging's stamp slack of an hour (where every
    exchange's settlements lie, whatever their interval) moved half an hour past it (`settlement_windows`
    says why), never before `floor` nor after `until` (now: a settlement not due yet would leave the same
    room)."""
    grid, off = _SHORTEST_INTERVAL, _SHORTEST_INTERVAL // 2
    start, end = span.start, span.end
    k = (start + off) // grid
    if abs(start - k * grid) <= _STAMP_SLACK:
        start = min(start, max(floor, k * grid - off))
    k = (end + off) // grid
    if abs(end - k * grid) <= _STAMP_SLACK:
        end = max(end, min(until, k * grid + off - 1))
    return Range(start, end)


def settlement_windows(span: Range, interval: int, per_window: int) -> list[Range]:
    """Pure: `span` cut into windows of at most `per_window` settlements `interval` apart, every boundary
    between two windows half an hour past a settlement of that grid.

    Exchanges settle on the UTC grid of the interval (Binance and Bybit at 00:00, 08:00, 16:00 for 8h:
    `"fundingTime": 1570608000000` in Binance's Get-Funding-Rate-History example, `"fundingRateTimestamp":
    "1672041600000"` in Bybit's history-fund-rate example, both 08:00 UTC; Hyperliquid every hour, stamped
    a few ms late, `"time":1683849600076`; tests/fixtures/SOURCES.md). A window ending just before a
    settlement leaves room for one more row after a full page (an interval, less the paging's stamp slack),
    so the paging asks again: one wasted request per page, 20 weight each on Hyperliquid. Ending half an
    hour past a settlement, a full page leaves less than an interval of room, and a complete answer costs one
    request. The interval planned with may not be the one the history settled at: Binance's is planned at 8
    hours (its markets do not tell it), and a symbol settling every 4 or 1 hours holds two or eight pages
    in such a window; a boundary half of the planned interval off its grid would lie on theirs, and each
    window's last full page would cost a second, empty request (76 of 738 pages in a whole-market Binance
    backfill, docs/benchmarks.md). Half an hour off the hour grid is off every exchange's grid at once.
    Settlement `k * interval` belongs to the slot [k * interval - interval + half, k * interval + half) with
    half = 30 minutes; the first window may start inside a slot; its slots are counted from the first
    settlement that can be stamped inside it (one at most the stamp slack before its start, stamped late),
    so that it holds a full page too. The span's own ends are the caller's (`widen`). Sources:
    tests/fixtures/SOURCES.md, "Funding paging"."""
    half = _SHORTEST_INTERVAL // 2
    last_slot = -(-(span.start - _STAMP_SLACK) // interval) + per_window - 1
    out = []
    start = span.start
    while start <= span.end:
        end = min(last_slot * interval + half - 1, span.end)
        out.append(Range(start, end))
        start = end + 1
        last_slot += per_window
    return out


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
    listed: int | None = None,
    record_gaps: RecordGaps | None = None,
) -> History:
    """Every settlement in [start, end] not already stored (nor recorded as a gap), with its interval,
    handed to `store` in checkpoints as it arrives; and the holes the exchange left.

    `listed`: when the exchange listed the symbol; nothing earlier is asked for. Where the exchange does not
    say (Hyperliquid), the first page of a missing head answers where the series begins (`probe_head`);
    the empty head is recorded at once through `record_gaps`, so no rerun asks for it again."""
    client.require("fetchFundingRateHistory", "funding rate history")
    venue = client.venue
    now = clock()
    end = min(end, now)
    out = History(FUNDING_RATE)
    settled, ranges = missing_settlements(start, end, stored)
    if not ranges:
        return out
    fetch = funding_pages(client, inst)
    floor = listed or 0
    if listed is None and venue.name in OLDEST_FIRST and ranges[0].start == start:
        head = await probe_head(fetch, inst, ranges[0])
        if head is not None:
            ranges, floor, fetch = _after_probe(head, ranges, fetch)
            gap = head.gap
            if gap is None and head.first is None and any(t > head.asked.end for t, _ in settled):
                gap = _head_gap(inst, head.asked)  # nothing before what is stored: the exchange has no more
            if gap is not None:
                out.gaps.append(gap)
                if record_gaps is not None:
                    await record_gaps([gap])
        if not ranges:
            return out
    interval = known_interval(client, inst.ccxt_symbol) or venue.default_funding_interval_minutes
    plan = plan_funding(
        ranges,
        interval,
        venue.funding_history_limit,
        floor,
        now,
        settles_after_floor=listed is not None and venue.name in NEWEST_FIRST,
    )
    out.windows = len(plan.windows)
    pages = _FundingWindows(inst, plan, venue.funding_interval_minutes, out, tables_checkpoints(store), hooks)
    if hooks is not None:
        hooks.plan(len(plan.windows))
    try:
        await fetch_each(
            fetch,
            plan.windows,
            _ts_ns,
            _spacing,
            pages.on_window,
            ordered=True,
            slack=_STAMP_SLACK,
            order="oldest"
            if venue.name in OLDEST_FIRST
            else "newest"
            if venue.name in NEWEST_FIRST
            else None,
        )
    finally:
        await pages.checkpoints.flush()  # what arrived is kept, whatever stopped the rest
    out.rows = pages.checkpoints.stored
    known = sorted(dict([*settled, *pages.fetched]).items())
    out.gaps.extend(funding_gaps(inst, start, end, known, ranges, out.failed))
    return out


RecordGaps = Callable[[Sequence[CoverageGap]], Awaitable[Any]]

OLDEST_FIRST = frozenset({"binance", "hyperliquid"})
"""Venues whose funding history answers the oldest settlements from `startTime` on, so that the first row of
one page asked from a time is the first settlement after it: Binance ("startTime ... ascending", up to
1000 rows, https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History),
Hyperliquid (`fundingHistory` with `startTime`, up to 500 rows in time order,
https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals). Bybit answers
newest first (https://bybit-exchange.github.io/docs/v5/market/history-fund-rate) and gives listing times."""

NEWEST_FIRST = frozenset({"bybit"})
"""Venues whose funding history answers the newest settlements back from `endTime` (Bybit, above): a page
cut at the limit is missing rows before its first, never after its last."""


@dataclass(frozen=True)
class Head:
    """What one page asked from the start of a missing head answered: where the series begins."""

    asked: Range
    rows: Sequence[dict[str, Any]]
    """The page's rows inside `asked`, empty if the exchange has nothing there."""
    first: int | None
    gap: CoverageGap | None
    """[asked.start, first - 1]: the exchange served nothing there (before its listing)."""


async def probe_head(fetch: FetchPage[dict[str, Any]], inst: Instrument, head: Range) -> Head | None:
    """One page from the start of `head`: its first settlement is where the series begins (see
    `OLDEST_FIRST`). None if the page failed (the plan then asks for the head as usual)."""
    try:
        page = await fetch(head)
    except ExchangeError:
        return None
    rows = [r for r in page if head.start <= _ts_ns(r) <= head.end]
    if not rows:
        return Head(head, [], None, None)
    first = min(_ts_ns(r) for r in rows)
    # Less than the shortest interval before the first one: no settlement is missing, nothing to record.
    gap = _head_gap(inst, Range(head.start, first - 1)) if first - head.start >= _SHORTEST_INTERVAL else None
    return Head(head, rows, first, gap)


def _head_gap(inst: Instrument, r: Range) -> CoverageGap:
    return CoverageGap.between(
        FUNDING_RATE,
        inst.exchange,
        inst.instrument_id,
        r.start,
        r.end,
        "before the first settlement the exchange serves (its listing)",
    )


def _after_probe(
    head: Head, ranges: list[Range], fetch: FetchPage[dict[str, Any]]
) -> tuple[list[Range], int, FetchPage[dict[str, Any]]]:
    """The ranges from the series' first settlement on, that settlement as the floor, and a page fetch that
    answers the first window from the probe's page instead of asking again."""
    if head.first is None:  # nothing at all in the head range
        return ranges[1:], head.asked.end + 1, fetch
    first = head.first
    rest = [Range(first, ranges[0].end), *ranges[1:]]
    served = [head.rows]

    async def fetch_once_more(w: Range) -> Sequence[dict[str, Any]]:
        if served and w.start == first:
            return served.pop()
        return await fetch(w)

    return rest, first, fetch_once_more


class _FundingWindows:
    """Each window in time order: its settlements with their intervals (the spacing from the settlement
    before), those wanted checkpointed; or its failure."""

    def __init__(
        self,
        inst: Instrument,
        plan: FundingPlan,
        fixed_interval: int | None,
        out: History,
        checkpoints: Checkpoints[pa.Table],
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
        table = to_table(FUNDING_RATE, wanted)
        await self.checkpoints.add(table, table.num_rows)
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
