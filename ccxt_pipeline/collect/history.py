"""What a history fetch returns, for every data type."""

from __future__ import annotations

from dataclasses import dataclass, field

from ccxt_pipeline.models import CoverageGap, Record


@dataclass
class History:
    """Rows fetched for one instrument, the gaps the exchange could not fill, and notes for the user."""

    records: list[Record] = field(default_factory=list)
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
