"""What the technician commands share: the settings, the store and the running terminal.

The local API client of every command is `client` (the rule for host, port and token is
in its docstring); the store comes from `--data-dir`, else `device.data_dir`. Options
default to SUPPRESS so `pingjia --config F status` and `pingjia status --config F` both
work.
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


class CannotAsk(ConfigError):
    """The options, settings and environment give no way to ask the terminal (no token,
    or $PINGJIA_PORT is no port): a ConfigError, so every command treats it as one."""

    def __init__(self, message: str):
        super().__init__([])
        self.args = (message,)


def client(args, settings: Optional[schema.Settings] = None) -> LocalClient:
    """A LocalClient for the running terminal, the one every command uses.

    Port and token: the option, else the settings file named with --config (or
    $PINGJIA_CONFIG), else $PINGJIA_PORT / $PINGJIA_TOKEN, else the settings found at the
    default place, else the default port. Host: --host, else the address the settings
    bind to, else 127.0.0.1; HTTPS with --cacert or when the settings set api.tls_cert.
    `settings` None: there is no settings file. ConfigError without a token.
    """
    named = settings is not None and getattr(args, "config", None) is not None
    api = settings.api if settings is not None else schema.ApiSettings()
    token = (getattr(args, "token", None) or (_settings_token(api) if named else None)
             or os.environ.get("PINGJIA_TOKEN", "").strip())
    if not token and settings is not None:
        token = _settings_token(api, quiet=False)
    if not token:
        raise CannotAsk("no API token: pass --token, or --config with the device's settings, "
                        "or set PINGJIA_TOKEN")
    port = getattr(args, "port", None) or (api.port if named else None) or _env_port() or api.port
    host = getattr(args, "host", None) or _host(api.bind)
    cacert = cacert_of(args)
    return LocalClient(base_url(host, port, bool(cacert or api.tls_cert)), token,
                       timeout=getattr(args, "timeout", 5), cacert=cacert)


def _settings_token(api: schema.ApiSettings, quiet: bool = True) -> Optional[str]:
    """The settings' token; with `quiet`, None where they have none (the environment may)."""
    from terminal.api import load_token  # here: the API module is heavy, few commands ask

    try:
        return load_token(api)
    except ConfigError:
        if quiet:
            return None
        raise


def cacert_of(args) -> Optional[str]:
    """--cacert, else $PINGJIA_CACERT: the certificate that signed the terminal's."""
    return getattr(args, "cacert", None) or os.environ.get("PINGJIA_CACERT", "").strip() or None



def _host(bind: str) -> str:
    return "127.0.0.1" if bind in ("", "0.0.0.0", "::") else bind


def _env_port() -> Optional[int]:
    raw = os.environ.get("PINGJIA_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise CannotAsk(f"PINGJIA_PORT={raw!r} is not a port number")
    return int(raw)


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
