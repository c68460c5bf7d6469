"""The terminal's imperative shell: one thread owns the flow state and drains one queue.

Button callbacks, the local API and the card reader only `post` events. This loop runs
`step`, carries out the effects in order (the store commit first, so the thanks screen
can only follow a durable record), then draws the screen and sets the LEDs from the new
state. An exception anywhere in a step is caught: the failsafe screen shows, the event
is dropped, the previous state goes on.

Storing is one commit per step: the records the step ends with and the visit it opens
(`Open`), all or nothing. Any exception while storing is a storage failure, never the
end of the process: the disk reserve (terminal/reserve.py) is released and the commit
tried once more; if it still fails, records are held in memory and retried, and a step
that opened a visit did not happen (an invitation is answered 503). Drawing, LEDs and
sound failing are logged and counted; the ratings go on.
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
from terminal.flow import Append, Open, Reply, Sound, Stored, StoreFailed, Tick
from terminal.store import StorageError

log = logging.getLogger("pingjia.terminal")

REPLY_TIMEOUT_S = 3.0
IDLE_WAIT_S = 30.0            # the longest sleep of the loop when nothing is due (no watchdog)
STORAGE_CHECK_MS = 5_000      # while storage fails: how often the store is probed again
RESERVE_CHECK_MS = 30_000     # otherwise: how often the disk reserve is looked at
NO_RESERVE = ("the disk is full: the reserve kept for records already promised is in use; "
              "free space in the data directory")


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
                 lookup: Optional[Callable[[flow.StartLookup], None]] = None, reserve=None):
        self.store = store
        self.reserve = reserve   # terminal.reserve.Reserve, or None (no full-disk reserve)
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
        # told after every step: (state before, state after, its record drafts, stored?);
        # they run on this thread, so they must not wait (terminal/hub.py)
        self.watchers: list[Callable] = []
        # told at the end of every turn, once its frame is on the panel (or none was due)
        self.after_frame: list[Callable[[], None]] = []
        self.stats = {"events": 0, "faults": 0, "frames": 0, "stored": 0, "store_failures": 0,
                      "effect_failures": 0}
        self._replies: dict[int, Future] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._followups: deque = deque()
        self._last_lit = None
        self._drawn = None
        self._last_health = None
        self._next_health = 0
        self._next_storage_check = 0
        self._recovered = False
        self._last_store_error = ""

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

    def recover(self) -> None:
        """At start, before the API serves: the records of visits a crash, a power cut or
        a stop left open (`interrupted`), then whether the store takes writes at all (a
        full disk shows the storage error from the first frame)."""
        if self._recovered:
            return
        self._recovered = True
        if self.reserve is not None:
            self.reserve.ensure()
        try:
            drafts = tuple(self.store.interrupted())
        except Exception as exc:
            log.error("cannot read the visits left open: %s", exc)
            drafts = ()
        if drafts:
            log.warning("%d record(s) of visits left open by a crash or a stop: stored as "
                        "interrupted", len(drafts))
            self._store_drafts(drafts, ())
        else:
            try:
                self.store.probe()
            except Exception as exc:
                self._store_failed((), exc)
        self._drain()

    def shutdown(self) -> None:
        """A clean stop, on the event thread once the loop has ended: the open visit ends
        as `interrupted` and what is held in memory is tried once more (with the reserve
        released if need be). What still cannot be stored keeps its visit open in the
        store, so the next start records it as interrupted."""
        try:
            self.handle(flow.Shutdown())
        except Exception:
            log.exception("the stop could not store the open visit")
        left = len(self.state.pending)
        if left:
            log.error("stopping with %d record(s) not stored; their visits end as "
                      "interrupted at the next start", left)

    def start(self) -> None:
        """Records of interrupted visits, then the first frame."""
        self.recover()
        self._end_turn()

    def run(self, stop: threading.Event, on_turn: Optional[Callable[[], None]] = None) -> None:
        """Draw the first frame, then handle events until `stop` (post any event after
        setting it, so that the loop sees it at once). `on_turn()` runs on this thread
        right after the first frame and after every turn: the systemd watchdog ping,
        which therefore stops when the loop is stuck. Between events the loop sleeps
        until the next deadline (a timeout, a page turn, the health refresh, a panel to
        try again), never longer than `on_turn.interval_s` (from the watchdog's period)."""
        self.start()
        if on_turn is not None:
            on_turn()  # READY=1: the first frame is drawn
        cap = getattr(on_turn, "interval_s", None) or IDLE_WAIT_S
        while not stop.is_set():
            try:
                self.run_once(max_wait_s=cap)
            except Exception:  # nothing may end the loop: the ratings go on
                self.stats["faults"] += 1
                log.exception("the event loop's turn failed")
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
        """Seconds until something is due: the flow's next deadline, the shell's own
        timers (health refresh, storage check, a panel's retry), at most `cap`."""
        t = self.clock.mono_ms()
        due = [flow.next_deadline(self.state)]
        if self.health_source is not None:
            due.append(self._next_health)
        if not self.state.pending and (self.reserve is not None or self.state.storage_error):
            due.append(self._next_storage_check)  # (as _check_storage decides)
        retry_in = getattr(self.display, "retry_in", None)  # a panel that is away
        in_s = retry_in() if retry_in is not None else None
        if in_s is not None:
            due.append(t + in_s * 1000)
        soonest = min((d for d in due if d is not None), default=None)
        if soonest is None:
            return cap
        return max(0.0, min(cap, (soonest - t) / 1000))

    def handle(self, event) -> None:
        """One event, its effects, and whatever they lead to; then the screen and LEDs."""
        self._followups.append(event)
        self._drain()
        self._check_storage()
        self._drain()
        self._refresh_health()
        self._end_turn()

    def _end_turn(self) -> None:
        """The screen and LEDs, then whoever waits for the frame to be out."""
        self._draw()
        for hook in self.after_frame:
            try:
                hook()
            except Exception:
                log.exception("after-frame hook failed")

    def _drain(self) -> None:
        while self._followups:
            event = self._followups.popleft()
            try:
                self._step(event)
            except Exception as exc:  # failsafe: a bug in the shell must not end the loop
                self.stats["faults"] += 1
                log.exception("handling %s failed", type(event).__name__)
                self.state = flow.fail(self.state, self.clock.now(), type(exc).__name__)
                self._answer_failed(event)

    def _step(self, event) -> None:
        self.stats["events"] += 1
        if isinstance(event, flow.LookupDone):
            event = self._lookup_facts(event)
        if isinstance(event, flow.Invite):
            try:
                event = self._with_store_facts(event)
            except Exception as exc:
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
        # visit open finds it in the store, never in neither place. A visit the step
        # opens is committed with them, before any answer: a 201 is always durable.
        drafts = tuple(d for e in effects if isinstance(e, Append) for d in e.drafts)
        opened = next((e.drafts for e in effects if isinstance(e, Open)), ())
        stored = True
        if drafts or opened:
            stored = self._store_drafts(drafts, opened, undo_on_failure=bool(opened))
            if not stored and opened:
                self._undone(event)
                return
        before, self.state = self.state, state
        self._tell_watchers(before, state, drafts, stored)
        for effect in effects:
            if not isinstance(effect, (Append, Open)):
                self._apply(effect)

    def _tell_watchers(self, before, after, drafts: tuple, stored: bool) -> None:
        for watcher in self.watchers:
            try:
                watcher(before, after, drafts, stored)
            except Exception:
                log.exception("step watcher failed")

    def _undone(self, event) -> None:
        """A step that opened a visit could not be stored: it did not happen."""
        rid = getattr(event, "request_id", None)
        error = self._last_store_error
        if rid is not None:
            self._resolve(Reply(rid, 503, {"error": "storage_failed",
                                           "message": "the device cannot store this invitation, "
                                           "so it is not open: " + error}))
        else:  # a kiosk choice: say so on the screen
            self._followups.append(StoreFailed((), error))

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
        except Exception as exc:
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
        # (Append and Open are stored by the step itself, before any other effect)
        if isinstance(effect, flow.StartLookup):
            self._start_lookup(effect)
        elif isinstance(effect, Reply):
            self._resolve(effect)
        elif isinstance(effect, Sound):
            if self.sound is not None:
                try:
                    self.sound.play(effect.name)
                except Exception:
                    self.stats["effect_failures"] += 1
                    log.exception("sound failed")
        else:
            log.error("unknown effect %r", effect)

    def _store_drafts(self, drafts: tuple, opened: tuple, undo_on_failure: bool = False) -> bool:
        """Commit; on failure release the reserve and try once more. False when it failed
        (the drafts are then held by a StoreFailed, unless the step is to be undone)."""
        try:
            stored = self._commit(drafts, opened)
        except Exception as exc:
            if not undo_on_failure:
                self._store_failed(drafts, exc)
            else:
                self.stats["store_failures"] += 1
                self._last_store_error = _why(exc)
                log.error("storage failed: %s", self._last_store_error)
            return False
        self.stats["stored"] += len(stored)
        for record in stored:
            log.info("stored seq=%s kind=%s level=%s visit=%s", record["seq"], record["kind"],
                     record["level"], record["visit_id"])
        if stored:
            self._followups.append(Stored(len(stored)))
            for listener in self.listeners:
                try:
                    listener(stored)
                except Exception:
                    log.exception("record listener failed")
        return True

    def _commit(self, drafts: tuple, opened: tuple) -> list:
        try:
            return self.store.commit(drafts, opened)
        except Exception as exc:
            if self.reserve is None or not self.reserve.release():
                raise
            log.error("storage failed (%s); trying again in the reserve's space", _why(exc))
        return self.store.commit(drafts, opened)

    def _store_failed(self, drafts: tuple, exc: BaseException) -> None:
        self.stats["store_failures"] += 1
        self._last_store_error = _why(exc)
        if isinstance(exc, StorageError):
            log.error("storage failed: %s", exc)
        else:  # not the disk: a bug or a record that cannot be stored; keep the trace
            log.exception("storage failed")
        self._followups.append(StoreFailed(tuple(drafts), self._last_store_error))

    def _check_storage(self) -> None:
        """While nothing is held (the flow retries what it holds by itself): is the disk
        reserve in place, and does a failing store take writes again?"""
        state = self.state
        if state.pending or (self.reserve is None and not state.storage_error):
            return
        t = self.clock.mono_ms()
        if t < self._next_storage_check:
            return
        failing = bool(state.storage_error)
        self._next_storage_check = t + (STORAGE_CHECK_MS if failing or self.reserve is None
                                        or not self.reserve.in_place() else RESERVE_CHECK_MS)
        if self.reserve is not None and not self.reserve.ensure():
            if not failing and flow.open_visit(state) is None:
                # (the person at the counter may still rate: the reserve has room for it)
                log.error("%s", NO_RESERVE)
                self._followups.append(StoreFailed((), NO_RESERVE))
            return
        if failing:
            try:
                self.store.probe()
            except Exception as exc:
                log.debug("the store still fails: %s", exc)
                return
            log.warning("the store takes writes again")
            self._followups.append(Stored(0))

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
            retry = getattr(self.display, "retry", None)  # a panel that was away or failed
            if retry is not None:
                try:
                    retry()
                except Exception:
                    log.exception("display failed")
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
            self.stats["effect_failures"] += 1
            log.exception("display failed")
        lit = flow.leds(state)
        if lit != self._last_lit:
            try:
                self.set_leds(lit)
                self._last_lit = lit
            except Exception:
                self.stats["effect_failures"] += 1
                log.exception("LEDs failed")


def _why(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
    return text[:200] or type(exc).__name__
