"""The shell and the store when storing fails: a real Store on a real file, failures
provoked for real (text SQLite cannot take, SQLITE_FULL through max_page_count, a
display that raises). The terminal keeps running, holds what it acknowledged, never
answers 201 for what it could not store, and a clean stop writes what it held."""
from __future__ import annotations

import threading
from dataclasses import replace
from functools import partial

from config import tags
from config.settings import DisplaySettings
from drivers.display import open_display
from drivers.fonts import find_fonts
from terminal import flow, screens
from terminal.clock import SystemClock
from terminal.flow import Business, Finished, Staff
from terminal.service import Terminal
from terminal.store import DB_NAME, Store
from tests.terminal.conftest import DEVICE_ID, SECRET, start_terminal

STAFF = {"id": "0131", "name": "王芳"}
PLAIN = Business(project_no="330106202612010001", task_name="社会保障卡申领")  # no dept: settings'


def open_store(path):
    return Store(path / DB_NAME, device_id=DEVICE_ID, secret=SECRET, hash_alg="sha256",
                 boot_id="test")


def invite_body(visit_id: str, project_no: str = "330106202612010001") -> dict:
    return {"visit_id": visit_id, "staff": STAFF,
            "items": [{"project_no": project_no, "task_name": "社会保障卡申领"}]}


