"""How the agent retries: exponential backoff with jitter and a cap, Retry-After honoured.

A transient fault never makes the agent give up on a record: the only ways out of the
retry loop are an answer, or the agent stopping (SIGTERM, or `--once` running out of
attempts). `sleep` is a parameter, so tests run the whole policy without waiting.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import tenacity
from tenacity import retry_if_exception_type, wait_exponential_jitter
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from terminal.central_client import Transient

log = logging.getLogger("pingjia.agent")

INITIAL_S = 0.5
CAP_S = 60.0
JITTER_S = 0.5
RETRY_AFTER_CAP_S = 600.0  # a Retry-After beyond this is a broken header, not a plan


class wait_retry_after(wait_base):
    """The server's Retry-After when it gave one (at least that long), else `fallback`."""

    def __init__(self, fallback: wait_base, cap: float = RETRY_AFTER_CAP_S):
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(max(after, 0.0), self.cap)
        return self.fallback(retry_state)


class stop_when(stop_base):
    def __init__(self, predicate: Callable[[], bool]):
        self.predicate = predicate

    def __call__(self, retry_state) -> bool:
        return self.predicate()


def _log_retry(retry_state) -> None:
    exc = retry_state.outcome.exception()
    wait = retry_state.next_action.sleep if retry_state.next_action else 0
    level = logging.WARNING if retry_state.attempt_number in (1, 10) or \
        retry_state.attempt_number % 100 == 0 else logging.DEBUG
    log.log(level, "%s; try %d failed, next in %.1f s", exc, retry_state.attempt_number, wait)


def _exponential_jitter(initial: float, cap: float, jitter: float) -> wait_base:
    try:
        return wait_exponential_jitter(multiplier=initial, max=cap, jitter=jitter)
    except TypeError:  # tenacity before 9.1 calls it `initial` (deprecated since)
        return wait_exponential_jitter(initial=initial, max=cap, jitter=jitter)


def policy(*, sleep: Callable[[float], None], stopping: Callable[[], bool],
           max_attempts: Optional[int] = None, initial: float = INITIAL_S,
           cap: float = CAP_S, jitter: float = JITTER_S) -> tenacity.Retrying:
    """A Retrying for one request: retries Transient until it succeeds or we stop."""
    stop = stop_when(stopping)
    if max_attempts is not None:
        stop = stop | tenacity.stop_after_attempt(max_attempts)
    return tenacity.Retrying(
        sleep=sleep,
        wait=wait_retry_after(_exponential_jitter(initial, cap, jitter)),
        retry=retry_if_exception_type(Transient),
        stop=stop,
        before_sleep=_log_retry,
        reraise=True,
    )
