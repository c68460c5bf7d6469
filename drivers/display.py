"""The screen: any luma device behind one small `Display` wrapper.

Hardware: ssd1306, sh1106, ssd1309 (mono), ssd1322, ssd1325 (greyscale) over
I2C or SPI. Simulated: `dummy` (luma.core, keeps the last image), `capture` (PNG per
frame) and `gifanim` (one GIF at close) into `output_dir` (drivers/framefiles.py),
`pygame` (a window; needs the `sim` extra), and
`console` (half-block art in the terminal, see drivers/console.py).

The Pi's I2C bus runs at 100 kHz by default: about 10 full 128x64 frames a second. Set
`dtparam=i2c_arm=on,i2c_arm_baudrate=400000` in /boot/firmware/config.txt for about 40.
Either way, redraw on change: `Display.show` skips a frame equal to the last one, and
the panel is sent only the part of a frame that changed (drivers/panels.py).

A hardware panel that does not answer does not stop the terminal: `open_display(...,
absent_ok=True)` gives a `Display` without a panel that reports the fault in `health()`
and tries again every `retry_s`; buttons and ratings go on. A write that fails (a loose
cable, a panel that lost power) marks the panel for a fresh start: the next frame first
builds the luma device again on the same bus, which sends the panel's init sequence.

SPI panels: luma's `spi` cleanup frees the DC and RST lines, and a released RST line
floats, which can reset the panel and lose the kept frame. So the display passes its own
RPi.GPIO to luma (luma then leaves the lines alone) and frees them itself only when the
frame is not to be kept.

Exit: luma switches the panel off when the process exits unless `persist` is set.
`Display.close(final_image)` shows the "out of service" frame and then, per
`keep_frame_on_exit`, leaves it on the panel or clears and switches the panel off. A crash
that never reaches `close` leaves luma's default (panel off): dark, not a stale "please
rate" screen. systemd stops the service with SIGTERM, which skips atexit: the service
must turn SIGTERM into a normal shutdown that calls `close`.
"""
from __future__ import annotations

import atexit
import logging
import os
import time

from PIL import Image

import luma.core.error
from config.settings import HARDWARE_DISPLAYS as HARDWARE  # spi_speed_hz is checked there too
from drivers.pins import HardwareError

log = logging.getLogger(__name__)

__all__ = ["Display", "DisplayError", "open_display", "HARDWARE", "SIMULATED"]

SIMULATED = ("dummy", "capture", "gifanim", "pygame", "console")
GREYSCALE = ("ssd1322", "ssd1325")
DISPLAY_OFF = 0xAE


class DisplayError(HardwareError):
    """The display cannot be opened; the message says what to fix."""


