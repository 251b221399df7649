"""Pacing every REST request of an exchange by its documented limits, shared by all its clients on a machine.

An exchange's limits are data in the venue table (`Venue.rest_limits`: each limit, what each endpoint draws
from it, each source cited). One `Pacer` per exchange and event loop (`pacer_for`) sees every HTTP request
any client of that exchange sends: all symbols, all jobs, the daemon's old and new client generations, a
stream's markets. It is installed below ccxt's request building (`install`, around `exchange.fetch2`, where
ccxt calls its own throttle), so a unified method that makes several requests is paced per request.

- Each limit is counted as `RateLimit.counted` says.
  `window` (`_Window`): a sliding window of its period: the weight admitted in the last `period` seconds
  never exceeds the documented capacity, at any instant, so neither an exchange counting fixed intervals
  (Binance's minute and 5 minutes) nor one counting "any 5-second window" (Bybit) sees more than its limit.
  A burst up to the capacity goes at once from idle; then a request waits until enough earlier weight has
  left the window (a weight larger than the capacity waits for an empty window). A request counts from the
  moment it is admitted until `period` after its answer arrived (the exchange counted it somewhere in
  between), so no latency can make the exchange's window hold more than ours.
  `bucket` (`_Bucket`, Hyperliquid, as NautilusTrader's adapter counts it): tokens up to the capacity,
  refilled at capacity / period a second, full at the start. A request is admitted when the tokens cover
  its weight and the weight of the requests in flight; its weight leaves the tokens when its answer arrives
  (the latest moment the exchange can have debited it, so ours never holds more tokens than the exchange's).
- A weight known only from the answer (Hyperliquid: one more per 20 items `fundingHistory` returns) is
  charged when the answer arrives; the window may go over the capacity (the tokens below zero) and the next
  requests wait for it. While such a request is in flight, the extra weight of the endpoint's last answer
  counts for it (the exchange may charge it before our answer arrives, and the others in flight must not
  use it).
- Where the exchange tells its count (Binance `X-MBX-USED-WEIGHT-1M`), ours never falls below it: the weight
  a killed run left in the exchange's window is waited for, not refused.
- At most `Venue.max_concurrency` requests are in flight at once.
- A 418/429 with Retry-After pauses the whole exchange (`pause`): no request of any client starts before it
  has passed, and each limit counts as full then (the exchange just said its count is full): what a window
  does not know of leaves it at capacity / period from the resumption on; a bucket restarts empty.
- Requests drawing from the same limit are served in arrival order; one waiting on a limit holds no slot
  and never holds back a request drawing from another limit (Binance's funding limit does not slow its open
  interest). Time is `retry.CLOCK`, which tests replace.

The limits are per IP, so the count must outlive the process and be shared by the processes on one
machine (a rerun right after a kill, a daemon and a one-off fetch): each exchange has a `Ledger`, a small
append-only file (`default_state_dir()`, or the setting `exchanges.<name>.pacing_state_dir`; one file per
exchange and base URL host:port). Every admission appends one line (wall time, process tag and line
number, the weights), and every answer's extra weight one more. A new pacer counts the lines younger than
the exchange's longest period (a bucket replays them starting full at the oldest); before each admission
it reads, under an
`fcntl.flock`, the lines others appended since its last read, and appends its own in the same lock
(check-and-append). Another process's line counts in a window as if its request were answered
`LEDGER_LATENCY` after its admission; a bucket debits it when read (at most that). Races that remain: a
foreign request answered later than that leaves our window early by the difference; a pause (Retry-After)
is not shared (each process learns it from its own answers); a lock not obtained within `_LOCK_WAIT` (a
stopped process holding it) is skipped. The ledger is advisory: missing, unreadable or garbage lines are
ignored (one debug log), never failing a request.

ccxt's own limiter is off for the exchanges paced here (`venues.NO_CCXT_LIMITER`): it keeps one bucket per
ccxt instance with a capacity of one request (no bursts), one cost table per request (Binance has three
limits), no weight from the answer and no pause, and its declared costs pace Bybit at 10 requests a second
(cost 5 x `rateLimit` 20 ms) where Bybit allows 120. docs/exchanges.md, "Rate limits".
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import math
import os
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ccxt_pipeline.exchanges import retry
from ccxt_pipeline.venues import RateLimit, RestLimits, Venue

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: the ledger is shared without a lock
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger(__name__)
_EPSILON = 1e-9
_PAUSE_PIECES = 60
"""After a Retry-After, a window's unknown weight leaves it in this many pieces over one period."""
LEDGER_LATENCY = 2.0
"""Seconds after its admission a request seen in the ledger counts as answered (its weight is counted until
then plus its period)."""
_COMPACT_BYTES = 1 << 20
"""The ledger is rewritten with its young lines only when it grows past this (or twice its last compaction)."""
_LOCK_WAIT = 0.2

