"""Opening exchange clients: every exchange at once, each awaited on its own, all closed on exit.

`clients` is the seam that builds each client (tests give one whose HTTP layer is a recorded transport).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from ccxt_pipeline.errors import ExchangeError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.settings import ExchangeSettings, Settings


class Exchanges:
    """Exchanges being opened concurrently. Each client is awaited on its own, so an exchange slow to load
    its markets never holds up the others; `errors` says why an exchange could not be opened."""

    def __init__(
        self,
        opening: dict[str, asyncio.Task[ExchangeClient | None]],
        errors: dict[str, str],
        meters: dict[str, RequestMeter] | None = None,
    ) -> None:
        self._opening = opening
        self.errors = errors
        self.meters = meters or {}
        """Requests sent per exchange (every HTTP request ccxt makes, retries included)."""

    @property
    def names(self) -> list[str]:
        return list(self._opening)

    async def client(self, name: str) -> ExchangeClient | None:
        """The open client, or None if it could not be opened (see `errors`)."""
        return await self._opening[name]


@contextlib.asynccontextmanager
async def open_exchanges(
    settings: Settings,
    names: Sequence[str],
    policy: RetryPolicy | None = None,
    *,
    clients: ClientFactory = ExchangeClient,
) -> AsyncIterator[Exchanges]:
    """Start opening every exchange at once; on exit, stop what is still opening and close every client.
    `clients` builds each client (tests give one whose HTTP layer is a recorded transport)."""
    policy = policy or RetryPolicy.from_settings(settings.retry)
    errors: dict[str, str] = {}
    meters = {n: RequestMeter() for n in names}
    opened: list[ExchangeClient] = []

    async def open_one(name: str) -> ExchangeClient | None:
        client = clients(name, settings.exchanges.get(name) or ExchangeSettings(), policy)
        meters[name].attach(client)
        try:
            await client.__aenter__()  # loads the markets; closes the client itself if that fails
        except ExchangeError as exc:
            errors[name] = unreachable(exc) or str(exc)
            return None
        opened.append(client)
        return client

    tasks = {n: asyncio.create_task(open_one(n)) for n in names}
    try:
        yield Exchanges(tasks, errors, meters)
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        # All at once: ccxt's close() waits `timeout_on_exit` (250 ms, ccxt 4.5.90
        # `async_support/base/exchange.py`, for aiohttp's SSL connections to shut down) per client, which one
        # after another added 0.75 s to every three-exchange fetch. Closing never raises.
        await asyncio.gather(*(client.__aexit__(None, None, None) for client in opened))


class RequestMeter:
    """Counts the HTTP requests one client sends, for a requests-per-minute figure: every request ccxt
    makes goes through its `fetch(url, method, headers, body)` (ccxt 4.5.90
    `ccxt/async_support/base/exchange.py`), which is wrapped here."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._times: collections.deque[float] = collections.deque()
        self.total = 0
        self.limit_per_minute: float | None = None
        """ccxt's own pace (60 s / `rateLimit` ms) when its rate limiter is on, else None."""

    def attach(self, client: ExchangeClient) -> None:
        exchange: Any = client.exchange
        original = exchange.fetch

        async def fetch(*args: Any, **kwargs: Any) -> Any:
            self.mark()
            return await original(*args, **kwargs)

        exchange.fetch = fetch
        rate_limit_ms = getattr(exchange, "rateLimit", None)
        if getattr(exchange, "enableRateLimit", False) and rate_limit_ms:
            self.limit_per_minute = 60_000 / float(rate_limit_ms)

    def mark(self) -> None:
        self.total += 1
        now = self._clock()
        self._times.append(now)
        self._forget_before(now - 60.0)  # bounded: a daemon's clients live for a day and never ask

    def per_minute(self) -> int:
        """Requests sent in the last 60 seconds."""
        self._forget_before(self._clock() - 60.0)
        return len(self._times)

    def _forget_before(self, cutoff: float) -> None:
        while self._times and self._times[0] < cutoff:
            self._times.popleft()


def unreachable(exc: BaseException) -> str | None:
    """One line saying why an exchange could not be reached (name resolution, connection refused, timeout)
    from the causes ccxt chains below its ExchangeNotAvailable / RequestTimeout (ccxt 4.5.90
    `async_support/base/exchange.py` `fetch`: `raise ExchangeNotAvailable(details) from e` for
    `socket.gaierror` and `aiohttp.ClientConnectionError`, RequestTimeout for `asyncio.TimeoutError`);
    None if the chain shows no such cause."""
    exchange = getattr(exc, "exchange", None) or str(exc).partition(":")[0]
    url = _url_in(str(exc))
    host = urlsplit(url).netloc if url else "the exchange"
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "ClientConnectorDNSError":
            return (
                f"{exchange}: cannot reach {host}: the host name could not be resolved (no network or DNS?)"
            )
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return f"{exchange}: cannot reach {host}: connection refused"
        os_error = getattr(e, "os_error", None)  # aiohttp.ClientConnectorError keeps the OSError here
        if isinstance(os_error, BaseException):
            stack.append(os_error)
        if type(e).__name__ == "RequestTimeout" or isinstance(e, TimeoutError):
            return f"{exchange}: cannot reach {host}: no answer in time (timeout)"
        stack.extend([e.__cause__, e.__context__])
    return None


def _url_in(text: str) -> str | None:
    for word in text.split():
        if word.startswith(("http://", "https://")):
            return word
    return None
