"""`fetch-oi` and `fetch-funding` end to end: the CLI, the real ccxt, the local exchange simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_ESTIMATE, FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.cli import app
from ccxt_pipeline.models import CoverageGap, FundingRate, FundingRateEstimate, OpenInterest
from ccxt_pipeline.simulator import data, hyperliquid
from ccxt_pipeline.simulator.server import ExchangeSimulator, FailureRule
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE, NS_PER_MS, now_ns, ns_to_iso
from tests.catalog_checks import as_records, assert_catalog_invariants
from tests.conftest import Cli, sim_settings

IDS = {
    "binance": "BTCUSDT-PERP.BINANCE",
    "bybit": "BTCUSDT-LINEAR.BYBIT",
    "hyperliquid": "BTC-USD-PERP.HYPERLIQUID",
}
SIM_SYMBOL = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "hyperliquid": "BTC"}
FIVE_MIN = 5 * NS_PER_MINUTE


def catalog(config_dir: Path) -> CatalogReader:
    return CatalogReader(config_dir.parent / "catalog")


def iso(ns: int) -> str:
    return ns_to_iso(ns)[:19] + "Z"


def test_current_open_interest_one_row_per_exchange(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    sim.now_ms = 1_763_640_000_000  # a fixed now: 2025-11-20T12:00:00Z
    result = cli("fetch-oi", "BTCUSDT-PERP")
    assert result.exit_code == 0, result.output + result.stderr
    reader = catalog(config_file)
    rows = {r.exchange: r for r in as_records(OpenInterest, reader.query_records(OPEN_INTEREST))}
    assert sorted(rows) == ["binance", "bybit", "hyperliquid"]
    now = sim.now_ms
    for ex, row in rows.items():
        assert row.instrument_id == IDS[ex]
        assert row.open_interest == data.open_interest(ex, SIM_SYMBOL[ex], now)  # base units, exactly
        assert row.open_interest_value is not None
        assert row.open_interest_value == pytest.approx(
            row.open_interest * data.mark_price(ex, SIM_SYMBOL[ex], now)
        )
    assert rows["binance"].ts_event == now * NS_PER_MS  # Binance stamps its answer
    assert rows["hyperliquid"].ts_event == rows["hyperliquid"].ts_init  # no exchange time: receipt time
    # Bybit's live value comes from tickers, never from the hour-old open-interest row.
    assert sim.count("bybit", "/v5/market/tickers") == 1
    assert sim.count("bybit", "/v5/market/open-interest") == 0
    assert "open interest" in result.output

    as_json = cli("fetch-oi", "BTCUSDT-PERP", "--json", "--no-store")
    assert as_json.exit_code == 0
    answer = json.loads(as_json.output)
    assert {e["exchange"]: e["instruments"] for e in answer["exchanges"]} == {k: [v] for k, v in IDS.items()}
    assert all(len(e["records"]) == 1 and e["ok"] for e in answer["exchanges"])


def test_current_funding_is_stored_apart_from_settled(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    result = cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP")
    assert result.exit_code == 0, result.output + result.stderr
    reader = catalog(config_file)
    estimates = as_records(FundingRateEstimate, reader.query_records(FUNDING_ESTIMATE))
    assert len(estimates) == 6
    assert reader.query(FUNDING_RATE).num_rows == 0  # live estimates never enter the settled series
    by_id = {r.instrument_id: r for r in estimates}
    assert by_id["SOLUSDT-PERP.BINANCE"].interval_minutes == 240  # from fundingInfo
    assert by_id["BTCUSDT-PERP.BINANCE"].interval_minutes == 480  # not listed there: 8h
    assert by_id["SOLUSDT-LINEAR.BYBIT"].interval_minutes == 240
    assert by_id["BTC-USD-PERP.HYPERLIQUID"].interval_minutes == 60
    for r in estimates:
        assert r.next_funding_ns is not None
        assert r.next_funding_ns > r.ts_event - NS_PER_MINUTE
        assert r.mark_price is not None


def expected_oi_points(exchange: str, start: int, end: int) -> list[int]:
    first = -(-start // FIVE_MIN) * FIVE_MIN
    return list(range(first, end - end % FIVE_MIN + 1, FIVE_MIN))


def test_open_interest_history_is_exact_and_incremental(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    now = now_ns()
    to = now - now % FIVE_MIN - FIVE_MIN
    start = to - 30 * NS_PER_DAY + 6 * FIVE_MIN  # inside Binance's 30 days
    result = cli("fetch-oi", "BTCUSDT-PERP", "--from", iso(start), "--to", iso(to))
    assert result.exit_code == 0, result.output + result.stderr
    assert "hyperliquid keeps no open-interest history" in result.stderr
    reader = catalog(config_file)
    for ex in ("binance", "bybit"):
        table = reader.query(OPEN_INTEREST, [IDS[ex]])
        ts = table.column("ts_init").to_pylist()
        assert ts == expected_oi_points(ex, start, to), ex  # every point, once, in order
        amounts = table.column("open_interest").to_pylist()
        assert amounts == [data.open_interest(ex, "BTCUSDT", t // NS_PER_MS) for t in ts]
    assert reader.query(COVERAGE_GAP).num_rows == 0
    assert_catalog_invariants(reader.root)

    sim.reset_counters()
    again = cli("fetch-oi", "BTCUSDT-PERP", "--from", iso(start), "--to", iso(to))
    assert again.exit_code == 0
    history_requests = sim.count("binance", "openInterestHist") + sim.count("bybit", "open-interest")
    assert history_requests == 0, sim.requests
    for ex in ("binance", "bybit"):
        assert f"{IDS[ex]}: up to date: nothing to fetch" in again.output


def test_binance_history_beyond_30_days_is_a_recorded_gap(cli: Cli, config_file: Path) -> None:
    result = cli("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", "40d")
    assert result.exit_code == 0, result.output + result.stderr
    reader = catalog(config_file)
    gaps = as_records(CoverageGap, reader.query_records(COVERAGE_GAP))
    assert len(gaps) == 1
    assert "30 days" in gaps[0].reason
    first = reader.first_timestamp(OPEN_INTEREST, IDS["binance"])
    assert first is not None
    assert gaps[0].end_ns == first - 1
    assert "gap:" in result.output


def test_funding_history_all_exchanges_with_intervals(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    result = cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", "--from", "2025-01-01")
    assert result.exit_code == 0, result.output + result.stderr
    reader = catalog(config_file)
    start_ms = 1_735_689_600_000
    now_ms = sim.now()
    for ex, coin_ids in (
        ("binance", {"BTCUSDT": "BTCUSDT-PERP.BINANCE", "SOLUSDT": "SOLUSDT-PERP.BINANCE"}),
        ("bybit", {"BTCUSDT": "BTCUSDT-LINEAR.BYBIT", "SOLUSDT": "SOLUSDT-LINEAR.BYBIT"}),
        ("hyperliquid", {"BTC": "BTC-USD-PERP.HYPERLIQUID", "SOL": "SOL-USD-PERP.HYPERLIQUID"}),
    ):
        for sym, iid in coin_ids.items():
            expected = [s for s in data.funding_settlements(ex, sym, start_ms, now_ms)]
            rows = as_records(FundingRate, reader.query_records(FUNDING_RATE, [iid]))
            stored = [(r.ts_event // NS_PER_MS, r.rate, r.interval_minutes) for r in rows]
            got_expected = [  # Hyperliquid stamps settlements a few ms past the hour; stored as stamped
                (hyperliquid.funding_time(sym, t) if ex == "hyperliquid" else t, rate, hours * 60)
                for t, rate, hours in expected
            ]
            # The last settlement may fall between our clock and the simulator's: compare what both saw.
            assert stored[: len(got_expected)] == got_expected[: len(stored)], (ex, sym)
            assert abs(len(stored) - len(got_expected)) <= 1, (ex, sym, len(stored), len(got_expected))
    hl = reader.query(FUNDING_RATE, ["BTC-USD-PERP.HYPERLIQUID"]).num_rows
    assert hl > 500 * 20  # far past Hyperliquid's 500-row cap
    sol_intervals = {
        r.interval_minutes
        for r in as_records(FundingRate, reader.query_records(FUNDING_RATE, ["SOLUSDT-PERP.BINANCE"]))
    }
    assert sol_intervals == {480, 240}  # the 4h switch on 2025-03-01
    assert reader.query(COVERAGE_GAP).num_rows == 0


def _history_catalog(config_file: Path) -> dict[str, list[dict[str, Any]]]:
    reader = catalog(config_file)
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in (OPEN_INTEREST, FUNDING_RATE):
        for iid in reader.instruments(kind):
            table = reader.query(kind, [iid])
            out[f"{kind.name}/{iid}"] = table.to_pylist()
    return out


def test_injected_failures_end_in_the_clean_catalog(
    cli: Cli, config_file: Path, sim: ExchangeSimulator, tmp_path: Path
) -> None:
    now = now_ns()
    to = now - now % FIVE_MIN - FIVE_MIN
    args = ("--from", iso(to - 3 * NS_PER_DAY), "--to", iso(to))
    rules = [
        FailureRule(kind="http_429", exchange="binance", match="openInterestHist", every=2, times=3),
        FailureRule(kind="http_503", exchange="bybit", match="open-interest", times=3),  # a burst of three
        FailureRule(kind="timeout", exchange="binance", match="fundingRate", times=1, timeout_s=5),
        FailureRule(kind="malformed", exchange="hyperliquid", match="fundingHistory", every=2, times=2),
        FailureRule(kind="truncated", exchange="bybit", match="funding/history", times=2),
        FailureRule(kind="short_page", exchange="binance", match="openInterestHist", every=3, times=2),
        FailureRule(kind="short_page", exchange="bybit", match="open-interest", every=4, times=2),
    ]
    for rule in rules:
        sim.add_failure(rule)
    assert cli("fetch-oi", "BTCUSDT-PERP", "ETHUSDT-PERP", *args).exit_code == 0
    assert cli("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP", *args).exit_code == 0
    fired = [(r.kind, r.exchange, r.fired) for r in sim.failure_rules]
    assert all(n > 0 for _, _, n in fired), fired
    faulty = _history_catalog(config_file)

    sim.clear_failures()
    clean_cfg = tmp_path / "clean" / "ccxt_pipeline.yaml"
    clean_cfg.parent.mkdir()
    clean_cfg.write_text(
        config_file.read_text().replace(
            str(config_file.parent / "catalog"), str(clean_cfg.parent / "catalog")
        )
    )
    runner = CliRunner()
    for cmd in (
        ("fetch-oi", "BTCUSDT-PERP", "ETHUSDT-PERP"),
        ("fetch-funding", "BTCUSDT-PERP", "SOLUSDT-PERP"),
    ):
        r = runner.invoke(app, [*cmd, *args, "--config", str(clean_cfg)], catch_exceptions=False)
        assert r.exit_code == 0, r.output + r.stderr
    assert faulty == _history_catalog(clean_cfg)
    assert sum(len(v) for v in faulty.values()) > 3000


def test_an_exchange_that_always_fails_does_not_stop_the_others(
    cli: Cli, config_file: Path, sim: ExchangeSimulator
) -> None:
    sim.add_failure(FailureRule(kind="http_503", exchange="bybit"))
    result = cli("fetch-oi", "BTCUSDT-PERP")
    assert result.exit_code == 1  # partial success
    assert "bybit" in result.stderr
    assert "failed" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "failed" in line]) == 1
    stored = {r.exchange for r in catalog(config_file).query_records(OPEN_INTEREST)}
    assert stored == {"binance", "hyperliquid"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fetch-oi", "XYZUSDT-PERP"), "XYZUSDT-PERP"),
        (("fetch-oi", "BTCUSDT-PERP", "-e", "kraken"), "unknown exchange 'kraken'"),
        (("fetch-oi", "BTCUSDT-PERP", "-e", "hyperliquid", "--from", "2d"), "keeps no open-interest history"),
        (("fetch-oi", "BTCUSDT-PERP", "--from", "2d", "--to", "3d"), "--to: the end time "),
        (
            ("fetch-funding", "BTCUSDT-PERP", "--from", "2099-01-01"),
            "--from: the start time 2099-01-01T00:00:00Z is in the future",
        ),
        (("fetch-oi", "BTCUSDT-PERP", "--from", "2d", "--period", "7m"), "--period"),
        (("fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", "2d", "--period", "2h"), "bybit has no 2h"),
        (("fetch-oi", "BTCUSDT-PERP", "--from", "someday"), "cannot read time 'someday'"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(
    cli: Cli, config_file: Path, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    data_dir = config_file.parent / "catalog" / "data"
    assert not data_dir.exists() or not list(data_dir.rglob("*.parquet"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schedule": {"funding_secnds": 60}}, "unknown key 'schedule.funding_secnds'"),
        ({"schedule": {"funding_seconds": "hourly"}}, "schedule.funding_seconds"),
        ({"exchanges": ["binance", "krakken"]}, "unknown exchange 'krakken'"),
    ],
)
def test_bad_config_is_one_line_nonzero_and_writes_nothing(
    sim: ExchangeSimulator, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    settings = sim_settings(sim, tmp_path / "catalog")
    settings.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(settings))
    result = CliRunner().invoke(app, ["fetch-oi", "BTCUSDT-PERP", "--config", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert str(path) in lines[0]  # names the file
    assert not (tmp_path / "catalog").exists()
    assert sum(sim.requests.values()) == 0  # nothing was even asked


def test_unwritable_catalog_path_is_one_line_and_asks_nothing(
    cli: Cli, sim: ExchangeSimulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("fetch-oi", "BTCUSDT-PERP", "--catalog", str(blocker / "catalog"))
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "is not writable" in result.stderr
    assert sum(sim.requests.values()) == 0


def test_live_snapshots_do_not_end_the_history(cli: Cli, config_file: Path, sim: ExchangeSimulator) -> None:
    """A current value stored first (ts_init = now) must not make a later backfill think it is up to date."""
    now = now_ns()
    to = now - now % FIVE_MIN - FIVE_MIN
    start = to - NS_PER_DAY
    assert (
        cli(
            "fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", iso(start), "--to", iso(to - 12 * FIVE_MIN)
        ).exit_code
        == 0
    )
    assert cli("fetch-oi", "BTCUSDT-PERP", "-e", "binance").exit_code == 0  # a live snapshot after it
    assert (
        cli("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", iso(start), "--to", iso(to)).exit_code == 0
    )
    ts = catalog(config_file).query(OPEN_INTEREST, [IDS["binance"]]).column("ts_init").to_pylist()
    assert [t for t in ts if t % FIVE_MIN == 0] == expected_oi_points("binance", start, to)
