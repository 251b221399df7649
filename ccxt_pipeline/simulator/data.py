"""Deterministic market data for the local exchange simulator.

Everything here is a pure function of (seed, exchange, symbol, time): no I/O, no clock, no state. Times are
integer milliseconds UTC. The simulator's HTTP handlers only format these values in each exchange's wire
format, so a test can compute the exact value ccxt must return (`ccxt value == data.open_interest(...)`).

Shapes of the series:
- prices and open interest are sums of slow sines (phases hashed from the seed and the coin) plus a small
  noise term that is linear between hashed values on the 5-minute grid: smooth-ish, defined for any t;
- values are rounded the way the exchange prints them (price tick / significant figures, amount step), so
  formatting them as decimal strings and parsing them back (what ccxt does) gives the same float;
- funding rates are hashed per settlement time, scaled by the funding interval (interval/8 of an 8h rate).

The point functions are memoised in bounded caches (pure, so a cache changes nothing but speed and memory):
the simulator must answer in its configured latency, not in the time it takes to compute a month of
5-minute points, and a whole-market walk over years must not grow its memory without bound.

Symbols are the exchanges' own ids (`BTCUSDT`, Bybit's USDC perpetual `BTCPERP`, or the coin `BTC` / `kPEPE`
on Hyperliquid).
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

HISTORY_START_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z: first funding settlement and first open-interest point of every symbol."""

BINANCE_SOL_SWITCH_MS = 1_740_787_200_000
"""2025-03-01T00:00:00Z: Binance SOLUSDT goes from 8h to 4h funding."""

EXCHANGES: tuple[str, ...] = ("binance", "bybit", "hyperliquid")

PERIODS_MS: dict[str, int] = {
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
}
"""Open-interest history periods (Binance names); every grid is aligned on the UTC epoch."""

_NOISE_BUCKET_MS = 5 * MINUTE_MS


@dataclass(frozen=True)
class Instrument:
    """One linear perpetual of the simulator, with the metadata its exchange publishes."""

    exchange: str
    id: str
    """The exchange's id (`BTCUSDT`; the coin `BTC` on Hyperliquid)."""
    ccxt_symbol: str
    base: str
    quote: str
    settle: str
    tick_size: str
    """Price tick as the exchange prints it (`0.10`); Hyperliquid uses significant figures instead."""
    step_size: str
    """Quantity step (`0.001`)."""
    price_decimals: int
    """Decimals of mark/index prices as served (Hyperliquid: see `sig_figs`)."""
    amount_decimals: int
    """Decimals of open-interest amounts as served (Hyperliquid: `szDecimals`)."""
    min_qty: str
    max_qty: str
    max_leverage: int
    launch_ms: int
    base_price: float
    base_open_interest: float
    """Typical open interest in base units."""
    generated: bool = False
    """True for the generated long tail of the full market (`FULL_INSTRUMENTS`), False for the core symbols."""


def _inst(
    exchange: str,
    coin: str,
    *,
    tick: str,
    step: str,
    price_decimals: int,
    amount_decimals: int,
    min_qty: str,
    max_qty: str,
    max_leverage: int,
    launch_ms: int,
    base_price: float,
    base_oi: float,
    quote: str = "USDT",
    ident: str | None = None,
) -> Instrument:
    if exchange == "hyperliquid":
        ident, quote, settle = coin, "USDC", "USDC"
    else:
        ident, settle = ident or f"{coin}{quote}", quote
    return Instrument(
        exchange=exchange,
        id=ident,
        ccxt_symbol=f"{coin.upper()}/{quote}:{settle}",  # ccxt upper-cases codes: kPEPE -> KPEPE/USDC:USDC
        base=coin,
        quote=quote,
        settle=settle,
        tick_size=tick,
        step_size=step,
        price_decimals=price_decimals,
        amount_decimals=amount_decimals,
        min_qty=min_qty,
        max_qty=max_qty,
        max_leverage=max_leverage,
        launch_ms=launch_ms,
        base_price=base_price,
        base_open_interest=base_oi,
    )


_BASE_PRICE = {"BTC": 90_000.0, "ETH": 3_000.0, "SOL": 150.0, "kPEPE": 0.0105}

