"""The liquidation heatmap: liquidated notional in time buckets x price buckets, long and short apart.

Pure: stored liquidations in (an Arrow table with the catalog's columns `exchange`, `side`, `price`,
`notional`, `ts_init`, or the same as numpy arrays: :class:`Events`), a dict out. Vectorised with numpy:
each row gets one integer key (time bucket, price bucket, exchange, side) and `np.bincount` sums the
notional per key.

- Time: an event is in the bucket of its `ts_init` (the catalog's time index, the one `from`/`to` select
  on, as in `ccxt-cli query`); buckets start on multiples of the bucket size since the epoch (UTC).
- Price: a bucket `[low, low + price_step)` holds the events whose stored `price` is in it. What that price
  is depends on the exchange (Binance: average fill price; Bybit: bankruptcy price; docs/catalog.md).
- Side: `long` is the notional of LONG positions liquidated (`side == "LONG"` in the catalog: a Binance
  SELL liquidation order, a Bybit `Buy` item), `short` of SHORT positions (docs/catalog.md, Liquidations).
- `totals` are the sums of every event covered, per exchange and side; the cells add up to them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ccxt_pipeline.errors import InputError
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND, ns_to_iso

AUTO_BUCKETS_NS = (
    NS_PER_SECOND,
    5 * NS_PER_SECOND,
    15 * NS_PER_SECOND,
    30 * NS_PER_SECOND,
    NS_PER_MINUTE,
    5 * NS_PER_MINUTE,
    15 * NS_PER_MINUTE,
    30 * NS_PER_MINUTE,
    NS_PER_HOUR,
    2 * NS_PER_HOUR,
    4 * NS_PER_HOUR,
    6 * NS_PER_HOUR,
    12 * NS_PER_HOUR,
    NS_PER_DAY,
    7 * NS_PER_DAY,
)
"""Bucket sizes `bucket=auto` chooses from: the smallest that gives at most AUTO_TIME_BUCKETS columns."""
AUTO_TIME_BUCKETS = 200
AUTO_PRICE_BUCKETS = 80
"""`price_step=auto`: a round step (1, 2, 2.5 or 5 x 10^k) giving at most this many price rows."""
MAX_BUCKETS = 10_000
"""Most time buckets, and most price buckets, one heatmap may have (a bigger one is a bad parameter)."""

_EPS = 1e-9  # `price / step` a hair below an integer is that integer (0.3 / 0.1 = 2.9999999999999996)
_REL_EPS = (
    1e-12  # the same hair for a large quotient, where 1e-9 is below one ulp (256 / 5e-6 = 51199999.99999999)
)


def auto_bucket(span_ns: int) -> int:
    for size in AUTO_BUCKETS_NS:
        if span_ns // size + 1 <= AUTO_TIME_BUCKETS:
            return size
    return AUTO_BUCKETS_NS[-1]


def auto_price_step(low: float, high: float) -> float:
    """A round step that cuts [low, high] into at most AUTO_PRICE_BUCKETS buckets."""
    span = max(high - low, abs(high) * 1e-6, 1e-12)
    raw = span / (AUTO_PRICE_BUCKETS - 1)
    exp = math.floor(math.log10(raw))
    for mult in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = mult * 10.0**exp
        if step >= raw * (1 - 1e-12):
            return float(f"{step:.12g}")
    return float(f"{10.0 ** (exp + 1):.12g}")  # pragma: no cover (10 x 10^exp >= raw always)


@dataclass(frozen=True)
class Events:
    """The heatmap's inputs, one row per liquidation, as numpy arrays of equal length.

    `exchange` holds codes into `names`; `short` is True for a liquidated SHORT position (`side` other
    than "LONG" in the catalog). The service builds these from its file cache without touching the string
    columns again (serve/data.py); :meth:`of_table` builds them from any table of stored liquidations."""

    names: tuple[str, ...]
    exchange: np.ndarray[Any, np.dtype[np.intp]]
    short: np.ndarray[Any, np.dtype[np.bool_]]
    ts: np.ndarray[Any, np.dtype[np.int64]]
    price: np.ndarray[Any, np.dtype[np.float64]]
    notional: np.ndarray[Any, np.dtype[np.float64]]

    @classmethod
    def of_table(cls, table: pa.Table) -> Events:
        """From a table with the catalog's columns `exchange`, `side`, `price`, `notional`, `ts_init`."""
        names = tuple(_distinct(table.column("exchange")))
        if not names:
            return cls.empty()
        return cls(
            names=names,
            exchange=_np(pc.index_in(table.column("exchange"), value_set=pa.array(names))).astype(np.intp),
            short=_np(pc.not_equal(table.column("side"), "LONG")).astype(np.bool_),
            ts=_np(table.column("ts_init")).astype(np.int64, copy=False),
            price=_np(table.column("price")).astype(np.float64, copy=False),
            notional=_np(table.column("notional")).astype(np.float64, copy=False),
        )

    @classmethod
    def empty(cls) -> Events:
        return cls(
            (),
            np.empty(0, np.intp),
            np.empty(0, np.bool_),
            np.empty(0, np.int64),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
        )

    def __len__(self) -> int:
        return len(self.ts)


