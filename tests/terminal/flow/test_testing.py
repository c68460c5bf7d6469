"""A technician's hardware test as the pure flow runs it (terminal/flow/testing.py): it
starts only on an idle screen, refuses invitations while it runs, shows every display
frame once, counts button presses and ends by itself, on a hold or on StopTest."""
from __future__ import annotations

from terminal import flow
from terminal.flow import testing
from tests.terminal.flowkit import Flow


def start(f: Flow, kind="display", duration_ms=10_000, frames=3, step_ms=1_000):
    return f.request(lambda rid: flow.StartTest(kind, duration_ms, frames, step_ms, rid))


def test_a_test_starts_only_on_an_idle_screen():
    f = Flow()
    f.invite()
    reply = start(f)
    assert reply.status == 409 and reply.body["error"] == "busy"
    assert f.screen == "Invited"
    f.press(5)                              # thanked: still busy
    assert start(f).status == 409
    f.advance(f.state.config.thanks_ms)
    assert start(f).status == 201 and f.screen == "Testing"


def test_an_unknown_test_is_refused():
    reply = start(Flow(), kind="sound")
    assert reply.status == 400 and reply.body["field"] == "kind"


def test_an_invitation_during_a_test_is_refused():
    f = Flow()
    start(f)
    reply = f.invite()
    assert reply.status == 409 and reply.body["error"] == "testing"
    assert f.records == []


def test_the_display_test_shows_each_frame_then_ends():
    f = Flow()
    start(f, frames=3, step_ms=1_000)
    lit = [flow.leds(f.state)]
    f.press(5)                              # a press: the next frame at once
    assert f.state.screen.frame == 1
    lit.append(flow.leds(f.state))
    f.advance(1_000)
    assert f.state.screen.frame == 2
    assert lit == [frozenset({5}), frozenset({4})]   # the LEDs light one after the other
    f.advance(1_000)
    assert f.screen == "Idle"
    assert f.state.last_test["state"] == "done" and f.state.last_test["frame"] == 3


def test_a_hold_ends_the_display_test():
    f = Flow()
    start(f)
    f.send(flow.Hold(3))
    assert f.screen == "Idle" and f.state.last_test["state"] == "stopped"


def test_the_button_test_names_the_presses_and_ends_after_its_time():
    f = Flow()
    start(f, kind="buttons", duration_ms=30_000)
    f.press(3)
    f.send(flow.Hold(1))
    progress = testing.progress(f.state, f.clock.mono_ms())
    assert progress["presses"] == [{"button": 3, "kind": "press"}, {"button": 1, "kind": "hold"}]
    assert progress["buttons_seen"] == [3, 1] and progress["state"] == "running"
    assert flow.leds(f.state) == frozenset({1})
    f.advance(30_000)
    assert f.screen == "Idle" and f.state.last_test["state"] == "done"


def test_stop_ends_a_running_test_and_only_that():
    f = Flow()
    assert f.request(lambda rid: flow.StopTest(rid)).status == 404
    start(f, kind="buttons")
    reply = f.request(lambda rid: flow.StopTest(rid))
    assert reply.status == 200 and reply.body["state"] == "stopped"
    assert testing.progress(f.state, f.clock.mono_ms()) == reply.body
