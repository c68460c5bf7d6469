"""The terminal's imperative shell: one thread owns the flow state and drains one queue.

Button callbacks, the local API and the card reader only `post` events. This loop runs
`step`, carries out the effects in order (the store commit first, so the thanks screen
can only follow a durable record), then draws the screen and sets the LEDs from the new
state. An exception anywhere in a step is caught: the failsafe screen shows, the event
is dropped, the previous state goes on.
"""
from __future__ import annotations

import itertools
import logging
import queue
import sqlite3
import threading
from collections import deque
from dataclasses import replace
from concurrent.futures import Future, TimeoutError as FutureTimeout
from typing import Callable, Optional

from terminal import flow
from terminal.flow import Append, Reply, Sound, Stored, StoreFailed, Tick
from terminal.store import StorageError

log = logging.getLogger("pingjia.terminal")

REPLY_TIMEOUT_S = 3.0


class FlowBusy(Exception):
    """The flow did not answer a request in time."""


class Terminal:
    """Runs the flow against real or simulated parts.

    `display` needs `show(image)`, `size` and `mode`; `leds` is a callable taking the
    set of lit levels; `sound` needs `play(name)`; `render(state, size, mode)` draws.
    `lookup` (kiosk) takes a StartLookup and answers later by posting a LookupDone.
    """

    def __init__(self, config, *, store, clock, display, render, leds=None, sound=None,
                 render_fault=None, health: Optional[Callable[[], dict]] = None,
                 lookup: Optional[Callable[[flow.StartLookup], None]] = None):
        self.store = store
        self.lookup = lookup
        self.clock = clock
        self.display = display
        self.render = render
        self.render_fault = render_fault
        self.set_leds = leds or (lambda lit: None)
        self.sound = sound
        self.health_source = health
        self.events: "queue.Queue" = queue.Queue()
        self.state = flow.initial(config, clock.now())
        self.listeners: list[Callable[[list], None]] = []  # told about newly stored records
        self.stats = {"events": 0, "faults": 0, "frames": 0, "stored": 0, "store_failures": 0}
        self._replies: dict[int, Future] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._followups: deque = deque()
        self._last_lit = None
        self._drawn = None
        self._last_health = None
        self._next_health = 0

    # --- called from other threads -------------------------------------------

    def post(self, event) -> None:
        self.events.put(event)

    def request(self, make_event: Callable[[int], object], timeout: float = REPLY_TIMEOUT_S) -> Reply:
        """Post an event carrying a request id and wait for the flow's Reply."""
        rid = next(self._ids)
        fut: Future = Future()
        with self._lock:
            self._replies[rid] = fut
        self.post(make_event(rid))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            raise FlowBusy("the terminal did not answer in time") from None
        finally:
            with self._lock:
                self._replies.pop(rid, None)

    def snapshot(self) -> flow.State:
        return self.state  # immutable: a reference read is a consistent view

    # --- the event thread ----------------------------------------------------

    def start(self) -> None:
        """Draw the first frame."""
        self._draw()

    def run(self, stop: threading.Event, on_turn: Optional[Callable[[], None]] = None) -> None:
        """Draw the first frame, then handle events until `stop`. `on_turn()` runs on
        this thread after every turn (at least every 0.5 s): the systemd watchdog ping,
        which therefore stops when the loop is stuck."""
        self.start()
        while not stop.is_set():
            self.run_once(max_wait_s=0.5)
            if on_turn is not None:
                on_turn()

    def run_once(self, max_wait_s: float = 0.5) -> None:
        wait = self._wait_s(max_wait_s)
        try:
            event = self.events.get(timeout=wait) if wait > 0 else self.events.get_nowait()
        except queue.Empty:
            event = Tick()
        self.handle(event)
        if self._wait_s(1.0) == 0:
            self.handle(Tick())

    def _wait_s(self, cap: float) -> float:
        due = flow.next_deadline(self.state)
        if due is None:
            return cap
        return max(0.0, min(cap, (due - self.clock.mono_ms()) / 1000))

    def handle(self, event) -> None:
        """One event, its effects, and whatever they lead to; then the screen and LEDs."""
        self._followups.append(event)
        while self._followups:
            self._step(self._followups.popleft())
        self._refresh_health()
        self._draw()

    def _step(self, event) -> None:
        self.stats["events"] += 1
        if isinstance(event, flow.LookupDone):
            event = self._lookup_facts(event)
        if isinstance(event, flow.Invite):
            try:
                event = self._with_store_facts(event)
            except StorageError as exc:
                self._resolve(Reply(event.request_id, 503, {
                    "error": "storage_failed", "message": f"cannot read the records: {exc}"}))
                return
        now = self.clock.now()
        try:
            state, effects = flow.step(self.state, event, now)
        except Exception as exc:  # failsafe: keep going with the state we had
            self.stats["faults"] += 1
            log.exception("flow failed on %s", type(event).__name__)
            self.state = flow.fail(self.state, now, f"{type(exc).__name__}")
            self._answer_failed(event)
            return
        # Records first, then the new state: a reader (the API) that no longer sees a
        # visit open finds it in the store, never in neither place.
        for effect in effects:
            if isinstance(effect, Append):
                self._apply(effect)
        self.state = state
        for effect in effects:
            if not isinstance(effect, Append):
                self._apply(effect)

    def _with_store_facts(self, event: flow.Invite) -> flow.Invite:
        """What the store knows about an invitation, read on this thread so that no
        other invitation can slip in between the check and the step."""
        try:
            stored = self.store.visit(event.visit_id)
            counts = {b.project_no: self.store.rating_count(b.project_no) for b in event.items}
        except sqlite3.Error as exc:
            raise StorageError(str(exc)) from exc
        return replace(event, stored_kind=stored[0]["kind"] if stored else None,
                       stored_rated=frozenset(pn for pn, n in counts.items() if n >= 1),
                       stored_follow_ups=frozenset(pn for pn, n in counts.items() if n >= 2))

    def _lookup_facts(self, event: flow.LookupDone) -> flow.LookupDone:
        """Which businesses found by a kiosk lookup the store has rated (一次一评)."""
        try:
            rated = frozenset(f.business.project_no for f in event.businesses
                              if self.store.rated(f.business.project_no))
        except (sqlite3.Error, StorageError) as exc:
            log.error("cannot read the records for a lookup: %s", exc)
            return replace(event, businesses=(), error="storage")
        return replace(event, stored_rated=rated)

    def _start_lookup(self, effect: flow.StartLookup) -> None:
        try:
            if self.lookup is None:
                raise RuntimeError("this terminal has no lookup client (central.url unset?)")
            self.lookup(effect)
        except Exception as exc:
            log.error("kiosk lookup %d not started: %s", effect.lookup_id, exc)
            self._followups.append(flow.LookupDone(effect.lookup_id, error="unavailable"))

    def _apply(self, effect) -> None:
        if isinstance(effect, Append):
            self._append(effect.drafts)
        elif isinstance(effect, flow.StartLookup):
            self._start_lookup(effect)
        elif isinstance(effect, Reply):
            self._resolve(effect)
        elif isinstance(effect, Sound):
            if self.sound is not None:
                try:
                    self.sound.play(effect.name)
                except Exception:
                    log.exception("sound failed")
        else:
            log.error("unknown effect %r", effect)

    def _append(self, drafts) -> None:
        try:
            stored = self.store.append(drafts)
        except StorageError as exc:
            self.stats["store_failures"] += 1
            log.error("storage failed: %s", exc)
            self._followups.append(StoreFailed(tuple(drafts), str(exc)))
            return
        self.stats["stored"] += len(stored)
        for record in stored:
            log.info("stored seq=%s kind=%s level=%s visit=%s", record["seq"], record["kind"],
                     record["level"], record["visit_id"])
        self._followups.append(Stored(len(stored)))
        for listener in self.listeners:
            try:
                listener(stored)
            except Exception:
                log.exception("record listener failed")

    def _resolve(self, reply: Reply) -> None:
        with self._lock:
            fut = self._replies.get(reply.request_id)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _answer_failed(self, event) -> None:
        rid = getattr(event, "request_id", None)
        if rid is not None:
            self._resolve(Reply(rid, 500, {"error": "internal", "message": "the terminal could "
                                           "not handle this request; it has recovered"}))

    def _refresh_health(self) -> None:
        if self.health_source is None:
            return
        t = self.clock.mono_ms()
        if t < self._next_health:
            return
        self._next_health = t + 2000
        try:
            values = self.health_source()
        except Exception:
            log.exception("health source failed")
            return
        if values != self._last_health:
            self._last_health = values
            self._step(flow.Health(values))

    def _draw(self) -> None:
        state = self.state
        if state is self._drawn:
            return
        self._drawn = state
        try:
            if isinstance(state.screen, flow.Testing):  # a technician's test (pingjia test)
                from terminal.screens.gallery import render_test
                image = render_test(state, self.display.size, self.display.mode, self.render)
            else:
                image = self.render(state, self.display.size, self.display.mode)
        except Exception:
            self.stats["faults"] += 1
            log.exception("render failed")
            if self.render_fault is None:
                return
            image = self.render_fault(self.display.size, self.display.mode, "显示异常 render error")
        try:
            self.display.show(image)
            self.stats["frames"] += 1
        except Exception:
            log.exception("display failed")
        lit = flow.leds(state)
        if lit != self._last_lit:
            try:
                self.set_leds(lit)
                self._last_lit = lit
            except Exception:
                log.exception("LEDs failed")
