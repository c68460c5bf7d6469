"""Buttons and LEDs: the pure press detector, the gpiozero panel on mock pins, pin factories."""
import importlib.util
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from gpiozero.pins.pi import PiFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import ButtonSettings
from drivers.buttons import ButtonPanel, PressDetector
from drivers.pins import HardwareError, make_pin_factory

BOUNCE, MIN, HOLD = 20, 30, 2000


class FakeClock:
    def __init__(self, now=1000):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, ms):
        self.now += ms


def detector():
    return PressDetector(BOUNCE, MIN, HOLD)


def feed(det, edges, button=1):
    """Feed (down, t) edges; return the (kind, t) events reported."""
    out = []
    for down, t in edges:
        kind = det.edge(button, down, t)
        if kind:
            out.append((kind, t))
    return out


# --- PressDetector ------------------------------------------------------------------

def test_clean_press_reports_press_on_release():
    det = detector()
    assert det.edge(1, True, 0) is None
    assert det.is_down(1)
    assert det.edge(1, False, 120) == "press"
    assert not det.is_down(1)


def test_long_press_is_a_hold_not_dropped():
    assert feed(detector(), [(True, 0), (False, 2500)]) == [("hold", 2500)]


def test_thresholds_are_inclusive():
    assert feed(detector(), [(True, 0), (False, MIN)]) == [("press", MIN)]
    assert feed(detector(), [(True, 0), (False, HOLD)]) == [("hold", HOLD)]
    assert feed(detector(), [(True, 0), (False, MIN - 1)]) == []


def test_noise_spike_is_not_a_press():
    assert feed(detector(), [(True, 0), (False, 3), (True, 500), (False, 505)]) == []


def test_bounce_train_on_contact_and_release_gives_one_press():
    edges = [(True, 0), (False, 2), (True, 3), (False, 7), (True, 9),     # closing bounce
             (False, 200), (True, 201), (False, 204), (True, 206), (False, 211)]  # opening
    assert feed(detector(), edges) == [("press", 200)]


def test_edges_after_the_bounce_window_count_again():
    edges = [(True, 0), (False, 100), (True, 100 + BOUNCE), (False, 300)]
    assert feed(detector(), edges) == [("press", 100), ("press", 300)]


def test_repeated_release_is_ignored():
    assert feed(detector(), [(True, 0), (False, 100), (False, 150), (False, 400)]) == [("press", 100)]


def test_release_without_down_is_ignored():
    assert feed(detector(), [(False, 10), (False, 900)]) == []


def test_missed_release_does_not_leave_button_down():
    # The release of the first press was lost: the next down restarts the contact, so
    # the second press is a press (not a 5-second hold) and the button is not stuck.
    det = detector()
    assert feed(det, [(True, 0), (True, 5000), (False, 5100)]) == [("press", 5100)]
    assert not det.is_down(1)


def test_buttons_are_independent():
    det = detector()
    det.edge(1, True, 0)
    det.edge(2, True, 10)
    assert det.edge(1, False, 100) == "press"
    # button 2 is not inside button 1's bounce window
    assert det.edge(2, False, 105) == "press"


def test_rejects_inconsistent_thresholds():
    with pytest.raises(ValueError):
        PressDetector(20, 3000, 2000)


# --- PressDetector properties ---------------------------------------------------------

raw_edges = st.lists(st.tuples(st.integers(1, 3), st.booleans(), st.integers(0, 3000)),
                     max_size=60)


@settings(max_examples=300, deadline=None)
@given(raw_edges)
def test_random_edges_never_raise_and_need_a_down_edge(edges):
    det = detector()
    t = 0
    down_since_event = {}
    for button, down, gap in edges:
        t += gap
        kind = det.edge(button, down, t)
        assert kind in (None, "press", "hold")
        if down:
            down_since_event[button] = True
        elif kind:
            assert down_since_event.pop(button, False), "event without a preceding down edge"


spike = st.integers(1, 5)


@st.composite
def physical_presses(draw):
    """Edges of clean presses with contact bounce; returns (edges, expected kinds)."""
    edges, expected, t = [], [], 0
    for _ in range(draw(st.integers(1, 8))):
        t += BOUNCE + 1 + draw(st.integers(0, 3000))
        for _ in range(draw(st.integers(0, 3))):       # closing bounce: short contacts
            edges += [(True, t), (False, t + draw(spike))]
            t = edges[-1][1] + draw(spike)
        held = draw(st.one_of(st.integers(MIN, HOLD - 1), st.integers(HOLD, 3 * HOLD)))
        edges += [(True, t), (False, t + held)]
        t += held
        expected.append("hold" if held >= HOLD else "press")
        release, budget = t, BOUNCE - 1                 # opening bounce inside the window
        while budget > 2 and draw(st.booleans()):
            up_gap, down_len = draw(spike), draw(spike)
            if up_gap + down_len >= budget:
                break
            edges += [(True, t + up_gap), (False, t + up_gap + down_len)]
            t += up_gap + down_len
            budget -= up_gap + down_len
        t = max(t, release)
    return edges, expected


