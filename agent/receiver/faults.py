"""Faults the receiver injects on request, so that the agent's retries meet real failures.

Only uploads (records and corrections) are hit. Each hit request gets one fault:

- ``5xx``: 500 or 503 (503 with Retry-After), nothing stored;
- ``429``: Retry-After, nothing stored;
- ``slow``: the batch is stored, the answer waits ``slow_s`` (a client that gives up
  first has delivered without knowing it);
- ``drop``: the connection closes without an answer, either before the batch is
  processed or *after it is stored* (the client cannot tell which; only the idempotent
  record_id saves it from losing or doubling records); ``drop_before`` and
  ``drop_after`` name one of the two;
- ``partial``: the batch is stored, the answer's headers go out with half the body,
  then the connection closes.

The draw is deterministic for a given seed and request order.
"""
from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Optional

KINDS = ("5xx", "429", "slow", "drop", "partial")
ACCEPTED_KINDS = KINDS + ("drop_before", "drop_after")
# What a draw can return; stats count injected faults under these names.
OUTCOMES = ("500", "503", "429", "slow", "drop_before", "drop_after", "partial")


@dataclass(frozen=True)
class Faults:
    """A share `rate` (0..1) of upload requests gets one of `kinds`, chosen evenly."""
    rate: float = 0.0
    kinds: tuple = field(default=KINDS)
    retry_after_s: int = 1
    slow_s: float = 2.0

    def __post_init__(self):
        kinds = tuple(self.kinds.split(",")) if isinstance(self.kinds, str) else tuple(self.kinds)
        object.__setattr__(self, "kinds", kinds)
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) \
                or not 0 <= self.rate <= 1:
            raise ValueError(f"fault rate must be a number from 0 to 1, not {self.rate!r}")
        unknown = [k for k in kinds if k not in ACCEPTED_KINDS]
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be some of {', '.join(ACCEPTED_KINDS)}"
                             + (f"; unknown: {', '.join(map(str, unknown))}" if unknown else ""))
        if isinstance(self.retry_after_s, bool) or not isinstance(self.retry_after_s, int) \
                or self.retry_after_s < 0:
            raise ValueError("retry_after_s must be a whole number of seconds, 0 or more")
        if isinstance(self.slow_s, bool) or not isinstance(self.slow_s, (int, float)) \
                or not 0 <= self.slow_s <= 600:
            raise ValueError("slow_s must be a number of seconds from 0 to 600")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["kinds"] = list(self.kinds)
        return out


class FaultPlan:
    """Draws the fault (or none) for each upload request; thread-safe."""

    def __init__(self, faults: Optional[Faults] = None, seed=None):
        self._faults = faults or Faults()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults

    def draw(self) -> Optional[str]:
        """None, or one of OUTCOMES."""
        with self._lock:
            faults = self._faults
            if faults.rate <= 0 or self._rng.random() >= faults.rate:
                return None
            kind = self._rng.choice(faults.kinds)
            if kind == "5xx":
                return self._rng.choice(("500", "503"))
            if kind == "drop":
                return self._rng.choice(("drop_before", "drop_after"))
            return kind
