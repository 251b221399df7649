"""The heatmap aggregation (`ccxt_pipeline.serve.heatmap`): totals equal the events, per exchange and side."""

from __future__ import annotations

import math
from collections import defaultdict

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_pipeline.errors import InputError
from ccxt_pipeline.serve.heatmap import AUTO_PRICE_BUCKETS, MAX_BUCKETS, auto_bucket, auto_price_step, heatmap
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_SECOND

START = 1_735_689_600 * NS_PER_SECOND + 123  # 2025-01-01, not on a bucket edge

event = st.tuples(
    st.sampled_from(["binance", "bybit"]),
    st.sampled_from(["LONG", "SHORT"]),
    st.integers(0, 6 * NS_PER_HOUR),  # offset from START
    st.floats(0.01, 200_000, allow_nan=False, allow_infinity=False),  # price
    st.floats(1e-6, 1_000, allow_nan=False, allow_infinity=False),  # quantity
)


def table_of(events: list[tuple[str, str, int, float, float]]) -> pa.Table:
    return pa.table(
        {
            "exchange": pa.array([e[0] for e in events], pa.string()),
            "side": pa.array([e[1] for e in events], pa.string()),
            "ts_init": pa.array([START + e[2] for e in events], pa.int64()),
            "price": pa.array([e[3] for e in events], pa.float64()),
            "notional": pa.array([e[3] * e[4] for e in events], pa.float64()),
        }
    )


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(event, max_size=60),
    bucket=st.sampled_from(
        [None, NS_PER_SECOND, 7 * NS_PER_SECOND, 5 * NS_PER_MINUTE, NS_PER_HOUR, NS_PER_DAY]
    ),
    step=st.one_of(st.none(), st.sampled_from([0.1, 0.5, 1.0, 25.0, 1000.0, 50_000.0])),
)
def test_totals_and_cells_equal_the_events_per_exchange_and_side(
    events: list[tuple[str, str, int, float, float]], bucket: int | None, step: float | None
) -> None:
    end = START + 6 * NS_PER_HOUR
    refused = None
    try:
        hm = heatmap(
            table_of(events), START, end, bucket_ns=bucket, price_step=step, exchanges=["binance", "bybit"]
        )
    except InputError as exc:  # a grid too large is refused, never cut short
        refused = str(exc)
    if refused is not None:
        assert "at most" in refused
        return
    expected: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ex, side, _, price, qty in events:
        expected[(ex, "long" if side == "LONG" else "short")].append(price * qty)
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in hm["cells"]:
        for ex, sides in c["by_exchange"].items():
            for side, value in sides.items():
                cells[(ex, side)].append(value)
        assert c["long"] == pytest.approx(sum(v["long"] for v in c["by_exchange"].values()), rel=1e-12)
        assert c["short"] == pytest.approx(sum(v["short"] for v in c["by_exchange"].values()), rel=1e-12)
    for ex in ("binance", "bybit"):
        for side in ("long", "short"):
            want = math.fsum(expected[(ex, side)])
            assert hm["totals"][ex][side] == pytest.approx(want, rel=1e-9, abs=1e-9)
            assert math.fsum(cells[(ex, side)]) == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert hm["events"] == len(events)
    # Each event's notional sits in the cell of its time and price bucket.
    size, step_used = hm["bucket_ns"], hm["price_step"]
    by_cell: dict[tuple[int, int], float] = defaultdict(float)
    for _, _, offset, price, qty in events:
        t = next(i for i, t0 in enumerate(hm["time_buckets"]) if t0 <= START + offset < t0 + size)
        lows = hm["price_buckets"]
        p = max(i for i, low in enumerate(lows) if low <= price * (1 + 1e-9))
        assert price < lows[p] + step_used * (1 + 1e-9)
        by_cell[(t, p)] += price * qty
    got = {(c["t"], c["p"]): c["long"] + c["short"] for c in hm["cells"]}
    assert set(got) == set(by_cell)
    for key, value in by_cell.items():
        assert got[key] == pytest.approx(value, rel=1e-9)


def test_auto_bucket_and_price_step() -> None:
    assert auto_bucket(24 * NS_PER_HOUR) == 15 * NS_PER_MINUTE  # 97 columns for a day
    assert auto_bucket(NS_PER_HOUR) == 30 * NS_PER_SECOND
    assert auto_bucket(365 * NS_PER_DAY) == 7 * NS_PER_DAY
    assert auto_price_step(94_000, 98_000) == 100.0
    assert auto_price_step(0.5, 0.6) == 0.002
    step = auto_price_step(3_100.0, 3_100.0)  # one price: still a positive step
    assert step > 0
    assert (98_000 - 94_000) / auto_price_step(94_000, 98_000) <= AUTO_PRICE_BUCKETS


def test_empty_range_has_the_time_axis_and_zero_totals() -> None:
    hm = heatmap(table_of([]), START, START + NS_PER_HOUR, bucket_ns=5 * NS_PER_MINUTE, exchanges=["binance"])
    assert hm["cells"] == []
    assert hm["totals"] == {"binance": {"long": 0.0, "short": 0.0}}
    assert len(hm["time_buckets"]) == 13  # START is past :00, so the 13th bucket holds the end
    assert hm["time_buckets"][0] % (5 * NS_PER_MINUTE) == 0


def test_a_grid_too_large_is_refused_with_one_line() -> None:
    with pytest.raises(InputError, match=r"time buckets of 1s .*at most 10,000"):
        heatmap(table_of([]), START, START + NS_PER_DAY, bucket_ns=NS_PER_SECOND)
    events = [("binance", "LONG", 0, 1.0, 1.0), ("binance", "LONG", 1, 1.0 + MAX_BUCKETS, 1.0)]
    with pytest.raises(InputError, match="price buckets"):
        heatmap(table_of(events), START, START + NS_PER_HOUR, price_step=0.5)
    with pytest.raises(InputError, match="above zero"):
        heatmap(table_of(events), START, START + NS_PER_HOUR, price_step=0.0)
