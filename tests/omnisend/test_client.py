"""The Omnisend client against the sandbox over real HTTP: operations land and limits hold before sending."""
from __future__ import annotations

import time

import pytest

from shared.ratelimit import SlidingWindowLimiter
from shared.omnisend import (
    AuthenticationError,
    Batch,
    NotFoundError,
    OmnisendClient,
    PermissionDeniedError,
    RequestTooLargeError,
    ValidationError,
)


def contact(email: str, **fields) -> dict:
    return {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}], **fields}


def wait_done(client: OmnisendClient, batch_id: str, timeout: float = 5.0) -> Batch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get_batch(batch_id)
        if batch.done or time.monotonic() > deadline:
            return batch
        time.sleep(0.02)


def test_check_key_reads_without_writing(sandbox, omnisend_client):
    omnisend_client.check_key()
    [record] = sandbox.request_log()
    assert (record.method, record.path, record.query, record.status) == ("GET", "/contacts", {"limit": "1"}, 200)
    assert sandbox.contacts() == {}


def test_get_brand(omnisend_client):
    assert omnisend_client.get_brand()["brandID"] == "brand1"


def test_upsert_contact_creates_then_updates(sandbox, omnisend_client):
    created, body = omnisend_client.upsert_contact(contact("jane@example.com", firstName="Jane"))
    assert created and body["email"] == "jane@example.com"
    created, body = omnisend_client.upsert_contact(contact("jane@example.com", lastName="Doe"))
    assert not created
    stored = sandbox.contacts()["jane@example.com"]
    assert (stored["firstName"], stored["lastName"]) == ("Jane", "Doe")
    assert sandbox.welcome_messages == []


def test_invalid_contact_raises_validation_error_listing_every_field(omnisend_client):
    with pytest.raises(ValidationError) as caught:
        omnisend_client.upsert_contact({"identifiers": [{"type": "email", "id": "not-an-email"}], "gender": "x"})
    fields = {e.field for e in caught.value.field_errors}
    assert fields == {"gender", "identifiers.0.id"}
    assert caught.value.status == 400 and "gender" in str(caught.value)


def test_batch_lands_with_per_item_results_on_the_right_email(sandbox, omnisend_client):
    sandbox.set_faults(item_error_emails={"bounce@example.com"})
    emails = [f"user{i}@example.com" for i in range(5)] + ["bounce@example.com", "broken"]
    batch_id = omnisend_client.create_contact_batch([contact(e) for e in emails])
    batch = wait_done(omnisend_client, batch_id)
    assert (batch.status, batch.total_count, batch.finished_count, batch.errors_count) == ("finished", 7, 7, 2)
    results = {r.email: r for r in omnisend_client.get_batch_items(batch_id)}
    assert set(results) == set(emails)
    assert all(results[e].ok and results[e].message == "" for e in emails[:5])
    assert not results["bounce@example.com"].ok and "valid email" in results["bounce@example.com"].message
    assert not results["broken"].ok and results["broken"].response_code == 400
    assert set(sandbox.contacts()) == set(emails[:5])


def test_101_items_are_refused_before_sending(sandbox, omnisend_client):
    with pytest.raises(RequestTooLargeError, match="at most 100"):
        omnisend_client.create_contact_batch([contact(f"u{i}@example.com") for i in range(101)])
    assert sandbox.request_log() == [] and omnisend_client.request_count == 0


def test_body_over_one_megabyte_is_refused_before_sending(sandbox, omnisend_client):
    bulky = [contact(f"u{i}@example.com", customProperties={"notes": "x" * 11_000}) for i in range(100)]
    with pytest.raises(RequestTooLargeError, match="exceeds 1000000 bytes"):
        omnisend_client.create_contact_batch(bulky)
    assert sandbox.request_log() == []


def test_tag_calls_over_limits_are_refused_before_sending(sandbox, omnisend_client):
    with pytest.raises(RequestTooLargeError):
        omnisend_client.add_tags([f"u{i}@example.com" for i in range(251)], ["segment"])
    with pytest.raises(RequestTooLargeError):
        omnisend_client.remove_tags(["u@example.com"], [f"t{i}" for i in range(101)])
    with pytest.raises(ValueError):
        omnisend_client.add_tags(["u@example.com"], [])
    assert sandbox.request_log() == []


