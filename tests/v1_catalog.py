"""Catalogs as earlier releases wrote them (schema version 1, or 2), for the migration tests.

Rows are written through today's `CatalogWriter` (so files, names and columns are exactly what the writer
makes), then every file's metadata is set back to the old version, as the earlier release stamped it. Open
interest holds what that release stored: version 1 Bybit's both-sides figure, twice the single side;
versions 1 and 2 Hyperliquid's `openInterest` as served, both sides too (docs/catalog.md, "Schema versions
and migration"). In the version 1 catalog one Bybit file carries no version at all (files from before
versions were stamped count as version 0).

    python tests/v1_catalog.py CATALOG [FILES] [ROWS]   # builds one (the crash trials' child uses it too)
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ccxt_pipeline.catalog import (
    COVERAGE_GAP,
    FUNDING_RATE,
    LIQUIDATION,
    OPEN_INTEREST,
    CatalogReader,
    CatalogWriter,
)
from ccxt_pipeline.catalog.files import PARQUET_OPTIONS
from ccxt_pipeline.catalog.layout import data_root
from ccxt_pipeline.catalog.schema import META_VERSION

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00Z
MINUTE = 60_000_000_000
BYBIT_IDS = ("BTCUSDT-LINEAR.BYBIT", "SOLUSDT-LINEAR.BYBIT")
HYPERLIQUID_ID = "BTC-USD-PERP.HYPERLIQUID"
BOTH_SIDES_BEFORE = {"BYBIT": 2, "HYPERLIQUID": 3}
"""Open-interest files of these venues older than this version hold both sides (docs/catalog.md)."""


def single_side(k: int) -> float:
    """The single-side open interest of point k (3 decimals, as Bybit prints BTCUSDT)."""
    return round(50_000 + 3.217 * (k % 997) + 0.001 * k, 3)


def _oi(exchange: str, iid: str, ks: range, *, factor: float, with_value: bool) -> pa.Table:
    ts = [T0 + 5 * MINUTE * k for k in ks]
    amounts = [factor * single_side(k) for k in ks]
    return pa.table(
        {
            "exchange": [exchange] * len(ks),
            "instrument_id": [iid] * len(ks),
            "open_interest": amounts,
            "open_interest_value": [
                a * 100.5 if with_value and k % 3 else None for a, k in zip(amounts, ks, strict=True)
            ],
            "ts_event": ts,
            "ts_init": ts,
        }
    )


def build_v1_catalog(root: Path, *, files: int = 4, rows: int = 300) -> None:
    """Bybit open interest (two instruments, `files` files each, both sides), Binance (one side) and
    Hyperliquid (one file, both sides) open interest, Bybit liquidations, Binance settled funding and Bybit
    coverage gaps, all stamped version 1."""
    _build(root, files=files, rows=rows, bybit_factor=2.0, hyperliquid_files=1)
    stamp_version(root, b"1")
    # The oldest Bybit file of one instrument as if written before versions were stamped.
    first = sorted((data_root(root) / OPEN_INTEREST.type_dir / BYBIT_IDS[1]).glob("*.parquet"))[0]
    _restamp(first, None)


def build_v2_catalog(root: Path, *, files: int = 3, rows: int = 100) -> None:
    """The same catalog as schema 2 wrote it: Bybit open interest one side, Hyperliquid's still both sides
    (`files` files of it), every file stamped version 2."""
    _build(root, files=files, rows=rows, bybit_factor=1.0, hyperliquid_files=files)
    stamp_version(root, b"2")


def _build(root: Path, *, files: int, rows: int, bybit_factor: float, hyperliquid_files: int) -> None:
    w = CatalogWriter(root, durable=False)
    for n in range(files):
        ks = range(n * (rows + 10), n * (rows + 10) + rows)  # a hole between files: one file per batch
        for iid in BYBIT_IDS:
            w.write_table(OPEN_INTEREST, _oi("bybit", iid, ks, factor=bybit_factor, with_value=True))
        w.write_table(OPEN_INTEREST, _oi("binance", "BTCUSDT-PERP.BINANCE", ks, factor=1.0, with_value=True))
    for n in range(hyperliquid_files):
        ks = range(n * 60, n * 60 + 50)
        w.write_table(OPEN_INTEREST, _oi("hyperliquid", HYPERLIQUID_ID, ks, factor=2.0, with_value=True))
    m = 40
    w.write_table(
        LIQUIDATION,
        pa.table(
            {
                "exchange": ["bybit"] * m,
                "instrument_id": ["BTCUSDT-LINEAR.BYBIT"] * m,
                "side": ["LONG" if j % 2 else "SHORT" for j in range(m)],
                "quantity": [0.5 + j for j in range(m)],
                "price": [97_000.5] * m,
                "notional": [(0.5 + j) * 97_000.5 for j in range(m)],
                "ts_event": [T0 + j * MINUTE for j in range(m)],
                "ts_init": [T0 + j * MINUTE + 7 for j in range(m)],
            }
        ),
    )
    w.write_table(
        FUNDING_RATE,
        pa.table(
            {
                "exchange": ["binance"] * 9,
                "instrument_id": ["BTCUSDT-PERP.BINANCE"] * 9,
                "rate": [0.0001 * (j - 4) for j in range(9)],
                "interval_minutes": [480] * 9,
                "ts_event": [T0 + j * 480 * MINUTE for j in range(9)],
                "ts_init": [T0 + j * 480 * MINUTE for j in range(9)],
            }
        ),
    )
    w.write_table(
        COVERAGE_GAP,
        pa.table(
            {
                "exchange": ["bybit"],
                "instrument_id": ["BTCUSDT-LINEAR.BYBIT"],
                "data_type": ["open_interest"],
                "end_ns": [T0 + 9 * MINUTE],
                "reason": ["the exchange returned no data"],
                "ts_event": [T0 + 5 * MINUTE],
                "ts_init": [T0 + 5 * MINUTE],
            }
        ),
    )


def stamp_version(root: Path, version: bytes) -> None:
    for path in sorted(data_root(root).rglob("*.parquet")):
        _restamp(path, version)


def _restamp(path: Path, version: bytes | None) -> None:
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    if version is None:
        meta.pop(META_VERSION, None)
    else:
        meta[META_VERSION] = version
    pq.write_table(table.replace_schema_metadata(meta), path, **PARQUET_OPTIONS)


def is_bybit_oi(root: Path, path: Path) -> bool:
    rel = path.relative_to(data_root(root))
    return rel.parts[0] == OPEN_INTEREST.type_dir and rel.parts[1].endswith(".BYBIT")


def is_both_sides(root: Path, path: Path, version: bytes | None) -> bool:
    """Whether an open-interest file of `version` at `path` holds both sides (migration halves it)."""
    rel = path.relative_to(data_root(root))
    if rel.parts[0] != OPEN_INTEREST.type_dir:
        return False
    before = BOTH_SIDES_BEFORE.get(rel.parts[1].rsplit(".", 1)[-1], 0)
    return int(version or b"0") < before


@dataclass(frozen=True)
class FileState:
    digest: str
    version: bytes | None
    rows: int
    open_interest: list[float] | None
    open_interest_value: list[float | None] | None


def snapshot(root: Path) -> dict[str, FileState]:
    """Every data file (temp files excluded): bytes digest, version, rows, and its open-interest columns."""
    out = {}
    for path in sorted(data_root(root).rglob("*.parquet")):
        if path.name.startswith("."):
            continue
        table = pq.read_table(path)
        oi = "open_interest" in table.column_names
        out[str(path.relative_to(root))] = FileState(
            digest=hashlib.sha256(path.read_bytes()).hexdigest(),
            version=(table.schema.metadata or {}).get(META_VERSION),
            rows=table.num_rows,
            open_interest=table.column("open_interest").to_pylist() if oi else None,
            open_interest_value=table.column("open_interest_value").to_pylist() if oi else None,
        )
    return out


def halved(values: Sequence[float | None] | None) -> list[float | None] | None:
    return None if values is None else [None if v is None else v / 2 for v in values]


def assert_single_side(root: Path, instrument_ids: Iterable[str]) -> None:
    """Each instrument's open interest reads back as the single side of its point, exactly."""
    for iid in instrument_ids:
        table = CatalogReader(root).query(OPEN_INTEREST, [iid])
        ks = [(t - T0) // (5 * MINUTE) for t in table.column("ts_init").to_pylist()]
        assert table.column("open_interest").to_pylist() == [single_side(k) for k in ks], iid


def assert_settled(root: Path, after: dict[str, FileState]) -> None:
    """After a migration: `catalog verify` finds nothing, and `catalog migrate` again changes nothing (no file
    rewritten, none even touched). The CLI loads here, not when the crash trials' child builds a catalog."""
    from typer.testing import CliRunner

    from ccxt_pipeline.cli import app

    def run(*args: str) -> Any:
        return CliRunner().invoke(app, [*args, "--catalog", str(root), "--json"], catch_exceptions=False)

    clean = run("catalog", "verify")
    assert clean.exit_code == 0, clean.stdout
    assert json.loads(clean.stdout)["problems"] == []

    mtimes = {p: p.stat().st_mtime_ns for p in data_root(root).rglob("*.parquet")}
    again = run("catalog", "migrate")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["migrated"] == []
    assert snapshot(root) == after
    assert {p: p.stat().st_mtime_ns for p in data_root(root).rglob("*.parquet")} == mtimes  # untouched


__all__ = [
    "BOTH_SIDES_BEFORE",
    "BYBIT_IDS",
    "HYPERLIQUID_ID",
    "FileState",
    "assert_settled",
    "assert_single_side",
    "build_v1_catalog",
    "build_v2_catalog",
    "halved",
    "is_both_sides",
    "is_bybit_oi",
    "single_side",
    "snapshot",
    "stamp_version",
]

if __name__ == "__main__":
    build_v1_catalog(
        Path(sys.argv[1]),
        files=int(sys.argv[2]) if len(sys.argv) > 2 else 4,
        rows=int(sys.argv[3]) if len(sys.argv) > 3 else 300,
    )