INSTRUMENTS: dict[str, tuple[Instrument, ...]] = {
    "binance": (
        _inst(
            "binance",
            "BTC",
            tick="0.10",
            step="0.001",
            price_decimals=2,
            amount_decimals=3,
            min_qty="0.001",
            max_qty="1000",
            max_leverage=125,
            launch_ms=1_569_398_400_000,
            base_price=_BASE_PRICE["BTC"],
            base_oi=80_000.0,
        ),
        _inst(
            "binance",
            "ETH",
            tick="0.01",
            step="0.001",
            price_decimals=2,
            amount_decimals=3,
            min_qty="0.001",
            max_qty="10000",
            max_leverage=100,
            launch_ms=1_569_398_400_000,
            base_price=_BASE_PRICE["ETH"],
            base_oi=2_000_000.0,
        ),
        _inst(
            "binance",
            "SOL",
            tick="0.0100",
            step="1",
            price_decimals=3,
            amount_decimals=3,
            min_qty="1",
            max_qty="1000000",
            max_leverage=75,
            launch_ms=1_600_214_400_000,
            base_price=_BASE_PRICE["SOL"],
            base_oi=8_000_000.0,
        ),
    ),
    "bybit": (
        _inst(
            "bybit",
            "BTC",
            tick="0.10",
            step="0.001",
            price_decimals=2,
            amount_decimals=3,
            min_qty="0.001",
            max_qty="1190.000",
            max_leverage=100,
            launch_ms=1_585_526_400_000,
            base_price=_BASE_PRICE["BTC"],
            base_oi=55_000.0,
        ),
        _inst(
            "bybit",
            "ETH",
            tick="0.01",
            step="0.01",
            price_decimals=2,
            amount_decimals=2,
            min_qty="0.01",
            max_qty="7240.00",
            max_leverage=100,
            launch_ms=1_615_766_400_000,
            base_price=_BASE_PRICE["ETH"],
            base_oi=1_200_000.0,
        ),
        _inst(
            "bybit",
            "SOL",
            tick="0.010",
            step="0.1",
            price_decimals=3,
            amount_decimals=1,
            min_qty="0.1",
            max_qty="79770.0",
            max_leverage=100,
            launch_ms=1_633_392_000_000,
            base_price=_BASE_PRICE["SOL"],
            base_oi=6_000_000.0,
        ),
        # USDC perpetuals: Bybit names them `<BASE>PERP` (the "USDC" group of
        # https://bybit-exchange.github.io/docs/v5/market/fee-group-info lists BTCPERP, ETHPERP, ...), with
        # quoteCoin and settleCoin USDC; ccxt maps them to BTC/USDC:USDC. Filters are illustrative.
        _inst(
            "bybit",
            "BTC",
            quote="USDC",
            ident="BTCPERP",
            tick="0.10",
            step="0.001",
            price_decimals=2,
            amount_decimals=3,
            min_qty="0.001",
            max_qty="100.000",
            max_leverage=100,
            launch_ms=1_640_995_200_000,
            base_price=_BASE_PRICE["BTC"],
            base_oi=4_000.0,
        ),
        _inst(
            "bybit",
            "ETH",
            quote="USDC",
            ident="ETHPERP",
            tick="0.01",
            step="0.01",
            price_decimals=2,
            amount_decimals=2,
            min_qty="0.01",
            max_qty="1500.00",
            max_leverage=100,
            launch_ms=1_640_995_200_000,
            base_price=_BASE_PRICE["ETH"],
            base_oi=60_000.0,
        ),
    ),
    "hyperliquid": (
        _inst(
            "hyperliquid",
            "BTC",
            tick="",
            step="0.00001",
            price_decimals=0,
            amount_decimals=5,
            min_qty="0.00001",
            max_qty="",
            max_leverage=40,
            launch_ms=HISTORY_START_MS,
            base_price=_BASE_PRICE["BTC"],
            base_oi=25_000.0,
        ),
        _inst(
            "hyperliquid",
            "ETH",
            tick="",
            step="0.0001",
            price_decimals=1,
            amount_decimals=4,
            min_qty="0.0001",
            max_qty="",
            max_leverage=25,
            launch_ms=HISTORY_START_MS,
            base_price=_BASE_PRICE["ETH"],
            base_oi=500_000.0,
        ),
        _inst(
            "hyperliquid",
            "SOL",
            tick="",
            step="0.01",
            price_decimals=2,
            amount_decimals=2,
            min_qty="0.01",
            max_qty="",
            max_leverage=20,
            launch_ms=HISTORY_START_MS,
            base_price=_BASE_PRICE["SOL"],
            base_oi=3_000_000.0,
        ),
        # Hyperliquid spells its 1000-unit coins with a lower-case `k` (meta universe name "kPEPE",
        # szDecimals 0): https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/perpetuals
        _inst(
            "hyperliquid",
            "kPEPE",
            tick="",
            step="1",
            price_decimals=6,
            amount_decimals=0,
            min_qty="1",
            max_qty="",
            max_leverage=10,
            launch_ms=HISTORY_START_MS,
            base_price=_BASE_PRICE["kPEPE"],
            base_oi=4_000_000_000.0,
        ),
    ),
}

