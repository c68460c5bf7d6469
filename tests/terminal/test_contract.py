"""The local API's request checks (terminal/contract.py): fastjsonschema says yes or no,
jsonschema is loaded only to say why. What the API accepts and the reason it gives must
be exactly jsonschema's, and a service that only meets good requests never loads it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from terminal.api import SPEC
from terminal.contract import Check, schema_problem, validator

ROOT = Path(__file__).resolve().parents[2]


def _request_examples() -> dict:
    """Schema name -> the request body examples of the document."""
    out: dict = {}
    for item in SPEC["paths"].values():
        for op in item.values():
            media = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}) \
                if isinstance(op, dict) else {}
            if "example" in media:
                out.setdefault(media["schema"]["$ref"].rsplit("/", 1)[-1], []).append(media["example"])
    return out


EXAMPLES = _request_examples()
NAMES = sorted({*EXAMPLES, "VisitId", "Business", "Staff", "WindowRequest", "TestRequest"})
CHECKS = {name: (Check(name), validator(name)) for name in NAMES}

# Values where the two libraries' readings could part: 1.0 and true as integers, a
# trailing newline against `$`, blanks, controls, long and non-BMP text.
_tricky_text = st.one_of(st.text(max_size=80), st.sampled_from(
    ["", " ", "\n", "a\n", "A1\n", "x" * 65, "\u3000", "\x7f", "𠀀" * 3, "111", "01"]))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10 ** 6),
                     st.sampled_from([0.0, 1.0, 2.5, 1e300, -1.0]), _tricky_text)
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_tricky_text, inner, max_size=4)), max_leaves=12)


def _members(name: str) -> list[str]:
    return sorted({k for ex in EXAMPLES.get(name, []) if isinstance(ex, dict) for k in ex}
                  | set(SPEC["components"]["schemas"][name].get("properties", {})))


@st.composite
def bodies(draw, name: str):
    """A document example with a few members changed, dropped or added; or any JSON."""
    if not EXAMPLES.get(name) or draw(st.integers(0, 4)) == 0:
        return draw(_json)
    body = dict(draw(st.sampled_from(EXAMPLES[name])))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.one_of(st.sampled_from(_members(name) or ["x"]), _tricky_text))
        if draw(st.booleans()) and key in body:
            del body[key]
        else:
            body[key] = draw(_json)
    return body


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_check_gives_jsonschemas_verdict_and_reason(name, data):
    check, full = CHECKS[name]
    body = data.draw(bodies(name))
    assert check.problem(body) == schema_problem(full, body)


def test_examples_pass_and_a_wrong_type_is_named():
    for name, examples in EXAMPLES.items():
        for example in examples:
            assert CHECKS[name][0].problem(example) is None, (name, example)
    assert Check("VisitId").problem(True) == ("", "must be of type string")


def test_the_service_loads_jsonschema_only_for_a_request_it_refuses():
    """The service's modules, a good body and then a bad one, in a fresh process."""
    code = (
        "import sys, config.cli; config.cli.build_parser()\n"
        "import terminal.runtime, terminal.lookup\n"
        "from terminal.contract import Check\n"
        "check = Check('VisitId')\n"
        "loaded = lambda: sorted(m for m in ('jsonschema', 'referencing') if m in sys.modules)\n"
        "assert check.problem('v-1') is None\n"
        "print(loaded())\n"
        "print(check.problem(''))\n"
        "print(loaded())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout.splitlines()
    assert out == ["[]", "('', 'must not be empty or blank')", "['jsonschema', 'referencing']"]
