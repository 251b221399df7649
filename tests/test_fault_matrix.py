"""The fault matrix (issue 10): `fetch-oi BTCUSDT-PERP --from 30d` and `fetch-funding BTCUSDT-PERP --from
2025-01-01` through the real CLI and the real ccxt against the simulator, with every fault kind the simulator
has (`FAILURE_KINDS`) on 30% of the requests to every exchange's history endpoints. The final catalog must
equal a clean run's: every row and column of every data type and instrument, the coverage gaps and the
instrument definitions.

Time is pinned on both sides so the faulty and the clean runs see the same "now": the simulator's `now_ms`,
and the CLI's wall clock (`time.time_ns`, which `--from 30d`, the Binance 30-day window and the definitions'
`ts_init` read) frozen at the same instant. Retry waits go through `retry.CLOCK`, a virtual clock
(`tests.test_retry.VirtualClock`), so a `Retry-After` costs nothing; the retry settings are the project's
defaults (6 tries), not the fast test ones, so what is shown is what a user gets.

Measured (2-core machine): every kind alone and all kinds mixed end in the clean catalog; a run that ends with
holes (exit 1, one line per exchange saying a rerun fetches what is missing) is what happens when one request
draws 6 faults in a row (`RUNS_NEEDED`), and one rerun, under the same faults, completes it. Each test asserts
how many runs it took (at most 2) and prints the runs, requests and faults.

Known gap (`test_a_candle_page_that_gives_up_is_filled_by_a_rerun`, xfail): a Bybit mark-price candle page
that gives up leaves the rows' `open_interest_value` empty for good.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from typer.testing import CliRunner

from ccxt_pipeline.catalog import COVERAGE_GAP, FUNDING_RATE, OPEN_INTEREST, CatalogReader
from ccxt_pipeline.catalog.definitions import TYPE_DIR
from ccxt_pipeline.catalog.layout import DATA_DIR
from ccxt_pipeline.catalog.schema import KINDS
from ccxt_pipeline.cli import app
from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.simulator.server import FAILURE_KINDS, ExchangeSimulator, FailureKind, FailureRule
from ccxt_pipeline.timeutil import NS_PER_MS
from tests.catalog_checks import assert_catalog_invariants
from tests.conftest import SimulatorThread, sim_settings
from tests.fake_transport import VirtualClock

pytestmark = pytest.mark.slow

NOW_MS = 1_763_640_000_000  # 2025-11-20T12:00:00Z: the simulator's now and the CLI's, in every run
PROBABILITY = 0.3
COMMANDS = (
    ("fetch-oi", "BTCUSDT-PERP", "--from", "30d"),
    ("fetch-funding", "BTCUSDT-PERP", "--from", "2025-01-01"),
)
Endpoints = tuple[tuple[str, str | None], ...]
HISTORY_ENDPOINTS: Endpoints = (  # (exchange, substring of the path or Hyperliquid's `info:<type>`)
    ("binance", "/futures/data/openInterestHist"),
    ("binance", "/fapi/v1/fundingRate"),
    ("bybit", "/v5/market/open-interest"),
    ("bybit", "/v5/market/mark-price-kline"),  # the value of Bybit's open-interest rows
    ("bybit", "/v5/market/funding/history"),
    ("hyperliquid", "info:fundingHistory"),
)
EVERY_ENDPOINT: Endpoints = (("binance", None), ("bybit", None), ("hyperliquid", None))
"""Markets, funding intervals and current values too, not only history pages."""
MAX_RUNS = 3
RUNS_NEEDED = 2
"""A run ends complete unless one request fails 6 times in a row (the default policy's tries): at 30% that is
0.3**6 = 0.07% per request, so some 5-7% of commands of ~100 pages end with a hole. Which request draws which
fault depends on the event loop's timing, so a test may need one rerun; never more in practice, as the rerun
asks only for the few missing pages."""
CCXT_TIMEOUT_MS = 1000
"""The `timeout` kind holds its answer past this, so ccxt's own timeout fires (RequestTimeout)."""

Snapshot = dict[str, list[dict[str, Any]]]


@dataclass
class World:
    sim: ExchangeSimulator
    clean: Snapshot
    tmp: Path


def snapshot(root: Path) -> Snapshot:
    """Every row of every data type per instrument (coverage gaps included), and the definitions."""
    reader = CatalogReader(root)
    out: Snapshot = {}
    for kind in KINDS.values():
        for iid in reader.instruments(kind):
            out[f"{kind.name}/{iid}"] = reader.query(kind, [iid]).to_pylist()
    definitions = root / DATA_DIR / TYPE_DIR
    if definitions.is_dir():
        for folder in sorted(definitions.iterdir()):
            rows = [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
            out[f"{TYPE_DIR}/{folder.name}"] = rows
    return out


def config(sim: ExchangeSimulator, folder: Path) -> Path:
    settings = sim_settings(sim, folder / "catalog")
    del settings["retry"]  # the project's default retry policy
    for exchange in settings["exchanges"].values():
        exchange["ccxt"]["timeout"] = CCXT_TIMEOUT_MS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ccxt_pipeline.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def run(path: Path, command: tuple[str, ...]) -> Any:
    return CliRunner().invoke(app, [*command, "--config", str(path)], catch_exceptions=False)


@pytest.fixture(scope="module")
def frozen_time() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time_ns", lambda: NOW_MS * NS_PER_MS)
        mp.setattr(retry, "CLOCK", VirtualClock())
        yield


@pytest.fixture(scope="module")
def world(frozen_time: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One simulator at the pinned now for the whole module, and the clean run's catalog."""
    del frozen_time
    tmp = tmp_path_factory.mktemp("fault-matrix")
    with SimulatorThread(ExchangeSimulator(seed=0, now_ms=NOW_MS)) as sim:
        path = config(sim, tmp / "clean")
        for command in COMMANDS:
            result = run(path, command)
            assert result.exit_code == 0, result.stdout + result.stderr
        clean = {f"{ex}:{m}": sim.count(ex, m or "") for ex, m in HISTORY_ENDPOINTS}
        print(f"\nfault matrix clean run: {sum(clean.values())} history requests {clean}")
        yield World(sim, snapshot(path.parent / "catalog"), tmp)


def add_rules(
    sim: ExchangeSimulator, kinds: tuple[FailureKind, ...], seed: int, endpoints: Endpoints
) -> list[FailureRule]:
    """Rules that make PROBABILITY of the requests to every history endpoint fail, spread evenly over
    `kinds`: the first matching rule that fires answers, so each of n rules fires with 1 - (1-p)**(1/n)."""
    each = 1 - (1 - PROBABILITY) ** (1 / len(kinds))
    rules = []
    for i, (exchange, match) in enumerate(endpoints):
        for j, kind in enumerate(kinds):
            rules.append(
                sim.add_failure(
                    FailureRule(
                        kind=kind,
                        exchange=exchange,
                        match=match,
                        probability=each,
                        seed=seed * 1000 + i * 100 + j,
                        retry_after_s=1,
                        timeout_s=2 * CCXT_TIMEOUT_MS / 1000,
                    )
                )
            )
    return rules


def faulty_runs(
    world: World,
    name: str,
    kinds: tuple[FailureKind, ...],
    seed: int,
    endpoints: Endpoints = HISTORY_ENDPOINTS,
) -> dict[str, Any]:
    """Each command under `kinds` faults, rerun until it exits 0 (at most MAX_RUNS runs); then the catalog
    must equal the clean one. Returns the runs each command took, the requests and the faults injected."""
    sim = world.sim
    sim.clear_failures()
    sim.reset_counters()
    rules = add_rules(sim, kinds, seed, endpoints)
    path = config(sim, world.tmp / name)
    runs: dict[str, int] = {}
    for command in COMMANDS:
        for n in range(1, MAX_RUNS + 1):
            result = run(path, command)
            runs[command[0]] = n
            if result.exit_code == 0:
                break
            # Partial (1), or nothing done (3: every exchange failed): one line per exchange that failed.
            assert result.exit_code in (1, 3), result.stdout + result.stderr
            failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
            assert failed, result.stderr
            for line in failed:  # one line per exchange: a temporary error that outlasted its tries
                assert "gave up after 6 tries" in line, line
                print(f"\n{name} {command[0]} run {n}: exit {result.exit_code}: {line}")
    sim.clear_failures()
    got = snapshot(path.parent / "catalog")
    assert_catalog_invariants(path.parent / "catalog")
    figures = {
        "runs": runs,
        "requests": sum(sim.count(exchange, match or "") for exchange, match in endpoints),
        "faults": {k: sum(r.fired for r in rules if r.kind == k) for k in kinds},
    }
    print(f"\nfault matrix {name}: {figures}")
    assert got.keys() == world.clean.keys(), figures
    for key, rows in world.clean.items():
        assert len(got[key]) == len(rows), (key, len(got[key]), len(rows), figures)
        assert got[key] == rows, (key, figures)
    return figures


def test_the_clean_run_is_what_the_matrix_compares_with(world: World) -> None:
    sizes = {k: len(v) for k, v in world.clean.items()}
    assert sizes[f"{OPEN_INTEREST.name}/BTCUSDT-PERP.BINANCE"] == 30 * 288  # 30 days of 5-minute points
    assert sizes[f"{OPEN_INTEREST.name}/BTCUSDT-LINEAR.BYBIT"] == 30 * 288 + 1  # both ends
    assert sizes[f"{FUNDING_RATE.name}/BTC-USD-PERP.HYPERLIQUID"] > 7000  # hourly since 2025-01-01
    assert sizes[f"{FUNDING_RATE.name}/BTCUSDT-PERP.BINANCE"] > 900  # 8-hourly
    # Binance serves 30 days measured when the request arrives: the first 5 minutes are a recorded gap.
    assert sizes[f"{COVERAGE_GAP.name}/BTCUSDT-PERP.BINANCE"] == 1


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_one_fault_kind_at_30_percent_ends_in_the_clean_catalog(world: World, kind: FailureKind) -> None:
    figures = faulty_runs(world, kind, (kind,), seed=FAILURE_KINDS.index(kind) + 1)
    assert sum(figures["faults"].values()) >= 10, figures
    assert max(figures["runs"].values()) <= RUNS_NEEDED, figures


def test_every_fault_kind_mixed_at_30_percent_ends_in_the_clean_catalog(world: World) -> None:
    figures = faulty_runs(world, "mixed", FAILURE_KINDS, seed=99)
    assert all(n > 0 for n in figures["faults"].values()), figures
    assert max(figures["runs"].values()) <= RUNS_NEEDED, figures


def test_every_fault_kind_mixed_on_every_endpoint_ends_in_the_clean_catalog(world: World) -> None:
    """Beyond the acceptance point: loading markets and funding intervals fail at 30% as well."""
    figures = faulty_runs(world, "mixed-everywhere", FAILURE_KINDS, seed=199, endpoints=EVERY_ENDPOINT)
    assert all(n > 0 for n in figures["faults"].values()), figures
    assert max(figures["runs"].values()) <= RUNS_NEEDED, figures


def test_a_candle_page_that_gives_up_is_filled_by_a_rerun(world: World) -> None:
    sim = world.sim
    sim.clear_failures()
    rule = sim.add_failure(
        FailureRule(kind="http_503", exchange="bybit", match="/v5/market/mark-price-kline")
    )
    path = config(sim, world.tmp / "candles-gave-up")
    command = ("fetch-oi", "BTCUSDT-PERP", "-e", "bybit", "--from", "30d")
    first = run(path, command)
    assert first.exit_code != 0, first.stdout + first.stderr  # nothing stored without its value
    assert rule.fired > 0
    sim.clear_failures()  # the exchange is back: the user reruns
    again = run(path, command)
    assert again.exit_code == 0, again.stdout + again.stderr
    key = f"{OPEN_INTEREST.name}/BTCUSDT-LINEAR.BYBIT"
    got = snapshot(path.parent / "catalog")[key]
    assert [r["open_interest_value"] for r in got] == [r["open_interest_value"] for r in world.clean[key]]
