"""Hyperliquid (`ccxt.hyperliquid`) `POST /info` endpoint of the simulator, dispatched on the body's `type`.

Numbers are strings in Hyperliquid's style (shortest form: `"90123.0"`, `"0.0000125"`), times are integers.
Documented behaviour mirrored:
- `fundingHistory` needs `startTime` (HTTP 422 without it), `endTime` defaults to now; rows with
  startTime <= time <= endTime, ascending, at most 500 per answer; times a few ms past the hour.
- `perpDexs` answers `[null]`: only the main dex, so ccxt loads no HIP-3 markets.
- an unknown `type` or a body that is not JSON answers HTTP 422 `Failed to deserialize the JSON body into the
  target type` (text/plain).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ccxt_pipeline.simulator import data
from ccxt_pipeline.simulator._http import json_response, text_response
from ccxt_pipeline.simulator.limits import Limiter, Refusal, Rule, VenueLimits, retry_after_header

if TYPE_CHECKING:
    from ccxt_pipeline.simulator.server import ExchangeSimulator

NAME = "hyperliquid"
PATH_PREFIXES: tuple[str, ...] = ("/info", "/exchange", "/hyperliquid/")
WS_PREFIX = "/hyperliquid"
"""Hyperliquid's websocket path is `/ws`, like Binance's: the override moves it under this prefix."""
FUNDING_HISTORY_MAX_ROWS = 500
_MARGIN_TABLE = {"BTC": 56, "ETH": 55, "SOL": 54, "kPEPE": 10}
_DESERIALIZE_ERROR = "Failed to deserialize the JSON body into the target type"


class HyperliquidError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


# --- rate limits (enforced with `ExchangeSimulator.enforce_limits`) ------------------------------------

RATE_LIMIT_DOCS = (
    "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits"
)
NAUTILUS_LIMITER = (
    "https://github.com/nautechsystems/nautilus_trader/blob/develop/"
    "crates/adapters/hyperliquid/src/http/rate_limits.rs"
)
"""How the trusted adapter counts the limit (`WeightedLimiter`: a token bucket)."""
LIMITS = VenueLimits(
    # "REST requests share an aggregated weight limit of 1200 per minute" (per IP). Hyperliquid does not
    # document how the minute is counted. This follows the trusted implementation, NautilusTrader's
    # Hyperliquid adapter, which reads it as a token bucket: 1200 tokens, refilled at 1200/60 a second,
    # starting full, the per-items weight debited after the answer (`WeightedLimiter`, NAUTILUS_LIMITER).
    rules=(Rule("REST", 1200, 60.0, "bucket", source=RATE_LIMIT_DOCS + " ; " + NAUTILUS_LIMITER),),
)
_INFO_WEIGHT_2 = frozenset(
    {"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState", "exchangeStatus"}
)
"""'The following info requests have weight 2'; `userRole` weighs 60, "All other documented info requests
have weight 20"."""
_PER_20_ITEMS = frozenset(
    {
        "recentTrades",
        "historicalOrders",
        "userFills",
        "userFillsByTime",
        "fundingHistory",
        "userFunding",
        "nonUserFundingUpdates",
        "twapHistory",
        "userTwapSliceFills",
        "userTwapSliceFillsByTime",
        "delegatorHistory",
        "delegatorRewards",
        "validatorStats",
    }
)
"""Info types with "an additional rate limit weight per 20 items returned in the response"
(`candleSnapshot`: per 60 items)."""


def request_weight(endpoint: str, query: Mapping[str, str]) -> int:
    """The documented weight of one request before its answer (`RATE_LIMIT_DOCS`)."""
    del query
    if endpoint == "/exchange":  # "1 + floor(batch_length / 40)": the simulator serves no actions
        return 1
    kind = endpoint.removeprefix("info:")
    if kind in _INFO_WEIGHT_2:
        return 2
    return 60 if kind == "userRole" else 20


def extra_weight(endpoint: str, body: bytes) -> int:
    """One more per 20 items returned (per 60 for `candleSnapshot`); whole groups only: the docs do not say
    how a partial group counts."""
    kind = endpoint.removeprefix("info:")
    per = 20 if kind in _PER_20_ITEMS else 60 if kind == "candleSnapshot" else 0
    if not per:
        return 0
    try:
        rows = json.loads(body)
    except ValueError:
        return 0
    return len(rows) // per if isinstance(rows, list) else 0


def limit_headers(limiter: Limiter) -> dict[str, str]:
    """Hyperliquid documents no rate-limit headers."""
    del limiter
    return {}


def refused(sim: ExchangeSimulator, refusal: Refusal, limiter: Limiter) -> web.Response:
    """HTTP 429 (`rate_limited`), `Retry-After` the seconds until the weight fits again."""
    del limiter
    response = rate_limited(sim, force_429=True)
    response.headers["Retry-After"] = retry_after_header(refusal.retry_after_s)
    return response