class Display:
    """Shows PIL images on a luma device, skipping repeats and counting frames.

    `mode` is what screens should draw: "1" for a mono panel, "L" for a greyscale or
    colour one; `size` is (width, height) after rotation. `show` converts to the
    device's own mode.
    """

    def __init__(self, device, name: str | None = None, keep_frame_on_exit: bool = True, *,
                 reopen=None, size: tuple[int, int] | None = None, mode: str | None = None,
                 error: str | None = None, retry_s: float = 2.0, clock=time.monotonic,
                 release=None):
        """`device` may be None (no panel answered yet): then `size` and `mode` say what
        the panel will be, and `reopen()` builds the luma device, raising DisplayError
        while the panel does not answer. `release(keep_frame)` runs after luma's
        cleanup (an SPI panel's GPIO lines)."""
        if device is None and (reopen is None or size is None or mode is None):
            raise ValueError("a display without a device needs reopen, size and mode")
        self.device = device
        self.name = name or type(device).__name__
        self.keep_frame_on_exit = keep_frame_on_exit
        self.size: tuple[int, int] = tuple(device.size) if device is not None else tuple(size)
        self.mode = mode or ("1" if device.mode == "1" else "L")
        # what the luma device takes: greyscale panels are opened in RGB mode
        self._device_mode = device.mode if device is not None else ("1" if self.mode == "1" else "RGB")
        self.frames = 0        # frames sent to the device
        self.skipped = 0       # frames equal to the previous one, not sent
        self.errors = 0
        self.reinits = 0       # times the panel was started again (init sequence resent)
        self.last_error: str | None = error
        self._reopen = reopen
        self._release_lines = release
        self._retry_s = retry_s
        self._clock = clock
        self._next_try = clock() + (retry_s if device is None else 0)
        self._stale = device is None  # the panel needs (again) its init sequence
        self._wanted: Image.Image | None = None  # the frame the panel should show
        self._last: bytes | None = None
        self._closed = False
        if error:
            log.error("display %s: %s; going on without a screen", self.name, error)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def present(self) -> bool:
        """A panel answered the last time it was written to."""
        return self.device is not None and not self._stale

    def show(self, image: Image.Image) -> bool:
        """Send `image` unless it equals the last frame; True when it was sent.

        An I/O error (loose cable, panel off the bus) is logged and counted in
        `health()` rather than raised: ratings must go on without a screen.
        """
        if self._closed:
            raise RuntimeError("display is closed")
        if image.size != self.size:
            raise ValueError(f"image is {image.size[0]}x{image.size[1]}, "
                             f"display is {self.size[0]}x{self.size[1]}")
        frame = self._convert(image)
        data = frame.tobytes()
        if data == self._last:
            self.skipped += 1
            return False
        self._wanted = frame
        return self._send(frame, data)

    def retry(self) -> bool:
        """Try again to put the wanted frame on a panel that was absent or failed; the
        event loop calls this when it has nothing new to draw. True when it was sent."""
        if self._closed or self._wanted is None or self._last is not None:
            return False
        if self._clock() < self._next_try:
            return False
        return self._send(self._wanted, self._wanted.tobytes())

    def retry_in(self) -> float | None:
        """Seconds until `retry` has something to do (0: now), or None when the panel
        shows what it should: the event loop sleeps until then."""
        if self._closed or self._wanted is None or self._last is not None:
            return None
        return max(0.0, self._next_try - self._clock())

    def _send(self, frame: Image.Image, data: bytes) -> bool:
        if self._stale and not self._start_panel():
            return False
        try:
            self.device.display(frame)
        except (OSError, luma.core.error.Error) as exc:
            self._failed(str(exc))
            return False
        if self.last_error is not None:
            log.warning("display %s answers again", self.name)
            self.last_error = None
        self._last = data
        self.frames += 1
        return True

    def _start_panel(self) -> bool:
        """Build the luma device again (its constructor sends the init sequence)."""
        if self._reopen is None:
            self._stale = False  # nothing to start again with: just write
            return True
        if self._clock() < self._next_try:
            return False
        try:
            device = self._reopen()
        except DisplayError as exc:
            self._failed(str(exc))
            return False
        if self.device is not None and self.device is not device:
            self.device.cleanup = _nothing  # the old object's atexit hook: same bus, leave it
        self.device = device
        self._stale = False
        self.reinits += 1
        return True

    def _failed(self, text: str) -> None:
        self._last = None  # resend the next frame in full
        self.errors += 1
        if self.last_error is None:
            log.error("display %s: %s", self.name, text)
        self.last_error = text
        self._next_try = self._clock() + self._retry_s
        if self._reopen is not None:
            # a panel that lost power forgot its settings: start it again before writing
            self._stale = True

    def _convert(self, image: Image.Image) -> Image.Image:
        target = self._device_mode
        if image.mode == target:
            return image
        if target == "1":
            # a threshold, not dithering: dithered text looks fuzzy on an OLED
            return image.convert("L").convert("1", dither=Image.Dither.NONE)
        return image.convert(target)

    def set_status(self, text: str) -> None:
        """Status line under the picture (console device only; ignored elsewhere)."""
        setter = getattr(self.device, "set_status", None)
        if setter is not None:
            setter(text)

    def health(self) -> dict:
        return {"driver": self.name, "size": list(self.size), "mode": self.mode,
                "present": self.present, "frames": self.frames, "skipped": self.skipped,
                "errors": self.errors, "reinits": self.reinits,
                "last_error": self.last_error, "closed": self._closed}

    def close(self, final_image: Image.Image | None = None) -> None:
        """Show `final_image`, then keep it on the panel or switch the panel off."""
        if self._closed:
            return
        try:
            if final_image is not None:
                self.show(final_image)
        finally:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self.device is None:
            return
        # persist=False makes luma's cleanup clear the panel and switch it off.
        # (The emulators' cleanup does nothing either way: they have no power state.)
        self.device.persist = self.keep_frame_on_exit
        try:
            self.device.cleanup()
        except (OSError, luma.core.error.Error) as exc:
            log.error("display %s: cleanup failed: %s", self.name, exc)
        if self._release_lines is not None:
            try:
                self._release_lines(self.keep_frame_on_exit)
            except Exception as exc:  # RPi.GPIO's own error types
                log.error("display %s: releasing the GPIO lines failed: %s", self.name, exc)
        write_gif = getattr(self.device, "write_animation", None)
        if write_gif is not None:
            atexit.unregister(write_gif)
            try:
                write_gif()
            except OSError as exc:
                log.error("display %s: cannot write the GIF: %s", self.name, exc)
        # luma's own atexit hook would run cleanup again on a closed bus.
        self.device.cleanup = _nothing

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _nothing():
    pass


