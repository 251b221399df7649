"""Exchange clients the daemon's jobs share, replaced on a period so long-lived sockets stay healthy.

A generation of clients is in use by any number of jobs; `recycle()` opens a new one for the jobs that
start afterwards and closes the old one when its last job finishes. An exchange that could not be opened
(down at start) is retried by `heal()` at most once a minute.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ccxt_pipeline.collect.run import Exchanges, open_exchanges
from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.settings import Settings

_HEAL_EVERY_S = 60.0


@dataclass
class _Generation:
    exchanges: Exchanges
    stack: contextlib.AsyncExitStack
    opened: float = field(default_factory=time.monotonic)
    users: int = 0
    retired: bool = False


class ClientPool:
    def __init__(
        self, settings: Settings, names: Sequence[str], *, clients: ClientFactory = ExchangeClient
    ) -> None:
        self.settings = settings
        self.names = list(names)
        self.clients = clients
        self._current: _Generation | None = None
        self.recycled = 0

    async def _open(self) -> _Generation:
        stack = contextlib.AsyncExitStack()
        exchanges = await stack.enter_async_context(
            open_exchanges(self.settings, self.names, clients=self.clients)
        )
        return _Generation(exchanges, stack)

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Exchanges]:
        if self._current is None:
            self._current = await self._open()
        gen = self._current
        gen.users += 1
        try:
            yield gen.exchanges
        finally:
            gen.users -= 1
            if gen.retired and gen.users == 0:
                await gen.stack.aclose()

    async def recycle(self) -> None:
        old, self._current = self._current, await self._open()
        self.recycled += 1
        if old is not None:
            old.retired = True
            if old.users == 0:
                await old.stack.aclose()

    async def heal(self) -> None:
        """Reopen everything if an exchange failed to open, at most once a minute."""
        gen = self._current
        if gen is not None and gen.exchanges.errors and time.monotonic() - gen.opened > _HEAL_EVERY_S:
            await self.recycle()

    async def close(self) -> None:
        if self._current is not None:
            self._current.retired = True
            if self._current.users == 0:
                await self._current.stack.aclose()
            self._current = None
