"""From a profile row to an Omnisend contact (ContactRequest of API 2026-03-15), or a reject.

Data matching as Customer Insights offers it: Email (required) and optional First name, Last name,
Address, Country/Region, State, City, Post Code, each mapped to a column chosen by name. Beyond it,
`birthdate` and `gender` (converted, shared/conversions.py) and `customProperties` (typed custom
properties, shared/custom_properties.py).

The per-row cost of a mapping without converted fields is what it was before they existed: `bind`
decides once whether a segment's rows need conversions (`BoundMapping.extra`), and `map_row` hands
such rows to `_map_extra` after the plain fields.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from .conversions import Converter, Invalid, to_birthdate, to_gender
from .custom_properties import (
    MAX_COLUMN_LENGTH, BoundCustomProperties, CustomPropertyMapping, bind_custom_properties, convert_custom_properties,
    column_index, columns_problem, custom_property_problems,
)
from .problems import FieldError, json_type
from .rejects import RejectReason, RowRejection
from .segments import RawRow

CONTACT_FIELDS = ("email", "firstName", "lastName", "address", "country", "state", "city", "postalCode")  # text
CONVERTED_FIELDS = ("birthdate", "gender")  # contact fields whose values are converted (shared/conversions.py)
CUSTOM_PROPERTIES = "customProperties"
MAPPING_KEYS = CONTACT_FIELDS + CONVERTED_FIELDS + (CUSTOM_PROPERTIES,)
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit minus the angle brackets
MAX_LOCAL_PART_LENGTH = 64
MAX_FIELD_LENGTH = 1000  # characters; a longer name or address is garbage, not a person's data

# ISO 3166-1 alpha-2: the 249 officially assigned codes (user-assigned ones such as XK excluded).
ISO_3166_ALPHA2 = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()
)

_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Lower-case ASCII address with a dot-atom local part and a domain of at least two labels whose
# last is alphabetic (or punycode). Quoted local parts and IP-literal domains are not accepted.
_EMAIL = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?:[a-z]{{2,63}}|xn--[a-z0-9-]{{1,59}})")
_NON_ASCII_LOCAL_FORBIDDEN = set(" \t\r\n\"(),:;<>@[\\]")


class MappingError(ValueError):
    """A field mapping that cannot work; names the field(s), the column(s) and the segment.

    `problems` holds one FieldError per bad field (a JSON path such as `mapping.email` or
    `mapping.customProperties.tier.type`, and what is wrong there), for the API's field errors.
    """

    def __init__(self, message: str, problems: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


def _at(path: str, key: Any) -> str:
    if isinstance(key, str) and _PLAIN_KEY(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False) if isinstance(key, str) else repr(key)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").fullmatch


@dataclass(frozen=True)
class FieldMapping:
    """Column names (as the user chose them; matched case-insensitively) per contact field, and the
    custom properties."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    country: str | None = None
    state: str | None = None
    city: str | None = None
    postal_code: str | None = None
    birthdate: str | None = None
    gender: str | None = None
    custom_properties: CustomPropertyMapping = CustomPropertyMapping()

    @classmethod
    def from_dict(cls, d: Any, *, path: str = "mapping") -> "FieldMapping":
        """From the HTTP API's camelCase JSON (email, firstName, ... postalCode, birthdate, gender,
        customProperties). MappingError lists every bad field at once (`problems`, paths under `path`)."""
        if not isinstance(d, dict):
            problem = FieldError(path, "must be an object of contact field -> column name")
            raise MappingError(f"{path}: {problem.message}", [problem])
        problems = [FieldError(_at(path, key), f"is not a field of the mapping (known: {', '.join(MAPPING_KEYS)})")
                    for key in d if key not in MAPPING_KEYS]
        values: dict[str, Any] = {}
        for key, attr in _COLUMN_FIELDS:
            value = d.get(key)
            if value is not None and not isinstance(value, str):
                problems.append(FieldError(f"{path}.{key}", f"must be a column name (text), got {json_type(value)}"))
            elif value is not None and len(value.strip()) > MAX_COLUMN_LENGTH:
                problems.append(FieldError(f"{path}.{key}", f"a column name has at most {MAX_COLUMN_LENGTH} characters, "
                                                            f"this one {len(value.strip())}"))
            else:
                values[attr] = value.strip() if value and value.strip() else None
        if "email" in values and not values["email"]:
            problems.append(FieldError(f"{path}.email", "is required: the column that holds the email address"))
        custom = d.get(CUSTOM_PROPERTIES)
        problems += custom_property_problems(custom, f"{path}.{CUSTOM_PROPERTIES}")
        if problems:
            raise MappingError("; ".join(f"{p.field}: {p.message}" for p in problems), problems)
        return cls(**values, custom_properties=CustomPropertyMapping.from_dict(custom, path=f"{path}.{CUSTOM_PROPERTIES}"))

    def to_dict(self) -> dict[str, Any]:
        """The API's camelCase JSON (the stored form): mapped fields only; customProperties when any."""
        found: dict[str, Any] = {key: getattr(self, attr) for key, attr in _COLUMN_FIELDS if getattr(self, attr)}
        if self.custom_properties.properties:
            found[CUSTOM_PROPERTIES] = self.custom_properties.to_dict()
        return found

    @property
    def converts(self) -> bool:
        """Whether rows need conversions (birthdate, gender or custom properties) beyond the text fields."""
        return bool(self.birthdate or self.gender or self.custom_properties.properties)


