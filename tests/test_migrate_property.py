"""Property: `catalog migrate` on any mix of old and already-migrated files keeps every row, halves exactly the
Bybit open interest written before schema 2 and the Hyperliquid open interest written before schema 3 (each
once, whatever the file's version), leaves everything else alone, and is idempotent."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxt_pipeline.catalog import OPEN_INTEREST, CatalogWriter
from ccxt_pipeline.catalog.layout import data_root
from ccxt_pipeline.catalog.maintenance import verify
from ccxt_pipeline.catalog.migrate import migrate
from tests.v1_catalog import T0, _restamp, is_both_sides

STEP = 300_000_000_000  # 5 minutes
SERIES = (
    ("bybit", "BTCUSDT-LINEAR.BYBIT"),
    ("bybit", "ETHPERP-LINEAR.BYBIT"),
    ("binance", "BTCUSDT-PERP.BINANCE"),
    ("hyperliquid", "BTC-USD-PERP.HYPERLIQUID"),
    ("hyperliquid", "kPEPE-USD-PERP.HYPERLIQUID"),
)

batches = st.lists(
    st.tuples(
        st.sampled_from(SERIES),
        st.lists(st.integers(0, 400), min_size=1, max_size=60, unique=True),
        st.booleans(),  # with a value column
    ),
    min_size=1,
    max_size=8,
)
versions = st.lists(st.sampled_from([b"1", None, b"2", b"3"]), min_size=40, max_size=40)


def _table(exchange: str, iid: str, points: list[int], with_value: bool) -> pa.Table:
    ts = [T0 + STEP * k for k in sorted(points)]
    amounts = [1_000.0 + 0.125 * k for k in sorted(points)]
    return pa.table(
        {
            "exchange": [exchange] * len(ts),
            "instrument_id": [iid] * len(ts),
            "open_interest": amounts,
            "open_interest_value": [a * 64.0 if with_value else None for a in amounts],
            "ts_event": ts,
            "ts_init": ts,
        }
    )


def _rows(root: Path) -> dict[tuple[str, int], tuple[float, float | None]]:
    out: dict[tuple[str, int], tuple[float, float | None]] = {}
    for path in sorted((data_root(root) / OPEN_INTEREST.type_dir).rglob("*.parquet")):
        t = pq.read_table(path)
        for iid, ts, oi, value in zip(
            *(
                t.column(c).to_pylist()
                for c in ("instrument_id", "ts_init", "open_interest", "open_interest_value")
            ),
            strict=True,
        ):
            assert (iid, ts) not in out, "duplicate row"
            out[(iid, ts)] = (oi, value)
    return out


@settings(max_examples=60, deadline=None)
@given(batches=batches, stamps=versions)
def test_migrate_keeps_every_row_and_halves_only_old_both_sides_files(
    batches: list[tuple[tuple[str, str], list[int], bool]],
    stamps: list[bytes | None],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "catalog"
        writer = CatalogWriter(root, durable=False)
        for (exchange, iid), points, with_value in batches:
            writer.write_table(OPEN_INTEREST, _table(exchange, iid, points, with_value))
        old: set[Path] = set()
        for path, version in zip(
            sorted((data_root(root) / OPEN_INTEREST.type_dir).rglob("*.parquet")), stamps, strict=False
        ):
            _restamp(path, version)  # a catalog from release 1 or 2, maybe partly migrated already
            if is_both_sides(root, path, version):
                old.add(path)
        old_rows = {
            (iid, ts)
            for path in old
            for iid, ts in zip(
                *(pq.read_table(path).column(c).to_pylist() for c in ("instrument_id", "ts_init")),
                strict=True,
            )
        }
        before = _rows(root)

        migrate(root, durable=False)
        after = _rows(root)
        assert after.keys() == before.keys()  # no row lost or added
        for key, (oi, value) in before.items():
            if key in old_rows:
                assert after[key] == (oi / 2, None if value is None else value / 2), key
            else:
                assert after[key] == (oi, value), key
        assert not [p for p in verify(root).problems if p.kind == "needs-migration"]

        migrate(root, durable=False)  # idempotent
        assert _rows(root) == after
