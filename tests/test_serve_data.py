"""The service's file cache (`ccxt_pipeline.serve.data`) while the catalog changes under it.

The catalog is written by the real `CatalogWriter` the way the stream writes it (one file per instrument
per minute, the current minute rewritten by each flush), compacted by the real `compact`, and read back by
the real app (FastAPI's TestClient). Notionals are whole numbers, so sums are exact in any order and the
heatmap's totals can be compared with `==` to the rows on disk: a stale, lost or doubled row shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi.testclient import TestClient

from ccxt_pipeline.catalog import LIQUIDATION, CatalogReader, CatalogWriter
from ccxt_pipeline.catalog.files import write_parquet_atomic
from ccxt_pipeline.catalog.layout import file_name, instrument_dir, list_data_files
from ccxt_pipeline.catalog.maintenance import compact
from ccxt_pipeline.catalog.quarantine import list_quarantined
from ccxt_pipeline.serve.api import create_app
from ccxt_pipeline.serve.data import SETTLE_NS, Cached, FileCache, _cached, read_events, read_liquidations
from ccxt_pipeline.serve.heatmap import Events
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_MINUTE, NS_PER_SECOND, now_ns

DAY = 1_735_689_600 * NS_PER_SECOND  # 2025-01-01T00:00:00Z
IDS = {"binance": "BTCUSDT-PERP.BINANCE", "bybit": "BTCUSDT-LINEAR.BYBIT"}
WHOLE_DAY = {
    "symbol": "BTCUSDT-PERP",
    "exchanges": "binance,bybit",
    "from": "2025-01-01T00:00:00Z",
    "to": "2025-01-01T23:59:59.999999999Z",
}


def liquidations(exchange: str, start: int, n: int, seed: int) -> pa.Table:
    """`n` liquidations from `start`, one every 700 ms; whole-number prices and quantities."""
    rng = np.random.default_rng(seed)
    ts = start + np.arange(n, dtype=np.int64) * 700_000_000
    price = rng.integers(94_000, 96_000, n).astype(np.float64)
    qty = rng.integers(1, 20, n).astype(np.float64)
    return pa.table(
        {
            "exchange": [exchange] * n,
            "instrument_id": [IDS[exchange]] * n,
            "side": np.where(rng.random(n) < 0.5, "LONG", "SHORT"),
            "quantity": qty,
            "price": price,
            "notional": price * qty,
            "ts_event": ts - 1_000_000,
            "ts_init": ts,
        }
    )


def write(root: Path, exchange: str, start: int, n: int, seed: int) -> None:
    CatalogWriter(root, durable=False).write_table(
        LIQUIDATION, liquidations(exchange, start, n, seed), bucket_ns=NS_PER_MINUTE
    )


def stored_totals(root: Path) -> tuple[int, dict[str, dict[str, float]]]:
    """Rows on disk and their notional per exchange and side (exact: whole numbers)."""
    table = CatalogReader(root).query(LIQUIDATION)
    totals = {ex: {"long": 0.0, "short": 0.0} for ex in IDS}
    for ex, side, notional in zip(
        *(table.column(c).to_pylist() for c in ("exchange", "side", "notional")), strict=True
    ):
        totals[ex]["long" if side == "LONG" else "short"] += notional
    return table.num_rows, totals


def heatmap_totals(client: TestClient) -> tuple[int, dict[str, dict[str, float]]]:
    r = client.get("/liquidations/heatmap", params=WHOLE_DAY)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["events"], body["totals"]


def page_keys(client: TestClient) -> list[tuple[Any, ...]]:
    """Every row /liquidations gives for the day, by natural key (all pages)."""
    keys: list[tuple[Any, ...]] = []
    cursor = None
    while True:
        params = {**WHOLE_DAY, "limit": "500", **({"cursor": cursor} if cursor else {})}
        body = client.get("/liquidations", params=params).json()
        keys += [
            (r["instrument_id"], r["ts_init_ns"], r["side"], r["price"], r["quantity"]) for r in body["rows"]
        ]
        cursor = body["next_cursor"]
        if cursor is None:
            return keys


def stored_keys(root: Path) -> list[tuple[Any, ...]]:
    t = CatalogReader(root).query(LIQUIDATION)
    cols = [t.column(c).to_pylist() for c in ("instrument_id", "ts_init", "side", "price", "quantity")]
    return sorted(zip(*cols, strict=True))


def age(root: Path, *only: Path) -> None:
    """Make the data files and their folders (or `only` these) look written a minute ago, so the cache
    keeps what it reads and trusts the folders' listings."""
    old = (now_ns() - NS_PER_MINUTE) / NS_PER_SECOND
    paths = only or (*(root / "data").rglob("*.parquet"), *(root / "data" / LIQUIDATION.type_dir).iterdir())
    for path in paths:
        os.utime(path, (old, old))


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    write(root, "binance", DAY + 10 * NS_PER_MINUTE, 400, seed=1)  # ~4.7 minutes: 5 minute files
    write(root, "bybit", DAY + 12 * NS_PER_MINUTE, 300, seed=2)  # 3.5 minutes: 4 files
    age(root)
    return root


