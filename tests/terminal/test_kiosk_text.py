"""Text no record can hold, from the kiosk's two outside sources: the central lookup
answer and the ID card itself. A real kiosk runtime, the simulated reader on a real
pseudo-terminal and the reference receiver, as in test_kiosk_runtime.py."""
from __future__ import annotations

import json

import pytest

from agent.receiver import Receiver
from drivers.idcard.simulated import resident_card
from terminal import flow
from terminal.flow import Choosing, Invited, Notice
from tests.terminal.test_kiosk_runtime import (DEVICE_ID, SECRET, lookup_table,
                                               make_kiosk)  # noqa: F401  (fixture)


@pytest.fixture
def bad_receiver(tmp_path):
    table = lookup_table()
    good = table["people"][0]["businesses"]
    # JSON text, so that "\udfff" is the escape a central system would send.
    text = json.dumps(table, ensure_ascii=False)
    bad = [dict(good[0], project_no="330106202612019001", task_name="BADNAME"),
           dict(good[1], project_no="330106202612019002", staff_name="BADSTAFF")]
    text = text.replace(json.dumps(good, ensure_ascii=False)[1:-1],
                        json.dumps(good + bad, ensure_ascii=False)[1:-1])
    text = text.replace("BADNAME", "x\\udfff").replace("BADSTAFF", "陈\\ufffe静")
    lookup = tmp_path / "lookup.json"
    lookup.write_text(text, encoding="utf-8")
    with Receiver(tmp_path / "receiver.db", devices={DEVICE_ID: {"secret": SECRET}},
                  lookup_file=lookup) as r:
        yield r


def test_lookup_businesses_with_bad_text_are_left_out_and_the_rest_rated(bad_receiver, make_kiosk):
    k = make_kiosk(bad_receiver.url)
    k.sim.place(resident_card())
    choosing = k.wait_screen(Choosing)
    assert [o.business.project_no for o in choosing.options] == \
        [b["project_no"] for b in lookup_table()["people"][0]["businesses"]]
    k.choose("choose")
    k.wait_screen(Invited)
    k.press(4)
    k.wait_screen(flow.Thanks)
    (record,) = k.records()
    assert record["level"] == 4 and record["project_no"] == "330106202612010001"


@pytest.mark.parametrize("field, value", [("name", "张\x07三"), ("name", "张\ufdd0三")])
def test_a_card_whose_text_holds_bad_characters_is_a_bad_read(tmp_path, make_kiosk, field, value):
    lookup = tmp_path / "lookup.json"
    lookup.write_text(json.dumps(lookup_table(), ensure_ascii=False), encoding="utf-8")
    with Receiver(tmp_path / "receiver.db", devices={DEVICE_ID: {"secret": SECRET}},
                  lookup_file=lookup) as receiver:
        k = make_kiosk(receiver.url)
        k.sim.place(resident_card(**{field: value}))
        assert k.wait_screen(Notice).kind == "unreadable"
        assert receiver.stats["requests"] == 0, "no lookup for a card not read"
