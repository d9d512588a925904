"""Custom-property mappings (shared/custom_properties.py): Omnisend's rules with one field error per
bad field, binding to a segment's columns, per-row conversion, and what Omnisend (the sandbox) takes."""
from __future__ import annotations

import pytest

from shared.conversions import Invalid
from shared.custom_properties import (
    MAX_PROPERTIES, CustomProperty, CustomPropertyMapping, InvalidCustomPropertiesError, MissingColumnsError,
    OnInvalid, PropertyType, bind_custom_properties, convert_custom_properties, custom_property_problems,
)

PATH = "mapping.customProperties"
COLUMNS = ("Email", "LoyaltyTier", "LifetimeValue", "LastPurchaseDate", "PreferredStores", "NewsletterOptIn")
MAPPING = {
    "loyalty_tier": {"column": "LoyaltyTier", "type": "string"},
    "lifetime_value": {"column": "lifetimevalue", "type": "number", "onInvalid": "omit"},
    "last_order_date": {"column": "LastPurchaseDate", "type": "date"},
    "preferred_stores": {"column": "PreferredStores", "type": "stringList", "separator": ";"},
    "newsletter": {"column": "NewsletterOptIn", "type": "boolean", "onInvalid": "reject"},
}


@pytest.fixture()
def bound():
    return bind_custom_properties(CustomPropertyMapping.from_dict(MAPPING), COLUMNS, "Vip")


def row(**values) -> list[str]:
    defaults = {"Email": "jane@example.com", "LoyaltyTier": "Gold", "LifetimeValue": "1234.5",
                "LastPurchaseDate": "3/5/2024 1:05:09 PM", "PreferredStores": "Vilnius; Kaunas", "NewsletterOptIn": "Yes"}
    defaults.update(values)
    return [defaults[c] for c in COLUMNS]


def test_mapping_parses_to_typed_properties_and_round_trips():
    mapping = CustomPropertyMapping.from_dict(MAPPING)
    assert mapping.properties[1] == CustomProperty("lifetime_value", "lifetimevalue", PropertyType.NUMBER, OnInvalid.OMIT)
    assert mapping.properties[3].separator == ";" and mapping.properties[0].on_invalid is OnInvalid.REJECT
    assert CustomPropertyMapping.from_dict(mapping.to_dict()) == mapping
    assert mapping.to_dict()["loyalty_tier"] == {"column": "LoyaltyTier", "type": "string", "onInvalid": "reject"}
    assert CustomPropertyMapping.from_dict(None) == CustomPropertyMapping() and len(CustomPropertyMapping()) == 0


@pytest.mark.parametrize("properties, field, message", [
    ({"loyalty tier": {"column": "T", "type": "string"}}, f'{PATH}["loyalty tier"]',
     "only Latin letters, digits and _ (Omnisend), e.g. 'loyalty_tier'"),
    ({"lojalumo_lygis_ž": {"column": "T", "type": "string"}}, f'{PATH}["lojalumo_lygis_ž"]', "only Latin letters"),
    ({"x" * 129: {"column": "T", "type": "string"}}, f"{PATH}.{'x' * 129}", "at most 128 characters (Omnisend)"),
    ({"": {"column": "T", "type": "string"}}, f'{PATH}[""]', "cannot be empty"),
    ({"externalCreated": {"column": "T", "type": "date"}}, f"{PATH}.externalCreated", "reserved"),
    ({"Birthdate": {"column": "T", "type": "date"}}, f"{PATH}.Birthdate", "standard contact field"),
    ({"tier": {"column": "T", "type": "string"}, "Tier": {"column": "U", "type": "string"}}, f"{PATH}.Tier",
     "differs from 'tier' only by case"),
    ({"tier": "LoyaltyTier"}, f"{PATH}.tier", "must be an object"),
    ({"tier": {"type": "string"}}, f"{PATH}.tier.column", "is required"),
    ({"tier": {"column": " ", "type": "string"}}, f"{PATH}.tier.column", "got a blank string"),
    ({"tier": {"column": 7, "type": "string"}}, f"{PATH}.tier.column", "got a number"),
    ({"tier": {"column": "T"}}, f"{PATH}.tier.type", "is required"),
    ({"tier": {"column": "T", "type": "text"}}, f"{PATH}.tier.type", 'must be one of "string", "number"'),
    ({"tier": {"column": "T", "type": "string", "onInvalid": "skip"}}, f"{PATH}.tier.onInvalid",
     'must be "reject" or "omit", got "skip"'),
    ({"tier": {"column": "T", "type": "string", "default": "x"}}, f"{PATH}.tier.default", "is not a known field"),
    ({"stores": {"column": "S", "type": "stringList"}}, f"{PATH}.stores.separator", "is required for a stringList"),
    ({"stores": {"column": "S", "type": "stringList", "separator": ""}}, f"{PATH}.stores.separator",
     "must be 1 to 10 characters"),
    ({"tier": {"column": "T", "type": "string", "separator": ";"}}, f"{PATH}.tier.separator",
     'only applies to type "stringList"'),
    ({f"p{i}": {"column": "C", "type": "string"} for i in range(MAX_PROPERTIES + 1)}, PATH,
     "has 201 properties; Omnisend keeps at most 200"),
    (["tier"], PATH, "must be an object of property name"),
])
def test_a_mapping_that_breaks_a_rule_gets_one_field_error(properties, field, message):
    with pytest.raises(InvalidCustomPropertiesError) as raised:
        CustomPropertyMapping.from_dict(properties)
    [problem] = raised.value.problems
    assert problem.field == field and message in problem.message


