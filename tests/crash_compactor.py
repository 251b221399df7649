"""Child process for the compaction crash trials: compacts the catalog again and again until it is killed.

It says `ready` once imported and starts when a line arrives on stdin, so the parent can time the kill.

Before each run it appends `start N` to a journal, after it `done N` (each fsynced), so the parent knows whether
a SIGKILL landed inside `compact` (waiting for the lock between folders included).

    python tests/crash_compactor.py CATALOG JOURNAL TODAY_START_NS
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ccxt_pipeline.catalog.maintenance import compact


def main() -> None:
    catalog, journal, today = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says go once the writer is running too
    n = 0
    while True:
        os.write(fd, f"start {n}\n".encode())
        os.fsync(fd)
        compact(catalog, today_start=today)
        os.write(fd, f"done {n}\n".encode())
        os.fsync(fd)
        n += 1


if __name__ == "__main__":
    main()
