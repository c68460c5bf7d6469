"""What the panel shows: pure functions from the flow's state to a PIL image.

- `render(state, size=(128, 64), mode="1", fonts=None)`: the frame for a state.
- `render_out_of_service(size, mode, fonts)`: left on the panel when the service stops.
- `render_fault_plain(size, mode, message)`: last resort when rendering itself failed;
  needs nothing but Pillow's built-in font.

Sizes 128×64 and 256×64, modes "1" (ssd1306, sh1106) and "L" (ssd1322, ssd1325,
ssd1327); the display driver converts further if a device wants RGB. `layout` holds the
one text helper (measure, wrap, fit, page) every screen uses; `canvas` the frame being
drawn and its blocks of text; `parts` what the window's screens (`window`) and the
kiosk's (`kiosk`) both draw; `gallery` renders every screen for the docs and for a
technician's display test.
"""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from terminal.screens.canvas import MODES, SIZES
from terminal.screens.parts import storage_code
from terminal.screens.window import render_out_of_service
# The kiosk's render draws its own screens and hands all others to the window's.
from terminal.screens.kiosk import render

__all__ = ["MODES", "SIZES", "render", "render_out_of_service", "render_fault_plain",
           "storage_code"]


def render_fault_plain(size=(128, 64), mode: str = "1", message: str = "") -> Image.Image:
    """A frame that says something went wrong, drawn with as little as possible.

    The header is drawn with Pillow's built-in bitmap font (ASCII only). The message is
    drawn with a CJK font only if one is already loaded (no search, no file access);
    otherwise its non-ASCII characters are left out. Never raises for a sane size.
    """
    mode = mode if mode in ("1", "L") else "L"
    image = Image.new(mode, (int(size[0]), int(size[1])), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    try:
        plain = ImageFont.load_default_imagefont()
    except AttributeError:   # Pillow < 10.1: load_default() is the bitmap font
        plain = ImageFont.load_default()
    draw.rectangle((0, 0, image.width - 1, 11), fill=255)
    draw.text((2, 1), "SYSTEM FAULT", font=plain, fill=0)
    y = 15
    cjk = _loaded_small_font()
    message = str(message or "")
    if cjk is not None and not message.isascii():
        try:
            for line in _plain_lines(message, cjk, image.width - 4):
                draw.text((2, y), line, font=cjk, fill=255)
                y += 14
            return image
        except Exception:   # fall through to the ASCII form
            pass
    text = "".join(ch for ch in message if 32 <= ord(ch) < 127).strip() or "see log"
    for line in _plain_lines(text, plain, image.width - 4):
        if y > image.height - 10:
            break
        draw.text((2, y), line, font=plain, fill=255)
        y += 11
    return image


def _loaded_small_font():
    try:
        from drivers.fonts import cached_fonts
        fonts = cached_fonts()
        return fonts.small if fonts is not None else None
    except Exception:
        return None


def _plain_lines(text: str, font, width: int) -> list[str]:
    lines, cur = [], ""
    for ch in text:
        if cur and font.getlength(cur + ch) > width:
            lines.append(cur)
            cur = ""
        cur += ch
    if cur:
        lines.append(cur)
    return lines[:4]
