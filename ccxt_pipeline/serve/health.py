"""Exchange health for the API and the page: the daemon's status file, judged green, amber or red.

The daemon rewrites `<catalog>/.daemon/status.json` every `daemon.status_seconds` (2 s by default); the
service only reads it. Pure functions: a status dict and whether the daemon holds its lock in, JSON out.
When no daemon runs (or its file stopped changing), no exchange shows the last health it had: each is red
with the reason, so an old "connected" never reads as current.

Per exchange:
- red: the liquidation stream is disconnected; or (an exchange without a stream) its last poll failed.
- amber: the stream is connected but nothing (no event, ack or pong) came for `stream.stale_seconds`, the
  point at which the stream's watchdog redials; or its last poll failed while the stream is fine; or it has
  not been polled yet.
- green: otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND, ns_to_iso

RUNNING, NOT_RUNNING, STALE = "running", "not running", "stale"


def daemon_state(status: dict[str, Any] | None, locked: bool, now: int) -> str:
    """`running`, `not running` (no process holds the lock), or `stale` (it does, but the status file has
    not changed for 3 status intervals + 5 s: the daemon is stuck)."""
    if not locked or status is None or status.get("state") != RUNNING:
        return NOT_RUNNING
    if _age_s(now, status.get("updated_ns")) > 3 * float(status.get("status_seconds", 2.0)) + 5:
        return STALE
    return RUNNING


def exchange_health(
    status: dict[str, Any] | None, locked: bool, exchanges: Sequence[str], now: int
) -> dict[str, Any]:
    """The `/exchanges/health` answer."""
    state = daemon_state(status, locked, now)
    out: dict[str, Any] = {
        "daemon": state,
        "updated": ns_to_iso(status["updated_ns"]) if status and status.get("updated_ns") else None,
        "exchanges": {},
    }
    if state != RUNNING or status is None:
        reason = (
            "no daemon is running on this catalog"
            if state == NOT_RUNNING
            else f"the daemon's status has not been updated since {out['updated']}"
        )
        for name in exchanges:
            out["exchanges"][name] = _blank("red", reason)
        return out
    streams: dict[str, Any] = status.get("streams") or {}
    polls: dict[str, Any] = status.get("exchanges") or {}
    names = list(dict.fromkeys([*exchanges, *streams, *polls]))
    stale_s = float(status.get("stale_seconds", 30.0))
    for name in names:
        out["exchanges"][name] = _one(streams.get(name), polls.get(name) or {}, stale_s, now)
    return out


def _one(stream: dict[str, Any] | None, poll: dict[str, Any], stale_s: float, now: int) -> dict[str, Any]:
    poll_error = (
        poll.get("last_error") if (poll.get("last_error_ns") or 0) > (poll.get("last_ok_ns") or 0) else None
    )
    has_stream = stream is not None and (
        stream.get("subscribed") or stream.get("events") or not stream.get("note")
    )
    if stream is None or not has_stream:
        note = (stream or {}).get("note")
        if poll_error:
            status, reason = "red", f"last poll failed: {poll_error}"
        elif not poll.get("last_ok_ns"):
            status, reason = "amber", "not polled yet"
        else:
            status, reason = "green", f"last poll {_age_s(now, poll['last_ok_ns']):.0f}s ago"
        if note:
            reason += f" (liquidations: {note})"
        row = _blank(status, reason)
        row["last_poll"] = _iso(poll.get("last_ok_ns"))
        return row
    last = stream.get("last_frame_ns")
    age = None if last is None else _age_s(now, last)
    if not stream.get("connected"):
        error = stream.get("last_error")
        status, reason = "red", "liquidation stream disconnected" + (f": {error}" if error else "")
    elif age is None or age > stale_s:
        status = "amber"
        reason = (
            "connected, but no message yet" if age is None else f"connected, but no message for {age:.0f}s"
        )
    elif poll_error:
        status, reason = "amber", f"stream connected; last poll failed: {poll_error}"
    else:
        status, reason = "green", f"stream connected, last message {age:.0f}s ago"
    lag_ms = stream.get("lag_ms")
    return {
        "status": status,
        "reason": reason,
        "connected": bool(stream.get("connected")),
        "last_message": _iso(last),
        "last_message_age_s": None if age is None else round(age, 3),
        "events": int(stream.get("events") or 0),
        "reconnects": int(stream.get("reconnects") or 0),
        "errors": int(stream.get("errors") or 0),
        "last_error": stream.get("last_error") or poll_error,
        "gaps": int(stream.get("gaps") or 0),
        "lag_s": None if lag_ms is None else float(lag_ms) * NS_PER_MS / NS_PER_SECOND,
        "last_poll": _iso(poll.get("last_ok_ns")),
    }


def _blank(status: str, reason: str) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "connected": False,
        "last_message": None,
        "last_message_age_s": None,
        "events": 0,
        "reconnects": 0,
        "errors": 0,
        "last_error": None,
        "gaps": 0,
        "lag_s": None,
        "last_poll": None,
    }


def _age_s(now: int, ns: Any) -> float:
    return (now - int(ns or 0)) / NS_PER_SECOND


def _iso(ns: Any) -> str | None:
    return None if ns is None else ns_to_iso(int(ns))
