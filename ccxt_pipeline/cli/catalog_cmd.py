"""`ccxt-cli catalog info|coverage|verify|compact|migrate` and `ccxt-cli query`: look into the catalog."""

from __future__ import annotations

import io
import json
import math
import sys
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ccxt_pipeline.cli.common import (
    CatalogOption,
    ConfigOption,
    ExchangeOption,
    Exit,
    JsonOption,
    err,
    guarded,
    load,
    out,
    print_json,
    settings_are_defaults,
)
from ccxt_pipeline.errors import InputError, PipelineError
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.timeutil import NS_PER_SECOND, now_ns, ns_to_iso, parse_when
from ccxt_pipeline.venues import VENUES

if TYPE_CHECKING:  # pyarrow and the catalog load when a command runs, not for --help
    import pyarrow as pa

    from ccxt_pipeline.catalog import CatalogReader
    from ccxt_pipeline.catalog.info import CatalogInfo

app = typer.Typer(help="Inspect, verify and compact the catalog.", no_args_is_help=True)


def _reader(config: Path | None, catalog: Path | None) -> CatalogReader:
    from ccxt_pipeline.catalog import CatalogReader

    return CatalogReader(_root(load(config, catalog).catalog_path))


def _root(path: Path) -> Path:
    if not path.is_dir():
        raise PipelineError(f"no catalog at {path}")
    return path


def _describe(config: Path | None, catalog: Path | None) -> CatalogInfo:
    """`catalog info`'s data. With `--catalog` and no settings in play, from the Parquet footers alone,
    without building the settings or loading pyarrow (start-up, tests/test_startup_imports.py); else, or if
    a file needs the full read (and may be quarantined, with a warning logged as the settings say), as
    every other command reads the catalog."""
    from ccxt_pipeline.catalog.info import describe, describe_from_footers

    described = None
    if catalog is not None and settings_are_defaults(config):
        described = describe_from_footers(_root(catalog.expanduser()))  # expanded as the setting would be
    return described if described is not None else describe(_root(load(config, catalog).catalog_path))


@app.command("info")
@guarded
def info(config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Types, instruments, files, rows, the first and last row's time (read from the data) and bytes; files in
    quarantine (not data) are named after the table.

    Example:  ccxt-cli catalog info --catalog data/catalog
    """
    described = _describe(config, catalog)
    rows = [
        {
            "type": s.type,
            "instrument_id": s.instrument_id,
            "files": s.files,
            "rows": s.rows,
            "first": _iso(s.first_ns),
            "last": _iso(s.last_ns),
            "bytes": s.bytes,
        }
        for s in described.series
    ]
    notes = [f"quarantined (not data): {q.path}: {q.reason or 'unreadable'}" for q in described.quarantined]
    if json_out:
        print_json(rows)
        for line in notes:  # stdout stays the list of series
            err.print(line, markup=False)
        return
    _print_columns(
        ["type", "instrument id", "files", "rows", "first (UTC)", "last (UTC)", "bytes"],
        [
            [
                s.type,
                s.instrument_id,
                str(s.files),
                f"{s.rows:,}",
                _when(s.first_ns),
                _when(s.last_ns),
                f"{s.bytes:,}",
            ]
            for s in described.series
        ],
    )
    for line in notes:
        out.print(line, markup=False)


@app.command("coverage")
@guarded
def coverage(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """One line per type and instrument (period, first and last row, rows, recorded gaps, holes nobody
    recorded, percent covered), then each series' timeline: ranges present, missing points (a fetch asks
    for them again) and recorded gaps (stream outages, history the exchange could not serve).

    Example:  ccxt-cli catalog coverage --json
    """
    result = _reader(config, catalog).coverage_report()
    if json_out:
        print_json(
            [
                {
                    "type": c.type,
                    "instrument_id": c.instrument_id,
                    "period": c.period,
                    "rows": c.rows,
                    "first": _iso(c.first_ns),
                    "last": _iso(c.last_ns),
                    "covered_pct": None if c.covered_pct is None else round(c.covered_pct, 3),
                    "present": [_span(r.start, r.end) for r in c.present],
                    "missing": [_span(r.start, r.end) for r in c.missing],
                    "gaps": [{**_span(g.start, g.end), "reason": g.reason} for g in c.gaps],
                }
                for c in result
            ]
        )
        return
    _print_columns(
        [
            "type",
            "instrument id",
            "period",
            "first (UTC)",
            "last (UTC)",
            "rows",
            "gaps",
            "missing",
            "covered",
        ],
        [
            [
                c.type,
                c.instrument_id,
                c.period or "-",
                _when(c.first_ns),
                _when(c.last_ns),
                f"{c.rows:,}",
                str(len(c.gaps)),
                str(len(c.missing)),
                _pct(c.covered_pct),
            ]
            for c in result
        ],
    )
    for c in result:
        lines = [(r.start, "present", r.start, r.end, "") for r in c.present]
        lines += [(r.start, "missing", r.start, r.end, "") for r in c.missing]
        lines += [(g.start, "gap", g.start, g.end, "  " + g.reason) for g in c.gaps]
        out.print(f"\n{c.type} {c.instrument_id}", markup=False)
        for _, what, a, b, note in sorted(lines):
            out.print(f"  {what:<8} {_when(a)} .. {_when(b)}{note}", markup=False)


def _span(a: int, b: int) -> dict[str, str]:
    return {"from": ns_to_iso(a), "to": ns_to_iso(b)}


def _iso(ns: int | None) -> str | None:
    return None if ns is None else ns_to_iso(ns)


def _when(ns: int | None) -> str:
    """`2025-01-01 23:02:05` to the second, with milliseconds when the time is not a whole second."""
    if ns is None:
        return "-"
    text = ns_to_iso(ns).replace("T", " ")
    return text[:19] if ns % NS_PER_SECOND == 0 else text[:23]


def _pct(value: float | None) -> str:
    """Rounded down, so that a series with one point missing never shows 100.0 %."""
    return "-" if value is None else f"{math.floor(value * 10) / 10:.1f}%"


def _print_columns(header: list[str], rows: list[list[str]]) -> None:
    """A plain aligned table (the same at any terminal width, so it can be read by a script or a test)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        out.print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), markup=False)


