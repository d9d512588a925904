"""Mapping profile rows to Omnisend ContactRequest bodies, or to the reason they are rejected."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pytest

from shared.custom_properties import CustomPropertyMapping
from shared.mapping import (
    ISO_3166_ALPHA2, MAX_FIELD_LENGTH, FieldMapping, MappedContact, MappingError, bind, contact_request, email_key,
    map_row, normalize_email,
)
from shared.rejects import RejectReason, RowRejection, rejects_to_csv
from shared.segments import RawRow, get_segment, plan_chunks, read_chunk
from tests.segments import T1433
from tools.sample_export import (
    CI_COLUMNS, CUSTOM_COLUMNS, CUSTOM_PROPERTIES_MAPPING, DEFAULT_MAPPING, EXTENDED_MAPPING, generate_profiles,
    partition_bounds,
)

CONTRACT = Path(__file__).parent / "contracts" / "omnisend-2026-03-15.json"


@pytest.fixture(scope="module")
def contact_schema():
    document = json.loads(CONTRACT.read_text())
    return {"$ref": "#/components/schemas/ContactRequest", "components": document["components"]}


@pytest.fixture()
def bound():
    return bind(FieldMapping.from_dict(DEFAULT_MAPPING), CI_COLUMNS, "HighValue")


def profile(columns: tuple[str, ...] = CI_COLUMNS, **values) -> RawRow:
    defaults = dict(CustomerId="1", FirstName="Jane", LastName="Doe", PrimaryEmail="jane@example.com",
                    Address1="1 Main St", Country="US", State="California", City="Los Angeles", PostCode="90001",
                    PhoneNumber="", LifetimeValue="1.0", LastPurchaseDate="",
                    LoyaltyTier="Gold", BirthDate="5/1/1990 12:00:00 AM", Gender="Female",
                    PreferredStores="Vilnius; Kaunas", NewsletterOptIn="yes")
    defaults.update(values)
    return RawRow(7, [defaults[c] for c in columns], None)


def test_mapping_round_trips_through_the_api_shape():
    mapping = FieldMapping.from_dict({"email": " PrimaryEmail ", "firstName": "FirstName", "country": ""})
    assert mapping == FieldMapping(email="PrimaryEmail", first_name="FirstName")
    assert FieldMapping.from_dict(mapping.to_dict()) == mapping
    assert FieldMapping.from_dict(DEFAULT_MAPPING).to_dict() == DEFAULT_MAPPING


@pytest.mark.parametrize("bad, field, message", [
    ({"email": "E", "phone": "P"}, "mapping.phone", "is not a field of the mapping (known: email, firstName,"),
    ({"email": "E", "shoe size": "P"}, 'mapping["shoe size"]', "is not a field of the mapping"),
    ({"firstName": "F"}, "mapping.email", "is required: the column that holds the email address"),
    ({"email": " "}, "mapping.email", "is required"),
    ({"email": 3}, "mapping.email", "must be a column name (text), got a number"),
    ({"email": "E", "birthdate": ["BirthDate"]}, "mapping.birthdate", "must be a column name (text), got a list"),
    ({"email": "E", "gender": "G" * 257}, "mapping.gender", "a column name has at most 256 characters, this one 257"),
    ({"email": "E", "customProperties": "LoyaltyTier"}, "mapping.customProperties", "must be an object"),
    ({"email": "E", "customProperties": {"tier": {"column": "T", "type": "text"}}}, "mapping.customProperties.tier.type",
     'must be one of "string", "number"'),
    ({"email": "E", "customProperties": {"gender": {"column": "G", "type": "string"}}}, "mapping.customProperties.gender",
     "is a standard contact field"),
    (["PrimaryEmail"], "mapping", "must be an object"),
])
def test_a_mapping_that_breaks_a_rule_gets_one_field_error(bad, field, message):
    with pytest.raises(MappingError) as raised:
        FieldMapping.from_dict(bad)
    [problem] = raised.value.problems
    assert problem.field == field and message in problem.message
    assert str(raised.value) == f"{problem.field}: {problem.message}"


def test_every_bad_field_of_a_mapping_is_listed_at_once():
    with pytest.raises(MappingError) as raised:
        FieldMapping.from_dict({"firstName": 1, "shoe": "S", "gender": "Gender", "customProperties": {
            "tier": {"column": "LoyaltyTier", "type": "string"}, "bad name": {"column": "", "type": "number"}}},
            path="body.mapping")
    assert [p.field for p in raised.value.problems] == [
        "body.mapping.shoe", "body.mapping.firstName", "body.mapping.email", 'body.mapping.customProperties["bad name"]',
        'body.mapping.customProperties["bad name"].column',
    ]


def test_the_new_fields_round_trip_through_the_api_shape():
    mapping = FieldMapping.from_dict({**EXTENDED_MAPPING, "gender": " Gender "})
    assert (mapping.birthdate, mapping.gender) == ("BirthDate", "Gender")
    assert mapping.custom_properties == CustomPropertyMapping.from_dict(CUSTOM_PROPERTIES_MAPPING)
    stored = mapping.to_dict()
    assert stored["customProperties"]["loyalty_tier"] == {"column": "LoyaltyTier", "type": "string", "onInvalid": "reject"}
    assert {k: v for k, v in stored.items() if k != "customProperties"} == \
        {k: v for k, v in EXTENDED_MAPPING.items() if k != "customProperties"}
    assert FieldMapping.from_dict(stored) == mapping and json.loads(json.dumps(stored)) == stored
    empty = FieldMapping.from_dict({"email": "E", "birthdate": "", "gender": None, "customProperties": {}})
    assert empty == FieldMapping(email="E") and empty.to_dict() == {"email": "E"} and not empty.converts


def test_bind_matches_columns_case_insensitively_and_names_every_missing_one():
    mapping = FieldMapping(email="primaryemail", first_name="FIRSTNAME", city="Town", state="Region")
    assert bind(FieldMapping(email="primaryemail", first_name="FIRSTNAME"), CI_COLUMNS, "S").email == 3
    with pytest.raises(MappingError) as caught:
        bind(mapping, ("PrimaryEmail", "FirstName"), "Lapsed")
    assert str(caught.value) == ("segment 'Lapsed': no column for state -> 'Region', city -> 'Town' "
                                 "(its columns: PrimaryEmail, FirstName)")
    with pytest.raises(MappingError, match="several columns differ only by case for email -> 'EMAIL'"):
        bind(FieldMapping(email="EMAIL"), ("Email", "email"), "S")


def test_bind_resolves_the_new_columns_case_insensitively_and_names_every_missing_one():
    mapping = FieldMapping.from_dict({"email": "primaryemail", "birthdate": "BIRTHDATE", "gender": "gender",
                                      "customProperties": {"tier": {"column": "loyaltytier", "type": "string"}}})
    bound = bind(mapping, CI_COLUMNS + CUSTOM_COLUMNS, "Vip")
    assert [(key, index) for key, index, _, _ in bound.extra.fields] == [("birthdate", 13), ("gender", 14)]
    assert [entry[:2] for entry in bound.extra.custom.entries] == [("tier", 12)]
    with pytest.raises(MappingError) as raised:
        bind(FieldMapping.from_dict(EXTENDED_MAPPING), CI_COLUMNS, "Lapsed")
    assert str(raised.value) == (
        "segment 'Lapsed': no column for birthdate -> 'BirthDate', gender -> 'Gender', customProperties.loyalty_tier "
        f"-> 'LoyaltyTier', customProperties.preferred_stores -> 'PreferredStores' (its columns: {', '.join(CI_COLUMNS)})")
    assert [p.field for p in raised.value.problems] == [
        "mapping.birthdate", "mapping.gender", "mapping.customProperties.loyalty_tier.column",
        "mapping.customProperties.preferred_stores.column"]
    assert raised.value.problems[0].message == "segment 'Lapsed' has no column 'BirthDate'"


def test_only_a_mapping_with_converted_fields_gives_its_rows_extra_work():
    assert bind(FieldMapping.from_dict(DEFAULT_MAPPING), CI_COLUMNS + CUSTOM_COLUMNS, "S").extra is None
    assert bind(FieldMapping(email="PrimaryEmail", gender="Gender"), CI_COLUMNS + CUSTOM_COLUMNS, "S").extra is not None


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


WIDE = CI_COLUMNS + CUSTOM_COLUMNS + ("NewsletterOptIn",)
WIDE_MAPPING = {**EXTENDED_MAPPING, "customProperties": {
    **CUSTOM_PROPERTIES_MAPPING, "newsletter": {"column": "NewsletterOptIn", "type": "boolean", "onInvalid": "omit"}}}


@pytest.fixture()
def wide():
    return bind(FieldMapping.from_dict(WIDE_MAPPING), WIDE, "Vip")


def wide_row(**values) -> RawRow:
    return profile(WIDE, **{"LastPurchaseDate": "3/5/2024 1:05:09 PM", "LifetimeValue": "1234.5", **values})


def test_map_row_converts_birthdate_gender_and_custom_properties(wide, contact_schema):
    result = map_row(wide, wide_row())
    assert isinstance(result, MappedContact)
    assert result.contact == {
        "identifiers": [{"type": "email", "id": "jane@example.com", "sendWelcomeMessage": False}],
        "firstName": "Jane", "lastName": "Doe", "address": "1 Main St", "state": "California", "city": "Los Angeles",
        "postalCode": "90001", "countryCode": "US", "birthdate": "1990-05-01", "gender": "f",
        "customProperties": {"loyalty_tier": "Gold", "lifetime_value": 1234.5, "last_order_date": "2024-03-05T13:05:09Z",
                             "preferred_stores": ["Vilnius", "Kaunas"], "newsletter": True},
    }
    jsonschema.validate(result.contact, contact_schema)


@pytest.mark.parametrize("values, field, expected", [
    ({"BirthDate": "1990-05-01"}, "birthdate", "1990-05-01"),
    ({"BirthDate": "12/31/1985"}, "birthdate", "1985-12-31"),
    ({"BirthDate": "1985-12-31T23:30:00-05:00"}, "birthdate", "1985-12-31"),  # the date as written, no zone shift
    ({"BirthDate": " "}, "birthdate", None),
    ({"Gender": "M"}, "gender", "m"), ({"Gender": " male "}, "gender", "m"), ({"Gender": "FEMALE"}, "gender", "f"),
    ({"Gender": "Other"}, "gender", None), ({"Gender": "x"}, "gender", None), ({"Gender": ""}, "gender", None),
])
def test_birthdate_and_gender(wide, values, field, expected):
    """An empty birthdate and any gender but m/f/male/female leave the field out; the row is still sent."""
    result = map_row(wide, wide_row(**values))
    assert isinstance(result, MappedContact)
    assert result.contact.get(field) == expected


@pytest.mark.parametrize("values, expected", [
    ({"LoyaltyTier": " Silver "}, {"loyalty_tier": "Silver"}),
    ({"LifetimeValue": "-3"}, {"lifetime_value": -3}),
    ({"LifetimeValue": "1.5E+3"}, {"lifetime_value": 1500.0}),
    ({"LastPurchaseDate": "2024-03-05"}, {"last_order_date": "2024-03-05"}),
    ({"PreferredStores": "Riga"}, {"preferred_stores": ["Riga"]}),
    ({"NewsletterOptIn": "0"}, {"newsletter": False}),
    ({"NewsletterOptIn": "maybe"}, {"newsletter": None}),  # onInvalid "omit": just this property is left out
    ({"LoyaltyTier": ""}, {"loyalty_tier": None}),  # empty: left out
    ({"PreferredStores": " ; "}, {"preferred_stores": None}),
    ({"NewsletterOptIn": ""}, {"newsletter": None}),
])
def test_custom_properties_by_type(wide, values, expected):
    result = map_row(wide, wide_row(**values))
    assert isinstance(result, MappedContact)
    assert {name: result.contact["customProperties"].get(name) for name in expected} == expected


def test_a_row_whose_custom_values_are_all_empty_has_no_custom_properties(wide):
    result = map_row(wide, wide_row(LoyaltyTier="", LifetimeValue=" ", LastPurchaseDate="", PreferredStores="",
                                    NewsletterOptIn="", BirthDate="", Gender=""))
    assert isinstance(result, MappedContact)
    assert not {"customProperties", "birthdate", "gender"} & set(result.contact)


@pytest.mark.parametrize("values, detail", [
    ({"BirthDate": "2/30/1990"}, "column 'BirthDate': '2/30/1990' is not a valid birthdate: there is no day 30 in month 2 "
                                 "of 1990"),
    ({"BirthDate": "1/1/0001 12:00:00 AM"}, "column 'BirthDate': '1/1/0001 12:00:00 AM' is not a valid birthdate: a birth "
                                            "year before 1900 is a placeholder"),
    ({"LifetimeValue": "1 234,5"}, "column 'LifetimeValue': '1 234,5' is not a valid number: a comma is ambiguous"),
    ({"LastPurchaseDate": "31/12/2024"}, "column 'LastPurchaseDate': '31/12/2024' is not a valid date: there is no "
                                         "month 31"),
    ({"LoyaltyTier": "x" * 2049}, f"column 'LoyaltyTier': '{'x' * 100}' is not a valid string: it holds 2049 characters"),
])
def test_a_value_that_cannot_be_converted_rejects_the_row_as_invalid_value(wide, values, detail):
    result = map_row(wide, wide_row(**values))
    assert isinstance(result, RowRejection)
    assert result.reason is RejectReason.INVALID_VALUE and result.detail.startswith(detail)
    assert result.email == "jane@example.com"
    [row] = list(csv.reader(io.StringIO(rejects_to_csv([result.reject("Vip", "Vip_1.csv", 7)], header=False))))
    assert row[3:] == ["invalid_value", result.detail, "jane@example.com"]


def test_the_email_is_judged_before_the_converted_fields(wide):
    result = map_row(wide, wide_row(PrimaryEmail="jane@", BirthDate="2/30/1990"))
    assert result.reason is RejectReason.INVALID_EMAIL


@pytest.mark.parametrize("custom_fields", [False, True], ids=["default mapping", "extended mapping"])
def test_generated_export_maps_to_exactly_the_expected_outcomes(segments_container, ci_export, custom_fields):
    """Every row ends as exactly one outcome, and it is the one the generator says; with the custom
    columns mapped, each contact carries the birthdate, gender and custom properties it expects."""
    profiles = generate_profiles(3000, seed=21, bad_share=0.03, duplicate_share=0.02, custom_fields=custom_fields)
    ci_export({"HighValue": profiles}, partitions=3, when=T1433)
    segment = get_segment(segments_container, "HighValue")
    bound = bind(FieldMapping.from_dict(EXTENDED_MAPPING if custom_fields else DEFAULT_MAPPING), segment.columns,
                 segment.name)
    expected, index = {}, {}
    for partition, (start, stop) in zip(segment.partitions, partition_bounds(profiles.count, 3)):
        for e in profiles.expectations(start, stop):
            expected[(partition.blob, e.row - start)] = (e.reason, e.email)
            index[(partition.blob, e.row - start)] = e.row - 1

    seen, outcomes, converted = set(), {}, 0
    for chunk in plan_chunks(segments_container, segment, 250):
        for row in read_chunk(segments_container, chunk):
            result = map_row(bound, row)
            if isinstance(result, MappedContact):
                key = email_key(result.email)
                outcome = (RejectReason.DUPLICATE if key in seen else None, result.email)
                seen.add(key)
                fields = {k: result.contact[k] for k in ("birthdate", "gender", "customProperties") if k in result.contact}
                if custom_fields:
                    assert fields == profiles.expected_fields(index[(chunk.blob, row.number)]), (chunk.blob, row.number)
                    converted += 1
                else:
                    assert fields == {}
            else:
                outcome = (result.reason, None)
            outcomes[(chunk.blob, row.number)] = outcome
    assert converted > 2800 or not custom_fields

    assert len(outcomes) == 3000
    normalized = {k: (reason, email if reason in (None, RejectReason.DUPLICATE) else None)
                  for k, (reason, email) in expected.items()}
    assert outcomes == normalized
    reasons = {reason for reason, _ in outcomes.values()}
    assert reasons == {None, RejectReason.DUPLICATE, RejectReason.MISSING_EMAIL, RejectReason.INVALID_EMAIL,
                       RejectReason.MALFORMED_ROW, RejectReason.UNDECODABLE, RejectReason.FIELD_TOO_LONG}