USED_WEIGHT_HEADERS: Mapping[str, tuple[tuple[str, str], ...]] = {
    # USD-M general-info, "IP Limits": "Every request will contain X-MBX-USED-WEIGHT-(intervalNum)
    # (intervalLetter) in the response headers which has the current used weight for the IP for all request
    # rate limiters defined" - for the 1-minute REQUEST_WEIGHT limit, our `weight`.
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
    "binance": (("x-mbx-used-weight-1m", "weight"),),
}
"""Per exchange: (response header, limit name) where the exchange tells what it counted in that limit."""


class _Window:
    """One limit counted as a sliding window: the weight of the requests in flight, and of those answered,
    each until `period` after its answer (`_done`: (leaves at, weight), sorted)."""

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.weight)
        self.period = float(limit.seconds)
        self.in_flight = 0.0
        self._done: list[tuple[float, float]] = []
        self._done_sum = 0.0

    def used(self, now: float) -> float:
        """The weight counted at `now`."""
        gone = bisect.bisect_right(self._done, (now + _EPSILON, math.inf))
        if gone:
            self._done_sum -= sum(w for _, w in self._done[:gone])
            del self._done[:gone]
            if not self._done:
                self._done_sum = 0.0  # no float residue once empty
        return self.in_flight + self._done_sum

    def wait(self, weight: float, now: float) -> float:
        """Seconds until `weight` (at most the capacity) fits; `math.inf`: not before a request in flight
        is answered (its weight stays a whole period after)."""
        excess = self.used(now) + min(weight, self.capacity) - self.capacity
        if excess <= _EPSILON:
            return 0.0
        for leaves, w in self._done:
            excess -= w
            if excess <= _EPSILON:
                return leaves - now
        return math.inf

    def add(self, weight: float, now: float) -> None:
        """Weight answered (or told) at `now`: counted until `period` after."""
        self._add_until(weight, now + self.period)

    def replay(self, lines: list[tuple[float, float]], now: float) -> None:
        """Weights another process counted, each (answered at, weight), oldest first."""
        for at, weight in lines:
            self.add(weight, at)

    def pause(self, now: float, resume: float) -> None:
        """The exchange says this limit is full: what the window does not know of leaves it at
        capacity / period from `resume` on."""
        unknown = self.capacity - self.used(now)
        piece = self.capacity / _PAUSE_PIECES
        k = 0
        while unknown > _EPSILON:
            k += 1
            self._add_until(min(piece, unknown), resume + k * self.period / _PAUSE_PIECES)
            unknown -= piece

    def _add_until(self, weight: float, leaves: float) -> None:
        if weight > 0:
            bisect.insort(self._done, (leaves, weight))
            self._done_sum += weight


class _Bucket:
    """One limit counted as a token bucket: `tokens` (at most the capacity, below zero after a weight known
    from an answer) as of `last`, refilled at capacity / period a second; `in_flight`: the weight of the
    requests sent and not yet answered, debited when each answer arrives."""

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.weight)
        self.period = float(limit.seconds)
        self.rate = self.capacity / self.period
        self.in_flight = 0.0
        self.tokens = self.capacity
        self.last = -math.inf

    def _refill(self, now: float) -> None:
        if now > self.last:
            if self.tokens < self.capacity:
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def used(self, now: float) -> float:
        """The weight counted at `now`: the tokens missing, and the weight in flight."""
        self._refill(now)
        return self.in_flight + self.capacity - self.tokens

    def wait(self, weight: float, now: float) -> float:
        """Seconds until the tokens cover `weight` (at most the capacity) and the weight in flight;
        `math.inf`: not before a request in flight is answered."""
        need = min(weight, self.capacity)
        excess = self.used(now) + need - self.capacity
        if excess <= _EPSILON:
            return 0.0
        if need + self.in_flight > self.capacity + _EPSILON:
            return math.inf
        return max(0.0, self.last - now) + excess / self.rate

    def add(self, weight: float, now: float) -> None:
        """Weight answered (or told) at `now`: debited then; the tokens may go below zero."""
        self._refill(now)
        self.tokens -= weight

    def replay(self, lines: list[tuple[float, float]], now: float) -> None:
        """Weights another process counted, each (answered at, weight), oldest first, debited then or (not
        yet answered) now: a bucket that has not counted anything yet starts full at the oldest."""
        if lines and self.last == -math.inf:
            self.tokens, self.last = self.capacity, min(lines[0][0], now)
        for at, weight in lines:
            self.add(weight, min(at, now))

    def pause(self, now: float, resume: float) -> None:
        """The exchange says this limit is full: the bucket is empty at `resume` (or owes what it did)."""
        self._refill(now)
        self.tokens = min(0.0, self.tokens + (resume - now) * self.rate)
        self.last = max(self.last, resume)


