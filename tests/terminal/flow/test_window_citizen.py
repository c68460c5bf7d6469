"""The pure flow's part of the citizen's side: which prompt it asks for at which moment,
the QR codes it keeps in state, and follow-up ratings (assess_number 2)."""
from __future__ import annotations

from dataclasses import replace

from terminal import flow
from tests.terminal.flowkit import Flow, business, config

URL = "https://hcp.example.gov.cn/r/1"


def test_prompts_follow_the_person_through_a_rating():
    f = Flow()
    f.invite()
    assert f.sounds == ["invite"]
    f.press(2)                       # a bad level: the reasons, spoken once
    assert f.sounds == ["invite", "choose_reason"]
    f.press(3, 1)                    # tick, submit
    assert f.sounds == ["invite", "choose_reason", "thanks"]
    f.advance(10_000)
    f.invite(business(2), visit_id="v2")
    f.press(5)
    assert f.sounds[-3:] == ["invite", "press", "thanks"]


def test_a_pause_speaks_only_when_it_shows():
    f = Flow()
    f.request(lambda rid: flow.SetWindow(True, "", rid))
    assert f.sounds == ["paused"]
    f.request(lambda rid: flow.SetWindow(True, "午休", rid))    # already paused: silent
    assert f.sounds == ["paused"]
    f.request(lambda rid: flow.SetWindow(False, "", rid))
    f.invite()
    f.request(lambda rid: flow.SetWindow(True, "", rid))        # someone is rating
    assert f.replies[-1].body["effective"] == "after_current"
    assert f.sounds == ["paused", "invite"]


def test_a_url_too_long_for_the_panel_is_refused_before_anything_changes():
    long = "https://hcp.example.gov.cn/r/" + "1" * 40
    f = Flow()
    f.invite(replace(business(), rate_url=long))
    assert f.replies[-1].status == 400 and f.replies[-1].body["error"] == "rate_url_too_long"
    assert f.screen == "Idle" and f.sounds == [] and f.records == []
    wide = Flow(config(panel=(256, 64)))
    wide.invite(replace(business(), rate_url=long))
    assert wide.replies[-1].status == 201


def test_the_thanks_and_the_idle_screen_carry_the_urls():
    f = Flow(config(qr_template="https://hcp.gov.cn/r/{project_no}?w={window_no}"))
    f.invite(replace(business(1), rate_url=URL), business(2))
    f.press(4)
    assert f.state.screen.qr == (URL, f"https://hcp.gov.cn/r/{business(2).project_no}?w=07")
    f.advance(5_000)
    assert f.screen == "Idle" and f.state.qr == ()        # a rating leaves no idle code
    f.invite(business(3), visit_id="v3")
    f.request(lambda rid: flow.Cancel(rid))
    assert f.state.qr == (f"https://hcp.gov.cn/r/{business(3).project_no}?w=07",)


def test_a_template_url_that_cannot_fit_is_left_out_not_refused():
    f = Flow(config(qr_template="https://hcp.example.gov.cn/rate/{project_no}/{task_code}"))
    f.invite()
    assert f.replies[-1].status == 201
    f.press(5)
    assert f.screen == "Thanks" and f.state.screen.qr == ()


def test_follow_up_records_assess_number_2_and_allows_one():
    f = Flow()
    f.invite()
    f.press(5)
    f.request(lambda rid: flow.Invite("v2", (business(),), None, rid, follow_up=True))
    assert f.replies[-1].status == 201
    f.press(4)
    assert [r["assess_number"] for r in f.records] == [1, 2]
    f.request(lambda rid: flow.Invite("v3", (business(),), None, rid, follow_up=True))
    assert f.replies[-1].status == 409 and f.replies[-1].body["error"] == "already_rated"
