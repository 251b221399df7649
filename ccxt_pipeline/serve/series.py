"""Open interest and funding as one line per exchange, thinned for long ranges.

A series longer than `max_points` keeps the LAST row of each of `max_points` equal time buckets between
its first and last point (the value that held at the bucket's end), so a year of 5-minute open interest is
drawn from 2,000 points, and no value is ever invented or averaged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader, DataKind
from ccxt_pipeline.timeutil import ns_to_iso

VALUE_COLUMN = {OPEN_INTEREST.name: "open_interest", FUNDING_RATE.name: "rate"}
"""What `value` is: open interest in base units, one side of the market (docs/catalog.md); the settled
funding rate, a fraction per interval."""
EXTRA_COLUMNS = {OPEN_INTEREST.name: ("open_interest_value",), FUNDING_RATE.name: ("interval_minutes",)}


def last_per_bucket(ts: np.ndarray[Any, Any], max_points: int) -> np.ndarray[Any, Any]:
    """Indices of the rows to keep from sorted times `ts`: all of them if there are at most `max_points`,
    else the last row of each non-empty bucket of `max_points` equal buckets over [ts[0], ts[-1]]."""
    n = len(ts)
    if n <= max_points:
        return np.arange(n)
    span = int(ts[-1]) - int(ts[0])
    width = span // max_points + 1
    bucket = (ts - ts[0]) // width
    last = np.flatnonzero(np.diff(bucket) != 0)
    return np.append(last, n - 1)


def series(
    reader: CatalogReader,
    kind: DataKind,
    instrument_ids: Sequence[tuple[str, str]],
    start: int,
    end: int,
    max_points: int,
) -> dict[str, list[dict[str, Any]]]:
    """`{exchange: [{"t_ns", "time", "value", ...}]}` for (exchange, instrument id) pairs, by `ts_event`
    (when the value held at the exchange; rows are selected on `ts_init` like every catalog query)."""
    value = VALUE_COLUMN[kind.name]
    out: dict[str, list[dict[str, Any]]] = {}
    for exchange, iid in instrument_ids:
        table: pa.Table = reader.query(kind, [iid], start=start, end=end)
        if table.num_rows == 0:
            out[exchange] = []
            continue
        table = table.sort_by([("ts_event", "ascending")])
        ts = table.column("ts_event").to_numpy()
        keep = last_per_bucket(ts, max_points)
        table = table.take(pa.array(keep))
        cols = {c: table.column(c).to_pylist() for c in ("ts_event", value, *EXTRA_COLUMNS[kind.name])}
        out[exchange] = [
            {
                "t_ns": t,
                "time": ns_to_iso(t),
                "value": v,
                **{c: cols[c][i] for c in EXTRA_COLUMNS[kind.name]},
            }
            for i, (t, v) in enumerate(zip(cols["ts_event"], cols[value], strict=True))
        ]
    return out
