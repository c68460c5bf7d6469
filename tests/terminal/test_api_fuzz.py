"""Schemathesis against the local API (terminal/openapi.json) of a real terminal on
simulated hardware: no 5xx, every answer as documented, invalid data refused with a
4xx, the terminal answering after every operation and still storing ratings at the end.
"""
from __future__ import annotations

import pytest
import requests

from terminal.api import bundled_spec
from tests.terminal.conftest import start_terminal
from tests.terminal.fuzzkit import fuzz
from tests.terminal.test_api import item, wait_state


def fuzz_terminal(tmp_path, examples: int) -> int:
    run, close = start_terminal(tmp_path)
    session = requests.Session()

    def send(case):
        # the real token where the case has a token (a negative case may leave it out, and
        # adding it back would make that case valid in part)
        auth = run.auth if "authorization" in {k.lower() for k in case.headers or {}} else None
        return session.request(**case.as_transport_kwargs(base_url=run.url, headers=auth),
                               timeout=10)

    def after(label):
        r = run.call("GET", "/v1/status")
        assert r.status_code == 200, f"after {label}: {r.text}"

    try:
        # /v1/events is left out: its answer never ends, so no case of it could be checked
        # (tests/terminal/test_browser_api.py tests the stream)
        doc = bundled_spec()
        doc = {**doc, "paths": {p: item for p, item in doc["paths"].items() if p != "/v1/events"}}
        sent = fuzz(doc, send, examples, after)
        # whatever the fuzzer left (a pause, a test, someone signed out): ratings go on
        run.call("DELETE", "/v1/test")
        run.call("DELETE", "/v1/invitations/current")
        assert run.call("PUT", "/v1/window", {"state": "open"}).status_code == 200
        assert run.call("PUT", "/v1/staff", {"id": "1", "name": "王芳"}).status_code == 200
        r = run.call("POST", "/v1/invitations", {"items": [item(9999)], "visit_id": "after-fuzz"})
        assert r.status_code == 201, r.text
        run.press(5)
        assert wait_state(run, "after-fuzz", "rated")["level"] == 5
        assert any(rec["visit_id"] == "after-fuzz" for rec in run.records())
        print(f"{sent} fuzz cases")
        return sent
    finally:
        session.close()
        close()


def test_fuzz_the_local_api(tmp_path):
    assert fuzz_terminal(tmp_path, examples=8) >= 150


@pytest.mark.soak
def test_fuzz_the_local_api_long(tmp_path):
    assert fuzz_terminal(tmp_path, examples=200) >= 4000
