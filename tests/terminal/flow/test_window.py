"""The window flow, one transition at a time, as a hall would live it."""
from terminal import flow
from terminal.flow import Staff
from tests.terminal.flowkit import Flow, business, config

# Buttons left to right are 5 4 3 2 1; on the tag screen they mean
# up (5), down (4), toggle (3), back (2), submit (1).
UP, DOWN, TOGGLE, BACK, SUBMIT = 5, 4, 3, 2, 1


def test_idle_until_invited():
    f = Flow()
    assert f.screen == "Idle"
    assert flow.leds(f.state) == frozenset()
    assert f.state.staff == Staff("0123", "王芳")


def test_good_rating_is_stored_then_thanked():
    f = Flow()
    reply = f.invite()
    assert reply.status == 201 and reply.body == {"visit_id": "visit-1", "state": "open"}
    assert f.screen == "Invited"
    assert flow.leds(f.state) == frozenset({1, 2, 3, 4, 5})
    f.clock.advance(4000)
    effects = f.send(flow.Press(5))
    assert [type(e).__name__ for e in effects][:2] == ["Sound", "Append"]
    assert f.screen == "Thanks"
    [r] = f.records
    assert (r["kind"], r["level"], r["score"], r["tags"], r["tags_missing"]) == ("rating", 5, 10, [], False)
    assert r["invited_at"] == "2026-11-22T09:00:00+08:00"
    assert r["rated_at"] == "2026-11-22T09:00:04+08:00"
    assert r["staff_id"] == "0123" and r["staff_name"] == "王芳"
    assert r["window_no"] == "07" and r["channel"] == "window" and r["pf"] == "5"
    assert r["mono_ms"] == f.clock.mono_ms()
    f.advance(config().thanks_ms)
    assert f.screen == "Idle"


def test_thanks_waits_for_the_commit():
    f = Flow()
    f.invite()
    f.state, effects = flow.step(f.state, flow.Press(4), f.clock.now())
    assert any(isinstance(e, flow.Append) for e in effects)
    assert f.screen == "Saving"  # not Thanks: the store has not confirmed yet
    f.state, _ = flow.step(f.state, flow.Stored(1), f.clock.now())
    assert f.screen == "Thanks"


def test_levels_and_scores():
    for level, score in {5: 10, 4: 8, 3: 6}.items():
        f = Flow()
        f.invite()
        f.press(level)
        assert (f.records[0]["level"], f.records[0]["score"]) == (level, score)


def test_bad_rating_asks_for_tags_and_records_them():
    f = Flow()
    f.invite()
    f.press(2)
    assert f.screen == "Tagging"
    assert f.records == []
    assert [t.code for t in f.state.screen.options][:2] == ["207", "208"]
    f.press(DOWN, TOGGLE, DOWN, DOWN, TOGGLE)  # 208 and 210
    assert f.state.screen.selected == {"208", "210"}
    f.press(SUBMIT)
    [r] = f.records
    assert (r["level"], r["score"], r["tags"], r["tags_missing"]) == (2, 3, ["208", "210"], False)
    assert f.screen == "Thanks"


def test_tag_list_wraps_and_untoggles():
    f = Flow()
    f.invite()
    f.press(1, UP)
    assert f.state.screen.cursor == len(f.state.screen.options) - 1
    f.press(TOGGLE, TOGGLE)
    assert f.state.screen.selected == frozenset()
    f.press(DOWN)
    assert f.state.screen.cursor == 0


def test_submit_without_tags_warns_and_stays():
    f = Flow()
    f.invite()
    f.press(1, SUBMIT)
    assert f.screen == "Tagging" and f.state.screen.warn
    assert f.records == []
    f.press(TOGGLE)
    assert not f.state.screen.warn
    f.press(SUBMIT)
    assert f.records[0]["tags"] == ["108"]


def test_back_returns_to_the_levels_without_a_record():
    f = Flow()
    f.invite()
    f.press(2, BACK)
    assert f.screen == "Invited"
    assert f.records == []
    f.press(3)
    assert f.records[0]["level"] == 3


def test_person_walks_away_during_tag_choice():
    f = Flow()
    f.invite()
    f.press(1)
    f.advance(config().tags_ms)
    [r] = f.records
    assert (r["kind"], r["level"], r["tags"], r["tags_missing"]) == ("rating", 1, [], True)


