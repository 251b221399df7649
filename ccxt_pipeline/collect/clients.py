"""Opening exchange clients: every exchange at once, each awaited on its own, all closed on exit.

`clients` is the seam that builds each client (tests give one whose HTTP layer is a recorded transport).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from ccxt_pipeline.errors import ExchangeError
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.settings import ExchangeSettings, Settings


class Exchanges:
    """Exchanges being opened concurrently. Each client is awaited on its own, so an exchange slow to load
    its markets never holds up the others; `errors` says why an exchange could not be opened."""

    def __init__(
        self, opening: dict[str, asyncio.Task[ExchangeClient | None]], errors: dict[str, str]
    ) -> None:
        self._opening = opening
        self.errors = errors

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
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(name: str) -> ExchangeClient | None:
            client = clients(name, settings.exchanges.get(name) or ExchangeSettings(), policy)
            try:
                return await stack.enter_async_context(client)
            except ExchangeError as exc:
                errors[name] = str(exc)
                return None

        tasks = {n: asyncio.create_task(open_one(n)) for n in names}
        try:
            yield Exchanges(tasks, errors)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