def heatmap(
    events: Events | pa.Table,
    start: int,
    end: int,
    *,
    bucket_ns: int | None = None,
    price_step: float | None = None,
    exchanges: Sequence[str] = (),
) -> dict[str, Any]:
    """The heatmap of `events` (which the caller selected with `start <= ts_init <= end`): arrays, or a table
    of stored liquidations (:meth:`Events.of_table`).

    `bucket_ns`/`price_step` None: chosen automatically. `exchanges`: listed in `totals` even without
    events. Raises InputError (subject `bucket` or `price_step`) when the grid would be too large."""
    if isinstance(events, pa.Table):
        events = Events.of_table(events)
    bucket_ns, t0, n_time = _time_grid(start, end, bucket_ns)
    if price_step is not None and not (math.isfinite(price_step) and price_step > 0):
        raise InputError("price_step", f"price_step must be a number above zero (got {price_step})")
    present = [
        events.names[i] for i in np.flatnonzero(np.bincount(events.exchange, minlength=len(events.names)))
    ]
    names = list(dict.fromkeys([*exchanges, *sorted(present)]))
    result: dict[str, Any] = {
        "from": ns_to_iso(start),
        "from_ns": start,
        "to": ns_to_iso(end),
        "to_ns": end,
        "bucket_ns": bucket_ns,
        "price_step": price_step,
        "time_buckets": [t0 + i * bucket_ns for i in range(n_time)],
        "price_buckets": [],
        "cells": [],
        "totals": {name: {"long": 0.0, "short": 0.0} for name in names},
        "events": len(events),
    }
    if len(events) == 0:
        return result
    if price_step is None:
        price_step = auto_price_step(float(events.price.min()), float(events.price.max()))
    grid = _Grid(names, t0, bucket_ns, n_time, price_step, events)
    result["price_step"] = price_step
    result["price_buckets"] = [_round(i * price_step) for i in range(grid.p_lo, grid.p_lo + grid.n_price)]
    result["cells"] = grid.cells(events.notional)
    result["totals"] = grid.totals(events.notional)
    return result


def _time_grid(start: int, end: int, bucket_ns: int | None) -> tuple[int, int, int]:
    """(bucket size, first bucket's start, number of buckets) covering [start, end]."""
    if end < start:
        raise InputError("end", f"the end {ns_to_iso(end)} is before the start {ns_to_iso(start)}")
    if bucket_ns is None:
        bucket_ns = auto_bucket(end - start)
    if bucket_ns <= 0:
        raise InputError("bucket", "the bucket must be longer than zero")
    t0 = start - start % bucket_ns
    n_time = (end - t0) // bucket_ns + 1
    if n_time > MAX_BUCKETS:
        raise InputError(
            "bucket",
            f"{n_time:,} time buckets of {bucket_ns / NS_PER_SECOND:g}s for this range "
            f"(at most {MAX_BUCKETS:,}): use a larger bucket or a shorter range",
        )
    return bucket_ns, t0, n_time


