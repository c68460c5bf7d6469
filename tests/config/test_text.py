"""config/text.py: the one check for text from outside. Its fast verdict (one pass over
the strings joined, `str.isprintable` first) must be the slow one's, character for
character: the receiver judges every record with it."""
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from config import text


def _bad_characters(pattern: re.Pattern) -> list[str]:
    return [c for c in map(chr, range(0x110000)) if pattern.search(c)]


def test_every_refused_character_is_one_isprintable_refuses_too():
    # the fast path passes a text on isprintable() alone: sound only if no refused
    # character is printable (checked over all of Unicode, both patterns)
    for pattern in (text._BAD, text._BAD_MULTILINE):
        bad = _bad_characters(pattern)
        assert len(bad) > 2000  # C0, DEL, C1, surrogates, 66 noncharacters
        assert [c for c in bad if c.isprintable()] == []


# any code point, the refused ones often: a value is bad in one character at most places
_CHARS = st.one_of(st.characters(codec=None, categories=None),
                   st.sampled_from(["\n", "\t", "\x00", "\x7f", "\x85", "\ud800", "\udfff",
                                    "\ufdd0", "\uffff", "\U0010ffff", "\u3000", "\u200d"]))
_TEXT = st.lists(_CHARS, max_size=6).map("".join)  # (st.text would leave lone surrogates out)
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _TEXT),
                     lambda inner: st.one_of(st.lists(inner, max_size=4),
                                             st.dictionaries(_TEXT, inner, max_size=4)),
                     max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(value=_JSON, multiline=st.booleans())
def test_the_fast_verdict_is_the_full_walks(value, multiline):
    walked = next(text._walk(value, "", multiline), None)
    assert text.first_text_problem(value, multiline=multiline) == walked


def test_a_bad_character_is_found_with_its_place():
    record = {"staff": {"name": "王芳"}, "tags": ["态度好", "办事\x07快"]}
    assert text.first_text_problem(record) == (
        "tags[1]", "contains a control character (U+0007) at position 2")
    assert text.first_text_problem({"bad\ud800key": 1}) == (
        "bad\ud800key", "key contains a lone surrogate (U+D800) at position 3")
    assert text.first_text_problem({"note": "第一行\n第二行"}, multiline=True) is None
    assert text.first_text_problem({"note": "第一行\n第二行"}) is not None
    assert text.first_text_problem({"note": "全角\u3000空格"}) is None
