"""The errors ccxt-pipeline raises.

Every error the library raises on purpose derives from :class:`PipelineError` and carries a message that
is one clear line: what is wrong and where. The CLI prints that line and exits non-zero; it never shows a
traceback for these.

    PipelineError
    ├── ConfigError          settings file, environment or flags are wrong
    ├── UnknownExchangeError an exchange name we do not know or do not support
    ├── SymbolError          a symbol we cannot resolve to an instrument
    ├── RecordError          a record failed validation (names the field and the raw value)
    └── CatalogError         the catalog cannot be opened, written or read
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error ccxt-pipeline raises on purpose."""


class ConfigError(PipelineError):
    """Settings are wrong: an unknown key, a wrongly typed value, an unreadable file."""


class UnknownExchangeError(PipelineError):
    """An exchange name that is not known, or not supported."""


class SymbolError(PipelineError):
    """A symbol that cannot be resolved to an instrument."""


class RecordError(PipelineError, ValueError):
    """A record that failed validation."""


class CatalogError(PipelineError):
    """The catalog cannot be opened, written or read."""
