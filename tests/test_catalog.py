"""The catalog writer and reader: layout, de-duplication, merging, repair, queries."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccxt_pipeline.catalog import (
    KINDS,
    LIQUIDATION,
    OPEN_INTEREST,
    CatalogReader,
    CatalogWriter,
    kind_of,
)
from ccxt_pipeline.catalog.layout import file_name, instrument_dir, parse_file_name
from ccxt_pipeline.catalog.schema import DataKind, to_table
from ccxt_pipeline.errors import CatalogError, RecordError
from ccxt_pipeline.models import Record
from tests.catalog_checks import assert_catalog_invariants
from tests.strategies import RECORD_STRATEGIES, T0, liq, liquidations, oi

IID = "BTCUSDT-PERP.BINANCE"


def folder_names(root: Path, kind: DataKind = OPEN_INTEREST, iid: str = IID) -> list[str]:
    return sorted(os.listdir(instrument_dir(root, kind, iid)))


def test_layout_and_names(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    result = w.write([oi(i) for i in range(3)])
    assert (result.rows_written, result.rows_duplicate, result.files_written) == (3, 0, 1)
    assert folder_names(tmp_path) == ["2025-01-01T00-00-00-000000000Z_2025-01-01T00-10-00-000000000Z.parquet"]
    assert (tmp_path / "data" / "custom_open_interest" / IID).is_dir()
    assert_catalog_invariants(tmp_path)


def test_file_name_round_trip() -> None:
    name = file_name(T0, T0 + 86_400_000_000_000 - 1)
    assert name == "2025-01-01T00-00-00-000000000Z_2025-01-01T23-59-59-999999999Z.parquet"
    assert parse_file_name(name) == (T0, T0 + 86_400_000_000_000 - 1)
    assert parse_file_name("2025-01-01_x.parquet") is None


def test_same_rows_twice_leave_one_copy(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([oi(i) for i in range(5)])
    before = folder_names(tmp_path)
    again = w.write([oi(i) for i in reversed(range(5))])
    assert (again.rows_written, again.rows_duplicate, again.files_written) == (0, 5, 0)
    assert folder_names(tmp_path) == before
    assert w.query(OPEN_INTEREST).num_rows == 5


def test_stored_copy_wins_over_new_value_with_same_key(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([oi(0, open_interest=1.0)])
    w.write([oi(0, open_interest=2.0)])
    assert w.query(OPEN_INTEREST).column("open_interest").to_pylist() == [1.0]


def test_duplicates_inside_one_batch_are_dropped(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    result = w.write([liq(1), liq(1), liq(1, side="SHORT"), liq(2)])
    assert (result.rows_written, result.rows_duplicate) == (3, 1)


def test_overlapping_batch_is_merged_into_existing_file_and_gaps_get_new_files(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([oi(i) for i in (0, 2, 4)])  # file A: [0, 4]
    w.write([oi(i) for i in (10, 12)])  # file B: [10, 12]
    result = w.write([oi(i) for i in (1, 3, 4, 6, 7, 11, 15)])
    # 1, 3 into A; 4 duplicate; 6, 7 a new gap file; 11 into B; 15 a new file after B.
    assert (result.rows_written, result.rows_duplicate, result.files_written) == (6, 1, 4)
    assert len(folder_names(tmp_path)) == 4
    assert w.query(OPEN_INTEREST).column("ts_init").to_pylist() == [
        oi(i).ts_init for i in (0, 1, 2, 3, 4, 6, 7, 10, 11, 12, 15)
    ]
    assert_catalog_invariants(tmp_path)


def test_last_and_first_timestamp_from_names(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    assert w.last_timestamp(OPEN_INTEREST, IID) is None
    w.write([oi(i) for i in (5, 6)])
    w.write([oi(i) for i in (1, 2)])
    assert w.last_timestamp(OPEN_INTEREST, IID) == oi(6).ts_init
    assert w.first_timestamp(OPEN_INTEREST, IID) == oi(1).ts_init
    # Ignores a stray non-data file.
    (instrument_dir(tmp_path, OPEN_INTEREST, IID) / "notes.txt").write_text("x")
    assert w.last_timestamp(OPEN_INTEREST, IID) == oi(6).ts_init


def test_coverage_joins_ranges_within_tolerance(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    for chunk in ([0, 1], [2, 3], [7, 8]):
        w.write([oi(i) for i in chunk])
    period = 300_000_000_000
    assert w.coverage(OPEN_INTEREST, IID) == [
        (oi(0).ts_init, oi(1).ts_init),
        (oi(2).ts_init, oi(3).ts_init),
        (oi(7).ts_init, oi(8).ts_init),
    ]
    assert w.coverage(OPEN_INTEREST, IID, tolerance_ns=period) == [
        (oi(0).ts_init, oi(3).ts_init),
        (oi(7).ts_init, oi(8).ts_init),
    ]


def test_query_bounds_instruments_and_exchanges(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([oi(i) for i in range(10)])
    w.write([oi(i, iid="BTCUSDT-LINEAR.BYBIT", exchange="bybit") for i in range(10)])
    t = w.query(OPEN_INTEREST, start=oi(2).ts_init, end=oi(4).ts_init)
    assert t.num_rows == 6  # inclusive bounds, both instruments
    assert t.column("ts_init").to_pylist() == sorted(t.column("ts_init").to_pylist())
    assert w.query(OPEN_INTEREST, exchanges=["bybit"]).num_rows == 10
    assert w.query(OPEN_INTEREST, instrument_ids=[IID], start=oi(9).ts_init).num_rows == 1
    assert w.query(OPEN_INTEREST, instrument_ids=["ETHUSDT-PERP.BINANCE"]).num_rows == 0
    assert w.query(LIQUIDATION).num_rows == 0
    assert w.query(OPEN_INTEREST).schema == OPEN_INTEREST.schema
    records = w.query_records(OPEN_INTEREST, exchanges=["binance"])
    assert records == [oi(i) for i in range(10)]


def test_reader_never_writes(tmp_path: Path) -> None:
    r = CatalogReader(tmp_path / "nothing")
    assert r.query(OPEN_INTEREST).num_rows == 0
    assert r.last_timestamp(OPEN_INTEREST, IID) is None
    assert not (tmp_path / "nothing").exists()


def test_write_table_checks_columns_like_the_model(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    good = to_table(LIQUIDATION, [liq(i) for i in range(4)])
    assert w.write_table(LIQUIDATION, good).rows_written == 4

    def with_column(name: str, values: list[Any]) -> pa.Table:
        i = good.schema.get_field_index(name)
        return good.set_column(i, name, pa.array(values, good.schema.field(name).type))

    cases = {
        "Liquidation.price: must be a finite number (got nan at row 2)": with_column(
            "price", [1.0, 2.0, float("nan"), 3.0]
        ),
        "Liquidation.quantity: must be > 0 (got -1.0 at row 0)": with_column(
            "quantity", [-1.0, 1.0, 1.0, 1.0]
        ),
        "Liquidation.side: unknown side (got 'BUY' at row 1)": with_column(
            "side", ["LONG", "BUY", "SHORT", "LONG"]
        ),
        "Liquidation.instrument_id: not an instrument on binance (got 'BTCUSDT-LINEAR.BYBIT')": with_column(
            "instrument_id", ["BTCUSDT-LINEAR.BYBIT"] * 4
        ),
        "Liquidation: missing columns ['price']": good.drop_columns(["price"]),
        "Liquidation: unknown columns ['extra']": good.append_column("extra", pa.array([1, 2, 3, 4])),
    }
    for message, table in cases.items():
        with pytest.raises(RecordError) as exc:
            w.write_table(LIQUIDATION, table)
        assert str(exc.value) == message
    assert w.query(LIQUIDATION).num_rows == 4  # nothing half-written


def test_unwritable_catalog_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CatalogError, match="is not writable"):
        CatalogWriter(blocker / "catalog")


def test_open_removes_temp_files_and_merges_overlaps(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    w.write([oi(i) for i in range(0, 6)])
    folder = instrument_dir(tmp_path, OPEN_INTEREST, IID)
    # What a crash or a hand could leave: a temp file, and an overlapping file with shared rows.
    (folder / ".x.parquet.abc.tmp").write_bytes(b"partial")
    overlapping = to_table(OPEN_INTEREST, [oi(i) for i in range(4, 9)])
    pq.write_table(overlapping, folder / file_name(oi(4).ts_init, oi(8).ts_init))
    w2 = CatalogWriter(tmp_path)
    assert w2.last_repair is not None
    assert len(w2.last_repair.temp_files_removed) == 1
    assert len(w2.last_repair.overlaps_merged) == 1
    assert w2.query(OPEN_INTEREST).column("ts_init").to_pylist() == [oi(i).ts_init for i in range(9)]
    assert_catalog_invariants(tmp_path)


# --- properties --------------------------------------------------------------------------------------------

_PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _order(key_columns: tuple[str, ...]) -> Callable[[Record], tuple[Any, ...]]:
    """Sort by ts_init, instrument, then the natural key's columns (as text, so that None sorts)."""
    return lambda r: (r.ts_init, r.instrument_id, *(str(getattr(r, c)) for c in key_columns))


