"""Binance USD-M futures (`ccxt.binanceusdm`) REST endpoints and liquidation websocket of the simulator.

Errors answer HTTP 400 with Binance's `{"code": -11xx, "msg": ...}` body. Documented behaviour mirrored:
- `openInterestHist` serves only the last 30 days before now; a `startTime` older than that is refused with
  `{"code":-1130,"msg":"parameter 'startTime' is invalid."}` (Binance refuses it server-side, ccxt #23712; ccxt
  maps -1130 to BadRequest); an `endTime` before the window gives `[]`.
- paging: both startTime and endTime -> the first `limit` rows in [startTime, endTime]; only startTime -> the
  first `limit` from startTime; only endTime -> the latest `limit` up to endTime; neither -> the latest `limit`.
- an out-of-range `limit` is refused with -1130 (openInterestHist 1..500, fundingRate 1..1000).

Websocket (market streams): ccxt.pro binanceusdm connects `watch_liquidations(symbol)` and
`watch_liquidations_for_symbols([...])` to `<urls.api.ws.linear minus "/ws">/market/ws/<n>` (n: ccxt's stream
index 0..49, one per distinct symbol list) and sends `{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"],
"id":1}` (or `["!forceOrder@arr"]` for an empty list); see `ws_market`. ccxt keeps the socket alive with
websocket PING frames every `streaming.keepAlive` ms (180000 for binance), answered with PONG frames.
Binance pushes at most one forceOrder snapshot per symbol per second; the simulator does not throttle.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator._http import ParamError, json_response, opt_int
from ccxt_pipeline.simulator.limits import Ban, Limiter, Refusal, Rule, VenueLimits, retry_after_header
from ccxt_pipeline.simulator.liquidations import (
    LiquidatedSide,
    SentEvent,
    WireFormat,
    WsConnection,
    parse_json,
)

if TYPE_CHECKING:
    from ccxt_pipeline.simulator.server import ExchangeSimulator

NAME = "binance"
PATH_PREFIXES: tuple[str, ...] = (
    "/fapi/",
    "/futures/data/",
    "/dapi/",
    "/sapi/",
    "/eapi/",
    "/papi/",
    "/api/",
    "/ws",
    "/stream",
    "/public/ws",
    "/market/ws",
    "/private/ws",
    "/pm/ws",
    "/equity/ws",
    "/ws-api/",
    "/ws-fapi/",
    "/ws-dapi/",
)
WS_PREFIX = ""
OI_HIST_WINDOW_MS = 30 * data.DAY_MS
OI_HIST_PERIODS = tuple(data.PERIODS_MS)
_CIRCULATING_SUPPLY = {"BTC": "19950000.000", "ETH": "120700000.000", "SOL": "515000000.000"}


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def error_response(code: int, msg: str, status: int = 400) -> web.Response:
    """Binance's error body, e.g. `{"code":-1121,"msg":"Invalid symbol."}`."""
    return json_response({"code": code, "msg": msg}, status=status)


# --- rate limits (enforced with `ExchangeSimulator.enforce_limits`) ------------------------------------

_GENERAL_INFO = "https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info"
_MARKET_DOCS = "https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/"
LIMITS = VenueLimits(
    rules=(
        # rateLimits of Exchange-Information: {"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE",
        # "intervalNum":1,"limit":2400}; per IP, reported in X-MBX-USED-WEIGHT-1M (general-info "IP Limits")
        Rule("REQUEST_WEIGHT", 2400, 60.0, "fixed", source=_MARKET_DOCS + "Exchange-Information"),
        # Open-Interest-Statistics: "IP rate limit 1000 requests/5min" (request weight 0)
        Rule(
            "openInterestHist",
            1000,
            300.0,
            "fixed",
            paths=("/futures/data/openInterestHist",),
            weighted=False,
            source=_MARKET_DOCS + "Open-Interest-Statistics",
        ),
        # Get-Funding-Rate-History: "share 500/5min/IP rate limit with GET /fapi/v1/fundingInfo";
        # Get-Funding-Rate-Info: weight 0, the same shared limit
        Rule(
            "fundingRate",
            500,
            300.0,
            "fixed",
            paths=("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"),
            weighted=False,
            source=_MARKET_DOCS + "Get-Funding-Rate-History",
        ),
    ),
    # general-info "IP Limits": "Repeatedly violating rate limits and/or failing to back off after receiving
    # 429s will result in an automated IP ban (HTTP status 418)", bans "from 2 minutes to 3 days". How many
    # 429s make a ban is not documented: 10 within a minute is the simulator's choice; the ban is the minimum.
    ban=Ban(after=10, within_s=60.0, duration_s=120.0, status=418, source=_GENERAL_INFO),
)

