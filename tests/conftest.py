"""Fixtures shared by the whole suite. Real parts only: Azurite for storage, the sandbox for Omnisend."""
from __future__ import annotations

import uuid

import pytest

from shared.settings import Settings
from tools.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def azurite() -> Azurite:
    """One Azurite for the session (started here, stopped at the end), data in .azurite/tests."""
    emulator = start_azurite("tests")
    yield emulator
    emulator.stop()


@pytest.fixture()
def settings(azurite, tmp_path) -> Settings:
    """Settings of a fresh, isolated app: own containers and queue names, local secrets in tmp."""
    suffix = uuid.uuid4().hex[:10]
    return Settings.from_env(
        {
            "AzureWebJobsStorage": azurite.connection_string,
            "SEGMENTS_CONTAINER": f"segments-{suffix}",
            "STATE_CONTAINER": f"state-{suffix}",
            "EXPORT_QUEUE": f"chunks-{suffix}",
            "LOCAL_SECRETS_DIR": str(tmp_path / "secrets"),
        }
    )


@pytest.fixture()
def segments_container(settings):
    """The (created) segments container of the `settings` fixture."""
    from shared.storage import container

    client = container(settings, settings.segments_container)
    client.create_container()
    return client