class _Grid:
    """Each event's integer key (time bucket, price bucket, exchange, side), to sum notional per key."""

    def __init__(
        self, names: list[str], t0: int, bucket_ns: int, n_time: int, price_step: float, events: Events
    ) -> None:
        price = events.price
        quotient = price / price_step
        p_idx = np.floor(quotient + np.maximum(np.abs(quotient) * _REL_EPS, _EPS)).astype(np.int64)
        self.p_lo = int(p_idx.min())
        self.n_price = int(p_idx.max()) - self.p_lo + 1
        if self.n_price > MAX_BUCKETS:
            raise InputError(
                "price_step",
                f"{self.n_price:,} price buckets of {price_step:g} for prices {price.min():g} to {price.max():g} "
                f"(at most {MAX_BUCKETS:,}): use a larger price_step",
            )
        self.names = names
        self.n_time = n_time
        remap = np.array([names.index(name) for name in events.names], dtype=np.int64)
        self.ex_side = remap[events.exchange] * 2 + events.short.astype(np.int64)
        t_idx = (events.ts - t0) // bucket_ns
        self.key = (t_idx * self.n_price + (p_idx - self.p_lo)) * (len(names) * 2) + self.ex_side

    def cells(self, notional: np.ndarray[Any, np.dtype[np.float64]]) -> list[dict[str, Any]]:
        """The cells with events: `t`, `p` (bucket indexes), `long`, `short` and the same `by_exchange`."""
        used, sums = self._sums(notional)
        rest, side = np.divmod(used, 2)
        rest, ex_code = np.divmod(rest, len(self.names))
        t_cell, p_cell = np.divmod(rest, self.n_price)
        cells: dict[tuple[int, int], dict[str, Any]] = {}
        for t, p, e, s, value in zip(
            t_cell.tolist(), p_cell.tolist(), ex_code.tolist(), side.tolist(), sums.tolist(), strict=True
        ):
            cell = cells.get((t, p))
            if cell is None:
                cell = cells[(t, p)] = {"t": t, "p": p, "long": 0.0, "short": 0.0, "by_exchange": {}}
            which = "short" if s else "long"
            cell[which] += value
            per = cell["by_exchange"].setdefault(self.names[e], {"long": 0.0, "short": 0.0})
            per[which] += value
        return list(cells.values())

    def _sums(self, notional: np.ndarray[Any, np.dtype[np.float64]]) -> tuple[np.ndarray[Any, Any], Any]:
        """The keys used, ascending, and the notional summed per key."""
        size = self.n_time * self.n_price * len(self.names) * 2
        if size <= 8_000_000:  # a dense sum is cheaper than sorting the keys
            sums = np.bincount(self.key, weights=notional, minlength=size)
            used = np.flatnonzero(np.bincount(self.key, minlength=size))
            return used, sums[used]
        used, inverse = np.unique(self.key, return_inverse=True)
        return used, np.bincount(inverse, weights=notional)

    def totals(self, notional: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, dict[str, float]]:
        """Every event's notional per exchange and side: what the cells add up to."""
        per_ex = np.bincount(self.ex_side, weights=notional, minlength=len(self.names) * 2)
        return {
            name: {"long": float(per_ex[2 * i]), "short": float(per_ex[2 * i + 1])}
            for i, name in enumerate(self.names)
        }


def _np(col: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, Any]:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    out: np.ndarray[Any, Any] = col.to_numpy(zero_copy_only=False)
    return out


def _distinct(col: pa.ChunkedArray) -> list[str]:
    return sorted(str(v) for v in pc.unique(col).to_pylist())


def _round(value: float) -> float:
    """A bucket's low edge without float noise (`3 * 0.1` is 0.30000000000000004)."""
    return float(f"{value:.12g}")
