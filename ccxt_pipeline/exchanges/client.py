"""One exchange, through ccxt's async (`ccxt.pro`) classes: built from settings, retried, translated, closed.

    async with ExchangeClient("binance", settings.exchanges["binance"]) as client:
        oi = await client.call("fetch_open_interest", "BTC/USDT:USDT")

The ccxt constructor config is the venue table's options deep-merged with the user's `ccxt` block (urls,
proxies, timeouts), plus keys from settings; `sandbox` switches ccxt to the exchange's testnet. Markets are
loaded on entry and the client is always closed on exit.

Credentials: every secret a client is given (keys, secret-like entries and custom headers of the `ccxt`
block) is registered with `logs.register_secrets` before ccxt can log a request, and ccxt's `verbose`
printing goes through logging instead of `print`, so the log handlers' filter masks both.

Rate limits: every REST request is paced by the exchange's documented limits, shared with every other client
of that exchange in the process (`exchanges/pacing.py`); a Retry-After from the exchange holds back every
request of the exchange until it has passed (Binance bans an IP that keeps sending after a 429), and a long
wait is announced in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

import ccxt
import ccxt.pro

from ccxt_pipeline.errors import ExchangeError, NotSupportedError, RateLimited, TemporaryError
from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.exchanges.errors import error_code, retry_after_seconds, translate
from ccxt_pipeline.exchanges.pacing import install as install_pacer
from ccxt_pipeline.exchanges.pacing import pacer_for
from ccxt_pipeline.exchanges.retry import RetryPolicy, with_retries
from ccxt_pipeline.logs import register_secrets
from ccxt_pipeline.settings import ExchangeSettings, deep_merge, is_secret_key
from ccxt_pipeline.venues import Venue, get_venue

log = logging.getLogger(__name__)
_ccxt_verbose = logging.getLogger("ccxt.verbose")

# Capabilities ccxt declares that we know to be absent or unusable, per venue (`exchange.has` keys).
_HAS_OVERRIDES: dict[str, dict[str, bool]] = {
    # ccxt's Hyperliquid has no open-interest history: it raises NotSupported.
    "hyperliquid": {"fetchOpenInterestHistory": False},
}


def _check_every_answer(exchange: Any) -> None:
    """Make ccxt refuse answers it would otherwise swallow, and keep each failed answer's facts.

    ccxt parses a 200 answer whose body is not JSON (cut off, garbled) into `[]` or all-None fields with no
    error (seen against the simulator for all three exchanges), which would read as "no data" and leave a
    silent hole. Every endpoint we call answers JSON, so such an answer is a BadResponse, retried like any
    temporary failure. ccxt keeps only the *last* response's headers on the instance, which concurrent
    requests overwrite; the Retry-After, HTTP status and exchange error code (`code`, `retCode`) of the
    answer that raised are attached to its exception instead, for `errors.translate`.
    """
    original = exchange.handle_errors

    def handle_errors(
        code: int, reason: str, url: str, method: str, headers: Any, body: Any, response: Any, *rest: Any
    ) -> Any:
        try:
            result = original(code, reason, url, method, headers, body, response, *rest)
            # ccxt raises for the HTTP status (`httpExceptions`: 418, 429, 5xx, ...) only after this hook
            # returns, out of reach of the headers; raise that same error here instead, facts attached.
            exchange.handle_http_status_code(code, reason, url, method, body or "")
        except ccxt.BaseError as exc:
            exc.retry_after = retry_after_seconds(headers)
            exc.http_status = int(code)
            exc.exchange_code = error_code(response)
            raise
        if response is None and 200 <= int(code) < 300:
            raise ccxt.BadResponse(
                f"{exchange.id} {method} {url.split('?')[0]}: answer is not JSON ({len(body or '')} bytes)"
            )
        return result

    exchange.handle_errors = handle_errors


def _secret_values(settings: ExchangeSettings) -> list[str]:
    """Every credential-like value a client of `settings` holds: keys, and in the `ccxt` block the values of
    secret-like keys (at any depth) and of every custom header."""
    values = [s.get_secret_value() for s in (settings.api_key, settings.secret, settings.password) if s]

    def walk(node: Any, secret: bool) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                walk(item, secret or is_secret_key(key) or str(key).lower() == "headers")
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, secret)
        elif secret and isinstance(node, str):
            values.append(node)

    walk(settings.ccxt, False)
    return values


class ExchangeClient:
    """A ccxt exchange with retries, error translation and capability checks."""

    def __init__(
        self,
        name: str,
        settings: ExchangeSettings | None = None,
        policy: RetryPolicy | None = None,
        *,
        subclass: Callable[[type[Any]], type[Any]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """`subclass` may wrap the ccxt class (the liquidation tap does); `config` is merged into the
        constructor config under the user's own `ccxt` block."""
        self.venue: Venue = get_venue(name)
        self.name = self.venue.name
        self.settings = settings or ExchangeSettings()
        self.policy = policy or RetryPolicy()
        self._secrets = _secret_values(self.settings)
        register_secrets(self._secrets)
        cls = getattr(ccxt.pro, self.venue.ccxt_id)
        if subclass is not None:
            cls = subclass(cls)
        base = deep_merge(self.venue.ccxt_options, config or {})
        self.exchange: Any = cls(self.settings.ccxt_config(base))
        _check_every_answer(self.exchange)
        # ccxt's `verbose` output (request and response dumps, headers included) is print()ed; send it
        # through logging so that the handlers' secret filter sees it.
        self.exchange.log = lambda *parts: _ccxt_verbose.info(" ".join(str(p) for p in parts))
        # Every REST request paced by the exchange's documented limits, with every other client of it.
        install_pacer(
            self.exchange,
            self.venue,
            weigh=self.settings.pace_requests,
            state_dir=self.settings.pacing_state_dir,
        )
        if self.settings.sandbox:
            try:
                self.exchange.set_sandbox_mode(True)
            except Exception as exc:  # ccxt raises NotSupported when there is no testnet
                raise translate(exc, self.name, "sandbox mode", secrets=self._secrets) from None

    async def __aenter__(self) -> ExchangeClient:
        try:
            await self.call("load_markets")
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self.exchange.close()
        except Exception as exc:  # closing must never mask the real outcome
            log.debug("%s: error while closing: %s", self.name, type(exc).__name__)

    # --- capabilities -----------------------------------------------------------------------------------

    def supports(self, capability: str) -> bool:
        """True if the exchange offers `capability` (a ccxt `has` key such as `fetchOpenInterestHistory`)."""
        override = _HAS_OVERRIDES.get(self.name, {}).get(capability)
        if override is not None:
            return override
        return bool(self.exchange.has.get(capability))

    def require(self, capability: str, what: str) -> None:
        if not self.supports(capability):
            raise NotSupportedError(self.name, f"{what} is not offered")

    @property
    def markets(self) -> Mapping[str, Any]:
        return self.exchange.markets or {}

    def market(self, symbol: str) -> Mapping[str, Any]:
        try:
            return self.exchange.market(symbol)  # type: ignore[no-any-return]
        except Exception as exc:
            raise ExchangeError(self.name, f"no market {symbol}") from exc

    # --- calls ------------------------------------------------------------------------------------------

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """`exchange.<method>(*args, **kwargs)`, retried while the failure is temporary, errors translated."""
        fn = getattr(self.exchange, method)

        async def once() -> Any:
            try:
                return await fn(*args, **kwargs)  # each HTTP request paced (pacing.install)
            except ExchangeError:
                raise
            except Exception as exc:
                error = translate(exc, self.name, method, secrets=self._secrets)
                if isinstance(error, RateLimited) and error.retry_after:
                    # Every request of this exchange in the process waits, not only this one.
                    pacer_for(self.venue).pause(min(error.retry_after, self.policy.max_retry_after_s))
                raise error from None

        return await with_retries(self.policy, once, announce=self._announce_wait)

    def _announce_wait(self, seconds: float, error: TemporaryError) -> None:
        """One line for a long wait; calls waiting at the same time (one Retry-After) share it."""
        now = retry.CLOCK.now()
        pacer = pacer_for(self.venue)
        if now < pacer.announced_until:
            return
        pacer.announced_until = now + seconds
        if isinstance(error, RateLimited):
            why = "rate limited by the exchange"
            if error.retry_after is not None and seconds <= error.retry_after + 1:
                why += f", which asks to wait {error.retry_after:.0f}s (Retry-After)"
        else:
            why = "temporary failure"
        last = str(error).removeprefix(f"{self.name}: ")
        log.warning("%s: waiting %.0fs before trying again: %s; %s", self.name, seconds, why, last)


class ClientFactory(Protocol):
    """What builds the client of one exchange: `ExchangeClient` itself, or in tests one whose ccxt HTTP layer
    answers from recorded bodies. Collection (`collect.run.open_exchanges`) and streams
    (`stream.source.run_source`) take their clients from one."""

    def __call__(
        self,
        name: str,
        settings: ExchangeSettings | None = None,
        policy: RetryPolicy | None = None,
        *,
        subclass: Callable[[type[Any]], type[Any]] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ExchangeClient: ...