def test_tags_are_added_and_removed_with_one_request_each(sandbox, omnisend_client):
    for email in ("a@example.com", "b@example.com"):
        omnisend_client.upsert_contact(contact(email))
    omnisend_client.add_tags(["a@example.com", "b@example.com", "ghost@example.com"], ["vip", "seg"])
    omnisend_client.remove_tags(["b@example.com"], ["vip"])
    contacts = sandbox.contacts()
    assert contacts["a@example.com"]["tags"] == ["seg", "vip"]
    assert contacts["b@example.com"]["tags"] == ["seg"]
    assert "ghost@example.com" not in contacts
    tag_calls = [r for r in sandbox.request_log() if r.kind == "tags"]
    assert [(r.method, r.status) for r in tag_calls] == [("POST", 202), ("DELETE", 202)]


def test_iter_contacts_follows_cursors(sandbox, omnisend_client):
    emails = [f"p{i}@example.com" for i in range(7)]
    batch_id = omnisend_client.create_contact_batch([contact(e) for e in emails] + [contact("other@example.com")])
    wait_done(omnisend_client, batch_id)
    omnisend_client.add_tags(emails, ["paged"])
    listed = [c["email"] for c in omnisend_client.iter_contacts(tag="paged", page_size=3)]
    assert sorted(listed) == sorted(emails) and len(listed) == 7
    pages = [r for r in sandbox.request_log() if r.path == "/contacts" and r.method == "GET"]
    assert len(pages) == 3 and "after" in pages[-1].query
    assert [c["email"] for c in omnisend_client.iter_contacts(email="p3@example.com")] == ["p3@example.com"]


def test_get_batches_reads_many_with_one_list_request(sandbox, omnisend_client):
    ids = [omnisend_client.create_contact_batch([contact(f"b{i}@example.com")]) for i in range(3)]
    before = len(sandbox.request_log())
    batches = omnisend_client.get_batches(ids)
    assert set(batches) == set(ids) and all(isinstance(b, Batch) for b in batches.values())
    assert [r.path for r in sandbox.request_log()[before:]] == ["/batches"]


def test_get_batches_falls_back_to_single_reads_for_unlisted_ids(sandbox, omnisend_client):
    listed = omnisend_client.create_contact_batch([contact("x@example.com")])
    with pytest.raises(NotFoundError):
        omnisend_client.get_batches([listed, "0123456789abcdef01234567"])
    assert sandbox.request_log()[-1].path == "/batches/0123456789abcdef01234567"


def test_list_batches_filters_by_status(omnisend_client):
    batch_id = omnisend_client.create_contact_batch([contact("s@example.com")])
    wait_done(omnisend_client, batch_id)
    assert [b.batch_id for b in omnisend_client.list_batches(status="finished")] == [batch_id]
    assert omnisend_client.list_batches(status="pending") == []


def test_unknown_key_fails_fast_with_a_clear_message(sandbox):
    key = "brand1-" + "f" * 32
    with OmnisendClient(key, limiter=SlidingWindowLimiter(), base_url=sandbox.url,
                        backoff_seconds=0.01) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.check_key()
    assert caught.value.status == 401 and "API key" in str(caught.value) and key not in str(caught.value)
    assert len(sandbox.request_log()) == 1  # never retried


def test_key_without_scope_fails_fast_with_permission_error(sandbox):
    key = sandbox.add_key("brand1", scopes=["contacts.read"])
    with OmnisendClient(key, limiter=SlidingWindowLimiter(), base_url=sandbox.url,
                        backoff_seconds=0.01) as client:
        client.check_key()
        with pytest.raises(PermissionDeniedError) as caught:
            client.upsert_contact(contact("a@example.com"))
    assert caught.value.status == 403 and "permission" in str(caught.value) and key not in str(caught.value)
    assert [r.status for r in sandbox.request_log()] == [200, 403]


def test_from_settings_uses_the_configured_api_url(sandbox, omnisend_key):
    from shared.settings import Settings

    settings = Settings.from_env({"OMNISEND_API_URL": sandbox.url + "/"})
    with OmnisendClient.from_settings(omnisend_key, settings, limiter=SlidingWindowLimiter()) as client:
        assert client.base_url == sandbox.url
        client.check_key()
