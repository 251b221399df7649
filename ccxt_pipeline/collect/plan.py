"""What a history fetch still needs, given what the catalog holds: pure arithmetic on nanoseconds.

Planning starts from the catalog's actual coverage inside the requested range (the stored rows' times),
not from its first and last row: every hole is found, wherever it lies, and a range already stored costs
no request. Ranges the catalog records as coverage gaps (the exchange could not serve them) are not asked
for again. What is left is cut into windows that each fit in one page.

- Open interest lives on the period's grid: a hole is a run of grid points with no stored row.
- Funding settles at intervals that differ by symbol and change over time (Binance SOLUSDT went from 8h to
  4h), so a hole is judged by the interval stored with each settlement (the spacing from the settlement the
  exchange served before it): a stored settlement whose predecessor is not stored has a hole before it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Range:
    """An inclusive nanosecond range."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"empty range {self.start}..{self.end}")

    def overlaps(self, other: Range) -> bool:
        return self.start <= other.end and other.start <= self.end


def align_up(ts: int, step: int) -> int:
    return -(-ts // step) * step


def align_down(ts: int, step: int) -> int:
    return ts - ts % step


def grid_holes(start: int, end: int, step: int, stored: Iterable[int] | np.ndarray) -> list[Range]:
    """Runs of `step` grid points in [start, end] with no stored time, each from its first to its last point.

    `stored` may hold times off the grid (live snapshots share the folder) and times outside the range:
    both are ignored."""
    first, last = align_up(start, step), align_down(end, step)
    if last < first:
        return []
    ts = np.asarray(stored if isinstance(stored, np.ndarray) else list(stored), dtype=np.int64)
    ts = np.unique(ts[(ts >= first) & (ts <= last) & (ts % step == 0)])
    bounds = np.concatenate(([first - step], ts, [last + step]))
    after = np.nonzero(np.diff(bounds) > step)[0]
    return [Range(int(bounds[i]) + step, int(bounds[i + 1]) - step) for i in after]


SETTLEMENT_SLACK = 5 * 60 * 1_000_000_000
"""How far a settlement may sit from where its stored interval puts it: intervals are stored in whole minutes
and Hyperliquid stamps settlements a few milliseconds after the hour. Funding intervals are 1h or more."""


def settlement_holes(
    start: int, end: int, stored: Sequence[tuple[int, int | None]], *, shortest: int
) -> list[Range]:
    """Spans of [start, end] where a funding settlement is expected but none is stored.

    `stored`: (settlement time, its interval in ns or None if unknown), sorted, the ones inside the range.
    A settlement's interval is the spacing from the settlement the exchange served before it, so it says
    where that one is, whatever the intervals did meanwhile (8h -> 4h, or 1h back to 8h); `shortest` (the
    shortest funding interval) stands in where it is unknown. Expected:
    - before the first stored one, if its predecessor falls inside the range;
    - between two stored ones, if the later one's predecessor is not the earlier one (it lies between);
    - after the last stored one, if the next one (at its interval) is due by `end`.
    With nothing stored, the whole range.
    """
    if end < start:
        return []
    rows = [(t, i) for t, i in stored if start <= t <= end]
    if not rows:
        return [Range(start, end)]
    out = []
    first, first_interval = rows[0]
    if first - start >= (first_interval or shortest):
        out.append(Range(start, first - 1))
    for (a, _), (b, interval) in itertools.pairwise(rows):
        if b - a > (interval or shortest) + SETTLEMENT_SLACK:
            out.append(Range(a + 1, b - 1))
    last, last_interval = rows[-1]
    if end - last >= (last_interval or shortest):
        out.append(Range(last + 1, end))
    return out


def subtract(ranges: Sequence[Range], cut: Iterable[Range]) -> list[Range]:
    """`ranges` without any part of `cut` (both inclusive)."""
    cuts = sorted(cut, key=lambda r: r.start)
    out = []
    for r in ranges:
        pos = r.start
        for c in cuts:
            if c.end < pos or c.start > r.end:
                continue
            if c.start > pos:
                out.append(Range(pos, c.start - 1))
            pos = max(pos, c.end + 1)
            if pos > r.end:
                break
        if pos <= r.end:
            out.append(Range(pos, r.end))
    return out


def intersect(ranges: Sequence[Range], within: Sequence[Range]) -> list[Range]:
    """The parts of `ranges` inside any of `within`."""
    out = []
    for r in ranges:
        for w in within:
            if r.overlaps(w):
                out.append(Range(max(r.start, w.start), min(r.end, w.end)))
    return sorted(set(out), key=lambda r: r.start)


def confirmed_holes(
    holes: Sequence[Range], asked: Sequence[Range], failed: Sequence[Range], last_known: int | None
) -> list[Range]:
    """Holes left after a fetch that the exchange is known not to serve: inside what was `asked` for, clear
    of every window that `failed` (a failure says nothing about the data), and followed by a row the
    exchange did serve (`last_known`, the latest row known in the range): a trailing run may simply not be
    published yet."""
    if last_known is None:
        return []
    return [
        h for h in intersect(holes, asked) if h.end < last_known and not any(h.overlaps(f) for f in failed)
    ]


def grid_windows(r: Range, step: int, rows_per_window: int) -> list[Range]:
    """Cut `r` into windows on the `step` grid, each holding at most `rows_per_window` grid points."""
    first = align_up(r.start, step)
    out = []
    while first <= r.end:
        last = min(first + (rows_per_window - 1) * step, r.end)
        out.append(Range(first, last))
        first += rows_per_window * step
    return out


def span_windows(r: Range, width: int) -> list[Range]:
    """Cut `r` into consecutive windows `width` ns wide (the last one shorter)."""
    return [Range(s, min(s + width - 1, r.end)) for s in range(r.start, r.end + 1, width)]


def missing_grid_points(r: Range, step: int, present: set[int]) -> list[Range]:
    """Runs of grid points in `r` absent from `present`, as ranges from the first to the last missing point."""
    return grid_holes(r.start, r.end, step, present)
