"""`pingjia doctor [--json] [--root DIR]`: what is wrong with this device, and how to fix it.

Checks the settings, the service user and its hardware groups, the device nodes the
settings need and the kernel modules behind them, buttons on the SPI pins while SPI is
on, the I2C speed (from the device tree), where the reader's udev name points, the CJK
fonts, free space and integrity of the database,
clock synchronisation, the power supply (`vcgencmd get_throttled`), the device secret
and the installed services. Every problem comes with a command that fixes it.

It only looks: nothing is changed, the database is opened read-only (a quick check;
the full check and any salvage run when the terminal starts).

Paths are taken under a root (`--root`, env PINGJIA_ROOT, default `/`), so the same
checks run against an image or a scratch install made by scripts/install.sh. Under a
root other than `/`, user and groups come from its etc/passwd and etc/group files,
fonts from its font directories, and nothing of the running system is asked except
the power supply.

Exit codes: 0 every check ok (or skipped), 1 a problem (fail or warn), 2 doctor could
not run.
"""
from __future__ import annotations

import dataclasses
import glob
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from config.cli import local
from config import settings as config_settings
from config.errors import ConfigError

SERVICE_USER = "pingjia"
HW_GROUPS = ("gpio", "i2c", "spi", "dialout")
UNITS = ("pingjia-terminal.service", "pingjia-agent.service")
I2C_FAST = 400_000
DISK_FAIL = 50 * 2**20
DISK_WARN = 200 * 2**20
# the luma drivers that talk to a real panel (the rest are simulated)
HARDWARE_DISPLAYS = ("ssd1306", "sh1106", "ssd1309", "ssd1322", "ssd1325", "ssd1327", "ssd1331",
                     "ssd1351", "sh1107")
SIMULATED_PINS = ("mock",)
REINSTALL = "sudo scripts/install.sh   (from the Pingjia source tree; it changes only what is missing)"


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str = ""


