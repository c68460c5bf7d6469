"""Province profiles: the reference layout and the Zhejiang report mapping, worked examples."""
import json

import pytest

from agent import profiles
from agent.outbox import Outbox
from agent.profiles import reference, zhejiang
from terminal.records import check_record
from tests.agent.conftest import DEVICE_ID, SECRET, draft, open_store


def stored(device, *drafts_):
    """The rows the agent reads for these drafts, and the sealed records."""
    with open_store(device) as s:
        records = s.append(list(drafts_))
    box = Outbox(device / "pingjia.db", device_id=DEVICE_ID, hash_alg="sha256")
    try:
        return box.next_batch(500), records
    finally:
        box.close()


def test_profiles_by_name():
    assert profiles.get("reference") is reference
    assert profiles.get("zhejiang") is zhejiang
    with pytest.raises(ValueError, match="unknown profile 'fujian'"):
        profiles.get("fujian")


def test_reference_sends_the_signed_records_unchanged(device):
    rows, records = stored(device, draft(1), draft(2, level=None))
    body = json.loads(reference.encode(rows))
    assert body == {"records": records}


def test_zhejiang_worked_example_bad_rating(device):
    rows, [record] = stored(device, draft(7, level=2, tags=("207", "213"),
                                          rated_at="2026-11-22T09:21:10+08:00"))
    [item] = json.loads(zhejiang.encode(rows))["records"]
    assert item["record_id"] == record["record_id"]
    assert item["record"] == record and check_record(item["record"], SECRET, "sha256") == []
    assert item["report"] == {
        "areaCode": "330106",
        "deptCode": "11330106002489123X",
        "proDepartCode": "11330106002489123X",
        "proDepart": "区行政服务中心",
        "taskCode": "11330106MB0001",
        "taskHandleItem": "",
        "taskName": "不动产登记",
        "projectNo": "330106202611220000007",
        "proStatus": "3",
        "proManager": "王芳",
        "pf": "5",
        "satisfaction": "2",
        "evalDetail": "207,213",
        "writingEvaluation": "",
        "assessTime": "2026-11-22 09:21:10",
        "assessNumber": "1",
        "dataSource": "133",
    }


def test_zhejiang_satisfaction_keeps_five_as_very_satisfied():
    # our level 5 非常满意 is Zhejiang's 5 非常满意; 1 非常不满意 is 1
    for level in (5, 4, 3, 2, 1):
        rec = draft(level=level, tags=("101",) if level < 3 else ())
        rec.update(record_id="r", seq=1)
        assert zhejiang.report(rec)["satisfaction"] == str(level)
    assert zhejiang.SATISFACTION_TEXT[5] == "非常满意" and zhejiang.SATISFACTION_TEXT[1] == "非常不满意"


def test_gbt39046_code_list_is_the_other_way_round():
    assert [zhejiang.gbt39046_satisfaction(lv) for lv in (5, 4, 3, 2, 1)] == ["1", "2", "3", "4", "5"]


def test_a_good_rating_without_tags_has_empty_detail():
    rec = dict(draft(level=4), record_id="r", seq=1)
    assert zhejiang.report(rec)["evalDetail"] == ""


def test_assess_time_stays_in_the_records_own_offset():
    assert zhejiang.assess_time("2026-11-22T23:59:59+08:00") == "2026-11-22 23:59:59"
    assert zhejiang.assess_time("2026-11-22T01:02:03+00:00") == "2026-11-22 01:02:03"


def test_an_unrated_record_is_never_reported_as_a_rating(device):
    rows, [record] = stored(device, draft(3, level=None, reason="timeout"))
    [item] = json.loads(zhejiang.encode(rows))["records"]
    assert item["report"] is None  # nothing for report.do: no made-up satisfaction
    assert item["record"]["kind"] == "unrated" and item["record"] == record
    assert zhejiang.report(record) is None
