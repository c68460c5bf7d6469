"""Every screen, compared pixel for pixel with its golden PNG.

The states come from the real flow (`terminal.screens.gallery.gallery_states`: FakeClock,
the built-in tag list, events from the model), rendered at 128×64 mode "1" and 256×64
mode "L". Goldens live in tests/screens/golden/ as NAME-128x64-1.png and so on.

To regenerate the goldens on purpose (after a deliberate change of a screen), run

    PINGJIA_REGOLD=1 .venv/bin/pytest tests/screens/test_screens.py

and look at the new PNGs before committing them. On a mismatch the test writes what it
drew to tests/screens/actual/ (git-ignored) and names both files.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from drivers.fonts import FontNotFound, find_fonts
from terminal import flow
from terminal.flow import Business, Invite, SignIn
from terminal.screens import render, render_fault_plain, render_out_of_service, storage_code
from terminal.screens.gallery import (CARD, DEFAULT_FORMATS, FOUND, LONG_ITEM, STAFF, _Run,
                                      default_config, file_name, gallery_frames, gallery_states,
                                      main)

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
ACTUAL = HERE / "actual"
REGOLD = os.environ.get("PINGJIA_REGOLD") == "1"
# The goldens were drawn with these (Debian xfonts-wqy); other fonts draw other pixels.
GOLDEN_FONTS = ("wenquanyi_9pt.pcf", "wenquanyi_12pt.pcf")

try:
    FONTS = find_fonts()
except FontNotFound as exc:  # pragma: no cover - the dev machine has them
    pytest.skip(str(exc), allow_module_level=True)

STATES = dict(gallery_states())
FRAME_NAMES = list(STATES) + ["out_of_service", "fault_plain"]


def _frame(name: str, size, mode: str) -> Image.Image:
    if name == "out_of_service":
        return render_out_of_service(size, mode, FONTS)
    if name == "fault_plain":
        return render_fault_plain(size, mode, "render failed: KeyError")
    return render(STATES[name], size, mode, FONTS)


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS, ids=["128x64-1", "256x64-L"])
@pytest.mark.parametrize("name", FRAME_NAMES)
def test_screen_matches_its_golden(name, size, mode):
    image = _frame(name, size, mode)
    assert image.size == size and image.mode == mode
    golden = GOLDEN / file_name(name, size, mode)
    if REGOLD:
        GOLDEN.mkdir(exist_ok=True)
        image.save(golden)
        return
    if (Path(FONTS.small_path).name, Path(FONTS.large_path).name) != GOLDEN_FONTS:
        pytest.skip(f"goldens are drawn with {GOLDEN_FONTS}, this machine found "
                    f"{FONTS.small_path} and {FONTS.large_path}")
    assert golden.exists(), f"no golden {golden}: run with PINGJIA_REGOLD=1 to create it"
    with Image.open(golden) as expected:
        expected.load()
    if expected.mode != image.mode or expected.size != image.size \
            or ImageChops.difference(expected, image).getbbox() is not None:
        ACTUAL.mkdir(exist_ok=True)
        actual = ACTUAL / golden.name
        image.save(actual)
        pytest.fail(f"{name} differs from its golden: expected {golden}, drew {actual}")


def test_gallery_covers_every_screen_type():
    kinds = {type(state.screen).__name__ for state in STATES.values()}
    assert kinds == {"Idle", "Invited", "Tagging", "Saving", "Thanks", "Info",
                     "LookingUp", "Choosing", "Notice"}
    assert STATES["paused"].paused and STATES["paused_message"].pause_message
    assert STATES["storage_error"].storage_error and STATES["fault"].fault
    assert STATES["idle_hint"].hint
    assert STATES["tagging_warn"].screen.warn
    selected = STATES["tagging_selected"].screen
    assert selected.selected and selected.cursor > 0
    assert STATES["invited_long_p1"].page == 1
    assert len(STATES["invited_3_items"].screen.visit.items) == 3


# --- behaviour -------------------------------------------------------------------------------

def same(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a, b).getbbox() is None


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS)
def test_render_is_pure(size, mode):
    for name, state in STATES.items():
        before = repr(state)
        assert same(render(state, size, mode, FONTS), render(state, size, mode, FONTS)), name
        assert repr(state) == before


def _period(state, size, mode, limit=12) -> int:
    frames = [render(replace(state, page=p), size, mode, FONTS) for p in range(limit)]
    for period in range(1, limit):
        if all(same(frames[p], frames[p + period]) for p in range(limit - period)):
            return period
    return limit


@pytest.mark.parametrize("size,mode,pages", [((128, 64), "1", 3), ((256, 64), "L", 2)])
def test_a_long_item_name_pages_through_and_comes_back(size, mode, pages):
    state = STATES["invited_long_p0"]
    assert _period(state, size, mode) == pages
    page1 = STATES["invited_long_p1"]
    assert not same(render(state, size, mode, FONTS), render(page1, size, mode, FONTS))


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS)
def test_several_items_cycle_one_by_one(size, mode):
    assert _period(STATES["invited_3_items"], size, mode) == 3


def test_storage_failure_overrides_every_screen():
    broken = STATES["storage_error"]
    for name, state in STATES.items():
        state = replace(state, storage_error=broken.storage_error, pending=broken.pending,
                        fault="")
        assert same(render(state, fonts=FONTS), render(broken, fonts=FONTS)), name


def test_fault_overlay_is_drawn_over_the_screen():
    state = STATES["fault"]
    assert not same(render(state, fonts=FONTS), render(replace(state, fault=""), fonts=FONTS))


def test_sync_indicator_only_when_something_waits_or_the_network_is_down():
    idle = STATES["idle"]
    plain = render(idle, fonts=FONTS)
    assert same(render(replace(idle, health={"queue_depth": 0, "network": "online"}), fonts=FONTS),
                plain)
    assert not same(render(replace(idle, health={"queue_depth": 3}), fonts=FONTS), plain)
    assert not same(render(replace(idle, health={"network": "offline"}), fonts=FONTS), plain)


def test_greyscale_uses_grey_for_secondary_text():
    image = render(STATES["idle"], (256, 64), "L", FONTS)
    assert {value for value, count in enumerate(image.histogram()) if count} >= {0, 120, 255}


def test_missing_texts_fall_back_to_the_shipped_defaults():
    state = STATES["idle"]
    bare = replace(state, config=replace(state.config, texts={}))
    assert same(render(bare, fonts=FONTS), render(state, fonts=FONTS))


def test_kiosk_invitation_without_staff_gives_the_item_more_room():
    cfg = replace(default_config(), mode="kiosk")
    run = _Run(cfg).send(Invite("k1", (LONG_ITEM,)))
    assert run.state.screen.visit.staff is None
    image = render(run.state, fonts=FONTS)
    assert image.size == (128, 64)
    assert _period(run.state, (128, 64), "1") == 2   # three lines a page instead of two


def test_tag_cursor_pages_a_tag_too_long_for_the_list():
    from config.tags import Tag, TagList
    long_tag = "在线预约办理后到实体大厅重复取号排队且窗口要求重新提交全部纸质材料"   # 33 chars
    tags = TagList("t", {1: (Tag("1", long_tag),), 2: (Tag("2", long_tag), Tag("3", "其他"))})
    run = _Run(replace(default_config(), tags=tags)).send(
        SignIn(STAFF), Invite("v", (Business("1", "事项"),)), flow.Press(2))
    assert _period(run.state, (128, 64), "1") == 2


def test_unsupported_mode_is_refused():
    with pytest.raises(ValueError):
        render(STATES["idle"], (128, 64), "RGB", FONTS)


@pytest.mark.parametrize("size,mode", DEFAULT_FORMATS)
def test_no_text_is_drawn_outside_the_frame(monkeypatch, size, mode):
    boxes = []
    real = ImageDraw.ImageDraw.text

    def recording(self, xy, text, fill=None, font=None, *args, **kwargs):
        boxes.append((text, self.textbbox(xy, text, font=font), self.im.size))
        return real(self, xy, text, fill, font, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording)
    for name in FRAME_NAMES:
        if name != "fault_plain":
            _frame(name, size, mode)
    assert boxes
    for text, (left, top, right, bottom), (w, h) in boxes:
        assert 0 <= left and right <= w and 0 <= top and bottom <= h, (text, top, bottom)


def test_storage_codes_are_short_and_stable():
    assert storage_code("database or disk is full").startswith("FULL-")
    assert storage_code("disk I/O error").startswith("IO-")
    assert storage_code("weird") == storage_code("weird") and len(storage_code("weird")) == 6


def test_plain_fault_frame_needs_no_cjk_font(monkeypatch):
    import drivers.fonts
    monkeypatch.setattr(drivers.fonts, "cached_fonts", lambda: None)
    for size, mode in DEFAULT_FORMATS:
        image = render_fault_plain(size, mode, "显示异常")
        assert image.size == size and image.mode == mode and image.getbbox() is not None


def test_gallery_command_writes_every_screen_scaled(tmp_path, capsys):
    assert main([str(tmp_path), "--scale", "2", "--size", "128x64:1"]) == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(file_name(n, (128, 64), "1") for n in FRAME_NAMES)
    with Image.open(tmp_path / file_name("idle", (128, 64), "1")) as image:
        assert image.size == (256, 128)
    assert len(gallery_frames((256, 64), "L", FONTS)) == len(FRAME_NAMES)


# --- the lists: a move redraws the pointer, a tick the box -----------------------------------

LONG_REASON = "在线预约办理后到实体大厅重复取号排队且窗口要求重新提交全部纸质材料并多次往返"
REASON_FORMATS = [((128, 64), "1", False), ((256, 64), "L", False), ((128, 64), "1", True),
                  ((256, 64), "L", True)]


def _reason_run(large: bool) -> _Run:
    """The built-in level-2 reasons with one longer than the whole list among them."""
    from config.tags import Tag, TagList, builtin
    tags = builtin()
    two = tags.for_level(2)
    tags = TagList(tags.version, {**tags.levels, 2: two[:3] + (Tag("299", LONG_REASON),) + two[3:]})
    return _Run(replace(default_config(), tags=tags, large_text=large)).send(
        SignIn(STAFF), Invite("v", (Business("1", "事项"),)), flow.Press(2))


def _changed(a: Image.Image, b: Image.Image, allowed=()) -> Image.Image:
    """Where `a` and `b` differ, with the `allowed` rectangles blanked out."""
    diff = ImageChops.difference(a, b)
    draw = ImageDraw.Draw(diff)
    for box in allowed:
        draw.rectangle(box, fill=0)
    return diff


@pytest.mark.parametrize("size,mode,large", REASON_FORMATS)
def test_a_move_inside_a_page_redraws_only_the_pointer_and_the_position(size, mode, large):
    from terminal.screens.window import reason_page
    run = _reason_run(large)
    assert _moves_inside_a_page(run, reason_page, size, mode) >= len(run.state.screen.options) // 2


def _moves_inside_a_page(run: _Run, page_of, size, mode) -> int:
    """Moves the cursor down through the list, round the end, and back up; checks that
    each move that keeps the page (by `page_of`) redraws the pointer's column and the
    position only, and says how many there were."""
    from terminal.screens.canvas import Canvas
    from terminal.screens.parts import POINTER_W
    n = len(run.state.screen.options)
    c = Canvas(size, mode, FONTS)
    counter_w = max(c.small.width(f"{k}/{n}") for k in range(1, n + 1))
    pointer = (0, 0, POINTER_W - 1, size[1] - 1)
    counter = (size[0] - counter_w, 0, size[0] - 1, c.y0 + c.small.height)
    inside = 0
    for key in ["down"] * n + ["up"] * n:
        before = run.state
        after = run.role(key).state
        if page_of(before, size, mode, FONTS) != page_of(after, size, mode, FONTS):
            continue
        inside += 1
        old, new = render(before, size, mode, FONTS), render(after, size, mode, FONTS)
        assert _changed(old, new, [pointer, counter]).getbbox() is None, (key, after.screen.cursor)
        assert _changed(old, new, [counter]).getbbox() is not None   # the pointer did move
    return inside


@pytest.mark.parametrize("size,mode,large", REASON_FORMATS)
def test_a_tick_redraws_only_its_check_box(size, mode, large):
    from terminal.screens.window import BOX_W, BOX_X
    run = _reason_run(large)
    for _ in run.state.screen.options:
        before = run.state
        after = run.role("toggle").state
        new = render(after, size, mode, FONTS)
        box = _changed(render(before, size, mode, FONTS), new).getbbox()
        assert box is not None
        left, top, right, bottom = box
        assert BOX_X <= left and right <= BOX_X + BOX_W and bottom - top <= BOX_W
        assert all(new.getpixel((0, y)) for y in range(top, bottom))   # beside the pointer
        run.role("down")


# A card holder's businesses: short names without a date or department (one row each, so
# pages hold several), one with both, and one longer than the whole list (with its date).
KIOSK_LIST = (flow.Finished(Business("k1", "户籍迁入")), flow.Finished(Business("k2", "居民身份证换领")),
              FOUND[0], flow.Finished(Business("k4", "个体工商户设立登记")),
              FOUND[2], flow.Finished(Business("k6", "户外广告设施设置审批")))


def _kiosk_list(large: bool, found=KIOSK_LIST) -> _Run:
    run = _Run(replace(default_config(), mode="kiosk", large_text=large)).send(CARD)
    return run.send(flow.LookupDone(run.state.lookups, found))


@pytest.mark.parametrize("size,mode,large", REASON_FORMATS)
def test_a_move_in_the_business_list_inside_a_page_redraws_only_the_pointer_and_the_position(
        size, mode, large):
    from terminal.screens.kiosk import business_page
    run = _kiosk_list(large)
    assert type(run.state.screen).__name__ == "Choosing"
    pages = {business_page(run.state, size, mode, FONTS)}
    assert _moves_inside_a_page(run, business_page, size, mode) >= 2
    for _ in KIOSK_LIST:
        pages.add(business_page(run.role("down").state, size, mode, FONTS))
    assert len(pages) >= 3   # the long business has a page of its own


@pytest.mark.parametrize("size,mode,pages", [((128, 64), "1", 3), ((256, 64), "L", 2)])
def test_a_business_too_long_for_the_list_pages_on_the_timer(size, mode, pages):
    run = _kiosk_list(False)
    run.role(*["down"] * KIOSK_LIST.index(FOUND[2]))
    assert _period(run.state, size, mode) == pages
    short = _kiosk_list(False)
    assert _period(short.state, size, mode) == 1   # a page of whole businesses stands still


def test_the_business_list_pages_do_not_depend_on_the_cursor():
    from terminal.screens.kiosk import business_page
    run = _kiosk_list(False)
    seen = []
    for _ in KIOSK_LIST:
        seen.append(business_page(run.state, fonts=FONTS))
        run.role("down")
    assert seen == sorted(seen) and seen[0] == 0   # consecutive businesses, pages in order
    for _ in KIOSK_LIST:   # and the same pages on the way back up
        run.role("up")
        assert business_page(run.state, fonts=FONTS) == seen[run.state.screen.cursor]
