"""Resolve what a user types into instruments: per exchange, a ccxt symbol and a NautilusTrader id.

Three input forms are accepted; surrounding whitespace is ignored and case does not matter:

* generic ``BTCUSDT-PERP``: the coin's linear perpetual on every requested exchange. The quote is the
  longest known suffix of the part before ``-PERP`` (USDT, USDC, USD, FDUSD, BUSD); bases may hold digits
  (``1000PEPEUSDT-PERP``).
* ccxt ``BTC/USDT:USDT``: that market on every requested exchange.
* full NautilusTrader id ``BTCUSDT-LINEAR.BYBIT``: that one instrument; it pins its exchange.

Names follow NautilusTrader's own adapters; the templates live in :mod:`ccxt_pipeline.venues`:

    exchange     ccxt symbol     NautilusTrader id
    binance      BTC/USDT:USDT   BTCUSDT-PERP.BINANCE
    bybit        BTC/USDT:USDT   BTCUSDT-LINEAR.BYBIT
    hyperliquid  BTC/USDC:USDC   BTC-USD-PERP.HYPERLIQUID   (all perps settle in USDC: any quote maps here)
    okx          BTC/USDT:USDT   BTC-USDT-SWAP.OKX

Only linear perpetuals (settled in their quote currency) are supported. Given the symbols each exchange
lists (``markets``), symbols it does not list are errors that suggest close matches in the form typed.
Everything here is pure: no network, no disk, no clock.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ccxt_pipeline.errors import SymbolError
from ccxt_pipeline.venues import VENUES, Venue, get_venue, venue_for_nautilus

QUOTES: tuple[str, ...] = ("USDT", "USDC", "USD", "FDUSD", "BUSD")
"""Quote currencies the generic form may end in (the longest matching suffix wins)."""

GENERIC_TEMPLATE = "{base}{quote}-PERP"
"""The generic, exchange-independent form; also how ``instrument_for``'s reverse parse reads it."""

_EXAMPLES = "'BTCUSDT-PERP', 'BTC/USDT:USDT' or 'BTCUSDT-PERP.BINANCE'"
_KNOWN_QUOTES = ", ".join(QUOTES)

_Form = Literal["generic", "ccxt", "id"]
"""Which of the three input forms the user typed; suggestions are written in the same form."""


@dataclass(frozen=True)
class Instrument:
    exchange: str
    """Our venue name: `binance`."""
    ccxt_symbol: str
    """`BTC/USDT:USDT`."""
    instrument_id: str
    """`BTCUSDT-PERP.BINANCE`."""
    base: str
    """`BTC`."""
    quote: str
    """`USDT` (hyperliquid: `USDC`)."""
    settle: str
    """`USDT` (hyperliquid: `USDC`); always equal to the quote, as the instrument is linear."""


def resolve(
    text: str, exchanges: Sequence[str], markets: Mapping[str, Collection[str]] | None = None
) -> list[Instrument]:
    """Resolve one typed symbol to one instrument per exchange, in `exchanges` order.

    A full id resolves to its own exchange only. `markets` maps exchange names to the ccxt symbols each
    lists; exchanges without an entry are not checked. Raises SymbolError (one line, with suggestions);
    an unknown exchange name raises UnknownExchangeError.
    """
    typed = text.strip()
    venues = list({v.name: v for v in map(get_venue, exchanges)}.values())
    if not typed:
        raise SymbolError(f"empty symbol; expected e.g. {_EXAMPLES}")
    if any(c.isspace() for c in typed):
        raise SymbolError(f"symbol {typed!r} contains whitespace; expected e.g. {_EXAMPLES}")
    upper = typed.upper()
    form: _Form
    if "/" in upper:
        form, (base, quote) = "ccxt", _split_ccxt(upper)
        wanted = [_on_venue(v, base, quote) for v in venues]
    elif "." in upper:
        form, quote = "id", ""
        wanted = [_from_full_id(typed, venues)]
    else:
        form, (base, quote) = "generic", _split_generic(typed, upper)
        wanted = [_on_venue(v, base, quote) for v in venues]
    return [_check_listed(inst, typed, form, quote, markets) for inst in wanted]


def resolve_many(
    texts: Sequence[str], exchanges: Sequence[str], markets: Mapping[str, Collection[str]] | None = None
) -> list[Instrument]:
    """Resolve every text; each instrument id appears once, in first-seen order. The first error raises."""
    seen: dict[str, Instrument] = {}
    for text in texts:
        for inst in resolve(text, exchanges, markets):
            seen.setdefault(inst.instrument_id, inst)
    return list(seen.values())


def instrument_for(exchange: str, ccxt_symbol: str) -> Instrument:
    """The instrument of a ccxt market symbol on `exchange`, taken verbatim (as parsed from exchange data).

    Raises SymbolError unless it is a linear perpetual this exchange can settle.
    """
    venue = get_venue(exchange)
    base, quote = _split_ccxt(ccxt_symbol)
    if venue.settle is not None and quote != venue.settle:
        raise SymbolError(
            f"{ccxt_symbol!r} is not a {venue.name} perpetual: they all settle in {venue.settle}"
        )
    return _instrument(venue, base, quote)


