"""The platform's rating page of each business of a visit, for the QR code (apis.md §1b).

An item's own `rate_url` first; else `qr.url_template` filled from the record's fields.
A template URL that cannot be drawn on this panel is left out (the settings check
refuses templates whose usual URLs do not fit; an item's own URL that does not fit is
refused at invitation, `too_long`).
"""
from __future__ import annotations

from config import qr
from terminal.flow.model import Business, FlowConfig, Visit


def fields(config: FlowConfig, visit: Visit, item: Business) -> dict:
    """The record fields a template may name (config/qr.py TEMPLATE_FIELDS)."""
    staff = visit.staff
    return {"project_no": item.project_no, "task_code": item.task_code,
            "task_handle_item": item.task_handle_item,
            "dept_code": item.dept_code or config.dept_code, "area_code": config.area_code,
            "hall_code": config.hall_code, "window_no": config.window_no, "pf": config.pf,
            "device_id": config.device_id, "visit_id": visit.visit_id,
            "staff_id": staff.id if staff else "", "channel": visit.channel}


def too_long(config: FlowConfig, items) -> Business | None:
    """The first item whose own rate_url cannot be drawn on the panel."""
    return next((it for it in items if it.rate_url and not qr.fits(it.rate_url, config.panel)),
                None)


def urls(config: FlowConfig, visit: Visit) -> tuple[str, ...]:
    """One URL per business that has one, in the visit's order, each once."""
    out: list[str] = []
    for item in visit.items:
        url = item.rate_url
        if not url and config.qr_template:
            url = qr.fill(config.qr_template, fields(config, visit, item))
            if not qr.fits(url, config.panel):
                url = ""
        if url and url not in out:
            out.append(url)
    return tuple(out)
