"""Simulated displays that write their frames to files: `capture` (a PNG per frame) and
`gifanim` (one animated GIF when closed).

Both are luma.core's `dummy` plus Pillow, so they work in a plain `pip install .`:
writing pictures needs no window system, no pygame and no luma.emulator (only the
`pygame` display, a window on a desktop, needs those: `pip install 'pingjia[sim]'`).
A PNG is the panel pixel for pixel (unscaled, in the panel's mode), easy to compare
with a golden image; the GIF is scaled up to be looked at.
"""
from __future__ import annotations

import atexit

from PIL import Image

from luma.core.device import dummy

__all__ = ["capture", "gifanim"]


class capture(dummy):
    """Writes every frame to `file_template.format(n)`, n counting from 1."""

    def __init__(self, width=128, height=64, rotate=0, mode="1",
                 file_template="frame_{0:06}.png", **kwargs):
        super().__init__(width=width, height=height, rotate=rotate, mode=mode, **kwargs)
        self.file_template = file_template
        self.count = 0

    def display(self, image):
        super().display(image)
        self.count += 1
        self.image.save(self.file_template.format(self.count), format="PNG")


class gifanim(dummy):
    """Keeps the frames and writes them as one animated GIF to `filename` on close
    (`write_animation`, also run at exit if nobody closed the display)."""

    def __init__(self, width=128, height=64, rotate=0, mode="1", filename="pingjia.gif",
                 scale=2, duration=0.5, **kwargs):
        super().__init__(width=width, height=height, rotate=rotate, mode=mode, **kwargs)
        self.filename = filename
        self.scale = scale
        self.duration_ms = int(duration * 1000)
        self.frames: list[Image.Image] = []
        atexit.register(self.write_animation)

    def display(self, image):
        super().display(image)
        w, h = self.image.size
        self.frames.append(self.image.convert("RGB").resize((w * self.scale, h * self.scale),
                                                            Image.Resampling.NEAREST))

    def write_animation(self) -> None:
        if not self.frames:
            return
        first, *rest = self.frames
        first.save(self.filename, format="GIF", save_all=True, append_images=rest,
                   duration=self.duration_ms, loop=0)
