"""Time as UTC integer nanoseconds since the Unix epoch, and its text forms.

The catalog names files by their first and last `ts_init` in the form NautilusTrader 1.221 parses:
`2025-01-01T00-00-00-000000000Z` (ISO-8601 UTC with `:` and `.` replaced by `-`, nine fraction digits).
"""

from __future__ import annotations

import calendar
import time

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_HOUR = 60 * NS_PER_MINUTE
NS_PER_DAY = 24 * NS_PER_HOUR

# Sanity bounds for exchange timestamps: a value outside is almost surely in the wrong unit
# (milliseconds passed as nanoseconds land in January 1970).
MIN_TS_NS = calendar.timegm((2009, 1, 1, 0, 0, 0)) * NS_PER_SECOND
MAX_TS_NS = calendar.timegm((2100, 1, 1, 0, 0, 0)) * NS_PER_SECOND

_STAMP_LEN = len("2025-01-01T00-00-00-000000000Z")


def now_ns() -> int:
    """The wall clock, UTC nanoseconds."""
    return time.time_ns()


def ms_to_ns(ms: int | float | str) -> int:
    """Milliseconds (as exchanges send them, sometimes as strings) to integer nanoseconds, exactly."""
    return int(ms) * NS_PER_MS


def ns_to_stamp(ns: int) -> str:
    """`1735689600000000000` -> `2025-01-01T00-00-00-000000000Z` (the file-name form)."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    return time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(seconds)) + f"-{frac:09d}Z"


def stamp_to_ns(stamp: str) -> int:
    """Inverse of :func:`ns_to_stamp`; raises ValueError on anything else."""
    s = stamp
    if (
        len(s) != _STAMP_LEN
        or s[4] != "-"
        or s[7] != "-"
        or s[10] != "T"
        or s[13] != "-"
        or s[16] != "-"
        or s[19] != "-"
        or s[29] != "Z"
    ):
        raise ValueError(f"not a catalog timestamp: {stamp!r}")
    parts = (s[0:4], s[5:7], s[8:10], s[11:13], s[14:16], s[17:19], s[20:29])
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"not a catalog timestamp: {stamp!r}")
    year, month, day, hour, minute, second, frac = (int(p) for p in parts)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"not a catalog timestamp: {stamp!r}")
    return calendar.timegm((year, month, day, hour, minute, second)) * NS_PER_SECOND + frac


def ns_to_iso(ns: int) -> str:
    """`1735689600000000000` -> `2025-01-01T00:00:00.000000000Z`, for people."""
    seconds, frac = divmod(ns, NS_PER_SECOND)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def day_start(ns: int) -> int:
    """Start of the UTC day holding `ns`."""
    return ns - ns % NS_PER_DAY
