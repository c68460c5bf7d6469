"""A technician's hardware test, as part of the flow (`pingjia test display|buttons`).

The test is a screen like any other, so the event thread alone draws and lights LEDs:
the API only posts StartTest / StopTest and reads the state.

- display: the test patterns, then every screen of the gallery, one frame every
  `step_ms`; a press shows the next frame at once, a hold ends the test. The LEDs light
  one after the other, so they are checked too.
- buttons: the screen names the button last pressed (press or hold) and its LED lights;
  the test ends after its time or on StopTest.

A test only starts on an idle screen: nobody is cut off while rating, and an invitation
during a test is refused (409 `testing`).
"""
from __future__ import annotations

from dataclasses import replace

from terminal.clock import Now
from terminal.flow.moves import error, go, reply
from terminal.flow.model import (Hold, Idle, Info, Press, StartTest, State, StopTest,
                                 Testing, Tick)

KINDS = ("display", "buttons")
MAX_PRESSES = 20


def progress(state: State, mono_ms: int) -> dict:
    """What GET /v1/test says: the running test, else how the last one ended, else {}."""
    screen = state.screen
    if not isinstance(screen, Testing):
        return dict(state.last_test)
    return {**_summary(screen), "state": "running",
            "remaining_s": max(0, (screen.ends - mono_ms + 999) // 1000)}


def _summary(screen: Testing) -> dict:
    seen = sorted({b for b, _ in screen.presses}, reverse=True)
    out = {"kind": screen.kind, "started_at": screen.started_at,
           "presses": [{"button": b, "kind": k} for b, k in screen.presses],
           "buttons_seen": seen}
    if screen.kind == "display":
        out.update(frame=min(screen.frame + 1, screen.frames), frames=screen.frames)
    return out


def leds(screen: Testing, order) -> frozenset:
    if screen.kind == "display":
        return frozenset({order[screen.frame % len(order)]})
    return frozenset({screen.presses[-1][0]}) if screen.presses else frozenset()


def _deadline(screen: Testing, frame_start: int) -> int:
    if screen.kind == "display" and screen.step_ms:
        return min(screen.ends, frame_start + screen.step_ms)
    return screen.ends


def _start(state: State, ev: StartTest, now: Now):
    if not isinstance(state.screen, (Idle, Info, Testing)):
        return state, (error(ev.request_id, 409, "busy",
                                     "the device is in use (someone is rating); start the test "
                                     "when the screen is idle"),)
    if ev.kind not in KINDS:
        return state, (error(ev.request_id, 400, "invalid_request",
                                     f"unknown test {ev.kind!r}", field="kind"),)
    t = now.mono_ms
    screen = Testing(kind=ev.kind, ends=t + ev.duration_ms, deadline=0,
                     frames=ev.frames if ev.kind == "display" else 0,
                     step_ms=ev.step_ms if ev.kind == "display" else 0, started_at=now.iso())
    screen = replace(screen, deadline=_deadline(screen, t))
    state = go(state, screen, now)
    return state, (reply(ev.request_id, 201, progress(state, t)),)


def _end(state: State, screen: Testing, how: str, now: Now) -> State:
    summary = {**_summary(screen), "state": how}
    return replace(go(state, Idle(), now), last_test=summary)


def _stop(state: State, ev: StopTest, now: Now):
    screen = state.screen
    if not isinstance(screen, Testing):
        return state, (error(ev.request_id, 404, "no_test", "no test is running"),)
    state = _end(state, screen, "stopped", now)
    return state, (reply(ev.request_id, 200, dict(state.last_test)),)


def _next_frame(state: State, screen: Testing, now: Now) -> State:
    screen = replace(screen, frame=screen.frame + 1)
    if screen.frame >= screen.frames:
        return _end(state, screen, "done", now)
    return replace(state, screen=replace(screen, deadline=_deadline(screen, now.mono_ms)))


def handlers(base: dict) -> dict:
    """The test's handlers; presses and ticks on other screens go to `base`'s."""
    press, tick = base[Press], base[Tick]

    def on_press(state: State, ev, now: Now):
        screen = state.screen
        if not isinstance(screen, Testing) or ev.button not in state.config.order:
            return press(state, ev, now)
        held = isinstance(ev, Hold)
        if screen.kind == "display":
            if held:
                return _end(state, screen, "stopped", now), ()
            return _next_frame(state, screen, now), ()
        presses = (screen.presses + ((ev.button, "hold" if held else "press"),))[-MAX_PRESSES:]
        return replace(state, screen=replace(screen, presses=presses)), ()

    def on_tick(state: State, ev: Tick, now: Now):
        state, effects = tick(state, ev, now)  # storage retries, hints, pages go on
        screen = state.screen
        if not isinstance(screen, Testing):
            return state, effects
        t = now.mono_ms
        if screen.kind == "display":
            # every frame is shown once, even when a busy loop ticks late: past the end the
            # remaining frames follow one a tick, and the last one ends the test
            if t >= screen.deadline:
                return _next_frame(state, screen, now), effects
            return state, effects
        if t >= screen.ends:
            return _end(state, screen, "done", now), effects
        return state, effects

    return {StartTest: _start, StopTest: _stop, Press: on_press, Hold: on_press, Tick: on_tick}
