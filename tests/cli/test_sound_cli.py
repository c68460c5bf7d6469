"""`pingjia test sound`: every prompt through the real driver and aplay, to ALSA's null
device; a device that refuses them fails the test, naming aplay's complaint."""
from __future__ import annotations

import shutil

import pytest

from drivers.sound import PROMPTS
from tests.cli.conftest import as_json, pingjia

pytestmark = pytest.mark.skipif(shutil.which("aplay") is None,
                                reason="aplay missing: scripts/dev.sh setup installs alsa-utils")


def settings(tmp_path, text):
    path = tmp_path / "pingjia.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_prompt_plays(tmp_path):
    config = settings(tmp_path, '[sound]\ndriver = "clips"\ndevice = "null"\n')
    r = pingjia("--config", config, "test", "sound", "--json")
    assert r.returncode == 0, r.stderr
    got = as_json(r)
    assert got["ok"] and [p["prompt"] for p in got["played"]] == list(PROMPTS)
    assert all(p["ok"] for p in got["played"]) and got["problems"] == []


def test_a_refusing_device_fails_with_aplays_words(tmp_path):
    config = settings(tmp_path, '[sound]\ndriver = "clips"\ndevice = "pingjia-no-such-pcm"\n')
    r = pingjia("--config", config, "test", "sound", "--prompt", "thanks")
    assert r.returncode == 1
    assert r.stdout.startswith("FAIL thanks") and "pingjia-no-such-pcm" in r.stdout
    assert "Traceback" not in r.stderr


def test_nothing_to_play_and_unknown_prompts_are_usage_errors(tmp_path):
    r = pingjia("--config", settings(tmp_path, ""), "test", "sound")
    assert r.returncode == 2 and 'sound.driver is "none"' in r.stderr
    config = settings(tmp_path, '[sound]\ndriver = "clips"\ndevice = "null"\n')
    r = pingjia("--config", config, "test", "sound", "--prompt", "fanfare")
    assert r.returncode == 2 and "unknown prompt 'fanfare'" in r.stderr
