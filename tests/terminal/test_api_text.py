"""Text that cannot be stored never gets in: the cases of issue 10, over real HTTP.

JSON's `\\udfff` escape parses in Python to a lone surrogate, which no record can hold
(its canonical form is UTF-8). Each body is sent as raw bytes so that the escape
reaches the server exactly as an integrator's program would send it.
"""
from __future__ import annotations

import json

import pytest

from tests.terminal.test_api import assert_error, item, wait_state

SURROGATE = "x\\udfff"  # JSON text: the six characters \udfff after an x


def send(run, method: str, path: str, body_text: str):
    return run.call(method, path, data=body_text.encode("utf-8"),
                    headers={"Content-Type": "application/json"})


def test_an_invitation_with_a_lone_surrogate_is_refused_and_ratings_go_on(staffed):
    r = send(staffed, "POST", "/v1/invitations",
             '{"visit_id": "bad", "items": [{"project_no": "3301", "task_name": "%s"}]}' % SURROGATE)
    body = assert_error(r, 400, "invalid_text")
    assert body["field"] == "items[0].task_name"
    assert body["message"].startswith("items[0].task_name: contains a lone surrogate (U+DFFF)")
    assert_error(staffed.call("GET", "/v1/invitations/bad"), 404, "unknown_visit")

    assert staffed.call("POST", "/v1/invitations", {"items": [item(1)], "visit_id": "good"}).status_code == 201
    staffed.press(5)
    assert wait_state(staffed, "good", "rated")["level"] == 5
    [record] = staffed.records()
    assert record["visit_id"] == "good" and record["level"] == 5


def test_sign_in_with_a_lone_surrogate_is_refused_and_nobody_is_signed_in(running):
    r = send(running, "PUT", "/v1/staff", '{"id": "0131", "name": "%s"}' % SURROGATE)
    body = assert_error(r, 400, "invalid_text")
    assert body["field"] == "name"
    status = running.call("GET", "/v1/status")
    assert status.status_code == 200 and status.json()["staff"] is None


def test_a_pause_message_with_a_lone_surrogate_is_refused_and_status_answers(staffed):
    r = send(staffed, "PUT", "/v1/window", '{"state": "paused", "message": "%s"}' % SURROGATE)
    assert assert_error(r, 400, "invalid_text")["field"] == "message"
    status = staffed.call("GET", "/v1/status")
    assert status.status_code == 200
    assert status.json()["paused"] is False and "pause_message" not in status.json()


@pytest.mark.parametrize("bad, kind", [
    ("\\u0007", "a control character (U+0007)"),
    ("\\ufdd0", "a Unicode noncharacter (U+FDD0)"),
    ("\\uffff", "a Unicode noncharacter (U+FFFF)"),
    ("\\ud83d", "a lone surrogate (U+D83D)"),
])
def test_every_kind_of_bad_text_is_named_with_its_field(staffed, bad, kind):
    body = '{"items": [{"project_no": "3301", "task_name": "ok", "dept_name": "a%sb"}]}' % bad
    answer = assert_error(send(staffed, "POST", "/v1/invitations", body), 400, "invalid_text")
    assert answer["field"] == "items[0].dept_name" and kind in answer["message"]
    assert staffed.call("GET", "/v1/status").json()["open_visit"] is None


def test_a_bad_key_is_named_too(staffed):
    body = '{"items": [{"project_no": "3301", "task_name": "ok"}], "%s": 1}' % SURROGATE
    answer = assert_error(send(staffed, "POST", "/v1/invitations", body), 400, "invalid_text")
    assert "key contains a lone surrogate" in answer["message"]


def test_a_surrogate_pair_is_one_good_character(staffed):
    # "\ud83d\ude00" is 😀 written as a pair: valid text, stored as it is.
    body = '{"visit_id": "pair", "items": [{"project_no": "3301", "task_name": "a\\ud83d\\ude00"}]}'
    assert send(staffed, "POST", "/v1/invitations", body).status_code == 201
    staffed.press(4)
    wait_state(staffed, "pair", "rated")
    assert staffed.records()[0]["task_name"] == "a\U0001F600"
    assert json.dumps(staffed.records()[0], ensure_ascii=False).encode("utf-8")
