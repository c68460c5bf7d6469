"""Buttons and LEDs: the pure press detector, the gpiozero panel on mock pins, pin factories."""
import importlib.util
import os
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


def detector():
    return PressDetector(BOUNCE, MIN, HOLD)


def feed(det, edges, button=1):
    """Feed (down, t) edges, settling a release when nothing follows within BOUNCE (as
    the panel's timer does); return the (kind, t of the release) events."""
    out = []
    for i, (down, t) in enumerate(edges):
        released = det.pending(button)
        kind = det.edge(button, down, t)
        if kind:
            out.append((kind, released))
        if det.pending(button) is not None:
            nxt = edges[i + 1][1] if i + 1 < len(edges) else None
            if nxt is None or nxt - t >= BOUNCE:
                kind = det.settle(button)
                if kind:
                    out.append((kind, t))
    return out


# --- PressDetector ------------------------------------------------------------------

def test_clean_press_reports_press_once_the_release_settles():
    det = detector()
    assert det.edge(1, True, 0) is None
    assert det.is_down(1)
    assert det.edge(1, False, 120) is None     # may still be chatter
    assert not det.is_down(1) and det.pending(1) == 120
    assert det.settle(1) == "press"
    assert det.settle(1) is None               # once


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
    assert feed(detector(), edges) == [("press", 211)]


def test_chatter_inside_a_hold_is_one_hold():
    # the case: not a press at 1 s, but one hold from 0 to 2.5 s
    assert feed(detector(), [(True, 0), (False, 1000), (True, 1001), (False, 2500)]) \
        == [("hold", 2500)]


def test_a_down_edge_after_the_bounce_window_settles_the_press_before():
    det = detector()
    det.edge(1, True, 0)
    det.edge(1, False, 100)
    assert det.edge(1, True, 100 + BOUNCE) == "press"   # the timer had not run yet
    det.edge(1, False, 300)
    assert det.settle(1) == "press"


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
    det.edge(1, False, 100)
    det.edge(2, False, 105)      # button 2 is not inside button 1's bounce window
    assert det.settle(1) == "press" and det.settle(2) == "press"


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
        kinds = [det.edge(button, down, t)]
        if gap >= BOUNCE or not down:
            kinds.append(det.settle(button))
        for kind in kinds:
            assert kind in (None, "press", "hold")
            if kind:
                assert down_since_event.pop(button, False), "event without a preceding down edge"
        if down:
            down_since_event[button] = True


spike = st.integers(1, BOUNCE - 1)   # chatter: the contact opens for less than BOUNCE


@st.composite
def chattering_presses(draw):
    """Presses made of contact pieces separated by gaps shorter than BOUNCE."""
    edges, expected, t = [], [], 0
    for _ in range(draw(st.integers(1, 6))):
        t += BOUNCE + draw(st.integers(0, 3000))
        start = t
        pieces = draw(st.integers(1, 5))
        for i in range(pieces):
            edges.append((True, t))
            t += draw(st.integers(1, 1500))
            edges.append((False, t))
            if i < pieces - 1:
                t += draw(spike)
        span = t - start
        if span < MIN:
            expected.append(None)
        else:
            expected.append("hold" if span >= HOLD else "press")
    return edges, [k for k in expected if k]


@settings(max_examples=400, deadline=None)
@given(chattering_presses())
def test_each_physical_press_is_reported_exactly_once_whatever_the_chatter(case):
    edges, expected = case
    assert [kind for kind, _ in feed(detector(), edges)] == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(HOLD, 3 * HOLD), st.lists(st.integers(1, BOUNCE - 1), min_size=1, max_size=6),
       st.data())
def test_chatter_inside_a_hold_never_gives_a_press(total, gaps, data):
    """A hold with the contact opening briefly anywhere inside it stays one hold."""
    cuts = sorted(data.draw(st.lists(st.integers(1, total - 1), min_size=len(gaps),
                                     max_size=len(gaps), unique=True)))
    edges, t = [(True, 0)], 0
    for cut, gap in zip(cuts, gaps):
        if cut <= t + 1 or cut + gap >= total:
            continue
        edges += [(False, cut), (True, cut + gap)]
        t = cut + gap
    edges.append((False, total))
    assert feed(detector(), edges) == [("hold", total)]


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
        det.settle(button)
        assert det.edge(button, True, t) is None
        assert det.edge(button, False, t + 100) is None
        assert det.settle(button) == "press"


# --- ButtonPanel ----------------------------------------------------------------------

@pytest.fixture
def cfg():
    return ButtonSettings(pin_factory="mock")


@pytest.fixture
def events():
    return []


def wait_for(events, n, timeout=2.0):
    """Events come from the settle timer, BOUNCE ms after a release."""
    end = time.monotonic() + timeout
    while len(events) < n and time.monotonic() < end:
        time.sleep(0.005)
    time.sleep(3 * BOUNCE / 1000)  # and nothing more comes
    return events


