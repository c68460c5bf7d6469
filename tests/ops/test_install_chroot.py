"""The install as a technician does it, in a fresh Debian 12 root (`make test-install`).

A Debian 12 root made with debootstrap (cached under /var/cache/pingjia-test, so only
the first run downloads it) gets a `pi` user with sudo and a copy of this source tree.
Then, as `pi`: the README's install, checks of files, owners, modes, groups and units
(`systemd-analyze verify`), the terminal on simulated hardware run by hand as the
service user with `--secret-file -` answering 200 with the installed token, a second
install that changes nothing, and the uninstall. systemd does not run in a chroot:
this is also the image-build path (units enabled offline, nothing started).

Needs root (chroot, mounts), debootstrap and the network (deb.debian.org, PyPI).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.ops.conftest import ROOT
from tests.ops.test_install import steps

pytestmark = pytest.mark.install

CACHE = Path(os.environ.get("PINGJIA_TEST_CACHE", "/var/cache/pingjia-test"))
BASE = CACHE / "bookworm-base"
MIRROR = "http://deb.debian.org/debian"
UNITS = ("pingjia-terminal.service", "pingjia-agent.service")


def sh(*cmd, timeout=900, check=True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result


def base_root() -> Path:
    """A minimal Debian 12 with sudo and systemd (not running), made once."""
    if (BASE / "usr" / "bin" / "sudo").exists():
        return BASE
    assert shutil.which("debootstrap"), "apt-get install debootstrap (scripts/dev.sh does)"
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / "bookworm.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    sh("debootstrap", "--variant=minbase", "--include=sudo,systemd,ca-certificates",
       "bookworm", str(tmp), MIRROR, timeout=1800)
    tmp.rename(BASE)
    return BASE


class Chroot:
    def __init__(self, root: Path):
        self.root = root
        self.mounts: list[Path] = []

    def mount(self):
        for kind, target in (("proc", "proc"), ("sysfs", "sys")):
            sh("mount", "-t", kind, kind, str(self.root / target))
            self.mounts.append(self.root / target)
        sh("mount", "--bind", "/dev", str(self.root / "dev"))
        self.mounts.append(self.root / "dev")
        shutil.copy("/etc/resolv.conf", self.root / "etc" / "resolv.conf")
        with open(self.root / "etc" / "hosts", "a") as hosts:
            hosts.write(f"127.0.1.1 {socket.gethostname()}\n")
        # This machine's certificate authorities (a TLS proxy may sit between it and
        # PyPI): the root's pip trusts what this machine trusts.
        shutil.copy("/etc/ssl/certs/ca-certificates.crt",
                    self.root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        (self.root / "etc" / "pip.conf").write_text(
            "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")

    def unmount(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
        self.mounts.clear()

    def run(self, script: str, user: str = "pi", check=True, timeout=900, **kw):
        """`script` in a login shell of `user` inside the root."""
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8", "HOME": "/root" if user == "root" else f"/home/{user}"}
        return sh("chroot", str(self.root), "runuser", "-u", user, "--", "bash", "-lc", script,
                  env=env, check=check, timeout=timeout, **kw)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def owner(self, p: str) -> tuple[str, str, int]:
        out = self.run(f"stat -c '%U %G %a' {p}", user="root").stdout.split()
        return out[0], out[1], int(out[2], 8)


@pytest.fixture(scope="module")
def chroot():
    if os.geteuid() != 0:
        pytest.fail("make test-install needs root (chroot, mount): run it with sudo")
    base = base_root()
    root = Path(f"/var/tmp/pingjia-install-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    sh("cp", "-a", str(base), str(root))
    c = Chroot(root)
    try:
        c.mount()
        c.run("useradd -m -s /bin/bash pi && echo 'pi ALL=(ALL) NOPASSWD:ALL' "
              "> /etc/sudoers.d/pi && chmod 0440 /etc/sudoers.d/pi", user="root")
        # the source as a clone would have it: tracked files only, owned by pi
        files = sh("git", "-C", str(ROOT), "ls-files", "-z").stdout
        dest = c.path("/home/pi/pingjia")
        dest.mkdir()
        subprocess.run(["tar", "-C", str(ROOT), "--null", "-T", "-", "-cf", "-"],
                       input=files.encode(), stdout=open(root / "src.tar", "wb"), check=True)
        sh("tar", "-C", str(dest), "-xf", str(root / "src.tar"))
        (root / "src.tar").unlink()
        c.run("chown -R pi:pi /home/pi/pingjia", user="root")
        yield c
    finally:
        c.unmount()
        if not any(str(m) for m in c.mounts):
            shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_install_run_reinstall_uninstall(chroot):
    started = time.monotonic()
    # the README's install, as the technician `pi`
    first = chroot.run("cd ~/pingjia && sudo scripts/install.sh", timeout=1800)
    out = first.stdout
    outcome = steps(out)
    assert outcome["Debian packages"] == "changed", out
    assert outcome["virtualenv"] == "changed" and outcome["units enabled"] == "changed", out
    # plain Debian: no python3-lgpio / python3-rpi-lgpio, so the wheels; spidev from Debian
    assert "library lgpio" in out and "PyPI wheel lgpio" in out, out
    assert "PyPI wheel rpi-lgpio" in out and "Debian package python3-spidev" in out, out
    assert "image build" in out  # no running systemd in a chroot
    # central.url is unset: nothing tells the technician to start the agent yet
    starts = [line for line in out.splitlines() if line.startswith(("Then start", "Image build"))]
    assert starts and not any("pingjia-agent" in line for line in starts), out
    assert "until central.url is set" in out

    # files, owners, modes
    assert chroot.owner("/etc/pingjia/pingjia.toml") == ("pingjia", "pingjia-admin", 0o640)
    assert chroot.owner("/etc/pingjia/api-token") == ("pingjia", "pingjia-admin", 0o640)
    assert chroot.owner("/etc/pingjia/secret") == ("root", "root", 0o600)
    assert chroot.owner("/var/lib/pingjia") == ("pingjia", "pingjia", 0o750)
    assert chroot.owner("/etc/systemd/system/pingjia-terminal.service")[2] == 0o644
    assert os.readlink(chroot.path("/usr/local/bin/pingjia")) == "/opt/pingjia/venv/bin/pingjia"
    # nothing root-owned left in the clone (pip built a copy)
    leftovers = chroot.run("find ~/pingjia ! -user pi -print").stdout.split()
    assert leftovers == [], leftovers

    # groups: the service user for the hardware, the technician for the settings
    groups = chroot.run("id -nG pingjia").stdout.split()
    assert {"gpio", "i2c", "spi", "dialout"} <= set(groups)
    assert "pingjia-admin" in chroot.run("id -nG pi").stdout.split()

    # units: enabled offline (the same links as a live `systemctl enable`) and valid
    for unit in UNITS:
        link = chroot.path(f"/etc/systemd/system/multi-user.target.wants/{unit}")
        assert os.readlink(link) == f"/etc/systemd/system/{unit}"
    verify = chroot.run("systemd-analyze verify /etc/systemd/system/pingjia-terminal.service "
                        "/etc/systemd/system/pingjia-agent.service", user="root", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert chroot.path("/etc/udev/rules.d/99-pingjia-reader.rules").exists()

    # the technician reads the settings without sudo (a fresh login has the new group)
    chroot.run("pingjia config validate && pingjia config get api.token_file")

    # the terminal on simulated hardware, run by hand as the service user
    port = free_port()
    chroot.run(f"""set -e
        cp /etc/pingjia/pingjia.toml /etc/pingjia/sim.toml
        for kv in "display.driver dummy" "buttons.pin_factory mock" "api.bind 127.0.0.1" \\
                  "api.port {port}"; do
          pingjia --config /etc/pingjia/sim.toml config set --no-reload $kv >/dev/null
        done
        chown pingjia:pingjia-admin /etc/pingjia/sim.toml""", user="root")
    token = chroot.path("/etc/pingjia/api-token").read_text().strip()
    proc = subprocess.Popen(
        ["chroot", str(chroot.root), "runuser", "-u", "pi", "--", "bash", "-c",
         "sudo cat /etc/pingjia/secret | sudo -u pingjia env PINGJIA_CONFIG=/etc/pingjia/sim.toml "
         "sh -c 'cd /var/lib/pingjia && exec pingjia terminal --secret-file -'"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": "/home/pi"})
    try:
        answer = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=2,
                                      headers={"Authorization": f"Bearer {token}"})
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert answer is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert answer.status_code == 200, answer.text
        wrong = requests.get(f"http://127.0.0.1:{port}/v1/status", timeout=2,
                             headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
    finally:
        # the process group started here: chroot, sudo and the terminal in it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # its database belongs to the service user, so the service can open it later
    db = chroot.run("ls /var/lib/pingjia && stat -c %U /var/lib/pingjia/*.db", user="root").stdout
    assert "root" not in db.split()
    chroot.run("rm -f /etc/pingjia/sim.toml", user="root")

    # again: every step unchanged
    again = chroot.run("cd ~/pingjia && sudo scripts/install.sh", timeout=900).stdout
    outcome = steps(again)
    assert outcome and set(outcome.values()) <= {"unchanged", "skipped"}, again

    # uninstall: units and the program gone, records and settings kept
    gone = chroot.run("cd ~/pingjia && sudo scripts/uninstall.sh").stdout
    for unit in UNITS:
        assert not chroot.path(f"/etc/systemd/system/{unit}").exists(), gone
        assert not chroot.path(f"/etc/systemd/system/multi-user.target.wants/{unit}").is_symlink()
    assert not chroot.path("/opt/pingjia").exists()
    assert not chroot.path("/usr/local/bin/pingjia").is_symlink()
    assert chroot.path("/etc/pingjia/secret").exists() and chroot.path("/var/lib/pingjia").is_dir()

    # without PyPI: a wheelhouse made by a connected machine, then an install from it alone
    made = chroot.run("cd ~/pingjia && scripts/install.sh --download-wheels /tmp/wheels").stdout
    assert "wheel lgpio" in made and "collected" in made, made
    again = chroot.run("cd ~/pingjia && sudo scripts/install.sh --wheelhouse /tmp/wheels").stdout
    assert steps(again)["virtualenv"] == "changed", again
    assert "/tmp/wheels" in again  # the hardware wheels came from there
    # from /tmp: importing lgpio leaves its pipe files in the working directory
    # (RPi.GPIO itself refuses to import on a machine that is not a Pi)
    chroot.run("cd /tmp && pingjia --help >/dev/null && /opt/pingjia/venv/bin/python -c 'import lgpio' "
               "&& /opt/pingjia/venv/bin/python -m pip show -q rpi-lgpio lgpio")
    assert not chroot.run("find ~/pingjia ! -user pi -print").stdout.split()
    print(f"install acceptance: {time.monotonic() - started:.0f} s")
