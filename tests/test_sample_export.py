"""The sample export generator (tools/sample_export.py): the custom columns it can carry, and that
what it expects of them is what the conversions make of them."""
from __future__ import annotations

import csv
import io

import pytest

from shared.conversions import to_birthdate, to_gender
from shared.custom_properties import (
    CustomPropertyMapping, bind_custom_properties, convert_custom_properties, custom_property_problems,
)
from tools.sample_export import (
    CI_COLUMNS, CUSTOM_COLUMNS, CUSTOM_PROPERTIES_MAPPING, DEFAULT_MAPPING, EXTENDED_MAPPING, Kind, generate_profiles,
)


def rows(profiles) -> list[list[str]]:
    return list(csv.reader(io.StringIO(profiles.csv_bytes().decode("utf-8", "replace"), newline="")))


def test_without_custom_fields_nothing_changes():
    plain, extended = generate_profiles(300, seed=3), generate_profiles(300, seed=3, custom_fields=True)
    assert plain.columns == CI_COLUMNS and extended.columns == CI_COLUMNS + CUSTOM_COLUMNS
    for i in range(300):
        if plain.kind(i) is not Kind.WRONG_COLUMNS:
            assert extended.fields(i)[:len(CI_COLUMNS)] == plain.fields(i)
        assert extended.expected(i) == plain.expected(i)


def test_the_extended_mapping_is_a_valid_custom_property_mapping():
    assert custom_property_problems(EXTENDED_MAPPING["customProperties"]) == []
    assert EXTENDED_MAPPING.items() >= DEFAULT_MAPPING.items()
    assert {EXTENDED_MAPPING["birthdate"], EXTENDED_MAPPING["gender"]} <= set(CUSTOM_COLUMNS)


@pytest.mark.parametrize("quote_all", [False, True])
def test_expected_custom_fields_are_what_the_conversions_make_of_the_columns(quote_all):
    profiles = generate_profiles(2000, seed=11, custom_fields=True, quote_all=quote_all)
    columns = profiles.columns
    bound = bind_custom_properties(CustomPropertyMapping.from_dict(CUSTOM_PROPERTIES_MAPPING), columns, "S")
    birth, gender = columns.index("BirthDate"), columns.index("Gender")
    seen = {"birthdate": set(), "gender": set(), "stores": set()}
    for i, fields in enumerate(rows(profiles)):
        if profiles.kind(i) not in (Kind.VALID, Kind.TRICKY):
            continue
        expected = profiles.expected_fields(i)
        assert (convert_custom_properties(bound, fields) or {}) == expected["customProperties"]
        assert to_birthdate(fields[birth], "BirthDate") == expected.get("birthdate")
        assert to_gender(fields[gender], "Gender") == expected.get("gender")
        seen["birthdate"].add(fields[birth][:1] if fields[birth] else "")
        seen["gender"].add(fields[gender])
        seen["stores"].add(len(expected["customProperties"].get("preferred_stores", [])))
    # every shape shows up: ISO and M/d/yyyy birthdates and empty ones, each gender spelling, 0-3 stores
    assert "" in seen["birthdate"] and "1" in seen["birthdate"] and len(seen["birthdate"]) > 3
    assert seen["gender"] == {"F", "m", "Female", "MALE", "Other", ""}
    assert seen["stores"] == {0, 1, 2, 3}


def test_the_next_day_renames_a_share_moves_the_segments_and_keeps_everyone_else_as_they_were():
    from tools.sample_export import NextDay, demo_segments

    names = ("First", "Last")
    day_one, day_two = demo_segments(2000, names), demo_segments(2000, names, NextDay(0.05, 15, 10, 20))
    assert [(s.first, s.count) for s in day_one.values()] == [(0, 1200), (800, 1200)]
    assert [(s.first, s.count) for s in day_two.values()] == [(15, 1185), (810, 1210)]  # 20 new people at the end
    before, after = day_one["First"].population, day_two["First"].population
    renamed = [i for i in range(2000) if after.renamed(i)]
    assert 60 <= len(renamed) <= 140  # about 5% of the valid rows
    for i in range(2000):
        changed = [k for k, (old, new) in enumerate(zip(before.fields(i), after.fields(i))) if old != new]
        assert changed == ([1] if i in renamed else []), i  # only the first name, of renamed rows only
        assert after.expected(i) == before.expected(i)
