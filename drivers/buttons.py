"""Rating buttons and their LEDs.

`PressDetector` turns raw edges with timestamps into "press" and "hold" events; it is
pure (no threads, no timers) so bounce and long-press handling is tested with a fake
clock. `ButtonPanel` owns the gpiozero devices: the pins' edge callbacks feed the
detector with the time of the edge as the GPIO driver stamped it (the kernel's tick for
lgpio), not the time the callback happens to run, and each event goes to `on_event`,
which should put it on the event queue.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Callable, Hashable

from gpiozero import LED, InputDevice
from gpiozero.pins.mock import MockFactory

from drivers.pins import HardwareError, busy_message

log = logging.getLogger(__name__)

__all__ = ["PressDetector", "ButtonPanel"]


class PressDetector:
    """Edges in, "press"/"hold" out, decided after release.

    Acting on release (never while the button is down) means a long, hard press by an
    elderly person still gives exactly one event: "hold" rather than nothing.

    The debounce rule: a release counts only once the contact has stayed open for
    `bounce_ms`. A contact that closes again sooner is the same press going on, so
    chatter inside a hold (down 0, up 1000, down 1001, up 2500) is one hold from 0 to
    2500, never a press at 1000. A press lasts from its first down edge to its last up
    edge; shorter than `min_press_ms` it is noise, from `hold_ms` on it is a hold. The
    event comes from `settle(button)`, which the caller runs once the line has been
    quiet for `bounce_ms` after a release, or from the next down edge that comes later
    than that. A down edge while already down restarts the contact, so a missed
    release can never leave a button down for good.
    """

    def __init__(self, bounce_ms: int, min_press_ms: int, hold_ms: int):
        if not 0 <= min_press_ms < hold_ms or bounce_ms < 0:
            raise ValueError("need 0 <= min_press_ms < hold_ms and bounce_ms >= 0")
        self.bounce_ms = bounce_ms
        self.min_press_ms = min_press_ms
        self.hold_ms = hold_ms
        self._down_at: dict[Hashable, int] = {}
        self._released_at: dict[Hashable, int] = {}  # releases not yet settled

    def edge(self, button: Hashable, down: bool, t_ms: int) -> str | None:
        """Take one edge; the event of an earlier press that this edge settles, if any."""
        released = self._released_at.get(button)
        if down:
            if released is not None and t_ms - released < self.bounce_ms:
                del self._released_at[button]  # contact chatter: the press goes on
                return None
            event = self.settle(button)
            self._down_at[button] = t_ms
            return event
        if button in self._down_at and released is None:
            self._released_at[button] = t_ms
        return None

    def pending(self, button: Hashable) -> int | None:
        """When the release waiting to settle happened (None: nothing waits)."""
        return self._released_at.get(button)

    def settle(self, button: Hashable) -> str | None:
        """The line stayed open for bounce_ms after the release: the press is over."""
        released = self._released_at.pop(button, None)
        if released is None:
            return None
        held = released - self._down_at.pop(button)
        if held < self.min_press_ms:
            return None
        return "hold" if held >= self.hold_ms else "press"

    def is_down(self, button: Hashable) -> bool:
        return button in self._down_at and button not in self._released_at


class ButtonPanel:
    """One gpiozero input and one `LED` per rating level."""

    def __init__(self, settings, on_event: Callable[[str, int], None], pin_factory):
        self._settings = settings
        self._on_event = on_event
        self._factory = pin_factory
        self._detector = PressDetector(settings.bounce_ms, settings.min_press_ms, settings.hold_ms)
        # gpiozero may call back from its own threads (one per backend or per pin).
        self._lock = threading.Lock()
        self._buttons: dict[int, InputDevice] = {}
        self._leds: dict[int, LED] = {}
        self._timers: dict[int, threading.Timer] = {}
        self._handlers: dict[int, Callable] = {}
        self._lit: frozenset[int] = frozenset()
        self._closed = False
        self._events = 0
        self._last_event: tuple[str, int, int] | None = None
        self._callback_errors = 0
        self._last_tick = None  # the driver's time of the last edge, and it in ms
        self._last_ms = 0.0
        claiming = None
        try:
            for level in settings.order:
                # A plain input and the pin's own edge callback, which carries the time
                # of the edge. No library debounce (it would drop the release edge we
                # act on): PressDetector does the debouncing.
                claiming = (f"buttons.pins.{level}", settings.pins[level])
                button = InputDevice(settings.pins[level], pull_up=settings.pull_up,
                                     pin_factory=pin_factory)
                self._buttons[level] = button
                button.pin.edges = "both"
                # gpiozero holds the callback weakly: the panel keeps it alive
                self._handlers[level] = partial(self._edge, level)
                button.pin.when_changed = self._handlers[level]
                claiming = (f"buttons.leds.{level}", settings.leds[level])
                self._leds[level] = LED(settings.leds[level], active_high=settings.led_active_high,
                                        initial_value=False, pin_factory=pin_factory)
        except BaseException as exc:
            self.close()  # release the pins already claimed, or a retry finds them busy
            busy = busy_message(*claiming, exc) if claiming and isinstance(exc, Exception) else None
            if busy:
                raise HardwareError(busy) from exc
            raise

    def _ms(self, ticks) -> int:
        """The edge's time in ms on one running count; ticks_diff copes with drivers
        whose ticks wrap (pigpio's 32-bit microseconds)."""
        if self._last_tick is not None:
            self._last_ms += self._factory.ticks_diff(ticks, self._last_tick) * 1000
        self._last_tick = ticks
        return round(self._last_ms)

    def _edge(self, level: int, ticks, state) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                t = self._ms(ticks)
                down = bool(state) != self._settings.pull_up
                self._emit(self._detector.edge(level, down, t), level, t)
                timer = self._timers.pop(level, None)
                if timer is not None:
                    timer.cancel()
                released = self._detector.pending(level)
                if released is not None:
                    # settle once the line has been quiet for bounce_ms
                    timer = threading.Timer(self._settings.bounce_ms / 1000, self._settle,
                                            (level, released))
                    timer.daemon = True
                    self._timers[level] = timer
                    timer.start()
        except Exception:
            # Raising into a gpiozero callback thread would kill button input for good.
            self._callback_errors += 1
            log.exception("button %s: event handler failed", level)

    def _settle(self, level: int, released: int) -> None:
        try:
            with self._lock:
                if self._closed or self._detector.pending(level) != released:
                    return  # a newer edge took over
                self._timers.pop(level, None)
                self._emit(self._detector.settle(level), level, released)
        except Exception:
            self._callback_errors += 1
            log.exception("button %s: event handler failed", level)

    def _emit(self, kind: str | None, level: int, t: int) -> None:
        if kind is None:
            return
        self._events += 1
        self._last_event = (kind, level, t)
        self._on_event(kind, level)

    def set_leds(self, lit: frozenset[int]) -> None:
        lit = frozenset(lit)
        unknown = lit - self._leds.keys()
        if unknown:
            raise ValueError(f"no LED for level(s) {sorted(unknown)}")
        if self._closed:
            return
        for level in lit ^ self._lit:
            self._leds[level].value = level in lit
        self._lit = lit

    def simulate(self, level: int, hold: bool = False, duration_ms: int | None = None) -> None:
        """Press the mock button of `level` for real: drive it, sleep, let go.

        Uses a real `time.sleep` for the contact time (mock pins stamp edges with the
        real monotonic clock), so it blocks the caller (up to hold_ms + 100 ms for a
        hold): call it from the simulator's keyboard thread, never from the event
        thread. The event follows bounce_ms after the release. Mock factory only.
        """
        if not isinstance(self._factory, MockFactory):
            raise RuntimeError("simulate() drives mock pins; this panel uses real GPIO")
        if self._closed:
            raise RuntimeError("button panel is closed")
        if duration_ms is None:
            s = self._settings
            duration_ms = s.hold_ms + 100 if hold else max(80, s.min_press_ms + 50)
        pin = self._buttons[level].pin
        press, release = (pin.drive_low, pin.drive_high) if self._settings.pull_up \
            else (pin.drive_high, pin.drive_low)
        press()
        try:
            time.sleep(duration_ms / 1000)
        finally:
            release()

    def health(self) -> dict:
        with self._lock:
            pressed = [] if self._closed else [lvl for lvl, b in self._buttons.items() if b.is_active]
            return {
                "pin_factory": type(self._factory).__name__,
                "closed": self._closed,
                "buttons": {lvl: f"GPIO{self._settings.pins[lvl]}" for lvl in self._buttons},
                "leds": {lvl: f"GPIO{self._settings.leds[lvl]}" for lvl in self._leds},
                "pressed_now": pressed,  # a level stuck here for minutes is a jammed key
                "lit": sorted(self._lit),
                "events": self._events,
                "last_event": self._last_event,
                "callback_errors": self._callback_errors,
            }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        for device in [*self._buttons.values(), *self._leds.values()]:
            try:
                device.close()
            except Exception:
                log.exception("closing %r failed", device)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
