"""The read-only HTTP API over a catalog (FastAPI): `create_app(settings or catalog path)`.

Endpoints (the contract the page is built on; OpenAPI at /docs and /openapi.json):

    GET /exchanges                 configured exchanges, enabled or not, and which stream liquidations
    GET /exchanges/health          the daemon's status file judged green/amber/red per exchange (health.py)
    GET /liquidations              stored liquidations, paged by an opaque cursor
    GET /liquidations/heatmap      notional per time bucket x price bucket, long and short (heatmap.py)
    GET /open-interest, /funding   one line per exchange, thinned to max_points (series.py)
    GET /metrics                   Prometheus text (metrics.py)
    GET /                          the page (static/index.html; its files under /static/)

Nothing here writes to the catalog. Times in answers are ISO-8601 UTC strings and `*_ns` integers; `from`
and `to` take what the CLI takes (`2025-01-01`, an ISO time, `24h` before now). Bad parameters answer
400 (422 for a value of the wrong type) with one line in `detail`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ccxt_pipeline import __version__
from ccxt_pipeline.catalog import FUNDING_RATE, LIQUIDATION, OPEN_INTEREST, CatalogReader, DataKind
from ccxt_pipeline.daemon.control import DaemonPaths, is_locked, read_status
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.models import Side
from ccxt_pipeline.serve import health as _health
from ccxt_pipeline.serve import metrics as _metrics
from ccxt_pipeline.serve.data import FileCache, read_events, read_liquidations
from ccxt_pipeline.serve.heatmap import heatmap_of
from ccxt_pipeline.serve.series import series
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.timeutil import NS_PER_DAY, now_ns, ns_to_iso, parse_duration, parse_when
from ccxt_pipeline.venues import get_venue

DEFAULT_SPAN_NS = NS_PER_DAY
"""`from` when not given: 24 hours before `to`."""
MAX_LIMIT = 10_000


class BadParameter(PipelineError):
    """A query parameter that cannot be used: answered 400 with this one line."""


Symbol = Annotated[
    str, Query(description="BTCUSDT-PERP (that coin's perpetual on every exchange), or a full id.")
]
OptSymbol = Annotated[str | None, Query(description="As `symbol` elsewhere; absent: every instrument.")]
Exchanges = Annotated[
    str | None, Query(description="Comma list (`binance,bybit`); default every enabled exchange.")
]
From = Annotated[
    str | None,
    Query(
        alias="from", description="2025-01-01, an ISO time, or a span before now (24h). Default: `to` - 24h."
    ),
]
To = Annotated[str | None, Query(description="As `from`. Default: now.")]
MaxPoints = Annotated[
    int, Query(ge=2, le=100_000, description="Longer series keep the last value per bucket.")
]


def create_app(source: Settings | Path | str, *, cache_bytes: int = 512 * 1024 * 1024) -> FastAPI:
    """The app over `source`: effective settings (their catalog and exchanges), or a catalog folder (the
    default exchanges)."""
    settings = source if isinstance(source, Settings) else Settings(catalog_path=Path(source))
    root = Path(settings.catalog_path)
    reader = CatalogReader(root)
    cache = FileCache(cache_bytes)
    paths = DaemonPaths.for_catalog(root)
    configured = list(settings.exchanges)
    enabled = settings.enabled_exchanges()

    app = FastAPI(
        title="ccxt-pipeline",
        version=__version__,
        description="Read-only access to a ccxt-pipeline catalog: liquidations, open interest, funding, "
        "and the collector daemon's health.",
    )

    @app.exception_handler(PipelineError)
    async def _bad_input(request: Request, exc: PipelineError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _bad_type(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    def exchanges_of(text: str | None) -> list[str]:
        if text is None or not text.strip():
            return list(enabled)
        names = []
        for part in text.split(","):
            typed = part.strip()
            if not typed:
                continue
            try:
                name = get_venue(typed).name
            except PipelineError:
                name = None
            if name is None or name not in configured:
                raise BadParameter(f"unknown exchange '{typed}'; valid: {', '.join(configured)}")
            names.append(name)
        return list(dict.fromkeys(names))

    def window(from_: str | None, to: str | None) -> tuple[int, int]:
        now = now_ns()
        end = parse_when(to, now, "to") if to else now
        start = parse_when(from_, now, "from") if from_ else end - DEFAULT_SPAN_NS
        if start > end:
            raise BadParameter(f"from ({ns_to_iso(start)}) is after to ({ns_to_iso(end)})")
        return start, end

    def instruments(symbol: str, names: Sequence[str]) -> list[tuple[str, str]]:
        return [(i.exchange, i.instrument_id) for i in resolve_many([symbol], names)]

    @app.get("/exchanges", summary="Configured exchanges")
    def list_exchanges() -> dict[str, Any]:
        return {
            "exchanges": [
                {
                    "name": name,
                    "enabled": name in enabled,
                    "streams_liquidations": get_venue(name).liquidations is not None,
                    "nautilus_venue": get_venue(name).nautilus_venue,
                }
                for name in configured
            ]
        }

    @app.get("/exchanges/health", summary="Per-exchange health from the daemon's status file")
    def exchange_health() -> dict[str, Any]:
        return _health.exchange_health(read_status(paths), is_locked(paths), enabled, now_ns())

    @app.get("/liquidations", summary="Stored liquidations, oldest first, paged")
    def liquidations(
        symbol: OptSymbol = None,
        exchanges: Exchanges = None,
        from_: From = None,
        to: To = None,
        side: Annotated[
            str | None, Query(description="LONG or SHORT: the side of the position liquidated.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
        cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    ) -> Response:
        names = exchanges_of(exchanges)
        start, end = window(from_, to)
        if side is not None and side.upper() not in Side.__members__:
            raise BadParameter(
                f"unknown side {side!r}; valid: LONG, SHORT (the side of the position liquidated)"
            )
        after_ts, skip = _read_cursor(cursor)
        if after_ts is not None:
            start = max(start, after_ts)
        if symbol:
            ids = [iid for _, iid in instruments(symbol, names)]
        else:
            ids = reader.resolve_instruments(LIQUIDATION, exchanges=names)
        table = read_liquidations(root, cache, ids, start, end)
        if side is not None:
            table = table.filter(pc.equal(table.column("side"), side.upper()))
        table = table.sort_by([(c, "ascending") for c in _ORDER])
        if after_ts is not None and skip:
            same = pc.sum(pc.equal(table.column("ts_init"), after_ts)).as_py() or 0
            table = table.slice(min(skip, same))
        page = table.slice(0, limit)
        next_cursor = None
        if table.num_rows > limit:
            last_ts = page.column("ts_init")[-1].as_py()
            same_on_page = pc.sum(pc.equal(page.column("ts_init"), last_ts)).as_py() or 0
            already = skip if after_ts == last_ts else 0
            next_cursor = f"{last_ts}.{already + same_on_page}"
        return _json({"rows": _rows(page), "next_cursor": next_cursor})

    @app.get("/liquidations/heatmap", summary="Liquidated notional per time x price bucket, long and short")
    def liquidation_heatmap(
        symbol: Symbol,
        exchanges: Exchanges = None,
        from_: From = None,
        to: To = None,
        bucket: Annotated[str, Query(description="auto, or a duration: 5m, 1h.")] = "auto",
        price_step: Annotated[str, Query(description="auto, or a price step: 50.")] = "auto",
    ) -> Response:
        names = exchanges_of(exchanges)
        start, end = window(from_, to)
        bucket_ns = None if bucket.strip() == "auto" else parse_duration(bucket, "bucket")
        step = None if price_step.strip() == "auto" else _positive(price_step, "price_step")
        ids = instruments(symbol, names)
        events = read_events(root, cache, [iid for _, iid in ids], start, end)
        data = heatmap_of(events, start, end, bucket_ns=bucket_ns, price_step=step, exchanges=names)
        return _json({"symbol": symbol, "exchanges": names, "instrument_ids": dict(ids), **data})

    def line_series(
        kind: DataKind, symbol: str, exchanges: str | None, from_: str | None, to: str | None, max_points: int
    ) -> Response:
        names = exchanges_of(exchanges)
        start, end = window(from_, to)
        data = series(reader, kind, instruments(symbol, names), start, end, max_points)
        return _json(
            {
                "symbol": symbol,
                "from": ns_to_iso(start),
                "from_ns": start,
                "to": ns_to_iso(end),
                "to_ns": end,
                "series": data,
            }
        )

    @app.get("/open-interest", summary="Open interest per exchange (base units, one side of the market)")
    def open_interest(
        symbol: Symbol,
        exchanges: Exchanges = None,
        from_: From = None,
        to: To = None,
        max_points: MaxPoints = 2000,
    ) -> Response:
        return line_series(OPEN_INTEREST, symbol, exchanges, from_, to, max_points)

    @app.get("/funding", summary="Settled funding rates per exchange (fraction per interval)")
    def funding(
        symbol: Symbol,
        exchanges: Exchanges = None,
        from_: From = None,
        to: To = None,
        max_points: MaxPoints = 2000,
    ) -> Response:
        return line_series(FUNDING_RATE, symbol, exchanges, from_, to, max_points)

    @app.get("/metrics", summary="Prometheus metrics from the daemon's status file")
    def metrics() -> Response:
        text = _metrics.render(read_status(paths), is_locked(paths), now_ns())
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    static = resources.files("ccxt_pipeline.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static), check_dir=False), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        index = static / "index.html"
        if index.is_file():
            return HTMLResponse(index.read_text(encoding="utf-8"))
        return HTMLResponse("<p>ccxt-pipeline API: see <a href='docs'>/docs</a></p>")

    app.state.cache = cache
    return app


_ORDER = ("ts_init", "instrument_id", "ts_event", "side", "price", "quantity")
"""The order of /liquidations pages: by receipt time, then a total order, so a cursor is exact."""


def _read_cursor(cursor: str | None) -> tuple[int | None, int]:
    """`<ts_init>.<rows with that ts_init already given>`."""
    if cursor is None:
        return None, 0
    ts, _, skip = cursor.partition(".")
    if not (ts.isdigit() and skip.isdigit()):
        raise BadParameter(f"bad cursor {cursor!r}: pass next_cursor from the previous page as it is")
    return int(ts), int(skip)


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    return [
        {
            "instrument_id": cols["instrument_id"][i],
            "exchange": cols["exchange"][i],
            "ts_event_ns": cols["ts_event"][i],
            "ts_init_ns": cols["ts_init"][i],
            "time": ns_to_iso(cols["ts_event"][i]),
            "side": cols["side"][i],
            "price": cols["price"][i],
            "quantity": cols["quantity"][i],
            "notional": cols["notional"][i],
        }
        for i in range(table.num_rows)
    ]


def _positive(text: str, subject: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(subject, f"{subject} must be 'auto' or a number above zero (got {text!r})") from None
    if not value > 0 or value == float("inf"):
        raise InputError(subject, f"{subject} must be 'auto' or a number above zero (got {text!r})")
    return value


def _one_line(exc: PipelineError) -> str:
    text = " ".join(str(exc).split())
    subject = getattr(exc, "subject", None)
    if isinstance(exc, InputError) and subject and not text.startswith(subject):
        return f"{subject}: {text}"
    return text


def _json(data: Any) -> Response:
    return Response(json.dumps(data, separators=(",", ":"), allow_nan=False), media_type="application/json")
