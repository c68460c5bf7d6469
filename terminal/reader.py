"""Kiosk: the ID-card reader's thread, and its events turned into the flow's.

`KioskReader` opens the reader named by the settings (`reader.driver`): "serial" on
`reader.port`, or "simulated" — a byte-exact simulated reader on a pseudo-terminal,
spoken to through the real driver — only when the settings say so, never as a fallback.
Reader events become flow events on the terminal's queue (`translate`); the reader's
health (connected, disconnected, SAM fault) is kept for the status call and the screens.

Only the masked name and the ID number for the lookup leave here; the driver's Card
(address, birth date, ...) goes no further than `translate`.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable, Optional

from drivers.idcard import (CardError, CardRead, IdCardReader, ReaderState, ReaderThread,
                            mask_name)
from terminal import flow

log = logging.getLogger("pingjia.reader")


def translate(event):
    """The flow event for a reader event, or None (a card taken away means nothing)."""
    if isinstance(event, CardRead):
        card = event.card
        if card.id_check_ok is False:  # a damaged read; the central system would not know it
            log.info("card read with a wrong check character: %r", card)
            return flow.CardFailed("unreadable", "check character")
        return flow.CardRead(card.card_type, card.cert_type, mask_name(card.display_name),
                             card.id_number)
    if isinstance(event, CardError):
        reason = "unsupported" if event.kind == "unsupported_card" else "unreadable"
        return flow.CardFailed(reason, event.kind)
    if isinstance(event, ReaderState) and event.state != "connected":
        return flow.CardFailed("reader_fault", event.state)
    return None


class KioskReader:
    """The reader thread of a kiosk, posting flow events with `post`."""

    def __init__(self, settings, post: Callable[[object], None]):
        self.settings = settings
        self.post = post
        self.sim = None
        self.port = settings.port
        self._state = ReaderState("connecting")
        self._lock = threading.Lock()
        self._thread: Optional[ReaderThread] = None
        self._last_read: Optional[dict] = None  # masked: what `pingjia test reader` shows

    def start(self) -> "KioskReader":
        if self.settings.driver == "simulated":
            from drivers.idcard.simulated import SimulatedReader
            self.sim = SimulatedReader().start()
            self.port = self.sim.link
            log.warning("simulated ID-card reader on %s (reader.driver = \"simulated\")", self.port)
        elif not self.port:
            raise ValueError("kiosk mode needs reader.port (or reader.driver = \"none\")")
        device = IdCardReader(self.port, self.settings.baud or None,
                              poll_interval=self.settings.poll_ms / 1000)
        self._thread = ReaderThread(device, self._event).start()
        return self

    def _event(self, event) -> None:  # runs in the reader thread
        if isinstance(event, ReaderState):
            with self._lock:
                self._state = event
            log.info("ID-card reader %s: %s %s", self.port, event.state, event.detail)
        out = translate(event)
        if isinstance(out, flow.CardRead) or (isinstance(out, flow.CardFailed)
                                              and out.reason != "reader_fault"):
            last = ({"result": "read", "card_type": out.card_type, "masked_name": out.masked_name}
                    if isinstance(out, flow.CardRead) else {"result": out.reason, "detail": out.detail})
            with self._lock:
                self._last_read = {**last, "at": datetime.now().astimezone().isoformat(timespec="seconds")}
        if out is not None:
            self.post(out)

    def health(self) -> dict:
        with self._lock:
            state = self._state
            last = self._last_read
        return {"driver": self.settings.driver, "port": self.port, "state": state.state,
                "detail": state.detail, "last_read": last}

    def close(self) -> None:
        """Stop the thread (it closes the port), then the simulator; safe twice."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        if self.sim is not None:
            self.sim.close()
            self.sim = None
