"""`ccxt-cli instruments`: what a symbol means on each exchange, and where its data lands."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ccxt_pipeline.cli.common import (
    ConfigOption,
    ExchangeOption,
    JsonOption,
    guarded,
    load,
    out,
    print_json,
    settings_are_defaults,
)
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.venues import DEFAULT_EXCHANGES, get_venue


@guarded
def instruments(
    symbols: Annotated[
        list[str], typer.Argument(help="Symbols: BTCUSDT-PERP, BTC/USDT:USDT or BTCUSDT-PERP.BINANCE.")
    ],
    exchange: ExchangeOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Resolve symbols to each exchange's ccxt symbol and NautilusTrader instrument id (offline).

    Example:  ccxt-cli instruments BTCUSDT-PERP ETHUSDT-PERP -e binance -e hyperliquid
    """
    # Settings only when there are any (a bad file is one clear line, -e or not); else the defaults hold.
    settings = None if settings_are_defaults(config) else load(config)
    if exchange:
        names = [get_venue(e).name for e in exchange]
    else:
        names = list(DEFAULT_EXCHANGES) if settings is None else settings.enabled_exchanges()
    resolved = resolve_many(symbols, names)
    if json_out:
        print_json([vars(i) for i in resolved])
        return
    table = Table("exchange", "ccxt symbol", "instrument id")
    for inst in resolved:
        table.add_row(inst.exchange, inst.ccxt_symbol, inst.instrument_id)
    out.print(table)
