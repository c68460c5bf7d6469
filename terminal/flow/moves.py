"""The moves every part of the flow makes: go to a screen, answer a local API request.

The window's handlers (terminal/flow/window.py), the kiosk's (kiosk.py) and the hardware
test's (testing.py) all change screens and reply the same way; the rules live here, once,
below all three, so none of them imports another for them. Pure, like the flow.
"""
from __future__ import annotations

from dataclasses import replace

from terminal.clock import Now
from terminal.flow.model import Idle, Reply, State


def go(state: State, screen, now: Now) -> State:
    """`state` showing `screen` from its first page, with the idle hint gone."""
    # The idle screen's QR code stays only while the screen stays idle.
    qr, qr_until = (state.qr, state.qr_until) if isinstance(screen, Idle) else ((), 0)
    return replace(state, screen=screen, page=0, page_at=now.mono_ms + state.config.page_ms,
                   hint="", hint_until=0, qr=qr, qr_until=qr_until)


def reply(request_id, status: int, body) -> Reply:
    """The answer to a local API request."""
    return Reply(request_id, status, dict(body))


def error(request_id, status: int, code: str, message: str, **extra) -> Reply:
    """A refusal, in the local API's error form: {"error": code, "message": ..., **extra}."""
    return Reply(request_id, status, {"error": code, "message": message, **extra})
