"""Pacing every REST request of an exchange by its documented limits, shared by all its clients in a process.

An exchange's limits are data in the venue table (`Venue.rest_limits`: each limit, what each endpoint draws
from it, each source cited). One `Pacer` per exchange and event loop (`pacer_for`) sees every HTTP request
any client of that exchange sends: all symbols, all jobs, the daemon's old and new client generations, a
stream's markets. It is installed below ccxt's request building (`install`, around `exchange.fetch2`, where
ccxt calls its own throttle), so a unified method that makes several requests is paced per request.

- Each limit is a token bucket that starts full: a burst up to the documented capacity goes at once, then
  requests are admitted as the bucket refills at capacity / period. A request waits until every bucket it
  draws from holds its weight (a weight larger than a bucket's capacity waits for a full bucket).
- A weight known only from the answer (Hyperliquid: one more per 20 items `fundingHistory` returns) is
  charged when the answer arrives; the bucket may go below zero and the next requests wait for it.
- At most `Venue.max_concurrency` requests are in flight at once.
- A 418/429 with Retry-After pauses the whole exchange (`pause`): no request of any client starts before it
  has passed, and the buckets restart empty then (the exchange just said its count is full).
- Requests drawing from the same limit are served in arrival order; one waiting on a limit holds no slot
  and never holds back a request drawing from another limit (Binance's funding limit does not slow its open
  interest). Time is `retry.CLOCK`, which tests replace.

ccxt's own limiter is off for the exchanges paced here (`venues.NO_CCXT_LIMITER`): it keeps one bucket per
ccxt instance with a capacity of one request (no bursts), one cost table per request (Binance has three
limits), no weight from the answer and no pause, and its declared costs pace Bybit at 10 requests a second
(cost 5 x `rateLimit` 20 ms) where Bybit allows 120. docs/exchanges.md, "Rate limits".
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.venues import RateLimit, RestLimits, Venue

_EPSILON = 1e-9


@dataclass
class _Bucket:
    """A token bucket of one limit: `tokens` as of clock time `at`, refilled at capacity / period."""

    capacity: float
    rate: float
    tokens: float
    at: float

    @classmethod
    def full(cls, limit: RateLimit, now: float) -> _Bucket:
        return cls(float(limit.weight), float(limit.weight) / float(limit.seconds), float(limit.weight), now)

    def level(self, now: float) -> float:
        if now <= self.at:
            return self.tokens
        return min(self.capacity, self.tokens + (now - self.at) * self.rate)

    def wait(self, weight: float, now: float) -> float:
        """Seconds until the bucket holds `weight` (at most its capacity)."""
        missing = min(weight, self.capacity) - self.level(now)
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, weight: float, now: float) -> None:
        self.tokens = self.level(now) - weight
        self.at = max(now, self.at)


class Pacer:
    """Every REST request of one exchange in this process: weights drawn from its documented limits, at
    most `in_flight` at once, and a pause for a Retry-After. `limits` None: only the in-flight cap."""

    def __init__(self, name: str, limits: RestLimits | None, in_flight: int) -> None:
        self.name = name
        self.limits = limits
        self.in_flight = in_flight
        now = self._clock().now()
        self._buckets = {lim.name: _Bucket.full(lim, now) for lim in (limits.limits if limits else ())}
        self._slots = asyncio.Semaphore(in_flight)
        self._turns = {name: asyncio.Lock() for name in self._buckets}
        self.resume_at = 0.0
        """Clock time before which no request starts: the exchange's last Retry-After."""
        self.announced_until = 0.0
        """Until when a wait was last announced (clients waiting on one Retry-After share one line)."""
        self.spent: dict[str, float] = dict.fromkeys(self._buckets, 0.0)
        """Weight drawn from each limit so far."""
        self.sent = 0
        self.busy = 0
        self.peak = 0
        """Requests in flight now, and the most at once so far."""

    @staticmethod
    def _clock() -> retry.Clock:
        return retry.CLOCK

    def weights(self, path: str, params: Mapping[str, Any]) -> dict[str, float]:
        return self.limits.weights(path, params) if self.limits else {}

    def extra(self, path: str, params: Mapping[str, Any], answer: Any) -> dict[str, float]:
        return self.limits.extra(path, params, answer) if self.limits else {}

    @contextlib.asynccontextmanager
    async def request(self, weights: Mapping[str, float]) -> AsyncIterator[None]:
        """Hold one of the in-flight slots, `weights` drawn (and any pause passed) the moment it is taken."""
        await self._admit({n: w for n, w in weights.items() if n in self._buckets})
        self.sent += 1
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        try:
            yield
        finally:
            self.busy -= 1
            self._slots.release()

    async def _admit(self, weights: Mapping[str, float]) -> None:
        """Wait, in turn with the requests drawing from the same limits, until they hold `weights` and a slot
        is free; take both. A request waiting on one limit never holds back one drawing from another, and
        holds no slot while it waits."""
        clock = self._clock()
        async with contextlib.AsyncExitStack() as turns:
            for name in sorted(weights):  # always in the same order: no two requests wait on each other
                await turns.enter_async_context(self._turns[name])
            while True:
                wait = self._wait(weights, clock.now())
                if wait > _EPSILON:
                    await clock.sleep(wait)
                    continue
                await self._slots.acquire()
                now = clock.now()
                if self._wait(weights, now) <= _EPSILON:  # a pause may have come while it waited
                    self.charge(weights, now)
                    return
                self._slots.release()

    def _wait(self, weights: Mapping[str, float], now: float) -> float:
        return max([self.resume_at - now] + [self._buckets[n].wait(w, now) for n, w in weights.items()])

    def charge(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Draw `weights` (an answer's extra weight: the bucket may go below zero)."""
        now = self._clock().now() if now is None else now
        for name, weight in weights.items():
            if name in self._buckets and weight:
                self._buckets[name].take(weight, now)
                self.spent[name] += weight

    def pause(self, seconds: float) -> None:
        """No request of this exchange starts for `seconds`; the buckets are empty when it ends."""
        resume = self._clock().now() + seconds
        if resume <= self.resume_at:
            return
        self.resume_at = resume
        for bucket in self._buckets.values():
            bucket.tokens, bucket.at = min(bucket.tokens, 0.0), resume

    def level(self, name: str) -> float:
        """The tokens of limit `name` now (tests, status)."""
        return self._buckets[name].level(self._clock().now())


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Pacer]] = weakref.WeakKeyDictionary()


