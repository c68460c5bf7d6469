"""The screen: any luma device behind one small `Display` wrapper.

Hardware: ssd1306, sh1106, ssd1309 (mono), ssd1322, ssd1325 (greyscale) over
I2C or SPI. Simulated: `dummy` (luma.core, keeps the last image), `capture` (PNG per
frame) and `gifanim` (one GIF at close) into `output_dir` (drivers/framefiles.py),
`pygame` (a window; needs the `sim` extra), and
`console` (half-block art in the terminal, see drivers/console.py).

The Pi's I2C bus runs at 100 kHz by default: about 10 full 128x64 frames a second. Set
`dtparam=i2c_arm=on,i2c_arm_baudrate=400000` in /boot/firmware/config.txt for about 40.
Either way, redraw on change: `Display.show` skips a frame equal to the last one.

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

from PIL import Image

import luma.core.error
from config.settings import HARDWARE_DISPLAYS as HARDWARE  # spi_speed_hz is checked there too
from drivers.pins import HardwareError

log = logging.getLogger(__name__)

__all__ = ["Display", "DisplayError", "open_display", "HARDWARE", "SIMULATED"]

SIMULATED = ("dummy", "capture", "gifanim", "pygame", "console")
GREYSCALE = ("ssd1322", "ssd1325")


class DisplayError(HardwareError):
    """The display cannot be opened; the message says what to fix."""


class Display:
    """Shows PIL images on a luma device, skipping repeats and counting frames.

    `mode` is what screens should draw: "1" for a mono panel, "L" for a greyscale or
    colour one; `size` is (width, height) after rotation. `show` converts to the
    device's own mode.
    """

    def __init__(self, device, name: str | None = None, keep_frame_on_exit: bool = True):
        self.device = device
        self.name = name or type(device).__name__
        self.keep_frame_on_exit = keep_frame_on_exit
        self.size: tuple[int, int] = tuple(device.size)
        self.mode = "1" if device.mode == "1" else "L"
        self.frames = 0        # frames sent to the device
        self.skipped = 0       # frames equal to the previous one, not sent
        self.errors = 0
        self.last_error: str | None = None
        self._last: bytes | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

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
        try:
            self.device.display(frame)
        except (OSError, luma.core.error.Error) as exc:
            self._last = None  # resend the next frame in full
            self.errors += 1
            if self.last_error is None:
                log.error("display %s: %s", self.name, exc)
            self.last_error = str(exc)
            return False
        self._last = data
        self.frames += 1
        return True

    def _convert(self, image: Image.Image) -> Image.Image:
        target = self.device.mode
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
                "frames": self.frames, "skipped": self.skipped, "errors": self.errors,
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
        # persist=False makes luma's cleanup clear the panel and switch it off.
        # (The emulators' cleanup does nothing either way: they have no power state.)
        self.device.persist = self.keep_frame_on_exit
        try:
            self.device.cleanup()
        except (OSError, luma.core.error.Error) as exc:
            log.error("display %s: cleanup failed: %s", self.name, exc)
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


def open_display(settings, stream=None) -> Display:
    """Open the device named by `settings.driver` (a `DisplaySettings`).

    `stream` is where the console device draws (default sys.stdout).
    """
    driver = settings.driver
    if driver in HARDWARE:
        device = _open_hardware(settings)
    elif driver in SIMULATED:
        device = _open_simulated(settings, stream)
    else:
        raise ValueError(f"unknown display driver {driver!r}")
    try:
        device.contrast(settings.contrast)
    except (OSError, luma.core.error.Error) as exc:
        raise DisplayError(_explain(settings, exc)) from exc
    return Display(device, driver, settings.keep_frame_on_exit)


def _open_hardware(settings):
    import luma.oled.device as oled
    from luma.core.interface.serial import i2c, spi

    try:
        if settings.interface == "i2c":
            serial = i2c(port=settings.i2c_port, address=settings.i2c_address)
        else:
            serial = spi(port=settings.spi_port, device=settings.spi_device,
                         bus_speed_hz=settings.spi_speed_hz,
                         gpio_DC=settings.gpio_dc, gpio_RST=settings.gpio_reset)
        kwargs = {}
        if settings.driver in GREYSCALE:
            kwargs["mode"] = "RGB"  # greyscale, so antialiased text stays smooth
        return getattr(oled, settings.driver)(serial, width=settings.width,
                                              height=settings.height,
                                              rotate=settings.rotate, **kwargs)
    except DisplayError:
        raise
    except (OSError, ImportError, luma.core.error.Error) as exc:
        raise DisplayError(_explain(settings, exc)) from exc


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
        if isinstance(exc, luma.core.error.UnsupportedPlatform):
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