def limit_pages(store: Store) -> None:
    """SQLITE_FULL from now on for anything that needs a page more (a full disk)."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def unlimit_pages(store: Store) -> None:
    store.db.execute("PRAGMA max_page_count = 1073741823")


BIG = "行政服务中心" * 700   # ~12 KB of UTF-8 per record: overflow pages, so new ones


def test_text_sqlite_cannot_take_is_refused_with_503_and_the_terminal_goes_on(running):
    t = running.terminal
    bad = Business(project_no="330106202612010009", task_name="x\udfff")
    reply = t.request(lambda rid: flow.Invite("bad-1", (bad,), Staff("0131", "王芳"), rid))
    assert reply.status == 503 and reply.body["error"] == "storage_failed"
    assert "cannot be stored" in reply.body["message"]
    assert running.call("GET", "/v1/status").json()["state"] == "idle"  # nothing changed
    assert running.call("POST", "/v1/invitations", invite_body("good-1")).status_code == 201
    running.press(5)
    running.wait_for(lambda: running.records(), what="the good rating")
    assert [(r["visit_id"], r["level"]) for r in running.records()] == [("good-1", 5)]


def test_an_unexpected_failure_while_storing_a_rating_holds_it_and_the_terminal_runs(running):
    t = running.terminal
    assert t.request(lambda rid: flow.Invite("v-1", (PLAIN,), Staff("0131", "王芳"), rid)).status == 201
    # the settings' department name changes to one that cannot be encoded (a bug elsewhere):
    # the rating's records then fail in records.canonical with UnicodeEncodeError
    t.post(flow.ConfigChanged(replace(t.state.config, dept_name="部\ud800")))
    running.press(4)
    running.wait_for(lambda: t.state.pending, what="the rating held in memory")
    status = running.call("GET", "/v1/status").json()
    assert status["state"] == "storage_error" and status["held_in_memory"] == 1
    assert running.call("GET", "/v1/invitations/v-1").json() == {
        "visit_id": "v-1", "state": "rated", "level": 4, "tags": [],
        "rated_at": t.state.pending[0]["rated_at"], "stored": False}
    assert t.stats["store_failures"] >= 1
    assert running.records() == []
    assert running.call("GET", "/v1/status").status_code == 200  # still serving


def test_no_201_when_the_superseded_record_cannot_be_stored(staffed):
    t = staffed.terminal
    assert staffed.call("POST", "/v1/invitations", invite_body("first", "p-1")).status_code == 201
    t.request(lambda rid: flow.ConfigChanged(replace(t.state.config, dept_name=BIG), rid))
    limit_pages(t.store)
    refused = staffed.call("POST", "/v1/invitations", invite_body("second", "p-2"))
    assert refused.status_code == 503 and refused.json()["error"] == "storage_failed"
    status = staffed.call("GET", "/v1/status").json()
    assert status["open_visit"]["visit_id"] == "first"   # nothing changed
    assert staffed.call("GET", "/v1/invitations/second").status_code == 404
    assert t.store.open_visit_ids() == ["first"]
    unlimit_pages(t.store)
    assert staffed.call("POST", "/v1/invitations", invite_body("second", "p-2")).status_code == 201
    assert [(r["visit_id"], r["unrated_reason"]) for r in staffed.records()] == [
        ("first", "superseded")]
    assert t.store.open_visit_ids() == ["second"]


def test_a_clean_stop_writes_the_rating_held_in_memory(tmp_path):
    run, close = start_terminal(tmp_path, run_flow=False)
    t = run.terminal
    try:
        t.recover()
        t.handle(flow.SignIn(Staff("0131", "王芳")))
        t.handle(flow.Invite("held-1", (PLAIN,)))
        assert t.store.open_visit_ids() == ["held-1"]
        t.handle(flow.ConfigChanged(replace(t.state.config, dept_name=BIG)))
        limit_pages(t.store)
        t.handle(flow.Press(5))
        assert len(t.state.pending) == 1 and t.state.storage_error
        assert run.call("GET", "/v1/invitations/held-1").json()["stored"] is False
        unlimit_pages(t.store)  # room again, before the next retry is due: then the stop
        t.shutdown()
        assert [(r["visit_id"], r["kind"], r["level"]) for r in run.records()] == [
            ("held-1", "rating", 5)]
        assert t.store.open_visit_ids() == []
    finally:
        close()


def test_a_stop_while_a_bad_rating_is_given_keeps_the_rating(tmp_path):
    run, close = start_terminal(tmp_path, run_flow=False)
    t = run.terminal
    try:
        t.recover()
        t.handle(flow.Invite("bad-level", (PLAIN,), Staff("0131", "王芳")))
        t.handle(flow.Press(1))   # reasons are being chosen
        assert isinstance(t.state.screen, flow.Tagging)
        t.shutdown()
        [record] = run.records()
        assert (record["kind"], record["level"], record["tags_missing"]) == ("rating", 1, True)
    finally:
        close()


def kiosk_terminal(path, store: Store) -> Terminal:
    cfg = flow.FlowConfig(mode="kiosk", tags=tags.builtin(), device_id=DEVICE_ID)
    return Terminal(cfg, store=store, clock=SystemClock(),
                    display=open_display(DisplaySettings(driver="dummy")),
                    render=partial(screens.render, fonts=find_fonts(())),
                    lookup=lambda effect: None)


def test_a_kiosk_choice_open_at_a_crash_ends_interrupted_at_the_next_start(tmp_path):
    store = open_store(tmp_path)
    t = kiosk_terminal(tmp_path, store)
    t.recover()
    t.handle(flow.CardRead("resident", "111", "张*", "11010519491231002X"))
    found = tuple(Finished(Business(f"33010620261201000{n}", "营业执照变更登记",
                                    dept_name="区市场监督管理局"), "陈静") for n in (1, 2))
    t.handle(flow.LookupDone(t.state.lookups, businesses=found))
    assert isinstance(t.state.screen, flow.Choosing)
    assert store.open_visit_ids() == []   # nothing is recorded before a choice
    choose = t.state.config.order[flow.CHOOSE_ROLES.index("choose")]
    t.handle(flow.Press(choose))
    assert isinstance(t.state.screen, flow.Invited)
    store.close()   # the power goes: no stop, no shutdown

    again = open_store(tmp_path)
    try:
        kiosk_terminal(tmp_path, again).recover()
        [record] = list(again.records())
        assert (record["channel"], record["real_name"], record["unrated_reason"]) == (
            "kiosk", True, "interrupted")
        assert record["project_no"] == "330106202612010001"
        assert record["boot_id"] == "test"
        assert again.open_visit_ids() == []
        assert again.verify() == []
    finally:
        again.close()


class BrokenDisplay:
    """A panel that fails on every frame (an I2C bus gone)."""
    size, mode = (128, 64), "1"

    def show(self, image):
        raise OSError(121, "Remote I/O error")


def test_a_failing_display_is_counted_and_the_ratings_go_on(tmp_path):
    store = open_store(tmp_path)
    try:
        t = Terminal(flow.FlowConfig(tags=tags.builtin()), store=store, clock=SystemClock(),
                     display=BrokenDisplay(),
                     render=partial(screens.render, fonts=find_fonts(())),
                     leds=lambda lit: (_ for _ in ()).throw(OSError("GPIO busy")))
        stop = threading.Event()
        t.recover()
        t.handle(flow.Invite("d-1", (PLAIN,), Staff("0131", "王芳")))
        t.handle(flow.Press(5))
        stop.set()
        assert [r["level"] for r in store.records()] == [5]
        assert t.stats["effect_failures"] >= 2
    finally:
        store.close()
