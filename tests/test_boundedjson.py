"""JSON from outside the app, read within limits (shared/boundedjson.py): pure, no storage."""
from __future__ import annotations

import json

import pytest

from shared.boundedjson import (
    MAX_DEPTH,
    MAX_LISTED,
    MAX_NUMBER_CHARS,
    JsonSyntaxError,
    JsonValueError,
    loads,
    nesting_depth,
)


@pytest.mark.parametrize("text, depth", [
    ('{"a": 1}', 1),
    ('[[], [[]], {}]', 3),
    ('{"a": "[[[[{{"}', 1),  # brackets in strings do not count
    ('{"a\\"[[": ["\\\\", "]]\\"]"]}', 2),  # nor do escaped quotes end a string
    ("", 0),
    ("[[[", 3),  # unclosed: still counted
])
def test_nesting_depth_counts_arrays_and_objects_outside_strings(text, depth):
    assert nesting_depth(text) == depth


def test_a_document_within_the_limits_reads_as_json_loads_reads_it():
    text = json.dumps({"a": [1, -2.5, 1e300, True, None, "x\u00e9\U0001F600"], "b": {"c": [[[]]]},
                       "n": int("9" * MAX_NUMBER_CHARS)})
    assert loads(text) == json.loads(text)
    assert loads(text.encode("utf-8")) == json.loads(text)
    assert loads(b"\xef\xbb\xbf[1]") == [1]  # a UTF-8 byte order mark is skipped


def test_nesting_past_the_limit_is_a_syntax_error_without_recursion():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    for depth in (MAX_DEPTH + 1, 30_000, 1_000_000):
        with pytest.raises(JsonSyntaxError, match=f"nested deeper than {MAX_DEPTH} levels"):
            loads("[" * depth + "]" * depth)


@pytest.mark.parametrize("number, says", [
    ("9" * 5000, "a number of 5000 characters"),
    ("-" + "1" * MAX_NUMBER_CHARS, f"a number of {MAX_NUMBER_CHARS + 1} characters"),
    ("0." + "1" * 5000, "a number of 5002 characters"),
    ("1e999", "too large to represent"),
    ("-1e999", "too large to represent"),
    ("NaN", "NaN, which is not a JSON number"),
    ("Infinity", "Infinity, which is not a JSON number"),
])
def test_numbers_past_the_limits_are_named_by_their_path(number, says):
    with pytest.raises(JsonValueError) as refused:
        loads('{"a": {"b": [0, %s]}}' % number)
    assert [path for path, _ in refused.value.problems] == ["a.b[1]"]
    assert says in refused.value.problems[0][1]
    if len(number) > MAX_NUMBER_CHARS:
        assert number[:MAX_NUMBER_CHARS] not in str(refused.value)  # a long value is never quoted


def test_lone_surrogates_in_names_and_values_are_refused():
    with pytest.raises(JsonValueError) as refused:
        loads('{"ok": "\\ud83d\\ude00", "bad": ["\\ud800"], "\\udc00name": 1}')
    paths = [path for path, _ in refused.value.problems]
    assert paths == ["bad[0]", "\\udc00name"]
    str(refused.value).encode("utf-8")  # the message itself can be written


@pytest.mark.parametrize("data, says", [
    (b"\xff\xfe[\x001\x00]\x00", "not UTF-8"),  # UTF-16 is not guessed
    (b'["\xed\xa0\x80"]', "not UTF-8"),  # a surrogate encoded as UTF-8 bytes
    (b'{"apiKey": "brand1-secret", ', "not valid JSON"),
])
def test_what_is_not_utf8_json_is_a_syntax_error_that_never_quotes_the_text(data, says):
    with pytest.raises(JsonSyntaxError, match=says) as refused:
        loads(data)
    assert "secret" not in str(refused.value)


def test_only_the_first_problems_are_listed_and_all_are_counted():
    with pytest.raises(JsonValueError) as refused:
        loads("[" + ", ".join(["NaN"] * 100) + "]")
    assert (len(refused.value.problems), refused.value.total) == (MAX_LISTED, 100)
    assert f"and {100 - MAX_LISTED} more" in str(refused.value)
