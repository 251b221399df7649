"""What a history fetch still needs, given what the catalog holds: pure arithmetic on nanoseconds.

Incremental by default: only the head before the first stored row and the tail after the last one are
fetched; a range already stored costs no request. Ranges are cut into windows that each fit in one page.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """An inclusive nanosecond range."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"empty range {self.start}..{self.end}")


def align_up(ts: int, step: int) -> int:
    return -(-ts // step) * step


def align_down(ts: int, step: int) -> int:
    return ts - ts % step


def missing_ranges(
    start: int, end: int, stored: tuple[int, int] | None, *, head_step: int, tail_step: int
) -> list[Range]:
    """The parts of [start, end] outside the stored [first, last] span worth asking for.

    A head is asked for if it can hold a row at least `head_step` before the first stored one; a tail if a
    row can exist `tail_step` after the last stored one (for a 5-minute series: not before last + 5 min).
    """
    if end < start:
        return []
    if stored is None:
        return [Range(start, end)]
    first, last = stored
    out = []
    if start <= first - head_step:
        out.append(Range(start, min(end, first - 1)))
    if last + tail_step <= end:
        out.append(Range(max(start, last + 1), end))
    return out


def grid_windows(r: Range, step: int, rows_per_window: int) -> list[Range]:
    """Cut `r` into windows on the `step` grid, each holding at most `rows_per_window` grid points."""
    first = align_up(r.start, step)
    out = []
    while first <= r.end:
        last = min(first + (rows_per_window - 1) * step, r.end)
        out.append(Range(first, last))
        first += rows_per_window * step
    return out


def missing_grid_points(r: Range, step: int, present: set[int]) -> list[Range]:
    """Runs of grid points in `r` absent from `present`, as ranges from the first to the last missing point."""
    out: list[Range] = []
    run_start: int | None = None
    prev = None
    t = align_up(r.start, step)
    while t <= r.end:
        if t in present:
            if run_start is not None and prev is not None:
                out.append(Range(run_start, prev))
            run_start = None
        elif run_start is None:
            run_start = t
        prev = t
        t += step
    if run_start is not None and prev is not None:
        out.append(Range(run_start, prev))
    return out
