"""Logging set-up: human-readable lines or JSON lines, chosen by settings, with credentials masked.

Every handler made here carries a `SecretFilter`: whatever reaches it (ccxt's own DEBUG request lines
included: `GET <url>, Request: <headers> <body>`, logger `ccxt.base.exchange`) has its credentials
masked before it is written:
- the values of the configured secrets (API key, secret, password, secret-like keys and custom headers of
  an exchange's `ccxt` block), registered with `register_secrets` when an exchange client is built;
- the value of any header or parameter named like a credential, whoever's it is: `X-MBX-APIKEY` (Binance),
  `X-BAPI-API-KEY`, `X-BAPI-SIGN` (Bybit), `OK-ACCESS-KEY`/`-SIGN`/`-PASSPHRASE` (OKX), `Authorization`,
  `apiKey`, `secret`, `signature`, `token`, `password`, `passphrase`, `cookie`, `X-...-Auth`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccxt_pipeline.settings import MASK, LoggingSettings

_MIN_SECRET_LENGTH = 4
"""Shorter values are not masked by value (they would mask ordinary words); names still mask them."""

_NAME = (
    r"(?:[A-Za-z0-9]+[-_])*"
    r"(?:api[-_]?key|apikey|access[-_]?key|private[-_]?key|secret(?:[-_]?key)?|signature|sign|passphrase|"
    r"password|passwd|token|access[-_]?token|authorization|auth|cookie|credentials?)"
    r"(?:[-_][A-Za-z0-9]+)*"
)
_VALUE = r"(?:(?:Bearer|Basic|Token)\s+[^\s'\",;&}\]]+|'[^']*'|\"[^\"]*\"|[^\s'\",;&}\]]+)"
_NAMED = re.compile(
    rf"(?P<head>(?P<q>['\"]?)\b{_NAME}(?P=q)\s*[:=]\s*)(?P<value>{_VALUE})",
    re.IGNORECASE,
)

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these values (and their URL-encoded forms) in every log record from now on."""
    global _secrets
    found = set()
    for value in values:
        if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
            found.add(value)
            found.add(urllib.parse.quote(value, safe=""))
            found.add(urllib.parse.quote_plus(value))
    with _lock:
        _secrets = _secrets | found


def registered_secrets() -> frozenset[str]:
    return _secrets


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    if value[:1] in ("'", '"'):
        return f"{match.group('head')}{value[0]}{MASK}{value[0]}"
    return f"{match.group('head')}{MASK}"


def mask_secrets(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with registered secret values, `extra` values, and values of credential-named fields masked."""
    values = {v for v in extra if v and len(v) >= _MIN_SECRET_LENGTH} | _secrets
    for value in sorted(values, key=len, reverse=True):  # longest first: a value may contain another
        if value in text:
            text = text.replace(value, MASK)
    return _NAMED.sub(_mask_value, text)


class SecretFilter(logging.Filter):
    """Masks credentials in a record's message, exception and stack text (the record is rewritten, so every
    handler after this one sees the masked text too). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as logging always has
            return True
        masked = mask_secrets(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO), level, logger, message, and exception text if any."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            out["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(out, ensure_ascii=False)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the moment of the record (as logging's own last-resort handler
    does), not the stream that was current when logging was configured: a program (or a test runner) that
    swaps stderr never leaves this handler writing to a closed file."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


_OURS = "_ccxt_pipeline_handler"
"""Marks the handlers made here, so configuring again replaces them and leaves anyone else's alone."""


def configure_logging(settings: LoggingSettings, stream: Any = None, log_file: Path | None = None) -> None:
    """Send logs to `stream` (the current stderr by default), or to a rotating `log_file` (10 MB x 5), at the
    configured level and format, through a `SecretFilter`. Replaces the handlers an earlier call made."""
    handler: logging.Handler
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024, backupCount=5)
    elif stream is not None:
        handler = logging.StreamHandler(stream)
    else:
        handler = _CurrentStderr()
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(SecretFilter())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OURS, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(settings.level)
