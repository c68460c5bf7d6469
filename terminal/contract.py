"""The OpenAPI documents as the servers use them: the local API's (terminal/openapi.json)
by default, the central API's (agent/central-openapi.json) for the reference receiver;
their references into the record schema (terminal/record.schema.json), checks of their
schemas and problems described in words an integrator acts on. Request bodies are
validated against these schemas, so a document and its server cannot drift apart. This
is the project's one validator: every schema check goes through `Check`.

A `Check` says yes or no with fastjsonschema (compiled once); jsonschema, which knows
draft 2020-12 and says *why*, is loaded only when a check says no, and has the last word.
Its import (jsonschema, referencing, rpds) is about 3 MiB and 50 ms that a terminal whose
integrations send good requests never pays.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Optional

import fastjsonschema

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_SPEC_URI = "urn:pingjia:local-api"
_OTHER_URI = "urn:pingjia:document"  # any other document, e.g. the central API's


def _load(name: str, package: str = "terminal") -> dict:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as f:
        return json.load(f)


def load_document(package: str, name: str) -> dict:
    """An OpenAPI document shipped in a package (the central API's is in `agent`)."""
    return _load(name, package)


def load_spec() -> dict:
    return _load("openapi.json")


SPEC = load_spec()
# The fields that become record fields take their limits from the record contract, by
# $ref to its $id: one place, so that what the API accepts the centre accepts.
RECORD_SCHEMA = _load("record.schema.json")


def _pointed(doc, pointer: str):
    """The node at a JSON pointer (RFC 6901) of `doc`."""
    node = doc
    for part in pointer.split("/")[1:] if pointer else ():
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def bundled_spec(doc: Optional[dict] = None) -> dict:
    """`doc` (default: this API's document; the central API's refers to the record schema
    the same way) with its references into the record schema written out in place
    (`allOf` keeps the local keywords beside them), for tools that resolve only local
    references: OpenAPI fuzzers, schema-driven generators."""
    record_id = RECORD_SCHEMA["$id"]

    def inline(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if not (isinstance(ref, str) and ref.split("#", 1)[0] == record_id):
                return {k: inline(v) for k, v in node.items()}
            out = {k: inline(v) for k, v in node.items() if k != "$ref"}
            target = _pointed(RECORD_SCHEMA, ref.split("#", 1)[1] if "#" in ref else "")
            target = {k: v for k, v in target.items() if k not in ("$id", "$schema")}
            out["allOf"] = [inline(target)] + out.get("allOf", [])
            return out
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(SPEC if doc is None else doc)


def request_schema(doc: dict, path: str, method: str) -> Optional[str]:
    """The component name of an operation's request body, None if it takes none."""
    body = doc["paths"][path][method.lower()].get("requestBody")
    if body is None:
        return None
    return body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def registry(doc: Optional[dict] = None):
    """(uri, referencing.Registry) of `doc` (default: the local API's) and the record
    schema, for jsonschema: `{"$ref": uri + "#/components/schemas/X"}` is schema X."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = _SPEC_URI if doc is None or doc is SPEC else _OTHER_URI
    return uri, Registry().with_resources([
        (uri, Resource.from_contents(SPEC if doc is None else doc,
                                     default_specification=DRAFT202012)),
        (RECORD_SCHEMA["$id"], Resource.from_contents(RECORD_SCHEMA,
                                                      default_specification=DRAFT202012)),
    ])


def validator(schema_name: str, doc: Optional[dict] = None) -> "Draft202012Validator":
    """jsonschema's validator for one schema of `doc` (default: the local API's), $refs
    resolved inside it and into the record schema."""
    from jsonschema import Draft202012Validator

    uri, found = registry(doc)
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{schema_name}"},
                                registry=found)


_BUNDLED: dict[int, tuple[dict, dict]] = {}  # id(document) -> (document, its bundled schemas)


def _bundled_schemas(doc: dict) -> dict:
    """The bundled components of a document, made once however many checks it has."""
    held = _BUNDLED.get(id(doc))
    if held is None or held[0] is not doc:
        held = _BUNDLED[id(doc)] = (doc, bundled_spec(doc)["components"]["schemas"])
    return held[1]


class Check:
    """One schema of a document (default: the local API's): fastjsonschema's verdict,
    jsonschema's reason.

    fastjsonschema knows draft 7, which covers the keywords these schemas use; where the
    two could differ (1.0 as an integer, a pattern's `$`), a no from it is only a reason
    to ask jsonschema, so what is accepted is exactly what jsonschema accepts as long as
    fastjsonschema's yes is never wider; tests/terminal/test_contract.py holds that."""

    def __init__(self, schema_name: str, doc: Optional[dict] = None):
        self.name = schema_name
        self.doc = doc
        schemas = _bundled_schemas(SPEC if doc is None else doc)
        # No defaults filled in (it would change the body) and formats as annotations,
        # as in draft 2020-12.
        self._valid = fastjsonschema.compile(
            {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": schemas}},
            use_default=False, use_formats=False)
        self._full: Optional["Draft202012Validator"] = None

    def problem(self, value) -> Optional[tuple[str, str]]:
        """(field, why) of the first problem of `value`, or None when it is valid."""
        try:
            self._valid(value)
            return None
        except fastjsonschema.JsonSchemaException:
            pass
        if self._full is None:
            self._full = validator(self.name, self.doc)
        return schema_problem(self._full, value)


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(error) -> tuple[str, str]:
    """(field, why) of a jsonschema error, in words an integrator acts on."""
    where = _field(error.absolute_path)
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [k for k in value if k not in instance]
        name = missing[0] if missing else "?"
        return (f"{where}.{name}" if where else name), "is required"
    if kind == "additionalProperties":
        extra = sorted(set(instance) - set(error.schema.get("properties", {})))
        name = extra[0] if extra else "?"
        return (f"{where}.{name}" if where else name), "is not a known field"
    if kind == "type":
        return where, f"must be of type {value if isinstance(value, str) else ' or '.join(value)}"
    if kind == "maxLength":
        return where, f"must be at most {value} characters"
    if kind == "minLength" or (kind == "pattern" and value == "\\S"):
        return where, "must not be empty or blank"
    if kind == "not":
        inner = value.get("pattern", "") if isinstance(value, dict) else ""
        if inner.startswith("[^"):  # a whitelist written as "no character outside [...]"
            return where, f"may only contain the characters {inner[2:-1]}"
        if inner:
            return where, "must not contain control characters or line breaks"
        return where, f"{json.dumps(instance, ensure_ascii=False)} is reserved"
    if kind == "minItems":
        return where, f"needs at least {value} {'entry' if value == 1 else 'entries'}"
    if kind == "maxItems":
        return where, f"takes at most {value} entries"
    if kind in ("enum", "const"):
        choices = value if kind == "enum" else [value]
        return where, "must be one of " + ", ".join(json.dumps(c, ensure_ascii=False) for c in choices)
    if kind == "pattern":  # not the value: it may be an ID number (the kiosk lookup)
        return where, f"must match the pattern {value}"
    return where, error.message[:200]


def schema_problem(v: "Draft202012Validator", body) -> Optional[tuple[str, str]]:
    """The first problem of `body` (shallowest field first), or None when valid."""
    errors = sorted(v.iter_errors(body), key=lambda e: (len(e.absolute_path), _field(e.absolute_path)))
    if not errors:
        return None
    # A value of the wrong type also fails the keywords that only apply to its type; the
    # type is what the caller needs to hear about.
    first = errors[0]
    for e in errors:
        if e.absolute_path == first.absolute_path and e.validator == "type":
            first = e
            break
    return describe(first)
