"""The device secret: the HMAC key that signs records and requests.

On a device systemd hands it over as a credential (`LoadCredential=pingjia-secret:...`),
so the service user never needs read access to the file itself; otherwise the settings
name a file. The secret is never logged or printed.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

CREDENTIAL = "pingjia-secret"


class SecretError(Exception):
    pass


def secret_path(settings) -> Path:
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL).exists():
        return Path(cred_dir) / CREDENTIAL
    return Path(settings.device.secret_file)


def load_secret(settings) -> bytes:
    return read_secret(secret_path(settings))


def read_secret(path: Path | str) -> bytes:
    """The secret in `path`; "-" reads it from standard input (a run by hand:
    `sudo cat /etc/pingjia/secret | sudo -u pingjia pingjia terminal --secret-file -`)."""
    if str(path) == "-":
        import sys
        data = sys.stdin.buffer.read().strip()
        if len(data) < 16:
            raise SecretError("the device secret on standard input is too short (at least 16 bytes)")
        return data
    path = Path(path)
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        raise SecretError(f"no device secret at {path}: enrol the device (`pingjia enroll`) or "
                          f"set device.secret_file") from None
    except PermissionError:
        raise SecretError(f"cannot read the device secret {path}: permission denied (the service "
                          f"gets it through systemd LoadCredential=)") from None
    if len(data) < 16:
        raise SecretError(f"the device secret in {path} is too short (at least 16 bytes)")
    return data


def write_secret(path: Path, value: bytes) -> None:
    """Write a secret readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, value)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def ensure_sim_secret(path: Path) -> bytes:
    """Simulation only: make a random secret on first use."""
    if not path.exists():
        write_secret(path, secrets.token_hex(32).encode("ascii"))
    return path.read_bytes().strip()
