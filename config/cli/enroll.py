"""`pingjia enroll CODE --server URL`: register the device with the central system.

Sends `POST /v1/enroll` with the enrolment code and a description of the hardware (no
device signature: the device has no secret yet). The answer's secret is written to
`device.secret_file` readable by its owner only, atomically, and is never printed or
logged; `device.id`, `device.hash_alg` and `central.url` are set in the settings file
(comments and layout kept) when they differ.

Exit codes: 0 enrolled; 1 the server refused or could not be reached (nothing written);
2 usage or settings error, or the device is already enrolled (use --force).
"""
from __future__ import annotations

import argparse
import platform
import re
import socket
import sys
from pathlib import Path

from config import changes
from config import edit
from config.cli import local
from config import settings as schema
from terminal.secret import write_secret
from terminal.store import DB_NAME, Reader

_DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECRET = re.compile(r"[0-9a-fA-F]{32,256}")


def add_command(subparsers) -> None:
    p = subparsers.add_parser("enroll", help="register the device with the central system",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("code", metavar="CODE", help="the enrolment code from the central system")
    p.add_argument("--server", required=True, metavar="URL",
                   help="the central system's base URL, e.g. https://hcp.example.gov.cn")
    p.add_argument("--force", action="store_true",
                   help="enrol again although a secret exists (the old one is replaced)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait (default 15)")
    local.add_settings_option(p)
    local.add_json_option(p)
    p.set_defaults(func=run)


def hardware() -> dict:
    """What the central system may want to know about the device (no secrets)."""
    out = {"hostname": socket.gethostname(), "machine": platform.machine(),
           "system": f"{platform.system()} {platform.release()}"}
    try:
        from importlib.metadata import version
        out["software"] = f"pingjia {version('pingjia')}"
    except Exception:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Serial", "Model") and value.strip():
                out[key.strip().lower()] = value.strip()
    except OSError:
        pass
    return out


def run(args) -> int:
    import requests

    path = local.settings_path(args)
    text, existed = edit.read_text(path)
    settings = edit.check(text, str(path)) if existed else schema.defaults()
    server = args.server.rstrip("/")
    if not re.match(r"https?://[^/\s]+", server):
        return local.fail(f"--server {args.server!r}: give the base URL, e.g. https://hcp.example.gov.cn", 2)
    secret_file = Path(settings.device.secret_file)
    if secret_file.exists() and not args.force:
        return local.fail(f"this device is enrolled already (a secret is at {secret_file}); "
                          "`--force` enrols it again and replaces the secret", 2)
    try:
        r = requests.post(server + "/v1/enroll", timeout=args.timeout,
                          json={"enrollment_code": args.code, "hardware": hardware()})
    except requests.RequestException as exc:
        return local.fail(f"cannot reach {server}: {type(exc).__name__}: {exc}")
    try:
        answer = r.json()
    except ValueError:
        answer = None
    if r.status_code != 200:
        why = answer.get("message") if isinstance(answer, dict) else r.reason
        code = answer.get("error") if isinstance(answer, dict) else "http_error"
        return local.fail(f"{server} refused the enrolment: {why} ({r.status_code} {code}); "
                          "nothing was written")
    problem = _answer_problem(answer)
    if problem:
        return local.fail(f"{server} gave an answer this device cannot use: {problem}; "
                          "nothing was written")
    wanted = {"device.id": answer["device_id"], "device.hash_alg": answer["hash_alg"],
              "central.url": server}
    current = {"device.id": settings.device.id, "device.hash_alg": settings.device.hash_alg,
               "central.url": settings.central.url}
    values = {k: v for k, v in wanted.items() if current[k] != v or not existed}
    new_text = text
    for key, value in values.items():
        new_text = edit.set_value(new_text, edit.parse_key(key), value, str(path))
    edit.check(new_text, str(path))  # before the secret: a settings problem writes nothing
    try:
        write_secret(secret_file, answer["secret"].encode("ascii"))
    except OSError as exc:
        return local.fail(f"cannot write the secret to {secret_file}: {exc}; enrol again with "
                          "a new code once that is fixed")
    outcome = edit.write(path, text, new_text, existed)
    restart = sorted({changes.UNITS[s] for s in (changes.TERMINAL, changes.AGENT)})
    data = {"device_id": answer["device_id"], "hash_alg": answer["hash_alg"], "server": server,
            "secret_file": str(secret_file), "settings": outcome.as_dict(), "restart": restart}
    lines = [f"enrolled as {answer['device_id']} ({answer['hash_alg']}) at {server}",
             f"secret stored in {secret_file} (owner only)",
             f"{path}: " + (", ".join(outcome.changed) + " set" if outcome.changed else "no change"),
             "restart the services to use it: systemctl restart " + " ".join(restart)]
    warning = _old_store_warning(settings, answer["device_id"])
    if warning:
        data["warning"] = warning
        print(f"pingjia: warning: {warning}", file=sys.stderr)
    local.emit(args, data, "\n".join(lines))
    return 0


def _answer_problem(answer) -> str:
    if not isinstance(answer, dict):
        return "not a JSON object"
    if not isinstance(answer.get("device_id"), str) or not _DEVICE_ID.fullmatch(answer["device_id"]):
        return "no usable device_id"
    if not isinstance(answer.get("secret"), str) or not _SECRET.fullmatch(answer["secret"]):
        return "no usable secret (hex, at least 32 characters)"
    if answer.get("hash_alg") not in ("sha256", "sm3"):
        return f"unknown hash_alg {answer.get('hash_alg')!r}"
    return ""


def _old_store_warning(settings, device_id: str) -> str:
    """A store of another device id stays unusable under the new one: say so."""
    db = Path(settings.device.data_dir) / DB_NAME
    if not db.exists():
        return ""
    try:
        with Reader(db) as reader:
            meta = dict(reader.db.execute("SELECT key, value FROM meta").fetchall())
            pending = reader.pending_count()
    except Exception:
        return ""
    old = meta.get("device_id")
    if old and old != device_id:
        return (f"{db} holds the records of device {old} ({pending} unsent): export them "
                f"(`pingjia outbox export`) and move the file aside before the terminal starts "
                f"as {device_id}")
    return ""

