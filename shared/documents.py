"""Connections and exports: typed documents stored as JSON blobs in the state container.

Blobs are `connections/<id>.json` and `exports/<id>.json`. Every write is conditional (ETag), so two
writers never silently overwrite each other: a create fails if the blob exists, a replace fails if
the blob changed since it was read.

A connection stores the *name* of the Key Vault secret that holds the Omnisend API key, never the key.
"""
from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from azure.storage.blob import ContainerClient

from . import blobstate
from .blobstate import utc_now  # noqa: F401 - documents.utc_now is what callers import
from .mapping import FieldMapping, MappingError
from .settings import Settings
from .storage import container

CONNECTION_TYPE = "omnisend"
USABLE_BY_VALUES = ("admins", "adminsAndContributors")
RUN_ON_VALUES = ("schedule", "upload")
DEFAULT_REQUESTS_PER_MINUTE = 400
DEFAULT_TAG_REQUESTS_PER_MINUTE = 60
DEFAULT_MAX_REMOVAL_PERCENT = 20.0  # the removal gate: see shared.sync.removals
DEFAULT_FULL_RESYNC_DAYS = 7  # a scheduled incremental run turns full when the last full run is older

# Ids become blob names: keep them to a safe alphabet so a path segment can never escape its folder.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def new_id() -> str:
    return str(uuid.uuid4())


def is_valid_id(value: str) -> bool:
    return bool(_ID_PATTERN.match(value))


class DocumentError(Exception):
    """A stored document cannot be read (corrupt JSON or missing fields): names the blob."""


class DocumentNotFoundError(DocumentError, LookupError):
    def __init__(self, kind: str, doc_id: str) -> None:
        super().__init__(f"{kind} {doc_id!r} does not exist")
        self.kind = kind
        self.doc_id = doc_id


class DocumentConflictError(DocumentError):
    """A conditional write lost: the document exists already (create) or changed since it was read."""

    def __init__(self, kind: str, doc_id: str, reason: str) -> None:
        super().__init__(f"{kind} {doc_id!r} {reason}")
        self.kind = kind
        self.doc_id = doc_id


