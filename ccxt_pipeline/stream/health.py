"""What a stream knows about each exchange's connection, for the live health line and the summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ccxt_pipeline.exchanges.errors import scrub
from ccxt_pipeline.timeutil import NS_PER_MS, NS_PER_SECOND

LINE_WIDTH = 150
"""Default width of a health line: one exchange per line, never wrapped by a 160-column terminal."""

_MIN_ERROR_WIDTH = 24
"""The last error keeps at least this many characters, even when the rest of the line is long."""


@dataclass
class ExchangeHealth:
    exchange: str
    subscribed: int = 0
    """Instruments subscribed (0 with --all until events arrive)."""
    connected: bool = False
    ever_connected: bool = False
    """A socket was open at least once (an exchange that never connected is a failure at the stop)."""
    stopped: bool = False
    """We closed the stream ourselves (a normal stop): not an outage."""
    connected_at_ns: int | None = None
    last_frame_ns: int | None = None
    """Receipt of the last frame of any kind (event, ack, pong)."""
    last_event_ns: int | None = None
    events: int = 0
    duplicates: int = 0
    reconnects: int = 0
    errors: int = 0
    """Frames and liquidation items skipped as malformed (one per bad item of a multi-item message),
    failed connections and failed writes."""
    last_error: str | None = None
    """The last error's text: one line, credentials masked."""
    unfilled: int = 0
    """Liquidation items not stored because their order had filled nothing final (Binance `X` neither
    FILLED nor EXPIRED, or nothing filled)."""
    lag_ms: float | None = None
    """Receipt time minus exchange time of the last event."""
    gaps: int = 0
    note: str | None = None

    def record_error(self, message: str) -> None:
        self.errors += 1
        self.last_error = scrub(message)

    @property
    def state(self) -> str:
        """`stopped` after a normal stop, `connected`, `connecting` before the first socket opened, and
        `DISCONNECTED` (loud on purpose) while an outage lasts."""
        if self.stopped:
            return "stopped"
        if self.connected:
            return "connected"
        return "DISCONNECTED" if self.ever_connected else "connecting"

    def line(self, now_ns: int, width: int = LINE_WIDTH) -> str:
        """One line of at most `width` characters (the last error is shortened to fit)."""
        if self.note and not self.subscribed and not self.events:
            return _fit(f"{self.exchange}: {self.note}", width)
        last = (
            "never"
            if self.last_frame_ns is None
            else f"{(now_ns - self.last_frame_ns) / NS_PER_SECOND:.1f}s ago"
        )
        lag = "-" if self.lag_ms is None else f"{self.lag_ms:.0f}ms"
        text = (
            f"{self.exchange}: {self.state}, last message {last}, events {self.events}, "
            f"reconnects {self.reconnects}, errors {self.errors}, gaps {self.gaps}, lag {lag}"
        )
        if self.last_error:
            room = max(_MIN_ERROR_WIDTH, width - len(text) - len(", last error: "))
            text += f", last error: {_fit(self.last_error, room)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def saw_event(self, received_ns: int, exchange_ns: int) -> None:
        self.events += 1
        self.last_event_ns = received_ns
        self.lag_ms = (received_ns - exchange_ns) / NS_PER_MS


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."