_Limit = _Window | _Bucket


def default_state_dir() -> Path:
    """Where the ledgers live by default: the user's cache dir (`$XDG_CACHE_HOME`, else `~/.cache`) /
    ccxt-pipeline/pacing. A rate limit is per IP: per machine, not per catalog."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "ccxt-pipeline" / "pacing"


def ledger_path(state_dir: Path | None, name: str, urls: Any) -> Path:
    """The ledger of exchange `name` reached at `urls` (ccxt's `urls['api']`: a URL, or a mapping of them):
    keyed by every host:port, so two simulators on different ports never share one."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts = urlsplit(value)
            if parts.hostname:
                found.add(f"{parts.hostname}:{parts.port or parts.scheme}")
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)

    walk(urls)
    key = hashlib.sha256(" ".join(sorted(found)).encode()).hexdigest()[:12]
    return (state_dir or default_state_dir()).expanduser() / f"{name}-{key}.log"


class Ledger:
    """One exchange's admissions on this machine, an append-only file of lines `<unix time> <tag>
    <limit>=<weight> ...` (see the module docstring). `tag` tells this object's lines from the others'."""

    def __init__(self, path: Path, horizon: float) -> None:
        self.path = path
        self.horizon = horizon
        """Seconds a line counts for: the exchange's longest period and `LEDGER_LATENCY`."""
        self.tag = secrets.token_hex(4)
        self._seq = 0
        self._ino: int | None = None
        self._offset = 0
        self._seen: dict[str, int] = {}
        """The last line counted of each other process (tag -> its line number): none is counted twice, even
        read again from a compacted file."""
        self._compact_at = _COMPACT_BYTES
        self._lock_fd: int | None = None
        self._failed = False

    def _failure(self, what: str, exc: BaseException) -> None:
        if not self._failed:
            self._failed = True
            _log.debug("pacing ledger %s: %s failed (%s); ignored", self.path, what, exc)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ledger's lock (a `.lock` file beside it, never replaced) if it can be had within
        `_LOCK_WAIT`; go on without it otherwise."""
        fd = self._lock_fd
        if fd is None and fcntl is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self._failure("opening the lock", exc)
        held = False
        if fd is not None and fcntl is not None:
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.001)
                except OSError as exc:
                    self._failure("locking", exc)
                    break
        try:
            yield
        finally:
            if held and fd is not None and fcntl is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def read(self, now: float) -> list[tuple[float, dict[str, float]]]:
        """The lines other processes appended since the last read (every young line on the first read), as
        (unix time, weights), in file order; lines older than `horizon` before `now` (unix), in the future
        by more than that, or unreadable, are left out."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._failure("reading", exc)
            return []
        try:
            ino = os.fstat(fd).st_ino
            if ino != self._ino:  # new, or compacted by another process: read it all again
                self._ino, self._offset = ino, 0
            os.lseek(fd, self._offset, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        except OSError as exc:
            self._failure("reading", exc)
            return []
        finally:
            os.close(fd)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        out = []
        for at, tag, seq, weights in _parse(data[:end]):
            if tag != self.tag and seq > self._seen.get(tag, -1):
                self._seen[tag] = seq
                if abs(now - at) < self.horizon:
                    out.append((at, weights))
        return out

    def append(self, at: float, weights: Mapping[str, float]) -> None:
        """One line: `weights` counted at `at` (unix) by this process. Compacts the file past its bound."""
        if not weights:
            return
        self._seq += 1
        text = f"{at:.3f} {self.tag}:{self._seq} " + " ".join(f"{n}={w:g}" for n, w in weights.items()) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, text.encode())  # O_APPEND: one small write lands whole at the end
                stat = os.fstat(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._failure("appending", exc)
            return
        if stat.st_size > self._compact_at:
            self.compact(at)

    def compact(self, now: float) -> None:
        """Rewrite the file with its lines younger than `horizon` only (a new file renamed over it; call
        with the lock held)."""
        try:
            data = self.path.read_bytes()
            young = [line for line in data.splitlines(keepends=True) if _young(line, now, self.horizon)]
            tmp = self.path.with_name(f"{self.path.name}.{self.tag}.tmp")
            tmp.write_bytes(b"".join(young))
            os.replace(tmp, self.path)
            stat = os.stat(self.path)
        except OSError as exc:
            self._failure("compacting", exc)
            return
        self._ino, self._offset = stat.st_ino, stat.st_size  # everything in it was read before
        self._compact_at = max(_COMPACT_BYTES, 2 * stat.st_size)


def _parse(data: bytes) -> Iterator[tuple[float, str, int, dict[str, float]]]:
    """(unix time, process tag, its line number, weights) of each well-formed line."""
    for raw in data.splitlines():
        try:
            at_text, label, *pairs = raw.decode("ascii").split()
            tag, _, seq = label.partition(":")
            at, number = float(at_text), int(seq)
            weights = {}
            for pair in pairs:
                name, _, value = pair.partition("=")
                weights[name] = float(value)
        except (UnicodeDecodeError, ValueError):
            continue
        if pairs and math.isfinite(at) and all(math.isfinite(w) and w > 0 for w in weights.values()):
            yield at, tag, number, weights


def _young(line: bytes, now: float, horizon: float) -> bool:
    return any(abs(now - at) < horizon for at, _, _, _ in _parse(line))


def _wall_offset(clock: retry.Clock) -> float:
    """Unix time less the clock's time: the real clock is monotonic, a test's clock is taken as is."""
    return time.time() - time.monotonic() if isinstance(clock, retry.RealClock) else 0.0


class Pacer:
    """Every REST request of one exchange in this process: weights drawn from its documented limits, at
    most `in_flight` at once, and a pause for a Retry-After. `limits` None: only the in-flight cap.
    `ledger`: the admissions of every process on the machine (`attach`)."""

    def __init__(
        self, name: str, limits: RestLimits | None, in_flight: int, ledger: Ledger | None = None
    ) -> None:
        self.name = name
        self.limits = limits
        self.in_flight = in_flight
        self._windows: dict[str, _Limit] = {
            lim.name: _Bucket(lim) if lim.counted == "bucket" else _Window(lim)
            for lim in (limits.limits if limits else ())
        }
        self._headers = tuple((h, n) for h, n in USED_WEIGHT_HEADERS.get(name, ()) if n in self._windows)
        self._slots = asyncio.Semaphore(in_flight)
        self._turns = {name: asyncio.Lock() for name in self._windows}
        self._answered = asyncio.Event()
        """Set (and replaced) whenever a request's answer arrives: wakes requests waiting on weight in flight."""
        self.resume_at = 0.0
        """Clock time before which no request starts: the exchange's last Retry-After."""
        self.announced_until = 0.0
        """Until when a wait was last announced (clients waiting on one Retry-After share one line)."""
        self.expected: dict[tuple[str, Any], dict[str, float]] = {}
        """The extra weight of the last answer per (path, Hyperliquid body type): reserved while in flight."""
        self.spent: dict[str, float] = dict.fromkeys(self._windows, 0.0)
        """Weight drawn from each limit so far."""
        self.sent = 0
        self.busy = 0
        self.peak = 0
        """Requests in flight now, and the most at once so far."""
        self.ledger: Ledger | None = None
        if ledger is not None:
            self.attach(ledger)

    @staticmethod
    def _clock() -> retry.Clock:
        return retry.CLOCK

    def attach(self, ledger: Ledger) -> None:
        """Count what every process on the machine wrote in `ledger` within its horizon, and keep it in step."""
        if not self._windows:
            return
        self.ledger = ledger
        with ledger.locked():
            self._sync()

    def _sync(self) -> None:
        """Count the ledger lines other processes appended since the last read."""
        if self.ledger is None:
            return
        clock = self._clock()
        offset = _wall_offset(clock)
        lines = self.ledger.read(clock.now() + offset)
        by_limit: dict[str, list[tuple[float, float]]] = {}
        for at, weights in sorted(lines, key=lambda line: line[0]):
            for name, weight in weights.items():
                if name in self._windows:
                    by_limit.setdefault(name, []).append((at - offset + LEDGER_LATENCY, weight))
        for name, items in by_limit.items():
            self._windows[name].replay(items, clock.now())

    def _record(self, weights: Mapping[str, float], now: float) -> None:
        if self.ledger is not None:
            self.ledger.append(now + _wall_offset(self._clock()), weights)

    def weights(self, path: str, params: Mapping[str, Any]) -> dict[str, float]:
        return self.limits.weights(path, params) if self.limits else {}

    def extra(self, path: str, params: Mapping[str, Any], answer: Any) -> dict[str, float]:
        return self.limits.extra(path, params, answer) if self.limits else {}

    @contextlib.asynccontextmanager
    async def request(
        self, weights: Mapping[str, float], reserve: Mapping[str, float] | None = None
    ) -> AsyncIterator[None]:
        """Hold one of the in-flight slots, `weights` drawn (and any pause passed) the moment it is taken;
        they are counted from then, and as answered when the block ends (the answer arrived, or it failed).
        `reserve`: weight the answer is expected to add (`charge`), counted only while in flight."""
        drawn = {n: float(w) for n, w in weights.items() if n in self._windows and w}
        held = {n: float(w) for n, w in (reserve or {}).items() if n in self._windows and w}
        await self._admit(drawn)
        for name, weight in held.items():
            self._windows[name].in_flight += weight
        self.sent += 1
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        try:
            yield
        finally:
            self.busy -= 1
            now = self._clock().now()
            for name, weight in drawn.items():
                window = self._windows[name]
                window.in_flight = max(0.0, window.in_flight - weight)
                window.add(weight, now)
            for name, weight in held.items():
                window = self._windows[name]
                window.in_flight = max(0.0, window.in_flight - weight)
            self._slots.release()
            self._answered.set()
            self._answered = asyncio.Event()

    async def _admit(self, weights: Mapping[str, float]) -> None:
        """Wait, in turn with the requests drawing from the same limits, until `weights` fit in their limits
        and a slot is free; take both (and write them in the ledger, after reading what others wrote). A
        request waiting on one limit never holds back one drawing from another, and holds no slot while it
        waits."""
        clock = self._clock()
        async with contextlib.AsyncExitStack() as turns:
            for name in sorted(weights):  # always in the same order: no two requests wait on each other
                await turns.enter_async_context(self._turns[name])
            while True:
                wait = self._wait(weights, clock.now())
                if wait == math.inf:  # only an answer of a request in flight can free enough weight
                    await self._answered.wait()
                    continue
                if wait > _EPSILON:
                    await clock.sleep(wait)
                    continue
                await self._slots.acquire()
                with self.ledger.locked() if self.ledger and weights else contextlib.nullcontext():
                    if weights:
                        self._sync()
                    now = clock.now()
                    if self._wait(weights, now) <= _EPSILON:  # a pause, a charge, another process's weight
                        for name, weight in weights.items():
                            self._windows[name].in_flight += weight
                            self.spent[name] += weight
                        self._record(weights, now)
                        return
                self._slots.release()

    def _wait(self, weights: Mapping[str, float], now: float) -> float:
        return max([self.resume_at - now] + [self._windows[n].wait(w, now) for n, w in weights.items()])

    def charge(self, weights: Mapping[str, float], now: float | None = None) -> None:
        """Add `weights` that an answer tells (Hyperliquid's per-item weight), at `now`: a window counts them
        one period from then and may go over its capacity; a bucket's tokens may go below zero."""
        now = self._clock().now() if now is None else now
        charged = {n: float(w) for n, w in weights.items() if n in self._windows and w}
        for name, weight in charged.items():
            self._windows[name].add(weight, now)
            self.spent[name] += weight
        if charged and self.ledger is not None:
            with self.ledger.locked():
                self._sync()  # before a compaction may rewrite what was not read yet
                self._record(charged, now)

    def observe(self, headers: Mapping[str, Any] | None, weights: Mapping[str, float]) -> None:
        """Never count less than the exchange says it counted (`USED_WEIGHT_HEADERS`), told in the answer to
        a request drawing `weights` and still in flight. The exchange's count includes that request but
        maybe not the others in flight, so ours must reach its count plus theirs."""
        if not headers or not self._headers:
            return
        lower = {str(k).lower(): v for k, v in headers.items()}
        now = self._clock().now()
        for header, name in self._headers:
            try:
                told = float(lower[header])
            except (KeyError, TypeError, ValueError):
                continue
            window = self._windows[name]
            others = max(0.0, window.in_flight - weights.get(name, 0.0))
            missing = told + others - window.used(now)
            if missing > 0:
                window.add(missing, now)

    def pause(self, seconds: float) -> None:
        """No request of this exchange starts for `seconds`; each limit counts as full then: the weight a
        window did not know of leaves it at capacity / period from the resumption on, a bucket is empty."""
        now = self._clock().now()
        resume = now + seconds
        if resume <= self.resume_at:
            return
        self.resume_at = resume
        for window in self._windows.values():
            window.pause(now, resume)

    def level(self, name: str) -> float:
        """What limit `name` admits now: its capacity less the weight counted (tests, status)."""
        window = self._windows[name]
        return window.capacity - window.used(self._clock().now())

    def used(self, name: str) -> float:
        """The weight counted in limit `name` now."""
        return self._windows[name].used(self._clock().now())


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Pacer]] = weakref.WeakKeyDictionary()


