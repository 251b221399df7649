"""/metrics text and /exchanges/health verdicts from a daemon status file (`serve.metrics`, `serve.health`)."""

from __future__ import annotations

import copy
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ccxt_pipeline.serve.health import exchange_health
from ccxt_pipeline.serve.metrics import render
from ccxt_pipeline.timeutil import NS_PER_SECOND

NOW = 1_735_689_600 * NS_PER_SECOND


def status(**changes: Any) -> dict[str, Any]:
    """A status file as `Daemon.write_status` writes it (ccxt_pipeline/daemon/service.py)."""

    def stream(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "exchange": name,
            "subscribed": 1,
            "connected": True,
            "connected_at_ns": NOW - 60 * NS_PER_SECOND,
            "last_frame_ns": NOW - NS_PER_SECOND,
            "last_event_ns": NOW - NS_PER_SECOND,
            "events": 120,
            "duplicates": 0,
            "reconnects": 1,
            "errors": 0,
            "last_error": None,
            "unfilled": 3,
            "lag_ms": 41.5,
            "gaps": 1,
            "note": None,
            **extra,
        }

    data: dict[str, Any] = {
        "pid": 4242,
        "state": "running",
        "started_ns": NOW - 600 * NS_PER_SECOND,
        "updated_ns": NOW - NS_PER_SECOND,
        "status_seconds": 2.0,
        "stale_seconds": 30.0,
        "jobs": {
            "open_interest": {"interval_s": 300, "runs": 2, "failures": 0, "rows_written": 6},
            "funding": {"interval_s": 3600, "runs": 1, "failures": 1, "rows_written": 0},
        },
        "exchanges": {
            "binance": {"last_ok_ns": NOW - 5 * NS_PER_SECOND},
            "bybit": {"last_ok_ns": NOW - 5 * NS_PER_SECOND},
            "hyperliquid": {"last_ok_ns": NOW - 5 * NS_PER_SECOND},
        },
        "streams": {"binance": stream("binance"), "bybit": stream("bybit")},
        "liquidations_written": 240,
        "liquidation_queue": 7,
        "liquidation_storage": None,
        "clients_recycled": 0,
        "tasks": 12,
        "open_fds": 30,
        "rss_bytes": 150_000_000,
        "arrow_bytes": 1_000_000,
    }
    for key, value in changes.items():
        data[key] = value
    return data


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_parse_with_prometheus_client() -> None:
    text = render(status(), locked=True, now=NOW)
    got = families(text)
    assert got["ccxt_pipeline_daemon_up"].samples[0].value == 1
    events = {s.labels["exchange"]: s.value for s in got["ccxt_pipeline_stream_events"].samples}
    assert events == {"binance": 120, "bybit": 120}
    assert got["ccxt_pipeline_stream_events"].type == "counter"
    assert {s.labels["exchange"]: s.value for s in got["ccxt_pipeline_stream_reconnects"].samples} == {
        "binance": 1,
        "bybit": 1,
    }
    assert {s.labels["job"]: s.value for s in got["ccxt_pipeline_job_failures"].samples} == {
        "funding": 1,
        "open_interest": 0,
    }
    assert got["ccxt_pipeline_stream_lag_seconds"].samples[0].value == 0.0415
    assert got["ccxt_pipeline_stream_last_message_age_seconds"].samples[0].value == 0.0
    assert got["ccxt_pipeline_liquidation_queue_depth"].samples[0].value == 7
    assert got["ccxt_pipeline_process_resident_memory_bytes"].samples[0].value == 150_000_000
    for name in ("ccxt_pipeline_stream_gaps", "ccxt_pipeline_job_runs", "ccxt_pipeline_liquidations_written"):
        assert name in got


def test_metrics_without_a_daemon_say_only_that() -> None:
    for text in (render(None, locked=False, now=NOW), render(status(), locked=False, now=NOW)):
        got = families(text)
        assert list(got) == ["ccxt_pipeline_daemon_up"]
        assert got["ccxt_pipeline_daemon_up"].samples[0].value == 0


def test_label_values_are_escaped() -> None:
    s = status()
    s["jobs"] = {'we"ird\\job\n': {"runs": 1, "failures": 0, "rows_written": 0}}
    got = families(render(s, locked=True, now=NOW))
    assert got["ccxt_pipeline_job_runs"].samples[0].labels["job"] == 'we"ird\\job\n'


def test_health_green_amber_red() -> None:
    names = ["binance", "bybit", "hyperliquid"]
    healthy = exchange_health(status(), True, names, NOW)
    assert healthy["daemon"] == "running"
    assert {n: e["status"] for n, e in healthy["exchanges"].items()} == dict.fromkeys(names, "green")
    assert healthy["exchanges"]["binance"]["lag_s"] == 0.0415
    assert healthy["exchanges"]["binance"]["last_message_age_s"] == 1.0

    s = status()
    s["streams"]["bybit"].update(connected=False, last_error="NetworkError")
    s["streams"]["binance"].update(last_frame_ns=NOW - 45 * NS_PER_SECOND)
    s["exchanges"]["hyperliquid"].update(
        last_error_ns=NOW - NS_PER_SECOND, last_error="hyperliquid: timed out"
    )
    verdict = exchange_health(s, True, names, NOW)["exchanges"]
    assert verdict["bybit"]["status"] == "red"
    assert verdict["bybit"]["reason"] == "liquidation stream disconnected: NetworkError"
    assert verdict["binance"]["status"] == "amber"
    assert verdict["binance"]["reason"] == "connected, but no message for 45s"
    assert verdict["hyperliquid"]["status"] == "red"
    assert "timed out" in verdict["hyperliquid"]["reason"]


def test_health_never_shows_a_dead_daemons_last_state() -> None:
    names = ["binance", "bybit"]
    gone = exchange_health(status(), False, names, NOW)  # file says running, but nobody holds the lock
    assert gone["daemon"] == "not running"
    assert {e["status"] for e in gone["exchanges"].values()} == {"red"}
    assert {e["connected"] for e in gone["exchanges"].values()} == {False}
    stuck = copy.deepcopy(status())
    stuck["updated_ns"] = NOW - 60 * NS_PER_SECOND
    verdict = exchange_health(stuck, True, names, NOW)
    assert verdict["daemon"] == "stale"
    assert all("has not been updated since" in e["reason"] for e in verdict["exchanges"].values())
