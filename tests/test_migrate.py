"""Catalogs written before schema version 2 hold Bybit open interest at twice its single side, and before
schema version 3 Hyperliquid's: `catalog verify` reports them, `catalog migrate` (and `verify --repair`)
halves them once, and writers migrate a folder before adding to it. Everything else is left byte for byte
as it was. (Schema 2 catalogs, where only Hyperliquid is both sides: tests/test_hyperliquid_open_interest.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from typer.testing import CliRunner

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.layout import data_root
from ccxt_pipeline.catalog.maintenance import compact, verify
from ccxt_pipeline.catalog.schema import META_VERSION, SCHEMA_VERSION
from ccxt_pipeline.cli import app
from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator.server import ExchangeSimulator
from tests.v1_catalog import (
    BYBIT_IDS,
    HYPERLIQUID_ID,
    assert_settled,
    assert_single_side,
    build_v1_catalog,
    halved,
    is_both_sides,
    is_bybit_oi,
    snapshot,
)

CURRENT = SCHEMA_VERSION.encode()


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def assert_migrated(root: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Same files, same row counts; both-sides open interest (Bybit and Hyperliquid) exactly halved and at
    today's version; every other file byte-identical."""
    assert sorted(after) == sorted(before)
    for rel, old in before.items():
        new = after[rel]
        assert new.rows == old.rows, rel
        if is_both_sides(root, root / rel, old.version):
            assert new.version == CURRENT, rel
            assert new.open_interest == halved(old.open_interest), rel
            assert new.open_interest_value == halved(old.open_interest_value), rel
        else:
            assert new == old, rel  # bytes, version and values


def test_verify_reports_old_bybit_files_and_migrate_halves_them_once(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    build_v1_catalog(root)
    before = snapshot(root)
    bybit_files = {rel for rel in before if is_bybit_oi(root, root / rel)}
    assert len(bybit_files) == 8
    old_files = {rel for rel, s in before.items() if is_both_sides(root, root / rel, s.version)}
    assert old_files == bybit_files | {rel for rel in before if HYPERLIQUID_ID in rel}
    assert len(old_files) == 9
    assert len(before) > len(old_files)
    assert {s.version for s in before.values()} == {b"1", None}

    result = run("catalog", "verify", "--catalog", str(root), "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert {p["kind"] for p in problems} == {"needs-migration"}
    assert {str(Path(p["file"]).relative_to(root)) for p in problems} == old_files
    assert all("ccxt-cli catalog migrate" in p["detail"] for p in problems)
    plain = run("catalog", "verify", "--catalog", str(root))
    assert "needs-migration" in plain.stdout
    assert "ccxt-cli catalog migrate" in plain.stdout

    result = run("catalog", "migrate", "--catalog", str(root))
    assert result.exit_code == 0, result.output
    assert f"9 of 9 files migrated ({8 * 300 + 50:,} rows)" in result.stdout
    after = snapshot(root)
    assert_migrated(root, before, after)
    assert_single_side(root, (*BYBIT_IDS, HYPERLIQUID_ID))
    assert_settled(root, after)


def test_verify_repair_performs_the_migration(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    build_v1_catalog(root, files=2, rows=50)
    before = snapshot(root)
    result = run("catalog", "verify", "--catalog", str(root), "--repair", "--json")
    assert result.exit_code == 0, result.stdout
    answer = json.loads(result.stdout)
    assert answer["problems"] == []
    assert {r["kind"] for r in answer["repaired"]} == {"needs-migration"}
    assert answer["rows_before"] == answer["rows_after"]
    assert_migrated(root, before, snapshot(root))


def raw_column(root: Path, iid: str, column: str = "open_interest") -> list[float | None]:
    """A folder's column as stored, file after file (pyarrow alone: no upgrade on read)."""
    folder = data_root(root) / OPEN_INTEREST.type_dir / iid
    return [
        v for path in sorted(folder.glob("*.parquet")) for v in pq.read_table(path).column(column).to_pylist()
    ]


def test_any_rewrite_of_an_old_file_upgrades_it(tmp_path: Path) -> None:
    """Compaction, repair merges and the writer's merges read old files in today's meaning: an old file
    rewritten by any of them comes out halved and stamped with today's version, never relabelled."""
    root = tmp_path / "catalog"
    build_v1_catalog(root, files=3, rows=40)
    before = {iid: raw_column(root, iid) for iid in (*BYBIT_IDS, HYPERLIQUID_ID)}
    binance = raw_column(root, "BTCUSDT-PERP.BINANCE")
    compact(root, today_start=1_767_225_600_000_000_000)  # 2026-01-01: every day of the catalog has ended
    for iid in (*BYBIT_IDS, HYPERLIQUID_ID):
        paths = list((data_root(root) / OPEN_INTEREST.type_dir / iid).glob("*.parquet"))
        assert len(paths) == 1  # one daily file now
        assert pq.read_schema(paths[0]).metadata[META_VERSION] == CURRENT
        assert raw_column(root, iid) == halved(before[iid])
    assert raw_column(root, "BTCUSDT-PERP.BINANCE") == binance
    assert not verify(root).problems


def test_fetch_oi_migrates_an_old_bybit_folder_before_adding_to_it(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    """The writer refuses to put single-side rows beside both-sides files: it migrates the folder first, so
    a series never changes meaning halfway. Other exchanges' folders are left alone."""
    root = config_file.parent / "catalog"
    build_v1_catalog(root, files=2, rows=50)
    before = snapshot(root)
    sim.now_ms = 1_763_640_000_000  # 2025-11-20T12:00Z, after the old rows
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "bybit")
    assert result.exit_code == 0, result.output + result.stderr
    after = snapshot(root)
    migrated = {rel for rel in before if "BTCUSDT-LINEAR.BYBIT" in rel and "custom_open_interest" in rel}
    assert migrated
    assert all(after[rel].version == CURRENT for rel in migrated)
    for rel, old in before.items():
        if rel in migrated:
            assert after[rel].open_interest == halved(old.open_interest)
        else:
            assert after[rel] == old, rel  # SOLUSDT-LINEAR was not written to: left for `catalog migrate`
    table = CatalogReader(root).query(OPEN_INTEREST, ["BTCUSDT-LINEAR.BYBIT"])
    assert table.column("open_interest").to_pylist()[-1] == data.open_interest(
        "bybit", "BTCUSDT", sim.now_ms, sim.seed
    )
    problems = verify(root).problems
    assert {p.kind for p in problems} == {"needs-migration"}
    assert {p.path.parent.name for p in problems} == {"SOLUSDT-LINEAR.BYBIT", HYPERLIQUID_ID}


def test_writer_migrates_a_folder_before_merging_into_it(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    build_v1_catalog(root, files=2, rows=30)
    old = raw_column(root, "SOLUSDT-LINEAR.BYBIT")
    untouched = snapshot(root)
    table = CatalogReader(root).query(OPEN_INTEREST, ["SOLUSDT-LINEAR.BYBIT"])
    writer = CatalogWriter(root)
    assert writer.write_table(OPEN_INTEREST, table.slice(0, 5)).rows_written == 0  # stored rows win
    assert raw_column(root, "SOLUSDT-LINEAR.BYBIT") == halved(old)
    after = snapshot(root)
    for rel, state in untouched.items():
        if "SOLUSDT-LINEAR.BYBIT" not in rel:
            assert after[rel] == state, rel  # only the folder written to is migrated by the writer
