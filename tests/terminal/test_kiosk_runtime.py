"""A real kiosk: `Runtime` in kiosk mode with the simulated ID-card reader on a real
pseudo-terminal (spoken to through the real driver), and the real reference receiver
serving the lookup. Card → lookup → choose → rate → record; and every way it can fail.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from agent.receiver import Receiver
from config.settings import defaults
from drivers.idcard.simulated import foreign_2023_card, hk_mo_tw_card, resident_card
from terminal import flow
from terminal.flow import Choosing, Invited, LookingUp, Notice
from terminal.runtime import Runtime
from terminal.store import Reader
from tests.terminal.conftest import Running

DEVICE_ID = "PJQ-330106-0042"
SECRET = b"kiosk-test-secret-0123456789abcdef"
TOKEN = "kiosk-test-token-0123456789abcdef"
HOLDER = resident_card().card          # 张三, 11010519491231002X (fictitious)
FOREIGNER = foreign_2023_card().card


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lookup_table() -> dict:
    def biz(n, name, dept, staff="陈静"):
        return {"project_no": f"33010620261201{n:04d}", "task_name": name,
                "task_code": f"11330106002489123X43301{n:05d}", "dept_name": dept,
                "staff_name": staff, "finished_at": "2026-12-01T10:0%d:00+08:00" % n}
    return {"people": [
        {"cert_type": "111", "cert_no": HOLDER.id_number, "businesses": [
            biz(1, "不动产登记（二手房买卖转移登记）", "区自然资源和规划分局"),
            biz(2, "社会保障卡申领", "区人力资源和社会保障局", "李建国"),
            biz(3, "营业执照变更登记", "区市场监督管理局", "王芳")]},
        {"cert_type": FOREIGNER.cert_type, "cert_no": FOREIGNER.id_number, "businesses": [
            biz(4, "外国人工作许可延期", "区科学技术局")]},
    ]}


@pytest.fixture
def receiver(tmp_path):
    lookup = tmp_path / "lookup.json"
    lookup.write_text(json.dumps(lookup_table(), ensure_ascii=False), encoding="utf-8")
    with Receiver(tmp_path / "receiver.db", devices={DEVICE_ID: {"secret": SECRET}},
                  lookup_file=lookup) as r:
        yield r


class Kiosk:
    """A running kiosk terminal; `sim` is its simulated reader."""

    def __init__(self, tmp_path: Path, central_url: str, **reader):
        data = tmp_path / "kiosk"
        data.mkdir(exist_ok=True)
        self.port = free_port()
        settings = defaults().with_values({
            "device": {"id": DEVICE_ID, "mode": "kiosk", "data_dir": str(data),
                       "secret_file": str(tmp_path / "secret")},
            "site": {"area_code": "330106", "hall_name": "市民服务中心"},
            "buttons": {"pin_factory": "mock"},
            "display": {"driver": "dummy"},
            "sound": {"driver": "none"},
            "api": {"bind": "127.0.0.1", "port": self.port, "token": TOKEN, "token_file": ""},
            "central": {"url": central_url},
            "reader": {"driver": "simulated", "poll_ms": 300, "lookup_timeout_s": 1, **reader},
        })
        self.runtime = Runtime(settings, secret=SECRET)
        self.terminal = self.runtime.terminal
        # Every screen the loop draws, in order: a short-lived one (LookingUp, when the
        # loopback lookup answers at once) is seen even if polling would miss it.
        self.drawn: list = []
        self._seen_upto = 0
        render = self.terminal.render
        self.terminal.render = lambda state, *a: (self.drawn.append(state.screen),
                                                  render(state, *a))[1]
        self.sim = self.runtime.reader.sim
        self.db_path = data / "pingjia.db"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.runtime.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.wait(lambda: self.runtime.reader.health()["state"] == "connected", "the reader")

    def close(self) -> None:
        self.stop.set()
        self.terminal.post(flow.Tick())
        self.thread.join(timeout=5)
        self.runtime.close()

    @property
    def state(self) -> flow.State:
        return self.terminal.snapshot()

    def wait(self, predicate, what: str, timeout: float = 8.0):
        return Running.wait_for(self, predicate, timeout, what)

    def wait_screen(self, kind, what: str = "", timeout: float = 8.0):
        """The next screen of `kind` drawn after the one the last call returned."""
        def found():
            for i in range(self._seen_upto, len(self.drawn)):
                if isinstance(self.drawn[i], kind):
                    self._seen_upto = i + 1
                    return self.drawn[i]
            return None
        return self.wait(found, what or kind.__name__, timeout)

    def press(self, level: int) -> None:
        self.runtime.panel.simulate(level)

    def choose(self, role: str) -> None:
        order = self.state.config.order
        self.press(order[flow.CHOOSE_ROLES.index(role)])

    def records(self) -> list[dict]:
        with Reader(self.db_path) as r:
            return list(r.records())


@pytest.fixture
def make_kiosk(tmp_path):
    made: list[Kiosk] = []

    def make(url: str, **reader) -> Kiosk:
        k = Kiosk(tmp_path, url, **reader)
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


def test_card_lookup_choose_rate_makes_a_kiosk_record(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    assert isinstance(k.state.screen, flow.Idle) and k.state.config.mode == "kiosk"
    k.sim.place(resident_card())
    looking = k.wait_screen(LookingUp)
    assert looking.masked_name == "张*"
    choosing = k.wait_screen(Choosing)
    names = [o.business.task_name for o in choosing.options]
    assert names == ["不动产登记（二手房买卖转移登记）", "社会保障卡申领", "营业执照变更登记"]
    assert choosing.options[1].business.dept_name == "区人力资源和社会保障局"
    assert choosing.options[1].finished_at.startswith("2026-12-01")
    k.choose("down")
    k.wait(lambda: k.state.screen.cursor == 1, "the cursor to move")
    k.choose("choose")
    invited = k.wait_screen(Invited)
    assert invited.visit.items[0].task_name == "社会保障卡申领"
    k.press(5)
    k.wait_screen(flow.Thanks)
    (r,) = k.records()
    assert r["channel"] == "kiosk" and r["real_name"] is True
    assert r["kind"] == "rating" and r["level"] == 5
    assert r["project_no"] == "330106202612010002" and r["staff_name"] == "李建国"
    assert r["device_id"] == DEVICE_ID

    # the same card again (lifted and placed back): the rated business is not offered
    k.sim.remove()
    time.sleep(1.0)
    k.sim.place(resident_card())
    choosing = k.wait_screen(Choosing, "the list again", timeout=10)
    assert [o.business.project_no for o in choosing.options] == \
        ["330106202612010001", "330106202612010003"]
    k.choose("exit")
    k.wait_screen(flow.Idle)
    assert len(k.records()) == 1


def test_a_single_business_goes_straight_to_rating_and_bad_ratings_take_tags(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    k.sim.place(foreign_2023_card())
    looking = k.wait_screen(LookingUp)
    assert looking.card_type == "foreign_2023"
    invited = k.wait_screen(Invited)
    assert invited.visit.items[0].task_name == "外国人工作许可延期"
    k.press(2)
    k.wait_screen(flow.Tagging)
    order = k.state.config.order
    k.press(order[flow.TAG_ROLES.index("toggle")])
    k.wait(lambda: k.state.screen.selected, "a tag to be chosen")
    k.press(order[flow.TAG_ROLES.index("submit")])
    k.wait_screen(flow.Thanks)
    (r,) = k.records()
    assert r["level"] == 2 and len(r["tags"]) == 1 and r["real_name"] is True


def test_nobody_found(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    k.sim.place(hk_mo_tw_card())
    assert k.wait_screen(Notice).kind == "not_found"
    k.press(5)
    k.wait_screen(flow.Idle, "idle after a key")
    assert k.records() == []


def test_network_down_has_its_own_screen(tmp_path, make_kiosk):
    k = make_kiosk(f"http://127.0.0.1:{free_port()}")   # nothing listens there
    k.sim.place(resident_card())
    assert k.wait_screen(Notice).kind == "network"
    k.press(3)
    k.wait_screen(flow.Idle)
    assert k.records() == []


def test_a_lookup_that_hangs_times_out(make_kiosk):
    with socket.socket() as silent:     # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        k = make_kiosk(f"http://127.0.0.1:{silent.getsockname()[1]}")
        k.sim.place(resident_card())
        k.wait_screen(LookingUp)
        assert k.wait_screen(Notice, timeout=10).kind == "timeout"


def test_an_unreadable_card(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    k.sim.inject(0x41)                  # the read fails: the card moved
    k.sim.place(resident_card())
    assert k.wait_screen(Notice).kind == "unreadable"
    assert receiver.stats["requests"] == 0, "no lookup for a card not read"


def test_unsupported_card_types(receiver, make_kiosk):
    k = make_kiosk(receiver.url, card_types=["resident"])
    k.sim.place(foreign_2023_card())    # a type these settings do not look up
    assert k.wait_screen(Notice).kind == "unsupported"
    k.press(1)
    k.wait_screen(flow.Idle)
    k.sim.remove()
    time.sleep(1.0)
    k.sim.inject(0x40)                  # a type the reader itself does not support
    k.sim.place(resident_card())
    assert k.wait_screen(Notice, timeout=10).kind == "unsupported"
    assert receiver.stats["requests"] == 0


def test_reader_unplugged_and_back(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    k.sim.unplug()
    assert k.wait_screen(Notice).kind == "reader_fault"
    k.wait(lambda: k.runtime.reader.health()["state"] == "disconnected", "disconnected")
    k.wait(lambda: k.state.health.get("reader") == "disconnected", "the idle screen to know",
           timeout=10)
    k.sim.replug()
    k.wait(lambda: k.runtime.reader.health()["state"] == "connected", "reconnected",
           timeout=5)
    k.press(1)
    k.wait_screen(flow.Idle)
    k.sim.place(resident_card())
    k.wait_screen(Choosing, timeout=10)


def test_a_kiosk_app_invitation_goes_straight_to_rating_even_mid_lookup(receiver, make_kiosk):
    k = make_kiosk(receiver.url)
    k.sim.place(resident_card())
    k.wait_screen(Choosing)
    r = requests.post(f"http://127.0.0.1:{k.port}/v1/invitations", timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"visit_id": "app-1", "items": [
                          {"project_no": "330106202612019999", "task_name": "居住证办理"}]})
    assert r.status_code == 201, r.text
    invited = k.wait_screen(Invited)
    assert invited.visit.visit_id == "app-1"
    k.press(4)
    k.wait_screen(flow.Thanks)
    (rec,) = k.records()
    assert rec["visit_id"] == "app-1" and rec["channel"] == "kiosk"
    assert rec["real_name"] is False
