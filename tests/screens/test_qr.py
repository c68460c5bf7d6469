"""QR codes on the panel: every QR screen's frame, decoded by a real decoder (zxing-cpp),
gives exactly the URL back, at both panel sizes, for an item's rate_url and for the
qr.url_template; the code is dark on lit with a quiet zone and big enough modules."""
from __future__ import annotations

from dataclasses import replace

import pytest
import zxingcpp
from PIL import Image

from config import qr
from terminal import flow
from terminal.flow import Business, Invite, Press, SignIn
from terminal.screens import render
from terminal.screens.gallery import (DEFAULT_FORMATS, QR_TEMPLATE, RATE_URL, SHORT_ITEM, STAFF,
                                      _Run, default_config, gallery_states)

from tests.screens.test_screens import FONTS

STATES = dict(gallery_states())
TEMPLATE_URL = qr.fill(QR_TEMPLATE, {"project_no": SHORT_ITEM.project_no})
FOUND_URL = qr.fill(QR_TEMPLATE, {"project_no": "330106202611200017"})
# every screen with a QR code, and the URL it must give back
QR_SCREENS = {
    "thanks_qr": RATE_URL, "idle_qr": RATE_URL, "large-thanks_qr": RATE_URL,
    "thanks_qr_template": TEMPLATE_URL, "idle_qr_template": TEMPLATE_URL,
    "kiosk-idle_qr": RATE_URL, "kiosk-thanks_qr": FOUND_URL,
}


def decode(image: Image.Image) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))]


def test_the_list_names_every_qr_screen_of_the_gallery():
    with_qr = {name for name, state in STATES.items()
               if state.qr or getattr(state.screen, "qr", ())}
    assert with_qr == set(QR_SCREENS)


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS, ids=["128x64-1", "256x64-L"])
@pytest.mark.parametrize("name", sorted(QR_SCREENS))
def test_every_qr_screen_decodes_to_exactly_its_url(name, size, mode):
    assert decode(render(STATES[name], size, mode, FONTS)) == [QR_SCREENS[name]]


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS, ids=["128x64-1", "256x64-L"])
def test_screens_without_a_url_show_no_code(size, mode):
    for name in ("thanks", "idle", "kiosk-idle"):
        assert decode(render(STATES[name], size, mode, FONTS)) == [], name


@pytest.mark.parametrize("width", [128, 256])
def test_dark_modules_on_a_lit_field_with_a_quiet_zone(width):
    state = STATES["thanks_qr"]
    image = render(state, (width, 64), "1", FONTS)
    placed = qr.place(RATE_URL, (width, 64))
    assert placed.scale >= qr.min_scale(width) and placed.border >= 1
    assert placed.scale >= 2 or width >= 256
    x0, y0 = width - placed.size, (64 - placed.size) // 2
    px = image.load()
    k, edge = placed.scale, placed.border
    for r, row in enumerate(placed.modules):
        for c, dark in enumerate(row):
            for dy in range(k):
                for dx in range(k):
                    x, y = x0 + (c + edge) * k + dx, y0 + (r + edge) * k + dy
                    assert (px[x, y] == 0) == dark, (r, c)
    # the quiet zone is lit all round
    for i in range(placed.size):
        for x, y in ((x0 + i, y0), (x0 + i, y0 + placed.size - 1), (x0, y0 + i),
                     (x0 + placed.size - 1, y0 + i)):
            assert px[x, y] == 255


@pytest.mark.parametrize("size", [(128, 64), (256, 64)])
def test_longer_urls_still_decode_up_to_the_limit(size):
    """The longest URL that fits each panel is still read back exactly."""
    base = "https://hcp.example.gov.cn/r/"
    longest = max(n for n in range(0, 300) if qr.fits(base + "9" * n, size))
    url = base + "9" * longest
    assert not qr.fits(url + "9", size)
    run = _Run(replace(default_config(), panel=size)).send(
        SignIn(STAFF), Invite("v", (replace(SHORT_ITEM, rate_url=url),)), Press(5))
    assert decode(render(run.state, size, "1" if size[0] < 256 else "L", FONTS)) == [url]


def test_several_businesses_show_their_codes_page_by_page():
    cfg = default_config()
    items = (Business("A-1", "甲", rate_url="https://hcp.example.gov.cn/r/A-1"),
             Business("A-2", "乙"),
             Business("A-3", "丙", rate_url="https://hcp.example.gov.cn/r/A-3"))
    run = _Run(cfg).send(SignIn(STAFF), Invite("v", items), Press(5))
    assert run.state.screen.qr == ("https://hcp.example.gov.cn/r/A-1",
                                   "https://hcp.example.gov.cn/r/A-3")
    seen = {decode(render(replace(run.state, page=p), fonts=FONTS))[0] for p in range(2)}
    assert seen == set(run.state.screen.qr)


def test_the_idle_code_goes_after_show_s_or_at_the_next_invitation():
    cfg = replace(default_config(), qr_template=QR_TEMPLATE)
    run = _Run(cfg).send(SignIn(STAFF), Invite("v1", (SHORT_ITEM,))).timeout()
    assert run.state.qr == (TEMPLATE_URL,)
    run.clock.advance(cfg.qr_ms - 1)
    run.send(flow.Tick())
    assert run.state.qr
    run.clock.advance(1)
    run.send(flow.Tick())
    assert run.state.qr == () and decode(render(run.state, fonts=FONTS)) == []
    again = _Run(cfg).send(SignIn(STAFF), Invite("v1", (SHORT_ITEM,))).timeout()
    again.send(Invite("v2", (replace(SHORT_ITEM, project_no="P-2"),)))
    assert again.state.qr == ()
    again.timeout()   # the new one's code replaces it
    assert again.state.qr == (qr.fill(QR_TEMPLATE, {"project_no": "P-2"}),)
