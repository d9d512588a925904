"""Connections and exports stored as JSON blobs in Azurite, with ETag concurrency."""
from __future__ import annotations

import json

import pytest

from shared.documents import (
    Connection,
    DocumentConflictError,
    DocumentError,
    DocumentNotFoundError,
    DocumentStore,
    Export,
    utc_now,
)
from shared.mapping import FieldMapping
from shared.storage import container
from tools.sample_export import EXTENDED_MAPPING


def make_connection(connection_id: str = "conn-1", **changes) -> Connection:
    now = utc_now()
    values = dict(
        id=connection_id, display_name="Shop", secret_name=f"omnisend-{connection_id}",
        export_user="admin@example.com", consent_at=now, created_at=now, created_by="admin@example.com",
    )
    return Connection(**{**values, **changes})


def make_export(export_id: str = "exp-1", connection_id: str = "conn-1", **changes) -> Export:
    now = utc_now()
    values = dict(
        id=export_id, display_name="VIPs", connection_id=connection_id, segments=["Vip"],
        mapping={"email": "EMail", "firstName": "FirstName"}, created_at=now, updated_at=now,
        created_by="admin@example.com",
    )
    return Export(**{**values, **changes})


@pytest.fixture()
def store(settings) -> DocumentStore:
    return DocumentStore(settings)


def test_connection_round_trips_and_creates_the_state_container(store, settings):
    connection = make_connection(usable_by="adminsAndContributors", contact_limit=500)
    store.put_connection(connection)

    loaded = store.get_connection("conn-1")
    assert loaded == connection
    assert loaded.etag == connection.etag is not None
    assert container(settings, settings.state_container).exists()


def test_stored_connection_holds_the_secret_name_only(store, settings):
    store.put_connection(make_connection())
    raw = container(settings, settings.state_container).download_blob("connections/conn-1.json").readall()
    document = json.loads(raw)
    assert document["secretName"] == "omnisend-conn-1"
    assert not {"apiKey", "key", "secret"} & set(document)


def test_contributors_see_only_id_name_and_type(store):
    connection = make_connection()
    assert connection.to_api(full=False) == {"id": "conn-1", "displayName": "Shop", "type": "omnisend"}
    full = connection.to_api(full=True)
    assert full["exportUser"] == "admin@example.com"
    assert full["requestsPerMinute"] == 400 and full["tagRequestsPerMinute"] == 60
    assert "secretName" not in full


def test_creating_twice_conflicts(store):
    store.put_connection(make_connection())
    with pytest.raises(DocumentConflictError, match="already exists"):
        store.put_connection(make_connection(display_name="Other"))
    assert store.get_connection("conn-1").display_name == "Shop"


def test_replace_with_a_stale_etag_conflicts(store):
    store.put_export(make_export())
    first = store.get_export("exp-1")
    second = store.get_export("exp-1")

    first.display_name = "First writer"
    store.put_export(first, if_match=first.etag)
    second.display_name = "Second writer"
    with pytest.raises(DocumentConflictError, match="changed by someone else"):
        store.put_export(second, if_match=second.etag)
    assert store.get_export("exp-1").display_name == "First writer"


def test_missing_documents_raise_lookup_errors(store):
    with pytest.raises(LookupError):
        store.get_export("nope")
    with pytest.raises(DocumentNotFoundError, match="connection 'nope' does not exist"):
        store.get_connection("nope")
    with pytest.raises(DocumentNotFoundError):
        store.delete_export("nope")


@pytest.mark.parametrize("bad_id", ["../connections/x", "a/b", "", "x" * 65, "ä"])
def test_ids_that_could_escape_their_folder_are_never_found(store, bad_id):
    with pytest.raises(DocumentNotFoundError):
        store.get_connection(bad_id)


def test_list_exports_filters_by_connection(store):
    store.put_export(make_export("e1", "c1"))
    store.put_export(make_export("e2", "c2"))
    store.put_export(make_export("e3", "c1"))
    assert {item.id for item in store.list_exports()} == {"e1", "e2", "e3"}
    assert {item.id for item in store.list_exports(connection_id="c1")} == {"e1", "e3"}
    store.delete_export("e1")
    assert [item.id for item in store.list_exports(connection_id="c1")] == ["e3"]


def test_a_corrupt_document_names_its_blob(store, settings):
    store.put_export(make_export())  # creates the container
    client = container(settings, settings.state_container)
    client.upload_blob("exports/broken.json", b'{"id": "broken"', overwrite=True)
    with pytest.raises(DocumentError, match="exports/broken.json.*not valid JSON"):
        store.get_export("broken")
    wrong_type = {**make_export("broken").to_document(), "displayName": 3}
    client.upload_blob("exports/broken.json", json.dumps(wrong_type), overwrite=True)
    with pytest.raises(DocumentError, match="exports/broken.json.*'displayName'"):
        store.get_export("broken")


