"""`ccxt-cli daemon start|stop|status`: round-the-clock collection, for systemd, containers or a shell."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ccxt_pipeline.cli.common import (
    CatalogOption,
    ConfigOption,
    Exit,
    JsonOption,
    err,
    fail,
    guarded,
    load_quietly,
    out,
    print_json,
    warn,
)
from ccxt_pipeline.daemon.control import DaemonLock, DaemonPaths, assess, is_locked, read_status, stop_daemon
from ccxt_pipeline.timeutil import NS_PER_SECOND, now_ns

if TYPE_CHECKING:  # the scheduler, ccxt and the catalog load in `daemon start` only
    from ccxt_pipeline.daemon.service import Daemon

log = logging.getLogger("ccxt_pipeline.daemon")

app = typer.Typer(
    help="Collect around the clock: open interest and funding on a schedule, liquidations live.",
    no_args_is_help=True,
)


@app.command("start")
@guarded
def start(
    config: ConfigOption = None,
    catalog: CatalogOption = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Run in the background, logging to a rotating file.")
    ] = False,
    log_file: Annotated[
        Path | None,
        typer.Option(
            "--log-file",
            help="Log to this rotating file (default with --detach: <catalog>/.daemon/daemon.log).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the collector. It runs in the foreground (for systemd and containers) unless --detach.

    One daemon per catalog: a second start on the same catalog refuses. A settings error stops start-up with one line. Stop it with 'ccxt-cli daemon stop' (or SIGTERM / Ctrl-C): buffers are flushed before it exits.

    Examples:

      ccxt-cli daemon start --config config/ccxt_pipeline.yaml

      ccxt-cli daemon start --detach && ccxt-cli daemon status
    """
    from ccxt_pipeline.daemon import memory

    memory.arrow_on_system_allocator()  # before anything imports pyarrow
    settings, warnings = load_quietly(config, catalog)
    paths = DaemonPaths.for_catalog(settings.catalog_path)
    if detach:
        for line in warnings:
            warn(line)
        _detach(config, settings.catalog_path, log_file or paths.log, paths)
        return
    import asyncio

    from ccxt_pipeline.daemon.service import Daemon
    from ccxt_pipeline.logs import configure_logging

    configure_logging(settings.logging, log_file=log_file)
    for line in warnings:  # in the daemon's log, where its operator looks
        log.warning("%s", line)
    lock = DaemonLock(paths)
    daemon = Daemon(settings, paths)  # validates exchanges and symbols before taking the lock
    lock.acquire()
    try:
        asyncio.run(_run(daemon))
    finally:
        lock.release()


async def _run(daemon: Daemon) -> None:
    import asyncio  # not at the top: --help need not load it

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await daemon.run(stop)


def _detach(config: Path | None, catalog: Path, log_file: Path, paths: DaemonPaths) -> None:
    if is_locked(paths):
        raise fail(f"a daemon is already running on this catalog ({catalog})")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "ccxt_pipeline",
        "daemon",
        "start",
        "--catalog",
        str(catalog),
        "--log-file",
        str(log_file),
    ]
    if config is not None:
        args += ["--config", str(config)]
    proc = subprocess.Popen(
        args,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if is_locked(paths) and read_status(paths) is not None:
            out.print(f"daemon started in the background (pid {proc.pid}); log: {log_file}", markup=False)
            return
        if proc.poll() is not None:
            message = (
                (proc.stderr.read().decode().strip().splitlines() or ["exited"])[-1]
                if proc.stderr
                else "exited"
            )
            raise fail(f"the daemon did not start: {message}")
        time.sleep(0.1)
    raise fail(f"the daemon did not report running within 15s; see {log_file}")


@app.command("stop")
@guarded
def stop(
    config: ConfigOption = None,
    catalog: CatalogOption = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a clean exit.")] = 10.0,
) -> None:
    """Stop the daemon of this catalog and wait for its clean exit (buffers flushed).

    Example:  ccxt-cli daemon stop
    """
    from ccxt_pipeline.settings import load_settings

    settings = load_settings(config, overrides={"catalog_path": catalog}, warn=warn)
    pid, seconds = stop_daemon(DaemonPaths.for_catalog(settings.catalog_path), timeout)
    out.print(f"daemon (pid {pid}) stopped cleanly in {seconds:.1f}s", markup=False)


@app.command("status")
@guarded
def status(config: ConfigOption = None, catalog: CatalogOption = None, json_out: JsonOption = False) -> None:
    """Show the daemon's health per job and per exchange. Exit code 0 healthy, 1 unhealthy, 3 not running.

    Example:  ccxt-cli daemon status --json
    """
    from ccxt_pipeline.settings import load_settings

    settings = load_settings(config, overrides={"catalog_path": catalog}, warn=warn)
    paths = DaemonPaths.for_catalog(settings.catalog_path)
    data = read_status(paths)
    running = is_locked(paths)
    verdict, problems = assess(data, running)
    if json_out:
        print_json({"verdict": verdict, "problems": problems, "status": data if running else None})
    else:
        _print_status(verdict, problems, data if running else None)
    code = {"healthy": Exit.OK, "unhealthy": Exit.PARTIAL, "down": Exit.FAILED}[verdict]
    raise typer.Exit(int(code))


def _ago(ns: int | None, now: int) -> str:
    return "never" if not ns else f"{(now - ns) / NS_PER_SECOND:.0f}s ago"


def _print_status(verdict: str, problems: list[str], data: dict[str, object] | None) -> None:
    out.print(f"daemon: {verdict}", markup=False)
    for problem in problems:
        err.print(f"  problem: {problem}", markup=False)
    if data is None:
        return
    now = now_ns()
    out.print(f"  pid {data['pid']}, up since {data['started']}, catalog {data['catalog']}", markup=False)
    jobs = data.get("jobs", {})
    assert isinstance(jobs, dict)
    for name, job in jobs.items():
        out.print(
            f"  job {name:<21} runs {job['runs']}, last run {_ago(job['last_run_ns'], now)}, "
            f"last success {_ago(job['last_success_ns'], now)}, rows {job['rows_written']}, "
            f"next {job.get('next_run') or '-'}"
            + (f", last error: {job['last_error']}" if job.get("last_error") else ""),
            markup=False,
        )
    exchanges = data.get("exchanges", {})
    assert isinstance(exchanges, dict)
    for name, state in exchanges.items():
        out.print(
            f"  exchange {name:<11} last ok {_ago(state.get('last_ok_ns'), now)}"
            + (f", {state['instruments']} instruments" if state.get("instruments") is not None else "")
            + (
                f", last error {_ago(state.get('last_error_ns'), now)}: {state.get('last_error')}"
                if state.get("last_error")
                else ""
            ),
            markup=False,
        )
    from ccxt_pipeline.stream.health import ExchangeHealth  # imports ccxt: only when there is a status

    fields = {f.name for f in dataclasses.fields(ExchangeHealth)}
    streams = data.get("streams", {})
    assert isinstance(streams, dict)
    for name, s in streams.items():
        # The same states as the stream's own health lines: stopped, connected, connecting, DISCONNECTED.
        state = ExchangeHealth(**{k: v for k, v in s.items() if k in fields}).state
        out.print(
            f"  stream {name:<13} {state}, last event "
            f"{_ago(s.get('last_event_ns'), now)}, events {s['events']}, reconnects {s['reconnects']}, gaps {s['gaps']}"
            + (f", last error: {s['last_error']}" if s.get("last_error") else ""),
            markup=False,
        )


__all__ = ["app"]
