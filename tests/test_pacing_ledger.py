"""The pacer's ledger (exchanges/pacing.py `Ledger`): what a process admitted outlives it and is shared by the
processes on one machine, the exchange's limits being per IP.

A "new process" is a new `Pacer` with its own `Ledger` object on the same file (its own tag); time is the
discrete-event `EventClock` of tests/test_pacing.py, which the ledger takes as wall time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ccxt_pipeline import venues
from ccxt_pipeline.exchanges import pacing, retry
from ccxt_pipeline.exchanges.pacing import LEDGER_LATENCY, Ledger, Pacer, ledger_path
from ccxt_pipeline.simulator import binance as sim_binance
from ccxt_pipeline.simulator.limits import Rule
from ccxt_pipeline.simulator.server import ExchangeSimulator
from ccxt_pipeline.venues import RateLimit, RestLimits
from tests.conftest import SimulatorThread, run_cli, sim_settings
from tests.test_pacing import EventClock, drive

WINDOW = RateLimit("a", 10, 5.0, "test")
BUCKET = RateLimit("w", 1200, 60.0, "test", counted="bucket")
LIMITS = RestLimits(limits=(WINDOW, BUCKET), default={"a": 1})
HORIZON = 60.0 + LEDGER_LATENCY


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> EventClock:
    fake = EventClock()
    monkeypatch.setattr(retry, "CLOCK", fake)
    return fake


def process(path: Path, in_flight: int = 5) -> Pacer:
    """A pacer as a new process on this machine makes it."""
    return Pacer("test", LIMITS, in_flight, Ledger(path, HORIZON))


async def test_a_new_process_counts_what_the_last_one_admitted(clock: EventClock, tmp_path: Path) -> None:
    path = tmp_path / "test.log"
    first = process(path)
    await drive(clock, first, [(0.0, {"a": 1.0, "w": 100.0}, 0.0)] * 10)  # the window full, 1000 tokens
    assert first.level("a") == 0.0
    lines = path.read_text().splitlines()
    assert len(lines) == 10
    assert lines[0].split()[2:] == ["a=1", "w=100"]

    rerun = process(path)  # killed and rerun at once: the exchange still counts the first run's requests
    assert rerun.level("a") == 0.0
    assert rerun.level("w") == pytest.approx(1200 - 1000)
    done = await drive(clock, rerun, [(0.0, {"a": 1.0}, 0.0)])
    # the first run's requests count until LEDGER_LATENCY after their admission, then their period
    assert done[0].sent == pytest.approx(LEDGER_LATENCY + WINDOW.seconds)


async def test_lines_older_than_the_longest_period_are_not_counted(clock: EventClock, tmp_path: Path) -> None:
    path = tmp_path / "test.log"
    path.write_text("0.000 gone:1 w=5000\n90.000 other:7 a=3 w=600\n")
    clock.t = 95.0  # the first line is older than the longest period (and the latency): not counted
    pacer = process(path)
    # a window counts the second until LEDGER_LATENCY and its period after it was written
    assert pacer.level("a") == WINDOW.weight - 3
    # a bucket replays the young lines starting full at the oldest: 600 taken at 92, 3 s of refill since;
    # had the 5000 at 0 s been counted, it would still owe 1840
    assert pacer.level("w") == pytest.approx(1200 - 600 + 3 * 20)
    clock.t = 90.0 + LEDGER_LATENCY + WINDOW.seconds
    assert pacer.level("a") == WINDOW.weight


async def test_garbage_lines_and_unusable_ledgers_are_ignored(clock: EventClock, tmp_path: Path) -> None:
    path = tmp_path / "test.log"
    junk = [
        b"nonsense",
        b"1.000 other a=abc",
        b"\x00\xff\xfe garbage",
        b"1.000 other",
        b"inf other a=1",
        b"1.000 other a=-3",
        b"1.000 other a",
        b"",
        b"1.000 other:x a=1",
        b"1.000 other:1 a=4",  # the one line that counts
        b"1.000 other:2 a=2",  # a line still being written: no newline yet
    ]
    path.write_bytes(b"\n".join(junk))
    pacer = process(path)
    assert pacer.level("a") == WINDOW.weight - 4
    assert pacer.level("w") == BUCKET.weight

    # a ledger dir that cannot exist (its parent is a file): requests go on, paced in this process
    blocked = tmp_path / "file"
    blocked.write_text("")
    lost = process(blocked / "dir" / "test.log")
    done = await drive(clock, lost, [(0.0, {"a": 1.0}, 0.0)] * 11)
    assert [d.sent for d in done] == [0.0] * 10 + [5.0]


async def test_two_processes_sharing_a_ledger_see_each_others_admissions(
    clock: EventClock, tmp_path: Path
) -> None:
    path = tmp_path / "test.log"
    daemon, fetch = process(path), process(path)  # both running at once
    first = await drive(clock, daemon, [(0.0, {"a": 1.0}, 0.0)] * 6)
    assert [d.sent for d in first] == [0.0] * 6
    # the one-off fetch reads the daemon's 6 before its first admission: 4 more fit now; the 5th asks while
    # those four are in flight, so it waits for the daemon's to leave (LEDGER_LATENCY after their admission,
    # then the period)
    second = await drive(clock, fetch, [(0.0, {"a": 1.0}, 0.0)] * 6)
    assert [d.sent for d in second] == [0.0] * 4 + [LEDGER_LATENCY + WINDOW.seconds] * 2
    assert daemon.level("a") == WINDOW.weight  # its own have left; it reads the fetch's when it asks
    late = await drive(clock, daemon, [(0.0, {"a": 1.0}, 0.0)] * 3)
    assert [d.sent for d in late] == [clock.t] * 3
    assert daemon.level("a") == 10 - 2 - 3  # the fetch's last two (sent now) and its own three

    # a bucket: one takes everything; the other waits for the refill
    clock.t = 1000.0
    taker, waiter = process(path), process(path)
    await drive(clock, taker, [(0.0, {"w": 1200.0}, 0.0)])
    done = await drive(clock, waiter, [(0.0, {"w": 20.0}, 0.0)])
    assert done[0].sent - 1000.0 == pytest.approx(1.0)  # 20 tokens at 20 a second


async def test_compaction_keeps_the_young_lines(
    clock: EventClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pacing, "_COMPACT_BYTES", 1500)
    path = tmp_path / "test.log"
    gone = process(path)
    await drive(clock, gone, [(0.0, {"a": 1.0}, 0.0)] * 10)  # 10 lines at 0 s
    clock.t = 100.0
    writer, reader = process(path), process(path)
    await drive(clock, writer, [(0.0, {"a": 1.0}, 0.0)] * 3)
    await drive(clock, reader, [(0.0, {"a": 1.0}, 0.0)])  # reads the writer's 3 and adds its own
    assert reader.used("a") == 4
    assert writer.ledger is not None
    assert reader.ledger is not None
    old = path.stat().st_ino
    size = 0
    while path.stat().st_ino == old:  # the writer goes on until the file grows past the bound
        size = path.stat().st_size
        await drive(clock, writer, [(0.0, {"a": 1.0}, 0.0)])
    assert size > 1000
    lines = path.read_text().splitlines()
    tags = {line.split()[1].split(":")[0] for line in lines}
    assert gone.ledger is not None
    assert gone.ledger.tag not in tags
    assert tags == {writer.ledger.tag, reader.ledger.tag}
    assert all(float(line.split()[0]) > clock.t - HORIZON for line in lines)

    # one that reads it for the first time, and one that read the old file, count the same: none twice
    await drive(clock, reader, [(0.0, {"a": 1.0}, 0.0)])
    late = process(path)
    assert reader.used("a") == late.used("a") <= WINDOW.weight


def test_ledger_files_are_keyed_by_exchange_and_host_port(tmp_path: Path) -> None:
    one = ledger_path(tmp_path, "binance", {"fapiPublic": "http://127.0.0.1:8001/fapi/v1"})
    other = ledger_path(tmp_path, "binance", {"fapiPublic": "http://127.0.0.1:8002/fapi/v1"})
    again = ledger_path(tmp_path, "binance", {"x": "http://127.0.0.1:8001/a", "y": "http://127.0.0.1:8001/b"})
    assert one != other
    assert one == again
    assert one.parent == tmp_path
    assert one.name.startswith("binance-")
    assert ledger_path(tmp_path, "bybit", {"x": "http://127.0.0.1:8001/a"}) != one
    assert ledger_path(None, "binance", {}).parent == pacing.default_state_dir()  # tests: their own dir


# --- through the real CLI: a run, then another right after, against a simulator enforcing a tiny limit ------

TINY = 3
"""fundingRate and fundingInfo requests per TINY_SECONDS, here and in the simulator."""
TINY_SECONDS = 3.0


@pytest.mark.slow
def test_a_rerun_right_after_a_run_is_not_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = Rule(
        "fundingRate",
        TINY,
        TINY_SECONDS,
        "fixed",
        paths=("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"),
        weighted=False,
        source="test",
    )
    rules = tuple(rule if r.name == rule.name else r for r in sim_binance.LIMITS.rules)
    monkeypatch.setattr(sim_binance, "LIMITS", dataclasses.replace(sim_binance.LIMITS, rules=rules))
    binance = venues.get_venue("binance")
    assert binance.rest_limits is not None
    tiny = dataclasses.replace(
        binance.rest_limits,
        limits=(
            *(lim for lim in binance.rest_limits.limits if lim.name != "funding"),
            RateLimit("funding", TINY, TINY_SECONDS, "test"),
        ),
    )
    for alias in (binance.name, *binance.aliases):
        monkeypatch.setitem(venues._BY_ALIAS, alias, dataclasses.replace(binance, rest_limits=tiny))

    with SimulatorThread(ExchangeSimulator(seed=3, enforce_limits=True)) as sim:
        runs = []
        for k in range(2):  # each run its own catalog: the second asks as much as the first
            data = sim_settings(sim, tmp_path / f"catalog{k}")
            data["exchanges"]["binance"]["pace_requests"] = True
            config = tmp_path / f"run{k}.yaml"
            config.write_text(yaml.safe_dump(data))
            result = run_cli(config, "fetch-funding", "BTCUSDT-PERP", "-e", "binance", "--from", "2025-06-01")
            assert result.exit_code == 0, result.output
            runs.append(
                sum(n for (ex, path), n in sim.requests.items() if ex == "binance" and "funding" in path)
            )
        assert runs[0] <= TINY < runs[1] == 2 * runs[0]  # each within the limit, together over it
        assert sim.rejections("binance") == 0
    ledgers = list(pacing.default_state_dir().glob("binance-*.log"))
    assert len(ledgers) == 1
    assert len(ledgers[0].read_text().splitlines()) >= runs[1]