class Kernel:
    """Edges on the fake lgpio with kernel ticks: the time of the edge, whatever the
    time the callback runs."""

    def __init__(self, fake, start_ns=5_000_000_000_000):
        self.fake = fake
        self.t_ns = start_ns

    def edge(self, gpio, level, at_ms):
        self.fake.drive(gpio, level, self._base + at_ms * 1_000_000)

    def at(self, base_ms=0):
        self._base = self.t_ns + base_ms * 1_000_000
        return self


PI4, PI5 = 0xC03111, 0xC04170


@pytest.fixture
def lgpio_factory(lgpio, monkeypatch):
    fake, backend = lgpio
    import gpiozero.pins.local
    monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", lambda: PI4)
    factory = backend.LGPIOFactory()
    yield fake, factory
    factory.close()


@pytest.fixture
def lgpio_panel(lgpio_factory, cfg, events):
    fake, factory = lgpio_factory
    with ButtonPanel(cfg, lambda kind, level: events.append((kind, level)), factory) as p:
        yield fake, p


def test_lgpio_chip_choice_on_pi4_and_pi5(lgpio, monkeypatch):
    fake, backend = lgpio
    import gpiozero.pins.local
    exists = os.path.exists
    for revision, gpiochip4, chip in ((PI4, False, 0), (PI5, True, 4), (PI5, False, 0)):
        monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", lambda r=revision: r)
        monkeypatch.setattr(os.path, "exists",
                            lambda p, g=gpiochip4: g if p == "/dev/gpiochip4" else exists(p))
        factory = backend.LGPIOFactory()
        monkeypatch.setattr(os.path, "exists", exists)
        try:
            assert factory.chip == chip and fake.opened[-1] == chip
        finally:
            factory.close()


def test_the_real_lgpio_backend_times_presses_by_the_kernel_tick(lgpio_panel, cfg, events):
    fake, panel = lgpio_panel
    k = Kernel(fake).at()
    gpio = cfg.pins[4]
    k.edge(gpio, 0, 0)          # pressed (to ground, pull-up)
    k.edge(gpio, 1, 2500)       # released 2.5 s later by the kernel's clock,
    assert wait_for(events, 1) == [("hold", 4)]   # though the callbacks ran at once
    k.at(10_000).edge(gpio, 0, 0)
    k.edge(gpio, 1, 150)
    assert wait_for(events, 2) == [("hold", 4), ("press", 4)]


def test_chatter_inside_a_hold_on_the_real_backend(lgpio_panel, cfg, events):
    fake, panel = lgpio_panel
    k = Kernel(fake).at()
    gpio = cfg.pins[2]
    for level, at in ((0, 0), (1, 1000), (0, 1001), (1, 2500)):
        k.edge(gpio, level, at)
    assert wait_for(events, 1) == [("hold", 2)]
    assert panel.health()["last_event"][0] == "hold"


def test_the_line_is_claimed_with_the_pull_up_and_both_edges(lgpio_panel, cfg):
    fake, panel = lgpio_panel
    assert panel.health()["pin_factory"] == "LGPIOFactory"
    chip = next(iter(fake._chips.values()))
    line = chip.lines[cfg.pins[5]]
    assert line.mode & fake.SET_PULL_UP
    assert any(cb.gpio == cfg.pins[5] and cb.edges == fake.BOTH_EDGES for cb in chip.callbacks)


def test_a_noise_spike_is_no_press(lgpio_panel, cfg, events):
    fake, panel = lgpio_panel
    k = Kernel(fake).at()
    k.edge(cfg.pins[1], 0, 0)
    k.edge(cfg.pins[1], 1, 2)
    assert wait_for(events, 1, timeout=0.2) == []
    assert panel.health()["events"] == 0


def test_panel_pull_down_wiring(lgpio_factory, events):
    fake, factory = lgpio_factory
    cfg = ButtonSettings(pin_factory="mock", pull_up=False)
    with ButtonPanel(cfg, lambda k, lvl: events.append((k, lvl)), factory):
        k = Kernel(fake).at()
        k.edge(cfg.pins[3], 1, 0)
        k.edge(cfg.pins[3], 0, 100)
        assert wait_for(events, 1) == [("press", 3)]


def test_failing_handler_does_not_break_input(lgpio_factory, cfg):
    fake, factory = lgpio_factory
    seen = []

    def handler(kind, level):
        seen.append(level)
        if len(seen) == 1:
            raise RuntimeError("queue full")

    with ButtonPanel(cfg, handler, factory) as p:
        k = Kernel(fake).at()
        k.edge(cfg.pins[5], 0, 0)
        k.edge(cfg.pins[5], 1, 100)
        wait_for(seen, 1)
        k.edge(cfg.pins[4], 0, 300)
        k.edge(cfg.pins[4], 1, 400)
        assert wait_for(seen, 2) == [5, 4]
        assert p.health()["callback_errors"] == 1


def test_closing_cancels_a_press_waiting_to_settle(lgpio_factory, cfg, events):
    fake, factory = lgpio_factory
    p = ButtonPanel(cfg, lambda k, lvl: events.append((k, lvl)), factory)
    k = Kernel(fake).at()
    k.edge(cfg.pins[5], 0, 0)
    k.edge(cfg.pins[5], 1, 100)
    p.close()
    assert wait_for(events, 1, timeout=0.1) == []


