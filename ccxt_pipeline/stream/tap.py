"""The tap: one exchange's connection as ccxt.pro reports it, hooked into its exchange class.

Two ccxt.pro bugs lose liquidations (docs/exchanges.md): its ws parsers leave the value empty (no contract
size), and `watch_liquidations` returns only the item of the message that woke it, so a burst that arrives
before the next `await` is dropped from what it returns. The tap therefore never uses what `watch_*`
returns: a subclass of the ccxt class (`tapped`) hands every raw message to `Tap.liquidation`, and the
decoder (`stream/decoder.py`) turns it into records (with side, units and notional right). ccxt's own
handling of the message is skipped: its parse (about half the CPU of each message) and the wake-up and
re-subscription of the `watch_*` call after every message bought nothing, and at 5,000 events/s they
starved the writer (see benchmarks/liquidation_burst.py). The `watch_*` calls stay pending: they
subscribe, and fail when the connection does, which is what the source's reconnect loop waits for.

The tap does no I/O: what it decodes, the gaps it closes and the instruments it meets go out through
`emit` and `define`, both of which only queue for the writer (they run inside ccxt's receive callback).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ccxt_pipeline.catalog import LIQUIDATION
from ccxt_pipeline.instruments import Instrument
from ccxt_pipeline.models import CoverageGap, Record
from ccxt_pipeline.stream.decoder import Decoded, SeenEvents, decode_liquidations
from ccxt_pipeline.stream.health import ExchangeHealth
from ccxt_pipeline.stream.markets import MarketBook
from ccxt_pipeline.timeutil import NS_PER_MS
from ccxt_pipeline.venues import LiquidationWire, Venue

log = logging.getLogger(__name__)

Clock = Callable[[], int]
Emit = Callable[[list[Record]], None]
Define = Callable[[Instrument, Any, int], None]
"""Queue an instrument's definition (instrument, ccxt market, ts_init) for the writer."""


class Tap:
    """Per exchange: connection state, gaps and health; each message through the decoder to `emit`."""

    def __init__(
        self,
        venue: Venue,
        health: ExchangeHealth,
        emit: Emit,
        clock: Clock,
        gap_ids: list[str],
        define: Define | None = None,
    ) -> None:
        assert venue.liquidations is not None
        self.venue = venue
        self.wire: LiquidationWire = venue.liquidations
        self.health = health
        self.emit = emit
        self.clock = clock
        self.gap_ids = gap_ids
        """Instrument ids a disconnect is recorded under (the subscribed ones, or `MARKET.<VENUE>`)."""
        self._define = define
        """Where instrument definitions go (None with --no-store)."""
        self.markets = MarketBook(venue.name, self.define)
        self.seen = SeenEvents()
        self._gap_start: int | None = None
        self._closing = False

    def bind(self, exchange: Any) -> None:
        """The ccxt exchange whose markets translate wire symbols."""
        self.markets.bind(exchange)

    def define(self, inst: Instrument, market: Any) -> None:
        """Queue the instrument's definition for the catalog (the writer writes it, if storing)."""
        if self._define is not None:
            self._define(inst, market, self.clock())

    # --- hooks called from the ccxt subclass -------------------------------------------------------------

    def frame(self) -> None:
        """Any frame: proof that the socket is alive. The first one after a reconnect ends the open gap
        (a socket that connects but stays silent is not yet listening)."""
        now = self.clock()
        self.health.last_frame_ns = now
        if self._gap_start is not None and self.health.connected:
            self._close_gap(now)

    def liquidation(self, message: Any) -> None:
        """One liquidation message: its new items are emitted; each bad item is counted and skipped."""
        received = self.clock()
        decoded = decode_liquidations(
            message, self.wire, self.markets.lookup, self.seen, received_ns=received
        )
        self._count(decoded, message)
        fresh: list[Record] = []
        for r in decoded.records:
            self.health.saw_event(received, r.ts_event)
            fresh.append(r)
        if fresh:
            self.emit(fresh)

    def _count(self, decoded: Decoded, message: Any) -> None:
        health = self.health
        for error in decoded.errors:
            health.record_error(f"skipped {error}")  # "item 2 (BTCUSDT): Liquidation.price: ..."
        if decoded.errors:
            log.warning(
                "%s: skipped %d bad liquidation item(s) (%s): %.300s",
                self.venue.name,
                len(decoded.errors),
                decoded.errors[0],
                message,
            )
        health.unfilled += decoded.unfilled
        health.duplicates += decoded.duplicates

    def bad_frame(self, exc: Exception, frame: Any) -> None:
        """A frame ccxt could not decode or handle: counted and skipped, the socket kept."""
        self.health.record_error(f"bad frame skipped: {type(exc).__name__}")
        log.warning("%s: skipped a frame ccxt could not handle (%s): %.200r", self.venue.name, exc, frame)

    def connected(self) -> None:
        self.health.connected = self.health.ever_connected = True
        self.health.connected_at_ns = self.clock()

    def disconnected(self, reason: str, last_pong_ms: int | None = None) -> None:
        """The connection is gone; the gap starts when it was last known alive."""
        if not self.health.connected or self._closing:
            return
        self.health.connected = False
        alive = max(self.health.last_frame_ns or 0, (last_pong_ms or 0) * NS_PER_MS) or self.clock()
        if self._gap_start is None:  # a reconnect that never came alive extends the same gap
            self._gap_start = alive
        log.warning("%s: liquidation stream disconnected: %s", self.venue.name, reason)

    def _close_gap(self, end: int) -> None:
        start, self._gap_start = self._gap_start, None
        assert start is not None
        if end <= start:
            return
        self.health.gaps += 1
        self.emit(
            [
                CoverageGap.between(
                    LIQUIDATION, self.venue.name, iid, start, end, "liquidation stream disconnected"
                )
                for iid in self.gap_ids
            ]
        )

    def closing(self) -> None:
        """We are closing the sockets ourselves (shutdown): that is no outage."""
        self._closing = True
        self.health.connected = False
        self.health.stopped = True

    def reopen(self) -> None:
        """We closed the sockets to open them again (a new symbol list): from now until the new socket's
        first frame is a gap."""
        self._closing = False
        self.health.stopped = False
        if self._gap_start is None:
            self._gap_start = self.clock()

    def finish(self) -> None:
        """At shutdown: a gap still open (an outage when the stop came) ends now."""
        self.health.connected = False
        self.health.stopped = True
        if self._gap_start is not None:
            self._close_gap(self.clock())


