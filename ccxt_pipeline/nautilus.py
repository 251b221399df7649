"""NautilusTrader classes that read the catalog's files as they are (needs the `nautilus` extra).

    pip install 'ccxt-pipeline[nautilus]'

- :class:`OpenInterest`, :class:`Liquidation` and :class:`FundingRateEstimate` are `@customdataclass`es
  whose fields are exactly the files' columns (`custom_open_interest/`, `custom_liquidation/`,
  `custom_funding_rate_estimate/`); NautilusTrader decodes each row as `cls(**row)`.
- Settled funding is NautilusTrader's own `FundingRateUpdate` (`funding_rate_update/`). Version 1.221 ships
  no Arrow codec for it; importing this module registers ours (:func:`register_funding_rate_codec`, which
  is idempotent, does it explicitly). The decoder ignores our extra columns (`exchange`,
  `interval_minutes`). A stored row is the rate SETTLED at `ts_event`; NautilusTrader's live adapters put
  the CURRENT rate in the same type, with `next_funding_ns` the time it will be charged. So that a row
  reads the same way, the decoder sets `next_funding_ns = ts_event` (rate r is charged at next_funding_ns,
  which is the row's own funding time), and the encoder refuses an update whose `next_funding_ns` is
  another time (a live estimate is no settlement: it belongs in `custom_funding_rate_estimate/`).

Timestamps are int64 nanoseconds, as `@customdataclass` declares them. A null in a file (an unknown
value) arrives as `None`.
"""

# No `from __future__ import annotations` here: @customdataclass reads the real annotation objects.

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

try:
    from nautilus_trader.core.data import Data
    from nautilus_trader.model.custom import customdataclass
    from nautilus_trader.model.data import FundingRateUpdate
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.serialization.arrow.serializer import register_arrow
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "ccxt_pipeline.nautilus needs NautilusTrader: pip install 'ccxt-pipeline[nautilus]'"
    ) from exc

from ccxt_pipeline.catalog.schema import FUNDING_RATE
from ccxt_pipeline.venues import venue_for_nautilus

__all__ = [
    "CLIENT_ID",
    "CUSTOM_CLASSES",
    "CoverageGap",
    "FundingRateEstimate",
    "FundingRateUpdate",
    "Liquidation",
    "OpenInterest",
    "data_configs",
    "register_funding_rate_codec",
    "stored_instruments",
]

_DEFAULT_ID = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")


@customdataclass
class OpenInterest(Data):
    """Open interest: `open_interest` in base units, `open_interest_value` in quote currency (or None)."""

    exchange: str = ""
    instrument_id: InstrumentId = _DEFAULT_ID
    open_interest: float = 0.0
    open_interest_value: float = 0.0


@customdataclass
class FundingRateEstimate(Data):
    """The exchange's live funding-rate estimate for the running interval (not a settled rate)."""

    exchange: str = ""
    instrument_id: InstrumentId = _DEFAULT_ID
    rate: float = 0.0
    next_funding_ns: int = 0
    interval_minutes: int = 0
    mark_price: float = 0.0
    index_price: float = 0.0


@customdataclass
class Liquidation(Data):
    """A liquidation: `side` is the liquidated position's side (`LONG`/`SHORT`); quantity in base units."""

    exchange: str = ""
    instrument_id: InstrumentId = _DEFAULT_ID
    side: str = ""
    quantity: float = 0.0
    price: float = 0.0
    notional: float = 0.0


@customdataclass
class CoverageGap(Data):
    """A range `[ts_event, end_ns]` of `data_type` the catalog does not hold, and why (`reason`)."""

    exchange: str = ""
    instrument_id: InstrumentId = _DEFAULT_ID
    data_type: str = ""
    end_ns: int = 0
    reason: str = ""


def _encode_funding(update: Any) -> pa.RecordBatch:
    if update.next_funding_ns not in (None, update.ts_event):
        raise ValueError(
            f"FundingRateUpdate {update.instrument_id} at {update.ts_event} has next_funding_ns "
            f"{update.next_funding_ns}: a live rate for a later funding time, not a settled one; "
            "funding_rate_update/ holds settled rates only (next_funding_ns None or = ts_event)"
        )
    iid = update.instrument_id.value
    venue = venue_for_nautilus(iid.rsplit(".", 1)[-1])
    row = {
        "exchange": venue.name if venue else iid.rsplit(".", 1)[-1].lower(),
        "instrument_id": iid,
        "rate": float(update.rate),
        "interval_minutes": None,
        "ts_event": update.ts_event,
        "ts_init": update.ts_init,
    }
    return pa.RecordBatch.from_pylist([row], schema=FUNDING_RATE.schema)


def _decode_funding(table: pa.Table | pa.RecordBatch) -> list[Any]:
    """Each row as the rate charged at its own funding time: `next_funding_ns = ts_event`."""
    cols = table.to_pydict()
    ids: dict[str, Any] = {}
    out = []
    for iid, rate, ts_event, ts_init in zip(
        cols["instrument_id"], cols["rate"], cols["ts_event"], cols["ts_init"], strict=True
    ):
        instrument_id = ids.get(iid) or ids.setdefault(iid, InstrumentId.from_str(iid))
        out.append(FundingRateUpdate(instrument_id, Decimal(repr(rate)), ts_event, ts_init, ts_event))
    return out


CLIENT_ID = "CCXT"
"""The data client id custom data is replayed under (BacktestDataConfig needs one for custom data)."""

CUSTOM_CLASSES = (OpenInterest, Liquidation, FundingRateEstimate)


def stored_instruments(catalog: Path | str) -> list[str]:
    """Instrument ids that have an instrument definition in the catalog."""
    folder = Path(catalog) / "data" / "crypto_perpetual"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def data_configs(catalog: Path | str) -> list[Any]:
    """A `BacktestDataConfig` for every type and instrument the catalog holds (with a definition):
    open interest, liquidations and funding estimates as custom data, settled funding as
    `FundingRateUpdate`. One-shot loading (NautilusTrader 1.221 cannot stream these types in chunks)."""
    from nautilus_trader.config import BacktestDataConfig

    from ccxt_pipeline.catalog import (
        FUNDING_ESTIMATE,
        FUNDING_RATE,
        LIQUIDATION,
        OPEN_INTEREST,
        CatalogReader,
    )

    reader = CatalogReader(catalog)
    defined = set(stored_instruments(catalog))
    paths = {
        OPEN_INTEREST.name: f"{__name__}:OpenInterest",
        LIQUIDATION.name: f"{__name__}:Liquidation",
        FUNDING_ESTIMATE.name: f"{__name__}:FundingRateEstimate",
        FUNDING_RATE.name: "nautilus_trader.model.data:FundingRateUpdate",
    }
    configs = []
    for kind in (OPEN_INTEREST, LIQUIDATION, FUNDING_ESTIMATE, FUNDING_RATE):
        for iid in reader.instruments(kind):
            if iid in defined:
                configs.append(
                    BacktestDataConfig(
                        catalog_path=str(catalog),
                        data_cls=paths[kind.name],
                        client_id=CLIENT_ID,
                        instrument_id=iid,
                    )
                )
    return configs


def register_funding_rate_codec() -> None:
    """Teach NautilusTrader 1.221 to read and write `FundingRateUpdate` in our file format (idempotent)."""
    register_arrow(FundingRateUpdate, FUNDING_RATE.schema, _encode_funding, _decode_funding)


register_funding_rate_codec()
