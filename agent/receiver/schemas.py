"""The central API document and fast checks compiled from its schemas.

`agent/central-openapi.json` is the contract; the record schema it refers to is
`terminal/record.schema.json`, found by its `$id`. jsonschema needs about 0.3 ms for one
record, which alone would cap the receiver near 3 000 records/s where the contract asks
for 5 000 end to end. So each schema the hot path uses is compiled once into plain Python
predicates, and jsonschema is asked only *why*, when a predicate says no. A keyword the
compiler does not know fails at import, so a schema change cannot be silently skipped;
tests hold both validators to the same verdicts.
"""
from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Callable, Optional

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from terminal.api import schema_problem

SPEC_URI = "urn:pingjia:central-api"

Predicate = Callable[[Any], bool]


def _load(package: str, name: str) -> dict:
    with resources.files(package).joinpath(name).open(encoding="utf-8") as f:
        return json.load(f)


SPEC = _load("agent", "central-openapi.json")
RECORD_SCHEMA = _load("terminal", "record.schema.json")
REGISTRY = Registry().with_resources([
    (SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)),
    (RECORD_SCHEMA["$id"], Resource.from_contents(RECORD_SCHEMA, default_specification=DRAFT202012)),
])


def validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"},
                                registry=REGISTRY)


# --- the compiler ----------------------------------------------------------------------

def _is_int(x) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_TYPES: dict[str, Predicate] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_int,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}
# Keywords that do not constrain a value (format is an annotation in draft 2020-12).
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "format", "examples",
                          "example", "default", "$comment"})


def _equal(a, b) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, containers compare element by element."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_equal(a[k], b[k]) for k in a))
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_equal(x, y) for x, y in zip(a, b)))
    return a == b


def _unique(items: list) -> bool:
    return not any(_equal(items[i], items[j])
                   for i in range(len(items)) for j in range(i + 1, len(items)))


def _only(kind: Predicate, check: Predicate) -> Predicate:
    """A keyword that applies to one type only and lets every other type pass."""
    return lambda x: not kind(x) or check(x)


def _scalar_tag(x) -> str:
    return "b" if isinstance(x, bool) else "n" if _is_number(x) else "z" if x is None else "s"


def _one_of(values: list) -> Predicate:
    """enum / const. Scalars go through a set (tagged, so that true is not 1)."""
    if all(v is None or isinstance(v, (str, int, float)) for v in values):
        table = frozenset((_scalar_tag(v), v) for v in values)
        return lambda x: not isinstance(x, (list, dict)) and (_scalar_tag(x), x) in table
    return lambda x: any(_equal(x, v) for v in values)


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda x: first(x) and second(x)


def compile_schema(schema, resolver) -> Predicate:
    """A predicate with jsonschema's verdict for the keywords our documents use."""
    if schema is True or schema == {}:
        return lambda x: True
    if schema is False:
        return lambda x: False
    checks: list[Predicate] = []
    declared = schema.get("type")

    def only(kind: str, check: Predicate) -> Predicate:
        # The type check runs first (see the sort below): under "type": kind the guard
        # would only repeat it.
        return check if declared == kind else _only(_TYPES[kind], check)

    # "type" first, then the rest in document order.
    for key, value in sorted(schema.items(), key=lambda kv: kv[0] != "type"):
        if key in _ANNOTATIONS or key in ("then", "else"):
            continue
        if key == "$ref":
            found = resolver.lookup(value)
            checks.append(compile_schema(found.contents, found.resolver))
        elif key == "type":
            kinds = [_TYPES[t] for t in ([value] if isinstance(value, str) else value)]
            checks.append(kinds[0] if len(kinds) == 1 else lambda x, kinds=kinds: any(k(x) for k in kinds))
        elif key in ("enum", "const"):
            checks.append(_one_of(value if key == "enum" else [value]))
        elif key == "minimum":
            checks.append(only("number", lambda x, v=value: x >= v))
        elif key == "maximum":
            checks.append(only("number", lambda x, v=value: x <= v))
        elif key == "minLength":
            checks.append(only("string", lambda x, v=value: len(x) >= v))
        elif key == "maxLength":
            checks.append(only("string", lambda x, v=value: len(x) <= v))
        elif key == "pattern":
            checks.append(only("string", lambda x, rx=re.compile(value): rx.search(x) is not None))
        elif key == "items":
            item = compile_schema(value, resolver)
            checks.append(only("array", lambda x, item=item: all(item(i) for i in x)))
        elif key == "maxItems":
            checks.append(only("array", lambda x, v=value: len(x) <= v))
        elif key == "uniqueItems":
            if value:
                checks.append(only("array", _unique))
        elif key == "required":
            checks.append(only("object", lambda x, names=frozenset(value): names.issubset(x)))
        elif key == "maxProperties":
            checks.append(only("object", lambda x, v=value: len(x) <= v))
        elif key == "properties":
            props = {name: compile_schema(sub, resolver) for name, sub in value.items()}
            checks.append(only("object", lambda x, props=props: all(
                props[k](v) for k, v in x.items() if k in props)))
        elif key == "additionalProperties":
            known = frozenset(schema.get("properties", {}))
            if value is False:
                checks.append(only("object", known.issuperset))
            else:
                extra = compile_schema(value, resolver)
                checks.append(only("object", lambda x, known=known, extra=extra: all(
                    extra(v) for k, v in x.items() if k not in known)))
        elif key in ("allOf", "anyOf"):
            subs = [compile_schema(s, resolver) for s in value]
            combine = all if key == "allOf" else any
            checks.append(lambda x, subs=subs, combine=combine: combine(s(x) for s in subs))
        elif key == "if":
            cond = compile_schema(value, resolver)
            then = compile_schema(schema.get("then", True), resolver)
            other = compile_schema(schema.get("else", True), resolver)
            checks.append(lambda x, c=cond, t=then, o=other: t(x) if c(x) else o(x))
        else:
            raise ValueError(f"schema keyword {key!r} is not supported by the fast checks; "
                             f"add it to agent/receiver/schemas.py")
    if not checks:
        return lambda x: True
    return functools.reduce(_both, checks)


class Check:
    """One named schema of the document: a fast verdict, and jsonschema's reason."""

    def __init__(self, schema_name: str):
        self.name = schema_name
        self.valid = compile_schema({"$ref": f"#/components/schemas/{schema_name}"},
                                    REGISTRY.resolver(SPEC_URI))
        self.full = validator(schema_name)

    def problem(self, value) -> Optional[tuple[str, str]]:
        """(field, why) of the first problem, or None. jsonschema has the last word."""
        if self.valid(value):
            return None
        return schema_problem(self.full, value)


def request_schema(path: str, method: str) -> Optional[str]:
    """The component name of an operation's request body, or None if it takes none."""
    body = SPEC["paths"][path][method.lower()].get("requestBody")
    if body is None:
        return None
    return body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