@app.command("verify")
@guarded
def verify_cmd(
    config: ConfigOption = None,
    catalog: CatalogOption = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what can be fixed without losing a row.")
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Check every invariant NautilusTrader relies on: files sorted and disjoint, names covering their rows,
    no temp files, one schema and dtype per type. Exits 1 on a violation (after --repair: one left).

    Example:  ccxt-cli catalog verify --repair
    """
    from ccxt_pipeline.catalog.maintenance import verify

    reader = _reader(config, catalog)
    before = verify(reader.root)
    report = verify(reader.root, repair=True) if repair and before.problems else before
    data = {
        "files": report.files,
        "rows_before": before.rows,
        "rows_after": report.rows,
        "problems": [{"kind": p.kind, "file": str(p.path), "detail": p.detail} for p in report.problems],
        "repaired": [{"kind": p.kind, "file": str(p.path)} for p in report.repaired],
        "quarantined": [
            {"file": str(q.path), "from": q.original, "reason": q.reason, "at": q.moved_at}
            for q in report.quarantined
        ],
    }
    if json_out:
        print_json(data)
    else:
        for p in before.problems if not repair else report.repaired:
            out.print(f"{'repaired' if repair else 'problem'}: {p.kind}: {p.path}: {p.detail}", markup=False)
        for p in report.problems:
            err.print(f"problem: {p.kind}: {p.path}: {p.detail}", markup=False)
        for q in report.quarantined:  # moved out of data/: no reader sees them; a hole a fetch may refill
            out.print(f"quarantined: {q.path}: {q.reason or 'unreadable'}", markup=False)
    summary = (
        f"{report.files} files, rows before {before.rows:,}, after {report.rows:,}; "
        f"{len(report.problems)} problem(s) left"
    )
    _finish(None if json_out else summary, left=bool(report.problems))


def _finish(summary: str | None, *, left: bool) -> NoReturn:
    """End a maintenance command: its summary line (None under --json), then exit 1 if something was left
    undone (a problem, an unreadable file), else 0."""
    if summary is not None:
        out.print(summary, markup=False)
    raise typer.Exit(int(Exit.PARTIAL if left else Exit.OK))


@app.command("compact")
@guarded
def compact_cmd(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """Merge small files into one file per UTC day, for every day that has ended. Idempotent and crash-safe.

    Example:  ccxt-cli catalog compact
    """
    from ccxt_pipeline.catalog.maintenance import compact

    reader = _reader(config, catalog)
    report = compact(reader.root)
    data = vars(report)
    if json_out:
        print_json(data)
    else:
        out.print(
            f"{report.files_before} files -> {report.files_after} files in {report.folders} folders; "
            f"{report.days_written} daily files written; rows {report.rows_before:,} before, "
            f"{report.rows_after:,} after ({report.duplicates_dropped:,} exact duplicates dropped)",
            markup=False,
        )


@app.command("migrate")
@guarded
def migrate_cmd(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """Bring files an earlier release wrote up to today's schema version. Open interest stored as both sides
    of the market (twice what Binance reports: Bybit before schema 2, Hyperliquid before schema 3) is halved
    to one side. Each such file is rewritten once, atomically, under its own name; a second run changes
    nothing. Writers do this by themselves before adding open interest to a folder. Exits 1 if a file could
    not be read.

    Example:  ccxt-cli catalog migrate --catalog data/catalog
    """
    from ccxt_pipeline.catalog.migrate import migrate
    from ccxt_pipeline.catalog.versions import CURRENT_VERSION

    reader = _reader(config, catalog)
    report = migrate(reader.root)
    if json_out:
        print_json(
            {
                "files_checked": report.files_checked,
                "migrated": [str(p) for p in report.migrated],
                "rows": report.rows,
                "unreadable": report.unreadable,
            }
        )
    else:
        for path in report.migrated:
            out.print(f"migrated: {path}", markup=False)
        for line in report.unreadable:
            err.print(f"problem: unreadable: {line}", markup=False)
    summary = (
        f"{len(report.migrated)} of {report.files_checked} files migrated ({report.rows:,} rows); "
        f"the catalog is at schema version {CURRENT_VERSION}"
    )
    _finish(None if json_out else summary, left=bool(report.unreadable))


class QueryType(StrEnum):
    """The `query` choices: each queryable kind's `cli_name`, in order (`catalog.schema.CLI_KINDS`; a test
    checks that they agree). Spelt out so that building the CLI needs no pyarrow."""

    oi = "oi"
    funding = "funding"
    liquidations = "liquidations"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


@guarded
def query(
    data_type: Annotated[QueryType, typer.Argument(help="oi, funding (settled) or liquidations.")],
    symbol: Annotated[str, typer.Argument(help="BTCUSDT-PERP (every exchange), or a full id.")],
    exchange: ExchangeOption = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="From WHEN (2025-01-01, ISO, 30d).", show_default=False)
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="To WHEN.", show_default=False)] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format", help="table (for people), csv, json (one object a line) or parquet (as stored)."
        ),
    ] = Format.table,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=0, help="At most N rows (the first N).", show_default=False),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (parquet needs it or a pipe).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    catalog: CatalogOption = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the rows as one JSON array, values as stored.")
    ] = False,
) -> None:
    """Read rows from the catalog, sorted by ts_init.

    csv, json, --json and parquet give the values exactly as stored (times in integer nanoseconds). The table
    shows times in ISO UTC and prices and sizes at the instrument's own precision (from the catalog's
    instrument definitions), ids in full.

    Examples:

      ccxt-cli query oi BTCUSDT-PERP -e binance --from 7d --format csv > oi.csv

      ccxt-cli query liquidations BTCUSDT-PERP --format parquet -o liq.parquet
    """
    from ccxt_pipeline.catalog.schema import CLI_KINDS

    if json_out and fmt is not Format.table:
        raise PipelineError(f"--json prints one JSON array; --format {fmt.value} is another format: use one")
    if fmt is Format.parquet and output is None and sys.stdout.isatty():
        raise PipelineError("--format parquet is binary: write it to a file with -o FILE, or pipe it")
    reader = _reader(config, catalog)
    now = now_ns()
    try:
        start = parse_when(from_, now, "start") if from_ else None
        end = parse_when(to, now, "end") if to else None
    except InputError:
        raise  # rendered with its option's name (`--from: ...`)
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    names = [e for e in exchange] if exchange else list(VENUES)
    ids = [i.instrument_id for i in resolve_many([symbol], names)]
    table = reader.query(CLI_KINDS[data_type], ids, start=start, end=end)
    if limit is not None:
        table = table.slice(0, limit)
    if json_out:
        _write(json.dumps(table.to_pylist(), indent=2).encode() + b"\n", output)
    elif fmt is Format.table:
        lines = _table_lines(
            table, _precisions(reader.root, sorted(set(table.column("instrument_id").to_pylist())))
        )
        _write(("\n".join(lines) + "\n").encode(), output)
    else:
        _emit(table, fmt, output)


def _emit(table: pa.Table, fmt: Format, output: Path | None) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    if fmt is Format.csv:
        pacsv.write_csv(table, buffer)
    elif fmt is Format.json:
        buffer.write("".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode())
    else:
        pq.write_table(table, buffer)
    _write(buffer.getvalue(), output)


def _write(data: bytes, output: Path | None) -> None:
    if output is not None:
        output.write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


# ---- the table ------------------------------------------------------------------------------------------

_TIMES = ("ts_event", "ts_init", "next_funding_ns", "end_ns")
"""Integer nanoseconds since the epoch (catalog/schema.py), shown as ISO times in UTC."""
_PRICES = ("price", "mark_price", "index_price")
_SIZES = ("quantity", "open_interest")
"""Shown at the instrument's price and size precision; other numbers (rates, notional and open-interest
values in the quote currency) have no exchange grid and are shown as stored, without float noise."""


def _precisions(root: Path, ids: list[str]) -> dict[str, tuple[int, int]]:
    """instrument id -> (price, size) decimals of its instrument definition in the catalog
    (`data/crypto_perpetual/<id>/`: the exchange's tick and lot size as its NautilusTrader adapter reads
    them, catalog/definitions.py); instruments without one are left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ccxt_pipeline.catalog.definitions import TYPE_DIR as DEFINITIONS_DIR
    from ccxt_pipeline.catalog.layout import DATA_DIR, data_file_names

    found = {}
    for iid in ids:
        folder = root / DATA_DIR / DEFINITIONS_DIR / iid
        names = data_file_names(folder)
        if not names:
            continue
        try:
            row = pq.read_table(folder / names[-1], columns=["price_precision", "size_precision"]).to_pylist()
        except (OSError, pa.ArrowException, KeyError):
            continue  # an unreadable definition: numbers are shown without it
        if row:
            found[iid] = (int(row[-1]["price_precision"]), int(row[-1]["size_precision"]))
    return found


