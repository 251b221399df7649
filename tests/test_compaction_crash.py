"""Crash trials for compaction: SIGKILL a compacting process (tests/crash_compactor.py) at random moments while a
writer process (tests/crash_writer.py) appends beside it. After each kill, before anything repairs it, the
catalog must read in pyarrow and hold every distinct row: the template's and every batch whose write returned.
Then a writer's open repairs it (no duplicate left) and a compaction finishes the job, losing nothing."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogWriter, DataKind
from ccxt_pipeline.catalog.layout import kind_dir, list_data_files
from ccxt_pipeline.catalog.maintenance import compact, verify
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.models import OpenInterest
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE
from tests.catalog_checks import assert_catalog_invariants
from tests.crash_writer import T0
from tests.strategies import liq
from tests.test_crash import expected_keys

TRIALS = int(os.environ.get("COMPACTION_CRASH_TRIALS", "20"))
ROOT = Path(__file__).resolve().parent.parent
DAYS = 8
TODAY = (
    T0 + (DAYS - 1) * NS_PER_DAY
)  # the writer's rows fall on the first two days; the template's reach today
KINDS = (OPEN_INTEREST, LIQUIDATION)


TEMPLATE_FILES = 250


def template(root: Path, files: int = TEMPLATE_FILES) -> None:
    """Many small files over `DAYS` days on both instruments the writer writes, one of them reaching into
    "today"; times are off the writer's grid (+0.5 s) so that no key is shared."""
    w = CatalogWriter(root, durable=False)
    for i in range(files):
        t = T0 + i * (DAYS * NS_PER_DAY // files) + 500_000_000
        w.write(
            [
                OpenInterest(
                    exchange="binance",
                    instrument_id="BTCUSDT-PERP.BINANCE",
                    ts_event=t,
                    ts_init=t,
                    open_interest=float(i),
                ),
                liq(
                    0,
                    exchange="bybit",
                    instrument_id="BTCUSDT-LINEAR.BYBIT",
                    ts_event=t,
                    ts_init=t + 1,
                    quantity=1.0,
                    price=1.0 + i,
                ),
            ]
        )
    # One file from the day before today into today (as a fetch up to now leaves it).
    start = TODAY - 60 * NS_PER_MINUTE + 250_000_000
    w.write(
        [
            OpenInterest(
                exchange="binance",
                instrument_id="BTCUSDT-PERP.BINANCE",
                ts_event=start + k * 5 * NS_PER_MINUTE,
                ts_init=start + k * 5 * NS_PER_MINUTE,
                open_interest=1.0,
            )
            for k in range(30)
        ]
    )


def keys(root: Path) -> tuple[dict[str, set[tuple[Any, ...]]], bool]:
    """Natural keys of every stored row, read by pyarrow as the folder is (temp files skipped), and whether
    some key is stored twice (possible only while a compaction's new files overlap their sources)."""
    out: dict[str, set[tuple[Any, ...]]] = {}
    duplicated = False
    for kind in KINDS:
        table = ds.dataset(kind_dir(root, kind), format="parquet").to_table()
        duplicated |= sort_unique(kind, table).num_rows != table.num_rows
        out[kind.name] = set(zip(*(table.column(c).to_pylist() for c in kind.key), strict=True))
    return out, duplicated


def overlaps(root: Path, kind: DataKind) -> bool:
    return any(
        prev.end >= cur.start
        for folder in kind_dir(root, kind).iterdir()
        for prev, cur in itertools.pairwise(list_data_files(folder))
    )


def start(*commands: list[str]) -> list[subprocess.Popen[bytes]]:
    """Start the children together; return once each has said it is ready."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        for args in commands
    ]
    for proc, args in zip(procs, commands, strict=True):
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", f"{args[0]} did not start"
    return procs


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.stdout is not None
    assert proc.stdin is not None
    proc.stdout.close()
    proc.stdin.close()


@pytest.mark.slow
def test_sigkill_compaction_beside_a_writer(tmp_path: Path) -> None:
    base = tmp_path / "template"
    template(base)
    base_keys, _ = keys(base)
    # How long the first run takes alone: kills are drawn over that span, so most land in the heavy work.
    shutil.copytree(base, tmp_path / "timing")
    began = time.monotonic()
    compact(tmp_path / "timing", today_start=TODAY)
    first_run = time.monotonic() - began
    rng = random.Random(20261129)
    mid_compaction = mid_first = left_overlaps = 0
    for trial in range(TRIALS):
        root = tmp_path / f"cat{trial}"
        shutil.copytree(base, root)
        writer_journal, compactor_journal = tmp_path / f"w{trial}", tmp_path / f"c{trial}"
        writer, compactor = start(
            [str(ROOT / "tests" / "crash_writer.py"), str(root), str(writer_journal), str(trial)],
            [str(ROOT / "tests" / "crash_compactor.py"), str(root), str(compactor_journal), str(TODAY)],
        )
        assert compactor.stdin is not None
        compactor.stdin.write(b"go\n")
        compactor.stdin.flush()
        time.sleep(rng.uniform(0.0, 1.5 * first_run))
        kill(compactor)
        kill(writer)
        journal = compactor_journal.read_text().split()
        mid_compaction += journal[-2] == "start"
        mid_first += "done" not in journal
        returned = len(writer_journal.read_text().split())

        # As the kill left it: pyarrow reads it, and every distinct row is there.
        stored, duplicated = keys(root)
        overlapped = any(overlaps(root, kind) for kind in KINDS)
        left_overlaps += overlapped
        assert overlapped or not duplicated, f"trial {trial}: duplicates without an overlap"
        for name, want in expected_keys(trial, returned).items():
            want = want | base_keys[name]
            missing = want - stored[name]
            assert not missing, f"trial {trial}: {len(missing)} {name} rows lost"

        # A writer's open merges what the compaction left; a compaction then finishes, losing nothing.
        CatalogWriter(root, durable=False)
        compact(root, today_start=TODAY, durable=False)
        assert keys(root) == (stored, False), f"trial {trial}"
        assert assert_catalog_invariants(root, exact_names=False) == sum(len(v) for v in stored.values())
        assert verify(root).problems == []
        shutil.rmtree(root)
    print(
        f"{TRIALS} SIGKILL trials beside a writer: {mid_compaction} kills inside compact() "
        f"({mid_first} inside the first run, which compacts the template's {TEMPLATE_FILES} files), "
        f"{left_overlaps} left a compaction's new files overlapping their sources "
        f"(the first run took {first_run:.2f} s alone)"
    )
    assert mid_first >= TRIALS // 4, "too few kills landed inside the heavy first run to prove much"
