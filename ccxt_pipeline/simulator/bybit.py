"""Bybit v5 (`ccxt.bybit`, linear perpetuals) REST endpoints and public linear websocket of the simulator.

Bybit answers business errors with HTTP 200 and a non-zero `retCode` (`10001` parameter errors; ccxt maps
10001 to BadRequest). Documented behaviour mirrored:
- `/v5/market/open-interest`: newest first; `limit` 1..200 (default 50); with both startTime and endTime the
  newest `limit` rows in the range and a `nextPageCursor` for the next (older) page while rows remain; a lone
  `startTime` is ignored (the endpoint walks back from endTime or now: ccxt PR #30016); `cursor` continues
  below the cursor's `lasttime`. The cursor looks like Bybit's: `lastid%3D<n>%26lasttime%3D<seconds>`.
- `/v5/market/funding/history`: newest first, `limit` 1..200 (default 200); "passing only startTime returns an
  error", only endTime -> the newest `limit` rows up to endTime, neither -> up to now; both -> the newest
  `limit` rows in [startTime, endTime].
- `/v5/market/mark-price-kline`: see `mark_price_kline`.
- instruments-info and tickers for `spot`, `inverse` and `option` answer empty lists (only linear is simulated);
  `status=PreLaunch` (which ccxt also asks for) answers an empty list.

Websocket: ccxt.pro bybit connects `watch_liquidations(symbol)` to `urls.api.ws.public.linear`
(`/v5/public/linear`), one socket for all symbols, and sends `{"op":"subscribe","req_id":1,
"args":["allLiquidation.BTCUSDT"]}` (req_id an integer counting up per client). It keeps the socket alive
with app-level `{"req_id":N,"op":"ping"}` every `streaming.keepAlive` ms (18000 for bybit); see `ws_public_linear`.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
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

NAME = "bybit"
PATH_PREFIXES: tuple[str, ...] = (
    "/v5/",
    "/v3/",
    "/v2/",
    "/spot/",
    "/contract/",
    "/derivatives/",
    "/unified/",
    "/asset/",
    "/user/",
    "/option/",
    "/perpetual/",
    "/trade/",
)
WS_PREFIX = ""
CATEGORIES = ("linear", "inverse", "spot", "option")
OI_INTERVALS_MS: dict[str, int] = {
    "5min": 5 * data.MINUTE_MS,
    "15min": 15 * data.MINUTE_MS,
    "30min": 30 * data.MINUTE_MS,
    "1h": data.HOUR_MS,
    "4h": 4 * data.HOUR_MS,
    "1d": data.DAY_MS,
}

KLINE_INTERVALS_MS: dict[str, int] = {
    **{str(m): m * data.MINUTE_MS for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)},
    "D": data.DAY_MS,
    "W": 7 * data.DAY_MS,
}
"""Bybit's kline intervals of fixed length (`M`, calendar months, is handled apart)."""
WEEK_OFFSET_MS = 4 * data.DAY_MS
"""Weekly candles start on Mondays 00:00 UTC; 1970-01-01 was a Thursday, four days after one."""


class BybitError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def envelope(sim: ExchangeSimulator, result: Any, code: int = 0, msg: str = "OK") -> dict[str, Any]:
    """Bybit's v5 envelope: `{"retCode":0,"retMsg":"OK","result":{...},"retExtInfo":{},"time":1672053548579}`."""
    return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": sim.now()}


# --- rate limits (enforced with `ExchangeSimulator.enforce_limits`) ------------------------------------

RATE_LIMIT_DOCS = "https://bybit-exchange.github.io/docs/v5/rate-limit"
LIMITS = VenueLimits(
    # "HTTP IP limit: You are allowed to send 600 requests within a 5-second window per IP by default";
    # Bybit's older pages say "No more than 600 requests are allowed in any 5-second window": a sliding window.
    rules=(Rule("IP", 600, 5.0, "sliding", weighted=False, source=RATE_LIMIT_DOCS),),
    # "If you encounter the error "403, access too frequent", it indicates that your IP has exceeded the
    # allowed request frequency. In this case, you should terminate all HTTP sessions and wait for at least
    # 10 minutes. The ban will be lifted automatically."
    ban=Ban(after=1, within_s=5.0, duration_s=600.0, status=403, source=RATE_LIMIT_DOCS),
)