# --- deterministic noise -------------------------------------------------------------------------------


def _unit(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) hashed from the seed and the parts."""
    key = "|".join([str(seed), *(str(p) for p in parts)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2.0**64


def _signed(seed: int, *parts: object) -> float:
    """A uniform number in [-1, 1) hashed from the seed and the parts."""
    return 2.0 * _unit(seed, *parts) - 1.0


@functools.lru_cache(maxsize=1 << 12)
def _bucket_noise(seed: int, key: str, bucket: int) -> float:
    # neighbouring points share their buckets: a small cache halves the hashing of a series walk
    return _signed(seed, key, bucket)


def _noise(seed: int, key: str, t_ms: int) -> float:
    """Noise in [-1, 1): hashed values on the 5-minute grid, linear in between."""
    bucket, offset = divmod(t_ms, _NOISE_BUCKET_MS)
    a = _bucket_noise(seed, key, bucket)
    b = _bucket_noise(seed, key, bucket + 1)
    return a + (b - a) * (offset / _NOISE_BUCKET_MS)


@functools.lru_cache(maxsize=1 << 14)
def _phase(seed: int, key: str, period_ms: float) -> float:
    # constant per (seed, series, period): hashed once instead of at every point
    return 2.0 * math.pi * _unit(seed, key, "phase", period_ms)


def _wave(seed: int, key: str, t_ms: int, period_ms: float) -> float:
    return math.sin(2.0 * math.pi * (t_ms / period_ms) + _phase(seed, key, period_ms))


def _round_sig(x: float, figures: int) -> float:
    if x == 0:
        return 0.0
    digits = figures - math.floor(math.log10(abs(x))) - 1
    return round(x, max(digits, 0))


def _round_price(inst: Instrument, x: float) -> float:
    if inst.exchange == "hyperliquid":
        # Hyperliquid prints prices with at most 5 significant figures (and <= 6 - szDecimals decimals).
        return round(_round_sig(x, 5), max(6 - inst.amount_decimals, 0))
    return round(x, inst.price_decimals)


# --- the full market: a generated long tail of perpetuals with listing dates ----------------------------

LISTING_END_MS = 1_782_777_600_000
"""2026-06-30T00:00:00Z: no generated perpetual is listed after this (all are listed by any realistic now)."""

GENERATED_COUNTS: dict[str, int] = {"binance": 230, "bybit": 225, "hyperliquid": 210}
"""How many generated perpetuals each exchange lists in the full market (on top of the core symbols)."""

_LISTING_FROM_MS: dict[str, int] = {
    "binance": 1_569_398_400_000,  # 2019-09-25: BTCUSDT's onboardDate, the first USD-M perpetual (core table)
    "bybit": 1_585_526_400_000,  # 2020-03-30: BTCUSDT's launchTime in Bybit's instruments-info example
    "hyperliquid": 1_688_169_600_000,  # 2023-07-01: an illustrative start of Hyperliquid's perp listings
}
_LEVERAGES: dict[str, tuple[int, ...]] = {
    "binance": (20, 25, 50, 75),
    "bybit": (25, 50, 75),
    "hyperliquid": (3, 5, 10, 20),
}
_ONSETS = ("B", "D", "F", "G", "K", "L", "M", "N", "P", "R", "S", "T", "V", "Z")
_NUCLEI = ("A", "E", "I", "O", "U")
_CODAS = ("", "X", "N", "R", "K")


def _generated_coins(count: int) -> list[str]:
    """`count` distinct made-up coin codes of 3-5 capitals (`ZAK`, `MEXO`), the same for every seed."""
    coins: list[str] = []
    seen = {"BTC", "ETH", "SOL", "PEPE", "KPEPE"}
    k = 0
    while len(coins) < count:
        u = [_unit(0, "coin", k, j) for j in range(5)]
        k += 1
        code = _ONSETS[int(u[0] * len(_ONSETS))] + _NUCLEI[int(u[1] * len(_NUCLEI))]
        code += _ONSETS[int(u[2] * len(_ONSETS))] + _NUCLEI[int(u[3] * len(_NUCLEI))] if u[4] < 0.5 else ""
        code += _CODAS[int(u[4] * 10) % len(_CODAS)]
        if len(code) >= 3 and code not in seen:
            seen.add(code)
            coins.append(code)
    return coins


_GENERATED_COINS: list[str] = _generated_coins(max(GENERATED_COUNTS.values()))


def _generated_price(coin: str) -> float:
    """A base price log-uniform in [0.001, 500] (5 significant figures), hashed from the coin code."""
    return _round_sig(10.0 ** (-3.0 + 5.7 * _unit(0, "price", coin)), 5)


def _generated(exchange: str, rank: int, coin: str) -> Instrument:
    price = _generated_price(coin)
    magnitude = math.floor(math.log10(price))
    price_decimals = min(8, max(0, 4 - magnitude))
    amount_decimals = min(3, max(0, magnitude + 1))
    step = "1" if amount_decimals == 0 else "0." + "0" * (amount_decimals - 1) + "1"
    tick = "1" if price_decimals == 0 else "0." + "0" * (price_decimals - 1) + "1"
    notional = 10.0 ** (6.3 + 2.4 * _unit(0, "oi", exchange, coin))  # 2M .. 500M quote units
    lo = _LISTING_FROM_MS[exchange]
    # more listings in later years (sqrt skew), on a whole hour
    launch = lo + int((LISTING_END_MS - lo) * math.sqrt(_unit(0, "listing", exchange, coin)))
    leverages = _LEVERAGES[exchange]
    hl = exchange == "hyperliquid"
    return Instrument(
        exchange=exchange,
        id=coin if hl else f"{coin}USDT",
        ccxt_symbol=f"{coin}/USDC:USDC" if hl else f"{coin}/USDT:USDT",
        base=coin,
        quote="USDC" if hl else "USDT",
        settle="USDC" if hl else "USDT",
        tick_size="" if hl else tick,
        step_size=step,
        price_decimals=0 if hl else price_decimals,
        amount_decimals=amount_decimals,
        min_qty=step,
        max_qty="" if hl else f"{10 ** (amount_decimals + 6 - max(magnitude, 0))}",
        max_leverage=leverages[int(_unit(0, "lev", exchange, coin) * len(leverages))],
        launch_ms=launch // HOUR_MS * HOUR_MS,
        base_price=price,
        base_open_interest=round(notional / price, amount_decimals),
        generated=True,
    )


def _generated_instruments(exchange: str) -> tuple[Instrument, ...]:
    """The exchange's generated perpetuals: a subset of the shared coin list (coins are listed on several
    exchanges, each at its own date), in listing order."""
    count = GENERATED_COUNTS[exchange]
    ranked = sorted(_GENERATED_COINS, key=lambda c: _unit(0, "pick", exchange, c))[:count]
    return tuple(
        sorted((_generated(exchange, r, c) for r, c in enumerate(ranked)), key=lambda i: i.launch_ms)
    )


FULL_INSTRUMENTS: dict[str, tuple[Instrument, ...]] = {
    ex: INSTRUMENTS[ex] + _generated_instruments(ex) for ex in INSTRUMENTS
}
"""The full market: the core symbols (`INSTRUMENTS`, unchanged) followed by the generated long tail
(`GENERATED_COUNTS`). Only the listing is generated at import; every series is a pure function of time."""

_BASE_PRICE.update({c: _generated_price(c) for c in _GENERATED_COINS})

_BY_ID: dict[tuple[str, str], Instrument] = {
    (i.exchange, i.id): i for v in FULL_INSTRUMENTS.values() for i in v
}


def listed(exchange: str, *, full: bool = False) -> tuple[Instrument, ...]:
    """The perpetuals `exchange` lists: the core symbols, or with `full` the whole generated market."""
    return (FULL_INSTRUMENTS if full else INSTRUMENTS)[exchange]


def symbols(exchange: str, *, full: bool = False) -> list[str]:
    """The exchange's ids of the simulated perpetuals (`["BTCUSDT", ...]`, Hyperliquid `["BTC", ...]`)."""
    return [i.id for i in listed(exchange, full=full)]


