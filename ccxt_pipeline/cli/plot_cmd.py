"""`ccxt-cli plot heatmap|oi|funding SYMBOL --out FILE`: a chart of the catalog as a self-contained HTML file
or a PNG, drawn by the dashboard's own code (ccxt_pipeline/serve/plot.py)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ccxt_pipeline.cli.common import (
    CatalogOption,
    ConfigOption,
    ExchangeOption,
    Exit,
    fail,
    load,
    out,
    render,
)
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.timeutil import now_ns, parse_duration, parse_when

FLAGS = {"start": "--from", "end": "--to", "bucket": "--bucket", "price_step": "--price-step", "out": "--out"}


class PlotKind(StrEnum):
    heatmap = "heatmap"
    oi = "oi"
    funding = "funding"


def plot(
    kind: Annotated[PlotKind, typer.Argument(help="heatmap (liquidations), oi or funding (settled).")],
    symbol: Annotated[str, typer.Argument(help="BTCUSDT-PERP (every exchange) or a full id.")],
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="FILE.html (self-contained) or FILE.png (needs Chromium).")
    ],
    from_: Annotated[str, typer.Option("--from", help="From WHEN (2025-01-01, ISO, 30d).")] = "24h",
    to: Annotated[
        str | None, typer.Option("--to", help="To WHEN (default: now).", show_default=False)
    ] = None,
    exchange: ExchangeOption = None,
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="Heatmap time bucket (5m, 1h); default: auto.", show_default=False),
    ] = None,
    price_step: Annotated[
        float | None,
        typer.Option("--price-step", help="Heatmap price bucket size; default: auto.", show_default=False),
    ] = None,
    config: ConfigOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Draw a chart of the catalog into an HTML file (data inlined, opens offline) or a PNG: the liquidation
    heatmap (time x price, long and short apart), or open interest or funding, one line per exchange.

    Examples:

      ccxt-cli plot heatmap BTCUSDT-PERP --from 24h --out liquidations.html

      ccxt-cli plot oi BTCUSDT-PERP -e binance -e bybit --from 7d --out oi.png
    """
    from ccxt_pipeline.serve.plot import BrowserError, build_plot, write_plot  # pyarrow: not for --help

    try:
        settings = load(config, catalog)
        root = Path(settings.catalog_path)
        if not root.is_dir():
            raise PipelineError(f"no catalog at {root}")
        start, end = _window(from_, to)
        bucket_ns = parse_duration(bucket, "bucket") if bucket else None
        names = list(exchange) if exchange else settings.enabled_exchanges()
        chart = build_plot(
            root, kind.value, symbol, names, start, end, bucket_ns=bucket_ns, price_step=price_step
        )
        write_plot(chart, out_file)
    except InputError as exc:
        flag = FLAGS.get(exc.subject)
        raise fail(f"{flag}: {exc}" if flag else render(exc)) from None
    except BrowserError as exc:  # no bad input: nothing could be done
        raise fail(str(exc), Exit.FAILED) from None
    except PipelineError as exc:
        raise fail(render(exc)) from None
    out.print(f"wrote {out_file}")


def _window(from_: str, to: str | None) -> tuple[int, int]:
    """`--from` and `--to` in nanoseconds; the end must be after the start."""
    now = now_ns()
    start = parse_when(from_, now, "start")
    end = parse_when(to, now, "end") if to else now
    if end <= start:
        raise InputError("end", "the end must be after the start")
    return start, end
