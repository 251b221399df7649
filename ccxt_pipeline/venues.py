"""Facts about each supported exchange, kept as data.

One row per exchange: the ccxt class, the NautilusTrader venue, how NautilusTrader's own adapter spells a
linear perpetual's id there, and the constructor options ccxt needs. Code that must behave differently per
exchange reads this table instead of branching on names.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ccxt_pipeline.errors import UnknownExchangeError


@dataclass(frozen=True)
class OpenInterestFields:
    """Where a raw payload keeps open interest as ONE side of the market (longs, which equal shorts): the
    figure Binance reports (`sumOpenInterest`, `openInterest`). Where a payload lacks it, `fallback_*` fields
    times `fallback_scale` stand in: the exchange's both-sides figures, halved (Bybit's `openInterest` where
    `singleOpenInterest` is missing; Hyperliquid's `openInterest` always, it has no one-side field)."""

    amount: str | None
    """Open interest in base units, one side; None: the payload has no such field (only the fallback)."""
    value: str | None = None
    """The same in quote currency, if the payload gives it."""
    fallback_amount: str | None = None
    """Used where `amount` is missing or empty, multiplied by `fallback_scale`."""
    fallback_value: str | None = None
    """Used where `value` is missing or empty, multiplied by `fallback_scale`."""
    fallback_scale: float = 1.0


@dataclass(frozen=True)
class MarkKline:
    """An exchange's mark-price candles, called through ccxt's implicit API, whose OPEN at `t` prices an
    open-interest point stamped `t` where the history endpoint gives no value in quote currency.

    Each row is a list, newest first: `[startTime, open, high, low, close]`, strings (Bybit
    https://bybit-exchange.github.io/docs/v5/market/mark-kline)."""

    method: str
    """ccxt's implicit method (`public_get_v5_market_mark_price_kline`)."""
    interval_names: dict[str, str]
    """Our period names (`5m`) to the exchange's candle intervals (`5`)."""
    limit: int
    """Most candles one request returns."""
    interval_param: str = "interval"
    start_param: str = "start"
    end_param: str = "end"
    rows_path: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    time_index: int = 0
    """Position of the candle's start time (ms) in a row."""
    open_index: int = 1
    """Position of the open price in a row."""


@dataclass(frozen=True)
class RawHistory:
    """An open-interest history endpoint called through ccxt's implicit API and parsed by us, column by
    column: ccxt's unified parsing costs ~20 us a row, which for months of 5-minute points is most of a
    backfill's time. ccxt still builds, signs, rate-limits and checks every request."""

    method: str
    """ccxt's implicit method (`fapidata_get_openinteresthist`)."""
    period_param: str
    period_names: dict[str, str]
    """Our period names (`5m`) to the exchange's (`5min`)."""
    fields: OpenInterestFields
    """Where each row keeps one side's open interest (base units) and its value (quote), if it has one."""
    rows_path: tuple[str, ...] = ()
    """Where the list of rows sits in the answer (`("result", "list")`)."""
    params: dict[str, str] = field(default_factory=dict)
    time_field: str = "timestamp"
    value_from_mark: MarkKline | None = None
    """Where rows carry no value in quote currency: the mark-price candles that price them (value = one
    side's amount x the open of the candle starting at the row's time). None: the rows' own value field."""


@dataclass(frozen=True)
class LiquidationWire:
    """How an exchange's public liquidation websocket messages read (the raw payload ccxt.pro receives)."""

    items_key: str
    """Key of the liquidation item(s) in a message: one dict, or a list of dicts."""
    long_liquidated: str
    """The wire `side` value that means a LONG position was liquidated."""
    short_liquidated: str
    quantity_field: str
    """Quantity in contracts (x contract size = base units): everything the item liquidated."""
    price_field: str
    """The price stored; what it means differs by exchange (docs/catalog.md, liquidations)."""
    all_market: bool
    """Whether one subscription can cover every symbol (`--all`)."""
    source: str
    """The exchange's documentation of the stream and of its `side`."""
    symbol_field: str = "s"
    side_field: str = "S"
    time_field: str = "T"
    status_field: str | None = None
    """The item's order status, if the exchange sends one (Binance `X`); None: every item is a liquidation."""
    filled_statuses: tuple[str, ...] = ()
    """Statuses whose quantity is final; items in any other status (or that filled nothing) are not stored."""


