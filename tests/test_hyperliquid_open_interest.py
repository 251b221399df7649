"""Hyperliquid open interest is stored as ONE side of the market (schema version 3), like Binance and Bybit.

Hyperliquid's `openInterest` (asset contexts: `metaAndAssetCtxs`, `activeAssetCtx`) is the sum of both sides:
"size (sum of absolute position sizes)" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/
hip-3-deployer-actions, "Open interest caps"; docs/exchanges.md, "Hyperliquid open interest: one side or
both"). The venue table reads half of it; catalogs written before schema 3 hold it unhalved and are migrated
exactly as Bybit's were before schema 2. `fetch-oi` runs through the real CLI and the real ccxt against the
simulator, whose asset contexts serve twice its one-side series.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.catalog.maintenance import verify
from ccxt_pipeline.catalog.schema import META_VERSION, SCHEMA_VERSION
from ccxt_pipeline.catalog.versions import pending, upgrade_table
from ccxt_pipeline.cli import app
from ccxt_pipeline.models import OpenInterest
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator import hyperliquid as hl_sim
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.v1_catalog import (
    BYBIT_IDS,
    HYPERLIQUID_ID,
    T0,
    FileState,
    assert_settled,
    assert_single_side,
    build_v2_catalog,
    halved,
    single_side,
    snapshot,
)

CURRENT = SCHEMA_VERSION.encode()
NOW_MS = 1_763_640_000_000  # 2025-11-20T12:00:00Z, after every row of the old catalogs
STEP = 300_000_000_000  # the old catalogs' 5-minute grid


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def hl_rows(root: Path) -> list[OpenInterest]:
    rows = CatalogReader(root).query_records(OPEN_INTEREST, [HYPERLIQUID_ID])
    return [r for r in rows if isinstance(r, OpenInterest)]


def is_hyperliquid_oi(rel: str) -> bool:
    return f"/{OPEN_INTEREST.type_dir}/{HYPERLIQUID_ID}/" in f"/{rel}"


def assert_only_hyperliquid_halved(before: dict[str, FileState], after: dict[str, FileState]) -> None:
    """Same files and rows; Hyperliquid open interest exactly halved at today's version; every other file,
    Bybit's schema-2 single side included, byte for byte as it was."""
    assert sorted(after) == sorted(before)
    for rel, old in before.items():
        new = after[rel]
        assert new.rows == old.rows, rel
        if is_hyperliquid_oi(rel):
            assert new.version == CURRENT, rel
            assert new.open_interest == halved(old.open_interest), rel
            assert new.open_interest_value == halved(old.open_interest_value), rel
        else:
            assert new == old, rel  # digest, version and values


def test_fetch_oi_stores_one_side_for_hyperliquid(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    sim.now_ms = NOW_MS
    single = data.open_interest("hyperliquid", "BTC", NOW_MS, sim.seed)
    meta, ctxs = hl_sim.meta_and_asset_ctxs(sim)
    served = ctxs[[u["name"] for u in meta["universe"]].index("BTC")]
    assert float(served["openInterest"]) == 2 * single  # the simulator serves both sides

    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "hyperliquid")
    assert result.exit_code == 0, result.output + result.stderr
    rows = hl_rows(config_file.parent / "catalog")
    assert len(rows) == 1
    row = rows[0]
    assert row.exchange == "hyperliquid"
    assert row.open_interest == single  # exactly one side: half of what was served, to the last bit
    mark = data.mark_price("hyperliquid", "BTC", NOW_MS, sim.seed)
    assert float(served["markPx"]) == mark
    assert row.open_interest_value == single * mark  # one side x markPx
    assert row.ts_event == row.ts_init  # no exchange time: stamped at receipt


