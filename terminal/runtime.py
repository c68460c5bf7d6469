"""Puts a terminal together from settings: store, flow, display, buttons, sound, API.

The same assembly serves the systemd service and the simulator; only the settings
differ (the simulator chooses the mock pin factory and a simulated display explicitly).
What only a kiosk uses (the card reader's driver, the lookup client and with it
requests) is imported when a kiosk opens it: a window terminal stays smaller.
"""
from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path

from terminal.wake import notify as wake_agent, wake_path
from config import tags as tag_lists
from drivers.buttons import ButtonPanel
from drivers.display import open_display
from drivers.fonts import find_fonts
from drivers.pins import make_pin_factory
from drivers.sound import open_sound
from terminal import central
from terminal import clock as clocks
from terminal import flow, screens
from terminal.api import ApiServer, load_token
from terminal.reserve import Reserve
from terminal.salvage import ensure_intact
from terminal.secret import load_secret
from terminal.service import Terminal
from terminal.store import DB_NAME, Reader, Store
from terminal.sync_state import central_config, central_etag
from terminal.technician import Technician

log = logging.getLogger("pingjia.terminal")

try:
    from importlib.metadata import version as _dist_version
    VERSION = _dist_version("pingjia")
except Exception:  # running from a source tree that was never installed
    VERSION = "0.1.0+src"


def db_path(settings) -> Path:
    return Path(settings.device.data_dir) / DB_NAME