def request_weight(endpoint: str, query: Mapping[str, str]) -> int:
    """Bybit's IP limit counts requests."""
    del endpoint, query
    return 1


def extra_weight(endpoint: str, body: bytes) -> int:
    del endpoint, body
    return 0


def limit_headers(limiter: Limiter) -> dict[str, str]:
    """The `X-Bapi-Limit*` headers ("Every request to the API returns response header": `X-Bapi-Limit-Status`
    your remaining requests, `X-Bapi-Limit` your current limit, `X-Bapi-Limit-Reset-Timestamp` when the limit
    resets if exceeded, "Otherwise, this is just the current timestamp"). Bybit documents them for its per-UID
    API limit; public requests have no UID, so the simulator reports the per-IP window in them."""
    used = limiter.used("IP")
    now = limiter.clock()
    reset = limiter.reset_at("IP") if used >= 600 else now
    return {
        "X-Bapi-Limit": "600",
        "X-Bapi-Limit-Status": str(max(0, 600 - used)),
        "X-Bapi-Limit-Reset-Timestamp": str(int(reset * 1000)),
    }


def refused(sim: ExchangeSimulator, refusal: Refusal, limiter: Limiter) -> web.Response:
    """HTTP 403 "access too frequent" for the whole ban (`LIMITS.ban`; ccxt's bybit maps HTTP 403 to
    RateLimitExceeded). The docs give no body; the simulator sends the message as text."""
    del sim
    return web.Response(
        status=403,
        text="access too frequent",
        headers={"Retry-After": retry_after_header(refusal.retry_after_s), **limit_headers(limiter)},
    )


def rate_limited(sim: ExchangeSimulator, *, force_429: bool) -> web.Response:
    """Bybit's API rate-limit answer: `retCode` 10006 "Too many visits!" (ccxt: RateLimitExceeded).

    HTTP 200 for the `rate_limit` knob (as Bybit sends it), 429 for the `http_429` failure kind.
    shape: https://bybit-exchange.github.io/docs/v5/rate-limit (X-Bapi-Limit-Status, X-Bapi-Limit,
    X-Bapi-Limit-Reset-Timestamp headers).
    """
    now = sim.now()
    headers = {
        "Retry-After": "1",
        "X-Bapi-Limit": str(sim.rate_limit or 0),
        "X-Bapi-Limit-Status": "0",
        "X-Bapi-Limit-Reset-Timestamp": str(now + 1000),
    }
    body = envelope(sim, {}, 10006, "Too many visits!")
    return json_response(body, status=429 if force_429 else 200, headers=headers)


def _int(query: Mapping[str, str], name: str) -> int | None:
    try:
        return opt_int(query, name)
    except ParamError:
        raise BybitError(10001, f"params error: {name} invalid") from None


def _category(query: Mapping[str, str]) -> str:
    category = query.get("category", "")
    if category not in CATEGORIES:
        raise BybitError(10001, "Illegal category")
    return category


