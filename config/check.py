"""The one settings check: what `config validate`, `config set` and the terminal's start run.

Beyond the schema (config/settings.py) it holds what a file can be wrong about only
together with the machine it is on: the tag file it names, the local API token (from
`api.token` or the file `api.token_file` names) and, at `config validate` and at start,
whether the API port can be bound. A file this check passes is one the terminal starts
on; a file it refuses, the terminal refuses with the same words.
"""
from __future__ import annotations

import errno
import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import ssl

from config import settings as schema
from config import tags as tag_lists
from config import tomlfile
from config.errors import ConfigError, Problem, locate_key

# RFC 6750 b64token: the token travels in an HTTP header
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/-]+=*")
TOKEN_MIN = 16     # refused below: guessable on a hall LAN
TOKEN_GOOD = 24    # warned below (`openssl rand -hex 24` makes 48)
TOKEN_HINT = "e.g. `openssl rand -hex 24`"

# What the port probe is for: None (no probe: `config set`, the running terminal holds
# the port), VALIDATE (in use by an API that answers like ours is a warning), START
# (in use is an error: the terminal cannot serve).
VALIDATE, START = "validate", "start"


@dataclass
class Checked:
    settings: schema.Settings
    warnings: list = field(default_factory=list)   # of Problem
    token: str = ""


def check_file(path: str | Path, probe: Optional[str] = None) -> Checked:
    """The settings file at `path`, checked whole; ConfigError listing every problem."""
    path = Path(path)
    try:
        text = tomlfile.read_text(path)
    except FileNotFoundError:
        schema.load(path)  # says "file not found" in the schema's words
        raise
    return check_text(text, str(path), probe)


def check_text(text: str, source: str, probe: Optional[str] = None) -> Checked:
    settings = schema.loads(text, source)
    tag_lists.for_settings(settings)
    token, warnings = api_token(settings.api, source, text)
    api_tls(settings.api, source, text)
    if probe is not None:
        found = port_problem(settings, token, probe, source, text)
        if found is not None:
            problem, fatal = found
            if fatal:
                raise ConfigError([problem])
            warnings.append(problem)
    return Checked(settings, warnings, token)


def api_token(api, source: str = "settings", text: Optional[str] = None) -> tuple[str, list]:
    """(token, warnings) of the local API; ConfigError when the API could not serve with it.

    The token itself never appears in a message."""
    def problem(key: str, message: str) -> Problem:
        return Problem(source, locate_key(text, key), key, message)

    token, key = api.token.strip(), "api.token"
    if not token and api.token_file:
        key = "api.token_file"
        try:
            token = tomlfile.read_text(api.token_file).strip()
        except FileNotFoundError:
            raise ConfigError([problem(key, f"the API token file {api.token_file} does not "
                                            f"exist; make it ({TOKEN_HINT})")]) from None
        except ConfigError as exc:
            raise ConfigError([problem(key, "cannot read the API token: "
                                            + exc.problems[0].message)]) from None
    if not token:
        where = "the file " + api.token_file + " is empty" if api.token_file else \
            "set api.token or api.token_file"
        raise ConfigError([problem(key, f"the local API needs a bearer token: {where} "
                                        f"({TOKEN_HINT})")])
    if not TOKEN_CHARS.fullmatch(token):
        raise ConfigError([problem(key, "the token may only hold letters, digits and -._~+/ "
                                        "(it travels in an HTTP header)")])
    if len(token) < TOKEN_MIN:
        raise ConfigError([problem(key, f"the token is too short ({len(token)} characters, at "
                                        f"least {TOKEN_MIN}; {TOKEN_GOOD} or more is better, "
                                        f"{TOKEN_HINT})")])
    warnings = []
    if len(token) < TOKEN_GOOD:
        warnings.append(problem(key, f"the token is short ({len(token)} characters); "
                                     f"use {TOKEN_GOOD} or more ({TOKEN_HINT})"))
    return token, warnings


def api_tls(api, source: str = "settings", text: Optional[str] = None) -> Optional[ssl.SSLContext]:
    """The server's TLS context from `api.tls_cert` and `api.tls_key` (TLS 1.2 or later),
    None when both are empty; ConfigError naming the key when the API could not serve."""
    def problem(key: str, message: str) -> ConfigError:
        return ConfigError([Problem(source, locate_key(text, key), key, message)])

    if not api.tls_cert and not api.tls_key:
        return None
    if not api.tls_cert or not api.tls_key:
        missing = "api.tls_key" if api.tls_cert else "api.tls_cert"
        raise problem(missing, "HTTPS needs both api.tls_cert and api.tls_key (PEM files)")
    for key, path in (("api.tls_cert", api.tls_cert), ("api.tls_key", api.tls_key)):
        if not Path(path).is_file():
            raise problem(key, f"{path} is not a file")
    import ssl  # here: only a terminal that serves HTTPS needs it (terminal/lean.py)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(api.tls_cert, api.tls_key)
    except PermissionError as exc:
        raise problem("api.tls_key", f"cannot read {exc.filename or api.tls_key}: permission "
                                     "denied (the service user must read it)") from None
    except (ssl.SSLError, OSError) as exc:
        raise problem("api.tls_cert", f"{api.tls_cert} and {api.tls_key} are not a PEM "
                                      f"certificate and its private key ({getattr(exc, 'reason', None) or exc})") from None
    return context


def port_problem(settings, token: str, probe: str, source: str,
                 text: Optional[str] = None) -> Optional[tuple[Problem, bool]]:
    """None when the local API can listen where the settings say, else (problem, whether
    it stops the terminal)."""
    api = settings.api
    family = socket.AF_INET6 if ":" in api.bind else socket.AF_INET

    def problem(message: str, key: str = "api.port", fatal: bool = True):
        return Problem(source, locate_key(text, key), key, message), fatal

    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the API server does
        try:
            s.bind((api.bind, api.port))
            return None
        except OSError as exc:
            code, why = exc.errno, exc.strerror or str(exc)
    if code == errno.EADDRINUSE:
        where = f"port {api.port} on {api.bind} is in use"
        if probe == VALIDATE and _answers_like_the_terminal(api, token):
            return problem(f"{where} (by the running terminal?)", fatal=False)
        return problem(f"{where} by another program (`ss -ltnp 'sport = :{api.port}'` "
                       "says which)")
    if code == errno.EADDRNOTAVAIL:
        return problem(f"no network interface of this device has the address {api.bind}",
                       "api.bind")
    if code == errno.EACCES:
        return problem(f"port {api.port} needs privileges the service does not have; use "
                       "1024 or above")
    return problem(f"cannot listen on {api.bind} port {api.port}: {why}")


def _answers_like_the_terminal(api, token: str) -> bool:
    import http.client  # here: `config validate` alone asks (the service keeps ssl out: terminal/lean.py)

    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(api.bind, api.bind)
    conn = http.client.HTTPConnection(host, api.port, timeout=2)
    try:
        conn.request("GET", "/v1/status", headers={"Authorization": f"Bearer {token}"})
        answer = conn.getresponse()
        body = json.loads(answer.read(65536) or b"null")
        return answer.status == 200 and isinstance(body, dict)
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        conn.close()