class Runtime:
    """Every part of a running terminal, opened in an order that fails early and cleanly."""

    def __init__(self, settings, *, secret: bytes | None = None, clock=None, api: bool = True,
                 progress=None, sound_dir=None):
        self.settings = settings
        self._progress = progress  # start-up news (a long salvage) for systemd
        self.clock = clock or clocks.SystemClock()
        self._sound_dir = sound_dir   # the simulator's --sound-dir
        self._closers = []
        self._health_seen = None  # (data_version, records stored) when last read
        self._sync: dict = {}
        try:
            self._open(settings, secret, api)
        except BaseException:
            self.close()
            raise

    def _open(self, settings, secret, api):
        # Settings-level problems first (fonts, tags, secret): no hardware is touched yet.
        self.fonts = find_fonts(tuple(settings.display.fonts))
        self.tags = tag_lists.for_settings(settings)
        secret = secret if secret is not None else load_secret(settings)
        token = load_token(settings.api) if api else None

        # integrity check; a damaged database is set aside and salvaged (terminal/salvage.py)
        self.salvage = ensure_intact(db_path(settings), hash_alg=settings.device.hash_alg,
                                     progress=self._progress)
        self.store = Store(db_path(settings), device_id=settings.device.id, secret=secret,
                           hash_alg=settings.device.hash_alg, boot_id=clocks.boot_id())
        self._closers.append(self.store.close)
        self.reserve = Reserve(settings.device.data_dir)

        self.pin_factory = make_pin_factory(settings.buttons.pin_factory)
        self._closers.append(self.pin_factory.close)
        # a panel that does not answer leaves the terminal running without a screen
        # (buttons and ratings go on; status reports it; the display keeps trying)
        self.display = open_display(settings.display, absent_ok=True)
        self._closers.append(self._close_display)
        self.sound = open_sound(settings.sound, self.pin_factory, record_dir=self._sound_dir)
        self._closers.append(self.sound.close)

        self.lookup = self.reader = None
        if settings.device.mode == "kiosk":
            self._open_lookup(settings, secret)

        config = flow.FlowConfig.from_settings(settings, self.tags, VERSION)
        # the central system's tags/texts/timeouts, as the agent stored them; followed in health()
        self.central = central.Watcher(config, lambda: central_etag(self.store.db),
                                       lambda: central_config(self.store.db))
        config = self.central.poll() or config
        self.terminal = Terminal(
            config, store=self.store, clock=self.clock, display=self.display,
            render=partial(screens.render, fonts=self.fonts),
            render_fault=screens.render_fault_plain, leds=self._set_leds, sound=self.sound,
            health=self.health, lookup=self.lookup, reserve=self.reserve)
        # visits a crash, a power cut or a stop left open become records before the API
        # answers anything about them
        self.terminal.recover()
        wake = wake_path(settings.device.data_dir)  # the sync agent uploads at once
        self.terminal.listeners.append(lambda stored: wake_agent(wake))
        self.panel = ButtonPanel(settings.buttons, on_event=self._button,
                                 pin_factory=self.pin_factory)
        self._closers.append(self.panel.close)
        if settings.device.mode == "kiosk" and settings.reader.driver != "none":
            from terminal.reader import KioskReader  # kiosk only: the card reader's driver
            self.reader = KioskReader(settings.reader, self.terminal.post)
            self._closers.append(self.reader.close)
            self.reader.start()

        self.api = None
        if api:
            self.api = ApiServer(settings.api, self.terminal, db_path(settings), token,
                                 status=self.status,
                                 technician=Technician.for_runtime(self, db_path(settings)))
            self.api.start()
            self._closers.append(self.api.stop)

    def _open_lookup(self, settings, secret) -> None:
        if not settings.central.url:
            log.warning("kiosk mode without central.url: card lookups will say the service "
                        "is unavailable")
            return
        from terminal.lookup import LookupClient  # kiosk only: requests and the central client
        self.lookup = LookupClient.from_settings(settings, secret, self._post)
        self._closers.append(self.lookup.close)

    # --- glue ---------------------------------------------------------------------

    def _post(self, event) -> None:
        self.terminal.post(event)

    def _button(self, kind: str, level: int) -> None:
        self.terminal.post(flow.Hold(level) if kind == "hold" else flow.Press(level))

    def _set_leds(self, lit) -> None:
        panel = getattr(self, "panel", None)
        if panel is not None:
            panel.set_leds(lit)

    def health(self) -> dict:
        """What the screens may show about the device (queue, last upload); the Terminal
        calls this every 2 s, which is also when a new central config is taken up."""
        # What the agent wrote (a new central config, uploads) shows in data_version;
        # what this process wrote, in the count of stored records. Neither changed:
        # nothing to read again (one pragma every 2 s instead of five queries).
        seen = (self.store.data_version(), self.terminal.stats["stored"])
        if seen != self._health_seen:
            changed = self.central.poll()
            if changed is not None:
                self.terminal.post(flow.ConfigChanged(changed))
            view = self.store.sync_view()
            self._health_seen = seen
            self._sync = {"queue_depth": view["queue_depth"], "last_upload_at": view["last_upload_at"]}
        values = dict(self._sync)
        if self.reader is not None:
            values["reader"] = self.reader.health()["state"]
        return values

    def status(self) -> dict:
        """Hardware and sync parts of GET /v1/status."""
        out = {"version": VERSION, "device_id": self.settings.device.id,
               "hardware": {"display": self.display.health(), "buttons": self.panel.health(),
                            "sound": self._sound_health()}}
        if self.reader is not None:
            out["hardware"]["reader"] = self.reader.health()
        if self.salvage is not None:
            out["salvage"] = self.salvage.as_dict()
        out["reserve"] = self.reserve.health()
        if self.store.restored:
            out["schema_restored"] = self.store.restored
        try:
            with Reader(db_path(self.settings)) as reader:  # this thread's own connection
                out.update(reader.sync_view())
        except Exception:
            log.exception("sync view failed")  # the API reports the storage error itself
        return out

    def _sound_health(self) -> dict:
        try:
            return self.sound.health()
        except Exception as exc:   # status must answer whatever the sound does
            return {"driver": self.settings.sound.driver, "state": "failing",
                    "last_error": str(exc)[:200]}

    def run(self, stop: threading.Event, on_turn=None) -> None:
        """The event loop until `stop`; `on_turn()` after each turn (the watchdog ping,
        whose `interval_s` bounds the loop's sleep). Then, on the same thread, the open
        visit and what is held are stored."""
        def wake_on_stop():  # the loop sleeps until its next deadline: a stop wakes it
            stop.wait()
            self.terminal.post(flow.Tick())

        threading.Thread(target=wake_on_stop, name="stop-waker", daemon=True).start()
        try:
            self.terminal.run(stop, on_turn)
        finally:
            self.terminal.shutdown()

    def _close_display(self) -> None:
        try:
            final = screens.render_out_of_service(self.display.size, self.display.mode, self.fonts)
        except Exception:
            log.exception("could not draw the out-of-service frame")
            final = None
        self.display.close(final)

    def close(self) -> None:
        """Release everything in reverse order; safe to call twice."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                log.exception("closing %s failed", getattr(closer, "__qualname__", closer))