def instrument(exchange: str, symbol: str) -> Instrument:
    """The instrument `symbol` (exchange id) of `exchange`; KeyError if it is not simulated."""
    return _BY_ID[(exchange, symbol)]


def find_instrument(exchange: str, symbol: str, *, full: bool = True) -> Instrument | None:
    """The instrument with this exchange id, or None; without `full`, None for a generated one."""
    inst = _BY_ID.get((exchange, symbol))
    if inst is None or (inst.generated and not full):
        return None
    return inst


def series_start(exchange: str, symbol: str) -> int:
    """The first time (ms) any series of the symbol has data: its listing, never before HISTORY_START_MS.

    Nothing is served before it (an empty list, as for a range with no data).
    """
    return max(HISTORY_START_MS, _BY_ID[(exchange, symbol)].launch_ms)


# --- prices and open interest --------------------------------------------------------------------------


def _underlying(seed: int, coin: str, t_ms: int) -> float:
    base = _BASE_PRICE[coin]
    key = f"px:{coin}"
    factor = (
        1.0
        + 0.10 * _wave(seed, key, t_ms, 61.0 * DAY_MS)
        + 0.04 * _wave(seed, key, t_ms, 7.3 * DAY_MS)
        + 0.01 * _wave(seed, key, t_ms, 0.9 * DAY_MS)
        + 0.002 * _noise(seed, key, t_ms)
    )
    return base * factor


