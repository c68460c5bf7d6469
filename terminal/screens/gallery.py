"""Every screen the evaluator can show, as states built by the real flow.

    python -m terminal.screens.gallery OUTDIR [--scale 4] [--size 128x64:1 ...]

writes one PNG per screen (`NAME-128x64-1.png`, `NAME-256x64-L.png`), scaled up with
NEAREST so the pixels stay sharp in the docs. `gallery_states()` gives the same states
to other code (the golden tests, a technician's display test); `gallery_frames()` adds
the two frames that need no state (out of service, plain fault).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

from PIL import Image

from config import settings as settings_mod
from config import tags as tag_lists
from terminal import flow
from terminal.clock import FakeClock
from terminal.flow import (TAG_ROLES, Append, Business, FlowConfig, Health, Hold, Invite, Press,
                           SetWindow, SignIn, SignOut, Staff, State, Stored, StoreFailed, Tick)
from terminal.screens import render, render_fault_plain, render_out_of_service

DEFAULT_FORMATS = (((128, 64), "1"), ((256, 64), "L"))

STAFF = Staff("0123", "王芳")
SHORT_ITEM = Business("330106202611220001", "居民身份证换领")
LONG_ITEM = Business("330106202611220002",
                     "企业投资项目核准（含外商投资项目、境外投资项目及需报省级人民政府核准的"
                     "固定资产投资项目）变更及延期申请（告知承诺制）")
BATCH = (Business("330106202611220003", "个体工商户设立登记"),
         Business("330106202611220004", "食品经营许可（仅销售预包装食品备案）"),
         Business("330106202611220005", "户外广告设施设置审批"))
# Kiosk: a fictitious card holder (the ID number has a valid check character) and the
# businesses the lookup finds for them.
CARD = flow.CardRead("resident", "111", "张*丰", "110101199003070035")
FOUND = (flow.Finished(Business("330106202611200017", "城乡居民基本养老保险参保登记",
                                dept_name="区人力资源和社会保障局"),
                       "陈静", "2026-11-20T15:02:11+08:00"),
         flow.Finished(Business("330106202611210033", "户籍迁入", dept_name="区公安分局"),
                       "李建国", "2026-11-21T10:40:00+08:00"),
         flow.Finished(LONG_ITEM, "王芳", "2026-11-22T09:20:01+08:00"))
# QR codes: an item with the platform's own rating page, and the template for the others.
RATE_URL = "https://hcp.example.gov.cn/r/330106202611220001"
QR_ITEM = replace(SHORT_ITEM, rate_url=RATE_URL)
QR_TEMPLATE = "https://hcp.example.gov.cn/r/{project_no}"
HEALTH = {"queue_depth": 12, "last_upload_at": "2026-11-22T08:59:30+08:00",
          "network": "online", "ip": "192.168.10.23"}


def default_config() -> FlowConfig:
    """The shipped defaults, with the built-in tag list."""
    cfg = FlowConfig.from_settings(settings_mod.defaults(), tag_lists.builtin(), "0.1.0")
    return replace(cfg, hall_name="市民服务中心")


class _Run:
    """Plays the service: feeds events to the real `step`, answers the store."""

    def __init__(self, config: FlowConfig):
        self.clock = FakeClock()
        self.state = flow.initial(config, self.clock.now())
        self.fail_store: Optional[str] = None

    def send(self, *events) -> "_Run":
        queue = list(events)
        while queue:
            event = queue.pop(0)
            self.state, effects = flow.step(self.state, event, self.clock.now())
            for effect in effects:
                if isinstance(effect, Append):
                    queue.append(StoreFailed(effect.drafts, self.fail_store) if self.fail_store
                                 else Stored(len(effect.drafts)))
        return self

    def role(self, *roles) -> "_Run":
        order = self.state.config.order
        return self.send(*(Press(order[TAG_ROLES.index(r)]) for r in roles))

    def timeout(self) -> "_Run":
        """Let the invitation run out (unrated `timeout`)."""
        self.clock.advance(self.state.config.invite_ms)
        return self.send(Tick())

    def pages(self, n: int) -> "_Run":
        """Let `n` page turns pass (the flow turns a page every page_ms)."""
        for _ in range(n):
            self.clock.advance(self.state.config.page_ms)
            self.send(Tick())
        return self

    def fault(self, error: str) -> "_Run":
        self.state = flow.fail(self.state, self.clock.now(), error)
        return self


def gallery_states(config: Optional[FlowConfig] = None) -> list[tuple[str, State]]:
    """[(name, state)] covering every screen; `config` defaults to the shipped settings."""
    cfg = config or default_config()

    def run(staff=True) -> _Run:
        r = _Run(cfg)
        return r.send(SignIn(STAFF)) if staff else r

    def invite(*items, staff=True) -> _Run:
        return run(staff).send(Invite("visit-1", tuple(items)))

    storage = invite(SHORT_ITEM)
    storage.fail_store = "database or disk is full"
    storage.send(Press(4))

    return [
        ("idle", run().state),
        ("idle_signed_out", run().send(SignOut()).state),
        ("idle_hint", run().send(Press(5)).state),
        ("idle_sync", run().send(Health({"queue_depth": 12, "network": "offline"})).state),
        ("paused", run().send(SetWindow(True)).state),
        ("paused_message", run().send(SetWindow(True, "午休暂停，13:30恢复，急办请到3号窗口")).state),
        ("invited", invite(SHORT_ITEM).state),
        ("invited_long_p0", invite(LONG_ITEM).state),
        ("invited_long_p1", invite(LONG_ITEM).pages(1).state),
        ("invited_3_items", invite(*BATCH).state),
        ("invited_3_items_p1", invite(*BATCH).pages(1).state),
        ("tagging", invite(SHORT_ITEM).send(Press(2)).state),
        ("tagging_selected", invite(SHORT_ITEM).send(Press(2))
            .role("toggle", "down", "toggle", "down").state),
        ("tagging_long_tag", invite(SHORT_ITEM).send(Press(2))
            .role("down", "down", "down", "down", "toggle", "down", "down", "toggle", "up")
            .state),
        ("tagging_warn", invite(SHORT_ITEM).send(Press(1)).role("submit").state),
        ("saving", _saving(invite(SHORT_ITEM))),
        ("thanks", invite(SHORT_ITEM).send(Press(4)).state),
        ("info", run().send(Health(HEALTH), Hold(5)).state),
        ("storage_error", storage.state),
        ("fault", invite(SHORT_ITEM).fault("ZeroDivisionError: division by zero").state),
    ] + qr_states(cfg) + large_text_states(cfg) + kiosk_states(cfg)


def qr_states(cfg: FlowConfig) -> list[tuple[str, State]]:
    """Every screen with a QR code: from an item's rate_url and from qr.url_template."""
    templated = replace(cfg, qr_template=QR_TEMPLATE)

    def invite(config, item) -> _Run:
        return _Run(config).send(SignIn(STAFF), Invite("visit-1", (item,)))

    return [
        ("thanks_qr", invite(cfg, QR_ITEM).send(Press(4)).state),
        ("thanks_qr_template", invite(templated, SHORT_ITEM).send(Press(4)).state),
        ("idle_qr", invite(cfg, QR_ITEM).timeout().state),
        ("idle_qr_template", invite(templated, SHORT_ITEM).timeout().state),
    ]


