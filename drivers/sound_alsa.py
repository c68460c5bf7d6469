"""Spoken prompts through ALSA: one `aplay` process per clip (Debian alsa-utils).

A process per clip keeps the flow's thread free (`play` only starts it) and makes "a
newer prompt cuts the one playing" a terminate. Each process is watched by a small
thread of its own, which tells a dead, missing or busy device apart from a clip cut
short: `health()` says so, for GET /v1/status. Nothing here ever waits on the device.

At open a short silence is played (in the background) to find a missing device before
the first person would have heard nothing.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path

from drivers.sound_prompts import check_prompt

log = logging.getLogger(__name__)

APLAY = "aplay"


class AlsaPlayer:
    """Plays `clips` (a drivers.sound_wav.Clips) on ALSA `device`."""

    def __init__(self, clips, device: str = "default", *, aplay: str = APLAY, probe: bool = True):
        self.clips = clips
        self.device = device
        self.aplay = aplay
        self._lock = threading.RLock()   # _start may report a failure while holding it
        self._current: subprocess.Popen | None = None
        self._closed = False
        self.started = 0
        self.errors = 0
        self.last: str | None = None
        self.last_error: str | None = None
        self.state = "unknown"        # "ok", "failing" (the device refused the last clip)
        self.start_ms: list[float] = []  # play() to process started, last 100
        self._probe_dir = None
        if probe:
            self._probe()

    def play(self, name: str) -> None:
        check_prompt(name)
        path = self.clips.path(name)
        if path is None:
            return   # no clip for it ("press" is a buzzer's click)
        with self._lock:
            if self._closed:
                return
            self._cut()
            self._start(name, path)

    def _start(self, name: str, path: Path, counted: bool = True) -> None:
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen([self.aplay, "-q", "-D", self.device, "--", str(path)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, close_fds=True)
        except OSError as exc:
            self._failed(f"cannot run {self.aplay}: {exc} (apt install alsa-utils)")
            return
        self.start_ms = (self.start_ms + [(time.monotonic() - t0) * 1000])[-100:]
        if counted:
            self.started += 1
            self.last = name
        proc.watched = threading.Event()   # set once _watch has told how it ended
        self._current = proc
        threading.Thread(target=self._watch, args=(proc,), name="pingjia-aplay",
                         daemon=True).start()

    def _cut(self) -> None:
        proc, self._current = self._current, None
        if proc is not None and proc.poll() is None:
            proc.cut = True
            proc.terminate()

    def _watch(self, proc: subprocess.Popen) -> None:
        try:
            self._ended(proc)
        finally:
            proc.watched.set()

    def _ended(self, proc: subprocess.Popen) -> None:
        try:
            _, err = proc.communicate()
        except Exception as exc:   # the process is gone in some odd way: say so, go on
            err = str(exc).encode()
        if getattr(proc, "cut", False) or proc.returncode == 0:
            if proc.returncode == 0:
                with self._lock:
                    self.state = "ok"
                    self.last_error = None
            return
        text = err.decode("utf-8", "replace").strip().splitlines()
        self._failed(f"aplay -D {self.device} exited {proc.returncode}: "
                     + (text[-1] if text else "no message")[:200])

    def _failed(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.state = "failing"
            self.last_error = message
        log.error("sound: %s", message)

    def _probe(self) -> None:
        """A 20 ms silence, to learn early whether the device takes sound at all."""
        self._probe_dir = tempfile.mkdtemp(prefix="pingjia-probe-")
        path = Path(self._probe_dir) / "silence.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(640))
        with self._lock:
            self._start("probe", path, counted=False)

    def wait(self, timeout: float) -> bool:
        """Until the clip playing has ended (True) or `timeout` s passed; for `pingjia test
        sound`, never for the flow."""
        with self._lock:
            proc = self._current
        if proc is None:
            return True
        return proc.watched.wait(timeout)

    def health(self) -> dict:
        with self._lock:
            out = {"driver": "clips", "device": self.device, "state": self.state,
                   "closed": self._closed, "started": self.started, "errors": self.errors,
                   "last": self.last, "last_error": self.last_error}
        if self.clips.volume == 0 and out["state"] != "failing":
            out["state"] = "muted"
        out.update(self.clips.health())
        return out

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            proc = self._current
            self._cut()
        if proc is not None:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._probe_dir:
            shutil.rmtree(self._probe_dir, ignore_errors=True)
        self.clips.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
