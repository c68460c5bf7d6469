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
    assert out.strip() == "['agent.receiver.cli']"
