"""`python -m terminal`, the entry pingjia-terminal.service runs: the service's options,
and none of what the service does not use is imported (each such package stays resident
for the life of the process)."""
import subprocess
import sys

from tests.ops.conftest import ROOT

# the `pingjia` CLI; the QR encoder (only with qr.url_template); the settings editor;
# the full validator (only when a request fails a check); the agent's HTTP stack
NOT_IMPORTED = ("config.cli", "segno", "tomlkit", "jsonschema", "requests", "urllib3", "agent")


def test_the_service_imports_only_what_it_uses():
    probe = ("import sys, terminal.serve, terminal.runtime; "
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NOT_IMPORTED!r} "
             f"or m.startswith('config.cli')))")
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_python_m_terminal_takes_the_options_of_pingjia_terminal():
    r = subprocess.run([sys.executable, "-m", "terminal", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m terminal")
    assert "--config FILE" in r.stdout and "--secret-file FILE" in r.stdout


def test_a_settings_error_exits_2_in_one_message(tmp_path):
    config = tmp_path / "pingjia.toml"
    config.write_text("[api]\nport = 8410\n", encoding="utf-8")  # no token
    r = subprocess.run([sys.executable, "-m", "terminal", "--config", str(config)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("pingjia terminal: ") and "api.token" in r.stderr
    assert "Traceback" not in r.stderr
