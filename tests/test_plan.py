"""History planning (pure), the window-by-window fetch loop and checkpoints, on fake page sources."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_pipeline.collect.history import tables_checkpoints
from ccxt_pipeline.collect.paging import Outcome, fetch_each
from ccxt_pipeline.collect.plan import (
    Range,
    confirmed_holes,
    grid_holes,
    grid_windows,
    intersect,
    settlement_holes,
    span_windows,
    subtract,
)
from ccxt_pipeline.errors import ExchangeError, TemporaryError
from ccxt_pipeline.timeutil import NS_PER_HOUR, NS_PER_MS

STEP = 300


def points(ranges: list[Range], step: int) -> set[int]:
    return {t for r in ranges for t in range(-(-r.start // step) * step, r.end + 1, step)}


# --- open interest: grid holes ---------------------------------------------------------------------------


def test_grid_holes_examples() -> None:
    assert grid_holes(0, 1500, STEP, []) == [Range(0, 1500)]
    assert grid_holes(0, 1500, STEP, [0, 300, 1200]) == [Range(600, 900), Range(1500, 1500)]
    assert grid_holes(0, 1500, STEP, range(0, 1501, STEP)) == []
    assert grid_holes(1, 299, STEP, []) == []  # no grid point inside
    assert grid_holes(0, 900, STEP, [0, 450, 901, 9000]) == [Range(300, 900)]  # off-grid and outside: ignored


def test_the_issue_scenario_plans_only_the_hole() -> None:
    """Stored: days 0-10 and 25-30 of a 30-day request; the plan is days 10-25, nothing else."""
    day = 288 * STEP
    stored = [*range(0, 10 * day + 1, STEP), *range(25 * day, 30 * day + 1, STEP)]
    assert grid_holes(0, 30 * day, STEP, stored) == [Range(10 * day + STEP, 25 * day - STEP)]


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 200),
    kept=st.lists(st.booleans(), min_size=201, max_size=201),
    snapshots=st.lists(st.integers(0, 200 * STEP), max_size=10),
    start_off=st.integers(0, 2 * STEP),
    end_off=st.integers(0, 2 * STEP),
)
def test_property_grid_holes_are_exactly_the_missing_points(
    n: int, kept: list[bool], snapshots: list[int], start_off: int, end_off: int
) -> None:
    start, end = start_off, n * STEP - end_off
    stored = [i * STEP for i in range(n + 1) if kept[i]] + [s for s in snapshots if s % STEP]
    holes = grid_holes(start, end, STEP, stored)
    grid = {t for t in range(0, end + 1, STEP) if t >= start}
    assert points(holes, STEP) == grid - set(stored)  # every missing point, nothing stored
    for a, b in itertools.pairwise(holes):
        assert a.end + STEP < b.start  # disjoint, sorted, maximal: a stored point between any two
    assert all(h.start % STEP == 0 and h.end % STEP == 0 for h in holes)


# --- funding: settlement holes ---------------------------------------------------------------------------

H = NS_PER_HOUR


def series(segments: list[tuple[int, int]], jitter: list[int]) -> list[tuple[int, int]]:
    """(time, interval) of a settlement series: segments of (count, interval hours), each settlement
    stamped a few ms late (Hyperliquid); its interval is the whole-minute spacing from the one before."""
    out: list[tuple[int, int]] = []
    t = 1_000 * H
    for count, hours in segments:
        for _ in range(count):
            t += hours * H
            out.append((t, hours * H))
    return [(t + jitter[i % len(jitter)] * NS_PER_MS, interval) for i, (t, interval) in enumerate(out)]


def test_settlement_holes_examples() -> None:
    eight = [(i * 8 * H, 8 * H) for i in range(1, 11)]
    assert settlement_holes(8 * H, 80 * H, eight, shortest=H) == []  # normal 8h spacings are no holes
    without = [s for s in eight if s[0] != 40 * H]
    assert settlement_holes(8 * H, 80 * H, without, shortest=H) == [Range(32 * H + 1, 48 * H - 1)]
    assert settlement_holes(0, 80 * H, eight, shortest=H) == [Range(0, 8 * H - 1)]  # head: one at 0 due
    assert settlement_holes(1, 80 * H, eight, shortest=H) == []  # ... but not inside [1, ...]
    assert settlement_holes(8 * H, 88 * H, eight, shortest=H) == [Range(80 * H + 1, 88 * H)]  # tail due
    assert settlement_holes(8 * H, 87 * H, eight, shortest=H) == []
    assert settlement_holes(0, 10, [], shortest=H) == [Range(0, 10)]
    # 8h -> 4h, and a missing 1h settlement before an 8h one (the later one says where its predecessor is).
    switch = [(8 * H, 8 * H), (16 * H, 8 * H), (20 * H, 4 * H), (24 * H, 4 * H), (25 * H, H), (33 * H, 8 * H)]
    assert settlement_holes(8 * H, 33 * H, switch, shortest=H) == []
    assert settlement_holes(8 * H, 33 * H, [*switch[:4], switch[5]], shortest=H) == [
        Range(24 * H + 1, 33 * H - 1)
    ]


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(
        st.tuples(st.integers(1, 30), st.sampled_from([1, 2, 4, 8, 12, 24])), min_size=1, max_size=5
    ),
    jitter=st.lists(st.integers(0, 95), min_size=1, max_size=7),
    dropped=st.sets(st.integers(0, 149), max_size=20),
)
def test_property_settlement_holes_cover_every_missing_settlement_and_nothing_else(
    segments: list[tuple[int, int]], jitter: list[int], dropped: set[int]
) -> None:
    full = series(segments, jitter)
    start, end = full[0][0], full[-1][0]
    assert settlement_holes(start, end, full, shortest=H) == []  # a whole series: nothing to ask for
    kept = [s for i, s in enumerate(full) if i not in dropped or i in (0, len(full) - 1)]
    missing = [t for t, _ in full if (t, _) not in kept]
    holes = settlement_holes(start, end, kept, shortest=H)
    assert all(any(h.start <= t <= h.end for h in holes) for t in missing)  # every missing one is asked for
    assert all(any(h.start <= t <= h.end for t in missing) for h in holes)  # no request for nothing
    assert not any(h.start <= t <= h.end for h in holes for t, _ in kept)


# --- range arithmetic and what becomes a gap ---------------------------------------------------------------


def test_subtract_and_intersect() -> None:
    assert subtract([Range(0, 100)], [Range(10, 20), Range(50, 200)]) == [Range(0, 9), Range(21, 49)]
    assert subtract([Range(0, 100)], [Range(-5, 100)]) == []
    assert subtract([Range(0, 10), Range(20, 30)], []) == [Range(0, 10), Range(20, 30)]
    assert intersect([Range(0, 100)], [Range(10, 20), Range(90, 200)]) == [Range(10, 20), Range(90, 100)]


@settings(max_examples=200, deadline=None)
@given(
    ranges=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 60)), max_size=6),
    cuts=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 60)), max_size=6),
)
def test_property_subtract(ranges: list[tuple[int, int]], cuts: list[tuple[int, int]]) -> None:
    rs = [Range(a, a + n) for a, n in ranges]
    cs = [Range(a, a + n) for a, n in cuts]
    got = {t for r in subtract(rs, cs) for t in range(r.start, r.end + 1)}
    want = {t for r in rs for t in range(r.start, r.end + 1)} - {
        t for c in cs for t in range(c.start, c.end + 1)
    }
    assert got == want


def test_confirmed_holes_skip_failures_and_the_unpublished_tail() -> None:
    holes = [Range(0, 9), Range(20, 29), Range(40, 49), Range(90, 100)]
    asked = [Range(0, 100)]
    assert confirmed_holes(holes, asked, [Range(25, 35)], last_known=80) == [Range(0, 9), Range(40, 49)]
    assert confirmed_holes(holes, [Range(5, 45)], [], last_known=80) == [
        Range(5, 9),
        Range(20, 29),
        Range(40, 45),
    ]
    assert confirmed_holes(holes, asked, [], last_known=None) == []


def test_windows() -> None:
    assert grid_windows(Range(1, 10 * STEP), STEP, 4) == [
        Range(STEP, 4 * STEP),
        Range(5 * STEP, 8 * STEP),
        Range(9 * STEP, 10 * STEP),
    ]
    assert span_windows(Range(0, 25), 10) == [Range(0, 9), Range(10, 19), Range(20, 25)]


# --- the window-by-window loop -------------------------------------------------------------------------------


def source(
    times: list[int], bad: set[int], limit: int = 10
) -> tuple[Callable[[Range], Awaitable[list[int]]], list[Range]]:
    """Pages of `times` oldest first; a window starting in `bad` fails like an exchange that gave up."""
    calls: list[Range] = []

    async def fetch(r: Range) -> list[int]:
        calls.append(r)
        await asyncio.sleep(0)
        if r.start in bad:
            raise TemporaryError("fake", f"page {r.start} failed")
        return [t for t in times if r.start <= t <= r.end][:limit]

    return fetch, calls


@pytest.mark.parametrize("ordered", [False, True])
async def test_fetch_each_hands_over_every_window_and_failures(ordered: bool) -> None:
    times = list(range(0, 100 * STEP, STEP))
    windows = grid_windows(Range(0, 99 * STEP), STEP, 10)
    fetch, _ = source(times, bad={30 * STEP})
    seen: list[Outcome[int]] = []

    async def on_window(o: Outcome[int]) -> None:
        seen.append(o)

    await fetch_each(fetch, windows, lambda t: t, STEP, on_window, ordered=ordered)
    assert sorted(o.window.start for o in seen) == [w.start for w in windows]
    if ordered:
        assert [o.window for o in seen] == windows
    failed = [o for o in seen if o.error is not None]
    assert [o.window for o in failed] == [Range(30 * STEP, 39 * STEP)]
    assert isinstance(failed[0].error, ExchangeError)
    got = sorted(t for o in seen for t in o.rows)
    assert got == [t for t in times if not 30 * STEP <= t <= 39 * STEP]


async def test_fetch_each_gives_up_on_an_exchange_that_keeps_failing() -> None:
    windows = grid_windows(Range(0, 99 * STEP), STEP, 10)
    fetch, _ = source(list(range(0, 100 * STEP, STEP)), bad={w.start for w in windows})
    seen: list[Outcome[int]] = []

    async def on_window(o: Outcome[int]) -> None:
        seen.append(o)

    await fetch_each(fetch, windows, lambda t: t, STEP, on_window, give_up_after=3)
    assert len(seen) == len(windows)
    assert all(o.error is not None for o in seen)


async def test_fetch_each_stops_everything_on_a_bug() -> None:
    async def fetch(r: Range) -> list[int]:
        raise ZeroDivisionError

    async def on_window(o: Outcome[int]) -> None:
        raise AssertionError("no window is handed over")

    with pytest.raises(ZeroDivisionError):
        await fetch_each(fetch, [Range(0, 10), Range(11, 20)], lambda t: t, 1, on_window)


async def test_checkpoints_store_every_few_thousand_rows_and_at_the_end() -> None:
    stored: list[int] = []

    async def store(table: pa.Table) -> None:
        stored.append(table.num_rows)

    cp = tables_checkpoints(store, rows=1000, seconds=3600)
    for _ in range(7):
        await cp.add(pa.table({"x": list(range(300))}), 300)
    assert stored == [1200]
    await cp.flush()
    assert stored == [1200, 900]
    assert cp.stored == 2100
    await cp.flush()
    assert stored == [1200, 900]  # nothing left: no empty write