def large_text_states(cfg: FlowConfig) -> list[tuple[str, State]]:
    """display.large_text: 24-px prompt, level names and thanks."""
    large = replace(cfg, large_text=True)

    def invite(*items) -> _Run:
        return _Run(large).send(SignIn(STAFF), Invite("visit-1", tuple(items)))

    return [
        ("large-idle", _Run(large).send(SignIn(STAFF)).state),
        ("large-invited", invite(SHORT_ITEM).state),
        ("large-invited_p1", invite(SHORT_ITEM).pages(1).state),
        ("large-tagging", invite(SHORT_ITEM).send(Press(2)).state),
        ("large-thanks", invite(SHORT_ITEM).send(Press(5)).state),
        ("large-thanks_qr", invite(QR_ITEM).send(Press(5)).state),
    ]


def kiosk_states(cfg: FlowConfig) -> list[tuple[str, State]]:
    """The kiosk's screens; names start with "kiosk-" (docs/kiosk.md shows them)."""
    kiosk = replace(cfg, mode="kiosk")

    def card(event=CARD) -> _Run:
        return _Run(kiosk).send(event)

    def found(*items) -> _Run:
        r = card()
        return r.send(flow.LookupDone(r.state.lookups, tuple(items)))

    def notice(*events) -> State:
        return _Run(kiosk).send(*events).state

    return [
        ("kiosk-idle", _Run(kiosk).state),
        ("kiosk-idle_hint", _Run(kiosk).send(Press(5)).state),
        ("kiosk-idle_reader_fault", _Run(kiosk).send(Health({"reader": "disconnected"})).state),
        ("kiosk-looking_up", card().state),
        ("kiosk-looking_up_foreign", card(flow.CardRead("foreign_2023", "553", "玛*", "0")).state),
        ("kiosk-choose", found(*FOUND).state),
        ("kiosk-choose_long", found(*FOUND).role("down", "down").state),
        ("kiosk-choose_long_p1", found(*FOUND).role("down", "down").pages(1).state),
        ("kiosk-rate", found(*FOUND).role("submit").state),
        ("kiosk-not_found", found().state),
        ("kiosk-network", card().send(flow.LookupDone(1, error="network")).state),
        ("kiosk-timeout", card().send(flow.LookupDone(1, error="timeout")).state),
        ("kiosk-lookup_failed", card().send(flow.LookupDone(1, error="refused")).state),
        ("kiosk-unreadable", notice(flow.CardFailed("unreadable"))),
        ("kiosk-unsupported", notice(flow.CardFailed("unsupported"))),
        ("kiosk-reader_fault", notice(flow.CardFailed("reader_fault"))),
        ("kiosk-idle_qr", _Run(kiosk).send(Invite("app-1", (QR_ITEM,))).timeout().state),
        ("kiosk-thanks_qr", _kiosk_rated(replace(kiosk, qr_template=QR_TEMPLATE))),
    ]