def test_an_export_schedule_round_trips_and_older_documents_read_as_following_the_app(store, settings):
    own = make_export("exp-own", schedule={"cron": "0 0 6 * * *", "timeZone": "Europe/Vilnius"})
    store.put_export(own)
    assert store.get_export("exp-own").schedule == {"cron": "0 0 6 * * *", "timeZone": "Europe/Vilnius"}
    client = container(settings, settings.state_container)
    older = make_export("exp-old").to_document()
    del older["schedule"]  # saved before exports had schedules
    client.upload_blob("exports/exp-old.json", json.dumps(older), overwrite=True)
    assert store.get_export("exp-old").schedule is None
    client.upload_blob("exports/exp-old.json", json.dumps({**older, "schedule": {"cron": 5}}), overwrite=True)
    with pytest.raises(DocumentError, match="exports/exp-old.json.*'schedule'"):
        store.get_export("exp-old")


def test_an_export_stores_the_richer_mapping_as_the_apis_json(store, settings):
    mapping = FieldMapping.from_dict(EXTENDED_MAPPING)
    store.put_export(make_export(mapping=mapping.to_dict()))
    raw = json.loads(container(settings, settings.state_container).download_blob("exports/exp-1.json").readall())
    assert raw["mapping"]["customProperties"]["preferred_stores"] == {
        "column": "PreferredStores", "type": "stringList", "onInvalid": "reject", "separator": ";"}
    assert (raw["mapping"]["birthdate"], raw["mapping"]["gender"]) == ("BirthDate", "Gender")
    loaded = store.get_export("exp-1")
    assert loaded.mapping == raw["mapping"] == loaded.to_api()["mapping"] == mapping.to_dict()
    assert loaded.field_mapping.to_dict() == mapping.to_dict()  # (stored with sorted keys: properties by name)
    loaded.to_api()["mapping"]["customProperties"].clear()  # the API view is a copy
    assert loaded.mapping == mapping.to_dict()


def test_an_export_stored_before_custom_fields_is_still_read(store, settings):
    store.put_export(make_export("new"))  # creates the container
    older = {  # as the first release wrote it: column names only, no tagContacts
        "id": "old", "displayName": "VIPs", "connectionId": "conn-1", "segments": ["Vip"],
        "mapping": {"email": "EMail", "firstName": "FirstName", "country": "Country"}, "runOn": ["schedule"],
        "createdAt": "2025-01-02T03:04:05.000Z", "updatedAt": "2025-01-02T03:04:05.000Z", "createdBy": "a@example.com",
    }
    container(settings, settings.state_container).upload_blob("exports/old.json", json.dumps(older))
    loaded = store.get_export("old")
    assert loaded.mapping == older["mapping"] and loaded.tag_contacts is True
    assert loaded.field_mapping == FieldMapping(email="EMail", first_name="FirstName", country="Country")
    assert not loaded.field_mapping.converts
    store.put_export(loaded, if_match=loaded.etag)
    assert store.get_export("old").to_document() == {**older, "tagContacts": True, "schedule": None, "tags": {},
                                                     "maxRemovalPercent": 20.0, "fullResyncDays": 7}


@pytest.mark.parametrize("mapping, message", [
    ({"email": "EMail", "firstName": 3}, "mapping.firstName: must be a column name"),
    ({"email": "EMail", "customProperties": {"tier": {"column": "Tier", "type": "text"}}},
     "mapping.customProperties.tier.type: must be one of"),
    ({"firstName": "FirstName"}, "mapping.email: is required"),
])
def test_a_stored_mapping_that_cannot_be_used_names_the_blob_and_the_field(store, settings, mapping, message):
    store.put_export(make_export())
    broken = {**make_export("broken").to_document(), "mapping": mapping}
    container(settings, settings.state_container).upload_blob("exports/broken.json", json.dumps(broken))
    with pytest.raises(DocumentError) as raised:
        store.get_export("broken")
    assert str(raised.value).startswith("blob 'exports/broken.json': field 'mapping' cannot be used: ")
    assert message in str(raised.value)


def test_an_exports_tags_are_its_tags_entries_else_the_segment_names_matched_case_insensitively():
    export = make_export(segments=["Vip", "News", "Spring"], tags={"vip": "VIP customers", "Spring": "News"})
    assert [export.tag_of(name) for name in ("Vip", "VIP", "News", "Spring")] == ["VIP customers", "VIP customers",
                                                                                  "News", "News"]
    assert export.effective_tags() == {"VIP customers": "Vip", "News": "News"}  # tag -> its first segment
    untagged = make_export(segments=["Vip"], tags={"Vip": "VIP customers"}, tag_contacts=False)
    assert untagged.tag_of("Vip") is None and untagged.effective_tags() == {}
