"""What the local API's technician calls do inside the terminal (docs/local-api.md).

- reload: re-read the settings file and hand the flow what it can apply at once (texts,
  timeouts, levels, tags, site) in a ConfigChanged event; the rest is named with the
  service that must restart. A bad file changes nothing and the answer names file, line
  and key.
- tests: `StartTest` / `StopTest` through the event queue (terminal/flow/testing.py);
  the API thread never touches the display, the buttons or the LEDs.
- reader: the card reader's health and last read, masked as the screen shows it.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Callable, Optional

from config import changes
from config import settings as schema
from config import tags as tag_lists
from config.errors import ConfigError
from terminal import central as central_config
from terminal import flow

log = logging.getLogger("pingjia.terminal")

DISPLAY_STEP_MS = 1_500     # each frame of the display test, unless told otherwise
BUTTONS_S = 60              # the button test's length, unless told otherwise


class Refused(Exception):
    """A technician call that cannot be done; status, code and message for the answer."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def settings_file(settings) -> Optional[str]:
    """The file the running settings came from (the simulator adds " + simulate")."""
    if settings is None:
        return None
    source = settings.source.split(" + ")[0]
    return source if Path(source).is_file() else None


class Technician:
    """The terminal's side of reload, tests and the reader check.

    `settings` are the settings the terminal runs with (the simulator's overrides
    included); `settings_file` the file to re-read. `central` is the runtime's
    central.Watcher (the central system's values stay on top of the local ones),
    `reader()` gives the kiosk's KioskReader or None, `on_settings(new)` hears the
    settings after a reload.
    """

    def __init__(self, terminal, *, settings=None, settings_file_path: Optional[str] = None,
                 central=None, db_path=None, reader: Callable[[], object] = lambda: None,
                 on_settings: Callable[[object], None] = lambda s: None):
        self.terminal = terminal
        self.path = settings_file_path or settings_file(settings)
        self.running = settings
        if self.running is None and self.path:
            self.running = schema.load(self.path)
        self.central = central
        self.db_path = db_path
        self.reader = reader
        self.on_settings = on_settings
        self._lock = threading.Lock()
        # what the file said at start (restart-only keys are compared with this) and at
        # the last reload (live keys are compared with this)
        self._started = self._loaded = self._read_quietly()

    @classmethod
    def for_runtime(cls, runtime, db_path) -> "Technician":
        return cls(runtime.terminal, settings=runtime.settings, central=runtime.central,
                   db_path=db_path, reader=lambda: runtime.reader,
                   on_settings=lambda s: setattr(runtime, "settings", s))

    def _read_quietly(self):
        if not self.path:
            return None
        try:
            return schema.load(self.path)
        except ConfigError as exc:
            log.warning("settings file %s does not load now: %s", self.path, exc)
            return None

    # --- reload -------------------------------------------------------------------

    def reload(self, request) -> dict:
        """Re-read the file; `request(make_event)` posts to the flow and waits."""
        if not self.path:
            raise Refused(409, "no_settings_file", "this terminal runs without a settings file "
                          "(built-in defaults): nothing to reload")
        with self._lock:
            try:
                new = schema.load(self.path)
                tag_lists.for_settings(new)
            except ConfigError as exc:
                raise Refused(422, "invalid_settings",
                              f"{self.path} has problems; nothing was changed:\n{exc}",
                              problems=[dataclasses.asdict(p) for p in exc.problems]) from None
            live = changes.classify(changes.changed_keys(self._loaded or self.running, new))["live"]
            restart = changes.classify(changes.changed_keys(self._started or self.running, new))["restart"]
            if live:
                merged = self.running.with_values(changes.live_values(new, live))
                config = self._flow_config(merged)
                request(lambda rid: flow.ConfigChanged(config, rid))
                self.running = merged
                self.on_settings(merged)
            self._loaded = new
        log.warning("settings reloaded from %s: applied %s; restart needed for %s",
                    self.path, live or "nothing", restart or "nothing")
        return {"file": self.path, "applied": live, "restart": restart}

    def _flow_config(self, settings):
        current = self.terminal.snapshot().config
        base = flow.FlowConfig.from_settings(settings, tag_lists.for_settings(settings),
                                             current.version)
        if self.central is None:
            return base
        self.central.base = base
        stored = None
        if self.db_path is not None:
            from terminal.store import Reader
            from terminal.sync_state import central_config as stored_config
            try:
                with Reader(self.db_path) as reader:
                    stored = stored_config(reader.db)
            except Exception as exc:  # the local settings still apply
                log.error("cannot read the stored central config: %s", exc)
        if stored is None:
            return base
        try:
            return central_config.apply(base, central_config.validate(stored[1]))
        except (ConfigError, ValueError, TypeError, KeyError) as exc:
            log.error("stored central config not applied: %s", exc)
            return base

    # --- tests --------------------------------------------------------------------

    def start_event(self, body: dict, request_id: int):
        kind = body["kind"]
        seconds = body.get("seconds")
        if kind == "display":
            from terminal.screens.gallery import count_test_frames
            frames = count_test_frames(self.terminal.snapshot().config)
            # a run shorter than the panel can draw still shows every frame
            step_ms = DISPLAY_STEP_MS if seconds is None else max(50, seconds * 1000 // frames)
            return flow.StartTest("display", frames * step_ms, frames, step_ms, request_id)
        return flow.StartTest("buttons", (seconds or BUTTONS_S) * 1000, request_id=request_id)

    # --- the card reader -------------------------------------------------------------

    def reader_check(self) -> dict:
        reader = self.reader()
        mode = self.terminal.snapshot().config.mode
        if reader is None:
            why = ("this is a window evaluator: it has no card reader" if mode != "kiosk"
                   else "the kiosk's reader is switched off (reader.driver = \"none\")")
            return {"present": False, "mode": mode, "state": "absent", "detail": why}
        health = dict(reader.health())
        return {"present": True, "mode": mode, **health}
