"""The text helper every screen uses: wrapping and paging keep every character, in order,
and nothing is drawn outside its box."""
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from config.tags import Tag, TagList
from drivers.fonts import FontNotFound, find_fonts
from terminal import flow
from terminal.screens import render
from terminal.screens.gallery import STAFF, _Run, default_config
from terminal.screens.layout import BAR, Box, clean, draw_fitted, face, fit, pack, paginate, wrap
from terminal.screens.window import TEXT_X

try:
    FONTS = find_fonts()
except FontNotFound as exc:  # pragma: no cover - the dev machine has them
    pytest.skip(str(exc), allow_module_level=True)

SMALL = face(FONTS.small)
LARGE = face(FONTS.large)
LONG = ("企业投资项目核准（含外商投资项目、境外投资项目及需报省级人民政府核准的"
        "固定资产投资项目）变更及延期申请（告知承诺制）")

# Chinese (common and rare), Latin, digits, punctuation and spaces.
TEXT_CHARS = st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
                       st.sampled_from("ABCxyz0123456789-/()（），。、：；！？… ·"))
TEXTS = st.text(TEXT_CHARS, min_size=1, max_size=80)


def visible(text: str) -> str:
    return "".join(clean(text).split())


def joined(pages) -> str:
    return "".join("".join(line.split()) for page in pages for line in page)


# --- wrap ---------------------------------------------------------------------------------

def test_short_text_is_one_line():
    assert wrap("请您对本次服务评价", SMALL, 128) == ["请您对本次服务评价"]


def test_chinese_breaks_between_characters_and_every_line_fits():
    lines = wrap(LONG, SMALL, 128)
    assert "".join(lines) == LONG
    assert all(SMALL.width(line) <= 128 for line in lines)
    assert len(lines) == 6


def test_a_number_moves_whole_to_the_next_line():
    assert wrap("流水号 330106202611220001", SMALL, 128) == ["流水号", "330106202611220001"]


def test_a_word_separated_by_a_space_moves_whole():
    assert wrap("系统异常 已恢复", LARGE, 118) == ["系统异常", "已恢复"]


def test_closing_punctuation_does_not_start_a_line():
    text = "一二三四五六七八九十，后面"   # 10 characters fill a 120 px line; the comma follows
    lines = wrap(text, SMALL, 120)
    assert not lines[1].startswith("，")
    assert "".join(lines) == text


def test_an_overlong_ascii_run_is_split():
    lines = wrap("X" * 40, SMALL, 60)
    assert "".join(lines) == "X" * 40 and all(SMALL.width(line) <= 60 for line in lines)


def test_control_characters_and_newlines_become_spaces():
    assert clean("  a\tb\n\nc\u200b ") == "a b c"
    assert wrap(("第一段", "第二段"), SMALL, 128) == ["第一段", "第二段"]


def test_first_line_indent():
    lines = wrap("一二三四五六七八九十", SMALL, lambda i: 60 if i == 0 else 120)
    assert lines == ["一二三四五", "六七八九十"]


# --- fit and pages ----------------------------------------------------------------------------

def test_fit_prefers_the_large_face_when_the_text_fits_whole():
    assert fit("暂停服务", (LARGE, SMALL), 128, 40).face is LARGE
    small = fit("欢迎您，请办理业务", (LARGE, SMALL), 128, 25)
    assert small.face is SMALL and not small.paged


def test_fit_tries_shorter_alternatives_before_paging():
    fitted = fit("流水号 330106202611220001", (SMALL,), 128, 12, shorter=("330106202611220001",))
    assert fitted.pages == (("330106202611220001",),) and not fitted.paged


def test_long_text_is_paged_with_room_for_the_page_bar():
    fitted = fit(LONG, (SMALL,), 128, SMALL.block(2))
    assert fitted.paged and len(fitted.pages) == 3   # 58 characters, 10 a line, 2 lines a page
    assert all(len(page) <= 2 for page in fitted.pages)
    assert all(SMALL.width(line) <= 128 - BAR for page in fitted.pages for line in page)
    assert joined(fitted.pages) == LONG
    assert fitted.page(4) == fitted.pages[1]   # the flow's page counter wraps around


