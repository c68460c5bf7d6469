"""What the event stream says (GET /v1/events, docs/local-api.md): the events one step
of the flow makes, read from the state before and after it and the records it wrote.

`outcome` is the one object a business system gets for a visit that is no longer open,
from the stream and from GET /v1/invitations/{visit_id} alike.
"""
from __future__ import annotations

from terminal import flow


def outcome(visit_id: str, record: dict, stored: bool = True) -> dict:
    if record.get("kind") == "rating":
        out = {"visit_id": visit_id, "state": "rated", "level": record["level"],
               "tags": list(record.get("tags") or []), "rated_at": record["rated_at"]}
    else:
        reason = record["unrated_reason"]
        out = {"visit_id": visit_id, "state": "unrated", "reason": reason, "unrated_reason": reason}
    if not stored:
        out["stored"] = False
    return out


def window(state) -> dict:
    out = {"state": "paused" if state.paused else "open"}
    if state.paused and state.pause_message:
        out["message"] = state.pause_message
    return out


def staff(state) -> dict:
    s = state.staff
    return {"staff": None if s is None else {"id": s.id, "name": s.name}}


def of_step(before, after, drafts, stored: bool = True) -> list[tuple[str, dict]]:
    """(event name, data) for one step, in the order a business system reads them: the
    outcome of a visit that ended before the invitation that took its place."""
    events, seen = [], set()
    for draft in drafts:
        visit_id = draft.get("visit_id")
        if visit_id and visit_id not in seen:  # one outcome per visit, not per business
            seen.add(visit_id)
            events.append(("outcome", outcome(visit_id, draft, stored)))
    was, now = flow.open_visit(before), flow.open_visit(after)
    if now is not None and (was is None or was.visit_id != now.visit_id):
        events.append(("invitation", {"visit_id": now.visit_id, "state": "open"}))
    if (before.paused, before.pause_message) != (after.paused, after.pause_message):
        events.append(("window", window(after)))
    if before.staff != after.staff:
        events.append(("staff", staff(after)))
    return events
