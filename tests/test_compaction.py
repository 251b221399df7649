"""Compaction never loses a row (issue 10): the CLI scenario that lost rows, random catalogs, a writer and the
daemon beside it, its refusal to remove sources it could not account for, and the row counts `verify` checks."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccxt_pipeline.catalog import (
    LIQUIDATION,
    OPEN_INTEREST,
    CatalogReader,
    CatalogWriter,
    DataKind,
    maintenance,
)
from ccxt_pipeline.catalog.layout import instrument_dir, list_data_files
from ccxt_pipeline.catalog.maintenance import MANIFEST, compact, read_manifest, verify
from ccxt_pipeline.errors import CatalogError
from ccxt_pipeline.models import Liquidation, OpenInterest
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE, NS_PER_MS, now_ns
from tests.catalog_checks import assert_catalog_invariants
from tests.conftest import Cli, SimulatorThread, run_cli, write_sim_config
from tests.strategies import T0, liq, oi
from tests.test_daemon import cli as cli_process
from tests.test_daemon import daemon_config, start_daemon
from tests.test_fetch import iso
from tests.test_maintenance import small_stream_files, snapshot

IID = "BTCUSDT-PERP.BINANCE"


def rows(root: Path, kind: DataKind = OPEN_INTEREST) -> list[dict[str, Any]]:
    """Every stored row of `kind`, in the reader's order."""
    return list(CatalogReader(root).query(kind).to_pylist())


def distinct(root: Path, kind: DataKind) -> set[tuple[Any, ...]]:
    table = CatalogReader(root).query(kind)
    return set(zip(*(table.column(c).to_pylist() for c in kind.columns), strict=True))


def assert_compacted(root: Path, today: int) -> None:
    """After compaction every file that starts before today is one whole UTC day."""
    for kind in (OPEN_INTEREST, LIQUIDATION):
        for iid in CatalogReader(root).instruments(kind):
            for f in list_data_files(instrument_dir(root, kind, iid)):
                if f.start < today:
                    assert f.start % NS_PER_DAY == 0, f.path.name
                    assert f.end == f.start + NS_PER_DAY - 1, f.path.name


# --- the reported scenario, through the CLI and the real ccxt ------------------------------------------------


# The hours of "now" the scenario runs at: what compaction rewrites, and which files lie wholly in today,
# depend on it. A failure in CI at 06:50 UTC (`rows_before` 8,288 of 8,292) came from the last history
# checkpoint, 06:40 to 06:55, which lies wholly in today: compaction left it alone, and the report counted
# only the files it rewrote.
_DAY_MS = 1_763_596_800_000  # 2025-11-20T00:00:00Z
_NOWS = {  # ms after midnight
    "00:05": 5 * 60_000,
    "06:50": 410 * 60_000,
    "06:57:41.5": 417 * 60_000 + 41_500,
    "12:00": 720 * 60_000,
    "23:55": 1435 * 60_000,
}


@pytest.fixture(params=sorted(_NOWS), ids=sorted(_NOWS))
def pinned_cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Cli, int]]:
    """`cli` against a simulator whose "now" is pinned at one hour of 2025-11-20, and the CLI's clock
    (`time.time_ns`, which `now_ns`, `--from` and `catalog compact`'s "today" read) pinned at the same
    instant; with that "now" in ns."""
    now_ms = _DAY_MS + _NOWS[request.param]
    with pytest.MonkeyPatch.context() as mp, SimulatorThread(ExchangeSimulator(seed=0, now_ms=now_ms)) as sim:
        mp.setattr(time, "time_ns", lambda: now_ms * NS_PER_MS)
        config = write_sim_config(sim, tmp_path)

        def invoke(*args: str) -> Any:
            return run_cli(config, *args, catch_exceptions=False)

        yield invoke, now_ms * NS_PER_MS


