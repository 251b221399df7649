"""One paging loop for every time-ordered history endpoint, whatever order the exchange answers in.

A window [start, end] is asked for; whatever comes back is kept (within the window), and what the answer
cannot have covered is asked for again:

- rows may exist after the newest row returned (oldest-first pages, such as Binance's, cut at the limit);
- rows may exist before the oldest row returned (newest-first pages, such as Bybit's);
- a page may have been cut short silently.

"May exist" means there is room for at least one more row at the series' spacing (`step`), so a complete
answer costs exactly one request and an empty answer ends the search in that sub-range.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ccxt_pipeline.collect.plan import Range

T = TypeVar("T")

FetchPage = Callable[[Range], Awaitable[Sequence[T]]]


Step = int | Callable[[list[int]], int]
"""The spacing of the series, or a function of one page's sorted times giving it (funding intervals vary)."""


async def page_window(fetch: FetchPage[T], window: Range, ts_of: Callable[[T], int], step: Step) -> list[T]:
    """Every row the exchange serves in `window`, by as many requests as the answers need."""
    rows: list[T] = []
    pending = [window]
    while pending:
        r = pending.pop()
        page = [row for row in await fetch(r) if r.start <= ts_of(row) <= r.end]
        if not page:
            continue
        rows.extend(page)
        times = sorted(ts_of(row) for row in page)
        spacing = step(times) if callable(step) else step
        if times[-1] + spacing <= r.end:
            pending.append(Range(times[-1] + 1, r.end))
        if times[0] - spacing >= r.start:
            pending.append(Range(r.start, times[0] - 1))
    return rows


async def page_windows(
    fetch: FetchPage[T],
    windows: Sequence[Range],
    ts_of: Callable[[T], int],
    step: Step,
    *,
    on_window: Callable[[int], None] | None = None,
) -> list[T]:
    """All windows at once (the exchange client caps requests in flight); rows sorted by time.
    `on_window(n_rows)` reports progress."""

    async def one(w: Range) -> list[T]:
        got = await page_window(fetch, w, ts_of, step)
        if on_window is not None:
            on_window(len(got))
        return got

    tasks = [asyncio.ensure_future(one(w)) for w in windows]
    try:
        results = await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()  # one window failed for good: stop the others rather than leave them running
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return sorted((row for rows in results for row in rows), key=ts_of)