def rate_limited(sim: ExchangeSimulator, *, force_429: bool) -> web.Response:
    """Hyperliquid's rate-limit answer: HTTP 429 with Retry-After and no JSON body (ccxt: RateLimitExceeded).

    shape: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/rate-limits-and-user-limits
    """
    del sim, force_429
    return web.Response(status=429, text="", headers={"Retry-After": "1"})


def _margin_table_id(inst: data.Instrument) -> int:
    # the core coins keep the ids of the docs' example; a generated coin's table is named by its max leverage
    return _MARGIN_TABLE.get(inst.base, inst.max_leverage)


def meta(sim: ExchangeSimulator | None = None) -> dict[str, Any]:
    """{"type":"meta"}: the perpetuals universe (the core coins without `sim`, else the coins `sim` lists).

    A universe entry carries no listing date (`szDecimals`, `name`, `maxLeverage`, `marginTableId`, and
    `onlyIsolated`/`isDelisted` when set, per the docs page below): a coin's series simply start at its
    listing (`data.series_start`).

    shape: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals#retrieve-perpetuals-metadata-universe-and-margin-tables;
    ccxt hyperliquid.fetch_swap_markets comment. Sample: {"universe":[{"szDecimals":5,"name":"BTC","maxLeverage":40,
    "marginTableId":56}],"marginTables":[[56,{"description":"","marginTiers":[{"lowerBound":"0.0","maxLeverage":40}]}]]}
    """
    insts = data.INSTRUMENTS[NAME] if sim is None else sim.instruments(NAME)
    universe = [
        {
            "szDecimals": inst.amount_decimals,
            "name": inst.id,
            "maxLeverage": inst.max_leverage,
            "marginTableId": _margin_table_id(inst),
        }
        for inst in insts
    ]
    tables_by_id = {
        _margin_table_id(inst): {
            "description": "",
            "marginTiers": [{"lowerBound": "0.0", "maxLeverage": inst.max_leverage}],
        }
        for inst in insts
    }
    tables = [[table_id, table] for table_id, table in tables_by_id.items()]
    # collateralToken 0 (USDC): the docs' metaAndAssetCtxs example for the first perp dex
    return {"universe": universe, "marginTables": tables, "collateralToken": 0}


def _asset_ctx(sim: ExchangeSimulator, inst: data.Instrument, now: int) -> dict[str, Any]:
    mark = data.mark_price(NAME, inst.id, now, sim.seed)
    oracle = data.index_price(NAME, inst.id, now, sim.seed)
    prev_day = data.mark_price(NAME, inst.id, now - data.DAY_MS, sim.seed)
    oi = data.open_interest(NAME, inst.id, now, sim.seed)
    rate, _next, _hours = data.current_funding(NAME, inst.id, now, sim.seed)
    day_base = round(oi * 3.0, inst.amount_decimals)
    premium = round((mark - oracle) / oracle, 8)
    # one price increment at Hyperliquid's 5 significant figures
    increment = 10.0 ** (len(str(int(mark))) - 5)
    return {
        "funding": data.fmt_short(rate),
        # both sides: twice the simulator's one-side series (`meta_and_asset_ctxs`)
        "openInterest": data.fmt(2 * oi, inst.amount_decimals),
        "prevDayPx": data.fmt_short(prev_day),
        "dayNtlVlm": data.fmt_short(round(day_base * mark, 4)),
        "premium": data.fmt_short(premium),
        "oraclePx": data.fmt_short(oracle),
        "markPx": data.fmt_short(mark),
        "midPx": data.fmt_short(mark),
        "impactPxs": [data.fmt_short(round(mark - increment, 6)), data.fmt_short(round(mark + increment, 6))],
        "dayBaseVlm": data.fmt(day_base, inst.amount_decimals),
    }


def meta_and_asset_ctxs(sim: ExchangeSimulator) -> list[Any]:
    """{"type":"metaAndAssetCtxs"}: [meta, asset contexts]; openInterest in coin units, no timestamp.

    `openInterest` is BOTH sides, as Hyperliquid's is ("size (sum of absolute position sizes)",
    https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/hip-3-deployer-actions, "Open interest
    caps"; docs/exchanges.md): exactly 2 x the one-side series `data.open_interest` (doubling is exact, so
    half of the served figure is that series to the last bit). Other figures are unchanged.

    shape: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals#retrieve-perpetuals-asset-contexts-includes-mark-price-current-funding-open-interest-etc;
    ccxt hyperliquid.fetch_swap_markets/fetch_funding_rates/parse_open_interest comments.
    Sample: [{"universe":[{"name":"SOL","szDecimals":2,"maxLeverage":50}]}, [{"dayNtlVlm":"9450588.2273",
    "funding":"0.0000198","impactPxs":["108.04","108.06"],"markPx":"108.04","midPx":"108.05",
    "openInterest":"10764.48","oraclePx":"107.99","premium":"0.00055561","prevDayPx":"111.81","dayBaseVlm":"..."}]]
    """
    now = sim.now()
    return [meta(sim), [_asset_ctx(sim, inst, now) for inst in sim.instruments(NAME)]]


