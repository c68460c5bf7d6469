"""Rating buttons and their LEDs.

`PressDetector` turns raw edges with timestamps into "press" and "hold" events; it is
pure (no threads, no timers) so bounce and long-press handling is tested with a fake
clock. `ButtonPanel` owns the gpiozero devices: their callbacks only feed the detector
and hand each event to `on_event`, which should put it on the event queue.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Callable, Hashable

from gpiozero import LED, Button
from gpiozero.pins.mock import MockFactory

log = logging.getLogger(__name__)

__all__ = ["PressDetector", "ButtonPanel"]


class PressDetector:
    """Edges in, "press"/"hold" out, decided on release.

    Acting on release (never while the button is down) means a long, hard press by an
    elderly person still gives exactly one event: "hold" rather than nothing. Contacts
    shorter than `min_press_ms` are noise; edges within `bounce_ms` after an accepted
    release are the contacts bouncing apart. A down edge while already down restarts the
    contact, so a missed release can never leave a button down for good.
    """

    def __init__(self, bounce_ms: int, min_press_ms: int, hold_ms: int):
        if not 0 <= min_press_ms < hold_ms or bounce_ms < 0:
            raise ValueError("need 0 <= min_press_ms < hold_ms and bounce_ms >= 0")
        self.bounce_ms = bounce_ms
        self.min_press_ms = min_press_ms
        self.hold_ms = hold_ms
        self._down_at: dict[Hashable, int] = {}
        self._quiet_until: dict[Hashable, int] = {}

    def edge(self, button: Hashable, down: bool, t_ms: int) -> str | None:
        if t_ms < self._quiet_until.get(button, t_ms):
            return None
        if down:
            self._down_at[button] = t_ms
            return None
        started = self._down_at.pop(button, None)
        if started is None:
            return None
        held = t_ms - started
        if held < self.min_press_ms:
            return None
        self._quiet_until[button] = t_ms + self.bounce_ms
        return "hold" if held >= self.hold_ms else "press"

    def is_down(self, button: Hashable) -> bool:
        return button in self._down_at


class ButtonPanel:
    """One gpiozero `Button` and one `LED` per rating level."""

    def __init__(self, settings, on_event: Callable[[str, int], None],
                 clock_ms: Callable[[], int], pin_factory):
        self._settings = settings
        self._on_event = on_event
        self._clock_ms = clock_ms
        self._factory = pin_factory
        self._detector = PressDetector(settings.bounce_ms, settings.min_press_ms, settings.hold_ms)
        # gpiozero may call back from its own threads (one per backend or per pin).
        self._lock = threading.Lock()
        self._buttons: dict[int, Button] = {}
        self._leds: dict[int, LED] = {}
        self._lit: frozenset[int] = frozenset()
        self._closed = False
        self._events = 0
        self._last_event: tuple[str, int, int] | None = None
        self._callback_errors = 0
        try:
            for level in settings.order:
                # bounce_time=None: the library's debounce would drop the release edge
                # we act on; PressDetector does the debouncing.
                button = Button(settings.pins[level], pull_up=settings.pull_up,
                                bounce_time=None, pin_factory=pin_factory)
                self._buttons[level] = button
                button.when_pressed = partial(self._edge, level, True)
                button.when_released = partial(self._edge, level, False)
                self._leds[level] = LED(settings.leds[level], active_high=settings.led_active_high,
                                        initial_value=False, pin_factory=pin_factory)
        except BaseException:
            self.close()  # release the pins already claimed, or a retry finds them busy
            raise

    def _edge(self, level: int, down: bool) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                t = self._clock_ms()
                kind = self._detector.edge(level, down, t)
                if kind is None:
                    return
                self._events += 1
                self._last_event = (kind, level, t)
                self._on_event(kind, level)
        except Exception:
            # Raising into a gpiozero callback thread would kill button input for good.
            self._callback_errors += 1
            log.exception("button %s: event handler failed", level)

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

        Uses a real `time.sleep` for the contact time, so it blocks the caller (up to
        hold_ms + 100 ms for a hold) and needs a real `clock_ms`: call it from the
        simulator's keyboard thread, never from the event thread. Mock factory only.
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
            pressed = [] if self._closed else [lvl for lvl, b in self._buttons.items() if b.is_pressed]
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
