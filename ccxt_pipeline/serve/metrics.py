"""`/metrics`: the daemon's status file in the Prometheus text exposition format (version 0.0.4).

https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format : `# HELP` and `# TYPE`
lines, then `name{label="value"} number`; label values escape backslash, double quote and newline.
Written by hand (a dozen families) so that serving needs no Prometheus library; the tests parse the output
with prometheus_client's own parser. Counters are the daemon's own since it started (they restart at zero
with it, which Prometheus' `rate()` handles).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ccxt_pipeline.serve.health import RUNNING, daemon_state
from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND

PREFIX = "ccxt_pipeline_"


Status = dict[str, Any]
Samples = list[tuple[dict[str, str], Any]]
Sampler = Callable[[Status, int], Samples]
"""A family's samples from (status file, now): (labels, value) pairs; a value that is not a number is left out."""


def _one(value: Callable[[Status, int], Any]) -> Sampler:
    return lambda status, now: [({}, value(status, now))]


def _field(key: str) -> Sampler:
    return _one(lambda status, now: status.get(key))


def _seconds_since(key: str) -> Sampler:
    return _one(lambda status, now: (now - int(status[key])) / NS_PER_SECOND)


def _per_stream(value: Callable[[Status, dict[str, Any]], Any]) -> Sampler:
    def samples(status: Status, now: int) -> Samples:
        streams: dict[str, dict[str, Any]] = status.get("streams") or {}
        return [({"exchange": name}, value(status, s)) for name, s in sorted(streams.items())]

    return samples


def _stream_field(field: str, scale: float = 1.0) -> Sampler:
    return _per_stream(lambda status, s: None if s.get(field) is None else float(s[field]) * scale)


def _frame_age(status: Status, stream: dict[str, Any]) -> float | None:
    if stream.get("last_frame_ns") is None:
        return None
    return (int(status["updated_ns"]) - int(stream["last_frame_ns"])) / NS_PER_SECOND


def _per_job(field: str) -> Sampler:
    def samples(status: Status, now: int) -> Samples:
        jobs: dict[str, dict[str, Any]] = status.get("jobs") or {}
        return [({"job": name}, j.get(field)) for name, j in sorted(jobs.items())]

    return samples


FAMILIES: tuple[tuple[str, str, str, Sampler], ...] = (
    (
        "daemon_status_age_seconds",
        "gauge",
        "Seconds since the daemon last wrote its status",
        _seconds_since("updated_ns"),
    ),
    ("daemon_uptime_seconds", "gauge", "Seconds since the daemon started", _seconds_since("started_ns")),
    ("stream_events_total", "counter", "Liquidation events received", _stream_field("events")),
    ("stream_duplicates_total", "counter", "Liquidation events received twice", _stream_field("duplicates")),
    ("stream_reconnects_total", "counter", "Liquidation stream reconnections", _stream_field("reconnects")),
    ("stream_errors_total", "counter", "Malformed frames and items skipped", _stream_field("errors")),
    ("stream_gaps_total", "counter", "Coverage gaps recorded by the stream", _stream_field("gaps")),
    (
        "stream_connected",
        "gauge",
        "1 while the liquidation stream is connected",
        _per_stream(lambda status, s: int(bool(s.get("connected")))),
    ),
    (
        "stream_last_message_age_seconds",
        "gauge",
        "Seconds since the stream's last frame (event, ack or pong), as of the status file",
        _per_stream(_frame_age),
    ),
    (
        "stream_lag_seconds",
        "gauge",
        "Receipt time minus exchange time of the last event",
        _stream_field("lag_ms", NS_PER_MS / NS_PER_SECOND),
    ),
    (
        "liquidations_written_total",
        "counter",
        "Liquidation rows written to the catalog",
        _field("liquidations_written"),
    ),
    (
        "liquidation_queue_depth",
        "gauge",
        "Liquidation batches queued plus events waiting for the next write",
        _field("liquidation_queue"),
    ),
    (
        "liquidation_storage_blocked",
        "gauge",
        "1 while the catalog cannot be written (disk full, ...)",
        _one(lambda status, now: int(status.get("liquidation_storage") is not None)),
    ),
    ("job_runs_total", "counter", "Scheduled job runs", _per_job("runs")),
    ("job_failures_total", "counter", "Scheduled job runs that failed", _per_job("failures")),
    ("job_rows_written_total", "counter", "Rows written by scheduled jobs", _per_job("rows_written")),
    ("process_resident_memory_bytes", "gauge", "Resident memory of the daemon", _field("rss_bytes")),
    ("arrow_allocated_bytes", "gauge", "Arrow memory in use by the daemon", _field("arrow_bytes")),
    ("open_fds", "gauge", "Open file descriptors of the daemon", _field("open_fds")),
    ("asyncio_tasks", "gauge", "Tasks on the daemon's event loop", _field("tasks")),
    ("clients_recycled_total", "counter", "Exchange clients replaced", _field("clients_recycled")),
)
"""The families of a running daemon, in the order written: (name after PREFIX, type, help, samples)."""


def render(status: Status | None, locked: bool, now: int) -> str:
    """The exposition text for one status file (None: none written), `locked`: a daemon holds the lock."""
    state = daemon_state(status, locked, now)
    up = "1 while a daemon runs on this catalog and updates its status"
    lines = _family("daemon_up", "gauge", up, [({}, int(state == RUNNING))])
    if status is not None and state == RUNNING:
        for name, kind, help_text, samples in FAMILIES:
            lines += _family(name, kind, help_text, samples(status, now))
    return "\n".join(lines) + "\n"


def _family(name: str, kind: str, help_text: str, samples: Samples) -> list[str]:
    """The lines of one family: none when no sample is a number."""
    numbers = [(labels, number) for labels, v in samples if (number := _number(v)) is not None]
    if not numbers:
        return []
    full = PREFIX + name
    head = [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
    return head + [f"{full}{_labels(labels)} {_format(number)}" for labels, number in numbers]


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) else None


def _format(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), chr(92) + "n")}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"
