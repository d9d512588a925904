"""Sync states in Azurite: streaming round trip, conditional replacement, and crashes that change nothing."""
from __future__ import annotations

import pytest
from azure.storage.blob import BlobServiceClient

from shared.sync import StateConflictError, StateFormatError, StateInfo, SyncState, SyncStateStore, UnknownVersionError

from .conftest import make_state


@pytest.fixture()
def container(settings):
    from shared.storage import container

    client = container(settings, settings.state_container)
    client.create_container()
    return client


@pytest.fixture()
def store(container) -> SyncStateStore:
    return SyncStateStore(container)


def emails_of(state: SyncState) -> list[str]:
    return list(state.iter_emails())


def test_first_save_then_conditional_replace(store, vip_state):
    assert store.load("export-1") is None and store.load_info("export-1") is None
    etag = store.save("export-1", vip_state, etag=None)
    loaded = store.load("export-1")
    assert loaded.etag == etag and emails_of(loaded.state) == emails_of(vip_state)
    assert list(loaded.state.masks) == list(vip_state.masks) and loaded.state.tags == ("Vip", "News")
    nxt = vip_state.with_info(run_id="run-2")
    new_etag = store.save("export-1", nxt, etag=etag)
    assert store.load_info("export-1") == (nxt.info, new_etag)


def test_header_info_of_a_state_with_long_tag_names(store):
    tags = tuple(f"{i:02d}" + "x" * 1500 for i in range(60))  # a header over the first 64 KiB read
    state = SyncState.from_entries([("a@example.com", 1, 1 << 59)], StateInfo(tags, run_id="run-1"))
    etag = store.save("export-1", state, etag=None)
    assert store.load_info("export-1") == (state.info, etag)


def test_a_second_writer_loses(store, vip_state):
    etag = store.save("export-1", vip_state, etag=None)
    with pytest.raises(StateConflictError, match="export export-1 was replaced meanwhile"):
        store.save("export-1", vip_state, etag=None)  # a first save when one exists
    store.save("export-1", vip_state.with_info(run_id="run-a"), etag=etag)
    with pytest.raises(StateConflictError):
        store.save("export-1", vip_state.with_info(run_id="run-b"), etag=etag)  # read before run-a wrote
    assert store.load_info("export-1")[0].run_id == "run-a"


@pytest.fixture()
def small_blocks_store(settings, container) -> SyncStateStore:
    """The same container through a client that uploads in 1 KiB staged blocks (the big-state path)."""
    service = BlobServiceClient.from_connection_string(settings.storage.connection_string, max_single_put_size=1024,
                                                       max_block_size=1024, max_chunk_get_size=1024)
    return SyncStateStore(service.get_container_client(container.container_name))


def big_state(run_id: str) -> SyncState:
    return SyncState.from_entries([(f"user{i}.{run_id}@example.com", i + 1, 1) for i in range(3000)],
                                  StateInfo(("T",), run_id=run_id))


def test_staged_upload_is_atomic_and_conditional(small_blocks_store):
    etag = small_blocks_store.save("export-1", big_state("run-1"), etag=None)
    assert len(small_blocks_store.load("export-1").state) == 3000
    small_blocks_store.save("export-1", big_state("run-2"), etag=etag)
    with pytest.raises(StateConflictError):  # the blocks were staged, the commit's condition failed
        small_blocks_store.save("export-1", big_state("run-3"), etag=etag)
    assert small_blocks_store.load("export-1").state.info.run_id == "run-2"


class CrashesWhileUploading(list):
    """The stored form's chunks; the upload's pass over them stops half way, as a host stopping would."""

    passes = 0

    def __iter__(self):
        self.passes += 1
        if self.passes == 1:  # measuring the length
            yield from super().__iter__()
            return
        yield from self[:3]
        raise RuntimeError("the host stopped the function")


def test_a_crash_during_the_upload_leaves_the_prior_state(small_blocks_store, monkeypatch):
    etag = small_blocks_store.save("export-1", big_state("run-1"), etag=None)
    chunks = CrashesWhileUploading(big_state("run-2").to_chunks())
    assert sum(map(len, chunks[:3])) > 4 * 1024  # several blocks are staged before the crash
    monkeypatch.setattr(SyncState, "to_chunks", lambda self: chunks)
    with pytest.raises(RuntimeError, match="host stopped"):
        small_blocks_store.save("export-1", big_state("run-2"), etag=etag)
    assert chunks.passes == 2
    loaded = small_blocks_store.load("export-1")
    assert loaded.etag == etag and loaded.state.info.run_id == "run-1" and len(loaded.state) == 3000


def test_unreadable_blob_names_itself(store, container):
    container.upload_blob("sync/export-1/state.bin", b"garbage, not a state")
    with pytest.raises(StateFormatError, match="sync/export-1/state.bin: header: not a sync state"):
        store.load("export-1")
    data = bytearray(make_state({"a@example.com": ("A", set())}, ()).to_bytes())
    data[8] = 9
    container.upload_blob("sync/export-2/state.bin", bytes(data))
    with pytest.raises(UnknownVersionError, match="sync/export-2/state.bin: header: sync state format version 9"):
        store.load("export-2")


def test_delete_goes_with_the_export(store, vip_state):
    store.save("export-1", vip_state, etag=None)
    store.delete("export-1")
    store.delete("export-1")  # twice is fine
    assert store.load("export-1") is None


def test_export_ids_stay_in_their_folder(store):
    with pytest.raises(ValueError, match="not a usable export id"):
        store.path("../runs")
