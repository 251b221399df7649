"""Open interest: current values from every exchange, and history with our own paging.

Current values come from where each exchange keeps them live (venue table `current_oi`): Binance
`fetch_open_interest`, Bybit's tickers (its open-interest endpoint serves the hourly row, up to an hour
old), Hyperliquid's `fetch_open_interests` (the whole universe, one request, no timestamp: stamped at
receipt). A missing value is amount x mark price.

History whose rows carry no value (Bybit) is priced by the exchange's mark-price candles
(`RawHistory.value_from_mark`): value = amount x the open of the candle starting at the row's time, the
candles fetched alongside the open-interest pages, for the same ranges only. A point without its candle keeps
an empty value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ccxt_pipeline.catalog.schema import OPEN_INTEREST
from ccxt_pipeline.collect.history import Checkpoints, History, Hooks, Store, Stored
from ccxt_pipeline.collect.paging import FetchPage, Outcome, fetch_each, page_window
from ccxt_pipeline.collect.plan import (
    Range,
    align_down,
    align_up,
    confirmed_holes,
    grid_holes,
    grid_windows,
    subtract,
)
from ccxt_pipeline.collect.request import NO_HISTORY
from ccxt_pipeline.errors import ExchangeError, NotSupportedError
from ccxt_pipeline.exchanges.client import ExchangeClient
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, OpenInterest
from ccxt_pipeline.parsers.common import positive
from ccxt_pipeline.parsers.open_interest import (
    mark_opens,
    open_interest_history_table,
    parse_open_interest,
    parse_ticker_open_interest,
)
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE, NS_PER_MS, PERIODS_NS, now_ns
from ccxt_pipeline.venues import MarkKline, RawHistory, Venue

Clock = Callable[[], int]


async def current_open_interest(
    client: ExchangeClient, instruments: Sequence[Instrument], clock: Clock = now_ns
) -> list[OpenInterest]:
    """The live open interest of each instrument on one exchange."""
    symbols = [i.ccxt_symbol for i in instruments]
    source = client.venue.current_oi
    if source == "ticker":
        tickers = await client.call("fetch_tickers", symbols)
        received = clock()
        return [
            parse_ticker_open_interest(
                tickers[i.ccxt_symbol], i, received_ns=received, fields=client.venue.ticker_oi
            )
            for i in instruments
        ]
    if source == "open_interests":
        items = await client.call("fetch_open_interests", symbols)
        received = clock()
        fields = client.venue.current_oi_raw  # Hyperliquid: half its both-sides `openInterest`
        return [
            parse_open_interest(items[i.ccxt_symbol], i, received_ns=received, fields=fields)
            for i in instruments
        ]
    client.require("fetchOpenInterest", "open interest")
    answers = await asyncio.gather(*(client.call("fetch_open_interest", s) for s in symbols))
    received = clock()
    marks: Mapping[str, float | None] = {}
    if any(a.get("openInterestValue") is None for a in answers):
        marks = await mark_prices(client, symbols)
    return [
        parse_open_interest(
            a,
            i,
            received_ns=received,
            mark_price=marks.get(i.ccxt_symbol),
            fields=client.venue.current_oi_raw,
        )
        for a, i in zip(answers, instruments, strict=True)
    ]


async def mark_prices(client: ExchangeClient, symbols: list[str]) -> dict[str, float | None]:
    """Mark prices in one request where the exchange allows it."""
    method = "fetch_mark_prices" if client.supports("fetchMarkPrices") else "fetch_funding_rates"
    answer: Mapping[str, Any] = await client.call(method, symbols)
    return {s: positive((answer.get(s) or {}).get("markPrice")) for s in symbols}


@dataclass(frozen=True)
class OiPlan:
    """What an open-interest history fetch asks for: the grid [start, end] of `step`, the `ranges` not
    stored (nor recorded as gaps) that the exchange still serves, cut into page-sized `windows`; and the
    `gaps` older than the exchange serves."""

    start: int
    end: int
    step: int
    ranges: list[Range]
    windows: list[Range]
    gaps: list[CoverageGap]


def plan_open_interest(
    venue: Venue, inst: Instrument, start: int, end: int, period: str, stored: Stored, now: int
) -> OiPlan:
    """Pure: the ranges and page windows to fetch, given what is stored and the venue's paging."""
    step = PERIODS_NS[period]
    start, end = align_up(start, step), align_down(min(end, now), step)
    ranges = subtract(grid_holes(start, end, step, stored.times), stored.gaps)
    gaps: list[CoverageGap] = []
    earliest = served_since(venue, now, step)
    if earliest is not None:
        ranges = _clip(ranges, inst, earliest, _horizon(venue), gaps)
    windows = [w for r in ranges for w in grid_windows(r, step, venue.oi_history_limit)]
    return OiPlan(start, end, step, ranges, windows, gaps)


