"""The central API document and fast checks compiled from its schemas.

`agent/central-openapi.json` is the contract; the record schema it refers to is
`terminal/record.schema.json`, found by its `$id`. jsonschema needs about 0.3 ms for one
record, which alone would cap the receiver near 3 000 records/s where the contract asks
for 5 000 end to end. So each schema the hot path uses is compiled once into generated
Python functions (`_Compiler`), and jsonschema is asked only *why*, when one says no. A keyword the
compiler does not know fails at import, so a schema change cannot be silently skipped;
tests hold both validators to the same verdicts.
"""
from __future__ import annotations

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


def _scalar_tag(x) -> str:
    return "b" if isinstance(x, bool) else "n" if _is_number(x) else "z" if x is None else "s"


def _one_of(values: list) -> Predicate:
    """enum / const. Scalars go through a set (tagged, so that true is not 1)."""
    if all(v is None or isinstance(v, (str, int, float)) for v in values):
        table = frozenset((_scalar_tag(v), v) for v in values)
        return lambda x: not isinstance(x, (list, dict)) and (_scalar_tag(x), x) in table
    return lambda x: any(_equal(x, v) for v in values)


# Python expressions for a type check of the value named {v}.
_TYPE_EXPR = {
    "object": "isinstance({v}, dict)",
    "array": "isinstance({v}, list)",
    "string": "({v}.__class__ is str or isinstance({v}, str))",
    "integer": "({v}.__class__ is int or _is_int({v}))",
    "number": "({v}.__class__ is int or _is_number({v}))",
    "boolean": "isinstance({v}, bool)",
    "null": "{v} is None",
}
_MISSING = object()


