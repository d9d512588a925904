"""Storage clients built from settings (shared/storage.py)."""
from __future__ import annotations

from azure.core.pipeline.transport import HttpTransport

from shared import storage
from shared.settings import Settings


def test_a_connection_dropped_unanswered_is_retried_within_seconds(blob_traffic, tmp_path, monkeypatch):
    # The SDK's default would wait 15-21 s here: an API call or a chunk stalled that long for nothing.
    waits = []
    monkeypatch.setattr(HttpTransport, "sleep", lambda self, seconds: waits.append(seconds))
    settings = Settings.from_env({"AzureWebJobsStorage": blob_traffic.connection_string,
                                  "LOCAL_SECRETS_DIR": str(tmp_path)})
    blob_traffic.drops = 1

    assert storage.container(settings, "nothing-here").exists() is False  # answered, after one retry

    assert blob_traffic.drops == 0 and len(waits) == 1 and 1 <= waits[0] <= 3


def test_queue_clients_retry_as_soon(settings):
    for client in (storage.queue(settings, "chunks"), storage.queue(settings, "chunks", base64=False)):
        policy = client._config.retry_policy
        assert [round(policy.initial_backoff + policy.increment_base ** retry) for retry in (1, 2, 3)] == [2, 4, 8]
        assert policy.total_retries == 3


def test_a_container_has_one_client_per_account(settings):
    # so what is built from it (its blobhttp client, shared/blobhttp.py) is kept with it
    assert storage.container(settings, "segments") is storage.container(settings, "segments")
    assert storage.container(settings, "segments") is not storage.container(settings, "export-state")