@pytest.fixture
def client(catalog: Path) -> Iterator[TestClient]:
    with TestClient(create_app(catalog)) as c:
        yield c


def test_new_and_rewritten_minute_files_show_at_the_next_request(catalog: Path, client: TestClient) -> None:
    assert heatmap_totals(client) == stored_totals(catalog)
    cache = client.app.state.cache  # type: ignore[attr-defined]
    warm_misses = cache.misses
    assert heatmap_totals(client) == stored_totals(catalog)
    assert cache.misses == warm_misses  # warm: nothing read again
    files = len(list_data_files(instrument_dir(catalog, LIQUIDATION, IDS["binance"])))

    # As the stream does: rows into the current (last) minute, rewriting its file, and a new minute file.
    last = max(list_data_files(instrument_dir(catalog, LIQUIDATION, IDS["binance"])), key=lambda f: f.start)
    write(catalog, "binance", last.start + 59 * NS_PER_SECOND, 1, seed=3)
    age(catalog, last.path)  # settled, so only its stat tells the cache it changed
    assert heatmap_totals(client) == stored_totals(catalog)
    assert cache.misses == warm_misses + 1
    folder = instrument_dir(catalog, LIQUIDATION, IDS["binance"])
    memo = cache.folder(str(folder))  # the listing of a folder changed under SETTLE_NS ago is not kept
    assert memo is not None
    assert memo.key[0] != os.stat(folder).st_mtime_ns
    write(
        catalog, "binance", last.start + 59 * NS_PER_SECOND + 500_000_000, 3, seed=4
    )  # into the next minute
    assert len(list_data_files(instrument_dir(catalog, LIQUIDATION, IDS["binance"]))) == files + 1
    n, totals = stored_totals(catalog)
    assert heatmap_totals(client) == (n, totals)
    assert n == 400 + 300 + 1 + 3
    assert sorted(page_keys(client)) == stored_keys(catalog)


def test_a_quiet_folder_costs_one_stat_and_any_change_to_it_is_seen(
    catalog: Path, client: TestClient
) -> None:
    """A folder whose mtime is SETTLE_NS old is listed once; creating, replacing or removing a file in it
    changes its mtime and ctime (ctime even when someone sets the mtime back), and it is listed again."""
    cache: FileCache = client.app.state.cache  # type: ignore[attr-defined]
    folder = instrument_dir(catalog, LIQUIDATION, IDS["bybit"])
    assert heatmap_totals(client) == stored_totals(catalog)
    memo = cache.folder(str(folder))
    assert memo is not None
    assert len(memo.files) == 4
    assert heatmap_totals(client) == stored_totals(catalog)
    assert cache.folder(str(folder)) is memo  # used as it was

    st = os.stat(folder)
    first = list_data_files(folder)[0]
    write(catalog, "bybit", first.start + 1, 1, seed=6)  # rewrites the first minute's file
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: ctime still moved
    assert os.stat(folder).st_mtime_ns == memo.key[0]
    assert heatmap_totals(client) == stored_totals(catalog)
    assert heatmap_totals(client)[0] == 700 + 1


def test_compaction_between_two_requests_keeps_every_row_once(catalog: Path, client: TestClient) -> None:
    before = heatmap_totals(client)
    assert before == stored_totals(catalog)
    keys = page_keys(client)
    report = compact(catalog, durable=False)
    assert (report.files_before, report.files_after) == (9, 2)  # 5 + 4 minute files
    for iid in IDS.values():
        assert len(list_data_files(instrument_dir(catalog, LIQUIDATION, iid))) == 1
    assert heatmap_totals(client) == before
    assert page_keys(client) == keys


def test_a_listing_that_meets_compaction_half_way_counts_each_row_once(
    catalog: Path, client: TestClient
) -> None:
    """Compaction renames its daily file in before it removes the minute files: a listing in between sees
    both, holding the same rows."""
    before = heatmap_totals(client)
    keys = sorted(page_keys(client))
    folder = instrument_dir(catalog, LIQUIDATION, IDS["binance"])
    day = CatalogReader(catalog).query(LIQUIDATION, instrument_ids=[IDS["binance"]])
    write_parquet_atomic(day, folder / file_name(DAY, DAY + NS_PER_DAY - 1), durable=False)
    assert len(list_data_files(folder)) == 6  # the daily file beside its 5 sources
    assert heatmap_totals(client) == before
    assert sorted(page_keys(client)) == keys
    ids = list(IDS.values())
    for lo, hi in ((DAY, DAY + NS_PER_DAY - 1), (DAY + 11 * NS_PER_MINUTE + 1, DAY + 13 * NS_PER_MINUTE + 7)):
        events = read_events(catalog, FileCache(), ids, lo, hi)
        assert_same(events, Events.of_table(read_liquidations(catalog, FileCache(), ids, lo, hi)))


