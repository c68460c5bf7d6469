"""What reaches the panel's bus per button press, and how long it takes on the wire.

    python tests/bench/bench_panel.py [--rounds 30]

The real flow (`flow.step`), the real screens (CJK font) and `Display` with the real
luma device classes (ssd1306 and sh1106 at 128x64, ssd1322 at 256x64) built by
drivers/display.py, on a recording serial interface (tests/panelkit.py) in place of
the I2C or SPI bus. Two flows run on each panel:

- a window: the staff member signs in once; then each round plays two visits: an
  invitation rated 2, the cursor moved down through the eight reasons and back up with
  ticks on the way, submit, thanks, idle; then an invitation whose item name takes pages
  (turned by the flow's timer), rated 1 from a reason list that holds a reason longer
  than the whole list (the cursor onto it, its pages turned by the timer), a tick, submit.
- a kiosk: each round a card is read and the lookup finds five businesses (each with its
  finish date and department, one with a name longer than the whole list); the cursor
  goes down through the list, round the end and back up, then onto the long business
  (its pages turned by the timer); it is chosen and rated 5, thanks, idle.

An event is an "in-screen change" when the panel shows the same kind of screen before
and after it: the flow's screen type, and none of the overlays that replace the whole
content (the idle hint, the fault message, the storage error) or the idle QR code
coming or going. Everything else (thanks → idle, the idle hint, a rating) is a "screen
change" and may send a whole frame. In-screen changes come in two groups:

- (a) a cursor move that keeps the list's page (the reason list, the kiosk's business
  list), and a tick: the pointer and the position, or one check box. Target: p99 ≤ 5 ms
  press → last byte.
- (b) changes that bring new text on screen: a move onto another page of a list, a page
  of a long item name, of a long reason or of a long business turned by the timer.
  Their floor is the bytes that differ between the two frames (the new glyphs'
  columns): no partial update sends less, so their wire time is shown beside it, with
  no target.

Press → last byte = the CPU time measured here (step, render, diff, pack) plus the wire
time of the bytes recorded for that event:

- I2C: every transaction (one command() call; data() in messages of up to 4096 bytes,
  luma's smbus2 i2c_rdwr) costs START + address byte + control byte + its bytes, each
  byte 9 clocks (8 bits and the ACK), + STOP: 9 × (n + 2) + 2 clocks. Clock stretching
  and the kernel's time between transactions are not counted.
- SPI: 8 clocks per byte at display.spi_speed_hz of the settings (the DC line toggles
  between transactions are not counted).

Each panel runs twice: luma's own device class as shipped (whole frames for the mono
controllers; the greyscale one with luma's default 4-segment diff) and ours
(drivers/panels.py). The target (≤ 5 ms, p99) is for in-screen changes, at 400 kHz on
I2C for the mono panels and at the settings' SPI speed for the SSD1322 (an SPI part).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import luma.oled.device as oled  # noqa: E402

from config import settings as config_settings  # noqa: E402
from config.settings import DisplaySettings  # noqa: E402
from config.tags import Tag, TagList, builtin  # noqa: E402
from drivers.display import Display, open_display  # noqa: E402
from drivers.fonts import find_fonts  # noqa: E402
from drivers.panels import pages_of  # noqa: E402
from terminal import flow, screens  # noqa: E402
from terminal.clock import FakeClock  # noqa: E402
from terminal.screens.kiosk import business_page  # noqa: E402
from terminal.screens.window import reason_page  # noqa: E402
from tests.bench.figures import line, percentile  # noqa: E402
from tests.panelkit import RecordingSerial  # noqa: E402

TARGET_MS = 5.0
PANELS = (("ssd1306", 128, "i2c"), ("sh1106", 128, "i2c"), ("ssd1322", 256, "spi"))
LONG_NAME = ("企业投资项目核准（含外商投资项目、境外投资项目及需报省级人民政府核准的"
             "固定资产投资项目）变更及延期申请（告知承诺制）")
# A reason a list may hold (tag texts go up to 40 characters): more than the whole list.
LONG_REASON = "在线预约办理后到实体大厅重复取号排队且窗口要求重新提交全部纸质材料并多次往返"
# A card holder's businesses (the kiosk's lookup answer), as the central system sends them.
FOUND = (("城乡居民基本养老保险参保登记", "区人力资源和社会保障局"), ("户籍迁入", "区公安分局"),
         (LONG_NAME, "区发展和改革局"), ("个体工商户设立登记", "区市场监督管理局"),
         ("居民身份证换领", "区公安分局"))
MOVES = ("list move", "tick")                                                     # group (a)
NEW_TEXT = ("list page turn", "item page turn", "reason page turn", "business page turn")  # (b)


@dataclass(frozen=True)
class Row:
    label: str
    in_screen: bool
    cpu_ms: float
    data: int        # data bytes on the bus
    i2c: int         # clocks on an I2C bus
    spi: int         # clocks on SPI
    floor: int       # data bytes that differ between the two frames

    def wire_ms(self, interface: str, hz: int) -> float:
        return (self.i2c if interface == "i2c" else self.spi) / hz * 1000

    def press_ms(self, interface: str, hz: int) -> float:
        return self.cpu_ms + self.wire_ms(interface, hz)


def i2c_clocks(writes) -> int:
    return sum(9 * (len(values) + 2) + 2 for _, values in writes)


def spi_clocks(writes) -> int:
    return sum(8 * len(values) for _, values in writes)


def tag_list() -> TagList:
    """The built-in list, level 1 with a reason longer than the whole list third."""
    tags = builtin()
    one = tags.for_level(1)
    return replace(tags, levels={**tags.levels, 1: one[:2] + (Tag("199", LONG_REASON),) + one[2:]})


def window_round(cfg: flow.FlowConfig, n: int):
    """(label, event or ("wait", ms)) of one round at a window; "move" is told apart by
    the bench."""
    role = {r: cfg.order[flow.TAG_ROLES.index(r)] for r in flow.TAG_ROLES}
    short = flow.Business(project_no=f"BENCH{n:08d}", task_name="不动产登记（转移登记）")
    long = flow.Business(project_no=f"BENCH{n:08d}L", task_name=LONG_NAME)
    yield "idle hint", flow.Press(5)
    yield "invitation", flow.Invite(f"visit-{n}", (short,))
    yield "bad rating", flow.Press(2)
    # down through the eight reasons and back up, ticking three on the way
    for key in ("toggle", "down", "down", "toggle", "down", "down", "down", "down", "toggle",
                "down", "up", "up", "up", "up", "up", "up", "up"):
        yield ("tick" if key == "toggle" else "move"), flow.Press(role[key])
    yield "submit", flow.Press(role["submit"])
    yield "thanks over", ("wait", cfg.thanks_ms)
    yield "invitation", flow.Invite(f"visit-{n}b", (long,))
    yield "item page turn", ("wait", cfg.page_ms)
    yield "item page turn", ("wait", cfg.page_ms)
    yield "bad rating", flow.Press(1)
    yield "move", flow.Press(role["down"])
    yield "move", flow.Press(role["down"])   # onto the long reason
    yield "reason page turn", ("wait", cfg.page_ms)
    yield "reason page turn", ("wait", cfg.page_ms)
    yield "tick", flow.Press(role["toggle"])
    yield "submit", flow.Press(role["submit"])
    yield "thanks over", ("wait", cfg.thanks_ms)


def kiosk_round(cfg: flow.FlowConfig, n: int):
    """(label, event) of one round at a kiosk: the event, ("wait", ms), or a function of
    the state that gives the event; "move" is told apart by the bench."""
    role = {r: cfg.order[flow.CHOOSE_ROLES.index(r)] for r in ("up", "down", "choose")}
    found = tuple(flow.Finished(flow.Business(f"BENCH{n:08d}K{i}", name, dept_name=dept),
                                "陈静", f"2026-11-2{i}T10:40:00+08:00")
                  for i, (name, dept) in enumerate(FOUND))
    yield "card read", flow.CardRead("resident", "111", "张*丰", "110101199003070035")
    yield "businesses found", lambda state: flow.LookupDone(state.lookups, found)
    # down through the five, round the end, back up, round the start, onto the long one
    for key in ("down",) * 5 + ("up",) * 6 + ("down",) * 3:
        yield "move", flow.Press(role[key])
    yield "business page turn", ("wait", cfg.page_ms)
    yield "business page turn", ("wait", cfg.page_ms)
    yield "choose", flow.Press(role["choose"])
    yield "rating", flow.Press(5)
    yield "thanks over", ("wait", cfg.thanks_ms)


def list_page(state: flow.State, size, mode: str, fonts) -> int:
    """The page of whichever list `state` shows (-1: none)."""
    return max(reason_page(state, size, mode, fonts), business_page(state, size, mode, fonts))


def kind(state: flow.State) -> tuple:
    """What the panel shows, as a person would name it: the screen, and whatever covers
    all of it (the idle hint, a fault, a storage error) or the idle QR code."""
    return (type(state.screen), bool(state.hint), bool(state.fault),
            bool(state.storage_error), bool(state.qr), state.paused)


def floor_bytes(old, new) -> int:
    """Data bytes that differ between two frames: a byte per page column on a mono panel,
    one per two pixels of a row on the greyscale one. No partial update sends less."""
    if new.mode == "1":
        pages = new.height // 8
        return sum(a != b for p, q in zip(pages_of(old, pages), pages_of(new, pages))
                   for a, b in zip(p, q))
    a, b = old.tobytes(), new.tobytes()
    return len({i // 2 for i in range(len(a)) if a[i] != b[i]})


def play(display: Display, bus: RecordingSerial, rounds: int, fonts, cfg, script,
         start=()) -> list[Row]:
    """The rows of `rounds` rounds of `script` (window_round, kiosk_round) after the
    `start` events."""
    clock = FakeClock()
    state = flow.initial(cfg, clock.now())
    for event in start:
        state, _ = flow.step(state, event, clock.now())
    frame = screens.render(state, display.size, display.mode, fonts=fonts)
    display.show(frame)
    bus.take()
    out = []
    for n in range(rounds):
        for label, event in script(cfg, n):
            if isinstance(event, tuple):
                clock.advance(event[1])
                event = flow.Tick()
            elif callable(event):
                event = event(state)
            before = state
            started = time.perf_counter()
            queue = [event]
            while queue:
                state, effects = flow.step(state, queue.pop(0), clock.now())
                queue += [flow.Stored(len(e.drafts)) for e in effects if isinstance(e, flow.Append)]
            new = screens.render(state, display.size, display.mode, fonts=fonts)
            display.show(new)
            cpu_ms = (time.perf_counter() - started) * 1000
            writes = bus.take()
            if label == "move":
                label = ("list move" if list_page(before, display.size, display.mode, fonts)
                         == list_page(state, display.size, display.mode, fonts)
                         else "list page turn")
            out.append(Row(label, kind(before) == kind(state), cpu_ms,
                           sum(len(v) for k, v in writes if k == "data"),
                           i2c_clocks(writes), spi_clocks(writes), floor_bytes(frame, new)))
            frame = new
    return out


def luma_as_shipped(settings: DisplaySettings, bus: RecordingSerial) -> Display:
    kwargs = {"mode": "RGB"} if settings.driver == "ssd1322" else {}
    device = getattr(oled, settings.driver)(bus, width=settings.width, height=settings.height,
                                            **kwargs)
    return Display(device, settings.driver)


def _p(values, q):
    return percentile(values, q) if values else 0.0


def _speeds(interface: str, spi_hz: int):
    """(bus name, clock Hz, target) of each speed reported: I2C at 100 and 400 kHz (the
    target at 400), SPI at the settings' speed."""
    if interface == "i2c":
        return [("I2C 100 kHz", 100_000, None), ("I2C 400 kHz", 400_000, TARGET_MS)]
    return [(f"SPI {spi_hz / 1e6:g} MHz", spi_hz, TARGET_MS)]


