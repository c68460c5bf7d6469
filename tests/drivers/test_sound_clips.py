"""Spoken prompts through the real driver: aplay on ALSA's null and file devices (no sound
card needed), the built-in clips, a hall's own clips, volume, and dead devices."""
from __future__ import annotations

import array
import os
import re
import shutil
import time
import wave
from pathlib import Path

import pytest

from config.settings import SoundSettings
from drivers.sound import PROMPTS, open_sound
from drivers.sound_alsa import AlsaPlayer
from drivers.sound_wav import BUILTIN_DIR, Clips

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("aplay") is None,
                                reason="aplay missing: scripts/dev.sh setup installs alsa-utils")


def played(raw: bytes, clip: bytes) -> bool:
    """ALSA's file device holds the clip, padded with silence to a whole period."""
    return raw[:len(clip)] == clip and not raw[len(clip):].strip(b"\0")


def frames(path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def wait_for(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def file_pcm(tmp_path, monkeypatch):
    """An ALSA device `pjfile` that writes what it is given to a file (and plays nothing),
    declared in the ~/.asoundrc of the aplay processes the driver starts."""
    out = tmp_path / "played.raw"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        'pcm.pjfile {\n  type file\n  slave.pcm "null"\n  file "%s"\n  format "raw"\n}\n' % out)
    monkeypatch.setenv("HOME", str(home))
    return out


def test_every_prompt_has_a_valid_small_builtin_clip():
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.wav")) == sorted(PROMPTS)
    for name in PROMPTS:
        with wave.open(str(BUILTIN_DIR / f"{name}.wav"), "rb") as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2, name
            assert 8000 <= w.getframerate() <= 16000, name
            seconds = w.getnframes() / w.getframerate()
            assert 0.5 <= seconds <= 6, (name, seconds)
            assert max(array.array("h", w.readframes(w.getnframes()))) > 10000, name  # not silent


def test_the_clip_script_makes_exactly_the_prompts():
    script = (ROOT / "scripts" / "make-clips.sh").read_text(encoding="utf-8")
    assert sorted(re.findall(r"^\s+\[(\w+)\]=", script, re.M)) == sorted(PROMPTS)
    assert "espeak-ng -v cmn" in script


def test_a_clip_reaches_alsa_whole(file_pcm):
    with AlsaPlayer(Clips(PROMPTS), "pjfile", probe=False) as player:
        player.play("thanks")
        assert player.wait(10)
        assert wait_for(lambda: file_pcm.exists() and file_pcm.stat().st_size > 0)
        health = player.health()
    assert health["state"] == "ok" and health["started"] == 1 and health["errors"] == 0
    assert played(file_pcm.read_bytes(), frames(BUILTIN_DIR / "thanks.wav"))


def test_volume_scales_the_samples(file_pcm):
    with AlsaPlayer(Clips(PROMPTS, volume=50), "pjfile", probe=False) as player:
        player.play("paused")
        assert player.wait(10)
    want = array.array("h", (v * 50 // 100 for v in array.array("h", frames(BUILTIN_DIR / "paused.wav"))))
    assert played(file_pcm.read_bytes(), want.tobytes()) and max(want) > 5000


def test_a_halls_own_clip_replaces_the_builtin_and_a_bad_one_is_reported(tmp_path, file_pcm):
    own = tmp_path / "own"
    own.mkdir()
    with wave.open(str(own / "invite.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(array.array("h", [1000, -1000] * 800).tobytes())
    (own / "thanks.wav").write_bytes(b"not a wav file")
    clips = Clips(PROMPTS, str(own))
    assert clips.custom == ["invite"]
    assert len(clips.problems) == 1 and "thanks.wav: not a WAV file" in clips.problems[0]
    assert clips.path("thanks") == BUILTIN_DIR / "thanks.wav"
    with AlsaPlayer(clips, "pjfile", probe=False) as player:
        player.play("invite")
        assert player.wait(10)
        assert player.health()["problems"] == clips.problems
    assert played(file_pcm.read_bytes(), frames(own / "invite.wav"))


def test_the_null_device_plays_every_prompt():
    with open_sound(SoundSettings(driver="clips", device="null"), None) as player:
        for name in PROMPTS:
            player.play(name)
            assert player.wait(10)
        assert wait_for(lambda: player.health()["state"] == "ok")
        assert player.health()["started"] == len(PROMPTS) and player.health()["errors"] == 0


@pytest.mark.parametrize("device,aplay", [("pingjia-no-such-device", "aplay"),
                                          ("default", "/nonexistent/aplay")])
def test_a_dead_device_is_reported_and_never_blocks(device, aplay):
    clips = Clips(PROMPTS)
    with AlsaPlayer(clips, device, aplay=aplay) as player:   # the probe at open finds it
        assert wait_for(lambda: player.health()["state"] == "failing")
        started = time.monotonic()
        for name in PROMPTS * 3:
            player.play(name)
        assert time.monotonic() - started < 0.5
        health = player.health()
        assert health["state"] == "failing" and health["errors"] >= 1
        assert health["last_error"]


def test_a_newer_prompt_cuts_the_one_playing(tmp_path):
    """A stand-in for aplay that plays for 30 s, so the first clip is still playing."""
    log = tmp_path / "started.txt"
    slow = tmp_path / "slow-aplay"
    slow.write_text(f'#!/bin/sh\necho "$$ $5" >> {log}\nexec sleep 30\n')
    slow.chmod(0o755)
    with AlsaPlayer(Clips(PROMPTS), "default", aplay=str(slow), probe=False) as player:
        player.play("invite")
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 1)
        first = int(log.read_text().split()[0])
        player.play("thanks")
        assert wait_for(lambda: len(log.read_text().splitlines()) == 2)
        assert wait_for(lambda: not _alive(first))
        assert player.health()["state"] != "failing" and player.health()["errors"] == 0
        assert log.read_text().splitlines()[1].endswith("thanks.wav")
    assert player.health()["closed"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waits for its parent's wait(); it plays nothing any more
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_the_recorder_writes_each_prompt_as_it_starts(tmp_path):
    record = tmp_path / "played"
    with open_sound(SoundSettings(driver="none", volume=100), None, record_dir=record) as player:
        player.play("invite")
        player.play("press")          # the key click has no clip
        player.play("thanks")
        assert sorted(p.name for p in record.iterdir()) == ["000001-invite.wav",
                                                            "000002-thanks.wav"]
    assert frames(record / "000002-thanks.wav") == frames(BUILTIN_DIR / "thanks.wav")
    with open_sound(SoundSettings(driver="none", volume=100), None, record_dir=record) as again:
        again.play("error")           # a second run goes on counting
    assert (record / "000003-error.wav").exists()


def test_closing_removes_the_volume_copies(tmp_path):
    with open_sound(SoundSettings(driver="none", volume=50), None,
                    record_dir=tmp_path / "played") as player:
        copies = player.players[1].clips.path("invite").parent
        assert copies.is_dir() and copies != BUILTIN_DIR
    assert not copies.exists()
    with open_sound(SoundSettings(driver="clips", device="null", volume=50), None) as player:
        copies = player.clips.path("invite").parent
        assert copies.is_dir()
    assert not copies.exists()
