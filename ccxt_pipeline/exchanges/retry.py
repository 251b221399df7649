"""Retrying temporary failures: capped, jittered exponential backoff that honours Retry-After (tenacity),
inside a bounded total time.

A call is tried up to `attempts` times. Between tries it waits a full-jitter exponential backoff, but never
less than the Retry-After the exchange sent (capped at `max_retry_after_s`). The tries and waits of one
call together stay within `max_total_s`: a wait that would end past it is not started, and the call gives
up at once with one line saying why (the last error, the tries made, the time spent). Waits of at least
`announce_s` are announced (one log line at WARNING: exchange, how long, why) before they start.

Time goes through `CLOCK` (monotonic now + sleep), which tests replace to skip long waits without mocking
ccxt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from ccxt_pipeline.errors import RateLimited, TemporaryError
from ccxt_pipeline.settings import RetrySettings

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


CLOCK: Clock = RealClock()
"""The clock every retry waits on; replace it (tests) to make long waits instant."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """Tries in all, the first included."""
    base_s: float = 0.25
    """Backoff scale: the n-th wait is random in [0, base * 2**n], capped at `max_s`."""
    max_s: float = 30.0
    max_retry_after_s: float = 120.0
    """Retry-After is honoured up to this many seconds; an exchange asking for longer (a Binance IP ban
    lasts 2 minutes to 3 days) is not asked again: the call gives up at once."""
    max_total_s: float = 180.0
    """One call's tries and waits together stay within this; then it gives up."""
    announce_s: float = 5.0
    """Waits at least this long are announced before they start."""

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(
            attempts=settings.attempts,
            base_s=settings.backoff_base_seconds,
            max_s=settings.backoff_max_seconds,
            max_retry_after_s=settings.max_retry_after_seconds,
            max_total_s=settings.max_total_seconds,
        )


Announce = Callable[[float, TemporaryError], None]
"""Called with (seconds, error) before a wait of at least `announce_s`."""


class _Wait:
    """Full-jitter exponential backoff, but never shorter than the exchange's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_random_exponential(multiplier=policy.base_s, max=policy.max_s)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self.backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)  # one longer than max_retry_after_s is refused by _Budget
        return wait


class _Budget:
    """tenacity's stop: out of tries, a Retry-After longer than allowed, or a next wait that would end past
    the total time allowed. tenacity computes the next wait before it asks whether to stop."""

    def __init__(self, policy: RetryPolicy, clock: Clock) -> None:
        self.policy = policy
        self.clock = clock
        self.started = clock.now()
        self.reason = ""

    def __call__(self, state: RetryCallState) -> bool:
        tries = state.attempt_number
        spent = f"after {tries} {'try' if tries == 1 else 'tries'} in {self.clock.now() - self.started:.0f}s"
        if tries >= self.policy.attempts:
            self.reason = spent if tries > 1 else ""
            return True
        wait = state.upcoming_sleep
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, RateLimited) else None
        if asked is not None and asked > self.policy.max_retry_after_s:
            self.reason = (
                f"{spent}: the exchange asks to wait {asked:.0f}s (Retry-After), more than the "
                f"{self.policy.max_retry_after_s:.0f}s allowed (retry.max_retry_after_seconds)"
            )
            return True
        if self.clock.now() - self.started + wait > self.policy.max_total_s:
            what = "the exchange asks to wait" if asked is not None and wait <= asked else "the next wait is"
            self.reason = (
                f"{spent}: {what} {wait:.0f}s, past the retry budget of {self.policy.max_total_s:.0f}s "
                "(retry.max_total_seconds)"
            )
            return True
        return False


async def with_retries(
    policy: RetryPolicy,
    call: Callable[[], Awaitable[T]],
    *,
    announce: Announce | None = None,
    clock: Clock | None = None,
) -> T:
    """Await `call()`, again after a wait while it raises TemporaryError, within `policy`'s tries and total
    time. A call that gives up after retrying re-raises its last error, its message prefixed with
    `gave up after N tries in S s` (and why, when the time budget ended it)."""
    clock = clock or CLOCK
    budget = _Budget(policy, clock)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        long_wait = state.upcoming_sleep >= policy.announce_s
        if announce is not None and long_wait and isinstance(exc, TemporaryError):
            announce(state.upcoming_sleep, exc)

    retrying = AsyncRetrying(
        stop=budget,
        wait=_Wait(policy),
        retry=retry_if_exception_type(TemporaryError),
        before_sleep=before_sleep,
        sleep=clock.sleep,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                return await call()
    except TemporaryError as exc:
        if budget.reason:
            _gave_up(exc, budget.reason)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _gave_up(exc: TemporaryError, reason: str) -> None:
    """Rewrite `exc`'s one-line message to say the retries ended, keeping its class and fields."""
    prefix = f"{exc.exchange}: "
    text = str(exc)
    rest = text[len(prefix) :] if text.startswith(prefix) else text
    exc.args = (f"{prefix}gave up {reason}; last error: {rest}",)
