"""The `mapping` of an export body: bounded against hostile input, then checked by the mapping's own rules.

`FieldMapping.from_dict` (shared/mapping.py) and the custom-property validator report one FieldError
per bad field, and some of their messages quote what they refuse. Before they run, this module bounds
what they may see: entry counts, names and string lengths. An entry beyond a bound gets one field
error here (its name shown shortened) and is left out of what the rules check, so every bad field
is still named once. The JSON depth is bounded by the body parser (shared/boundedjson.py).
"""
from __future__ import annotations

from typing import Any

from ..boundedjson import shown_key
from ..custom_properties import MAX_COLUMN_LENGTH, MAX_NAME_LENGTH, MAX_PROPERTIES, SPEC_FIELDS
from ..mapping import CUSTOM_PROPERTIES, MAPPING_KEYS, FieldMapping, MappingError
from ..problems import FieldError, json_type

MAX_MAPPING_ENTRIES = 32  # the mapping knows 11 keys; more is not a mapping
MAX_SPEC_ENTRIES = 8  # a property's spec knows 4
MAX_KEY_LENGTH = 64  # of the mapping's and a spec's own field names


def _too_long(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) > limit


def _bounded_spec(spec: Any, path: str, errors: list[FieldError]) -> bool:
    """Whether a property's spec is within bounds (errors added when not)."""
    if not isinstance(spec, dict):
        return True  # the rules name its type
    if len(spec) > MAX_SPEC_ENTRIES:
        errors.append(FieldError(path, f"must have at most {MAX_SPEC_ENTRIES} fields ({', '.join(SPEC_FIELDS)}), "
                                       f"got {len(spec)}"))
        return False
    fine = True
    for key, value in spec.items():
        if len(key) > MAX_KEY_LENGTH:
            errors.append(FieldError(f"{path}.{shown_key(key)}", f"is not a known field ({', '.join(SPEC_FIELDS)})"))
            fine = False
        elif _too_long(value, MAX_COLUMN_LENGTH):
            errors.append(FieldError(f"{path}.{key}", f"must be at most {MAX_COLUMN_LENGTH} characters, got {len(value)}"))
            fine = False
    return fine


def _bounded_properties(data: Any, path: str, errors: list[FieldError]) -> Any:
    """`customProperties` without the entries beyond bounds (errors added for each)."""
    if not isinstance(data, dict):
        return data
    if len(data) > MAX_PROPERTIES:
        errors.append(FieldError(path, f"has {len(data)} properties; Omnisend keeps at most {MAX_PROPERTIES} per contact"))
        return None
    kept = {}
    for name, spec in data.items():
        where = f"{path}.{shown_key(name)}"
        if len(name) > MAX_NAME_LENGTH:
            errors.append(FieldError(where, f"property names are at most {MAX_NAME_LENGTH} characters (Omnisend), "
                                            f"this one has {len(name)}"))
        elif _bounded_spec(spec, where, errors):
            kept[name] = spec
    return kept


def _covered(field: str, reported: list[FieldError]) -> bool:
    return any(field == error.field or field.startswith((error.field + ".", error.field + "["))
               for error in reported)


def mapping_errors(value: Any, path: str) -> list[FieldError]:
    """Every bad field of an export's `mapping`, one FieldError each at its JSON path
    (`mapping.gender`, `mapping.customProperties.tier.type`, ...); [] when it is fine."""
    if not isinstance(value, dict):
        return [FieldError(path, f"must be an object of contact field -> column name, got {json_type(value)}")]
    if len(value) > MAX_MAPPING_ENTRIES:
        return [FieldError(path, f"must have at most {MAX_MAPPING_ENTRIES} entries, got {len(value)}")]
    errors: list[FieldError] = []
    kept: dict[str, Any] = {}
    for key, entry in value.items():
        where = f"{path}.{shown_key(key)}"
        if len(key) > MAX_KEY_LENGTH:
            errors.append(FieldError(where, f"is not a field of the mapping (known: {', '.join(MAPPING_KEYS)})"))
        elif key == CUSTOM_PROPERTIES:
            kept[key] = _bounded_properties(entry, where, errors)
        elif _too_long(entry, MAX_COLUMN_LENGTH):
            errors.append(FieldError(where, f"must be a column name of at most {MAX_COLUMN_LENGTH} characters"))
        else:
            kept[key] = entry
    try:
        FieldMapping.from_dict(kept, path=path)
    except MappingError as error:
        errors += [problem for problem in error.problems if not _covered(problem.field, errors)]
    return errors
