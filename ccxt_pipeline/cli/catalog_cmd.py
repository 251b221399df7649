"""`ccxt-cli catalog info|coverage|verify|compact|migrate` and `ccxt-cli query`: look into the catalog."""

from __future__ import annotations

import io
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.table import Table

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, KINDS, LIQUIDATION, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.catalog.files import read_row_count
from ccxt_pipeline.catalog.layout import instrument_dir, list_data_files
from ccxt_pipeline.catalog.maintenance import compact, verify
from ccxt_pipeline.catalog.migrate import migrate
from ccxt_pipeline.catalog.versions import CURRENT_VERSION
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
)
from ccxt_pipeline.collect.plan import Range, missing_grid_points
from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.instruments import resolve_many
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.timeutil import NS_PER_MINUTE, now_ns, ns_to_iso, parse_when
from ccxt_pipeline.venues import VENUES

app = typer.Typer(help="Inspect, verify and compact the catalog.", no_args_is_help=True)


def _reader(config: Path | None, catalog: Path | None) -> CatalogReader:
    settings = load(config, catalog)
    if not Path(settings.catalog_path).is_dir():
        raise PipelineError(f"no catalog at {settings.catalog_path}")
    return CatalogReader(settings.catalog_path)


@app.command("info")
@guarded
def info(config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Types, instruments, rows, time ranges and bytes.

    Example:  ccxt-cli catalog info --catalog data/catalog
    """
    reader = _reader(config, catalog)
    rows: list[dict[str, Any]] = []
    for kind in KINDS.values():
        for iid in reader.instruments(kind):
            files = list_data_files(instrument_dir(reader.root, kind, iid))
            counts = [read_row_count(f.path) for f in files]  # None: unreadable, moved to quarantine
            files = [f for f, n in zip(files, counts, strict=True) if n is not None]
            if not files:
                continue
            rows.append(
                {
                    "type": kind.name,
                    "instrument_id": iid,
                    "files": len(files),
                    "rows": sum(n for n in counts if n is not None),
                    "first": ns_to_iso(files[0].start),
                    "last": ns_to_iso(files[-1].end),
                    "bytes": sum(f.path.stat().st_size for f in files),
                }
            )
    if json_out:
        print_json(rows)
        return
    table = Table("type", "instrument id", "files", "rows", "first (UTC)", "last (UTC)", "bytes")
    for r in rows:
        table.add_row(
            r["type"],
            r["instrument_id"],
            str(r["files"]),
            f"{r['rows']:,}",
            r["first"][:19],
            r["last"][:19],
            f"{r['bytes']:,}",
        )
    out.print(table)


@app.command("coverage")
@guarded
def coverage(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """Per type and instrument: the time ranges present and the gaps (missing 5-minute open-interest points,
    stream outages, history the exchange could not serve).

    Example:  ccxt-cli catalog coverage --json
    """
    reader = _reader(config, catalog)
    result = []
    gaps = [g for g in reader.query_records(COVERAGE_GAP) if isinstance(g, CoverageGap)]
    for kind in (OPEN_INTEREST, FUNDING_RATE, LIQUIDATION):
        for iid in reader.instruments(kind):
            entry: dict[str, Any] = {"type": kind.name, "instrument_id": iid}
            if kind is OPEN_INTEREST:
                step = 5 * NS_PER_MINUTE
                ts = [t for t in reader.query(kind, [iid]).column("ts_init").to_pylist() if t % step == 0]
                entry["present"] = [_span(a, b) for a, b in _runs(ts, step)]
                holes = missing_grid_points(Range(ts[0], ts[-1]), step, set(ts)) if ts else []
                entry["missing_5m_points"] = [_span(r.start, r.end) for r in holes]
            else:
                entry["present"] = [_span(a, b) for a, b in reader.coverage(kind, iid)]
            entry["gaps"] = [
                {**_span(g.ts_event, g.end_ns), "reason": g.reason}
                for g in gaps
                if g.instrument_id == iid and g.data_type == kind.name
            ]
            result.append(entry)
    market_gaps = [g for g in gaps if g.instrument_id.startswith("MARKET.")]
    if market_gaps:
        result.append(
            {
                "type": "liquidation",
                "instrument_id": "(whole market)",
                "gaps": [{**_span(g.ts_event, g.end_ns), "reason": g.reason} for g in market_gaps],
            }
        )
    if json_out:
        print_json(result)
        return
    for e in result:
        out.print(f"{e['type']} {e['instrument_id']}", markup=False)
        for p in e.get("present", []):
            out.print(f"  present  {p['from'][:19]} .. {p['to'][:19]}", markup=False)
        for m in e.get("missing_5m_points", []):
            out.print(f"  missing  {m['from'][:19]} .. {m['to'][:19]}", markup=False)
        for g in e["gaps"]:
            out.print(f"  gap      {g['from'][:19]} .. {g['to'][:19]}  {g['reason']}", markup=False)


def _span(a: int, b: int) -> dict[str, str]:
    return {"from": ns_to_iso(a), "to": ns_to_iso(b)}


def _runs(ts: list[int], step: int) -> list[tuple[int, int]]:
    out_: list[tuple[int, int]] = []
    for t in ts:
        if out_ and t - out_[-1][1] <= step:
            out_[-1] = (out_[-1][0], t)
        else:
            out_.append((t, t))
    return out_


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
        out.print(
            f"{report.files} files, rows before {before.rows:,}, after {report.rows:,}; "
            f"{len(report.problems)} problem(s) left",
            markup=False,
        )
    raise typer.Exit(int(Exit.PARTIAL if report.problems else Exit.OK))


@app.command("compact")
@guarded
def compact_cmd(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """Merge small files into one file per UTC day, for every day that has ended. Idempotent and crash-safe.

    Example:  ccxt-cli catalog compact
    """
    reader = _reader(config, catalog)
    report = compact(reader.root)
    data = vars(report)
    if json_out:
        print_json(data)
    else:
        out.print(
            f"{report.files_before} files -> {report.files_after} files in {report.folders} folders; "
            f"{report.days_written} daily files written",
            markup=False,
        )


@app.command("migrate")
@guarded
def migrate_cmd(
    config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False
) -> None:
    """Bring files an earlier release wrote up to today's schema version. Bybit open interest before schema 2
    was both sides of the market (twice what Binance and Hyperliquid report): it is halved to one side. Each
    such file is rewritten once, atomically, under its own name; a second run changes nothing. Writers do
    this by themselves before adding Bybit open interest to a folder. Exits 1 if a file could not be read.

    Example:  ccxt-cli catalog migrate --catalog data/catalog
    """
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
        out.print(
            f"{len(report.migrated)} of {report.files_checked} files migrated ({report.rows:,} rows); "
            f"the catalog is at schema version {CURRENT_VERSION}",
            markup=False,
        )
    raise typer.Exit(int(Exit.PARTIAL if report.unreadable else Exit.OK))


class QueryType(StrEnum):
    oi = "oi"
    funding = "funding"
    liquidations = "liquidations"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


_KIND = {QueryType.oi: OPEN_INTEREST, QueryType.funding: FUNDING_RATE, QueryType.liquidations: LIQUIDATION}


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
        Format, typer.Option("--format", help="table, csv, json (lines) or parquet.")
    ] = Format.table,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most N rows (the first N).", show_default=False)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write to this file (parquet needs it or a pipe).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Read rows from the catalog, sorted by ts_init, exactly as stored.

    Examples:

      ccxt-cli query oi BTCUSDT-PERP -e binance --from 7d --format csv > oi.csv

      ccxt-cli query liquidations BTCUSDT-PERP --format parquet -o liq.parquet
    """
    reader = _reader(config, catalog)
    now = now_ns()
    try:
        start = parse_when(from_, now) if from_ else None
        end = parse_when(to, now) if to else None
    except ValueError as exc:
        raise PipelineError(str(exc)) from None
    names = [e for e in exchange] if exchange else list(VENUES)
    ids = [i.instrument_id for i in resolve_many([symbol], names)]
    table = reader.query(_KIND[data_type], ids, start=start, end=end)
    if limit is not None:
        table = table.slice(0, limit)
    _emit(table, fmt, output)


def _emit(table: pa.Table, fmt: Format, output: Path | None) -> None:
    if fmt is Format.table:
        t = Table(*table.column_names)
        for row in table.to_pylist():
            t.add_row(*(str(v) for v in row.values()))
        out.print(t)
        return
    buffer = io.BytesIO()
    if fmt is Format.csv:
        pacsv.write_csv(table, buffer)
    elif fmt is Format.json:
        buffer.write("".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode())
    else:
        pq.write_table(table, buffer)
    if output is not None:
        output.write_bytes(buffer.getvalue())
    else:
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.flush()