def parse_instrument_id(instrument_id: str) -> tuple[str, str]:
    """Split `BTCUSDT-PERP.BINANCE` into `('BTCUSDT-PERP', 'BINANCE')`; SymbolError if malformed."""
    symbol, dot, venue = instrument_id.partition(".")
    bad = "/" in instrument_id or "." in venue or any(c.isspace() for c in instrument_id)
    if bad or not (dot and symbol and venue):
        raise SymbolError(
            f"malformed instrument id {instrument_id!r}; expected SYMBOL.VENUE like 'BTCUSDT-PERP.BINANCE'"
        )
    return symbol, venue


# --- building and parsing names ------------------------------------------------------------------------


def _instrument(venue: Venue, base: str, quote: str) -> Instrument:
    symbol = venue.id_template.format(base=base, quote=quote)
    return Instrument(
        exchange=venue.name,
        ccxt_symbol=f"{base}/{quote}:{quote}",
        instrument_id=f"{symbol}.{venue.nautilus_venue}",
        base=base,
        quote=quote,
        settle=quote,
    )


def _on_venue(venue: Venue, base: str, quote: str) -> Instrument:
    """The coin's linear perpetual on `venue`: where it settles in one currency, that is the quote."""
    return _instrument(venue, base, venue.settle or quote)


def _shown(inst: Instrument, form: _Form, typed_quote: str) -> str:
    """`inst` written in the user's form; where a venue maps every quote to its own, with the typed quote."""
    quote = typed_quote if VENUES[inst.exchange].settle else inst.quote
    if form == "ccxt":
        return f"{inst.base}/{quote}:{quote}"
    if form == "generic":
        return f"{inst.base}{quote}-PERP"
    return inst.instrument_id


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    """`{base}-{quote}-SWAP` -> a regex; the base is as short as possible, so the longest quote wins."""
    quotes = "|".join(sorted(QUOTES, key=len, reverse=True))
    parts = re.split(r"(\{base\}|\{quote\})", template)
    groups = {"{base}": "(?P<base>.+?)", "{quote}": f"(?P<quote>{quotes})"}
    return re.compile("".join(groups.get(p, re.escape(p)) for p in parts))


def _match(template: str, symbol: str, default_quote: str | None = None) -> tuple[str, str] | None:
    """(base, quote) if `symbol` fits `template` with an alphanumeric base, else None."""
    found = _pattern(template).fullmatch(symbol)
    if found is None or not found["base"].isalnum():
        return None
    quote = found.groupdict().get("quote") or default_quote
    return (found["base"], quote) if quote else None


def _from_symbol(venue: Venue, symbol: str) -> Instrument | None:
    """The instrument whose Nautilus symbol (no venue suffix) on `venue` is `symbol`, or None."""
    parsed = _match(venue.id_template, symbol, venue.settle)
    if parsed is None or (venue.settle is not None and parsed[1] != venue.settle):
        return None
    return _instrument(venue, *parsed)


def _split_ccxt(symbol: str) -> tuple[str, str]:
    """(base, quote) of a linear perpetual ccxt symbol; SymbolError saying what it is otherwise."""
    base, _, rest = symbol.partition("/")
    quote, colon, settle = rest.partition(":")
    if not base or not quote or (colon and not settle):
        raise SymbolError(
            f"malformed ccxt symbol {symbol!r}; expected BASE/QUOTE:SETTLE like 'BTC/USDT:USDT'"
        )
    if not colon:
        raise SymbolError(
            f"{symbol!r} is a spot symbol; only linear perpetuals are supported; "
            f"did you mean '{base}/{quote}:{quote}'?"
        )
    if "-" in settle:
        raise SymbolError(
            f"{symbol!r} expires, it is not a perpetual; only linear perpetuals are supported; "
            f"did you mean '{base}/{quote}:{settle.partition('-')[0]}'?"
        )
    if settle != quote:
        kind = "an inverse" if settle == base else "a"
        raise SymbolError(
            f"{symbol!r} is {kind} contract settled in {settle}, not in its quote {quote}; "
            f"only linear perpetuals are supported, e.g. '{base}/USDT:USDT'"
        )
    if quote not in QUOTES:
        raise SymbolError(f"unknown quote currency {quote!r} in {symbol!r} (known quotes: {_KNOWN_QUOTES})")
    if not base.isalnum():
        raise SymbolError(f"base {base!r} of {symbol!r} is not alphanumeric")
    return base, quote


