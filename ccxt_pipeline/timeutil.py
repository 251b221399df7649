"""Time as UTC integer nanoseconds since the Unix epoch, and its text forms.

The catalog names files by their first and last `ts_init` in the form NautilusTrader 1.221 parses:
`2025-01-01T00-00-00-000000000Z` (ISO-8601 UTC with `:` and `.` replaced by `-`, nine fraction digits).
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

from ccxt_pipeline.errors import InputError

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


MAX_SPAN_NS = 36_500 * NS_PER_DAY
"""The longest duration accepted (100 years of 365 days): anything longer is a typo."""

# The one duration grammar, used by every command that takes a span of time (settings give spans as plain
# numbers of seconds: `stale_seconds: 30`):
#   DURATION := NUMBER UNIT      NUMBER := digits [ "." digits ]      UNIT := s | m | h | d | w
#   (ASCII digits, at most 20 before the point and 18 after)
# `90s`, `10m`, `2.5h`, `30d`, `2w`; surrounding blanks are ignored; nothing else is (no `1h30m`, no `10 m`,
# no `M` for minutes). `--from/--to` read it as a span before now, `--duration` as a span, `--period` as one
# of PERIODS_NS.
_DURATION = re.compile(r"(\d{1,20})(?:\.(\d{1,18}))?([smhdw])", re.ASCII)
UNIT_NS = {"s": NS_PER_SECOND, "m": NS_PER_MINUTE, "h": NS_PER_HOUR, "d": NS_PER_DAY, "w": 7 * NS_PER_DAY}
DURATION_FORMS = "a number and a unit: 90s, 10m, 2.5h, 30d, 2w"
WHEN_FORMS = (
    "a date (2025-01-01), an ISO datetime (2025-01-01T08:00:00Z) or a span before now (30d, 12h, 90m, 2w)"
)


def _span_ns(text: str) -> int | None:
    """Nanoseconds of a DURATION, or None when `text` is not one (it may be too long: the caller checks)."""
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        return None
    whole, frac, unit = m.groups()
    unit_ns = UNIT_NS[unit]
    ns = int(whole) * unit_ns
    if frac:
        ns += int(frac) * unit_ns // 10 ** len(frac)  # exact; below a nanosecond is dropped
    return ns


def parse_duration(text: str, subject: str = "duration") -> int:
    """A span of time in the duration grammar (`90s`, `10m`, `2.5h`, `30d`, `2w`), in nanoseconds (zero allowed).
    Raises InputError naming `subject` otherwise."""
    ns = _span_ns(text)
    if ns is None:
        raise InputError(subject, f"cannot read {subject} {text!r}: use {DURATION_FORMS}")
    if ns > MAX_SPAN_NS:
        raise InputError(subject, f"{subject} {text!r} is too long (at most {format_duration(MAX_SPAN_NS)})")
    return ns


def format_duration(ns: int) -> str:
    """Nanoseconds in the duration grammar, exactly: the largest unit that divides it (`2w`, `90m`), else
    seconds with a decimal fraction (`2.5s`). `parse_duration(format_duration(ns)) == ns`."""
    if ns < 0:
        raise ValueError(f"a duration is never negative: {ns}")
    for unit in ("w", "d", "h", "m", "s"):
        if ns % UNIT_NS[unit] == 0:
            return f"{ns // UNIT_NS[unit]}{unit}"
    seconds, frac = divmod(ns, NS_PER_SECOND)
    return f"{seconds}.{frac:09d}".rstrip("0") + "s"


def describe_ns(ns: int) -> str:
    """A time for a message: `2030-01-01T00:00:00Z`, with a fraction only when it has one."""
    iso = ns_to_iso(ns)
    head, frac = iso[:19], iso[20:29].rstrip("0")
    return f"{head}.{frac}Z" if frac else f"{head}Z"


def parse_when(text: str, now: int, subject: str = "time") -> int:
    """A user's time: `2025-01-01`, an ISO datetime (UTC unless it says otherwise), or a duration before `now`
    (`30d`, `12h`, `90m`, `2w`, `90s`: the grammar of :func:`parse_duration`). Returns UTC nanoseconds;
    InputError (a ValueError) naming `subject` and the accepted forms otherwise."""
    value = text.strip()
    span = _span_ns(value)
    if span is not None:
        ns = now - span
    else:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(subject, f"cannot read time {text!r}: use {WHEN_FORMS}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)  # a time without a zone is UTC, never local time
        ns = calendar.timegm(dt.utctimetuple()) * NS_PER_SECOND + dt.microsecond * NS_PER_US
    if not 0 <= ns < MAX_TS_NS:
        raise InputError(subject, f"time {text!r} is outside {describe_ns(0)} .. {describe_ns(MAX_TS_NS)}")
    return ns


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


def parse_period(text: str, subject: str = "period") -> str:
    """An open-interest history period as ccxt names it (`5m`, `1h`, `1d`): the name itself, or any duration
    equal to one (`60m` is `1h`). InputError naming `subject` otherwise."""
    value = text.strip()
    if value in PERIODS_NS:
        return value
    ns = _span_ns(value)
    for name, period_ns in PERIODS_NS.items():
        if ns == period_ns:
            return name
    raise InputError(subject, f"unknown {subject} {text!r} (periods: {', '.join(PERIODS_NS)})")