def _number(value: float, decimals: int | None) -> str:
    """A stored float for people: at `decimals` places when it lies on that grid (a price on the tick, a
    size on the lot: `2974.50`), else the shortest decimal within two units in the last place of the float
    (`707.5328000000001`, a product's rounding noise, is `707.5328`; an exchange's `150570784.07809979`
    keeps every digit the float holds). Never rounded to a precision the value does not have."""
    if not math.isfinite(value):
        return str(value)
    noise = 2 * math.ulp(value)
    if decimals is not None and abs(value - round(value, decimals)) <= noise:
        return f"{round(value, decimals):.{decimals}f}"
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        if abs(float(text) - value) <= noise:
            break
    return format(Decimal(text).normalize(), "f")


def _time_digits(values: list[int | None]) -> int:
    """Fraction digits that show every time of a column exactly: 0, 3, 6 or 9."""
    digits = 0
    for ns in values:
        if ns is None:
            continue
        frac = ns % NS_PER_SECOND
        need = 0 if frac == 0 else 3 if frac % 1_000_000 == 0 else 6 if frac % 1_000 == 0 else 9
        digits = max(digits, need)
    return digits


def _iso_at(ns: int, digits: int) -> str:
    text = ns_to_iso(ns)  # 2025-01-01T00:00:00.000000000Z
    return text[:19] + (text[19 : 20 + digits] if digits else "") + "Z"


