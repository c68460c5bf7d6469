"""Find a CJK bitmap font at run time: a small one (about 12 px) and a large one (about 16 px).

The panels are 64 px tall and one bit deep, so the screens want real bitmap fonts, not a
scaled outline font: WenQuanYi Bitmap Song (Debian `xfonts-wqy`, 9pt = 12 px, 12pt = 16 px)
and GNU Unifont (`fonts-unifont`, 16 px). Order of search, for each of the two roles:

1. the files named in the settings (`[display] fonts = [...]`), in their order;
2. the known Debian locations of those packages;
3. whatever `fc-list :lang=zh` knows about.

A candidate counts only if it loads at a size that suits the role and really draws CJK
(满 and 意 come out as two different, non-empty glyphs: a font without them would draw
nothing or the same "missing" box twice). If only one role is found, that font serves
both; the screen layouts measure the fonts and adapt. If nothing is found,
`FontNotFound` says what to install.

Fonts are loaded once per search list (`find_fonts` caches its answer).
"""
from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from PIL import Image, ImageDraw, ImageFont

# Pixel sizes to try for a file whose size is unknown, best first. Bitmap fonts (PCF,
# BDF) load only at their own size; an outline font loads at the first one.
SMALL_SIZES = (12, 13, 11, 14)
LARGE_SIZES = (16, 15, 17, 18)

# The Debian packages' files: (file name, pixel size).
KNOWN_SMALL = (("wenquanyi_9pt.pcf", 12), ("wenquanyi_9pt.pcf.gz", 12),
               ("wenquanyi_10pt.pcf", 13), ("wenquanyi_10pt.pcf.gz", 13))
KNOWN_LARGE = (("wenquanyi_12pt.pcf", 16), ("wenquanyi_12pt.pcf.gz", 16),
               ("unifont.otf", 16), ("unifont.ttf", 16),
               ("wenquanyi_11pt.pcf", 15), ("wenquanyi_11pt.pcf.gz", 15))
SEARCH_DIRS = ("/usr/share/fonts/X11/misc", "/usr/share/fonts/opentype/unifont",
               "/usr/share/fonts/truetype/unifont", "/usr/share/fonts/X11/wqy",
               "/usr/local/share/fonts")

# Unifont is drawn on a 16 px grid: at any other size it is a smudge.
_NATIVE_ONLY = {"unifont": 16}

INSTALL_HINT = ("sudo apt install fonts-unifont xfonts-wqy "
                "(or name a BDF/PCF/OTF font file with CJK glyphs in the settings: "
                "[display] fonts = [\"/path/to/font.pcf\"])")


class FontNotFound(RuntimeError):
    """No usable CJK font: the message says what to install."""


@dataclass(frozen=True)
class FontSet:
    small: ImageFont.FreeTypeFont
    large: ImageFont.FreeTypeFont
    small_path: str
    large_path: str
    small_size: int
    large_size: int


_cache: dict = {}
_lock = threading.Lock()


def find_fonts(extra_paths: Iterable[str] = (), *, search_dirs: Optional[Sequence[str]] = None,
               use_fc_list: bool = True) -> FontSet:
    """The small and large CJK fonts: `extra_paths` first, then the known places.

    `search_dirs` replaces the known Debian directories (tests point it at an empty one).
    Raises FontNotFound with the packages to install when nothing usable is found.
    """
    extra = tuple(str(p) for p in extra_paths)
    dirs = tuple(SEARCH_DIRS if search_dirs is None else (str(d) for d in search_dirs))
    key = (extra, dirs, bool(use_fc_list))
    found = _cache.get(key)
    if found is not None:
        return found
    with _lock:
        found = _cache.get(key)
        if found is None:
            found = _search(extra, dirs, use_fc_list)
            _cache[key] = found
    return found


def cached_fonts() -> Optional[FontSet]:
    """A font set some earlier call already loaded, or None; never searches (no I/O)."""
    for fonts in list(_cache.values()):
        return fonts
    return None


def clear_cache() -> None:
    with _lock:
        _cache.clear()


# --- the search ---------------------------------------------------------------------

def _search(extra: tuple, dirs: tuple, use_fc_list: bool) -> FontSet:
    tried: list[str] = []
    small = _first(_candidates(extra, dirs, use_fc_list, KNOWN_SMALL, SMALL_SIZES), tried)
    large = _first(_candidates(extra, dirs, use_fc_list, KNOWN_LARGE, LARGE_SIZES), tried)
    if small is None and large is None:
        where = ", ".join(dict.fromkeys(tried)) or "nothing to try"
        raise FontNotFound("no font with Chinese glyphs found (tried: " + where + "). "
                           "Install one: " + INSTALL_HINT)
    small = small or large
    large = large or small
    return FontSet(small=small[0], large=large[0], small_path=small[1], large_path=large[1],
                   small_size=small[2], large_size=large[2])


def _candidates(extra, dirs, use_fc_list, known, sizes):
    """(path, sizes to try) in the order of preference."""
    for path in extra:
        p = Path(path)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                yield str(child), sizes
        else:
            yield path, sizes
    for name, size in known:
        for d in dirs:
            yield os.path.join(d, name), (size,)
    if use_fc_list:
        for path in _fc_list():
            yield path, sizes


def _first(candidates, tried: list):
    for path, sizes in candidates:
        if not os.path.isfile(path):
            continue
        tried.append(path)
        native = next((s for k, s in _NATIVE_ONLY.items() if k in os.path.basename(path).lower()),
                      None)
        for size in sizes:
            if native is not None and size != native:
                continue
            font = _load(path, size)
            if font is not None and has_cjk(font):
                return font, path, size
    return None


def _load(path: str, size: int):
    try:
        # Basic layout: bitmap CJK needs no shaping, and it is several times faster.
        return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)
    except (OSError, ValueError):  # not a font, or a bitmap font without this size
        return None


def has_cjk(font) -> bool:
    """True when the font draws 满 and 意 as two different, non-empty glyphs."""
    glyphs = []
    for ch in "满意":
        try:
            left, top, right, bottom = font.getbbox(ch)
            image = Image.new("1", (max(1, right) + 2, max(1, bottom) + 2))
            ImageDraw.Draw(image).text((0, 0), ch, font=font, fill=1)
        except Exception:
            return False
        if image.getbbox() is None:
            return False
        glyphs.append(image.tobytes())
    return glyphs[0] != glyphs[1]


def _fc_list() -> list[str]:
    try:
        out = subprocess.run(["fc-list", ":lang=zh", "--format=%{file}\\n"], capture_output=True,
                             text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.strip() for line in out.splitlines() if line.strip()})
