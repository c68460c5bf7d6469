"""A harness that drives the pure flow like the service does, with an in-memory store.

Not a mock of our code: it runs the real `step` and plays the part of the shell (apply
effects in order, answer Append with Stored or StoreFailed), so tests read as stories.
"""
from __future__ import annotations

import itertools
from dataclasses import replace

from config.tags import builtin
from terminal import flow
from terminal.clock import FakeClock
from terminal.flow import (Append, Business, FlowConfig, Reply, Staff, Stored, StoreFailed,
                           Tick)

TEXTS = {"welcome": "欢迎您", "rate_prompt": "请您评价", "thanks": "感谢您的评价",
         "paused": "暂停服务", "idle_hint": "请办理业务后再评价", "title": "好差评"}


def config(**kw) -> FlowConfig:
    base = dict(tags=builtin(), texts=TEXTS, device_id="PJQ-TEST-1", window_no="07",
                hall_name="市民中心", area_code="330106", pf="5", version="test")
    base.update(kw)
    return FlowConfig(**base)


def business(n: int = 1, name: str = "不动产登记") -> Business:
    return Business(project_no=f"3301062026112200{n:04d}", task_name=name,
                    task_code=f"11330106MB{n:04d}", dept_code="11330106002489123X",
                    dept_name="区行政服务中心")


class Flow:
    def __init__(self, cfg: FlowConfig | None = None, staff: Staff | None = Staff("0123", "王芳")):
        self.clock = FakeClock()
        self.state = flow.initial(cfg or config(), self.clock.now())
        self.records: list[dict] = []
        self.replies: list[Reply] = []
        self.sounds: list[str] = []
        self.lookups: list[flow.StartLookup] = []  # kiosk: lookups asked for, in order
        self.fail_store = False
        self._ids = itertools.count(1)
        if staff:
            self.send(flow.SignIn(staff, next(self._ids)))

    def send(self, event):
        queue = [event]
        effects_seen = []
        while queue:
            ev = queue.pop(0)
            if isinstance(ev, (flow.Invite, flow.LookupDone)):
                ev = self.with_store_facts(ev)
            self.state, effects = flow.step(self.state, ev, self.clock.now())
            for eff in effects:
                effects_seen.append(eff)
                if isinstance(eff, Append):
                    if self.fail_store:
                        queue.append(StoreFailed(eff.drafts, "disk full"))
                    else:
                        self.records.extend(eff.drafts)
                        queue.append(Stored(len(eff.drafts)))
                elif isinstance(eff, Reply):
                    self.replies.append(eff)
                elif isinstance(eff, flow.Sound):
                    self.sounds.append(eff.name)
                elif isinstance(eff, flow.StartLookup):
                    self.lookups.append(eff)
        return effects_seen

    def with_store_facts(self, ev):
        """What the service reads from the store before it steps an invitation or a
        kiosk lookup's answer."""
        rated = {r["project_no"] for r in self.records if r["kind"] == "rating"}
        if isinstance(ev, flow.LookupDone):
            return replace(ev, stored_rated=frozenset(
                f.business.project_no for f in ev.businesses) & rated)
        stored = [r for r in self.records if r["visit_id"] == ev.visit_id]
        followed = {r["project_no"] for r in self.records
                    if r["kind"] == "rating" and r["assess_number"] == 2}
        return replace(ev, stored_kind=stored[0]["kind"] if stored else None,
                       stored_rated=frozenset(b.project_no for b in ev.items) & rated,
                       stored_follow_ups=frozenset(b.project_no for b in ev.items) & followed)

    def request(self, make):
        self.send(make(next(self._ids)))
        return self.replies[-1]

    def invite(self, *items, visit_id="visit-1", staff=None):
        return self.request(lambda rid: flow.Invite(visit_id, tuple(items or (business(),)),
                                                    staff, rid))

    def press(self, *buttons):
        for b in buttons:
            self.send(flow.Press(b))

    def advance(self, ms: int):
        """Let time pass, ticking at every deadline on the way like the service does."""
        end = self.clock.mono_ms() + ms
        while True:
            due = flow.next_deadline(self.state)
            if due is None or due > end:
                break
            self.clock.advance(max(0, due - self.clock.mono_ms()))
            self.send(Tick())
        self.clock.advance(end - self.clock.mono_ms())
        self.send(Tick())

    @property
    def screen(self):
        return type(self.state.screen).__name__
