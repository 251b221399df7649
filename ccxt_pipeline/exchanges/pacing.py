"""Pacing every REST request of an exchange by its documented limits, shared by all its clients in a process.

An exchange's limits are data in the venue table (`Venue.rest_limits`: each limit, what each endpoint draws
from it, each source cited). One `Pacer` per exchange and event loop (`pacer_for`) sees every HTTP request
any client of that exchange sends: all symbols, all jobs, the daemon's old and new client generations, a
stream's markets. It is installed below ccxt's request building (`install`, around `exchange.fetch2`, where
ccxt calls its own throttle), so a unified method that makes several requests is paced per request.

- Each limit is a sliding window of its period: the weight admitted in the last `period` seconds never
  exceeds the documented capacity, at any instant, so neither an exchange counting fixed intervals (Binance's
  minute and 5 minutes) nor one counting "any 5-second window" (Bybit) sees more than its limit. A burst up
  to the capacity goes at once from idle; then a request waits until enough earlier weight has left the
  window (a weight larger than the capacity waits for an empty window). A request counts from the moment it
  is admitted until `period` after its answer arrived (the exchange counted it somewhere in between), so
  no latency can make the exchange's window hold more than ours.
- A weight known only from the answer (Hyperliquid: one more per 20 items `fundingHistory` returns) is
  charged when the answer arrives; the window may go over the capacity and the next requests wait for it.
  While such a request is in flight, the extra weight of the endpoint's last answer counts for it (the
  exchange may charge it before our answer arrives, and the others in flight must not use it).
- Where the exchange tells its count (Binance `X-MBX-USED-WEIGHT-1M`), ours never falls below it: the weight
  a killed run left in the exchange's window is waited for, not refused.
- At most `Venue.max_concurrency` requests are in flight at once.
- A 418/429 with Retry-After pauses the whole exchange (`pause`): no request of any client starts before it
  has passed, and each window counts as full then (the exchange just said its count is full): what our
  window does not know of leaves it at capacity / period from the resumption on.
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
import bisect
import contextlib
import math
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.venues import RateLimit, RestLimits, Venue

_EPSILON = 1e-9
_PAUSE_PIECES = 60
"""After a Retry-After, a window's unknown weight leaves it in this many pieces over one period."""

USED_WEIGHT_HEADERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    # USD-M general-info, "IP Limits": "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)
    # (intervalLetter) in the response headers which has the current used weight for the IP for all request
    # rate limiters defined" - for the 1-minute REQUEST_WEIGHT limit, our `weight`.
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
    "binance": (("x-mbx-used-weight-1m", "weight"),),
}
"""Per exchange: (response header, limit name) where the exchange tells what it counted in that limit."""


class _Window:
    """One limit's window: the weight of the requests in flight, and of those answered, each until
    `period` after its answer (`_done`: (leaves at, weight), sorted)."""

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.weight)
        self.period = float(limit.seconds)
        self.in_flight = 0.0
        self._done: list[tuple[float, float]] = []
        self._done_sum = 0.0

    def used(self, now: float) -> float:
        """The weight in the window at `now`."""
        gone = bisect.bisect_right(self._done, (now + _EPSILON, math.inf))
        if gone:
            self._done_sum -= sum(w for _, w in self._done[:gone])
            del self._done[:gone]
            if not self._done:
                self._done_sum = 0.0  # no float residue once empty
        return self.in_flight + self._done_sum

    def wait(self, weight: float, now: float) -> float:
        """Seconds until `weight` (at most the capacity) fits; `math.inf`: not before a request in flight
        is answered (its weight stays a whole period after)."""
        excess = self.used(now) + min(weight, self.capacity) - self.capacity
        if excess <= _EPSILON:
            return 0.0
        for leaves, w in self._done:
            excess -= w
            if excess <= _EPSILON:
                return leaves - now
        return math.inf

    def add(self, weight: float, now: float) -> None:
        """Weight counted until `period` after `now` (an answer arrived, or an exchange's count)."""
        self.add_until(weight, now + self.period)

    def add_until(self, weight: float, leaves: float) -> None:
        if weight > 0:
            bisect.insort(self._done, (leaves, weight))
            self._done_sum += weight


