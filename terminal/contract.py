"""The local API's contract, terminal/openapi.json, as the server uses it: the document,
its references into the record schema (terminal/record.schema.json), validators of its
schemas and problems described in words an integrator acts on. Request bodies are
validated against these schemas, so the document and the server cannot drift apart.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Optional

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_SPEC_URI = "urn:pingjia:local-api"


def _load(name: str) -> dict:
    with resources.files("terminal").joinpath(name).open(encoding="utf-8") as f:
        return json.load(f)


def load_spec() -> dict:
    return _load("openapi.json")


SPEC = load_spec()
# The fields that become record fields take their limits from the record contract, by
# $ref to its $id: one place, so that what the API accepts the centre accepts.
RECORD_SCHEMA = _load("record.schema.json")
_REGISTRY = Registry().with_resources([
    (_SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)),
    (RECORD_SCHEMA["$id"], Resource.from_contents(RECORD_SCHEMA, default_specification=DRAFT202012)),
])


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
            target = _REGISTRY.resolver().lookup(ref).contents
            target = {k: v for k, v in target.items() if k not in ("$id", "$schema")}
            out["allOf"] = [inline(target)] + out.get("allOf", [])
            return out
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(SPEC if doc is None else doc)


def validator(schema_name: str) -> Draft202012Validator:
    """A validator for one schema of the document, with its $refs resolved inside it."""
    return Draft202012Validator({"$ref": f"{_SPEC_URI}#/components/schemas/{schema_name}"},
                                registry=_REGISTRY)


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


def schema_problem(v: Draft202012Validator, body) -> Optional[tuple[str, str]]:
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
