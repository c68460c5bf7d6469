"""The Zhejiang profile: our records mapped onto the 办件评价 `report` fields.

Zhejiang's 办件中心 evaluation service (`report.do`) takes one flat object per rating.
The device does not hold the province's keys: it sends to our own gateway, signed as
always, and the gateway forwards the `report` part. So every item of the batch carries
both:

    {"record_id": "...", "record": {<the signed record>}, "report": {<report.do fields>}}

The signed record travels whole, so the gateway still checks the hash chain and answers
per `record_id` like the reference receiver. An unrated record goes with `"report": null`:
report.do has no form for "invited, not rated", and the device never makes up a rating.

docs/profiles.md holds what this relies on: the interface, the fields and their mapping
from our record, the channel, level and tag codes, and what the gateway must answer.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Mapping, Optional, Sequence

from config.levels import NAMES

# Our level → Zhejiang `satisfaction`. Both number 5 = 非常满意 … 1 = 非常不满意, so the
# table is the identity, written out so that nobody has to guess which way round it is.
SATISFACTION = {5: "5", 4: "4", 3: "3", 2: "2", 1: "1"}

# GB/T 39046-2020 code list A.8 (满意度代码) numbers the other way round:
# 1 非常满意, 2 满意, 3 基本满意, 4 不满意, 5 非常不满意.
GBT39046_SATISFACTION = {5: "1", 4: "2", 3: "3", 2: "4", 1: "5"}
# The interface names each `satisfaction` value by the level's official name.
SATISFACTION_TEXT = {level: NAMES[level] for level in SATISFACTION}

PRO_STATUS_FINISHED = "3"
DATA_SOURCE = "133"


def gbt39046_satisfaction(level: int) -> str:
    """满意度代码 of GB/T 39046 A.8 for our level, for a target that follows the standard:
    level 5 (非常满意) → "1" … level 1 (非常不满意) → "5"."""
    return GBT39046_SATISFACTION[level]


def assess_time(iso: str) -> str:
    """"2026-11-22T09:21:10+08:00" → "2026-11-22 09:21:10" (the record's own offset)."""
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def report(record: Mapping) -> Optional[dict]:
    """The report.do fields of a rating; None for an unrated record (never a made-up rating)."""
    if record["kind"] != "rating":
        return None
    return {
        "areaCode": record["area_code"],
        "deptCode": record["dept_code"],
        "proDepartCode": record["dept_code"],
        "proDepart": record["dept_name"],
        "taskCode": record["task_code"],
        "taskHandleItem": record["task_handle_item"],
        "taskName": record["task_name"],
        "projectNo": record["project_no"],
        "proStatus": PRO_STATUS_FINISHED,
        "proManager": record["staff_name"],
        "pf": record["pf"],
        "satisfaction": SATISFACTION[record["level"]],
        "evalDetail": ",".join(record["tags"]),
        "writingEvaluation": "",
        "assessTime": assess_time(record["rated_at"]),
        "assessNumber": str(record["assess_number"]),
        "dataSource": DATA_SOURCE,
    }


def item(record: Mapping) -> dict:
    return {"record_id": record["record_id"], "record": dict(record), "report": report(record)}


def encode(rows: Sequence) -> bytes:
    items = [item(json.loads(row.json)) for row in rows]
    return json.dumps({"records": items}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
