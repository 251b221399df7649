"""What the catalog holds and how well it covers time: the library behind `catalog info` and `coverage`.

Everything here is read from the data, not from file names: a stream, live-snapshot or compacted file is
named for the minute, ten minutes or day it stands for, so its name can reach well past its last row.

- `describe` (in :mod:`ccxt_pipeline.catalog.info`, which loads no pyarrow, so that `catalog info` starts
  fast): per type and instrument, files, rows, bytes, and the first and last row's `ts_init`, from the
  Parquet footers, plus the files in quarantine, which are not data.
- `coverage`: per series, the ranges present, the holes nobody recorded (`missing`), the recorded coverage
  gaps, and the percent covered, each type by its own rule (docs/catalog.md, "Looking after it"):

  - open interest: history rows have `ts_init == ts_event` on the period's grid (history is stamped with
    the exchange's period start: `ccxt_pipeline/collect/open_interest.py`); the period is the most common
    spacing of consecutive history points. Covered = grid points stored / grid points from the first to the
    last one. Live snapshots (`ts_init` = receipt time) are rows, but not grid points. A series with no
    period (snapshots only: Hyperliquid keeps no history) is judged like a stream.
  - funding: each settlement carries the interval that ended with it (`interval_minutes`; intervals change
    over time), so a settlement whose predecessor is more than its interval away has settlements missing
    before it, as many as the interval fits. Covered = settlements stored / settlements expected between
    the first and the last stored one.
  - liquidations (and snapshot-only open interest): no period. Covered = the time from the first to the last
    row not inside a recorded gap (a stream records every disconnect), over that time. Gaps recorded for
    the whole market (`MARKET.<VENUE>`) count for every instrument of that venue.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ccxt_pipeline.catalog.files import read_data_file
from ccxt_pipeline.catalog.info import CatalogInfo as CatalogInfo  # re-exported: the library's names
from ccxt_pipeline.catalog.info import SeriesInfo as SeriesInfo
from ccxt_pipeline.catalog.info import describe as describe
from ccxt_pipeline.catalog.layout import instrument_dir, list_data_files, list_instruments
from ccxt_pipeline.catalog.schema import (
    COVERAGE_GAP,
    FUNDING_RATE,
    LIQUIDATION,
    OPEN_INTEREST,
    DataKind,
)
from ccxt_pipeline.collect.plan import SETTLEMENT_SLACK, Range, align_down, align_up, grid_holes, subtract
from ccxt_pipeline.timeutil import NS_PER_MINUTE, PERIODS_NS

MARKET_PREFIX = "MARKET."
"""Instrument id prefix of gaps recorded for a whole-market stream (`MARKET.<VENUE>`)."""

_PERIOD_NAMES = {ns: name for name, ns in PERIODS_NS.items()}


@dataclass(frozen=True)
class Gap:
    """A recorded coverage gap, inclusive."""

    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class SeriesCoverage:
    """One type and instrument: what `catalog coverage` shows. Ranges are inclusive nanoseconds."""

    type: str
    instrument_id: str
    period: str | None
    """`5m`, `1h`, ... for open interest; the funding intervals seen, oldest first (`8h`, `8h/4h`); None for
    liquidations and for open interest without history."""
    rows: int
    first_ns: int | None
    last_ns: int | None
    present: list[Range] = field(default_factory=list)
    missing: list[Range] = field(default_factory=list)
    """Holes that no recorded gap explains: a history fetch asks for them again."""
    gaps: list[Gap] = field(default_factory=list)
    """Every recorded gap of the series (also those before its first row), in time order."""
    covered_pct: float | None = None
    """Percent covered by the type's rule; None with no rows."""


def recorded_gaps(root: Path) -> dict[tuple[str, str], list[Gap]]:
    """Every recorded gap, by (instrument id, data type), in time order."""
    out: dict[tuple[str, str], list[Gap]] = {}
    for iid in list_instruments(root, COVERAGE_GAP):
        for f in list_data_files(instrument_dir(root, COVERAGE_GAP, iid)):
            table = read_data_file(COVERAGE_GAP, f.path, columns=["ts_init", "end_ns", "data_type", "reason"])
            if table is None:
                continue
            for start, end, data_type, reason in zip(
                *(table.column(c).to_pylist() for c in ("ts_init", "end_ns", "data_type", "reason")),
                strict=True,
            ):
                out.setdefault((iid, data_type), []).append(Gap(start, end, reason))
    for gaps in out.values():
        gaps.sort(key=lambda g: (g.start, g.end))
    return out


def coverage(
    root: Path, kinds: Sequence[DataKind] = (OPEN_INTEREST, FUNDING_RATE, LIQUIDATION)
) -> list[SeriesCoverage]:
    """The coverage of every series of `kinds`, then an entry with no rows for every other series that has
    recorded gaps (history the exchange never served, a whole-market stream whose venue has no liquidation
    stored), so that no recorded gap goes unshown."""
    gaps = recorded_gaps(root)
    result = []
    shown = set()
    for kind in kinds:
        for iid in list_instruments(root, kind):
            own = gaps.get((iid, kind.name), [])
            shown.add((iid, kind.name))
            if kind is LIQUIDATION:
                market = (MARKET_PREFIX + iid.rsplit(".", 1)[-1], kind.name)
                shown.add(market)
                own = sorted([*own, *gaps.get(market, [])], key=lambda g: (g.start, g.end))
            result.append(series_coverage(root, kind, iid, own))
    names = {k.name for k in kinds}
    for (iid, data_type), rest in sorted(gaps.items()):
        if data_type in names and (iid, data_type) not in shown:
            result.append(SeriesCoverage(data_type, iid, None, 0, None, None, gaps=rest))
    return result


