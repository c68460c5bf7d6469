"""The window evaluator's flow: `step(state, event, now) -> (state, effects)`.

Pure: no clock, no I/O. The service feeds it events and carries out its effects; the
screen and the LEDs are functions of the state it returns.

Rules it keeps (docs/flow.md has the diagram):
- A record is never made up: a level is recorded only when its button was pressed.
  An invitation that ends without a press is an `unrated` record with its reason.
- A person who pressed a bad level and then left, or whose invitation was cancelled or
  superseded while they chose reasons, still gave that rating: it is recorded with the
  reasons chosen so far, or `tags_missing` when there were none.
- The thanks screen comes only after the store confirms the commit (`Stored`).
- A storage failure keeps the drafts in memory and retries; nothing is dropped.
- A visit is remembered durably when it opens (`Open`, committed with the records it
  supersedes before the 201 goes out): a crash, a power cut or a stop ends it as
  `interrupted`, never as nothing.
"""
from __future__ import annotations

from dataclasses import replace

from config import levels
from terminal.clock import Now
from terminal.flow import drafts, links, testing
from terminal.flow.moves import error, go, reply
from terminal.flow.model import (
    Append, Cancel, ConfigChanged, Health, Hold, Idle, Info, Invite, Invited, Open, Press,
    Saving, SetWindow, Shutdown, SignIn, SignOut, Sound, State, StoreFailed, Stored, Tagging,
    Testing, Thanks, Tick, Visit)

BAD_LEVELS = levels.BAD


def initial(config, now: Now) -> State:
    return State(config=config, page_at=now.mono_ms + config.page_ms)


def open_visit(state: State):
    """The invitation the person may still rate, if any."""
    screen = state.screen
    return screen.visit if isinstance(screen, (Invited, Tagging)) else None


def supersede(state: State, now: Now):
    """(state, effects) with the open invitation ended as when a new one takes the screen:
    unrated `superseded`, or the bad rating already given; the screen is left to the caller."""
    effects: list = []
    records, _ = _close(state, now, "superseded")
    state, _ = _store(state, records, effects)
    return state, tuple(effects)


def next_deadline(state: State):
    """The monotonic ms at which the flow wants a Tick, or None."""
    times = [state.page_at]
    screen = state.screen
    if isinstance(screen, (Invited, Tagging, Thanks, Info, Testing)):
        times.append(screen.deadline)
    if state.hint_until:
        times.append(state.hint_until)
    if state.fault_until:
        times.append(state.fault_until)
    if state.pending:
        times.append(state.retry_at)
    if state.qr_until:
        times.append(state.qr_until)
    return min(t for t in times if t)


def leds(state: State) -> frozenset:
    """Buttons whose LED is lit: those that do something now."""
    screen = state.screen
    if isinstance(screen, Testing):
        return testing.leds(screen, state.config.order)
    if state.storage_error:
        return frozenset()
    if isinstance(screen, (Invited, Tagging)):
        return frozenset(state.config.order)
    if isinstance(screen, (Saving, Thanks)) and screen.level:
        return frozenset({screen.level})
    return frozenset()


def fail(state: State, now: Now, error: str) -> State:
    """Failsafe: an internal error shows the fault screen for a while; the flow goes on."""
    return replace(state, fault=error[:200], fault_until=now.mono_ms + state.config.fault_ms)


def step(state: State, event, now: Now):
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"the flow has no handler for {type(event).__name__}")
    return handler(state, event, now)


# --- helpers -----------------------------------------------------------------

def _store(state: State, records: tuple, effects: list):
    """Hand records to the store, behind any still waiting for it; True if sent now."""
    if not records:
        return state, False
    if state.pending or state.storage_error:
        return replace(state, pending=state.pending + records), False
    effects.append(Append(records))
    return state, True


def _finish(state: State, records: tuple, level, now: Now, effects: list) -> State:
    """Store the outcome of a visit; thank the person once the store has it.

    While the store is failing the records wait in memory and the person is not thanked:
    the fault screen says what is wrong instead.
    """
    visit = open_visit(state)
    qr = links.urls(state.config, visit) if visit is not None else ()
    state, sent = _store(state, records, effects)
    return go(state, Saving(level, qr) if sent else Idle(), now)


