"""Events for the browsers: the flow thread publishes, streams and long polls read.

Publishing never waits on a reader: each subscriber has one bounded buffer, and one that
fills it (a reader that stopped reading, a dead connection) is dropped, not waited for.
The last `ring` events stay in memory so that a stream that reconnects with
Last-Event-ID gets what it missed, as far as memory reaches.

Streams and waits each hold a thread of the HTTP server for long: `enter()` admits at
most `max_open` of them together.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Optional

RING = 256          # events kept for Last-Event-ID
BUFFER = 64         # events one subscriber may have unread before it is dropped


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict


class Subscriber:
    def __init__(self, backlog, limit: int):
        self.pending: deque = deque(backlog)
        self.limit = limit
        self.dropped = False


class Hub:
    def __init__(self, max_open: int, ring: int = RING, buffer: int = BUFFER):
        self.max_open = max_open
        self.buffer = buffer
        self._ring: deque = deque(maxlen=ring)
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._subscribers: set = set()
        self._open = 0
        self._unwoken = False
        self.last_id = 0
        self.dropped = 0   # subscribers dropped for not reading, since the start

    # --- the flow's side --------------------------------------------------------------

    def publish(self, name: str, data: dict, wake: bool = True) -> None:
        """Append an event to every reader's buffer; `wake=False` leaves waking the
        readers to a later `wake()` (the flow does so once its frame is out)."""
        with self._cond:
            event = Event(next(self._ids), name, data)
            self._ring.append(event)
            self.last_id = event.id
            for sub in list(self._subscribers):
                if len(sub.pending) >= sub.limit:
                    sub.dropped = True
                    sub.pending.clear()
                    self._subscribers.discard(sub)
                    self.dropped += 1
                else:
                    sub.pending.append(event)
            self._unwoken = True
            if wake:
                self._cond.notify_all()

    def wake(self) -> None:
        """Wake the readers of what was published without waking them."""
        with self._cond:
            if self._unwoken:
                self._unwoken = False
                self._cond.notify_all()

    # --- the readers' side ----------------------------------------------------------------

    def enter(self) -> bool:
        """One more stream or wait, if there is room for it."""
        with self._cond:
            if self._open >= self.max_open:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._open -= 1

    def subscribe(self, last_id: Optional[int] = None) -> Subscriber:
        """A subscriber with the events after `last_id` still in memory (all of them when
        `last_id` is from before a restart of the device, that is above the newest)."""
        with self._cond:
            backlog = []
            if last_id is not None:
                after = 0 if last_id > self.last_id else last_id
                backlog = [e for e in self._ring if e.id > after]
            sub = Subscriber(backlog[-self.buffer:], self.buffer)
            self._subscribers.add(sub)
            return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._cond:
            self._subscribers.discard(sub)

    def take(self, sub: Subscriber, timeout: float) -> list:
        """The subscriber's unread events, waiting up to `timeout` for one."""
        with self._cond:
            self._cond.wait_for(lambda: sub.pending or sub.dropped, timeout)
            events = list(sub.pending)
            sub.pending.clear()
            return events

    def wait_after(self, seen: int, timeout: float) -> None:
        """Until an event newer than `seen` is published, or `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self.last_id > seen, timeout)

    def counts(self) -> dict:
        with self._cond:
            return {"open": self._open, "subscribers": len(self._subscribers),
                    "dropped": self.dropped}
