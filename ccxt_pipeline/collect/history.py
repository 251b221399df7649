"""What a history fetch returns, for every data type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ccxt_pipeline.models import CoverageGap, Record


@dataclass
class History:
    """Rows fetched for one instrument, the gaps the exchange could not fill, and notes for the user."""

    records: list[Record] = field(default_factory=list)
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Hooks(Protocol):
    """Progress callbacks of a history fetch."""

    def plan(self, windows: int) -> None: ...

    def advance(self, rows: int) -> None: ...