def _close(state: State, now: Now, reason: str):
    """End the open invitation: unrated with `reason`, or the bad rating already given."""
    screen = state.screen
    cfg = state.config
    if isinstance(screen, Invited):
        return drafts.unrated(cfg, screen.visit, reason), None
    if isinstance(screen, Tagging):
        return _tagging_records(cfg, screen), screen.level
    return (), None


def _tagging_records(cfg, screen: Tagging):
    return drafts.rating(cfg, screen.visit, screen.level, rated_at=screen.rated_at,
                         rated_mono=screen.rated_mono, synced=screen.rated_synced,
                         tags=drafts.chosen_tags(screen.options, screen.selected))


# --- events from the local API ----------------------------------------------------

def _invite(state: State, ev: Invite, now: Now):
    cfg = state.config
    current = open_visit(state)
    if current is not None and current.visit_id == ev.visit_id:
        if tuple(ev.items) != current.items:
            return state, (error(ev.request_id, 409, "visit_conflict",
                                  f"visit {ev.visit_id} is open with other businesses; a retry "
                                  "must repeat the same items, a new invitation needs a new "
                                  "visit_id"),)
        return state, (reply(ev.request_id, 201, {"visit_id": ev.visit_id, "state": "open"}),)
    if isinstance(state.screen, Testing):
        return state, (error(ev.request_id, 409, "testing", "a technician is testing the "
                              "device (`pingjia test`); invite again when the test is over"),)
    refusal = _once_only(state, ev)
    if refusal is not None:
        return state, (refusal,)
    long_url = links.too_long(cfg, ev.items)
    if long_url is not None:
        w, h = cfg.panel
        return state, (error(ev.request_id, 400, "rate_url_too_long",
                              f"rate_url of business {long_url.project_no} is too long for a QR "
                              f"code on this {w}x{h} panel; give a shorter URL",
                              field="items.rate_url", project_no=long_url.project_no),)
    if state.storage_error:
        return state, (error(ev.request_id, 503, "storage_failed",
                              "the device cannot store records: " + state.storage_error),)
    if state.paused:
        return state, (error(ev.request_id, 409, "window_paused", "the window is paused"),)
    staff = ev.staff or state.staff
    if cfg.mode == "window" and cfg.require_staff and staff is None:
        return state, (error(ev.request_id, 409, "no_staff",
                              "no staff member is signed in and the invitation names none"),)
    effects: list = []
    old, level = _close(state, now, "superseded")
    state, _ = _store(state, old, effects)
    body = {"visit_id": ev.visit_id, "state": "open"}
    if current is not None:  # say what became of the one this replaces
        body["superseded"] = {"visit_id": current.visit_id,
                              "state": "unrated" if level is None else "rated"}
    follow_ups = frozenset(b.project_no for b in ev.items
                           if ev.follow_up and b.project_no in ev.stored_rated)
    visit = Visit(visit_id=ev.visit_id, items=tuple(ev.items), staff=staff,
                  invited_at=now.iso(), invited_mono=now.mono_ms, clock_synced=now.synced,
                  channel="kiosk" if cfg.mode == "kiosk" else "window", follow_ups=follow_ups)
    state = go(state, Invited(visit, now.mono_ms + cfg.invite_ms), now)
    effects += [opened(cfg, visit), Sound("invite"), reply(ev.request_id, 201, body)]
    return state, tuple(effects)


def opened(cfg, visit: Visit) -> Open:
    """The effect that makes a new visit durable: its records should it be interrupted."""
    return Open(drafts.unrated(cfg, visit, "interrupted"))


