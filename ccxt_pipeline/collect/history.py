"""What a history fetch returns, for every data type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from ccxt_pipeline.catalog.schema import DataKind
from ccxt_pipeline.models import CoverageGap


@dataclass
class History:
    """Rows fetched for one instrument (an Arrow table of `kind`, validated), the gaps the exchange could
    not fill, and notes for the user."""

    kind: DataKind
    table: pa.Table
    gaps: list[CoverageGap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Hooks(Protocol):
    """Progress callbacks of a history fetch."""

    def plan(self, windows: int) -> None: ...

    def advance(self, rows: int) -> None: ...