_ATTRS = ("email", "first_name", "last_name", "address", "country", "state", "city", "postal_code")  # CONTACT_FIELDS
_COLUMN_FIELDS = tuple(zip(CONTACT_FIELDS + CONVERTED_FIELDS, _ATTRS + CONVERTED_FIELDS))  # (API key, attribute)
_CONVERTERS: dict[str, Converter] = {"birthdate": to_birthdate, "gender": to_gender}


class _Extra(NamedTuple):
    """What a row needs beyond the text fields: converted contact fields and custom properties."""

    fields: tuple[tuple[str, int, Converter, str], ...]  # (ContactRequest key, column index, converter, column name)
    custom: BoundCustomProperties | None


@dataclass(frozen=True)
class BoundMapping:
    """A mapping resolved against a segment's columns: field -> column index."""

    segment: str
    columns: tuple[str, ...]
    email: int
    country: int | None
    plain: tuple[tuple[str, int], ...]  # (ContactRequest key, column index), country excluded
    extra: _Extra | None = None  # None: the mapping converts nothing (the rows take the plain path only)


def bind(mapping: FieldMapping, columns: Sequence[str], segment: str) -> BoundMapping:
    """Column indexes for the mapping; MappingError lists every column the segment lacks (contact
    fields, then custom properties), with one FieldError each in `problems`."""
    wanted = [(key, f"mapping.{key}", getattr(mapping, attr)) for key, attr in _COLUMN_FIELDS]
    wanted += [(f"{CUSTOM_PROPERTIES}.{prop.name}", f"{_at(f'mapping.{CUSTOM_PROPERTIES}', prop.name)}.column", prop.column)
               for prop in mapping.custom_properties.properties]
    indexes: dict[str, int] = {}
    missing, ambiguous, problems = [], [], []
    for label, path, column in wanted:
        if column is None:
            continue
        found = column_index(columns, column)
        if found is None:
            missing.append(f"{label} -> {column!r}")
            problems.append(FieldError(path, f"segment {segment!r} has no column {column!r}"))
        elif found == "ambiguous":
            ambiguous.append(f"{label} -> {column!r}")
            problems.append(FieldError(path, f"segment {segment!r} has several columns that differ from {column!r} "
                                             f"only by case"))
        else:
            indexes[label] = found
    problem = columns_problem(segment, columns, missing, ambiguous)
    if problem:
        raise MappingError(problem, problems)
    plain = tuple((k, i) for k, i in indexes.items() if k in CONTACT_FIELDS and k not in ("email", "country"))
    extra = None
    if mapping.converts:
        converted = tuple((k, indexes[k], _CONVERTERS[k], columns[indexes[k]]) for k in CONVERTED_FIELDS if k in indexes)
        custom = (bind_custom_properties(mapping.custom_properties, columns, segment)
                  if mapping.custom_properties.properties else None)
        extra = _Extra(converted, custom)
    return BoundMapping(segment, tuple(columns), indexes["email"], indexes.get("country"), plain, extra)


class MappedContact(NamedTuple):  # NamedTuples: one per row, the cheapest immutable records to make
    email: str
    contact: dict  # the ContactRequest body


