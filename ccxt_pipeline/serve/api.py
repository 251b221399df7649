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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, FastAPI, Query, Request
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
from ccxt_pipeline.serve.heatmap import heatmap
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


@dataclass(frozen=True)
class Served:
    """What the endpoints read: the catalog (a reader and the file cache over it), the daemon's files, and
    the exchanges configured and enabled. One per app, in `app.state.served`."""

    root: Path
    reader: CatalogReader
    cache: FileCache
    paths: DaemonPaths
    configured: list[str]
    enabled: list[str]

    def exchanges_of(self, text: str | None) -> list[str]:
        """The `exchanges` parameter: a comma list of configured exchanges; empty: every enabled one."""
        if text is None or not text.strip():
            return list(self.enabled)
        names = []
        for part in text.split(","):
            typed = part.strip()
            if not typed:
                continue
            try:
                name = get_venue(typed).name
            except PipelineError:
                name = None
            if name is None or name not in self.configured:
                raise BadParameter(f"unknown exchange '{typed}'; valid: {', '.join(self.configured)}")
            names.append(name)
        return list(dict.fromkeys(names))


def _served(request: Request) -> Served:
    served: Served = request.app.state.served
    return served


Catalog = Annotated[Served, Depends(_served)]
router = APIRouter()
_STATIC = resources.files("ccxt_pipeline.serve") / "static"


def create_app(source: Settings | Path | str, *, cache_bytes: int = 512 * 1024 * 1024) -> FastAPI:
    """The app over `source`: effective settings (their catalog and exchanges), or a catalog folder (the
    default exchanges)."""
    settings = source if isinstance(source, Settings) else Settings(catalog_path=Path(source))
    root = Path(settings.catalog_path)
    app = FastAPI(
        title="ccxt-pipeline",
        version=__version__,
        description="Read-only access to a ccxt-pipeline catalog: liquidations, open interest, funding, "
        "and the collector daemon's health.",
    )
    app.add_exception_handler(PipelineError, _bad_input)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_type)  # type: ignore[arg-type]
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(_STATIC), check_dir=False), name="static")
    app.state.served = Served(
        root=root,
        reader=CatalogReader(root),
        cache=FileCache(cache_bytes),
        paths=DaemonPaths.for_catalog(root),
        configured=list(settings.exchanges),
        enabled=settings.enabled_exchanges(),
    )
    app.state.cache = app.state.served.cache
    return app


async def _bad_input(request: Request, exc: PipelineError) -> JSONResponse:
    return JSONResponse({"detail": _one_line(exc)}, status_code=400)


async def _bad_type(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)


def _window(from_: str | None, to: str | None) -> tuple[int, int]:
    now = now_ns()
    end = parse_when(to, now, "to") if to else now
    start = parse_when(from_, now, "from") if from_ else end - DEFAULT_SPAN_NS
    if start > end:
        raise BadParameter(f"from ({ns_to_iso(start)}) is after to ({ns_to_iso(end)})")
    return start, end


def _instruments(symbol: str, names: Sequence[str]) -> list[tuple[str, str]]:
    return [(i.exchange, i.instrument_id) for i in resolve_many([symbol], names)]


@router.get("/exchanges", summary="Configured exchanges")
def list_exchanges(served: Catalog) -> dict[str, Any]:
    return {
        "exchanges": [
            {
                "name": name,
                "enabled": name in served.enabled,
                "streams_liquidations": get_venue(name).liquidations is not None,
                "nautilus_venue": get_venue(name).nautilus_venue,
            }
            for name in served.configured
        ]
    }


@router.get("/exchanges/health", summary="Per-exchange health from the daemon's status file")
def exchange_health(served: Catalog) -> dict[str, Any]:
    paths = served.paths
    return _health.exchange_health(read_status(paths), is_locked(paths), served.enabled, now_ns())


