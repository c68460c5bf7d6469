"""Schemathesis runs against our own servers: one Hypothesis run per operation and
generation mode, each case sent by a caller-supplied `send` (the receiver's cases must
be signed over the exact bytes sent) and checked by schemathesis: no 5xx, a documented
status, content type, headers and body schema; invalid data refused with a 4xx."""
from __future__ import annotations

from typing import Callable, Optional

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]


def fuzz(doc: dict, send: Callable[[object], requests.Response], examples: int,
         after: Callable[[str], None] = lambda label: None, checks=CHECKS,
         path_parameters: Optional[dict] = None) -> int:
    """Run `examples` cases per operation and mode; `after(label)` runs after each
    operation's cases (the server must still answer). `path_parameters` fixes those
    parameters in positive cases (a known device id reaches further than a random one).
    Returns the number of cases sent."""
    schema = schemathesis.openapi.from_dict(doc)
    sent = 0
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fixed = {k: v for k, v in (path_parameters or {}).items() if "{%s}" % k in op.path}
            strategy = op.as_strategy(generation_mode=mode, **(
                {"path_parameters": fixed} if fixed and mode is GenerationMode.POSITIVE else {}))

            @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                      suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate, Phase.shrink])
            @given(case=strategy)
            def one(case):
                nonlocal sent
                response = send(case)
                sent += 1
                if case.method.upper() != op.method.upper():
                    # a probe with another method: the answer is 405 naming the right ones
                    assert response.status_code == 405 and response.headers.get("Allow"), \
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
                    return
                case.validate_response(response, checks=checks)

            try:
                one()
            except Unsatisfiable:
                # nothing about the call can be wrong (GET /pingjia.js: no token, no
                # parameter that must be valid): it has no negative cases
                if mode is not GenerationMode.NEGATIVE:
                    raise
            after(f"{op.label} {mode.value}")
    return sent