def _once_only(state: State, ev: Invite):
    """Refuse what would break 一次一评: reopening a closed visit, rating a business twice
    (three times with `follow_up`, 追加评价: a stored rating may get one follow-up).

    Ratings not yet in the store count too: reasons being chosen, drafts held while the
    storage fails; a rating not yet stored cannot be followed up yet.
    """
    held = [d for d in state.pending if isinstance(d, dict)]
    closed = ev.stored_kind or next((d["kind"] for d in held if d.get("visit_id") == ev.visit_id), None)
    if closed:
        return error(ev.request_id, 409, "visit_closed",
                      f"visit {ev.visit_id} is already closed ({closed}); use a new visit_id")
    underway = ({b.project_no for b in state.screen.visit.items}
                if isinstance(state.screen, Tagging) else set())
    held_rated = {d.get("project_no") for d in held if d.get("kind") == "rating"}
    for item in ev.items:
        pn = item.project_no
        if pn in underway or pn in held_rated or (
                pn in ev.stored_rated and (not ev.follow_up or pn in ev.stored_follow_ups)):
            return error(ev.request_id, 409, "already_rated",
                          f"business {pn} has already been rated (一次一评: one rating per "
                          "service)", project_no=pn)
    return None


def _cancel(state: State, ev: Cancel, now: Now):
    visit = open_visit(state)
    if visit is None:
        return state, (error(ev.request_id, 404, "no_open_invitation",
                              "there is no open invitation to cancel"),)
    effects: list = []
    records, level = _close(state, now, "cancelled")
    state = _finish(state, records, level, now, effects)
    effects.append(reply(ev.request_id, 200, {"visit_id": visit.visit_id,
                                               "state": "rated" if level else "unrated"}))
    return state, tuple(effects)


def _sign_in(state: State, ev: SignIn, now: Now):
    state = replace(state, staff=ev.staff)
    return state, (reply(ev.request_id, 200, {"staff": {"id": ev.staff.id, "name": ev.staff.name}}),)


def _sign_out(state: State, ev: SignOut, now: Now):
    return replace(state, staff=None), (reply(ev.request_id, 200, {"staff": None}),)


def _set_window(state: State, ev: SetWindow, now: Now):
    was_paused = state.paused
    state = replace(state, paused=ev.paused, pause_message=ev.message if ev.paused else "")
    busy = open_visit(state) is not None or isinstance(state.screen, (Saving, Thanks))
    if isinstance(state.screen, Info):
        state = go(state, Idle(), now)
    # A pause never cuts a person off: it takes effect once the current rating is over.
    body = {"state": "paused" if ev.paused else "open",
            "effective": "after_current" if ev.paused and busy else "now"}
    said = (Sound("paused"),) if ev.paused and not busy and not was_paused else ()
    return state, said + (reply(ev.request_id, 200, body),)


# --- buttons ----------------------------------------------------------------------

def _press(state: State, ev, now: Now):
    screen = state.screen
    cfg = state.config
    if state.storage_error or ev.button not in cfg.order:
        return state, ()
    if isinstance(screen, Invited):
        return _rate(state, screen, ev.button, now)
    if isinstance(screen, Tagging):
        return _tag_key(state, screen, cfg.role_of(ev.button), now)
    if isinstance(screen, Info):
        return go(state, Idle(), now), ()
    if isinstance(screen, Idle) and not state.paused:
        if isinstance(ev, Hold):
            return go(state, Info(now.mono_ms + cfg.info_ms), now), ()
        return replace(state, hint=cfg.text("idle_hint"), hint_until=now.mono_ms + cfg.hint_ms), ()
    return state, ()  # saving, thanks, paused: a press means nothing


def _rate(state: State, screen: Invited, level: int, now: Now):
    cfg = state.config
    options = cfg.tags.for_level(level) if cfg.tags else ()
    if level in BAD_LEVELS and options:
        tagging = Tagging(visit=screen.visit, level=level, rated_at=now.iso(),
                          rated_mono=now.mono_ms, rated_synced=now.synced, options=options,
                          deadline=now.mono_ms + cfg.tags_ms)
        return go(state, tagging, now), (Sound("choose_reason"),)
    records = drafts.rating(cfg, screen.visit, level, rated_at=now.iso(),
                            rated_mono=now.mono_ms, synced=now.synced)
    effects: list = [Sound("press")]
    return _finish(state, records, level, now, effects), tuple(effects)


