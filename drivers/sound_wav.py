"""The spoken prompts' WAV clips: which file plays for each prompt, checked, at its volume.

Built-in Mandarin clips ship in drivers/sound_clips/ (made by scripts/make-clips.sh). A
hall replaces any of them with its own recording, `PROMPT.wav` in `sound.clips_dir`.
A clip must be a PCM WAV file, 16-bit, mono or stereo, any rate aplay takes; a hall's
clip that is not (or cannot be read) is reported and the built-in one plays instead, so
a bad file never leaves a prompt silent.

Volume is applied here, once, by scaling the samples into copies in a private
temporary directory: aplay has no volume option, and the board's mixer may not exist
(an I2S amplifier) or may be shared.
"""
from __future__ import annotations

import array
import os
import shutil
import sys
import tempfile
import wave
from pathlib import Path

BUILTIN_DIR = Path(__file__).with_name("sound_clips")


def problem(path: Path) -> str | None:
    """Why `path` is no clip this driver plays, or None."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getcomptype() != "NONE" or w.getsampwidth() != 2:
                return "must be 16-bit PCM WAV"
            if w.getnchannels() not in (1, 2):
                return "must be mono or stereo"
            if w.getnframes() == 0:
                return "holds no sound"
    except FileNotFoundError:
        return "not found"
    except (OSError, wave.Error, EOFError) as exc:
        return f"not a WAV file ({exc})"
    return None


class Clips:
    """The file to play for each prompt. `problems` says what was wrong with the hall's
    own clips (and built-in ones, which a test keeps valid)."""

    def __init__(self, prompts, clips_dir: str = "", volume: int = 100):
        self.volume = volume
        self.problems: list[str] = []
        self.custom: list[str] = []
        self.sources: dict[str, Path] = {}
        for name in prompts:
            chosen = None
            if clips_dir:
                own = Path(clips_dir) / f"{name}.wav"
                why = problem(own)
                if why is None:
                    chosen = own
                    self.custom.append(name)
                elif why != "not found":
                    self.problems.append(f"{own}: {why}; the built-in clip plays instead")
            if chosen is None:
                builtin = BUILTIN_DIR / f"{name}.wav"
                why = problem(builtin)
                if why is not None:
                    self.problems.append(f"{builtin}: {why}")
                    continue
                chosen = builtin
            self.sources[name] = chosen
        self._tmp = None
        self.paths = dict(self.sources)
        if volume < 100:
            self._tmp = tempfile.mkdtemp(prefix="pingjia-clips-")
            for name, source in self.sources.items():
                self.paths[name] = _scaled(source, Path(self._tmp) / f"{name}.wav", volume)

    def path(self, name: str) -> Path | None:
        return self.paths.get(name)

    def health(self) -> dict:
        return {"volume": self.volume, "custom": list(self.custom),
                "problems": list(self.problems)}

    def close(self) -> None:
        tmp, self._tmp = self._tmp, None
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _scaled(source: Path, target: Path, volume: int) -> Path:
    with wave.open(str(source), "rb") as r:
        params = r.getparams()
        samples = array.array("h", r.readframes(r.getnframes()))
    if sys.byteorder == "big":   # WAV samples are little-endian
        samples.byteswap()
    samples = array.array("h", (v * volume // 100 for v in samples))
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(target), "wb") as w:
        w.setparams(params)
        w.writeframes(samples.tobytes())
    os.chmod(target, 0o644)
    return target