def test_fetch_29_days_then_30_days_then_compact_keeps_every_row(
    pinned_cli: tuple[Cli, int], tmp_path: Path
) -> None:
    """`fetch-oi --from 29d`, `--from 30d`, `catalog compact` lost the rows of the day the older file shared
    with the file reaching into today (8,640 rows became 8,358). The starts are pinned to noon so that the
    shared day holds 144 points whatever the hour. `compact --json`'s `rows_before` and `rows_after` are the
    whole catalog's (a user compares them to see that nothing was lost), files compaction left alone
    included; run at several pinned hours, since which files it leaves alone depends on the hour."""
    cli, now = pinned_cli
    root = tmp_path / "catalog"
    today = now - now % NS_PER_DAY
    later = today - 28 * NS_PER_DAY + 12 * NS_PER_HOUR
    for start in (later, later - NS_PER_DAY):
        result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", iso(start))
        assert result.exit_code == 0, result.output + result.stderr
    # The layout that lost rows: a file spanning a day boundary and sharing its last day with the next file,
    # and a file reaching into today (history is written as it arrives, so in several files).
    files = list_data_files(instrument_dir(root, OPEN_INTEREST, IID))
    assert any(
        a.start // NS_PER_DAY < a.end // NS_PER_DAY == b.start // NS_PER_DAY for a, b in pairwise(files)
    )
    assert files[-1].end >= today
    before = rows(root)
    assert len(before) >= 2 * 288

    result = cli("catalog", "compact", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads(result.stdout)
    assert rows(root) == before  # every row, in order
    assert report["rows_before"] == report["rows_after"] == len(before)
    assert report["duplicates_dropped"] == 0
    assert report["days_written"] >= 29
    assert_catalog_invariants(root, exact_names=False)
    assert_compacted(root, today)
    entry = read_manifest(root)[f"{OPEN_INTEREST.type_dir}/{IID}"]
    assert (entry["rows_before"], entry["rows_after"], entry["duplicates_dropped"]) == (len(before),) * 2 + (
        0,
    )
    checked = cli("catalog", "verify", "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["problems"] == []
    again = cli("catalog", "compact", "--json")
    second = json.loads(again.stdout)
    assert second["days_written"] == 0
    assert second["rows_before"] == second["rows_after"] == len(before)  # nothing to do: still the whole
    assert rows(root) == before


# --- random catalogs -----------------------------------------------------------------------------------------

_DAYS = 3
_FIVE = 5 * NS_PER_MINUTE
_edges = st.sampled_from(
    [d * NS_PER_DAY + off for d in range(_DAYS + 1) for off in (-1, 0, 1, 300 * NS_PER_MINUTE)]
)
_times = st.one_of(
    _edges.filter(lambda t: t >= 0),
    st.integers(0, (_DAYS + 1) * NS_PER_DAY - 1),
    st.integers(0, (_DAYS + 1) * 288).map(lambda k: k * _FIVE),
)
# A batch of scattered rows, written plainly or in stream buckets (10 minutes, an hour, a day).
_write = st.tuples(
    st.just("write"),
    st.lists(st.tuples(_times, st.sampled_from([0, 1])), min_size=1, max_size=6),
    st.sampled_from([None, None, 10 * NS_PER_MINUTE, NS_PER_HOUR, NS_PER_DAY]),
)
# A history fetch: every 5-minute point from one time to another, up to two days later.
_fetch = st.tuples(
    st.just("fetch"), st.tuples(st.integers(0, (_DAYS + 1) * 288), st.integers(0, 2 * 288)), st.none()
)
_compact = st.tuples(st.just("compact"), st.integers(0, _DAYS + 1), st.none())
_OPS = st.lists(st.one_of(_write, _fetch, _fetch, _compact), min_size=1, max_size=10)


def _run_ops(root: Path, ops: list[tuple[str, Any, Any]], last_today: int) -> None:
    """Writes (plain, in stream buckets, or fetch-like runs) and compactions with a clock that only moves
    forward, then one last compaction; after every compaction the catalog holds the same rows in the same
    order, keeps every invariant, has every ended day in one daily file, and verifies clean."""
    writer = CatalogWriter(root, durable=False)
    today = T0
    for n, (op, arg, bucket) in enumerate([*ops, ("compact", last_today, None)]):
        if op == "compact":
            today = max(today, T0 + arg * NS_PER_DAY)
            before = rows(root)
            compact(root, today_start=today, durable=False)
            assert rows(root) == before
            assert assert_catalog_invariants(root, exact_names=False) == len(before)
            assert_compacted(root, today)
            assert verify(root).problems == []
            continue
        points = [(k * _FIVE, 0) for k in range(arg[0], arg[0] + arg[1] + 1)] if op == "fetch" else arg
        batch = [
            OpenInterest(
                exchange="binance",
                instrument_id=IID,
                ts_event=T0 + t - lag,
                ts_init=T0 + t,
                open_interest=float(n),
            )
            for t, lag in points
        ]
        writer.write(batch, bucket_ns=bucket)
    first = snapshot(root)
    assert compact(root, today_start=today, durable=False).days_written == 0  # idempotent
    assert snapshot(root) == first


_SETTINGS: dict[str, Any] = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


def _compaction_property(max_examples: int) -> Callable[..., None]:
    """The property test (random writes and compactions keep every row) run `max_examples` times."""

    @settings(max_examples=max_examples, **_SETTINGS)
    @given(ops=_OPS, last_today=st.integers(0, _DAYS + 1))
    def test(tmp_path_factory: pytest.TempPathFactory, ops: Any, last_today: int) -> None:
        _run_ops(tmp_path_factory.mktemp("cat"), ops, last_today)

    return test


test_property_compaction_keeps_every_row = _compaction_property(40)
test_property_compaction_keeps_every_row_500 = pytest.mark.slow(_compaction_property(500))


# --- beside a writer ------------------------------------------------------------------------------------------


def test_writer_beside_compaction_loses_nothing(tmp_path: Path) -> None:
    """A writer thread appends (plain and bucketed, across day boundaries and into "today") while compaction
    runs again and again; they share the catalog lock, one folder at a time."""
    today = T0 + 3 * NS_PER_DAY
    small_stream_files(tmp_path, 200, days=4)  # liquidations, into "today"
    CatalogWriter(tmp_path, durable=False).write([oi(i) for i in range(0, 4 * 288, 7)])  # one file, 4 days
    expected = distinct(tmp_path, LIQUIDATION)
    stop = threading.Event()
    written: list[Liquidation] = []
    errors: list[BaseException] = []
    compactions = 0

    def write_until_stopped() -> None:
        try:
            writer = CatalogWriter(tmp_path, durable=False)
            rng = random.Random(5)
            n = 0
            while not stop.is_set() or n < 40:
                t = T0 + rng.randrange(4 * NS_PER_DAY)
                batch = [liq(0, ts_event=t + k, ts_init=t + k + 1, price=1.0 + n) for k in range(3)]
                writer.write(batch, bucket_ns=NS_PER_MINUTE if n % 2 else None)
                written.extend(batch)
                n += 1
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write_until_stopped)
    thread.start()
    try:
        while compactions < 5 or len(written) < 60:
            compact(tmp_path, today_start=today, durable=False)
            compactions += 1
            assert not errors, errors
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert not errors, errors
    compact(tmp_path, today_start=today, durable=False)
    expected |= {tuple(r.model_dump()[c] for c in LIQUIDATION.columns) for r in written}
    assert distinct(tmp_path, LIQUIDATION) == expected
    assert CatalogReader(tmp_path).query(OPEN_INTEREST).num_rows == len(range(0, 4 * 288, 7))
    assert_catalog_invariants(tmp_path, exact_names=False)
    assert_compacted(tmp_path, today)
    assert verify(tmp_path).problems == []


@pytest.mark.slow
def test_daemon_beside_compaction_loses_nothing(tmp_path: Path) -> None:
    """The running daemon (open-interest snapshots, liquidation streams, funding) writes while `catalog
    compact` runs again and again in another process. Two earlier fetches left the file layout that lost
    rows: a file covering an ended day and a day it shares with a file reaching into today."""
    now = now_ns()
    today = now - now % NS_PER_DAY
    later = today - NS_PER_DAY + 12 * NS_PER_HOUR
    with SimulatorThread(ExchangeSimulator(seed=4)) as sim:
        sim.liquidations.rate_per_s = {"binance": 10.0, "bybit": 10.0}
        config = daemon_config(sim, tmp_path)
        root = tmp_path / "catalog"
        for start in (later, later - NS_PER_DAY):
            fetched = cli_process(
                "fetch-oi",
                "BTCUSDT-PERP",
                "-e",
                "binance",
                "-e",
                "bybit",
                "--from",
                iso(start),
                "--config",
                str(config),
            )
            assert fetched.returncode == 0, fetched.stderr
        seen = distinct(root, OPEN_INTEREST)
        proc = start_daemon(config, tmp_path / "daemon.log")
        try:
            for _ in range(4):
                result = cli_process("catalog", "compact", "--json", "--config", str(config), timeout=60)
                assert result.returncode == 0, result.stdout + result.stderr
                now_held = distinct(root, OPEN_INTEREST)
                assert seen <= now_held, f"{len(seen - now_held)} rows lost"
                seen = now_held
                time.sleep(0.5)  # let the daemon write between compactions
            sim.liquidations.rate_per_s = {}
            time.sleep(1.0)  # the last events arrive and are flushed
            stop = cli_process("daemon", "stop", "--config", str(config))
            proc.wait(timeout=15)
        finally:
            proc.kill()
        sent = list(sim.liquidations.sent)
    assert stop.returncode == 0, stop.stderr
    assert seen <= distinct(root, OPEN_INTEREST)
    stored = CatalogReader(root).query(LIQUIDATION)
    assert stored.num_rows == len(sent) > 0  # every delivered liquidation, once
    assert_catalog_invariants(root, exact_names=False)
    assert verify(root).problems == []


# --- what compaction refuses to do, and what verify reports ----------------------------------------------------


def test_compaction_that_cannot_account_for_a_row_removes_no_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_stream_files(tmp_path, 30)
    names = sorted(p.name for p in instrument_dir(tmp_path, LIQUIDATION, IID).iterdir())
    before = distinct(tmp_path, LIQUIDATION)

    def drop_last_row(kind: DataKind, table: pa.Table) -> pa.Table:  # a bug that loses a row per day
        return table.slice(0, max(table.num_rows - 1, 1))

    monkeypatch.setattr(maintenance, "sort_unique", drop_last_row)
    with pytest.raises(CatalogError, match="no source file was removed"):
        compact(tmp_path, today_start=T0 + 10 * NS_PER_DAY, durable=False)
    monkeypatch.undo()
    left = {p.name for p in instrument_dir(tmp_path, LIQUIDATION, IID).iterdir()}
    assert set(names) <= left  # every source is still there (beside the new daily file)
    CatalogWriter(tmp_path, durable=False)  # the next open merges the overlap
    assert distinct(tmp_path, LIQUIDATION) == before
    assert_catalog_invariants(tmp_path, exact_names=False)


def test_verify_reports_rows_lost_since_the_last_compaction(tmp_path: Path) -> None:
    small_stream_files(tmp_path, 30)
    report = compact(tmp_path, today_start=T0 + 10 * NS_PER_DAY)
    assert report.rows_before == report.rows_after == 30
    entry = read_manifest(tmp_path)[f"{LIQUIDATION.type_dir}/{IID}"]
    assert (entry["rows_before"], entry["rows_after"], entry["duplicates_dropped"]) == (30, 30, 0)
    assert verify(tmp_path).problems == []
    CatalogWriter(tmp_path).write([liq(0, ts_event=T0 + 5, ts_init=T0 + 6)])  # writers only add
    assert verify(tmp_path).problems == []

    list_data_files(instrument_dir(tmp_path, LIQUIDATION, IID))[0].path.unlink()  # a day's rows vanish
    problems = verify(tmp_path, repair=True).problems
    assert [(p.kind, p.repairable) for p in problems] == [("rows-lost", False)]
    assert "holds 20 rows; the compaction at" in problems[0].detail


def test_verify_reports_a_compaction_that_lost_rows(tmp_path: Path) -> None:
    small_stream_files(tmp_path, 30)
    compact(tmp_path, today_start=T0 + 10 * NS_PER_DAY)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["folders"][f"{LIQUIDATION.type_dir}/{IID}"]["rows_before"] = 31  # as a lossy run would record
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    problems = verify(tmp_path).problems
    assert [p.kind for p in problems] == ["rows-lost"]
    assert "left 30 of 31 rows" in problems[0].detail


def test_a_file_reaching_into_today_is_split_and_its_ended_days_compacted(tmp_path: Path) -> None:
    today = T0 + 2 * NS_PER_DAY
    w = CatalogWriter(tmp_path)
    w.write([oi(i) for i in range(0, 2 * 288 + 10)])  # one file: two ended days and 50 minutes of today
    before = rows(tmp_path)
    report = compact(tmp_path, today_start=today)
    names = [f.path.name for f in list_data_files(instrument_dir(tmp_path, OPEN_INTEREST, IID))]
    assert len(names) == 3
    assert report.days_written == 2
    assert names[2].startswith("2025-01-03T00-00-00-000000000Z_2025-01-03T00-45-00-000000000Z")
    assert rows(tmp_path) == before
    assert_catalog_invariants(tmp_path, exact_names=False)
    w.write([oi(2 * 288 + 10)])  # today goes on growing as before
    assert len(rows(tmp_path)) == len(before) + 1
