"""The local exchange simulator: one aiohttp server on 127.0.0.1 speaking Binance USD-M, Bybit v5 and
Hyperliquid wire formats, with knobs for latency, rate limits, outages and injected failures.

Each exchange module registers its own routes (`binance.register(app, sim)`); this module owns what all
exchanges share: the request counters, the knobs, the failure rules, and the ccxt URL overrides.

Rate-limit answers (the `rate_limit` knob; the `http_429` failure kind always answers HTTP 429):
- Binance: HTTP 429, `Retry-After`, body `{"code":-1003,"msg":"Too many requests; ..."}` (what Binance sends);
  ccxt's binance raises `DDoSProtection` for any 418/429 before reading the body.
- Bybit: HTTP 200, body `{"retCode":10006,"retMsg":"Too many visits!",...}` with the `X-Bapi-Limit*` headers and
  `Retry-After` (Bybit's documented per-UID API rate limit answer; its per-IP limit is an HTTP 403 "access too
  frequent" with a 10-minute ban, which is not simulated); ccxt maps 10006 to `RateLimitExceeded`.
- Hyperliquid: HTTP 429 with `Retry-After` and a non-JSON body; ccxt maps the status to `RateLimitExceeded`.

HTTP 5xx failures answer a gateway-style HTML body, never exchange JSON: ccxt then raises
`ExchangeNotAvailable` (a `NetworkError`). The exchanges' own "internal error, try again" answers are the
`server_error` kind (`SERVER_ERRORS`): ccxt raises `OperationFailed` for Binance's `-1001` and a plain
`ExchangeError` for Bybit's `10016`. The `http_418` kind answers HTTP 418 with `Retry-After` (Binance's IP
ban; https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info, "IP Limits":
"A Retry-After header is sent with a 418 or 429 responses").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import ccxt.pro
from aiohttp import web

from ccxt_pipeline.simulator import binance, bybit, data, hyperliquid
from ccxt_pipeline.simulator._http import JSON_CONTENT_TYPE, dumps, text_response
from ccxt_pipeline.simulator.limits import Limiter, Refusal, VenueLimits
from ccxt_pipeline.simulator.liquidations import LiquidationFeed

FailureKind = Literal[
    "http_500",
    "http_502",
    "http_503",
    "http_429",
    "http_418",
    "server_error",
    "timeout",
    "malformed",
    "truncated",
    "short_page",
]
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)

CCXT_CLASSES: dict[str, str] = {"binance": "binanceusdm", "bybit": "bybit", "hyperliquid": "hyperliquid"}
"""Our exchange name -> the ccxt (and ccxt.pro) class the simulator speaks to."""


class _ExchangeModule(Protocol):
    """What server.py needs from an exchange module (binance.py, bybit.py, hyperliquid.py)."""

    NAME: str
    PATH_PREFIXES: tuple[str, ...]
    WS_PREFIX: str

    def register(self, app: web.Application, sim: ExchangeSimulator) -> None: ...

    def rate_limited(self, sim: ExchangeSimulator, *, force_429: bool) -> web.Response: ...

    LIMITS: VenueLimits

    def request_weight(self, endpoint: str, query: Mapping[str, str]) -> int: ...

    def extra_weight(self, endpoint: str, body: bytes) -> int: ...

    def limit_headers(self, limiter: Limiter) -> dict[str, str]: ...

    def refused(self, sim: ExchangeSimulator, refusal: Refusal, limiter: Limiter) -> web.Response: ...


_MODULES: dict[str, _ExchangeModule] = {"binance": binance, "bybit": bybit, "hyperliquid": hyperliquid}
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_URL_HOST = re.compile(r"^(?P<scheme>https?|wss?)://[^/]*")


@dataclass(kw_only=True)
class FailureRule:
    """Make matching requests fail in one way.

    A request matches when `exchange` is None or equal, and `match` is None or a substring of the path (with its
    query string, so `match="startTime=1735689600000"` picks one page) or of the counter endpoint (for
    Hyperliquid `info:<type>`, so `match="fundingHistory"` works). Among matching
    requests, every `every`-th one fails, and only the first `times` of those (None: forever).

    Kinds: `http_500/502/503` (HTML body), `http_429` (the exchange's rate-limit body, `Retry-After: 1` or
    `retry_after_s`), `http_418` (an IP ban, `Retry-After`), `server_error` (the exchange's own "internal
    error, try again" answer, `SERVER_ERRORS`),
    `timeout` (sleep `timeout_s`, then answer normally: the client's timeout fires first), `malformed` (status
    200, a non-JSON HTML body), `truncated` (the real JSON body cut at half its length), `short_page` (valid
    JSON, but only the first half of the rows of the page's list).
    """

    kind: FailureKind
    exchange: str | None = None
    match: str | None = None
    times: int | None = None
    every: int = 1
    timeout_s: float = 30.0
    probability: float | None = None
    """If set, each matching request fails with this probability (seeded by `seed`) instead of `every`."""
    seed: int = 0
    retry_after_s: float | None = None
    """`Retry-After` of `http_429` and `http_418` answers (default 1)."""
    status: int | None = None
    """HTTP status of a `server_error` answer, instead of the exchange's usual one (`SERVER_ERRORS`)."""
    matched: int = field(default=0, init=False)
    """How many requests matched so far."""
    fired: int = field(default=0, init=False)
    """How many requests this rule made fail so far."""

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {self.kind!r}; expected one of {FAILURE_KINDS}")
        if self.every < 1:
            raise ValueError("every must be >= 1")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        self._rng = random.Random(self.seed)

    def matches(self, exchange: str, path: str, endpoint: str) -> bool:
        if self.exchange is not None and self.exchange != exchange:
            return False
        return self.match is None or self.match in path or self.match in endpoint

    def should_fire(self) -> bool:
        """Count one matching request; True if this one must fail."""
        self.matched += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.probability is not None:
            if self._rng.random() >= self.probability:
                return False
        elif self.matched % self.every != 0:
            return False
        self.fired += 1
        return True


def _rewrite_urls(value: Any, base_url: str, ws_url: str, ws_prefix: str) -> Any:
    """Every URL string in `value` (nested) with its scheme and host replaced by the simulator's."""
    if isinstance(value, dict):
        return {k: _rewrite_urls(v, base_url, ws_url, ws_prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite_urls(v, base_url, ws_url, ws_prefix) for v in value]
    if isinstance(value, str):
        m = _URL_HOST.match(value)
        if m is None:
            return value
        path = value[m.end() :]
        if m.group("scheme").startswith("ws"):
            return ws_url + ws_prefix + path
        return base_url + path
    return value


class ExchangeSimulator:
    """Binance USD-M, Bybit and Hyperliquid on one local port; an async context manager.

    `now_ms=None` follows the wall clock; a fixed `now_ms` freezes "now" for the whole run. No data is served
    beyond now. Knobs (`latency_ms`, `rate_limit`, `down`, failure rules) may change at any time.

    Outages: `down = True` aborts every connection without an answer (ccxt: ExchangeNotAvailable; aiohttp
    retries an idempotent GET once on a dropped kept-alive connection, so a GET may be counted twice);
    `await stop()` then `await start()` is a real "connection refused" outage and rebinds the same port.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        seed: int = 0,
        now_ms: int | None = None,
        *,
        port: int = 0,
        enforce_limits: bool = False,
        full_market: bool = False,
        limit_clock: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed
        self.now_ms = now_ms
        self.port = port
        self.enforce_limits = enforce_limits
        """Enforce each venue's documented per-IP limits (the `LIMITS` table of its module) and answer its own
        rejection: Binance 429 + Retry-After then a 418 ban, Bybit 403 and a 10-minute ban, Hyperliquid 429.
        Rejections are counted (`rejections()`); answers carry the venue's usage headers."""
        self.full_market = full_market
        """List the full generated market (200+ perpetuals per exchange with listing dates, `data.FULL_INSTRUMENTS`)
        instead of the core symbols; a generated symbol is unknown to a core-only simulator."""
        self.limit_clock = limit_clock
        """Seconds; the clock of the rate-limit windows and bans (inject one to move time in tests)."""
        self.limit_rejections: collections.Counter[tuple[str, int]] = collections.Counter()
        """(exchange, HTTP status) -> requests refused by `enforce_limits` or the `rate_limit` knob."""
        self._limiters: dict[str, Limiter] = {}
        self.latency_ms: float = 0.0
        self.rate_limit: int | None = None
        """Max requests per second per exchange (sliding one-second window); None: unlimited."""
        self.down = False
        """While True every request (websocket handshakes included) has its connection aborted without an answer."""
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        """(exchange, endpoint) -> requests received, failed ones included; endpoint is the path, or for
        Hyperliquid `info:<type>`; exchange is `unknown` for paths no exchange owns."""
        self.unhandled: list[tuple[str, str, str]] = []
        """(exchange, method, path with query) of requests no route answered (404/405)."""
        self.failure_rules: list[FailureRule] = []
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.liquidations = LiquidationFeed(self)
        """Liquidation events over the Binance and Bybit websockets, their ground truth and websocket knobs."""
        self.app = web.Application(middlewares=[self._make_middleware()])
        for module in _MODULES.values():
            module.register(self.app, self)

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        self.liquidations.start()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()  # wakes handlers sleeping on latency or timeout failures
        await self.liquidations.stop()  # websockets get a 1001 close frame before the server goes
        await runner.cleanup()
        # A transport closed during the cleanup closes its socket in a callback of the next loop turn
        # (asyncio's `_call_connection_lost`); a loop stopped right after would leave the socket open
        # (ResourceWarning "unclosed transport" when it is collected, in whatever test runs then).
        for _ in range(3):
            await asyncio.sleep(0)

    async def __aenter__(self) -> ExchangeSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def bound_addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every listening socket; only 127.0.0.1 by design."""
        if self._runner is None:
            return []
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses if isinstance(a, tuple)]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def now(self) -> int:
        """The simulator's now in ms: the fixed `now_ms`, or the wall clock."""
        return self.now_ms if self.now_ms is not None else int(time.time() * 1000)

    # --- knobs and counters ------------------------------------------------------------------------------

    def add_failure(self, rule: FailureRule) -> FailureRule:
        self.failure_rules.append(rule)
        return rule

    def clear_failures(self) -> None:
        self.failure_rules.clear()

    def reset_counters(self) -> None:
        self.requests.clear()
        self.unhandled.clear()
        self.limit_rejections.clear()

    def reset_limits(self) -> None:
        """Forget every rate-limit window and ban (the counters stay)."""
        self._limiters.clear()

    def rejections(self, exchange: str | None = None, status: int | None = None) -> int:
        """Requests the rate limits refused, for one exchange and/or HTTP status (None: all)."""
        return sum(
            n
            for (ex, st), n in self.limit_rejections.items()
            if (exchange is None or ex == exchange) and (status is None or st == status)
        )

    def limiter(self, exchange: str) -> Limiter:
        """The rate-limit windows of `exchange` (created on first use, on `limit_clock`)."""
        limiter = self._limiters.get(exchange)
        if limiter is None:
            limiter = self._limiters[exchange] = Limiter(_MODULES[exchange].LIMITS, self.limit_clock)
        return limiter

    def used_weight(self, exchange: str, rule: str | None = None) -> int:
        """What `exchange`'s window `rule` (default: its first rule, e.g. Binance REQUEST_WEIGHT) holds now."""
        limiter = self.limiter(exchange)
        return limiter.used(rule or limiter.limits.rules[0].name)

    # --- listed instruments ------------------------------------------------------------------------------

    def instruments(self, exchange: str) -> tuple[data.Instrument, ...]:
        """The perpetuals `exchange` lists: the core symbols, or the full market with `full_market`."""
        return data.listed(exchange, full=self.full_market)

    def find_instrument(self, exchange: str, symbol: str) -> data.Instrument | None:
        """The listed instrument with this exchange id, or None."""
        return data.find_instrument(exchange, symbol, full=self.full_market)

    def banned_response(self, exchange: str, retry_after_s: float) -> web.Response:
        """The exchange's HTTP 418 IP-ban answer with `Retry-After`."""
        return _banned(self, exchange, retry_after_s)

    def count(self, exchange: str, endpoint_substring: str = "") -> int:
        """Requests received by `exchange` whose endpoint contains `endpoint_substring`."""
        return sum(n for (ex, ep), n in self.requests.items() if ex == exchange and endpoint_substring in ep)

    # --- ccxt configuration ------------------------------------------------------------------------------

    def ccxt_overrides(self, exchange: str) -> dict[str, Any]:
        """Constructor config that points the real ccxt class of `exchange` at this server only.

        Every string of the class's `urls['api']` (nested, REST and websocket) gets this server's scheme and
        host, keeping its path, so an endpoint the simulator lacks fails locally (404) instead of reaching the
        internet. Bybit's `https://api.{hostname}` templates lose their host part entirely. Hyperliquid's
        websocket (`/ws`, the same path as Binance's) is moved under `/hyperliquid/ws`.
        """
        if exchange not in CCXT_CLASSES:
            raise ValueError(f"unknown exchange {exchange!r}; expected one of {list(CCXT_CLASSES)}")
        client = getattr(ccxt.pro, CCXT_CLASSES[exchange])()
        api = _rewrite_urls(client.urls["api"], self.base_url, self.ws_url, _MODULES[exchange].WS_PREFIX)
        return {"enableRateLimit": False, "urls": {"api": api}}

    # --- request pipeline --------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the simulator stops."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _classify_path(self, path: str) -> str:
        for name, module in _MODULES.items():
            if any(path == p.rstrip("/") or path.startswith(p) for p in module.PATH_PREFIXES):
                return name
        return "unknown"

    async def _classify(self, request: web.Request) -> tuple[str, str]:
        exchange = self._classify_path(request.path)
        endpoint = request.path
        if exchange == "hyperliquid" and request.path == "/info" and request.method == "POST":
            try:
                body = json.loads(await request.read())
                kind = body.get("type") if isinstance(body, dict) else None
            except ValueError:
                kind = None
            endpoint = f"info:{kind if isinstance(kind, str) else '?'}"
        return exchange, endpoint

    def _over_rate_limit(self, exchange: str) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        hits = self._hits[exchange]
        while hits and hits[0] <= now - 1.0:
            hits.popleft()
        if len(hits) >= self.rate_limit:
            return True
        hits.append(now)
        return False

    def _rate_limited(self, exchange: str, *, force_429: bool) -> web.Response:
        module = _MODULES.get(exchange)
        if module is None:
            return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "1"})
        return module.rate_limited(self, force_429=force_429)

    def _pick_failure(self, exchange: str, path: str, endpoint: str) -> FailureRule | None:
        """The first rule (in the order added) that matches and fires; later rules do not see the request."""
        for rule in list(self.failure_rules):
            if rule.matches(exchange, path, endpoint) and rule.should_fire():
                return rule
        return None

    def _make_middleware(self) -> Any:
        @web.middleware
        async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
            exchange, endpoint = await self._classify(request)
            self.requests[(exchange, endpoint)] += 1
            if self.down:
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await handler(request)
            await self._sleep(self.latency_ms / 1000.0)
            module = _MODULES.get(exchange)
            limiter = self.limiter(exchange) if self.enforce_limits and module is not None else None
            if limiter is not None and module is not None:
                refusal = limiter.admit(endpoint, module.request_weight(endpoint, request.query))
                if refusal is not None:
                    self.limit_rejections[(exchange, refusal.status)] += 1
                    return module.refused(self, refusal, limiter)
            if self._over_rate_limit(exchange):
                answer = self._rate_limited(exchange, force_429=False)
                self.limit_rejections[(exchange, answer.status)] += 1
                return answer
            rule = self._pick_failure(exchange, request.path_qs, endpoint)
            if rule is not None:
                early = await self._fail_before(rule, exchange)
                if early is not None:
                    return early
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status in (404, 405):
                    self.unhandled.append((exchange, request.method, request.path_qs))
                raise
            if rule is not None and isinstance(response, web.Response):
                response = _fail_after(rule, response)
            if limiter is not None and module is not None:
                if isinstance(response, web.Response) and isinstance(response.body, bytes):
                    limiter.charge(endpoint, module.extra_weight(endpoint, response.body))
                response.headers.update(module.limit_headers(limiter))
            return response

        return middleware

    async def _fail_before(self, rule: FailureRule, exchange: str) -> web.Response | None:
        if rule.kind == "http_429":
            response = self._rate_limited(exchange, force_429=True)
            if rule.retry_after_s is not None:
                response.headers["Retry-After"] = _seconds(rule.retry_after_s)
            return response
        if rule.kind == "http_418":
            return _banned(self, exchange, 1.0 if rule.retry_after_s is None else rule.retry_after_s)
        if rule.kind == "server_error":
            status, body = SERVER_ERRORS.get(exchange, _GENERIC_SERVER_ERROR)(self)
            return web.Response(
                text=body,
                status=rule.status or status,
                content_type=JSON_CONTENT_TYPE if body else "text/plain",
            )
        if rule.kind in ("http_500", "http_502", "http_503"):
            status = int(rule.kind[-3:])
            reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
            html = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
            return text_response(html, status, "text/html")
        if rule.kind == "timeout":
            await self._sleep(rule.timeout_s)
        return None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _banned(sim: ExchangeSimulator, exchange: str, retry_after_s: float) -> web.Response:
    """HTTP 418 with `Retry-After`. Binance's body is its `-1003` "IP banned until" message
    (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code, -1003 TOO_MANY_REQUESTS);
    Bybit and Hyperliquid document no 418, so theirs is the bare status (what a proxy in front may send)."""
    headers = {"Retry-After": _seconds(retry_after_s)}
    if exchange != "binance":
        return web.Response(status=418, text="", headers=headers)
    until = sim.now() + int(retry_after_s * 1000)
    body = {
        "code": -1003,
        "msg": f"Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for "
        "live updates to avoid bans.",
    }
    return web.Response(text=dumps(body), status=418, content_type=JSON_CONTENT_TYPE, headers=headers)


def _binance_server_error(sim: ExchangeSimulator) -> tuple[int, str]:
    """HTTP 500, `-1001 DISCONNECTED` "Internal error; unable to process your request. Please try again."
    https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code"""
    del sim
    return 500, dumps(
        {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
    )


def _bybit_server_error(sim: ExchangeSimulator) -> tuple[int, str]:
    """`retCode` 10016 "Server error." in Bybit's v5 envelope (https://bybit-exchange.github.io/docs/v5/error,
    UTA table; its websocket table: "1. internal server error; 2. Service is restarting"). Bybit sends
    `retCode` errors with HTTP 200 (its HTTP status table lists only 400/401/403/404/429); set the rule's
    `status` for a gateway that answers 503 with the same body."""
    return 200, dumps(
        {"retCode": 10016, "retMsg": "Server error.", "result": {}, "retExtInfo": {}, "time": sim.now()}
    )


def _generic_server_error(sim: ExchangeSimulator) -> tuple[int, str]:
    """Hyperliquid documents no error body: a bare HTTP 500."""
    del sim
    return 500, ""


_GENERIC_SERVER_ERROR = _generic_server_error
SERVER_ERRORS: dict[str, Callable[[ExchangeSimulator], tuple[int, str]]] = {
    "binance": _binance_server_error,
    "bybit": _bybit_server_error,
    "hyperliquid": _generic_server_error,
}
"""The `server_error` kind per exchange: (HTTP status, body) of its documented "internal error, try again"."""


def _fail_after(rule: FailureRule, response: web.Response) -> web.Response:
    body = response.body if isinstance(response.body, bytes) else b""
    if rule.kind == "malformed":
        return text_response(
            "<html><body>upstream connect error or disconnect/reset</body></html>", 200, "text/html"
        )
    if rule.kind == "truncated":
        cut = body[: len(body) // 2]
        return web.Response(body=cut, status=response.status, content_type=response.content_type)
    if rule.kind == "short_page":
        try:
            data = json.loads(body)
        except ValueError:
            return response
        return web.Response(
            text=dumps(_halve_rows(data)), status=response.status, content_type=JSON_CONTENT_TYPE
        )
    return response


def _halve_rows(data: Any) -> Any:
    """The page with only the first half of its rows: a top-level list, or Bybit's `result.list`."""
    if isinstance(data, list):
        return data[: len(data) // 2]
    if isinstance(data, dict):
        result = data.get("result")
        if isinstance(result, dict) and isinstance(result.get("list"), list):
            rows = result["list"]
            return {**data, "result": {**result, "list": rows[: len(rows) // 2]}}
    return data
