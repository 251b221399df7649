"""The daemon itself: APScheduler jobs on the event loop, liquidation streams, and the status file.

Jobs (APScheduler 3 `AsyncIOScheduler`, `coalesce`, `max_instances=1`, a misfire grace time):
- open interest, every `schedule.open_interest_seconds` on the wall-clock grid (300 s: :00, :05, ...):
  a snapshot from every exchange (Hyperliquid keeps no history, so this is how its history accrues);
- open-interest history on the same grid, as its own job: incremental history where the exchange keeps it
  (an outage is backfilled from what it still serves). Apart from the snapshots, so that a long backfill
  (every perpetual's 29 days at first start with `symbols: all`) never holds up the next snapshot;
- funding, every `schedule.funding_seconds`: incremental settled history and the live estimate;
- liquidations stream continuously; clients are recycled every `daemon.recycle_clients_hours`;
- at 00:07 UTC the catalog is compacted (each ended day into one file per instrument).
A job that fails is logged and runs again on its next turn; one exchange failing never stops the others.
Snapshots an exchange could not give (it was down) are recorded as coverage gaps.

`symbols: all`: every job asks for every active linear perpetual each exchange lists (`FetchRequest.all_symbols`),
history from each one's listing on (`collect.run`); the clients, and so the market lists, are renewed at
least daily (`MARKETS_MAX_AGE_HOURS`), so new listings join and delisted ones drop out. Liquidations: the
whole-market stream where there is one (Binance), one topic per listed perpetual elsewhere (Bybit,
`stream/every.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ccxt_pipeline.catalog import FUNDING_RATE, OPEN_INTEREST, CatalogWriter, DataKind
from ccxt_pipeline.catalog.maintenance import compact
from ccxt_pipeline.collect.run import FetchReport, FetchRequest, check_request, fetch_on
from ccxt_pipeline.daemon import memory
from ccxt_pipeline.daemon.control import DaemonPaths, write_atomic
from ccxt_pipeline.daemon.pool import ClientPool
from ccxt_pipeline.errors import ConfigError
from ccxt_pipeline.models import CoverageGap
from ccxt_pipeline.settings import Settings
from ccxt_pipeline.stream.run import LiquidationStream, StreamRequest, StreamSummary
from ccxt_pipeline.timeutil import NS_PER_DAY, NS_PER_SECOND, now_ns, ns_to_iso
from ccxt_pipeline.venues import get_venue

log = logging.getLogger(__name__)

MARKETS_MAX_AGE_HOURS = 24.0
"""With `symbols: all`, clients (and the market lists they load) are renewed at least this often."""


@dataclass
class JobStatus:
    interval_s: float
    runs: int = 0
    failures: int = 0
    rows_written: int = 0
    last_run_ns: int | None = None
    last_success_ns: int | None = None
    last_error_ns: int | None = None
    last_error: str | None = None
    next_run: str | None = None


def aligned_start(interval_s: float, now: float | None = None) -> datetime:
    """The next instant on the wall-clock grid of `interval_s` (UTC epoch multiples: :00, :05, ...)."""
    now = time.time() if now is None else now
    step = float(interval_s)
    return datetime.fromtimestamp((now // step + 1) * step, tz=UTC)


class Daemon:
    def __init__(self, settings: Settings, paths: DaemonPaths) -> None:
        self.settings = settings
        self.paths = paths
        if not settings.all_symbols and not settings.symbol_list():
            raise ConfigError(
                "settings: symbols: empty, so the daemon has nothing to collect; name symbols, or write "
                "`symbols: all` for every linear perpetual"
            )
        self.names = check_request(settings, self._request(OPEN_INTEREST), now_ns())
        self.writer = CatalogWriter(settings.catalog_path)
        self.pool = ClientPool(settings, self.names)
        self.jobs = {
            "open_interest": JobStatus(settings.schedule.open_interest_seconds),
            "open_interest_history": JobStatus(settings.schedule.open_interest_seconds),
            "funding": JobStatus(settings.schedule.funding_seconds),
        }
        self.exchange_state: dict[str, dict[str, Any]] = {n: {} for n in self.names}
        self._last_snapshot_ns: dict[str, int] = {}
        self.started_ns = now_ns()
        self._trimmed = 0.0
        """When allocators last handed free memory back (monotonic seconds)."""
        self.stream: LiquidationStream | None = None
        if settings.daemon.liquidations:
            with_stream = [n for n in self.names if get_venue(n).liquidations is not None]
            if with_stream:
                self.stream = LiquidationStream(
                    settings,
                    StreamRequest(
                        settings.symbol_list(),
                        with_stream,
                        all_market=settings.daemon.liquidations_all_market,
                    ),
                )
        self.scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        memory.limit_arenas()  # before the scheduler's and the writers' threads allocate
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.settings.daemon.misfire_grace_seconds,
            },
        )
        self.scheduler = scheduler
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
        oi_s, funding_s = self.settings.schedule.open_interest_seconds, self.settings.schedule.funding_seconds
        scheduler.add_job(
            self._job("open_interest", self._open_interest),
            IntervalTrigger(seconds=oi_s, start_date=aligned_start(oi_s), timezone=UTC),
            id="open_interest",
        )
        scheduler.add_job(
            self._job("open_interest_history", self._open_interest_history),
            IntervalTrigger(seconds=oi_s, start_date=aligned_start(oi_s), timezone=UTC),
            id="open_interest_history",
        )
        scheduler.add_job(
            self._job("funding", self._funding),
            IntervalTrigger(seconds=funding_s, start_date=aligned_start(funding_s), timezone=UTC),
            id="funding",
            next_run_time=datetime.now(UTC),
        )
        recycle_hours = self.settings.daemon.recycle_clients_hours
        if self.settings.all_symbols:  # new listings join, delisted ones drop out, within a day
            recycle_hours = min(recycle_hours, MARKETS_MAX_AGE_HOURS)
        scheduler.add_job(self.pool.recycle, IntervalTrigger(hours=recycle_hours), id="recycle_clients")
        # Stream files are one per instrument per minute: fold each ended day into one file, nightly.
        scheduler.add_job(self._compact, CronTrigger(hour=0, minute=7, timezone=UTC), id="compact")
        scheduler.add_job(
            self._status_job,
            IntervalTrigger(seconds=self.settings.daemon.status_seconds),
            id="status",
            next_run_time=datetime.now(UTC),
        )
        stream_stop = asyncio.Event()
        stream_task = asyncio.create_task(self.stream.run(stream_stop)) if self.stream else None
        if stream_task is not None:
            stream_task.add_done_callback(_stream_ended)
        scheduler.start()
        log.info(
            "daemon started: exchanges %s, symbols %s",
            ", ".join(self.names),
            _symbols_text(self.settings),
        )
        try:
            await stop.wait()
        finally:
            log.info("daemon stopping")
            scheduler.shutdown(wait=False)
            stream_stop.set()
            if stream_task is not None:
                await stream_task  # flushes every liquidation received
            if self.stream is not None:
                log.info("liquidations: %d written", self.stream.batcher.rows_written)
            await self._wait_for_jobs()
            await self.pool.close()
            self.write_status(stopped=True)
            log.info("daemon stopped")

    async def _wait_for_jobs(self, timeout_s: float = 5.0) -> None:
        """Let running jobs finish their writes (they are short); never wait past `timeout_s`."""
        current = asyncio.current_task()
        pending = [
            t
            for t in asyncio.all_tasks()
            if t is not current and getattr(t.get_coro(), "__name__", "") == "run_job"
        ]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    # --- jobs ---------------------------------------------------------------------------------------------

    def _job(self, name: str, body: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[None]]:
        status = self.jobs[name]

        async def run_job() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            status.runs += 1
            status.last_run_ns = now_ns()
            try:
                await self.pool.heal()
                rows = await body()
                status.rows_written += rows
                status.last_success_ns = now_ns()
                seconds = (status.last_success_ns - status.last_run_ns) / NS_PER_SECOND
                log.info("job %s done in %.1fs: %d rows written", name, seconds, rows)
            except Exception as exc:  # a failed run is logged and runs again on its next turn
                status.failures += 1
                status.last_error_ns = now_ns()
                status.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("job %s failed", name)

        return run_job

    def _request(
        self,
        kind: DataKind,
        exchanges: list[str] | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> FetchRequest:
        """What a job asks for: the `symbols` setting, or every linear perpetual for `symbols: all`."""
        settings = self.settings
        symbols = settings.symbol_list()
        return FetchRequest(kind, symbols, exchanges or (), start, end, all_symbols=settings.all_symbols)

    async def _open_interest(self) -> int:
        async with self.pool.use() as exchanges:
            current = await fetch_on(exchanges, self._request(OPEN_INTEREST), self.writer)
            written = self._account(current, "open interest (current)")
            self._record_missed_snapshots(current)
        return written

    async def _open_interest_history(self) -> int:
        with_history = [n for n in self.names if get_venue(n).oi_history_periods]
        if not with_history or self.settings.daemon.open_interest_backfill_days <= 0:
            return 0
        async with self.pool.use() as exchanges:
            now = now_ns()
            start = now - int(self.settings.daemon.open_interest_backfill_days * NS_PER_DAY)
            history = self._request(OPEN_INTEREST, with_history, start=start, end=now)
            return self._account(await fetch_on(exchanges, history, self.writer), "open interest (history)")

    async def _funding(self) -> int:
        written = 0
        async with self.pool.use() as exchanges:
            now = now_ns()
            start = now - int(self.settings.daemon.funding_backfill_days * NS_PER_DAY)
            settled = self._request(FUNDING_RATE, start=start, end=now)
            written += self._account(await fetch_on(exchanges, settled, self.writer), "funding (settled)")
            written += self._account(
                await fetch_on(exchanges, self._request(FUNDING_RATE), self.writer), "funding (estimate)"
            )
        return written

    def _account(self, report: FetchReport, what: str) -> int:
        """Per-exchange state for the status file and one info line per exchange (rows, gaps, error); raises
        if every exchange failed (the run failed)."""
        now = now_ns()
        for ex in report.exchanges:
            log.info(
                "%s %s: %d rows written, %d already stored, %d gaps%s",
                what,
                ex.exchange,
                ex.written,
                ex.already_stored,
                len(ex.gaps),
                f", error: {ex.error}" if ex.error else "",
            )
            state = self.exchange_state.setdefault(ex.exchange, {})
            if ex.error is None:
                state["last_ok_ns"] = now
                # How many perpetuals the last run covered there (with `symbols: all`, every one it lists).
                state["instruments"] = len(ex.instruments)
            else:
                state["last_error_ns"] = now
                state["last_error"] = ex.error[:300]
                log.warning("%s", ex.error)
        if report.exchanges and len(report.failed) == len(report.exchanges):
            raise RuntimeError("; ".join(e.error or "" for e in report.failed))
        return sum(ex.written for ex in report.exchanges)

    def _record_missed_snapshots(self, report: FetchReport) -> None:
        """Snapshots an exchange could not give are gaps; where it keeps history, the backfill fills them."""
        interval = int(self.settings.schedule.open_interest_seconds * NS_PER_SECOND)
        now = now_ns()
        gaps = []
        for ex in report.exchanges:
            if ex.error is not None:
                continue
            last = self._last_snapshot_ns.get(ex.exchange)
            self._last_snapshot_ns[ex.exchange] = now
            if last is None or now - last < 1.5 * interval or get_venue(ex.exchange).oi_history_periods:
                continue
            for inst in ex.instruments:  # what the snapshot asked for there (with `all`, every perpetual)
                gaps.append(
                    CoverageGap.between(
                        OPEN_INTEREST,
                        ex.exchange,
                        inst.instrument_id,
                        last + 1,
                        now - 1,
                        "open-interest snapshots missed (exchange unreachable) and not served as history",
                    )
                )
        if gaps:
            self.writer.write(gaps)

    # --- status ---------------------------------------------------------------------------------------------

    async def _compact(self) -> None:
        try:
            report = await asyncio.to_thread(compact, self.writer.root)
            log.info("compacted: %d files -> %d", report.files_before, report.files_after)
        except Exception:
            log.exception("compaction failed; it runs again tomorrow")

    async def _status_job(self) -> None:
        """On the event loop (a coroutine job), so it can count the loop's tasks."""
        # Allocators keep freed blocks for reuse; hand them back once a minute so that resident memory
        # tracks what is in use (a daemon that runs for months should not sit on its peak).
        if time.monotonic() - self._trimmed >= 60:
            self._trimmed = time.monotonic()
            memory.trim()
        self.write_status(tasks=len(asyncio.all_tasks()))

    def write_status(self, stopped: bool = False, tasks: int = 0) -> None:
        now = now_ns()
        jobs = {}
        for name, status in self.jobs.items():
            job = self.scheduler.get_job(name) if self.scheduler and not stopped else None
            if job is not None and job.next_run_time is not None:
                status.next_run = job.next_run_time.isoformat()
            jobs[name] = {**asdict(status), "last_error": status.last_error}
        streams = {n: h.as_dict() for n, h in self.stream.health.items()} if self.stream else {}
        data = {
            "pid": os.getpid(),
            "state": "stopped" if stopped else "running",
            "catalog": str(self.settings.catalog_path),
            "symbols": self.settings.symbols,
            "started_ns": self.started_ns,
            "started": ns_to_iso(self.started_ns),
            "updated_ns": now,
            "updated": ns_to_iso(now),
            "status_seconds": self.settings.daemon.status_seconds,
            "stale_seconds": self.settings.stream.stale_seconds,
            "jobs": jobs,
            "exchanges": self.exchange_state,
            "streams": streams,
            "liquidations_written": self.stream.batcher.rows_written if self.stream else 0,
            # `disk full: 25 events waiting` while the catalog cannot be written; None while it can.
            "liquidation_storage": self.stream.batcher.status() if self.stream else None,
            # Received and not yet written: batches in the writer's queue plus events held for the next write.
            "liquidation_queue": (
                self.stream.batcher.queue.qsize() + len(self.stream.batcher.pending) if self.stream else 0
            ),
            "clients_recycled": self.pool.recycled,
            "tasks": tasks,
            "open_fds": len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None,
            "rss_bytes": _rss_bytes(),
            # What the resident memory is made of: Arrow buffers in use, and Python's own heap.
            "arrow_bytes": pa.total_allocated_bytes(),
            "arrow_pool": pa.default_memory_pool().backend_name,
            "python_blocks": sys.getallocatedblocks(),
        }
        write_atomic(self.paths.status, json.dumps(data, indent=2, default=str) + "\n")


def _symbols_text(settings: Settings) -> str:
    if settings.all_symbols:
        return "all (every active linear perpetual each exchange lists)"
    return ", ".join(settings.symbol_list())


def _stream_ended(task: asyncio.Task[StreamSummary]) -> None:
    """Say it loudly when the liquidation streams stop on their own (their writer failed); the status
    file's `streams` keep the text as each exchange's `last_error`."""
    if not task.cancelled() and task.exception() is None and task.result().failure:
        log.error("liquidation streams stopped: %s", task.result().failure)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