def _tag_key(state: State, screen: Tagging, role: str, now: Now):
    cfg = state.config
    n = len(screen.options)
    deadline = now.mono_ms + cfg.tags_ms
    if role == "up":
        screen = replace(screen, cursor=(screen.cursor - 1) % n)
    elif role == "down":
        screen = replace(screen, cursor=(screen.cursor + 1) % n)
    elif role == "toggle":
        code = screen.options[screen.cursor].code
        selected = screen.selected ^ {code}
        screen = replace(screen, selected=frozenset(selected))
    elif role == "back":
        return go(state, Invited(screen.visit, now.mono_ms + cfg.invite_ms), now), ()
    elif role == "submit":
        if not screen.selected:
            return go(state, replace(screen, warn=True, deadline=deadline), now), ()
        effects: list = []
        state = _finish(state, _tagging_records(cfg, screen), screen.level, now, effects)
        return state, tuple(effects)
    return go(state, replace(screen, deadline=deadline, warn=False), now), ()


# --- time and storage ---------------------------------------------------------------

def _tick(state: State, ev: Tick, now: Now):
    t = now.mono_ms
    cfg = state.config
    effects: list = []
    if state.fault_until and t >= state.fault_until:
        state = replace(state, fault="", fault_until=0)
    if state.hint_until and t >= state.hint_until:
        state = replace(state, hint="", hint_until=0)
    if state.qr_until and t >= state.qr_until:
        state = replace(state, qr=(), qr_until=0)
    if state.pending and t >= state.retry_at:
        effects.append(Append(state.pending))
        state = replace(state, pending=(), retry_at=0)
    screen = state.screen
    if isinstance(screen, (Invited, Tagging)) and t >= screen.deadline:
        records, level = _close(state, now, "timeout")
        state = _finish(state, records, level, now, effects)
    elif isinstance(screen, (Thanks, Info)) and t >= screen.deadline:
        state = go(state, Idle(), now)
    if state.page_at and t >= state.page_at:
        state = replace(state, page=state.page + 1, page_at=t + cfg.page_ms)
    return state, tuple(effects)


def _stored(state: State, ev: Stored, now: Now):
    effects: list = []
    if state.pending:  # the store works again: send what waited, in order
        effects.append(Append(state.pending))
        state = replace(state, pending=(), retry_at=0)
    elif state.storage_error:
        state = replace(state, storage_error="")
    screen = state.screen
    if isinstance(screen, Saving):
        if screen.level:
            effects.append(Sound("thanks"))
            state = go(state, Thanks(screen.level, now.mono_ms + state.config.thanks_ms,
                                      screen.qr), now)
        else:   # unrated: the person may rate later on the platform (扫码评价)
            until = now.mono_ms + state.config.qr_ms if screen.qr else 0
            state = go(replace(state, qr=screen.qr, qr_until=until), Idle(), now)
    return state, tuple(effects)


def _store_failed(state: State, ev: StoreFailed, now: Now):
    state = replace(state, pending=tuple(ev.drafts) + state.pending,
                    storage_error=ev.error[:200] or "storage error",
                    retry_at=now.mono_ms + state.config.retry_ms)
    if isinstance(state.screen, Saving):
        state = go(state, Idle(), now)
    return state, (Sound("error"),)


def _shutdown(state: State, ev: Shutdown, now: Now):
    records, _ = _close(state, now, "interrupted")
    held = state.pending + records
    state = replace(go(state, Idle(), now), pending=(), retry_at=0)
    return state, ((Append(held),) if held else ())


def _config_changed(state: State, ev: ConfigChanged, now: Now):
    effects = () if ev.request_id is None else (reply(ev.request_id, 200, {}),)
    return replace(state, config=ev.config), effects


def _health(state: State, ev: Health, now: Now):
    return replace(state, health=dict(ev.values)), ()


_HANDLERS = {
    Invite: _invite, Cancel: _cancel, SignIn: _sign_in, SignOut: _sign_out,
    SetWindow: _set_window, Press: _press, Hold: _press, Tick: _tick, Stored: _stored,
    StoreFailed: _store_failed, ConfigChanged: _config_changed, Health: _health,
    Shutdown: _shutdown,
}
# A technician's hardware test (StartTest, StopTest; presses and ticks while it runs).
_HANDLERS.update(testing.handlers(_HANDLERS))
