"""Display wrapper, simulated luma devices, the console device and friendly errors."""
import importlib.util
import io
import os

import pytest
from PIL import Image, ImageChops, ImageDraw

import luma.core.error
from luma.core.device import dummy
from luma.core.interface.serial import noop
from luma.oled.device import ssd1306

from config.settings import DisplaySettings
from drivers.console import console, half_blocks
from drivers.display import Display, DisplayError, _explain, open_display
from tests.panelkit import RecordingSerial


def sample(mode="1", size=(128, 64)):
    """A frame with a filled box and a diagonal line."""
    image = Image.new(mode, size)
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 29, 19), fill="white")
    draw.line((0, 63, 63, 0), fill="white")
    return image


def same(a, b):
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def sim(driver, **kw):
    return DisplaySettings(driver=driver, **kw)


# --- Display on luma's dummy ----------------------------------------------------------

def test_dummy_gets_the_frame():
    display = open_display(sim("dummy"))
    assert display.mode == "1" and display.size == (128, 64)
    assert display.show(sample()) is True
    assert same(display.device.image, sample())
    assert display.device.image.getpixel((15, 15)) == 255
    assert display.device.image.getpixel((40, 40)) == 0
    assert display.frames == 1


def test_wide_simulated_panel_draws_greyscale():
    display = open_display(sim("dummy", width=256))
    assert display.mode == "L" and display.size == (256, 64)


def test_rotation_swaps_the_drawing_size():
    display = open_display(sim("dummy", rotate=1))
    assert display.size == (64, 128)
    display.show(Image.new("1", (64, 128), 1))
    assert display.device.image.size == (128, 64)


def test_mono_image_on_rgb_device_is_converted():
    display = Display(dummy(mode="RGB"))
    assert display.mode == "L"
    display.show(sample("1"))
    assert display.device.image.mode == "RGB"
    assert display.device.image.getpixel((15, 15)) == (255, 255, 255)
    assert display.device.image.getpixel((40, 40)) == (0, 0, 0)


def test_grey_image_on_rgb_device_keeps_grey_levels():
    display = Display(dummy(mode="RGB"))
    display.show(Image.new("L", (128, 64), 200))
    assert display.device.image.getpixel((5, 5)) == (200, 200, 200)


def test_grey_image_on_mono_device_is_thresholded_not_dithered():
    display = Display(dummy(mode="1"))
    display.show(Image.new("L", (128, 64), 100))
    assert display.device.image.getbbox() is None          # all off, no dither dots
    display.show(Image.new("L", (128, 64), 200))
    assert display.device.image.getextrema() == (255, 255)  # all on


def test_identical_frames_are_skipped():
    display = Display(dummy(mode="1"))
    assert display.show(sample()) is True
    assert display.show(sample()) is False
    assert display.show(sample("L")) is False               # same pixels, other mode
    assert (display.frames, display.skipped) == (1, 2)
    assert display.show(Image.new("1", (128, 64))) is True
    assert display.frames == 2


def test_wrong_size_is_refused():
    with pytest.raises(ValueError, match="64x32"):
        Display(dummy()).show(Image.new("1", (64, 32)))


def test_real_ssd1306_driver_accepts_converted_frames():
    display = Display(ssd1306(serial_interface=noop()))
    assert display.mode == "1"
    assert display.show(sample("L")) is True


class FlakyPanel(dummy):
    """A luma device whose bus fails once, like a loose I2C cable."""

    def __init__(self):
        super().__init__(mode="1")
        self.fail = True

    def display(self, image):
        if self.fail:
            self.fail = False
            raise OSError(121, "Remote I/O error")
        super().display(image)


def test_io_error_is_counted_and_the_frame_retried():
    display = Display(FlakyPanel())
    assert display.show(sample()) is False
    assert display.health()["errors"] == 1
    assert "Remote I/O" in display.health()["last_error"]
    assert display.show(sample()) is True
    assert same(display.device.image, sample())


# --- close ----------------------------------------------------------------------------

def out_of_service():
    image = Image.new("1", (128, 64))
    ImageDraw.Draw(image).rectangle((0, 0, 127, 10), fill="white")
    return image


def test_close_keeps_final_frame_on_panel():
    display = open_display(sim("dummy", keep_frame_on_exit=True))
    display.show(sample())
    display.close(out_of_service())
    assert display.device.persist is True
    assert same(display.device.image, out_of_service())      # cleanup did not clear it
    assert display.closed


def test_close_without_keep_clears_and_switches_off():
    display = open_display(sim("dummy", keep_frame_on_exit=False))
    display.close(out_of_service())
    assert display.device.persist is False
    assert display.frames == 1                               # the final frame was shown
    assert display.device.image.getbbox() is None            # then cleanup cleared it