def test_paginate_always_gives_a_page():
    assert paginate([], 3) == [()]
    assert paginate(list("abcde"), 2) == [("a", "b"), ("c", "d"), ("e",)]


@pytest.mark.parametrize("text", ["满意", LONG, "流水号 330106202611220001 工作人员 王芳", "gjpqy" * 9])
@pytest.mark.parametrize("faces", [(SMALL,), (LARGE, SMALL)])
def test_nothing_is_drawn_outside_the_box(text, faces):
    box = Box(20, 30, 128, 38)
    for page in range(5):
        image = Image.new("1", (200, 120))
        fitted = fit(text, faces, box.w, box.h)
        draw_fitted(ImageDraw.Draw(image), box, fitted, page, fill=1)
        left, top, right, bottom = image.getbbox()
        f = fitted.face   # brackets may use the empty row above or below a line
        assert box.x <= left and right <= box.right, (text, page)
        assert box.y - f.over <= top and bottom <= box.bottom + f.under, (text, page)
        assert f.over <= 1 and f.under <= 1


# --- properties -----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(text=TEXTS, width=st.sampled_from([60, 116, 125, 128, 253, 256]),
       rows=st.integers(1, 5), large=st.booleans())
def test_pages_hold_the_whole_text_in_order(text, width, rows, large):
    f = LARGE if large else SMALL
    fitted = fit(text, (f,), width, f.block(rows))
    assert joined(fitted.pages) == visible(text)
    limit = width - (BAR if fitted.paged else 0)
    for page in fitted.pages:
        assert len(page) <= rows
        for line in page:
            assert f.width(line) <= limit or len(line) == 1


@settings(max_examples=200, deadline=None)
@given(heights=st.lists(st.integers(1, 4), max_size=12), rows=st.integers(1, 3))
def test_pack_puts_whole_items_on_pages_in_order(heights, rows):
    pages = pack(heights, rows)
    assert [i for page in pages for i in page] == list(range(len(heights)))
    assert all(pages) or pages == (range(0, 0),)
    for page in pages:
        assert len(page) == 1 or sum(heights[i] for i in page) <= rows
    for before, page in zip(pages, pages[1:]):   # a page starts only when the item would not fit
        assert sum(heights[i] for i in before) + heights[page[0]] > rows


def test_pack_fills_a_page_then_starts_the_next():
    assert pack([1, 1, 1, 2, 2, 2, 1, 1], 3) == (range(0, 3), range(3, 4), range(4, 5),
                                                 range(5, 7), range(7, 8))
    assert pack([5, 1], 3) == (range(0, 1), range(1, 2))


def _tag_state(item_name: str, tag_texts: list, cursor_moves: int, level: int):
    tags = tuple(Tag(f"t{i}", t) for i, t in enumerate(tag_texts))
    cfg = replace(default_config(), tags=TagList("x", {1: tags, 2: tags}))
    run = _Run(cfg).send(flow.SignIn(STAFF),
                         flow.Invite("v", (flow.Business("330106202611220001", item_name),)))
    invited = run.state
    run.send(flow.Press(level))
    run.role(*(["down"] * cursor_moves), "toggle")
    return invited, run.state


@settings(max_examples=120, deadline=None)
@given(item=TEXTS, tags=st.lists(TEXTS, min_size=1, max_size=8), moves=st.integers(0, 10),
       level=st.sampled_from([1, 2]), page=st.integers(0, 10_000))
def test_render_never_raises_for_any_item_or_tag(item, tags, moves, level, page):
    invited, tagging = _tag_state(item, tags, moves, level)
    for state in (invited, tagging):
        state = replace(state, page=page)
        for size, mode in (((128, 64), "1"), ((256, 64), "L")):
            image = render(state, size, mode, FONTS)
            assert image.size == size and image.mode == mode


@settings(max_examples=200, deadline=None)
@given(tag=TEXTS, width=st.sampled_from([128 - TEXT_X, 256 - TEXT_X]), rows=st.integers(1, 3))
def test_a_reason_is_readable_whole_across_pages(tag, width, rows):
    fitted = fit(tag, (SMALL,), width, SMALL.block(rows))
    assert joined(fitted.pages) == visible(tag)
