"""Small helpers the parsers share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ccxt_pipeline.timeutil import NS_PER_MS

if TYPE_CHECKING:
    from ccxt_pipeline.instruments import Instrument


def number(value: Any) -> float | None:
    """A float from what exchanges send (numbers or strings); None for missing, empty or zero-length."""
    if value is None or value == "":
        return None
    return float(value)


def positive(value: Any) -> float | None:
    """A float that must be > 0 to mean anything (prices): 0 and missing become None."""
    x = number(value)
    return x if x is not None and x > 0 and math.isfinite(x) else None


def ms_to_ns_or(value: Any, default: int) -> int:
    """Exchange milliseconds to nanoseconds, or `default` when the exchange gives no time."""
    if value is None or value == "":
        return default
    return int(value) * NS_PER_MS


def interval_minutes(text: Any) -> int | None:
    """ccxt's funding interval text (`'8h'`, `'60m'`, `'1d'`) in minutes."""
    if not text or not isinstance(text, str):
        return None
    unit = text[-1]
    scale = {"m": 1, "h": 60, "d": 1440}.get(unit)
    if scale is None or not text[:-1].isdigit():
        return None
    return int(text[:-1]) * scale


def info(item: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = item.get("info")
    return raw if isinstance(raw, Mapping) else {}


def stamped(inst: Instrument, ts_event: int | None, ts_init: int) -> dict[str, Any]:
    """The fields every record starts with: whose it is (exchange, instrument id) and its two times."""
    return {
        "exchange": inst.exchange,
        "instrument_id": inst.instrument_id,
        "ts_event": ts_event,
        "ts_init": ts_init,
    }
