"""Parts of a frame that the window's screens and the kiosk's share: the sync indicator,
the staff line, QR codes with text beside them, the fault overlay, the storage error code,
and what both lists (the reason list, the kiosk's business list) are made of: pages of
whole entries, the pointer, the position, the key caps.

Drawn the same wherever they appear, so a kiosk rates, fails and shows its queue exactly
like a window; both screen modules take them from here.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence

from config import qr as qr_codes
from terminal.flow.model import State
from terminal.screens.canvas import Canvas, column, overlay
from terminal.screens.layout import Box, Fitted, fit, pack

QR_RATE = ("扫码评价", "可在手机上 稍后评价")   # idle after an unrated end: rate later
LIT = 255                      # the QR code's field: full brightness on every panel
# Storage errors as a short code a technician can tell apart: a kind, then a checksum.
_STORAGE_KINDS = (("full", "FULL"), ("i/o", "IO"), ("readonly", "RO"), ("read-only", "RO"),
                  ("locked", "LOCK"), ("busy", "LOCK"), ("malformed", "BAD"),
                  ("corrupt", "BAD"), ("not a database", "BAD"), ("unable to open", "OPEN"),
                  ("permission", "PERM"), ("denied", "PERM"))
# A list's left column: the cursor as a solid ▶, with nothing else in it, so that a move
# on the page redraws this column and the position only (a few bytes on the panel's bus).
POINTER_W = 5
LIST_X = POINTER_W + 1   # where a row's own drawing (check box, text) starts


def sync_text(health) -> str:
    """What waits to be sent, for the top line: 离线 (offline), 待传 N (records queued)."""
    parts = []
    if health.get("network") == "offline":
        parts.append("离线")
    try:
        depth = int(health.get("queue_depth", 0) or 0)
    except (TypeError, ValueError):
        depth = 0
    if depth > 0:
        parts.append("待传 " + (str(depth) if depth < 10000 else "9999+"))
    return " ".join(parts)


def staff_text(staff) -> tuple[str, tuple]:
    """(text, shorter forms) of the staff member: name and number (工号) side by side; the
    name is never dropped."""
    if staff is None:
        return "", ()
    if not staff.id:
        return f"工作人员 {staff.name}", (staff.name,)
    return (f"工作人员 {staff.name} 工号{staff.id}",
            (f"{staff.name} 工号{staff.id}", f"{staff.name} {staff.id}"))


def draw_qr(c: Canvas, url: str) -> int:
    """The QR code of `url` at the right edge, centred up and down: dark modules on a lit
    field with its quiet zone (config/qr.py says how big). Returns the x left of it."""
    placed = qr_codes.place(url, (c.w, c.h))
    if placed is None:   # the flow refuses such URLs; nothing half-drawn if one slips by
        return c.w
    x0, y0 = c.w - placed.size, (c.h - placed.size) // 2
    c.draw.rectangle((x0, y0, c.w - 1, y0 + placed.size - 1), fill=LIT)
    k, edge = placed.scale, placed.border
    for r, row in enumerate(placed.modules):
        for col, dark in enumerate(row):
            if dark:
                x, y = x0 + (col + edge) * k, y0 + (r + edge) * k
                c.draw.rectangle((x, y, x + k - 1, y + k - 1), fill=0)
    return x0


def qr_left(c: Canvas, url: str) -> int:
    """The room left of the code of `url` (the whole width when it cannot be drawn)."""
    placed = qr_codes.place(url, (c.w, c.h))
    return c.w - placed.size - 2 if placed is not None else c.w


def qr_screen(c: Canvas, state: State, urls: tuple, blocks, top: int) -> None:
    """A QR code on the right (one of `urls` per page), `blocks` of text left of it."""
    url = urls[state.page % len(urls)]
    x = draw_qr(c, url)
    column(c, blocks, Box(0, top, x - 2, c.h - top), state.page)


def fault_overlay(c: Canvas, state: State) -> None:
    """An internal error the flow survived: said over whatever screen is showing."""
    if state.fault:
        overlay(c, [("系统异常 已恢复", c.both, c.ink.fg),
                     ("代码 F-" + _crc(state.fault), (c.small,), c.ink.dim)], state.page)


def storage_code(error: str) -> str:
    """A short code for a storage error, e.g. FULL-3A1C: a kind, then a checksum."""
    low = error.lower()
    kind = next((k for word, k in _STORAGE_KINDS if word in low), "E")
    return f"{kind}-{_crc(error)}"


def _crc(text: str) -> str:
    return f"{zlib.crc32(text.encode('utf-8')) & 0xFFFF:04X}"


# --- lists --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ListPages:
    """A list laid out: where it starts, each entry fitted whole (wrapped over the rows it
    needs, paged on state.page when it needs more than the list has), and the pages of
    consecutive entries. None of it depends on the cursor."""
    top: int
    fits: tuple[Fitted, ...]
    pages: tuple[range, ...]

    def page_of(self, index: int) -> int:
        return next(p for p, page in enumerate(self.pages) if index in page)

    def rows(self, cursor: int) -> Iterator[tuple[int, int, Fitted]]:
        """(index, y of its ink, fitted) of every entry on the page holding `cursor`."""
        y = self.top
        for i in self.pages[self.page_of(cursor)]:
            yield i, y, self.fits[i]
            y += self.fits[i].rows * self.fits[i].face.pitch


def list_pages(c: Canvas, texts: Sequence, x: int, top: int) -> ListPages:
    """`texts` (a string, or a tuple of paragraphs, each) in the small face from `x` to the
    right edge, between `top` and the key caps."""
    s = c.small
    rows = s.rows(caps_top(c) - top)
    fits = tuple(fit(text, (s,), c.w - x, s.block(rows)) for text in texts)
    return ListPages(top, fits, pack([f.rows for f in fits], rows))


def cursor_page(state: State, kind: type, listing, size, mode: str, fonts) -> int:
    """Which page of its list a list screen of type `kind` shows (the one holding the
    cursor), `listing(canvas, screen)` laying the list out; -1 when `state` shows no such
    list. For the benchmark and tests: a move that keeps the page redraws only the
    pointer and the position."""
    screen = state.screen
    if state.storage_error or not isinstance(screen, kind) or not screen.options:
        return -1
    listed = listing(Canvas(size, mode, fonts, state.config.large_text), screen)
    return listed.page_of(screen.cursor % len(screen.options))


def pointer(c: Canvas, y: int) -> None:
    """▶ in the list's left column, centred on the first line of the row whose ink starts
    at `y`."""
    mid = y + (c.small.height - 1) // 2
    c.draw.polygon([(0, mid - 4), (POINTER_W - 1, mid), (0, mid + 4)], fill=c.ink.fg)


def position(c: Canvas, index: int, n: int) -> int:
    """"3/8" at the right of the top line, in the room of its widest value (digits differ
    in width), so that the line beside it never refits on a move. Returns that room."""
    s = c.small
    room = max((s.width(f"{k}/{n}") for k in range(1, n + 1)), default=0)
    if n:
        c.text(Box(c.w - room, c.y0, room, s.height), f"{index + 1}/{n}", (s,),
               fill=c.ink.dim, align="right")
    return room


def caps_top(c: Canvas) -> int:
    """The top of the key caps along the bottom edge."""
    return c.h - c.small.height


def key_caps(c: Canvas, labels: Sequence[str], shorts: Sequence[str]) -> None:
    """One key cap above each button, left to right: its label, or the short form where
    the label is wider than the cap."""
    s = c.small
    top = caps_top(c)
    cells = len(labels)
    for i, (label, short) in enumerate(zip(labels, shorts)):
        x0, x1 = i * c.w // cells, (i + 1) * c.w // cells - 1
        text = label if s.width(label) <= x1 - x0 else short
        c.box(Box(x0, top, x1 - x0, c.h - top), c.ink.bar)
        c.draw.text((x0 + (x1 - x0 - s.width(text) + 1) // 2, top - s.top), text, font=s.font,
                    fill=c.ink.on_bar)