def report(name: str, rows: list[Row], frame_bytes: int, interface: str, spi_hz: int) -> None:
    # a timer tick with nothing to turn (a reason that fits on the wide panel) is no change
    inside = [r for r in rows if r.in_screen and r.floor]
    still = [r for r in rows if r.in_screen and not r.floor]
    moves = [r for r in inside if r.label in MOVES]
    new_text = [r for r in inside if r.label in NEW_TEXT]
    changes = [r for r in rows if not r.in_screen]
    speeds = _speeds(interface, spi_hz)
    main_bus, main_hz = speeds[-1][:2]
    print(f"  {name}: {len(inside)} in-screen changes ({len(moves)} moves inside a page and "
          f"ticks, {len(new_text)} bringing new text), {len(changes)} screen changes, "
          f"{len(still)} events that changed nothing; a whole frame is {frame_bytes} bytes")
    print("    (a) moves inside a list page, ticks")
    print(line("      bytes p50", _p([r.data for r in moves], 50), "B", fmt="{:.0f}"))
    print(line("      bytes p99", _p([r.data for r in moves], 99), "B", fmt="{:.0f}"))
    for bus, hz, target in speeds:
        print(line(f"      press→last byte p99, {bus}",
                   _p([r.press_ms(interface, hz) for r in moves], 99), "ms", target))
    print("    (b) new text: list page turns by a press, pages of a long text by the timer")
    print(line("      bytes p50", _p([r.data for r in new_text], 50), "B", fmt="{:.0f}"))
    print(line("      bytes p99", _p([r.data for r in new_text], 99), "B", fmt="{:.0f}"))
    print(line("      floor (bytes that differ) p50", _p([r.floor for r in new_text], 50), "B",
               fmt="{:.0f}"))
    print(line("      floor (bytes that differ) p99", _p([r.floor for r in new_text], 99), "B",
               fmt="{:.0f}"))
    for bus, hz, _target in speeds:
        print(line(f"      press→last byte p99, {bus}",
                   _p([r.press_ms(interface, hz) for r in new_text], 99), "ms"))
    print(line("    in-screen changes sending a whole frame",
               sum(1 for r in inside if r.data >= frame_bytes), "", 0, fmt="{:.0f}"))
    if still:
        print(line("    bytes sent for events that changed nothing", sum(r.data for r in still),
                   "B", fmt="{:.0f}"))
    print(line("    all in-screen changes: bytes p50", _p([r.data for r in inside], 50), "B",
               fmt="{:.0f}"))
    print(line("    all in-screen changes: bytes p99", _p([r.data for r in inside], 99), "B",
               fmt="{:.0f}"))
    print(line(f"    all in-screen press→last byte p99, {main_bus}",
               _p([r.press_ms(interface, main_hz) for r in inside], 99), "ms", TARGET_MS))
    print(line("    bytes per screen change p50", _p([r.data for r in changes], 50), "B",
               fmt="{:.0f}"))
    print(line(f"    screen change press→last byte p99, {main_bus}",
               _p([r.press_ms(interface, main_hz) for r in changes], 99), "ms"))
    print(line("    of which CPU (step, render, diff, pack) p99",
               _p([r.cpu_ms for r in inside], 99), "ms"))
    by: dict = {}
    for r in inside + changes:
        by.setdefault((r.label, r.in_screen), []).append(r)

    def mean(values):
        return sum(values) / len(values)

    print(f"    by event (* a screen change): mean bytes (floor) / p99 press→last byte ms at "
          f"{main_bus}:")
    print("      " + ", ".join(
        f"{label}{'' if in_screen else '*'} {mean([r.data for r in v]):.0f} B "
        f"({mean([r.floor for r in v]):.0f}) / "
        f"{percentile([r.press_ms(interface, main_hz) for r in v], 99):.1f}"
        for (label, in_screen), v in by.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    defaults = config_settings.defaults()
    cfg = flow.FlowConfig.from_settings(defaults, tag_list(), "bench")
    cfg = replace(cfg, hall_name="市民服务中心")
    flows = (("window", cfg, window_round, (flow.SignIn(flow.Staff("0001", "王芳")),)),
             ("kiosk", replace(cfg, mode="kiosk"), kiosk_round, ()))
    fonts = find_fonts(())
    spi_hz = defaults.display.spi_speed_hz
    print(f"panel: per panel {args.rounds} window rounds of two visits and {args.rounds} kiosk "
          f"rounds of a card holder's list, bytes recorded on the bus; wire time at I2C "
          f"100/400 kHz or SPI {spi_hz / 1e6:g} MHz (model in the docstring)")
    for driver, width, interface in PANELS:
        settings = replace(defaults.display, driver=driver, width=width, height=64,
                           interface=interface)
        frame_bytes = width * 64 // (8 if driver != "ssd1322" else 2)
        for name, build in (("luma as shipped", luma_as_shipped),
                            ("changed windows (drivers/panels.py)",
                             lambda s, b: open_display(s, serial=b))):
            for where, flow_cfg, script, start in flows:
                bus = RecordingSerial()
                display = build(settings, bus)
                rows = play(display, bus, args.rounds, fonts, flow_cfg, script, start)
                report(f"{driver} {width}x64 over {interface}, {name}, {where} rounds", rows,
                       frame_bytes, interface, spi_hz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