class Doctor:
    def __init__(self, root: str = "/", config: Optional[str] = None):
        self.root = Path(root)
        self.live = self.root.resolve() == Path("/")
        self.config_path = Path(config) if config else self.under(config_settings.DEFAULT_PATH)
        self.settings = None
        self.checks: list[Check] = []

    def under(self, path: str | Path) -> Path:
        """A device path inside the root."""
        path = Path(path)
        return self.root / path.relative_to("/") if path.is_absolute() else path

    def add(self, name, status, detail, fix="") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def run(self) -> list[Check]:
        for check in (self.check_settings, self.check_browsers, self.check_secret, self.check_user, self.check_groups,
                      self.check_gpio, self.check_display_bus, self.check_modules,
                      self.check_spi_pins, self.check_i2c_speed, self.check_reader, self.check_fonts, self.check_disk, self.check_database,
                      self.check_clock, self.check_power, self.check_services):
            try:
                check()
            except Exception as exc:  # one broken check must not hide the others
                self.add(check.__name__.replace("check_", ""), "fail",
                         f"the check itself failed: {type(exc).__name__}: {exc}",
                         "report this as a bug, with the output of `pingjia doctor --json`")
        return self.checks

    # --- settings and secret --------------------------------------------------------

    def check_settings(self) -> None:
        path = self.config_path
        if not path.exists():
            self.settings = config_settings.defaults()
            self.add("settings", "fail", f"no settings file at {path}; the checks below use "
                     "the defaults", f"{REINSTALL}, or copy config/pingjia.toml to {path}")
            return
        try:
            self.settings = config_settings.load(path)
        except ConfigError as exc:
            self.settings = config_settings.defaults()
            first = str(exc).strip().splitlines()
            self.add("settings", "fail", f"{path} is not valid: " + "; ".join(first[:3]),
                     f"pingjia --config {path} config validate   (then `pingjia config edit` "
                     "or `pingjia config set KEY VALUE`)")
            return
        except OSError as exc:
            self.settings = config_settings.defaults()
            self.add("settings", "fail", f"cannot read {path}: {exc}", f"sudo chmod 0640 {path}")
            return
        s = self.settings
        problems = []
        if s.device.id == config_settings.defaults().device.id:
            problems.append(f"device.id is still the placeholder {s.device.id}")
        token = self._token_problem(s)
        if token:
            problems.append(token)
        if problems:
            self.add("settings", "fail" if token else "warn", "; ".join(problems),
                     f"pingjia --config {path} config set device.id <ID from enrolment>"
                     if not token else f"set api.token_file to a file holding the token: "
                     f"openssl rand -hex 24 | sudo tee {self.under('/etc/pingjia/api-token')}")
            return
        self.add("settings", "ok", f"{path} is valid ({s.device.mode} mode, window "
                 f"{s.site.window_no}, device {s.device.id})")

    def check_browsers(self) -> None:
        """Browser-based business systems: the origins allowed (the schema has refused a
        malformed one already, under "settings") and HTTPS, whose files must load."""
        from config.check import api_tls

        api = self.settings.api
        origins = ", ".join(api.allow_origins) or "none (no browser page may call the API)"
        if not api.tls_cert and not api.tls_key:
            self.add("browsers", "ok", f"local API over HTTP; browser origins allowed: {origins}")
            return
        files = dataclasses.replace(api, tls_cert=str(self.under(api.tls_cert)) if api.tls_cert else "",
                                    tls_key=str(self.under(api.tls_key)) if api.tls_key else "")
        try:
            api_tls(files, str(self.config_path))
        except ConfigError as exc:
            self.add("browsers", "fail", f"HTTPS cannot start: {exc.problems[0].key}: "
                     f"{exc.problems[0].message}", "put the device's certificate (signed by the "
                     "hall CA) and its key where api.tls_cert and api.tls_key say, readable by "
                     f"the service user (docs/install.md, HTTPS)")
            return
        self.add("browsers", "ok", f"local API over HTTPS ({api.tls_cert}); browser origins "
                 f"allowed: {origins}")

    def _token_problem(self, s) -> str:
        if s.api.token.strip():
            return ""
        if not s.api.token_file:
            return "the local API has no token (api.token and api.token_file are empty)"
        path = self.under(s.api.token_file)
        try:
            if not path.read_text(encoding="utf-8").strip():
                return f"the API token file {path} is empty"
        except OSError as exc:
            return f"cannot read the API token file {path}: {exc.strerror or exc}"
        return ""

    def check_secret(self) -> None:
        path = self.under(self.settings.device.secret_file)
        enroll = "pingjia enroll CODE --server URL   (or rerun the installer to generate one)"
        try:
            st = path.stat()
            data = path.read_bytes().strip()
        except FileNotFoundError:
            self.add("secret", "fail", f"no device secret at {path}", enroll)
            return
        except PermissionError:
            self.add("secret", "fail", f"cannot read {path} (run doctor as root: sudo pingjia doctor)",
                     "sudo pingjia doctor")
            return
        mode = stat.S_IMODE(st.st_mode)
        if len(data) < 16:
            self.add("secret", "fail", f"the secret in {path} is too short ({len(data)} bytes)", enroll)
        elif mode != 0o600:
            self.add("secret", "fail", f"{path} has mode {mode:04o}: others can read the key "
                     "that signs every record", f"sudo chmod 0600 {path}")
        elif self.live and st.st_uid != 0:
            self.add("secret", "warn", f"{path} belongs to uid {st.st_uid}, not root "
                     "(systemd hands it to the services as a credential)",
                     f"sudo chown root:root {path}")
        else:
            self.add("secret", "ok", f"{path} is readable and 0600")

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
        return self.settings.display.driver in HARDWARE_DISPLAYS

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

    # --- fonts, disk, database ---------------------------------------------------

    def check_fonts(self) -> None:
        from drivers.fonts import SEARCH_DIRS, FontNotFound, INSTALL_HINT, find_fonts
        extra = [str(self.under(p)) for p in self.settings.display.fonts]
        try:
            if self.live:
                fonts = find_fonts(extra)
            else:
                fonts = find_fonts(extra, search_dirs=[self.under(d) for d in SEARCH_DIRS],
                                   use_fc_list=False)
        except FontNotFound:
            self.add("fonts", "fail", "no font with Chinese glyphs: the screens cannot be drawn",
                     INSTALL_HINT)
            return
        self.add("fonts", "ok", f"{Path(fonts.small_path).name} ({fonts.small_size} px), "
                 f"{Path(fonts.large_path).name} ({fonts.large_size} px)")

    def _data_dir(self) -> Path:
        return self.under(self.settings.device.data_dir)

    def check_disk(self) -> None:
        where = self._data_dir()
        while not where.exists() and where != where.parent:
            where = where.parent
        usage = shutil.disk_usage(where)
        free = f"{usage.free / 2**20:.0f} MiB free on {where}"
        fix = ("free space on that file system (sudo journalctl --vacuum-size=16M; sudo apt clean), "
               "or deliver and export old records: pingjia outbox export --to DIR")
        if usage.free < DISK_FAIL:
            self.add("disk", "fail", free + ": records may soon fail to store", fix)
        elif usage.free < DISK_WARN:
            self.add("disk", "warn", free, fix)
        else:
            self.add("disk", "ok", free)

    def check_database(self) -> None:
        from terminal.salvage import DAMAGED, integrity_problems, last_salvage
        from terminal.store import DB_NAME, StorageError
        path = self._data_dir() / DB_NAME
        aside = sorted(p.name for p in path.parent.glob(DB_NAME + DAMAGED + "*")
                       if not p.name.endswith(("-wal", "-shm", "-journal"))) if path.parent.is_dir() else []
        note = (f"; damaged copies kept for analysis: {', '.join(aside)}" if aside else "")
        if not path.exists():
            self.add("database", "ok", f"no database yet at {path} (made at the first start){note}")
            return
        try:
            problems = integrity_problems(path, quick=True)
        except StorageError as exc:
            self.add("database", "fail", str(exc), "sudo pingjia doctor   (as root), and check "
                     f"the owner of {path.parent}: sudo chown -R pingjia:pingjia {path.parent}")
            return
        if problems:
            self.add("database", "fail", f"{path} is damaged: {'; '.join(problems[:3])}",
                     "sudo systemctl restart pingjia-terminal   (at start it sets the damaged file "
                     "aside, never deleting it, and salvages every readable record)")
            return
        salvage = last_salvage(path)
        if salvage:
            note += (f"; salvaged {salvage.get('at')}: {salvage.get('salvaged')} records kept, "
                     f"{salvage.get('lost')} lost")
        self.add("database", "ok", f"{path} passes the quick integrity check{note}")

    # --- clock, power, services ----------------------------------------------------

    def check_clock(self) -> None:
        fix = ("sudo timedatectl set-ntp true, and let the device reach an NTP server "
               "(ratings made meanwhile keep clock_synced=false; the agent corrects their times)")
        marker = self.under("/run/systemd/timesync/synchronized")
        if self.live:
            synced, how = _timedatectl_synced()
            if synced is None:
                from terminal.clock import kernel_clock_synced
                synced, how = kernel_clock_synced(), "adjtimex"
        else:
            synced, how = marker.exists(), str(marker)
        if synced:
            self.add("clock", "ok", f"synchronised ({how})")
        else:
            self.add("clock", "warn", f"the clock is not synchronised ({how})", fix)

    def check_power(self) -> None:
        vcgencmd = shutil.which("vcgencmd")
        if vcgencmd is None:
            self.add("power", "skip", "vcgencmd not found (not a Raspberry Pi, or no "
                     "raspi-utils): cannot check for undervoltage")
            return
        try:
            out = subprocess.run([vcgencmd, "get_throttled"], capture_output=True, text=True,
                                 timeout=5).stdout
            value = int(re.search(r"throttled=(0x[0-9a-fA-F]+)", out).group(1), 16)
        except (OSError, subprocess.SubprocessError, AttributeError, ValueError):
            self.add("power", "skip", "vcgencmd get_throttled gave no answer")
            return
        fix = ("use a 5.1 V / 3 A supply (the official one) and a short, thick cable; "
               "undervoltage corrupts SD cards")
        if value & 0x1:
            self.add("power", "fail", f"undervoltage now (get_throttled=0x{value:x})", fix)
        elif value & 0x10000:
            self.add("power", "warn", f"undervoltage has occurred since boot "
                     f"(get_throttled=0x{value:x})", fix)
        elif value & 0x4 or value & 0x40000:
            self.add("power", "warn", f"the CPU is or was throttled (get_throttled=0x{value:x}): "
                     "too hot?", "give the board air or a heat sink")
        else:
            self.add("power", "ok", f"no undervoltage (get_throttled=0x{value:x})")

    def check_services(self) -> None:
        unit_dir = self.under("/etc/systemd/system")
        missing = [u for u in UNITS if not (unit_dir / u).is_file()]
        if missing:
            self.add("services", "fail", f"unit(s) not installed: {', '.join(missing)}", REINSTALL)
            return
        disabled = [u for u in UNITS if not (unit_dir / "multi-user.target.wants" / u).exists()
                    and not (unit_dir / "multi-user.target.wants" / u).is_symlink()]
        if disabled:
            self.add("services", "warn", f"not started at boot: {', '.join(disabled)}",
                     f"sudo systemctl enable {' '.join(disabled)}")
            return
        if self.live and shutil.which("systemctl"):
            # without central.url the agent has nowhere to send records and exits (status 2)
            wanted = [u for u in UNITS if u != "pingjia-agent.service" or self.settings.central.url]
            down = [u for u in wanted if subprocess.run(["systemctl", "is-active", "--quiet", u],
                                                        timeout=10).returncode != 0]
            if down:
                self.add("services", "warn", f"not running: {', '.join(down)}",
                         f"sudo systemctl start {' '.join(down)}; journalctl -u {down[0]} -b -n 50 "
                         "says why it stopped")
                return
            self.add("services", "ok", "installed, enabled and running")
            return
        self.add("services", "ok", "installed and enabled")


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


