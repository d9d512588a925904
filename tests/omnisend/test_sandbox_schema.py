"""The sandbox's compiled schema check never accepts what jsonschema rejects, and the error lists it
gives are jsonschema's: compared on many generated contact items and one hand-written case per keyword."""
from __future__ import annotations

import copy
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tools.omnisend_sandbox import Contract, _compile_fast_check, _field_errors

CONTACT = "#/components/schemas/ContactRequest"


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def jsonschema_errors(contract: Contract, instance, ref: str = CONTACT) -> list[dict]:
    return _field_errors(contract.validator(ref), instance)


# -- generated items -----------------------------------------------------------------------------

any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def near(schema: dict, components: dict, depth: int = 0) -> st.SearchStrategy:
    """Instances that mostly follow `schema` (every field optional, enums with near misses, lists
    around their limits, unknown extra fields) and now and then are any JSON at all."""
    while "$ref" in schema or "allOf" in schema:
        if "$ref" in schema:
            schema = components["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        else:
            schema = {key: value for key, value in schema.items() if key != "allOf"} | schema["allOf"][0]
    kind = schema.get("type")
    if "enum" in schema:
        base = st.sampled_from([*schema["enum"], "", "X", schema["enum"][0].upper(), schema["enum"][0] + " "])
    elif kind == "string":
        base = st.text(max_size=8) | st.just("x" * 3000)
    elif kind == "boolean":
        base = st.booleans()
    elif kind == "array":
        item = near(schema.get("items", {}), components, depth + 1)
        base = st.lists(item, max_size=3)
        if "maxItems" in schema:
            limit = schema["maxItems"]
            around = st.integers(limit - 1, limit + 1)  # drawn whole: 100 draws per list are slow
            base |= around.map(lambda n: ["t"] * n) | st.tuples(around, st.sampled_from([7, None])).map(
                lambda pair: ["t"] * (pair[0] - 1) + [pair[1]])
    elif kind == "object" or "properties" in schema:
        fields = {name: near(sub, components, depth + 1) for name, sub in schema.get("properties", {}).items()}
        base = st.fixed_dictionaries({}, optional=fields)  # required fields are sometimes missing too
        extra = schema.get("additionalProperties", True)
        if isinstance(extra, dict):
            others = st.dictionaries(st.text(max_size=6), near(extra, components, depth + 1), max_size=3)
        else:
            others = st.dictionaries(st.text(max_size=6), any_json, max_size=2)
        base = st.tuples(base, others | st.just({})).map(lambda pair: {**pair[1], **pair[0]})
    else:
        return any_json
    return st.one_of(*[base] * 7, any_json) if depth else st.one_of(*[base] * 9, any_json)


def test_the_contact_schema_is_compiled(contract):
    assert _compile_fast_check(CONTACT, contract._components) is not None


def test_the_fast_check_never_accepts_what_jsonschema_rejects_and_errors_are_unchanged(contract):
    fast = _compile_fast_check(CONTACT, contract._components)
    seen = Counter()

    @settings(max_examples=1500, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(near({"$ref": CONTACT}, contract._components))
    def compare(item):
        expected = jsonschema_errors(contract, item)
        if fast(item):
            assert expected == [], item
        seen["valid" if not expected else "invalid"] += 1
        seen["fast accepted"] += bool(fast(item))
        assert contract.errors(CONTACT, item) == expected

    compare()
    # The generator must exercise both sides, and the fast check must accept every valid item.
    assert seen["valid"] > 200 and seen["invalid"] > 200, seen
    assert seen["fast accepted"] == seen["valid"], seen


# -- one hand-written case per keyword -------------------------------------------------------------

VALID = {
    "identifiers": [{"type": "email", "id": "a@example.com", "sendWelcomeMessage": False, "source": "x",
                     "channels": {"email": {"status": "subscribed", "statusChangedAt": "2026-01-01T00:00:00Z"}},
                     "consent": {"source": "form", "ip": "127.0.0.1"}}],
    "firstName": "Ann", "gender": "f", "tags": ["a"] * 100, "customProperties": {"any": {"nested": [1]}},
    "unknownField": {"is": "allowed"},
}


REMOVE = object()


def changed(path: tuple, value) -> dict:
    """VALID with the value at `path` replaced (or removed when value is REMOVE)."""
    item = copy.deepcopy(VALID)
    node = item
    for step in path[:-1]:
        node = node[step]
    if value is REMOVE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return item


@pytest.mark.parametrize("keyword, item", [
    ("type", changed(("firstName",), 7)),
    ("type", "not an object"),
    ("enum", changed(("gender",), "x")),
    ("properties", changed(("identifiers", 0, "sendWelcomeMessage"), "no")),
    ("required", changed(("identifiers", 0, "id"), REMOVE)),
    ("additionalProperties", changed(("identifiers", 0, "channels", "sms"), "subscribed")),
    ("items", changed(("identifiers", 0), "a@example.com")),
    ("maxItems", changed(("tags",), ["a"] * 101)),
    ("allOf", changed(("identifiers", 0, "consent"), ["not", "an", "object"])),
    ("$ref", changed(("identifiers", 0, "channels", "email", "status"), "opted-in")),
])
def test_each_keyword_rejects_like_jsonschema(contract, keyword, item):
    fast = _compile_fast_check(CONTACT, contract._components)
    expected = jsonschema_errors(contract, item)
    assert expected and not fast(item)
    assert contract.errors(CONTACT, item) == expected


def test_a_valid_item_passes_both(contract):
    assert _compile_fast_check(CONTACT, contract._components)(VALID)
    assert jsonschema_errors(contract, VALID) == [] and contract.errors(CONTACT, VALID) == []


@pytest.mark.parametrize("schema", [
    {"type": "string", "maxLength": 3},  # a keyword the check does not implement
    {"type": "integer"},  # a type it does not implement
    {"enum": [1, "a"]},  # an enum of other than strings
    {"$ref": "#/components/schemas/Missing"},
    {"allOf": []},
])
def test_schemas_with_anything_else_are_left_to_jsonschema(schema):
    components = {"schemas": {"Probe": schema}}
    assert _compile_fast_check("#/components/schemas/Probe", components) is None


def test_a_schema_the_check_cannot_compile_is_still_validated(contract):
    ref = "#/components/schemas/CreateBatchRequest"  # minItems: jsonschema alone
    assert _compile_fast_check(ref, contract._components) is None
    body = {"method": "POST", "endpoint": "contacts", "items": []}
    assert contract.errors(ref, body) == jsonschema_errors(contract, body, ref) != []
