"""Tests for ccxt_pipeline.instruments: pure symbol resolution, no network."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccxt_pipeline.errors import SymbolError, UnknownExchangeError
from ccxt_pipeline.instruments import (
    QUOTES,
    Instrument,
    instrument_for,
    parse_instrument_id,
    resolve,
    resolve_many,
)
from ccxt_pipeline.venues import VENUES

ALL = list(VENUES)

BTC = {
    "binance": Instrument("binance", "BTC/USDT:USDT", "BTCUSDT-PERP.BINANCE", "BTC", "USDT", "USDT"),
    "bybit": Instrument("bybit", "BTC/USDT:USDT", "BTCUSDT-LINEAR.BYBIT", "BTC", "USDT", "USDT"),
    "hyperliquid": Instrument(
        "hyperliquid", "BTC/USDC:USDC", "BTC-USD-PERP.HYPERLIQUID", "BTC", "USDC", "USDC"
    ),
    "okx": Instrument("okx", "BTC/USDT:USDT", "BTC-USDT-SWAP.OKX", "BTC", "USDT", "USDT"),
}

# What each exchange lists, ccxt-style, with spot, inverse and dated symbols that must never be suggested.
MARKETS: dict[str, list[str]] = {
    "binance": [
        "BTC/USDT:USDT",
        "BTC/USDC:USDC",
        "ETH/USDT:USDT",
        "1000PEPE/USDT:USDT",
        "BTC/USDT",
        "XBT/USDT",
        "BTC/USD:BTC",
        "XBT/USD:XBT",
        "BTC/USDT:USDT-250328",
        "XBTC/EUR:EUR",
    ],
    "bybit": ["BTC/USDT:USDT", "BTC/USDC:USDC", "ETH/USDT:USDT", "BTC/USDT", "BTC/USD:BTC"],
    "hyperliquid": ["BTC/USDC:USDC", "ETH/USDC:USDC", "kPEPE/USDC:USDC", "PURR/USDC"],
    "okx": ["BTC/USDT:USDT", "ETH/USDT:USDT", "BTC/USD:BTC", "BTC/USDT"],
}


def error(
    text: str, exchanges: Sequence[str] = ALL, markets: Mapping[str, Collection[str]] | None = None
) -> str:
    """The message of the SymbolError that resolving `text` raises; asserts it is one line."""
    with pytest.raises(SymbolError) as info:
        resolve(text, exchanges, markets)
    message = str(info.value)
    assert message
    assert "\n" not in message
    return message


# --- the three input forms ----------------------------------------------------------------------------


def test_generic_form_maps_to_each_exchange_in_order() -> None:
    assert resolve("BTCUSDT-PERP", ALL) == [BTC[name] for name in ALL]
    assert resolve("BTCUSDT-PERP", ["okx", "binance"]) == [BTC["okx"], BTC["binance"]]


@pytest.mark.parametrize("text", ["btcusdt-perp", "  BTCUSDT-PERP\t", "BtcUsdt-Perp", "\nbtcusdt-PERP "])
def test_generic_form_is_case_insensitive_and_trimmed(text: str) -> None:
    assert resolve(text, ALL) == [BTC[name] for name in ALL]


def test_ccxt_symbol_means_that_market_on_each_exchange() -> None:
    assert resolve("BTC/USDT:USDT", ALL) == [BTC[name] for name in ALL]
    assert resolve("btc/usdt:usdt", ALL) == [BTC[name] for name in ALL]


def test_hyperliquid_maps_any_quote_to_the_coins_usdc_perp() -> None:
    for text in ("BTCUSDT-PERP", "BTCUSDC-PERP", "BTCUSD-PERP", "BTCFDUSD-PERP", "BTC/USDT:USDT"):
        assert resolve(text, ["hyperliquid"]) == [BTC["hyperliquid"]]


def test_usdc_perp_on_binance() -> None:
    expected = Instrument("binance", "BTC/USDC:USDC", "BTCUSDC-PERP.BINANCE", "BTC", "USDC", "USDC")
    assert resolve("BTC/USDC:USDC", ["binance"]) == [expected]
    assert resolve("BTCUSDC-PERP", ["binance"]) == [expected]
    assert resolve("BTC/USDC:USDC", ["binance", "hyperliquid"]) == [expected, BTC["hyperliquid"]]


@pytest.mark.parametrize("name", ALL)
def test_full_id_pins_its_exchange(name: str) -> None:
    inst = BTC[name]
    assert resolve(inst.instrument_id, ALL) == [inst]
    assert resolve(inst.instrument_id.lower(), ALL) == [inst]
    assert resolve(f"  {inst.instrument_id}  ", [name]) == [inst]


def test_full_id_outside_the_requested_exchanges() -> None:
    message = error("BTCUSDT-LINEAR.BYBIT", ["binance", "hyperliquid"])
    assert "bybit" in message
    assert "not among the requested exchanges (binance, hyperliquid)" in message
    assert "(none)" in error("BTCUSDT-LINEAR.BYBIT", [])


def test_exchange_aliases_and_duplicates() -> None:
    assert resolve("BTCUSDT-PERP", ["binanceusdm", "Binance", "bybit-linear"]) == [
        BTC["binance"],
        BTC["bybit"],
    ]
    assert resolve("BTCUSDT-PERP.BINANCE", ["binance-usdm"]) == [BTC["binance"]]


def test_unknown_exchange_name() -> None:
    with pytest.raises(UnknownExchangeError):
        resolve("BTCUSDT-PERP", ["binanse"])


def test_empty_exchange_list() -> None:
    assert resolve("BTCUSDT-PERP", []) == []


@pytest.mark.parametrize(
    ("text", "base", "quote"),
    [
        ("1000PEPEUSDT-PERP", "1000PEPE", "USDT"),
        ("ETHFDUSD-PERP", "ETH", "FDUSD"),
        ("ETHBUSD-PERP", "ETH", "BUSD"),  # BUSD beats USD: the longest quote suffix wins
        ("ETHUSD-PERP", "ETH", "USD"),
        ("USDCUSDT-PERP", "USDC", "USDT"),
        ("1INCHUSDC-PERP", "1INCH", "USDC"),
    ],
)
def test_generic_split(text: str, base: str, quote: str) -> None:
    binance, okx = resolve(text, ["binance", "okx"])
    assert (binance.base, binance.quote, binance.settle) == (base, quote, quote)
    assert binance.ccxt_symbol == f"{base}/{quote}:{quote}"
    assert binance.instrument_id == f"{base}{quote}-PERP.BINANCE"
    assert okx.instrument_id == f"{base}-{quote}-SWAP.OKX"


def test_full_ids_of_other_coins() -> None:
    assert resolve("1000PEPE-USDT-SWAP.OKX", ALL)[0].ccxt_symbol == "1000PEPE/USDT:USDT"
    assert resolve("ETH-USD-PERP.HYPERLIQUID", ALL)[0].ccxt_symbol == "ETH/USDC:USDC"
    assert resolve("ETHPERP-LINEAR.BYBIT", ALL)[0].ccxt_symbol == "ETH/USDC:USDC"


def test_resolve_many_deduplicates_and_keeps_order() -> None:
    got = resolve_many(
        ["BTCUSDT-PERP", "ETHUSDT-PERP", "btc/usdt:usdt", "BTCUSDT-LINEAR.BYBIT", "BTCUSDC-PERP"],
        ["binance", "bybit"],
    )
    assert [i.instrument_id for i in got] == [
        "BTCUSDT-PERP.BINANCE",
        "BTCUSDT-LINEAR.BYBIT",
        "ETHUSDT-PERP.BINANCE",
        "ETHUSDT-LINEAR.BYBIT",
        "BTCUSDC-PERP.BINANCE",
        "BTCPERP-LINEAR.BYBIT",
    ]
    # Hyperliquid maps every quote to USDC: two texts, one instrument.
    assert resolve_many(["BTCUSDT-PERP", "BTCUSDC-PERP"], ["hyperliquid"]) == [BTC["hyperliquid"]]
    assert resolve_many([], ALL) == []


def test_resolve_many_first_error_raises() -> None:
    with pytest.raises(SymbolError, match="BTCEUR-PERP"):
        resolve_many(["BTCUSDT-PERP", "BTCEUR-PERP", "BTCUSDT"], ALL)


def test_instrument_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BTC["binance"].base = "ETH"  # type: ignore[misc]


# --- instrument_for and parse_instrument_id -----------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_instrument_for_round_trips(name: str) -> None:
    for text in ("BTCUSDT-PERP", "1000PEPEUSDC-PERP", "ETHFDUSD-PERP", "XBUSD-PERP"):
        for inst in resolve(text, ALL):
            assert instrument_for(inst.exchange, inst.ccxt_symbol) == inst
            assert resolve(inst.instrument_id, ALL) == [inst]
    assert instrument_for(name, BTC[name].ccxt_symbol) == BTC[name]


def test_instrument_for_takes_exchange_data_verbatim() -> None:
    kpepe = instrument_for("hyperliquid", "kPEPE/USDC:USDC")
    assert kpepe.instrument_id == "kPEPE-USD-PERP.HYPERLIQUID"
    assert instrument_for("binanceusdm", "BTC/USDT:USDT") == BTC["binance"]


@pytest.mark.parametrize(
    ("exchange", "symbol", "fragment"),
    [
        ("binance", "BTC/USDT", "spot"),
        ("binance", "BTC/USD:BTC", "inverse"),
        ("binance", "BTC/USDT:USDT-250328", "not a perpetual"),
        ("binance", "BTC/USDT:USDT-250328-100000-C", "not a perpetual"),
        ("binance", "BTC/USDT:USDC", "settled in USDC"),
        ("binance", "BTC/EUR:EUR", "unknown quote"),
        ("binance", "FLX-CRCL/USDT:USDT", "alphanumeric"),
        ("hyperliquid", "BTC/USDT:USDT", "settle in USDC"),
        ("binance", "BTCUSDT", "malformed"),
        ("binance", "/USDT:USDT", "malformed"),
        ("binance", "BTC/:USDT", "malformed"),
        ("binance", "BTC/USDT:", "malformed"),
    ],
)
def test_instrument_for_rejects_non_linear_perpetuals(exchange: str, symbol: str, fragment: str) -> None:
    with pytest.raises(SymbolError, match=fragment):
        instrument_for(exchange, symbol)


def test_instrument_for_unknown_exchange() -> None:
    with pytest.raises(UnknownExchangeError):
        instrument_for("kraken", "BTC/USDT:USDT")


@pytest.mark.parametrize(
    ("instrument_id", "expected"),
    [
        ("BTCUSDT-PERP.BINANCE", ("BTCUSDT-PERP", "BINANCE")),
        ("BTCUSDT-LINEAR.BYBIT", ("BTCUSDT-LINEAR", "BYBIT")),
        ("BTC-USD-PERP.HYPERLIQUID", ("BTC-USD-PERP", "HYPERLIQUID")),
        ("BTC-USDT-SWAP.OKX", ("BTC-USDT-SWAP", "OKX")),
        ("x.y", ("x", "y")),
    ],
)
def test_parse_instrument_id(instrument_id: str, expected: tuple[str, str]) -> None:
    assert parse_instrument_id(instrument_id) == expected


@pytest.mark.parametrize(
    "instrument_id",
    [
        "",
        "BTCUSDT-PERP",
        ".BINANCE",
        "BTCUSDT-PERP.",
        "A.B.C",
        "BTC/USDT.BINANCE",
        "BTC USDT.BINANCE",
        "a.b ",
    ],
)
def test_parse_instrument_id_rejects_malformed(instrument_id: str) -> None:
    with pytest.raises(SymbolError, match="malformed instrument id"):
        parse_instrument_id(instrument_id)


# --- syntactic errors, without market data ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("BTCUSDT", ["did you mean 'BTCUSDT-PERP'?"]),
        ("btcusdt", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTCUSDT-PREP", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTCUSDT-SWAP", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTC-USDT", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTC-USDT-PERP", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTC_USDT-PERP", ["did you mean 'BTCUSDT-PERP'?"]),
        ("BTCEUR-PERP", ["unknown quote currency", "USDT, USDC, USD, FDUSD, BUSD"]),
        ("BTC-PERP", ["unknown quote currency", "USDT, USDC, USD, FDUSD, BUSD", "'BTCUSDT-PERP'"]),
        ("USDT-PERP", ["no base currency"]),
        ("-PERP", ["not a known symbol form"]),
        ("BTC!USDT-PERP", ["not a known symbol form"]),
        ("BTCUSDT-LINEAR", ["BYBIT symbol without its venue", "'BTCUSDT-LINEAR.BYBIT'", "'BTCUSDT-PERP'"]),
        ("btc-usdt-swap", ["OKX symbol without its venue", "'BTC-USDT-SWAP.OKX'", "'BTCUSDT-PERP'"]),
        ("BTC-USD-PERP", ["HYPERLIQUID symbol", "'BTC-USD-PERP.HYPERLIQUID'"]),
        ("", ["empty symbol"]),
        ("   ", ["empty symbol"]),
        ("BTC USDT-PERP", ["whitespace"]),
        ("BTC\nUSDT-PERP", ["whitespace"]),
    ],
)
def test_generic_form_errors(text: str, fragments: list[str]) -> None:
    message = error(text)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("BTC/USDT", ["spot symbol", "only linear perpetuals", "did you mean 'BTC/USDT:USDT'?"]),
        ("BTC/USD:BTC", ["inverse", "only linear perpetuals", "'BTC/USDT:USDT'"]),
        ("ETH/USD:ETH", ["inverse", "'ETH/USDT:USDT'"]),
        ("BTC/USDT:USDT-250328", ["not a perpetual", "did you mean 'BTC/USDT:USDT'?"]),
        ("BTC/EUR:EUR", ["unknown quote currency", "FDUSD"]),
        ("BTC/", ["malformed ccxt symbol"]),
    ],
)
def test_ccxt_form_errors(text: str, fragments: list[str]) -> None:
    message = error(text)
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("BTCUSDT-PERP.BINANSE", ["unknown venue 'BINANSE'", "did you mean 'BTCUSDT-PERP.BINANCE'?"]),
        ("btcusdt-linear.bybyt", ["did you mean 'BTCUSDT-LINEAR.BYBIT'?"]),
        ("BTCUSDT-PERP.KRAKEN", ["unknown venue 'KRAKEN'", "BINANCE, BYBIT, HYPERLIQUID, OKX"]),
        ("BTCUSDT-LINEAR.BINANCE", ["not a linear perpetual id on BINANCE", "'BTCUSDT-PERP.BINANCE'"]),
        ("BTCUSDT-PERP.BYBIT", ["not a linear perpetual id on BYBIT", "'BTCUSDT-LINEAR.BYBIT'"]),
        ("BTCUSDT-PERP.OKX", ["did you mean 'BTC-USDT-SWAP.OKX'?"]),
        ("BTC-USDT-SWAP.HYPERLIQUID", ["did you mean 'BTC-USD-PERP.HYPERLIQUID'?"]),
        ("BTC-USDC-PERP.HYPERLIQUID", ["not a linear perpetual id on HYPERLIQUID"]),
        ("FOO.BINANCE", ["expected e.g. 'BTCUSDT-PERP.BINANCE'"]),
        ("BTCUSDT-PERP.", ["malformed instrument id"]),
        ("A.B.C", ["malformed instrument id"]),
    ],
)
def test_full_id_errors(text: str, fragments: list[str]) -> None:
    message = error(text)
    for fragment in fragments:
        assert fragment in message


# --- checks against the markets an exchange lists -----------------------------------------------------


def test_listed_symbols_resolve() -> None:
    assert resolve("BTCUSDT-PERP", ALL, MARKETS) == [BTC[name] for name in ALL]
    assert resolve("BTC/USDC:USDC", ["binance", "bybit", "hyperliquid"], MARKETS)[0].ccxt_symbol == (
        "BTC/USDC:USDC"
    )
    assert resolve("1000PEPEUSDT-PERP", ["binance"], MARKETS)[0].instrument_id == "1000PEPEUSDT-PERP.BINANCE"


def test_unlisted_generic_suggests_generic_forms() -> None:
    # Spot 'XBT/USDT', inverse 'XBT/USD:XBT' and the EUR-settled 'XBTC/EUR:EUR' are never suggested.
    assert error("XBTUSDT-PERP", ["binance"], MARKETS) == (
        "'XBTUSDT-PERP' is not listed on binance (no market 'XBT/USDT:USDT'); "
        "did you mean 'BTCUSDT-PERP' or 'BTCUSDC-PERP'?"
    )
    assert error("xbtusdt-perp", ["binance"], MARKETS).startswith("'xbtusdt-perp' is not listed on binance")


def test_unlisted_on_hyperliquid_suggests_with_the_typed_quote() -> None:
    assert error("XBTUSDT-PERP", ["hyperliquid"], MARKETS).endswith("did you mean 'BTCUSDT-PERP'?")
    message = error("BTCUSDT-PERP", ["bybit", "hyperliquid", "okx"], {"hyperliquid": ["ETH/USDC:USDC"]})
    assert message == (
        "'BTCUSDT-PERP' is not listed on hyperliquid (no market 'BTC/USDC:USDC'); no close matches"
    )


def test_unlisted_ccxt_symbol_suggests_ccxt_symbols() -> None:
    message = error("XBT/USDT:USDT", ["binance"], MARKETS)
    assert "binance" in message
    assert "'XBT/USDT:USDT'" in message
    assert message.endswith("did you mean 'BTC/USDT:USDT' or 'BTC/USDC:USDC'?")
    # Equally close suggestions come in a stable (alphabetical) order.
    assert error("BTC/FDUSD:FDUSD", ["bybit"], MARKETS).endswith(
        "did you mean 'BTC/USDC:USDC' or 'BTC/USDT:USDT'?"
    )


def test_unlisted_full_id_suggests_full_ids() -> None:
    message = error("ETCUSDT-LINEAR.BYBIT", ALL, MARKETS)
    assert message.startswith("'ETCUSDT-LINEAR.BYBIT' is not listed on bybit")
    assert message.endswith(
        "did you mean 'BTCUSDT-LINEAR.BYBIT', 'ETHUSDT-LINEAR.BYBIT' or 'BTCPERP-LINEAR.BYBIT'?"
    )
    assert error("btc-usdc-swap.okx", ALL, MARKETS).endswith("did you mean 'BTC-USDT-SWAP.OKX'?")


def test_up_to_three_suggestions_best_first() -> None:
    markets = {
        "binance": ["BTC/USDT:USDT", "BTCB/USDT:USDT", "BTCDOM/USDT:USDT", "BTC/USDC:USDC", "BT/USDT:USDT"]
    }
    message = error("BTCCUSDT-PERP", ["binance"], markets)
    # BTC is closest to BTCC, then BTCB; BTCDOM and BT are close enough but not in the best three.
    assert message.endswith("did you mean 'BTCUSDT-PERP', 'BTCUSDC-PERP' or 'BTCBUSDT-PERP'?")
    assert error("BTDOMUSDT-PERP", ["binance"], markets).endswith("did you mean 'BTCDOMUSDT-PERP'?")


def test_unrelated_coins_are_not_suggested() -> None:
    assert error("FOOUSDT-PERP", ["binance"], MARKETS).endswith("no close matches")


def test_markets_only_checked_where_given() -> None:
    got = resolve("XBTUSDT-PERP", ["binance", "bybit"], {"bybit": ["XBT/USDT:USDT"]})
    assert [i.instrument_id for i in got] == ["XBTUSDT-PERP.BINANCE", "XBTUSDT-LINEAR.BYBIT"]
    assert resolve("XBTUSDT-PERP", ["binance"], {}) == resolve("XBTUSDT-PERP", ["binance"])


def test_markets_may_be_keyed_by_alias_and_any_collection() -> None:
    markets = {"binanceusdm": frozenset({"ETH/USDT:USDT"})}
    assert "not listed on binance" in error("BTCUSDT-PERP", ["binance"], markets)
    assert resolve("ETHUSDT-PERP", ["binance"], {"binance": {"ETH/USDT:USDT": 1}.keys()})[0].base == "ETH"


def test_empty_market_list_lists_nothing() -> None:
    assert error("BTCUSDT-PERP", ["binance"], {"binance": []}).endswith("no close matches")


def test_markets_recover_the_exchanges_own_spelling() -> None:
    (kpepe,) = resolve("KPEPEUSDC-PERP", ["hyperliquid"], MARKETS)
    assert kpepe == instrument_for("hyperliquid", "kPEPE/USDC:USDC")
    assert resolve("kpepe-usd-perp.hyperliquid", ["hyperliquid"], MARKETS) == [kpepe]
    assert resolve("kPEPE/USDT:USDT", ["hyperliquid"], MARKETS) == [kpepe]


def test_resolve_many_checks_markets() -> None:
    with pytest.raises(SymbolError, match="not listed on okx"):
        resolve_many(["BTCUSDT-PERP", "1000PEPEUSDT-PERP"], ["binance", "okx"], MARKETS)


# --- properties ---------------------------------------------------------------------------------------

bases = st.from_regex(r"[A-Z0-9]{1,10}", fullmatch=True)
quotes = st.sampled_from(QUOTES)


@given(base=bases, quote=quotes, lower=st.booleans())
def test_generic_round_trips(base: str, quote: str, lower: bool) -> None:
    text = f"{base}{quote}-PERP"
    instruments = resolve(text.lower() if lower else text, ALL)
    assert [i.exchange for i in instruments] == ALL
    for inst in instruments:
        symbol, venue = parse_instrument_id(inst.instrument_id)
        assert venue == VENUES[inst.exchange].nautilus_venue
        assert symbol
        assert instrument_for(inst.exchange, inst.ccxt_symbol) == inst
        assert resolve(inst.instrument_id, ALL) == [inst]
        assert resolve(inst.ccxt_symbol, [inst.exchange]) == [inst]
        assert inst.quote == inst.settle == (VENUES[inst.exchange].settle or inst.quote)
    binance = instruments[0]
    assert binance.base + binance.quote == base + quote  # the split may differ ('XBUSD'), the text not
    assert binance.quote in QUOTES
    assert {i.base for i in instruments} == {binance.base}
    # With every one of them listed, the market check accepts them all unchanged.
    markets = {i.exchange: [i.ccxt_symbol] for i in instruments}
    assert resolve(text, ALL, markets) == instruments
