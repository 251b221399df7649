"""NautilusTrader 1.221 reads what the writer writes, as it is (needs the `nautilus` extra)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("nautilus_trader")

from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from ccxt_pipeline import nautilus as nt
from ccxt_pipeline.catalog import (
    COVERAGE_GAP,
    FUNDING_ESTIMATE,
    FUNDING_RATE,
    KINDS,
    LIQUIDATION,
    OPEN_INTEREST,
    CatalogWriter,
    DataKind,
)
from ccxt_pipeline.models import FundingRate, Record
from tests.catalog_checks import as_records
from tests.strategies import INSTRUMENTS, RECORD_STRATEGIES, T0, oi

pytestmark = pytest.mark.nautilus

CLASSES: dict[str, type] = {
    "open_interest": nt.OpenInterest,
    "liquidation": nt.Liquidation,
    "funding_estimate": nt.FundingRateEstimate,
    "funding_rate": FundingRateUpdate,
    "gap": nt.CoverageGap,
}


@pytest.mark.parametrize(
    "kind", [OPEN_INTEREST, LIQUIDATION, FUNDING_ESTIMATE, COVERAGE_GAP], ids=lambda k: k.name
)
def test_custom_class_schema_matches_files(kind: DataKind) -> None:
    """Every column is a field of the Nautilus class, with the same Arrow type, and nothing is missing."""
    theirs = CLASSES[kind.name]._schema  # type: ignore[attr-defined]
    theirs = {f.name: f.type for f in theirs if f.name != "type"}
    ours = {f.name: f.type for f in kind.schema}
    assert ours == theirs
    assert CLASSES[kind.name].__name__ == "".join(p.title() for p in kind.type_dir.split("_")[1:])


def nautilus_rows(catalog: ParquetDataCatalog, kind: DataKind, **kw: Any) -> list[dict[str, Any]]:
    """Query through NautilusTrader and turn each object into a plain row like our records."""
    rows = []
    for obj in catalog.query(CLASSES[kind.name], **kw):
        data = getattr(obj, "data", obj)  # custom data comes wrapped in CustomData
        if isinstance(data, FundingRateUpdate):
            row = {"instrument_id": data.instrument_id.value, "rate": data.rate}
        else:
            row = {f: getattr(data, f) for f in kind.columns if f not in ("ts_event", "ts_init")}
            row["instrument_id"] = data.instrument_id.value
        row["ts_event"], row["ts_init"] = data.ts_event, data.ts_init
        rows.append(row)
    return rows


def our_rows(kind: DataKind, records: list[Record]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        if kind is FUNDING_RATE:
            row: dict[str, Any] = {"instrument_id": r.instrument_id, "rate": Decimal(repr(r.rate))}  # type: ignore[attr-defined]
        else:
            row = r.model_dump(exclude={"ts_event", "ts_init"})
            if "side" in row:
                row["side"] = row["side"].value
        row["ts_event"], row["ts_init"] = r.ts_event, r.ts_init
        rows.append(row)
    return rows


def _by_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["ts_init"], r["instrument_id"], repr(sorted(r.items()))))


@pytest.mark.parametrize("kind_name", list(KINDS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_property_nautilus_query_agrees(
    tmp_path_factory: pytest.TempPathFactory, kind_name: str, data: st.DataObject
) -> None:
    kind = KINDS[kind_name]
    batches = data.draw(st.lists(st.lists(RECORD_STRATEGIES[kind_name], max_size=12), min_size=1, max_size=4))
    root = tmp_path_factory.mktemp("cat")
    writer = CatalogWriter(root, durable=False)
    for b in batches:
        writer.write(b)
    catalog = ParquetDataCatalog(str(root))
    for _exchange, iid in INSTRUMENTS:
        ours = our_rows(kind, writer.query_records(kind, instrument_ids=[iid]))
        theirs = nautilus_rows(catalog, kind, identifiers=[iid])
        assert len(theirs) == len(ours)
        assert _by_time(theirs) == _by_time(ours)
        # NautilusTrader returns custom data in file order: it must already be sorted by ts_init.
        assert [r["ts_init"] for r in theirs] == sorted(r["ts_init"] for r in theirs)


def test_time_bounded_query_and_nulls(tmp_path: Path) -> None:
    writer = CatalogWriter(tmp_path)
    writer.write([oi(i, open_interest_value=None if i % 2 else 5.0) for i in range(12)])
    writer.write([oi(i) for i in range(20, 24)])
    catalog = ParquetDataCatalog(str(tmp_path))
    got = catalog.query(
        nt.OpenInterest, identifiers=["BTCUSDT-PERP.BINANCE"], start=oi(3).ts_init, end=oi(21).ts_init
    )
    assert [c.data.ts_init for c in got] == [oi(i).ts_init for i in [*range(3, 12), 20, 21]]
    assert [c.data.open_interest_value for c in got[:3]] == [None, 5.0, None]  # nulls come back as None


def test_funding_codec_encodes_nautilus_objects_into_our_format(tmp_path: Path) -> None:
    """A FundingRateUpdate written by NautilusTrader itself lands in a file our reader reads."""
    nt.register_funding_rate_codec()  # idempotent
    catalog = ParquetDataCatalog(str(tmp_path))
    iid = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
    updates = [FundingRateUpdate(iid, Decimal("0.0001"), T0 + i, T0 + i, None) for i in range(3)]
    catalog.write_data(updates)
    back = as_records(FundingRate, CatalogWriter(tmp_path).query_records(FUNDING_RATE))
    assert [(r.exchange, r.rate, r.ts_init) for r in back] == [("binance", 0.0001, T0 + i) for i in range(3)]
