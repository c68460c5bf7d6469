"""Privacy (docs/idcard-protocol.md §9): after kiosk sessions with a known card holder, neither the
holder's name nor the ID number is anywhere at rest or in a log, in any encoding.

The holder is the simulated reader's sample resident card (张三, 11010519491231002X,
fictitious) and its foreign card (玛丽, 932682198501010017). Sessions run twice:
in-process (a real kiosk Runtime, the real reference receiver and the sync agent, every
logger at DEBUG), and as a `pingjia -vv simulate --headless --mode kiosk` subprocess
(DEBUG log on its stderr). The device's database, its -wal and -shm files (while open
and after closing), every log line, stdout and the status call are searched.
"""
from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import pytest
import requests

from agent.sync import Agent
from drivers.idcard.simulated import foreign_2023_card, hk_mo_tw_card, resident_card
from terminal import flow
from tests.terminal.test_kiosk_runtime import SECRET, TOKEN, Kiosk, receiver  # noqa: F401
from tests.cli.test_simulate import Sim

HOLDERS = [resident_card().card, foreign_2023_card().card, hk_mo_tw_card().card]
SECRETS = [s for card in HOLDERS for s in (card.name, card.id_number, card.address)
           if s and len(s) >= 2]
ENCODINGS = ("utf-8", "utf-16-le", "gbk")


def needles() -> list[tuple[str, str, bytes]]:
    out = []
    for text in SECRETS:
        for enc in ENCODINGS:
            out.append((text, enc, text.encode(enc)))
        if text.isascii():  # an ID number's X may be written in lower case
            out.append((text, "utf-16-le lower", text.lower().encode("utf-16-le")))
            out.append((text, "ascii lower", text.lower().encode("ascii")))
    return out


def leaks(data: bytes) -> list[str]:
    return [f"{text!r} as {enc}" for text, enc, raw in needles() if raw in data]


def db_files(data_dir: Path) -> dict[str, bytes]:
    found = {}
    for name in ("pingjia.db", "pingjia.db-wal", "pingjia.db-shm"):
        path = data_dir / name
        if path.exists():
            found[name] = path.read_bytes()
    return found


def assert_clean(where: str, data: bytes) -> None:
    bad = leaks(data)
    assert not bad, f"{where} holds {', '.join(bad)}"


def test_the_needles_are_really_searched():
    """The search itself works: a file with the name in GBK is caught."""
    assert leaks("…张三…".encode("gbk")) and leaks("1101051949123100".encode("utf-16-le")) == []
    assert leaks(("x" + HOLDERS[0].id_number).encode("utf-16-le"))
    assert not leaks("张*  1101**********002X".encode("utf-8"))


@pytest.fixture
def debug_log():
    """Every logger at DEBUG into one buffer, for the length of the test."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s %(args)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_kiosk_sessions_leave_no_name_or_id_in_the_database_or_the_log(
        tmp_path, receiver, debug_log):  # noqa: F811
    k = Kiosk(tmp_path, receiver.url)
    agent = Agent(k.runtime.settings, secret=SECRET)
    agent_thread = threading.Thread(target=agent.run, daemon=True)
    agent_thread.start()
    data_dir = k.db_path.parent
    seen: dict[str, bytes] = {}
    try:
        # 1: a resident card, three businesses, one chosen and rated
        k.sim.place(resident_card())
        k.wait_screen(flow.Choosing)
        k.choose("choose")
        k.wait_screen(flow.Invited)
        k.press(5)
        k.wait_screen(flow.Thanks)
        # 2: the same card again, then leave the list
        k.sim.remove()
        time.sleep(0.8)
        k.sim.place(resident_card())
        k.wait_screen(flow.Choosing, timeout=10)
        k.choose("exit")
        k.wait_screen(flow.Idle)
        # 3: a card that cannot be read, then a foreign card rated badly
        k.sim.remove()
        time.sleep(0.8)
        k.sim.inject(0x41)
        k.sim.place(resident_card())
        assert k.wait_screen(flow.Notice, timeout=10).kind == "unreadable"
        k.press(1)
        k.sim.place(foreign_2023_card())
        k.wait_screen(flow.Invited, timeout=10)
        k.press(1)
        k.wait_screen(flow.Tagging)
        k.press(k.state.config.order[flow.TAG_ROLES.index("toggle")])
        k.press(k.state.config.order[flow.TAG_ROLES.index("submit")])
        k.wait_screen(flow.Thanks)
        # 4: nobody found; then the network down
        k.sim.place(hk_mo_tw_card())
        assert k.wait_screen(flow.Notice, timeout=10).kind == "not_found"
        k.press(1)
        receiver.stop()
        k.sim.remove()
        time.sleep(0.8)
        k.sim.place(resident_card())
        assert k.wait_screen(flow.Notice, timeout=10).kind == "network"
        receiver.start()
        k.wait(lambda: receiver.count(k.runtime.settings.device.id) == 2,
               "the agent to deliver both ratings", timeout=15)

        status = requests.get(f"http://127.0.0.1:{k.port}/v1/status", timeout=10,
                              headers={"Authorization": f"Bearer {TOKEN}"})
        assert status.status_code == 200
        assert_clean("GET /v1/status", status.content)
        seen = db_files(data_dir)
        assert "pingjia.db-wal" in seen, "the sessions ran with the WAL open"
    finally:
        agent.stop()
        agent_thread.join(timeout=10)
        agent.close()
        k.close()

    records = [r for r in k.records()]
    assert [(r["real_name"], r["level"]) for r in records] == [(True, 5), (True, 1)]
    for name, data in seen.items():
        assert_clean(f"{name} (open)", data)
    for name, data in db_files(data_dir).items():
        assert_clean(f"{name} (closed)", data)
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert_clean(str(path), path.read_bytes())
    log_text = debug_log.getvalue()
    assert "lookup" in log_text and "card read" in log_text, "the log really was captured"
    assert_clean("the DEBUG log", log_text.encode("utf-8"))


def test_a_simulator_run_leaves_no_name_or_id_in_its_database_or_output(tmp_path):
    sim = Sim(tmp_path, "--mode", "kiosk", verbose=True)
    try:
        sim.wait_status(lambda s: s["hardware"]["reader"]["state"] == "connected", "the reader")
        sim.keys("c")
        sim.wait_status(lambda s: s["state"] == "choosing", "the list")
        sim.keys("3")
        sim.wait_status(lambda s: s["state"] == "invited", "the rating screen")
        sim.keys("4")
        sim.wait_line("stored #1 level 4")
        sim.keys("u")
        sim.wait_status(lambda s: s["state"] == "notice", "the unreadable card")
        sim.keys("5f")
        sim.wait_status(lambda s: s["state"] == "invited", "the foreign card's business",
                        timeout=15)
        sim.keys("3")
        sim.wait_line("stored #2 level 3")
        sim.wait_status(lambda s: s["queue_depth"] == 0 and s["last_upload_at"], "delivery")
        status = sim.call("GET", "/v1/status")
        assert_clean("GET /v1/status", status.content)
        open_files = db_files(sim.data)
    finally:
        code = sim.stop()
    assert code == 0
    for name, data in open_files.items():
        assert_clean(f"{name} (open)", data)
    for name, data in db_files(sim.data).items():
        assert_clean(f"{name} (closed)", data)
    stderr = sim.stderr_path.read_bytes()
    assert b"DEBUG" in stderr, "the subprocess really logged at DEBUG"
    assert_clean("stderr", stderr)
    assert_clean("stdout", "\n".join(sim.lines).encode("utf-8"))
