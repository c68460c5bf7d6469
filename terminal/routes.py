"""Routing from an OpenAPI document, for both servers (the local API, terminal/api.py, and
the reference receiver, agent/receiver/handler.py): which path templates the document
has, which methods each takes, and the schema check of each request body. Built from the
document itself, so a server cannot answer a call its document lacks or take a body its
document does not describe.
"""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import unquote

from terminal.contract import SPEC, Check, request_schema
from terminal.http import ApiFailure, loggable


def path_pattern(template: str):
    """The regular expression of an OpenAPI path template ({name} is one segment)."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


def match(path: str, patterns):
    """(template, params) for a request path among (template, pattern) pairs, or (None, {})."""
    for template, rx in patterns:
        m = rx.fullmatch(path)
        if m:
            return template, {k: unquote(v) for k, v in m.groupdict().items()}
    return None, {}


class Routes:
    """The operations of an OpenAPI document: `bodies` maps (template, METHOD) to the
    name of its request body's schema (None: it takes no body); `check` of such a pair is
    that schema's Check. `doc` is None for the local API's document (terminal/contract.py),
    or another document such as the central API's."""

    def __init__(self, doc: Optional[dict] = None):
        doc = SPEC if doc is None else doc
        self.bodies: dict[tuple[str, str], Optional[str]] = {}
        for template, item in doc["paths"].items():
            for method in item:
                if method != "parameters":
                    self.bodies[(template, method.upper())] = request_schema(doc, template, method)
        self._checks = {key: Check(name, doc) for key, name in self.bodies.items()
                        if name is not None}
        # Concrete paths before templated ones, as OpenAPI matches them: so that
        # /v1/invitations/current is never read as a visit id.
        self.patterns = [(t, path_pattern(t)) for t in sorted({t for t, _ in self.bodies},
                                                              key=lambda t: "{" in t)]

    def match(self, path: str):
        """(template, params) of a request path, or (None, {})."""
        return match(path, self.patterns)

    def methods(self, template: str) -> list[str]:
        return sorted(m for t, m in self.bodies if t == template)

    def check(self, template: str, method: str) -> Optional[Check]:
        """The check of the call's request body, None when it takes none."""
        return self._checks.get((template, method))

    def find(self, path: str, method: str):
        """(template, params) of a call the document has: 404 for a path it lacks, 405
        (with Allow) for a method that path does not take."""
        template, params = self.match(path)
        if template is None:
            raise ApiFailure(404, "not_found", f"no such call: {loggable(path)}")
        methods = self.methods(template)
        if method not in methods:
            raise ApiFailure(405, "method_not_allowed", f"{template} takes " + ", ".join(methods),
                             headers={"Allow": ", ".join(methods)})
        return template, params