def _kiosk_rated(config: FlowConfig) -> State:
    """A card holder's one business found, rated 5: the thanks screen."""
    r = _Run(config).send(CARD)
    return r.send(flow.LookupDone(r.state.lookups, FOUND[:1]), Press(5)).state


def _saving(r: _Run) -> State:
    """The state between the press and the store's answer (the service sees it briefly)."""
    state, _effects = flow.step(r.state, Press(4), r.clock.now())
    return state


def gallery_frames(size=(128, 64), mode: str = "1", fonts=None, config=None):
    """[(name, image)]: every gallery state, then the out-of-service and plain fault frames."""
    frames = [(name, render(state, size, mode, fonts)) for name, state in gallery_states(config)]
    frames.append(("out_of_service", render_out_of_service(size, mode, fonts)))
    frames.append(("fault_plain", render_fault_plain(size, mode, "render failed: KeyError")))
    return frames


# --- a technician's display and button test (terminal/flow/testing.py) ------------------

PATTERNS = ("border", "checker", "full", "ramp")
_cache: dict = {}


def _states_for(config: FlowConfig) -> list:
    """gallery_states(config), kept for the config last asked for: a display test draws
    one of them per frame, and building them all runs the flow some hundred steps."""
    entry = _cache.get("entry")  # one tuple: the API and event threads both read it
    if entry is None or entry[0] is not config:
        entry = _cache["entry"] = (config, gallery_states(config))
    return entry[1]


def count_test_frames(config: FlowConfig) -> int:
    """How many frames the display test shows: the patterns, then every screen."""
    return len(PATTERNS) + len(_states_for(config))


