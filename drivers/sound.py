"""Prompts for the person at the counter: spoken clips, a buzzer, or nowhere.

The prompts (PROMPTS) are spoken as WAV clips through ALSA with `sound.driver = "clips"`
(drivers/sound_alsa.py, clips from drivers/sound_wav.py), or played as tone patterns on a
buzzer; "press" is the buzzer's key click and has no clip. `play` never waits: a newer
prompt cuts the one playing short, and a player that fails only says so in `health()`.
The silent player records what it was asked, so the simulator can show it; the
simulator's `--sound-dir` adds drivers/sound_record.py beside any of them.
"""
from __future__ import annotations

import collections
import logging
import threading

from gpiozero import Buzzer, TonalBuzzer
from gpiozero.tones import Tone

from drivers.sound_prompts import PATTERNS, PROMPTS, check_prompt

log = logging.getLogger(__name__)

__all__ = ["PROMPTS", "PATTERNS", "SilentPlayer", "BuzzerPlayer", "Players", "open_sound"]


class SilentPlayer:
    """Plays nothing; keeps the last 100 requests in `played`."""

    def __init__(self):
        self.played: collections.deque[str] = collections.deque(maxlen=100)
        self._closed = False

    def play(self, name: str) -> None:
        check_prompt(name)
        if not self._closed:
            self.played.append(name)

    def health(self) -> dict:
        return {"driver": "none", "closed": self._closed,
                "last": self.played[-1] if self.played else None}

    def close(self) -> None:
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BuzzerPlayer:
    """A gpiozero buzzer driven from its own thread.

    `tonal=False`: an active buzzer (`Buzzer`, sounds when its GPIO is high).
    `tonal=True`: a passive piezo on a PWM-capable GPIO (`TonalBuzzer`).
    """

    def __init__(self, pin: int, pin_factory, tonal: bool = False):
        self.tonal = tonal
        if tonal:
            self._device = TonalBuzzer(pin, mid_tone=Tone("A5"), octaves=1,
                                       pin_factory=pin_factory)
        else:
            self._device = Buzzer(pin, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self._wake = threading.Event()   # a new prompt or close: stop what is playing
        self._pending: str | None = None
        self._closed = False
        self.started = 0   # prompts begun (a newer one may cut one short)
        self.last: str | None = None
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="pingjia-sound", daemon=True)
        self._thread.start()

    def play(self, name: str) -> None:
        check_prompt(name)
        with self._lock:
            if self._closed:
                return
            self._pending = name
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                self._wake.clear()
                name, self._pending = self._pending, None
                if self._closed:
                    return
            if name is None:
                continue
            self.started += 1
            self.last = name
            try:
                self._play(PATTERNS[name])
            except Exception:
                # A dead buzzer must not take the sound thread (and later prompts) down.
                self.errors += 1
                log.exception("buzzer: cannot play %r", name)

    def _play(self, steps) -> None:
        try:
            for frequency, seconds in steps:
                if frequency is None:
                    self._silence()
                elif self.tonal:
                    self._device.play(Tone(frequency=frequency))
                else:
                    self._device.on()
                if self._wake.wait(seconds):
                    return   # cut short by a newer prompt or by close()
        finally:
            self._silence()

    def _silence(self) -> None:
        if self.tonal:
            self._device.stop()
        else:
            self._device.off()

    @property
    def is_sounding(self) -> bool:
        return not self._closed and self._device.is_active

    def health(self) -> dict:
        return {"driver": "buzzer", "tonal": self.tonal, "closed": self._closed,
                "started": self.started, "last": self.last, "errors": self.errors}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.set()
        self._thread.join(timeout=2)
        self._device.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Players:
    """Several players as one (the simulator's --sound-dir beside the real sound)."""

    def __init__(self, *players):
        self.players = players

    def play(self, name: str) -> None:
        check_prompt(name)
        for player in self.players:
            try:
                player.play(name)
            except Exception:   # one failing player must not silence the others
                log.exception("sound: %s cannot play %r", type(player).__name__, name)

    def health(self) -> dict:
        out: dict = {}
        for player in reversed(self.players):
            out.update(player.health())
        return out

    def close(self) -> None:
        for player in self.players:
            player.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_sound(settings, pin_factory, tonal: bool = False, record_dir=None):
    """The player for `settings` (a `SoundSettings`): silent, clips through ALSA on
    `settings.device`, or a buzzer on `settings.pin`; with `record_dir`, every prompt is
    also written there as a WAV file (the simulator's --sound-dir).

    `tonal` picks a passive piezo (TonalBuzzer, needs PWM) over an active buzzer; there
    is no setting for it yet.
    """
    if settings.driver not in ("none", "clips", "buzzer"):
        raise ValueError(f"unknown sound driver {settings.driver!r}")
    clips = None
    if settings.driver == "clips" or record_dir:
        from drivers.sound_wav import Clips
        clips = Clips(PROMPTS, settings.clips_dir, settings.volume)
        for problem in clips.problems:
            log.warning("sound clip %s", problem)
    if settings.driver == "none":
        player = SilentPlayer()
    elif settings.driver == "buzzer":
        player = BuzzerPlayer(settings.pin, pin_factory, tonal=tonal)
    else:
        from drivers.sound_alsa import AlsaPlayer
        player = AlsaPlayer(clips, settings.device)
    if record_dir:
        from drivers.sound_record import DirRecorder
        return Players(player, DirRecorder(clips, record_dir))
    return player
