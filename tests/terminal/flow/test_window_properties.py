"""Property tests: random days at a window never break the flow's promises.

- the flow never raises;
- no rating is recorded that nobody pressed (level and visit match a real press);
- every business of every accepted invitation ends up with exactly one record;
- bad ratings carry chosen tags or say tags_missing; good ones carry none.
"""
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings, strategies as st

from terminal import flow
from terminal.flow import Staff
from tests.terminal.flowkit import Flow, business, config

events = st.one_of(
    st.tuples(st.just("invite"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("press"), st.integers(1, 5)),
    st.tuples(st.just("hold"), st.integers(1, 5)),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("advance"), st.sampled_from([100, 1000, 5000, 29_000, 31_000, 61_000])),
    st.tuples(st.just("sign_in")),
    st.tuples(st.just("sign_out")),
    st.tuples(st.just("pause"), st.booleans()),
    st.tuples(st.just("store"), st.booleans()),
    st.tuples(st.just("config")),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events, max_size=60))
def test_random_days_keep_every_promise(script):
    f = Flow()
    accepted: dict[str, int] = {}
    pressed = defaultdict(set)
    n = 0
    for ev in script:
        kind = ev[0]
        before = f.state.screen
        if kind == "invite":
            n += 1
            same = ev[2] and flow.open_visit(f.state) is not None
            vid = flow.open_visit(f.state).visit_id if same else f"v{n}"
            items = tuple(business(n * 10 + i) for i in range(ev[1]))
            if same:
                items = flow.open_visit(f.state).items
            reply = f.invite(*items, visit_id=vid)
            if reply.status == 201:
                accepted[vid] = len(items)
        elif kind in ("press", "hold"):
            if isinstance(before, flow.Invited) and not f.state.storage_error:
                pressed[before.visit.visit_id].add(ev[1])
            f.send(flow.Press(ev[1]) if kind == "press" else flow.Hold(ev[1]))
        elif kind == "cancel":
            f.request(lambda rid: flow.Cancel(rid))
        elif kind == "advance":
            f.advance(ev[1])
        elif kind == "sign_in":
            f.request(lambda rid: flow.SignIn(Staff("1", "张"), rid))
        elif kind == "sign_out":
            f.request(lambda rid: flow.SignOut(rid))
        elif kind == "pause":
            f.request(lambda rid, p=ev[1]: flow.SetWindow(p, "", rid))
        elif kind == "store":
            f.fail_store = ev[1]
        elif kind == "config":
            f.send(flow.ConfigChanged(config(window_no="08")))

    # the day ends: storage works, everyone has left
    f.fail_store = False
    f.advance(10 * 60_000)

    assert f.state.pending == () and f.state.storage_error == ""
    assert flow.open_visit(f.state) is None
    per_visit = defaultdict(list)
    for r in f.records:
        per_visit[r["visit_id"]].append(r)
    assert set(per_visit) == set(accepted)
    for vid, recs in per_visit.items():
        assert len(recs) == accepted[vid], vid
        assert len(Counter(r["project_no"] for r in recs)) == len(recs)
        assert len({(r["kind"], r["level"], tuple(r["tags"])) for r in recs}) == 1
        r = recs[0]
        if r["kind"] == "rating":
            assert r["level"] in pressed[vid], "a rating nobody pressed"
            assert r["unrated_reason"] is None and r["rated_at"]
            if r["level"] <= 2:
                codes = {t.code for t in config().tags.for_level(r["level"])}
                assert set(r["tags"]) <= codes
                assert r["tags_missing"] == (r["tags"] == [])
            else:
                assert r["tags"] == [] and r["tags_missing"] is False
        else:
            assert r["unrated_reason"] in ("timeout", "superseded", "cancelled")
            assert r["level"] is None and r["score"] is None and r["rated_at"] is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["press", "hold", "advance"]), st.integers(1, 5)),
                max_size=40))
def test_no_invitation_no_record(script):
    f = Flow()
    for kind, arg in script:
        if kind == "advance":
            f.advance(arg * 7000)
        else:
            f.send(flow.Press(arg) if kind == "press" else flow.Hold(arg))
    assert f.records == []
