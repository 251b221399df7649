"""Planning and the paging loop, on a fake page source (no exchange involved: the loop is ours)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_pipeline.collect.paging import page_window, page_windows
from ccxt_pipeline.collect.plan import Range, grid_windows, missing_grid_points
from ccxt_pipeline.timeutil import parse_when

STEP = 300


def test_grid_windows_hold_at_most_limit_points() -> None:
    windows = grid_windows(Range(1, 10 * STEP), STEP, 4)
    assert windows == [Range(STEP, 4 * STEP), Range(5 * STEP, 8 * STEP), Range(9 * STEP, 10 * STEP)]


def test_missing_grid_points() -> None:
    present = {0, 300, 1200}
    assert missing_grid_points(Range(0, 1500), STEP, present) == [Range(600, 900), Range(1500, 1500)]


def test_parse_when_forms() -> None:
    now = 1_800_000_000_000_000_000
    assert parse_when("2025-01-01", now) == 1_735_689_600_000_000_000
    assert parse_when("2025-01-01T01:00:00+01:00", now) == 1_735_689_600_000_000_000
    assert parse_when("2d", now) == now - 2 * 86_400_000_000_000


def make_source(
    times: list[int], limit: int, newest_first: bool, short: set[int]
) -> tuple[Callable[[Range], Awaitable[list[int]]], list[Range]]:
    """A page source over `times` that answers like an exchange: at most `limit` rows, in its order;
    requests whose number is in `short` are silently cut to half."""
    calls: list[Range] = []

    async def fetch(r: Range) -> list[int]:
        calls.append(r)
        rows = [t for t in times if r.start <= t <= r.end]
        rows = rows[-limit:][::-1] if newest_first else rows[:limit]
        if len(calls) in short:
            rows = rows[: max(1, len(rows) // 2)]
        return rows

    return fetch, calls


async def test_complete_window_costs_one_request() -> None:
    times = [i * STEP for i in range(10)]
    fetch, calls = make_source(times, 10, newest_first=False, short=set())
    assert await page_window(fetch, Range(0, 9 * STEP), lambda t: t, STEP) == times
    assert len(calls) == 1


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    holes=st.sets(st.integers(0, 59), max_size=10),
    limit=st.integers(1, 12),
    newest_first=st.booleans(),
    short=st.sets(st.integers(1, 30), max_size=5),
    window_points=st.integers(1, 25),
)
async def test_property_every_row_found_whatever_the_answers(
    n: int, holes: set[int], limit: int, newest_first: bool, short: set[int], window_points: int
) -> None:
    times = [i * STEP for i in range(n) if i not in holes]
    fetch, _ = make_source(times, limit, newest_first, short)
    windows = grid_windows(Range(0, max(0, n - 1) * STEP), STEP, window_points) if n else []
    got = await page_windows(fetch, windows, lambda t: t, STEP)
    assert got == times  # every row, once, in order
