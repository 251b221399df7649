"""What the daemon's resident memory is made of before it does any work.

    python benchmarks/memory_baseline.py

The simulator runs in this process; a fresh child process measures its resident memory (VmRSS) and
Python's heap blocks (`sys.getallocatedblocks`) at each stage a daemon goes through before collecting:
the bare interpreter, the imports (ccxt, ccxt.pro, pyarrow, pydantic, apscheduler and the daemon's own
modules), then the three exchanges opened with their markets loaded. `daemon_soak.py` reports the running
daemon's figures; the difference is what collecting holds (de-duplication memory, buffers, caches).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ccxt_pipeline.simulator.server import ExchangeSimulator  # noqa: E402
from tests.conftest import SimulatorThread, sim_settings  # noqa: E402

CHILD = r"""
import asyncio, json, sys

def sample(stage):
    rss = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {"stage": stage, "rss_mib": round(rss / 2**20, 1), "python_blocks": sys.getallocatedblocks()}

out = [sample("interpreter")]
import ccxt, ccxt.pro, pyarrow, pydantic, apscheduler  # noqa: E401
out.append(sample("ccxt, ccxt.pro, pyarrow, pydantic, apscheduler imported"))
from ccxt_pipeline.daemon.service import Daemon  # noqa: F401
from ccxt_pipeline.collect.clients import open_exchanges
from ccxt_pipeline.settings import load_settings
out.append(sample("the daemon's modules imported"))

async def main():
    settings = load_settings(sys.argv[1])
    names = ["binance", "bybit", "hyperliquid"]
    async with open_exchanges(settings, names) as exchanges:
        for name in names:
            assert await exchanges.client(name) is not None, exchanges.errors
        out.append(sample("three exchanges open, markets loaded"))

asyncio.run(main())
print(json.dumps(out))
"""


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="membase-"))
    with SimulatorThread(ExchangeSimulator(seed=42)) as sim:
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(sim_settings(sim, tmp / "catalog")))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(config)], env=env, capture_output=True, text=True, check=True
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for row in json.loads(done.stdout.strip().splitlines()[-1]):
        print(f"{row['rss_mib']:7.1f} MiB  {row['python_blocks']:9d} blocks  {row['stage']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