def test_schema2_catalog_needs_migration_for_hyperliquid_only(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    build_v2_catalog(root)
    before = snapshot(root)
    hl_files = {rel for rel in before if is_hyperliquid_oi(rel)}
    assert len(hl_files) == 3
    assert {s.version for s in before.values()} == {b"2"}

    # Our own reader already reads the old files in today's meaning, before any migration.
    ks = [(r.ts_init - T0) // STEP for r in hl_rows(root)]
    assert len(ks) == 150
    assert [r.open_interest for r in hl_rows(root)] == [single_side(k) for k in ks]

    result = run("catalog", "verify", "--catalog", str(root), "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert {p["kind"] for p in problems} == {"needs-migration"}
    assert {str(Path(p["file"]).relative_to(root)) for p in problems} == hl_files  # no Bybit file
    for p in problems:
        assert "schema version 2 < 3" in p["detail"]
        assert "Hyperliquid open interest written before schema 3 is both sides" in p["detail"]
        assert "Bybit" not in p["detail"]
        assert "ccxt-cli catalog migrate" in p["detail"]

    result = run("catalog", "migrate", "--catalog", str(root))
    assert result.exit_code == 0, result.output
    # files checked: the folders a rescale concerns (2 Bybit instruments x 3 files, 3 Hyperliquid files)
    assert "3 of 9 files migrated (150 rows); the catalog is at schema version 3" in result.stdout
    after = snapshot(root)
    assert_only_hyperliquid_halved(before, after)
    assert_single_side(root, [HYPERLIQUID_ID])  # one side, exactly
    assert_single_side(root, BYBIT_IDS)  # Bybit's schema-2 single side, not halved again
    assert_settled(root, after)


def test_fetch_oi_migrates_a_schema2_hyperliquid_folder_before_adding_to_it(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    """No Hyperliquid series holds new one-side rows after both-sides ones: the writer halves the folder's
    old files first. Bybit's schema-2 files need nothing and are left as they are."""
    root = config_file.parent / "catalog"
    build_v2_catalog(root, files=2, rows=40)
    before = snapshot(root)
    sim.now_ms = NOW_MS
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "hyperliquid")
    assert result.exit_code == 0, result.output + result.stderr
    after = snapshot(root)
    new = [rel for rel in set(after) - set(before) if OPEN_INTEREST.type_dir in rel]
    assert len(new) == 1  # the fetched row's file (a definition file is new too)
    assert is_hyperliquid_oi(new[0])
    assert_only_hyperliquid_halved(before, {rel: after[rel] for rel in before})
    rows = hl_rows(root)
    assert [r.open_interest for r in rows[:-1]] == [single_side((r.ts_init - T0) // STEP) for r in rows[:-1]]
    assert rows[-1].open_interest == data.open_interest("hyperliquid", "BTC", NOW_MS, sim.seed)
    assert not verify(root).problems  # nothing left to migrate: Bybit's version-2 files need nothing


@pytest.mark.parametrize(
    ("iid", "halved_below"),
    [
        ("BTCUSDT-LINEAR.BYBIT", 2),
        ("BTC-USD-PERP.HYPERLIQUID", 3),
        ("kPEPE-USD-PERP.HYPERLIQUID", 3),
        ("BTCUSDT-PERP.BINANCE", 0),
    ],
)
def test_each_rescale_applies_once_to_its_exchange_and_versions(iid: str, halved_below: int) -> None:
    """Bybit files of versions 0-1 and Hyperliquid files of versions 0-2 are halved exactly once; Bybit of
    version 2, anything of version 3 and every other exchange are returned as they are (the same object)."""
    amounts = [2.0 * single_side(k) for k in range(7)]
    values = [None if k % 3 == 0 else a * 100.5 for k, a in enumerate(amounts)]
    ts = [T0 + STEP * k for k in range(7)]
    base = pa.table(
        {
            "exchange": [iid.rsplit(".", 1)[1].lower()] * 7,
            "instrument_id": [iid] * 7,
            "open_interest": pa.array(amounts, pa.float64()),
            "open_interest_value": pa.array(values, pa.float64()),
            "ts_event": ts,
            "ts_init": ts,
        }
    )
    for version in (None, b"1", b"2", b"3"):
        meta = {} if version is None else {META_VERSION: version}
        table = base.replace_schema_metadata(meta)
        number = int(version or b"0")
        upgraded = upgrade_table(OPEN_INTEREST, iid, table)
        todo = pending(OPEN_INTEREST, iid, number)
        if number < halved_below:
            assert [r.version for r in todo] == [halved_below], version
            assert upgraded.column("open_interest").to_pylist() == halved(amounts), version
            assert upgraded.column("open_interest_value").to_pylist() == halved(values), version
        else:
            assert todo == [], version
            assert upgraded is table, version
        # Other kinds of the same folder name are never rescaled.
        assert pending(LIQUIDATION, iid, number) == []
