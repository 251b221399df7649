"""Funding rates from ccxt structures: settled history and the live estimate, never mixed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import FundingRate, FundingRateEstimate, validate_record
from ccxt_pipeline.parsers.common import info, interval_minutes, ms_to_ns_or, number, positive, stamped
from ccxt_pipeline.timeutil import NS_PER_MINUTE

# Funding intervals exchanges use, in minutes. A spacing between two settlements that is not one of these
# means settlements are missing in between (or the schedule changed mid-way): the interval is then unknown.
KNOWN_INTERVALS = (60, 120, 240, 480, 720, 1440)


def interval_between(prev_ns: int | None, ts_ns: int) -> int | None:
    """The funding interval that ended at `ts_ns`, from the previous settlement, in whole minutes."""
    if prev_ns is None:
        return None
    minutes = round((ts_ns - prev_ns) / NS_PER_MINUTE)
    return minutes if minutes in KNOWN_INTERVALS else None


def parse_funding_history(
    rows: Sequence[Mapping[str, Any]],
    inst: Instrument,
    *,
    prev_ns: int | None = None,
    fixed_interval: int | None = None,
) -> list[FundingRate]:
    """Settled funding rows (`fetch_funding_rate_history`), any order in, sorted by time out.

    Each row's interval is the venue's fixed one if it has one (Hyperliquid: 60), else the spacing from the
    previous settlement (`prev_ns`: the last stored one, for the first row), else unknown (None).
    """
    out: list[FundingRate] = []
    last = prev_ns
    for row in sorted(rows, key=lambda r: int(r["timestamp"])):
        ts = ms_to_ns_or(row["timestamp"], 0)
        if last is not None and ts <= last:
            last = max(last, ts)
            if out and out[-1].ts_event == ts:
                continue  # the same settlement twice in one answer
        interval = fixed_interval if fixed_interval is not None else interval_between(last, ts)
        out.append(
            validate_record(
                FundingRate,
                {
                    **stamped(inst, ts, ts),
                    "rate": number(row.get("fundingRate")),
                    "interval_minutes": interval,
                },
            )
        )
        last = ts
    return out


def parse_funding_estimate(
    item: Mapping[str, Any],
    inst: Instrument,
    *,
    received_ns: int,
    interval: int | None = None,
) -> FundingRateEstimate:
    """The live funding rate (`fetch_funding_rate(s)`): the estimate for the interval now running.

    `fundingTimestamp` is when the running interval settles. `interval` (minutes) is used when ccxt gives
    none (Binance's premiumIndex has no interval; it comes from fundingInfo).
    """
    raw_next = item.get("fundingTimestamp") or item.get("nextFundingTimestamp")
    return validate_record(
        FundingRateEstimate,
        {
            **stamped(inst, ms_to_ns_or(item.get("timestamp"), received_ns), received_ns),
            "rate": number(item.get("fundingRate")),
            "next_funding_ns": ms_to_ns_or(raw_next, 0) or None,
            "interval_minutes": interval_minutes(item.get("interval")) or interval,
            "mark_price": positive(item.get("markPrice")) or positive(info(item).get("markPx")),
            "index_price": positive(item.get("indexPrice")) or positive(info(item).get("oraclePx")),
        },
    )
