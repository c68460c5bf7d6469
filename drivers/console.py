"""A luma device that draws the panel in a terminal with Unicode half blocks.

Each text row shows two pixel rows (▀ top, ▄ bottom, █ both), inside a frame, with a
few status lines under it (the simulator shows its key help and last messages there).
On a TTY the frame is redrawn in place at the top of the screen; otherwise, say into a
log file or a pipe, frames are printed one after another with no escape codes at all.

A 128x64 panel with six status lines needs a terminal of 130 columns and 40 rows
(`needed_size`). Every row is placed by cursor address and line wrap is off, so a
smaller window crops the picture instead of scrolling or scrambling it, and the top
border then says how large the window must be. `redraw()` draws it all again, e.g.
after the window was resized (SIGWINCH).
"""
from __future__ import annotations

import os
import sys
import threading

from luma.core.device import dummy

__all__ = ["console", "half_blocks", "STATUS_LINES"]

STATUS_LINES = 6  # under the panel: a line of key help and the last five messages

_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}

# Pixels at least this bright count as lit (greyscale panels show dim greys too).
_LIT = 64

_HOME, _SAVE, _RESTORE = "\x1b[H", "\x1b7", "\x1b8"
_CLEAR_SCREEN, _CLEAR_EOL = "\x1b[2J", "\x1b[K"
_NOWRAP, _WRAP = "\x1b[?7l", "\x1b[?7h"


def half_blocks(image) -> list[str]:
    """The rows of half-block art for a PIL image (any mode), framed by a box."""
    grey = image.convert("L")
    width, height = grey.size
    px = grey.load()
    lines = ["┌" + "─" * width + "┐"]
    for y in range(0, height, 2):
        row = []
        for x in range(width):
            top = px[x, y] >= _LIT
            bottom = y + 1 < height and px[x, y + 1] >= _LIT
            row.append(_BLOCKS[top, bottom])
        lines.append("│" + "".join(row) + "│")
    lines.append("└" + "─" * width + "┘")
    return lines


class console(dummy):
    """luma `dummy` that also draws every new frame on `stream` (default sys.stdout)."""

    def __init__(self, width=128, height=64, rotate=0, mode="1", stream=None,
                 status_lines=STATUS_LINES, **kwargs):
        super().__init__(width=width, height=height, rotate=rotate, mode=mode, **kwargs)
        self._stream = stream if stream is not None else sys.stdout
        isatty = getattr(self._stream, "isatty", None)
        self.is_tty = bool(isatty and isatty())
        self._status_lines = status_lines
        self._status = ""
        self._lines: list[str] = []
        self._frames = 0
        self._cleared = False
        self._lock = threading.Lock()  # the status may come from another thread

    def display(self, image):
        super().display(image)
        with self._lock:
            self._lines = half_blocks(self.image)
            self._frames += 1
            self._draw(frame=True)

    def set_status(self, text: str) -> None:
        with self._lock:
            if text == self._status:
                return
            self._status = text
            if self._lines:
                self._draw(frame=False)

    def needed_size(self) -> tuple[int, int]:
        """(columns, rows) of a terminal that shows the framed panel and its status lines."""
        width, height = self.size
        return width + 2, (height + 1) // 2 + 2 + self._status_lines

    def too_small(self) -> str:
        """What is wrong with the terminal's size, or "" when it fits (or is no terminal)."""
        if not self.is_tty:
            return ""
        try:
            have = os.get_terminal_size(self._stream.fileno())
        except (AttributeError, ValueError, OSError):  # a closed or odd stream
            return ""
        cols, rows = self.needed_size()
        if have.columns >= cols and have.lines >= rows:
            return ""
        return (f"window {have.columns}x{have.lines} is too small for the panel: "
                f"make it {cols}x{rows} or larger")

    def redraw(self) -> None:
        """Clear the terminal and draw frame and status again (after a resize)."""
        with self._lock:
            if self._lines:
                self._cleared = False
                self._draw(frame=True)

    def _status_rows(self) -> list[str]:
        rows = self._status.splitlines()[: self._status_lines]
        return rows + [""] * (self._status_lines - len(rows))

    def _draw(self, frame: bool) -> None:
        if not self.is_tty:
            if frame:
                out = [f"--- frame {self._frames} ---", *self._lines,
                       *(row for row in self._status_rows() if row), ""]
            else:
                out = [f"status: {line}" for line in self._status_rows() if line] or ["status:"]
            self._write("\n".join(out) + ("" if frame else "\n"))
            return
        parts = [_SAVE, _NOWRAP]
        if not self._cleared:
            parts.append(_CLEAR_SCREEN)
        if frame:
            parts.append(_HOME)
            rows = list(self._lines)
            warning = self.too_small()
            if warning:  # the top row is the one every window shows
                rows[0] = f"┌ {warning} ".ljust(len(rows[0]), "─")
            first = 1
        else:
            rows, first = [], len(self._lines) + 1
        rows += self._status_rows()
        # each row at its own address: a short window crops, it never scrolls the panel away
        parts += [f"\x1b[{first + i};1H{row}{_CLEAR_EOL}" for i, row in enumerate(rows)]
        parts += [_WRAP, _RESTORE]
        if not self._cleared:
            # first frame: leave the cursor under the picture for anything else printed
            parts.append(f"\x1b[{len(self._lines) + self._status_lines + 1};1H")
            self._cleared = True
        self._write("".join(parts))

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not stop the terminal service
