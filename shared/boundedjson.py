"""JSON from outside the app (request bodies, the client principal header), read within limits.

`json.loads` alone lets a caller break whoever reads its result:
- it recurses once per level of nesting, so 30,000 `[` raise RecursionError (and a few hundred
  levels still break any recursive reader of the result);
- it turns a 5,000-digit number into an int and fails on Python's 4,300-digit conversion limit
  with a bare ValueError; `1e999` becomes infinity, and it accepts `NaN` and `Infinity`;
- it keeps lone surrogate escapes (`"\\ud800"`) that no UTF-8 encoder can write back;
- given bytes, it also guesses UTF-16 and UTF-32.

`loads` reads UTF-8 only (a BOM is skipped), refuses nesting deeper than `max_depth` and numbers
written with more than `max_number_chars` characters, and names every bad value by its JSON path.
Messages never quote the text: it may hold an API key.
"""
from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40  # a 64-bit integer needs 20, a float written in full about 25
MAX_LISTED = 20  # problems named in one JsonValueError; the rest are counted

_ESCAPE = re.compile(r"\\.", re.DOTALL)  # a backslash and the character it escapes
_STRING = re.compile(r'"[^"]*"')  # once escapes are gone, a string cannot hold a quote
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """The text cannot be accepted as JSON. Messages read after a subject ("the body ..." )."""


class JsonSyntaxError(JsonInputError):
    """Not UTF-8, not JSON, or nested too deep: nothing of the document can be used."""


class JsonValueError(JsonInputError):
    """Valid JSON holding values the app refuses; `problems` lists (JSON path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], total: int) -> None:
        self.problems = problems
        self.total = total
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        listed = "; ".join(f"{path or 'the document'} {message}" for path, message in problems)
        super().__init__(f"holds {total} value(s) out of bounds: {listed}{more}")


class _Refused:
    """Stands in for a number the parser refused, until the walk names its path."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH, max_number_chars: int = MAX_NUMBER_CHARS) -> Any:
    """The JSON value in `data`; JsonSyntaxError or JsonValueError when it is out of bounds."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise JsonSyntaxError("is not UTF-8 text") from None
    else:
        text = data
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonSyntaxError(f"is nested deeper than {max_depth} levels of arrays and objects")

    def number(token: str, convert) -> Any:
        if len(token) > max_number_chars:
            return _Refused(f"is a number of {len(token)} characters; at most {max_number_chars} are allowed")
        value = convert(token)
        if isinstance(value, float) and not math.isfinite(value):
            return _Refused("is a number too large to represent")
        return value

    try:
        value = json.loads(text, parse_int=lambda token: number(token, int),
                           parse_float=lambda token: number(token, float),
                           parse_constant=lambda name: _Refused(f"is {name}, which is not a JSON number"))
    except json.JSONDecodeError as error:
        raise JsonSyntaxError(f"is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    problems: list[tuple[str, str]] = []
    _walk(value, "", problems)
    if problems:
        raise JsonValueError(problems[:MAX_LISTED], len(problems))
    return value


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text`, counted without parsing: escapes, then
    strings, then everything but brackets are dropped. Linear in the length of the text, whatever it holds."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def _walk(value: Any, path: str, problems: list[tuple[str, str]]) -> None:
    """Collect refused numbers and lone surrogates; the depth is bounded, so recursion is too."""
    if isinstance(value, _Refused):
        problems.append((path, value.message))
    elif isinstance(value, str):
        if _SURROGATE.search(value):
            problems.append((path, "is not valid Unicode: it holds a lone surrogate escape (\\ud800-\\udfff)"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", problems)
    elif isinstance(value, dict):
        for key, item in value.items():
            shown = shown_key(key)
            child = f"{path}.{shown}" if path else shown
            if _SURROGATE.search(key):
                problems.append((child, "is a name that is not valid Unicode: it holds a lone surrogate escape"))
            _walk(item, child, problems)


def shown_key(key: str, limit: int = 64) -> str:
    """A member name as it can be shown in a message: surrogates escaped, at most `limit` characters."""
    safe = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return safe if len(safe) <= limit else safe[:limit] + "…"