@settings(max_examples=300, deadline=None)
@given(physical_presses())
def test_each_physical_press_is_reported_exactly_once(case):
    edges, expected = case
    assert [kind for kind, _ in feed(detector(), edges)] == expected


@settings(max_examples=200, deadline=None)
@given(raw_edges)
def test_never_stuck_a_clean_press_after_any_history_is_seen(edges):
    det = detector()
    t = 0
    for button, down, gap in edges:
        t += gap
        det.edge(button, down, t)
    t += BOUNCE + 1
    for button in (1, 2, 3):
        assert det.edge(button, True, t) is None
        assert det.edge(button, False, t + 100) == "press"


# --- ButtonPanel on mock pins ---------------------------------------------------------

@pytest.fixture
def cfg():
    return ButtonSettings(pin_factory="mock")


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def events():
    return []


@pytest.fixture
def panel(mock_factory, cfg, clock, events):
    with ButtonPanel(cfg, lambda kind, level: events.append((kind, level)), clock,
                     mock_factory) as p:
        yield p


def press(factory, gpio, clock, ms):
    pin = factory.pin(gpio)
    pin.drive_low()
    clock.advance(ms)
    pin.drive_high()


def test_panel_reports_press_with_level(panel, mock_factory, cfg, clock, events):
    press(mock_factory, cfg.pins[4], clock, 150)
    assert events == [("press", 4)]


def test_panel_reports_hold(panel, mock_factory, cfg, clock, events):
    press(mock_factory, cfg.pins[2], clock, cfg.hold_ms + 500)
    assert events == [("hold", 2)]


def test_panel_ignores_noise_spike(panel, mock_factory, cfg, clock, events):
    press(mock_factory, cfg.pins[1], clock, 2)
    assert events == []
    assert panel.health()["events"] == 0


def test_panel_debounces_bounce_trains(panel, mock_factory, cfg, clock, events):
    pin = mock_factory.pin(cfg.pins[5])
    for ms in (1, 3, 2, 5):                      # closing bounce
        pin.drive_low()
        clock.advance(ms)
        pin.drive_high()
        clock.advance(2)
    pin.drive_low()
    clock.advance(300)
    for ms in (1, 4, 2):                         # opening bounce
        pin.drive_high()
        clock.advance(ms)
        pin.drive_low()
        clock.advance(1)
    pin.drive_high()
    assert events == [("press", 5)]


def test_panel_pull_down_wiring(mock_factory, clock, events):
    cfg = ButtonSettings(pin_factory="mock", pull_up=False)
    with ButtonPanel(cfg, lambda k, lvl: events.append((k, lvl)), clock, mock_factory):
        pin = mock_factory.pin(cfg.pins[3])
        pin.drive_high()
        clock.advance(100)
        pin.drive_low()
    assert events == [("press", 3)]


def test_leds_follow_set_leds(panel, mock_factory, cfg):
    states = lambda: {lvl: mock_factory.pin(g).state for lvl, g in cfg.leds.items()}
    assert set(states().values()) == {0}
    panel.set_leds(frozenset({5, 3}))
    assert states() == {5: 1, 4: 0, 3: 1, 2: 0, 1: 0}
    panel.set_leds(frozenset({3}))
    assert states() == {5: 0, 4: 0, 3: 1, 2: 0, 1: 0}
    assert panel.health()["lit"] == [3]


def test_set_leds_only_touches_changed_leds(panel, mock_factory, cfg):
    panel.set_leds(frozenset({1, 2}))
    for gpio in cfg.leds.values():
        mock_factory.pin(gpio).clear_states()
    panel.set_leds(frozenset({1, 2}))
    panel.set_leds(frozenset({2}))
    changes = {lvl: len(mock_factory.pin(g).states) - 1 for lvl, g in cfg.leds.items()}
    assert changes == {5: 0, 4: 0, 3: 0, 2: 0, 1: 1}


def test_set_leds_rejects_unknown_level(panel):
    with pytest.raises(ValueError):
        panel.set_leds(frozenset({6}))