def pacer_for(venue: Venue, ledger: Path | None = None) -> Pacer:
    """The one pacer of `venue` in this process (per event loop: asyncio's locks belong to one loop);
    `ledger`: the file it shares with the machine's other processes, if it has none yet."""
    pacers = _PACERS.setdefault(asyncio.get_running_loop(), {})
    pacer = pacers.get(venue.name)
    if pacer is None:
        pacer = pacers[venue.name] = Pacer(venue.name, venue.rest_limits, venue.max_concurrency)
    if ledger is not None and pacer.ledger is None and pacer.limits is not None:
        horizon = max(lim.seconds for lim in pacer.limits.limits) + LEDGER_LATENCY
        pacer.attach(Ledger(ledger, horizon))
    return pacer


def install(exchange: Any, venue: Venue, *, weigh: bool = True, state_dir: Path | None = None) -> None:
    """Route every REST request of the ccxt `exchange` through `venue`'s pacer. ccxt's `fetch2(path, api,
    method, params, config)` (ccxt 4.5.90 `async_support/base/exchange.py`) is where each implicit-API call
    is throttled, signed and sent; the pacer is looked up at each request, inside the running loop.
    `weigh` False (setting `pace_requests`, a local simulator): the requests draw no weight and write no
    ledger; the in-flight cap and Retry-After pauses still hold. `state_dir`: where the ledgers are (None:
    `default_state_dir()`); the file is keyed by the exchange's API hosts and ports (`ledger_path`).

    ccxt's `fetch` sets `exchange.last_response_headers` (a new dict per response, before raising on an
    error status) and nothing awaits between that and this wrapper: a changed dict after the request is
    this request's answer, or another answer received while it was in flight; either is the exchange's
    count at a moment this request was counted in ours."""
    original = exchange.fetch2
    ledger: Path | None = None

    async def fetch2(
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        config: Any = None,
    ) -> Any:
        nonlocal ledger
        params = {} if params is None else params
        if ledger is None and weigh:  # at the first request: after any sandbox mode changed the URLs
            urls = getattr(exchange, "urls", None)
            ledger = ledger_path(
                state_dir, venue.name, urls.get("api") if isinstance(urls, Mapping) else None
            )
        pacer = pacer_for(venue, ledger)
        weights = pacer.weights(path, params) if weigh else {}
        kind = (path, params.get("type") if isinstance(params, Mapping) else None)
        async with pacer.request(weights, pacer.expected.get(kind) if weigh else None):
            before = getattr(exchange, "last_response_headers", None)
            try:
                answer = await original(path, api, method, params, {} if config is None else config)
            finally:
                after = getattr(exchange, "last_response_headers", None)
                if weigh and after is not before and isinstance(after, Mapping):
                    pacer.observe(after, weights)
        if weigh:  # nothing awaits between the block's end and this: no request sees the reserve gone alone
            extra = pacer.extra(path, params, answer)
            if extra or kind in pacer.expected:
                pacer.expected[kind] = extra
            pacer.charge(extra)
        return answer

    exchange.fetch2 = fetch2
