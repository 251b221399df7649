"""What a stored settled-funding row means once NautilusTrader reads it (needs the `nautilus` extra).

A row of `funding_rate_update/` is the rate SETTLED at `ts_event`. NautilusTrader's live adapters (Bybit
tickers, OKX funding-rate channel: nautilus_trader/adapters/bybit/data.py, okx/data.py) put the CURRENT
rate in the same type with `next_funding_ns` the time it will be charged. Our decoder sets
`next_funding_ns = ts_event`, so both read "rate r is charged at next_funding_ns" (docs/catalog.md).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("nautilus_trader")

from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from ccxt_pipeline import nautilus as nt
from ccxt_pipeline.catalog import FUNDING_RATE, CatalogWriter
from ccxt_pipeline.models import FundingRate
from ccxt_pipeline.timeutil import NS_PER_HOUR, NS_PER_MS

pytestmark = pytest.mark.nautilus

T0 = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
BTC = "BTCUSDT-PERP.BINANCE"
HL = "BTC-USD-PERP.HYPERLIQUID"


def settled(iid: str, exchange: str, ts: int, rate: float, interval: int | None) -> FundingRate:
    return FundingRate(
        exchange=exchange, instrument_id=iid, ts_event=ts, ts_init=ts, rate=rate, interval_minutes=interval
    )


def test_settled_rows_read_as_charged_at_their_own_funding_time(tmp_path: Path) -> None:
    rows = [
        settled(BTC, "binance", T0 + k * 8 * NS_PER_HOUR, rate, 480)
        for k, rate in enumerate((0.0001, -0.000025, 0.0003))
    ]
    # Hyperliquid's settlement times run a few ms past the hour (its docs: "time":1683849600076)
    rows.append(settled(HL, "hyperliquid", 1683849600076 * NS_PER_MS, 0.0000125, 60))
    CatalogWriter(tmp_path).write(rows)

    got = ParquetDataCatalog(str(tmp_path)).query(FundingRateUpdate)
    by_id = {(u.instrument_id.value, u.ts_event): u for u in got}
    assert len(got) == len(rows)
    for r in rows:
        u = by_id[(r.instrument_id, r.ts_event)]
        assert isinstance(u, FundingRateUpdate)
        assert u.rate == Decimal(repr(r.rate))
        assert u.next_funding_ns == u.ts_event == r.ts_event  # the rate charged at that funding time
        assert u.ts_init == r.ts_init


def test_a_live_rate_for_a_later_funding_time_is_refused(tmp_path: Path) -> None:
    """A live adapter's update (current rate, charged at a later `next_funding_ns`) is no settlement:
    writing it into the settled series would make it read as one."""
    nt.register_funding_rate_codec()
    catalog = ParquetDataCatalog(str(tmp_path))
    iid = InstrumentId.from_str(BTC)
    live = FundingRateUpdate(iid, Decimal("0.0001"), T0 + 5, T0 + 5, T0 + 8 * NS_PER_HOUR)
    with pytest.raises(ValueError, match="not a settled one"):
        catalog.write_data([live])
    assert CatalogWriter(tmp_path).query_records(FUNDING_RATE) == []


def test_settled_update_written_by_nautilus_reads_back_the_same(tmp_path: Path) -> None:
    nt.register_funding_rate_codec()
    catalog = ParquetDataCatalog(str(tmp_path))
    iid = InstrumentId.from_str(BTC)
    update = FundingRateUpdate(iid, Decimal("0.0001"), T0, T0, T0)
    catalog.write_data([update])
    (back,) = catalog.query(FundingRateUpdate)
    assert (back.rate, back.ts_event, back.next_funding_ns) == (Decimal("0.0001"), T0, T0)
