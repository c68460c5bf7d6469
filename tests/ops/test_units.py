"""The shipped systemd units: parsed and checked setting by setting, then handed to
systemd-analyze (verify, and the offline security review) where it is installed."""
from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from terminal.secret import CREDENTIAL
from tests.ops.conftest import ROOT

UNITS = ROOT / "systemd"
TERMINAL = "pingjia-terminal.service"
AGENT = "pingjia-agent.service"
MAX_EXPOSURE = 3.0


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value in file order (systemd allows a key many times;
    an empty assignment resets the list, as systemd does for list settings)."""
    sections: dict = defaultdict(lambda: defaultdict(list))
    section = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections[section]  # an empty section still exists
            continue
        assert section is not None, f"{path.name}: {line!r} outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        key, value = key.strip(), value.strip()
        if value == "":
            sections[section][key] = []
        else:
            sections[section][key].append(value)
    return sections


def one(unit, section, key) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, found {values}"
    return values[0]


def words(unit, section, key) -> list[str]:
    return [w for v in unit[section].get(key, []) for w in v.split()]


def seconds(text: str) -> float:
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module", params=[TERMINAL, AGENT])
def unit(request):
    return request.param, parse_unit(UNITS / request.param)


@pytest.fixture(scope="module")
def terminal():
    return parse_unit(UNITS / TERMINAL)


@pytest.fixture(scope="module")
def agent():
    return parse_unit(UNITS / AGENT)


def test_both_are_notify_services_with_a_watchdog(unit):
    name, u = unit
    assert one(u, "Service", "Type") == "notify"
    assert one(u, "Service", "NotifyAccess") == "main"
    watchdog = seconds(one(u, "Service", "WatchdogSec"))
    # the code pings at half the period; a period under 10 s would restart a busy Pi
    assert 10 <= watchdog <= 120, watchdog
    assert seconds(one(u, "Service", "TimeoutStopSec")) <= 30


def test_restart_on_failure_within_sane_start_limits(unit):
    name, u = unit
    assert one(u, "Service", "Restart") == "on-failure"
    restart_s = seconds(one(u, "Service", "RestartSec"))
    interval = seconds(one(u, "Unit", "StartLimitIntervalSec"))
    burst = int(one(u, "Unit", "StartLimitBurst"))
    assert 1 <= restart_s <= 30
    assert 2 <= burst <= 10
    # the limit must be reachable: `burst` restarts fit inside the interval
    assert burst * restart_s < interval <= 3600
    # a settings error (exit 2) cannot be fixed by restarting
    assert "2" in words(u, "Service", "RestartPreventExitStatus")


def test_runs_as_the_pingjia_user_with_state_and_a_writable_working_dir(unit):
    name, u = unit
    assert one(u, "Service", "User") == "pingjia"
    assert one(u, "Service", "Group") == "pingjia"
    assert "DynamicUser" not in u["Service"]  # both share one database: a fixed user
    assert one(u, "Service", "StateDirectory") == "pingjia"
    runtime = one(u, "Service", "RuntimeDirectory")
    workdir = one(u, "Service", "WorkingDirectory")
    # lgpio writes its pipe files into the working directory: it must be one the
    # service owns and may write under ProtectSystem=strict
    assert workdir in (f"/run/{runtime}", "/var/lib/pingjia")
    assert one(u, "Service", "UMask") == "0077"
    assert "PINGJIA_CONFIG=/etc/pingjia/pingjia.toml" in words(u, "Service", "Environment")


def test_the_terminal_runs_the_terminal_and_the_agent_the_agent(terminal, agent):
    assert one(terminal, "Service", "ExecStart") in ("/opt/pingjia/venv/bin/pingjia terminal",
                                                     "/opt/pingjia/venv/bin/python -m terminal")
    assert one(agent, "Service", "ExecStart") in ("/opt/pingjia/venv/bin/pingjia agent",
                                                  "/opt/pingjia/venv/bin/python -m agent")
    for u in (terminal, agent):
        assert one(u, "Install", "WantedBy") == "multi-user.target"
    # lgpio's pipes live in a directory that the terminal owns and systemd empties
    assert one(terminal, "Service", "WorkingDirectory") == "/run/pingjia"


def test_hardware_groups_for_the_terminal_only(terminal, agent):
    assert sorted(words(terminal, "Service", "SupplementaryGroups")) == ["audio", "dialout", "gpio", "i2c", "spi"]
    assert words(agent, "Service", "SupplementaryGroups") == []
    allowed = {v.split()[0] for v in terminal["Service"]["DeviceAllow"]}
    assert {"char-gpiochip", "char-i2c", "char-spi", "char-ttyUSB", "char-ttyACM",
            "char-alsa"} <= allowed
    assert one(terminal, "Service", "DevicePolicy") == "closed"
    # the agent opens no hardware at all
    assert one(agent, "Service", "PrivateDevices") == "yes"
    assert "DeviceAllow" not in agent["Service"]


def test_the_secret_comes_as_a_credential(unit):
    name, u = unit
    assert one(u, "Service", "LoadCredential") == f"{CREDENTIAL}:/etc/pingjia/secret"


def test_the_code_reads_the_credential(tmp_path, monkeypatch):
    """What LoadCredential= hands over is what terminal/secret.py reads first."""
    from config import settings as config_settings
    from terminal.secret import load_secret
    settings = config_settings.loads(f'[device]\nsecret_file = "{tmp_path / "absent"}"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / CREDENTIAL).write_bytes(b"a-secret-of-enough-length-0123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_secret(settings) == b"a-secret-of-enough-length-0123"


HARDENING = {
    "NoNewPrivileges": "yes", "CapabilityBoundingSet": None, "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "ProtectClock": "yes", "ProtectHostname": "yes", "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
}


def test_hardening_options(unit):
    name, u = unit
    for key, value in HARDENING.items():
        assert key in u["Service"], f"{name}: {key}= missing"
        if value is None:  # an empty assignment: no capabilities at all
            assert u["Service"][key] == [], f"{name}: {key}= should be empty"
        else:
            assert one(u, "Service", key) == value, f"{name}: {key}"
    assert set(words(u, "Service", "RestrictAddressFamilies")) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    filters = u["Service"]["SystemCallFilter"]
    assert "@system-service" in filters and any(f.startswith("~") for f in filters)


# --- systemd-analyze ----------------------------------------------------------------

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed here")


def scratch_units(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at a binary that exists here: verify checks it
    (on a device it is /opt/pingjia/venv/bin/pingjia, made by scripts/install.sh)."""
    out = tmp_path / "units"
    out.mkdir()
    for name in (TERMINAL, AGENT):
        text = (UNITS / name).read_text(encoding="utf-8")
        (out / name).write_text(re.sub(r"/opt/pingjia/venv/bin/\S+", "/bin/true", text),
                                encoding="utf-8")
    return out