def test_active_low_leds(mock_factory, clock):
    cfg = ButtonSettings(pin_factory="mock", led_active_high=False)
    with ButtonPanel(cfg, lambda *a: None, clock, mock_factory) as p:
        assert mock_factory.pin(cfg.leds[4]).state == 1   # off = high
        p.set_leds(frozenset({4}))
        assert mock_factory.pin(cfg.leds[4]).state == 0


def test_failing_handler_does_not_break_input(mock_factory, cfg, clock):
    seen = []

    def handler(kind, level):
        seen.append(level)
        if len(seen) == 1:
            raise RuntimeError("queue full")

    with ButtonPanel(cfg, handler, clock, mock_factory) as p:
        press(mock_factory, cfg.pins[5], clock, 100)
        clock.advance(100)
        press(mock_factory, cfg.pins[4], clock, 100)
        assert seen == [5, 4]
        assert p.health()["callback_errors"] == 1


def test_close_is_idempotent_and_releases_pins(mock_factory, cfg, clock, events):
    first = ButtonPanel(cfg, lambda k, lvl: events.append(("first", lvl)), clock, mock_factory)
    first.close()
    first.close()
    assert first.closed and first.health()["closed"]
    second = ButtonPanel(cfg, lambda k, lvl: events.append(("second", lvl)), clock, mock_factory)
    try:
        press(mock_factory, cfg.pins[3], clock, 100)
        second.set_leds(frozenset({3}))
        assert mock_factory.pin(cfg.leds[3]).state == 1
    finally:
        second.close()
    assert events == [("second", 3)]


def test_pin_already_in_use_fails_and_releases_the_rest(mock_factory, cfg, clock):
    from gpiozero import LED
    squatter = LED(cfg.leds[1], pin_factory=mock_factory)   # last device the panel opens
    with pytest.raises(Exception, match="in use"):
        ButtonPanel(cfg, lambda *a: None, clock, mock_factory)
    squatter.close()
    with ButtonPanel(cfg, lambda *a: None, clock, mock_factory) as p:
        assert not p.closed


def test_health_reports_wiring_and_pressed_keys(panel, mock_factory, cfg):
    mock_factory.pin(cfg.pins[2]).drive_low()
    h = panel.health()
    assert h["pin_factory"] == "MockFactory"
    assert h["buttons"][2] == f"GPIO{cfg.pins[2]}"
    assert h["pressed_now"] == [2]
    mock_factory.pin(cfg.pins[2]).drive_high()


def test_simulate_presses_with_real_time(mock_factory, events):
    cfg = ButtonSettings(pin_factory="mock", hold_ms=500)
    clock_ms = lambda: int(time.monotonic() * 1000)
    with ButtonPanel(cfg, lambda k, lvl: events.append((k, lvl)), clock_ms, mock_factory) as p:
        p.simulate(3)
        p.simulate(1, duration_ms=cfg.hold_ms + 20)
        time.sleep((cfg.bounce_ms + 5) / 1000)
        p.simulate(1, hold=True)
    assert events == [("press", 3), ("hold", 1), ("hold", 1)]


def test_simulate_refuses_real_hardware(cfg, clock):
    class BoardFactory(PiFactory):        # stands in for a real board's factory
        def __init__(self):
            super().__init__()
            self.pin_class = MockPin

        def _get_revision(self):
            return 0xa02082

        ticks = staticmethod(time.monotonic)
        ticks_diff = staticmethod(lambda later, earlier: later - earlier)

    factory = BoardFactory()
    with ButtonPanel(cfg, lambda *a: None, clock, factory) as p:
        with pytest.raises(RuntimeError, match="real GPIO"):
            p.simulate(5)
    factory.close()


def test_simulate_after_close_raises(mock_factory, cfg, clock):
    p = ButtonPanel(cfg, lambda *a: None, clock, mock_factory)
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.simulate(5)


# --- pin factories --------------------------------------------------------------------

def test_mock_factory_has_pwm_pins():
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
        assert factory.pin_class is MockPWMPin
    finally:
        factory.close()


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio installed")
def test_missing_lgpio_is_a_clear_error_not_a_fallback():
    with pytest.raises(HardwareError, match="python3-lgpio"):
        make_pin_factory("lgpio")


def test_unknown_factory_name():
    with pytest.raises(ValueError, match="unknown pin factory"):
        make_pin_factory("gpiod")


def test_settings_default_factory_is_real_hardware():
    # The default must never be the simulation; "mock" is only chosen on purpose.
    assert ButtonSettings().pin_factory == "lgpio"
