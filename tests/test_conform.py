"""One set of rules: `conform_table` (Arrow input, vectorised) refuses exactly what the Pydantic models refuse.

Each rule is fed the same rows two ways, as dicts through the model (`validate_record`) and as an Arrow
table through `conform_table`; both must accept, or both refuse naming the same field (`Model.field:`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccxt_pipeline.catalog import CatalogWriter
from ccxt_pipeline.catalog.schema import (
    CLI_KINDS,
    COVERAGE_GAP,
    GAP_KINDS,
    KINDS,
    LIQUIDATION,
    OPEN_INTEREST,
    DataKind,
    conform_table,
)
from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.models import validate_record
from ccxt_pipeline.venues import VENUES
from tests.strategies import T0, fields

_SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field(message: str) -> str:
    """`Liquidation.notional: ...` -> `Liquidation.notional`."""
    return message.split(":", 1)[0]


def through_model(kind: DataKind, rows: list[dict[str, Any]]) -> str | None:
    """The first refusal's field, or None when every row is accepted."""
    for row in rows:
        try:
            validate_record(kind.model, row)
        except RecordError as exc:
            return _field(str(exc))
    return None


def through_table(kind: DataKind, rows: list[dict[str, Any]]) -> str | None:
    columns = {c: pa.array([r.get(c) for r in rows], kind.schema.field(c).type) for c in rows[0]}
    try:
        conform_table(kind, pa.table(columns))
    except RecordError as exc:
        message = str(exc)
    else:
        return None
    assert "\n" not in message
    return _field(message)


def alike(kind: DataKind, rows: list[dict[str, Any]]) -> str | None:
    model, table = through_model(kind, rows), through_table(kind, rows)
    assert model == table, (model, table, rows)
    return model


def liquidation(**kw: Any) -> dict[str, Any]:
    return fields(side="LONG", quantity=0.5, price=90_000.0, notional=45_000.0) | kw


def gap(**kw: Any) -> dict[str, Any]:
    return fields(data_type=OPEN_INTEREST.name, end_ns=T0 + 60_000_000_000, reason="no history") | kw


# --- Liquidation._notional_consistent / _fill_notional ------------------------------------------------------


@_SETTINGS
@given(
    price=st.floats(min_value=1e-6, max_value=1e7),
    quantity=st.floats(min_value=1e-6, max_value=1e5),
    rel=st.sampled_from([0.0, 1e-9, 5e-7, -5e-7, 9.9e-7, 1.01e-6, -1.01e-6, 2e-6, 1e-3, -0.5]),
)
def test_notional_rule_is_the_models(price: float, quantity: float, rel: float) -> None:
    result = alike(
        LIQUIDATION, [liquidation(price=price, quantity=quantity, notional=price * quantity * (1 + rel))]
    )
    if abs(rel) <= 5e-7:
        assert result is None
    if abs(rel) >= 1.01e-6:
        assert result == "Liquidation.notional"


def test_a_null_notional_is_filled_like_the_model() -> None:
    rows = [liquidation(notional=None), liquidation(price=2.0, quantity=3.0, notional=None)]
    assert alike(LIQUIDATION, rows) is None
    table = conform_table(
        LIQUIDATION, pa.table({c: [r[c] for r in rows] for c in rows[0] if c != "notional"})
    )
    assert table.column("notional").to_pylist() == [45_000.0, 6.0]
    assert table.schema == LIQUIDATION.schema


def test_a_wrong_notional_is_refused_in_one_line_naming_row_and_value(tmp_path: Any) -> None:
    rows = [liquidation(), liquidation(notional=45_001.0)]
    table = pa.table({c: [r[c] for r in rows] for c in rows[0]})
    writer = CatalogWriter(tmp_path, durable=False)
    with pytest.raises(RecordError) as exc:
        writer.write_table(LIQUIDATION, table)
    assert str(exc.value) == (
        "Liquidation.notional: must be price x quantity (within 1e-6) (got 45001.0 at row 1)"
    )
    assert writer.query(LIQUIDATION).num_rows == 0


# --- CoverageGap._ordered and data_type --------------------------------------------------------------------


@_SETTINGS
@given(start=st.integers(0, 100), end=st.integers(0, 100))
def test_gap_order_rule_is_the_models(start: int, end: int) -> None:
    result = alike(COVERAGE_GAP, [gap(ts_event=T0 + start, ts_init=T0 + start, end_ns=T0 + end)])
    assert result == (None if end >= start else "CoverageGap.end_ns")


@_SETTINGS
@given(data_type=st.sampled_from([*GAP_KINDS, "gap", "oi", "funding", "liquidations", "open_interest_x"]))
def test_gap_data_type_is_a_stored_kind_name(data_type: str) -> None:
    result = alike(COVERAGE_GAP, [gap(data_type=data_type)])
    assert result == (None if data_type in GAP_KINDS else "CoverageGap.data_type")


def test_gap_kinds_are_the_stored_kinds_but_gaps() -> None:
    assert set(GAP_KINDS) == set(KINDS) - {"gap"}
    assert {k: v.name for k, v in CLI_KINDS.items()} == {
        "oi": "open_interest",
        "funding": "funding_rate",
        "liquidations": "liquidation",
    }


# --- venue / instrument pairing ----------------------------------------------------------------------------


@_SETTINGS
@given(
    exchange=st.sampled_from([*VENUES, "kraken"]),
    venue=st.sampled_from([*(v.nautilus_venue for v in VENUES.values()), "KRAKEN"]),
)
def test_venue_pairing_rule_is_the_models(exchange: str, venue: str) -> None:
    row = {
        "exchange": exchange,
        "instrument_id": f"BTCUSDT-PERP.{venue}",
        "ts_event": T0,
        "ts_init": T0,
        "open_interest": 1.0,
    }
    result = alike(OPEN_INTEREST, [row])
    if exchange not in VENUES:
        assert result == "OpenInterest.exchange"
    elif VENUES[exchange].nautilus_venue != venue:
        assert result == "OpenInterest.instrument_id"
    else:
        assert result is None


# --- one check per table -----------------------------------------------------------------------------------


def test_a_conformed_table_is_not_checked_again() -> None:
    table = conform_table(LIQUIDATION, pa.table({c: [v] for c, v in liquidation().items()}))
    assert conform_table(LIQUIDATION, table) is table
    with pytest.raises(RecordError, match="missing columns"):
        conform_table(COVERAGE_GAP, table)  # checked as a liquidation only
