"""Custom-property mapping: `mapping.customProperties`, validated against Omnisend's rules, bound
to a segment's columns and converted per row.

    "customProperties": {
      "loyalty_tier":    {"column": "LoyaltyTier", "type": "string"},
      "lifetime_value":  {"column": "LifetimeValue", "type": "number", "onInvalid": "omit"},
      "preferred_stores": {"column": "PreferredStores", "type": "stringList", "separator": ";"}
    }

How it is meant to be called:

- **API** (create / replace an export): `CustomPropertyMapping.from_dict(body["mapping"]["customProperties"],
  path="mapping.customProperties")`; `InvalidCustomPropertiesError.problems` are FieldErrors, one per
  bad field (`mapping.customProperties.loyalty_tier.type`, ...), for a 400 `validation_failed`.
  Store `to_dict()` in the export's mapping.
- **Planner** (checks the mapping against each segment): `bind_custom_properties(mapping, columns,
  segment)` raises MissingColumnsError naming every property whose column the segment lacks.
- **Worker** (map_row, once per row): `convert_custom_properties(bound, fields)` gives the
  `customProperties` object for the contact (None when every value is empty), or the first
  `Invalid` of a property with `onInvalid: "reject"`: reject the row as `invalid_value` with
  `invalid.detail` (it names the column and the value).

Omnisend's rules, from its contacts reference (api-docs.omnisend.com, "Custom properties"): at most
200 custom properties per contact; names of Latin letters, digits and `_`, at most 128 characters,
case-sensitive; string values at most 2048 characters; no objects. Its API stores a contact's
`createdAt` as the custom property `externalCreated` (official OpenAPI, ContactRequest.createdAt),
so that name is reserved. This project also refuses names of standard contact fields (a custom
`birthdate` would shadow the real one: map the field itself) and two names that differ only by
case (Omnisend would keep both).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

from .conversions import SCALAR_CONVERTERS, Converter, Invalid, string_list
from .problems import FieldError, json_type

MAX_PROPERTIES = 200  # Omnisend: per contact
MAX_NAME_LENGTH = 128  # Omnisend
MAX_COLUMN_LENGTH = 256
MAX_SEPARATOR_LENGTH = 10
_NAME = re.compile(r"[A-Za-z0-9_]{1,128}").fullmatch
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").fullmatch
RESERVED_NAMES = frozenset({"externalCreated"})
# Fields of Omnisend's contact (ContactRequest and ContactResponse): not custom-property names here.
CONTACT_FIELD_NAMES = frozenset(name.casefold() for name in (
    "id", "contactID", "email", "phone", "identifiers", "firstName", "lastName", "address", "city", "state",
    "postalCode", "country", "countryCode", "gender", "birthdate", "tags", "customProperties", "createdAt",
    "updatedAt", "status", "statuses", "segments", "consents", "optIns", "optOuts",
))
SPEC_FIELDS = ("column", "type", "onInvalid", "separator")


class PropertyType(str, Enum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    STRING_LIST = "stringList"


class OnInvalid(str, Enum):
    REJECT = "reject"  # a value that cannot be converted rejects the row (invalid_value)
    OMIT = "omit"  # ... leaves just this property out


class CustomPropertiesError(ValueError):
    """Root of this module's errors."""