def test_close_is_idempotent_and_show_after_close_fails():
    display = open_display(sim("dummy"))
    with display:
        display.show(sample())
    display.close(out_of_service())
    assert same(display.device.image, sample())
    with pytest.raises(RuntimeError, match="closed"):
        display.show(sample())


# --- luma.emulator devices ------------------------------------------------------------

def test_capture_writes_unscaled_png_frames(tmp_path):
    display = open_display(sim("capture", output_dir=str(tmp_path / "frames")))
    display.show(sample())
    display.show(sample())
    display.show(out_of_service())
    files = sorted(os.listdir(tmp_path / "frames"))
    assert files == ["frame_000001.png", "frame_000002.png"]
    with Image.open(tmp_path / "frames" / files[0]) as png:
        assert png.size == (128, 64)
        assert same(png, sample())
    display.close()


def test_gifanim_writes_animation_on_close(tmp_path):
    display = open_display(sim("gifanim", output_dir=str(tmp_path)))
    display.show(sample())
    display.show(out_of_service())
    display.close()
    with Image.open(tmp_path / "pingjia.gif") as gif:
        assert gif.n_frames == 2
        assert gif.size == (256, 128)


def test_pygame_without_a_desktop_points_to_console(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DisplayError, match='driver = "console"'):
        open_display(sim("pygame"))