_WEIGHTS: dict[str, int] = {
    "/fapi/v1/ping": 1,  # Test-Connectivity
    "/fapi/v1/time": 1,  # Check-Server-Time
    "/fapi/v1/exchangeInfo": 1,  # Exchange-Information
    "/fapi/v1/openInterest": 1,  # Open-Interest
    "/futures/data/openInterestHist": 0,  # Open-Interest-Statistics ("Request Weight 0")
    "/fapi/v1/fundingRate": 0,  # Get-Funding-Rate-History (its own 500/5min limit instead)
    "/fapi/v1/fundingInfo": 0,  # Get-Funding-Rate-Info ("0 share 500/5min/IP rate limit")
}
"""Request weights from each endpoint page (`_MARKET_DOCS` + page name); others weigh 1."""


def request_weight(endpoint: str, query: Mapping[str, str]) -> int:
    """The documented weight of one request (the endpoint pages under `_MARKET_DOCS`)."""
    if endpoint == "/fapi/v1/premiumIndex":  # Mark-Price: "1 with symbol, 10 without symbol"
        return 1 if query.get("symbol") else 10
    if endpoint == "/fapi/v1/ticker/24hr":  # 24hr-Ticker-Price-Change-Statistics: 1, 40 without symbol
        return 1 if query.get("symbol") else 40
    if endpoint in ("/fapi/v1/klines", "/fapi/v1/markPriceKlines"):  # Kline/Mark-Price-Kline: by LIMIT
        try:
            limit = int(query.get("limit") or 500)
        except ValueError:
            limit = 500
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    return _WEIGHTS.get(endpoint, 1)


def extra_weight(endpoint: str, body: bytes) -> int:
    """Binance charges nothing per item returned."""
    del endpoint, body
    return 0


def limit_headers(limiter: Limiter) -> dict[str, str]:
    """`X-MBX-USED-WEIGHT-1M`: the weight this IP used in the current minute (general-info "IP Limits":
    "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter) in the response headers")."""
    return {"X-MBX-USED-WEIGHT-1M": str(limiter.used("REQUEST_WEIGHT"))}


def refused(sim: ExchangeSimulator, refusal: Refusal, limiter: Limiter) -> web.Response:
    """HTTP 429 with `Retry-After` (seconds "to wait ... to prevent a ban"), or 418 with `Retry-After` "until
    the ban is over" (general-info "IP Limits"); both carry the used-weight header."""
    if refusal.banned:
        response = sim.banned_response(NAME, refusal.retry_after_s)
    else:
        response = rate_limited(sim, force_429=True)
        response.headers["Retry-After"] = retry_after_header(refusal.retry_after_s)
    response.headers.update(limit_headers(limiter))
    return response


def rate_limited(sim: ExchangeSimulator, *, force_429: bool) -> web.Response:
    """Binance's IP rate-limit answer: HTTP 429 + Retry-After + code -1003 (ccxt: DDoSProtection).

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info#limits
    """
    del sim, force_429  # Binance always answers 429
    body = {
        "code": -1003,
        "msg": "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. Please use the "
        "websocket for live updates to avoid polling the API.",
    }
    return json_response(body, status=429, headers={"Retry-After": "1"})


def _int(query: Mapping[str, str], name: str) -> int | None:
    try:
        return opt_int(query, name)
    except ParamError:
        raise BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