_POINT_CACHE = 1 << 16
"""Entries kept per point function (about 250 bytes each: ~16 MB per function when full). A page of answers
is computed once and served again from the cache; a whole-market walk over years does not grow memory."""


@functools.lru_cache(maxsize=_POINT_CACHE)
def mark_price(exchange: str, symbol: str, t_ms: int, seed: int = 0) -> float:
    """Mark price at `t_ms`, rounded as the exchange prints it."""
    inst = instrument(exchange, symbol)
    basis = 1.0 + 0.0004 * _noise(seed, f"basis:{exchange}:{inst.base}", t_ms)
    return _round_price(inst, _underlying(seed, inst.base, t_ms) * basis)


@functools.lru_cache(maxsize=_POINT_CACHE)
def index_price(exchange: str, symbol: str, t_ms: int, seed: int = 0) -> float:
    """Index (Hyperliquid: oracle) price at `t_ms`, rounded as the exchange prints it."""
    inst = instrument(exchange, symbol)
    spread = 1.0 + 0.0001 * _noise(seed, f"index:{exchange}:{inst.base}", t_ms)
    return _round_price(inst, _underlying(seed, inst.base, t_ms) * spread)


@functools.lru_cache(maxsize=_POINT_CACHE)
def open_interest(exchange: str, symbol: str, t_ms: int, seed: int = 0) -> float:
    """Open interest in base units (contract size 1) at `t_ms`, rounded to the exchange's amount step."""
    inst = instrument(exchange, symbol)
    key = f"oi:{exchange}:{inst.base}"
    factor = (
        1.0
        + 0.25 * _wave(seed, key, t_ms, 45.0 * DAY_MS)
        + 0.08 * _wave(seed, key, t_ms, 3.1 * DAY_MS)
        + 0.02 * _wave(seed, key, t_ms, 0.37 * DAY_MS)
        + 0.004 * _noise(seed, key, t_ms)
    )
    return round(inst.base_open_interest * factor, inst.amount_decimals)