def tapped(tap: Tap) -> Callable[[type[Any]], type[Any]]:
    """A factory wrapping a ccxt.pro exchange class so that `tap` sees every message and connection."""

    def subclass(base: type[Any]) -> type[Any]:
        class Tapped(base):  # type: ignore[misc]
            def client(self, url: str) -> Any:
                ws = super().client(url)
                if not getattr(ws, "_tap_guarded", False):
                    # ccxt's receive loop reschedules itself only after a frame was handled without an
                    # exception: one frame that is not JSON stops the socket being read, silently, until
                    # the keepalive gives up (minutes). Skip such a frame instead, and keep reading.
                    decode = ws.handle_text_or_binary_message

                    def guarded(data: Any) -> Any:
                        try:
                            return decode(data)
                        except Exception as exc:
                            tap.bad_frame(exc, data)
                            return None

                    ws.handle_text_or_binary_message = guarded
                    ws._tap_guarded = True
                return ws

            def handle_message(self, client: Any, message: Any) -> Any:
                tap.frame()
                try:
                    return super().handle_message(client, message)
                except Exception as exc:  # same reason: never let one message stop the receive loop
                    tap.bad_frame(exc, message)
                    return None

            def handle_liquidation(self, client: Any, message: Any) -> None:
                tap.liquidation(message)  # ours only: ccxt's parse is not used (see the module's doc)

            def on_connected(self, client: Any, message: Any = None) -> Any:
                result = super().on_connected(client, message)
                tap.connected()
                return result

            def on_error(self, client: Any, error: Any) -> Any:
                tap.disconnected(f"{type(error).__name__}: {error}", getattr(client, "lastPong", None))
                return super().on_error(client, error)

            def on_close(self, client: Any, error: Any) -> Any:
                tap.disconnected(f"closed ({error})", getattr(client, "lastPong", None))
                return super().on_close(client, error)

        Tapped.__name__ = base.__name__
        Tapped.__qualname__ = base.__qualname__
        return Tapped

    return subclass
