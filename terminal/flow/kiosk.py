"""The self-service kiosk's flow: a card lookup in front of the window's rating flow.

    Idle (请刷身份证) --CardRead--> LookingUp --LookupDone--> Choosing --choose--> Invited
                                                    (one business: straight to Invited)

From Invited on everything is the window's: tags for bad levels, the commit before the
thanks, unrated records for timeouts and superseded invitations. What the kiosk adds:

- The ID number (`cert_no`) arrives in CardRead and leaves in the StartLookup effect; no
  state holds it. The screens show the masked name only.
- A lookup answer for another lookup (`lookup_id`) than the one on screen is stale and
  dropped; a lookup that never answers times out here too.
- Businesses rated before (in the store, or held in memory while the store fails) are
  not offered again (一次一评).
- A chosen business is rated with channel "kiosk" and real_name true (the person
  identified with a card; the record holds nothing of the card).
- Choosing nothing, or leaving, records nothing: nobody was invited to rate a business
  until one was chosen. A kiosk-app invitation (local API) supersedes a lookup or a
  choice in progress and goes straight to rating, with real_name false.
- A card session ends as soon as another card is read, and its business list after
  `list_ms` without a key press: the holder took the card away long ago (the reader needs
  it only for the read), so a list or a rating screen left standing would let the next
  person rate in the holder's name. A card read anywhere (a message, the thanks screen,
  a lookup, a list, the rating of a card holder's business) starts a new lookup, and the
  answer to an older one is dropped as stale; a business already chosen becomes unrated
  `superseded` (or keeps the bad rating already pressed), like a superseded invitation.
  Only a kiosk-app invitation being rated ignores cards: it is nobody's real-name session.
- Every message screen (nothing found, network down, unreadable or unsupported card,
  reader fault) goes back to idle after `fault_ms` or at a key press.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from terminal.clock import Now
from terminal.flow import window
from terminal.flow.moves import go
from terminal.flow.model import (CardFailed, CardRead, ConfigChanged, Finished, Hold, Idle,
                                 Info, Invited, LookupDone, Press, Reply, SetWindow, Sound, Staff,
                                 StartLookup, State, Thanks, Tick, Visit)

# What the buttons do on the business list, by position left to right (like TAG_ROLES):
# the middle and the rightmost key both take the business under the cursor.
CHOOSE_ROLES = ("up", "down", "choose", "exit", "choose")
LOOKUP_GRACE_MS = 2_000   # the flow waits this much longer than the lookup's own timeout
KIOSK_HINT = "请先刷身份证，查询待评价业务"


# --- screens ------------------------------------------------------------------------

@dataclass(frozen=True)
class LookingUp:
    """A card was read; its holder's businesses are being looked up."""
    lookup_id: int
    masked_name: str
    card_type: str
    deadline: int


@dataclass(frozen=True)
class Choosing:
    """The person picks the business to rate."""
    masked_name: str
    options: tuple  # of Finished
    deadline: int
    cursor: int = 0


@dataclass(frozen=True)
class Notice:
    """A message (nothing found, network down, card not read, ...) until a key or timeout.

    `kind`: "not_found", "unreadable", "unsupported", "reader_fault", or the lookup's
    error ("network", "timeout", "refused", "server", "unavailable")."""
    kind: str
    deadline: int


KIOSK_SCREENS = (LookingUp, Choosing, Notice)
KIOSK_EVENTS = (CardRead, CardFailed, LookupDone)
# Screens on which a card may start a new session: nobody is rating. Looking up and
# choosing count too: the card may be another person's, and nothing is recorded yet.
_OPEN_TO_CARDS = (Idle, Notice, Thanks, Info, LookingUp, Choosing)
# Screens a failed read or a reader fault may replace: a lookup or a choice in progress
# goes on (the reader is not needed for it any more).
_OPEN_TO_FAILURES = (Idle, Notice, Thanks, Info)


# --- the flow's entry points (terminal.flow exports these) ---------------------------

def step(state: State, event, now: Now):
    if state.config.mode != "kiosk":
        if isinstance(event, KIOSK_EVENTS):
            return state, ()  # a window has no reader; a late event after a mode change
        if isinstance(event, ConfigChanged):
            return _config_changed(state, event, now)
        return window.step(state, event, now)
    handler = _HANDLERS.get(type(event))
    if handler is None:
        return window.step(state, event, now)
    return handler(state, event, now)


def next_deadline(state: State):
    due = window.next_deadline(state)
    if isinstance(state.screen, KIOSK_SCREENS):
        due = min(due, state.screen.deadline)
    return due


def leds(state: State) -> frozenset:
    if isinstance(state.screen, Choosing) and not state.storage_error:
        return frozenset(state.config.order)
    return window.leds(state)


# --- cards and lookups ------------------------------------------------------------------

def _card_read(state: State, ev: CardRead, now: Now):
    cfg = state.config
    visit = window.open_visit(state)
    real_name = visit is not None and visit.real_name
    if state.storage_error or state.paused or not (isinstance(state.screen, _OPEN_TO_CARDS)
                                                   or real_name):
        return state, ()  # an app invitation is being rated, or the kiosk cannot rate now
    if ev.card_type not in cfg.card_types:
        if not isinstance(state.screen, _OPEN_TO_FAILURES):
            return state, ()  # like a failed read: the lookup or choice in progress goes on
        return _notice(state, "unsupported", now), ()
    effects: tuple = ()
    if real_name:  # the holder's session ends: the card on the reader is someone's new one
        state, effects = window.supersede(state, now)
    n = state.lookups + 1
    screen = LookingUp(n, ev.masked_name, ev.card_type,
                       now.mono_ms + cfg.lookup_ms + LOOKUP_GRACE_MS)
    state = replace(go(state, screen, now), lookups=n)
    return state, effects + (StartLookup(n, ev.cert_type, ev.cert_no, cfg.lookup_ms),)


