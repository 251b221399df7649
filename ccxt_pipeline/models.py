"""The records ccxt-pipeline keeps, validated before anything is stored.

Every record carries the exchange (our venue name, `binance`), the NautilusTrader instrument id
(`BTCUSDT-PERP.BINANCE`) and two UTC nanosecond timestamps:

- `ts_event`: when it happened, by the exchange's clock;
- `ts_init`: when we first knew it: `ts_event` for fetched history, the receipt time for live data.

Units (a wrong unit is a wrong backtest, so they are fixed here and documented in docs/catalog.md):

- open interest in base-asset units (BTC for BTCUSDT), its value in the quote currency (USDT);
- liquidation quantity in base units (contracts x contract size), price in quote per base, and
  notional = price x quantity in the quote currency;
- a liquidation's side is the side of the position that was liquidated (`LONG`: a long was closed).

Funding comes in two kinds that never share a series: :class:`FundingRate` is a settled rate (what was
actually paid at `ts_event`), :class:`FundingRateEstimate` is the exchange's live current/predicted rate.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ccxt_pipeline.errors import RecordError
from ccxt_pipeline.timeutil import MAX_TS_NS, MIN_TS_NS
from ccxt_pipeline.venues import VENUES

if TYPE_CHECKING:  # the table of kinds (catalog.schema) imports this module
    from ccxt_pipeline.catalog.schema import DataKind

__all__ = [
    "CoverageGap",
    "FundingRate",
    "FundingRateEstimate",
    "Liquidation",
    "OpenInterest",
    "Record",
    "Side",
    "validate_record",
]

INSTRUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Z0-9_]+$"
"""`SYMBOL.VENUE`; safe as a folder name (no `/`, no leading dot)."""
TimestampNs = Annotated[int, Field(strict=True, ge=MIN_TS_NS, le=MAX_TS_NS)]
"""UTC nanoseconds, 2009..2100: a millisecond value passed by mistake fails loudly."""
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
FiniteFloat = Annotated[float, Field()]
IntervalMinutes = Annotated[int, Field(strict=True, gt=0, le=7 * 24 * 60)]


class Side(StrEnum):
    """The side of the position that was liquidated."""

    LONG = "LONG"
    SHORT = "SHORT"


class Record(BaseModel):
    """Fields every record carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    exchange: str
    instrument_id: str = Field(pattern=INSTRUMENT_ID_PATTERN)
    ts_event: TimestampNs
    ts_init: TimestampNs

    # Field validators rather than model validators, so that an error names its field (`X.instrument_id:`),
    # as `catalog.schema.conform_table` does for the same rule on Arrow input.
    @field_validator("exchange")
    @classmethod
    def _venue_known(cls, exchange: str) -> str:
        if exchange not in VENUES:
            raise ValueError(f"unknown exchange {exchange!r} (known: {', '.join(VENUES)})")
        return exchange

    @field_validator("instrument_id")
    @classmethod
    def _venue_matches(cls, instrument_id: str, info: ValidationInfo) -> str:
        venue = VENUES.get(info.data.get("exchange", ""))
        if venue is not None and instrument_id.rsplit(".", 1)[1] != venue.nautilus_venue:
            raise ValueError(
                f"instrument_id {instrument_id!r} is not on {info.data['exchange']} (venue {venue.nautilus_venue})"
            )
        return instrument_id


class OpenInterest(Record):
    """Open interest at `ts_event`: base-asset units, and its value in the quote currency (None if unknown)."""

    open_interest: NonNegative
    open_interest_value: NonNegative | None = None


class FundingRate(Record):
    """A settled funding rate: the rate charged at the funding time `ts_event`.

    `rate` is a fraction per interval (0.0001 = 0.01 %); longs pay shorts when it is positive.
    `interval_minutes` is the funding interval that ended at `ts_event` (480 for 8h), None if unknown.
    """

    rate: FiniteFloat
    interval_minutes: IntervalMinutes | None = None