def series_coverage(root: Path, kind: DataKind, instrument_id: str, gaps: list[Gap]) -> SeriesCoverage:
    """One series' coverage, given its recorded gaps."""
    columns = ["ts_event", "interval_minutes"] if kind is FUNDING_RATE else ["ts_event"]
    parts = []
    for f in list_data_files(instrument_dir(root, kind, instrument_id)):
        table = read_data_file(kind, f.path, columns=["ts_init", *columns])
        if table is not None:  # None: unreadable, moved to quarantine: a hole
            parts.append(table)
    ts = [t for p in parts for t in p.column("ts_init").to_pylist()]
    empty = SeriesCoverage(kind.name, instrument_id, None, 0, None, None, gaps=gaps)
    if not ts:
        return empty
    base = SeriesCoverage(kind.name, instrument_id, None, len(ts), ts[0], ts[-1], gaps=gaps)
    cuts = [Range(g.start, g.end) for g in gaps]
    if kind is OPEN_INTEREST:
        ev = [t for p in parts for t in p.column("ts_event").to_pylist()]
        history = sorted({i for i, e in zip(ts, ev, strict=True) if i == e and i % NS_PER_MINUTE == 0})
        period = infer_period(history)
        if period is not None:
            return _grid_coverage(base, [t for t in history if t % period == 0], period, cuts)
    if kind is FUNDING_RATE:
        intervals = [i for p in parts for i in p.column("interval_minutes").to_pylist()]
        return _funding_coverage(base, ts, intervals, cuts)
    return _span_coverage(base, cuts)


def infer_period(history: Sequence[int]) -> int | None:
    """The most common spacing of consecutive history points that is an open-interest period (the shorter
    one on a tie); None with fewer than two points or no such spacing."""
    counts = Counter(b - a for a, b in itertools.pairwise(history) if b - a in _PERIOD_NAMES)
    if not counts:
        return None
    return min(counts, key=lambda d: (-counts[d], d))


def period_name(ns: int) -> str:
    """`300_000_000_000` -> `5m`, `28_800_000_000_000` -> `8h`."""
    minutes = ns // NS_PER_MINUTE
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _snap(ranges: Sequence[Range], step: int) -> list[Range]:
    """Each range cut to the grid points inside it; ranges with none dropped."""
    out = []
    for r in ranges:
        a, b = align_up(r.start, step), align_down(r.end, step)
        if a <= b:
            out.append(Range(a, b))
    return out


def _grid_coverage(base: SeriesCoverage, points: list[int], step: int, cuts: list[Range]) -> SeriesCoverage:
    first, last = points[0], points[-1]
    holes = grid_holes(first, last, step, points)
    present = _snap(subtract(subtract([Range(first, last)], holes), cuts), step)
    expected = (last - first) // step + 1
    return replace(
        base,
        period=period_name(step),
        present=present,
        missing=_snap(subtract(holes, cuts), step),
        covered_pct=100.0 * sum((r.end - r.start) // step + 1 for r in present) / expected,
    )


def _funding_coverage(
    base: SeriesCoverage, ts: list[int], intervals: list[int | None], cuts: list[Range]
) -> SeriesCoverage:
    known = [i for i in intervals if i]
    usual = Counter(known).most_common(1)[0][0] * NS_PER_MINUTE if known else None
    runs: list[Range] = []
    holes: list[Range] = []
    expected_missing = 0
    start = ts[0]
    for (a, _), (b, minutes) in itertools.pairwise(zip(ts, intervals, strict=True)):
        step = minutes * NS_PER_MINUTE if minutes else usual
        if step is not None and b - a > step + SETTLEMENT_SLACK:
            count = max(1, round((b - a) / step) - 1)  # the settlements the interval fits between a and b
            expected_missing += count
            holes.append(Range(b - count * step, b - step))
            runs.append(Range(start, a))
            start = b
    runs.append(Range(start, ts[-1]))
    seen = list(dict.fromkeys(period_name(m * NS_PER_MINUTE) for m in intervals if m))
    return replace(
        base,
        period="/".join(seen) or None,
        present=subtract(runs, cuts),
        missing=subtract(holes, cuts),
        covered_pct=100.0 * len(ts) / (len(ts) + expected_missing),
    )


def _span_coverage(base: SeriesCoverage, cuts: list[Range]) -> SeriesCoverage:
    assert base.first_ns is not None
    assert base.last_ns is not None
    present = subtract([Range(base.first_ns, base.last_ns)], cuts)
    span = base.last_ns - base.first_ns + 1
    return replace(
        base, present=present, covered_pct=100.0 * sum(r.end - r.start + 1 for r in present) / span
    )
