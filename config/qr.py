"""How a URL becomes a QR code on the panel: the one place for its geometry.

The settings check (a `qr.url_template` that cannot fit) and the screens (drawing the
code) share it, so the two never disagree about what fits.

The code is drawn dark modules on a lit field, the field including a quiet zone, on a
panel only 64 px tall. Modules are at least 2 px on panels narrower than 256 px (1 px at
256 and wider, apis.md §1b). The module size is the largest that leaves
a quiet zone of at least 1 module, and the zone is as wide as the room allows, up to the
standard 4 (the dark panel around the lit field is no part of the code; phone scanners
and zxing read a 1-module zone on a lit field, and bigger modules read from further
away). A URL whose smallest code does not fit does not fit.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Mapping, Optional
from urllib.parse import quote

MAX_URL = 512
# Fields of the record a template may name, with a value of typical length used by the
# settings check ("would a usual business's URL fit?").
TEMPLATE_FIELDS: Mapping[str, str] = {
    "project_no": "330106202611220001", "task_code": "11330106002489123X4330110000",
    "task_handle_item": "11330106002489123X433011000001", "dept_code": "11330106002489123X",
    "area_code": "330106", "hall_code": "HALL01", "window_no": "01", "pf": "5",
    "device_id": "PJQ-000000-0001", "visit_id": "3f1c2a9e-1d2b-4c3d-8e4f-5a6b7c8d9e0f",
    "staff_id": "0123", "channel": "window",
}
_PIECE = re.compile(r"\{(\w*)\}")


@dataclass(frozen=True)
class Placed:
    """A code as drawn: `modules` rows of booleans (True = dark), `scale` px per module,
    `border` modules of quiet zone on each side; `size` the lit square's side in px."""
    modules: tuple
    scale: int
    border: int

    @property
    def size(self) -> int:
        return (len(self.modules) + 2 * self.border) * self.scale


def min_scale(panel_width: int) -> int:
    return 1 if panel_width >= 256 else 2


@functools.lru_cache(maxsize=64)
def matrix(url: str) -> Optional[tuple]:
    """The smallest QR code (not micro) for `url`, error correction raised where free."""
    # here: segno loads its writers, and they urllib.request, xml.sax and gzip (about
    # 1 MiB resident); a terminal without qr.url_template never draws a code
    import segno

    try:
        code = segno.make_qr(url, error="l", boost_error=True)
    except segno.DataOverflowError:
        return None
    return tuple(tuple(bool(v) for v in row) for row in code.matrix)


def place(url: str, panel: tuple, height: Optional[int] = None) -> Optional[Placed]:
    """How `url` is drawn on a panel (width, height) in `height` px (default: the panel's
    height), or None when it cannot fit."""
    modules = matrix(url)
    if modules is None:
        return None
    room = panel[1] if height is None else height
    n = len(modules)
    low = min_scale(panel[0])
    for scale in range(max(low, 4), low - 1, -1):
        border = min(4, (room // scale - n) // 2)
        if border >= 1:
            return Placed(modules, scale, border)
    return None


def fits(url: str, panel: tuple) -> bool:
    return place(url, panel) is not None


def template_fields(template: str) -> list[str]:
    return [m.group(1) for m in _PIECE.finditer(template)]


def template_problem(template: str) -> Optional[str]:
    """Why `template` is no URL template, or None (fit is checked with the panel)."""
    if not template:
        return None
    if not template.startswith("https://"):
        return "must start with https://"
    if set("{}") & set(_PIECE.sub("", template)):
        return "braces must enclose a field name, e.g. {project_no}"
    names = template_fields(template)
    unknown = [n for n in names if n not in TEMPLATE_FIELDS]
    if unknown:
        return (f"unknown field {{{unknown[0]}}}; known: "
                + ", ".join("{" + k + "}" for k in TEMPLATE_FIELDS))
    if len(fill(template, TEMPLATE_FIELDS)) > MAX_URL:
        return f"makes URLs longer than {MAX_URL} characters"
    return None


def fill(template: str, values: Mapping[str, str]) -> str:
    """The template with each {field} replaced by its value, percent-encoded."""
    return _PIECE.sub(lambda m: quote(str(values.get(m.group(1), "")), safe=""), template)