def _linear_symbol(sim: ExchangeSimulator, query: Mapping[str, str]) -> data.Instrument:
    category = _category(query)
    raw = query.get("symbol", "")
    if not raw:
        raise BybitError(10001, "params error: symbol is required")
    inst = sim.find_instrument(NAME, raw) if category == "linear" else None
    if inst is None:
        raise BybitError(10001, "params error: Symbol Is Invalid")
    return inst


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    limit = _int(query, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise BybitError(10001, f"params error: limit must be in [1, {maximum}]")
    return limit


def _encode_cursor(oldest_ms: int) -> str:
    # Bybit's cursors are url-encoded query strings, e.g. "lastid%3D10860016%26lasttime%3D1739725200".
    return urllib.parse.quote(
        f"lastid={oldest_ms // 1000 % 100_000_000}&lasttime={oldest_ms // 1000}", safe=""
    )


def _decode_cursor(raw: str) -> int:
    """The cursor's `lasttime` in ms (the oldest row already returned)."""
    text = raw
    for _ in range(3):  # tolerate clients that encode it again
        if "%" not in text:
            break
        text = urllib.parse.unquote(text)
    values = urllib.parse.parse_qs(text)
    try:
        return int(values["lasttime"][0]) * 1000
    except (KeyError, ValueError, IndexError):
        raise BybitError(10001, "params error: cursor invalid") from None


def instruments_info(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/instruments-info?category&symbol&status&limit&cursor (cursor paging, "" ends).

    shape: https://bybit-exchange.github.io/docs/v5/market/instrument; ccxt bybit.fetch_future_markets comment.
    `fundingInterval` is the CURRENT interval in minutes. Sample: {"symbol":"BTCUSDT","contractType":
    "LinearPerpetual","status":"Trading","baseCoin":"BTC","quoteCoin":"USDT","launchTime":"1585526400000",
    "deliveryTime":"0","priceScale":"2","leverageFilter":{...},"priceFilter":{"minPrice":"0.10",...,"tickSize":"0.10"},
    "lotSizeFilter":{"maxOrderQty":"1190.000","minOrderQty":"0.001","qtyStep":"0.001",...},"fundingInterval":480,
    "settleCoin":"USDT",...}
    """
    category = _category(query)
    limit = _limit(query, 500, 1000)
    offset = 0
    cursor = query.get("cursor")
    if cursor:
        try:
            offset = int(urllib.parse.unquote(cursor).removeprefix("offset="))
        except ValueError:
            raise BybitError(10001, "params error: cursor invalid") from None
    status = query.get("status", "")
    symbol = query.get("symbol", "")
    rows: list[dict[str, Any]] = []
    if category == "linear" and status in ("", "Trading"):
        now = sim.now()
        for number, inst in enumerate(sim.instruments(NAME), start=1):
            if symbol and symbol != inst.id:
                continue
            rows.append(_instrument_row(inst, now, number))
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    next_cursor = urllib.parse.quote(f"offset={offset + limit}", safe="") if more else ""
    return {"category": category, "list": page, "nextPageCursor": next_cursor}


def _instrument_row(inst: data.Instrument, now: int, number: int) -> dict[str, Any]:
    hours = data.funding_interval_hours(NAME, inst.id, now)
    return {
        "symbol": inst.id,
        # symbolId/symbolType: https://bybit-exchange.github.io/docs/v5/market/instrument (response example)
        "symbolId": number,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": inst.base,
        "quoteCoin": inst.quote,
        "launchTime": str(inst.launch_ms),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(inst.price_decimals),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": f"{inst.max_leverage}.00",
            "leverageStep": "0.01",
        },
        "priceFilter": {"minPrice": inst.tick_size, "maxPrice": "1999999.80", "tickSize": inst.tick_size},
        "lotSizeFilter": {
            "maxOrderQty": inst.max_qty,
            "minOrderQty": inst.min_qty,
            "qtyStep": inst.step_size,
            "postOnlyMaxOrderQty": inst.max_qty,
            "maxMktOrderQty": inst.max_qty,
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": hours * 60,
        "settleCoin": inst.settle,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "displayName": "",
        "symbolType": "",
    }


def _ticker_row(sim: ExchangeSimulator, inst: data.Instrument, now: int) -> dict[str, Any]:
    d = inst.price_decimals
    mark = data.mark_price(NAME, inst.id, now, sim.seed)
    prev24 = data.mark_price(NAME, inst.id, now - data.DAY_MS, sim.seed)
    samples = [data.mark_price(NAME, inst.id, now - k * data.HOUR_MS, sim.seed) for k in range(25)]
    oi = data.open_interest(NAME, inst.id, now, sim.seed)  # one side
    oi_value = data.open_interest_value(NAME, inst.id, now, sim.seed)
    rate, next_time, _hours = data.current_funding(NAME, inst.id, now, sim.seed)
    volume = round(oi * 2.0, inst.amount_decimals)
    tick = float(inst.tick_size)
    return {
        "symbol": inst.id,
        "lastPrice": data.fmt(mark, d),
        "indexPrice": data.fmt(data.index_price(NAME, inst.id, now, sim.seed), d),
        "markPrice": data.fmt(mark, d),
        "prevPrice24h": data.fmt(prev24, d),
        "price24hPcnt": data.fmt(round((mark - prev24) / prev24, 6), 6),
        "highPrice24h": data.fmt(max(samples), d),
        "lowPrice24h": data.fmt(min(samples), d),
        "prevPrice1h": data.fmt(samples[1], d),
        # Both sides, exactly twice the single side (doubling a float is exact, so are the digits).
        "openInterest": data.fmt(2 * oi, inst.amount_decimals),
        "openInterestValue": data.fmt(2 * oi_value, 2),
        "singleOpenInterest": data.fmt(oi, inst.amount_decimals),
        "singleOpenInterestValue": data.fmt(oi_value, 2),
        "turnover24h": data.fmt(round(volume * mark, 4), 4),
        "volume24h": data.fmt(volume, inst.amount_decimals),
        "fundingRate": data.fmt_short(rate),
        "nextFundingTime": str(next_time),
        "predictedDeliveryPrice": "",
        "basisRate": "",
        "deliveryFeeRate": "",
        "deliveryTime": "0",
        "ask1Size": "1.000",
        "bid1Price": data.fmt(round(mark - tick, d), d),
        "ask1Price": data.fmt(mark, d),
        "bid1Size": "1.000",
        "basis": "",
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }


def tickers(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/tickers?category=linear[&symbol=]: live prices, open interest (base units) and its value
    (USD), the current funding estimate and next funding time.

    Open interest as Bybit serves it: `openInterest`/`openInterestValue` are the sum of both sides,
    `singleOpenInterest`/`singleOpenInterestValue` one side (`data.open_interest`); both-sides = 2 x single.
    shape: shared fixtures bybit.response.json fetchTicker / fetchFundingRate(s);
    https://bybit-exchange.github.io/docs/v5/market/tickers, field list also in
    https://bybit-exchange.github.io/docs/v5/websocket/public/ticker ("Open interest size (both sides)",
    "Open interest value (single side)"). Sample, recorded before Bybit added the single-side fields:
    {"symbol":"BTCUSDT","lastPrice":"51444.40","indexPrice":"51469.95","markPrice":"51444.40",
    "openInterest":"225766.793","openInterestValue":"11614437205.81","fundingRate":"-0.00046295",
    "nextFundingTime":"1707926400000",...}; answers now also carry "singleOpenInterest" and
    "singleOpenInterestValue", strings in the same units.
    """
    category = _category(query)
    symbol = query.get("symbol", "")
    rows: list[dict[str, Any]] = []
    if category == "linear":
        now = sim.now()
        if symbol and sim.find_instrument(NAME, symbol) is None:
            raise BybitError(10001, "params error: Symbol Is Invalid")
        rows = [_ticker_row(sim, i, now) for i in sim.instruments(NAME) if not symbol or symbol == i.id]
    elif symbol:
        raise BybitError(10001, "params error: Symbol Is Invalid")
    return {"category": category, "list": rows}


def open_interest(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/open-interest?category&symbol&intervalTime&startTime&endTime&limit&cursor, newest first.

    Each row: `openInterest` "the sum of both sides" (here exactly 2 x `data.open_interest`) and
    `singleOpenInterest` "the single side" (`data.open_interest`); no value in quote currency.
    shape: shared fixtures bybit.response.json fetchOpenInterest; https://bybit-exchange.github.io/docs/v5/market/open-interest.
    Sample: {"symbol":"BTCUSDT","category":"linear","list":[{"openInterest":"62129.45500000",
    "timestamp":"1739725200000"}],"nextPageCursor":"lastid%3D10860016%26lasttime%3D1739725200"}; the docs'
    current sample: {"openInterest":"63910691.00000000","singleOpenInterest":"31955346","timestamp":"1780963200000"}
    """
    inst = _linear_symbol(sim, query)
    interval = query.get("intervalTime", "")
    if interval not in OI_INTERVALS_MS:
        raise BybitError(10001, "params error: intervalTime invalid")
    limit = _limit(query, 50, 200)
    start, end = _int(query, "startTime"), _int(query, "endTime")
    now = sim.now()
    hi = now if end is None else min(end, now)
    listed = data.series_start(NAME, inst.id)
    lo = start if (start is not None and end is not None) else listed
    cursor = query.get("cursor")
    if cursor:
        hi = min(hi, _decode_cursor(cursor) - 1)
    step = OI_INTERVALS_MS[interval]
    first = -(-max(lo, listed) // step) * step
    last = (hi // step) * step
    times = list(range(last, max(first, last - (limit - 1) * step) - 1, -step)) if first <= last else []
    more = bool(times) and times[-1] - step >= first
    rows = []
    for t in times:
        single = data.open_interest(NAME, inst.id, t, sim.seed)
        rows.append(
            {
                "openInterest": data.fmt(2 * single, 8),
                "singleOpenInterest": data.fmt(single, 8),
                "timestamp": str(t),
            }
        )
    return {
        "symbol": inst.id,
        "category": "linear",
        "list": rows,
        "nextPageCursor": _encode_cursor(times[-1]) if more else "",
    }


def _month_start(t_ms: int, months_ahead: int = 0) -> int:
    d = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
    index = d.year * 12 + d.month - 1 + months_ahead
    return int(dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC).timestamp()) * 1000


def _candle_start(interval: str, t_ms: int) -> int:
    """Start of the `interval` candle containing `t_ms`."""
    if interval == "M":
        return _month_start(t_ms)
    step = KLINE_INTERVALS_MS[interval]
    offset = WEEK_OFFSET_MS if interval == "W" else 0
    return (t_ms - offset) // step * step + offset


def _next_candle(interval: str, start_ms: int) -> int:
    return _month_start(start_ms, 1) if interval == "M" else start_ms + KLINE_INTERVALS_MS[interval]


def mark_price_kline(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/mark-price-kline?category&symbol&interval&start&end&limit: mark-price candles, newest
    first, each `[startTime, openPrice, highPrice, lowPrice, closePrice]` (strings).

    shape: https://bybit-exchange.github.io/docs/v5/market/mark-kline (bybit-exchange/docs
    docs/v5/market/mark-kline.mdx): `category` `linear` (the default when absent) or `inverse`; `interval`
    `1,3,5,15,30,60,120,240,360,720,D,M,W`; `limit` "futures: [1, 1000] ... Default: 200"; `list` "Sort in
    reverse by startTime". Response example: {"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSDT",
    "category":"linear","list":[["1670608800000","17164.16","17164.16","17121.5","17131.64"]]},
    "retExtInfo":{},"time":1672026361839}.

    Candles: open = `data.mark_price` at the candle's start, close = the mark at its last millisecond (or now,
    while the candle is open: "the last traded price when the candle is not closed"), high/low = the larger
    and smaller of the two. Which candles: those starting in [the candle containing `start`, `end` or now]
    ("bybit returns the candle that contains `start`": ccxt issue #26736, PR #29402); with `start` the
    `limit` oldest of them (ccxt's since-paging relies on it), without it the `limit` newest.
    """
    if "category" not in query:
        query = {**query, "category": "linear"}
    inst = _linear_symbol(sim, query)
    interval = query.get("interval", "")
    if interval not in KLINE_INTERVALS_MS and interval != "M":
        raise BybitError(10001, "params error: interval invalid")
    limit = _limit(query, 200, 1000)
    start, end = _int(query, "start"), _int(query, "end")
    now = sim.now()
    hi = now if end is None else min(end, now)
    listed = data.series_start(NAME, inst.id)  # no candle starts before the listing
    lo = listed if start is None else max(_candle_start(interval, start), listed)
    first = _candle_start(interval, lo)
    if first < lo:
        first = _next_candle(interval, first)
    starts: list[int] = []
    if interval == "M":  # a few dozen months at most
        t = first
        while t <= hi:
            starts.append(t)
            t = _next_candle(interval, t)
        starts = starts[:limit] if start is not None else starts[-limit:]
    elif first <= hi:
        step = KLINE_INTERVALS_MS[interval]
        last = first + (hi - first) // step * step
        if start is not None:
            last = min(last, first + (limit - 1) * step)
        else:
            first = max(first, last - (limit - 1) * step)
        starts = list(range(first, last + 1, step))
    d = inst.price_decimals
    rows = []
    for t in reversed(starts):
        open_ = data.mark_price(NAME, inst.id, t, sim.seed)
        close = data.mark_price(NAME, inst.id, min(_next_candle(interval, t) - 1, now), sim.seed)
        rows.append(
            [
                str(t),
                data.fmt(open_, d),
                data.fmt(max(open_, close), d),
                data.fmt(min(open_, close), d),
                data.fmt(close, d),
            ]
        )
    return {"symbol": inst.id, "category": "linear", "list": rows}


def funding_history(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/funding/history?category&symbol&startTime&endTime&limit, newest first.

    shape: https://bybit-exchange.github.io/docs/v5/market/history-fund-rate; ccxt bybit.fetch_funding_rate_history
    comment. Sample: {"category":"linear","list":[{"symbol":"ETHPERP","fundingRate":"0.0001",
    "fundingRateTimestamp":"1672041600000"}]}
    """
    inst = _linear_symbol(sim, query)
    limit = _limit(query, 200, 200)
    start, end = _int(query, "startTime"), _int(query, "endTime")
    if start is not None and end is None:
        raise BybitError(10001, "params error: endTime is required when startTime is passed")
    now = sim.now()
    hi = now if end is None else min(end, now)
    lo = data.series_start(NAME, inst.id) if start is None else start
    rows = []
    for t, rate, _hours in data.iter_settlements(NAME, inst.id, lo, hi, sim.seed, descending=True):
        rows.append(
            {
                "symbol": inst.id,
                "fundingRate": data.fmt_short(rate),
                "fundingRateTimestamp": str(t),
            }
        )
        if len(rows) >= limit:
            break
    return {"category": "linear", "list": rows}


def server_time(sim: ExchangeSimulator, query: Mapping[str, str]) -> dict[str, Any]:
    """GET /v5/market/time (shape: https://bybit-exchange.github.io/docs/v5/market/time; ccxt bybit.fetch_time).

    Sample: {"timeSecond":"1688639403","timeNano":"1688639403423213947"}
    """
    del query
    now = sim.now()
    return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}


# --- websocket: public linear stream, all-liquidation topic ----------------------------------------------

WS_PUBLIC_LINEAR = "/v5/public/linear"
LIQUIDATION_TOPIC = "allLiquidation"


def liquidation_topic(symbol_id: str) -> str:
    """`allLiquidation.<SYMBOL>`, e.g. `allLiquidation.BTCUSDT`."""
    return f"{LIQUIDATION_TOPIC}.{symbol_id}"


def liquidation_side(liquidated: LiquidatedSide) -> str:
    """Bybit's `S` is the side of the liquidated POSITION: "Buy" means a long position was liquidated."""
    return "Buy" if liquidated == "LONG" else "Sell"


def liquidation_message(events: Sequence[SentEvent], now_ms: int) -> dict[str, Any]:
    """One `allLiquidation` push; `data` carries one item per event (several when batched).

    shape: https://bybit-exchange.github.io/docs/v5/websocket/public/all-liquidation (push frequency 500ms,
    all liquidations of the symbol in that window in `data`); ccxt bybit.handle_liquidation comment.
    Sample: {"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":1739502303204,
    "data":[{"T":1739502302929,"s":"BTCUSDT","S":"Buy","v":"0.003","p":"97000.5"}]}
    """
    return {
        "topic": liquidation_topic(events[0].symbol),
        "type": "snapshot",
        "ts": now_ms,
        "data": [
            {"T": e.t_ms, "s": e.symbol, "S": e.side, "v": e.quantity_str, "p": e.price_str} for e in events
        ],
    }


WIRE = WireFormat(
    wire_side=liquidation_side,
    topic=liquidation_topic,
    all_topic=None,
    message=liquidation_message,
    batches=True,
)


def _ws_ack(
    conn: WsConnection, msg: dict[str, Any], op: str, *, success: bool, ret_msg: str
) -> dict[str, Any]:
    ack: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id}
    if "req_id" in msg:
        ack["req_id"] = msg["req_id"]
    ack["op"] = op
    return ack


async def on_ws_text(sim: ExchangeSimulator, conn: WsConnection, text: str) -> None:
    """Requests over the public linear socket (https://bybit-exchange.github.io/docs/v5/ws/connect).

    - `{"op":"subscribe","req_id":1,"args":["allLiquidation.BTCUSDT"]}` ->
      `{"success":true,"ret_msg":"subscribe","conn_id":"...","req_id":1,"op":"subscribe"}` (req_id echoed as
      sent); a topic the simulator does not serve (another channel or symbol) fails the whole request:
      `{"success":false,"ret_msg":"Invalid symbol :[orderbook.1.BTCUSDT]",...,"op":"subscribe"}`
    - `{"op":"unsubscribe","req_id":2,"args":[...]}` -> `{"success":true,"ret_msg":"","conn_id":"...",
      "req_id":2,"op":"unsubscribe"}`
    - `{"op":"ping","req_id":3}` -> `{"success":true,"ret_msg":"pong","conn_id":"...","req_id":3,"op":"ping"}`
    - anything else -> `{"success":false,"ret_msg":"error:invalid op","conn_id":"...","op":...}`
    """
    feed = sim.liquidations
    msg = parse_json(text)
    if not isinstance(msg, dict):
        await feed.reply(conn, {"success": False, "ret_msg": "error:invalid op", "conn_id": conn.conn_id})
        return
    op = msg.get("op")
    args = msg.get("args")
    topics = [a for a in args if isinstance(a, str)] if isinstance(args, list) else []
    if op == "ping":
        feed.pings_received[NAME] += 1
        await feed.reply(conn, _ws_ack(conn, msg, "ping", success=True, ret_msg="pong"))
    elif op == "subscribe":
        valid = {liquidation_topic(i.id) for i in sim.instruments(NAME)}
        bad = [t for t in topics if t not in valid]
        if bad or not topics:
            ack = _ws_ack(conn, msg, "subscribe", success=False, ret_msg=f"Invalid symbol :[{','.join(bad)}]")
            feed.subscribe(conn, [])
        else:
            ack = _ws_ack(conn, msg, "subscribe", success=True, ret_msg="subscribe")
            feed.subscribe(conn, topics)
        await feed.reply(conn, ack)
    elif op == "unsubscribe":
        conn.topics.difference_update(topics)
        await feed.reply(conn, _ws_ack(conn, msg, "unsubscribe", success=True, ret_msg=""))
    else:
        await feed.reply(conn, _ws_ack(conn, msg, str(op), success=False, ret_msg="error:invalid op"))


def register_ws(app: web.Application, sim: ExchangeSimulator) -> None:
    """The v5 public linear websocket at `/v5/public/linear`: events `liquidation_message`, requests
    `on_ws_text`. Websocket-level PING frames are answered too (ccxt uses app-level pings)."""
    sim.liquidations.add_exchange(NAME, WIRE)

    async def ws_public_linear(request: web.Request) -> web.StreamResponse:
        async def on_text(conn: WsConnection, text: str) -> None:
            await on_ws_text(sim, conn, text)

        return await sim.liquidations.serve(request, NAME, on_text)

    app.router.add_get(WS_PUBLIC_LINEAR, ws_public_linear)


def register(app: web.Application, sim: ExchangeSimulator) -> None:
    """Add the Bybit v5 routes to `app`."""

    def route(fn: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                result = fn(sim, request.query)
            except BybitError as e:
                return json_response(envelope(sim, {}, e.code, e.msg))
            return json_response(envelope(sim, result))

        return handler

    app.router.add_get("/v5/market/time", route(server_time))
    app.router.add_get("/v5/market/instruments-info", route(instruments_info))
    app.router.add_get("/v5/market/tickers", route(tickers))
    app.router.add_get("/v5/market/open-interest", route(open_interest))
    app.router.add_get("/v5/market/mark-price-kline", route(mark_price_kline))
    app.router.add_get("/v5/market/funding/history", route(funding_history))
    register_ws(app, sim)