def _timedatectl_synced() -> tuple[Optional[bool], str]:
    if not shutil.which("timedatectl"):
        return None, ""
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None, ""
    value = out.stdout.strip()
    if out.returncode != 0 or value not in ("yes", "no"):
        return None, ""
    return value == "yes", "timedatectl"


# --- the command -------------------------------------------------------------------

MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def add_command(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor", help="check this device (groups, devices, I2C speed, fonts, disk, database, "
                       "clock, power, secret, services) and say how to fix each problem",
        description=__doc__.split("\n\n")[0] + " Exit 0 all ok, 1 problems, 2 cannot run.")
    p.add_argument("--json", action="store_true", help="machine-readable: every check with its "
                   "status (ok, warn, fail, skip), detail and fix")
    p.add_argument("--root", default=os.environ.get("PINGJIA_ROOT") or "/",
                   help="check an installation under this directory (default /; env PINGJIA_ROOT)")
    local.add_settings_option(p)  # --config before or after the command name
    p.set_defaults(func=run_command)


def run_command(args) -> int:
    root = Path(args.root)
    if not root.is_dir():
        print(f"pingjia doctor: --root {root} is not a directory", file=sys.stderr)
        return 2
    doctor = Doctor(str(root), args.config)
    checks = doctor.run()
    problems = [c for c in checks if c.status in ("fail", "warn")]
    if args.json:
        print(json.dumps({"ok": not problems, "root": str(root), "settings": str(doctor.config_path),
                          "checks": [asdict(c) for c in checks]}, ensure_ascii=False, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        print(f"pingjia doctor: {doctor.config_path}" + ("" if doctor.live else f" (root {root})"))
        for c in checks:
            print(f"  {MARK[c.status]}  {c.name:<{width}}  {c.detail}")
            if c.fix and c.status in ("fail", "warn"):
                print(f"  {'':4}  {'':<{width}}  fix: {c.fix}")
        fails = sum(c.status == "fail" for c in checks)
        print(f"{len(problems)} problem(s): {fails} to fix, {len(problems) - fails} to look at"
              if problems else "all checks passed")
    return 1 if problems else 0