def test_walk_away_keeps_the_tags_already_chosen():
    f = Flow()
    f.invite()
    f.press(2, TOGGLE)
    f.advance(config().tags_ms)
    [r] = f.records
    assert (r["tags"], r["tags_missing"]) == (["207"], False)


def test_tag_keys_extend_the_tag_timeout():
    f = Flow()
    f.invite()
    f.press(2)
    f.advance(config().tags_ms - 1000)
    f.press(DOWN)
    f.advance(config().tags_ms - 1000)
    assert f.screen == "Tagging" and f.records == []


def test_invitation_timeout_is_unrated():
    f = Flow()
    f.invite()
    f.advance(config().invite_ms - 1)
    assert f.screen == "Invited"
    f.advance(1)
    [r] = f.records
    assert (r["kind"], r["unrated_reason"], r["level"], r["score"], r["rated_at"]) == (
        "unrated", "timeout", None, None, None)
    assert r["mono_ms"] == 1_000_000  # the invitation's moment, matching invited_at
    assert f.screen == "Idle"


def test_cancel_is_unrated_cancelled():
    f = Flow()
    f.invite()
    reply = f.request(lambda rid: flow.Cancel(rid))
    assert reply.status == 200 and reply.body == {"visit_id": "visit-1", "state": "unrated"}
    assert f.records[0]["unrated_reason"] == "cancelled"
    assert f.screen == "Idle"


def test_cancel_during_tag_choice_keeps_the_bad_rating():
    f = Flow()
    f.invite()
    f.press(2)
    reply = f.request(lambda rid: flow.Cancel(rid))
    assert reply.body["state"] == "rated"
    [r] = f.records
    assert (r["kind"], r["level"], r["tags_missing"]) == ("rating", 2, True)


def test_cancel_without_invitation_is_404():
    f = Flow()
    reply = f.request(lambda rid: flow.Cancel(rid))
    assert reply.status == 404 and reply.body["error"] == "no_open_invitation"


def test_new_invitation_supersedes_the_open_one():
    f = Flow()
    f.invite(visit_id="a")
    f.invite(visit_id="b")
    [r] = f.records
    assert (r["visit_id"], r["kind"], r["unrated_reason"]) == ("a", "unrated", "superseded")
    assert f.state.screen.visit.visit_id == "b"


def test_same_invitation_twice_is_idempotent():
    f = Flow()
    f.invite(visit_id="a")
    reply = f.invite(visit_id="a")
    assert reply.status == 201
    assert f.records == []


def test_one_record_per_business_of_a_visit():
    f = Flow()
    f.invite(business(1, "户籍迁入"), business(2, "居住证办理"), business(3, "身份证换领"))
    f.press(4)
    assert [r["project_no"] for r in f.records] == [business(i).project_no for i in (1, 2, 3)]
    assert {r["visit_id"] for r in f.records} == {"visit-1"}
    assert {r["level"] for r in f.records} == {4}


def test_press_outside_an_invitation_only_hints():
    f = Flow()
    f.press(5)
    assert f.records == []
    assert f.state.hint == "请办理业务后再评价"
    f.advance(config().hint_ms)
    assert f.state.hint == ""


def test_presses_after_the_rating_change_nothing():
    f = Flow()
    f.invite()
    f.press(5, 1, 1, 2)
    assert len(f.records) == 1 and f.records[0]["level"] == 5


def test_hold_rates_like_a_press_during_an_invitation():
    f = Flow()
    f.invite()
    f.send(flow.Hold(3))
    assert f.records[0]["level"] == 3


def test_hold_when_idle_shows_info_and_a_press_leaves_it():
    f = Flow()
    f.send(flow.Hold(5))
    assert f.screen == "Info"
    f.press(5)
    assert f.screen == "Idle" and f.records == []


def test_staff_required_for_window_invitations():
    f = Flow(staff=None)
    reply = f.invite()
    assert reply.status == 409 and reply.body["error"] == "no_staff"
    reply = f.invite(staff=Staff("9", "赵六"))
    assert reply.status == 201
    f.press(5)
    assert f.records[0]["staff_name"] == "赵六"


def test_staff_not_required_when_configured_off():
    f = Flow(cfg=config(require_staff=False), staff=None)
    assert f.invite().status == 201
    f.press(5)
    assert f.records[0]["staff_id"] == ""


