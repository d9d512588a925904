"""The fingerprint of a body as sent: canonical, 64-bit, sensitive to every value."""
from __future__ import annotations

from shared.mapping import contact_request
from shared.sync import fingerprint

from .conftest import body


def test_independent_of_dict_order_at_every_level():
    one = {"identifiers": [{"type": "email", "id": "a@x.com", "sendWelcomeMessage": False}], "firstName": "A",
           "lastName": "B"}
    other = {"lastName": "B", "firstName": "A",
             "identifiers": [{"sendWelcomeMessage": False, "id": "a@x.com", "type": "email"}]}
    assert fingerprint(one) == fingerprint(other)
    assert 0 < fingerprint(one) < 2**64


def test_every_value_and_field_counts():
    base = fingerprint(body("a@x.com", "Ann"))
    assert fingerprint(body("a@x.com", "Anna")) != base
    assert fingerprint(body("b@x.com", "Ann")) != base
    assert fingerprint(body("a@x.com", "Ann", city="Vilnius")) != base
    # A mapping that adds a column with a value changes the body, so the fingerprint.
    assert fingerprint(contact_request("a@x.com", firstName="Ann", lastName="Doe")) != base
    # Empty values are left out of the body, so mapping an empty column changes nothing.
    assert fingerprint(contact_request("a@x.com", firstName="Ann", lastName="  ")) == base


def test_country_as_sent():
    assert fingerprint(body("a@x.com", country="lt")) == fingerprint(body("a@x.com", country="LT"))
    assert fingerprint(body("a@x.com", country="Lithuania")) != fingerprint(body("a@x.com", country="LT"))
