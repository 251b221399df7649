"""What a fetch reports: per exchange, what was found, fetched, stored and missed; and progress hooks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from ccxt_pipeline.catalog import WriteResult
from ccxt_pipeline.collect.history import History
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, Record


@dataclass
class ExchangeReport:
    exchange: str
    instruments: list[Instrument] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    """Current values."""
    tables: list[pa.Table] = field(default_factory=list)
    """History rows, one Arrow table per instrument."""
    written: int = 0
    already_stored: int = 0
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def count(self, result: WriteResult) -> None:
        """Add one write's rows to the totals."""
        self.written += result.rows_written
        self.already_stored += result.rows_duplicate


@dataclass
class FetchReport:
    exchanges: list[ExchangeReport]

    @property
    def failed(self) -> list[ExchangeReport]:
        return [r for r in self.exchanges if r.error is not None]


class Progress:
    """Hooks for progress display; the default does nothing."""

    def plan(self, exchange: str, windows: int) -> None:
        """`exchange` will fetch `windows` more windows."""

    def advance(self, exchange: str, rows: int) -> None:
        """One window of `exchange` is done, with `rows` rows."""


@dataclass
class ExchangeHooks:
    """`Progress` bound to one exchange, as a history fetch calls it (`collect.history.Hooks`)."""

    progress: Progress
    exchange: str

    def plan(self, windows: int) -> None:
        self.progress.plan(self.exchange, windows)

    def advance(self, rows: int) -> None:
        self.progress.advance(self.exchange, rows)


def failed_pages(exchange: str, failed: list[tuple[Instrument, History]]) -> str:
    """One line for every page that failed for good: the rest is stored, and a rerun fetches what is missing."""
    pages = sum(len(h.failed) for _, h in failed)
    windows = sum(h.windows for _, h in failed)
    ids = ", ".join(inst.instrument_id for inst, _ in failed)
    last = next((h.error for _, h in reversed(failed) if h.error is not None), None)
    why = " ".join(str(last).split()) if last is not None else "unknown error"
    return (
        f"{exchange}: {pages} of {windows} history pages failed ({ids}); the rest is stored and a rerun "
        f"fetches what is missing. Last error: {why}"
    )
