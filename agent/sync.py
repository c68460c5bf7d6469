"""The sync agent: delivers the outbox, corrects times, pulls config, beats, writes metrics.

One thread, one loop. It uploads whenever the terminal wakes it (a datagram after each
stored record) and on a slow periodic scan as a fallback; a backlog drains batch after
batch at full speed. Each record is marked from its own answer after the answer came, in
one short transaction: a kill at any moment re-sends at most one batch, which the central
system deduplicates by record_id. See docs/sync.md.
"""
from __future__ import annotations

import json
import logging
import select
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote

from agent import metrics, profiles, retry
from terminal.central_client import Central, Transient
from agent.answers import BATCH_REFUSED, BadRows, outcomes, row_problem
from agent.outbox import Outbox
from agent.stopper import Stopper
from agent.timefix import TrustedTime, corrected, iso_at
from terminal.wake import WakeSocket, wake_path
from config.errors import ConfigError
from terminal import central as central_config
from terminal.heap import give_back_memory
from terminal.clock import CHINA, boot_id as current_boot_id, kernel_clock_synced
from terminal.sdnotify import Notifier
from terminal.store import DB_NAME, StorageError

log = logging.getLogger("pingjia.agent")

MAX_BATCH = 500            # the contract's limit per POST /v1/records
CORRECTIONS_ATTEMPTS = 3   # corrections never hold up records: they are tried again later
ONCE_ATTEMPTS = 8          # `--once`: about a minute of backoff, then give up for this run
CONFIG_RETRY_S = 60
METRICS_EVERY_S = 10
EXIT_PENDING = 1           # `--once` exit codes (2 is the CLI's settings error)
EXIT_PARKED = 3


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("pingjia")
    except Exception:
        return "0.1.0+src"


