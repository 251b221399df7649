"""A recorded transport below ccxt: the real ccxt exchange, its HTTP layer answering from recorded bodies.

ccxt sends every REST request through one method, `exchange.fetch(url, method, headers, body)`
(ccxt/async_support/base/exchange.py; ccxt/base/exchange.py for the sync classes). `RecordedTransport`
replaces that method, the way httpx's `MockTransport` replaces a client's transport: a handler sees each
request (URL, query, JSON body) and answers with a raw body, a status and headers, and the rest of ccxt's
`fetch` runs as it does on a real answer: the body is parsed (`parse_json`), `handle_errors` (ccxt's exchange
error codes, and ours from `exchanges/client.py`) and `handle_http_status_code` see it. A timeout or a
dropped connection raises what ccxt's `fetch` raises for them. Everything above (ccxt's request building and
parsing, our client, retries, paging, storing) is the production code.

    transport = RecordedTransport(handler)
    report = await run_fetch(settings, request, clients=client_factory(transport), clock=...)

`client_factory(transport)` builds real `ExchangeClient`s (a `ClientFactory`) with the transport installed
and ccxt's own request throttle off (`enableRateLimit: False`, as docs/exchanges.md says for tests) as well
as its wait on close (`timeout_on_exit: 0`), so nothing opens a socket and nothing sleeps. `VirtualClock` replaces the retry layer's clock
(`exchanges.retry.CLOCK`) so retry waits cost nothing.
"""

from __future__ import annotations

import asyncio
import http
import inspect
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt

from ccxt_pipeline.exchanges.client import ClientFactory, ExchangeClient
from ccxt_pipeline.exchanges.retry import RetryPolicy
from ccxt_pipeline.settings import ExchangeSettings

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(path: str) -> str:
    """A recorded body under tests/fixtures/, as raw text (sources in tests/fixtures/SOURCES.md)."""
    return (FIXTURES / path).read_text()


@dataclass(frozen=True)
class Request:
    """One HTTP request ccxt made."""

    method: str
    url: str
    headers: Mapping[str, Any]
    body: str | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.url).query))

    @property
    def json(self) -> Any:
        """The decoded JSON body (Hyperliquid's POST /info), or None."""
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Response:
    """One raw HTTP answer."""

    body: str = ""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """`value` encoded as the JSON body."""
        return cls(json.dumps(value), status, dict(headers or {}))

    @property
    def reason(self) -> str:
        try:
            return http.HTTPStatus(self.status).phrase
        except ValueError:
            return ""


class Timeout:
    """An answer that never came: ccxt's `fetch` raises RequestTimeout (asyncio.TimeoutError in aiohttp)."""


class Disconnect:
    """A connection dropped: ccxt's `fetch` raises ExchangeNotAvailable (aiohttp.ClientConnectionError)."""


TIMEOUT = Timeout()
DISCONNECT = Disconnect()

Answer = Response | Timeout | Disconnect | str | Any
"""A `Response`; a `str` is a raw 200 body; anything else is encoded as a 200 JSON body."""
Handler = Callable[[Request], Answer]


class NotRecorded(AssertionError):
    """A request the test has no answer for."""


class RecordedTransport:
    """Answers ccxt's HTTP requests with `handler`; keeps every request in `requests`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.unanswered: list[Request] = []
        self.exchanges: list[Any] = []
        """Every ccxt exchange the transport was installed on, in order."""
        self._lock = threading.Lock()

    def install(self, exchange: Any) -> Any:
        """Replace `exchange.fetch` (async or sync ccxt class) with this transport; returns `exchange`."""
        self.exchanges.append(exchange)
        if inspect.iscoroutinefunction(exchange.fetch):

            async def fetch_async(
                url: str, method: str = "GET", headers: Any = None, body: Any = None
            ) -> Any:
                await asyncio.sleep(0)  # a real request always yields to the event loop
                return self._answer(exchange, url, method, headers, body)

            exchange.fetch = fetch_async
        else:

            def fetch_sync(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
                return self._answer(exchange, url, method, headers, body)

            exchange.fetch = fetch_sync
        return exchange

    def calls(self, path: str) -> list[Request]:
        """The requests made to `path` (or, for Hyperliquid's POST /info, with JSON `type` == `path`)."""
        return [r for r in self.requests if r.path == path or (r.json or {}).get("type") == path]

    def _answer(self, exchange: Any, url: str, method: str, headers: Any, body: Any) -> Any:
        """The tail of ccxt's `Exchange.fetch` on the handler's answer."""
        request_headers = exchange.prepare_request_headers(headers)
        request = Request(method, url, dict(request_headers), body)
        with self._lock:
            self.requests.append(request)
        try:
            answer = self.handler(request)
        except NotRecorded:
            with self._lock:
                self.unanswered.append(request)
            raise
        details = " ".join([exchange.id, method, url])
        if isinstance(answer, Timeout):
            raise ccxt.RequestTimeout(details)
        if isinstance(answer, Disconnect):
            raise ccxt.ExchangeNotAvailable(details)
        if isinstance(answer, str):
            answer = Response(answer)
        elif not isinstance(answer, Response):
            answer = Response.of(answer)
        response_headers = dict(answer.headers)
        text = exchange.on_rest_response(
            answer.status, answer.reason, url, method, response_headers, answer.body, request_headers, body
        )
        json_response = exchange.parse_json(text)
        exchange.last_http_response = text
        exchange.last_response_headers = response_headers
        exchange.last_json_response = json_response
        exchange.handle_errors(
            answer.status,
            answer.reason,
            url,
            method,
            response_headers,
            text,
            json_response,
            request_headers,
            body,
        )
        exchange.handle_http_status_code(answer.status, answer.reason, url, method, text)
        return json_response if json_response is not None else text


def client_factory(transport: RecordedTransport) -> ClientFactory:
    """A `ClientFactory` of real `ExchangeClient`s whose ccxt HTTP layer is `transport`."""

    def make(
        name: str,
        settings: ExchangeSettings | None = None,
        policy: RetryPolicy | None = None,
        *,
        subclass: Callable[[type[Any]], type[Any]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ExchangeClient:
        # No throttle between requests, and no 250 ms wait for (never opened) HTTP sessions on close.
        config = {**(config or {}), "enableRateLimit": False, "timeout_on_exit": 0}
        client = ExchangeClient(name, settings, policy, subclass=subclass, config=config)
        transport.install(client.exchange)
        return client

    return make


class VirtualClock:
    """The retry layer's clock (`exchanges.retry.CLOCK`): monotonic time plus every second "slept";
    sleeping only yields to the event loop."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return time.monotonic() + self.offset

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        await asyncio.sleep(0)
