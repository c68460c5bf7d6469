"""The window evaluator's screens: `render(state, size, mode, fonts) -> Image`, pure.

Same state, same image: the screens keep no time and no memory of their own. Long texts
are paged by `state.page` (the flow turns it every `page_ms`); what a person must read
before rating (item name, business serial number, staff name: rules.md) is never cut.

Layouts are written once and parameterised by the panel size and the fonts' measures:
on a 256 px panel the same code gives wider lines, merged info lines and a large prompt.
Mode "1" panels (ssd1306, sh1106) get inverse bars for emphasis; greyscale "L" panels
(ssd1322, ssd1325) also get dim grey for secondary text (terminal/screens/canvas.py);
what the kiosk's screens draw the same way is in terminal/screens/parts.py.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from PIL import Image

from terminal.clock import CHINA
from terminal.flow.model import TAG_ROLES, Info, Invited, Saving, State, Tagging, Thanks
from terminal.screens.canvas import Canvas, column, overlay
from terminal.screens.layout import BAR, Box, Face, Fitted, draw_fitted, fit, paginate, wrap
from terminal.screens.parts import (LIST_X, QR_RATE, ListPages, cursor_page, fault_overlay,
                                    key_caps, list_pages, pointer, position, qr_left,
                                    qr_screen, staff_text, storage_code, sync_text)

ROLE_TEXT = {"up": "上移", "down": "下移", "toggle": "选择", "back": "返回", "submit": "提交"}
ROLE_SHORT = {"up": "▲", "down": "▼", "toggle": "选", "back": "返", "submit": "交"}
NETWORK_TEXT = {"online": "在线", "offline": "离线"}
# A space is where a narrow panel breaks the line (left of the code there is room for
# five or six characters); a wide one shows it as a space.
QR_COMMENT = "扫码 补充意见"     # thanks screen: add written comments on the platform


# --- entry points -------------------------------------------------------------------

def render(state: State, size=(128, 64), mode: str = "1", fonts=None) -> Image.Image:
    """The frame for `state`: a pure function of its arguments."""
    c = Canvas(size, mode, fonts, state.config.large_text)
    screen = state.screen
    if state.storage_error:
        _storage_error(c, state)
    elif isinstance(screen, Invited):
        _invited(c, state, screen)
    elif isinstance(screen, Tagging):
        _tagging(c, state, screen)
    elif isinstance(screen, Saving):
        column(c, [("正在保存…", c.both, c.ink.fg)], c.frame, state.page)
    elif isinstance(screen, Thanks):
        _thanks(c, state, screen)
    elif isinstance(screen, Info):
        _info(c, state)
    elif state.paused:
        _paused(c, state)
    else:
        _idle(c, state)
    fault_overlay(c, state)
    return c.image


def render_out_of_service(size=(128, 64), mode: str = "1", fonts=None) -> Image.Image:
    """The frame left on the panel when the service stops."""
    c = Canvas(size, mode, fonts)
    column(c, [("设备已停止服务", c.both, c.ink.fg),
                ("请联系工作人员", (c.small,), c.ink.dim)], c.frame, 0)
    return c.image


# --- the screens ------------------------------------------------------------------------

def _text(state: State, key: str) -> str:
    return state.config.text(key)


def _label(state: State, level) -> str:
    return str(state.config.labels.get(level, level))


def _status(c: Canvas, state: State, width: Optional[int] = None) -> int:
    """Top line: window number left, sync indicator right, in `width` px (default: the
    panel's). Returns the next free y."""
    s, y = c.small, c.y0
    w = c.w if width is None else width
    sync = sync_text(state.health)
    right = 0
    if sync:
        right = s.width(sync) + 4
        c.box(Box(w - right, 0, right, y + s.height), c.ink.bar)
        c.draw.text((w - right + 2, y - s.top), sync, font=s.font, fill=c.ink.on_bar)
        right += 2
    c.text(Box(0, y, w - right, s.height), f"窗口 {state.config.window_no}".strip(), (s,),
           state.page)
    return y + s.pitch


def _idle(c: Canvas, state: State) -> None:
    s, cfg = c.small, state.config
    if state.qr:
        top = _status(c, state, qr_left(c, state.qr[0]))
        qr_screen(c, state, state.qr, [(QR_RATE[0], c.prompt, c.ink.fg),
                                       (QR_RATE[1], (s,), c.ink.dim)], top)
        _hint(c, state)
        return
    y = _status(c, state)
    if cfg.hall_name:
        c.text(Box(0, y, c.w, s.height), cfg.hall_name, (s,), state.page, fill=c.ink.dim)
        y += s.pitch
    bottom = c.h
    if cfg.mode != "kiosk":
        bottom = c.h - s.height
        if state.staff is not None:
            text, shorter = staff_text(state.staff)
            c.text(Box(0, bottom, c.w, s.height), text, (s,), state.page, shorter=shorter)
        else:
            c.text(Box(0, bottom, c.w, s.height), "未签到", (s,), fill=c.ink.dim)
        bottom -= 1
    c.text(Box(0, y, c.w, bottom - y), _text(state, "welcome"), c.prompt, state.page,
           align="center", valign="middle")
    _hint(c, state)


def _hint(c: Canvas, state: State) -> None:
    if state.hint:
        top = c.y0 + c.small.pitch - 1
        overlay(c, [(state.hint, c.both, c.ink.fg)], state.page, Box(0, top, c.w, c.h - top))


def _paused(c: Canvas, state: State) -> None:
    y = _status(c, state)
    message = state.pause_message or _text(state, "paused")
    column(c, [(message, c.both, c.ink.fg)], Box(0, y, c.w, c.h - y), state.page)


def _invited(c: Canvas, state: State, screen: Invited) -> None:
    s, large = c.small, c.large
    visit = screen.visit
    items = visit.items or ()
    prompt = _text(state, "rate_prompt")
    title = _text(state, "title")

    # Info lines under the item name: the serial of the item shown, and the staff member.
    # Which item is shown depends on the page, so lay out the item names first.
    staff, staff_shorter = staff_text(visit.staff)
    serials = [f"流水号 {it.project_no}" for it in items]
    merged = bool(staff) and all(
        s.width(f"{x}  {staff}") <= c.w for x in serials or [""])
    n_info = (1 if merged or not staff else 2) if items else (1 if staff else 0)

    # The prompt bar: large when it fits whole and leaves two lines for the item name;
    # with large_text always 24 px, paged, and the item name gets what is left.
    for bar_face in ((c.huge,) if c.large_text else (large, s)):
        item_rows = (c.frame.h - bar_face.height + 1 - n_info * s.pitch) // s.pitch
        if bar_face is s or c.large_text or (item_rows >= 2 and bar_face.width(prompt) <= c.w - 2):
            break
    if c.large_text and item_rows < 1:   # info lines give way: they page with the item
        n_info = max(0, n_info - 1)
        item_rows = (c.frame.h - bar_face.height + 1 - n_info * s.pitch) // s.pitch
    item_rows = max(1, item_rows)
    bar_top = c.y0 + (item_rows + n_info) * s.pitch - 1
    if c.large_text:
        c.bar(Box(0, bar_top, c.w, c.h - bar_top), prompt, (bar_face,), state.page)
    else:
        bar_text = f"{title} · {prompt}" if title else prompt
        c.bar(Box(0, bar_top, c.w, c.h - bar_top), bar_text, (bar_face, s), state.page,
              shorter=(prompt,))

    # Item names, "i/n" in front when several, cycling through every page of every item.
    item_box = Box(0, c.y0, c.w, s.block(item_rows))
    if not items:
        c.text(item_box, "（无事项）", (s,), fill=c.ink.dim)
        index, page = 0, 0
    else:
        marker_w = s.width(f"{len(items)}/{len(items)}") + 4 if len(items) > 1 else 0
        fits = [fit(it.task_name, (s,), c.w, item_box.h, indent=marker_w + 2 if marker_w else 0)
                for it in items]
        sequence = [(i, p) for i, f in enumerate(fits) for p in range(len(f.pages))]
        index, page = sequence[state.page % len(sequence)]
        if marker_w:
            c.box(Box(0, 0, marker_w, c.y0 + s.height), c.ink.bar)
            c.draw.text((2, c.y0 - s.top), f"{index + 1}/{len(items)}", font=s.font,
                        fill=c.ink.on_bar)
        draw_fitted(c.draw, item_box, fits[index], page, fill=c.ink.fg)

    y = item_box.bottom + 1
    info = []
    if items:
        serial = items[index].project_no
        if merged:
            info.append((f"流水号 {serial}  {staff}", ()))
        else:
            info.append((f"流水号 {serial}", (serial,)))
    if staff and not merged:
        info.append((staff, staff_shorter))
    if n_info and len(info) > n_info:   # large_text: fewer info rows, taking turns page by page
        info = [info[state.page % len(info)]]
    for value, shorter in info:
        c.text(Box(0, y, c.w, s.height), value, (s,), state.page, shorter=shorter)
        y += s.pitch


# The reason list's columns: the pointer (parts.py), the check box, the text. A move
# redraws the pointer and the position only, a tick the box only.
BOX_X = LIST_X
BOX_W = 9
TEXT_X = BOX_X + BOX_W + 2


def _reasons(c: Canvas, screen: Tagging) -> ListPages:
    # The heading's height, warning or not: the list stays put when the warning comes.
    top = c.y0 + (c.huge.pitch if c.large_text else c.small.pitch)
    return list_pages(c, [o.text for o in screen.options], TEXT_X, top)


def reason_page(state: State, size=(128, 64), mode: str = "1", fonts=None) -> int:
    """Which page of the reason list `state` shows; -1 without one (parts.cursor_page)."""
    return cursor_page(state, Tagging, _reasons, size, mode, fonts)


def _tagging(c: Canvas, state: State, screen: Tagging) -> None:
    s, cfg = c.small, state.config
    options = screen.options
    n = len(options)
    cursor = screen.cursor % n if n else 0
    reasons = _reasons(c, screen)

    # Heading: the level pressed, what to do, where the cursor is; or the warning.
    if screen.warn:
        c.bar(Box(0, 0, c.w, reasons.top - 1), "请至少选择一项", (s,), state.page)
    else:
        pw = position(c, cursor, n)
        label = _label(state, screen.level)
        if c.large_text:
            c.text(Box(0, c.y0, c.w - pw - 4, c.huge.height), label, (c.huge,), state.page)
        else:
            c.text(Box(0, c.y0, c.w - pw - 4, s.height), f"{label}：请选择原因（可多选）", (s,),
                   state.page, shorter=(f"{label}：请选择原因", f"{label} 请选择", label))

    # Key caps, one above each physical button, left to right.
    roles = TAG_ROLES[:min(len(cfg.order), len(TAG_ROLES))]
    key_caps(c, [ROLE_TEXT[r] for r in roles], [ROLE_SHORT[r] for r in roles])

    # The page holding the cursor, every reason on it whole; one too long for the whole
    # list turns its pages with state.page (the flow starts it at 0 on every move).
    if not n:
        return
    for i, y, fitted in reasons.rows(cursor):
        if i == cursor:
            pointer(c, y)
        _check_box(c, BOX_X, y + 1, options[i].code in screen.selected, c.ink.fg, c.ink.bg)
        draw_fitted(c.draw, Box(TEXT_X, y, c.w - TEXT_X, s.block(fitted.rows)), fitted,
                    state.page, fill=c.ink.fg)


def _check_box(c: Canvas, x: int, y: int, checked: bool, fg, bg) -> None:
    c.draw.rectangle((x, y, x + BOX_W - 1, y + BOX_W - 1), outline=fg, fill=bg)
    if checked:
        c.draw.line([(x + 2, y + 4), (x + 3, y + 6), (x + 6, y + 2)], fill=fg, width=1)
        c.draw.line([(x + 2, y + 5), (x + 3, y + 7), (x + 7, y + 2)], fill=fg, width=1)


def _thanks(c: Canvas, state: State, screen: Thanks) -> None:
    label = _label(state, screen.level)
    said = (label, c.prompt, c.ink.dim) if c.large_text else \
        (f"您的评价：{label}", (c.small,), c.ink.dim)
    thanks = (_text(state, "thanks"), c.prompt, c.ink.fg)
    if screen.qr:
        blocks = [thanks, (QR_COMMENT, (c.small,), c.ink.fg)]
        if c.w >= 256 and not c.large_text:   # else no room left of the code for it
            blocks.insert(1, said)
        qr_screen(c, state, screen.qr, blocks, c.y0)
        return
    column(c, [thanks, said], c.frame, state.page)


def _info(c: Canvas, state: State) -> None:
    s, cfg, health = c.small, state.config, state.health
    fields = [f"设备 {cfg.device_id or '未设置'}", f"窗口 {cfg.window_no}",
              f"版本 {cfg.version or '未知'}"]
    if "queue_depth" in health:
        fields.append(f"待传 {health['queue_depth']}")
    if "last_upload_at" in health:
        fields.append(f"上传 {_when(health['last_upload_at'])}")
    if "network" in health:
        fields.append(f"网络 {NETWORK_TEXT.get(health['network'], health['network'])}")
    if health.get("ip"):
        fields.append(f"IP {health['ip']}")
    rows = s.rows(c.frame.h)
    lines = _pack(fields, s, c.w)
    paged = len(lines) > rows
    if paged:
        lines = _pack(fields, s, c.w - BAR)
    fitted = Fitted(s, tuple(paginate(lines, rows)), paged)
    draw_fitted(c.draw, c.frame, fitted, state.page, fill=c.ink.fg)


def _pack(fields, face: Face, width: int, sep: str = "  ") -> list[str]:
    """Short fields share a line when they fit; a long one wraps on lines of its own."""
    lines: list[str] = []
    joinable = False
    for field in fields:
        wrapped = wrap(field, face, width)
        if (len(wrapped) == 1 and joinable
                and face.width(lines[-1] + sep + wrapped[0]) <= width):
            lines[-1] += sep + wrapped[0]
            continue
        lines += wrapped
        joinable = len(wrapped) == 1
    return lines


def _when(value) -> str:
    if value in (None, ""):
        return "无"
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, CHINA)
        else:
            moment = datetime.fromisoformat(str(value))
            if moment.tzinfo is not None:
                moment = moment.astimezone(CHINA)
        return moment.strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return str(value)


def _storage_error(c: Canvas, state: State) -> None:
    code = "代码 " + storage_code(state.storage_error)
    if state.pending:   # ratings held in memory until the store works again
        code += f" 未存{len(state.pending)}"
    column(c, [("存储故障", c.both, c.ink.fg), ("请联系工作人员", (c.small,), c.ink.fg),
                (code, (c.small,), c.ink.dim)], c.frame, state.page)