@dataclass(frozen=True)
class RateLimit:
    """One documented REST limit of an exchange: at most `weight` per `seconds`, per IP."""

    name: str
    weight: float
    seconds: float
    source: str
    """Where the exchange documents it."""
    counted: Literal["window", "bucket"] = "window"
    """How the pacer counts it (`exchanges/pacing.py`). `window`: a sliding window of `seconds`, never more
    than `weight` admitted in any `seconds`, right however the exchange counts (fixed intervals or "any
    window"). `bucket`: a token bucket of `weight` tokens refilled at `weight / seconds` a second, starting
    full: up to twice `weight` in one period. Only where the exchange (or the implementation we trust)
    counts that way."""


@dataclass(frozen=True)
class EndpointWeight:
    """What one REST endpoint draws from the exchange's limits, as documented (endpoints not listed draw
    `RestLimits.default`)."""

    path: str
    """ccxt's implicit-API path of the endpoint (`openInterestHist`, `v5/market/open-interest`, `info`)."""
    weights: Mapping[str, float]
    """Limit name -> what one request draws from it."""
    body_type: str | None = None
    """Hyperliquid's `POST /info`: the request's `type` (`fundingHistory`); None: any request to `path`."""
    by_limit: tuple[tuple[float, float], ...] = ()
    """Weight by the request's `limit` parameter, `(largest limit, weight)` ascending, in place of `weights`'
    values (Binance klines); `default_limit` stands in when the request sends none."""
    default_limit: int = 0
    per_items: int = 0
    """Hyperliquid: one more weight on each of `weights`' limits per this many items in the answer (a part
    counts whole); 0: none."""
    source: str = ""


