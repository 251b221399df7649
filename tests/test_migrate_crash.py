"""Crash trials for `catalog migrate`: SIGKILL the migrating process at random moments.

After each kill, before anything repairs it: every file is still there under its name with all its rows,
pyarrow reads the catalog with no duplicate, and each both-sides open-interest file (Bybit and Hyperliquid
of schema 1) holds either its old values (old version) or exactly half of them (new version), never a mix;
every other file is byte-identical. A rerun of the migration then completes it and `verify` finds nothing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from ccxt_pipeline.catalog import KINDS
from ccxt_pipeline.catalog.layout import TMP_SUFFIX, data_root
from ccxt_pipeline.catalog.maintenance import verify
from ccxt_pipeline.catalog.merge import sort_unique
from ccxt_pipeline.catalog.migrate import migrate
from ccxt_pipeline.catalog.schema import SCHEMA_VERSION
from tests.v1_catalog import FileState, build_v1_catalog, halved, is_both_sides, snapshot

TRIALS = int(os.environ.get("MIGRATE_CRASH_TRIALS", "20"))
ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "migrate_crash_child.py"
CURRENT = SCHEMA_VERSION.encode()


def start_child(root: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(root)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready", "migration child did not start"
    return proc


def check_after_kill(root: Path, original: dict[str, FileState]) -> int:
    """The catalog as the kill left it; returns how many both-sides files were migrated."""
    now = snapshot(root)
    assert sorted(now) == sorted(original), "a file appeared or vanished"
    migrated = 0
    for rel, old in original.items():
        new = now[rel]
        assert new.rows == old.rows, rel
        if not is_both_sides(root, root / rel, old.version):
            assert new == old, rel
        elif new.version == CURRENT:
            assert (new.open_interest, new.open_interest_value) == (
                halved(old.open_interest),
                halved(old.open_interest_value),
            ), rel
            migrated += 1
        else:
            assert new == old, rel  # untouched: old version, old values, old bytes
    for kind in KINDS.values():
        base = data_root(root) / kind.type_dir
        for folder in sorted(base.iterdir()) if base.exists() else []:
            # pyarrow skips hidden temp files, as NautilusTrader's *.parquet glob does
            table = ds.dataset(folder, format="parquet").to_table()
            assert sort_unique(kind, table).num_rows == table.num_rows, f"duplicates in {folder}"
            assert table.num_rows == sum(
                s.rows for r, s in original.items() if f"/{kind.type_dir}/{folder.name}/" in r
            )
    return migrated


@pytest.mark.slow
def test_sigkill_during_migration(tmp_path: Path) -> None:
    base = tmp_path / "base"
    build_v1_catalog(base, files=8, rows=1000)
    original = snapshot(base)
    total = sum(is_both_sides(base, base / r, s.version) for r, s in original.items())

    # How long one migration takes here, from `ready` to `done`: kills are spread over that span.
    calibrate = tmp_path / "calibrate"
    shutil.copytree(base, calibrate)
    proc = start_child(calibrate)
    t0 = time.monotonic()
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"done"
    span = time.monotonic() - t0
    proc.wait()
    proc.stdout.close()

    rng = random.Random(20261122)
    mid, temp_left, counts = 0, 0, []
    for trial in range(TRIALS):
        root = tmp_path / f"cat{trial}"
        shutil.copytree(base, root)
        proc = start_child(root)
        time.sleep(rng.uniform(0.0, span * 1.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
        temps = [p for p in root.rglob(f"*{TMP_SUFFIX}") if p.name.startswith(".")]
        migrated = check_after_kill(root, original)
        counts.append(migrated)
        mid += 0 < migrated < total or bool(temps)
        temp_left += bool(temps)

        report = migrate(root, durable=False)  # a rerun completes it
        assert len(report.migrated) == total - migrated
        assert not verify(root).problems  # nothing left to migrate, no temp file, no overlap
        for rel, old in original.items():
            if is_both_sides(root, root / rel, old.version):
                table = pq.read_table(root / rel)
                assert table.column("open_interest").to_pylist() == halved(old.open_interest), rel
        shutil.rmtree(root)
    print(
        f"{TRIALS} SIGKILL trials over a {span:.2f}s migration of {total} files: {mid} kills landed "
        f"mid-migration ({temp_left} left a temp file); files migrated at the kill: {counts}"
    )
    assert mid >= TRIALS // 4, "too few kills landed mid-migration to prove anything"
