"""Crash trials: SIGKILL a writer process at random moments; the catalog must stay whole.

After each kill, before anything repairs it, the catalog must read in pyarrow (and NautilusTrader when
the extra is installed), hold no duplicate and hold every batch whose write call returned. Opening a
writer afterwards then removes the leftovers.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from ccxt_pipeline.catalog import LIQUIDATION, OPEN_INTEREST, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.merge import sort_unique
from tests.catalog_checks import assert_catalog_invariants
from tests.crash_writer import batch

TRIALS = int(os.environ.get("CRASH_TRIALS", "50"))
HAS_NAUTILUS = importlib.util.find_spec("nautilus_trader") is not None
ROOT = Path(__file__).resolve().parent.parent


def expected_keys(seed: int, returned: int) -> dict[str, set[tuple[Any, ...]]]:
    """Natural keys of every row in batches 0..returned-1 (the ones whose write returned)."""
    rng = random.Random(seed)
    keys: dict[str, set[tuple[Any, ...]]] = {"open_interest": set(), "liquidation": set()}
    for n in range(returned):
        for kind, table in batch(n, rng):
            keys[kind.name].update(zip(*(table.column(c).to_pylist() for c in kind.key), strict=True))
    return keys


def stored_keys(root: Path) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {}
    for kind in (OPEN_INTEREST, LIQUIDATION):
        folder = root / "data" / kind.type_dir
        if not folder.exists():
            out[kind.name] = set()
            continue
        # pyarrow reads the folder as it is (dot-files, i.e. temp files, are skipped by default).
        table = ds.dataset(folder, format="parquet").to_table()
        assert sort_unique(kind, table).num_rows == table.num_rows, "duplicates after crash"
        out[kind.name] = set(zip(*(table.column(c).to_pylist() for c in kind.key), strict=True))
    return out


def nautilus_counts(root: Path) -> dict[str, int]:
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from ccxt_pipeline.nautilus import Liquidation, OpenInterest

    catalog = ParquetDataCatalog(str(root))
    return {
        "open_interest": len(catalog.query(OpenInterest)),
        "liquidation": len(catalog.query(Liquidation)),
    }


@pytest.mark.slow
def test_sigkill_trials(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    mid_write = batches = 0
    for trial in range(TRIALS):
        root, journal, seed = tmp_path / f"cat{trial}", tmp_path / f"journal{trial}", trial
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "crash_writer.py"), str(root), str(journal), str(seed)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", "writer did not start"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        returned = len(journal.read_text().split())

        # The catalog as the crash left it: readable, no duplicates, every returned batch present.
        expected = expected_keys(seed, returned)
        stored = stored_keys(root)
        for name, keys in expected.items():
            missing = keys - stored[name]
            assert not missing, f"trial {trial}: {len(missing)} committed {name} rows lost"
        if HAS_NAUTILUS:
            counts = nautilus_counts(root)
            assert counts == {k: len(v) for k, v in stored.items()}, f"trial {trial}: {counts}"

        # Opening a writer removes leftovers and keeps every row.
        repaired = CatalogWriter(root).last_repair
        assert repaired is not None
        mid_write += bool(repaired.temp_files_removed)
        batches += returned
        assert assert_catalog_invariants(root) == sum(len(v) for v in stored.values())
        assert {k: len(v) for k, v in stored_keys(root).items()} == {k: len(v) for k, v in stored.items()}
        assert CatalogReader(root).query(OPEN_INTEREST).num_rows == len(stored["open_interest"])
    print(f"{TRIALS} SIGKILL trials, {batches} committed batches checked, {mid_write} kills left a temp file")
    # Enough kills must land between a temp file and its rename, or the trials prove little.
    assert mid_write >= TRIALS // 10
