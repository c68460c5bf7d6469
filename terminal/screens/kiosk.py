"""The kiosk's screens: card prompt, looking up, business list, messages. Pure, like
terminal/screens/window.py; drawn on the same canvas (canvas.py) with the same shared
parts (parts.py: sync indicator, QR codes, fault overlay, the lists' pointer and pages).

`render` draws the kiosk's own screens and the kiosk idle screen, and hands every other
state (rating, tags, thanks, paused, storage failure, ...) to the window's `render`, so
that rating at a kiosk looks exactly like rating at a window.

Only the masked name is ever on the panel (张*丰); the ID number never reaches a state.
"""
from __future__ import annotations

from datetime import datetime

from PIL import Image

from terminal.flow.kiosk import CHOOSE_ROLES, KIOSK_SCREENS, Choosing, LookingUp, Notice
from terminal.flow.model import Finished, Idle, State
from terminal.screens import window
from terminal.screens.canvas import Canvas, column, overlay
from terminal.screens.layout import Box, draw_fitted
from terminal.screens.parts import (LIST_X, QR_RATE, ListPages, cursor_page, fault_overlay,
                                    key_caps, list_pages, pointer, position, qr_left,
                                    qr_screen, sync_text)

CARD_PROMPT = "请刷身份证"
CARD_HINT = "请将身份证放在读卡区"
LOOKING_UP = "正在查询…"
KEY_BACK = "按任意键返回"
# (title, explanation) of each message screen; unknown kinds get "lookup_failed". A space
# is where a narrow panel breaks the line; a wide one shows it as a space.
NOTICES = {
    "not_found": ("未查到待评价业务", "如有疑问 请到窗口咨询"),
    "network": ("网络异常", "暂时无法查询 请稍后再试"),
    "timeout": ("查询超时", "网络不畅 请稍后再试"),
    "lookup_failed": ("暂时无法查询", "请稍后再试 或到窗口评价"),
    "unreadable": ("读卡失败", "请移开证件 再平放在读卡区"),
    "unsupported": ("不支持此类证件", "请使用居民身份证 或到窗口评价"),
    "reader_fault": ("读卡器故障", "请联系工作人员"),
}
READER_DOWN = ("disconnected", "sam_fault")
CARD_LABELS = {"hk_mo_tw": "港澳台居民居住证", "foreign_2017": "外国人永久居留身份证",
               "foreign_2023": "外国人永久居留身份证"}
# Key caps of the business list, by position (CHOOSE_ROLES): full and one-character forms.
CAPS = (("上移", "▲"), ("下移", "▼"), ("选择", "选"), ("退出", "退"), ("确定", "定"))
assert len(CAPS) == len(CHOOSE_ROLES)
TEXT_X = LIST_X + 1   # the business list's text, right of the pointer's column


def render(state: State, size=(128, 64), mode: str = "1", fonts=None) -> Image.Image:
    """The frame for `state`: the kiosk's screens here, all others by the window's render."""
    screen = state.screen
    kiosk_idle = (state.config.mode == "kiosk" and isinstance(screen, Idle)
                  and not state.paused)
    if state.storage_error or not (kiosk_idle or isinstance(screen, KIOSK_SCREENS)):
        return window.render(state, size, mode, fonts)
    c = Canvas(size, mode, fonts, state.config.large_text)
    if isinstance(screen, LookingUp):
        _looking_up(c, state, screen)
    elif isinstance(screen, Choosing):
        _choosing(c, state, screen)
    elif isinstance(screen, Notice):
        _notice(c, state, screen)
    else:
        _idle(c, state)
    fault_overlay(c, state)
    return c.image


# --- the screens ------------------------------------------------------------------------

