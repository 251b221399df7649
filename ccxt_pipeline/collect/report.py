"""What a fetch reports: per exchange, what was found, fetched, stored and missed; and progress hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccxt_pipeline.instruments import Instrument

if TYPE_CHECKING:  # types only: the CLI subclasses `Progress` without loading ccxt or pyarrow
    import pyarrow as pa

    from ccxt_pipeline.catalog import WriteResult
    from ccxt_pipeline.collect.clients import RequestMeter
    from ccxt_pipeline.collect.history import History
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
    """Current values: rows the catalog held already. History: rows the catalog held in the range before the
    fetch (what was not asked for again)."""
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    outcomes: list[InstrumentOutcome] = field(default_factory=list)
    """History: one per instrument, in the order they finish."""

    def count(self, result: WriteResult) -> None:
        """Add one write's rows to the totals."""
        self.written += result.rows_written
        self.already_stored += result.rows_duplicate


@dataclass
class InstrumentOutcome:
    """What a history fetch did for one instrument."""

    instrument_id: str
    already_stored: int = 0
    """Rows the catalog held in the range before the fetch."""
    written: int = 0
    windows: int = 0
    """Pages planned: 0 means nothing was missing (up to date)."""
    failed: int = 0
    """Pages that failed for good."""
    listed_ns: int | None = None
    """When the exchange listed it (ccxt `market['created']`), if it says."""
    skipped: str | None = None
    """Why nothing was asked for although rows are missing (listed after the range)."""

    @property
    def up_to_date(self) -> bool:
        return self.windows == 0 and self.skipped is None


@dataclass
class FetchReport:
    exchanges: list[ExchangeReport]

    @property
    def failed(self) -> list[ExchangeReport]:
        return [r for r in self.exchanges if r.error is not None]


class Progress:
    """Hooks for progress display; the default does nothing. Work is counted in instruments: each one is
    one unit, advanced a share per page as its pages are done."""

    def start(self, exchange: str, instruments: int, meter: RequestMeter | None) -> None:
        """`exchange` will fetch the history of `instruments` instruments; `meter` counts its requests."""

    def advance(self, exchange: str, share: float) -> None:
        """A `share` (of one instrument) of `exchange`'s work is done."""

    def stored(self, exchange: str, rows: int) -> None:
        """`rows` new rows of `exchange` were written to the catalog."""

    def finished(self, exchange: str, outcome: InstrumentOutcome) -> None:
        """One instrument of `exchange` is done (its share was advanced only if it had pages to fetch)."""


@dataclass
class ExchangeHooks:
    """`Progress` bound to one instrument's fetch on one exchange, as a history fetch calls it
    (`collect.history.Hooks`): each planned page is an equal share of the instrument."""

    progress: Progress
    exchange: str
    windows: int = 0
    done: float = 0.0

    def plan(self, windows: int) -> None:
        self.windows += windows

    def advance(self, rows: int) -> None:
        if self.windows and self.done < 1.0:
            share = min(1.0 / self.windows, 1.0 - self.done)
            self.done += share
            self.progress.advance(self.exchange, share)

    def finish(self, outcome: InstrumentOutcome) -> None:
        """The instrument is done: the rest of its share (all of it, if it had nothing to fetch)."""
        if self.windows and self.done < 1.0:
            self.progress.advance(self.exchange, 1.0 - self.done)
            self.done = 1.0
        self.progress.finished(self.exchange, outcome)


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
