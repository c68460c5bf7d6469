"""The OpenAPI document is the contract: walk it against the running server.

Every operation's example must succeed with a documented status and a body that fits
the documented schema; every malformed body must get a documented 4xx with the error
schema; the server answers exactly the paths and methods the document lists.
"""
from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from config.edit import default_text
from terminal.api import PREFLIGHTS, RECORD_SCHEMA, ROUTES, SPEC, STREAMS, load_spec

from tests.terminal.conftest import start_terminal

URI = "urn:test:local-api"
REGISTRY = Registry().with_resources([
    (URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)),
    (RECORD_SCHEMA["$id"], Resource.from_contents(RECORD_SCHEMA, default_specification=DRAFT202012)),
])


def absolute(ref: str) -> str:
    return URI + ref if ref.startswith("#") else ref
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The order a business system would call them in, so each example meets the state it needs.
ORDER = ["sign_in", "status", "invite", "visit", "set_window", "cancel", "sign_out",
         "start_test", "test_progress", "stop_test", "reader_test", "reload_config", "script",
         "events"] + sorted(op["operationId"] for item in SPEC["paths"].values()
                            for m, op in item.items() if m == "options")
# answers that are not JSON: the stream never ends (tests/terminal/test_events.py), the
# script and the preflights are tested in test_browser_api.py
NOT_JSON = {"events", "script"}


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method], item.get("parameters", [])


OPS = sorted(operations(), key=lambda o: ORDER.index(o[2]["operationId"]))


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        node = REGISTRY.resolver(URI).lookup(absolute(node["$ref"])).contents
    return node


def validator_for(schema) -> Draft202012Validator:
    if "$ref" in schema:
        schema = {"$ref": absolute(schema["$ref"])}
    return Draft202012Validator(schema, registry=REGISTRY)


def walk(node, visit, where="#"):
    visit(node, where)
    if isinstance(node, dict):
        for k, v in node.items():
            walk(v, visit, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, visit, f"{where}/{i}")


def request_schema(op):
    return op["requestBody"]["content"]["application/json"]["schema"]


def url_of(path, params):
    for p in params:
        path = path.replace("{%s}" % p["name"], str(p["example"]))
    return path


def check_answer(op, r):
    """The status is documented and the body fits its schema."""
    assert str(r.status_code) in op["responses"], (op["operationId"], r.status_code, r.text)
    response = resolve(op["responses"][str(r.status_code)])
    schema = response["content"]["application/json"]["schema"]
    errors = [e.message for e in validator_for(schema).iter_errors(r.json())]
    assert not errors, (op["operationId"], r.status_code, r.json(), errors)
    for header in response.get("headers", {}):
        if r.status_code != 503 or header != "Retry-After":
            assert header in r.headers, (op["operationId"], header)


@pytest.fixture
def running(tmp_path):
    """The conftest's terminal, with a settings file for POST /v1/config/reload to read."""
    settings_file = tmp_path / "pingjia.toml"
    settings_file.write_text(default_text(), encoding="utf-8")
    run, close = start_terminal(tmp_path, settings_file=str(settings_file))
    try:
        yield run
    finally:
        close()


# --- the document itself -------------------------------------------------------------------

def test_the_document_is_a_well_formed_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1.") and SPEC["info"]["title"] and SPEC["info"]["version"]
    assert SPEC["security"] == [{"bearer": []}]
    assert SPEC["components"]["securitySchemes"]["bearer"] == {
        **SPEC["components"]["securitySchemes"]["bearer"], "type": "http", "scheme": "bearer"}
    ids = [op["operationId"] for _, _, op, _ in OPS]
    assert len(ids) == len(set(ids)) == len(ORDER)
    for path, method, op, params in OPS:
        assert op["responses"] and all(code.isdigit() for code in op["responses"])
        assert "500" in op["responses"], op["operationId"]
        assert ("401" in op["responses"]) == (op.get("security") != []), op["operationId"]
        for name in (p["name"] for p in params):
            assert "{%s}" % name in path


def test_every_schema_is_valid_draft_2020_12_and_every_ref_resolves():
    schemas = []

    def visit(node, where):
        if isinstance(node, dict) and "$ref" in node:
            assert resolve(node) is not None, where
        if isinstance(node, dict) and isinstance(node.get("schema"), dict):
            schemas.append((where, node["schema"]))

    walk(SPEC, visit)
    schemas += [(f"#/components/schemas/{n}", s) for n, s in SPEC["components"]["schemas"].items()]
    assert len(schemas) > 20
    for where, schema in schemas:
        Draft202012Validator.check_schema(schema)


def test_every_example_fits_its_schema():
    count = 0

    def visit(node, where):
        nonlocal count
        if isinstance(node, dict) and "schema" in node and "example" in node:
            assert not list(validator_for(node["schema"]).iter_errors(node["example"])), where
            count += 1

    walk(SPEC, visit)
    assert count >= 10
    for path, method, op, params in OPS:
        for p in params:
            assert not list(validator_for(p["schema"]).iter_errors(p["example"]))
        if "requestBody" in op:
            assert "example" in op["requestBody"]["content"]["application/json"], op["operationId"]