def open_interest_value(exchange: str, symbol: str, t_ms: int, seed: int = 0) -> float:
    """Open interest in quote currency: `open_interest x mark_price` at `t_ms`, rounded to the cent."""
    return round(open_interest(exchange, symbol, t_ms, seed) * mark_price(exchange, symbol, t_ms, seed), 2)


def period_grid(period: str, start_ms: int, end_ms: int) -> list[int]:
    """Points of the `period` grid (UTC-aligned) in [start_ms, end_ms], never before HISTORY_START_MS."""
    step = PERIODS_MS[period]
    lo = max(start_ms, HISTORY_START_MS)
    first = -(-lo // step) * step
    return list(range(first, end_ms + 1, step)) if first <= end_ms else []


# --- funding -------------------------------------------------------------------------------------------

_SCHEDULES: dict[tuple[str, str], tuple[tuple[int, int], ...]] = {
    ("binance", "BTCUSDT"): ((HISTORY_START_MS, 8),),
    ("binance", "ETHUSDT"): ((HISTORY_START_MS, 8),),
    ("binance", "SOLUSDT"): ((HISTORY_START_MS, 8), (BINANCE_SOL_SWITCH_MS, 4)),
    ("bybit", "BTCUSDT"): ((HISTORY_START_MS, 8),),
    ("bybit", "ETHUSDT"): ((HISTORY_START_MS, 8),),
    ("bybit", "SOLUSDT"): ((HISTORY_START_MS, 4),),
    ("bybit", "BTCPERP"): ((HISTORY_START_MS, 8),),
    ("bybit", "ETHPERP"): ((HISTORY_START_MS, 8),),
    ("hyperliquid", "BTC"): ((HISTORY_START_MS, 1),),
    ("hyperliquid", "ETH"): ((HISTORY_START_MS, 1),),
    ("hyperliquid", "SOL"): ((HISTORY_START_MS, 1),),
    ("hyperliquid", "kPEPE"): ((HISTORY_START_MS, 1),),
}
"""Funding schedule per symbol: (from ms, interval hours) segments; switch times lie on both grids."""

_GENERATED_HOURS: dict[str, tuple[tuple[float, int], ...]] = {
    "binance": ((0.75, 8), (1.0, 4)),  # most USD-M perpetuals fund every 8h, some every 4h (fundingInfo)
    "bybit": ((0.6, 8), (0.9, 4), (1.0, 1)),  # Bybit's fundingInterval: 480, 240 or 60 minutes
    "hyperliquid": ((1.0, 1),),  # Hyperliquid funds every hour
}


def _generated_schedule(inst: Instrument) -> tuple[tuple[int, int], ...]:
    """One segment from the series start (listing, or HISTORY_START_MS) with an interval hashed per symbol."""
    u = _unit(0, "interval", inst.exchange, inst.id)
    hours = next(h for bound, h in _GENERATED_HOURS[inst.exchange] if u < bound)
    return ((max(HISTORY_START_MS, inst.launch_ms), hours),)


_SCHEDULES.update(
    {(i.exchange, i.id): _generated_schedule(i) for v in FULL_INSTRUMENTS.values() for i in v if i.generated}
)

_RATE_DECIMALS = {"binance": 8, "bybit": 8, "hyperliquid": 10}
_MAX_RATE_8H = 0.0005


def funding_schedule(exchange: str, symbol: str) -> tuple[tuple[int, int], ...]:
    """The (from ms, interval hours) segments of the symbol's funding schedule."""
    return _SCHEDULES[(exchange, symbol)]


def funding_interval_hours(exchange: str, symbol: str, t_ms: int) -> int:
    """The funding interval in effect at `t_ms` (the first one before the history starts)."""
    schedule = _SCHEDULES[(exchange, symbol)]
    hours = schedule[0][1]
    for start, h in schedule:
        if start <= t_ms:
            hours = h
    return hours


def funding_rate(exchange: str, symbol: str, funding_time_ms: int, seed: int = 0) -> float:
    """The rate settled at `funding_time_ms` (also the live estimate before it settles).

    A rate for an interval of h hours is about h/8 of an 8h rate, within +-0.0005 for 8 hours.
    """
    hours = funding_interval_hours(exchange, symbol, funding_time_ms - 1)
    key = f"fr:{exchange}:{symbol}"
    raw = (
        0.0001
        + 0.00022 * _wave(seed, key, funding_time_ms, 11.0 * DAY_MS)
        + 0.00008 * _wave(seed, key, funding_time_ms, 1.7 * DAY_MS)
        + 0.00015 * _signed(seed, key, funding_time_ms)
    )
    clipped = max(-_MAX_RATE_8H, min(_MAX_RATE_8H, raw))
    return round(clipped * hours / 8.0, _RATE_DECIMALS[exchange])


def funding_premium(exchange: str, symbol: str, funding_time_ms: int, seed: int = 0) -> float:
    """Hyperliquid's `premium` of a settlement (deterministic, near 8 x the hourly rate)."""
    rate = funding_rate(exchange, symbol, funding_time_ms, seed)
    return round(rate * 8 - 0.0001 + 0.00005 * _signed(seed, f"prem:{exchange}:{symbol}", funding_time_ms), 8)


def _segments(exchange: str, symbol: str) -> list[tuple[int, int, int]]:
    """(lowest settlement time, highest settlement time, hours) per schedule segment.

    A settlement at t belongs to the segment in effect at t - 1: it closes a period of that segment's length.
    """
    schedule = _SCHEDULES[(exchange, symbol)]
    out: list[tuple[int, int, int]] = []
    for i, (start, hours) in enumerate(schedule):
        # the first settlement closes the first full period: at HISTORY_START_MS itself for the core
        # symbols (history "starts" there), strictly after the listing for a symbol listed later
        lo = HISTORY_START_MS if i == 0 and start <= HISTORY_START_MS else start + 1
        hi = schedule[i + 1][0] if i + 1 < len(schedule) else 2**62
        out.append((lo, hi, hours))
    return out


def iter_settlements(
    exchange: str, symbol: str, start_ms: int, end_ms: int, seed: int = 0, *, descending: bool = False
) -> Iterator[tuple[int, float, int]]:
    """Settlements (time ms, rate, interval hours) with start_ms <= time <= end_ms, lazily, in time order."""
    segments = _segments(exchange, symbol)
    if descending:
        segments.reverse()
    for lo, hi, hours in segments:
        step = hours * HOUR_MS
        a, b = max(start_ms, lo), min(end_ms, hi)
        if a > b:
            continue
        first = -(-a // step) * step
        last = (b // step) * step
        times = range(last, first - 1, -step) if descending else range(first, last + 1, step)
        for t in times:
            yield t, funding_rate(exchange, symbol, t, seed), hours


def funding_settlements(
    exchange: str, symbol: str, start_ms: int, end_ms: int, seed: int = 0
) -> list[tuple[int, float, int]]:
    """All settlements (funding time ms, rate, interval hours) with start_ms <= time <= end_ms, ascending.

    The interval of a settlement is the length of the funding period it closes (8 for Binance SOLUSDT's
    2025-03-01T00:00Z settlement, 4 from the next one on).
    """
    return list(iter_settlements(exchange, symbol, start_ms, end_ms, seed))


def next_funding_time(exchange: str, symbol: str, now_ms: int) -> int:
    """The first settlement strictly after `now_ms`."""
    step = funding_interval_hours(exchange, symbol, now_ms) * HOUR_MS
    return (now_ms // step + 1) * step


def current_funding(exchange: str, symbol: str, now_ms: int, seed: int = 0) -> tuple[float, int, int]:
    """(estimated rate, next funding time ms, interval hours) as the exchange shows it at `now_ms`.

    The estimate is exactly the rate that will settle at the next funding time.
    """
    nxt = next_funding_time(exchange, symbol, now_ms)
    return funding_rate(exchange, symbol, nxt, seed), nxt, funding_interval_hours(exchange, symbol, now_ms)


# --- formatting ----------------------------------------------------------------------------------------


def fmt(x: float, decimals: int) -> str:
    """`x` with `decimals` decimals (exchange style, trailing zeros); exact digits if those would lose it."""
    s = f"{x:.{decimals}f}"
    if float(s) != x:
        s = format(Decimal(repr(x)), "f")
    return s


def fmt_short(x: float) -> str:
    """The shortest decimal string that parses back to `x`, never in exponent form (Hyperliquid style)."""
    s = format(Decimal(repr(x)), "f")
    return s if "." in s else s + ".0"
