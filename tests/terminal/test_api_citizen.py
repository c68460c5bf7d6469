"""The citizen's side through the local API (apis.md §1b): rate_url and its limits, the
follow-up rating (追加评价) and its limits, on a real terminal and its real server."""
from __future__ import annotations

import time

from agent.profiles import zhejiang
from config import qr


def item(pn="330106202611220101", **extra):
    return {"project_no": pn, "task_name": "居民身份证换领", **extra}


def invite(r, *items, **body):
    return r.call("POST", "/v1/invitations", {"items": list(items), **body})


def rate(r, visit_id, level):
    r.press(level)
    return r.wait_for(lambda: (lambda v: v if v["state"] != "open" else None)(
        r.call("GET", f"/v1/invitations/{visit_id}").json()), what=f"{visit_id} rated")


def thanks_qr(r):
    return r.wait_for(lambda: getattr(r.terminal.snapshot().screen, "qr", None),
                      what="the thanks screen's QR code")


def test_a_rate_url_is_shown_on_the_thanks_screen(staffed):
    url = "https://hcp.example.gov.cn/r/330106202611220101"
    got = invite(staffed, item(rate_url=url), visit_id="q-1")
    assert got.status_code == 201, got.text
    assert rate(staffed, "q-1", 5)["state"] == "rated"
    assert thanks_qr(staffed) == (url,)


def test_a_rate_url_too_long_for_the_panel_is_refused_and_nothing_changes(staffed):
    url = "https://hcp.example.gov.cn/r/" + "7" * 60          # 89 characters: no fit at 128x64
    assert len(url) <= qr.MAX_URL and not qr.fits(url, (128, 64))
    got = invite(staffed, item(), item("330106202611220102", rate_url=url), visit_id="q-2")
    assert got.status_code == 400, got.text
    body = got.json()
    assert body["error"] == "rate_url_too_long" and body["project_no"] == "330106202611220102"
    assert "128x64" in body["message"]
    assert staffed.call("GET", "/v1/status").json()["open_visit"] is None
    assert staffed.call("GET", "/v1/invitations/q-2").status_code == 404


def test_rate_url_must_be_https_and_at_most_512_characters(staffed):
    for bad in ("http://hcp.example.gov.cn/r/1", "hcp.example.gov.cn", "https://a b.cn/",
                "https://hcp.example.gov.cn/" + "a" * 500):
        got = invite(staffed, item(rate_url=bad))
        assert got.status_code == 400, (bad, got.text)
        assert got.json()["error"] == "invalid_request" and "rate_url" in got.json()["field"]
    assert staffed.records() == []


def test_follow_up_makes_a_second_record_with_assess_number_2(staffed):
    assert invite(staffed, item(), visit_id="f-1").status_code == 201
    assert rate(staffed, "f-1", 2 + 2)["level"] == 4
    again = invite(staffed, item(), visit_id="f-2")
    assert again.status_code == 409 and again.json()["error"] == "already_rated"

    follow = invite(staffed, item(), visit_id="f-3", follow_up=True)
    assert follow.status_code == 201, follow.text
    outcome = rate(staffed, "f-3", 3)
    assert outcome["state"] == "rated" and outcome["level"] == 3
    records = staffed.wait_for(lambda: (lambda rs: rs if len(rs) == 2 else None)(staffed.records()),
                               what="two records")
    assert [(r["visit_id"], r["assess_number"], r["level"]) for r in records] == [
        ("f-1", 1, 4), ("f-3", 2, 3)]
    reports = [zhejiang.report(r) for r in records]
    assert [r["assessNumber"] for r in reports] == ["1", "2"]

    third = invite(staffed, item(), visit_id="f-4", follow_up=True)
    assert third.status_code == 409 and third.json()["error"] == "already_rated"
    assert third.json()["project_no"] == item()["project_no"]
    assert len(staffed.records()) == 2


def test_follow_up_of_a_business_never_rated_is_a_first_rating(staffed):
    assert invite(staffed, item("330106202611220111"), visit_id="n-1",
                  follow_up=True).status_code == 201
    rate(staffed, "n-1", 5)
    [record] = staffed.wait_for(staffed.records, what="the record")
    assert record["assess_number"] == 1


def test_an_unrated_follow_up_invitation_leaves_the_follow_up_open(staffed):
    assert invite(staffed, item(), visit_id="u-1").status_code == 201
    rate(staffed, "u-1", 5)
    assert invite(staffed, item(), visit_id="u-2", follow_up=True).status_code == 201
    assert staffed.call("DELETE", "/v1/invitations/current").status_code == 200
    time.sleep(0.1)
    records = staffed.records()
    assert [(r["kind"], r["assess_number"]) for r in records] == [("rating", 1), ("unrated", 2)]
    # nobody rated the follow-up: it may still be given
    assert invite(staffed, item(), visit_id="u-3", follow_up=True).status_code == 201


def test_follow_up_must_be_a_boolean(staffed):
    got = invite(staffed, item(), follow_up="yes")
    assert got.status_code == 400 and got.json()["field"] == "follow_up"