class InvalidCustomPropertiesError(CustomPropertiesError):
    def __init__(self, problems: list[FieldError]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class MissingColumnsError(CustomPropertiesError):
    """The segment lacks (or has ambiguously) the columns some properties read."""


@dataclass(frozen=True)
class CustomProperty:
    name: str
    column: str
    type: PropertyType
    on_invalid: OnInvalid = OnInvalid.REJECT
    separator: str | None = None  # stringList only

    def to_dict(self) -> dict[str, str]:
        spec = {"column": self.column, "type": self.type.value, "onInvalid": self.on_invalid.value}
        if self.separator is not None:
            spec["separator"] = self.separator
        return spec

    def converter(self) -> Converter:
        if self.type is PropertyType.STRING_LIST:
            return string_list(self.separator)
        return SCALAR_CONVERTERS[self.type.value]


@dataclass(frozen=True)
class CustomPropertyMapping:
    """The parsed `customProperties` of a mapping, in the order given."""

    properties: tuple[CustomProperty, ...] = ()

    @classmethod
    def from_dict(cls, data: Any, *, path: str = "mapping.customProperties") -> "CustomPropertyMapping":
        problems = custom_property_problems(data, path)
        if problems:
            raise InvalidCustomPropertiesError(problems)
        if data is None:
            return cls()
        return cls(tuple(
            CustomProperty(name, spec["column"].strip(), PropertyType(spec["type"]),
                           OnInvalid(spec.get("onInvalid", OnInvalid.REJECT.value)), spec.get("separator"))
            for name, spec in data.items()
        ))

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {prop.name: prop.to_dict() for prop in self.properties}

    def __len__(self) -> int:
        return len(self.properties)


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if _PLAIN_KEY(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _name_problems(name: str) -> str | None:
    if not _NAME(name):
        if not name:
            return "a property name cannot be empty"
        if len(name) > MAX_NAME_LENGTH:
            return f"property names are at most {MAX_NAME_LENGTH} characters (Omnisend), this one has {len(name)}"
        suggestion = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:MAX_NAME_LENGTH]
        hint = f", e.g. {suggestion!r}" if suggestion else ""
        return f"property names take only Latin letters, digits and _ (Omnisend){hint}"
    if name in RESERVED_NAMES:
        return f"{name!r} is reserved: Omnisend stores a contact's createdAt under it"
    if name.casefold() in CONTACT_FIELD_NAMES:
        return f"{name!r} is a standard contact field, not a custom property; map the field itself"
    return None


def _spec_problems(spec: Any, path: str) -> list[FieldError]:
    if not isinstance(spec, Mapping):
        return [FieldError(path, f"must be an object {{\"column\": ..., \"type\": ...}}, got {json_type(spec)}")]
    problems = [FieldError(f"{path}.{key}" if isinstance(key, str) else path,
                           f"is not a known field ({', '.join(SPEC_FIELDS)})") for key in spec if key not in SPEC_FIELDS]
    column = spec.get("column")
    if "column" not in spec:
        problems.append(FieldError(f"{path}.column", "is required: the name of the segment column to read"))
    elif not isinstance(column, str) or not column.strip() or len(column) > MAX_COLUMN_LENGTH:
        got = json_type(column) if not isinstance(column, str) else f"{len(column)} characters" if column.strip() else "a blank string"
        problems.append(FieldError(f"{path}.column", f"must be a column name of 1 to {MAX_COLUMN_LENGTH} characters, got {got}"))
    types = [t.value for t in PropertyType]
    kind = spec.get("type")
    if "type" not in spec:
        problems.append(FieldError(f"{path}.type", f"is required: one of {', '.join(map(json.dumps, types))}"))
    elif kind not in types:
        shown = json.dumps(kind) if isinstance(kind, str) else json_type(kind)
        problems.append(FieldError(f"{path}.type", f"must be one of {', '.join(map(json.dumps, types))}, got {shown}"))
    if "onInvalid" in spec and spec["onInvalid"] not in [o.value for o in OnInvalid]:
        value = spec["onInvalid"]
        shown = json.dumps(value) if isinstance(value, str) else json_type(value)
        problems.append(FieldError(f"{path}.onInvalid", f"must be \"reject\" or \"omit\", got {shown}"))
    separator = spec.get("separator")
    if kind == PropertyType.STRING_LIST.value:
        if "separator" not in spec:
            problems.append(FieldError(f"{path}.separator", "is required for a stringList: the text between items, e.g. \";\""))
        elif not isinstance(separator, str) or not 1 <= len(separator) <= MAX_SEPARATOR_LENGTH:
            got = json_type(separator) if not isinstance(separator, str) else f"{len(separator)} characters"
            problems.append(FieldError(f"{path}.separator", f"must be 1 to {MAX_SEPARATOR_LENGTH} characters, got {got}"))
    elif "separator" in spec and kind in types:
        problems.append(FieldError(f"{path}.separator", "only applies to type \"stringList\""))
    return problems


def custom_property_problems(data: Any, path: str = "mapping.customProperties") -> list[FieldError]:
    """Every way `data` breaks Omnisend's custom-property rules or this mapping's shape, one
    FieldError per bad field ([] when it is fine; None means no custom properties)."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        return [FieldError(path, f"must be an object of property name -> {{\"column\", \"type\"}}, got {json_type(data)}")]
    problems: list[FieldError] = []
    if len(data) > MAX_PROPERTIES:
        problems.append(FieldError(path, f"has {len(data)} properties; Omnisend keeps at most {MAX_PROPERTIES} per contact"))
    seen: dict[str, str] = {}
    for name, spec in data.items():
        where = _at(path, name)
        message = _name_problems(name)
        if message is None and name.casefold() in seen:
            message = f"differs from {seen[name.casefold()]!r} only by case; Omnisend would keep two properties"
        if message is not None:
            problems.append(FieldError(where, message))
        seen.setdefault(name.casefold(), name)
        problems += _spec_problems(spec, where)
    return problems


# -- binding and the per-row conversion ----------------------------------------------------------

@dataclass(frozen=True)
class BoundCustomProperties:
    """A mapping resolved against a segment's columns, ready for the per-row loop."""

    segment: str
    # (property name, column index, converter, column name, omit when invalid)
    entries: tuple[tuple[str, int, Converter, str, bool], ...]


def column_index(columns: Sequence[str], wanted: str) -> int | None | str:
    """Where a mapped column is: an exact match, else the one case-insensitive match; None when the
    segment lacks it, "ambiguous" when it has it twice."""
    exact = [i for i, c in enumerate(columns) if c == wanted]
    if len(exact) == 1:
        return exact[0]
    folded = [i for i, c in enumerate(columns) if c.casefold() == wanted.casefold()]
    if len(folded) == 1:
        return folded[0]
    return "ambiguous" if folded else None


def bind_custom_properties(mapping: CustomPropertyMapping, columns: Sequence[str], segment: str) -> BoundCustomProperties:
    """Column indexes of every property (matched case-insensitively when not exactly); MissingColumnsError
    names every property whose column the segment lacks or has twice."""
    entries, missing, ambiguous = [], [], []
    for prop in mapping.properties:
        found = column_index(columns, prop.column)
        if found is None:
            missing.append(f"{prop.name} -> {prop.column!r}")
        elif found == "ambiguous":
            ambiguous.append(f"{prop.name} -> {prop.column!r}")
        else:
            entries.append((prop.name, found, prop.converter(), columns[found], prop.on_invalid is OnInvalid.OMIT))
    problem = columns_problem(segment, columns, missing, ambiguous, what="custom properties ")
    if problem:
        raise MissingColumnsError(problem)
    return BoundCustomProperties(segment, tuple(entries))


def columns_problem(segment: str, columns: Sequence[str], missing: list[str], ambiguous: list[str],
                    what: str = "") -> str | None:
    """The message for mapped columns a segment lacks or has twice ("<name> -> 'Column'" each); None: none."""
    parts = []
    if missing:
        parts.append(f"no column for {what}{', '.join(missing)}")
    if ambiguous:
        parts.append(f"several columns differ only by case for {what}{', '.join(ambiguous)}")
    return f"segment {segment!r}: {'; '.join(parts)} (its columns: {', '.join(columns)})" if parts else None


def convert_custom_properties(bound: BoundCustomProperties, fields: Sequence[str]) -> dict | Invalid | None:
    """The contact's `customProperties` for one row: None when every value is empty (or omitted),
    or the Invalid that rejects the row."""
    properties = None
    for name, index, convert, column, omit in bound.entries:
        value = convert(fields[index], column)
        if value is None:
            continue
        if value.__class__ is Invalid:
            if omit:
                continue
            return value
        if properties is None:
            properties = {}
        properties[name] = value
    return properties