class Pacer:
    """Every REST request of one exchange in this process: weights drawn from its documented limits, at
    most `in_flight` at once, and a pause for a Retry-After. `limits` None: only the in-flight cap."""

    def __init__(self, name: str, limits: RestLimits | None, in_flight: int) -> None:
        self.name = name
        self.limits = limits
        self.in_flight = in_flight
        self._windows = {lim.name: _Window(lim) for lim in (limits.limits if limits else ())}
        self._headers = tuple((h, n) for h, n in USED_WEIGHT_HEADERS.get(name, ()) if n in self._windows)
        self._slots = asyncio.Semaphore(in_flight)
        self._turns = {name: asyncio.Lock() for name in self._windows}
        self._answered = asyncio.Event()
        """Set (and replaced) whenever a request's answer arrives: wakes requests waiting on weight in flight."""
        self.resume_at = 0.0
        """Clock time before which no request starts: the exchange's last Retry-After."""
        self.announced_until = 0.0
        """Until when a wait was last announced (clients waiting on one Retry-After share one line)."""
        self.expected: dict[tuple[str, Any], dict[str, float]] = {}
        """The extra weight of the last answer per (path, Hyperliquid body type): reserved while in flight."""
        self.spent: dict[str, float] = dict.fromkeys(self._windows, 0.0)
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
    async def request(
        self, weights: Mapping[str, float], reserve: Mapping[str, float] | None = None
    ) -> AsyncIterator[None]:
        """Hold one of the in-flight slots, `weights` drawn (and any pause passed) the moment it is taken;
        they stay in the windows until `period` after the block ends (the answer arrived, or it failed).
        `reserve`: weight the answer is expected to add (`charge`), counted only while in flight."""
        drawn = {n: float(w) for n, w in weights.items() if n in self._windows and w}
        held = {n: float(w) for n, w in (reserve or {}).items() if n in self._windows and w}
        await self._admit(drawn)
        for name, weight in held.items():
            self._windows[name].in_flight += weight
        self.sent += 1
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        try:
            yield
        finally:
            self.busy -= 1
            now = self._clock().now()
            for name, weight in drawn.items():
                window = self._windows[name]
                window.in_flight = max(0.0, window.in_flight - weight)
                window.add(weight, now)
            for name, weight in held.items():
                window = self._windows[name]
                window.in_flight = max(0.0, window.in_flight - weight)
            self._slots.release()
            self._answered.set()
            self._answered = asyncio.Event()

    async def _admit(self, weights: Mapping[str, float]) -> None:
        """Wait, in turn with the requests drawing from the same limits, until `weights` fit in their windows
        and a slot is free; take both. A request waiting on one limit never holds back one drawing from
        another, and holds no slot while it waits."""
        clock = self._clock()
        async with contextlib.AsyncExitStack() as turns:
            for name in sorted(weights):  # always in the same order: no two requests wait on each other
                await turns.enter_async_context(self._turns[name])
            while True:
                wait = self._wait(weights, clock.now())
                if wait == math.inf:  # only an answer of a request in flight can free enough weight
                    await self._answered.wait()
                    continue
                if wait > _EPSILON:
                    await clock.sleep(wait)
                    continue
                await self._slots.acquire()
                now = clock.now()
                if self._wait(weights, now) <= _EPSILON:  # a pause or a charge may have come meanwhile
                    for name, weight in weights.items():
                        self._windows[name].in_flight += weight
                        self.spent[name] += weight
                    return
                self._slots.release()

    def _wait(self, weights: Mapping[str, float], now: float) -> float:
        return max([self.resume_at - now] + [self._windows[n].wait(w, now) for n, w in weights.items()])

    def charge(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Add `weights` that an answer tells (Hyperliquid's per-item weight): counted for one period from
        now; the window may go over its capacity."""
        now = self._clock().now() if now is None else now
        for name, weight in weights.items():
            if name in self._windows and weight:
                self._windows[name].add(float(weight), now)
                self.spent[name] += weight

    def observe(self, headers: Mapping[str, Any] | None, weights: Mapping[str, float]) -> None:
        """Never count less than the exchange says it counted (`USED_WEIGHT_HEADERS`), told in the answer to
        a request drawing `weights` and still in flight. The exchange's count includes that request but
        maybe not the others in flight, so ours must reach its count plus theirs."""
        if not headers or not self._headers:
            return
        lower = {str(k).lower(): v for k, v in headers.items()}
        now = self._clock().now()
        for header, name in self._headers:
            try:
                told = float(lower[header])
            except (KeyError, TypeError, ValueError):
                continue
            window = self._windows[name]
            others = max(0.0, window.in_flight - weights.get(name, 0.0))
            window.add(told + others - window.used(now), now)  # nothing when ours is not below

    def pause(self, seconds: float) -> None:
        """No request of this exchange starts for `seconds`; each window counts as full then, and the weight
        it did not know of leaves it at capacity / period from the resumption on."""
        now = self._clock().now()
        resume = now + seconds
        if resume <= self.resume_at:
            return
        self.resume_at = resume
        for window in self._windows.values():
            unknown = window.capacity - window.used(now)
            piece = window.capacity / _PAUSE_PIECES
            k = 0
            while unknown > _EPSILON:
                k += 1
                window.add_until(min(piece, unknown), resume + k * window.period / _PAUSE_PIECES)
                unknown -= piece

    def level(self, name: str) -> float:
        """What limit `name` admits now: its capacity less the weight in its window (tests, status)."""
        window = self._windows[name]
        return window.capacity - window.used(self._clock().now())

    def used(self, name: str) -> float:
        """The weight in limit `name`'s window now."""
        return self._windows[name].used(self._clock().now())


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
    cap and Retry-After pauses still hold.

    ccxt's `fetch` sets `exchange.last_response_headers` (a new dict per response, before raising on an
    error status) and nothing awaits between that and this wrapper: a changed dict after the request is
    this request's answer, or another answer received while it was in flight; either is the exchange's
    count at a moment this request was counted in ours."""
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
        weights = pacer.weights(path, params) if weigh else {}
        kind = (path, params.get("type") if isinstance(params, Mapping) else None)
        async with pacer.request(weights, pacer.expected.get(kind) if weigh else None):
            before = getattr(exchange, "last_response_headers", None)
            try:
                answer = await original(path, api, method, params, {} if config is None else config)
            finally:
                after = getattr(exchange, "last_response_headers", None)
                if weigh and after is not before and isinstance(after, Mapping):
                    pacer.observe(after, weights)
        if weigh:  # nothing awaits between the block's end and this: no request sees the reserve gone alone
            extra = pacer.extra(path, params, answer)
            if extra or kind in pacer.expected:
                pacer.expected[kind] = extra
            pacer.charge(extra)
        return answer

    exchange.fetch2 = fetch2