def spot_meta() -> dict[str, Any]:
    """{"type":"spotMeta"}: only the USDC token, no spot pairs.

    shape: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/spot#retrieve-spot-metadata;
    ccxt hyperliquid.fetch_spot_markets comment. Sample: {"tokens":[{"name":"USDC","szDecimals":8,"weiDecimals":8,
    "index":0,"tokenId":"0x6d1e7cde53ba9467b783cb7c530ce054","isCanonical":true,"evmContract":null,"fullName":null}],
    "universe":[]}
    """
    usdc = {
        "name": "USDC",
        "szDecimals": 8,
        "weiDecimals": 8,
        "index": 0,
        "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
        "isCanonical": True,
        "evmContract": None,
        "fullName": None,
        "deployerTradingFeeShare": "0.0",
    }
    return {"tokens": [usdc], "universe": []}


FUNDING_LATE_MS = (5, 95)
"""Bounds (ms) of how late past the hour a simulated settlement is stamped."""


def funding_time(coin: str, hour_ms: int) -> int:
    """The time Hyperliquid stamps on the settlement of the hour `hour_ms`: a few milliseconds past it.

    Real answers do: the docs' example of "Retrieve historical funding rates" has `"time":1683849600076`
    (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals).
    Deterministic per (coin, hour), between FUNDING_LATE_MS ms.
    """
    lo, hi = FUNDING_LATE_MS
    return hour_ms + lo + zlib.crc32(f"{coin}:{hour_ms}".encode()) % (hi - lo + 1)


def funding_history(sim: ExchangeSimulator, body: dict[str, Any]) -> list[dict[str, Any]]:
    """{"type":"fundingHistory","coin","startTime","endTime"?}: ascending, at most 500 rows.

    shape: https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals#retrieve-historical-funding-rates;
    shared fixtures hyperliquid.request.json fetchFundingRateHistory (body `{"type":"fundingHistory","coin":"ETH",
    "startTime":1704323735060}`). Sample: [{"coin":"ETH","fundingRate":"0.0000125","premium":"0.00057962",
    "time":1704290400031}] (the docs' example: `"time":1683849600076`). Times are a few ms past the hour as on the real exchange (`funding_time`);
    startTime/endTime filter those stamped times. The rate is the simulator's series at the hour.
    """
    coin = body.get("coin")
    start = body.get("startTime")
    end = body.get("endTime")
    if not isinstance(coin, str) or not isinstance(start, int) or not (end is None or isinstance(end, int)):
        raise HyperliquidError(422, _DESERIALIZE_ERROR)
    inst = sim.find_instrument(NAME, coin)
    if inst is None:
        return []
    now = sim.now()
    hi = now if end is None else min(end, now)
    hours = data.iter_settlements(
        NAME, coin, max(start - FUNDING_LATE_MS[1], data.series_start(NAME, coin)), hi, sim.seed
    )
    stamped = ((funding_time(coin, t), t, rate) for t, rate, _hours in hours)
    rows = itertools.islice(
        ((at, t, r) for at, t, r in stamped if start <= at <= hi), FUNDING_HISTORY_MAX_ROWS
    )
    return [
        {
            "coin": coin,
            "fundingRate": data.fmt_short(rate),
            "premium": data.fmt_short(data.funding_premium(NAME, coin, t, sim.seed)),
            "time": at,
        }
        for at, t, rate in rows
    ]


def info(sim: ExchangeSimulator, body: Any) -> Any:
    """Dispatch one `POST /info` body on its `type`."""
    if not isinstance(body, dict):
        raise HyperliquidError(422, _DESERIALIZE_ERROR)
    kind = body.get("type")
    if kind == "meta":
        return meta(sim)
    if kind == "metaAndAssetCtxs":
        if body.get("dex") not in (None, ""):
            raise HyperliquidError(500, "null")
        return meta_and_asset_ctxs(sim)
    if kind == "spotMeta":
        return spot_meta()
    if kind == "spotMetaAndAssetCtxs":
        return [spot_meta(), []]
    if kind == "perpDexs":
        return [None]
    if kind == "exchangeStatus":
        return {"specialStatuses": None, "time": str(sim.now())}
    if kind == "allMids":
        now = sim.now()
        return {
            i.id: data.fmt_short(data.mark_price(NAME, i.id, now, sim.seed)) for i in sim.instruments(NAME)
        }
    if kind == "fundingHistory":
        return funding_history(sim, body)
    raise HyperliquidError(422, _DESERIALIZE_ERROR)


def register(app: web.Application, sim: ExchangeSimulator) -> None:
    """Add the Hyperliquid route (`POST /info`) to `app`."""

    async def info_handler(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return text_response(_DESERIALIZE_ERROR, 422)
        try:
            return json_response(info(sim, body))
        except HyperliquidError as e:
            return text_response(e.text, e.status)

    app.router.add_post("/info", info_handler)
