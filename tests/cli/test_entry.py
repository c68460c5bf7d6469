"""The `pingjia` entry point itself: quiet when its reader goes away, light to start."""
import subprocess
import sys

from tests.cli.conftest import ROOT


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`pingjia config show | head -1`: the pipe closes before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "config.cli", "--config",
                             str(ROOT / "config" / "pingjia.toml"), "config", "show"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # long before the interpreter has started: every write meets EPIPE
    err = proc.stderr.read()
    proc.wait(timeout=30)
    assert proc.returncode == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_building_the_command_line_does_not_load_the_receiver():
    """Every command's module is imported for --help; the receiver's server, database and
    schema checker load only when a receiver command runs."""
    code = ("import sys, config.cli; config.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith('agent.receiver.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_port_in_use_is_one_line_not_a_traceback(device):
    """Any command that meets an OSError it does not name itself (here `pingjia terminal`
    on a taken port) answers in one line with what to do."""
    import socket

    device.secret_file.write_bytes(b"0123456789abcdef0123456789abcdef")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", device.port))
        taken.listen()
        r = device.run("terminal", timeout=60)
    # the one settings check meets it first: a settings error (exit 2) naming the key
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("pingjia terminal: ") and "api.port" in r.stderr
    assert f"port {device.port} on 127.0.0.1 is in use" in r.stderr


def test_config_after_the_command_name_for_the_service_and_doctor(device, tmp_path):
    """docs/cli.md: `--config FILE` before or after the command name, for every command."""
    r = device.run("doctor", "--root", tmp_path, "--json")
    assert "unrecognized arguments" not in r.stderr and r.returncode in (0, 1), r.stderr