def _sorted_unique(records: list[Record]) -> list[Record]:
    """The catalog's semantics, written the slow obvious way: first copy of each key wins, sorted by key."""
    kind = kind_of(type(records[0])) if records else None
    key_columns = kind.key if kind is not None else ()  # no records: no key needed
    seen: dict[tuple[Any, ...], Record] = {}
    for r in records:
        assert kind is not None
        key = (r.instrument_id, *(getattr(r, c) for c in key_columns))
        seen.setdefault(key, r)
    return sorted(seen.values(), key=_order(key_columns))


def _per_kind_property(test: Callable[..., None]) -> Callable[..., None]:
    """`test(tmp_path_factory, kind_name, data)` as a hypothesis property, once per stored kind."""
    wrapped: Callable[..., None] = pytest.mark.parametrize("kind_name", list(KINDS))(
        _PROPERTY(given(data=st.data())(test))
    )
    return wrapped


@_per_kind_property
def test_property_models_catalog_models_is_identity(
    tmp_path_factory: pytest.TempPathFactory, kind_name: str, data: st.DataObject
) -> None:
    records = _sorted_unique(data.draw(st.lists(RECORD_STRATEGIES[kind_name], max_size=30)))
    root = tmp_path_factory.mktemp("cat")
    w = CatalogWriter(root, durable=False)
    w.write(records)
    back = w.query_records(KINDS[kind_name])
    key = _order(KINDS[kind_name].key)
    assert sorted(back, key=key) == sorted(records, key=key)