def served_since(venue: Venue, now: int, step: int) -> int | None:
    """Pure: the first grid point the venue still serves at `now` (Binance: the last 30 days), or None if it
    serves all its history. A minute's margin: the exchange measures its window when our request arrives,
    a moment later."""
    if venue.oi_history_days is None:
        return None
    return align_up(now - venue.oi_history_days * NS_PER_DAY + NS_PER_MINUTE, step)


def _horizon(venue: Venue) -> str:
    return f"{venue.name} serves open-interest history for the last {venue.oi_history_days} days only"


_HORIZON_RETRIES = 3
_HORIZON_RETRY_MARGIN = 5 * NS_PER_MINUTE
"""A request refused because the venue's window passed its start while it waited is asked again from this
much further in per attempt (Binance's 1000 pages per 5 minutes make a wait of up to 5 minutes)."""


def open_interest_pages(
    client: ExchangeClient,
    inst: Instrument,
    period: str,
    clock: Clock = now_ns,
    expired: list[Range] | None = None,
) -> FetchPage[dict[str, Any]]:
    """One page of open-interest history rows for a window: through ccxt's unified method, or the venue's
    raw endpoint (`venue.oi_history_raw`).

    A venue that serves only recent history (Binance, 30 days) is asked from where it serves at the moment
    of the request. A whole-market backfill takes long enough (20 minutes for Binance's 233 perpetuals at
    1000 pages per 5 minutes) for its oldest planned windows to leave the exchange's window, and a request
    may wait minutes for its turn under that limit; Binance refuses a start it no longer serves whole
    (-1130 "startTime is invalid"; ccxt issue #23712; tests/fixtures/SOURCES.md). A refusal of a request
    whose start the window passed while it waited is asked again from further in (`_HORIZON_RETRY_MARGIN`
    more each time, at most `_HORIZON_RETRIES` times). The part that left is added to `expired`."""
    venue = client.venue
    raw = venue.oi_history_raw
    market_id = client.market(inst.ccxt_symbol)["id"]
    step = PERIODS_NS[period]

    async def fetch(w: Range) -> Sequence[dict[str, Any]]:
        for attempt in range(_HORIZON_RETRIES + 1):
            earliest = served_since(venue, clock() + attempt * _HORIZON_RETRY_MARGIN, step)
            sent = w
            if earliest is not None and w.start < earliest:
                if expired is not None:  # a window asked again (paging) is not recorded twice
                    expired.extend(subtract([Range(w.start, min(w.end, earliest - 1))], expired))
                if w.end < earliest:
                    return []
                sent = Range(earliest, w.end)
            try:
                return await ask(sent)
            except ExchangeError:
                now_served = served_since(venue, clock(), step)
                if now_served is None or sent.start >= now_served or attempt == _HORIZON_RETRIES:
                    raise  # not the window passing the request's start while it waited
        raise AssertionError("unreachable")  # pragma: no cover

    async def ask(w: Range) -> Sequence[dict[str, Any]]:
        since, until = -(-w.start // NS_PER_MS), w.end // NS_PER_MS
        if raw is None:
            return await client.call(  # type: ignore[no-any-return]
                "fetch_open_interest_history",
                inst.ccxt_symbol,
                period,
                since,
                venue.oi_history_limit,
                {"until": until},
            )
        params = {
            **raw.params,
            "symbol": market_id,
            raw.period_param: raw.period_names[period],
            "startTime": since,
            "endTime": until,
            "limit": venue.oi_history_limit,
        }
        answer: Any = await client.call(raw.method, params)
        for key in raw.rows_path:
            answer = answer[key]
        return answer  # type: ignore[no-any-return]

    return fetch


def row_time(raw: RawHistory | None) -> Callable[[Mapping[str, Any]], int]:
    """A row's time in ns, from the field the endpoint stamps it with (ms)."""
    time_field = raw.time_field if raw else "timestamp"

    def ts_of(row: Mapping[str, Any]) -> int:
        return int(row[time_field]) * NS_PER_MS

    return ts_of


def on_grid_rows(
    rows: Sequence[dict[str, Any]], ts_of: Callable[[Mapping[str, Any]], int], step: int, seen: set[int]
) -> list[dict[str, Any]]:
    """Pure: the rows on the period's grid not `seen` yet (once each, as the exchange answered)."""
    return [row for row in rows if (ts := ts_of(row)) % step == 0 and ts not in seen]


def oi_table(
    rows: list[dict[str, Any]], inst: Instrument, raw: RawHistory | None, prices: dict[int, float] | None
) -> pa.Table:
    """Pure: the catalog table of one window's rows (valued by mark-price opens where the rows carry none)."""
    if raw is None:
        return open_interest_history_table(rows, inst)
    return open_interest_history_table(rows, inst, fields=raw.fields, time_field=raw.time_field, marks=prices)


_Part = tuple[list[dict[str, Any]], dict[int, float] | None]
"""One window's new rows on the grid, and the mark prices (ms -> price) that value them, if any."""


def oi_parts_table(parts: Sequence[_Part], inst: Instrument, raw: RawHistory | None) -> pa.Table:
    """Pure: one catalog table of several windows' rows (`oi_table` of them all at once)."""
    rows = [row for window_rows, _ in parts for row in window_rows]
    prices: dict[int, float] | None = None
    for _, window_prices in parts:
        if window_prices is not None:
            prices = {**(prices or {}), **window_prices}
    return oi_table(rows, inst, raw, prices)


def oi_gaps(
    inst: Instrument, plan: OiPlan, stored: np.ndarray, seen: set[int], failed: list[Range]
) -> list[CoverageGap]:
    """Pure: the grid holes left after the fetch that the exchange confirmed by serving nothing there."""
    start, end, step = plan.start, plan.end, plan.step
    known = np.concatenate([stored, np.fromiter(seen, np.int64, len(seen))])
    on_grid_known = known[(known >= start) & (known <= end) & (known % step == 0)]
    last_known = int(on_grid_known.max()) if on_grid_known.size else None
    left = grid_holes(start, end, step, on_grid_known)
    holes = confirmed_holes(left, plan.ranges, failed, last_known)
    return [_gap(inst, hole, "the exchange returned no data") for hole in holes]


async def open_interest_history(
    client: ExchangeClient,
    inst: Instrument,
    start: int,
    end: int,
    period: str,
    stored: Stored,
    store: Store,
    *,
    clock: Clock = now_ns,
    hooks: Hooks | None = None,
) -> History:
    """Every `period` point in [start, end] not already stored (nor recorded as a gap), handed to `store`
    in checkpoints as it arrives; and the gaps the exchange cannot fill."""
    venue = client.venue
    if not venue.oi_history_periods or not client.supports("fetchOpenInterestHistory"):
        raise NotSupportedError(venue.name, NO_HISTORY)
    plan = plan_open_interest(venue, inst, start, end, period, stored, clock())
    out = History(OPEN_INTEREST, gaps=list(plan.gaps), windows=len(plan.windows))
    expired: list[Range] = []  # planned, then no longer served by the time it was asked for
    fetch = open_interest_pages(client, inst, period, clock, expired)
    raw = venue.oi_history_raw
    if hooks is not None:
        hooks.plan(len(plan.windows))
    # Started before the open-interest pages so that they are first in line for the client's slots.
    kline = raw.value_from_mark if raw else None
    market_id = client.market(inst.ccxt_symbol)["id"]
    marks = _MarkPrices(client, kline, market_id, period, plan.step, plan.ranges) if kline else None
    checkpoints = Checkpoints[_Part](store, lambda parts: oi_parts_table(parts, inst, raw))
    pages = _OiWindows(raw, plan.step, out, checkpoints, marks, hooks)
    try:
        await fetch_each(fetch, plan.windows, pages.ts_of, plan.step, pages.on_window)
    finally:
        try:
            if marks is not None:
                await marks.close()
        finally:
            await pages.checkpoints.flush()  # what arrived is kept, whatever stopped the rest
    out.rows = pages.checkpoints.stored
    if pages.seen:  # a later try skipped more than an earlier one that was served: the rows win
        expired = subtract(expired, [Range(min(pages.seen), max(pages.seen))])
    out.gaps.extend(_gap(inst, r, _horizon(venue)) for r in expired)
    out.gaps.extend(oi_gaps(inst, plan, stored.times, pages.seen, [*out.failed, *expired]))
    return out


class _OiWindows:
    """Each window as it is done: its new rows on the grid, with their mark prices, checkpointed (the table
    is built per checkpoint, off the event loop: `Checkpoints`); or its failure."""

    def __init__(
        self,
        raw: RawHistory | None,
        step: int,
        out: History,
        checkpoints: Checkpoints[_Part],
        marks: _MarkPrices | None,
        hooks: Hooks | None,
    ) -> None:
        self.raw, self.step, self.out = raw, step, out
        self.checkpoints, self.marks, self.hooks = checkpoints, marks, hooks
        self.ts_of = row_time(raw)
        self.seen: set[int] = set()

    def _failed(self, window: Range, error: ExchangeError) -> None:
        self.out.failed.append(window)
        self.out.error = error
        if self.hooks is not None:
            self.hooks.advance(0)

    async def on_window(self, done: Outcome[dict[str, Any]]) -> None:
        if done.error is not None:
            self._failed(done.window, done.error)
            return
        on_grid = on_grid_rows(done.rows, self.ts_of, self.step, self.seen)
        prices = None
        if self.marks is not None and on_grid:
            try:
                prices = await self.marks.covering(done.window)
            except ExchangeError as exc:
                # Stored rows are never rewritten, so a row stored without its value would keep it empty
                # for good: the window stays a hole that the rerun fetches whole, like a failed page.
                self._failed(done.window, exc)
                return
        self.seen.update(self.ts_of(row) for row in on_grid)
        await self.checkpoints.add((on_grid, prices), len(on_grid))
        if self.hooks is not None:
            self.hooks.advance(len(on_grid))


class _MarkPrices:
    """The mark-price candles of one instrument over the ranges being fetched, one task per window of
    `kline.limit` candles, all started at once; `covering(window)` waits for the ones a window needs."""

    def __init__(
        self,
        client: ExchangeClient,
        kline: MarkKline,
        market_id: str,
        period: str,
        step: int,
        ranges: list[Range],
    ) -> None:
        self._client = client
        self._kline = kline
        self._market_id = market_id
        self._interval = kline.interval_names[period]
        self._step = step
        windows = [w for r in ranges for w in grid_windows(r, step, kline.limit)]
        self._tasks = [(w, asyncio.ensure_future(self._window(w))) for w in windows]

    async def _page(self, w: Range) -> Sequence[Sequence[Any]]:
        k = self._kline
        params = {
            **k.params,
            "symbol": self._market_id,
            k.interval_param: self._interval,
            k.start_param: -(-w.start // NS_PER_MS),
            k.end_param: w.end // NS_PER_MS,
            "limit": k.limit,
        }
        answer: Any = await self._client.call(k.method, params)
        for key in k.rows_path:
            answer = answer[key]
        return answer  # type: ignore[no-any-return]

    async def _window(self, w: Range) -> dict[int, float]:
        k = self._kline

        def ts_of(row: Sequence[Any]) -> int:
            return int(row[k.time_index]) * NS_PER_MS

        rows = await page_window(self._page, w, ts_of, self._step)
        return mark_opens(rows, time_index=k.time_index, open_index=k.open_index)

    async def covering(self, window: Range) -> dict[int, float]:
        """Candle start (ms) -> mark price, for every candle window overlapping `window`; raises the
        ExchangeError of a candle window that failed for good."""
        prices: dict[int, float] = {}
        for w, task in self._tasks:
            if w.end < window.start or w.start > window.end:
                continue
            prices.update(await asyncio.shield(task))
        return prices

    async def close(self) -> None:
        for _, task in self._tasks:
            task.cancel()
        await asyncio.gather(*(t for _, t in self._tasks), return_exceptions=True)


def _clip(
    ranges: list[Range], inst: Instrument, earliest: int, reason: str, gaps: list[CoverageGap]
) -> list[Range]:
    """Drop what is older than the exchange serves, recording it as a gap."""
    kept = []
    for r in ranges:
        if r.start < earliest:
            gaps.append(_gap(inst, Range(r.start, min(r.end, earliest - 1)), reason))
        if r.end >= earliest:
            kept.append(Range(max(r.start, earliest), r.end))
    return kept


def _gap(inst: Instrument, r: Range, reason: str) -> CoverageGap:
    return CoverageGap.between(OPEN_INTEREST, inst.exchange, inst.instrument_id, r.start, r.end, reason)
