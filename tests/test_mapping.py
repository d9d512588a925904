"""Mapping profile rows to Omnisend ContactRequest bodies, or to the reason they are rejected."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from shared.mapping import (
    ISO_3166_ALPHA2, MAX_FIELD_LENGTH, FieldMapping, MappedContact, MappingError, bind, contact_request, email_key,
    map_row, normalize_email,
)
from shared.rejects import RejectReason, RowRejection
from shared.segments import RawRow, get_segment, plan_chunks, read_chunk
from tests.segments import T1433
from tools.sample_export import CI_COLUMNS, DEFAULT_MAPPING, generate_profiles, partition_bounds

CONTRACT = Path(__file__).parent / "contracts" / "omnisend-2026-03-15.json"


@pytest.fixture(scope="module")
def contact_schema():
    document = json.loads(CONTRACT.read_text())
    return {"$ref": "#/components/schemas/ContactRequest", "components": document["components"]}


@pytest.fixture()
def bound():
    return bind(FieldMapping.from_dict(DEFAULT_MAPPING), CI_COLUMNS, "HighValue")


def profile(**values) -> RawRow:
    defaults = dict(CustomerId="1", FirstName="Jane", LastName="Doe", PrimaryEmail="jane@example.com",
                    Address1="1 Main St", Country="US", State="California", City="Los Angeles", PostCode="90001",
                    PhoneNumber="", LifetimeValue="1.0", LastPurchaseDate="")
    defaults.update(values)
    return RawRow(7, [defaults[c] for c in CI_COLUMNS], None)


def test_mapping_round_trips_through_the_api_shape():
    mapping = FieldMapping.from_dict({"email": " PrimaryEmail ", "firstName": "FirstName", "country": ""})
    assert mapping == FieldMapping(email="PrimaryEmail", first_name="FirstName")
    assert FieldMapping.from_dict(mapping.to_dict()) == mapping
    assert FieldMapping.from_dict(DEFAULT_MAPPING).to_dict() == DEFAULT_MAPPING


@pytest.mark.parametrize("bad,message", [
    ({"email": "E", "phone": "P"}, r"unknown contact field\(s\) \['phone'\]"),
    ({"firstName": "F"}, r"must name the column that holds the email address"),
    ({"email": 3}, r"mapping of email must be a column name \(text\), got int"),
])
def test_bad_mappings(bad, message):
    with pytest.raises(MappingError, match=message):
        FieldMapping.from_dict(bad)


def test_bind_matches_columns_case_insensitively_and_names_every_missing_one():
    mapping = FieldMapping(email="primaryemail", first_name="FIRSTNAME", city="Town", state="Region")
    assert bind(FieldMapping(email="primaryemail", first_name="FIRSTNAME"), CI_COLUMNS, "S").email == 3
    with pytest.raises(MappingError) as caught:
        bind(mapping, ("PrimaryEmail", "FirstName"), "Lapsed")
    assert str(caught.value) == ("segment 'Lapsed': no column for state -> 'Region', city -> 'Town' "
                                 "(its columns: PrimaryEmail, FirstName)")
    with pytest.raises(MappingError, match="several columns differ only by case for email -> 'EMAIL'"):
        bind(FieldMapping(email="EMAIL"), ("Email", "email"), "S")


@pytest.mark.parametrize("raw,expected", [
    ("  Jane.Doe@Example.COM\t", "jane.doe@example.com"),
    ("o'brien+news@mail.example.co.uk", "o'brien+news@mail.example.co.uk"),
    ("jürgen@bücher.de", "jürgen@bücher.de"),
    ("a@xn--80ak6aa92e.com", "a@xn--80ak6aa92e.com"),
    ("jane.doe", None), ("jane@", None), ("@example.com", None), ("jane doe@example.com", None),
    ("jane@@example.com", None), ("jane@example", None), (".jane@example.com", None), ("ja..ne@example.com", None),
    ("jane@-example.com", None), ('"jane"@example.com', None), ("x" * 65 + "@example.com", None),
    ("a@" + "b" * 250 + ".com", None), ("", None),
])
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


def test_email_key_is_a_stable_64_bit_key():
    assert email_key("jane@example.com") == email_key("jane@example.com") != email_key("john@example.com")
    assert 0 <= email_key("jane@example.com") < 2**64
    assert email_key("jane@example.com") == 0x3e4d5f5563bf4694  # blake2b-64: the same in every process and release


def test_contact_request_is_safe_and_valid(contact_schema):
    body = contact_request("jane@example.com", firstName=" Jane ", lastName="", country="lt", city=None,
                           postalCode="LT-01100")
    assert body == {
        "identifiers": [{"type": "email", "id": "jane@example.com", "sendWelcomeMessage": False}],
        "firstName": "Jane", "countryCode": "LT", "postalCode": "LT-01100",
    }
    jsonschema.validate(body, contact_schema)
    assert contact_request("a@example.com", country="Lithuania")["country"] == "Lithuania"
    assert "countryCode" not in contact_request("a@example.com", country="UK")  # not an ISO code: sent as a name
    with pytest.raises(TypeError, match="tags"):
        contact_request("a@example.com", tags="vip")


def test_iso_codes_are_the_official_249():
    assert len(ISO_3166_ALPHA2) == 249
    assert {"US", "GB", "LT", "SS", "BQ", "AX"} <= ISO_3166_ALPHA2 and not {"UK", "XK", "EU", "AN"} & ISO_3166_ALPHA2


def test_map_row_builds_the_contact(bound, contact_schema):
    result = map_row(bound, profile(PrimaryEmail=" Jane@Example.com ", State="", Country="Germany"))
    assert isinstance(result, MappedContact) and result.email == "jane@example.com"
    assert result.contact == {
        "identifiers": [{"type": "email", "id": "jane@example.com", "sendWelcomeMessage": False}],
        "firstName": "Jane", "lastName": "Doe", "address": "1 Main St", "city": "Los Angeles",
        "postalCode": "90001", "country": "Germany",
    }
    assert not {"tags", "channels"} & set(result.contact) and "channels" not in result.contact["identifiers"][0]
    jsonschema.validate(result.contact, contact_schema)


@pytest.mark.parametrize("row,reason,detail", [
    (profile(PrimaryEmail="  "), RejectReason.MISSING_EMAIL, "column 'PrimaryEmail' is empty"),
    (profile(PrimaryEmail="jane@"), RejectReason.INVALID_EMAIL,
     "column 'PrimaryEmail': 'jane@' is not a valid email address"),
    (profile(City="c" * (MAX_FIELD_LENGTH + 1)), RejectReason.FIELD_TOO_LONG,
     f"column 'City' holds {MAX_FIELD_LENGTH + 1} characters, the limit is {MAX_FIELD_LENGTH}"),
    (profile(Country="c" * (MAX_FIELD_LENGTH + 1)), RejectReason.FIELD_TOO_LONG,
     f"column 'Country' holds {MAX_FIELD_LENGTH + 1} characters, the limit is {MAX_FIELD_LENGTH}"),
    (RawRow(3, None, RowRejection(RejectReason.MALFORMED_ROW, "3 fields, the segment has 12 columns")),
     RejectReason.MALFORMED_ROW, "3 fields, the segment has 12 columns"),
    (RawRow(3, None, RowRejection(RejectReason.UNDECODABLE, "byte 0xff: not valid utf-8")),
     RejectReason.UNDECODABLE, "byte 0xff: not valid utf-8"),
    (RawRow(3, None, RowRejection(RejectReason.MALFORMED_ROW, "contact_limit: not a reason code here")),
     RejectReason.MALFORMED_ROW, "contact_limit: not a reason code here"),
])
def test_map_row_rejects_with_a_reason(bound, row, reason, detail):
    result = map_row(bound, row)
    assert isinstance(result, RowRejection)
    assert (result.reason, result.detail) == (reason, detail)


def test_generated_export_maps_to_exactly_the_expected_outcomes(segments_container, ci_export):
    """Every row ends as exactly one outcome, and it is the one the generator says."""
    profiles = generate_profiles(3000, seed=21, bad_share=0.03, duplicate_share=0.02)
    ci_export({"HighValue": profiles}, partitions=3, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    bound = bind(FieldMapping.from_dict(DEFAULT_MAPPING), segment.columns, segment.name)
    expected = {}
    for partition, (start, stop) in zip(segment.partitions, partition_bounds(profiles.count, 3)):
        for e in profiles.expectations(start, stop):
            expected[(partition.blob, e.row - start)] = (e.reason, e.email)

    seen, outcomes = set(), {}
    for chunk in plan_chunks(segments_container, segment, 250):
        for row in read_chunk(segments_container, chunk):
            result = map_row(bound, row)
            if isinstance(result, MappedContact):
                key = email_key(result.email)
                outcome = (RejectReason.DUPLICATE if key in seen else None, result.email)
                seen.add(key)
            else:
                outcome = (result.reason, None)
            outcomes[(chunk.blob, row.number)] = outcome

    assert len(outcomes) == 3000
    normalized = {k: (reason, email if reason in (None, RejectReason.DUPLICATE) else None)
                  for k, (reason, email) in expected.items()}
    assert outcomes == normalized
    reasons = {reason for reason, _ in outcomes.values()}
    assert reasons == {None, RejectReason.DUPLICATE, RejectReason.MISSING_EMAIL, RejectReason.INVALID_EMAIL,
                       RejectReason.MALFORMED_ROW, RejectReason.UNDECODABLE, RejectReason.FIELD_TOO_LONG}