def test_every_bad_field_is_listed_at_once():
    problems = custom_property_problems({
        "ok": {"column": "A", "type": "number"},
        "bad name": {"column": "", "type": "decimal", "onInvalid": "ignore"},
    }, "body.mapping.customProperties")
    assert [p.field for p in problems] == [
        'body.mapping.customProperties["bad name"]', 'body.mapping.customProperties["bad name"].column',
        'body.mapping.customProperties["bad name"].type', 'body.mapping.customProperties["bad name"].onInvalid',
    ]
    assert custom_property_problems(MAPPING) == [] and custom_property_problems(None) == []
    assert len(custom_property_problems({f"p{i}": {"column": "C", "type": "string"} for i in range(200)})) == 0


def test_binding_finds_columns_case_insensitively_and_names_every_missing_one():
    assert [entry[:2] for entry in bind_custom_properties(CustomPropertyMapping.from_dict(MAPPING), COLUMNS, "Vip").entries] \
        == [("loyalty_tier", 1), ("lifetime_value", 2), ("last_order_date", 3), ("preferred_stores", 4), ("newsletter", 5)]
    mapping = CustomPropertyMapping.from_dict({"a": {"column": "Nope", "type": "string"},
                                               "b": {"column": "tier", "type": "string"},
                                               "c": {"column": "Email", "type": "string"}})
    with pytest.raises(MissingColumnsError) as raised:
        bind_custom_properties(mapping, ("Email", "Tier", "TIER"), "Vip")
    message = str(raised.value)
    assert "segment 'Vip'" in message and "no column for custom properties a -> 'Nope'" in message
    assert "several columns differ only by case for custom properties b -> 'tier'" in message


def test_a_row_becomes_typed_custom_properties(bound):
    assert convert_custom_properties(bound, row()) == {
        "loyalty_tier": "Gold", "lifetime_value": 1234.5, "last_order_date": "2024-03-05T13:05:09Z",
        "preferred_stores": ["Vilnius", "Kaunas"], "newsletter": True,
    }


def test_empty_values_leave_properties_out(bound):
    assert convert_custom_properties(bound, row(LoyaltyTier=" ", PreferredStores=" ; ")) == {
        "lifetime_value": 1234.5, "last_order_date": "2024-03-05T13:05:09Z", "newsletter": True}
    empty = row(LoyaltyTier="", LifetimeValue="", LastPurchaseDate="", PreferredStores="", NewsletterOptIn="")
    assert convert_custom_properties(bound, empty) is None


def test_an_invalid_value_rejects_the_row_or_is_omitted_as_the_mapping_says(bound):
    # lifetime_value says omit: the property is left out, the row goes on
    assert "lifetime_value" not in convert_custom_properties(bound, row(LifetimeValue="1 234,5"))
    # last_order_date rejects (the default): the Invalid names the column and the value
    failure = convert_custom_properties(bound, row(LastPurchaseDate="31/12/2024"))
    assert failure.__class__ is Invalid
    assert failure.detail == "column 'LastPurchaseDate': '31/12/2024' is not a valid date: there is no month 31"
    assert convert_custom_properties(bound, row(NewsletterOptIn="maybe")).column == "NewsletterOptIn"


def test_converted_properties_are_what_omnisend_takes(bound, sandbox_api, sandbox):
    body = {"identifiers": [{"type": "email", "id": "jane@example.com", "sendWelcomeMessage": False}],
            "customProperties": convert_custom_properties(bound, row()), "birthdate": "1990-05-01", "gender": "f"}
    answer = sandbox_api("POST", "/contacts", json=body)
    assert answer.status_code == 201, answer.text
    stored = sandbox.contacts()["jane@example.com"]
    assert stored["customProperties"]["preferred_stores"] == ["Vilnius", "Kaunas"]
    assert stored["customProperties"]["lifetime_value"] == 1234.5