def _card_failed(state: State, ev: CardFailed, now: Now):
    if state.storage_error or state.paused or not isinstance(state.screen, _OPEN_TO_FAILURES):
        return state, ()
    return _notice(state, ev.reason, now), (Sound("error"),)


def _lookup_done(state: State, ev: LookupDone, now: Now):
    screen = state.screen
    if not isinstance(screen, LookingUp) or screen.lookup_id != ev.lookup_id:
        return state, ()  # stale: the flow has moved on (timeout, invitation, new card)
    if ev.error:
        return _notice(state, ev.error, now), (Sound("error"),)
    options = _not_yet_rated(state, ev)
    if not options:
        return _notice(state, "not_found", now), (Sound("not_found"),)
    if len(options) == 1:
        return _invite(state, options[0], now)
    choosing = Choosing(screen.masked_name, options, now.mono_ms + state.config.list_ms)
    return go(state, choosing, now), (Sound("invite"),)


def _not_yet_rated(state: State, ev: LookupDone) -> tuple:
    """The businesses found, less those rated here (stored or held in memory), once each."""
    rated = set(ev.stored_rated)
    rated |= {d.get("project_no") for d in state.pending
              if isinstance(d, dict) and d.get("kind") == "rating"}
    options = []
    for found in ev.businesses:
        pn = found.business.project_no
        if pn not in rated:
            rated.add(pn)
            options.append(found)
    return tuple(options)


def _invite(state: State, found: Finished, now: Now):
    """The chosen business, on the window's rating screen."""
    cfg = state.config
    staff = Staff("", found.staff_name) if found.staff_name else None
    visit = Visit(visit_id=f"kiosk-{now.wall:%Y%m%d%H%M%S}-{state.lookups}-{now.mono_ms}",
                  items=(found.business,), staff=staff, invited_at=now.iso(),
                  invited_mono=now.mono_ms, clock_synced=now.synced, channel="kiosk",
                  real_name=True)
    return (go(state, Invited(visit, now.mono_ms + cfg.invite_ms), now),
            (window.opened(cfg, visit), Sound("invite")))


def _notice(state: State, kind: str, now: Now) -> State:
    return go(state, Notice(kind, now.mono_ms + state.config.fault_ms), now)


# --- buttons ----------------------------------------------------------------------------

def _press(state: State, ev, now: Now):
    screen = state.screen
    cfg = state.config
    if state.storage_error or ev.button not in cfg.order:
        return state, ()
    if isinstance(screen, Choosing):
        return _choose_key(state, screen, cfg.role_of(ev.button, CHOOSE_ROLES), now)
    if isinstance(screen, Notice):
        return go(state, Idle(), now), ()
    if isinstance(screen, LookingUp):
        return state, ()
    if isinstance(screen, Idle) and not state.paused and not isinstance(ev, Hold):
        hint = cfg.text("kiosk_hint") or KIOSK_HINT
        return replace(state, hint=hint, hint_until=now.mono_ms + cfg.hint_ms), (Sound("swipe_card"),)
    return window.step(state, ev, now)


def _choose_key(state: State, screen: Choosing, role: str, now: Now):
    n = len(screen.options)
    if role == "choose":
        return _invite(state, screen.options[screen.cursor % n], now)
    if role == "exit":
        return go(state, Idle(), now), ()
    move = -1 if role == "up" else 1
    moved = replace(screen, cursor=(screen.cursor + move) % n,
                    deadline=now.mono_ms + state.config.list_ms)
    return go(state, moved, now), ()


# --- time, window state, configuration ----------------------------------------------------

def _tick(state: State, ev: Tick, now: Now):
    state, effects = window.step(state, ev, now)
    screen = state.screen
    if isinstance(screen, KIOSK_SCREENS) and now.mono_ms >= screen.deadline:
        if isinstance(screen, LookingUp):   # the lookup never answered
            return _notice(state, "timeout", now), effects + (Sound("error"),)
        state = go(state, Idle(), now)
    return state, effects


def _set_window(state: State, ev: SetWindow, now: Now):
    busy = isinstance(state.screen, (LookingUp, Choosing))
    state, effects = window.step(state, ev, now)
    if busy and ev.paused:  # a pause never cuts off a person looking up or choosing
        effects = tuple(replace(e, body={**e.body, "effective": "after_current"})
                        for e in effects if isinstance(e, Reply))
    return state, effects


def _config_changed(state: State, ev: ConfigChanged, now: Now):
    state, effects = window.step(state, ev, now)
    if ev.config.mode != "kiosk" and isinstance(state.screen, KIOSK_SCREENS):
        state = go(state, Idle(), now)
    return state, effects


_HANDLERS = {
    CardRead: _card_read, CardFailed: _card_failed, LookupDone: _lookup_done,
    Press: _press, Hold: _press, Tick: _tick, SetWindow: _set_window,
    ConfigChanged: _config_changed,
}
