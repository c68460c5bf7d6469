"""The simulator's `--sound-dir DIR`: every prompt played, as a WAV file (apis.md §1c).

`NNNNNN-<prompt>.wav`, NNNNNN counting from 000001 (after the highest number already in
DIR), written at the moment the prompt starts: a copy of the clip that plays, put in
place by a rename so that a reader never sees half a file.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

from drivers.sound_prompts import check_prompt

_NAME = re.compile(r"(\d{6})-[a-z_]+\.wav")


class DirRecorder:
    def __init__(self, clips, directory):
        self.clips = clips
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.dir.iterdir() if (m := _NAME.fullmatch(p.name))]
        self.count = max(numbers, default=0)
        self.last: str | None = None
        self._lock = threading.Lock()
        self._closed = False

    def play(self, name: str) -> None:
        check_prompt(name)
        source = self.clips.path(name)
        if source is None:
            return
        with self._lock:
            if self._closed:
                return
            self.count += 1
            final = self.dir / f"{self.count:06d}-{name}.wav"
            part = self.dir / f".{final.name}.part"
            shutil.copyfile(source, part)
            os.replace(part, final)
            self.last = name

    def health(self) -> dict:
        return {"recorded_to": str(self.dir), "recorded": self.count}

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.clips.close()   # its volume copies; closing twice (with the player) is fine
