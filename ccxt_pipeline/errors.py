"""The errors ccxt-pipeline raises.

Every error the library raises on purpose derives from :class:`PipelineError` and carries a message that
is one clear line: what is wrong and where. The CLI prints that line and exits non-zero; it never shows a
traceback for these.

    PipelineError
    ├── ConfigError          settings file, environment or flags are wrong
    ├── InputError           a value given to the library (a time, a duration, a period) is wrong; names it
    ├── UnknownExchangeError an exchange name we do not know or do not support
    ├── SymbolError          a symbol we cannot resolve to an instrument
    ├── RecordError          a record failed validation (names the field and the raw value)
    ├── CatalogError         the catalog cannot be opened, written or read
    └── ExchangeError        a call to an exchange failed (after retries, where retrying made sense)
        ├── TemporaryError   network trouble, 5xx, timeouts, malformed answers: worth retrying
        │   └── RateLimited  429/418; carries the Retry-After the exchange asked for
        └── NotSupportedError the exchange does not offer this data
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error ccxt-pipeline raises on purpose."""


class ConfigError(PipelineError):
    """Settings are wrong: an unknown key, a wrongly typed value, an unreadable file."""


class InputError(PipelineError, ValueError):
    """A value the caller gave is wrong. The message names the value in the library's words ("the start time
    2030-01-01T00:00:00Z is in the future"); `subject` says which value it is (`start`, `end`, `duration`,
    `period`), so a front end can add its own name for it (the CLI prints `--from: ...`)."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject


class UnknownExchangeError(PipelineError):
    """An exchange name that is not known, or not supported."""


class SymbolError(PipelineError):
    """A symbol that cannot be resolved to an instrument."""


class RecordError(PipelineError, ValueError):
    """A record that failed validation."""


class CatalogError(PipelineError):
    """The catalog cannot be opened, written or read."""


class ExchangeError(PipelineError):
    """A call to an exchange failed. `exchange` names it; the message never holds credentials."""

    def __init__(self, exchange: str, message: str) -> None:
        super().__init__(f"{exchange}: {message}")
        self.exchange = exchange


class TemporaryError(ExchangeError):
    """A failure worth retrying: the network, the exchange's servers, a malformed answer."""


class RateLimited(TemporaryError):
    """The exchange asked us to slow down; `retry_after` is its Retry-After in seconds, if it sent one."""

    def __init__(self, exchange: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(exchange, message)
        self.retry_after = retry_after


class NotSupportedError(ExchangeError):
    """The exchange does not offer this data (or ccxt does not implement it)."""
