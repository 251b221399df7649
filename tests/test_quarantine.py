"""A corrupt or foreign data file never stops collection: it is moved to `<catalog>/quarantine/`, named in
one warning line, listed by `catalog verify`, and every command goes on as on a clean catalog.

Each command runs through the real CLI against the simulator, with a bad file (garbage bytes, or a real
file cut short) planted where that command meets it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogReader, CatalogWriter, DataKind
from ccxt_pipeline.catalog.layout import file_name, instrument_dir, list_data_files
from ccxt_pipeline.catalog.quarantine import QUARANTINE_DIR
from ccxt_pipeline.daemon.control import DaemonPaths, read_status
from ccxt_pipeline.models import FundingRate
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.timeutil import NS_PER_HOUR
from tests.conftest import Cli
from tests.strategies import T0
from tests.test_daemon import ENV, daemon_config

IID = "BTCUSDT-PERP.BINANCE"
BAD = ("garbage", "truncated")


def spoil(path: Path, how: str) -> None:
    """Garbage bytes, or the file cut to half its length (its footer gone)."""
    if how == "garbage":
        path.write_bytes(b"\x00not parquet at all\xff" * 64)
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def plant_beside(catalog: Path, how: str) -> Path:
    """Settled funding rows (another type than the commands under test write) and a bad file whose name
    overlaps them: the open-time repair of every writer, compaction and verify --repair all meet it."""
    rows = [
        FundingRate(
            exchange="binance", instrument_id=IID, ts_event=t, ts_init=t, rate=1e-4, interval_minutes=480
        )
        for t in (T0 + k * 8 * NS_PER_HOUR for k in range(6))
    ]
    CatalogWriter(catalog).write(rows)
    folder = instrument_dir(catalog, FUNDING_RATE, IID)
    (good,) = list_data_files(folder)
    bad = folder / file_name(good.start, good.end + 1)
    shutil.copyfile(good.path, bad)
    spoil(bad, how)
    return bad


def spoil_own(catalog: Path, kind: DataKind, how: str) -> Path:
    """Spoil the newest file a fetch stored (the history command then meets it in its own folder)."""
    bad = list_data_files(instrument_dir(catalog, kind, IID))[-1].path
    spoil(bad, how)
    return bad


def quarantined_as(catalog: Path, bad: Path) -> Path:
    return catalog / QUARANTINE_DIR / bad.relative_to(catalog / "data")


def assert_quarantined(
    result: Any, catalog: Path, bad: Path, cli: Callable[..., Any], refilled: bool = False
) -> None:
    output = result.output + result.stderr
    assert "Traceback" not in output, output
    if refilled:  # fetched again: a good file of that very range may stand there now
        assert not bad.exists() or pq.ParquetFile(bad).metadata.num_rows
    else:
        assert not bad.exists()
    assert quarantined_as(catalog, bad).is_file()
    warnings = [line for line in result.stderr.splitlines() if "quarantined" in line]
    assert len(warnings) == 1, result.stderr
    assert bad.name in warnings[0]
    verify = cli("catalog", "verify", "--json")
    assert verify.exit_code == 0, verify.output
    listed = json.loads(verify.stdout)["quarantined"]
    assert [q["from"] for q in listed] == [str(bad.relative_to(catalog))]
    assert listed[0]["reason"]


OTHER_TYPE_COMMANDS = {
    "fetch-oi": ("fetch-oi", "BTCUSDT-PERP", "-e", "binance"),
    "fetch-funding": ("fetch-funding", "BTCUSDT-PERP", "-e", "binance"),
    "stream": ("stream-liquidations", "BTCUSDT-PERP", "-e", "binance", "--duration", "1s"),
    "compact": ("catalog", "compact"),
    "verify-repair": ("catalog", "verify", "--repair"),
    "info": ("catalog", "info"),
}


@pytest.mark.parametrize("how", BAD)
@pytest.mark.parametrize("command", list(OTHER_TYPE_COMMANDS))
def test_bad_file_in_another_types_folder(cli: Cli, config_file: Path, command: str, how: str) -> None:
    catalog = config_file.parent / "catalog"
    bad = plant_beside(catalog, how)
    result = cli(*OTHER_TYPE_COMMANDS[command])
    assert result.exit_code == 0, result.output + result.stderr
    assert_quarantined(result, catalog, bad, cli)
    # The good file beside it is untouched.
    assert CatalogReader(catalog).query(FUNDING_RATE, [IID]).num_rows == 6


@pytest.mark.parametrize("how", BAD)
@pytest.mark.parametrize(
    ("kind", "args"),
    [
        (OPEN_INTEREST, ("fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--from", "1d")),
        (FUNDING_RATE, ("fetch-funding", "BTCUSDT-PERP", "-e", "binance", "--from", "3d")),
    ],
    ids=["fetch-oi-history", "fetch-funding-history"],
)
def test_bad_file_in_the_fetched_folder_is_a_hole_fetched_again(
    cli: Cli, config_file: Path, sim: ExchangeSimulator, kind: DataKind, args: tuple[str, ...], how: str
) -> None:
    catalog = config_file.parent / "catalog"
    first = cli(*args)
    assert first.exit_code == 0, first.output + first.stderr
    reader = CatalogReader(catalog)
    stored = reader.query(kind, [IID]).to_pylist()
    bad = spoil_own(catalog, kind, how)
    again = cli(*args)
    assert again.exit_code == 0, again.output + again.stderr
    assert_quarantined(again, catalog, bad, cli, refilled=True)
    # The exchange still serves that history: the hole is filled again, row for row.
    after = {(r["ts_event"], r["ts_init"]): r for r in reader.query(kind, [IID]).to_pylist()}
    assert [after.get((r["ts_event"], r["ts_init"])) for r in stored] == stored


@pytest.mark.parametrize("how", ["garbage"])
def test_daemon_starts_and_collects_beside_a_bad_file(
    tmp_path: Path, sim: ExchangeSimulator, how: str
) -> None:
    config = daemon_config(sim, tmp_path)
    catalog = tmp_path / "catalog"
    bad = plant_beside(catalog, how)
    log = tmp_path / "daemon.log"
    with log.open("wb") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccxt_pipeline", "daemon", "start", "--config", str(config)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=log_fh,
        )
    paths = DaemonPaths.for_catalog(catalog)
    try:
        deadline = time.monotonic() + 45
        while not ((read_status(paths) or {}).get("jobs", {}).get("funding", {}).get("last_success_ns")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert len([line for line in text.splitlines() if "quarantined" in line]) == 1, text
    assert not bad.exists()
    assert quarantined_as(catalog, bad).is_file()
    assert CatalogReader(catalog).query(FUNDING_RATE, ["BTCUSDT-PERP.BINANCE"]).num_rows > 6


def test_verify_without_repair_reports_and_moves_nothing(cli: Cli, config_file: Path) -> None:
    catalog = config_file.parent / "catalog"
    bad = plant_beside(catalog, "garbage")
    result = cli("catalog", "verify", "--json")
    assert result.exit_code == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["file"]) for p in problems if p["kind"] == "unreadable"] == [
        ("unreadable", str(bad))
    ]
    assert bad.exists()
    fixed = cli("catalog", "verify", "--repair")
    assert fixed.exit_code == 0, fixed.output
    assert "quarantined: " in fixed.stdout
    assert not bad.exists()


def test_a_file_quarantined_twice_keeps_both(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    first = plant_beside(catalog, "garbage")
    CatalogWriter(catalog)  # the open-time repair moves it
    shutil.copyfile(quarantined_as(catalog, first), first)
    CatalogWriter(catalog)
    names = sorted(p.name for p in quarantined_as(catalog, first).parent.iterdir())
    assert names == [first.name, first.name.replace(".parquet", "~1.parquet")]