def normalize_email(raw: str) -> str | None:
    """Trimmed, lower-cased address, or None when it is not a valid address."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        return None
    if _EMAIL.fullmatch(email):  # the fast path: a plain ASCII address (local part <= 64 checked too)
        return email
    return None if email.isascii() else _normalize_international(email)


def _normalize_international(email: str) -> str | None:
    """Non-ASCII (RFC 6531) address: a plain local part and a domain that IDNA can encode."""
    local, at, domain = email.rpartition("@")
    if not at or not local or len(local.encode()) > MAX_LOCAL_PART_LENGTH:
        return None
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return None
    if any(c in _NON_ASCII_LOCAL_FORBIDDEN or not c.isprintable() for c in local):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    probe = ("x" if not local.isascii() else local) + "@" + ascii_domain.lower()
    return email if _EMAIL.fullmatch(probe) else None


def email_key(email: str) -> int:
    """A stable 64-bit key of a normalised address, for compact run-wide duplicate sets.

    Stable across processes (unlike hash()); a collision needs ~4 billion addresses to be likely.
    """
    hasher = _KEY_HASHER()
    hasher.update(email.encode())
    return _from_bytes(hasher.digest(), "little")


# A copy of an empty 8-byte BLAKE2b is the same hash as a new one, without parsing the constructor's
# ten keyword parameters for every row; one global look-up each, not two.
_KEY_HASHER, _from_bytes = hashlib.blake2b(digest_size=8).copy, int.from_bytes


def contact_request(email: str, **fields: str | None) -> dict:
    """The ContactRequest body: one email identifier that never sends a welcome message.

    Never `channels` (that would change a subscription), never `tags` (that would replace the
    contact's tags). Country goes as `countryCode` when it is an ISO 3166-1 alpha-2 code.
    Empty values are left out.
    """
    unknown = set(fields) - set(CONTACT_FIELDS[1:])
    if unknown:
        raise TypeError(f"contact_request got unknown field(s) {sorted(unknown)}")
    contact: dict = {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}
    for key, value in fields.items():
        value = value.strip() if value else ""
        if not value:
            continue
        if key == "country":
            _set_country(contact, value)
        else:
            contact[key] = value
    return contact


def _set_country(contact: dict, value: str) -> None:
    code = value.upper()
    if len(code) == 2 and code in ISO_3166_ALPHA2:
        contact["countryCode"] = code
    else:
        contact["country"] = value


def map_row(bound: BoundMapping, row: RawRow) -> MappedContact | RowRejection:
    """The contact to send for a row, or why it is rejected (duplicates are the run's business)."""
    fields = row.fields
    if fields is None or row.problem is not None:
        return row.problem or _NO_FIELDS
    email = fields[bound.email].strip().lower()
    # The fast path of normalize_email: a plain ASCII address (local part <= 64 checked too)
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL_FULLMATCH(email):
        email = normalize_email(fields[bound.email])
        if email is None:
            return _invalid_email(bound, fields[bound.email])
    contact: dict = {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}
    for key, index in bound.plain:
        value = fields[index]
        if value:
            value = value.strip()
            if value:
                if len(value) > MAX_FIELD_LENGTH:
                    return _too_long(bound, index, value, email)
                contact[key] = value
    if bound.country is not None:
        value = fields[bound.country].strip()
        if value:
            if len(value) > MAX_FIELD_LENGTH:
                return _too_long(bound, bound.country, value, email)
            _set_country(contact, value)
    if bound.extra is None:
        return _new_tuple(MappedContact, (email, contact))
    return _map_extra(bound.extra, fields, email, contact)


def _map_extra(extra: _Extra, fields: list[str], email: str, contact: dict) -> MappedContact | RowRejection:
    """The converted fields of a row whose plain fields are in `contact`: birthdate and gender, then
    customProperties. A value that cannot be converted rejects the row as `invalid_value` (gender
    never does; a custom property with `onInvalid: "omit"` is left out instead)."""
    for key, index, convert, column in extra.fields:
        value = convert(fields[index], column)
        if value is not None:
            if value.__class__ is Invalid:
                return RowRejection(RejectReason.INVALID_VALUE, value.detail, email)
            contact[key] = value
    if extra.custom is not None:
        properties = convert_custom_properties(extra.custom, fields)
        if properties is not None:
            if properties.__class__ is Invalid:
                return RowRejection(RejectReason.INVALID_VALUE, properties.detail, email)
            contact[CUSTOM_PROPERTIES] = properties
    return _new_tuple(MappedContact, (email, contact))


_EMAIL_FULLMATCH = _EMAIL.fullmatch
_NO_FIELDS = RowRejection(RejectReason.MALFORMED_ROW, "the row has no fields")
_new_tuple = tuple.__new__  # tuple.__new__(MappedContact, (email, contact)): the NamedTuple without Python code


def _invalid_email(bound: BoundMapping, raw_email: str) -> RowRejection:
    shown = raw_email.strip()
    if not shown:
        return RowRejection(RejectReason.MISSING_EMAIL, f"column {bound.columns[bound.email]!r} is empty")
    return RowRejection(
        RejectReason.INVALID_EMAIL,
        f"column {bound.columns[bound.email]!r}: {shown[:100]!r} is not a valid email address",
        shown[:MAX_EMAIL_LENGTH + 66],
    )


def _too_long(bound: BoundMapping, index: int, value: str, email: str) -> RowRejection:
    return RowRejection(
        RejectReason.FIELD_TOO_LONG,
        f"column {bound.columns[index]!r} holds {len(value)} characters, the limit is {MAX_FIELD_LENGTH}",
        email,
    )
