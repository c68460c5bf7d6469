"""scripts/install.sh and scripts/uninstall.sh, run for real into a scratch root.

Only what cannot happen in a test is switched off (apt, useradd, the virtualenv, the
live systemctl): every file, the settings, the secret, the udev rule, the config.txt
edits and the unit links are really made under the scratch root.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from config import settings as config_settings
from tests.ops.conftest import ROOT

INSTALL = ROOT / "scripts" / "install.sh"
UNINSTALL = ROOT / "scripts" / "uninstall.sh"
SKIP = "apt useradd venv systemctl udev"

# Raspberry Pi OS bookworm's /boot/firmware/config.txt, shortened: the optional
# interfaces commented out at the top, board sections further down
PI_CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt
# Some settings may impact device functionality. See link above for details

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
otg_mode=1

[all]

[pi4]
# Run as fast as firmware / board allows
arm_boost=1
"""


def run(script: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PINGJIA_ROOT": str(root), "PINGJIA_SKIP": SKIP}
    result = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def scratch(tmp_path: Path, config_txt: str | None = PI_CONFIG_TXT) -> Path:
    root = tmp_path / "root"
    (root / "boot" / "firmware").mkdir(parents=True)
    if config_txt is not None:
        (root / "boot" / "firmware" / "config.txt").write_text(config_txt, encoding="utf-8")
    return root


def snapshot(root: Path) -> dict:
    """Every path under root: type, mode, mtime and content (or link target)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                what = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                what = "dir"
            else:
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = (stat.filemode(st.st_mode), st.st_mtime_ns, what)
    return out


def steps(output: str) -> dict:
    """The per-step lines: name -> first word of the outcome."""
    found = {}
    for line in output.splitlines():
        m = re.match(r"  (\S.*?)\s{2,}(changed|unchanged|skipped|removed|kept)\b", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def test_install_makes_everything_under_the_root(tmp_path):
    root = scratch(tmp_path)
    out = run(INSTALL, root).stdout
    etc = root / "etc" / "pingjia"

    # settings: the shipped default, valid, with the API token in its own file
    config = etc / "pingjia.toml"
    settings = config_settings.load(config)
    assert settings.api.token_file == "/etc/pingjia/api-token"
    assert settings.device.secret_file == "/etc/pingjia/secret"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    token = (etc / "api-token").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    assert stat.S_IMODE((etc / "api-token").stat().st_mode) == 0o640

    # the device secret: random, owner only, never printed
    secret = etc / "secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    value = secret.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    assert value not in out and token not in out

    # units installed as shipped and enabled the way systemctl enable would
    system = root / "etc" / "systemd" / "system"
    for unit in ("pingjia-terminal.service", "pingjia-agent.service"):
        assert (system / unit).read_bytes() == (ROOT / "systemd" / unit).read_bytes()
        link = system / "multi-user.target.wants" / unit
        assert os.readlink(link) == f"/etc/systemd/system/{unit}"
    assert (root / "var" / "lib" / "pingjia").is_dir()
    assert stat.S_IMODE((root / "var" / "lib" / "pingjia").stat().st_mode) == 0o750

    # I2C (at 400 kHz) and SPI on, in a place that applies to every board
    lines = (root / "boot" / "firmware" / "config.txt").read_text().splitlines()
    assert lines.count("dtparam=i2c_arm=on") == 1 and lines.count("dtparam=spi=on") == 1
    assert lines.count("dtparam=i2c_arm_baudrate=400000") == 1
    # the commented defaults at the top were switched on in place, not duplicated
    assert "#dtparam=i2c_arm=on" not in lines and "#dtparam=spi=on" not in lines
    assert lines.index("dtparam=i2c_arm=on") < lines.index("[cm4]")
    baud = lines.index("dtparam=i2c_arm_baudrate=400000")
    sections = [l for l in lines[:baud] if l.startswith("[")]
    assert sections[-1] == "[all]", "appended under a board section: it would not apply"
    assert "#dtparam=i2s=on" in lines and "arm_boost=1" in lines  # the rest untouched
    assert (root / "etc" / "modules-load.d" / "pingjia.conf").read_text().splitlines()[-1] == "i2c-dev"

    # the reader's udev name: the default reader.port, and /dev/idcard
    rule = (root / "etc" / "udev" / "rules.d" / "99-pingjia-reader.rules").read_text()
    assert config_settings.defaults().reader.port == "/dev/pingjia-reader"
    assert 'SYMLINK+="pingjia-reader"' in rule and 'SYMLINK+="idcard"' in rule
    for vid_pid in ("1a86", "7523"), ("067b", "2303"), ("10c4", "ea60"):
        assert f'ATTRS{{idVendor}}=="{vid_pid[0]}", ATTRS{{idProduct}}=="{vid_pid[1]}"' in rule

    # the advice on sparing the SD card
    assert "Storage=volatile" in out and "overlay" in out
    assert steps(out)["Debian packages"] == "skipped"


def test_a_second_run_changes_nothing(tmp_path):
    root = scratch(tmp_path)
    run(INSTALL, root)
    before = snapshot(root)
    out = run(INSTALL, root).stdout
    assert snapshot(root) == before
    outcomes = steps(out)
    assert outcomes and set(outcomes.values()) <= {"unchanged", "skipped"}, out
    assert outcomes["settings"] == "unchanged" and outcomes["I2C/SPI in config.txt"] == "unchanged"


def test_existing_settings_and_secret_are_never_overwritten(tmp_path):
    root = scratch(tmp_path)
    etc = root / "etc" / "pingjia"
    etc.mkdir(parents=True)
    mine = '[device]\nid = "PJQ-330106-0042"\n[api]\ntoken = "a-token-set-by-the-technician"\n'
    (etc / "pingjia.toml").write_text(mine)
    (etc / "secret").write_text("enrolled-secret-0123456789abcdef\n")
    (etc / "secret").chmod(0o644)  # too open: the installer tightens it, keeps the value
    out = run(INSTALL, root).stdout
    assert (etc / "pingjia.toml").read_text() == mine
    assert (etc / "secret").read_text() == "enrolled-secret-0123456789abcdef\n"
    assert stat.S_IMODE((etc / "secret").stat().st_mode) == 0o600
    # the content is the technician's; only the mode is brought to the shared 0640
    assert stat.S_IMODE((etc / "pingjia.toml").stat().st_mode) == 0o640
    assert "settings" in out and "mode 0640" in out
    assert steps(run(INSTALL, root).stdout)["settings"] == "unchanged"


def test_settings_already_right_in_config_txt_are_left_alone(tmp_path):
    text = "dtparam=i2c_arm=on,i2c_arm_baudrate=100000\ndtparam=spi=on\n[pi4]\narm_boost=1\n"
    root = scratch(tmp_path, text)
    run(INSTALL, root)
    lines = (root / "boot" / "firmware" / "config.txt").read_text().splitlines()
    # the speed corrected in place, nothing added
    assert lines == ["dtparam=i2c_arm=on,i2c_arm_baudrate=400000", "dtparam=spi=on", "[pi4]",
                     "arm_boost=1"]


def test_older_images_keep_config_txt_in_boot(tmp_path):
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "config.txt").write_text("dtparam=audio=on\n")
    run(INSTALL, root)
    lines = (root / "boot" / "config.txt").read_text().splitlines()
    assert lines[0] == "dtparam=audio=on"
    assert {"dtparam=i2c_arm=on", "dtparam=spi=on", "dtparam=i2c_arm_baudrate=400000"} <= set(lines)
    assert "[all]" not in lines  # no section in the file: the end is global already


def test_uninstall_keeps_records_and_settings_and_purge_removes_them(tmp_path):
    root = scratch(tmp_path)
    run(INSTALL, root)
    records = root / "var" / "lib" / "pingjia" / "pingjia.db"
    records.write_bytes(b"records that must survive an uninstall")
    settings = (root / "etc" / "pingjia" / "pingjia.toml").read_bytes()

    out = run(UNINSTALL, root).stdout
    system = root / "etc" / "systemd" / "system"
    assert not (system / "pingjia-terminal.service").exists()
    assert not (system / "multi-user.target.wants" / "pingjia-terminal.service").is_symlink()
    assert not (root / "etc" / "udev" / "rules.d" / "99-pingjia-reader.rules").exists()
    assert not (root / "opt" / "pingjia").exists()
    assert records.read_bytes() == b"records that must survive an uninstall"
    assert (root / "etc" / "pingjia" / "pingjia.toml").read_bytes() == settings
    assert (root / "etc" / "pingjia" / "secret").exists()
    assert "kept" in out

    # again: nothing left to remove, still nothing lost
    again = run(UNINSTALL, root).stdout
    assert "removed" not in again and records.exists()

    # installing again finds the settings and secret in place
    secret = (root / "etc" / "pingjia" / "secret").read_bytes()
    run(INSTALL, root)
    assert (root / "etc" / "pingjia" / "secret").read_bytes() == secret

    run(UNINSTALL, root, "--purge")
    assert not (root / "var" / "lib" / "pingjia").exists()
    assert not (root / "etc" / "pingjia").exists()
    # config.txt keeps I2C/SPI on: other hardware may use them
    assert "dtparam=i2c_arm=on" in (root / "boot" / "firmware" / "config.txt").read_text()


def test_uninstall_refuses_unknown_arguments(tmp_path):
    env = {**os.environ, "PINGJIA_ROOT": str(tmp_path), "PINGJIA_SKIP": SKIP}
    result = subprocess.run(["bash", str(UNINSTALL), "--purg"], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "--purg" in result.stderr


def test_install_refuses_to_touch_the_real_system_without_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: the check is for everyone else")
    env = {k: v for k, v in os.environ.items() if k not in ("PINGJIA_ROOT",)}
    result = subprocess.run(["bash", str(INSTALL)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "run as root" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_pass_shellcheck():
    result = subprocess.run(["shellcheck", str(INSTALL), str(UNINSTALL),
                             str(ROOT / "scripts" / "common.sh")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout
