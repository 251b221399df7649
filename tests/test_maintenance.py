"""catalog verify / repair / compact: every invariant is checked, repairs lose no row, compaction is
idempotent and crash-safe."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.layout import file_name, instrument_dir, list_data_files
from ccxt_pipeline.catalog.maintenance import compact, verify
from ccxt_pipeline.catalog.schema import to_table
from tests.catalog_checks import assert_catalog_invariants
from tests.strategies import T0, liq, oi

IID = "BTCUSDT-PERP.BINANCE"
DAY = 86_400_000_000_000
ROOT = Path(__file__).resolve().parent.parent


def base_catalog(root: Path) -> int:
    w = CatalogWriter(root)
    w.write([oi(i) for i in range(0, 20)])
    w.write([oi(i) for i in range(40, 60)])
    rows: int = w.query(OPEN_INTEREST).num_rows  # pyarrow is untyped (Any)
    return rows


def folder(root: Path) -> Path:
    return instrument_dir(root, OPEN_INTEREST, IID)


def inject_overlap(root: Path) -> None:
    pq.write_table(
        to_table(OPEN_INTEREST, [oi(i) for i in range(15, 25)]),
        folder(root) / file_name(oi(15).ts_init, oi(24).ts_init),
    )


def inject_unsorted(root: Path) -> None:
    table = to_table(OPEN_INTEREST, [oi(i) for i in reversed(range(70, 75))])
    pq.write_table(table, folder(root) / file_name(oi(70).ts_init, oi(74).ts_init))


def inject_bad_range(root: Path) -> None:
    # A name that understates its rows: a query by time would silently miss row 84.
    pq.write_table(
        to_table(OPEN_INTEREST, [oi(i) for i in range(80, 85)]),
        folder(root) / file_name(oi(80).ts_init, oi(82).ts_init),
    )


def inject_temp(root: Path) -> None:
    (folder(root) / ".x.parquet.1234.tmp").write_bytes(b"half a file")


def inject_dtype(root: Path) -> None:
    table = to_table(OPEN_INTEREST, [oi(i) for i in range(90, 95)])
    table = table.set_column(
        table.schema.get_field_index("open_interest"),
        "open_interest",
        table.column("open_interest").cast(pa.float32()),
    )
    pq.write_table(table, folder(root) / file_name(oi(90).ts_init, oi(94).ts_init))


INJECTIONS = {
    "overlap": (inject_overlap, 5),
    "unsorted": (inject_unsorted, 5),
    "name-understates": (inject_bad_range, 5),
    "temp-file": (inject_temp, 0),
    "schema": (inject_dtype, 5),
}


@pytest.mark.parametrize("problem", list(INJECTIONS))
def test_verify_catches_and_repair_fixes_without_losing_a_row(tmp_path: Path, problem: str) -> None:
    stored = base_catalog(tmp_path)
    inject, extra_rows = INJECTIONS[problem]
    inject(tmp_path)
    report = verify(tmp_path)
    assert problem in {p.kind for p in report.problems}, report.problems
    rows_before = report.rows
    fixed = verify(tmp_path, repair=True)
    assert fixed.problems == []
    assert {p.kind for p in fixed.repaired} >= {problem}
    # Every distinct row is still there (an overlap's shared rows were the same rows, kept once).
    assert CatalogReader(tmp_path).query(OPEN_INTEREST).num_rows == stored + extra_rows
    assert rows_before >= stored + extra_rows
    assert_catalog_invariants(tmp_path)


def test_clean_catalog_verifies_clean(tmp_path: Path) -> None:
    base_catalog(tmp_path)
    assert verify(tmp_path).problems == []


def small_stream_files(root: Path, n: int, days: int = 3) -> int:
    """`n` small liquidation files over `days` past days, as a stream without buckets would leave them."""
    w = CatalogWriter(root, durable=False)
    spacing = days * DAY // n
    for i in range(n):
        t = T0 + i * spacing
        w.write([liq(0, ts_event=t, ts_init=t + 1, price=90_000.0 + i)])
    return n


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*.parquet")
    }


@pytest.mark.parametrize("n", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_compact_makes_daily_files_idempotently(tmp_path: Path, n: int) -> None:
    small_stream_files(tmp_path, n)
    before = CatalogReader(tmp_path).query(LIQUIDATION)
    report = compact(tmp_path, today_start=T0 + 10 * DAY)
    files = list_data_files(instrument_dir(tmp_path, LIQUIDATION, IID))
    assert [f.path.name for f in files] == [file_name(T0 + d * DAY, T0 + (d + 1) * DAY - 1) for d in range(3)]
    assert (report.files_before, report.files_after) == (n, 3)
    after = CatalogReader(tmp_path).query(LIQUIDATION)
    assert after.equals(before)  # same rows, same order
    assert_catalog_invariants(tmp_path, exact_names=False)
    first = snapshot(tmp_path)
    again = compact(tmp_path, today_start=T0 + 10 * DAY)
    assert again.days_written == 0
    assert snapshot(tmp_path) == first  # a second run changes nothing
    try:
        from nautilus_trader.persistence.catalog import ParquetDataCatalog

        from ccxt_pipeline.nautilus import Liquidation
    except ImportError:
        return
    assert len(ParquetDataCatalog(str(tmp_path)).query(Liquidation)) == n


def test_compact_leaves_today_alone(tmp_path: Path) -> None:
    small_stream_files(tmp_path, 30)
    report = compact(tmp_path, today_start=T0 + DAY)  # "today" is the second day
    names = [f.path.name for f in list_data_files(instrument_dir(tmp_path, LIQUIDATION, IID))]
    assert names[0] == file_name(T0, T0 + DAY - 1)
    assert len(names) == 1 + (30 - 10)  # the first day compacted, the rest untouched
    assert report.days_written == 1


@pytest.mark.slow
def test_sigkill_during_compaction_loses_nothing(tmp_path: Path) -> None:
    template = tmp_path / "template"
    n = small_stream_files(template, 2_000)
    rng = random.Random(3)
    for trial in range(8):
        root = tmp_path / f"c{trial}"
        shutil.copytree(template, root)
        code = (
            "import sys; from pathlib import Path; from ccxt_pipeline.catalog.maintenance import compact; "
            f"compact(Path(sys.argv[1]), today_start={T0 + 10 * DAY})"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(root)], env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        CatalogWriter(root)  # opening repairs leftovers
        assert CatalogReader(root).query(LIQUIDATION).num_rows == n, f"trial {trial}"
        compact(root, today_start=T0 + 10 * DAY)
        assert CatalogReader(root).query(LIQUIDATION).num_rows == n
        assert verify(root).problems == []
