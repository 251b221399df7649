"""The one place that turns ccxt's exceptions into ours (see the tree in `ccxt_pipeline.errors`).

What is worth retrying becomes a TemporaryError (RateLimited for 418/429 and the exchanges' rate-limit
codes); everything else (bad symbol, bad request, authentication) is permanent. Messages are scrubbed of
credentials and cut to one line.

Temporary, from ccxt's own classification (`ccxt/base/errors.py` `error_hierarchy`, ccxt 4.5.90):
`OperationFailed` and everything below it: `NetworkError` (`ExchangeNotAvailable`, `RequestTimeout`,
`DDoSProtection`, `RateLimitExceeded`, `InvalidNonce`) and `BadResponse`. ccxt maps, among others:
- every exchange, HTTP status (`ccxt/base/exchange.py` `httpExceptions`): 418 -> DDoSProtection,
  429 -> RateLimitExceeded, 500/501/502/503/520-530 -> ExchangeNotAvailable, 408/504 -> RequestTimeout;
- binanceusdm (`ccxt/async_support/binance.py` `handle_errors`, `exceptions['exact']`): 418/429 ->
  DDoSProtection before the body is read; `-1001` ("Internal error; unable to process your request. Please
  try again.") -> OperationFailed, `-1003` -> RateLimitExceeded, `-1007` -> RequestTimeout;
- bybit (`ccxt/async_support/bybit.py` `exceptions['exact']`): `10006`/`10018` -> RateLimitExceeded, HTTP
  403 -> RateLimitExceeded, but `10016` -> plain ExchangeError;
- hyperliquid: no codes of its own; the HTTP status table above applies.

On top of ccxt, two rules (`_check_every_answer` in client.py attaches the HTTP status and the exchange's
error code to each exception):
- any HTTP 5xx answer is temporary, whatever its body says ("HTTP 5XX return codes are used for internal
  errors; the issue is on Binance's side": https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info);
- the codes in `TEMPORARY_CODES`, which the exchanges document as "try again" but ccxt leaves permanent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ccxt

from ccxt_pipeline.errors import ExchangeError, NotSupportedError, RateLimited, TemporaryError
from ccxt_pipeline.logs import mask_secrets

_MAX_MESSAGE = 300

TEMPORARY_CODES: dict[str, frozenset[str]] = {
    # -1000 UNKNOWN, -1001 DISCONNECTED "Internal error; unable to process your request. Please try again.",
    # -1006 UNEXPECTED_RESP, -1007 TIMEOUT, -1008 SERVER_BUSY "Please try again in a few minutes."
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
    "binance": frozenset({"-1000", "-1001", "-1006", "-1007", "-1008"}),
    # 10000 "Server Timeout", 10016 "Server error." (websocket table: "internal server error; Service is
    # restarting"). https://bybit-exchange.github.io/docs/v5/error
    "bybit": frozenset({"10000", "10016"}),
}
"""Exchange error codes that mean "the exchange's own trouble, try again", per exchange (our names)."""

RATE_LIMIT_STATUSES = frozenset({418, 429})
"""418: Binance's IP ban after ignored 429s; 429: over a rate limit. Both come with Retry-After
(https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info, "IP Limits"; Bybit:
"429 System level frequency protection. Please retry when encounter this",
https://bybit-exchange.github.io/docs/v5/error)."""


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """One line, no credentials: configured secret values, signatures and key headers are masked."""
    text = mask_secrets(" ".join(message.split()), secrets)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After header (seconds form) of a response, if any."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def error_code(response: Any) -> str | None:
    """The exchange's own error code in a parsed answer: Binance `code`, Bybit `retCode` (`ret_code` in
    older answers); None for success codes (0, 200) and answers without one."""
    if not isinstance(response, Mapping):
        return None
    for key in ("code", "retCode", "ret_code"):
        value = response.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value) not in ("0", "200"):
            return str(value)
    return None


def translate(
    exc: Exception,
    exchange: str,
    what: str,
    *,
    secrets: Iterable[str] = (),
) -> ExchangeError:
    """Our error for a ccxt (or aiohttp/OS) exception raised while doing `what` on `exchange`."""
    detail = scrub(f"{what}: {type(exc).__name__}: {exc}", secrets)
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "exchange_code", None)
    if isinstance(exc, ccxt.NotSupported):
        return NotSupportedError(exchange, f"{what} is not supported")
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded) or status in RATE_LIMIT_STATUSES:
        return RateLimited(exchange, detail, getattr(exc, "retry_after", None))
    if (
        isinstance(exc, ccxt.OperationFailed | TimeoutError | ConnectionError)
        or (isinstance(status, int) and status >= 500)
        or (code is not None and code in TEMPORARY_CODES.get(exchange, frozenset()))
    ):
        return TemporaryError(exchange, detail)
    if isinstance(exc, ccxt.ExchangeError) and _looks_unparseable(exc):
        return TemporaryError(exchange, detail)
    return ExchangeError(exchange, detail)


def _looks_unparseable(exc: Exception) -> bool:
    # ccxt reports some answers it cannot decode (a cut-off JSON body) as a bare ExchangeError.
    text = str(exc).lower()
    return "json" in text or "unexpected" in text or "decode" in text
