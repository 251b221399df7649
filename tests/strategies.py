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


def fields(ts: int = T0, **kw: Any) -> dict[str, Any]:
    """The fields every record has, on Binance's BTCUSDT perpetual at `ts` (`ts_event` = `ts_init`), then
    `kw` (which win): `Liquidation(**fields(ts, side="LONG", ...))`, or a raw row for the validators."""
    return {
        "exchange": "binance",
        "instrument_id": "BTCUSDT-PERP.BINANCE",
        "ts_event": ts,
        "ts_init": ts,
        **kw,
    }


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


def _drawn_fields(draw: st.DrawFn, event_before: int = 0, init_after: int = 0) -> dict[str, Any]:
    """`fields` of a drawn instrument and time t: `ts_event` is t or t - `event_before`, `ts_init` is t or
    t + `init_after`."""
    exchange, iid = draw(_instrument)
    ts = draw(_ts)
    return fields(
        ts,
        exchange=exchange,
        instrument_id=iid,
        ts_event=ts - draw(st.sampled_from([0, event_before])),
        ts_init=ts + draw(st.sampled_from([0, init_after])),
    )


@st.composite
def open_interests(draw: st.DrawFn) -> OpenInterest:
    return OpenInterest(
        **_drawn_fields(draw, event_before=1),
        open_interest=draw(_small_floats),
        open_interest_value=draw(st.none() | _small_floats),
    )


@st.composite
def funding_rates(draw: st.DrawFn) -> FundingRate:
    return FundingRate(
        **_drawn_fields(draw),
        rate=draw(st.sampled_from([-0.0005, 0.0, 0.0001, 0.00375])),
        interval_minutes=draw(st.none() | st.sampled_from([60, 240, 480])),
    )


@st.composite
def funding_estimates(draw: st.DrawFn) -> FundingRateEstimate:
    return FundingRateEstimate(
        **_drawn_fields(draw, init_after=5),
        rate=draw(st.sampled_from([-0.0005, 0.0001])),
        next_funding_ns=draw(st.none() | st.just(T0 + 8 * 3_600_000_000_000)),
        interval_minutes=draw(st.none() | st.just(480)),
        mark_price=draw(st.none() | _small_floats),
        index_price=draw(st.none() | _small_floats),
    )


@st.composite
def liquidations(draw: st.DrawFn) -> Liquidation:
    # Through a dict, like `liq`: the model computes `notional`, which its typed signature requires.
    data = _drawn_fields(draw, init_after=3)
    data.update(
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
