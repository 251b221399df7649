"""Per-IP rate limits of the simulated venues, enforced when `ExchangeSimulator.enforce_limits` is on.

Each venue module holds its rules as data (`LIMITS`: a `VenueLimits` with `Rule`s and an optional `Ban`,
each citing the page it comes from); this module only keeps the windows. The whole simulator is one IP, as
a user's machine is.

A request is admitted when, for every rule that covers it, the window's use plus the request's cost stays
within the rule's limit; it is then charged to every covering rule. A refused request is charged nothing
(it is counted as a rejection instead). A venue with a `Ban` bans the IP once `after` rejections fell within
`within_s`; while banned every request is refused with the ban's status.

Windows are `fixed` (counted per aligned interval of the clock, reset at its end, as Binance's per-minute
`X-MBX-USED-WEIGHT-1M` counter), `sliding` (the last `window_s` seconds, "in any 5-second window") or
`bucket` (a token bucket of `limit` tokens that starts full and refills continuously at `limit / window_s`
a second; a request is admitted while the bucket holds its cost, its `Retry-After` is the time until it
does; weight charged after the answer may empty the bucket but never takes it below 0, as NautilusTrader's
Hyperliquid `WeightedLimiter` debits it, crates/adapters/hyperliquid/src/http/rate_limits.rs).
The clock is injectable (seconds, `time.time` by default) so tests move time without sleeping.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

WindowKind = Literal["fixed", "sliding", "bucket"]

_EPSILON = 1e-9
"""Tokens a float refill may miss: a request that waits exactly its Retry-After is admitted."""


@dataclass(frozen=True)
class Rule:
    """One documented limit: at most `limit` units per `window_s` seconds, counted as `window` says.

    `paths`: endpoint prefixes it covers (our endpoint names: the path, or Hyperliquid's `info:<type>`);
    empty covers every request of the venue. `weighted`: a request costs its weight (else 1 per request).
    """

    name: str
    limit: int
    window_s: float
    window: WindowKind
    paths: tuple[str, ...] = ()
    weighted: bool = True
    source: str = ""

    def covers(self, endpoint: str) -> bool:
        return not self.paths or any(endpoint.startswith(p) for p in self.paths)


@dataclass(frozen=True)
class Ban:
    """After `after` rejections within `within_s` seconds the IP is banned for `duration_s` seconds."""

    after: int
    within_s: float
    duration_s: float
    status: int
    source: str = ""


@dataclass(frozen=True)
class VenueLimits:
    rules: tuple[Rule, ...]
    ban: Ban | None = None


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: the rule it would break (None while banned) and when to come back."""

    rule: Rule | None
    retry_after_s: float
    banned: bool
    status: int


class _Window:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._fixed_index = -1
        self._fixed_used = 0
        self._events: collections.deque[tuple[float, int]] = collections.deque()
        self._sliding_used = 0
        self._tokens = float(rule.limit)  # a bucket starts full
        self._refilled_at: float | None = None
        self._rate = rule.limit / rule.window_s

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None and now > self._refilled_at:
            self._tokens = min(float(self.rule.limit), self._tokens + (now - self._refilled_at) * self._rate)
        if self._refilled_at is None or now > self._refilled_at:
            self._refilled_at = now

    def used(self, now: float) -> int:
        if self.rule.window == "bucket":
            self._refill(now)
            return max(0, math.ceil(self.rule.limit - self._tokens - _EPSILON))
        if self.rule.window == "fixed":
            if math.floor(now / self.rule.window_s) != self._fixed_index:
                return 0
            return self._fixed_used
        horizon = now - self.rule.window_s
        while self._events and self._events[0][0] <= horizon:
            self._sliding_used -= self._events.popleft()[1]
        return self._sliding_used

    def charge(self, now: float, cost: int) -> None:
        if cost <= 0:
            return
        if self.rule.window == "bucket":
            self._refill(now)
            self._tokens = max(0.0, self._tokens - cost)
        elif self.rule.window == "fixed":
            index = math.floor(now / self.rule.window_s)
            if index != self._fixed_index:
                self._fixed_index, self._fixed_used = index, 0
            self._fixed_used += cost
        else:
            self.used(now)
            self._events.append((now, cost))
            self._sliding_used += cost

    def free_after(self, now: float, cost: int) -> float:
        """Seconds until `cost` more units fit (0 if they fit now)."""
        if self.rule.window == "bucket":
            self._refill(now)
            missing = cost - self._tokens
            return 0.0 if missing <= _EPSILON else missing / self._rate
        if self.used(now) + cost <= self.rule.limit:
            return 0.0
        if self.rule.window == "fixed":
            return (math.floor(now / self.rule.window_s) + 1) * self.rule.window_s - now
        excess = self._sliding_used + cost - self.rule.limit
        for t, c in self._events:
            excess -= c
            if excess <= 0:
                return t + self.rule.window_s - now
        return self.rule.window_s

    def reset_at(self, now: float) -> float:
        """When the current fixed window ends, the oldest sliding charge leaves the window, or the bucket is
        full again."""
        if self.rule.window == "bucket":
            self._refill(now)
            return now + (self.rule.limit - self._tokens) / self._rate
        if self.rule.window == "fixed":
            return (math.floor(now / self.rule.window_s) + 1) * self.rule.window_s
        self.used(now)
        return self._events[0][0] + self.rule.window_s if self._events else now


class Limiter:
    """The windows, rejections and ban of one venue."""

    def __init__(self, limits: VenueLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._windows = {rule.name: _Window(rule) for rule in limits.rules}
        self._rejected: collections.deque[float] = collections.deque()
        self.banned_until = 0.0

    def admit(self, endpoint: str, weight: int) -> Refusal | None:
        """Charge the request and return None, or refuse it (charging nothing)."""
        now = self.clock()
        ban = self.limits.ban
        if ban is not None and now < self.banned_until:
            self._note_rejection(now)
            return Refusal(None, self.banned_until - now, banned=True, status=ban.status)
        costs = [
            (w, weight if w.rule.weighted else 1) for w in self._windows.values() if w.rule.covers(endpoint)
        ]
        waits = [(w.free_after(now, cost), w.rule) for w, cost in costs]
        wait, rule = max(waits, key=lambda x: x[0], default=(0.0, None))
        if wait <= 0:
            for w, cost in costs:
                w.charge(now, cost)
            return None
        self._note_rejection(now)
        if ban is not None and self._recent_rejections(now, ban.within_s) >= ban.after:
            self.banned_until = now + ban.duration_s
            return Refusal(rule, ban.duration_s, banned=True, status=ban.status)
        return Refusal(rule, wait, banned=False, status=429)

    def charge(self, endpoint: str, extra: int) -> None:
        """Charge `extra` weight after the answer (Hyperliquid's per-items weight), to weighted rules."""
        now = self.clock()
        for w in self._windows.values():
            if w.rule.weighted and w.rule.covers(endpoint):
                w.charge(now, extra)

    def used(self, rule_name: str) -> int:
        return self._windows[rule_name].used(self.clock())

    def reset_at(self, rule_name: str) -> float:
        return self._windows[rule_name].reset_at(self.clock())

    def _note_rejection(self, now: float) -> None:
        self._rejected.append(now)

    def _recent_rejections(self, now: float, within_s: float) -> int:
        while self._rejected and self._rejected[0] <= now - within_s:
            self._rejected.popleft()
        return len(self._rejected)


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