class FundingRateEstimate(Record):
    """The exchange's live (current or predicted) funding rate for the interval now running.

    Not a settled rate: it changes until `next_funding_ns`, when the settled value is known.
    """

    rate: FiniteFloat
    next_funding_ns: TimestampNs | None = None
    interval_minutes: IntervalMinutes | None = None
    mark_price: Positive | None = None
    index_price: Positive | None = None


class Liquidation(Record):
    """A forced close of a position: `side` is the liquidated position's side.

    `notional` = `price` x `quantity` in the quote currency; it is computed when not given, and a given
    value that disagrees by more than one part in a million is rejected (a unit error upstream).
    """

    side: Side
    quantity: Positive
    price: Positive
    notional: Positive

    @model_validator(mode="before")
    @classmethod
    def _fill_notional(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("notional") is None:
            try:
                return {**data, "notional": float(data["price"]) * float(data["quantity"])}
            except (KeyError, TypeError, ValueError):
                return data  # the field validators report what is wrong
        return data

    @field_validator("notional")
    @classmethod
    def _notional_consistent(cls, notional: float, info: ValidationInfo) -> float:
        price, quantity = info.data.get("price"), info.data.get("quantity")
        if price is None or quantity is None:
            return notional  # their own errors are reported
        expected = price * quantity
        if not math.isclose(notional, expected, rel_tol=1e-6):
            raise ValueError(f"notional {notional!r} != price x quantity ({expected!r})")
        return notional


class CoverageGap(Record):
    """A time range of `data_type` (a stored kind's name, `catalog.schema.GAP_KINDS`) the catalog does not hold and could not fill: `[ts_event, end_ns]`.

    `reason` says why: the exchange keeps no older history, it returned nothing for the range, the stream
    was disconnected. `ts_init = ts_event` (the gap's start), so re-detecting the same gap adds nothing.
    """

    data_type: str = Field(pattern=r"^[a-z_]+$")
    end_ns: TimestampNs
    reason: str = Field(min_length=1, max_length=200)

    @classmethod
    def between(
        cls, kind: DataKind, exchange: str, instrument_id: str, start: int, end: int, reason: str
    ) -> CoverageGap:
        """The gap `[start, end]` in the series of `kind` (stored by its name), stamped at its start.

        The one way code builds a gap: the kind is a `catalog.schema` constant, never a spelled-out string.
        """
        return cls(
            exchange=exchange,
            instrument_id=instrument_id,
            data_type=kind.name,
            ts_event=start,
            ts_init=start,
            end_ns=end,
            reason=reason,
        )

    @field_validator("data_type")
    @classmethod
    def _known_kind(cls, data_type: str) -> str:
        from ccxt_pipeline.catalog.schema import GAP_KINDS  # the table of kinds imports this module

        if data_type not in GAP_KINDS:
            raise ValueError(f"unknown data type {data_type!r} (known: {', '.join(GAP_KINDS)})")
        return data_type

    @field_validator("end_ns")
    @classmethod
    def _ordered(cls, end_ns: int, info: ValidationInfo) -> int:
        start = info.data.get("ts_event")
        if start is not None and end_ns < start:
            raise ValueError(f"gap ends ({end_ns}) before it starts ({start})")
        return end_ns


R = TypeVar("R", bound=Record)


def validate_record(model: type[R], data: dict[str, Any]) -> R:
    """Build `model` from `data`, or raise RecordError: one line naming the field and the raw value."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecordError(describe_validation_error(model.__name__, exc)) from exc


def describe_validation_error(model_name: str, exc: ValidationError) -> str:
    """The first error of `exc` as one line: `Model.field: message (got raw)`, plus how many more."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in first["loc"])
    where = f"{model_name}.{loc}" if loc else model_name
    got = f" (got {first['input']!r})" if loc else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = str(first["msg"]).replace("Value error, ", "")
    return f"{where}: {msg}{got}{more}"
