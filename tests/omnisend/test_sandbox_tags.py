"""The sandbox's tags as a mirror sync depends on them: DELETE /contacts/tags as the contract says,
hand-made tags a marketer adds in Omnisend, and reading a contact's tags."""
from __future__ import annotations

import requests


def contact(email: str) -> dict:
    return {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}


def test_remove_takes_only_the_named_tags_from_the_selected_contacts(sandbox, sandbox_api):
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        sandbox_api("POST", "/contacts", json=contact(email))
        sandbox.tag_by_hand(email, add=["Vip", "Wholesale"])
    b_id = sandbox.contacts()["b@example.com"]["id"]
    answer = sandbox_api("DELETE", "/contacts/tags", json={
        "tags": ["Vip", "NeverSet"], "emails": ["a@example.com", "nobody@example.com"], "contactIDs": [b_id]})
    assert answer.status_code == 202 and answer.content == b""
    # Selectors add up (a@ by email, b@ by id); unknown emails and tags a contact lacks are ignored.
    assert sandbox.all_tags() == {"a@example.com": ["Wholesale"], "b@example.com": ["Wholesale"],
                                  "c@example.com": ["Vip", "Wholesale"]}
    assert "nobody@example.com" not in sandbox.contacts()


def test_remove_is_validated_like_omnisend(sandbox_api):
    assert sandbox_api("DELETE", "/contacts/tags", json={"emails": ["a@example.com"]}).status_code == 400
    too_many = sandbox_api("DELETE", "/contacts/tags", json={"tags": ["t"], "emails": [f"u{i}@x.co" for i in range(251)]})
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["field"] == "emails"
    assert sandbox_api("DELETE", "/contacts/tags", json={"tags": ["t"]}).status_code == 400  # no selector


def test_hand_made_tags_are_not_api_requests(sandbox, sandbox_api):
    sandbox_api("POST", "/contacts", json=contact("a@example.com"))
    log_size = len(sandbox.request_log())
    assert sandbox.tag_by_hand("a@example.com", add=["HighValue", "HighValue"]) == ["HighValue"]
    assert sandbox.tag_by_hand("new@example.com", add=["HighValue"]) == ["HighValue"]  # a contact made by hand
    assert len(sandbox.request_log()) == log_size and sandbox.welcome_messages == []
    assert sandbox.contacts()["new@example.com"]["status"] == "nonSubscribed"
    assert sandbox.tag_by_hand("a@example.com", add=["Other"], remove=["HighValue"]) == ["Other"]
    assert sandbox.tags_of("a@example.com") == ["Other"] and sandbox.tags_of("none@example.com") is None
    # The app's tag calls see hand-made tags like any other.
    sandbox_api("POST", "/contacts/tags", json={"tags": ["HighValue"], "emails": ["a@example.com"]})
    assert sandbox.tags_of("a@example.com") == ["HighValue", "Other"]


def test_admin_surface_for_hand_made_tags(sandbox):
    admin = sandbox.url.removesuffix("/api") + "/_sandbox"
    made = requests.post(f"{admin}/hand-tags", json={"email": "o@example.com", "add": ["HighValue"]}, timeout=5)
    assert made.status_code == 200 and made.json() == {"email": "o@example.com", "tags": ["HighValue"]}
    other_brand = requests.post(f"{admin}/hand-tags", json={"brandID": "brand2", "email": "o@example.com",
                                                            "add": ["X"]}, timeout=5)
    assert other_brand.json()["tags"] == ["X"]
    assert requests.get(f"{admin}/tags", timeout=5).json() == {"o@example.com": ["HighValue"]}
    assert requests.get(f"{admin}/tags", params={"email": "o@example.com", "brandID": "brand2"},
                        timeout=5).json() == {"o@example.com": ["X"]}
    assert requests.get(f"{admin}/tags", params={"email": "x@example.com"}, timeout=5).status_code == 404
    assert requests.post(f"{admin}/hand-tags", json={"email": "o@example.com", "add": "HighValue"},
                         timeout=5).status_code == 400


def test_failing_tag_calls_change_nothing_and_leave_the_rest_working(sandbox, sandbox_api):
    sandbox_api("POST", "/contacts", json=contact("a@example.com"))
    sandbox.set_faults(tag_error_rate=1.0)
    for method in ("POST", "DELETE"):
        failed = sandbox_api(method, "/contacts/tags", json={"tags": ["Vip"], "emails": ["a@example.com"]})
        assert failed.status_code == 500 and failed.json()["status"] == 500
    assert sandbox_api("POST", "/contacts", json=contact("b@example.com")).status_code == 201
    assert sandbox.tags_of("a@example.com") == []
    sandbox.set_faults()
    assert sandbox_api("POST", "/contacts/tags", json={"tags": ["Vip"], "emails": ["a@example.com"]}).status_code == 202