@_per_kind_property
def test_property_random_batches_read_back_as_sorted_union(
    tmp_path_factory: pytest.TempPathFactory, kind_name: str, data: st.DataObject
) -> None:
    strategy = RECORD_STRATEGIES[kind_name]
    batches = data.draw(st.lists(st.lists(strategy, max_size=15), max_size=6))
    # Repeat some batches verbatim, as a retried fetch would.
    batches += data.draw(st.lists(st.sampled_from(batches), max_size=3)) if batches else []
    root = tmp_path_factory.mktemp("cat")
    w = CatalogWriter(root, durable=False)
    written = 0
    for batch in batches:
        written += w.write(batch).rows_written
    expected = _sorted_unique([r for b in batches for r in b])
    kind = KINDS[kind_name]
    key = _order(kind.key)
    assert sorted(w.query_records(kind), key=key) == sorted(expected, key=key)
    assert written == len(expected)
    assert assert_catalog_invariants(root) == len(expected)


@_PROPERTY
@given(data=st.data())
def test_property_bucketed_stream_writes_keep_every_invariant(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Stream flushes merge into per-bucket files; mixed with ordinary writes, nothing overlaps or is lost."""
    batches = data.draw(st.lists(st.tuples(st.lists(liquidations(), max_size=12), st.booleans()), max_size=8))
    root = tmp_path_factory.mktemp("cat")
    w = CatalogWriter(root, durable=False)
    for batch, bucketed in batches:
        w.write(batch, bucket_ns=10_000_000_000 if bucketed else None)
    expected = _sorted_unique([r for b, _ in batches for r in b])
    key = _order(LIQUIDATION.key)
    assert sorted(w.query_records(LIQUIDATION), key=key) == sorted(expected, key=key)
    assert assert_catalog_invariants(root, exact_names=False) == len(expected)


def test_bucketed_flushes_share_one_file_per_bucket(tmp_path: Path) -> None:
    w = CatalogWriter(tmp_path)
    for i in range(10):  # ten flushes inside one minute
        w.write([liq(i * 100)], bucket_ns=60_000_000_000)
    assert folder_names(tmp_path, LIQUIDATION) == [
        "2025-01-01T00-00-00-000000000Z_2025-01-01T00-00-59-999999999Z.parquet"
    ]
    assert w.query(LIQUIDATION).num_rows == 10