def draw_pattern(name: str, size=(128, 64), mode: str = "1", caption: str = "") -> Image.Image:
    """A frame that shows dead pixels, a shifted or mirrored panel and the grey levels."""
    from PIL import ImageDraw

    w, h = size
    image = Image.new(mode, (w, h), 0)
    draw = ImageDraw.Draw(image)
    if name == "full":
        draw.rectangle((0, 0, w - 1, h - 1), fill=255)
    elif name == "checker":
        for y in range(0, h, 4):
            for x in range((y // 4 % 2) * 4, w, 8):
                draw.rectangle((x, y, x + 3, y + 3), fill=255)
    elif name == "ramp":
        for x in range(w):
            draw.line((x, 0, x, h - 1), fill=255 * x // max(1, w - 1) if mode == "L"
                      else (255 if (x // 8) % 2 else 0))
    else:  # border, corner marks and the panel's diagonals: rotation and offset at a glance
        draw.rectangle((0, 0, w - 1, h - 1), outline=255)
        draw.line((0, 0, w - 1, h - 1), fill=255)
        draw.line((0, h - 1, w - 1, 0), fill=255)
        draw.rectangle((2, 2, 9, 9), fill=255)
    if caption:
        draw.rectangle((w // 2 - 28, h // 2 - 7, w // 2 + 28, h // 2 + 6), fill=0)
        draw.text((w // 2 - 25, h // 2 - 5), caption[:9], fill=255)
    return image


def render_test(state: State, size, mode: str, render_state) -> Image.Image:
    """The frame of a running test (`state.screen` is a flow.Testing); `render_state` is
    the terminal's own render, so the screens come out with the device's fonts."""
    screen = state.screen
    cfg = state.config
    if screen.kind == "display":
        n = screen.frame
        if n < len(PATTERNS):
            return draw_pattern(PATTERNS[n], size, mode, f"TEST {n + 1}/{screen.frames}")
        states = _states_for(cfg)
        return render_state(states[min(n - len(PATTERNS), len(states) - 1)][1], size, mode)
    if screen.presses:
        button, kind = screen.presses[-1]
        seen = len({b for b, _ in screen.presses})
        hint = (f"按键测试 {button} {cfg.labels.get(button, '')}"
                + ("（长按）" if kind == "hold" else "") + f" 已测 {seen}/{len(cfg.order)}")
    else:
        hint = "按键测试：请逐个按下评价键"
    shown = replace(state, screen=flow.Idle(), paused=False, storage_error="", fault="",
                    hint=hint, config=replace(cfg, mode="window"))
    return render_state(shown, size, mode)


def file_name(name: str, size, mode: str) -> str:
    return f"{name}-{size[0]}x{size[1]}-{mode}.png"


def write(outdir, scale: int = 4, formats=DEFAULT_FORMATS, fonts=None) -> list[Path]:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for size, mode in formats:
        for name, image in gallery_frames(size, mode, fonts):
            if scale > 1:
                image = image.resize((image.width * scale, image.height * scale),
                                     Image.Resampling.NEAREST)
            path = outdir / file_name(name, size, mode)
            image.save(path)
            written.append(path)
    return written


def _format(text: str):
    try:
        dims, mode = text.split(":") if ":" in text else (text, "1")
        w, h = (int(v) for v in dims.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH or WxH:MODE, e.g. 256x64:L, not {text!r}")
    if mode not in ("1", "L"):
        raise argparse.ArgumentTypeError("mode is 1 or L")
    return (w, h), mode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m terminal.screens.gallery",
                                     description="Write every screen as a PNG.")
    parser.add_argument("outdir")
    parser.add_argument("--scale", type=int, default=4, help="enlarge by this factor (NEAREST)")
    parser.add_argument("--size", type=_format, action="append", metavar="WxH[:MODE]",
                        help="panel size and mode (default: 128x64:1 and 256x64:L)")
    args = parser.parse_args(argv)
    paths = write(args.outdir, max(1, args.scale), tuple(args.size or DEFAULT_FORMATS))
    print(f"wrote {len(paths)} screens to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