@router.get("/liquidations", summary="Stored liquidations, oldest first, paged")
def liquidations(
    served: Catalog,
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
    names = served.exchanges_of(exchanges)
    start, end = _window(from_, to)
    if side is not None and side.upper() not in Side.__members__:
        raise BadParameter(f"unknown side {side!r}; valid: LONG, SHORT (the side of the position liquidated)")
    after_ts, skip = _read_cursor(cursor)
    if after_ts is not None:
        start = max(start, after_ts)
    if symbol:
        ids = [iid for _, iid in _instruments(symbol, names)]
    else:
        ids = served.reader.resolve_instruments(LIQUIDATION, exchanges=names)
    table = read_liquidations(served.root, served.cache, ids, start, end)
    if side is not None:
        table = table.filter(pc.equal(table.column("side"), side.upper()))
    table = table.sort_by([(c, "ascending") for c in _ORDER])
    if after_ts is not None and skip:
        same = pc.sum(pc.equal(table.column("ts_init"), after_ts)).as_py() or 0
        table = table.slice(min(skip, same))
    page = table.slice(0, limit)
    more = table.num_rows > limit
    return _json({"rows": _rows(page), "next_cursor": _next_cursor(page, after_ts, skip) if more else None})


@router.get("/liquidations/heatmap", summary="Liquidated notional per time x price bucket, long and short")
def liquidation_heatmap(
    served: Catalog,
    symbol: Symbol,
    exchanges: Exchanges = None,
    from_: From = None,
    to: To = None,
    bucket: Annotated[str, Query(description="auto, or a duration: 5m, 1h.")] = "auto",
    price_step: Annotated[str, Query(description="auto, or a price step: 50.")] = "auto",
) -> Response:
    names = served.exchanges_of(exchanges)
    start, end = _window(from_, to)
    bucket_ns = None if bucket.strip() == "auto" else parse_duration(bucket, "bucket")
    step = None if price_step.strip() == "auto" else _positive(price_step, "price_step")
    ids = _instruments(symbol, names)
    events = read_events(served.root, served.cache, [iid for _, iid in ids], start, end)
    data = heatmap(events, start, end, bucket_ns=bucket_ns, price_step=step, exchanges=names)
    return _json({"symbol": symbol, "exchanges": names, "instrument_ids": dict(ids), **data})


def _line_series(kind: DataKind) -> Callable[..., Response]:
    """The endpoint of one line per exchange of `kind` (open interest, funding): the same parameters."""

    def endpoint(
        served: Catalog,
        symbol: Symbol,
        exchanges: Exchanges = None,
        from_: From = None,
        to: To = None,
        max_points: MaxPoints = 2000,
    ) -> Response:
        names = served.exchanges_of(exchanges)
        start, end = _window(from_, to)
        data = series(served.reader, kind, _instruments(symbol, names), start, end, max_points)
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

    return endpoint


router.add_api_route(
    "/open-interest",
    _line_series(OPEN_INTEREST),
    name="open_interest",
    summary="Open interest per exchange (base units, one side of the market)",
)
router.add_api_route(
    "/funding",
    _line_series(FUNDING_RATE),
    name="funding",
    summary="Settled funding rates per exchange (fraction per interval)",
)


@router.get("/metrics", summary="Prometheus metrics from the daemon's status file")
def metrics(served: Catalog) -> Response:
    text = _metrics.render(read_status(served.paths), is_locked(served.paths), now_ns())
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/", include_in_schema=False)
def page() -> HTMLResponse:
    index = _STATIC / "index.html"
    if index.is_file():
        return HTMLResponse(index.read_text(encoding="utf-8"))
    return HTMLResponse("<p>ccxt-pipeline API: see <a href='docs'>/docs</a></p>")


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


def _next_cursor(page: pa.Table, after_ts: int | None, skip: int) -> str:
    """The cursor after a full `page`: its last ts_init and how many rows with that ts_init are given."""
    last_ts = page.column("ts_init")[-1].as_py()
    same_on_page = pc.sum(pc.equal(page.column("ts_init"), last_ts)).as_py() or 0
    already = skip if after_ts == last_ts else 0
    return f"{last_ts}.{already + same_on_page}"


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
