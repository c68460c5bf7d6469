"""What the technician commands share: the settings, the store and the running terminal.

Port and token of the local API come from the options, else the settings file, else
$PINGJIA_PORT / $PINGJIA_TOKEN; the store from `--data-dir`, else `device.data_dir`.
Options default to SUPPRESS so `pingjia --config F status` and `pingjia status --config F`
both work.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from typing import Optional

from config import settings as schema
from config.errors import ConfigError
from terminal.client import LocalClient, Unreachable, base_url
from terminal.store import DB_NAME


def add_settings_option(parser) -> None:
    parser.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                        help=f"settings file (default {schema.DEFAULT_PATH}, env PINGJIA_CONFIG)")


def add_store_option(parser) -> None:
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, metavar="DIR",
                        help="where the database is (default: device.data_dir of the settings)")


def add_terminal_options(parser) -> None:
    g = parser.add_argument_group("the running terminal")
    g.add_argument("--host", default=argparse.SUPPRESS,
                   help="terminal address (default 127.0.0.1)")
    g.add_argument("--port", type=int, default=argparse.SUPPRESS,
                   help="local API port (default: api.port of the settings)")
    g.add_argument("--token", default=argparse.SUPPRESS,
                   help="local API token (default: api.token or api.token_file, env PINGJIA_TOKEN)")
    g.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                   help="seconds to wait for the terminal's answer (default 5)")
    g.add_argument("--cacert", default=argparse.SUPPRESS, metavar="FILE",
                   help="HTTPS: the hall CA's certificate that signed the terminal's "
                        "(env PINGJIA_CACERT; HTTPS also when the settings set api.tls_cert)")


def add_json_option(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")


def settings_path(args) -> Path:
    return Path(getattr(args, "config", None) or schema.DEFAULT_PATH)


def load_settings(args) -> schema.Settings:
    """The settings file; the built-in defaults only where there is no file at the
    default place and the options say where the terminal or the store is (a development
    machine or `pingjia simulate`: `pingjia status --port 8410 --token pingjia-simulator-demo-token`).
    A file named with --config or $PINGJIA_CONFIG must exist."""
    path = settings_path(args)
    pointed = any(getattr(args, name, None) for name in ("port", "data_dir"))
    if getattr(args, "config", None) is None and pointed and not path.exists():
        return schema.defaults()
    return schema.load(path)


def db_path(args, settings) -> Path:
    return Path(getattr(args, "data_dir", None) or settings.device.data_dir) / DB_NAME


def client(args, settings):
    """A LocalClient for the terminal these settings describe; ConfigError without a token."""
    from terminal.api import load_token  # here: the API module is heavy, few commands ask

    token = getattr(args, "token", None) or os.environ.get("PINGJIA_TOKEN", "").strip()
    if not token:
        token = load_token(settings.api)
    port = getattr(args, "port", None) or _env_port() or settings.api.port
    host = getattr(args, "host", None) or _host(settings.api.bind)
    cacert = cacert_of(args)
    return LocalClient(base_url(host, port, bool(cacert or settings.api.tls_cert)), token,
                       timeout=getattr(args, "timeout", 5), cacert=cacert)


def cacert_of(args) -> Optional[str]:
    """--cacert, else $PINGJIA_CACERT: the certificate that signed the terminal's."""
    return getattr(args, "cacert", None) or os.environ.get("PINGJIA_CACERT", "").strip() or None



def _host(bind: str) -> str:
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind


def _env_port():
    raw = os.environ.get("PINGJIA_PORT", "").strip()
    return int(raw) if raw.isdigit() else None


def ask_terminal(args, settings, call):
    """`(answer, None)` from the running terminal, or `(None, why not)` when it does not
    answer (not running, or no token to ask it with). An error answer raises ApiError."""
    try:
        return call(client(args, settings)), None
    except ConfigError as exc:
        return None, f"cannot ask the terminal: {exc}"
    except Unreachable as exc:
        return None, str(exc)


def emit(args, data: dict, text: str) -> None:
    """The answer: JSON with --json, else the text for people."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    elif text:
        print(text)


def fail(message: str, code: int = 1) -> int:
    print(f"pingjia: {message}", file=sys.stderr)
    return code
