"""gpiozero pin-factory selection: a real factory or, chosen on purpose, the mock one.

A real factory that cannot load raises `HardwareError` telling the technician what to
fix. It never falls back to simulation: a silently simulated button panel would accept
no ratings on a device that looks healthy.

Only the terminal service may open GPIO: on current Raspberry Pi OS a line has one owner
process and a second one gets "GPIO busy".

lgpio (the default) creates notification pipe files (`.lgd-nfy*`) in the *working
directory* when it is imported, so the service needs a writable working directory
(`WorkingDirectory=/run/pingjia` in the unit, a RuntimeDirectory= systemd empties at
stop).

A line another owner holds fails with "GPIO busy". With SPI switched on (the installer
does, for SPI panels) the kernel's SPI0 driver owns GPIO 7-11 whatever the settings say;
`busy_message` says so, and `pingjia doctor` checks the wiring against it.
"""
from __future__ import annotations

import glob
import importlib
import importlib.util
import os

from gpiozero.pins.mock import MockFactory, MockPWMPin

from config.settings import BUS_PINS

__all__ = ["HardwareError", "FACTORIES", "make_pin_factory", "busy_message"]


class HardwareError(RuntimeError):
    """A piece of hardware cannot be used; the message says what to fix."""


# name -> (module, class, Debian package of the Python library)
FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory", "lgpio", "python3-lgpio"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory", "RPi.GPIO",
                "python3-rpi-lgpio (Raspberry Pi OS bookworm, Pi 5) or python3-rpi.gpio"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory", "pigpio", "python3-pigpio"),
    "native": ("gpiozero.pins.native", "NativeFactory", None, None),
}

_GROUP_HINT = ("add the service user to the 'gpio' group (sudo usermod -aG gpio USER) "
               "and restart the service")
_MOCK_HINT = 'on a development machine set buttons.pin_factory = "mock" on purpose'


def make_pin_factory(name: str):
    """The gpiozero pin factory called `name`; "mock" gives a `MockFactory` with PWM pins."""
    if name == "mock":
        # PWM-capable mock pins, so a PWM LED or a TonalBuzzer also works simulated.
        return MockFactory(pin_class=MockPWMPin)
    if name not in FACTORIES:
        raise ValueError(f"unknown pin factory {name!r}; known: mock, " + ", ".join(FACTORIES))
    module_name, class_name, library, package = FACTORIES[name]
    _precheck(name, library, package)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HardwareError(f"GPIO backend {name!r} cannot load ({exc}): install {package}") from exc
    except OSError as exc:  # lgpio's pipe file in an unwritable working directory
        raise HardwareError(_cwd_message(name, exc)) from exc
    try:
        return getattr(module, class_name)()
    except Exception as exc:  # each library has its own error types
        raise HardwareError(_explain(name, exc)) from exc


def _precheck(name: str, library: str | None, package: str | None) -> None:
    if library and importlib.util.find_spec(library.split(".")[0]) is None:
        raise HardwareError(f"GPIO backend {name!r} needs the Python library {library!r}: "
                            f"install {package} with apt (a virtualenv needs "
                            "--system-site-packages to see it); " + _MOCK_HINT)
    if name == "lgpio":
        if not os.access(os.getcwd(), os.W_OK):
            raise HardwareError(_cwd_message(name, None))
        chips = sorted(glob.glob("/dev/gpiochip*"))
        if not chips:
            raise HardwareError("no /dev/gpiochip* device: this is not a Raspberry Pi or the "
                                "GPIO driver is missing; " + _MOCK_HINT)
        if not any(os.access(c, os.R_OK | os.W_OK) for c in chips):
            raise HardwareError(f"permission denied on {', '.join(chips)}: " + _GROUP_HINT)
    if name in ("rpigpio", "native") and os.path.exists("/dev/gpiomem") \
            and not os.access("/dev/gpiomem", os.R_OK | os.W_OK):
        raise HardwareError("permission denied on /dev/gpiomem: " + _GROUP_HINT)


def _cwd_message(name: str, exc: OSError | None) -> str:
    why = f" ({exc})" if exc else ""
    return (f"GPIO backend {name!r} cannot create its pipe files in the working directory "
            f"{os.getcwd()!r}{why}: run the service from a writable directory "
            "(WorkingDirectory=/run/pingjia in the systemd unit; by hand: cd /var/lib/pingjia)")


def busy_message(key: str, pin: int, exc: Exception) -> str | None:
    """A clear message when claiming `pin` (setting `key`) failed because another owner
    holds the line; None for any other failure."""
    if "busy" not in str(exc).lower():
        return None
    text = f"GPIO {pin} ({key}) is busy: "
    if pin in BUS_PINS["spi"]:
        return text + ("GPIO 7-11 belong to the SPI bus while SPI is on (dtparam=spi=on in "
                       "config.txt, which scripts/install.sh sets). Wire the part to a free GPIO "
                       f"and set {key}, or switch SPI off if no SPI device is used; "
                       "`pingjia doctor` checks this")
    return text + ("another process holds it (only the terminal service may open GPIO: stop "
                   "the service before `pingjia test`), or a kernel driver claimed it")


def _explain(name: str, exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if type(exc).__name__ == "PinUnknownPi" or "raspberry pi" in lowered:
        hint = "this board is not recognised as a Raspberry Pi; " + _MOCK_HINT
    elif "permission" in lowered or "access" in lowered or isinstance(exc, PermissionError):
        hint = _GROUP_HINT
    elif name == "pigpio":
        hint = ("start the pigpio daemon (sudo systemctl enable --now pigpiod); "
                "pigpio does not support the Pi 5, prefer lgpio there")
    elif name == "native":
        hint = "the native backend does not support this board (Pi 5); use lgpio"
    elif name == "lgpio":
        hint = ("check /dev/gpiochip* and that the working directory is writable "
                "(lgpio writes pipe files there); " + _GROUP_HINT)
    else:
        hint = _GROUP_HINT
    return f"GPIO backend {name!r} cannot start: {text}. Fix: {hint}"