def open_display(settings, stream=None, *, absent_ok: bool = False, serial=None,
                 clock=time.monotonic) -> Display:
    """Open the device named by `settings.driver` (a `DisplaySettings`).

    `stream` is where the console device draws (default sys.stdout). A hardware panel
    that cannot be opened raises DisplayError, or with `absent_ok` gives a Display
    without a panel that keeps trying. `serial`: a luma serial interface to use
    instead of opening the configured bus (tests); `clock` paces the retries.
    """
    driver = settings.driver
    if driver in HARDWARE:
        panel = _HardwarePanel(settings, serial)
        try:
            device = panel()
        except DisplayError as exc:
            if not absent_ok:
                raise
            return Display(None, driver, settings.keep_frame_on_exit, reopen=panel,
                           size=_panel_size(settings), mode=_panel_mode(driver),
                           error=str(exc), release=panel.release, clock=clock)
        return Display(device, driver, settings.keep_frame_on_exit, reopen=panel,
                       release=panel.release, clock=clock)
    if driver in SIMULATED:
        device = _open_simulated(settings, stream)
    else:
        raise ValueError(f"unknown display driver {driver!r}")
    try:
        device.contrast(settings.contrast)
    except (OSError, luma.core.error.Error) as exc:
        raise DisplayError(_explain(settings, exc)) from exc
    return Display(device, driver, settings.keep_frame_on_exit)


def _panel_size(settings) -> tuple[int, int]:
    w, h = settings.width, settings.height
    return (h, w) if settings.rotate in (1, 3) else (w, h)


def _panel_mode(driver: str) -> str:
    return "L" if driver in GREYSCALE else "1"


class _HardwarePanel:
    """Builds the luma device for the settings; called again to start a panel anew.

    The bus (serial interface) is opened once and kept: starting again sends the init
    sequence over the same bus, and no file descriptor leaks while a panel is away.
    """

    def __init__(self, settings, serial=None):
        self.settings = settings
        self.serial = serial
        self.gpio = None  # RPi.GPIO, for an SPI panel's DC/RST lines

    def __call__(self):
        from drivers.panels import device_class

        s = self.settings
        try:
            if self.serial is None:
                self.serial = self._open_bus()
            # One "display off" (0xAE on every SSD13xx/SH11xx) first: a panel that does
            # not answer fails here, before luma builds a device object, which would
            # register an atexit hook per attempt while a panel stays away for hours.
            self.serial.command(DISPLAY_OFF)
            # (a class that sends the panel only what changed: drivers/panels.py)
            make, kwargs = device_class(s.driver)
            if s.driver in GREYSCALE:
                kwargs["mode"] = "RGB"  # greyscale, so antialiased text stays smooth
            device = make(self.serial, width=s.width, height=s.height, rotate=s.rotate, **kwargs)
            device.contrast(s.contrast)
            return device
        except DisplayError:
            raise
        except (OSError, ImportError, RuntimeError, luma.core.error.Error) as exc:
            raise DisplayError(_explain(s, exc)) from exc

    def _open_bus(self):
        from luma.core.interface.serial import i2c, spi

        s = self.settings
        if s.interface == "i2c":
            return i2c(port=s.i2c_port, address=s.i2c_address)
        if self.gpio is None:
            self.gpio = _rpi_gpio()
        # our own GPIO: luma then leaves the lines alone at cleanup (see release)
        return spi(gpio=self.gpio, port=s.spi_port, device=s.spi_device,
                   bus_speed_hz=s.spi_speed_hz, gpio_DC=s.gpio_dc, gpio_RST=s.gpio_reset)

    def release(self, keep_frame: bool) -> None:
        """Free the SPI panel's DC and RST lines, unless the frame is to stay: a freed RST
        line floats and can reset the panel."""
        if self.gpio is not None and not keep_frame:
            self.gpio.cleanup([self.settings.gpio_dc, self.settings.gpio_reset])


def _rpi_gpio():
    import RPi.GPIO as GPIO  # python3-rpi-lgpio, or the PyPI wheel rpi-lgpio

    GPIO.setmode(GPIO.BCM)
    GPIO.setwarnings(False)
    return GPIO