@dataclass(frozen=True)
class RestLimits:
    """An exchange's documented REST limits, and what each endpoint draws from them. Every request of the
    exchange in one process is paced by them (`exchanges/pacing.py`)."""

    limits: tuple[RateLimit, ...]
    default: Mapping[str, float]
    """What any endpoint not in `endpoints` draws."""
    endpoints: tuple[EndpointWeight, ...] = ()

    def weights(self, path: str, params: Mapping[str, Any]) -> dict[str, float]:
        """Pure: what one request to `path` with `params` draws from each limit, before its answer."""
        endpoint = self.endpoint(path, params)
        if endpoint is None:
            return dict(self.default)
        if not endpoint.by_limit:
            return dict(endpoint.weights)
        limit = float(params.get("limit") or endpoint.default_limit)
        weight = next((w for most, w in endpoint.by_limit if limit <= most), endpoint.by_limit[-1][1])
        return {name: weight for name in endpoint.weights}

    def extra(self, path: str, params: Mapping[str, Any], answer: Any) -> dict[str, float]:
        """Pure: what the answer adds to a request's weight (Hyperliquid: per item returned)."""
        endpoint = self.endpoint(path, params)
        if endpoint is None or not endpoint.per_items or not isinstance(answer, list) or not answer:
            return {}
        more = float(-(-len(answer) // endpoint.per_items))
        return {name: more for name in endpoint.weights}

    def endpoint(self, path: str, params: Mapping[str, Any]) -> EndpointWeight | None:
        body_type = params.get("type") if isinstance(params, Mapping) else None
        for e in self.endpoints:
            if e.path == path and (e.body_type is None or e.body_type == body_type):
                return e
        return None


@dataclass(frozen=True)
class Venue:
    name: str
    """Our name for the exchange, as users type it (`binance`)."""
    ccxt_id: str
    """The ccxt class (`binanceusdm`)."""
    nautilus_venue: str
    """The NautilusTrader venue suffix (`BINANCE`)."""
    id_template: str
    """The Nautilus symbol of a linear perpetual when no markets are loaded; `{base}` and `{quote}` are
    filled in. With markets, `market_id_template` (from the exchange's own market id) wins."""
    market_id_template: str = "{id}"
    """The Nautilus symbol from the exchange's raw market id (`{id}`), as NautilusTrader's adapter builds it."""
    market_id_key: str = "id"
    """The key of ccxt's market holding that raw id (Hyperliquid: `baseName`, the coin; ccxt's `id` there is
    the asset index)."""
    quote_id_templates: dict[str, str] = field(default_factory=dict)
    """Quote-specific fallbacks of `id_template` (Bybit's USDC perpetuals are `BTCPERP`)."""
    upper_symbols: bool = False
    """Whether NautilusTrader upper-cases the raw id (its BinanceSymbol and BybitSymbol do)."""
    market_base_key: str = "baseId"
    """The key of ccxt's market holding the exchange's own base code, NautilusTrader's base currency
    (Hyperliquid: `baseName`, `kPEPE`, where ccxt's base is `KPEPE`)."""
    raw_symbol_is_id: bool = True
    """The definition's `raw_symbol`: the raw market id, or (Hyperliquid) the Nautilus symbol itself."""
    nautilus_quote: str | None = None
    """The quote currency NautilusTrader gives the instrument where it differs from ccxt's (Hyperliquid: USD)."""
    settle: str | None = None
    """The one settlement currency of the exchange's perpetuals, where it has only one (Hyperliquid: USDC)."""
    aliases: tuple[str, ...] = ()
    ccxt_options: dict[str, Any] = field(default_factory=dict)
    """Constructor config every client of this exchange gets, before the user's own `ccxt` overrides."""
    current_oi: Literal["open_interest", "ticker", "open_interests"] = "open_interest"
    """Where live open interest comes from: `fetch_open_interest`, the ticker (`ticker_oi` of its raw
    `info`), or `fetch_open_interests` (one call for the whole universe)."""
    ticker_oi: OpenInterestFields = OpenInterestFields("openInterest", "openInterestValue")
    """The raw ticker fields holding one side's open interest, where `current_oi` is `ticker`."""
    current_oi_raw: OpenInterestFields | None = None
    """Where `current_oi` is `open_interest(s)`: the raw fields (ccxt's `info`) of each answer holding open
    interest, where ccxt's unified `openInterestAmount` is not one side (Hyperliquid); None: ccxt's unified
    `openInterestAmount`/`openInterestValue`. A value still missing is amount x mark price."""
    oi_history_periods: tuple[str, ...] = ()
    """Periods `fetch_open_interest_history` serves; empty: the exchange keeps no history."""
    oi_history_raw: RawHistory | None = None
    """The raw endpoint behind `fetch_open_interest_history`, for the bulk path; None: use ccxt's method."""
    oi_history_limit: int = 0
    """Most rows one open-interest history request returns."""
    oi_history_days: int | None = None
    """How far back the exchange serves open-interest history, if limited."""
    funding_history_limit: int = 0
    """Most rows one funding history request returns."""
    funding_interval_minutes: int | None = None
    """A funding interval every symbol shares (Hyperliquid: 60), else None."""
    default_funding_interval_minutes: int | None = None
    """The interval of a symbol the exchange's interval list leaves out (Binance lists only non-8h ones)."""
    liquidations: LiquidationWire | None = None
    """The public market-wide liquidation stream, if the exchange has one."""
    no_liquidations_reason: str = "offers no public market-wide liquidation stream"
    market_funding_interval_field: str | None = None
    """The key of ccxt's `market['info']` holding the symbol's current funding interval in minutes."""
    max_concurrency: int = 4
    """HTTP requests in flight at once to this exchange, across every client of it in one process."""
    rest_limits: RestLimits | None = None
    """The documented REST limits every request of this exchange is paced by (`exchanges/pacing.py`); None:
    none documented here, ccxt's own rate limiter paces it."""


# Bybit v5 (tickers and /v5/market/open-interest): one side, else half of both sides. History rows carry
# no value field, so the value fields find nothing there (`RawHistory.value_from_mark` prices them).
BYBIT_SINGLE_SIDE = OpenInterestFields(
    amount="singleOpenInterest",
    value="singleOpenInterestValue",
    fallback_amount="openInterest",
    fallback_value="openInterestValue",
    fallback_scale=0.5,
)

# Hyperliquid asset contexts: only the both-sides `openInterest` (coins), halved; no value field (x `markPx`).
HYPERLIQUID_BOTH_SIDES = OpenInterestFields(amount=None, fallback_amount="openInterest", fallback_scale=0.5)

# --- documented REST limits (docs/exchanges.md, "Rate limits") ---------------------------------------------

_BINANCE_DOCS = "https://developers.binance.com/docs/derivatives/usds-margined-futures"
_BINANCE_KLINE_WEIGHT = ((99.0, 1.0), (499.0, 2.0), (1000.0, 5.0), (float("inf"), 10.0))
"""Klines' weight "based on parameter LIMIT": [1,100) 1, [100,500) 2, [500,1000] 5, > 1000 10."""
BINANCE_LIMITS = RestLimits(
    limits=(
        # exchangeInfo's `rateLimits`: REQUEST_WEIGHT, interval MINUTE, intervalNum 1, limit 2400 (the docs'
        # response example; "IP Limits" in General Info). A 2022 recording (tests/fixtures/nautilus/binance/
        # exchangeInfo.json) says 6000: the documented 2400 is the safe side. Binance counts each limit per
        # interval (`interval`, `intervalNum`): all three are windows, the default `counted`.
        RateLimit("weight", 2400, 60, f"{_BINANCE_DOCS}/market-data/rest-api/Exchange-Information"),
        # "IP rate limit 1000 requests/5min" (Open Interest Statistics, and the other /futures/data/ pages).
        RateLimit(
            "futures_data", 1000, 300, f"{_BINANCE_DOCS}/market-data/rest-api/Open-Interest-Statistics"
        ),
        # fundingRate: "share 500/5min/IP rate limit with GET /fapi/v1/fundingInfo"; fundingInfo: the same.
        RateLimit("funding", 500, 300, f"{_BINANCE_DOCS}/market-data/rest-api/Get-Funding-Rate-History"),
    ),
    # exchangeInfo, premiumIndex, openInterest: "Request Weight 1" (Exchange-Information, Mark-Price,
    # Open-Interest pages).
    default={"weight": 1},
    endpoints=(
        # "Request Weight 0", and the 1000/5min of its own.
        EndpointWeight(
            "openInterestHist",
            {"futures_data": 1},
            source=f"{_BINANCE_DOCS}/market-data/rest-api/Open-Interest-Statistics",
        ),
        # Its weight is the shared 500/5min (no REQUEST_WEIGHT given); fundingInfo: "0, share 500/5min/IP".
        EndpointWeight(
            "fundingRate",
            {"funding": 1},
            source=f"{_BINANCE_DOCS}/market-data/rest-api/Get-Funding-Rate-History",
        ),
        EndpointWeight(
            "fundingInfo",
            {"funding": 1},
            source=f"{_BINANCE_DOCS}/market-data/rest-api/Get-Funding-Rate-Info",
        ),
        # `limit` "Default 500; max 1500".
        EndpointWeight(
            "markPriceKlines",
            {"weight": 1},
            by_limit=_BINANCE_KLINE_WEIGHT,
            default_limit=500,
            source=f"{_BINANCE_DOCS}/market-data/rest-api/Mark-Price-Kline-Candlestick-Data",
        ),
        EndpointWeight(
            "klines",
            {"weight": 1},
            by_limit=_BINANCE_KLINE_WEIGHT,
            default_limit=500,
            source=f"{_BINANCE_DOCS}/market-data/rest-api/Kline-Candlestick-Data",
        ),
    ),
)

# "You are allowed to send 600 requests within a 5-second window per IP by default. This limit applies to all
# traffic directed to api.bybit.com"; going over is HTTP 403 "access too frequent" and a ban of at least 10
# minutes. Every request counts one. "In any 5-second window": a window, the default `counted`.
BYBIT_LIMITS = RestLimits(
    limits=(RateLimit("ip", 600, 5, "https://bybit-exchange.github.io/docs/v5/rate-limit"),),
    default={"ip": 1},
)

_HYPERLIQUID_DOCS = (
    "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits"
)
# "REST requests share an aggregated weight limit of 1200 per minute." info: weight 2 for l2Book, allMids,
# clearinghouseState, orderStatus, spotClearinghouseState, exchangeStatus; 60 for userRole; "All other
# documented info requests have weight 20"; fundingHistory (among others) "an additional rate limit weight per
# 20 items returned in the response", candleSnapshot per 60 items. Exchange actions weigh 1 (unbatched).
HYPERLIQUID_LIMITS = RestLimits(
    # Hyperliquid does not document how the minute is counted. NautilusTrader's own adapter, the
    # implementation we trust, counts it as a token bucket of 1200 refilled at 1200 / 60 a second, starting
    # full, the answer's per-items weight debited after the response (nautechsystems/nautilus_trader,
    # crates/adapters/hyperliquid/src/http/rate_limits.rs, `WeightedLimiter::per_minute`, `debit_extra`).
    # It clamps the tokens at zero after that debit; ours may go below zero (the safe side).
    limits=(RateLimit("weight", 1200, 60, _HYPERLIQUID_DOCS, counted="bucket"),),
    default={"weight": 20},
    endpoints=(
        *(
            EndpointWeight("info", {"weight": 2}, body_type=t, source=_HYPERLIQUID_DOCS)
            for t in (
                "l2Book",
                "allMids",
                "clearinghouseState",
                "orderStatus",
                "spotClearinghouseState",
                "exchangeStatus",
            )
        ),
        EndpointWeight("info", {"weight": 60}, body_type="userRole", source=_HYPERLIQUID_DOCS),
        EndpointWeight(
            "info", {"weight": 20}, body_type="fundingHistory", per_items=20, source=_HYPERLIQUID_DOCS
        ),
        EndpointWeight(
            "info", {"weight": 20}, body_type="candleSnapshot", per_items=60, source=_HYPERLIQUID_DOCS
        ),
        EndpointWeight("exchange", {"weight": 1}, source=_HYPERLIQUID_DOCS),
    ),
)

NO_CCXT_LIMITER = {"enableRateLimit": False}
"""ccxt's own limiter off where `rest_limits` paces every request (docs/exchanges.md, "Rate limits"): it
cannot express these limits, and with its declared costs it paces below them."""

VENUES: dict[str, Venue] = {
    v.name: v
    for v in (
        Venue(
            name="binance",
            ccxt_id="binanceusdm",
            nautilus_venue="BINANCE",
            # nautilus_trader/adapters/binance/common/symbol.py BinanceSymbol.parse_as_nautilus: upper-cased
            # exchange symbol + "-PERP" (futures/providers.py _parse_instrument).
            id_template="{base}{quote}-PERP",
            market_id_template="{id}-PERP",
            upper_symbols=True,
            aliases=("binanceusdm", "binance-usdm"),
            # No currency list: with an API key ccxt fetches it from the private sapi (capital/config/getall,
            # margin/allPairs; ccxt/async_support/binance.py fetch_currencies), which market data never needs.
            ccxt_options={
                "options": {"defaultType": "swap"},
                "has": {"fetchCurrencies": False},
                **NO_CCXT_LIMITER,
            },
            oi_history_periods=("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"),
            # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics
            oi_history_raw=RawHistory(
                method="fapidata_get_openinteresthist",
                period_param="period",
                period_names={p: p for p in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")},
                fields=OpenInterestFields("sumOpenInterest", "sumOpenInterestValue"),
            ),
            oi_history_limit=500,
            oi_history_days=30,
            funding_history_limit=1000,
            default_funding_interval_minutes=480,
            # forceOrder: `S` is the side of the liquidation ORDER, so SELL closes a long. The quantity is
            # `z` ("Order Filled Accumulated Quantity"), not `l` ("Order Last Filled Quantity", what ccxt
            # reads): Binance pushes at most one snapshot per symbol per 1000 ms, so one event can stand for
            # several fills. `ap` is their average price. `X`: FILLED, or EXPIRED after a partial fill (the
            # IOC order's rest cancelled: `z` was still liquidated) are final; NEW and PARTIALLY_FILLED are
            # not (the order's final snapshot repeats those fills in its `z`, and the stream has no order id
            # to merge them by). Tardis keeps `X == FILLED` only and reads `z` (tardis-dev/tardis-node
            # src/mappers/binance.ts, BinanceLiquidationsMapper). docs/catalog.md, liquidations.
            liquidations=LiquidationWire(
                items_key="o",
                long_liquidated="SELL",
                short_liquidated="BUY",
                quantity_field="z",
                price_field="ap",
                status_field="X",
                filled_statuses=("FILLED", "EXPIRED"),
                all_market=True,
                source="https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams",
            ),
            max_concurrency=5,
            rest_limits=BINANCE_LIMITS,
        ),
        Venue(
            name="bybit",
            ccxt_id="bybit",
            nautilus_venue="BYBIT",
            # nautilus_trader/adapters/bybit/schemas/instrument.py BybitInstrumentLinear.parse_to_instrument:
            # BybitSymbol(symbol + "-LINEAR"), upper-cased (adapters/bybit/common/symbol.py). USDC perpetuals
            # are `<BASE>PERP` on Bybit: every symbol of the "USDC" group in
            # https://bybit-exchange.github.io/docs/v5/market/fee-group-info ends in PERP (BTCPERP, ETHPERP).
            id_template="{base}{quote}-LINEAR",
            market_id_template="{id}-LINEAR",
            quote_id_templates={"USDC": "{base}PERP-LINEAR"},
            upper_symbols=True,
            aliases=("bybit-linear",),
            # Loading only linear markets cuts load_markets from 11 requests to 2 (see docs/exchanges.md). No
            # currency list: with an API key ccxt asks the private /v5/asset/coin/query-info for it.
            ccxt_options={
                "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
                "has": {"fetchCurrencies": False},
                **NO_CCXT_LIMITER,
            },
            # fetch_open_interest gives the hourly history row, up to an hour old; tickers are live.
            current_oi="ticker",
            # Bybit's `openInterest`/`openInterestValue` are the SUM OF BOTH SIDES, twice what Binance
            # reports; `singleOpenInterest`/`singleOpenInterestValue` are one side. Tickers:
            # "Open interest size (both sides)", "Open interest value (single side)", ...
            # https://bybit-exchange.github.io/docs/v5/market/tickers and
            # https://bybit-exchange.github.io/docs/v5/websocket/public/ticker. An answer without the
            # single-side fields (older API, some markets) falls back to half the both-sides figures.
            ticker_oi=BYBIT_SINGLE_SIDE,
            market_funding_interval_field="fundingInterval",
            oi_history_periods=("5m", "15m", "30m", "1h", "4h", "1d"),
            # https://bybit-exchange.github.io/docs/v5/market/open-interest: "openInterest: The value is the
            # sum of both sides", "singleOpenInterest: The value is the single side" (linear: base coin).
            # The endpoint gives no value in quote currency: it is the single side x the mark price at the
            # row's time, the open of the mark-price candle starting then.
            oi_history_raw=RawHistory(
                method="public_get_v5_market_open_interest",
                period_param="intervalTime",
                period_names={
                    "5m": "5min",
                    "15m": "15min",
                    "30m": "30min",
                    "1h": "1h",
                    "4h": "4h",
                    "1d": "1d",
                },
                fields=BYBIT_SINGLE_SIDE,
                rows_path=("result", "list"),
                params={"category": "linear"},
                # https://bybit-exchange.github.io/docs/v5/market/mark-kline (bybit-exchange/docs
                # docs/v5/market/mark-kline.mdx): interval "1,3,5,15,30,60,120,240,360,720,D,M,W"; limit
                # "futures: [1, 1000]"; list "Sort in reverse by startTime", each
                # [startTime, openPrice, highPrice, lowPrice, closePrice].
                value_from_mark=MarkKline(
                    method="public_get_v5_market_mark_price_kline",
                    interval_names={
                        "5m": "5",
                        "15m": "15",
                        "30m": "30",
                        "1h": "60",
                        "4h": "240",
                        "1d": "D",
                    },
                    limit=1000,
                    rows_path=("result", "list"),
                    params={"category": "linear"},
                ),
            ),
            oi_history_limit=200,
            funding_history_limit=200,
            # allLiquidation: `S` is the POSITION side, so Buy means a long was liquidated; `v` the executed
            # size, `p` the bankruptcy price. One push carries every liquidation of 500 ms in `data`.
            liquidations=LiquidationWire(
                items_key="data",
                long_liquidated="Buy",
                short_liquidated="Sell",
                quantity_field="v",
                price_field="p",
                all_market=False,
                source="https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation",
            ),
            max_concurrency=5,
            rest_limits=BYBIT_LIMITS,
        ),
        Venue(
            name="hyperliquid",
            ccxt_id="hyperliquid",
            nautilus_venue="HYPERLIQUID",
            # Hyperliquid perps settle in USDC; NautilusTrader names them `<coin>-USD-PERP`, keeping the
            # coin's case (`kPEPE-USD-PERP`), with quote USD and raw_symbol the same string:
            # nautilus_trader crates/adapters/hyperliquid/src/http/parse.rs (v1.221.0) parse_perp_instruments,
            # create_instrument_from_def.
            id_template="{base}-USD-PERP",
            market_id_template="{id}-USD-PERP",
            market_id_key="baseName",
            market_base_key="baseName",
            raw_symbol_is_id=False,
            nautilus_quote="USD",
            settle="USDC",
            # Perpetuals only, and no currency list: load_markets makes 1 request instead of 5.
            ccxt_options={
                "options": {"defaultType": "swap", "fetchMarkets": {"types": ["swap"]}},
                "has": {"fetchCurrencies": False},
                **NO_CCXT_LIMITER,
            },
            current_oi="open_interests",
            # `openInterest` of the asset contexts (metaAndAssetCtxs, activeAssetCtx; ccxt's `info`) is the
            # SUM OF BOTH SIDES, in coins: Hyperliquid defines open interest as "size (sum of absolute
            # position sizes)" (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/hip-3-deployer-actions,
            # "Open interest caps"), and its stats site "now shows two-sided open interest" from it
            # (hyperliquid-dex/hyperliquid-stats-web components/home/charts/open-interest.tsx). No one-side
            # field exists: one side is half of it; the value is that x `markPx` (docs/exchanges.md).
            current_oi_raw=HYPERLIQUID_BOTH_SIDES,
            funding_history_limit=500,
            funding_interval_minutes=60,
            no_liquidations_reason=(
                "offers no public market-wide liquidation stream: its public websocket shows liquidation "
                "fills per wallet only (userFills), so market-wide feeds exist only from third-party indexers"
            ),
            max_concurrency=5,
            rest_limits=HYPERLIQUID_LIMITS,
        ),
        Venue(
            name="okx",
            ccxt_id="okx",
            nautilus_venue="OKX",
            id_template="{base}-{quote}-SWAP",
            ccxt_options={"options": {"defaultType": "swap"}},
            oi_history_periods=("5m", "1h", "1d"),
            oi_history_limit=100,
            funding_history_limit=100,
        ),
    )
}

DEFAULT_EXCHANGES: tuple[str, ...] = ("binance", "bybit", "hyperliquid")

_BY_ALIAS: dict[str, Venue] = {alias: v for v in VENUES.values() for alias in (v.name, *v.aliases)}
_BY_NAUTILUS: dict[str, Venue] = {v.nautilus_venue: v for v in VENUES.values()}


def get_venue(name: str) -> Venue:
    """Return the venue for a user-typed exchange name or ccxt id (case-insensitive).

    Raises UnknownExchangeError naming the supported exchanges and the closest match.
    """
    key = name.strip().lower()
    venue = _BY_ALIAS.get(key)
    if venue is not None:
        return venue
    supported = ", ".join(VENUES)
    close = difflib.get_close_matches(key, list(_BY_ALIAS), n=1)
    hint = f"; did you mean '{_BY_ALIAS[close[0]].name}'?" if close else ""
    raise UnknownExchangeError(f"unknown exchange '{name}' (supported: {supported}){hint}")


def venue_for_nautilus(suffix: str) -> Venue | None:
    """Return the venue whose NautilusTrader suffix is `suffix` (`BINANCE`), or None."""
    return _BY_NAUTILUS.get(suffix.upper())
