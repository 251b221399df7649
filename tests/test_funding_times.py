"""Hyperliquid stamps funding settlements a few milliseconds past the hour (its docs' fundingHistory example:
`"time":1683849600076`); the simulator does too. Stored rows keep the exchange's time as it is, their
interval is still 60 minutes, and a rerun neither stores a row twice nor asks for it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, CatalogReader
from ccxt_pipeline.models import FundingRate
from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_MS, ns_to_iso
from tests.catalog_checks import assert_catalog_invariants

HOUR_MS = 3_600_000
NOW_MS = 1_763_640_000_000  # 2025-11-20T12:00:00Z, fixed
IID = "BTC-USD-PERP.HYPERLIQUID"


def iso(ms: int) -> str:
    return ns_to_iso(ms * NS_PER_MS)


def stored(config_file: Path) -> list[tuple[int, float, int | None]]:
    reader = CatalogReader(config_file.parent / "catalog")
    rows = reader.query_records(FUNDING_RATE, [IID])
    return [(r.ts_event, r.rate, r.interval_minutes) for r in rows if isinstance(r, FundingRate)]


def test_late_settlement_times_are_stored_as_stamped_once(
    cli: Any, config_file: Path, sim: ExchangeSimulator
) -> None:
    sim.now_ms = NOW_MS
    start, end = NOW_MS - 30 * 24 * HOUR_MS, NOW_MS - 2 * HOUR_MS  # 30 days: two pages of 500 and more
    result = cli("fetch-funding", "BTC-USD-PERP.HYPERLIQUID", "--from", iso(start), "--to", iso(end))
    assert result.exit_code == 0, result.output + result.stderr

    hours = data.funding_settlements("hyperliquid", "BTC", start, end)
    expected = [(hyperliquid.funding_time("BTC", t) * NS_PER_MS, rate, 60) for t, rate, _ in hours]
    expected = [e for e in expected if e[0] <= end * NS_PER_MS]  # the last hour's stamp falls after `end`
    rows = stored(config_file)
    assert rows == expected  # every settlement once, at the exchange's own time, interval 60 minutes
    assert all(0 < ts // NS_PER_MS % HOUR_MS < 100 for ts, _, _ in rows)  # none moved onto the hour
    assert len(rows) > 700
    reader = CatalogReader(config_file.parent / "catalog")
    assert reader.query(COVERAGE_GAP).num_rows == 0
    assert_catalog_invariants(reader.root)

    sim.reset_counters()
    again = cli("fetch-funding", "BTC-USD-PERP.HYPERLIQUID", "--from", iso(start), "--to", iso(end))
    assert again.exit_code == 0, again.output + again.stderr
    assert sim.count("hyperliquid", "info:fundingHistory") == 0  # nothing refetched
    assert stored(config_file) == expected  # nothing duplicated

    # Later, the next hours have settled: only they are asked for, and stored once.
    sim.now_ms = NOW_MS + 3 * HOUR_MS
    sim.reset_counters()
    later = cli(
        "fetch-funding", "BTC-USD-PERP.HYPERLIQUID", "--from", iso(start), "--to", iso(NOW_MS + 3 * HOUR_MS)
    )
    assert later.exit_code == 0, later.output + later.stderr
    rows = stored(config_file)
    assert rows[: len(expected)] == expected
    new_hours = data.funding_settlements("hyperliquid", "BTC", end - HOUR_MS, NOW_MS + 3 * HOUR_MS)
    stamped = [(hyperliquid.funding_time("BTC", t), rate) for t, rate, _ in new_hours]
    assert rows[len(expected) :] == [
        (at * NS_PER_MS, rate, 60) for at, rate in stamped if end < at <= NOW_MS + 3 * HOUR_MS
    ]  # from the hour whose stamp fell just after the first fetch's end, to the last one settled
    assert sim.count("hyperliquid", "info:fundingHistory") <= 2  # the tail (and at most one look before it)