def _open_simulated(settings, stream):
    # The simulation stands in for the configured panel: the only 256-wide panel
    # offered (ssd1322) is greyscale, the 128-wide ones are drawn mono.
    mode = "RGB" if settings.width >= 256 else "1"
    common = dict(width=settings.width, height=settings.height, rotate=settings.rotate, mode=mode)
    driver = settings.driver
    if driver == "dummy":
        from luma.core.device import dummy
        return dummy(**common)
    if driver == "console":
        from drivers.console import console
        return console(stream=stream, **common)
    if driver in ("capture", "gifanim"):
        from drivers import framefiles  # Pillow only: files need no pygame, no luma.emulator
        out = settings.output_dir or "."
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:
            raise DisplayError(f"cannot create display.output_dir {out!r}: {exc}") from exc
        if driver == "capture":
            # unscaled PNGs: pixel for pixel what the panel shows, easy to compare
            return framefiles.capture(file_template=os.path.join(out, "frame_{0:06}.png"), **common)
        return framefiles.gifanim(scale=2, duration=0.5, filename=os.path.join(out, "pingjia.gif"),
                           **common)
    return _open_pygame(common)


def _open_pygame(common):
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            or os.environ.get("SDL_VIDEODRIVER")):
        raise DisplayError('display.driver = "pygame" needs a graphical desktop (no DISPLAY '
                           'or WAYLAND_DISPLAY is set): use display.driver = "console" '
                           "to see the screen in this terminal")
    try:
        from luma.emulator import device as emu
    except ImportError:
        raise DisplayError('display.driver = "pygame" needs luma.emulator and pygame: '
                           "pip install 'pingjia[sim]' (or use the console, capture or gifanim "
                           "display)") from None
    try:
        device = emu.pygame(transform="identity", scale=4, **common)
        device._pygame.display.set_caption("Pingjia 评价器")
        return device
    except Exception as exc:  # pygame.error and friends
        raise DisplayError(f"cannot open the pygame window ({exc}): use "
                           'display.driver = "console" instead') from exc


def _explain(settings, exc) -> str:
    text = str(exc)
    if settings.interface == "i2c":
        bus, addr = settings.i2c_port, settings.i2c_address
        dev = f"/dev/i2c-{bus}"
        if isinstance(exc, luma.core.error.DevicePermissionError) or isinstance(exc, PermissionError):
            return (f"permission denied on I2C bus {bus} ({dev}): add the service user to "
                    "the 'i2c' group (sudo usermod -aG i2c USER) and restart the service")
        if "address" in text or isinstance(exc, OSError):
            return (f"no display answers at address 0x{addr:02X} on I2C bus {bus}: check "
                    "power and wiring (SDA GPIO2, SCL GPIO3) and the address with "
                    f"'i2cdetect -y {bus}', then set display.i2c_address")
        if isinstance(exc, luma.core.error.DeviceNotFoundError):
            return (f"I2C bus {bus} not found ({dev}): enable I2C with 'sudo raspi-config' "
                    "(Interface Options > I2C) or 'dtparam=i2c_arm=on' in "
                    "/boot/firmware/config.txt (add ',i2c_arm_baudrate=400000' for a "
                    "faster screen), reboot, and check display.i2c_port")
    else:
        dev = f"/dev/spidev{settings.spi_port}.{settings.spi_device}"
        if isinstance(exc, ImportError):
            if "spidev" in text:
                return "SPI display needs the spidev library: install python3-spidev"
            return ("SPI display drives its DC/RST lines with RPi.GPIO, which is missing: "
                    "install python3-rpi-lgpio (or python3-rpi.gpio before bookworm)")
        if isinstance(exc, PermissionError) or "permission" in text.lower():
            return (f"permission denied on {dev} or the DC/RST GPIOs: add the service user "
                    "to the 'spi' and 'gpio' groups and restart the service")
        if isinstance(exc, (luma.core.error.UnsupportedPlatform, RuntimeError)):
            return (f"GPIO for the display's DC/RST lines (GPIO{settings.gpio_dc}/"
                    f"GPIO{settings.gpio_reset}) is not available: not a Raspberry Pi, "
                    "or install python3-rpi-lgpio")
        if isinstance(exc, luma.core.error.DeviceNotFoundError):
            return (f"SPI device {dev} not found: enable SPI with 'sudo raspi-config' "
                    "(Interface Options > SPI) or 'dtparam=spi=on' in "
                    "/boot/firmware/config.txt, reboot, and check display.spi_port/spi_device")
    if isinstance(exc, luma.core.error.DeviceDisplayModeError):
        return (f"{settings.driver} does not support {settings.width}x{settings.height}: "
                "check display.driver, width and height")
    return f"display {settings.driver} over {settings.interface} failed: {text}"
