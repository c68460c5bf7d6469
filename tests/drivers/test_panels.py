"""Partial updates: after any sequence of frames, the panel's memory (decoded from what
was sent on the bus) holds exactly the last frame drawn; and only changes are sent."""
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageDraw

from config.settings import DisplaySettings
from drivers.display import open_display
from drivers.panels import bands, changed_runs, windows
from tests.panelkit import RecordingSerial, SH1106RAM, SSD1306RAM, SSD1322RAM, grey4

PANELS = {"ssd1306": ((128, 64), SSD1306RAM), "sh1106": ((128, 64), SH1106RAM),
          "ssd1322": ((256, 64), SSD1322RAM)}


def panel(driver, rotate=0):
    (w, h), ram = PANELS[driver]
    bus = RecordingSerial()
    display = open_display(DisplaySettings(driver=driver, width=w, height=h, rotate=rotate,
                                           interface="spi" if driver == "ssd1322" else "i2c"),
                           serial=bus)
    model = ram(w, h // 8) if ram is not SSD1322RAM else ram(w, h)
    model.feed(bus.take())  # the init sequence and luma's first clear
    return display, bus, model



def on_glass(display, frame):
    """What the panel should show for `frame`, in the model's terms."""
    if display.mode == "1":
        return frame.convert("L").convert("1", dither=Image.Dither.NONE)
    return grey4(frame)


def glass(model, rotate):
    shown = model.image()
    return shown.rotate(-90 * rotate, expand=True) if rotate else shown


shapes = st.lists(st.tuples(st.integers(0, 255), st.integers(0, 63), st.integers(1, 40),
                            st.integers(1, 20), st.sampled_from([0, 85, 170, 255])),
                  min_size=0, max_size=4)


@pytest.mark.parametrize("driver", sorted(PANELS))
@settings(max_examples=25, deadline=None)
@given(frames=st.lists(shapes, min_size=1, max_size=6), rotate=st.sampled_from([0, 2]))
def test_the_glass_holds_the_frame_drawn_after_any_partial_updates(driver, frames, rotate):
    display, bus, model = panel(driver, rotate)
    width, height = display.size
    frame = Image.new(display.mode, (width, height))
    for changes in frames:
        frame = frame.copy()
        draw = ImageDraw.Draw(frame)
        for x, y, w, h, level in changes:
            draw.rectangle((x % width, y % height, x % width + w, y % height + h),
                           fill=level if display.mode == "L" else (255 if level > 127 else 0))
        display.show(frame)
        model.feed(bus.take())
        assert glass(model, rotate).tobytes() == on_glass(display, frame).tobytes()


@pytest.mark.parametrize("driver", ["ssd1306", "sh1106"])
def test_a_small_change_sends_a_few_bytes_and_a_new_screen_the_whole_frame(driver):
    display, bus, model = panel(driver)
    first = Image.new("1", (128, 64))
    ImageDraw.Draw(first).rectangle((0, 0, 127, 63), fill=255)
    display.show(first)
    assert sum(len(v) for k, v in bus.take() if k == "data") == 1024
    tick = first.copy()
    ImageDraw.Draw(tick).rectangle((40, 20, 45, 26), fill=0)  # a box ticked: two pages
    display.show(tick)
    sent = bus.take()
    assert sum(len(v) for k, v in sent if k == "data") == 2 * 6
    assert len(sent) <= 4  # one window (commands + data) per page at most


@pytest.mark.parametrize("driver", ["ssd1306", "sh1106"])
def test_changes_at_both_ends_of_a_page_are_sent_apart(driver):
    """A cursor move: the pointer at the left edge, the position at the right one."""
    display, bus, model = panel(driver)
    first = Image.new("1", (128, 64))
    display.show(first)
    bus.take()
    moved = first.copy()
    draw = ImageDraw.Draw(moved)
    draw.rectangle((0, 2, 4, 5), fill=255)       # page 0, columns 0-4
    draw.rectangle((110, 0, 116, 12), fill=255)  # pages 0 and 1, columns 110-116
    display.show(moved)
    sent = bus.take()
    assert sum(len(v) for k, v in sent if k == "data") == 5 + 2 * 7
    model.feed(sent)
    assert glass(model, 0).tobytes() == on_glass(display, moved).tobytes()


def test_runs_of_a_page_join_across_short_gaps_and_bands_across_pages():
    old, new = bytes(128), bytearray(128)
    for column in (0, 1, 2, 5, 6, 100, 101):
        new[column] = 0xFF
    assert changed_runs(old, bytes(new), 8) == [(0, 6), (100, 101)]
    assert changed_runs(old, old, 8) == [] and changed_runs(None, old, 8) == [(0, 127)]
    assert bands([[(0, 6), (100, 101)], [], [(3, 20)], [(120, 127)]], 8) == [
        (0, 20), (100, 101), (120, 127)]


def test_pages_far_apart_get_a_window_each_and_neighbours_share_one():
    assert windows([(3, 5), None, None, None, None, None, None, (100, 101)]) == [
        (0, 0, 3, 5), (7, 7, 100, 101)]
    assert windows([(10, 20), (10, 20), None, None, None, None, None, None]) == [(0, 1, 10, 20)]


def test_a_panel_started_again_gets_a_whole_frame():
    display, bus, model = panel("ssd1306")
    frame = Image.new("1", (128, 64))
    ImageDraw.Draw(frame).text((5, 5), "A", fill=255)
    display.show(frame)
    bus.fail = True   # power gone: the panel forgot its memory
    other = frame.copy()
    ImageDraw.Draw(other).text((60, 30), "B", fill=255)
    display.show(other)
    bus.fail = False
    bus.take()
    display._clock = lambda: 1e9  # past the retry time
    assert display.retry() is True
    assert sum(len(v) for k, v in bus.take() if k == "data") >= 1024


@pytest.mark.parametrize("driver", ["ssd1322", "ssd1325"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_greyscale_bytes_packed_by_pillow_are_lumas(driver, data):
    """FastSSD1322/FastSSD1325 send what luma's own per-pixel loop would: 4-bit grey by
    luma's formula, in the controller's nibble order (RGB frames and mono ones)."""
    import luma.oled.device as oled
    from luma.core.interface.serial import noop

    from drivers.panels import greyscale_nibbles
    mode = data.draw(st.sampled_from(["RGB", "1"]))
    device = getattr(oled, driver)(noop(), mode=mode, **({"width": 128} if driver == "ssd1325" else {}))
    width = data.draw(st.sampled_from([4, 8, 64]))
    height = data.draw(st.integers(1, 16))
    size = width * height * 3 if mode == "RGB" else (width + 7) // 8 * height
    segment = Image.frombytes(mode, (width, height), data.draw(st.binary(min_size=size, max_size=size)))
    luma_bytes = bytearray(width * height >> 1)
    pixels = getattr(segment, "get_flattened_data", segment.getdata)()  # (Pillow 13 renamed it)
    device._populate(luma_bytes, list(pixels))
    assert greyscale_nibbles(segment, device._nibble_order) == bytes(luma_bytes)
