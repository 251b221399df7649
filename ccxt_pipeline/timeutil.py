"""Time as UTC integer nanoseconds since the Unix epoch, and its text forms.

The catalog names files by their first and last `ts_init` in the form NautilusTrader 1.221 parses:
`2025-01-01T00-00-00-000000000Z` (ISO-8601 UTC with `:` and `.` replaced by `-`, nine fraction digits).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

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


_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_NS = {"m": NS_PER_MINUTE, "h": NS_PER_HOUR, "d": NS_PER_DAY, "w": 7 * NS_PER_DAY}


def parse_when(text: str, now: int) -> int:
    """A user's time: `2025-01-01`, an ISO datetime (UTC unless it says otherwise), or `30d`/`12h`/`90m`/`2w`
    before `now`. Returns UTC nanoseconds; ValueError with the accepted forms otherwise."""
    value = text.strip()
    m = _RELATIVE.match(value)
    if m:
        return now - int(m.group(1)) * _UNIT_NS[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use a date (2025-01-01), an ISO datetime (2025-01-01T08:00:00Z) "
            "or a span before now (30d, 12h, 90m, 2w)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # a time without a zone is UTC, never local time
    return calendar.timegm(dt.utctimetuple()) * NS_PER_SECOND + dt.microsecond * NS_PER_US


PERIODS_NS = {
    "5m": 5 * NS_PER_MINUTE,
    "15m": 15 * NS_PER_MINUTE,
    "30m": 30 * NS_PER_MINUTE,
    "1h": NS_PER_HOUR,
    "2h": 2 * NS_PER_HOUR,
    "4h": 4 * NS_PER_HOUR,
    "6h": 6 * NS_PER_HOUR,
    "12h": 12 * NS_PER_HOUR,
    "1d": NS_PER_DAY,
}
"""Open-interest history periods, as ccxt names them."""