def pacer_for(venue: Venue) -> Pacer:
    """The one pacer of `venue` in this process (per event loop: asyncio's locks belong to one loop)."""
    pacers = _PACERS.setdefault(asyncio.get_running_loop(), {})
    pacer = pacers.get(venue.name)
    if pacer is None:
        pacer = pacers[venue.name] = Pacer(venue.name, venue.rest_limits, venue.max_concurrency)
    return pacer


def install(exchange: Any, venue: Venue, *, weigh: bool = True) -> None:
    """Route every REST request of the ccxt `exchange` through `venue`'s pacer. ccxt's `fetch2(path, api,
    method, params, config)` (ccxt 4.5.90 `async_support/base/exchange.py`) is where each implicit-API call
    is throttled, signed and sent; the pacer is looked up at each request, inside the running loop.
    `weigh` False (setting `pace_requests`, a local simulator): the requests draw no weight; the in-flight
    cap and Retry-After pauses still hold."""
    original = exchange.fetch2

    async def fetch2(
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        params = {} if params is None else params
        pacer = pacer_for(venue)
        async with pacer.request(pacer.weights(path, params) if weigh else {}):
            answer = await original(path, api, method, params, {} if config is None else config)
        if weigh:
            pacer.charge(pacer.extra(path, params, answer))
        return answer

    exchange.fetch2 = fetch2