class _Compiler:
    """Turns schemas into the source of plain Python functions, compiled once.

    Each schema becomes one function of its value; the keywords of a schema become
    conditions joined by `and` (the type check first, so the others need no guard when
    the type is declared). Generated code instead of nested closures: a record passes
    in a tenth of the calls.
    """

    def __init__(self):
        self.env: dict = {"_is_int": _is_int, "_is_number": _is_number, "_unique": _unique,
                          "_M": _MISSING}
        self.source: list[str] = []
        self.names: dict[int, str] = {}

    def value(self, obj) -> str:
        name = f"_c{len(self.env)}"
        self.env[name] = obj
        return name

    def function(self, schema, resolver) -> str:
        """The name of the function that checks `schema` (made on first use)."""
        key = id(schema)
        if key in self.names:
            return self.names[key]
        name = self.names[key] = f"_f{len(self.names)}"
        if schema is True or schema == {}:
            self.source.append(f"def {name}(x):\n    return True\n")
            return name
        if schema is False:
            self.source.append(f"def {name}(x):\n    return False\n")
            return name
        lines = [f"def {name}(x):"]
        for condition in self.conditions(schema, resolver):
            lines.append(f"    if not ({condition}):\n        return False")
        lines.append("    return True\n")
        self.source.append("\n".join(lines))
        return name

    def conditions(self, schema, resolver) -> list[str]:
        out: list[str] = []
        declared = schema.get("type")

        def only(kind: str, check: str) -> str:
            if declared == kind or (kind == "number" and declared == "integer"):
                return check  # the type check before it has settled the question
            return f"(not {_TYPE_EXPR[kind].format(v='x')} or {check})"

        # "type" first, then "required" (so that `properties` may index the members it
        # names), then the rest in document order.
        for key, value in sorted(schema.items(), key=lambda kv: (kv[0] != "type", kv[0] != "required")):
            if key in _ANNOTATIONS or key in ("then", "else"):
                continue
            if key == "$ref":
                found = resolver.lookup(value)
                out.append(f"{self.function(found.contents, found.resolver)}(x)")
            elif key == "type":
                kinds = [value] if isinstance(value, str) else value
                out.append("(" + " or ".join(_TYPE_EXPR[t].format(v="x") for t in kinds) + ")")
            elif key in ("enum", "const"):
                out.append(self.enum(value if key == "enum" else [value]))
            elif key in ("minimum", "maximum"):
                op = ">=" if key == "minimum" else "<="
                out.append(only("number", f"x {op} {self.number(value)}"))
            elif key in ("minLength", "maxLength"):
                if key == "minLength" and "maxLength" in schema:
                    continue  # one len() for both, at maxLength
                if key == "maxLength" and "minLength" in schema:
                    test = f"{int(schema['minLength'])} <= len(x) <= {int(value)}"
                else:
                    test = f"len(x) {'>=' if key == 'minLength' else '<='} {int(value)}"
                out.append(only("string", test))
            elif key == "pattern":
                out.append(only("string", f"{self.value(re.compile(value))}.search(x) is not None"))
            elif key == "items":
                item = self.function(value, resolver)
                out.append(only("array", f"all({item}(i) for i in x)"))
            elif key == "maxItems":
                out.append(only("array", f"len(x) <= {int(value)}"))
            elif key == "uniqueItems":
                if value:
                    out.append(only("array", "_unique(x)"))
            elif key == "required":
                out.append(only("object", f"{self.value(frozenset(value))}.issubset(x)"))
            elif key == "maxProperties":
                out.append(only("object", f"len(x) <= {int(value)}"))
            elif key == "properties":
                present = frozenset(schema.get("required", ()))
                out.append(only("object", f"{self.properties(value, resolver, present)}(x)"))
            elif key == "additionalProperties":
                known = self.value(frozenset(schema.get("properties", {})))
                if value is False:
                    out.append(only("object", f"{known}.issuperset(x)"))
                else:
                    extra = self.function(value, resolver)
                    out.append(only("object", f"all({extra}(w) for k, w in x.items() "
                                              f"if k not in {known})"))
            elif key in ("allOf", "anyOf"):
                subs = [f"{self.function(sub, resolver)}(x)" for sub in value]
                out.append("(" + (" and " if key == "allOf" else " or ").join(subs) + ")")
            elif key == "if":
                cond = self.function(value, resolver)
                then = self.function(schema.get("then", True), resolver)
                other = self.function(schema.get("else", True), resolver)
                out.append(f"({then}(x) if {cond}(x) else {other}(x))")
            else:
                raise ValueError(f"schema keyword {key!r} is not supported by the fast checks; "
                                 f"add it to agent/receiver/schemas.py")
        return out

    def number(self, value) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return repr(value)
        return self.value(value)

    def enum(self, values: list) -> str:
        """enum / const as set lookups per JSON type (true is not 1, 1 is 1.0)."""
        if not all(v is None or isinstance(v, (str, int, float)) for v in values):
            return f"{self.value(_one_of(values))}(x)"
        tests = []
        if any(v is None for v in values):
            tests.append("x is None")
        tests += [f"x is {v!r}" for v in (True, False) if any(w is v for w in values)]
        numbers = [v for v in values if _is_number(v)]
        if numbers:
            tests.append(f"((x.__class__ is int or _is_number(x)) and x in {self.value(frozenset(numbers))})")
        strings = [v for v in values if isinstance(v, str)]
        if strings:
            tests.append(f"(isinstance(x, str) and x in {self.value(frozenset(strings))})")
        return "(" + " or ".join(tests or ["False"]) + ")"

    def properties(self, props: dict, resolver, present: frozenset = frozenset()) -> str:
        """One function for a `properties` block: each present member against its schema.

        Members in `present` were required by a check that came first: indexed directly."""
        name = f"_p{len(self.source)}_{len(self.names)}"
        lines = [f"def {name}(x):"]
        for member, sub in props.items():
            checks = self.conditions(sub, resolver) if isinstance(sub, dict) else \
                ([] if sub is True else ["False"])
            if not checks:
                continue
            if member in present:
                lines.append(f"    v = x[{member!r}]")
                lines.append(f"    if not ({_rename(checks)}):\n        return False")
            else:
                lines.append(f"    v = x.get({member!r}, _M)")
                lines.append(f"    if v is not _M and not ({_rename(checks)}):\n        return False")
        lines.append("    return True\n")
        self.source.append("\n".join(lines))
        return name

    def build(self, root: str) -> Predicate:
        exec(compile("\n".join(self.source), "<schema checks>", "exec"), self.env)
        return self.env[root]


def _rename(conditions: list[str]) -> str:
    """Conditions written for `x`, made to test `v` (a member of the object `x`)."""
    return " and ".join(re.sub(r"\bx\b", "v", c) for c in conditions)


def compile_schema(schema, resolver) -> Predicate:
    """A predicate with jsonschema's verdict for the keywords our documents use."""
    compiler = _Compiler()
    return compiler.build(compiler.function(schema, resolver))


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
