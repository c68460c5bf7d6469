"""Sound prompts: the silent recorder and the buzzer on mock (PWM-capable) pins."""
import time
from types import SimpleNamespace

import pytest
from gpiozero import Buzzer

from config.settings import SoundSettings
from drivers.sound import PATTERNS, BuzzerPlayer, SilentPlayer, open_sound

PIN = 18


def wait_for(condition, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def on_off(pin):
    """The pin's history as 0/1 levels, initial level included."""
    return [int(bool(s.state)) for s in pin.states]


def test_none_driver_records_requests(mock_factory):
    player = open_sound(SoundSettings(driver="none"), mock_factory)
    assert isinstance(player, SilentPlayer)
    player.play("invite")
    player.play("press")
    assert list(player.played) == ["invite", "press"]
    assert player.health()["last"] == "press"
    player.close()
    player.close()
    player.play("thanks")
    assert list(player.played) == ["invite", "press"]


def test_unknown_prompt_is_refused(mock_factory):
    with open_sound(SoundSettings(driver="none"), mock_factory) as silent:
        with pytest.raises(ValueError, match="known"):
            silent.play("fanfare")
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory) as buzzer:
        with pytest.raises(ValueError):
            buzzer.play("fanfare")


def test_play_does_not_wait_for_the_pattern(mock_factory):
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory) as player:
        assert isinstance(player, BuzzerPlayer) and not player.tonal
        started = time.monotonic()
        player.play("error")                        # a 0.6 s pattern
        assert time.monotonic() - started < 0.05
        assert wait_for(lambda: player.is_sounding)


def test_active_buzzer_plays_the_pattern_and_ends_silent(mock_factory):
    pin = mock_factory.pin(PIN)
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory) as player:
        pin.clear_states()
        player.play("error")                        # beep, rest, beep
        assert wait_for(lambda: on_off(pin) == [0, 1, 0, 1, 0])
        assert player.health()["started"] == 1 and player.health()["last"] == "error"
        assert not player.is_sounding


def test_newer_prompt_cuts_the_current_one_short(mock_factory):
    pin = mock_factory.pin(PIN)
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory) as player:
        player.play("thanks")
        assert wait_for(lambda: player.is_sounding)
        started = time.monotonic()
        player.play("press")
        assert wait_for(lambda: player.last == "press")
        assert wait_for(lambda: not player.is_sounding)
        # "thanks" alone lasts 0.34 s; the 40 ms "press" ends well before that
        assert time.monotonic() - started < 0.3
        assert pin.state == 0


def test_tonal_buzzer_sets_pwm_frequency(mock_factory):
    pin = mock_factory.pin(PIN)
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory, tonal=True) as player:
        player.play("invite")
        assert wait_for(lambda: pin.frequency is not None and round(pin.frequency) == 880)
        assert wait_for(lambda: pin.frequency is not None and round(pin.frequency) == 1175)
        assert wait_for(lambda: not player.is_sounding)
        assert pin.frequency is None


def test_every_pattern_fits_the_tonal_range(mock_factory):
    with open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory, tonal=True) as player:
        for name in PATTERNS:
            player.play(name)
            assert wait_for(lambda: player.last == name)
        assert wait_for(lambda: not player.is_sounding)
        assert player.health()["errors"] == 0


def test_close_is_idempotent_silences_and_releases_the_pin(mock_factory):
    player = open_sound(SoundSettings(driver="buzzer", pin=PIN), mock_factory)
    player.play("error")
    assert wait_for(lambda: player.is_sounding)
    player.close()
    player.close()
    player.play("press")                            # after close: ignored, no error
    assert mock_factory.pin(PIN).state == 0
    assert player.health()["closed"] and not player.is_sounding
    with Buzzer(PIN, pin_factory=mock_factory) as again:   # the GPIO is free again
        again.on()
        assert mock_factory.pin(PIN).state == 1


def test_unknown_driver(mock_factory):
    with pytest.raises(ValueError, match="sound driver"):
        open_sound(SimpleNamespace(driver="speaker", pin=PIN), mock_factory)
