"""Resolve what a user types into instruments: per exchange, a ccxt symbol and a NautilusTrader id.

Three input forms are accepted; surrounding whitespace is ignored and case does not matter:

* generic ``BTCUSDT-PERP``: the coin's linear perpetual on every requested exchange. The quote is the
  longest known suffix of the part before ``-PERP`` (USDT, USDC, USD, FDUSD, BUSD); bases may hold digits
  (``1000PEPEUSDT-PERP``).
* ccxt ``BTC/USDT:USDT``: that market on every requested exchange.
* full NautilusTrader id ``BTCUSDT-LINEAR.BYBIT``: that one instrument; it pins its exchange.

Ids are NautilusTrader 1.221's own, built from the exchange's raw market id when the exchange's markets are
known (ccxt ``market['id']``; Hyperliquid's coin name), and from a template otherwise
(:mod:`ccxt_pipeline.venues` cites each adapter):

    exchange     ccxt symbol      raw id      NautilusTrader id
    binance      BTC/USDT:USDT    BTCUSDT     BTCUSDT-PERP.BINANCE
    bybit        BTC/USDT:USDT    BTCUSDT     BTCUSDT-LINEAR.BYBIT
    bybit        BTC/USDC:USDC    BTCPERP     BTCPERP-LINEAR.BYBIT
    hyperliquid  BTC/USDC:USDC    BTC         BTC-USD-PERP.HYPERLIQUID   (all perps settle in USDC: any quote maps here)
    hyperliquid  kPEPE/USDC:USDC  kPEPE       kPEPE-USD-PERP.HYPERLIQUID (the coin's case is kept)
    okx          BTC/USDT:USDT    BTC-USDT-SWAP  BTC-USDT-SWAP.OKX

Case: input is matched case-insensitively against the markets an exchange lists, and the exchange's own
spelling wins (``kpepeusdt-perp`` finds Hyperliquid's ``kPEPE``). Without markets, a base typed as lower-case
letters before upper-case ones (``kPEPE``, Hyperliquid's 1000-unit coins) is kept as typed; any other base is
upper-cased (``btc`` -> ``BTC``). Binance and Bybit ids are always upper-case, as NautilusTrader writes them.

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
from typing import Any, Literal

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

    A full id resolves to its own exchange only. `markets` maps exchange names to what each lists: its ccxt
    symbols, or ccxt's `markets` dict (symbol -> market), which also gives each market's raw id and so the
    exact NautilusTrader id; exchanges without an entry are not checked. Raises SymbolError (one line, with
    suggestions); an unknown exchange name raises UnknownExchangeError.
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
        base = _spelling(typed, base)
        wanted = [_on_venue(v, base, quote) for v in venues]
    elif "." in upper:
        form, quote = "id", ""
        wanted = [_from_full_id(typed, venues, markets)]
    else:
        form, (base, quote) = "generic", _split_generic(typed, upper)
        base = _spelling(typed, base)
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


def instrument_for(exchange: str, ccxt_symbol: str, market: Mapping[str, Any] | None = None) -> Instrument:
    """The instrument of a ccxt market symbol on `exchange`, taken verbatim (as parsed from exchange data).

    With the ccxt `market`, the id comes from the exchange's raw market id, as NautilusTrader builds it;
    without, from the venue's template. Raises SymbolError unless it is a linear perpetual this exchange
    can settle.
    """
    venue = get_venue(exchange)
    base, quote = _split_ccxt(ccxt_symbol)
    if venue.settle is not None and quote != venue.settle:
        raise SymbolError(
            f"{ccxt_symbol!r} is not a {venue.name} perpetual: they all settle in {venue.settle}"
        )
    return _instrument(venue, base, quote, market)


def nautilus_symbol(exchange: str, market: Mapping[str, Any]) -> str | None:
    """NautilusTrader's symbol (the id without `.VENUE`) of a ccxt market, from the exchange's raw id.

    `BTCPERP` -> `BTCPERP-LINEAR` (Bybit), `kPEPE` -> `kPEPE-USD-PERP` (Hyperliquid); None without a raw id.
    """
    venue = get_venue(exchange)
    raw = market.get(venue.market_id_key)
    if not isinstance(raw, str) or not raw:
        return None
    return venue.market_id_template.format(id=raw.upper() if venue.upper_symbols else raw)


def listed_instrument(inst: Instrument, listed: Collection[str]) -> Instrument | None:
    """`inst` as its exchange lists it (`listed`: its ccxt symbols or ccxt's `markets` dict): the exchange's
    own spelling and, given markets, the id from the raw market id. None if not listed."""
    return _find(VENUES[inst.exchange], inst.ccxt_symbol, listed)


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


def _instrument(
    venue: Venue, base: str, quote: str, market: Mapping[str, Any] | None = None, spelt: str | None = None
) -> Instrument:
    """The instrument of ccxt's `base`/`quote`; its id from the raw `market` id, else from the template
    filled with the exchange's spelling of the coin (`spelt`, default `base`)."""
    symbol = nautilus_symbol(venue.name, market) if market is not None else None
    if symbol is None:
        template = venue.quote_id_templates.get(quote, venue.id_template)
        symbol = template.format(base=spelt or base, quote=quote)
        symbol = symbol.upper() if venue.upper_symbols else symbol
    return Instrument(
        exchange=venue.name,
        ccxt_symbol=f"{base}/{quote}:{quote}",
        instrument_id=f"{symbol}.{venue.nautilus_venue}",
        base=base,
        quote=quote,
        settle=quote,
    )


def _on_venue(venue: Venue, spelt: str, quote: str) -> Instrument:
    """The coin's linear perpetual on `venue`: where it settles in one currency, that is the quote.

    ccxt's unified base is upper-case (it lists Hyperliquid's `kPEPE` as `KPEPE/USDC:USDC`); the id keeps
    the spelling `spelt`, where the venue does.
    """
    return _instrument(venue, spelt.upper(), venue.settle or quote, spelt=spelt)


_KEEP_CASE = re.compile(r"[a-z]+[A-Z][A-Z0-9]*")
"""A base spelt like Hyperliquid's 1000-unit coins (`kPEPE`): lower-case letters, then upper-case ones."""


def _spelling(typed: str, base: str) -> str:
    """`base` (parsed from the upper-cased input) as the user spelt it if that looks like `kPEPE`, else upper.

    Every template starts with the base, so it is the first `len(base)` characters of what was typed.
    """
    spelt = typed[: len(base)]
    return spelt if spelt.upper() == base and _KEEP_CASE.fullmatch(spelt) else base


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


def _templates(venue: Venue) -> list[tuple[str, str | None]]:
    """(template, the quote it implies) pairs of `venue`, quote-specific ones first."""
    return [*((t, q) for q, t in venue.quote_id_templates.items()), (venue.id_template, venue.settle)]


def _parse_symbol(venue: Venue, symbol: str) -> Instrument | None:
    """The instrument a Nautilus symbol (no venue suffix) on `venue` parses to by the templates, or None.

    Its id may differ from `symbol` (`BTCUSDC-LINEAR` parses to Bybit's `BTCPERP-LINEAR`).
    """
    upper = symbol.upper()
    for template, settle in _templates(venue):
        parsed = _match(template, upper, settle)
        if parsed is not None and (venue.settle is None or parsed[1] == venue.settle):
            return _on_venue(venue, _spelling(symbol, parsed[0]), parsed[1])
    return None


def _from_symbol(venue: Venue, symbol: str) -> Instrument | None:
    """The instrument whose Nautilus symbol (no venue suffix) on `venue` is `symbol`, or None."""
    inst = _parse_symbol(venue, symbol)
    if inst is None or inst.instrument_id.partition(".")[0].upper() != symbol.upper():
        return None
    return inst


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
    if upper in _FLAG_VALUES:
        # `--json true`: the flag takes no value, so the value became a symbol.
        raise SymbolError(
            f"{typed!r} is not a symbol; flags such as --json take no value (write --json alone)"
        )
    raise SymbolError(
        f"unknown quote currency in {typed!r}: it must end in one of {_KNOWN_QUOTES} before '-PERP', "
        f"e.g. 'BTCUSDT-PERP'"
    )


_FLAG_VALUES = frozenset({"TRUE", "FALSE", "YES", "NO", "ON", "OFF", "1", "0"})
"""Words users give boolean flags: typed where a symbol is expected, they mean a flag was given a value."""


def _from_full_id(
    typed: str, venues: Sequence[Venue], markets: Mapping[str, Collection[str]] | None
) -> Instrument:
    typed_symbol, typed_suffix = parse_instrument_id(typed)
    symbol, suffix = typed_symbol.upper(), typed_suffix.upper()
    venue = venue_for_nautilus(suffix)
    if venue is None:
        known = [v.nautilus_venue for v in VENUES.values()]
        close = difflib.get_close_matches(suffix, known, n=1)
        hint = f"; did you mean '{symbol}.{close[0]}'?" if close else ""
        raise SymbolError(f"unknown venue {suffix!r} in {typed!r} (known: {', '.join(known)}){hint}")
    listed = _listed(venue, markets)
    inst = _by_nautilus_symbol(venue, typed_symbol, listed) if listed is not None else None
    if inst is None:
        inst = _parse_symbol(venue, typed_symbol)
        if inst is not None and inst.instrument_id.partition(".")[0].upper() != symbol:
            raise SymbolError(
                f"{typed!r} is not how NautilusTrader names that {venue.name} market; "
                f"did you mean {inst.instrument_id!r}?"
            )
    if inst is None:
        templates = [(GENERIC_TEMPLATE, None), *(t for v in VENUES.values() for t in _templates(v))]
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
    """`inst` as its exchange lists it, or unchanged if no markets were given for it; else SymbolError
    with suggestions."""
    venue = VENUES[inst.exchange]
    listed = _listed(venue, markets)
    if listed is None:
        return inst
    found = _find(venue, inst.ccxt_symbol, listed)
    if found is not None:
        if form == "id" and found.instrument_id.upper() != inst.instrument_id.upper():
            raise SymbolError(
                f"{typed!r} is not how NautilusTrader names {venue.name}'s {found.ccxt_symbol!r}; "
                f"did you mean {found.instrument_id!r}?"
            )
        return found
    linear = filter(None, (_linear(venue, s, _market(listed, s)) for s in listed))
    close = _closest(typed.upper(), inst.base.upper(), {_shown(o, form, typed_quote): o.base for o in linear})
    hint = f"did you mean {_one_of(close)}?" if close else "no close matches"
    raise SymbolError(f"{typed!r} is not listed on {venue.name} (no market {inst.ccxt_symbol!r}); {hint}")


def _listed(venue: Venue, markets: Mapping[str, Collection[str]] | None) -> Collection[str] | None:
    if markets is None:
        return None
    return next((markets[k] for k in (venue.name, venue.ccxt_id, *venue.aliases) if k in markets), None)


def _market(listed: Collection[str], symbol: str) -> Mapping[str, Any] | None:
    """The ccxt market of `symbol` where `listed` is ccxt's markets dict, else None."""
    market = listed.get(symbol) if isinstance(listed, Mapping) else None
    return market if isinstance(market, Mapping) else None


def _find(venue: Venue, ccxt_symbol: str, listed: Collection[str]) -> Instrument | None:
    """The listed linear perpetual `ccxt_symbol`, in the exchange's own spelling (case-insensitive match)."""
    spelled = ccxt_symbol if ccxt_symbol in listed else None
    if spelled is None:
        spelled = {s.upper(): s for s in listed}.get(ccxt_symbol.upper())
    return None if spelled is None else _linear(venue, spelled, _market(listed, spelled))


def _by_nautilus_symbol(venue: Venue, symbol: str, listed: Collection[str]) -> Instrument | None:
    """The listed linear perpetual whose Nautilus symbol is `symbol` (exact case first), given markets."""
    if not isinstance(listed, Mapping):
        return None
    found: dict[str, Instrument] = {}
    for ccxt_symbol in listed:
        market = _market(listed, ccxt_symbol)
        own = nautilus_symbol(venue.name, market) if market is not None else None
        if own is not None and own.upper() == symbol.upper():
            inst = _linear(venue, ccxt_symbol, market)
            if inst is not None:
                found[own] = inst
    return found.get(symbol) or next(iter(found.values()), None)


def _linear(venue: Venue, symbol: str, market: Mapping[str, Any] | None = None) -> Instrument | None:
    try:
        return instrument_for(venue.name, symbol, market)
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
