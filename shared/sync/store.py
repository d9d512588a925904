"""Sync states in the state container: one blob per export, replaced atomically and conditionally.

`sync/<exportId>/state.bin` holds the state (see `state` and `codec`). A save uploads the whole new
blob in one conditional write: Put Blob, or staged blocks and one Put Block List for a big state.
Either way storage switches from the old bytes to the new at once, so a reader (or a finisher that
crashed half way and runs again) sees the prior state or the next, never a mix. The condition is the
ETag the prior state was read with (or "must not exist" for a first save): a second writer loses
with `StateConflictError` instead of overwriting. Downloads stream in chunks into the decoder.
"""
from __future__ import annotations

from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from ..blobstate import io_call
from .codec import header_size
from .errors import StateConflictError, StateFormatError
from .state import StateInfo, SyncState

PREFIX = "sync"
_HEAD_BYTES = 64 * 1024  # enough for any header but one with dozens of very long tag names


@dataclass(frozen=True)
class StoredState:
    state: SyncState
    etag: str


class SyncStateStore:
    def __init__(self, container: ContainerClient, prefix: str = PREFIX) -> None:
        self.container = container
        self.prefix = prefix.strip("/")

    def path(self, export_id: str) -> str:
        if not export_id or "/" in export_id or export_id in (".", ".."):
            raise ValueError(f"not a usable export id: {export_id!r}")
        return f"{self.prefix}/{export_id}/state.bin"

    def load(self, export_id: str) -> StoredState | None:
        """The export's state and its ETag, or None before its first run; StateFormatError names the blob."""
        path = self.path(export_id)
        with io_call("read", self._target(path)):
            try:
                download = self.container.get_blob_client(path).download_blob()
            except ResourceNotFoundError:
                return None
            try:
                state = SyncState.read(download.chunks())
            except StateFormatError as exc:
                exc.args = (f"{path}: {exc}",)  # name the blob
                raise
        return StoredState(state, download.properties.etag)

    def _target(self, path: str) -> str:
        return f"{self.container.container_name}/{path}"

    def load_info(self, export_id: str) -> tuple[StateInfo, str] | None:
        """Only the header (run, tags, dates) and the ETag, from the first bytes of the blob."""
        blob = self.container.get_blob_client(self.path(export_id))
        try:
            download = blob.download_blob(offset=0, length=_HEAD_BYTES)
            head = download.readall()
            needed = header_size(head)
            if needed > len(head) == _HEAD_BYTES:  # a header longer than the first read
                download = blob.download_blob(offset=0, length=needed, etag=download.properties.etag,
                                              match_condition=MatchConditions.IfNotModified)
                head = download.readall()
        except ResourceNotFoundError:
            return None
        return SyncState.read_info([head]), download.properties.etag

    def save(self, export_id: str, state: SyncState, *, etag: str | None) -> str:
        """Replace the export's state by `state` if it is still the one read with `etag` (None: if there
        is none yet). Returns the new ETag."""
        chunks = state.to_chunks()
        options: dict = {"overwrite": False}
        if etag is not None:
            options = {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
        path = self.path(export_id)
        with io_call("write", self._target(path)):
            try:
                result = self.container.get_blob_client(path).upload_blob(
                    iter(chunks), length=sum(map(len, chunks)), **options)
            except (ResourceExistsError, ResourceModifiedError) as exc:
                raise StateConflictError(f"the sync state of export {export_id} was replaced meanwhile") from exc
        return result["etag"]

    def delete(self, export_id: str) -> None:
        """The state goes with its export."""
        try:
            self.container.get_blob_client(self.path(export_id)).delete_blob()
        except ResourceNotFoundError:
            pass