def _idle(c: Canvas, state: State) -> None:
    s = c.small
    down = state.health.get("reader") in READER_DOWN
    if state.qr and not down:   # after an unrated end: rate later on the platform
        top = _hall_line(c, state, qr_left(c, state.qr[0]))
        qr_screen(c, state, state.qr, [(QR_RATE[0], c.prompt, c.ink.fg),
                                       (QR_RATE[1], (s,), c.ink.dim)], top)
        _kiosk_hint(c, state, top)
        return
    top = _hall_line(c, state)
    title, hint = NOTICES["reader_fault"] if down else (CARD_PROMPT, CARD_HINT)
    column(c, [(title, c.prompt, c.ink.fg), (hint, (s,), c.ink.dim)],
            Box(0, top, c.w, c.h - top), state.page)
    _kiosk_hint(c, state, top)


def _kiosk_hint(c: Canvas, state: State, top: int) -> None:
    if state.hint:
        overlay(c, [(state.hint, c.both, c.ink.fg)], state.page,
                 Box(0, top - 1, c.w, c.h - top + 1))


def _hall_line(c: Canvas, state: State, width=None) -> int:
    """Top line in `width` px (default: the panel's): the hall's name, and on the right
    what waits to be sent. Next free y."""
    s, y = c.small, c.y0
    w = c.w if width is None else width
    sync = sync_text(state.health)
    right = s.width(sync) + 4 if sync else 0
    if sync:
        c.bar(Box(w - right, 0, right, y + s.height), sync, (s,))
    name = state.config.hall_name or "自助服务终端"
    c.text(Box(0, y, w - right - 2, s.height), name, (s,), state.page, fill=c.ink.dim)
    return y + s.pitch


def _looking_up(c: Canvas, state: State, screen: LookingUp) -> None:
    blocks = [(screen.masked_name or "—", c.both, c.ink.fg), (LOOKING_UP, (c.small,), c.ink.fg)]
    label = CARD_LABELS.get(screen.card_type)
    if label:
        blocks.append((label, (c.small,), c.ink.dim))
    column(c, blocks, c.frame, state.page)


def _notice(c: Canvas, state: State, screen: Notice) -> None:
    title, text = NOTICES.get(screen.kind, NOTICES["lookup_failed"])
    column(c, [(title, c.both, c.ink.fg), (text, (c.small,), c.ink.fg),
                (KEY_BACK, (c.small,), c.ink.dim)], c.frame, state.page)


def _businesses(c: Canvas, screen: Choosing) -> ListPages:
    """Each business whole (its name, then when and where it was finished), packed in
    pages under the heading."""
    return list_pages(c, [(o.business.task_name, _details(o)) for o in screen.options], TEXT_X,
                      c.y0 + c.small.pitch)


def business_page(state: State, size=(128, 64), mode: str = "1", fonts=None) -> int:
    """Which page of the business list `state` shows; -1 without one (parts.cursor_page)."""
    return cursor_page(state, Choosing, _businesses, size, mode, fonts)


def _choosing(c: Canvas, state: State, screen: Choosing) -> None:
    s = c.small
    n = len(screen.options)
    cursor = screen.cursor % n
    pw = position(c, cursor, n)
    c.text(Box(0, c.y0, c.w - pw - 4, s.height), "请选择要评价的业务", (s,), state.page,
           shorter=("请选择业务", "请选择"))
    key_caps(c, [full for full, _ in CAPS], [short for _, short in CAPS])
    # The page holding the cursor, every business on it whole; one too long for the whole
    # list turns its pages with state.page (the flow starts it at 0 on every move).
    for i, y, fitted in _businesses(c, screen).rows(cursor):
        if i == cursor:
            pointer(c, y)
        draw_fitted(c.draw, Box(TEXT_X, y, c.w - TEXT_X, s.block(fitted.rows)), fitted,
                    state.page, fill=c.ink.fg)


def _details(found: Finished) -> str:
    """办结 2026-11-20 区公安分局: when the business was finished, and where."""
    parts = []
    day = _day(found.finished_at)
    if day:
        parts.append(f"办结 {day}")
    dept = found.business.dept_name
    if dept:
        parts.append(dept)
    return " ".join(parts)


def _day(value: str) -> str:
    if not value:
        return ""
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d")
    except ValueError:
        return value[:10]
