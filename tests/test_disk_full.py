"""A full disk or a read-only catalog: streams keep their connections and their events (in bounded memory)
and store them when space returns; one-off commands exit with one line; nothing prints a traceback.

The catalog lives on a small tmpfs mounted for the test (root only; skipped with the reason otherwise),
filled up with a plain file and freed by deleting it. One test injects ENOSPC at the file layer instead,
so that it runs everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ccxt_pipeline.catalog import COVERAGE_GAP, LIQUIDATION, CatalogReader, CatalogWriter
from ccxt_pipeline.cli import app
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.stream.writer import BatchingWriter
from tests.conftest import SimulatorThread, sim_settings, wait_for
from tests.strategies import T0, liq
from tests.test_stream import expected_row, stored_rows

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400 * 10**9


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte with one file; delete it to give the space back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (b"\0" * 65536, b"\0"):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return filler


def test_stream_keeps_events_while_the_disk_is_full_and_stores_them_after(
    tmp_path: Path, small_disk: Path
) -> None:
    catalog = small_disk / "catalog"
    CatalogWriter(catalog)  # the folder and its lock exist; then there is no byte left
    filler = fill(small_disk)
    log = tmp_path / "stream.log"
    thread = SimulatorThread(ExchangeSimulator(seed=31))
    with thread as sim:
        config = tmp_path / "config.yaml"
        settings = sim_settings(sim, catalog, stream={"health_seconds": 0.3, "flush_seconds": 0.3})
        config.write_text(yaml.safe_dump(settings))
        with log.open("wb") as fh:
            command = ["stream-liquidations", "BTCUSDT-PERP", "-e", "binance", "--config", str(config)]
            proc = subprocess.Popen(
                [sys.executable, "-m", "ccxt_pipeline", *command],
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
        try:
            thread.run(sim.liquidations.wait_subscribed("binance", "BTCUSDT", max_wait_s=20))
            thread.run(sim.liquidations.burst("binance", "BTCUSDT", 25, within_ms=50))
            wait_for(lambda: "disk full: 25 events waiting" in log.read_text(), "the health line")
            # The flush that found the disk full tries the queued definition right after the events; on a
            # busy machine that try can come after the health line, so space returns only once it failed.
            wait_for(
                lambda: "instrument definition not written" in log.read_text(), "the definition's failure"
            )
            assert proc.poll() is None, log.read_text()
            assert stored_rows(catalog) == []
            filler.unlink()  # space returns
            wait_for(lambda: len(stored_rows(catalog)) == 25, "the events to be stored")
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        finally:
            proc.kill()
        sent = list(sim.liquidations.sent)
    text = log.read_text()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert sorted(stored_rows(catalog)) == sorted(expected_row(e) for e in sent)
    assert len(sent) == 25
    # The instrument definition could not be written at subscription: counted in the exchange's errors.
    assert "instrument definition not written" in text
    assert "errors 0" not in text.split("stopped after")[1]


def test_buffer_bound_drops_the_oldest_and_records_exactly_them_as_a_gap(small_disk: Path) -> None:
    catalog = small_disk / "catalog"
    writer = CatalogWriter(catalog)
    events: list[Record] = [liq(i) for i in range(25)]
    statuses: list[str | None] = []
    batcher = BatchingWriter(writer, 100, 0.1, max_pending=10, on_status=statuses.append)
    filler = fill(small_disk)

    async def scenario() -> None:
        batcher.put(events)
        await batcher.drain()  # the disk is full: the 10 newest kept, the 15 oldest dropped
        assert batcher.status() == "disk full: 10 events waiting, 15 dropped (recorded as gaps)"
        filler.unlink()
        await batcher.drain()

    asyncio.run(scenario())
    assert statuses == ["disk full: 10 events waiting, 15 dropped (recorded as gaps)", None]
    reader = CatalogReader(catalog)
    assert reader.query_records(LIQUIDATION) == events[15:]
    gaps = [g for g in reader.query_records(COVERAGE_GAP) if isinstance(g, CoverageGap)]
    assert [(g.data_type, g.ts_event, g.end_ns) for g in gaps] == [
        ("liquidation", events[0].ts_init, events[14].ts_init)
    ]
    assert "15 events dropped" in gaps[0].reason
    assert (batcher.rows_written, batcher.dropped_records, batcher.unsaved) == (10, 15, 0)


def test_injected_enospc_keeps_the_batch_until_a_flush_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same without a tmpfs: ENOSPC injected where files are written (runs everywhere)."""
    import pyarrow.parquet as pq  # what ccxt_pipeline.catalog.files writes with

    writer = CatalogWriter(tmp_path / "catalog", durable=False)
    real = pq.write_table
    full = True

    def write_table(*args: object, **kwargs: object) -> None:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    batcher = BatchingWriter(writer, 100, 0.1)
    events: list[Record] = [liq(i) for i in range(25)]

    async def scenario() -> None:
        nonlocal full
        batcher.put(events)
        await batcher.drain()
        assert batcher.status() == "disk full: 25 events waiting"
        full = False
        await batcher.drain()
        assert batcher.status() is None

    asyncio.run(scenario())
    assert CatalogReader(tmp_path / "catalog").query_records(LIQUIDATION) == events
    assert not list((tmp_path / "catalog").rglob("*.tmp"))  # no temp file left behind


def test_fetch_on_a_full_disk_exits_with_one_line(
    tmp_path: Path, small_disk: Path, sim: ExchangeSimulator
) -> None:
    catalog = small_disk / "catalog"
    CatalogWriter(catalog)
    fill(small_disk)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(sim_settings(sim, catalog)))
    result = CliRunner().invoke(app, ["fetch-oi", "BTCUSDT-PERP", "-e", "binance", "--config", str(config)])
    assert result.exit_code != 0
    output = result.output + result.stderr
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if "No space left on device" in line]
    assert len(lines) == 1, result.stderr


def test_compact_on_a_read_only_catalog_prints_one_line(small_disk: Path) -> None:
    catalog = small_disk / "catalog"
    writer = CatalogWriter(catalog)
    for i in range(5):  # small files of past days: there is something to compact
        writer.write([liq(0, ts_event=T0 + i * DAY // 2, ts_init=T0 + i * DAY // 2 + 1)])
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = CliRunner().invoke(app, ["catalog", "compact", "--catalog", str(catalog)])
    assert result.exit_code == 2
    output = result.output + result.stderr
    assert "Traceback" not in output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Read-only file system" in result.stderr
