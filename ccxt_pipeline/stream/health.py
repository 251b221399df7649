"""What a stream knows about each exchange's connection, for the live health line and the summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND


@dataclass
class ExchangeHealth:
    exchange: str
    subscribed: int = 0
    """Instruments subscribed (0 with --all until events arrive)."""
    connected: bool = False
    connected_at_ns: int | None = None
    last_frame_ns: int | None = None
    """Receipt of the last frame of any kind (event, ack, pong)."""
    last_event_ns: int | None = None
    events: int = 0
    duplicates: int = 0
    reconnects: int = 0
    errors: int = 0
    """Frames and liquidation items skipped as malformed (one per bad item of a multi-item message)."""
    last_error: str | None = None
    unfilled: int = 0
    """Liquidation items not stored because their order had filled nothing final (Binance `X` neither
    FILLED nor EXPIRED, or nothing filled)."""
    lag_ms: float | None = None
    """Receipt time minus exchange time of the last event."""
    gaps: int = 0
    note: str | None = None

    def record_error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message

    def line(self, now_ns: int) -> str:
        if self.note and not self.subscribed and not self.events:
            return f"{self.exchange}: {self.note}"
        state = "connected" if self.connected else "DISCONNECTED"
        last = (
            "never"
            if self.last_frame_ns is None
            else f"{(now_ns - self.last_frame_ns) / NS_PER_SECOND:.1f}s ago"
        )
        lag = "-" if self.lag_ms is None else f"{self.lag_ms:.0f}ms"
        return (
            f"{self.exchange}: {state}, last message {last}, events {self.events}, reconnects {self.reconnects}, "
            f"errors {self.errors}, gaps {self.gaps}, lag {lag}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def saw_event(self, received_ns: int, exchange_ns: int) -> None:
        self.events += 1
        self.last_event_ns = received_ns
        self.lag_ms = (received_ns - exchange_ns) / NS_PER_MS
