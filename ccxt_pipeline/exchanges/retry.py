"""Retrying temporary failures: capped, jittered exponential backoff that honours Retry-After (tenacity)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from ccxt_pipeline.errors import RateLimited, TemporaryError
from ccxt_pipeline.settings import RetrySettings

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    """Tries in all, the first included."""
    base_s: float = 0.25
    """Backoff scale: the n-th wait is random in [0, base * 2**n], capped at `max_s`."""
    max_s: float = 30.0
    max_retry_after_s: float = 120.0
    """Retry-After is honoured up to this many seconds."""

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(settings.attempts, settings.backoff_base_seconds, settings.backoff_max_seconds)


class _Wait:
    """Full-jitter exponential backoff, but never shorter than the exchange's Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_random_exponential(multiplier=policy.base_s, max=policy.max_s)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self.backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self.policy.max_retry_after_s))
        return wait


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """Await `call()`, again after a wait while it raises TemporaryError, up to `policy.attempts` tries."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=_Wait(policy),
        retry=retry_if_exception_type(TemporaryError),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # pragma: no cover
