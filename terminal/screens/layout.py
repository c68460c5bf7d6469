"""Text on a small panel: measure, wrap, page, fit, draw. Every screen goes through here.

One rule above all: text is never cut off silently. What does not fit in its box is
wrapped, and what does not fit wrapped is paged; the page shown is the flow's
`state.page` modulo the number of pages, and a thin bar at the box's right edge shows
that there are more. Lists (the reason list, the kiosk's business list) show every entry
whole, in pages of whole entries: `pack`.

Fonts are bitmap fonts, so a line's width is the sum of its characters' advances; the
advances are cached per font. Lines are placed by their ink: `Face.top` is the first
row Chinese and Latin glyphs use, `Face.height` the rows down to the lowest descender,
and `Face.pitch` the step from one line to the next (one empty row between lines). A few
brackets and quotes stick out by `Face.over` rows above and `Face.under` rows below: into
the empty row between lines, which is why frames start `over` rows down.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

from PIL import ImageDraw

BAR = 3                       # width kept free for the page bar (2 px bar + 1 px gap)
_PROBE = "满意国gjpqy"        # the ink of a line: Chinese plus descenders
_PROBE_ALL = "（）“”〖〗/|()[]{}_"  # brackets and quotes may stick out a pixel
# Characters a line should not start with (Chinese line-breaking rules, 禁则).
_NO_LINE_START = set("，。、；：！？）】》」』”’%,.;:!?)]}…·")
_WORD = re.compile(r"[!-~\u00a0-\u024f]+|.", re.S)   # a run of Latin/ASCII, or one character


# --- fonts --------------------------------------------------------------------------

@dataclass(eq=False)
class Face:
    """A font with its measures, as the layout needs it."""
    font: object
    top: int
    height: int
    pitch: int
    over: int = 0
    under: int = 0
    _advances: dict = field(default_factory=dict, repr=False)

    def width(self, text: str) -> int:
        adv = self._advances
        total = 0
        for ch in text:
            w = adv.get(ch)
            if w is None:
                w = adv[ch] = int(round(self.font.getlength(ch)))
            total += w
        return total

    def rows(self, height: int) -> int:
        """Lines that fit in `height` pixels (at least one)."""
        return max(1, (height + 1) // self.pitch)

    def block(self, lines: int) -> int:
        """Pixels taken by `lines` lines."""
        return lines * self.pitch - 1 if lines else 0


class Scaled:
    """A bitmap font drawn `k` times larger, pixel for pixel (display.large_text: the
    12-px WenQuanYi glyphs doubled make 24 px; no 24-px CJK bitmap font is packaged).
    Measures like a PIL font; drawn by `draw_line`."""

    def __init__(self, base, k: int = 2):
        self.base, self.k = base, k

    def getlength(self, text: str) -> float:
        return self.base.getlength(text) * self.k

    def getbbox(self, text: str):
        return tuple(v * self.k for v in self.base.getbbox(text))

    def draw(self, draw, xy, text: str, fill) -> None:
        from PIL import Image, ImageDraw as Draw
        left, top, right, bottom = self.base.getbbox(text)
        if right <= 0 or bottom <= 0:
            return
        mask = Image.new("1", (right, bottom), 0)
        small = Draw.Draw(mask)
        small.fontmode = "1"
        small.text((0, 0), text, font=self.base, fill=1)
        mask = mask.resize((right * self.k, bottom * self.k), Image.Resampling.NEAREST)
        draw.bitmap((int(xy[0]), int(xy[1])), mask, fill=fill)


_scaled: dict = {}


def scaled(font, k: int = 2) -> Scaled:
    """The one Scaled of `font` (its Face is measured once, like any font's)."""
    found = _scaled.get((font, k))
    if found is None:
        found = _scaled[(font, k)] = Scaled(font, k)
    return found


def draw_line(draw, xy, text: str, font, fill) -> None:
    """One line of text in a PIL font or a Scaled one."""
    if isinstance(font, Scaled):
        font.draw(draw, xy, text, fill)
    else:
        draw.text(xy, text, font=font, fill=fill)


_faces: dict = {}


def face(font) -> Face:
    """The Face of a PIL font, measured once."""
    f = _faces.get(font)
    if f is None:
        left, top, right, bottom = font.getbbox(_PROBE)
        left, top_all, right, bottom_all = font.getbbox(_PROBE_ALL)
        f = _faces[font] = Face(font, top, bottom - top, bottom - top + 1,
                                over=max(0, top - top_all), under=max(0, bottom_all - bottom))
    return f


# --- text -----------------------------------------------------------------------------

def clean(text) -> str:
    """One line of text: control and format characters become spaces, runs of spaces one."""
    text = "" if text is None else str(text)
    out = []
    for ch in text:
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            ch = " "
        out.append(ch)
    return " ".join("".join(out).split())


Width = Union[int, Callable[[int], int]]


def wrap(text, face: Face, width: Width) -> list[str]:
    """Break `text` into lines no wider than `width` (or `width(line_index)`).

    Paragraphs are given as a tuple of strings. Within a paragraph, a space-separated
    word moves whole to the next line when it fits there; Chinese breaks between any two
    characters, except before closing punctuation; an ASCII run is split only when it is
    wider than a line. Spaces at a break are dropped; every other character is kept, in
    order. A single character wider than the line gets a line of its own.
    """
    paragraphs = (text,) if isinstance(text, str) or text is None else tuple(text)
    limit = width if callable(width) else (lambda i, w=width: w)
    lines: list[str] = []
    for para in paragraphs:
        para = clean(para)
        if para:
            _wrap_paragraph(para, face, limit, lines)
    return lines


def _wrap_paragraph(para: str, face: Face, limit, lines: list) -> None:
    cur: list[str] = []   # the pieces of the line being filled
    used = 0

    def flush():
        nonlocal cur, used
        lines.append("".join(cur).rstrip(" "))
        cur, used = [], 0

    for n, word in enumerate(para.split(" ")):
        sep = " " if cur else ""
        w = face.width(word)
        room = limit(len(lines))
        if used + face.width(sep) + w <= room:
            cur += [sep, word] if sep else [word]
            used += face.width(sep) + w
            continue
        if cur and w <= limit(len(lines) + 1):
            flush()
            cur, used = [word], w
            continue
        if sep and used + face.width(sep) < room:
            cur.append(sep)
            used += face.width(sep)
        for piece in _WORD.findall(word):
            for part in ([piece] if face.width(piece) <= limit(len(lines) + 1) else list(piece)):
                pw = face.width(part)
                if used + pw <= limit(len(lines)) or not cur:
                    cur.append(part)
                    used += pw
                    continue
                carry = []
                if (part in _NO_LINE_START and len(cur) >= 2 and cur[-1] != " "
                        and face.width(cur[-1]) + pw <= limit(len(lines) + 1)):
                    carry = [cur.pop()]   # keep the punctuation with the character before it
                flush()
                cur = carry + [part]
                used = sum(face.width(c) for c in cur)
    if cur:
        flush()


def paginate(lines: Sequence[str], per_page: int) -> list[tuple[str, ...]]:
    """Lines in pages of `per_page`; always at least one (maybe empty) page."""
    per_page = max(1, per_page)
    pages = [tuple(lines[i:i + per_page]) for i in range(0, len(lines), per_page)]
    return pages or [()]


def pack(heights: Sequence[int], rows: int) -> tuple[range, ...]:
    """Consecutive items, `heights[i]` rows each, in pages of `rows` rows: an item goes on
    the page being filled while it fits there, else it starts the next one (an item of
    `rows` rows or more has a page of its own). Always at least one page."""
    pages: list[range] = []
    start, used = 0, 0
    for i, h in enumerate(heights):
        if i > start and used + h > rows:
            pages.append(range(start, i))
            start, used = i, 0
        used += h
    pages.append(range(start, len(heights)))
    return tuple(pages)


# --- fitting ------------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    def rect(self):
        """For ImageDraw: inclusive corners."""
        return (self.x, self.y, self.x + self.w - 1, self.y + self.h - 1)


@dataclass(frozen=True)
class Fitted:
    face: Face
    pages: tuple
    paged: bool          # more than one page: a page bar is drawn and BAR px kept free
    indent: int = 0      # first line of every page starts this far in

    def page(self, n: int) -> tuple[str, ...]:
        return self.pages[n % len(self.pages)]

    @property
    def rows(self) -> int:
        return max(len(p) for p in self.pages)

    @property
    def height(self) -> int:
        return self.face.block(self.rows)

    @property
    def width(self) -> int:
        return max((self.face.width(line) for p in self.pages for line in p), default=0)


def fit(text, faces: Sequence[Face], width: int, height: int, *, shorter=(),
        indent: int = 0, max_rows: Optional[int] = None) -> Fitted:
    """The first face (in order of preference) that shows `text` whole on one page.

    `shorter` are alternative texts tried, in order, when `text` fits in no face (say
    "流水号 123" then "123"). When nothing fits on one page, `text` is wrapped in the
    last face and paged. `indent` narrows the first line of every page.
    """
    faces = tuple(faces)
    for candidate in (text, *shorter):
        for f in faces:
            rows = min(f.rows(height), max_rows or 1_000_000)
            lines = wrap(candidate, f, _widths(width, indent, rows))
            if len(lines) <= rows:
                return Fitted(f, (tuple(lines),), False, indent)
    f = faces[-1]
    rows = min(f.rows(height), max_rows or 1_000_000)
    lines = wrap(text, f, _widths(width - BAR, indent, rows))
    pages = paginate(lines, rows)
    return Fitted(f, tuple(pages), len(pages) > 1, indent)


def _widths(width: int, indent: int, rows: int):
    if not indent:
        return width
    return lambda i: width - indent if i % rows == 0 else width


# --- drawing --------------------------------------------------------------------------

def draw_fitted(draw: ImageDraw.ImageDraw, box: Box, fitted: Fitted, page: int, *, fill,
                align: str = "left", valign: str = "top", bar_fill=None) -> tuple[str, ...]:
    """Draw one page of `fitted` in `box`; returns the lines drawn."""
    f = fitted.face
    lines = fitted.page(page)
    y = box.y
    if valign == "middle":
        y += max(0, (box.h - f.block(len(lines)) + 1) // 2)
    elif valign == "bottom":
        y += max(0, box.h - f.block(len(lines)))
    usable = box.w - (BAR if fitted.paged else 0)
    for i, line in enumerate(lines):
        x0 = box.x + (fitted.indent if i == 0 else 0)
        room = usable - (fitted.indent if i == 0 else 0)
        x = x0
        if align == "center":
            x = x0 + max(0, (room - f.width(line)) // 2)
        elif align == "right":
            x = x0 + max(0, room - f.width(line))
        draw_line(draw, (x, y + i * f.pitch - f.top), line, f.font, fill)
    if fitted.paged:
        page_bar(draw, Box(box.right - 2, box.y, 2, min(box.h, f.block(fitted.rows))),
                 page % len(fitted.pages), len(fitted.pages),
                 fill if bar_fill is None else bar_fill)
    return lines


def page_bar(draw, box: Box, index: int, count: int, fill) -> None:
    """A thin scroll bar: the part of `box` that stands for page `index` of `count`."""
    top = box.y + box.h * index // count
    bottom = box.y + box.h * (index + 1) // count - 1
    draw.rectangle((box.x, top, box.right - 1, max(top, bottom)), fill=fill)


def text(draw, box: Box, value, faces: Sequence[Face], page: int = 0, *, fill, shorter=(),
         align: str = "left", valign: str = "top", bar_fill=None) -> Fitted:
    """Fit `value` into `box` and draw the current page: the usual one-call form."""
    fitted = fit(value, faces, box.w, box.h, shorter=shorter)
    draw_fitted(draw, box, fitted, page, fill=fill, align=align, valign=valign,
                bar_fill=bar_fill)
    return fitted
