"""The one place that turns ccxt's exceptions into ours (see the tree in `ccxt_pipeline.errors`).

Only what is worth retrying becomes a TemporaryError: network failures, timeouts, 5xx and maintenance,
rate limits, and answers ccxt could not parse. Everything else (bad symbol, bad request, authentication)
is permanent. Messages are scrubbed of credentials and cut to one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import ccxt

from ccxt_pipeline.errors import ExchangeError, NotSupportedError, RateLimited, TemporaryError

_MAX_MESSAGE = 300
_SIGNATURE = re.compile(r"(signature|apiKey|api_key|sign)=[^&\s\"']+", re.IGNORECASE)


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """One line, no credentials: configured secret values and URL signatures are masked."""
    text = " ".join(message.split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "**********")
    text = _SIGNATURE.sub(lambda m: f"{m.group(1)}=**********", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float | None:
    """The Retry-After header (seconds form) of the last response, if any."""
    if not headers:
        return None
    for key, value in headers.items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
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
    if isinstance(exc, ccxt.NotSupported):
        return NotSupportedError(exchange, f"{what} is not supported")
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return RateLimited(exchange, detail, getattr(exc, "retry_after", None))
    if isinstance(exc, ccxt.NetworkError | ccxt.BadResponse | TimeoutError | ConnectionError):
        return TemporaryError(exchange, detail)
    if isinstance(exc, ccxt.ExchangeError) and _looks_unparseable(exc):
        return TemporaryError(exchange, detail)
    return ExchangeError(exchange, detail)


def _looks_unparseable(exc: Exception) -> bool:
    # ccxt reports some answers it cannot decode (a cut-off JSON body) as a bare ExchangeError.
    text = str(exc).lower()
    return "json" in text or "unexpected" in text or "decode" in text
