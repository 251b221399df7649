"""Hypothesis strategies and small builders for records."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ccxt_pipeline.catalog.schema import LIQUIDATION, OPEN_INTEREST
from ccxt_pipeline.models import (
    CoverageGap,
    FundingRate,
    FundingRateEstimate,
    Liquidation,
    OpenInterest,
    Record,
    Side,
)

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
INSTRUMENTS = [("binance", "BTCUSDT-PERP.BINANCE"), ("bybit", "BTCUSDT-LINEAR.BYBIT")]


def oi(i: int, iid: str = "BTCUSDT-PERP.BINANCE", exchange: str = "binance", **kw: Any) -> OpenInterest:
    ts = T0 + i * 300_000_000_000
    data: dict[str, Any] = dict(
        exchange=exchange, instrument_id=iid, ts_event=ts, ts_init=ts, open_interest=100.0 + i
    )
    data.update(kw)
    return OpenInterest(**data)


def liq(i: int, side: str = "LONG", **kw: Any) -> Liquidation:
    data: dict[str, Any] = dict(
        exchange="binance",
        instrument_id="BTCUSDT-PERP.BINANCE",
        ts_event=T0 + i * 1_000_000,
        ts_init=T0 + i * 1_000_000 + 7,
        side=side,
        quantity=0.5,
        price=90_000.0 + i,
    )
    data.update(kw)
    return Liquidation(**data)


_small_floats = st.sampled_from([0.5, 1.0, 2.25, 1e-8, 123456.789])
_ts = st.integers(min_value=0, max_value=40).map(lambda k: T0 + k * 1_000_000_000)
_instrument = st.sampled_from(INSTRUMENTS)


@st.composite
def open_interests(draw: st.DrawFn) -> OpenInterest:
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    return OpenInterest(
        exchange=exchange,
        instrument_id=iid,
        ts_event=ts - draw(st.sampled_from([0, 1])),
        ts_init=ts,
        open_interest=draw(_small_floats),
        open_interest_value=draw(st.none() | _small_floats),
    )


@st.composite
def funding_rates(draw: st.DrawFn) -> FundingRate:
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    return FundingRate(
        exchange=exchange,
        instrument_id=iid,
        ts_event=ts,
        ts_init=ts,
        rate=draw(st.sampled_from([-0.0005, 0.0, 0.0001, 0.00375])),
        interval_minutes=draw(st.none() | st.sampled_from([60, 240, 480])),
    )


@st.composite
def funding_estimates(draw: st.DrawFn) -> FundingRateEstimate:
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    return FundingRateEstimate(
        exchange=exchange,
        instrument_id=iid,
        ts_event=ts,
        ts_init=ts + draw(st.sampled_from([0, 5])),
        rate=draw(st.sampled_from([-0.0005, 0.0001])),
        next_funding_ns=draw(st.none() | st.just(T0 + 8 * 3_600_000_000_000)),
        interval_minutes=draw(st.none() | st.just(480)),
        mark_price=draw(st.none() | _small_floats),
        index_price=draw(st.none() | _small_floats),
    )


@st.composite
def liquidations(draw: st.DrawFn) -> Liquidation:
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    # Through a dict, like `liq`: the model computes `notional`, which its typed signature requires.
    data: dict[str, Any] = dict(
        exchange=exchange,
        instrument_id=iid,
        ts_event=ts,
        ts_init=ts + draw(st.sampled_from([0, 3])),
        side=draw(st.sampled_from(list(Side))),
        quantity=draw(_small_floats),
        price=draw(st.sampled_from([1.0, 50_000.5])),
    )
    return Liquidation(**data)


@st.composite
def gaps(draw: st.DrawFn) -> CoverageGap:
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    return CoverageGap.between(
        draw(st.sampled_from([OPEN_INTEREST, LIQUIDATION])),
        exchange,
        iid,
        ts,
        ts + draw(st.sampled_from([0, 5_000_000_000])),
        draw(st.sampled_from(["exchange keeps 30 days", "disconnected"])),
    )


RECORD_STRATEGIES: dict[str, st.SearchStrategy[Record]] = {
    "open_interest": open_interests(),
    "funding_rate": funding_rates(),
    "funding_estimate": funding_estimates(),
    "liquidation": liquidations(),
    "gap": gaps(),
}
