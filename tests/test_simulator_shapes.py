"""The simulator answers in the exchanges' own shapes: same keys, same JSON types, as the recorded payloads.

Each endpoint's raw answer from the simulator is compared with a payload recorded from (or documented by) the
exchange, from tests/fixtures/ (where each comes from: tests/fixtures/SOURCES.md). Every key of the recorded
payload must be in the simulator's answer with the same JSON type (string, number, bool, array, object), in
row objects too. Keys the simulator sends beyond the recording are allowed only when listed in EXTRA_KEYS
below with their source. A `null` in a recording says nothing about the type, so it matches anything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ccxt_pipeline.simulator.server import ExchangeSimulator

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_739_700_000_000  # 2025-02-16T10:00:00Z


def fixture(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


def ccxt_http_response(exchange: str, method: str, index: int = 0) -> Any:
    return fixture(f"ccxt/{exchange}.response.json")["methods"][method][index]["httpResponse"]


BYBIT_TICKERS = "https://bybit-exchange.github.io/docs/v5/market/tickers"

# endpoint -> {key path with [] for list items: {extra key: its source}}
EXTRA_KEYS: dict[str, dict[str, dict[str, str]]] = {
    "bybit tickers": {
        # ccxt's linear recording predates these; Bybit's tickers docs list them (field table and inverse example).
        "result.list[]": {
            "singleOpenInterest": BYBIT_TICKERS + " (field table: open interest size, single side)",
            "singleOpenInterestValue": BYBIT_TICKERS + " (field table: open interest value, single side)",
            "preOpenPrice": BYBIT_TICKERS + " (response example)",
            "preQty": BYBIT_TICKERS + " (response example)",
            "curPreListingPhase": BYBIT_TICKERS + " (response example)",
        },
    },
    "bybit instruments-info": {
        "result.list[]": {
            "displayName": "https://bybit-exchange.github.io/docs/v5/market/instrument (field table: displayName)",
        },
    },
    "hyperliquid metaAndAssetCtxs": {
        # The docs' example universe is older; the live answer (and NautilusTrader's
        # crates/adapters/hyperliquid/test_data/http_meta_perp_sample.json) carries marginTableId.
        "[0].universe[]": {
            "marginTableId": "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/"
            "perpetuals (HIP-3 example universe)"
        },
        "[1][]": {
            "dayBaseVlm": "https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/"
            "perpetuals (HIP-3 example asset contexts)"
        },
    },
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def differences(recorded: Any, simulated: Any, extra: dict[str, dict[str, str]], path: str = "") -> list[str]:
    """Where `simulated` lacks a key of `recorded`, has another JSON type, or has an unlisted extra key."""
    if recorded is None:
        return []
    if json_type(recorded) != json_type(simulated):
        return [f"{path or '<root>'}: recorded {json_type(recorded)}, simulator {json_type(simulated)}"]
    out: list[str] = []
    if isinstance(recorded, dict):
        allowed = extra.get(path, {})
        for key, value in recorded.items():
            where = f"{path}.{key}" if path else key
            if key not in simulated:
                out.append(f"{where}: missing in the simulator")
            else:
                out.extend(differences(value, simulated[key], extra, where))
        out.extend(
            f"{path}.{key}: extra key not in the recording and not listed in EXTRA_KEYS"
            for key in simulated
            if key not in recorded and key not in allowed
        )
    elif isinstance(recorded, list) and recorded:
        if not simulated:
            return [f"{path}: recorded list has items, the simulator's is empty"]
        if len({json_type(v) for v in recorded}) > 1:  # a tuple: [meta, contexts], [tableId, table]
            if len(simulated) < len(recorded):
                return [f"{path}: recorded {len(recorded)} items, simulator {len(simulated)}"]
            for i, (r, s) in enumerate(zip(recorded, simulated, strict=False)):
                out.extend(differences(r, s, extra, f"{path}[{i}]"))
            return out
        by_filter = {r.get("filterType"): r for r in recorded if isinstance(r, dict) and "filterType" in r}
        if by_filter:  # Binance symbol filters: one object shape per filterType
            seen = {s.get("filterType") for s in simulated if isinstance(s, dict)}
            out.extend(f"{path}: filterType {t} missing in the simulator" for t in by_filter if t not in seen)
        for item in simulated:
            template = (
                by_filter.get(item.get("filterType"), recorded[0]) if isinstance(item, dict) else recorded[0]
            )
            out.extend(differences(template, item, extra, f"{path}[]"))
    return out


async def get(http: aiohttp.ClientSession, sim: ExchangeSimulator, path: str) -> Any:
    async with http.get(sim.base_url + path) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.text())


async def post(http: aiohttp.ClientSession, sim: ExchangeSimulator, body: dict[str, Any]) -> Any:
    async with http.post(sim.base_url + "/info", json=body) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.text())


@pytest.fixture
async def sim() -> AsyncIterator[ExchangeSimulator]:
    async with ExchangeSimulator(seed=7, now_ms=NOW) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# (endpoint name, request path, recorded payload)
REST_GET = [
    (
        "binance openInterest",
        "/fapi/v1/openInterest?symbol=BTCUSDT",
        "exchange-docs/binance-usdm/openInterest.json",
    ),
    (
        "binance openInterestHist",
        "/futures/data/openInterestHist?symbol=BTCUSDT&period=5m&limit=3",
        "exchange-docs/binance-usdm/openInterestHist.json",
    ),
    (
        "binance premiumIndex",
        "/fapi/v1/premiumIndex?symbol=BTCUSDT",
        "exchange-docs/binance-usdm/premiumIndex.json",
    ),
    (
        "binance fundingRate",
        "/fapi/v1/fundingRate?symbol=BTCUSDT&limit=3",
        "exchange-docs/binance-usdm/fundingRate.json",
    ),
    ("binance exchangeInfo", "/fapi/v1/exchangeInfo", "nautilus/binance/exchangeInfo.json"),
    (
        "bybit open-interest",
        "/v5/market/open-interest?category=linear&symbol=BTCUSDT&intervalTime=1h&limit=3",
        "exchange-docs/bybit/open-interest.json",
    ),
    (
        "bybit funding/history",
        "/v5/market/funding/history?category=linear&symbol=BTCUSDT&limit=3",
        "exchange-docs/bybit/funding-history.json",
    ),
    (
        "bybit instruments-info",
        "/v5/market/instruments-info?category=linear",
        "exchange-docs/bybit/instruments-info-linear.json",
    ),
]


@pytest.mark.parametrize(("name", "path", "recorded"), REST_GET, ids=[r[0] for r in REST_GET])
async def test_rest_answer_has_the_recorded_shape(
    sim: ExchangeSimulator, http: aiohttp.ClientSession, name: str, path: str, recorded: str
) -> None:
    answer = await get(http, sim, path)
    assert differences(fixture(recorded), answer, EXTRA_KEYS.get(name, {})) == []


async def test_binance_funding_info_rows(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    # Binance lists only symbols whose cap, floor or interval were adjusted; the simulator may list none.
    answer = await get(http, sim, "/fapi/v1/fundingInfo")
    assert isinstance(answer, list)
    assert (
        differences(fixture("exchange-docs/binance-usdm/fundingInfo.json")[:1] * len(answer), answer, {})
        == []
    )


async def test_bybit_tickers(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    answer = await get(http, sim, "/v5/market/tickers?category=linear&symbol=BTCUSDT")
    # rows: ccxt's real linear recording; envelope: Bybit's docs (the recording's retCode is a string).
    rows = ccxt_http_response("bybit", "fetchTicker")["result"]["list"]
    assert (
        differences(rows, answer["result"]["list"], {"[]": EXTRA_KEYS["bybit tickers"]["result.list[]"]})
        == []
    )
    envelope = fixture("exchange-docs/bybit/tickers-inverse.json")
    envelope["result"]["list"] = []
    assert differences(envelope, answer, {}) == []


async def test_hyperliquid_meta_and_asset_ctxs(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    answer = await post(http, sim, {"type": "metaAndAssetCtxs"})
    recorded = fixture("exchange-docs/hyperliquid/metaAndAssetCtxs.json")
    assert differences(recorded, answer, EXTRA_KEYS["hyperliquid metaAndAssetCtxs"]) == []
    assert len(answer[0]["universe"]) == len(answer[1])  # contexts are aligned with the universe


async def test_hyperliquid_funding_history(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    answer = await post(
        http, sim, {"type": "fundingHistory", "coin": "BTC", "startTime": NOW - 3 * 3_600_000}
    )
    assert differences(fixture("exchange-docs/hyperliquid/fundingHistory.json"), answer, {}) == []


async def test_binance_force_order_message(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{sim.ws_url}/market/ws/btcusdt@forceOrder") as ws:
        await sim.liquidations.wait_subscribed("binance", "BTCUSDT")
        await sim.liquidations.emit(
            "binance", "BTCUSDT", liquidated_side="LONG", quantity=0.014, price=9910.0
        )
        message = await ws.receive_json(timeout=5)
    assert differences(fixture("exchange-docs/binance-usdm/forceOrder.json"), message, {}) == []


async def test_bybit_all_liquidation_message(sim: ExchangeSimulator, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{sim.ws_url}/v5/public/linear") as ws:
        await ws.send_json({"op": "subscribe", "req_id": "1", "args": ["allLiquidation.BTCUSDT"]})
        ack = await ws.receive_json(timeout=5)
        assert ack["success"] is True
        await sim.liquidations.emit(
            "bybit", "BTC/USDT:USDT", liquidated_side="LONG", quantity=0.5, price=97000.5
        )
        message = await ws.receive_json(timeout=5)
    assert differences(fixture("exchange-docs/bybit/allLiquidation.json"), message, {}) == []
