"""`pingjia status [--json]`: how the device is doing, for a technician or a script.

Asks the running terminal (GET /v1/status: screen, staff, queue, clock, hardware). When
the terminal does not answer, reads the store directly (queue, oldest unsent record,
rejected count, last upload) and says that the terminal is not running.

Exit codes: 0 the terminal runs and reports no fault; 1 it runs and reports a fault
(storage, display, reader), the store cannot be read, or there is no API token to ask
the terminal with; 2 usage or settings error; 3 the terminal is not running (the store
was read directly).
"""
from __future__ import annotations

import argparse
import sqlite3

from config.cli import local
from config.errors import ConfigError
from terminal.client import ApiError

EXIT_NOT_RUNNING = 3


def add_command(subparsers) -> None:
    p = subparsers.add_parser("status", help="device status: screen, queue, clock, hardware",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    local.add_settings_option(p)
    local.add_store_option(p)
    local.add_json_option(p)
    local.add_terminal_options(p)
    p.set_defaults(func=run)


def version() -> str:
    try:
        from importlib.metadata import version as dist_version
        return dist_version("pingjia")
    except Exception:
        return "0.1.0+src"


def run(args) -> int:
    try:
        settings = local.load_settings(args)
    except ConfigError:
        path = local.settings_path(args)
        if getattr(args, "config", None) is None and not path.exists():
            return local.fail(
                f"no settings file at {path}. On a device, scripts/install.sh puts it there. "
                "For the simulator or a development machine, say where to look: "
                "pingjia status --port PORT --token TOKEN --data-dir DIR (pingjia simulate "
                "prints its port and token when it starts)", 2)
        raise
    try:
        local.client(args, settings)
        asked = True
    except ConfigError:  # no token to ask with (e.g. a token file only the service reads)
        asked = False
    try:
        answer, why = local.ask_terminal(args, settings, lambda c: c.status())
    except ApiError as exc:
        return local.fail(f"the terminal answered with an error: {exc}")
    if answer is not None:
        data = {"running": True, "source": "terminal", "cli_version": version(), **answer}
        data["problems"] = problems(data)
        local.emit(args, data, describe(data))
        return 1 if data["problems"] else 0
    # running: False when nothing answers, None when it could not be asked
    data = {"running": False if asked else None, "source": "store", "reason": why,
            "cli_version": version(),
            "device_id": settings.device.id, "window_no": settings.site.window_no,
            "mode": settings.device.mode}
    path = local.db_path(args, settings)
    data["database"] = str(path)
    try:
        data.update(read_store(path))
    except (sqlite3.Error, OSError, LookupError) as exc:
        data["problems"] = [f"cannot read the store {path}: {exc}"]
        local.emit(args, data, describe(data))
        return 1
    data["problems"] = problems(data)
    if not asked:
        data["problems"].append(why)
    local.emit(args, data, describe(data))
    return EXIT_NOT_RUNNING if asked else 1


def read_store(path) -> dict:
    """What the store says without the terminal: sync view, record count, chain."""
    from terminal.store import Reader, StorageError

    if not path.exists():
        raise LookupError("no database there (the terminal creates it when it first starts)")
    try:
        with Reader(path) as reader:
            out = reader.sync_view()
            out["records"] = reader.count()
            out["last_seq"] = reader.last_seq()
            meta = dict(reader.db.execute("SELECT key, value FROM meta").fetchall())
    except StorageError as exc:
        raise LookupError(str(exc)) from None
    out["chain_id"] = meta.get("chain_id")
    return out


def problems(data: dict) -> list[str]:
    """Faults a technician must act on (a warning such as an unsynchronised clock is not one)."""
    out = []
    if data.get("storage_error"):
        out.append(f"storage: {data['storage_error']}")
    if data.get("schema_restored"):
        out.append("database: restored at start (someone removed them): "
                   + ", ".join(data["schema_restored"]))
    hardware = data.get("hardware") or {}
    display = hardware.get("display") or {}
    if display.get("last_error"):
        out.append(f"display: {display['last_error']} ({display.get('errors')} errors)")
    buttons = hardware.get("buttons") or {}
    if buttons.get("closed"):
        out.append("buttons: released (the terminal is stopping?)")
    sound = hardware.get("sound")
    if isinstance(sound, dict) and sound.get("state") == "failing":
        out.append(f"sound: {sound.get('last_error')} ({sound.get('errors')} errors)")
    for problem in (sound.get("problems") or []) if isinstance(sound, dict) else []:
        out.append(f"sound clip: {problem}")
    reader = hardware.get("reader")
    if reader and reader.get("state") not in ("connected", "connecting"):
        out.append(f"card reader: {reader.get('state')} {reader.get('detail') or ''}".rstrip())
    return out


def describe(d: dict) -> str:
    rows = []
    if d["running"]:
        screen = d.get("state")
        rows.append(("terminal", f"running ({d.get('mode')} mode), screen {screen}"
                                 + (" (paused)" if d.get("paused") else "")))
    elif d["running"] is None:
        rows.append(("terminal", "not asked: no API token (run as the service user or root, "
                                 "or pass --token)"))
        rows.append(("", "the figures below come from the store"))
    else:
        rows.append(("terminal", f"NOT RUNNING: {d.get('reason')}"))
        rows.append(("", "the figures below come from the store"))
    rows.append(("device", f"{d.get('device_id')} window {d.get('window_no')}"))
    versions = f"cli {d.get('cli_version')}"
    if d.get("version"):
        versions = f"terminal {d['version']}, " + versions
    rows.append(("versions", versions))
    if d["running"]:
        staff = d.get("staff")
        rows.append(("staff", f"{staff['name']} ({staff['id']})" if staff else "nobody signed in"))
        visit = d.get("open_visit")
        if visit:
            rows.append(("open visit", f"{visit['visit_id']} since {visit['invited_at']}"))
    if "queue_depth" in d:
        queue = f"{d.get('queue_depth')} unsent"
        if d.get("oldest_unsent_at"):
            queue += f", oldest from {d['oldest_unsent_at']}"
        rows.append(("queue", queue))
        rows.append(("rejected", str(d.get("rejected", "?"))
                     + (" (see `pingjia outbox list --status rejected`)" if d.get("rejected") else "")))
        if d.get("parked"):
            rows.append(("parked", f"{d['parked']} stored row(s) unreadable or not matching their "
                                   "hash, set aside (see `pingjia outbox list --status parked`)"))
        rows.append(("last upload", d.get("last_upload_at") or "never"))
    if "records" in d:
        rows.append(("records", f"{d.get('records')}"
                     + (f" (last seq {d['last_seq']})" if d.get("last_seq") else "")))
    clock = d.get("clock")
    if clock:
        rows.append(("clock", f"{clock.get('time')}, " + ("synchronised" if clock.get("synced")
                                                          else "NOT synchronised (NTP)")))
    hardware = d.get("hardware") or {}
    if "display" in hardware:
        h = hardware["display"]
        rows.append(("display", f"{h.get('driver')} {h.get('size')}, {h.get('frames')} frames, "
                                f"{h.get('errors')} errors"))
    if "buttons" in hardware:
        h = hardware["buttons"]
        rows.append(("buttons", f"{h.get('pin_factory')}, {h.get('events')} presses, down now: "
                                f"{h.get('pressed_now') or 'none'}"))
    if isinstance(hardware.get("sound"), dict):
        h = hardware["sound"]
        rows.append(("sound", f"{h.get('driver')}"
                              + (f" on {h['device']}, {h.get('state')}" if h.get("device") else "")
                              + (f", {h.get('started')} prompts" if "started" in h else "")))
    if "reader" in hardware:
        h = hardware["reader"]
        rows.append(("card reader", f"{h.get('state')} on {h.get('port')}"))
    reserve = d.get("reserve")
    if reserve:
        rows.append(("disk reserve", f"{reserve.get('bytes')} bytes "
                     + ("in place" if reserve.get("in_place") else "IN USE (the disk was full)")))
    for p in d.get("problems") or []:
        rows.append(("PROBLEM", p))
    return "\n".join(f"{k:<12} {v}" for k, v in rows)
