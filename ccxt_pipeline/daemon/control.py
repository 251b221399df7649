"""Process control around a catalog: the lock, the pid, the status file, stopping a running daemon.

<catalog>/.daemon/daemon.lock   held (flock) by the running daemon: a second one cannot start
<catalog>/.daemon/daemon.pid    its process id
<catalog>/.daemon/status.json   rewritten every few seconds
<catalog>/.daemon/daemon.log    the log of a detached daemon (rotating)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccxt_pipeline.errors import PipelineError
from ccxt_pipeline.timeutil import NS_PER_SECOND, now_ns


@dataclass(frozen=True)
class DaemonPaths:
    root: Path

    @classmethod
    def for_catalog(cls, catalog: Path) -> DaemonPaths:
        return cls(Path(catalog) / ".daemon")

    @property
    def lock(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def pid(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def log(self) -> Path:
        return self.root / "daemon.log"


class DaemonLock:
    """An exclusive, non-blocking lock held for the daemon's whole life; released by the OS if it dies."""

    def __init__(self, paths: DaemonPaths) -> None:
        self.paths = paths
        self._fd: int | None = None

    def acquire(self) -> None:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_pid(self.paths)
            raise PipelineError(
                f"a daemon is already running on this catalog (pid {pid or '?'}); stop it with 'ccxt-cli daemon stop'"
            ) from None
        self._fd = fd
        write_atomic(self.paths.pid, f"{os.getpid()}\n")

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.paths.pid.unlink()
            os.close(self._fd)
            self._fd = None


def is_locked(paths: DaemonPaths) -> bool:
    """True while some process holds the daemon lock of this catalog."""
    if not paths.lock.exists():
        return False
    fd = os.open(paths.lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_pid(paths: DaemonPaths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def stop_daemon(paths: DaemonPaths, timeout_s: float = 10.0) -> tuple[int, float]:
    """SIGTERM the daemon and wait until it has released its lock; returns (pid, seconds it took)."""
    pid = read_pid(paths)
    if pid is None or not is_locked(paths):
        raise PipelineError(f"no daemon is running on this catalog ({paths.root.parent})")
    started = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while time.monotonic() - started < timeout_s:
        if not is_locked(paths):
            return pid, time.monotonic() - started
        time.sleep(0.05)
    raise PipelineError(f"the daemon (pid {pid}) did not stop within {timeout_s:.0f}s")


def read_status(paths: DaemonPaths) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(paths.status.read_text())
        return data
    except (FileNotFoundError, ValueError):
        return None


def assess(status: dict[str, Any] | None, running: bool, now: int | None = None) -> tuple[str, list[str]]:
    """`healthy`, `unhealthy` or `down`, and why. Pure: the status file's content in, a verdict out."""
    now = now_ns() if now is None else now
    if status is None or not running:
        return "down", ["no daemon is running on this catalog"]
    problems = []
    age = (now - int(status["updated_ns"])) / NS_PER_SECOND
    if age > 3 * float(status["status_seconds"]) + 5:
        problems.append(f"status not updated for {age:.0f}s")
    for name, job in status.get("jobs", {}).items():
        if job.get("last_error_ns") and job["last_error_ns"] > (job.get("last_success_ns") or 0):
            problems.append(f"job {name} failed: {job.get('last_error')}")
        elif (
            job.get("runs", 0) == 0
            and (now - int(status["started_ns"])) / NS_PER_SECOND > 2 * job["interval_s"] + 30
        ):
            problems.append(f"job {name} has not run")
    stale = float(status.get("stale_seconds", 30))
    for name, stream in status.get("streams", {}).items():
        if not stream.get("connected") and (now - int(status["started_ns"])) / NS_PER_SECOND > 2 * stale:
            problems.append(f"{name} liquidation stream disconnected ({stream.get('last_error')})")
    return ("unhealthy" if problems else "healthy"), problems