def test_a_button_on_an_spi_pin_says_why_it_is_busy(lgpio_factory):
    fake, factory = lgpio_factory
    fake.busy.update({7, 8, 9, 10, 11})          # SPI is on: the kernel's spi-bcm2835 owns them
    cfg = ButtonSettings(pin_factory="mock", pins={5: 8, 4: 27, 3: 22, 2: 23, 1: 16})
    with pytest.raises(HardwareError, match=r"GPIO 8 \(buttons.pins.5\) is busy.*SPI.*doctor"):
        ButtonPanel(cfg, lambda *a: None, factory)
    fake.busy.clear()
    with ButtonPanel(cfg, lambda *a: None, factory) as p:   # nothing was left claimed
        assert not p.closed


def test_leds_follow_set_leds(mock_factory, cfg):
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as panel:
        panel.set_leds(frozenset({5, 1}))
        assert mock_factory.pin(cfg.leds[5]).state == 1
        assert mock_factory.pin(cfg.leds[1]).state == 1
        assert mock_factory.pin(cfg.leds[3]).state == 0
        panel.set_leds(frozenset())
        assert mock_factory.pin(cfg.leds[5]).state == 0


def test_set_leds_only_touches_changed_leds(mock_factory, cfg):
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as panel:
        panel.set_leds(frozenset({5}))
        pin = mock_factory.pin(cfg.leds[5])
        pin.clear_states()
        panel.set_leds(frozenset({5, 4}))
        assert len(pin.states) == 1     # LED 5 was not written again


def test_set_leds_rejects_unknown_level(mock_factory, cfg):
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as panel:
        with pytest.raises(ValueError):
            panel.set_leds(frozenset({6}))


def test_active_low_leds(mock_factory):
    cfg = ButtonSettings(pin_factory="mock", led_active_high=False)
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as p:
        assert mock_factory.pin(cfg.leds[4]).state == 1   # off = high
        p.set_leds(frozenset({4}))
        assert mock_factory.pin(cfg.leds[4]).state == 0


def test_close_is_idempotent_and_releases_pins(mock_factory, cfg, events):
    first = ButtonPanel(cfg, lambda k, lvl: events.append(("first", lvl)), mock_factory)
    first.close()
    first.close()
    assert first.closed and first.health()["closed"]
    second = ButtonPanel(cfg, lambda k, lvl: events.append(("second", lvl)), mock_factory)
    try:
        second.simulate(3)
        second.set_leds(frozenset({3}))
        assert mock_factory.pin(cfg.leds[3]).state == 1
        assert wait_for(events, 1) == [("second", 3)]
    finally:
        second.close()


def test_pin_already_in_use_fails_and_releases_the_rest(mock_factory, cfg):
    from gpiozero import LED
    squatter = LED(cfg.leds[1], pin_factory=mock_factory)   # last device the panel opens
    with pytest.raises(Exception, match="in use"):
        ButtonPanel(cfg, lambda *a: None, mock_factory)
    squatter.close()
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as p:
        assert not p.closed


def test_health_reports_wiring_and_pressed_keys(mock_factory, cfg):
    with ButtonPanel(cfg, lambda *a: None, mock_factory) as panel:
        mock_factory.pin(cfg.pins[2]).drive_low()
        h = panel.health()
        assert h["pin_factory"] == "MockFactory"
        assert h["buttons"][2] == f"GPIO{cfg.pins[2]}"
        assert h["pressed_now"] == [2]
        mock_factory.pin(cfg.pins[2]).drive_high()


def test_simulate_presses_with_real_time(mock_factory, events):
    cfg = ButtonSettings(pin_factory="mock", hold_ms=500)
    with ButtonPanel(cfg, lambda k, lvl: events.append((k, lvl)), mock_factory) as p:
        p.simulate(3)
        time.sleep((cfg.bounce_ms + 5) / 1000)
        p.simulate(1, duration_ms=cfg.hold_ms + 20)
        time.sleep((cfg.bounce_ms + 5) / 1000)
        p.simulate(1, hold=True)
        assert wait_for(events, 3) == [("press", 3), ("hold", 1), ("hold", 1)]


def test_simulate_refuses_real_hardware(cfg):
    class BoardFactory(PiFactory):        # stands in for a real board's factory
        def __init__(self):
            super().__init__()
            self.pin_class = MockPin

        def _get_revision(self):
            return 0xa02082

        ticks = staticmethod(time.monotonic)
        ticks_diff = staticmethod(lambda later, earlier: later - earlier)

    factory = BoardFactory()
    with ButtonPanel(cfg, lambda *a: None, factory) as p:
        with pytest.raises(RuntimeError, match="real GPIO"):
            p.simulate(5)
    factory.close()


def test_simulate_after_close_raises(mock_factory, cfg):
    p = ButtonPanel(cfg, lambda *a: None, mock_factory)
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
