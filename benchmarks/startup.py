"""Start-up time of the installed `ccxt-cli` (issue 12, item 5).

    python benchmarks/startup.py [--repeat 5] [--cli PATH]

Times three commands, each as a fresh process of the installed entry point (the `ccxt-cli` script beside this
Python, or --cli): `ccxt-cli --help`, `ccxt-cli instruments BTCUSDT-PERP` and `ccxt-cli catalog info` on a
small catalog it builds (3 instruments, open interest and funding, 30 files). Each command runs once to warm
the file cache, then `--repeat` times; it prints the median, best and worst wall time and the median CPU time
(user + system) of the child, against the targets: `--help` under 0.3 s, the other two under 0.5 s (median
of 5). CPU time says how much work start-up is when the machine is busy and wall time is mostly waiting.

The commands run in an empty folder with every `CCXT_*` variable removed, so no settings file is read.
Compiled bytecode is cached as in any installation (`PYTHONDONTWRITEBYTECODE` removed; the cache goes to a
temporary `PYTHONPYCACHEPREFIX`, so the source tree is left alone): the warm-up run writes it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = 1_735_689_600_000_000_000  # 2025-01-01
HOUR = 3_600_000_000_000
DAY = 24 * HOUR
IDS = ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT")

TARGETS = {"--help": 0.3, "instruments BTCUSDT-PERP": 0.5, "catalog info": 0.5}
"""Seconds, median of 5 (issue 12, item 5)."""


@dataclass(frozen=True)
class Timing:
    wall: list[float]
    cpu: list[float]


def build(root: Path) -> None:
    """Five daily files of hourly open interest and funding for each of three instruments."""
    import pyarrow as pa

    from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogWriter

    writer = CatalogWriter(root, durable=False)
    for iid in IDS:
        exchange = iid.rpartition(".")[2].lower()
        for day in range(5):
            ts = [T0 + day * DAY + h * HOUR for h in range(24)]
            n = len(ts)
            oi = pa.table(
                {
                    "exchange": [exchange] * n,
                    "instrument_id": [iid] * n,
                    "open_interest": [80_000.0 + i for i in range(n)],
                    "open_interest_value": [8e9 + i for i in range(n)],
                    "ts_event": ts,
                    "ts_init": ts,
                }
            )
            writer.write_table(OPEN_INTEREST, oi)
            every_8h = ts[::8]
            funding = pa.table(
                {
                    "exchange": [exchange] * len(every_8h),
                    "instrument_id": [iid] * len(every_8h),
                    "rate": [0.0001] * len(every_8h),
                    "interval_minutes": [480] * len(every_8h),
                    "ts_event": every_8h,
                    "ts_init": every_8h,
                }
            )
            writer.write_table(FUNDING_RATE, funding)


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one run, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> Timing:
    run(cmd, cwd, env)  # warm the file cache
    runs = [run(cmd, cwd, env) for _ in range(repeat)]
    return Timing([w for w, _ in runs], [c for _, c in runs])


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{a:.2f}" for a in averages)


def main(repeat: int, cli: Path) -> None:
    if not cli.exists():
        raise SystemExit(f"no ccxt-cli at {cli}: install the project (pip install -e .) or pass --cli")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CCXT_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        catalog = work / "catalog"
        build(catalog)
        files = sum(1 for _ in (catalog / "data").rglob("*.parquet"))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [str(cli), "--help"],
            "instruments BTCUSDT-PERP": [str(cli), "instruments", "BTCUSDT-PERP"],
            "catalog info": [str(cli), "catalog", "info", "--catalog", str(catalog)],
        }
        load = os.getloadavg()
        results = {name: measure(cmd, work, env, repeat) for name, cmd in commands.items()}
        load_after = os.getloadavg()
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpus, "
        f"{platform.platform()}"
    )
    print(f"load average (1, 5, 15 min): before {_load(load)}, after {_load(load_after)}")
    print(f"catalog info reads {files} files; each command: 1 warm-up run, then {repeat} timed")
    for name, t in results.items():
        target = TARGETS.get(name)
        median = statistics.median(t.wall)
        verdict = (
            "" if target is None else f"  target {target:.1f} s: {'met' if median < target else 'NOT met'}"
        )
        print(
            f"{name:<26} wall median {median:.3f} s (best {min(t.wall):.3f}, worst {max(t.wall):.3f})  "
            f"cpu median {statistics.median(t.cpu):.3f} s{verdict}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cli", type=Path, default=Path(sys.executable).parent / "ccxt-cli")
    args = parser.parse_args()
    main(args.repeat, args.cli)