def _table_lines(table: pa.Table, precisions: dict[str, tuple[int, int]]) -> list[str]:
    import pyarrow as pa

    rows = table.to_pylist()
    columns = table.column_names
    header = [f"{c} (UTC)" if c in _TIMES else c for c in columns]
    digits = {c: _time_digits(table.column(c).to_pylist()) for c in columns if c in _TIMES}
    cells = []
    for row in rows:
        price, size = precisions.get(row["instrument_id"], (None, None))
        line = []
        for c in columns:
            v = row[c]
            if v is None:
                line.append("-")
            elif c in digits:
                line.append(_iso_at(int(v), digits[c]))
            elif isinstance(v, float):
                line.append(_number(v, price if c in _PRICES else size if c in _SIZES else None))
            else:
                line.append(str(v))
        cells.append(line)
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    numeric = [
        c not in _TIMES and (pa.types.is_floating(t) or pa.types.is_integer(t))
        for c, t in zip(columns, table.schema.types, strict=True)
    ]
    lines = ["  ".join(v.ljust(w) for v, w in zip(header, widths, strict=True)).rstrip()]
    for line in cells:  # numbers right-aligned, so that their points line up
        texts = (v.rjust(w) if n else v.ljust(w) for v, w, n in zip(line, widths, numeric, strict=True))
        lines.append("  ".join(texts).rstrip())
    return lines
