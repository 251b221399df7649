"""Static export of the dashboard's charts (`ccxt-cli plot`): one self-contained HTML file, or a PNG of it.

The HTML file is the page's own drawing code (static/app.js) and stylesheet with the data inlined as JSON, so
it opens offline, in a report or a notebook, and draws exactly what the page draws. A PNG is that file as
headless Chromium renders it (`chromium --headless --screenshot`); without a Chromium on PATH (or named by
$PLOT_CHROMIUM) a PNG is refused with one line that says so, and HTML still works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.serve.data import FileCache, read_liquidations
from ccxt_pipeline.serve.heatmap import heatmap
from ccxt_pipeline.serve.series import series
from ccxt_pipeline.timeutil import ns_to_iso

PlotKind = Literal["heatmap", "oi", "funding"]
PLOT_KINDS: tuple[PlotKind, ...] = ("heatmap", "oi", "funding")

TITLES: dict[PlotKind, str] = {
    "heatmap": "Liquidations",
    "oi": "Open interest",
    "funding": "Funding (settled rate per interval, %)",
}
# The SVG's drawing box (px); the PNG is the page at this size.
SIZES: dict[PlotKind, tuple[int, int]] = {"heatmap": (1000, 380), "oi": (1000, 260), "funding": (1000, 260)}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Chromium must not try to reach the network (updates, sync, field trials) or a GPU (the browser tests too).
CHROMIUM_OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_FLAGS = (*CHROMIUM_OFFLINE_FLAGS, "--hide-scrollbars")


class BrowserError(PipelineError):
    """No Chromium to draw a PNG with, or Chromium failed to draw it."""


@dataclass(frozen=True)
class Plot:
    """One chart to export: what the API would answer for it, and the time axis it is drawn on."""

    kind: PlotKind
    symbol: str
    data: dict[str, Any]
    """The JSON of /liquidations/heatmap, /open-interest or /funding for the same parameters."""
    from_ns: int
    to_ns: int


MAX_POINTS = 2000
"""Points per line at most, as the page asks the API for (series.last_per_bucket thins longer series)."""


def build_plot(
    catalog: Path,
    kind: PlotKind,
    symbol: str,
    exchanges: list[str],
    start: int,
    end: int,
    *,
    bucket_ns: int | None = None,
    price_step: float | None = None,
) -> Plot:
    """The data of one chart, computed by the same functions as the HTTP API's answer for it."""
    instruments = resolve_many([symbol], exchanges)
    if kind == "heatmap":
        table = read_liquidations(catalog, FileCache(), [i.instrument_id for i in instruments], start, end)
        data = heatmap(table, start, end, bucket_ns=bucket_ns, price_step=price_step, exchanges=exchanges)
        data.update(symbol=symbol, exchanges=exchanges)
    else:
        stored = OPEN_INTEREST if kind == "oi" else FUNDING_RATE
        pairs = [(i.exchange, i.instrument_id) for i in instruments]
        data = {"series": series(CatalogReader(catalog), stored, pairs, start, end, MAX_POINTS)}
    return Plot(kind=kind, symbol=symbol, data=data, from_ns=start, to_ns=end)


def static_text(name: str) -> str:
    """A file of the page (app.js, style.css), as shipped in the package."""
    return resources.files("ccxt_pipeline.serve").joinpath("static", name).read_text(encoding="utf-8")


def _inline_json(value: Any) -> str:
    # Inside <script>, "</" would end the element; "<\/" is the same string to JSON.
    return json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_html(plot: Plot) -> str:
    """The chart as one HTML document with its code, style and data inlined (no external request)."""
    width, height = SIZES[plot.kind]
    exchanges = plot.data.get("exchanges") or sorted(plot.data.get("series", {}))
    caption = (
        f"{plot.symbol} {ns_to_iso(plot.from_ns)} to {ns_to_iso(plot.to_ns)}, "
        f"{', '.join(exchanges) or 'no exchange'}; source: ccxt-pipeline catalog"
    )
    key = ""
    if plot.kind == "heatmap":
        # Sides as docs/catalog.md defines them: the side of the position that was liquidated.
        key = (
            '<small><span class="key long">long positions liquidated</span>'
            '<span class="key short">short positions liquidated</span></small>'
        )
    payload = {
        "kind": plot.kind,
        "symbol": plot.symbol,
        "from_ns": plot.from_ns,
        "to_ns": plot.to_ns,
        "data": plot.data,
    }
    title = f"{TITLES[plot.kind]}: {plot.symbol}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_html_escape(title)}</title>
<style>
{static_text("style.css")}
body {{ background: #fff; }}
.panel {{ border: 0; margin: 0; width: {width + 20}px; }}
</style>
</head>
<body>
<section class="panel">
<h2>{_html_escape(title)} {key}</h2>
<svg id="chart" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"
 aria-label="{_html_escape(title)}"></svg>
<p class="updated">{_html_escape(caption)}</p>
</section>
<script>window.CCXT_PLOT = {_inline_json(payload)};</script>
<script>
{static_text("app.js")}
</script>
</body>
</html>
"""


def find_chromium() -> str | None:
    """The Chromium to render PNGs with: $PLOT_CHROMIUM, else the first of BROWSERS on PATH."""
    named = os.environ.get("PLOT_CHROMIUM")
    if named:
        return named if shutil.which(named) else None
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_png(plot: Plot, out: Path, timeout_s: float = 60.0) -> None:
    """Write the chart as a PNG: the HTML export, screenshotted by headless Chromium."""
    browser = find_chromium()
    if browser is None:
        raise BrowserError(
            "a PNG is drawn by headless Chromium, and none was found (install the 'chromium' package, or set "
            "PLOT_CHROMIUM); write an .html file instead"
        )
    width, height = SIZES[plot.kind]
    with tempfile.TemporaryDirectory(prefix="ccxt-plot-") as tmp:
        page = Path(tmp) / "plot.html"
        page.write_text(render_html(plot), encoding="utf-8")
        shot = Path(tmp) / "plot.png"
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--window-size={width + 40},{height + 110}",
            f"--screenshot={shot}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"Chromium did not draw the PNG within {timeout_s:.0f}s") from exc
        if done.returncode != 0 or not shot.is_file():
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise BrowserError(f"Chromium could not draw the PNG (exit {done.returncode}): {last}")
        shutil.move(shot, out)


def write_plot(plot: Plot, out: Path) -> None:
    """Write `plot` to `out`: .html (self-contained) or .png (needs Chromium)."""
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".png"):
        raise InputError("out", f"the output file {out} must end in .html or .png")
    if not out.parent.is_dir():
        raise InputError("out", f"the folder of the output file {out} does not exist")
    if suffix == ".png":
        render_png(plot, out)
        return
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_html(plot), encoding="utf-8")
    tmp.replace(out)