def test_sign_out_does_not_touch_the_open_invitation():
    f = Flow()
    f.invite()
    f.request(lambda rid: flow.SignOut(rid))
    assert f.state.staff is None
    f.press(5)
    assert f.records[0]["staff_name"] == "王芳"


def test_pause_refuses_invitations_and_resume_accepts():
    f = Flow()
    reply = f.request(lambda rid: flow.SetWindow(True, "午休 13:30恢复", rid))
    assert reply.body == {"state": "paused", "effective": "now"}
    assert f.state.paused and f.state.pause_message == "午休 13:30恢复"
    reply = f.invite()
    assert reply.status == 409 and reply.body["error"] == "window_paused"
    f.press(5)
    assert f.state.hint == ""  # the paused screen stays as it is
    f.request(lambda rid: flow.SetWindow(False, "", rid))
    assert f.invite().status == 201


def test_pause_during_a_rating_waits_for_the_person():
    f = Flow()
    f.invite()
    reply = f.request(lambda rid: flow.SetWindow(True, "", rid))
    assert reply.body["effective"] == "after_current"
    assert f.screen == "Invited"
    f.press(5)
    assert f.records[0]["level"] == 5


def test_storage_failure_shows_error_keeps_drafts_and_retries():
    f = Flow()
    f.invite()
    f.fail_store = True
    f.press(5)
    assert f.records == []
    assert f.state.storage_error == "disk full"
    assert f.screen == "Idle"  # no thanks for a rating that is not stored
    assert len(f.state.pending) == 1
    assert f.invite(business(2), visit_id="v2").status == 503
    assert f.invite(visit_id="v3").body["error"] == "already_rated"  # held, not yet stored
    f.fail_store = False
    f.advance(config().retry_ms)
    assert [r["level"] for r in f.records] == [5]
    assert f.state.storage_error == "" and f.state.pending == ()
    assert f.invite(business(2), visit_id="v2").status == 201


def test_records_made_during_a_storage_failure_keep_their_order():
    f = Flow()
    f.invite(visit_id="a")
    f.fail_store = True
    f.invite(visit_id="b")  # a is superseded; storing it fails, b stays open
    assert f.state.storage_error and f.screen == "Invited"
    f.advance(config().retry_ms - 1)
    f.fail_store = False
    f.advance(config().invite_ms)  # the retry succeeds, then b times out
    assert [(r["visit_id"], r["unrated_reason"]) for r in f.records] == [
        ("a", "superseded"), ("b", "timeout")]
    assert f.state.pending == () and f.state.storage_error == ""


def test_clock_not_synced_is_recorded():
    f = Flow()
    f.clock.synced = False
    f.invite()
    f.clock.synced = True
    f.press(5)
    assert f.records[0]["clock_synced"] is False


def test_config_change_applies_without_losing_the_tag_screen():
    f = Flow()
    f.invite()
    f.press(2)
    options = f.state.screen.options
    f.send(flow.ConfigChanged(config(window_no="09")))
    assert f.state.screen.options == options
    f.press(TOGGLE, SUBMIT)
    assert f.records[0]["window_no"] == "09"


def test_failsafe_marks_a_fault_for_a_while():
    f = Flow()
    state = flow.fail(f.state, f.clock.now(), "ValueError")
    assert state.fault == "ValueError"
    f.state = state
    f.advance(config().fault_ms)
    assert f.state.fault == ""


def test_department_falls_back_to_the_site_default():
    f = Flow(cfg=config(dept_code="11330106002489000X", dept_name="默认部门"))
    f.invite(flow.Business(project_no="P1", task_name="事项"))
    f.press(5)
    assert (f.records[0]["dept_code"], f.records[0]["dept_name"]) == ("11330106002489000X", "默认部门")


def test_page_counter_turns():
    f = Flow()
    f.invite()
    f.advance(config().page_ms * 2)
    assert f.state.page == 2


def test_a_retried_invitation_must_repeat_its_items():
    f = Flow()
    assert f.invite(visit_id="v").status == 201
    assert f.invite(visit_id="v").status == 201  # the same request again: still open
    reply = f.invite(business(1), business(2), visit_id="v")
    assert (reply.status, reply.body["error"]) == (409, "visit_conflict")
    f.press(5)
    assert [r["project_no"] for r in f.records] == [business(1).project_no]
