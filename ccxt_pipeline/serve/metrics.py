"""`/metrics`: the daemon's status file in the Prometheus text exposition format (version 0.0.4).

https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format : `# HELP` and `# TYPE`
lines, then `name{label="value"} number`; label values escape backslash, double quote and newline.
Written by hand (a dozen families) so that serving needs no Prometheus library; the tests parse the output
with prometheus_client's own parser. Counters are the daemon's own since it started (they restart at zero
with it, which Prometheus' `rate()` handles).
"""

from __future__ import annotations

import math
from typing import Any

from ccxt_pipeline.serve.health import RUNNING, daemon_state
from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND

PREFIX = "ccxt_pipeline_"


class _Families:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        samples = [(labels, v) for labels, v in samples if _number(v) is not None]
        if not samples:
            return
        full = PREFIX + name
        self.lines.append(f"# HELP {full} {help_text}")
        self.lines.append(f"# TYPE {full} {kind}")
        for labels, value in samples:
            self.lines.append(f"{full}{_labels(labels)} {_format(_number(value))}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(status: dict[str, Any] | None, locked: bool, now: int) -> str:
    """The exposition text for one status file (None: none written), `locked`: a daemon holds the lock."""
    f = _Families()
    state = daemon_state(status, locked, now)
    f.add(
        "daemon_up",
        "gauge",
        "1 while a daemon runs on this catalog and updates its status",
        [({}, int(state == RUNNING))],
    )
    if status is None or state != RUNNING:
        return f.text()
    f.add(
        "daemon_status_age_seconds",
        "gauge",
        "Seconds since the daemon last wrote its status",
        [({}, (now - int(status["updated_ns"])) / NS_PER_SECOND)],
    )
    f.add(
        "daemon_uptime_seconds",
        "gauge",
        "Seconds since the daemon started",
        [({}, (now - int(status["started_ns"])) / NS_PER_SECOND)],
    )
    streams: dict[str, dict[str, Any]] = status.get("streams") or {}

    def per_stream(field: str, scale: float = 1.0) -> list[tuple[dict[str, str], Any]]:
        return [
            ({"exchange": name}, None if s.get(field) is None else float(s[field]) * scale)
            for name, s in sorted(streams.items())
        ]

    f.add("stream_events_total", "counter", "Liquidation events received", per_stream("events"))
    f.add("stream_duplicates_total", "counter", "Liquidation events received twice", per_stream("duplicates"))
    f.add("stream_reconnects_total", "counter", "Liquidation stream reconnections", per_stream("reconnects"))
    f.add("stream_errors_total", "counter", "Malformed frames and items skipped", per_stream("errors"))
    f.add("stream_gaps_total", "counter", "Coverage gaps recorded by the stream", per_stream("gaps"))
    f.add(
        "stream_connected",
        "gauge",
        "1 while the liquidation stream is connected",
        [({"exchange": n}, int(bool(s.get("connected")))) for n, s in sorted(streams.items())],
    )
    f.add(
        "stream_last_message_age_seconds",
        "gauge",
        "Seconds since the stream's last frame (event, ack or pong), as of the status file",
        [
            (
                {"exchange": n},
                None
                if s.get("last_frame_ns") is None
                else (int(status["updated_ns"]) - int(s["last_frame_ns"])) / NS_PER_SECOND,
            )
            for n, s in sorted(streams.items())
        ],
    )
    f.add(
        "stream_lag_seconds",
        "gauge",
        "Receipt time minus exchange time of the last event",
        per_stream("lag_ms", NS_PER_MS / NS_PER_SECOND),
    )
    f.add(
        "liquidations_written_total",
        "counter",
        "Liquidation rows written to the catalog",
        [({}, status.get("liquidations_written"))],
    )
    f.add(
        "liquidation_queue_depth",
        "gauge",
        "Liquidation batches queued plus events waiting for the next write",
        [({}, status.get("liquidation_queue"))],
    )
    f.add(
        "liquidation_storage_blocked",
        "gauge",
        "1 while the catalog cannot be written (disk full, ...)",
        [({}, int(status.get("liquidation_storage") is not None))],
    )
    jobs: dict[str, dict[str, Any]] = status.get("jobs") or {}
    f.add(
        "job_runs_total",
        "counter",
        "Scheduled job runs",
        [({"job": n}, j.get("runs")) for n, j in sorted(jobs.items())],
    )
    f.add(
        "job_failures_total",
        "counter",
        "Scheduled job runs that failed",
        [({"job": n}, j.get("failures")) for n, j in sorted(jobs.items())],
    )
    f.add(
        "job_rows_written_total",
        "counter",
        "Rows written by scheduled jobs",
        [({"job": n}, j.get("rows_written")) for n, j in sorted(jobs.items())],
    )
    f.add(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of the daemon",
        [({}, status.get("rss_bytes"))],
    )
    f.add(
        "arrow_allocated_bytes",
        "gauge",
        "Arrow memory in use by the daemon",
        [({}, status.get("arrow_bytes"))],
    )
    f.add("open_fds", "gauge", "Open file descriptors of the daemon", [({}, status.get("open_fds"))])
    f.add("asyncio_tasks", "gauge", "Tasks on the daemon's event loop", [({}, status.get("tasks"))])
    f.add(
        "clients_recycled_total",
        "counter",
        "Exchange clients replaced",
        [({}, status.get("clients_recycled"))],
    )
    return f.text()


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if not math.isnan(number) else None


def _format(value: float | None) -> str:
    assert value is not None
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
