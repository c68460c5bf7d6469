"""`pingjia test network`: can this device reach the central system and be understood there?

Name lookup, TCP connection, a signed GET of the device's config at central.url, and the
clock against the server's time, each step timed and the first failure named. It runs
here, never through the terminal, and opens none of the device's parts.
"""
from __future__ import annotations

import socket
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from config.cli import local
from terminal.secret import SecretError, load_secret

MAX_SKEW_S = 60     # beyond this the clock check fails (the receiver refuses 300 s)


def network(args) -> int:
    settings = local.load_settings(args)
    url = settings.central.url
    if not url:
        return local.fail(f"central.url is not set in {settings.source}: nothing to test", 2)
    steps = network_checks(settings)
    ok = all(s["ok"] for s in steps)
    text = "\n".join(f"{'ok  ' if s['ok'] else 'FAIL'} {s['step']:<10} {s['detail']}" for s in steps)
    local.emit(args, {"test": "network", "url": url, "ok": ok, "steps": steps}, text)
    return 0 if ok else 1


def network_checks(settings, wall=time.time) -> list[dict]:
    """DNS, TCP, signed GET and clock, each {"step", "ok", "detail", "ms"}; stops at the
    first failure (a later step cannot work without the earlier)."""
    url = settings.central.url
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = float(settings.central.timeout_s)
    steps = []

    def step(name, func):
        t = time.monotonic()
        try:
            ok, detail = func()
        except Exception as exc:  # each failure is the check's answer, not a crash
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        steps.append({"step": name, "ok": ok, "detail": detail,
                      "ms": round((time.monotonic() - t) * 1000)})
        return ok

    addresses = []

    def dns():
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses.extend(sorted({i[4][0] for i in infos}))
        return True, f"{host} -> {', '.join(addresses)}"

    def tcp():
        with socket.create_connection((host, port), timeout=timeout):
            return True, f"connected to {host}:{port}"

    seen = {}

    def signed():
        from terminal.central_client import Central, Transient  # here: it loads requests, --help needs none
        try:
            secret = load_secret(settings)
        except SecretError as exc:
            return False, str(exc)
        central = Central(settings.central, device_id=settings.device.id, secret=secret,
                          hash_alg=settings.device.hash_alg, wall=wall,
                          on_server_time=lambda t, mono: seen.update(server_time=t))
        path = f"/v1/devices/{settings.device.id}/config"
        try:
            answer = central.call("GET", path)
            detail = f"GET {path}: {answer.status}, signature accepted"
        except Transient as exc:
            if exc.status == 404 and "no_config" in str(exc):  # signed and accepted; no config
                detail = f"signature accepted; no settings for {settings.device.id} there"
            else:
                why = {401: " (the central system refuses our signature: wrong secret or device "
                            "id; enrol again)", 404: " (unknown device or path)"}.get(exc.status, "")
                return False, f"{exc}{why}"
        finally:
            central.close()
        seen["skew"] = central.skew_s
        return True, detail

    def clock():
        import requests  # here, as above

        offset, basis = seen.get("skew") or 0, "clock_skew answer"
        if not offset and "server_time" in seen:
            offset, basis = int(seen["server_time"] - wall()), "server_time"
        elif not offset:
            date = requests.get(url, timeout=timeout).headers.get("Date")
            if not date:
                return False, "the server's answers carry no time to compare with"
            offset, basis = int(parsedate_to_datetime(date).timestamp() - wall()), "Date header"
        if abs(offset) > MAX_SKEW_S:
            return False, (f"the device clock is {-offset:+d} s off the server's ({basis}): check "
                           "NTP (timedatectl); records made now are corrected later")
        return True, f"within {abs(offset)} s of the server ({basis})"

    for name, func in (("dns", dns), ("tcp", tcp), ("signed", signed), ("clock", clock)):
        if not step(name, func):
            break
    return steps