class Agent:
    """The sync agent of one device.

    Time, the network session and sleeping come in as parameters: `sleep(seconds)` is what
    a backoff waits with (tests pass one that returns at once), `wall`/`mono_ms` the
    clocks, `kernel_synced()` whether the system clock is trustworthy.
    """

    def __init__(self, settings, *, secret: bytes, db_path: Optional[Path] = None,
                 session=None, sleep: Optional[Callable[[float], None]] = None,
                 wall: Callable[[], float] = time.time,
                 mono_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
                 kernel_synced: Callable[[], bool] = kernel_clock_synced,
                 boot_id: Optional[str] = None, notifier: Optional[Notifier] = None,
                 wake: bool = True, max_attempts: Optional[int] = None, backoff: Optional[dict] = None):
        self.settings = settings
        central = settings.central
        if not central.url:
            raise ValueError("central.url is not set: the agent has nowhere to send records")
        self.device_id = settings.device.id
        self.batch_size = max(1, min(central.batch_size, MAX_BATCH))
        self.profile = profiles.get(central.profile)
        self.boot_id = boot_id or current_boot_id()
        self.notifier = notifier or Notifier()
        self.stopper = Stopper()
        self._sleeper = sleep if sleep is not None else self._sleep
        self.time = TrustedTime(wall=wall, mono_ms=mono_ms, kernel_synced=kernel_synced)
        data_dir = Path(settings.device.data_dir)
        self.outbox = Outbox(db_path or data_dir / DB_NAME, device_id=self.device_id,
                             hash_alg=settings.device.hash_alg)
        self.central = Central(central, device_id=self.device_id, secret=secret,
                               hash_alg=settings.device.hash_alg, session=session, wall=wall,
                               mono_ms=mono_ms, on_server_time=self.time.heard_server_time)
        backoff = backoff or {}
        self.retrying = retry.policy(sleep=self._backoff_sleep, stopping=self.stopper.is_set,
                                     max_attempts=max_attempts, **backoff)
        self.retrying_corrections = retry.policy(
            sleep=self._backoff_sleep, stopping=self.stopper.is_set,
            max_attempts=min(max_attempts or CORRECTIONS_ATTEMPTS, CORRECTIONS_ATTEMPTS), **backoff)
        self.wake = None
        if wake:
            try:
                self.wake = WakeSocket(wake_path(data_dir))
            except OSError as exc:
                log.warning("no wake-up socket at %s (%s): scanning every %d s only",
                            wake_path(data_dir), exc, central.scan_interval_s)
        self.stats = {"uploaded": 0, "rejected": 0, "batches": 0, "corrected": 0,
                      "heartbeats": 0, "configs": 0, "parked": 0}
        self._due = {"config": 0.0, "heartbeat": 0.0}
        self._metrics_at = float("-inf")
        self._watchdog_at = float("-inf")
        self._status_text = ""
        self._in_periodic = False
        self.last_error: Optional[str] = None

    # --- the loop -------------------------------------------------------------------

    def run(self) -> None:
        """Serve until stop(): drain, periodic work, then wait for a wake-up or the scan."""
        self.notifier.ready(self._status())
        try:
            while not self.stopper.is_set():
                self._periodic()
                self.drain()
                self._periodic()
                self._wait(self._next_due())
        finally:
            self.notifier.stopping()

    def run_once(self) -> int:
        """`--once`: config, drain, corrections, heartbeat, metrics. The exit code: 0 all
        delivered; 1 records still pending (central not reachable, try again later);
        3 nothing pending but records parked as rejected (a technician must look)."""
        self.pull_config()
        self.drain()
        self.heartbeat()
        self.write_metrics(force=True)
        view = self.outbox.sync_view()
        if view["queue_depth"]:
            return EXIT_PENDING
        return EXIT_PARKED if view["rejected"] or view["parked"] else 0

    def stop(self) -> None:
        """Ask the loop to end after the current request (signal-safe)."""
        self.stopper.set()

    def close(self) -> None:
        if self.wake is not None:
            self.wake.close()
        self.central.close()
        self.outbox.close()
        self.stopper.close()

    def drain(self) -> bool:
        """Upload batches until nothing is pending, then send time corrections.

        False when it ended early: stopping, `--once` out of attempts, or the store failed.
        One batch at a time, on this thread: reading the next batch while one is on the
        wire was tried and gained nothing measurable once record ids were time-ordered
        (the receiver's answer is the long part), while a second thread's malloc arena
        cost about 1 MiB of RSS.
        """
        try:
            while self.upload_batch():
                self._periodic()
                if self.stopper.is_set():
                    return False
            self.correct_times()
            return not self.stopper.is_set()
        except Transient as exc:  # only when stopping or out of attempts
            self.last_error = str(exc)
            return False
        except sqlite3.Error as exc:
            self.last_error = f"store: {exc}"
            log.error("store error while syncing: %s; trying again later", exc)
            return False

    # --- records ----------------------------------------------------------------------

    def upload_batch(self) -> int:
        """Send the oldest pending batch until it gets an answer; mark it. Rows handled."""
        try:
            batch = self._read_batch()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):  # busy, locked, I/O: not the row
                raise
            parked = self._park_bad(self.outbox.pending_keys(self.batch_size), exc)
            if parked:
                return parked
            raise
        if batch is None:
            return 0
        try:
            result, tries = self._deliver(*batch)
        except BadRows as bad:
            return self._park(bad.rows)
        self._mark(batch[0], result, tries)
        del batch
        # without it the RSS stays a batch's worth above its idle size after every drain
        give_back_memory()
        return len(result)

    def _park_bad(self, keys, why) -> int:
        bad = self._bad_rows(keys)
        if not bad:
            return 0
        log.error("the batch could not be read (%s): %d bad row(s) found", why, len(bad))
        return self._park(bad)

    def _bad_rows(self, keys) -> list[tuple[int, str]]:
        """(seq, why) of the rows among `keys` that cannot be read, parsed, serialised or
        verified: what no central system can take, now or later."""
        bad = []
        for key in keys:
            try:
                raw = self.outbox.stored_json(key.seq)
            except sqlite3.DatabaseError as exc:
                bad.append((key.seq, f"unreadable: {exc}"))
                continue
            problem = row_problem(key, raw, self.settings.device.hash_alg)
            if problem:
                bad.append((key.seq, problem))
        return bad

    def _park(self, bad: list[tuple[int, str]]) -> int:
        self.outbox.park(bad, self._now_iso())
        for seq, why in bad:
            log.error("stored record seq %d parked on the device (%s); the rows behind it go on",
                      seq, why)
        self.stats["parked"] += len(bad)
        return len(bad)

    def _read_batch(self):
        """(rows, body) of the oldest pending records; None when none is pending."""
        if hasattr(self.profile, "HEAD"):  # the body straight from SQLite: less memory
            rows, body = self.outbox.next_raw_batch(self.batch_size, self.profile.HEAD,
                                                    self.profile.TAIL)
        else:
            rows = self.outbox.next_batch(self.batch_size)
            body = self.profile.encode(rows) if rows else b""
        return (rows, body) if rows else None

    def _deliver(self, rows, body: bytes):
        """POST one batch until it gets an answer (the retry policy): (outcomes, tries)."""
        tries = 0

        def attempt():
            nonlocal tries
            tries += 1
            try:
                return outcomes(self._call("POST", "/v1/records", body).body, rows)
            except Transient as exc:
                # the batch as a whole refused: look for rows that spoil it (a truncated
                # JSON column makes the body invalid); without one, retry as before
                if exc.status in BATCH_REFUSED:
                    bad = self._bad_rows(rows)
                    if bad:
                        raise BadRows(bad) from None
                raise

        return self.retrying(attempt), tries

    def _mark(self, rows, result, tries: int) -> None:
        self.outbox.mark(result, tries, self._now_iso())
        rejected = [(seq, error) for seq, status, error in result if status == "rejected"]
        for seq, error in rejected:
            log.warning("record seq %d rejected by the central system: %s (parked)", seq, error)
        self.stats["uploaded"] += len(result) - len(rejected)
        self.stats["rejected"] += len(rejected)
        self.stats["batches"] += 1
        log.debug("batch of %d delivered after %d tries", len(result), tries)

    # --- clock corrections ------------------------------------------------------------

    def correct_times(self) -> int:
        """Send corrected times for this boot's delivered records made with an
        unsynchronised clock, once real time is known. Returns how many were answered."""
        offset = self.time.offset()
        if offset is None:
            return 0
        done = 0
        while not self.stopper.is_set():
            candidates = self.outbox.correction_candidates(self.boot_id, self.batch_size)
            if not candidates:
                break
            times = [corrected(c.kind, c.invited_at, c.rated_at, c.mono_ms, offset) for c in candidates]
            items = [{"record_id": c.record_id, "invited_at": inv, "rated_at": rated,
                      "basis": offset.basis} for c, (inv, rated) in zip(candidates, times)]
            body = json.dumps({"corrections": items}, separators=(",", ":")).encode("utf-8")
            try:
                result = self.retrying_corrections(lambda: outcomes(
                    self._call("POST", "/v1/records/corrections", body).body, candidates))
            except Transient as exc:
                log.warning("time corrections not sent (%s); trying again later", exc)
                break
            self.outbox.mark_corrections(
                [(seq, inv, rated, offset.basis, status, error)
                 for (seq, status, error), (inv, rated) in zip(result, times)], self._now_iso())
            done += len(result)
        if done:
            self.stats["corrected"] += done
            log.info("sent corrected times of %d record(s) (basis %s)", done, offset.basis)
        return done

    # --- config, heartbeat, metrics ---------------------------------------------------

    def pull_config(self) -> bool:
        """Fetch the central config (If-None-Match); store it if good. False: no answer."""
        stored = self.outbox.central_config()
        headers = {"If-None-Match": stored[0]} if stored and stored[0] else {}
        try:
            answer = self._call("GET", f"/v1/devices/{quote(self.device_id)}/config", None, headers)
        except Transient as exc:
            if exc.status == 404:  # no_config: this device runs on its local settings
                log.info("the central system has no config for this device")
                return True
            log.warning("central config not fetched: %s", exc)
            return False
        if answer.status == 304:
            return True
        etag = answer.headers.get("ETag")
        try:
            good = central_config.validate(answer.body)
        except ConfigError as exc:
            problems = "; ".join(str(p) for p in exc.problems)
            log.error("central config %s refused, keeping the last good one: %s", etag, problems)
            return True
        if stored and stored[0] == etag and stored[1] == good:
            return True
        text = json.dumps(good, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        self.outbox.save_central_config(etag, text, self._now_iso())
        self.stats["configs"] += 1
        log.warning("central config %s stored; the terminal takes it up within seconds", etag)
        return True

    def heartbeat(self) -> bool:
        view = self.outbox.sync_view()
        body = {
            "device_id": self.device_id,
            "mode": self.settings.device.mode,
            "profile": self.settings.central.profile,
            "queue_depth": view["queue_depth"],
            "oldest_unsent_at": view["oldest_unsent_at"],
            "oldest_unsent_age_s": self._age_s(view["oldest_unsent_at"]),
            "rejected": view["rejected"],
            "parked": view["parked"],
            "schema_restored": self.outbox.schema_repair(),
            "last_upload_at": view["last_upload_at"],
            "last_success_at": (iso_at(self.central.last_success, CHINA)
                                if self.central.last_success else None),
            "clock": {**self.time.synced(), "signing_offset_s": self.central.skew_s,
                      "uncorrectable_records": self.outbox.uncorrectable(self.boot_id)},
            "versions": {"pingjia": _version(), "python": sys.version.split()[0]},
        }
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            self._call("POST", f"/v1/devices/{quote(self.device_id)}/heartbeat", data)
        except Transient as exc:
            log.warning("heartbeat not delivered: %s", exc)
            return False
        self.stats["heartbeats"] += 1
        return True

    def write_metrics(self, force: bool = False) -> None:
        path = self.settings.central.metrics_file
        if not path or (not force and time.monotonic() - self._metrics_at < METRICS_EVERY_S):
            return
        self._metrics_at = time.monotonic()
        try:
            totals = self.outbox.totals()
            view = self.outbox.sync_view()
            last = self.central.last_success
            if last is None and view["last_upload_at"]:
                last = datetime.fromisoformat(view["last_upload_at"]).timestamp()
            metrics.write_textfile(path, metrics.render(
                queue_depth=totals["pending"], oldest_unsent_age_s=self._age_s(view["oldest_unsent_at"]),
                uploaded=totals["delivered"], rejected=totals["rejected"], last_success=last,
                ratings=totals["ratings"]))
        except (OSError, sqlite3.Error) as exc:
            log.warning("metrics file %s not written: %s", path, exc)

    # --- helpers ----------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Optional[bytes] = None, headers=None):
        """A central call that keeps `last_error` (for STATUS) up to date."""
        try:
            answer = self.central.call(method, path, body, headers)
        except Transient as exc:
            self.last_error = str(exc)
            raise
        self.last_error = None
        return answer

    def _now(self) -> float:
        return self.central.wall() + self.central.skew_s  # the signing clock: best we know

    def _now_iso(self) -> str:
        return iso_at(self._now(), CHINA)

    def _age_s(self, iso: Optional[str]) -> float:
        if not iso:
            return 0.0
        return max(0.0, self._now() - datetime.fromisoformat(iso).timestamp())

    def _periodic(self) -> None:
        """Config pull, heartbeat, metrics and systemd pings, when each is due."""
        if self._in_periodic:
            return
        self._in_periodic = True
        try:
            c = self.settings.central
            now = time.monotonic()
            if now >= self._due["config"]:
                ok = self.pull_config()
                self._due["config"] = now + (c.config_pull_s if ok else min(c.config_pull_s, CONFIG_RETRY_S))
            if now >= self._due["heartbeat"]:
                self.heartbeat()
                self._due["heartbeat"] = now + c.heartbeat_s
            self.write_metrics()
            self._report()
        except (sqlite3.Error, StorageError) as exc:
            log.error("store error: %s", exc)
        finally:
            self._in_periodic = False

    def _next_due(self) -> float:
        scan = self.settings.central.scan_interval_s
        return max(0.0, min([scan] + [t - time.monotonic() for t in self._due.values()]))

    def _report(self) -> None:
        self._ping()
        text = self._status()
        if text != self._status_text:
            self._status_text = text
            self.notifier.status(text)

    def _status(self) -> str:
        view = self.outbox.sync_view()
        text = (f"queue {view['queue_depth']}, rejected {view['rejected']}, parked {view['parked']}, "
                f"last upload {view['last_upload_at'] or 'never'}")
        return text + (f"; retrying: {self.last_error}" if self.last_error else "")

    def _ping(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval and time.monotonic() - self._watchdog_at >= interval:
            self._watchdog_at = time.monotonic()
            self.notifier.watchdog()

    def _slices(self, seconds: float):
        """Wait in pieces short enough for the watchdog; yields each piece's length."""
        end = time.monotonic() + seconds
        while not self.stopper.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            yield min(left, self.notifier.watchdog_interval_s or left)
            self._ping()

    def _sleep(self, seconds: float) -> None:
        """A backoff pause: only stop() cuts it short (a wake-up must not)."""
        for piece in self._slices(seconds):
            select.select([self.stopper], [], [], piece)

    def _backoff_sleep(self, seconds: float) -> None:
        self._periodic()  # heartbeats and config keep their rhythm during an outage
        self._sleeper(seconds)

    def _wait(self, seconds: float) -> None:
        """Idle until a wake-up from the terminal, stop(), or the next due task."""
        for piece in self._slices(seconds):
            if self.wake is not None:
                if self.wake.wait(piece, self.stopper):
                    return
            elif select.select([self.stopper], [], [], piece)[0]:
                return
