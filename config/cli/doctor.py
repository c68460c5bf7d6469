"""`pingjia doctor [--json] [--root DIR]`: what is wrong with this device, and how to fix it.

Checks the settings, the service user and its hardware groups, the device nodes the
settings need and the kernel modules behind them, buttons on the SPI pins while SPI is
on, the I2C speed (from the device tree), where the reader's udev name points, the CJK
fonts, free space and integrity of the database,
clock synchronisation, the power supply (`vcgencmd get_throttled`), the device secret
and the installed services. Every problem comes with a command that fixes it. The checks
of the service user's access to the hardware are in doctor_hardware.py.

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
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from config import settings as config_settings
from config.check import api_tls
from config.cli import local
from config.cli.doctor_hardware import REINSTALL, Check, HardwareChecks
from config.errors import ConfigError
from terminal.clock import kernel_clock_synced
from terminal.salvage import DAMAGED, integrity_problems, last_salvage
from terminal.store import DB_NAME, StorageError

UNITS = ("pingjia-terminal.service", "pingjia-agent.service")
DISK_FAIL = 50 * 2**20
DISK_WARN = 200 * 2**20


class Doctor(HardwareChecks):
    def __init__(self, root: str = "/", config: Optional[str] = None):
        super().__init__(root)
        self.config_path = Path(config) if config else self.under(config_settings.DEFAULT_PATH)

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
                     "the service user (docs/install.md, HTTPS)")
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

    # --- fonts, disk, database ---------------------------------------------------

    def check_fonts(self) -> None:
        # here: the fonts module loads Pillow, which no other check needs
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
