"""One source of field limits (issue 10, part 2): the local API takes the limits of the
fields that become record fields from the record contract, so that whatever it answers
201 becomes records that the central system accepts.

The property test draws invitation bodies from the OpenAPI request schema (with
schemathesis's Hypothesis strategy for an operation; hypothesis-jsonschema 0.23 does not
run on the Hypothesis this project uses), posts them to a real terminal, rates each accepted one, uploads
everything with the real sync agent and asks the reference receiver: every record must
be accepted, none rejected, the chain whole.
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st

from agent.receiver import Receiver
from agent.sync import Agent
from terminal.api import RECORD_SCHEMA, SPEC, bundled_spec
from tests.agent.conftest import Sleeps, settings_for
from tests.terminal.conftest import DEVICE_ID, SECRET, start_terminal
from tests.terminal.test_api import assert_error, wait_state

RECORD_REF = RECORD_SCHEMA["$id"] + "#/properties/"
# Request fields that are stored as record fields, and the record field each becomes.
# `rate_url` is the one business field never stored: it becomes the QR code on the screen
# (apis.md §1b), and its limit (512) is the contract's own.
SHOWN_ONLY = {"rate_url"}
RECORD_FIELDS = {("Business", name): name for name in SPEC["components"]["schemas"]["Business"]["properties"]
                 if name not in SHOWN_ONLY}
RECORD_FIELDS.update({("Staff", "id"): "staff_id", ("Staff", "name"): "staff_name"})


@pytest.mark.parametrize("schema, prop", sorted(RECORD_FIELDS))
def test_record_fields_take_their_limits_from_the_record_schema(schema, prop):
    node = SPEC["components"]["schemas"][schema]["properties"][prop]
    field = RECORD_FIELDS[(schema, prop)]
    assert field in RECORD_SCHEMA["properties"], f"{schema}.{prop} is no record field"
    assert node.get("$ref") == RECORD_REF + field, f"{schema}.{prop} must $ref the record schema"
    # a limit typed here as well could drift from the record's
    assert not {"maxLength", "maxItems", "maximum"} & set(node), f"{schema}.{prop} repeats a limit"


def test_the_one_business_field_not_stored_is_the_rate_url():
    business = SPEC["components"]["schemas"]["Business"]["properties"]
    assert set(business) - set(RECORD_SCHEMA["properties"]) == SHOWN_ONLY
    assert business["rate_url"]["maxLength"] == 512


def test_the_visit_id_takes_its_length_from_the_record_schema():
    node = SPEC["components"]["schemas"]["VisitId"]
    assert node["$ref"] == RECORD_REF + "visit_id" and "maxLength" not in node


def test_the_bundled_document_has_the_record_limits_in_place():
    business = bundled_spec()["components"]["schemas"]["Business"]["properties"]
    assert business["dept_code"]["allOf"][0]["maxLength"] == RECORD_SCHEMA["properties"]["dept_code"]["maxLength"]
    assert "$ref" not in business["dept_code"]


@pytest.mark.parametrize("field, length", [("dept_code", 19), ("dept_name", 65)])
def test_a_field_longer_than_the_record_allows_is_refused(staffed, field, length):
    body = {"items": [{"project_no": "3301", "task_name": "x", field: "9" * length}]}
    answer = assert_error(staffed.call("POST", "/v1/invitations", body), 400, "invalid_request")
    assert answer["field"] == f"items[0].{field}"
    assert f"at most {length - 1} characters" in answer["message"]


def invitations():
    """Bodies of POST /v1/invitations as the request schema allows them."""
    schema = schemathesis.openapi.from_dict(bundled_spec())
    return schema["/v1/invitations"]["POST"].as_strategy().map(lambda case: case.body)


def max_length(node) -> int:
    """The tightest maxLength of a bundled schema node, its allOf parts included."""
    found = [node["maxLength"]] if "maxLength" in node else []
    found += [max_length(part) for part in node.get("allOf", [])]
    return min(found, default=10**6)


def at_the_limits():
    """Bodies whose strings reach the length the API allows, where a generator aiming at
    typical values rarely goes: the limits are read from the API's own document."""
    schemas = bundled_spec()["components"]["schemas"]
    letters = st.characters(codec="utf-8", categories=("L", "N", "P", "S"))

    def text(node):
        n = max_length(node)
        return st.sampled_from([n, 1]).flatmap(lambda k: st.text(letters, min_size=k, max_size=k))

    def obj(name):
        props, required = schemas[name]["properties"], schemas[name]["required"]
        return st.fixed_dictionaries({k: text(props[k]) for k in required},
                                     optional={k: text(v) for k, v in props.items() if k not in required})

    return st.fixed_dictionaries({"items": st.lists(obj("Business"), min_size=1, max_size=3,
                                                    unique_by=lambda b: b["project_no"])},
                                 optional={"staff": obj("Staff")})


def accepted_means_delivered(tmp_path, examples: int) -> None:
    run, close = start_terminal(tmp_path)
    rx = Receiver(tmp_path / "rx.db", devices={DEVICE_ID: {"secret": SECRET}}).start()
    agent = None
    try:
        assert run.call("PUT", "/v1/staff", {"id": "0131", "name": "王芳"}).status_code == 200
        businesses = []

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much, HealthCheck.large_base_example])
        @given(body=st.one_of(invitations(), at_the_limits()))
        def one(body):
            r = run.call("POST", "/v1/invitations", body)
            assert r.status_code < 500, r.text
            if r.status_code != 201:
                return
            visit_id = r.json()["visit_id"]
            run.press(5)
            wait_state(run, visit_id, "rated")
            businesses.extend(item["project_no"].strip() for item in body["items"])

        one()
        assert businesses, "no drawn body was accepted: the test proved nothing"
        records = run.records()
        assert sorted(r["project_no"] for r in records) == sorted(businesses)
        agent = Agent(settings_for(tmp_path / "dev", rx.url), secret=SECRET, db_path=run.db_path,
                      sleep=Sleeps(), kernel_synced=lambda: True, wake=False, max_attempts=3)
        assert agent.drain(), agent.last_error
        assert agent.stats["rejected"] == 0
        stats = rx.stats
        assert rx.count(DEVICE_ID) == len(records), stats
        assert stats.get("rejected", 0) == 0 and stats.get("invalid", 0) == 0, stats
        assert rx.chain_report(DEVICE_ID) == []
    finally:
        if agent is not None:
            agent.close()
        rx.close()
        close()


def test_whatever_the_api_accepts_the_receiver_accepts(tmp_path):
    accepted_means_delivered(tmp_path, examples=25)


@pytest.mark.soak
def test_whatever_the_api_accepts_the_receiver_accepts_long(tmp_path):
    accepted_means_delivered(tmp_path, examples=400)
