"""Record drafts: the content of a record as the flow knows it, one per business.

The store adds the chain fields (record_id, device_id, chain_id, seq, hashes) and boot_id.
`mono_ms` is the monotonic time of the record's own time stamp: `rated_at` for a rating,
`invited_at` for an unrated record, so the agent can correct both later.
"""
from __future__ import annotations

from typing import Iterable

from terminal.records import SCORES
from terminal.flow.model import FlowConfig, Visit


def _base(config: FlowConfig, visit: Visit) -> Iterable[dict]:
    staff = visit.staff
    for item in visit.items:
        yield {
            "visit_id": visit.visit_id,
            "channel": visit.channel,
            "pf": config.pf,
            "area_code": config.area_code,
            "hall_code": config.hall_code,
            "window_no": config.window_no,
            "dept_code": item.dept_code or config.dept_code,
            "dept_name": item.dept_name or config.dept_name,
            "project_no": item.project_no,
            "task_code": item.task_code,
            "task_handle_item": item.task_handle_item,
            "task_name": item.task_name,
            "staff_id": staff.id if staff else "",
            "staff_name": staff.name if staff else "",
            "tag_version": config.tags.version if config.tags else "",
            "assess_number": 2 if item.project_no in visit.follow_ups else 1,
            "invited_at": visit.invited_at,
            "real_name": visit.real_name,
        }


def rating(config: FlowConfig, visit: Visit, level: int, *, rated_at: str, rated_mono: int,
           synced: bool, tags: tuple[str, ...] = ()) -> tuple[dict, ...]:
    tags_missing = level in (1, 2) and not tags
    return tuple(dict(base, kind="rating", unrated_reason=None, level=level,
                      score=SCORES[level], tags=list(tags), tags_missing=tags_missing,
                      rated_at=rated_at, clock_synced=visit.clock_synced and synced,
                      mono_ms=rated_mono)
                 for base in _base(config, visit))


def unrated(config: FlowConfig, visit: Visit, reason: str) -> tuple[dict, ...]:
    return tuple(dict(base, kind="unrated", unrated_reason=reason, level=None, score=None,
                      tags=[], tags_missing=False, rated_at=None,
                      clock_synced=visit.clock_synced, mono_ms=visit.invited_mono)
                 for base in _base(config, visit))


def chosen_tags(options, selected) -> tuple[str, ...]:
    """Selected codes in the order the list shows them, so records are stable."""
    return tuple(t.code for t in options if t.code in selected)