def _split_generic(typed: str, upper: str) -> tuple[str, str]:
    """(base, quote) of the generic form; otherwise SymbolError explaining the mistake."""
    parsed = _match(GENERIC_TEMPLATE, upper)
    if parsed is not None:
        return parsed
    for venue in VENUES.values():
        native = _from_symbol(venue, upper)
        if native is not None:
            raise SymbolError(
                f"{typed!r} is a {venue.nautilus_venue} symbol without its venue; "
                f"did you mean {native.instrument_id!r} or the generic '{native.base}{native.quote}-PERP'?"
            )
    parts = upper.split("-")
    if len(parts) > 1 and parts[-1].isalpha() and parts[-1] not in QUOTES:
        parts.pop()  # a suffix, like the misspelt '-PREP'
    body = "".join(parts).replace("_", "")  # 'BTC-USDT', 'BTC_USDT' -> 'BTCUSDT'
    if _match(GENERIC_TEMPLATE, f"{body}-PERP") is not None:
        raise SymbolError(
            f"{typed!r} is not a symbol of the form BASEQUOTE-PERP; did you mean '{body}-PERP'?"
        )
    if body in QUOTES:
        raise SymbolError(f"{typed!r} has no base currency before {body}; e.g. 'BTC{body}-PERP'")
    if not body.isalnum():
        raise SymbolError(f"{typed!r} is not a known symbol form; expected e.g. {_EXAMPLES}")
    raise SymbolError(
        f"unknown quote currency in {typed!r}: it must end in one of {_KNOWN_QUOTES} before '-PERP', "
        f"e.g. 'BTCUSDT-PERP'"
    )


def _from_full_id(typed: str, venues: Sequence[Venue]) -> Instrument:
    symbol, suffix = (part.upper() for part in parse_instrument_id(typed))
    venue = venue_for_nautilus(suffix)
    if venue is None:
        known = [v.nautilus_venue for v in VENUES.values()]
        close = difflib.get_close_matches(suffix, known, n=1)
        hint = f"; did you mean '{symbol}.{close[0]}'?" if close else ""
        raise SymbolError(f"unknown venue {suffix!r} in {typed!r} (known: {', '.join(known)}){hint}")
    inst = _from_symbol(venue, symbol)
    if inst is None:
        templates = [(GENERIC_TEMPLATE, None), *((v.id_template, v.settle) for v in VENUES.values())]
        guess = next(filter(None, (_match(t, symbol, settle) for t, settle in templates)), None)
        example = _on_venue(venue, *(guess or ("BTC", "USDT"))).instrument_id
        hint = f"did you mean {example!r}?" if guess else f"expected e.g. {example!r}"
        raise SymbolError(f"{typed!r} is not a linear perpetual id on {venue.nautilus_venue}; {hint}")
    if venue.name not in {v.name for v in venues}:
        requested = ", ".join(v.name for v in venues) or "none"
        raise SymbolError(
            f"{typed!r} is a {venue.name} instrument, but {venue.name} is not among the requested "
            f"exchanges ({requested})"
        )
    return inst


# --- checking against the markets an exchange lists ----------------------------------------------------


def _check_listed(
    inst: Instrument,
    typed: str,
    form: _Form,
    typed_quote: str,
    markets: Mapping[str, Collection[str]] | None,
) -> Instrument:
    """`inst` if its exchange lists it, or no markets were given for it; else SymbolError with suggestions."""
    venue = VENUES[inst.exchange]
    listed = _listed(venue, markets)
    if listed is None or inst.ccxt_symbol in listed:
        return inst
    spelled = {s.upper(): s for s in listed}.get(inst.ccxt_symbol.upper())
    if spelled is not None:  # listed, in the exchange's own spelling
        return instrument_for(venue.name, spelled)
    linear = filter(None, (_linear(venue, s) for s in listed))
    close = _closest(typed.upper(), inst.base.upper(), {_shown(o, form, typed_quote): o.base for o in linear})
    hint = f"did you mean {_one_of(close)}?" if close else "no close matches"
    raise SymbolError(f"{typed!r} is not listed on {venue.name} (no market {inst.ccxt_symbol!r}); {hint}")


def _listed(venue: Venue, markets: Mapping[str, Collection[str]] | None) -> Collection[str] | None:
    if markets is None:
        return None
    return next((markets[k] for k in (venue.name, venue.ccxt_id, *venue.aliases) if k in markets), None)


def _linear(venue: Venue, symbol: str) -> Instrument | None:
    try:
        return instrument_for(venue.name, symbol)
    except SymbolError:
        return None


def _closest(typed: str, base: str, options: Mapping[str, str]) -> list[str]:
    """Up to 3 of `options` (rendered form -> base), ranked by base similarity, then whole-form similarity.

    Comparing bases first keeps the shared '-PERP'/'USDT' parts from making every coin look close.
    """
    scored = []
    for shown, option_base in options.items():
        base_ratio = difflib.SequenceMatcher(None, base, option_base.upper()).ratio()
        if base_ratio >= 0.6:
            whole_ratio = difflib.SequenceMatcher(None, typed, shown.upper()).ratio()
            scored.append((-base_ratio, -whole_ratio, shown))
    return [shown for *_, shown in sorted(scored)[:3]]


def _one_of(items: Sequence[str]) -> str:
    """`'A'`, `'A' or 'B'`, `'A', 'B' or 'C'`."""
    quoted = [f"'{item}'" for item in items]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)
