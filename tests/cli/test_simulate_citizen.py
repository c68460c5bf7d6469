"""The citizen's side in a running simulator. Spoken prompts (apis.md §1c): `--sound-dir`
gets each prompt as NNNNNN-<prompt>.wav at the moment it starts, and `--sound alsa`
speaks them through the real driver (to ALSA's file device here); a dead sound device
never blocks a rating. QR codes (§1b): the frames the panel shows decode to the URL."""
from __future__ import annotations

import shutil
import time
import wave

import pytest

from drivers.sound_wav import BUILTIN_DIR
from tests.cli.test_simulate import Sim, sims  # noqa: F401 - the fixture

ITEM = {"project_no": "330106202612019001", "task_name": "户籍迁入"}


def played(directory) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wav"))


def wait_played(directory, count: int, timeout: float = 5.0) -> list[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        names = played(directory)
        if len(names) >= count:
            return names
        time.sleep(0.01)
    raise AssertionError(f"{count} prompts expected in {directory}, got {played(directory)}")


def test_each_prompt_is_written_when_it_starts(tmp_path, sims):
    out = tmp_path / "prompts"
    sim = Sim(tmp_path, "--no-sync", "--sound-dir", str(out))
    sims.append(sim)
    assert played(out) == []
    t0 = time.monotonic()
    assert sim.call("POST", "/v1/invitations", {"visit_id": "s1", "items": [ITEM]}).status_code == 201
    assert wait_played(out, 1) == ["000001-invite.wav"]
    assert time.monotonic() - t0 < 1.0
    sim.keys("4")
    assert wait_played(out, 2)[-1] == "000002-thanks.wav"

    item2 = {**ITEM, "project_no": "330106202612019002"}
    assert sim.call("POST", "/v1/invitations", {"visit_id": "s2", "items": [item2]}).status_code == 201
    sim.keys("2")                              # a bad level: the reasons
    assert wait_played(out, 4)[2:] == ["000003-invite.wav", "000004-choose_reason.wav"]
    sim.keys("3")                              # tick the first reason, then submit
    time.sleep(0.2)
    sim.keys("1")
    assert wait_played(out, 5)[-1] == "000005-thanks.wav"
    sim.wait_status(lambda s: s["state"] == "thanks", "thanks")
    sim.wait_status(lambda s: s["state"] == "idle", "idle again", timeout=10)
    assert sim.call("PUT", "/v1/window", {"state": "paused"}).status_code == 200
    assert wait_played(out, 6)[-1] == "000006-paused.wav"

    for name in played(out):
        prompt = name.split("-", 1)[1]
        with wave.open(str(out / name), "rb") as got, \
                wave.open(str(BUILTIN_DIR / prompt), "rb") as clip:
            assert got.getparams()[:4] == clip.getparams()[:4], name
            assert got.getnframes() == clip.getnframes(), name
    assert not list(out.glob(".*")), "no half-written files left"
    assert sim.stop() == 0


def test_the_kiosk_says_swipe_card_not_found_and_error(tmp_path, sims):
    out = tmp_path / "prompts"
    sim = Sim(tmp_path, "--mode", "kiosk", "--sound-dir", str(out))
    sims.append(sim)
    sim.wait_status(lambda s: s["hardware"]["reader"]["state"] == "connected", "the reader")
    sim.keys("5")                               # a key with no card: 请刷身份证
    assert wait_played(out, 1) == ["000001-swipe_card.wav"]
    sim.keys("f")                               # one business found: straight to rating
    assert wait_played(out, 2)[-1] == "000002-invite.wav"
    sim.keys("5")
    assert wait_played(out, 3)[-1] == "000003-thanks.wav"
    sim.keys("x")
    sim.wait_status(lambda s: s["state"] == "idle", "idle", timeout=10)
    sim.keys("f")                               # the same card again: nothing left to rate
    assert wait_played(out, 4)[-1] == "000004-not_found.wav"
    sim.keys("1x")
    sim.wait_status(lambda s: s["state"] == "idle", "idle")
    sim.keys("u")                               # a card that cannot be read
    assert wait_played(out, 5)[-1] == "000005-error.wav"
    assert sim.stop() == 0


needs_aplay = pytest.mark.skipif(shutil.which("aplay") is None,
                                 reason="aplay missing: scripts/dev.sh setup installs alsa-utils")


def _alsa_home(tmp_path, monkeypatch):
    raw = tmp_path / "alsa.raw"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(
        'pcm.pjfile {\n  type file\n  slave.pcm "null"\n  file "%s"\n  format "raw"\n}\n' % raw)
    monkeypatch.setenv("HOME", str(home))
    return raw


@needs_aplay
def test_sound_alsa_speaks_through_the_device_of_the_settings(tmp_path, sims, monkeypatch):
    raw = _alsa_home(tmp_path, monkeypatch)
    config = tmp_path / "pingjia.toml"
    config.write_text('[sound]\ndevice = "pjfile"\nvolume = 100\n', encoding="utf-8")
    monkeypatch.setenv("PINGJIA_CONFIG", str(config))
    sim = Sim(tmp_path, "--no-sync", "--sound", "alsa")
    sims.append(sim)
    sound = sim.wait_status(lambda s: s["hardware"]["sound"]["state"] == "ok", "the probe")
    assert sound["hardware"]["sound"]["device"] == "pjfile"
    assert sim.call("POST", "/v1/invitations", {"visit_id": "a1", "items": [ITEM]}).status_code == 201
    with wave.open(str(BUILTIN_DIR / "invite.wav"), "rb") as w:
        clip = w.readframes(w.getnframes())
    end = time.monotonic() + 10
    while time.monotonic() < end and not (raw.exists() and raw.read_bytes()[:len(clip)] == clip):
        time.sleep(0.05)
    assert raw.read_bytes()[:len(clip)] == clip
    status = sim.wait_status(lambda s: s["hardware"]["sound"]["started"] == 1, "one prompt")
    assert status["hardware"]["sound"]["errors"] == 0
    assert sim.stop() == 0


@needs_aplay
def test_a_dead_sound_device_is_in_status_and_never_blocks_a_rating(tmp_path, sims, monkeypatch):
    config = tmp_path / "pingjia.toml"
    config.write_text('[sound]\ndevice = "pingjia-no-such-device"\n', encoding="utf-8")
    monkeypatch.setenv("PINGJIA_CONFIG", str(config))
    sim = Sim(tmp_path, "--no-sync", "--sound", "alsa")
    sims.append(sim)
    status = sim.wait_status(lambda s: s["hardware"]["sound"]["state"] == "failing", "the probe")
    assert "pingjia-no-such-device" in status["hardware"]["sound"]["last_error"]
    for n in range(3):
        t0 = time.monotonic()
        visit = f"d{n}"
        assert sim.call("POST", "/v1/invitations", {"visit_id": visit, "items": [
            {**ITEM, "project_no": f"33010620261201910{n}"}]}).status_code == 201
        sim.keys("5")
        sim.wait_line(f"stored #{n + 1} level 5")
        assert time.monotonic() - t0 < 2.0
        sim.wait_status(lambda s: s["state"] == "idle", "idle again", timeout=10)
    status = sim.status()
    assert status["records"] == 3 and status["hardware"]["sound"]["state"] == "failing"
    assert sim.stop() == 0


def test_a_running_simulator_draws_the_qr_code_a_phone_reads(tmp_path, sims, monkeypatch):
    """The frames the simulator's panel really shows (--display capture), decoded: the
    thanks screen gives the item's rate_url, the idle screen after a cancel the
    template's URL."""
    import zxingcpp
    from PIL import Image

    config = tmp_path / "pingjia.toml"
    config.write_text('[qr]\nurl_template = "https://hcp.example.gov.cn/r/{project_no}"\n',
                      encoding="utf-8")
    monkeypatch.setenv("PINGJIA_CONFIG", str(config))
    frames = tmp_path / "frames"
    sim = Sim(tmp_path, "--no-sync", "--display", "capture", "--frames", str(frames))
    sims.append(sim)
    url = "https://hcp.example.gov.cn/r/330106202612019001?c=7"

    def codes() -> set:
        found = set()
        for png in sorted(frames.glob("*.png")):
            with Image.open(png) as image:
                found |= {r.text for r in zxingcpp.read_barcodes(image.convert("L"))}
        return found

    assert sim.call("POST", "/v1/invitations", {"visit_id": "qr1", "items": [
        {**ITEM, "rate_url": url}]}).status_code == 201
    sim.keys("4")
    sim.wait_status(lambda s: s["state"] == "thanks", "thanks")
    time.sleep(0.3)
    assert codes() == {url}
    item2 = {**ITEM, "project_no": "330106202612019002"}
    assert sim.call("POST", "/v1/invitations", {"visit_id": "qr2", "items": [item2]}).status_code == 201
    assert sim.call("DELETE", "/v1/invitations/current").status_code == 200
    time.sleep(0.5)
    assert codes() == {url, "https://hcp.example.gov.cn/r/330106202612019002"}
    assert sim.stop() == 0
