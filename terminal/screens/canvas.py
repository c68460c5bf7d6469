"""One frame being drawn, and the one way blocks of text are stacked on it.

Every screen module (window.py, kiosk.py) draws on a `Canvas`: the image, the fonts as
layout Faces, the inks of the panel's mode. `column` and `overlay` centre blocks of
text, each in the largest face that shows it whole; they are here, beside the canvas,
so that each screen module uses them without reaching into another's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from PIL import Image, ImageDraw

from terminal.screens.layout import Box, Face, Fitted, draw_fitted, face, fit, scaled

SIZES = ((128, 64), (256, 64))
MODES = ("1", "L")


@dataclass(frozen=True)
class Ink:
    fg: int      # normal text
    dim: int     # secondary text, hints
    bg: int
    bar: int     # inverse bars and key caps
    on_bar: int  # text on them


INKS = {"1": Ink(fg=255, dim=255, bg=0, bar=255, on_bar=0),
        "L": Ink(fg=255, dim=120, bg=0, bar=200, on_bar=0)}


class Canvas:
    """One frame being drawn: the image, its fonts and inks, and the text helpers."""

    def __init__(self, size, mode: str, fonts, large_text: bool = False):
        if mode not in INKS:
            raise ValueError(f"unsupported mode {mode!r}: use one of {MODES}")
        if fonts is None:
            from drivers.fonts import find_fonts
            fonts = find_fonts()
        self.w, self.h = int(size[0]), int(size[1])
        self.image = Image.new(mode, (self.w, self.h), 0)
        self.draw = ImageDraw.Draw(self.image)
        self.draw.fontmode = "1"   # bitmap fonts: crisp pixels, never smoothed
        self.ink = INKS[mode]
        self.small = face(fonts.small)
        self.large = face(fonts.large)
        self.both = (self.large, self.small)   # big when it fits whole, else small
        # display.large_text: the prompt, level names and thanks in 24-px characters
        # (the 12-px font doubled), paged when they need more room than that.
        self.large_text = large_text
        self.huge = face(scaled(fonts.small, 2)) if large_text else None
        self.prompt = (self.huge,) if large_text else self.both
        # Text starts this far down so that brackets sticking out above a line stay on
        # the panel; `frame` is the area below.
        self.y0 = max(self.small.over, self.large.over)
        self.frame = Box(0, self.y0, self.w, self.h - self.y0)

    def box(self, box: Box, color) -> None:
        if box.w > 0 and box.h > 0:
            self.draw.rectangle(box.rect(), fill=color)

    def text(self, box: Box, value, faces: Sequence[Face] = (), page: int = 0, *, fill=None,
             shorter=(), align="left", valign="top", bar_fill=None) -> Fitted:
        fitted = fit(value, faces or (self.small,), box.w, box.h, shorter=shorter)
        draw_fitted(self.draw, box, fitted, page, fill=self.ink.fg if fill is None else fill,
                    align=align, valign=valign, bar_fill=bar_fill)
        return fitted

    def bar(self, box: Box, value, faces=(), page: int = 0, *, shorter=(), align="center"):
        """Text on an inverse bar (call to action, warnings)."""
        self.box(box, self.ink.bar)
        inner = Box(box.x + 1, box.y, box.w - 2, box.h)
        return self.text(inner, value, faces, page, fill=self.ink.on_bar, shorter=shorter,
                         align=align, valign="middle", bar_fill=self.ink.on_bar)


# --- blocks of text ------------------------------------------------------------------------

Block = tuple  # (text, faces, fill)


def _fit_column(blocks: Sequence[Block], width: int, height: int, gap: int) -> list[Fitted]:
    """Fit blocks stacked top to bottom; each leaves one line for every block after it."""
    fits = []
    remaining = height
    for i, (value, faces, _fill) in enumerate(blocks):
        reserve = sum(min(f.height for f in b[1]) + gap for b in blocks[i + 1:])
        fitted = fit(value, faces, width, max(1, remaining - reserve))
        fits.append(fitted)
        remaining -= fitted.height + gap
    return fits


def _draw_column(c: Canvas, blocks, fits, box: Box, page: int, gap: int) -> None:
    total = sum(f.height for f in fits) + gap * (len(fits) - 1)
    y = box.y + max(0, (box.h - total) // 2)
    for (_value, _faces, fill), fitted in zip(blocks, fits):
        draw_fitted(c.draw, Box(box.x, y, box.w, fitted.height), fitted, page, fill=fill,
                    align="center")
        y += fitted.height + gap


def column(c: Canvas, blocks, box: Box, page: int, gap: int = 3) -> None:
    """Blocks centred in `box`, each in the largest face that shows it whole."""
    _draw_column(c, blocks, _fit_column(blocks, box.w, box.h, gap), box, page, gap)


def overlay(c: Canvas, blocks, page: int, area: Optional[Box] = None, gap: int = 2) -> None:
    """A framed message over `area` (default: the whole frame), blocks centred in it.

    The frame covers whole lines of the screen below, so nothing peeks out cut in half.
    """
    area = area or Box(0, 0, c.w, c.h)
    pad = 2
    c.box(area, c.ink.bg)
    c.draw.rectangle(area.rect(), outline=c.ink.fg)
    inner = Box(area.x + pad + 1, area.y + pad + 1, area.w - 2 * (pad + 1), area.h - 2 * (pad + 1))
    column(c, blocks, inner, page, gap)
