"""The kiosk's screens: card prompt, looking up, business list, messages. Pure, like
terminal/screens/window.py; drawn on the same canvas (canvas.py) with the same shared
parts (parts.py: sync indicator, QR codes, fault overlay).

`render` draws the kiosk's own screens and the kiosk idle screen, and hands every other
state (rating, tags, thanks, paused, storage failure, ...) to the window's `render`, so
that rating at a kiosk looks exactly like rating at a window.

Only the masked name is ever on the panel (张*丰); the ID number never reaches a state.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from PIL import Image

from terminal.flow.kiosk import CHOOSE_ROLES, KIOSK_SCREENS, Choosing, LookingUp, Notice
from terminal.flow.model import Finished, Idle, State
from terminal.screens import window
from terminal.screens.canvas import Canvas, column, overlay
from terminal.screens.layout import Box, draw_fitted, ellipsize, fit
from terminal.screens.parts import QR_RATE, fault_overlay, qr_left, qr_screen, sync_text

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


def _choosing(c: Canvas, state: State, screen: Choosing) -> None:
    s = c.small
    options = screen.options
    n = len(options)
    cursor = screen.cursor % n

    position = f"{cursor + 1}/{n}"
    pw = s.width(position)
    c.text(Box(c.w - pw, c.y0, pw, s.height), position, (s,), fill=c.ink.dim)
    c.text(Box(0, c.y0, c.w - pw - 4, s.height), "请选择要评价的业务", (s,), state.page,
           shorter=("请选择业务", "请选择"))
    cap_top = _caps(c, [full for full, _ in CAPS], [short for _, short in CAPS])

    # The cursor's business in full (name, then finish date and department), paged when
    # it needs more rows than it has; the others one row each, after it and then before.
    top = c.y0 + s.pitch
    rows = s.rows(cap_top - top)
    room = rows - 1 if n > 1 and rows > 1 else rows
    current = fit((options[cursor].business.task_name, _details(options[cursor])), (s,),
                  c.w - 2, s.block(room))
    cur_rows = len(current.page(state.page)) or 1
    after = min(rows - cur_rows, n - 1 - cursor)
    before = min(rows - cur_rows - after, cursor)
    y = top
    for i in range(cursor - before, cursor + after + 1):
        if i != cursor:
            c.draw.text((1, y - s.top), ellipsize(options[i].business.task_name, s, c.w - 2),
                        font=s.font, fill=c.ink.fg)
            y += s.pitch
            continue
        block = s.block(cur_rows)
        c.box(Box(0, y - 1, c.w, block + 1), c.ink.bar)
        draw_fitted(c.draw, Box(1, y, c.w - 2, block), current, state.page, fill=c.ink.on_bar)
        y += block + 1


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


def _caps(c: Canvas, labels: Sequence[str], shorts: Sequence[str]) -> int:
    """One key cap above each button, left to right; returns the caps' top y."""
    s = c.small
    top = c.h - s.height
    cells = len(labels)
    for i, (label, short) in enumerate(zip(labels, shorts)):
        x0, x1 = i * c.w // cells, (i + 1) * c.w // cells - 1
        text = label if s.width(label) <= x1 - x0 else short
        c.box(Box(x0, top, x1 - x0, s.height), c.ink.bar)
        c.draw.text((x0 + (x1 - x0 - s.width(text) + 1) // 2, top - s.top), text, font=s.font,
                    fill=c.ink.on_bar)
    return top
