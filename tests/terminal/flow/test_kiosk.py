"""The kiosk's flow, step by step: card → lookup → choose → rate, every message screen,
timeouts, kiosk-app invitations arriving mid-session, and the ID number never in a state.

Pure: the real `step` driven by tests/terminal/flowkit.py's Flow (which plays the
service: answers Append, fills in the store's facts); time is a FakeClock.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from terminal import flow
from terminal.flow import (CHOOSE_ROLES, CardFailed, CardRead, Choosing, Finished,
                           LookingUp, LookupDone, Notice, StartLookup)
from terminal.flow.kiosk import KIOSK_HINT, LOOKUP_GRACE_MS
from tests.terminal.flowkit import Flow, business, config

CERT_NO = "11010519491231002X"
NAME = "张三"
MASKED = "张*"


def kiosk(**kw) -> Flow:
    return Flow(config(mode="kiosk", **kw), staff=None)


def found(n: int, name: str = "不动产登记", dept: str = "区自然资源和规划局") -> Finished:
    b = replace(business(n, name), dept_name=dept)
    return Finished(b, staff_name="陈静", finished_at=f"2026-11-{10 + n % 10:02d}T10:00:00+08:00")


FOUND = (found(1, "不动产登记"), found(2, "社保卡申领", "区人力社保局"),
         found(3, "营业执照变更", "区市场监管局"))


def card(f: Flow, card_type: str = "resident", cert_no: str = CERT_NO) -> tuple:
    return f.send(CardRead(card_type, "111", MASKED, cert_no))


def answer(f: Flow, *businesses, error=None, lookup_id=None):
    lid = f.lookups[-1].lookup_id if lookup_id is None else lookup_id
    return f.send(LookupDone(lid, tuple(businesses), error))


def role(f: Flow, *roles):
    for r in roles:
        f.send(flow.Press(f.state.config.order[CHOOSE_ROLES.index(r)]))


def strings_in(obj, seen=None):
    """Every string reachable from `obj` through dataclass fields, mappings and sequences."""
    seen = seen if seen is not None else set()
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for fld in dataclasses.fields(obj):
            yield from strings_in(getattr(obj, fld.name), seen)
    elif isinstance(obj, dict) or hasattr(obj, "items") and callable(obj.items):
        for k, v in obj.items():
            yield from strings_in(k, seen)
            yield from strings_in(v, seen)
    elif isinstance(obj, (tuple, list, set, frozenset)):
        for v in obj:
            yield from strings_in(v, seen)
    else:
        for v in getattr(obj, "__dict__", {}).values():
            yield from strings_in(v, seen)


def holds_id(state, cert_no: str = CERT_NO) -> bool:
    return any(cert_no in s for s in strings_in(state)) or cert_no in repr(state)


# --- idle ------------------------------------------------------------------------------

def test_kiosk_idle_asks_for_the_card_and_a_press_explains_why():
    f = kiosk()
    assert f.screen == "Idle" and flow.leds(f.state) == frozenset()
    f.press(5)
    assert f.state.hint == KIOSK_HINT and f.records == []
    f.advance(f.state.config.hint_ms)
    assert f.state.hint == ""


def test_kiosk_idle_hold_still_opens_the_technician_screen():
    f = kiosk()
    f.send(flow.Hold(5))
    assert f.screen == "Info"


# --- the card and the lookup ---------------------------------------------------------------

def test_a_read_card_shows_the_masked_name_and_starts_one_lookup():
    f = kiosk()
    effects = card(f)
    screen = f.state.screen
    assert isinstance(screen, LookingUp) and screen.masked_name == MASKED
    starts = [e for e in effects if isinstance(e, StartLookup)]
    assert len(starts) == 1
    assert starts[0].cert_no == CERT_NO and starts[0].cert_type == "111"
    assert starts[0].timeout_ms == f.state.config.lookup_ms
    assert starts[0].lookup_id == screen.lookup_id == f.state.lookups


def test_the_id_number_is_in_no_state_and_no_repr():
    f = kiosk()
    effects = card(f)
    assert not holds_id(f.state)
    assert CERT_NO not in repr(effects)
    assert CERT_NO not in repr(CardRead("resident", "111", MASKED, CERT_NO))
    answer(f, *FOUND)
    role(f, "down", "choose")
    f.press(2)
    assert not holds_id(f.state)
    assert all(CERT_NO not in str(r) and NAME not in str(r) for r in f.records)


def test_several_businesses_are_listed_and_the_buttons_choose_one():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    screen = f.state.screen
    assert isinstance(screen, Choosing) and screen.options == FOUND and screen.cursor == 0
    assert screen.masked_name == MASKED
    assert flow.leds(f.state) == frozenset(f.state.config.order)
    role(f, "down", "down")
    assert f.state.screen.cursor == 2
    role(f, "down")
    assert f.state.screen.cursor == 0, "the list wraps around"
    role(f, "up")
    assert f.state.screen.cursor == 2
    role(f, "choose")
    screen = f.state.screen
    assert isinstance(screen, flow.Invited)
    assert screen.visit.items == (FOUND[2].business,)
    assert screen.visit.channel == "kiosk" and screen.visit.real_name is True
    assert screen.visit.staff.name == "陈静"
    assert f.records == []


@pytest.mark.parametrize("key", ["choose", "submit"])
def test_both_choose_keys_take_the_business_under_the_cursor(key):
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "down")
    f.send(flow.Press(f.state.config.order[CHOOSE_ROLES.index("choose") if key == "choose"
                                           else len(CHOOSE_ROLES) - 1]))
    assert f.state.screen.visit.items == (FOUND[1].business,)


def test_a_chosen_business_is_rated_like_at_a_window_with_channel_kiosk_and_real_name():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.press(4)
    assert f.screen == "Thanks"
    (r,) = f.records
    assert r["kind"] == "rating" and r["level"] == 4 and r["score"] == 8
    assert r["channel"] == "kiosk" and r["real_name"] is True
    assert r["project_no"] == FOUND[0].business.project_no
    assert r["task_name"] == "不动产登记" and r["dept_name"] == "区自然资源和规划局"
    assert r["staff_name"] == "陈静"
    f.advance(f.state.config.thanks_ms)
    assert f.screen == "Idle"


def test_a_bad_rating_at_the_kiosk_asks_for_reasons_like_a_window():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.press(1)
    assert f.screen == "Tagging"
    order = f.state.config.order
    f.send(flow.Press(order[flow.TAG_ROLES.index("toggle")]))
    f.send(flow.Press(order[flow.TAG_ROLES.index("submit")]))
    (r,) = f.records
    assert r["level"] == 1 and len(r["tags"]) == 1 and r["tags_missing"] is False
    assert r["channel"] == "kiosk" and r["real_name"] is True


def test_one_business_found_goes_straight_to_rating():
    f = kiosk()
    card(f)
    answer(f, FOUND[1])
    assert f.screen == "Invited"
    assert f.state.screen.visit.items == (FOUND[1].business,)
    assert "invite" in f.sounds


def test_leaving_the_list_records_nothing():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "exit")
    assert f.screen == "Idle" and f.records == []


def test_a_list_nobody_chooses_from_times_out_without_a_record():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    f.advance(f.state.config.list_ms - 1)
    assert f.screen == "Choosing"
    role(f, "down")  # a key press restarts the wait
    f.advance(f.state.config.list_ms - 1)
    assert f.screen == "Choosing"
    f.advance(1)
    assert f.screen == "Idle" and f.records == []


def test_a_list_left_standing_ends_after_the_short_list_time_not_the_tag_time():
    """The card left the reader at once: the next person must not find the list usable."""
    from config import settings as schema
    from config.tags import builtin

    assert flow.FlowConfig.from_settings(schema.defaults(), builtin()).list_ms == 15_000
    f = kiosk(list_ms=7_000, tags_ms=30_000)
    card(f)
    answer(f, *FOUND)
    f.advance(7_000)
    assert f.screen == "Idle" and f.records == []
    f.press(5)
    assert f.screen == "Idle" and f.records == [], "a key after the list ended rates nothing"


def test_a_chosen_business_nobody_rates_is_recorded_unrated():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.advance(f.state.config.invite_ms)
    (r,) = f.records
    assert r["kind"] == "unrated" and r["unrated_reason"] == "timeout"
    assert r["channel"] == "kiosk" and r["real_name"] is True and r["level"] is None
    assert f.screen == "Idle"


# --- the message screens ---------------------------------------------------------------------

def test_nothing_found_has_its_own_screen_and_returns_to_idle():
    f = kiosk()
    card(f)
    answer(f)
    assert f.state.screen == Notice("not_found", f.state.screen.deadline)
    f.advance(f.state.config.fault_ms - 1)
    assert f.screen == "Notice"
    f.advance(1)
    assert f.screen == "Idle" and f.records == []


@pytest.mark.parametrize("error", ["network", "timeout", "refused", "server", "unavailable",
                                   "storage"])
def test_a_failed_lookup_says_why_and_returns_to_idle(error):
    f = kiosk()
    card(f)
    answer(f, error=error)
    assert isinstance(f.state.screen, Notice) and f.state.screen.kind == error
    assert f.sounds[-1] == "error"
    f.press(3)  # any key goes back at once
    assert f.screen == "Idle" and f.records == []


def test_a_lookup_that_never_answers_times_out_and_its_late_answer_is_dropped():
    f = kiosk()
    card(f)
    lid = f.lookups[-1].lookup_id
    f.advance(f.state.config.lookup_ms + LOOKUP_GRACE_MS - 1)
    assert f.screen == "LookingUp"
    f.advance(1)
    assert f.state.screen.kind == "timeout"
    answer(f, *FOUND, lookup_id=lid)
    assert f.screen == "Notice" and f.state.screen.kind == "timeout"
    f.advance(f.state.config.fault_ms)
    assert f.screen == "Idle"
    answer(f, *FOUND, lookup_id=lid)
    assert f.screen == "Idle"


def test_keys_do_nothing_while_looking_up():
    f = kiosk()
    card(f)
    before = f.state
    f.press(1, 2, 3, 4, 5)
    assert f.state.screen == before.screen and f.records == []


@pytest.mark.parametrize("reason", ["unreadable", "unsupported", "reader_fault"])
def test_card_failures_each_have_their_screen(reason):
    f = kiosk()
    f.send(CardFailed(reason, "detail"))
    assert f.state.screen.kind == reason and f.sounds[-1] == "error"
    assert f.lookups == []
    f.advance(f.state.config.fault_ms)
    assert f.screen == "Idle"


def test_a_card_type_the_settings_do_not_allow_is_refused_without_a_lookup():
    f = kiosk(card_types=("resident",))
    card(f, "foreign_2023")
    assert f.state.screen.kind == "unsupported" and f.lookups == []
    card(f, "resident")
    assert f.screen == "LookingUp"


def test_businesses_rated_before_are_not_offered_again():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.press(5)
    f.advance(f.state.config.thanks_ms)
    card(f)
    answer(f, *FOUND, FOUND[1])  # the lookup repeats one: offered once
    assert [o.business.project_no for o in f.state.screen.options] == \
        [FOUND[1].business.project_no, FOUND[2].business.project_no]
    role(f, "exit")
    card(f)
    answer(f, FOUND[0])
    assert f.state.screen.kind == "not_found"


def test_a_rating_held_in_memory_while_storage_fails_counts_as_rated():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.fail_store = True
    f.press(5)
    assert f.state.storage_error and f.records == []
    card(f)
    assert f.screen == "Idle" and f.lookups[-1].lookup_id == 1, "no card while storage fails"
    f.fail_store = False
    f.advance(f.state.config.retry_ms)
    assert f.state.storage_error == "" and len(f.records) == 1
    card(f)
    answer(f, FOUND[0])
    assert f.state.screen.kind == "not_found"


def test_pending_drafts_count_as_rated_in_a_lookup():
    f = kiosk()
    held = {"kind": "rating", "project_no": FOUND[0].business.project_no, "visit_id": "x"}
    f.state = replace(f.state, screen=LookingUp(7, MASKED, "resident", 10**12),
                      pending=(held,))
    f.send(LookupDone(7, FOUND[:2]))
    assert f.state.screen.visit.items == (FOUND[1].business,)


# --- cards at other moments ---------------------------------------------------------------------

def test_another_card_ends_a_chosen_business_waiting_for_its_rating():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    visit = f.state.screen.visit
    card(f, cert_no="110101199003070035")
    assert f.screen == "LookingUp" and len(f.lookups) == 2
    (r,) = f.records
    assert r["visit_id"] == visit.visit_id and r["kind"] == "unrated"
    assert r["unrated_reason"] == "superseded" and r["real_name"] is True
    f.press(5)
    assert len(f.records) == 1, "a key under the new card's lookup rates nothing"
    answer(f, *FOUND[1:])
    assert f.screen == "Choosing" and f.state.screen.masked_name == MASKED


def test_another_card_keeps_the_bad_rating_already_pressed():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    f.press(2)
    f.send(CardFailed("reader_fault"))
    assert f.screen == "Tagging", "a reader fault does not end a session"
    card(f, cert_no="110101199003070035")
    (r,) = f.records
    assert f.screen == "LookingUp"
    assert r["kind"] == "rating" and r["level"] == 2 and r["real_name"] is True


def test_a_card_while_an_app_invitation_is_rated_is_ignored():
    f = kiosk()
    f.invite(business(9))
    card(f)
    assert f.screen == "Invited" and f.lookups == [] and f.records == []


@pytest.mark.parametrize("where", ["notice", "thanks", "choosing", "looking_up"])
def test_a_new_card_starts_a_new_lookup_and_drops_the_old_one(where):
    f = kiosk()
    card(f)
    if where == "notice":
        answer(f)
    elif where == "thanks":
        answer(f, FOUND[0])
        f.press(5)
        assert f.screen == "Thanks"
    elif where == "choosing":
        answer(f, *FOUND)
    old = f.lookups[-1].lookup_id
    card(f, cert_no="110101199003070035")
    assert f.screen == "LookingUp" and f.lookups[-1].lookup_id == old + 1
    answer(f, *FOUND, lookup_id=old)
    assert f.screen == "LookingUp", "an answer for the older card is stale"
    answer(f, *FOUND[1:])
    assert f.screen == "Choosing"


def test_a_reader_fault_does_not_cut_off_a_choice():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    f.send(CardFailed("reader_fault", "disconnected"))
    assert f.screen == "Choosing"
    card(f)
    f.send(CardFailed("unreadable"))
    assert f.screen == "LookingUp"


def test_a_card_of_a_refused_type_does_not_cut_off_a_choice():
    f = kiosk(card_types=("resident",))
    card(f)
    answer(f, *FOUND)
    card(f, "foreign_2023")
    assert f.screen == "Choosing" and len(f.lookups) == 1


# --- kiosk-app invitations (local API) -------------------------------------------------------------

def test_a_kiosk_app_invitation_goes_straight_to_rating_without_staff():
    f = kiosk()
    reply = f.invite(business(9, "营业执照变更"), visit_id="app-1")
    assert reply.status == 201
    f.press(5)
    (r,) = f.records
    assert r["channel"] == "kiosk" and r["real_name"] is False and r["level"] == 5
    assert r["visit_id"] == "app-1"


@pytest.mark.parametrize("where", ["looking_up", "choosing", "notice"])
def test_an_invitation_mid_session_takes_over_and_records_nothing_for_the_card(where):
    f = kiosk()
    card(f)
    if where == "choosing":
        answer(f, *FOUND)
    elif where == "notice":
        answer(f, error="network")
    reply = f.invite(business(9), visit_id="app-1")
    assert reply.status == 201 and f.screen == "Invited"
    assert f.state.screen.visit.real_name is False
    answer(f, *FOUND, lookup_id=1)  # the card's answer, late
    assert f.state.screen.visit.visit_id == "app-1"
    assert f.records == []
    f.press(4)
    assert [r["visit_id"] for r in f.records] == ["app-1"]


def test_an_invitation_over_a_chosen_business_supersedes_it():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    role(f, "choose")
    chosen = f.state.screen.visit.visit_id
    f.invite(business(9), visit_id="app-1")
    (r,) = f.records
    assert r["visit_id"] == chosen and r["kind"] == "unrated"
    assert r["unrated_reason"] == "superseded" and r["real_name"] is True
    f.press(3)
    assert f.records[-1]["visit_id"] == "app-1" and f.records[-1]["level"] == 3


def test_an_invitation_over_reasons_being_chosen_keeps_the_bad_rating():
    f = kiosk()
    card(f)
    answer(f, FOUND[0])
    f.press(2)
    f.invite(business(9), visit_id="app-1")
    (r,) = f.records
    assert r["kind"] == "rating" and r["level"] == 2 and r["tags_missing"] is True


# --- pause, storage, mode -------------------------------------------------------------------------

def test_a_pause_waits_for_a_person_choosing_and_refuses_cards_after():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    reply = f.request(lambda rid: flow.SetWindow(True, "", rid))
    assert reply.body["effective"] == "after_current" and f.screen == "Choosing"
    role(f, "choose")
    f.press(5)
    f.advance(f.state.config.thanks_ms)
    assert len(f.records) == 1
    card(f)
    assert f.screen == "Idle" and len(f.lookups) == 1
    f.send(CardFailed("unreadable"))
    assert f.screen == "Idle"


def test_a_window_ignores_card_events():
    f = Flow()
    f.send(CardRead("resident", "111", MASKED, CERT_NO))
    f.send(CardFailed("unreadable"))
    f.send(LookupDone(1, FOUND))
    assert f.screen == "Idle" and f.lookups == []


def test_switching_to_window_mode_leaves_the_kiosk_screens():
    f = kiosk()
    card(f)
    answer(f, *FOUND)
    f.send(flow.ConfigChanged(config(mode="window")))
    assert f.screen == "Idle" and f.records == []
    assert flow.next_deadline(f.state) is not None


def test_next_deadline_covers_every_kiosk_screen():
    f = kiosk()
    card(f)
    assert flow.next_deadline(f.state) <= f.state.screen.deadline
    answer(f, *FOUND)
    assert flow.next_deadline(f.state) <= f.state.screen.deadline


# --- property: random kiosk days ----------------------------------------------------------------

POOL = tuple(found(n, name) for n, name in enumerate(["不动产登记", "社保卡申领", "营业执照变更",
                                                    "户籍迁入"], 1))
IDS = ("11010519491231002X", "110101199003070035", "932682198501010017")

events = st.one_of(
    st.tuples(st.just("card"), st.sampled_from(["resident", "resident", "foreign_2023",
                                                "hk_mo_tw", "unknown"]),
              st.sampled_from(IDS)),
    st.tuples(st.just("failed"), st.sampled_from(["unreadable", "unsupported", "reader_fault"])),
    st.tuples(st.just("answer"), st.lists(st.integers(0, len(POOL) - 1), max_size=4),
              st.sampled_from([None, None, "network", "timeout"]), st.booleans()),
    # a whole visit in one: card, answer, a few presses (so that repeats are likely)
    st.tuples(st.just("session"), st.lists(st.integers(0, len(POOL) - 1), max_size=3),
              st.lists(st.integers(1, 5), min_size=1, max_size=3)),
    st.tuples(st.just("press"), st.integers(1, 5)),
    st.tuples(st.just("hold"), st.integers(1, 5)),
    st.tuples(st.just("invite"), st.integers(1, 2)),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("advance"), st.sampled_from([100, 2000, 5000, 7001, 30_000, 61_000])),
    st.tuples(st.just("pause"), st.booleans()),
    st.tuples(st.just("store"), st.booleans()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, max_size=60))
def test_random_kiosk_days_keep_every_promise(script):
    f = kiosk(card_types=("resident", "foreign_2023", "hk_mo_tw"))
    opened: dict[str, tuple] = {}      # visit_id -> (number of businesses, real_name)
    pressed = defaultdict(set)
    accepted: set = set()
    n = 0
    def press(button: int, hold: bool = False):
        before = f.state
        if isinstance(before.screen, flow.Invited) and not before.storage_error:
            pressed[before.screen.visit.visit_id].add(button)
        f.send(flow.Hold(button) if hold else flow.Press(button))
        note_open()

    def note_open():
        visit = flow.open_visit(f.state)
        if visit is not None:
            opened.setdefault(visit.visit_id, (len(visit.items), visit.real_name))

    for ev in script:
        kind = ev[0]
        if kind == "card":
            before = len(f.lookups)
            card(f, ev[1], ev[2])
            if len(f.lookups) > before:
                assert flow.open_visit(f.state) is None, "a new card ends the old session"
        elif kind == "failed":
            f.send(CardFailed(ev[1]))
        elif kind == "answer":
            if f.lookups:
                lid = f.lookups[-1].lookup_id - (1 if ev[3] and len(f.lookups) > 1 else 0)
                f.send(LookupDone(lid, tuple(POOL[i] for i in ev[1]), ev[2]))
        elif kind == "session":
            started = len(f.lookups)
            card(f)
            if len(f.lookups) > started:
                answer(f, *(POOL[i] for i in ev[1]))
            note_open()
            for b in ev[2]:
                press(b)
        elif kind in ("press", "hold"):
            press(ev[1], hold=kind == "hold")
        elif kind == "invite":
            n += 1
            vid = f"app-{n}"
            reply = f.invite(*(business(100 + n * 10 + i) for i in range(ev[1])), visit_id=vid)
            if reply.status == 201:
                accepted.add(vid)
        elif kind == "cancel":
            f.request(lambda rid: flow.Cancel(rid))
        elif kind == "advance":
            f.advance(ev[1])
        elif kind == "pause":
            f.request(lambda rid, p=ev[1]: flow.SetWindow(p, "", rid))
        elif kind == "store":
            f.fail_store = ev[1]
        note_open()
        assert not any(cert in s for s in strings_in(f.state) for cert in IDS), \
            "an ID number is reachable from the state"
        if isinstance(f.state.screen, Choosing):
            assert f.state.screen.deadline - f.clock.mono_ms() <= f.state.config.list_ms, \
                "a list stands longer than the short list time"

    f.fail_store = False
    f.advance(10 * 60_000)

    assert f.state.pending == () and f.state.storage_error == ""
    assert flow.open_visit(f.state) is None and f.screen in ("Idle", "Info")
    assert accepted <= set(opened)
    per_visit = defaultdict(list)
    for r in f.records:
        per_visit[r["visit_id"]].append(r)
        assert r["channel"] == "kiosk"
        assert not any(cert in str(v) for v in r.values() for cert in IDS)
    assert set(per_visit) == set(opened), "exactly the visits that were opened are recorded"
    for vid, recs in per_visit.items():
        count, real_name = opened[vid]
        assert len(recs) == count
        assert all(r["real_name"] is real_name for r in recs)
        assert real_name is (not vid.startswith("app-"))
        r = recs[0]
        if r["kind"] == "rating":
            assert r["level"] in pressed[vid], "a rating nobody pressed"
    ratings = Counter(r["project_no"] for r in f.records if r["kind"] == "rating")
    assert all(c == 1 for c in ratings.values()), "a business rated twice (一次一评)"
