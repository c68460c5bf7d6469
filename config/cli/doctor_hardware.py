"""`pingjia doctor`'s checks of the hardware and of the service user's access to it: the
user and its groups, the device nodes (GPIO, I2C or SPI bus, the reader), the kernel
modules behind them, buttons on the SPI pins, the I2C speed and where the reader's udev
name points.

`HardwareChecks` also holds what every check shares (the root the paths are taken
under, and the list of results); doctor.py's `Doctor` adds the other checks and the
command. `self.settings` is set by the settings check, which runs first.
"""
from __future__ import annotations

import glob
import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from config import settings as config_settings

SERVICE_USER = "pingjia"
HW_GROUPS = ("gpio", "i2c", "spi", "dialout")
I2C_FAST = 400_000
SIMULATED_PINS = ("mock",)
REINSTALL = "sudo scripts/install.sh   (from the Pingjia source tree; it changes only what is missing)"


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str = ""


class HardwareChecks:
    def __init__(self, root: str = "/"):
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")
        self.settings = None
        self.checks: list[Check] = []

    def under(self, path: str | Path) -> Path:
        """A device path inside the root."""
        path = Path(path)
        return self.root / path.relative_to("/") if path.is_absolute() else path

    def add(self, name, status, detail, fix="") -> None:
        self.checks.append(Check(name, status, detail, fix))

    # --- user, groups, device nodes ----------------------------------------------

    def _passwd(self) -> dict:
        if self.live:
            try:
                return {SERVICE_USER: pwd.getpwnam(SERVICE_USER)[3]}
            except KeyError:
                return {}
        users = {}
        for fields in _colon_file(self.under("/etc/passwd")):
            if len(fields) >= 4 and fields[3].isdigit():
                users[fields[0]] = int(fields[3])
        return users

    def _groups(self) -> dict[str, tuple[int, set]]:
        """group name -> (gid, member names)."""
        if self.live:
            return {g.gr_name: (g.gr_gid, set(g.gr_mem)) for g in grp.getgrall()}
        groups = {}
        for fields in _colon_file(self.under("/etc/group")):
            if len(fields) >= 4 and fields[2].isdigit():
                groups[fields[0]] = (int(fields[2]), {m for m in fields[3].split(",") if m})
        return groups

    def check_user(self) -> None:
        if SERVICE_USER in self._passwd():
            self.add("user", "ok", f"system user {SERVICE_USER} exists")
        else:
            self.add("user", "fail", f"no user {SERVICE_USER}: the services run as it",
                     f"sudo useradd --system --user-group --home-dir /var/lib/pingjia "
                     f"--no-create-home --shell /usr/sbin/nologin {SERVICE_USER}")

    def check_groups(self) -> None:
        groups = self._groups()
        primary = self._passwd().get(SERVICE_USER)
        missing = [g for g in HW_GROUPS if g not in groups]
        if missing:
            self.add("groups", "fail", f"group(s) {', '.join(missing)} do not exist: the "
                     "terminal service cannot start (SupplementaryGroups=)",
                     " && ".join(f"sudo groupadd --system {g}" for g in missing))
            return
        outside = [g for g in HW_GROUPS
                   if SERVICE_USER not in groups[g][1] and groups[g][0] != primary]
        if outside:
            # the services get the groups from their unit (SupplementaryGroups=) anyway;
            # a technician's `sudo -u pingjia pingjia test ...` does not
            self.add("groups", "warn", f"user {SERVICE_USER} is not in {', '.join(outside)}: "
                     f"tools run as {SERVICE_USER} cannot open that hardware",
                     f"sudo usermod -aG {','.join(outside)} {SERVICE_USER}")
        else:
            self.add("groups", "ok", f"{SERVICE_USER} is in {', '.join(HW_GROUPS)}")

    def _node(self, name, path: Path, group: str, fix_missing: str) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            self.add(name, "fail", f"{path} does not exist", fix_missing)
            return
        except OSError as exc:
            self.add(name, "fail", f"{path}: {exc.strerror or exc}", fix_missing)
            return
        gid = self._groups().get(group, (None,))[0]
        mode = stat.S_IMODE(st.st_mode)
        if (st.st_gid == gid and mode & 0o060 == 0o060) or mode & 0o006 == 0o006:
            self.add(name, "ok", f"{path} (group {group}, mode {mode:04o})")
        else:
            self.add(name, "fail", f"{path} is not read-write for group {group} "
                     f"(gid {st.st_gid}, mode {mode:04o})",
                     f"sudo chgrp {group} {path} && sudo chmod g+rw {path}   (lasting: a udev "
                     "rule; Raspberry Pi OS ships one)")

    def check_gpio(self) -> None:
        if self.settings.buttons.pin_factory in SIMULATED_PINS:
            self.add("gpio", "skip", "buttons.pin_factory is mock (simulated buttons)")
            return
        chips = sorted(glob.glob(str(self.under("/dev/gpiochip*"))))
        if not chips:
            self.add("gpio", "fail", f"no GPIO chip ({self.under('/dev')}/gpiochip*): the buttons "
                     "and LEDs cannot work", "check that this is a Raspberry Pi running a current "
                     "Raspberry Pi OS kernel (ls -l /dev/gpiochip*)")
            return
        self._node("gpio", Path(chips[0]), "gpio", "")

    def _hardware_display(self) -> bool:
        return self.settings.display.driver in config_settings.HARDWARE_DISPLAYS

    def check_display_bus(self) -> None:
        d = self.settings.display
        if not self._hardware_display():
            self.add("display bus", "skip", f"display.driver is {d.driver} (simulated)")
        elif d.interface == "i2c":
            self._node("display bus", self.under(f"/dev/i2c-{d.i2c_port}"), "i2c",
                       "sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in "
                       "/boot/firmware/config.txt), then sudo reboot")
        else:
            self._node("display bus", self.under(f"/dev/spidev{d.spi_port}.{d.spi_device}"), "spi",
                       "sudo raspi-config nonint do_spi 0 (or dtparam=spi=on in "
                       "/boot/firmware/config.txt), then sudo reboot")

    def _boot_config(self) -> Optional[Path]:
        for p in ("/boot/firmware/config.txt", "/boot/config.txt"):
            if self.under(p).is_file():
                return self.under(p)
        return None

    def _dtparams(self) -> dict:
        config = self._boot_config()
        return _dtparams(config.read_text(errors="replace")) if config is not None else {}

    def _modules_needed(self) -> list[tuple[str, str]]:
        """(kernel module, what needs it) for the hardware in the settings."""
        need = []
        d = self.settings.display
        if self._hardware_display():
            need.append(("i2c_dev", "the I2C display") if d.interface == "i2c"
                        else ("spidev", "the SPI display"))
        r = self.settings.reader
        if self.settings.device.mode == "kiosk" and r.driver == "serial":
            target = os.path.realpath(self.under(r.port))
            if "ttyACM" in target:
                need.append(("cdc_acm", "the card reader (USB ACM)"))
            elif "ttyUSB" in target or "pingjia-reader" in r.port:
                need.append(("usbserial", "the card reader (USB serial)"))
        return need

    def check_modules(self) -> None:
        need = self._modules_needed()
        if not need:
            self.add("modules", "skip", "no hardware in these settings needs a kernel module")
            return
        missing = [(m, why) for m, why in need if not self.under(f"/sys/module/{m}").exists()]
        if missing:
            names = " ".join(m for m, _ in missing)
            self.add("modules", "warn", "not loaded: " + ", ".join(f"{m} ({why})" for m, why in missing)
                     + ": systemd drops the matching DeviceAllow= group when the terminal starts "
                     "without it", f"sudo modprobe -a {names} && sudo systemctl restart "
                     "pingjia-terminal   (the unit loads them itself through modprobe@...service; "
                     f"if they stay missing: {REINSTALL})")
        else:
            self.add("modules", "ok", "loaded: " + ", ".join(m for m, _ in need))

    def _spi_on(self) -> tuple[bool, str]:
        """Whether SPI0 claims GPIO 7-11 on this board: the kernel says so when it made
        /dev/spidev0.*; otherwise config.txt (the installer switches SPI on)."""
        nodes = sorted(glob.glob(str(self.under("/dev/spidev0.*"))))
        if nodes:
            return True, nodes[0]
        config = self._boot_config()
        if config is not None and self._dtparams().get("spi") == "on":
            return True, f"dtparam=spi=on in {config}"
        return False, ""

    def check_spi_pins(self) -> None:
        on, why = self._spi_on()
        if not on:
            self.add("spi pins", "skip", "SPI is off: GPIO 7-11 are free")
            return
        spi = set(config_settings.BUS_PINS["spi"])
        s = self.settings
        uses = [(f"buttons.pins.{lvl}", pin) for lvl, pin in sorted(s.buttons.pins.items())]
        uses += [(f"buttons.leds.{lvl}", pin) for lvl, pin in sorted(s.buttons.leds.items())]
        if s.sound.driver == "buzzer":
            uses.append(("sound.pin", s.sound.pin))
        clash = [f"{key} = {pin}" for key, pin in uses if pin in spi]
        if clash:
            fix = ("wire the part to a free GPIO and set it (pingjia config set KEY PIN)")
            if not (self._hardware_display() and s.display.interface == "spi"):
                fix += (", or, with no SPI device at all, switch SPI off: dtparam=spi=off in "
                        "config.txt (the installer switches it on), then sudo reboot")
            self.add("spi pins", "fail", f"SPI is on ({why}) and owns GPIO 7-11, but "
                     f"{', '.join(clash)}: the terminal would fail with 'GPIO busy'", fix)
        else:
            self.add("spi pins", "ok", f"SPI is on ({why}); no button, LED or buzzer on GPIO 7-11")

    def check_i2c_speed(self) -> None:
        if not (self._hardware_display() and self.settings.display.interface == "i2c"):
            self.add("i2c speed", "skip", "the display is not on I2C")
            return
        fix = ("add dtparam=i2c_arm_baudrate=400000 to /boot/firmware/config.txt "
               "(the installer does), then sudo reboot")
        port = self.settings.display.i2c_port
        # what the kernel runs the bus at: the device tree's clock-frequency (big-endian u32)
        node = self.under(f"/sys/bus/i2c/devices/i2c-{port}/of_node/clock-frequency")
        speed, where = None, ""
        try:
            raw = node.read_bytes()
            if len(raw) == 4:
                speed, where = int.from_bytes(raw, "big"), str(node)
        except OSError:
            pass
        if speed is None:
            config = self._boot_config()
            if config is not None:
                speed = int(self._dtparams().get("i2c_arm_baudrate", "100000"))
                where = f"{config}; the kernel's value is in {node}"
        if speed is None:
            self.add("i2c speed", "warn", f"cannot tell the I2C speed (no {node}, no config.txt)",
                     fix)
        elif speed < I2C_FAST:
            self.add("i2c speed", "warn", f"I2C runs at {speed // 1000} kHz ({where}): about "
                     f"{max(1, 40 * speed // I2C_FAST)} frames a second instead of 40", fix)
        else:
            self.add("i2c speed", "ok", f"{speed // 1000} kHz ({where})")

    def check_reader(self) -> None:
        r = self.settings.reader
        if self.settings.device.mode != "kiosk" or r.driver != "serial":
            self.add("reader", "skip", "no serial ID-card reader in these settings "
                     f"(mode {self.settings.device.mode}, reader.driver {r.driver})")
            return
        self._node("reader", self.under(r.port), "dialout",
                   "plug the reader in; if it is there (ls /dev/serial/by-id/), adapt the udev "
                   "rule /etc/udev/rules.d/99-pingjia-reader.rules to its USB id (udevadm info "
                   "-a -n /dev/ttyUSB0) or set reader.port to its /dev/serial/by-id/ name")
        if self.checks[-1].status == "ok" and self.under(r.port).is_symlink():
            self._reader_link(self.under(r.port))

    def _usb_id(self, tty: str) -> Optional[tuple[str, str, str]]:
        """(idVendor, idProduct, serial) of the USB device behind /dev/TTY, from sysfs."""
        device = self.under(f"/sys/class/tty/{tty}/device")
        if not device.exists():
            return None
        here = Path(os.path.realpath(device))
        for _ in range(6):
            if (here / "idVendor").is_file():
                read = lambda name: ((here / name).read_text().strip()
                                     if (here / name).is_file() else "")
                return read("idVendor"), read("idProduct"), read("serial")
            here = here.parent
        return None

    def _reader_link(self, link: Path) -> None:
        """Where the udev name points, and whether another adapter could take it."""
        check = self.checks[-1]
        tty = os.path.basename(os.path.realpath(link))
        usb = self._usb_id(tty)
        if not tty.startswith(("ttyUSB", "ttyACM")) or usb is None:
            check.status, check.fix = "warn", ("check which device the name points at (ls -l "
                                               f"{link}; udevadm info -a -n {link})")
            check.detail += f"; it points at {tty}, which is no USB serial adapter"
            return
        vendor, product, serial = usb
        check.detail += f"; it points at {tty} ({vendor}:{product}{', serial ' + serial if serial else ''})"
        same = [t for t in sorted(os.listdir(self.under("/sys/class/tty")))
                if t.startswith(("ttyUSB", "ttyACM")) and t != tty
                and (self._usb_id(t) or ())[:2] == (vendor, product)]
        local = self.under("/etc/udev/rules.d/98-pingjia-reader-local.rules")
        if same and not local.exists():
            check.status = "warn"
            check.detail += (f"; {', '.join(same)} has the same chip and may take the name "
                             "after the next plug-in")
            check.fix = (f"name the reader by its serial number in {local} (docs/install.md, "
                         "section 4), then sudo udevadm control --reload-rules && sudo udevadm "
                         "trigger --subsystem-match=tty")


def _colon_file(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _dtparams(text: str) -> dict[str, str]:
    """The dtparam= values config.txt sets for every board (global or [all]; the last
    one wins). i2c_arm_baudrate defaults to 100 kHz when absent."""
    params: dict[str, str] = {}
    scope = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            scope = line.strip("[]").strip().lower()
            continue
        if scope not in ("", "all") or not line.startswith("dtparam="):
            continue
        for param in line[len("dtparam="):].split(","):
            key, _, value = param.partition("=")
            value = value.strip()
            if key.strip() == "i2c_arm_baudrate" and not value.isdigit():
                continue
            params[key.strip()] = value or "on"
    return params
