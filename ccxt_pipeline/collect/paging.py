"""One paging loop for every time-ordered history endpoint, whatever order the exchange answers in.

A window [start, end] is asked for; whatever comes back is kept (within the window), and what the answer
cannot have covered is asked for again:

- rows may exist after the newest row returned (oldest-first pages, such as Binance's, cut at the limit);
- rows may exist before the oldest row returned (newest-first pages, such as Bybit's);
- a page may have been cut short silently.

"May exist" means there is room for at least one more row at the series' spacing (`step`), so a complete
answer costs exactly one request and an empty answer ends the search in that sub-range. Where the exchange
documents its order (`Order`), only the side a page can have been cut on is asked again: an oldest-first page
holds the window's oldest rows, so nothing is missing before its first row (and a window starting mid-way
between two rows would otherwise cost a second request for that stretch).

`fetch_each` hands each window's rows over as soon as the window is done, so that history is written as it
arrives; a window that fails for good (after the client's retries) is handed over as failed and the others
go on, so one bad page costs only its own rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from ccxt_pipeline.collect.plan import Range
from ccxt_pipeline.errors import ExchangeError

T = TypeVar("T")

FetchPage = Callable[[Range], Awaitable[Sequence[T]]]


Step = int | Callable[[list[int]], int]
"""The spacing of the series, or a function of one page's sorted times giving it (funding intervals vary)."""

Order = Literal["oldest", "newest"] | None
"""Which rows of a window an exchange answers when they do not fit one page: the oldest (from `startTime` on),
the newest (back from `endTime`), or None if not documented (both sides are checked)."""


async def page_window(
    fetch: FetchPage[T],
    window: Range,
    ts_of: Callable[[T], int],
    step: Step,
    *,
    slack: int = 0,
    order: Order = None,
) -> list[T]:
    """Every row the exchange serves in `window`, by as many requests as the answers need. `slack`: how much
    earlier than one `step` after a row the next one may be stamped (Hyperliquid stamps settlements a few
    milliseconds past the hour, so two of them can be a little less than an hour apart). `order`: see `Order`."""
    rows: list[T] = []
    # Each range to ask, with the rows known just outside it (None at the window's own ends): a row there
    # leaves less room inside, so a sub-range next to a row is asked only if a row fits between the two.
    pending: list[tuple[Range, int | None, int | None]] = [(window, None, None)]
    while pending:
        r, before, after = pending.pop()
        page = [row for row in await fetch(r) if r.start <= ts_of(row) <= r.end]
        if not page:
            continue
        rows.extend(page)
        times = sorted(ts_of(row) for row in page)
        spacing = (step(times) if callable(step) else step) - slack
        if order != "newest" and times[-1] + spacing <= (r.end if after is None else after - spacing):
            pending.append((Range(times[-1] + 1, r.end), times[-1], after))
        if order != "oldest" and times[0] - spacing >= (r.start if before is None else before + spacing):
            pending.append((Range(r.start, times[0] - 1), before, times[0]))
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


GIVE_UP_AFTER = 3
"""Windows failed for good before the rest of a fetch is called off: one bad page is a hole, but an exchange
failing page after page is down, and its remaining pages would only fail too, slowly."""


@dataclass
class Outcome(Generic[T]):
    """One window's rows, or why it has none (`error`: it failed for good, or was called off)."""

    window: Range
    rows: list[T] = field(default_factory=list)
    error: ExchangeError | None = None


async def fetch_each(
    fetch: FetchPage[T],
    windows: Sequence[Range],
    ts_of: Callable[[T], int],
    step: Step,
    on_window: Callable[[Outcome[T]], Awaitable[None]],
    *,
    ordered: bool = False,
    give_up_after: int = GIVE_UP_AFTER,
    slack: int = 0,
    order: Order = None,
) -> None:
    """Fetch every window at once (the exchange client caps requests in flight) and await `on_window` for
    each as it is done, or in window order if `ordered`. A window whose fetch raises an ExchangeError is
    handed over with that error; once `give_up_after` windows failed, the windows not done yet are called
    off and handed over with the last error. Any other exception cancels every window and propagates.
    `slack` and `order`: see `page_window`."""
    tasks = [
        asyncio.ensure_future(page_window(fetch, w, ts_of, step, slack=slack, order=order)) for w in windows
    ]
    outcomes: dict[int, Outcome[T]] = {}
    index = {t: i for i, t in enumerate(tasks)}
    handed = 0  # ordered: windows handed over so far, in order
    failures = 0
    last_error: ExchangeError | None = None
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ready = []
            for task in sorted(done, key=index.__getitem__):
                i = index[task]
                outcomes[i] = _outcome(task, windows[i])
                if outcomes[i].error is not None:
                    failures += 1
                    last_error = outcomes[i].error
                ready.append(i)
            if failures >= give_up_after and pending:
                ready += await _call_off(pending, index, windows, outcomes, last_error)
                pending = set()
            if ordered:
                while handed in outcomes:
                    await on_window(outcomes.pop(handed))
                    handed += 1
            else:
                for i in ready:
                    await on_window(outcomes.pop(i))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _outcome(task: asyncio.Future[list[T]], window: Range) -> Outcome[T]:
    """A done window's rows, or the ExchangeError it failed with; any other exception propagates."""
    exc = task.exception()
    if exc is None:
        return Outcome(window, task.result())
    if isinstance(exc, ExchangeError):
        return Outcome(window, error=exc)
    raise exc


async def _call_off(
    pending: set[asyncio.Task[list[T]]],
    index: dict[asyncio.Task[list[T]], int],
    windows: Sequence[Range],
    outcomes: dict[int, Outcome[T]],
    error: ExchangeError | None,
) -> list[int]:
    """Cancel the windows not done yet, each handed over as failed with `error`; their indexes."""
    called = []
    for task in pending:
        task.cancel()
        outcomes[index[task]] = Outcome(windows[index[task]], error=error)
        called.append(index[task])
    await asyncio.gather(*pending, return_exceptions=True)
    return called