def _symbol(
    sim: ExchangeSimulator, query: Mapping[str, str], *, required: bool = True
) -> data.Instrument | None:
    raw = query.get("symbol")
    if not raw:
        if required:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        return None
    inst = sim.find_instrument(NAME, raw)
    if inst is None:
        raise BinanceError(-1121, "Invalid symbol.")
    return inst


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    limit = _int(query, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise BinanceError(-1130, "Data sent for paramter 'limit' is not valid.")
    return limit


def _range(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    start, end = _int(query, "startTime"), _int(query, "endTime")
    if start is not None and end is not None and start > end:
        raise BinanceError(-1023, "Start time is greater than end time.")
    return start, end


def exchange_info(sim: ExchangeSimulator) -> dict[str, Any]:
    """GET /fapi/v1/exchangeInfo.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information;
    ccxt binance.fetch_markets/parse_market (contractType, status, marginAsset, filters PRICE_FILTER/LOT_SIZE).
    Sample: {"timezone":"UTC","serverTime":1763640000000,"symbols":[{"symbol":"BTCUSDT","pair":"BTCUSDT",
    "contractType":"PERPETUAL","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","marginAsset":"USDT",
    "pricePrecision":2,"quantityPrecision":3,"filters":[{"filterType":"PRICE_FILTER","tickSize":"0.10",...}]}]}
    """
    symbols = []
    for inst in sim.instruments(NAME):
        qty_precision = len(inst.step_size.split(".")[1]) if "." in inst.step_size else 0
        symbols.append(
            {
                "symbol": inst.id,
                "pair": inst.id,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": inst.launch_ms,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": inst.base,
                "quoteAsset": inst.quote,
                "marginAsset": inst.settle,
                "pricePrecision": inst.price_decimals,
                "quantityPrecision": qty_precision,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": ["Layer-1"],
                "settlePlan": 0,
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": inst.tick_size,
                        "maxPrice": "4529764",
                        "tickSize": inst.tick_size,
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "stepSize": inst.step_size,
                        "maxQty": inst.max_qty,
                        "minQty": inst.min_qty,
                    },
                    {
                        "filterType": "MARKET_LOT_SIZE",
                        "stepSize": inst.step_size,
                        "maxQty": inst.max_qty,
                        "minQty": inst.min_qty,
                    },
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": "5"},
                    {
                        "filterType": "PERCENT_PRICE",
                        "multiplierUp": "1.0500",
                        "multiplierDown": "0.9500",
                        "multiplierDecimal": "4",
                    },
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            }
        )
    return {
        "timezone": "UTC",
        "serverTime": sim.now(),
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": symbols,
    }


def open_interest(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /fapi/v1/openInterest?symbol= : the live open interest in base units.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest;
    ccxt binance.fetch_open_interest comment. Sample: {"symbol":"BTCUSDT","openInterest":"10659.509","time":1589437530011}
    """
    inst = _symbol(sim, query)
    assert inst is not None
    now = sim.now()
    oi = data.open_interest(NAME, inst.id, now, sim.seed)
    return {"symbol": inst.id, "openInterest": data.fmt(oi, inst.amount_decimals), "time": now}


def open_interest_hist(sim: ExchangeSimulator, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /futures/data/openInterestHist?symbol&period&limit&startTime&endTime, ascending.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics;
    shared fixtures binance.request.json fetchOpenInterestHistory (`?period=5m&symbol=BTCUSDT`).
    Sample: [{"symbol":"BTCUSDT","sumOpenInterest":"20403.63700000","sumOpenInterestValue":"150570784.07809979",
    "CMCCirculatingSupply":"165880.538","timestamp":1583127900000}]
    """
    inst = _symbol(sim, query)
    assert inst is not None
    period = query.get("period")
    if not period:
        raise BinanceError(-1102, "Mandatory parameter 'period' was not sent, was empty/null, or malformed.")
    if period not in OI_HIST_PERIODS:
        raise BinanceError(-1130, "Data sent for paramter 'period' is not valid.")
    limit = _limit(query, 30, 500)
    start, end = _range(query)
    now = sim.now()
    window_start = now - OI_HIST_WINDOW_MS
    if start is not None and start < window_start:
        raise BinanceError(-1130, "parameter 'startTime' is invalid.")
    hi = now if end is None else min(end, now)
    lo = window_start if start is None else start
    step = data.PERIODS_MS[period]
    # Only the rows we return are materialised: first/last grid points, then `limit` of them.
    first = -(-max(lo, data.series_start(NAME, inst.id)) // step) * step
    last = (hi // step) * step
    if first > last:
        return []
    if start is not None:
        times = list(range(first, min(last, first + (limit - 1) * step) + 1, step))
    else:
        times = list(range(max(first, last - (limit - 1) * step), last + 1, step))
    supply = _CIRCULATING_SUPPLY.get(inst.base) or data.fmt(round(inst.base_open_interest * 40, 3), 3)
    return [
        {
            "symbol": inst.id,
            "sumOpenInterest": data.fmt(data.open_interest(NAME, inst.id, t, sim.seed), 8),
            "sumOpenInterestValue": data.fmt(data.open_interest_value(NAME, inst.id, t, sim.seed), 8),
            "CMCCirculatingSupply": supply,
            "timestamp": t,
        }
        for t in times
    ]


def _premium_row(sim: ExchangeSimulator, inst: data.Instrument, now: int) -> dict[str, Any]:
    rate, next_time, _hours = data.current_funding(NAME, inst.id, now, sim.seed)
    return {
        "symbol": inst.id,
        "markPrice": data.fmt(data.mark_price(NAME, inst.id, now, sim.seed), 8),
        "indexPrice": data.fmt(data.index_price(NAME, inst.id, now, sim.seed), 8),
        "estimatedSettlePrice": data.fmt(data.index_price(NAME, inst.id, now - data.MINUTE_MS, sim.seed), 8),
        "lastFundingRate": data.fmt(rate, 8),
        "interestRate": "0.00010000",
        "nextFundingTime": next_time,
        "time": now,
    }


def premium_index(sim: ExchangeSimulator, query: Mapping[str, str]) -> Any:
    """GET /fapi/v1/premiumIndex[?symbol=]: mark/index price and the current funding estimate.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price;
    shared fixtures binance.request.json fetchFundingRate/fetchFundingRates/fetchMarkPrice(s).
    Sample: {"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970",
    "estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246","interestRate":"0.00010000",
    "nextFundingTime":1597392000000,"time":1597370495002}  (a list of these without `symbol`)
    """
    now = sim.now()
    inst = _symbol(sim, query, required=False)
    if inst is not None:
        return _premium_row(sim, inst, now)
    return [_premium_row(sim, i, now) for i in sim.instruments(NAME)]


def funding_rate_history(sim: ExchangeSimulator, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """GET /fapi/v1/fundingRate?symbol&startTime&endTime&limit, ascending, limit default 100 max 1000.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History;
    shared fixtures binance.request.json fetchFundingRateHistory (`?symbol=BTCUSDT`).
    Sample: [{"symbol":"BTCUSDT","fundingRate":"-0.03750000","fundingTime":1570608000000,"markPrice":"34287.54619963"}]
    """
    inst = _symbol(sim, query, required=False)
    limit = _limit(query, 100, 1000)
    start, end = _range(query)
    now = sim.now()
    hi = now if end is None else min(end, now)
    insts = [inst] if inst is not None else list(sim.instruments(NAME))
    # Settlements of every symbol merged lazily in time order (newest first without startTime): only the
    # `limit` rows answered are computed, however many symbols are listed.
    streams = [
        ((t, i.id, rate) for t, rate, _h in data.iter_settlements(NAME, i.id, start, hi, sim.seed))
        if start is not None
        else (
            (t, i.id, rate)
            for t, rate, _h in data.iter_settlements(NAME, i.id, 0, hi, sim.seed, descending=True)
        )
        for i in insts
    ]
    merged = heapq.merge(*streams, reverse=start is None)
    rows = sorted(itertools.islice(merged, limit))
    return [
        {
            "symbol": sym,
            "fundingRate": data.fmt(rate, 8),
            "fundingTime": t,
            "markPrice": data.fmt(data.mark_price(NAME, sym, t, sim.seed), 8),
            # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-History
            # (binance-connector-python test_get_funding_rate_history_success; tests/fixtures/SOURCES.md)
            "rateType": "Regular",
        }
        for t, sym, rate in rows
    ]


def funding_info(sim: ExchangeSimulator) -> list[dict[str, Any]]:
    """GET /fapi/v1/fundingInfo: only symbols whose CURRENT funding interval is not 8h (as Binance lists only
    adjusted symbols).

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Get-Funding-Rate-Info;
    ccxt binance.fetch_funding_intervals comment; shared fixtures binance.request.json fetchFundingInterval(s).
    Sample: [{"symbol":"BLZUSDT","adjustedFundingRateCap":"0.02500000","adjustedFundingRateFloor":"-0.02500000",
    "fundingIntervalHours":8,"disclaimer":false}]
    """
    now = sim.now()
    out = []
    for inst in sim.instruments(NAME):
        hours = data.funding_interval_hours(NAME, inst.id, now)
        if hours != 8:
            out.append(
                {
                    "symbol": inst.id,
                    "adjustedFundingRateCap": "0.02000000",
                    "adjustedFundingRateFloor": "-0.02000000",
                    "fundingIntervalHours": hours,
                    "disclaimer": False,
                }
            )
    return out


def _ticker_row(sim: ExchangeSimulator, inst: data.Instrument, now: int) -> dict[str, Any]:
    d = inst.price_decimals
    last = data.mark_price(NAME, inst.id, now, sim.seed)
    open_ = data.mark_price(NAME, inst.id, now - data.DAY_MS, sim.seed)
    samples = [data.mark_price(NAME, inst.id, now - k * data.HOUR_MS, sim.seed) for k in range(25)]
    volume = round(data.open_interest(NAME, inst.id, now, sim.seed) * 2.5, inst.amount_decimals)
    return {
        "symbol": inst.id,
        "priceChange": data.fmt(round(last - open_, d), d),
        "priceChangePercent": data.fmt(round((last - open_) / open_ * 100, 3), 3),
        "weightedAvgPrice": data.fmt(round(sum(samples) / len(samples), d), d),
        "lastPrice": data.fmt(last, d),
        "lastQty": inst.min_qty,
        "openPrice": data.fmt(open_, d),
        "highPrice": data.fmt(max(samples), d),
        "lowPrice": data.fmt(min(samples), d),
        "volume": data.fmt(volume, inst.amount_decimals),
        "quoteVolume": data.fmt(round(volume * last, 2), 2),
        "openTime": now - data.DAY_MS,
        "closeTime": now,
        "firstId": 1,
        "lastId": 1000,
        "count": 1000,
    }


def ticker_24hr(sim: ExchangeSimulator, query: Mapping[str, str]) -> Any:
    """GET /fapi/v1/ticker/24hr[?symbol=].

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/24hr-Ticker-Price-Change-Statistics
    Sample: {"symbol":"BTCUSDT","priceChange":"-94.99999800","priceChangePercent":"-95.960","lastPrice":"4.00000200",
    "openPrice":"99.00000000","highPrice":"100.00000000","lowPrice":"0.10000000","volume":"8913.30000000",...}
    """
    now = sim.now()
    inst = _symbol(sim, query, required=False)
    if inst is not None:
        return _ticker_row(sim, inst, now)
    return [_ticker_row(sim, i, now) for i in sim.instruments(NAME)]


# --- websocket: liquidation order streams -------------------------------------------------------------

LIQUIDATION_ALL_STREAM = "!forceOrder@arr"


def liquidation_stream(symbol_id: str) -> str:
    """`<symbol lower>@forceOrder`, e.g. `btcusdt@forceOrder`."""
    return f"{symbol_id.lower()}@forceOrder"


def liquidation_side(liquidated: LiquidatedSide) -> str:
    """Binance's `S` is the side of the liquidation ORDER: a liquidated long is sold, a short bought."""
    return "SELL" if liquidated == "LONG" else "BUY"


def liquidation_message(events: Sequence[SentEvent], now_ms: int) -> dict[str, Any]:
    """One forceOrder event (Binance never batches: exactly one event).

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams
    (and All-Market-Liquidation-Order-Streams, same payload); ccxt binance.handle_liquidation comment.
    Binance's response example: {"e":"forceOrder","E":1568014460893,"o":{"s":"BTCUSDT","S":"SELL","o":"LIMIT",
    "f":"IOC","q":"0.014","p":"9910","ap":"9910","X":"FILLED","l":"0.014","z":"0.014","T":1568014460893}}
    with `q` Original Quantity, `p` Price, `ap` Average Price, `X` Order Status, `l` Order Last Filled
    Quantity, `z` Order Filled Accumulated Quantity, `T` Order Trade Time. Binance pushes "only the latest
    one liquidation order within 1000ms" per symbol, so an event is a snapshot of an order that may have
    filled several times: `z` is the event's quantity, `l` its last fill (smaller for a multi-fill event),
    `ap` the average price (the event's price), `X` FILLED (`q` = `z`) or EXPIRED after partial fills
    (`q` > `z`). `p` (the order's limit price) is set 0.5% beyond `ap` (below for SELL, above for BUY) so
    that a parser reading the wrong field is caught; likewise `l` and `q` for the quantity.
    """
    (event,) = events
    inst = data.instrument(NAME, event.symbol)
    limit = event.price * (0.995 if event.side == "SELL" else 1.005)
    return {
        "e": "forceOrder",
        "E": now_ms,
        "o": {
            "s": event.symbol,
            "S": event.side,
            "o": "LIMIT",
            "f": "IOC",
            "q": event.order_quantity_str or event.quantity_str,
            "p": data.fmt(round(limit, inst.price_decimals), inst.price_decimals),
            "ap": event.price_str,
            "X": event.status,
            "l": event.last_fill_str or event.quantity_str,
            "z": event.quantity_str,
            "T": event.t_ms,
        },
    }


WIRE = WireFormat(
    wire_side=liquidation_side,
    topic=liquidation_stream,
    all_topic=LIQUIDATION_ALL_STREAM,
    message=liquidation_message,
    batches=False,
    orders=True,
)


async def on_ws_text(sim: ExchangeSimulator, conn: WsConnection, text: str) -> None:
    """Live subscribing over a market-stream socket.

    shape: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Live-Subscribing-Unsubscribing-to-streams
    - `{"method":"SUBSCRIBE","params":["btcusdt@forceOrder"],"id":1}` -> `{"result":null,"id":1}`
    - `{"method":"UNSUBSCRIBE","params":[...],"id":2}` -> `{"result":null,"id":2}`
    - `{"method":"LIST_SUBSCRIPTIONS","id":3}` -> `{"result":["btcusdt@forceOrder"],"id":3}`
    - otherwise `{"error":{"code":2,"msg":"Invalid request: ..."},"id":N}` (code 3: invalid JSON).
    Stream names are accepted as sent (Binance silently accepts names it never pushes).
    """
    feed = sim.liquidations
    msg = parse_json(text)
    if not isinstance(msg, dict):
        await feed.reply(
            conn, {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}
        )
        return
    method, request_id, params = msg.get("method"), msg.get("id"), msg.get("params")
    streams = [p for p in params if isinstance(p, str)] if isinstance(params, list) else []
    if method == "SUBSCRIBE":
        feed.subscribe(conn, streams)
        await feed.reply(conn, {"result": None, "id": request_id})
    elif method == "UNSUBSCRIBE":
        conn.topics.difference_update(streams)
        await feed.reply(conn, {"result": None, "id": request_id})
    elif method == "LIST_SUBSCRIPTIONS":
        await feed.reply(conn, {"result": sorted(conn.topics), "id": request_id})
    else:
        error = {
            "code": 2,
            "msg": f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
            "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
        }
        await feed.reply(conn, {"error": error, "id": request_id})


def register_ws(app: web.Application, sim: ExchangeSimulator) -> None:
    """The USD-M market-stream websocket: `/market/ws` and `/market/ws/<tail>`.

    A tail that names streams (`/market/ws/btcusdt@forceOrder`, several joined by `/`) subscribes to them at
    connect, as Binance's raw-stream URLs do; ccxt's numeric tail (`/market/ws/0`) subscribes to nothing.
    Events: `liquidation_message`; subscribing: `on_ws_text`.
    """
    sim.liquidations.add_exchange(NAME, WIRE)

    async def ws_market(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        streams = [s for s in tail.split("/") if "@" in s]

        async def on_text(conn: WsConnection, text: str) -> None:
            await on_ws_text(sim, conn, text)

        return await sim.liquidations.serve(request, NAME, on_text, topics=streams)

    app.router.add_get("/market/ws", ws_market)
    app.router.add_get("/market/ws/{tail:.*}", ws_market)


def register(app: web.Application, sim: ExchangeSimulator) -> None:
    """Add the Binance USD-M routes to `app`."""

    def route(fn: Any, *, with_query: bool = True) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                result = fn(sim, request.query) if with_query else fn(sim)
            except BinanceError as e:
                return error_response(e.code, e.msg, e.status)
            return json_response(result)

        return handler

    async def ping(request: web.Request) -> web.Response:
        """GET /fapi/v1/ping -> {} (shape: Binance USD-M docs, Test-Connectivity)."""
        return json_response({})

    async def server_time(request: web.Request) -> web.Response:
        """GET /fapi/v1/time -> {"serverTime":1499827319559} (shape: Binance USD-M docs, Check-Server-Time)."""
        return json_response({"serverTime": sim.now()})

    app.router.add_get("/fapi/v1/ping", ping)
    app.router.add_get("/fapi/v1/time", server_time)
    app.router.add_get("/fapi/v1/exchangeInfo", route(exchange_info, with_query=False))
    app.router.add_get("/fapi/v1/openInterest", route(open_interest))
    app.router.add_get("/futures/data/openInterestHist", route(open_interest_hist))
    app.router.add_get("/fapi/v1/premiumIndex", route(premium_index))
    app.router.add_get("/fapi/v1/fundingRate", route(funding_rate_history))
    app.router.add_get("/fapi/v1/fundingInfo", route(funding_info, with_query=False))
    app.router.add_get("/fapi/v1/ticker/24hr", route(ticker_24hr))
    register_ws(app, sim)