def test_the_packaged_document_is_the_one_served():
    assert load_spec() == SPEC


# --- the server against the document ----------------------------------------------------------

def test_every_example_request_succeeds_with_a_documented_answer(running):
    for path, method, op, params in OPS:
        if method == "options" or op["operationId"] in NOT_JSON:
            continue
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("example")
        r = running.call(method.upper(), url_of(path, params), json=body)
        assert 200 <= r.status_code < 300, (op["operationId"], r.text)
        check_answer(op, r)


def test_documented_errors_come_with_documented_bodies(running):
    """The refusals a business system will meet: each status as documented."""
    by_id = {op["operationId"]: (path, op, params) for path, _, op, params in OPS}
    path, op, _ = by_id["invite"]
    example = request_schema_example(op)
    del example["staff"]
    answers = [(op, running.call("POST", path, json=example))]  # no staff signed in
    path, op, _ = by_id["cancel"]
    answers.append((op, running.call("DELETE", path)))
    path, op, params = by_id["visit"]
    answers.append((op, running.call("GET", url_of(path, params))))
    answers.append((op, running.call("GET", path.replace("{visit_id}", "bad%20id"))))
    answers.append((op, running.call("GET", url_of(path, params), headers={"Authorization": "x"})))
    assert [r.status_code for _, r in answers] == [409, 404, 404, 400, 401]
    for op, r in answers:
        check_answer(op, r)


def request_schema_example(op):
    return copy.deepcopy(op["requestBody"]["content"]["application/json"]["example"])


def malformed(schema, example, path=()):
    """(what, body) pairs that break `schema` in one way each, derived from the example."""
    schema = resolve(schema)
    if "allOf" in schema and "type" not in schema:
        schema = resolve(schema["allOf"][0])
    kind = schema.get("type")
    if kind == "object":
        yield f"unknown field at {path}", _set(example, path, {**_get(example, path), "zz_unknown": 1})
        for name in schema.get("required", []):
            value = dict(_get(example, path))
            value.pop(name, None)
            yield f"missing {path + (name,)}", _set(example, path, value)
        for name, sub in schema.get("properties", {}).items():
            if name in _get(example, path):
                yield from malformed(sub, example, path + (name,))
    elif kind == "array":
        yield f"wrong type at {path}", _set(example, path, {"not": "a list"})
        yield f"empty list at {path}", _set(example, path, [])
        if _get(example, path):
            yield from malformed(schema["items"], example, path + (0,))
    elif kind == "string":
        yield f"wrong type at {path}", _set(example, path, 12345)
        if "maxLength" in schema:
            yield f"too long at {path}", _set(example, path, "长" * (schema["maxLength"] + 1))
        if schema.get("minLength"):
            yield f"empty string at {path}", _set(example, path, "")
            yield f"blank string at {path}", _set(example, path, "   ")
        yield f"control character at {path}", _set(example, path, "a\u0000b")
    elif "enum" in schema:
        yield f"not in enum at {path}", _set(example, path, "no-such-value")


def _get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def _set(obj, path, value):
    obj = copy.deepcopy(obj)
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


BODY_OPS = [o for o in OPS if "requestBody" in o[2]]


@pytest.mark.parametrize("path, method, op, params", BODY_OPS, ids=[o[2]["operationId"] for o in BODY_OPS])
def test_every_malformed_body_gets_a_documented_4xx(staffed, path, method, op, params):
    url = url_of(path, params)
    example = request_schema_example(op)
    cases = [(what, json.dumps(body, ensure_ascii=False).encode(), "application/json")
             for what, body in malformed(request_schema(op), example)]
    assert len(cases) >= 5
    valid = json.dumps(example, ensure_ascii=False).encode()
    cases += [("bad JSON", valid[:-1], "application/json"),
              ("wrong content type", valid, "text/plain"),
              ("oversized body", valid[:-1] + b', "pad": "' + b" " * 70000 + b'"}', "application/json")]
    for what, data, ctype in cases:
        r = staffed.call(method.upper(), url, data=data, headers={"Content-Type": ctype})
        assert 400 <= r.status_code < 500, (what, r.status_code, r.text)
        check_answer(op, r)
    # length required: a chunked body
    r = staffed.call(method.upper(), url, data=iter([valid]), headers={"Content-Type": "application/json"})
    assert r.status_code == 411
    check_answer(op, r)


def test_the_server_answers_exactly_the_documented_paths_and_methods(running):
    documented = {(path, method.upper()) for path, method, _, _ in OPS}
    assert set(ROUTES) | set(STREAMS) | PREFLIGHTS == documented
    for path, item in SPEC["paths"].items():
        url = url_of(path, item.get("parameters", []))
        allowed = sorted(m.upper() for m in METHODS if m in item)
        for method in METHODS:
            if method in item:
                continue
            r = running.call(method.upper(), url)
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["Allow"] == ", ".join(allowed)
            if method != "head":
                assert r.json()["error"] == "method_not_allowed"
    for stray in ("/", "/v1", "/v1/", "/v2/status", "/v1/status/x", "/v1/invitations/a/b", "/v1/staffs"):
        assert running.call("GET", stray).status_code == 404, stray
