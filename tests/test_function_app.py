"""function_app.py's blob trigger under the dev host: an upload starts runs without its bytes being read."""
from __future__ import annotations

import logging
import uuid

import pytest
import requests

from shared.settings import get_settings
from shared.storage import container
from tools.devhost import DevHost

PARTITION_BYTES = 16 * 1024 * 1024  # Customer Insights writes partitions of hundreds of MB


def blob_created(container_name: str, path: str) -> dict:
    return {
        "id": str(uuid.uuid4()), "eventType": "Microsoft.Storage.BlobCreated", "dataVersion": "",
        "subject": f"/blobServices/default/containers/{container_name}/blobs/{path}",
        "eventTime": "2026-11-30T02:00:00Z", "metadataVersion": "1",
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
        "data": {"api": "PutBlob", "blobType": "BlockBlob", "url": f"http://127.0.0.1/devstoreaccount1/{container_name}/{path}"},
    }


@pytest.fixture()
def app_host(azurite, blob_traffic, tmp_path, monkeypatch):
    """The function app under the dev host, its blob traffic counted; (host, segments container client)."""
    suffix = uuid.uuid4().hex[:8]
    for name, value in {
        "AzureWebJobsStorage": blob_traffic.connection_string,
        "SEGMENTS_CONTAINER": f"segments-{suffix}",
        "STATE_CONTAINER": f"state-{suffix}",
        "EXPORT_QUEUE": f"chunks-{suffix}",
        "EXPORT_SCHEDULE": "0 0 2 * * *",
        "LOCAL_SECRETS_DIR": str(tmp_path / "secrets"),
        "KEY_VAULT_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    segments = container(get_settings(), get_settings().segments_container)
    segments.create_container()
    host = DevHost(app_module="function_app", port=0, workers=1, app_dir=tmp_path).start()
    yield host, segments
    host.stop()
    get_settings.cache_clear()


def test_a_large_partition_upload_runs_segment_uploaded_without_reading_the_partition(app_host, blob_traffic, caplog):
    host, segments = app_host
    path = "CustomerInsights_abc/Newsletter/Subscribers/2026/11/30/0200/Subscribers_1.csv"
    line = b"someone@example.test,Some,Body,+1 555 0100\n"
    segments.get_blob_client(path).upload_blob(line * (PARTITION_BYTES // len(line) + 1), overwrite=True)
    caplog.set_level(logging.INFO)
    blob_traffic.reset()

    answer = requests.post(f"{host.url}/runtime/webhooks/blobs", params={"functionName": "Host.Functions.segment_uploaded"},
                           json=[blob_created(segments.container_name, path)], timeout=30)

    assert answer.status_code == 202
    assert host.wait_idle(30)
    assert "Executed 'Functions.segment_uploaded' (Succeeded" in caplog.text
    assert f"upload of {path}: 0 export run(s) recorded" in caplog.text  # a partition: model.json is the signal
    assert blob_traffic.downloaded < 64 * 1024, f"{blob_traffic.downloaded} bytes of a {PARTITION_BYTES}-byte partition"
