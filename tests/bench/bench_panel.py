"""What reaches the panel's bus per button press, and how long it takes on the wire.

    python tests/bench/bench_panel.py [--rounds 30]

The real flow (`flow.step`), the real screens (CJK font) and `Display` with the real
luma device classes (ssd1306 and sh1106 at 128x64, ssd1322 at 256x64) built by
drivers/display.py, on a recording serial interface (tests/panelkit.py) in place of
the I2C or SPI bus. Each round plays a visit: sign-in, invitation, a bad rating, moves
in the reason list, ticks, submit, thanks, back to idle, and an invitation whose item
name takes pages (page turns come from the flow's timer, not a button). Each event is
an "in-screen change" when the screen stays the same kind (list move, tick, page
turn, hint) and a "screen change" otherwise.

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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import luma.oled.device as oled  # noqa: E402

from config import settings as config_settings  # noqa: E402
from config.settings import DisplaySettings  # noqa: E402
from config.tags import builtin  # noqa: E402
from drivers.display import Display, open_display  # noqa: E402
from drivers.fonts import find_fonts  # noqa: E402
from terminal import flow, screens  # noqa: E402
from terminal.clock import FakeClock  # noqa: E402
from tests.bench.figures import line, percentile  # noqa: E402
from tests.panelkit import RecordingSerial  # noqa: E402

TARGET_MS = 5.0
PANELS = (("ssd1306", 128, "i2c"), ("sh1106", 128, "i2c"), ("ssd1322", 256, "spi"))
LONG_NAME = ("企业投资项目核准（含外商投资项目、境外投资项目及需报省级人民政府核准的"
             "固定资产投资项目）变更及延期申请（告知承诺制）")


def i2c_clocks(writes) -> int:
    return sum(9 * (len(values) + 2) + 2 for _, values in writes)


def spi_clocks(writes) -> int:
    return sum(8 * len(values) for _, values in writes)


def events(cfg: flow.FlowConfig, n: int):
    """(label, event or ("wait", ms)) of one round."""
    role = {r: cfg.order[flow.TAG_ROLES.index(r)] for r in flow.TAG_ROLES}
    short = flow.Business(project_no=f"BENCH{n:08d}", task_name="不动产登记（转移登记）")
    long = flow.Business(project_no=f"BENCH{n:08d}L", task_name=LONG_NAME)
    yield "sign-in", flow.SignIn(flow.Staff("0001", "王芳"))
    yield "idle hint", flow.Press(5)
    yield "invitation", flow.Invite(f"visit-{n}", (short,))
    yield "bad rating", flow.Press(2)
    for label in ("down", "down", "toggle", "down", "toggle", "up", "down", "toggle"):
        yield ("tick" if label == "toggle" else "list move"), flow.Press(role[label])
    yield "submit", flow.Press(role["submit"])
    yield "thanks over", ("wait", cfg.thanks_ms)
    yield "invitation", flow.Invite(f"visit-{n}b", (long,))
    yield "page turn", ("wait", cfg.page_ms)
    yield "page turn", ("wait", cfg.page_ms)
    yield "good rating", flow.Press(5)
    yield "thanks over", ("wait", cfg.thanks_ms)


def play(display: Display, bus: RecordingSerial, rounds: int, fonts, cfg, spi_hz: int):
    """[(label, in_screen, cpu_ms, data_bytes, i2c_clocks, spi_clocks)] per event."""
    clock = FakeClock()
    state = flow.initial(cfg, clock.now())
    display.show(screens.render(state, display.size, display.mode, fonts=fonts))
    bus.take()
    out = []
    for n in range(rounds):
        for label, event in events(cfg, n):
            if isinstance(event, tuple):
                clock.advance(event[1])
                event = flow.Tick()
            before = state.screen
            started = time.perf_counter()
            queue = [event]
            while queue:
                state, effects = flow.step(state, queue.pop(0), clock.now())
                queue += [flow.Stored(len(e.drafts)) for e in effects if isinstance(e, flow.Append)]
            display.show(screens.render(state, display.size, display.mode, fonts=fonts))
            cpu_ms = (time.perf_counter() - started) * 1000
            writes = bus.take()
            sent = sum(len(v) for k, v in writes if k == "data")
            out.append((label, type(before) is type(state.screen), cpu_ms, sent,
                        i2c_clocks(writes), spi_clocks(writes)))
    return out


def luma_as_shipped(settings: DisplaySettings, bus: RecordingSerial) -> Display:
    kwargs = {"mode": "RGB"} if settings.driver == "ssd1322" else {}
    device = getattr(oled, settings.driver)(bus, width=settings.width, height=settings.height,
                                            **kwargs)
    return Display(device, settings.driver)


def report(name: str, rows, frame_bytes: int, interface: str, spi_hz: int) -> None:
    inside = [r for r in rows if r[1]]
    changes = [r for r in rows if not r[1]]
    whole = sum(1 for r in inside if r[3] >= frame_bytes)
    print(f"  {name}: {len(inside)} in-screen changes, {len(changes)} screen changes; "
          f"a whole frame is {frame_bytes} bytes")
    print(line("    bytes per in-screen change p50", percentile([r[3] for r in inside], 50), "B",
               fmt="{:.0f}"))
    print(line("    bytes per in-screen change p99", percentile([r[3] for r in inside], 99), "B",
               fmt="{:.0f}"))
    print(line("    in-screen changes sending a whole frame", whole, "", 0, fmt="{:.0f}"))
    print(line("    bytes per screen change p50", percentile([r[3] for r in changes], 50), "B",
               fmt="{:.0f}"))
    if interface == "i2c":
        for hz in (100_000, 400_000):
            wire = [r[2] + r[4] / hz * 1000 for r in inside]
            target = TARGET_MS if hz == 400_000 else None
            print(line(f"    in-screen press→last byte p99, I2C {hz // 1000} kHz",
                       percentile(wire, 99), "ms", target))
        wire = [r[2] + r[4] / 400_000 * 1000 for r in changes]
        print(line("    screen change press→last byte p99, I2C 400 kHz", percentile(wire, 99), "ms"))
    else:
        wire = [r[2] + r[5] / spi_hz * 1000 for r in inside]
        print(line(f"    in-screen press→last byte p99, SPI {spi_hz / 1e6:g} MHz",
                   percentile(wire, 99), "ms", TARGET_MS))
        wire = [r[2] + r[5] / spi_hz * 1000 for r in changes]
        print(line(f"    screen change press→last byte p99, SPI {spi_hz / 1e6:g} MHz",
                   percentile(wire, 99), "ms"))
    print(line("    of which CPU (step, render, diff, pack) p99", percentile([r[2] for r in inside], 99),
               "ms"))
    by = {}
    for r in rows:
        wire_ms = r[4] / 400_000 * 1000 if interface == "i2c" else r[5] / spi_hz * 1000
        by.setdefault(r[0], []).append((r[3], r[2] + wire_ms))
    bus = "I2C 400 kHz" if interface == "i2c" else f"SPI {spi_hz / 1e6:g} MHz"
    print(f"    by event: mean bytes / p99 press→last byte ms at {bus}:")
    print("      " + ", ".join(f"{label} {sum(b for b, _ in v) / len(v):.0f} B / "
                               f"{percentile([t for _, t in v], 99):.1f}" for label, v in by.items()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    defaults = config_settings.defaults()
    cfg = flow.FlowConfig.from_settings(defaults, builtin(), "bench")
    cfg = replace(cfg, hall_name="市民服务中心")
    fonts = find_fonts(())
    spi_hz = defaults.display.spi_speed_hz
    print(f"panel: {args.rounds} rounds of a visit per panel, bytes recorded on the bus; "
          f"wire time at I2C 100/400 kHz or SPI {spi_hz / 1e6:g} MHz (model in the docstring)")
    for driver, width, interface in PANELS:
        settings = replace(defaults.display, driver=driver, width=width, height=64,
                           interface=interface)
        frame_bytes = width * 64 // (8 if driver != "ssd1322" else 2)
        for name, build in (("luma as shipped", luma_as_shipped),
                            ("changed windows (drivers/panels.py)",
                             lambda s, b: open_display(s, serial=b))):
            bus = RecordingSerial()
            display = build(settings, bus)
            rows = play(display, bus, args.rounds, fonts, cfg, spi_hz)
            report(f"{driver} {width}x64 over {interface}, {name}", rows, frame_bytes,
                   interface, spi_hz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