def test_an_unreadable_file_is_quarantined_and_its_rows_leave_the_answer(
    catalog: Path, client: TestClient
) -> None:
    heatmap_totals(client)
    folder = instrument_dir(catalog, LIQUIDATION, IDS["bybit"])
    victim = list_data_files(folder)[1]
    lost = CatalogReader(catalog).query(
        LIQUIDATION, instrument_ids=[IDS["bybit"]], start=victim.start, end=victim.end
    )
    assert lost.num_rows > 0
    bad = victim.path.with_name(".bad.tmp")
    bad.write_bytes(b"not parquet")
    os.replace(bad, victim.path)  # replaced by something that is not Parquet

    n, totals = heatmap_totals(client)
    assert not victim.path.exists()
    assert [q.original for q in list_quarantined(catalog)] == [victim.path.relative_to(catalog).as_posix()]
    assert (n, totals) == stored_totals(catalog)
    assert n == 700 - lost.num_rows

    # moved aside by another process (verify --repair) between two requests: gone from the answer too
    other = list_data_files(folder)[0]
    shutil.move(other.path, catalog / other.path.name)
    assert heatmap_totals(client) == stored_totals(catalog)


def test_a_file_read_soon_after_it_was_written_is_read_again(tmp_path: Path) -> None:
    """Within SETTLE_NS of its mtime a version may share its stat with the next one: not kept."""
    root = tmp_path / "catalog"
    write(root, "binance", DAY, 10, seed=5)
    (f,) = list_data_files(instrument_dir(root, LIQUIDATION, IDS["binance"]))
    fresh = (now_ns() - SETTLE_NS // 4) / NS_PER_SECOND
    os.utime(f.path, (fresh, fresh))
    cache = FileCache()
    for _ in range(2):
        got = cache.get(str(f.path))
        assert got is not None
        assert got.table.num_rows == 10
    assert (cache.hits, cache.misses) == (0, 2)
    old = (now_ns() - 2 * SETTLE_NS) / NS_PER_SECOND
    os.utime(f.path, (old, old))
    for _ in range(2):
        cache.get(str(f.path))
    assert (cache.hits, cache.misses, len(cache)) == (1, 3, 1)


def test_events_are_the_rows_of_the_table_for_any_range(catalog: Path) -> None:
    """The heatmap's arrays hold exactly the rows /liquidations would give, ranges cut mid-file included."""
    cache = FileCache()
    ids = list(IDS.values())
    for lo, hi in (
        (DAY, DAY + NS_PER_DAY - 1),
        (DAY + 11 * NS_PER_MINUTE + 123, DAY + 14 * NS_PER_MINUTE + 456),
        (DAY + 12 * NS_PER_MINUTE, DAY + 12 * NS_PER_MINUTE),  # one instant, on a row of bybit's
        (DAY, DAY + 5 * NS_PER_MINUTE),  # before anything
    ):
        for which in (ids, ids[::-1], ids[1:]):
            table = read_liquidations(catalog, cache, which, lo, hi)
            ts = table.column("ts_init")
            assert pc.all(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi))).as_py() in (True, None)
            assert_same(read_events(catalog, cache, which, lo, hi), Events.of_table(table))


def assert_same(a: Events, b: Events) -> None:
    """The same rows in the same order; exchange codes compared by name."""
    assert len(a) == len(b)
    assert [a.names[i] for i in a.exchange] == [b.names[i] for i in b.exchange]
    for name in ("short", "ts", "price", "notional"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_joining_reuses_the_last_join_and_gives_the_plain_concatenation() -> None:
    """Windows that slide, shrink, grow and have a file replaced, against one cache: each join equals
    the files' arrays one after the other (the reuse of the previous join never shows)."""
    rng = np.random.default_rng(7)

    def version(k: int, rows: int) -> Cached:
        table = liquidations("bybit" if k % 3 == 0 else "binance", DAY + k * NS_PER_MINUTE, rows, seed=k)
        return _cached(table, (k, rows, 0), settled=True)

    files = [version(k, int(rng.integers(0, 5))) for k in range(40)]
    cache = FileCache()
    lo, hi = 0, 10
    for _ in range(300):
        move = rng.integers(0, 5)
        if move == 0:
            lo, hi = min(lo + 1, 39), min(hi + 1, 40)  # the window slides
        elif move == 1:
            lo, hi = int(rng.integers(0, 40)), int(rng.integers(0, 41))  # anywhere
        elif move == 2 and hi > lo:
            k = int(rng.integers(lo, hi))
            files[k] = version(k, int(rng.integers(0, 5)))  # rewritten (as the current minute is)
        window = files[lo:hi]
        got = cache.joined("folder", window)
        want = [Events.of_table(f.table) for f in window if f.table.num_rows]
        assert [got.names[i] for i in got.exchange] == [w.names[i] for w in want for i in w.exchange]
        for name in ("short", "ts", "price", "notional"):
            expect = np.concatenate([getattr(w, name) for w in want]) if want else np.empty(0)
            assert np.array_equal(getattr(got, name), expect), name