def test_pygame_window_with_sdl_dummy_driver(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    display = open_display(sim("pygame"))
    try:
        assert display.show(sample()) is True
        assert display.device._screen.get_size() == (512, 256)
    finally:
        display.close()
        import pygame
        pygame.quit()


# --- console device -------------------------------------------------------------------

def test_half_block_art_of_a_known_image():
    image = Image.new("1", (4, 4))
    for xy in [(0, 0), (1, 1), (2, 0), (2, 1), (3, 3)]:
        image.putpixel(xy, 1)
    assert half_blocks(image) == ["┌────┐",
                                  "│▀▄█ │",
                                  "│   ▄│",
                                  "└────┘"]


def test_console_prints_frames_plainly_when_not_a_tty():
    out = io.StringIO()
    display = open_display(sim("console"), stream=out)
    image = Image.new("1", (128, 64))
    image.putpixel((0, 0), 1)
    image.putpixel((127, 63), 1)
    display.show(image)
    display.set_status("LED ● ○ ○ ○ ○   keys 1-5")
    display.show(image)                                   # skipped: nothing printed
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "--- frame 1 ---"
    assert lines[1] == "┌" + "─" * 128 + "┐"
    assert lines[2] == "│▀" + " " * 127 + "│"
    assert lines[33] == "│" + " " * 127 + "▄│"
    assert lines[34] == "└" + "─" * 128 + "┘"
    assert lines[-1] == "status: LED ● ○ ○ ○ ○   keys 1-5"
    assert text.count("--- frame") == 1


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_console_redraws_in_place_on_a_tty():
    out = FakeTTY()
    device = console(stream=out)
    display = Display(device)
    display.show(sample())
    first = out.getvalue()
    assert first.startswith("\x1b7\x1b[?7l\x1b[2J\x1b[H")   # save cursor, no wrap, clear, home
    assert "█" in first and "▀" in first
    display.show(out_of_service())
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b7\x1b[?7l\x1b[H")          # no second clear screen
    assert second.endswith("\x1b[?7h\x1b8")                  # wrap back on, cursor restored
    device.set_status("按 1-5 评价")
    third = out.getvalue()[len(first) + len(second):]
    assert "\x1b[35;1H按 1-5 评价\x1b[K" in third            # the row under the 34-row frame
    assert "█" not in third


def test_console_close_without_keep_shows_blank_panel():
    out = io.StringIO()
    display = open_display(sim("console", keep_frame_on_exit=False), stream=out)
    display.close(out_of_service())
    frames = out.getvalue().split("--- frame ")
    assert len(frames) == 3                                  # final frame, then cleared
    assert "█" in frames[1] and "█" not in frames[2] and "▀" not in frames[2]


# --- friendly errors ------------------------------------------------------------------

def test_missing_i2c_bus_names_bus_and_fix():
    with pytest.raises(DisplayError) as err:
        open_display(DisplaySettings(driver="ssd1306", interface="i2c", i2c_port=19))
    text = str(err.value)
    assert "/dev/i2c-19" in text and "bus 19" in text
    assert "raspi-config" in text and "dtparam=i2c_arm=on" in text


def test_i2c_permission_denied_names_group():
    exc = luma.core.error.DevicePermissionError("I2C device permission denied: /dev/i2c-1")
    text = _explain(DisplaySettings(), exc)
    assert "'i2c' group" in text and "/dev/i2c-1" in text


def test_no_panel_at_address_names_address_and_i2cdetect():
    exc = luma.core.error.DeviceNotFoundError("I2C device not found on address: 0x3D")
    text = _explain(DisplaySettings(i2c_address=0x3D), exc)
    assert "0x3D" in text and "i2cdetect -y 1" in text


@pytest.mark.skipif(importlib.util.find_spec("RPi") is not None, reason="RPi.GPIO installed")
def test_spi_without_gpio_library_says_what_to_install():
    with pytest.raises(DisplayError, match="python3-rpi-lgpio"):
        open_display(DisplaySettings(driver="ssd1306", interface="spi"))


def test_missing_spi_device_names_dtparam():
    exc = luma.core.error.DeviceNotFoundError("SPI device not found")
    text = _explain(DisplaySettings(interface="spi", spi_port=0, spi_device=1), exc)
    assert "/dev/spidev0.1" in text and "dtparam=spi=on" in text


# --- a real luma driver over a recording bus: absent panels, power loss, SPI lines ------

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def init_sequence():
    """What luma's ssd1306 sends when it starts a 128x64 panel."""
    bus = RecordingSerial()
    ssd1306(bus, width=128, height=64)
    return bus.commands()


def sends_init(commands) -> bool:
    """The init sequence, in one piece, somewhere in `commands`."""
    init = init_sequence()
    return any(commands[i:i + len(init)] == init for i in range(len(commands) - len(init) + 1))


def hardware(**kw):
    return DisplaySettings(driver="ssd1306", interface=kw.pop("interface", "i2c"), **kw)


def open_on(bus, clock, **kw):
    return open_display(hardware(**kw), absent_ok=True, serial=bus, clock=clock)


def test_a_panel_that_does_not_answer_at_start_is_no_reason_to_stop():
    bus = RecordingSerial(fail=True)
    with pytest.raises(DisplayError, match="0x3C"):
        open_display(hardware(), serial=bus)       # a technician's check still says why
    display = open_display(hardware(), absent_ok=True, serial=bus)
    assert display.size == (128, 64) and display.mode == "1"
    assert display.health()["present"] is False
    assert "0x3C" in display.health()["last_error"]
    assert display.show(sample()) is False         # no exception: ratings go on


def test_a_panel_that_comes_later_gets_the_init_sequence_and_the_wanted_frame():
    bus, clock = RecordingSerial(fail=True), Clock()
    display = open_on(bus, clock)
    display.show(sample())
    bus.fail = False
    assert display.retry() is False                # not before the retry time
    clock.now += 2.5
    assert display.retry() is True
    assert sends_init(bus.commands())
    assert display.health()["present"] is True and display.health()["last_error"] is None
    assert bus.writes[-1][0] == "data"             # then the frame itself


def test_a_panel_that_lost_power_is_initialised_again():
    bus, clock = RecordingSerial(), Clock()
    display = open_on(bus, clock)
    assert display.show(sample()) is True
    bus.fail = True                                # power gone
    assert display.show(out_of_service()) is False
    assert display.health()["present"] is False
    bus.fail = False                               # power back: the panel forgot its setup
    bus.writes.clear()
    clock.now += 2.5
    assert display.retry() is True
    assert sends_init(bus.commands())
    assert display.health()["reinits"] == 1
    display.close()


@pytest.mark.parametrize("keep", [True, False])
def test_spi_panel_keeps_its_reset_line_driven_when_the_frame_stays(spi_libs, keep):
    gpio, spidev = spi_libs
    settings = hardware(interface="spi", keep_frame_on_exit=keep)
    display = open_display(settings)
    assert gpio.lines[settings.gpio_reset] == {"direction": "out", "level": gpio.HIGH}
    assert display.show(sample()) is True and spidev.buses[-1].written
    display.close(out_of_service())
    assert spidev.buses[-1].closed
    if keep:
        # a freed RST line floats and may reset the panel: the frame would be lost
        assert gpio.lines[settings.gpio_reset] == {"direction": "out", "level": gpio.HIGH}
    else:
        assert settings.gpio_reset not in gpio.lines and settings.gpio_dc not in gpio.lines


def test_a_panel_away_for_hours_builds_no_device_per_attempt(monkeypatch):
    import atexit
    hooks = []
    monkeypatch.setattr(atexit, "register", lambda f, *a, **k: hooks.append(f) or f)
    bus, clock = RecordingSerial(fail=True), Clock()
    display = open_on(bus, clock)
    display.show(sample())
    for _ in range(50):
        clock.now += 2.5
        assert display.retry() is False
    assert hooks == []   # each luma device registers one: none was built
    assert display.health()["errors"] >= 50