class _Reader:
    """Reads fields of one stored document, naming the blob and field when something is off."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise DocumentError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self.data = data
        self.where = where

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, nullable: bool = False) -> Any:
        if name not in self.data:
            if default is ...:
                raise DocumentError(f"{self.where}: field {name!r} is missing")
            return default
        value = self.data[name]
        if value is None and nullable:
            return None
        wrong_bool = isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
        if not isinstance(value, kind) or wrong_bool:
            raise DocumentError(f"{self.where}: field {name!r} has type {type(value).__name__}")
        return value

    def string_list(self, name: str) -> list[str]:
        values = self.get(name, list)
        if not all(isinstance(value, str) for value in values):
            raise DocumentError(f"{self.where}: field {name!r} must be a list of strings")
        return list(values)


@dataclass
class Connection:
    """An Omnisend connection: who may use it, its rate budget, and where its key lives."""

    id: str
    display_name: str
    secret_name: str  # name of the Key Vault secret holding the API key; the key itself is never stored here
    export_user: str  # the identity exports on this connection run as (the admin who created it)
    consent_at: str  # when the data-privacy statement was agreed to
    created_at: str
    created_by: str
    type: str = CONNECTION_TYPE
    usable_by: str = "admins"
    contact_limit: int | None = None
    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    tag_requests_per_minute: int = DEFAULT_TAG_REQUESTS_PER_MINUTE
    etag: str | None = field(default=None, compare=False, repr=False)  # set when read from storage

    @property
    def usable_by_contributors(self) -> bool:
        return self.usable_by == "adminsAndContributors"

    def to_api(self, *, full: bool) -> dict[str, Any]:
        """The API view: contributors (full=False) see only id, display name and type."""
        summary = {"id": self.id, "displayName": self.display_name, "type": self.type}
        if not full:
            return summary
        return {
            **summary,
            "usableBy": self.usable_by,
            "exportUser": self.export_user,
            "consentAt": self.consent_at,
            "contactLimit": self.contact_limit,
            "requestsPerMinute": self.requests_per_minute,
            "tagRequestsPerMinute": self.tag_requests_per_minute,
            "createdAt": self.created_at,
            "createdBy": self.created_by,
        }

    def to_document(self) -> dict[str, Any]:
        return {**self.to_api(full=True), "secretName": self.secret_name}

    @classmethod
    def from_document(cls, data: Any, where: str) -> "Connection":
        doc = _Reader(data, where)
        return cls(
            id=doc.get("id", str),
            display_name=doc.get("displayName", str),
            type=doc.get("type", str, CONNECTION_TYPE),
            usable_by=doc.get("usableBy", str, "admins"),
            secret_name=doc.get("secretName", str),
            export_user=doc.get("exportUser", str),
            consent_at=doc.get("consentAt", str),
            contact_limit=doc.get("contactLimit", int, None, nullable=True),
            requests_per_minute=doc.get("requestsPerMinute", int, DEFAULT_REQUESTS_PER_MINUTE),
            tag_requests_per_minute=doc.get("tagRequestsPerMinute", int, DEFAULT_TAG_REQUESTS_PER_MINUTE),
            created_at=doc.get("createdAt", str),
            created_by=doc.get("createdBy", str),
        )


def segment_tag(tags: dict[str, str], segment: str) -> str:
    """A segment's tag under an export's `tags` (segment -> tag): its entry, else its own name. Segment
    names are case-insensitive (storage may spell one differently from the export): an entry under
    another spelling still applies."""
    tag = tags.get(segment)
    if tag is None:
        folded = segment.lower()
        tag = next((value for key, value in tags.items() if key.lower() == folded), segment)
    return tag


@dataclass
class Export:
    """An export: which segments go to which connection, how fields map, and what starts its runs."""

    id: str
    display_name: str
    connection_id: str
    segments: list[str]
    # A FieldMapping as the API's camelCase JSON (FieldMapping.to_dict()), e.g. {"email": "EMail",
    # "birthdate": "BirthDate", "customProperties": {"tier": {"column": "Tier", "type": "string", ...}}}
    mapping: dict[str, Any]
    created_at: str
    updated_at: str
    created_by: str
    run_on: list[str] = field(default_factory=lambda: list(RUN_ON_VALUES))
    tag_contacts: bool = True
    # {"cron": ..., "timeZone": ...} as Schedule.to_dict() gives it, or None: follow the app's EXPORT_SCHEDULE
    # (UTC). Parsed where it is used (shared.schedule.Schedule.from_dict), validated by the API on save.
    schedule: dict[str, str] | None = None
    # Segment -> Omnisend tag, for segments whose tag is not their own name (see tag_of).
    tags: dict[str, str] = field(default_factory=dict)
    max_removal_percent: float = DEFAULT_MAX_REMOVAL_PERCENT
    full_resync_days: int = DEFAULT_FULL_RESYNC_DAYS  # 0: scheduled runs are never forced full
    etag: str | None = field(default=None, compare=False, repr=False)  # set when read from storage

    @property
    def field_mapping(self) -> FieldMapping:
        return FieldMapping.from_dict(self.mapping)

    def tag_of(self, segment: str) -> str | None:
        """The tag the export gives a segment's contacts: its `tags` entry, else the segment's name;
        None when the export does not tag."""
        return segment_tag(self.tags, segment) if self.tag_contacts else None

    def effective_tags(self) -> dict[str, str]:
        """Every tag the export sets on contacts -> the first of its segments that carries it (empty
        when it does not tag)."""
        found: dict[str, str] = {}
        for segment in self.segments:
            tag = self.tag_of(segment)
            if tag is not None:
                found.setdefault(tag, segment)
        return found

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "connectionId": self.connection_id,
            "segments": list(self.segments),
            "mapping": copy.deepcopy(self.mapping),
            "runOn": list(self.run_on),
            "tagContacts": self.tag_contacts,
            "schedule": dict(self.schedule) if self.schedule is not None else None,
            "tags": dict(self.tags),
            "maxRemovalPercent": self.max_removal_percent,
            "fullResyncDays": self.full_resync_days,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "createdBy": self.created_by,
        }

    def to_document(self) -> dict[str, Any]:
        return self.to_api()

    @classmethod
    def from_document(cls, data: Any, where: str) -> "Export":
        doc = _Reader(data, where)
        # Documents written before birthdate, gender and customProperties hold column names only;
        # both kinds are read by the same parser and kept in its (normalised) form.
        try:
            mapping = FieldMapping.from_dict(doc.get("mapping", dict)).to_dict()
        except MappingError as error:
            raise DocumentError(f"{where}: field 'mapping' cannot be used: {error}") from None
        schedule = doc.get("schedule", dict, None, nullable=True)  # documents saved before schedules: None
        if schedule is not None and not (set(schedule) == {"cron", "timeZone"}
                                         and all(isinstance(value, str) for value in schedule.values())):
            raise DocumentError(f"{where}: field 'schedule' must be null or {{\"cron\": ..., \"timeZone\": ...}} (strings)")
        # Documents saved before the sync settings: no tag names, the default gate and resync period.
        tags = doc.get("tags", dict, {})
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in tags.items()):
            raise DocumentError(f"{where}: field 'tags' must map segment names to tag names (strings)")
        return cls(
            id=doc.get("id", str),
            display_name=doc.get("displayName", str),
            connection_id=doc.get("connectionId", str),
            segments=doc.string_list("segments"),
            mapping=mapping,
            run_on=doc.string_list("runOn"),
            tag_contacts=doc.get("tagContacts", bool, True),
            schedule=dict(schedule) if schedule is not None else None,
            tags=dict(tags),
            max_removal_percent=float(doc.get("maxRemovalPercent", (int, float), DEFAULT_MAX_REMOVAL_PERCENT)),
            full_resync_days=doc.get("fullResyncDays", int, DEFAULT_FULL_RESYNC_DAYS),
            created_at=doc.get("createdAt", str),
            updated_at=doc.get("updatedAt", str),
            created_by=doc.get("createdBy", str),
        )



class _Collection:
    """One folder of JSON documents in the state container, with conditional writes."""

    def __init__(self, client: Callable[[], ContainerClient], folder: str, kind: str,
                 parse: Callable[[Any, str], Any]) -> None:
        self._client = client
        self.folder = folder
        self.kind = kind
        self._parse = parse

    def _blob_name(self, doc_id: str) -> str:
        if not is_valid_id(doc_id):
            # Never build a blob name from an unchecked id; an invalid id cannot name a stored document.
            raise DocumentNotFoundError(self.kind, doc_id)
        return f"{self.folder}/{doc_id}.json"

    def get(self, doc_id: str):
        name = self._blob_name(doc_id)
        found = blobstate.read(self._client(), name)
        if found is None:
            raise DocumentNotFoundError(self.kind, doc_id)
        return self._decode(found.data, name, found.etag)

    def list(self, errors: list[DocumentError] | None = None) -> Iterator[Any]:
        """Every document of the folder; with `errors`, a corrupt one is added there instead of raised."""
        client = self._client()
        for blob in blobstate.list_blobs(client, f"{self.folder}/"):
            found = blobstate.read(client, blob.name)
            if found is None:
                continue  # deleted between listing and reading
            try:
                yield self._decode(found.data, blob.name, found.etag)
            except DocumentError as error:
                if errors is None:
                    raise
                errors.append(error)

    def put(self, doc_id: str, document: dict[str, Any], if_match: str | None) -> str:
        """Create (if_match None: only if absent) or replace (only if the ETag still matches); new ETag."""
        name = self._blob_name(doc_id)
        data = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
        try:
            return blobstate.write(self._client(), name, data, if_match=if_match, create_only=if_match is None,
                                   content_type=blobstate.JSON_CONTENT)
        except blobstate.ConflictError as conflict:
            raise self._conflict(doc_id, conflict) from None

    def delete(self, doc_id: str, if_match: str | None) -> None:
        name = self._blob_name(doc_id)
        try:
            deleted = blobstate.delete(self._client(), name, if_match=if_match)
        except blobstate.ConflictError as conflict:
            raise self._conflict(doc_id, conflict) from None
        if not deleted:
            raise DocumentNotFoundError(self.kind, doc_id)

    def _conflict(self, doc_id: str, conflict: blobstate.ConflictError) -> DocumentError:
        if conflict.reason == "missing":
            return DocumentNotFoundError(self.kind, doc_id)
        if conflict.reason == "exists":
            return DocumentConflictError(self.kind, doc_id, "already exists")
        return DocumentConflictError(self.kind, doc_id, "was changed by someone else; read it again")

    def _decode(self, raw: bytes, blob_name: str, etag: str):
        where = f"blob {blob_name!r}"
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DocumentError(f"{where} is not valid JSON: {error}") from None
        document = self._parse(data, where)
        document.etag = etag
        return document


_ensured: set[str] = set()  # state containers known to exist, by URL (checked once per process)


class DocumentStore:
    """Connections and exports of one app (its state container), created on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._container: ContainerClient | None = None
        self._connections = _Collection(self._client, "connections", "connection", Connection.from_document)
        self._exports = _Collection(self._client, "exports", "export", Export.from_document)

    def _client(self) -> ContainerClient:
        if self._container is None:
            client = container(self.settings, self.settings.state_container)
            if client.url not in _ensured:
                blobstate.ensure_container(client)
                _ensured.add(client.url)
            self._container = client
        return self._container

    # Connections
    def get_connection(self, connection_id: str) -> Connection:
        return self._connections.get(connection_id)

    def list_connections(self) -> list[Connection]:
        return sorted(self._connections.list(), key=lambda item: (item.created_at, item.id))

    def put_connection(self, connection: Connection, *, if_match: str | None = None) -> str:
        """Create (if_match None) or replace (if_match = the ETag read); sets and returns the new ETag."""
        connection.etag = self._connections.put(connection.id, connection.to_document(), if_match)
        return connection.etag

    def delete_connection(self, connection_id: str, *, if_match: str | None = None) -> None:
        self._connections.delete(connection_id, if_match)

    # Exports
    def get_export(self, export_id: str) -> Export:
        return self._exports.get(export_id)

    def list_exports(self, connection_id: str | None = None, *,
                     errors: list[DocumentError] | None = None) -> list[Export]:
        """Exports (of one connection); with `errors`, corrupt documents are collected there, not raised."""
        exports = (item for item in self._exports.list(errors)
                   if connection_id is None or item.connection_id == connection_id)
        return sorted(exports, key=lambda item: (item.created_at, item.id))

    def put_export(self, export: Export, *, if_match: str | None = None) -> str:
        """Create (if_match None) or replace (if_match = the ETag read); sets and returns the new ETag."""
        export.etag = self._exports.put(export.id, export.to_document(), if_match)
        return export.etag

    def delete_export(self, export_id: str, *, if_match: str | None = None) -> None:
        self._exports.delete(export_id, if_match)