def analyze(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@needs_systemd_analyze
@pytest.mark.parametrize("name", [TERMINAL, AGENT])
def test_systemd_analyze_verify_is_clean(tmp_path, name):
    units = scratch_units(tmp_path)
    result = analyze("verify", "--man=no", f"./{name}", cwd=units)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == ""


@needs_systemd_analyze
@pytest.mark.parametrize("name", [TERMINAL, AGENT])
def test_systemd_analyze_security_exposure_at_most_3(tmp_path, name):
    units = scratch_units(tmp_path)
    result = analyze("security", "--offline=true", "--no-pager", f"./{name}", cwd=units)
    assert result.returncode == 0, result.stderr
    m = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", result.stdout)
    assert m, result.stdout[-500:]
    assert float(m.group(1)) <= MAX_EXPOSURE, result.stdout
    # and systemd's own threshold agrees
    strict = analyze("security", "--offline=true", "--no-pager", f"--threshold={int(MAX_EXPOSURE * 10)}",
                     f"./{name}", cwd=units)
    assert strict.returncode == 0, strict.stdout[-500:]


# --- kernel modules, the out-of-service step, gpiomem ------------------------------------

# The driver module behind each /proc/devices group a unit may allow. systemd resolves
# DeviceAllow=char-GROUP when the unit starts and drops a group that is not registered
# yet, so its module must be loaded before. Built into the Raspberry Pi kernels:
BUILT_IN = {"char-gpiochip", "char-ttyAMA", "char-ttyS"}
MODULE_OF = {"char-i2c": "i2c_dev", "char-spi": "spidev", "char-ttyUSB": "usbserial",
             "char-ttyACM": "cdc_acm", "char-alsa": "snd"}


def test_every_device_group_has_its_module_loaded_before_the_terminal(terminal):
    groups = {v.split()[0] for v in terminal["Service"]["DeviceAllow"] if v.startswith("char-")}
    assert groups - BUILT_IN, "no module-backed group: check the test"
    wants, after = set(words(terminal, "Unit", "Wants")), set(words(terminal, "Unit", "After"))
    for group in groups - BUILT_IN:
        assert group in MODULE_OF, f"{group}: which module registers it?"
        unit = f"modprobe@{MODULE_OF[group]}.service"
        assert unit in wants and unit in after, f"{group} needs {unit} in Wants= and After="


def test_a_crash_leaves_the_out_of_service_frame(terminal):
    """ExecStopPost= draws the frame when the service did not end cleanly, with a
    command that exists and knows --if-failed."""
    from config.cli import build_parser
    post = one(terminal, "Service", "ExecStopPost").split()
    assert post[0] == "/opt/pingjia/venv/bin/pingjia" and "--if-failed" in post
    args = build_parser().parse_args(post[1:])
    assert args.command == "out-of-service" and args.if_failed


def test_classic_rpi_gpio_may_map_gpiomem(terminal):
    allowed = {v.split()[0]: v.split()[1] for v in terminal["Service"]["DeviceAllow"]}
    assert allowed.get("/dev/gpiomem") == "rw"
