"""`catalog info` from the Parquet footers (ccxt_pipeline/catalog/footer.py and info.py): the same numbers as
reading the files through pyarrow, and a file the footer reader does not take is read through pyarrow."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ccxt_pipeline.catalog import KINDS, CatalogWriter
from ccxt_pipeline.catalog import info as info_module
from ccxt_pipeline.catalog.footer import Footer, read_footer
from ccxt_pipeline.catalog.info import KIND_FOLDERS, describe, describe_from_footers
from ccxt_pipeline.catalog.layout import instrument_dir, list_data_files
from ccxt_pipeline.cli import common
from ccxt_pipeline.models import CoverageGap, FundingRate, Liquidation, OpenInterest
from ccxt_pipeline.settings import DEFAULT_CONFIG_FILE, ENV_PREFIX
from ccxt_pipeline.timeutil import NS_PER_HOUR, NS_PER_MINUTE, parse_when
from tests.strategies import fields

DAY = parse_when("2025-01-01", 0)
BINANCE = "BTCUSDT-PERP.BINANCE"


def _table(n: int) -> pa.Table:
    ts = [DAY + (i * 7919) % n * NS_PER_MINUTE for i in range(n)]  # not in order: min and max are not ends
    return pa.table({"x": list(range(n)), "ts_init": ts, "note": [f"row {i}" * 20 for i in range(n)]})


def _expected(table: pa.Table) -> Footer:
    if not table.num_rows:
        return Footer(0, None, None)
    return Footer(table.num_rows, pc.min(table["ts_init"]).as_py(), pc.max(table["ts_init"]).as_py())


@pytest.mark.parametrize("row_group_size", [None, 1, 97])
def test_footer_gives_what_pyarrow_reads(tmp_path: Path, row_group_size: int | None) -> None:
    table = _table(1000)
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")
    assert read_footer(path, "ts_init") == _expected(table)
    pq.write_table(table.slice(0, 0), path)
    assert read_footer(path, "ts_init") == Footer(0, None, None)


def test_a_footer_longer_than_the_first_read(tmp_path: Path) -> None:
    table = _table(50).replace_schema_metadata({"big": "x" * 200_000})
    path = tmp_path / "f.parquet"
    pq.write_table(table, path)
    assert read_footer(path, "ts_init") == _expected(table)


def test_what_the_footer_reader_does_not_take(tmp_path: Path) -> None:
    table = _table(100)
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, write_statistics=False)
    assert read_footer(path, "ts_init") is None  # no statistics
    pq.write_table(table, path)
    assert read_footer(path, "note") is None  # not an INT64 column
    assert read_footer(path, "no_such_column") is None
    whole = path.read_bytes()
    for spoilt in (b"not parquet", whole[: len(whole) // 2], whole[:-9] + b"\xff" + whole[-8:], b""):
        path.write_bytes(spoilt)
        assert read_footer(path, "ts_init") is None
    with pytest.raises(FileNotFoundError):  # the system's error: the caller reports it
        read_footer(tmp_path / "gone.parquet", "ts_init")


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    w = CatalogWriter(root, durable=False)
    for day in range(3):
        start = DAY + day * 24 * NS_PER_HOUR
        w.write([OpenInterest(**fields(start + h * NS_PER_HOUR, open_interest=1.0)) for h in range(24)])
        w.write(
            [FundingRate(**fields(start + h * NS_PER_HOUR, rate=1e-4, interval_minutes=480)) for h in (0, 8)]
        )
    for t in (5, 61, 200):
        liq = Liquidation(
            **fields(DAY + t * 1_000_000_000, side="LONG", quantity=1.0, price=1.0, notional=1.0)
        )
        w.write([liq], bucket_ns=NS_PER_MINUTE)
    w.write([CoverageGap.between(KINDS["liquidation"], "binance", BINANCE, DAY, DAY + 10, "test")])
    return root


def test_describe_from_footers_is_the_full_read(catalog: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = describe_from_footers(catalog)
    assert quick is not None
    assert {s.type for s in quick.series} == {"open_interest", "funding_rate", "liquidation", "gap"}
    assert describe(catalog) == quick
    monkeypatch.setattr(info_module, "_footer", lambda f: None)  # every file through pyarrow
    assert describe_from_footers(catalog) is None
    assert describe(catalog) == quick


def test_a_file_the_footers_cannot_answer_is_read_and_quarantined(catalog: Path) -> None:
    folder = instrument_dir(catalog, KINDS["open_interest"], BINANCE)
    first = list_data_files(folder)[0].path
    bad = first.with_name(first.name.replace("T00-00-00", "T00-00-01", 1))
    bad.write_bytes(b"not parquet")
    before = describe_from_footers(catalog)
    assert before is None  # nothing changed: the file is still there
    assert bad.exists()
    full = describe(catalog)
    assert not bad.exists()
    assert [q.original for q in full.quarantined] == [str(bad.relative_to(catalog))]
    assert describe_from_footers(catalog) == full


def test_kind_folders_are_the_schemas() -> None:
    assert list(KIND_FOLDERS) == [(k.name, k.type_dir) for k in KINDS.values()]


def test_the_cli_knows_the_settings_file_and_prefix() -> None:
    assert (common.DEFAULT_CONFIG_FILE, common.ENV_PREFIX) == (DEFAULT_CONFIG_FILE, ENV_PREFIX)
