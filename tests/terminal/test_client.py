"""The local API client (terminal/client.py) against the real server."""
from __future__ import annotations

import socket

import pytest

from terminal.catalogue import sample_business
from terminal.client import ApiError, LocalClient, Unreachable
from tests.terminal.conftest import TOKEN


@pytest.fixture
def api(running):
    return LocalClient(running.url, TOKEN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_drives_a_whole_rating(running, api):
    assert api.sign_in("0131", "王芳") == {"staff": {"id": "0131", "name": "王芳"}}
    business = sample_business()
    created = api.invite([business, {"project_no": "P-2", "task_name": "户籍迁入"}], visit_id="cl-1")
    assert created == {"visit_id": "cl-1", "state": "open"}
    assert api.visit("cl-1")["state"] == "open"
    assert api.status()["open_visit"]["project_nos"] == [business.project_no, "P-2"]
    running.press(4)
    running.wait_for(lambda: api.visit("cl-1")["state"] == "rated", what="the rating")
    assert api.visit("cl-1")["level"] == 4
    assert {r["task_name"] for r in running.records()} == {business.task_name, "户籍迁入"}


def test_client_calls_for_staff_window_and_cancel(running, api):
    assert api.invite([{"project_no": "1", "task_name": "x"}], staff=("0207", "李建国"))["state"] == "open"
    assert api.window("paused", "稍候") == {"state": "paused", "effective": "after_current"}
    assert api.cancel()["state"] == "unrated"
    assert api.status()["state"] == "paused"
    assert api.window("open") == {"state": "open", "effective": "now"}
    assert api.sign_out() == {"staff": None}


def test_api_errors_carry_the_servers_code_and_message(running, api):
    with pytest.raises(ApiError) as err:
        api.cancel()
    assert (err.value.status, err.value.code) == (404, "no_open_invitation")
    assert err.value.message == "there is no open invitation to cancel"
    with pytest.raises(ApiError) as err:
        api.invite([{"project_no": "1" * 51, "task_name": "x"}], staff={"id": "1", "name": "王"})
    assert err.value.code == "invalid_request" and "items[0].project_no" in err.value.message
    with pytest.raises(ApiError) as err:
        LocalClient(running.url, "wrong").status()
    assert err.value.status == 401


def test_a_terminal_that_is_not_running_is_said_plainly():
    port = free_port()
    with pytest.raises(Unreachable, match=f"not running on http://127.0.0.1:{port}"):
        LocalClient(f"http://127.0.0.1:{port}", TOKEN, timeout=2).status()
